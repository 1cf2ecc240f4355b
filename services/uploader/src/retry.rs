//! Capped exponential backoff with full jitter, and a retry loop that only shutdown ends
//! (shared with the archiver: [`dwsync_retry`]).

pub use dwsync_retry::{Backoff, Retrier, retry_until_shutdown};
