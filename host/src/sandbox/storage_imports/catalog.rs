//! The host side of `berth:registry/catalog`: whether the catalog may name
//! a repository to the caller, from what the front learnt about them.

use super::StorageCtx;
use crate::sandbox::bindings::berth::registry::catalog::Host;

impl Host for StorageCtx<'_> {
    async fn may_list(&mut self, repository: String) -> wasmtime::Result<bool> {
        Ok(self.admission.context.may_list(&repository))
    }
}
