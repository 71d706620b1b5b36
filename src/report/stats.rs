//! 95% confidence intervals for the comparisons in reports: Wilson's score interval for a
//! proportion, and an exact-approximation (Byar's) interval for a count over an exposure (visits
//! per 1,000 member months). Both stay sensible for small counts and for rates of 0 or 100%,
//! where the textbook normal interval does not.

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

/// The interval of a result row's rate, in the row's unit: `percent` (×100), `per_1000_*`
/// (×1000), `per_*` counts of events over units (×1). `None` for units without one (ratios,
/// medians, sums, plain counts).
pub fn interval(unit: &str, numerator: f64, denominator: f64) -> Option<(f64, f64)> {
    if unit == "percent" {
        return wilson(numerator, denominator).map(|(l, u)| (l * 100.0, u * 100.0));
    }
    let scale = if unit.starts_with("per_1000") {
        1000.0
    } else if unit.starts_with("per_") {
        1.0
    } else {
        return None;
    };
    poisson_rate(numerator, denominator).map(|(l, u)| (l * scale, u * scale))
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
        let (l, u) = interval("percent", 81.0, 263.0).unwrap();
        assert!(close(l / 100.0, 0.2553) && close(u / 100.0, 0.3662));
        let (l, u) = interval("per_1000_member_months", 10.0, 1000.0).unwrap();
        assert!((l - 4.795).abs() < 0.05 && (u - 18.39).abs() < 0.1);
        assert_eq!(interval("ratio", 5.0, 4.0), None);
        assert_eq!(interval("days", 5.0, 4.0), None);
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
