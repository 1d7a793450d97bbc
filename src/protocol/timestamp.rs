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

/// The largest time [`Timestamp`] writes; later ones are written as this (as `format_timestamp`
/// does): 9999-12-31T23:59:59.999Z.
const MAX_UNIX_MILLIS: u64 = 253_402_300_799_999;

/// A timestamp written as `format_timestamp` writes it, without the `time` crate's formatting
/// machinery and without an allocation: every publish stamps its message, and the general
/// formatter cost about 1 500 instructions of each (issue 14).
#[derive(Clone, Copy)]
pub struct Timestamp([u8; 24]);

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Self::from_unix_millis(since_epoch.map_or(0, |d| d.as_millis() as u64))
    }

    /// Milliseconds since the Unix epoch, in UTC.
    pub fn from_unix_millis(millis: u64) -> Self {
        let millis = millis.min(MAX_UNIX_MILLIS);
        let (days, in_day) = (millis / 86_400_000, millis % 86_400_000);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[5..7], month);
        put_digits(&mut out[8..10], day);
        put_digits(&mut out[11..13], in_day / 3_600_000);
        put_digits(&mut out[14..16], in_day / 60_000 % 60);
        put_digits(&mut out[17..19], in_day / 1000 % 60);
        put_digits(&mut out[20..23], in_day % 1000);
        Timestamp(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or("9999-12-31T23:59:59.999Z")
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes the last `out.len()` decimal digits of `n`, zero-padded.
fn put_digits(out: &mut [u8], mut n: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_fast_timestamp_matches_the_general_formatter() {
        let general = |millis: u64| {
            let nanos = i128::from(millis) * 1_000_000;
            format_timestamp(OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap())
        };
        let day = 86_400_000u64;
        let mut samples = vec![0, 1, 999, 1000, day - 1, day, MAX_UNIX_MILLIS];
        // 1970 to past 2400 in steps that land on every day of the year and time of day over
        // the run, leap days and century years included.
        samples.extend((0..200_000u64).map(|i| i * 68_917_013_777 % MAX_UNIX_MILLIS));
        samples.extend([951_782_400_000u64, 4_107_542_400_000, 1_709_164_800_000].map(|d| d - 1));
        for millis in samples {
            assert_eq!(
                Timestamp::from_unix_millis(millis).as_str(),
                general(millis),
                "{millis}"
            );
        }
        assert_eq!(
            Timestamp::from_unix_millis(u64::MAX).as_str(),
            "9999-12-31T23:59:59.999Z"
        );
        let now = Timestamp::now();
        assert!(now.as_str().starts_with("20"), "{}", now.as_str());
    }

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
