//! What `hhq cohort` writes: the member lists an MCO works from, a partner's worklist sorted by
//! need, the evidence behind every line, the rules as run, and a published summary under CMS
//! small-cell suppression. Every list holds only the audience's members; ids may be
//! pseudonymised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::{CohortRun, Definition, Member, Threshold};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};

use crate::definitions::Definitions;

use crate::error::{Error, Result};
use crate::measure::{Stratifier, Unit};
use crate::privacy::Audience;
use crate::privacy::Privacy;
use crate::results::{Grouping, ResultRow};
use crate::suppress::suppress;

/// The lists a member can be on.
pub const LISTS: [&str; 4] = [
    "not_enrolled",
    "no_longer_qualify",
    "both_populations",
    "worklist",
];

/// Whether a member belongs to the audience: its MCO, or its partner, on the as-of date.
pub fn in_scope(m: &Member, scope: &Audience) -> bool {
    match scope {
        Audience::State => true,
        Audience::Mco(id) => m.mco.as_deref() == Some(id.as_str()),
        Audience::Hhp(id) => m.hhp.as_deref() == Some(id.as_str()),
    }
}

/// The lists a member is on (of [`LISTS`]).
pub fn lists_of(run: &CohortRun, m: &Member) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !m.enrolled() && !m.qualifies.is_empty() {
        out.push("not_enrolled");
    }
    if let Some(p) = &m.population
        && let Some(c) = run.cohort_of(p)
        && !m.qualifies.contains(&c.id)
    {
        out.push("no_longer_qualify");
    }
    if m.qualifies.len() >= 2 {
        out.push("both_populations");
    }
    if m.enrolled() && run.flag_set().is_some() {
        out.push("worklist");
    }
    out
}

/// The (member, definition, criterion) whose evidence backs an audience's lists: the met
/// criteria of the cohorts a member qualifies for (not enrolled, both populations), every
/// criterion found of the enrolled population's cohort (no longer qualifying: what is there and
/// what falls short), and the raised flags (worklist).
pub fn wanted(run: &CohortRun, scope: &Audience) -> Vec<(String, String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for m in run.members.iter().filter(|m| in_scope(m, scope)) {
        let lists = lists_of(run, m);
        let mut add = |d: &Definition, pick: &dyn Fn(&super::Criterion) -> bool| {
            for c in d.criteria() {
                if m.hit(d.id(), &c.name.value).n > 0 && pick(c) {
                    out.insert((
                        m.member_id.clone(),
                        d.id().to_string(),
                        c.name.value.clone(),
                    ));
                }
            }
        };
        for d in &run.definitions {
            match d {
                Definition::Cohort(c) => {
                    let qualifying = (lists.contains(&"not_enrolled")
                        || lists.contains(&"both_populations"))
                        && m.qualifies.contains(&c.id);
                    if qualifying {
                        add(d, &|x| x.threshold.met(m.hit(d.id(), &x.name.value).n));
                    }
                    if lists.contains(&"no_longer_qualify")
                        && m.population.as_deref() == Some(c.population.as_str())
                    {
                        add(d, &|_| true);
                    }
                }
                Definition::Flags(_) => {
                    if lists.contains(&"worklist") {
                        add(d, &|x| m.flags.contains(&x.name.value));
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// What one criterion found for a member, in words, with its threshold so a line reads alone:
/// `smi_primary_dx [at least 1 in 12 months]: 2 (C1 2025-01-05 F209; C7 2025-06-01 F209)`;
/// `, not met` when it falls short; for one met by an absence, the last row ever seen:
/// `no_recent_contact [none in 60 days]: none; the last one 2025-07-01`.
fn found(m: &Member, def: &Definition, c: &super::Criterion) -> String {
    let hit = m.hit(def.id(), &c.name.value);
    let lookback = c.lookback.unwrap_or(def.lookback());
    let mut text = format!(
        "{} [{} in {}]: ",
        c.name.value,
        c.threshold.describe(),
        lookback.describe()
    );
    if hit.n == 0 {
        text.push_str("none");
    } else {
        text.push_str(&hit.n.to_string());
        let shown: Vec<String> = hit
            .shown
            .iter()
            .map(|e| match &e.code {
                Some(code) => format!("{} {} {code}", e.id, e.date),
                None => format!("{} {}", e.id, e.date),
            })
            .collect();
        let more = hit.n.saturating_sub(shown.len() as u64);
        if !shown.is_empty() {
            text.push_str(&format!(" ({}", shown.join("; ")));
            if more > 0 {
                text.push_str(&format!("; {more} more"));
            }
            text.push(')');
        }
    }
    if !c.threshold.met(hit.n) {
        text.push_str(", not met");
    } else if matches!(c.threshold, Threshold::FewerThan(_)) {
        text.push_str(&match hit.last_seen {
            Some(d) => format!("; the last one {d}"),
            None => "; none on record".into(),
        });
    }
    text
}

/// The criteria of `def` the member has evidence for (and, for absences, those met), joined.
fn findings(m: &Member, def: &Definition, only_met: bool) -> String {
    let text = def
        .criteria()
        .iter()
        .filter(|c| {
            let n = m.hit(def.id(), &c.name.value).n;
            let met = c.threshold.met(n);
            match c.threshold {
                Threshold::AtLeast(_) => n > 0 && (met || !only_met),
                Threshold::FewerThan(_) => met,
            }
        })
        .map(|c| found(m, def, c))
        .collect::<Vec<_>>()
        .join(" | ");
    if text.is_empty() {
        format!(
            "no evidence in the look-back ({})",
            def.lookback().describe()
        )
    } else {
        text
    }
}

/// The met criteria of each cohort the member qualifies for: `SMI: … || CC: …`.
fn qualifying_evidence(m: &Member, cohorts: &[&Definition]) -> String {
    cohorts
        .iter()
        .filter(|d| m.qualifies.iter().any(|q| q == d.id()))
        .map(|d| format!("{}: {}", d.id(), findings(m, d, true)))
        .collect::<Vec<_>>()
        .join(" || ")
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn opt_date(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// The files of a cohort run for an audience, by relative path.
/// `evidence`: what [`wanted`] names, from [`super::evidence`].
pub fn files(
    run: &CohortRun,
    privacy: &Privacy,
    evidence: &RecordBatch,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let scope = &privacy.audience;
    let id = |m: &Member| match &privacy.pseudonymizer {
        Some(p) => p.pseudonym(&m.member_id),
        None => m.member_id.clone(),
    };
    // Each member's lists, decided once.
    let members: Vec<(&Member, Vec<&str>)> = run
        .members
        .iter()
        .filter(|m| in_scope(m, scope))
        .map(|m| (m, lists_of(run, m)))
        .collect();
    let on = |list: &'static str| {
        members
            .iter()
            .filter(move |(_, l)| l.contains(&list))
            .map(|(m, _)| *m)
    };
    let cohort_defs: Vec<&Definition> = run
        .definitions
        .iter()
        .filter(|d| matches!(d, Definition::Cohort(_)))
        .collect();
    let mut out: Vec<(PathBuf, Vec<u8>)> = Vec::new();

    // Qualifying, not in a Health Home: an MCO's outreach list (a partner has none of these).
    if !matches!(scope, Audience::Hhp(_)) {
        let mut rows: Vec<Vec<String>> = on("not_enrolled")
            .map(|m| {
                vec![
                    m.mco.clone().unwrap_or_else(|| "FFS".into()),
                    id(m),
                    m.qualifies.join(";"),
                    opt_date(m.opted_out_on),
                    qualifying_evidence(m, &cohort_defs),
                ]
            })
            .collect();
        rows.sort();
        out.push((
            "not_enrolled.csv".into(),
            crate::output::csv_bytes(
                &["mco", "member_id", "qualifies", "opted_out_on", "evidence"],
                &rows,
            )?,
        ));
    }

    // Enrolled, no longer meeting their population's rule.
    let mut rows: Vec<Vec<String>> = on("no_longer_qualify")
        .map(|m| {
            let p = m.population.as_deref().unwrap_or_default();
            let c = run.cohort_of(p).expect("on the list only with a cohort");
            let def = run
                .definitions
                .iter()
                .find(|d| d.id() == c.id)
                .expect("its own definition");
            vec![
                m.mco.clone().unwrap_or_else(|| "FFS".into()),
                id(m),
                opt(&m.hhp),
                p.to_string(),
                opt_date(m.hh_since),
                c.qualifies.describe(),
                findings(m, def, false),
                m.qualifies.join(";"),
            ]
        })
        .collect();
    rows.sort();
    out.push((
        "no_longer_qualify.csv".into(),
        crate::output::csv_bytes(
            &[
                "mco",
                "member_id",
                "hhp",
                "population",
                "hh_since",
                "rule",
                "found",
                "qualifies_instead",
            ],
            &rows,
        )?,
    ));

    // Qualifying for two populations: the member must choose one Health Home type.
    let mut rows: Vec<Vec<String>> = on("both_populations")
        .map(|m| {
            vec![
                m.mco.clone().unwrap_or_else(|| "FFS".into()),
                id(m),
                opt(&m.hhp),
                opt(&m.population),
                m.qualifies.join(";"),
                qualifying_evidence(m, &cohort_defs),
            ]
        })
        .collect();
    rows.sort();
    out.push((
        "both_populations.csv".into(),
        crate::output::csv_bytes(
            &[
                "mco",
                "member_id",
                "hhp",
                "enrolled_population",
                "qualifies",
                "evidence",
            ],
            &rows,
        )?,
    ));

    // The worklist: enrolled members, most in need first.
    if let Some(f) = run.flag_set() {
        let def = run
            .definitions
            .iter()
            .find(|d| d.id() == f.id)
            .expect("its own definition");
        let mut keyed: Vec<((bool, usize, u64), Vec<String>)> = on("worklist")
            .map(|m| {
                let counts: Vec<u64> = f
                    .flags
                    .iter()
                    .map(|c| m.hit(&f.id, &c.name.value).n)
                    .collect();
                // Events behind the raised "at least" flags: among equals, more use first.
                let events: u64 = f
                    .flags
                    .iter()
                    .zip(&counts)
                    .filter(|(c, n)| {
                        matches!(c.threshold, Threshold::AtLeast(_)) && c.threshold.met(**n)
                    })
                    .map(|(_, n)| n)
                    .sum();
                let mut row = vec![
                    id(m),
                    m.mco.clone().unwrap_or_else(|| "FFS".into()),
                    opt(&m.hhp),
                    opt(&m.population),
                    opt_date(m.hh_since),
                    m.high_risk.to_string(),
                    m.flags.len().to_string(),
                    m.flags.join(";"),
                ];
                row.extend(counts.iter().map(u64::to_string));
                row.push(findings(m, def, true));
                ((m.high_risk, m.flags.len(), events), row)
            })
            .collect();
        keyed.sort_by(|(ka, ra), (kb, rb)| kb.cmp(ka).then_with(|| ra[0].cmp(&rb[0])));
        let mut header: Vec<String> = [
            "rank",
            "member_id",
            "mco",
            "hhp",
            "population",
            "hh_since",
            "high_risk",
            "flags_raised",
            "flags",
        ]
        .map(String::from)
        .to_vec();
        header.extend(f.flags.iter().map(|c| format!("{}_count", c.name.value)));
        header.push("evidence".into());
        let rows: Vec<Vec<String>> = keyed
            .into_iter()
            .enumerate()
            .map(|(i, (_, row))| {
                let mut r = vec![(i + 1).to_string()];
                r.extend(row);
                r
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        out.push((
            "worklist.csv".into(),
            crate::output::csv_bytes(&header, &rows)?,
        ));
    }

    // Every piece of evidence behind the lists, written from Arrow as the query sorted it
    // (again by pseudonym when ids are pseudonymised, so the order tells nothing of the ids).
    let evidence = match &privacy.pseudonymizer {
        None => evidence.clone(),
        Some(p) => {
            let named = p.apply(evidence)?;
            let sort: Vec<SortColumn> = (0..5)
                .map(|i| SortColumn {
                    values: named.column(i).clone(),
                    options: None,
                })
                .collect();
            let order = lexsort_to_indices(&sort, None)?;
            take_record_batch(&named, &order)?
        }
    };
    out.push((
        "evidence.csv".into(),
        crate::results::batches_to_csv(evidence.schema(), &[evidence])?,
    ));

    // The rules as run, so a reader can check each line of a list against them.
    let mut rows = Vec::new();
    for d in &run.definitions {
        let (kind, rule) = match d {
            Definition::Cohort(c) => ("cohort", c.qualifies.describe()),
            Definition::Flags(f) => ("risk_flags", f.high_risk.describe()),
        };
        for c in d.criteria() {
            let lb = c.lookback.unwrap_or(d.lookback());
            rows.push(vec![
                d.id().to_string(),
                kind.to_string(),
                c.name.value.clone(),
                c.description.clone().unwrap_or_default().trim().to_string(),
                c.block.value.clone(),
                c.filter
                    .as_ref()
                    .map(|f| f.value.trim().to_string())
                    .unwrap_or_default(),
                c.threshold.describe(),
                lb.start(run.as_of).to_string(),
                run.as_of.to_string(),
                rule.clone(),
            ]);
        }
    }
    out.push((
        "rules.csv".into(),
        crate::output::csv_bytes(
            &[
                "definition",
                "kind",
                "criterion",
                "description",
                "building_block",
                "where",
                "threshold",
                "from",
                "to",
                "rule",
            ],
            &rows,
        )?,
    ));

    out.push((
        "summary.csv".into(),
        crate::suppress::published_csv(&suppress(&summary(run, scope)))?,
    ));
    out.sort();
    Ok(out)
}

/// The counts behind the lists, per definition, as result rows (numerator of a denominator):
/// the total and each MCO (and partner and population, for enrolled members).
pub fn summary(run: &CohortRun, scope: &Audience) -> Vec<ResultRow> {
    let members: Vec<&Member> = run.members.iter().filter(|m| in_scope(m, scope)).collect();
    let mut rows = Vec::new();
    let mco = |m: &Member| m.mco.clone().unwrap_or_else(|| "FFS".into());
    let hhp = |m: &Member| m.hhp.clone().unwrap_or_else(|| "none".into());
    let pop = |m: &Member| m.population.clone().unwrap_or_else(|| "none".into());
    type By<'a> = (Stratifier, &'a dyn Fn(&Member) -> String);
    let mut add = |measure: &str,
                   start: NaiveDate,
                   component: &str,
                   strata: &[By],
                   den: &dyn Fn(&Member) -> bool,
                   num: &dyn Fn(&Member) -> bool| {
        let mut groups: BTreeMap<(usize, String), (f64, f64)> = BTreeMap::new();
        for m in members.iter().filter(|m| den(m)) {
            let n = if num(m) { 1.0 } else { 0.0 };
            let e = groups.entry((0, "total".into())).or_default();
            e.0 += n;
            e.1 += 1.0;
            for (i, (_, f)) in strata.iter().enumerate() {
                let e = groups.entry((i + 1, f(m))).or_default();
                e.0 += n;
                e.1 += 1.0;
            }
        }
        if groups.is_empty() {
            groups.insert((0, "total".into()), (0.0, 0.0));
        }
        for ((i, stratum), (n, d)) in groups {
            rows.push(ResultRow {
                measure: measure.to_string(),
                component: component.to_string(),
                period_start: start,
                period_end: run.as_of,
                stratifier: if i == 0 {
                    Grouping::Total
                } else {
                    Grouping::By(strata[i - 1].0)
                },
                stratum,
                numerator: n,
                denominator: d,
                rate: (d > 0.0).then(|| n / d * 100.0),
                unit: Unit::Percent,
                spread: None,
            });
        }
    };
    for c in run.cohorts() {
        let start = c.lookback.start(run.as_of);
        let q = |m: &Member| m.qualifies.contains(&c.id);
        add(
            &c.id,
            start,
            "qualifying",
            &[(Stratifier::Mco, &mco)],
            &|_| true,
            &q,
        );
        add(
            &c.id,
            start,
            "qualifying_not_enrolled",
            &[(Stratifier::Mco, &mco)],
            &q,
            &|m| !m.enrolled(),
        );
        add(
            &c.id,
            start,
            "qualifying_both_populations",
            &[(Stratifier::Mco, &mco)],
            &q,
            &|m| m.qualifies.len() >= 2,
        );
        add(
            &c.id,
            start,
            "enrolled_not_qualifying",
            &[(Stratifier::Mco, &mco), (Stratifier::Hhp, &hhp)],
            &|m| m.population.as_deref() == Some(c.population.as_str()),
            &|m| !q(m),
        );
    }
    if let Some(f) = run.flag_set() {
        let start = f.lookback.start(run.as_of);
        let strata: [By; 3] = [
            (Stratifier::Mco, &mco),
            (Stratifier::Hhp, &hhp),
            (Stratifier::Population, &pop),
        ];
        add(
            &f.id,
            start,
            "high_risk",
            &strata,
            &|m| m.enrolled(),
            &|m| m.high_risk,
        );
        for flag in &f.flags {
            let name = flag.name.value.as_str();
            add(&f.id, start, name, &strata, &|m| m.enrolled(), &|m| {
                m.flags.iter().any(|x| x == name)
            });
        }
    }
    rows
}

/// What `hhq cohort` is asked.
#[derive(Debug, Clone)]
pub struct CohortOptions {
    /// The data, the definitions and how the engine computes.
    pub common: crate::execute::Options,
    pub out: PathBuf,
    /// The last day of every look-back (default: the last date with data).
    pub as_of: Option<NaiveDate>,
    pub privacy: Privacy,
}

/// What a cohort run did, for the terminal.
#[derive(Debug, Clone)]
pub struct CohortReport {
    pub as_of: NaiveDate,
    /// Rows of the extracts set aside by the row rules (`data_quality_rows.csv`).
    pub rows_set_aside: u64,
    /// (list, members on it) for the audience.
    pub counts: Vec<(&'static str, usize)>,
    pub members: usize,
    pub not_eligible_with_evidence: usize,
    pub written: Vec<PathBuf>,
    /// What the terminal warns of, counts only: rows set aside by rule, dates passed over.
    pub warnings: Vec<String>,
}

impl CohortReport {
    /// What `hhq cohort` tells: its warnings, then [`CohortReport::text`].
    pub fn told(&self, audience: &Audience, out: &Path) -> crate::output::Told {
        crate::output::Told {
            before: self
                .warnings
                .iter()
                .map(|w| format!("warning: {w}"))
                .collect(),
            out: self.text(audience, out),
            ..Default::default()
        }
    }

    /// What `hhq cohort` prints: the members eligible for `audience`, each list's count, rows
    /// set aside and members with evidence on no list, and what was written to `out`.
    pub fn text(&self, audience: &Audience, out: &Path) -> String {
        let mut text = format!(
            "as of {}: {} members eligible{}\n",
            self.as_of,
            self.members,
            match audience {
                Audience::State => String::new(),
                Audience::Mco(id) => format!(" with MCO {id}"),
                Audience::Hhp(id) => format!(" enrolled with partner {id}"),
            }
        );
        for (list, n) in &self.counts {
            text.push_str(&format!("  {list:<18} {n:>7} members\n"));
        }
        if self.rows_set_aside > 0 {
            text.push_str(&format!(
                "  {} rows of the extracts set aside by the data-quality row rules \
                 (data_quality_rows.csv)\n",
                self.rows_set_aside
            ));
        }
        if self.not_eligible_with_evidence > 0 {
            text.push_str(&format!(
                "  {} members with evidence were not eligible for Medicaid on {} and are on no \
                 list\n",
                self.not_eligible_with_evidence, self.as_of
            ));
        }
        text.push_str(&format!(
            "wrote {} files to {}\n",
            self.written.len(),
            out.display()
        ));
        text
    }
}

/// `hhq cohort`: run the definitions of `<measures>/cohorts/` and write the lists, atomically.
pub async fn command(opts: &CohortOptions) -> Result<CohortReport> {
    let defs = Definitions::load(&opts.common.measures, &opts.common.queries)?;
    let definitions = defs.cohorts.clone();
    if definitions.is_empty() {
        return Err(Error::Usage(format!(
            "no cohort or risk-flag definitions in {}",
            opts.common.measures.join("cohorts").display()
        )));
    }
    crate::output::check_replaceable(&opts.out, "cohort")?;
    let engine = crate::execute::open_loaded(&opts.common, &defs, &opts.privacy.audience).await?;
    // Rows set aside by the row rules are counted before anything is read, and written out:
    // nothing is dropped silently. Extracts with none are then read without the rules.
    let rows = crate::quality::count_rows(engine.context(), &engine.extracts).await?;
    engine.skip_row_rules(&rows.clean()).await?;
    let mut set_aside = vec![vec!["extract".to_string(), "rows".into(), "what".into()]];
    for e in rows.extracts() {
        set_aside.push(vec![e.name.into(), e.read.to_string(), "read".into()]);
        for (rule, n) in &e.set_aside {
            set_aside.push(vec![
                e.name.into(),
                n.to_string(),
                format!("set aside: {rule}"),
            ]);
        }
        set_aside.push(vec![e.name.into(), e.used.to_string(), "used".into()]);
    }
    let rows_set_aside: u64 = rows.extracts().iter().map(|e| e.read - e.used).sum();
    let mut warnings = crate::quality::set_aside_lines(rows.extracts());
    let as_of = match opts.as_of {
        Some(d) => d,
        None => {
            // The last date with data, up to today: a line dated 9999-12-31 must not move
            // every look-back into the future.
            let today = chrono::Utc::now().date_naive();
            let later = engine.dated_after(today).await?;
            if later > 0 {
                warnings.push(format!(
                    "{later} claim lines and contacts dated after today ({today}) passed over \
                     in choosing the as-of date (the last date with data); give --as-of"
                ));
            }
            engine.data_cutoff(today).await?.ok_or_else(|| {
                Error::Usage("the data hold no dated claim or contact: give --as-of".into())
            })?
        }
    };
    // Passes over member ranges, as `hhq run` makes them: memory follows the pass. Every rule
    // is about one member, so the passes' members and evidence, in id order, are the whole.
    let plan = crate::execute::plan(
        &engine,
        &[],
        &std::collections::BTreeSet::new(),
        opts.common.members_per_pass,
    )
    .await?;
    let mut executor = crate::execute::Executor::start(&engine, &plan, &mut ()).await?;
    let mut parts: Vec<CohortRun> = Vec::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    while executor.next_pass(&mut ()).await?.is_some() {
        let mut part = super::run(&engine, &definitions, as_of).await?;
        let wanted = wanted(&part, &opts.privacy.audience);
        batches.push(super::evidence(&engine, &mut part, &wanted).await?);
        parts.push(part);
    }
    let evidence = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
    let mut run = parts.pop().expect("one pass at least");
    for part in parts.iter_mut().rev() {
        run.not_eligible_with_evidence += part.not_eligible_with_evidence;
        let later = std::mem::take(&mut run.members);
        run.members = std::mem::take(&mut part.members);
        run.members.extend(later);
    }
    let mut files = files(&run, &opts.privacy, &evidence)?;
    files.push((
        "data_quality_rows.csv".into(),
        crate::output::csv_bytes(&["extract", "rows", "what"], &set_aside[1..])?,
    ));
    files.sort();
    let mut staged = crate::output::Staged::begin(&opts.out, "cohort")?;
    for (rel, bytes) in &files {
        staged.write(rel, bytes)?;
    }
    let mut defs_json = Vec::new();
    for d in &definitions {
        defs_json.push(serde_json::json!({
            "id": d.id(),
            "file": d.path().display().to_string(),
            "sha256": crate::digest::file_sha256(d.path())?,
        }));
    }
    let manifest = serde_json::to_string_pretty(&serde_json::json!({
        "command": "cohort",
        "as_of": as_of.to_string(),
        "options": {
            "data": opts.common.data.display().to_string(),
            "measures": crate::library::shown(&opts.common.measures),
            "queries": crate::library::shown(&opts.common.queries),
            "audience": match &opts.privacy.audience {
                Audience::State => None,
                Audience::Mco(id) => Some(format!("mco {id}")),
                Audience::Hhp(id) => Some(format!("hhp {id}")),
            },
            "pseudonymised": opts.privacy.pseudonymizer.is_some(),
        },
        "definitions": defs_json,
    }))
    .map_err(|e| Error::Usage(format!("writing the manifest: {e}")))?;
    let written = staged
        .publish(|root, names| crate::manifest::with_outputs(&manifest, names, Some(root)))?;
    let scoped: Vec<&Member> = run
        .members
        .iter()
        .filter(|m| in_scope(m, &opts.privacy.audience))
        .collect();
    let counts = LISTS
        .iter()
        .filter(|l| !(**l == "not_enrolled" && matches!(opts.privacy.audience, Audience::Hhp(_))))
        .map(|l| {
            (
                *l,
                scoped
                    .iter()
                    .filter(|m| lists_of(&run, m).contains(l))
                    .count(),
            )
        })
        .collect();
    Ok(CohortReport {
        rows_set_aside,
        as_of,
        counts,
        members: scoped.len(),
        not_eligible_with_evidence: run.not_eligible_with_evidence,
        written,
        warnings,
    })
}
