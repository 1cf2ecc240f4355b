//! Command-line arguments of `dwsync-loadgen`.

use std::path::PathBuf;

use clap::Parser;
use dwsync_config::KafkaArgs;
use dwsync_contract::Table;
use dwsync_loadgen::DEFAULT_EXPONENT;
pub(crate) use dwsync_loadgen::EncodingMode;

/// Produces realistic v5 records to dwsync's source topics (one topic per table).
#[derive(Debug, Parser)]
#[command(name = "dwsync-loadgen", version)]
pub(crate) struct Args {
    /// How to reach Kafka (the services' `[kafka]` section: TLS and SASL included).
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// Topic name prefix: the topic of a table is the prefix followed by the table name.
    #[arg(long, default_value = "dwsync.source.")]
    pub(crate) topic_prefix: String,
    /// Tables to produce: `all` or a comma-separated list of table names.
    #[arg(long, default_value = "all", value_parser = parse_tables)]
    pub(crate) tables: Tables,
    /// Number of workspaces (ids 1001, 1002, ...), with Zipf-like shares of the records.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) workspaces: u32,
    /// Skew of the workspaces' shares: the Zipf exponent, the workspace of rank r getting a share
    /// proportional to 1/r^skew (1.1: of 10 workspaces the largest gets ~34%, the smallest ~2.4%;
    /// 0 = all equal).
    #[arg(long, default_value_t = DEFAULT_EXPONENT, value_parser = parse_skew)]
    pub(crate) skew: f64,
    /// Records per table, spread over the workspaces.
    #[arg(long, default_value_t = 1000)]
    pub(crate) records: u64,
    /// Message encoding; `mixed` alternates JSON and protobuf and sets a `content-type` header.
    #[arg(long, value_enum, default_value_t = EncodingMode::Json)]
    pub(crate) encoding: EncodingMode,
    /// Records per second over all tables; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Generator seed: the same seed produces the same records.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Partitions of topics that do not exist yet (they are created with replication factor 1).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) partitions: i32,
    /// Make every Nth message of each topic malformed (for dead-letter tests); 0 = never.
    #[arg(long, default_value_t = 0)]
    pub(crate) bad_every: u64,
    /// Write `table,workspace_id,id` lines of every good record delivered to this file.
    #[arg(long)]
    pub(crate) ids_out: Option<PathBuf>,
}

/// A list of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tables(pub(crate) Vec<Table>);

fn parse_tables(s: &str) -> Result<Tables, String> {
    if s.trim() == "all" {
        return Ok(Tables(Table::ALL.to_vec()));
    }
    let mut tables = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let table: Table = name.parse().map_err(|e| format!("{e}"))?;
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    if tables.is_empty() {
        return Err("no tables given".into());
    }
    Ok(Tables(tables))
}

fn parse_skew(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(skew) if skew.is_finite() && (0.0..=10.0).contains(&skew) => Ok(skew),
        Ok(_) => Err("the skew must be between 0 (all workspaces equal) and 10".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse() {
        assert_eq!(parse_tables("all").map(|t| t.0.len()), Ok(15));
        assert_eq!(parse_tables("metrics, people,metrics"), Ok(Tables(vec![Table::Metrics, Table::People])));
        assert!(parse_tables("metric").is_err());
        assert!(parse_tables(",").is_err());
    }

    #[test]
    fn defaults_match_the_docs() {
        let args = Args::try_parse_from(["dwsync-loadgen"]).expect("defaults");
        assert_eq!(args.topic_prefix, "dwsync.source.");
        assert_eq!((args.workspaces, args.records, args.partitions, args.bad_every), (3, 1000, 4, 0));
        assert!(Args::try_parse_from(["dwsync-loadgen", "--workspaces", "0"]).is_err());
        assert_eq!(args.skew, DEFAULT_EXPONENT);
        assert_eq!(args.rate, 0.0);
    }

    #[test]
    fn skew_is_an_exponent() {
        let args = Args::try_parse_from(["dwsync-loadgen", "--skew", "0"]).expect("uniform");
        assert_eq!(args.skew, 0.0);
        assert!(Args::try_parse_from(["dwsync-loadgen", "--skew", "-1"]).is_err());
        assert!(Args::try_parse_from(["dwsync-loadgen", "--skew", "NaN"]).is_err());
        assert!(Args::try_parse_from(["dwsync-loadgen", "--skew", "many"]).is_err());
    }
}
