//! `Range` (blob GETs) and `Content-Range` (upload chunks). Input: a line
//! with the blob or session size, a line with the request's Content-Length
//! (empty: none), then the header value.

#![no_main]

use berth_oci::range::{self, ByteRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (size, rest) = s.split_once('\n').unwrap_or(("20", s));
    let (length, value) = rest.split_once('\n').unwrap_or(("", rest));
    let size: u64 = size.trim().parse().unwrap_or(20);
    let length: Option<u64> = length.trim().parse().ok();

    // Range: a resolved range lies inside the blob and prints as a
    // Content-Range that parses back to the same bytes.
    if let Some(r) = range::parse_range(value) {
        let reprinted = match r {
            ByteRange::Bounded { first, last } => format!("bytes={first}-{last}"),
            ByteRange::From { first } => format!("bytes={first}-"),
            ByteRange::Suffix { len } => format!("bytes=-{len}"),
        };
        assert_eq!(range::parse_range(&reprinted), Some(r), "{reprinted}");
        for size in [size, 0, 1, u64::MAX] {
            match range::resolve(r, size) {
                Some((offset, len)) => {
                    assert!(len >= 1, "{r:?} in {size}: empty");
                    let end = offset.checked_add(len - 1).expect("end overflows");
                    assert!(offset <= end && end < size, "{r:?} in {size}");
                    if let ByteRange::Bounded { first, last } = r {
                        assert_eq!(offset, first);
                        assert_eq!(end, last.min(size - 1));
                    }
                    let header = range::content_range(offset, len, size);
                    assert_eq!(range::parse_chunk_range(&header), Some((offset, end)));
                }
                None => match r {
                    ByteRange::Bounded { first, last } => assert!(first >= size || first > last),
                    ByteRange::From { first } => assert!(first >= size),
                    ByteRange::Suffix { len } => assert!(len == 0 || size == 0),
                },
            }
        }
    }

    // Content-Range: a parsed chunk range is ordered, fits exactly where it
    // starts when its length agrees, and nowhere else.
    match range::parse_chunk_range(value) {
        Some((start, end)) => {
            assert!(start <= end);
            assert!(range::chunk_fits(value, start, None));
            let span = u128::from(end - start) + 1;
            assert_eq!(
                range::chunk_fits(value, start, length),
                length.is_none_or(|l| u128::from(l) == span)
            );
            if size != start {
                assert!(!range::chunk_fits(value, size, length));
            }
        }
        None => assert!(!range::chunk_fits(value, size, length)),
    }
    // The Range header of upload responses parses as a chunk range.
    let (first, last) = range::parse_chunk_range(&range::upload_range(size)).expect("upload range");
    assert_eq!((first, last), (0, size.saturating_sub(1)));
});
