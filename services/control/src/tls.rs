//! HTTPS for the API: rustls serving the certificate chain and private key of two PEM files, read
//! again when they change, so a renewed certificate (cert-manager, a rotated Secret) is served
//! without a restart.
//!
//! [`TlsListener`] is what `axum::serve` accepts connections from: a task accepts TCP
//! connections and runs each TLS handshake apart (at most [`MAX_HANDSHAKES`] at once, each within
//! [`HANDSHAKE_TIMEOUT`]), so a client that never finishes its handshake delays no one.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Handshakes in progress at once; more connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 64;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{}: {reason}", path.display())]
    File {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refuses them.
    #[error("certificate {} with key {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The two PEM files the API's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files into a certified key, checking that the key matches the certificate.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let file_error = |path: &Path, reason: String| TlsError::File { path: path.to_owned(), reason };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| file_error(&self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(file_error(&self.cert, "no CERTIFICATE in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| file_error(&self.key, e.to_string()))?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        CertifiedKey::from_der(certs, key, &provider).map_err(|e| TlsError::Pair {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reason: e.to_string(),
        })
    }

    /// Both files' bytes, to see whether they changed.
    fn contents(&self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        Ok((std::fs::read(&self.cert)?, std::fs::read(&self.key)?))
    }
}

/// The certificate handed to every handshake: the last one that loaded.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(key) => Arc::clone(&key),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set(&self, key: CertifiedKey) {
        match self.0.write() {
            Ok(mut current) => *current = Arc::new(key),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(key),
        }
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The API's TLS acceptor, and a task that reloads its certificate when the files change.
#[derive(Clone)]
pub struct ReloadingTls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
}

impl ReloadingTls {
    /// Loads `files`; fails if they cannot be used (control does not start without them).
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(Arc::new(files.load()?))));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair { cert: files.cert.clone(), key: files.key.clone(), reason: e.to_string() })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), current, files })
    }

    /// Checks the files every `every` until `stop`: when their bytes change, the new pair is
    /// loaded and served to the next handshakes; a pair that does not load is logged and the
    /// previous one kept (a half-written renewal is retried at the next check).
    pub async fn reload_until(self, every: Duration, stop: CancellationToken) {
        let mut seen = self.files.contents().ok();
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Ok(now) = self.files.contents() else {
                tracing::warn!(cert = %self.files.cert.display(), key = %self.files.key.display(),
                    "The API's certificate or key file cannot be read; serving the previous one.");
                continue;
            };
            if seen.as_ref() == Some(&now) {
                continue;
            }
            match self.files.load() {
                Ok(key) => {
                    self.current.set(key);
                    seen = Some(now);
                    tracing::info!(cert = %self.files.cert.display(), "The API's certificate changed; serving the new one.");
                }
                Err(error) => {
                    tracing::warn!(%error, "The API's new certificate or key cannot be used; serving the previous one.");
                }
            }
        }
    }

    /// Accepts on `tcp` until `stop`, handing each connection whose handshake succeeds to the
    /// returned listener.
    pub fn listen(&self, tcp: TcpListener, stop: CancellationToken) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (ready, accepted) = mpsc::channel(MAX_HANDSHAKES);
        drop(tokio::spawn(accept_until(tcp, self.acceptor.clone(), ready, stop)));
        Ok(TlsListener { accepted, local })
    }
}

/// Accepts TCP connections and runs their handshakes, at most [`MAX_HANDSHAKES`] at once.
async fn accept_until(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = Arc::clone(&handshakes).acquire_owned() => permit,
        };
        // The semaphore is never closed; an error would mean it was: stop accepting.
        let Ok(permit) = permit else { return };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "Accepting an API connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        drop(tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "An API client's TLS handshake failed."),
                Err(_) => tracing::debug!(%peer, "An API client's TLS handshake timed out."),
            }
        }));
    }
}

/// The API's connections, TLS established: what `axum::serve` accepts from.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accepting task stopped (shutdown): no connection will come again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
