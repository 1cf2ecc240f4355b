//! What `/proc` says about a running service: CPU time (user + system, all threads) and peak
//! resident memory (`VmHWM`); and the whole machine's busy CPU time (`/proc/stat`).

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

/// The busy CPU seconds of a `/proc/stat` text's `cpu` line (all CPUs together): user, nice,
/// system, irq and softirq. Guest time is already inside user; idle, iowait and steal (time the
/// hypervisor gave to other machines) are not work done here.
pub(crate) fn parse_machine_busy_secs(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<f64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = fields[..] else {
        return None;
    };
    Some((user + nice + system + irq + softirq) / ticks_per_second())
}

/// The machine's busy CPU seconds so far, every process and every CPU together.
pub(crate) fn machine_busy_secs() -> Option<f64> {
    parse_machine_busy_secs(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Whether a `/proc/<pid>/cmdline` (arguments separated by NULs) runs `program` (its first
/// argument's file name) or has `program` as an argument (a JVM's main class).
pub(crate) fn cmdline_runs(cmdline: &[u8], program: &str) -> bool {
    let mut args = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty());
    let Some(first) = args.next() else { return false };
    let name = first.rsplit(|&b| b == b'/').next().unwrap_or(first);
    name == program.as_bytes() || args.any(|a| a == program.as_bytes())
}

/// Whether one argument of a `/proc/<pid>/cmdline` contains `text`.
pub(crate) fn cmdline_mentions(cmdline: &[u8], text: &str) -> bool {
    cmdline.split(|&b| b == 0).any(|a| a.windows(text.len().max(1)).any(|w| w == text.as_bytes()))
}

/// The first process on this machine running `program` (see [`cmdline_runs`]), e.g. the local
/// Kafka broker (`kafka.Kafka`) or S3 server (`s3s-fs`), and with `mentioning` given, one of
/// whose arguments contains it (several brokers on one machine: the one whose config file is
/// under a given directory); `None` when there is none.
pub(crate) fn pid_running(program: &str, mentioning: Option<&str>) -> Option<u32> {
    let mut pids: Vec<u32> =
        std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| cmdline_runs(&c, program) && mentioning.is_none_or(|m| cmdline_mentions(&c, m)))
    })
}

/// The resident set size of `pid` now (`VmRSS`), in bytes; `None` once it is gone.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    parse_status_bytes(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmRSS")
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
    fn the_machine_line_counts_work_not_idle_or_steal() {
        let stat = "cpu  1000 10 200 5000 70 5 15 900 0 0\ncpu0 500 5 100 2500 35 2 7 450 0 0\nintr 1 2 3\n";
        let secs = parse_machine_busy_secs(stat).expect("parsed");
        assert!((secs - 1230.0 / ticks_per_second()).abs() < 1e-9, "{secs}");
        assert_eq!(parse_machine_busy_secs("cpu0 1 2 3 4 5 6 7\n"), None, "no all-CPU line");
        assert_eq!(parse_machine_busy_secs("cpu  1 2 3\n"), None, "too few fields");
        assert!(machine_busy_secs().is_some_and(|s| s > 0.0));
    }

    #[test]
    fn programs_by_name_or_main_class() {
        let broker = b"java\0-Xmx1g\0-cp\0/opt/kafka/libs/*\0kafka.Kafka\0/etc/server.properties\0";
        assert!(cmdline_runs(broker, "kafka.Kafka"));
        assert!(!cmdline_runs(broker, "s3s-fs"));
        let s3 = b"/root/.cache/s3s-fs-0.14.1/bin/s3s-fs\0--port\09000\0";
        assert!(cmdline_runs(s3, "s3s-fs"));
        assert!(!cmdline_runs(b"/usr/bin/tail\0-f\0/var/log/s3s-fs.log\0", "s3s-fs"), "a mere mention");
        assert!(!cmdline_runs(b"", "s3s-fs"), "a kernel thread");
        assert_eq!(pid_running("dwsync-no-such-program", None), None);
        assert!(cmdline_mentions(broker, "/etc/server.prop") && !cmdline_mentions(broker, "/work/wt/"));
        assert!(cmdline_mentions(s3, "9000") && !cmdline_mentions(s3, "9200"));
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(peak_rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
