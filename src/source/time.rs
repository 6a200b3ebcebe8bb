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
        i64::try_from(v)
            .map(EventTime)
            .map_err(|_| E::custom("timestamp out of range"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventTime, E> {
        Ok(EventTime(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventTime, E> {
        if v.is_finite() && v.abs() < 9.0e15 {
            Ok(EventTime(v as i64))
        } else {
            Err(E::custom("timestamp out of range"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EventTime, E> {
        parse_rfc3339_ms(v).ok_or_else(|| E::custom("timestamp is not RFC 3339"))
    }
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
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(EventTime(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000))
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

    #[test]
    fn civil_round_trip_over_centuries() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m as i64, d as i64), z);
        }
    }
}
