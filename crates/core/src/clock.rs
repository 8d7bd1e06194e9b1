//! Time: a millisecond timestamp and the clock port.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// 10000-01-01T00:00:00Z in milliseconds: [`rfc3339_fast`] writes four-digit years only.
const MAX_FAST_MILLIS: i64 = 253_402_300_800_000;

/// `ms` (0 to [`MAX_FAST_MILLIS`]) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339_fast(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, ms.div_euclid(1000), ms.rem_euclid(1000) as u32, 3);
    out
}

/// Appends the instant `secs` (Unix seconds from 1970 to 9999) and `frac` (its fraction, in
/// `frac_digits` digits: 3 for milliseconds, 6 for microseconds) as `YYYY-MM-DDTHH:MM:SS.f…Z`:
/// the civil date from the day count (Howard Hinnant's `civil_from_days`), the digits written
/// straight into the string, no formatting machinery (a lookup renders two of these, and the
/// log one per line).
pub fn write_rfc3339(out: &mut String, secs: i64, frac: u32, frac_digits: u32) {
    // Out of that range (no caller goes there) the nearest end is written, never a wrong digit.
    let secs = secs.clamp(0, MAX_FAST_MILLIS / 1000 - 1);
    let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_digits(out, year, 4);
    for (sep, v) in [('-', month), ('-', day), ('T', in_day / 3600), (':', in_day / 60 % 60), (':', in_day % 60)] {
        out.push(sep);
        push_digits(out, v, 2);
    }
    out.push('.');
    push_digits(out, i64::from(frac), frac_digits);
    out.push('Z');
}

/// The last `n` decimal digits of `v` (not negative), zero-padded.
fn push_digits(out: &mut String, v: i64, n: u32) {
    for i in (0..n).rev() {
        out.push(char::from(b'0' + (v / 10_i64.pow(i) % 10) as u8));
    }
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// RFC 3339 with millisecond precision, e.g. `2026-11-28T21:19:34.123Z`.
    pub fn to_rfc3339(self) -> String {
        // Years 1970 to 9999 (every stored instant) without the formatting machinery: a user
        // document carries two of these, and a lookup renders one per request.
        if (0..MAX_FAST_MILLIS).contains(&self.0) {
            return rfc3339_fast(self.0);
        }
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => {
                let (y, mo, d) = (dt.year(), u8::from(dt.month()), dt.day());
                format!(
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                    dt.hour(),
                    dt.minute(),
                    dt.second(),
                    dt.millisecond()
                )
            }
            Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
        }
    }
    /// For people: `2026-11-28 21:19:34 UTC` (seconds, the zone named).
    pub fn to_human(self) -> String {
        let r = self.to_rfc3339();
        format!("{} {} UTC", &r[..10], &r[11..19])
    }
    /// Parses an RFC 3339 date-time (as SCIM `dateTime` values are written).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = dt.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).ok().map(Timestamp)
    }
}

/// The clock port: the only way domain code learns the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ns = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Timestamp(i64::try_from(ns).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let t = Timestamp(1_764_364_774_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2025-11-28T21:19:34.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("2025-11-28T22:19:34.123+01:00"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        assert_eq!(t.to_human(), "2025-11-28 21:19:34 UTC");
    }

    /// The straight formatting agrees with the `time` crate's calendar at every edge (epoch,
    /// leap days, century rules, the last millisecond of 9999) and on a spread of instants; out
    /// of its range the general path answers.
    #[test]
    fn fast_rfc3339_agrees_with_the_calendar() {
        let by_time = |ms: i64| {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            )
        };
        let day = 86_400_000_i64;
        let mut cases = vec![0, 1, 999, day - 1, day, MAX_FAST_MILLIS - 1];
        // 2000-02-29 (a 400-year leap day), 2100-03-01 (no 2100-02-29), 2024-12-31, 1972-02-29.
        cases.extend([951_782_400_000, 4_107_542_400_000, 1_735_603_200_000, 68_169_600_000]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x % MAX_FAST_MILLIS as u64) as i64);
        }
        for d in 0..3000 {
            cases.extend([d * day + 59_999, d * day * 37 + 3_599_999]);
        }
        for ms in cases {
            assert_eq!(Timestamp(ms).to_rfc3339(), by_time(ms), "{ms}");
        }
        assert_eq!(Timestamp(MAX_FAST_MILLIS - 1).to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Timestamp(i64::MAX).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        for (secs, want) in [(-1, "1970-01-01T00:00:00.5Z"), (i64::MAX, "9999-12-31T23:59:59.5Z")] {
            let mut s = String::new();
            write_rfc3339(&mut s, secs, 5, 1);
            assert_eq!(s, want);
        }
    }
}
