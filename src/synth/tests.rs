//! Tests of the generator as a whole: output is deterministic and independent of blocks and
//! threads, files match the contract, and a sample of members has the patterns and rates the
//! measures need. Unit tests of the parts sit beside them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::calendar::{Window, month_index, year};
use super::rows::{Claim, Contact, Kind, ORIGINAL, REPLACEMENT, VOID};

use super::codes::{Prov, npi};

use super::member::{MemberRows, OPEN, Person, Span, generate_block, generate_member};
use super::partners::{PARTNER_EFFECTS, PARTNERS, contracted};
use super::write::member_id;
use super::{SynthOptions, SynthSummary, write};
use crate::error::Error;
use crate::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, MEMBERS};

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
            assert!(m.claims.iter().all(|c| c.from >= win.start
                && (c.to <= last || c.kind == Kind::HealthHome && c.to <= win.end)));
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
    assert!(count(&|c| is_bh_visit(c) && c.principal_dx.is_some_and(|d| d.starts_with('F'))) > 300);
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
        // A Health Home bill is its span's MCO's, billed outside the span by error or not.
        for c in m.claims.iter().filter(|c| c.kind != Kind::HealthHome) {
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
            admitted += usize::from(
                claims
                    .iter()
                    .any(|c| is_stay(c) && c.admission.is_some_and(|a| a == day || a == day + 1)),
            );
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
                    readmits +=
                        usize::from(inpatient.iter().any(|n| {
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
        // A Health Home partner may still bill the month after the death (a billing error).
        assert!(m.claims.iter().all(|c| (c.to <= death && c.from <= death)
            || (c.kind == Kind::HealthHome && month_index(c.from) == month_index(death) + 1)));
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
            if d + 30 > life_end(s.win, m) || !hh.iter().any(|sp| sp.covers(d) && sp.covers(d + 30))
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
fn s0281_follows_the_payment_rule_with_the_errors_a_review_finds() {
    let s = sample();
    let (mut billed, mut unearned, mut missed, mut earned, mut twice) = (0, 0, 0, 0, 0);
    for m in &s.members {
        let reached: BTreeSet<(i32, usize)> = m
            .contacts
            .iter()
            .filter(|c| c.reached)
            .map(|c| (month_index(c.date), c.hhp))
            .collect();
        let mut bills: BTreeMap<i32, usize> = BTreeMap::new();
        for c in live(m)
            .iter()
            .filter(|c| c.lines.iter().any(|l| l.procedure == Some("S0281")))
        {
            assert_eq!(c.claim_type, "professional");
            assert_eq!(month_index(c.from), month_index(c.to));
            let hhp = (0..PARTNERS.len())
                .find(|&p| c.billing_npi == Some(npi(Prov::Partner, p as u32)))
                .unwrap();
            unearned += usize::from(!reached.contains(&(month_index(c.from), hhp)));
            *bills.entry(month_index(c.from)).or_default() += 1;
            billed += 1;
        }
        let months: BTreeSet<i32> = reached.iter().map(|r| r.0).collect();
        earned += months.len();
        missed += months.iter().filter(|mi| !bills.contains_key(mi)).count();
        twice += bills.values().filter(|n| **n > 1).count();
    }
    assert!(billed > 1000);
    // Most bills follow the rule; some are the errors `hhq payments` finds.
    let share = |n: usize, of: usize| n as f64 / of as f64;
    assert!(
        (0.005..0.08).contains(&share(unearned, billed)),
        "{unearned} of {billed}"
    );
    assert!(
        (0.01..0.08).contains(&share(missed, earned)),
        "{missed} of {earned}"
    );
    assert!(twice > 0 && share(twice, billed) < 0.02, "{twice}");
}

#[test]
fn demographics() {
    let s = sample();
    let n = s.members.len() as f64;
    let start_year = year(s.win.start);
    let age = |p: &Person| start_year - year(p.birth) - 1;
    let share =
        |f: &dyn Fn(&Person) -> bool| s.members.iter().filter(|m| f(&m.person)).count() as f64 / n;
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
            e.0 += usize::from(
                m.contacts
                    .iter()
                    .any(|k| k.service == "transitional_care" && k.date >= d && k.date <= d + 7),
            );
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
                tcc[i] +=
                    usize::from(m.contacts.iter().any(|k| {
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
