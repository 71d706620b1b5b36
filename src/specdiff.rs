//! `hhq diff-spec`: what changes between two specification years of one measure — the texts of
//! its YAML that differ, the rules of its rule file that belong to one year only, and, over a
//! data directory, the units that enter or leave the denominator or change a numerator, counted
//! by why, and each rate under both years.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compile;
use crate::definitions::Definitions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::measure::{Condition, Located, Measure, Spec};
use crate::period::Period;
use crate::results::{self, ResultRow};

/// One text of the measure that reads differently in the two years.
#[derive(Debug, Clone, PartialEq)]
pub struct TextChange {
    /// Where in the measure: `events.where`, `exclusion nonacute_admission`, `7_day arm 2`.
    pub what: String,
    /// `(line, text)` in each year; the text is empty where that year has none.
    pub a: (usize, String),
    pub b: (usize, String),
}

/// A rule of the measure's rule file that belongs to one of the years only.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    pub id: String,
    pub section: String,
    pub rule: String,
    /// The year it belongs to.
    pub year: u16,
}

/// Units whose outcome differs, counted by how it differs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitChanges {
    /// Units in the denominator under both years.
    pub both: usize,
    /// `(why, count)`: e.g. `enter the denominator (not an event under MY2024)`.
    pub changes: Vec<(String, usize)>,
    /// Each component's total under both years.
    pub rates: Vec<RateChange>,
}

/// One component's total rate under each year, with its numerator/denominator.
#[derive(Debug, Clone, PartialEq)]
pub struct RateChange {
    pub component: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `numerator/denominator` under each year (`-` when not reported).
    pub counts: (String, String),
}

/// What differs between two years of one measure.
#[derive(Debug, Clone)]
pub struct SpecDiff {
    pub measure: String,
    pub path: PathBuf,
    pub a: u16,
    pub b: u16,
    pub versions: (String, String),
    pub texts: Vec<TextChange>,
    pub rules: Vec<RuleChange>,
    pub units: Option<UnitChanges>,
}

/// Each filter text of a measure, labelled by where it is.
fn labelled_texts(m: &Measure) -> Vec<(String, Located<String>)> {
    let mut out = Vec::new();
    if let Some(f) = m.events.as_ref().and_then(|e| e.filter.clone()) {
        out.push(("events.where".to_string(), f));
    }
    fn arms(label: &str, c: &Condition, out: &mut Vec<(String, Located<String>)>) {
        for (i, arm) in c.arms().enumerate() {
            if let Some(f) = &arm.filter {
                let at = if c.alternatives.is_empty() {
                    format!("{label}.where")
                } else {
                    format!("{label} arm {} ({}).where", i + 1, arm.block.value)
                };
                out.push((at, f.clone()));
            }
        }
    }
    for x in &m.exclusions {
        arms(
            &format!("exclusion {}", x.name.value),
            &x.condition,
            &mut out,
        );
    }
    for (_, c, cond) in m.numerators() {
        arms(&format!("numerator {}", c.name.value), cond, &mut out);
    }
    out
}

/// Compare year `a` with year `b` of the measure `id` in `measures_dir`.
pub fn texts_and_rules(measures_dir: &Path, id: &str, a: u16, b: u16) -> Result<SpecDiff> {
    let load = |y: u16| -> Result<(Measure, Vec<Measure>)> {
        let all = crate::measure::load_dir_spec(measures_dir, Spec::Year(y))?;
        let known: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
        let one = all.iter().find(|m| m.id == id).cloned();
        one.map(|m| (m, all)).ok_or_else(|| {
            Error::Usage(format!(
                "no measure `{id}` in {}: it has {}",
                measures_dir.display(),
                known.join(", ")
            ))
        })
    };
    let ((ma, _), (mb, all_b)) = (load(a)?, load(b)?);
    let (ta, tb) = (labelled_texts(&ma), labelled_texts(&mb));
    let mut texts = Vec::new();
    let labels: Vec<&String> = ta.iter().chain(tb.iter()).map(|(l, _)| l).collect();
    let mut seen = std::collections::BTreeSet::new();
    for label in labels {
        if !seen.insert(label.clone()) {
            continue;
        }
        let find = |t: &[(String, Located<String>)]| {
            t.iter()
                .find(|(l, _)| l == label)
                .map_or((0, String::new()), |(_, f)| (f.line, f.value.clone()))
        };
        let (x, y) = (find(&ta), find(&tb));
        if x.1.split_whitespace().ne(y.1.split_whitespace()) {
            texts.push(TextChange {
                what: label.clone(),
                a: x,
                b: y,
            });
        }
    }
    let rules = crate::conformance::load_for_reporting(measures_dir, &all_b)?
        .measures
        .into_iter()
        .filter(|m| m.measure == mb.id)
        .flat_map(|m| m.rules)
        .filter(|r| r.applies(Some(a)) != r.applies(Some(b)))
        .map(|r| RuleChange {
            year: if r.applies(Some(a)) { a } else { b },
            id: r.id,
            section: r.section,
            rule: r.rule,
        })
        .collect();
    Ok(SpecDiff {
        measure: ma.id.clone(),
        path: ma.path.clone(),
        a,
        b,
        versions: (ma.version.clone(), mb.version.clone()),
        texts,
        rules,
        units: None,
    })
}

/// One run of the measure under one year: the detail by unit id, and the result rows.
type Outcome = (BTreeMap<String, BTreeMap<String, String>>, Vec<ResultRow>);

async fn outcome(
    data: &Path,
    measures_dir: &Path,
    queries_dir: &Path,
    id: &str,
    year: u16,
    period: &Period,
) -> Result<Outcome> {
    let defs = Definitions::load_spec(measures_dir, queries_dir, Spec::Year(year))?;
    let m = defs.measure(id, measures_dir)?;
    let engine = Engine::open(data, &defs).await?;
    let compiled = compile::compile(m, engine.catalog(), period)?;
    let run = engine.run(&compiled).await?;
    let (columns, rows) = results::text_rows(&run.detail)?;
    let unit = columns.iter().position(|c| c == "unit_id");
    let mut by_unit = BTreeMap::new();
    for row in rows {
        let Some(u) = unit.and_then(|i| row[i].clone()) else {
            continue;
        };
        let fields = columns
            .iter()
            .zip(row)
            .filter_map(|(c, v)| v.map(|v| (c.clone(), v)))
            .collect();
        by_unit.insert(u, fields);
    }
    Ok((by_unit, run.rows))
}

/// Run the measure under both years over `data` and count what changes, and why.
pub async fn units(
    diff: &mut SpecDiff,
    data: &Path,
    measures_dir: &Path,
    queries_dir: &Path,
    period: &Period,
) -> Result<()> {
    let (ua, ra) = outcome(
        data,
        measures_dir,
        queries_dir,
        &diff.measure,
        diff.a,
        period,
    )
    .await?;
    let (ub, rb) = outcome(
        data,
        measures_dir,
        queries_dir,
        &diff.measure,
        diff.b,
        period,
    )
    .await?;
    let components: Vec<String> =
        ra.iter()
            .map(|r| r.component.clone())
            .fold(Vec::new(), |mut v, c| {
                if !v.contains(&c) {
                    v.push(c);
                }
                v
            });
    let (ya, yb) = (diff.a, diff.b);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut both = 0;
    let in_den = |f: Option<&BTreeMap<String, String>>| {
        f.and_then(|f| f.get("in_denominator"))
            .is_some_and(|v| v == "true")
    };
    let why_out = |f: Option<&BTreeMap<String, String>>, y: u16| match f {
        None => format!("not an event under MY{y}"),
        Some(f) => match (f.get("exclusion"), f.get("ineligible")) {
            (Some(x), _) => format!("excluded under MY{y}: {x}"),
            (None, Some(i)) => format!("not eligible under MY{y}: {i}"),
            (None, None) => format!("out of the denominator under MY{y}"),
        },
    };
    let keys: std::collections::BTreeSet<&String> = ua.keys().chain(ub.keys()).collect();
    for k in keys {
        let (fa, fb) = (ua.get(k), ub.get(k));
        match (in_den(fa), in_den(fb)) {
            (false, true) => {
                *counts
                    .entry(format!("enter the denominator ({})", why_out(fa, ya)))
                    .or_default() += 1
            }
            (true, false) => {
                *counts
                    .entry(format!("leave the denominator ({})", why_out(fb, yb)))
                    .or_default() += 1
            }
            (true, true) => {
                both += 1;
                for c in &components {
                    let va = fa.and_then(|f| f.get(c)).cloned().unwrap_or_default();
                    let vb = fb.and_then(|f| f.get(c)).cloned().unwrap_or_default();
                    if va != vb {
                        *counts
                            .entry(format!("{c}: {va} under MY{ya}, {vb} under MY{yb}"))
                            .or_default() += 1;
                    }
                }
            }
            (false, false) => {}
        }
    }
    let total = |rows: &[ResultRow], c: &str| {
        rows.iter()
            .find(|r| r.component == c && r.stratifier == crate::results::Grouping::Total)
            .map(|r| (r.rate, format!("{}/{}", r.numerator, r.denominator)))
    };
    let rates = components
        .iter()
        .map(|c| {
            let (x, nx) = total(&ra, c).unwrap_or((None, "-".into()));
            let (y, ny) = total(&rb, c).unwrap_or((None, "-".into()));
            RateChange {
                component: c.clone(),
                a: x,
                b: y,
                counts: (nx, ny),
            }
        })
        .collect();
    diff.units = Some(UnitChanges {
        both,
        changes: counts.into_iter().collect(),
        rates,
    });
    Ok(())
}

impl SpecDiff {
    /// The comparison as plain text for the terminal.
    pub fn render(&self) -> String {
        let (a, b) = (self.a, self.b);
        let mut s = format!(
            "{} ({}): MY{a} (version {}) against MY{b} (version {})\n",
            self.measure,
            self.path.display(),
            self.versions.0,
            self.versions.1
        );
        if self.texts.is_empty() {
            s.push_str("\nThe measure's texts are the same in both years.\n");
        } else {
            s.push_str("\nTexts that differ:\n");
            for t in &self.texts {
                s.push_str(&format!("  {}\n", t.what));
                for (y, (line, text)) in [(a, &t.a), (b, &t.b)] {
                    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    if text.is_empty() {
                        s.push_str(&format!("    MY{y}: (none)\n"));
                    } else {
                        s.push_str(&format!("    MY{y} (line {line}): {text}\n"));
                    }
                }
            }
        }
        if !self.rules.is_empty() {
            s.push_str("\nRules of one year only (measures/conformance/):\n");
            for r in &self.rules {
                let rule = r.rule.split_whitespace().collect::<Vec<_>>().join(" ");
                s.push_str(&format!(
                    "  MY{} only  {}  ({}): {rule}\n",
                    r.year, r.id, r.section
                ));
            }
        }
        if let Some(u) = &self.units {
            s.push_str(&format!(
                "\nOver the data: {} units in the denominator under both years.\n",
                u.both
            ));
            if u.changes.is_empty() {
                s.push_str("No unit changes.\n");
            } else {
                s.push_str("Units that change, by why:\n");
                for (why, n) in &u.changes {
                    s.push_str(&format!("  {n:>6}  {why}\n"));
                }
            }
            s.push_str("Rates (total):\n");
            let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.4}"));
            for r in &u.rates {
                s.push_str(&format!(
                    "  {}: MY{a} {} ({}), MY{b} {} ({})\n",
                    r.component,
                    pct(r.a),
                    r.counts.0,
                    pct(r.b),
                    r.counts.1
                ));
            }
        }
        s
    }
}
