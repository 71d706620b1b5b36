//! What a report needs from the engine: every measure run for the report year and the year
//! before, aggregated for the whole state and for the report's audience, by the measure's strata,
//! by quarter (the trend and the control chart); the days to follow-up behind the
//! cumulative curves; and, for a partner, its open follow-up gaps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, Days, Months, NaiveDate};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use crate::compile;
use crate::engine::{ClaimVersions, Engine, View};
use crate::error::{Error, Result};
use crate::execute::{InMemory, Job, Observer};
use crate::extract::OpenedExtract;
use crate::measure::{Measure, Stratifier};
use crate::period::Period;
use crate::privacy::Audience;
use crate::results::{Grouping, ResultRow};

/// A report quarter: the twelve months ending with it are the report year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarter {
    pub year: i32,
    /// 1 to 4.
    pub q: u32,
}

impl Quarter {
    pub fn parse(s: &str) -> Result<Quarter> {
        let bad = || Error::Usage(format!("`{s}` is not a quarter such as 2025Q4"));
        let (y, q) = s.split_once(['Q', 'q']).ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let q: u32 = q.parse().map_err(|_| bad())?;
        if !(1..=4).contains(&q) || !(1900..=2200).contains(&year) {
            return Err(bad());
        }
        Ok(Quarter { year, q })
    }

    /// The quarter holding `d`.
    pub fn of(d: NaiveDate) -> Quarter {
        Quarter {
            year: d.year(),
            q: (d.month() - 1) / 3 + 1,
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, (self.q - 1) * 3 + 1, 1).expect("valid quarter")
    }

    pub fn last_day(self) -> NaiveDate {
        self.first_day() + Months::new(3) - Days::new(1)
    }

    pub fn previous(self) -> Quarter {
        if self.q == 1 {
            Quarter {
                year: self.year - 1,
                q: 4,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q - 1,
            }
        }
    }

    /// The twelve months ending with this quarter.
    pub fn year_ending(self) -> Period {
        Period {
            start: self.last_day() + Days::new(1) - Months::new(12),
            end: self.last_day(),
        }
    }

    /// The latest quarter with CMS's run-out (claims 90 days past its end) by `cutoff`.
    pub fn latest_final(cutoff: NaiveDate) -> Quarter {
        let mut q = Quarter::of(cutoff);
        while q.last_day() + Days::new(crate::cms::RUN_OUT_DAYS as u64) > cutoff {
            q = q.previous();
        }
        q
    }

    /// This quarter and the seven before it, oldest first.
    pub fn last_eight(self) -> Vec<Quarter> {
        let mut out = vec![self];
        while out.len() < 8 {
            out.push(out.last().expect("one").previous());
        }
        out.reverse();
        out
    }
}

impl std::fmt::Display for Quarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}Q{}", self.year, self.q)
    }
}

/// One measure's results for a report.
#[derive(Debug, Clone, Default)]
pub struct MeasureData {
    /// Report year, whole state, the measure's strata (total, age band, MCO, partner, …).
    pub state: Vec<ResultRow>,
    /// The year before, whole state.
    pub state_prior: Vec<ResultRow>,
    /// Report year, the audience's units (same as `state` for the state report).
    pub audience: Vec<ResultRow>,
    pub audience_prior: Vec<ResultRow>,
    /// By quarter of the unit's anchor date, both years: the state's and the audience's (the
    /// trend, and the control chart's subgroups).
    pub state_quarters: Vec<ResultRow>,
    pub audience_quarters: Vec<ResultRow>,
    /// A scorecard's benchmarks by quarter, both years: each MCO's units, by MCO id.
    pub mco_quarters: BTreeMap<String, Vec<ResultRow>>,
    /// Days from the anchor (discharge, visit) to the first 30-day follow-up, for measures with
    /// `7_day` and `30_day` components: (denominator, count followed up by day 0..=30), state and
    /// audience, report year.
    pub followup: Option<(Curve, Curve)>,
    /// Components of the report year the data does not cover (component → why): shown as `NR`,
    /// never as a number.
    pub not_reportable: BTreeMap<String, String>,
}

/// A cumulative follow-up curve: units in the denominator, and of them followed up by each day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    pub denominator: u64,
    pub by_day: Vec<u64>,
}

/// One event (a discharge or an ED visit) of a partner's member with a follow-up still open: one
/// row of the worklist, whichever measures it is open in.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// The measures the event is open in, sorted.
    pub measures: Vec<String>,
    pub member_id: String,
    /// The event's id: its (first) claim's id.
    pub event_id: String,
    /// "inpatient discharge" or "ED visit" (or the building block's name).
    pub event: String,
    /// Discharge or visit date.
    pub anchor_date: NaiveDate,
    pub due_7: NaiveDate,
    pub due_30: NaiveDate,
    /// The billing provider's NPI on the event's claim.
    pub facility: Option<String>,
    /// The event claim's principal diagnosis (ICD-10-CM).
    pub diagnosis: Option<String>,
    /// The member's MCO at the cut-off, from the enrolment extract; none when no span with an
    /// MCO covers it.
    pub current_mco: Option<String>,
}

/// A measure (or component) whose reach the data does not cover for a year has no figures for
/// it: its rows of that year are dropped, and a note says why.
fn drop_uncovered(
    d: &mut MeasureData,
    m: &Measure,
    period: &Period,
    coverage: crate::coverage::Coverage,
    year: &str,
    notes: &mut Vec<String>,
) {
    let whole = crate::coverage::measure(m, period, coverage);
    let parts = if whole.is_some() {
        Vec::new()
    } else {
        crate::coverage::components(m, period, coverage)
    };
    if whole.is_none() && parts.is_empty() {
        return;
    }
    let gone = |r: &ResultRow| {
        r.period_start == period.start
            && (whole.is_some() || parts.iter().any(|(c, _)| *c == r.component))
    };
    for rows in [
        &mut d.state,
        &mut d.state_prior,
        &mut d.audience,
        &mut d.audience_prior,
        &mut d.state_quarters,
        &mut d.audience_quarters,
    ]
    .into_iter()
    .chain(d.mco_quarters.values_mut())
    {
        rows.retain(|r| !gone(r));
    }
    let current = year == "report year";
    match whole {
        Some(why) => {
            if d.state.is_empty() {
                d.followup = None;
            }
            if current {
                for c in &m.components {
                    d.not_reportable.insert(c.name.value.clone(), why.clone());
                }
            }
            notes.push(format!("{} ({year}): {why}", m.id));
        }
        None => {
            for (c, why) in parts {
                notes.push(format!("{} {c} ({year}): {why}", m.id));
                if current {
                    d.not_reportable.insert(c, why);
                }
            }
        }
    }
}

/// Everything a report is built from.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub audience: Audience,
    pub quarter: Quarter,
    pub current: Period,
    pub prior: Period,
    pub cutoff: NaiveDate,
    pub extracts: Vec<OpenedExtract>,
    pub claim_versions: ClaimVersions,
    pub measures: Vec<Measure>,
    /// Measure id → results, in the order of `measures`.
    pub data: BTreeMap<String, MeasureData>,
    /// Open gaps as of the cut-off (partner scorecards only).
    pub worklist: Vec<Gap>,
    pub checks: Vec<crate::cms::Check>,
    /// Components left out and why (PCR-HH's expected values without a risk-weight table).
    pub notes: Vec<String>,
    /// The extracts' data-quality profile, when the report passed the gate with one.
    pub quality: Option<crate::quality::Profile>,
    /// The caveat to print on the cover when checks failed and the policy allowed publishing.
    pub caveat: Option<String>,
    /// The programme and state the report is published for.
    pub publisher: crate::report::Publisher,
    /// Targets the rates are measured against, for the measures reported.
    pub targets: Vec<crate::report::targets::Target>,
    /// The payment ledger's published figures, when the definitions hold the finance ones.
    pub finance: Option<crate::finance::files::ForReport>,
    /// Cost of care before and after enrolment (state and MCO reports), or why there is none.
    pub cost: Option<std::result::Result<crate::finance::cost::ForReport, String>>,
}

/// Components of a follow-up measure.
const FOLLOW_UP: [&str; 2] = ["7_day", "30_day"];

fn is_follow_up(m: &Measure) -> bool {
    FOLLOW_UP
        .iter()
        .all(|c| m.components.iter().any(|x| x.name.value == *c))
}

/// Run what the report needs. `measures` are those to report; `state` holds every member's
/// extracts, `own` (for an MCO's or partner's report) a session of that audience's members only
/// ([`Engine::open_scoped`]). The state's session gives the state's and each MCO's aggregates,
/// never an audience's; the audience's figures, follow-up curve and worklist come from its own
/// session, where no other member's row exists.
#[allow(clippy::too_many_arguments)]
pub async fn gather(
    state: &Engine,
    own: Option<&Engine>,
    measures: Vec<Measure>,
    audience: Audience,
    quarter: Quarter,
    cutoff: NaiveDate,
    quality: &crate::quality::QualityOptions,
    members_per_pass: Option<usize>,
    bar: &indicatif::ProgressBar,
) -> Result<Gathered> {
    let current = quarter.year_ending();
    let prior = Period {
        start: current.start - Months::new(12),
        end: current.start - Days::new(1),
    };
    let coverage = crate::coverage::Coverage::of(state.data_first_day().await?, cutoff, quality);
    if current.end > coverage.last {
        return Err(Error::Usage(format!(
            "the year ending {quarter} ({} to {}) ends after the data's last day, {}: \
             choose a quarter ending on or before it (the default is the latest with {} days of \
             claims run-out)",
            current.start,
            current.end,
            coverage.last,
            crate::cms::RUN_OUT_DAYS
        )));
    }
    let scope = audience.clone();
    let own = match (&scope, own) {
        (Audience::State, _) => state,
        (_, Some(own)) => own,
        (_, None) => {
            return Err(Error::Usage(
                "an audience's report needs a session of its own members".into(),
            ));
        }
    };
    let mut data = BTreeMap::new();
    let mut checks = Vec::new();
    let mut worklist = Vec::new();
    let mut notes = Vec::new();
    // Members whose Health Home span runs through the cut-off: for them, a continuous-enrolment
    // shortfall is only the data ending, not a gap (the worklist's rule).
    let still_enrolled: BTreeSet<String> = if matches!(audience, Audience::Hhp(_)) {
        own.texts(&format!(
            "SELECT DISTINCT member_id FROM enrollment WHERE span_type = 'health_home' \
             AND start_date <= DATE '{cutoff}' AND (end_date IS NULL OR end_date >= DATE '{cutoff}')"
        ))
        .await?
        .into_iter()
        .collect()
    } else {
        BTreeSet::new()
    };
    // A scorecard sets its trend beside its main MCO's: every MCO's quarters are kept.
    let mcos: Vec<String> = if matches!(audience, Audience::Hhp(_)) {
        state
            .texts("SELECT DISTINCT mco_id FROM enrollment WHERE mco_id IS NOT NULL ORDER BY 1")
            .await?
    } else {
        Vec::new()
    };
    // Every measure for both years is compiled first (both sessions have the same blocks and
    // inputs, so the same catalogue).
    let mut jobs = Vec::new();
    for (mi, m) in measures.iter().enumerate() {
        for (period, is_current) in [(prior, false), (current, true)] {
            let compiled = compile::compile(m, state.catalog(), &period)?;
            if is_current {
                for (component, input) in &compiled.not_reported {
                    notes.push(format!(
                        "{} {component}: not reported, no {} supplied (--risk-weights FILE)",
                        m.id,
                        if input == "risk_weights" {
                            "risk-weight table"
                        } else {
                            input.as_str()
                        }
                    ));
                }
            }
            jobs.push((mi, is_current, compiled));
        }
    }
    // The state's session: its quarters and each MCO's (a scorecard's benchmarks).
    let mut state_views = vec![View {
        scope: Audience::State,
        stratify: Some(vec![Stratifier::Quarter]),
    }];
    for id in &mcos {
        state_views.push(View {
            scope: Audience::Mco(id.clone()),
            stratify: Some(vec![Stratifier::Quarter]),
        });
    }
    // The audience's units by its members' demographics: from the state's session for the
    // state's report (its audience), from the audience's own otherwise.
    let demographics = View {
        scope: scope.clone(),
        stratify: Some(DEMOGRAPHICS.to_vec()),
    };
    let state_report = scope == Audience::State;
    if state_report {
        state_views.push(View {
            stratify: Some(
                DEMOGRAPHICS
                    .iter()
                    .copied()
                    .chain([Stratifier::County])
                    .collect(),
            ),
            ..demographics.clone()
        });
    }
    // The audience's session: its units by the measure's strata, by quarter, by demographics.
    let own_views = vec![
        View {
            scope: scope.clone(),
            stratify: None,
        },
        View {
            scope: scope.clone(),
            stratify: Some(vec![Stratifier::Quarter]),
        },
        demographics,
    ];
    let follow_ups: BTreeSet<usize> = measures
        .iter()
        .enumerate()
        .filter(|(_, m)| is_follow_up(m))
        .map(|(i, _)| i)
        .collect();
    // The demographics views come last and are summarised for the report year only: the year
    // before's are never published.
    let mut state_done = compute(
        state,
        &measures,
        &jobs,
        (&state_views, usize::from(state_report)),
        &Audience::State,
        &follow_ups,
        members_per_pass,
        bar,
    )
    .await?;
    let mut own_done = match scope {
        Audience::State => None,
        _ => Some(
            compute(
                own,
                &measures,
                &jobs,
                (&own_views, 1),
                &scope,
                &follow_ups,
                members_per_pass,
                bar,
            )
            .await?,
        ),
    };
    for (k, (mi, is_current, _)) in jobs.iter().enumerate() {
        let m = &measures[*mi];
        let (mut rows, mut viewed) = std::mem::take(&mut state_done.summaries[k]);
        let (mut aud, aq) = match own_done.as_mut() {
            Some(o) => {
                let (_, mut own_viewed) = std::mem::take(&mut o.summaries[k]);
                // Published for the report year only: the year before's would only take part
                // in its suppression, hiding what need not be hidden.
                let by_demographics = is_current.then(|| own_viewed.pop().expect("three views"));
                let aq = own_viewed.pop().expect("the audience's quarters");
                let mut aud = own_viewed.pop().expect("the audience's strata");
                aud.extend(by_demographics.map(strata_only).unwrap_or_default());
                (aud, aq)
            }
            // The state's own report: its audience is the state, with its demographics.
            None => {
                if *is_current {
                    rows.extend(strata_only(viewed.pop().expect("the demographics view")));
                }
                (rows.clone(), viewed[0].clone())
            }
        };
        // Rows in the measure's order: the demographic strata after its own.
        let components: Vec<String> = m.components.iter().map(|c| c.name.value.clone()).collect();
        let bands: Vec<String> = m.age_bands.iter().map(|b| b.label.clone()).collect();
        crate::results::sort(&mut rows, &components, &bands);
        crate::results::sort(&mut aud, &components, &bands);
        let d = data
            .entry(m.id.clone())
            .or_insert_with(MeasureData::default);
        for id in mcos.iter().rev() {
            let rows = only_stratum(viewed.pop().expect("a view per MCO"), Stratifier::Quarter);
            d.mco_quarters.entry(id.clone()).or_default().extend(rows);
        }
        let sq = viewed.pop().expect("the state's quarters");
        d.state_quarters
            .extend(only_stratum(sq, Stratifier::Quarter));
        d.audience_quarters
            .extend(only_stratum(aq, Stratifier::Quarter));
        if *is_current {
            checks.extend(crate::cms::checks(&rows));
            let all = state_done.curves.remove(mi);
            let mine = match own_done.as_mut() {
                Some(o) => o.curves.remove(mi),
                None => all.clone(),
            };
            d.followup = all.zip(mine);
            d.state = rows;
            d.audience = aud;
            if let (Audience::Hhp(_), true) = (&audience, is_follow_up(m)) {
                worklist.extend(open_gaps(own, m, &scope, cutoff, &still_enrolled).await?);
            }
            bar.inc(1);
        } else {
            d.state_prior = rows;
            d.audience_prior = aud;
        }
    }
    for m in &measures {
        if let Some(d) = data.get_mut(&m.id) {
            for (period, year) in [(current, "report year"), (prior, "year before")] {
                drop_uncovered(d, m, &period, coverage, year, &mut notes);
            }
        }
    }
    let mut worklist = if worklist.is_empty() {
        worklist
    } else {
        describe_events(own, worklist, cutoff).await?
    };
    worklist.sort_by(|a, b| {
        (
            a.due_7,
            a.anchor_date,
            &a.member_id,
            &a.event_id,
            &a.measures,
        )
            .cmp(&(
                b.due_7,
                b.anchor_date,
                &b.member_id,
                &b.event_id,
                &b.measures,
            ))
    });
    Ok(Gathered {
        audience,
        quarter,
        current,
        prior,
        cutoff,
        extracts: state.extracts.clone(),
        claim_versions: state.claim_versions().await?,
        measures,
        data,
        worklist,
        checks,
        notes,
        quality: None,
        caveat: None,
        publisher: Default::default(),
        targets: Vec::new(),
        finance: None,
        cost: None,
    })
}

/// A report's executor observer: the report year's follow-up curves, added to as each pass's
/// detail is done, and the progress bar.
struct Curves<'a> {
    jobs: &'a [(usize, bool, compile::CompiledMeasure)],
    follow_ups: &'a BTreeSet<usize>,
    scope: &'a Audience,
    curves: BTreeMap<usize, Curve>,
    bar: &'a indicatif::ProgressBar,
}

impl Observer for Curves<'_> {
    fn blocks(&mut self, pass: usize, _: &[crate::engine::Built], _: std::time::Duration) {
        if pass > 0 {
            self.bar.inc(1);
        }
    }

    fn detail(&mut self, job: usize, detail: &[RecordBatch], _: std::time::Duration) -> Result<()> {
        let (mi, is_current, compiled) = &self.jobs[job];
        self.bar.set_message(compiled.id.clone());
        if *is_current && self.follow_ups.contains(mi) {
            let curve = self.curves.entry(*mi).or_insert_with(Curve::zeros);
            add_to_curve(curve, detail, self.scope)?;
        }
        Ok(())
    }
}

/// What one session computed for a report: per job, the rows of its whole population and of
/// each view; per follow-up measure, the report year's curve of `curve_scope`'s units.
struct Computed {
    summaries: Vec<(Vec<ResultRow>, Vec<Vec<ResultRow>>)>,
    curves: BTreeMap<usize, Curve>,
}

/// Compute every job in one session, its members in passes over ranges of member ids as a run's
/// are (see `crate::detail`): each pass computes every measure and year for its members, so
/// memory follows the pass, not the state. With one pass the details are held in memory; with
/// more, each is spooled to disk pass by pass and aggregated from there.
#[allow(clippy::too_many_arguments)]
async fn compute(
    engine: &Engine,
    measures: &[Measure],
    jobs: &[(usize, bool, compile::CompiledMeasure)],
    (views, current_only): (&[View], usize),
    curve_scope: &Audience,
    follow_ups: &BTreeSet<usize>,
    members_per_pass: Option<usize>,
    bar: &indicatif::ProgressBar,
) -> Result<Computed> {
    // A job's views: the last `current_only` are for the report year's jobs only.
    let views_of = |is_current: bool| {
        if is_current {
            views
        } else {
            &views[..views.len() - current_only]
        }
    };
    let selected: Vec<&Measure> = measures.iter().collect();
    let compiled: Vec<&compile::CompiledMeasure> = jobs.iter().map(|(_, _, c)| c).collect();
    let plan = crate::execute::plan(
        engine,
        &compiled,
        &crate::pipeline::blocks_needed(engine, &selected),
        members_per_pass,
    )
    .await?;
    let work: Vec<Job> = jobs
        .iter()
        .enumerate()
        .map(|(k, (_, is_current, c))| Job {
            key: format!("{k}"),
            compiled: c,
            views: views_of(*is_current),
        })
        .collect();
    let mut observer = Curves {
        jobs,
        follow_ups,
        scope: curve_scope,
        curves: BTreeMap::new(),
        bar,
    };
    // With one pass the details are held in memory; with more, each is spooled to disk pass by
    // pass and aggregated from there.
    let mut spool = None;
    let mut held = InMemory::default();
    let planned = match crate::plan::details_in_memory(&plan) {
        true => crate::execute::run(engine, &plan, &work, &mut held, &mut observer).await?,
        false => {
            let mut sink =
                crate::detail::DetailSink::new(crate::detail::Spool::new(&std::env::temp_dir())?);
            let planned =
                crate::execute::run(engine, &plan, &work, &mut sink, &mut observer).await?;
            spool = Some(sink.finish().await?);
            planned
        }
    };
    let curves = observer.curves;
    let partitions = engine.context().copied_config().target_partitions();
    let mut summaries = Vec::with_capacity(jobs.len());
    for (k, job) in work.iter().enumerate() {
        let schema = planned[k].clone();
        let table: Arc<dyn TableProvider> = match spool.as_mut() {
            Some(s) => s.finish(&job.key, &schema)?.table(partitions)?,
            None => {
                let detail = held.details.remove(&job.key).unwrap_or_default();
                // The batches' schema can differ from the plan's in nullability; theirs is the
                // truth.
                let schema = detail.first().map_or(schema, |b| b.schema());
                Arc::new(MemTable::try_new(schema, vec![detail])?)
            }
        };
        summaries.push(engine.summarise(job.compiled, table, job.views).await?);
    }
    drop(spool);
    Ok(Computed { summaries, curves })
}

/// The demographic strata every report breaks its audience's figures down by (the state's adds
/// county); under the same suppression as the rest of its table.
pub const DEMOGRAPHICS: [Stratifier; 4] = [
    Stratifier::Sex,
    Stratifier::Race,
    Stratifier::Ethnicity,
    Stratifier::Rural,
];

/// A view's strata without its total (the measure's own rows have it).
fn strata_only(rows: Vec<ResultRow>) -> Vec<ResultRow> {
    rows.into_iter()
        .filter(|r| r.stratifier != Grouping::Total)
        .collect()
}

fn only_stratum(rows: Vec<ResultRow>, stratifier: Stratifier) -> Vec<ResultRow> {
    rows.into_iter()
        .filter(|r| r.stratifier == Grouping::By(stratifier))
        .collect()
}

/// A column of the detail cast to a type (the detail's string columns may be views).
fn column(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> Result<Option<std::sync::Arc<dyn Array>>> {
    match batch.schema().index_of(name) {
        Ok(i) => Ok(Some(cast(batch.column(i), to)?)),
        Err(_) => Ok(None),
    }
}

fn text_at(col: &dyn Array, i: usize) -> Option<&str> {
    let s = col.as_string::<i32>();
    (!s.is_null(i)).then(|| s.value(i))
}

fn in_scope(scope: &Audience, mco: Option<&str>, hhp: Option<&str>) -> bool {
    match scope {
        Audience::State => true,
        Audience::Mco(id) => mco == Some(id.as_str()),
        Audience::Hhp(id) => hhp == Some(id.as_str()),
    }
}

impl Curve {
    /// No unit yet, and a count for each of days 0 to 30.
    fn zeros() -> Curve {
        Curve {
            denominator: 0,
            by_day: vec![0; 31],
        }
    }
}

/// Add these units of the detail (a pass's) to `c`: days from the anchor to the first follow-up
/// within 30 days, over the denominator's units.
fn add_to_curve(c: &mut Curve, detail: &[RecordBatch], scope: &Audience) -> Result<()> {
    for b in detail {
        let (Some(inden), Some(anchor), Some(hit), Some(date), Some(mco), Some(hhp)) = (
            column(b, "in_denominator", &DataType::Boolean)?,
            column(b, "anchor_date", &DataType::Date32)?,
            column(b, "30_day", &DataType::Int64)?,
            column(b, "30_day_date", &DataType::Date32)?,
            column(b, "mco", &DataType::Utf8)?,
            column(b, "hhp", &DataType::Utf8)?,
        ) else {
            return Err(Error::Usage(
                "a follow-up measure's detail lacks its 30_day columns".into(),
            ));
        };
        let inden = inden.as_boolean();
        let anchor = anchor.as_primitive::<Date32Type>();
        let hit = hit.as_primitive::<Int64Type>();
        let date = date.as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            if inden.is_null(i) || !inden.value(i) {
                continue;
            }
            if !in_scope(scope, text_at(&mco, i), text_at(&hhp, i)) {
                continue;
            }
            c.denominator += 1;
            if hit.is_null(i) || hit.value(i) == 0 || date.is_null(i) || anchor.is_null(i) {
                continue;
            }
            // In i64: two i32 day numbers can differ by more than an i32 holds.
            let days =
                (i64::from(date.value(i)) - i64::from(anchor.value(i))).clamp(0, 30) as usize;
            for n in &mut c.by_day[days..] {
                *n += 1;
            }
        }
    }
    Ok(())
}

/// A partner's follow-ups still open at the cut-off: units anchored in the 30 days before it, not
/// excluded, with no 30-day follow-up yet. The measure runs over months reaching 30 days past the
/// cut-off so that these recent discharges are candidates; enrolment after the cut-off cannot be
/// known yet, so a unit set aside for continuous enrolment counts as open when the member's
/// Health Home span runs through the cut-off.
async fn open_gaps(
    engine: &Engine,
    m: &Measure,
    scope: &Audience,
    cutoff: NaiveDate,
    still_enrolled: &BTreeSet<String>,
) -> Result<Vec<Gap>> {
    let from = cutoff - Days::new(30);
    let start = from.with_day(1).expect("day 1") - Months::new(1);
    let until = cutoff + Days::new(31);
    let end = until.with_day(1).expect("day 1") + Months::new(1) - Days::new(1);
    let period = Period::new(start, end)?;
    let compiled = compile::compile(m, engine.catalog(), &period)?;
    let run = engine.run(&compiled).await?;
    let mut gaps = Vec::new();
    for b in &run.detail {
        let get = |n: &str, t: &DataType| column(b, n, t);
        let (
            Some(anchor),
            Some(member),
            Some(unit),
            Some(hit),
            Some(mco),
            Some(hhp),
            Some(excl),
            Some(inel),
        ) = (
            get("anchor_date", &DataType::Date32)?,
            get("member_id", &DataType::Utf8)?,
            get("unit_id", &DataType::Utf8)?,
            get("30_day", &DataType::Int64)?,
            get("mco", &DataType::Utf8)?,
            get("hhp", &DataType::Utf8)?,
            get("exclusion", &DataType::Utf8)?,
            get("ineligible", &DataType::Utf8)?,
        )
        else {
            return Err(Error::Usage(
                "a follow-up measure's detail lacks the worklist's columns".into(),
            ));
        };
        let anchor = anchor.as_primitive::<Date32Type>();
        let hit = hit.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if anchor.is_null(i) || !in_scope(scope, text_at(&mco, i), text_at(&hhp, i)) {
                continue;
            }
            let a = engine.result_date(
                anchor.value(i),
                "anchor_date",
                &format!("the open follow-ups of {}", m.id),
            )?;
            let done = !hit.is_null(i) && hit.value(i) > 0;
            let member_id = text_at(&member, i).unwrap_or("");
            let open_reason = match text_at(&inel, i) {
                None => true,
                Some(why) => {
                    why.starts_with("not continuously enrolled")
                        && still_enrolled.contains(member_id)
                }
            };
            if a < from || a > cutoff || done || text_at(&excl, i).is_some() || !open_reason {
                continue;
            }
            gaps.push(Gap {
                measures: vec![m.id.clone()],
                member_id: member_id.to_string(),
                event_id: text_at(&unit, i).unwrap_or("").to_string(),
                event: match m.events.as_ref().map(|e| e.block.value.as_str()) {
                    Some("inpatient_stays") => "inpatient discharge".into(),
                    Some("ed_visits") => "ED visit".into(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                anchor_date: a,
                // `a` is within 1900..2200 (`result_date`): these cannot overflow.
                due_7: a + Days::new(7),
                due_30: a + Days::new(30),
                facility: None,
                diagnosis: None,
                current_mco: None,
            });
        }
    }
    Ok(gaps)
}

/// One row per event: the gaps of one member's event (a discharge open in FUH-HH and HH-TCC, an
/// ED visit open in FUM-HH and FUA-HH) merged, each with what the care team needs to act on it —
/// the facility and diagnosis of the event's claim and the member's MCO at the cut-off — read
/// from the partner's own session.
async fn describe_events(engine: &Engine, gaps: Vec<Gap>, cutoff: NaiveDate) -> Result<Vec<Gap>> {
    let mut events: BTreeMap<(String, String, NaiveDate), Gap> = BTreeMap::new();
    for g in gaps {
        let key = (g.member_id.clone(), g.event_id.clone(), g.anchor_date);
        match events.get_mut(&key) {
            Some(e) => {
                e.measures.extend(g.measures);
                e.measures.sort();
                e.measures.dedup();
            }
            None => {
                events.insert(key, g);
            }
        }
    }
    let list = |ids: BTreeSet<&str>| {
        ids.into_iter()
            .map(crate::compile::sql::string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let claims = list(events.values().map(|g| g.event_id.as_str()).collect());
    let (_, rows) = crate::results::text_rows(
        &engine
            .collect_for(
                &format!(
                    "SELECT claim_id, min(billing_npi), min(CASE WHEN line_number = 1 THEN \
                     principal_dx END), min(principal_dx) FROM claims WHERE claim_id IN ({claims}) \
                     GROUP BY claim_id"
                ),
                "the worklist's facilities and diagnoses",
            )
            .await?,
    )?;
    let described: BTreeMap<String, (Option<String>, Option<String>)> = rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let id = r.next().flatten()?;
            let npi = r.next().flatten();
            let first_line = r.next().flatten();
            let any_line = r.next().flatten();
            Some((id, (npi, first_line.or(any_line))))
        })
        .collect();
    let members = list(events.values().map(|g| g.member_id.as_str()).collect());
    // The Medicaid span's MCO where one covers the cut-off, else a Health Home span's.
    let (_, rows) = crate::results::text_rows(
        &engine
            .collect_for(
                &format!(
                    "SELECT member_id, mco_id FROM enrollment WHERE member_id IN ({members}) \
                     AND mco_id IS NOT NULL AND start_date <= DATE '{cutoff}' \
                     AND (end_date IS NULL OR end_date >= DATE '{cutoff}') \
                     ORDER BY member_id, CASE WHEN span_type = 'medicaid' THEN 0 ELSE 1 END, \
                     start_date DESC, mco_id"
                ),
                "the worklist members' MCOs",
            )
            .await?,
    )?;
    let mut mcos: BTreeMap<String, String> = BTreeMap::new();
    for r in rows {
        if let [Some(member), Some(mco)] = &r[..] {
            mcos.entry(member.clone()).or_insert_with(|| mco.clone());
        }
    }
    Ok(events
        .into_values()
        .map(|mut g| {
            if let Some((npi, dx)) = described.get(&g.event_id) {
                g.facility = npi.clone();
                g.diagnosis = dx.clone();
            }
            g.current_mco = mcos.get(&g.member_id).cloned();
            g
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters() {
        let q = Quarter::parse("2025Q4").unwrap();
        assert_eq!(q.to_string(), "2025Q4");
        assert_eq!(q.year_ending().to_string(), "2025-01-01..2025-12-31");
        assert_eq!(
            Quarter::parse("2025q1").unwrap().year_ending().to_string(),
            "2024-04-01..2025-03-31"
        );
        assert_eq!(
            q.last_eight()
                .iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>(),
            [
                "2024Q1", "2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4"
            ]
        );
        assert!(Quarter::parse("2025Q5").is_err() && Quarter::parse("2025").is_err());
        // Data through 2026-03-31: 2025Q4 has its 90 days of run-out, 2026Q1 not yet.
        let cutoff = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(Quarter::latest_final(cutoff).to_string(), "2025Q4");
        let cutoff = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        assert_eq!(Quarter::latest_final(cutoff).to_string(), "2025Q3");
    }
}
