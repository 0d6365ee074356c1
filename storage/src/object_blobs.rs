//! Blob store on any `object_store::ObjectStore` (S3-compatible, in-memory).
//! (Being written.)

/// Placeholder until the implementation lands.
pub struct ObjectBlobStore;
