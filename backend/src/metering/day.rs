//! UTC day arithmetic of the daily quota: which day a call counts towards, when the quota resets,
//! and how long a day's counter is kept.

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};

/// A day's counter lives this long after its last increment: a bit over a day, so it outlives
/// the day it counts and then goes away on its own.
pub const COUNTER_TTL_SECS: u64 = 25 * 60 * 60;

/// The UTC calendar day of `now`.
pub fn utc_day(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

/// The next UTC midnight after `now`: when today's quota resets.
pub fn next_reset(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = utc_day(now)
        .checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX);
    tomorrow.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Whole seconds from `now` until `then`, rounded up (never 0 before `then`), 0 after it.
pub fn seconds_until(now: DateTime<Utc>, then: DateTime<Utc>) -> u64 {
    let millis = (then - now).num_milliseconds();
    if millis <= 0 {
        0
    } else {
        (millis as u64).div_ceil(1000)
    }
}

/// RFC 3339 in UTC with a `Z`, whole seconds (e.g. `2026-11-28T00:00:00Z`).
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 in UTC with a `Z`, milliseconds (event timestamps).
pub fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The UTC day of a unix-milliseconds timestamp (`None` if out of range).
pub fn day_of_millis(millis: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(millis).map(utc_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn reset_is_the_next_utc_midnight() {
        let now = at("2026-11-27T13:45:10.250Z");
        assert_eq!(utc_day(now).to_string(), "2026-11-27");
        assert_eq!(rfc3339_seconds(next_reset(now)), "2026-11-28T00:00:00Z");
        assert_eq!(seconds_until(now, next_reset(now)), 36_890);
        // Midnight itself belongs to the new day, which resets a full day later.
        let midnight = at("2026-11-28T00:00:00Z");
        assert_eq!(utc_day(midnight).to_string(), "2026-11-28");
        assert_eq!(seconds_until(midnight, next_reset(midnight)), 86_400);
        // Just before midnight: rounded up, never 0.
        let late = at("2026-11-27T23:59:59.999Z");
        assert_eq!(seconds_until(late, next_reset(late)), 1);
        // Year and leap-day boundaries.
        assert_eq!(
            rfc3339_seconds(next_reset(at("2026-12-31T23:00:00Z"))),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339_seconds(next_reset(at("2028-02-28T08:00:00Z"))),
            "2028-02-29T00:00:00Z"
        );
        // Other offsets are converted to UTC first.
        let tokyo = DateTime::parse_from_rfc3339("2026-11-28T08:00:00+09:00")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(utc_day(tokyo).to_string(), "2026-11-27");
        assert_eq!(seconds_until(next_reset(now), now), 0);
    }

    #[test]
    fn counters_outlive_their_day() {
        const { assert!(COUNTER_TTL_SECS > 86_400 && COUNTER_TTL_SECS < 2 * 86_400) };
    }

    #[test]
    fn millis_days_and_formats() {
        let t = at("2026-11-27T23:59:59.999Z");
        assert_eq!(
            day_of_millis(t.timestamp_millis()).map(|d| d.to_string()),
            Some("2026-11-27".into())
        );
        assert_eq!(rfc3339_millis(t), "2026-11-27T23:59:59.999Z");
        assert_eq!(day_of_millis(i64::MAX), None);
    }
}
