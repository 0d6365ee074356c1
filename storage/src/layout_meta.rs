//! Registry metadata kept in distribution's `registry:2` layout.
//! (Being written.)

/// Placeholder until the implementation lands.
pub struct LayoutMetadata;
