//! Berth on PostgreSQL metadata (`metadata.kind = "postgres"`): a real
//! PostgreSQL (Debian's, started by the test as an unprivileged user on a
//! loopback port) with filesystem blobs, and several hosts sharing one
//! SeaweedFS bucket and one database, as users who outgrow one machine
//! run them.

mod common;

use berth_storage::conformance::postgres::TestPostgres;
use common::Berth;
use common::clients::*;
use common::images;
use common::seaweed;
use reqwest::blocking::Client;
use serde_json::json;
use std::sync::OnceLock;

/// One PostgreSQL server for the whole test process; each test gets a
/// database of its own.
fn server() -> &'static TestPostgres {
    static SERVER: OnceLock<TestPostgres> = OnceLock::new();
    SERVER.get_or_init(TestPostgres::start)
}

/// `BERTH_*` variables for postgres metadata in a fresh database.
fn postgres_env(database: &str) -> Vec<(String, String)> {
    vec![
        ("BERTH_METADATA_KIND".into(), "postgres".into()),
        (
            "BERTH_METADATA_POSTGRES_URL".into(),
            server().create_database(database),
        ),
    ]
}

/// `BERTH_*` variables for `prefix` of the shared bucket with metadata in
/// `database_env`'s database.
fn bucket_env(prefix: &str, database_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = seaweed::shared().berth_env(prefix, "postgres");
    env.retain(|(key, _)| key != "BERTH_METADATA_KIND");
    env.extend(database_env.iter().cloned());
    env
}

/// A host over `prefix` of the shared bucket with metadata in `env`'s database.
fn host_on_bucket(prefix: &str, database_env: &[(String, String)]) -> Berth {
    Berth::builder()
        .envs(bucket_env(prefix, database_env))
        .start()
}

fn head_manifest(http: &Client, berth: &Berth, repo: &str, reference: &str) -> Option<String> {
    let resp = http
        .head(format!("{}/v2/{repo}/manifests/{reference}", berth.url()))
        .header("accept", images::MEDIA_TYPE_MANIFEST)
        .send()
        .expect("HEAD manifest");
    (resp.status() == 200).then(|| {
        resp.headers()["docker-content-digest"]
            .to_str()
            .expect("digest header")
            .to_owned()
    })
}

/// skopeo pushes and pulls with filesystem blobs and postgres metadata,
/// and a restart keeps everything.
#[test]
fn skopeo_roundtrip_and_restart_on_postgres() {
    let _serial = serial();
    let image = images::multi();
    let mut berth = Berth::builder().envs(postgres_env("roundtrip")).start();
    skopeo_roundtrip(&berth, image.clone(), "pg/app");
    berth.restart();
    assert_eq!(
        tags(&berth, "pg/app"),
        json!({"name": "pg/app", "tags": [image.tag]})
    );
    assert_eq!(catalog(&berth), json!({"repositories": ["pg/app"]}));
    skopeo_pull_and_compare(&berth, &image, "pg/app");
}

/// Three hosts over one bucket and one database: a push through one is
/// pulled through the others, a tag moved on one is seen at once on the
/// others, and a delete on one is gone everywhere.
#[test]
fn three_hosts_share_one_bucket_and_database() {
    let _serial = serial();
    let prefix = seaweed::unique_prefix("pg-hosts");
    let database = postgres_env("three_hosts");
    let hosts: Vec<Berth> = (0..3).map(|_| host_on_bucket(&prefix, &database)).collect();
    let image = images::multi();
    skopeo_push(&hosts[0], &image, "shared/app");
    for host in &hosts[1..] {
        assert_registry_has(host, &image, "shared/app");
        assert_eq!(catalog(host), json!({"repositories": ["shared/app"]}));
    }
    skopeo_pull_and_compare(&hosts[2], &image, "shared/app");

    let http = no_redirects();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest =
        common::push::blob(&http, &hosts[2].url(), "moving", &config).expect("push config");
    let mut pushed = Vec::new();
    for round in 0..3usize {
        let manifest = common::content::Manifest::image(&config_digest, config.len())
            .field("annotations", json!({"round": round.to_string()}))
            .bytes();
        let on = &hosts[round % 3];
        assert_eq!(
            common::push::manifest(&http, &on.url(), "moving", "latest", &manifest),
            201
        );
        let digest = common::sha256_digest(&manifest);
        for host in &hosts {
            assert_eq!(
                head_manifest(&http, host, "moving", "latest").as_deref(),
                Some(digest.as_str()),
                "round {round}"
            );
        }
        pushed.push(digest);
    }
    assert_eq!(
        common::push::delete_manifest(&http, &hosts[1].url(), "moving", &pushed[2]),
        202
    );
    for host in &hosts {
        assert_eq!(head_manifest(&http, host, "moving", "latest"), None);
        assert_eq!(
            head_manifest(&http, host, "moving", &pushed[0]).as_deref(),
            Some(pushed[0].as_str())
        );
    }
}

/// `berth gc` on one host collects what a delete through another host let
/// go of, from the shared bucket, and keeps what another image shares.
#[test]
fn gc_on_one_host_collects_what_another_deleted() {
    let _serial = serial();
    let prefix = seaweed::unique_prefix("pg-gc");
    let database = postgres_env("gc_hosts");
    let (a, b) = (
        host_on_bucket(&prefix, &database),
        host_on_bucket(&prefix, &database),
    );
    let http = no_redirects();
    let gone = common::push::deleted_image_sharing_a_layer(&http, &a.url(), &b.url());

    let env = bucket_env(&prefix, &database);
    let text = common::berth_ok(
        &a.root,
        &env,
        &["gc", "--grace", "0s", "--upload-grace", "0s"],
    );
    assert!(text.contains("removed 3 blobs"), "{text}");
    let s3 = seaweed::shared();
    assert!(!s3.holds(&prefix, &gone.own), "own layer left");
    assert!(
        !s3.holds(&prefix, &gone.manifest),
        "manifest left in the bucket"
    );
    assert!(s3.holds(&prefix, &gone.shared), "shared layer removed");
    for host in [&a, &b] {
        assert!(common::push::blob_exists(
            &http,
            &host.url(),
            "gc/b",
            &gone.shared
        ));
    }
}

/// A database `serve` cannot reach stops it within seconds, naming the
/// server and never the password; `config check` asks for the URL.
#[test]
fn an_unreachable_database_fails_the_start() {
    let port = common::free_port();
    let root = tempfile::tempdir().expect("temp dir");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .arg("--root")
        .arg(root.path())
        .env("BERTH_METADATA_KIND", "postgres")
        .env(
            "BERTH_METADATA_POSTGRES_URL",
            format!("postgres://berth:hunter2@127.0.0.1:{port}/registry"),
        )
        .output()
        .expect("berth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(started.elapsed().as_secs() < 15, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "password shown: {err}");

    let empty = root.path().join("berth.toml");
    std::fs::write(&empty, "").expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&empty)
        .env("BERTH_METADATA_KIND", "postgres")
        .output()
        .expect("berth config check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("metadata.postgres.url"), "{err}");
}

/// `berth metadata migrate --to postgres` on `root` (SQLite or layout
/// metadata, as `kind` says) into `url`: its stdout.
fn migrate(root: &std::path::Path, kind: &str, url: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["metadata", "migrate", "--to", "postgres", "--root"])
        .arg(root)
        .env("BERTH_METADATA_KIND", kind)
        .env("BERTH_METADATA_POSTGRES_URL", url)
        .output()
        .expect("berth metadata migrate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A SQLite store moves to PostgreSQL while its server keeps serving: a
/// second run changes nothing, and the same root served with postgres
/// metadata holds every image with the same digests.
#[test]
fn migrate_from_sqlite_keeps_every_image() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("temp dir");
    let (image, small) = (images::multi(), images::small());
    let url = server().create_database("from_sqlite");
    {
        let old = Berth::builder().root(root.path()).start();
        skopeo_push(&old, &image, "team/app");
        skopeo_push(&old, &small, "team/tool");
        let first = migrate(root.path(), "sqlite", &url);
        assert!(first.contains("migrated 2 repositories"), "{first}");
        let again = migrate(root.path(), "sqlite", &url);
        assert!(again.contains("migrated 2 repositories"), "{again}");
        assert!(!again.contains("skipped"), "{again}");
        assert_registry_has(&old, &image, "team/app");
    }
    let new = Berth::builder()
        .root(root.path())
        .env("BERTH_METADATA_KIND", "postgres")
        .env("BERTH_METADATA_POSTGRES_URL", &url)
        .start();
    assert_eq!(
        catalog(&new),
        json!({"repositories": ["team/app", "team/tool"]})
    );
    assert_eq!(
        tags(&new, "team/app"),
        json!({"name": "team/app", "tags": [image.tag]})
    );
    assert_registry_has(&new, &image, "team/app");
    skopeo_pull_and_compare(&new, &image, "team/app");
    skopeo_pull_and_compare(&new, &small, "team/tool");
}

/// registry:2's own tree (written by registry:2) moves to PostgreSQL; its
/// blobs stay where registry:2 put them and Berth serves them from there.
#[test]
fn migrate_from_a_registry2_tree() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let image = images::multi();
    {
        let registry = common::distribution::Registry2::filesystem(dir.path());
        skopeo_push(&registry, &image, "library/app");
    }
    let url = server().create_database("from_registry2");
    let text = migrate(dir.path(), "layout", &url);
    assert!(text.contains("migrated 1 repositories"), "{text}");
    let berth = Berth::builder()
        .root(dir.path())
        .env("BERTH_METADATA_KIND", "postgres")
        .env("BERTH_METADATA_POSTGRES_URL", &url)
        .start();
    assert_eq!(catalog(&berth), json!({"repositories": ["library/app"]}));
    assert_registry_has(&berth, &image, "library/app");
    skopeo_pull_and_compare(&berth, &image, "library/app");
}

/// Three hosts over one bucket and one database, each collecting every
/// second with every grace period at zero, against pushers that send each
/// image through a host chosen at random (shared layers, mounts, tag
/// moves, deletes). Afterwards fsck finds nothing dangling, every
/// manifest that answers 200 on one host answers the same on all and
/// pulls whole, every tag pulls from every host, and a last pass leaves
/// nothing unreferenced. bench/pg-race.sh runs it long.
#[test]
fn three_hosts_collect_at_zero_grace_without_losing_blobs() {
    use common::race::*;
    let size = RaceSize::from_env();
    let prefix = seaweed::unique_prefix("pg-race");
    let database = postgres_env("race");
    let env = bucket_env(&prefix, &database);
    let hosts: Vec<Berth> = (0..3)
        .map(|_| {
            Berth::builder()
                .envs(env.clone())
                .env("BERTH_GC_INTERVAL", "1s")
                .env("BERTH_GC_GRACE", "0s")
                .env("BERTH_GC_UPLOAD_GRACE", "0s")
                .start()
        })
        .collect();
    let bases: Vec<String> = hosts.iter().map(Berth::url).collect();
    let (tallies, pushing) = run_pushers(&bases, &size);
    let sum = |f: fn(&PusherTally) -> u64| tallies.iter().map(f).sum::<u64>();
    let statuses: Vec<u16> = tallies.iter().flat_map(|t| t.statuses.clone()).collect();

    // The collectors keep running: what is dangling now was lost.
    let fsck = common::berth_ok(&hosts[0].root, &env, &["fsck"]);
    let http = Client::new();
    let (mut answering, mut broken) = (0u64, Vec::new());
    for (repo, digest) in tallies.iter().flat_map(|t| &t.pushed) {
        let seen: Vec<Pull> = bases.iter().map(|b| pull(&http, b, repo, digest)).collect();
        match &seen[..] {
            [Pull::Gone, Pull::Gone, Pull::Gone] => {}
            [Pull::Whole(_), Pull::Whole(_), Pull::Whole(_)] => answering += 1,
            _ => broken.push(format!(
                "{repo}@{digest} differs between hosts or lost blobs"
            )),
        }
    }
    eprintln!(
        "postgres gc race: 3 hosts collecting every 1 s at zero grace, {} pushers: {} images \
         pushed in {pushing:.1?} ({} retried, {} mounts, {} manifests deleted); {answering} \
         answer 200 on every host and pull whole, {} do not; fsck: {}",
        size.pushers,
        sum(|t| t.pushed.len() as u64),
        sum(|t| t.retried),
        sum(|t| t.mounted),
        sum(|t| t.deleted),
        broken.len(),
        fsck.lines().last().unwrap_or_default(),
    );
    assert_eq!(dangling_of(&fsck), Some(0), "{fsck}");
    assert!(broken.is_empty(), "acknowledged images broken: {broken:#?}");
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "pushes failed with server errors: {statuses:?}"
    );
    for repo in REPOS {
        let tags = tags(&hosts[0], repo);
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("tag");
            for base in &bases {
                match pull(&http, base, repo, tag) {
                    Pull::Whole(_) => {}
                    Pull::Gone => panic!("{repo}:{tag} listed but gone on {base}"),
                    Pull::Broken(lost) => panic!("{repo}:{tag} lost {lost:?} on {base}"),
                }
            }
        }
    }
    let zero = ["gc", "--grace", "0s", "--upload-grace", "0s"];
    common::berth_ok(&hosts[0].root, &env, &zero);
    let dry = common::berth_ok(
        &hosts[0].root,
        &env,
        &["gc", "--dry-run", "--grace", "0s", "--upload-grace", "0s"],
    );
    assert!(
        dry.contains("would remove 0 blobs"),
        "unreferenced left: {dry}"
    );
    let fsck = common::berth_ok(&hosts[0].root, &env, &["fsck"]);
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
}

/// PostgreSQL going away: requests that need metadata answer 503
/// `UNAVAILABLE` with `Retry-After`, an upload in flight is kept, and
/// Berth recovers by itself once the database is back.
#[test]
fn a_database_outage_is_a_503_and_berth_recovers() {
    let _serial = serial();
    let database = TestPostgres::start();
    let url = database.create_database("outage");
    let berth = Berth::builder()
        .env("BERTH_METADATA_KIND", "postgres")
        .env("BERTH_METADATA_POSTGRES_URL", &url)
        .start();
    let http = no_redirects();
    let base = berth.url();
    let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let manifest = common::push::image(&http, &base, "outage/app", "1", b"{}", &[layer])
        .expect("push before the outage");
    let started = http
        .post(format!("{base}/v2/outage/app/blobs/uploads/"))
        .send()
        .expect("POST upload");
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let upload = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let part: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let patched = http
        .patch(&upload)
        .header("content-type", "application/octet-stream")
        .body(part.clone())
        .send()
        .expect("PATCH");
    assert_eq!(patched.status(), 202);

    database.stop();
    let get = |reference: &str| {
        http.get(format!("{base}/v2/outage/app/manifests/{reference}"))
            .header("accept", images::MEDIA_TYPE_MANIFEST)
            .send()
            .expect("GET manifest")
    };
    let down = get("1");
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"), "{down:?}");
    let body: serde_json::Value = down.json().expect("error JSON");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");

    database.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get("1").status() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "Berth did not recover once the database was back"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(get(&manifest).status(), 200);
    // The upload started before the outage goes on where it stopped.
    let status = http.get(&upload).send().expect("upload status");
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], format!("0-{}", part.len() - 1));
    let digest = common::sha256_digest(&part);
    let sep = if upload.contains('?') { '&' } else { '?' };
    let done = http
        .put(format!("{upload}{sep}digest={digest}"))
        .send()
        .expect("PUT");
    assert_eq!(done.status(), 201);
    assert!(common::push::blob_exists(
        &http,
        &base,
        "outage/app",
        &digest
    ));
}

/// Hosts starting together against an empty database: one creates the
/// tables, the others wait for it, and all of them serve.
#[test]
fn hosts_starting_at_once_share_one_new_database() {
    let database = postgres_env("at_once");
    let hosts: Vec<Berth> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Berth::builder().envs(database.clone()).start()))
            .collect();
        starting
            .into_iter()
            .map(|h| h.join().expect("host start"))
            .collect()
    });
    let http = no_redirects();
    let digest =
        common::push::image(&http, &hosts[0].url(), "once/app", "1", b"{}", &[]).expect("push");
    for host in &hosts {
        assert_eq!(
            head_manifest(&http, host, "once/app", "1").as_deref(),
            Some(digest.as_str())
        );
    }
}

/// A `berth gc` pass killed half way (its lease's session ends with the
/// process) leaves its tombstones to the next pass, which finishes them.
#[test]
fn a_killed_pass_is_finished_by_the_next() {
    let database = postgres_env("killed_pass");
    let berth = Berth::builder().envs(database.clone()).start();
    common::race::killed_pass_is_finished_by_the_next(&berth, &database);
}
