//! Reports: what people read. The terminal tables of `hhq run`, `hhq explain` and `hhq test`, and
//! the published reports of `hhq report state|mco|hhp`:
//!
//! ```text
//! results (many periods, scoped) ─ build ─▶ doc::Document ─┬─ html  ─▶ report.html (inline SVG)
//!        suppress · stats · chart ─────────┘              ├─ pdf   ─▶ report.pdf (typst)
//!                                                         └─ tables ─▶ tables/*.csv|parquet
//! ```
//!
//! A [`doc::Document`] is the report's content, already suppressed: renderers only lay it out,
//! so the HTML, the PDF and the tables cannot disagree.

pub mod doc;
mod explain;
mod finance;
pub mod pdf;
pub mod stats;
pub mod terminal;

pub use explain::explain_text;
pub use terminal::{
    RunFormat, deck_table, deck_tally, display_rate, results_text, table, totals_table,
};
pub mod build;
pub mod gather;
pub mod html;
pub mod tables;
pub mod targets;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::Staged;
use crate::privacy::Audience;
pub use gather::Quarter;

/// What `hhq report` is asked for.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The data, the definitions and how the engine computes.
    pub common: crate::execute::Options,
    /// Measure ids to report; empty reports all.
    pub only: Vec<String>,
    pub audience: Audience,
    /// `None`: the latest quarter with CMS's 90 days of run-out.
    pub quarter: Option<Quarter>,
    pub out: PathBuf,
    /// Lay out the PDF too.
    pub pdf: bool,
    /// The data-quality policy and as-of date the gate uses.
    pub quality: crate::quality::QualityOptions,
    /// Who publishes: the programme's and the state's names for the title and cover.
    pub publisher: Publisher,
    /// Targets to measure the rates against (`--targets FILE`).
    pub targets: Option<PathBuf>,
}

/// The programme and state a report is published for (`--programme`, `--state`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publisher {
    /// "KanCare Health Homes"; without it, "Health Home programme".
    pub programme: Option<String>,
    /// "Kansas".
    pub state: Option<String>,
}

/// What a report run wrote, without member-level data.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub quarter: Quarter,
    pub files: Vec<PathBuf>,
    pub measures: usize,
    /// Charts drawn (a figure with nothing to draw is a line of text, not counted).
    pub figures: usize,
    pub tables: usize,
    /// Events (discharges, ED visits) in a partner's worklist.
    pub open_gaps: usize,
    /// Suppressed cells across the report's tables.
    pub suppressed_cells: usize,
    /// The data-quality caveat on the cover, if checks failed and the policy allowed publishing.
    pub caveat: Option<String>,
    /// What the terminal warns of (counts only): rows set aside by rule, checks over their
    /// thresholds, components not reported, CMS consistency checks that fail.
    pub warnings: Vec<String>,
}

/// `hhq report`: [`write`], and what to tell: the caveat and warnings, then what the report
/// holds and where it was written.
pub async fn command(opts: &ReportOptions) -> Result<crate::output::Told> {
    let s = write(opts).await?;
    let mut after = Vec::new();
    if let Some(caveat) = &s.caveat {
        after.push(format!("warning: {caveat} (printed on the report's cover)"));
    }
    after.extend(s.warnings.iter().map(|w| format!("warning: {w}")));
    let open = match opts.audience {
        Audience::Hhp(_) => format!(
            ", {} {} with a follow-up open",
            s.open_gaps,
            if s.open_gaps == 1 { "event" } else { "events" }
        ),
        _ => String::new(),
    };
    after.push(format!(
        "report for the year ending {}: {} measures, {} tables, {} charts, {} suppressed cells{open}",
        s.quarter, s.measures, s.tables, s.figures, s.suppressed_cells,
    ));
    // Within its bound once the report is written: this report's entries are the newest.
    if let Some(cache) = &opts.common.cache {
        cache.trim()?;
        after.extend(cache.stats().line());
    }
    let out = opts.out.display();
    after.push(format!(
        "wrote {out}/report.html{}, {out}/manifest.json, {out}/tables/ and {out}/charts/ ({} files)",
        match opts.pdf {
            true => format!(", {out}/report.pdf"),
            false => String::new(),
        },
        s.files.len()
    ));
    Ok(crate::output::Told {
        after,
        ..Default::default()
    })
}

/// Compute, lay out and write a report into `opts.out`: `report.html`, `report.pdf`,
/// `tables/*.csv|parquet`, `charts/*.svg|png` and `manifest.json`. Everything is rendered in
/// memory first, and the directory is replaced whole, so a failure leaves the previous report.
pub async fn write(opts: &ReportOptions) -> Result<ReportSummary> {
    // Refuse a directory hhq may not replace before the work, not after.
    crate::output::check_replaceable(&opts.out, "report")?;
    let (defs, engine) = crate::execute::open(&opts.common, &Audience::State).await?;
    // The gate first: a refused report computes nothing and writes nothing.
    let (quality, caveat) =
        crate::pipeline::quality_gate(&engine, &opts.quality, &opts.common.measures).await?;
    let cutoff = engine.data_cutoff(quality.as_of).await?.ok_or_else(|| {
        Error::Usage(format!(
            "{}: no dated claims or contacts to report on",
            opts.common.data.display()
        ))
    })?;
    let quarter = opts
        .quarter
        .unwrap_or_else(|| Quarter::latest_final(cutoff));
    let selected = crate::pipeline::select(&defs, &opts.only, &opts.common.measures)?;
    // A bad targets file fails before anything is computed.
    let targets = match &opts.targets {
        Some(path) => targets::load(
            path,
            &defs.measures,
            &selected.iter().map(|m| (*m).clone()).collect::<Vec<_>>(),
        )?,
        None => Vec::new(),
    };
    // An MCO's or partner's figures are computed in a session holding its members only; the
    // state's session gives only the state's and MCOs' aggregates, published suppressed.
    let own = match opts.audience {
        Audience::State => None,
        _ => Some(crate::execute::open_loaded(&opts.common, &defs, &opts.audience).await?),
    };
    let bar = crate::pipeline::progress(selected.len() as u64 + 1);
    let (measure_files, block_files, value_set_files) =
        crate::pipeline::definition_files(&defs, &selected, &opts.common.measures)?;
    let measures: Vec<_> = selected.into_iter().cloned().collect();
    let mut gathered = gather::gather(
        &engine,
        own.as_ref(),
        measures.clone(),
        opts.audience.clone(),
        quarter,
        cutoff,
        &opts.quality,
        opts.common.members_per_pass,
        &bar,
    )
    .await?;
    gathered.quality = Some(quality);
    gathered.caveat = caveat;
    gathered.publisher = opts.publisher.clone();
    gathered.targets = targets;
    bar.set_message("payments");
    gathered.finance = crate::finance::files::for_report(
        &engine,
        &opts.common.measures,
        &gathered.current,
        &opts.audience,
        opts.common.members_per_pass,
    )
    .await?;
    if gathered.finance.is_some() && !matches!(opts.audience, Audience::Hhp(_)) {
        bar.set_message("cost of care");
        if let Some(first) = engine.data_first_day().await? {
            gathered.cost = Some(
                crate::finance::cost::for_report(
                    &engine,
                    &defs.cohorts,
                    first,
                    cutoff,
                    &opts.audience,
                )
                .await?,
            );
        }
    }

    bar.set_message("laying out");
    // The inputs' hashes (extracts included) are computed once: for the appendix here, and for
    // manifest.json with the outputs added once they are written.
    let inputs_manifest = crate::manifest::render(&crate::manifest::Inputs {
        command: match opts.audience {
            Audience::State => "report state",
            Audience::Mco(_) => "report mco",
            Audience::Hhp(_) => "report hhp",
        },
        period: gathered.current,
        data_cutoff: Some(cutoff),
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
            ("audience", serde_json::json!(opts.audience.id())),
            ("quarter", serde_json::json!(quarter.to_string())),
            ("only", serde_json::json!(opts.only)),
            ("pdf", serde_json::json!(opts.pdf)),
            ("programme", serde_json::json!(opts.publisher.programme)),
            ("state", serde_json::json!(opts.publisher.state)),
            (
                "targets",
                match &opts.targets {
                    Some(p) => serde_json::json!({
                        "file": p.display().to_string(),
                        "sha256": crate::digest::file_sha256(p)?,
                    }),
                    None => serde_json::Value::Null,
                },
            ),
        ]
        .into_iter()
        .chain(crate::coverage::stated(&opts.quality))
        .collect(),
        measures: measure_files,
        blocks: block_files,
        value_set_files,
        extracts: &gathered.extracts,
        risk_weights: opts.common.risk_weights.clone(),
        quality: gathered.quality.as_ref(),
        outputs: Vec::new(),
    })?;
    let doc = build::document(&gathered, &inputs_manifest)?;

    // Everything in memory before the first write; paths relative to the report directory.
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    files.push(("report.html".into(), html::render(&doc)?.into_bytes()));
    if opts.pdf {
        files.push(("report.pdf".into(), pdf::render(&doc)?));
    }
    let tables = doc.tables();
    let mut suppressed_cells = 0;
    for t in &tables {
        suppressed_cells += t
            .rows
            .iter()
            .flatten()
            .filter(|c| matches!(c, doc::Cell::Suppressed { .. }))
            .count();
        let stem = Path::new("tables").join(&t.id);
        files.push((stem.with_extension("csv"), tables::to_csv(t)?));
        files.push((stem.with_extension("parquet"), tables::to_parquet(t)?));
    }
    let figures = doc.figures();
    // A chart with nothing to draw has no files; its table is still written.
    for f in &figures {
        let Some(svg) = &f.svg else { continue };
        let stem = Path::new("charts").join(&f.id);
        files.push((stem.with_extension("svg"), svg.clone().into_bytes()));
        files.push((stem.with_extension("png"), f.png.clone()));
    }
    bar.set_message("writing");
    // The directory is written whole (see `output::Staged`): a failure leaves the previous report
    // as it was, and files of an earlier run this one does not write (a PDF, a measure left out)
    // do not linger.
    let mut staged = Staged::begin(&opts.out, "report")?;
    for (rel, bytes) in &files {
        staged.write(rel, bytes)?;
    }
    let written = staged.publish(|root, names| {
        crate::manifest::with_outputs(&inputs_manifest, names, Some(root))
    })?;
    bar.finish_and_clear();
    Ok(ReportSummary {
        quarter,
        files: written.iter().map(|p| opts.out.join(p)).collect(),
        measures: measures.len(),
        figures: figures.iter().filter(|f| f.svg.is_some()).count(),
        tables: tables.len(),
        open_gaps: gathered.worklist.len(),
        suppressed_cells,
        caveat: gathered.caveat.clone(),
        warnings: warnings(&gathered),
    })
}

/// The report's warnings for the terminal; the report itself shows each in its sections.
fn warnings(g: &gather::Gathered) -> Vec<String> {
    let mut out = g
        .quality
        .as_ref()
        .map(|q| q.warning_lines())
        .unwrap_or_default();
    out.extend(g.notes.iter().cloned());
    let failed = g.checks.iter().filter(|c| !c.passed).count();
    if failed > 0 {
        out.push(format!(
            "CMS checks: {failed} of {} fail (listed in the report)",
            g.checks.len()
        ));
    }
    out
}

/// The default output directory of a report: `out/report-<kind>[-<id>]-<quarter>`.
/// An id that is not a safe file name (a `/`, `..`, more than
/// [`crate::measure::MAX_ID_LEN`] characters) is a usage error, not a path.
pub fn default_out(audience: &Audience, quarter: Option<Quarter>) -> Result<PathBuf> {
    let mut name = format!("report-{}", audience.kind());
    if let Some(id) = audience.id() {
        if id.is_empty()
            || id.len() > crate::measure::MAX_ID_LEN
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Usage(format!(
                "the id {id:?} cannot name the default output directory (at most {} letters, \
                 digits, `-` or `_`): give --out",
                crate::measure::MAX_ID_LEN
            )));
        }
        name.push('-');
        name.push_str(id);
    }
    if let Some(q) = quarter {
        name.push('-');
        name.push_str(&q.to_string());
    }
    Ok(Path::new("out").join(name))
}
