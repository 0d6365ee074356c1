//! The component glue: WIT exports (world `storage-exports`) onto [`Blobs`]
//! and [`Metadata`] rooted at the preopened data directory, and files into
//! `wasi:io` streams. Annotations cross the WIT as sorted pairs and are
//! recorded as the JSON text the native metadata record keeps.
//!
//! What `wasi:filesystem` 0.2 cannot do shapes two behaviours:
//! - A partial range (one that ends before the blob does) is served from a
//!   temporary copy, opened and then unlinked, because a file's input
//!   stream always runs to the end of the file.
//! - A sink is the runtime's own append stream on the session file; the
//!   store cannot see when it is dropped, so "one sink at a time" is not
//!   enforced (`conflict` is never reported), and commit re-hashes the file.

use crate::error::Error;
use crate::{Blobs, Layout, ManifestInfo, Metadata, Page, RangeSource};
use berth_oci::manifest::{annotations_from_json, annotations_to_json};
use std::path::Path;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
use wasip2::io::streams::{InputStream, OutputStream};

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "berth:registry/storage-exports",
        with: {
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
        },
    });
}

use bindings::exports::berth::registry::{admission, blobs, catalog, metadata, types, upstream};
use types::StorageError;

struct Provider;

bindings::export!(Provider with_types_in bindings);

/// The preopen named `/data`, else the first one, with its name.
fn data_dir() -> Result<(Descriptor, String), Error> {
    let mut dirs = get_directories();
    let index = dirs
        .iter()
        .position(|(_, name)| name == "/data")
        .unwrap_or(0);
    if dirs.is_empty() {
        return Err(Error::Backend("no data directory preopened".into()));
    }
    Ok(dirs.swap_remove(index))
}

/// The layout rooted at the data directory's name, which std::fs resolves
/// against the preopen.
fn layout() -> Result<Layout, Error> {
    let (_, name) = data_dir()?;
    Ok(Layout::new(Path::new(&name)))
}

/// Opens `path` (under the data directory) through `wasi:filesystem`
/// itself, for a stream.
fn open(path: &Path, flags: DescriptorFlags) -> Result<Descriptor, Error> {
    let (dir, name) = data_dir()?;
    let relative = path
        .strip_prefix(&name)
        .ok()
        .and_then(|p| p.to_str())
        .ok_or_else(|| Error::Backend(format!("{} is outside {name}", path.display())))?;
    dir.open_at(PathFlags::empty(), relative, OpenFlags::empty(), flags)
        .map_err(|e| wasi_error(relative, e))
}

fn wasi_error(what: &str, e: ErrorCode) -> Error {
    match e {
        ErrorCode::NoEntry => Error::NotFound,
        other => Error::Backend(format!("{what}: {other:?}")),
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => StorageError::NotFound,
            Error::DigestMismatch(actual) => StorageError::DigestMismatch(actual),
            Error::Invalid(why) => StorageError::Invalid(why),
            Error::Conflict(why) => StorageError::Conflict(why),
            Error::Backend(why) => StorageError::Backend(why),
        }
    }
}

fn store_blobs() -> Result<Blobs, Error> {
    Ok(Blobs::new(layout()?))
}

fn store_metadata() -> Result<Metadata, Error> {
    Ok(Metadata::new(layout()?))
}

impl blobs::Guest for Provider {
    type Upload = Upload;

    fn stat(digest: String) -> Result<Option<u64>, StorageError> {
        Ok(store_blobs()?.stat(&digest)?)
    }

    fn read(digest: String, offset: u64, length: u64) -> Result<InputStream, StorageError> {
        let stream = match store_blobs()?.open_range(&digest, offset, length)? {
            RangeSource::Blob { path, offset } => {
                let file = open(&path, DescriptorFlags::READ)?;
                file.read_via_stream(offset)
                    .map_err(|e| wasi_error(&digest, e))?
            }
            RangeSource::Copy { path } => {
                let opened = open(&path, DescriptorFlags::READ)
                    .and_then(|file| file.read_via_stream(0).map_err(|e| wasi_error(&digest, e)));
                // The open stream keeps the copy's bytes; its name can go now.
                let _ = std::fs::remove_file(&path);
                opened?
            }
        };
        Ok(stream)
    }

    fn redirect(_digest: String) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    fn delete(digest: String) -> Result<bool, StorageError> {
        Ok(store_blobs()?.delete(&digest)?)
    }
}

/// An upload session: its id; everything else is in its directory.
struct Upload {
    id: String,
}

impl blobs::GuestUpload for Upload {
    fn create() -> Result<blobs::Upload, StorageError> {
        let id = store_blobs()?.create_upload()?;
        Ok(blobs::Upload::new(Upload { id }))
    }

    fn open(id: String) -> Result<blobs::Upload, StorageError> {
        store_blobs()?.upload_data(&id)?;
        Ok(blobs::Upload::new(Upload { id }))
    }

    fn id(&self) -> String {
        self.id.clone()
    }

    fn size(&self) -> Result<u64, StorageError> {
        Ok(store_blobs()?.upload_size(&self.id)?)
    }

    fn sink(&self) -> Result<OutputStream, StorageError> {
        let data = store_blobs()?.upload_data(&self.id)?;
        let file = open(&data, DescriptorFlags::WRITE)?;
        Ok(file
            .append_via_stream()
            .map_err(|e| wasi_error(&self.id, e))?)
    }

    fn commit(&self, expected_digest: String) -> Result<u64, StorageError> {
        Ok(store_blobs()?.commit(&self.id, &expected_digest)?)
    }

    fn abort(&self) -> Result<(), StorageError> {
        Ok(store_blobs()?.abort(&self.id)?)
    }
}

fn manifest_from(m: metadata::ManifestInfo) -> ManifestInfo {
    ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations.as_deref().map(annotations_to_json),
    }
}

fn manifest_to(m: ManifestInfo) -> metadata::ManifestInfo {
    metadata::ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations.as_deref().and_then(annotations_from_json),
    }
}

fn page_from(p: metadata::Page) -> Page {
    Page {
        last: p.last,
        n: p.n,
    }
}

impl metadata::Guest for Provider {
    fn link_blob(repository: String, digest: String) -> Result<(), StorageError> {
        Ok(store_metadata()?.link_blob(&repository, &digest)?)
    }

    fn blob_linked(repository: String, digest: String) -> Result<bool, StorageError> {
        Ok(store_metadata()?.blob_linked(&repository, &digest)?)
    }

    fn unlink_blob(repository: String, digest: String) -> Result<bool, StorageError> {
        Ok(store_metadata()?.unlink_blob(&repository, &digest)?)
    }

    fn put_manifest(
        repository: String,
        manifest: metadata::ManifestInfo,
        references: Vec<String>,
        tag: Option<String>,
    ) -> Result<(), StorageError> {
        Ok(store_metadata()?.put_manifest(
            &repository,
            &manifest_from(manifest),
            &references,
            tag.as_deref(),
        )?)
    }

    fn get_manifest(
        repository: String,
        digest: String,
    ) -> Result<Option<metadata::ManifestInfo>, StorageError> {
        Ok(store_metadata()?
            .get_manifest(&repository, &digest)?
            .map(manifest_to))
    }

    fn resolve_tag(repository: String, tag: String) -> Result<Option<String>, StorageError> {
        Ok(store_metadata()?.resolve_tag(&repository, &tag)?)
    }

    fn delete_manifest(repository: String, digest: String) -> Result<bool, StorageError> {
        Ok(store_metadata()?.delete_manifest(&repository, &digest)?)
    }

    fn delete_tag(repository: String, tag: String) -> Result<bool, StorageError> {
        Ok(store_metadata()?.delete_tag(&repository, &tag)?)
    }

    fn list_tags(
        repository: String,
        page: metadata::Page,
    ) -> Result<Option<Vec<String>>, StorageError> {
        Ok(store_metadata()?.list_tags(&repository, &page_from(page))?)
    }

    fn list_repositories(page: metadata::Page) -> Result<Vec<String>, StorageError> {
        Ok(store_metadata()?.list_repositories(&page_from(page))?)
    }

    fn list_referrers(
        repository: String,
        subject: String,
        artifact_type: Option<String>,
    ) -> Result<Vec<metadata::ManifestInfo>, StorageError> {
        Ok(store_metadata()?
            .list_referrers(&repository, &subject, artifact_type.as_deref())?
            .into_iter()
            .map(manifest_to)
            .collect())
    }

    fn begin_upload(repository: String, id: String) -> Result<(), StorageError> {
        Ok(store_metadata()?.begin_upload(&repository, &id)?)
    }

    fn upload_repository(id: String) -> Result<Option<String>, StorageError> {
        Ok(store_metadata()?.upload_repository(&id)?)
    }

    fn end_upload(id: String) -> Result<(), StorageError> {
        Ok(store_metadata()?.end_upload(&id)?)
    }
}

/// A standalone deployment has no upstreams: it caches nothing, and a
/// guest that asks anyway is told so.
impl upstream::Guest for Provider {
    fn proxies() -> Vec<upstream::Proxy> {
        Vec::new()
    }

    fn origin(_repository: String) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    fn note_pull(_repository: String) {}

    fn tag_checked(_repository: String, _tag: String) -> Option<u64> {
        None
    }

    fn head_manifest(
        _proxy: u32,
        _repository: String,
        _remote: String,
        _reference: String,
    ) -> Result<String, upstream::UpstreamError> {
        Err(no_upstream())
    }

    fn fetch_manifest(
        _proxy: u32,
        _repository: String,
        _remote: String,
        _reference: String,
    ) -> Result<upstream::FetchedManifest, upstream::UpstreamError> {
        Err(no_upstream())
    }

    fn fetch_blob(
        _proxy: u32,
        _repository: String,
        _remote: String,
        _digest: String,
    ) -> Result<upstream::FetchedBlob, upstream::UpstreamError> {
        Err(no_upstream())
    }
}

fn no_upstream() -> upstream::UpstreamError {
    upstream::UpstreamError::Unavailable("no upstream registry in a standalone deployment".into())
}

/// A standalone deployment has no policy plugins: everything is allowed.
impl admission::Guest for Provider {
    fn check(_change: admission::Change) -> Option<String> {
        None
    }
}

/// A standalone deployment has no access rules: everything is listed.
impl catalog::Guest for Provider {
    fn may_list(_repository: String) -> bool {
        true
    }
}
