//! The executor: carries a [`RunPlan`] out on an [`Engine`]. The blocks kept for the run
//! first, over every member; then pass by pass the views narrowed to the pass's members, its
//! blocks computed wave by wave, its measures side by side, each measure's detail given to a
//! [`Sink`] as it is done; and the views over every member again at the end. With a run cache
//! ([`Options::cache`]), a pass's details the cache has are given as found, and only the blocks
//! the others read are computed. What was built and
//! how long it took is told to an [`Observer`] (timings, progress). The commands that compute
//! over members (`hhq run`, `report`, `cohort`, `explain`, `profile`) carry their plans out
//! through it; [`open`] is how commands open a session.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;

use crate::compile::CompiledMeasure;
use crate::definitions::Definitions;
use crate::engine::{Built, CachedDetail, Engine, PassDetail, View};
use crate::error::{Error, Result};
use crate::plan::{BlockLife, Facts, MemberRange, Pass, RunPlan};

/// What every command computing over the extracts is given: where the data and the definitions
/// are, the specification year, and how the engine computes (`hhq run`, `report`, `cohort`,
/// `explain`, `profile`, `scan`, `compile`, `sql` and `query` share it; each adds its own
/// options beside it).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The directory of the four extracts.
    pub data: PathBuf,
    /// Measures (value sets in its `valuesets/`).
    pub measures: PathBuf,
    /// Building blocks.
    pub queries: PathBuf,
    /// The specification year the measures follow (`--spec`); the default, each measure's
    /// newest.
    pub spec: crate::measure::Spec,
    /// PCR-HH's risk-weight table, when the user has one.
    pub risk_weights: Option<PathBuf>,
    /// Bytes DataFusion's operators may hold at once, spilling to disk beyond
    /// (`--memory-limit`); `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// Where the queries run (`--engine`): this process or a Ballista cluster.
    pub engine: crate::distributed::Backend,
    /// Members computed at once (`--members-per-pass`); `None`: as the plan makes them
    /// ([`crate::plan::MEMBERS_PER_PASS`], or as many as a memory limit holds).
    pub members_per_pass: Option<usize>,
    /// The run cache (`None`: `--no-cache`, and the library's default): blocks and details
    /// read from it when the same inputs made them, and kept there.
    pub cache: Option<std::sync::Arc<crate::cache::Cache>>,
}

/// Load the definitions and open the data directory for `audience`, with the optional inputs,
/// memory limit and backend `opts` gives: the one way commands open a session.
pub async fn open(
    opts: &Options,
    audience: &crate::privacy::Audience,
) -> Result<(Definitions, Engine)> {
    let defs = Definitions::load_spec(&opts.measures, &opts.queries, opts.spec)?;
    let engine = open_loaded(opts, &defs, audience).await?;
    Ok((defs, engine))
}

/// [`open`], the definitions loaded already.
pub async fn open_loaded(
    opts: &Options,
    defs: &Definitions,
    audience: &crate::privacy::Audience,
) -> Result<Engine> {
    let inputs = crate::engine::Inputs {
        risk_weights: opts.risk_weights.clone(),
    };
    Engine::open_cached(
        &opts.data,
        defs,
        &inputs,
        opts.memory_limit,
        &opts.engine,
        audience,
        opts.cache.clone(),
    )
    .await
}

/// One measure to compute: its detail, pass by pass, into a sink.
pub struct Job<'a> {
    /// What names the job's detail in the sink.
    pub key: String,
    pub compiled: &'a CompiledMeasure,
    /// The aggregates its detail is summarised for besides the whole population: a sink that
    /// spools keeps only the columns they read.
    pub views: &'a [View],
}

/// Where the executor puts each pass's detail of each job.
pub trait Sink {
    /// Whether it holds only the columns the summaries read, and has not been told them yet
    /// for the job `key`.
    fn wants_columns(&self, key: &str) -> bool;
    /// The columns the summaries read of job `key` (before its first append).
    fn set_columns(&mut self, key: &str, columns: Vec<String>);
    /// One pass's detail of job `key`.
    fn append(&mut self, key: String, batches: Vec<RecordBatch>);
    /// Every append of the pass done (a job's passes stay in order).
    fn settle(&mut self) -> impl std::future::Future<Output = Result<()>>;
}

/// The details kept in memory, each job's passes in order: a report of one pass.
#[derive(Default)]
pub struct InMemory {
    pub details: std::collections::BTreeMap<String, Vec<RecordBatch>>,
}

impl Sink for InMemory {
    fn wants_columns(&self, _: &str) -> bool {
        false
    }

    fn set_columns(&mut self, _: &str, _: Vec<String>) {}

    fn append(&mut self, key: String, batches: Vec<RecordBatch>) {
        self.details.entry(key).or_default().extend(batches);
    }

    async fn settle(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a command wants to know as the plan is carried out. Every method does nothing unless
/// the command says otherwise.
pub trait Observer {
    /// Blocks computed, and the time all of them took (`pass`: 0 for the blocks kept for the
    /// run, else the pass's number).
    fn blocks(&mut self, _pass: usize, _built: &[Built], _took: Duration) {}
    /// Job `job`'s detail of a pass, done in `took`.
    fn detail(&mut self, _job: usize, _detail: &[RecordBatch], _took: Duration) -> Result<()> {
        Ok(())
    }
    /// A pass's measures, done in `took`.
    fn measures(&mut self, _pass: usize, _took: Duration) {}
}

/// An observer that wants nothing.
impl Observer for () {}

/// What the planner needs to know of `engine`'s data, and the plan of these measures and the
/// blocks they read (`needed`), in passes of `members_per_pass` members or as the memory limit
/// makes them.
pub async fn plan(
    engine: &Engine,
    measures: &[&CompiledMeasure],
    needed: &BTreeSet<&str>,
    members_per_pass: Option<usize>,
) -> Result<RunPlan> {
    // A cluster computes one pass: its member ids are not read.
    let cluster = !engine.backend().is_local();
    let members = match cluster {
        true => Vec::new(),
        false => engine.member_ids().await?,
    };
    let names = engine.table_names();
    let facts = Facts {
        members: &members,
        rows: engine.extracts.iter().map(|e| e.rows).sum(),
        memory_limit: engine.memory_limit(),
        cluster,
        blocks: engine.blocks(),
        names: &names,
    };
    Ok(RunPlan::new(&facts, measures, needed, members_per_pass))
}

/// The plan of these measures over one range of members only (`hhq explain`): one pass, the
/// member ids not read.
pub fn plan_over(
    engine: &Engine,
    measures: &[&CompiledMeasure],
    needed: &BTreeSet<&str>,
    members: MemberRange,
) -> RunPlan {
    let names = engine.table_names();
    let facts = Facts {
        members: &[],
        rows: engine.extracts.iter().map(|e| e.rows).sum(),
        memory_limit: engine.memory_limit(),
        cluster: !engine.backend().is_local(),
        blocks: engine.blocks(),
        names: &names,
    };
    RunPlan::new(&facts, measures, needed, None).only(members)
}

/// Compute the blocks marked `hhq: keep` (but `except`) over every member and keep them for the
/// run, unless kept already: what every plan computes first, done early by a command whose
/// first queries (the data's cut-off, the claim versions) read them, or before profiling a
/// block. The blocks computed.
pub async fn keep_for_run(engine: &Engine, except: Option<&str>) -> Result<Vec<Built>> {
    let waves = crate::plan::keep_waves(engine.blocks(), except);
    let at_once = crate::plan::queries_at_once(engine.memory_limit());
    engine.focus(&MemberRange::default()).await?;
    engine.build_blocks(&waves, BlockLife::Run, at_once).await
}

/// A plan being carried out, pass by pass ([`Executor::next_pass`]).
pub struct Executor<'a> {
    engine: &'a Engine,
    plan: &'a RunPlan,
    /// Passes begun.
    begun: usize,
    /// Each measure's time in the pass before: the longest starts first, so that a pass does
    /// not end on a long measure running alone on one core while the other idles.
    took_last: Vec<Duration>,
}

impl<'a> Executor<'a> {
    /// Begin carrying `plan` out: the blocks kept for the run, over every member.
    pub async fn start(
        engine: &'a Engine,
        plan: &'a RunPlan,
        observer: &mut impl Observer,
    ) -> Result<Executor<'a>> {
        engine.focus(&MemberRange::default()).await?;
        let started = Instant::now();
        let built = engine
            .build_blocks(&plan.for_run, BlockLife::Run, plan.queries_at_once)
            .await?;
        observer.blocks(0, &built, started.elapsed());
        Ok(Executor {
            engine,
            plan,
            begun: 0,
            took_last: vec![Duration::ZERO; plan.measures.len()],
        })
    }

    /// Begin the next pass: the views read its members, its blocks computed. `None` after the
    /// last, the views over every member again and the last pass's blocks freed.
    pub async fn next_pass(&mut self, observer: &mut impl Observer) -> Result<Option<&'a Pass>> {
        self.next_pass_needing(observer, None).await
    }

    /// The members of the pass [`Executor::next_pass`] begins next, if any.
    pub fn upcoming(&self) -> Option<&'a MemberRange> {
        self.plan.passes.get(self.begun).map(|p| &p.members)
    }

    /// [`Executor::next_pass`], computing only the blocks `needed` of the plan's (all of them
    /// when `None`).
    pub async fn next_pass_needing(
        &mut self,
        observer: &mut impl Observer,
        needed: Option<&BTreeSet<String>>,
    ) -> Result<Option<&'a Pass>> {
        let Some(pass) = self.plan.passes.get(self.begun) else {
            self.engine.focus(&MemberRange::default()).await?;
            return Ok(None);
        };
        self.begun += 1;
        self.engine.focus(&pass.members).await?;
        let started = Instant::now();
        let waves: Vec<Vec<String>> = match needed {
            None => self.plan.pass_blocks.clone(),
            Some(needed) => self
                .plan
                .pass_blocks
                .iter()
                .map(|w| w.iter().filter(|b| needed.contains(*b)).cloned().collect())
                .filter(|w: &Vec<String>| !w.is_empty())
                .collect(),
        };
        let built = self
            .engine
            .build_blocks(
                &waves,
                BlockLife::Pass {
                    budget: self.plan.block_budget,
                },
                self.plan.queries_at_once,
            )
            .await?;
        observer.blocks(self.begun, &built, started.elapsed());
        Ok(Some(pass))
    }

    /// The pass's measures (the plan's, one per job, in order): side by side, the steps two
    /// of them compute alike computed once and held until the last has read them; each detail
    /// given to `sink` as it is done, the pass's appends settled before the next pass. The
    /// schema each job's plan gives its detail.
    pub async fn measures(
        &mut self,
        jobs: &[Job<'_>],
        sink: &mut impl Sink,
        observer: &mut impl Observer,
    ) -> Result<Vec<SchemaRef>> {
        let none = (0..jobs.len()).map(|_| None).collect();
        self.measures_cached(jobs, none, sink, observer).await
    }

    /// [`Executor::measures`], the details `cached` has (one per job) given as found, the
    /// others computed (and kept in the engine's run cache, if any).
    pub async fn measures_cached(
        &mut self,
        jobs: &[Job<'_>],
        mut cached: Vec<Option<CachedDetail>>,
        sink: &mut impl Sink,
        observer: &mut impl Observer,
    ) -> Result<Vec<SchemaRef>> {
        if jobs.len() != self.plan.measures.len() || cached.len() != jobs.len() {
            return Err(Error::Failed(format!(
                "{} jobs for a plan of {} measures",
                jobs.len(),
                self.plan.measures.len()
            )));
        }
        let started = Instant::now();
        let range = self
            .plan
            .passes
            .get(self.begun.saturating_sub(1))
            .map(|p| p.members.clone())
            .unwrap_or_default();
        let mut planned: Vec<Option<SchemaRef>> = vec![None; jobs.len()];
        for (k, found) in cached.iter_mut().enumerate() {
            let Some(CachedDetail {
                batches,
                planned: schema,
            }) = found.take()
            else {
                continue;
            };
            deliver(
                self.engine,
                k,
                &jobs[k],
                batches,
                &schema,
                Duration::ZERO,
                sink,
                observer,
            )
            .await?;
            planned[k] = Some(schema);
        }
        let computed: BTreeSet<&str> = (0..jobs.len())
            .filter(|&k| planned[k].is_none())
            .map(|k| self.plan.measures[k].id.as_str())
            .collect();
        let shared = self.engine.share(self.plan.shared_steps_among(&computed));
        let mut order: Vec<usize> = (0..jobs.len()).filter(|&k| planned[k].is_none()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.took_last[i]));
        {
            let mut details = self.engine.details(
                order.iter().map(|&i| &self.plan.measures[i]),
                &shared,
                self.plan.queries_at_once,
            );
            while let Some(done) = details.next().await {
                let PassDetail {
                    index,
                    batches,
                    planned: schema,
                    took,
                } = done?;
                let k = order[index];
                self.took_last[k] = took;
                let job = &jobs[k];
                self.engine
                    .keep_detail(job.compiled, &range, &batches, &schema);
                deliver(self.engine, k, job, batches, &schema, took, sink, observer).await?;
                planned[k] = Some(schema);
            }
        }
        sink.settle().await?;
        observer.measures(self.begun, started.elapsed());
        Ok(planned.into_iter().flatten().collect())
    }
}

/// Job `k`'s detail of a pass, computed or found in the run cache, told to the observer and given
/// to the sink (with the columns its summaries read, before its first pass).
#[allow(clippy::too_many_arguments)]
async fn deliver(
    engine: &Engine,
    k: usize,
    job: &Job<'_>,
    batches: Vec<RecordBatch>,
    planned: &SchemaRef,
    took: Duration,
    sink: &mut impl Sink,
    observer: &mut impl Observer,
) -> Result<()> {
    observer.detail(k, &batches, took)?;
    if sink.wants_columns(&job.key) {
        let read = engine
            .summary_columns(job.compiled, planned.clone(), job.views)
            .await?;
        sink.set_columns(&job.key, read);
    }
    sink.append(job.key.clone(), batches);
    Ok(())
}

/// The entry point of the commands computing measures: `plan` carried out, every pass's
/// detail of every job into `sink`. The schema each job's plan gives its detail.
pub async fn run(
    engine: &Engine,
    plan: &RunPlan,
    jobs: &[Job<'_>],
    sink: &mut impl Sink,
    observer: &mut impl Observer,
) -> Result<Vec<SchemaRef>> {
    let mut executor = Executor::start(engine, plan, observer).await?;
    let mut planned = Vec::new();
    loop {
        let Some(range) = executor.upcoming() else {
            // The last pass done: the views over every member again.
            executor.next_pass(observer).await?;
            break;
        };
        let cached: Vec<Option<CachedDetail>> = jobs
            .iter()
            .map(|j| engine.cached_detail(j.compiled, range))
            .collect();
        // Only the blocks the measures computed read: none when the cache has every detail.
        let needed = engine.cache().map(|_| {
            jobs.iter()
                .zip(&cached)
                .filter(|(_, c)| c.is_none())
                .flat_map(|(j, _)| blocks_read(engine, j.compiled))
                .collect::<BTreeSet<String>>()
        });
        executor
            .next_pass_needing(observer, needed.as_ref())
            .await?;
        planned = executor
            .measures_cached(jobs, cached, sink, observer)
            .await?;
    }
    Ok(planned)
}

/// The blocks a compiled measure's steps read, and the blocks those read.
fn blocks_read(engine: &Engine, compiled: &CompiledMeasure) -> BTreeSet<String> {
    let blocks = engine.blocks();
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = compiled
        .plan()
        .steps
        .iter()
        .flat_map(|s| s.kind.reads())
        .map(str::to_string)
        .collect();
    while let Some(name) = todo.pop() {
        if let Some(b) = blocks.iter().find(|b| b.name == name)
            && out.insert(name)
        {
            todo.extend(b.reads.iter().cloned());
        }
    }
    out
}
