//! Timing rules: when the next scheduled rotation is due, the deterministic per-object
//! jitter, and the per-object failure backoff. Pure functions of their inputs; no IO.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Jitter is at most this fraction of the interval...
const JITTER_FRACTION: u32 = 10;
/// ...and at most one hour.
const JITTER_CAP: Duration = Duration::from_secs(3600);
/// Delay after the first failure; it doubles with each further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Maximum delay between two attempts of a failing object.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// Returns how much earlier than `interval` an object rotates: a fixed offset in
/// `[0, min(interval / 10, 1h))` derived from the object's UID, so that objects created
/// together spread out and a restart of rotor does not reshuffle them.
pub fn jitter(uid: &str, interval: Duration) -> Duration {
    let window = (interval / JITTER_FRACTION).min(JITTER_CAP);
    let window_millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if window_millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(fnv1a(uid.as_bytes()) % window_millis)
}

/// When the rotation after one finished at `last_rotation` is due.
pub fn next_rotation(last_rotation: Timestamp, interval: Duration, uid: &str) -> Timestamp {
    let wait = interval.saturating_sub(jitter(uid, interval));
    add(last_rotation, wait)
}

/// Delay before the next attempt after `failure_count` consecutive failures: 5 s, 10 s,
/// 20 s, ... capped at one hour. Zero when nothing failed.
pub fn backoff(failure_count: u32) -> Duration {
    if failure_count == 0 {
        return Duration::ZERO;
    }
    let doublings = (failure_count - 1).min(20);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_CAP)
}

/// When a failing object may be attempted again.
pub fn retry_at(last_failure: Timestamp, failure_count: u32) -> Timestamp {
    add(last_failure, backoff(failure_count))
}

/// `time + duration`, saturating at the largest timestamp.
pub fn add(time: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|duration| time.checked_add(duration).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Returns the time from `now` until `time`, or zero when `time` has passed.
pub fn until(now: Timestamp, time: Timestamp) -> Duration {
    Duration::try_from(time.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// 64-bit FNV-1a: a small hash whose output is fixed by its definition, unlike std's
/// `DefaultHasher`, so stored schedules stay valid across Rust versions.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn jitter_is_stable_per_uid() {
        assert_eq!(jitter("uid-a", 24 * HOUR), jitter("uid-a", 24 * HOUR));
        assert_ne!(jitter("uid-a", 24 * HOUR), jitter("uid-b", 24 * HOUR));
    }

    #[test]
    fn jitter_stays_within_tenth_of_interval() {
        let interval = Duration::from_secs(60);
        for n in 0..500 {
            let uid = format!("uid-{n}");
            assert!(jitter(&uid, interval) < Duration::from_secs(6), "uid {uid}");
        }
    }

    #[test]
    fn jitter_capped_at_one_hour() {
        let interval = 30 * 24 * HOUR;
        for n in 0..500 {
            assert!(jitter(&format!("uid-{n}"), interval) < HOUR);
        }
    }

    #[test]
    fn next_rotation_precedes_interval_end() {
        let last: Timestamp = "2026-01-01T00:00:00Z".parse().expect("valid timestamp");
        let next = next_rotation(last, 24 * HOUR, "uid-a");
        let latest = add(last, 24 * HOUR);
        let earliest = add(last, 23 * HOUR);
        assert!(next <= latest, "{next} after {latest}");
        assert!(next > earliest, "{next} before {earliest}");
    }

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(11), HOUR);
        assert_eq!(backoff(u32::MAX), HOUR);
    }

    #[test]
    fn fnv1a_matches_reference_vector() {
        // Reference value of FNV-1a 64 for "a" from the algorithm's published test suite.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
