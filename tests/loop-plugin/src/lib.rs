//! An admission plugin that misbehaves on request, for the host's plugin
//! sandbox tests. Its setting `mode` says what `check` does:
//!
//! | mode | what the plugin does |
//! |---|---|
//! | `loop` | spins forever (until the host's fuel runs out) |
//! | `trap` | executes `unreachable` |
//! | `oom` | allocates and touches memory until allocation fails |
//! | `allow` | allows |
//! | `deny` | denies with `denied by loop-plugin` |
//! | `echo` | denies with the change it was given, one `key=value` per field, so tests can see what the host sent |
//!
//! Anything else (or no `mode`) denies with a message saying so.

/// The component's export; natively there is nothing to build.
#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit/policy", world: "plugin" });

    use exports::berth::policy::admission::{Change, Decision, Guest, Operation, Setting};

    struct Plugin;

    impl Guest for Plugin {
        fn check(settings: Vec<Setting>, change: Change) -> Decision {
            let mode = settings
                .iter()
                .find(|s| s.key == "mode")
                .and_then(|s| s.values.first())
                .map(String::as_str);
            match mode {
                Some("loop") => spin(),
                Some("trap") => core::arch::wasm32::unreachable(),
                Some("oom") => exhaust_memory(),
                Some("allow") => Decision::Allow,
                Some("deny") => Decision::Deny("denied by loop-plugin".into()),
                Some("echo") => Decision::Deny(echo(&change)),
                _ => Decision::Deny(format!(
                    "loop-plugin: unknown mode {mode:?} (loop, trap, oom, allow, deny, echo)"
                )),
            }
        }
    }

    /// An endless loop the optimizer must keep: every round goes through
    /// `black_box`.
    fn spin() -> ! {
        let mut n = 0u64;
        loop {
            n = core::hint::black_box(n.wrapping_add(1));
        }
    }

    /// Grows the heap 1 MiB at a time, touching every page, until the
    /// allocator fails (which aborts: a trap the host sees).
    fn exhaust_memory() -> ! {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            let chunk = vec![1u8; 1 << 20];
            held.push(core::hint::black_box(chunk));
        }
    }

    fn echo(change: &Change) -> String {
        let operation = match change.operation {
            Operation::PutManifest => "put-manifest",
            Operation::DeleteManifest => "delete-manifest",
        };
        let none = || "-".to_string();
        let annotations: Vec<String> = change
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "operation={operation} repository={} reference={} digest={} media-type={} \
             previous={} caller={} annotations={}",
            change.repository,
            change.reference,
            change.digest.clone().unwrap_or_else(none),
            change.media_type.clone().unwrap_or_else(none),
            change.previous.clone().unwrap_or_else(none),
            change.caller.clone().unwrap_or_else(none),
            annotations.join(","),
        )
    }

    export!(Plugin);
}
