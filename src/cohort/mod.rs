//! Target populations and high-risk flags (`hhq cohort`): who a Health Home should serve, and
//! who among its members needs the most coordination.
//!
//! ```text
//! measures/cohorts/*.yaml ─► model ─► query ─► SQL ─► engine ─► CohortRun ─► lists
//! (kind: cohort | risk_flags)  Definition  CompiledCohorts        (per member:     not_enrolled,
//!                                                                  criteria, rules) no_longer_qualify,
//!                                                                                   both_populations,
//!                                                                                   worklist, evidence,
//!                                                                                   summary (suppressed)
//! ```
//!
//! A cohort (the SMI or chronic-conditions population) is named criteria over building blocks,
//! each counted in distinct claims within a look-back ending on the as-of date, and a rule over
//! them (`at_least N of`, `none_of`, `all_of`, `any_of`). Risk flags are criteria of the same
//! kind with thresholds (`at_least: 3` ED visits, `fewer_than: 1` contact in 60 days). Rules are
//! evaluated here, member by member, so every listed member carries the criteria and the claims
//! behind the decision: nothing is a score.

pub mod deck;
pub mod lists;
pub mod model;
pub mod query;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::datasource::MemTable;

pub use model::{Cohort, Criterion, Definition, FlagSet, Lookback, Rule, Threshold};
pub use query::CompiledCohorts;

use crate::engine::Engine;
use crate::error::Result;

/// What one criterion found for one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hit {
    /// Distinct evidence ids (claims, visits, contacts) in the look-back.
    pub n: u64,
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
    /// The earliest pieces of evidence (at most [`SHOWN`], one per id), for the lists' text.
    pub shown: Vec<Evidence>,
    /// For criteria met by an absence: the latest qualifying row on or before the as-of date.
    pub last_seen: Option<NaiveDate>,
}

/// How many pieces of evidence a list's text names per criterion (all are in `evidence.csv`).
pub const SHOWN: usize = 3;

/// One member of the population on the as-of date, with everything the rules decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub member_id: String,
    /// The MCO on the as-of date (the Health Home span's, else the eligibility span's).
    pub mco: Option<String>,
    pub hhp: Option<String>,
    /// The Health Home population enrolled in on the as-of date; `None` when not enrolled.
    pub population: Option<String>,
    pub hh_since: Option<NaiveDate>,
    /// The end of the latest Health Home span the member opted out at, before the as-of date.
    pub opted_out_on: Option<NaiveDate>,
    /// By (definition, criterion); criteria with no evidence are absent.
    pub hits: BTreeMap<(String, String), Hit>,
    /// Cohort ids the member qualifies for, in definition order.
    pub qualifies: Vec<String>,
    /// Flags raised (enrolled members only), in definition order.
    pub flags: Vec<String>,
    pub high_risk: bool,
}

impl Member {
    pub fn hit(&self, def: &str, criterion: &str) -> Hit {
        self.hits
            .get(&(def.to_string(), criterion.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn enrolled(&self) -> bool {
        self.population.is_some()
    }
}

/// One piece of evidence: a row that counted toward a criterion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Evidence {
    pub member_id: String,
    pub definition: String,
    pub criterion: String,
    pub date: NaiveDate,
    pub id: String,
    pub code: Option<String>,
}

/// The outcome of a cohort run.
#[derive(Debug, Clone)]
pub struct CohortRun {
    pub as_of: NaiveDate,
    pub definitions: Vec<Definition>,
    /// Members eligible on the as-of date, by member id.
    pub members: Vec<Member>,
    /// The SQL run; its narrowed tables stay registered in the engine, so the evidence of
    /// listed members can be read back ([`evidence`]).
    pub compiled: CompiledCohorts,
    /// Members with evidence who were not eligible for Medicaid on the as-of date, so are on
    /// no list (counted, never dropped silently).
    pub not_eligible_with_evidence: usize,
}

impl CohortRun {
    pub fn cohorts(&self) -> impl Iterator<Item = &Cohort> {
        self.definitions.iter().filter_map(|d| match d {
            Definition::Cohort(c) => Some(c),
            Definition::Flags(_) => None,
        })
    }

    pub fn flag_set(&self) -> Option<&FlagSet> {
        self.definitions.iter().find_map(|d| match d {
            Definition::Flags(f) => Some(f),
            Definition::Cohort(_) => None,
        })
    }

    /// The cohort for a Health Home population, if one is defined.
    pub fn cohort_of(&self, population: &str) -> Option<&Cohort> {
        self.cohorts().find(|c| c.population == population)
    }
}

fn date_at(col: &dyn Array, i: usize) -> Option<NaiveDate> {
    let d = col.as_primitive::<Date32Type>();
    (!d.is_null(i))
        .then(|| NaiveDate::from_num_days_from_ce_opt(d.value(i) + 719_163).expect("date in range"))
}

/// A column as UTF-8 strings, converted once (views, dictionaries and the like).
fn strings(col: &ArrayRef) -> Result<StringArray> {
    Ok(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn text(col: &StringArray, i: usize) -> Option<String> {
    (!col.is_null(i)).then(|| col.value(i).to_string())
}

/// The evidence query's rows grouped as one statement reads them.
fn over_evidence(compiled: &CompiledCohorts, select: &str) -> String {
    format!("{select} FROM ({}) AS e", compiled.evidence)
}

/// Compile and run `defs` in `engine` for look-backs ending on `as_of`, and evaluate every rule.
pub async fn run(engine: &Engine, defs: &[Definition], as_of: NaiveDate) -> Result<CohortRun> {
    let compiled = query::compile(defs, engine.catalog(), as_of)?;
    let population = engine
        .collect_for(&compiled.population, "the cohort population")
        .await?;
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    for b in &population {
        let (ids, mco, hhp, pop) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(2))?,
            strings(b.column(3))?,
        );
        for i in 0..b.num_rows() {
            let id = text(&ids, i).unwrap_or_default();
            members.insert(
                id.clone(),
                Member {
                    member_id: id,
                    mco: text(&mco, i),
                    hhp: text(&hhp, i),
                    population: text(&pop, i),
                    hh_since: date_at(b.column(4).as_ref(), i),
                    opted_out_on: date_at(b.column(5).as_ref(), i),
                    hits: BTreeMap::new(),
                    qualifies: Vec::new(),
                    flags: Vec::new(),
                    high_risk: false,
                },
            );
        }
    }

    // Each block read once, its rows that may count kept for the queries below.
    for (name, sql) in &compiled.narrow {
        let batches = engine.collect_for(sql, "the cohort criteria").await?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => engine.context().sql(sql).await?.schema().inner().clone(),
        };
        let table = MemTable::try_new(schema, vec![batches])?;
        engine.context().deregister_table(name.as_str())?;
        engine
            .context()
            .register_table(name.as_str(), Arc::new(table))?;
    }

    // Counted by distinct id: a claim with two qualifying diagnoses is one claim.
    let counts = engine
        .collect_for(
            &over_evidence(
                &compiled,
                "SELECT member_id, definition, criterion, count(DISTINCT evidence_id) AS n, \
                 min(evidence_date) AS first, max(evidence_date) AS last",
            )
            .replace(") AS e", ") AS e GROUP BY member_id, definition, criterion"),
            "counting the cohort evidence",
        )
        .await?;
    let mut outside: BTreeSet<String> = BTreeSet::new();
    for b in &counts {
        let (ids, defs_col, crits) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(2))?,
        );
        let n = cast(b.column(3), &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let id = text(&ids, i).unwrap_or_default();
            let Some(m) = members.get_mut(&id) else {
                outside.insert(id);
                continue;
            };
            m.hits.insert(
                (
                    text(&defs_col, i).unwrap_or_default(),
                    text(&crits, i).unwrap_or_default(),
                ),
                Hit {
                    n: n.value(i) as u64,
                    first: date_at(b.column(4).as_ref(), i),
                    last: date_at(b.column(5).as_ref(), i),
                    ..Hit::default()
                },
            );
        }
    }
    // The earliest pieces of evidence per criterion, one per id, for the lists' text.
    let shown = engine
        .collect_for(
            &format!(
                "SELECT member_id, definition, criterion, evidence_id, d, code FROM (\
                   SELECT *, row_number() OVER (PARTITION BY member_id, definition, criterion \
                     ORDER BY d, evidence_id) AS k FROM ({})) WHERE k <= {SHOWN}",
                over_evidence(
                    &compiled,
                    "SELECT member_id, definition, criterion, evidence_id, \
                     min(evidence_date) AS d, min(evidence_code) AS code"
                )
                .replace(
                    ") AS e",
                    ") AS e GROUP BY member_id, definition, criterion, evidence_id"
                )
            ),
            "the first evidence of each criterion",
        )
        .await?;
    for e in evidence_of(&shown)? {
        if let Some(m) = members.get_mut(&e.member_id)
            && let Some(h) = m.hits.get_mut(&(e.definition.clone(), e.criterion.clone()))
        {
            h.shown.push(e);
        }
    }
    for m in members.values_mut() {
        for h in m.hits.values_mut() {
            h.shown.sort();
        }
    }
    if let Some(sql) = &compiled.last_seen {
        for b in &engine
            .collect_for(sql, "the last row before the look-back")
            .await?
        {
            let (ids, defs_col, crits) = (
                strings(b.column(0))?,
                strings(b.column(1))?,
                strings(b.column(2))?,
            );
            for i in 0..b.num_rows() {
                let Some(m) = members.get_mut(ids.value(i)) else {
                    continue;
                };
                let key = (
                    text(&defs_col, i).unwrap_or_default(),
                    text(&crits, i).unwrap_or_default(),
                );
                m.hits.entry(key).or_default().last_seen = date_at(b.column(3).as_ref(), i);
            }
        }
    }

    for m in members.values_mut() {
        evaluate(m, defs);
    }
    Ok(CohortRun {
        as_of,
        definitions: defs.to_vec(),
        members: members.into_values().collect(),
        compiled,
        not_eligible_with_evidence: outside.len(),
    })
}

/// Evidence rows (`member_id, definition, criterion, id, date, code`) as [`Evidence`].
fn evidence_of(batches: &[RecordBatch]) -> Result<Vec<Evidence>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<StringArray> = [0, 1, 2, 3, 5]
            .into_iter()
            .map(|i| strings(b.column(i)))
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            out.push(Evidence {
                member_id: text(&cols[0], i).unwrap_or_default(),
                definition: text(&cols[1], i).unwrap_or_default(),
                criterion: text(&cols[2], i).unwrap_or_default(),
                id: text(&cols[3], i).unwrap_or_default(),
                date: date_at(b.column(4).as_ref(), i).expect("evidence rows are dated"),
                code: text(&cols[4], i),
            });
        }
    }
    Ok(out)
}

/// Every piece of evidence of these (member, definition, criterion) triples, sorted; read back
/// from the tables [`run`] left registered in `engine`.
pub async fn evidence(
    engine: &Engine,
    run: &CohortRun,
    wanted: &[(&str, &str, &str)],
) -> Result<Vec<Evidence>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let column = |k: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(wanted.iter().map(
            |w| match k {
                0 => w.0,
                1 => w.1,
                _ => w.2,
            },
        )))
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("w_member", column(0)),
        ("w_definition", column(1)),
        ("w_criterion", column(2)),
    ])?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    let ctx = engine.context();
    ctx.deregister_table("hhq_cohort_wanted")?;
    ctx.register_table("hhq_cohort_wanted", Arc::new(table))?;
    let sql = format!(
        "SELECT e.member_id, e.definition, e.criterion, e.evidence_id, e.evidence_date, e.evidence_code \
         FROM ({}) AS e JOIN hhq_cohort_wanted w ON e.member_id = w.w_member \
           AND e.definition = w.w_definition AND e.criterion = w.w_criterion",
        run.compiled.evidence
    );
    let batches = engine
        .collect_for(&sql, "the evidence of the listed members")
        .await?;
    ctx.deregister_table("hhq_cohort_wanted")?;
    let mut out = evidence_of(&batches)?;
    out.sort();
    Ok(out)
}

/// Apply every rule to one member: the cohorts it qualifies for, and (enrolled members only)
/// the flags raised and whether they make it high-risk.
pub fn evaluate(m: &mut Member, defs: &[Definition]) {
    m.qualifies.clear();
    m.flags.clear();
    m.high_risk = false;
    for d in defs {
        let met = |c: &Criterion| c.threshold.met(m.hit(d.id(), &c.name.value).n);
        let met_names: BTreeSet<&str> = d
            .criteria()
            .iter()
            .filter(|c| met(c))
            .map(|c| c.name.value.as_str())
            .collect();
        let holds = |r: &Rule| r.holds(&|name: &str| met_names.contains(name));
        match d {
            Definition::Cohort(c) => {
                if holds(&c.qualifies) {
                    m.qualifies.push(c.id.clone());
                }
            }
            Definition::Flags(f) => {
                if m.enrolled() {
                    m.flags = f
                        .flags
                        .iter()
                        .filter(|c| met_names.contains(c.name.value.as_str()))
                        .map(|c| c.name.value.clone())
                        .collect();
                    m.high_risk = holds(&f.high_risk);
                }
            }
        }
    }
}
