//! Where a customer's endpoint may lead: not into the operator's network.
//!
//! A workspace's token holder chooses the endpoint its files are sent to, and dwsync connects
//! there from inside the operator's network. [`EgressPolicy`] refuses the addresses of that
//! network and of nobody's — loopback, private, shared (carrier-grade NAT), link-local,
//! unique-local, multicast, cloud metadata, unspecified and reserved ([`AddressClass`]) —
//! unless the operator's allow-list ([`EgressConfig`], `[egress] allow`) admits them:
//!
//! - control checks an endpoint when a sync is created or changed ([`EgressPolicy::check_endpoint`]);
//! - the clients writing to customers' buckets check again at every connection
//!   ([`customer_https_client`]: a name may resolve elsewhere later), and an endpoint that is
//!   an address is checked when its client is built ([`EgressPolicy::check_literal_endpoint`]).
//!
//! Refusals name the endpoint's host (which the customer gave) and the class, never the address
//! a name resolved to. Operator-owned buckets (the archive) are not customer endpoints and use
//! the unrestricted [`crate::https_client`].

mod allow;
mod class;
mod resolver;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use allow::{Allowed, BadAllowEntry};
pub use class::{AddressClass, classify};
pub use resolver::{EgressResolver, customer_https_client};

/// The [`crate::error::StoreError::code`] of a request refused by the policy.
pub const EGRESS_REFUSED: &str = "EgressRefused";

/// How long control waits for an endpoint's name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's allow-list (`[egress]` in control's, the uploader's and the backfill's config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Networks (`10.0.0.0/8`, `fd00::/8`), addresses (`127.0.0.1`) and host names (`minio`)
    /// customers' endpoints may reach although they are not public. A host name is admitted
    /// whatever it resolves to. A cloud metadata address is admitted only by an entry naming
    /// that address alone, never by a wider network. Default: none (public addresses only).
    pub allow: Vec<Allowed>,
}

/// An endpoint refused: it is, or its name resolves to, an address of `class`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint host {host:?} points to a {class} address; customer endpoints must be public")]
pub struct EgressRefused {
    /// The endpoint's host, as the customer gave it.
    pub host: String,
    /// What kind of address it is or resolves to.
    pub class: AddressClass,
}

/// Which addresses customers' endpoints may reach: public ones, and those the allow-list admits.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Arc<[Allowed]>,
}

impl EgressPolicy {
    /// The policy admitting, besides public addresses, what `config` allows.
    pub fn new(config: &EgressConfig) -> Self {
        Self { allow: config.allow.clone().into() }
    }

    /// Whether `host` is a name the allow-list admits whatever it resolves to.
    pub fn admits_name(&self, host: &str) -> bool {
        let host = allow::normalize_name(host);
        self.allow.iter().any(|a| matches!(a, Allowed::Host(name) if *name == host))
    }

    /// Whether a connection for `host` may go to `ip`.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), EgressRefused> {
        let Some(class) = classify(ip) else { return Ok(()) };
        let admitted = self.allow.iter().any(|a| match a {
            Allowed::Network(net) => {
                let whole_address = net.prefix_len() == net.max_prefix_len();
                (net.contains(&ip) || net.contains(&ip.to_canonical()))
                    && (class != AddressClass::Metadata || whole_address)
            }
            Allowed::Host(_) => false,
        });
        if admitted { Ok(()) } else { Err(EgressRefused { host: host.to_owned(), class }) }
    }

    /// Checks every address `host` resolves to (each must pass); an address literal is checked
    /// as it is, a name the allow-list admits is not resolved. A name that does not resolve
    /// passes: there is no address to judge yet, and connections check it again.
    pub async fn check_host(&self, host: &str) -> Result<(), EgressRefused> {
        if let Some(ip) = literal(host) {
            return self.check_address(host, ip);
        }
        if self.admits_name(host) {
            return Ok(());
        }
        let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 443))).await;
        let Ok(Ok(addrs)) = resolved else { return Ok(()) };
        for addr in addrs {
            self.check_address(host, addr.ip())?;
        }
        Ok(())
    }

    /// Checks the host of endpoint URL `url` ([`check_host`](Self::check_host)); a URL without
    /// a host passes (URL syntax is checked elsewhere).
    pub async fn check_endpoint(&self, url: &str) -> Result<(), EgressRefused> {
        match endpoint_host(url) {
            Some(host) => self.check_host(host).await,
            None => Ok(()),
        }
    }

    /// Checks the host of endpoint URL `url` if it is an address (a client connects to it
    /// without resolving anything, so [`customer_https_client`]'s resolver never sees it);
    /// names pass here and are checked at connection time.
    pub fn check_literal_endpoint(&self, url: &str) -> Result<(), EgressRefused> {
        match endpoint_host(url).and_then(|host| literal(host).map(|ip| (host, ip))) {
            Some((host, ip)) => self.check_address(host, ip),
            None => Ok(()),
        }
    }
}

/// The host of an endpoint URL (`scheme://[user@]host[:port][/...]`), IPv6 brackets included.
pub fn endpoint_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    (!host.is_empty()).then_some(host)
}

/// The address `host` is, if it is one (`10.0.0.1`, `[::1]`, `::1`).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The policy's refusal somewhere in `err`'s chain of sources, if there is one.
pub fn refusal_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressRefused> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(refused) = e.downcast_ref::<EgressRefused>() {
            return Some(refused);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> EgressPolicy {
        let allow = allow.iter().map(|a| a.parse().expect("an entry")).collect();
        EgressPolicy::new(&EgressConfig { allow })
    }

    fn class_of(result: Result<(), EgressRefused>) -> Option<AddressClass> {
        result.err().map(|e| e.class)
    }

    #[tokio::test]
    async fn without_an_allow_list_only_public_addresses_pass() {
        let strict = EgressPolicy::default();
        for (url, class) in [
            ("http://127.0.0.1:9000", AddressClass::Loopback),
            ("https://10.0.0.5", AddressClass::Private),
            ("https://100.64.1.1", AddressClass::SharedAddressSpace),
            ("https://169.254.10.1", AddressClass::LinkLocal),
            ("https://[fd12::1]:9000/x", AddressClass::UniqueLocal),
            ("https://224.0.0.9", AddressClass::Multicast),
            ("http://169.254.169.254/latest/meta-data", AddressClass::Metadata),
            ("https://[fd00:ec2::254]", AddressClass::Metadata),
            ("https://0.0.0.0:9000", AddressClass::Unspecified),
            ("https://[::ffff:127.0.0.1]", AddressClass::Loopback),
            ("https://user@192.168.0.2:443", AddressClass::Private),
        ] {
            assert_eq!(class_of(strict.check_endpoint(url).await), Some(class), "{url}");
            assert_eq!(class_of(strict.check_literal_endpoint(url)), Some(class), "{url}");
        }
        assert_eq!(strict.check_endpoint("https://52.95.110.1").await, Ok(()));
        let refused = strict.check_endpoint("http://127.0.0.1:9000").await.expect_err("loopback");
        assert_eq!(
            refused.to_string(),
            "endpoint host \"127.0.0.1\" points to a loopback address; customer endpoints must be public"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_without_naming_the_address() {
        let strict = EgressPolicy::default();
        // `localhost` resolves (from /etc/hosts) to a loopback address.
        let refused = strict.check_endpoint("https://localhost:9000").await.expect_err("resolves to loopback");
        assert_eq!(refused, EgressRefused { host: "localhost".into(), class: AddressClass::Loopback });
        assert!(!refused.to_string().contains("127.0.0.1"), "{refused}");
        assert_eq!(strict.check_literal_endpoint("https://localhost:9000"), Ok(()), "names wait for the connection");
        // A name that does not resolve has no address to refuse; connections check it.
        assert_eq!(strict.check_endpoint("https://nothing-here.invalid").await, Ok(()));
    }

    #[tokio::test]
    async fn the_allow_list_admits_networks_addresses_and_names() {
        let dev = policy(&["127.0.0.0/8", "10.1.0.0/16", "::1", "minio"]);
        assert_eq!(dev.check_endpoint("http://127.0.0.1:9000").await, Ok(()));
        assert_eq!(dev.check_endpoint("http://[::1]:9000").await, Ok(()));
        assert_eq!(dev.check_endpoint("http://[::ffff:127.0.0.1]:9000").await, Ok(()), "mapped form");
        assert_eq!(dev.check_endpoint("https://10.1.200.3").await, Ok(()));
        assert_eq!(class_of(dev.check_endpoint("https://10.2.0.1").await), Some(AddressClass::Private));
        assert_eq!(dev.check_endpoint("https://localhost:9000").await, Ok(()), "resolves into 127/8");
        assert!(dev.admits_name("MINIO.") && !dev.admits_name("minio2"));
        assert_eq!(dev.check_endpoint("http://minio:9000").await, Ok(()), "admitted by name, not resolved");
    }

    #[tokio::test]
    async fn metadata_addresses_need_an_entry_of_their_own() {
        let wide = policy(&["169.254.0.0/16", "0.0.0.0/0", "fd00::/8"]);
        assert_eq!(class_of(wide.check_endpoint("http://169.254.169.254").await), Some(AddressClass::Metadata));
        assert_eq!(class_of(wide.check_endpoint("http://[fd00:ec2::254]").await), Some(AddressClass::Metadata));
        assert_eq!(wide.check_endpoint("http://169.254.1.1").await, Ok(()), "other link-local addresses pass");
        let exact = policy(&["169.254.169.254"]);
        assert_eq!(exact.check_endpoint("http://169.254.169.254").await, Ok(()));
    }

    #[test]
    fn hosts_of_endpoint_urls() {
        assert_eq!(endpoint_host("https://s3.example.com:9000/p?q"), Some("s3.example.com"));
        assert_eq!(endpoint_host("http://[::1]:9000"), Some("[::1]"));
        assert_eq!(endpoint_host("https://u:p@host"), Some("host"));
        assert_eq!(endpoint_host("https://"), None);
    }
}
