//! Checks a client's [`SyncSpec`] before anything is sealed or stored: the 400 errors.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dwsync_config::Secret;
use dwsync_contract::Table;
use dwsync_s3::egress::{EgressPolicy, EgressRefused};
use dwsync_sync_config::schemas::{self, SchemaError};

use crate::model::{DestinationKind, DestinationSpec, SCHEMA_VERSION, SyncSpec};

/// What the validation rules allow beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Accept `http://` endpoints (local S3 servers only).
    pub allow_insecure_endpoints: bool,
    /// Which addresses an endpoint may lead to: public ones and those of `[egress] allow`.
    pub egress: EgressPolicy,
}

/// Why a request was refused. The messages name the bad value, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Table names that are not v5 tables (nor the spec's schemas of several tables).
    #[error("unknown tables: {}; the v5 tables are {} (and the schemas campaign_metadata, objects)", .0.join(", "), table_names())]
    UnknownTables(Vec<String>),
    /// Tables of one of the spec's schemas asked apart.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A bucket name that breaks the S3 naming rules.
    #[error("bad bucket name {bucket:?}: {reason}")]
    Bucket {
        /// The name given.
        bucket: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An endpoint URL that is not `https://` (or `http://` when allowed).
    #[error("endpoint {0:?} must be an https:// URL (http:// only when allow_insecure_endpoints is set)")]
    InsecureEndpoint(String),
    /// An endpoint that is not a URL with a host.
    #[error("endpoint {0:?} is not a URL like https://s3.example.com")]
    BadEndpoint(String),
    /// An endpoint that is, or resolves to, an address of the operator's network.
    #[error(transparent)]
    Egress(#[from] EgressRefused),
    /// A required field is missing or empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// The secret key is missing: every create and update must carry it.
    #[error("destination.secret_access_key is required on every create and update")]
    MissingSecret,
    /// The service account key of a GCS destination is missing: every create and update must
    /// carry it.
    #[error("destination.service_account_key is required on every create and update of a gcs destination")]
    MissingServiceAccountKey,
    /// The service account key is not a usable key (the message never shows it).
    #[error("destination.service_account_key {0}")]
    ServiceAccountKey(#[from] dwsync_gcs::BadKey),
    /// A field that belongs to the other kind of destination.
    #[error("{field} is not a setting of {kind} destinations")]
    OtherKind {
        /// The field given.
        field: &'static str,
        /// The destination's kind.
        kind: &'static str,
    },
    /// A schema version other than 5.
    #[error("schema_version {0} is not supported; only {SCHEMA_VERSION} is")]
    SchemaVersion(u32),
    /// A prefix that would make odd keys.
    #[error("bad prefix {0:?}: no leading or trailing '/', no empty segments, at most 512 characters")]
    Prefix(String),
    /// A region that is not a plain name.
    #[error("bad region {0:?}: lowercase letters, digits and hyphens only")]
    Region(String),
}

/// A spec that passed every check; the secret is still plain text.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The destination, every field checked.
    pub destination: DestinationSpec,
    /// The secret, present and not empty: the S3 secret access key, or the GCS service
    /// account's JSON key.
    pub secret: Secret,
    /// A GCS destination's service account (from its key).
    pub client_email: Option<String>,
    /// The tables the client named, parsed.
    pub tables: BTreeMap<Table, bool>,
}

/// Checks every field of `spec`, collecting the first failure of each kind in order.
pub fn validate(spec: SyncSpec, policy: &Policy) -> Result<Valid, ValidationError> {
    let tables = parse_tables(&spec.tables)?;
    if let Some(version) = spec.schema_version.filter(|v| *v != SCHEMA_VERSION) {
        return Err(ValidationError::SchemaVersion(version));
    }
    let d = spec.destination;
    bucket(&d.bucket)?;
    prefix(&d.prefix)?;
    if let Some(url) = &d.endpoint {
        endpoint(url, policy)?;
    }
    if d.kind == DestinationKind::Gcs {
        return gcs(d, tables);
    }
    if d.service_account_key.is_some() {
        return Err(ValidationError::OtherKind { field: "destination.service_account_key", kind: "s3" });
    }
    region(&d.region)?;
    if d.access_key_id.trim().is_empty() {
        return Err(ValidationError::Missing("destination.access_key_id"));
    }
    let secret = d.secret_access_key.clone().filter(|s| !s.is_empty()).ok_or(ValidationError::MissingSecret)?;
    Ok(Valid { destination: d, secret, client_email: None, tables })
}

/// The rest of a GCS destination: no S3 settings, a service account key that parses.
fn gcs(d: DestinationSpec, tables: BTreeMap<Table, bool>) -> Result<Valid, ValidationError> {
    let s3_only = [
        ("destination.region", !d.region.is_empty()),
        ("destination.access_key_id", !d.access_key_id.is_empty()),
        ("destination.secret_access_key", d.secret_access_key.is_some()),
        ("destination.force_path_style", d.force_path_style),
        ("destination.conditional_writes", d.conditional_writes.is_some()),
    ];
    if let Some((field, _)) = s3_only.iter().find(|(_, given)| *given) {
        return Err(ValidationError::OtherKind { field, kind: "gcs" });
    }
    if let Some(url) = d.endpoint.as_deref().filter(|url| !dwsync_gcs::bucket::endpoint_is_valid(url)) {
        return Err(ValidationError::BadEndpoint(url.to_owned()));
    }
    let secret =
        d.service_account_key.clone().filter(|s| !s.is_empty()).ok_or(ValidationError::MissingServiceAccountKey)?;
    let key = dwsync_gcs::ServiceAccountKey::parse(secret.expose())?;
    Ok(Valid { client_email: Some(key.client_email().to_owned()), destination: d, secret, tables })
}

/// Checks where a valid destination's endpoint leads (resolving its name): refused if it is, or
/// resolves to, an address of a class the egress policy refuses. A name that does not resolve
/// passes (every connection checks it again).
pub async fn egress(valid: &Valid, policy: &Policy) -> Result<(), ValidationError> {
    match &valid.destination.endpoint {
        Some(url) => Ok(policy.egress.check_endpoint(url).await?),
        None => Ok(()),
    }
}

/// Parses table names; every unknown name is reported at once.
pub fn parse_tables(names: &BTreeMap<String, bool>) -> Result<BTreeMap<Table, bool>, ValidationError> {
    let mut unknown = Vec::new();
    let mut tables = BTreeMap::new();
    for (name, enabled) in names {
        // A schema of several tables (`campaign_metadata`, `objects`) stands for all of them.
        let named: Vec<Table> = match (schemas::group(name), name.parse::<Table>()) {
            (Some(schema), _) => schema.tables.to_vec(),
            (None, Ok(table)) => vec![table],
            (None, Err(_)) => {
                unknown.push(name.clone());
                continue;
            }
        };
        for table in named {
            if tables.insert(table, *enabled).is_some_and(|before| before != *enabled) {
                return Err(SchemaError::Split(schemas::of(table)).into());
            }
        }
    }
    if !unknown.is_empty() {
        return Err(ValidationError::UnknownTables(unknown));
    }
    schemas::check(&tables)?;
    Ok(tables)
}

/// The tables a toggle of `name` turns on or off: a schema's (`campaign_metadata`, `objects`, or a
/// table alone in its schema). A table that is only part of its schema is refused naming it.
pub fn parse_schema(name: &str) -> Result<&'static [Table], ValidationError> {
    match schemas::named(name)? {
        Some(schema) => Ok(schema.tables),
        None => Err(ValidationError::UnknownTables(vec![name.to_owned()])),
    }
}

/// The S3 bucket naming rules (general purpose buckets).
pub fn bucket(name: &str) -> Result<(), ValidationError> {
    let fail = |reason| Err(ValidationError::Bucket { bucket: name.to_owned(), reason });
    if name.is_empty() {
        return Err(ValidationError::Missing("destination.bucket"));
    }
    if !(3..=63).contains(&name.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return fail("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(name.as_bytes().first()) || !alnum(name.as_bytes().last()) {
        return fail("must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("must not contain two adjacent dots");
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address");
    }
    Ok(())
}

fn prefix(prefix: &str) -> Result<(), ValidationError> {
    let ok = prefix.is_empty()
        || (prefix.len() <= 512 && prefix.split('/').all(|s| !s.is_empty()) && !prefix.contains(char::is_control));
    if ok { Ok(()) } else { Err(ValidationError::Prefix(prefix.to_owned())) }
}

fn region(region: &str) -> Result<(), ValidationError> {
    if region.is_empty() {
        return Err(ValidationError::Missing("destination.region"));
    }
    let ok = region.len() <= 64 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(ValidationError::Region(region.to_owned())) }
}

/// An endpoint must be `https://host[:port][/path]`, or `http://` when the policy allows it.
pub fn endpoint(url: &str, policy: &Policy) -> Result<(), ValidationError> {
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        if !policy.allow_insecure_endpoints {
            return Err(ValidationError::InsecureEndpoint(url.to_owned()));
        }
        rest
    } else if lower.contains("://") {
        return Err(ValidationError::InsecureEndpoint(url.to_owned()));
    } else {
        return Err(ValidationError::BadEndpoint(url.to_owned()));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_ok = !host.is_empty()
        && !host.contains('@')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if host_ok { Ok(()) } else { Err(ValidationError::BadEndpoint(url.to_owned())) }
}

fn table_names() -> String {
    Table::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SyncSpec {
        SyncSpec {
            destination: DestinationSpec {
                bucket: "acme-exports".into(),
                prefix: "dw/v5".into(),
                region: "eu-west-1".into(),
                access_key_id: "AKIA".into(),
                secret_access_key: Some(Secret::new("s3cr3t")),
                ..DestinationSpec::default()
            },
            ..SyncSpec::default()
        }
    }

    #[test]
    fn a_good_spec_passes() {
        let valid = validate(spec(), &Policy::default()).expect("valid");
        assert_eq!(valid.secret.expose(), "s3cr3t");
        assert!(valid.tables.is_empty());
    }

    #[test]
    fn bucket_rules() {
        for good in ["abc", "my.bucket-1", "a1b", &"a".repeat(63)] {
            assert_eq!(bucket(good), Ok(()), "{good}");
        }
        for bad in ["ab", &"a".repeat(64), "My-Bucket", "-abc", "abc-", ".abc", "a..b", "192.168.1.1", "a_b", "a b"] {
            let err = bucket(bad).expect_err(bad);
            assert!(matches!(err, ValidationError::Bucket { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert_eq!(bucket(""), Err(ValidationError::Missing("destination.bucket")));
    }

    #[test]
    fn endpoints_must_be_https_unless_allowed() {
        let strict = &Policy::default();
        let local = &Policy { allow_insecure_endpoints: true, ..Policy::default() };
        assert_eq!(endpoint("https://s3.example.com", strict), Ok(()));
        assert_eq!(endpoint("https://minio.local:9000/", strict), Ok(()));
        assert!(matches!(endpoint("http://127.0.0.1:9000", strict), Err(ValidationError::InsecureEndpoint(_))));
        assert_eq!(endpoint("http://127.0.0.1:9000", local), Ok(()));
        assert!(matches!(endpoint("ftp://x", local), Err(ValidationError::InsecureEndpoint(_))));
        assert!(matches!(endpoint("s3.example.com", strict), Err(ValidationError::BadEndpoint(_))));
        assert!(matches!(endpoint("https://", strict), Err(ValidationError::BadEndpoint(_))));
        assert!(matches!(endpoint("https://user:pw@host", strict), Err(ValidationError::BadEndpoint(_))));
    }

    #[tokio::test]
    async fn endpoints_into_the_operators_network_are_refused_unless_allowed() {
        let mut s = spec();
        s.destination.endpoint = Some("https://10.0.0.7:9000".into());
        let valid = validate(s, &Policy::default()).expect("the URL is fine");
        let err = egress(&valid, &Policy::default()).await.expect_err("private");
        assert_eq!(
            err.to_string(),
            "endpoint host \"10.0.0.7\" points to a private address; customer endpoints must be public"
        );
        let allow = vec!["10.0.0.0/8".parse().expect("entry")];
        let dev = Policy { egress: EgressPolicy::new(&dwsync_s3::egress::EgressConfig { allow }), ..Policy::default() };
        assert_eq!(egress(&valid, &dev).await, Ok(()));
    }

    #[test]
    fn unknown_tables_are_all_named() {
        let mut s = spec();
        s.tables = BTreeMap::from([("metrics".into(), false), ("nope".into(), true), ("peeple".into(), true)]);
        let err = validate(s, &Policy::default()).expect_err("unknown");
        assert_eq!(err, ValidationError::UnknownTables(vec!["nope".into(), "peeple".into()]));
        assert!(err.to_string().starts_with("unknown tables: nope, peeple; the v5 tables are deliveries"), "{err}");
    }

    #[test]
    fn the_secret_is_required_and_never_in_errors() {
        let mut s = spec();
        s.destination.secret_access_key = None;
        assert_eq!(validate(s.clone(), &Policy::default()).expect_err("missing"), ValidationError::MissingSecret);
        s.destination.secret_access_key = Some(Secret::new(""));
        assert_eq!(validate(s, &Policy::default()).expect_err("empty"), ValidationError::MissingSecret);
        let mut s = spec();
        s.destination.bucket = "BAD".into();
        assert!(!validate(s.clone(), &Policy::default()).expect_err("bad").to_string().contains("s3cr3t"));
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    fn gcs_spec(key: &str) -> SyncSpec {
        SyncSpec {
            destination: DestinationSpec {
                kind: DestinationKind::Gcs,
                bucket: "acme-exports".into(),
                prefix: "dw".into(),
                service_account_key: Some(Secret::new(key)),
                ..DestinationSpec::default()
            },
            ..SyncSpec::default()
        }
    }

    const KEY: &str = r#"{"type": "service_account", "project_id": "p", "private_key_id": "k1",
        "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n-----END PRIVATE KEY-----\n",
        "client_email": "sa@p.iam.gserviceaccount.com"}"#;

    #[test]
    fn a_gcs_destination_needs_a_whole_key_and_never_shows_it() {
        let valid = validate(gcs_spec(KEY), &Policy::default()).expect("valid");
        assert_eq!(valid.client_email.as_deref(), Some("sa@p.iam.gserviceaccount.com"));
        assert_eq!(valid.secret.expose(), KEY);
        let mut s = gcs_spec(KEY);
        s.destination.service_account_key = None;
        assert_eq!(validate(s, &Policy::default()).expect_err("none"), ValidationError::MissingServiceAccountKey);
        for (key, message) in [
            ("SECRETBYTES not json", "destination.service_account_key is not a JSON object"),
            (&KEY.replace("client_email", "email"), "destination.service_account_key lacks the field `client_email`"),
            (
                &KEY.replace("\"private_key\"", "\"key\""),
                "destination.service_account_key lacks the field `private_key`",
            ),
        ] {
            let err = validate(gcs_spec(key), &Policy::default()).expect_err(key).to_string();
            assert!(err.starts_with(message), "{err}");
            assert!(!err.contains("SECRETBYTES"), "{err}");
        }
        let mut s = gcs_spec(KEY);
        s.destination.access_key_id = "AKIA".into();
        assert_eq!(
            validate(s, &Policy::default()).expect_err("s3 field").to_string(),
            "destination.access_key_id is not a setting of gcs destinations"
        );
        let mut s = spec();
        s.destination.service_account_key = Some(Secret::new(KEY));
        assert_eq!(
            validate(s, &Policy::default()).expect_err("gcs field").to_string(),
            "destination.service_account_key is not a setting of s3 destinations"
        );
    }

    #[test]
    fn other_fields() {
        let mut s = spec();
        s.schema_version = Some(4);
        assert_eq!(validate(s, &Policy::default()).expect_err("v4"), ValidationError::SchemaVersion(4));
        let mut s = spec();
        s.schema_version = Some(5);
        assert!(validate(s, &Policy::default()).is_ok());
        for bad in ["/a", "a/", "a//b"] {
            let mut s = spec();
            s.destination.prefix = bad.into();
            assert_eq!(validate(s, &Policy::default()).expect_err(bad), ValidationError::Prefix(bad.into()));
        }
        let mut s = spec();
        s.destination.region = "EU West".into();
        assert!(matches!(validate(s, &Policy::default()), Err(ValidationError::Region(_))));
        let mut s = spec();
        s.destination.access_key_id = " ".into();
        assert_eq!(
            validate(s, &Policy::default()).expect_err("ak"),
            ValidationError::Missing("destination.access_key_id")
        );
    }
}
