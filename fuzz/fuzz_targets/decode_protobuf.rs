//! Coverage-guided fuzzing of the protobuf decoder: the first byte picks the table.
#![no_main]

use dwsync_contract::{Table, decode_protobuf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((first, rest)) = data.split_first() {
        let table = Table::ALL[usize::from(*first) % Table::ALL.len()];
        let _ = decode_protobuf(table, rest);
    }
});
