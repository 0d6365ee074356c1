//! The host side of `berth:registry/catalog`: whether the catalog may name
//! a repository to the caller, from the filter the auth layer left for
//! this request.

use super::StorageCtx;
use crate::bindings::berth::registry::catalog::Host;

impl Host for StorageCtx<'_> {
    async fn may_list(&mut self, repository: String) -> wasmtime::Result<bool> {
        Ok(self
            .admission
            .catalog
            .as_ref()
            .is_none_or(|filter| (filter.0)(&repository)))
    }
}
