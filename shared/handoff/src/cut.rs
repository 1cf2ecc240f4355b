//! Cut records: where a workspace's initial sync divides its handoff partition.
//!
//! When a sync needs a baseline, control produces one record onto the workspace's handoff
//! partition with no value and the header [`CUT_HEADER`] = `"<workspace_id>:<epoch>"`, and stores
//! the record's offset as the table's cut. Files of the workspace that start below the cut belong
//! to the baseline; files above it are incremental. The record is not a file chunk: readers of
//! the handoff topic (the uploader, the archiver) recognise it by its header and pass over it.

use std::fmt;

/// The header that marks a cut record.
pub const CUT_HEADER: &str = "dwsync-cut";

/// A cut record's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cut {
    /// The workspace whose initial sync it divides.
    pub workspace_id: i64,
    /// The configuration revision that asked for the initial sync; `0` for an archive purge's
    /// cut (no configuration has revision 0, so no reader waits for one).
    pub epoch: u64,
}

/// A [`CUT_HEADER`] value that is not `<workspace_id>:<epoch>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {CUT_HEADER} header is not <workspace_id>:<epoch>")]
pub struct BadCut;

impl Cut {
    /// The header value.
    pub fn header_value(&self) -> String {
        self.to_string()
    }

    /// Reads a header value.
    pub fn parse(value: &[u8]) -> Result<Self, BadCut> {
        let text = std::str::from_utf8(value).map_err(|_| BadCut)?;
        let (workspace, epoch) = text.split_once(':').ok_or(BadCut)?;
        let workspace_id = workspace.parse::<i64>().ok().filter(|id| *id > 0).ok_or(BadCut)?;
        let epoch = epoch.parse::<u64>().map_err(|_| BadCut)?;
        Ok(Self { workspace_id, epoch })
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.workspace_id, self.epoch)
    }
}

/// What a record of the handoff topic is.
#[derive(Debug, Clone, PartialEq)]
pub enum HandoffRecord {
    /// A chunk of a handed-off file.
    Chunk(crate::FileChunk),
    /// A cut record.
    Cut(Cut),
    /// Neither: why (`empty`, `not_protobuf`, `bad_cut`), a metrics label.
    Bad(&'static str),
}

/// The value of the [`CUT_HEADER`] among a record's headers (`(key, value)` pairs), if any.
pub fn cut_value<'a>(headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>) -> Option<&'a [u8]> {
    headers.into_iter().find(|(key, _)| *key == CUT_HEADER).and_then(|(_, value)| value)
}

impl HandoffRecord {
    /// Classifies a record by its [`CUT_HEADER`] value (if it has one, [`cut_value`]) and its
    /// payload.
    pub fn classify(cut_header: Option<&[u8]>, payload: Option<&[u8]>) -> Self {
        use dwsync_proto::Message as _;
        if let Some(value) = cut_header {
            return Cut::parse(value).map_or(Self::Bad("bad_cut"), Self::Cut);
        }
        match payload {
            None => Self::Bad("empty"),
            Some(payload) => crate::FileChunk::decode(payload).map_or(Self::Bad("not_protobuf"), Self::Chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_chunks_cuts_or_named_as_bad() {
        use dwsync_proto::Message as _;
        let chunk = crate::FileChunk { file_id: "f".into(), ..Default::default() };
        assert_eq!(HandoffRecord::classify(None, Some(&chunk.encode_to_vec())), HandoffRecord::Chunk(chunk));
        assert_eq!(HandoffRecord::classify(Some(b"7:2"), None), HandoffRecord::Cut(Cut { workspace_id: 7, epoch: 2 }));
        assert_eq!(HandoffRecord::classify(Some(b"7"), None), HandoffRecord::Bad("bad_cut"));
        assert_eq!(HandoffRecord::classify(None, None), HandoffRecord::Bad("empty"));
        assert_eq!(HandoffRecord::classify(None, Some(b"\xff\xff\xff")), HandoffRecord::Bad("not_protobuf"));
        let headers = [("content-type", Some(&b"x"[..])), (CUT_HEADER, Some(&b"7:2"[..]))];
        assert_eq!(cut_value(headers), Some(&b"7:2"[..]));
        assert_eq!(cut_value([("content-type", None)]), None);
    }

    #[test]
    fn cuts_round_trip_and_garbage_is_refused() {
        let cut = Cut { workspace_id: 42, epoch: 7 };
        assert_eq!(cut.header_value(), "42:7");
        assert_eq!(Cut::parse(b"42:7"), Ok(cut));
        for bad in [&b"42"[..], b"x:7", b"0:7", b"-1:7", b"42:", b"42:-1", b"\xff:1"] {
            assert_eq!(Cut::parse(bad), Err(BadCut), "{bad:?}");
        }
    }
}
