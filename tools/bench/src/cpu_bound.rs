//! Row 6, the machine's CPU bound: how fast any pipeline could go here that reads the records as
//! row 1 does and decodes and encodes them as row 2 does, doing nothing else — no handoff, no
//! transactions, no upload, no S3 server — with every CPU of the machine busy.
//!
//! Row 1 costs the whole machine's busy CPU time over its read (the consumer and the broker
//! serving it, from `/proc/stat`); row 2 runs on one thread, so its busy time is its CPU time.
//! End to end has to do both for every record, on the same CPUs the broker and the S3 server
//! use, so `CPUs ÷ (row 1's + row 2's CPU per record)` caps row 3, and that cap over row 1 caps
//! row 4 on this machine.

use serde::Serialize;

use crate::ceiling::RawConsume;
use crate::report::Throughput;

/// Row 6 and the CPU costs it comes from, in CPU seconds per million records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct CpuBound {
    /// Row 1's read, whole machine (the consumer and the broker).
    pub(crate) read_cpu_secs_per_million: f64,
    /// Row 2's decode + Arrow + Parquet, its one thread.
    pub(crate) encode_cpu_secs_per_million: f64,
    /// Row 3, whole machine (ingest, the uploader, the broker, the S3 server, this harness).
    pub(crate) end_to_end_cpu_secs_per_million: f64,
    /// The CPUs the bound assumes busy.
    pub(crate) cpus: usize,
    /// `cpus` ÷ (read + encode) per record.
    pub(crate) records_per_sec: f64,
    /// `records_per_sec` ÷ row 1: the highest row 4 this machine allows.
    pub(crate) ratio: f64,
    /// Row 3 ÷ `records_per_sec`: how much of the bound end to end reaches.
    pub(crate) end_to_end_share: f64,
}

impl CpuBound {
    /// The bound from row 1's read, row 2's timed work and row 3's rate and machine CPU per
    /// million records; `None` when row 1's or row 2's CPU time is unknown or too short to count
    /// (a smoke read can end within one clock tick).
    pub(crate) fn of(
        raw: &RawConsume,
        encode: &Throughput,
        e2e_records_per_sec: f64,
        e2e_cpu_secs_per_million: f64,
        cpus: usize,
    ) -> Option<Self> {
        let read = raw.cpu.per_million(raw.read.records).machine;
        let encode_cpu = encode.secs / encode.records.max(1) as f64 * 1e6;
        if read <= 0.0 || encode_cpu <= 0.0 || cpus == 0 {
            return None;
        }
        let records_per_sec = cpus as f64 * 1e6 / (read + encode_cpu);
        Some(Self {
            read_cpu_secs_per_million: read,
            encode_cpu_secs_per_million: encode_cpu,
            end_to_end_cpu_secs_per_million: e2e_cpu_secs_per_million,
            cpus,
            records_per_sec,
            ratio: records_per_sec / raw.read.records_per_sec.max(1e-9),
            end_to_end_share: e2e_records_per_sec / records_per_sec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine_cpu::MachineCpu;

    fn read(machine: f64) -> RawConsume {
        // 1 M records in 0.5 s: 2 M records/s.
        let cpu = MachineCpu { machine, broker: Some(machine / 2.0), s3_server: None, ..MachineCpu::ZERO };
        RawConsume { read: Throughput::new(1_000_000, 400_000_000, 0.5), join_secs: 0.1, cpu }
    }

    #[test]
    fn two_cpus_shared_by_the_read_and_the_encode() {
        // The read costs 0.5 CPU s per million records, the encode 1.5: two CPUs do 1 M records/s.
        let encode = Throughput::new(2_000_000, 800_000_000, 3.0);
        let bound = CpuBound::of(&read(0.5), &encode, 900_000.0, 2_400.0 / 1e3, 2).expect("bound");
        assert!((bound.read_cpu_secs_per_million - 0.5).abs() < 1e-9, "{bound:?}");
        assert!((bound.encode_cpu_secs_per_million - 1.5).abs() < 1e-9, "{bound:?}");
        assert!((bound.records_per_sec - 1_000_000.0).abs() < 1e-3, "{bound:?}");
        assert!((bound.ratio - 0.5).abs() < 1e-9, "half of row 1's 2 M records/s: {bound:?}");
        assert!((bound.end_to_end_share - 0.9).abs() < 1e-9, "{bound:?}");
        assert_eq!(bound.end_to_end_cpu_secs_per_million, 2.4);
        // Four CPUs, twice the bound.
        let four = CpuBound::of(&read(0.5), &encode, 900_000.0, 2.4, 4).expect("bound");
        assert!((four.ratio - 1.0).abs() < 1e-9, "{four:?}");
    }

    #[test]
    fn no_bound_without_a_read_long_enough_to_time() {
        let encode = Throughput::new(1_000, 1_000, 0.01);
        assert_eq!(CpuBound::of(&read(0.0), &encode, 1.0, 1.0, 2), None, "a read within one tick");
    }
}
