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

pub mod lists;
pub mod model;
pub mod query;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
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
    /// The earliest pieces of evidence (at most [`SHOWN`], one per id), for the lists' text;
    /// filled by [`evidence`] for the criteria a list shows.
    pub shown: Vec<Shown>,
    /// For criteria met by an absence: the latest qualifying row on or before the as-of date.
    pub last_seen: Option<NaiveDate>,
}

/// A piece of evidence as a list names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shown {
    pub date: NaiveDate,
    pub id: String,
    pub code: Option<String>,
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
    /// What a criterion found for the member (nothing, when it found nothing).
    pub fn hit(&self, def: &str, criterion: &str) -> &Hit {
        static NOTHING: Hit = Hit {
            n: 0,
            shown: Vec::new(),
            last_seen: None,
        };
        self.hits
            .get(&(def.to_string(), criterion.to_string()))
            .unwrap_or(&NOTHING)
    }

    pub fn enrolled(&self) -> bool {
        self.population.is_some()
    }
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

/// Row `i` of date column `c` of a result batch of `what`; a day hhq cannot compute with is an
/// error naming the column.
fn date_at(
    engine: &Engine,
    b: &RecordBatch,
    c: usize,
    i: usize,
    what: &str,
) -> Result<Option<NaiveDate>> {
    let d = b.column(c).as_primitive::<Date32Type>();
    if d.is_null(i) {
        return Ok(None);
    }
    engine
        .result_date(d.value(i), b.schema().field(c).name(), what)
        .map(Some)
}

/// A column as UTF-8 strings, converted once (views, dictionaries and the like).
fn strings(col: &ArrayRef) -> Result<StringArray> {
    Ok(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn text(col: &StringArray, i: usize) -> Option<String> {
    (!col.is_null(i)).then(|| col.value(i).to_string())
}

/// Compile and run `defs` in `engine` for look-backs ending on `as_of`, and evaluate every rule.
pub async fn run(engine: &Engine, defs: &[Definition], as_of: NaiveDate) -> Result<CohortRun> {
    let compiled = query::compile(defs, engine.catalog(), as_of)?;
    let names: Vec<(String, String)> = query::criteria(defs)
        .into_iter()
        .map(|(d, c)| (d.id().to_string(), c.name.value.clone()))
        .collect();
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
                    hh_since: date_at(engine, b, 4, i, "the cohort population")?,
                    opted_out_on: date_at(engine, b, 5, i, "the cohort population")?,
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

    // Counted by distinct id (a claim with two qualifying diagnoses is one claim): grouped by
    // id first, then counted, which DataFusion does faster than `count(DISTINCT)`.
    let counts = engine
        .collect_for(
            &format!(
                "SELECT member_id, criterion, count(*) AS n \
                 FROM (SELECT member_id, criterion, evidence_id \
                   FROM ({}) AS e GROUP BY member_id, criterion, evidence_id) AS ids \
                 GROUP BY member_id, criterion",
                compiled.evidence
            ),
            "counting the cohort evidence",
        )
        .await?;
    let mut outside: BTreeSet<String> = BTreeSet::new();
    for b in &counts {
        let ids = strings(b.column(0))?;
        let crit = cast(b.column(1), &DataType::Int64)?;
        let crit = crit.as_primitive::<Int64Type>();
        let n = cast(b.column(2), &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let Some(m) = members.get_mut(ids.value(i)) else {
                outside.insert(ids.value(i).to_string());
                continue;
            };
            m.hits.insert(
                names[crit.value(i) as usize].clone(),
                Hit {
                    n: n.value(i) as u64,
                    ..Hit::default()
                },
            );
        }
    }
    if let Some(sql) = &compiled.last_seen {
        for b in &engine
            .collect_for(sql, "the last row before the look-back")
            .await?
        {
            let ids = strings(b.column(0))?;
            let crit = cast(b.column(1), &DataType::Int64)?;
            let crit = crit.as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let Some(m) = members.get_mut(ids.value(i)) else {
                    continue;
                };
                m.hits
                    .entry(names[crit.value(i) as usize].clone())
                    .or_default()
                    .last_seen = date_at(engine, b, 2, i, "the last row before the look-back")?;
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

/// Every piece of evidence of these (member, definition, criterion) triples, read back from the
/// tables [`run`] left registered in `engine`, as one batch sorted by member, definition,
/// criterion, date and id (`member_id, definition, criterion, date, id, code`); the first of each
/// criterion become the members' [`Hit::shown`].
pub async fn evidence(
    engine: &Engine,
    run: &mut CohortRun,
    wanted: &[(String, String, String)],
) -> Result<RecordBatch> {
    let criteria = query::criteria(&run.definitions);
    let index = |d: &str, c: &str| {
        criteria
            .iter()
            .position(|(x, y)| x.id() == d && y.name.value == c)
            .expect("a criterion of the run") as i32
    };
    let wanted_batch = RecordBatch::try_from_iter(vec![
        (
            "w_member",
            Arc::new(StringArray::from_iter_values(
                wanted.iter().map(|w| w.0.as_str()),
            )) as ArrayRef,
        ),
        (
            "w_criterion",
            Arc::new(Int32Array::from_iter_values(
                wanted.iter().map(|w| index(&w.1, &w.2)),
            )) as ArrayRef,
        ),
    ])?;
    let ctx = engine.context();
    let table = MemTable::try_new(wanted_batch.schema(), vec![vec![wanted_batch]])?;
    ctx.deregister_table("hhq_cohort_wanted")?;
    ctx.register_table("hhq_cohort_wanted", Arc::new(table))?;
    // Definition and criterion names by number, joined in rather than carried by every row.
    let names: Vec<String> = criteria
        .iter()
        .enumerate()
        .map(|(k, (d, c))| format!("({k}, {}, {})", lit(d.id()), lit(&c.name.value)))
        .collect();
    let sql = format!(
        "SELECT e.member_id, n.definition, n.criterion, e.evidence_date AS date, \
           e.evidence_id AS id, e.evidence_code AS code \
         FROM (SELECT DISTINCT * FROM ({}) AS x) AS e \
         JOIN hhq_cohort_wanted w ON e.member_id = w.w_member AND e.criterion = w.w_criterion \
         JOIN (VALUES {}) AS n(k, definition, criterion) ON CAST(e.criterion AS BIGINT) = n.k \
         ORDER BY e.member_id, e.criterion, date, id, code",
        run.compiled.evidence,
        names.join(", ")
    );
    let batches = engine
        .collect_for(&sql, "the evidence of the listed members")
        .await?;
    ctx.deregister_table("hhq_cohort_wanted")?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => ctx.sql(&sql).await?.schema().inner().clone(),
    };
    let batch = concat_batches(&schema, &batches)?;
    let cols: Vec<StringArray> = [0, 1, 2, 4, 5]
        .into_iter()
        .map(|i| strings(batch.column(i)))
        .collect::<Result<_>>()?;
    let by_id: BTreeMap<&str, usize> = run
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), i))
        .collect();
    let mut place: Vec<(usize, (String, String), Shown)> = Vec::new();
    for i in 0..batch.num_rows() {
        let Some(&m) = by_id.get(cols[0].value(i)) else {
            continue;
        };
        place.push((
            m,
            (cols[1].value(i).to_string(), cols[2].value(i).to_string()),
            Shown {
                date: match date_at(engine, &batch, 3, i, "the evidence of the listed members")? {
                    Some(d) => d,
                    // Evidence rows are dated: a row without one shows nothing.
                    None => continue,
                },
                id: cols[3].value(i).to_string(),
                code: text(&cols[4], i),
            },
        ));
    }
    for (m, key, shown) in place {
        if let Some(h) = run.members[m].hits.get_mut(&key)
            && h.shown.len() < SHOWN
            && !h.shown.iter().any(|s| s.id == shown.id)
        {
            h.shown.push(shown);
        }
    }
    Ok(batch)
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
