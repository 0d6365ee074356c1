//! What the HTTP front learnt about a request that the sandbox needs: who
//! is asking and which repositories the catalog may show them. The front
//! puts one `RequestContext` in the request's extensions; the runtime hands
//! it to the storage imports. Without one (no logins), anyone sees all.

use std::sync::Arc;

/// Per-request data that travels from the front to the storage imports.
#[derive(Clone, Default)]
pub struct RequestContext {
    /// The named user, when there is one (anonymous: `None`).
    pub caller: Option<String>,
    /// Whether the caller may see a repository in the catalog; `None`
    /// shows all.
    pub may_list: Option<CatalogFilter>,
}

impl RequestContext {
    pub fn may_list(&self, repository: &str) -> bool {
        self.may_list
            .as_ref()
            .is_none_or(|filter| (filter.0)(repository))
    }
}

/// A catalog filter: the auth layer's view of one caller's rights.
#[derive(Clone)]
pub struct CatalogFilter(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);
