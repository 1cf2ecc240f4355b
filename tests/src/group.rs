//! Waiting on a consumer group's membership instead of sleeping: how many members a group has,
//! in which state, and how many partitions each was assigned (the broker's `DescribeGroups`).

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One member's share of a group, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's client id.
    pub client_id: String,
    /// Partitions assigned to it (over every topic).
    pub partitions: usize,
}

/// The partitions in a classic consumer-protocol assignment: version (i16), then topics (i32
/// count; each a name as i16 length and bytes, then i32 partition count and the partitions).
/// `None` when the bytes are not such an assignment.
pub fn assigned_partitions(assignment: &[u8]) -> Option<usize> {
    let mut at = 2usize;
    let i16_at = |at: usize| assignment.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let i32_at = |at: usize| assignment.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let topics = i32_at(at)?;
    at += 4;
    let mut partitions = 0usize;
    for _ in 0..topics.max(0) {
        let name = usize::try_from(i16_at(at)?).ok()?;
        at += 2 + name;
        let count = usize::try_from(i32_at(at)?).ok()?;
        at += 4 + 4 * count;
        if at > assignment.len() {
            return None;
        }
        partitions += count;
    }
    Some(partitions)
}

/// The group's state (`Stable`, `PreparingRebalance`, …) and members, described by the broker
/// at `config`'s bootstrap servers.
pub fn describe(config: &ClientConfig, group: &str) -> Option<(String, Vec<Member>)> {
    let consumer: BaseConsumer = config.create().ok()?;
    let list = consumer.fetch_group_list(Some(group), Duration::from_secs(5)).ok()?;
    let info = list.groups().iter().find(|g| g.name() == group)?;
    let members = info
        .members()
        .iter()
        .map(|m| Member {
            client_id: m.client_id().to_owned(),
            partitions: m.assignment().and_then(assigned_partitions).unwrap_or(0),
        })
        .collect();
    Some((info.state().to_owned(), members))
}

/// Waits until `group` is `Stable` with `members` members that each hold at least one
/// partition; panics with the last description after `timeout`.
pub async fn wait_stable(config: &ClientConfig, group: &str, members: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = describe(config, group);
        if let Some((state, got)) = &seen
            && state == "Stable"
            && got.len() == members
            && got.iter().all(|m| m.partitions > 0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group}: not Stable with {members} members holding partitions after {timeout:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::assigned_partitions;

    /// An assignment of `topics` (name, partitions) as the consumer protocol encodes it.
    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, parts) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn counts_the_partitions_of_every_topic() {
        assert_eq!(assigned_partitions(&encode(&[("a", &[0, 2]), ("bb", &[1])])), Some(3));
        assert_eq!(assigned_partitions(&encode(&[])), Some(0));
    }

    #[test]
    fn refuses_bytes_that_end_early() {
        let full = encode(&[("topic", &[0, 1, 2])]);
        assert_eq!(assigned_partitions(&full[..full.len() - 9]), None);
        assert_eq!(assigned_partitions(&[0, 1]), None);
    }
}
