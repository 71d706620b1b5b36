//! Cost of care before and after enrolment (`hhq cost`): total paid per member-month by claim
//! category, and ED visits and admissions per 1,000 member-months, in the 12 months before and
//! after a member's first Health Home enrolment, against members who qualify for a target
//! population but never enrolled, with a difference-in-differences estimate and its interval.
//!
//! The method (stated in docs/finance.md and in `method.txt` of every run):
//! - Enrollees: members whose first Health Home span in the data starts in the intake period;
//!   their index month is that span's month. The pre window is the 12 months before it, the post
//!   window the index month and the 11 after.
//! - Comparison: members never assigned to a Health Home in the data who qualify for a target
//!   population (the cohort definitions of `measures/cohorts/`) on the day before the intake
//!   period, on their claims of the look-back before it. Each is given a pseudo-index month drawn
//!   from the enrollees' index months (by a digest of the member id, so the same on every run),
//!   so both groups' windows fall in the same calendar months in the same proportions.
//! - A member counts when Medicaid-eligible in at least [`MIN_MONTHS`] months of each window. A
//!   member's figure in a window is its paid dollars (or events) over its eligible months in it.
//! - The estimate: the enrollees' mean change (post less pre) less the comparison members' mean
//!   change; its 95% interval from the two groups' variances of the change (Welch's standard
//!   error, normal quantile 1.96). Not adjusted for who chooses to enrol: the comparison
//!   group is unmatched beyond qualifying, and the figure is descriptive.
//! - Categories: inpatient, ED (an outpatient or professional claim with an ED revenue code or
//!   procedure), outpatient, professional, pharmacy and long-term care; the Health Home payment
//!   (S0281) is its own category and is not in the total of care.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;

use super::ledger::{columns, first_of, strings};
use crate::compile::sql::date;
use crate::error::{Error, Result};
use crate::measure::{Stratifier, Unit as RateUnit};
use crate::period::Period;
use crate::privacy::Audience;
use crate::results::{Grouping, ResultRow};
use crate::suppress::suppress;

/// Eligible months a member needs in each window.
pub const MIN_MONTHS: u32 = 6;

/// Paid-dollar categories, in the order reported (the total of care is their sum, less
/// `health_home`).
pub const CATEGORIES: [&str; 7] = [
    "inpatient",
    "ed",
    "outpatient",
    "professional",
    "pharmacy",
    "long_term_care",
    "health_home",
];

/// What is compared: dollars per member-month or events per 1,000 member-months.
pub const FIGURES: [(&str, RateUnit); 10] = [
    ("total_of_care", RateUnit::DollarsPerMemberMonth),
    ("inpatient", RateUnit::DollarsPerMemberMonth),
    ("ed", RateUnit::DollarsPerMemberMonth),
    ("outpatient", RateUnit::DollarsPerMemberMonth),
    ("professional", RateUnit::DollarsPerMemberMonth),
    ("pharmacy", RateUnit::DollarsPerMemberMonth),
    ("long_term_care", RateUnit::DollarsPerMemberMonth),
    ("health_home", RateUnit::DollarsPerMemberMonth),
    ("ed_visits", RateUnit::Per1000MemberMonths),
    ("admissions", RateUnit::Per1000MemberMonths),
];

/// One member of either group.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub member_id: String,
    pub enrolled: bool,
    pub index: NaiveDate,
    pub mco: Option<String>,
    pub hhp: Option<String>,
    /// Eligible months before and after.
    pub months: [u32; 2],
    /// Per figure (FIGURES' order): the window's sum (dollars or events).
    pub sums: [[f64; 10]; 2],
}

impl Subject {
    /// The member's figure in a window: per member-month (dollars) or per 1,000 (events).
    pub fn rate(&self, figure: usize, window: usize) -> f64 {
        let m = f64::from(self.months[window].max(1));
        self.sums[window][figure] / m * FIGURES[figure].1.scale()
    }

    fn change(&self, figure: usize) -> f64 {
        self.rate(figure, 1) - self.rate(figure, 0)
    }
}

/// One comparison, as computed (before suppression).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub stratifier: Grouping,
    pub stratum: String,
    pub figure: &'static str,
    pub unit: RateUnit,
    pub n: [usize; 2],
    /// [enrollees, comparison] × [pre, post] means.
    pub means: [[f64; 2]; 2],
    pub did: f64,
    pub interval: Option<(f64, f64)>,
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v)
}

/// Difference-in-differences of every figure for one stratum's enrollees against `comparison`.
pub fn estimates(
    stratifier: Grouping,
    stratum: &str,
    treated: &[&Subject],
    comparison: &[&Subject],
) -> Vec<Estimate> {
    let mut out = Vec::new();
    for (k, (figure, unit)) in FIGURES.iter().enumerate() {
        let groups = [treated, comparison];
        let mut means = [[0.0; 2]; 2];
        let mut change = [(0.0, 0.0); 2];
        for (g, members) in groups.iter().enumerate() {
            for (w, mean) in means[g].iter_mut().enumerate() {
                *mean = mean_var(&members.iter().map(|s| s.rate(k, w)).collect::<Vec<_>>()).0;
            }
            change[g] = mean_var(&members.iter().map(|s| s.change(k)).collect::<Vec<_>>());
        }
        let (nt, nc) = (treated.len(), comparison.len());
        let did = change[0].0 - change[1].0;
        let interval = (nt >= 2 && nc >= 2).then(|| {
            let se = (change[0].1 / nt as f64 + change[1].1 / nc as f64).sqrt();
            (did - 1.96 * se, did + 1.96 * se)
        });
        out.push(Estimate {
            stratifier,
            stratum: stratum.to_string(),
            figure,
            unit: *unit,
            n: [nt, nc],
            means,
            did,
            interval,
        });
    }
    out
}

/// What `hhq cost` is asked.
#[derive(Debug, Clone)]
pub struct CostOptions {
    pub common: crate::execute::Options,
    pub out: PathBuf,
    /// The months whose new enrollees are followed (default: the latest year whose windows the
    /// data cover).
    pub intake: Option<Period>,
    pub audience: Audience,
}

/// The outcome of `hhq cost`.
#[derive(Debug, Clone)]
pub struct CostReport {
    pub intake: Period,
    pub enrollees: usize,
    pub comparison: usize,
    /// Members left out for too few eligible months: [enrollees, comparison].
    pub too_few_months: [usize; 2],
    /// The total of care, as published: (stratum, cells).
    pub lines: Vec<(String, Vec<String>)>,
    pub written: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

impl CostReport {
    pub fn told(&self, out: &std::path::Path) -> crate::output::Told {
        let mut text = format!(
            "cost of care, enrolled {} to {}: {} enrollees, {} comparison members ({} and {} \
             left out with fewer than {MIN_MONTHS} eligible months in a window)\n",
            self.intake.start,
            self.intake.end,
            self.enrollees,
            self.comparison,
            self.too_few_months[0],
            self.too_few_months[1]
        );
        text.push_str(&format!(
            "  {:<14} {:>12} {:>12} {:>12} {:>12} {:>12} {:>24}\n",
            "total of care",
            "enrolled pre",
            "post",
            "comparison",
            "post",
            "DiD PMPM",
            "95% interval"
        ));
        for (stratum, cells) in &self.lines {
            text.push_str(&format!("  {:<14}", crate::escape::terminal_line(stratum)));
            for (i, c) in cells.iter().enumerate() {
                let w = if i == 5 { 24 } else { 12 };
                text.push_str(&format!(" {c:>w$}"));
            }
            text.push('\n');
        }
        text.push_str(&format!(
            "  (method: method.txt; every figure in cost_of_care.csv)\nwrote {} files to {}\n",
            self.written.len(),
            out.display()
        ));
        crate::output::Told {
            before: self
                .warnings
                .iter()
                .map(|w| format!("warning: {w}"))
                .collect(),
            out: text,
            ..Default::default()
        }
    }
}

/// A stable draw in `0..n` for a member id.
fn draw(id: &str, n: usize) -> usize {
    let hex = crate::digest::sha256(id.as_bytes());
    let x = u64::from_str_radix(&hex[..16], 16).expect("hex");
    (x % n as u64) as usize
}

/// `hhq cost`.
pub async fn command(opts: &CostOptions) -> Result<CostReport> {
    crate::output::check_replaceable(&opts.out, "cost")?;
    let defs = crate::definitions::Definitions::load(&opts.common.measures, &opts.common.queries)?;
    let cohorts: Vec<crate::cohort::Definition> = defs
        .cohorts
        .iter()
        .filter(|d| matches!(d, crate::cohort::Definition::Cohort(_)))
        .cloned()
        .collect();
    if cohorts.is_empty() {
        return Err(Error::Usage(format!(
            "no target-population (cohort) definitions in {}: the comparison group is the \
             members who qualify for one",
            opts.common.measures.join("cohorts").display()
        )));
    }
    let engine = crate::execute::open_loaded(&opts.common, &defs, &Audience::State).await?;
    let rows = crate::quality::count_rows(engine.context(), &engine.extracts).await?;
    engine.skip_row_rules(&rows.clean()).await?;
    let mut warnings = crate::quality::set_aside_lines(rows.extracts());
    crate::execute::keep_for_run(&engine, None).await?;
    let today = chrono::Utc::now().date_naive();
    let (Some(first), Some(last)) = (
        engine.data_first_day().await?,
        engine.data_cutoff(today).await?,
    ) else {
        return Err(Error::Usage(format!(
            "{}: the data hold no dated claims to compare",
            opts.common.data.display()
        )));
    };
    let intake = intake_within(opts.intake, first, last)?;

    let Study {
        subjects,
        too_few,
        as_of,
    } = study(&engine, &cohorts, &intake).await?;
    if too_few.iter().any(|n| *n > 0) {
        warnings.push(format!(
            "{} enrollees and {} comparison members left out: fewer than {MIN_MONTHS} \
             Medicaid-eligible months before or after",
            too_few[0], too_few[1]
        ));
    }

    let shown = published(&subjects, &opts.audience, &intake);
    let treated_n = subjects
        .iter()
        .filter(|s| s.enrolled && in_scope(s, &opts.audience))
        .count();
    let comparison_n = subjects
        .iter()
        .filter(|s| !s.enrolled && in_scope(s, &opts.audience))
        .count();
    let fmt = |x: f64, unit: RateUnit| match unit {
        RateUnit::DollarsPerMemberMonth => format!("{x:.2}"),
        _ => format!("{x:.1}"),
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut lines = Vec::new();
    for (e, hidden) in &shown {
        let cells: Vec<String> = if *hidden {
            vec!["DS".to_string(); 9]
        } else {
            vec![
                e.n[0].to_string(),
                e.n[1].to_string(),
                fmt(e.means[0][0], e.unit),
                fmt(e.means[0][1], e.unit),
                fmt(e.means[1][0], e.unit),
                fmt(e.means[1][1], e.unit),
                fmt(e.did, e.unit),
                e.interval.map(|i| fmt(i.0, e.unit)).unwrap_or_default(),
                e.interval.map(|i| fmt(i.1, e.unit)).unwrap_or_default(),
            ]
        };
        if e.figure == "total_of_care" && e.stratifier.name() != "mco" {
            let interval = if cells[7].is_empty() || cells[7] == "DS" {
                cells[7].clone()
            } else {
                format!("{} to {}", cells[7], cells[8])
            };
            lines.push((
                if e.stratum == "total" {
                    "total".to_string()
                } else {
                    e.stratum.clone()
                },
                vec![
                    cells[2].clone(),
                    cells[3].clone(),
                    cells[4].clone(),
                    cells[5].clone(),
                    cells[6].clone(),
                    interval,
                ],
            ));
        }
        let mut row = vec![
            e.stratifier.name().to_string(),
            e.stratum.clone(),
            e.figure.to_string(),
            e.unit.name().to_string(),
        ];
        row.extend(cells);
        rows.push(row);
    }
    let header = [
        "stratifier",
        "stratum",
        "figure",
        "unit",
        "enrollees",
        "comparison_members",
        "enrollees_pre",
        "enrollees_post",
        "comparison_pre",
        "comparison_post",
        "difference_in_differences",
        "interval_low",
        "interval_high",
    ];
    // Text from the data (strata) is made harmless; figures are written as they are.
    let numeric: Vec<bool> = (0..header.len()).map(|i| i >= 4).collect();
    let csv_bytes = super::files::csv_mixed(&header, &numeric, &rows)?;
    let method = method_text(&intake, as_of, &cohorts);
    let mut staged = crate::output::Staged::begin(&opts.out, "cost")?;
    staged.write("cost_of_care.csv", &csv_bytes)?;
    staged.write("method.txt", method.as_bytes())?;
    let manifest = serde_json::to_string_pretty(&serde_json::json!({
        "command": "cost",
        "intake": {"start": intake.start.to_string(), "end": intake.end.to_string()},
        "options": {
            "data": opts.common.data.display().to_string(),
            "measures": crate::library::shown(&opts.common.measures),
            "audience": opts.audience.id().map(|id| format!("{} {id}", opts.audience.kind())),
        },
    }))
    .map_err(|e| Error::Usage(format!("writing the manifest: {e}")))?;
    let written = staged
        .publish(|root, names| crate::manifest::with_outputs(&manifest, names, Some(root)))?;
    Ok(CostReport {
        intake,
        enrollees: treated_n,
        comparison: comparison_n,
        too_few_months: too_few,
        lines,
        written,
        warnings,
    })
}

/// The intake months asked for, or the latest twelve whose windows the data (`first` to `last`)
/// cover whole; months whose windows they do not cover are refused, saying which would do.
pub fn intake_within(asked: Option<Period>, first: NaiveDate, last: NaiveDate) -> Result<Period> {
    // Windows the data cover whole: the pre window from the first whole month, the post window
    // to the last whole month.
    let first_month = if first.day() == 1 {
        first
    } else {
        first_of(first) + Months::new(1)
    };
    let last_month = if (last + chrono::Days::new(1)).day() == 1 {
        first_of(last)
    } else {
        first_of(last) - Months::new(1)
    };
    let earliest = first_month + Months::new(12);
    let latest = last_month - Months::new(11);
    let intake = match asked {
        Some(p) => p,
        None => {
            if latest < earliest {
                return Err(Error::Usage(format!(
                    "the data ({first} to {last}) do not hold 12 months before and after any \
                     month: a before-and-after comparison needs at least 24 months"
                )));
            }
            let start = (latest - Months::new(11)).max(earliest);
            Period::new(start, latest + Months::new(1) - chrono::Days::new(1))?
        }
    };
    if intake.start < earliest || first_of(intake.end) > latest {
        return Err(Error::Usage(format!(
            "enrolment months {} to {} need claims from {} to {}, but the data cover {first} to \
             {last}: choose --intake within {earliest} to {}",
            intake.start,
            intake.end,
            intake.start - Months::new(12),
            first_of(intake.end) + Months::new(12) - chrono::Days::new(1),
            latest + Months::new(1) - chrono::Days::new(1)
        )));
    }

    Ok(intake)
}

/// Whether a member is in the audience's comparison: an MCO's members; a partner's enrollees
/// against every comparison member.
fn in_scope(s: &Subject, audience: &Audience) -> bool {
    match audience {
        Audience::State => true,
        Audience::Mco(id) => s.mco.as_deref() == Some(id),
        Audience::Hhp(id) => !s.enrolled || s.hhp.as_deref() == Some(id),
    }
}

/// Every stratum's estimates for the audience (total, each MCO, each partner), each with whether
/// it is hidden: a stratum whose enrollees or comparison members are 1 to 10, or could be worked
/// out from the others, is hidden whole.
pub fn published(
    subjects: &[Subject],
    audience: &Audience,
    intake: &Period,
) -> Vec<(Estimate, bool)> {
    // Estimates per stratum, for the audience.
    let kept: Vec<&Subject> = subjects.iter().filter(|s| in_scope(s, audience)).collect();
    let treated: Vec<&Subject> = kept.iter().copied().filter(|s| s.enrolled).collect();
    let comparison: Vec<&Subject> = kept.iter().copied().filter(|s| !s.enrolled).collect();
    let mut all = estimates(Grouping::Total, "total", &treated, &comparison);
    let mcos: BTreeSet<&str> = treated.iter().filter_map(|s| s.mco.as_deref()).collect();
    for m in &mcos {
        let t: Vec<&Subject> = treated
            .iter()
            .copied()
            .filter(|s| s.mco.as_deref() == Some(m))
            .collect();
        let c: Vec<&Subject> = comparison
            .iter()
            .copied()
            .filter(|s| s.mco.as_deref() == Some(m))
            .collect();
        all.extend(estimates(Grouping::By(Stratifier::Mco), m, &t, &c));
    }
    let partners: BTreeSet<&str> = treated.iter().filter_map(|s| s.hhp.as_deref()).collect();
    for h in &partners {
        let t: Vec<&Subject> = treated
            .iter()
            .copied()
            .filter(|s| s.hhp.as_deref() == Some(h))
            .collect();
        all.extend(estimates(Grouping::By(Stratifier::Hhp), h, &t, &comparison));
    }

    // Suppression: the members of each group per stratum are counts a reader must not learn
    // when 1 to 10 (nor by subtraction); a stratum with either hidden shows no figure.
    let count_rows = |enrolled: bool, measure: &str| -> Vec<ResultRow> {
        let mut rows = Vec::new();
        let mut add = |stratifier: Grouping, stratum: &str, n: usize| {
            rows.push(ResultRow {
                measure: measure.into(),
                component: "members".into(),
                period_start: intake.start,
                period_end: intake.end,
                stratifier,
                stratum: stratum.into(),
                numerator: n as f64,
                denominator: n as f64,
                rate: Some(n as f64),
                unit: RateUnit::Count,
                spread: None,
            });
        };
        let group: &Vec<&Subject> = if enrolled { &treated } else { &comparison };
        add(Grouping::Total, "total", group.len());
        for m in &mcos {
            add(
                Grouping::By(Stratifier::Mco),
                m,
                group.iter().filter(|s| s.mco.as_deref() == Some(m)).count(),
            );
        }
        if enrolled {
            for h in &partners {
                add(
                    Grouping::By(Stratifier::Hhp),
                    h,
                    group.iter().filter(|s| s.hhp.as_deref() == Some(h)).count(),
                );
            }
        }
        rows
    };
    let hidden: BTreeSet<(String, String)> = suppress(&count_rows(true, "COST-ENROLLED"))
        .into_iter()
        .chain(suppress(&count_rows(false, "COST-COMPARISON")))
        .filter(|p| p.numerator.is_err())
        .map(|p| (p.row.stratifier.name().to_string(), p.row.stratum))
        .collect();
    let comparison_hidden = hidden.contains(&("total".into(), "total".into()));
    let is_hidden = |e: &Estimate| {
        hidden.contains(&(e.stratifier.name().to_string(), e.stratum.clone()))
            || (e.stratifier.name() == "hhp" && comparison_hidden)
    };

    all.into_iter()
        .map(|e| {
            let h = is_hidden(&e);
            (e, h)
        })
        .collect()
}

/// The members a comparison follows and their windows' sums.
#[derive(Debug, Clone)]
pub struct Study {
    /// Enrollees and comparison members with enough eligible months, by member id.
    pub subjects: Vec<Subject>,
    /// Left out for too few eligible months: [enrollees, comparison].
    pub too_few: [usize; 2],
    /// The day the comparison members qualify on (the day before the intake).
    pub as_of: NaiveDate,
}

/// Find the enrollees of `intake` and the comparison members (qualifying for one of `cohorts`
/// the day before it, never enrolled), and sum each one's dollars, events and eligible months
/// in its windows, over every member of `engine`.
pub async fn study(
    engine: &crate::engine::Engine,
    cohorts: &[crate::cohort::Definition],
    intake: &Period,
) -> Result<Study> {
    // Enrollees: first Health Home span in the intake months, with its MCO and partner.
    let mut subjects: Vec<Subject> = Vec::new();
    let ever: BTreeSet<String> = {
        let mut s = BTreeSet::new();
        for b in &engine
            .collect_for(
                "SELECT DISTINCT member_id FROM enrollment WHERE span_type = 'health_home'",
                "members ever in a Health Home",
            )
            .await?
        {
            let ids = strings(b.column(0))?;
            s.extend((0..b.num_rows()).map(|i| ids.value(i).to_string()));
        }
        s
    };
    let sql = format!(
        "SELECT member_id, start_date, mco_id, hhp_id FROM ( \
           SELECT member_id, start_date, mco_id, hhp_id, \
             row_number() OVER (PARTITION BY member_id ORDER BY start_date, hhp_id) AS k \
           FROM enrollment WHERE span_type = 'health_home') AS x \
         WHERE k = 1 AND start_date BETWEEN {} AND {} ORDER BY member_id",
        date(intake.start),
        date(intake.end)
    );
    for b in engine.collect_for(&sql, "the enrollees").await? {
        let (ids, mco, hhp) = (
            strings(b.column(0))?,
            strings(b.column(2))?,
            strings(b.column(3))?,
        );
        let starts = cast(b.column(1), &DataType::Date32)?;
        let starts = starts.as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            let start = engine.result_date(starts.value(i), "start_date", "the enrollees")?;
            subjects.push(Subject {
                member_id: ids.value(i).to_string(),
                enrolled: true,
                index: first_of(start),
                mco: (!mco.is_null(i)).then(|| mco.value(i).to_string()),
                hhp: (!hhp.is_null(i)).then(|| hhp.value(i).to_string()),
                months: [0, 0],
                sums: [[0.0; 10]; 2],
            });
        }
    }
    let mut indexes: Vec<NaiveDate> = subjects.iter().map(|s| s.index).collect();
    indexes.sort();
    if indexes.is_empty() {
        return Err(Error::Usage(format!(
            "no member's first Health Home span starts in {} to {}: nobody to follow",
            intake.start, intake.end
        )));
    }
    // Comparison: qualifying the day before the intake, never enrolled.
    let as_of = intake.start.pred_opt().expect("a day before");
    let run = crate::cohort::run(engine, cohorts, as_of).await?;
    for m in &run.members {
        if m.qualifies.is_empty() || ever.contains(&m.member_id) {
            continue;
        }
        subjects.push(Subject {
            member_id: m.member_id.clone(),
            enrolled: false,
            index: indexes[draw(&m.member_id, indexes.len())],
            mco: m.mco.clone(),
            hhp: None,
            months: [0, 0],
            sums: [[0.0; 10]; 2],
        });
    }
    // The cohort run left narrowed tables registered; the views are read whole below.
    subjects.sort_by(|a, b| a.member_id.cmp(&b.member_id));

    // Each subject's windows, as a table the queries join.
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Utf8, false),
        Field::new("pre_start", DataType::Date32, false),
        Field::new("index_start", DataType::Date32, false),
        Field::new("post_end", DataType::Date32, false),
    ]));
    let days =
        |d: NaiveDate| (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                subjects.iter().map(|s| s.member_id.as_str()),
            )) as ArrayRef,
            Arc::new(datafusion::arrow::array::Date32Array::from_iter_values(
                subjects.iter().map(|s| days(s.index - Months::new(12))),
            )),
            Arc::new(datafusion::arrow::array::Date32Array::from_iter_values(
                subjects.iter().map(|s| days(s.index)),
            )),
            Arc::new(datafusion::arrow::array::Date32Array::from_iter_values(
                subjects
                    .iter()
                    .map(|s| days(s.index + Months::new(12) - chrono::Days::new(1))),
            )),
        ],
    )?;
    let ctx = engine.context();
    ctx.deregister_table("hhq_cost_windows")?;
    ctx.register_table(
        "hhq_cost_windows",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let by_id: BTreeMap<String, usize> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| (s.member_id.clone(), i))
        .collect();
    let window = |alias: &str, col: &str| {
        format!("CASE WHEN {alias}.{col} < w.index_start THEN 1 ELSE 2 END")
    };
    // The ED visits block's own test of an ED claim, value sets expanded as a filter's are.
    let claim_cols = columns(engine, "claims_final").await?;
    let ed_test = crate::compile::filter::check(
        std::path::Path::new("queries/ed_visits.sql"),
        &crate::measure::Located {
            value: "claim_type IN ('outpatient', 'professional') AND \
                    (in_value_set(revenue_code, 'ed_revenue') OR in_value_set(procedure_code, 'ed_procedure'))"
                .into(),
            line: 1,
            column: 1,
        },
        "claims_final",
        "e",
        &claim_cols,
        &engine.catalog().value_sets,
    )?;
    let sums_sql = format!(
        "WITH ed AS (SELECT DISTINCT e.claim_id FROM claims_final e WHERE coalesce(({ed_test}), false)) \
         SELECT c.member_id, {win} AS win, \
           CASE WHEN c.procedure_code = 'S0281' THEN 'health_home' \
                WHEN c.claim_type = 'inpatient' THEN 'inpatient' \
                WHEN ed.claim_id IS NOT NULL THEN 'ed' \
                ELSE c.claim_type END AS category, \
           sum(coalesce(c.paid_amount, 0)) AS paid \
         FROM claims_final c JOIN hhq_cost_windows w ON c.member_id = w.member_id \
           AND c.service_from BETWEEN w.pre_start AND w.post_end \
         LEFT JOIN ed ON c.claim_id = ed.claim_id \
         GROUP BY 1, 2, 3 \
         UNION ALL \
         SELECT v.member_id, {vwin} AS win, 'ed_visits' AS category, CAST(count(*) AS DOUBLE) AS paid \
         FROM ed_visits v JOIN hhq_cost_windows w ON v.member_id = w.member_id \
           AND v.visit_date BETWEEN w.pre_start AND w.post_end GROUP BY 1, 2 \
         UNION ALL \
         SELECT s.member_id, {swin} AS win, 'admissions' AS category, CAST(count(*) AS DOUBLE) AS paid \
         FROM inpatient_stays s JOIN hhq_cost_windows w ON s.member_id = w.member_id \
           AND s.admission_date BETWEEN w.pre_start AND w.post_end WHERE s.acute GROUP BY 1, 2",
        win = window("c", "service_from"),
        vwin = window("v", "visit_date"),
        swin = window("s", "admission_date"),
    );
    for b in &engine
        .collect_for(&sums_sql, "paid dollars by window")
        .await?
    {
        let (ids, cat) = (strings(b.column(0))?, strings(b.column(2))?);
        let win = cast(b.column(1), &DataType::Int64)?;
        let win = win.as_primitive::<Int64Type>();
        let paid = cast(b.column(3), &DataType::Float64)?;
        let paid = paid.as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let Some(&s) = by_id.get(ids.value(i)) else {
                continue;
            };
            let w = (win.value(i) - 1) as usize;
            let Some(k) = FIGURES.iter().position(|(f, _)| *f == cat.value(i)) else {
                continue;
            };
            let v = if paid.is_null(i) { 0.0 } else { paid.value(i) };
            subjects[s].sums[w][k] += v;
            if CATEGORIES[..6].contains(&cat.value(i)) {
                subjects[s].sums[w][0] += v;
            }
        }
    }
    // Eligible months per window, from the Medicaid spans.
    let spans_sql = "SELECT e.member_id, e.start_date, coalesce(e.end_date, DATE '2200-12-31') \
         FROM enrollment e JOIN hhq_cost_windows w ON e.member_id = w.member_id \
         WHERE e.span_type = 'medicaid'";
    let mut spans: BTreeMap<usize, Vec<(NaiveDate, NaiveDate)>> = BTreeMap::new();
    for b in engine.collect_for(spans_sql, "eligible months").await? {
        let ids = strings(b.column(0))?;
        let s = cast(b.column(1), &DataType::Date32)?;
        let t = cast(b.column(2), &DataType::Date32)?;
        let (s, t) = (
            s.as_primitive::<Date32Type>(),
            t.as_primitive::<Date32Type>(),
        );
        for i in 0..b.num_rows() {
            if let Some(&k) = by_id.get(ids.value(i)) {
                spans.entry(k).or_default().push((
                    engine.result_date(s.value(i), "start_date", "eligible months")?,
                    engine.result_date(t.value(i), "end_date", "eligible months")?,
                ));
            }
        }
    }
    ctx.deregister_table("hhq_cost_windows")?;
    for (k, list) in spans {
        let s = &mut subjects[k];
        for m in 0..24u32 {
            let first = s.index - Months::new(12) + Months::new(m);
            let last = first + Months::new(1) - chrono::Days::new(1);
            if list.iter().any(|(a, b)| *a <= last && *b >= first) {
                s.months[usize::from(m >= 12)] += 1;
            }
        }
    }
    let mut too_few = [0, 0];
    subjects.retain(|s| {
        let ok = s.months.iter().all(|m| *m >= MIN_MONTHS);
        if !ok {
            too_few[usize::from(!s.enrolled)] += 1;
        }
        ok
    });
    Ok(Study {
        subjects,
        too_few,
        as_of,
    })
}

/// A report's cost-of-care figures.
#[derive(Debug, Clone)]
pub struct ForReport {
    pub intake: Period,
    pub as_of: NaiveDate,
    /// Every stratum's estimates and whether each is hidden.
    pub estimates: Vec<(Estimate, bool)>,
}

/// The cost-of-care comparison a report shows: the latest intake year the data (`first` to
/// `last`) cover, over every member of `engine`, published for `audience`. `Err` says why there
/// is none (no target-population definitions, data too short, nobody enrolled in the intake).
pub async fn for_report(
    engine: &crate::engine::Engine,
    cohorts: &[crate::cohort::Definition],
    first: NaiveDate,
    last: NaiveDate,
    audience: &Audience,
) -> Result<std::result::Result<ForReport, String>> {
    let cohorts: Vec<crate::cohort::Definition> = cohorts
        .iter()
        .filter(|d| matches!(d, crate::cohort::Definition::Cohort(_)))
        .cloned()
        .collect();
    if cohorts.is_empty() {
        return Ok(Err(
            "no target-population definitions to draw a comparison group from".into(),
        ));
    }
    let intake = match intake_within(None, first, last) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let s = match study(engine, &cohorts, &intake).await {
        Ok(s) => s,
        Err(Error::Usage(why)) => return Ok(Err(why)),
        Err(e) => return Err(e),
    };
    Ok(Ok(ForReport {
        intake,
        as_of: s.as_of,
        estimates: published(&s.subjects, audience, &intake),
    }))
}

/// The method, as every run states it.
pub fn method_text(
    intake: &Period,
    as_of: NaiveDate,
    cohorts: &[crate::cohort::Definition],
) -> String {
    format!(
        "Cost of care before and after Health Home enrolment (hhq cost)\n\n\
         Enrollees: members whose first Health Home span in the data starts from {} to {}; the \
         index month is that span's month. Pre: the 12 months before the index month. Post: the \
         index month and the 11 after.\n\
         Comparison: members never assigned to a Health Home in the data who qualify for a \
         target population ({}) on {as_of}, each given a pseudo-index month drawn from the \
         enrollees' index months by a digest of the member id.\n\
         A member counts with at least {MIN_MONTHS} Medicaid-eligible months in each window; its \
         figure in a window is its paid dollars on final claims (by date of service) over its \
         eligible months, or its ED visits and acute admissions per 1,000 eligible months.\n\
         Difference in differences: the enrollees' mean change (post less pre) less the \
         comparison members' mean change; 95% interval: ± 1.96 × Welch's standard error of that \
         difference. Categories: inpatient; ED (an outpatient or professional claim with an ED \
         revenue code or procedure); outpatient; professional; pharmacy; long-term care; the \
         Health Home payment (S0281), which is not in the total of care.\n\
         Not adjusted for who chooses to enrol: the comparison group is unmatched beyond \
         qualifying, and regression to the mean after a costly year can look like a saving.\n\
         Suppression: a stratum whose enrollees or comparison members are 1 to 10, or could be \
         worked out from the other strata, shows DS in every figure.\n",
        intake.start,
        intake.end,
        cohorts
            .iter()
            .map(|c| c.id().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(enrolled: bool, pre: f64, post: f64) -> Subject {
        let mut sums = [[0.0; 10]; 2];
        sums[0][0] = pre * 12.0;
        sums[1][0] = post * 12.0;
        Subject {
            member_id: format!("{enrolled}{pre}{post}"),
            enrolled,
            index: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
            mco: None,
            hhp: None,
            months: [12, 12],
            sums,
        }
    }

    #[test]
    fn the_estimate_is_the_enrollees_change_less_the_comparison_change() {
        // Enrollees: 1,000 → 800 and 1,200 → 900 PMPM (changes −200, −300, mean −250).
        // Comparison: 1,000 → 950 and 1,100 → 1,100 (changes −50, 0, mean −25). DiD = −225.
        let t = [subject(true, 1000.0, 800.0), subject(true, 1200.0, 900.0)];
        let c = [
            subject(false, 1000.0, 950.0),
            subject(false, 1100.0, 1100.0),
        ];
        let tr: Vec<&Subject> = t.iter().collect();
        let cr: Vec<&Subject> = c.iter().collect();
        let e = &estimates(Grouping::Total, "total", &tr, &cr)[0];
        assert_eq!(e.figure, "total_of_care");
        assert_eq!(e.means, [[1100.0, 850.0], [1050.0, 1025.0]]);
        assert!((e.did + 225.0).abs() < 1e-9);
        // Variances of the changes: 5,000 and 1,250; SE = sqrt(5000/2 + 1250/2) = 55.90.
        let (lo, hi) = e.interval.unwrap();
        assert!((hi - lo - 2.0 * 1.96 * 3125f64.sqrt()).abs() < 1e-6);
        // One member in a group has no interval.
        let e = &estimates(Grouping::Total, "total", &tr[..1], &cr)[0];
        assert!(e.interval.is_none());
    }
}
