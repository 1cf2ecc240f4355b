//! The record generator: record `n` of a table in a workspace, as a field map, JSON and protobuf.

use dwsync_contract::{Encoding, Table};
use serde_json::{Map, Value};

use crate::ids::id_column;
use crate::protobuf::{self, encode_protobuf};
use crate::rng::{Rng, hash};
use crate::tables::{self, Ctx};

/// One generated record of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Contract field names → values; a nullable field is absent or `null` when NULL.
    pub fields: Map<String, Value>,
    /// The record as one JSON object (the `fields`).
    pub json: Vec<u8>,
    /// The record as its table's `dwsync.v5` protobuf message.
    pub protobuf: Vec<u8>,
    /// The value of the table's [`id_column`](crate::id_column), as a string.
    pub id: String,
}

impl Record {
    /// The record's bytes in `encoding`.
    pub fn encoded(&self, encoding: Encoding) -> &[u8] {
        match encoding {
            Encoding::Json => &self.json,
            Encoding::Protobuf => &self.protobuf,
        }
    }
}

/// A deterministic generator: the same seed, table, workspace and `n` always give the same
/// record, whatever was generated before.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    generated: u64,
}

impl Generator {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, generated: 0 }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many records (good or malformed) this generator has made.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// Record `n` of `table` in workspace `workspace_id` (positive).
    pub fn record(&mut self, table: Table, workspace_id: i64, n: u64) -> Record {
        self.generated += 1;
        let fields = self.fields(table, workspace_id, n);
        // Serializing a map of JSON values cannot fail.
        let json = serde_json::to_vec(&fields).unwrap_or_default();
        // The tables module only writes values of the contract's types.
        let protobuf = encode_protobuf(table, &fields).unwrap_or_default();
        let id = match fields.get(id_column(table)) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        Record { fields, json, protobuf, id }
    }

    /// The field map of record `n` (what [`Generator::record`] encodes).
    pub fn fields(&self, table: Table, workspace_id: i64, n: u64) -> Map<String, Value> {
        let rng = Rng::new(hash(&[self.seed, table as u64, workspace_id as u64, n]));
        let mut ctx = Ctx::new(rng, self.seed, table, workspace_id, n);
        tables::fill(&mut ctx);
        ctx.into_fields()
    }

    /// A malformed message standing in for record `n`: the decoder of `encoding` must reject it.
    ///
    /// The kind rotates with `n`: not JSON / truncated protobuf, a wrong type, a missing field,
    /// an invalid workspace id.
    pub fn malformed(&mut self, table: Table, workspace_id: i64, n: u64, encoding: Encoding) -> Vec<u8> {
        let good = self.record(table, workspace_id, n);
        let def = table.def();
        let ws_number = def.index_of("workspace_id").unwrap_or(0) as u64 + 1;
        match (encoding, n % 4) {
            (Encoding::Json, 0) => good.json[..good.json.len() / 2].to_vec(),
            (Encoding::Json, 1) => with(good.fields, "workspace_id", Value::from(workspace_id.to_string())),
            (Encoding::Json, 2) => {
                let mut fields = good.fields;
                if let Some(f) = def.fields.iter().find(|f| !f.nullable && f.name != "workspace_id") {
                    let _ = fields.remove(f.name);
                }
                serde_json::to_vec(&fields).unwrap_or_default()
            }
            (Encoding::Json, _) => with(good.fields, "workspace_id", Value::from(-workspace_id)),
            (Encoding::Protobuf, 0) => {
                // A length-delimited field running past the end of the message.
                let mut out = good.protobuf;
                protobuf::key(&mut out, 1000, 2);
                protobuf::varint(&mut out, 100);
                out
            }
            (Encoding::Protobuf, 1) => {
                let mut out = good.protobuf;
                protobuf::bytes(&mut out, ws_number, workspace_id.to_string().as_bytes());
                out
            }
            (Encoding::Protobuf, 2) => {
                // A bare continuation byte: a varint that never ends.
                let mut out = good.protobuf;
                out.push(0x80);
                out
            }
            (Encoding::Protobuf, _) => {
                let mut out = good.protobuf;
                protobuf::key(&mut out, ws_number, 0);
                protobuf::varint(&mut out, (-workspace_id) as u64);
                out
            }
        }
    }
}

fn with(mut fields: Map<String, Value>, name: &str, value: Value) -> Vec<u8> {
    let _ = fields.insert(name.to_owned(), value);
    serde_json::to_vec(&fields).unwrap_or_default()
}
