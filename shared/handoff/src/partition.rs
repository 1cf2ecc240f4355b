//! Which handoff partition holds a workspace's files: ingest keys every handoff record by the
//! workspace id as a decimal string and produces with librdkafka's `murmur2_random` partitioner,
//! which is Java Kafka's default: `(murmur2(key) & 0x7fffffff) % partitions`.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): MurmurHash2, 32 bits, seed
/// `0x9747b28c`, little-endian 4-byte blocks, as librdkafka's `rd_murmur2` computes it.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's `int length` in the seed: keys longer than 4 GiB wrap like Java's would not exist.
    let mut h = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a record keyed `key` on a topic of `partitions` partitions (`None` for
/// `partitions <= 0`).
pub fn partition_of(key: &[u8], partitions: i32) -> Option<i32> {
    let partitions = u32::try_from(partitions).ok().filter(|p| *p > 0)?;
    // Below `partitions`, which is an i32.
    Some(((murmur2(key) & 0x7fff_ffff) % partitions) as i32)
}

/// The handoff partition holding `workspace_id`'s files, on a handoff topic of `partitions`
/// partitions (`None` for `partitions <= 0`). Valid as long as the topic is never repartitioned.
pub fn handoff_partition(workspace_id: i64, partitions: i32) -> Option<i32> {
    partition_of(workspace_id.to_string().as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of Java's `Utils.murmur2` (kafka-clients 4.4.0), as `int`: the first six are
    /// Kafka's own `UtilsTest.testMurmur2` cases, the rest computed with the same jar.
    const JAVA: &[(&str, i32)] = &[
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
        ("", 275_646_681),
        ("1", -1_993_445_489),
        ("42", 417_700_972),
        ("7", -1_961_297_549),
        ("1234", -1_614_185_708),
        ("12345", -1_188_365_604),
        ("9223372036854775807", -1_221_667_907),
    ];

    #[test]
    fn murmur2_matches_java() {
        for (key, java) in JAVA {
            assert_eq!(murmur2(key.as_bytes()) as i32, *java, "{key:?}");
        }
    }

    #[test]
    fn workspace_partitions_match_the_java_partitioner() {
        // `Utils.toPositive(murmur2(key)) % n`, from the same jar.
        let cases = [(1, 48, 15), (42, 48, 28), (7, 48, 3), (1234, 48, 36), (12345, 48, 44), (42, 3, 1), (12345, 3, 2)];
        for (workspace, partitions, java) in cases {
            assert_eq!(handoff_partition(workspace, partitions), Some(java), "workspace {workspace} of {partitions}");
        }
        assert_eq!(handoff_partition(i64::MAX, 48), Some(45));
        assert_eq!(handoff_partition(1, 1), Some(0));
        assert_eq!(handoff_partition(1, 0), None);
        assert_eq!(partition_of(b"21", -3), None);
    }
}
