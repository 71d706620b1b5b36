//! Whether the data covers what a run or report would measure, checked before anything is
//! computed: a period must lie within the claims (or, where the data-quality policy allows, is
//! measured to the data's last whole month with a caveat), and each measure's reach (its
//! look-backs and follow-up windows, [`crate::measure::reach`]) must lie within them too, or the
//! measure is not reportable for that period. A number computed over days the extracts do not
//! hold would count as missing what is merely absent.

use chrono::{Datelike, Days, NaiveDate};

use crate::error::{Error, Result};
use crate::measure::Measure;
use crate::period::Period;
use crate::quality::{OnFailure, Policy};

/// The days the data covers: the claims' first day (when known) to the data's last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub first: Option<NaiveDate>,
    pub last: NaiveDate,
}

impl Coverage {
    /// The coverage the data show (`found_first` to `found_last`), or what the options state
    /// (`--data-from`, `--data-through`) where they do.
    pub fn of(
        found_first: Option<NaiveDate>,
        found_last: NaiveDate,
        opts: &crate::quality::QualityOptions,
    ) -> Coverage {
        Coverage {
            first: opts.data_from.or(found_first),
            last: opts.data_through.unwrap_or(found_last),
        }
    }
}

/// The coverage the options state, for a manifest's options (only what was stated, so a run
/// without them records what it always did).
pub fn stated(opts: &crate::quality::QualityOptions) -> Vec<(&'static str, serde_json::Value)> {
    [
        ("data_from", opts.data_from),
        ("data_through", opts.data_through),
    ]
    .into_iter()
    .filter_map(|(k, d)| d.map(|d| (k, serde_json::json!(d.to_string()))))
    .collect()
}

/// The period to measure: the one asked for when the data covers it; when the data ends before
/// it does and the policy says `partial_period: caveat`, its months up to the data's last whole
/// month, with the caveat to publish. Otherwise an error that says why and what to do.
pub fn period(asked: Period, data: Coverage, policy: &Policy) -> Result<(Period, Option<String>)> {
    if asked.start > data.last {
        return Err(Error::Usage(format!(
            "the period {} to {} starts after the data's last day, {}: the extracts hold nothing \
             to measure in it (choose a period ending on or before {})",
            asked.start, asked.end, data.last, data.last
        )));
    }
    if asked.end <= data.last {
        return Ok((asked, None));
    }
    match policy.partial_period {
        OnFailure::Refuse => Err(Error::Usage(format!(
            "the period {} to {} ends after the data's last day, {}: its enrolment would run \
             past the claims. Choose a period ending on or before {}, or set \
             `partial_period: caveat` in the data-quality policy to measure it to the data's \
             last whole month, with a caveat",
            asked.start, asked.end, data.last, data.last
        ))),
        OnFailure::Caveat => {
            // The last day of the last month the data covers whole.
            let next = data.last + Days::new(1);
            let end = if next.day() == 1 {
                data.last
            } else {
                NaiveDate::from_ymd_opt(data.last.year(), data.last.month(), 1)
                    .and_then(|d| d.pred_opt())
                    .expect("a month before the data's last")
            };
            if end < asked.start {
                return Err(Error::Usage(format!(
                    "the period {} to {} holds no whole month of data (the data end {})",
                    asked.start, asked.end, data.last
                )));
            }
            let cut = Period {
                start: asked.start,
                end,
            };
            Ok((
                cut,
                Some(format!(
                    "Partial period: the data end {}, so the period {} to {} is measured {} to {} \
                     (year to date): enrolment, events and follow-up windows stop there \
                     (data-quality policy: partial_period: caveat)",
                    data.last, asked.start, asked.end, cut.start, cut.end
                )),
            ))
        }
    }
}

/// Why a measure is not reportable for a period the data covers only in part, if it is not
/// (its units' anchors, continuous enrolment or exclusions read outside the data).
pub fn measure(m: &Measure, period: &Period, data: Coverage) -> Option<String> {
    outside(m.reach(period), period, data)
}

/// The components of a reportable measure whose own windows read outside the data, and why:
/// computed, but never published as a number.
pub fn components(m: &Measure, period: &Period, data: Coverage) -> Vec<(String, String)> {
    m.components
        .iter()
        .filter_map(|c| {
            let r = m.component_reach(&c.name.value, period)?;
            outside(r, period, data).map(|why| (c.name.value.clone(), why))
        })
        .collect()
}

fn outside(r: crate::measure::reach::Reach, period: &Period, data: Coverage) -> Option<String> {
    if let Some(first) = data.first
        && r.first < first
    {
        return Some(format!(
            "not reportable for {} to {}: its rules read from {} (look-back), before the claims' \
             first day, {}",
            period.start, period.end, r.first, first
        ));
    }
    (r.last > data.last).then(|| {
        format!(
            "not reportable for {} to {}: its rules read to {} (follow-up), after the data's last \
             day, {}",
            period.start, period.end, r.last, data.last
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn data(first: &str, last: &str) -> Coverage {
        Coverage {
            first: Some(d(first)),
            last: d(last),
        }
    }

    fn policy(partial: OnFailure) -> Policy {
        let mut p = Policy::default();
        p.partial_period = partial;
        p
    }

    #[test]
    fn a_period_after_the_data_is_refused_whatever_the_policy() {
        for p in [OnFailure::Refuse, OnFailure::Caveat] {
            let e = period(
                Period::year(2027),
                data("2023-01-01", "2026-03-31"),
                &policy(p),
            );
            assert!(e.unwrap_err().to_string().contains("starts after"));
        }
    }

    #[test]
    fn a_period_ending_after_the_data_is_refused_or_cut_to_its_last_whole_month() {
        let cov = data("2023-01-01", "2026-03-31");
        let e = period(Period::year(2026), cov, &policy(OnFailure::Refuse)).unwrap_err();
        assert!(e.to_string().contains("partial_period: caveat"), "{e}");
        let (p, caveat) = period(Period::year(2026), cov, &policy(OnFailure::Caveat)).unwrap();
        assert_eq!((p.start, p.end), (d("2026-01-01"), d("2026-03-31")));
        assert!(caveat.unwrap().contains("year to date"));
        // Data ending mid-month: the month before is the last whole one.
        let (p, _) = period(
            Period::year(2026),
            data("2023-01-01", "2026-03-30"),
            &policy(OnFailure::Caveat),
        )
        .unwrap();
        assert_eq!(p.end, d("2026-02-28"));
        // The data's last day is the period's: covered.
        let (p, caveat) = period(Period::year(2025), cov, &policy(OnFailure::Refuse)).unwrap();
        assert_eq!(p, Period::year(2025));
        assert!(caveat.is_none());
    }
}
