//! ingest and the uploader as processes, as an operator runs them: one TOML config file each,
//! JSON logs to a file, stopped with SIGTERM.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::scenario::{ModeText as _, Scenario};

/// The S3 server and credentials the uploader writes with.
#[derive(Debug, Clone)]
pub(crate) struct S3Target {
    /// Endpoint URL (path-style).
    pub(crate) endpoint: String,
    /// Access key id.
    pub(crate) access_key: String,
    /// Secret access key.
    pub(crate) secret_key: String,
}

/// Where an initial-sync scenario runs: the broker, S3, the binaries, its directory and names.
pub(crate) struct Place<'a> {
    /// Kafka bootstrap servers.
    pub(crate) bootstrap: &'a str,
    /// The S3 server.
    pub(crate) s3: &'a S3Target,
    /// Where the service binaries are.
    pub(crate) bin_dir: &'a Path,
    /// The run's directory (configurations, logs, spill directory).
    pub(crate) dir: PathBuf,
    /// Names of the run's topics and buckets start with it.
    pub(crate) run_id: &'a str,
    /// Keep the buckets.
    pub(crate) keep_objects: bool,
}

/// Names and settings of one end-to-end run.
#[derive(Debug, Clone)]
pub(crate) struct RunNames {
    /// Kafka bootstrap servers.
    pub(crate) bootstrap: String,
    /// Source topic prefix.
    pub(crate) topic_prefix: String,
    /// The handoff topic.
    pub(crate) handoff: String,
    /// The dead-letter topic.
    pub(crate) dead_letters: String,
    /// The uploader's lot topic.
    pub(crate) lot: String,
    /// Prefix of both consumer group ids.
    pub(crate) group_prefix: String,
    /// The bucket every workspace's destination writes to (each under its own prefix).
    pub(crate) bucket: String,
    /// Window length.
    pub(crate) window_ms: u64,
}

impl RunNames {
    /// The names of a run whose topics and groups start with `base` (`<base>.source.<table>`,
    /// `<base>.handoff`, ...), writing to `bucket`.
    pub(crate) fn under(bootstrap: &str, base: &str, bucket: String, window_ms: u64) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            topic_prefix: format!("{base}.source."),
            handoff: format!("{base}.handoff"),
            dead_letters: format!("{base}.dead-letters"),
            lot: format!("{base}.lot"),
            group_prefix: base.to_owned(),
            bucket,
            window_ms,
        }
    }

    /// The topics the services create or write beside the sources: handoff, dead letters, lot.
    pub(crate) fn service_topics(&self) -> [String; 3] {
        [self.handoff.clone(), self.dead_letters.clone(), self.lot.clone()]
    }
}

/// The destination prefix of a workspace inside the run's bucket.
pub(crate) fn workspace_prefix(workspace_id: i64) -> String {
    format!("ws{workspace_id}")
}

/// A free local TCP port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").context("cannot bind a local port")?.local_addr()?.port())
}

/// ingest's config file.
pub(crate) fn ingest_config(scenario: &Scenario, run: &RunNames, port: u16) -> String {
    let tables = scenario.tables.iter().map(|t| format!("\"{}\"", t.name())).collect::<Vec<_>>().join(", ");
    format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [ingest]\ngroup_id = \"{group}-ingest\"\ntopic_prefix = \"{prefix}\"\ntables = [{tables}]\n\
         encoding = \"{encoding}\"\nhandoff_topic = \"{handoff}\"\ndead_letter_topic = \"{dlq}\"\n\n\
         [window]\nduration_ms = {window}\n",
        bootstrap = run.bootstrap,
        group = run.group_prefix,
        prefix = run.topic_prefix,
        encoding = scenario.encoding.topic_encoding(),
        handoff = run.handoff,
        dlq = run.dead_letters,
        window = run.window_ms,
    )
}

/// The uploader's config file: static destinations, one per workspace; no control service, or
/// with `follow` (its `[sync_config.store]` keys) control's configurations followed as well.
pub(crate) fn uploader_config(
    scenario: &Scenario,
    run: &RunNames,
    s3: &S3Target,
    port: u16,
    follow: Option<&str>,
) -> String {
    // Followed destinations are customers' endpoints: the benchmark's S3 server is admitted.
    let sync_config = match follow {
        Some(store) => format!(
            "follow = true\n\n[sync_config.store]\n{store}\n{}",
            crate::backfill_large::egress_toml(&s3.endpoint)
        ),
        None => "follow = false\n".to_owned(),
    };
    let mut toml = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [telemetry]\nlog_format = \"json\"\n\n[handoff]\ntopic = \"{handoff}\"\ngroup_id = \"{group}-uploader\"\n\n\
         [lot]\ntopic = \"{lot}\"\n\n[sync_config]\n{sync_config}",
        bootstrap = run.bootstrap,
        handoff = run.handoff,
        group = run.group_prefix,
        lot = run.lot,
    );
    for workspace_id in dwsync_loadgen::Workspaces::zipf(scenario.workspaces, scenario.skew).ids() {
        let _ = write!(
            toml,
            "\n[[destinations]]\nworkspace_id = {workspace_id}\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n\
             region = \"us-east-1\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
             access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n",
            bucket = run.bucket,
            prefix = workspace_prefix(*workspace_id),
            endpoint = s3.endpoint,
            access = s3.access_key,
            secret = s3.secret_key,
        );
    }
    toml
}

/// A service process; killed if still running when dropped.
pub(crate) struct Service {
    name: &'static str,
    child: Child,
    port: u16,
    /// Its stdout and stderr.
    pub(crate) log: PathBuf,
}

impl Service {
    /// Writes `config` to `<dir>/<name>.toml` and starts `<bin_dir>/dwsync-<name> --config …`
    /// listening on a free port, logging to `<dir>/<name>.log`, with the run's `[kafka]` section
    /// in `DWSYNC_KAFKA__*` variables ([`crate::kafka::service_env`]) and then `env`.
    pub(crate) fn start(
        name: &'static str,
        bin_dir: &Path,
        dir: &Path,
        env: &[(String, String)],
        config: impl FnOnce(u16) -> String,
    ) -> anyhow::Result<Self> {
        let binary = bin_dir.join(format!("dwsync-{name}"));
        if !binary.exists() {
            bail!(
                "{} is missing: build it first (`cargo build --release -p dwsync-{name}`, or use dev/bench)",
                binary.display()
            );
        }
        let port = free_port()?;
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config(port))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let kafka = crate::kafka::service_env(crate::kafka::settings())?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            // The run's [kafka] section (TLS, SASL), then the run's own overrides.
            .envs(kafka)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self { name, child, port, log })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name (`ingest`, `uploader`).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Fails with the end of its log if the process has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("dwsync-{} exited ({status}); the end of {}:\n{}", self.name, self.log.display(), self.log_tail(25));
        }
        Ok(())
    }

    /// Waits until `/readyz` answers 200.
    pub(crate) fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.check_running()?;
            if http_status(self.port, "/readyz") == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("dwsync-{} was not ready within {within:?}:\n{}", self.name, self.log_tail(25));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    pub(crate) fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of the Prometheus metric `name` on its `/metrics` (its series summed), if it
    /// answers and has it.
    pub(crate) fn metric(&self, name: &str) -> Option<f64> {
        prometheus_value(&self.metrics_text()?, name)
    }

    /// Its `/metrics` text, if it answers.
    pub(crate) fn metrics_text(&self) -> Option<String> {
        http_get(self.port, "/metrics")
    }

    /// Samples the metric `name` on its `/metrics` every 200 ms on a thread of its own, until
    /// [`GaugeSampler::stop`] says the largest value seen.
    pub(crate) fn gauge_sampler(&self, name: &'static str) -> GaugeSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (port, stopped) = (self.port, Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut max = 0.0f64;
            while !stopped.load(Ordering::Relaxed) {
                if let Some(value) = http_get(port, "/metrics").and_then(|text| prometheus_value(&text, name)) {
                    max = max.max(value);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            max
        });
        GaugeSampler { stop, thread }
    }

    /// The last `n` lines of its log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A metric sampled on a thread ([`Service::gauge_sampler`]).
pub(crate) struct GaugeSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl GaugeSampler {
    /// Stops sampling; the largest value seen (0 if none).
    pub(crate) fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The status code of `GET <path>` on a local port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The body of a `200` answer to `GET <path>` on a local port (at most 16 MiB), if it answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    let _ = stream.take(16 << 20).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    (head.get(9..12) == Some("200")).then(|| body.to_owned())
}

/// The sum of the samples of metric `name` in Prometheus text (`name value` or
/// `name{labels} value` lines), `None` when it has none.
pub(crate) fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = prometheus_series(text, name).into_iter().map(|(_, v)| v).collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The samples of metric `name` in Prometheus text, each with its labels (`a="x",b="y"`, empty
/// for none).
pub(crate) fn prometheus_series<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, rest) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?,
                None => ("", rest),
            };
            rest.starts_with(' ').then(|| Some((labels, rest.split_whitespace().next()?.parse().ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunNames {
        RunNames {
            bootstrap: "127.0.0.1:9092".into(),
            topic_prefix: "b.src.".into(),
            handoff: "b.handoff".into(),
            dead_letters: "b.dlq".into(),
            lot: "b.lot".into(),
            group_prefix: "b".into(),
            bucket: "bench".into(),
            window_ms: 15_000,
        }
    }

    #[test]
    fn prometheus_values_are_summed_over_their_series() {
        let text = "# HELP a_total A.\na_total 3\na_total_more 9\nb{table=\"people\"} 2\nb{table=\"metrics\"} 5.5\n";
        assert_eq!(prometheus_value(text, "a_total"), Some(3.0));
        assert_eq!(prometheus_value(text, "b"), Some(7.5));
        assert_eq!(prometheus_value(text, "c"), None);
        assert_eq!(prometheus_series(text, "b"), [("table=\"people\"", 2.0), ("table=\"metrics\"", 5.5)]);
        assert_eq!(prometheus_series(text, "a_total"), [("", 3.0)]);
    }

    #[test]
    fn configs_name_every_table_and_workspace() {
        let scenario = Scenario::named("workspaces-10k", true, 1.0).expect("scenario");
        let ingest = ingest_config(&scenario, &run(), 1234);
        assert!(ingest.contains("tables = [\"deliveries\", \"metrics\", \"people\", \"events\"]"), "{ingest}");
        assert!(ingest.contains("duration_ms = 15000"));
        let s3 = S3Target { endpoint: "http://127.0.0.1:9000".into(), access_key: "a".into(), secret_key: "s".into() };
        let uploader = uploader_config(&scenario, &run(), &s3, 1235, None);
        assert_eq!(uploader.matches("[[destinations]]").count(), scenario.workspaces);
        assert!(uploader.contains("follow = false") && uploader.contains("prefix = \"ws1001\""));
    }
}
