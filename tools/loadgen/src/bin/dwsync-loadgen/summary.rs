//! What a run produced: messages and bytes per table, time, throughput.

use std::fmt;
use std::time::Duration;

use dwsync_contract::Table;

/// Delivered messages of one table.
#[derive(Debug, Clone, Default)]
struct Counts {
    good: u64,
    bad: u64,
    bytes: u64,
}

/// Counts of a run, per table in the order produced.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    tables: Vec<Table>,
    counts: Vec<Counts>,
    /// Messages whose delivery failed.
    pub(crate) failed: u64,
    /// Wall time from the first message to the last delivery report.
    pub(crate) elapsed: Duration,
}

impl Summary {
    /// An empty summary of `tables`.
    pub(crate) fn new(tables: &[Table]) -> Self {
        Self {
            tables: tables.to_vec(),
            counts: vec![Counts::default(); tables.len()],
            failed: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// The table of `slot`.
    pub(crate) fn table(&self, slot: usize) -> Table {
        self.tables[slot]
    }

    /// Books a delivered message of the table in `slot`.
    pub(crate) fn delivered(&mut self, slot: usize, good: bool, bytes: usize) {
        let c = &mut self.counts[slot];
        if good {
            c.good += 1;
        } else {
            c.bad += 1;
        }
        c.bytes += bytes as u64;
    }

    fn total(&self) -> Counts {
        self.counts.iter().fold(Counts::default(), |t, c| Counts {
            good: t.good + c.good,
            bad: t.bad + c.bad,
            bytes: t.bytes + c.bytes,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<18} {:>10} {:>10} {:>14}", "table", "records", "malformed", "bytes")?;
        for (table, c) in self.tables.iter().zip(&self.counts) {
            writeln!(f, "{:<18} {:>10} {:>10} {:>14}", table.name(), c.good, c.bad, c.bytes)?;
        }
        let total = self.total();
        writeln!(f, "{:<18} {:>10} {:>10} {:>14}", "total", total.good, total.bad, total.bytes)?;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let messages = total.good + total.bad;
        write!(
            f,
            "{messages} messages in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
            messages as f64 / secs,
            total.bytes as f64 / secs / 1e6
        )?;
        if self.failed > 0 {
            write!(f, "; {} NOT delivered", self.failed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let mut s = Summary::new(&[Table::Metrics, Table::People]);
        s.delivered(0, true, 400);
        s.delivered(0, false, 10);
        s.delivered(1, true, 200);
        s.elapsed = Duration::from_secs(1);
        let text = s.to_string();
        assert!(text.contains("metrics"), "{text}");
        assert!(text.contains("3 messages in 1.00 s: 3 records/s"), "{text}");
        assert_eq!(s.table(1), Table::People);
    }
}
