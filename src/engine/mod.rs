//! The engine: one DataFusion session holding the extracts (checked against the contract), the
//! building blocks registered as views over them, and the execution of compiled measures. What
//! is computed when, and held until which reader, is a run plan's ([`crate::plan`]), which the
//! executor ([`crate::execute`]) carries out through the engine's methods.

mod cached;
mod overlay;
mod pool;
pub mod scan;

pub use cached::CachedDetail;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{SortColumn, SortOptions, lexsort_to_indices};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, PeakRecordingPool,
    TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::compile::blocks::Block;
use crate::compile::{Catalog, CompiledMeasure};
use crate::error::{Error, Result};
use crate::extract::{self, OpenedExtract};
use crate::results::{self, ResultRow};

use crate::definitions::Definitions;
use crate::distributed::{Backend, connect};
use crate::plan::{BlockLife, MeasureStages, MemberRange, format_size};
use crate::privacy::Audience;

/// How the claims extract resolved into final versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimVersions {
    /// Every line in the extract.
    pub lines_read: u64,
    /// Lines of final versions: what measures see.
    pub final_lines: u64,
    /// Lines of versions later replaced or voided.
    pub superseded_lines: u64,
    /// Lines of void transactions themselves.
    pub void_lines: u64,
}

/// What one measure's run produced.
pub struct MeasureRun {
    /// The result table rows.
    pub rows: Vec<ResultRow>,
    /// Member-level detail: one row per candidate unit (see [`CompiledMeasure::detail_sql`]).
    pub detail_schema: SchemaRef,
    pub detail: Vec<RecordBatch>,
}

/// One measure's member-level detail as a pass computed it ([`Engine::details`]).
pub struct PassDetail {
    /// The measure's place among those asked.
    pub index: usize,
    pub batches: Vec<RecordBatch>,
    /// The schema its plan gives (the batches' may differ in nullability).
    pub planned: SchemaRef,
    /// How long it took, beside the others.
    pub took: std::time::Duration,
}

/// An MCO or partner the enrollment extract has never heard of is a typo, not an empty
/// audience: the error names the known ones.
async fn check_scope(ctx: &SessionContext, scope: &Audience) -> Result<()> {
    let Some((column, id)) = scope.column() else {
        return Ok(());
    };
    let what = if column == "mco_id" { "MCO" } else { "partner" };
    let batches = ctx
        .sql(&format!(
            "SELECT DISTINCT {column} AS id FROM enrollment WHERE {column} IS NOT NULL ORDER BY 1"
        ))
        .await?
        .collect()
        .await?;
    let (_, rows) = results::text_rows(&batches)?;
    let known: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    if known.iter().any(|k| k == id) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "no {what} `{id}` in the enrollment extract; known: {}",
        known.join(", ")
    )))
}

/// The names the extracts are registered under, and nothing else of them: `<extract>__all`
/// (every row, typed) and `<extract>` (its usable rows). Their Parquet tables (`__raw`) are
/// held inside these views' plans only.
pub fn extract_names() -> Vec<String> {
    extract::contract::EXTRACTS
        .iter()
        .flat_map(|e| [e.name.to_string(), extract::all_rows(e)])
        .collect()
}

/// Leave in the session only the audience's rows. For an audience, each extract's
/// `<extract>__all` becomes a view of its rows of the audience's members (the plan holds the
/// Parquet table and the enrollment it was filtered by, which no name reaches any more) and its
/// usable rows a view over that. The Parquet tables (`<extract>__raw`) are removed from the
/// catalogue for every session but the state's own, whose scan floor reads them by name.
async fn seal(ctx: &SessionContext, scope: &Audience) -> Result<()> {
    let Some(members) = scope.members() else {
        return Ok(());
    };
    let mut scoped = Vec::new();
    for e in extract::contract::EXTRACTS {
        let name = format!("{}__scoped", e.name);
        ctx.sql(&format!(
            "CREATE VIEW {name} AS SELECT * FROM {} WHERE {members}",
            extract::all_rows(e)
        ))
        .await?;
        scoped.push((e, ctx.table_provider(name.as_str()).await?));
        ctx.deregister_table(name.as_str())?;
    }
    for (e, provider) in scoped {
        ctx.deregister_table(format!("{}__raw", e.name).as_str())?;
        ctx.deregister_table(extract::all_rows(e).as_str())?;
        ctx.deregister_table(e.name)?;
        ctx.register_table(extract::all_rows(e).as_str(), provider)?;
        ctx.sql(&format!(
            "CREATE VIEW {} AS SELECT * FROM {} WHERE {}",
            e.name,
            extract::all_rows(e),
            extract::rules::usable_sql(e)
        ))
        .await?;
    }
    Ok(())
}

/// One more aggregate of a measure's detail: an audience's units, grouped by the measure's own
/// stratifiers or by others (`quarter`, `month` for trends and control charts).
#[derive(Debug, Clone)]
pub struct View {
    pub scope: Audience,
    /// `None`: the measure's own stratifiers.
    pub stratify: Option<Vec<crate::measure::Stratifier>>,
}

/// Optional inputs beside the extracts.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// PCR-HH's risk-weight table (see [`crate::extract::risk`]).
    pub risk_weights: Option<PathBuf>,
}

pub struct Engine {
    /// Where queries over the extracts run: the local session, or a cluster's client session.
    ctx: SessionContext,
    /// This process's session: a measure's detail, once computed, is summarised here (a spooled
    /// detail is a table of this process, which no cluster reads).
    local: SessionContext,
    backend: Backend,
    /// On a cluster, where the tables kept between queries are written (see
    /// [`Engine::write_kept`]), removed with the engine; and how many were written.
    scratch: Option<tempfile::TempDir>,
    scratch_files: AtomicUsize,
    pub extracts: Vec<OpenedExtract>,
    pub data_dir: Option<PathBuf>,
    catalog: Catalog,
    memory: MemoryUse,
    /// The building blocks, in dependency order, to define their views again (see
    /// [`Engine::skip_row_rules`]).
    blocks: Vec<Block>,
    /// How the extracts' views read their rows now.
    views: Mutex<Views>,
    /// The run cache, when the command uses one ([`Engine::attach_cache`]).
    cache: Option<cached::Attached>,
}

/// Steps (a measure's held common table expressions) that more than one measure of a pass
/// computes alike: three member-month measures start from the same enrollee months. The first
/// measure to need one computes it; it is held until the last has read it. The executor makes
/// one for each pass from the plan ([`Engine::share`]), over the views of that pass, and drops
/// it with the pass.
pub struct SharedSteps {
    inner: Mutex<Sharing>,
}

#[derive(Default)]
struct Sharing {
    /// By [`crate::compile::Stage::key`]: how many of the pass's measures still to run read it.
    uses: std::collections::HashMap<String, usize>,
    /// Steps computed and still to be read, by key: their tables and the memory they hold.
    rows: std::collections::HashMap<String, (Arc<dyn TableProvider>, usize)>,
    /// Their share of the memory pool.
    reservation: Option<MemoryReservation>,
    /// By key, held by the measure computing the step: a measure computed beside it waits for
    /// the rows rather than computing them too.
    computing: std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl SharedSteps {
    /// How many shared steps are held now, computed and still to be read.
    pub fn held(&self) -> usize {
        self.inner.lock().expect("not poisoned").rows.len()
    }

    /// The lock of a step other measures of the pass read too, if it is one.
    fn lock(&self, key: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut s = self.inner.lock().expect("not poisoned");
        s.uses
            .contains_key(key)
            .then(|| s.computing.entry(key.to_string()).or_default().clone())
    }

    /// The table of a step another measure computed, if held.
    fn table(&self, key: &str) -> Option<Arc<dyn TableProvider>> {
        let s = self.inner.lock().expect("not poisoned");
        s.rows.get(key).map(|(table, _)| table.clone())
    }

    /// Hold a step's table (`bytes` of memory) when another measure of the pass reads it too;
    /// whether held.
    fn hold(&self, key: &str, table: &Arc<dyn TableProvider>, bytes: usize) -> bool {
        let mut s = self.inner.lock().expect("not poisoned");
        if !s.uses.contains_key(key) {
            return false;
        }
        if let Some(r) = &s.reservation {
            r.grow(bytes);
        }
        s.rows.insert(key.to_string(), (table.clone(), bytes));
        true
    }

    /// A measure has read the step of this key: the last reader frees it.
    fn read(&self, key: &str) {
        let mut s = self.inner.lock().expect("not poisoned");
        let Some(n) = s.uses.get_mut(key) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        s.uses.remove(key);
        s.computing.remove(key);
        if let Some((_, bytes)) = s.rows.remove(key)
            && let Some(r) = &s.reservation
        {
            r.shrink(bytes);
        }
    }
}

/// The memory batches hold.
fn bytes_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.get_array_memory_size()).sum()
}

/// A building block computed: its rows, their memory, and how long it took.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub rows: usize,
    pub bytes: usize,
    pub took: std::time::Duration,
    /// Read from the run cache, not computed.
    pub reused: bool,
}

impl std::fmt::Display for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} rows, {})",
            self.name,
            self.rows,
            format_size(self.bytes)
        )
    }
}

/// How the extracts' views read the Parquet files: with or without their row rules, and over
/// which members.
#[derive(Debug, Clone, Default)]
struct Views {
    /// Extracts the data-quality profile found nothing to set aside in.
    clean: BTreeSet<&'static str>,
    range: MemberRange,
}

/// What the engine knows of its memory beyond the pool itself.
#[derive(Default)]
struct MemoryUse {
    /// The kept blocks' share of the pool, held as long as the engine (see
    /// [`Engine::build_blocks`]).
    blocks: Mutex<Option<MemoryReservation>>,
    /// The blocks kept in memory and their bytes in `blocks`' reservation.
    kept: Mutex<std::collections::BTreeMap<String, usize>>,
    /// Blocks kept for the run that have a `member_id`: held as `<name>__kept`, their name a
    /// view of the rows of the pass's members (see [`Engine::focus`]).
    by_member: Mutex<BTreeSet<String>>,
    /// Blocks marked `hhq: keep` computed over every member and kept for the run: they stay
    /// from pass to pass. A block computed within a pass holds that pass's members only.
    for_run: Mutex<BTreeSet<String>>,
    /// Bytes operators wrote to spill files, over every query run.
    spilled_bytes: AtomicUsize,
}

/// How much memory the engine used: the figures a user needs to choose `--memory-limit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// The pool's size, when limited.
    pub limit: Option<usize>,
    /// The most the pool held at once: what operators reserved (sorts, aggregations, joins) plus
    /// the kept blocks. Memory outside the pool (Parquet decoding, batches in flight,
    /// member-level detail held for writing) is not in it.
    pub peak_reserved: usize,
    /// Bytes spilled to disk because the limit was reached.
    pub spilled_bytes: usize,
}

/// The DataFusion session: hhq's SQL functions, and a memory pool. Without a limit the pool is
/// unbounded (DataFusion's default, only counted). With one it is a [`pool::SharePool`]: sorts
/// and aggregations share it evenly among those holding memory, and spill to a temporary
/// directory (under `TMPDIR`) beyond their share. Hash joins cannot spill, so under a limit joins
/// are sort-merge joins (their inputs sorted, which spills).
fn session(memory_limit: Option<usize>) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(false);
    // Planning errors carry where in the query they are (an unknown column's line and column).
    config.options_mut().sql_parser.collect_spans = true;
    // A join builds one hash table of its smaller side (up to a pass's numerator rows) and
    // streams the other past it, rather than hashing both sides into partitions: the other side
    // is most often a measure's wide unit rows, which repartitioning copies, and a join that does
    // not repartition keeps their order, so the detail is not sorted again (the candidate
    // units are, once: `compile::Stage::order`). DataFusion's defaults, 1 MB and 128K rows,
    // sent a numerator of 17,000 rows to a partitioned join.
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.hash_join_single_partition_threshold = 128 << 20;
    optimizer.hash_join_single_partition_threshold_rows = 1 << 20;
    let pool: Arc<dyn MemoryPool> = match memory_limit {
        None => Arc::new(UnboundedMemoryPool::default()),
        Some(limit) => {
            let options = config.options_mut();
            options.optimizer.prefer_hash_join = false;
            // Each sort sets aside this much up front to merge its spill files: DataFusion's 10 MB
            // would take much of a small pool, and too little fails the merge.
            options.execution.sort_spill_reservation_bytes =
                (limit / 16).clamp(256 * 1024, 10 * 1024 * 1024);
            // The tracker names the operators holding most when an allocation fails, so the
            // error says what needs the memory (a sort, a window, a join's buffer).
            Arc::new(TrackConsumersPool::new(
                pool::SharePool::new(limit),
                std::num::NonZeroUsize::new(3).expect("non-zero"),
            ))
        }
    };
    // The peak is recorded for `MemoryStats`; the wrapper changes nothing of what is granted.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(PeakRecordingPool::new(pool)))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::functions::register_fixed(&ctx);
    Ok(ctx)
}

impl Engine {
    /// Open a data directory and register the building blocks over it.
    pub async fn open(data_dir: &Path, defs: &Definitions) -> Result<Engine> {
        Self::open_with(data_dir, defs, &Inputs::default()).await
    }

    /// Open a data directory with optional inputs.
    pub async fn open_with(data_dir: &Path, defs: &Definitions, inputs: &Inputs) -> Result<Engine> {
        Self::open_limited(data_dir, defs, inputs, None).await
    }

    /// Open a data directory with optional inputs, DataFusion's operators holding at most
    /// `memory_limit` bytes at once and spilling to disk beyond it (see [`MemoryStats`] for what
    /// the limit does not cover).
    pub async fn open_limited(
        data_dir: &Path,
        defs: &Definitions,
        inputs: &Inputs,
        memory_limit: Option<usize>,
    ) -> Result<Engine> {
        Self::open_on(data_dir, defs, inputs, memory_limit, &Backend::Local).await
    }

    /// [`Engine::open_limited`] with queries run on `backend`. On a cluster, the extracts are
    /// DataFusion's Parquet tables at their absolute paths (every node must read the same
    /// path), the building blocks and steps kept between queries are Parquet files in the
    /// scratch directory ([`Engine::write_kept`]), and one pass computes every member.
    pub async fn open_on(
        data_dir: &Path,
        defs: &Definitions,
        inputs: &Inputs,
        memory_limit: Option<usize>,
        backend: &Backend,
    ) -> Result<Engine> {
        Self::open_scoped(
            data_dir,
            defs,
            inputs,
            memory_limit,
            backend,
            &Audience::State,
        )
        .await
    }

    /// [`Engine::open_on`] holding one audience's members only, by construction: the session is
    /// built over the rows of the members the enrollment extract ever assigns to the MCO or
    /// partner (any span), and nothing else is registered in it (see [`seal`]). Every query of
    /// it (blocks, measures, ad hoc SQL, cohorts) can reach only those members' rows.
    pub async fn open_scoped(
        data_dir: &Path,
        defs: &Definitions,
        inputs: &Inputs,
        memory_limit: Option<usize>,
        backend: &Backend,
        scope: &Audience,
    ) -> Result<Engine> {
        Self::open_cached(data_dir, defs, inputs, memory_limit, backend, scope, None).await
    }

    /// [`Engine::open_scoped`] with the run cache `cache` (none on a cluster): files of the
    /// same bytes as files checked before are not decoded again, and blocks and details are
    /// read from it and kept there ([`Engine::cached_detail`]).
    pub async fn open_cached(
        data_dir: &Path,
        defs: &Definitions,
        inputs: &Inputs,
        memory_limit: Option<usize>,
        backend: &Backend,
        scope: &Audience,
        cache: Option<Arc<crate::cache::Cache>>,
    ) -> Result<Engine> {
        let cache = cache.filter(|_| backend.is_local());
        let local = session(memory_limit)?;
        let ctx = connect(backend, &local).await?;
        let extracts =
            extract::open_all_checked(&ctx, data_dir, backend.is_local(), cache.as_deref()).await?;
        check_scope(&ctx, scope).await?;
        seal(&ctx, scope).await?;
        let supplied = register_inputs(&ctx, inputs)?;
        let mut engine =
            Self::finish(ctx, extracts, Some(data_dir.to_path_buf()), defs, supplied).await?;
        if let Some(cache) = cache {
            engine.cache = Some(cached::Attached::new(
                cache,
                &engine.extracts,
                scope,
                inputs.risk_weights.as_deref(),
                &engine.catalog.value_sets,
            )?);
        }
        if !backend.is_local() {
            crate::functions::register_fixed(&local);
            engine.local = local;
            engine.backend = backend.clone();
            engine.scratch = backend.scratch()?;
        }
        Ok(engine)
    }

    /// The run cache attached, if any.
    pub fn cache(&self) -> Option<&Arc<crate::cache::Cache>> {
        self.cache.as_ref().map(|c| &c.cache)
    }

    /// A key of `kind` for what a command makes of this engine's data (its base and `parts`);
    /// `None` without a cache.
    pub fn cache_key(&self, kind: &str, parts: &[(&str, String)]) -> Option<crate::cache::Key> {
        self.cache.as_ref().map(|c| c.key_over(kind, parts))
    }

    /// The detail of `compiled` over the members of `range`, if the cache has it.
    pub fn cached_detail(
        &self,
        compiled: &CompiledMeasure,
        range: &MemberRange,
    ) -> Option<CachedDetail> {
        let c = self.cache.as_ref()?;
        c.detail(&c.detail_key(&self.blocks, compiled, range))
    }

    /// Keep the detail of `compiled` over the members of `range` in the cache, if any.
    pub fn keep_detail(
        &self,
        compiled: &CompiledMeasure,
        range: &MemberRange,
        batches: &[RecordBatch],
        planned: &SchemaRef,
    ) {
        if let Some(c) = &self.cache {
            c.keep_detail(
                &c.detail_key(&self.blocks, compiled, range),
                batches,
                planned,
            );
        }
    }

    /// The key of the detail of `compiled` over `range`, for keys of what is made of it.
    pub fn detail_key(
        &self,
        compiled: &CompiledMeasure,
        range: &MemberRange,
    ) -> Option<crate::cache::Key> {
        let c = self.cache.as_ref()?;
        Some(c.detail_key(&self.blocks, compiled, range))
    }

    /// Where this engine's queries run.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// An engine over empty extracts with the contract's schemas: enough to check and compile
    /// definitions without data.
    pub async fn offline(defs: &Definitions) -> Result<Engine> {
        let ctx = session(None)?;
        extract::register_empty(&ctx)?;
        let supplied = register_inputs(&ctx, &Inputs::default())?;
        Self::finish(ctx, Vec::new(), None, defs, supplied).await
    }

    async fn finish(
        ctx: SessionContext,
        extracts: Vec<OpenedExtract>,
        data_dir: Option<PathBuf>,
        defs: &Definitions,
        inputs: BTreeSet<String>,
    ) -> Result<Engine> {
        let mut catalog = Catalog {
            value_sets: defs.value_sets.clone(),
            inputs,
            ..Catalog::default()
        };
        // Large value sets compile to a lookup function rather than an `IN` list.
        crate::functions::lookup::register(&ctx, &defs.value_sets);
        for block in &defs.blocks {
            define_block(&ctx, block).await?;
            let schema = ctx.table(block.name.as_str()).await?.schema().clone();
            let columns = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), normalise(f.data_type())))
                .collect();
            catalog.blocks.insert(block.name.clone(), columns);
        }
        Ok(Engine {
            local: ctx.clone(),
            backend: Backend::Local,
            scratch: None,
            scratch_files: AtomicUsize::new(0),
            ctx,
            extracts,
            data_dir,
            catalog,
            memory: MemoryUse::default(),
            blocks: defs.blocks.clone(),
            views: Mutex::new(Views::default()),
            cache: None,
        })
    }

    /// Read these extracts without their row rules: the data-quality profile found no row of
    /// them to set aside, so the test every query would make of every row (a score of
    /// predicates) cannot change a result.
    pub async fn skip_row_rules(&self, clean: &[&str]) -> Result<()> {
        if clean.is_empty() {
            return Ok(());
        }
        let mut views = self.views.lock().expect("not poisoned").clone();
        for name in clean {
            let extract = extract::contract::EXTRACTS
                .iter()
                .find(|e| e.name == *name)
                .ok_or_else(|| Error::Usage(format!("no extract `{name}`")))?;
            views.clean.insert(extract.name);
        }
        self.define_views(views).await
    }

    /// Compute only these members from now on: the extracts' views read their rows, and the
    /// building blocks kept for the members before are dropped (those marked `hhq: keep` were
    /// computed over every member and stay, read as their rows of these members when they have
    /// a `member_id`). A run over more members than it should hold at once computes them range
    /// by range (the passes of a [`crate::plan::RunPlan`]); the steps a pass's measures share
    /// are that pass's ([`SharedSteps`]), not the engine's.
    pub async fn focus(&self, range: &MemberRange) -> Result<()> {
        let mut views = self.views.lock().expect("not poisoned").clone();
        if views.range == *range {
            return Ok(());
        }
        views.range = range.clone();
        self.define_views(views).await
    }

    /// The steps the measures of a pass share, as the plan has them
    /// ([`crate::plan::RunPlan::shared_steps`]: each key and how many measures read it), held
    /// in this engine's pool over the views as they are now. Same rows with or without: a
    /// step's key is its plan, over the same views.
    pub fn share(&self, uses: BTreeMap<String, usize>) -> SharedSteps {
        let pool = &self.ctx.runtime_env().memory_pool;
        SharedSteps {
            inner: Mutex::new(Sharing {
                uses: uses.into_iter().collect(),
                rows: Default::default(),
                reservation: Some(MemoryConsumer::new("steps shared by measures").register(pool)),
                computing: Default::default(),
            }),
        }
    }

    /// The memory pool's limit, if any.
    pub fn memory_limit(&self) -> Option<usize> {
        match self.ctx.runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(n) => Some(n),
            _ => None,
        }
    }

    /// The names of the session's tables (extracts, blocks, inputs): a measure's step of one
    /// of these names is not held ([`crate::plan`]).
    pub fn table_names(&self) -> BTreeSet<String> {
        let catalog = self.ctx.catalog_names();
        catalog
            .iter()
            .filter_map(|c| self.ctx.catalog(c))
            .flat_map(|c| {
                c.schema_names()
                    .into_iter()
                    .filter_map(move |s| c.schema(&s))
                    .flat_map(|s| s.table_names())
            })
            .collect()
    }

    /// The building blocks, in dependency order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The members extract's member ids, distinct and in order (the passes' bounds).
    pub async fn member_ids(&self) -> Result<Vec<String>> {
        self.texts(
            "SELECT DISTINCT member_id FROM members WHERE member_id IS NOT NULL ORDER BY member_id",
        )
        .await
    }

    /// One measure's plan as this engine would run it alone.
    fn measure_stages(&self, compiled: &CompiledMeasure) -> MeasureStages {
        crate::plan::measure_stages(compiled, self.memory_limit(), &self.table_names())
    }

    /// Define the extracts' views as `views` says, then the building blocks again, since a view
    /// holds the plan of what it read when it was made. Blocks kept for the run (`hhq: keep`)
    /// stay; others kept are dropped, and their memory given back.
    async fn define_views(&self, views: Views) -> Result<()> {
        for opened in &self.extracts {
            let extract = extract::contract::EXTRACTS
                .iter()
                .find(|e| e.name == opened.name)
                .ok_or_else(|| Error::Usage(format!("no extract `{}`", opened.name)))?;
            let mut conditions = Vec::new();
            if !views.clean.contains(extract.name) {
                conditions.push(extract::rules::usable_sql(extract));
            }
            conditions.extend(views.range.filter());
            let filter = match conditions.is_empty() {
                true => String::new(),
                false => format!(" WHERE ({})", conditions.join(") AND (")),
            };
            self.ctx.deregister_table(extract.name)?;
            self.ctx
                .sql(&format!(
                    "CREATE VIEW {} AS SELECT * FROM {}{filter}",
                    extract.name,
                    extract::all_rows(extract)
                ))
                .await?;
        }
        // Blocks kept for the run with a member_id read their rows of the pass's members only:
        // a pass's hash of the superseded claim ids is then a pass's, not the state's. Before
        // the blocks that read them, which hold the plan of what they read.
        let by_member = self.memory.by_member.lock().expect("not poisoned").clone();
        for name in &by_member {
            self.ctx.deregister_table(name.as_str())?;
            self.ctx.sql(&member_view(name, &views.range)).await?;
        }
        // Blocks kept for the run stay; the others are views again, their memory given back.
        let redefine: Vec<&Block> = {
            let for_run = self.memory.for_run.lock().expect("not poisoned").clone();
            let mut kept = self.memory.kept.lock().expect("not poisoned");
            let redefine: Vec<&Block> = self
                .blocks
                .iter()
                .filter(|b| !for_run.contains(&b.name))
                .collect();
            let freed: usize = redefine.iter().filter_map(|b| kept.remove(&b.name)).sum();
            if let Some(r) = self.memory.blocks.lock().expect("not poisoned").as_mut() {
                r.shrink(freed);
            }
            redefine
        };
        for block in redefine {
            self.ctx.deregister_table(block.name.as_str())?;
            define_block(&self.ctx, block).await?;
        }
        *self.views.lock().expect("not poisoned") = views;
        Ok(())
    }

    /// Compute these building blocks, wave by wave ([`crate::plan::waves`]: a wave's blocks
    /// side by side, `at_once` at a time), and keep them, so measures (and the many conditions
    /// of one measure) that read a block do not each recompute it from the claims. Blocks are
    /// small next to the claims: a row per visit, stay or episode. A block already kept is not
    /// computed again.
    ///
    /// Their memory is reserved in the pool, so operators see what is left. Blocks kept for
    /// the run ([`BlockLife::Run`], computed over every member) are kept whatever their size
    /// (some are right only over every member, and every pass reads them). A pass's blocks are
    /// kept within the plan's budget: one that does not fit stays a view, computed again by
    /// each query that reads it (slower, and bounded); the next pass's views drop them.
    ///
    /// Returns each block computed, in the waves' order.
    pub async fn build_blocks(
        &self,
        waves: &[Vec<String>],
        life: BlockLife,
        at_once: usize,
    ) -> Result<Vec<Built>> {
        let mut took = Vec::new();
        let pool = &self.ctx.runtime_env().memory_pool;
        let (for_run, budget) = match life {
            BlockLife::Run => (true, usize::MAX),
            BlockLife::Pass { budget } => (false, budget.unwrap_or(usize::MAX)),
        };
        if for_run && !self.views.lock().expect("not poisoned").range.is_everyone() {
            return Err(Error::Failed(
                "blocks kept for the run are computed over every member, not a pass's".into(),
            ));
        }
        let held = self.memory.blocks.lock().expect("not poisoned").take();
        let reservation =
            held.unwrap_or_else(|| MemoryConsumer::new("materialised blocks").register(pool));
        let mut kept = self.memory.kept.lock().expect("not poisoned").clone();
        for names in waves {
            let wave: Vec<&Block> = names
                .iter()
                .filter_map(|n| self.blocks.iter().find(|b| &b.name == n))
                .filter(|b| !kept.contains_key(&b.name))
                .collect();
            let computed = side_by_side(
                wave.iter().map(|b| self.compute_block(b)).collect(),
                at_once,
            )
            .await?;
            for (block, (table, built)) in wave.iter().zip(computed) {
                // Blocks on a cluster are on disk: no share of this process's memory.
                let bytes = if self.scratch.is_some() {
                    0
                } else {
                    built.bytes
                };
                took.push(built);
                if !for_run && reservation.size().saturating_add(bytes) > budget {
                    continue;
                }
                reservation.grow(bytes);
                self.keep_block(block, table, for_run).await?;
                kept.insert(block.name.clone(), bytes);
                if for_run {
                    self.memory
                        .for_run
                        .lock()
                        .expect("not poisoned")
                        .insert(block.name.clone());
                }
            }
            // A view holds the plan of what it read when it was made: the blocks after these
            // (claims_final after superseded_claims) would compute them again from the
            // extracts. They are defined again, now reading the kept tables.
            if let Some(first) = wave.first() {
                for later in self.blocks.iter().skip_while(|b| b.name != first.name) {
                    if !kept.contains_key(later.name.as_str()) {
                        self.ctx.deregister_table(later.name.as_str())?;
                        define_block(&self.ctx, later).await?;
                    }
                }
            }
        }
        *self.memory.blocks.lock().expect("not poisoned") = Some(reservation);
        *self.memory.kept.lock().expect("not poisoned") = kept;
        Ok(took)
    }

    /// A building block computed, as a table (in memory; on a cluster, written to the scratch
    /// space by the executors: [`Engine::write_kept`]), and what it took.
    async fn compute_block(&self, block: &Block) -> Result<(Arc<dyn TableProvider>, Built)> {
        let started = std::time::Instant::now();
        let df = self.ctx.table(block.name.as_str()).await?;
        let what = format!("building block `{}`", block.name);
        if self.scratch.is_some() {
            let (table, rows, bytes) = self.write_kept(df, &what).await?;
            let built = Built {
                name: block.name.clone(),
                rows,
                bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                took: started.elapsed(),
                reused: false,
            };
            return Ok((table, built));
        }
        let key = self.cache.as_ref().map(|c| {
            let range = self.views.lock().expect("not poisoned").range.clone();
            c.block_key(&self.blocks, &block.name, &range)
        });
        let found = match (&self.cache, &key) {
            (Some(c), Some(k)) => c.block(k),
            _ => None,
        };
        let reused = found.as_ref().is_some_and(|(_, b)| !b.is_empty());
        let batches = match found {
            Some((_, batches)) if !batches.is_empty() => batches,
            _ => {
                let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let mut batches = self
                    .execute(df, &what)
                    .await?
                    .into_iter()
                    .map(compact)
                    .collect::<Result<Vec<_>>>()?;
                if batches.is_empty() {
                    // No rows: the table has the plan's schema.
                    batches.push(RecordBatch::new_empty(planned));
                }
                if let (Some(c), Some(k)) = (&self.cache, &key) {
                    c.keep_block(k, &batches);
                }
                batches
            }
        };
        let built = Built {
            name: block.name.clone(),
            rows: batches.iter().map(|b| b.num_rows()).sum(),
            bytes: bytes_of(&batches),
            took: started.elapsed(),
            reused,
        };
        let schema = batches[0].schema();
        Ok((Arc::new(self.mem_table(schema, batches)?), built))
    }

    /// A computed block's table registered under its name; one kept for the run with a
    /// `member_id` as `<name>__kept`, its name a view of the pass's members.
    async fn keep_block(
        &self,
        block: &Block,
        table: Arc<dyn TableProvider>,
        for_run: bool,
    ) -> Result<()> {
        let name = block.name.as_str();
        let by_member = table.schema().column_with_name("member_id").is_some();
        self.ctx.deregister_table(name)?;
        if for_run && by_member {
            let range = self.views.lock().expect("not poisoned").range.clone();
            self.ctx.deregister_table(kept_table(name).as_str())?;
            self.ctx.register_table(kept_table(name).as_str(), table)?;
            self.ctx.sql(&member_view(name, &range)).await?;
            self.memory
                .by_member
                .lock()
                .expect("not poisoned")
                .insert(name.to_string());
        } else {
            self.ctx.register_table(name, table)?;
        }
        Ok(())
    }

    /// How much memory the engine has used so far.
    pub fn memory_stats(&self) -> MemoryStats {
        let pool = &self.ctx.runtime_env().memory_pool;
        MemoryStats {
            limit: match pool.memory_limit() {
                MemoryLimit::Finite(n) => Some(n),
                _ => None,
            },
            peak_reserved: PeakRecordingPool::from_pool(pool.as_ref())
                .map_or(0, |p| p.peak_reserved()),
            spilled_bytes: self.memory.spilled_bytes.load(Ordering::Relaxed),
        }
    }

    /// Run a query to its batches, counting what its operators spilled. A memory limit too
    /// small for it is a usage error naming `what` ran out, not an engine failure.
    async fn execute(&self, df: DataFrame, what: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.execute_plan(df, what).await?.0)
    }

    /// [`Engine::execute`], also giving the physical plan as it ran, its metrics filled in.
    async fn execute_plan(
        &self,
        df: DataFrame,
        what: &str,
    ) -> Result<(Vec<RecordBatch>, Arc<dyn ExecutionPlan>)> {
        let run = async {
            // The session the frame was planned in: this process's or the cluster client's.
            let task = Arc::new(df.task_ctx());
            let plan = df.create_physical_plan().await?;
            let batches = datafusion::physical_plan::collect(plan.clone(), task).await?;
            Ok::<_, DataFusionError>((batches, plan))
        };
        match run.await {
            Ok((batches, plan)) => {
                self.memory
                    .spilled_bytes
                    .fetch_add(spilled(plan.as_ref()), Ordering::Relaxed);
                Ok((batches, plan))
            }
            Err(e) => Err(self.out_of_memory(e, what)),
        }
    }

    /// An error of work done outside [`Engine::collect_for`] (the data-quality profile): when it
    /// ran out of pool memory under a limit, the same usage error naming `what`.
    pub fn memory_error(&self, e: Error, what: &str) -> Error {
        match e {
            Error::Engine(df) => self.out_of_memory(df, what),
            other => other,
        }
    }

    /// A query that ran out of pool memory: under a limit, say which and what to do.
    fn out_of_memory(&self, e: DataFusionError, what: &str) -> Error {
        let limit = self.memory_stats().limit;
        match (e.find_root(), limit) {
            (DataFusionError::ResourcesExhausted(detail), Some(limit)) => Error::Usage(format!(
                "--memory-limit {} is too small for {what}: raise it (DataFusion: {})",
                format_size(limit),
                detail.split_whitespace().collect::<Vec<_>>().join(" ")
            )),
            _ => e.into(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Run a query under `EXPLAIN ANALYZE`: its physical plan with each operator's metrics.
    pub async fn explain_analyze(&self, sql: &str, what: &str) -> Result<String> {
        let batches = self
            .collect_for(&format!("EXPLAIN ANALYZE {sql}"), what)
            .await?;
        plan_text(&batches)
    }

    /// Run a query; a memory limit too small for it is an error naming `what` (a measure).
    pub async fn collect_for(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        self.execute(self.ctx.sql(sql).await?, what).await
    }

    /// [`Engine::collect_for`] in this process's session, over tables of this process (a
    /// measure's detail), wherever the engine's other queries run.
    async fn collect_local(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        self.execute(self.local.sql(sql).await?, what).await
    }

    /// The first day of the claims (their earliest `service_from`), if any: a measure whose
    /// look-back reaches before it cannot be computed for that period.
    pub async fn data_first_day(&self) -> Result<Option<NaiveDate>> {
        let batches = self
            .collect_for(
                "SELECT min(service_from) AS first FROM claims_final",
                "the first date of the data (over claims_final)",
            )
            .await?;
        let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let col = batch.column(0).as_primitive::<Date32Type>();
        Ok((!col.is_null(0))
            .then(|| extract::rules::date_of_day(col.value(0)))
            .flatten())
    }

    /// The last date with data (claims or contacts) on or before `as_of`, if any. Rows set aside
    /// are not in the views; a date after `as_of` (`9999-12-31`, a typo) is not believable as
    /// the end of the data, so it is passed over here too, and cannot move the default period:
    /// the profile's `future_date` checks count and report those rows. A date outside the
    /// extracts' believable range (which the row rules set aside) is an error naming its extract
    /// and column: every period, quarter and follow-up window is computed from this date.
    pub async fn data_cutoff(&self, as_of: NaiveDate) -> Result<Option<NaiveDate>> {
        let batches = self
            .collect_for(
                &format!(
                    "SELECT (SELECT max(service_to) FROM claims_final \
                     WHERE service_to <= DATE '{as_of}') AS claims, \
                     (SELECT max(contact_date) FROM contacts \
                     WHERE contact_date <= DATE '{as_of}') AS contacts"
                ),
                "the last date of the data (over claims_final)",
            )
            .await?;
        let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let mut last = None;
        for (i, (extract, column)) in [("claims", "service_to"), ("contacts", "contact_date")]
            .into_iter()
            .enumerate()
        {
            let col = batch.column(i).as_primitive::<Date32Type>();
            if col.is_null(0) {
                continue;
            }
            let day = col.value(0);
            let date = extract::rules::date_of_day(day).ok_or_else(|| {
                let location = self
                    .extracts
                    .iter()
                    .find(|e| e.name == extract)
                    .map_or_else(|| PathBuf::from(extract), |e| e.location.clone());
                Error::contract(
                    location,
                    format!(
                        "column `{column}` holds day {day} (counted from 1970-01-01), outside \
                         {}..{}, where no row should reach a measure; check the export",
                        extract::rules::FIRST_DATE,
                        extract::rules::LAST_DATE
                    ),
                )
            })?;
            last = last.max(Some(date));
        }
        Ok(last)
    }

    /// A `Date32` value of a query's result (`column` of `what`) as a date. A day outside the
    /// extracts' believable range cannot come from a usable row (the row rules set such dates
    /// aside), but a block's arithmetic could still make one: an error naming the data, the
    /// query and the column, never a panic in the arithmetic that follows.
    pub fn result_date(&self, day: i32, column: &str, what: &str) -> Result<NaiveDate> {
        extract::rules::date_of_day(day).ok_or_else(|| {
            Error::contract(
                self.data_dir.clone().unwrap_or_default(),
                format!(
                    "{what}: column `{column}` holds day {day} (counted from 1970-01-01), \
                     outside {}..{}; check the dates of the extracts and the building blocks \
                     that compute it",
                    extract::rules::FIRST_DATE,
                    extract::rules::LAST_DATE
                ),
            )
        })
    }

    /// Final claim lines and contacts dated after `as_of`, which [`Engine::data_cutoff`]
    /// passes over.
    pub async fn dated_after(&self, as_of: NaiveDate) -> Result<u64> {
        let batches = self
            .collect_for(
                &format!(
                    "SELECT (SELECT count(*) FROM claims_final WHERE service_to > DATE '{as_of}') \
                     + (SELECT count(*) FROM contacts WHERE contact_date > DATE '{as_of}')"
                ),
                "counting dates after the as-of date",
            )
            .await?;
        Ok(batches.first().filter(|b| b.num_rows() > 0).map_or(0, |b| {
            b.column(0).as_primitive::<Int64Type>().value(0).max(0) as u64
        }))
    }

    /// How claim versions resolved.
    pub async fn claim_versions(&self) -> Result<ClaimVersions> {
        let batches = self
            .collect_for(
                // The superseded lines from the kept block's counts: counting claims_final
                // probed every claim id against the superseded ones again (1.5 s at 1M).
                "SELECT (SELECT count(*) FROM claims) AS lines_read, \
                 (SELECT CAST(coalesce(sum(lines), 0) AS BIGINT) FROM superseded_claims) AS superseded_lines, \
                 (SELECT count(*) FROM claims WHERE adjustment = 'void') AS void_lines",
                "counting claim versions",
            )
            .await?;
        let b = &batches[0];
        let get = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0) as u64;
        let (lines_read, superseded_lines, void_lines) = (get(0), get(1), get(2));
        Ok(ClaimVersions {
            lines_read,
            final_lines: lines_read.saturating_sub(superseded_lines + void_lines),
            void_lines,
            superseded_lines,
        })
    }

    /// The non-null values of a query's first column, as text (ids for a lookup).
    pub async fn texts(&self, sql: &str) -> Result<Vec<String>> {
        let (_, rows) = results::text_rows(&self.collect_for(sql, "a lookup").await?)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }

    /// Run one compiled measure alone: the member-level detail once, then its aggregate
    /// (decks, `hhq diff-spec`, a report's single queries).
    pub async fn run(&self, compiled: &CompiledMeasure) -> Result<MeasureRun> {
        let (detail, planned) = self.detail(compiled).await?;
        // The batches' schema can differ from the plan's in nullability; theirs is the truth.
        let schema = detail.first().map_or(planned, |b| b.schema());
        let table = MemTable::try_new(schema.clone(), vec![detail.clone()])?;
        let (rows, _) = self.summarise(compiled, Arc::new(table), &[]).await?;
        Ok(MeasureRun {
            rows,
            detail_schema: schema,
            detail,
        })
    }

    /// The result rows of a measure's detail, given as a table (in memory, or the file a run
    /// wrote pass by pass): for the whole population, then for each view.
    pub async fn summarise(
        &self,
        compiled: &CompiledMeasure,
        detail: Arc<dyn TableProvider>,
        views: &[View],
    ) -> Result<(Vec<ResultRow>, Vec<Vec<ResultRow>>)> {
        let (name, table) = detail_table(compiled);
        self.over_detail(&name, detail, async {
            let mut aggregates = Vec::new();
            for (c, queries) in summary_queries(compiled, &table, views) {
                let what = format!("measure {}", c.id);
                let summary = self.collect_local(&queries.summary, &what).await?;
                let population = match &queries.population {
                    Some(sql) => self.collect_local(sql, &what).await?,
                    None => Vec::new(),
                };
                aggregates.push(results::from_batches(&c, &summary, &population)?);
            }
            let rows = aggregates.remove(0);
            Ok((rows, aggregates))
        })
        .await
    }

    /// `work` run with `detail` registered as a measure's detail table `name`, which is
    /// deregistered after it, whatever its outcome.
    async fn over_detail<T>(
        &self,
        name: &str,
        detail: Arc<dyn TableProvider>,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.local.register_table(name, detail)?;
        let result = work.await;
        self.local.deregister_table(name)?;
        result
    }

    /// The columns of a measure's detail (of `schema`) that [`Engine::summarise`] reads for
    /// these views: a spool need hold no others.
    pub async fn summary_columns(
        &self,
        compiled: &CompiledMeasure,
        schema: SchemaRef,
        views: &[View],
    ) -> Result<Vec<String>> {
        let (name, table) = detail_table(compiled);
        let empty = MemTable::try_new(schema.clone(), vec![Vec::new()])?;
        self.over_detail(&name, Arc::new(empty), async {
            let mut read = BTreeSet::new();
            for (_, queries) in summary_queries(compiled, &table, views) {
                for sql in std::iter::once(&queries.summary).chain(&queries.population) {
                    let plan = self.local.state().create_logical_plan(sql).await?;
                    let plan = self.local.state().optimize(&plan)?;
                    plan.apply(|node| {
                        if let LogicalPlan::TableScan(scan) = node
                            && scan.table_name.table() == name
                        {
                            read.extend(
                                scan.projected_schema
                                    .fields()
                                    .iter()
                                    .map(|f| f.name().clone()),
                            );
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })?;
                }
            }
            // In the detail's order.
            Ok(schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|f| read.contains(f))
                .collect())
        })
        .await
    }

    /// A measure's member-level detail, computed alone, and the schema its plan gives.
    /// DataFusion computes a common table expression again at each reference, and a measure's
    /// candidates (or events, or units) are read by every condition: so each step read more
    /// than once is computed once, kept as a table of its name for the steps after it, and
    /// dropped when the detail is done ([`CompiledMeasure::staged`], as the plan holds them:
    /// under a memory limit the steps stay CTEs, slower and bounded).
    pub async fn detail(
        &self,
        compiled: &CompiledMeasure,
    ) -> Result<(Vec<RecordBatch>, SchemaRef)> {
        self.compute_detail(&self.measure_stages(compiled), None)
            .await
    }

    /// A measure's member-level detail as the plan stages it, reading the steps other
    /// measures of the pass computed alike from `shared`, and holding there those they read.
    pub async fn compute_detail(
        &self,
        measure: &MeasureStages,
        shared: Option<&SharedSteps>,
    ) -> Result<(Vec<RecordBatch>, SchemaRef)> {
        self.staged_detail(measure, shared, &mut Vec::new(), &mut None)
            .await
    }

    /// The details of these measures, as a pass computes them: side by side, `at_once` at a
    /// time, each given as it is done. One measure's steps leave a core idle much of the time (a
    /// hash table built, partitions merged, a small step's tail), which another measure fills.
    /// Each measure's steps are tables in a session of its own.
    pub fn details<'a>(
        &'a self,
        measures: impl IntoIterator<Item = &'a MeasureStages> + 'a,
        shared: &'a SharedSteps,
        at_once: usize,
    ) -> impl futures::Stream<Item = Result<PassDetail>> + 'a {
        use futures::StreamExt;
        let jobs = measures.into_iter().enumerate();
        futures::stream::iter(jobs.map(move |(index, m)| async move {
            let started = std::time::Instant::now();
            let (batches, planned) = self.compute_detail(m, Some(shared)).await?;
            Ok(PassDetail {
                index,
                batches,
                planned,
                took: started.elapsed(),
            })
        }))
        .buffer_unordered(at_once.max(1))
    }

    /// A measure as a run computes it, its detail query under `EXPLAIN ANALYZE` (`hhq profile`):
    /// how long each kept step took, and the detail's plan with each operator's metrics.
    pub async fn explain_measure(
        &self,
        measure: &MeasureStages,
    ) -> Result<(Vec<(String, std::time::Duration)>, String)> {
        let mut took = Vec::new();
        let mut plans = Some(String::new());
        let (batches, _) = self
            .staged_detail(measure, None, &mut took, &mut plans)
            .await?;
        let mut text = plans.unwrap_or_default();
        text.push_str("detail:\n");
        text.push_str(&plan_text(&batches)?);
        Ok((took, text))
    }

    /// [`Engine::compute_detail`], recording each kept step's time in `took`; with `plans`
    /// (profiling), each kept step's physical plan with its metrics is appended to it and the
    /// last stage runs under `EXPLAIN ANALYZE`, its batches the plan.
    async fn staged_detail(
        &self,
        measure: &MeasureStages,
        shared: Option<&SharedSteps>,
        took: &mut Vec<(String, std::time::Duration)>,
        plans: &mut Option<String>,
    ) -> Result<(Vec<RecordBatch>, SchemaRef)> {
        let what = &format!("measure {}", measure.id);
        let explain = plans.is_some();
        let pool = &self.ctx.runtime_env().memory_pool;
        let stages = &measure.stages;
        let reservation = MemoryConsumer::new(format!("steps of {}", measure.id)).register(pool);
        // The steps are tables of their CTE names in a session of the measure's own, so that
        // measures computed side by side do not meet; dropped with it.
        let ctx = overlay::session_over(&self.ctx);
        let result = async {
            for stage in stages {
                let last = stage.name == "detail";
                let started = std::time::Instant::now();
                // A step other measures of the pass read too: one computes it, the others wait.
                let lock = shared.filter(|_| !last).and_then(|s| s.lock(&stage.key));
                let _computing = match &lock {
                    Some(lock) => Some(lock.lock().await),
                    None => None,
                };
                // A step another measure of the pass computed alike.
                let computed = shared.filter(|_| !last).and_then(|s| s.table(&stage.key));
                let table = match computed {
                    Some(table) => table,
                    None => {
                        let sql = if last && explain {
                            format!("EXPLAIN ANALYZE {}", stage.sql)
                        } else {
                            stage.sql.clone()
                        };
                        let df = ctx.sql(&sql).await?;
                        let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                        if last {
                            let (batches, _) = self.execute_plan(df, what).await?;
                            let batches = batches
                                .into_iter()
                                .map(compact)
                                .collect::<Result<Vec<_>>>()?;
                            return Ok((batches, planned));
                        }
                        let (table, bytes) = match self.scratch.is_some() {
                            true => (self.write_kept(df, what).await?.0, 0),
                            false => {
                                let (table, bytes, plan) =
                                    self.step_in_memory(df, stage.order, what).await?;
                                if let Some(text) = plans.as_mut() {
                                    let shown =
                                        DisplayableExecutionPlan::with_metrics(plan.as_ref())
                                            .indent(true)
                                            .to_string();
                                    text.push_str(&format!(
                                        "step {} ({:.3} s):\n{shown}\n",
                                        stage.name,
                                        started.elapsed().as_secs_f64()
                                    ));
                                }
                                (table, bytes)
                            }
                        };
                        let kept_for_others =
                            shared.is_some_and(|s| s.hold(&stage.key, &table, bytes));
                        if !kept_for_others {
                            reservation.grow(bytes);
                        }
                        table
                    }
                };
                took.push((stage.name.clone(), started.elapsed()));
                ctx.register_table(stage.name.as_str(), table)?;
            }
            unreachable!("the last stage is the detail")
        }
        .await;
        drop(ctx);
        if let Some(shared) = shared {
            for stage in stages {
                shared.read(&stage.key);
            }
        }
        result
    }

    /// A measure's step computed here: its rows compacted, kept in memory as
    /// [`Engine::ordered_table`] in `order`; the memory they hold, and the plan as it ran.
    async fn step_in_memory(
        &self,
        df: DataFrame,
        order: Option<&str>,
        what: &str,
    ) -> Result<(Arc<dyn TableProvider>, usize, Arc<dyn ExecutionPlan>)> {
        let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let (parts, plan) = match order {
            Some(order) => self.execute_sorted(df, order, what).await?,
            None => {
                let (batches, plan) = self.execute_plan(df, what).await?;
                (vec![batches], plan)
            }
        };
        let parts = parts
            .into_iter()
            .map(|p| p.into_iter().map(compact).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let schema = parts
            .iter()
            .flatten()
            .next()
            .map_or(planned, |b| b.schema());
        let bytes = parts.iter().map(|p| bytes_of(p)).sum();
        let table = self.ordered_table(schema, parts, order)?;
        Ok((Arc::new(table), bytes, plan))
    }

    /// On a cluster, rows kept between queries (a building block, a measure's step): written
    /// as Parquet by the executors into a directory of the scratch space, which every node
    /// reads, and a table over them; the rows never pass through this process (a block held
    /// here would travel inside every plan that reads it). The rows written, and their bytes
    /// on disk.
    async fn write_kept(
        &self,
        df: DataFrame,
        what: &str,
    ) -> Result<(Arc<dyn TableProvider>, usize, u64)> {
        use datafusion::dataframe::DataFrameWriteOptions;
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::listing::{
            ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
        };
        let dir = self
            .scratch
            .as_ref()
            .expect("a cluster has a scratch directory");
        let n = self.scratch_files.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("{n:06}"));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(io)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        // A trailing separator: a directory of files, as many as the writers make.
        let url = format!("{}/", path.display());
        let written = df
            .write_parquet(&url, DataFrameWriteOptions::new(), None)
            .await
            .map_err(|e| self.out_of_memory(e, what))?;
        let rows = written
            .iter()
            .filter(|b| b.num_columns() > 0)
            .map(|b| {
                let counts = datafusion::arrow::compute::cast(b.column(0), &DataType::UInt64)?;
                Ok(datafusion::arrow::compute::sum(
                    counts.as_primitive::<datafusion::arrow::datatypes::UInt64Type>(),
                )
                .unwrap_or(0) as usize)
            })
            .sum::<std::result::Result<usize, DataFusionError>>()?;
        let bytes = std::fs::read_dir(&path)
            .map_err(io)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()));
        let config = ListingTableConfig::new(ListingTableUrl::parse(&url)?)
            .with_listing_options(options)
            .with_schema(schema);
        Ok((Arc::new(ListingTable::try_new(config)?), rows, bytes))
    }

    /// An in-memory table of these batches, spread over the session's partitions so that
    /// queries over it use every core (one partition would be read by one).
    fn mem_table(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<MemTable> {
        let n = self.ctx.copied_config().target_partitions().max(1);
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n.min(batches.len()).max(1)];
        let len = partitions.len();
        for (i, b) in batches.into_iter().enumerate() {
            partitions[i % len].push(b);
        }
        Ok(MemTable::try_new(schema, partitions)?)
    }

    /// A step's rows as a table: with `order`, the partitions as computed, each in that order
    /// (see [`Engine::execute_sorted`]), and the table says so, so that a query keeping the
    /// order merges its partitions rather than sorting its rows again; without, as
    /// [`Engine::mem_table`].
    fn ordered_table(
        &self,
        schema: SchemaRef,
        parts: Vec<Vec<RecordBatch>>,
        order: Option<&str>,
    ) -> Result<MemTable> {
        let Some(order) = order else {
            return self.mem_table(schema, parts.into_iter().flatten().collect());
        };
        let sort = order_columns(order)
            .map(|c| datafusion::prelude::col(c).sort(true, false))
            .collect();
        Ok(MemTable::try_new(schema, parts)?.with_sort_order(vec![sort]))
    }

    /// [`Engine::execute_plan`], each output partition in `order` (ascending columns, nulls
    /// last): as it comes when the plan keeps that order (a step over ordered steps), else
    /// sorted here, partition by partition. Not merged into one: that copies every row once
    /// more, and the detail's own ORDER BY merges the partitions at the end. Not by a
    /// `SortExec`: it reserves each input batch's memory, and an aggregate's output batches are
    /// slices of one array, each counted whole (4 GB reserved for 100 MB of a pass's units).
    async fn execute_sorted(
        &self,
        df: DataFrame,
        order: &str,
        what: &str,
    ) -> Result<(Vec<Vec<RecordBatch>>, Arc<dyn ExecutionPlan>)> {
        let run = async {
            let plan = df.create_physical_plan().await?;
            let schema = plan.schema();
            let sort = order_columns(order)
                .map(|c| {
                    let options = SortOptions {
                        descending: false,
                        nulls_first: false,
                    };
                    Ok(PhysicalSortExpr::new(
                        datafusion::physical_expr::expressions::col(c, &schema)?,
                        options,
                    ))
                })
                .collect::<std::result::Result<Vec<_>, DataFusionError>>()?;
            let sorted = plan.equivalence_properties().ordering_satisfy(sort)?;
            let parts =
                datafusion::physical_plan::collect_partitioned(plan.clone(), self.ctx.task_ctx())
                    .await?;
            Ok::<_, DataFusionError>((parts, plan, sorted))
        };
        let (parts, plan, sorted) = match run.await {
            Ok(done) => done,
            Err(e) => return Err(self.out_of_memory(e, what)),
        };
        self.memory
            .spilled_bytes
            .fetch_add(spilled(plan.as_ref()), Ordering::Relaxed);
        if sorted {
            return Ok((parts, plan));
        }
        let schema = plan.schema();
        let columns: Vec<usize> = order_columns(order)
            .map(|c| schema.index_of(c))
            .collect::<std::result::Result<_, _>>()?;
        let batch_size = self.ctx.copied_config().batch_size().max(1);
        let parts = parts
            .into_iter()
            .map(|part| sort_partition(&schema, &part, &columns, batch_size))
            .collect::<Result<Vec<_>>>()?;
        Ok((parts, plan))
    }
}

/// These jobs run side by side, `at_once` at a time, their outputs in the order given; the
/// first error stops them.
async fn side_by_side<T>(
    jobs: Vec<impl std::future::Future<Output = Result<T>>>,
    at_once: usize,
) -> Result<Vec<T>> {
    use futures::StreamExt;
    let mut done: Vec<Option<T>> = jobs.iter().map(|_| None).collect();
    let numbered = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| async move { job.await.map(|t| (i, t)) });
    let mut running = futures::stream::iter(numbered).buffer_unordered(at_once.max(1));
    while let Some(finished) = running.next().await {
        let (i, t) = finished?;
        done[i] = Some(t);
    }
    Ok(done.into_iter().flatten().collect())
}

/// The session's name of a measure's detail table, and the name quoted for SQL: a name no
/// extract or block can take (blocks are lower_snake_case file stems).
fn detail_table(compiled: &CompiledMeasure) -> (String, String) {
    let name = format!("detail:{}", compiled.id);
    let quoted = format!("\"{name}\"");
    (name, quoted)
}

/// The queries of one aggregate of a detail table.
struct SummaryQueries {
    summary: String,
    /// Enrollee counts: they follow the measure's own strata; grouped another way, none apply.
    population: Option<String>,
}

/// The queries [`Engine::summarise`] runs on detail `table`: the whole population's by the
/// measure's own strata, then each view's, with the measure as each is compiled.
fn summary_queries(
    compiled: &CompiledMeasure,
    table: &str,
    views: &[View],
) -> Vec<(CompiledMeasure, SummaryQueries)> {
    let one = |c: CompiledMeasure, filter: Option<String>, own_strata: bool| {
        let units = match &filter {
            Some(f) => format!("(SELECT * FROM {table} WHERE {f}) scoped"),
            None => table.to_string(),
        };
        let queries = SummaryQueries {
            summary: c.summary_sql(&units),
            population: c
                .population_sql_where(table, filter.as_deref())
                .filter(|_| own_strata),
        };
        (c, queries)
    };
    let mut all = vec![one(compiled.clone(), None, true)];
    for view in views {
        let mut c = compiled.clone();
        if let Some(by) = &view.stratify {
            c.stratify = by.clone();
        }
        all.push(one(c, view.scope.filter(), view.stratify.is_none()));
    }
    all
}

/// A copy of a batch that owns its buffers, no larger than its rows. What operators emit often
/// shares buffers: an aggregate's output is sliced into batches of one array, and DataFusion
/// reads Parquet strings as views into the decoded pages, which a filter or join keeps whole.
/// A block of a hundred thousand rows picked from fifty million claim lines would then hold
/// (and count, in the memory pool) every page its rows came from. Batches that are kept
/// (blocks, a measure's steps, its detail) are copied once, compactly.
pub(crate) fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    let rows = u32::try_from(batch.num_rows())
        .map_err(|_| Error::Usage("a batch of more than 4 billion rows".into()))?;
    let all = datafusion::arrow::array::UInt32Array::from_iter_values(0..rows);
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            // A column that already owns about what its rows need is kept as it is: copying
            // every column of a million units' rows took a third of a step's time.
            if tight(c.as_ref()) {
                return Ok(c.clone());
            }
            let copied = datafusion::arrow::compute::take(c.as_ref(), &all, None)?;
            Ok(match copied.data_type() {
                DataType::Utf8View => Arc::new(copied.as_string_view().gc()) as Arc<dyn Array>,
                DataType::BinaryView => Arc::new(copied.as_binary_view().gc()) as Arc<dyn Array>,
                _ => copied,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Whether a column's buffers are at most twice what its rows need (a few KB of slack): not
/// a slice of a larger array. Strings only when every one is held in its view: longer ones
/// live in data buffers that the batches of a join's output share, which a batch's own
/// measure cannot tell. Only flat types are judged; any other is copied.
fn tight(c: &dyn Array) -> bool {
    let needed = match c.data_type() {
        DataType::Utf8View if c.as_string_view().data_buffers().is_empty() => c.len() * 16,
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Date32
        | DataType::Date64 => match c.to_data().get_slice_memory_size() {
            Ok(n) => n,
            Err(_) => return false,
        },
        _ => return false,
    };
    c.get_buffer_memory_size() <= 2 * needed + 4096
}

/// The columns of a stage's order (`compile::DETAIL_ORDER`: names joined by commas).
fn order_columns(order: &str) -> impl Iterator<Item = &str> {
    order.split(',').map(str::trim)
}

/// One partition's rows sorted by `columns` (ascending, nulls last), in batches of
/// `batch_size` rows.
fn sort_partition(
    schema: &SchemaRef,
    part: &[RecordBatch],
    columns: &[usize],
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let rows = datafusion::arrow::compute::concat_batches(schema, part)?;
    if rows.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let keys: Vec<SortColumn> = columns
        .iter()
        .map(|&i| SortColumn {
            values: rows.column(i).clone(),
            options: Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
        })
        .collect();
    let indices = lexsort_to_indices(&keys, None)?;
    let sorted = datafusion::arrow::compute::take_record_batch(&rows, &indices)?;
    Ok((0..sorted.num_rows())
        .step_by(batch_size)
        .map(|at| sorted.slice(at, batch_size.min(sorted.num_rows() - at)))
        .collect())
}

/// The plan column of `EXPLAIN ANALYZE`'s output.
fn plan_text(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    for b in batches {
        let plans = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let plans = plans.as_string::<i32>();
        for i in 0..plans.len() {
            out.push_str(plans.value(i));
        }
    }
    Ok(out)
}

/// The table holding a block kept for the run whose name is a view over it.
fn kept_table(name: &str) -> String {
    format!("{name}__kept")
}

/// The view of a block kept for the run: its rows of the members of `range`.
fn member_view(name: &str, range: &MemberRange) -> String {
    let filter = range
        .filter()
        .map_or(String::new(), |f| format!(" WHERE {f}"));
    format!(
        "CREATE VIEW {name} AS SELECT * FROM {}{filter}",
        kept_table(name)
    )
}

/// Define a building block's view.
async fn define_block(ctx: &SessionContext, block: &Block) -> Result<()> {
    ctx.sql(&format!("CREATE VIEW {} AS\n{}", block.name, block.sql))
        .await
        .map_err(|e| Error::Definition {
            path: block.path.clone(),
            line: 1,
            column: 1,
            message: format!("building block `{}` does not plan: {e}", block.name),
            hint: None,
        })?;
    Ok(())
}

/// Register the optional input tables, empty when not supplied (so blocks over them plan);
/// returns the names of those supplied.
fn register_inputs(ctx: &SessionContext, inputs: &Inputs) -> Result<BTreeSet<String>> {
    let mut supplied = BTreeSet::new();
    let batches = match &inputs.risk_weights {
        Some(path) => {
            supplied.insert("risk_weights".to_string());
            vec![extract::risk::load(path)?]
        }
        None => Vec::new(),
    };
    ctx.register_table(
        "risk_weights",
        Arc::new(MemTable::try_new(extract::risk::schema(), vec![batches])?),
    )?;
    Ok(supplied)
}

/// Bytes a plan's operators spilled, summed over the tree.
fn spilled(plan: &dyn ExecutionPlan) -> usize {
    plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0)
        + plan
            .children()
            .into_iter()
            .map(|c| spilled(c.as_ref()))
            .sum::<usize>()
}

/// Views report strings as Utf8View; the catalog speaks of logical types.
fn normalise(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}
