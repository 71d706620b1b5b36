//! Health Home finance (`hhq payments`): what the programme owes and paid by its monthly payment
//! rule, whether each payment was earned, and what a rate table costs.
//!
//! ```text
//! measures/finance/earning.yaml ─► rates::EarningRule ─┐
//! rates.yaml (+ --compare alt.yaml) ─► rates::RateTable ┤
//!                                                       ▼
//! extracts + blocks ─► ledger (per pass: units = member × month × partner, their services and
//!                      payment lines, members' facts) ─► price (tiers → State and partner due)
//!                      ─► summary rows (suppressed) ─► files: ledger, findings, statements,
//!                                                      simulation
//! ```
//!
//! Everything member-level is computed over every member and then cut to the audience, so a
//! figure (a partner's size tier, say) is the same whoever asks.

pub mod cost;
pub mod files;
pub mod ledger;
pub mod rates;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

pub use files::{PaymentsOptions, PaymentsReport, command};
pub use ledger::{Finding, Kind, Ledger, Line, Unit};
pub use rates::{Arrangement, EarningRule, RateTable, StateBasis, Tier, TierBy};

use crate::measure::{Stratifier, Unit as RateUnit};
use crate::period::Period;
use crate::privacy::Audience;
use crate::results::{Grouping, ResultRow};

/// The measure id of the payment figures in result tables.
pub const MEASURE: &str = "HH-PAY";

/// What a rate table makes of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    /// The State's tiered PMPM for the member-month (`None`: no rate for its population).
    pub rate: Option<f64>,
    /// What the State owes the MCO on this unit (0 unless it is the member-month's State row).
    pub state_due: f64,
    /// What the MCO owes the partner (0 unless earned).
    pub partner_due: f64,
    /// (tier, band label) for each tier.
    pub bands: Vec<(String, String)>,
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The member-months (member, month) any partner earned.
pub fn earned_months(ledger: &Ledger) -> BTreeSet<(&str, NaiveDate)> {
    ledger
        .units
        .iter()
        .filter(|u| u.earned())
        .map(|u| (u.member_id.as_str(), u.month))
        .collect()
}

/// Price one unit under `table`.
pub fn price(
    table: &RateTable,
    ledger: &Ledger,
    u: &Unit,
    earned: &BTreeSet<(&str, NaiveDate)>,
) -> Priced {
    let mut bands = Vec::new();
    let rate = u
        .population
        .as_ref()
        .and_then(|p| table.base.get(p))
        .map(|base| {
            let (mut factor, mut add) = (1.0, 0.0);
            for t in &table.tiers {
                let b = t.band(ledger.tier_value(t.by, u));
                factor *= b.factor;
                add += b.add;
                bands.push((t.name.clone(), b.label.clone()));
            }
            cents(base * factor + add)
        });
    let state_due = if u.state_row && state_pays(table, u, earned) {
        rate.unwrap_or(0.0)
    } else {
        0.0
    };
    let partner_due = if u.earned() {
        match table.arrangement(u.mco.as_deref(), &u.hhp) {
            Arrangement::Share(s) => cents(s * rate.unwrap_or(0.0)),
            Arrangement::Pmpm(by) => u
                .population
                .as_ref()
                .and_then(|p| by.get(p))
                .copied()
                .unwrap_or(0.0),
        }
    } else {
        0.0
    };
    Priced {
        rate,
        state_due,
        partner_due,
        bands,
    }
}

/// Whether a unit is the audience's: its MCO's, or its partner's.
pub fn in_scope(u: &Unit, scope: &Audience) -> bool {
    match scope {
        Audience::State => true,
        Audience::Mco(id) => u.mco.as_deref() == Some(id),
        Audience::Hhp(id) => &u.hhp == id,
    }
}

/// Whether a finding is the audience's (a line with no partner is an MCO's and the State's).
pub fn finding_in_scope(f: &Finding, scope: &Audience) -> bool {
    match scope {
        Audience::State => true,
        Audience::Mco(id) => f.mco.as_deref() == Some(id),
        Audience::Hhp(id) => f.hhp.as_deref() == Some(id),
    }
}

/// One unit's figures, summed into strata.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    units: f64,
    earned: f64,
    billed: f64,
    billed_not_earned: f64,
    earned_not_billed: f64,
    state_months: f64,
    state_due: f64,
    partner_due: f64,
    paid: f64,
    missed: f64,
    paid_not_earned: f64,
    lines: f64,
    lines_outside: f64,
    lines_after_death: f64,
    extra_lines: f64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.units += o.units;
        self.earned += o.earned;
        self.billed += o.billed;
        self.billed_not_earned += o.billed_not_earned;
        self.earned_not_billed += o.earned_not_billed;
        self.state_months += o.state_months;
        self.state_due += o.state_due;
        self.partner_due += o.partner_due;
        self.paid += o.paid;
        self.missed += o.missed;
        self.paid_not_earned += o.paid_not_earned;
        self.lines += o.lines;
        self.lines_outside += o.lines_outside;
        self.lines_after_death += o.lines_after_death;
        self.extra_lines += o.extra_lines;
    }
}

/// How a figure is grouped: the stratifiers of the summary (a statement's are months).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Total, MCO, partner, population.
    Summary,
    /// Total and month.
    Months,
}

/// The payment figures of `ledger` under `table` for `scope`, as result rows: months earned and
/// billed (percent of the units), integrity findings (percent of the units, or of the payment
/// lines), and dollars per member-month (State due, partner due, paid, missed, paid not
/// earned). `only_hhp` keeps one partner's units (a statement).
pub fn summary(
    table: &RateTable,
    ledger: &Ledger,
    period: &Period,
    scope: &Audience,
    layout: Layout,
    only_hhp: Option<&str>,
) -> Vec<ResultRow> {
    let earned = earned_months(ledger);
    let strata: &[Stratifier] = match layout {
        Layout::Summary => &[Stratifier::Mco, Stratifier::Hhp, Stratifier::Population],
        Layout::Months => &[Stratifier::Month],
    };
    let mut groups: BTreeMap<(usize, String), Sums> = BTreeMap::new();
    groups.insert((0, "total".into()), Sums::default());
    let key = |s: Stratifier,
               mco: &Option<String>,
               hhp: Option<&str>,
               pop: &Option<String>,
               month: NaiveDate|
     -> String {
        match s {
            Stratifier::Mco => mco.clone().unwrap_or_else(|| "none".into()),
            Stratifier::Hhp => hhp.unwrap_or("none").to_string(),
            Stratifier::Population => pop.clone().unwrap_or_else(|| "none".into()),
            _ => month.format("%Y-%m").to_string(),
        }
    };
    let mut put = |sums: Sums,
                   mco: &Option<String>,
                   hhp: Option<&str>,
                   pop: &Option<String>,
                   month: NaiveDate| {
        groups.entry((0, "total".into())).or_default().add(&sums);
        for (i, s) in strata.iter().enumerate() {
            groups
                .entry((i + 1, key(*s, mco, hhp, pop, month)))
                .or_default()
                .add(&sums);
        }
    };
    for u in ledger.units.iter().filter(|u| in_scope(u, scope)) {
        if only_hhp.is_some_and(|h| h != u.hhp) {
            continue;
        }
        let p = price(table, ledger, u, &earned);
        let (e, b) = (u.earned(), u.billed());
        let paid = u.paid();
        let sums = Sums {
            units: 1.0,
            earned: f(e),
            billed: f(b),
            billed_not_earned: f(b && !e),
            earned_not_billed: f(e && !b),
            state_months: f(u.state_row && state_pays(table, u, &earned)),
            state_due: p.state_due,
            partner_due: p.partner_due,
            paid,
            missed: if e && !b { p.partner_due } else { 0.0 },
            paid_not_earned: if b && !e { paid } else { 0.0 },
            lines: u.lines.len() as f64,
            lines_outside: 0.0,
            lines_after_death: u.lines.iter().filter(|l| ledger.died_before(l)).count() as f64,
            extra_lines: if u.month_lines > 1 {
                u.lines.len() as f64
            } else {
                0.0
            },
        };
        put(sums, &u.mco, Some(&u.hhp), &u.population, u.month);
    }
    let scoped_line = |l: &Line| match scope {
        Audience::State => true,
        Audience::Mco(id) => l.mco.as_deref() == Some(id),
        Audience::Hhp(id) => l.hhp.as_deref() == Some(id),
    };
    for l in ledger.stray.iter().filter(|l| scoped_line(l)) {
        if only_hhp.is_some_and(|h| Some(h) != l.hhp.as_deref()) {
            continue;
        }
        let sums = Sums {
            lines: 1.0,
            lines_outside: 1.0,
            lines_after_death: f(ledger.died_before(l)),
            paid: l.paid.unwrap_or(0.0),
            paid_not_earned: l.paid.unwrap_or(0.0),
            ..Sums::default()
        };
        put(
            sums,
            &l.mco,
            l.hhp.as_deref(),
            &None,
            ledger::first_of(l.service_from),
        );
    }
    let mut rows = Vec::new();
    for ((i, stratum), s) in groups {
        let stratifier = if i == 0 {
            Grouping::Total
        } else {
            Grouping::By(strata[i - 1])
        };
        let mut row = |component: &str, numerator: f64, denominator: f64, unit: RateUnit| {
            rows.push(ResultRow {
                measure: MEASURE.into(),
                component: component.into(),
                period_start: period.start,
                period_end: period.end,
                stratifier,
                stratum: stratum.clone(),
                numerator: cents(numerator),
                denominator,
                rate: (denominator > 0.0).then(|| numerator / denominator * unit.scale()),
                unit,
                spread: None,
            });
        };
        use RateUnit::{DollarsPerMemberMonth as Dollars, Percent};
        row("assigned_months", s.units, s.units, RateUnit::Count);
        row("earned_months", s.earned, s.units, Percent);
        row("billed_months", s.billed, s.units, Percent);
        row(
            Kind::BilledNotEarned.name(),
            s.billed_not_earned,
            s.units,
            Percent,
        );
        row(
            Kind::EarnedNotBilled.name(),
            s.earned_not_billed,
            s.units,
            Percent,
        );
        row("payment_lines", s.lines, s.lines, RateUnit::Count);
        row(
            Kind::BilledMoreThanOnce.name(),
            s.extra_lines,
            s.lines,
            Percent,
        );
        row(
            Kind::BilledOutsideSpan.name(),
            s.lines_outside,
            s.lines,
            Percent,
        );
        row(
            Kind::BilledAfterDeath.name(),
            s.lines_after_death,
            s.lines,
            Percent,
        );
        row("state_due", s.state_due, s.state_months, Dollars);
        row("partner_due", s.partner_due, s.earned, Dollars);
        row("paid", s.paid, s.billed + s.lines_outside, Dollars);
        row("missed", s.missed, s.earned_not_billed, Dollars);
        row(
            "paid_not_earned",
            s.paid_not_earned,
            s.billed_not_earned + s.lines_outside,
            Dollars,
        );
    }
    rows
}

/// What the summary's components keep in every stratum, beyond strata adding up, so the audit
/// hides enough: months earned − billed = earned not billed − billed not earned; payment lines
/// paid for are months billed plus lines outside a span, and so are those paid not earned less
/// the months billed but earned.
pub fn identities() -> Vec<crate::suppress::Identity> {
    use crate::suppress::{Col::Denominator as D, Col::Numerator as N, Identity};
    vec![
        Identity {
            terms: vec![
                ("earned_months", N, 1.0),
                ("billed_months", N, -1.0),
                ("earned_not_billed", N, -1.0),
                ("billed_not_earned", N, 1.0),
            ],
        },
        Identity {
            terms: vec![
                ("paid", D, 1.0),
                ("billed_months", N, -1.0),
                ("billed_outside_span", N, -1.0),
            ],
        },
        Identity {
            terms: vec![
                ("paid_not_earned", D, 1.0),
                ("billed_not_earned", N, -1.0),
                ("billed_outside_span", N, -1.0),
            ],
        },
    ]
}

/// [`summary`] as published: suppressed with the components' [`identities`].
pub fn published(
    table: &RateTable,
    ledger: &Ledger,
    period: &Period,
    scope: &Audience,
    layout: Layout,
    only_hhp: Option<&str>,
) -> Vec<crate::suppress::PublishedRow> {
    crate::suppress::suppress_with(
        &summary(table, ledger, period, scope, layout, only_hhp),
        &identities(),
    )
}

fn f(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn state_pays(table: &RateTable, u: &Unit, earned: &BTreeSet<(&str, NaiveDate)>) -> bool {
    match table.state_basis {
        StateBasis::EnrolledMonths => true,
        StateBasis::EarnedMonths => earned.contains(&(u.member_id.as_str(), u.month)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suppress::{Reason, suppress};
    use std::path::Path;

    fn unit(member: &str, hhp: &str, mco: &str, pop: &str, earned: bool) -> Unit {
        let month = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        Unit {
            member_id: member.into(),
            month,
            hhp: hhp.into(),
            mco: Some(mco.into()),
            population: Some(pop.into()),
            state_row: true,
            first_service: earned.then_some(month),
            earning_contacts: Vec::new(),
            other_contacts: Vec::new(),
            lines: Vec::new(),
            month_lines: 0,
        }
    }

    fn table() -> RateTable {
        RateTable::parse(
            Path::new("rates.yaml"),
            "id: T\ntitle: t\nstate:\n  pays_for: enrolled_months\n  pmpm: {SMI: 275, CC: 225}\n  \
             tiers:\n    - name: acuity\n      by: conditions\n      bands:\n        \
             - {label: low, below: 2, factor: 0.9}\n        - {label: high, factor: 1.25}\n    \
             - name: geography\n      by: rural\n      bands:\n        \
             - {label: rural, when: true, add: 15}\n        - {label: other}\n    \
             - name: size\n      by: partner_members\n      bands:\n        \
             - {label: small, below: 100, add: 10}\n        - {label: large}\n\
             partner:\n  default: {share: 0.85}\n\
             conditions:\n  list:\n    - {name: diabetes, value_set: diabetes_dx}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_rate_is_the_base_times_the_factors_plus_the_additions() {
        let t = table();
        let mut ledger = Ledger::default();
        let u = unit("A", "HHP-1", "MCO-A", "SMI", true);
        ledger.facts.insert(
            "A".into(),
            ledger::Facts {
                rural: Some(true),
                conditions: 1,
                ..Default::default()
            },
        );
        ledger.partner_members.insert(("HHP-1".into(), u.month), 40);
        ledger.units.push(u.clone());
        let earned = earned_months(&ledger);
        let p = price(&t, &ledger, &u, &earned);
        // 275 × 0.9 + 15 (rural) + 10 (a partner under 100 members) = 272.50.
        assert_eq!(p.rate, Some(272.5));
        assert_eq!(p.state_due, 272.5);
        // 0.85 × 272.50 = 231.625, to the cent.
        assert_eq!(p.partner_due, 231.63);
        assert_eq!(
            p.bands,
            vec![
                ("acuity".to_string(), "low".to_string()),
                ("geography".into(), "rural".into()),
                ("size".into(), "small".into())
            ]
        );
        // Two conditions, urban, a large partner: 225 × 1.25 = 281.25; not earned, so nothing to
        // the partner.
        let v = unit("B", "HHP-2", "MCO-A", "CC", false);
        drop(earned);
        ledger.facts.insert(
            "B".into(),
            ledger::Facts {
                rural: Some(false),
                conditions: 2,
                ..Default::default()
            },
        );
        ledger
            .partner_members
            .insert(("HHP-2".into(), v.month), 100);
        let earned = earned_months(&ledger);
        let p = price(&t, &ledger, &v, &earned);
        assert_eq!((p.rate, p.partner_due), (Some(281.25), 0.0));
        // A population the table has no rate for is due nothing.
        let w = unit("C", "HHP-2", "MCO-A", "XX", true);
        assert_eq!(price(&t, &ledger, &w, &earned).state_due, 0.0);
    }

    #[test]
    fn a_small_partners_dollars_cannot_be_worked_out_from_the_total() {
        // Partner HHP-2 has 5 member-months among 205: its dollars are hidden, and so must be
        // enough of the rest that the total less the others does not give them back.
        let t = table();
        let mut ledger = Ledger::default();
        for i in 0..200 {
            ledger
                .units
                .push(unit(&format!("A{i:03}"), "HHP-1", "MCO-A", "SMI", true));
        }
        for i in 0..5 {
            ledger
                .units
                .push(unit(&format!("B{i:03}"), "HHP-2", "MCO-A", "SMI", true));
        }
        let period = Period::year(2025);
        let rows = summary(
            &t,
            &ledger,
            &period,
            &Audience::State,
            Layout::Summary,
            None,
        );
        let published = suppress(&rows);
        let cell = |component: &str, stratum: &str| {
            published
                .iter()
                .find(|p| p.row.component == component && p.row.stratum == stratum)
                .unwrap()
                .clone()
        };
        let small = cell("state_due", "HHP-2");
        assert_eq!(small.numerator, Err(Reason::SmallCell));
        assert_eq!(small.denominator, Err(Reason::SmallCell));
        let total = cell("state_due", "total");
        let big = cell("state_due", "HHP-1");
        assert!(
            total.numerator.is_err() || big.numerator.is_err(),
            "the small partner's dollars follow from the total less HHP-1's"
        );
    }

    #[test]
    fn months_earned_not_billed_cannot_be_worked_out_from_earned_and_billed() {
        // HHP-1: 100 months earned and billed, 3 earned and not billed, none billed without
        // earning: earned (103) − billed (100) + billed not earned (0) gives the 3 unless one of
        // them is hidden. HHP-2 bills more months than it earns, so billed is not nested in
        // earned and only the identity tells the audit.
        let t = table();
        let mut ledger = Ledger::default();
        let mut add = |id: String, hhp: &str, earned: bool, billed: bool| {
            let mut u = unit(&id, hhp, "MCO-A", "SMI", earned);
            if billed {
                u.lines.push(Line {
                    member_id: id.clone(),
                    claim_id: format!("C{id}"),
                    line_number: 1,
                    service_from: u.month,
                    mco: u.mco.clone(),
                    hhp: None,
                    paid: Some(235.0),
                });
                u.month_lines = 1;
            }
            ledger.units.push(u);
        };
        for i in 0..143 {
            add(format!("A{i:03}"), "HHP-1", i < 103, (3..103).contains(&i));
        }
        for i in 0..100 {
            add(format!("B{i:03}"), "HHP-2", i < 40, i < 60);
        }
        let period = Period::year(2025);
        let cell = |rows: &[crate::suppress::PublishedRow], component: &str| {
            rows.iter()
                .find(|r| r.row.component == component && r.row.stratum == "HHP-1")
                .unwrap()
                .numerator
                .is_ok()
        };
        let p = published(
            &t,
            &ledger,
            &period,
            &Audience::State,
            Layout::Summary,
            None,
        );
        assert!(!cell(&p, "earned_not_billed"));
        assert!(
            !(cell(&p, "earned_months")
                && cell(&p, "billed_months")
                && cell(&p, "billed_not_earned")),
            "earned − billed + billed not earned gives the hidden 3"
        );
        // Without the identity the audit would show all three.
        let plain = suppress(&summary(
            &t,
            &ledger,
            &period,
            &Audience::State,
            Layout::Summary,
            None,
        ));
        assert!(
            cell(&plain, "earned_months")
                && cell(&plain, "billed_months")
                && cell(&plain, "billed_not_earned")
        );
    }
}
