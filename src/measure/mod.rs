//! The measure model: a measure YAML file parsed into a [`Measure`], with every value that refers
//! to something else (a building block, a column, an expression) kept with its line and column so
//! later stages can point back into the file. Names of building blocks and columns are resolved by
//! the compiler, which knows the catalog; this stage checks only what the file alone can tell.

pub mod valueset;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};

/// A text value and where it stands in its file (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

impl<T> From<Spanned<T>> for Located<T> {
    fn from(s: Spanned<T>) -> Self {
        Located {
            line: s.referenced.line() as usize,
            column: s.referenced.column() as usize,
            value: s.value,
        }
    }
}

/// What the denominator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Enrollee months of Health Home enrolment within the period.
    MemberMonths,
}

/// Which months of an enrolment span count as enrollee months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthRule {
    /// Enrolled on a fixed day of the month (`count_day`), the CMS/HEDIS convention.
    CountDay,
    /// Enrolled on at least one day of the month.
    AnyDay,
}

/// The unit a component's rate is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Percent,
    #[serde(rename = "per_1000_member_months")]
    Per1000MemberMonths,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Per1000MemberMonths => "per_1000_member_months",
        }
    }

    /// Multiplier from numerator/denominator to the unit.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Percent => 100.0,
            Unit::Per1000MemberMonths => 1000.0,
        }
    }
}

/// Stratifiers a measure may report by; `total` is always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stratifier {
    AgeBand,
    Mco,
    Hhp,
    Population,
}

impl Stratifier {
    pub fn name(self) -> &'static str {
        match self {
            Stratifier::AgeBand => "age_band",
            Stratifier::Mco => "mco",
            Stratifier::Hhp => "hhp",
            Stratifier::Population => "population",
        }
    }
}

/// Whether a higher rate is the better result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// An age band: inclusive bounds in whole years; `max` is `None` for an open band such as `65+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeBand {
    pub label: String,
    pub min: u32,
    pub max: Option<u32>,
}

/// How the numerator draws on a building block for each unit of the denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The number of qualifying rows in the unit (e.g. ED visits in a member-month).
    Count,
    /// 1 when at least one qualifying row falls in the unit, else 0.
    Exists,
}

/// One numerator: rows of a building block, by date, optionally filtered.
#[derive(Debug, Clone, PartialEq)]
pub struct Numerator {
    pub aggregate: Aggregate,
    pub block: Located<String>,
    pub date: Located<String>,
    pub filter: Option<Located<String>>,
}

/// One reported rate of a measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: Located<String>,
    pub unit: Unit,
    pub numerator: Numerator,
}

/// Member-month settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberMonths {
    pub rule: MonthRule,
    /// Day of month for [`MonthRule::CountDay`] (1 to 28).
    pub count_day: u32,
}

/// A checked measure definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub version: String,
    pub source: String,
    pub better: Better,
    pub basis: Basis,
    pub member_months: MemberMonths,
    pub age_bands: Vec<AgeBand>,
    pub stratify: Vec<Stratifier>,
    pub components: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    id: Spanned<String>,
    title: String,
    version: String,
    source: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the file
    description: Option<String>,
    better: Better,
    basis: Basis,
    member_months: Option<RawMemberMonths>,
    age_bands: Vec<Spanned<String>>,
    #[serde(default)]
    stratify: Vec<Stratifier>,
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemberMonths {
    rule: MonthRule,
    count_day: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    name: Spanned<String>,
    unit: Unit,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    numerator: RawNumerator,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumerator {
    count: Option<Spanned<String>>,
    exists: Option<Spanned<String>>,
    date: Spanned<String>,
    #[serde(rename = "where")]
    filter: Option<Spanned<String>>,
}

impl Measure {
    /// Read and check one measure file.
    pub fn load(path: &Path) -> Result<Measure> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Measure::parse(path, &text)
    }

    /// Parse and check measure YAML; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Measure> {
        let raw: RawMeasure = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
        let err =
            |line: usize, column: usize, message: String, hint: Option<&str>| Error::Definition {
                path: path.to_path_buf(),
                line,
                column,
                message,
                hint: hint.map(str::to_string),
            };

        let id = Located::from(raw.id);
        if id.value.is_empty()
            || !id
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                id.line,
                id.column,
                format!(
                    "measure id {:?} must be letters, digits, `-` or `_`",
                    id.value
                ),
                Some("for example `AMB-HH`"),
            ));
        }

        let member_months = match raw.member_months {
            None => MemberMonths {
                rule: MonthRule::CountDay,
                count_day: 15,
            },
            Some(mm) => {
                let count_day = match (mm.rule, mm.count_day) {
                    (MonthRule::CountDay, None) => 15,
                    (MonthRule::CountDay, Some(d)) => {
                        let d = Located::from(d);
                        if !(1..=28).contains(&d.value) {
                            return Err(err(
                                d.line,
                                d.column,
                                format!("count_day {} is not a day every month has", d.value),
                                Some("use a day from 1 to 28"),
                            ));
                        }
                        d.value
                    }
                    (MonthRule::AnyDay, Some(d)) => {
                        let d = Located::from(d);
                        return Err(err(
                            d.line,
                            d.column,
                            "count_day applies only to `rule: count_day`".into(),
                            Some("remove count_day, or set `rule: count_day`"),
                        ));
                    }
                    (MonthRule::AnyDay, None) => 1,
                };
                MemberMonths {
                    rule: mm.rule,
                    count_day,
                }
            }
        };

        let mut age_bands: Vec<AgeBand> = Vec::new();
        for band in raw.age_bands {
            let band = Located::from(band);
            let parsed = parse_band(&band.value).ok_or_else(|| {
                err(
                    band.line,
                    band.column,
                    format!("age band {:?} is not `MIN-MAX` or `MIN+`", band.value),
                    Some("for example `0-17`, `18-64`, `65+`"),
                )
            })?;
            if let Some(prev) = age_bands.last() {
                let follows = prev.max.map(|m| m + 1);
                if follows != Some(parsed.min) {
                    return Err(err(
                        band.line,
                        band.column,
                        format!(
                            "age band {:?} does not start right after {:?}",
                            band.value, prev.label
                        ),
                        Some("list bands in order, without gaps or overlaps"),
                    ));
                }
            }
            age_bands.push(parsed);
        }
        if age_bands.is_empty() {
            return Err(err(
                1,
                1,
                "a measure needs at least one age band".into(),
                None,
            ));
        }

        let mut stratify = raw.stratify;
        stratify.sort();
        stratify.dedup();

        let mut components: Vec<Component> = Vec::new();
        for c in raw.components {
            let name = Located::from(c.name);
            if components.iter().any(|o| o.name.value == name.value) {
                return Err(err(
                    name.line,
                    name.column,
                    format!("component `{}` is defined twice", name.value),
                    None,
                ));
            }
            let (aggregate, block) = match (c.numerator.count, c.numerator.exists) {
                (Some(b), None) => (Aggregate::Count, Located::from(b)),
                (None, Some(b)) => (Aggregate::Exists, Located::from(b)),
                _ => {
                    return Err(err(
                        name.line,
                        name.column,
                        format!(
                            "the numerator of `{}` needs exactly one of `count:` or `exists:`",
                            name.value
                        ),
                        Some(
                            "`count: ed_visits` counts rows; `exists: hh_services` counts units with at least one",
                        ),
                    ));
                }
            };
            components.push(Component {
                name,
                unit: c.unit,
                numerator: Numerator {
                    aggregate,
                    block,
                    date: c.numerator.date.into(),
                    filter: c.numerator.filter.map(Located::from),
                },
            });
        }
        if components.is_empty() {
            return Err(err(
                id.line,
                id.column,
                "a measure needs at least one component".into(),
                None,
            ));
        }

        Ok(Measure {
            path: path.to_path_buf(),
            id: id.value,
            title: raw.title,
            version: raw.version,
            source: raw.source,
            better: raw.better,
            basis: raw.basis,
            member_months,
            age_bands,
            stratify,
            components,
        })
    }
}

fn parse_band(s: &str) -> Option<AgeBand> {
    let s = s.trim();
    if let Some(min) = s.strip_suffix('+') {
        let min = min.trim().parse().ok()?;
        return Some(AgeBand {
            label: s.to_string(),
            min,
            max: None,
        });
    }
    let (a, b) = s.split_once('-')?;
    let (min, max): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (min <= max).then(|| AgeBand {
        label: s.to_string(),
        min,
        max: Some(max),
    })
}

/// Turn a YAML or shape error into a located definition error.
fn yaml_error(path: &Path, e: &serde_saphyr::Error) -> Error {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let full = e.to_string();
    // The library's message may carry its own location suffix and snippet; keep the first line.
    let first = full.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_string();
    let hint = did_you_mean(&message).or_else(|| {
        message
            .contains("unknown field")
            .then(|| "see docs/measure-language.md for the keys of a measure".to_string())
    });
    Error::Definition {
        path: path.to_path_buf(),
        line,
        column,
        message,
        hint,
    }
}

/// For serde's "unknown field `x`, expected one of a, b" (or variant), the closest name.
fn did_you_mean(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (wrong, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected one of ")?;
    let names: Vec<&str> = expected
        .split(", ")
        .map(|n| n.trim_matches(|c| c == '`' || c == ' '))
        .collect();
    names
        .iter()
        .map(|n| (strsim::levenshtein(wrong, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| format!("did you mean `{n}`?"))
}

/// Load every `*.yaml` measure in a directory, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Measure>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    let measures = paths
        .iter()
        .map(|p| Measure::load(p))
        .collect::<Result<Vec<_>>>()?;
    for (i, m) in measures.iter().enumerate() {
        if let Some(other) = measures[..i].iter().find(|o| o.id == m.id) {
            return Err(Error::Definition {
                path: m.path.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "measure id `{}` is also defined in {}",
                    m.id,
                    other.path.display()
                ),
                hint: None,
            });
        }
    }
    Ok(measures)
}
