//! Calendar dates as FlexLM writes them (`31-dec-2025`, `1-jan-0` = no expiry) and as its debug
//! logs do (`11/21/2025`), converted to day numbers for arithmetic. UTC throughout.

use std::fmt;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

impl Date {
    /// A valid date, or None.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).contains(&month).then_some(())?;
        (1..=days[month as usize - 1]).contains(&day).then_some(Date { year, month, day })
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    pub fn days(self) -> i64 {
        let y = self.year as i64 - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date of a day number.
    pub fn from_days(z: i64) -> Date {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// The UTC date of a Unix timestamp.
    pub fn of_timestamp(t: i64) -> Date {
        Date::from_days(t.div_euclid(86_400))
    }

    /// Midnight UTC of this date, as a Unix timestamp.
    pub fn timestamp(self) -> i64 {
        self.days() * 86_400
    }

    /// `31-dec-2025` (month name in any case, one- or two-digit day).
    pub fn parse_flexlm(s: &str) -> Option<Date> {
        let mut it = s.split('-');
        let (d, m, y) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let month = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))? as u32 + 1;
        Date::new(y.parse().ok()?, month, d.parse().ok()?)
    }

    /// `11/21/2025` (month/day/year) as in debug-log TIMESTAMP lines.
    pub fn parse_mdy(s: &str) -> Option<Date> {
        let mut it = s.split('/');
        let (m, d, y) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        Date::new(y.trim().parse().ok()?, m.trim().parse().ok()?, d.trim().parse().ok()?)
    }

    /// `2025-12-31` or `2025.1231` (a FlexLM version field that carries a date).
    pub fn parse_iso_or_version(s: &str) -> Option<Date> {
        if let Some((y, md)) = s.split_once('.')
            && y.len() == 4
            && md.len() == 4
        {
            return Date::new(y.parse().ok()?, md[..2].parse().ok()?, md[2..].parse().ok()?);
        }
        let mut it = s.split('-');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if y.len() != 4 || it.next().is_some() {
            return None;
        }
        Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(Date::new(1970, 1, 1).unwrap().days(), 0);
        assert_eq!(Date::new(2000, 3, 1).unwrap().days(), 11_017);
        for z in [-800_000, -1, 0, 59, 60, 11_016, 20_000, 2_932_896] {
            assert_eq!(Date::from_days(z).days(), z);
        }
        assert_eq!(Date::of_timestamp(1_679_283_497).to_string(), "2023-03-20");
    }

    #[test]
    fn flexlm_forms_parse() {
        assert_eq!(Date::parse_flexlm("31-DEC-2025"), Date::new(2025, 12, 31));
        assert_eq!(Date::parse_flexlm("1-jan-0"), Date::new(0, 1, 1));
        assert_eq!(Date::parse_flexlm("30-feb-2025"), None);
        assert_eq!(Date::parse_mdy("11/21/2025"), Date::new(2025, 11, 21));
        assert_eq!(Date::parse_iso_or_version("2022.1231"), Date::new(2022, 12, 31));
        assert_eq!(Date::parse_iso_or_version("2026-02-28"), Date::new(2026, 2, 28));
        assert_eq!(Date::parse_iso_or_version("11.5"), None);
    }
}
