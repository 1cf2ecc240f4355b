//! Random schedules for crash tests that can be replayed: a seed from `DWSYNC_TEST_SEED`, else
//! from the clock, printed when the schedule starts (the test harness shows a failed test's
//! output, so a failure names the seed that replays it).

/// The variable that replays a schedule.
pub const SEED_ENV: &str = "DWSYNC_TEST_SEED";

/// A xorshift generator of a test's random moments.
#[derive(Debug, Clone)]
pub struct Schedule {
    seed: u64,
    state: u64,
}

impl Schedule {
    /// The schedule of `DWSYNC_TEST_SEED` (or the clock), printed with `what` it drives.
    pub fn from_env(what: &str) -> Self {
        let seed = std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        println!("{what}: schedule seed {seed} ({SEED_ENV}={seed} replays it)");
        Self::new(seed)
    }

    /// The schedule of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, state: seed | 1 }
    }

    /// Its seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next number below `max` (0 for a `max` of 0).
    pub fn next(&mut self, max: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % max.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule() {
        let (mut a, mut b) = (Schedule::new(42), Schedule::new(42));
        let first: Vec<u64> = (0..20).map(|_| a.next(3000)).collect();
        let again: Vec<u64> = (0..20).map(|_| b.next(3000)).collect();
        assert_eq!(first, again);
        assert!(first.iter().all(|n| *n < 3000));
        assert_ne!(first, (0..20).map(|_| Schedule::new(43).next(3000)).collect::<Vec<_>>());
    }
}
