//! What every wasm sandbox here may spend, set up in one place for the
//! registry guest and the policy plugins alike: fuel (the time budget,
//! deterministic and without a ticker thread) and a linear-memory cap that
//! remembers being hit.

use wasmtime::{Config, Store};

/// Fuel a guest burns between two yields to tokio (about a millisecond of
/// wasm): a spinning guest gives its worker thread back this often, while an
/// ordinary request (tens of thousands of fuel) never yields at all.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// The largest linear-memory cap, in MiB: wasm32 memories end at 4 GiB.
pub const MAX_MEMORY_MIB: u64 = 4096;

/// A budget value no sandbox can run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "{0} MiB is not a usable memory cap: 1 up to {MAX_MEMORY_MIB} (wasm32 memories end at 4 GiB)"
    )]
    Memory(u64),
    #[error("0 fuel would stop every call before it starts")]
    NoFuel,
}

/// A memory cap of `mib` MiB, in bytes, if a sandbox can have it.
pub fn memory_cap(mib: u64) -> Result<usize, BudgetError> {
    if !(1..=MAX_MEMORY_MIB).contains(&mib) {
        return Err(BudgetError::Memory(mib));
    }
    usize::try_from(mib << 20).map_err(|_| BudgetError::Memory(mib))
}

/// `fuel`, if a sandbox can run on it.
pub fn fuel_budget(fuel: u64) -> Result<u64, BudgetError> {
    if fuel == 0 {
        return Err(BudgetError::NoFuel);
    }
    Ok(fuel)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_outside_what_a_sandbox_can_have_are_refused() {
        assert_eq!(memory_cap(128), Ok(128 << 20));
        assert_eq!(memory_cap(4096), Ok(4096 << 20));
        assert_eq!(memory_cap(0), Err(BudgetError::Memory(0)));
        assert_eq!(memory_cap(5000), Err(BudgetError::Memory(5000)));
        assert_eq!(fuel_budget(1), Ok(1));
        assert_eq!(fuel_budget(0), Err(BudgetError::NoFuel));
    }
}
