//! Optional `perf` profiles of the services during the end-to-end run: `perf record` attached
//! to each process, then a flat `perf report` of the top symbols.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Symbols above this share of the samples are reported.
const PERCENT_LIMIT: &str = "2";

/// A running `perf record`.
pub(crate) struct Profiler {
    child: Child,
    data: PathBuf,
}

impl Profiler {
    /// Starts sampling `pid` into `<dir>/<name>.perf.data`; `None` when `perf` cannot run.
    pub(crate) fn start(pid: u32, dir: &Path, name: &str) -> Option<Self> {
        let data = dir.join(format!("{name}.perf.data"));
        let child = Command::new("perf")
            // DWARF call graphs (the release build keeps line tables, not frame pointers), so
            // `perf report -G -i <file>` shows who calls the top symbols.
            .args(["record", "-q", "-F", "499", "--call-graph", "dwarf,8192", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, data })
    }

    /// Stops sampling (SIGINT, as perf expects) and returns the top symbols.
    pub(crate) fn finish(mut self) -> Vec<String> {
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Ok(output) = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "dso,symbol",
                "--percent-limit",
                PERCENT_LIMIT,
                "-i",
            ])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
        else {
            return vec!["perf report failed to run".into()];
        };
        top_symbols(&String::from_utf8_lossy(&output.stdout))
    }
}

/// The sample lines of a `perf report --stdio` text, symbols shortened.
fn top_symbols(report: &str) -> Vec<String> {
    report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            // Columns perf leaves empty print as "-".
            let short: String = l.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(" -").to_owned();
            if short.chars().count() > 140 { short.chars().take(140).collect::<String>() + "…" } else { short }
        })
        .take(15)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_are_kept_comments_dropped() {
        let text =
            "# Samples: 1K\n#\n    12.50%  dwsync-ingest  [.] zstd::compress\n\n     3.10%  libc.so.6  [.] memcpy\n";
        assert_eq!(top_symbols(text), ["12.50% dwsync-ingest [.] zstd::compress", "3.10% libc.so.6 [.] memcpy"]);
    }
}
