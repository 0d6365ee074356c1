//! Which compression an input uses (by its first bytes, never its name),
//! and what an output's name asks for.

use std::path::Path;

/// How a tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What `berth export -o OUT` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Directory,
    Tar(Compression),
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The compression the first bytes of a file announce; anything else is
/// taken for a plain tar (which the tar reader then checks).
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A tar for names ending in `.tar`, `.tar.gz` (`.tgz`) or `.tar.zst`
/// (`.tzst`); a directory otherwise.
pub fn output(path: &Path) -> Output {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tar") {
        Output::Tar(Compression::None)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Output::Tar(Compression::Gzip)
    } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
        Output::Tar(Compression::Zstd)
    } else {
        Output::Directory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"oci-layout\0\0"), Compression::None);
        assert_eq!(sniff(&[]), Compression::None);
    }

    #[test]
    fn names_decide_the_output() {
        let out = |p: &str| output(Path::new(p));
        assert_eq!(out("x/images.tar"), Output::Tar(Compression::None));
        assert_eq!(out("images.TAR.GZ"), Output::Tar(Compression::Gzip));
        assert_eq!(out("images.tar.zst"), Output::Tar(Compression::Zstd));
        assert_eq!(out("images"), Output::Directory);
        assert_eq!(out("images.gz"), Output::Directory);
    }
}
