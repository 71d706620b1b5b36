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
pub mod duckdb;
pub(crate) mod filter;
mod filter_plan;
pub mod ir;
mod planner;
mod render;
mod resolve;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::datatypes::DataType;

use crate::error::Result;
use crate::measure::valueset::ValueSets;
use crate::measure::{Measure, Stratifier, Unit};
use crate::period::Period;

pub use ir::MeasurePlan;
pub(crate) use resolve::{block_column, block_columns};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

impl Source {
    /// Whether the number is a sum over the detail's units (so each member's share of it is
    /// known): not so for the population query's enrollees.
    pub fn per_unit(self) -> bool {
        matches!(
            self,
            Source::Numerator(_) | Source::SubsetDenominator(_) | Source::Denominator
        )
    }

    /// The summary's column holding the number.
    pub fn column(self) -> String {
        match self {
            Source::Numerator(i) => format!("num_{i}"),
            Source::SubsetDenominator(i) => format!("den_{i}"),
            Source::Denominator => "denominator".into(),
            Source::Enrollees => "enrollees".into(),
            Source::Outliers => "outliers".into(),
        }
    }

    /// The summary's column holding the sum over members of the product of two of their
    /// per-member sums (`m_denominator_num_0`), one name whichever order the two are given in.
    pub fn moment(a: Source, b: Source) -> String {
        let (a, b) = Source::pair(a, b);
        format!("m_{}_{}", a.column(), b.column())
    }

    /// Two sources in the order of their columns' names: one pair whichever order they come in.
    pub fn pair(a: Source, b: Source) -> (Source, Source) {
        if a.column() <= b.column() {
            (a, b)
        } else {
            (b, a)
        }
    }
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

/// A measure compiled for one period: its plan, and the plan's steps rendered as SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMeasure {
    pub id: String,
    pub period: Period,
    /// `WITH …, detail AS (…)`: everything up to the member-level detail.
    pub ctes: String,
    /// The plan the SQL is written from.
    plan: MeasurePlan,
    /// Each step of the plan as `name AS (…)`, in order: what [`Self::staged`] splits.
    rendered: Vec<String>,
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
}

/// One stage of [`CompiledMeasure::staged`]: the last one, `detail`, is the detail query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub sql: String,
    /// What names this stage's rows across the measures of one run: the plan of the steps it
    /// computes (their kinds, which hold all their SQL is written from), after the keys of the
    /// stages held before it (whose tables it may read). Two measures' stages with one key
    /// compute the same rows over the same views.
    pub key: String,
    /// The columns this stage's rows are ordered by, when it is ordered ([`DETAIL_ORDER`] for
    /// the candidate units): the detail keeps that order through its joins, so the engine,
    /// told of it, need not sort the wide detail rows again.
    pub order: Option<&'static str>,
}

/// The order of the detail's rows, and of the candidate units it is made from.
pub const DETAIL_ORDER: &str = "member_id, anchor_date, unit_id";

/// The fixed columns of the detail, before the numerator columns.
pub const DETAIL_COLUMNS: &str = "unit_id, member_id, anchor_date, month_start, age, age_band, mco, hhp, population, \
sex, race, ethnicity, county, rural, month, quarter, ineligible, exclusion, exclusion_date, exclusion_id, in_denominator";

impl CompiledMeasure {
    /// The plan the SQL is written from (what `hhq compile --steps` prints).
    pub fn plan(&self) -> &MeasurePlan {
        &self.plan
    }

    /// The query of the plan's steps up to step `i`, selecting its rows: planned step by step,
    /// the first that does not plan names the part of the measure at fault.
    pub fn step_sql(&self, i: usize) -> String {
        format!(
            "{}\nWITH {}\nSELECT * FROM {}",
            self.header,
            self.rendered[..=i].join(",\n"),
            self.plan.steps[i].name
        )
    }

    /// The `SELECT` of the member-level detail from the `detail` step.
    fn detail_select(&self) -> String {
        let nums: String = self
            .numerator_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    ",\n  num_{i} AS {}, num_{i}_date AS {}, num_{i}_id AS {}",
                    sql::quoted(n),
                    sql::quoted(&format!("{n}_date")),
                    sql::quoted(&format!("{n}_id"))
                )
            })
            .collect();
        format!("SELECT {DETAIL_COLUMNS}{nums}\nFROM detail\nORDER BY {DETAIL_ORDER}")
    }

    /// The member-level detail: one row per candidate unit, numerator columns named after their
    /// components (`ed_visits`, `ed_visits_date`, `ed_visits_id`).
    pub fn detail_sql(&self) -> String {
        format!("{}\n{}", self.ctes, self.detail_select())
    }

    /// The aggregate over a table holding the output of [`Self::detail_sql`].
    pub fn summary_sql(&self, detail_table: &str) -> String {
        self.summary(detail_table, true)
    }

    fn summary(&self, detail_table: &str, named: bool) -> String {
        let (stratifier_case, stratum_case, sets) = render::grouping(&self.stratify);
        let strata: Vec<&str> = self.stratify.iter().map(|s| s.name()).collect();
        let additive = self
            .numerator_is_first
            .iter()
            .zip(&self.numerator_whole)
            .all(|(first, whole)| !first && *whole);
        if additive {
            return self.summary_by_cells(detail_table, named, &strata);
        }
        let sums = self
            .numerator_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let col = if named {
                    sql::quoted(n)
                } else {
                    format!("num_{i}")
                };
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
    /// per member and cell of the strata, and the grouping sets add up each member's cells, so
    /// that every stratum also carries its members' second moments ([`Source::moment`]): the
    /// clusters of repeated units (a member's months, days, discharges) that intervals account
    /// for. `GROUPING SETS` over the units themselves would hash every unit once per set; over
    /// member-cells it hashes far fewer rows (a member's twelve months are one). Sums of sums
    /// are exact: only whole numbers are summed (see `numerator_whole`). A count becomes a sum
    /// that is null where no unit is counted, hence the `coalesce`.
    fn summary_by_cells(&self, detail_table: &str, named: bool, strata: &[&str]) -> String {
        let (stratifier_case, stratum_case, sets) =
            render::grouping_within(&self.stratify, "member_id");
        let mut cells = String::new();
        let mut members = String::new();
        let mut outer = String::new();
        for (i, n) in self.numerator_names.iter().enumerate() {
            let col = if named {
                sql::quoted(n)
            } else {
                format!("num_{i}")
            };
            cells.push_str(&format!(", sum({col}) AS num_{i}"));
            members.push_str(&format!(", sum(num_{i}) AS num_{i}"));
            outer.push_str(&format!(", sum(num_{i}) AS num_{i}"));
            if self.numerator_subset[i] {
                cells.push_str(&format!(", count({col}) AS den_{i}"));
                members.push_str(&format!(", sum(den_{i}) AS den_{i}"));
                outer.push_str(&format!(", coalesce(sum(den_{i}), 0) AS den_{i}"));
            }
        }
        outer.push_str(", count(*) AS clusters");
        for (a, b) in self.moments() {
            outer.push_str(&format!(
                ", sum(CAST({} AS DOUBLE) * CAST({} AS DOUBLE)) AS {}",
                a.column(),
                b.column(),
                Source::moment(a, b)
            ));
        }
        let by: String = strata.iter().map(|s| format!("{s}, ")).collect();
        format!(
            "SELECT stratifier, stratum,\n  coalesce(sum(denominator), 0) AS denominator{outer}\n\
FROM (\n  SELECT {stratifier_case} AS stratifier,\n    {stratum_case} AS stratum,\n    member_id, \
sum(denominator) AS denominator{members}\n  FROM (\n    \
SELECT {by}member_id, count(*) AS denominator{cells}\n    FROM {detail_table}\n    WHERE in_denominator\n    \
GROUP BY {by}member_id\n  ) cells\n  GROUP BY GROUPING SETS ({sets})\n) members\n\
GROUP BY stratifier, stratum\nORDER BY stratifier, stratum"
        )
    }

    /// The pairs of per-member sums whose products the cell summary adds up: for each rate
    /// component over units of the detail, its denominator's square, the product of its
    /// numerator and denominator and its numerator's square.
    pub fn moments(&self) -> Vec<(Source, Source)> {
        let mut pairs = Vec::new();
        for (_, _, output) in &self.components {
            if let Output::Rate {
                numerator,
                denominator,
            } = *output
                && numerator.per_unit()
                && denominator.per_unit()
            {
                for pair in [
                    (denominator, denominator),
                    (numerator, denominator),
                    (numerator, numerator),
                ] {
                    let pair = Source::pair(pair.0, pair.1);
                    if !pairs.contains(&pair) {
                        pairs.push(pair);
                    }
                }
            }
        }
        pairs
    }

    /// The detail query in stages, for an engine that (like DataFusion) computes a common table
    /// expression again at every reference: each step that later ones read twice or more (or
    /// that its kind holds: [`ir::StepKind::held`]), as its own query (`(name, query)`, in
    /// order), then the detail query reading them by name. The engine runs each stage, holds
    /// its rows as a table of that name, and runs the next; the results are those of
    /// [`Self::detail_sql`]. `may_hold` says whether a stage may be held (the engine declines
    /// one whose name a table already has, or that would not fit in memory); a stage it declines
    /// stays a CTE of the stages after it.
    pub fn staged(&self, mut may_hold: impl FnMut(&str) -> bool) -> Vec<Stage> {
        let steps = &self.plan.steps;
        let mut stages: Vec<Stage> = Vec::new();
        let mut held: Vec<usize> = Vec::new();
        // The steps before `upto` not held: the CTEs of the stage reading them.
        let unheld = |upto: usize, held: &[usize]| -> Vec<usize> {
            (0..upto).filter(|j| !held.contains(j)).collect()
        };
        let with = |ctes: &[usize]| -> String {
            if ctes.is_empty() {
                String::new()
            } else {
                let ctes: Vec<&str> = ctes.iter().map(|&j| self.rendered[j].as_str()).collect();
                format!("WITH {}\n", ctes.join(",\n"))
            }
        };
        let key = |stages: &[Stage], ctes: &[usize], select: &str| -> String {
            let body = format!(
                "{:?} {select}",
                ctes.iter()
                    .map(|&j| (&steps[j].name, &steps[j].kind))
                    .collect::<Vec<_>>()
            );
            match stages.last() {
                Some(before) => format!("{}\n;\n{body}", before.key),
                None => body,
            }
        };
        for (i, s) in steps.iter().enumerate() {
            if s.name == "detail" {
                continue;
            }
            let readers: usize = steps[i + 1..]
                .iter()
                .map(|later| later.kind.reads().iter().filter(|r| **r == s.name).count())
                .sum();
            if !(readers >= 2 || s.kind.held()) || !may_hold(&s.name) {
                continue;
            }
            // The units, and the candidates they are made from, in the detail's order: the
            // narrow rows sorted before the wide.
            let order = matches!(s.name.as_str(), "units" | "candidates").then_some(DETAIL_ORDER);
            let ctes = unheld(i + 1, &held);
            let select = format!("SELECT * FROM {}", s.name);
            stages.push(Stage {
                name: s.name.clone(),
                sql: format!("{}\n{}{select}", self.header, with(&ctes)),
                key: key(&stages, &ctes, &select),
                order,
            });
            held.push(i);
        }
        let ctes = unheld(steps.len(), &held);
        let select = self.detail_select();
        stages.push(Stage {
            name: "detail".into(),
            sql: format!("{}\n{}{select}", self.header, with(&ctes)),
            key: key(&stages, &ctes, &select),
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
        self.plan
            .population
            .as_ref()
            .map(|p| render::population(&self.plan, p, detail_table, filter))
    }
}

/// Compile a measure for a period against the catalog: resolve its names, plan its steps, render
/// the plan as SQL.
pub fn compile(m: &Measure, catalog: &Catalog, period: &Period) -> Result<CompiledMeasure> {
    let plan = planner::plan(m, catalog, period)?;
    Ok(CompiledMeasure::from(plan))
}

impl From<MeasurePlan> for CompiledMeasure {
    fn from(plan: MeasurePlan) -> Self {
        let header = render::header(&plan);
        let rendered: Vec<String> = plan.steps.iter().map(ir::Step::render).collect();
        let n = &plan.numerators;
        CompiledMeasure {
            id: plan.id.clone(),
            period: plan.period,
            ctes: format!("{header}\nWITH {}", rendered.join(",\n")),
            rendered,
            header,
            components: plan.components.clone(),
            stratify: plan.stratify.clone(),
            age_bands: plan.age_bands.iter().map(|b| b.label.clone()).collect(),
            numerators: n.len(),
            numerator_names: n.iter().map(|x| x.name.clone()).collect(),
            numerator_is_first: n.iter().map(ir::Numerator::is_first).collect(),
            numerator_subset: n.iter().map(|x| x.subset.is_some()).collect(),
            numerator_whole: n.iter().map(|x| x.whole).collect(),
            not_reported: plan.not_reported.clone(),
            plan,
        }
    }
}
