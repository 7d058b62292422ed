//! Budget periods: calendar spans in UTC, named so a data team reads them at a
//! glance ("2026-11", "2026-Q4", "week of 2026-11-23").

use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    pub fn label(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// The name of the period that contains `unix_seconds`.
    pub fn key(self, unix_seconds: i64) -> String {
        let days = unix_seconds.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        match self {
            Period::Day => format!("{y:04}-{m:02}-{d:02}"),
            Period::Week => {
                // 1970-01-01 was a Thursday: shift so weeks start on Monday.
                let monday = days - (days + 3).rem_euclid(7);
                let (y, m, d) = civil_from_days(monday);
                format!("week of {y:04}-{m:02}-{d:02}")
            }
            Period::Month => format!("{y:04}-{m:02}"),
            Period::Quarter => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
            Period::Year => format!("{y:04}"),
        }
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the era-based
/// algorithm: 400-year eras of 146,097 days starting on 0000-03-01).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_keys() {
        // 2026-11-23 00:00:00 UTC, a Monday.
        let t = 1_795_392_000;
        assert_eq!(Period::Day.key(t), "2026-11-23");
        assert_eq!(Period::Week.key(t), "week of 2026-11-23");
        assert_eq!(Period::Week.key(t + 6 * 86_400 + 86_399), "week of 2026-11-23");
        assert_eq!(Period::Week.key(t - 1), "week of 2026-11-16");
        assert_eq!(Period::Month.key(t), "2026-11");
        assert_eq!(Period::Quarter.key(t), "2026-Q4");
        assert_eq!(Period::Year.key(t), "2026");
        assert_eq!(Period::Day.key(0), "1970-01-01");
        assert_eq!(Period::Day.key(951_782_400), "2000-02-29");
        assert_eq!(Period::Month.key(-1), "1969-12");
        assert_eq!(Period::Quarter.key(1_790_812_800 - 1), "2026-Q3");
    }
}
