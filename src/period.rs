//! Measurement periods: a calendar year (`2025`), a quarter (`2025Q3`), twelve months ending with
//! a month (`rolling:2025-06`), or whole months given as a date range (`2025-01-01..2025-06-30`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};

use crate::error::Error;

/// A measurement period of whole calendar months, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The years a period may fall in.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2999;

fn month_end(first: NaiveDate) -> NaiveDate {
    first + Months::new(1) - chrono::Days::new(1)
}

impl Period {
    /// Whole months from `start` (a first of month) to `end` (a last of month).
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Period, Error> {
        // Month arithmetic near chrono's last representable date would overflow.
        if !(YEARS.contains(&start.year()) && YEARS.contains(&end.year())) {
            return Err(Error::Usage(format!(
                "period {start}..{end} is not within the years {}..{}",
                YEARS.start(),
                YEARS.end()
            )));
        }
        if start.day() != 1 {
            return Err(Error::Usage(format!(
                "period start {start} is not the first day of a month"
            )));
        }
        if end != month_end(end.with_day(1).expect("day 1")) {
            return Err(Error::Usage(format!(
                "period end {end} is not the last day of a month"
            )));
        }
        if end < start {
            return Err(Error::Usage(format!(
                "period ends ({end}) before it starts ({start})"
            )));
        }
        Ok(Period { start, end })
    }

    pub fn year(year: i32) -> Period {
        Period {
            start: NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year"),
            end: NaiveDate::from_ymd_opt(year, 12, 31).expect("valid year"),
        }
    }

    /// The latest calendar year that ends on or before `cutoff`, the last date with data.
    pub fn latest_full_year(cutoff: NaiveDate) -> Period {
        if cutoff.month() == 12 && cutoff.day() == 31 {
            Period::year(cutoff.year())
        } else {
            Period::year(cutoff.year() - 1)
        }
    }

    /// Each month of the period as (first day, last day).
    pub fn months(&self) -> Vec<(NaiveDate, NaiveDate)> {
        let mut out = Vec::new();
        let mut m = self.start;
        while m <= self.end {
            out.push((m, month_end(m)));
            m = m + Months::new(1);
        }
        out
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for Period {
    type Err = Error;

    fn from_str(s: &str) -> Result<Period, Error> {
        let s = s.trim();
        let bad = || {
            Error::Usage(format!(
                "period {s:?} is not a year (2025), a quarter (2025Q3), twelve months ending with a month (rolling:2025-06) or a range of whole months (2025-01-01..2025-06-30)"
            ))
        };
        if let Some(month) = s.strip_prefix("rolling:") {
            let last =
                NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
            if !YEARS.contains(&last.year()) {
                return Err(bad());
            }
            return Ok(Period {
                start: last - Months::new(11),
                end: month_end(last),
            });
        }
        if let Some((a, b)) = s.split_once("..") {
            let a = NaiveDate::parse_from_str(a, "%Y-%m-%d").map_err(|_| bad())?;
            let b = NaiveDate::parse_from_str(b, "%Y-%m-%d").map_err(|_| bad())?;
            return Period::new(a, b);
        }
        if let Some((y, q)) = s.split_once(['Q', 'q']) {
            let y: i32 = y.parse().map_err(|_| bad())?;
            let q: u32 = q.parse().map_err(|_| bad())?;
            if !(1..=4).contains(&q) || !YEARS.contains(&y) {
                return Err(bad());
            }
            let start = NaiveDate::from_ymd_opt(y, 3 * q - 2, 1).expect("valid quarter");
            return Ok(Period {
                start,
                end: month_end(start + Months::new(2)),
            });
        }
        let y: i32 = s.parse().map_err(|_| bad())?;
        if !YEARS.contains(&y) {
            return Err(bad());
        }
        Ok(Period::year(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn parses_years_quarters_and_ranges() {
        assert_eq!("2025".parse::<Period>().unwrap(), Period::year(2025));
        let q = "2024Q1".parse::<Period>().unwrap();
        assert_eq!((q.start, q.end), (d("2024-01-01"), d("2024-03-31")));
        let r = "2025-02-01..2025-04-30".parse::<Period>().unwrap();
        assert_eq!(r.months().len(), 3);
        assert_eq!(r.months()[0], (d("2025-02-01"), d("2025-02-28")));
        assert!("2025-02-03..2025-04-30".parse::<Period>().is_err());
        assert!("2025Q5".parse::<Period>().is_err());
        assert!("2025-05-01..2025-04-30".parse::<Period>().is_err());
        let r = "rolling:2025-06".parse::<Period>().unwrap();
        assert_eq!((r.start, r.end), (d("2024-07-01"), d("2025-06-30")));
        assert_eq!(r.months().len(), 12);
        assert!("rolling:2025-13".parse::<Period>().is_err());
        // Dates at chrono's ends: refused, not an overflow in month arithmetic.
        assert!("rolling:+262142-12".parse::<Period>().is_err());
        assert!("rolling:-262143-01".parse::<Period>().is_err());
        assert!("+262142-01-01..+262142-12-31".parse::<Period>().is_err());
    }

    #[test]
    fn latest_full_year_needs_december_31() {
        assert_eq!(
            Period::latest_full_year(d("2026-03-31")),
            Period::year(2025)
        );
        assert_eq!(
            Period::latest_full_year(d("2025-12-31")),
            Period::year(2025)
        );
    }
}
