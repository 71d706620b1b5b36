//! The main job, stage by stage: load definitions, open the extracts, pick the period, compile and
//! run every measure, write the result table. The binary calls this and prints what it returns.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::compile::{self, CompiledMeasure};
use crate::definitions::Definitions;
use crate::engine::{ClaimVersions, Engine, View};
use crate::error::{Error, Result};
use crate::extract::OpenedExtract;
use crate::measure::{Stratifier, Unit};
use crate::output::Staged;
use crate::period::Period;
use crate::privacy::Audience;
use crate::results::{self, Grouping, ResultRow};

/// What `hhq run` (and `scan`, `explain`, `profile`) is asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The data, the definitions and how the engine computes.
    pub common: crate::execute::Options,
    pub out: PathBuf,
    /// `None`: the latest full calendar year in the data.
    pub period: Option<Period>,
    /// Measure ids to run; empty runs all.
    pub only: Vec<String>,
    /// One audience's units only, and pseudonymised member ids, in the outputs.
    pub privacy: crate::privacy::Privacy,
    /// The data-quality policy and as-of date the gate uses.
    pub quality: crate::quality::QualityOptions,
    /// Which measures' detail is also written as CSV (`--detail-csv`).
    pub detail_csv: crate::detail::DetailCsv,
}

/// What a run did, without member-level data.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub period: Period,
    pub cutoff: Option<NaiveDate>,
    /// The claims' first day: look-backs before it cannot be computed.
    pub data_first: Option<NaiveDate>,
    pub extracts: Vec<OpenedExtract>,
    pub claim_versions: ClaimVersions,
    pub measures: Vec<(String, String)>,
    pub rows: Vec<ResultRow>,
    /// CMS's consistency checks over the rows.
    pub cms_checks: Vec<crate::cms::Check>,
    /// What each measure tells CMS besides the numbers (`cms_measures.csv`).
    pub cms_measures: Vec<crate::cms::MeasureReport>,
    /// Components not reported and why, e.g. expected readmissions without risk weights.
    pub notes: Vec<String>,
    /// The extracts' data-quality profile (rows set aside by reason, every check).
    pub quality: crate::quality::Profile,
    /// Set when data-quality checks failed and the policy says publish with a caveat.
    pub caveat: Option<String>,
    /// The engine's memory: peak in the pool, bytes spilled.
    pub memory: crate::engine::MemoryStats,
    /// Wall time of each stage, in order (`hhq run --timings`).
    pub timings: Timings,
    /// What the run cache served and kept (none without one).
    pub cache: Option<crate::cache::Stats>,
}

impl RunSummary {
    /// The warnings a run prints whatever else is asked: the data-quality caveat the policy
    /// publishes with, and each check that warns.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .caveat
            .iter()
            .map(|c| format!("{c} (see data_quality_checks.csv)"))
            .collect();
        out.extend(self.quality.warning_lines());
        out
    }

    /// What `hhq run` tells: the warnings, the results as `format` says (none when `quiet`),
    /// then the notes ([`RunSummary::notes_after`]; when `quiet`, those said always).
    pub fn told(
        &self,
        out: &std::path::Path,
        format: crate::report::terminal::RunFormat,
        quiet: bool,
        timings: bool,
    ) -> Result<crate::output::Told> {
        Ok(crate::output::Told {
            before: self
                .warnings()
                .into_iter()
                .map(|w| format!("warning: {w}"))
                .collect(),
            out: match quiet {
                true => String::new(),
                false => crate::report::terminal::results_text(&self.rows, format)?,
            },
            after: self
                .notes_after(out, timings)
                .into_iter()
                .filter(|(_, always)| *always || !quiet)
                .map(|(line, _)| line)
                .collect(),
            failed: None,
        })
    }

    /// What `hhq run` says after the results, in order, each with whether it is said even when
    /// asked to be quiet: the notes (period, extracts, claim versions, notes, memory), the
    /// timings when asked for (`--timings`, said always), the CMS checks (those failing said
    /// always), what was written to `out`.
    pub fn notes_after(&self, out: &std::path::Path, timings: bool) -> Vec<(String, bool)> {
        let mut lines = Vec::new();
        let mut note = |line: String, always: bool| lines.push((line, always));
        let c = self.claim_versions;
        note(
            format!(
                "period {}{}; measures: {}",
                self.period,
                self.cutoff
                    .map(|d| format!(" (data through {d})"))
                    .unwrap_or_default(),
                self.measures
                    .iter()
                    .map(|(id, v)| format!("{id} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            false,
        );
        note(
            format!(
                "extracts: {}",
                self.extracts
                    .iter()
                    .map(|e| format!("{} {} rows", e.name, e.rows))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            false,
        );
        note(
            format!(
                "claim lines used: {} = {} final + {} superseded + {} void",
                c.lines_read, c.final_lines, c.superseded_lines, c.void_lines
            ),
            false,
        );
        for n in &self.notes {
            note(format!("note: {n}"), false);
        }
        let m = self.memory;
        note(
            format!(
                "memory: at most {} held in the query engine's pool{}{}",
                crate::plan::format_size(m.peak_reserved),
                m.limit
                    .map(|l| format!(" (--memory-limit {})", crate::plan::format_size(l)))
                    .unwrap_or_default(),
                if m.spilled_bytes > 0 {
                    format!(
                        "; {} spilled to disk",
                        crate::plan::format_size(m.spilled_bytes)
                    )
                } else {
                    String::new()
                }
            ),
            false,
        );
        if let Some(line) = self.cache.as_ref().and_then(crate::cache::Stats::line) {
            note(line, timings);
        }
        if timings {
            note(
                format!("timings:\n{}", self.timings.render().trim_end()),
                true,
            );
        }
        let failing: Vec<_> = self.cms_checks.iter().filter(|c| !c.passed).collect();
        if failing.is_empty() {
            note(
                format!("CMS checks: all {} hold", self.cms_checks.len()),
                false,
            );
        } else {
            note(
                format!(
                    "CMS checks: {} of {} fail (see cms_checks.csv)",
                    failing.len(),
                    self.cms_checks.len()
                ),
                true,
            );
            for c in failing.iter().take(10) {
                let line = format!(
                    "  {} {} {}={}: {} ({})",
                    c.measure, c.component, c.stratifier, c.stratum, c.check, c.detail
                );
                note(crate::escape::terminal_line(&line).into_owned(), true);
            }
        }
        note(
            format!(
                "wrote {0}/summary.csv, {0}/summary.parquet, {0}/cms_reporting.csv, \
                 {0}/cms_measures.csv, {0}/cms_checks.csv, {0}/data_quality.csv, \
                 {0}/manifest.json and member-level {0}/detail/<measure>.parquet|csv",
                out.display()
            ),
            false,
        );
        lines
    }
}

/// Wall time per stage of a run: what `--timings` prints and the benchmark reads.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub stages: Vec<(String, std::time::Duration)>,
    /// Rows and bytes of each building block computed, summed over passes.
    sizes: std::collections::BTreeMap<String, (usize, usize)>,
    /// Blocks read from the run cache rather than computed (in some pass).
    reused: std::collections::BTreeSet<String>,
    /// Time added to stages since the last lap.
    added: std::time::Duration,
    last: Option<std::time::Instant>,
}

impl Timings {
    pub fn start() -> Timings {
        Timings {
            stages: Vec::new(),
            sizes: Default::default(),
            reused: Default::default(),
            added: std::time::Duration::ZERO,
            last: Some(std::time::Instant::now()),
        }
    }

    /// The stage that ended now took the time since the previous one ended, less what was
    /// added to stages in between ([`Timings::add`]).
    pub fn lap(&mut self, stage: impl Into<String>) {
        let now = std::time::Instant::now();
        let since = self.last.map_or(std::time::Duration::ZERO, |t| now - t);
        self.stages.push((
            stage.into(),
            since.saturating_sub(std::mem::take(&mut self.added)),
        ));
        self.last = Some(now);
    }

    /// Time spent on a stage, added to what it took before (a stage done pass by pass); the
    /// next lap counts the rest of the time since the last.
    pub fn add(&mut self, stage: impl Into<String>, took: std::time::Duration) {
        let stage = stage.into();
        if !stage.starts_with(' ') {
            self.added += took;
        }
        match self.stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, d)) => *d += took,
            None => self.stages.push((stage, took)),
        }
    }

    /// A building block computed (in a pass): listed, indented, before "building blocks" and not
    /// counted again in the total; its time, rows and size summed over passes.
    pub fn add_block(&mut self, built: &crate::engine::Built) {
        self.add(format!("  building block {}", built.name), built.took);
        if built.reused {
            self.reused.insert(built.name.clone());
        }
        let size = self.sizes.entry(built.name.clone()).or_default();
        size.0 += built.rows;
        size.1 += built.bytes;
    }

    pub fn total(&self) -> std::time::Duration {
        self.stages
            .iter()
            .filter(|(s, _)| !s.starts_with(' '))
            .map(|(_, d)| *d)
            .sum()
    }

    /// One line per stage, then the total: `  12.345 s  measure FUH-HH`.
    pub fn render(&self) -> String {
        let total = ("total".to_string(), self.total());
        let mut out = String::new();
        for (stage, d) in self.stages.iter().chain([&total]) {
            let block = stage.strip_prefix("  building block ");
            let size = block
                .and_then(|b| self.sizes.get(b))
                .map(|(rows, bytes)| {
                    let reused = match block.is_some_and(|b| self.reused.contains(b)) {
                        true => ", from the run cache",
                        false => "",
                    };
                    format!(
                        " ({rows} rows, {}{reused})",
                        crate::plan::format_size(*bytes)
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!("{:>9.3} s  {stage}{size}\n", d.as_secs_f64()));
        }
        out
    }
}

/// Run the measures and write `summary.csv`, `summary.parquet`, `data_quality.csv` and the
/// member-level `detail/<ID>.parquet` and `.csv` to `opts.out`, which is replaced whole. Nothing
/// is written unless every measure succeeded.
///
/// For an audience (`--mco`, `--hhp`) the run is two: the state's, in a session of its own whose
/// only output is its published rates (`benchmarks.csv`: total and MCO rates, suppressed as every
/// published cell), and the audience's, in a session that holds the audience's members only
/// ([`Engine::open_scoped`]), over the state's period and data cut-off.
pub async fn run(opts: &RunOptions) -> Result<RunSummary> {
    // Refuse an --out hhq may not replace before the work, not after.
    crate::output::check_replaceable(&opts.out, "run")?;
    let mut summary = run_both(opts).await?;
    // Within its bound once the outputs are written: entries of this run are the newest.
    if let Some(cache) = &opts.common.cache {
        cache.trim()?;
        summary.cache = Some(cache.stats());
    }
    Ok(summary)
}

/// [`run`]: the state's run, or the state's and then the audience's.
async fn run_both(opts: &RunOptions) -> Result<RunSummary> {
    if opts.privacy.audience == Audience::State {
        return run_in(opts, None).await;
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let state_opts = RunOptions {
        out: scratch.path().join("state"),
        privacy: crate::privacy::Privacy::default(),
        detail_csv: crate::detail::DetailCsv::Never,
        ..opts.clone()
    };
    let state = run_in(&state_opts, None).await?;
    let mut summary = run_in(opts, Some(&state)).await?;
    let took = state
        .timings
        .stages
        .iter()
        .filter(|(stage, _)| !stage.starts_with(' '))
        .map(|(_, took)| *took)
        .sum();
    summary
        .timings
        .stages
        .insert(0, ("the state's run (benchmarks)".into(), took));
    Ok(summary)
}

/// The published benchmarks of an audience's run: the state's total and per-MCO rates of each
/// measure, as rates only and suppressed by CMS's rule (`DS`). Counts are left out (numerators,
/// denominators and count components): a state or MCO count less the audience's own would give
/// the rest's counts, small ones included.
fn benchmarks_csv(state: &[ResultRow]) -> String {
    let rows: Vec<ResultRow> = state
        .iter()
        .filter(|r| {
            matches!(
                r.stratifier,
                Grouping::Total | Grouping::By(Stratifier::Mco)
            )
        })
        // A count component's "rate" is its count: less the audience's own, the rest's.
        .filter(|r| r.unit != Unit::Count)
        .cloned()
        .collect();
    let mut published = crate::suppress::suppress(&rows);
    published.sort_by(|a, b| {
        (&a.row.measure, &a.row.component, a.row.period_start).cmp(&(
            &b.row.measure,
            &b.row.component,
            b.row.period_start,
        ))
    });
    let mut out =
        String::from("measure,component,period_start,period_end,stratifier,stratum,rate,unit\n");
    for p in published {
        let r = &p.row;
        let rate = match p.rate {
            Ok(Some(x)) => x.to_string(),
            Ok(None) => String::new(),
            Err(_) => "DS".to_string(),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            results::csv_field(&r.measure),
            results::csv_field(&r.component),
            r.period_start,
            r.period_end,
            results::csv_field(r.stratifier.name()),
            results::csv_field(&r.stratum),
            rate,
            results::csv_field(r.unit.name())
        ));
    }
    out
}

/// What a run's executor reports, into the run's timings and its progress bar.
struct Progress<'a> {
    timings: &'a mut Timings,
    bar: &'a indicatif::ProgressBar,
    jobs: &'a [crate::execute::Job<'a>],
}

impl crate::execute::Observer for Progress<'_> {
    fn blocks(&mut self, pass: usize, built: &[crate::engine::Built], took: std::time::Duration) {
        // The blocks kept for the run are timed as a stage of their own.
        if pass == 0 {
            return;
        }
        for b in built {
            self.timings.add_block(b);
        }
        self.timings.add("building blocks", took);
        self.bar.inc(1);
    }

    fn detail(
        &mut self,
        job: usize,
        _: &[datafusion::arrow::array::RecordBatch],
        took: std::time::Duration,
    ) -> Result<()> {
        let id = &self.jobs[job].compiled.id;
        self.bar.set_message(id.clone());
        self.timings.add(format!("  measure {id}"), took);
        self.bar.inc(1);
        Ok(())
    }

    fn measures(&mut self, _: usize, took: std::time::Duration) {
        self.timings.add("measures", took);
    }
}

/// One run in one session: the state's (`state: None`), or an audience's in a scoped session
/// over the period and cut-off of the state's run given.
async fn run_in(opts: &RunOptions, state: Option<&RunSummary>) -> Result<RunSummary> {
    let mut timings = Timings::start();
    let (defs, engine) = open(opts).await?;
    timings.lap("open extracts (schema, every page decoded, row rules)");
    // The gate first: a refused run computes nothing and writes nothing.
    let (quality, caveat) = quality_gate(&engine, &opts.quality, &opts.common.measures).await?;
    for (what, took) in &quality.took {
        timings.add(format!("  {what}"), *took);
    }
    timings.lap("data-quality profile");
    // The blocks marked `hhq: keep` first, over every member: the cut-off and the claim versions
    // read claims_final, which reads them, and would each compute them again.
    crate::execute::keep_for_run(&engine, None).await?;
    timings.lap("blocks kept for the run");
    // An audience's period and cut-off are the state's: its own members' latest claim is not
    // the end of the data.
    let cutoff = match state {
        Some(s) => s.cutoff,
        None => engine.data_cutoff(quality.as_of).await?,
    };
    let data_first = match state {
        Some(s) => s.data_first,
        None => engine.data_first_day().await?,
    };
    let coverage =
        cutoff.map(|last| crate::coverage::Coverage::of(data_first, last, &opts.quality));
    // The period within the data (refused, or cut to the data's last whole month with a
    // caveat, as the policy says), checked before anything is computed.
    let (period, partial) = match (state, coverage) {
        (Some(s), _) => (s.period, None),
        (None, Some(data)) => {
            let policy = crate::quality::Policy::resolve(
                opts.quality.policy.as_deref(),
                &opts.common.measures,
            )?;
            crate::coverage::period(choose_period(opts, cutoff)?, data, &policy)?
        }
        (None, None) => (choose_period(opts, cutoff)?, None),
    };
    let caveat = match (caveat, partial) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    };
    timings.lap("data cut-off");

    let mut selected = select(&defs, &opts.only, &opts.common.measures)?;
    let mut compiled = Vec::new();
    let mut notes = Vec::new();
    let mut not_reported = Vec::new();
    // A measure whose look-back or follow-up reaches outside the data is not computed: no number
    // stands for it, and the outputs say why.
    let mut uncovered = Vec::new();
    if let Some(data) = coverage {
        selected.retain(|m| match crate::coverage::measure(m, &period, data) {
            Some(why) => {
                notes.push(format!("{}: {why}", m.id));
                uncovered.push((*m, why));
                false
            }
            None => true,
        });
    }
    for m in &selected {
        let c = compile::compile(m, engine.catalog(), &period)?;
        if let Some(note) = not_reported_note(&c) {
            notes.push(format!("{}: {note}", m.id));
            not_reported.push((m.id.clone(), note));
        }
        compiled.push(c);
    }
    let claim_versions = engine.claim_versions().await?;
    timings.lap("claim versions");

    // A state's members in passes of at most `members_per_pass`, so that memory follows the
    // pass, not the state (see `detail`): the plan says what each computes and holds.
    let plan = crate::execute::plan(
        &engine,
        &compiled.iter().collect::<Vec<_>>(),
        &blocks_needed(&engine, &selected),
        opts.common.members_per_pass,
    )
    .await?;
    if plan.passes.len() > 1 {
        timings.lap(format!("member ranges ({} passes)", plan.passes.len()));
    }
    // The output directory is written whole (see `output::Staged`): a failure or a kill leaves the
    // previous outputs as they were, and no file of an earlier run (a measure not run now, an
    // audience's benchmarks) lingers.
    let mut staged = Staged::begin(&opts.out, "run")?;
    let audience = &opts.privacy.audience;
    let views = match audience {
        Audience::State => Vec::new(),
        scope => vec![View {
            scope: scope.clone(),
            stratify: None,
        }],
    };
    let partitions = engine.context().copied_config().target_partitions();
    // A measure whose outputs the run cache has from the same details, audience, pseudonyms and
    // options is not computed again: its rows read, its detail files linked.
    let mut outputs: std::collections::BTreeMap<String, MeasureOutputs> = Default::default();
    let mut keys = std::collections::BTreeMap::new();
    for c in &compiled {
        let Some(key) = outputs_key(&engine, &plan, c, opts, &views, partitions) else {
            continue;
        };
        if let Some(found) = reuse_outputs(&engine, &key, c, &mut staged)? {
            timings.lap(format!("reuse {}", c.id));
            outputs.insert(c.id.clone(), found);
        }
        keys.insert(c.id.clone(), key);
    }
    let computed: Vec<&CompiledMeasure> = compiled
        .iter()
        .filter(|c| !outputs.contains_key(&c.id))
        .collect();
    let plan = match outputs.is_empty() {
        true => plan,
        false => plan.without(&outputs.keys().map(String::as_str).collect()),
    };
    let bar = progress((plan.passes.len() * (computed.len() + 1) + computed.len()) as u64);
    // Each measure's Parquet detail is encoded as its passes are spooled.
    let mut spool = crate::detail::Spool::new(staged.dir())?;
    for c in &computed {
        let parquet = staged.file(format!("detail/{}.parquet", c.id))?;
        spool.write_detail(&c.id, parquet, opts.privacy.clone());
    }
    let mut sink = crate::detail::DetailSink::new(spool);
    let jobs: Vec<crate::execute::Job> = computed
        .iter()
        .map(|c| crate::execute::Job {
            key: c.id.clone(),
            compiled: c,
            views: &views,
        })
        .collect();
    let mut observer = Progress {
        timings: &mut timings,
        bar: &bar,
        jobs: &jobs,
    };
    let planned = match jobs.is_empty() {
        true => Vec::new(),
        false => crate::execute::run(&engine, &plan, &jobs, &mut sink, &mut observer).await?,
    };
    let planned_schemas: std::collections::BTreeMap<&str, _> = computed
        .iter()
        .map(|c| c.id.as_str())
        .zip(planned)
        .collect();
    let mut spool = sink.finish().await?;
    timings.lap("member passes: views and progress");

    for c in &computed {
        bar.set_message(format!("writing {}", c.id));
        let spooled = spool.finish(&c.id, &planned_schemas[c.id.as_str()])?;
        let (all, mut viewed) = engine
            .summarise(c, spooled.table(partitions)?, &views)
            .await?;
        // An audience's own units; the session's others are its members' units attributed
        // to another MCO or partner, which are not its to publish.
        let own = viewed.pop().unwrap_or(all);
        timings.lap(format!("summarise {}", c.id));
        let detail_rows = spooled.rows();
        let csv = if opts.detail_csv.writes(detail_rows) {
            Some(staged.file(format!("detail/{}.csv", c.id))?)
        } else {
            None
        };
        spooled.close(csv.as_deref())?;
        timings.lap(format!("write detail {}", c.id));
        let made = MeasureOutputs {
            rows: own,
            detail_rows,
            csv: csv.is_some(),
        };
        if let (Some(cache), Some(key)) = (engine.cache(), keys.get(&c.id)) {
            keep_outputs(cache, key, c, &made, &staged);
        }
        outputs.insert(c.id.clone(), made);
        bar.inc(1);
    }
    drop(spool);
    let mut rows = Vec::new();
    let mut no_csv = Vec::new();
    for c in &compiled {
        let made = outputs
            .remove(&c.id)
            .expect("every measure computed or reused");
        if !made.csv && opts.detail_csv == crate::detail::DetailCsv::Auto {
            no_csv.push(c.id.clone());
        }
        rows.extend(made.rows);
    }
    // Entries link the detail files in the staging directory: done before it is published.
    if let Some(cache) = engine.cache() {
        cache.flush();
    }
    if !no_csv.is_empty() {
        notes.push(format!(
            "detail CSV not written for {}: more than {} rows, which no spreadsheet opens; \
             the Parquet detail holds every row (hhq run --detail-csv always writes the CSV)",
            no_csv.join(", "),
            crate::report::doc::thousands(crate::detail::SPREADSHEET_ROWS as f64)
        ));
    }
    // Components whose own windows read outside the data: computed, never published.
    if let Some(data) = coverage {
        for m in &selected {
            for (component, why) in crate::coverage::components(m, &period, data) {
                rows.retain(|r| !(r.measure == m.id && r.component == component));
                notes.push(format!("{} {component}: {why}", m.id));
            }
        }
    }
    rows.sort_by(|a, b| a.measure.cmp(&b.measure));
    let mut summary = RunSummary {
        period,
        cutoff,
        data_first,
        extracts: engine.extracts.clone(),
        claim_versions,
        measures: selected
            .iter()
            .map(|m| (m.id.clone(), m.version.clone()))
            .collect(),
        cms_checks: crate::cms::checks(&rows),
        cms_measures: selected
            .iter()
            .copied()
            .map(|m| {
                let note = not_reported
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .map(|(_, n)| n.as_str());
                crate::cms::MeasureReport::new(m, &period, cutoff, &rows, note)
            })
            .chain(uncovered.iter().map(|&(m, ref why)| {
                crate::cms::MeasureReport::new(m, &period, cutoff, &rows, Some(why))
            }))
            .collect(),
        notes,
        rows,
        quality,
        caveat,
        memory: engine.memory_stats(),
        timings,
        cache: None,
    };
    bar.set_message("writing");
    staged.write("summary.csv", results::to_csv(&summary.rows).as_bytes())?;
    staged.write("summary.parquet", &results::to_parquet(&summary.rows)?)?;
    staged.write("data_quality.csv", data_quality_csv(&summary).as_bytes())?;
    if let Some(state) = state {
        staged.write("benchmarks.csv", benchmarks_csv(&state.rows).as_bytes())?;
    }
    staged.write(
        "cms_reporting.csv",
        crate::cms::reporting_csv(&summary.rows).as_bytes(),
    )?;
    staged.write(
        "cms_measures.csv",
        crate::cms::measures_csv(&summary.cms_measures).as_bytes(),
    )?;
    staged.write(
        "cms_checks.csv",
        crate::cms::checks_csv(&summary.cms_checks).as_bytes(),
    )?;
    staged.write(
        "data_quality_checks.csv",
        // Without example keys: they would name members outside an audience, unpseudonymised.
        summary.quality.checks_csv(false).as_bytes(),
    )?;
    // The manifest last: it hashes what was staged (paths relative to the output directory).
    let (measures_files, block_files, value_set_files) =
        definition_files(&defs, &selected, &opts.common.measures)?;
    let manifest = crate::manifest::render(&crate::manifest::Inputs {
        command: "run",
        period,
        data_cutoff: cutoff,
        options: vec![
            (
                "data",
                serde_json::json!(opts.common.data.display().to_string()),
            ),
            (
                "measures",
                serde_json::json!(crate::library::shown(&opts.common.measures)),
            ),
            (
                "queries",
                serde_json::json!(crate::library::shown(&opts.common.queries)),
            ),
            (
                "period",
                serde_json::json!(opts.period.map(|p| p.to_string())),
            ),
            ("only", serde_json::json!(opts.only)),
            (
                "audience",
                serde_json::json!(match &opts.privacy.audience {
                    Audience::State => None,
                    Audience::Mco(id) => Some(format!("mco {id}")),
                    Audience::Hhp(id) => Some(format!("hhp {id}")),
                }),
            ),
            (
                // Whether ids are pseudonymised; the key is never recorded.
                "pseudonymised",
                serde_json::json!(opts.privacy.pseudonymizer.is_some()),
            ),
        ]
        .into_iter()
        .chain(crate::coverage::stated(&opts.quality))
        .collect(),
        measures: measures_files,
        blocks: block_files,
        value_set_files,
        extracts: &summary.extracts,
        risk_weights: opts.common.risk_weights.clone(),
        quality: Some(&summary.quality),
        outputs: Vec::new(),
    })?;
    staged.publish(|root, names| crate::manifest::with_outputs(&manifest, names, Some(root)))?;
    bar.finish_and_clear();
    summary.timings.lap("write outputs");
    Ok(summary)
}

/// What a run made of one measure: its result rows (the audience's own), its detail's rows, and
/// whether its detail CSV was written.
struct MeasureOutputs {
    rows: Vec<ResultRow>,
    detail_rows: u64,
    csv: bool,
}

/// The run cache's kind for a run's outputs of a measure.
const RUN_OUTPUTS: &str = "run-measure";

/// The key of a run's outputs of `c`: its details pass by pass, the audience, the pseudonym
/// key's fingerprint, the detail CSV option, the views and the partitions the summary is
/// aggregated over. `None` without a run cache.
fn outputs_key(
    engine: &Engine,
    plan: &crate::plan::RunPlan,
    c: &CompiledMeasure,
    opts: &RunOptions,
    views: &[View],
    partitions: usize,
) -> Option<crate::cache::Key> {
    let details = plan
        .passes
        .iter()
        .map(|p| {
            engine
                .detail_key(c, &p.members)
                .map(|k| k.as_str().to_string())
        })
        .collect::<Option<Vec<_>>>()?;
    engine.cache_key(
        RUN_OUTPUTS,
        &[
            ("details", details.join(",")),
            ("audience", format!("{:?}", opts.privacy.audience)),
            (
                "pseudonyms",
                opts.privacy
                    .pseudonymizer
                    .as_ref()
                    .map(|p| p.fingerprint())
                    .unwrap_or_default(),
            ),
            ("detail csv", format!("{:?}", opts.detail_csv)),
            ("views", format!("{views:?}")),
            ("partitions", partitions.to_string()),
        ],
    )
}

/// A run's outputs of `c` from the run cache, its detail files linked into `staged`; `None`
/// when the cache has none (or cannot give all of it).
fn reuse_outputs(
    engine: &Engine,
    key: &crate::cache::Key,
    c: &CompiledMeasure,
    staged: &mut Staged,
) -> Result<Option<MeasureOutputs>> {
    let Some(cache) = engine.cache() else {
        return Ok(None);
    };
    let parquet = staged.dir().join(format!("detail/{}.parquet", c.id));
    let csv = staged.dir().join(format!("detail/{}.csv", c.id));
    if let Some(parent) = parquet.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let found = cache.read(RUN_OUTPUTS, key, |e| {
        let text = |e: &mut crate::cache::Entry, name: &str| {
            e.bytes(name).and_then(|b| String::from_utf8(b).ok())
        };
        let rows = results::rows_from_json(&text(e, "rows.json")?).ok()?;
        let detail_rows = text(e, "detail_rows")?.parse::<u64>().ok()?;
        e.link_to("detail.parquet", &parquet).ok()?.then_some(())?;
        let has_csv = e.has("detail.csv");
        if has_csv {
            e.link_to("detail.csv", &csv).ok()?.then_some(())?;
        }
        Some(MeasureOutputs {
            rows,
            detail_rows,
            csv: has_csv,
        })
    });
    let Some(found) = found else {
        // Nothing of a partial copy is left for the computed detail to meet.
        for f in [&parquet, &csv] {
            if f.exists() {
                std::fs::remove_file(f).map_err(|e| Error::io(f, e))?;
            }
        }
        return Ok(None);
    };
    staged.file(format!("detail/{}.parquet", c.id))?;
    if found.csv {
        staged.file(format!("detail/{}.csv", c.id))?;
    }
    Ok(Some(found))
}

/// Keep a run's outputs of `c` in the run cache: rows, and the detail Parquet and CSV as staged
/// (linked: the outputs and the entry are one file each).
fn keep_outputs(
    cache: &crate::cache::Cache,
    key: &crate::cache::Key,
    c: &CompiledMeasure,
    made: &MeasureOutputs,
    staged: &Staged,
) {
    use crate::cache::Content;
    let mut files = vec![
        (
            "rows.json",
            Content::Bytes(results::rows_to_json(&made.rows).into_bytes()),
        ),
        (
            "detail_rows",
            Content::Bytes(made.detail_rows.to_string().into_bytes()),
        ),
        (
            "detail.parquet",
            Content::Link(staged.dir().join(format!("detail/{}.parquet", c.id))),
        ),
    ];
    if made.csv {
        files.push((
            "detail.csv",
            Content::Link(staged.dir().join(format!("detail/{}.csv", c.id))),
        ));
    }
    cache.put(RUN_OUTPUTS, key, files);
}

/// The scan floor of the measures `opts` selects: the extracts' columns their SQL reads, and the
/// time to read just those from the Parquet files (`hhq scan`). The extracts are opened (and so
/// checked) first, as by a run; the data-quality profile is not run.
pub async fn scan(opts: &RunOptions) -> Result<crate::engine::scan::ScanFloor> {
    let (defs, engine) = open(opts).await?;
    let cutoff = engine.data_cutoff(opts.quality.as_of_or_today()).await?;
    let period = choose_period(opts, cutoff)?;
    let mut statements = Vec::new();
    for m in select(&defs, &opts.only, &opts.common.measures)? {
        statements.push(compile::compile(m, engine.catalog(), &period)?.standalone_sql());
    }
    let columns = engine.columns_read(&statements).await?;
    engine.scan_floor(&columns).await
}

/// A measure's or building block's plan as it ran (`hhq profile`).
pub struct Profiled {
    /// The blocks computed first (a measure's), then the steps of the measure kept for its
    /// detail, and how long each took.
    pub blocks: Vec<(String, std::time::Duration)>,
    /// DataFusion's physical plan with each operator's metrics.
    pub plan: String,
    pub elapsed: std::time::Duration,
}

impl Profiled {
    /// What `hhq profile` tells: each block and step with its time, the plan, the total.
    pub fn told(&self, what: &str) -> crate::output::Told {
        crate::output::Told {
            before: self
                .blocks
                .iter()
                .map(|(step, took)| format!("{step}: {:.3} s", took.as_secs_f64()))
                .collect(),
            out: format!("{}\n", self.plan),
            after: vec![format!("{what}: {:.3} s", self.elapsed.as_secs_f64())],
            failed: None,
        }
    }
}

/// Run one measure's detail query, or one building block, under `EXPLAIN ANALYZE`. A measure's
/// blocks are computed first, as in a run; a block is computed from the extracts (and from the
/// blocks it reads, as views).
///
/// With `pass`, over the members of that pass (1-based) of a run in passes of
/// `opts.common.members_per_pass`, the blocks marked `hhq: keep` computed over every member first.
pub async fn profile(opts: &RunOptions, what: &str, pass: Option<usize>) -> Result<Profiled> {
    let (defs, engine) = open(opts).await?;
    // As a run reads them: an extract with no row set aside without its row rules.
    let rows = crate::quality::count_rows(engine.context(), &engine.extracts).await?;
    engine.skip_row_rules(&rows.clean()).await?;
    let started = std::time::Instant::now();
    // The members of pass `k` of a run's plan, or every member.
    let members = |plan: &crate::plan::RunPlan| -> Result<crate::plan::MemberRange> {
        let Some(k) = pass else {
            return Ok(crate::plan::MemberRange::default());
        };
        let pass = plan.passes.get(k.saturating_sub(1)).ok_or_else(|| {
            Error::Usage(format!(
                "--pass {k}: a run over these data makes {} pass(es)",
                plan.passes.len()
            ))
        })?;
        Ok(pass.members.clone())
    };
    let mut built = Recorded::default();
    let (blocks, plan) = match defs.measures.iter().find(|m| m.id == what) {
        Some(m) => {
            let period = choose_period(
                opts,
                engine.data_cutoff(opts.quality.as_of_or_today()).await?,
            )?;
            let compiled = compile::compile(m, engine.catalog(), &period)?;
            let plan = crate::execute::plan(
                &engine,
                &[&compiled],
                &blocks_needed(&engine, &[m]),
                opts.common.members_per_pass,
            )
            .await?;
            let members = members(&plan)?;
            let plan = plan.only(members);
            let mut executor = crate::execute::Executor::start(&engine, &plan, &mut built).await?;
            executor.next_pass(&mut built).await?;
            let (steps, text) = engine.explain_measure(&plan.measures[0]).await?;
            let mut blocks = built.named();
            blocks.extend(steps.into_iter().map(|(s, d)| (format!("step {s}"), d)));
            (blocks, text)
        }
        None if defs.blocks.iter().any(|b| b.name == what) => {
            // As in a run: the blocks marked `hhq: keep` first, over every member; not the
            // block itself, which is profiled.
            let plan = crate::execute::plan(
                &engine,
                &[],
                &Default::default(),
                opts.common.members_per_pass,
            )
            .await?;
            let members = members(&plan)?;
            built.0 = crate::execute::keep_for_run(&engine, Some(what)).await?;
            engine.focus(&members).await?;
            let text = engine
                .explain_analyze(&format!("SELECT * FROM {what}"), what)
                .await?;
            (built.named(), text)
        }
        None => {
            return Err(Error::Usage(format!(
                "`{what}` is neither a measure in {} nor a building block in {}",
                crate::library::shown(&opts.common.measures),
                crate::library::shown(&opts.common.queries)
            )));
        }
    };
    Ok(Profiled {
        blocks,
        plan,
        elapsed: started.elapsed(),
    })
}

/// The blocks an executor computed, as `hhq profile` lists them.
#[derive(Default)]
struct Recorded(Vec<crate::engine::Built>);

impl Recorded {
    fn named(&self) -> Vec<(String, std::time::Duration)> {
        self.0
            .iter()
            .map(|b| (format!("building block {b}"), b.took))
            .collect()
    }
}

impl crate::execute::Observer for Recorded {
    fn blocks(&mut self, _: usize, built: &[crate::engine::Built], _: std::time::Duration) {
        self.0.extend_from_slice(built);
    }
}

/// Why some of a measure's components are not reported (an input not supplied), if any.
fn not_reported_note(compiled: &compile::CompiledMeasure) -> Option<String> {
    let (_, input) = compiled.not_reported.first()?;
    let names: Vec<&str> = compiled
        .not_reported
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    Some(format!(
        "{} not reported: no {} supplied (hhq run --risk-weights FILE); observed values only",
        names.join(", "),
        match input.as_str() {
            "risk_weights" => "risk-weight table",
            other => other,
        }
    ))
}

/// Load the definitions and open the data directory with the run's optional inputs and memory
/// limit.
async fn open(opts: &RunOptions) -> Result<(Definitions, Engine)> {
    crate::execute::open(&opts.common, &opts.privacy.audience).await
}

/// The building blocks these measures read, given the optional inputs supplied: a numerator
/// that needs a missing input is not computed, nor its blocks.
pub(crate) fn blocks_needed<'a>(
    engine: &Engine,
    measures: &[&'a crate::measure::Measure],
) -> std::collections::BTreeSet<&'a str> {
    let supplied = &engine.catalog().inputs;
    measures
        .iter()
        .flat_map(|m| m.blocks_given(|input| supplied.contains(input)))
        .collect()
}

/// The measures asked for (every one when `only` is empty); an unknown id is a usage error.
pub(crate) fn select<'a>(
    defs: &'a Definitions,
    only: &[String],
    measures_dir: &std::path::Path,
) -> Result<Vec<&'a crate::measure::Measure>> {
    for id in only {
        defs.measure(id, measures_dir)?;
    }
    Ok(defs
        .measures
        .iter()
        .filter(|m| only.is_empty() || only.contains(&m.id))
        .collect())
}

/// Progress on stderr when it is a terminal; indicatif draws nothing otherwise, so logs and CI
/// output stay quiet. It names measures and steps only, never members, and is cleared however
/// the command ends, an error included.
pub(crate) fn progress(steps: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps).with_finish(indicatif::ProgressFinish::AndClear);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Measure files (id, version, path), building-block files (name, path) and value-set files, as
/// a manifest lists them.
pub(crate) type DefinitionFiles = (
    Vec<(String, String, PathBuf)>,
    Vec<(String, PathBuf)>,
    Vec<PathBuf>,
);

/// The definition files behind these measures, for a manifest.
pub(crate) fn definition_files(
    defs: &Definitions,
    measures: &[&crate::measure::Measure],
    measures_dir: &std::path::Path,
) -> Result<DefinitionFiles> {
    Ok((
        measures
            .iter()
            .map(|m| (m.id.clone(), m.version.clone(), m.path.clone()))
            .collect(),
        defs.blocks
            .iter()
            .map(|b| (b.name.clone(), b.path.clone()))
            .collect(),
        crate::measure::valueset::files_in(&measures_dir.join("valuesets"))?,
    ))
}

/// The period asked for, else the latest full calendar year in the data.
fn choose_period(opts: &RunOptions, cutoff: Option<NaiveDate>) -> Result<Period> {
    match opts.period {
        Some(p) => Ok(p),
        None => year_of_cutoff(&opts.common.data, cutoff),
    }
}

/// The latest full calendar year of data that runs to `cutoff`.
fn year_of_cutoff(data: &std::path::Path, cutoff: Option<NaiveDate>) -> Result<Period> {
    match cutoff {
        Some(c) if c >= NaiveDate::from_ymd_opt(1901, 1, 1).expect("date") => {
            Ok(Period::latest_full_year(c))
        }
        _ => Err(Error::Usage(format!(
            "{}: no claims or contacts dated on or before the as-of date to choose a period from; pass --period",
            data.display()
        ))),
    }
}

/// The days the extracts in `data` cover, as `hhq run` finds them (their first claim to their
/// last date of claims or contacts up to today); `None` when they hold no dated row.
pub async fn data_coverage(
    data: &std::path::Path,
    defs: &Definitions,
) -> Result<Option<crate::coverage::Coverage>> {
    let engine = Engine::open(data, defs).await?;
    let cutoff = engine.data_cutoff(chrono::Utc::now().date_naive()).await?;
    let first = engine.data_first_day().await?;
    Ok(cutoff.map(|last| crate::coverage::Coverage { first, last }))
}

/// The period a command uses when none is given: the latest full calendar year of the data
/// `coverage` found in `data`, as `hhq run` chooses it.
pub fn default_period(
    data: &std::path::Path,
    coverage: Option<crate::coverage::Coverage>,
) -> Result<Period> {
    year_of_cutoff(data, coverage.map(|c| c.last))
}

/// `hhq compile --extracts`: the compiled measure as a script DuckDB runs over the extracts of
/// `data`, which `coverage` (as [`data_coverage`] finds it) bounds as it bounds `hhq run`: a
/// measure whose rules read outside the data is refused, a component's rows left out.
pub fn duckdb_script(
    defs: &Definitions,
    compiled: &crate::compile::CompiledMeasure,
    catalog: &crate::compile::Catalog,
    data: &std::path::Path,
    coverage: Option<crate::coverage::Coverage>,
    detail: bool,
) -> Result<String> {
    let m = defs
        .measures
        .iter()
        .find(|m| m.id == compiled.id)
        .ok_or_else(|| Error::Usage(format!("no measure `{}`", compiled.id)))?;
    let period = compiled.period;
    let withheld = match coverage {
        Some(data) => {
            if let Some(why) = crate::coverage::measure(m, &period, data) {
                return Err(Error::Usage(format!(
                    "{} is not reportable for {period}: {why}; hhq run leaves it out, so no \
                     script is written (choose an earlier period)",
                    m.id
                )));
            }
            crate::coverage::components(m, &period, data)
        }
        None => Vec::new(),
    };
    crate::compile::duckdb::script(
        compiled,
        &crate::compile::duckdb::Sources {
            blocks: &defs.blocks,
            value_sets: &defs.value_sets,
            data,
            version: env!("CARGO_PKG_VERSION"),
            catalog,
            withheld: &withheld,
        },
        detail,
    )
}

/// What `hhq compile` is asked for: one measure, for a period (the latest full year of `data`
/// when none), shown as its steps, its optimised plan, a DuckDB script over `data`'s extracts,
/// or SQL (the blocks' views and the aggregate, or with `detail` the member-level detail).
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// The data (for the default period and the script's extracts) and the definitions.
    pub common: crate::execute::Options,
    pub measure: String,
    pub period: Option<Period>,
    pub steps: bool,
    pub plan: bool,
    pub detail: bool,
    pub extracts: bool,
}

/// `hhq compile`: the measure compiled as `opts` asks to show it.
pub async fn compile_command(opts: &CompileOptions) -> Result<crate::output::Told> {
    let defs = Definitions::load_spec(
        &opts.common.measures,
        &opts.common.queries,
        opts.common.spec,
    )?;
    let m = defs.measure(&opts.measure, &opts.common.measures)?;
    // The data are read for the default period, and for the script's coverage.
    let coverage = match (opts.period, opts.extracts) {
        (Some(_), false) => None,
        _ => data_coverage(&opts.common.data, &defs).await?,
    };
    let period = match opts.period {
        Some(p) => p,
        None => default_period(&opts.common.data, coverage)?,
    };
    let engine = Engine::offline(&defs).await?;
    let compiled = compile::compile(m, engine.catalog(), &period)?;
    if opts.steps {
        return Ok(crate::output::Told::out(compiled.plan().to_string()));
    }
    let statement = match opts.detail {
        true => compiled.detail_sql(),
        false => compiled.standalone_sql(),
    };
    if opts.plan {
        let df = engine.context().sql(&statement).await?;
        return Ok(crate::output::Told::out(format!(
            "{}\n",
            df.into_optimized_plan()?.display_indent()
        )));
    }
    if opts.extracts {
        return Ok(crate::output::Told::out(duckdb_script(
            &defs,
            &compiled,
            engine.catalog(),
            &opts.common.data,
            coverage,
            opts.detail,
        )?));
    }
    let mut out = String::new();
    for b in &defs.blocks {
        out.push_str(&format!(
            "-- building block {} ({})\n",
            b.name,
            b.path.display()
        ));
        out.push_str(&format!("CREATE VIEW {} AS\n{};\n\n", b.name, b.sql));
    }
    out.push_str(&format!("{statement};\n"));
    Ok(crate::output::Told::out(out))
}

/// `hhq test`: the decks of the measures in `measures` (only those of `only`, when given) run;
/// the failed cases (every case when `verbose`), the tally per measure and the count; a
/// failure when a case failed. Asking for measures with no deck is a usage error.
pub async fn test_decks(
    measures: &std::path::Path,
    queries: &std::path::Path,
    spec: crate::measure::Spec,
    only: &[String],
    verbose: bool,
) -> Result<crate::output::Told> {
    let cases = crate::decks::run_dir_only(measures, queries, spec, only).await?;
    if cases.is_empty() && !only.is_empty() {
        let defs = Definitions::load_spec(measures, queries, spec)?;
        for id in only {
            defs.measure(id, measures)?;
        }
        return Err(Error::Usage(format!(
            "no deck tests {} in {}",
            only.join(", "),
            measures.join("decks").display()
        )));
    }
    let shown: Vec<_> = cases
        .iter()
        .filter(|c| verbose || c.failure.is_some())
        .cloned()
        .collect();
    let mut out = String::new();
    if !shown.is_empty() {
        out.push_str(&format!(
            "{}\n",
            crate::report::terminal::deck_table(&shown)
        ));
    }
    out.push_str(&crate::report::terminal::deck_tally(&cases));
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    out.push_str(&format!(
        "{} cases: {} passed, {} failed\n",
        cases.len(),
        cases.len() - failed,
        failed
    ));
    Ok(crate::output::Told {
        out,
        failed: (failed > 0).then(|| Error::Failed(format!("{failed} deck case(s) failed"))),
        ..Default::default()
    })
}

/// `hhq conformance`: the conformance matrix of the measures in `measures` (their rule files
/// and the deck cases naming each rule), written to `out` or printed; with `check`, only
/// compared with `out`. The gaps (rules with fewer than three deck cases) are told; the
/// failure is the gaps, or when checking an `out` that is not the current matrix.
pub fn conformance(
    measures: &std::path::Path,
    out: Option<&std::path::Path>,
    check: bool,
) -> Result<crate::output::Told> {
    let defs = crate::measure::load_dir(measures)?;
    let mut matrix = crate::conformance::load(measures, &defs)?;
    matrix.attach(crate::decks::rule_tags(measures)?)?;
    let text = matrix.markdown();
    let gaps = matrix.gaps();
    let mut told = crate::output::Told {
        after: gaps.iter().map(|g| format!("hhq: {g}")).collect(),
        ..Default::default()
    };
    if check {
        let stale = out.filter(|o| std::fs::read_to_string(o).unwrap_or_default() != text);
        let failures = gaps.len() + usize::from(stale.is_some());
        told.failed = (failures > 0).then(|| {
            Error::Failed(match stale {
                Some(o) => format!(
                    "{failures} conformance problem(s): {} is not the current matrix; run `hhq \
                     conformance --out {}`",
                    o.display(),
                    o.display()
                ),
                None => format!("{failures} conformance problem(s)"),
            })
        });
        return Ok(told);
    }
    match out {
        Some(out) => crate::output::write_atomic(out, text.as_bytes())?,
        None => told.out = text,
    }
    told.failed = (!gaps.is_empty()).then(|| {
        Error::Failed(format!(
            "{} rule(s) with fewer than three deck cases",
            gaps.len()
        ))
    });
    Ok(told)
}

/// Profile the extracts and pass the publish gate: the profile, and the caveat to publish with
/// when the policy allows failed checks. A refusing policy with a failed check is an error.
pub(crate) async fn quality_gate(
    engine: &Engine,
    options: &crate::quality::QualityOptions,
    measures_dir: &std::path::Path,
) -> Result<(crate::quality::Profile, Option<String>)> {
    let policy = crate::quality::Policy::resolve(options.policy.as_deref(), measures_dir)?;
    let as_of = options.as_of_or_today();
    // The same data under the same policy on the same day: the profile the run cache has.
    let key = engine.cache_key(
        PROFILE,
        &[("policy", policy.content()), ("as of", as_of.to_string())],
    );
    let cached = match (engine.cache(), &key) {
        (Some(cache), Some(key)) => cache.read(PROFILE, key, |e| {
            let text = String::from_utf8(e.bytes("profile.json")?).ok()?;
            crate::quality::Profile::from_cache(&text, policy.path.clone())
        }),
        _ => None,
    };
    if let Some(profile) = cached {
        engine.skip_row_rules(&profile.clean()).await?;
        let caveat = profile.gate()?;
        return Ok((profile, caveat));
    }
    let what = "the data-quality profile";
    let rows = crate::quality::count_rows(engine.context(), &engine.extracts)
        .await
        .map_err(|e| engine.memory_error(e, what))?;
    // Extracts with no row set aside are read without testing every row again, by the checks
    // too.
    engine.skip_row_rules(&rows.clean()).await?;
    let profile = crate::quality::check(engine.context(), &engine.extracts, rows, &policy, as_of)
        .await
        .map_err(|e| engine.memory_error(e, what))?;
    if let (Some(cache), Some(key)) = (engine.cache(), &key) {
        let text = profile.to_cache().into_bytes();
        cache.put(
            PROFILE,
            key,
            vec![("profile.json", crate::cache::Content::Bytes(text))],
        );
    }
    let caveat = profile.gate()?;
    Ok((profile, caveat))
}

/// The run cache's kind for a data-quality profile.
const PROFILE: &str = "profile";

/// Rows read and how they were used or set aside, per extract, then how the used claim lines
/// split into final, superseded and void versions. The counts reconcile: read = used + set
/// aside, and used claim lines = final + superseded + void.
pub fn data_quality_csv(s: &RunSummary) -> String {
    let mut out = s.quality.rows_csv();
    let c = &s.claim_versions;
    out.push_str(&format!(
        "claims,final,{},used lines of final claim versions: what measures use\n",
        c.final_lines
    ));
    out.push_str(&format!(
        "claims,superseded,{},used lines of versions later replaced or voided\n",
        c.superseded_lines
    ));
    out.push_str(&format!(
        "claims,void,{},used lines of void transactions\n",
        c.void_lines
    ));
    out
}

/// One member's detail for one measure, for `hhq explain`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub measure: crate::measure::Measure,
    pub period: Period,
    /// The rules that set a unit outside the denominator, in the order they are judged.
    pub order: Vec<String>,
    /// The detail rows of the member, columns cast to text (None for null).
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// When the member has no unit: the step that left them without one, and the rows behind it.
    pub no_unit: Option<NoUnit>,
    /// The member's enrolment spans (span type, start, end, MCO, partner), when a unit is set
    /// aside for its enrolment (not enrolled on the anchor date, a gap in continuous enrolment):
    /// the dates a reader needs to see the gap.
    pub spans: Vec<Vec<Option<String>>>,
}

/// Why a member has no unit of a measure.
#[derive(Debug, Clone, PartialEq)]
pub enum NoUnit {
    /// Event basis: no row of the events' block is dated in the window and passes the filter.
    /// `candidates` are the member's rows of the block, nearest the window first (at most
    /// [`CANDIDATES_SHOWN`]), each with the tests it fails; `rows` how many there are in all.
    Events {
        block: String,
        date: String,
        from: NaiveDate,
        to: NaiveDate,
        rows: usize,
        candidates: Vec<Candidate>,
    },
    /// Member or member-month basis: not enrolled in the programme when the measure asks
    /// (`when`); the member's enrolment spans as the extract has them.
    Enrolment {
        program: String,
        when: String,
        spans: Vec<Vec<Option<String>>>,
    },
}

/// One row of the events' block for a member without a unit, and the tests it fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub date: Option<String>,
    /// Each test the row fails, as written (the window, or one condition of the filter); empty
    /// when it passes them all (the events step kept it; a later step, such as keeping one
    /// event per 31 days, did not).
    pub failed: Vec<String>,
}

/// Candidate rows `hhq explain` lists at most.
pub const CANDIDATES_SHOWN: usize = 10;

/// Run one measure's detail for one member, as a run computes the member's pass: the blocks
/// marked `hhq: keep` over every member (a replacement may be filed under another member id),
/// then the views and the other blocks over the member's rows only (the period is still chosen
/// from all the data). A member the extracts do not have is a usage error
/// naming the nearest ids.
pub async fn explain(opts: &RunOptions, measure_id: &str, member_id: &str) -> Result<Explanation> {
    let (defs, engine) = crate::execute::open(&opts.common, &Audience::State).await?;
    let measure = defs.measure(measure_id, &opts.common.measures)?.clone();
    let period = choose_period(
        opts,
        engine.data_cutoff(opts.quality.as_of_or_today()).await?,
    )?;
    known_member(&engine, member_id).await?;
    let compiled = compile::compile(&measure, engine.catalog(), &period)?;
    // As a run computes the member's pass: the blocks kept for the run over every member (a
    // replacement may be filed under another member id), the others over the member's rows.
    let plan = crate::execute::plan_over(
        &engine,
        &[&compiled],
        &blocks_needed(&engine, &[&measure]),
        crate::plan::MemberRange::only(member_id),
    );
    let mut executor = crate::execute::Executor::start(&engine, &plan, &mut ()).await?;
    executor.next_pass(&mut ()).await?;
    let sql = format!(
        "SELECT * FROM (\n{}\n) d WHERE d.member_id = {} ORDER BY d.anchor_date, d.unit_id",
        compiled.detail_sql(),
        compile::sql::string(member_id)
    );
    let batches = engine
        .collect_for(&sql, &format!("measure {measure_id}"))
        .await?;
    let (columns, rows) = results::text_rows(&batches)?;
    let no_unit = if rows.is_empty() {
        let written = measure.events.as_ref().and_then(|e| e.filter.as_ref());
        Some(
            why_no_unit(
                &engine,
                compiled.plan(),
                written.map(|f| f.value.as_str()),
                member_id,
            )
            .await?,
        )
    } else {
        None
    };
    let lit = compile::sql::string(member_id);
    let ineligible = columns.iter().position(|c| c == "ineligible");
    let enrolment_reason = rows.iter().any(|r| {
        ineligible
            .and_then(|i| r[i].as_deref())
            .is_some_and(|why| why.contains("enrolled"))
    });
    let spans = if enrolment_reason {
        enrolment_spans(&engine, &lit).await?
    } else {
        Vec::new()
    };
    Ok(Explanation {
        order: compiled.plan().order(),
        measure,
        period,
        columns,
        rows,
        no_unit,
        spans,
    })
}

/// An error unless the members extract holds `member_id`; it names the nearest ids.
async fn known_member(engine: &Engine, member_id: &str) -> Result<()> {
    let lit = compile::sql::string(member_id);
    let found = engine
        .texts(&format!(
            "SELECT member_id FROM members WHERE member_id = {lit} LIMIT 1"
        ))
        .await?;
    if !found.is_empty() {
        return Ok(());
    }
    let ids = engine.texts("SELECT member_id FROM members").await?;
    let nearest = crate::error::nearest(member_id, ids.iter().map(String::as_str));
    Err(Error::Usage(if nearest.is_empty() {
        format!("no member `{member_id}` in the members extract")
    } else {
        format!(
            "no member `{member_id}` in the members extract: did you mean {}?",
            nearest.join(", ")
        )
    }))
}

/// Which step left the member without a unit: for events, the member's rows of the block and the
/// tests each fails; else the enrolment the programme block finds no unit in.
async fn why_no_unit(
    engine: &Engine,
    plan: &compile::MeasurePlan,
    written: Option<&str>,
    member_id: &str,
) -> Result<NoUnit> {
    use compile::ir::StepKind;
    let lit = compile::sql::string(member_id);
    for step in &plan.steps {
        match &step.kind {
            StepKind::Events { source, .. } => {
                let mut tests = vec![(
                    format!("{} in {}..{}", source.date, source.from, source.to),
                    format!(
                        "ev.{} BETWEEN DATE '{}' AND DATE '{}'",
                        source.date, source.from, source.to
                    ),
                )];
                if let Some(f) = &source.filter {
                    // Each condition shown as the measure writes it (value sets by name), run
                    // as checked; when the two split differently, as checked.
                    let checked = conjuncts(f);
                    let shown = written
                        .map(conjuncts)
                        .filter(|w| w.len() == checked.len())
                        .unwrap_or_else(|| checked.iter().map(|c| c.replace("ev.", "")).collect());
                    tests.extend(shown.into_iter().zip(checked));
                }
                let flags: Vec<String> = tests
                    .iter()
                    .enumerate()
                    .map(|(i, (_, sql))| format!("coalesce(({sql}), false) AS t{i}"))
                    .collect();
                let sql = format!(
                    "SELECT CAST(ev.{id} AS VARCHAR) AS id, CAST(ev.{date} AS VARCHAR) AS date, \
                     {flags} FROM {block} ev WHERE ev.member_id = {lit} ORDER BY ev.{date}, 1",
                    id = source.id,
                    date = source.date,
                    flags = flags.join(", "),
                    block = source.block,
                );
                let batches = engine
                    .collect_for(&sql, &format!("the rows of {}", source.block))
                    .await?;
                let (_, rows) = results::text_rows(&batches)?;
                let total = rows.len();
                let distance = |date: &Option<String>| -> i64 {
                    let Some(d) = date.as_deref().and_then(|d| d.parse::<NaiveDate>().ok()) else {
                        return i64::MAX;
                    };
                    if d < source.from {
                        (source.from - d).num_days()
                    } else if d > source.to {
                        (d - source.to).num_days()
                    } else {
                        0
                    }
                };
                let mut candidates: Vec<Candidate> = rows
                    .into_iter()
                    .map(|r| Candidate {
                        id: r[0].clone().unwrap_or_default(),
                        date: r[1].clone(),
                        failed: tests
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| r[2 + i].as_deref() != Some("true"))
                            .map(|(_, (shown, _))| shown.clone())
                            .collect(),
                    })
                    .collect();
                candidates.sort_by_key(|c| (distance(&c.date), c.date.clone()));
                candidates.truncate(CANDIDATES_SHOWN);
                return Ok(NoUnit::Events {
                    block: source.block.clone(),
                    date: source.date.clone(),
                    from: source.from,
                    to: source.to,
                    rows: total,
                    candidates,
                });
            }
            StepKind::MemberCandidates { program, anchor } => {
                return enrolment(engine, program, format!("on {anchor}"), &lit).await;
            }
            StepKind::MonthCandidates { program, .. } => {
                let when = format!("in any month of {}", plan.period);
                return enrolment(engine, program, when, &lit).await;
            }
            _ => {}
        }
    }
    Err(Error::Failed(format!(
        "{}: no step selects units (events, members or months)",
        plan.id
    )))
}

async fn enrolment(engine: &Engine, program: &str, when: String, lit: &str) -> Result<NoUnit> {
    Ok(NoUnit::Enrolment {
        program: program.to_string(),
        when,
        spans: enrolment_spans(engine, lit).await?,
    })
}

/// A member's enrolment spans as the extract has them: span type, start, end, MCO, partner.
async fn enrolment_spans(engine: &Engine, lit: &str) -> Result<Vec<Vec<Option<String>>>> {
    let batches = engine
        .collect_for(
            &format!(
                "SELECT span_type, CAST(start_date AS VARCHAR) AS start_date, \
                 CAST(end_date AS VARCHAR) AS end_date, mco_id, hhp_id \
                 FROM enrollment WHERE member_id = {lit} ORDER BY start_date, span_type"
            ),
            "the member's enrolment",
        )
        .await?;
    Ok(results::text_rows(&batches)?.1)
}

/// The conditions of a checked filter joined by AND at its top, each as SQL; the whole filter
/// when it does not parse as one expression.
fn conjuncts(filter: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    fn split(e: Expr, out: &mut Vec<String>) {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                split(*left, out);
                split(*right, out);
            }
            Expr::Nested(inner)
                if matches!(
                    *inner,
                    Expr::BinaryOp {
                        op: BinaryOperator::And,
                        ..
                    }
                ) =>
            {
                split(*inner, out)
            }
            other => out.push(other.to_string()),
        }
    }
    match Parser::new(&GenericDialect {})
        .try_with_sql(filter)
        .and_then(|mut p| p.parse_expr())
    {
        Ok(e) => {
            let mut out = Vec::new();
            split(e, &mut out);
            out
        }
        Err(_) => vec![filter.to_string()],
    }
}

impl CheckReport {
    /// What `hhq check` prints: each measure that passed, each problem, the counts; a failure
    /// naming `measures` when there are problems.
    pub fn told(&self, measures: &std::path::Path) -> crate::output::Told {
        let mut out = String::new();
        for (id, version, path) in &self.passed {
            out.push_str(&format!("ok  {id} {version}  {}\n", path.display()));
        }
        for problem in &self.problems {
            out.push_str(&format!("{problem}\n"));
        }
        out.push_str(&format!(
            "{} measures passed, {} problems; {} building blocks, {} value sets ({} licensed, {} \
             illustrative)\n",
            self.passed.len(),
            self.problems.len(),
            self.blocks,
            self.value_sets,
            self.licensed_value_sets,
            self.value_sets - self.licensed_value_sets
        ));
        let failed = (!self.problems.is_empty()).then(|| {
            Error::Failed(format!(
                "{} problem(s) in {}",
                self.problems.len(),
                crate::library::shown(measures)
            ))
        });
        crate::output::Told {
            out,
            failed,
            ..Default::default()
        }
    }
}

/// What `hhq check` found: the measures that passed and every problem, not just the first.
#[derive(Debug)]
pub struct CheckReport {
    /// (id, version, file) of each measure that parsed and compiled.
    pub passed: Vec<(String, String, PathBuf)>,
    pub problems: Vec<Error>,
    pub blocks: usize,
    pub value_sets: usize,
    /// Of them, those from licensed (or other non-illustrative) files.
    pub licensed_value_sets: usize,
}

/// Lint every measure of `measures_dir` against the building blocks and value sets, without
/// data: each file is parsed and compiled (and its SQL planned) on empty extracts.
pub async fn check(
    measures_dir: &std::path::Path,
    queries_dir: &std::path::Path,
) -> Result<CheckReport> {
    use crate::measure::{Measure, duplicate_id, paths_in};
    // Value sets and blocks are shared: a problem there stops the check.
    let defs = Definitions {
        measures: Vec::new(),
        ..Definitions::load_shared(measures_dir, queries_dir)?
    };
    let engine = Engine::offline(&defs).await?;
    let period = Period::year(2025);
    let mut report = CheckReport {
        passed: Vec::new(),
        problems: Vec::new(),
        blocks: defs.blocks.len(),
        value_sets: defs.value_sets.names().count(),
        licensed_value_sets: defs
            .value_sets
            .names()
            .filter(|n| {
                defs.value_sets
                    .get(n)
                    .is_some_and(|s| s.replaces_illustrative)
            })
            .count(),
    };
    // Each block planned and optimized, as a run plans it: a cast of a constant that overflows
    // fails there, not midway through a run.
    for b in &defs.blocks {
        if let Err(e) = optimized_plan(&engine, &format!("SELECT * FROM {}", b.name)).await {
            report.problems.push(Error::Definition {
                path: b.path.clone(),
                line: 1,
                column: 1,
                message: format!("building block `{}` does not plan: {e}", b.name),
                hint: None,
            });
        }
    }
    let mut seen: Vec<Measure> = Vec::new();
    for path in paths_in(measures_dir)? {
        let m = match Measure::load(&path) {
            Ok(m) => m,
            Err(e) => {
                report.problems.extend(e.problems());
                continue;
            }
        };
        if let Some(e) = duplicate_id(&m, &seen) {
            report.problems.push(e);
            continue;
        }
        // Each specification year the file states text for, the newest as loaded.
        let mut planned = Ok(());
        let years = m.spec_years.iter().rev().skip(1);
        let earlier: Vec<Result<Measure>> = years
            .map(|y| Measure::load_spec(&path, crate::measure::Spec::Year(*y)))
            .collect();
        for one in std::iter::once(Ok(m.clone())).chain(earlier) {
            let step = match one {
                Ok(one) => match compile::compile(&one, engine.catalog(), &period) {
                    // Logical planning only: the optimizer takes seconds over a measure, and
                    // each filter was planned and simplified when it compiled.
                    Ok(c) => plan_compiled(&engine, &one, &c).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if step.is_err() {
                planned = step;
                break;
            }
        }
        match planned {
            Ok(()) => {
                report
                    .passed
                    .push((m.id.clone(), m.version.clone(), m.path.clone()));
                seen.push(m);
            }
            Err(e) => report.problems.extend(e.problems()),
        }
    }
    // Cohort and risk-flag definitions: each file alone, then compiled and planned.
    let cohort_dir = measures_dir.join("cohorts");
    if cohort_dir.is_dir() {
        let as_of = period.end;
        let mut seen: Vec<crate::cohort::Definition> = Vec::new();
        for path in paths_in(&cohort_dir)? {
            let checked = check_cohort(&path, &seen, &engine, as_of).await;
            match checked {
                Ok(d) => {
                    let version = match &d {
                        crate::cohort::Definition::Cohort(c) => c.version.clone(),
                        crate::cohort::Definition::Flags(f) => f.version.clone(),
                    };
                    report.passed.push((d.id().to_string(), version, path));
                    seen.push(d);
                }
                Err(e) => report.problems.push(e),
            }
        }
    }
    Ok(report)
}

/// Plan a compiled measure's detail query (logically) in the engine's session; when it does not
/// plan, the error is at the line and column of the part of the measure at fault.
pub async fn plan_compiled(
    engine: &Engine,
    m: &crate::measure::Measure,
    c: &compile::CompiledMeasure,
) -> Result<()> {
    match engine.context().sql(&c.detail_sql()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(unplanned_step(engine, m, c, e).await),
    }
}

/// Why a compiled measure does not plan, at the line and column of the part of the measure the
/// first step that does not plan comes from (each step planned with those before it).
async fn unplanned_step(
    engine: &Engine,
    m: &crate::measure::Measure,
    c: &compile::CompiledMeasure,
    whole: datafusion::error::DataFusionError,
) -> Error {
    let steps = &c.plan().steps;
    let mut failed = None;
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = engine.context().sql(&c.step_sql(i)).await {
            failed = Some((step, e));
            break;
        }
    }
    let (step, e) = match failed {
        Some((step, e)) => (Some(step), e),
        None => (None, whole),
    };
    let (line, column) = step.map_or((m.basis_at.line, m.basis_at.column), |s| s.at);
    Error::Definition {
        path: m.path.clone(),
        line,
        column,
        message: match step {
            Some(s) => format!("step `{}` of the compiled query does not plan: {e}", s.name),
            None => format!("the compiled query does not plan: {e}"),
        },
        hint: Some(
            "a `where` expression may call an unknown function or compare unlike types; \
             `hhq compile <id> --steps` lists the steps"
                .into(),
        ),
    }
}

/// Plan a query as a run would, without running it: logical plan and optimizer (whose
/// simplification computes constants, and refuses a cast of one that overflows).
async fn optimized_plan(engine: &Engine, sql: &str) -> datafusion::error::Result<()> {
    engine.context().sql(sql).await?.into_optimized_plan()?;
    Ok(())
}

/// One cohort or risk-flag file: parsed, its id not taken, compiled and planned.
async fn check_cohort(
    path: &std::path::Path,
    seen: &[crate::cohort::Definition],
    engine: &Engine,
    as_of: chrono::NaiveDate,
) -> Result<crate::cohort::Definition> {
    let d = crate::cohort::Definition::load(path)?;
    let at = |message: String, hint: Option<String>| Error::Definition {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
        hint,
    };
    if let Some(o) = seen.iter().find(|o| o.id() == d.id()) {
        return Err(at(
            format!("id `{}` is also defined in {}", d.id(), o.path().display()),
            None,
        ));
    }
    let c = crate::cohort::query::compile(std::slice::from_ref(&d), engine.catalog(), as_of)?;
    // The evidence and last-seen queries read the narrowed tables, made only in a run.
    for sql in c.narrow.iter().map(|(_, sql)| sql).chain([&c.population]) {
        engine.context().sql(sql).await.map_err(|e| {
            at(
                format!("the compiled query does not plan: {e}"),
                Some(
                    "a `where` expression may call an unknown function or compare unlike types"
                        .into(),
                ),
            )
        })?;
    }
    Ok(d)
}
