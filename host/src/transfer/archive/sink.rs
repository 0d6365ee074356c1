//! Writing an export: files into a directory or a tar (plain, gzip, zstd),
//! on a blocking thread the async side feeds through a bounded channel in
//! chunks, so reading the store and writing (and compressing) overlap and
//! at most a few chunks are in memory.
//!
//! Nothing half-written looks finished: a tar is written as `OUT.partial`
//! and renamed once complete and synced; in a directory, `index.json` is
//! written last. A tar puts the files in the order they were sent (the
//! export sends `oci-layout` and `index.json` first, so an import learns
//! the images before the blobs).

use super::detect::{Compression, Output};
use crate::transfer::progress::Progress;
use bytes::Bytes;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Chunks in flight between the store and the writing thread.
const IN_FLIGHT: usize = 4;
const WRITE_BUF: usize = 1 << 20;
/// gzip level: layers are mostly compressed already, so a higher level
/// costs much time for little.
const GZIP_LEVEL: u32 = 1;
const ZSTD_LEVEL: i32 = 3;

/// What went wrong writing the output.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} exists and is not empty: export writes a new directory")]
    NotEmpty(PathBuf),
    #[error("the writer stopped")]
    Stopped,
}

enum Msg {
    Start { path: String, size: u64 },
    Chunk(Bytes),
    End,
}

/// The async side's end: sends files to the writing thread.
pub struct Sink {
    tx: mpsc::Sender<Msg>,
    thread: tokio::task::JoinHandle<Result<(), SinkError>>,
}

impl Sink {
    /// Starts writing to `out` as `kind` says.
    pub fn open(out: &Path, kind: Output, progress: Progress) -> Result<Self, SinkError> {
        let writer: Box<dyn Files> = match kind {
            Output::Directory => Box::new(DirFiles::create(out)?),
            Output::Tar(compression) => Box::new(TarFiles::create(out, compression)?),
        };
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let thread = tokio::task::spawn_blocking(move || write_all(rx, writer, progress));
        Ok(Self { tx, thread })
    }

    /// A whole small file (`index.json`, a manifest).
    pub async fn small(&self, path: &str, bytes: Bytes) -> Result<(), SinkError> {
        self.start(path, bytes.len() as u64).await?;
        if !bytes.is_empty() {
            self.chunk(bytes).await?;
        }
        Ok(())
    }

    /// Starts file `path` of `size` bytes; [`Self::chunk`] sends them.
    pub async fn start(&self, path: &str, size: u64) -> Result<(), SinkError> {
        let path = path.to_owned();
        self.send(Msg::Start { path, size }).await
    }

    pub async fn chunk(&self, bytes: Bytes) -> Result<(), SinkError> {
        self.send(Msg::Chunk(bytes)).await
    }

    async fn send(&self, msg: Msg) -> Result<(), SinkError> {
        self.tx.send(msg).await.map_err(|_| SinkError::Stopped)
    }

    /// Completes the output (renaming the tar into place).
    pub async fn finish(self) -> Result<(), SinkError> {
        // A send failure means the thread stopped; its own error says why.
        let _ = self.tx.send(Msg::End).await;
        self.join().await
    }

    /// Abandons the output (a tar's partial file is removed); returns the
    /// writer's own error if it stopped first.
    pub async fn abort(self) -> Result<(), SinkError> {
        self.join().await
    }

    async fn join(self) -> Result<(), SinkError> {
        drop(self.tx);
        self.thread.await.map_err(|_| SinkError::Stopped)?
    }
}

fn write_all(
    mut rx: mpsc::Receiver<Msg>,
    mut files: Box<dyn Files>,
    progress: Progress,
) -> Result<(), SinkError> {
    let result = (|| {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Start { path, size } => {
                    let mut chunks = Chunks {
                        rx: &mut rx,
                        remaining: size,
                        progress: &progress,
                    };
                    files.file(&path, size, &mut chunks)?;
                    if chunks.remaining > 0 {
                        return Err(files.error(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Msg::Chunk(_) => return Err(files.error(io::Error::other("data without a file"))),
                Msg::End => return Ok(true),
            }
        }
        Ok(false)
    })();
    match result {
        Ok(true) => files.finish(),
        Ok(false) => {
            files.abort();
            Ok(())
        }
        Err(e) => {
            files.abort();
            Err(e)
        }
    }
}

/// The chunks of the file being written, as they arrive.
struct Chunks<'a> {
    rx: &'a mut mpsc::Receiver<Msg>,
    remaining: u64,
    progress: &'a Progress,
}

impl Chunks<'_> {
    /// The next chunk; `None` at the end of the file (or when the sender
    /// stopped, which the caller sees as bytes missing).
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        match self.rx.blocking_recv() {
            Some(Msg::Chunk(bytes)) => {
                let n = (bytes.len() as u64).min(self.remaining);
                self.remaining -= n;
                self.progress.add(n);
                Some(bytes.slice(..n as usize))
            }
            _ => None,
        }
    }
}

/// Where files go.
trait Files: Send {
    fn file(&mut self, path: &str, size: u64, chunks: &mut Chunks<'_>) -> Result<(), SinkError>;
    fn finish(self: Box<Self>) -> Result<(), SinkError>;
    fn abort(self: Box<Self>);
    fn error(&self, source: io::Error) -> SinkError;
}

/// A directory; `index.json` is held back and written last.
struct DirFiles {
    root: PathBuf,
    index: Option<Vec<u8>>,
}

impl DirFiles {
    fn create(root: &Path) -> Result<Self, SinkError> {
        let io = |source| SinkError::Io {
            path: root.to_path_buf(),
            source,
        };
        match std::fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SinkError::NotEmpty(root.to_path_buf()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(root).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        }
        Ok(Self {
            root: root.to_path_buf(),
            index: None,
        })
    }
}

impl Files for DirFiles {
    fn file(&mut self, path: &str, size: u64, chunks: &mut Chunks<'_>) -> Result<(), SinkError> {
        let full = self.root.join(path);
        let io = |source| SinkError::Io {
            path: full.clone(),
            source,
        };
        if path == super::layout::INDEX_JSON {
            let mut bytes = Vec::with_capacity(size as usize);
            while let Some(chunk) = chunks.next_chunk() {
                bytes.extend_from_slice(&chunk);
            }
            self.index = Some(bytes);
            return Ok(());
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = File::create(&full).map_err(io)?;
        while let Some(chunk) = chunks.next_chunk() {
            file.write_all(&chunk).map_err(io)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        if let Some(index) = &self.index {
            let path = self.root.join(super::layout::INDEX_JSON);
            std::fs::write(&path, index).map_err(|source| SinkError::Io { path, source })?;
        }
        Ok(())
    }

    fn abort(self: Box<Self>) {}

    fn error(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            path: self.root.clone(),
            source,
        }
    }
}

/// A tar stream, written by hand around `tar::Header` so that chunks go
/// to the file as they are (no copy through a small buffer).
struct TarFiles {
    out: Compressor,
    partial: PathBuf,
    target: PathBuf,
    /// Directories already written as entries.
    dirs: std::collections::HashSet<String>,
}

const BLOCK: usize = 512;

impl TarFiles {
    fn create(target: &Path, compression: Compression) -> Result<Self, SinkError> {
        let mut name = target.as_os_str().to_owned();
        name.push(".partial");
        let partial = PathBuf::from(name);
        let file = File::create(&partial).map_err(|source| SinkError::Io {
            path: partial.clone(),
            source,
        })?;
        let buffered = BufWriter::with_capacity(WRITE_BUF, file);
        let out =
            match compression {
                Compression::None => Compressor::Plain(buffered),
                Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                    buffered,
                    flate2::Compression::new(GZIP_LEVEL),
                )),
                Compression::Zstd => Compressor::Zstd(
                    zstd::Encoder::new(buffered, ZSTD_LEVEL).map_err(|source| SinkError::Io {
                        path: partial.clone(),
                        source,
                    })?,
                ),
            };
        Ok(Self {
            out,
            partial,
            target: target.to_path_buf(),
            dirs: Default::default(),
        })
    }

    fn header(&mut self, path: &str, size: u64, kind: tar::EntryType) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path)?;
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i + 1;
            let dir = &path[..end];
            if self.dirs.insert(dir.to_owned()) {
                self.header(dir, 0, tar::EntryType::Directory)?;
            }
        }
        Ok(())
    }
}

impl Files for TarFiles {
    fn file(&mut self, path: &str, size: u64, chunks: &mut Chunks<'_>) -> Result<(), SinkError> {
        let result = (|| {
            self.parents(path)?;
            self.header(path, size, tar::EntryType::Regular)?;
            let mut written = 0u64;
            while let Some(chunk) = chunks.next_chunk() {
                self.out.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            if written != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{path}: {written} of {size} bytes"),
                ));
            }
            let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
            self.out.write_all(&[0; BLOCK][..pad])
        })();
        result.map_err(|e| self.error(e))
    }

    fn finish(mut self: Box<Self>) -> Result<(), SinkError> {
        let partial = self.partial.clone();
        let io = |source| SinkError::Io {
            path: partial.clone(),
            source,
        };
        // The end of a tar: two zero blocks.
        self.out.write_all(&[0; 2 * BLOCK]).map_err(io)?;
        let file = self.out.finish().map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.partial, &self.target).map_err(io)?;
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = File::open(dir)
        {
            // The rename is durable once the directory is.
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.partial);
    }

    fn error(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            path: self.partial.clone(),
            source,
        }
    }
}

enum Compressor {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
}

impl Compressor {
    fn finish(self) -> io::Result<File> {
        let buffered = match self {
            Compressor::Plain(w) => w,
            Compressor::Gzip(w) => w.finish()?,
            Compressor::Zstd(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    async fn write(out: &Path, kind: Output) {
        let sink = Sink::open(out, kind, Progress::hidden()).expect("open");
        sink.small("index.json", Bytes::from_static(b"{}"))
            .await
            .expect("index");
        sink.start("blobs/sha256/x", 5).await.expect("start");
        sink.chunk(Bytes::from_static(b"ab")).await.expect("chunk");
        sink.chunk(Bytes::from_static(b"cde")).await.expect("chunk");
        sink.finish().await.expect("finish");
    }

    #[tokio::test]
    async fn tars_hold_the_files_in_order_with_their_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, compression) in [
            ("a.tar", Compression::None),
            ("a.tar.gz", Compression::Gzip),
            ("a.tar.zst", Compression::Zstd),
        ] {
            let out = dir.path().join(name);
            write(&out, Output::Tar(compression)).await;
            assert!(!dir.path().join(format!("{name}.partial")).exists());
            let file = File::open(&out).expect("written");
            let reader: Box<dyn io::Read> = match compression {
                Compression::None => Box::new(file),
                Compression::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
                Compression::Zstd => Box::new(zstd::Decoder::new(file).expect("zstd")),
            };
            let mut archive = tar::Archive::new(reader);
            let mut seen = Vec::new();
            for entry in archive.entries().expect("entries") {
                let mut entry = entry.expect("entry");
                let mut body = String::new();
                entry.read_to_string(&mut body).expect("body");
                let path = entry.path().expect("path").display().to_string();
                seen.push(format!("{path}={body}"));
            }
            assert_eq!(
                seen,
                [
                    "index.json={}",
                    "blobs/=",
                    "blobs/sha256/=",
                    "blobs/sha256/x=abcde"
                ]
            );
        }
    }

    #[tokio::test]
    async fn directories_get_index_json_last_and_must_be_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("layout");
        write(&out, Output::Directory).await;
        assert_eq!(
            std::fs::read(out.join("blobs/sha256/x")).expect("blob"),
            b"abcde"
        );
        assert_eq!(std::fs::read(out.join("index.json")).expect("index"), b"{}");
        assert!(matches!(
            Sink::open(&out, Output::Directory, Progress::hidden()),
            Err(SinkError::NotEmpty(_))
        ));
    }

    #[tokio::test]
    async fn an_abandoned_tar_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("a.tar");
        let sink =
            Sink::open(&out, Output::Tar(Compression::None), Progress::hidden()).expect("open");
        sink.start("x", 10).await.expect("start");
        sink.chunk(Bytes::from_static(b"abc")).await.expect("chunk");
        assert!(sink.abort().await.is_err(), "a short file is an error");
        assert!(!out.exists());
        assert!(!dir.path().join("a.tar.partial").exists());
    }
}
