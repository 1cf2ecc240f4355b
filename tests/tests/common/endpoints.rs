//! The services' endpoints: control's API as a client, each process's `/metrics` address
//! (from its log) and a metric's value.

use super::*;

/// The control API of a stack, as a client with the admin token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(control: &Control) -> Self {
        Self { base: control.api.clone(), token: control.admin_token.clone(), http: reqwest::Client::new() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn wait_ready(&self, control: &mut ServiceProcess) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = self.http.get(format!("{}/openapi.json", self.base)).send().await
                && resp.status().is_success()
            {
                return;
            }
            assert!(control.is_running(), "control exited:\n{}", control.log_tail(30));
            assert!(Instant::now() < deadline, "the control API did not come up:\n{}", control.log_tail(30));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn sync_body(ws: i64, bucket: &str, secret: &str) -> Value {
        json!({"destination": {
            "bucket": bucket,
            "prefix": dest_prefix(ws),
            "region": "us-east-1",
            "endpoint": s3_endpoint(),
            "force_path_style": true,
            "access_key_id": s3_access_key(),
            "secret_access_key": secret,
        }})
    }

    /// A GCS destination on the test GCS server, with the test service account key.
    pub fn gcs_sync_body(ws: i64, bucket: &str) -> Value {
        json!({"destination": {
            "kind": "gcs",
            "bucket": bucket,
            "prefix": dest_prefix(ws),
            "endpoint": dwsync_tests::gcs::gcs_endpoint(),
            "service_account_key": dwsync_tests::gcs::service_account_key(),
        }})
    }

    /// Creates `ws`'s sync into `bucket` (the test S3 server's secret), asserting 201.
    pub async fn create_sync(&self, ws: i64, bucket: &str) {
        let body = Self::sync_body(ws, bucket, &s3_secret_key());
        let (status, resp) = self.call(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/sync"), Some(body)).await;
        assert_eq!(status, 201, "{resp}");
    }

    pub async fn status(&self, ws: i64) -> Value {
        self.call(reqwest::Method::GET, &format!("/v1/workspaces/{ws}/status"), None).await.1
    }

    pub async fn set_table(&self, ws: i64, table: Table, enabled: bool) {
        let path = format!("/v1/workspaces/{ws}/sync/tables/{}", table.name());
        let (status, body) = self.call(reqwest::Method::PUT, &path, Some(json!({"enabled": enabled}))).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// `text` without its terminal colour codes (`ESC [ … m`).
pub fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address of the process's `/healthz`, `/readyz` and `/metrics`, from its log.
pub fn http_addr(process: &ServiceProcess) -> String {
    served_at(process).unwrap_or_else(|| {
        let log = without_ansi(&std::fs::read_to_string(&process.log).unwrap());
        panic!("{}: no /healthz address in its log:\n{log}", process.name())
    })
}

/// [`http_addr`], `None` while the process has not logged it yet.
fn served_at(process: &ServiceProcess) -> Option<String> {
    let log = without_ansi(&std::fs::read_to_string(&process.log).ok()?);
    log.lines()
        .find(|l| l.contains("Serving /healthz"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .map(str::to_owned)
}

/// The sum of a metric's samples whose line has `label`, from the process's `/metrics` (its
/// address is in its log); `None` when no sample of it is there, or the process does not serve
/// its endpoints yet.
pub async fn metric(process: &ServiceProcess, name: &str, label: &str) -> Option<f64> {
    let addr = served_at(process)?;
    let body = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let samples: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}
