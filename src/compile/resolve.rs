//! Resolving: the names a measure uses (building blocks, columns, filters, value sets, earlier
//! numerators) looked up in the [`Catalog`], each mistake an error at its line and column in the
//! measure's file. What comes out ([`Arm`]) names only things that exist, in the types they need.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;

use super::{Catalog, blocks, filter};
use crate::error::{Error, Result};
use crate::measure::{Aggregate, Condition, CountBy, Located, Measure, Window};

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
    /// Every value it sums is a whole number (it counts, or sums an integer column).
    pub whole: bool,
    /// The provider column (`by: day_provider`).
    pub provider: Option<String>,
    /// The checked filter a row passes to satisfy `at_least:` alone (`suffices:`).
    pub suffices: Option<String>,
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
            .map(|f| self.filter(f, &c.block.value, "b", columns))
            .transpose()?;
        Ok(Arm {
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
