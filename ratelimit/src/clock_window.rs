//! Fixed windows aligned to the UTC clock. A minute window is a calendar minute and a day window
//! a UTC day (the day the backend's daily quotas reset on), whichever instance counts and whenever
//! a tenant's first hit came: every instance and every Envoy agree on when a budget resets, and a
//! `Retry-After` points at the same instant for all of them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The window of length `window` that holds the instant `at_ms`: its number since the epoch
/// (part of the counter's key, so a new window starts from zero) and the time until it ends.
pub fn aligned(at_ms: u64, window: Duration) -> (u64, Duration) {
    let length = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    (
        at_ms / length,
        Duration::from_millis(length - at_ms % length),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_minute_window_ends_on_the_minute() {
        // 2026-12-07T17:59:59.999Z and the millisecond after.
        let last = 1_796_666_399_999;
        let (index, left) = aligned(last, MINUTE);
        assert_eq!(left, Duration::from_millis(1));
        let (next, left) = aligned(last + 1, MINUTE);
        assert_eq!(next, index + 1);
        assert_eq!(left, MINUTE);
    }

    #[test]
    fn a_day_window_is_the_utc_day() {
        // 2026-12-07T23:59:59.999Z, then midnight UTC.
        let before_midnight = 1_796_687_999_999;
        let (day, left) = aligned(before_midnight, DAY);
        assert_eq!(day, 20_794, "days since 1970-01-01");
        assert_eq!(left, Duration::from_millis(1));
        assert_eq!(aligned(before_midnight + 1, DAY), (20_795, DAY));
    }
}
