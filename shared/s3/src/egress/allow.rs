//! One entry of the operator's allow-list: a network, an address or a host name.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

/// An allow-list entry, as written in the config: `10.0.0.0/8`, `127.0.0.1`, `::1`, `minio`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Allowed {
    /// A network (an address alone is a network of one).
    Network(IpNet),
    /// A host name, lowercase, without a trailing dot: admitted whatever it resolves to.
    Host(String),
}

/// An entry that is neither a network, an address nor a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress.allow entry {0:?} is not a network (10.0.0.0/8), an address (127.0.0.1) or a host name (minio)")]
pub struct BadAllowEntry(pub String);

impl FromStr for Allowed {
    type Err = BadAllowEntry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAllowEntry(s.to_owned());
        if s.contains('/') {
            return s.parse::<IpNet>().map(|net| Self::Network(net.trunc())).map_err(|_| bad());
        }
        if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            return Ok(Self::Network(IpNet::from(ip)));
        }
        let name = normalize_name(s);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if ok { Ok(Self::Host(name)) } else { Err(bad()) }
    }
}

impl TryFrom<String> for Allowed {
    type Error = BadAllowEntry;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(net) if net.prefix_len() == net.max_prefix_len() => net.addr().fmt(f),
            Self::Network(net) => net.fmt(f),
            Self::Host(name) => f.write_str(name),
        }
    }
}

impl From<Allowed> for String {
    fn from(a: Allowed) -> Self {
        a.to_string()
    }
}

/// A host name as compared with the allow-list: lowercase, no trailing dot.
pub(super) fn normalize_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_print_back() {
        for (entry, printed) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("fd00::/8", "fd00::/8"),
            ("MinIO.", "minio"),
            ("s3.svc.cluster.local", "s3.svc.cluster.local"),
        ] {
            assert_eq!(entry.parse::<Allowed>().map(|a| a.to_string()).as_deref(), Ok(printed), "{entry}");
        }
        for bad in ["", "10.0.0.0/33", "a b", "http://minio", "minio:9000", "a..b"] {
            assert_eq!(bad.parse::<Allowed>(), Err(BadAllowEntry(bad.into())), "{bad}");
        }
    }
}
