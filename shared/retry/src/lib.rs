//! Capped exponential backoff with full jitter, and a retry loop that only shutdown ends.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Delays between attempts: attempt `n` (from 0) waits a uniformly random time in
/// `[0, min(max, initial * 2^n)]` ("full jitter").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial) }
    }

    /// The upper bound of the delay after failed attempt `attempt` (0 for the first failure).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// A random delay in `[0, ceiling(attempt)]`, drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=ceiling))
    }

    /// [`delay`](Self::delay) drawn from the thread's random generator.
    pub fn random_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, &mut rand::rng())
    }
}

/// Backoff state of one step retried in a caller's own loop (where a closure cannot hold the
/// borrows the step needs).
#[derive(Debug)]
pub struct Retrier {
    backoff: Backoff,
    attempt: u32,
    shutdown: CancellationToken,
    what: &'static str,
}

impl Retrier {
    /// Retries `what` with `backoff` until `shutdown`.
    pub fn new(what: &'static str, backoff: Backoff, shutdown: &CancellationToken) -> Self {
        Self { backoff, attempt: 0, shutdown: shutdown.clone(), what }
    }

    /// Logs `error` and waits before the next attempt; `false` once shutdown began.
    pub async fn failed(&mut self, error: &(dyn std::fmt::Display + Sync)) -> bool {
        let delay = self.backoff.delay(self.attempt, &mut rand::rng());
        tracing::warn!(%error, attempt = self.attempt + 1, retry_in_ms = delay.as_millis() as u64, "{} failed; retrying.", self.what);
        self.attempt = self.attempt.saturating_add(1);
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// How many attempts failed so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Whether shutdown began.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// Runs `op` until it succeeds, waiting [`Backoff::delay`] after each failure and calling
/// `on_failure(error, attempt, delay)` first; `None` once `shutdown` is cancelled, even mid-attempt.
pub async fn retry_until_shutdown<T, E, F, Fut>(
    backoff: &Backoff,
    shutdown: &CancellationToken,
    mut on_failure: impl FnMut(&E, u32, Duration),
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0u32;
    loop {
        let outcome = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            outcome = op() => outcome,
        };
        let error = match outcome {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        let delay = backoff.delay(attempt, &mut rand::rng());
        on_failure(&error, attempt, delay);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceilings_double_then_cap() {
        let backoff = Backoff::new(ms(200), ms(30_000));
        let ceilings: Vec<_> = (0..10).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
        assert_eq!(backoff.ceiling(31), ms(30_000));
        assert_eq!(backoff.ceiling(u32::MAX), ms(30_000), "no overflow on huge attempt counts");
        assert_eq!(Backoff::new(ms(500), ms(100)).ceiling(0), ms(500), "max below initial is raised to it");
    }

    #[test]
    fn jitter_stays_within_zero_and_the_ceiling_and_spreads() {
        let backoff = Backoff::new(ms(200), ms(30_000));
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in [0, 1, 3, 8, 20] {
            let ceiling = backoff.ceiling(attempt);
            let delays: Vec<_> = (0..2_000).map(|_| backoff.delay(attempt, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}: a delay above {ceiling:?}");
            let (min, max) = (delays.iter().min().copied(), delays.iter().max().copied());
            // Full jitter: the draws cover the whole range, not just the upper part.
            assert!(min.is_some_and(|d| d < ceiling / 10), "attempt {attempt}: smallest {min:?}");
            assert!(max.is_some_and(|d| d > ceiling * 9 / 10), "attempt {attempt}: largest {max:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_and_reports_each_failure() {
        let backoff = Backoff::new(ms(100), ms(1_000));
        let calls = AtomicU32::new(0);
        let mut failures = Vec::new();
        let result = retry_until_shutdown(
            &backoff,
            &CancellationToken::new(),
            |e: &String, attempt, delay| failures.push((e.clone(), attempt, delay)),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 3 { Err(format!("failure {n}")) } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(result, Some(3));
        assert_eq!(failures.len(), 3);
        for (i, (error, attempt, delay)) in failures.iter().enumerate() {
            assert_eq!((error.as_str(), *attempt), (format!("failure {i}").as_str(), i as u32));
            assert!(*delay <= backoff.ceiling(*attempt));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_retries() {
        let backoff = Backoff::new(ms(100), ms(1_000));
        let shutdown = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let stopper = shutdown.clone();
        let retrying = retry_until_shutdown(
            &backoff,
            &shutdown,
            |_: &&str, attempt, _| {
                if attempt == 4 {
                    stopper.cancel();
                }
            },
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("always") }
            },
        );
        assert_eq!(retrying.await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 5);

        // A pending attempt is abandoned too.
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let never =
            retry_until_shutdown(&backoff, &cancelled, |_: &(), _, _| (), std::future::pending::<Result<(), ()>>);
        assert_eq!(never.await, None);
    }
}
