//! Opening a data directory: find each extract's files, hold every file to the contract (columns,
//! types, nulls, coded values), then register the extract in a DataFusion session under its
//! contract name with the contract's types.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringViewArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::ObjectStoreExt;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::parquet::file::reader::{ChunkReader, Length};
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
    /// Rows read, usable or not.
    pub rows: u64,
    /// Where the contract's null and coded-value rules are broken, file by file.
    pub findings: Vec<FileFinding>,
}

/// Locate the files of one extract in `dir`: `NAME.parquet`, or every `*.parquet` in `NAME/`.
pub fn locate(dir: &Path, extract: &Extract) -> Result<(PathBuf, Vec<PathBuf>)> {
    let file = dir.join(format!("{}.parquet", extract.name));
    let folder = dir.join(extract.name);
    // A FIFO would make the check wait for a writer, and `/dev/zero` would be read without end:
    // an extract is a regular file (a symbolic link to one is fine).
    if let Ok(meta) = std::fs::metadata(&file) {
        check_regular(&file, &meta.file_type())?;
    }
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
                    let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                    check_regular(&path, &meta.file_type())?;
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

/// An extract file that is not a regular file (a FIFO, a device, a socket, a directory named
/// `.parquet`) is refused by name, not taken for a missing extract nor read.
fn check_regular(path: &Path, kind: &std::fs::FileType) -> Result<()> {
    if kind.is_file() {
        return Ok(());
    }
    Err(Error::contract(
        path,
        format!(
            "{}, not a regular file: an extract is a Parquet file, or a directory named after \
             the extract (without `.parquet`) holding Parquet part files; copy the export into \
             a file",
            crate::output::file_kind(kind)
        ),
    ))
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

/// Where in a file the contract's row rules (not null, coded values) are broken: the rule's id
/// (as in [`super::rules`]), how many rows break it, the first such row (1-based, in file
/// order) and its value. The rows are set aside, not refused: the data-quality policy decides.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFinding {
    pub file: PathBuf,
    pub rule: String,
    pub rows: u64,
    pub first_row: u64,
    pub first_value: Option<String>,
}

impl FileFinding {
    /// `claims.parquet row 3: `member_id` is null (2 rows in all)`, for a data-quality report.
    pub fn describe(&self) -> String {
        let what = match &self.first_value {
            None => "is null".to_string(),
            Some(v) => format!("has value {v:?}"),
        };
        let column = self.rule.split('.').nth(1).unwrap_or_default();
        let all = if self.rows == 1 {
            "1 row".to_string()
        } else {
            format!("{} rows in all", self.rows)
        };
        format!(
            "{} row {}: `{column}` {what} ({all})",
            self.file.display(),
            self.first_row
        )
    }
}

/// The Parquet magic bytes that begin and end every Parquet file.
const MAGIC: &[u8; 4] = b"PAR1";

/// Open a file as Parquet and read its footer (with the page index, which DataFusion reads too),
/// telling an empty, foreign or cut-short file from one whose footer is damaged.
fn open_parquet(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    if len == 0 {
        return Err(Error::contract(
            path,
            "the file is empty (0 bytes), not a Parquet file: export the extract again",
        ));
    }
    let read_at = |file: &mut File, at: u64, buf: &mut [u8; 4]| -> std::io::Result<()> {
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(buf)
    };
    if len < 12 || read_at(&mut file, 0, &mut head).is_err() || &head != MAGIC {
        return Err(Error::contract(
            path,
            "not a readable Parquet file: it does not begin with Parquet's magic bytes `PAR1` \
             (is it CSV or another format named .parquet?)",
        ));
    }
    read_at(&mut file, len - 4, &mut tail).map_err(|e| Error::io(path, e))?;
    if &tail != MAGIC {
        return Err(Error::contract(
            path,
            format!(
                "truncated Parquet file ({len} bytes): it does not end with Parquet's magic bytes \
                 `PAR1`, so its footer is missing; the copy or export was cut short: copy or \
                 export it again"
            ),
        ));
    }
    file.rewind().map_err(|e| Error::io(path, e))?;
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(|e| {
            Error::contract(
                path,
                format!(
                    "damaged Parquet file: its footer (metadata) cannot be read: {e}; export it \
                     again"
                ),
            )
        })?;
    // The rows the footer counts are not read by the row groups' reader, but DataFusion sizes
    // the table from them (one flipped bit made a count that overflowed: tests/suite/hostile.rs).
    let metadata = builder.metadata();
    let counted = metadata.file_metadata().num_rows();
    let held: i128 = metadata
        .row_groups()
        .iter()
        .map(|g| i128::from(g.num_rows()))
        .sum();
    if i128::from(counted) != held || metadata.row_groups().iter().any(|g| g.num_rows() < 0) {
        return Err(Error::contract(
            path,
            format!(
                "damaged Parquet file: its footer counts {counted} rows but its row groups hold \
                 {held}; export it again"
            ),
        ));
    }
    Ok(builder)
}

/// A Parquet file read as DataFusion reads it: each column chunk as its own byte range. A page
/// whose header claims more bytes than its chunk holds then fails here, as an error, rather than
/// in a query, where slicing the fetched chunk panics; the plain `File` reader reads on into the
/// next chunk and lets such a page pass (a one-bit flip in a page header did: tests/suite/hostile.rs).
#[derive(Clone)]
struct ChunkBounded {
    /// One worker's file, shared by the readers of its row groups, one after another.
    file: Arc<File>,
    /// The file's length, read once (each `Length::len` of a `File` is a system call).
    len: u64,
    /// `(start, end)` of every column chunk, by start: made once per file and shared by the
    /// workers (made per row group, it cost time quadratic in the row groups).
    chunks: Arc<[(u64, u64)]>,
}

impl ChunkBounded {
    /// Every column chunk's byte range, by start.
    fn chunk_ranges(metadata: &ParquetMetaData) -> Arc<[(u64, u64)]> {
        let mut chunks: Vec<(u64, u64)> = metadata
            .row_groups()
            .iter()
            .flat_map(|g| g.columns())
            .map(|c| {
                let (start, len) = c.byte_range();
                (start, start.saturating_add(len))
            })
            .collect();
        chunks.sort_unstable();
        chunks.into()
    }

    fn new(path: &Path, chunks: Arc<[(u64, u64)]>) -> Result<Self> {
        // A file of its own per reader: `File`'s reads seek a descriptor that clones share.
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(ChunkBounded {
            file: Arc::new(file),
            len,
            chunks,
        })
    }

    /// Where reading from `at` must stop: the end of the column chunk holding it, or of the file
    /// (the footer and page index lie outside every chunk).
    fn end_of(&self, at: u64) -> u64 {
        let after = self.chunks.partition_point(|(start, _)| *start <= at);
        match after.checked_sub(1).map(|i| self.chunks[i]) {
            Some((_, end)) if at < end => end,
            _ => self.len,
        }
    }
}

impl Length for ChunkBounded {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for ChunkBounded {
    type T = std::io::Take<std::io::BufReader<File>>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        let end = self.end_of(start);
        Ok(self.file.get_read(start)?.take(end.saturating_sub(start)))
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        let end = start.saturating_add(length as u64);
        if end > self.end_of(start) {
            return Err(ParquetError::EOF(format!(
                "bytes {start}..{end} run past the end of their column chunk"
            )));
        }
        self.file.get_bytes(start, length)
    }
}

/// Check one file of an extract against the contract (schema, then rows) and decode every page of
/// it, so a damaged file is refused here, by name, rather than failing or panicking midway through
/// a measure. Returns the number of rows and the file's Arrow schema.
pub fn check_file(path: &Path, extract: &Extract) -> Result<(u64, SchemaRef, Vec<FileFinding>)> {
    let c = checked_file(path, extract, None)?;
    Ok((c.rows, c.schema, c.findings))
}

/// One file as [`check_file`] checked it, and its footer.
struct CheckedFile {
    rows: u64,
    schema: SchemaRef,
    findings: Vec<FileFinding>,
    footer: Arc<ParquetMetaData>,
}

/// [`checked_file`], its rows and findings from the run cache when a file of the same bytes was
/// checked by this build before (then only its footer and schema are read), else checked and
/// kept there.
fn checked_file_cached(
    path: &Path,
    extract: &Extract,
    cache: Option<&crate::cache::Cache>,
) -> Result<CheckedFile> {
    let Some(cache) = cache else {
        return checked_file(path, extract, None);
    };
    let key = crate::cache::Hasher::new(CHECKED)
        .part("extract", extract.name)
        .part("file", crate::digest::file_sha256(path)?)
        .key();
    let found = cache.read(CHECKED, &key, |e| {
        let text = String::from_utf8(e.bytes("checked.json")?).ok()?;
        rows_from_cache(&text, path)
    });
    if let Some(rows) = found {
        return checked_file(path, extract, Some(rows));
    }
    let checked = checked_file(path, extract, None)?;
    let text = rows_to_cache(checked.rows, &checked.findings);
    cache.put(
        CHECKED,
        &key,
        vec![(
            "checked.json",
            crate::cache::Content::Bytes(text.into_bytes()),
        )],
    );
    Ok(checked)
}

/// The run cache's kind for a file's rows and row-rule findings.
const CHECKED: &str = "extract-check";

fn rows_to_cache(rows: u64, findings: &[FileFinding]) -> String {
    let findings: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| serde_json::json!([f.rule, f.rows, f.first_row, f.first_value]))
        .collect();
    serde_json::json!({"rows": rows, "findings": findings}).to_string()
}

fn rows_from_cache(text: &str, path: &Path) -> Option<(u64, Vec<FileFinding>)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut findings = Vec::new();
    for f in v["findings"].as_array()? {
        findings.push(FileFinding {
            file: path.to_path_buf(),
            rule: f[0].as_str()?.to_string(),
            rows: f[1].as_u64()?,
            first_row: f[2].as_u64()?,
            first_value: match &f[3] {
                serde_json::Value::Null => None,
                v => Some(v.as_str()?.to_string()),
            },
        });
    }
    Some((v["rows"].as_u64()?, findings))
}

/// One file checked: its schema always; its rows decoded and held to the row rules unless
/// `known` gives what that found for the same bytes.
fn checked_file(
    path: &Path,
    extract: &Extract,
    known: Option<(u64, Vec<FileFinding>)>,
) -> Result<CheckedFile> {
    // The parquet crate does not promise never to panic on corrupt input; a panic must become an
    // error naming the file, not end hhq.
    let checked = catch_unwind(AssertUnwindSafe(|| -> Result<CheckedFile> {
        // The footer is read once and shared by every row group's reader: read again per row
        // group, a file of many small row groups took time quadratic in them to open.
        let builder = open_parquet(path)?;
        let schema = builder.schema().clone();
        check_unique_columns(path, &schema)?;
        check_schema(path, extract, &schema)?;
        let (rows, findings) = match known {
            Some(k) => k,
            None => check_rows_of(path, extract, builder.metadata())?,
        };
        Ok(CheckedFile {
            rows,
            schema,
            findings,
            footer: builder.metadata().clone(),
        })
    }));
    checked.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(Error::contract(
            path,
            format!(
                "corrupt Parquet file: the Parquet reader failed on it ({what}); export it again"
            ),
        ))
    })
}

/// Refuse a file that names a column twice: a query would read the first and never the other,
/// so which values a measure saw would depend on the writer's column order.
fn check_unique_columns(path: &Path, schema: &Schema) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if !seen.insert(field.name().as_str()) {
            return Err(Error::contract(
                path,
                format!(
                    "column `{}` appears twice (again as column {} of {}); a query could read \
                     only one of them: export the file with each column once",
                    field.name(),
                    i + 1,
                    schema.fields().len()
                ),
            ));
        }
    }
    Ok(())
}

/// Hand DataFusion the footers the checks decoded, in its session's cache of file metadata, so
/// that neither registering the files nor any scan decodes them again. A scan reads a file in
/// chunks (`chunks`), each of which asks for the footer; DataFusion's cache keeps no footer
/// larger than its limit (50 MB), and one of 10,000 row groups is larger, so the limit is raised
/// by what each footer holds: without it, a file of 10,000 one-row row groups had its 48 MB
/// footer decoded by every chunk of every query.
async fn share_footers(
    ctx: &SessionContext,
    files: &[PathBuf],
    footers: Vec<Arc<ParquetMetaData>>,
) -> Result<()> {
    let runtime = ctx.runtime_env();
    let store = runtime.object_store(ObjectStoreUrl::local_filesystem())?;
    let cache = runtime.cache_manager.get_file_metadata_cache();
    for (file, footer) in files.iter().zip(footers) {
        let Some(name) = file.to_str() else {
            continue;
        };
        // The key DataFusion's listing gives the file.
        let url = ListingTableUrl::parse(name)?;
        let meta = store
            .head(url.prefix())
            .await
            .map_err(datafusion::error::DataFusionError::from)?;
        let size = footer.memory_size();
        cache.update_cache_limit(cache.cache_limit().saturating_add(size));
        cache.put(
            &meta.location.clone(),
            CachedFileMetadataEntry::new(meta, Arc::new(CachedParquetMetaData::new(footer))),
        );
    }
    Ok(())
}

/// What one checked column showed in some rows: nulls where the contract forbids them, values
/// it does not allow, and the first row (1-based, in the file) of each.
#[derive(Clone, Default)]
struct Seen {
    nulls: u64,
    first_null: u64,
    bad: u64,
    first_bad: u64,
    bad_value: String,
}

impl Seen {
    /// Fold in what a later stretch of rows showed (row groups are merged in file order, so the
    /// first row of each finding stays the file's first).
    fn merge(&mut self, later: Seen) {
        if self.nulls == 0 {
            self.first_null = later.first_null;
        }
        self.nulls += later.nulls;
        if self.bad == 0 {
            self.first_bad = later.first_bad;
            self.bad_value = later.bad_value;
        }
        self.bad += later.bad;
    }
}

/// Decode every column of the file and say where the contract's row rules (not null, coded
/// values) are broken. Returns the number of rows in the file and the findings, in contract
/// column order.
///
/// Row groups are decoded in parallel, one worker per core, each taking every n-th group: this
/// pass reads every page of every column, so on a large extract it is one of a run's longest
/// steps. The findings do not depend on the number of workers.
pub fn check_rows(path: &Path, extract: &Extract) -> Result<(u64, Vec<FileFinding>)> {
    check_rows_of(path, extract, open_parquet(path)?.metadata())
}

/// [`check_rows`] with the file's footer already read.
fn check_rows_of(
    path: &Path,
    extract: &Extract,
    metadata: &Arc<ParquetMetaData>,
) -> Result<(u64, Vec<FileFinding>)> {
    let checked: Vec<&Column> = extract
        .columns
        .iter()
        .filter(|c| !c.nullable || c.allowed.is_some())
        .collect();
    // Where each row group starts, to say where damaged data lies and which row a finding is.
    let group_starts: Vec<u64> = metadata
        .row_groups()
        .iter()
        .scan(0u64, |start, g| {
            let this = *start;
            *start += g.num_rows().max(0) as u64;
            Some(this)
        })
        .collect();
    let groups = group_starts.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, groups.max(1));
    let reading = Reading::new(path, metadata)?;
    let files = (0..workers)
        .map(|_| ChunkBounded::new(path, reading.chunks.clone()))
        .collect::<Result<Vec<_>>>()?;
    // Every group's rows and findings, indexed by group; a worker's panic is re-raised here, for
    // `check_file` to turn into an error naming the file.
    let mut per_group: Vec<Option<Result<GroupChecked>>> = (0..groups).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .into_iter()
            .enumerate()
            .map(|(w, file)| {
                let (checked, group_starts, reading) = (&checked, &group_starts, &reading);
                scope.spawn(move || {
                    (w..groups)
                        .step_by(workers)
                        .map(|g| {
                            let start = group_starts[g];
                            (g, check_group(path, &file, reading, checked, g, start))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (g, r) in done {
                        per_group[g] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut rows = 0;
    let mut seen = vec![Seen::default(); checked.len()];
    for group in per_group {
        let (n, found) = group.expect("every group checked")?;
        rows += n;
        for (s, later) in seen.iter_mut().zip(found) {
            s.merge(later);
        }
    }
    let mut findings = Vec::new();
    for (col, s) in checked.iter().zip(seen) {
        if s.nulls > 0 {
            findings.push(FileFinding {
                file: path.to_path_buf(),
                rule: format!("{}.{}.null", extract.name, col.name),
                rows: s.nulls,
                first_row: s.first_null,
                first_value: None,
            });
        }
        if s.bad > 0 {
            findings.push(FileFinding {
                file: path.to_path_buf(),
                rule: format!("{}.{}.value", extract.name, col.name),
                rows: s.bad,
                first_row: s.first_bad,
                first_value: Some(s.bad_value),
            });
        }
    }
    Ok((rows, findings))
}

/// One row group's rows and what each checked column showed in them.
type GroupChecked = (u64, Vec<Seen>);

/// What every row group's reader of one file shares: the footer as the Arrow reader reads it,
/// and the column chunks' byte ranges.
struct Reading {
    metadata: ArrowReaderMetadata,
    chunks: Arc<[(u64, u64)]>,
}

impl Reading {
    fn new(path: &Path, metadata: &Arc<ParquetMetaData>) -> Result<Self> {
        let damaged = |e: ParquetError| {
            Error::contract(path, format!("damaged Parquet file: {e}; export it again"))
        };
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let plain =
            ArrowReaderMetadata::try_new(metadata.clone(), options.clone()).map_err(damaged)?;
        // Strings decoded as views, as DataFusion reads them: every byte is still decoded and its
        // UTF-8 checked, but not copied out of the page (a third of this pass's time).
        let views = Arc::new(Schema::new_with_metadata(
            plain
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_data_type(as_view(f.data_type())))
                .collect::<Vec<_>>(),
            plain.schema().metadata().clone(),
        ));
        let metadata = ArrowReaderMetadata::try_new(metadata.clone(), options.with_schema(views))
            .map_err(damaged)?;
        Ok(Reading {
            chunks: ChunkBounded::chunk_ranges(metadata.metadata()),
            metadata,
        })
    }
}

/// Decode one row group (every column, not only the checked ones: DataFusion will read them all
/// later, and a damaged page must be found now, with the file's name), with `start` the file
/// row before its first.
fn check_group(
    path: &Path,
    bounded: &ChunkBounded,
    reading: &Reading,
    checked: &[&Column],
    group: usize,
    start: u64,
) -> Result<GroupChecked> {
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
        bounded.clone(),
        reading.metadata.clone(),
    )
    .with_row_groups(vec![group])
    .with_batch_size(64 * 1024)
    .build()
    .map_err(|e| Error::contract(path, format!("damaged Parquet file: {e}; export it again")))?;
    let mut seen = vec![Seen::default(); checked.len()];
    let mut offset = start;
    for batch in reader {
        let batch = batch.map_err(|e| {
            Error::contract(
                path,
                format!(
                    "damaged Parquet data in row group {} (rows from {} on): {e}; export the file again",
                    group + 1,
                    start + 1
                ),
            )
        })?;
        for (i, col) in checked.iter().enumerate() {
            let array = batch
                .column_by_name(col.name)
                .ok_or_else(|| Error::contract(path, format!("missing column `{}`", col.name)))?;
            let strings = match col.allowed {
                Some(_) => Some(as_strings(array)?),
                None => None,
            };
            let s = &mut seen[i];
            // The validity bitmap read in place, not a dynamic call per row: most columns have
            // no null at all, and this pass reads every row of every extract.
            if !col.nullable
                && let Some(nulls) = array.nulls().filter(|n| n.null_count() > 0)
            {
                for row in (0..nulls.len()).filter(|&r| nulls.is_null(r)) {
                    if s.nulls == 0 {
                        s.first_null = offset + row as u64 + 1;
                    }
                    s.nulls += 1;
                }
            }
            if let (Some(allowed), Some(strings)) = (col.allowed, strings.as_ref()) {
                for (row, v) in strings.iter().enumerate() {
                    let Some(v) = v else { continue };
                    if !allowed.contains(&v) {
                        if s.bad == 0 {
                            s.first_bad = offset + row as u64 + 1;
                            s.bad_value = v.to_string();
                        }
                        s.bad += 1;
                    }
                }
            }
        }
        offset += batch.num_rows() as u64;
    }
    Ok((offset - start, seen))
}

/// `ty` with its strings (in lists too) as views.
fn as_view(ty: &DataType) -> DataType {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(as_view(item.data_type())),
        )),
        other => other.clone(),
    }
}

fn as_strings(array: &ArrayRef) -> Result<StringViewArray> {
    let views = cast(array, &DataType::Utf8View)?;
    Ok(views
        .as_any()
        .downcast_ref::<StringViewArray>()
        .expect("cast to Utf8View yields a StringViewArray")
        .clone())
}

/// Part files of one extract are read as one table, which needs one type per column: a column
/// typed differently in two parts (`Int16` in one, `Int32` in another; plain and dictionary
/// strings) is refused, naming both parts, rather than left to the query engine's schema merge.
/// A column only some parts have is fine: it reads as null in the others.
fn check_parts_agree(files: &[PathBuf], schemas: &[SchemaRef]) -> Result<()> {
    let (Some(first_file), Some(first)) = (files.first(), schemas.first()) else {
        return Ok(());
    };
    let mut seen: Vec<(&PathBuf, &datafusion::arrow::datatypes::Field)> = first
        .fields()
        .iter()
        .map(|f| (first_file, f.as_ref()))
        .collect();
    for (file, schema) in files.iter().zip(schemas).skip(1) {
        for field in schema.fields() {
            match seen.iter().find(|(_, f)| f.name() == field.name()) {
                Some((other, f)) if f.data_type() != field.data_type() => {
                    return Err(Error::contract(
                        file,
                        format!(
                            "column `{}` has type {} here but {} in {}; every part file of an \
                             extract needs the same column types: export the parts with one schema",
                            field.name(),
                            field.data_type(),
                            f.data_type(),
                            other.display()
                        ),
                    ));
                }
                Some(_) => {}
                None => seen.push((file, field.as_ref())),
            }
        }
    }
    // What the query engine merges beyond types (field metadata) is checked the way it merges.
    let stripped: Vec<Schema> = schemas
        .iter()
        .map(|s| Schema::new(s.fields().clone()))
        .collect();
    let mut merged = Schema::empty();
    for (file, schema) in files.iter().zip(stripped) {
        merged = Schema::try_merge([merged, schema]).map_err(|e| {
            Error::contract(
                file,
                format!("this part file's schema does not fit the other parts': {e}"),
            )
        })?;
    }
    Ok(())
}

/// Extracts that may hold no rows: a programme can have a data cut without Health Home contacts
/// (and hand-built test decks for claims measures have none). Without claims, members or
/// enrollment every measure would report zero, which is a failed export, not a result.
const MAY_BE_EMPTY: &[&str] = &["contacts"];

fn check_not_empty(location: &Path, extract: &Extract, files: usize, rows: u64) -> Result<()> {
    if rows > 0 || MAY_BE_EMPTY.contains(&extract.name) {
        return Ok(());
    }
    let files = if files == 1 {
        "its file has".to_string()
    } else {
        format!("its {files} part files have")
    };
    Err(Error::contract(
        location,
        format!(
            "the {} extract is empty: {files} no rows. Every measure would report zero from it, \
             so hhq stops; check the export",
            extract.name
        ),
    ))
}

/// Open one extract: check every file, then register it in `ctx` as a view named after the
/// extract that exposes the contract columns with the contract's types (plus any extra columns).
pub async fn open_extract(
    ctx: &SessionContext,
    dir: &Path,
    extract: &'static Extract,
) -> Result<OpenedExtract> {
    open_extract_as(ctx, dir, extract, true, None).await
}

/// [`open_extract`], read in shared chunks (`chunked`, one process) or as DataFusion's own
/// Parquet table, which a distributed engine can send to other nodes.
async fn open_extract_as(
    ctx: &SessionContext,
    dir: &Path,
    extract: &'static Extract,
    chunked: bool,
    cache: Option<&crate::cache::Cache>,
) -> Result<OpenedExtract> {
    let (location, files) = locate(dir, extract)?;
    let mut rows = 0;
    let mut findings = Vec::new();
    let mut schemas = Vec::with_capacity(files.len());
    let mut footers = Vec::with_capacity(files.len());
    for file in &files {
        let checked = checked_file_cached(file, extract, cache)?;
        rows += checked.rows;
        schemas.push(checked.schema);
        findings.extend(checked.findings);
        footers.push(checked.footer);
    }
    check_parts_agree(&files, &schemas)?;
    check_not_empty(&location, extract, files.len(), rows)?;

    let raw = format!("{}__raw", extract.name);
    // Other nodes of a cluster resolve a relative path against their own working directory.
    let registered = match chunked {
        true => location.clone(),
        false => std::path::absolute(&location).map_err(|e| {
            Error::contract(&location, format!("cannot make the path absolute: {e}"))
        })?,
    };
    let location_str = registered
        .to_str()
        .ok_or_else(|| Error::contract(&location, "the path is not valid UTF-8; rename it"))?;
    share_footers(ctx, &files, footers).await?;
    ctx.register_parquet(&raw, location_str, ParquetReadOptions::default())
        .await?;
    // Read in chunks every stream of a scan takes from one queue (see `chunks`).
    if chunked {
        let listing = ctx.table_provider(raw.as_str()).await?;
        ctx.deregister_table(raw.as_str())?;
        ctx.register_table(raw.as_str(), super::chunks::Chunked::wrap(listing))?;
    }
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
    // Every row, typed (`claims__all`), for the data-quality profile; the extract's own name is
    // the usable rows only, so no measure reads a row set aside.
    ctx.sql(&format!(
        "CREATE VIEW {} AS SELECT {} FROM {raw}",
        all_rows(extract),
        select.join(", ")
    ))
    .await?;
    ctx.sql(&format!(
        "CREATE VIEW {} AS SELECT * FROM {} WHERE {}",
        extract.name,
        all_rows(extract),
        super::rules::usable_sql(extract)
    ))
    .await?;
    Ok(OpenedExtract {
        name: extract.name,
        location,
        files,
        rows,
        findings,
    })
}

/// The view of every row of an extract, usable or set aside.
pub fn all_rows(extract: &Extract) -> String {
    format!("{}__all", extract.name)
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
    open_all_as(ctx, dir, true).await
}

/// [`open_all`], chunked or not (see [`open_extract_as`]).
pub async fn open_all_as(
    ctx: &SessionContext,
    dir: &Path,
    chunked: bool,
) -> Result<Vec<OpenedExtract>> {
    open_all_checked(ctx, dir, chunked, None).await
}

/// [`open_all_as`], each file's rows and findings read from the run cache when a file of the
/// same bytes was checked before (and kept there when not).
pub async fn open_all_checked(
    ctx: &SessionContext,
    dir: &Path,
    chunked: bool,
    cache: Option<&crate::cache::Cache>,
) -> Result<Vec<OpenedExtract>> {
    if !dir.is_dir() {
        return Err(Error::contract(dir, "no such data directory"));
    }
    let mut opened = Vec::with_capacity(EXTRACTS.len());
    for extract in EXTRACTS {
        opened.push(open_extract_as(ctx, dir, extract, chunked, cache).await?);
    }
    Ok(opened)
}

/// An empty table per extract with the contract schema, so that definitions can be checked and
/// compiled without data.
pub fn register_empty(ctx: &SessionContext) -> Result<()> {
    for extract in EXTRACTS {
        let table = datafusion::datasource::MemTable::try_new(extract.schema(), vec![vec![]])?;
        ctx.register_table(extract.name, Arc::new(table))?;
        ctx.register_table(
            all_rows(extract).as_str(),
            Arc::new(datafusion::datasource::MemTable::try_new(
                extract.schema(),
                vec![vec![]],
            )?),
        )?;
    }
    Ok(())
}
