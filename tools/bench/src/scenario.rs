//! The scenarios and their records: which tables, encodings, workspaces and how many records,
//! and the exact sequence of messages the pre-load produces and the encode ceiling re-creates.

use anyhow::bail;
use dwsync_contract::{Encoding, Table};
pub(crate) use dwsync_loadgen::EncodingMode;
use dwsync_loadgen::{DEFAULT_EXPONENT, Generator, Schedule, Workspaces};
use serde::Serialize;

/// What the report says of an encoding mode (the mode itself is the load generator's).
pub(crate) trait ModeText {
    /// The topics' default encoding in ingest's config (`content-type` headers override it).
    fn topic_encoding(self) -> &'static str;
    /// How the report names it.
    fn label(self) -> &'static str;
}

impl ModeText for EncodingMode {
    fn topic_encoding(self) -> &'static str {
        match self {
            Self::Json | Self::Mixed => "json",
            Self::Protobuf => "protobuf",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Protobuf => "protobuf",
            Self::Mixed => "JSON+protobuf",
        }
    }
}

/// One benchmark scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Scenario {
    /// Short name (`metrics-json`, ...).
    pub(crate) name: &'static str,
    /// The tables produced, one source topic each.
    #[serde(serialize_with = "table_names")]
    pub(crate) tables: Vec<Table>,
    /// Message encoding.
    #[serde(serialize_with = "mode_name")]
    pub(crate) encoding: EncodingMode,
    /// Number of workspaces (ids from 1001).
    pub(crate) workspaces: usize,
    /// Zipf exponent of the workspaces' shares.
    pub(crate) skew: f64,
    /// Records per table.
    pub(crate) records_per_table: u64,
    /// Partitions of each source topic.
    pub(crate) partitions: i32,
    /// Window length of the end-to-end run, ms.
    pub(crate) window_ms: u64,
}

fn mode_name<S: serde::Serializer>(mode: &EncodingMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode.name())
}

fn table_names<S: serde::Serializer>(tables: &[Table], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(tables.iter().map(|t| t.name()))
}

/// The names of every scenario, in the order they run.
pub(crate) const NAMES: [&str; 4] = ["metrics-json", "metrics-protobuf", "mixed-all-tables", "workspaces-10k"];

/// The four tables of the many-workspaces scenario: the high-volume ones.
const MANY_WORKSPACES_TABLES: [Table; 4] = [Table::Deliveries, Table::Metrics, Table::People, Table::Events];

impl Scenario {
    /// The scenario called `name`, at full size (scaled) or smoke size.
    pub(crate) fn named(name: &str, smoke: bool, scale: f64) -> anyhow::Result<Self> {
        let size = |full: u64, tiny: u64| if smoke { tiny } else { ((full as f64 * scale).round() as u64).max(1) };
        // Smoke: one partition per topic and 1-s windows. Full: 4 partitions and 15-s windows,
        // except with 10,000 workspaces (below).
        let (partitions, window_ms) = if smoke { (1, 1_000) } else { (4, 15_000) };
        let metrics = |name, encoding| Scenario {
            name,
            tables: vec![Table::Metrics],
            encoding,
            workspaces: 100,
            skew: DEFAULT_EXPONENT,
            records_per_table: size(1_000_000, 3_000),
            partitions,
            window_ms,
        };
        Ok(match name {
            "metrics-json" => metrics("metrics-json", EncodingMode::Json),
            "metrics-protobuf" => metrics("metrics-protobuf", EncodingMode::Protobuf),
            "mixed-all-tables" => Scenario {
                name: "mixed-all-tables",
                tables: Table::ALL.to_vec(),
                encoding: EncodingMode::Mixed,
                workspaces: 100,
                skew: DEFAULT_EXPONENT,
                records_per_table: size(40_000, 200),
                partitions,
                window_ms,
            },
            // 10,000 workspaces, all of them active in every table: a mild skew (the largest
            // gets ~0.5% of the records, the smallest a few). A window makes ~50,000 objects,
            // about 50 s of PUTs for the S3 server here: the window is 60 s (15 s could never
            // keep up), and 16 partitions per topic spread the closes over it in 16 groups.
            "workspaces-10k" => Scenario {
                name: "workspaces-10k",
                tables: MANY_WORKSPACES_TABLES.to_vec(),
                encoding: EncodingMode::Json,
                workspaces: if smoke { 50 } else { 10_000 },
                skew: 0.5,
                records_per_table: size(50_000, 300),
                partitions: if smoke { partitions } else { 16 },
                window_ms: if smoke { window_ms } else { 60_000 },
            },
            other => bail!("unknown scenario {other:?}; known: {}", NAMES.join(", ")),
        })
    }

    /// All records of the scenario.
    pub(crate) fn records(&self) -> u64 {
        self.records_per_table * self.tables.len() as u64
    }

    /// One line describing it.
    pub(crate) fn describe(&self) -> String {
        let tables = if self.tables.len() == Table::ALL.len() {
            "all 15 tables".to_owned()
        } else {
            self.tables.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        };
        format!(
            "{} records ({tables}; {} workspaces, Zipf {}; {}; {} partition(s) per topic; window {} s)",
            thousands(self.records()),
            thousands(self.workspaces as u64),
            self.skew,
            self.encoding.label(),
            self.partitions,
            self.window_ms as f64 / 1000.0
        )
    }

    /// The scenario's messages in production order: round robin over the tables, each table's
    /// workspaces interleaved by [`Workspaces::schedule`] (as `dwsync-loadgen` does).
    pub(crate) fn messages(&self, seed: u64) -> Messages {
        let workspaces = Workspaces::zipf(self.workspaces, self.skew);
        Messages {
            runs: self
                .tables
                .iter()
                .map(|&table| (table, workspaces.schedule(self.records_per_table, seed ^ table as u64), 0))
                .collect(),
            next: 0,
            mode: self.encoding,
            generator: Generator::new(seed),
        }
    }
}

/// One message of a scenario.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Its table.
    pub(crate) table: Table,
    /// Its workspace (also its key).
    pub(crate) workspace_id: i64,
    /// How it is encoded.
    pub(crate) encoding: Encoding,
    /// The payload.
    pub(crate) payload: Vec<u8>,
    /// The value of its table's id column ([`dwsync_loadgen::id_column`]), as text.
    pub(crate) id: String,
}

/// The messages of a scenario, generated on the fly; see [`Scenario::messages`].
pub(crate) struct Messages {
    runs: Vec<(Table, Schedule, u64)>,
    next: usize,
    mode: EncodingMode,
    generator: Generator,
}

impl Messages {
    /// Whether messages carry a `content-type` header.
    pub(crate) fn flagged(&self) -> bool {
        self.mode == EncodingMode::Mixed
    }
}

impl Iterator for Messages {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        for _ in 0..self.runs.len() {
            let slot = self.next;
            self.next = (self.next + 1) % self.runs.len();
            let (table, schedule, sent) = &mut self.runs[slot];
            let Some((workspace_id, n)) = schedule.next() else { continue };
            let encoding = self.mode.encoding(*sent);
            *sent += 1;
            let record = self.generator.record(*table, workspace_id, n);
            let payload = match encoding {
                Encoding::Json => record.json,
                Encoding::Protobuf => record.protobuf,
            };
            return Some(Message { table: *table, workspace_id, encoding, payload, id: record.id });
        }
        None
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use dwsync_contract::decode;

    use super::*;

    #[test]
    fn every_scenario_exists_in_both_sizes() {
        for name in NAMES {
            let full = Scenario::named(name, false, 1.0).expect("full");
            let smoke = Scenario::named(name, true, 1.0).expect("smoke");
            assert!(smoke.records() <= 5_000, "{name}: smoke has {}", smoke.records());
            assert!(full.records() > smoke.records());
        }
        assert_eq!(Scenario::named("workspaces-10k", false, 1.0).expect("10k").workspaces, 10_000);
        assert_eq!(Scenario::named("metrics-json", false, 0.5).expect("half").records(), 500_000);
        assert!(Scenario::named("nope", false, 1.0).is_err());
    }

    #[test]
    fn messages_cover_every_table_and_decode() {
        let s = Scenario::named("mixed-all-tables", true, 1.0).expect("mixed");
        let messages: Vec<Message> = s.messages(42).collect();
        assert_eq!(messages.len() as u64, s.records());
        let tables: HashSet<_> = messages.iter().map(|m| m.table).collect();
        assert_eq!(tables.len(), 15);
        let encodings: HashSet<_> = messages.iter().map(|m| m.encoding).collect();
        assert_eq!(encodings.len(), 2);
        for m in &messages {
            let row = decode(m.table, m.encoding, &m.payload).expect("decodes");
            assert_eq!(row.workspace_id(), m.workspace_id);
        }
        // Deterministic.
        let again: Vec<Vec<u8>> = s.messages(42).map(|m| m.payload).collect();
        assert!(again.iter().eq(messages.iter().map(|m| &m.payload)));
    }

    #[test]
    fn ten_thousand_workspaces_are_all_active() {
        let s = Scenario::named("workspaces-10k", false, 1.0).expect("10k");
        let counts = Workspaces::zipf(s.workspaces, s.skew).split(s.records_per_table);
        assert!(counts.iter().all(|(_, c)| *c >= 1), "every workspace has records in every table");
        assert!(counts[0].1 > 20 * counts[counts.len() - 1].1, "a few large, many small");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
