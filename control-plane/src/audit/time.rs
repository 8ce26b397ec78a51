//! Timestamps for audit queries and exports: RFC 3339 (UTC) formatting of
//! Unix milliseconds, and parsing of `since` / `until` values (RFC 3339,
//! a plain date, or a duration before now such as `30d`).
//!
//! Calendar arithmetic uses Howard Hinnant's `days_from_civil` /
//! `civil_from_days` (proleptic Gregorian calendar), so no date crate is needed.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// The current time, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds,
/// e.g. `2026-03-01T12:30:05.042Z`.
pub fn format_rfc3339(ts_ms: i64) -> String {
    let days = ts_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = ts_ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Parses a `since` / `until` value into Unix milliseconds: an RFC 3339
/// timestamp (`2026-03-01T12:00:00Z`, `2026-03-01T14:00:00.5+02:00`), a date
/// (`2026-03-01`, midnight UTC), or a duration before `now_ms` (`90s`, `15m`,
/// `12h`, `30d`, `2w`). The error says what is accepted.
pub fn parse_instant(value: &str, now_ms: i64) -> Result<i64, String> {
    let v = value.trim();
    if let Some(ms) = parse_duration_ms(v) {
        return Ok(now_ms.saturating_sub(ms));
    }
    parse_rfc3339(v).ok_or_else(|| {
        format!(
            "{value:?} is neither a duration before now (e.g. 90s, 15m, 12h, 30d, 2w) \
             nor an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z) or date (2026-03-01)"
        )
    })
}

/// `<digits><s|m|h|d|w>` as milliseconds.
fn parse_duration_ms(v: &str) -> Option<i64> {
    let unit = v.chars().last()?;
    let per = match unit {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => MS_PER_DAY,
        'w' => 7 * MS_PER_DAY,
        _ => return None,
    };
    let digits = &v[..v.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(per)
}

/// RFC 3339 (`T` or space between date and time, `Z` or `±HH:MM`), or a bare date.
fn parse_rfc3339(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if b.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ms = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Milliseconds: the first three digits, right-padded with zeros.
        frac_ms = frac[..n]
            .iter()
            .chain([b'0'; 3].iter())
            .take(3)
            .fold(0, |ms, c| ms * 10 + i64::from(c - b'0'));
        rest = &frac[n..];
    }
    let offset_min = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let (oh, om) = (digits(&[*hh1, *hh2])?, digits(&[*mm1, *mm2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    Some(date_ms + ((h * 60 + mi - offset_min) * 60 + s) * 1000 + frac_ms)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_772_368_205_042),
            "2026-03-01T12:30:05.042Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 951_782_400_000, 1_772_368_205_042, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        let utc = parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-03-01T14:00:00+02:00"), Some(utc));
        assert_eq!(
            parse_rfc3339("2026-03-01 07:00:00.5-05:00"),
            Some(utc + 500)
        );
        assert_eq!(
            parse_rfc3339("2026-03-01T12:00:00.123456Z"),
            Some(utc + 123)
        );
        assert_eq!(parse_rfc3339("2026-03-01"), Some(utc - 12 * 3_600_000));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-03-01T12:00:00",
            "2026-03-01T25:00:00Z",
            "2026-03-01T12:00:00.Z",
            "2026-03-01T12:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_count_back_from_now() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_instant("90s", now), Ok(now - 90_000));
        assert_eq!(parse_instant("15m", now), Ok(now - 900_000));
        assert_eq!(parse_instant("12h", now), Ok(now - 43_200_000));
        assert_eq!(parse_instant("30d", now), Ok(now - 30 * MS_PER_DAY));
        assert_eq!(parse_instant("2w", now), Ok(now - 14 * MS_PER_DAY));
        let err = parse_instant("30 days", now).unwrap_err();
        assert!(err.contains("30d") && err.contains("RFC 3339"), "{err}");
        assert!(parse_instant("d", now).is_err());
        assert!(parse_instant("-5d", now).is_err());
    }
}
