//! What `/proc` says about a running service: CPU time (user + system, all threads) and peak
//! resident memory (`VmHWM`).

use std::process::Command;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU seconds (utime + stime) a `/proc/<pid>/stat` line reports.
pub(crate) fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// A `kB` field (`VmHWM`, `VmRSS`) of a `/proc/<pid>/status` text, in bytes.
pub(crate) fn parse_status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds the process `pid` has used so far; `None` once it is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The peak resident set size of `pid` so far, in bytes; `None` once it is gone.
pub(crate) fn peak_rss_bytes(pid: u32) -> Option<u64> {
    parse_status_bytes(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmHWM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_lines() {
        let stat = "4242 (dwsync (ingest)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        let secs = parse_cpu_seconds(stat).expect("parsed");
        assert!((secs - 300.0 / ticks_per_second()).abs() < 1e-9, "{secs}");
        let status = "Name:\tdwsync-ingest\nVmHWMx:\t1 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status_bytes(status, "VmHWM"), Some(200 << 20));
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(100 << 20));
        assert_eq!(parse_status_bytes(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(peak_rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
