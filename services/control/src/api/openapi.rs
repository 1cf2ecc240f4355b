//! The OpenAPI 3 document, built from [`Endpoint::ALL`] so it cannot miss a route.
//!
//! A copy is checked in as `services/control/openapi.json`; a test fails when they differ
//! (`DWSYNC_UPDATE_OPENAPI=1 cargo test -p dwsync-control` rewrites the copy).

use dwsync_contract::Table;
use serde_json::{Map, Value, json};

use super::routes::{Access, Endpoint};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for e in Endpoint::ALL {
        let item = paths.entry(e.path()).or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            let _ = item.insert(e.method().as_str().to_lowercase(), operation(e));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "dwsync control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Each workspace's sync configuration: destination, tables, disabled or not. \
                Every call but this document needs `Authorization: Bearer <token>`: the admin token \
                for any workspace, or a workspace's own token for that workspace only. Secrets are \
                never returned.",
        },
        "paths": paths,
        "components": components(),
    })
}

fn operation(e: Endpoint) -> Value {
    let (id, summary, body, ok_status, ok_schema) = match e {
        Endpoint::CreateSync => (
            "createSync",
            "Create a workspace's sync (all tables on unless named off).",
            Some("SyncSpec"),
            "201",
            Some("SyncView"),
        ),
        Endpoint::ReadSync => {
            ("readSync", "Read a workspace's sync; the secret key is never returned.", None, "200", Some("SyncView"))
        }
        Endpoint::UpdateSync => (
            "updateSync",
            "Replace a workspace's destination (the secret key must be sent again) and turn named tables on or off; applies from the next sync.",
            Some("SyncSpec"),
            "200",
            Some("SyncView"),
        ),
        Endpoint::DeleteSync => ("deleteSync", "Delete a workspace's sync.", None, "204", None),
        Endpoint::SetTable => (
            "setTable",
            "Turn one of the spec's schemas on or off: a table alone in its schema, or campaign_metadata (campaigns and actions together) or objects (objects and object types together); a table of those two schemas alone is refused (400, naming the schema). People off for longer than the retention (default 7 days) cannot be turned on again (409).",
            Some("TableToggle"),
            "200",
            Some("SyncView"),
        ),
        Endpoint::DisableSync => {
            ("disableSync", "Disable the whole sync: nothing is written, nothing kept.", None, "200", Some("SyncView"))
        }
        Endpoint::EnableSync => (
            "enableSync",
            "Enable the sync again: a new initial sync of every enabled table (its history from the archive, when initial syncs are on), then incremental files, as if it were a new integration.",
            None,
            "200",
            Some("SyncView"),
        ),
        Endpoint::CheckSync => (
            "checkSync",
            "Check a destination as the export uses it: list the bucket, write cio-validate, read it back, start and abort a multipart upload, through the same egress rules as the uploader. With a body (a sync spec, as for create) that destination is checked, without one the stored sync's. 200 with the result: the actions that passed and the first failure, classed (bucket_missing, access_denied, wrong_region, bad_signature, unknown_access_key, tls_failure, timeout, unreachable, egress_refused, other), never the server's own words.",
            None,
            "200",
            Some("CheckView"),
        ),
        Endpoint::SyncStatus => (
            "syncStatus",
            "A workspace's delivery status: last sync, last files, files waiting (parked or of tables turned off), last error, lag, and each table's initial sync (queued, running with rows and files so far, done, failed with the reason).",
            None,
            "200",
            Some("SyncStatusView"),
        ),
        Endpoint::ListWorkspaces => {
            ("listWorkspaces", "List every workspace's sync (admin token only).", None, "200", Some("WorkspaceList"))
        }
        Endpoint::PurgeArchive => (
            "purgeArchive",
            "Purge the workspace's archived data (admin token only): everything it handed off until now is removed from the archive by the backfill (every archive object holding it rewritten without it, or deleted). Answers 202 with the request; GET .../status shows its progress (archive_purge). A newer request replaces a pending one.",
            None,
            "202",
            Some("PurgeView"),
        ),
        Endpoint::CreateToken => (
            "createToken",
            "Issue a token for the workspace (admin token only; the workspace needs no sync yet). The answer is the only time the token is shown: only its SHA-256 digest is stored. It is valid on this workspace only, like a configured workspace token.",
            Some("TokenSpec"),
            "201",
            Some("TokenView"),
        ),
        Endpoint::ListTokens => (
            "listTokens",
            "The workspace's issued tokens, oldest first: id, name, creation time, never the token (admin token only).",
            None,
            "200",
            Some("TokenList"),
        ),
        Endpoint::RevokeToken => (
            "revokeToken",
            "Revoke one of the workspace's issued tokens (admin token only): requests with it are refused from this answer on.",
            None,
            "204",
            None,
        ),
        Endpoint::OpenApi => ("openapi", "This document.", None, "200", None),
    };
    let mut op = Map::new();
    let _ = op.insert("operationId".into(), json!(id));
    let _ = op.insert("summary".into(), json!(summary));
    let mut params = Vec::new();
    if e.path().contains("{id}") {
        params.push(json!({"name": "id", "in": "path", "required": true, "description": "The workspace id.", "schema": {"type": "integer", "format": "int64", "minimum": 1}}));
    }
    if e.path().contains("{token_id}") {
        params.push(json!({"name": "token_id", "in": "path", "required": true, "description": "The token's id (from its creation or the list).", "schema": {"type": "string"}}));
    }
    if e.path().contains("{table}") {
        params.push(json!({"name": "table", "in": "path", "required": true, "description": "A schema: a v5 table alone in its schema, campaign_metadata or objects.", "schema": {"$ref": "#/components/schemas/SchemaName"}}));
    }
    if matches!(e, Endpoint::CreateSync | Endpoint::UpdateSync) {
        params.push(json!({"name": "check", "in": "query", "required": false, "description": "true: check the destination first (as POST .../sync/check) and refuse it (400) if the check fails.", "schema": {"type": "boolean", "default": false}}));
    }
    if !params.is_empty() {
        let _ = op.insert("parameters".into(), Value::Array(params));
    }
    if e == Endpoint::CheckSync {
        let _ = op.insert(
            "requestBody".into(),
            json!({"required": false, "description": "The destination to check; without a body, the stored sync's.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SyncSpec"}}}}),
        );
    }
    if let Some(schema) = body {
        let _ = op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
        );
    }
    let mut responses = Map::new();
    let ok = match (e, ok_schema) {
        (Endpoint::OpenApi, _) => {
            json!({"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}})
        }
        (_, Some(schema)) => {
            json!({"description": "Done.", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
        }
        (_, None) => json!({"description": "Done."}),
    };
    let _ = responses.insert(ok_status.into(), ok);
    let mut errors: Vec<(&str, &str)> = Vec::new();
    if body.is_some() || e.path().contains("{id}") {
        errors.push((
            "400",
            "Invalid request: unknown table, bad bucket name, non-https endpoint, an endpoint into the operator's network, missing secret key, (?check=true) a destination that fails its check, ...",
        ));
    }
    if e.access() != Access::Public {
        errors.push(("401", "No bearer token, or an unknown one."));
        errors.push(("403", "The token is not allowed here (another workspace, or not the admin token)."));
        errors.push((
            "503",
            "The configuration store is unavailable, or (create, update) no sealing key is configured, or (purge) archive purges are not available, or (tokens) control does not follow the token topic.",
        ));
    }
    match e {
        Endpoint::CreateSync | Endpoint::PurgeArchive | Endpoint::CreateToken | Endpoint::ListTokens => {}
        Endpoint::RevokeToken => errors.push(("404", "The workspace has no token with that id.")),
        _ if e.path().contains("{id}") => {
            errors.push(("404", "The workspace has no sync (for the status: and no archive purge)."));
        }
        _ => {}
    }
    match e {
        Endpoint::CreateSync => errors.push(("409", "The workspace already has a sync.")),
        Endpoint::UpdateSync | Endpoint::SetTable => {
            errors.push(("409", "People off for more than the retention cannot be re-enabled."))
        }
        Endpoint::CreateToken => errors.push(("409", "The workspace already has 20 tokens; revoke one first.")),
        _ => {}
    }
    for (status, description) in errors {
        let _ = responses.insert(
            status.into(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let _ = op.insert("responses".into(), Value::Object(responses));
    if e.access() != Access::Public {
        let _ = op.insert("security".into(), json!([{"bearer": []}]));
    }
    Value::Object(op)
}

fn components() -> Value {
    let tables: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    let mut schema_names: Vec<&str> = Vec::new();
    for table in Table::ALL {
        let schema = dwsync_sync_config::schemas::of(*table);
        if !schema_names.contains(&schema.name) {
            schema_names.push(schema.name);
        }
    }
    json!({
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "TableName": {"type": "string", "enum": tables},
            "SchemaName": {"type": "string", "enum": schema_names},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "DestinationSpec": {
                "type": "object",
                "required": ["bucket"],
                "additionalProperties": false,
                "description": "kind s3 (default) needs region, access_key_id and secret_access_key; kind gcs needs service_account_key and refuses the S3 settings.",
                "properties": {
                    "kind": {"type": "string", "enum": ["s3", "gcs"], "default": "s3"},
                    "bucket": {"type": "string", "description": "Bucket name: 3-63 characters, lowercase letters, digits, dots, hyphens."},
                    "prefix": {"type": "string", "description": "Key prefix (\"path\") inside the bucket, no leading or trailing slash. Alias: path."},
                    "region": {"type": "string", "description": "s3 only."},
                    "endpoint": {"type": "string", "nullable": true, "description": "https:// URL of an S3-compatible store (absent for AWS S3), or of a GCS JSON API other than Google Cloud's (no path)."},
                    "force_path_style": {"type": "boolean", "default": false, "description": "s3 only."},
                    "conditional_writes": {"type": "boolean", "default": true, "description": "s3 only: whether the store honours If-None-Match: *."},
                    "access_key_id": {"type": "string", "description": "s3 only."},
                    "secret_access_key": {"type": "string", "writeOnly": true, "description": "s3 only. Required on every create and update; never returned."},
                    "service_account_key": {"type": "string", "writeOnly": true, "description": "gcs only: the service account's JSON key file as a string (client_email, private_key, private_key_id, project_id). Required on every create and update; never returned."},
                },
            },
            "SyncSpec": {
                "type": "object",
                "required": ["destination"],
                "additionalProperties": false,
                "properties": {
                    "destination": {"$ref": "#/components/schemas/DestinationSpec"},
                    "tables": {"type": "object", "additionalProperties": {"type": "boolean"}, "description": "Table name (or campaign_metadata, objects for their tables together) to on/off; the tables of one schema must be asked alike; tables not named are on for a new sync and unchanged on update."},
                    "schema_version": {"type": "integer", "enum": [5]},
                },
            },
            "TokenSpec": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64, "description": "What the token is for."}},
            },
            "TokenView": {
                "type": "object",
                "required": ["id", "name", "created_at"],
                "properties": {
                    "id": {"type": "string", "description": "The token's id, to revoke it by."},
                    "name": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "token": {"type": "string", "description": "The token (dws_…): only in the answer that issued it."},
                },
            },
            "TokenList": {
                "type": "object",
                "required": ["tokens"],
                "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/TokenView"}}},
            },
            "TableToggle": {
                "type": "object",
                "required": ["enabled"],
                "additionalProperties": false,
                "properties": {"enabled": {"type": "boolean"}},
            },
            "DestinationView": {
                "type": "object",
                "description": "The S3 settings for kind s3, client_email and service_account_key_set for kind gcs; never a secret.",
                "properties": {
                    "kind": {"type": "string", "enum": ["s3", "gcs"]},
                    "bucket": {"type": "string"},
                    "prefix": {"type": "string"},
                    "endpoint": {"type": "string", "nullable": true},
                    "region": {"type": "string"},
                    "force_path_style": {"type": "boolean"},
                    "conditional_writes": {"type": "boolean"},
                    "access_key_id": {"type": "string"},
                    "secret_access_key_set": {"type": "boolean"},
                    "client_email": {"type": "string"},
                    "service_account_key_set": {"type": "boolean"},
                },
            },
            "TableView": {
                "type": "object",
                "properties": {
                    "table": {"$ref": "#/components/schemas/TableName"},
                    "enabled": {"type": "boolean"},
                    "changed_at_ms": {"type": "integer", "format": "int64", "nullable": true},
                },
            },
            "SyncView": {
                "type": "object",
                "properties": {
                    "workspace_id": {"type": "integer", "format": "int64"},
                    "schema_version": {"type": "integer"},
                    "disabled": {"type": "boolean"},
                    "revision": {"type": "integer", "format": "int64"},
                    "updated_at_ms": {"type": "integer", "format": "int64"},
                    "destination": {"$ref": "#/components/schemas/DestinationView"},
                    "tables": {"type": "array", "items": {"$ref": "#/components/schemas/TableView"}},
                },
            },
            "SyncStatusView": {
                "type": "object",
                "properties": {
                    "workspace_id": {"type": "integer", "format": "int64"},
                    "state": {"type": "string", "enum": ["ok", "failing", "initial_sync", "paused", "disabled", "unknown", "no_sync"]},
                    "last_sync_at": {"type": "string", "format": "date-time", "nullable": true},
                    "last_files": {"type": "array", "items": {"type": "string"}},
                    "files_waiting": {"type": "integer", "format": "int64"},
                    "files_paused": {"type": "integer", "format": "int64"},
                    "last_error": {
                        "type": "object",
                        "nullable": true,
                        "properties": {"message": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
                    },
                    "lag_seconds": {"type": "number"},
                    "updated_at": {"type": "string", "format": "date-time", "nullable": true},
                    "initial_syncs": {"type": "array", "items": {"$ref": "#/components/schemas/InitialSyncView"}},
                    "archive_purge": {"allOf": [{"$ref": "#/components/schemas/PurgeView"}], "nullable": true, "description": "The workspace's latest archive purge, if one was asked for."},
                    "last_check": {"allOf": [{"$ref": "#/components/schemas/LastCheckView"}], "nullable": true, "description": "The workspace's last destination check, if one ran."},
                },
            },
            "PurgeView": {
                "type": "object",
                "description": "A workspace's latest archive purge: what it handed off before the cut is removed from the archive.",
                "properties": {
                    "workspace_id": {"type": "integer", "format": "int64"},
                    "epoch": {"type": "integer", "format": "int64", "description": "1 for the first purge, one more for each later one"},
                    "partition": {"type": "integer", "description": "the workspace's handoff partition"},
                    "cut": {"type": "integer", "format": "int64", "description": "the offset of the purge's cut record: files handed off before it are purged"},
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                    "requested_at": {"type": "string", "format": "date-time"},
                    "finished_at": {"type": "string", "format": "date-time", "nullable": true},
                    "objects_rewritten": {"type": "integer", "format": "int64"},
                    "objects_deleted": {"type": "integer", "format": "int64"},
                    "rows_removed": {"type": "integer", "format": "int64"},
                    "reason": {"type": "string", "nullable": true, "description": "why it waits (queued) or what failed (failed)"},
                    "failed_attempts": {"type": "integer"},
                    "updated_at": {"type": "string", "format": "date-time", "nullable": true},
                },
            },
            "InitialSyncView": {
                "type": "object",
                "description": "One table's latest initial sync: its baseline of the workspace's history, delivered before the table's incremental files.",
                "properties": {
                    "table": {"type": "string"},
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                    "rows": {"type": "integer", "format": "int64"},
                    "files": {"type": "integer", "format": "int64"},
                    "reason": {"type": "string", "nullable": true, "description": "why it waits (queued) or what failed (failed)"},
                    "failed_attempts": {"type": "integer"},
                    "asked_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time", "nullable": true},
                },
            },
            "CheckView": {
                "type": "object",
                "properties": {
                    "workspace_id": {"type": "integer", "format": "int64"},
                    "destination": {"type": "string", "enum": ["stored", "submitted"], "description": "which destination was checked"},
                    "ok": {"type": "boolean"},
                    "bucket": {"type": "string"},
                    "passed": {"type": "array", "items": {"type": "string", "enum": ["list", "write", "read", "multipart"]}},
                    "failure": {"allOf": [{"$ref": "#/components/schemas/CheckFailure"}], "nullable": true, "description": "the first action that failed; the later ones were not tried"},
                },
            },
            "CheckFailure": {
                "type": "object",
                "properties": {
                    "class": {"type": "string", "enum": ["bucket_missing", "access_denied", "wrong_region", "bad_signature", "unknown_access_key", "tls_failure", "timeout", "unreachable", "egress_refused", "other"]},
                    "action": {"type": "string", "enum": ["list", "write", "read", "multipart"]},
                    "operation": {"type": "string", "description": "the S3 operation"},
                    "http_status": {"type": "integer", "nullable": true},
                    "message": {"type": "string", "description": "what failed and what to do; never the server's own words"},
                },
            },
            "LastCheckView": {
                "type": "object",
                "properties": {
                    "checked_at": {"type": "string", "format": "date-time"},
                    "destination": {"type": "string", "enum": ["stored", "submitted"]},
                    "ok": {"type": "boolean"},
                    "bucket": {"type": "string"},
                    "passed": {"type": "array", "items": {"type": "string", "enum": ["list", "write", "read", "multipart"]}},
                    "failure": {"allOf": [{"$ref": "#/components/schemas/CheckFailure"}], "nullable": true},
                },
            },
            "WorkspaceList": {
                "type": "object",
                "properties": {"workspaces": {"type": "array", "items": {"$ref": "#/components/schemas/SyncView"}}},
            },
        },
    })
}
