//! The host side of `berth:registry/admission`: the guest's question goes
//! to the policy plugins with what only the host adds: the caller's
//! identity, where a tag points now, and the tags a manifest delete takes.
//! None of it is looked up when no plugin is configured.

use super::StorageCtx;
use crate::sandbox::bindings::berth::registry::admission::{Change, Host, Operation};
use crate::sandbox::context::RequestContext;
use crate::sandbox::plugins::{self, Plugins, Question};
use berth_storage::{Digest, MetadataStore, StorageError};
use std::sync::Arc;

/// Per request: the server's plugins, and what the front learnt about the
/// caller.
#[derive(Default, Clone)]
pub struct Admission {
    pub plugins: Option<Arc<Plugins>>,
    pub context: RequestContext,
}

impl Host for StorageCtx<'_> {
    async fn check(&mut self, change: Change) -> wasmtime::Result<Option<String>> {
        let Some(plugins) = &self.admission.plugins else {
            return Ok(None);
        };
        let metadata = self.backends.metadata.as_ref();
        let caller = self.admission.context.caller.clone();
        Ok(match ask_all(plugins, metadata, change, caller).await {
            Ok(verdict) => verdict,
            Err(error) => {
                tracing::error!(
                    error = %error.cause(),
                    "reading the metadata an admission policy needs"
                );
                Some(
                    "the registry could not read what its admission policy needs; the change is refused"
                        .to_owned(),
                )
            }
        })
    }
}

/// The first deny among the plugins' answers about `change`, and, for a
/// manifest deleted by digest, about each tag that delete takes with it.
async fn ask_all(
    plugins: &Plugins,
    metadata: &dyn MetadataStore,
    change: Change,
    caller: Option<String>,
) -> Result<Option<String>, StorageError> {
    let delete = matches!(change.operation, Operation::DeleteManifest);
    let by_digest = change.reference.parse::<Digest>().is_ok();
    let mut question = Question {
        operation: if delete {
            plugins::Operation::DeleteManifest
        } else {
            plugins::Operation::PutManifest
        },
        repository: change.repository,
        reference: change.reference,
        digest: change.digest,
        media_type: change.media_type,
        annotations: change.annotations,
        previous: None,
        caller,
    };
    if !by_digest {
        question.previous = metadata
            .resolve_tag(&question.repository, &question.reference)
            .await?;
        if delete {
            question.digest.clone_from(&question.previous);
        }
    }
    if let Some(message) = plugins.check(question.clone()).await {
        return Ok(Some(message));
    }
    if !(delete && by_digest) {
        return Ok(None);
    }
    // Deleting a manifest deletes every tag pointing at it: each is asked
    // about as a tag deletion too, so a policy on tags (immutable tags)
    // cannot be sidestepped by deleting the manifest underneath.
    let digest = question.reference.clone();
    for tag in metadata.tags_of(&question.repository, &digest).await? {
        let tag_deletion = Question {
            reference: tag,
            digest: Some(digest.clone()),
            previous: Some(digest.clone()),
            ..question.clone()
        };
        if let Some(message) = plugins.check(tag_deletion).await {
            return Ok(Some(message));
        }
    }
    Ok(None)
}
