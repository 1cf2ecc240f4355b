//! The connection-time check: a DNS resolver that refuses names resolving where the policy
//! forbids, on the HTTPS client of every customer's S3 client.

use std::net::IpAddr;

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

use super::EgressPolicy;
use crate::SharedHttpClient;

/// Resolves names with the system's resolver, then refuses the whole answer if one address is
/// not admitted by the policy (the request fails with [`super::EgressRefused`] in its sources).
#[derive(Debug, Clone)]
pub struct EgressResolver {
    policy: EgressPolicy,
}

impl EgressResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: EgressPolicy) -> Self {
        Self { policy }
    }

    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, ResolveDnsError> {
        let addrs: Vec<IpAddr> =
            tokio::net::lookup_host((name, 0)).await.map_err(ResolveDnsError::new)?.map(|a| a.ip()).collect();
        if !self.policy.admits_name(name) {
            for ip in &addrs {
                self.policy.check_address(name, *ip).map_err(ResolveDnsError::new)?;
            }
        }
        Ok(addrs)
    }
}

impl ResolveDns for EgressResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(self.resolve(name))
    }
}

/// A new HTTPS client (one connection pool) for customers' S3 clients: as
/// [`crate::https_client`], with every name resolved through [`EgressResolver`]. An endpoint
/// that is an address is not resolved: check it with
/// [`EgressPolicy::check_literal_endpoint`] before building its client.
pub fn customer_https_client(policy: EgressPolicy) -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .build_with_resolver(EgressResolver::new(policy))
}
