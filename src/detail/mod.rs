//! Member-level detail across a run's passes. A run over more members than it holds at once
//! computes them range by range (see [`crate::engine::Engine::member_ranges`]); each measure's
//! detail from each pass is appended to a spool file (Arrow IPC, beside the staged outputs),
//! the result rows are aggregated from that file as from one table, and the detail is then
//! written out, Parquet and CSV, a batch at a time. So a run holds one pass's detail at most,
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
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::error::{Error, Result};

mod csv;
mod parquet;
use crate::privacy::Privacy;

/// Rows per spooled batch (DataFusion's batch size).
const BATCH_ROWS: usize = 8192;

/// The spool files of a run's measures, in a temporary directory removed when dropped.
pub struct Spool {
    dir: tempfile::TempDir,
    files: BTreeMap<String, Spooling>,
}

/// One measure's spool file being written.
struct Spooling {
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
    /// Batches of [`BATCH_ROWS`] rows, whatever the passes gave: the Parquet writer cuts pages
    /// by batch, so its bytes then do not depend on how many passes there were.
    coalescer: BatchCoalescer,
    /// The first batch's schema, every column nullable: what the file holds. Passes can
    /// differ in the nullability their batches report (an empty block in one pass), never in
    /// types.
    spooled: SchemaRef,
    /// The first batch's schema, a column nullable if any pass's batches said so: what the
    /// outputs declare (as a run of one pass would).
    seen: SchemaRef,
    rows: u64,
}

/// A measure's detail, every pass of it, in one file.
pub struct Spooled {
    path: PathBuf,
    spooled: SchemaRef,
    schema: SchemaRef,
    rows: u64,
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
        })
    }

    /// Append one pass's detail of measure `id`.
    pub fn append(&mut self, id: &str, batches: &[RecordBatch]) -> Result<()> {
        for b in batches {
            let s = match self.files.entry(id.to_string()) {
                std::collections::btree_map::Entry::Occupied(s) => s.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let path = self.dir.path().join(format!("{id}.arrow"));
                    v.insert(Spooling::create(path, b.schema())?)
                }
            };
            s.seen = widen(&s.seen, &b.schema());
            let batch =
                RecordBatch::try_new(s.spooled.clone(), b.columns().to_vec()).map_err(|e| {
                    Error::Failed(format!(
                        "measure {id}: a pass's detail differs in type: {e}"
                    ))
                })?;
            s.rows += batch.num_rows() as u64;
            s.coalescer.push_batch(batch)?;
            while let Some(b) = s.coalescer.next_completed_batch() {
                s.writer.write(&b)?;
            }
        }
        Ok(())
    }

    /// Close measure `id`'s file: its detail is complete. With no rows in any pass, the file
    /// is empty, with the schema its plan gives (`planned`).
    pub fn finish(&mut self, id: &str, planned: &SchemaRef) -> Result<Spooled> {
        let mut s = match self.files.remove(id) {
            Some(s) => s,
            None => Spooling::create(self.dir.path().join(format!("{id}.arrow")), planned.clone())?,
        };
        s.coalescer.finish_buffered_batch()?;
        while let Some(b) = s.coalescer.next_completed_batch() {
            s.writer.write(&b)?;
        }
        s.writer.finish()?;
        Ok(Spooled {
            path: s.path,
            schema: s.seen,
            spooled: s.spooled,
            rows: s.rows,
        })
    }
}

/// A [`Spool`] appended to on threads of their own, so that the engine goes on computing while a
/// pass's details are compressed and written.
pub struct Spooler {
    spool: Arc<std::sync::Mutex<Spool>>,
    appending: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl Spooler {
    pub fn new(spool: Spool) -> Spooler {
        Spooler {
            spool: Arc::new(std::sync::Mutex::new(spool)),
            appending: Vec::new(),
        }
    }

    /// Append one pass's detail of measure `id` ([`Spool::append`]) on a thread of its own. A
    /// measure's passes go in order only when each waits for the last: [`Spooler::settle`]
    /// between passes.
    pub fn append(&mut self, id: String, batches: Vec<RecordBatch>) {
        let spool = self.spool.clone();
        self.appending.push(tokio::task::spawn_blocking(move || {
            spool.lock().expect("not poisoned").append(&id, &batches)
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

impl Spooling {
    fn create(path: PathBuf, schema: SchemaRef) -> Result<Spooling> {
        let spooled = nullable(&schema);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        // Zstandard at its fastest level: the spool is a fraction of the detail's size on disk,
        // and arrow reuses one (de)compression context for it. Its LZ4 frames allocate and clear
        // a buffer for every column of every batch read (a tenth of a run's time at 100k).
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(datafusion::arrow::ipc::CompressionType::ZSTD))?
            .try_with_compression_level(Some(1))?;
        let writer = FileWriter::try_new_with_options(BufWriter::new(file), &spooled, options)?;
        Ok(Spooling {
            path,
            writer,
            coalescer: BatchCoalescer::new(spooled.clone(), BATCH_ROWS),
            spooled,
            seen: schema,
            rows: 0,
        })
    }
}

impl Spooled {
    /// Rows of the detail, every pass's, before an audience's are kept.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The detail as a table for the engine to aggregate, read from the file a batch at a
    /// time in `partitions` streams (batch `i` in stream `i % partitions`).
    pub fn table(&self, partitions: usize) -> Result<Arc<dyn TableProvider>> {
        let of = partitions.max(1);
        let parts = (0..of)
            .map(|part| {
                Arc::new(SpoolPart {
                    path: self.path.clone(),
                    schema: self.spooled.clone(),
                    part,
                    of,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTable::try_new(
            self.spooled.clone(),
            parts,
        )?))
    }

    /// Write the detail as `privacy` allows to `parquet` and, if given, `csv`, a batch at a time;
    /// the spool file is removed after. The spool is read once; the Parquet writer takes each batch
    /// on a thread of its own and encodes its columns on every core ([`parquet`]), and the CSV
    /// lines are formatted on every core, a batch each, and written in order.
    pub fn write(self, privacy: &Privacy, parquet: &Path, csv: Option<&Path>) -> Result<()> {
        let empty = privacy.apply(&RecordBatch::new_empty(self.schema.clone()))?;
        let out_schema = empty.schema();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if csv.is_some() { cores } else { 0 };
        // A few batches in flight per thread: enough to keep each busy, a few MB each.
        const QUEUED: usize = 2;
        let read = std::thread::scope(|s| {
            let (to_parquet, parquet_rx) = sync_channel::<RecordBatch>(QUEUED * workers.max(1));
            let parquet_thread = s.spawn(move || {
                let file = File::create(parquet).map_err(|e| Error::io(parquet, e))?;
                let mut w =
                    parquet::ColumnParallelWriter::new(BufWriter::new(file), out_schema, cores)?;
                for batch in parquet_rx {
                    w.write(&batch)?;
                }
                w.close()?;
                Ok::<_, Error>(())
            });
            // Batch `i` is formatted by worker `i % workers`, whose results come back in the
            // order it took them: the writer reads the workers in turn and so writes in order.
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
            let csv_thread = csv.map(|csv| {
                s.spawn(move || {
                    let file = File::create(csv).map_err(|e| Error::io(csv, e))?;
                    let mut out = BufWriter::new(file);
                    let mut head = Vec::new();
                    // The header even when there are no rows.
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
                })
            });
            let read = (|| {
                for (i, batch) in self.batches(privacy)?.enumerate() {
                    let batch = batch?;
                    // A writer gone has failed: its error is the one to report.
                    let csv_gone =
                        workers > 0 && to_format[i % workers].send(batch.clone()).is_err();
                    if to_parquet.send(batch).is_err() || csv_gone {
                        break;
                    }
                }
                Ok::<_, Error>(())
            })();
            drop(to_parquet);
            drop(to_format);
            let parquet = parquet_thread
                .join()
                .expect("the Parquet writer does not panic");
            let csv =
                csv_thread.map_or(Ok(()), |t| t.join().expect("the CSV writer does not panic"));
            parquet.and(csv).and(read)
        });
        read?;
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }

    /// The spooled batches in order, with the outputs' schema, as `privacy` allows.
    fn batches<'a>(
        &'a self,
        privacy: &'a Privacy,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + 'a> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let reader = FileReader::try_new(std::io::BufReader::new(file), None)?;
        Ok(reader.map(move |b| {
            let b = RecordBatch::try_new(self.schema.clone(), b?.columns().to_vec())?;
            privacy.apply(&b)
        }))
    }
}

/// One stream of a spool file's batches: those whose index is `part` modulo `of`.
#[derive(Debug)]
struct SpoolPart {
    path: PathBuf,
    schema: SchemaRef,
    part: usize,
    of: usize,
}

impl PartitionStream for SpoolPart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (part, of) = (self.part, self.of);
        let reader = File::open(&self.path)
            .map_err(DataFusionError::from)
            .and_then(|f| Ok(FileReader::try_new(std::io::BufReader::new(f), None)?));
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

/// `a` with a column nullable where `b`'s is.
fn widen(a: &SchemaRef, b: &SchemaRef) -> SchemaRef {
    if a == b {
        return a.clone();
    }
    let fields: Vec<Field> = a
        .fields()
        .iter()
        .zip(b.fields())
        .map(|(x, y)| {
            x.as_ref()
                .clone()
                .with_nullable(x.is_nullable() || y.is_nullable())
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, a.metadata().clone()))
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

    /// Passes of uneven sizes, as a run's are.
    fn passes() -> Vec<RecordBatch> {
        uneven_batches(&[5_000, 1, 12_000, 8_192, 333, 30_000, 7])
    }

    /// `batches` spooled as measure `M`'s passes, one each, in a spool under `dir` (returned
    /// too: its directory goes when it is dropped).
    fn spool_passes(dir: &Path, batches: &[RecordBatch]) -> (Spool, Spooled) {
        let mut spool = Spool::new(dir).unwrap();
        for b in batches {
            spool.append("M", std::slice::from_ref(b)).unwrap();
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
        spooled
            .write(&Privacy::default(), &parquet, Some(&csv))
            .unwrap();
        // Many batches, so every formatting thread takes several, and the lines must come back
        // in the spool's order.
        let mut expected = Vec::new();
        {
            let mut w = crate::results::csv_writer(&mut expected);
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
        spooled.write(&Privacy::default(), &parquet, None).unwrap();
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
        let schema = passes()[0].schema();
        let spooled = spool.finish("M", &schema).unwrap();
        let (parquet, csv) = (dir.path().join("M.parquet"), dir.path().join("M.csv"));
        spooled
            .write(&Privacy::default(), &parquet, Some(&csv))
            .unwrap();
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
