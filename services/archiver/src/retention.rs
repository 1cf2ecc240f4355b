//! Retention: archive objects of tables with a retention (`archive.retention_days`; events and
//! inbound 30 days by default) are deleted once older than it; every other table is kept.
//!
//! An object's age is its `LastModified`: the time its batch was written, shortly after the files
//! it holds were handed off. Each sweep lists each partition's batches in key (offset) order from
//! where the previous sweep left off, deletes the expired objects, and stops at the first object
//! too young to expire for any table. Where it left off (the *settled* key: every object up to it
//! is deleted or of a table kept forever) is remembered per partition, so a sweep lists about one
//! sweep interval of batches, not the whole archive; after a restart the first sweep lists
//! everything once. Several instances sweep the same objects: a delete is idempotent.

use std::collections::{BTreeMap, HashMap};

use dwsync_archive::key::{parse_key, partition_prefix};
use dwsync_contract::Table;
use dwsync_s3::create_only::S3Error;

const DAY_MS: i64 = 86_400_000;

/// One listed archive object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    /// Its key.
    pub key: String,
    /// Its table (`None`: not an archive key; never deleted).
    pub table: Option<Table>,
    /// `LastModified`, ms since the Unix epoch (`None`: the store did not say; never deleted).
    pub modified_ms: Option<i64>,
}

/// What a sweep of one partition's listed objects decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The objects to delete.
    pub expired: Vec<Aged>,
    /// The last key up to which everything is settled (deleted or kept forever), if it moved.
    pub settled: Option<String>,
    /// The listing may stop: an object too young to expire for any table was reached.
    pub stop: bool,
}

/// The retention of each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    days: BTreeMap<Table, u32>,
}

impl Retention {
    /// From `archive.retention_days` (validated names; unknown ones are ignored here).
    pub fn new(days: &BTreeMap<String, u32>) -> Self {
        Self { days: days.iter().filter_map(|(t, d)| Some((t.parse().ok()?, *d))).collect() }
    }

    /// Whether any table has a retention.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Decides on a page of objects (in key order) at `now_ms`.
    pub fn decide(&self, objects: &[Aged], now_ms: i64) -> Decision {
        let shortest = self.days.values().min().map_or(i64::MAX, |d| i64::from(*d) * DAY_MS);
        let mut decision = Decision::default();
        let mut settled = true;
        for object in objects {
            let Some(modified) = object.modified_ms else {
                settled = false;
                continue;
            };
            if modified > now_ms.saturating_sub(shortest) {
                decision.stop = true;
                break;
            }
            match object.table.and_then(|t| self.days.get(&t)) {
                Some(days) if modified <= now_ms.saturating_sub(i64::from(*days) * DAY_MS) => {
                    decision.expired.push(object.clone());
                }
                // A longer retention not reached yet: this object is looked at again next time.
                Some(_) => settled = false,
                // Kept forever (or not an archive key): settled.
                None => {}
            }
            if settled {
                decision.settled = Some(object.key.clone());
            }
        }
        decision
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Objects deleted, per table.
    pub deleted: BTreeMap<Table, u64>,
    /// Objects listed.
    pub listed: u64,
}

/// Sweeps an archive bucket, remembering where each partition's listing is settled.
#[derive(Debug)]
pub struct Sweeper {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    retention: Retention,
    settled: HashMap<String, String>,
}

impl Sweeper {
    /// A sweeper of `s3://bucket/prefix` with `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str, retention: Retention) -> Self {
        Self { client, bucket: bucket.to_owned(), prefix: prefix.to_owned(), retention, settled: HashMap::new() }
    }

    /// Deletes every object past its table's retention at `now_ms`, partition by partition.
    pub async fn sweep(&mut self, now_ms: i64) -> Result<Swept, S3Error> {
        let mut swept = Swept::default();
        if self.retention.is_empty() {
            return Ok(swept);
        }
        for partition in self.partitions().await? {
            self.sweep_partition(&partition, now_ms, &mut swept).await?;
        }
        Ok(swept)
    }

    /// The partitions' prefixes (`<prefix>/p0003/`), from a listing with a delimiter.
    async fn partitions(&self) -> Result<Vec<String>, S3Error> {
        // `<prefix>/`, under which the partitions' `p0003/` are.
        let root = partition_prefix(&self.prefix, 0).trim_end_matches("p0000/").to_owned();
        let mut prefixes = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&root)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| S3Error::from_sdk("ListObjectsV2", &self.bucket, &root, e))?;
            prefixes.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(prefixes);
            }
        }
    }

    async fn sweep_partition(&mut self, partition: &str, now_ms: i64, swept: &mut Swept) -> Result<(), S3Error> {
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(partition)
                .set_start_after(self.settled.get(partition).cloned())
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| S3Error::from_sdk("ListObjectsV2", &self.bucket, partition, e))?;
            let page: Vec<Aged> = out
                .contents()
                .iter()
                .filter_map(|o| {
                    let key = o.key()?.to_owned();
                    let table = parse_key(&self.prefix, &key).map(|k| k.part.table);
                    let modified_ms = o.last_modified().and_then(|t| t.to_millis().ok());
                    Some(Aged { key, table, modified_ms })
                })
                .collect();
            swept.listed += page.len() as u64;
            let decision = self.retention.decide(&page, now_ms);
            for object in &decision.expired {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&object.key)
                    .send()
                    .await
                    .map_err(|e| S3Error::from_sdk("DeleteObject", &self.bucket, &object.key, e))?;
                if let Some(table) = object.table {
                    *swept.deleted.entry(table).or_default() += 1;
                }
                tracing::debug!(key = %object.key, "Deleted an archive object past its retention.");
            }
            if let Some(settled) = decision.settled {
                let _ = self.settled.insert(partition.to_owned(), settled);
            }
            token = out.next_continuation_token().map(str::to_owned);
            if decision.stop || token.is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(key: &str, table: Table, days_old: i64) -> Aged {
        Aged { key: key.into(), table: Some(table), modified_ms: Some(100 * DAY_MS - days_old * DAY_MS) }
    }

    #[test]
    fn expired_objects_of_tables_with_a_retention_go_others_stay() {
        let days = BTreeMap::from([("events".to_owned(), 30), ("metrics".to_owned(), 60)]);
        let retention = Retention::new(&days);
        let now = 100 * DAY_MS;
        let page = [
            aged("a/events", Table::Events, 45),
            aged("a/metrics", Table::Metrics, 45),
            aged("a/people", Table::People, 45),
            aged("b/events", Table::Events, 31),
            aged("c/events", Table::Events, 29),
            aged("c/people", Table::People, 29),
        ];
        let decision = retention.decide(&page, now);
        let expired: Vec<&str> = decision.expired.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(expired, ["a/events", "b/events"]);
        assert!(decision.stop, "c/ is too young for any retention");
        // Metrics (60 days) is not due yet: the settled key stays before it.
        assert_eq!(decision.settled.as_deref(), Some("a/events"));
    }

    #[test]
    fn kept_forever_and_deleted_objects_settle_the_listing() {
        let retention = Retention::new(&BTreeMap::from([("events".to_owned(), 30)]));
        let page = [aged("a/events", Table::Events, 40), aged("a/people", Table::People, 40)];
        let decision = retention.decide(&page, 100 * DAY_MS);
        assert_eq!(decision.settled.as_deref(), Some("a/people"));
        assert!(!decision.stop, "the page ended: read on");
        assert!(Retention::new(&BTreeMap::new()).is_empty());
    }
}
