use crate::StorageError;
use std::fmt;
use std::str::FromStr;

/// A `sha256:<64 lowercase hex>` digest, the only algorithm stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Builds a digest from raw sha256 output.
    pub fn from_sha256(bytes: &[u8]) -> Self {
        Self {
            hex: hex::encode(bytes),
        }
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| StorageError::Invalid(format!("unsupported digest {s:?}")))?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(StorageError::Invalid(format!("malformed digest {s:?}")));
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}
