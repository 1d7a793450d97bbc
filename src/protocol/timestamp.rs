//! Timestamps on the wire: RFC 3339 in UTC with millisecond precision, e.g.
//! `2026-11-27T12:00:00.123Z`.

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn format_timestamp(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting a valid UTC date with a fixed description can only fail for years past 9999.
    utc.format(&format)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(
            format_timestamp(datetime!(2026-11-27 12:00:00.123456 UTC)),
            "2026-11-27T12:00:00.123Z"
        );
        assert_eq!(
            format_timestamp(datetime!(2026-11-27 13:00:00 +01:00)),
            "2026-11-27T12:00:00.000Z"
        );
    }
}
