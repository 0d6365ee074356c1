//! Debian's `docker-registry` (distribution's registry:2) as a subprocess,
//! for the interoperability tests.

use super::seaweed::{self, Seaweed};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry2 {
    addr: String,
    child: Child,
    /// HTTPS with a CA of its own ([`Registry2::filesystem_tls_htpasswd`]).
    tls: bool,
    _dir: tempfile::TempDir,
}

impl super::Registry for Registry2 {
    fn addr(&self) -> &str {
        &self.addr
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Registry2 {
    /// registry:2 over a filesystem root directory.
    pub fn filesystem(root: &Path) -> Self {
        Self::start(&format!(
            "  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ))
    }

    /// registry:2's S3 driver over `prefix` of the test bucket.
    pub fn s3(s3: &Seaweed, prefix: &str) -> Self {
        Self::start(&format!(
            "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    \
             regionendpoint: {}\n    bucket: {}\n    rootdirectory: /{prefix}\n    \
             secure: false\n    v4auth: true\n    forcepathstyle: true\n",
            seaweed::ACCESS_KEY,
            seaweed::SECRET_KEY,
            seaweed::REGION,
            s3.endpoint,
            seaweed::BUCKET,
        ))
    }

    /// registry:2 over a filesystem root behind HTTPS and an htpasswd
    /// login: a CA made for it alone signs a certificate for `127.0.0.1`
    /// ([`Registry2::ca`], [`Registry2::cert_dir`] for skopeo and podman),
    /// and `user` with `password` (bcrypt) is its only login.
    pub fn filesystem_tls_htpasswd(root: &Path, user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let (ca, cert, key) = test_ca_and_certificate();
        std::fs::write(certs.join("ca.crt"), ca).expect("write ca.crt");
        let cert_path = dir.path().join("server.crt");
        let key_path = dir.path().join("server.key");
        std::fs::write(&cert_path, cert).expect("write server.crt");
        std::fs::write(&key_path, key).expect("write server.key");
        let htpasswd = dir.path().join("htpasswd");
        let hash = bcrypt::hash_with_result(password, 5)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoY);
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
        let storage = format!("  filesystem:\n    rootdirectory: {}\n", root.display());
        let extra = format!(
            "auth:\n  htpasswd:\n    realm: registry2\n    path: {}\n",
            htpasswd.display()
        );
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert_path.display(),
            key_path.display()
        );
        Self::start_in(dir, &storage, &extra, Some(&tls))
    }

    /// The CA that signed the certificate of a TLS registry (PEM).
    pub fn ca(&self) -> PathBuf {
        self.cert_dir().join("ca.crt")
    }

    /// A directory holding only `ca.crt`: `--cert-dir` of skopeo and podman.
    pub fn cert_dir(&self) -> PathBuf {
        self._dir.path().join("certs")
    }

    fn start(storage: &str) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), storage, "", None)
    }

    fn start_in(dir: tempfile::TempDir, storage: &str, extra: &str, tls: Option<&str>) -> Self {
        let binary = "/usr/bin/docker-registry";
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: run `bash tests/run.sh`, which installs Debian's docker-registry"
        );
        let addr = format!("127.0.0.1:{}", super::free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n{storage}  delete:\n    enabled: true\n\
                 {extra}http:\n  addr: {addr}\n{}",
                tls.unwrap_or_default()
            ),
        )
        .expect("registry config");
        // registry:2 logs every 404 (clients probe for blobs) as an error;
        // keep that out of the test output, and show it if start-up fails.
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).expect("registry log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let registry = Self {
            addr,
            child,
            tls: tls.is_some(),
            _dir: dir,
        };
        let probe = match tls {
            None => reqwest::blocking::Client::new(),
            Some(_) => {
                let ca = std::fs::read(registry.ca()).expect("read ca.crt");
                reqwest::blocking::Client::builder()
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
                    .build()
                    .expect("client")
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            // With a login, `/v2/` answers 401: up all the same.
            if probe
                .get(format!("{}/v2/", super::Registry::url(&registry)))
                .send()
                .is_ok_and(|r| r.status().is_success() || r.status().as_u16() == 401)
            {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "registry:2 at {} did not become ready; log:\n{}",
            registry.addr,
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
}

/// A CA, and a certificate it signed for `127.0.0.1` with its key (PEM).
fn test_ca_and_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "registry:2 test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("certificate params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().expect("server key");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl Drop for Registry2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
