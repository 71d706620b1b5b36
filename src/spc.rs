//! Statistical process control for the quality-improvement programme: p-charts (a share per
//! period, e.g. follow-up within 7 days) and u-charts (a count per unit of exposure, e.g. ED
//! visits per 1,000 member months), with 3-sigma limits per point and the usual signals of
//! special-cause variation. Charts draw what this computes.

/// Which chart: a proportion of trials, or events per unit of exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Numerators are successes out of `denominator` trials (percent measures).
    P,
    /// Numerators are events over `denominator` units of exposure (rates per member months).
    U,
}

/// A special-cause signal at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The point lies beyond a 3-sigma limit.
    BeyondLimit,
    /// The point ends a run of 8 or more on one side of the centre line (a shift).
    Shift,
    /// The point ends a run of 6 or more steadily rising or falling (a trend).
    Trend,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::BeyondLimit => "beyond a 3-sigma limit",
            Signal::Shift => "8 or more on one side of the centre",
            Signal::Trend => "6 or more rising or falling",
        }
    }
}

/// Points in a run that make a shift, and in a steady rise or fall that make a trend.
pub const SHIFT_RUN: usize = 8;
pub const TREND_RUN: usize = 6;

/// One period of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    /// The statistic: numerator / denominator.
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub signals: Vec<Signal>,
}

/// A computed chart: the centre line and each point's limits and signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub kind: Kind,
    pub centre: Option<f64>,
    pub points: Vec<Point>,
    /// Laney's σz when the points vary more than binomial (Poisson) chance allows (σz > 1):
    /// the limits are then a p′ (u′) chart's, each point's sigma times σz.
    pub laney: Option<f64>,
}

/// The median moving range of two over this estimates sigma (Wheeler's robust constant): one
/// wild quarter, the very thing a chart is for, cannot widen every limit as it would the mean.
const MEDIAN_MR: f64 = 0.954;

/// Laney's σz over the points with a value: the median moving range of their z-scores
/// ((value − centre) / sigma), over 0.954. `None` with fewer than three such points (two
/// moving ranges), or no variation to scale.
fn sigma_z(z: &[f64]) -> Option<f64> {
    if z.len() < 3 {
        return None;
    }
    let mut mr: Vec<f64> = z.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    mr.sort_by(f64::total_cmp);
    let mid = mr.len() / 2;
    let median = if mr.len() % 2 == 1 {
        mr[mid]
    } else {
        (mr[mid - 1] + mr[mid]) / 2.0
    };
    let s = median / MEDIAN_MR;
    (s.is_finite() && s > 0.0).then_some(s)
}

/// Compute a chart from (label, numerator, denominator) per period, in time order. A period
/// with a zero denominator has no value and takes part in no run.
///
/// Large denominators make the classical limits so narrow that the ordinary variation between
/// quarters (case mix, seasons) shows as special causes. Laney's adjustment measures that
/// variation from the points themselves (σz) and, where it exceeds chance (σz > 1), widens each
/// limit by it: a p′ or u′ chart. Where it does not, the classical chart stands.
pub fn chart(kind: Kind, periods: &[(String, f64, f64)]) -> Chart {
    let (num, den) = periods
        .iter()
        .fold((0.0, 0.0), |(n, d), (_, a, b)| (n + a, d + b));
    let centre = (den > 0.0).then(|| num / den);
    let sigma = |c: f64, d: f64| match kind {
        Kind::P => (c * (1.0 - c) / d).sqrt(),
        Kind::U => (c / d).sqrt(),
    };
    let z: Vec<f64> = match centre {
        Some(c) => periods
            .iter()
            .filter(|(_, _, d)| *d > 0.0)
            .map(|(_, n, d)| (n / d - c) / sigma(c, *d))
            .filter(|z| z.is_finite())
            .collect(),
        None => Vec::new(),
    };
    let laney = sigma_z(&z).filter(|s| *s > 1.0);
    let widen = laney.unwrap_or(1.0);
    let mut points: Vec<Point> = periods
        .iter()
        .map(|(label, n, d)| {
            let value = (*d > 0.0).then(|| n / d);
            let sigma = match (centre, *d > 0.0) {
                (Some(c), true) => Some(sigma(c, *d) * widen),
                _ => None,
            };
            let (lower, upper) = match (centre, sigma) {
                (Some(c), Some(s)) => {
                    let hi = c + 3.0 * s;
                    (
                        Some((c - 3.0 * s).max(0.0)),
                        Some(if kind == Kind::P { hi.min(1.0) } else { hi }),
                    )
                }
                _ => (None, None),
            };
            let mut signals = Vec::new();
            if let (Some(v), Some(lo), Some(hi)) = (value, lower, upper)
                && (v < lo || v > hi)
            {
                signals.push(Signal::BeyondLimit);
            }
            Point {
                label: label.clone(),
                value,
                lower,
                upper,
                signals,
            }
        })
        .collect();
    if let Some(c) = centre {
        // Runs on one side of the centre; a point on the line breaks the run.
        let mut run = 0usize;
        let mut side = 0i8;
        for p in points.iter_mut() {
            let s = match p.value {
                Some(v) if v > c => 1,
                Some(v) if v < c => -1,
                _ => 0,
            };
            run = if s != 0 && s == side {
                run + 1
            } else {
                usize::from(s != 0)
            };
            side = s;
            if run >= SHIFT_RUN {
                p.signals.push(Signal::Shift);
            }
        }
        // Steady rises or falls: TREND_RUN points, each above (or below) the one before.
        let mut run = 1usize;
        let mut dir = 0i8;
        let mut prev: Option<f64> = None;
        for p in points.iter_mut() {
            match (prev, p.value) {
                (Some(a), Some(b)) => {
                    let d = if b > a {
                        1
                    } else if b < a {
                        -1
                    } else {
                        0
                    };
                    run = if d != 0 && d == dir {
                        run + 1
                    } else if d != 0 {
                        2
                    } else {
                        1
                    };
                    dir = d;
                }
                _ => {
                    run = 1;
                    dir = 0;
                }
            }
            prev = p.value;
            if run >= TREND_RUN {
                p.signals.push(Signal::Trend);
            }
        }
    }
    Chart {
        kind,
        centre,
        points,
        laney,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn periods(values: &[(f64, f64)]) -> Vec<(String, f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, (n, d))| (format!("Q{i}"), *n, *d))
            .collect()
    }

    #[test]
    fn p_chart_limits_are_three_sigma_around_the_pooled_rate() {
        // Pooled 50/200 = 0.25; for n = 100: sigma = sqrt(0.25 * 0.75 / 100) = 0.0433.
        let c = chart(Kind::P, &periods(&[(20.0, 100.0), (30.0, 100.0)]));
        assert_eq!(c.centre, Some(0.25));
        let sigma = (0.25f64 * 0.75 / 100.0).sqrt();
        assert!((c.points[0].upper.unwrap() - (0.25 + 3.0 * sigma)).abs() < 1e-12);
        assert!((c.points[0].lower.unwrap() - (0.25 - 3.0 * sigma)).abs() < 1e-12);
        assert!(c.points.iter().all(|p| p.signals.is_empty()));
    }

    #[test]
    fn a_point_beyond_the_limits_signals() {
        let mut v = vec![(25.0, 100.0); 7];
        v.push((60.0, 100.0));
        let c = chart(Kind::P, &periods(&v));
        assert_eq!(c.points[7].signals, vec![Signal::BeyondLimit]);
        assert!(
            c.points[..7]
                .iter()
                .all(|p| !p.signals.contains(&Signal::BeyondLimit))
        );
    }

    #[test]
    fn u_chart_limits_use_exposure_and_never_go_below_zero() {
        // 10 events over 2,000 member months: u = 0.005; small exposure, lower limit clipped at 0.
        let c = chart(Kind::U, &periods(&[(5.0, 1000.0), (5.0, 1000.0)]));
        assert_eq!(c.centre, Some(0.005));
        let sigma = (0.005f64 / 1000.0).sqrt();
        assert!((c.points[0].upper.unwrap() - (0.005 + 3.0 * sigma)).abs() < 1e-12);
        assert_eq!(c.points[0].lower, Some(0.0));
    }

    #[test]
    fn eight_on_one_side_is_a_shift_and_six_rising_a_trend() {
        // Eight below the centre, then eight above: the 8th of each run signals a shift.
        let mut v = vec![(20.0, 100.0); 8];
        v.extend(vec![(30.0, 100.0); 8]);
        let c = chart(Kind::P, &periods(&v));
        let shifts: Vec<usize> = (0..16)
            .filter(|&i| c.points[i].signals.contains(&Signal::Shift))
            .collect();
        assert_eq!(shifts, vec![7, 15]);
        // Six steadily rising points: the sixth signals a trend, not the fifth.
        let v: Vec<(f64, f64)> = (0..6).map(|i| (20.0 + i as f64, 100.0)).collect();
        let c = chart(Kind::P, &periods(&v));
        assert!(c.points[5].signals.contains(&Signal::Trend));
        assert!(!c.points[4].signals.contains(&Signal::Trend));
    }

    #[test]
    fn large_denominators_take_laneys_limits_and_a_real_shift_still_signals() {
        // Quarters of 20,000 member months between 38% and 44%: ordinary variation that the
        // classical limits (about ±1 point) call special causes in 7 of 8 quarters.
        let pct = [38.0, 42.0, 39.0, 44.0, 40.0, 43.0, 38.0, 42.0];
        let v: Vec<(f64, f64)> = pct.iter().map(|p| (p * 200.0, 20000.0)).collect();
        let c = chart(Kind::P, &periods(&v));
        let sz = c.laney.expect("over-dispersed");
        assert!(sz > 2.0, "{sz}");
        let beyond = |c: &Chart| {
            c.points
                .iter()
                .filter(|p| p.signals.contains(&Signal::BeyondLimit))
                .count()
        };
        assert_eq!(beyond(&c), 0);
        // The classical limits, by hand: 7 of the 8 quarters fall outside them.
        let centre = c.centre.unwrap();
        let sigma = (centre * (1.0 - centre) / 20000.0).sqrt();
        let outside = pct
            .iter()
            .filter(|p| (*p / 100.0 - centre).abs() > 3.0 * sigma)
            .count();
        assert_eq!(outside, 7);
        let u = c.points[0].upper.unwrap();
        assert!((u - (centre + 3.0 * sigma * sz)).abs() < 1e-12);
        // A step to 60% in the last quarter is still a special cause: one wild quarter does
        // not widen the limits enough to hide itself (the median moving range).
        let mut v = v.clone();
        v[7] = (0.60 * 20000.0, 20000.0);
        let c = chart(Kind::P, &periods(&v));
        assert!(c.points[7].signals.contains(&Signal::BeyondLimit));
    }

    #[test]
    fn chance_variation_keeps_the_classical_limits() {
        // Binomial-sized variation (σz ≤ 1): no adjustment, limits exactly the p-chart's.
        let v = [(25.0, 100.0), (27.0, 100.0), (24.0, 100.0), (26.0, 100.0)];
        let c = chart(Kind::P, &periods(&v));
        assert_eq!(c.laney, None);
        let centre = c.centre.unwrap();
        let sigma = (centre * (1.0 - centre) / 100.0).sqrt();
        assert!((c.points[0].upper.unwrap() - (centre + 3.0 * sigma)).abs() < 1e-12);
        // Too few points to judge: two.
        let c = chart(Kind::U, &periods(&[(50.0, 1000.0), (90.0, 1000.0)]));
        assert_eq!(c.laney, None);
    }

    #[test]
    fn an_empty_period_breaks_runs_and_has_no_limits() {
        let mut v: Vec<(f64, f64)> = (0..3).map(|i| (20.0 + i as f64, 100.0)).collect();
        v.push((0.0, 0.0));
        v.extend((0..3).map(|i| (30.0 + i as f64, 100.0)));
        let c = chart(Kind::P, &periods(&v));
        assert_eq!(c.points[3].value, None);
        assert_eq!(c.points[3].upper, None);
        assert!(c.points.iter().all(|p| !p.signals.contains(&Signal::Trend)));
    }
}
