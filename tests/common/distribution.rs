//! Debian's `docker-registry` (distribution's registry:2) as a subprocess,
//! for the interoperability tests.

use super::seaweed::{self, Seaweed};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry2 {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl super::Registry for Registry2 {
    fn addr(&self) -> &str {
        &self.addr
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

    fn start(storage: &str) -> Self {
        let binary = "/usr/bin/docker-registry";
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: run `bash tests/run.sh`, which installs Debian's docker-registry"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = format!("127.0.0.1:{}", super::free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n{storage}  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n"
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
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if reqwest::blocking::get(format!("http://{}/v2/", registry.addr))
                .is_ok_and(|r| r.status().is_success())
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

impl Drop for Registry2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
