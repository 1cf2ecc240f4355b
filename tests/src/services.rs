//! Runs dwsync's service binaries as processes, as an operator would: start with a config file,
//! stop with SIGTERM, or kill with SIGKILL (`kill -9`) to test crashes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The path of a workspace binary (`dwsync-ingest`, ...) next to the running test's target dir.
///
/// `cargo test --workspace` builds them (their packages have integration tests).
pub fn service_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build it first (`cargo build -p {name}`) or run `dev/test`", path.display());
    path
}

/// A running service process; killed when dropped.
pub struct ServiceProcess {
    name: String,
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary --config <config>` with extra environment, logging to `<log_dir>/<name>.log`.
    pub fn start(binary: &str, name: &str, config: &Path, env: &[(&str, String)], log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::options().create(true).append(true).open(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(service_binary(binary));
        let _ = cmd.arg("--config").arg(config).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, v) in env {
            let _ = cmd.env(k, v);
        }
        if std::env::var_os("RUST_LOG").is_none() && !env.iter().any(|(k, _)| *k == "RUST_LOG") {
            let _ = cmd.env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn");
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {binary}: {e}"));
        Self { name: name.to_owned(), child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM` = peak RSS), if the process lives.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// `kill -9`: the process dies at once, with whatever it had in flight.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a graceful exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.kill9();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's name in this test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
