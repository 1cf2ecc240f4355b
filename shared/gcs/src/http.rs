//! The HTTP clients of GCS buckets (reqwest on rustls with aws-lc, one connection pool each,
//! shared by every bucket of a service). Redirects are never followed: an answer's `Location`
//! could lead anywhere.
//!
//! Customers' endpoints use [`customer_http_client`]: every name is resolved through the
//! [`EgressPolicy`], as S3 endpoints are ([`dwsync_s3::egress`]); an endpoint that is an address
//! is checked before its bucket is built, and so is every resumable session's URI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dwsync_s3::egress::EgressPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client building failed (no TLS backend: never expected).
#[derive(Debug, thiserror::Error)]
#[error("building the GCS HTTP client failed: {0}")]
pub struct ClientBuildError(#[from] reqwest::Error);

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).redirect(reqwest::redirect::Policy::none())
}

/// A client for the operator's own buckets (no egress restriction).
pub fn http_client() -> Result<reqwest::Client, ClientBuildError> {
    Ok(builder().build()?)
}

/// A client for customers' buckets: names resolve through `policy` at every connection.
pub fn customer_http_client(policy: EgressPolicy) -> Result<reqwest::Client, ClientBuildError> {
    Ok(builder().dns_resolver(Arc::new(EgressDns { policy })).build()?)
}

/// Resolves with the system's resolver, then refuses the whole answer if one address is not
/// admitted (the request fails with [`dwsync_s3::egress::EgressRefused`] in its sources).
struct EgressDns {
    policy: EgressPolicy,
}

impl Resolve for EgressDns {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            if !policy.admits_name(host) {
                for addr in &addrs {
                    policy.check_address(host, addr.ip())?;
                }
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(addrs)
        })
    }
}
