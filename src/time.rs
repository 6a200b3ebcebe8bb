//! Event-time parsing and formatting without allocation.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::io::Write;

/// Event time in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime(pub i64);

impl EventTime {
    /// Whole seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl<'de> de::Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EventTimeVisitor)
    }
}

struct EventTimeVisitor;

impl Visitor<'_> for EventTimeVisitor {
    type Value = EventTime;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp string or epoch milliseconds")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventTime, E> {
        let ms = i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))?;
        epoch_ms(ms).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventTime, E> {
        epoch_ms(v).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventTime, E> {
        if v.is_finite() && v.abs() < 9.0e15 {
            epoch_ms(v as i64).map_err(E::custom)
        } else {
            Err(E::custom("timestamp out of range"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EventTime, E> {
        parse_rfc3339_ms(v).ok_or_else(|| E::custom("timestamp is not RFC 3339"))
    }
}

/// Numeric event times from here up to [`EPOCH_SECONDS_END`] are epoch
/// seconds, never milliseconds: 10- and 11-digit numbers, which as seconds
/// are 2001-09-09 .. 5138 and as milliseconds only January 1970 .. March 1973.
pub const EPOCH_SECONDS_START: i64 = 1_000_000_000;
/// End (exclusive) of the numbers read as epoch seconds; see [`EPOCH_SECONDS_START`].
pub const EPOCH_SECONDS_END: i64 = 100_000_000_000;

/// Start of the message of a numeric event time rejected as epoch seconds
/// (the parser classifies errors by it).
pub const IN_SECONDS: &str = "timestamp is in epoch seconds";

/// A numeric event time as epoch milliseconds, unless it can only be epoch seconds.
fn epoch_ms(v: i64) -> Result<EventTime, String> {
    if (EPOCH_SECONDS_START..EPOCH_SECONDS_END).contains(&v) {
        return Err(format!(
            "{IN_SECONDS} ({} if read as seconds); epoch milliseconds are expected",
            rfc3339_ms(v.saturating_mul(1000))
        ));
    }
    Ok(EventTime(v))
}

/// Parses an RFC 3339 timestamp (e.g. `2024-05-01T12:00:00.123Z`) to epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<EventTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|dt| EventTime(dt.timestamp_millis()))
}

/// Parses `YYYY-MM-DD HH:MM:SS` (no zone, taken as UTC), the handbook's format.
pub fn parse_naive_datetime_ms(s: &str) -> Option<EventTime> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days = civil_days(num(0..4)?, num(5..7)?, num(8..10)?)?;
    Some(EventTime(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000))
}

/// Parses a date `YYYY-MM-DD` to epoch ms at 00:00 UTC; `None` for a day the
/// month does not have (2018-04-31, 2019-02-29).
pub fn parse_date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        s.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    civil_days(num(0..4)?, num(5..7)?, num(8..10)?).map(|d| d * 86_400_000)
}

/// Days since 1970-01-01 of a real calendar date; `None` for an impossible one.
fn civil_days(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&d)
        .then(|| days_from_civil(y, m, d))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes `ms` as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.123Z`) into `out`.
pub fn write_rfc3339_ms(out: &mut impl Write, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    // Callers write to memory; a too-small buffer just truncates.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z"
    );
}

/// `ms` as RFC 3339 UTC with milliseconds, for messages.
pub fn rfc3339_ms(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_ms(&mut out, ms);
    String::from_utf8_lossy(&out).into_owned()
}

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339_ms("2024-05-01T12:34:56.789Z").unwrap();
        let mut out = Vec::new();
        write_rfc3339_ms(&mut out, t.0);
        assert_eq!(out, b"2024-05-01T12:34:56.789Z");
        let t2 = parse_rfc3339_ms("2024-05-01T14:34:56.789+02:00").unwrap();
        assert_eq!(t, t2);
    }

    #[test]
    fn naive_matches_rfc3339() {
        let a = parse_naive_datetime_ms("2018-04-01 00:00:31").unwrap();
        let b = parse_rfc3339_ms("2018-04-01T00:00:31Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_naive_datetime_ms("2018-13-01 00:00:31").is_none());
        assert!(parse_naive_datetime_ms("2018-04-01T00:00:31").is_none());
    }

    /// Every day of 1900..2100 that the calendar has parses, and is the day
    /// after the one before; the day after each month's last does not parse.
    #[test]
    fn impossible_dates_are_rejected_and_real_ones_accepted() {
        let mut expected = days_from_civil(1900, 1, 1);
        for y in 1900..2100 {
            for m in 1..=12 {
                let mut last = 0;
                for d in 1..=31 {
                    let date = format!("{y:04}-{m:02}-{d:02}");
                    let naive = parse_naive_datetime_ms(&format!("{date} 12:00:00"));
                    match parse_date_ms(&date) {
                        Some(ms) => {
                            assert_eq!(ms, expected * 86_400_000, "{date}");
                            assert_eq!(naive.map(|t| t.0), Some(ms + 43_200_000));
                            expected += 1;
                            last = d;
                        }
                        None => assert!(naive.is_none(), "{date}"),
                    }
                }
                let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                let want = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ];
                assert_eq!(last, want[m as usize - 1], "{y}-{m}");
            }
        }
        for bad in [
            "2018-04-31",
            "2019-02-29",
            "2018-00-10",
            "2018-4-1",
            "2018-04-01x",
            "",
            "2018-04-+1",
        ] {
            assert_eq!(parse_date_ms(bad), None, "{bad}");
        }
        assert!(parse_naive_datetime_ms("2018-04-31 05:00:00").is_none());
        assert!(parse_naive_datetime_ms("2018-04-30 05:00:60").is_none());
    }

    /// The documented rule: 10- and 11-digit numbers are epoch seconds and
    /// rejected; smaller and larger numbers are milliseconds.
    #[test]
    fn numbers_that_can_only_be_epoch_seconds_are_rejected() {
        let parse = |json: &str| serde_json::from_str::<EventTime>(json);
        for secs in [
            "1764525600",
            "1000000000",
            "99999999999",
            "1523000000",
            "1764525600.5",
        ] {
            let err = parse(secs).unwrap_err().to_string();
            assert!(err.starts_with(IN_SECONDS), "{secs}: {err}");
        }
        assert!(parse("1764525600")
            .unwrap_err()
            .to_string()
            .contains("2025-11-30T18:00:00.000Z"));
        for ms in [
            "0",
            "999999999",
            "100000000000",
            "1764525600000",
            "1522540800000",
        ] {
            assert_eq!(parse(ms).unwrap().0, ms.parse::<i64>().unwrap(), "{ms}");
        }
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m as i64, d as i64), z);
        }
    }
}
