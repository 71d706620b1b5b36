//! Extract files read in byte-range chunks that the streams of a scan take from one queue.
//!
//! DataFusion splits a large Parquet file into one contiguous byte range per core. A pass over
//! a range of member ids (extracts sorted by member) reads a few row groups in one part of the
//! file: they all fall in one core's range, and the other core, its row groups all pruned, sits
//! idle (a pass at a million members read its claims 1.6 times slower than the same rows in a
//! file of their own). Cut into chunks of a few megabytes, the file is read as a queue that every
//! stream of the scan takes from (DataFusion 55's work stealing between sibling streams), so the
//! row groups a pass keeps are shared out whatever part of the file they are in. A row group is
//! read by the chunk holding its middle, so the chunks read each row exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Constraints, Result, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// Bytes per chunk: a few row groups of a large extract, and one chunk for a small file.
const CHUNK_BYTES: u64 = 8 << 20;

/// A table read as its inner table is, its files cut into chunks (see the module).
#[derive(Debug)]
pub(crate) struct Chunked {
    inner: Arc<dyn TableProvider>,
    bytes: u64,
}

impl Chunked {
    pub(crate) fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        Arc::new(Chunked {
            inner,
            bytes: CHUNK_BYTES,
        })
    }
}

#[async_trait]
impl TableProvider for Chunked {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        chunked(
            self.inner.scan(state, projection, filters, limit).await?,
            self.bytes,
        )
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        Ok(ScanResult::new(chunked(plan, self.bytes)?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// The plan with every file scan's files cut into chunks, unless the scan must keep its files'
/// order (then streams do not share work, and chunks would only add opens).
fn chunked(plan: Arc<dyn ExecutionPlan>, bytes: u64) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        if config.preserve_order || !config.output_ordering.is_empty() {
            return Ok(Transformed::no(node));
        }
        let groups: Vec<FileGroup> = config
            .file_groups
            .iter()
            .map(|g| FileGroup::new(g.iter().flat_map(|f| cut(f, bytes)).collect()))
            .collect();
        let before: usize = config.file_groups.iter().map(FileGroup::len).sum();
        let after: usize = groups.iter().map(FileGroup::len).sum();
        if after == before {
            return Ok(Transformed::no(node));
        }
        let config = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(groups)
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })
    .map(|t| t.data)
}

/// A file (or its range) as consecutive chunks of at most `bytes`.
fn cut(file: &PartitionedFile, bytes: u64) -> Vec<PartitionedFile> {
    let (start, end) = file.range();
    let mut chunks = Vec::new();
    let mut from = start;
    while from < end {
        let to = end.min(from + bytes.max(1));
        let mut chunk = file.clone();
        chunk.range = Some(FileRange {
            start: from as i64,
            end: to as i64,
        });
        chunks.push(chunk);
        from = to;
    }
    if chunks.is_empty() {
        chunks.push(file.clone());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    const TOTALS: &str = "SELECT count(*) AS n, count(DISTINCT claim_id) AS claims, \
        sum(paid_amount) AS paid, min(member_id) AS first, max(service_to) AS last FROM t";

    async fn totals(chunk: Option<u64>) -> (String, String) {
        let ctx = SessionContext::new();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/claims.parquet");
        ctx.register_parquet("t", path, ParquetReadOptions::default())
            .await
            .unwrap();
        if let Some(bytes) = chunk {
            let inner = ctx.table_provider("t").await.unwrap();
            ctx.deregister_table("t").unwrap();
            ctx.register_table("t", Arc::new(Chunked { inner, bytes }))
                .unwrap();
        }
        let df = ctx.sql(TOTALS).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        let batches = df.collect().await.unwrap();
        let values = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        (values, shown)
    }

    #[tokio::test]
    async fn chunks_read_every_row_once() {
        let (plain, _) = totals(None).await;
        // Chunks far smaller than a row group: most hold no row group's middle and read nothing.
        let (chunked, plan) = totals(Some(4096)).await;
        assert_eq!(chunked, plain);
        let ranges = plan.matches("claims.parquet:").count();
        assert!(ranges > 50, "{ranges} ranges: {plan}");
    }

    #[test]
    fn chunks_cover_the_file_end_to_end() {
        let file = PartitionedFile::new("f.parquet", 20_000_001);
        let chunks = cut(&file, 8 << 20);
        let ranges: Vec<(u64, u64)> = chunks.iter().map(|c| c.range()).collect();
        assert_eq!(
            ranges,
            vec![(0, 8 << 20), (8 << 20, 16 << 20), (16 << 20, 20_000_001)]
        );
        let ranged = PartitionedFile::new_with_range("f.parquet".into(), 100, 10, 30);
        let ranges: Vec<(u64, u64)> = cut(&ranged, 8).iter().map(|c| c.range()).collect();
        assert_eq!(ranges, vec![(10, 18), (18, 26), (26, 30)]);
    }
}
