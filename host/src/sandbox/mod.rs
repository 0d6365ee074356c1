//! The sandbox: the wasmtime engine, one fresh guest instance per request
//! with its fuel and memory budget, the per-request state, the generated
//! bindings, the host side of the guest's storage imports, and the policy
//! plugins.

pub mod bindings;
pub mod budget;
pub mod context;
pub mod plugins;
pub mod runtime;
pub mod state;
pub mod storage_imports;
