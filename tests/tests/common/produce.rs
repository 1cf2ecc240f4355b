//! Records produced into the source topics, and what was produced, to check against.

use super::*;

/// The `[kafka]` section of a broker reached in plain text at `bootstrap`.
pub fn plaintext(bootstrap: &str) -> KafkaConfig {
    KafkaConfig { bootstrap_servers: bootstrap.to_owned(), ..KafkaConfig::default() }
}

/// One produced record: its number, bytes and encoding.
pub struct Sent {
    pub n: u64,
    pub bytes: Vec<u8>,
    pub encoding: Encoding,
}

/// What the test produced: per (workspace, table), record id → the record sent.
#[derive(Default)]
pub struct Produced {
    pub records: BTreeMap<(i64, Table), BTreeMap<String, Sent>>,
}

impl Produced {
    pub fn total(&self) -> usize {
        self.records.values().map(BTreeMap::len).sum()
    }
}

/// Produces records `from..to` of every (workspace, table), keyed by workspace.
pub async fn produce(
    stack: &Stack,
    producer: &FutureProducer,
    generator: &mut Generator,
    scope: (&[i64], &[Table]),
    numbers: std::ops::Range<u64>,
    produced: &mut Produced,
) {
    produce_keyed(stack, producer, generator, scope, numbers, produced, Keys::Workspace).await;
}

/// How produced records are keyed, which decides their partitions.
#[derive(Debug, Clone, Copy)]
pub enum Keys {
    /// By workspace: all of a workspace's records of a table in one partition.
    Workspace,
    /// By record number: a workspace's records spread over every partition of the topic, so
    /// each window holds records of several partitions.
    Record,
}

/// Produces records `from..to` of every (workspace, table), keyed as `keys` says.
pub async fn produce_keyed(
    stack: &Stack,
    producer: &FutureProducer,
    generator: &mut Generator,
    (workspaces, tables): (&[i64], &[Table]),
    numbers: std::ops::Range<u64>,
    produced: &mut Produced,
    keys: Keys,
) {
    let mut pending = Vec::new();
    for n in numbers {
        for &ws in workspaces {
            for &table in tables {
                let record = generator.record(table, ws, n);
                // One in five JSON-topic records travels as protobuf, flagged by its content-type.
                let mut enc = encoding_of(table);
                let mut headers = None;
                if enc == Encoding::Json && n % 5 == 4 {
                    enc = Encoding::Protobuf;
                    headers = Some(
                        OwnedHeaders::new()
                            .insert(Header { key: "content-type", value: Some("application/x-protobuf") }),
                    );
                }
                let bytes = record.encoded(enc).to_vec();
                let topic = format!("{}{}", stack.prefix, table.name());
                let key = match keys {
                    Keys::Workspace => ws.to_string(),
                    Keys::Record => format!("{ws}-{n}"),
                };
                let mut rec = FutureRecord::to(&topic).key(&key).payload(&bytes);
                if let Some(h) = headers {
                    rec = rec.headers(h);
                }
                pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
                let _ = produced
                    .records
                    .entry((ws, table))
                    .or_default()
                    .insert(record.id, Sent { n, bytes, encoding: enc });
            }
        }
    }
    for p in pending {
        let _ = p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

pub fn producer() -> FutureProducer {
    producer_on(&kafka_bootstrap())
}

/// An idempotent producer on the broker at `bootstrap`.
pub fn producer_on(bootstrap: &str) -> FutureProducer {
    idempotent(kafka_config_on(bootstrap))
}

/// An idempotent producer on the stack's broker, with its security settings.
pub fn producer_of(stack: &Stack) -> FutureProducer {
    idempotent(stack.client_config("test-producer"))
}

fn idempotent(mut config: rdkafka::ClientConfig) -> FutureProducer {
    config.set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap()
}
