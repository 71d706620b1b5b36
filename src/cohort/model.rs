//! Cohort and risk-flag definitions: YAML files of `measures/cohorts/` parsed into [`Cohort`] and
//! [`FlagSet`], every name kept with its line and column. Like a measure file, a definition is
//! checked alone here; blocks, columns and value sets are resolved against the catalog by
//! [`super::query`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};
use crate::measure::{
    Errs, Located, MAX_MEASURE_BYTES, read_definition, utf8, yaml_error, yaml_options,
};

/// How far back from the as-of date claims count, both ends included: `{days: 365}` is the 365
/// days ending on the as-of date, `{months: 12}` the day after the same date a year earlier up
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    Days(u32),
    Months(u32),
}

impl Lookback {
    /// The first day of the look-back ending on `as_of`.
    pub fn start(self, as_of: chrono::NaiveDate) -> chrono::NaiveDate {
        match self {
            // Checked: a look-back of billions of days reaches past chrono's first date.
            Lookback::Days(n) => as_of
                .checked_sub_signed(chrono::Duration::days(i64::from(n) - 1))
                .unwrap_or(chrono::NaiveDate::MIN),
            Lookback::Months(n) => as_of
                .checked_sub_months(chrono::Months::new(n))
                .and_then(|d| d.checked_add_signed(chrono::Duration::days(1)))
                .unwrap_or(chrono::NaiveDate::MIN),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Lookback::Days(n) => format!("{n} days"),
            Lookback::Months(n) => format!("{n} months"),
        }
    }
}

/// One named test over a building block: the member's rows of `block`, dated in the look-back,
/// passing `filter`, counted by distinct `id` (claims, visits, contacts). The criterion is met
/// when the count reaches `at_least`, or, for a flag raised by an absence, stays under
/// `fewer_than`.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub name: Located<String>,
    pub description: Option<String>,
    pub block: Located<String>,
    pub date: Located<String>,
    /// The column counted (distinct values) and kept as evidence; default `source_id`.
    pub id: Option<Located<String>>,
    /// A column shown beside each piece of evidence (the diagnosis code of a claim).
    pub show: Option<Located<String>>,
    pub filter: Option<Located<String>>,
    pub threshold: Threshold,
    /// This criterion's own look-back, else the definition's.
    pub lookback: Option<Lookback>,
}

/// When a criterion is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// At least this many distinct rows (claims, visits).
    AtLeast(u32),
    /// Fewer than this many: `fewer_than: 1` is "none" (no contact in 60 days).
    FewerThan(u32),
}

impl Threshold {
    pub fn met(self, n: u64) -> bool {
        match self {
            Threshold::AtLeast(k) => n >= u64::from(k),
            Threshold::FewerThan(k) => n < u64::from(k),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Threshold::AtLeast(k) => format!("at least {k}"),
            Threshold::FewerThan(1) => "none".into(),
            Threshold::FewerThan(k) => format!("fewer than {k}"),
        }
    }
}

/// A rule over criteria: when a member qualifies (a cohort) or counts as high-risk (flags).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// At least `n` of these criteria are met (names of groups stand for their members);
    /// `written` is the list as the file names it, groups unexpanded, for the rule in words.
    AtLeast {
        n: u32,
        of: Vec<Located<String>>,
        written: Vec<String>,
    },
    /// None of these criteria is met (the manual's "unless").
    NoneOf(Vec<Located<String>>),
    AllOf(Vec<Rule>),
    AnyOf(Vec<Rule>),
}

impl Rule {
    /// Whether the rule holds, given which criteria are met.
    pub fn holds(&self, met: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Rule::AtLeast { n, of, .. } => {
                of.iter().filter(|c| met(&c.value)).count() >= *n as usize
            }
            Rule::NoneOf(of) => !of.iter().any(|c| met(&c.value)),
            Rule::AllOf(rules) => rules.iter().all(|r| r.holds(met)),
            Rule::AnyOf(rules) => rules.iter().any(|r| r.holds(met)),
        }
    }

    /// The rule in words, for reports and the member lists.
    pub fn describe(&self) -> String {
        let list = |of: &[Located<String>]| {
            of.iter()
                .map(|c| c.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            // A single criterion named as itself reads as its name; a group keeps its name.
            Rule::AtLeast { n: 1, of, written }
                if of.len() == 1 && written == &[of[0].value.clone()] =>
            {
                of[0].value.clone()
            }
            Rule::AtLeast { n, written, .. } => format!("at least {n} of ({})", written.join(", ")),
            Rule::NoneOf(of) => format!("none of ({})", list(of)),
            Rule::AllOf(rules) => rules
                .iter()
                .map(|r| r.describe())
                .collect::<Vec<_>>()
                .join(" and "),
            Rule::AnyOf(rules) => format!(
                "either {}",
                rules
                    .iter()
                    .map(|r| format!("[{}]", r.describe()))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }
}

/// A target population: who should be served by a Health Home of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub version: String,
    pub source: String,
    pub description: Option<String>,
    /// The enrolment extract's `population` value of this Health Home type (`SMI`, `CC`).
    pub population: String,
    pub lookback: Lookback,
    pub criteria: Vec<Criterion>,
    pub qualifies: Rule,
}

/// Transparent high-risk flags for enrolled members: each flag a criterion, and a rule saying
/// which flags make a member high-risk.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagSet {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub version: String,
    pub source: String,
    pub description: Option<String>,
    pub lookback: Lookback,
    pub flags: Vec<Criterion>,
    pub high_risk: Rule,
}

/// A definition of `measures/cohorts/`.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    Cohort(Cohort),
    Flags(FlagSet),
}

impl Definition {
    pub fn id(&self) -> &str {
        match self {
            Definition::Cohort(c) => &c.id,
            Definition::Flags(f) => &f.id,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Definition::Cohort(c) => &c.path,
            Definition::Flags(f) => &f.path,
        }
    }

    pub fn criteria(&self) -> &[Criterion] {
        match self {
            Definition::Cohort(c) => &c.criteria,
            Definition::Flags(f) => &f.flags,
        }
    }

    pub fn lookback(&self) -> Lookback {
        match self {
            Definition::Cohort(c) => c.lookback,
            Definition::Flags(f) => f.lookback,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Cohort,
    RiskFlags,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    id: Spanned<String>,
    kind: Spanned<Kind>,
    title: String,
    version: String,
    source: String,
    #[serde(default)]
    description: Option<String>,
    population: Option<Spanned<String>>,
    lookback: Spanned<RawLookback>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    criteria: Vec<RawCriterion>,
    qualifies: Option<Spanned<RawRule>>,
    #[serde(default)]
    flags: Vec<RawCriterion>,
    high_risk: Option<Spanned<RawRule>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawLookback {
    days: Option<u32>,
    months: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCriterion {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    from: Spanned<String>,
    date: Spanned<String>,
    id: Option<Spanned<String>>,
    show: Option<Spanned<String>>,
    #[serde(rename = "where")]
    filter: Option<Spanned<String>>,
    at_least: Option<Spanned<u32>>,
    fewer_than: Option<Spanned<u32>>,
    lookback: Option<Spanned<RawLookback>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    at_least: Option<u32>,
    of: Option<Vec<Spanned<String>>>,
    none_of: Option<Vec<Spanned<String>>>,
    all_of: Option<Vec<Spanned<RawRule>>>,
    any_of: Option<Vec<Spanned<RawRule>>>,
}

fn located<T>(s: &Spanned<T>) -> Located<()> {
    Located {
        value: (),
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
    }
}

fn lookback(errs: &Errs, raw: Spanned<RawLookback>) -> Result<Lookback> {
    let at = located(&raw);
    match (raw.value.days, raw.value.months) {
        (Some(0), None) | (None, Some(0)) => Err(errs.at(
            &at,
            "a look-back of 0 holds no day",
            Some("e.g. `lookback: {months: 12}`"),
        )),
        (Some(d), None) if d > 36_600 => Err(errs.at(&at, "a look-back over 100 years", None)),
        (None, Some(m)) if m > 1_200 => Err(errs.at(&at, "a look-back over 100 years", None)),
        (Some(d), None) => Ok(Lookback::Days(d)),
        (None, Some(m)) => Ok(Lookback::Months(m)),
        _ => Err(errs.at(
            &at,
            "a look-back is `{days: N}` or `{months: N}`",
            Some("e.g. `lookback: {months: 12}`"),
        )),
    }
}

fn criterion(errs: &Errs, raw: RawCriterion) -> Result<Criterion> {
    let name = Located::from(raw.name);
    check_name(errs, &name, "criterion")?;
    let threshold = match (
        raw.at_least.map(Located::from),
        raw.fewer_than.map(Located::from),
    ) {
        (None, None) => Threshold::AtLeast(1),
        (Some(n), None) if n.value == 0 => {
            return Err(errs.at(&n, "`at_least: 0` is always met", Some("use 1 or more")));
        }
        (None, Some(n)) if n.value == 0 => {
            return Err(errs.at(
                &n,
                "`fewer_than: 0` is never met",
                Some("`fewer_than: 1` means none"),
            ));
        }
        (Some(n), None) => Threshold::AtLeast(n.value),
        (None, Some(n)) => Threshold::FewerThan(n.value),
        (Some(n), Some(_)) => {
            return Err(errs.at(
                &n,
                "a criterion has `at_least:` or `fewer_than:`, not both",
                None,
            ));
        }
    };
    Ok(Criterion {
        name,
        description: raw.description,
        block: raw.from.into(),
        date: raw.date.into(),
        id: raw.id.map(Located::from),
        show: raw.show.map(Located::from),
        filter: raw.filter.map(Located::from),
        threshold,
        lookback: raw.lookback.map(|l| lookback(errs, l)).transpose()?,
    })
}

fn check_name(errs: &Errs, name: &Located<String>, what: &str) -> Result<()> {
    let ok = name
        .value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(errs.at(
            name,
            format!(
                "{what} name {:?} must be lower-case letters, digits and `_`",
                name.value
            ),
            Some("it becomes a column name, e.g. `smi_primary_dx`"),
        ))
    }
}

/// Turn a raw rule into a [`Rule`], group names expanded to their criteria.
fn rule(
    errs: &Errs,
    raw: Spanned<RawRule>,
    groups: &BTreeMap<String, Vec<Located<String>>>,
    known: &[&str],
) -> Result<Rule> {
    let at = located(&raw);
    let r = raw.value;
    let names = |list: Vec<Spanned<String>>| -> Result<Vec<Located<String>>> {
        let mut out: Vec<Located<String>> = Vec::new();
        for n in list {
            let n = Located::from(n);
            if let Some(members) = groups.get(&n.value) {
                out.extend(members.iter().cloned());
            } else if known.contains(&n.value.as_str()) {
                out.push(n);
            } else {
                return Err(errs.at(
                    &n,
                    format!("no criterion or group `{}`", n.value),
                    Some(&crate::compile::blocks::suggest(
                        &n.value,
                        known
                            .iter()
                            .copied()
                            .chain(groups.keys().map(String::as_str)),
                    )),
                ));
            }
        }
        if out.is_empty() {
            return Err(errs.at(&at, "the rule names no criterion", None));
        }
        Ok(out)
    };
    let forms = [
        r.of.is_some(),
        r.none_of.is_some(),
        r.all_of.is_some(),
        r.any_of.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 || (r.at_least.is_some() && r.of.is_none()) {
        return Err(errs.at(
            &at,
            "a rule is one of `{at_least: N, of: [...]}`, `{none_of: [...]}`, `{all_of: [rules]}` or `{any_of: [rules]}`",
            Some("e.g. `{at_least: 2, of: [chronic_conditions]}`"),
        ));
    }
    let sub = |rules: Vec<Spanned<RawRule>>| -> Result<Vec<Rule>> {
        if rules.is_empty() {
            return Err(errs.at(&at, "`all_of:`/`any_of:` needs at least one rule", None));
        }
        rules
            .into_iter()
            .map(|x| rule(errs, x, groups, known))
            .collect()
    };
    Ok(if let Some(of) = r.of {
        let written = of.iter().map(|n| n.value.clone()).collect();
        let of = names(of)?;
        let n = r.at_least.unwrap_or(1);
        if n == 0 || n as usize > of.len() {
            return Err(errs.at(
                &at,
                format!(
                    "`at_least: {n}` of {} criteria can never or always hold",
                    of.len()
                ),
                None,
            ));
        }
        Rule::AtLeast { n, of, written }
    } else if let Some(of) = r.none_of {
        Rule::NoneOf(names(of)?)
    } else if let Some(rules) = r.all_of {
        Rule::AllOf(sub(rules)?)
    } else {
        Rule::AnyOf(sub(r.any_of.unwrap_or_default())?)
    })
}

impl Definition {
    /// Read and check one definition file.
    pub fn load(path: &Path) -> Result<Definition> {
        let bytes = read_definition(path, MAX_MEASURE_BYTES)?;
        let text = utf8(path, bytes)?;
        Definition::parse(path, &text)
    }

    /// Parse and check definition YAML; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Definition> {
        let raw: RawDefinition = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| yaml_error(path, &e))?;
        let errs = Errs(path);
        let id = Located::from(raw.id);
        crate::measure::check_id(&errs, &id, "id", "SMI")?;
        let kind = Located::from(raw.kind);
        let lookback = lookback(&errs, raw.lookback)?;
        let (criteria_raw, rule_raw, rule_key, misplaced) = match kind.value {
            Kind::Cohort => (
                raw.criteria,
                raw.qualifies,
                "qualifies",
                (!raw.flags.is_empty())
                    .then_some("`flags:`")
                    .or(raw.high_risk.is_some().then_some("`high_risk:`")),
            ),
            Kind::RiskFlags => (
                raw.flags,
                raw.high_risk,
                "high_risk",
                (!raw.criteria.is_empty())
                    .then_some("`criteria:`")
                    .or(raw.qualifies.is_some().then_some("`qualifies:`"))
                    .or(raw.population.is_some().then_some("`population:`")),
            ),
        };
        if let Some(key) = misplaced {
            return Err(errs.at(
                &kind,
                format!(
                    "{key} does not belong in a `kind: {}` definition",
                    if kind.value == Kind::Cohort { "cohort" } else { "risk_flags" }
                ),
                Some("a cohort has `criteria:` and `qualifies:`; risk flags have `flags:` and `high_risk:`"),
            ));
        }
        let mut criteria: Vec<Criterion> = Vec::new();
        for c in criteria_raw {
            let c = criterion(&errs, c)?;
            if criteria.iter().any(|o| o.name.value == c.name.value) {
                return Err(errs.at(
                    &c.name,
                    format!("`{}` is defined twice", c.name.value),
                    None,
                ));
            }
            criteria.push(c);
        }
        if criteria.is_empty() {
            return Err(errs.at(
                &kind,
                match kind.value {
                    Kind::Cohort => "a cohort needs `criteria:`",
                    Kind::RiskFlags => "risk flags need `flags:`",
                },
                None,
            ));
        }
        let known: Vec<&str> = criteria.iter().map(|c| c.name.value.as_str()).collect();
        let mut groups: BTreeMap<String, Vec<Located<String>>> = BTreeMap::new();
        for (g, members) in raw.groups {
            if known.contains(&g.as_str()) {
                return Err(errs.at(
                    &Located::from(members.into_iter().next().expect("a named group")),
                    format!("group `{g}` has the name of a criterion"),
                    None,
                ));
            }
            let mut list = Vec::new();
            for m in members {
                let m = Located::from(m);
                if !known.contains(&m.value.as_str()) {
                    return Err(errs.at(
                        &m,
                        format!("group `{g}` names no criterion `{}`", m.value),
                        Some(&crate::compile::blocks::suggest(
                            &m.value,
                            known.iter().copied(),
                        )),
                    ));
                }
                list.push(m);
            }
            groups.insert(g, list);
        }
        let rule = match rule_raw {
            Some(r) => rule(&errs, r, &groups, &known)?,
            None if kind.value == Kind::RiskFlags => Rule::AtLeast {
                // By default any flag makes a member high-risk.
                n: 1,
                of: criteria.iter().map(|c| c.name.clone()).collect(),
                written: criteria.iter().map(|c| c.name.value.clone()).collect(),
            },
            None => {
                return Err(errs.at(
                    &kind,
                    format!("a cohort needs `{rule_key}:`, the rule over its criteria"),
                    Some("e.g. `qualifies: {at_least: 1, of: [smi_primary_dx]}`"),
                ));
            }
        };
        let base = (
            path.to_path_buf(),
            id.value,
            raw.title,
            raw.version,
            raw.source,
            raw.description,
        );
        Ok(match kind.value {
            Kind::Cohort => {
                let Some(population) = raw.population.map(Located::from) else {
                    return Err(errs.at(
                        &kind,
                        "a cohort needs `population:`, the enrolment extract's value for it (`SMI`, `CC`)",
                        None,
                    ));
                };
                Definition::Cohort(Cohort {
                    path: base.0,
                    id: base.1,
                    title: base.2,
                    version: base.3,
                    source: base.4,
                    description: base.5,
                    population: population.value,
                    lookback,
                    criteria,
                    qualifies: rule,
                })
            }
            Kind::RiskFlags => Definition::Flags(FlagSet {
                path: base.0,
                id: base.1,
                title: base.2,
                version: base.3,
                source: base.4,
                description: base.5,
                lookback,
                flags: criteria,
                high_risk: rule,
            }),
        })
    }
}

/// Every definition of `dir` (`*.yaml`), in file-name order; none when it does not exist. Ids are
/// unique, two cohorts may not claim one population, and at most one flag set is defined.
pub fn load_dir(dir: &Path) -> Result<Vec<Definition>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Definition> = Vec::new();
    for p in crate::measure::paths_in(dir)? {
        let d = Definition::load(&p)?;
        let clash = |message: String| Error::Definition {
            path: p.clone(),
            line: 1,
            column: 1,
            message,
            hint: None,
        };
        if let Some(o) = out.iter().find(|o| o.id() == d.id()) {
            return Err(clash(format!(
                "id `{}` is also defined in {}",
                d.id(),
                o.path().display()
            )));
        }
        match &d {
            Definition::Cohort(c) => {
                if let Some(o) = out
                    .iter()
                    .find(|o| matches!(o, Definition::Cohort(x) if x.population == c.population))
                {
                    return Err(clash(format!(
                        "population `{}` is already the cohort of {}",
                        c.population,
                        o.path().display()
                    )));
                }
            }
            Definition::Flags(_) => {
                if let Some(o) = out.iter().find(|o| matches!(o, Definition::Flags(_))) {
                    return Err(clash(format!(
                        "risk flags are already defined in {}",
                        o.path().display()
                    )));
                }
            }
        }
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_look_back_past_the_calendar_starts_at_its_first_day() {
        let as_of = d(2025, 12, 31);
        assert_eq!(
            Lookback::Days(u32::MAX).start(as_of),
            chrono::NaiveDate::MIN
        );
        assert_eq!(
            Lookback::Months(u32::MAX).start(as_of),
            chrono::NaiveDate::MIN
        );
        assert_eq!(Lookback::Days(1).start(as_of), as_of);
        assert_eq!(Lookback::Months(12).start(as_of), d(2025, 1, 1));
    }

    #[test]
    fn a_lookback_ends_on_the_as_of_date_with_both_ends_included() {
        assert_eq!(Lookback::Days(60).start(d(2025, 12, 31)), d(2025, 11, 2));
        assert_eq!(Lookback::Days(1).start(d(2025, 12, 31)), d(2025, 12, 31));
        assert_eq!(Lookback::Months(12).start(d(2025, 12, 31)), d(2025, 1, 1));
        assert_eq!(Lookback::Months(12).start(d(2026, 3, 31)), d(2025, 4, 1));
        // A day the earlier month lacks is its last day: Feb 28, so the look-back starts Mar 1.
        assert_eq!(Lookback::Months(1).start(d(2025, 3, 31)), d(2025, 3, 1));
        // Leap day: twelve months before 2025-02-28 is 2024-02-28.
        assert_eq!(Lookback::Months(12).start(d(2025, 2, 28)), d(2024, 2, 29));
    }

    #[test]
    fn thresholds_and_rules_hold_as_written() {
        assert!(Threshold::AtLeast(2).met(2) && !Threshold::AtLeast(2).met(1));
        assert!(Threshold::FewerThan(1).met(0) && !Threshold::FewerThan(1).met(1));
        let text = r#"id: CC
kind: cohort
title: t
version: '1'
source: s
population: CC
lookback: {months: 12}
groups:
  conditions: [a, b, c]
  risks: [r]
criteria:
  - {name: a, from: x, date: d}
  - {name: b, from: x, date: d}
  - {name: c, from: x, date: d}
  - {name: r, from: x, date: d}
qualifies:
  any_of:
    - {at_least: 2, of: [conditions]}
    - all_of: [{of: [conditions]}, {of: [risks]}]
"#;
        let Definition::Cohort(c) = Definition::parse(Path::new("t.yaml"), text).unwrap() else {
            panic!("a cohort");
        };
        let holds = |met: &[&str]| c.qualifies.holds(&|n: &str| met.contains(&n));
        assert!(holds(&["a", "c"]));
        assert!(holds(&["b", "r"]));
        assert!(!holds(&["b"]));
        assert!(!holds(&["r"]));
        assert!(!holds(&[]));
        assert_eq!(
            c.qualifies.describe(),
            "either [at least 2 of (conditions)] or [at least 1 of (conditions) and at least 1 of (risks)]"
        );
    }

    #[test]
    fn risk_flags_default_to_any_flag_and_refuse_cohort_keys() {
        let text = r#"id: HR
kind: risk_flags
title: t
version: '1'
source: s
lookback: {days: 365}
flags:
  - {name: ed, from: x, date: d, at_least: 3}
  - {name: quiet, from: x, date: d, fewer_than: 1, lookback: {days: 60}}
"#;
        let Definition::Flags(f) = Definition::parse(Path::new("t.yaml"), text).unwrap() else {
            panic!("flags");
        };
        assert!(f.high_risk.holds(&|n: &str| n == "quiet"));
        assert!(!f.high_risk.holds(&|_: &str| false));
        assert_eq!(f.flags[1].lookback, Some(Lookback::Days(60)));
        let e = Definition::parse(Path::new("t.yaml"), &format!("{text}population: SMI\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.yaml:2:7: `population:` does not belong in a `kind: risk_flags`"),
            "{e}"
        );
    }
}
