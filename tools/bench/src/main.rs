//! `dwsync-bench`: dwsync end to end next to its physical ceilings, on the same machine and
//! the same pre-loaded topics (docs/PERFORMANCE.md).
//!
//! For each scenario: pre-load the records into fresh topics, then
//! 1. the raw consume ceiling (librdkafka reading them to nowhere; `kcat` too when installed),
//! 2. the Parquet encode ceiling (the same records decoded and encoded in memory, one core),
//!    and both in one loop (consume, decode and encode on one thread),
//! 3. dwsync end to end (ingest + uploader as processes, until every record is in S3),
//! 4. the ratio of 3 to 1.
//!
//! ```sh
//! dev/bench                      # release build, every scenario, full size
//! dev/bench --smoke              # tiny sizes, debug build, well under a minute
//! ```

mod archiver_backlog;
mod args;
mod backfill_large;
mod backfill_live;
mod ceiling;
mod consume_encode;
mod cpu_bound;
mod encode_ceiling;
mod end_to_end;
mod handoff_files;
mod kafka;
mod machine_cpu;
mod perf;
mod preload;
mod procstat;
mod record_ids;
mod report;
mod s3;
mod s3_ceiling;
mod scenario;
mod services;
mod soak;
mod syncs_1000;
mod upload_log;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser as _;

use crate::args::Args;
use crate::report::{Machine, Report, ScenarioReport, TableInput};
use crate::scenario::Scenario;
use crate::services::{RunNames, S3Target};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let kafka = args.load_kafka().context("cannot load the [kafka] section")?;
    kafka::init(kafka);
    let names: Vec<String> = if args.scenario.is_empty() {
        scenario::NAMES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scenario
            .iter()
            .filter(|s| {
                ![backfill_large::NAME, syncs_1000::NAME, backfill_live::NAME, archiver_backlog::NAME, soak::NAME]
                    .contains(&s.as_str())
            })
            .cloned()
            .collect()
    };
    let backfill = args.scenario.iter().any(|s| s == backfill_large::NAME);
    let syncs = args.scenario.iter().any(|s| s == syncs_1000::NAME);
    let live = args.scenario.iter().any(|s| s == backfill_live::NAME);
    let backlog = args.scenario.iter().any(|s| s == archiver_backlog::NAME);
    let soaked = args.scenario.iter().any(|s| s == soak::NAME);
    let scenarios: Vec<Scenario> = names.iter().map(|n| args.scenario(n)).collect::<anyhow::Result<_>>()?;
    let run_id = format!("bench-{}-{}", chrono::Utc::now().format("%Y%m%dt%H%M%S"), std::process::id());
    let work_dir = args.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("dwsync-{run_id}")));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("cannot locate this binary")?
            .parent()
            .map(PathBuf::from)
            .context("this binary has no directory")?,
    };
    let machine = Machine::detect();
    println!(
        "dwsync-bench {run_id}: {} scenario(s){}, {} build on {} CPUs ({}); services from {}; logs in {}",
        scenarios.len(),
        if args.smoke { " at smoke size" } else { "" },
        machine.build,
        machine.cpus,
        machine.cpu_model,
        bin_dir.display(),
        work_dir.display()
    );
    println!("Kafka at {} ({})", args.bootstrap, kafka::settings().security_summary());
    let service_env: Vec<String> =
        [("consumers", &args.consumer_prop), ("ingest", &args.ingest_env), ("uploader", &args.uploader_env)]
            .iter()
            .flat_map(|(service, env)| env.iter().map(move |(k, v)| format!("{service}:{k}={v}")))
            .collect();
    let mut report = Report {
        machine,
        smoke: args.smoke,
        service_env,
        scenarios: Vec::new(),
        backfill: None,
        syncs: None,
        backfill_live: None,
        archiver_backlog: None,
        soak: None,
    };
    let target = S3Target {
        endpoint: args.s3_endpoint.clone(),
        access_key: args.s3_access_key.clone(),
        secret_key: args.s3_secret_key.clone(),
    };
    let place = |name: &str| services::Place {
        bootstrap: &args.bootstrap,
        s3: &target,
        bin_dir: &bin_dir,
        dir: work_dir.join(name),
        run_id: &run_id,
        keep_objects: args.keep_objects,
    };
    if backfill {
        let measured =
            backfill_large::run(place(backfill_large::NAME), backfill_large::Size::of(args.smoke, args.scale))
                .await
                .with_context(|| format!("scenario {} failed", backfill_large::NAME))?;
        println!("{}", measured.render());
        report.backfill = Some(measured);
    }
    if syncs {
        let setup = syncs_1000::Setup { at: place(syncs_1000::NAME), backfill_env: &args.backfill_env };
        let measured = syncs_1000::run(setup, syncs_1000::workspaces(args.smoke, args.scale))
            .await
            .with_context(|| format!("scenario {} failed", syncs_1000::NAME))?;
        println!("{}", measured.render());
        report.syncs = Some(measured);
    }
    if live {
        let setup = backfill_live::Setup {
            at: place(backfill_live::NAME),
            env: [&args.ingest_env, &args.uploader_env, &args.backfill_env],
        };
        let plan = backfill_live::Plan::of(args.smoke, args.scale, args.live_rate, args.window_ms, args.seed);
        let measured = backfill_live::run(setup, plan)
            .await
            .with_context(|| format!("scenario {} failed", backfill_live::NAME))?;
        println!("{}", measured.render());
        report.backfill_live = Some(measured);
    }
    if backlog {
        let plan = archiver_backlog::Plan::of(args.smoke, args.scale);
        let measured = archiver_backlog::run(place(archiver_backlog::NAME), plan, args.seed)
            .await
            .with_context(|| format!("scenario {} failed", archiver_backlog::NAME))?;
        println!("{}", measured.render());
        report.archiver_backlog = Some(measured);
    }
    if soaked {
        let plan = soak::Plan::of(soak::Ask {
            smoke: args.smoke,
            stream_secs: args.stream_secs,
            rate: args.soak_rate,
            partitions: args.partitions,
            window_ms: args.window_ms,
        });
        let setup = soak::Setup {
            at: place(soak::NAME),
            env: [&args.ingest_env, &args.uploader_env],
            seed: args.seed,
            perf: args.perf,
            keep_topics: args.keep_topics,
        };
        let measured = soak::run(setup, plan).await.with_context(|| format!("scenario {} failed", soak::NAME))?;
        println!("{}", measured.render());
        report.soak = Some(measured);
    }
    for s in &scenarios {
        let r = run_scenario(&args, s, &run_id, &bin_dir, &work_dir)
            .await
            .with_context(|| format!("scenario {} failed", s.name))?;
        println!("{}", r.render());
        report.scenarios.push(r);
    }
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Deletes a run's source and service topics, unless `--keep-topics`; a failure is only reported.
async fn drop_topics(args: &Args, s: &Scenario, sources: &[String], services: &[String]) {
    if args.keep_topics {
        return;
    }
    kafka::delete_run_topics(&args.bootstrap, sources, services, s.name).await;
}

/// The topics, groups and bucket of one end-to-end run, named after `base`.
fn run_names(args: &Args, s: &Scenario, base: &str, bucket: String) -> RunNames {
    RunNames::under(&args.bootstrap, base, bucket, s.window_ms)
}

/// Pre-loads one scenario and measures the four rows.
async fn run_scenario(
    args: &Args,
    s: &Scenario,
    run_id: &str,
    bin_dir: &std::path::Path,
    work_dir: &std::path::Path,
) -> anyhow::Result<ScenarioReport> {
    let base = format!("{run_id}.{}", s.name);
    let names = run_names(args, s, &base, format!("{run_id}-{}", s.name));
    eprintln!("[{}] pre-loading {} ...", s.name, s.describe());
    let loaded = preload::preload(s, &args.bootstrap, &names.topic_prefix, s.partitions, args.seed).await?;
    eprintln!("[{}] pre-loaded in {:.1} s; 1: raw consume ...", s.name, loaded.secs);
    let mut reads = Vec::new();
    let neighbours = machine_cpu::Neighbours::find(&args.bootstrap, &args.s3_endpoint);
    for i in 0..args.raw_reads() {
        let group = format!("{base}.raw{i}");
        reads.push(ceiling::raw_consume(&args.bootstrap, &loaded, &group, &args.consumer_prop, &neighbours)?);
    }
    let raw = ceiling::fastest(&reads).context("row 1 needs at least one read")?;
    // kcat 1.7 (librdkafka 2.0) cannot log in with SCRAM to a Kafka 4 broker: plaintext only.
    let kcat = if args.no_kcat || kafka::settings().security_protocol != dwsync_config::SecurityProtocol::Plaintext {
        None
    } else {
        ceiling::kcat(&args.bootstrap, &loaded, &format!("{base}.kcat")).unwrap_or_else(|e| {
            eprintln!("[{}] kcat row skipped: {e:#}", s.name);
            None
        })
    };
    eprintln!("[{}] 2: Parquet encode ...", s.name);
    let encode = encode_ceiling::run(s, args.seed)?;
    eprintln!("[{}] 1+2: consume + encode in one loop ...", s.name);
    let consume_encode =
        consume_encode::run(s, &args.bootstrap, &loaded, &format!("{base}.consume-encode"), &args.consumer_prop)?;
    eprintln!("[{}] 3: end to end (window {} ms) ...", s.name, names.window_ms);
    let target = S3Target {
        endpoint: args.s3_endpoint.clone(),
        access_key: args.s3_access_key.clone(),
        secret_key: args.s3_secret_key.clone(),
    };
    let topics = names.service_topics();
    let e2e = end_to_end::run(end_to_end::Setup {
        scenario: s,
        loaded: &loaded,
        names,
        s3: &target,
        bin_dir,
        dir: work_dir.join(s.name),
        perf: args.perf,
        env: [&args.ingest_env, &args.uploader_env],
        keep_objects: args.keep_objects,
        feed: None,
        watch: None,
    })
    .await;
    drop_topics(args, s, &loaded.topics, &topics).await;
    let e2e = e2e?;
    let stream = if args.stream_secs > 0 {
        Some(run_stream(args, s, &loaded, &target, run_id, bin_dir, work_dir).await?)
    } else {
        None
    };
    let input: BTreeMap<String, TableInput> = loaded
        .per_table
        .iter()
        .map(|(t, (records, bytes))| {
            ((*t).to_owned(), TableInput { records: *records, avg_bytes: bytes / (*records).max(1) })
        })
        .collect();
    let ratio = e2e.throughput.records_per_sec / raw.read.records_per_sec.max(1e-9);
    let cpu_bound = cpu_bound::CpuBound::of(
        &raw,
        &encode.throughput,
        e2e.throughput.records_per_sec,
        e2e.machine_cpu_per_million.machine,
        Machine::cpus(),
    );
    let with_join = raw.read.secs + raw.join_secs;
    let ratio_with_join = e2e.throughput.records_per_sec * with_join / (raw.read.records as f64).max(1e-9);
    Ok(ScenarioReport {
        scenario: s.clone(),
        input,
        preload: report::Throughput::new(loaded.records, loaded.bytes, loaded.secs),
        raw_consume: raw.read,
        raw_consume_join_secs: raw.join_secs,
        raw_consume_reads: reads.iter().map(|r| r.read.records_per_sec).collect(),
        raw_consume_cpu: raw.cpu,
        kcat,
        encode,
        consume_encode,
        end_to_end: e2e,
        ratio,
        ratio_with_join,
        cpu_bound,
        stream,
    })
}

/// Row 3 again on a steady stream: the pre-load's records produced at an even pace over
/// `--stream-secs` into fresh, empty topics while ingest and the uploader run.
async fn run_stream(
    args: &Args,
    s: &Scenario,
    loaded: &preload::Loaded,
    target: &S3Target,
    run_id: &str,
    bin_dir: &std::path::Path,
    work_dir: &std::path::Path,
) -> anyhow::Result<report::Stream> {
    let base = format!("{run_id}.{}.stream", s.name);
    let names = run_names(args, s, &base, format!("{run_id}-{}-stream", s.name));
    let over = std::time::Duration::from_secs(args.stream_secs);
    eprintln!(
        "[{}] 3s: end to end on a steady stream ({} records over {} s) ...",
        s.name,
        scenario::thousands(loaded.records),
        args.stream_secs
    );
    let stream = preload::Loaded { topics: preload::topic_names(s, &names.topic_prefix), ..loaded.clone() };
    kafka::create_topics(&args.bootstrap, &stream.topics, s.partitions).await?;
    let topics = names.service_topics();
    let run = end_to_end::run(end_to_end::Setup {
        scenario: s,
        loaded: &stream,
        names,
        s3: target,
        bin_dir,
        dir: work_dir.join(format!("{}-stream", s.name)),
        perf: args.perf,
        env: [&args.ingest_env, &args.uploader_env],
        keep_objects: args.keep_objects,
        feed: Some(end_to_end::Feed { over, seed: args.seed }),
        watch: None,
    })
    .await;
    drop_topics(args, s, &stream.topics, &topics).await;
    Ok(report::Stream {
        secs: over.as_secs_f64(),
        offered_records_per_sec: loaded.records as f64 / over.as_secs_f64(),
        run: run?,
    })
}
