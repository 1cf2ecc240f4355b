//! The credentials of an operator-owned bucket (the archive): the key pair of the config, or —
//! when neither key is configured — the AWS default credential chain: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), the shared config and
//! credentials files, web identity (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), ECS
//! container credentials and the EC2 instance profile (IMDSv2). The chain is built on first use
//! and its credentials are cached and refreshed by the SDK.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::config::Region;
use tokio::sync::OnceCell;

use crate::StaticCredentials;

/// Where an operator bucket's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// The access key id and secret key of the config.
    Static,
    /// The AWS default credential chain (no key configured).
    DefaultChain,
}

/// Why a key pair cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("set both access_key_id and secret_access_key, or neither (the AWS default credential chain)")]
pub struct HalfAKeyPair;

/// Which source the configured keys select: both set, static; neither, the default chain.
pub fn credential_source(access_key_id: &str, secret_access_key: &str) -> Result<CredentialSource, HalfAKeyPair> {
    match (access_key_id.is_empty(), secret_access_key.is_empty()) {
        (false, false) => Ok(CredentialSource::Static),
        (true, true) => Ok(CredentialSource::DefaultChain),
        _ => Err(HalfAKeyPair),
    }
}

/// The credentials for an operator bucket in `region`: the key pair if both keys are set, else
/// the default chain (`name` names the static provider in the SDK's logs).
pub fn operator_credentials(
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    name: &'static str,
) -> SharedCredentialsProvider {
    if access_key_id.is_empty() && secret_access_key.is_empty() {
        SharedCredentialsProvider::new(LazyDefaultChain { region: region.to_owned(), chain: OnceCell::new() })
    } else {
        SharedCredentialsProvider::new(StaticCredentials::new(access_key_id, secret_access_key, None, None, name))
    }
}

/// The default chain, built on first use (building it is async; clients are made synchronously).
#[derive(Debug)]
struct LazyDefaultChain {
    region: String,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| DefaultCredentialsChain::builder().region(Region::new(self.region.clone())).build())
                .await;
            chain.provide_credentials().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_keys_or_neither() {
        assert_eq!(credential_source("AKIA", "secret"), Ok(CredentialSource::Static));
        assert_eq!(credential_source("", ""), Ok(CredentialSource::DefaultChain));
        assert_eq!(credential_source("AKIA", ""), Err(HalfAKeyPair));
        assert_eq!(credential_source("", "secret"), Err(HalfAKeyPair));
    }

    #[tokio::test]
    async fn a_key_pair_is_used_as_is() {
        let provider = operator_credentials("AKIA-test", "s3cr3t", "us-east-1", "test");
        let creds = provider.provide_credentials().await.expect("static credentials");
        assert_eq!((creds.access_key_id(), creds.secret_access_key()), ("AKIA-test", "s3cr3t"));
    }
}
