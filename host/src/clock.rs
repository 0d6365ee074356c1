//! Times as Berth writes them, always UTC, formatted by humantime (RFC
//! 3339) rather than by calendar arithmetic of our own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// Unix seconds as `2026-12-05 04:10:15 UTC`, for people.
pub fn utc_seconds(unix: u64) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(at(unix)).to_string();
    format!(
        "{} UTC",
        rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// Unix seconds as `2026-12-05 04:10 UTC`, for pages with many times.
pub fn utc_minutes(unix: u64) -> String {
    let seconds = utc_seconds(unix);
    // "YYYY-MM-DD HH:MM" is the first 16 characters, all ASCII.
    format!("{} UTC", seconds.get(..16).unwrap_or(&seconds))
}

/// `at` as RFC 3339 with nanoseconds (`2026-12-05T04:10:15.123456789Z`),
/// as registry:2's events carry their timestamps.
pub fn rfc3339_nanos(at: SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_in_the_forms_berth_shows() {
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_seconds(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_seconds(1_796_443_815), "2026-12-05 04:10:15 UTC");
        assert_eq!(utc_minutes(1_796_484_720), "2026-12-05 15:32 UTC");
        let nanos = UNIX_EPOCH + Duration::new(1_796_443_815, 5);
        assert_eq!(rfc3339_nanos(nanos), "2026-12-05T04:10:15.000000005Z");
    }
}
