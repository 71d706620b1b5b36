//! The Parquet detail encoded column by column on every core. Encoding is most of writing a
//! statewide detail (dictionaries, pages, ZSTD: 0.7 s per million rows of thirty columns), and
//! one `ArrowWriter` encodes on one thread while the other core idles. Each column of a batch is
//! encoded by the column writer `ArrowWriter` itself would use, the columns shared out between
//! threads; row groups are cut where `ArrowWriter` cuts them, so the bytes are its bytes.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use datafusion::parquet::file::writer::SerializedFileWriter;

use crate::error::{Error, Result};

/// A Parquet file written as [`crate::results::detail_writer`] writes it, each batch's
/// columns encoded on `threads` threads.
pub struct ColumnParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    max_rows: Option<usize>,
    threads: usize,
    /// The row group being encoded: a writer per leaf column, and its rows so far.
    group: Option<(Vec<ArrowColumnWriter>, usize)>,
}

impl<W: Write + Send> ColumnParallelWriter<W> {
    /// The detail's writer for `out` (hhq's fixed properties).
    pub fn new(out: W, schema: SchemaRef, threads: usize) -> Result<Self> {
        Self::from_writer(
            crate::results::detail_writer(out, schema.clone())?,
            schema,
            threads,
        )
    }

    /// Take over `writer` (nothing written yet), whose rows are `schema`'s.
    fn from_writer(writer: ArrowWriter<W>, schema: SchemaRef, threads: usize) -> Result<Self> {
        let (file, factory) = writer.into_serialized_writer()?;
        let props = file.properties();
        // hhq's properties cut row groups by rows only; a byte limit would cut where only
        // `ArrowWriter`'s estimates know.
        if props.max_row_group_bytes().is_some() {
            return Err(Error::Failed(
                "the detail's Parquet properties limit a row group's bytes".into(),
            ));
        }
        let max_rows = props.max_row_group_row_count();
        Ok(ColumnParallelWriter {
            file,
            factory,
            schema,
            max_rows,
            threads: threads.max(1),
            group: None,
        })
    }

    /// Encode `batch`, closing a row group when it holds the most rows one may.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let (writers, buffered) = match &mut self.group {
            Some(group) => group,
            group => group.insert((
                self.factory
                    .create_column_writers(self.file.flushed_row_groups().len())?,
                0,
            )),
        };
        if let Some(max) = self.max_rows
            && *buffered + rows > max
        {
            let first = max - *buffered;
            self.write(&batch.slice(0, first))?;
            return self.write(&batch.slice(first, rows - first));
        }
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(writers.len());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        encode(writers, &leaves, self.threads)?;
        *buffered += rows;
        if self.max_rows.is_some_and(|max| *buffered >= max) {
            self.flush()?;
        }
        Ok(())
    }

    /// Close the row group being encoded, if any, appending its column chunks to the file.
    fn flush(&mut self) -> Result<()> {
        let Some((writers, _)) = self.group.take() else {
            return Ok(());
        };
        let mut group = self.file.next_row_group()?;
        for writer in writers {
            writer.close()?.append_to_row_group(&mut group)?;
        }
        group.close()?;
        Ok(())
    }

    /// Close the last row group and write the footer.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.file.close()?;
        Ok(())
    }
}

/// Write each leaf to its writer, the columns dealt out to `threads` threads in turn (so the
/// string columns, the costliest, are spread rather than bunched).
fn encode(
    writers: &mut [ArrowColumnWriter],
    leaves: &[ArrowLeafColumn],
    threads: usize,
) -> Result<()> {
    let mut shares: Vec<Vec<(&mut ArrowColumnWriter, &ArrowLeafColumn)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (i, pair) in writers.iter_mut().zip(leaves).enumerate() {
        shares[i % threads].push(pair);
    }
    let write = |share: Vec<(&mut ArrowColumnWriter, &ArrowLeafColumn)>| -> Result<()> {
        for (writer, leaf) in share {
            writer.write(leaf)?;
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let mut shares = shares.into_iter();
        let here = shares.next().unwrap_or_default();
        let others: Vec<_> = shares.map(|share| s.spawn(move || write(share))).collect();
        let mut result = write(here);
        for other in others {
            let done = other.join().expect("a column encoder does not panic");
            result = result.and(done);
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;

    use super::*;

    /// Batches of uneven sizes, so row groups of 1,000 rows are cut inside batches.
    fn batches() -> Vec<RecordBatch> {
        super::super::uneven_batches(&[700, 1, 2_600, 299, 1_000, 0, 1_333])
    }

    /// On one thread or several, the file is byte for byte `ArrowWriter`'s.
    #[test]
    fn the_bytes_are_arrow_writers() {
        let batches = batches();
        let schema = batches[0].schema();
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(1_000))
                .build()
        };
        let mut expected = Vec::new();
        let mut w = ArrowWriter::try_new(&mut expected, schema.clone(), Some(props())).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        for threads in [1, 2, 3] {
            let mut ours = Vec::new();
            let writer = ArrowWriter::try_new(&mut ours, schema.clone(), Some(props())).unwrap();
            let mut w = ColumnParallelWriter::from_writer(writer, schema.clone(), threads).unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
            w.close().unwrap();
            assert!(ours == expected, "{threads} thread(s): the bytes differ");
        }
    }
}
