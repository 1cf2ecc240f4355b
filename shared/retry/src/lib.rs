//! dwsync's one retry policy: capped exponential backoff with full jitter, cancelled by
//! shutdown, in one loop ([`retry_attempts`]; [`retry_until_shutdown`] is it without a limit)
//! and, where a closure cannot hold the borrows a step needs, a [`Retrier`] driven by the
//! caller's own loop. Every service's retries and restarts use it; each call site counts or
//! logs its own attempts.
//!
//! Why not `backon` (1.x, the maintained crate of this shape): its `with_jitter` adds a random
//! part *to* the delay (delays in `[d, 2d)`), where full jitter draws the whole delay from
//! `[0, d]`, which spreads a crowd of clients retrying the same broker or bucket far better; and
//! its loop knows no shutdown, so every call would still wrap each attempt and each sleep in a
//! `select!` on the cancellation token. What is left for a crate to do is about forty lines.

use std::future::Future;
use std::ops::ControlFlow;
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

    /// Logs `error` and waits before the next attempt: `Continue` to try again, `Break` once
    /// shutdown began.
    pub async fn failed(&mut self, error: &(dyn std::fmt::Display + Sync)) -> ControlFlow<()> {
        let delay = self.backoff.delay(self.attempt, &mut rand::rng());
        tracing::warn!(%error, attempt = self.attempt + 1, retry_in_ms = delay.as_millis() as u64, "{} failed; retrying.", self.what);
        self.attempt = self.attempt.saturating_add(1);
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => ControlFlow::Break(()),
            () = tokio::time::sleep(delay) => ControlFlow::Continue(()),
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

/// How [`retry_attempts`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempted<T, E> {
    /// An attempt succeeded.
    Done(T),
    /// The last attempt failed, or an error not worth retrying came: the error and the attempts
    /// made.
    Failed {
        /// The last error.
        error: E,
        /// Attempts made, the failed one included.
        attempts: u32,
    },
    /// Shutdown began, during an attempt or a wait.
    Shutdown,
}

/// Runs `op` up to `attempts` times: after a failure that `retryable` accepts, calls
/// `on_retry(error, attempt, delay)` (attempt from 0) and waits [`Backoff::delay`]; a failure it
/// refuses, or the last attempt's, ends it. Shutdown cancels an attempt or a wait at once.
pub async fn retry_attempts<T, E, F, Fut>(
    backoff: &Backoff,
    attempts: u32,
    shutdown: &CancellationToken,
    retryable: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, u32, Duration),
    mut op: F,
) -> Attempted<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0u32;
    loop {
        let outcome = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Attempted::Shutdown,
            outcome = op() => outcome,
        };
        let error = match outcome {
            Ok(value) => return Attempted::Done(value),
            Err(error) => error,
        };
        let made = attempt.saturating_add(1);
        if made >= attempts || !retryable(&error) {
            return Attempted::Failed { error, attempts: made };
        }
        let delay = backoff.delay(attempt, &mut rand::rng());
        on_retry(&error, attempt, delay);
        attempt = made;
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Attempted::Shutdown,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Runs `op` until it succeeds, waiting [`Backoff::delay`] after each failure and calling
/// `on_failure(error, attempt, delay)` first; `None` once `shutdown` is cancelled, even mid-attempt.
pub async fn retry_until_shutdown<T, E, F, Fut>(
    backoff: &Backoff,
    shutdown: &CancellationToken,
    on_failure: impl FnMut(&E, u32, Duration),
    op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match retry_attempts(backoff, u32::MAX, shutdown, |_| true, on_failure, op).await {
        Attempted::Done(value) => Some(value),
        // u32::MAX attempts with a retry after each: not reached in practice; stop as shutdown would.
        Attempted::Failed { .. } | Attempted::Shutdown => None,
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
    async fn attempts_are_bounded_and_a_lasting_error_ends_them_at_once() {
        let backoff = Backoff::new(ms(100), ms(1_000));
        let shutdown = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let mut retries = Vec::new();
        let failing = || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(format!("transient {n}")) }
        };
        let ended =
            retry_attempts(&backoff, 3, &shutdown, |_| true, |_, attempt, _| retries.push(attempt), failing).await;
        assert_eq!(ended, Attempted::Failed { error: "transient 2".to_owned(), attempts: 3 });
        assert_eq!((calls.load(Ordering::SeqCst), retries), (3, vec![0, 1]));

        let lasting = retry_attempts(
            &backoff,
            5,
            &shutdown,
            |e: &&str| *e != "denied",
            |_, _, _| (),
            || async { Err::<(), _>("denied") },
        );
        assert_eq!(lasting.await, Attempted::Failed { error: "denied", attempts: 1 });

        let calls = AtomicU32::new(0);
        let second = retry_attempts(
            &backoff,
            5,
            &shutdown,
            |_| true,
            |_, _, _| (),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n == 0 { Err("once") } else { Ok(n) } }
            },
        );
        assert_eq!(second.await, Attempted::Done(1));

        shutdown.cancel();
        let stopped = retry_attempts(&backoff, 5, &shutdown, |_| true, |_, _, _| (), || async { Ok::<_, ()>(1) });
        assert_eq!(stopped.await, Attempted::Shutdown, "shutdown wins over a ready attempt");
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
