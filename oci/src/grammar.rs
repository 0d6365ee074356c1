//! The distribution-spec grammars for repository names, tags and upload
//! ids (digests: [`crate::digest`]), written out by hand (no regex engine in the guest: it would
//! dominate the component's size and startup).

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn upload_ids() {
        assert!(is_valid_upload_id("3f1c-AB_9.x"));
        assert!(!is_valid_upload_id(""));
        assert!(!is_valid_upload_id("a/b"));
        assert!(!is_valid_upload_id("a?b"));
        assert!(!is_valid_upload_id(&"a".repeat(129)));
    }
}
