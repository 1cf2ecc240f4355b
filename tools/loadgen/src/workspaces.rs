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
            remaining: Remaining::new(split.iter().map(|(_, c)| *c)),
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
    remaining: Remaining,
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
        // Pick a workspace with probability proportional to its remaining records: the first
        // one whose cumulative remaining count exceeds `r`.
        let r = self.rng.below(self.total);
        let i = self.remaining.find(r)?;
        self.remaining.take_one(i);
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

/// The remaining record counts of the workspaces, as a Fenwick tree: finding the workspace of a
/// cumulative position and taking one record are O(log n), so a record of 10,000 workspaces
/// costs a few more steps than one of 10, not a scan of all 10,000.
#[derive(Debug, Clone)]
struct Remaining {
    /// `tree[i]` (1-based) sums the counts of `(i - lowbit(i), i]`.
    tree: Vec<u64>,
}

impl Remaining {
    fn new(counts: impl IntoIterator<Item = u64>) -> Self {
        let mut tree = vec![0];
        tree.extend(counts);
        for i in 1..tree.len() {
            let parent = i + (i & i.wrapping_neg());
            if parent < tree.len() {
                tree[parent] += tree[i];
            }
        }
        Self { tree }
    }

    /// The index (from 0) of the first count whose running sum exceeds `r`; `None` when `r` is
    /// at or past the total.
    fn find(&self, r: u64) -> Option<usize> {
        let n = self.tree.len() - 1;
        let (mut pos, mut left) = (0, r);
        let mut step = if n == 0 { 0 } else { 1 << n.ilog2() };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= left {
                pos = next;
                left -= self.tree[next];
            }
            step >>= 1;
        }
        // `pos` counts the entries whose running sum is at most `r`; the next one exceeds it.
        (pos < n).then_some(pos)
    }

    /// Takes one record from count `i` (which must be positive).
    fn take_one(&mut self, i: usize) {
        let mut at = i + 1;
        while at < self.tree.len() {
            self.tree[at] -= 1;
            at += at & at.wrapping_neg();
        }
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

    #[test]
    fn the_fenwick_schedule_equals_the_linear_scan() {
        // The reference: the linear scan the schedule used before (pinned output per seed).
        fn naive(ws: &Workspaces, records: u64, seed: u64) -> Vec<(i64, u64)> {
            let split = ws.split(records);
            let mut remaining: Vec<u64> = split.iter().map(|(_, c)| *c).collect();
            let mut next_n = vec![0; remaining.len()];
            let mut rng = Rng::new(hash(&[seed, records, 0x5c4e]));
            let mut total = records;
            let mut out = Vec::new();
            while total > 0 {
                let mut r = rng.below(total);
                let i = remaining
                    .iter()
                    .position(|&left| {
                        if r < left {
                            return true;
                        }
                        r -= left;
                        false
                    })
                    .expect("r below total");
                remaining[i] -= 1;
                total -= 1;
                out.push((split[i].0, next_n[i]));
                next_n[i] += 1;
            }
            out
        }
        for (count, exponent, records) in
            [(1, 1.1, 50), (3, 1.1, 1_000), (7, 0.0, 333), (1_000, 0.5, 5_000), (37, 2.0, 100)]
        {
            let ws = Workspaces::zipf(count, exponent);
            assert_eq!(ws.schedule(records, 9).collect::<Vec<_>>(), naive(&ws, records, 9), "{count} {exponent}");
        }
    }
}
