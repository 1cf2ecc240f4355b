//! Identifiers: the unique id column of each table, and ids in the platform's formats.
//!
//! A unique id is a bijection of `(workspace, n)` under a salt of `(seed, table)`: two records of
//! one table and seed never share an id, and a reference to record `n` of another table
//! (a metric's `delivery_id`) is that table's id of `n`.

use dwsync_contract::Table;

use crate::rng::{hash, mix};

/// The column holding a value unique per `(workspace, table, n)`: the table's primary key, or
/// `action_id` for `actions`, which has none.
pub fn id_column(table: Table) -> &'static str {
    match table.def().primary_key {
        [pk, ..] => pk,
        [] => "action_id",
    }
}

/// 128 bits unique per `(workspace, n)` for one salt.
pub(crate) fn token(salt: u64, workspace_id: i64, n: u64) -> u128 {
    let ws = mix(workspace_id as u64 ^ salt);
    let lo = mix(n ^ mix(ws ^ salt));
    // Given `lo`, `hi` gives back `ws`: still a bijection, but no prefix shared per workspace.
    let hi = ws ^ mix(lo);
    (u128::from(hi) << 64) | u128::from(lo)
}

/// The salt of a table's ids under a seed.
pub(crate) fn salt(seed: u64, table: Table) -> u64 {
    hash(&[seed, table as u64, 0x1d5])
}

/// URL-safe base64 of 16 bytes, without padding (22 characters), like platform delivery ids.
pub(crate) fn base64_id(t: u128) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sextet = |i: u32| if i < 21 { (t >> (122 - 6 * i)) & 0x3f } else { (t & 0x3) << 4 };
    (0..22).map(|i| ALPHABET[sextet(i) as usize] as char).collect()
}

/// A ULID-shaped id: 26 characters of Crockford base32.
pub(crate) fn ulid(t: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26u32).map(|i| ALPHABET[((t >> (125 - 5 * i)) & 0x1f) as usize] as char).collect()
}

/// 32 lowercase hex digits, like internal customer and object ids.
pub(crate) fn hex_id(t: u128) -> String {
    format!("{t:032x}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn id_columns_are_primary_keys_except_actions() {
        for &t in Table::ALL {
            let col = id_column(t);
            assert!(t.def().index_of(col).is_some(), "{t}.{col}");
        }
        assert_eq!(id_column(Table::Actions), "action_id");
        assert_eq!(id_column(Table::People), "internal_customer_id");
        assert_eq!(id_column(Table::Subjects), "subject_name");
    }

    #[test]
    fn formats_keep_every_bit() {
        let mut seen = HashSet::new();
        for ws in [1, 2, 1001, i64::MAX] {
            for n in 0..2_000 {
                let t = token(salt(42, Table::Metrics), ws, n);
                let ids = (base64_id(t), ulid(t), hex_id(t));
                assert_eq!((ids.0.len(), ids.1.len(), ids.2.len()), (22, 26, 32));
                assert!(seen.insert(ids));
            }
        }
        // Distinct tokens give distinct strings in each format (no bits dropped).
        assert_ne!(base64_id(1), base64_id(2));
        assert_ne!(ulid(1), ulid(2));
        assert_ne!(base64_id(1 << 127), base64_id(0));
        assert_ne!(ulid(1 << 127), ulid(0));
    }
}
