//! Certificates for TLS tests, made with the `openssl` command (present on Debian; `.ci/run`
//! installs it when missing): a CA and a server certificate for `127.0.0.1` and `localhost`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and the server certificate it signed, as PEM files.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (for `127.0.0.1` and `localhost`).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// Runs `openssl` with `args` in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (is it installed?)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a CA named `name` and a server certificate signed by it in `dir`
/// (`<name>-ca.pem`, `<name>.pem`, `<name>.key`), P-256 keys, valid two days.
pub fn ca_and_server(dir: &Path, name: &str) -> TestCerts {
    let (ca_key, ca, key, csr, cert, ext) = (
        format!("{name}-ca.key"),
        format!("{name}-ca.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let subject = format!("/CN=dwsync test CA {name}");
    openssl(
        dir,
        &[&["req", "-x509"][..], &ec, &["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", &subject]].concat(),
    );
    openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]].concat());
    let extensions =
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join(&ext), extensions).expect("extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    TestCerts { ca: dir.join(ca), cert: dir.join(cert), key: dir.join(key) }
}
