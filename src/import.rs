//! Importing extracts in other layouts (`hhq import`): a mapping YAML says, for each of the four
//! contract extracts, which source files (CSV or Parquet) feed it and how each contract column
//! comes from them: a source column, several (a list of diagnoses), a constant, a code
//! translation, a date format. Several sources may feed one extract (a T-MSIS Analytic File's
//! inpatient, other-services, long-term-care and pharmacy files all feed `claims`).
//!
//! Nothing is lost silently: a value the mapping cannot translate or parse becomes null and is
//! counted, by extract, source and column, with its first row and an example
//! (`import_report.csv`, for the data steward; the terminal shows counts only); source columns
//! no mapping reads are listed. The output is a data directory `hhq validate` and `hhq run` read,
//! written whole or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, ListBuilder,
    RecordBatch, StringBuilder,
};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::extract::contract::{Column, ColumnType, EXTRACTS, Extract};

/// How one contract column comes from a source row.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawColumn {
    /// A source column, taken as it is.
    Name(String),
    Spec(Spec),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// A source column.
    column: Option<String>,
    /// Several source columns, for a list (`other_dx`): the non-empty ones, in order.
    columns: Option<Vec<String>>,
    /// A constant, for every row.
    value: Option<String>,
    /// Source code → contract value (`""`: no value); a code not here is counted and left null.
    values: Option<BTreeMap<String, String>>,
    /// The source's date format (chrono's `%Y`, `%m`, `%d`, ...), for a date column.
    date_format: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// The file, relative to the source directory: `.csv` or `.parquet`.
    file: String,
    /// The default date format of this source's date columns.
    date_format: Option<String>,
    columns: BTreeMap<String, RawColumn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: String,
    #[allow(dead_code)]
    description: Option<String>,
    /// The default date format of every source (`%Y-%m-%d` when not given).
    date_format: Option<String>,
    extracts: BTreeMap<String, Vec<RawSource>>,
}

/// A checked mapping: for each contract extract, its sources.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub path: PathBuf,
    pub name: String,
    sources: Vec<(&'static Extract, Vec<Source>)>,
}

#[derive(Debug, Clone)]
struct Source {
    file: String,
    /// Per contract column, in contract order: how it is made (`None`: null).
    columns: Vec<Option<Spec>>,
    date_format: String,
}

/// The 1-based line of the first line of `text` at or after `from` that starts (after spaces)
/// with `key:`, for errors about a mapping's names (the YAML parser locates syntax errors).
fn line_of(text: &str, key: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:")) || t.starts_with(&format!("\"{key}\":"))
        })
        .map_or(1, |(i, _)| i + 1)
}

impl Mapping {
    /// Read and check a mapping file: every extract of the contract is fed, every contract
    /// column named exists, every column the contract requires is mapped, each column says one
    /// way to make it.
    pub fn load(path: &Path) -> Result<Mapping> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: RawMapping = serde_saphyr::from_str_with_options(
            &text,
            crate::measure::yaml_options(),
        )
        .map_err(|e| match crate::measure::yaml_error(path, &e) {
            Error::Definition {
                path,
                line,
                column,
                message,
                ..
            } if message.contains("RawColumn") => Error::Definition {
                path,
                line,
                column,
                message: "a column is made from a source column's name, or from a map \
                                  of `column`, `columns`, `value`, `values`, `date_format`"
                    .into(),
                hint: Some(
                    "quote codes YAML reads as booleans or numbers: \"N\", \"Y\", \"01\"".into(),
                ),
            },
            other => other,
        })?;
        let wrong = |line: usize, message: String, hint: Option<String>| Error::Definition {
            path: path.to_path_buf(),
            line,
            column: 1,
            message,
            hint,
        };
        for name in raw.extracts.keys() {
            if !EXTRACTS.iter().any(|e| e.name == name) {
                return Err(wrong(
                    line_of(&text, name, 1),
                    format!("no extract `{name}` in the contract"),
                    Some("the extracts are claims, contacts, members, enrollment".into()),
                ));
            }
        }
        let global_dates = raw.date_format.clone().unwrap_or_else(|| "%Y-%m-%d".into());
        let mut sources = Vec::new();
        for extract in EXTRACTS.iter().copied() {
            let Some(raws) = raw.extracts.get(extract.name) else {
                return Err(wrong(
                    line_of(&text, "extracts", 1),
                    format!("the mapping feeds no `{}` extract", extract.name),
                    Some("a data directory holds all four extracts".into()),
                ));
            };
            let at = line_of(&text, extract.name, line_of(&text, "extracts", 1));
            let mut checked = Vec::new();
            for s in raws {
                let from = line_of(&text, "file", at);
                for (name, how) in &s.columns {
                    let Some(col) = extract.column(name) else {
                        return Err(wrong(
                            line_of(&text, name, from),
                            format!("no column `{name}` in the {} contract", extract.name),
                            None,
                        ));
                    };
                    let spec = spec_of(how);
                    let ways = [
                        spec.column.is_some(),
                        spec.columns.is_some(),
                        spec.value.is_some(),
                    ]
                    .iter()
                    .filter(|w| **w)
                    .count();
                    if ways != 1 {
                        return Err(wrong(
                            line_of(&text, name, from),
                            format!(
                                "`{name}` needs one of `column`, `columns` or `value` ({ways} given)"
                            ),
                            None,
                        ));
                    }
                    if spec.columns.is_some() && col.ty != ColumnType::StringList {
                        return Err(wrong(
                            line_of(&text, name, from),
                            format!("`columns` makes a list; `{name}` is not one"),
                            Some("map it from one `column`".into()),
                        ));
                    }
                }
                let mut columns = Vec::new();
                for col in extract.columns {
                    let spec = s.columns.get(col.name).map(spec_of);
                    if spec.is_none() && !col.nullable {
                        return Err(wrong(
                            from,
                            format!(
                                "{} `{}` maps no `{}`, which the contract requires",
                                extract.name, s.file, col.name
                            ),
                            None,
                        ));
                    }
                    columns.push(spec);
                }
                checked.push(Source {
                    file: s.file.clone(),
                    columns,
                    date_format: s
                        .date_format
                        .clone()
                        .unwrap_or_else(|| global_dates.clone()),
                });
            }
            sources.push((extract, checked));
        }
        Ok(Mapping {
            path: path.to_path_buf(),
            name: raw.name,
            sources,
        })
    }
}

fn spec_of(how: &RawColumn) -> Spec {
    match how {
        RawColumn::Name(n) => Spec {
            column: Some(n.clone()),
            ..Spec::default()
        },
        RawColumn::Spec(s) => s.clone(),
    }
}

/// What an import set aside or left unread, for `import_report.csv`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub extract: String,
    pub file: String,
    /// The contract column (or, for `unread_column`, the source column).
    pub column: String,
    /// `unmapped_value`, `invalid_value` or `unread_column`.
    pub issue: String,
    pub rows: u64,
    /// 1-based data row of the source file (0 for `unread_column`).
    pub first_row: u64,
    /// The first value set aside (for the data steward; never printed on the terminal).
    pub example: String,
}

/// What an import wrote: rows per extract and the findings.
#[derive(Debug, Clone)]
pub struct Imported {
    pub rows: Vec<(&'static str, u64)>,
    pub findings: Vec<Finding>,
}

impl Imported {
    /// What `hhq import` tells: rows per extract, values set to null by issue, source columns
    /// not read, and where it wrote (with `mapping`'s name).
    pub fn told(&self, out: &Path, mapping: &str) -> crate::output::Told {
        let mut after: Vec<String> = self
            .rows
            .iter()
            .map(|(extract, rows)| format!("{extract}: {rows} rows"))
            .collect();
        let mut set_aside: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
        for f in self.findings.iter().filter(|f| f.rows > 0) {
            *set_aside.entry((&f.extract, &f.issue)).or_default() += f.rows;
        }
        for ((extract, issue), rows) in set_aside {
            after.push(format!(
                "{extract}: {rows} values set to null ({issue}); see import_report.csv"
            ));
        }
        let unread = self
            .findings
            .iter()
            .filter(|f| f.issue == "unread_column")
            .count();
        if unread > 0 {
            after.push(format!(
                "{unread} source columns not read; see import_report.csv"
            ));
        }
        after.push(format!("wrote {} (mapping {mapping})", out.display()));
        crate::output::Told {
            after,
            ..Default::default()
        }
    }
}

/// Rows are read, translated and written this many at a time: a source of any size is held a
/// chunk at a time (a state's TAF files run to tens of millions of lines).
const CHUNK_ROWS: usize = 65_536;

/// One source file, read a chunk of rows at a time as text cells (`None`: empty).
struct SourceRows {
    headers: Vec<String>,
    reader: Reader,
    path: PathBuf,
    /// Data rows read so far.
    read: u64,
}

enum Reader {
    Csv(csv::Reader<std::fs::File>),
    Parquet(datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader),
}

impl SourceRows {
    fn open(path: &Path) -> Result<SourceRows> {
        let (headers, reader) = if path.extension().is_some_and(|x| x == "parquet") {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let builder =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    file,
                )
                .map_err(|e| Error::contract(path, format!("not a readable Parquet file: {e}")))?;
            let headers = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let reader = builder.with_batch_size(CHUNK_ROWS).build()?;
            (headers, Reader::Parquet(reader))
        } else {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_path(path)
                .map_err(|e| Error::contract(path, format!("cannot read the CSV file: {e}")))?;
            let headers = reader
                .headers()
                .map_err(|e| Error::contract(path, format!("cannot read the CSV header: {e}")))?
                .iter()
                .map(str::to_string)
                .collect();
            (headers, Reader::Csv(reader))
        };
        Ok(SourceRows {
            headers,
            reader,
            path: path.to_path_buf(),
            read: 0,
        })
    }

    /// The next rows, up to [`CHUNK_ROWS`]; none at the end of the file.
    fn next_chunk(&mut self) -> Result<Vec<Vec<Option<String>>>> {
        let rows = match &mut self.reader {
            Reader::Csv(reader) => {
                let mut rows = Vec::new();
                for r in reader.records().take(CHUNK_ROWS) {
                    let r = r.map_err(|e| {
                        Error::contract(
                            &self.path,
                            format!(
                                "row {}: malformed CSV: {e}",
                                self.read + rows.len() as u64 + 1
                            ),
                        )
                    })?;
                    rows.push(
                        r.iter()
                            .map(|c| (!c.is_empty()).then(|| c.to_string()))
                            .collect(),
                    );
                }
                rows
            }
            Reader::Parquet(reader) => match reader.next() {
                Some(batch) => crate::results::text_rows(std::slice::from_ref(&batch?))?.1,
                None => Vec::new(),
            },
        };
        self.read += rows.len() as u64;
        Ok(rows)
    }
}

/// Builds one contract column from text cells, counting what it sets aside.
struct ColumnBuilder {
    col: &'static Column,
    array: Builder,
    set_aside: BTreeMap<&'static str, (u64, u64, String)>,
}

enum Builder {
    String(StringBuilder),
    Date(Date32Builder),
    Int(Int32Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
    List(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    fn new(col: &'static Column) -> ColumnBuilder {
        let array = match col.ty {
            ColumnType::String => Builder::String(StringBuilder::new()),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
            ColumnType::Int32 => Builder::Int(Int32Builder::new()),
            ColumnType::Double => Builder::Double(Float64Builder::new()),
            ColumnType::Boolean => Builder::Bool(BooleanBuilder::new()),
            ColumnType::StringList => Builder::List(ListBuilder::new(StringBuilder::new())),
        };
        ColumnBuilder {
            col,
            array,
            set_aside: BTreeMap::new(),
        }
    }

    fn aside(&mut self, issue: &'static str, row: u64, value: &str) {
        let e = self
            .set_aside
            .entry(issue)
            .or_insert((0, row, value.to_string()));
        e.0 += 1;
    }

    /// Append one row's value: `cells` are the source cells it is made from (one, or several for
    /// a list), already translated.
    fn push(&mut self, cells: &[Option<String>], spec: &Spec, dates: &str, row: u64) {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        if let Builder::List(b) = &mut self.array {
            let items: Vec<&String> = cells.iter().flatten().collect();
            if items.is_empty() {
                b.append_null();
            } else {
                for i in items {
                    b.values().append_value(i);
                }
                b.append(true);
            }
            return;
        }
        let value = cells.first().cloned().flatten();
        let Some(v) = value else {
            match &mut self.array {
                Builder::String(b) => b.append_null(),
                Builder::Date(b) => b.append_null(),
                Builder::Int(b) => b.append_null(),
                Builder::Double(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::List(_) => unreachable!("lists above"),
            }
            return;
        };
        let format = spec.date_format.as_deref().unwrap_or(dates);
        // Each builder takes the parsed value or a null; `parsed` says whether the text was one.
        let parsed = match &mut self.array {
            Builder::String(b) => {
                let allowed = self.col.allowed.is_none_or(|a| a.contains(&v.as_str()));
                b.append_option(allowed.then_some(v.as_str()));
                allowed
            }
            Builder::Date(b) => {
                let d = NaiveDate::parse_from_str(&v, format).ok();
                b.append_option(d.map(|d| (d - epoch).num_days() as i32));
                d.is_some()
            }
            Builder::Int(b) => {
                let n = v.parse::<i32>().ok();
                b.append_option(n);
                n.is_some()
            }
            Builder::Double(b) => {
                let n = v.parse::<f64>().ok();
                b.append_option(n);
                n.is_some()
            }
            Builder::Bool(b) => {
                let flag = match v.to_ascii_lowercase().as_str() {
                    "true" | "t" | "1" | "y" | "yes" => Some(true),
                    "false" | "f" | "0" | "n" | "no" => Some(false),
                    _ => None,
                };
                b.append_option(flag);
                flag.is_some()
            }
            Builder::List(_) => unreachable!("lists above"),
        };
        if !parsed {
            self.aside("invalid_value", row, &v);
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match &mut self.array {
            Builder::String(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }
}

/// Import the sources in `from` as `mapping` says into the data directory `out` (replaced
/// whole, with `import_report.csv` and a manifest).
pub fn import(mapping: &Mapping, from: &Path, out: &Path) -> Result<Imported> {
    let mut staged = crate::output::Staged::begin(out, "import")?;
    let mut rows_of = Vec::new();
    let mut findings = Vec::new();
    let mut inputs = Vec::new();
    for (extract, sources) in &mapping.sources {
        let schema = extract.nullable_schema();
        let parquet = staged.file(format!("{}.parquet", extract.name))?;
        let file = std::fs::File::create(&parquet).map_err(|e| Error::io(&parquet, e))?;
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_compression(datafusion::parquet::basic::Compression::ZSTD(
                Default::default(),
            ))
            .build();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        let mut rows_written = 0;
        for source in sources {
            let path = from.join(&source.file);
            inputs.push(path.clone());
            let mut rows = SourceRows::open(&path)?;
            let headers = rows.headers.clone();
            let index = |name: &str| -> Result<usize> {
                headers.iter().position(|h| h == name).ok_or_else(|| {
                    Error::contract(
                        &path,
                        format!(
                            "no column `{name}`, which {} maps from (columns: {})",
                            mapping.path.display(),
                            headers.join(", ")
                        ),
                    )
                })
            };
            // Each contract column's source columns, checked against the header first.
            let mut reads: Vec<Vec<usize>> = Vec::new();
            for spec in &source.columns {
                let names: Vec<&String> = match spec {
                    Some(s) => s.column.iter().chain(s.columns.iter().flatten()).collect(),
                    None => Vec::new(),
                };
                reads.push(names.iter().map(|n| index(n)).collect::<Result<_>>()?);
            }
            let read: BTreeSet<usize> = reads.iter().flatten().copied().collect();
            for (i, h) in headers.iter().enumerate() {
                if !read.contains(&i) {
                    findings.push(Finding {
                        extract: extract.name.into(),
                        file: source.file.clone(),
                        column: h.clone(),
                        issue: "unread_column".into(),
                        rows: 0,
                        first_row: 0,
                        example: String::new(),
                    });
                }
            }
            // What the source's chunks set aside, by contract column and issue: counts added,
            // the first row and example kept from the first chunk that had one.
            let mut aside: BTreeMap<(usize, &'static str), (u64, u64, String)> = BTreeMap::new();
            loop {
                let before = rows.read;
                let chunk = rows.next_chunk()?;
                if chunk.is_empty() {
                    break;
                }
                let mut builders: Vec<ColumnBuilder> =
                    extract.columns.iter().map(ColumnBuilder::new).collect();
                for (r, row) in chunk.iter().enumerate() {
                    let row_number = before + r as u64 + 1;
                    for ((b, spec), idx) in builders.iter_mut().zip(&source.columns).zip(&reads) {
                        let Some(spec) = spec else {
                            b.push(&[None], &Spec::default(), &source.date_format, row_number);
                            continue;
                        };
                        let mut cells: Vec<Option<String>> = match &spec.value {
                            Some(v) => vec![Some(v.clone())],
                            None => idx.iter().map(|i| row.get(*i).cloned().flatten()).collect(),
                        };
                        if let Some(values) = &spec.values {
                            for c in cells.iter_mut() {
                                if let Some(v) = c.take() {
                                    match values.get(&v) {
                                        // A code translated to "" means no value: null, not
                                        // counted.
                                        Some(to) if to.is_empty() => {}
                                        Some(to) => *c = Some(to.clone()),
                                        None => b.aside("unmapped_value", row_number, &v),
                                    }
                                }
                            }
                        }
                        b.push(&cells, spec, &source.date_format, row_number);
                    }
                }
                for (i, b) in builders.iter_mut().enumerate() {
                    for (issue, (n, first, example)) in std::mem::take(&mut b.set_aside) {
                        aside.entry((i, issue)).or_insert((0, first, example)).0 += n;
                    }
                }
                let arrays: Vec<ArrayRef> =
                    builders.iter_mut().map(ColumnBuilder::finish).collect();
                writer.write(&RecordBatch::try_new(schema.clone(), arrays)?)?;
                rows_written += chunk.len() as u64;
            }
            for ((i, issue), (n, first, example)) in aside {
                findings.push(Finding {
                    extract: extract.name.into(),
                    file: source.file.clone(),
                    column: extract.columns[i].name.into(),
                    issue: issue.into(),
                    rows: n,
                    first_row: first,
                    example,
                });
            }
        }
        writer.close()?;
        rows_of.push((extract.name, rows_written));
    }
    findings.sort();
    staged.write("import_report.csv", report_csv(&findings).as_bytes())?;
    let mapping_path = mapping.path.clone();
    staged.publish(|dir, written| {
        let files: Vec<serde_json::Value> = written
            .iter()
            .map(|rel| {
                Ok(serde_json::json!({
                    "path": rel.display().to_string(),
                    "sha256": crate::digest::file_sha256(&dir.join(rel))?,
                }))
            })
            .collect::<Result<_>>()?;
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "command": "import",
            "mapping": mapping_path.display().to_string(),
            "sources": inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "outputs": files,
        }))
        .map_err(|e| Error::Failed(format!("manifest: {e}")))?;
        Ok(text + "\n")
    })?;
    Ok(Imported {
        rows: rows_of,
        findings,
    })
}

/// `import_report.csv`: one row per finding.
fn report_csv(findings: &[Finding]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "extract",
        "file",
        "column",
        "issue",
        "rows",
        "first_row",
        "example",
    ]);
    for f in findings {
        // File and column names and the example come from the source: text a spreadsheet must
        // not run.
        use crate::escape::csv_text;
        let _ = w.write_record([
            f.extract.as_str(),
            &csv_text(&f.file),
            &csv_text(&f.column),
            f.issue.as_str(),
            &f.rows.to_string(),
            &f.first_row.to_string(),
            &csv_text(&f.example),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
