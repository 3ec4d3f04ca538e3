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

/// "Now" as `QUIRE_NOW` pins it for `quire-runs` and `serve` (ages and
/// durations of snapshot tests and reproducible reports): the RFC 3339
/// instant it holds, in milliseconds since the epoch; None when it is
/// unset or not an instant.
pub fn frozen_now_ms() -> Option<i64> {
    parse_now(&std::env::var("QUIRE_NOW").ok()?)
}

/// An RFC 3339 instant, as `QUIRE_NOW` holds it, in milliseconds.
pub fn parse_now(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// A positive span as people write it: "90s", "20m", "1h30m", "1h 30m",
/// "30d", "2w" (a day is 24 hours here). None for anything else, zero and
/// negative spans included.
pub fn parse_span(text: &str) -> Option<std::time::Duration> {
    let span: jiff::Span = text.trim().parse().ok()?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    let duration = std::time::Duration::try_from(signed).ok()?;
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quire_now_is_an_rfc3339_instant() {
        assert_eq!(parse_now("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_now("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_now("yesterday"), None);
        assert_eq!(parse_now(""), None);
    }

    #[test]
    fn spans_read_as_people_write_them() {
        for (text, secs) in [
            ("90s", 90),
            ("20m", 1200),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("30d", 2_592_000),
            ("2w", 1_209_600),
        ] {
            assert_eq!(parse_span(text), Some(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "0s", "-5m", "1mo", "5 parsecs", "20"] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}
