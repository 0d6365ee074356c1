//! The distribution-spec grammars for repository names, tags, digests and
//! upload ids, written out by hand (no regex engine in the guest: it would
//! dominate the component's size and startup).

use sha2::{Digest as _, Sha256};

/// Longest repository name we accept. The spec's implementer note derives its
/// limit from hostname + name ≤ 255; we apply 255 to the name alone.
pub const MAX_NAME_LEN: usize = 255;

/// Longest tag the spec allows (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub const MAX_TAG_LEN: usize = 128;

/// Longest upload id we pass to storage. Ids are minted by the store; this only
/// bounds what a client can make us forward.
const MAX_UPLOAD_ID_LEN: usize = 128;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most [`MAX_NAME_LEN`] bytes.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_valid_component)
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. Alphanumeric runs
/// separated by exactly one of `.`, `_`, `__` or any run of `-`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alphanumeric run, at least one byte long.
        let start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator, followed by another alphanumeric run (checked above on
        // the next iteration).
        let sep_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > sep_start);
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(&b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_TAG_LEN
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Upload ids come back to us inside URLs. The store mints them URL-safe; we
/// only forward ids made of the same conservative alphabet.
pub fn is_valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_UPLOAD_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

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

/// A content digest the store can hold: `sha256:` + 64 lowercase hex digits.
/// Constructed only through [`Digest::parse`] or [`Digest::of`], so holding
/// one proves the string is safe to pass to storage and to put in URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        if !is_digest_syntax(s) {
            return Err(DigestError::Malformed);
        }
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if algorithm != "sha256" {
            return Err(DigestError::Unsupported);
        }
        // The image spec requires lowercase hex for sha256; uppercase would
        // name a different string for the same bytes, so it is refused.
        if encoded.len() != 64
            || !encoded
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::Malformed);
        }
        Ok(Digest(s.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

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
    fn names() {
        for ok in [
            "a",
            "library/ubuntu",
            "a/b/c",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo---bar",
            "0x/1-2.3__4",
        ] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a_", "a___b", "a._b", ".a", "a-", "a b", "ä", "a/B",
            "a:b",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(is_valid_name(&"a".repeat(255)));
        assert!(!is_valid_name(&"a".repeat(256)));
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", "0"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", "a+b"] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

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
    }

    #[test]
    fn upload_ids() {
        assert!(is_valid_upload_id("3f1c-AB_9.x"));
        assert!(!is_valid_upload_id(""));
        assert!(!is_valid_upload_id("a/b"));
        assert!(!is_valid_upload_id("a?b"));
        assert!(!is_valid_upload_id(&"a".repeat(129)));
    }
}
