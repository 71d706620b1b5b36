//! 95% confidence intervals and tests for the comparisons in reports: Wilson's score interval
//! for a proportion, and an exact-approximation (Byar's) interval for a count over an exposure
//! (visits per 1,000 member months). Both stay sensible for small counts and for rates of 0 or
//! 100%, where the textbook normal interval does not.
//!
//! A member contributes several units to many measures (twelve member months, several
//! discharges, a stay's days), and a member's units are alike: they are not independent trials.
//! Where a row carries its members' spread ([`Spread`]), the variance is the ratio estimator's
//! with members as clusters (Taylor linearisation), and the intervals use the effective sample
//! size: the units divided by the design effect, never below one (Korn and Graubard's approach
//! for proportions; the same for Poisson counts).

use crate::measure::Unit;
use crate::results::Spread;

/// z for a two-sided 95% interval.
const Z: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `num` successes of `den`, as fractions (0..=1).
pub fn wilson(num: f64, den: f64) -> Option<(f64, f64)> {
    if den <= 0.0 || num < 0.0 || num > den {
        return None;
    }
    let p = num / den;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * den)) / (1.0 + z2 / den);
    let half = Z / (1.0 + z2 / den) * (p * (1.0 - p) / den + z2 / (4.0 * den * den)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Byar's approximation to the exact Poisson interval for a count, divided by the exposure:
/// the interval of `count / exposure`.
pub fn poisson_rate(count: f64, exposure: f64) -> Option<(f64, f64)> {
    if exposure <= 0.0 || count < 0.0 {
        return None;
    }
    let lower = if count == 0.0 {
        0.0
    } else {
        let c = count;
        c * (1.0 - 1.0 / (9.0 * c) - Z / (3.0 * c.sqrt())).powi(3)
    };
    let c1 = count + 1.0;
    let upper = c1 * (1.0 - 1.0 / (9.0 * c1) + Z / (3.0 * c1.sqrt())).powi(3);
    Some((lower.max(0.0) / exposure, upper / exposure))
}

/// The interval of a result row's rate, in the row's unit: a percentage (Wilson, ×100) or a
/// rate per 1,000 (Poisson, ×1000). `None` for units without one (ratios, days, medians, plain
/// counts).
pub fn interval(unit: Unit, numerator: f64, denominator: f64) -> Option<(f64, f64)> {
    match unit {
        Unit::Percent => wilson(numerator, denominator).map(|(l, u)| (l * 100.0, u * 100.0)),
        Unit::Per1000MemberMonths | Unit::Per1000Members => {
            poisson_rate(numerator, denominator).map(|(l, u)| (l * unit.scale(), u * unit.scale()))
        }
        Unit::Count | Unit::Days | Unit::Ratio | Unit::MedianDays | Unit::DollarsPerMemberMonth => {
            None
        }
    }
}

/// The variance of `num / den` with each member's units as one cluster (Taylor linearisation of
/// the ratio estimator), as a fraction: `k / (k − 1) · Σ(yᵢ − R·xᵢ)² / X²` over the `k` members.
/// `None` for fewer than two members.
pub fn cluster_variance(num: f64, den: f64, s: &Spread) -> Option<f64> {
    if den <= 0.0 || s.members < 2.0 {
        return None;
    }
    let r = num / den;
    let residual = (s.yy - 2.0 * r * s.xy + r * r * s.xx).max(0.0);
    Some(s.members / (s.members - 1.0) * residual / (den * den))
}

/// What the variance would be were every unit independent: binomial for a share, Poisson for
/// events over an exposure. `None` for other units.
fn independent_variance(unit: Unit, num: f64, den: f64) -> Option<f64> {
    if den <= 0.0 {
        return None;
    }
    match unit {
        Unit::Percent => {
            let p = num / den;
            Some(p * (1.0 - p) / den)
        }
        Unit::Per1000MemberMonths | Unit::Per1000Members => Some(num / (den * den)),
        Unit::Count | Unit::Days | Unit::Ratio | Unit::MedianDays | Unit::DollarsPerMemberMonth => {
            None
        }
    }
}

/// The design effect of a row: its variance with members as clusters over the variance were
/// the units independent, never below 1 (a design effect under 1 rests on too few members to
/// trust, and would narrow the interval). 1 without a spread.
pub fn design_effect(unit: Unit, num: f64, den: f64, spread: Option<&Spread>) -> f64 {
    let (Some(s), Some(v0)) = (spread, independent_variance(unit, num, den)) else {
        return 1.0;
    };
    match cluster_variance(num, den, s) {
        Some(v) if v0 > 0.0 => (v / v0).max(1.0),
        _ => 1.0,
    }
}

/// [`interval`] accounting for a member's repeated units: the counts divided by the design
/// effect (the effective sample size) for shares and rates; for average days (a stay's days
/// over stays), the ratio's cluster variance in a normal interval. `None` for units without one
/// (ratios of observed to expected, medians, plain counts).
pub fn interval_clustered(
    unit: Unit,
    numerator: f64,
    denominator: f64,
    spread: Option<&Spread>,
) -> Option<(f64, f64)> {
    if unit == Unit::Days {
        let v = cluster_variance(numerator, denominator, spread?)?;
        let r = numerator / denominator;
        let half = Z * v.sqrt();
        return Some(((r - half).max(0.0), r + half));
    }
    let deff = design_effect(unit, numerator, denominator, spread);
    interval(unit, numerator / deff, denominator / deff)
}

/// The variance of a row's rate, in its unit (×100 for a share, ×1,000 per 1,000), with the
/// design effect: what a test of a change adds up. `None` for units without one.
pub fn rate_variance(
    unit: Unit,
    numerator: f64,
    denominator: f64,
    spread: Option<&Spread>,
) -> Option<f64> {
    let scale = unit.scale();
    let v = if unit == Unit::Days {
        cluster_variance(numerator, denominator, spread?)?
    } else {
        independent_variance(unit, numerator, denominator)?
            * design_effect(unit, numerator, denominator, spread)
    };
    Some(v * scale * scale)
}

/// The verdict on a change between two years' rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Improved,
    Worsened,
    /// The difference is within what chance allows at the 5% level.
    NoSignificantChange,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Improved => "improved",
            Change::Worsened => "worsened",
            Change::NoSignificantChange => "no significant change",
        }
    }
}

/// A two-sided z-test at the 5% level of the difference between two rates, `(rate, variance)`
/// each in the same unit. The two years are treated as independent samples; many members are
/// in both and their rates correlate positively, so the test is conservative (it errs towards
/// "no significant change"); with no variance at all (0% both years) there is no change.
pub fn change(now: (f64, f64), before: (f64, f64), higher_is_better: bool) -> Change {
    let d = now.0 - before.0;
    let se = (now.1 + before.1).sqrt();
    if se <= 0.0 || !se.is_finite() || (d / se).abs() <= Z {
        return Change::NoSignificantChange;
    }
    if (d > 0.0) == higher_is_better {
        Change::Improved
    } else {
        Change::Worsened
    }
}

/// How a unit's rate compares with a benchmark, given its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versus {
    /// The interval lies wholly on the better side.
    Better,
    Worse,
    /// The interval holds the benchmark.
    NoDifference,
}

impl Versus {
    pub fn name(self) -> &'static str {
        match self {
            Versus::Better => "better",
            Versus::Worse => "worse",
            Versus::NoDifference => "no difference",
        }
    }
}

/// Compare an interval with a benchmark rate; `higher_is_better` says which side is better.
pub fn versus(interval: (f64, f64), benchmark: f64, higher_is_better: bool) -> Versus {
    let (l, u) = interval;
    let above = l > benchmark;
    let below = u < benchmark;
    match (above, below, higher_is_better) {
        (true, _, true) | (_, true, false) => Versus::Better,
        (true, _, false) | (_, true, true) => Versus::Worse,
        _ => Versus::NoDifference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553 to 0.3662; 15/148 → 0.0624 to 0.1605.
        let (l, u) = wilson(81.0, 263.0).unwrap();
        assert!(close(l, 0.2553) && close(u, 0.3662), "{l} {u}");
        let (l, u) = wilson(15.0, 148.0).unwrap();
        assert!(close(l, 0.0624) && close(u, 0.1605), "{l} {u}");
        // 0 of 10 and 10 of 10 stay inside [0, 1] and are not degenerate.
        let (l, u) = wilson(0.0, 10.0).unwrap();
        assert!(l == 0.0 && close(u, 0.2775), "{u}");
        let (l, u) = wilson(10.0, 10.0).unwrap();
        assert!(close(l, 0.7225) && close(u, 1.0), "{l} {u}");
        assert_eq!(wilson(1.0, 0.0), None);
        assert_eq!(wilson(3.0, 2.0), None);
    }

    #[test]
    fn poisson_interval_is_close_to_exact() {
        // Exact 95% limits for a count of 10: 4.795 to 18.39 (Garwood); Byar is within 1%.
        let (l, u) = poisson_rate(10.0, 1.0).unwrap();
        assert!(
            (l - 4.795).abs() < 0.05 && (u - 18.39).abs() < 0.1,
            "{l} {u}"
        );
        // Zero events: lower 0, upper about 3.69 (exact 3.689).
        let (l, u) = poisson_rate(0.0, 1.0).unwrap();
        assert!(l == 0.0 && (u - 3.689).abs() < 0.05, "{u}");
        // Scaled by exposure.
        let (l, u) = poisson_rate(10.0, 1000.0).unwrap();
        assert!((l - 0.004795).abs() < 5e-5 && (u - 0.01839).abs() < 1e-4);
    }

    #[test]
    fn intervals_in_the_rows_unit() {
        let (l, u) = interval(Unit::Percent, 81.0, 263.0).unwrap();
        assert!(close(l / 100.0, 0.2553) && close(u / 100.0, 0.3662));
        let (l, u) = interval(Unit::Per1000MemberMonths, 10.0, 1000.0).unwrap();
        assert!((l - 4.795).abs() < 0.05 && (u - 18.39).abs() < 0.1);
        assert_eq!(interval(Unit::Ratio, 5.0, 4.0), None);
        assert_eq!(interval(Unit::Days, 5.0, 4.0), None);
    }

    fn spread(members: f64, xx: f64, xy: f64, yy: f64) -> Spread {
        Spread {
            members,
            xx,
            xy,
            yy,
        }
    }

    #[test]
    fn one_unit_per_member_has_no_design_effect() {
        // 100 members, one discharge each, 40 followed up: the cluster variance is the
        // binomial one times k/(k−1), so the design effect is 100/99, barely above 1.
        let s = spread(100.0, 100.0, 40.0, 40.0);
        let deff = design_effect(Unit::Percent, 40.0, 100.0, Some(&s));
        assert!((deff - 100.0 / 99.0).abs() < 1e-12, "{deff}");
        // Without a spread, no effect.
        assert_eq!(design_effect(Unit::Percent, 40.0, 100.0, None), 1.0);
    }

    #[test]
    fn members_whose_units_agree_widen_the_interval() {
        // 50 members with four discharges each: 20 followed up every time, 30 never. 80 of 200
        // units, but only 50 independent members: the design effect is about 4.
        let s = spread(50.0, 50.0 * 16.0, 20.0 * 16.0, 20.0 * 16.0);
        let deff = design_effect(Unit::Percent, 80.0, 200.0, Some(&s));
        assert!((deff - 4.0 * 50.0 / 49.0).abs() < 1e-9, "{deff}");
        let (l0, u0) = interval(Unit::Percent, 80.0, 200.0).unwrap();
        let (l, u) = interval_clustered(Unit::Percent, 80.0, 200.0, Some(&s)).unwrap();
        assert!(u - l > 1.9 * (u0 - l0), "{l}..{u} against {l0}..{u0}");
        // Member months: 100 members × 12 months, visits 0 or 24 per member (2 a month, or none).
        let s = spread(100.0, 100.0 * 144.0, 50.0 * 12.0 * 24.0, 50.0 * 576.0);
        let deff = design_effect(Unit::Per1000MemberMonths, 1200.0, 1200.0, Some(&s));
        assert!(deff > 10.0, "{deff}");
    }

    #[test]
    fn average_days_take_the_clusters_variance() {
        // Two members: stays of 4 and 6 days (one each); 10 days over 2 stays, 5 on average.
        // Residuals −1 and 1: variance 2/1 · 2 / 4 = 1; interval 5 ± 1.96.
        let s = spread(2.0, 2.0, 10.0, 52.0);
        let (l, u) = interval_clustered(Unit::Days, 10.0, 2.0, Some(&s)).unwrap();
        assert!((l - (5.0 - Z)).abs() < 1e-9 && (u - (5.0 + Z)).abs() < 1e-9);
        assert_eq!(interval_clustered(Unit::Days, 10.0, 2.0, None), None);
        assert_eq!(interval_clustered(Unit::Ratio, 1.0, 2.0, Some(&s)), None);
    }

    #[test]
    fn a_change_is_called_only_when_it_is_significant() {
        // 45.8% of 1,000 against 45.6% of 1,000: 0.2 points, nowhere near significant.
        let v = |p: f64, n: f64| rate_variance(Unit::Percent, p * n, n, None).unwrap();
        let c = change((45.8, v(0.458, 1000.0)), (45.6, v(0.456, 1000.0)), true);
        assert_eq!(c, Change::NoSignificantChange);
        // 55% against 45% of 1,000 each: z ≈ 4.5.
        let c = change((55.0, v(0.55, 1000.0)), (45.0, v(0.45, 1000.0)), true);
        assert_eq!(c, Change::Improved);
        let c = change((55.0, v(0.55, 1000.0)), (45.0, v(0.45, 1000.0)), false);
        assert_eq!(c, Change::Worsened);
        // The boundary: z just under and just over 1.96.
        let c = change((1.95, 1.0), (0.0, 0.0), true);
        assert_eq!(c, Change::NoSignificantChange);
        let c = change((1.97, 1.0), (0.0, 0.0), true);
        assert_eq!(c, Change::Improved);
        // Both years 0%: no variance, no change.
        assert_eq!(
            change((0.0, 0.0), (0.0, 0.0), true),
            Change::NoSignificantChange
        );
    }

    #[test]
    fn comparisons_respect_the_better_direction() {
        assert_eq!(versus((50.0, 60.0), 40.0, true), Versus::Better);
        assert_eq!(versus((50.0, 60.0), 40.0, false), Versus::Worse);
        assert_eq!(versus((20.0, 30.0), 40.0, true), Versus::Worse);
        assert_eq!(versus((20.0, 30.0), 40.0, false), Versus::Better);
        assert_eq!(versus((30.0, 50.0), 40.0, true), Versus::NoDifference);
    }
}
