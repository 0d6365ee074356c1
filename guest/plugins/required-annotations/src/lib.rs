//! `required-annotations`: a pushed manifest must carry each of the `keys`
//! as a top-level annotation with a non-blank value. Deletes are allowed.
//!
//! Settings: `keys` (required), `repositories` (repository globs; default
//! every repository), `media-types` (which manifests are checked; default
//! [`DEFAULT_MEDIA_TYPES`]). A missing or unknown setting denies every
//! change, so a typo cannot silently switch the policy off.

use berth_glob as glob;

/// Checked unless `media-types` says otherwise: OCI image manifest and index,
/// Docker schema 2 manifest and manifest list.
pub const DEFAULT_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What is about to change, as far as this policy cares.
pub struct Change<'a> {
    pub delete: bool,
    pub repository: &'a str,
    pub media_type: Option<&'a str>,
    pub annotations: &'a [(String, String)],
}

/// The policy's settings.
#[derive(Debug)]
pub struct Config {
    keys: Vec<String>,
    repositories: Vec<String>,
    media_types: Vec<String>,
}

impl Config {
    /// Reads `(key, values)` settings; the error is the deny message.
    pub fn parse<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Config, String> {
        let mut keys = None;
        let mut repositories = Vec::new();
        let mut media_types = None;
        for (key, values) in settings {
            match key {
                "keys" => keys = Some(values.to_vec()),
                "repositories" => repositories = values.to_vec(),
                "media-types" => media_types = Some(values.to_vec()),
                other => return Err(misconfigured(&format!("unknown setting `{other}`"))),
            }
        }
        let keys = keys
            .filter(|k| !k.is_empty())
            .ok_or_else(|| misconfigured("setting `keys` lists no annotation keys"))?;
        Ok(Config {
            keys,
            repositories,
            media_types: media_types
                .unwrap_or_else(|| DEFAULT_MEDIA_TYPES.map(String::from).to_vec()),
        })
    }
}

fn misconfigured(why: &str) -> String {
    format!("required-annotations policy is misconfigured: {why}")
}

/// None to allow, or the deny message.
pub fn check(config: &Config, change: &Change<'_>) -> Option<String> {
    let applies = config.repositories.is_empty()
        || config
            .repositories
            .iter()
            .any(|p| glob::repository_matches(p, change.repository));
    // A put always names its media type; were one missing, check it rather
    // than let it through.
    let checked_type = change
        .media_type
        .is_none_or(|m| config.media_types.iter().any(|t| t == m));
    if change.delete || !applies || !checked_type {
        return None;
    }
    let missing: Vec<&str> = config
        .keys
        .iter()
        .filter(|key| {
            !change
                .annotations
                .iter()
                .any(|(k, v)| k == *key && !v.trim().is_empty())
        })
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "manifest is missing required annotations: {}",
            missing.join(", ")
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
                media_type: change.media_type.as_deref(),
                annotations: &change.annotations,
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

    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
    const SOURCE: &str = "org.opencontainers.image.source";
    const REVISION: &str = "org.opencontainers.image.revision";

    fn config(settings: &[(&str, &[&str])]) -> Result<Config, String> {
        let owned: Vec<(&str, Vec<String>)> = settings
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|s| s.to_string()).collect()))
            .collect();
        Config::parse(owned.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    fn annotations(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn put<'a>(media_type: &'a str, annotations: &'a [(String, String)]) -> Change<'a> {
        Change {
            delete: false,
            repository: "acme/api",
            media_type: Some(media_type),
            annotations,
        }
    }

    #[test]
    fn missing_keys_are_listed() {
        let c = config(&[("keys", &[SOURCE, REVISION])]).unwrap();
        let none = annotations(&[]);
        assert_eq!(
            check(&c, &put(OCI, &none)).as_deref(),
            Some(
                "manifest is missing required annotations: \
                 org.opencontainers.image.source, org.opencontainers.image.revision"
            )
        );
        let one = annotations(&[(SOURCE, "https://example.com/api")]);
        assert_eq!(
            check(&c, &put(OCI, &one)).as_deref(),
            Some("manifest is missing required annotations: org.opencontainers.image.revision")
        );
    }

    #[test]
    fn present_keys_pass() {
        let c = config(&[("keys", &[SOURCE])]).unwrap();
        let a = annotations(&[("other", ""), (SOURCE, "https://example.com/api")]);
        assert_eq!(check(&c, &put(OCI, &a)), None);
    }

    #[test]
    fn blank_values_count_as_missing() {
        let c = config(&[("keys", &[SOURCE])]).unwrap();
        for value in ["", "  "] {
            let a = annotations(&[(SOURCE, value)]);
            assert!(check(&c, &put(OCI, &a)).is_some());
        }
    }

    #[test]
    fn media_types_choose_what_is_checked() {
        let none = annotations(&[]);
        let c = config(&[("keys", &[SOURCE])]).unwrap();
        for t in DEFAULT_MEDIA_TYPES {
            assert!(check(&c, &put(t, &none)).is_some(), "{t}");
        }
        assert_eq!(
            check(&c, &put("application/vnd.example.artifact+json", &none)),
            None
        );
        let c = config(&[("keys", &[SOURCE]), ("media-types", &[OCI])]).unwrap();
        assert!(check(&c, &put(OCI, &none)).is_some());
        assert_eq!(
            check(&c, &put("application/vnd.oci.image.index.v1+json", &none)),
            None
        );
    }

    #[test]
    fn deletes_and_other_repositories_are_allowed() {
        let none = annotations(&[]);
        let c = config(&[("keys", &[SOURCE]), ("repositories", &["prod/*"])]).unwrap();
        assert_eq!(check(&c, &put(OCI, &none)), None);
        let prod = Change {
            repository: "prod/api",
            ..put(OCI, &none)
        };
        assert!(check(&c, &prod).is_some());
        let delete = Change {
            delete: true,
            media_type: None,
            ..prod
        };
        assert_eq!(check(&c, &delete), None);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(config(&[]).unwrap_err().contains("`keys`"));
        assert!(config(&[("keys", &[])]).is_err());
        assert!(
            config(&[("keys", &[SOURCE]), ("media_types", &[OCI])])
                .unwrap_err()
                .contains("unknown setting `media_types`")
        );
    }
}
