//! RFC 3339 timestamps as Unix seconds, for event tables (exposures and
//! conversions) and the campaign files
//! (`examples/ATTRIBUTION.md`, C2). A small strict parser rather than a
//! date library, so the accepted text is exactly what the contract says.

use std::fmt::Write as _;

/// 2026-11-01T00:00:00Z, where generated campaign periods start.
pub const NOVEMBER_2026: i64 = 1_793_491_200;

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Appends `secs` as `YYYY-MM-DDTHH:MM:SSZ` (years 0000 to 9999).
pub fn write_utc(out: &mut String, secs: i64) {
    let (days, rest) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    );
}

/// `secs` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(secs: i64) -> String {
    let mut s = String::with_capacity(20);
    write_utc(&mut s, secs);
    s
}

/// Parses an RFC 3339 `date-time` (section 5.6) after trimming whitespace:
/// `T` or `t` between date and time, `Z`, `z` or `±HH:MM` as offset, an
/// optional fraction of a second, which is dropped (the instant's whole
/// second). No leap second (`:60`), no space for `T`, no missing offset.
pub fn parse(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b't')) && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += 1 + digits;
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let local = days_from_civil(year, month, day) * DAY + hour * 3_600 + minute * 60 + second;
    Some(local - offset * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // Checked with GNU date: `date -u -d <text> +%s`.
        for (text, secs) in [
            ("2026-11-01T00:00:00Z", NOVEMBER_2026),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2024-12-31T23:59:59Z", 1_735_689_599),
            ("2026-12-01T00:00:00Z", 1_796_083_200),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
            ("0000-01-01T00:00:00Z", -62_167_219_200),
        ] {
            assert_eq!(parse(text), Some(secs), "{text}");
            assert_eq!(utc(secs), text);
        }
    }

    #[test]
    fn offsets_fractions_and_case() {
        for (text, secs) in [
            ("2026-11-03T14:05:09+08:00", 1_793_685_909),
            ("2026-11-01T00:30:00-05:30", 1_793_512_800),
            ("2026-11-03t06:05:09z", 1_793_685_909),
            ("  2026-11-03T06:05:09Z\n", 1_793_685_909),
            ("2026-11-03T06:05:09.999999Z", 1_793_685_909),
            ("1969-12-31T23:59:59.5Z", -1),
            ("2026-11-03T06:05:09.1+00:00", 1_793_685_909),
        ] {
            assert_eq!(parse(text), Some(secs), "{text}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for text in [
            "",
            "2026-11-03",
            "2026-11-03T06:05:09",
            "2026-11-03 06:05:09Z",
            "2026-11-03T06:05Z",
            "2026-11-03T06:05:60Z",
            "2026-11-03T24:00:00Z",
            "2026-11-31T06:05:09Z",
            "2025-02-29T06:05:09Z",
            "2026-13-01T06:05:09Z",
            "2026-00-01T06:05:09Z",
            "2026-11-03T06:05:09.Z",
            "2026-11-03T06:05:09+0800",
            "2026-11-03T06:05:09+24:00",
            "2026-11-03T06:05:09Zjunk",
            "+2026-11-03T06:05:09Z",
            "2026/11/03T06:05:09Z",
            "2026-1１-03T06:05:09Z",
            "1793685909",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = days_from_civil(1900, 1, 1);
        for days in start..start + 146_097 {
            let secs = days * DAY + 45_296;
            assert_eq!(parse(&utc(secs)), Some(secs));
        }
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }
}
