//! The host side of `berth:registry/admission`: the guest's question goes
//! to the policy plugins with the caller's identity added.

use super::StorageCtx;
use crate::bindings::berth::registry::admission::{Change, Host, Operation};
use crate::plugins::{Plugins, Question};
use std::sync::Arc;

/// Per request: the server's plugins and who is asking.
#[derive(Default, Clone)]
pub struct Admission {
    pub plugins: Option<Arc<Plugins>>,
    pub caller: Option<String>,
}

impl Host for StorageCtx<'_> {
    async fn check(&mut self, change: Change) -> wasmtime::Result<Option<String>> {
        let Some(plugins) = &self.admission.plugins else {
            return Ok(None);
        };
        let operation = match change.operation {
            Operation::PutManifest => crate::plugins::Operation::PutManifest,
            Operation::DeleteManifest => crate::plugins::Operation::DeleteManifest,
        };
        Ok(plugins
            .check(Question {
                operation,
                repository: change.repository,
                reference: change.reference,
                digest: change.digest,
                media_type: change.media_type,
                annotations: change.annotations,
                previous: change.previous,
                caller: self.admission.caller.clone(),
            })
            .await)
    }
}
