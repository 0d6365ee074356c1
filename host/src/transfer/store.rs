//! Putting blobs and manifests into the store the way a push does.
