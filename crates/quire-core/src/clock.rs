//! Wall-clock time in milliseconds since the Unix epoch, as stored.

use std::sync::Arc;

/// Where the store takes "now" from. Production uses [`system`]; tests can
/// hand in a clock that jumps backwards to prove timestamps stay monotone.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system() -> Clock {
    Arc::new(now_ms)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
