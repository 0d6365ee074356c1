//! The command line beyond the defaults: `--guest` runs the component it is
//! given, the compiled guest is cached under the root, `berth config check`
//! runs every check `serve` runs (and `serve` refuses what it finds, all
//! problems at once, one line each with `file:line`), readable addresses
//! and durations, warnings for unknown `BERTH_*` variables, logs (plain
//! text off a terminal, JSON when asked), and
//! `storage.kind = "memory"`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The guest build.rs embedded, as a file `--guest` can load.
const BUILT_GUEST: &str = env!("BERTH_BUILD_GUEST_WASM");

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
    // A component's header, then garbage: only compiling finds out.
    std::fs::write(&bogus, b"\0asm\x0d\x00\x01\x00 not really").expect("write bogus guest");
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

fn berth_config_check(file: &Path, env: &[(&str, &str)]) -> Output {
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

/// `toml` written as `berth.toml` in a fresh directory.
fn config_file(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("berth.toml");
    std::fs::write(&file, toml).expect("write config");
    (tmp, file)
}

/// `berth serve --config file` that is expected to refuse to start: its
/// output, or a panic if it is still running after 20 s.
fn serve_refused(file: &Path, root: &Path, env: &[(&str, &str)]) -> Output {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", &addr, "--config"])
        .arg(file)
        .arg("--root")
        .arg(root)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "berth serve started with a configuration it should refuse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The problem lines of stderr (without the closing summary), each
/// `file:line` shown as `berth.toml:line`.
fn problem_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("would refuse it") && !l.contains("nothing was started"))
        .map(|l| match l.split_once("/berth.toml:") {
            Some((dir, rest)) if !dir.contains(' ') => format!("berth.toml:{rest}"),
            _ => l.to_owned(),
        })
        .collect()
}

/// Rules, anonymous pulls and a token realm without htpasswd or a token
/// key used to mean "auth off": anyone could push and delete. Now both
/// `config check` and `serve` refuse, naming each setting and its line.
#[test]
fn a_config_that_would_open_the_registry_is_refused() {
    let (tmp, file) = config_file(
        "[auth]\n\
         anonymous_pull = true\n\
         \n\
         [auth.token]\n\
         realm = \"https://auth.example.com/token\"\n\
         \n\
         [[auth.rules]]\n\
         repositories = [\"team/**\"]\n\
         users = [\"alice\"]\n\
         actions = [\"pull\", \"push\"]\n",
    );
    let check = berth_config_check(&file, &[]);
    assert!(!check.status.success(), "config check passed: {check:?}");
    let stderr = problem_lines(&check).join("\n");
    for expected in [
        "berth.toml:2: auth.anonymous_pull: needs a user source",
        "berth.toml:5: auth.token.realm: needs a user source",
        "berth.toml:7: auth.rules: needs a user source",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(check.stdout.is_empty(), "printed a config: {check:?}");

    let started = Instant::now();
    let serve = serve_refused(&file, &tmp.path().join("data"), &[]);
    assert!(!serve.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "slow refusal");
    assert_eq!(problem_lines(&serve), problem_lines(&check));
    assert!(
        !tmp.path().join("data").exists(),
        "serve created its root before refusing"
    );
}

/// Everything `serve` would stop at, in one file: `config check` reports
/// all of it at once, one line per problem with `file:line`, and `serve`
/// refuses with the same lines.
#[test]
fn config_check_reports_every_problem_serve_would_hit_at_once() {
    let (tmp, file) = config_file(
        r#"[server]
guest = "/nonexistent/guest.wasm"

[server.tls]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"

[auth]
htpasswd = "/nonexistent/htpasswd"
groups = { dev = ["alice"] }

[auth.token]
signing_key = "/nonexistent/signing.pem"

[[auth.rules]]
repositories = ["team/**x"]
groups = ["ops"]
actions = ["pull"]

[[auth.rules]]
repositories = ["**"]
actions = ["pull"]

[limits]
guest_memory_mib = 0
guest_fuel = 0

[[plugins]]
path = "builtin:immutable-tag"

[[plugins]]
path = "builtin:required-annotations"
settings = { key = ["org.opencontainers.image.source"] }

[[plugins]]
path = "/nonexistent/policy.wasm"
"#,
    );
    let check = berth_config_check(&file, &[]);
    assert!(!check.status.success());
    let lines = problem_lines(&check);
    let text = lines.join("\n");
    let expected = [
        "berth.toml:16: auth.rules[0].repositories: \"team/**x\": `**` must be a whole path component",
        "berth.toml:17: auth.rules[0].groups: no group \"ops\" in auth.groups (there are dev)",
        "berth.toml:20: auth.rules[1]: names no users, groups or anonymous = true",
        "berth.toml:25: limits.guest_memory_mib: 0 MiB is not a usable memory cap",
        "berth.toml:26: limits.guest_fuel: 0 fuel would stop every call",
        "berth.toml:2: server.guest: cannot read /nonexistent/guest.wasm: No such file or directory",
        "berth.toml:5: server.tls.cert: cannot read /nonexistent/cert.pem",
        "berth.toml:9: auth.htpasswd: cannot read /nonexistent/htpasswd: No such file or directory",
        "berth.toml:13: auth.token.signing_key: cannot read /nonexistent/signing.pem",
        "berth.toml:29: plugins[0].path: no built-in plugin \"builtin:immutable-tag\"",
        "berth.toml:33: plugins[1].settings.key: builtin:required-annotations reads no setting \"key\" (its settings: keys, repositories, media-types)",
        "berth.toml:33: plugins[1].settings: builtin:required-annotations needs the setting \"keys\"",
        "berth.toml:36: plugins[2].path: cannot read /nonexistent/policy.wasm",
    ];
    for want in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "missing {want:?} in:\n{text}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "unexpected lines:\n{text}");

    let serve = serve_refused(&file, &tmp.path().join("data"), &[]);
    assert!(!serve.status.success());
    assert_eq!(problem_lines(&serve), lines);
}

/// Each value `serve` refuses on its own is refused by `config check`.
#[test]
fn each_value_serve_rejects_is_rejected_by_check() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let guest = tmp.path().join("core.wasm");
    // A core module, not a component.
    std::fs::write(&guest, b"\0asm\x01\x00\x00\x00").expect("write");
    let cases = [
        ("[limits]\nguest_memory_mib = 5000\n".to_string(), "limits.guest_memory_mib: 5000 MiB"),
        ("[limits]\nguest_memory_mib = 0\n".into(), "limits.guest_memory_mib: 0 MiB"),
        ("[limits]\nguest_fuel = 0\n".into(), "limits.guest_fuel: 0 fuel"),
        (
            "[[plugins]]\npath = \"builtin:immutable-tags\"\nmemory_mib = 0\nsettings = { patterns = [\"v*\"] }\n".into(),
            "plugins[0].memory_mib: 0 MiB",
        ),
        (
            "[[plugins]]\npath = \"builtin:immutable-tags\"\nsettings = { patern = [\"v*\"] }\n".into(),
            "plugins[0].settings.patern: builtin:immutable-tags reads no setting \"patern\" (its settings: patterns, repositories)",
        ),
        (
            "[[plugins]]\npath = \"builtin:nope\"\n".into(),
            "plugins[0].path: no built-in plugin \"builtin:nope\"",
        ),
        (
            format!("[server]\nguest = {:?}\n", guest.display().to_string()),
            "server.guest: ",
        ),
        (
            "[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n".into(),
            "server.tls.cert: cannot read /nonexistent/c.pem",
        ),
        (
            "[auth]\nhtpasswd = \"/nonexistent/htpasswd\"\n".into(),
            "auth.htpasswd: cannot read /nonexistent/htpasswd",
        ),
        (
            "[auth]\nhtpasswd = \"/dev/null\"\n[auth.token]\nsigning_key = \"/nonexistent/s.pem\"\n".into(),
            "auth.token.signing_key: cannot read /nonexistent/s.pem",
        ),
        (
            "[auth]\nhtpasswd = \"/dev/null\"\n[[auth.rules]]\nrepositories = [\"**\"]\ngroups = [\"ops\"]\nactions = [\"pull\"]\n".into(),
            "auth.rules[0].groups: no group \"ops\"",
        ),
        (
            "[auth]\nhtpasswd = \"/dev/null\"\n[[auth.rules]]\nrepositories = [\"team/**x\"]\nusers = [\"*\"]\nactions = [\"pull\"]\n".into(),
            "auth.rules[0].repositories: \"team/**x\"",
        ),
        (
            "[auth]\nhtpasswd = \"/dev/null\"\n[[auth.rules]]\nrepositories = [\"**\"]\nactions = [\"pull\"]\n".into(),
            "auth.rules[0]: names no users, groups or anonymous",
        ),
    ];
    for (toml, want) in cases {
        let (dir, file) = config_file(&toml);
        let check = berth_config_check(&file, &[]);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "check passed {toml}");
        assert!(stderr.contains(want), "{toml}: want {want:?} in:\n{stderr}");
        let serve = serve_refused(&file, &dir.path().join("data"), &[]);
        let stderr = String::from_utf8_lossy(&serve.stderr);
        assert!(
            stderr.contains(want),
            "serve, {toml}: want {want:?} in:\n{stderr}"
        );
    }
}

/// registry:2-style `:5000`, `localhost:5000` and Go durations are read.
#[test]
fn readable_addresses_and_durations_are_accepted() {
    let (_tmp, file) = config_file(
        "[server]\naddr = \":5000\"\n[gc]\ninterval = \"1h30m\"\ngrace = \"500ms\"\n\
         upload_grace = \"2h45m30s\"\n",
    );
    let out = berth_config_check(&file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("addr = \"0.0.0.0:5000\""), "{stdout}");
    assert!(stdout.contains("interval = \"1h30m\""), "{stdout}");
    assert!(stdout.contains("grace = \"500ms\""), "{stdout}");
    assert!(stdout.contains("upload_grace = \"2h45m30s\""), "{stdout}");
    let out = berth_config_check(&file, &[("BERTH_SERVER_ADDR", "localhost:5000")]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("addr = \"127.0.0.1:5000\""),
        "{out:?}"
    );
    // A bad one names the key and shows the forms.
    let (_tmp, bad) = config_file("[server]\naddr = \"5000\"\n");
    let out = berth_config_check(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("berth.toml:2:8: server.addr"), "{stderr}");
    assert!(
        stderr.contains("`:5000`") && stderr.contains("localhost:5000"),
        "{stderr}"
    );

    // `serve --addr localhost:PORT` resolves the name and serves on it.
    let berth = common::Berth::builder()
        .listen("localhost", "127.0.0.1")
        .env("BERTH_GC_INTERVAL", "1h30m")
        .start();
    let resp = reqwest::blocking::get(format!("{}/v2/", berth.url())).expect("GET /v2/");
    assert_eq!(resp.status(), 200);
}

/// An unknown `BERTH_*` variable is a warning from `config check` and in
/// `serve`'s log; build and test knobs have prefixes of their own and pass
/// without a word.
#[test]
fn unknown_berth_variables_warn_and_build_and_test_knobs_do_not() {
    let (tmp, file) = config_file("[metadata]\nkind = \"sqlite\"\n");
    let env = [
        ("BERTH_FOO", "1"),
        ("BERTH_BUILD_GUEST_WASM", "/x.wasm"),
        ("BERTH_TEST_ANYTHING", "1"),
    ];
    let out = berth_config_check(&file, &env);
    assert!(out.status.success(), "a warning failed the check: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: BERTH_FOO: not a configuration variable"),
        "{stderr}"
    );
    assert!(!stderr.contains("BERTH_BUILD_GUEST_WASM"), "{stderr}");
    assert!(!stderr.contains("BERTH_TEST_ANYTHING"), "{stderr}");
    // A typo inside a known section stays an error.
    let out = berth_config_check(&file, &[("BERTH_STORAGE_ROOOT", "/x")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean BERTH_STORAGE_ROOT?"),
        "{out:?}"
    );

    let log = tmp.path().join("serve.log");
    let mut builder = common::Berth::builder().log(&log);
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let _berth = builder.start();
    let text = std::fs::read_to_string(&log).expect("log");
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("BERTH_FOO") || l.contains("GUEST_WASM") || l.contains("ANYTHING"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("BERTH_FOO"),
        "{text}"
    );
}

#[test]
fn logs_are_plain_text_off_a_terminal_and_json_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_log = dir.path().join("text.log");
    let json_log = dir.path().join("json.log");
    let mut text = common::Berth::builder().log(&text_log).start();
    let mut json = common::Berth::builder()
        .log(&json_log)
        .env("BERTH_LOG_FORMAT", "json")
        .start();
    for berth in [&text, &json] {
        let resp = reqwest::blocking::get(format!("{}/v2/", berth.url())).expect("GET /v2/");
        assert_eq!(resp.status(), 200);
    }
    text.stop();
    json.stop();

    let text = std::fs::read_to_string(&text_log).expect("text log");
    assert!(text.contains("berth is serving"), "{text}");
    // A log file is not a terminal: no colour escapes in it.
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );

    let json = std::fs::read_to_string(&json_log).expect("json log");
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "empty json log");
    let mut serving = false;
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
        serving |= event["fields"]["message"] == "berth is serving";
    }
    assert!(
        serving,
        "no `berth is serving` event in the json log:\n{json}"
    );
}
