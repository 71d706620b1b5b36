//! Ad hoc SQL (`hhq sql`, `hhq query`): one read-only query over the extracts (their usable
//! rows, and `<extract>__all` for every row) and the building blocks, its rows written as a
//! table, CSV, JSON or Parquet. It owns what a query may be (one `SELECT` or `WITH`, no DDL,
//! DML or `SET`), where its errors point (the file, line and column of a query file), audience
//! scoping (an MCO's or partner's members only) and the writers; the engine owns the session.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;

use crate::compile::depth::{self, Refused, TooDeep};
use crate::definitions::Definitions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::privacy::Audience;

/// How the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A table for people, at most `--max-rows` rows of it on a terminal.
    #[default]
    Table,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
    /// A JSON array of objects, one per row, dates as `YYYY-MM-DD`.
    Json,
    /// A Parquet file (with `--out`).
    Parquet,
}

/// Where a query came from: its file (errors name its line and column) or the command line.
#[derive(Debug, Clone)]
pub struct Query {
    pub text: String,
    pub file: Option<PathBuf>,
}

impl Query {
    /// A query file's text; an unreadable file names itself.
    pub fn from_file(path: &Path) -> Result<Query> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(Query {
            text,
            file: Some(path.to_path_buf()),
        })
    }

    /// A query given on the command line.
    pub fn inline(text: impl Into<String>) -> Query {
        Query {
            text: text.into(),
            file: None,
        }
    }
}

/// What `hhq sql` and `hhq query` read and write.
#[derive(Debug, Clone)]
pub struct AdhocOptions {
    /// The data, the definitions and how the engine computes.
    pub common: crate::execute::Options,
    /// Whose members the extracts hold for the query: everyone's, an MCO's or a partner's.
    pub scope: Audience,
    pub format: Format,
    /// A file to write (atomically); `None` writes to standard output.
    pub out: Option<PathBuf>,
    /// The most rows a table shows (the other formats write every row).
    pub max_rows: usize,
    /// How long the query may run before it is stopped ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

/// How long an ad hoc query may run unless `--timeout` says otherwise (`hhq sql`'s default): a recursive query without
/// an end, or a join of everything with everything, would otherwise run until someone notices.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A duration as people write it: `30s`, `5m`, `2h`, `1h30m` (a bare number is seconds). Zero is
/// refused: it would stop every query before it starts.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write e.g. 30s, 5m, 2h or 1h30m");
    let t = text.trim();
    let seconds = match t.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => {
            let mut total = 0u64;
            let mut number = String::new();
            for c in t.chars() {
                if c.is_ascii_digit() {
                    number.push(c);
                    continue;
                }
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86_400,
                    _ => return Err(bad()),
                };
                let n: u64 = number.parse().map_err(|_| bad())?;
                total = n
                    .checked_mul(unit)
                    .and_then(|s| total.checked_add(s))
                    .ok_or_else(bad)?;
                number.clear();
            }
            if !number.is_empty() {
                return Err(bad());
            }
            total
        }
    };
    match seconds {
        0 => Err(bad()),
        s => Ok(Duration::from_secs(s)),
    }
}

/// `90 s` → `1m30s`, as `--timeout` takes it.
fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out = format!("{}ms", d.as_millis());
    }
    out
}

/// A query's rows, and its schema (kept for a query with no rows).
pub struct Rows {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Rows {
    pub fn count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Open the data directory holding the audience's members only, and run the query. A scoped
/// session has no table of other members at all ([`Engine::open_scoped`]): nothing to deny by
/// name.
pub async fn run(opts: &AdhocOptions, query: &Query) -> Result<Rows> {
    let (defs, engine) = crate::execute::open(&opts.common, &opts.scope).await?;
    if let Some(rows) = catalog_query(&engine, &defs, &query.text).await? {
        return Ok(rows);
    }
    check_depth(&engine, query)?;
    execute(&engine, query, opts.timeout).await
}

/// `SHOW TABLES` and `DESCRIBE <table>` (or `DESC`), answered from hhq's own catalogue: every
/// table a query can read with its kind, what one row is and its columns; or one table's
/// columns with their types and meanings. `None` for any other query.
pub async fn catalog_query(
    engine: &Engine,
    defs: &Definitions,
    text: &str,
) -> Result<Option<Rows>> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let words: Vec<String> = text
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let extracts = crate::extract::contract::EXTRACTS;
    let is_catalog_query = matches!(
        lower.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ["show", "tables"] | ["describe" | "desc", _]
    );
    if !is_catalog_query {
        return Ok(None);
    }
    // Every table of the session, with its columns as the session has them.
    let names: Vec<String> = extracts
        .iter()
        .map(|e| e.name.to_string())
        .chain(extracts.iter().map(|e| format!("{}__all", e.name)))
        .chain(defs.blocks.iter().map(|b| b.name.clone()))
        .collect();
    let mut catalog: std::collections::BTreeMap<String, Vec<(String, DataType)>> =
        Default::default();
    for name in names {
        if let Ok(t) = engine.context().table_provider(name.as_str()).await {
            let columns = t
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
            catalog.insert(name, columns);
        }
    }
    let columns_of =
        |name: &str| -> Vec<(String, DataType)> { catalog.get(name).cloned().unwrap_or_default() };
    let rows = |names: &[&str], cols: Vec<Vec<String>>| -> Result<Rows> {
        let schema: SchemaRef = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let arrays = cols
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as _)
            .collect();
        Ok(Rows {
            schema: schema.clone(),
            batches: vec![RecordBatch::try_new(schema, arrays)?],
        })
    };
    match lower.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["show", "tables"] => {
            let mut cols = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
            let mut push =
                |name: &str, kind: &str, meaning: &str, columns: Vec<(String, DataType)>| {
                    let listed: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                    cols[0].push(name.to_string());
                    cols[1].push(kind.to_string());
                    cols[2].push(meaning.to_string());
                    cols[3].push(listed.join(", "));
                };
            for e in extracts {
                push(e.name, "extract (usable rows)", e.grain, columns_of(e.name));
            }
            for e in extracts {
                let all = format!("{}__all", e.name);
                push(
                    &all,
                    "extract (every row, as read)",
                    e.grain,
                    columns_of(&all),
                );
            }
            for b in &defs.blocks {
                let first = b.doc.lines().next().unwrap_or_default();
                push(&b.name, "building block", first, columns_of(&b.name));
            }
            Ok(Some(rows(&["table", "kind", "meaning", "columns"], cols)?))
        }
        ["describe" | "desc", _] => {
            let name = words[1].trim_matches('"');
            let columns = columns_of(name);
            if columns.is_empty() {
                let mut known: Vec<String> = catalog.keys().cloned().collect();
                known.sort();
                let close = crate::compile::blocks::suggest(name, known.iter().map(String::as_str));
                return Err(Error::Usage(format!(
                    "DESCRIBE: no table {name:?}: {}",
                    if close.starts_with("did you mean") {
                        format!("{close} (SHOW TABLES lists them)")
                    } else {
                        "SHOW TABLES lists them".to_string()
                    }
                )));
            }
            let base = name.strip_suffix("__all").unwrap_or(name);
            let contract = extracts.iter().find(|e| e.name == base);
            let mut cols = vec![Vec::new(), Vec::new(), Vec::new()];
            for (c, ty) in columns {
                let meaning = contract
                    .and_then(|e| e.columns.iter().find(|x| x.name == c))
                    .map_or("", |x| x.meaning);
                cols[0].push(c);
                cols[1].push(ty.to_string());
                cols[2].push(meaning.to_string());
            }
            Ok(Some(rows(&["column", "type", "meaning"], cols)?))
        }
        _ => Ok(None),
    }
}

/// Refuse a query longer, or nested deeper, than the query engine can plan without overflowing
/// its stack, which would abort hhq (see `compile::depth`). Parsed on a stack of its own; a query
/// that does not parse is reported from that parse, as its partial tree could be too deep to drop
/// on this thread.
fn check_depth(engine: &Engine, query: &Query) -> Result<()> {
    let at = |(line, column): (usize, usize), message: String, hint: String| {
        Error::Usage(match &query.file {
            Some(path) => Error::Definition {
                path: path.clone(),
                line,
                column,
                message,
                hint: Some(hint),
            }
            .to_string(),
            None => format!("query:{line}:{column}: {message}\n  hint: {hint}"),
        })
    };
    if query.text.len() > depth::MAX_SQL_BYTES {
        return Err(at(
            (1, 1),
            format!(
                "the query is {} bytes; an ad hoc query may be at most {} bytes",
                query.text.len(),
                depth::MAX_SQL_BYTES
            ),
            "is it the right file? a query that long is better split into building blocks".into(),
        ));
    }
    let state = engine.context().state();
    let dialect = state.config().options().sql_parser.dialect;
    match depth::parse_statements(|| {
        state
            .sql_to_statement(&query.text, &dialect)
            .map(|s| [s].into())
    }) {
        Ok(_) => Ok(()),
        Err(Refused::Parse(e)) => Err(query_error(query, e)),
        Err(Refused::TooDeep(deep)) => Err(at(
            deep.at.unwrap_or((1, 1)),
            deep.message(),
            TooDeep::hint(),
        )),
    }
}

/// Run one read-only query in the engine's session, for at most `timeout`.
pub async fn execute(engine: &Engine, query: &Query, timeout: Duration) -> Result<Rows> {
    check_depth(engine, query)?;
    // Ad hoc SQL reads: it never defines, changes or drops a table, nor sets an option that
    // the measures' own queries would then run under.
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = engine
        .context()
        .sql_with_options(&query.text, options)
        .await
        .map_err(|e| query_error(query, e))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    // When the time is up the collecting future is dropped, and with it the query's streams and
    // the tasks they spawned: the query stops, it does not run on unseen.
    let batches = tokio::time::timeout(timeout, df.collect())
        .await
        .map_err(|_| {
            Error::Usage(format!(
                "the query was stopped after {}, its time limit; give it longer with \
                 --timeout (e.g. --timeout 30m), or look for a recursive query that never ends",
                show_duration(timeout)
            ))
        })?
        .map_err(|e| query_error(query, e))?;
    Ok(Rows { schema, batches })
}

/// A query's error, pointing into its file when the parser said where. A wrong query is the
/// user's input, as a wrong option is: a usage error (exit code 2), from a file or not.
fn query_error(query: &Query, e: datafusion::error::DataFusionError) -> Error {
    // Where: the planner's span (an unknown column, a wrong type), else the parser's message.
    let span = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line as usize, s.start.column as usize));
    let raw = e.strip_backtrace().to_string();
    let at = span.or_else(|| position(&raw));
    let message = plain(&raw);
    let Some(path) = &query.file else {
        return Error::Usage(match at {
            Some((line, column)) => format!("query:{line}:{column}: {message}"),
            None => format!("query: {message}"),
        });
    };
    let (line, column) = at.unwrap_or((1, 1));
    // Naming the tables helps when one was not found, not when the text does not parse.
    let lost = message.contains("not found") || message.contains("No field named");
    let located = Error::Definition {
        path: path.clone(),
        line,
        column,
        message,
        hint: lost.then(|| {
            "the tables are claims, contacts, members, enrollment (usable rows), \
             <extract>__all (every row) and the building blocks of queries/; \
             `hhq sql --tables` lists them with their columns"
                .to_string()
        }),
    };
    Error::Usage(located.to_string())
}

/// A query error in plain words: the SQL parser's `SQL error: ParserError("Expected: …, found:
/// … at Line: L, Column: C")` as "syntax error: expected …, found …" (the position is given
/// apart).
fn plain(message: &str) -> String {
    let Some(start) = message.find("ParserError(\"") else {
        return message.to_string();
    };
    let inner = &message[start + "ParserError(\"".len()..];
    let inner = inner.strip_suffix("\")").unwrap_or(inner);
    let inner = inner.split(" at Line: ").next().unwrap_or(inner);
    let mut words = inner.replacen("Expected: ", "expected ", 1);
    words = words.replace(", found: ", ", found ");
    format!("syntax error: {words}")
}

/// The `Line: L, Column: C` the SQL parser puts in its messages.
fn position(message: &str) -> Option<(usize, usize)> {
    let at = message.find("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let line: usize = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let col_at = rest.find("Column: ")?;
    let column: usize = rest[col_at + "Column: ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, column))
}

/// The rows in `format`, as bytes: what `--out` or standard output receives.
pub fn render(rows: &Rows, format: Format, max_rows: usize) -> Result<Vec<u8>> {
    match format {
        Format::Table => Ok(table(rows, max_rows)?.into_bytes()),
        Format::Csv => {
            let mut out = Vec::new();
            let header = flat(&RecordBatch::new_empty(rows.schema.clone()))?;
            crate::detail::csv::header(&header, &mut out);
            for b in &rows.batches {
                crate::detail::csv::rows(&flat(b)?, &mut out)?;
            }
            Ok(out)
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            for b in &rows.batches {
                w.write(b)?;
            }
            w.finish()?;
            let mut out = w.into_inner();
            // An empty result is an empty array, not nothing.
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
            Ok(out)
        }
        Format::Parquet => {
            let mut out = Vec::new();
            let props = datafusion::parquet::file::properties::WriterProperties::builder()
                .set_compression(datafusion::parquet::basic::Compression::ZSTD(
                    Default::default(),
                ))
                .build();
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut out,
                rows.schema.clone(),
                Some(props),
            )?;
            for b in &rows.batches {
                w.write(b)?;
            }
            w.close()?;
            Ok(out)
        }
    }
}

/// A batch CSV can hold: lists and other nested values as their text (`[F419, I10]`), as the
/// table shows them; CSV has no nested type.
fn flat(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            columns.push(datafusion::arrow::compute::cast(c, &DataType::Utf8)?);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The rows as a table for a terminal: at most `max_rows`, and a line saying how many more.
fn table(rows: &Rows, max_rows: usize) -> Result<String> {
    let (columns, text) = crate::results::text_rows(&rows.batches)?;
    let columns = if columns.is_empty() {
        rows.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        columns
    };
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    // Values from the data are shown, never obeyed: an escape sequence in a name is text here.
    t.set_header(columns.iter().map(|c| crate::escape::terminal(c)));
    for row in text.iter().take(max_rows) {
        t.add_row(
            row.iter()
                .map(|v| crate::escape::terminal(v.as_deref().unwrap_or(""))),
        );
    }
    let mut out = format!("{t}\n");
    let total = text.len();
    if total > max_rows {
        out.push_str(&format!(
            "{} more rows not shown ({total} in all): --max-rows N, or --format csv\n",
            total - max_rows
        ));
    } else {
        out.push_str(&format!(
            "{total} row{}\n",
            if total == 1 { "" } else { "s" }
        ));
    }
    Ok(out)
}

/// `hhq sql` and `hhq query`: run the query and write its rows ([`run`], [`write`]); when they
/// go to a file, what to tell is how many and where.
pub async fn command(opts: &AdhocOptions, query: &Query) -> Result<crate::output::Told> {
    let rows = run(opts, query).await?;
    write(&rows, opts)?;
    Ok(crate::output::Told {
        after: opts
            .out
            .iter()
            .map(|out| format!("wrote {} rows to {}", rows.count(), out.display()))
            .collect(),
        ..Default::default()
    })
}

/// Write the rows where the options say: a file atomically (a failed query leaves no partial
/// file), or standard output. Parquet is binary and goes to a file only.
pub fn write(rows: &Rows, opts: &AdhocOptions) -> Result<()> {
    if opts.format == Format::Parquet && opts.out.is_none() {
        return Err(Error::Usage(
            "--format parquet writes a file: give --out FILE.parquet".into(),
        ));
    }
    let bytes = render(rows, opts.format, opts.max_rows)?;
    match &opts.out {
        Some(path) => crate::output::write_atomic(path, &bytes),
        None => {
            use std::io::{IsTerminal, Write};
            let mut stdout = std::io::stdout().lock();
            // CSV or JSON read on a terminal: control characters from the data shown, not
            // obeyed (a pipe or a file gets the data as it is).
            let bytes = match std::str::from_utf8(&bytes) {
                Ok(text) if stdout.is_terminal() => {
                    crate::escape::terminal(text).into_owned().into_bytes()
                }
                _ => bytes,
            };
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match stdout.write_all(&bytes).and_then(|_| stdout.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::io("standard output", e))
                }
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_people_write_them() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("5m"), Ok(300));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("45"), Ok(45));
        for bad in ["", "0", "0s", "5x", "m", "10m5", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn parser_errors_read_as_plain_words() {
        assert_eq!(
            plain(r#"SQL error: ParserError("Expected: ), found: 2 at Line: 4, Column: 7")"#),
            "syntax error: expected ), found 2"
        );
        assert_eq!(
            plain("Schema error: No field named x."),
            "Schema error: No field named x."
        );
    }

    #[test]
    fn parser_positions_are_read_from_messages() {
        assert_eq!(
            position(
                "SQL error: ParserError(\"Expected: end of statement, found: x at Line: 3, Column: 14\")"
            ),
            Some((3, 14))
        );
        assert_eq!(position("Schema error: No field named y"), None);
    }
}
