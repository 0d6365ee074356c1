//! Notifications: registry:2's event envelope sent to the
//! `[[notifications]]` endpoints. Push, mount and delete events go through
//! a durable outbox; pull events through a bounded memory queue.
//!
//! (Being built: see issue 17.)

/// Takes events from the front and delivers them; cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {}

impl Notifier {
    /// Whether any endpoint wants events at all.
    pub fn is_enabled(&self) -> bool {
        false
    }
}
