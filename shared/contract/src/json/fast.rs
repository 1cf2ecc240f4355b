//! The fast path of the JSON decoder: one pass over a flat object, no serde.
//!
//! It answers only for what it fully understands — an object whose keys need no unescaping and
//! whose values are strings, integers, booleans, nulls or arrays of strings of the types the
//! contract wants — and returns the same slots the serde path would. For anything else (a syntax
//! error, a float, a nested value, a duplicate key, a value of the wrong type, a timestamp in a
//! rarer RFC 3339 form) it returns `None` and the serde path decodes the record and names the
//! problem. Tests compare both paths on valid and mutated records.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::rfc3339;
use crate::row::Value;
use crate::table::{FieldType, Table, TableDef};

/// The slots of a record (`None` = field absent), or `None` when the serde path must decide.
pub(super) fn decode(table: Table, input: &[u8]) -> Option<Vec<Option<Value<'_>>>> {
    let def = table.def();
    let keys = key_index(table);
    let mut slots: Vec<Option<Value<'_>>> = vec![None; def.fields.len()];
    // One UTF-8 check for the whole record: strings are then slices of `text`.
    let text = std::str::from_utf8(input).ok()?;
    let mut s = Scan { b: input, text, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            s.eat(b'"')?;
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match keys.get(def, key) {
                Some(i) => match &mut slots[i] {
                    // Filled only when empty: no drop of the old value (it was a call per field).
                    slot @ None => _ = slot.get_or_insert(s.value(def.fields[i].ty)?),
                    Some(_) => return None,
                },
                None => s.skip_scalar()?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == input.len()).then_some(slots)
}

/// A cursor over the input.
struct Scan<'a> {
    b: &'a [u8],
    /// The same bytes, known to be UTF-8.
    text: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// One value for a field of type `ty`.
    fn value(&mut self, ty: FieldType) -> Option<Value<'a>> {
        match (self.peek()?, ty) {
            (b'n', _) => self.literal(b"null").map(|()| Value::Null),
            (b'"', FieldType::Utf8) => {
                self.i += 1;
                self.string().map(Value::Str)
            }
            (b'"', FieldType::Timestamp) => {
                self.i += 1;
                let s = self.string()?;
                rfc3339::parse_ms(s.as_bytes()).map(Value::TimestampMs)
            }
            (b'-' | b'0'..=b'9', FieldType::Int64) => self.int().map(Value::Int),
            (b'-' | b'0'..=b'9', FieldType::Timestamp) => self.int().map(Value::TimestampMs),
            (b't', FieldType::Boolean) => self.literal(b"true").map(|()| Value::Bool(true)),
            (b'f', FieldType::Boolean) => self.literal(b"false").map(|()| Value::Bool(false)),
            (b'[', FieldType::ListUtf8) => {
                self.i += 1;
                self.strings().map(Value::List)
            }
            _ => None,
        }
    }

    /// An array of strings, after its `[`.
    fn strings(&mut self) -> Option<Vec<Cow<'a, str>>> {
        let mut items = Vec::new();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(items);
        }
        loop {
            self.eat(b'"')?;
            items.push(self.string()?);
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(items),
                _ => return None,
            }
        }
    }

    /// An integer that surely fits in an `i64` (at most 18 digits; no fraction or exponent; not
    /// `-0`, which serde reads as a float).
    fn int(&mut self) -> Option<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == 18 {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || (len > 1 && self.b[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        match (negative, n) {
            (true, 0) => None,
            (true, n) => Some(-n),
            (false, n) => Some(n),
        }
    }

    /// Skips the value of a key the table does not have, when it is a scalar.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(drop)
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.int().map(drop),
        }
    }

    /// A string without escapes, after its opening quote (for keys).
    fn plain_string(&mut self) -> Option<&'a str> {
        let (run, end) = self.run()?;
        (end == b'"').then_some(run)
    }

    /// A string after its opening quote: borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (run, mut end) = self.run()?;
        if end == b'"' {
            return Some(Cow::Borrowed(run));
        }
        let mut out = String::with_capacity(run.len() + 64);
        out.push_str(run);
        while end == b'\\' {
            out.push(self.escape()?);
            let (run, next) = self.run()?;
            out.push_str(run);
            end = next;
        }
        Some(Cow::Owned(out))
    }

    /// The characters up to the next `"` or `\\` and that byte, which is consumed; `None` at a
    /// control character (JSON wants them escaped) or the end of the input.
    #[inline(always)]
    fn run(&mut self) -> Option<(&'a str, u8)> {
        let start = self.i;
        let found = match self.short_run_end() {
            Some(found) => found,
            None => {
                // A long string: memchr, then one pass for control characters.
                let from = start + SHORT_RUN;
                let found = from + memchr::memchr2(b'"', b'\\', self.b.get(from..)?)?;
                if self.b[from..found].iter().fold(false, |control, &c| control | (c < 0x20)) {
                    return None;
                }
                found
            }
        };
        let last = *self.b.get(found)?;
        if last < 0x20 {
            return None;
        }
        self.i = found + 1;
        // Both ends sit next to ASCII bytes, so they are character boundaries.
        Some((self.text.get(start..found)?, last))
    }

    /// Where the run starting at the cursor ends (its first `"`, `\\` or control character, or
    /// past the input), when that is within [`SHORT_RUN`] bytes. Eight bytes at a time: most
    /// strings are short, and this costs less than memchr's set-up plus a second pass for
    /// control characters. The input's last bytes are padded with quotes.
    #[inline(always)]
    fn short_run_end(&self) -> Option<usize> {
        let mut at = self.i;
        while at < self.i + SHORT_RUN {
            let word = match self.b.get(at..at + 8) {
                Some(word) => u64::from_le_bytes(word.try_into().ok()?),
                None => {
                    let mut padded = [b'"'; 8];
                    let rest = self.b.get(at..).unwrap_or_default();
                    padded[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(padded)
                }
            };
            let ends = run_ends(word);
            if ends != 0 {
                return Some(at + (ends.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        None
    }

    /// The character of an escape, after its backslash.
    fn escape(&mut self) -> Option<char> {
        Some(match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                if (0xD800..0xDC00).contains(&high) {
                    self.literal(b"\\u")?;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    char::from_u32(high)?
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits.iter().try_fold(0u32, |n, &c| Some(n * 16 + char::from(c).to_digit(16)?))
    }
}

/// Bytes of a string scanned eight at a time before memchr takes over.
const SHORT_RUN: usize = 32;

/// `b` in every byte of a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of every zero byte of `word`, and no other bit (no borrow between bytes).
const fn zero_bytes(word: u64) -> u64 {
    !(((word & splat(0x7f)) + splat(0x7f)) | word | splat(0x7f))
}

/// The high bit of every byte of `word` (little-endian) that ends a string run: `"`, `\\` or a
/// control character.
const fn run_ends(word: u64) -> u64 {
    zero_bytes(word ^ splat(b'"')) | zero_bytes(word ^ splat(b'\\')) | zero_bytes(word & splat(0xe0))
}

/// Field lookup by name for one table: open addressing over a small power-of-two table.
struct KeyIndex {
    slots: [u8; KEY_SLOTS],
}

const KEY_SLOTS: usize = 128;
const EMPTY: u8 = u8::MAX;

impl KeyIndex {
    fn new(def: &TableDef) -> Self {
        let mut slots = [EMPTY; KEY_SLOTS];
        for (i, field) in def.fields.iter().enumerate() {
            let mut h = key_hash(field.name.as_bytes());
            while slots[h] != EMPTY {
                h = (h + 1) % KEY_SLOTS;
            }
            slots[h] = u8::try_from(i).unwrap_or(EMPTY);
        }
        Self { slots }
    }

    /// The column called `name`.
    fn get(&self, def: &TableDef, name: &str) -> Option<usize> {
        let mut h = key_hash(name.as_bytes());
        loop {
            let i = usize::from(self.slots[h]);
            if i == usize::from(EMPTY) {
                return None;
            }
            if same_key(def.fields[i].name.as_bytes(), name.as_bytes()) {
                return Some(i);
            }
            h = (h + 1) % KEY_SLOTS;
        }
    }
}

/// Whether two keys are equal, eight bytes at a time (keys are short: a call to `memcmp` cost
/// more than the comparison).
fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let words_equal = a8.by_ref().zip(b8.by_ref()).all(|(x, y)| word(x) == word(y));
    words_equal && a8.remainder().iter().zip(b8.remainder()).all(|(x, y)| x == y)
}

/// Eight bytes as a word.
fn word(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_ne_bytes)
}

fn key_hash(name: &[u8]) -> usize {
    let (first, last) = (name.first().copied().unwrap_or(0), name.last().copied().unwrap_or(0));
    let middle = name.get(name.len() / 2).copied().unwrap_or(0);
    (name.len() * 31 + usize::from(first) * 7 + usize::from(middle) * 3 + usize::from(last)) % KEY_SLOTS
}

fn key_index(table: Table) -> &'static KeyIndex {
    static INDEXES: OnceLock<Vec<KeyIndex>> = OnceLock::new();
    // `Table::ALL` lists the tables in declaration order, so a table's discriminant is its index.
    let indexes = INDEXES.get_or_init(|| Table::ALL.iter().map(|t| KeyIndex::new(t.def())).collect());
    &indexes[table as usize]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::json::{decode_json, decode_with_serde};

    /// Records the fast path must answer, one per table shape that matters.
    const ANSWERED: &[(Table, &str)] = &[
        (
            Table::Metrics,
            r#"{"workspace_id": 7, "event_id": "e\u00e9\ud83d\ude00", "delivery_id": "d\"q\"", "metric": "opened", "created_at": "2026-11-29T01:02:03.456+05:30", "seq_num": -12, "proxied": false, "prefetched": false, "machine": true, "link_id": 0, "user_agent": "Mozilla/5.0 \u2603", "mx_host": "", "extra": -3}"#,
        ),
        (
            Table::Attributes,
            "{\"workspace_id\":1,\"internal_customer_id\":\"c\",\"attribute_name\":\"ü\",\"attribute_value\":\"\",\"timestamp\":-1000}",
        ),
        (
            Table::Attributes,
            "\t{ \"timestamp\" : \"1969-12-31T23:59:59.9999Z\" ,\r\n \"workspace_id\":1,\"internal_customer_id\":\"c\",\"attribute_name\":\"a\",\"attribute_value\":\"v\",\"unknown\":\"x\\ty\",\"n\":null,\"t\":true} \n",
        ),
        (
            Table::Campaigns,
            r#"{"workspace_id": 3, "campaign_id": 0, "name": "\/\\\b\f\r\t", "created_at": 1, "updated_at": 2, "version": 9223372036854775, "topic_names": null}"#,
        ),
        (Table::Attributes, "{}"),
        (
            Table::Attributes,
            r#"{"workspace_id": 0, "internal_customer_id": "c", "attribute_name": "a", "attribute_value": "v", "timestamp": 1}"#,
        ),
        (
            Table::Attributes,
            r#"{"workspace_id": 1, "internal_customer_id": null, "attribute_name": "a", "attribute_value": "v", "timestamp": 1}"#,
        ),
        (
            Table::Attributes,
            r#"{"workspace_id": 1, "internal_customer_id": "c", "attribute_name": "a", "attribute_value": "v", "timestamp": 999999999999999999}"#,
        ),
    ];

    /// Records the fast path must leave to serde (it would get them wrong or cannot name the error).
    const DECLINED: &[(Table, &str)] = &[
        (Table::Attributes, "[1]"),
        (Table::Attributes, r#"{"workspace_id": 1, "workspace_id": 1}"#),
        (Table::Attributes, r#"{"workspace_id": "1"}"#),
        (Table::Attributes, r#"{"workspace_id": 1.0}"#),
        (Table::Attributes, r#"{"workspace_id": -0}"#),
        (Table::Attributes, r#"{"workspace_id": 01}"#),
        (Table::Attributes, r#"{"workspace_id": 1234567890123456789}"#),
        (Table::Attributes, r#"{"timestamp": "2026-11-29 01:02:03Z"}"#),
        (Table::Attributes, r#"{"timestamp": "2026-02-30T01:02:03Z"}"#),
        (Table::Attributes, r#"{"attribute_name": "\ud83d"}"#),
        (Table::Attributes, r#"{"attribute_name": "\udc00"}"#),
        (Table::Attributes, "{\"attribute_name\": \"tab\there\"}"),
        (Table::Attributes, r#"{"attr\u0069bute_name": "a"}"#),
        (Table::Attributes, r#"{"nested": {"a": 1}}"#),
        (Table::Attributes, r#"{"unknown": 1.5e3}"#),
        (Table::Attributes, r#"{"workspace_id": 1,}"#),
        (Table::Attributes, r#"{"workspace_id": 1} x"#),
        (Table::Campaigns, r#"{"topic_names": ["a", 1]}"#),
        (Table::Campaigns, r#"{"topic_names": "a"}"#),
    ];

    #[test]
    fn answers_the_common_records_exactly_as_serde_does() {
        for &(table, json) in ANSWERED {
            let slots = decode(table, json.as_bytes()).unwrap_or_else(|| panic!("declined {json}"));
            assert_eq!(crate::Row::from_slots(table, slots), decode_with_serde(table, json.as_bytes()), "{json}");
        }
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for &(table, json) in DECLINED {
            assert!(decode(table, json.as_bytes()).is_none(), "answered {json}");
            assert_eq!(decode_json(table, json.as_bytes()), decode_with_serde(table, json.as_bytes()));
        }
    }

    #[test]
    fn finds_every_field_of_every_table_and_nothing_else() {
        for &table in Table::ALL {
            let def = table.def();
            for (i, field) in def.fields.iter().enumerate() {
                assert_eq!(key_index(table).get(def, field.name), Some(i), "{table} {}", field.name);
            }
            for name in ["", "x", "workspace", "workspace_idx", "id", "created_atZ"] {
                assert_eq!(key_index(table).get(def, name), None, "{table} {name}");
            }
        }
    }

    #[test]
    fn strings_end_at_their_quote_and_refuse_control_characters_at_any_position() {
        for len in 1..80 {
            for at in 0..len {
                for special in ["\\\"", "\\n", "\\u00e9", "\u{1}", "\t", "é"] {
                    let value: String = (0..len).map(|i| if i == at { special } else { "a" }).collect();
                    let json = format!(
                        r#"{{"workspace_id": 1, "internal_customer_id": "{value}", "attribute_name": "a", "attribute_value": "v", "timestamp": 1}}"#
                    );
                    let fast = decode(Table::Attributes, json.as_bytes())
                        .map(|slots| crate::Row::from_slots(Table::Attributes, slots));
                    let control = special.chars().any(char::is_control);
                    assert_eq!(fast.is_none(), control, "{json}");
                    if let Some(row) = fast {
                        assert_eq!(row, decode_with_serde(Table::Attributes, json.as_bytes()), "{json}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_word_marks_exactly_the_bytes_that_end_a_run() {
        let ends = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        // Every pair of byte values, at every two positions, among fillers of both halves.
        for filler in [b'a', 0x7f, 0x80, 0xff] {
            for x in 0..=255u8 {
                for y in 0..=255u8 {
                    for (i, j) in [(0, 1), (1, 0), (3, 4), (6, 7), (0, 7)] {
                        let mut bytes = [filler; 8];
                        bytes[i] = x;
                        bytes[j] = y;
                        let expected: u64 =
                            bytes.iter().enumerate().filter(|&(_, &c)| ends(c)).map(|(k, _)| 0x80 << (8 * k)).sum();
                        assert_eq!(run_ends(u64::from_le_bytes(bytes)), expected, "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn keys_are_equal_only_when_every_byte_is() {
        let keys = ["", "a", "ab", "workspace_id", "workspace_ie", "created_at", "created_au", "1234567", "12345678"];
        for a in keys {
            for b in keys {
                assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
        assert!(!same_key(b"123456789", b"123456780"));
        assert!(!same_key(b"x23456789", b"123456789"));
    }

    /// Bytes that matter to JSON, to splice into valid records.
    fn json_byte() -> impl Strategy<Value = u8> {
        prop_oneof![prop::sample::select(b"{}[]\":,\\ \t\n0123456789.eE-+ntfurlsa/bu\x00\x1f".to_vec()), any::<u8>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the fast path answers for a mutated record is what serde would have said.
        #[test]
        fn mutated_records_decode_as_serde_decodes_them(
            seed in 0..ANSWERED.len(),
            edits in prop::collection::vec((0usize..400, 0usize..3, prop::collection::vec(json_byte(), 0..4)), 1..4),
        ) {
            let (table, json) = ANSWERED[seed];
            let mut input = json.as_bytes().to_vec();
            for (at, removed, inserted) in edits {
                let at = at % (input.len() + 1);
                let end = (at + removed).min(input.len());
                input.splice(at..end, inserted);
            }
            if let Some(slots) = decode(table, &input) {
                prop_assert_eq!(crate::Row::from_slots(table, slots), decode_with_serde(table, &input));
            }
        }
    }
}
