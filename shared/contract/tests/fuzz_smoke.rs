//! A bounded fuzz smoke run of both decoders for every table (CI runs it with `cargo test`):
//! arbitrary bytes, and valid records with arbitrary bytes spliced in, never panic. The
//! coverage-guided targets in `fuzz/` run the same bodies for as long as you like.
#![allow(missing_docs)]

use dwsync_contract::{Table, decode_json, decode_protobuf};
use proptest::prelude::*;

const JSON_SEED: &[u8] = br#"{"workspace_id": 7, "event_id": "e\u00e9", "delivery_id": "d", "metric": "opened", "created_at": "2026-11-29T01:02:03Z", "seq_num": 1, "proxied": false, "prefetched": false, "machine": true, "sources": ["a"], "topic_names": null}"#;
const PROTO_SEED: &[u8] =
    &[0x08, 0x07, 0x12, 0x02, b'h', b'i', 0x1a, 0x06, 0x08, 0x80, 0xe1, 0xeb, 0x17, 0x10, 0x01, 0x4a, 0x01, b'x'];

fn table() -> impl Strategy<Value = Table> {
    (0..Table::ALL.len()).prop_map(|i| Table::ALL[i])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(table in table(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_json(table, &bytes);
        let _ = decode_protobuf(table, &bytes);
    }

    #[test]
    fn mutated_valid_records_never_panic(table in table(), at in 0usize..512, splice in proptest::collection::vec(any::<u8>(), 0..8), cut in 0usize..512) {
        for seed in [JSON_SEED, PROTO_SEED] {
            let mut input = seed.to_vec();
            let at = at % (input.len() + 1);
            input.splice(at..at, splice.iter().copied());
            input.truncate(cut.max(1) % (input.len() + 1));
            let _ = decode_json(table, &input);
            let _ = decode_protobuf(table, &input);
        }
    }
}
