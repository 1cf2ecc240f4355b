//! A skewed set of workspaces: a few large and many small, with Zipf-like shares.

use crate::rng::{Rng, hash};

/// The id of the first workspace; the others follow (`1001`, `1002`, ...).
pub const FIRST_WORKSPACE_ID: i64 = 1001;

/// The default Zipf exponent: with 10 workspaces the largest gets ~34%, the smallest ~2.4%.
pub const DEFAULT_EXPONENT: f64 = 1.1;

/// `count` workspaces; the one of rank `r` (from 1) has a share proportional to `1 / r^exponent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspaces {
    ids: Vec<i64>,
    shares: Vec<f64>,
}

impl Workspaces {
    /// `count` (at least 1) workspaces with the default exponent.
    pub fn new(count: usize) -> Self {
        Self::zipf(count, DEFAULT_EXPONENT)
    }

    /// `count` (at least 1) workspaces with shares `1 / rank^exponent` (0 = all equal).
    pub fn zipf(count: usize, exponent: f64) -> Self {
        let count = count.max(1);
        let weights: Vec<f64> = (1..=count).map(|r| 1.0 / (r as f64).powf(exponent)).collect();
        let total: f64 = weights.iter().sum();
        let ids = (0..count as i64).map(|i| FIRST_WORKSPACE_ID + i).collect();
        Self { ids, shares: weights.iter().map(|w| w / total).collect() }
    }

    /// The workspace ids, largest first.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Each workspace's share of the records (sums to 1), in the order of [`Workspaces::ids`].
    pub fn shares(&self) -> &[f64] {
        &self.shares
    }

    /// Splits `records` into exact per-workspace counts (largest remainder; they sum to `records`).
    pub fn split(&self, records: u64) -> Vec<(i64, u64)> {
        let exact: Vec<f64> = self.shares.iter().map(|s| s * records as f64).collect();
        let mut counts: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
        let mut rest = records.saturating_sub(counts.iter().sum());
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
        for &i in order.iter().cycle() {
            if rest == 0 {
                break;
            }
            counts[i] += 1;
            rest -= 1;
        }
        self.ids.iter().copied().zip(counts).collect()
    }

    /// The records of one table in production order: `(workspace_id, n)` pairs, the workspaces
    /// interleaved at random (deterministic in `seed`), each workspace's `n` counting from 0 and
    /// its count as [`Workspaces::split`] gives it.
    pub fn schedule(&self, records: u64, seed: u64) -> Schedule {
        let split = self.split(records);
        Schedule {
            ids: split.iter().map(|(id, _)| *id).collect(),
            remaining: split.iter().map(|(_, c)| *c).collect(),
            next_n: vec![0; split.len()],
            total: records,
            rng: Rng::new(hash(&[seed, records, 0x5c4e])),
        }
    }
}

/// An iterator over `(workspace_id, n)`; see [`Workspaces::schedule`].
#[derive(Debug, Clone)]
pub struct Schedule {
    ids: Vec<i64>,
    remaining: Vec<u64>,
    next_n: Vec<u64>,
    total: u64,
    rng: Rng,
}

impl Iterator for Schedule {
    type Item = (i64, u64);

    fn next(&mut self) -> Option<(i64, u64)> {
        if self.total == 0 {
            return None;
        }
        // Pick a workspace with probability proportional to its remaining records.
        let mut r = self.rng.below(self.total);
        let i = self.remaining.iter().position(|&left| {
            if r < left {
                return true;
            }
            r -= left;
            false
        })?;
        self.remaining[i] -= 1;
        self.total -= 1;
        let n = self.next_n[i];
        self.next_n[i] += 1;
        Some((self.ids[i], n))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.total).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    #[test]
    fn a_few_large_many_small() {
        let ws = Workspaces::new(20);
        assert_eq!(ws.ids()[0], 1001);
        assert_eq!(ws.ids()[19], 1020);
        assert!((ws.shares().iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(ws.shares()[0] > 0.25, "{}", ws.shares()[0]);
        assert!(ws.shares()[19] < 0.02, "{}", ws.shares()[19]);
        assert!(ws.shares().windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn split_is_exact() {
        for (count, records) in [(1, 0), (3, 1_000), (7, 5), (50, 12_345)] {
            let split = Workspaces::new(count).split(records);
            assert_eq!(split.len(), count);
            assert_eq!(split.iter().map(|(_, c)| c).sum::<u64>(), records);
        }
        let split = Workspaces::new(3).split(1_000);
        assert!(split[0].1 > split[1].1 && split[1].1 > split[2].1, "{split:?}");
    }

    #[test]
    fn schedule_interleaves_and_counts_n_per_workspace() {
        let ws = Workspaces::new(5);
        let pairs: Vec<_> = ws.schedule(2_000, 42).collect();
        assert_eq!(pairs.len(), 2_000);
        assert_eq!(pairs, ws.schedule(2_000, 42).collect::<Vec<_>>());
        assert_ne!(pairs, ws.schedule(2_000, 43).collect::<Vec<_>>());
        let unique: HashSet<_> = pairs.iter().collect();
        assert_eq!(unique.len(), pairs.len());
        let mut per_ws: HashMap<i64, Vec<u64>> = HashMap::new();
        for (id, n) in &pairs {
            per_ws.entry(*id).or_default().push(*n);
        }
        for (id, count) in ws.split(2_000) {
            let ns = &per_ws[&id];
            assert_eq!(ns.len() as u64, count);
            assert!(ns.iter().copied().eq(0..count), "n counts up per workspace");
        }
        // Interleaved: the largest workspace does not come as one block.
        assert_ne!(pairs[..10].iter().filter(|(id, _)| *id == 1001).count(), 10);
    }
}
