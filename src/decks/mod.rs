//! Test decks: small hand-built members (extracts as CSV text in YAML) with the outcome expected
//! for each unit of one measure — in the denominator or not, which exclusion, why ineligible,
//! numerator values — and optional summary totals, all written from the specification. `hhq test`
//! and `cargo test` run every deck in `measures/decks/`. A cohort deck (`cohort:` instead of
//! `measure:`) is run by [`cohort`].

pub mod cohort;
pub mod payments;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::compile;
use crate::conformance::CaseTag;
use crate::definitions::Definitions;
use crate::engine::{Engine, Inputs};
use crate::error::{Error, Result};
use crate::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, Extract, MEMBERS};
use crate::extract::csv::{csv_to_batch, write_parquet};
use crate::measure::{Located, Spec};
use crate::period::Period;
use crate::results::{self, Grouping};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeck {
    measure: Spanned<String>,
    period: Spanned<String>,
    /// The specification year the measure follows in this deck (default: the run's, newest).
    #[serde(default)]
    spec: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)] // for readers of the deck
    description: Option<String>,
    members: String,
    enrollment: String,
    #[serde(default)]
    claims: Option<String>,
    #[serde(default)]
    contacts: Option<String>,
    /// A risk-weight table (CSV text) for measures with `needs: risk_weights`.
    #[serde(default)]
    risk_weights: Option<String>,
    #[serde(default)]
    expect: Vec<RawExpect>,
    #[serde(default)]
    totals: Vec<RawTotal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    unit: Option<Spanned<String>>,
    absent: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)] // the case's reasoning, for readers
    why: Option<String>,
    denominator: Option<bool>,
    exclusion: Option<String>,
    ineligible: Option<String>,
    /// Expected numerator values; `null` when the unit is outside the component's subset.
    #[serde(default)]
    numerators: BTreeMap<String, Option<f64>>,
    age_band: Option<String>,
    hhp: Option<String>,
    mco: Option<String>,
    /// The rules of the measure's rule file (`measures/conformance/`) this case tests.
    #[serde(default)]
    rules: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTotal {
    component: Spanned<String>,
    #[serde(default = "total_grouping")]
    stratifier: Grouping,
    #[serde(default = "total")]
    stratum: String,
    numerator: f64,
    denominator: f64,
    #[serde(default)]
    rules: Vec<String>,
}

/// Equal up to the rounding of a sum of probabilities (decks write expected values to 6 places).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 5e-7 * a.abs().max(b.abs()).max(1.0)
}

fn total() -> String {
    "total".into()
}

fn total_grouping() -> Grouping {
    Grouping::Total
}

/// The outcome of one expectation of a deck.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub deck: PathBuf,
    pub measure: String,
    /// What was checked: a unit id, `absent X`, or `total component stratifier=stratum`.
    pub case: String,
    pub line: usize,
    /// `None` when it passed; else what differed.
    pub failure: Option<String>,
}

/// The deck files of a measures directory (`decks/*.yaml`), in name order.
pub fn deck_paths(measures_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = measures_dir.join("decks");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    crate::measure::paths_in(&dir)
}

/// The cases of every measure deck of `measures_dir/decks/` that name the rules they test
/// (`rules:`), without running them.
pub fn rule_tags(measures_dir: &Path) -> Result<Vec<CaseTag>> {
    let mut out = Vec::new();
    for path in deck_paths(measures_dir)? {
        out.extend(deck_rule_tags(&path)?);
    }
    Ok(out)
}

fn deck_rule_tags(path: &Path) -> Result<Vec<CaseTag>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if cohort::is_cohort_deck(&text) || payments::is_payments_deck(&text) {
        return Ok(Vec::new());
    }
    let raw = parse(path, &text)?;
    let measure = raw.measure.value;
    let spec = match spec_of(path, raw.spec)? {
        Some(Spec::Year(y)) => Some(y),
        _ => None,
    };
    let mut cases = Vec::new();
    for e in raw.expect {
        let (case, line) = match (e.unit, e.absent) {
            (Some(u), _) => {
                let u = Located::from(u);
                (u.value, u.line)
            }
            (None, Some(a)) => {
                let a = Located::from(a);
                (format!("absent {}", a.value), a.line)
            }
            (None, None) => continue,
        };
        if !e.rules.is_empty() {
            cases.push(CaseTag {
                deck: path.to_path_buf(),
                measure: measure.clone(),
                case,
                line,
                rules: e.rules,
                spec,
            });
        }
    }
    for t in raw.totals {
        if !t.rules.is_empty() {
            let c = Located::from(t.component);
            cases.push(CaseTag {
                deck: path.to_path_buf(),
                measure: measure.clone(),
                case: format!("total {}", c.value),
                line: c.line,
                rules: t.rules,
                spec,
            });
        }
    }
    Ok(cases)
}

fn parse(path: &Path, text: &str) -> Result<RawDeck> {
    serde_saphyr::from_str(text).map_err(|e| crate::measure::plain_yaml_error(path, &e))
}

/// Run every deck of `measures_dir/decks/`.
pub async fn run_dir(measures_dir: &Path, queries_dir: &Path) -> Result<Vec<CaseResult>> {
    run_dir_spec(measures_dir, queries_dir, Spec::Newest).await
}

/// As [`run_dir`]; a deck that names no `spec:` year follows `spec`.
pub async fn run_dir_spec(
    measures_dir: &Path,
    queries_dir: &Path,
    spec: Spec,
) -> Result<Vec<CaseResult>> {
    run_dir_only(measures_dir, queries_dir, spec, &[]).await
}

/// As [`run_dir_spec`], only the decks of the measures or cohorts `only` names (all when empty).
pub async fn run_dir_only(
    measures_dir: &Path,
    queries_dir: &Path,
    spec: Spec,
    only: &[String],
) -> Result<Vec<CaseResult>> {
    // The definitions of each year a deck asks for, loaded once.
    let mut defs: Vec<(Spec, Definitions)> = Vec::new();
    let mut out = Vec::new();
    for path in deck_paths(measures_dir)? {
        let head = deck_head(&path)?;
        if !only.is_empty()
            && !head
                .subjects
                .iter()
                .any(|s| only.iter().any(|o| o.eq_ignore_ascii_case(s)))
        {
            continue;
        }
        let want = head.spec.unwrap_or(spec);
        if !defs.iter().any(|(s, _)| *s == want) {
            defs.push((
                want,
                Definitions::load_spec(measures_dir, queries_dir, want)?,
            ));
        }
        let (_, d) = defs.iter().find(|(s, _)| *s == want).expect("loaded above");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        if payments::is_payments_deck(&text) {
            out.extend(payments::run_deck(&path, &text, d, measures_dir).await?);
            continue;
        }
        out.extend(run_deck(&path, d).await?);
    }
    Ok(out)
}

/// What a deck tests (its `measure:` or `cohorts:`) and the `spec:` year it names, if any
/// (cohort decks name none).
struct DeckHead {
    subjects: Vec<String>,
    spec: Option<Spec>,
}

fn deck_head(path: &Path) -> Result<DeckHead> {
    #[derive(Deserialize)]
    struct Head {
        spec: Option<Spanned<String>>,
        measure: Option<String>,
        #[serde(default)]
        cohorts: Vec<String>,
        payments: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let head: Head =
        serde_saphyr::from_str(&text).map_err(|e| crate::measure::plain_yaml_error(path, &e))?;
    Ok(DeckHead {
        subjects: head
            .measure
            .into_iter()
            .chain(head.cohorts)
            .chain(head.payments.map(|_| crate::finance::MEASURE.to_string()))
            .collect(),
        spec: spec_of(path, head.spec)?,
    })
}

/// A deck's `spec:` as a year, an error at its place when it is not one.
fn spec_of(path: &Path, spec: Option<Spanned<String>>) -> Result<Option<Spec>> {
    spec.map(|s| {
        let at = Located::from(s);
        Spec::parse(&at.value).map_err(|m| deck_error(path, &at, m))
    })
    .transpose()
}

pub(super) fn deck_error(path: &Path, at: &Located<String>, message: String) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line: at.line,
        column: at.column,
        message,
        hint: None,
    }
}

/// A deck's extracts (CSV text) written as Parquet into a new temporary directory, so the deck
/// goes through the same contract checks as real data; a missing one is empty.
pub(crate) fn write_extracts(
    path: &Path,
    claims: Option<&str>,
    contacts: Option<&str>,
    members: &str,
    enrollment: &str,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let extracts: [(&Extract, Option<&str>); 4] = [
        (&CLAIMS, claims),
        (&CONTACTS, contacts),
        (&MEMBERS, Some(members)),
        (&ENROLLMENT, Some(enrollment)),
    ];
    for (extract, csv) in extracts {
        let batch = csv_to_batch(path, extract, csv.unwrap_or("member_id\n"))?;
        write_parquet(
            &dir.path().join(format!("{}.parquet", extract.name)),
            &batch,
        )?;
    }
    Ok(dir)
}

/// Run one deck against the loaded definitions.
pub async fn run_deck(path: &Path, defs: &Definitions) -> Result<Vec<CaseResult>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if cohort::is_cohort_deck(&text) {
        return cohort::run_deck(path, &text, defs).await;
    }
    if payments::is_payments_deck(&text) {
        // A deck sits in `<measures>/decks/`; its rate table in `<measures>/finance/`.
        let measures = path
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."));
        return payments::run_deck(path, &text, defs, measures).await;
    }
    let raw = parse(path, &text)?;
    let measure_at = Located::from(raw.measure);
    let measure = defs
        .measures
        .iter()
        .find(|m| m.id == measure_at.value)
        .ok_or_else(|| {
            deck_error(
                path,
                &measure_at,
                format!("no measure `{}`", measure_at.value),
            )
        })?;
    let period_at = Located::from(raw.period);
    let period: Period = period_at
        .value
        .parse()
        .map_err(|e: Error| deck_error(path, &period_at, e.to_string()))?;

    let dir = write_extracts(
        path,
        raw.claims.as_deref(),
        raw.contacts.as_deref(),
        &raw.members,
        &raw.enrollment,
    )?;
    let mut inputs = Inputs::default();
    if let Some(csv) = &raw.risk_weights {
        let file = dir.path().join("risk_weights.csv");
        std::fs::write(&file, csv).map_err(|e| Error::io(&file, e))?;
        inputs.risk_weights = Some(file);
    }
    let engine = Engine::open_with(dir.path(), defs, &inputs).await?;
    let compiled = compile::compile(measure, engine.catalog(), &period)?;
    let run = engine.run(&compiled).await?;
    let (columns, rows) = results::text_rows(&run.detail)?;
    let col = |row: &[Option<String>], name: &str| -> Option<String> {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| row[i].clone())
    };

    let mut out = Vec::new();
    let mut push = |case: String, line: usize, failure: Option<String>| {
        out.push(CaseResult {
            deck: path.to_path_buf(),
            measure: measure.id.clone(),
            case,
            line,
            failure,
        })
    };
    for e in raw.expect {
        match (e.unit, e.absent) {
            (Some(unit), None) => {
                let unit = Located::from(unit);
                let Some(row) = rows
                    .iter()
                    .find(|r| col(r, "unit_id").as_deref() == Some(unit.value.as_str()))
                else {
                    push(
                        unit.value.clone(),
                        unit.line,
                        Some("no such unit in the detail".into()),
                    );
                    continue;
                };
                let mut diffs = Vec::new();
                let mut same = |what: &str, want: Option<String>, got: Option<String>| {
                    if let Some(want) = want
                        && got.as_deref() != Some(want.as_str())
                    {
                        diffs.push(format!(
                            "{what}: expected {want}, got {}",
                            got.unwrap_or_else(|| "nothing".into())
                        ));
                    }
                };
                same(
                    "denominator",
                    e.denominator.map(|d| d.to_string()),
                    col(row, "in_denominator"),
                );
                same("exclusion", e.exclusion, col(row, "exclusion"));
                same("age_band", e.age_band, col(row, "age_band"));
                same("hhp", e.hhp, col(row, "hhp"));
                same("mco", e.mco, col(row, "mco"));
                if let Some(want) = e.ineligible {
                    let got = col(row, "ineligible").unwrap_or_default();
                    if !got.contains(&want) {
                        diffs.push(format!("ineligible: expected {want:?}, got {got:?}"));
                    }
                }
                for (name, want) in e.numerators {
                    if !columns.contains(&name) {
                        diffs.push(format!("no numerator `{name}` in {}", measure.id));
                        continue;
                    }
                    let got = col(row, &name).and_then(|v| v.parse::<f64>().ok());
                    let same = match (got, want) {
                        (Some(g), Some(w)) => close(g, w),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        diffs.push(format!(
                            "{name}: expected {}, got {}",
                            want.map_or("nothing".into(), |w| w.to_string()),
                            got.map_or("nothing".into(), |g| g.to_string())
                        ));
                    }
                }
                push(
                    unit.value.clone(),
                    unit.line,
                    (!diffs.is_empty()).then(|| diffs.join("; ")),
                );
            }
            (None, Some(absent)) => {
                let absent = Located::from(absent);
                let found = rows
                    .iter()
                    .any(|r| col(r, "unit_id").as_deref() == Some(absent.value.as_str()));
                push(
                    format!("absent {}", absent.value),
                    absent.line,
                    found.then(|| "the unit is in the detail".to_string()),
                );
            }
            _ => {
                return Err(Error::Definition {
                    path: path.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: "each expectation names exactly one of `unit:` or `absent:`".into(),
                    hint: None,
                });
            }
        }
    }
    for t in raw.totals {
        let component = Located::from(t.component);
        let got = run.rows.iter().find(|r| {
            r.component == component.value && r.stratifier == t.stratifier && r.stratum == t.stratum
        });
        let failure = match got {
            None => Some("no such result row".to_string()),
            Some(r) if !close(r.numerator, t.numerator) || !close(r.denominator, t.denominator) => {
                Some(format!(
                    "expected {}/{}, got {}/{}",
                    t.numerator, t.denominator, r.numerator, r.denominator
                ))
            }
            Some(_) => None,
        };
        push(
            format!("total {} {}={}", component.value, t.stratifier, t.stratum),
            component.line,
            failure,
        );
    }
    Ok(out)
}
