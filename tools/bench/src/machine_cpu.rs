//! The CPU time of the whole machine and of the two servers beside dwsync on it — the Kafka
//! broker and the S3 server — so a row can say what it cost the machine, not only its own
//! process.

use std::ops::{Add, Sub};

use serde::Serialize;

use crate::procstat;

/// CPU seconds: the whole machine's busy time and that of the local broker and S3 server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct MachineCpu {
    /// Every process on every CPU (`/proc/stat`).
    pub(crate) machine: f64,
    /// The Kafka broker's process, when it runs on this machine.
    pub(crate) broker: Option<f64>,
    /// Of `broker`: its JVM's JIT compiler threads (the broker's warm-up: high right after a
    /// start, and on code paths it has not run yet).
    pub(crate) broker_jit: Option<f64>,
    /// Of `broker`: its JVM's garbage collector.
    pub(crate) broker_gc: Option<f64>,
    /// The S3 server's process, when it runs on this machine.
    pub(crate) s3_server: Option<f64>,
}

impl Sub for MachineCpu {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        let minus = |a: Option<f64>, b: Option<f64>| Some((a? - b?).max(0.0));
        Self {
            machine: (self.machine - earlier.machine).max(0.0),
            broker: minus(self.broker, earlier.broker),
            broker_jit: minus(self.broker_jit, earlier.broker_jit),
            broker_gc: minus(self.broker_gc, earlier.broker_gc),
            s3_server: minus(self.s3_server, earlier.s3_server),
        }
    }
}

impl Add for MachineCpu {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        let plus = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        Self {
            machine: self.machine + other.machine,
            broker: plus(self.broker, other.broker),
            broker_jit: plus(self.broker_jit, other.broker_jit),
            broker_gc: plus(self.broker_gc, other.broker_gc),
            s3_server: plus(self.s3_server, other.s3_server),
        }
    }
}

impl MachineCpu {
    /// No CPU time, every part known (the start of a sum).
    pub(crate) const ZERO: Self =
        Self { machine: 0.0, broker: Some(0.0), broker_jit: Some(0.0), broker_gc: Some(0.0), s3_server: Some(0.0) };

    /// The same per million of `records`.
    pub(crate) fn per_million(self, records: u64) -> Self {
        let k = 1e6 / records.max(1) as f64;
        Self {
            machine: self.machine * k,
            broker: self.broker.map(|b| b * k),
            broker_jit: self.broker_jit.map(|b| b * k),
            broker_gc: self.broker_gc.map(|b| b * k),
            s3_server: self.s3_server.map(|s| s * k),
        }
    }
}

/// The processes [`MachineCpu`] follows, found once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neighbours {
    broker: Option<u32>,
    s3_server: Option<u32>,
}

impl Neighbours {
    /// The broker at `bootstrap` and the S3 server at `s3_endpoint`, those that run on this
    /// machine: the process listening on the address's port (another engineer's broker or
    /// server on the default ports is not them), else the first running `kafka.Kafka` (as
    /// `dev/kafka` runs it) or `s3s-fs` (as `dev/s3` runs it).
    pub(crate) fn find(bootstrap: &str, s3_endpoint: &str) -> Self {
        let local = |address: &str, program: &str| {
            procstat::local_port(address).and_then(procstat::pid_listening).or_else(|| procstat::pid_running(program))
        };
        Self { broker: local(bootstrap, "kafka.Kafka"), s3_server: local(s3_endpoint, "s3s-fs") }
    }

    /// CPU time so far; a part whose process is unknown or gone is `None`.
    pub(crate) fn sample(&self) -> MachineCpu {
        let jvm = self.broker.and_then(procstat::jvm_jit_gc_seconds);
        MachineCpu {
            machine: procstat::machine_busy_secs().unwrap_or(0.0),
            broker: self.broker.and_then(procstat::cpu_seconds),
            broker_jit: jvm.map(|(jit, _)| jit),
            broker_gc: jvm.map(|(_, gc)| gc),
            s3_server: self.s3_server.and_then(procstat::cpu_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_sums_keep_unknown_parts_unknown() {
        let cpu = |machine, broker, s3_server| MachineCpu {
            machine,
            broker,
            broker_jit: broker.map(|b| b / 2.0),
            broker_gc: None,
            s3_server,
        };
        let (a, b) = (cpu(10.0, Some(4.0), None), cpu(12.5, Some(4.5), Some(1.0)));
        let d = b - a;
        assert_eq!(
            d,
            MachineCpu { machine: 2.5, broker: Some(0.5), broker_jit: Some(0.25), broker_gc: None, s3_server: None }
        );
        let sum = MachineCpu::ZERO + d + d;
        assert_eq!(sum, cpu(5.0, Some(1.0), None));
        assert_eq!(d.per_million(500_000), cpu(5.0, Some(1.0), None));
    }

    #[test]
    fn this_machine_is_sampled() {
        let n = Neighbours::find("127.0.0.1:1", "http://127.0.0.1:1");
        let (a, b) = (n.sample(), n.sample());
        assert!(a.machine > 0.0 && b.machine >= a.machine, "{a:?} {b:?}");
    }
}
