//! Simulated time: timestamps as Unix milliseconds, minute arithmetic, civil dates, RFC 3339.
//!
//! The core never reads a clock. Daemons map real time to simulated time (time scale and
//! origin) and hand the result in as a [`Timestamp`]; the simulator advances it directly.

use std::fmt;

/// A number of minutes, the unit KMS uses for its intervals and expiry figures.
pub type Minutes = u32;

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A point in (simulated) time: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A civil (proleptic Gregorian, UTC) breakdown of a [`Timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
    /// Millisecond 0..=999.
    pub millis: u32,
    /// Day of the year, 1..=366.
    pub day_of_year: u32,
}

/// Why an RFC 3339 timestamp could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?}: {reason} (expected e.g. 2026-01-01T00:00:00Z)")]
pub struct ParseTimeError {
    /// The text that was given.
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The earliest timestamp RFC 3339 can write (four-digit years): 0000-01-01T00:00:00Z.
    pub const RFC3339_MIN: Timestamp = Timestamp(-62_167_219_200_000);

    /// The latest timestamp RFC 3339 can write: 9999-12-31T23:59:59.999Z.
    pub const RFC3339_MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// A timestamp from Unix milliseconds.
    pub const fn from_unix_ms(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Unix milliseconds.
    pub const fn as_unix_ms(self) -> i64 {
        self.0
    }

    /// This timestamp plus `ms` milliseconds (saturating).
    pub const fn plus_ms(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// This timestamp plus a number of minutes.
    pub const fn plus_minutes(self, minutes: i64) -> Self {
        self.plus_ms(minutes.saturating_mul(MINUTE_MS))
    }

    /// This timestamp plus a number of days.
    pub const fn plus_days(self, days: i64) -> Self {
        self.plus_ms(days.saturating_mul(DAY_MS))
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    pub const fn ms_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// How far apart two timestamps are, in milliseconds. Exact for any two `i64` values
    /// (a peer's `i64::MIN` is 2^63 ms from the epoch, not a wrapped negative number).
    pub const fn abs_diff_ms(self, other: Timestamp) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// Whole minutes from `self` until `later`, zero if `later` is not after `self`.
    pub fn minutes_until(self, later: Timestamp) -> Minutes {
        let ms = later.ms_since(self).max(0);
        u32::try_from(ms / MINUTE_MS).unwrap_or(u32::MAX)
    }

    /// The civil UTC date and time of this timestamp.
    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(DAY_MS);
        let ms_of_day = self.0.rem_euclid(DAY_MS);
        let (year, month, day) = civil_from_days(days);
        let jan1 = days_from_civil(year, 1, 1);
        Civil {
            year,
            month,
            day,
            hour: (ms_of_day / HOUR_MS) as u32,
            minute: ((ms_of_day % HOUR_MS) / MINUTE_MS) as u32,
            second: ((ms_of_day % MINUTE_MS) / 1000) as u32,
            millis: (ms_of_day % 1000) as u32,
            day_of_year: (days - jan1 + 1) as u32,
        }
    }

    /// Builds a timestamp from a civil UTC date and time; `None` if a field is out of range.
    pub fn from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let ms = days
            .checked_mul(DAY_MS)?
            .checked_add(i64::from(hour) * HOUR_MS + i64::from(minute) * MINUTE_MS + i64::from(second.min(59)) * 1000)?;
        Some(Timestamp(ms))
    }

    /// Parses an RFC 3339 timestamp such as `2026-01-01T00:00:00Z` or
    /// `2026-01-01T09:30:00.250+02:00`. The time in UTC must be within
    /// [`RFC3339_MIN`](Self::RFC3339_MIN)..=[`RFC3339_MAX`](Self::RFC3339_MAX), so that its
    /// [`Display`](fmt::Display) (UTC) parses again: `0000-01-01T00:00:00+01:00` is refused.
    pub fn parse_rfc3339(input: &str) -> Result<Self, ParseTimeError> {
        let err = |reason| ParseTimeError { input: input.to_owned(), reason };
        let b = input.as_bytes();
        if b.len() < 20 {
            return Err(err("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<u32, ParseTimeError> {
            let s = input.get(range).ok_or_else(|| err("not ASCII"))?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err("expected digits"));
            }
            s.parse::<u32>().map_err(|_| err("expected digits"))
        };
        if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
            return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut i = 19;
        let mut millis = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err("empty fraction of a second"));
            }
            let frac = &input[start..i.min(start + 3)];
            millis = frac.parse::<i64>().map_err(|_| err("bad fraction"))? * 10i64.pow(3 - frac.len() as u32);
        }
        let offset_ms = match b.get(i) {
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let h = i64::from(num(i + 1..i + 3)?);
                let m = i64::from(num(i + 4..i + 6)?);
                if h > 23 || m > 59 {
                    return Err(err("offset out of range"));
                }
                let o = h * HOUR_MS + m * MINUTE_MS;
                if sign == b'+' { o } else { -o }
            }
            _ => return Err(err("expected Z or an offset like +02:00 at the end")),
        };
        let t = Timestamp::from_civil(i64::from(year), month, day, hour, minute, second).ok_or_else(|| err("date or time out of range"))?;
        let t = t.plus_ms(millis - offset_ms);
        if !(Self::RFC3339_MIN..=Self::RFC3339_MAX).contains(&t) {
            return Err(err("outside years 0000..9999 in UTC"));
        }
        Ok(t)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with milliseconds only when they are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.civil();
        if (0..=9999).contains(&c.year) {
            // The common case without the formatting machinery (the host writes two of
            // these for every request): the same text as the `write!` below.
            let mut b = *b"0000-00-00T00:00:00.000Z";
            let digits = |b: &mut [u8], mut n: u32| {
                for d in b.iter_mut().rev() {
                    *d = b'0' + (n % 10) as u8;
                    n /= 10;
                }
            };
            digits(&mut b[0..4], c.year as u32);
            digits(&mut b[5..7], c.month);
            digits(&mut b[8..10], c.day);
            digits(&mut b[11..13], c.hour);
            digits(&mut b[14..16], c.minute);
            digits(&mut b[17..19], c.second);
            let len = if c.millis != 0 {
                digits(&mut b[20..23], c.millis);
                24
            } else {
                b[19] = b'Z';
                20
            };
            // Only ASCII digits and separators were written.
            return f.write_str(std::str::from_utf8(&b[..len]).map_err(|_| fmt::Error)?);
        }
        write!(f, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)?;
        if c.millis != 0 {
            write!(f, ".{:03}", c.millis)?;
        }
        f.write_str("Z")
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public-domain algorithms).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {

    #[test]
    fn display_is_the_padded_rfc3339_text_across_the_range() {
        let reference = |t: Timestamp| {
            let c = t.civil();
            let mut s = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second);
            if c.millis != 0 {
                s += &format!(".{:03}", c.millis);
            }
            s + "Z"
        };
        use crate::rng::KmsRng as _;
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut samples = vec![Timestamp::RFC3339_MIN, Timestamp::RFC3339_MAX, Timestamp::from_unix_ms(0), Timestamp::from_unix_ms(-1)];
        samples.extend([i64::MIN, i64::MAX, -62_167_219_200_001, 253_402_300_800_000].map(Timestamp::from_unix_ms));
        for _ in 0..10_000 {
            let ms = (rng.next_u64() % 400_000_000_000_000) as i64 - 100_000_000_000_000;
            samples.push(Timestamp::from_unix_ms(ms));
            samples.push(Timestamp::from_unix_ms(ms - ms % 1000));
        }
        for t in samples {
            assert_eq!(t.to_string(), reference(t), "{t:?}");
        }
    }

    use super::*;

    #[test]
    fn rfc3339_round_trips_and_knows_the_epoch() {
        let t = Timestamp::parse_rfc3339("2026-11-26T07:00:15Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-26T07:00:15Z");
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), Timestamp::EPOCH);
        let with_offset = Timestamp::parse_rfc3339("2026-11-26T09:00:15.250+02:00").unwrap();
        assert_eq!(with_offset.to_string(), "2026-11-26T07:00:15.250Z");
    }

    #[test]
    fn rfc3339_rejects_nonsense_with_a_reason() {
        for bad in ["", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01 00:00:00", "yesterday at noon!!"] {
            let e = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(e.to_string().contains("invalid RFC 3339"), "{e}");
        }
    }

    #[test]
    fn rfc3339_covers_years_0000_to_9999_in_utc_and_no_more() {
        for (text, limit) in [("0000-01-01T00:00:00Z", Timestamp::RFC3339_MIN), ("9999-12-31T23:59:59.999Z", Timestamp::RFC3339_MAX)] {
            assert_eq!(Timestamp::parse_rfc3339(text).unwrap(), limit);
            assert_eq!(limit.to_string(), text);
        }
        // An offset must not carry the time out of the range Display can write.
        assert_eq!(Timestamp::parse_rfc3339("0000-01-01T01:00:00+01:00").unwrap(), Timestamp::RFC3339_MIN);
        for bad in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999-00:01"] {
            let e = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(e.to_string().contains("outside years 0000..9999"), "{e}");
        }
    }

    #[test]
    fn civil_day_of_year() {
        let t = Timestamp::from_civil(2024, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(t.civil().day_of_year, 366);
        let t = Timestamp::from_civil(2026, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(t.civil().day_of_year, 60);
        assert_eq!(Timestamp::from_civil(1969, 12, 31, 0, 0, 0).unwrap().as_unix_ms(), -DAY_MS);
    }

    #[test]
    fn minutes_until_floors_and_never_goes_negative() {
        let t = Timestamp::from_unix_ms(0);
        assert_eq!(t.minutes_until(t.plus_ms(119_999)), 1);
        assert_eq!(t.plus_days(1).minutes_until(t), 0);
        assert_eq!(t.minutes_until(t.plus_days(180)), 259_200);
    }
}
