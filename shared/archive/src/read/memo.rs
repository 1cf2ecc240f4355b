//! Footers already read by one workspace's history: a job reads each object's footer up to three
//! times (the people for the erased, a table's last seq, then its rows), and the memo answers
//! all but the first from memory.
//!
//! Bounded by [`MEMO_BYTES`]: once full it keeps what it holds and takes nothing more (a history
//! is read from its first batch to its last, so an evicting cache would miss on every batch past
//! its size), and a footer it does not hold is read again from the archive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::object::WorkspaceFooter;

/// Memory the memo holds at most: footers' metadata and the row groups fetched with them.
pub(crate) const MEMO_BYTES: u64 = 32 * 1_024 * 1_024;

/// Footers by object key, for one workspace.
#[derive(Default)]
pub(crate) struct FooterMemo {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    footers: HashMap<String, Arc<WorkspaceFooter>>,
    bytes: u64,
}

impl std::fmt::Debug for FooterMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("FooterMemo").field("footers", &held.footers.len()).field("bytes", &held.bytes).finish()
    }
}

impl FooterMemo {
    /// The footer of `key`, if held.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<WorkspaceFooter>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).footers.get(key).cloned()
    }

    /// `footer`, kept under `key` if there is room.
    pub(crate) fn keep(&self, key: &str, footer: WorkspaceFooter) -> Arc<WorkspaceFooter> {
        let footer = Arc::new(footer);
        let size = footer.memory_bytes();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = held.footers.get(key) {
            // Read twice at once (a read-ahead and the stream): keep one, count it once.
            return Arc::clone(kept);
        }
        if held.bytes + size <= MEMO_BYTES {
            held.bytes += size;
            held.footers.insert(key.to_owned(), Arc::clone(&footer));
        }
        footer
    }
}
