//! The cluster (cargo feature `ballista`): the same compiled measures run on an Apache Ballista
//! cluster, DataFusion's own distributed engine (docs/distributed.md).
//!
//! Owns what a cluster needs beyond DataFusion's serialisation: the codecs that carry hhq's SQL
//! functions to the scheduler and executors (the value-set lookup with its codes; every other
//! function by name) and in-memory tables (the optional risk-weight input), the client session
//! (`--engine ballista://HOST:PORT`, or `--engine standalone` for a scheduler and executor in
//! process), and the `hhq cluster scheduler|executor` processes, whose sessions register hhq's
//! functions so that any plan a client sends can run on them.

use super::compact;

use std::collections::HashMap;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::Backend;
use crate::error::{Error, Result};

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// Every SQL function hhq registers ([`crate::functions::fixed`]), by name; the value-set
/// lookup aside: its codes travel with each plan.
#[derive(Debug)]
struct Functions {
    scalar: HashMap<String, Arc<ScalarUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
}

fn functions() -> Functions {
    let (scalar, aggregate) = crate::functions::fixed();
    Functions { scalar, aggregate }
}

/// The first bytes of a table hhq's codec wrote, so that decoding tells its own from Ballista's.
const MEM_TABLE_MAGIC: &[u8] = b"hhq-memtable-ipc:";

/// The encoding of a [`compact::CompactViewsExec`] (it has no settings; its input travels as
/// its child).
const COMPACT_VIEWS_MAGIC: &[u8] = b"hhq-compact-views";

/// Ballista's logical codec, and hhq's functions and in-memory tables.
#[derive(Debug)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    functions: Functions,
}

impl Default for LogicalCodec {
    fn default() -> Self {
        LogicalCodec {
            inner: BallistaLogicalExtensionCodec::default(),
            functions: functions(),
        }
    }
}

/// Ballista's physical codec, and hhq's functions.
#[derive(Debug)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    functions: Functions,
}

impl Default for PhysicalCodec {
    fn default() -> Self {
        PhysicalCodec {
            inner: BallistaPhysicalExtensionCodec::default(),
            functions: functions(),
        }
    }
}

/// A scalar function of hhq's, by name; the lookup from the codes encoded with it.
fn decode_udf(functions: &Functions, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
    if name == crate::functions::lookup::LOOKUP_FUNCTION {
        return Ok(Arc::new(crate::functions::lookup::from_wire(buf)?));
    }
    functions.scalar.get(name).cloned().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "no SQL function `{name}` on this node: is it an hhq node (`hhq cluster`) of the \
             same version?"
        ))
    })
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
    if let Some(bytes) = crate::functions::lookup::to_wire(node) {
        buf.extend_from_slice(&bytes);
    }
    Ok(())
}

fn decode_udaf(functions: &Functions, name: &str) -> DfResult<Arc<AggregateUDF>> {
    functions.aggregate.get(name).cloned().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "no aggregate function `{name}` on this node: is it an hhq node (`hhq cluster`) of \
             the same version?"
        ))
    })
}

/// An in-memory table's rows as an Arrow IPC stream, one partition after another.
fn encode_mem_table(table: &MemTable, buf: &mut Vec<u8>) -> DfResult<()> {
    buf.extend_from_slice(MEM_TABLE_MAGIC);
    let mut writer = StreamWriter::try_new(&mut *buf, &table.schema())?;
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|_| {
            DataFusionError::Internal("an in-memory table is being written to".into())
        })?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
    }
    writer.finish()?;
    Ok(())
}

fn decode_mem_table(
    bytes: &[u8],
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> DfResult<MemTable> {
    let reader = StreamReader::try_new(bytes, None)?;
    let batches = reader.collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
    MemTable::try_new(schema, vec![batches])
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: datafusion::arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match buf.strip_prefix(MEM_TABLE_MAGIC) {
            Some(ipc) => Ok(Arc::new(decode_mem_table(ipc, schema)?)),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        match node.downcast_ref::<MemTable>() {
            Some(table) => encode_mem_table(table, buf),
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(&self.functions, name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        decode_udaf(&self.functions, name)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use ballista_core::execution_plans::ShuffleWriterExec;
        use compact::CompactViewsExec;
        use datafusion::physical_plan::execution_plan::{
            ChildrenPropertiesMode, ReplaceChildrenOptions,
        };
        if buf == COMPACT_VIEWS_MAGIC {
            return match inputs {
                [input] => Ok(Arc::new(CompactViewsExec::new(input.clone()))),
                _ => Err(DataFusionError::Internal(
                    "CompactViewsExec has one input".into(),
                )),
            };
        }
        let node = self.inner.try_decode(buf, inputs, ctx, proto_converter)?;
        // A stage's writer (the root of the plan an executor runs): its input compacted, as
        // Arrow IPC writes a view column's buffers whole with each batch (see `compact`).
        // Ballista's sort shuffle compacts its own batches.
        if node.is::<ShuffleWriterExec>()
            && let [input] = node.children().as_slice()
            && !input.is::<CompactViewsExec>()
        {
            let input = Arc::new(CompactViewsExec::new((*input).clone()));
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            return node.replace_children(vec![input], options);
        }
        Ok(node)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if node.is::<compact::CompactViewsExec>() {
            buf.extend_from_slice(COMPACT_VIEWS_MAGIC);
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(&self.functions, name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        decode_udaf(&self.functions, name)
    }
}

/// `config` carrying hhq's codecs, as every node of a cluster reads them from it.
fn with_codecs(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
}

/// A scheduler's or executor's session for `config`: DataFusion's and Ballista's functions, and
/// hhq's.
fn node_state(config: SessionConfig) -> DfResult<SessionState> {
    use datafusion::execution::FunctionRegistry;
    let mut state = ballista_core::utils::default_session_builder(with_codecs(config))?;
    let hhq = functions();
    for f in hhq.scalar.into_values() {
        state.register_udf(f)?;
    }
    for f in hhq.aggregate.into_values() {
        state.register_udaf(f)?;
    }
    Ok(state)
}

/// The client session of a run on `backend`, over a local session's settings, functions and
/// memory pool (`local`): queries are planned here and executed by the cluster.
pub(super) async fn connect(backend: &Backend, local: &SessionContext) -> Result<SessionContext> {
    let state = local.state();
    // Ballista's adaptive planner (on by default in 55) re-plans joins between stages after
    // DataFusion has built their dynamic filters, which fails a scheduler assertion on hhq's
    // enrolment joins and leaves the job waiting for ever: stages are planned once, up front.
    // DataFusion's dynamic join filters meet the same assertion when the scheduler orders a
    // join's inputs by the sizes of finished stages: off (they prune, they change no result).
    // Round-robin repartitioning the scheduler turns off itself, with a warning per query.
    // Ballista's settings for a cluster first (strings read as `Utf8`, not views: Arrow IPC
    // sends a view array's whole buffers with each slice of it, which multiplied a block of
    // 300 MB into 16 GB on the client), before the codecs mark the config as upgraded.
    let upgraded =
        ballista::prelude::SessionConfigExt::upgrade_for_ballista(state.config().clone());
    let mut config = with_codecs(upgraded)
        .with_ballista_adaptive_query_planner(false)
        .with_round_robin_repartition(false);
    // Hash joins, as in a local run: Ballista's default, sort-merge joins, sorts millions of
    // claim lines for each join (five times the local run's time at 100,000 members). Each
    // planned partitioned: Ballista itself broadcasts a small side where that is safe (up to
    // 128 MB). A join DataFusion plans as `CollectLeft` whose build side's unmatched rows count
    // (LEFT, FULL, semi and anti joins) Ballista replans partitioned, without giving an operator
    // above it that reads one partition (a `count(*)`, a Parquet writer) the others: it drops
    // them (hh_enrollment's `count(*)`: 172 rows of 360).
    let prefer_hash = state.config().options().optimizer.prefer_hash_join;
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.prefer_hash_join = prefer_hash;
    optimizer.hash_join_single_partition_threshold = 0;
    optimizer.hash_join_single_partition_threshold_rows = 0;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    let ctx = match backend {
        Backend::Local => return Ok(local.clone()),
        Backend::Standalone => {
            let url = in_process().await?;
            SessionContext::remote_with_state(&url, state).await
        }
        Backend::Remote { url, .. } => SessionContext::remote_with_state(url, state).await,
    };
    let ctx = ctx.map_err(|e| Error::Usage(format!("cannot start the {backend} engine: {e}")))?;
    // Ballista's session replaces the lists of functions with its own: hhq's again.
    crate::functions::register_fixed(&ctx);
    Ok(ctx)
}

/// `--engine standalone`: hhq's own scheduler and executor (every core, push scheduling, as a
/// cluster's nodes) on free localhost ports, served by this process until it ends; the
/// scheduler's address. Not Ballista's standalone mode: its executor polls for tasks, which
/// took the test data 61 s against 17 s on a cluster of `hhq cluster` nodes.
async fn in_process() -> Result<String> {
    let free_port = || {
        std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::Usage(format!("no free local port for the standalone engine: {e}")))
    };
    let (sched, flight, grpc) = (free_port()?, free_port()?, free_port()?);
    // The executor listens for Ctrl-C itself (to leave a cluster cleanly), which would take the
    // signal from the run: the run ends on it, as it does without the engine (exit 130; what
    // it was writing is not published: `output::Staged`).
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    let listening = |port: u16, what: &'static str| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return Err(Error::Usage(format!(
                    "the standalone engine's {what} did not start on port {port}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    };
    // A node that stops is reported; the run then fails on its next query.
    tokio::spawn(async move {
        if let Err(e) = scheduler("127.0.0.1", sched).await {
            eprintln!("error: the standalone engine's scheduler: {e}");
        }
    });
    listening(sched, "scheduler").await?;
    tokio::spawn(async move {
        let opts = ExecutorOptions {
            scheduler_host: "127.0.0.1".into(),
            scheduler_port: sched,
            bind: "127.0.0.1".into(),
            port: flight,
            grpc_port: grpc,
            external_host: Some("127.0.0.1".into()),
            concurrent_tasks: 0,
            work_dir: None,
        };
        if let Err(e) = executor(opts).await {
            eprintln!("error: the standalone engine's executor: {e}");
        }
    });
    listening(flight, "executor").await?;
    Ok(format!("ballista://127.0.0.1:{sched}"))
}

/// `hhq cluster scheduler`: a Ballista scheduler whose sessions know hhq's functions, serving
/// until the process is stopped.
pub async fn scheduler(bind: &str, port: u16) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let mut config = SchedulerConfig::default()
        .with_hostname(bind.to_string())
        .with_port(port)
        .with_override_session_builder(Arc::new(node_state))
        // The scheduler hands tasks to executors as stages become ready, rather than waiting
        // for each executor's next poll: a measure is a chain of many short stages.
        .with_scheduler_policy(TaskSchedulingPolicy::PushStaged);
    config.bind_host = bind.to_string();
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    let address = format!("{bind}:{port}")
        .parse()
        .map_err(|e| Error::Usage(format!("`{bind}:{port}` is not an address to bind: {e}")))?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| Error::Usage(format!("cannot set up the scheduler: {e}")))?;
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| Error::Usage(format!("the scheduler stopped: {e}")))
}

/// What `hhq cluster executor` is told.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Where this executor listens (Arrow Flight), and the host the scheduler and other
    /// executors reach it at.
    pub bind: String,
    pub port: u16,
    pub grpc_port: u16,
    pub external_host: Option<String>,
    /// Tasks run at once; 0 for every core.
    pub concurrent_tasks: usize,
    /// Where shuffle files are written; a temporary directory when `None`.
    pub work_dir: Option<String>,
}

/// `hhq cluster executor`: a Ballista executor whose sessions know hhq's functions, serving
/// until the process is stopped.
pub async fn executor(opts: ExecutorOptions) -> Result<()> {
    use ballista_core::registry::BallistaFunctionRegistry;
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let state = node_state(SessionConfig::new_with_ballista())?;
    let config = ExecutorProcessConfig {
        scheduler_host: opts.scheduler_host,
        scheduler_port: opts.scheduler_port,
        bind_host: opts.bind,
        port: opts.port,
        grpc_port: opts.grpc_port,
        external_host: opts.external_host,
        vcores: opts.concurrent_tasks,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: opts.work_dir,
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_config_producer: Some(Arc::new(
            || with_codecs(SessionConfig::new_with_ballista()),
        )),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::Usage(format!("the executor stopped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::FunctionRegistry;

    /// The lookup's codes travel with it: the decoded function answers as the registered one.
    #[test]
    fn the_value_set_lookup_round_trips_with_its_codes() {
        let mut sets = crate::measure::valueset::ValueSets::default();
        sets.add_csv(
            std::path::Path::new("v.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F20*\nmh,ICD10CM,F329\nsud,ICD10CM,F10*\n",
        )
        .unwrap();
        let ctx = SessionContext::new();
        crate::functions::lookup::register(&ctx, &sets);
        let udf = ctx.udf(crate::functions::lookup::LOOKUP_FUNCTION).unwrap();
        let codec = PhysicalCodec::default();
        let mut buf = Vec::new();
        codec.try_encode_udf(&udf, &mut buf).unwrap();
        assert!(!buf.is_empty(), "the codes are encoded");
        let decoded = codec.try_decode_udf(udf.name(), &buf).unwrap();
        assert_eq!(
            crate::functions::lookup::to_wire(&decoded).unwrap(),
            buf,
            "the same sets, codes and prefixes"
        );
        // Any other hhq function by name; an unknown one says what to check.
        assert!(codec.try_decode_udf("hhq_age", &[]).is_ok());
        assert!(codec.try_decode_udaf("hhq_first_id", &[]).is_ok());
        let unknown = codec
            .try_decode_udf("no_such_fn", &[])
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("no SQL function `no_such_fn`"),
            "{unknown}"
        );
    }

    /// An in-memory table (the risk weights) travels as its rows.
    #[test]
    fn an_in_memory_table_round_trips() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int32Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let table =
            MemTable::try_new(schema.clone(), vec![vec![batch.clone()], vec![batch]]).unwrap();
        let codec = LogicalCodec::default();
        let mut buf = Vec::new();
        let name = TableReference::bare("t");
        codec
            .try_encode_table_provider(&name, Arc::new(table), &mut buf)
            .unwrap();
        let ctx = SessionContext::new();
        let back = codec
            .try_decode_table_provider(&buf, &name, schema, &ctx.task_ctx())
            .unwrap();
        let back = back.downcast_ref::<MemTable>().unwrap();
        let rows: usize = back
            .batches
            .iter()
            .map(|p| {
                p.try_read()
                    .unwrap()
                    .iter()
                    .map(|b| b.num_rows())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(rows, 4);
    }
    /// An executor decoding a stage finds its writer's input compacted (`compact`), and a plan
    /// holding the compaction encodes and decodes once more without a second one.
    #[test]
    fn a_stage_writer_decodes_with_its_input_compacted() {
        use ballista_core::execution_plans::ShuffleWriterExec;
        use datafusion::physical_plan::empty::EmptyExec;
        use datafusion_proto::bytes::{
            physical_plan_from_bytes_with_extension_codec,
            physical_plan_to_bytes_with_extension_codec,
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "id",
            DataType::Utf8View,
            true,
        )]));
        let input = Arc::new(EmptyExec::new(schema));
        let writer = ShuffleWriterExec::try_new("job".into(), 1, input, "/tmp".into()).unwrap();
        let codec = PhysicalCodec::default();
        let ctx = SessionContext::new();
        let round_trip = |plan: Arc<dyn ExecutionPlan>| {
            let bytes = physical_plan_to_bytes_with_extension_codec(plan, &codec).unwrap();
            physical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap()
        };
        let names = |plan: &Arc<dyn ExecutionPlan>| {
            let mut names = vec![plan.name().to_string()];
            let mut at = plan.clone();
            while let Some(child) = at.children().first().map(|c| (*c).clone()) {
                names.push(child.name().to_string());
                at = child;
            }
            names
        };
        let once = round_trip(Arc::new(writer));
        assert_eq!(
            names(&once),
            ["ShuffleWriterExec", "CompactViewsExec", "EmptyExec"]
        );
        assert_eq!(names(&round_trip(once.clone())), names(&once));
    }
}
