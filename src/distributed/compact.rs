//! Compacting a cluster stage's output before Ballista writes it as Arrow IPC.
//!
//! A string-view column of a batch points into data buffers that may hold far more than its
//! rows (a join's output batches share its build side's buffers; an aggregate's picks point into
//! the batches they were picked from). In memory that costs nothing; Arrow IPC, which carries
//! a stage's output to the next stage and the results to the client, writes those buffers whole
//! with every batch: a step of HH-ENGAGE over 100,000 members (100 MB of rows) became a 19 GB
//! shuffle file, and a full run's client reached 20 GB. Ballista compacts the batches of its
//! sort shuffle only; [`CompactViewsExec`] does so under every other shuffle writer, on each
//! executor, as it decodes a stage ([`super::PhysicalCodec`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::statistics::ChildStats;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};
use futures::StreamExt;

/// Passes its input's batches on with every string- and binary-view column (struct fields
/// included) holding only the bytes its rows use.
#[derive(Debug)]
pub(crate) struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        CompactViewsExec { input }
    }
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &str {
        "CompactViewsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(CompactViewsExec::new(input))),
            _ => internal_err!("CompactViewsExec has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let batches = self
            .input
            .execute(partition, context)?
            .map(|batch| batch.and_then(|b| Ok(compact_views(b)?)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.input.metrics()
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

/// `batch` with its view columns compacted; other columns as they are (Arrow IPC writes only
/// the rows of a slice of any other type).
pub(crate) fn compact_views(
    batch: RecordBatch,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    if !batch.columns().iter().any(|c| has_views(c.data_type())) {
        return Ok(batch);
    }
    let columns = batch.columns().iter().map(compact_column).collect();
    RecordBatch::try_new(batch.schema(), columns)
}

fn has_views(t: &DataType) -> bool {
    match t {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::Struct(fields) => fields.iter().any(|f| has_views(f.data_type())),
        _ => false,
    }
}

fn compact_column(c: &ArrayRef) -> ArrayRef {
    match c.data_type() {
        DataType::Utf8View => Arc::new(c.as_string_view().gc()),
        DataType::BinaryView => Arc::new(c.as_binary_view().gc()),
        DataType::Struct(fields) if has_views(c.data_type()) => {
            let s = c.as_struct();
            let columns = s.columns().iter().map(compact_column).collect();
            Arc::new(StructArray::new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            ))
        }
        _ => c.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Fields, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;

    fn ipc_bytes(batch: &RecordBatch) -> usize {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        drop(w);
        out.len()
    }

    /// Two rows of a 10,000-row view column (strings longer than a view holds inline), alone
    /// and inside a struct, as a join's output batch would be.
    fn sliced() -> RecordBatch {
        let long: StringViewArray = (0..10_000)
            .map(|i| Some(format!("member-identifier-{i:08}")))
            .collect();
        let two = long.slice(5_000, 2);
        let fields = Fields::from(vec![Field::new("id", DataType::Utf8View, true)]);
        let nested = StructArray::new(fields.clone(), vec![Arc::new(two.clone())], None);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8View, true),
            Field::new("n", DataType::Int32, false),
            Field::new("span", DataType::Struct(fields), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(two),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(nested),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_slice_of_views_is_written_as_its_rows_only() {
        let batch = sliced();
        let before = ipc_bytes(&batch);
        let compacted = compact_views(batch.clone()).unwrap();
        let after = ipc_bytes(&compacted);
        // The whole 10,000 strings (about 270 KB), twice, before; two strings after.
        assert!(before > 400_000, "{before}");
        assert!(after < 2_000, "{after}");
        assert_eq!(compacted, batch, "the same rows");
    }

    #[test]
    fn batches_without_views_pass_unchanged() {
        let schema = Schema::new(vec![Field::new("n", DataType::Int32, false)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let out = compact_views(batch.clone()).unwrap();
        assert!(Arc::ptr_eq(batch.column(0), out.column(0)));
    }
}
