//! Opening a data directory: find each extract's files, hold every file to the contract (columns,
//! types, nulls, coded values), then register the extract in a DataFusion session under its
//! contract name with the contract's types.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::contract::{Column, ColumnType, EXTRACTS, Extract};
use crate::error::{Error, Result};

/// What was opened for one extract: its files and row count, for run summaries and manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedExtract {
    pub name: &'static str,
    /// The `.parquet` file, or the directory of part files.
    pub location: PathBuf,
    pub files: Vec<PathBuf>,
    pub rows: u64,
}

/// Locate the files of one extract in `dir`: `NAME.parquet`, or every `*.parquet` in `NAME/`.
pub fn locate(dir: &Path, extract: &Extract) -> Result<(PathBuf, Vec<PathBuf>)> {
    let file = dir.join(format!("{}.parquet", extract.name));
    let folder = dir.join(extract.name);
    match (file.is_file(), folder.is_dir()) {
        (true, true) => Err(Error::contract(
            dir,
            format!(
                "both {}.parquet and {}/ exist; keep one so the extract is unambiguous",
                extract.name, extract.name
            ),
        )),
        (true, false) => Ok((file.clone(), vec![file])),
        (false, true) => {
            let mut parts = Vec::new();
            for entry in std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))? {
                let path = entry.map_err(|e| Error::io(&folder, e))?.path();
                if path.extension().is_some_and(|x| x == "parquet") {
                    parts.push(path);
                }
            }
            parts.sort();
            if parts.is_empty() {
                return Err(Error::contract(
                    &folder,
                    format!(
                        "the {} extract directory holds no .parquet file",
                        extract.name
                    ),
                ));
            }
            Ok((folder, parts))
        }
        (false, false) => Err(Error::contract(
            dir,
            format!(
                "missing extract `{}`: expected {} or a directory {}/ of Parquet files",
                extract.name,
                file.display(),
                folder.display()
            ),
        )),
    }
}

/// Check a file's schema against the contract: every contract column present with an accepted
/// type. Extra columns are allowed.
pub fn check_schema(path: &Path, extract: &Extract, schema: &Schema) -> Result<()> {
    for col in extract.columns {
        let Ok(field) = schema.field_with_name(col.name) else {
            return Err(Error::contract(
                path,
                format!(
                    "missing column `{}` ({}) required by the {} extract contract",
                    col.name,
                    col.ty.name(),
                    extract.name
                ),
            ));
        };
        if !col.ty.accepts(field.data_type()) {
            return Err(Error::contract(
                path,
                format!(
                    "column `{}` has type {}, but the contract says {} ({})",
                    col.name,
                    field.data_type(),
                    col.ty.name(),
                    accepted_types(col.ty)
                ),
            ));
        }
    }
    Ok(())
}

fn accepted_types(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "Parquet BYTE_ARRAY/UTF8 string",
        ColumnType::Date => "Parquet INT32 annotated DATE; timestamps are not accepted",
        ColumnType::Int32 => "a 32-bit or narrower integer",
        ColumnType::Double => "a 32- or 64-bit float",
        ColumnType::Boolean => "Parquet BOOLEAN",
        ColumnType::StringList => "a Parquet LIST of strings",
    }
}

/// Scan the columns that carry row-level rules (not null, coded values) and fail on the first
/// rule broken, naming the row (1-based, in file order), how many rows break it, and the rule.
/// Returns the number of rows in the file.
pub fn check_rows(path: &Path, extract: &Extract) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::contract(path, format!("not a readable Parquet file: {e}")))?;
    let checked: Vec<&Column> = extract
        .columns
        .iter()
        .filter(|c| !c.nullable || c.allowed.is_some())
        .collect();
    let arrow_schema = builder.schema().clone();
    let roots: Vec<usize> = checked
        .iter()
        .filter_map(|c| arrow_schema.index_of(c.name).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| Error::contract(path, format!("not a readable Parquet file: {e}")))?;

    // Per checked column: (rows breaking the rule, first such row, first bad value).
    let mut broken: Vec<(u64, u64, Option<String>)> = vec![(0, 0, None); checked.len()];
    let mut offset: u64 = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::contract(path, format!("cannot read Parquet data: {e}")))?;
        for (i, col) in checked.iter().enumerate() {
            let array = batch
                .column_by_name(col.name)
                .ok_or_else(|| Error::contract(path, format!("missing column `{}`", col.name)))?;
            let strings = match col.allowed {
                Some(_) => Some(as_strings(array)?),
                None => None,
            };
            for row in 0..array.len() {
                let bad_value = if array.is_null(row) {
                    (!col.nullable).then_some(None)
                } else if let (Some(allowed), Some(s)) = (col.allowed, strings.as_ref()) {
                    let v = s.value(row);
                    (!allowed.contains(&v)).then(|| Some(v.to_string()))
                } else {
                    None
                };
                if let Some(value) = bad_value {
                    let entry = &mut broken[i];
                    if entry.0 == 0 {
                        entry.1 = offset + row as u64 + 1;
                        entry.2 = value;
                    }
                    entry.0 += 1;
                }
            }
        }
        offset += batch.num_rows() as u64;
    }
    for (col, (count, first, value)) in checked.iter().zip(broken) {
        if count == 0 {
            continue;
        }
        let rows = if count == 1 {
            "1 row".to_string()
        } else {
            format!("{count} rows")
        };
        let message = match value {
            None => format!(
                "row {first}: column `{}` is null, but the contract says it may not be ({rows} in all)",
                col.name
            ),
            Some(v) => format!(
                "row {first}: column `{}` has value {v:?}, which is not one of {} ({rows} in all)",
                col.name,
                col.allowed
                    .unwrap_or_default()
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::contract(path, message));
    }
    Ok(offset)
}

fn as_strings(array: &ArrayRef) -> Result<StringArray> {
    let utf8 = cast(array, &DataType::Utf8)?;
    Ok(utf8
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 yields a StringArray")
        .clone())
}

/// Open one extract: check every file, then register it in `ctx` as a view named after the
/// extract that exposes the contract columns with the contract's types (plus any extra columns).
pub async fn open_extract(
    ctx: &SessionContext,
    dir: &Path,
    extract: &'static Extract,
) -> Result<OpenedExtract> {
    let (location, files) = locate(dir, extract)?;
    let mut rows = 0;
    for file in &files {
        let f = File::open(file).map_err(|e| Error::io(file, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| Error::contract(file, format!("not a readable Parquet file: {e}")))?;
        check_schema(file, extract, builder.schema())?;
        rows += check_rows(file, extract)?;
    }

    let raw = format!("{}__raw", extract.name);
    let location_str = location
        .to_str()
        .ok_or_else(|| Error::contract(&location, "the path is not valid UTF-8; rename it"))?;
    ctx.register_parquet(&raw, location_str, ParquetReadOptions::default())
        .await?;
    let table_schema = ctx.table_provider(raw.as_str()).await?.schema();
    let mut select = Vec::new();
    for field in table_schema.fields() {
        let name = field.name();
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match extract.column(name) {
            Some(col) if needs_cast(col.ty, field.data_type()) => select.push(format!(
                "CAST({quoted} AS {}) AS {quoted}",
                sql_type(col.ty)
            )),
            _ => select.push(quoted),
        }
    }
    ctx.sql(&format!(
        "CREATE VIEW {} AS SELECT {} FROM {raw}",
        extract.name,
        select.join(", ")
    ))
    .await?;
    Ok(OpenedExtract {
        name: extract.name,
        location,
        files,
        rows,
    })
}

/// Strings stay in whatever string encoding DataFusion reads them as; other types are cast to
/// the contract's type so every query sees one type per column.
fn needs_cast(ty: ColumnType, found: &DataType) -> bool {
    match ty {
        ColumnType::String => matches!(found, DataType::Dictionary(..)),
        ColumnType::StringList => false,
        _ => found != &ty.arrow(),
    }
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String | ColumnType::StringList => "VARCHAR",
        ColumnType::Date => "DATE",
        ColumnType::Int32 => "INT",
        ColumnType::Double => "DOUBLE",
        ColumnType::Boolean => "BOOLEAN",
    }
}

/// Open all four extracts of a data directory.
pub async fn open_all(ctx: &SessionContext, dir: &Path) -> Result<Vec<OpenedExtract>> {
    if !dir.is_dir() {
        return Err(Error::contract(dir, "no such data directory"));
    }
    let mut opened = Vec::with_capacity(EXTRACTS.len());
    for extract in EXTRACTS {
        opened.push(open_extract(ctx, dir, extract).await?);
    }
    Ok(opened)
}

/// An empty table per extract with the contract schema, so that definitions can be checked and
/// compiled without data.
pub fn register_empty(ctx: &SessionContext) -> Result<()> {
    for extract in EXTRACTS {
        let table = datafusion::datasource::MemTable::try_new(extract.schema(), vec![vec![]])?;
        ctx.register_table(extract.name, Arc::new(table))?;
    }
    Ok(())
}
