//! Small extracts from CSV text: any subset of an extract's columns, the rest null. Test decks and
//! hand-built examples are written this way; empty cells are nulls, dates are `YYYY-MM-DD`, a
//! list of diagnoses is `|`-separated.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, new_null_array,
};
use datafusion::parquet::arrow::ArrowWriter;

use super::contract::{ColumnType, Extract};
use crate::error::{Error, Result};
use crate::output::write_atomic;

/// The header and records of CSV text, cells trimmed; `path` names it in errors.
pub(crate) fn read_csv(path: &Path, text: &str) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::contract(path, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let records = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::contract(path, format!("malformed CSV: {e}")))?;
    Ok((headers, records))
}

/// Parse CSV text (header row first) into a batch with the extract's contract schema.
/// `path` names the source in errors; rows are numbered from 1 after the header.
pub fn csv_to_batch(path: &Path, extract: &Extract, text: &str) -> Result<RecordBatch> {
    let (headers, records) = read_csv(path, text)?;
    for h in &headers {
        if extract.column(h).is_none() {
            return Err(Error::contract(
                path,
                format!("column `{h}` is not in the {} contract", extract.name),
            ));
        }
    }

    let mut arrays: Vec<ArrayRef> = Vec::new();
    for col in extract.columns {
        let Some(idx) = headers.iter().position(|h| h == col.name) else {
            arrays.push(new_null_array(&col.ty.arrow(), records.len()));
            continue;
        };
        let cells: Vec<Option<&str>> = records
            .iter()
            .map(|r| r.get(idx).filter(|s| !s.is_empty()))
            .collect();
        let bad = |row: usize, v: &str| {
            Error::contract(
                path,
                format!(
                    "row {}: column `{}`: {v:?} is not a {}",
                    row + 1,
                    col.name,
                    col.ty.name()
                ),
            )
        };
        let array: ArrayRef = match col.ty {
            ColumnType::String => Arc::new(StringArray::from(cells.clone())),
            ColumnType::Date => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                let mut v = Vec::with_capacity(cells.len());
                for (row, c) in cells.iter().enumerate() {
                    v.push(match c {
                        None => None,
                        Some(s) => Some(
                            (NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad(row, s))?
                                - epoch)
                                .num_days() as i32,
                        ),
                    });
                }
                Arc::new(Date32Array::from(v))
            }
            ColumnType::Int32 => {
                let mut v = Vec::with_capacity(cells.len());
                for (row, c) in cells.iter().enumerate() {
                    v.push(match c {
                        None => None,
                        Some(s) => Some(s.parse::<i32>().map_err(|_| bad(row, s))?),
                    });
                }
                Arc::new(Int32Array::from(v))
            }
            ColumnType::Double => {
                let mut v = Vec::with_capacity(cells.len());
                for (row, c) in cells.iter().enumerate() {
                    v.push(match c {
                        None => None,
                        Some(s) => Some(s.parse::<f64>().map_err(|_| bad(row, s))?),
                    });
                }
                Arc::new(Float64Array::from(v))
            }
            ColumnType::Boolean => {
                let mut v = Vec::with_capacity(cells.len());
                for (row, c) in cells.iter().enumerate() {
                    v.push(match c {
                        None => None,
                        Some(s) => Some(s.parse::<bool>().map_err(|_| bad(row, s))?),
                    });
                }
                Arc::new(BooleanArray::from(v))
            }
            ColumnType::StringList => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for c in &cells {
                    match c {
                        None => b.append_null(),
                        Some(s) => {
                            for dx in s.split('|') {
                                b.values().append_value(dx.trim());
                            }
                            b.append(true);
                        }
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    // A test deck may break the not-null rules on purpose: they are checked on opening.
    Ok(RecordBatch::try_new(extract.nullable_schema(), arrays)?)
}

/// Write one batch as a Parquet file, atomically.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    write_atomic(path, &buf)
}
