//! Archive object keys: `<prefix>/p<partition:04>/<start:020>-<end:020>/<table>[_chngs].parquet`.
//!
//! A batch is the handoff records `[start, end)` of one partition; the key is a function of the
//! batch alone, so a batch written again after a crash lands on the same keys. Offsets are
//! zero-padded to 20 digits (any `i64`), so a listing sorts in offset order. [`parse_key`] is
//! the inverse of [`object_key`], for readers of the archive.

use dwsync_contract::Table;
use dwsync_handoff::FileKind;

/// The records of one handoff partition an archive batch covers: offsets `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    /// The handoff partition.
    pub partition: i32,
    /// The first offset (the partition's committed offset when the batch began).
    pub start: i64,
    /// The offset after the batch's last record (committed once the batch is written).
    pub end: i64,
}

/// What one archive object of a batch holds: a table, and for people, objects and object types
/// their new or changes files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    /// The table.
    pub table: Table,
    /// [`FileKind::Changes`] for the change files of tables that have them, else
    /// [`FileKind::Unspecified`] (new-entity files and tables without the split).
    pub kind: FileKind,
}

impl Part {
    /// The part of a file of `table` and `kind`.
    pub fn of(table: Table, kind: FileKind) -> Self {
        let changes = kind == FileKind::Changes && table.def().has_change_files;
        Self { table, kind: if changes { FileKind::Changes } else { FileKind::Unspecified } }
    }

    /// `<table>` or `<table>_chngs`.
    pub fn name(&self) -> String {
        let chngs = if self.kind == FileKind::Changes { "_chngs" } else { "" };
        format!("{}{chngs}", self.table.name())
    }

    /// The part [`name`](Self::name)d `name`; `None` for anything else (an unknown table, or
    /// `_chngs` on a table without change files).
    pub fn parse(name: &str) -> Option<Self> {
        let (table, kind) = match name.strip_suffix("_chngs") {
            Some(table) => (table, FileKind::Changes),
            None => (name, FileKind::Unspecified),
        };
        let table: Table = table.parse().ok()?;
        let part = Self::of(table, kind);
        (part.kind == kind).then_some(part)
    }

    /// The footer's `kind` value: `changes` or `all`.
    pub fn kind_name(&self) -> &'static str {
        if self.kind == FileKind::Changes { "changes" } else { "all" }
    }
}

/// What an archive key names: a batch and a part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey {
    /// The batch.
    pub range: BatchRange,
    /// The (table, kind) part.
    pub part: Part,
}

/// Parses `key`, an [`object_key`] under `prefix`; `None` when it is not one (another prefix,
/// a malformed partition, offsets that are not 20 digits or do not make a non-empty range, an
/// unknown part, no `.parquet`).
pub fn parse_key(prefix: &str, key: &str) -> Option<ObjectKey> {
    let root = join(prefix, "");
    let rest = key.strip_prefix(&root)?;
    let mut segments = rest.split('/');
    let (partition, offsets, name) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() {
        return None;
    }
    let partition = partition.strip_prefix('p').filter(|p| p.len() >= 4 && p.bytes().all(|b| b.is_ascii_digit()))?;
    let partition: i32 = partition.parse().ok()?;
    let (start, end) = offsets.split_once('-')?;
    let offset = |s: &str| (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i64>().ok())?;
    let (start, end) = (offset(start)?, offset(end)?);
    let part = Part::parse(name.strip_suffix(".parquet")?)?;
    let parsed = ObjectKey { range: BatchRange { partition, start, end }, part };
    (start < end && object_key(prefix, parsed.range, part) == key).then_some(parsed)
}

fn join(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { rest.to_owned() } else { format!("{prefix}/{rest}") }
}

/// `<prefix>/p<partition:04>/`.
pub fn partition_prefix(prefix: &str, partition: i32) -> String {
    join(prefix, &format!("p{partition:04}/"))
}

/// The listing prefix of every batch of `partition` that starts at `start`:
/// `<prefix>/p<partition:04>/<start:020>-`.
pub fn batch_start_prefix(prefix: &str, partition: i32, start: i64) -> String {
    format!("{}{start:020}-", partition_prefix(prefix, partition))
}

/// The key of `part`'s object of the batch `range`.
pub fn object_key(prefix: &str, range: BatchRange, part: Part) -> String {
    format!(
        "{}{:020}-{:020}/{}.parquet",
        partition_prefix(prefix, range.partition),
        range.start,
        range.end,
        part.name()
    )
}

/// The end of the batch starting at `start` that `keys` (a listing of
/// [`batch_start_prefix`]) show was written, fully or partly, before a restart: the batch read
/// again from `start` must end exactly there, so its objects come out the same. `None` when no
/// key of such a batch is listed. Keys that do not parse are ignored; if several ends appear
/// (never written by one archiver, which writes one batch per start), the smallest is taken.
pub fn forced_end<'a>(
    prefix: &str,
    partition: i32,
    start: i64,
    keys: impl IntoIterator<Item = &'a str>,
) -> Option<i64> {
    let listed = batch_start_prefix(prefix, partition, start);
    keys.into_iter()
        .filter_map(|key| {
            let rest = key.strip_prefix(&listed)?;
            let (end, _) = rest.split_once('/')?;
            (end.len() == 20).then_some(())?;
            end.parse::<i64>().ok().filter(|end| *end > start)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_partition_range_and_part() {
        let range = BatchRange { partition: 3, start: 120, end: 4_567 };
        assert_eq!(
            object_key("archive", range, Part::of(Table::Metrics, FileKind::Unspecified)),
            "archive/p0003/00000000000000000120-00000000000000004567/metrics.parquet"
        );
        assert_eq!(
            object_key("/a/b/", range, Part::of(Table::People, FileKind::Changes)),
            "a/b/p0003/00000000000000000120-00000000000000004567/people_chngs.parquet"
        );
        assert_eq!(
            object_key("", range, Part::of(Table::Objects, FileKind::New)),
            "p0003/00000000000000000120-00000000000000004567/objects.parquet"
        );
        // Tables without the split never get the suffix, whatever the file says.
        assert_eq!(Part::of(Table::Events, FileKind::Changes), Part::of(Table::Events, FileKind::Unspecified));
        assert_eq!(batch_start_prefix("archive", 3, 120), "archive/p0003/00000000000000000120-");
    }

    #[test]
    fn keys_parse_back() {
        let range = BatchRange { partition: 12, start: 0, end: 9_000_000_000 };
        for prefix in ["archive", "a/b", ""] {
            for table in Table::ALL {
                for kind in [FileKind::Unspecified, FileKind::Changes] {
                    let part = Part::of(*table, kind);
                    let key = object_key(prefix, range, part);
                    assert_eq!(parse_key(prefix, &key), Some(ObjectKey { range, part }), "{key}");
                    assert_eq!(Part::parse(&part.name()), Some(part));
                }
            }
        }
        assert_eq!(
            parse_key("/archive/", "archive/p0001/00000000000000000001-00000000000000000002/people_chngs.parquet")
                .map(|k| k.part),
            Some(Part::of(Table::People, FileKind::Changes))
        );
        for foreign in [
            "other/p0001/00000000000000000001-00000000000000000002/metrics.parquet",
            "archive/p1/00000000000000000001-00000000000000000002/metrics.parquet",
            "archive/p0001/1-2/metrics.parquet",
            "archive/p0001/00000000000000000002-00000000000000000002/metrics.parquet",
            "archive/p0001/00000000000000000001-00000000000000000002/metrics_chngs.parquet",
            "archive/p0001/00000000000000000001-00000000000000000002/metric.parquet",
            "archive/p0001/00000000000000000001-00000000000000000002/metrics.csv",
            "archive/p0001/00000000000000000001-00000000000000000002/x/metrics.parquet",
        ] {
            assert_eq!(parse_key("archive", foreign), None, "{foreign}");
        }
    }

    #[test]
    fn keys_sort_in_offset_order() {
        let part = Part::of(Table::Metrics, FileKind::Unspecified);
        let a = object_key("p", BatchRange { partition: 0, start: 99, end: 100 }, part);
        let b = object_key("p", BatchRange { partition: 0, start: 100, end: 1_000 }, part);
        assert!(a < b);
    }

    #[test]
    fn an_existing_batch_at_the_start_forces_its_end() {
        let range = BatchRange { partition: 7, start: 50, end: 90 };
        let written = [
            object_key("arc", range, Part::of(Table::Metrics, FileKind::Unspecified)),
            object_key("arc", range, Part::of(Table::People, FileKind::Changes)),
        ];
        assert_eq!(forced_end("arc", 7, 50, written.iter().map(String::as_str)), Some(90));
        assert_eq!(forced_end("arc", 7, 50, []), None, "nothing written: the batch ends where it likes");
        // Another start, another partition or a foreign key does not count.
        assert_eq!(forced_end("arc", 7, 51, written.iter().map(String::as_str)), None);
        assert_eq!(forced_end("arc", 8, 50, written.iter().map(String::as_str)), None);
        assert_eq!(forced_end("arc", 7, 50, ["arc/p0007/00000000000000000050-x/metrics.parquet"]), None);
    }
}
