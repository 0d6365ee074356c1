//! The command line beyond the defaults: `--guest` runs the component it is
//! given, the compiled guest is cached under the root, `berth config check`
//! resolves and validates configuration, and `storage.kind = "memory"`.

mod common;

use std::process::{Command, Stdio};

/// The guest build.rs embedded, as a file `--guest` can load.
const BUILT_GUEST: &str = env!("BERTH_GUEST_WASM");

fn cached_guests(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root.join(".cache"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn serves_with_the_guest_given_by_flag() {
    let berth = common::Berth::builder()
        .args(&["--guest", BUILT_GUEST])
        .start();
    let answered = reqwest::blocking::get(format!("{}/v2/_catalog", berth.url()))
        .expect("GET")
        .text()
        .expect("text");
    assert_eq!(answered, r#"{"repositories":[]}"#);
}

#[test]
fn refuses_to_start_with_a_guest_that_is_not_a_component() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let bogus = tmp.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").expect("write bogus guest");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", &addr, "--root"])
        .arg(tmp.path().join("data"))
        .arg("--guest")
        .arg(&bogus)
        .stdin(Stdio::null())
        .output()
        .expect("run berth");
    assert!(!out.status.success(), "berth served a bogus guest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("compiling the guest"),
        "unexpected error: {stderr}"
    );
}

#[test]
fn compiled_guest_is_cached_and_reused_across_restarts() {
    let mut berth = common::Berth::start();
    let first = cached_guests(&berth.root);
    assert_eq!(first.len(), 1, "expected one cached guest, found {first:?}");
    let path = berth.root.join(".cache").join(&first[0]);
    let written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    berth.restart();
    assert_eq!(
        cached_guests(&berth.root),
        first,
        "restart changed the cache"
    );
    let after = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(
        written, after,
        "restart recompiled the guest instead of loading it"
    );
}

fn berth_config_check(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(file)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run berth config check")
}

#[test]
fn config_check_prints_the_resolved_config_with_secrets_masked() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("berth.toml");
    std::fs::write(
        &file,
        "[storage]\nkind = \"s3\"\n[storage.s3]\nbucket = \"images\"\nsecret_access_key = \"hunter2\"\n",
    )
    .expect("write config");
    let out = berth_config_check(&file, &[("BERTH_METADATA_KIND", "layout")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(stdout.contains("secret_access_key = \"****\""), "{stdout}");
    assert!(stdout.contains("bucket = \"images\""), "{stdout}");
    // The environment was applied on top of the file.
    assert!(stdout.contains("kind = \"layout\""), "{stdout}");
}

#[test]
fn config_check_names_the_bad_key_and_its_position() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("berth.toml");
    std::fs::write(&file, "[metadata]\nkind = \"sqlite\"\nknd = \"layout\"\n").expect("write");
    let out = berth_config_check(&file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("berth.toml:3:1: metadata.knd"), "{stderr}");
}

/// `kind = "memory"` with layout metadata serves pushes and pulls, and
/// keeps nothing on disk but the compiled-guest cache.
#[test]
fn memory_storage_serves_and_stores_nothing_on_disk() {
    let berth = common::Berth::builder()
        .storage("memory")
        .metadata("layout")
        .start();
    let http = reqwest::blocking::Client::new();
    let data = b"held in memory only".to_vec();
    let digest = common::sha256_digest(&data);
    let resp = http
        .post(format!(
            "{}/v2/mem/blobs/uploads/?digest={digest}",
            berth.url()
        ))
        .body(data.clone())
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 201);
    let got = http
        .get(format!("{}/v2/mem/blobs/{digest}", berth.url()))
        .send()
        .expect("GET");
    assert_eq!(got.bytes().expect("body").as_ref(), data.as_slice());
    // The catalog lists a repository once it holds a manifest.
    let manifest = common::content::Manifest::image(&digest, data.len()).bytes();
    let put = http
        .put(format!("{}/v2/mem/manifests/v1", berth.url()))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .expect("PUT manifest");
    assert_eq!(put.status(), 201);
    let catalog = http
        .get(format!("{}/v2/_catalog", berth.url()))
        .send()
        .expect("catalog")
        .text()
        .expect("text");
    assert_eq!(catalog, r#"{"repositories":["mem"]}"#);
    let on_disk: Vec<String> = std::fs::read_dir(&berth.root)
        .expect("root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_disk, vec![".cache".to_string()]);
}
