//! The compiler: a checked [`Measure`] plus a [`Catalog`] of building blocks becomes one SQL
//! statement for a period. References are resolved here (block names, columns, filter
//! expressions), so a mistake is reported against the measure file before any query runs.
//!
//! The statement's result has one row per stratum: `stratifier`, `stratum`, `denominator`, and one
//! `num_<i>` column per component, in the measure's component order.

pub mod blocks;

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

use crate::error::{Error, Result};
use crate::measure::{Aggregate, Located, Measure, MonthRule, Stratifier, Unit};
use crate::period::Period;

/// The building blocks a measure may draw on, with their columns.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub blocks: BTreeMap<String, Vec<(String, DataType)>>,
}

/// A measure compiled for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMeasure {
    pub id: String,
    pub period: Period,
    pub sql: String,
    /// Component names and units, in `num_<i>` order.
    pub components: Vec<(String, Unit)>,
    pub stratify: Vec<Stratifier>,
    /// Age band labels in the measure's order (every one is reported, even when empty).
    pub age_bands: Vec<String>,
}

/// The block that holds Health Home enrolment intervals, and the columns member months need.
const ENROLLMENT_BLOCK: &str = "hh_enrollment";
const ENROLLMENT_COLUMNS: [&str; 6] = [
    "member_id",
    "start_date",
    "end_date",
    "mco_id",
    "hhp_id",
    "population",
];

impl Catalog {
    fn block<'a>(
        &'a self,
        m: &Measure,
        name: &Located<String>,
    ) -> Result<&'a Vec<(String, DataType)>> {
        self.blocks
            .get(&name.value)
            .ok_or_else(|| Error::Definition {
                path: m.path.clone(),
                line: name.line,
                column: name.column,
                message: format!("unknown building block `{}`", name.value),
                hint: Some(format!(
                    "{} (building blocks are the .sql files of queries/)",
                    blocks::suggest(&name.value, self.blocks.keys().map(String::as_str))
                )),
            })
    }
}

fn located_error(
    m: &Measure,
    at: &Located<String>,
    message: String,
    hint: Option<String>,
) -> Error {
    Error::Definition {
        path: m.path.clone(),
        line: at.line,
        column: at.column,
        message,
        hint,
    }
}

/// Check a filter expression: it must parse as one SQL expression, name only columns of its
/// block, and contain no subquery (a measure file may not read other tables).
fn check_filter(
    m: &Measure,
    filter: &Located<String>,
    block: &str,
    columns: &[(String, DataType)],
) -> Result<()> {
    let dialect = GenericDialect {};
    let expr = Parser::new(&dialect)
        .try_with_sql(&filter.value)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| {
            located_error(
                m,
                filter,
                format!("the `where` expression does not parse: {e}"),
                Some("write one SQL expression over the block's columns, e.g. `reached AND mode <> 'mail'`".into()),
            )
        })?;

    struct Check<'a> {
        columns: &'a [(String, DataType)],
        problem: Option<String>,
    }
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            let problem = match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    Some("a `where` expression may not contain a subquery".to_string())
                }
                Expr::Identifier(id) if !self.columns.iter().any(|(c, _)| c == &id.value) => {
                    Some(format!("unknown column `{}`", id.value))
                }
                Expr::CompoundIdentifier(parts) => Some(format!(
                    "`{}`: name columns without a table or alias",
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                )),
                _ => None,
            };
            match problem {
                Some(p) => {
                    self.problem = Some(p);
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        }
    }
    let mut check = Check {
        columns,
        problem: None,
    };
    let _ = expr.visit(&mut check);
    match check.problem {
        Some(p) => Err(located_error(
            m,
            filter,
            format!("in the `where` expression: {p}"),
            Some(format!(
                "the columns of `{block}` are: {}",
                columns
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
        None => Ok(()),
    }
}

fn date_lit(d: chrono::NaiveDate) -> String {
    format!("DATE '{d}'")
}

/// Compile a measure for a period against the catalog.
pub fn compile(m: &Measure, catalog: &Catalog, period: &Period) -> Result<CompiledMeasure> {
    let enrollment = catalog.blocks.get(ENROLLMENT_BLOCK).ok_or_else(|| {
        Error::Usage(format!(
            "member-month measures need the building block `{ENROLLMENT_BLOCK}` (queries/{ENROLLMENT_BLOCK}.sql)"
        ))
    })?;
    for col in ENROLLMENT_COLUMNS {
        if !enrollment.iter().any(|(c, _)| c == col) {
            return Err(Error::Usage(format!(
                "building block `{ENROLLMENT_BLOCK}` lacks column `{col}`"
            )));
        }
    }

    // Resolve every component's references before writing any SQL.
    for c in &m.components {
        let n = &c.numerator;
        let columns = catalog.block(m, &n.block)?;
        if !columns.iter().any(|(c, _)| c == "member_id") {
            return Err(located_error(
                m,
                &n.block,
                format!("building block `{}` has no member_id column", n.block.value),
                None,
            ));
        }
        match columns.iter().find(|(col, _)| col == &n.date.value) {
            None => {
                return Err(located_error(
                    m,
                    &n.date,
                    format!(
                        "building block `{}` has no column `{}`",
                        n.block.value, n.date.value
                    ),
                    Some(blocks::suggest(
                        &n.date.value,
                        columns.iter().map(|(c, _)| c.as_str()),
                    )),
                ));
            }
            Some((_, t)) if t != &DataType::Date32 => {
                return Err(located_error(
                    m,
                    &n.date,
                    format!("column `{}` is {t}, not a date", n.date.value),
                    None,
                ));
            }
            Some(_) => {}
        }
        if let Some(f) = &n.filter {
            check_filter(m, f, &n.block.value, columns)?;
        }
    }

    let months = period.months();
    let (first, last) = (months[0].0, months[months.len() - 1].1);
    let month_rows = months
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
        MonthRule::CountDay => "c.start_date <= mo.count_date AND c.end_date >= mo.count_date",
        MonthRule::AnyDay => "c.start_date <= mo.month_end AND c.end_date >= mo.month_start",
    };

    let age = "CAST(date_part('year', mm.count_date) - date_part('year', p.birth_date) AS INT) \
- CASE WHEN date_part('month', mm.count_date) * 100 + date_part('day', mm.count_date) \
< date_part('month', p.birth_date) * 100 + date_part('day', p.birth_date) THEN 1 ELSE 0 END";
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

    let mut ctes = vec![
        format!("months (month_start, month_end, count_date) AS (VALUES\n    {month_rows})"),
        format!(
            "member_months AS (\n  -- one row per member and month: the enrolment interval that covers the month, latest first\n  \
SELECT member_id, month_start, count_date, mco_id, hhp_id, population FROM (\n    \
SELECT c.member_id, mo.month_start, mo.count_date, c.mco_id, c.hhp_id, c.population,\n      \
row_number() OVER (PARTITION BY c.member_id, mo.month_start\n        \
ORDER BY c.end_date DESC, c.start_date DESC, c.hhp_id, c.mco_id, c.population) AS pick\n    \
FROM {ENROLLMENT_BLOCK} c JOIN months mo ON {covers}\n  ) WHERE pick = 1\n)"
        ),
        format!(
            "units AS (\n  -- the denominator: member months whose age falls in a band of the measure\n  \
SELECT * FROM (\n    SELECT member_id, month_start, mco, hhp, population, {band_case} AS age_band FROM (\n      \
SELECT mm.member_id, mm.month_start, coalesce(mm.mco_id, 'FFS') AS mco,\n        \
coalesce(mm.hhp_id, 'unknown') AS hhp, coalesce(mm.population, 'unknown') AS population,\n        \
{age} AS age\n      \
FROM member_months mm LEFT JOIN members p ON p.member_id = mm.member_id\n    )\n  ) WHERE age_band IS NOT NULL\n)"
        ),
    ];

    let mut detail_cols = Vec::new();
    let mut joins = Vec::new();
    for (i, c) in m.components.iter().enumerate() {
        let n = &c.numerator;
        let filter = n
            .filter
            .as_ref()
            .map(|f| format!(" AND ({})", f.value))
            .unwrap_or_default();
        ctes.push(format!(
            "n{i} AS (\n  -- numerator `{}`: {} rows of `{}` per member month\n  \
SELECT member_id, CAST(date_trunc('month', {date}) AS DATE) AS month_start, count(*) AS n\n  \
FROM {block}\n  WHERE {date} BETWEEN {} AND {}{filter}\n  GROUP BY 1, 2\n)",
            c.name.value,
            match n.aggregate {
                Aggregate::Count => "count of",
                Aggregate::Exists => "any",
            },
            n.block.value,
            date_lit(first),
            date_lit(last),
            date = n.date.value,
            block = n.block.value,
        ));
        detail_cols.push(match n.aggregate {
            Aggregate::Count => format!("coalesce(n{i}.n, 0) AS num_{i}"),
            Aggregate::Exists => format!("CASE WHEN n{i}.n IS NULL THEN 0 ELSE 1 END AS num_{i}"),
        });
        joins.push(format!(
            "LEFT JOIN n{i} ON n{i}.member_id = u.member_id AND n{i}.month_start = u.month_start"
        ));
    }
    ctes.push(format!(
        "detail AS (\n  SELECT u.*, {}\n  FROM units u\n  {}\n)",
        detail_cols.join(", "),
        joins.join("\n  ")
    ));

    let strata: Vec<&str> = m.stratify.iter().map(|s| s.name()).collect();
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
    let sums = (0..m.components.len())
        .map(|i| format!("sum(num_{i}) AS num_{i}"))
        .collect::<Vec<_>>()
        .join(", ");

    let sql = format!(
        "-- {} {} ({}), period {period}\nWITH {}\nSELECT {stratifier_case} AS stratifier,\n  \
{stratum_case} AS stratum,\n  count(*) AS denominator, {sums}\nFROM detail\nGROUP BY GROUPING SETS ({sets})\nORDER BY stratifier, stratum",
        m.id,
        m.version,
        m.title,
        ctes.join(",\n")
    );

    Ok(CompiledMeasure {
        id: m.id.clone(),
        period: *period,
        sql,
        components: m
            .components
            .iter()
            .map(|c| (c.name.value.clone(), c.unit))
            .collect(),
        stratify: m.stratify.clone(),
        age_bands: m.age_bands.iter().map(|b| b.label.clone()).collect(),
    })
}
