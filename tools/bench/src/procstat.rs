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

/// The first process on this machine running `program` (see [`cmdline_runs`]), e.g. the local
/// Kafka broker (`kafka.Kafka`) or S3 server (`s3s-fs`); `None` when there is none.
pub(crate) fn pid_running(program: &str) -> Option<u32> {
    let mut pids: Vec<u32> =
        std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| cmdline_runs(&c, program)))
}

/// The resident set size of `pid` now (`VmRSS`), in bytes; `None` once it is gone.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    parse_status_bytes(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmRSS")
}

/// What a JVM thread does, by its name (`/proc/<pid>/task/<tid>/stat`'s command, cut to 15
/// bytes by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JvmThread {
    /// The JIT compilers (`C1 CompilerThread0`, `C2 CompilerThread1`).
    Jit,
    /// The garbage collector (`GC Thread#0`, `G1 Conc#0`, `G1 Refine#0`, `G1 Main Marker`,
    /// `G1 Service`) and the VM thread that runs its pauses.
    Gc,
    /// Everything else: the application's own work.
    Other,
}

impl JvmThread {
    /// The kind of the thread called `name`.
    pub(crate) fn of(name: &str) -> Self {
        if name.starts_with("C1 Compiler") || name.starts_with("C2 Compiler") {
            Self::Jit
        } else if name.starts_with("GC Thread") || name.starts_with("G1 ") || name == "VM Thread" {
            Self::Gc
        } else {
            Self::Other
        }
    }
}

/// CPU seconds so far of the JIT compiler threads and of the garbage collector's threads of the
/// JVM `pid` (threads that ended are not counted: the compilers' come and go, so read the JIT
/// part as a floor); `None` once it is gone.
pub(crate) fn jvm_jit_gc_seconds(pid: u32) -> Option<(f64, f64)> {
    let (mut jit, mut gc) = (0.0, 0.0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let name = stat.find('(').zip(stat.rfind(')')).map_or("", |(a, b)| &stat[a + 1..b]);
        match JvmThread::of(name) {
            JvmThread::Jit => jit += parse_cpu_seconds(&stat).unwrap_or(0.0),
            JvmThread::Gc => gc += parse_cpu_seconds(&stat).unwrap_or(0.0),
            JvmThread::Other => {}
        }
    }
    Some((jit, gc))
}

/// The inodes of the TCP sockets listening on `port` in a `/proc/net/tcp` or `tcp6` text.
pub(crate) fn parse_listening_inodes(net_tcp: &str, port: u16) -> Vec<u64> {
    net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is `ADDR:PORT` in hex, st `0A` is LISTEN, the inode is field 10.
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *fields.get(3)? == "0A").then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

/// The process listening on TCP `port` of this machine (found through the socket's inode among
/// the processes' open files); `None` when there is none or it belongs to another user.
pub(crate) fn pid_listening(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        inodes.extend(parse_listening_inodes(&std::fs::read_to_string(table).unwrap_or_default(), port));
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    if wanted.is_empty() {
        return None;
    }
    let mut pids: Vec<u32> =
        std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok).any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
            })
        })
    })
}

/// The port of the first `host:port` of a bootstrap list or an `http://host:port/...` endpoint
/// whose host is this machine (`127.0.0.1`, `localhost`, `[::1]`); `None` for a remote one.
pub(crate) fn local_port(address: &str) -> Option<u16> {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split([',', '/']).next()?;
    let (host, port) = authority.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then(|| port.parse().ok())?
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
    fn jvm_threads_by_name() {
        assert_eq!(JvmThread::of("C2 CompilerThre"), JvmThread::Jit);
        assert_eq!(JvmThread::of("C1 CompilerThre"), JvmThread::Jit);
        for gc in ["GC Thread#1", "G1 Conc#0", "G1 Refine#0", "G1 Main Marker", "VM Thread"] {
            assert_eq!(JvmThread::of(gc), JvmThread::Gc, "{gc}");
        }
        for other in ["data-plane-kafk", "kafka-1-raft-io", "VM Periodic Tas", "java"] {
            assert_eq!(JvmThread::of(other), JvmThread::Other, "{other}");
        }
        let me = std::process::id();
        assert_eq!(jvm_jit_gc_seconds(me), Some((0.0, 0.0)), "no JVM threads in the test");
    }

    #[test]
    fn listening_sockets_and_local_ports() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 0100007F:23F0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n\
                   1: 0100007F:23F0 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n\
                   2: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1\n";
        assert_eq!(parse_listening_inodes(tcp, 9200), vec![4242], "listening only, not the connection");
        assert_eq!(parse_listening_inodes(tcp, 9092), vec![4444]);
        assert!(parse_listening_inodes(tcp, 9000).is_empty());
        assert_eq!(local_port("127.0.0.1:9192"), Some(9192));
        assert_eq!(local_port("localhost:9092,127.0.0.1:9093"), Some(9092));
        assert_eq!(local_port("http://127.0.0.1:9100"), Some(9100));
        assert_eq!(local_port("http://127.0.0.1:9100/bucket"), Some(9100));
        assert_eq!(local_port("b-1.kafka.example.com:9096"), None);
        assert_eq!(local_port("https://s3.amazonaws.com"), None);
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
        assert_eq!(pid_running("dwsync-no-such-program"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(peak_rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
