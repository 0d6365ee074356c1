//! Work on a whole store rather than one request: garbage collection,
//! consistency checks and repair, disk usage, and forgetting cached
//! repositories nobody pulls. Used by the CLI
//! (`berth gc`, `fsck`, `du`), by the server's background collector and by
//! `/berth/v1/usage`; none of it goes through the guest or its imports.

pub mod forget;
pub mod fsck;
pub mod gauges;
pub mod gc;
pub mod usage;
