//! Cohort definitions compiled to SQL over the building blocks: one statement for the evidence
//! (every row that counts toward any criterion, in its look-back), one for the last row before
//! the look-back of criteria met by an absence, and one for the population on the as-of date.
//! Names are resolved against the catalog here, so a wrong block, column or value set is an
//! error at its line and column in the definition file.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;

use super::model::{Criterion, Definition, Threshold};
use crate::compile::Catalog;
use crate::error::{Error, Result};
use crate::measure::Located;

/// The SQL of a cohort run, for one as-of date.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledCohorts {
    pub as_of: NaiveDate,
    /// Per building block read: a table name and the query filling it, one scan of the block
    /// keeping the rows any criterion may count, with a flag per criterion (`c<k>`, and `l<k>`
    /// for criteria met by an absence: any such row up to the as-of date). Many criteria read
    /// one block (eleven read `claim_diagnoses`); each would otherwise scan it again.
    pub narrow: Vec<(String, String)>,
    /// Over the narrowed tables: `member_id, criterion, evidence_id, evidence_date,
    /// evidence_code`, a row per piece of evidence; `criterion` is the criterion's place among
    /// every definition's criteria in order ([`criteria`]), a small integer that groups fast.
    pub evidence: String,
    /// Over the narrowed tables: `member_id, criterion, last_date`, for criteria met
    /// by an absence, the latest qualifying row on or before the as-of date, whenever it was.
    /// `None` when there are none.
    pub last_seen: Option<String>,
    /// `member_id, mco, hhp, population, hh_since, opted_out_on`: members eligible for Medicaid
    /// on the as-of date, with their Health Home assignment on it, if any.
    pub population: String,
}

/// Every definition's criteria in order, as (definition, criterion): the `criterion` numbers
/// of the evidence.
pub fn criteria(defs: &[Definition]) -> Vec<(&Definition, &Criterion)> {
    defs.iter()
        .flat_map(|d| d.criteria().iter().map(move |c| (d, c)))
        .collect()
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

struct Resolver<'a> {
    def: &'a Definition,
    catalog: &'a Catalog,
}

impl Resolver<'_> {
    fn err(&self, at: &Located<String>, message: String, hint: Option<String>) -> Error {
        Error::Definition {
            path: self.def.path().to_path_buf(),
            line: at.line,
            column: at.column,
            message,
            hint,
        }
    }

    fn block(&self, name: &Located<String>) -> Result<&[(String, DataType)]> {
        crate::compile::block_columns(self.catalog, self.def.path(), name)
    }

    fn column<'c>(
        &self,
        block: &Located<String>,
        columns: &'c [(String, DataType)],
        col: &Located<String>,
    ) -> Result<&'c DataType> {
        crate::compile::block_column(self.def.path(), block, columns, col)
    }

    /// One criterion's columns (date, id, shown code) and its condition for `[from, to]` (no
    /// lower bound when `from` is `None`), over the block aliased `b`.
    fn parts(&self, c: &Criterion, from: Option<NaiveDate>, to: NaiveDate) -> Result<Parts> {
        let columns = self.block(&c.block)?;
        let t = self.column(&c.block, columns, &c.date)?;
        if t != &DataType::Date32 {
            return Err(self.err(
                &c.date,
                format!("column `{}` is {t}, not a date", c.date.value),
                None,
            ));
        }
        let default_id = Located {
            value: "source_id".to_string(),
            line: c.block.line,
            column: c.block.column,
        };
        let id = c.id.as_ref().unwrap_or(&default_id);
        self.column(&c.block, columns, id).map_err(|e| match (&c.id, e) {
            (None, Error::Definition { path, line, column, .. }) => Error::Definition {
                path,
                line,
                column,
                message: format!(
                    "building block `{}` has no `source_id`: name the column to count with `id:`",
                    c.block.value
                ),
                hint: None,
            },
            (_, e) => e,
        })?;
        let show = match &c.show {
            Some(s) => {
                self.column(&c.block, columns, s)?;
                format!("CAST(b.{} AS VARCHAR)", ident(&s.value))
            }
            None => "CAST(NULL AS VARCHAR)".into(),
        };
        let mut conditions = vec![match from {
            Some(from) => format!(
                "b.{d} BETWEEN {} AND {}",
                date(from),
                date(to),
                d = ident(&c.date.value)
            ),
            None => format!("b.{} <= {}", ident(&c.date.value), date(to)),
        }];
        if let Some(f) = &c.filter {
            let sql = crate::compile::filter::check(
                self.def.path(),
                f,
                &c.block.value,
                "b",
                columns,
                &self.catalog.value_sets,
            )?;
            conditions.push(format!("coalesce(({sql}), false)"));
        }
        Ok(Parts {
            date: format!("b.{}", ident(&c.date.value)),
            id: format!("CAST(b.{} AS VARCHAR)", ident(&id.value)),
            show,
            condition: conditions.join(" AND "),
        })
    }
}

struct Parts {
    date: String,
    id: String,
    show: String,
    condition: String,
}

/// The columns of one narrowed table: each distinct expression once, by alias.
#[derive(Default)]
struct Narrowed {
    columns: Vec<(String, String)>,
    conditions: Vec<String>,
}

impl Narrowed {
    fn alias(&mut self, expr: &str, prefix: &str) -> String {
        if let Some((_, a)) = self.columns.iter().find(|(e, _)| e == expr) {
            return a.clone();
        }
        let a = format!("{prefix}{}", self.columns.len());
        self.columns.push((expr.to_string(), a.clone()));
        a
    }
}

/// Compile every definition for the look-backs ending on `as_of`.
pub fn compile(
    defs: &[Definition],
    catalog: &Catalog,
    as_of: NaiveDate,
) -> Result<CompiledCohorts> {
    let mut blocks: Vec<(String, Narrowed)> = Vec::new();
    let mut evidence = Vec::new();
    let mut last_seen = Vec::new();
    let mut k = 0usize;
    for def in defs {
        let r = Resolver { def, catalog };
        for c in def.criteria() {
            let from = c.lookback.unwrap_or(def.lookback()).start(as_of);
            let j = match blocks.iter().position(|(b, _)| *b == c.block.value) {
                Some(j) => j,
                None => {
                    blocks.push((c.block.value.clone(), Narrowed::default()));
                    blocks.len() - 1
                }
            };
            let table = format!("hhq_cohort_rows_{j}");
            let n = &mut blocks[j].1;
            let p = r.parts(c, Some(from), as_of)?;
            let (d, i, s) = (
                n.alias(&p.date, "d"),
                n.alias(&p.id, "i"),
                n.alias(&p.show, "s"),
            );
            let flag = n.alias(&p.condition, "c");
            n.conditions.push(p.condition);
            evidence.push(format!(
                "SELECT member_id, CAST({k} AS INT) AS criterion, {i} AS evidence_id, \
                 {d} AS evidence_date, {s} AS evidence_code FROM {table} WHERE {flag}"
            ));
            if matches!(c.threshold, Threshold::FewerThan(_)) {
                let all = r.parts(c, None, as_of)?;
                let flag = n.alias(&all.condition, "c");
                n.conditions.push(all.condition);
                last_seen.push(format!(
                    "SELECT member_id, CAST({k} AS INT) AS criterion, max({d}) AS last_date \
                     FROM {table} WHERE {flag} GROUP BY member_id"
                ));
            }
            k += 1;
        }
    }
    let narrow = blocks
        .iter()
        .enumerate()
        .map(|(j, (block, n))| {
            let columns: Vec<String> = n
                .columns
                .iter()
                .map(|(e, a)| format!("{e} AS {a}"))
                .collect();
            (
                format!("hhq_cohort_rows_{j}"),
                format!(
                    "SELECT b.member_id, {} FROM {} b WHERE {}",
                    columns.join(", "),
                    ident(block),
                    n.conditions
                        .iter()
                        .map(|c| format!("({c})"))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                ),
            )
        })
        .collect();
    if evidence.is_empty() {
        return Err(Error::Usage(
            "no cohort or risk-flag definitions (measures/cohorts/*.yaml)".into(),
        ));
    }
    let a = date(as_of);
    // The interval covering the as-of date; of several, the one ending latest (as member months
    // do), then by id, so the answer never depends on row order.
    let population = format!(
        "WITH elig AS (\
           SELECT member_id, mco_id, row_number() OVER (PARTITION BY member_id \
             ORDER BY end_date DESC, start_date DESC, mco_id) AS k \
           FROM medicaid_enrollment WHERE {a} BETWEEN start_date AND end_date), \
         hh AS (\
           SELECT member_id, mco_id, hhp_id, population, start_date, row_number() OVER (PARTITION BY member_id \
             ORDER BY end_date DESC, start_date DESC, hhp_id) AS k \
           FROM hh_enrollment WHERE {a} BETWEEN start_date AND end_date), \
         opted AS (\
           SELECT member_id, max(end_date) AS opted_out_on FROM enrollment \
           WHERE span_type = 'health_home' AND opted_out AND end_date < {a} GROUP BY member_id) \
         SELECT e.member_id, coalesce(h.mco_id, e.mco_id) AS mco, h.hhp_id AS hhp, \
           h.population, h.start_date AS hh_since, o.opted_out_on \
         FROM elig e LEFT JOIN hh h ON h.member_id = e.member_id AND h.k = 1 \
         LEFT JOIN opted o ON o.member_id = e.member_id \
         WHERE e.k = 1"
    );
    Ok(CompiledCohorts {
        as_of,
        narrow,
        evidence: evidence.join("\nUNION ALL\n"),
        last_seen: (!last_seen.is_empty()).then(|| last_seen.join("\nUNION ALL\n")),
        population,
    })
}
