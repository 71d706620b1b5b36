//! Small-cell suppression for published tables, by CMS's rule: no count from 1 to 10 is shown,
//! nor any figure from which one can be worked out; a rate whose denominator is under 30 is not
//! shown. Zero may be shown.
//!
//! A published table is the rows of one measure, component and period: the total and, per
//! stratifier, strata that add up to it. Suppression runs in two passes:
//! 1. primary: a numerator or denominator from 1 to 10 is hidden, with the rate (a rate and a
//!    shown denominator give the numerator back); a denominator from 1 to 10 hides the whole row;
//!    a denominator under 30 hides the rate;
//! 2. complementary: within a stratifier, when exactly one cell of a column is hidden and the
//!    total is shown, the hidden one is the total minus the others; so the smallest other
//!    non-zero cell is hidden too (and its rate). Repeated until nothing changes.

use std::collections::BTreeMap;

use crate::results::ResultRow;

/// The largest count that may not be shown (counts 1..=SMALL_CELL are hidden).
pub const SMALL_CELL: f64 = 10.0;
/// The smallest denominator whose rate may be shown.
pub const MIN_RATE_DENOMINATOR: f64 = 30.0;

/// Why a figure is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A count from 1 to 10.
    SmallCell,
    /// Hidden so that a small cell cannot be worked out from the total.
    Complementary,
    /// A rate over fewer than 30.
    SmallDenominator,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::SmallCell => "count 1-10",
            Reason::Complementary => "complementary",
            Reason::SmallDenominator => "denominator under 30",
        }
    }
}

/// A result row as published: each figure shown or hidden with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    pub row: ResultRow,
    pub numerator: Result<f64, Reason>,
    pub denominator: Result<f64, Reason>,
    pub rate: Result<Option<f64>, Reason>,
}

fn small(x: f64) -> bool {
    x > 0.0 && x <= SMALL_CELL
}

/// Apply suppression to result rows (any mix of measures, components and periods).
pub fn suppress(rows: &[ResultRow]) -> Vec<PublishedRow> {
    let mut out: Vec<PublishedRow> = rows
        .iter()
        .map(|r| {
            let mut p = PublishedRow {
                row: r.clone(),
                numerator: Ok(r.numerator),
                denominator: Ok(r.denominator),
                rate: Ok(r.rate),
            };
            if small(r.denominator) {
                p.denominator = Err(Reason::SmallCell);
                p.numerator = Err(Reason::SmallCell);
                p.rate = Err(Reason::SmallCell);
            }
            if small(r.numerator) {
                p.numerator = Err(Reason::SmallCell);
                p.rate = Err(Reason::SmallCell);
            }
            // The rule is about reliability: counts of 11 or more may stand beside a hidden
            // rate. A count component's "rate" is its numerator, so it has no rate to hide.
            if p.rate.is_ok()
                && r.rate.is_some()
                && r.denominator < MIN_RATE_DENOMINATOR
                && r.unit != "count"
            {
                p.rate = Err(Reason::SmallDenominator);
            }
            p
        })
        .collect();

    // Tables: (measure, component, period) -> stratifier -> row indexes; the total row apart.
    type Key = (String, String, chrono::NaiveDate, chrono::NaiveDate);
    let mut totals: BTreeMap<Key, usize> = BTreeMap::new();
    let mut groups: BTreeMap<(Key, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let key = (
            r.measure.clone(),
            r.component.clone(),
            r.period_start,
            r.period_end,
        );
        if r.stratifier == "total" {
            totals.insert(key, i);
        } else {
            groups
                .entry((key, r.stratifier.clone()))
                .or_default()
                .push(i);
        }
    }
    loop {
        let mut changed = false;
        for ((key, _), members) in &groups {
            let Some(&t) = totals.get(key) else { continue };
            for column in [Column::Numerator, Column::Denominator] {
                if column.get(&out[t]).is_err() {
                    continue;
                }
                let hidden = members
                    .iter()
                    .filter(|&&i| column.get(&out[i]).is_err())
                    .count();
                if hidden != 1 {
                    continue;
                }
                // Hide the smallest shown non-zero cell (ties: the first in row order).
                let pick = members
                    .iter()
                    .filter(|&&i| column.get(&out[i]).is_ok_and(|v| v > 0.0))
                    .min_by(|&&a, &&b| {
                        column
                            .value(&rows[a])
                            .total_cmp(&column.value(&rows[b]))
                            .then(a.cmp(&b))
                    });
                if let Some(&i) = pick {
                    column.hide(&mut out[i]);
                    changed = true;
                }
                // With no other non-zero cell the hidden one equals the total minus zeros:
                // the total itself must go.
                else {
                    column.hide(&mut out[t]);
                    changed = true;
                }
            }
        }
        if !changed {
            return out;
        }
    }
}

#[derive(Clone, Copy)]
enum Column {
    Numerator,
    Denominator,
}

impl Column {
    fn get(self, p: &PublishedRow) -> Result<f64, Reason> {
        match self {
            Column::Numerator => p.numerator,
            Column::Denominator => p.denominator,
        }
    }

    fn value(self, r: &ResultRow) -> f64 {
        match self {
            Column::Numerator => r.numerator,
            Column::Denominator => r.denominator,
        }
    }

    fn hide(self, p: &mut PublishedRow) {
        match self {
            Column::Numerator => p.numerator = Err(Reason::Complementary),
            Column::Denominator => {
                p.denominator = Err(Reason::Complementary);
                // A shown numerator and rate would give the denominator back.
                if p.numerator.is_ok() {
                    p.numerator = Err(Reason::Complementary);
                }
            }
        }
        if p.rate.is_ok() {
            p.rate = Err(Reason::Complementary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stratifier: &str, stratum: &str, n: f64, d: f64) -> ResultRow {
        crate::results::test_row("7_day", stratifier, stratum, n, d)
    }

    #[test]
    fn counts_one_to_ten_are_hidden_zero_and_eleven_shown() {
        let p = suppress(&[row("total", "total", 0.0, 40.0)]);
        assert_eq!(p[0].numerator, Ok(0.0));
        assert_eq!(p[0].rate, Ok(Some(0.0)));
        let p = suppress(&[row("total", "total", 10.0, 40.0)]);
        assert_eq!(p[0].numerator, Err(Reason::SmallCell));
        assert_eq!(p[0].rate, Err(Reason::SmallCell));
        assert_eq!(p[0].denominator, Ok(40.0));
        let p = suppress(&[row("total", "total", 11.0, 40.0)]);
        assert_eq!(p[0].numerator, Ok(11.0));
        let p = suppress(&[row("total", "total", 1.0, 1.0)]);
        assert_eq!(p[0].denominator, Err(Reason::SmallCell));
    }

    #[test]
    fn a_count_component_is_its_numerator_and_has_no_rate_to_hide() {
        let mut r = row("total", "total", 16.0, 16.0);
        r.unit = "count".into();
        r.rate = Some(16.0);
        let p = suppress(&[r]);
        assert_eq!(p[0].numerator, Ok(16.0));
        assert_eq!(p[0].rate, Ok(Some(16.0)));
    }

    #[test]
    fn rates_over_fewer_than_thirty_are_hidden() {
        let p = suppress(&[row("total", "total", 15.0, 29.0)]);
        assert_eq!(p[0].numerator, Ok(15.0));
        assert_eq!(p[0].denominator, Ok(29.0));
        assert_eq!(p[0].rate, Err(Reason::SmallDenominator));
        let p = suppress(&[row("total", "total", 15.0, 30.0)]);
        assert_eq!(p[0].rate, Ok(Some(50.0)));
    }

    #[test]
    fn a_lone_hidden_cell_gets_a_complement_so_it_cannot_be_derived() {
        // Numerators 5 + 20 + 30 = 55 shown in total: 5 alone hidden would be 55 - 50.
        let rows = [
            row("total", "total", 55.0, 300.0),
            row("hhp", "A", 5.0, 100.0),
            row("hhp", "B", 20.0, 100.0),
            row("hhp", "C", 30.0, 100.0),
        ];
        let p = suppress(&rows);
        assert_eq!(p[1].numerator, Err(Reason::SmallCell));
        assert_eq!(
            p[2].numerator,
            Err(Reason::Complementary),
            "the smallest other cell"
        );
        assert_eq!(p[2].rate, Err(Reason::Complementary));
        assert_eq!(p[3].numerator, Ok(30.0));
        assert_eq!(p[0].numerator, Ok(55.0));
    }

    #[test]
    fn no_hidden_cell_can_be_worked_out_from_the_total() {
        // Property over many tables: for every stratifier, if the total is shown, either no cell
        // is hidden or at least two are (or the only other cells are zeros and the total hides).
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..500 {
            let cells: Vec<f64> = (0..(2 + next(4))).map(|_| next(40) as f64).collect();
            let total: f64 = cells.iter().sum();
            let mut rows = vec![row("total", "total", total, 1000.0)];
            for (i, c) in cells.iter().enumerate() {
                rows.push(row("mco", &format!("M{i}"), *c, 100.0));
            }
            let p = suppress(&rows);
            let hidden = p[1..].iter().filter(|r| r.numerator.is_err()).count();
            if p[0].numerator.is_ok() {
                assert_ne!(hidden, 1, "{cells:?}: one hidden cell is derivable");
            }
            for (r, c) in p[1..].iter().zip(&cells) {
                if small(*c) {
                    assert!(r.numerator.is_err(), "{cells:?}");
                }
            }
        }
    }

    #[test]
    fn a_hidden_denominator_takes_its_numerator_and_rate() {
        let rows = [
            row("total", "total", 12.0, 60.0),
            row("age_band", "6-17", 2.0, 8.0),
            row("age_band", "18-64", 10.0, 52.0),
        ];
        let p = suppress(&rows);
        assert_eq!(p[1].denominator, Err(Reason::SmallCell));
        // 18-64's denominator would be 60 - 8: hidden as the complement, with its numerator.
        assert_eq!(p[2].denominator, Err(Reason::Complementary));
        assert!(p[2].numerator.is_err() && p[2].rate.is_err());
    }
}
