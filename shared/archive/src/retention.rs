//! How long the archive keeps each table (`archive.retention_days`, the archiver's and the
//! backfill's alike) and when an archive object was archived.
//!
//! An object's age counts from its **archived time**: when its batch was first written. The
//! archiver creates an object once and never rewrites it, so that is its `LastModified`; an
//! archive purge rewrites objects, which sets a new `LastModified`, and keeps the original time in
//! the user metadata [`ARCHIVED_MS_METADATA`] (copied from the original's metadata, else from its
//! `LastModified`). [`archived_ms`] reads it back.

use std::collections::{BTreeMap, HashMap};

use dwsync_contract::Table;
use serde::{Deserialize, Serialize};

/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// The user metadata key (`x-amz-meta-dwsync-archived-ms`) holding an object's archived time, in
/// ms since the Unix epoch, on objects rewritten by a purge.
pub const ARCHIVED_MS_METADATA: &str = "dwsync-archived-ms";

/// Days each table's archive objects are kept, by table; a table not named is kept forever.
///
/// In configuration files a map of table name to days (`{ events = 30, inbound = 30 }`, the
/// default); an unknown table name or 0 days fails the configuration's loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, u32>", into = "BTreeMap<String, u32>")]
pub struct RetentionDays {
    days: BTreeMap<Table, u32>,
}

/// A `retention_days` map that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRetention {
    /// A name that is not a v5 table.
    #[error("retention_days: {0:?} is not a v5 table")]
    UnknownTable(String),
    /// 0 days.
    #[error("retention_days: {0} must be kept at least 1 day (leave a table out to keep it forever)")]
    Zero(Table),
}

impl Default for RetentionDays {
    /// Events and inbound 30 days (the spec exports no older ones); the rest kept forever.
    fn default() -> Self {
        Self { days: BTreeMap::from([(Table::Events, 30), (Table::Inbound, 30)]) }
    }
}

impl TryFrom<BTreeMap<String, u32>> for RetentionDays {
    type Error = InvalidRetention;

    fn try_from(named: BTreeMap<String, u32>) -> Result<Self, Self::Error> {
        let mut days = BTreeMap::new();
        for (name, n) in named {
            let table: Table = name.parse().map_err(|_| InvalidRetention::UnknownTable(name))?;
            if n == 0 {
                return Err(InvalidRetention::Zero(table));
            }
            let _ = days.insert(table, n);
        }
        Ok(Self { days })
    }
}

impl From<RetentionDays> for BTreeMap<String, u32> {
    fn from(retention: RetentionDays) -> Self {
        retention.days.into_iter().map(|(t, d)| (t.name().to_owned(), d)).collect()
    }
}

impl RetentionDays {
    /// No table has a retention: everything is kept forever.
    pub fn forever() -> Self {
        Self { days: BTreeMap::new() }
    }

    /// Whether every table is kept forever.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// `table`'s retention in ms, if it has one.
    pub fn of(&self, table: Table) -> Option<i64> {
        self.days.get(&table).map(|d| i64::from(*d) * DAY_MS)
    }

    /// The shortest retention of any table, in ms (`i64::MAX` when none has one).
    pub fn shortest(&self) -> i64 {
        self.days.values().min().map_or(i64::MAX, |d| i64::from(*d) * DAY_MS)
    }

    /// Whether an object of `table` archived at `archived_ms` is past its retention at `now_ms`.
    pub fn expired(&self, table: Table, archived_ms: i64, now_ms: i64) -> bool {
        self.of(table).is_some_and(|keep| archived_ms <= now_ms.saturating_sub(keep))
    }
}

/// An object's archived time: [`ARCHIVED_MS_METADATA`] of its user `metadata` if it holds a
/// number, else its `LastModified` (`last_modified_ms`).
pub fn archived_ms(metadata: Option<&HashMap<String, String>>, last_modified_ms: Option<i64>) -> Option<i64> {
    metadata.and_then(|m| m.get(ARCHIVED_MS_METADATA)).and_then(|v| v.trim().parse::<i64>().ok()).or(last_modified_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_default_keeps_events_and_inbound_30_days() {
        let parsed: RetentionDays = serde_json::from_str(r#"{"events": 30, "inbound": 30}"#).expect("valid");
        assert_eq!(parsed, RetentionDays::default());
        assert_eq!(parsed.of(Table::Events), Some(30 * DAY_MS));
        assert_eq!(parsed.of(Table::Metrics), None);
        let typo = serde_json::from_str::<RetentionDays>(r#"{"event": 30}"#).expect_err("unknown table");
        assert!(typo.to_string().contains("\"event\" is not a v5 table"), "{typo}");
        let zero = serde_json::from_str::<RetentionDays>(r#"{"events": 0}"#).expect_err("zero days");
        assert!(zero.to_string().contains("at least 1 day"), "{zero}");
        assert_eq!(serde_json::to_string(&parsed).ok().as_deref(), Some(r#"{"events":30,"inbound":30}"#));
    }

    #[test]
    fn age_counts_from_the_archived_time() {
        let retention = RetentionDays::default();
        let now = 100 * DAY_MS;
        assert!(retention.expired(Table::Events, 70 * DAY_MS, now));
        assert!(!retention.expired(Table::Events, 70 * DAY_MS + 1, now));
        assert!(!retention.expired(Table::Metrics, 0, now), "kept forever");
        let metadata = HashMap::from([(ARCHIVED_MS_METADATA.to_owned(), "42".to_owned())]);
        assert_eq!(archived_ms(Some(&metadata), Some(99)), Some(42));
        assert_eq!(archived_ms(None, Some(99)), Some(99));
        let junk = HashMap::from([(ARCHIVED_MS_METADATA.to_owned(), "x".to_owned())]);
        assert_eq!(archived_ms(Some(&junk), Some(99)), Some(99));
    }
}
