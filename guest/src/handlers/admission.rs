//! Asks the host's admission policy before a manifest or tag changes. The
//! host adds who is asking and runs its policy plugins; a refusal reaches
//! the client as 403 DENIED with the policy's message.

use crate::storage::admission::{self, Change, Operation};
use berth_oci::ApiError;
use berth_oci::manifest::Annotations;
use berth_oci::route::Reference;

/// What a manifest PUT is about to store.
pub struct Put<'a> {
    pub repository: &'a str,
    pub digest: &'a str,
    pub media_type: &'a str,
    /// The manifest's `annotations`, sorted by key.
    pub annotations: Option<&'a Annotations>,
}

/// One question per tag the PUT sets (a tag may be moving), or one for the
/// digest when it sets none. Where a tag points now is the host's to look
/// up, and only when a policy will read it.
pub fn check_put(put: &Put<'_>, tags: &[&str]) -> Result<(), ApiError> {
    let annotations = put.annotations.cloned().unwrap_or_default();
    let change = |reference: &str| Change {
        operation: Operation::PutManifest,
        repository: put.repository.to_owned(),
        reference: reference.to_owned(),
        digest: Some(put.digest.to_owned()),
        media_type: Some(put.media_type.to_owned()),
        annotations: annotations.clone(),
    };
    if tags.is_empty() {
        return ask(&change(put.digest));
    }
    tags.iter().try_for_each(|tag| ask(&change(tag)))
}

/// Before a DELETE of a manifest (by digest) or a tag.
pub fn check_delete(repository: &str, reference: &Reference) -> Result<(), ApiError> {
    let reference = match reference {
        Reference::Digest(d) => d.as_str().to_owned(),
        Reference::Tag(t) => t.clone(),
    };
    ask(&Change {
        operation: Operation::DeleteManifest,
        repository: repository.to_owned(),
        reference,
        digest: None,
        media_type: None,
        annotations: Vec::new(),
    })
}

fn ask(change: &Change) -> Result<(), ApiError> {
    match admission::check(change) {
        None => Ok(()),
        Some(message) => Err(ApiError::Denied(message)),
    }
}
