//! A private PostgreSQL server for tests: initdb into a fresh directory
//! under the system's temporary directory, a free loopback port, trust
//! authentication, its socket in that directory, `fsync=off`. PostgreSQL
//! refuses to run as root, so as root the server runs as the `postgres`
//! user the Debian package creates (via `runuser`). When no server is
//! installed, the Debian package `postgresql` is installed with apt-get.
//!
//! A static server outlives every test and Rust never drops statics, so a
//! small watcher process stops the server and removes its directory once
//! the test process is gone, however it ends.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running test server; dropping it stops the server and removes its
/// directory.
pub struct TestPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run server commands as `postgres` (we are root).
    as_postgres: bool,
}

/// Distinguishes databases created in one process.
static DATABASES: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest installed server's `bin` directory.
fn installed() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn install() -> PathBuf {
    if let Some(bin) = installed() {
        return bin;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-qq", "postgresql"]) {
        // A fresh container may not know the package yet.
        apt(&["update", "-qq"]);
        assert!(
            apt(&["install", "-y", "-qq", "postgresql"]),
            "installing the Debian package postgresql failed"
        );
    }
    installed().expect("postgresql installed but no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TestPostgres {
    /// Starts a server (blocking until it accepts connections).
    pub fn start() -> TestPostgres {
        let bin = install();
        let as_postgres = is_root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("berth-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("server directory");
        let server = TestPostgres {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            run(
                Command::new("chown").arg("postgres").arg(&server.dir),
                "chown postgres",
            );
        }
        run(
            server.command("initdb").arg("-D").arg(server.data()).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]),
            "initdb",
        );
        server.resume();
        server.watch();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command of the server's `bin` directory, as `postgres` when root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// The shell command that stops the server and removes its directory.
    fn stop_script(&self) -> String {
        let pg_ctl = self.bin.join("pg_ctl");
        let runuser = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{runuser}'{}' -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
            pg_ctl.display(),
            self.data().display(),
            self.dir.display()
        )
    }

    /// Starts the watcher that cleans up after this process ends.
    fn watch(&self) {
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {}",
            std::process::id(),
            self.stop_script()
        );
        // Detached: it must outlive us. Nothing waits for it.
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("cannot watch the test server for cleanup: {e}");
        }
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh database named after `name` (made unique within the
    /// process) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let db = format!("t{n}_{clean}");
        run(
            self.command("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-p"])
                .arg(self.port.to_string())
                .args(["-c", &format!("CREATE DATABASE \"{db}\"")]),
            "create database",
        );
        self.database_url(&db)
    }

    /// The server's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_script()])
            .stdin(Stdio::null())
            .status();
    }
}

/// The database going away and coming back, for tests of an outage.
impl TestPostgres {
    /// Stops the server at once (`-m immediate`: sessions are cut, as when
    /// the database host fails).
    pub fn stop(&self) {
        run(
            self.command("pg_ctl").arg("-D").arg(self.data()).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        );
    }

    /// Starts the server (again, after [`Self::stop`]) on its port and
    /// data; returns once it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-o", &options, "start"]),
            "pg_ctl start",
        );
    }
}
