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
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Date32Type;

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
    /// For criteria met by an absence: the latest qualifying row on or before the as-of date.
    pub last_seen: Option<NaiveDate>,
}

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
    /// Evidence of those members, sorted by member, definition, criterion, date, id.
    pub evidence: Vec<Evidence>,
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

fn text_at(col: &dyn Array, i: usize) -> Option<String> {
    if col.is_null(i) {
        return None;
    }
    let s = datafusion::arrow::compute::cast(
        &col.slice(i, 1),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .expect("a string column casts to Utf8");
    Some(s.as_string::<i32>().value(0).to_string())
}

/// Compile and run `defs` in `engine` for look-backs ending on `as_of`, and evaluate every rule.
pub async fn run(engine: &Engine, defs: &[Definition], as_of: NaiveDate) -> Result<CohortRun> {
    let compiled = query::compile(defs, engine.catalog(), as_of)?;
    let population = engine
        .collect_for(&compiled.population, "the cohort population")
        .await?;
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    for b in &population {
        for i in 0..b.num_rows() {
            let id = text_at(b.column(0).as_ref(), i).unwrap_or_default();
            members.insert(
                id.clone(),
                Member {
                    member_id: id,
                    mco: text_at(b.column(1).as_ref(), i),
                    hhp: text_at(b.column(2).as_ref(), i),
                    population: text_at(b.column(3).as_ref(), i),
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

    let rows = engine
        .collect_for(&compiled.evidence, "the cohort evidence")
        .await?;
    let mut evidence = Vec::new();
    let mut outside: BTreeSet<String> = BTreeSet::new();
    for b in &rows {
        for i in 0..b.num_rows() {
            let member_id = text_at(b.column(0).as_ref(), i).unwrap_or_default();
            if !members.contains_key(&member_id) {
                outside.insert(member_id);
                continue;
            }
            evidence.push(Evidence {
                member_id,
                definition: text_at(b.column(1).as_ref(), i).unwrap_or_default(),
                criterion: text_at(b.column(2).as_ref(), i).unwrap_or_default(),
                id: text_at(b.column(3).as_ref(), i).unwrap_or_default(),
                date: date_at(b.column(4).as_ref(), i).expect("evidence rows are dated"),
                code: text_at(b.column(5).as_ref(), i),
            });
        }
    }
    evidence.sort();
    // Counted by distinct id: a claim with two qualifying diagnoses is one claim.
    let mut ids: BTreeMap<(String, String, String), BTreeSet<&str>> = BTreeMap::new();
    for e in &evidence {
        let key = (
            e.member_id.clone(),
            e.definition.clone(),
            e.criterion.clone(),
        );
        ids.entry(key.clone()).or_default().insert(&e.id);
        let m = members.get_mut(&e.member_id).expect("kept above");
        let h = m.hits.entry((key.1, key.2)).or_default();
        h.first = Some(h.first.map_or(e.date, |d| d.min(e.date)));
        h.last = Some(h.last.map_or(e.date, |d| d.max(e.date)));
    }
    for ((member, def, crit), set) in ids {
        let m = members.get_mut(&member).expect("kept above");
        m.hits.get_mut(&(def, crit)).expect("made above").n = set.len() as u64;
    }
    if let Some(sql) = &compiled.last_seen {
        for b in &engine
            .collect_for(sql, "the last contact before the look-back")
            .await?
        {
            for i in 0..b.num_rows() {
                let member_id = text_at(b.column(0).as_ref(), i).unwrap_or_default();
                let Some(m) = members.get_mut(&member_id) else {
                    continue;
                };
                let key = (
                    text_at(b.column(1).as_ref(), i).unwrap_or_default(),
                    text_at(b.column(2).as_ref(), i).unwrap_or_default(),
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
        evidence,
        not_eligible_with_evidence: outside.len(),
    })
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
