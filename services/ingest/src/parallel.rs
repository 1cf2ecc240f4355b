//! Spreads the loop's CPU work over cores: decoding a batch of records, encoding closed windows.
//!
//! Scoped threads borrow the batch, so decoded rows keep borrowing the messages' payloads; the
//! calling thread does a share of the work itself. Order is kept where it matters (records).

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many items per thread, spreading costs more than it saves.
const MIN_PER_THREAD: usize = 64;

/// How many threads to use: `configured`, or every core when it is 0.
pub fn threads(configured: usize) -> usize {
    if configured > 0 { configured } else { std::thread::available_parallelism().map_or(1, usize::from) }
}

/// `items.iter().map(f)` on up to `threads` threads, results in the items' order.
pub fn map_ordered<'t, T: Sync, R: Send>(items: &'t [T], threads: usize, f: impl Fn(&'t T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || c.iter().map(f).collect::<Vec<R>>())).collect();
        let mut out: Vec<R> = first.iter().map(f).collect();
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// `items.into_iter().map(f)` on up to `threads` threads, each taking the next item when done
/// (items of very different cost balance out); results in the items' order.
pub fn map_owned<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len()).max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { return done };
            if let Some(item) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                done.push((i, f(item)));
            }
        }
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for handle in others {
            match handle.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::thread::ThreadId;

    use super::*;

    #[test]
    fn ordered_map_keeps_order_and_uses_several_threads() {
        let items: Vec<u64> = (0..10_000).collect();
        let seen = Mutex::new(HashSet::<ThreadId>::new());
        let out = map_ordered(&items, 4, |x| {
            let _ = seen.lock().unwrap().insert(std::thread::current().id());
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(seen.lock().unwrap().len(), 4);
        // Small batches stay on the calling thread.
        assert_eq!(map_ordered(&items[..10], 4, |x| *x), items[..10]);
    }

    #[test]
    fn owned_map_keeps_order_with_uneven_work() {
        let items: Vec<String> = (0..200).map(|i| "x".repeat(i % 17)).collect();
        let out = map_owned(items.clone(), 3, |s| {
            if s.len() == 16 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            s.len()
        });
        assert_eq!(out, items.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(map_owned(Vec::<u8>::new(), 3, |x| x), Vec::<u8>::new());
    }

    #[test]
    fn zero_threads_means_every_core() {
        assert!(threads(0) >= 1);
        assert_eq!(threads(3), 3);
    }
}
