//! What every wasm sandbox here may spend, set up in one place for the
//! registry guest and the policy plugins alike: fuel (the time budget,
//! deterministic and without a ticker thread) and a linear-memory cap that
//! remembers being hit.

use wasmtime::{Config, Store};

/// Fuel a guest burns between two yields to tokio (about a millisecond of
/// wasm): a spinning guest gives its worker thread back this often, while an
/// ordinary request (tens of thousands of fuel) never yields at all.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// An engine configuration whose stores run on fuel. The price is a counter
/// update per basic block, measured in docs/ARCHITECTURE.md.
pub fn fueled_config() -> Config {
    let mut config = Config::new();
    config.consume_fuel(true);
    config
}

/// Gives `store` its fuel budget and makes it yield to tokio as it burns it.
pub fn arm<T>(store: &mut Store<T>, fuel: u64) -> wasmtime::Result<()> {
    store.set_fuel(fuel)?;
    store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
}

/// Fuel `store` burnt out of a budget of `fuel`.
pub fn used<T>(store: &Store<T>, fuel: u64) -> u64 {
    fuel.saturating_sub(store.get_fuel().unwrap_or(0))
}

/// Caps a store's linear memory (and, optionally, its instances) and
/// remembers whether the cap was hit, so a trap that follows (Rust aborts
/// when an allocation fails) can be reported as running out of memory.
pub struct MemoryLimiter {
    cap: usize,
    hit: bool,
    instances: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            hit: false,
            instances: None,
        }
    }

    /// Also refuses more than `max` instances in the store.
    pub fn with_instances(mut self, max: usize) -> Self {
        self.instances = Some(max);
        self
    }

    /// Whether the sandbox asked for more memory than its cap.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refusing makes `memory.grow` return -1, as the spec allows; the
        // guest's allocator sees an ordinary allocation failure.
        let allowed = desired <= self.cap;
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pooling allocator's per-table maximum bounds the guest's
        // tables; a plugin's are bounded by its memory and fuel.
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances.unwrap_or(wasmtime::DEFAULT_INSTANCE_LIMIT)
    }
}
