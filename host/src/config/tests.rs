use super::*;

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// Environment variables as `Config::load` takes them (also for the
/// registry:2 translation's tests).
pub(super) fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The warnings reading `config` gave, as they are printed.
pub(super) fn warnings(config: &Config) -> Vec<String> {
    config
        .source
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let (_dir, path) = write(text);
    Config::load(Some(&path), vars(env), &Overrides::default())
}

const S3_FILE: &str = r#"
[storage]
kind = "s3"
root = "/var/lib/berth"

[storage.s3]
bucket = "images"
endpoint = "http://127.0.0.1:9000"
region = "eu-west-1"
prefix = "registry"
access_key_id = "AKIA"
secret_access_key = "hunter2"
allow_http = true
redirect = true

[metadata]
kind = "layout"
"#;

#[test]
fn defaults_without_file_or_environment() {
    let config = Config::load(None, vars(&[]), &Overrides::default()).expect("load");
    assert_eq!(config, Config::default());
    assert_eq!(config.storage.kind, StorageKind::Filesystem);
    assert_eq!(config.storage.root, PathBuf::from("./registry-data"));
    assert_eq!(config.metadata.kind, MetadataKind::Sqlite);
    assert_eq!(config.server.addr.to_string(), "127.0.0.1:5000");
}

#[test]
fn every_key_of_a_full_file_is_read() {
    let config = load(S3_FILE, &[]).expect("load");
    let s3 = &config.storage.s3;
    assert_eq!(config.storage.kind, StorageKind::S3);
    assert_eq!(config.storage.root, PathBuf::from("/var/lib/berth"));
    assert_eq!(s3.bucket.as_deref(), Some("images"));
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.prefix.as_deref(), Some("registry"));
    assert_eq!(s3.access_key_id.as_deref(), Some("AKIA"));
    assert_eq!(
        s3.secret_access_key.as_ref().map(Secret::expose),
        Some("hunter2")
    );
    assert!(s3.allow_http && s3.redirect);
    assert_eq!(config.metadata.kind, MetadataKind::Layout);
}

#[test]
fn environment_beats_file_and_flags_beat_environment() {
    let (_dir, path) = write(S3_FILE);
    let env = vars(&[
        ("BERTH_STORAGE_S3_BUCKET", "other"),
        ("BERTH_STORAGE_S3_ALLOW_HTTP", "false"),
        ("BERTH_STORAGE_S3_ENDPOINT", "https://s3.example.com"),
        ("BERTH_STORAGE_ROOT", "/from/env"),
        ("BERTH_SERVER_ADDR", "0.0.0.0:6000"),
        ("BERTH_BUILD_GUEST_WASM", "not a config key, ignored"),
    ]);
    let flags = Overrides {
        root: Some(PathBuf::from("/from/flag")),
        ..Overrides::default()
    };
    let config = Config::load(Some(&path), env, &flags).expect("load");
    assert_eq!(config.storage.s3.bucket.as_deref(), Some("other"));
    assert!(!config.storage.s3.allow_http);
    assert_eq!(config.storage.root, PathBuf::from("/from/flag"));
    assert_eq!(config.server.addr.to_string(), "0.0.0.0:6000");
}

#[test]
fn environment_alone_selects_s3() {
    let env = vars(&[
        ("BERTH_STORAGE_KIND", "s3"),
        ("BERTH_STORAGE_S3_BUCKET", "images"),
        ("BERTH_METADATA_KIND", "layout"),
    ]);
    let config = Config::load(None, env, &Overrides::default()).expect("load");
    assert_eq!(config.storage.kind, StorageKind::S3);
    assert_eq!(config.metadata.kind, MetadataKind::Layout);
}

#[test]
fn unknown_key_names_the_key_and_position() {
    let err = load("[storage.s3]\nbucket = \"x\"\nbukket = \"y\"\n", &[])
        .expect_err("unknown key must fail")
        .to_string();
    assert!(err.contains("berth.toml:3:1"), "{err}");
    assert!(err.contains("storage.s3.bukket"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let err = load("[storage.s3]\nbucket = \"x\"\nallow_http = \"yes\"\n", &[])
        .expect_err("wrong type must fail")
        .to_string();
    assert!(err.contains("berth.toml:3:14"), "{err}");
    assert!(err.contains("storage.s3.allow_http"), "{err}");
}

#[test]
fn unknown_kind_is_an_error() {
    let err = load("[storage]\nkind = \"ftp\"\n", &[])
        .expect_err("bad kind must fail")
        .to_string();
    assert!(err.contains("berth.toml:2:8"), "{err}");
    assert!(err.contains("storage.kind"), "{err}");
}

#[test]
fn bad_environment_values_name_the_variable() {
    let bad = [
        ("BERTH_STORAGE_S3_ALLOW_HTTP", "maybe"),
        ("BERTH_STORAGE_KIND", "ftp"),
        ("BERTH_SERVER_ADDR", "localhost"),
        ("BERTH_STORAGE_S3_BUKKET", "x"),
    ];
    for (name, value) in bad {
        let err = Config::load(None, vars(&[(name, value)]), &Overrides::default())
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn s3_needs_a_bucket() {
    let err = load("[storage]\nkind = \"s3\"\n", &[])
        .expect_err("s3 without bucket")
        .to_string();
    assert!(err.contains("storage.s3.bucket"), "{err}");
}

#[test]
fn render_masks_secrets_and_reloads() {
    let config = load(S3_FILE, &[]).expect("load");
    let text = config.render();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("secret_access_key = \"****\""), "{text}");
    assert!(!format!("{config:?}").contains("hunter2"));
    let (_dir, path) = write(&text);
    let again = Config::load(Some(&path), vars(&[]), &Overrides::default()).expect("reload");
    assert_eq!(again.storage.s3.bucket, config.storage.s3.bucket);
}

#[test]
fn every_key_has_its_variable() {
    let names: Vec<String> = env::keys().map(|(_, var)| var).collect();
    assert!(names.contains(&"BERTH_STORAGE_S3_ACCESS_KEY_ID".to_string()));
    assert!(names.contains(&"BERTH_METADATA_KIND".to_string()));
    // Each key in a rendered full config is settable from the environment.
    let config = load(S3_FILE, &[]).expect("load");
    let table: toml::Table = toml::from_str(&config.render()).expect("render parses");
    let mut leaves = Vec::new();
    collect_leaves(&table, "", &mut leaves);
    // Rules and groups are lists of tables: only a file can say them.
    let file_only = ["auth.rules", "auth.groups", "plugins"];
    for leaf in leaves {
        if file_only.iter().any(|f| leaf.starts_with(f)) {
            continue;
        }
        assert!(
            env::keys().any(|(key, _)| key == leaf),
            "{leaf} has no variable"
        );
    }
}

fn collect_leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => collect_leaves(t, &path, out),
            _ => out.push(path),
        }
    }
}

#[test]
fn unknown_variables_outside_the_sections_are_warnings() {
    let env = vars(&[
        ("BERTH_FOO", "1"),
        ("BERTH_BUILD_GUEST_WASM", "/x.wasm"),
        ("BERTH_TEST_WEED", "/bin/weed"),
        ("BERTH_STORAGE_ROOT", "/srv"),
    ]);
    let config = Config::load(None, env, &Overrides::default()).expect("load");
    let warnings = warnings(&config);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("warning: BERTH_FOO: not a configuration variable"),
        "{warnings:?}"
    );
}

#[test]
fn every_bad_variable_is_reported_at_once() {
    let env = vars(&[
        ("BERTH_STORAGE_KIND", "ftp"),
        ("BERTH_SERVER_ADRR", "x"),
        ("BERTH_GC_GRACE", "soon"),
    ]);
    let err = Config::load(None, env, &Overrides::default())
        .expect_err("bad variables")
        .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("BERTH_GC_GRACE: \"soon\""), "{err}");
    assert!(
        lines[1].contains(
            "BERTH_SERVER_ADRR: unknown configuration variable; did you mean BERTH_SERVER_ADDR?"
        ),
        "{err}"
    );
    assert!(lines[2].starts_with("BERTH_STORAGE_KIND: "), "{err}");
}

#[test]
fn addresses_and_durations_in_readable_forms() {
    let config = load(
        "[server]\naddr = \":5000\"\n[gc]\ninterval = \"1h30m\"\ngrace = \"500ms\"\n",
        &[],
    )
    .expect("load");
    assert_eq!(config.server.addr.to_string(), "0.0.0.0:5000");
    assert_eq!(config.gc.interval.0, std::time::Duration::from_secs(5400));
    assert_eq!(config.gc.grace.0, std::time::Duration::from_millis(500));
    let env = vars(&[("BERTH_SERVER_ADDR", "localhost:5001")]);
    let config = Config::load(None, env, &Overrides::default()).expect("load");
    assert_eq!(config.server.addr.to_string(), "127.0.0.1:5001");
    let err = load("[server]\naddr = \"5000\"\n", &[])
        .expect_err("no port")
        .to_string();
    assert!(err.contains("berth.toml:2:8: server.addr"), "{err}");
    assert!(err.contains(":5000"), "{err}");
}

#[test]
fn problems_carry_the_line_or_the_variable_that_set_the_key() {
    let text = "[storage]\nkind = \"s3\"\n\n[auth]\nanonymous_pull = true\n\n\
                [[auth.rules]]\nrepositories = [\"team/**x\"]\nusers = [\"*\"]\nactions = [\"pull\"]\n";
    let err = load(text, &[("BERTH_AUTH_GROUPS_X", "y")]).expect_err("unknown var");
    assert!(err.to_string().contains("BERTH_AUTH_GROUPS_X"), "{err}");
    let (dir, path) = write(text);
    let env = vars(&[("BERTH_LIMITS_MAX_HEADER_BYTES", "10")]);
    let err = Config::load(Some(&path), env, &Overrides::default())
        .expect_err("problems")
        .to_string();
    let prefix = format!("{}/", dir.path().display());
    let lines: Vec<&str> = err
        .lines()
        .map(|l| l.strip_prefix(prefix.as_str()).unwrap_or(l))
        .collect();
    assert_eq!(
        lines,
        [
            "berth.toml:1: storage.s3.bucket: required when storage.kind = \"s3\"",
            "berth.toml:7: auth.rules: needs a user source (auth.htpasswd, \
             auth.token.public_key or auth.token.jwks): without one, logins are off and \
             anyone may pull, push and delete",
            "berth.toml:5: auth.anonymous_pull: needs a user source (auth.htpasswd, \
             auth.token.public_key or auth.token.jwks): without one, logins are off and \
             anyone may pull, push and delete",
            "berth.toml:8: auth.rules[0].repositories: \"team/**x\": `**` must be a whole path \
             component (as in `team/**`), not part of \"**x\"",
            "BERTH_LIMITS_MAX_HEADER_BYTES: limits.max_header_bytes: 10 is too small: at least 8192",
        ],
        "{err}"
    );
}

const PROXY_FILE: &str = r#"
[[proxy]]
prefix = "hub"
url = "https://registry-1.docker.io"
username = "bob"
password = "hunter2"
tag_ttl = "1h30m"
registry = "docker.io"
ca_file = "/etc/berth/hub-ca.pem"
insecure = false

[[proxy]]
url = "https://mirror.example.com:5000/v2-prefix"
"#;

#[test]
fn every_key_of_a_proxy_table_is_read_with_defaults_for_the_rest() {
    let config = load(PROXY_FILE, &[]).expect("load");
    assert_eq!(config.proxy.len(), 2);
    let hub = &config.proxy[0];
    assert_eq!(hub.prefix.as_deref(), Some("hub"));
    assert_eq!(hub.url, "https://registry-1.docker.io");
    assert_eq!(hub.username.as_deref(), Some("bob"));
    assert_eq!(hub.password.as_deref(), Some("hunter2"));
    assert_eq!(hub.password_file, None);
    assert_eq!(hub.tag_ttl, Span::secs(5400));
    assert_eq!(hub.registry.as_deref(), Some("docker.io"));
    assert_eq!(hub.ca_file, Some(PathBuf::from("/etc/berth/hub-ca.pem")));
    assert!(!hub.insecure);
    let mirror = &config.proxy[1];
    assert_eq!(
        *mirror,
        ProxyConfig {
            url: "https://mirror.example.com:5000/v2-prefix".into(),
            ..ProxyConfig::default()
        }
    );
    assert_eq!(mirror.tag_ttl, Span::secs(300));
    assert_eq!(mirror.prefix, None);
    assert!(!mirror.insecure);
    // No proxies: none, and nothing rendered.
    assert!(Config::default().proxy.is_empty());
    assert!(!Config::default().render().contains("proxy"));
}

#[test]
fn a_proxy_needs_a_url_and_knows_its_keys() {
    let err = load("[[proxy]]\nprefix = \"hub\"\n", &[])
        .expect_err("no url")
        .to_string();
    assert!(err.contains("missing field `url`"), "{err}");
    let err = load("[[proxy]]\nurl = \"https://x\"\nttl = \"5m\"\n", &[])
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("berth.toml:3:1: "), "{err}");
    assert!(err.contains("ttl"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn proxy_flags_add_entries_after_the_files() {
    let (_dir, path) = write("[[proxy]]\nprefix = \"ghcr\"\nurl = \"https://ghcr.io\"\n");
    let flags = Overrides {
        proxies: vec![
            ProxyConfig::from_spec("hub=https://x").expect("spec"),
            ProxyConfig::from_spec("https://y").expect("spec"),
        ],
        ..Overrides::default()
    };
    let config = Config::load(Some(&path), vars(&[]), &flags).expect("load");
    let got: Vec<(Option<&str>, &str)> = config
        .proxy
        .iter()
        .map(|p| (p.prefix.as_deref(), p.url.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("ghcr"), "https://ghcr.io"),
            (Some("hub"), "https://x"),
            (None, "https://y"),
        ]
    );
    assert_eq!(config.proxy[1].tag_ttl, Span::secs(300));
    // A flag's prefix equal to the file's is a duplicate, located at the flag.
    let flags = Overrides {
        proxies: vec![ProxyConfig::from_spec("ghcr=https://z").expect("spec")],
        ..Overrides::default()
    };
    let err = Config::load(Some(&path), vars(&[]), &flags)
        .expect_err("duplicate prefix")
        .to_string();
    assert_eq!(
        err,
        "--proxy: proxy[1].prefix: \"ghcr\" is also the prefix of proxy[0]"
    );
}

#[test]
fn berth_proxy_adds_entries_after_the_file_and_before_the_flags() {
    let (_dir, path) = write("[[proxy]]\nprefix = \"ghcr\"\nurl = \"https://ghcr.io\"\n");
    let env = vars(&[(
        "BERTH_PROXY",
        "hub=https://registry-1.docker.io, quay=https://quay.io\nhttps://mirror:5000",
    )]);
    let flags = Overrides {
        proxies: vec![ProxyConfig::from_spec("gcr=https://gcr.io").expect("spec")],
        ..Overrides::default()
    };
    let config = Config::load(Some(&path), env, &flags).expect("load");
    let got: Vec<(Option<&str>, &str)> = config
        .proxy
        .iter()
        .map(|p| (p.prefix.as_deref(), p.url.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("ghcr"), "https://ghcr.io"),
            (Some("hub"), "https://registry-1.docker.io"),
            (Some("quay"), "https://quay.io"),
            (None, "https://mirror:5000"),
            (Some("gcr"), "https://gcr.io"),
        ]
    );
    assert!(
        config.proxy[1..]
            .iter()
            .all(|p| p.tag_ttl == Span::secs(300))
    );
    // Problems name the variable that added the entry.
    let env = vars(&[("BERTH_PROXY", "hub=ftp://x")]);
    let err = Config::load(None, env, &Overrides::default())
        .expect_err("bad scheme")
        .to_string();
    assert!(err.starts_with("BERTH_PROXY: proxy[0].url: "), "{err}");
    // A SPEC that is not one is an error of the variable.
    for bad in ["", " , ", "=https://x", "hub="] {
        let err = Config::load(None, vars(&[("BERTH_PROXY", bad)]), &Overrides::default())
            .expect_err(bad)
            .to_string();
        assert!(err.starts_with("BERTH_PROXY: "), "{bad:?}: {err}");
    }
    let err = Config::load(
        None,
        vars(&[("BERTH_PROXY_URL", "https://x")]),
        &Overrides::default(),
    )
    .expect_err("not a variable")
    .to_string();
    assert!(
        err.contains("BERTH_PROXY_URL: unknown configuration variable"),
        "{err}"
    );
}

#[test]
fn proxy_problems_carry_the_line_of_their_entry() {
    let text = "[[proxy]]\nprefix = \"hub\"\nurl = \"https://x\"\n\n\
                [[proxy]]\nprefix = \"hub/library\"\nurl = \"https://y\"\n";
    let (dir, path) = write(text);
    let err = Config::load(Some(&path), vars(&[]), &Overrides::default())
        .expect_err("nested prefixes")
        .to_string();
    let err = err.replace(&format!("{}/", dir.path().display()), "");
    assert!(
        err.starts_with("berth.toml:6: proxy[1].prefix: \"hub/library\" and the prefix \"hub\""),
        "{err}"
    );
}

#[test]
fn render_masks_proxy_passwords() {
    let config = load(PROXY_FILE, &[]).expect("load");
    let text = config.render();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("password = \"****\""), "{text}");
    assert!(text.contains("[[proxy]]"), "{text}");
    assert!(text.contains("tag_ttl = \"5m\""), "{text}");
    assert!(!format!("{config:?}").contains("hunter2"));
    // What config check prints reads back as the same entries.
    let (_dir, path) = write(&text);
    let again = Config::load(Some(&path), vars(&[]), &Overrides::default()).expect("reload");
    assert_eq!(again.proxy.len(), 2);
    assert_eq!(again.proxy[0].registry.as_deref(), Some("docker.io"));
    assert_eq!(again.proxy[1], config.proxy[1]);
}

#[test]
fn database_urls_are_shown_without_their_password_in_every_form() {
    let shown = |url: &str| DatabaseUrl(url.to_owned()).masked();
    assert_eq!(
        shown("postgres://berth:hunter2@db:6543/registry"),
        "postgres://berth:****@db:6543/registry"
    );
    assert_eq!(
        shown("postgres://berth@db/registry?password=hunter2"),
        "postgres://berth:****@db:5432/registry"
    );
    assert_eq!(
        shown("host=db user=berth password=hunter2 dbname=registry"),
        "postgres://berth:****@db:5432/registry"
    );
    assert_eq!(shown("postgres://[hunter2"), "****");
    let config = load(
        "[metadata]\nkind = \"postgres\"\n[metadata.postgres]\n\
         url = \"host=db password=hunter2\"\n",
        &[],
    )
    .expect("load");
    assert!(!config.render().contains("hunter2"), "{}", config.render());
    assert!(!format!("{config:?}").contains("hunter2"));
}
