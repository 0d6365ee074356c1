use crate::config::tests::{vars, warnings};
use crate::config::{AuthMode, Config, ConfigError, LogFormat, MetadataKind, Overrides};
use crate::config::{Span, StorageKind};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// `text` as `config.yml`, with `env`.
fn yaml(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "config.yml", text);
    Config::load(Some(&path), vars(env), &Overrides::default())
}

fn refused(result: Result<Config, ConfigError>) -> String {
    match result {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

const FULL: &str = r#"
version: 0.1
log:
  level: debug
  formatter: json
storage:
  filesystem:
    rootdirectory: /srv/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: true
http:
  addr: :5000
  secret: asecretforlocaldevelopment
  tls:
    certificate: /certs/domain.crt
    key: /certs/domain.key
auth:
  htpasswd:
    realm: Registry Realm
    path: /auth/htpasswd
proxy:
  remoteurl: https://registry-1.docker.io
  username: bob
  password: 0123
  ttl: 72h
health:
  storagedriver:
    enabled: true
    interval: 30s
    threshold: 3
"#;

#[test]
fn every_mapped_setting_of_a_config_yml_is_read() {
    let config = yaml(FULL, &[]).expect("load");
    assert_eq!(config.server.addr.to_string(), "0.0.0.0:5000");
    assert_eq!(
        config.server.tls.cert.as_deref(),
        Some(Path::new("/certs/domain.crt"))
    );
    assert_eq!(
        config.server.tls.key.as_deref(),
        Some(Path::new("/certs/domain.key"))
    );
    assert_eq!(config.storage.kind, StorageKind::Filesystem);
    assert_eq!(config.storage.root, PathBuf::from("/srv/registry"));
    assert!(config.server.delete);
    assert!(config.server.read_only);
    assert_eq!(config.gc.upload_max_age, Span::hours(168));
    assert_eq!(config.gc.interval, Span::hours(24));
    assert_eq!(
        config.auth.htpasswd.as_deref(),
        Some(Path::new("/auth/htpasswd"))
    );
    assert_eq!(config.auth.realm, "Registry Realm");
    assert_eq!(config.auth.mode, AuthMode::Basic);
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.server.health_interval, Span::secs(30));
    let [proxy] = config.proxy.as_slice() else {
        panic!("one proxy: {:?}", config.proxy);
    };
    assert_eq!(proxy.prefix, None);
    assert_eq!(proxy.url, "https://registry-1.docker.io");
    assert_eq!(proxy.username.as_deref(), Some("bob"));
    // Digits stay the text written.
    assert_eq!(proxy.password.as_deref(), Some("0123"));
    // An eviction age, not how long a tag is trusted.
    assert_eq!(proxy.unused_after, Some(Span::hours(72)));
    assert_eq!(proxy.tag_ttl, crate::config::proxy::DEFAULT_TAG_TTL);
    // Everything is accounted for: nothing ignored, two settings not needed.
    let warnings = warnings(&config);
    assert!(
        !warnings.iter().any(|w| w.contains("ignores")),
        "{warnings:?}"
    );
    let notes = config.source.notes.join("\n");
    assert!(notes.contains("http.secret is not needed"), "{notes}");
    assert!(notes.contains("storage.cache is not needed"), "{notes}");
}

#[test]
fn deletes_follow_registry2_in_its_file_and_berth_in_its_own() {
    let plain = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /x\n";
    assert!(!yaml(plain, &[]).expect("load").server.delete);
    let on = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
    assert!(yaml(plain, &on).expect("load").server.delete);
    let disabled = format!("{plain}  delete:\n    enabled: false\n");
    assert!(!yaml(&disabled, &[]).expect("load").server.delete);
    // Berth's own configuration allows deletes unless told otherwise.
    let none = Config::load(None, vars(&[]), &Overrides::default()).expect("load");
    assert!(none.server.delete);
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = write(dir.path(), "berth.toml", "[server]\ndelete = false\n");
    let load = |env: &[(&str, &str)]| {
        Config::load(Some(&toml), vars(env), &Overrides::default()).expect("load")
    };
    assert!(!load(&[]).server.delete);
    assert!(load(&on).server.delete);
    assert!(!load(&[("BERTH_SERVER_DELETE", "false")]).server.delete);
    let both = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("BERTH_SERVER_DELETE", "false"),
    ];
    assert!(!load(&both).server.delete, "BERTH_* wins over REGISTRY_*");
}

#[test]
fn file_then_registry_vars_then_berth_vars_then_flags() {
    let file =
        "version: 0.1\nhttp:\n  addr: :5000\nstorage:\n  filesystem:\n    rootdirectory: /file\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "config.yml", file);
    let load = |env: &[(&str, &str)], flags: &Overrides| {
        Config::load(Some(&path), vars(env), flags).expect("load")
    };
    let none = Overrides::default();
    assert_eq!(load(&[], &none).server.addr.to_string(), "0.0.0.0:5000");
    let registry = [
        ("REGISTRY_HTTP_ADDR", "127.0.0.1:6001"),
        ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/registry-var"),
    ];
    let config = load(&registry, &none);
    assert_eq!(config.server.addr.to_string(), "127.0.0.1:6001");
    assert_eq!(config.storage.root, PathBuf::from("/registry-var"));
    let berth = [
        ("REGISTRY_HTTP_ADDR", "127.0.0.1:6001"),
        ("BERTH_SERVER_ADDR", "127.0.0.1:6002"),
    ];
    assert_eq!(
        load(&berth, &none).server.addr.to_string(),
        "127.0.0.1:6002"
    );
    let flags = Overrides {
        addr: Some("127.0.0.1:6003".parse().expect("addr")),
        root: Some(PathBuf::from("/flag")),
        ..Overrides::default()
    };
    let config = load(&berth, &flags);
    assert_eq!(config.server.addr.to_string(), "127.0.0.1:6003");
    assert_eq!(config.storage.root, PathBuf::from("/flag"));
}

#[test]
fn registry_variables_alone_configure_a_server() {
    let env = vars(&[
        ("REGISTRY_HTTP_ADDR", ":5000"),
        (
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            "/var/lib/registry",
        ),
        ("REGISTRY_AUTH", "htpasswd"),
        ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
        ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
        (
            "REGISTRY_STORAGE_MAINTENANCE_READONLY",
            r#"{"enabled":true}"#,
        ),
        ("REGISTRY_LOG_LEVEL", "warn"),
        ("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.crt"),
        ("REGISTRY_HTTP_TLS_KEY", "/c.key"),
    ]);
    let config = Config::load(None, env, &Overrides::default()).expect("load");
    assert_eq!(config.server.addr.to_string(), "0.0.0.0:5000");
    assert_eq!(config.storage.root, PathBuf::from("/var/lib/registry"));
    assert_eq!(
        config.auth.htpasswd.as_deref(),
        Some(Path::new("/auth/htpasswd"))
    );
    assert_eq!(config.auth.realm, "Registry Realm");
    assert_eq!(config.auth.mode, AuthMode::Basic);
    assert!(config.server.read_only);
    assert_eq!(config.log.level, "warn");
    assert_eq!(config.server.tls.cert.as_deref(), Some(Path::new("/c.crt")));
    // Without a registry:2 file, Berth's defaults stay.
    assert!(config.server.delete);
    // A problem names the variable that set the key.
    let mut problem = crate::config::Problem::error("server.addr", "x");
    config.source.locate(&mut problem);
    assert_eq!(problem.at.as_deref(), Some("REGISTRY_HTTP_ADDR"));
    let plain = vars(&[("REGISTRY_STORAGE_MAINTENANCE_READONLY", "true")]);
    let config = Config::load(None, plain, &Overrides::default()).expect("load");
    assert!(config.server.read_only);
}

#[test]
fn registry_storage_s3_picks_the_s3_driver_over_the_files() {
    let file = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /file\n  delete:\n    enabled: true\n  redirect:\n    disable: false\n";
    let env = [
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
        ("REGISTRY_STORAGE_S3_BUCKET", "images"),
        (
            "REGISTRY_STORAGE_S3_REGIONENDPOINT",
            "http://127.0.0.1:9000",
        ),
        ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA"),
        ("REGISTRY_STORAGE_S3_SECRETKEY", "hunter2"),
        ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry"),
        ("REGISTRY_STORAGE_S3_SECURE", "false"),
        ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
        ("REGISTRY_STORAGE_REDIRECT_DISABLE", "true"),
    ];
    // Without S3 nothing redirects: nothing to warn about.
    let config = yaml(file, &[]).expect("load");
    assert!(
        config.source.warnings.is_empty(),
        "{:?}",
        config.source.warnings
    );
    let config = yaml(file, &env).expect("load");
    let s3 = &config.storage.s3;
    assert_eq!(config.storage.kind, StorageKind::S3);
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.bucket.as_deref(), Some("images"));
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s3.access_key_id.as_deref(), Some("AKIA"));
    assert_eq!(
        s3.secret_access_key.as_ref().map(|s| s.expose()),
        Some("hunter2")
    );
    assert_eq!(s3.prefix.as_deref(), Some("/registry"));
    assert!(s3.allow_http && !s3.redirect);
    assert!(config.server.delete, "the file's storage.delete stays");
    // registry:2's bucket holds its links: read in place.
    assert_eq!(config.metadata.kind, MetadataKind::Layout);
    let sqlite = [
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_BUCKET", "b"),
        ("BERTH_METADATA_KIND", "sqlite"),
    ];
    let config = yaml(file, &sqlite);
    assert_eq!(config.expect("load").metadata.kind, MetadataKind::Sqlite);
    // registry:2 redirects to the bucket unless told not to.
    let file = "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n";
    assert!(yaml(file, &[]).expect("load").storage.s3.redirect);
}

#[test]
fn ignored_settings_make_one_warning() {
    let file = r#"
version: 0.1
storage:
  filesystem:
    rootdirectory: /x
  s3:
    chunksize: 5242880
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer x]
      timeout: 500ms
      threshold: 5
      backoff: 1s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        actions: [pull]
redis:
  addr: localhost:6379
http:
  headers:
    X-Content-Type-Options: [nosniff]
  debug:
    addr: 127.0.0.1:5001
    prometheus:
      enabled: false
"#;
    let err = refused(yaml(file, &[]));
    assert!(err.contains("more than one storage driver"), "{err}");
    let file = file.replace("  s3:\n    chunksize: 5242880\n", "");
    let config = yaml(&file, &[("REGISTRY_LOG_FIELDS_SERVICE", "registry")]).expect("load");
    let warnings = warnings(&config);
    let [warning] = warnings.as_slice() else {
        panic!("one warning: {warnings:?}");
    };
    assert!(warning.starts_with("warning: "), "{warning}");
    assert!(
        warning.contains("config.yml: registry:2 settings Berth ignores: "),
        "{warning}"
    );
    for name in ["notifications", "redis", "REGISTRY_LOG_FIELDS_SERVICE"] {
        assert!(warning.contains(name), "{name}: {warning}");
    }
    // Read, not ignored: the headers, the debug listener, its metrics.
    assert!(!warning.contains("http."), "{warning}");
    assert_eq!(
        config.server.headers.get("X-Content-Type-Options"),
        Some(&vec!["nosniff".to_owned()])
    );
    assert_eq!(
        config.server.observe.debug_addr,
        Some("127.0.0.1:5001".parse().expect("addr"))
    );
    assert!(!config.server.observe.metrics);
    let [endpoint] = config.notifications.as_slice() else {
        panic!("one endpoint: {:?}", config.notifications);
    };
    assert_eq!(endpoint.name, "alistener");
    assert_eq!(endpoint.url, "https://my.listener.com/event");
    assert_eq!(endpoint.timeout.0, std::time::Duration::from_millis(500));
    assert_eq!(endpoint.threshold, 5);
    assert_eq!(endpoint.ignore.actions, ["pull"]);
    assert_eq!(endpoint.ignoredmediatypes, ["application/octet-stream"]);
    assert_eq!(endpoint.headers["Authorization"], ["Bearer x"]);
}

#[test]
fn settings_whose_absence_weakens_security_stop_the_start() {
    for (file, names) in [
        (
            "auth:\n  token:\n    realm: https://auth/token\n    service: r\n    issuer: i\n    rootcertbundle: /b\n",
            "auth.token",
        ),
        (
            "auth:\n  silly:\n    realm: r\n    service: s\n",
            "auth.silly",
        ),
        (
            "http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas:\n      - /ca.pem\n",
            "http.tls.clientcas",
        ),
        (
            "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n      email: a@b\n",
            "http.tls.letsencrypt",
        ),
        ("middleware:\n  registry:\n    - name: x\n", "middleware"),
        (
            "storage:\n  s3:\n    bucket: b\n    encrypt: true\n",
            "storage.s3.encrypt",
        ),
        ("storage:\n  gcs:\n    bucket: b\n", "storage.gcs"),
    ] {
        let err = refused(yaml(&format!("version: 0.1\n{file}"), &[]));
        assert!(err.contains(&format!("config.yml: {names}: ")), "{err}");
        assert!(!err.contains("warning"), "{err}");
    }
    // Named by its variable when a variable set it.
    let err = refused(Config::load(
        None,
        vars(&[
            ("REGISTRY_AUTH", "token"),
            ("REGISTRY_AUTH_TOKEN_REALM", "r"),
        ]),
        &Overrides::default(),
    ));
    assert!(err.contains("REGISTRY_AUTH: registry:2's token"), "{err}");
}

#[test]
fn unknown_names_are_reported_like_unknown_keys() {
    let err = refused(Config::load(
        None,
        vars(&[("REGISTRY_STORAGE_DELETE_ENABLE", "true")]),
        &Overrides::default(),
    ));
    assert!(
        err.contains("REGISTRY_STORAGE_DELETE_ENABLE: not a registry:2 setting; did you mean REGISTRY_STORAGE_DELETE_ENABLED?"),
        "{err}"
    );
    // Outside registry:2's sections (a Kubernetes service named
    // `registry` sets REGISTRY_PORT): a warning.
    let config = Config::load(
        None,
        vars(&[("REGISTRY_PORT", "tcp://10.0.0.1:5000")]),
        &Overrides::default(),
    )
    .expect("load");
    let [warning] = config.source.warnings.as_slice() else {
        panic!("{:?}", config.source.warnings);
    };
    assert_eq!(warning.key, "REGISTRY_PORT");
    let err = refused(yaml(
        "version: 0.1\nstorage:\n  delete:\n    enable: true\n",
        &[],
    ));
    assert!(
        err.contains("storage.delete.enable: not a registry:2 setting"),
        "{err}"
    );
}

#[test]
fn proxy_ttl_is_the_eviction_age() {
    let file = "version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\n";
    let config = yaml(file, &[]).expect("load");
    assert_eq!(config.proxy[0].unused_after, Some(Span::hours(168)));
    let config = yaml(file, &[("REGISTRY_PROXY_TTL", "0")]).expect("load");
    assert_eq!(config.proxy[0].unused_after, None);
    // A cache takes no pushes in registry:2, and so none here; Berth's
    // own variable may still switch them on.
    assert!(!config.server.push);
    let config = yaml(file, &[("BERTH_SERVER_PUSH", "true")]).expect("load");
    assert!(config.server.push);
    let config = Config::load(
        None,
        vars(&[("REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io")]),
        &Overrides::default(),
    )
    .expect("load");
    assert!(!config.server.push, "REGISTRY_PROXY_REMOTEURL alone");
    // Onto Berth's file: the unprefixed entry gets the variables' keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = write(
        dir.path(),
        "berth.toml",
        "[[proxy]]\nprefix = \"hub\"\nurl = \"https://a\"\n\n[[proxy]]\nurl = \"https://b\"\n",
    );
    let env = vars(&[
        ("REGISTRY_PROXY_USERNAME", "bob"),
        ("REGISTRY_PROXY_PASSWORD", "pw"),
        ("REGISTRY_PROXY_TTL", "1h"),
    ]);
    let config = Config::load(Some(&toml), env, &Overrides::default()).expect("load");
    assert_eq!(config.proxy.len(), 2);
    assert_eq!(config.proxy[1].url, "https://b");
    assert_eq!(config.proxy[1].username.as_deref(), Some("bob"));
    assert_eq!(config.proxy[1].unused_after, Some(Span::hours(1)));
    assert_eq!(config.proxy[0].username, None);
}

#[test]
fn registry2_files_are_recognised_by_extension_or_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "registry.conf",
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:7000\n",
    );
    let config = Config::load(Some(&path), vars(&[]), &Overrides::default()).expect("load");
    assert_eq!(config.server.addr.to_string(), "127.0.0.1:7000");
    assert!(super::is_yaml(Path::new("a.YAML"), ""));
    // Empty sections set nothing and are no error.
    let empty = "version: 0.1
auth:
health: {}
storage:
  maintenance:
";
    let config = yaml(empty, &[]).expect("load");
    assert!(!config.auth.enabled());
    assert!(!super::is_yaml(Path::new("berth.toml"), "[server]\n"));
}

#[test]
fn a_registry2_root_is_served_in_place_unless_metadata_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let flags = Overrides {
        root: Some(root.clone()),
        ..Overrides::default()
    };
    let load = |env: &[(&str, &str)]| Config::load(None, vars(env), &flags).expect("load");
    // A fresh root: Berth's default.
    assert_eq!(load(&[]).metadata.kind, MetadataKind::Sqlite);
    std::fs::create_dir_all(root.join(super::REGISTRY2_TREE)).expect("tree");
    let config = load(&[]);
    assert_eq!(config.metadata.kind, MetadataKind::Layout);
    assert!(
        config
            .source
            .notes
            .iter()
            .any(|n| n.contains("serving registry:2's tree in place")),
        "{:?}",
        config.source.notes
    );
    // Set explicitly, it stays (and `serve` refuses the root).
    let explicit = load(&[("BERTH_METADATA_KIND", "sqlite")]);
    assert_eq!(explicit.metadata.kind, MetadataKind::Sqlite);
    assert!(explicit.source.notes.is_empty());
    // Berth's own database beside it: Berth's store.
    std::fs::write(root.join(super::METADATA_DB), b"").expect("db");
    assert_eq!(load(&[]).metadata.kind, MetadataKind::Sqlite);
}

#[test]
fn log_levels_and_formatters() {
    for (level, filter) in [("error", "error"), ("warning", "warn"), ("fatal", "error")] {
        let config = yaml(&format!("version: 0.1\nlog:\n  level: {level}\n"), &[]).expect("load");
        assert_eq!(config.log.level, filter);
    }
    let config = yaml(
        "version: 0.1\nloglevel: debug\nlog:\n  formatter: logstash\n",
        &[],
    )
    .expect("load");
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, LogFormat::Json);
    let err = refused(yaml("version: 0.1\nlog:\n  level: loud\n", &[]));
    assert!(
        err.contains("log.level: \"loud\" is not a log level"),
        "{err}"
    );
}
