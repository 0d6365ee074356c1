//! HTTPS: rustls with the operator's certificate, or with a local CA and
//! server certificate Berth makes on first start (`--tls-self-signed`).

use crate::config::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

/// Each error starts with the setting it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {path}: {source}")]
    Io {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path}: {reason}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("server.tls.self_signed: making the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("server.tls: {0}")]
    Rustls(#[from] rustls::Error),
}

const CERT: &str = "server.tls.cert";
const KEY: &str = "server.tls.key";
const SELF_SIGNED: &str = "server.tls.self_signed";

/// Reads and parses the configured certificate and key as [`acceptor`]
/// does, and writes nothing; a self-signed setup is made at start and
/// has nothing to check yet.
pub fn check(config: &TlsConfig) -> Result<(), TlsError> {
    match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => server_config(cert, key, (CERT, KEY)).map(drop),
        _ => Ok(()),
    }
}

/// Where the self-signed material lives under the root.
pub struct SelfSigned {
    pub ca_cert: PathBuf,
    pub names: Vec<String>,
}

/// The acceptor for `config`, and what was made if it was self-signed.
pub fn acceptor(
    config: &TlsConfig,
    root: &Path,
    addr: SocketAddr,
) -> Result<(tokio_rustls::TlsAcceptor, Option<SelfSigned>), TlsError> {
    let (cert, key, made, keys) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), None, (CERT, KEY)),
        _ => {
            let names = certificate_names(&config.hostnames, addr);
            let dir = root.join("tls");
            let (cert, key, ca_cert) = self_signed(&dir, &names)?;
            let made = Some(SelfSigned { ca_cert, names });
            (cert, key, made, (SELF_SIGNED, SELF_SIGNED))
        }
    };
    let server = server_config(&cert, &key, keys)?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(server)), made))
}

/// `keys`: the settings that named `cert` and `key`, for errors.
fn server_config(
    cert: &Path,
    key: &Path,
    keys: (&'static str, &'static str),
) -> Result<rustls::ServerConfig, TlsError> {
    let pem_error = |setting, path: &Path, e: rustls_pki_types::pem::Error| match e {
        rustls_pki_types::pem::Error::Io(source) => TlsError::Read {
            key: setting,
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            key: setting,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(keys.0, cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(keys.0, cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            key: keys.0,
            path: cert.to_path_buf(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(keys.1, key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

/// The configured names plus the loopback names, so local clients work too.
fn certificate_names(hostnames: &[String], addr: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = hostnames.to_vec();
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Makes (or reuses) `ca.crt`/`ca.key` and a server certificate for
/// `names`; the server certificate is made again when the names change.
fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf, PathBuf), TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io {
            key: SELF_SIGNED,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let names_path = dir.join("server.names");

    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) => KeyPair::from_pem(&pem)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate()?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes())
                .map_err(io(&ca_key_path))?;
            key
        }
        Err(e) => return Err(io(&ca_key_path)(e)),
    };
    // The CA's parameters are fixed, so signing with the stored key gives
    // the same issuer every start; ca.crt is written once.
    let ca = ca_params().self_signed(&ca_key)?;
    if !ca_cert_path.exists() {
        write_public(&ca_cert_path, ca.pem().as_bytes()).map_err(io(&ca_cert_path))?;
    }

    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_path).unwrap_or_default();
    if current != wanted || !cert_path.exists() || !key_path.exists() {
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().map_or("berth", |n| n));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
        write_public(&cert_path, cert.pem().as_bytes()).map_err(io(&cert_path))?;
        write_public(&names_path, wanted.as_bytes()).map_err(io(&names_path))?;
    }
    Ok((cert_path, key_path, ca_cert_path))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "Berth local registry CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Writes a secret (mode 0600) through a temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes, 0o600)
}

fn write_public(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes, 0o644)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The lines `serve` prints after making a self-signed certificate: where
/// the CA is and the one command that makes docker trust it.
pub fn trust_instructions(made: &SelfSigned, port: u16) -> String {
    let ca = std::fs::canonicalize(&made.ca_cert).unwrap_or_else(|_| made.ca_cert.clone());
    let host = made.names.first().map_or("localhost", |n| n);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!(
        "HTTPS with a self-signed certificate for {names}.\n\
         CA certificate: {ca}\n\
         To make docker on a machine trust it (use each name clients use as HOST):\n  \
         sudo mkdir -p /etc/docker/certs.d/{host}:{port} && sudo cp {ca} /etc/docker/certs.d/{host}:{port}/ca.crt\n",
        names = made.names.join(", "),
        ca = ca.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_remade_for_new_names() {
        let dir = tempfile::tempdir().expect("tmp");
        let addr: SocketAddr = "0.0.0.0:5000".parse().expect("addr");
        let config = TlsConfig {
            self_signed: true,
            hostnames: vec!["registry.lan".into()],
            ..TlsConfig::default()
        };
        let (_, made) = acceptor(&config, dir.path(), addr).expect("first");
        let made = made.expect("self-signed");
        assert_eq!(made.names[0], "registry.lan");
        let ca = std::fs::read(&made.ca_cert).expect("ca");
        let server = std::fs::read(dir.path().join("tls/server.crt")).expect("cert");
        acceptor(&config, dir.path(), addr).expect("second");
        assert_eq!(std::fs::read(&made.ca_cert).expect("ca"), ca, "CA kept");
        assert_eq!(
            std::fs::read(dir.path().join("tls/server.crt")).expect("cert"),
            server,
            "certificate kept"
        );
        let more = TlsConfig {
            hostnames: vec!["other.lan".into()],
            ..config
        };
        acceptor(&more, dir.path(), addr).expect("third");
        assert_ne!(
            std::fs::read(dir.path().join("tls/server.crt")).expect("cert"),
            server,
            "new names, new certificate"
        );
        assert_eq!(std::fs::read(&made.ca_cert).expect("ca"), ca, "same CA");
        // Configured files are checked without writing anything.
        let given = TlsConfig {
            cert: Some(dir.path().join("tls/server.crt")),
            key: Some(dir.path().join("tls/absent.key")),
            ..TlsConfig::default()
        };
        let err = check(&given).expect_err("missing key").to_string();
        assert!(err.starts_with("server.tls.key: "), "{err}");
        assert!(err.contains("absent.key"), "{err}");
        let text = trust_instructions(&made, 5000);
        assert!(
            text.contains("/etc/docker/certs.d/registry.lan:5000/ca.crt"),
            "{text}"
        );
    }
}
