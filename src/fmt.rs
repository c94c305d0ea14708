//! How durations and I/O errors read in messages, the same everywhere: `40ms`, `1.5s`,
//! `3m20s`; "permission denied". A leaf: it uses nothing of the crate.

use std::time::Duration;

/// `limit` from now: a deadline. Past what an `Instant` can hold (a limit no config can give,
/// since `config::load` bounds every duration) it is a century from now, never a panic.
pub fn deadline(limit: Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(limit)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// [`secs`] of a `Duration`.
pub fn duration(d: std::time::Duration) -> String {
    secs(d.as_secs_f64())
}

/// Short durations for messages: `40ms`, `1.5s`, `45s`, `3m20s`, `2h01m`.
pub fn secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round() as u64)
    } else if s < 9.95 {
        let t = format!("{s:.1}");
        format!("{}s", t.trim_end_matches(".0"))
    } else if s < 120.0 {
        format!("{}s", s.round() as u64)
    } else {
        let s = s.round() as u64;
        if s < 7200 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// An io error as a person reads it: "permission denied" rather than "Permission denied (os error 13)".
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{deadline, secs};
    use std::time::{Duration, Instant};

    #[test]
    fn a_deadline_never_overflows() {
        let d = deadline(Duration::MAX);
        assert!(d > Instant::now() + Duration::from_secs(365 * 86_400));
        let soon = deadline(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn short_durations() {
        assert_eq!(secs(0.25), "250ms");
        assert_eq!(secs(1.25), "1.2s");
        assert_eq!(secs(3.0), "3s");
        assert_eq!(secs(45.4), "45s");
        assert_eq!(secs(200.0), "3m20s");
        assert_eq!(secs(7300.0), "2h01m");
    }
}
