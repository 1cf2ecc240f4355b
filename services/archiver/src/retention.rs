//! Retention: archive objects of tables with a retention (`archive.retention_days`; events and
//! inbound 30 days by default) are deleted once older than it; every other table is kept.
//!
//! An object's age counts from its archived time (`dwsync_archive::retention`): its
//! `LastModified` (the time its batch was written, shortly after the files it holds were handed
//! off), or for an object an archive purge rewrote — whose `LastModified` is the purge's — the
//! original time the rewrite kept in its user metadata. Each sweep lists each partition's batches
//! in key (offset) order from where the previous sweep left off and deletes the expired objects.
//! An object whose `LastModified` is too young to expire for any table is looked at once (a HEAD
//! for its metadata): if its archived time is older, it is judged by that and the sweep goes on;
//! otherwise the sweep of the partition stops there. So a sweep makes at most one HEAD per
//! partition that does not lead to a deletion or past a rewritten object. Where the sweep left
//! off (the *settled* key: every object up to it is deleted or of a table kept forever) is
//! remembered per partition, so a sweep lists about one sweep interval of batches, not the whole
//! archive; after a restart the first sweep lists everything once. Several instances sweep the
//! same objects: a delete is idempotent.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::error::SdkError;
use dwsync_archive::key::{parse_key, partition_prefix};
use dwsync_archive::retention::{RetentionDays, archived_ms};
use dwsync_contract::Table;
use dwsync_s3::error::StoreError;

/// One listed archive object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    /// Its key.
    pub key: String,
    /// Its table (`None`: not an archive key; never deleted).
    pub table: Option<Table>,
    /// `LastModified`, ms since the Unix epoch (`None`: the store did not say; never deleted).
    pub modified_ms: Option<i64>,
    /// Its archived time read from its metadata (a HEAD), once looked at; `None`: not looked at.
    pub archived_ms: Option<i64>,
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
    /// The object (index in the page) whose `LastModified` is too young but whose archived time
    /// may be older: look it up ([`Aged::archived_ms`]) and decide the page again.
    pub look_up: Option<usize>,
}

/// Decides on a page of objects (in key order) at `now_ms`.
pub fn decide(retention: &RetentionDays, objects: &[Aged], now_ms: i64) -> Decision {
    let shortest = retention.shortest();
    let mut decision = Decision::default();
    let mut settled = true;
    for (index, object) in objects.iter().enumerate() {
        let Some(modified) = object.modified_ms else {
            settled = false;
            continue;
        };
        // The archived time is never later than `LastModified`.
        let archived = object.archived_ms.map_or(modified, |at| at.min(modified));
        if archived > now_ms.saturating_sub(shortest) {
            if object.archived_ms.is_none() {
                decision.look_up = Some(index);
            }
            decision.stop = true;
            break;
        }
        match object.table.and_then(|t| retention.of(t)) {
            Some(keep) if archived <= now_ms.saturating_sub(keep) => decision.expired.push(object.clone()),
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

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Objects deleted, per table.
    pub deleted: BTreeMap<Table, u64>,
    /// Objects listed.
    pub listed: u64,
    /// Objects looked up (HEAD) for their archived time.
    pub looked_up: u64,
}

/// Sweeps an archive bucket, remembering where each partition's listing is settled.
#[derive(Debug)]
pub struct Sweeper {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    retention: RetentionDays,
    settled: HashMap<String, String>,
}

impl Sweeper {
    /// A sweeper of `s3://bucket/prefix` with `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str, retention: RetentionDays) -> Self {
        Self { client, bucket: bucket.to_owned(), prefix: prefix.to_owned(), retention, settled: HashMap::new() }
    }

    /// Deletes every object past its table's retention at `now_ms`, partition by partition.
    pub async fn sweep(&mut self, now_ms: i64) -> Result<Swept, StoreError> {
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
    async fn partitions(&self) -> Result<Vec<String>, StoreError> {
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
                .map_err(|e| StoreError::from_sdk("ListObjectsV2", &self.bucket, &root, e))?;
            prefixes.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(prefixes);
            }
        }
    }

    async fn sweep_partition(&mut self, partition: &str, now_ms: i64, swept: &mut Swept) -> Result<(), StoreError> {
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
                .map_err(|e| StoreError::from_sdk("ListObjectsV2", &self.bucket, partition, e))?;
            let mut page: Vec<Aged> = out
                .contents()
                .iter()
                .filter_map(|o| {
                    let key = o.key()?.to_owned();
                    let table = parse_key(&self.prefix, &key).map(|k| k.part.table);
                    let modified_ms = o.last_modified().and_then(|t| t.to_millis().ok());
                    Some(Aged { key, table, modified_ms, archived_ms: None })
                })
                .collect();
            swept.listed += page.len() as u64;
            let decision = loop {
                let decision = decide(&self.retention, &page, now_ms);
                let Some(index) = decision.look_up else { break decision };
                swept.looked_up += 1;
                match self.archived_ms(&page[index].key).await? {
                    Some(at) => page[index].archived_ms = Some(at),
                    // Gone since the listing: nothing to decide.
                    None => drop(page.remove(index)),
                }
            };
            for object in &decision.expired {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&object.key)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("DeleteObject", &self.bucket, &object.key, e))?;
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

    /// `key`'s archived time (its metadata, else its `LastModified`); `None` when it is gone.
    async fn archived_ms(&self, key: &str) -> Result<Option<i64>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(
                archived_ms(out.metadata(), out.last_modified().and_then(|t| t.to_millis().ok())).unwrap_or(i64::MAX),
            )),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) if dwsync_s3::error::status(&e) == Some(404) => Ok(None),
            Err(e) => Err(StoreError::from_sdk("HeadObject", &self.bucket, key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use dwsync_archive::retention::DAY_MS;

    fn aged(key: &str, table: Table, days_old: i64) -> Aged {
        Aged {
            key: key.into(),
            table: Some(table),
            modified_ms: Some(100 * DAY_MS - days_old * DAY_MS),
            archived_ms: None,
        }
    }

    fn retention(days: &[(&str, u32)]) -> RetentionDays {
        let named: BTreeMap<String, u32> = days.iter().map(|(t, d)| ((*t).to_owned(), *d)).collect();
        RetentionDays::try_from(named).expect("valid")
    }

    #[test]
    fn expired_objects_of_tables_with_a_retention_go_others_stay() {
        let retention = retention(&[("events", 30), ("metrics", 60)]);
        let now = 100 * DAY_MS;
        let page = [
            aged("a/events", Table::Events, 45),
            aged("a/metrics", Table::Metrics, 45),
            aged("a/people", Table::People, 45),
            aged("b/events", Table::Events, 31),
            aged("c/events", Table::Events, 29),
            aged("c/people", Table::People, 29),
        ];
        let decision = decide(&retention, &page, now);
        let expired: Vec<&str> = decision.expired.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(expired, ["a/events", "b/events"]);
        assert!(decision.stop, "c/ is too young for any retention");
        // Metrics (60 days) is not due yet: the settled key stays before it.
        assert_eq!(decision.settled.as_deref(), Some("a/events"));
    }

    #[test]
    fn kept_forever_and_deleted_objects_settle_the_listing() {
        let retention = retention(&[("events", 30)]);
        let page = [aged("a/events", Table::Events, 40), aged("a/people", Table::People, 40)];
        let decision = decide(&retention, &page, 100 * DAY_MS);
        assert_eq!(decision.settled.as_deref(), Some("a/people"));
        assert!(!decision.stop, "the page ended: read on");
        assert!(RetentionDays::forever().is_empty());
    }

    #[test]
    fn a_young_object_is_looked_up_once_and_judged_by_its_archived_time() {
        let retention = retention(&[("events", 30)]);
        let now = 100 * DAY_MS;
        // Rewritten by a purge 5 days ago, archived 40 days ago; then an object 35 days old.
        let mut page = vec![aged("a/events", Table::Events, 5), aged("b/events", Table::Events, 35)];
        let decision = decide(&retention, &page, now);
        assert_eq!((decision.look_up, decision.stop, decision.expired.len()), (Some(0), true, 0));
        page[0].archived_ms = Some(now - 40 * DAY_MS);
        let decision = decide(&retention, &page, now);
        let expired: Vec<&str> = decision.expired.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(expired, ["a/events", "b/events"]);
        assert_eq!((decision.look_up, decision.stop), (None, false));
        // Looked up and really young: the sweep stops there without looking it up again.
        page[0].archived_ms = Some(now - 5 * DAY_MS);
        let decision = decide(&retention, &page, now);
        assert_eq!((decision.look_up, decision.stop, decision.expired.len()), (None, true, 0));
    }
}
