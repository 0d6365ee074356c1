//! A filesystem root that already holds registry:2's tree is served in
//! place: unless `metadata.kind` is set, such a root (with no Berth
//! database beside the tree) gets layout metadata, which reads and writes
//! registry:2's own links. A fresh root keeps Berth's default, SQLite.

use crate::config::{Config, MetadataKind, StorageKind};

/// registry:2's tree under its storage root.
pub const REGISTRY2_TREE: &str = "docker/registry/v2";
/// What SQLite metadata keeps under the root.
pub const METADATA_DB: &str = "metadata.db";

/// Switches `config` (whose `metadata.kind` was left to its default) to
/// layout metadata when its root holds registry:2's tree and no
/// `metadata.db`; returns the note to log.
pub fn serve_in_place(config: &mut Config) -> Option<String> {
    let root = &config.storage.root;
    let fits = config.storage.kind == StorageKind::Filesystem
        && config.metadata.kind == MetadataKind::Sqlite
        && root.join(REGISTRY2_TREE).is_dir()
        && !root.join(METADATA_DB).exists();
    if !fits {
        return None;
    }
    config.metadata.kind = MetadataKind::Layout;
    Some(format!(
        "serving registry:2's tree in place: {} holds {REGISTRY2_TREE}/ and no {METADATA_DB}, \
         so metadata.kind is \"layout\"",
        root.display()
    ))
}
