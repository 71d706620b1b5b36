//! How far a measure reads around its period: the first and last day of data any of its rules
//! looks at (the events' dates, continuous-enrolment segments, look-back and follow-up windows,
//! `window: period`). A period whose reach the data does not cover cannot be measured: a
//! look-back before the data's first day or a follow-up after its last would count units as
//! missing what the extracts simply do not hold.

use chrono::{Days, NaiveDate};

use super::{Anchor, Basis, ComponentKind, Condition, Measure};
use crate::period::Period;

/// The days a measure reads for one period, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

fn shift(d: NaiveDate, days: i64) -> NaiveDate {
    if days >= 0 {
        d.checked_add_days(Days::new(days as u64)).unwrap_or(d)
    } else {
        d.checked_sub_days(Days::new(days.unsigned_abs()))
            .unwrap_or(d)
    }
}

impl Measure {
    /// The days of data the measure reads for `period`.
    /// The days of data the measure's units read for `period`: their anchors, continuous
    /// enrolment and exclusions (each numerator's own windows: [`Measure::component_reach`]).
    pub fn reach(&self, period: &Period) -> Reach {
        let (lo, hi) = self.anchors(period);
        let mut reach = Reach {
            first: lo.min(period.start),
            last: hi.max(period.end),
        };
        let mut widen = |a: NaiveDate, b: NaiveDate| {
            reach.first = reach.first.min(a);
            reach.last = reach.last.max(b);
        };
        for s in self.continuous.iter().flat_map(|c| &c.segments) {
            widen(
                shift(lo, s.window.from as i64),
                shift(hi, s.window.to as i64),
            );
        }
        for c in self.exclusions.iter().map(|e| &e.condition) {
            for arm in c.arms() {
                let (from, to) = self.offsets(arm, 0);
                widen(shift(lo, from), shift(hi, to));
            }
        }
        reach
    }

    /// The first and last anchor dates the units can have.
    fn anchors(&self, period: &Period) -> (NaiveDate, NaiveDate) {
        match self.basis {
            Basis::Events => {
                let e = self.events.as_ref();
                (
                    shift(period.start, e.map_or(0, |e| e.start_offset as i64)),
                    shift(period.end, e.map_or(0, |e| e.end_offset as i64)),
                )
            }
            Basis::MemberMonths => (period.start, period.end),
            Basis::Members => match self.anchor {
                Anchor::PeriodEnd => (period.end, period.end),
                Anchor::PeriodStart => (period.start, period.start),
            },
        }
    }

    /// The days of data a component reads for `period` beyond [`Measure::reach`]'s (its
    /// numerator's windows; a ratio, both its parts'), if it has a numerator.
    pub fn component_reach(&self, name: &str, period: &Period) -> Option<Reach> {
        self.component_reach_at(name, period, 0)
    }

    fn component_reach_at(&self, name: &str, period: &Period, depth: usize) -> Option<Reach> {
        let c = self.components.iter().find(|c| c.name.value == name)?;
        let base = self.reach(period);
        match &c.kind {
            ComponentKind::Numerator(cond) => {
                let (lo, hi) = self.anchors(period);
                let mut r = base;
                for arm in cond.arms() {
                    let (from, to) = self.offsets(arm, 0);
                    r.first = r.first.min(shift(lo, from));
                    r.last = r.last.max(shift(hi, to));
                }
                Some(r)
            }
            ComponentKind::Ratio {
                numerator,
                denominator,
            } if depth < 8 => {
                let parts = [numerator, denominator]
                    .into_iter()
                    .filter_map(|p| self.component_reach_at(&p.value, period, depth + 1));
                Some(parts.fold(base, |a, b| Reach {
                    first: a.first.min(b.first),
                    last: a.last.max(b.last),
                }))
            }
            _ => None,
        }
    }

    /// Days relative to the anchor a condition reads (`after:` counts from an earlier
    /// numerator's first row, itself somewhere in that numerator's window).
    fn offsets(&self, c: &Condition, depth: usize) -> (i64, i64) {
        let Some(w) = &c.window else { return (0, 0) };
        let (from, to) = (w.value.from as i64, w.value.to as i64);
        let base = c
            .after
            .as_ref()
            .filter(|_| depth < 8)
            .and_then(|name| self.components.iter().find(|k| k.name.value == name.value))
            .and_then(|k| match &k.kind {
                ComponentKind::Numerator(inner) => Some(
                    inner
                        .arms()
                        .map(|a| self.offsets(a, depth + 1))
                        .fold((0, 0), |acc, o| (acc.0.min(o.0), acc.1.max(o.1))),
                ),
                _ => None,
            })
            .unwrap_or((0, 0));
        ((base.0 + from).min(0), (base.1 + to).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(id: &str) -> Measure {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("measures");
        let path = std::fs::read_dir(&root)
            .expect("measures")
            .map(|e| e.expect("entry").path())
            .find(|p| p.file_stem().is_some_and(|s| s.eq_ignore_ascii_case(id)))
            .expect("a shipped measure");
        Measure::load(&path).expect("loads")
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn pcr_reads_the_year_before_its_first_discharge() {
        // Discharges from January 1; enrolment judged over the 365 days before (2024 is a leap year).
        let m = measure("pcr-hh");
        let r = m.reach(&Period::year(2025));
        assert_eq!(r.first, d("2024-01-02"));
        // Discharges to December 1, enrolment to 30 days after: December 31.
        assert_eq!(r.last, d("2025-12-31"));
        let r = m
            .component_reach("observed_readmissions", &Period::year(2025))
            .expect("a numerator");
        assert_eq!(r.last, d("2025-12-31"));
    }

    #[test]
    fn days_to_first_contact_within_a_year_read_a_year_past_the_last_assignment() {
        let m = measure("hh-first");
        let p = Period::year(2025);
        assert_eq!(m.reach(&p).last, d("2025-12-31"));
        let within_30 = m.component_reach("within_30_days", &p).expect("numerator");
        assert_eq!(within_30.last, d("2025-12-31"));
        let median = m.component_reach("median_days", &p).expect("numerator");
        // Assignments to December 1, a contact up to 365 days after.
        assert_eq!(median.last, d("2026-12-01"));
    }

    #[test]
    fn a_member_month_measure_reads_its_year_only() {
        let r = measure("amb-hh").reach(&Period::year(2025));
        assert_eq!((r.first, r.last), (d("2025-01-01"), d("2025-12-31")));
    }
}
