//! Reading a tar once, entry by entry, whatever its compression (decided
//! by its first bytes). A visitor sees each entry and reads its bytes or
//! not: in a plain tar what it leaves unread is skipped with a seek (an
//! import's resume does not read what it already stored); a compressed
//! tar has to be decompressed through, but nothing else is done with
//! those bytes. Progress counts bytes of the file itself.

use super::detect::{self, Compression};
use super::layout;
use crate::transfer::progress::Progress;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const READ_BUF: usize = 1 << 20;

/// One entry of the tar.
#[derive(Debug)]
pub struct Entry {
    /// Path in the archive, without a leading `./`.
    pub path: String,
    pub size: u64,
    pub kind: Kind,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    /// A symbolic or hard link to this path in the archive.
    Link(String),
    /// Directories and anything else, which imports ignore.
    Other,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum Stop<E> {
    #[error("reading {file}: {what}: {source}")]
    Archive {
        file: String,
        what: String,
        source: io::Error,
    },
    #[error(transparent)]
    Visitor(E),
}

/// Reads the tar at `path`, calling `visit` with each entry and a reader
/// over its bytes.
pub fn read<E>(
    path: &Path,
    progress: &Progress,
    mut visit: impl FnMut(&Entry, &mut dyn Read) -> Result<(), E>,
) -> Result<Compression, Stop<E>> {
    let file_name = path.display().to_string();
    let fail = |what: String| {
        let file = file_name.clone();
        move |source| Stop::Archive { file, what, source }
    };
    let mut file = File::open(path).map_err(fail("opening it".into()))?;
    let mut head = [0u8; 4];
    let n = read_full(&mut file, &mut head).map_err(fail("reading it".into()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(fail("reading it".into()))?;
    let compression = detect::sniff(&head[..n]);
    let counted = Counted {
        inner: file,
        progress: progress.clone(),
    };
    match compression {
        Compression::None => {
            let mut archive = tar::Archive::new(counted);
            let entries = archive
                .entries_with_seek()
                .map_err(fail("reading it".into()))?;
            walk(entries, &file_name, &mut visit)?;
        }
        Compression::Gzip => {
            let reader =
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUF, counted));
            let mut archive = tar::Archive::new(reader);
            let entries = archive.entries().map_err(fail("reading it".into()))?;
            walk(entries, &file_name, &mut visit)?;
        }
        Compression::Zstd => {
            let reader = zstd::Decoder::with_buffer(BufReader::with_capacity(READ_BUF, counted))
                .map_err(fail("starting zstd".into()))?;
            let mut archive = tar::Archive::new(reader);
            let entries = archive.entries().map_err(fail("reading it".into()))?;
            walk(entries, &file_name, &mut visit)?;
        }
    }
    Ok(compression)
}

fn walk<R: Read, E>(
    entries: tar::Entries<'_, R>,
    file: &str,
    visit: &mut impl FnMut(&Entry, &mut dyn Read) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let mut last = String::from("its start");
    for entry in entries {
        let mut entry = entry.map_err(|source| Stop::Archive {
            file: file.to_owned(),
            what: format!("the entry after {last}"),
            source,
        })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = layout::normalize(&raw);
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                if entry.header().entry_type() == tar::EntryType::Symlink {
                    Kind::Link(super::docker::resolve_link(&path, &target))
                } else {
                    // Hard links name a path from the archive's root.
                    Kind::Link(layout::normalize(&target))
                }
            }
            _ => Kind::Other,
        };
        let size = entry.size();
        let info = Entry { path, size, kind };
        visit(&info, &mut entry).map_err(Stop::Visitor)?;
        last = info.path;
    }
    Ok(())
}

/// Reads until `buf` is full or the reader ends; returns the count.
pub fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The file, counting what is read or seeked past into the progress.
struct Counted {
    inner: File,
    progress: Progress,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let before = self.inner.stream_position()?;
        let after = self.inner.seek(pos)?;
        self.progress.add(after.saturating_sub(before));
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn tar_bytes() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body) in [("./a", &b"first"[..]), ("dir/b", b"second")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, body)
                .expect("append");
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "dir/c", "../a")
            .expect("link");
        builder.into_inner().expect("tar")
    }

    fn visit_all(path: &Path) -> (Compression, Vec<String>) {
        let mut seen = Vec::new();
        let compression = read(path, &Progress::hidden(), |entry, reader| {
            let mut body = String::new();
            // Only `dir/b` is read: `a` is skipped.
            if entry.path == "dir/b" {
                reader.read_to_string(&mut body)?;
            }
            seen.push(format!("{}:{:?}:{body}", entry.path, entry.kind));
            Ok::<_, io::Error>(())
        })
        .expect("read");
        (compression, seen)
    }

    #[test]
    fn every_compression_reads_the_same_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = tar_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&plain[..], 3).expect("zstd");
        for (name, bytes, compression) in [
            ("x.tar", plain.clone(), Compression::None),
            ("x.bin", gz, Compression::Gzip),
            ("x", zst, Compression::Zstd),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let (found, seen) = visit_all(&path);
            assert_eq!(found, compression);
            assert_eq!(
                seen,
                ["a:File:", "dir/b:File:second", "dir/c:Link(\"a\"):"],
                "{name}"
            );
        }
    }

    #[test]
    fn a_garbled_header_stops_with_the_entry_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = tar_bytes();
        // The second header's name: its checksum no longer matches.
        bytes[1024] ^= 0xff;
        let path = dir.path().join("bad.tar");
        std::fs::write(&path, bytes).expect("write");
        let err =
            read(&path, &Progress::hidden(), |_, _| Ok::<_, io::Error>(())).expect_err("garbled");
        assert!(err.to_string().contains("the entry after a"), "{err}");
    }
}
