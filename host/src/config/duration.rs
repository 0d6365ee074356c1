//! Durations written as `30s`, `15m`, `24h`, `7d` (or `0`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration in whole seconds, written with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

const UNITS: &[(&str, u64)] = &[("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

impl Span {
    pub const fn hours(n: u64) -> Self {
        Span(Duration::from_secs(n * 3_600))
    }

    pub const fn secs(n: u64) -> Self {
        Span(Duration::from_secs(n))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Span(Duration::ZERO));
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{text:?} needs a unit: s, m, h or d"))?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 30s, 15m, 24h or 7d"))?;
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("{text:?}: unknown unit {unit:?} (use s, m, h or d)"))?;
        number
            .checked_mul(scale)
            .map(|secs| Span(Duration::from_secs(secs)))
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.as_secs();
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, scale)| secs.is_multiple_of(*scale) && secs >= *scale)
            .copied()
            .unwrap_or(("s", 1));
        write!(f, "{}{unit}", secs / scale)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn parses_and_prints_units() {
        for (text, secs, shown) in [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("90s", 90, "90s"),
            ("15m", 900, "15m"),
            ("24h", 86_400, "1d"),
            ("7d", 604_800, "7d"),
        ] {
            let span: Span = text.parse().expect(text);
            assert_eq!(span.as_secs(), secs, "{text}");
            assert_eq!(span.to_string(), shown, "{text}");
        }
        for bad in ["", "h", "10", "10x", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?} must not parse");
        }
    }
}
