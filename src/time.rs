//! Unix time, the one type every timestamp of autoheal has: seconds since the epoch as an
//! `f64` ([`Unix`]): the state file, the plan, the events and the metrics all speak it, and
//! `SystemTime`s from the system (a process's start, a file's mtime) become it here. A leaf.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch, fractions kept. A time before the epoch is 0.
pub type Unix = f64;

/// Now.
pub fn now() -> Unix {
    of(SystemTime::now())
}

/// A `SystemTime` as [`Unix`].
pub fn of(t: SystemTime) -> Unix {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A unix time as RFC 3339 UTC. A state file can hold any number: it is clamped to what RFC
/// 3339 can write (1970 to 9999; humantime refuses a later year), never a panic.
pub fn rfc3339(t: Unix) -> String {
    const LAST: f64 = 253_402_300_799.0; // 9999-12-31T23:59:59Z
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, LAST) };
    let at = Duration::try_from_secs_f64(t).unwrap_or_default();
    humantime::format_rfc3339_seconds(UNIX_EPOCH + at).to_string()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    /// A state file can hold any time: each is written, clamped, never a panic.
    #[test]
    fn any_unix_time_is_written() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1e300), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800.0), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(f64::INFINITY), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1e300), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00Z");
    }
}
