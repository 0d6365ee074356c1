//! `berth:registry/upstream` on the server's [`Mirrors`]: the fetches the
//! guest's cache logic asks for. Upstream failures are logged once (here,
//! or by the blob flight for its fetches) and cross as words naming it.

use super::{BlobSource, StorageCtx, to_wit};
use crate::backends::past_tombstones;
use crate::sandbox::bindings::WitStorageError;
use crate::sandbox::bindings::berth::registry::upstream::{
    FetchedBlob, FetchedManifest, Host, Proxy, UpstreamError as WitUpstreamError,
};
use crate::upstream::UpstreamError;
use crate::upstream::mirrors::{Failure, Mirrors};
use berth_oci::Digest;
use berth_oci::route::Reference;
use berth_storage::{MetadataStore, StorageError};
use std::sync::Arc;
use wasmtime_wasi::p2::DynInputStream;

type Answer<T> = wasmtime::Result<Result<T, WitUpstreamError>>;

/// An upstream failure as the guest sees it, logged here: temporary ones
/// (the guest may serve what it cached) as warnings, the rest as errors.
fn to_wit_upstream(err: &Failure) -> WitUpstreamError {
    let wit = classify(err);
    match &wit {
        WitUpstreamError::Denied(words) => {
            tracing::error!(error = %words, "upstream refused the configured credentials");
        }
        WitUpstreamError::Unavailable(words) => {
            tracing::warn!(error = %words, "upstream unavailable");
        }
        WitUpstreamError::Invalid(words) => {
            tracing::error!(error = %words, "upstream answered something unusable");
        }
        WitUpstreamError::NotFound | WitUpstreamError::Storage(_) => {}
    }
    wit
}

/// An upstream failure as the guest sees it, unlogged: for failures the
/// blob flight has logged with its own context.
fn classify(err: &Failure) -> WitUpstreamError {
    let words = err.to_string();
    match err.as_ref() {
        UpstreamError::NotFound { .. } => WitUpstreamError::NotFound,
        UpstreamError::Unauthorized { .. } => WitUpstreamError::Denied(words),
        UpstreamError::Unreachable { .. } | UpstreamError::Tls { .. } => {
            WitUpstreamError::Unavailable(words)
        }
        e if e.is_temporary() => WitUpstreamError::Unavailable(words),
        _ => WitUpstreamError::Invalid(words),
    }
}

fn storage(err: StorageError) -> WitUpstreamError {
    WitUpstreamError::Storage(to_wit(err))
}

/// The guest's words, parsed as the distribution grammar says; a guest
/// that sends anything else gets `invalid`.
fn reference(text: &str) -> Result<Reference, WitUpstreamError> {
    if text.starts_with("sha256:") {
        Digest::parse(text)
            .map(Reference::Digest)
            .map_err(|e| WitUpstreamError::Invalid(format!("{text}: {}", e.describe())))
    } else {
        Ok(Reference::Tag(text.to_owned()))
    }
}

fn index(proxy: u32) -> usize {
    usize::try_from(proxy).unwrap_or(usize::MAX)
}

impl Host for StorageCtx<'_> {
    async fn proxies(&mut self) -> wasmtime::Result<Vec<Proxy>> {
        let proxies = self.mirrors.entries().iter().enumerate();
        Ok(proxies
            .map(|(id, m)| Proxy {
                id: u32::try_from(id).unwrap_or(u32::MAX),
                prefix: m.prefix.clone(),
                registry: m.registry.clone(),
                url: m.client.url().to_owned(),
                tag_ttl_ms: u64::try_from(m.tag_ttl.as_millis()).unwrap_or(u64::MAX),
            })
            .collect())
    }

    async fn origin(
        &mut self,
        repository: String,
    ) -> wasmtime::Result<Result<Option<String>, WitStorageError>> {
        Ok(self
            .backends
            .metadata
            .origin(&repository)
            .await
            .map_err(to_wit))
    }

    async fn note_pull(&mut self, repository: String) -> wasmtime::Result<()> {
        let fetched = *self.proxy_fetched;
        crate::metrics::get().proxy_request(crate::metrics::Cached::Manifest, !fetched);
        self.mirrors.note_pull(&repository);
        Ok(())
    }

    async fn tag_checked(
        &mut self,
        repository: String,
        tag: String,
    ) -> wasmtime::Result<Option<u64>> {
        Ok(self
            .mirrors
            .tag_checked(&repository, &tag)
            .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)))
    }

    async fn head_manifest(
        &mut self,
        proxy: u32,
        repository: String,
        remote: String,
        reference_text: String,
    ) -> Answer<String> {
        let wanted = match reference(&reference_text) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let head = self
            .mirrors
            .head(index(proxy), &repository, &remote, &wanted)
            .await;
        Ok(head.map(|d| d.to_string()).map_err(|e| to_wit_upstream(&e)))
    }

    async fn fetch_manifest(
        &mut self,
        proxy: u32,
        repository: String,
        remote: String,
        reference_text: String,
    ) -> Answer<FetchedManifest> {
        let wanted = match reference(&reference_text) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let id = index(proxy);
        let fetched = match self
            .mirrors
            .manifest(id, &repository, &remote, &wanted)
            .await
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(to_wit_upstream(&e))),
        };
        // Marked before the guest stores anything, so a push can never slip
        // into a repository that is becoming a cache.
        if let Err(e) = mark_cache(self.mirrors, &self.backends.metadata, proxy, &repository).await
        {
            return Ok(Err(e));
        }
        *self.proxy_fetched = true;
        crate::metrics::get()
            .proxy_pulled(crate::metrics::Cached::Manifest, fetched.bytes.len() as u64);
        Ok(Ok(FetchedManifest {
            digest: fetched.digest.to_string(),
            media_type: fetched.media_type,
            bytes: fetched.bytes.to_vec(),
        }))
    }

    async fn fetch_blob(
        &mut self,
        proxy: u32,
        repository: String,
        remote: String,
        digest: String,
    ) -> Answer<FetchedBlob> {
        let digest = match Digest::parse(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(WitUpstreamError::Invalid(e.describe().to_owned()))),
        };
        let id = index(proxy);
        // Bytes the store holds already (another repository's, or a pull
        // the client left early) are linked once the upstream confirms the
        // blob is in this repository: a mirror must not show what its
        // upstream does not.
        // A fetch in progress is joined: its bytes may be committed
        // already and still being linked.
        let stored = if self.mirrors.blob_in_flight(&digest) {
            None
        } else {
            match self.backends.blobs.stat(&digest).await {
                Ok(size) => size,
                Err(e) => return Ok(Err(storage(e))),
            }
        };
        if let Some(size) = stored {
            if let Err(e) = self.mirrors.has_blob(id, &remote, &digest).await {
                return Ok(Err(to_wit_upstream(&e)));
            }
            if let Err(e) =
                mark_cache(self.mirrors, &self.backends.metadata, proxy, &repository).await
            {
                return Ok(Err(e));
            }
            let metadata = self.backends.metadata.clone();
            let mounted =
                past_tombstones(|| metadata.mount_blob(&repository, digest.as_str())).await;
            match mounted {
                Ok(true) => {
                    let reader = match self.backends.blobs.read(&digest, 0, size).await {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(storage(e))),
                    };
                    crate::metrics::get().proxy_request(crate::metrics::Cached::Blob, true);
                    return self.blob_answer(Some(size), reader);
                }
                // Gone meanwhile, or condemned: fetch it again.
                Ok(false) | Err(StorageError::Conflict(_)) => {}
                Err(e) => return Ok(Err(storage(e))),
            }
        }
        let blob = match self.mirrors.blob(id, &repository, &remote, &digest).await {
            Ok(blob) => blob,
            // The flight logged it, with the digest and the time it took.
            Err(e) => return Ok(Err(classify(&e))),
        };
        // The upstream has it: the repository is a cache (before the
        // flight links the blob, so that the link counts as the cache's).
        if let Err(e) = mark_cache(self.mirrors, &self.backends.metadata, proxy, &repository).await
        {
            return Ok(Err(e));
        }
        let metrics = crate::metrics::get();
        metrics.proxy_request(crate::metrics::Cached::Blob, false);
        metrics.proxy_pulled(crate::metrics::Cached::Blob, blob.length.unwrap_or(0));
        self.blob_answer(blob.length, blob.body)
    }
}

/// Records that `repository` caches upstream `proxy`, once the upstream
/// showed it has what was asked for: pushes into it are refused from then
/// on, and garbage collection keeps what it links.
async fn mark_cache(
    mirrors: &Mirrors,
    metadata: &Arc<dyn MetadataStore>,
    proxy: u32,
    repository: &str,
) -> Result<(), WitUpstreamError> {
    let Some(mirror) = mirrors.get(proxy) else {
        return Ok(());
    };
    metadata
        .set_origin(repository, mirror.client.url())
        .await
        .map_err(storage)
}

impl StorageCtx<'_> {
    fn blob_answer(
        &mut self,
        size: Option<u64>,
        reader: berth_storage::BlobReader,
    ) -> Answer<FetchedBlob> {
        let stream: DynInputStream = Box::new(BlobSource::new(reader));
        Ok(Ok(FetchedBlob {
            size,
            body: self.table.push(stream)?,
        }))
    }
}
