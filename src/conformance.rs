//! The conformance matrix: for each measure, the rules of the specification it follows (from
//! `measures/conformance/<file>.yaml`), the line of the measure's YAML that states each rule,
//! the deck cases that test it (a deck case names the rules it tests, `rules:`), and whether
//! hhq follows the rule as specified, reads it in a way of its own, follows the Health Home
//! specification where it differs from HEDIS, or does not implement it. `hhq conformance`
//! writes it as Markdown (docs/conformance.md); reports list the readings and the rules not
//! implemented as the measure's deviations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};
use crate::measure::{Located, Measure};

/// How hhq follows a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As the specification says.
    AsSpecified,
    /// The specification leaves room, or the data cannot say it exactly: hhq's reading, with
    /// its reason.
    Reading,
    /// The Health Home specification differs from HEDIS and wins; the note names the source.
    HealthHome,
    /// Not implemented; the note says why.
    NotImplemented,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::AsSpecified => "as specified",
            Status::Reading => "a reading",
            Status::HealthHome => "Health Home rule",
            Status::NotImplemented => "not implemented",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum At {
    One(String),
    Path(Vec<String>),
}

impl At {
    fn texts(&self) -> Vec<&str> {
        match self {
            At::One(s) => vec![s.as_str()],
            At::Path(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// The 1-based line `at` names in `text`, or why it names none.
fn locate(text: &str, at: &At) -> std::result::Result<usize, String> {
    let lines: Vec<&str> = text.lines().collect();
    let texts = at.texts();
    let Some((first, rest)) = texts.split_first() else {
        return Err("`at:` is an empty list".into());
    };
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(first))
        .collect();
    let mut line = match hits.as_slice() {
        [one] => *one,
        _ => {
            return Err(format!(
                "`{first}` occurs {} times; it must name one line",
                hits.len()
            ));
        }
    };
    for t in rest {
        line = (line + 1..lines.len())
            .find(|&i| lines[i].contains(t))
            .ok_or_else(|| format!("no `{t}` after `{first}`"))?;
    }
    Ok(line + 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    measure: Spanned<String>,
    specification: String,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    section: String,
    rule: String,
    /// Where the measure's YAML states the rule: text that occurs exactly once in it, or a list
    /// of texts, the first occurring once and each next one the first line holding it after
    /// the line found so far (`["- name: 7_day", "where:"]`).
    #[serde(default)]
    at: Option<Spanned<At>>,
    status: Status,
    #[serde(default)]
    note: Option<String>,
    /// The specification years the rule belongs to (default: every year the measure follows).
    #[serde(default)]
    years: Vec<u16>,
}

/// One rule of a measure's specification and how hhq follows it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// The specification's section (its name; the text is paraphrased, never copied).
    pub section: String,
    pub rule: String,
    pub status: Status,
    pub note: Option<String>,
    /// The specification years it belongs to; empty: every year.
    pub years: Vec<u16>,
    /// The line of the measure's YAML that states the rule.
    pub line: Option<usize>,
    /// The deck cases that test it: `deck file:line case`.
    pub cases: Vec<String>,
}

/// One measure's rules.
#[derive(Debug, Clone)]
pub struct MeasureRules {
    pub measure: String,
    pub specification: String,
    /// The measure's YAML file, relative to the measures directory's parent.
    pub measure_file: PathBuf,
    pub rules: Vec<Rule>,
}

/// Every measure's rules, in measure order, and the measures without any.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    pub measures: Vec<MeasureRules>,
    pub without_rules: Vec<String>,
}

fn definition_error(path: &Path, line: usize, column: usize, message: String) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line,
        column,
        message,
        hint: None,
    }
}

/// A deck case that names the rules it tests (`rules:`).
#[derive(Debug, Clone)]
pub struct CaseTag {
    pub deck: PathBuf,
    pub measure: String,
    /// A unit id, `absent X`, or `total component`.
    pub case: String,
    pub line: usize,
    pub rules: Vec<String>,
    /// The specification year the deck names (`spec:`), if any.
    pub spec: Option<u16>,
}

/// The deck cases each rule hhq implements needs: one on each side of its boundary, and one more.
pub const MIN_CASES: usize = 3;

/// The rule files of `measures_dir/conformance/`, checked against the measures: each names a
/// measure, each `at:` names one line of its YAML, a status other than as specified has a note.
pub fn load(measures_dir: &Path, measures: &[Measure]) -> Result<Matrix> {
    load_with(measures_dir, measures, true)
}

/// The rule files for what a run reports (each measure's deviations): read and checked as by
/// [`load`], except that an `at:` no longer naming one line is not an error. The trace from a
/// rule to its line is the matrix's (`hhq conformance`, `cargo test`); a measure edited locally
/// still runs, and still reports its deviations.
pub fn load_for_reporting(measures_dir: &Path, measures: &[Measure]) -> Result<Matrix> {
    load_with(measures_dir, measures, false)
}

fn load_with(measures_dir: &Path, measures: &[Measure], check_lines: bool) -> Result<Matrix> {
    let dir = measures_dir.join("conformance");
    let mut by_measure: BTreeMap<String, MeasureRules> = BTreeMap::new();
    let mut problems = Vec::new();
    let paths = if dir.is_dir() {
        crate::measure::paths_in(&dir)?
    } else {
        Vec::new()
    };
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let raw: RawFile = serde_saphyr::from_str(&text)
            .map_err(|e| crate::measure::plain_yaml_error(&path, &e))?;
        let measure_at = Located::from(raw.measure);
        let Some(measure_path) = measures
            .iter()
            .find(|m| m.id == measure_at.value)
            .map(|m| &m.path)
        else {
            problems.push(definition_error(
                &path,
                measure_at.line,
                measure_at.column,
                format!("no measure `{}`", measure_at.value),
            ));
            continue;
        };
        if by_measure.contains_key(&measure_at.value) {
            problems.push(definition_error(
                &path,
                measure_at.line,
                measure_at.column,
                format!("a second rule file for `{}`", measure_at.value),
            ));
            continue;
        }
        // Only the matrix needs the lines; a run reads just the statuses and notes.
        let measure_text = if check_lines {
            std::fs::read_to_string(measure_path).map_err(|e| Error::io(measure_path, e))?
        } else {
            String::new()
        };
        let mut rules = Vec::new();
        for r in raw.rules {
            let id = Located::from(r.id);
            if rules.iter().any(|x: &Rule| x.id == id.value) {
                problems.push(definition_error(
                    &path,
                    id.line,
                    id.column,
                    format!("rule `{}` twice", id.value),
                ));
            }
            if r.status != Status::AsSpecified
                && r.note.as_deref().is_none_or(|n| n.trim().is_empty())
            {
                problems.push(definition_error(
                    &path,
                    id.line,
                    id.column,
                    format!(
                        "rule `{}`: {} needs a `note:` saying why",
                        id.value,
                        r.status.label()
                    ),
                ));
            }
            let line = match r.at {
                Some(_) if !check_lines => None,
                Some(at) => {
                    let (line, column) = (
                        at.referenced.line() as usize,
                        at.referenced.column() as usize,
                    );
                    match locate(&measure_text, &at.value) {
                        Ok(l) => Some(l),
                        Err(why) => {
                            problems.push(definition_error(
                                &path,
                                line,
                                column,
                                format!("rule `{}`: {why} in {}", id.value, measure_path.display()),
                            ));
                            None
                        }
                    }
                }
                None if r.status != Status::NotImplemented => {
                    problems.push(definition_error(
                        &path,
                        id.line,
                        id.column,
                        format!(
                            "rule `{}` says no `at:`, the measure's line that states it",
                            id.value
                        ),
                    ));
                    None
                }
                None => None,
            };
            rules.push(Rule {
                id: id.value,
                section: r.section,
                rule: r.rule,
                status: r.status,
                note: r.note,
                years: r.years,
                line,
                cases: Vec::new(),
            });
        }
        by_measure.insert(
            measure_at.value.clone(),
            MeasureRules {
                measure: measure_at.value,
                specification: raw.specification,
                measure_file: relative(measures_dir, measure_path),
                rules,
            },
        );
    }
    if !problems.is_empty() {
        return Err(Error::many(problems));
    }
    let mut out = Matrix::default();
    for m in measures {
        match by_measure.remove(&m.id) {
            Some(rules) => out.measures.push(rules),
            None => out.without_rules.push(m.id.clone()),
        }
    }
    Ok(out)
}

fn relative(measures_dir: &Path, path: &Path) -> PathBuf {
    let base = measures_dir.parent().unwrap_or(Path::new(""));
    path.strip_prefix(base).unwrap_or(path).to_path_buf()
}

impl Matrix {
    /// Join the deck cases that name rules; an error names each case whose measure has no rule
    /// file or whose rule is unknown.
    pub fn attach(&mut self, tags: Vec<CaseTag>) -> Result<()> {
        let mut problems = Vec::new();
        for tag in tags {
            let name = tag
                .deck
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(m) = self.measures.iter_mut().find(|m| m.measure == tag.measure) else {
                problems.push(definition_error(
                    &tag.deck,
                    tag.line,
                    1,
                    format!(
                        "`rules:` of a case of {}, which has no rule file",
                        tag.measure
                    ),
                ));
                continue;
            };
            for id in tag.rules {
                match m.rules.iter_mut().find(|r| r.id == id) {
                    Some(rule) if tag.spec.is_some() && !rule.applies(tag.spec) => {
                        problems.push(definition_error(
                            &tag.deck,
                            tag.line,
                            1,
                            format!(
                                "rule `{id}` belongs to MY{} only, and this deck follows MY{}",
                                rule.years
                                    .iter()
                                    .map(u16::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", MY"),
                                tag.spec.unwrap_or_default()
                            ),
                        ))
                    }
                    Some(rule) => rule.cases.push(format!("{name}:{} {}", tag.line, tag.case)),
                    None => problems.push(definition_error(
                        &tag.deck,
                        tag.line,
                        1,
                        format!("no rule `{id}` in {}'s rule file", tag.measure),
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::many(problems))
        }
    }

    /// What keeps the matrix from being complete: a rule hhq implements with fewer than
    /// [`MIN_CASES`] deck cases.
    pub fn gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.measures {
            for r in &m.rules {
                if r.status != Status::NotImplemented && r.cases.len() < MIN_CASES {
                    out.push(match r.cases.len() {
                        0 => format!("{} rule `{}` has no deck case", m.measure, r.id),
                        n => format!(
                            "{} rule `{}` has {n} deck case{} of the {MIN_CASES} each rule needs",
                            m.measure,
                            r.id,
                            if n == 1 { "" } else { "s" }
                        ),
                    });
                }
            }
        }
        out
    }

    /// A measure's deviations from its specification, one sentence per reading, Health Home
    /// rule and rule not implemented; empty when it has none (or no rule file). With a `year`,
    /// only the rules of that specification year.
    pub fn deviations(&self, measure: &str, year: Option<u16>) -> Vec<String> {
        let Some(m) = self.measures.iter().find(|m| m.measure == measure) else {
            return Vec::new();
        };
        m.rules
            .iter()
            .filter(|r| r.status != Status::AsSpecified)
            .filter(|r| r.applies(year))
            .map(|r| {
                format!(
                    "{} ({}, {}): {}",
                    capitalised(r.status.label()),
                    r.section,
                    r.rule,
                    r.note.as_deref().unwrap_or_default().trim()
                )
            })
            .collect()
    }

    /// The matrix as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "# Conformance matrix\n\n\
Generated by `hhq conformance` from `measures/conformance/*.yaml` (each measure's rules, the \
section of the specification each comes from, paraphrased), the line of the measure's YAML that \
states each rule, and the deck cases that name it (`rules:` in `measures/decks/`). Do not edit: \
`cargo test` fails when this file and the definitions disagree, or when a rule hhq implements has \
fewer than three deck cases (one on each side of its boundary, and one more).\n\n\
Statuses: *as specified*; *a reading* (the specification leaves room or the data cannot say it \
exactly; the reason is given); *Health Home rule* (the Health Home specification differs from \
HEDIS and wins); *not implemented* (the reason is given). Readings, Health Home rules and rules \
not implemented are the deviations the reports and `cms_measures.csv` state.\n",
        );
        for m in &self.measures {
            let count = |st: Status| m.rules.iter().filter(|r| r.status == st).count();
            s.push_str(&format!(
                "\n## {}\n\n{}\n\n{} rules: {} as specified, {} readings, {} Health Home rules, {} not implemented.\n\n\
| rule | section | the rule (paraphrased) | YAML | deck cases | status |\n|---|---|---|---|---|---|\n",
                m.measure,
                one_line(&m.specification),
                m.rules.len(),
                count(Status::AsSpecified),
                count(Status::Reading),
                count(Status::HealthHome),
                count(Status::NotImplemented),
            ));
            for r in &m.rules {
                let yaml = r.line.map_or("-".to_string(), |l| {
                    format!("`{}:{l}`", m.measure_file.display())
                });
                let cases = if r.cases.is_empty() {
                    "-".to_string()
                } else {
                    r.cases
                        .iter()
                        .map(|c| {
                            // `deck:line case`: the case, an absent unit marked.
                            let case = c.split_once(' ').map_or(c.as_str(), |(_, c)| c);
                            match case.strip_prefix("absent ") {
                                Some(u) => format!("{u} (absent)"),
                                None => case.to_string(),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let rule = match r.years.as_slice() {
                    [] => cell(&r.rule),
                    years => format!(
                        "{} (MY{} only)",
                        cell(&r.rule),
                        years
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(", MY")
                    ),
                };
                s.push_str(&format!(
                    "| `{}` | {} | {} | {} | {} | {} |\n",
                    r.id,
                    cell(&r.section),
                    rule,
                    yaml,
                    cases,
                    r.status.label()
                ));
            }
            let notes: Vec<&Rule> = m
                .rules
                .iter()
                .filter(|r| r.status != Status::AsSpecified)
                .collect();
            if !notes.is_empty() {
                s.push('\n');
                for r in notes {
                    s.push_str(&format!(
                        "- `{}` ({}): {}\n",
                        r.id,
                        r.status.label(),
                        one_line(r.note.as_deref().unwrap_or_default())
                    ));
                }
            }
        }
        if !self.without_rules.is_empty() {
            s.push_str(&format!(
                "\n## Measures without a rule file\n\n{}\n",
                self.without_rules.join(", ")
            ));
        }
        s
    }
}

impl Rule {
    /// Whether the rule belongs to specification `year` (every rule does when no year is
    /// given, or when it names none).
    pub fn applies(&self, year: Option<u16>) -> bool {
        match year {
            Some(y) => self.years.is_empty() || self.years.contains(&y),
            None => true,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
