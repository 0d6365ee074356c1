//! Content digests: the one `Digest` type of the whole tree, used by the
//! guest's routes, the manifest parser, every storage backend and the host.

use sha2::{Digest as _, Sha256};
use std::str::FromStr;

/// Why a digest string was refused. Both map to `DIGEST_INVALID`; the split
/// only makes the error detail more useful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded` per the image-spec grammar.
    Malformed,
    /// Well-formed, but not an algorithm this registry stores content under.
    Unsupported,
}

impl DigestError {
    pub fn describe(&self) -> &'static str {
        match self {
            DigestError::Malformed => "malformed digest",
            DigestError::Unsupported => "unsupported digest algorithm (only sha256 is accepted)",
        }
    }
}

/// A content digest: `algorithm:encoded`.
///
/// [`Digest::parse`] (and [`Digest::of`], [`Digest::from_sha256`]) yield only
/// what this registry stores content under, `sha256:` + 64 lowercase hex
/// digits, so holding one from there proves the string is safe to pass to
/// storage and to put in URLs and paths. [`Digest::parse_any`] also takes
/// other algorithms the image-spec grammar allows, for digests that are
/// recorded but never resolved here (a manifest's `subject`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let digest = Digest::parse_any(s)?;
        if digest.algorithm() != "sha256" {
            return Err(DigestError::Unsupported);
        }
        // The image spec requires lowercase hex for sha256; uppercase would
        // name a different string for the same bytes, so it is refused.
        let encoded = digest.encoded();
        if encoded.len() != 64
            || !encoded
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::Malformed);
        }
        Ok(digest)
    }

    /// Any digest the image-spec grammar allows, whatever its algorithm.
    pub fn parse_any(s: &str) -> Result<Digest, DigestError> {
        if is_digest_syntax(s) {
            Ok(Digest(s.to_owned()))
        } else {
            Err(DigestError::Malformed)
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(&Sha256::digest(bytes))
    }

    /// The digest whose raw sha256 output is `hash`.
    pub fn from_sha256(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256` in `sha256:ab…`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The part after the `:` (for sha256, the 64 hex digits).
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, e)| e)
    }

    /// The encoded part of a sha256 digest (what content paths fan out by).
    pub fn hex(&self) -> &str {
        self.encoded()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Same as [`Digest::parse`]: sha256 only.
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for DigestError {}

/// The image-spec digest grammar, for any algorithm:
/// `algorithm ":" encoded`, `algorithm = component (separator component)*`,
/// `component = [a-z0-9]+`, `separator = [+._-]`, `encoded = [a-zA-Z0-9=_-]+`.
/// Used for descriptors we record but do not need to resolve (e.g. `subject`).
pub fn is_digest_syntax(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests() {
        let good = format!("sha256:{HEX}");
        assert_eq!(Digest::parse(&good).map(|d| d.0), Ok(good.clone()));
        assert_eq!(Digest::of(b"").as_str(), good);
        assert_eq!(
            Digest::parse(&format!("sha256:{}", HEX.to_uppercase())),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", &HEX[1..])),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            Digest::parse(&format!("sha512:{HEX}{HEX}")),
            Err(DigestError::Unsupported)
        );
        assert_eq!(
            Digest::parse(&format!("sha256+b64:{HEX}")),
            Err(DigestError::Unsupported)
        );
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "SHA256:abc",
            "sha256:a/b",
            "sha256::a",
        ] {
            assert_eq!(Digest::parse(bad), Err(DigestError::Malformed), "{bad}");
        }
        assert!(is_digest_syntax(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        ));
        assert!(!is_digest_syntax("a++b:x"));
        let any = Digest::parse_any("sha512+b64:AB=").expect("any algorithm");
        assert_eq!((any.algorithm(), any.encoded()), ("sha512+b64", "AB="));
        assert_eq!(Digest::parse_any("sha256:"), Err(DigestError::Malformed));
        let d: Digest = good.parse().expect("FromStr");
        assert_eq!(d.hex(), HEX);
        assert_eq!(Digest::from_sha256(&[0xab; 32]).hex(), "ab".repeat(32));
    }
}
