//! The payment ledger: every member-month a partner was assigned, whether the partner earned it
//! under the earning rule, the monthly payment lines (S0281) billed for it and what they were
//! paid, and the integrity findings; read from the engine pass by pass and put together here.
//!
//! Readings (stated in docs/finance.md and each command's manifest):
//! - A unit is a member, a month and a partner the member was assigned to on some day of the
//!   month (`hh_enrollment`: a Health Home span within Medicaid eligibility, before death). A
//!   member who changed partner within a month is a unit with each.
//! - A partner earns the month with a service the rule's filter accepts, delivered in the month
//!   by that partner on a day the member was assigned to it (`by_assigned_partner`), as the
//!   programme manual's section 7 words it ("at least one Health Home service during the month
//!   for which the claim is submitted").
//! - A payment line belongs to the month of its first date of service, and to the partner the
//!   claims name (the optional `hhp_id` column), else the partner assigned on its date of
//!   service, else the member's last partner of that month. A line in a month the member had no
//!   partner is billed outside a Health Home span; one dated after the member's death is billed
//!   after death (both whatever else it is).
//! - The State pays one PMPM per member-month, on the member's last assignment of the month.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};

use super::rates::{EarningRule, RateTable, TierBy};
use crate::compile::sql::{date, string};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::measure::Located;
use crate::period::Period;

/// One final payment line (S0281).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub member_id: String,
    pub claim_id: String,
    pub line_number: i64,
    pub service_from: NaiveDate,
    pub mco: Option<String>,
    /// The partner the claims name, when they carry an `hhp_id` column.
    pub hhp: Option<String>,
    pub paid: Option<f64>,
}

/// A member, a month and a partner the member was assigned to in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub member_id: String,
    /// The first day of the month.
    pub month: NaiveDate,
    pub hhp: String,
    /// The MCO and population of the member's latest assignment to the partner in the month.
    pub mco: Option<String>,
    pub population: Option<String>,
    /// Whether this is the member's last assignment of the month: the one the State's PMPM is
    /// paid on.
    pub state_row: bool,
    /// The first earning service's date, and every earning contact.
    pub first_service: Option<NaiveDate>,
    pub earning_contacts: Vec<String>,
    /// The partner's contacts in the month that did not earn (unreached, another service).
    pub other_contacts: Vec<String>,
    /// The payment lines that belong to it.
    pub lines: Vec<Line>,
    /// Payment lines of the member-month, every partner's.
    pub month_lines: usize,
}

impl Unit {
    pub fn earned(&self) -> bool {
        self.first_service.is_some()
    }

    pub fn billed(&self) -> bool {
        !self.lines.is_empty()
    }

    pub fn paid(&self) -> f64 {
        self.lines.iter().filter_map(|l| l.paid).sum()
    }
}

/// What the members extract and the claims say of a member, for the tiers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub rural: Option<bool>,
    pub death: Option<NaiveDate>,
    pub risk_score: Option<f64>,
    /// Chronic conditions of the rate table's list found in the look-back.
    pub conditions: u32,
}

/// The kinds of payment-integrity finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A month billed with no earning service by the partner.
    BilledNotEarned,
    /// More than one payment line in a member-month.
    BilledMoreThanOnce,
    /// A month earned and not billed: the partner's missed revenue.
    EarnedNotBilled,
    /// A payment line in a month the member was assigned to no partner.
    BilledOutsideSpan,
    /// A payment line dated after the member's death.
    BilledAfterDeath,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::BilledNotEarned,
        Kind::BilledMoreThanOnce,
        Kind::EarnedNotBilled,
        Kind::BilledOutsideSpan,
        Kind::BilledAfterDeath,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::BilledNotEarned => "billed_not_earned",
            Kind::BilledMoreThanOnce => "billed_more_than_once",
            Kind::EarnedNotBilled => "earned_not_billed",
            Kind::BilledOutsideSpan => "billed_outside_span",
            Kind::BilledAfterDeath => "billed_after_death",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::BilledNotEarned => "months billed with no earning service that month",
            Kind::BilledMoreThanOnce => "member-months with more than one payment line",
            Kind::EarnedNotBilled => "months earned and not billed (missed revenue)",
            Kind::BilledOutsideSpan => "payment lines in a month with no Health Home assignment",
            Kind::BilledAfterDeath => "payment lines dated after the member's death",
        }
    }
}

/// One finding: what, whose, and the claims and contacts behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub member_id: String,
    pub month: NaiveDate,
    pub mco: Option<String>,
    pub hhp: Option<String>,
    pub claims: Vec<String>,
    pub contacts: Vec<String>,
    /// Dollars paid on the lines named (billed findings).
    pub paid: f64,
}

/// The ledger of a period.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub units: Vec<Unit>,
    /// Payment lines of the period in no unit (billed outside a span).
    pub stray: Vec<Line>,
    pub facts: BTreeMap<String, Facts>,
    /// Members assigned to each partner in each month, every MCO's.
    pub partner_members: BTreeMap<(String, NaiveDate), u64>,
}

impl Ledger {
    /// Every finding, in member, month and kind order.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let of_line = |kind: Kind, l: &Line, hhp: Option<String>| Finding {
            kind,
            member_id: l.member_id.clone(),
            month: first_of(l.service_from),
            mco: l.mco.clone(),
            hhp,
            claims: vec![claim_ref(l)],
            contacts: Vec::new(),
            paid: l.paid.unwrap_or(0.0),
        };
        let mut stray_by_month: BTreeMap<(&str, NaiveDate), Vec<&Line>> = BTreeMap::new();
        for l in &self.stray {
            stray_by_month
                .entry((&l.member_id, first_of(l.service_from)))
                .or_default()
                .push(l);
        }
        // Units are in member, month and partner order: a member-month's units are adjacent.
        let mut start = 0;
        while start < self.units.len() {
            let u0 = &self.units[start];
            let end = start
                + self.units[start..]
                    .iter()
                    .take_while(|o| o.member_id == u0.member_id && o.month == u0.month)
                    .count();
            let all = &self.units[start..end];
            for u in all {
                let claims = || u.lines.iter().map(claim_ref).collect::<Vec<_>>();
                let base = |kind: Kind, contacts: Vec<String>| Finding {
                    kind,
                    member_id: u.member_id.clone(),
                    month: u.month,
                    mco: u.mco.clone(),
                    hhp: Some(u.hhp.clone()),
                    claims: claims(),
                    contacts,
                    paid: u.paid(),
                };
                if u.billed() && !u.earned() {
                    out.push(base(Kind::BilledNotEarned, u.other_contacts.clone()));
                }
                if u.earned() && !u.billed() {
                    out.push(base(Kind::EarnedNotBilled, u.earning_contacts.clone()));
                }
                for l in &u.lines {
                    if self.died_before(l) {
                        out.push(of_line(Kind::BilledAfterDeath, l, Some(u.hhp.clone())));
                    }
                }
            }
            if u0.month_lines > 1 {
                // Every partner's lines of the member-month, on the partner with the most.
                let main = all
                    .iter()
                    .max_by_key(|o| (o.lines.len(), std::cmp::Reverse(o.hhp.clone())))
                    .expect("a unit");
                let stray = stray_by_month
                    .get(&(u0.member_id.as_str(), u0.month))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                out.push(Finding {
                    kind: Kind::BilledMoreThanOnce,
                    member_id: u0.member_id.clone(),
                    month: u0.month,
                    mco: main.mco.clone(),
                    hhp: Some(main.hhp.clone()),
                    claims: all
                        .iter()
                        .flat_map(|o| o.lines.iter())
                        .chain(stray.iter().copied())
                        .map(claim_ref)
                        .collect(),
                    contacts: Vec::new(),
                    paid: all.iter().map(|o| o.paid()).sum::<f64>()
                        + stray.iter().filter_map(|l| l.paid).sum::<f64>(),
                });
            }
            start = end;
        }
        // A month with no assignment has more than one line only among stray lines.
        for ((member, month), lines) in &stray_by_month {
            let in_units = self
                .units
                .binary_search_by(|u| {
                    (u.member_id.as_str(), u.month)
                        .cmp(&(member, *month))
                        .then(std::cmp::Ordering::Less)
                })
                .unwrap_err();
            let has_unit = self
                .units
                .get(in_units)
                .is_some_and(|u| u.member_id == *member && u.month == *month);
            if !has_unit && lines.len() > 1 {
                out.push(Finding {
                    kind: Kind::BilledMoreThanOnce,
                    member_id: member.to_string(),
                    month: *month,
                    mco: lines[0].mco.clone(),
                    hhp: lines[0].hhp.clone(),
                    claims: lines.iter().map(|l| claim_ref(l)).collect(),
                    contacts: Vec::new(),
                    paid: lines.iter().filter_map(|l| l.paid).sum(),
                });
            }
        }
        for l in &self.stray {
            out.push(of_line(Kind::BilledOutsideSpan, l, l.hhp.clone()));
            if self.died_before(l) {
                out.push(of_line(Kind::BilledAfterDeath, l, l.hhp.clone()));
            }
        }
        out.sort_by(|a, b| {
            (&a.member_id, a.month, a.kind, &a.claims).cmp(&(
                &b.member_id,
                b.month,
                b.kind,
                &b.claims,
            ))
        });
        out
    }

    /// Whether a payment line is dated after the member's death.
    pub fn died_before(&self, l: &Line) -> bool {
        self.facts
            .get(&l.member_id)
            .and_then(|f| f.death)
            .is_some_and(|d| d < l.service_from)
    }

    /// The value a tier reads for a unit (`None`: unknown).
    pub fn tier_value(&self, by: TierBy, u: &Unit) -> Option<f64> {
        let f = self.facts.get(&u.member_id);
        match by {
            TierBy::Conditions => Some(f.map_or(0.0, |f| f64::from(f.conditions))),
            TierBy::RiskScore => f.and_then(|f| f.risk_score),
            TierBy::Rural => f.and_then(|f| f.rural).map(|r| if r { 1.0 } else { 0.0 }),
            TierBy::PartnerMembers => self
                .partner_members
                .get(&(u.hhp.clone(), u.month))
                .map(|n| *n as f64),
        }
    }
}

/// A claim and its line, as findings and the ledger name them: `C123:1`.
pub fn claim_ref(l: &Line) -> String {
    format!("{}:{}", l.claim_id, l.line_number)
}

pub fn first_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1")
}

/// The period's months as a `VALUES` list of (first, last day).
fn months_sql(period: &Period) -> String {
    let rows: Vec<String> = period
        .months()
        .iter()
        .map(|(s, t)| format!("({}, {})", date(*s), date(*t)))
        .collect();
    format!("(VALUES {}) AS m(s, t)", rows.join(", "))
}

/// Columns of a registered table or view.
pub(super) async fn columns(engine: &Engine, table: &str) -> Result<Vec<(String, DataType)>> {
    let df = engine.context().table(table).await?;
    Ok(df
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

/// What the ledger's queries are, checked against the session once.
pub struct Queries {
    intervals: String,
    contacts: String,
    lines: String,
    members: String,
    conditions: Option<String>,
    /// Members per partner and month, over every member.
    pub partner_members: String,
}

impl Queries {
    /// The queries of `rule` and `tables` for `period`; a name the data lack is an error at its
    /// line and column (the earning filter's columns, a value set, the members' `risk_score`).
    pub async fn new(
        engine: &Engine,
        rule: &EarningRule,
        tables: &[&RateTable],
        period: &Period,
    ) -> Result<Queries> {
        let contact_cols = columns(engine, "contacts").await?;
        let filter = crate::compile::filter::check(
            &rule.path,
            &rule.service,
            "contacts",
            "c",
            &contact_cols,
            &engine.catalog().value_sets,
        )?;
        let (from, to) = (date(period.start), date(period.end));
        let months = months_sql(period);
        let intervals = format!(
            "SELECT e.member_id, coalesce(e.hhp_id, '(none)') AS hhp_id, e.mco_id, e.population, \
               greatest(e.start_date, m.s) AS s, least(e.end_date, m.t) AS t, m.s AS month \
             FROM hh_enrollment e JOIN {months} ON e.start_date <= m.t AND e.end_date >= m.s \
             ORDER BY e.member_id, month, s, t"
        );
        let contacts = format!(
            "SELECT c.member_id, c.contact_id, c.contact_date, c.hhp_id, \
               coalesce(({filter}), false) AS earns \
             FROM contacts c WHERE c.contact_date BETWEEN {from} AND {to} \
             ORDER BY c.member_id, c.contact_date, c.contact_id"
        );
        let claim_cols = columns(engine, "claims_final").await?;
        let hhp = if claim_cols.iter().any(|(c, _)| c == "hhp_id") {
            "CAST(hhp_id AS VARCHAR)"
        } else {
            "CAST(NULL AS VARCHAR)"
        };
        let lines = format!(
            "SELECT member_id, claim_id, CAST(line_number AS BIGINT) AS line_number, service_from, \
               mco_id, {hhp} AS hhp_id, CAST(paid_amount AS DOUBLE) AS paid_amount \
             FROM claims_final \
             WHERE procedure_code = {code} AND service_from BETWEEN {from} AND {to} \
             ORDER BY member_id, service_from, claim_id, line_number",
            code = string(&rule.procedure_code.value)
        );
        let member_cols = columns(engine, "members").await?;
        let risk_wanted: Vec<&RateTable> = tables
            .iter()
            .copied()
            .filter(|t| t.uses(TierBy::RiskScore))
            .collect();
        let risk = if let Some(t) = risk_wanted.first() {
            if !member_cols.iter().any(|(c, _)| c == "risk_score") {
                let tier = t
                    .tiers
                    .iter()
                    .find(|x| x.by == TierBy::RiskScore)
                    .expect("a risk tier");
                return Err(Error::Definition {
                    path: t.path.clone(),
                    line: tier.at.line,
                    column: tier.at.column,
                    message: format!(
                        "tier `{}` is by `risk_score`, but the members extract has no \
                         `risk_score` column",
                        tier.name
                    ),
                    hint: Some(
                        "add the optional `risk_score` column (a number per member) to \
                         members.parquet, or tier by `conditions`"
                            .into(),
                    ),
                });
            }
            "CAST(risk_score AS DOUBLE)"
        } else {
            "CAST(NULL AS DOUBLE)"
        };
        let members = format!(
            "SELECT member_id, rural, death_date, {risk} AS risk_score FROM members \
             ORDER BY member_id"
        );
        let conditions = condition_sql(engine, tables, period)?;
        let partner_members = format!(
            "SELECT hhp_id, month, count(*) AS members FROM ( \
               SELECT DISTINCT coalesce(e.hhp_id, '(none)') AS hhp_id, m.s AS month, e.member_id \
               FROM hh_enrollment e JOIN {months} ON e.start_date <= m.t AND e.end_date >= m.s \
             ) AS x GROUP BY hhp_id, month"
        );
        Ok(Queries {
            intervals,
            contacts,
            lines,
            members,
            conditions,
            partner_members,
        })
    }
}

/// The condition count of the tables that tier by conditions: each condition met by the table's
/// number of final claims with a diagnosis of its value set in the look-back before the period.
/// Tables that count differently are refused: the ledger keeps one count per member.
fn condition_sql(
    engine: &Engine,
    tables: &[&RateTable],
    period: &Period,
) -> Result<Option<String>> {
    let counting: Vec<&RateTable> = tables
        .iter()
        .copied()
        .filter(|t| t.uses(TierBy::Conditions))
        .collect();
    let Some(first) = counting.first() else {
        return Ok(None);
    };
    for t in &counting[1..] {
        if t.conditions != first.conditions
            || t.lookback_months != first.lookback_months
            || t.claims_per_condition != first.claims_per_condition
        {
            return Err(Error::Usage(format!(
                "{} and {} count conditions differently; tables compared side by side must \
                 share their `conditions:`",
                first.path.display(),
                t.path.display()
            )));
        }
    }
    let cols = crate::compile::block_columns(
        engine.catalog(),
        &first.path,
        &Located {
            value: "claim_diagnoses".into(),
            line: 1,
            column: 1,
        },
    )?;
    let to = period.start.pred_opt().expect("a day before the period");
    let from = period
        .start
        .checked_sub_months(chrono::Months::new(first.lookback_months))
        .unwrap_or(NaiveDate::MIN);
    let mut arms = Vec::new();
    for c in &first.conditions {
        let filter = crate::compile::filter::check(
            &first.path,
            &Located {
                value: format!("in_value_set(dx, {})", string(&c.value_set.value)),
                line: c.value_set.line,
                column: c.value_set.column,
            },
            "claim_diagnoses",
            "d",
            cols,
            &engine.catalog().value_sets,
        )?;
        arms.push(format!(
            "SELECT d.member_id, {} AS condition, d.claim_id FROM claim_diagnoses d \
             WHERE d.service_from BETWEEN {} AND {} AND coalesce(({filter}), false)",
            string(&c.name),
            date(from),
            date(to)
        ));
    }
    Ok(Some(format!(
        "SELECT member_id, count(*) AS conditions FROM ( \
           SELECT member_id, condition FROM (SELECT DISTINCT * FROM ({}) AS a) AS b \
           GROUP BY member_id, condition HAVING count(*) >= {} \
         ) AS met GROUP BY member_id",
        arms.join(" UNION ALL "),
        first.claims_per_condition
    )))
}

/// Members per partner and month (every member: run before the passes narrow the views).
pub async fn partner_members(
    engine: &Engine,
    queries: &Queries,
) -> Result<BTreeMap<(String, NaiveDate), u64>> {
    let mut out = BTreeMap::new();
    for b in &engine
        .collect_for(&queries.partner_members, "members per partner and month")
        .await?
    {
        let hhp = strings(b.column(0))?;
        let months = dates(b, 1)?;
        let n = cast(b.column(2), &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let month =
                day_in(engine, &months, "month", i, "members per partner")?.expect("a month");
            out.insert((hhp.value(i).to_string(), month), n.value(i) as u64);
        }
    }
    Ok(out)
}

/// The ledger of the members of the engine's views (one pass): units, their services and
/// lines, and the members' facts.
pub async fn pass(engine: &Engine, rule: &EarningRule, queries: &Queries) -> Result<Ledger> {
    let what = "the payment ledger";
    let mut ledger = Ledger::default();
    for b in &engine.collect_for(&queries.members, what).await? {
        let ids = strings(b.column(0))?;
        let rural = b.column(1).as_boolean_opt().cloned();
        let risk = cast(b.column(3), &DataType::Float64)?;
        let risk = risk.as_primitive::<Float64Type>();
        let death = dates(b, 2)?;
        for i in 0..b.num_rows() {
            ledger.facts.insert(
                ids.value(i).to_string(),
                Facts {
                    rural: rural
                        .as_ref()
                        .and_then(|r| (!r.is_null(i)).then(|| r.value(i))),
                    death: day_in(engine, &death, "death_date", i, what)?,
                    risk_score: (!risk.is_null(i)).then(|| risk.value(i)),
                    conditions: 0,
                },
            );
        }
    }
    if let Some(sql) = &queries.conditions {
        for b in &engine
            .collect_for(sql, "the members' chronic conditions")
            .await?
        {
            let ids = strings(b.column(0))?;
            let n = cast(b.column(1), &DataType::Int64)?;
            let n = n.as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                ledger
                    .facts
                    .entry(ids.value(i).to_string())
                    .or_default()
                    .conditions = n.value(i) as u32;
            }
        }
    }

    // Assignments: (member, month, partner) → unit, with the intervals of each.
    struct Iv {
        hhp: String,
        s: NaiveDate,
        t: NaiveDate,
    }
    let mut units: BTreeMap<(String, NaiveDate, String), Unit> = BTreeMap::new();
    let mut ivs: BTreeMap<(String, NaiveDate), Vec<Iv>> = BTreeMap::new();
    for b in &engine.collect_for(&queries.intervals, what).await? {
        let (ids, hhp, mco, pop) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(2))?,
            strings(b.column(3))?,
        );
        let (ss, ts, ms) = (dates(b, 4)?, dates(b, 5)?, dates(b, 6)?);
        for i in 0..b.num_rows() {
            let (s, t, month) = (
                day_in(engine, &ss, "start_date", i, what)?.expect("a start"),
                day_in(engine, &ts, "end_date", i, what)?.expect("an end"),
                day_in(engine, &ms, "month", i, what)?.expect("a month"),
            );
            let id = ids.value(i).to_string();
            let partner = hhp.value(i).to_string();
            let u = units
                .entry((id.clone(), month, partner.clone()))
                .or_insert_with(|| Unit {
                    member_id: id.clone(),
                    month,
                    hhp: partner.clone(),
                    mco: None,
                    population: None,
                    state_row: false,
                    first_service: None,
                    earning_contacts: Vec::new(),
                    other_contacts: Vec::new(),
                    lines: Vec::new(),
                    month_lines: 0,
                });
            // Rows come in start order: the last one is the latest assignment.
            u.mco = text(&mco, i);
            u.population = text(&pop, i);
            ivs.entry((id, month))
                .or_default()
                .push(Iv { hhp: partner, s, t });
        }
    }
    // The State's row: the partner of the member's latest interval in the month.
    for ((id, month), list) in &ivs {
        let last = list
            .iter()
            .max_by(|a, b| (a.s, a.t, &b.hhp).cmp(&(b.s, b.t, &a.hhp)))
            .expect("an interval");
        if let Some(u) = units.get_mut(&(id.clone(), *month, last.hhp.clone())) {
            u.state_row = true;
        }
    }

    for b in &engine.collect_for(&queries.contacts, what).await? {
        let (ids, cid, hhp) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(3))?,
        );
        let earns = b.column(4).as_boolean();
        let on = dates(b, 2)?;
        for i in 0..b.num_rows() {
            let when = day_in(engine, &on, "contact_date", i, what)?.expect("a contact date");
            let month = first_of(when);
            let id = ids.value(i).to_string();
            let partner = hhp.value(i).to_string();
            let Some(u) = units.get_mut(&(id.clone(), month, partner.clone())) else {
                continue;
            };
            let assigned = !rule.by_assigned_partner
                || ivs.get(&(id, month)).is_some_and(|l| {
                    l.iter()
                        .any(|iv| iv.hhp == partner && iv.s <= when && when <= iv.t)
                });
            let contact = cid.value(i).to_string();
            if earns.value(i) && !earns.is_null(i) && assigned {
                u.first_service = Some(u.first_service.map_or(when, |d| d.min(when)));
                u.earning_contacts.push(contact);
            } else {
                u.other_contacts.push(contact);
            }
        }
    }

    let mut month_lines: BTreeMap<(String, NaiveDate), usize> = BTreeMap::new();
    for b in &engine.collect_for(&queries.lines, what).await? {
        let (ids, claim, mco, hhp) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(4))?,
            strings(b.column(5))?,
        );
        let ln = cast(b.column(2), &DataType::Int64)?;
        let ln = ln.as_primitive::<Int64Type>();
        let paid = b.column(6).as_primitive::<Float64Type>();
        let froms = dates(b, 3)?;
        for i in 0..b.num_rows() {
            let from = day_in(engine, &froms, "service_from", i, what)?.expect("a date of service");
            let line = Line {
                member_id: ids.value(i).to_string(),
                claim_id: claim.value(i).to_string(),
                line_number: ln.value(i),
                service_from: from,
                mco: text(&mco, i),
                hhp: text(&hhp, i),
                paid: (!paid.is_null(i)).then(|| paid.value(i)),
            };
            let month = first_of(from);
            *month_lines
                .entry((line.member_id.clone(), month))
                .or_default() += 1;
            let list = ivs.get(&(line.member_id.clone(), month));
            let partner = match (&line.hhp, list) {
                (_, None) => None,
                (Some(h), Some(l)) if l.iter().any(|iv| &iv.hhp == h) => Some(h.clone()),
                (Some(_), Some(_)) => None,
                (None, Some(l)) => l
                    .iter()
                    .filter(|iv| iv.s <= from && from <= iv.t)
                    .max_by(|a, b| (a.s, &b.hhp).cmp(&(b.s, &a.hhp)))
                    .or_else(|| {
                        l.iter()
                            .max_by(|a, b| (a.s, a.t, &b.hhp).cmp(&(b.s, b.t, &a.hhp)))
                    })
                    .map(|iv| iv.hhp.clone()),
            };
            match partner.and_then(|p| units.get_mut(&(line.member_id.clone(), month, p))) {
                Some(u) => u.lines.push(line),
                None => ledger.stray.push(line),
            }
        }
    }
    for u in units.values_mut() {
        u.month_lines = month_lines
            .get(&(u.member_id.clone(), u.month))
            .copied()
            .unwrap_or(0);
    }
    ledger.units = units.into_values().collect();
    Ok(ledger)
}

/// The passes' ledgers as one (passes are ranges of member ids, so nothing is counted twice).
pub fn merge(parts: Vec<Ledger>, partner_members: BTreeMap<(String, NaiveDate), u64>) -> Ledger {
    let mut out = Ledger {
        partner_members,
        ..Ledger::default()
    };
    for p in parts {
        out.units.extend(p.units);
        out.stray.extend(p.stray);
        out.facts.extend(p.facts);
    }
    out.units
        .sort_by(|a, b| (&a.member_id, a.month, &a.hhp).cmp(&(&b.member_id, b.month, &b.hhp)));
    out.stray.sort_by(|a, b| {
        (&a.member_id, a.service_from, &a.claim_id, a.line_number).cmp(&(
            &b.member_id,
            b.service_from,
            &b.claim_id,
            b.line_number,
        ))
    });
    out
}

pub(super) fn strings(col: &ArrayRef) -> Result<StringArray> {
    Ok(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn text(col: &StringArray, i: usize) -> Option<String> {
    (!col.is_null(i)).then(|| col.value(i).to_string())
}

/// A batch's date column, cast once.
fn dates(b: &RecordBatch, c: usize) -> Result<Arc<dyn Array>> {
    Ok(cast(b.column(c), &DataType::Date32)?)
}

fn day_in(
    engine: &Engine,
    col: &Arc<dyn Array>,
    name: &str,
    i: usize,
    what: &str,
) -> Result<Option<NaiveDate>> {
    let d = col.as_primitive::<Date32Type>();
    if d.is_null(i) {
        return Ok(None);
    }
    engine.result_date(d.value(i), name, what).map(Some)
}
