//! The programme's MCOs and partners, which partners each MCO contracts with, and how each
//! serves its members: the effect tables (`PARTNER_EFFECTS`, `MCO_EFFECTS`) that make partners
//! and MCOs differ, and the follow-up delays they shape.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::calendar::Window;

pub(super) const MCOS: [&str; 3] = ["MCO-A", "MCO-B", "MCO-C"];

/// Partners and the MCOs (indices into [`MCOS`]) each is contracted with.
pub(super) const PARTNERS: [(&str, &[usize]); 8] = [
    ("HHP-01", &[0, 1]),
    ("HHP-02", &[0]),
    ("HHP-03", &[1, 2]),
    ("HHP-04", &[2]),
    ("HHP-05", &[0, 2]),
    ("HHP-06", &[1]),
    ("HHP-07", &[0, 1]),
    ("HHP-08", &[2]),
];

/// How a partner or an MCO changes what happens to its members: factors on the programme-wide
/// propensities of the generator (1.0 = the programme's own). They act only through the rows
/// generated — which visits, contacts and admissions happen and when — never on results. The
/// effect on an event is that of the partner of the member's Health Home span on its day (none
/// outside one) times that of the MCO of the Medicaid span on its day (none outside one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Effect {
    /// Follow-up after an event: the visit after a psychiatric discharge (FUH-HH) or a
    /// mental-health ED visit (FUM-HH), substance-use treatment after an SUD or overdose ED visit
    /// (FUA-HH, IET-HH) and the transitional-care contact after a discharge home (HH-TCC). The
    /// chances of a follow-up within 7 days weigh `follow_up` times as much, those of one after
    /// 30 days or none at all 1/`follow_up` times ([`follow_up_delay`]).
    pub(super) follow_up: f64,
    /// Health Home outreach: the chance of contacts in a month is multiplied by it (HH-ENGAGE-HH,
    /// HH-FIRST, and the S0281 claims that follow from reached contacts).
    pub(super) engagement: f64,
    /// Acute and institutional care: ED visits (AMB-HH, and the stays they lead to: IU-HH),
    /// readmissions within 30 days (PCR-HH) and admissions to a nursing facility from the
    /// community (AIF-HH) are multiplied by it.
    pub(super) acute: f64,
}

const fn effect(follow_up: f64, engagement: f64, acute: f64) -> Effect {
    Effect {
        follow_up,
        engagement,
        acute,
    }
}

/// The programme's own propensities.
pub(super) const AVERAGE: Effect = effect(1.0, 1.0, 1.0);

/// Each partner's effect (in the order of [`PARTNERS`]) at the start and the end of the drift
/// window ([`Window::drift_start`], the last two full years of data): equal for a steady partner;
/// in between, the effect moves in a straight line from one to the other day by day.
///
/// | partner | follow-up | engagement | acute care | profile |
/// |---|---|---|---|---|
/// | HHP-01 | 1.6 | 1.1 | 0.8 | strong |
/// | HHP-02 | 1.0 | 1.0 | 1.0 | the programme's average |
/// | HHP-03 | 0.5 | 0.75 | 1.25 | weak |
/// | HHP-04 | 1.25 | 1.05 | 0.9 | good |
/// | HHP-05 | 1.6 → 0.35 | 1.1 → 0.35 | 0.9 → 1.25 | drifting: strong at the start, weak by the end |
/// | HHP-06 | 0.6 | 0.7 | 1.2 | weak |
/// | HHP-07 | 1.0 | 1.0 | 1.0 | the programme's average |
/// | HHP-08 | 2.0 | 1.15 | 0.75 | best |
pub(super) const PARTNER_EFFECTS: [(Effect, Effect); 8] = [
    (effect(1.6, 1.1, 0.8), effect(1.6, 1.1, 0.8)),
    (AVERAGE, AVERAGE),
    (effect(0.5, 0.75, 1.25), effect(0.5, 0.75, 1.25)),
    (effect(1.25, 1.05, 0.9), effect(1.25, 1.05, 0.9)),
    (effect(1.6, 1.1, 0.9), effect(0.35, 0.35, 1.25)),
    (effect(0.6, 0.7, 1.2), effect(0.6, 0.7, 1.2)),
    (AVERAGE, AVERAGE),
    (effect(2.0, 1.15, 0.75), effect(2.0, 1.15, 0.75)),
];

/// Each MCO's effect (in the order of [`MCOS`]), milder than the partners':
///
/// | MCO | follow-up | engagement | acute care |
/// |---|---|---|---|
/// | MCO-A | 1.15 | 1.05 | 0.95 |
/// | MCO-B | 1.0 | 1.0 | 1.0 |
/// | MCO-C | 0.85 | 0.95 | 1.1 |
pub(super) const MCO_EFFECTS: [Effect; 3] =
    [effect(1.15, 1.05, 0.95), AVERAGE, effect(0.85, 0.95, 1.1)];

/// No combined acute factor exceeds this (ED visits are drawn at this multiple and thinned).
pub(super) const MAX_ACUTE: f64 = 1.5;

impl Effect {
    pub(super) fn times(self, o: Effect) -> Effect {
        effect(
            self.follow_up * o.follow_up,
            self.engagement * o.engagement,
            self.acute * o.acute,
        )
    }

    /// A partner's effect on `day`: its `from` effect before the drift window, its `to` effect
    /// after, a straight line in between.
    pub(super) fn of_partner(hhp: usize, win: &Window, day: i32) -> Effect {
        let (from, to) = PARTNER_EFFECTS[hhp];
        if from == to || day <= win.drift_start {
            return from;
        }
        if day >= win.drift_end {
            return to;
        }
        let t = f64::from(day - win.drift_start) / f64::from(win.drift_end - win.drift_start);
        let along = |a: f64, b: f64| a + (b - a) * t;
        effect(
            along(from.follow_up, to.follow_up),
            along(from.engagement, to.engagement),
            along(from.acute, to.acute),
        )
    }
}

/// A follow-up delay in days (`None`: no follow-up) from weighted buckets, after a follow-up
/// factor `f` ([`Effect::follow_up`]): a bucket ending by day 7 weighs `f` times its weight, one
/// starting after day 30 and `None` 1/`f` times, the others their own.
pub(super) fn follow_up_delay(
    rng: &mut ChaCha8Rng,
    f: f64,
    buckets: &[(Option<std::ops::RangeInclusive<i32>>, f64)],
) -> Option<i32> {
    let weight = |b: &Option<std::ops::RangeInclusive<i32>>, w: f64| match b {
        Some(r) if *r.end() <= 7 => w * f,
        Some(r) if *r.start() > 30 => w / f,
        Some(_) => w,
        None => w / f,
    };
    let total: f64 = buckets.iter().map(|(b, w)| weight(b, *w)).sum();
    let mut r = rng.random::<f64>() * total;
    for (i, (b, w)) in buckets.iter().enumerate() {
        let w = weight(b, *w);
        if r < w || i + 1 == buckets.len() {
            return b.clone().map(|range| rng.random_range(range));
        }
        r -= w;
    }
    None
}

pub(super) fn contracted(hhp: usize, mco: usize) -> bool {
    PARTNERS[hhp].1.contains(&mco)
}

/// A partner contracted with `mco`, other than `not` when given.
pub(super) fn partner_for(rng: &mut ChaCha8Rng, mco: usize, not: Option<usize>) -> usize {
    let options: Vec<usize> = (0..PARTNERS.len())
        .filter(|&p| contracted(p, mco) && Some(p) != not)
        .collect();
    options[rng.random_range(0..options.len() as u32) as usize]
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::synth::SynthOptions;
    use crate::synth::calendar::ymd;

    #[test]
    fn the_effects_table_is_sound() {
        let win = Window::new(&SynthOptions::default()).unwrap();
        let drifting: Vec<usize> = (0..PARTNERS.len())
            .filter(|&p| PARTNER_EFFECTS[p].0 != PARTNER_EFFECTS[p].1)
            .collect();
        assert_eq!(drifting.len(), 1, "one partner drifts");
        for (hhp, (from, to)) in PARTNER_EFFECTS.iter().enumerate() {
            for e in [from, to] {
                assert!(e.follow_up > 0.0 && e.engagement > 0.0 && e.acute > 0.0);
                for &mco in PARTNERS[hhp].1 {
                    assert!(e.times(MCO_EFFECTS[mco]).acute <= MAX_ACUTE);
                }
            }
        }
        // Better and worse partners, not all alike.
        let follow: Vec<f64> = PARTNER_EFFECTS.iter().map(|e| e.0.follow_up).collect();
        assert!(follow.iter().any(|f| *f > 1.2) && follow.iter().any(|f| *f < 0.8));
        // The drift: `from` up to its start, `to` from its end, a straight line between.
        let p = drifting[0];
        let (from, to) = PARTNER_EFFECTS[p];
        assert_eq!(Effect::of_partner(p, &win, win.start), from);
        assert_eq!(Effect::of_partner(p, &win, win.drift_start), from);
        assert_eq!(Effect::of_partner(p, &win, win.drift_end), to);
        assert_eq!(Effect::of_partner(p, &win, win.end), to);
        let mid = Effect::of_partner(p, &win, (win.drift_start + win.drift_end) / 2);
        assert!((mid.follow_up - (from.follow_up + to.follow_up) / 2.0).abs() < 0.01);
        // The last two full years: 2024 and 2025 for data from 2023 to March 2026.
        let three = Window::new(&SynthOptions {
            start_year: 2023,
            years: 3,
            ..SynthOptions::default()
        })
        .unwrap();
        assert_eq!(
            (three.drift_start, three.drift_end),
            (ymd(2024, 1, 1), ymd(2025, 12, 31))
        );
        // Shorter data drifts over all of it.
        let short = Window::new(&SynthOptions {
            years: 0,
            ..SynthOptions::default()
        })
        .unwrap();
        assert_eq!(
            (short.drift_start, short.drift_end),
            (short.start, short.end)
        );
    }

    #[test]
    fn a_follow_up_factor_brings_follow_up_sooner_and_more_often() {
        let buckets = [
            (Some(0..=7), 50.0),
            (Some(8..=30), 25.0),
            (Some(31..=60), 10.0),
            (None, 15.0),
        ];
        let shares = |f: f64| {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let n = 20_000;
            let (mut week, mut month, mut none) = (0, 0, 0);
            for _ in 0..n {
                match follow_up_delay(&mut rng, f, &buckets) {
                    Some(d) => {
                        week += usize::from(d <= 7);
                        month += usize::from(d <= 30);
                    }
                    None => none += 1,
                }
            }
            let share = |k: usize| k as f64 / n as f64;
            (share(week), share(month), share(none))
        };
        let (w1, m1, n1) = shares(1.0);
        assert!((w1 - 0.50).abs() < 0.02 && (m1 - 0.75).abs() < 0.02 && (n1 - 0.15).abs() < 0.02);
        let (w2, m2, n2) = shares(2.0);
        let (wh, mh, nh) = shares(0.5);
        assert!(wh + 0.1 < w1 && w1 + 0.1 < w2, "{wh} {w1} {w2}");
        assert!(mh < m1 && m1 < m2 && nh > n1 && n1 > n2);
        // f = 2: weights 100, 25, 5, 7.5.
        assert!((w2 - 100.0 / 137.5).abs() < 0.02, "{w2}");
    }
}
