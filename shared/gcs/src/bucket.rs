//! One GCS bucket, written with one service account's key: each request carries a bearer token
//! (a self-signed JWT from `google-cloud-auth`, RS256, cached until shortly before it expires;
//! no token endpoint is called, so a key's `token_uri` leads nowhere).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use google_cloud_auth::credentials::AccessTokenCredentials;
use google_cloud_auth::credentials::service_account::Builder as KeyCredentials;
use reqwest::{Method, RequestBuilder, Response, Url};

use dwsync_s3::error::{CREDENTIALS, StoreError};

use crate::error;
use crate::key::ServiceAccountKey;

/// The JSON API's endpoint on Google Cloud.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// The OAuth2 scope of the tokens: read and write objects, nothing else.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// The longest error body read (its reason and message are all that is kept).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// A bucket that cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBucket {
    /// The endpoint is not an `http(s)://host[:port]` URL.
    #[error("the endpoint is not an http(s) URL without a path")]
    Endpoint,
    /// The key's credentials could not be built.
    #[error("the service account key cannot sign tokens")]
    Key,
}

/// The settings of one bucket's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest single request (one chunk, or one whole small object).
    pub attempt: Duration,
}

/// One bucket with its own credentials, on a shared HTTP client.
#[derive(Clone)]
pub struct Bucket {
    http: reqwest::Client,
    endpoint: Url,
    name: String,
    credentials: AccessTokenCredentials,
    timeouts: Timeouts,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("endpoint", &self.endpoint.as_str())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the JSON API tells about an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ObjectMeta {
    /// Its size in bytes (a decimal string in the API).
    #[serde(default)]
    pub size: String,
    /// Its custom metadata.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl Bucket {
    /// The bucket `name` at `endpoint` (`None`: Google Cloud's), signing with `key`, on `http`.
    /// Must be called on a tokio runtime (the token cache refreshes on a task of its own).
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<&str>,
        name: &str,
        key: &ServiceAccountKey,
        timeouts: Timeouts,
    ) -> Result<Self, BadBucket> {
        let endpoint = parse_endpoint(endpoint.unwrap_or(DEFAULT_ENDPOINT))?;
        let credentials = KeyCredentials::new(key.json())
            .with_access_specifier(google_cloud_auth::credentials::service_account::AccessSpecifier::from_scopes([
                SCOPE,
            ]))
            .build_access_token_credentials()
            .map_err(|_| BadBucket::Key)?;
        Ok(Self { http, endpoint, name: name.to_owned(), credentials, timeouts })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint (`scheme://host:port`).
    pub(crate) fn endpoint_url(&self) -> &Url {
        &self.endpoint
    }

    /// `<endpoint>/storage/v1/b/<bucket>/o/<key>` (the key is one path segment, `/` escaped).
    fn object_url(&self, key: &str) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["storage", "v1", "b", self.name.as_str(), "o", key]);
        }
        url
    }

    /// `<endpoint>/upload/storage/v1/b/<bucket>/o?uploadType=<kind>&name=<key>`.
    pub(crate) fn upload_url(&self, kind: &str, key: &str, if_generation_match: Option<u64>) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["upload", "storage", "v1", "b", self.name.as_str(), "o"]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("uploadType", kind).append_pair("name", key);
            if let Some(generation) = if_generation_match {
                query.append_pair("ifGenerationMatch", &generation.to_string());
            }
        }
        url
    }

    /// A request to `url` with this bucket's token and the attempt timeout.
    pub(crate) async fn request(
        &self,
        method: Method,
        url: Url,
        (operation, key): (&'static str, &str),
    ) -> Result<RequestBuilder, StoreError> {
        let token = self.credentials.access_token().await.map_err(|_| {
            let message = "the service account key signs no token (is its private_key a PKCS#8 RSA key?)";
            error::local(operation, (&self.name, key), CREDENTIALS, message.into())
        })?;
        Ok(self.http.request(method, url).bearer_auth(token.token).timeout(self.timeouts.attempt))
    }

    /// Sends `request`; a transport failure is an error, any answer is returned.
    pub(crate) async fn send(
        &self,
        request: RequestBuilder,
        (operation, key): (&'static str, &str),
    ) -> Result<Response, StoreError> {
        request.send().await.map_err(|e| error::from_transport(operation, (&self.name, key), &e))
    }

    /// The error of a failing answer (its body read up to a bound).
    pub(crate) async fn failure(&self, answer: Response, (operation, key): (&'static str, &str)) -> StoreError {
        let status = answer.status().as_u16();
        let body = read_bounded(answer, MAX_ERROR_BODY).await;
        error::from_answer(operation, (&self.name, key), status, &body)
    }

    /// The object at `key`'s metadata, `None` when there is none (`objects.get`).
    pub async fn metadata(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        const OP: &str = "objects.get";
        let answer = self.send(self.request(Method::GET, self.object_url(key), (OP, key)).await?, (OP, key)).await?;
        match answer.status().as_u16() {
            200 => {
                let body = read_bounded(answer, MAX_ERROR_BODY * 4).await;
                serde_json::from_slice(&body).map(Some).map_err(|e| {
                    error::local(
                        OP,
                        (&self.name, key),
                        "BadAnswer",
                        format!("the object's metadata does not parse: {e}"),
                    )
                })
            }
            404 => Ok(None),
            _ => Err(self.failure(answer, (OP, key)).await),
        }
    }

    /// Writes `body` at `key` whether or not an object is there (`cio-validate`, rewritten
    /// before every sync).
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        const OP: &str = "objects.insert";
        let request = self.request(Method::POST, self.upload_url("media", key, None), (OP, key)).await?;
        let answer =
            self.send(request.header("content-type", "application/octet-stream").body(body), (OP, key)).await?;
        if answer.status().is_success() { Ok(()) } else { Err(self.failure(answer, (OP, key)).await) }
    }
}

/// `url` as an endpoint: http(s), a host, no path, query or user.
fn parse_endpoint(url: &str) -> Result<Url, BadBucket> {
    let parsed = Url::parse(url).map_err(|_| BadBucket::Endpoint)?;
    let plain = matches!(parsed.scheme(), "http" | "https")
        && parsed.host().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && matches!(parsed.path(), "" | "/")
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if plain { Ok(parsed) } else { Err(BadBucket::Endpoint) }
}

/// Whether `url` is an endpoint a GCS bucket accepts (for control's validation).
pub fn endpoint_is_valid(url: &str) -> bool {
    parse_endpoint(url).is_ok()
}

/// An answer's body, at most `limit` bytes of it (the rest is not read).
async fn read_bounded(mut answer: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_origins() {
        for ok in ["https://storage.googleapis.com", "http://127.0.0.1:4443", "http://127.0.0.1:4443/"] {
            assert!(endpoint_is_valid(ok), "{ok}");
        }
        for bad in ["storage.googleapis.com", "ftp://x", "https://u:p@x", "https://x/path", "https://x?q=1"] {
            assert!(!endpoint_is_valid(bad), "{bad}");
        }
    }
}
