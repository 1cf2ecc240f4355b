//! The record on the configuration topic: key = workspace id in decimal, value = `SyncConfig`
//! protobuf (`dwsync.internal.v1`), no value = deleted.

use std::collections::BTreeMap;

use dwsync_contract::Table;
use dwsync_proto::Message as _;
use dwsync_proto::internal as pb;

use crate::model::{Baseline, Destination, GcsStore, S3Store, Store, SyncConfig, TableState, WorkspaceId};
use crate::seal::Sealed;

/// Why a record on the topic could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The key is not a workspace id.
    #[error("record key is not a workspace id")]
    Key,
    /// The value is not a `SyncConfig` protobuf.
    #[error("record value is not a SyncConfig: {0}")]
    Protobuf(String),
    /// The value is a `SyncConfig` but breaks a rule.
    #[error("record value: {0}")]
    Invalid(&'static str),
}

/// The record key of `id`.
pub fn key(id: WorkspaceId) -> String {
    id.to_string()
}

/// Parses a record key.
pub fn decode_key(key: &[u8]) -> Result<WorkspaceId, DecodeError> {
    std::str::from_utf8(key).ok().and_then(|k| k.parse().ok()).ok_or(DecodeError::Key)
}

/// Encodes `cfg` as the record value.
pub fn encode(cfg: &SyncConfig) -> Vec<u8> {
    to_proto(cfg).encode_to_vec()
}

/// Decodes a record value.
pub fn decode(bytes: &[u8]) -> Result<SyncConfig, DecodeError> {
    let msg = pb::SyncConfig::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    from_proto(msg)
}

/// The protobuf form of `cfg`.
pub fn to_proto(cfg: &SyncConfig) -> pb::SyncConfig {
    pb::SyncConfig {
        workspace_id: cfg.workspace_id.get(),
        schema_version: cfg.schema_version,
        destination: Some(destination_to_proto(&cfg.destination)),
        tables: cfg
            .tables
            .iter()
            .map(|(t, s)| pb::TableState {
                table: t.name().to_owned(),
                enabled: s.enabled,
                changed_at_ms: s.changed_at_ms,
                baseline: s.baseline.map(|b| pb::Baseline {
                    epoch: b.epoch,
                    partition: b.partition,
                    cut: b.cut,
                    at_ms: b.at_ms,
                    replay_from: b.replay_from,
                }),
                off_from: s.off_from,
            })
            .collect(),
        disabled: cfg.disabled,
        updated_at_ms: cfg.updated_at_ms,
        revision: cfg.revision,
    }
}

/// The domain form of `msg`; unknown table names are refused (they were validated on write).
pub fn from_proto(msg: pb::SyncConfig) -> Result<SyncConfig, DecodeError> {
    let workspace_id =
        WorkspaceId::new(msg.workspace_id).ok_or(DecodeError::Invalid("workspace_id is not positive"))?;
    let destination = destination_from_proto(msg.destination.ok_or(DecodeError::Invalid("no destination"))?)?;
    let mut tables = BTreeMap::new();
    for t in msg.tables {
        let table = t.table.parse::<Table>().map_err(|_| DecodeError::Invalid("unknown table"))?;
        let baseline = t.baseline.map(|b| Baseline {
            epoch: b.epoch,
            partition: b.partition,
            cut: b.cut,
            at_ms: b.at_ms,
            replay_from: b.replay_from,
        });
        let state = TableState { enabled: t.enabled, changed_at_ms: t.changed_at_ms, baseline, off_from: t.off_from };
        let _ = tables.insert(table, state);
    }
    Ok(SyncConfig {
        workspace_id,
        schema_version: msg.schema_version,
        destination,
        tables,
        disabled: msg.disabled,
        updated_at_ms: msg.updated_at_ms,
        revision: msg.revision,
    })
}

fn sealed_to_proto(sealed: &Sealed) -> pb::SealedSecret {
    pb::SealedSecret {
        key_id: sealed.key_id.clone(),
        nonce: sealed.nonce.clone(),
        ciphertext: sealed.ciphertext.clone(),
    }
}

fn sealed_from_proto(sealed: pb::SealedSecret) -> Sealed {
    Sealed { key_id: sealed.key_id, nonce: sealed.nonce, ciphertext: sealed.ciphertext }
}

fn destination_to_proto(d: &Destination) -> pb::sync_config::Destination {
    use pb::sync_config::Destination as Pb;
    match &d.store {
        Store::S3(s3) => Pb::S3(pb::S3Destination {
            bucket: d.bucket.clone(),
            prefix: d.prefix.clone(),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            force_path_style: s3.force_path_style,
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: Some(sealed_to_proto(&s3.secret_access_key)),
            conditional_writes: s3.conditional_writes,
        }),
        Store::Gcs(gcs) => Pb::Gcs(pb::GcsDestination {
            bucket: d.bucket.clone(),
            prefix: d.prefix.clone(),
            endpoint: gcs.endpoint.clone(),
            client_email: gcs.client_email.clone(),
            service_account_key: Some(sealed_to_proto(&gcs.service_account_key)),
        }),
    }
}

fn destination_from_proto(d: pb::sync_config::Destination) -> Result<Destination, DecodeError> {
    use pb::sync_config::Destination as Pb;
    Ok(match d {
        Pb::S3(d) => {
            let sealed = d.secret_access_key.ok_or(DecodeError::Invalid("no secret_access_key"))?;
            let store = Store::S3(S3Store {
                region: d.region,
                endpoint: d.endpoint,
                force_path_style: d.force_path_style,
                conditional_writes: d.conditional_writes,
                access_key_id: d.access_key_id,
                secret_access_key: sealed_from_proto(sealed),
            });
            Destination { bucket: d.bucket, prefix: d.prefix, store }
        }
        Pb::Gcs(d) => {
            let sealed = d.service_account_key.ok_or(DecodeError::Invalid("no service_account_key"))?;
            let store = Store::Gcs(GcsStore {
                endpoint: d.endpoint,
                client_email: d.client_email,
                service_account_key: sealed_from_proto(sealed),
            });
            Destination { bucket: d.bucket, prefix: d.prefix, store }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SCHEMA_VERSION;

    fn config() -> SyncConfig {
        SyncConfig {
            workspace_id: WorkspaceId::new(42).expect("id"),
            schema_version: SCHEMA_VERSION,
            destination: Destination {
                bucket: "acme".into(),
                prefix: "dw".into(),
                store: Store::S3(S3Store {
                    region: "eu-west-1".into(),
                    endpoint: Some("https://s3.example.com".into()),
                    force_path_style: true,
                    conditional_writes: true,
                    access_key_id: "AKIA".into(),
                    secret_access_key: Sealed { key_id: "k1".into(), nonce: vec![1; 12], ciphertext: vec![2; 20] },
                }),
            },
            tables: Table::ALL
                .iter()
                .map(|t| {
                    (
                        *t,
                        TableState {
                            enabled: *t != Table::People,
                            changed_at_ms: 7,
                            off_from: (*t == Table::People).then_some(40),
                            baseline: (*t == Table::Metrics).then_some(Baseline {
                                epoch: 3,
                                partition: 2,
                                cut: 99,
                                at_ms: 6,
                                replay_from: Some(50),
                            }),
                        },
                    )
                })
                .collect(),
            disabled: true,
            updated_at_ms: 9,
            revision: 3,
        }
    }

    #[test]
    fn round_trip() {
        let cfg = config();
        assert_eq!(decode(&encode(&cfg)), Ok(cfg));
        assert_eq!(
            decode_key(key(WorkspaceId::new(42).expect("id")).as_bytes()),
            Ok(WorkspaceId::new(42).expect("id"))
        );
    }

    #[test]
    fn gcs_destinations_round_trip() {
        let mut cfg = config();
        cfg.destination.store = Store::Gcs(GcsStore {
            endpoint: None,
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            service_account_key: Sealed { key_id: "k1".into(), nonce: vec![3; 12], ciphertext: vec![4; 30] },
        });
        assert_eq!(decode(&encode(&cfg)), Ok(cfg));
    }

    /// A record as written before destinations had kinds: `SyncConfig.destination = 3` was an
    /// `S3Destination` field, not a oneof.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldSyncConfig {
        #[prost(int64, tag = "1")]
        workspace_id: i64,
        #[prost(uint32, tag = "2")]
        schema_version: u32,
        #[prost(message, optional, tag = "3")]
        destination: Option<pb::S3Destination>,
        #[prost(uint64, tag = "7")]
        revision: u64,
    }

    #[test]
    fn records_written_before_kinds_decode_as_s3() {
        let Some(pb::sync_config::Destination::S3(s3)) = to_proto(&config()).destination else { panic!("s3") };
        let old =
            OldSyncConfig { workspace_id: 42, schema_version: SCHEMA_VERSION, destination: Some(s3), revision: 3 };
        let cfg = decode(&old.encode_to_vec()).expect("decodes");
        assert_eq!((cfg.destination, cfg.revision), (config().destination, 3));
    }

    #[test]
    fn bad_records() {
        assert_eq!(decode_key(b"x"), Err(DecodeError::Key));
        assert!(matches!(decode(b"\xff\xff"), Err(DecodeError::Protobuf(_))));
        let mut msg = to_proto(&config());
        msg.tables[0].table = "nope".into();
        assert_eq!(from_proto(msg), Err(DecodeError::Invalid("unknown table")));
        let mut msg = to_proto(&config());
        msg.destination = None;
        assert_eq!(from_proto(msg), Err(DecodeError::Invalid("no destination")));
    }
}
