//! Kafka clients of the harness: client configs, creating and deleting the run's topics.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

/// A client config for `bootstrap`.
pub(crate) fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    let _ = c.set("bootstrap.servers", bootstrap).set("client.id", "dwsync-bench");
    c
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    config(bootstrap).create().context("cannot create a Kafka admin client")
}

/// Creates `topics` (replication 1) with `partitions` each; existing ones are an error (names are unique per run).
pub(crate) async fn create_topics(bootstrap: &str, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new, &opts).await.with_context(|| {
        format!("cannot reach Kafka at {bootstrap} to create topics (is it running? `dev/kafka status`)")
    })?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

/// Deletes `topics`; missing ones are fine.
pub(crate) async fn delete_topics(bootstrap: &str, topics: &[String]) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.delete_topics(&names, &opts).await.context("cannot delete the run's topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => bail!("cannot delete topic {topic}: {code}"),
        }
    }
    Ok(())
}
