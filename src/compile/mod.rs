//! The compiler: a checked [`Measure`] plus a [`Catalog`] of building blocks becomes SQL for a
//! period. References are resolved here (blocks, columns, filter expressions, value sets), so a
//! mistake is reported against the measure file before any query runs.
//!
//! A compiled measure is a list of common table expressions ending in `detail`, one row per
//! candidate unit of the denominator (member, member month or event) with why it is in or out and
//! the evidence for each numerator, and a summary `SELECT` that aggregates `detail` into strata.
//! The engine runs the detail once, keeps it (it is the member-level output), and aggregates it.

pub mod blocks;
pub mod depth;
pub(crate) mod filter;
pub mod lookup;
mod plan;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;

use crate::error::{Error, Result};
use crate::measure::valueset::ValueSets;
use crate::measure::{
    Aggregate, Anchor, Basis, ComponentKind, Condition, Located, Measure, MonthRule, Stratifier,
    Unit, Window,
};
use crate::period::Period;

/// The building blocks a measure may draw on, with their columns, and the value sets that
/// filters may name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub blocks: BTreeMap<String, Vec<(String, DataType)>>,
    pub value_sets: ValueSets,
    /// The optional inputs supplied for this run (`risk_weights`).
    pub inputs: BTreeSet<String>,
}

/// A number per stratum that a component's numerator or denominator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `num_<i>` summed over the denominator.
    Numerator(usize),
    /// The units of the denominator inside component `<i>`'s subset (`den_<i>`).
    SubsetDenominator(usize),
    /// The units of the denominator.
    Denominator,
    /// Members of the programme in the period (the population query).
    Enrollees,
    /// Of those, the members set aside as outliers.
    Outliers,
}

/// What one component reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One number over another, scaled by the unit.
    Rate {
        numerator: Source,
        denominator: Source,
    },
    /// Units with a `num_<i>` (a `first:` numerator), and the median of their days.
    Median(usize),
}

/// A measure compiled for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMeasure {
    pub id: String,
    pub period: Period,
    /// `WITH …, detail AS (…)`: everything up to the member-level detail.
    pub ctes: String,
    /// The same common table expressions one by one, (name, `name AS (…)`), in order: what
    /// [`Self::staged`] splits.
    steps: Vec<(String, String)>,
    /// The comment line that heads [`Self::ctes`].
    header: String,
    /// Component names, units and what they report, in the measure's order.
    pub components: Vec<(String, Unit, Output)>,
    pub stratify: Vec<Stratifier>,
    /// Age band labels in the measure's order (every one is reported, even when empty).
    pub age_bands: Vec<String>,
    /// Number of `num_<i>` columns in the detail.
    pub numerators: usize,
    /// The component name of each `num_<i>`, which names its columns in the detail output.
    pub numerator_names: Vec<String>,
    /// Whether each `num_<i>` is a `first:` numerator (days to the first row; null without one).
    pub numerator_is_first: Vec<bool>,
    /// Whether each `num_<i>` counts only a subset of the events (null outside it).
    pub numerator_subset: Vec<bool>,
    /// Whether numerator `i` sums whole numbers only (counts, or an integer column): its sums
    /// may be added up in any order and stay exact.
    pub numerator_whole: Vec<bool>,
    /// Components left out because an optional input is missing: (component, input).
    pub not_reported: Vec<(String, String)>,
    /// The population query (enrollees and outliers by stratum), with `{detail}` standing for
    /// the detail table, when a component counts enrollees.
    population: Option<String>,
}

/// One stage of [`CompiledMeasure::staged`]: the last one, `detail`, is the detail query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub name: String,
    pub sql: String,
    /// What names this stage's rows across the measures of one run: its query without the
    /// measure's header, after the keys of the stages kept before it (whose tables it may read).
    /// Two measures' stages with one key compute the same rows over the same views.
    pub key: String,
    /// The columns this stage's rows are ordered by, when it is ordered ([`DETAIL_ORDER`] for
    /// the candidate units): the detail keeps that order through its joins, so the engine,
    /// told of it, need not sort the wide detail rows again.
    pub order: Option<&'static str>,
}

/// The order of the detail's rows, and of the candidate units it is made from.
pub const DETAIL_ORDER: &str = "member_id, anchor_date, unit_id";

/// The key of a stage whose query is `body`, after `stages` (see [`Staged::key`]).
fn after(stages: &[Staged], body: &str) -> String {
    match stages.last() {
        Some(before) => format!("{}\n;\n{body}", before.key),
        None => body.to_string(),
    }
}

/// How many times later CTEs name `name` (comments aside).
fn references(name: &str, later: &[(String, String)]) -> usize {
    let word = regex::Regex::new(&format!(r"\b{}\b", regex::escape(name))).expect("a valid regex");
    later
        .iter()
        .map(|(_, sql)| {
            sql.lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .map(|l| word.find_iter(l).count())
                .sum::<usize>()
        })
        .sum()
}

/// The fixed columns of the detail, before the numerator columns.
pub const DETAIL_COLUMNS: &str = "unit_id, member_id, anchor_date, month_start, age, age_band, mco, hhp, population, \
sex, race, ethnicity, county, rural, month, quarter, ineligible, exclusion, exclusion_date, exclusion_id, in_denominator";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl CompiledMeasure {
    /// The member-level detail: one row per candidate unit, numerator columns named after their
    /// components (`ed_visits`, `ed_visits_date`, `ed_visits_id`).
    pub fn detail_sql(&self) -> String {
        let nums: String = self
            .numerator_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    ",\n  num_{i} AS {}, num_{i}_date AS {}, num_{i}_id AS {}",
                    quote(n),
                    quote(&format!("{n}_date")),
                    quote(&format!("{n}_id"))
                )
            })
            .collect();
        format!(
            "{}\nSELECT {DETAIL_COLUMNS}{nums}\nFROM detail\nORDER BY {DETAIL_ORDER}",
            self.ctes
        )
    }

    /// The aggregate over a table holding the output of [`Self::detail_sql`].
    pub fn summary_sql(&self, detail_table: &str) -> String {
        self.summary(detail_table, true)
    }

    fn summary(&self, detail_table: &str, named: bool) -> String {
        let (stratifier_case, stratum_case, sets) = grouping(&self.stratify);
        let strata: Vec<&str> = self.stratify.iter().map(|s| s.name()).collect();
        let additive = self
            .numerator_is_first
            .iter()
            .zip(&self.numerator_whole)
            .all(|(first, whole)| !first && *whole);
        if !strata.is_empty() && additive {
            return self.summary_by_cells(detail_table, named, &strata);
        }
        let sums = self
            .numerator_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let col = if named { quote(n) } else { format!("num_{i}") };
                if self.numerator_is_first[i] {
                    format!(", count({col}) AS num_{i}, median({col}) AS median_{i}")
                } else if self.numerator_subset[i] {
                    format!(", sum({col}) AS num_{i}, count({col}) AS den_{i}")
                } else {
                    format!(", sum({col}) AS num_{i}")
                }
            })
            .collect::<String>();
        format!(
            "SELECT {stratifier_case} AS stratifier,\n  {stratum_case} AS stratum,\n  \
count(*) AS denominator{sums}\nFROM {detail_table}\nWHERE in_denominator\n\
GROUP BY GROUPING SETS ({sets})\nORDER BY stratifier, stratum"
        )
    }

    /// [`Self::summary`] when every aggregate is a count or a sum: the units are counted once
    /// per cell of the strata (a few hundred cells), and the grouping sets add up the cells.
    /// `GROUPING SETS` over the units themselves hashes every unit once per set (five times for
    /// a measure with four stratifiers: 0.5 s of every million member-months). Sums of sums
    /// are exact: only whole numbers are summed (see `numerator_whole`). A count becomes a sum that is null
    /// where no unit is counted, hence the `coalesce`.
    fn summary_by_cells(&self, detail_table: &str, named: bool, strata: &[&str]) -> String {
        let (stratifier_case, stratum_case, sets) = grouping(&self.stratify);
        let mut inner = String::new();
        let mut outer = String::new();
        for (i, n) in self.numerator_names.iter().enumerate() {
            let col = if named { quote(n) } else { format!("num_{i}") };
            inner.push_str(&format!(", sum({col}) AS num_{i}"));
            outer.push_str(&format!(", sum(num_{i}) AS num_{i}"));
            if self.numerator_subset[i] {
                inner.push_str(&format!(", count({col}) AS den_{i}"));
                outer.push_str(&format!(", coalesce(sum(den_{i}), 0) AS den_{i}"));
            }
        }
        let by = strata.join(", ");
        format!(
            "SELECT {stratifier_case} AS stratifier,\n  {stratum_case} AS stratum,\n  \
coalesce(sum(denominator), 0) AS denominator{outer}\nFROM (\n  \
SELECT {by}, count(*) AS denominator{inner}\n  FROM {detail_table}\n  WHERE in_denominator\n  GROUP BY {by}\n) cells\n\
GROUP BY GROUPING SETS ({sets})\nORDER BY stratifier, stratum"
        )
    }

    /// The detail query in stages, for an engine that (like DataFusion) computes a common table
    /// expression again at every reference: each CTE that later ones read more than once, as
    /// its own query (`(name, query)`, in order), then the detail query reading them by name.
    /// The engine runs each stage, keeps its rows as a table of that name, and runs the next;
    /// the results are those of [`Self::detail_sql`]. `keep` says whether a stage may be kept
    /// (the engine declines one whose name a table already has, or that would not fit in memory);
    /// a stage it declines stays a CTE of the stages after it.
    pub fn staged(&self, mut keep: impl FnMut(&str) -> bool) -> Vec<Staged> {
        let mut stages: Vec<Staged> = Vec::new();
        let mut kept: Vec<&str> = Vec::new();
        let with = |upto: usize, kept: &[&str]| -> String {
            let ctes: Vec<&str> = self.steps[..upto]
                .iter()
                .filter(|(n, _)| !kept.contains(&n.as_str()))
                .map(|(_, c)| c.as_str())
                .collect();
            if ctes.is_empty() {
                String::new()
            } else {
                format!("WITH {}\n", ctes.join(",\n"))
            }
        };
        for (i, (name, _)) in self.steps.iter().enumerate() {
            // The units (candidates with their attributes) are a stage even when read once:
            // measures over the same units (AMB-HH, HH-ENGAGE and IU-HH count the same
            // enrollee months) then compute them once (`Staged::key`), and they come before the
            // numerators' steps so that their key is the same.
            let units = name == "units";
            if name == "detail"
                || (references(name, &self.steps[i + 1..]) < 2 && !units)
                || !keep(name)
            {
                continue;
            }
            // The units, and the candidates they are made from, in the detail's order: the
            // narrow rows sorted before the wide.
            let order = (units || name == "candidates").then_some(DETAIL_ORDER);
            let body = format!("{}SELECT * FROM {name}", with(i + 1, &kept));
            let key = after(&stages, &body);
            stages.push(Staged {
                name: name.clone(),
                sql: format!("{}\n{body}", self.header),
                key,
                order,
            });
            kept.push(name);
        }
        let detail = self.detail_sql();
        let select = &detail[self.ctes.len()..];
        let body = format!("{}{}", with(self.steps.len(), &kept), select.trim_start());
        let key = after(&stages, &body);
        stages.push(Staged {
            name: "detail".into(),
            sql: format!("{}\n{body}", self.header),
            key,
            order: Some(DETAIL_ORDER),
        });
        stages
    }

    /// One statement a person can read and run elsewhere: the detail's CTEs and the aggregate.
    pub fn standalone_sql(&self) -> String {
        format!("{}\n{}", self.ctes, self.summary("detail", false))
    }

    /// Enrollees and outliers by stratum, given a table holding [`Self::detail_sql`]'s output;
    /// `None` when no component counts enrollees.
    pub fn population_sql(&self, detail_table: &str) -> Option<String> {
        self.population_sql_where(detail_table, None)
    }

    /// [`Self::population_sql`] counting only enrollees that match `filter`, a condition on the
    /// enrollee's `mco`, `hhp` or `population` (e.g. `mco = 'MCO-A'`).
    pub fn population_sql_where(&self, detail_table: &str, filter: Option<&str>) -> Option<String> {
        let scope = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
        self.population.as_ref().map(|p| {
            p.replace("{detail}", detail_table)
                .replace("{scope}", &scope)
        })
    }
}

/// `CASE` expressions naming the stratifier and stratum of a `GROUPING SETS` row, and the sets.
fn grouping(stratify: &[Stratifier]) -> (String, String, String) {
    let strata: Vec<&str> = stratify.iter().map(|s| s.name()).collect();
    if strata.is_empty() {
        // `CASE ELSE … END` is not SQL: with no stratifier there is only the total.
        return ("'total'".into(), "'total'".into(), "()".into());
    }
    let mut stratifier_case = String::from("CASE");
    let mut stratum_case = String::from("CASE");
    for s in &strata {
        stratifier_case.push_str(&format!(" WHEN grouping({s}) = 0 THEN '{s}'"));
        stratum_case.push_str(&format!(" WHEN grouping({s}) = 0 THEN {s}"));
    }
    stratifier_case.push_str(" ELSE 'total' END");
    stratum_case.push_str(" ELSE 'total' END");
    let sets = std::iter::once("()".to_string())
        .chain(strata.iter().map(|s| format!("({s})")))
        .collect::<Vec<_>>()
        .join(", ");
    (stratifier_case, stratum_case, sets)
}

fn date_lit(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

/// `expr` shifted by `days` as SQL.
fn plus_days(expr: &str, days: i32) -> String {
    match days {
        0 => expr.to_string(),
        d if d > 0 => format!("{expr} + INTERVAL '{d} days'"),
        d => format!("{expr} - INTERVAL '{} days'", -d),
    }
}

struct Resolver<'a> {
    m: &'a Measure,
    catalog: &'a Catalog,
}

/// A building block's columns; an unknown block is an error at its place in `path`.
pub(crate) fn block_columns<'c>(
    catalog: &'c Catalog,
    path: &std::path::Path,
    name: &Located<String>,
) -> Result<&'c [(String, DataType)]> {
    catalog
        .blocks
        .get(&name.value)
        .map(Vec::as_slice)
        .ok_or_else(|| Error::Definition {
            path: path.to_path_buf(),
            line: name.line,
            column: name.column,
            message: format!("unknown building block `{}`", name.value),
            hint: Some(format!(
                "{} (building blocks are the .sql files of queries/)",
                blocks::suggest(&name.value, catalog.blocks.keys().map(String::as_str))
            )),
        })
}

/// A column's type in a block's columns; an unknown column is an error at its place in `path`.
pub(crate) fn block_column<'c>(
    path: &std::path::Path,
    block: &Located<String>,
    columns: &'c [(String, DataType)],
    col: &Located<String>,
) -> Result<&'c DataType> {
    columns
        .iter()
        .find(|(c, _)| c == &col.value)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::Definition {
            path: path.to_path_buf(),
            line: col.line,
            column: col.column,
            message: format!(
                "building block `{}` has no column `{}`",
                block.value, col.value
            ),
            hint: Some(blocks::suggest(
                &col.value,
                columns.iter().map(|(c, _)| c.as_str()),
            )),
        })
}

impl Resolver<'_> {
    fn err(&self, at: &Located<String>, message: String, hint: Option<String>) -> Error {
        Error::Definition {
            path: self.m.path.clone(),
            line: at.line,
            column: at.column,
            message,
            hint,
        }
    }

    fn block(&self, name: &Located<String>) -> Result<&[(String, DataType)]> {
        block_columns(self.catalog, &self.m.path, name)
    }

    fn column<'c>(
        &self,
        block: &Located<String>,
        columns: &'c [(String, DataType)],
        col: &Located<String>,
    ) -> Result<&'c DataType> {
        block_column(&self.m.path, block, columns, col)
    }

    fn date_column(
        &self,
        block: &Located<String>,
        columns: &[(String, DataType)],
        col: &Located<String>,
    ) -> Result<()> {
        let t = self.column(block, columns, col)?;
        if t != &DataType::Date32 {
            return Err(self.err(
                col,
                format!("column `{}` is {t}, not a date", col.value),
                None,
            ));
        }
        Ok(())
    }

    /// Resolve a filter to SQL: checked, columns qualified by `alias`, value sets expanded.
    fn filter(
        &self,
        f: &Located<String>,
        block: &str,
        alias: &str,
        columns: &[(String, DataType)],
    ) -> Result<String> {
        filter::check(
            &self.m.path,
            f,
            block,
            alias,
            columns,
            &self.catalog.value_sets,
        )
    }

    /// The resolved pieces of a condition, one per `any_of:` arm; `after` gives the CTE
    /// (`n<i>`) of each earlier numerator.
    fn condition(
        &self,
        c: &Condition,
        after: &BTreeMap<&str, usize>,
    ) -> Result<Vec<ResolvedCondition>> {
        c.arms().map(|arm| self.arm(arm, after)).collect()
    }

    fn arm(&self, c: &Condition, after: &BTreeMap<&str, usize>) -> Result<ResolvedCondition> {
        let columns = self.block(&c.block)?;
        if !columns.iter().any(|(n, _)| n == "member_id") {
            return Err(self.err(
                &c.block,
                format!("building block `{}` has no member_id column", c.block.value),
                None,
            ));
        }
        self.date_column(&c.block, columns, &c.date)?;
        let filter = c
            .filter
            .as_ref()
            .map(|f| self.filter(f, &c.block.value, "b", columns))
            .transpose()?;
        let id = match &c.id {
            Some(id) => {
                self.column(&c.block, columns, id)?;
                Some(id.value.clone())
            }
            None => columns
                .iter()
                .any(|(n, _)| n == "source_id")
                .then(|| "source_id".to_string()),
        };
        let key = match &c.key {
            Some(k) => {
                self.column(&c.block, columns, k)?;
                Some(k.value.clone())
            }
            None => None,
        };
        let mut whole = true;
        let value = match &c.aggregate {
            Aggregate::Exists | Aggregate::Count | Aggregate::First => None,
            Aggregate::Sum(col) => {
                let t = self.column(&c.block, columns, col)?;
                if !t.is_numeric() {
                    return Err(self.err(
                        col,
                        format!("column `{}` is {t}; `sum:` needs a number", col.value),
                        None,
                    ));
                }
                whole = t.is_integer();
                Some(col.value.clone())
            }
        };
        let after = match &c.after {
            Some(a) => Some(*after.get(a.value.as_str()).ok_or_else(|| {
                self.err(
                    a,
                    format!("`after: {}` names no numerator compiled before", a.value),
                    None,
                )
            })?),
            None => None,
        };
        Ok(ResolvedCondition {
            block: c.block.value.clone(),
            date: c.date.value.clone(),
            window: c.window.as_ref().map(|w| w.value),
            filter,
            id,
            value,
            key,
            after,
            whole,
        })
    }
}

struct ResolvedCondition {
    block: String,
    date: String,
    window: Option<Window>,
    filter: Option<String>,
    id: Option<String>,
    value: Option<String>,
    key: Option<String>,
    /// Window from the first date of numerator `n<i>` rather than the anchor.
    after: Option<usize>,
    /// Every value it sums is a whole number (it counts, or sums an integer column).
    whole: bool,
}

impl ResolvedCondition {
    /// A row's evidence id and value as SQL over the block `b`.
    fn id_and_value(&self) -> (String, String) {
        let id = match &self.id {
            Some(id) => format!("CAST(b.{id} AS VARCHAR)"),
            None => "CAST(NULL AS VARCHAR)".to_string(),
        };
        let value = match &self.value {
            Some(v) => format!("CAST(b.{v} AS DOUBLE)"),
            None => "CAST(1 AS DOUBLE)".to_string(),
        };
        (id, value)
    }

    /// The qualifying rows dated `from` to `to`, with their member and month (member-months).
    fn month_rows(&self, from: NaiveDate, to: NaiveDate) -> String {
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        let (id, value) = self.id_and_value();
        format!(
            "SELECT b.member_id, CAST(date_trunc('month', b.{d}) AS DATE) AS month_start, b.{d} AS d, {id} AS id, {value} AS v\n      \
FROM {block} b\n      WHERE b.{d} >= {} AND b.{d} <= {}{filter}",
            date_lit(from),
            date_lit(to),
            d = self.date,
            block = self.block,
        )
    }

    /// The qualifying rows of one arm: unit, date, evidence id and value.
    fn rows(&self, basis: Basis, period: &Period) -> String {
        let (anchor, after_join) = match self.after {
            Some(j) => (
                "a.first_date".to_string(),
                format!(" JOIN n{j} a ON a.unit_id = c.unit_id"),
            ),
            None => ("c.anchor_date".to_string(), String::new()),
        };
        // A window's bounds are computed once per unit, in `c`: in the join's condition they
        // would be computed again for every pair of a member's units and rows (a date plus an
        // interval is calendar arithmetic: most of IET-HH's time went there).
        let mut units = format!("candidates c{after_join}");
        let mut join = match (basis, self.window) {
            // Equality on the month keeps this a hash join.
            (Basis::MemberMonths, _) => vec![format!(
                "CAST(date_trunc('month', b.{d}) AS DATE) = c.month_start",
                d = self.date
            )],
            (_, Some(w)) => {
                units = format!(
                    "(\n      SELECT c.unit_id, c.member_id, {} AS lo, {} AS hi\n      \
FROM {units}\n    ) c",
                    plus_days(&anchor, w.from),
                    plus_days(&anchor, w.to),
                );
                vec![format!("b.{d} >= c.lo AND b.{d} <= c.hi", d = self.date)]
            }
            // The event itself, whatever its date.
            (_, None) if self.key.is_some() => Vec::new(),
            // Members without a window: rows dated in the period.
            (_, None) => vec![format!(
                "b.{d} >= {} AND b.{d} <= {}",
                date_lit(period.start),
                date_lit(period.end),
                d = self.date
            )],
        };
        if let Some(k) = &self.key {
            join.insert(0, format!("CAST(b.{k} AS VARCHAR) = c.unit_id"));
        }
        let join: String = join.iter().map(|j| format!(" AND {j}")).collect();
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!("\n    WHERE {f}"))
            .unwrap_or_default();
        let (id, value) = self.id_and_value();
        format!(
            "SELECT c.unit_id, b.{d} AS d, {id} AS id, {value} AS v\n    \
FROM {units} JOIN {block} b ON b.member_id = c.member_id{join}{filter}",
            d = self.date,
            block = self.block,
        )
    }
}

/// A CTE `name` with, per candidate unit having qualifying rows in any arm: their count, the
/// first date, the id of the first row, the sum of the value column and, with `days`, the number
/// of days they fall on (`at_least`).
fn condition_cte(
    name: &str,
    comment: &str,
    arms: &[ResolvedCondition],
    basis: Basis,
    period: &Period,
    days: bool,
) -> String {
    if basis == Basis::MemberMonths && arms.iter().all(|a| a.after.is_none() && a.key.is_none()) {
        return month_condition_cte(name, comment, arms, period, days);
    }
    let rows = arms
        .iter()
        .map(|a| a.rows(basis, period))
        .collect::<Vec<_>>()
        .join("\n    UNION ALL\n    ");
    // The first id is the least of the first day's ids (`hhq_first_id`, see engine::pick: a
    // grouped aggregate, where `first_value(… ORDER BY …)` compares row by row).
    if !days {
        // One aggregate: a unit-and-day step first would group every row twice, by string keys
        // (a member-month measure spent 60% of its time there).
        return format!(
            "{name} AS (\n  -- {comment}\n  SELECT unit_id, count(*) AS n, min(d) AS first_date,\n    \
hhq_first_id(d, id) AS first_id, sum(v) AS total\n  FROM (\n    {rows}\n  ) r\n  \
GROUP BY unit_id\n)"
        );
    }
    // Per unit and day first, then per unit: `count(DISTINCT d)` would make DataFusion aggregate
    // unit by unit.
    format!(
        "{name} AS (\n  -- {comment}\n  SELECT unit_id, sum(n) AS n, count(d) AS days, min(d) AS first_date,\n    \
hhq_first_id(d, id) AS first_id, sum(total) AS total\n  FROM (\n    \
SELECT unit_id, d, count(*) AS n, min(id) AS id, sum(v) AS total\n    FROM (\n    {rows}\n    ) r\n    \
GROUP BY unit_id, d\n  ) per_day\n  GROUP BY unit_id\n)"
    )
}

/// [`condition_cte`] for member-months: a row falls in the unit of its member and month, so
/// the rows are aggregated per member and month first and the few aggregates joined to the
/// units, not every row joined and then grouped by the built unit id (a month of Health Home
/// contacts is millions of rows: the join copied each). Rows are read from the first month's
/// first day to the last month's last day, as no other row meets a unit; the same results.
fn month_condition_cte(
    name: &str,
    comment: &str,
    arms: &[ResolvedCondition],
    period: &Period,
    days: bool,
) -> String {
    let months = period.months();
    let from = months.first().map_or(period.start, |m| m.0);
    let to = months.last().map_or(period.end, |m| m.1);
    let rows = arms
        .iter()
        .map(|a| a.month_rows(from, to))
        .collect::<Vec<_>>()
        .join("\n      UNION ALL\n      ");
    let per_month = if days {
        format!(
            "SELECT member_id, month_start, sum(n) AS n, count(d) AS days, min(d) AS first_date,\n      \
hhq_first_id(d, id) AS first_id, sum(total) AS total\n    FROM (\n      \
SELECT member_id, month_start, d, count(*) AS n, min(id) AS id, sum(v) AS total\n      FROM (\n      {rows}\n      ) r\n      \
GROUP BY member_id, month_start, d\n    ) per_day\n    GROUP BY member_id, month_start"
        )
    } else {
        format!(
            "SELECT member_id, month_start, count(*) AS n, min(d) AS first_date,\n      \
hhq_first_id(d, id) AS first_id, sum(v) AS total\n    FROM (\n      {rows}\n    ) r\n    \
GROUP BY member_id, month_start"
        )
    };
    let days_col = if days { " a.days," } else { "" };
    format!(
        "{name} AS (\n  -- {comment}\n  SELECT c.unit_id, a.n,{days_col} a.first_date, a.first_id, a.total\n  \
FROM candidates c JOIN (\n    {per_month}\n  ) a ON a.member_id = c.member_id AND a.month_start = c.month_start\n)"
    )
}

/// One enrolment interval per unit (`by`: expressions and their names), from `from` (an
/// enrolment block aliased `c`, joined to the units): the interval ending last, then starting
/// last, then by partner, MCO and population (nulls last), with its `mco_id`, `hhp_id` and
/// `population`.
///
/// By `hhq_latest_span` (engine::pick), an aggregate: `row_number() OVER (PARTITION BY … ORDER
/// BY …) = 1` over a million small partitions is DataFusion's slowest operator, and
/// `first_value(… ORDER BY …)` compares row by row.
fn pick(by: &[(&str, &str)], from: &str) -> String {
    let select: Vec<String> = by.iter().map(|(e, n)| format!("{e} AS {n}")).collect();
    let names: Vec<&str> = by.iter().map(|(_, n)| *n).collect();
    let exprs: Vec<&str> = by.iter().map(|(e, _)| *e).collect();
    format!(
        "SELECT {}, k['hhp_id'] AS hhp_id, k['mco_id'] AS mco_id, k['population'] AS population FROM (\n      \
SELECT {}, hhq_latest_span(c.start_date, c.end_date, c.hhp_id, c.mco_id, c.population) AS k\n      FROM {from}\n      GROUP BY {}\n    ) keyed",
        names.join(", "),
        select.join(", "),
        exprs.join(", ")
    )
}

/// Compile a measure for a period against the catalog.
pub fn compile(m: &Measure, catalog: &Catalog, period: &Period) -> Result<CompiledMeasure> {
    let r = Resolver { m, catalog };
    let program = m.program.block();
    let enrollment = catalog.blocks.get(program).ok_or_else(|| {
        Error::Usage(format!(
            "{}: the measure needs the building block `{program}` (queries/{program}.sql)",
            m.path.display()
        ))
    })?;
    for col in [
        "member_id",
        "start_date",
        "end_date",
        "mco_id",
        "hhp_id",
        "population",
    ] {
        if !enrollment.iter().any(|(c, _)| c == col) {
            return Err(Error::Usage(format!(
                "building block `{program}` lacks column `{col}`"
            )));
        }
    }

    // 1. Candidate units with their enrolment attributes on the anchor date.
    let mut ctes: Vec<String> = Vec::new();
    // Components counting a subset of the events: (component index, SQL of the test).
    let mut subsets: Vec<(usize, String)> = Vec::new();
    match m.basis {
        Basis::Members => {
            let anchor = match m.anchor {
                Anchor::PeriodEnd => period.end,
                Anchor::PeriodStart => period.start,
            };
            ctes.push(format!(
                "candidates AS (\n  -- members enrolled on the anchor date, {anchor}, with the interval covering it\n  \
SELECT member_id AS unit_id, member_id, {a} AS anchor_date, CAST(NULL AS DATE) AS month_start,\n    \
mco_id, hhp_id, population, true AS enrolled FROM (\n    {p}\n  ) picked\n)",
                p = pick(
                    &[("c.member_id", "member_id")],
                    &format!(
                        "{program} c WHERE c.start_date <= {a} AND c.end_date >= {a}",
                        a = date_lit(anchor)
                    ),
                ),
                a = date_lit(anchor),
            ));
        }
        Basis::MemberMonths => {
            let months = period.months();
            let rows = months
                .iter()
                .map(|(start, end)| {
                    let count = match m.member_months.rule {
                        MonthRule::CountDay => {
                            *start + chrono::Days::new(u64::from(m.member_months.count_day) - 1)
                        }
                        MonthRule::AnyDay => *end,
                    };
                    format!(
                        "({}, {}, {})",
                        date_lit(*start),
                        date_lit(*end),
                        date_lit(count)
                    )
                })
                .collect::<Vec<_>>()
                .join(",\n    ");
            let covers = match m.member_months.rule {
                MonthRule::CountDay => {
                    "c.start_date <= mo.count_date AND c.end_date >= mo.count_date"
                }
                MonthRule::AnyDay => {
                    "c.start_date <= mo.month_end AND c.end_date >= mo.month_start"
                }
            };
            ctes.push(format!(
                "months (month_start, month_end, count_date) AS (VALUES\n    {rows})"
            ));
            ctes.push(format!(
                "candidates AS (\n  -- one row per member and month: the enrolment interval covering the month, latest first\n  \
SELECT member_id || ':' || hhq_month(month_start) AS unit_id, member_id, count_date AS anchor_date, month_start,\n    \
mco_id, hhp_id, population, true AS enrolled FROM (\n    {p}\n  ) picked\n)",
                p = pick(
                    &[
                        ("c.member_id", "member_id"),
                        ("mo.month_start", "month_start"),
                        ("mo.count_date", "count_date"),
                    ],
                    &format!("{program} c JOIN months mo ON {covers}"),
                ),
            ));
        }
        Basis::Events => {
            let e = m.events.as_ref().expect("events basis has events");
            let columns = r.block(&e.block)?;
            r.column(&e.block, columns, &e.id)?;
            r.date_column(&e.block, columns, &e.date)?;
            let filter = e
                .filter
                .as_ref()
                .map(|f| {
                    r.filter(f, &e.block.value, "ev", columns)
                        .map(|s| format!(" AND ({s})"))
                })
                .transpose()?
                .unwrap_or_default();
            for (k, c) in m.components.iter().enumerate() {
                if let Some(f) = &c.subset {
                    let sql = r.filter(f, &e.block.value, "ev", columns)?;
                    subsets.push((k, format!("coalesce({sql}, false)")));
                }
            }
            let sub_cols: String = subsets
                .iter()
                .map(|(k, sql)| format!(", {sql} AS sub_{k}"))
                .collect();
            let lo = period.start + chrono::Duration::days(i64::from(e.start_offset));
            let hi = period.end + chrono::Duration::days(i64::from(e.end_offset));
            ctes.push(format!(
                "events AS (\n  -- rows of `{b}` dated {lo} to {hi}\n  \
SELECT DISTINCT CAST(ev.{id} AS VARCHAR) AS unit_id, ev.member_id, ev.{d} AS anchor_date{sub_cols}\n  \
FROM {b} ev\n  WHERE ev.{d} >= {} AND ev.{d} <= {}{filter}\n)",
                date_lit(lo),
                date_lit(hi),
                b = e.block.value,
                id = e.id.value,
                d = e.date.value,
            ));
            let (chain_join, repeat) = match &e.first_within {
                Some(days) => {
                    // The counted event of a member and date is its first by id: a grouped
                    // minimum, not row_number() over a window (DataFusion runs a window over a
                    // partition per member and date about ten times slower).
                    ctes.push(
                        "events_first AS (\n  -- per member and date, the event that day counted (the first by id)\n  \
SELECT member_id, anchor_date, min(unit_id) AS first_unit FROM events GROUP BY member_id, anchor_date\n)"
                            .to_string(),
                    );
                    let first = "\n  JOIN events_first f ON f.member_id = e.member_id AND f.anchor_date = e.anchor_date";
                    if days.value <= 1 {
                        // A day or more apart: every date starts its own episode, so nothing
                        // needs chaining (an ordered list per member was most of IET-HH's time).
                        (
                            first.to_string(),
                            "CASE WHEN e.unit_id = f.first_unit THEN CAST(NULL AS DATE) ELSE e.anchor_date END AS repeat_of"
                                .to_string(),
                        )
                    } else {
                        // Both lists come from one aggregate, which hands every accumulator the
                        // same rows in the same order: they are aligned, in no particular order
                        // (hhq_episode_starts needs none; an ordered array_agg is group by group).
                        ctes.push(format!(
                            "events_chained AS (\n  -- the counted event each event belongs to: the first, then the first {n}+ days after the last counted\n  \
SELECT unnest(ids) AS unit_id, unnest(hhq_episode_starts(dates, {n})) AS episode_start FROM (\n    \
SELECT member_id, array_agg(unit_id) AS ids, array_agg(anchor_date) AS dates\n    \
FROM events GROUP BY member_id\n  )\n)",
                            n = days.value
                        ));
                        // An episode starts on its counted event's date.
                        (
                            format!("\n  JOIN events_chained ch ON ch.unit_id = e.unit_id{first}"),
                            "CASE WHEN e.anchor_date = ch.episode_start AND e.unit_id = f.first_unit \
THEN CAST(NULL AS DATE) ELSE ch.episode_start END AS repeat_of"
                                .to_string(),
                        )
                    }
                }
                None => (String::new(), "CAST(NULL AS DATE) AS repeat_of".to_string()),
            };
            let sub_carry: String = subsets
                .iter()
                .map(|(k, _)| format!(", e.sub_{k}"))
                .collect();
            ctes.push(format!(
                "candidates AS (\n  -- each event with the enrolment interval covering its date, if any\n  \
SELECT e.unit_id, e.member_id, e.anchor_date, CAST(NULL AS DATE) AS month_start,\n    \
en.mco_id, en.hhp_id, en.population, en.unit_id IS NOT NULL AS enrolled, {repeat}{sub_carry}\n  FROM events e{chain_join} LEFT JOIN (\n    \
{p}\n  ) en ON en.unit_id = e.unit_id\n)",
                p = pick(
                    &[("e2.unit_id", "unit_id")],
                    &format!("events e2 JOIN {program} c ON c.member_id = e2.member_id AND c.start_date <= e2.anchor_date AND c.end_date >= e2.anchor_date"),
                ),
            ));
        }
    }

    // 2. Continuous enrolment around the anchor: gaps counted and measured.
    if let Some(ce) = &m.continuous {
        let (from, to) = (ce.window.from, ce.window.to);
        let lo = plus_days("c.anchor_date", from);
        let hi = plus_days("c.anchor_date", to);
        ctes.push(format!(
            "ce_spans AS (\n  -- enrolment intervals clipped to days {from}..{to} around the anchor\n  \
SELECT c.unit_id, greatest(e.start_date, {lo}) AS s, least(e.end_date, {hi}) AS t\n  \
FROM candidates c JOIN {program} e ON e.member_id = c.member_id AND e.start_date <= {hi} AND e.end_date >= {lo}\n)"
        ));
        // Each distinct span with the latest end among the spans before it (by start, then end):
        // a join within the unit, not a window, which DataFusion runs over a partition per unit
        // about ten times slower. A span repeated adds no gap, so spans are distinct first.
        ctes.push("ce_distinct AS (\n  SELECT DISTINCT unit_id, s, t FROM ce_spans\n)".to_string());
        ctes.push(
            "ce_ordered AS (\n  SELECT a.unit_id, a.s, a.t, max(b.t) AS prev_t\n  \
FROM ce_distinct a LEFT JOIN ce_distinct b ON b.unit_id = a.unit_id AND (b.s < a.s OR (b.s = a.s AND b.t < a.t))\n  \
GROUP BY a.unit_id, a.s, a.t\n)"
                .to_string(),
        );
        ctes.push(format!(
            "ce AS (\n  -- per unit: the number of gaps in the window and the longest, in days\n  \
SELECT c.unit_id,\n    \
CASE WHEN g.unit_id IS NULL THEN 1 ELSE g.inner_gaps\n      \
+ CASE WHEN g.first_s > {lo} THEN 1 ELSE 0 END + CASE WHEN g.last_t < {hi} THEN 1 ELSE 0 END END AS gaps,\n    \
CASE WHEN g.unit_id IS NULL THEN {len} ELSE greatest(g.inner_max,\n      \
CASE WHEN g.first_s > {lo} THEN g.first_s - ({lo}) ELSE 0 END,\n      \
CASE WHEN g.last_t < {hi} THEN ({hi}) - g.last_t ELSE 0 END) END AS longest_gap\n  \
FROM candidates c LEFT JOIN (\n    SELECT unit_id, min(s) AS first_s, max(t) AS last_t,\n      \
sum(CASE WHEN prev_t IS NOT NULL AND s > prev_t + INTERVAL '1 day' THEN 1 ELSE 0 END) AS inner_gaps,\n      \
max(CASE WHEN prev_t IS NOT NULL AND s > prev_t + INTERVAL '1 day' THEN s - prev_t - 1 ELSE 0 END) AS inner_max\n    \
FROM ce_ordered GROUP BY unit_id\n  ) g ON g.unit_id = c.unit_id\n)",
            len = to - from + 1,
        ));
    }

    // The units come here, before the numerators' steps (see `CompiledMeasure::staged`); they
    // are written at section 4 below.
    let units_at = ctes.len();

    // 3. Exclusions and numerators: one CTE each.
    let mut cond_names = Vec::new();
    let none = BTreeMap::new();
    for (i, x) in m.exclusions.iter().enumerate() {
        let arms = r.condition(&x.condition, &none)?;
        ctes.push(condition_cte(
            &format!("x{i}"),
            &format!("exclusion `{}`", x.name.value),
            &arms,
            m.basis,
            period,
            false,
        ));
        cond_names.push(x.name.value.clone());
    }
    // Components whose optional input is missing are left out, with ratios over them.
    let mut not_reported: Vec<(String, String)> = Vec::new();
    for c in &m.components {
        if let Some(n) = &c.needs
            && !catalog.inputs.contains(&n.value)
        {
            not_reported.push((c.name.value.clone(), n.value.clone()));
        }
    }
    for c in &m.components {
        if let ComponentKind::Ratio {
            numerator,
            denominator,
        } = &c.kind
            && let Some((_, input)) = not_reported
                .iter()
                .find(|(n, _)| *n == numerator.value || *n == denominator.value)
                .cloned()
            && !not_reported.iter().any(|(n, _)| *n == c.name.value)
        {
            not_reported.push((c.name.value.clone(), input));
        }
    }
    let skipped = |name: &str| not_reported.iter().any(|(n, _)| n == name);
    let mut num_cols = Vec::new();
    let mut num_ctes = Vec::new();
    let mut index_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut numerator_names = Vec::new();
    let mut numerator_is_first = Vec::new();
    let mut numerator_subset = Vec::new();
    let mut numerator_whole = Vec::new();
    // Numerators whose rows are the same query (IET-HH's cohorts: one condition, then kept per
    // cohort by a subset) are computed once: the later one reads the first's CTE under its own
    // name, and conditions anchored on it are then the same query too.
    let mut cte_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut computed: Vec<(String, usize)> = Vec::new();
    for (k, c, cond) in m.numerators() {
        if skipped(&c.name.value) {
            continue;
        }
        let i = num_cols.len();
        let arms = r.condition(cond, &cte_of)?;
        numerator_whole.push(arms.iter().all(|a| a.whole));
        // Days on which rows fall are counted only for `at_least`.
        let days = matches!(cond.aggregate, Aggregate::Exists) && cond.at_least.is_some();
        let query = condition_cte("", "", &arms, m.basis, period, days);
        let same = computed.iter().find(|(q, _)| *q == query).map(|(_, j)| *j);
        let cte = match same {
            Some(j) => j,
            None => {
                ctes.push(condition_cte(
                    &format!("n{i}"),
                    &format!("numerator `{}`", c.name.value),
                    &arms,
                    m.basis,
                    period,
                    days,
                ));
                computed.push((query, i));
                i
            }
        };
        cte_of.insert(c.name.value.as_str(), cte);
        let value = match (&cond.aggregate, cond.at_least) {
            (Aggregate::Exists, Some(n)) => {
                format!("CASE WHEN coalesce(n{cte}.days, 0) >= {n} THEN 1 ELSE 0 END")
            }
            (Aggregate::Exists, None) => format!("CASE WHEN n{cte}.n IS NULL THEN 0 ELSE 1 END"),
            (Aggregate::Count, _) => format!("coalesce(n{cte}.n, 0)"),
            (Aggregate::Sum(_), _) => format!("coalesce(n{cte}.total, 0)"),
            (Aggregate::First, _) => format!("n{cte}.first_date - u.anchor_date"),
        };
        let in_subset = subsets.iter().any(|(s, _)| *s == k);
        let value = if in_subset {
            format!("CASE WHEN u.sub_{k} THEN {value} END")
        } else {
            value
        };
        num_cols.push(format!(
            "{value} AS num_{i}, n{cte}.first_date AS num_{i}_date, n{cte}.first_id AS num_{i}_id"
        ));
        // A numerator computed by another's CTE reads that one's join (IET-HH's eight
        // numerators are two CTEs).
        if cte == i {
            num_ctes.push(format!("n{i}"));
        }
        index_of.insert(c.name.value.as_str(), i);
        numerator_names.push(c.name.value.clone());
        numerator_is_first.push(cond.aggregate == Aggregate::First);
        numerator_subset.push(in_subset);
    }
    let source = |name: &str| -> Source {
        let c = m
            .components
            .iter()
            .find(|c| c.name.value == name)
            .expect("references checked by the model");
        match &c.kind {
            ComponentKind::Denominator => Source::Denominator,
            ComponentKind::Enrollees { outliers: false } => Source::Enrollees,
            ComponentKind::Enrollees { outliers: true } => Source::Outliers,
            _ => Source::Numerator(index_of[name]),
        }
    };
    let mut outputs = Vec::new();
    for c in &m.components {
        if skipped(&c.name.value) {
            continue;
        }
        let output = match &c.kind {
            ComponentKind::Numerator(cond) if cond.aggregate == Aggregate::First => {
                Output::Median(index_of[c.name.value.as_str()])
            }
            ComponentKind::Numerator(_) => {
                let i = index_of[c.name.value.as_str()];
                Output::Rate {
                    numerator: Source::Numerator(i),
                    denominator: if numerator_subset[i] {
                        Source::SubsetDenominator(i)
                    } else {
                        Source::Denominator
                    },
                }
            }
            ComponentKind::Ratio {
                numerator,
                denominator,
            } => Output::Rate {
                numerator: source(&numerator.value),
                denominator: source(&denominator.value),
            },
            ComponentKind::Denominator => Output::Rate {
                numerator: Source::Denominator,
                denominator: Source::Denominator,
            },
            ComponentKind::Enrollees { outliers } => Output::Rate {
                numerator: if *outliers {
                    Source::Outliers
                } else {
                    Source::Enrollees
                },
                denominator: Source::Enrollees,
            },
        };
        outputs.push((c.name.value.clone(), c.unit, output));
    }

    // 4. Attributes: age and band at the anchor, demographics, calendar strata.
    let mut band_case = String::from("CASE WHEN age IS NULL THEN 'unknown'");
    for b in &m.age_bands {
        match b.max {
            Some(max) => band_case.push_str(&format!(
                " WHEN age BETWEEN {} AND {max} THEN '{}'",
                b.min, b.label
            )),
            None => band_case.push_str(&format!(" WHEN age >= {} THEN '{}'", b.min, b.label)),
        }
    }
    band_case.push_str(" END");
    let ce_join = if m.continuous.is_some() {
        "\n    LEFT JOIN ce ON ce.unit_id = c.unit_id"
    } else {
        ""
    };
    let ce_cols = if m.continuous.is_some() {
        "ce.gaps, ce.longest_gap"
    } else {
        "CAST(0 AS BIGINT) AS gaps, CAST(0 AS BIGINT) AS longest_gap"
    };
    let carried: String = if m.basis == Basis::Events {
        std::iter::once(", c.repeat_of".to_string())
            .chain(subsets.iter().map(|(k, _)| format!(", c.sub_{k}")))
            .collect()
    } else {
        String::new()
    };
    ctes.insert(
        units_at,
        format!(
        "units AS (\n  SELECT *, {band_case} AS age_band FROM (\n    \
SELECT c.unit_id, c.member_id, c.anchor_date, c.month_start, c.enrolled{carried},\n      \
coalesce(c.mco_id, 'FFS') AS mco, coalesce(c.hhp_id, 'none') AS hhp, coalesce(c.population, 'unknown') AS population,\n      \
{attributes},\n      \
{ce_cols}\n    \
FROM candidates c LEFT JOIN members p ON p.member_id = c.member_id{ce_join}\n  )\n)",
        attributes = person_attributes("c.anchor_date"),
    ),
    );

    // 5. Why each unit is in or out.
    let mut reasons = Vec::new();
    if let Some(days) = m.events.as_ref().and_then(|e| e.first_within.as_ref()) {
        reasons.push(format!(
            "WHEN u.repeat_of IS NOT NULL THEN 'within {} days of the counted event on ' || CAST(u.repeat_of AS VARCHAR)",
            days.value
        ));
    }
    reasons.extend([
        "WHEN NOT u.enrolled THEN 'not enrolled on the anchor date'".to_string(),
        "WHEN u.age_band IS NULL THEN 'age ' || CAST(u.age AS VARCHAR) || ' outside the age bands'"
            .to_string(),
    ]);
    if let Some(ce) = &m.continuous {
        reasons.push(format!(
            "WHEN u.gaps > {g} OR u.longest_gap > {d} THEN 'not continuously enrolled: ' || CAST(u.gaps AS VARCHAR) || ' gap(s), longest ' || CAST(u.longest_gap AS VARCHAR) || ' days'",
            g = ce.max_gaps,
            d = ce.max_gap_days
        ));
    }
    let ineligible = format!("CASE {} END", reasons.join(" "));
    let (exclusion, exclusion_date, exclusion_id) = if cond_names.is_empty() {
        (
            "CAST(NULL AS VARCHAR)".to_string(),
            "CAST(NULL AS DATE)".to_string(),
            "CAST(NULL AS VARCHAR)".to_string(),
        )
    } else {
        let pick = |what: &str| {
            format!(
                "CASE {} END",
                cond_names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!(
                        "WHEN x{i}.unit_id IS NOT NULL THEN {}",
                        match what {
                            "name" => format!("'{n}'"),
                            "date" => format!("x{i}.first_date"),
                            _ => format!("x{i}.first_id"),
                        }
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        (pick("name"), pick("date"), pick("id"))
    };
    let evidence: Vec<String> = (0..cond_names.len())
        .map(|i| format!("x{i}"))
        .chain(num_ctes)
        .collect();
    let evidence_join = evidence_join(&evidence);
    let num_select = if num_cols.is_empty() {
        String::new()
    } else {
        format!(",\n    {}", num_cols.join(",\n    "))
    };
    let num_out: String = (0..num_cols.len())
        .map(|i| format!(",\n    u.num_{i}, u.num_{i}_date, u.num_{i}_id"))
        .collect();
    ctes.push(format!(
        "judged AS (\n  SELECT u.*, {ineligible} AS ineligible,\n    \
{exclusion} AS exclusion, {exclusion_date} AS exclusion_date, {exclusion_id} AS exclusion_id{num_select}\n  \
FROM units u{evidence_join}\n)"
    ));
    // Outliers: members with many units in the denominator are set aside, their units with them.
    let (from, outlier) = match m.outliers {
        Some(n) => {
            ctes.push(
                "counted AS (\n  -- per member: units that would be in the denominator\n  \
SELECT u.*, sum(CASE WHEN u.ineligible IS NULL AND u.exclusion IS NULL THEN 1 ELSE 0 END)\n    \
OVER (PARTITION BY u.member_id) AS member_units\n  FROM judged u\n)"
                    .to_string(),
            );
            (
                "counted",
                format!("(u.ineligible IS NULL AND u.exclusion IS NULL AND u.member_units >= {n})"),
            )
        }
        None => ("judged", "false".to_string()),
    };
    ctes.push(format!(
        "detail AS (\n  -- one row per candidate unit: in the denominator or why not, and the numerator evidence\n  \
SELECT u.unit_id, u.member_id, u.anchor_date, u.month_start, u.age, u.age_band, u.mco, u.hhp, u.population,\n    \
u.sex, u.race, u.ethnicity, u.county, u.rural, u.month, u.quarter,\n    \
u.ineligible, {exclusion_out} AS exclusion,\n    \
CASE WHEN u.ineligible IS NULL THEN u.exclusion_date END AS exclusion_date,\n    \
{exclusion_id_out} AS exclusion_id,\n    \
u.ineligible IS NULL AND u.exclusion IS NULL{not_outlier} AS in_denominator{num_out}\n  \
FROM {from} u\n)",
        exclusion_out = if m.outliers.is_some() {
            format!("CASE WHEN {outlier} THEN 'outlier' WHEN u.ineligible IS NULL THEN u.exclusion END")
        } else {
            "CASE WHEN u.ineligible IS NULL THEN u.exclusion END".to_string()
        },
        exclusion_id_out = if m.outliers.is_some() {
            format!("CASE WHEN {outlier} THEN CAST(u.member_units AS VARCHAR) || ' units of the member' WHEN u.ineligible IS NULL THEN u.exclusion_id END")
        } else {
            "CASE WHEN u.ineligible IS NULL THEN u.exclusion_id END".to_string()
        },
        not_outlier = if m.outliers.is_some() {
            format!(" AND NOT {outlier}")
        } else {
            String::new()
        },
    ));

    // 6. The population: members of the programme in the period, by age on its last day.
    let population = m
        .components
        .iter()
        .any(|c| matches!(c.kind, ComponentKind::Enrollees { .. }))
        .then(|| population_sql(m, program, period, &band_case));

    let header = format!(
        "-- {} {} ({}), period {period}, basis {}",
        m.id,
        m.version,
        m.title,
        m.basis.name()
    );
    let steps = ctes
        .iter()
        .map(|c| {
            let name: String = c
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            (name, c.clone())
        })
        .collect();
    Ok(CompiledMeasure {
        id: m.id.clone(),
        period: *period,
        ctes: format!("{header}\nWITH {}", ctes.join(",\n")),
        steps,
        header,
        components: outputs,
        stratify: m.stratify.clone(),
        age_bands: m.age_bands.iter().map(|b| b.label.clone()).collect(),
        numerators: num_cols.len(),
        numerator_names,
        numerator_is_first,
        numerator_subset,
        numerator_whole,
        not_reported,
        population,
    })
}

/// The join of the units `u` to the evidence CTEs (exclusions, numerators), each keyed by
/// `unit_id` and holding a unit's row only if it has evidence. Two or more are joined to each
/// other first, on their rows (most often far fewer than the units'), and the units to them
/// once: each join to the units copies every column of the detail (four joins were 0.4 s of
/// AIF-HH's CPU per million units). The evidence CTEs keep their names, so a unit's evidence is
/// read as from its own join.
fn evidence_join(evidence: &[String]) -> String {
    match evidence {
        [] => String::new(),
        [one] => format!("\n    LEFT JOIN {one} ON {one}.unit_id = u.unit_id"),
        [first, rest @ ..] => {
            let mut joined = first.clone();
            let mut keys = vec![format!("{first}.unit_id")];
            for e in rest {
                let key = match keys.as_slice() {
                    [one] => one.clone(),
                    many => format!("coalesce({})", many.join(", ")),
                };
                joined.push_str(&format!("\n      FULL JOIN {e} ON {e}.unit_id = {key}"));
                keys.push(format!("{e}.unit_id"));
            }
            format!(
                "\n    LEFT JOIN ({joined}\n    ) ON coalesce({}) = u.unit_id",
                keys.join(", ")
            )
        }
    }
}

/// A member's attributes on the date `on` (a SQL expression), from the members extract `p`: age
/// in whole years, demographics (`unknown` when null) and the calendar strata.
fn person_attributes(on: &str) -> String {
    // Age, month and quarter by hhq's functions (src/engine/udf.rs), equal to the `date_part`
    // and `to_char` SQL they replace and some 20 times faster; text as Utf8, as before.
    format!(
        "hhq_age(p.birth_date, {on}) AS age,\n      \
coalesce(p.sex, 'unknown') AS sex, coalesce(p.race, 'unknown') AS race, coalesce(p.ethnicity, 'unknown') AS ethnicity,\n      \
coalesce(p.county_fips, 'unknown') AS county,\n      \
CASE WHEN p.rural IS NULL THEN 'unknown' WHEN p.rural THEN 'rural' ELSE 'urban' END AS rural,\n      \
hhq_month({on}) AS month,\n      \
hhq_quarter({on}) AS quarter"
    )
}

/// Enrollees and outliers by stratum: each member enrolled in the programme on any day of the
/// period, with the latest interval's MCO, partner and population and the age on the period's
/// last day; outliers are members with a unit excluded as `outlier` in `{detail}`.
fn population_sql(m: &Measure, program: &str, period: &Period, band_case: &str) -> String {
    let (stratifier_case, stratum_case, sets) = grouping(&m.stratify);
    let end = date_lit(period.end);
    format!(
        "-- {id}: enrollees of `{program}` in {period}, and outliers\nWITH spans AS (\n  \
{spans}\n),\n\
people AS (\n  SELECT *, {band_case} AS age_band FROM (\n    \
SELECT s.member_id, coalesce(s.mco_id, 'FFS') AS mco, coalesce(s.hhp_id, 'none') AS hhp,\n      \
coalesce(s.population, 'unknown') AS population,\n      {attributes}\n    \
FROM spans s LEFT JOIN members p ON p.member_id = s.member_id\n  )\n)\n\
SELECT {stratifier_case} AS stratifier,\n  {stratum_case} AS stratum,\n  \
count(*) AS enrollees, sum(CASE WHEN o.member_id IS NULL THEN 0 ELSE 1 END) AS outliers\n\
FROM people u LEFT JOIN (SELECT DISTINCT member_id FROM {{detail}} WHERE exclusion = 'outlier') o ON o.member_id = u.member_id\n\
WHERE u.age_band IS NOT NULL{{scope}}\n\
GROUP BY GROUPING SETS ({sets})\nORDER BY stratifier, stratum",
        id = m.id,
        spans = pick(
            &[("c.member_id", "member_id")],
            &format!(
                "{program} c WHERE c.start_date <= {end} AND c.end_date >= {}",
                date_lit(period.start)
            )
        ),
        attributes = person_attributes(&end),
    )
}
