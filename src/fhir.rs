//! FHIR R4 export (`hhq fhir`): a run's results as MeasureReport resources gathered in a
//! `collection` Bundle, for EHR vendors and FHIR-based reporting: one `summary` report per
//! measure from the result table (`summary.csv`), or one `individual` report per measure for a
//! member from the member-level detail (`detail/<measure>.parquet`). It owns the mapping to a
//! report's groups (one per component), populations, scores and stratifiers; it reads a run's
//! outputs and the measure definitions, never the extracts.
//!
//! The numbers are the run's, as `cms_reporting.csv` has them: not suppressed (a report to a
//! payer or to CMS, not a publication), and an audience's only when the run was scoped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::measure::{Better, ComponentKind, Measure, Unit};
use crate::results::Grouping;

/// The code system of the populations a group counts (FHIR R4's `measure-population`).
const POPULATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
/// FHIR R4's `measure-improvement-notation` code system.
const IMPROVEMENT_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";
/// hhq's own code system for a measure's components (`7_day`, `ed_visits`, ...): the CMS Core
/// Set publishes no FHIR codes for them.
const COMPONENT_SYSTEM: &str = "urn:hhq:measure-component";
/// hhq's own code system for stratifiers (`age_band`, `mco`, `hhp`, `population`).
const STRATIFIER_SYSTEM: &str = "urn:hhq:stratifier";

/// One row of `summary.csv`, as the result table's contract has it.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    measure: String,
    component: String,
    period_start: String,
    period_end: String,
    stratifier: Grouping,
    stratum: String,
    numerator: f64,
    denominator: f64,
    rate: Option<f64>,
    unit: Unit,
}

/// Read a run's `summary.csv`; a row that does not fit the result table names its line.
fn read_summary(path: &Path) -> Result<Vec<Row>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::Usage(format!("{}: {other:?}", path.display())),
    })?;
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        rows.push(row.map_err(|e| {
            Error::Usage(format!(
                "{}: line {}: not a result-table row: {e}",
                path.display(),
                i + 2
            ))
        })?);
    }
    Ok(rows)
}

/// The MeasureReports of the run in `run_dir` (its `summary.csv`), for `measures` (each must
/// have rows there), gathered in a Bundle of type `collection`.
pub fn bundle(run_dir: &Path, measures: &[&Measure]) -> Result<Value> {
    let path = run_dir.join("summary.csv");
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "no {}: give --run the output directory of `hhq run`",
            path.display()
        )));
    }
    let rows = read_summary(&path)?;
    let mut entries = Vec::new();
    for m in measures {
        let own: Vec<&Row> = rows.iter().filter(|r| r.measure == m.id).collect();
        if own.is_empty() {
            return Err(Error::Usage(format!(
                "{} holds no rows of measure {}: was it run (`hhq run --measure {}`)?",
                path.display(),
                m.id,
                m.id
            )));
        }
        entries.push(json!({ "resource": measure_report(m, &own) }));
    }
    Ok(json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": entries,
    }))
}

/// One measure's `summary` MeasureReport from its rows of the result table: a group per
/// component, in the measure's order.
fn measure_report(m: &Measure, rows: &[&Row]) -> Value {
    let first = rows[0];
    let groups: Vec<Value> = m
        .components
        .iter()
        .filter_map(|c| {
            let name = c.name.value.as_str();
            let of: Vec<&&Row> = rows.iter().filter(|r| r.component == name).collect();
            let total = of.iter().find(|r| r.stratifier == Grouping::Total)?;
            Some(group(m, c.unit, name, total, &of))
        })
        .collect();
    json!({
        "resourceType": "MeasureReport",
        "id": format!("{}-{}", m.id, first.period_end),
        "status": "complete",
        "type": "summary",
        "measure": format!("urn:hhq:measure:{}|{}", m.id, m.version),
        "period": { "start": first.period_start, "end": first.period_end },
        "improvementNotation": {
            "coding": [{ "system": IMPROVEMENT_SYSTEM, "code": improvement(m.better) }]
        },
        "group": groups,
    })
}

/// One component: the total's populations and score, then each stratifier's strata.
fn group(m: &Measure, unit: Unit, name: &str, total: &Row, rows: &[&&Row]) -> Value {
    let mut by_stratifier: BTreeMap<usize, (&str, Vec<&Row>)> = BTreeMap::new();
    for r in rows.iter() {
        let Grouping::By(stratifier) = r.stratifier else {
            continue;
        };
        // The measure's own order of stratifiers; others (benchmarks) after, by name.
        let rank = m
            .stratify
            .iter()
            .position(|s| *s == stratifier)
            .unwrap_or(usize::MAX / 2);
        by_stratifier
            .entry(rank)
            .or_insert((stratifier.name(), Vec::new()))
            .1
            .push(r);
    }
    let stratifiers: Vec<Value> = by_stratifier
        .into_values()
        .map(|(stratifier, strata)| {
            json!({
                "code": [{
                    "coding": [{ "system": STRATIFIER_SYSTEM, "code": stratifier }],
                    "text": stratifier,
                }],
                "stratum": strata.iter().map(|r| {
                    let mut s = json!({
                        "value": { "text": r.stratum },
                        "population": populations(r),
                    });
                    if let Some(score) = score(unit, r) {
                        s["measureScore"] = score;
                    }
                    s
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut g = json!({
        "code": {
            "coding": [{ "system": COMPONENT_SYSTEM, "code": name }],
            "text": name,
        },
        "population": populations(total),
    });
    if let Some(score) = score(unit, total) {
        g["measureScore"] = score;
    }
    if !stratifiers.is_empty() {
        g["stratifier"] = Value::Array(stratifiers);
    }
    g
}

/// A row's numerator and denominator as FHIR populations. The denominator is what the result
/// table counts: units after exclusions (FHIR's denominator less its exclusions), so a reader's
/// numerator over denominator is the rate. A ratio component's populations are the two
/// components' numerators. A count that is not whole (expected readmissions) has no population:
/// its value is the score.
fn populations(r: &Row) -> Vec<Value> {
    [("numerator", r.numerator), ("denominator", r.denominator)]
        .into_iter()
        .filter(|(_, n)| n.fract() == 0.0 && *n >= 0.0 && *n <= i64::MAX as f64)
        .map(|(code, n)| {
            json!({
                "code": { "coding": [{ "system": POPULATION_SYSTEM, "code": code }] },
                "count": n as i64,
            })
        })
        .collect()
}

/// A row's rate as a FHIR Quantity in the component's unit (UCUM where one exists); none when
/// the denominator is zero.
fn score(unit: Unit, r: &Row) -> Option<Value> {
    let value = r.rate?;
    let mut q = json!({ "value": value });
    match unit {
        Unit::Percent => {
            q["unit"] = json!("%");
            q["system"] = json!("http://unitsofmeasure.org");
            q["code"] = json!("%");
        }
        Unit::Days | Unit::MedianDays => {
            q["unit"] = json!("days");
            q["system"] = json!("http://unitsofmeasure.org");
            q["code"] = json!("d");
        }
        Unit::Per1000MemberMonths => q["unit"] = json!("per 1,000 member months"),
        Unit::Per1000Members => q["unit"] = json!("per 1,000 members"),
        Unit::DollarsPerMemberMonth => q["unit"] = json!("USD per member month"),
        Unit::Count | Unit::Ratio => {}
    }
    debug_assert_eq!(unit, r.unit);
    Some(q)
}

/// One measure's `individual` MeasureReport for `member`, from the run's detail: per component,
/// the member's units (initial population), those excluded, and the numerator and denominator
/// as the result table counts them (summed over every member they are its figures). `None` when
/// the member has no unit in the measure.
async fn individual_report(
    ctx: &datafusion::prelude::SessionContext,
    run_dir: &Path,
    m: &Measure,
    member: &str,
    period: (&str, &str),
) -> Result<Option<Value>> {
    let detail = run_dir.join("detail").join(format!("{}.parquet", m.id));
    if !detail.is_file() {
        return Err(Error::Usage(format!(
            "no {}: the run wrote no member-level detail of {}",
            detail.display(),
            m.id
        )));
    }
    let table = format!("detail_{}", m.id.replace('-', "_").to_lowercase());
    ctx.register_parquet(
        &table,
        detail.to_str().unwrap_or_default(),
        Default::default(),
    )
    .await?;
    let col = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    // Per component, its numerator and denominator (a component with no column of its own in
    // the detail, as PCR's index stays, counts the units in the denominator).
    let columns: std::collections::BTreeSet<String> = ctx
        .table(table.as_str())
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut exprs = vec![
        "count(*)".to_string(),
        "count(exclusion)".to_string(),
        "sum(CASE WHEN in_denominator THEN 1 ELSE 0 END)".to_string(),
    ];
    for c in &m.components {
        let name = c.name.value.as_str();
        let (num, den) = if columns.contains(name) {
            let v = col(name);
            let den =
                format!("sum(CASE WHEN in_denominator AND {v} IS NOT NULL THEN 1 ELSE 0 END)");
            match c.unit {
                Unit::MedianDays => (
                    format!("sum(CASE WHEN in_denominator AND {v} IS NOT NULL THEN 1 ELSE 0 END)"),
                    "sum(CASE WHEN in_denominator THEN 1 ELSE 0 END)".to_string(),
                ),
                _ => (
                    format!("sum(CASE WHEN in_denominator THEN {v} ELSE 0 END)"),
                    den,
                ),
            }
        } else {
            let all = "sum(CASE WHEN in_denominator THEN 1 ELSE 0 END)".to_string();
            (all.clone(), all)
        };
        exprs.push(format!("CAST({num} AS DOUBLE)"));
        exprs.push(format!("CAST({den} AS DOUBLE)"));
    }
    // Aliased: two components may count alike (a median's denominator is the units counted).
    let exprs: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS v{i}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE member_id = '{}'",
        exprs.join(", "),
        member.replace('\'', "''")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let values: Vec<f64> = match batches.iter().find(|b| b.num_rows() > 0) {
        Some(b) => b
            .columns()
            .iter()
            .map(|a| {
                let a = cast(a, &DataType::Float64)?;
                let a = a.as_primitive::<Float64Type>();
                Ok(if a.is_null(0) { 0.0 } else { a.value(0) })
            })
            .collect::<Result<_>>()?,
        None => return Ok(None),
    };
    if values[0] == 0.0 {
        return Ok(None);
    }
    let count = |code: &str, n: f64| {
        json!({
            "code": { "coding": [{ "system": POPULATION_SYSTEM, "code": code }] },
            "count": n as i64,
        })
    };
    let by_name: BTreeMap<&str, (f64, f64)> = m
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.name.value.as_str(),
                (values[3 + 2 * i], values[4 + 2 * i]),
            )
        })
        .collect();
    let groups: Vec<Value> = m
        .components
        .iter()
        .filter(|c| !matches!(c.kind, ComponentKind::Enrollees { .. }))
        .map(|c| {
            let name = c.name.value.as_str();
            let (num, den) = match &c.kind {
                // One component's numerator over another's.
                ComponentKind::Ratio {
                    numerator,
                    denominator,
                } => (
                    by_name.get(numerator.value.as_str()).map_or(0.0, |v| v.0),
                    by_name.get(denominator.value.as_str()).map_or(0.0, |v| v.0),
                ),
                _ => by_name[name],
            };
            json!({
                "code": {
                    "coding": [{ "system": COMPONENT_SYSTEM, "code": name }],
                    "text": name,
                },
                "population": [
                    count("initial-population", values[0]),
                    count("denominator-exclusion", values[1]),
                    count("denominator", den),
                    count("numerator", num),
                ],
            })
        })
        .collect();
    Ok(Some(json!({
        "resourceType": "MeasureReport",
        "id": format!("{}-{}-individual", m.id, period.1),
        "status": "complete",
        "type": "individual",
        "measure": format!("urn:hhq:measure:{}|{}", m.id, m.version),
        "subject": { "reference": format!("Patient/{member}") },
        "period": { "start": period.0, "end": period.1 },
        "improvementNotation": {
            "coding": [{ "system": IMPROVEMENT_SYSTEM, "code": improvement(m.better) }]
        },
        "group": groups,
    })))
}

/// FHIR's improvement notation of a measure.
fn improvement(better: Better) -> &'static str {
    match better {
        Better::Higher => "increase",
        Better::Lower => "decrease",
    }
}

/// The `individual` MeasureReports of `member`, one per measure with a unit of theirs, in a
/// Bundle; an error when they have none in any.
pub async fn individual_bundle(
    run_dir: &Path,
    measures: &[&Measure],
    member: &str,
) -> Result<Value> {
    let path = run_dir.join("summary.csv");
    let rows = read_summary(&path)?;
    let ctx = datafusion::prelude::SessionContext::new();
    let mut entries = Vec::new();
    for m in measures {
        let Some(first) = rows.iter().find(|r| r.measure == m.id) else {
            continue;
        };
        let period = (first.period_start.as_str(), first.period_end.as_str());
        if let Some(r) = individual_report(&ctx, run_dir, m, member, period).await? {
            entries.push(json!({ "resource": r }));
        }
    }
    if entries.is_empty() {
        return Err(Error::Usage(format!(
            "member {member} has no unit in any measure of {} (pseudonymised runs name members by their pseudonym)",
            run_dir.display()
        )));
    }
    Ok(json!({ "resourceType": "Bundle", "type": "collection", "entry": entries }))
}

/// What `hhq fhir` reads and writes.
#[derive(Debug, Clone)]
pub struct FhirOptions {
    /// The output directory of `hhq run`.
    pub run: PathBuf,
    pub measures: PathBuf,
    pub queries: PathBuf,
    /// Only these measures (every one the run holds when empty).
    pub only: Vec<String>,
    /// The Bundle's file, written atomically.
    pub out: PathBuf,
    /// One member's `individual` reports rather than the `summary` ones.
    pub member: Option<String>,
}

/// Write the run's MeasureReports as one Bundle; returns how many reports it holds.
pub async fn export(opts: &FhirOptions) -> Result<usize> {
    let defs = crate::definitions::Definitions::load(&opts.measures, &opts.queries)?;
    let rows = read_summary(&opts.run.join("summary.csv")).ok();
    let measures: Vec<&Measure> = match opts.only.is_empty() {
        false => crate::pipeline::select(&defs, &opts.only, &opts.measures)?,
        // Every measure the run holds, in the definitions' order.
        true => defs
            .measures
            .iter()
            .filter(|m| {
                rows.as_ref()
                    .is_none_or(|rows| rows.iter().any(|r| r.measure == m.id))
            })
            .collect(),
    };
    let bundle = match &opts.member {
        Some(member) => individual_bundle(&opts.run, &measures, member).await?,
        None => bundle(&opts.run, &measures)?,
    };
    let reports = bundle["entry"].as_array().map_or(0, Vec::len);
    let mut text = serde_json::to_string_pretty(&bundle)
        .map_err(|e| Error::Failed(format!("FHIR Bundle: {e}")))?;
    text.push('\n');
    crate::output::write_atomic(&opts.out, text.as_bytes())?;
    Ok(reports)
}
