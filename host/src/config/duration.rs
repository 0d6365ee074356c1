//! Durations written with units: `30s`, `15m`, `24h`, `7d`, `0`, and Go's
//! forms as registry:2 configurations write them: `500ms`, `1h30m`,
//! `2h45m30s`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration with millisecond precision, written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

/// Units in milliseconds, largest first (the order `Display` tries them).
/// `ms` comes before `m` so that the longest unit name wins when parsing.
const UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("ms", 1),
    ("m", 60_000),
    ("s", 1_000),
];

const EXAMPLES: &str = "30s, 15m, 24h, 7d, 1h30m or 500ms";

impl Span {
    pub const fn hours(n: u64) -> Self {
        Span(Duration::from_secs(n * 3_600))
    }

    pub const fn secs(n: u64) -> Self {
        Span(Duration::from_secs(n))
    }

    pub const fn millis(n: u64) -> Self {
        Span(Duration::from_millis(n))
    }

    /// Whole seconds (a part of a second is dropped).
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    /// One or more `<number><unit>` parts, each unit at most once and
    /// largest first (`1h30m`, not `30m1h`), or a bare `0`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Span(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(format!("an empty duration (write e.g. {EXAMPLES})"));
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit seen: each part must be smaller.
        let mut last: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("{text:?} is not a duration like {EXAMPLES}"));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{text:?} is too long"))?;
            rest = &rest[digits..];
            let Some((index, (unit, scale))) = UNITS
                .iter()
                .enumerate()
                .find(|(_, (unit, _))| rest.starts_with(unit))
            else {
                let unit: String = rest.chars().take_while(|c| !c.is_ascii_digit()).collect();
                return Err(if unit.is_empty() {
                    format!("{text:?} needs a unit: ms, s, m, h or d")
                } else {
                    format!("{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)")
                });
            };
            if last.is_some_and(|l| magnitude(index) >= magnitude(l)) {
                return Err(format!(
                    "{text:?}: write each unit once, largest first (like 1h30m)"
                ));
            }
            last = Some(index);
            rest = &rest[unit.len()..];
            total = number
                .checked_mul(*scale)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| format!("{text:?} is too long"))?;
        }
        Ok(Span(Duration::from_millis(total)))
    }
}

/// The rank of `UNITS[index]` by size (larger is bigger), since `ms` sits
/// out of order in the table.
fn magnitude(index: usize) -> u64 {
    UNITS.get(index).map_or(0, |(_, scale)| *scale)
}

impl std::fmt::Display for Span {
    /// Each unit once, largest first, so the text reads back as the same
    /// value: `90s` is `1m30s`, `24h` is `1d`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        let mut units: Vec<(&str, u64)> = UNITS.to_vec();
        units.sort_by_key(|(_, scale)| std::cmp::Reverse(*scale));
        for (unit, scale) in units {
            if ms >= scale {
                write!(f, "{}{unit}", ms / scale)?;
                ms %= scale;
            }
        }
        Ok(())
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
    use std::time::Duration;

    #[test]
    fn parses_and_prints_units() {
        for (text, ms, shown) in [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("90s", 90_000, "1m30s"),
            ("15m", 900_000, "15m"),
            ("24h", 86_400_000, "1d"),
            ("7d", 604_800_000, "7d"),
            ("500ms", 500, "500ms"),
            ("1500ms", 1_500, "1s500ms"),
            ("1h30m", 5_400_000, "1h30m"),
            ("2h45m30s", 9_930_000, "2h45m30s"),
            ("1m30s500ms", 90_500, "1m30s500ms"),
            ("1d12h", 129_600_000, "1d12h"),
        ] {
            let span: Span = text.parse().expect(text);
            assert_eq!(span.0, Duration::from_millis(ms), "{text}");
            assert_eq!(span.to_string(), shown, "{text}");
            let again: Span = shown.parse().expect(shown);
            assert_eq!(again, span, "{shown} reads back");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "h",
            "10",
            "10x",
            "-1s",
            "1.5h",
            "99999999999999999999d",
            "9999999999999999d",
            "30m1h",
            "1h1h",
            "1h 30m",
            "ms",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?} must not parse");
        }
        let err = "10x".parse::<Span>().expect_err("unknown unit");
        assert!(err.contains("unknown unit \"x\""), "{err}");
    }
}
