//! The control API's HTTP client: the base URL and bearer token from `--api` / `--token` (or
//! `DWSYNC_API` / `DWSYNC_TOKEN`), JSON in and out, and the API's `{"error": "..."}` answers turned
//! into [`Error::Api`]. The token is never printed: not by `Debug`, `--help` or any error message.
//!
//! `https://` URLs are verified against the system's roots, or only against `--ca-file` (a
//! private CA) when it is given; `http://` is for a control service on loopback or behind a
//! tunnel.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::Error;

/// The default API URL (control's default `api.listen`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8090";

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole request may take (a write waits for the Kafka store, 10 s by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest error text kept from a non-JSON error body.
const MAX_ERROR_TEXT: usize = 300;

/// A bearer token; its `Debug` output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the control API is and which token to send.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Base URL of the control API (https://, or http:// on loopback or through a tunnel).
    #[arg(long = "api", value_name = "URL", env = "DWSYNC_API", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// PEM file of the CA that signed the API's certificate: only it is trusted (default: the
    /// system's roots).
    #[arg(long = "ca-file", value_name = "PATH", env = "DWSYNC_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Bearer token (required): the admin token, or the workspace's own token (`list` needs the
    /// admin token). Prefer the variable: a flag ends up in the shell history.
    #[arg(long, value_name = "TOKEN", env = "DWSYNC_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Token>,
}

/// A client of the control API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: Url,
    auth: HeaderValue,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `args`; fails without a token or with an unusable URL.
    pub fn new(args: &ApiArgs) -> Result<Self, Error> {
        let token =
            args.token.as_ref().map(|t| t.expose().trim()).filter(|t| !t.is_empty()).ok_or(Error::MissingToken)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::BadToken)?;
        auth.set_sensitive(true);
        let base = parse_base(&args.url)?;
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT);
        if let Some(path) = &args.ca_file {
            let bad = |reason: String| Error::CaFile { path: path.clone(), reason };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(causes(&e)))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE in it".into()));
            }
            http = http.tls_certs_only(certs);
        }
        let http = http.build().map_err(|e| Error::BadUrl { url: args.url.clone(), reason: causes(&e) })?;
        Ok(Self { base, auth, http })
    }

    /// The API's base URL, for messages.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends `method` to the base URL's path extended by `segments` (each percent-encoded, so a
    /// segment cannot add path levels), with `body` as JSON if given. Returns the answer's JSON
    /// (`null` for an empty body); a non-2xx answer is [`Error::Api`] with the API's message.
    pub async fn call(&self, method: Method, segments: &[&str], body: Option<&Value>) -> Result<Value, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::BadUrl { url: self.base.to_string(), reason: "not a base URL".into() })?
            .pop_if_empty()
            .extend(segments);
        let request = format!("{method} {}", url.path());
        let mut builder = self.http.request(method, url).header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|e| self.transport(&request, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&request, &e))?;
        if !status.is_success() {
            return Err(Error::Api { request, status, message: error_message(status, &bytes) });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::BadAnswer { request, reason: format!("not JSON: {e}") })
    }

    /// A failed request as an error naming the API's URL (never the token).
    fn transport(&self, request: &str, err: &reqwest::Error) -> Error {
        let url = self.url().to_owned();
        if err.is_connect() {
            Error::Connect { url, reason: root_cause(err) }
        } else if err.is_timeout() {
            Error::Transport {
                request: request.to_owned(),
                url,
                reason: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            }
        } else {
            Error::Transport { request: request.to_owned(), url, reason: causes(err) }
        }
    }
}

/// Parses the API's base URL: `http://host[:port][/path]`, no credentials.
fn parse_base(raw: &str) -> Result<Url, Error> {
    let bad = |reason: &str| Error::BadUrl { url: raw.to_owned(), reason: reason.to_owned() };
    let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds credentials.
        return Err(Error::BadUrl {
            url: "<redacted>".into(),
            reason: "credentials in the URL are not supported; use --token / DWSYNC_TOKEN".into(),
        });
    }
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(bad("no host")),
        _ => Err(bad("must be an https:// or http:// URL, e.g. https://control.example.com:8090")),
    }
}

/// The API's message from an error body: `{"error": "..."}`, else the body's text, else the
/// status's reason; with a hint for 401, 403 and unknown endpoints.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
    let message = from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            text.chars().take(MAX_ERROR_TEXT).collect()
        }
    });
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (check --token / DWSYNC_TOKEN)",
        StatusCode::FORBIDDEN => " (use the admin token, or the workspace's own token on its workspace)",
        StatusCode::NOT_FOUND if message.starts_with("no such endpoint") => {
            " (this control service does not have this endpoint; is it older than this CLI?)"
        }
        _ => "",
    };
    format!("{message}{hint}")
}

/// The innermost cause of `err` (e.g. `Connection refused (os error 111)`).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// The causes of `err` joined by `: `, without the outermost message (which holds the full URL).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() { "request failed".to_owned() } else { parts.join(": ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, token: Option<&str>) -> ApiArgs {
        ApiArgs { url: url.to_owned(), token: token.map(|t| Token::from(t.to_owned())), ca_file: None }
    }

    #[test]
    fn the_token_is_required_and_never_shown() {
        assert!(matches!(ApiClient::new(&args(DEFAULT_URL, None)), Err(Error::MissingToken)));
        assert!(matches!(ApiClient::new(&args(DEFAULT_URL, Some("  "))), Err(Error::MissingToken)));
        assert!(matches!(ApiClient::new(&args(DEFAULT_URL, Some("bad\ntoken-xyz"))), Err(Error::BadToken)));
        let a = args(DEFAULT_URL, Some("s3cr3t-token"));
        let client = ApiClient::new(&a).expect("client");
        assert!(!format!("{a:?}{client:?}").contains("s3cr3t-token"));
    }

    #[test]
    fn base_urls() {
        let ok = |u: &str| parse_base(u).expect(u).to_string();
        assert_eq!(ok("http://127.0.0.1:8090"), "http://127.0.0.1:8090/");
        assert_eq!(ok("http://control.internal/api/"), "http://control.internal/api/");
        assert_eq!(ok("https://control.example.com"), "https://control.example.com/");
        for bad in ["127.0.0.1:8090", "ftp://x", "https://", "nonsense"] {
            assert!(matches!(parse_base(bad), Err(Error::BadUrl { .. })), "{bad}");
        }
        let err = parse_base("http://admin:hunter2@control:8090").expect_err("credentials").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn error_messages() {
        let m = error_message(StatusCode::CONFLICT, br#"{"error": "People file off"}"#);
        assert_eq!(m, "People file off");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b" upstream down\n"), "upstream down");
        let m = error_message(StatusCode::UNAUTHORIZED, br#"{"error": "a valid bearer token is required"}"#);
        assert_eq!(m, "a valid bearer token is required (check --token / DWSYNC_TOKEN)");
        let m = error_message(StatusCode::NOT_FOUND, br#"{"error": "no such endpoint; see GET /openapi.json"}"#);
        assert!(m.contains("older than this CLI"), "{m}");
    }
}
