//! JSON Web Tokens of the Docker registry token specification: Berth's own
//! (ES256, key kept under the root) and an external issuer's (PEM public
//! key or JWKS file).

use super::scope::ResourceActions;
use crate::config::TokenConfig;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Each error about a file starts with the setting that names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: cannot write {path}: {source}")]
    Write {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path}: {reason}")]
    BadKey {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("signing a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// What Berth puts in a token.
#[derive(Debug, Serialize)]
struct IssuedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [ResourceActions],
}

/// What Berth reads from a token; issuer, audience and times are checked
/// by the validation itself.
#[derive(Debug, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
}

/// Signs tokens for Berth's own token endpoint.
pub struct Issuer {
    key: EncodingKey,
    issuer: String,
    service: String,
    lifetime: Duration,
}

impl Issuer {
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn issue(&self, subject: &str, access: &[ResourceActions]) -> Result<String, TokenError> {
        let now = unix_now();
        let claims = IssuedClaims {
            iss: &self.issuer,
            sub: subject,
            aud: &self.service,
            // Clocks of several hosts differ a little.
            nbf: now.saturating_sub(10),
            iat: now,
            exp: now + self.lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(TokenError::Sign)
    }
}

/// A key tokens may be signed with.
struct VerifyingKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Checks tokens: signature by a known key, issuer, audience, expiry.
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    issuer: String,
    service: String,
}

impl Verifier {
    /// The claims of a valid token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        self.keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .filter(|k| match (&k.kid, &header.kid) {
                (Some(want), Some(got)) => want == got,
                _ => true,
            })
            .find_map(|k| {
                let mut validation = Validation::new(header.alg);
                validation.set_issuer(&[&self.issuer]);
                validation.set_audience(&[&self.service]);
                validation.validate_nbf = true;
                validation.leeway = 10;
                jsonwebtoken::decode::<Claims>(token, &k.key, &validation)
                    .ok()
                    .map(|data| data.claims)
            })
    }
}

const SIGNING_KEY: &str = "auth.token.signing_key";
const PUBLIC_KEY: &str = "auth.token.public_key";
const JWKS: &str = "auth.token.jwks";

/// Reads and parses every key file [`load`] would, and creates none: a
/// signing key Berth would make on first start is checked only if it is
/// there already. All problems, not the first.
pub fn check(config: &TokenConfig, own_key_dir: Option<&Path>) -> Vec<TokenError> {
    let mut problems = Vec::new();
    if let Some(dir) = own_key_dir {
        let path = match &config.signing_key {
            Some(path) => Some(path.clone()),
            None => Some(dir.join(KEY_FILE)).filter(|p| p.exists()),
        };
        if let Some(path) = path
            && let Err(e) = read_pem(&path).and_then(|pem| signing_key(&path, pem))
        {
            problems.push(e);
        }
    }
    if let Some(path) = &config.public_key
        && let Err(e) = pem_key(path)
    {
        problems.push(e);
    }
    if let Some(path) = &config.jwks
        && let Err(e) = jwks_keys(path)
    {
        problems.push(e);
    }
    problems
}

/// Builds the issuer (when Berth issues tokens itself) and the verifier.
pub fn load(
    config: &TokenConfig,
    own_key_dir: Option<&Path>,
) -> Result<(Option<Issuer>, Verifier), TokenError> {
    let mut keys = Vec::new();
    let issuer = match own_key_dir {
        Some(dir) => {
            let (path, pem) = match &config.signing_key {
                Some(path) => (path.clone(), read_pem(path)?),
                None => {
                    let path = dir.join(KEY_FILE);
                    let pem = own_pem(&path)?;
                    (path, pem)
                }
            };
            let (signing, public_pem) = signing_key(&path, pem)?;
            keys.push(VerifyingKey {
                kid: None,
                key: DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(|e| {
                    TokenError::BadKey {
                        key: SIGNING_KEY,
                        path,
                        reason: e.to_string(),
                    }
                })?,
                algorithms: vec![Algorithm::ES256],
            });
            Some(Issuer {
                key: signing,
                issuer: config.issuer.clone(),
                service: config.service.clone(),
                lifetime: config.lifetime.0,
            })
        }
        None => None,
    };
    if let Some(path) = &config.public_key {
        keys.push(pem_key(path)?);
    }
    if let Some(path) = &config.jwks {
        keys.extend(jwks_keys(path)?);
    }
    let verifier = Verifier {
        keys,
        issuer: config.issuer.clone(),
        service: config.service.clone(),
    };
    Ok((issuer, verifier))
}

const KEY_FILE: &str = "token-signing-key.pem";

/// A key file that must exist: a configured signing key is never made
/// here, since it would differ from the other hosts'.
fn read_pem(path: &Path) -> Result<String, TokenError> {
    std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        key: SIGNING_KEY,
        path: path.to_path_buf(),
        source,
    })
}

/// The key at `path`, made on first start and kept (mode 0600) so tokens
/// survive a restart.
fn own_pem(path: &Path) -> Result<String, TokenError> {
    match read_pem(path) {
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let pair = rcgen::KeyPair::generate().map_err(|e| TokenError::BadKey {
                key: SIGNING_KEY,
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            let pem = pair.serialize_pem();
            crate::front::tls::write_private(path, pem.as_bytes()).map_err(|source| {
                TokenError::Write {
                    key: SIGNING_KEY,
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            Ok(pem)
        }
        other => other,
    }
}

/// The ES256 signing key in `pem` (read from `path`) and its public half.
fn signing_key(path: &Path, pem: String) -> Result<(EncodingKey, String), TokenError> {
    let bad = |reason: String| TokenError::BadKey {
        key: SIGNING_KEY,
        path: path.to_path_buf(),
        reason,
    };
    let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
    if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        return Err(bad("not a P-256 key (tokens are signed with ES256)".into()));
    }
    let signing = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    Ok((signing, pair.public_key_pem()))
}

fn pem_key(path: &Path) -> Result<VerifyingKey, TokenError> {
    let pem = std::fs::read(path).map_err(|source| TokenError::Read {
        key: PUBLIC_KEY,
        path: path.to_path_buf(),
        source,
    })?;
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok(VerifyingKey {
            kid: None,
            key,
            algorithms: vec![Algorithm::ES256, Algorithm::ES384],
        });
    }
    let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| TokenError::BadKey {
        key: PUBLIC_KEY,
        path: path.to_path_buf(),
        reason: format!("not an EC or RSA public key in PEM: {e}"),
    })?;
    Ok(VerifyingKey {
        kid: None,
        key,
        algorithms: vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
    })
}

fn jwks_keys(path: &Path) -> Result<Vec<VerifyingKey>, TokenError> {
    let bad = |reason: String| TokenError::BadKey {
        key: JWKS,
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        key: JWKS,
        path: path.to_path_buf(),
        source,
    })?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    set.keys
        .iter()
        .map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
            let algorithms = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => {
                    vec![Algorithm::ES256, Algorithm::ES384]
                }
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => {
                    vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]
                }
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => {
                    return Err(bad("symmetric keys are not accepted".into()));
                }
            };
            Ok(VerifyingKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            })
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TokenConfig {
        TokenConfig::default()
    }

    #[test]
    fn own_tokens_round_trip_and_forgeries_fail() {
        let dir = tempfile::tempdir().expect("tmp");
        let (issuer, verifier) = load(&config(), Some(dir.path())).expect("load");
        let issuer = issuer.expect("issuer");
        let access = vec![ResourceActions::parse("repository:app:pull").expect("scope")];
        let token = issuer.issue("alice", &access).expect("token");
        let claims = verifier.verify(&token).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.access, access);

        // The key survives a restart.
        let (_, again) = load(&config(), Some(dir.path())).expect("reload");
        assert!(again.verify(&token).is_some());

        // Another key, another audience, garbage: all refused.
        let other = tempfile::tempdir().expect("tmp");
        let (_, stranger) = load(&config(), Some(other.path())).expect("load");
        assert!(stranger.verify(&token).is_none());
        let wrong_audience = TokenConfig {
            service: "elsewhere".into(),
            ..config()
        };
        let (_, picky) = load(&wrong_audience, Some(dir.path())).expect("load");
        assert!(picky.verify(&token).is_none());
        assert!(verifier.verify("not.a.token").is_none());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(verifier.verify(&tampered).is_none());
    }

    #[test]
    fn hosts_sharing_a_signing_key_accept_each_others_tokens() {
        let shared = tempfile::tempdir().expect("tmp");
        let key = shared.path().join("signing.pem");
        let pem = rcgen::KeyPair::generate().expect("key").serialize_pem();
        std::fs::write(&key, pem).expect("write key");
        let with_key = TokenConfig {
            signing_key: Some(key.clone()),
            ..config()
        };
        // Two hosts, each with its own root.
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (issuer_a, _) = load(&with_key, Some(a.path())).expect("host a");
        let (_, verifier_b) = load(&with_key, Some(b.path())).expect("host b");
        let token = issuer_a
            .expect("issuer")
            .issue("alice", &[])
            .expect("token");
        assert_eq!(verifier_b.verify(&token).expect("valid at b").sub, "alice");
        assert!(!a.path().join(KEY_FILE).exists(), "no key of its own");
        // A host with a key of its own refuses it.
        let (_, own) = load(&config(), Some(b.path())).expect("own key");
        assert!(own.verify(&token).is_none());

        // A configured key must exist, and be P-256.
        let missing = TokenConfig {
            signing_key: Some(shared.path().join("absent.pem")),
            ..config()
        };
        assert!(matches!(
            load(&missing, Some(a.path())),
            Err(TokenError::Read { .. })
        ));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
        std::fs::write(&key, p384.serialize_pem()).expect("write key");
        assert!(matches!(
            load(&with_key, Some(a.path())),
            Err(TokenError::BadKey { .. })
        ));
        // `check` finds the same, names the setting, and writes nothing.
        let found = check(&with_key, Some(a.path()));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].to_string().starts_with("auth.token.signing_key: "),
            "{}",
            found[0]
        );
        let fresh = tempfile::tempdir().expect("fresh");
        assert!(check(&config(), Some(fresh.path())).is_empty());
        assert!(!fresh.path().join(KEY_FILE).exists(), "check made a key");
        let absent = TokenConfig {
            public_key: Some(shared.path().join("absent.pub")),
            jwks: Some(shared.path().join("absent.jwks")),
            ..missing
        };
        let found: Vec<String> = check(&absent, Some(a.path()))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("auth.token.signing_key: cannot read "));
        assert!(found[1].starts_with("auth.token.public_key: cannot read "));
        assert!(found[2].starts_with("auth.token.jwks: cannot read "));
    }

    #[test]
    fn external_public_key_is_honoured() {
        let dir = tempfile::tempdir().expect("tmp");
        let (external, _) = load(&config(), Some(dir.path())).expect("load");
        let pair = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("key"),
        )
        .expect("pair");
        let public = dir.path().join("public.pem");
        std::fs::write(&public, pair.public_key_pem()).expect("write");
        let with_key = TokenConfig {
            public_key: Some(public),
            ..config()
        };
        let (none, verifier) = load(&with_key, None).expect("load");
        assert!(none.is_none());
        let token = external.expect("issuer").issue("ci", &[]).expect("token");
        assert_eq!(verifier.verify(&token).expect("valid").sub, "ci");
    }
}
