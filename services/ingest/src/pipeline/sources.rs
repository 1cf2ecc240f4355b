//! The source topics the loop reads, and their partitions by topic name (one lookup per record).

use std::collections::HashMap;

use rdkafka::Message as _;
use rdkafka::message::BorrowedMessage;

use crate::config::SourceTopic;
use crate::window::PartitionKey;

/// The source topics, indexed by name.
pub(super) struct Sources<'a> {
    topics: &'a [SourceTopic],
    index: HashMap<String, usize>,
}

impl<'a> Sources<'a> {
    /// Indexes `topics` by name.
    pub(super) fn new(topics: &'a [SourceTopic]) -> Self {
        Self { topics, index: topics.iter().enumerate().map(|(i, t)| (t.topic.clone(), i)).collect() }
    }

    /// Every source topic, in the order of their indexes.
    pub(super) fn topics(&self) -> &'a [SourceTopic] {
        self.topics
    }

    /// The topic indexes by name.
    pub(super) fn index(&self) -> &HashMap<String, usize> {
        &self.index
    }

    /// The source topic of a partition.
    pub(super) fn topic(&self, partition: PartitionKey) -> &'a SourceTopic {
        &self.topics[partition.0]
    }

    /// A partition of the topic named `topic`, if it is a topic ingest reads.
    pub(super) fn key(&self, topic: &str, partition: i32) -> Option<PartitionKey> {
        self.index.get(topic).map(|&t| (t, partition))
    }

    /// The source partition of a message, if it is of a topic ingest reads.
    pub(super) fn partition(&self, msg: &BorrowedMessage<'_>) -> Option<PartitionKey> {
        self.key(msg.topic(), msg.partition())
    }
}
