//! The generator's calendar. Dates are day numbers (days since 1970-01-01, Arrow's `Date32`) so
//! that draws and arithmetic are on plain integers; chrono converts between them and calendar
//! dates. Months are counted as integers too. Also the data period, [`Window`].

use chrono::{Datelike, NaiveDate};

use super::SynthOptions;
use crate::error::{Error, Result};

/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// The day number of a calendar date. Callers pass real dates in years [`Window::new`] allows,
/// so the date always exists.
pub(super) fn ymd(year: i32, month: u32, day: u32) -> i32 {
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("a real calendar date");
    date.num_days_from_ce() - UNIX_EPOCH_FROM_CE
}

/// The calendar date of a day number (the generator's days lie within a few centuries of 1970).
pub(super) fn date(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + UNIX_EPOCH_FROM_CE)
        .expect("a day within chrono's calendar")
}

pub(super) fn year(day: i32) -> i32 {
    date(day).year()
}

/// Months since year 0, so months can be counted and stepped with integers.
pub(super) fn month_index(day: i32) -> i32 {
    let date = date(day);
    date.year() * 12 + date.month0() as i32
}

pub(super) fn month_first(mi: i32) -> i32 {
    ymd(mi.div_euclid(12), mi.rem_euclid(12) as u32 + 1, 1)
}

pub(super) fn month_last(mi: i32) -> i32 {
    month_first(mi + 1) - 1
}

/// The data period, both ends inclusive, and the span over which a drifting partner drifts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) start: i32,
    pub(super) end: i32,
    /// The last two full years of the data (all of it when shorter): a drifting partner's effect
    /// is its `from` value up to `drift_start` and its `to` value from `drift_end` on.
    pub(super) drift_start: i32,
    pub(super) drift_end: i32,
}

impl Window {
    pub(super) fn new(opts: &SynthOptions) -> Result<Window> {
        if !(1900..=2200).contains(&opts.start_year) || opts.years > 50 {
            return Err(Error::Usage(format!(
                "synthetic data needs a start year in 1900..=2200 and at most 50 years (got {} and {})",
                opts.start_year, opts.years
            )));
        }
        let start = ymd(opts.start_year, 1, 1);
        let end = ymd(opts.start_year + opts.years as i32, 3, 31);
        let last_full = opts.start_year + opts.years as i32 - 1;
        let drift_start = ymd(last_full - 1, 1, 1).max(start);
        let drift_end = ymd(last_full, 12, 31).min(end);
        let (drift_start, drift_end) = if drift_end > drift_start {
            (drift_start, drift_end)
        } else {
            (start, end)
        };
        Ok(Window {
            start,
            end,
            drift_start,
            drift_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_and_months() {
        assert_eq!(ymd(1970, 1, 1), 0);
        assert_eq!(ymd(2000, 3, 1), 11_017);
        assert_eq!(date(-1), NaiveDate::from_ymd_opt(1969, 12, 31).unwrap());
        assert_eq!(year(ymd(2023, 12, 31)), 2023);
        for z in ymd(1899, 1, 1)..ymd(2101, 1, 1) {
            assert_eq!(ymd(year(z), date(z).month(), date(z).day()), z);
            let mi = month_index(z);
            assert!(month_first(mi) <= z && z <= month_last(mi));
            assert_eq!(month_last(mi) + 1, month_first(mi + 1));
        }
        for (y, m, last) in [(2024, 2, 29), (1900, 2, 28), (2000, 2, 29), (2025, 4, 30)] {
            assert_eq!(month_last(month_index(ymd(y, m, 1))), ymd(y, m, last));
        }
        let mi = month_index(ymd(2025, 12, 15));
        assert_eq!(
            date(month_first(mi + 1)),
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
    }
}
