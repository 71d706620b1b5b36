//! Filter expressions (`where:`) are untrusted input: one SQL expression over the columns of one
//! building block. They may compare, combine and call functions, and test value sets with
//! `in_value_set(column, 'name')`; they may not hold a subquery, name a table or be a statement.

use std::ops::ControlFlow;
use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Value, Visit, Visitor,
    visit_expressions_mut,
};

use super::blocks::{expand_value_sets, suggest};
use super::depth::{self, Refused, TooDeep};
use crate::error::{Error, Result};
use crate::measure::Located;
use crate::measure::valueset::ValueSets;

/// Check a filter and return its SQL with every column qualified by `alias` (so a block column
/// never clashes with one of the unit it is joined to) and value sets expanded.
pub fn check(
    path: &Path,
    filter: &Located<String>,
    block: &str,
    alias: &str,
    columns: &[(String, DataType)],
    sets: &ValueSets,
) -> Result<String> {
    check_with_unit(path, filter, block, alias, columns, sets, None).map(|(sql, _)| sql)
}

/// The prefix of the unit's own columns in the compiled query: `unit.substance` in a filter is
/// `c.unit_substance` there.
pub const UNIT_PREFIX: &str = "unit_";

/// [`check`], where the filter may also name the unit's own columns as `unit.<column>` (the
/// events' block, `unit`: its name and columns): they are written `c.unit_<column>`, and the ones
/// named are returned with the SQL.
pub fn check_with_unit(
    path: &Path,
    filter: &Located<String>,
    block: &str,
    alias: &str,
    columns: &[(String, DataType)],
    sets: &ValueSets,
    unit: Option<(&str, &[(String, DataType)])>,
) -> Result<(String, Vec<String>)> {
    let err = |message: String, hint: Option<String>| Error::Definition {
        path: path.to_path_buf(),
        line: filter.line,
        column: filter.column,
        message,
        hint,
    };
    let mut expr = depth::parse_expr(&filter.value).map_err(|e| match e {
        Refused::Parse(e) => err(
            format!("the `where` expression does not parse: {e}"),
            Some("write one SQL expression over the block's columns, e.g. `reached AND mode <> 'mail'`".into()),
        ),
        Refused::TooDeep(deep) => err(
            format!("the `where` expression of `{block}`: {}", deep.message()),
            Some(TooDeep::hint()),
        ),
    })?;

    struct Check<'a> {
        columns: &'a [(String, DataType)],
        sets: &'a ValueSets,
        unit: Option<(&'a str, &'a [(String, DataType)])>,
        problem: Option<(String, Option<String>)>,
    }
    impl Check<'_> {
        fn problem(&self, expr: &Expr) -> Option<(String, Option<String>)> {
            let cols = || {
                Some(format!(
                    "the columns are: {}",
                    self.columns
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Some((
                    "a `where` expression may not contain a subquery".into(),
                    None,
                )),
                Expr::Identifier(id) if !self.columns.iter().any(|(c, _)| c == &id.value) => {
                    Some((
                        format!("unknown column `{}`", id.value),
                        Some(format!(
                            "{}; {}",
                            suggest(&id.value, self.columns.iter().map(|(c, _)| c.as_str())),
                            cols().unwrap_or_default()
                        )),
                    ))
                }
                Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].value == "unit" => {
                    match self.unit {
                        None => Some((
                            format!(
                                "`unit.{}`: only a condition of `basis: events` has a unit with columns of its own",
                                parts[1].value
                            ),
                            None,
                        )),
                        Some((events, unit_columns)) => (!unit_columns
                            .iter()
                            .any(|(c, _)| c == &parts[1].value))
                        .then(|| {
                            (
                                format!(
                                    "`unit.{}`: the events' block `{events}` has no column `{}`",
                                    parts[1].value, parts[1].value
                                ),
                                Some(suggest(
                                    &parts[1].value,
                                    unit_columns.iter().map(|(c, _)| c.as_str()),
                                )),
                            )
                        }),
                    }
                }
                Expr::CompoundIdentifier(parts) => Some((
                    format!(
                        "`{}`: name columns without a table or alias",
                        parts
                            .iter()
                            .map(|p| p.value.as_str())
                            .collect::<Vec<_>>()
                            .join(".")
                    ),
                    cols(),
                )),
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("in_value_set") => {
                    // Every name after the column: a quoted name of a known set.
                    let names: Option<Vec<String>> = match &f.args {
                        FunctionArguments::List(list) if list.args.len() >= 2 => list.args[1..]
                            .iter()
                            .map(|a| match a {
                                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => {
                                    match &v.value {
                                        Value::SingleQuotedString(s) => Some(s.clone()),
                                        _ => None,
                                    }
                                }
                                _ => None,
                            })
                            .collect(),
                        _ => None,
                    };
                    match names {
                        None => Some((
                            "in_value_set takes a column and quoted value-set names".into(),
                            Some("in_value_set(principal_dx, 'mental_illness_dx')".into()),
                        )),
                        Some(names) => {
                            names
                                .into_iter()
                                .find(|n| self.sets.get(n).is_none())
                                .map(|n| {
                                    (
                                        format!("unknown value set `{n}`"),
                                        Some(suggest(&n, self.sets.names())),
                                    )
                                })
                        }
                    }
                }
                _ => None,
            }
        }
    }
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match self.problem(expr) {
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
        sets,
        unit,
        problem: None,
    };
    let _ = expr.visit(&mut check);
    if let Some((p, hint)) = check.problem {
        return Err(err(
            format!("in the `where` expression of `{block}`: {p}"),
            hint,
        ));
    }
    let mut used: Vec<String> = Vec::new();
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Identifier(id) => {
                *e = Expr::CompoundIdentifier(vec![Ident::new(alias), id.clone()]);
            }
            Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].value == "unit" => {
                let column = parts[1].value.clone();
                *e = Expr::CompoundIdentifier(vec![
                    Ident::new("c"),
                    Ident::with_quote('"', format!("{UNIT_PREFIX}{column}")),
                ]);
                if !used.contains(&column) {
                    used.push(column);
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    // Value sets expand as in building blocks.
    let sql = expand_value_sets(path, &expr.to_string(), sets).map_err(|e| match e {
        Error::Definition { message, hint, .. } => err(message, hint),
        other => other,
    })?;
    // Planned as a run plans it, so what would fail there fails here, at the filter.
    let unit_columns: Vec<(String, DataType)> = unit
        .map(|(_, cols)| {
            cols.iter()
                .filter(|(c, _)| used.contains(c))
                .map(|(c, t)| (format!("{UNIT_PREFIX}{c}"), t.clone()))
                .collect()
        })
        .unwrap_or_default();
    let unit = (!unit_columns.is_empty()).then_some(("c", unit_columns.as_slice()));
    super::filter_plan::filter(&sql, alias, columns, unit)
        .map_err(|(p, hint)| err(format!("in the `where` expression of `{block}`: {p}"), hint))?;
    Ok((sql, used))
}
