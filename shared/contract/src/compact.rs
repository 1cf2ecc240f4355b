//! Rows kept as one byte vector: how a [`BatchBuilder`](crate::BatchBuilder) holds its first rows.
//!
//! A column builder per field costs about half a kilobyte before its first value; 40,000 small
//! windows (10,000 workspaces × 4 tables) would pay that 17 times each. A few rows cost their
//! bytes and a tag per value here instead.

use std::borrow::Cow;

use crate::row::Value;

const NULL: u8 = 0;
const INT: u8 = 1;
const STR: u8 = 2;
const FALSE: u8 = 3;
const TRUE: u8 = 4;
const TIMESTAMP: u8 = 5;
const LIST: u8 = 6;

/// Rows of one table, each value a tag and its bytes.
#[derive(Debug, Default)]
pub(crate) struct CompactRows {
    buf: Vec<u8>,
}

impl CompactRows {
    /// Appends one row's values.
    pub(crate) fn push<'v, 'w: 'v>(&mut self, values: impl IntoIterator<Item = &'v Value<'w>>) {
        for value in values {
            match value {
                Value::Null => self.buf.push(NULL),
                Value::Int(v) => self.tagged(INT, &v.to_le_bytes()),
                Value::TimestampMs(v) => self.tagged(TIMESTAMP, &v.to_le_bytes()),
                Value::Bool(v) => self.buf.push(if *v { TRUE } else { FALSE }),
                Value::Str(s) => {
                    self.buf.push(STR);
                    self.string(s);
                }
                Value::List(items) => {
                    self.buf.push(LIST);
                    self.len(items.len());
                    for s in items {
                        self.string(s);
                    }
                }
            }
        }
    }

    /// Bytes of the rows held.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets every row and frees the buffer.
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
    }

    /// The rows, each as `width` values, in the order they were pushed.
    pub(crate) fn rows(&self, width: usize) -> impl Iterator<Item = Vec<Value<'_>>> + '_ {
        let mut rest: &[u8] = &self.buf;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            Some((0..width).map(|_| read_value(&mut rest)).collect())
        })
    }

    /// Per field of rows `width` values wide: the bytes of its strings and the items of its
    /// lists, what its column needs room for. Reads tags and lengths only (no row is decoded).
    pub(crate) fn sizes(&self, width: usize) -> Vec<(usize, usize)> {
        let mut sizes = vec![(0, 0); width];
        let mut rest: &[u8] = &self.buf;
        for field in (0..width).cycle() {
            if rest.is_empty() {
                break;
            }
            let (mut bytes, mut items) = (0, 0);
            match take(&mut rest, 1).first().copied().unwrap_or(NULL) {
                INT | TIMESTAMP => _ = take(&mut rest, 8),
                STR => bytes = skip_str(&mut rest),
                LIST => {
                    items = read_u32(&mut rest);
                    bytes = (0..items).map(|_| skip_str(&mut rest)).sum();
                }
                _ => {}
            }
            if let Some(size) = sizes.get_mut(field) {
                size.0 += bytes;
                size.1 += items;
            }
        }
        sizes
    }

    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.buf.push(tag);
        self.buf.extend_from_slice(bytes);
    }

    fn len(&mut self, len: usize) {
        self.buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }
}

/// Takes `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

fn read_u32(rest: &mut &[u8]) -> usize {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(take(rest, 4));
    u32::from_le_bytes(bytes) as usize
}

fn read_i64(rest: &mut &[u8]) -> i64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(take(rest, 8));
    i64::from_le_bytes(bytes)
}

fn read_str<'a>(rest: &mut &'a [u8]) -> Cow<'a, str> {
    let len = read_u32(rest);
    // Written from a `&str` by `push`, so always UTF-8.
    Cow::Borrowed(std::str::from_utf8(take(rest, len)).unwrap_or_default())
}

/// Skips a string; returns its length in bytes.
fn skip_str(rest: &mut &[u8]) -> usize {
    let len = read_u32(rest);
    take(rest, len).len()
}

fn read_value<'a>(rest: &mut &'a [u8]) -> Value<'a> {
    match take(rest, 1).first().copied().unwrap_or(NULL) {
        INT => Value::Int(read_i64(rest)),
        TIMESTAMP => Value::TimestampMs(read_i64(rest)),
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        STR => Value::Str(read_str(rest)),
        LIST => {
            let n = read_u32(rest);
            Value::List((0..n).map(|_| read_str(rest)).collect())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_as_they_went_in() {
        let rows = vec![
            vec![Value::Int(-7), Value::Str("héllo".into()), Value::Null, Value::Bool(true)],
            vec![
                Value::TimestampMs(1_700_000_000_123),
                Value::List(vec!["a".into(), "".into(), "ζ".into()]),
                Value::Bool(false),
                Value::List(vec![]),
            ],
            vec![Value::Str(String::new().into()), Value::Int(i64::MAX), Value::Null, Value::Null],
        ];
        let mut compact = CompactRows::default();
        for row in &rows {
            compact.push(row);
        }
        assert_eq!(compact.rows(4).collect::<Vec<_>>(), rows);
        // "héllo" is 6 bytes; the lists hold "a", "", "ζ" (3 bytes, 3 items) and nothing.
        assert_eq!(compact.sizes(4), vec![(0, 0), (6 + 3, 3), (0, 0), (0, 0)]);
        compact.clear();
        assert_eq!(compact.rows(4).count(), 0);
        assert_eq!(compact.capacity(), 0);
    }
}
