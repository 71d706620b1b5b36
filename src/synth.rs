//! Synthetic extracts: a seeded, deterministic generator of the four contract extracts (claims,
//! contacts, members, enrollment) for a made-up Kansas Health Home programme.
//!
//! The data carry the patterns the Health Home measures look for — ED visits (repeat, same-day,
//! behavioural, overdose, leading to admission), inpatient stays (transfers, readmissions,
//! nonacute, psychiatric with follow-up at varied delays), Health Home contacts and the monthly
//! S0281 payment rule, enrollment gaps, MCO and partner changes, opt-outs, deaths, and claim
//! replacements and voids. Every person, provider number and amount is invented; diagnosis,
//! procedure, revenue and taxonomy codes are real public codes used illustratively; NDCs and NPIs
//! only have the right shape.
//!
//! Partners and MCOs do not all serve their members alike: by the tables `PARTNER_EFFECTS` and
//! `MCO_EFFECTS`, some follow up sooner, reach their members more often or see fewer ED visits
//! and readmissions than others, and one partner drifts from strong to weak over the last two
//! full years, so that comparisons and control charts have something to show. The effects act
//! only through the rows generated (which visits, contacts and stays happen, and when).
//!
//! Each member is generated from its own RNG, derived from (seed, member index), so the output
//! depends only on [`SynthOptions`] — not on block size, thread count or machine — and members are
//! streamed in blocks so memory stays bounded for large populations.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, ListBuilder,
    StringBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, MEMBERS};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub members: usize,
    pub seed: u64,
    /// First calendar year of data; data runs from Jan 1 of this year for `years` full years plus
    /// the first quarter of the year after (so "the latest full year" is start_year + years - 1).
    pub start_year: i32,
    pub years: u32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            members: 300,
            seed: 42,
            start_year: 2024,
            years: 2,
        }
    }
}

/// Counts of what was written, for the command to print (no member-level data).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SynthSummary {
    pub members: usize,
    /// Rows of `claims.parquet`, replacement and void versions included.
    pub claim_lines: usize,
    pub contacts: usize,
    pub enrollment_spans: usize,
    /// Void claims written (each cancels one earlier version).
    pub voided_claims: usize,
    /// Replacement claims written (each supersedes one earlier version).
    pub replaced_claims: usize,
    pub deaths: usize,
}

/// Generate the four extracts and write `claims.parquet`, `contacts.parquet`, `members.parquet`,
/// `enrollment.parquet` into `out_dir` (created if missing).
pub fn write(opts: &SynthOptions, out_dir: &Path) -> Result<SynthSummary> {
    let win = Window::new(opts)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut claims = Sink::create(out_dir, "claims.parquet", CLAIMS.schema())?;
    let mut contacts = Sink::create(out_dir, "contacts.parquet", CONTACTS.schema())?;
    let mut members = Sink::create(out_dir, "members.parquet", MEMBERS.schema())?;
    let mut enrollment = Sink::create(out_dir, "enrollment.parquet", ENROLLMENT.schema())?;

    let mut summary = SynthSummary::default();
    let mut first = 0;
    let bar = crate::pipeline::progress(opts.members as u64);
    bar.set_message("members");
    while first < opts.members {
        bar.set_position(first as u64);
        let n = BLOCK.min(opts.members - first);
        let block = generate_block(opts.seed, win, first, n);
        summary.add(&block);
        claims.write(&claims_batch(&block)?)?;
        contacts.write(&contacts_batch(&block)?)?;
        members.write(&members_batch(&block)?)?;
        enrollment.write(&enrollment_batch(&block)?)?;
        first += n;
    }
    // Renamed into place only once all four are complete, so a failed run leaves no partial set.
    for sink in [claims, contacts, members, enrollment] {
        sink.finish()?;
    }
    Ok(summary)
}

/// Members per RecordBatch and row group.
const BLOCK: usize = 5_000;
/// `end` of a span that is still open.
const OPEN: i32 = i32::MAX;

impl SynthSummary {
    fn add(&mut self, block: &[MemberRows]) {
        for m in block {
            self.members += 1;
            self.claim_lines += m.claims.iter().map(|c| c.lines.len()).sum::<usize>();
            self.contacts += m.contacts.len();
            self.enrollment_spans += m.spans.len();
            self.voided_claims += m.claims.iter().filter(|c| c.adjustment == VOID).count();
            self.replaced_claims += m
                .claims
                .iter()
                .filter(|c| c.adjustment == REPLACEMENT)
                .count();
            self.deaths += usize::from(m.person.death.is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// The (year, month, day) of a day number.
fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_len(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Months since year 0, so months can be counted and stepped with integers.
fn month_index(day: i32) -> i32 {
    let (y, m, _) = civil_from_days(day);
    y * 12 + m as i32 - 1
}

fn month_first(mi: i32) -> i32 {
    days_from_civil(mi.div_euclid(12), mi.rem_euclid(12) as u32 + 1, 1)
}

fn month_last(mi: i32) -> i32 {
    let (y, m) = (mi.div_euclid(12), mi.rem_euclid(12) as u32 + 1);
    days_from_civil(y, m, month_len(y, m))
}

/// The data period, both ends inclusive, and the span over which a drifting partner drifts.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i32,
    end: i32,
    /// The last two full years of the data (all of it when shorter): a drifting partner's effect
    /// is its `from` value up to `drift_start` and its `to` value from `drift_end` on.
    drift_start: i32,
    drift_end: i32,
}

impl Window {
    fn new(opts: &SynthOptions) -> Result<Window> {
        if !(1900..=2200).contains(&opts.start_year) || opts.years > 50 {
            return Err(Error::Usage(format!(
                "synthetic data needs a start year in 1900..=2200 and at most 50 years (got {} and {})",
                opts.start_year, opts.years
            )));
        }
        let start = days_from_civil(opts.start_year, 1, 1);
        let end = days_from_civil(opts.start_year + opts.years as i32, 3, 31);
        let last_full = opts.start_year + opts.years as i32 - 1;
        let drift_start = days_from_civil(last_full - 1, 1, 1).max(start);
        let drift_end = days_from_civil(last_full, 12, 31).min(end);
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

// ---------------------------------------------------------------------------------------------
// Randomness that is identical on every platform

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn member_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ splitmix64(index as u64))
}

/// e^-x for x >= 0 from + - * / only: those are correctly rounded everywhere, whereas the
/// platform libm's `exp` may differ in the last bit and change a sampled count.
fn exp_neg(x: f64) -> f64 {
    let mut y = x.max(0.0);
    let mut halvings = 0;
    while y > 0.5 {
        y /= 2.0;
        halvings += 1;
    }
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 1..20 {
        term *= -y / f64::from(n);
        sum += term;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

/// A Poisson count (Knuth's method, in chunks so that large means do not underflow).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let mut left = mean;
    let mut total = 0;
    while left > 0.0 {
        let chunk = left.min(20.0);
        left -= chunk;
        let limit = exp_neg(chunk);
        let mut p: f64 = rng.random();
        while p > limit {
            total += 1;
            p *= rng.random::<f64>();
        }
    }
    total
}

/// A weighted choice.
fn pick<T: Clone>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (item, w) in items {
        if r < *w {
            return item.clone();
        }
        r -= w;
    }
    items[items.len() - 1].0.clone()
}

/// A day in `lo..=hi` (`lo` when the range is empty).
fn day_in(rng: &mut ChaCha8Rng, lo: i32, hi: i32) -> i32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

fn money(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    cents(lo + (hi - lo) * rng.random::<f64>())
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------------------------
// Programme and provider reference data (invented)

const MCOS: [&str; 3] = ["MCO-A", "MCO-B", "MCO-C"];

/// Partners and the MCOs (indices into [`MCOS`]) each is contracted with.
const PARTNERS: [(&str, &[usize]); 8] = [
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
struct Effect {
    /// Follow-up after an event: the visit after a psychiatric discharge (FUH-HH) or a
    /// mental-health ED visit (FUM-HH), substance-use treatment after an SUD or overdose ED visit
    /// (FUA-HH, IET-HH) and the transitional-care contact after a discharge home (HH-TCC). The
    /// chances of a follow-up within 7 days weigh `follow_up` times as much, those of one after
    /// 30 days or none at all 1/`follow_up` times ([`follow_up_delay`]).
    follow_up: f64,
    /// Health Home outreach: the chance of contacts in a month is multiplied by it (HH-ENGAGE-HH,
    /// HH-FIRST, and the S0281 claims that follow from reached contacts).
    engagement: f64,
    /// Acute and institutional care: ED visits (AMB-HH, and the stays they lead to: IU-HH),
    /// readmissions within 30 days (PCR-HH) and admissions to a nursing facility from the
    /// community (AIF-HH) are multiplied by it.
    acute: f64,
}

const fn effect(follow_up: f64, engagement: f64, acute: f64) -> Effect {
    Effect {
        follow_up,
        engagement,
        acute,
    }
}

/// The programme's own propensities.
const AVERAGE: Effect = effect(1.0, 1.0, 1.0);

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
const PARTNER_EFFECTS: [(Effect, Effect); 8] = [
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
const MCO_EFFECTS: [Effect; 3] = [effect(1.15, 1.05, 0.95), AVERAGE, effect(0.85, 0.95, 1.1)];

/// No combined acute factor exceeds this (ED visits are drawn at this multiple and thinned).
const MAX_ACUTE: f64 = 1.5;

impl Effect {
    fn times(self, o: Effect) -> Effect {
        effect(
            self.follow_up * o.follow_up,
            self.engagement * o.engagement,
            self.acute * o.acute,
        )
    }

    /// A partner's effect on `day`: its `from` effect before the drift window, its `to` effect
    /// after, a straight line in between.
    fn of_partner(hhp: usize, win: &Window, day: i32) -> Effect {
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
fn follow_up_delay(
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

fn contracted(hhp: usize, mco: usize) -> bool {
    PARTNERS[hhp].1.contains(&mco)
}

/// A partner contracted with `mco`, other than `not` when given.
fn partner_for(rng: &mut ChaCha8Rng, mco: usize, not: Option<usize>) -> usize {
    let options: Vec<usize> = (0..PARTNERS.len())
        .filter(|&p| contracted(p, mco) && Some(p) != not)
        .collect();
    options[rng.random_range(0..options.len() as u32) as usize]
}

/// Provider families; an NPI is built from the family and an index within it.
#[derive(Clone, Copy)]
enum Prov {
    Hospital = 1,
    PsychHospital,
    RehabHospital,
    Snf,
    Clinic,
    Clinician,
    Cmhc,
    BhClinician,
    EdGroup,
    EdPhysician,
    Pharmacy,
    Partner,
    SudProgram,
}

const HOSPITALS: u32 = 24;
const PSYCH_HOSPITALS: u32 = 4;
const REHAB_HOSPITALS: u32 = 3;
const SNFS: u32 = 30;
const CLINICS: u32 = 60;
const CMHCS: u32 = 26;
const PHARMACIES: u32 = 80;

/// A ten-digit NPI whose last digit is the Luhn check digit over `80840` + the first nine, as the
/// NPI standard defines it, so that validators accept the synthetic numbers.
fn npi(family: Prov, index: u32) -> u64 {
    let body = 100_000_000 + (family as u32) * 1_000_000 + index;
    let mut digits: Vec<u32> = vec![8, 0, 8, 4, 0];
    digits.extend(body.to_string().bytes().map(|b| u32::from(b - b'0')));
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        sum += if i % 2 == 0 {
            let x = d * 2;
            x / 10 + x % 10
        } else {
            *d
        };
    }
    u64::from(body) * 10 + u64::from((10 - sum % 10) % 10)
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

// Diagnosis codes (ICD-10-CM, no dots).
const SMI_ADULT: [(&str, u32); 10] = [
    ("F209", 12),
    ("F250", 5),
    ("F319", 14),
    ("F312", 4),
    ("F331", 10),
    ("F332", 8),
    ("F329", 14),
    ("F411", 12),
    ("F4310", 10),
    ("F603", 4),
];
const SMI_CHILD: [(&str, u32); 6] = [
    ("F329", 20),
    ("F900", 25),
    ("F4310", 20),
    ("F913", 15),
    ("F419", 15),
    ("F319", 5),
];
const CC_ADULT: [(&str, u32); 9] = [
    ("E119", 25),
    ("I10", 20),
    ("J449", 12),
    ("J45909", 10),
    ("I509", 8),
    ("N1830", 5),
    ("E6601", 6),
    ("E785", 8),
    ("I2510", 6),
];
const CC_CHILD: [(&str, u32); 4] = [("J45909", 50), ("E109", 20), ("G40909", 15), ("E6601", 15)];
const COMORBID: [(&str, u32); 6] = [
    ("I10", 30),
    ("E119", 20),
    ("E785", 20),
    ("E6601", 12),
    ("J45909", 10),
    ("K219", 8),
];
const SUD: [(&str, u32); 5] = [
    ("F1020", 35),
    ("F1120", 25),
    ("F1220", 15),
    ("F1520", 15),
    ("F1420", 10),
];
const PSYCH_STAY_DX: [(&str, u32); 10] = [
    ("F209", 20),
    ("F250", 10),
    ("F251", 5),
    ("F319", 15),
    ("F312", 10),
    ("F314", 5),
    ("F332", 15),
    ("F333", 10),
    ("F322", 5),
    ("F323", 5),
];
const MEDICAL_STAY_DX: [(&str, u32); 12] = [
    ("J189", 15),
    ("I5023", 8),
    ("J441", 10),
    ("N390", 10),
    ("A419", 10),
    ("L03115", 8),
    ("I214", 5),
    ("K859", 5),
    ("E1165", 6),
    ("I639", 4),
    ("K5792", 4),
    ("R55", 5),
];
const ED_MEDICAL_DX: [(&str, u32); 14] = [
    ("R079", 14),
    ("R109", 12),
    ("J069", 10),
    ("M5450", 8),
    ("N390", 8),
    ("R519", 7),
    ("S0990XA", 5),
    ("K529", 5),
    ("R0602", 6),
    ("L03115", 4),
    ("T7840XA", 3),
    ("J45901", 4),
    ("R55", 4),
    ("S93401A", 6),
];
const ED_MH_DX: [(&str, u32); 9] = [
    ("F329", 15),
    ("F419", 15),
    ("F209", 10),
    ("F319", 8),
    ("F4310", 10),
    ("F332", 8),
    ("F29", 8),
    ("F411", 8),
    ("F603", 5),
];
const ED_SUD_DX: [(&str, u32); 6] = [
    ("F10129", 30),
    ("F1010", 15),
    ("F11120", 10),
    ("F15129", 10),
    ("F12129", 8),
    ("F10239", 10),
];
const OVERDOSE_DX: [(&str, u32); 6] = [
    ("T401X1A", 25),
    ("T402X1A", 20),
    ("T40411A", 30),
    ("T40601A", 10),
    ("T403X1A", 5),
    ("T401X4A", 5),
];
/// Social-needs codes a replacement claim sometimes adds.
const Z_CODES: [&str; 4] = ["Z590", "Z5941", "Z560", "Z600"];

/// Rendering taxonomies of behavioural-health practitioners, with the visit codes each bills.
const BH_PRACTITIONERS: [(&str, &[(&str, u32)]); 6] = [
    ("2084P0800X", &[("99214", 60), ("99213", 40)]),
    ("364SP0808X", &[("99214", 70), ("99213", 30)]),
    ("101YM0800X", &[("90834", 50), ("90837", 30), ("90832", 20)]),
    ("103T00000X", &[("90834", 40), ("90837", 50), ("90832", 10)]),
    ("1041C0700X", &[("90834", 50), ("90837", 25), ("90832", 25)]),
    ("101YM0800X", &[("90837", 40), ("90834", 40), ("90832", 20)]),
];

fn visit_price(code: &str) -> f64 {
    match code {
        "99212" => 46.0,
        "99213" => 72.0,
        "99214" => 108.0,
        "99215" => 146.0,
        "90832" => 56.0,
        "90834" => 76.0,
        "90837" => 106.0,
        "90791" => 132.0,
        "H0001" => 140.0,
        "H0004" => 62.0,
        "H0005" => 38.0,
        _ => 40.0,
    }
}

/// Pharmacy products (illustrative 11-digit NDCs) and the price range of a 30-day fill.
struct Drug {
    ndc: &'static str,
    lo: f64,
    hi: f64,
}

fn drugs_for(dx: &str) -> &'static [Drug] {
    const METFORMIN: Drug = Drug {
        ndc: "00093104801",
        lo: 4.0,
        hi: 12.0,
    };
    const GLARGINE: Drug = Drug {
        ndc: "00088222033",
        lo: 260.0,
        hi: 420.0,
    };
    const LISINOPRIL: Drug = Drug {
        ndc: "68180051301",
        lo: 4.0,
        hi: 10.0,
    };
    const ATORVASTATIN: Drug = Drug {
        ndc: "00378395177",
        lo: 6.0,
        hi: 18.0,
    };
    const ALBUTEROL: Drug = Drug {
        ndc: "00173068220",
        lo: 30.0,
        hi: 62.0,
    };
    const FUROSEMIDE: Drug = Drug {
        ndc: "00054429925",
        lo: 4.0,
        hi: 9.0,
    };
    const RISPERIDONE: Drug = Drug {
        ndc: "50458032006",
        lo: 12.0,
        hi: 40.0,
    };
    const ARIPIPRAZOLE: Drug = Drug {
        ndc: "59148000813",
        lo: 18.0,
        hi: 90.0,
    };
    const QUETIAPINE: Drug = Drug {
        ndc: "00310027110",
        lo: 10.0,
        hi: 35.0,
    };
    const LITHIUM: Drug = Drug {
        ndc: "00054452725",
        lo: 8.0,
        hi: 20.0,
    };
    const SERTRALINE: Drug = Drug {
        ndc: "16729021301",
        lo: 5.0,
        hi: 14.0,
    };
    const FLUOXETINE: Drug = Drug {
        ndc: "00777310502",
        lo: 5.0,
        hi: 14.0,
    };
    const BUPRENORPHINE: Drug = Drug {
        ndc: "12496120803",
        lo: 120.0,
        hi: 260.0,
    };
    match dx {
        "E119" | "E109" => &[METFORMIN, GLARGINE],
        "I10" => &[LISINOPRIL],
        "E785" | "I2510" => &[ATORVASTATIN],
        "J449" | "J45909" => &[ALBUTEROL],
        "I509" => &[FUROSEMIDE, LISINOPRIL],
        "F209" | "F250" => &[RISPERIDONE, ARIPIPRAZOLE],
        "F319" | "F312" => &[LITHIUM, QUETIAPINE],
        "F329" | "F331" | "F332" | "F411" | "F419" | "F4310" => &[SERTRALINE, FLUOXETINE],
        "F1120" => &[BUPRENORPHINE],
        _ => &[],
    }
}

// ---------------------------------------------------------------------------------------------
// Rows, as plain structs

const ORIGINAL: &str = "original";
const REPLACEMENT: &str = "replacement";
const VOID: &str = "void";

#[derive(Debug, Clone)]
struct Person {
    number: u32,
    birth: i32,
    sex: &'static str,
    race: Option<&'static str>,
    ethnicity: Option<&'static str>,
    county: Option<u32>,
    rural: Option<bool>,
    death: Option<i32>,
    dual: bool,
    population: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    health_home: bool,
    start: i32,
    /// [`OPEN`] while open.
    end: i32,
    mco: usize,
    /// Only meaningful on Health Home spans.
    hhp: usize,
    opted_out: bool,
}

impl Span {
    fn covers(&self, day: i32) -> bool {
        self.start <= day && day <= self.end
    }
}

/// What a claim is, for the generator's own bookkeeping (not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Office,
    Lab,
    Pharmacy,
    Bh,
    SudTreatment,
    EdFacility,
    EdProfessional,
    Stay(StayKind),
    HealthHome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StayKind {
    Medical,
    Psych,
    Detox,
    Rehab,
    Snf,
}

#[derive(Debug, Clone)]
struct Claim {
    seq: u32,
    kind: Kind,
    /// A visit placed on purpose (follow-up after a psychiatric discharge, SUD treatment after
    /// an ED visit), kept even in the quiet window after a psychiatric discharge.
    scheduled: bool,
    claim_type: &'static str,
    adjustment: &'static str,
    replaces: Option<u32>,
    mco: Option<usize>,
    from: i32,
    to: i32,
    admission: Option<i32>,
    discharge: Option<i32>,
    discharge_status: Option<&'static str>,
    type_of_bill: Option<&'static str>,
    place_of_service: Option<&'static str>,
    principal_dx: Option<&'static str>,
    other_dx: Vec<&'static str>,
    billing_npi: Option<u64>,
    rendering_npi: Option<u64>,
    taxonomy: Option<&'static str>,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, Default)]
struct Line {
    revenue: Option<&'static str>,
    procedure: Option<&'static str>,
    modifier_1: Option<&'static str>,
    modifier_2: Option<&'static str>,
    ndc: Option<&'static str>,
    days_supply: Option<i32>,
    paid: f64,
}

fn line(revenue: Option<&'static str>, procedure: Option<&'static str>, paid: f64) -> Line {
    Line {
        revenue,
        procedure,
        paid,
        ..Line::default()
    }
}

#[derive(Debug, Clone)]
struct Contact {
    seq: u32,
    date: i32,
    hhp: usize,
    service: &'static str,
    mode: &'static str,
    reached: bool,
    staff_role: Option<&'static str>,
}

/// Everything one member contributes to the four extracts.
#[derive(Debug, Clone)]
struct MemberRows {
    person: Person,
    spans: Vec<Span>,
    claims: Vec<Claim>,
    contacts: Vec<Contact>,
    /// Whether the member's engagement was set to fade (not written; tests compare it).
    #[cfg_attr(not(test), allow(dead_code))]
    fading: bool,
}

// ---------------------------------------------------------------------------------------------
// Generation

fn generate_block(seed: u64, win: Window, first: usize, n: usize) -> Vec<MemberRows> {
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

/// A discharge home (or against advice) that ends a chain of stays.
#[derive(Debug, Clone, Copy)]
struct HomeDischarge {
    day: i32,
    psych: bool,
}

/// Events handled in date order, so that a stay blocks events that fall inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Ed,
    Admit(StayKind),
    Terminal,
}

struct Gen {
    rng: ChaCha8Rng,
    win: Window,
    age: i32,
    smi: bool,
    /// Chronic conditions, the qualifying one first.
    conditions: Vec<&'static str>,
    sud: Option<&'static str>,
    util: f64,
    death: Option<i32>,
    start: i32,
    life_end: i32,
    medicaid: Vec<Span>,
    hh: Vec<Span>,
    hospital: u32,
    clinic: u32,
    cmhc: u32,
    pharmacy: u32,
    claims: Vec<Claim>,
    stays: Vec<(i32, i32)>,
    home_discharges: Vec<HomeDischarge>,
}

fn generate_member(seed: u64, win: Window, index: usize) -> MemberRows {
    let mut rng = member_rng(seed, index);
    let number = index as u32 + 1;

    // Demographics.
    let age = pick(&mut rng, &[(0u8, 12), (1, 75), (2, 13)]);
    let age = match age {
        0 => rng.random_range(5..=17),
        1 => rng.random_range(18..=64),
        _ => rng.random_range(65..=90),
    };
    let (start_year, _, _) = civil_from_days(win.start);
    let birth = if rng.random_bool(0.01) {
        // Band-boundary birthdays: turning 18 or 65 on the first or last day of the latest full year.
        let (end_year, _, _) = civil_from_days(win.end);
        let latest = end_year - 1;
        let band = if rng.random_bool(0.5) { 18 } else { 65 };
        if rng.random_bool(0.5) {
            days_from_civil(latest - band, 1, 1)
        } else {
            days_from_civil(latest - band, 12, 31)
        }
    } else {
        days_from_civil(start_year - age - 1, 1, 1) + rng.random_range(0..365)
    };
    let age = start_year - civil_from_days(birth).0 - 1;
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
    fn mco_at(&self, day: i32) -> Option<usize> {
        self.medicaid.iter().find(|s| s.covers(day)).map(|s| s.mco)
    }

    fn hh_at(&self, day: i32) -> Option<&Span> {
        self.hh.iter().find(|s| s.covers(day))
    }

    /// The effect of the member's partner and MCO on `day` ([`PARTNER_EFFECTS`], [`MCO_EFFECTS`]).
    fn effect_at(&self, day: i32) -> Effect {
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

        // Assignment to a partner, sometimes well after coverage starts.
        let mut hh0 = if rng.random_bool(0.15) {
            self.start + rng.random_range(20..=400)
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

    fn new_claim(&mut self, kind: Kind, claim_type: &'static str, from: i32, to: i32) -> Claim {
        Claim {
            seq: 0,
            kind,
            scheduled: false,
            claim_type,
            adjustment: ORIGINAL,
            replaces: None,
            mco: self.mco_at(from),
            from,
            to,
            admission: None,
            discharge: None,
            discharge_status: None,
            type_of_bill: None,
            place_of_service: None,
            principal_dx: None,
            other_dx: Vec::new(),
            billing_npi: None,
            rendering_npi: None,
            taxonomy: None,
            lines: Vec::new(),
        }
    }

    /// Other diagnoses: the member's conditions except the principal one, at most four.
    fn other_dx(&self, principal: &str) -> Vec<&'static str> {
        self.conditions
            .iter()
            .copied()
            .filter(|c| *c != principal)
            .take(4)
            .collect()
    }

    /// Dates of a Poisson process with `per_year` events over the member's lifetime in the data;
    /// while not covered by Medicaid only a few (fee-for-service) survive.
    fn dates(&mut self, per_year: f64) -> Vec<i32> {
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

    // --- ED visits and inpatient stays ----------------------------------------------------------

    fn acute_events(&mut self) {
        let ed_rate = pick(&mut self.rng, &[(0.3, 60), (1.2, 30), (3.0, 8), (8.0, 2)]);
        let mut heap = BinaryHeap::new();
        let mut order = 0u32;
        let mut push = |heap: &mut BinaryHeap<_>, day: i32, ev: Event| {
            heap.push(Reverse((day, order, ev)));
            order += 1;
        };
        // Drawn at the highest rate any partner and MCO give, then thinned to the member's own
        // on each day.
        for d in self.dates(ed_rate * MAX_ACUTE) {
            let keep = self.effect_at(d).acute / MAX_ACUTE;
            if self.rng.random_bool(keep.min(1.0)) {
                push(&mut heap, d, Event::Ed);
            }
        }
        for d in self.dates(0.02 * self.util) {
            push(&mut heap, d, Event::Admit(StayKind::Medical));
        }
        let psych_rate = if self.smi { 0.08 } else { 0.008 };
        for d in self.dates(psych_rate) {
            push(&mut heap, d, Event::Admit(StayKind::Psych));
        }
        if self.sud.is_some() {
            for d in self.dates(0.04) {
                push(&mut heap, d, Event::Admit(StayKind::Detox));
            }
        }
        // Admissions to a nursing facility straight from the community (AIF-HH), mostly of older
        // members; thinned as ED visits are.
        if self.age >= 18 {
            let snf_rate = if self.age >= 65 { 0.05 } else { 0.01 } * self.util;
            for d in self.dates(snf_rate * MAX_ACUTE) {
                let keep = self.effect_at(d).acute / MAX_ACUTE;
                if self.rng.random_bool(keep.min(1.0)) {
                    push(&mut heap, d, Event::Admit(StayKind::Snf));
                }
            }
        }
        if let Some(d) = self.death
            && self.rng.random_bool(0.45)
        {
            let day = (d - self.rng.random_range(1..=9)).max(self.start);
            push(&mut heap, day, Event::Terminal);
        }

        let mut busy_until = i32::MIN;
        while let Some(Reverse((day, _, ev))) = heap.pop() {
            if day > self.life_end || day <= busy_until {
                continue;
            }
            let admission = match ev {
                Event::Ed => self.ed_episode(day),
                Event::Admit(kind) => Some((day, kind, None, self.hospital, false)),
                Event::Terminal => Some((day, StayKind::Medical, None, self.hospital, false)),
            };
            let Some((admit, kind, dx, hospital, via_ed)) = admission else {
                continue;
            };
            if admit > self.life_end {
                continue;
            }
            let terminal = ev == Event::Terminal;
            let (last, home) = self.stay_chain(admit, kind, dx, hospital, via_ed, terminal);
            busy_until = last;
            if let Some(h) = home {
                // Readmissions within 30 days, more often soon after discharge.
                let readmit = 0.16 * self.effect_at(h.day).acute;
                if self.rng.random_bool(readmit.min(0.9)) {
                    let gap = pick(&mut self.rng, &[(1..=7, 40), (8..=14, 25), (15..=30, 35)]);
                    let back = h.day + self.rng.random_range(gap);
                    let kind = if h.psych && self.rng.random_bool(0.7) {
                        StayKind::Psych
                    } else {
                        StayKind::Medical
                    };
                    push(&mut heap, back, Event::Admit(kind));
                }
                if h.psych {
                    self.psych_follow_up(h.day);
                }
            }
        }
    }

    /// One ED visit (sometimes two the same day); returns the admission it leads to, if any.
    #[allow(clippy::type_complexity)]
    fn ed_episode(&mut self, day: i32) -> Option<(i32, StayKind, Option<&'static str>, u32, bool)> {
        let hospital = if self.rng.random_bool(0.8) {
            self.hospital
        } else {
            self.rng.random_range(0..HOSPITALS)
        };
        let (mh_p, sud_p, od_p) = match (self.smi, self.sud) {
            (_, Some("F1120")) => (0.12, 0.12, 0.12),
            (true, Some(_)) => (0.22, 0.15, 0.03),
            (true, None) => (0.22, 0.03, 0.01),
            (false, Some(_)) => (0.08, 0.15, 0.03),
            (false, None) => (0.08, 0.02, 0.005),
        };
        let r: f64 = self.rng.random();
        let category = if r < mh_p {
            1
        } else if r < mh_p + sud_p {
            2
        } else if r < mh_p + sud_p + od_p {
            3
        } else {
            0
        };
        let (dx, level) = self.ed_visit(day, category, hospital);
        if self.rng.random_bool(0.05) {
            // A second ED visit the same day, elsewhere.
            let other = (hospital + 1 + self.rng.random_range(0..HOSPITALS - 1)) % HOSPITALS;
            self.ed_visit(day, 0, other);
        }
        let admit_p = match (category, level) {
            (3, _) => 0.35,
            (1, _) => 0.22,
            (_, 5) => 0.35,
            (_, 4) => 0.15,
            _ => 0.05,
        };
        if self.rng.random_bool(admit_p) {
            let admit = day + i32::from(self.rng.random_bool(0.3));
            let (kind, dx) = match category {
                1 if dx.starts_with("F2") || dx.starts_with("F3") => (StayKind::Psych, Some(dx)),
                1 => (StayKind::Psych, None),
                2 => (StayKind::Detox, Some(dx)),
                3 => (StayKind::Medical, Some(dx)),
                _ if self.rng.random_bool(0.5) => (StayKind::Medical, None),
                _ => (StayKind::Medical, Some(dx)),
            };
            return Some((admit, kind, dx, hospital, true));
        }
        let f = self.effect_at(day).follow_up;
        match category {
            // Follow-up after a mental-health ED visit: for the programme 22% within 7 days, 55%
            // within 30.
            1 => {
                let buckets = [(Some(0..=7), 22.0), (Some(8..=30), 33.0), (None, 45.0)];
                if let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) {
                    let d = day + delay;
                    if d <= self.life_end {
                        self.bh_visit(d, false);
                    }
                }
            }
            // Substance-use treatment after an SUD or overdose ED visit: initiation (for the
            // programme 28% within 14 days, 40% within 30), engagement.
            2 | 3 => {
                let buckets = [
                    (Some(1..=7), 14.0),
                    (Some(8..=14), 14.0),
                    (Some(15..=30), 12.0),
                    (None, 60.0),
                ];
                let delay = follow_up_delay(&mut self.rng, f, &buckets)?;
                let first = day + delay;
                let mut visits = vec![first];
                if self.rng.random_bool((0.75 * f).min(0.95)) {
                    visits.push(first + self.rng.random_range(3..=15));
                    visits.push(first + self.rng.random_range(16..=34));
                }
                for d in visits {
                    if d <= self.life_end {
                        self.sud_visit(d, Some(dx), true);
                    }
                }
            }
            _ => {}
        }
        None
    }

    /// The facility and professional claims of one ED visit; returns (principal dx, level 1-5).
    fn ed_visit(&mut self, day: i32, category: u8, hospital: u32) -> (&'static str, u32) {
        let rng = &mut self.rng;
        let (dx, other): (&'static str, Vec<&'static str>) = match category {
            1 => (pick(rng, &ED_MH_DX), Vec::new()),
            2 => (pick(rng, &ED_SUD_DX), Vec::new()),
            3 => (pick(rng, &OVERDOSE_DX), vec!["F11120"]),
            _ => (pick(rng, &ED_MEDICAL_DX), Vec::new()),
        };
        let level = pick(rng, &[(1u32, 5), (2, 12), (3, 33), (4, 32), (5, 18)]);
        let em = ["99281", "99282", "99283", "99284", "99285"][level as usize - 1];
        let rev = pick(
            rng,
            &[
                ("0450", 80),
                ("0451", 6),
                ("0452", 4),
                ("0456", 5),
                ("0459", 5),
            ],
        );
        let base = [90.0, 150.0, 250.0, 400.0, 650.0][level as usize - 1];
        let mut lines = vec![line(
            Some(rev),
            Some(em),
            money(rng, base * 0.8, base * 1.2),
        )];
        let extras: [(&str, Option<&str>, f64, f64, f64); 7] = [
            ("0300", Some("80053"), 0.45, 20.0, 60.0),
            ("0305", Some("85025"), 0.45, 12.0, 30.0),
            ("0320", Some("71046"), 0.30, 40.0, 120.0),
            ("0350", Some("70450"), 0.15, 150.0, 400.0),
            ("0250", None, 0.40, 10.0, 80.0),
            ("0636", Some("J2405"), 0.20, 5.0, 20.0),
            ("0730", Some("93005"), 0.20, 20.0, 50.0),
        ];
        for (r, p, prob, lo, hi) in extras {
            if rng.random_bool(prob) {
                lines.push(line(Some(r), p, money(rng, lo, hi)));
            }
        }
        if rng.random_bool(0.08) {
            lines.push(line(Some("0981"), Some(em), money(rng, 40.0, 160.0)));
        }
        let with_professional = rng.random_bool(0.9);
        let physician = hospital * 8 + rng.random_range(0..8);
        let prof_paid = money(rng, base * 0.25, base * 0.4);

        let mut c = self.new_claim(Kind::EdFacility, "outpatient", day, day);
        c.type_of_bill = Some("0131");
        c.principal_dx = Some(dx);
        c.other_dx = other.clone();
        c.other_dx.extend(self.other_dx(dx).into_iter().take(2));
        c.billing_npi = Some(npi(Prov::Hospital, hospital));
        c.taxonomy = Some("282N00000X");
        c.lines = lines;
        let other_dx = c.other_dx.clone();
        self.claims.push(c);
        if with_professional {
            let mut p = self.new_claim(Kind::EdProfessional, "professional", day, day);
            p.place_of_service = Some("23");
            p.principal_dx = Some(dx);
            p.other_dx = other_dx;
            p.billing_npi = Some(npi(Prov::EdGroup, hospital));
            p.rendering_npi = Some(npi(Prov::EdPhysician, physician));
            p.taxonomy = Some("207P00000X");
            p.lines = vec![line(None, Some(em), prof_paid)];
            self.claims.push(p);
        }
        (dx, level)
    }

    fn los(&mut self, kind: StayKind) -> i32 {
        let range = match kind {
            StayKind::Medical => pick(
                &mut self.rng,
                &[
                    (1..=2, 35),
                    (3..=4, 32),
                    (5..=7, 20),
                    (8..=14, 10),
                    (15..=30, 3),
                ],
            ),
            StayKind::Psych => pick(&mut self.rng, &[(2..=5, 30), (6..=10, 45), (11..=21, 25)]),
            StayKind::Detox => 2..=6,
            StayKind::Rehab => 7..=20,
            StayKind::Snf => pick(
                &mut self.rng,
                &[(5..=20, 70), (21..=100, 25), (101..=200, 5)],
            ),
        };
        self.rng.random_range(range)
    }

    /// A stay and whatever it leads to directly (transfer, skilled nursing, rehabilitation).
    /// Returns the last day spent in an institution and the discharge home, if it ended so.
    fn stay_chain(
        &mut self,
        admit: i32,
        kind: StayKind,
        dx: Option<&'static str>,
        hospital: u32,
        via_ed: bool,
        terminal: bool,
    ) -> (i32, Option<HomeDischarge>) {
        let (mut admit, mut kind, mut via_ed) = (admit, kind, via_ed);
        let mut facility = match kind {
            StayKind::Psych if self.rng.random_bool(0.6) => (
                Prov::PsychHospital,
                self.rng.random_range(0..PSYCH_HOSPITALS),
            ),
            StayKind::Snf => (Prov::Snf, self.rng.random_range(0..SNFS)),
            _ => (Prov::Hospital, hospital),
        };
        let mut dx = match dx {
            Some(d) => d,
            None => self.stay_dx(kind),
        };
        let mut acute_psych = kind == StayKind::Psych;
        loop {
            let los = match (terminal, self.death) {
                (true, Some(d)) if kind == StayKind::Medical => d - admit,
                _ => self.los(kind),
            };
            let planned = admit + los;
            let (discharge, status) = match self.death {
                Some(d) if d <= planned => (Some(d), "20"),
                _ if planned > self.win.end => (None, "30"),
                _ => (Some(planned), self.discharge_status(kind)),
            };
            self.stay_claim(kind, admit, discharge, status, facility, dx, via_ed);
            let last = discharge.unwrap_or(self.win.end);
            self.stays.push((admit, last));
            let next_admit = last + i32::from(self.rng.random_bool(0.4));
            if next_admit > self.life_end {
                return (last, None);
            }
            match status {
                "02" => {
                    // Direct transfer to another acute hospital of the same kind.
                    facility = match facility {
                        (Prov::PsychHospital, i) => {
                            (Prov::PsychHospital, (i + 1) % PSYCH_HOSPITALS)
                        }
                        (_, i) => (
                            Prov::Hospital,
                            (i + 1 + self.rng.random_range(0..HOSPITALS - 1)) % HOSPITALS,
                        ),
                    };
                    admit = next_admit;
                }
                "03" => {
                    kind = StayKind::Snf;
                    facility = (Prov::Snf, self.rng.random_range(0..SNFS));
                    admit = next_admit;
                }
                "62" => {
                    kind = StayKind::Rehab;
                    facility = (
                        Prov::RehabHospital,
                        self.rng.random_range(0..REHAB_HOSPITALS),
                    );
                    admit = next_admit;
                }
                "01" | "07" => {
                    let home = HomeDischarge {
                        day: last,
                        psych: acute_psych,
                    };
                    self.home_discharges.push(home);
                    return (last, Some(home));
                }
                _ => return (last, None),
            }
            via_ed = false;
            if kind != StayKind::Psych {
                acute_psych = false;
            }
            if kind == StayKind::Snf || kind == StayKind::Rehab {
                dx = match dx {
                    "I639" => "I69351",
                    d => d,
                };
            }
        }
    }

    fn stay_dx(&mut self, kind: StayKind) -> &'static str {
        match kind {
            StayKind::Psych => {
                let own = self.conditions[0];
                if self.smi
                    && (own.starts_with("F2") || own.starts_with("F31") || own.starts_with("F33"))
                    && self.rng.random_bool(0.7)
                {
                    own
                } else {
                    pick(&mut self.rng, &PSYCH_STAY_DX)
                }
            }
            StayKind::Detox => match self.sud {
                Some("F1020") | None => "F10239",
                Some("F1120") => "F11230",
                Some(other) => other,
            },
            _ => pick(&mut self.rng, &MEDICAL_STAY_DX),
        }
    }

    fn discharge_status(&mut self, kind: StayKind) -> &'static str {
        let snf = if self.age >= 40 { 7 } else { 2 };
        match kind {
            StayKind::Medical => pick(
                &mut self.rng,
                &[
                    ("01", 80 - snf),
                    ("02", 6),
                    ("03", snf),
                    ("62", 3),
                    ("07", 2),
                ],
            ),
            StayKind::Psych => pick(&mut self.rng, &[("01", 94), ("02", 4), ("07", 2)]),
            StayKind::Detox => pick(&mut self.rng, &[("01", 85), ("07", 15)]),
            StayKind::Rehab => pick(&mut self.rng, &[("01", 85), ("03", 15)]),
            StayKind::Snf => "01",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stay_claim(
        &mut self,
        kind: StayKind,
        admit: i32,
        discharge: Option<i32>,
        status: &'static str,
        facility: (Prov, u32),
        dx: &'static str,
        via_ed: bool,
    ) {
        let to = discharge.unwrap_or(self.win.end);
        let days = f64::from((to - admit).max(1));
        let rng = &mut self.rng;
        let open = discharge.is_none();
        let (tob, taxonomy) = match kind {
            StayKind::Snf => {
                let tob = if open {
                    "0212"
                } else if rng.random_bool(0.85) {
                    "0211"
                } else {
                    "0221"
                };
                (tob, "314000000X")
            }
            _ => {
                let taxonomy = match facility.0 {
                    Prov::PsychHospital => "283Q00000X",
                    Prov::RehabHospital => "283X00000X",
                    _ => "282N00000X",
                };
                (if open { "0112" } else { "0111" }, taxonomy)
            }
        };
        let (room, per_diem) = match kind {
            StayKind::Medical => (
                if rng.random_bool(0.35) {
                    "0100"
                } else {
                    "0120"
                },
                1350.0,
            ),
            StayKind::Psych => (if rng.random_bool(0.4) { "0114" } else { "0124" }, 880.0),
            StayKind::Detox => (if rng.random_bool(0.5) { "0116" } else { "0126" }, 760.0),
            StayKind::Rehab => (if rng.random_bool(0.5) { "0118" } else { "0128" }, 1100.0),
            StayKind::Snf => (if rng.random_bool(0.6) { "0120" } else { "0191" }, 240.0),
        };
        let mut lines = vec![line(
            Some(room),
            None,
            cents(days * per_diem * (0.85 + 0.3 * rng.random::<f64>())),
        )];
        lines.push(line(Some("0250"), None, money(rng, 80.0, 900.0)));
        let extras: &[(&str, f64, f64, f64)] = match kind {
            StayKind::Medical => &[
                ("0300", 0.9, 80.0, 500.0),
                ("0320", 0.4, 60.0, 250.0),
                ("0350", 0.2, 200.0, 700.0),
                ("0200", 0.1, 1500.0, 5000.0),
            ],
            StayKind::Psych | StayKind::Detox => &[("0300", 0.5, 40.0, 200.0)],
            StayKind::Rehab | StayKind::Snf => {
                &[("0420", 0.9, 200.0, 900.0), ("0430", 0.6, 150.0, 700.0)]
            }
        };
        for &(rev, p, lo, hi) in extras {
            if rng.random_bool(p) {
                lines.push(line(Some(rev), None, money(rng, lo, hi)));
            }
        }
        if via_ed && rng.random_bool(0.3) {
            lines.push(line(Some("0450"), Some("99284"), money(rng, 200.0, 600.0)));
        }
        let mut c = self.new_claim(Kind::Stay(kind), "inpatient", admit, to);
        c.admission = Some(admit);
        c.discharge = discharge;
        c.discharge_status = Some(status);
        c.type_of_bill = Some(tob);
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx);
        c.billing_npi = Some(npi(facility.0, facility.1));
        c.taxonomy = Some(taxonomy);
        c.lines = lines;
        self.claims.push(c);
    }

    /// A behavioural-health visit after a psychiatric discharge, at a delay spread over 0-60 days,
    /// or none (for the programme: 32% within 7 days, 66% within 30, 20% none in 60).
    fn psych_follow_up(&mut self, discharge: i32) {
        let f = self.effect_at(discharge).follow_up;
        let buckets = [
            (Some(0..=0), 4.8),
            (Some(1..=6), 19.2),
            (Some(7..=7), 8.0),
            (Some(8..=8), 6.4),
            (Some(9..=30), 27.2),
            (Some(31..=60), 14.4),
            (None, 20.0),
        ];
        let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) else {
            return;
        };
        let d = discharge + delay;
        if d <= self.life_end {
            self.bh_visit(d, true);
        }
    }

    fn bh_visit(&mut self, day: i32, scheduled: bool) {
        let rng = &mut self.rng;
        let who = rng.random_range(0..BH_PRACTITIONERS.len() as u32) as usize;
        let (taxonomy, codes) = BH_PRACTITIONERS[who];
        let code = if scheduled && rng.random_bool(0.2) {
            "90791"
        } else {
            pick(rng, codes)
        };
        let tele = rng.random_bool(0.15);
        let pos = if tele {
            if rng.random_bool(0.5) { "02" } else { "10" }
        } else if rng.random_bool(0.5) {
            "53"
        } else {
            "11"
        };
        let paid = cents(visit_price(code) * (0.9 + 0.2 * rng.random::<f64>()));
        let clinician = self.cmhc * 8 + who as u32;
        let own = self.conditions[0];
        let dx = if own.starts_with('F') {
            own
        } else {
            self.conditions
                .iter()
                .copied()
                .find(|c| c.starts_with('F') && !c.starts_with("F17"))
                .unwrap_or("F329")
        };
        let mut c = self.new_claim(Kind::Bh, "professional", day, day);
        c.scheduled = scheduled;
        c.place_of_service = Some(pos);
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx).into_iter().take(2).collect();
        c.billing_npi = Some(npi(Prov::Cmhc, self.cmhc));
        c.rendering_npi = Some(npi(Prov::BhClinician, clinician));
        c.taxonomy = Some(taxonomy);
        let mut l = line(None, Some(code), paid);
        if tele {
            l.modifier_1 = Some("95");
        }
        c.lines = vec![l];
        self.claims.push(c);
    }

    fn sud_visit(&mut self, day: i32, dx: Option<&'static str>, scheduled: bool) {
        let rng = &mut self.rng;
        let code = if scheduled && rng.random_bool(0.3) {
            "H0001"
        } else {
            pick(rng, &[("H0004", 60), ("H0005", 40)])
        };
        let units = if code == "H0001" {
            1.0
        } else {
            f64::from(rng.random_range(2..=4u32))
        };
        let paid = cents(visit_price(code) * units * (0.9 + 0.2 * rng.random::<f64>()));
        let program = self.cmhc % 10;
        let counselor = program * 8 + rng.random_range(0..8);
        let dx = match dx {
            Some(d) if d.starts_with('F') => d,
            _ => self.sud.unwrap_or("F1120"),
        };
        let mut c = self.new_claim(Kind::SudTreatment, "professional", day, day);
        c.scheduled = scheduled;
        c.place_of_service = Some("57");
        c.principal_dx = Some(dx);
        c.billing_npi = Some(npi(Prov::SudProgram, program));
        c.rendering_npi = Some(npi(Prov::SudProgram, 100 + counselor));
        c.taxonomy = Some("101YA0400X");
        let mut l = line(None, Some(code), paid);
        if code == "H0005" {
            l.modifier_1 = Some("HQ");
        }
        c.lines = vec![l];
        self.claims.push(c);
    }

    // --- Office visits, labs, pharmacy, routine behavioural health ------------------------------

    fn routine_care(&mut self) {
        let office_rate = if self.age < 18 {
            3.5
        } else if self.age >= 65 {
            6.0
        } else {
            4.5
        } * self.util;
        for d in self.dates(office_rate) {
            self.office_visit(d);
        }
        let lab_rate = 2.0 * self.util
            + if self.conditions.contains(&"E119") || self.smi {
                1.0
            } else {
                0.0
            };
        for d in self.dates(lab_rate) {
            self.lab(d);
        }
        let bh_rate = if self.smi {
            f64::from(self.rng.random_range(3..=12u32))
        } else if self
            .conditions
            .iter()
            .any(|c| c.starts_with('F') && !c.starts_with("F17"))
        {
            2.0
        } else {
            0.0
        };
        for d in self.dates(bh_rate) {
            self.bh_visit(d, false);
        }
        if self.sud.is_some() && self.rng.random_bool(0.3) {
            for d in self.dates(6.0) {
                self.sud_visit(d, None, false);
            }
        }
        self.pharmacy();
    }

    fn office_visit(&mut self, day: i32) {
        let rng = &mut self.rng;
        let code = pick(
            rng,
            &[("99212", 10), ("99213", 45), ("99214", 35), ("99215", 10)],
        );
        let dx = if rng.random_bool(0.8) {
            self.conditions[rng.random_range(0..self.conditions.len() as u32) as usize]
        } else {
            pick(
                rng,
                &[
                    ("Z0000", 30),
                    ("J069", 25),
                    ("R509", 15),
                    ("M545", 15),
                    ("B349", 15),
                ],
            )
        };
        let tele = rng.random_bool(0.06);
        let mut lines = vec![line(
            None,
            Some(code),
            cents(visit_price(code) * (0.9 + 0.2 * rng.random::<f64>())),
        )];
        if rng.random_bool(0.4) {
            let (extra, lo, hi) = pick(
                rng,
                &[
                    (("36415", 3.0, 5.0), 40),
                    (("96127", 4.0, 6.0), 20),
                    (("93000", 15.0, 20.0), 10),
                    (("81002", 3.0, 4.0), 20),
                    (("99401", 20.0, 30.0), 10),
                ],
            );
            if rng.random_bool(0.5) {
                lines[0].modifier_1 = Some("25");
            }
            lines.push(line(None, Some(extra), money(rng, lo, hi)));
        }
        if tele {
            lines[0].modifier_2 = Some("95");
        }
        let taxonomy = if self.age < 18 {
            "208000000X"
        } else if rng.random_bool(0.6) {
            "207Q00000X"
        } else {
            "207R00000X"
        };
        let clinician = self.clinic * 6 + rng.random_range(0..6);
        let mut c = self.new_claim(Kind::Office, "professional", day, day);
        c.place_of_service = Some(if tele { "10" } else { "11" });
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx);
        c.billing_npi = Some(npi(Prov::Clinic, self.clinic));
        c.rendering_npi = Some(npi(Prov::Clinician, clinician));
        c.taxonomy = Some(taxonomy);
        c.lines = lines;
        self.claims.push(c);
    }

    fn lab(&mut self, day: i32) {
        let rng = &mut self.rng;
        let tests: [(&str, &str, f64, u32); 6] = [
            ("0301", "80053", 14.0, 60),
            ("0305", "85025", 9.0, 60),
            ("0301", "83036", 12.0, 30),
            ("0301", "80061", 16.0, 30),
            ("0301", "84443", 20.0, 15),
            ("0300", "81001", 4.0, 20),
        ];
        let mut lines = Vec::new();
        for (rev, cpt, price, pct) in tests {
            if rng.random_range(0..100) < pct {
                lines.push(line(
                    Some(rev),
                    Some(cpt),
                    cents(price * (0.9 + 0.2 * rng.random::<f64>())),
                ));
            }
        }
        if lines.is_empty() {
            lines.push(line(Some("0301"), Some("80048"), money(rng, 9.0, 12.0)));
        }
        lines.push(line(Some("0300"), Some("36415"), money(rng, 3.0, 5.0)));
        let dx = self
            .conditions
            .iter()
            .copied()
            .find(|c| !c.starts_with('F'))
            .unwrap_or("Z0000");
        let hospital = self.hospital;
        let mut c = self.new_claim(Kind::Lab, "outpatient", day, day);
        c.type_of_bill = Some("0131");
        c.principal_dx = Some(dx);
        c.billing_npi = Some(npi(Prov::Hospital, hospital));
        c.taxonomy = Some("282N00000X");
        c.lines = lines;
        self.claims.push(c);
    }

    /// Roughly monthly 30-day fills of the member's maintenance drugs, with missed months.
    fn pharmacy(&mut self) {
        let mut products: Vec<&'static Drug> = Vec::new();
        for c in self.conditions.clone() {
            let options = drugs_for(c);
            if !options.is_empty() && self.rng.random_bool(0.75) {
                let d = &options[self.rng.random_range(0..options.len() as u32) as usize];
                if !products.iter().any(|p| p.ndc == d.ndc) {
                    products.push(d);
                }
            }
        }
        let adherence = 0.75 + 0.22 * self.rng.random::<f64>();
        for drug in products {
            let mut d = self.start + self.rng.random_range(0..60);
            while d <= self.life_end {
                let covered = self.mco_at(d).is_some();
                if self.rng.random_bool(adherence) && (covered || self.rng.random_bool(0.1)) {
                    let paid = money(&mut self.rng, drug.lo, drug.hi);
                    let mut c = self.new_claim(Kind::Pharmacy, "pharmacy", d, d);
                    c.billing_npi = Some(npi(Prov::Pharmacy, self.pharmacy));
                    c.taxonomy = Some("3336C0003X");
                    c.lines = vec![Line {
                        ndc: Some(drug.ndc),
                        days_supply: Some(30),
                        paid,
                        ..Line::default()
                    }];
                    self.claims.push(c);
                    d += 30 + self.rng.random_range(-2..=6);
                } else {
                    d += 30;
                }
            }
        }
    }

    /// Drops routine care that would fall inside a stay, and behavioural-health care in the 60
    /// days after a psychiatric discharge other than the follow-up placed on purpose, so that
    /// follow-up timing is what the generator chose. Office visits in that window stay, without
    /// mental-health diagnoses.
    fn drop_conflicts(&mut self) {
        let stays = std::mem::take(&mut self.stays);
        let psych: Vec<i32> = self
            .home_discharges
            .iter()
            .filter(|h| h.psych)
            .map(|h| h.day)
            .collect();
        let fallback = self
            .conditions
            .iter()
            .copied()
            .find(|c| !c.starts_with('F'))
            .unwrap_or("Z0000");
        self.claims.retain_mut(|c| {
            let routine = matches!(
                c.kind,
                Kind::Office | Kind::Lab | Kind::Pharmacy | Kind::Bh | Kind::SudTreatment
            );
            if !routine {
                return true;
            }
            if stays.iter().any(|&(a, d)| a < c.from && c.from < d) {
                return false;
            }
            let in_window = psych.iter().any(|&d| d <= c.from && c.from <= d + 60);
            if !in_window || c.scheduled {
                return true;
            }
            match c.kind {
                Kind::Bh | Kind::SudTreatment => false,
                Kind::Office => {
                    if c.principal_dx.is_some_and(|d| d.starts_with('F')) {
                        c.principal_dx = Some(fallback);
                    }
                    c.other_dx.retain(|d| !d.starts_with('F') && *d != fallback);
                    true
                }
                _ => true,
            }
        });
        self.stays = stays;
    }

    // --- Health Home contacts and billing -------------------------------------------------------

    fn contacts(&mut self) -> (Vec<Contact>, bool) {
        let mut out = Vec::new();
        let p0 = 0.72 + 0.25 * self.rng.random::<f64>();
        let fading = self.rng.random_bool(0.2);
        let Some(first) = self.hh.first().map(|s| s.start) else {
            return (out, fading);
        };
        let m0 = month_index(first);
        for span in self.hh.clone() {
            let last = span.end.min(self.life_end).min(self.win.end);
            if last < span.start {
                continue;
            }
            for mi in month_index(span.start)..=month_index(last) {
                let lo = month_first(mi).max(span.start);
                let hi = month_last(mi).min(last);
                let mut p = (p0 * self.effect_at(lo).engagement).min(0.98);
                if fading {
                    for _ in 0..(mi - m0) {
                        p *= 0.88;
                    }
                }
                if !self.rng.random_bool(p) {
                    continue;
                }
                let n = pick(&mut self.rng, &[(1, 40), (2, 32), (3, 18), (4, 10)]);
                for _ in 0..n {
                    let date = day_in(&mut self.rng, lo, hi);
                    let c = self.contact(date, span.hhp, None);
                    out.push(c);
                }
            }
        }
        // Transitional care after a discharge home: for the programme about half within 7 days,
        // three quarters within 30.
        for h in self.home_discharges.clone() {
            let f = self.effect_at(h.day).follow_up;
            let buckets = [(Some(0..=7), 50.0), (Some(8..=30), 25.0), (None, 25.0)];
            let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) else {
                continue;
            };
            let date = h.day + delay;
            if date > self.life_end {
                continue;
            }
            if let Some(span) = self.hh_at(date).copied() {
                let c = self.contact(date, span.hhp, Some("transitional_care"));
                out.push(c);
            }
        }
        out.sort_by_key(|c| c.date);
        for (i, c) in out.iter_mut().enumerate() {
            c.seq = i as u32 + 1;
        }
        (out, fading)
    }

    fn contact(&mut self, date: i32, hhp: usize, service: Option<&'static str>) -> Contact {
        let rng = &mut self.rng;
        let transitional = service.is_some();
        let service = service.unwrap_or_else(|| {
            pick(
                rng,
                &[
                    ("care_coordination", 28),
                    ("care_management", 26),
                    ("health_promotion", 16),
                    ("member_family_support", 10),
                    ("community_referral", 10),
                    ("transitional_care", 3),
                ],
            )
        });
        let mode = if transitional {
            pick(rng, &[("phone", 50), ("in_person", 40), ("video", 10)])
        } else {
            pick(
                rng,
                &[
                    ("phone", 44),
                    ("in_person", 26),
                    ("video", 8),
                    ("mail", 8),
                    ("portal", 14),
                ],
            )
        };
        let reached = match mode {
            _ if transitional => rng.random_bool(0.92),
            "phone" => rng.random_bool(0.75),
            "mail" => rng.random_bool(0.55),
            "portal" => rng.random_bool(0.85),
            "video" => rng.random_bool(0.97),
            _ => rng.random_bool(0.99),
        };
        let staff_role = pick(
            rng,
            &[
                (Some("care_coordinator"), 45),
                (
                    Some("nurse_care_coordinator"),
                    if transitional { 60 } else { 28 },
                ),
                (Some("peer_support"), 10),
                (Some("social_worker"), 9),
                (None, 8),
            ],
        );
        Contact {
            seq: 0,
            date,
            hhp,
            service,
            mode,
            reached,
            staff_role,
        }
    }

    /// One S0281 claim per month with at least one reached contact, billed by the partner that
    /// reached the member first that month (the payment rule).
    fn health_home_claims(&mut self, contacts: &[Contact], population: &'static str) {
        let mut months: BTreeMap<i32, (i32, usize)> = BTreeMap::new();
        for c in contacts.iter().filter(|c| c.reached) {
            months.entry(month_index(c.date)).or_insert((c.date, c.hhp));
        }
        let rate = if population == "SMI" { 235.0 } else { 190.0 };
        let dx = self.conditions[0];
        for (mi, (date, hhp)) in months {
            let Some(span) = self
                .hh
                .iter()
                .find(|s| s.covers(date) && s.hhp == hhp)
                .copied()
            else {
                continue;
            };
            let from = month_first(mi).max(span.start);
            let to = month_last(mi).min(span.end).min(self.life_end);
            let mut c = self.new_claim(Kind::HealthHome, "professional", from, to);
            c.mco = Some(span.mco);
            c.place_of_service = Some("99");
            c.principal_dx = Some(dx);
            c.billing_npi = Some(npi(Prov::Partner, hhp as u32));
            c.taxonomy = Some("251S00000X");
            c.lines = vec![line(None, Some("S0281"), rate)];
            self.claims.push(c);
        }
    }

    /// Orders claims by date, numbers them, and appends replacements and voids.
    fn finish_claims(&mut self) -> Vec<Claim> {
        let mut claims = std::mem::take(&mut self.claims);
        claims.sort_by_key(|c| c.from);
        for (i, c) in claims.iter_mut().enumerate() {
            c.seq = i as u32 + 1;
        }
        let mut next = claims.len() as u32 + 1;
        let originals = claims.len();
        for i in 0..originals {
            let r: f64 = self.rng.random();
            if r < 0.01 {
                let v = void_of(&claims[i], next);
                next += 1;
                claims.push(v);
            } else if r < 0.04 {
                let rep = self.replacement_of(&claims[i], next);
                next += 1;
                let r2: f64 = self.rng.random();
                let follow = if r2 < 0.12 {
                    Some(self.replacement_of(&rep, next))
                } else if r2 < 0.18 {
                    Some(void_of(&rep, next))
                } else {
                    None
                };
                claims.push(rep);
                if let Some(f) = follow {
                    next += 1;
                    claims.push(f);
                }
            }
        }
        claims.sort_by_key(|c| (c.from, c.seq));
        claims
    }

    fn replacement_of(&mut self, old: &Claim, seq: u32) -> Claim {
        let mut c = old.clone();
        c.seq = seq;
        c.adjustment = REPLACEMENT;
        c.replaces = Some(old.seq);
        if old.principal_dx.is_some() && self.rng.random_bool(0.35) {
            let z = Z_CODES[self.rng.random_range(0..Z_CODES.len() as u32) as usize];
            if !c.other_dx.contains(&z) {
                c.other_dx.push(z);
            }
        } else {
            for l in &mut c.lines {
                l.paid = cents(l.paid * (0.8 + 0.4 * self.rng.random::<f64>()));
            }
        }
        c
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

fn void_of(old: &Claim, seq: u32) -> Claim {
    let mut c = old.clone();
    c.seq = seq;
    c.adjustment = VOID;
    c.replaces = Some(old.seq);
    for l in &mut c.lines {
        l.paid = -l.paid;
    }
    c
}

// ---------------------------------------------------------------------------------------------
// Arrow conversion and Parquet output

fn member_id(number: u32) -> String {
    format!("M{number:07}")
}

fn claim_id(buf: &mut String, number: u32, seq: u32) -> &str {
    buf.clear();
    let _ = write!(buf, "C{number:07}-{seq:05}");
    buf
}

fn npi_str(buf: &mut String, npi: Option<u64>) -> Option<&str> {
    let n = npi?;
    buf.clear();
    let _ = write!(buf, "{n}");
    Some(buf)
}

fn claims_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block
        .iter()
        .map(|m| m.claims.iter().map(|c| c.lines.len()).sum::<usize>())
        .sum();
    let s = || StringBuilder::with_capacity(rows, rows * 6);
    let (mut member, mut claim, mut claim_type, mut adjustment, mut replaces, mut mco) =
        (s(), s(), s(), s(), s(), s());
    let (mut tob, mut revenue, mut procedure, mut mod1, mut mod2, mut pos) =
        (s(), s(), s(), s(), s(), s());
    let (mut principal, mut billing, mut rendering, mut taxonomy, mut ndc, mut status) =
        (s(), s(), s(), s(), s(), s());
    let mut other_dx = ListBuilder::new(StringBuilder::new());
    let mut line_number = Int32Builder::with_capacity(rows);
    let mut days_supply = Int32Builder::with_capacity(rows);
    let d = || Date32Builder::with_capacity(rows);
    let (mut from, mut to, mut admission, mut discharge) = (d(), d(), d(), d());
    let mut paid = Float64Builder::with_capacity(rows);
    let (mut buf, mut buf2) = (String::new(), String::new());
    for m in block {
        let mid = member_id(m.person.number);
        for c in &m.claims {
            for (i, l) in c.lines.iter().enumerate() {
                member.append_value(&mid);
                claim.append_value(claim_id(&mut buf, m.person.number, c.seq));
                line_number.append_value(i as i32 + 1);
                claim_type.append_value(c.claim_type);
                adjustment.append_value(c.adjustment);
                replaces.append_option(
                    c.replaces
                        .map(|r| claim_id(&mut buf2, m.person.number, r).to_string()),
                );
                mco.append_option(c.mco.map(|i| MCOS[i]));
                from.append_value(c.from);
                to.append_value(c.to);
                admission.append_option(c.admission);
                discharge.append_option(c.discharge);
                status.append_option(c.discharge_status);
                tob.append_option(c.type_of_bill);
                revenue.append_option(l.revenue);
                procedure.append_option(l.procedure);
                mod1.append_option(l.modifier_1);
                mod2.append_option(l.modifier_2);
                pos.append_option(c.place_of_service);
                principal.append_option(c.principal_dx);
                if c.other_dx.is_empty() {
                    other_dx.append_null();
                } else {
                    for dx in &c.other_dx {
                        other_dx.values().append_value(dx);
                    }
                    other_dx.append(true);
                }
                billing.append_option(npi_str(&mut buf, c.billing_npi));
                rendering.append_option(npi_str(&mut buf, c.rendering_npi));
                taxonomy.append_option(c.taxonomy);
                ndc.append_option(l.ndc);
                days_supply.append_option(l.days_supply);
                paid.append_value(l.paid);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        std::sync::Arc::new(member.finish()),
        std::sync::Arc::new(claim.finish()),
        std::sync::Arc::new(line_number.finish()),
        std::sync::Arc::new(claim_type.finish()),
        std::sync::Arc::new(adjustment.finish()),
        std::sync::Arc::new(replaces.finish()),
        std::sync::Arc::new(mco.finish()),
        std::sync::Arc::new(from.finish()),
        std::sync::Arc::new(to.finish()),
        std::sync::Arc::new(admission.finish()),
        std::sync::Arc::new(discharge.finish()),
        std::sync::Arc::new(status.finish()),
        std::sync::Arc::new(tob.finish()),
        std::sync::Arc::new(revenue.finish()),
        std::sync::Arc::new(procedure.finish()),
        std::sync::Arc::new(mod1.finish()),
        std::sync::Arc::new(mod2.finish()),
        std::sync::Arc::new(pos.finish()),
        std::sync::Arc::new(principal.finish()),
        std::sync::Arc::new(other_dx.finish()),
        std::sync::Arc::new(billing.finish()),
        std::sync::Arc::new(rendering.finish()),
        std::sync::Arc::new(taxonomy.finish()),
        std::sync::Arc::new(ndc.finish()),
        std::sync::Arc::new(days_supply.finish()),
        std::sync::Arc::new(paid.finish()),
    ];
    Ok(RecordBatch::try_new(CLAIMS.schema(), columns)?)
}

fn contacts_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block.iter().map(|m| m.contacts.len()).sum();
    let s = || StringBuilder::with_capacity(rows, rows * 10);
    let (mut id, mut member, mut hhp, mut service, mut mode, mut role) =
        (s(), s(), s(), s(), s(), s());
    let mut date = Date32Builder::with_capacity(rows);
    let mut reached = BooleanBuilder::with_capacity(rows);
    let mut buf = String::new();
    for m in block {
        let mid = member_id(m.person.number);
        for c in &m.contacts {
            buf.clear();
            let _ = write!(buf, "K{:07}-{:05}", m.person.number, c.seq);
            id.append_value(&buf);
            member.append_value(&mid);
            date.append_value(c.date);
            hhp.append_value(PARTNERS[c.hhp].0);
            service.append_value(c.service);
            mode.append_value(c.mode);
            reached.append_value(c.reached);
            role.append_option(c.staff_role);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        std::sync::Arc::new(id.finish()),
        std::sync::Arc::new(member.finish()),
        std::sync::Arc::new(date.finish()),
        std::sync::Arc::new(hhp.finish()),
        std::sync::Arc::new(service.finish()),
        std::sync::Arc::new(mode.finish()),
        std::sync::Arc::new(reached.finish()),
        std::sync::Arc::new(role.finish()),
    ];
    Ok(RecordBatch::try_new(CONTACTS.schema(), columns)?)
}

fn members_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let n = block.len();
    let s = || StringBuilder::with_capacity(n, n * 12);
    let (mut id, mut sex, mut race, mut ethnicity, mut county) = (s(), s(), s(), s(), s());
    let mut birth = Date32Builder::with_capacity(n);
    let mut death = Date32Builder::with_capacity(n);
    let mut rural = BooleanBuilder::with_capacity(n);
    let mut dual = BooleanBuilder::with_capacity(n);
    for m in block {
        let p = &m.person;
        id.append_value(member_id(p.number));
        birth.append_value(p.birth);
        sex.append_value(p.sex);
        race.append_option(p.race);
        ethnicity.append_option(p.ethnicity);
        county.append_option(p.county.map(|c| c.to_string()));
        rural.append_option(p.rural);
        death.append_option(p.death);
        dual.append_value(p.dual);
    }
    let columns: Vec<ArrayRef> = vec![
        std::sync::Arc::new(id.finish()),
        std::sync::Arc::new(birth.finish()),
        std::sync::Arc::new(sex.finish()),
        std::sync::Arc::new(race.finish()),
        std::sync::Arc::new(ethnicity.finish()),
        std::sync::Arc::new(county.finish()),
        std::sync::Arc::new(rural.finish()),
        std::sync::Arc::new(death.finish()),
        std::sync::Arc::new(dual.finish()),
    ];
    Ok(RecordBatch::try_new(MEMBERS.schema(), columns)?)
}

fn enrollment_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block.iter().map(|m| m.spans.len()).sum();
    let s = || StringBuilder::with_capacity(rows, rows * 8);
    let (mut member, mut span_type, mut mco, mut hhp, mut population) = (s(), s(), s(), s(), s());
    let mut start = Date32Builder::with_capacity(rows);
    let mut end = Date32Builder::with_capacity(rows);
    let mut opted_out = BooleanBuilder::with_capacity(rows);
    for m in block {
        let mid = member_id(m.person.number);
        for sp in &m.spans {
            member.append_value(&mid);
            span_type.append_value(if sp.health_home {
                "health_home"
            } else {
                "medicaid"
            });
            start.append_value(sp.start);
            end.append_option((sp.end != OPEN).then_some(sp.end));
            mco.append_value(MCOS[sp.mco]);
            if sp.health_home {
                hhp.append_value(PARTNERS[sp.hhp].0);
                population.append_value(m.person.population);
                opted_out.append_value(sp.opted_out);
            } else {
                hhp.append_null();
                population.append_null();
                opted_out.append_null();
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        std::sync::Arc::new(member.finish()),
        std::sync::Arc::new(span_type.finish()),
        std::sync::Arc::new(start.finish()),
        std::sync::Arc::new(end.finish()),
        std::sync::Arc::new(mco.finish()),
        std::sync::Arc::new(hhp.finish()),
        std::sync::Arc::new(population.finish()),
        std::sync::Arc::new(opted_out.finish()),
    ];
    Ok(RecordBatch::try_new(ENROLLMENT.schema(), columns)?)
}

/// One Parquet file being streamed into a temporary file beside its final name. `write_atomic`
/// takes the whole file as bytes, which would hold a million members' claims in memory; this
/// keeps the same temporary-file-and-rename guarantee while streaming.
struct Sink {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl Sink {
    fn create(dir: &Path, name: &str, schema: SchemaRef) -> Result<Sink> {
        let path = dir.join(name);
        let tmp = tempfile::Builder::new()
            .prefix(".hhq-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        // Fixed properties and no timestamps, so equal options give byte-identical files.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by("hhq synth".to_string())
            .build();
        let writer = ArrowWriter::try_new(BufWriter::new(tmp), schema, Some(props))?;
        Ok(Sink { path, writer })
    }

    /// Writes one block as its own row group.
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        self.writer.flush()?;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let path = self.path;
        let buffered = self.writer.into_inner()?;
        let tmp = buffered
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        // tempfile creates 0600 files; extracts are ordinary files readable like any other.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(&path, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::OnceLock;

    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    const MH_TAXONOMIES: [&str; 5] = [
        "2084P0800X",
        "364SP0808X",
        "101YM0800X",
        "103T00000X",
        "1041C0700X",
    ];
    const BH_CODES: [&str; 6] = ["90791", "90832", "90834", "90837", "99213", "99214"];

    struct Sample {
        win: Window,
        members: Vec<MemberRows>,
    }

    /// 600 members with the default options, generated once for all tests.
    fn sample() -> &'static Sample {
        static SAMPLE: OnceLock<Sample> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            let opts = SynthOptions {
                members: 600,
                ..SynthOptions::default()
            };
            let win = Window::new(&opts).unwrap();
            Sample {
                win,
                members: generate_block(opts.seed, win, 0, opts.members),
            }
        })
    }

    /// The claims that count: not voided, not superseded by a replacement.
    fn live(m: &MemberRows) -> Vec<&Claim> {
        let acted_on: BTreeSet<u32> = m.claims.iter().filter_map(|c| c.replaces).collect();
        m.claims
            .iter()
            .filter(|c| c.adjustment != VOID && !acted_on.contains(&c.seq))
            .collect()
    }

    fn is_ed_facility(c: &Claim) -> bool {
        c.claim_type == "outpatient"
            && c.lines.iter().any(|l| {
                l.revenue
                    .is_some_and(|r| r.starts_with("045") || r == "0981")
            })
    }

    fn is_stay(c: &Claim) -> bool {
        c.claim_type == "inpatient"
    }

    fn is_acute(c: &Claim) -> bool {
        is_stay(c)
            && c.type_of_bill.is_some_and(|t| t.starts_with("011"))
            && !c
                .lines
                .iter()
                .any(|l| matches!(l.revenue, Some("0118" | "0128")))
    }

    fn is_psych_stay(c: &Claim) -> bool {
        is_acute(c)
            && c.lines
                .iter()
                .any(|l| matches!(l.revenue, Some("0114" | "0124")))
    }

    fn is_bh_visit(c: &Claim) -> bool {
        c.claim_type == "professional"
            && c.taxonomy.is_some_and(|t| MH_TAXONOMIES.contains(&t))
            && c.lines
                .iter()
                .any(|l| l.procedure.is_some_and(|p| BH_CODES.contains(&p)))
    }

    fn life_end(win: Window, m: &MemberRows) -> i32 {
        m.person.death.unwrap_or(win.end)
    }

    fn member_years(s: &Sample) -> f64 {
        s.members
            .iter()
            .map(|m| {
                let start = m.spans.iter().map(|sp| sp.start).min().unwrap();
                f64::from(life_end(s.win, m) - start + 1) / 365.25
            })
            .sum()
    }

    fn read_back(path: &Path) -> (SchemaRef, usize) {
        let file = std::fs::File::open(path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = builder.schema().clone();
        let rows = builder
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        (schema, rows)
    }

    const FILES: [&str; 4] = [
        "claims.parquet",
        "contacts.parquet",
        "members.parquet",
        "enrollment.parquet",
    ];

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for z in days_from_civil(1899, 1, 1)..days_from_civil(2101, 1, 1) {
            let (y, m, d) = civil_from_days(z);
            assert!(d >= 1 && d <= month_len(y, m));
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(month_len(2024, 2), 29);
        assert_eq!(month_len(1900, 2), 28);
        assert_eq!(month_len(2000, 2), 29);
        let mi = month_index(days_from_civil(2025, 12, 15));
        assert_eq!(month_last(mi) + 1, month_first(mi + 1));
        assert_eq!(civil_from_days(month_first(mi + 1)), (2026, 1, 1));
    }

    #[test]
    fn poisson_is_about_right() {
        let mut rng = member_rng(7, 7);
        let n = 20_000;
        let total: u32 = (0..n).map(|_| poisson(&mut rng, 3.5)).sum();
        let mean = f64::from(total) / f64::from(n);
        assert!((3.4..3.6).contains(&mean), "{mean}");
        assert!((exp_neg(1.0) - 0.367_879_441_171_442_3).abs() < 1e-15);
        assert!((exp_neg(20.0) - 2.061_153_622_438_558e-9).abs() < 1e-20);
    }

    #[test]
    fn npis_pass_the_luhn_check() {
        for n in [
            npi(Prov::Hospital, 0),
            npi(Prov::Partner, 7),
            npi(Prov::Pharmacy, 79),
        ] {
            let digits: Vec<u32> = format!("80840{n}")
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .collect();
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, d)| {
                    if i % 2 == 1 {
                        (d * 2) / 10 + (d * 2) % 10
                    } else {
                        *d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{n}");
            assert_eq!(n.to_string().len(), 10);
        }
    }

    #[test]
    fn same_options_same_bytes_other_seed_other_bytes() {
        let opts = SynthOptions {
            members: 250,
            ..SynthOptions::default()
        };
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let started = std::time::Instant::now();
        let summary = write(&opts, a.path()).unwrap();
        eprintln!("250 members written in {:?}", started.elapsed());
        assert_eq!(write(&opts, b.path()).unwrap(), summary);
        write(
            &SynthOptions {
                seed: 43,
                ..opts.clone()
            },
            c.path(),
        )
        .unwrap();
        for name in FILES {
            let bytes = std::fs::read(a.path().join(name)).unwrap();
            assert_eq!(bytes, std::fs::read(b.path().join(name)).unwrap(), "{name}");
            if name != "members.parquet" || opts.members > 0 {
                assert_ne!(bytes, std::fs::read(c.path().join(name)).unwrap(), "{name}");
            }
        }
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(a.path()).unwrap().count(), 4);
    }

    #[test]
    fn any_period_length_works() {
        for (start_year, years) in [(2024, 0), (2023, 1), (2019, 6)] {
            let opts = SynthOptions {
                members: 150,
                seed: 9,
                start_year,
                years,
            };
            let win = Window::new(&opts).unwrap();
            for m in generate_block(opts.seed, win, 0, opts.members) {
                let last = life_end(win, &m);
                assert!(m.claims.iter().all(|c| c.from >= win.start && c.to <= last));
                assert!(
                    m.contacts
                        .iter()
                        .all(|c| c.date >= win.start && c.date <= last)
                );
                assert!(
                    m.spans
                        .iter()
                        .all(|sp| sp.start >= win.start && sp.start <= win.end)
                );
            }
        }
        let bad = SynthOptions {
            start_year: 1500,
            ..SynthOptions::default()
        };
        assert!(matches!(Window::new(&bad), Err(Error::Usage(_))));
    }

    #[test]
    fn output_does_not_depend_on_blocks_or_threads() {
        let win = sample().win;
        let whole = generate_block(42, win, 0, 1200);
        let mut parts = generate_block(42, win, 0, 700);
        parts.extend(generate_block(42, win, 700, 500));
        assert_eq!(format!("{whole:?}"), format!("{parts:?}"));
        assert_eq!(
            format!("{:?}", whole[1000]),
            format!("{:?}", generate_member(42, win, 1000))
        );
    }

    #[test]
    fn written_schemas_and_counts_match_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            members: 120,
            seed: 5,
            ..SynthOptions::default()
        };
        let summary = write(&opts, dir.path()).unwrap();
        let expected = [
            (CLAIMS.schema(), summary.claim_lines),
            (CONTACTS.schema(), summary.contacts),
            (MEMBERS.schema(), summary.members),
            (ENROLLMENT.schema(), summary.enrollment_spans),
        ];
        for (name, (schema, rows)) in FILES.iter().zip(expected) {
            let (found, n) = read_back(&dir.path().join(name));
            assert_eq!(found.fields(), schema.fields(), "{name}");
            assert_eq!(n, rows, "{name}");
        }
        assert_eq!(summary.members, 120);

        // Zero members still gives four readable files with the contract's schemas.
        let empty = tempfile::tempdir().unwrap();
        let none = write(
            &SynthOptions {
                members: 0,
                ..SynthOptions::default()
            },
            empty.path(),
        )
        .unwrap();
        assert_eq!(none, SynthSummary::default());
        let (found, n) = read_back(&empty.path().join("claims.parquet"));
        assert_eq!((found.fields(), n), (CLAIMS.schema().fields(), 0));
    }

    #[test]
    fn claims_volume_and_mix() {
        let s = sample();
        let years = member_years(s);
        let lines: usize = s.members.iter().flat_map(live).map(|c| c.lines.len()).sum();
        let per_year = lines as f64 / years;
        assert!(
            (30.0..80.0).contains(&per_year),
            "{per_year} lines per member-year"
        );
        let count =
            |f: &dyn Fn(&Claim) -> bool| s.members.iter().flat_map(live).filter(|c| f(c)).count();
        assert!(
            count(&|c| c.claim_type == "pharmacy"
                && c.lines
                    .iter()
                    .all(|l| l.ndc.is_some_and(|n| n.len() == 11) && l.days_supply == Some(30)))
                > 1000
        );
        assert!(
            count(&|c| c.place_of_service == Some("11")
                && c.lines
                    .iter()
                    .any(|l| matches!(l.procedure, Some("99212" | "99213" | "99214" | "99215"))))
                > 500
        );
        assert!(count(&|c| c.claim_type == "outpatient" && c.kind == Kind::Lab) > 300);
        assert!(
            count(&|c| is_bh_visit(c) && c.principal_dx.is_some_and(|d| d.starts_with('F'))) > 300
        );
        assert!(count(&|c| c.lines.iter().any(|l| l.modifier_1 == Some("95"))) > 10);
    }

    #[test]
    fn claim_ids_lines_order_and_adjustments() {
        let s = sample();
        let (mut voids, mut replacements, mut chains, mut void_of_replacement) = (0, 0, 0, 0);
        for m in &s.members {
            let by_seq: HashMap<u32, &Claim> = m.claims.iter().map(|c| (c.seq, c)).collect();
            assert_eq!(by_seq.len(), m.claims.len(), "claim ids are unique");
            assert!(
                m.claims
                    .windows(2)
                    .all(|w| (w[0].from, w[0].seq) < (w[1].from, w[1].seq))
            );
            for c in &m.claims {
                assert!(!c.lines.is_empty());
                assert!(c.from <= c.to);
                match c.adjustment {
                    ORIGINAL => assert!(c.replaces.is_none()),
                    adj => {
                        let old = by_seq[&c.replaces.unwrap()];
                        assert_eq!((old.from, old.lines.len()), (c.from, c.lines.len()));
                        if adj == VOID {
                            voids += 1;
                            for (a, b) in old.lines.iter().zip(&c.lines) {
                                assert_eq!(a.paid, -b.paid);
                            }
                        } else {
                            replacements += 1;
                        }
                        if old.adjustment == REPLACEMENT {
                            if adj == VOID {
                                void_of_replacement += 1;
                            } else {
                                chains += 1;
                            }
                        }
                    }
                }
            }
        }
        let claims: usize = s.members.iter().map(|m| m.claims.len()).sum();
        let (v, r) = (
            voids as f64 / claims as f64,
            replacements as f64 / claims as f64,
        );
        assert!((0.005..0.02).contains(&v), "void share {v}");
        assert!((0.02..0.05).contains(&r), "replacement share {r}");
        assert!(chains > 0 && void_of_replacement > 0);
    }

    #[test]
    fn claims_carry_the_mco_of_the_service_date() {
        let s = sample();
        let mut fee_for_service = 0;
        for m in &s.members {
            for c in &m.claims {
                let mco = m
                    .spans
                    .iter()
                    .find(|sp| !sp.health_home && sp.covers(c.from))
                    .map(|sp| sp.mco);
                assert_eq!(c.mco, mco);
                fee_for_service += usize::from(mco.is_none());
            }
        }
        assert!(fee_for_service > 0);
    }

    #[test]
    fn ed_visits() {
        let s = sample();
        let years = member_years(s);
        let (mut visits, mut same_day, mut admitted, mut mh, mut sud, mut overdose) =
            (0, 0, 0, 0, 0, 0);
        let mut per_member = Vec::new();
        for m in &s.members {
            let claims = live(m);
            let ed: Vec<&&Claim> = claims.iter().filter(|c| is_ed_facility(c)).collect();
            let mut by_day: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
            for c in &ed {
                by_day
                    .entry(c.from)
                    .or_default()
                    .insert(c.billing_npi.unwrap());
                let dx = c.principal_dx.unwrap();
                mh += usize::from(("F20".."F49").contains(&dx));
                sud += usize::from(("F10".."F20").contains(&dx));
                overdose += usize::from(dx.starts_with("T40"));
            }
            same_day += by_day.values().filter(|h| h.len() > 1).count();
            for &day in by_day.keys() {
                admitted +=
                    usize::from(claims.iter().any(|c| {
                        is_stay(c) && c.admission.is_some_and(|a| a == day || a == day + 1)
                    }));
            }
            visits += ed.len();
            per_member.push(ed.len());
            // The professional side of an ED visit: E/M 99281-99285 in place of service 23.
            assert!(claims.iter().all(|c| {
                c.place_of_service != Some("23")
                    || c.lines
                        .iter()
                        .all(|l| ("99281"..="99285").contains(&l.procedure.unwrap()))
            }));
        }
        let rate = visits as f64 / years;
        assert!(
            (0.5..1.5).contains(&rate),
            "{rate} ED visits per member-year"
        );
        per_member.sort_unstable();
        let top = per_member[per_member.len() * 95 / 100..]
            .iter()
            .sum::<usize>();
        assert!(top as f64 > 0.2 * visits as f64, "a few frequent users");
        assert!(same_day > 0 && mh > 0 && sud > 0 && overdose > 0);
        let share = admitted as f64 / visits as f64;
        assert!(
            (0.08..0.25).contains(&share),
            "{share} of ED visits admitted"
        );
    }

    #[test]
    fn inpatient_stays() {
        let s = sample();
        let years = member_years(s);
        let (
            mut stays,
            mut transfers,
            mut readmits,
            mut index,
            mut nonacute,
            mut rehab,
            mut died,
            mut open,
        ) = (0, 0, 0, 0, 0, 0, 0, 0);
        for m in &s.members {
            let claims = live(m);
            let inpatient: Vec<&&Claim> = claims.iter().filter(|c| is_stay(c)).collect();
            for c in &inpatient {
                assert_eq!((c.admission, c.from), (Some(c.from), c.from));
                assert!(c.lines.iter().all(|l| l.revenue.is_some()));
                stays += usize::from(is_acute(c));
                nonacute += usize::from(matches!(c.type_of_bill, Some("0211" | "0221")));
                rehab += usize::from(is_stay(c) && !is_acute(c) && c.type_of_bill == Some("0111"));
                match (c.discharge, c.discharge_status) {
                    (Some(d), Some("20")) => {
                        died += 1;
                        assert_eq!(Some(d), m.person.death);
                    }
                    (None, Some("30")) => open += 1,
                    (Some(d), Some("02")) => {
                        transfers += usize::from(inpatient.iter().any(|n| {
                            n.billing_npi != c.billing_npi
                                && n.admission.is_some_and(|a| a == d || a == d + 1)
                        }));
                    }
                    (Some(d), Some("01")) if is_acute(c) => {
                        index += 1;
                        readmits += usize::from(inpatient.iter().any(|n| {
                            is_acute(n) && n.admission.is_some_and(|a| a > d && a <= d + 30)
                        }));
                    }
                    (Some(d), _) => assert!(d >= c.from),
                    (None, _) => panic!("open stay without status 30"),
                }
            }
        }
        let rate = stays as f64 / years;
        assert!(
            (0.15..0.35).contains(&rate),
            "{rate} acute stays per member-year"
        );
        let readmit = readmits as f64 / index as f64;
        assert!(
            (0.08..0.25).contains(&readmit),
            "{readmit} readmitted within 30 days"
        );
        assert!(transfers > 0 && nonacute > 0 && rehab > 0 && died > 0);
        let _ = open;
    }

    #[test]
    fn psychiatric_follow_up_is_spread() {
        let s = sample();
        let mut delays: BTreeMap<Option<i32>, usize> = BTreeMap::new();
        let mut smi_stays = 0;
        for m in &s.members {
            let claims = live(m);
            for c in claims.iter().filter(|c| is_psych_stay(c)) {
                let dx = c.principal_dx.unwrap();
                assert!(("F20".."F34").contains(&dx), "{dx}");
                if c.discharge_status != Some("01") {
                    continue;
                }
                smi_stays += usize::from(m.person.population == "SMI");
                let d = c.discharge.unwrap();
                if d + 60 > life_end(s.win, m) {
                    continue;
                }
                let first = claims
                    .iter()
                    .filter(|v| is_bh_visit(v) && v.from >= d && v.from <= d + 60)
                    .map(|v| v.from - d)
                    .min();
                *delays.entry(first).or_default() += 1;
            }
        }
        let total: usize = delays.values().sum();
        let within = |n: i32| {
            delays
                .iter()
                .filter(|(k, _)| k.is_some_and(|k| k <= n))
                .map(|(_, v)| v)
                .sum::<usize>()
        };
        assert!(delays.contains_key(&Some(0)), "{delays:?}");
        assert!(delays.contains_key(&Some(7)), "{delays:?}");
        assert!(delays.contains_key(&Some(8)), "{delays:?}");
        assert!(delays.contains_key(&None), "{delays:?}");
        assert!(
            delays.keys().any(|k| k.is_some_and(|k| k > 30)),
            "{delays:?}"
        );
        assert!(within(30) * 2 > total, "{delays:?}");
        assert!(smi_stays * 2 > total);
    }

    #[test]
    fn deaths_end_everything() {
        let s = sample();
        let mut deaths = 0;
        for m in &s.members {
            let Some(death) = m.person.death else {
                continue;
            };
            deaths += 1;
            assert!(m.claims.iter().all(|c| c.to <= death && c.from <= death));
            assert!(m.contacts.iter().all(|c| c.date <= death));
            assert!(m.spans.iter().all(|sp| sp.end <= death));
        }
        let years = member_years(s);
        let rate = (deaths as f64) / years;
        assert!(
            (0.004..0.04).contains(&rate),
            "{rate} deaths per member-year"
        );
    }

    #[test]
    fn enrollment_spans() {
        let s = sample();
        let (mut gaps, mut mco_changes, mut partner_changes, mut opted_out, mut late, mut open) =
            (0, 0, 0, 0, 0, 0);
        for m in &s.members {
            let medicaid: Vec<&Span> = m.spans.iter().filter(|sp| !sp.health_home).collect();
            let hh: Vec<&Span> = m.spans.iter().filter(|sp| sp.health_home).collect();
            for spans in [&medicaid, &hh] {
                for w in spans.windows(2) {
                    assert!(w[0].end < w[1].start, "spans overlap: {w:?}");
                }
            }
            for h in &hh {
                let m = medicaid
                    .iter()
                    .find(|sp| sp.covers(h.start))
                    .expect("HH inside medicaid");
                assert!(h.end <= m.end && h.mco == m.mco);
                assert!(contracted(h.hhp, h.mco));
            }
            for w in medicaid.windows(2) {
                let gap = w[1].start - w[0].end - 1;
                assert!((28..=92).contains(&gap), "gap of {gap} days");
                gaps += 1;
                mco_changes += usize::from(w[0].mco != w[1].mco);
                // The Health Home span ends at the gap.
                assert!(
                    hh.iter()
                        .all(|h| h.end <= w[0].end || h.start >= w[1].start)
                );
            }
            for w in hh.windows(2) {
                partner_changes += usize::from(w[1].start == w[0].end + 1 && w[0].hhp != w[1].hhp);
            }
            opted_out += hh.iter().filter(|h| h.opted_out).count();
            late += usize::from(hh.first().is_some_and(|h| h.start > medicaid[0].start));
            open += usize::from(medicaid.last().unwrap().end == OPEN);
        }
        let n = s.members.len() as f64;
        assert!((0.05..0.16).contains(&((gaps as f64) / n)), "{gaps} gaps");
        assert!(
            (0.04..0.13).contains(&((partner_changes as f64) / n)),
            "{partner_changes}"
        );
        assert!(
            (0.015..0.09).contains(&((opted_out as f64) / n)),
            "{opted_out}"
        );
        assert!(
            (0.08..0.25).contains(&((late as f64) / n)),
            "{late} assigned late"
        );
        assert!((open as f64) / n > 0.8);
        assert!(mco_changes > 0);
    }

    #[test]
    fn contacts_follow_spans_and_engagement() {
        let s = sample();
        let (mut unreached_phone, mut phone, mut unreached_mail) = (0, 0, 0);
        let (mut silent_months, mut fading_drop, mut steady_drop) = (0, Vec::new(), Vec::new());
        let (mut tcc7, mut tcc30, mut discharges) = (0, 0, 0);
        for m in &s.members {
            let hh: Vec<&Span> = m.spans.iter().filter(|sp| sp.health_home).collect();
            assert!(m.contacts.windows(2).all(|w| w[0].date <= w[1].date));
            for c in &m.contacts {
                let span = hh
                    .iter()
                    .find(|sp| sp.covers(c.date))
                    .expect("contact inside an HH span");
                assert_eq!(span.hhp, c.hhp);
                phone += usize::from(c.mode == "phone");
                unreached_phone += usize::from(c.mode == "phone" && !c.reached);
                unreached_mail += usize::from(c.mode == "mail" && !c.reached);
            }
            // Months of Health Home enrollment without any reached contact.
            let reached: BTreeSet<i32> = m
                .contacts
                .iter()
                .filter(|c| c.reached)
                .map(|c| month_index(c.date))
                .collect();
            let enrolled: BTreeSet<i32> = hh
                .iter()
                .flat_map(|sp| month_index(sp.start)..=month_index(sp.end.min(life_end(s.win, m))))
                .collect();
            silent_months += enrolled.difference(&reached).count();
            // Contacts in the first and last six enrolled months.
            if enrolled.len() >= 18 {
                let months: Vec<i32> = enrolled.iter().copied().collect();
                let in_months = |ms: &[i32]| {
                    m.contacts
                        .iter()
                        .filter(|c| ms.contains(&month_index(c.date)))
                        .count() as f64
                };
                let first = in_months(&months[..6]);
                let last = in_months(&months[months.len() - 6..]);
                let drop = (first - last) / first.max(1.0);
                // A drifting partner's members lose contacts by design (partners_differ…).
                let drifting = hh.iter().any(|sp| {
                    let (from, to) = PARTNER_EFFECTS[sp.hhp];
                    from != to
                });
                if m.fading {
                    fading_drop.push(drop)
                } else if !drifting {
                    steady_drop.push(drop)
                }
            }
            // Transitional care after an acute discharge home while enrolled.
            for c in live(m)
                .iter()
                .filter(|c| is_acute(c) && c.discharge_status == Some("01"))
            {
                let d = c.discharge.unwrap();
                if d + 30 > life_end(s.win, m)
                    || !hh.iter().any(|sp| sp.covers(d) && sp.covers(d + 30))
                {
                    continue;
                }
                discharges += 1;
                let tcc = |n: i32| {
                    m.contacts
                        .iter()
                        .any(|k| k.service == "transitional_care" && k.date >= d && k.date <= d + n)
                };
                tcc7 += usize::from(tcc(7));
                tcc30 += usize::from(tcc(30));
            }
        }
        let unreached = (unreached_phone as f64) / (phone as f64);
        assert!(
            (0.15..0.35).contains(&unreached),
            "{unreached} of phone calls unreached"
        );
        assert!(unreached_mail > 0 && silent_months > 0);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(fading_drop.len() > 5 && steady_drop.len() > 5);
        assert!(
            mean(&fading_drop) > 0.6,
            "fading members lose most contacts: {}",
            mean(&fading_drop)
        );
        assert!(
            mean(&steady_drop).abs() < 0.3,
            "others do not: {}",
            mean(&steady_drop)
        );
        let (r7, r30) = (
            (tcc7 as f64) / (discharges as f64),
            (tcc30 as f64) / (discharges as f64),
        );
        assert!(
            (0.35..0.7).contains(&r7) && (0.6..0.9).contains(&r30),
            "{r7} {r30} of {discharges}"
        );
    }

    #[test]
    fn s0281_only_in_months_with_a_reached_contact() {
        let s = sample();
        let mut billed = 0;
        for m in &s.members {
            let reached: BTreeSet<(i32, usize)> = m
                .contacts
                .iter()
                .filter(|c| c.reached)
                .map(|c| (month_index(c.date), c.hhp))
                .collect();
            for c in live(m)
                .iter()
                .filter(|c| c.lines.iter().any(|l| l.procedure == Some("S0281")))
            {
                assert_eq!(c.claim_type, "professional");
                assert_eq!(month_index(c.from), month_index(c.to));
                let hhp = (0..PARTNERS.len())
                    .find(|&p| c.billing_npi == Some(npi(Prov::Partner, p as u32)))
                    .unwrap();
                assert!(reached.contains(&(month_index(c.from), hhp)));
                billed += 1;
            }
            let months: BTreeSet<i32> = reached.iter().map(|r| r.0).collect();
            let bills = m
                .claims
                .iter()
                .filter(|c| c.adjustment == ORIGINAL && c.kind == Kind::HealthHome)
                .count();
            assert_eq!(bills, months.len());
        }
        assert!(billed > 1000);
    }

    #[test]
    fn demographics() {
        let s = sample();
        let n = s.members.len() as f64;
        let (start_year, _, _) = civil_from_days(s.win.start);
        let age = |p: &Person| start_year - civil_from_days(p.birth).0 - 1;
        let share = |f: &dyn Fn(&Person) -> bool| {
            s.members.iter().filter(|m| f(&m.person)).count() as f64 / n
        };
        assert!(s.members.iter().all(|m| (4..=91).contains(&age(&m.person))));
        assert!(share(&|p| (6..18).contains(&age(p))) > 0.05);
        assert!(share(&|p| age(p) >= 65) > 0.05);
        assert!(share(&|p| (18..65).contains(&age(p))) > 0.6);
        assert!((0.2..0.4).contains(&share(&|p| p.rural == Some(true))));
        assert!((0.08..0.22).contains(&share(&|p| p.dual)));
        assert!(share(&|p| p.race.is_none()) > 0.0 && share(&|p| p.ethnicity.is_none()) > 0.0);
        assert!(share(&|p| p.ethnicity == Some("hispanic")) > 0.0);
        assert!(s.members.iter().all(|m| {
            m.person
                .county
                .is_none_or(|c| (20001..=20209).contains(&c) && c % 2 == 1)
        }));
        assert!((0.45..0.65).contains(&share(&|p| p.population == "SMI")));
        assert_eq!(member_id(s.members[0].person.number), "M0000001");
        let mut partners = BTreeSet::new();
        let mut mcos = BTreeSet::new();
        for m in &s.members {
            for sp in &m.spans {
                mcos.insert(sp.mco);
                if sp.health_home {
                    partners.insert(sp.hhp);
                }
            }
        }
        assert_eq!((partners.len(), mcos.len()), (8, 3));
    }

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
            (
                civil_from_days(three.drift_start),
                civil_from_days(three.drift_end)
            ),
            ((2024, 1, 1), (2025, 12, 31))
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

    #[test]
    fn partners_differ_and_one_drifts() {
        let s = sample();
        // Health Home months with a reached contact, by partner and by quarter of the window.
        let mut months: BTreeMap<(usize, i32), (usize, usize)> = BTreeMap::new();
        let mut tcc: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        let q0 = month_index(s.win.start) / 3;
        for m in &s.members {
            let reached: BTreeSet<(i32, usize)> = m
                .contacts
                .iter()
                .filter(|c| c.reached)
                .map(|c| (month_index(c.date), c.hhp))
                .collect();
            for sp in m.spans.iter().filter(|sp| sp.health_home) {
                let last = sp.end.min(life_end(s.win, m));
                for mi in month_index(sp.start)..=month_index(last) {
                    let e = months.entry((sp.hhp, mi / 3 - q0)).or_default();
                    e.0 += usize::from(reached.contains(&(mi, sp.hhp)));
                    e.1 += 1;
                }
            }
            for c in live(m)
                .iter()
                .filter(|c| is_acute(c) && c.discharge_status == Some("01"))
            {
                let d = c.discharge.unwrap();
                let Some(sp) = m.spans.iter().find(|sp| sp.health_home && sp.covers(d)) else {
                    continue;
                };
                let e = tcc.entry(sp.hhp).or_default();
                e.0 +=
                    usize::from(m.contacts.iter().any(|k| {
                        k.service == "transitional_care" && k.date >= d && k.date <= d + 7
                    }));
                e.1 += 1;
            }
        }
        let engaged = |hhp: usize, quarters: std::ops::Range<i32>| {
            let (n, d) = quarters
                .filter_map(|q| months.get(&(hhp, q)))
                .fold((0, 0), |(n, d), (a, b)| (n + a, d + b));
            n as f64 / d as f64
        };
        let all = 0..9;
        // Strong partners engage their members more than weak ones, and follow up sooner.
        for (strong, weak) in [(0, 2), (7, 5), (0, 5), (7, 2)] {
            assert!(
                engaged(strong, all.clone()) > engaged(weak, all.clone()) + 0.08,
                "HH months engaged: {} {} vs {} {}",
                PARTNERS[strong].0,
                engaged(strong, all.clone()),
                PARTNERS[weak].0,
                engaged(weak, all.clone())
            );
        }
        let share = |partners: [usize; 2]| {
            let (n, d) = partners
                .iter()
                .map(|p| tcc[p])
                .fold((0, 0), |(n, d), (a, b)| (n + a, d + b));
            n as f64 / d as f64
        };
        assert!(
            share([0, 7]) > share([2, 5]) + 0.2,
            "transitional care within 7 days: {tcc:?}"
        );
        // The drifting partner loses engagement over the window; a steady one much less.
        let drift = |hhp: usize| engaged(hhp, 0..2) - engaged(hhp, 6..8);
        assert!(
            drift(4) > 0.3,
            "HHP-05 from {} to {}",
            engaged(4, 0..2),
            engaged(4, 6..8)
        );
        for steady in [0, 1, 6] {
            assert!(drift(4) > drift(steady) + 0.2, "{}", PARTNERS[steady].0);
        }
    }

    /// Rates for the default options, for a person to read:
    /// `cargo test --lib synth::tests::report -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn report() {
        let opts = SynthOptions {
            members: std::env::var("HHQ_SYNTH_MEMBERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(300),
            ..SynthOptions::default()
        };
        let win = Window::new(&opts).unwrap();
        let started = std::time::Instant::now();
        let members = generate_block(opts.seed, win, 0, opts.members);
        eprintln!(
            "generated {} members in {:?}",
            opts.members,
            started.elapsed()
        );
        let s = Sample { win, members };
        let years = member_years(&s);
        let all: Vec<&Claim> = s.members.iter().flat_map(|m| m.claims.iter()).collect();
        let live_claims: Vec<&Claim> = s.members.iter().flat_map(live).collect();
        let lines = |cs: &[&Claim]| cs.iter().map(|c| c.lines.len()).sum::<usize>();
        let per = |n: usize| n as f64 / years;
        eprintln!("member-years {years:.1}");
        eprintln!(
            "claim lines written {} ({:.1}/member-year); live {} ({:.1})",
            lines(&all),
            per(lines(&all)),
            lines(&live_claims),
            per(lines(&live_claims))
        );
        for kind in ["inpatient", "outpatient", "professional", "pharmacy"] {
            let cs: Vec<&Claim> = live_claims
                .iter()
                .copied()
                .filter(|c| c.claim_type == kind)
                .collect();
            eprintln!(
                "  {kind}: {} claims, {:.1} lines/member-year",
                cs.len(),
                per(lines(&cs))
            );
        }
        let ed = live_claims.iter().filter(|c| is_ed_facility(c)).count();
        let acute = live_claims.iter().filter(|c| is_acute(c)).count();
        let psych = live_claims.iter().filter(|c| is_psych_stay(c)).count();
        let nonacute = live_claims
            .iter()
            .filter(|c| is_stay(c) && !is_acute(c))
            .count();
        let s0281 = live_claims
            .iter()
            .filter(|c| c.kind == Kind::HealthHome)
            .count();
        eprintln!(
            "ED visits {ed} ({:.2}/member-year); acute stays {acute} ({:.3}); psychiatric {psych}; nonacute {nonacute}; S0281 {s0281} ({:.1})",
            per(ed),
            per(acute),
            per(s0281)
        );
        let (mut fuh, mut same_day, mut ed_admit, mut tcc, mut discharges) =
            (BTreeMap::new(), 0, 0, [0; 2], 0);
        for m in &s.members {
            let cs = live(m);
            let mut ed_days: BTreeMap<i32, usize> = BTreeMap::new();
            for e in cs.iter().filter(|c| is_ed_facility(c)) {
                *ed_days.entry(e.from).or_default() += 1;
            }
            same_day += ed_days.values().filter(|n| **n > 1).count();
            ed_admit += ed_days
                .keys()
                .filter(|d| {
                    cs.iter()
                        .any(|c| is_stay(c) && (c.from == **d || c.from == **d + 1))
                })
                .count();
            for c in cs
                .iter()
                .filter(|c| is_psych_stay(c) && c.discharge_status == Some("01"))
            {
                let d = c.discharge.unwrap();
                let first = cs
                    .iter()
                    .filter(|v| is_bh_visit(v) && v.from >= d && v.from <= d + 60)
                    .map(|v| v.from - d)
                    .min();
                let bucket = match first {
                    None => "none in 60 days",
                    Some(0) => "day 0",
                    Some(1..=6) => "days 1-6",
                    Some(7) => "day 7",
                    Some(8) => "day 8",
                    Some(9..=30) => "days 9-30",
                    Some(_) => "days 31-60",
                };
                *fuh.entry(bucket).or_insert(0) += 1;
            }
            for c in cs
                .iter()
                .filter(|c| is_acute(c) && c.discharge_status == Some("01"))
            {
                let d = c.discharge.unwrap();
                if !m.spans.iter().any(|sp| sp.health_home && sp.covers(d)) {
                    continue;
                }
                discharges += 1;
                for (i, n) in [7, 30].into_iter().enumerate() {
                    tcc[i] += usize::from(m.contacts.iter().any(|k| {
                        k.service == "transitional_care" && k.date >= d && k.date <= d + n
                    }));
                }
            }
        }
        eprintln!("psychiatric discharges home by first follow-up: {fuh:?}");
        eprintln!(
            "ED days with 2+ visits {same_day}; ED days followed by admission {ed_admit}; \
             transitional care within 7/30 days {}/{} of {discharges} discharges home while enrolled",
            tcc[0], tcc[1]
        );
        let count = |adj: &str| all.iter().filter(|c| c.adjustment == adj).count();
        eprintln!(
            "originals {}, replacements {}, voids {}",
            count(ORIGINAL),
            count(REPLACEMENT),
            count(VOID)
        );
        let contacts: Vec<&Contact> = s.members.iter().flat_map(|m| m.contacts.iter()).collect();
        let reached = contacts.iter().filter(|c| c.reached).count();
        eprintln!(
            "contacts {} ({:.1}/member-year), reached {:.0}%",
            contacts.len(),
            per(contacts.len()),
            100.0 * reached as f64 / contacts.len() as f64
        );
        let deaths = s
            .members
            .iter()
            .filter(|m| m.person.death.is_some())
            .count();
        let spans = |f: &dyn Fn(&MemberRows) -> bool| s.members.iter().filter(|m| f(m)).count();
        eprintln!(
            "deaths {deaths}; medicaid gaps {}; partner changes {}; opted out {}; late HH {}; fading {}",
            spans(&|m| m.spans.iter().filter(|sp| !sp.health_home).count() > 1),
            spans(&|m| m.spans.windows(2).any(|w| w[0].health_home
                && w[1].health_home
                && w[1].start == w[0].end + 1
                && w[0].hhp != w[1].hhp)),
            spans(&|m| m.spans.iter().any(|sp| sp.opted_out)),
            spans(&|m| m
                .spans
                .iter()
                .find(|sp| sp.health_home)
                .is_some_and(|h| h.start > m.spans[0].start)),
            spans(&|m| m.fading),
        );
    }

    /// Timing for a larger population: `HHQ_SYNTH_MEMBERS=100000 cargo test --release --lib
    /// synth::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        let members = std::env::var("HHQ_SYNTH_MEMBERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let summary = write(
            &SynthOptions {
                members,
                ..SynthOptions::default()
            },
            dir.path(),
        )
        .unwrap();
        eprintln!("{summary:?} in {:?}", started.elapsed());
        for name in FILES {
            eprintln!(
                "{name}: {} bytes",
                std::fs::metadata(dir.path().join(name)).unwrap().len()
            );
        }
    }
}
