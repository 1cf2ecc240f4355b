//! When each object became visible: the uploader's JSON log says "Uploaded a file." inside its
//! `upload` span (workspace_id, table, seq, key) the moment S3 answered the PUT with 200, and S3
//! reads after a successful write see the object.
//!
//! (Polling ListObjectsV2 would measure the same from outside, but the local S3 server walks the
//! whole bucket for every page, which at 50,000 objects costs more than the run it measures.)

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The message the uploader logs after writing a file.
const UPLOADED: &str = "Uploaded a file.";

/// Reads the uploader's log as it grows.
pub(crate) struct UploadLog {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Object key → when it was written (epoch ms, the uploader's clock).
    visible: BTreeMap<String, i64>,
}

impl UploadLog {
    /// A reader of the log at `path` (which may not exist yet).
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), offset: 0, partial: String::new(), visible: BTreeMap::new() }
    }

    /// Reads what was appended since the last call.
    pub(crate) fn poll(&mut self) {
        let Ok(mut file) = File::open(&self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        while let Ok(n) = reader.read_line(&mut line) {
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            if !line.ends_with('\n') {
                // A line still being written: keep it for the next poll.
                self.partial.push_str(&line);
                line.clear();
                continue;
            }
            let whole = std::mem::take(&mut self.partial) + &line;
            if let Some((key, at_ms)) = parse_uploaded(&whole) {
                let _ = self.visible.entry(key).or_insert(at_ms);
            }
            line.clear();
        }
    }

    /// Objects written so far: key → epoch ms.
    pub(crate) fn visible(&self) -> &BTreeMap<String, i64> {
        &self.visible
    }
}

/// The key and time of an "Uploaded a file." JSON log line.
pub(crate) fn parse_uploaded(line: &str) -> Option<(String, i64)> {
    if !line.contains(UPLOADED) {
        return None;
    }
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    if v.pointer("/fields/message")?.as_str()? != UPLOADED {
        return None;
    }
    let key = v.pointer("/span/key")?.as_str()?.to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(v.get("timestamp")?.as_str()?).ok()?;
    Some((key, at.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-11-29T04:18:00.250123Z","level":"INFO","fields":{"message":"Uploaded a file.","took_ms":12},"target":"dwsync_uploader::delivery","span":{"bucket":"b","bytes":100,"key":"ws1001/metrics_v5_1001_000000000007.parquet","seq":7,"table":"metrics","workspace_id":1001,"name":"upload"},"spans":[{"name":"upload"}]}"#;

    #[test]
    fn uploaded_lines_give_key_and_time() {
        let (key, ms) = parse_uploaded(LINE).expect("parsed");
        assert_eq!(key, "ws1001/metrics_v5_1001_000000000007.parquet");
        assert_eq!(ms, 1_795_925_880_250);
        assert_eq!(parse_uploaded(&LINE.replace("Uploaded a file.", "Handed off.")), None);
        assert_eq!(parse_uploaded("Uploaded a file. (not json)"), None);
    }

    #[test]
    fn the_log_is_read_as_it_grows() {
        let path = std::env::temp_dir().join(format!("dwsync-bench-log-{}.log", std::process::id()));
        std::fs::write(&path, format!("{LINE}\n{}", &LINE[..40])).expect("write");
        let mut log = UploadLog::new(&path);
        log.poll();
        assert_eq!(log.visible().len(), 1);
        let second = LINE.replace("000000000007", "000000000009");
        std::fs::write(&path, format!("{LINE}\n{second}\n")).expect("write");
        // The half line was completed in place: the reader picks up where it stopped.
        log.poll();
        let _ = std::fs::remove_file(&path);
        assert_eq!(log.visible().len(), 2, "{:?}", log.visible());
    }
}
