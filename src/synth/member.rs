//! One member: who they are (demographics, clinical profile), their Medicaid and Health Home
//! enrollment spans (gaps, MCO and partner changes, opt-outs, death), and the per-member
//! generator [`Gen`] whose state the claim and contact generators (`acute`, `care`, `contacts`,
//! `claims`) extend. Members are generated independently, in parallel within a block.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::calendar::{Window, month_first, month_index, year, ymd};
use super::rows::{Claim, Contact, HomeDischarge};

use super::codes::{
    CC_ADULT, CC_CHILD, CLINICS, CMHCS, COMORBID, HOSPITALS, PHARMACIES, SMI_ADULT, SMI_CHILD, SUD,
};

use super::partners::{AVERAGE, Effect, MCO_EFFECTS, contracted, partner_for};
use super::random::{day_in, member_rng, pick, poisson};

/// `end` of a span that is still open.
pub(super) const OPEN: i32 = i32::MAX;

#[derive(Debug, Clone)]
pub(super) struct Person {
    pub(super) number: u32,
    pub(super) birth: i32,
    pub(super) sex: &'static str,
    pub(super) race: Option<&'static str>,
    pub(super) ethnicity: Option<&'static str>,
    pub(super) county: Option<u32>,
    pub(super) rural: Option<bool>,
    pub(super) death: Option<i32>,
    pub(super) dual: bool,
    pub(super) population: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Span {
    pub(super) health_home: bool,
    pub(super) start: i32,
    /// [`OPEN`] while open.
    pub(super) end: i32,
    pub(super) mco: usize,
    /// Only meaningful on Health Home spans.
    pub(super) hhp: usize,
    pub(super) opted_out: bool,
}

impl Span {
    pub(super) fn covers(&self, day: i32) -> bool {
        self.start <= day && day <= self.end
    }
}

/// Everything one member contributes to the four extracts.
#[derive(Debug, Clone)]
pub(super) struct MemberRows {
    pub(super) person: Person,
    pub(super) spans: Vec<Span>,
    pub(super) claims: Vec<Claim>,
    pub(super) contacts: Vec<Contact>,
    /// Whether the member's engagement was set to fade (not written; tests compare it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fading: bool,
}

/// Kansas county FIPS codes with large urban populations (Sedgwick, Johnson, Wyandotte, Shawnee,
/// Douglas), which get most members.
const URBAN_COUNTIES: [(u32, u32); 5] = [
    (20173, 30),
    (20091, 22),
    (20209, 20),
    (20177, 16),
    (20045, 12),
];

const RACES: [(Option<&str>, u32); 7] = [
    (Some("white"), 64),
    (Some("black_or_african_american"), 16),
    (Some("american_indian_or_alaska_native"), 3),
    (Some("asian"), 3),
    (Some("native_hawaiian_or_other_pacific_islander"), 1),
    (Some("multiracial"), 5),
    (None, 8),
];

pub(super) fn generate_block(seed: u64, win: Window, first: usize, n: usize) -> Vec<MemberRows> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n.div_ceil(500))
        .max(1);
    if threads == 1 {
        return (first..first + n)
            .map(|i| generate_member(seed, win, i))
            .collect();
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = first + t * chunk;
                let hi = (lo + chunk).min(first + n);
                s.spawn(move || {
                    (lo..hi)
                        .map(|i| generate_member(seed, win, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("synthetic member generation panicked"))
            .collect()
    })
}

/// The generator of one member: the member's RNG, profile and spans, and the claims and stays
/// generated so far.
pub(super) struct Gen {
    pub(super) rng: ChaCha8Rng,
    pub(super) win: Window,
    pub(super) age: i32,
    pub(super) smi: bool,
    /// Chronic conditions, the qualifying one first.
    pub(super) conditions: Vec<&'static str>,
    pub(super) sud: Option<&'static str>,
    pub(super) util: f64,
    pub(super) death: Option<i32>,
    pub(super) start: i32,
    pub(super) life_end: i32,
    medicaid: Vec<Span>,
    pub(super) hh: Vec<Span>,
    pub(super) hospital: u32,
    pub(super) clinic: u32,
    pub(super) cmhc: u32,
    pub(super) pharmacy: u32,
    pub(super) claims: Vec<Claim>,
    pub(super) stays: Vec<(i32, i32)>,
    pub(super) home_discharges: Vec<HomeDischarge>,
}

pub(super) fn generate_member(seed: u64, win: Window, index: usize) -> MemberRows {
    let mut rng = member_rng(seed, index);
    let number = index as u32 + 1;

    // Demographics.
    let age = pick(&mut rng, &[(0u8, 12), (1, 75), (2, 13)]);
    let age = match age {
        0 => rng.random_range(5..=17),
        1 => rng.random_range(18..=64),
        _ => rng.random_range(65..=90),
    };
    let start_year = year(win.start);
    let birth = if rng.random_bool(0.01) {
        // Band-boundary birthdays: turning 18 or 65 on the first or last day of the latest full year.
        let latest = year(win.end) - 1;
        let band = if rng.random_bool(0.5) { 18 } else { 65 };
        if rng.random_bool(0.5) {
            ymd(latest - band, 1, 1)
        } else {
            ymd(latest - band, 12, 31)
        }
    } else {
        ymd(start_year - age - 1, 1, 1) + rng.random_range(0..365)
    };
    let age = start_year - year(birth) - 1;
    let sex = pick(&mut rng, &[("F", 560), ("M", 435), ("U", 5)]);
    let race = pick(&mut rng, &RACES);
    let ethnicity = pick(
        &mut rng,
        &[
            (Some("hispanic"), 12),
            (Some("not_hispanic"), 78),
            (None, 10),
        ],
    );
    let (county, rural) = if rng.random_bool(0.01) {
        (None, None)
    } else if rng.random_bool(0.45) {
        (Some(pick(&mut rng, &URBAN_COUNTIES)), Some(false))
    } else {
        let c = 20001 + 2 * rng.random_range(0..105u32);
        (Some(c), Some(rng.random_bool(0.55)))
    };
    let dual = rng.random_bool(if age >= 65 { 0.70 } else { 0.068 });
    let smi = rng.random_bool(0.55);
    let population = if smi { "SMI" } else { "CC" };

    // Clinical profile.
    let child = age < 18;
    let mut conditions = vec![match (smi, child) {
        (true, false) => pick(&mut rng, &SMI_ADULT),
        (true, true) => pick(&mut rng, &SMI_CHILD),
        (false, false) => pick(&mut rng, &CC_ADULT),
        (false, true) => pick(&mut rng, &CC_CHILD),
    }];
    let extra = if child { 0 } else { rng.random_range(0..=2) };
    for _ in 0..extra {
        let c = if smi {
            pick(&mut rng, &COMORBID)
        } else {
            pick(&mut rng, &CC_ADULT)
        };
        if !conditions.contains(&c) {
            conditions.push(c);
        }
    }
    if !smi && rng.random_bool(0.25) {
        conditions.push(if rng.random_bool(0.5) { "F329" } else { "F419" });
    }
    let sud =
        (!child && rng.random_bool(if smi { 0.32 } else { 0.12 })).then(|| pick(&mut rng, &SUD));
    if let Some(s) = sud {
        conditions.push(s);
    }
    if !child && rng.random_bool(0.30) {
        conditions.push("F17210");
    }
    let util = pick(&mut rng, &[(0.5, 25), (1.0, 45), (1.6, 22), (2.5, 8)]);

    // Coverage and death.
    let start = if rng.random_bool(0.88) {
        win.start
    } else {
        (win.start + rng.random_range(30..=540))
            .min(win.end - 90)
            .max(win.start)
    };
    let years = f64::from(win.end - win.start + 1) / 365.25;
    let age_factor = if age >= 65 {
        3.0
    } else if child {
        0.2
    } else {
        1.0
    };
    let death_lo = (start + 20).max(win.start + 30);
    let death = (rng.random_bool((0.0115 * age_factor * years).min(1.0)) && death_lo <= win.end)
        .then(|| rng.random_range(death_lo..=win.end));
    let life_end = death.unwrap_or(win.end);

    let mut g = Gen {
        hospital: rng.random_range(0..HOSPITALS),
        clinic: rng.random_range(0..CLINICS),
        cmhc: rng.random_range(0..CMHCS),
        pharmacy: rng.random_range(0..PHARMACIES),
        rng,
        win,
        age,
        smi,
        conditions,
        sud,
        util,
        death,
        start,
        life_end,
        medicaid: Vec::new(),
        hh: Vec::new(),
        claims: Vec::new(),
        stays: Vec::new(),
        home_discharges: Vec::new(),
    };
    g.enrollment();
    g.acute_events();
    g.routine_care();
    g.drop_conflicts();
    let (contacts, fading) = g.contacts();
    g.health_home_claims(&contacts, population);
    let claims = g.finish_claims();

    let mut spans: Vec<Span> = g.medicaid.iter().chain(g.hh.iter()).copied().collect();
    spans.sort_by_key(|s| (s.start, s.health_home));
    MemberRows {
        person: Person {
            number,
            birth,
            sex,
            race,
            ethnicity,
            county,
            rural,
            death,
            dual,
            population,
        },
        spans,
        claims,
        contacts,
        fading,
    }
}

impl Gen {
    pub(super) fn mco_at(&self, day: i32) -> Option<usize> {
        self.medicaid.iter().find(|s| s.covers(day)).map(|s| s.mco)
    }

    pub(super) fn hh_at(&self, day: i32) -> Option<&Span> {
        self.hh.iter().find(|s| s.covers(day))
    }

    /// The effect of the member's partner and MCO on `day` ([`PARTNER_EFFECTS`], [`MCO_EFFECTS`]).
    pub(super) fn effect_at(&self, day: i32) -> Effect {
        let mco = self.mco_at(day).map_or(AVERAGE, |m| MCO_EFFECTS[m]);
        let hhp = self
            .hh_at(day)
            .map_or(AVERAGE, |s| Effect::of_partner(s.hhp, &self.win, day));
        hhp.times(mco)
    }

    /// Medicaid and Health Home spans: gaps, MCO and partner changes, late assignment, opt-outs,
    /// and death closing everything.
    fn enrollment(&mut self) {
        let win = self.win;
        let rng = &mut self.rng;
        let mco1 = pick(rng, &[(0usize, 36), (1, 34), (2, 30)]);

        // A gap of 1-3 whole months, sometimes with a change of MCO after it.
        let mut gap = None;
        if rng.random_bool(0.10) {
            let lo = month_index(self.start + 60) + 1;
            let hi = month_index(win.end - 120);
            if lo <= hi {
                let gm = rng.random_range(lo..=hi);
                let len = rng.random_range(1..=3);
                let mco2 = if rng.random_bool(0.4) {
                    (mco1 + rng.random_range(1..=2)) % 3
                } else {
                    mco1
                };
                gap = Some((month_first(gm), month_first(gm + len), mco2));
            }
        }
        let medicaid = |start, end, mco| Span {
            health_home: false,
            start,
            end,
            mco,
            hhp: 0,
            opted_out: false,
        };
        self.medicaid = match gap {
            Some((g0, g1, mco2)) => {
                vec![medicaid(self.start, g0 - 1, mco1), medicaid(g1, OPEN, mco2)]
            }
            None => vec![medicaid(self.start, OPEN, mco1)],
        };

        // Some members who qualify are never assigned to a partner (the comparison group of a
        // cost-of-care evaluation, and a cohort's outreach list).
        if rng.random_bool(0.10) {
            self.hh = Vec::new();
            if let Some(d) = self.death {
                for s in self.medicaid.iter_mut() {
                    s.end = s.end.min(d);
                }
                self.medicaid.retain(|s| s.start <= d);
            }
            return;
        }
        // Assignment to a partner, sometimes well after coverage starts (a year or more for some:
        // their claims before enrolment are the "before" of a cost-of-care comparison).
        let mut hh0 = if rng.random_bool(0.25) {
            self.start + rng.random_range(20..=720)
        } else {
            self.start
        };
        hh0 = hh0.min(win.end - 30).max(self.start);
        if let Some((g0, g1, _)) = gap
            && (g0..g1).contains(&hh0)
        {
            hh0 = g1;
        }
        let mut hhp = partner_for(rng, self.medicaid[0].mco, None);
        self.hh = Vec::new();
        pieces_from(&self.medicaid, hh0, &mut hhp, rng, &mut self.hh);

        // A change of partner: one span ends, the next starts the following day.
        if !self.hh.is_empty() && rng.random_bool(0.09) {
            let p = day_in(rng, self.hh[0].start + 30, win.end - 30);
            if let Some(i) = self.hh.iter().position(|s| s.start < p && p <= s.end) {
                let old = self.hh[i];
                let new = partner_for(rng, old.mco, Some(old.hhp));
                self.hh[i].end = p - 1;
                self.hh.insert(
                    i + 1,
                    Span {
                        start: p,
                        hhp: new,
                        ..old
                    },
                );
                for s in &mut self.hh[i + 2..] {
                    if contracted(new, s.mco) {
                        s.hhp = new;
                    }
                }
            }
        }

        // Opting out ends the assignment; some are reassessed and re-enrolled a year later.
        if !self.hh.is_empty() && rng.random_bool(0.05) {
            let o = day_in(rng, self.hh[0].start + 30, win.end - 20);
            let alive = self.death.is_none_or(|d| o < d);
            if let Some(i) = self.hh.iter().position(|s| s.start <= o && o <= s.end)
                && alive
            {
                self.hh[i].end = o;
                self.hh[i].opted_out = true;
                let mut hhp = self.hh[i].hhp;
                self.hh.truncate(i + 1);
                if rng.random_bool(0.4) {
                    let back = o + 365 + rng.random_range(0..=60);
                    if back <= win.end - 20 && self.medicaid.iter().any(|s| s.covers(back)) {
                        pieces_from(&self.medicaid, back, &mut hhp, rng, &mut self.hh);
                    }
                }
            }
        }

        if let Some(d) = self.death {
            for spans in [&mut self.medicaid, &mut self.hh] {
                spans.retain(|s| s.start <= d);
                for s in spans.iter_mut() {
                    s.end = s.end.min(d);
                }
            }
        }
    }

    /// Dates of a Poisson process with `per_year` events over the member's lifetime in the data;
    /// while not covered by Medicaid only a few (fee-for-service) survive.
    pub(super) fn dates(&mut self, per_year: f64) -> Vec<i32> {
        let days = self.life_end - self.start + 1;
        if days <= 0 {
            return Vec::new();
        }
        let n = poisson(&mut self.rng, per_year * f64::from(days) / 365.25);
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let d = self.rng.random_range(self.start..=self.life_end);
            let covered = self.mco_at(d).is_some();
            if covered || self.rng.random_bool(0.3) {
                out.push(d);
            }
        }
        out.sort_unstable();
        out
    }
}

/// Health Home spans covering every Medicaid span from `from` on, keeping the partner while it is
/// contracted with the span's MCO.
fn pieces_from(
    medicaid: &[Span],
    from: i32,
    hhp: &mut usize,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Span>,
) {
    for m in medicaid {
        let start = m.start.max(from);
        if start > m.end {
            continue;
        }
        if !contracted(*hhp, m.mco) {
            *hhp = partner_for(rng, m.mco, None);
        }
        out.push(Span {
            health_home: true,
            start,
            end: m.end,
            mco: m.mco,
            hhp: *hhp,
            opted_out: false,
        });
    }
}
