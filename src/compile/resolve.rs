//! Resolving: the names a measure uses (building blocks, columns, filters, value sets, earlier
//! numerators) looked up in the [`Catalog`], each mistake an error at its line and column in the
//! measure's file. What comes out ([`Arm`]) names only things that exist, in the types they need.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;

use super::{Catalog, blocks, filter};
use crate::error::{Error, Result};
use crate::measure::{AfterAt, Aggregate, Condition, CountBy, Located, Measure, Window};

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

/// One arm of a condition, resolved: every name exists, the filter is checked SQL over the
/// block aliased `b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub block: String,
    pub date: String,
    pub window: Option<Window>,
    /// Rows dated in the measurement period (`window: period`).
    pub in_period: bool,
    /// The checked filter, columns qualified by `b`, value sets expanded.
    pub filter: Option<String>,
    /// The column kept as evidence (`source_id` when the block has one and none is named).
    pub id: Option<String>,
    /// The column summed (`sum:`).
    pub value: Option<String>,
    /// The column that must equal the unit's id (`key:`).
    pub key: Option<String>,
    /// The window counts from the first date of this earlier numerator's step, not the anchor.
    pub after: Option<String>,
    /// ...from the day that step's first row ends (`after: {…, at: end}`).
    pub after_end: bool,
    /// The column holding a row's last day (`end:`), read when a later numerator counts from it.
    pub end: Option<String>,
    /// Every value it sums is a whole number (it counts, or sums an integer column).
    pub whole: bool,
    /// The provider column (`by: day_provider`).
    pub provider: Option<String>,
    /// The checked filter a row passes to satisfy `at_least:` alone (`suffices:`).
    pub suffices: Option<String>,
    /// The date column of the unit's event the window counts from (`of:`).
    pub of: Option<String>,
    /// The columns of the unit's event the arm reads (`unit.<column>` in its filters, `of:`).
    pub unit_columns: Vec<String>,
}

/// Resolves one measure's names against a catalog.
pub(crate) struct Resolver<'a> {
    pub m: &'a Measure,
    pub catalog: &'a Catalog,
}

impl Resolver<'_> {
    pub fn err(&self, at: &Located<String>, message: String, hint: Option<String>) -> Error {
        Error::Definition {
            path: self.m.path.clone(),
            line: at.line,
            column: at.column,
            message,
            hint,
        }
    }

    pub fn block(&self, name: &Located<String>) -> Result<&[(String, DataType)]> {
        block_columns(self.catalog, &self.m.path, name)
    }

    pub fn column<'c>(
        &self,
        block: &Located<String>,
        columns: &'c [(String, DataType)],
        col: &Located<String>,
    ) -> Result<&'c DataType> {
        block_column(&self.m.path, block, columns, col)
    }

    pub fn date_column(
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

    /// The events' block and its columns, for filters that name the unit's own columns.
    fn unit(&self) -> Option<(&str, &[(String, DataType)])> {
        let e = self.m.events.as_ref()?;
        let columns = self.catalog.blocks.get(&e.block.value)?;
        Some((e.block.value.as_str(), columns.as_slice()))
    }

    /// A condition's filter as checked SQL over the block `b`, which may name the unit's own
    /// columns (`unit.<column>`); the SQL and the unit columns it names.
    fn condition_filter(
        &self,
        f: &Located<String>,
        block: &str,
        columns: &[(String, DataType)],
    ) -> Result<(String, Vec<String>)> {
        filter::check_with_unit(
            &self.m.path,
            f,
            block,
            "b",
            columns,
            &self.catalog.value_sets,
            self.unit(),
        )
    }

    /// A filter as checked SQL: columns qualified by `alias`, value sets expanded.
    pub fn filter(
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

    /// A condition's arms, one per `any_of:` arm; `steps` names the step of each earlier
    /// numerator (for `after:`).
    pub fn condition(&self, c: &Condition, steps: &BTreeMap<&str, String>) -> Result<Vec<Arm>> {
        c.arms().map(|arm| self.arm(arm, steps, c.by)).collect()
    }

    fn arm(&self, c: &Condition, steps: &BTreeMap<&str, String>, by: CountBy) -> Result<Arm> {
        let columns = self.block(&c.block)?;
        if !columns.iter().any(|(n, _)| n == "member_id") {
            return Err(self.err(
                &c.block,
                format!("building block `{}` has no member_id column", c.block.value),
                None,
            ));
        }
        self.date_column(&c.block, columns, &c.date)?;
        let mut unit_columns: Vec<String> = Vec::new();
        let mut read = |(sql, used): (String, Vec<String>)| {
            for u in used {
                if !unit_columns.contains(&u) {
                    unit_columns.push(u);
                }
            }
            sql
        };
        let filter = c
            .filter
            .as_ref()
            .map(|f| {
                self.condition_filter(f, &c.block.value, columns)
                    .map(&mut read)
            })
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
            Some(a) => Some(
                steps
                    .get(a.value.as_str())
                    .ok_or_else(|| {
                        self.err(
                            a,
                            format!("`after: {}` names no numerator compiled before", a.value),
                            None,
                        )
                    })?
                    .clone(),
            ),
            None => None,
        };
        let provider = match (&c.provider, by) {
            (Some(p), CountBy::DayProvider) => {
                self.column(&c.block, columns, p)?;
                Some(p.value.clone())
            }
            (Some(p), _) => {
                return Err(self.err(
                    p,
                    "`provider:` is read only when `at_least:` counts `by: day_provider`".into(),
                    None,
                ));
            }
            (None, CountBy::DayProvider) => {
                return Err(self.err(
                    &c.block,
                    format!(
                        "`by: day_provider` needs `provider:`, the column of `{}` naming the provider",
                        c.block.value
                    ),
                    None,
                ));
            }
            (None, _) => None,
        };
        let suffices = c
            .suffices
            .as_ref()
            .map(|f| {
                self.condition_filter(f, &c.block.value, columns)
                    .map(&mut read)
            })
            .transpose()?;
        let of = match &c.of {
            Some(o) => {
                let (events, unit) = self
                    .unit()
                    .ok_or_else(|| self.err(o, "`of:` applies to `basis: events`".into(), None))?;
                let events = Located {
                    value: events.to_string(),
                    line: o.line,
                    column: o.column,
                };
                self.date_column(&events, unit, o)?;
                if !unit_columns.contains(&o.value) {
                    unit_columns.push(o.value.clone());
                }
                Some(o.value.clone())
            }
            None => None,
        };
        let end = match &c.end {
            Some(e) => {
                self.date_column(&c.block, columns, e)?;
                Some(e.value.clone())
            }
            None => None,
        };
        Ok(Arm {
            after_end: c.after_at == AfterAt::End,
            end,
            of,
            unit_columns,
            provider,
            suffices,
            block: c.block.value.clone(),
            date: c.date.value.clone(),
            window: c.window.as_ref().map(|w| w.value),
            in_period: c.in_period.is_some(),
            filter,
            id,
            value,
            key,
            after,
            whole,
        })
    }
}
