//! Everything `serve` would find wrong with a configuration, found before
//! it opens, binds or creates anything: `berth config check` runs exactly
//! this, and `serve` runs it first. The configuration's own problems
//! (`config::check`) plus what needs the files and loaders of the other
//! layers: budgets, the guest and plugin components, certificates, the
//! htpasswd file and token keys. Each check reads with the loader `serve`
//! uses; none writes.

use crate::config::{AuthMode, Config, Problem};
use crate::front::auth::{htpasswd, token};
use crate::front::tls;
use crate::sandbox::{budget, plugins};
use std::path::Path;

/// All problems found, errors and warnings, in the order of the sections.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
}

/// The configuration cannot be served: every error, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct Refused(pub Vec<Problem>);

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    /// Each warning as a log line at WARN.
    pub fn log_warnings(&self) {
        for warning in self.warnings() {
            // The level says it is a warning.
            let line = warning.to_string();
            tracing::warn!("{}", line.trim_start_matches("warning: "));
        }
    }

    /// `Err` with every error, if there is one.
    pub fn into_result(self) -> Result<(), Refused> {
        let errors: Vec<Problem> = self
            .problems
            .into_iter()
            .filter(Problem::is_error)
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Refused(errors))
        }
    }
}

/// Checks `config` as `serve` would use it. Reads files; creates nothing.
/// `components` says whether plugin components are compiled here
/// (`config check`) or left to `serve`, which compiles them next.
pub fn check(config: &Config, components: plugins::Components) -> Report {
    let mut problems = config.source.warnings.clone();
    problems.extend(config.problems());
    let mut found = Vec::new();
    root(&config.storage.root, &mut found);
    limits(config, &mut found);
    guest(config, &mut found);
    if let Err(e) = tls::check(&config.server.tls) {
        found.push(Problem::from_keyed(e));
    }
    auth(config, &mut found);
    proxies(config, &mut found);
    found.extend(
        plugins::check(&config.plugins, components)
            .into_iter()
            .map(Problem::from_keyed),
    );
    for problem in &mut found {
        config.source.locate(problem);
    }
    problems.extend(found);
    Report { problems }
}

/// An error `serve` met after the checks, in their form: `file:line: key:
/// message` (plugin components, compiled only once, by `serve`).
pub fn refuse(config: &Config, error: impl std::fmt::Display) -> Refused {
    let mut problem = Problem::from_keyed(error);
    config.source.locate(&mut problem);
    Refused(vec![problem])
}

/// The root is made on first start: it must be a directory if it exists,
/// or else be creatable under the nearest directory that does.
fn root(root: &Path, out: &mut Vec<Problem>) {
    let mut at = root;
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => return,
            Ok(_) if at == root => {
                out.push(Problem::error(
                    "storage.root",
                    format!("{} exists and is not a directory", root.display()),
                ));
                return;
            }
            Ok(_) => {
                out.push(Problem::error(
                    "storage.root",
                    format!(
                        "{} cannot be made: {} is not a directory",
                        root.display(),
                        at.display()
                    ),
                ));
                return;
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                out.push(Problem::error(
                    "storage.root",
                    format!("cannot use {}: {e}", at.display()),
                ));
                return;
            }
            Err(_) => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                // A relative root under the working directory.
                _ => return,
            },
        }
    }
}

fn limits(config: &Config, out: &mut Vec<Problem>) {
    if let Err(e) = budget::memory_cap(config.limits.guest_memory_mib) {
        out.push(Problem::error("limits.guest_memory_mib", e.to_string()));
    }
    if let Err(e) = budget::fuel_budget(config.limits.guest_fuel) {
        out.push(Problem::error("limits.guest_fuel", e.to_string()));
    }
}

/// A guest given instead of the embedded one must be a readable component
/// (compiling it is left to `serve`: it takes seconds and fills the cache).
fn guest(config: &Config, out: &mut Vec<Problem>) {
    let Some(path) = &config.server.guest else {
        return;
    };
    use std::io::Read as _;
    let mut header = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut header));
    match read {
        Err(e) => out.push(Problem::error(
            "server.guest",
            format!("cannot read {}: {e}", path.display()),
        )),
        // `\0asm`, then the component layer's version (a core module has 1).
        Ok(8) if header[..4] == *b"\0asm" && header[4..] == [0x0d, 0x00, 0x01, 0x00] => {}
        Ok(_) => out.push(Problem::error(
            "server.guest",
            format!(
                "{} is not a WebAssembly component (export one with `berth guest export`)",
                path.display()
            ),
        )),
    }
}

/// Each `[[proxy]]`'s files: the password file must be readable, the CA
/// file a readable PEM file with at least one certificate.
fn proxies(config: &Config, out: &mut Vec<Problem>) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    for (index, proxy) in config.proxy.iter().enumerate() {
        let key = |field: &str| format!("proxy[{index}].{field}");
        if let Some(path) = &proxy.password_file {
            match std::fs::read_to_string(path) {
                Err(e) => out.push(Problem::error(
                    key("password_file"),
                    format!("cannot read {}: {e}", path.display()),
                )),
                Ok(text) if text.lines().next().is_none_or(str::is_empty) => {
                    out.push(Problem::warning(
                        key("password_file"),
                        format!(
                            "{} starts with an empty line: the password is empty",
                            path.display()
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if let Some(path) = &proxy.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>());
            match certs {
                Err(rustls_pki_types::pem::Error::Io(e)) => out.push(Problem::error(
                    key("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )),
                Err(e) => out.push(Problem::error(
                    key("ca_file"),
                    format!("{} is not a PEM file of certificates: {e}", path.display()),
                )),
                Ok(certs) if certs.is_empty() => out.push(Problem::error(
                    key("ca_file"),
                    format!("{} holds no PEM certificate", path.display()),
                )),
                Ok(_) => {}
            }
        }
    }
}

/// The user source's files, parsed; rule users that are not in it.
fn auth(config: &Config, out: &mut Vec<Problem>) {
    let auth = &config.auth;
    if !auth.enabled() {
        return;
    }
    let users = match &auth.htpasswd {
        Some(path) => match htpasswd::user_names(path) {
            Ok(users) => Some(users),
            Err(e) => {
                out.push(Problem::from_keyed(e));
                None
            }
        },
        None => None,
    };
    let issues = auth.htpasswd.is_some() && auth.mode == AuthMode::Token;
    let key_dir = config.storage.root.join("auth");
    out.extend(
        token::check(&auth.token, issues.then_some(key_dir.as_path()))
            .into_iter()
            .map(Problem::from_keyed),
    );
    // With an external token issuer, users come from it too: only a lone
    // htpasswd file knows every name.
    let external = auth.token.public_key.is_some() || auth.token.jwks.is_some();
    if let (Some(users), false) = (users, external) {
        let unknown = |name: &String| name != "*" && users.binary_search(name).is_err();
        for (index, rule) in auth.rules.iter().enumerate() {
            for name in rule.users.iter().filter(|n| unknown(n)) {
                out.push(Problem::warning(
                    format!("auth.rules[{index}].users"),
                    format!("no user {name:?} in the htpasswd file"),
                ));
            }
        }
        for (group, members) in &auth.groups {
            for name in members.iter().filter(|n| unknown(n)) {
                out.push(Problem::warning(
                    format!("auth.groups.{group}"),
                    format!("no user {name:?} in the htpasswd file"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyConfig;

    #[test]
    fn proxy_password_and_ca_files_must_be_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").expect("write");
        let ca = dir.path().join("ca.pem");
        // Any DER inside the PEM armour is taken as a certificate here;
        // the upstream client parses it.
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let missing = dir.path().join("missing");
        let proxy = |password_file: &Path, ca_file: &Path| ProxyConfig {
            url: "https://x".into(),
            username: Some("u".into()),
            password_file: Some(password_file.to_path_buf()),
            ca_file: Some(ca_file.to_path_buf()),
            ..ProxyConfig::default()
        };
        let mut config = Config {
            proxy: vec![proxy(&password, &ca), proxy(&missing, &not_pem)],
            ..Config::default()
        };
        let mut found = Vec::new();
        proxies(&config, &mut found);
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["proxy[1].password_file", "proxy[1].ca_file"]);
        assert!(found.iter().all(Problem::is_error), "{found:?}");
        assert!(found[0].message.starts_with("cannot read "), "{found:?}");
        assert!(
            found[1].message.contains("holds no PEM certificate"),
            "{found:?}"
        );
        config.proxy = vec![proxy(&password, &missing)];
        let mut found = Vec::new();
        proxies(&config, &mut found);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "proxy[0].ca_file");
        assert!(found[0].message.starts_with("cannot read "), "{found:?}");
    }
}
