//! How a run's messages are encoded: all JSON, all protobuf, or alternating per message.

use dwsync_contract::Encoding;

/// How messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "producer", derive(clap::ValueEnum))]
pub enum EncodingMode {
    /// Every message is JSON.
    Json,
    /// Every message is protobuf.
    Protobuf,
    /// JSON and protobuf alternate per topic, each message with a `content-type` header.
    Mixed,
}

impl EncodingMode {
    /// The encoding of a table's `index`-th message.
    pub fn encoding(self, index: u64) -> Encoding {
        match self {
            Self::Json => Encoding::Json,
            Self::Protobuf => Encoding::Protobuf,
            Self::Mixed if index.is_multiple_of(2) => Encoding::Json,
            Self::Mixed => Encoding::Protobuf,
        }
    }

    /// The lowercase name (`json`, `protobuf`, `mixed`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
            Self::Mixed => "mixed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_alternates_starting_with_json() {
        assert_eq!(EncodingMode::Mixed.encoding(0), Encoding::Json);
        assert_eq!(EncodingMode::Mixed.encoding(1), Encoding::Protobuf);
        assert_eq!(EncodingMode::Protobuf.encoding(0), Encoding::Protobuf);
        assert_eq!(EncodingMode::Json.encoding(1), Encoding::Json);
        assert_eq!(EncodingMode::Mixed.name(), "mixed");
    }
}
