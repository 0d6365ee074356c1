//! `immutable-tags`: once a tag matching one of the `patterns` exists, it
//! may not be moved to another manifest or deleted. Creating it, and pushing
//! the identical manifest to it again, are allowed.
//!
//! Settings: `patterns` (tag globs, required), `repositories` (repository
//! globs; default every repository). A missing or unknown setting denies
//! every change, so a typo cannot silently switch the policy off.

use berth_glob as glob;

/// What is about to change, as far as this policy cares.
pub struct Change<'a> {
    pub delete: bool,
    pub repository: &'a str,
    pub reference: &'a str,
    pub digest: Option<&'a str>,
    pub previous: Option<&'a str>,
}

/// The policy's settings.
#[derive(Debug)]
pub struct Config {
    patterns: Vec<String>,
    repositories: Vec<String>,
}

impl Config {
    /// Reads `(key, values)` settings; the error is the deny message.
    pub fn parse<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Config, String> {
        let mut patterns = None;
        let mut repositories = Vec::new();
        for (key, values) in settings {
            match key {
                "patterns" => patterns = Some(values.to_vec()),
                "repositories" => repositories = values.to_vec(),
                other => return Err(misconfigured(&format!("unknown setting `{other}`"))),
            }
        }
        match patterns {
            Some(patterns) if !patterns.is_empty() => Ok(Config {
                patterns,
                repositories,
            }),
            _ => Err(misconfigured("setting `patterns` lists no tag globs")),
        }
    }
}

fn misconfigured(why: &str) -> String {
    format!("immutable-tags policy is misconfigured: {why}")
}

/// None to allow, or the deny message.
pub fn check(config: &Config, change: &Change<'_>) -> Option<String> {
    // Digests are `algorithm:hex`; tags cannot contain `:`.
    let is_tag = !change.reference.contains(':');
    let applies = config.repositories.is_empty()
        || config
            .repositories
            .iter()
            .any(|p| glob::repository_matches(p, change.repository));
    if !is_tag || !applies {
        return None;
    }
    let pattern = config
        .patterns
        .iter()
        .find(|p| glob::tag_matches(p, change.reference))?;
    // Deleting a protected tag that does not exist would only be a 404; deny
    // it all the same, so the answer does not depend on what exists.
    let moves = change.delete || change.previous.is_some_and(|p| change.digest != Some(p));
    moves.then(|| {
        format!(
            "tag \"{}\" is immutable (matches \"{pattern}\"); push a new tag instead",
            change.reference
        )
    })
}

/// The component's export; natively (unit tests) the crate is just the logic above.
#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit/policy", world: "plugin" });

    use exports::berth::policy::admission::{Change, Decision, Guest, Operation, Setting};

    struct Plugin;

    impl Guest for Plugin {
        fn check(settings: Vec<Setting>, change: Change) -> Decision {
            let config = match super::Config::parse(
                settings
                    .iter()
                    .map(|s| (s.key.as_str(), s.values.as_slice())),
            ) {
                Ok(config) => config,
                Err(message) => return Decision::Deny(message),
            };
            let change = super::Change {
                delete: change.operation == Operation::DeleteManifest,
                repository: &change.repository,
                reference: &change.reference,
                digest: change.digest.as_deref(),
                previous: change.previous.as_deref(),
            };
            match super::check(&config, &change) {
                None => Decision::Allow,
                Some(message) => Decision::Deny(message),
            }
        }
    }

    export!(Plugin);
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaa";
    const B: &str = "sha256:bbbb";

    fn config(settings: &[(&str, &[&str])]) -> Result<Config, String> {
        let owned: Vec<(&str, Vec<String>)> = settings
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|s| s.to_string()).collect()))
            .collect();
        Config::parse(owned.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    fn put<'a>(reference: &'a str, previous: Option<&'a str>) -> Change<'a> {
        Change {
            delete: false,
            repository: "acme/api",
            reference,
            digest: Some(A),
            previous,
        }
    }

    fn delete(reference: &str) -> Change<'_> {
        Change {
            delete: true,
            repository: "acme/api",
            reference,
            digest: Some(B),
            previous: Some(B),
        }
    }

    #[test]
    fn moving_a_protected_tag_is_denied() {
        let c = config(&[("patterns", &["v*", "release-*"])]).unwrap();
        assert_eq!(
            check(&c, &put("v1", Some(B))).as_deref(),
            Some("tag \"v1\" is immutable (matches \"v*\"); push a new tag instead")
        );
        assert!(check(&c, &put("release-3", Some(B))).is_some());
    }

    #[test]
    fn creating_or_repushing_is_allowed() {
        let c = config(&[("patterns", &["v*"])]).unwrap();
        assert_eq!(check(&c, &put("v1", None)), None);
        assert_eq!(check(&c, &put("v1", Some(A))), None);
    }

    #[test]
    fn unprotected_tags_and_digests_are_allowed() {
        let c = config(&[("patterns", &["v*"])]).unwrap();
        assert_eq!(check(&c, &put("latest", Some(B))), None);
        assert_eq!(check(&c, &put(A, None)), None);
        assert_eq!(check(&c, &delete("latest")), None);
        assert_eq!(check(&c, &delete(B)), None);
    }

    #[test]
    fn deleting_a_protected_tag_is_denied() {
        let c = config(&[("patterns", &["v*"])]).unwrap();
        assert!(check(&c, &delete("v2")).is_some());
        let missing = Change {
            previous: None,
            digest: None,
            ..delete("v2")
        };
        assert!(check(&c, &missing).is_some());
    }

    #[test]
    fn repositories_limit_where_it_applies() {
        let c = config(&[("patterns", &["v*"]), ("repositories", &["acme/**"])]).unwrap();
        assert!(check(&c, &put("v1", Some(B))).is_some());
        let elsewhere = Change {
            repository: "other/api",
            ..put("v1", Some(B))
        };
        assert_eq!(check(&c, &elsewhere), None);
        let c = config(&[("patterns", &["v*"]), ("repositories", &["*"])]).unwrap();
        assert_eq!(check(&c, &put("v1", Some(B))), None);
    }

    #[test]
    fn a_put_without_a_digest_cannot_prove_it_is_identical() {
        let c = config(&[("patterns", &["v*"])]).unwrap();
        let change = Change {
            digest: None,
            ..put("v1", Some(A))
        };
        assert!(check(&c, &change).is_some());
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(config(&[]).unwrap_err().contains("`patterns`"));
        assert!(config(&[("patterns", &[])]).is_err());
        assert!(
            config(&[("patterns", &["v*"]), ("pattern", &["x"])])
                .unwrap_err()
                .contains("unknown setting `pattern`")
        );
    }
}
