//! A private containerd (Debian's package `containerd`, 1.6) for `ctr`
//! pulls: its own root, state and socket in a temp dir under /tmp, the CRI
//! plugin off, killed (with its process group) on drop. Pull with
//! `--snapshotter native`, which needs no overlay mounts.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clients::{command, exec, require, run, short_tempdir, unmount_below};

pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    socket: PathBuf,
}

impl Containerd {
    pub fn start() -> Self {
        require("containerd");
        require("ctr");
        let dir = short_tempdir("bc");
        let d = dir.path().to_path_buf();
        let socket = d.join("containerd.sock");
        assert!(
            socket.as_os_str().len() < 100,
            "containerd socket path too long: {}",
            socket.display()
        );
        for sub in ["root", "state"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = d.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n[ttrpc]\n  address = {:?}\n",
                d.join("root").display().to_string(),
                d.join("state").display().to_string(),
                socket.display().to_string(),
                d.join("containerd.sock.ttrpc").display().to_string(),
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new(require("containerd"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn containerd");
        let mut containerd = Self {
            dir: Some(dir),
            child: Some(child),
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = exec(containerd.cmd(["version"]), Duration::from_secs(30));
            if out.status.success() {
                break;
            }
            let exited = containerd
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("wait containerd");
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "private containerd did not come up ({exited:?}); last `ctr version`: {}\n--- containerd.log ---\n{}",
                    out.describe(),
                    containerd.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        containerd
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// What containerd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a SOCKET -n test <args>`.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut cmd = command("ctr", ["-a"]);
        cmd.arg(&self.socket).args(["-n", "test"]).args(args);
        cmd
    }

    /// Runs `ctr <args>`, which must succeed; returns trimmed stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        run(self.cmd(args)).stdout_str().trim().to_string()
    }

    /// The target digest of an image `ref` (`ctr images ls`).
    pub fn image_digest(&self, reference: &str) -> Option<String> {
        let listed = self.ctr(&["images", "ls"]);
        listed.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.first() == Some(&reference)).then(|| cols.get(2).map(|d| d.to_string()))?
        })
    }

    /// Digests of every blob in containerd's content store.
    pub fn content_digests(&self) -> Vec<String> {
        self.ctr(&["content", "ls", "--quiet"])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // SAFETY: signals to the process group we created for containerd.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above; also reaps stragglers in the group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            unmount_below(dir.path());
            let _ = fs::remove_dir_all(dir.path());
        }
    }
}
