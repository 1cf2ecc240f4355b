//! A private Apache Kafka broker or S3 server for a test that stops and starts it: `dev/kafka`
//! or `dev/s3` on ports and a data directory of its own, so the other tests keep theirs.

use std::path::PathBuf;
use std::process::Command;

/// Which `dev/` script runs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `dev/kafka` (the controller listens on the next port).
    Kafka,
    /// `dev/s3`.
    S3,
}

/// One private server.
#[derive(Debug, Clone)]
pub struct Private {
    server: Server,
    port: u16,
    run: PathBuf,
}

impl Private {
    /// A private `server` on the port `port_env` names (else `default_port`), its data in
    /// `$TMPDIR/<dir>`.
    pub fn new(server: Server, port_env: &str, default_port: u16, dir: &str) -> Self {
        let port = std::env::var(port_env).ok().and_then(|p| p.parse().ok()).unwrap_or(default_port);
        Self { server, port, run: std::env::temp_dir().join(dir) }
    }

    /// Where clients reach it: `127.0.0.1:<port>` for Kafka, `http://127.0.0.1:<port>` for S3.
    pub fn address(&self) -> String {
        match self.server {
            Server::Kafka => format!("127.0.0.1:{}", self.port),
            Server::S3 => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Runs `dev/<script> <action>` for it, panicking if that fails.
    pub fn dev(&self, action: &str) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::new(root.join("dev").join(match self.server {
            Server::Kafka => "kafka",
            Server::S3 => "s3",
        }));
        let _ = command.arg(action).current_dir(&root).env("DWSYNC_RUN", &self.run);
        let _ = match self.server {
            Server::Kafka => command
                .env("KAFKA_PORT", self.port.to_string())
                .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
                .env("KAFKA_HEAP", "512m"),
            Server::S3 => command.env("S3_PORT", self.port.to_string()),
        };
        let status = command.status().unwrap();
        assert!(status.success(), "dev {:?} {action} (port {}) failed", self.server, self.port);
    }
}

/// Stops a private server (its data kept) when the test ends, however it ends.
pub struct StopOnDrop(pub Private);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.dev("stop");
    }
}
