//! Byte ranges: the `Range` request header on blob GETs (RFC 9110 §14.2) and
//! the `Content-Range` header on upload PATCH/PUT (distribution-spec: the
//! inclusive `<start>-<end>` form, `^[0-9]+-[0-9]+$`).

/// One `bytes` range-spec. Multi-range requests are not served (RFC 9110
/// lets a server ignore `Range`), so only single ranges are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `a-b`, both inclusive.
    Bounded { first: u64, last: u64 },
    /// `a-`: from `a` to the end.
    From { first: u64 },
    /// `-n`: the final `n` bytes.
    Suffix { len: u64 },
}

/// Parses a `Range` header value. `None` means "ignore the header": RFC 9110
/// §14.2 lets a server ignore a Range it does not understand (or any Range),
/// so syntax errors, other units and multiple ranges all lead to a plain 200.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let value = value.trim();
    let (unit, spec) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(ByteRange::Suffix { len: number(last)? }),
        (false, true) => Some(ByteRange::From {
            first: number(first)?,
        }),
        // `last < first` is an invalid range-spec, which RFC 9110 §14.2 lets
        // a server "ignore or reject"; it is kept here and rejected (416) by
        // `resolve`, as clients asking for it are broken, not optimistic.
        (false, false) => Some(ByteRange::Bounded {
            first: number(first)?,
            last: number(last)?,
        }),
    }
}

/// Digits only: `u64::from_str` would also accept a leading `+`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The part of a blob of `size` bytes a range selects, as `(offset, length)`,
/// or `None` when it is unsatisfiable (answer 416 `bytes */size`).
pub fn resolve(range: ByteRange, size: u64) -> Option<(u64, u64)> {
    match range {
        ByteRange::Bounded { first, last } if first < size && first <= last => {
            Some((first, last.min(size - 1) - first + 1))
        }
        ByteRange::From { first } if first < size => Some((first, size - first)),
        ByteRange::Suffix { len } if len > 0 && size > 0 => {
            let len = len.min(size);
            Some((size - len, len))
        }
        _ => None,
    }
}

/// The `Content-Range` value of a 206 response.
pub fn content_range(offset: u64, len: u64, size: u64) -> String {
    // `len` is ≥ 1 for anything `resolve` returns.
    format!(
        "bytes {}-{}/{}",
        offset,
        offset + len.saturating_sub(1),
        size
    )
}

/// Parses an upload chunk's `Content-Range`: `<start>-<end>`, inclusive.
/// Also tolerates the RFC 9110 response form `bytes <start>-<end>/<total>`
/// some clients send. `None` when malformed or `end < start`.
pub fn parse_chunk_range(value: &str) -> Option<(u64, u64)> {
    let mut v = value.trim();
    if let Some(rest) = v.strip_prefix("bytes") {
        v = rest.trim_start_matches([' ', '=']);
    }
    if let Some((range, _total)) = v.split_once('/') {
        v = range;
    }
    let (start, end) = v.split_once('-')?;
    let (start, end) = (number(start)?, number(end)?);
    (start <= end).then_some((start, end))
}

/// Whether a chunk sent with `Content-Range: value` may be appended to a
/// session holding `size` bytes: well-formed, starting where the session
/// ends, and exactly `Content-Length` bytes long when that is declared.
pub fn chunk_fits(value: &str, size: u64, content_length: Option<u64>) -> bool {
    parse_chunk_range(value).is_some_and(|(start, end)| {
        // Compared as `len - 1 == end - start`: `end - start + 1` overflows
        // for `0-18446744073709551615`, and wrapped to 0 it matched an empty
        // body.
        start == size && content_length.is_none_or(|len| len.checked_sub(1) == Some(end - start))
    })
}

/// The `Range` header of upload responses: `0-<last byte>`, where an empty
/// session says `0-0` as registry:2 does (the spec has no form for "nothing
/// yet", and clients only read the end offset after at least one chunk).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ranges() {
        assert_eq!(
            parse_range("bytes=0-9"),
            Some(ByteRange::Bounded { first: 0, last: 9 })
        );
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From { first: 5 }));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix { len: 3 }));
        assert_eq!(
            parse_range(" Bytes = 1 - 2 "),
            Some(ByteRange::Bounded { first: 1, last: 2 })
        );
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=0-1,4-5",
            "bytes=a-b",
            "bytes=+1-2",
            "0-9",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
        // Inverted: parsed, so that `resolve` can reject it with a 416.
        assert_eq!(
            parse_range("bytes=9-1"),
            Some(ByteRange::Bounded { first: 9, last: 1 })
        );
    }

    #[test]
    fn resolve_ranges() {
        let r = |s| parse_range(s).unwrap();
        assert_eq!(resolve(r("bytes=0-9"), 100), Some((0, 10)));
        assert_eq!(resolve(r("bytes=90-200"), 100), Some((90, 10)));
        assert_eq!(resolve(r("bytes=99-"), 100), Some((99, 1)));
        assert_eq!(resolve(r("bytes=-10"), 100), Some((90, 10)));
        assert_eq!(resolve(r("bytes=-1000"), 100), Some((0, 100)));
        assert_eq!(resolve(r("bytes=100-"), 100), None);
        assert_eq!(resolve(r("bytes=100-200"), 100), None);
        assert_eq!(resolve(r("bytes=-0"), 100), None);
        assert_eq!(resolve(r("bytes=10-5"), 100), None);
        assert_eq!(resolve(r("bytes=0-0"), 0), None);
        assert_eq!(resolve(r("bytes=-5"), 0), None);
        assert_eq!(content_range(90, 10, 100), "bytes 90-99/100");
    }

    #[test]
    fn chunk_ranges() {
        assert_eq!(parse_chunk_range("0-99"), Some((0, 99)));
        assert_eq!(parse_chunk_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(parse_chunk_range("bytes=5-5"), Some((5, 5)));
        for bad in ["", "-1", "1-", "5-4", "a-b", "1-2-3", "+1-2"] {
            assert_eq!(parse_chunk_range(bad), None, "{bad}");
        }
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(10), "0-9");
    }

    #[test]
    fn chunks_fit_where_the_session_ends() {
        assert!(chunk_fits("0-3", 0, Some(4)));
        assert!(chunk_fits("4-7", 4, None));
        assert!(!chunk_fits("4-7", 0, Some(4)));
        assert!(!chunk_fits("0-3", 0, Some(3)));
        assert!(!chunk_fits("0-0", 0, Some(0)));
        // `end - start + 1` wraps to 0 here: it must not pass for an empty
        // chunk (nor panic with overflow checks on).
        assert!(!chunk_fits("0-18446744073709551615", 0, Some(0)));
        assert!(chunk_fits("0-18446744073709551615", 0, None));
        assert!(!chunk_fits(
            "18446744073709551615-18446744073709551615",
            u64::MAX,
            Some(0)
        ));
        assert!(chunk_fits(
            "18446744073709551615-18446744073709551615",
            u64::MAX,
            Some(1)
        ));
    }
}
