//! Small-cell suppression for published tables, by CMS's rule: no count from 1 to 10 is shown,
//! nor any figure from which one can be worked out; a rate whose denominator is under 30 is not
//! shown. Zero may be shown.
//!
//! A published table is the rows of one measure and period: every component's total and, per
//! stratifier, strata that add up to it (quarters are a stratifier of their year). What a reader
//! can do with it is linear algebra: each stratifier gives, per component and column, the
//! equation "the strata add up to the total"; two columns equal in every row (components sharing
//! a denominator, a count component's numerator and denominator) are one figure. Suppression:
//! 1. primary: a numerator or denominator from 1 to 10 is hidden, with the rate; a denominator
//!    from 1 to 10 hides the whole row; a percentage whose denominator less its numerator (the
//!    units without the outcome) is 1 to 10 hides its numerator; a rate over fewer than 30 is
//!    hidden with its numerator (the two shown would give it back);
//! 2. the audit: a hidden figure is recoverable when its column is in the span of the equations
//!    restricted to the hidden cells. No count of 1 to 10 may be recoverable: a hidden cell, or a
//!    count made of cells: a percentage's units without the outcome, the difference of
//!    two nested numerators over one denominator (followed up in 30 days but not in 7), the hidden
//!    strata of an equation whose total is shown. While one is, the smallest shown cell of an
//!    equation that reaches it is hidden too (complementary suppression).
//!
//! Which of two hidden cells is the small one must not show: every hidden count reads `DS` alike.
//! A rate hidden because its shown denominator is under 30 reads `SD`, and so does its numerator.
//! That rule is about reliability, not disclosure: such a numerator is protected only when it is
//! itself 1 to 10, and a rate it hides may still follow from other components (a length of stay
//! from its days and discharges).

use std::collections::BTreeMap;

use crate::measure::Unit;
use crate::results::{Grouping, ResultRow};

/// The largest count that may not be shown (counts 1..=SMALL_CELL are hidden).
pub const SMALL_CELL: f64 = 10.0;
/// The smallest denominator whose rate may be shown.
pub const MIN_RATE_DENOMINATOR: f64 = 30.0;

/// Why a figure is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A count from 1 to 10, or a figure that gives one with a shown figure.
    SmallCell,
    /// Hidden so that a small cell cannot be worked out from the others.
    Complementary,
    /// A rate over fewer than 30 (and its numerator, which would give it back).
    SmallDenominator,
}

impl Reason {
    /// The marker a published cell shows: `DS` (data suppressed: a small count, or a figure that
    /// would give one back; the two are not told apart) or `SD` (small denominator).
    pub fn marker(self) -> &'static str {
        match self {
            Reason::SmallCell | Reason::Complementary => "DS",
            Reason::SmallDenominator => "SD",
        }
    }

    /// The reason as published: primary and complementary suppression read alike.
    pub fn name(self) -> &'static str {
        match self {
            Reason::SmallCell | Reason::Complementary => "small count",
            Reason::SmallDenominator => "denominator under 30",
        }
    }
}

/// The legend of the markers, for every report and table that shows them.
pub fn legend() -> String {
    format!(
        "DS = data suppressed: a count from 1 to {n}, or a figure from which one could be worked \
         out (by difference from a total, from the other strata or quarters, or from the \
         denominator). SD = small denominator: the rate, and the numerator that would give it \
         back, are not shown when the denominator is under {d}. Zero may be shown.",
        n = SMALL_CELL,
        d = MIN_RATE_DENOMINATOR
    )
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

/// A percentage: the numerator's units are some of the denominator's.
fn nested_in_denominator(unit: Unit) -> bool {
    unit == Unit::Percent
}

/// Numerators that count units or events (so a difference of two is a count too).
fn counts_units(unit: Unit) -> bool {
    match unit {
        Unit::Percent | Unit::Per1000MemberMonths | Unit::Per1000Members | Unit::Count => true,
        Unit::Days | Unit::Ratio | Unit::MedianDays | Unit::DollarsPerMemberMonth => false,
    }
}

/// A published table as CSV, in the result table's columns and a `suppressed` column: `DS` or `SD` for a suppressed figure, with the published reason.
pub fn published_csv(rows: &[PublishedRow]) -> crate::Result<Vec<u8>> {
    let show = |v: std::result::Result<f64, Reason>| match v {
        Ok(x) => format!("{x}"),
        Err(why) => why.marker().into(),
    };
    let out: Vec<Vec<String>> = rows
        .iter()
        .map(|p| {
            let reasons: Vec<&str> = [
                p.numerator.err(),
                p.denominator.err(),
                p.rate.as_ref().err().copied(),
            ]
            .into_iter()
            .flatten()
            .map(|r| r.name())
            .collect();
            let mut reasons = reasons;
            reasons.dedup();
            vec![
                p.row.measure.clone(),
                p.row.component.clone(),
                p.row.period_start.to_string(),
                p.row.period_end.to_string(),
                p.row.stratifier.name().to_string(),
                p.row.stratum.clone(),
                show(p.numerator),
                show(p.denominator),
                match p.rate {
                    Ok(Some(r)) => format!("{r}"),
                    Ok(None) => String::new(),
                    Err(why) => why.marker().into(),
                },
                p.row.unit.name().to_string(),
                reasons.join("; "),
            ]
        })
        .collect();
    crate::output::csv_bytes(
        &[
            "measure",
            "component",
            "period_start",
            "period_end",
            "stratifier",
            "stratum",
            "numerator",
            "denominator",
            "rate",
            "unit",
            "suppressed",
        ],
        &out,
    )
}

/// A linear relation the components of a table keep in every stratum, which the audit cannot
/// see from the values alone: Σ coefficient × cell = 0, each cell a component's numerator or
/// denominator (e.g. months earned − months billed − earned not billed + billed not earned).
/// A reader who knows the rule can use it, so the audit does.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub terms: Vec<(&'static str, Col, f64)>,
}

/// Apply suppression to result rows (any mix of measures, components and periods).
pub fn suppress(rows: &[ResultRow]) -> Vec<PublishedRow> {
    suppress_with(rows, &[])
}

/// [`suppress`], the audit knowing `identities` between the components of every table.
pub fn suppress_with(rows: &[ResultRow], identities: &[Identity]) -> Vec<PublishedRow> {
    let mut out: Vec<PublishedRow> = rows.iter().map(primary).collect();
    let mut tables: BTreeMap<(&str, chrono::NaiveDate, chrono::NaiveDate), Vec<usize>> =
        BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        tables
            .entry((r.measure.as_str(), r.period_start, r.period_end))
            .or_default()
            .push(i);
    }
    for members in tables.values() {
        Table::new(rows, members, identities).audit(rows, &mut out);
    }
    for p in &mut out {
        finish(p);
    }
    out
}

fn primary(r: &ResultRow) -> PublishedRow {
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
    // The units without the outcome: 1 to 10 of them is a small cell too.
    if nested_in_denominator(r.unit)
        && p.numerator.is_ok()
        && p.denominator.is_ok()
        && small(r.denominator - r.numerator)
    {
        p.numerator = Err(Reason::SmallCell);
        p.rate = Err(Reason::SmallCell);
    }
    // A count component's "rate" is its numerator, so it has no rate to hide.
    if r.rate.is_some() && r.denominator < MIN_RATE_DENOMINATOR && r.unit != Unit::Count {
        if p.rate.is_ok() {
            p.rate = Err(Reason::SmallDenominator);
        }
        if p.numerator.is_ok() {
            p.numerator = Err(Reason::SmallDenominator);
        }
    }
    p
}

/// A rate needs both its counts; a row whose shown denominator is under 30 reads `SD` in every
/// hidden figure but the denominator, whatever hid it (else `DS` there would mark a small count).
fn finish(p: &mut PublishedRow) {
    let needed = if p.row.unit == Unit::Count {
        p.numerator
    } else {
        p.numerator.and(p.denominator)
    };
    if p.rate.is_ok()
        && let Err(why) = needed
    {
        p.rate = Err(why);
    }
    let sd = p.denominator.is_ok()
        && p.row.rate.is_some()
        && p.row.denominator < MIN_RATE_DENOMINATOR
        && p.row.unit != Unit::Count;
    if sd {
        if p.numerator.is_err() {
            p.numerator = Err(Reason::SmallDenominator);
        }
        if p.rate.is_err() {
            p.rate = Err(Reason::SmallDenominator);
        }
    }
}

/// A row's numerator or denominator.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Col {
    Numerator,
    Denominator,
}

/// A cell: a row's numerator or denominator.
type Var = (usize, Col);

/// One published table's cells and what links them.
struct Table {
    vars: Vec<Var>,
    /// Linear equations over `vars` (indexes into it), each term a coefficient.
    equations: Vec<Vec<(usize, f64)>>,
    /// For each equation from a stratifier, its total (shown or not, the hidden parts' sum is
    /// known when the total is shown).
    totals: Vec<Option<usize>>,
    /// Counts made of several cells that must not be recoverable when 1 to 10.
    protected: Vec<Vec<(usize, f64)>>,
}

fn value(rows: &[ResultRow], (row, col): Var) -> f64 {
    match col {
        Col::Numerator => rows[row].numerator,
        Col::Denominator => rows[row].denominator,
    }
}

fn shown(out: &[PublishedRow], (row, col): Var) -> bool {
    match col {
        Col::Numerator => out[row].numerator.is_ok(),
        Col::Denominator => out[row].denominator.is_ok(),
    }
}

fn hide(out: &mut [PublishedRow], (row, col): Var) {
    let p = &mut out[row];
    match col {
        Col::Numerator => p.numerator = Err(Reason::Complementary),
        Col::Denominator => {
            p.denominator = Err(Reason::Complementary);
            if p.numerator.is_ok() {
                p.numerator = Err(Reason::Complementary);
            }
        }
    }
    if p.rate.is_ok() {
        p.rate = Err(Reason::Complementary);
    }
}

impl Table {
    fn new(rows: &[ResultRow], members: &[usize], identities: &[Identity]) -> Table {
        let mut vars = Vec::new();
        let mut index = BTreeMap::new();
        for &i in members {
            for col in [Col::Numerator, Col::Denominator] {
                index.insert((i, col), vars.len());
                vars.push((i, col));
            }
        }
        let mut equations = Vec::new();
        let mut totals = Vec::new();
        // Per component: the total row and each stratifier's strata. Stratifiers are keyed by
        // name, not in a grouping's output order: the order of the equations decides which
        // small figure the audit meets first, and so which cells it hides.
        type Strata = BTreeMap<&'static str, Vec<usize>>;
        let mut components: BTreeMap<&str, (Option<usize>, Strata)> = BTreeMap::new();
        for &i in members {
            let r = &rows[i];
            let c = components.entry(r.component.as_str()).or_default();
            if r.stratifier == Grouping::Total {
                c.0 = Some(i);
            } else {
                c.1.entry(r.stratifier.name()).or_default().push(i);
            }
        }
        for (total, strata) in components.values() {
            let Some(t) = *total else { continue };
            for parts in strata.values() {
                for col in [Col::Numerator, Col::Denominator] {
                    let mut e: Vec<(usize, f64)> =
                        parts.iter().map(|&i| (index[&(i, col)], 1.0)).collect();
                    e.push((index[&(t, col)], -1.0));
                    equations.push(e);
                    totals.push(Some(index[&(t, col)]));
                }
            }
        }
        // Columns: a component's numerators or denominators by (stratifier, stratum).
        type Key<'a> = (&'a str, &'a str);
        let mut columns: BTreeMap<(&str, Col), BTreeMap<Key, usize>> = BTreeMap::new();
        for &i in members {
            let r = &rows[i];
            for col in [Col::Numerator, Col::Denominator] {
                columns
                    .entry((r.component.as_str(), col))
                    .or_default()
                    .insert((r.stratifier.name(), r.stratum.as_str()), i);
            }
        }
        let same_rows = |a: &BTreeMap<Key, usize>, b: &BTreeMap<Key, usize>| a.keys().eq(b.keys());
        let keys: Vec<&(&str, Col)> = columns.keys().collect();
        for (x, ka) in keys.iter().enumerate() {
            for kb in &keys[x + 1..] {
                let (a, b) = (&columns[*ka], &columns[*kb]);
                if !same_rows(a, b) {
                    continue;
                }
                let equal = a
                    .iter()
                    .all(|(k, &i)| value(rows, (i, ka.1)) == value(rows, (b[k], kb.1)));
                if equal {
                    for (k, &i) in a {
                        equations
                            .push(vec![(index[&(i, ka.1)], 1.0), (index[&(b[k], kb.1)], -1.0)]);
                        totals.push(None);
                    }
                }
            }
        }
        // Declared identities, stratum by stratum where every term has its row.
        for id in identities {
            let Some(((c0, col0), _)) = id.terms.first().map(|(c, col, k)| ((*c, *col), k)) else {
                continue;
            };
            let Some(first) = columns.get(&(c0, col0)) else {
                continue;
            };
            for key in first.keys() {
                let e: Option<Vec<(usize, f64)>> = id
                    .terms
                    .iter()
                    .map(|(c, col, k)| {
                        columns
                            .get(&(*c, *col))
                            .and_then(|m| m.get(key))
                            .map(|&i| (index[&(i, *col)], *k))
                    })
                    .collect();
                if let Some(e) = e {
                    equations.push(e);
                    totals.push(None);
                }
            }
        }
        let mut protected = Vec::new();
        for &i in members {
            if nested_in_denominator(rows[i].unit) {
                protected.push(vec![
                    (index[&(i, Col::Denominator)], 1.0),
                    (index[&(i, Col::Numerator)], -1.0),
                ]);
            }
        }
        // Nested numerators: one denominator, one numerator never above the other.
        let numerators: Vec<&str> = columns
            .keys()
            .filter(|(_, col)| *col == Col::Numerator)
            .map(|(c, _)| *c)
            .collect();
        for &a in &numerators {
            for &b in &numerators {
                let (na, nb) = (
                    &columns[&(a, Col::Numerator)],
                    &columns[&(b, Col::Numerator)],
                );
                let db = &columns[&(b, Col::Denominator)];
                if a == b || !same_rows(na, nb) {
                    continue;
                }
                let unit_ok = na
                    .values()
                    .chain(nb.values())
                    .all(|&i| counts_units(rows[i].unit));
                let nested = na.iter().all(|(k, &i)| {
                    rows[i].denominator == rows[db[k]].denominator
                        && rows[i].numerator <= rows[nb[k]].numerator
                });
                let strictly = na
                    .iter()
                    .any(|(k, &i)| rows[i].numerator < rows[nb[k]].numerator);
                if unit_ok && nested && strictly {
                    for (k, &i) in na {
                        protected.push(vec![
                            (index[&(nb[k], Col::Numerator)], 1.0),
                            (index[&(i, Col::Numerator)], -1.0),
                        ]);
                    }
                }
            }
        }
        Table {
            vars,
            equations,
            totals,
            protected,
        }
    }

    fn value_of(&self, rows: &[ResultRow], f: &[(usize, f64)]) -> f64 {
        f.iter().map(|&(v, c)| c * value(rows, self.vars[v])).sum()
    }

    /// Hide cells until no hidden figure of the table can be worked out.
    fn audit(&self, rows: &[ResultRow], out: &mut [PublishedRow]) {
        // Each round hides one more cell, so this ends; the bound only guards against a bug.
        for _ in 0..=self.vars.len() {
            let hidden: Vec<bool> = self.vars.iter().map(|&v| !shown(out, v)).collect();
            let span = Span::of(&self.equations, &hidden);
            let Some(reach) = self.violation(rows, &hidden, &span) else {
                return;
            };
            match self.complement(rows, out, &reach) {
                Some(v) => hide(out, self.vars[v]),
                None => return,
            }
        }
    }

    /// The cells of the first figure that can be worked out and must not be, if any.
    fn violation(&self, rows: &[ResultRow], hidden: &[bool], span: &Span) -> Option<Vec<usize>> {
        for (v, &h) in hidden.iter().enumerate() {
            if h && small(value(rows, self.vars[v])) && span.contains(&[(v, 1.0)]) {
                return Some(vec![v]);
            }
        }
        for f in &self.protected {
            if small(self.value_of(rows, f)) && span.contains(f) {
                return Some(f.iter().map(|&(v, _)| v).collect());
            }
        }
        for (e, total) in self.equations.iter().zip(&self.totals) {
            let Some(t) = *total else { continue };
            if hidden[t] {
                continue;
            }
            let parts: f64 = e
                .iter()
                .filter(|&&(v, _)| v != t && hidden[v])
                .map(|&(v, _)| value(rows, self.vars[v]))
                .sum();
            if small(parts) {
                return Some(e.iter().map(|&(v, _)| v).collect());
            }
        }
        None
    }

    /// The cell to hide so that a figure reached by `reach` cannot be worked out: the smallest
    /// shown non-zero part of an equation that links to one of its cells through hidden cells
    /// (else such an equation's total, else a shown cell of the figure itself).
    fn complement(
        &self,
        rows: &[ResultRow],
        out: &[PublishedRow],
        reach: &[usize],
    ) -> Option<usize> {
        // Only equations connected to the figure through hidden cells take part in working it
        // out (shown cells are constants).
        let mut linked: Vec<bool> = vec![false; self.vars.len()];
        for &v in reach {
            linked[v] = true;
        }
        let mut used = vec![false; self.equations.len()];
        loop {
            let mut grew = false;
            for (i, e) in self.equations.iter().enumerate() {
                if used[i] || !e.iter().any(|&(v, _)| linked[v]) {
                    continue;
                }
                used[i] = true;
                grew = true;
                for &(v, _) in e {
                    if !shown(out, self.vars[v]) {
                        linked[v] = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        let touching: Vec<&Vec<(usize, f64)>> = self
            .equations
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(e, _)| e)
            .collect();
        let is_total = |v: usize| self.totals.contains(&Some(v));
        let smallest = |pick: &dyn Fn(usize) -> bool| {
            touching
                .iter()
                .flat_map(|e| e.iter().map(|&(v, _)| v))
                .filter(|&v| shown(out, self.vars[v]) && pick(v))
                .min_by(|&a, &b| {
                    value(rows, self.vars[a])
                        .total_cmp(&value(rows, self.vars[b]))
                        .then(a.cmp(&b))
                })
        };
        let nonzero = |v: usize| value(rows, self.vars[v]) != 0.0;
        smallest(&|v| nonzero(v) && !is_total(v))
            .or_else(|| smallest(&|v| nonzero(v)))
            .or_else(|| {
                reach
                    .iter()
                    .copied()
                    .filter(|&v| shown(out, self.vars[v]))
                    .max_by_key(|&v| self.vars[v].1)
            })
            .or_else(|| smallest(&|_| true))
    }
}

/// The row space of the equations restricted to the hidden cells, in reduced row echelon form:
/// what a reader can work out about hidden cells from the shown ones.
struct Span {
    /// A cell's column among the hidden ones.
    column: Vec<Option<usize>>,
    /// How many cells are hidden.
    width: usize,
    /// Basis rows over the hidden cells, each with its pivot column.
    rows: Vec<(usize, Vec<f64>)>,
}

const EPS: f64 = 1e-9;

impl Span {
    fn of(equations: &[Vec<(usize, f64)>], hidden: &[bool]) -> Span {
        let mut column = vec![None; hidden.len()];
        let mut n = 0;
        for (v, &h) in hidden.iter().enumerate() {
            if h {
                column[v] = Some(n);
                n += 1;
            }
        }
        let mut m: Vec<Vec<f64>> = equations
            .iter()
            .map(|e| {
                let mut r = vec![0.0; n];
                for &(v, c) in e {
                    if let Some(j) = column[v] {
                        r[j] += c;
                    }
                }
                r
            })
            .filter(|r| r.iter().any(|x| x.abs() > EPS))
            .collect();
        let mut pivots = Vec::new();
        for col in 0..n {
            let row = pivots.len();
            if row == m.len() {
                break;
            }
            let p = (row..m.len())
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
                .expect("rows left");
            if m[p][col].abs() < EPS {
                continue;
            }
            m.swap(row, p);
            let pivot = m[row][col];
            for x in &mut m[row] {
                *x /= pivot;
            }
            let prow = m[row].clone();
            for (r, other) in m.iter_mut().enumerate() {
                let k = other[col];
                if r != row && k.abs() > EPS {
                    for (x, y) in other.iter_mut().zip(&prow) {
                        *x -= k * y;
                    }
                }
            }
            pivots.push(col);
        }
        m.truncate(pivots.len());
        Span {
            column,
            width: n,
            rows: pivots.into_iter().zip(m).collect(),
        }
    }

    /// Whether the figure `f` (a combination of cells) is known: its part over hidden cells is in
    /// the span (its shown cells are known anyway).
    fn contains(&self, f: &[(usize, f64)]) -> bool {
        let mut r = vec![0.0; self.width];
        for &(v, c) in f {
            if let Some(j) = self.column[v] {
                r[j] += c;
            }
        }
        for (pivot, b) in &self.rows {
            let k = r[*pivot];
            if k.abs() > EPS {
                for (x, y) in r.iter_mut().zip(b) {
                    *x -= k * y;
                }
            }
        }
        r.iter().all(|x| x.abs() < EPS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Stratifier::{AgeBand, Hhp, Mco};
    use crate::results::Grouping::{By, Total};

    fn row(stratifier: Grouping, stratum: &str, n: f64, d: f64) -> ResultRow {
        crate::results::test_row("7_day", stratifier, stratum, n, d)
    }

    #[test]
    fn counts_one_to_ten_are_hidden_zero_and_eleven_shown() {
        let p = suppress(&[row(Total, "total", 0.0, 40.0)]);
        assert_eq!(p[0].numerator, Ok(0.0));
        assert_eq!(p[0].rate, Ok(Some(0.0)));
        let p = suppress(&[row(Total, "total", 10.0, 40.0)]);
        assert_eq!(p[0].numerator, Err(Reason::SmallCell));
        assert_eq!(p[0].rate, Err(Reason::SmallCell));
        assert_eq!(p[0].denominator, Ok(40.0));
        let p = suppress(&[row(Total, "total", 11.0, 40.0)]);
        assert_eq!(p[0].numerator, Ok(11.0));
        let p = suppress(&[row(Total, "total", 1.0, 1.0)]);
        assert_eq!(p[0].denominator, Err(Reason::SmallCell));
    }

    #[test]
    fn a_count_component_is_its_numerator_and_has_no_rate_to_hide() {
        let mut r = row(Total, "total", 16.0, 16.0);
        r.unit = Unit::Count;
        r.rate = Some(16.0);
        let p = suppress(&[r]);
        assert_eq!(p[0].numerator, Ok(16.0));
        assert_eq!(p[0].rate, Ok(Some(16.0)));
    }

    #[test]
    fn rates_over_fewer_than_thirty_are_hidden_with_the_numerator_that_gives_them_back() {
        let p = suppress(&[row(Total, "total", 15.0, 29.0)]);
        assert_eq!(p[0].numerator, Err(Reason::SmallDenominator));
        assert_eq!(p[0].denominator, Ok(29.0));
        assert_eq!(p[0].rate, Err(Reason::SmallDenominator));
        let p = suppress(&[row(Total, "total", 15.0, 30.0)]);
        assert_eq!(p[0].rate, Ok(Some(50.0)));
        // A small numerator over a small denominator reads SD too: DS would say it is small.
        let p = suppress(&[row(Total, "total", 4.0, 25.0)]);
        assert_eq!(p[0].numerator, Err(Reason::SmallDenominator));
        assert_eq!(p[0].numerator.unwrap_err().marker(), "SD");
    }

    #[test]
    fn units_without_the_outcome_are_a_count_too() {
        // 59 of 67: 8 without follow-up.
        let p = suppress(&[row(Total, "total", 59.0, 67.0)]);
        assert!(p[0].numerator.is_err() && p[0].rate.is_err());
        assert_eq!(p[0].denominator, Ok(67.0));
        let p = suppress(&[row(Total, "total", 56.0, 67.0)]);
        assert_eq!(p[0].numerator, Ok(56.0));
        // Not for a rate per 1,000: admissions are not some of the member months.
        let mut r = row(Total, "total", 59.0, 67.0);
        r.unit = Unit::Per1000MemberMonths;
        assert_eq!(suppress(&[r])[0].numerator, Ok(59.0));
    }

    #[test]
    fn nested_numerators_over_one_denominator_hide_a_small_difference() {
        // 7-day 40 of 100, 30-day 45 of 100: 5 followed up between day 8 and day 30.
        let rows = [
            row(Total, "total", 40.0, 100.0),
            crate::results::test_row("30_day", Total, "total", 45.0, 100.0),
        ];
        let p = suppress(&rows);
        assert!(p[0].numerator.is_err() || p[1].numerator.is_err(), "{p:?}");
        assert_eq!(p[0].denominator, Ok(100.0));
    }

    #[test]
    fn a_shared_denominator_is_one_figure() {
        // The 7-day stratum's denominator hidden (small) would be the 30-day one's, if shown.
        let rows = [
            row(Total, "total", 20.0, 100.0),
            row(By(Mco), "A", 3.0, 8.0),
            row(By(Mco), "B", 17.0, 92.0),
            crate::results::test_row("30_day", Total, "total", 60.0, 100.0),
            crate::results::test_row("30_day", By(Mco), "A", 6.0, 8.0),
            crate::results::test_row("30_day", By(Mco), "B", 54.0, 92.0),
        ];
        let p = suppress(&rows);
        for i in [1, 4] {
            assert!(p[i].denominator.is_err(), "{i}: {p:?}");
        }
        for i in [2, 5] {
            assert!(p[i].denominator.is_err(), "{i}: 100 - 8 otherwise");
        }
    }

    #[test]
    fn two_hidden_strata_summing_to_a_small_count_take_a_third() {
        // 3 + 4 hidden beside a shown total would publish 7 for the pair.
        let rows = [
            row(Total, "total", 80.0, 400.0),
            row(By(AgeBand), "0-17", 3.0, 100.0),
            row(By(AgeBand), "18-64", 4.0, 100.0),
            row(By(AgeBand), "65+", 30.0, 100.0),
            row(By(AgeBand), "unknown", 43.0, 100.0),
        ];
        let p = suppress(&rows);
        assert!(p[1].numerator.is_err() && p[2].numerator.is_err());
        assert_eq!(p[3].numerator, Err(Reason::Complementary));
        assert_eq!(p[4].numerator, Ok(43.0));
    }

    #[test]
    fn a_lone_hidden_cell_gets_a_complement_so_it_cannot_be_derived() {
        // Numerators 5 + 20 + 30 = 55 shown in total: 5 alone hidden would be 55 - 50.
        let rows = [
            row(Total, "total", 55.0, 300.0),
            row(By(Hhp), "A", 5.0, 100.0),
            row(By(Hhp), "B", 20.0, 100.0),
            row(By(Hhp), "C", 30.0, 100.0),
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
            let mut rows = vec![row(Total, "total", total, 1000.0)];
            for (i, c) in cells.iter().enumerate() {
                rows.push(row(By(Mco), &format!("M{i}"), *c, 100.0));
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
            row(Total, "total", 12.0, 60.0),
            row(By(AgeBand), "6-17", 2.0, 8.0),
            row(By(AgeBand), "18-64", 10.0, 52.0),
        ];
        let p = suppress(&rows);
        assert_eq!(p[1].denominator, Err(Reason::SmallCell));
        // 18-64's denominator would be 60 - 8: hidden as the complement, with its numerator.
        assert_eq!(p[2].denominator, Err(Reason::Complementary));
        assert!(p[2].numerator.is_err() && p[2].rate.is_err());
    }
}
