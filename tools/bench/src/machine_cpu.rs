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
            s3_server: plus(self.s3_server, other.s3_server),
        }
    }
}

impl MachineCpu {
    /// No CPU time, every part known (the start of a sum).
    pub(crate) const ZERO: Self = Self { machine: 0.0, broker: Some(0.0), s3_server: Some(0.0) };

    /// The same per million of `records`.
    pub(crate) fn per_million(self, records: u64) -> Self {
        let k = 1e6 / records.max(1) as f64;
        Self { machine: self.machine * k, broker: self.broker.map(|b| b * k), s3_server: self.s3_server.map(|s| s * k) }
    }
}

/// The processes [`MachineCpu`] follows, found once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neighbours {
    broker: Option<u32>,
    s3_server: Option<u32>,
}

impl Neighbours {
    /// The broker (`kafka.Kafka`, as `dev/kafka` runs it) and the S3 server (`s3s-fs`, as
    /// `dev/s3` runs it) on this machine, those that are. With several on the machine, the
    /// variables `dev/kafka` and `dev/s3` were started with pick them: `DWSYNC_RUN` (the broker
    /// whose config is under `$DWSYNC_RUN/kafka/`) and `S3_PORT` (the server on that port).
    pub(crate) fn find() -> Self {
        let run = std::env::var("DWSYNC_RUN").ok().map(|dir| format!("{}/kafka/", dir.trim_end_matches('/')));
        let s3_port = std::env::var("S3_PORT").ok();
        Self {
            broker: procstat::pid_running("kafka.Kafka", run.as_deref()),
            s3_server: procstat::pid_running("s3s-fs", s3_port.as_deref()),
        }
    }

    /// CPU time so far; a part whose process is unknown or gone is `None`.
    pub(crate) fn sample(&self) -> MachineCpu {
        MachineCpu {
            machine: procstat::machine_busy_secs().unwrap_or(0.0),
            broker: self.broker.and_then(procstat::cpu_seconds),
            s3_server: self.s3_server.and_then(procstat::cpu_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_sums_keep_unknown_parts_unknown() {
        let a = MachineCpu { machine: 10.0, broker: Some(4.0), s3_server: None };
        let b = MachineCpu { machine: 12.5, broker: Some(4.5), s3_server: Some(1.0) };
        let d = b - a;
        assert_eq!(d, MachineCpu { machine: 2.5, broker: Some(0.5), s3_server: None });
        let sum = MachineCpu::ZERO + d + d;
        assert_eq!(sum, MachineCpu { machine: 5.0, broker: Some(1.0), s3_server: None });
        assert_eq!(d.per_million(500_000), MachineCpu { machine: 5.0, broker: Some(1.0), s3_server: None });
    }

    #[test]
    fn this_machine_is_sampled() {
        let n = Neighbours::find();
        let (a, b) = (n.sample(), n.sample());
        assert!(a.machine > 0.0 && b.machine >= a.machine, "{a:?} {b:?}");
    }
}
