//! Member-level detail across a run's passes. A run over more members than it holds at once
//! computes them range by range (the passes of a [`crate::plan::RunPlan`]); each measure's
//! detail from each pass is appended to a spool file (Arrow IPC, beside the staged outputs),
//! from which the result rows are aggregated as from one table, and, for a run, to the
//! measure's Parquet detail, encoded as it comes. So a run holds one pass's detail at most,
//! never a measure's whole detail, and its outputs are those of one pass over every member: the
//! passes are in member-id order and the detail is ordered by member first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::streaming::StreamingTableExec;

use crate::error::{Error, Result};

pub(crate) mod csv;
mod parquet;
use crate::privacy::Privacy;

/// Rows per spooled batch (DataFusion's batch size).
const BATCH_ROWS: usize = 8192;

/// The spool files of a run's measures, in a temporary directory removed when dropped.
pub struct Spool {
    dir: tempfile::TempDir,
    files: BTreeMap<String, Spooling>,
    /// The measures whose Parquet detail is written as they are appended: where, and as what
    /// privacy allows.
    details: BTreeMap<String, (PathBuf, Privacy)>,
}

/// One measure's spool file being written.
struct Spooling {
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
    /// Batches of [`BATCH_ROWS`] rows, whatever the passes gave: the Parquet writer cuts pages
    /// by batch, so its bytes then do not depend on how many passes there were.
    coalescer: BatchCoalescer,
    /// The first batch's schema, every column nullable: what the passes give. Passes can
    /// differ in the nullability their batches report (an empty block in one pass), never in
    /// types.
    whole: SchemaRef,
    /// The columns of `whole` the spool file holds (all, or those the summaries read), and
    /// its schema.
    kept: Option<Vec<usize>>,
    spooled: SchemaRef,
    /// The measure's Parquet detail, if the run writes it: every column nullable too, so that
    /// its schema is known before the last pass and is the same however many passes there are.
    detail: Option<DetailFile>,
    rows: u64,
}

/// A measure's Parquet detail being written, a spooled batch at a time, as `privacy` allows.
struct DetailFile {
    path: PathBuf,
    privacy: Privacy,
    writer: parquet::ColumnParallelWriter<BufWriter<File>>,
}

impl DetailFile {
    fn create(path: PathBuf, privacy: Privacy, spooled: &SchemaRef) -> Result<DetailFile> {
        let schema = privacy
            .apply(&RecordBatch::new_empty(spooled.clone()))?
            .schema();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let writer = parquet::ColumnParallelWriter::new(BufWriter::new(file), schema, cores)?;
        Ok(DetailFile {
            path,
            privacy,
            writer,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(&self.privacy.apply(batch)?)
    }

    fn close(self) -> Result<PathBuf> {
        self.writer.close()?;
        Ok(self.path)
    }
}

/// A measure's detail, every pass of it, in one file (and its Parquet detail, if written).
pub struct SpooledDetail {
    path: PathBuf,
    spooled: SchemaRef,
    rows: u64,
    detail: Option<PathBuf>,
}

/// When a measure's member-level detail is also written as CSV (`hhq run --detail-csv`); the
/// Parquet file is always written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DetailCsv {
    /// When a spreadsheet can open it: at most [`SPREADSHEET_ROWS`] rows. A statewide year of
    /// member-months is millions of rows, gigabytes of text no spreadsheet opens and a fifth of
    /// the run's time to write; the Parquet file holds every row.
    #[default]
    Auto,
    Always,
    Never,
}

/// Data rows a spreadsheet holds below its header (Excel's and LibreOffice's 1,048,576 rows).
pub const SPREADSHEET_ROWS: u64 = 1_048_575;

impl DetailCsv {
    /// Whether a detail of `rows` rows is written as CSV.
    pub fn writes(self, rows: u64) -> bool {
        match self {
            DetailCsv::Auto => rows <= SPREADSHEET_ROWS,
            DetailCsv::Always => true,
            DetailCsv::Never => false,
        }
    }
}

impl Spool {
    /// A spool in a new temporary directory inside `parent` (the staged outputs, so that a
    /// killed run's spool is cleared with them).
    pub fn new(parent: &Path) -> Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix(".spool-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        Ok(Spool {
            dir,
            files: BTreeMap::new(),
            details: BTreeMap::new(),
        })
    }

    /// Write measure `id`'s detail to `parquet` as its passes are appended, as `privacy`
    /// allows (call before its first append). Encoding a pass's detail while the engine
    /// computes the next spares reading the whole spool back after the last pass.
    pub fn write_detail(&mut self, id: &str, parquet: PathBuf, privacy: Privacy) {
        self.details.insert(id.to_string(), (parquet, privacy));
    }

    fn create(&mut self, id: &str, schema: SchemaRef, keep: Option<&[String]>) -> Result<Spooling> {
        let path = self.dir.path().join(format!("{id}.arrow"));
        let kept = keep
            .map(|names| {
                names
                    .iter()
                    .map(|n| schema.index_of(n))
                    .collect::<std::result::Result<Vec<usize>, _>>()
            })
            .transpose()?;
        Spooling::create(path, schema, kept, self.details.remove(id))
    }

    /// Append one pass's detail of measure `id`, the spool file holding only the `keep`
    /// columns if given at the measure's first append (its Parquet detail holds every one): the
    /// summaries read a few of a detail's columns, and the others need not be compressed into
    /// the spool.
    pub fn append(
        &mut self,
        id: &str,
        batches: &[RecordBatch],
        keep: Option<&[String]>,
    ) -> Result<()> {
        for b in batches {
            if !self.files.contains_key(id) {
                let s = self.create(id, b.schema(), keep)?;
                self.files.insert(id.to_string(), s);
            }
            let s = self.files.get_mut(id).expect("just made");
            let batch =
                RecordBatch::try_new(s.whole.clone(), b.columns().to_vec()).map_err(|e| {
                    Error::Failed(format!(
                        "measure {id}: a pass's detail differs in type: {e}"
                    ))
                })?;
            s.rows += batch.num_rows() as u64;
            s.coalescer.push_batch(batch)?;
            s.write_completed()?;
        }
        Ok(())
    }

    /// Close measure `id`'s file: its detail is complete. With no rows in any pass, the file
    /// is empty, with the schema its plan gives (`planned`).
    pub fn finish(&mut self, id: &str, planned: &SchemaRef) -> Result<SpooledDetail> {
        let mut s = match self.files.remove(id) {
            Some(s) => s,
            None => self.create(id, planned.clone(), None)?,
        };
        s.coalescer.finish_buffered_batch()?;
        s.write_completed()?;
        s.writer.finish()?;
        Ok(SpooledDetail {
            path: s.path,
            spooled: s.spooled,
            rows: s.rows,
            detail: s.detail.map(DetailFile::close).transpose()?,
        })
    }
}

/// A [`Spool`] appended to on threads of their own, so that the engine goes on computing while a
/// pass's details are compressed and written.
pub struct DetailSink {
    spool: Arc<std::sync::Mutex<Spool>>,
    appending: Vec<tokio::task::JoinHandle<Result<()>>>,
    /// The columns each measure's spool file holds, if not all ([`Spool::append`]).
    columns: BTreeMap<String, Arc<Vec<String>>>,
}

impl DetailSink {
    pub fn new(spool: Spool) -> DetailSink {
        DetailSink {
            spool: Arc::new(std::sync::Mutex::new(spool)),
            appending: Vec::new(),
            columns: BTreeMap::new(),
        }
    }

    /// Whether the columns measure `id`'s spool holds are set.
    pub fn has_columns(&self, id: &str) -> bool {
        self.columns.contains_key(id)
    }

    /// Keep only these columns of measure `id`'s detail in its spool file (before its first
    /// append; see [`Spool::append`]).
    pub fn set_columns(&mut self, id: &str, columns: Vec<String>) {
        self.columns.insert(id.to_string(), Arc::new(columns));
    }

    /// Append one pass's detail of measure `id` ([`Spool::append`]) on a thread of its own. A
    /// measure's passes go in order only when each waits for the last: [`DetailSink::settle`]
    /// between passes.
    pub fn append(&mut self, id: String, batches: Vec<RecordBatch>) {
        let spool = self.spool.clone();
        let keep = self.columns.get(&id).cloned();
        self.appending.push(tokio::task::spawn_blocking(move || {
            spool.lock().expect("not poisoned").append(
                &id,
                &batches,
                keep.as_deref().map(|k| k.as_slice()),
            )
        }));
    }

    /// Wait for every append so far; the first that failed is the error.
    pub async fn settle(&mut self) -> Result<()> {
        for appended in std::mem::take(&mut self.appending) {
            appended
                .await
                .map_err(|e| Error::Failed(format!("spooling a measure's detail: {e}")))??;
        }
        Ok(())
    }

    /// The spool, every append done.
    pub async fn finish(mut self) -> Result<Spool> {
        self.settle().await?;
        let spool = Arc::into_inner(self.spool).expect("every append settled");
        Ok(spool.into_inner().expect("not poisoned"))
    }
}

impl crate::execute::Sink for DetailSink {
    fn wants_columns(&self, key: &str) -> bool {
        !self.has_columns(key)
    }

    fn set_columns(&mut self, key: &str, columns: Vec<String>) {
        DetailSink::set_columns(self, key, columns);
    }

    fn append(&mut self, key: String, batches: Vec<RecordBatch>) {
        DetailSink::append(self, key, batches);
    }

    async fn settle(&mut self) -> Result<()> {
        DetailSink::settle(self).await
    }
}

impl Spooling {
    fn create(
        path: PathBuf,
        schema: SchemaRef,
        kept: Option<Vec<usize>>,
        detail: Option<(PathBuf, Privacy)>,
    ) -> Result<Spooling> {
        let whole = nullable(&schema);
        let spooled = match &kept {
            Some(k) => Arc::new(whole.project(k)?),
            None => whole.clone(),
        };
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        // Zstandard at its fastest level: the spool is a fraction of the detail's size on disk,
        // and arrow reuses one (de)compression context for it. Its LZ4 frames allocate and clear
        // a buffer for every column of every batch read (a tenth of a run's time at 100k).
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(datafusion::arrow::ipc::CompressionType::ZSTD))?
            .try_with_compression_level(Some(1))?;
        let writer = FileWriter::try_new_with_options(BufWriter::new(file), &spooled, options)?;
        let detail = detail
            .map(|(path, privacy)| DetailFile::create(path, privacy, &whole))
            .transpose()?;
        Ok(Spooling {
            path,
            writer,
            coalescer: BatchCoalescer::new(whole.clone(), BATCH_ROWS),
            whole,
            kept,
            spooled,
            detail,
            rows: 0,
        })
    }

    /// Write the batches the coalescer has completed to the spool and the detail.
    fn write_completed(&mut self) -> Result<()> {
        while let Some(b) = self.coalescer.next_completed_batch() {
            match &self.kept {
                Some(k) => self.writer.write(&b.project(k)?)?,
                None => self.writer.write(&b)?,
            }
            if let Some(d) = self.detail.as_mut() {
                d.write(&b)?;
            }
        }
        Ok(())
    }
}

impl SpooledDetail {
    /// Rows of the detail, every pass's, before an audience's are kept.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The detail as a table for the engine to aggregate, read from the file a batch at a
    /// time in `partitions` streams (batch `i` in stream `i % partitions`), only the columns a
    /// query reads decoded.
    pub fn table(&self, partitions: usize) -> Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(SpoolTable {
            path: self.path.clone(),
            schema: self.spooled.clone(),
            partitions: partitions.max(1),
        }))
    }

    /// Done with the spooled detail: the measure's Parquet detail (written as it was appended)
    /// also written as `csv`, if given, and the spool file removed. The CSV lines are formatted
    /// on every core, a batch each, and written in order.
    pub fn close(self, csv: Option<&Path>) -> Result<()> {
        if let Some(csv) = csv {
            let parquet = self.detail.as_deref().ok_or_else(|| {
                Error::Failed("a CSV detail asked of a measure whose detail is not written".into())
            })?;
            write_csv(parquet, csv)?;
        }
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// The Parquet detail `parquet` as CSV, the header even when there are no rows.
fn write_csv(parquet: &Path, csv: &Path) -> Result<()> {
    let file = File::open(parquet).map_err(|e| Error::io(parquet, e))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(BATCH_ROWS)
            .build()?;
    use datafusion::arrow::array::RecordBatchReader;
    let empty = RecordBatch::new_empty(reader.schema());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A few batches in flight per thread: enough to keep each busy, a few MB each.
    const QUEUED: usize = 2;
    std::thread::scope(|s| {
        // Batch `i` is formatted by worker `i % workers`, whose results come back in the order
        // it took them: the writer reads the workers in turn and so writes in order.
        let mut to_format = Vec::new();
        let mut formatted = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<RecordBatch>(QUEUED);
            let (done_tx, done_rx) = sync_channel::<Result<Vec<u8>>>(QUEUED);
            s.spawn(move || {
                for batch in rx {
                    let mut bytes = Vec::with_capacity(batch.num_rows() * 128);
                    let result = csv::rows(&batch, &mut bytes)
                        .map(|_| bytes)
                        .map_err(Error::from);
                    if done_tx.send(result).is_err() {
                        break;
                    }
                }
            });
            to_format.push(tx);
            formatted.push(done_rx);
        }
        let writer = s.spawn(move || {
            let file = File::create(csv).map_err(|e| Error::io(csv, e))?;
            let mut out = BufWriter::new(file);
            let mut head = Vec::new();
            csv::header(&empty, &mut head);
            out.write_all(&head).map_err(|e| Error::io(csv, e))?;
            for i in 0.. {
                let Ok(bytes) = formatted[i % formatted.len()].recv() else {
                    break;
                };
                out.write_all(&bytes?).map_err(|e| Error::io(csv, e))?;
            }
            out.flush().map_err(|e| Error::io(csv, e))?;
            Ok::<_, Error>(())
        });
        let read = (|| {
            for (i, batch) in reader.enumerate() {
                // A writer gone has failed: its error is the one to report.
                if to_format[i % workers].send(batch?).is_err() {
                    break;
                }
            }
            Ok::<_, Error>(())
        })();
        drop(to_format);
        let written = writer.join().expect("the CSV writer does not panic");
        written.and(read)
    })
}

/// A spool file as a table. A summary reads a few of a detail's columns (its strata, flags and
/// counts): the others are skipped in the file, not decompressed and checked (the unit ids and
/// dates were most of a summary's time at a million members).
#[derive(Debug)]
struct SpoolTable {
    path: PathBuf,
    schema: SchemaRef,
    partitions: usize,
}

#[async_trait::async_trait]
impl TableProvider for SpoolTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let of = self.partitions;
        let parts = (0..of)
            .map(|part| {
                Arc::new(SpoolPart {
                    path: self.path.clone(),
                    schema: schema.clone(),
                    projection: projection.cloned(),
                    part,
                    of,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            parts,
            None,
            Vec::new(),
            false,
            None,
        )?))
    }
}

/// One stream of a spool file's batches: those whose index is `part` modulo `of`, with the
/// `projection`'s columns only.
#[derive(Debug)]
struct SpoolPart {
    path: PathBuf,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    part: usize,
    of: usize,
}

impl PartitionStream for SpoolPart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (part, of) = (self.part, self.of);
        let projection = self.projection.clone();
        let reader = File::open(&self.path)
            .map_err(DataFusionError::from)
            .and_then(|f| Ok(FileReader::try_new(std::io::BufReader::new(f), projection)?));
        let mut next = part;
        let mut reader = Some(reader);
        let batches = std::iter::from_fn(move || match reader.as_mut()? {
            Err(_) => reader.take().and_then(|r| r.err()).map(Err),
            Ok(r) if next >= r.num_batches() => None,
            Ok(r) => {
                let batch = r
                    .set_index(next)
                    .and_then(|_| r.next().transpose())
                    .map_err(DataFusionError::from);
                next += of;
                batch.transpose()
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batches),
        ))
    }
}

/// `schema` with every column nullable.
fn nullable(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Detail-like batches of these sizes (a member id repeated a dozen rows, a count, a date, a
/// note with a comma and quotes or none), for the writers' tests.
#[cfg(test)]
fn uneven_batches(sizes: &[usize]) -> Vec<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    let mut start = 0i64;
    sizes
        .iter()
        .map(|&n| {
            let ids: Vec<i64> = (start..start + n as i64).collect();
            start += n as i64;
            let members = ids.iter().map(|i| format!("M{:07}", i / 12));
            let days = ids.iter().map(|i| (i % 20_000) as i32);
            let notes = ids
                .iter()
                .map(|i| (i % 3 != 0).then(|| format!("gap {}, \"long\"", i % 5)));
            let columns: [(&str, ArrayRef); 4] = [
                (
                    "member_id",
                    Arc::new(StringArray::from_iter_values(members)),
                ),
                ("n", Arc::new(Int64Array::from(ids.clone()))),
                ("anchor_date", Arc::new(Date32Array::from_iter_values(days))),
                ("why", Arc::new(StringArray::from_iter(notes))),
            ];
            RecordBatch::try_from_iter(columns).expect("columns of one length")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    /// Passes of uneven sizes, as a run's are.
    fn passes() -> Vec<RecordBatch> {
        uneven_batches(&[5_000, 1, 12_000, 8_192, 333, 30_000, 7])
    }

    /// `batches` spooled as measure `M`'s passes, one each, in a spool under `dir` (returned
    /// too: its directory goes when it is dropped), its detail written to `M.parquet` there.
    fn spool_passes(dir: &Path, batches: &[RecordBatch]) -> (Spool, SpooledDetail) {
        let mut spool = Spool::new(dir).unwrap();
        spool.write_detail("M", dir.join("M.parquet"), Privacy::default());
        for b in batches {
            spool.append("M", std::slice::from_ref(b), None).unwrap();
        }
        let spooled = spool.finish("M", &batches[0].schema()).unwrap();
        (spool, spooled)
    }

    #[test]
    fn the_detail_is_written_in_the_order_spooled_the_csv_as_arrow_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let batches = passes();
        let (_spool, spooled) = spool_passes(dir.path(), &batches);
        let (parquet, csv) = (dir.path().join("M.parquet"), dir.path().join("M.csv"));
        spooled.close(Some(&csv)).unwrap();
        // Many batches, so every formatting thread takes several, and the lines must come back
        // in the spool's order.
        let mut expected = Vec::new();
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut expected);
            for b in &batches {
                w.write(b).unwrap();
            }
        }
        let written = std::fs::read(&csv).unwrap();
        assert!(written == expected, "the CSV detail differs from arrow's");
        let read: Vec<RecordBatch> =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(&parquet).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let schema = read[0].schema();
        let all = |bs: &[RecordBatch]| {
            datafusion::arrow::compute::concat_batches(&schema, bs.iter()).unwrap()
        };
        let cast: Vec<RecordBatch> = batches
            .iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).unwrap())
            .collect();
        assert_eq!(all(&read), all(&cast));
        // The spool file is gone.
        assert!(!spooled_path_exists(dir.path()));
    }

    #[test]
    fn the_parquet_detail_is_the_same_bytes_however_the_passes_cut_it() {
        let dir = tempfile::tempdir().unwrap();
        let batches = passes();
        let (one, several) = (dir.path().join("one"), dir.path().join("several"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(&several).unwrap();
        let whole =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        // A pass whose plan says a column may be null, as an empty block's can: the file's
        // schema was fixed at the first pass, so every column is declared nullable.
        let nullable_pass = RecordBatch::try_new(
            nullable(&batches[1].schema()),
            batches[1].columns().to_vec(),
        )
        .unwrap();
        let mut cut = batches.clone();
        cut[1] = nullable_pass;
        spool_passes(&one, &[whole]).1.close(None).unwrap();
        spool_passes(&several, &cut).1.close(None).unwrap();
        let read = |d: &Path| std::fs::read(d.join("M.parquet")).unwrap();
        assert!(read(&one) == read(&several), "the passes changed the bytes");
    }

    #[tokio::test]
    async fn a_query_of_the_spool_reads_the_columns_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let batches = passes();
        let (_spool, spooled) = spool_passes(dir.path(), &batches);
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_table("d", spooled.table(3).unwrap()).unwrap();
        let df = ctx
            .sql("SELECT sum(n) AS n, count(why) AS why FROM d")
            .await
            .unwrap();
        // The scan asks the spool for the two columns only.
        let mut leaf = df.clone().create_physical_plan().await.unwrap();
        while let Some(child) = leaf.children().first().map(|c| (*c).clone()) {
            leaf = child;
        }
        let read: Vec<String> = leaf
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(read, ["n", "why"]);
        let got = df.collect().await.unwrap();
        let rows: i64 = batches.iter().map(|b| b.num_rows() as i64).sum();
        let n = got[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(n.value(0), rows * (rows - 1) / 2);
        let why = got[0]
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(
            why.value(0),
            (0..rows).filter(|i| i % 3 != 0).count() as i64
        );
    }

    #[test]
    fn csv_by_default_up_to_a_spreadsheets_rows() {
        assert!(DetailCsv::Auto.writes(0));
        assert!(DetailCsv::Auto.writes(1_048_575));
        assert!(!DetailCsv::Auto.writes(1_048_576));
        assert!(DetailCsv::Always.writes(10_000_000));
        assert!(!DetailCsv::Never.writes(1));
    }

    #[test]
    fn without_a_csv_path_only_the_parquet_detail_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let batches = passes();
        let (_spool, spooled) = spool_passes(dir.path(), &batches);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(spooled.rows(), rows as u64);
        let parquet = dir.path().join("M.parquet");
        spooled.close(None).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(&parquet).unwrap(),
            )
            .unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), rows as i64);
        assert!(
            !walk(dir.path())
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "csv"))
        );
        assert!(!spooled_path_exists(dir.path()));
    }

    #[test]
    fn a_detail_with_no_rows_is_a_header_and_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path()).unwrap();
        let (parquet, csv) = (dir.path().join("M.parquet"), dir.path().join("M.csv"));
        spool.write_detail("M", parquet.clone(), Privacy::default());
        let schema = passes()[0].schema();
        let spooled = spool.finish("M", &schema).unwrap();
        spooled.close(Some(&csv)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "member_id,n,anchor_date,why\n"
        );
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(&parquet).unwrap(),
            )
            .unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }

    fn spooled_path_exists(dir: &Path) -> bool {
        walk(dir)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "arrow"))
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
