//! `hhq payments`: the ledger computed pass by pass, priced, and written for an audience: the
//! published summary, the member-level ledger and findings, each partner's statement, and a
//! second rate table side by side.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::ledger::{self, Ledger, claim_ref};
use super::rates::{EarningRule, RateTable};
use super::{Layout, MEASURE, earned_months, finding_in_scope, in_scope, price};
use crate::error::{Error, Result};
use crate::period::Period;
use crate::privacy::{Audience, Privacy};
use crate::suppress::{PublishedRow, published_csv};

/// What `hhq payments` is asked.
#[derive(Debug, Clone)]
pub struct PaymentsOptions {
    pub common: crate::execute::Options,
    pub out: PathBuf,
    /// Default: the latest full year of the data.
    pub period: Option<Period>,
    /// The rate table (default: `<measures>/finance/rates.yaml`).
    pub rates: Option<PathBuf>,
    /// A second rate table, priced side by side (`simulation.csv`).
    pub compare: Option<PathBuf>,
    /// The earning rule (default: `<measures>/finance/earning.yaml`).
    pub earning: Option<PathBuf>,
    pub privacy: Privacy,
}

/// A partner's figures for the terminal, as published.
#[derive(Debug, Clone)]
pub struct PartnerLine {
    pub hhp: String,
    pub figures: Vec<(String, String)>,
}

/// What `hhq payments` did.
#[derive(Debug, Clone)]
pub struct PaymentsReport {
    pub period: Period,
    pub rates: String,
    pub compare: Option<String>,
    /// The audience's published figures: the total first, then each partner.
    pub lines: Vec<PartnerLine>,
    /// Findings by kind, for the audience (member-level: in `findings.csv`).
    pub findings: Vec<(super::Kind, usize)>,
    pub written: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

const SHOWN: [(&str, &str); 7] = [
    ("assigned_months", "months"),
    ("earned_months", "earned %"),
    ("billed_months", "billed %"),
    ("state_due", "State due"),
    ("partner_due", "partner due"),
    ("paid", "paid"),
    ("missed", "missed"),
];

impl PaymentsReport {
    pub fn told(&self, out: &Path) -> crate::output::Told {
        crate::output::Told {
            before: self
                .warnings
                .iter()
                .map(|w| format!("warning: {w}"))
                .collect(),
            out: self.text(out),
            ..Default::default()
        }
    }

    /// The table of partners and what was written.
    pub fn text(&self, out: &Path) -> String {
        let mut text = format!(
            "payments {} to {} under {}{}\n",
            self.period.start,
            self.period.end,
            self.rates,
            self.compare
                .as_ref()
                .map(|c| format!(" (compared with {c}: simulation.csv)"))
                .unwrap_or_default()
        );
        text.push_str(&format!("  {:<14}", "partner"));
        for (_, head) in SHOWN {
            text.push_str(&format!(" {head:>13}"));
        }
        text.push('\n');
        for l in &self.lines {
            text.push_str(&format!("  {:<14}", crate::escape::terminal_line(&l.hhp)));
            for (_, v) in &l.figures {
                text.push_str(&format!(" {v:>13}"));
            }
            text.push('\n');
        }
        text.push_str("  (dollars per member-month; DS/SD: suppressed, see summary.csv)\n");
        for (kind, n) in &self.findings {
            text.push_str(&format!("  {:>7} {}\n", n, kind.describe()));
        }
        text.push_str(&format!(
            "wrote {} files to {}\n",
            self.written.len(),
            out.display()
        ));
        text
    }
}

fn shown(p: &PublishedRow) -> String {
    let money = p.row.unit == crate::measure::Unit::DollarsPerMemberMonth;
    match (&p.rate, p.row.unit) {
        (_, crate::measure::Unit::Count) => match p.numerator {
            Ok(x) => format!("{x}"),
            Err(why) => why.marker().into(),
        },
        (Ok(Some(r)), _) if money => format!("${r:.2}"),
        (Ok(Some(r)), _) => format!("{r:.1}"),
        (Ok(None), _) => "-".into(),
        (Err(why), _) => why.marker().into(),
    }
}

/// The earning rule and rate tables an options value names.
pub fn definitions(opts: &PaymentsOptions) -> Result<(EarningRule, RateTable, Option<RateTable>)> {
    let dir = opts.common.measures.join("finance");
    let rule = EarningRule::load(
        &opts
            .earning
            .clone()
            .unwrap_or_else(|| dir.join("earning.yaml")),
    )?;
    let rates = RateTable::load(&opts.rates.clone().unwrap_or_else(|| dir.join("rates.yaml")))?;
    let compare = opts.compare.as_deref().map(RateTable::load).transpose()?;
    if let Some(c) = &compare
        && c.id == rates.id
    {
        return Err(Error::Usage(format!(
            "{} and {} have the same id `{}`: give the compared table an id of its own",
            rates.path.display(),
            c.path.display(),
            c.id
        )));
    }
    Ok((rule, rates, compare))
}

/// Compute the ledger of `period` over every member, pass by pass.
pub async fn compute(
    engine: &crate::engine::Engine,
    rule: &EarningRule,
    tables: &[&RateTable],
    period: &Period,
    members_per_pass: Option<usize>,
) -> Result<Ledger> {
    let queries = ledger::Queries::new(engine, rule, tables, period).await?;
    let sizes = ledger::partner_members(engine, &queries).await?;
    let plan = crate::execute::plan(engine, &[], &BTreeSet::new(), members_per_pass).await?;
    let mut executor = crate::execute::Executor::start(engine, &plan, &mut ()).await?;
    let mut parts = Vec::new();
    while executor.next_pass(&mut ()).await?.is_some() {
        parts.push(ledger::pass(engine, rule, &queries).await?);
    }
    Ok(ledger::merge(parts, sizes))
}

/// `hhq payments`.
pub async fn command(opts: &PaymentsOptions) -> Result<PaymentsReport> {
    let (rule, rates, compare) = definitions(opts)?;
    crate::output::check_replaceable(&opts.out, "payments")?;
    let defs = crate::definitions::Definitions::load(&opts.common.measures, &opts.common.queries)?;
    // Every member: a partner's size tier and the State's row of a member-month are the same
    // whoever asks; the outputs are cut to the audience below.
    let engine = crate::execute::open_loaded(&opts.common, &defs, &Audience::State).await?;
    let rows = crate::quality::count_rows(engine.context(), &engine.extracts).await?;
    engine.skip_row_rules(&rows.clean()).await?;
    let mut warnings = crate::quality::set_aside_lines(rows.extracts());
    crate::execute::keep_for_run(&engine, None).await?;
    let today = chrono::Utc::now().date_naive();
    let cutoff = engine.data_cutoff(today).await?;
    let first = engine.data_first_day().await?;
    let (period, caveat) = match cutoff {
        Some(last) => {
            let data = crate::coverage::Coverage { first, last };
            let asked = match opts.period {
                Some(p) => p,
                // The latest full calendar year of the data, as `hhq run` chooses it.
                None => Period::latest_full_year(last),
            };
            let policy = crate::quality::Policy::resolve(None, &opts.common.measures)?;
            crate::coverage::period(asked, data, &policy)?
        }
        None => {
            return Err(Error::Usage(format!(
                "{}: the data hold no dated claim or contact to pay for",
                opts.common.data.display()
            )));
        }
    };
    warnings.extend(caveat);
    let mut tables = vec![&rates];
    tables.extend(compare.as_ref());
    if let Some(first) = first
        && tables.iter().any(|t| t.uses(super::TierBy::Conditions))
    {
        let from = period
            .start
            .checked_sub_months(chrono::Months::new(rates.lookback_months))
            .unwrap_or(first);
        if first > from {
            warnings.push(format!(
                "the condition count looks back to {from}, but the claims begin on {first}: \
                 acuity tiers see fewer months of claims than the rate table asks"
            ));
        }
    }
    let ledger = compute(
        &engine,
        &rule,
        &tables,
        &period,
        opts.common.members_per_pass,
    )
    .await?;
    let no_rate: usize = ledger
        .units
        .iter()
        .filter(|u| {
            u.state_row
                && u.population
                    .as_ref()
                    .is_none_or(|p| !rates.base.contains_key(p))
        })
        .count();
    if no_rate > 0 {
        warnings.push(format!(
            "{no_rate} member-months have a Health Home population {} has no rate for: \
             their State and share-based partner dues are 0 (ledger.csv, column rate empty)",
            rates.path.display()
        ));
    }
    let files = files(&ledger, &rates, compare.as_ref(), &period, &opts.privacy)?;
    let mut staged = crate::output::Staged::begin(&opts.out, "payments")?;
    for (rel, bytes) in &files {
        staged.write(rel, bytes)?;
    }
    let mut inputs = Vec::new();
    for (what, path) in [
        ("earning rule", Some(&rule.path)),
        ("rates", Some(&rates.path)),
        ("compared rates", compare.as_ref().map(|c| &c.path)),
    ] {
        if let Some(p) = path {
            inputs.push(serde_json::json!({
                "what": what,
                "file": p.display().to_string(),
                "sha256": crate::digest::file_sha256(p)?,
            }));
        }
    }
    let manifest = serde_json::to_string_pretty(&serde_json::json!({
        "command": "payments",
        "period": {"start": period.start.to_string(), "end": period.end.to_string()},
        "options": {
            "data": opts.common.data.display().to_string(),
            "measures": crate::library::shown(&opts.common.measures),
            "queries": crate::library::shown(&opts.common.queries),
            "audience": opts.privacy.audience.id().map(|id| format!("{} {id}", opts.privacy.audience.kind())),
            "pseudonymised": opts.privacy.pseudonymizer.is_some(),
        },
        "definitions": inputs,
    }))
    .map_err(|e| Error::Usage(format!("writing the manifest: {e}")))?;
    let written = staged
        .publish(|root, names| crate::manifest::with_outputs(&manifest, names, Some(root)))?;

    let scope = &opts.privacy.audience;
    let published = super::published(&rates, &ledger, &period, scope, Layout::Summary, None);
    let figures = |stratifier: &str, stratum: &str| -> Vec<(String, String)> {
        SHOWN
            .iter()
            .map(|(c, _)| {
                let v = published
                    .iter()
                    .find(|p| {
                        p.row.component == *c
                            && p.row.stratifier.name() == stratifier
                            && p.row.stratum == stratum
                    })
                    .map(shown)
                    .unwrap_or_else(|| "-".into());
                (c.to_string(), v)
            })
            .collect()
    };
    let mut lines = vec![PartnerLine {
        hhp: "total".into(),
        figures: figures("total", "total"),
    }];
    let partners: BTreeSet<&str> = published
        .iter()
        .filter(|p| p.row.stratifier.name() == "hhp")
        .map(|p| p.row.stratum.as_str())
        .collect();
    for h in partners {
        lines.push(PartnerLine {
            hhp: h.into(),
            figures: figures("hhp", h),
        });
    }
    let all = ledger.findings();
    let findings = super::Kind::ALL
        .iter()
        .map(|k| {
            (
                *k,
                all.iter()
                    .filter(|f| f.kind == *k && finding_in_scope(f, scope))
                    .count(),
            )
        })
        .collect();
    Ok(PaymentsReport {
        period,
        rates: rates.id.clone(),
        compare: compare.as_ref().map(|c| c.id.clone()),
        lines,
        findings,
        written,
        warnings,
    })
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn text(s: &str) -> String {
    crate::escape::csv_text(s).into_owned()
}

/// A CSV whose numeric columns (`numeric[i]`) are written as they are and text escaped.
pub(super) fn csv_mixed(
    header: &[&str],
    numeric: &[bool],
    rows: &[Vec<String>],
) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Usage(format!("writing CSV: {e}"));
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(r.iter().enumerate().map(|(i, c)| {
            if numeric.get(i).copied().unwrap_or(false) {
                c.clone()
            } else {
                text(c)
            }
        }))
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| Error::Usage(format!("writing CSV: {e}")))
}

/// The files of a payments run for an audience, by relative path.
pub fn files(
    ledger: &Ledger,
    rates: &RateTable,
    compare: Option<&RateTable>,
    period: &Period,
    privacy: &Privacy,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let scope = &privacy.audience;
    let id = |m: &str| match &privacy.pseudonymizer {
        Some(p) => p.pseudonym(m),
        None => m.to_string(),
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let published = super::published(rates, ledger, period, scope, Layout::Summary, None);
    out.push(("summary.csv".into(), published_csv(&published)?));

    // The member-level ledger.
    let earned = earned_months(ledger);
    let all_findings = ledger.findings();
    // Each unit's findings, looked up rather than searched for.
    let mut kinds_of: std::collections::BTreeMap<(&str, chrono::NaiveDate, &str), Vec<&str>> =
        Default::default();
    for f in &all_findings {
        if let Some(h) = f.hhp.as_deref() {
            kinds_of
                .entry((f.member_id.as_str(), f.month, h))
                .or_default()
                .push(f.kind.name());
        }
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for u in ledger.units.iter().filter(|u| in_scope(u, scope)) {
        let p = price(rates, ledger, u, &earned);
        let kinds = kinds_of
            .get(&(u.member_id.as_str(), u.month, u.hhp.as_str()))
            .cloned()
            .unwrap_or_default();
        rows.push(vec![
            id(&u.member_id),
            u.month.format("%Y-%m").to_string(),
            u.mco.clone().unwrap_or_default(),
            u.hhp.clone(),
            u.population.clone().unwrap_or_default(),
            p.bands
                .iter()
                .map(|(t, b)| format!("{t}: {b}"))
                .collect::<Vec<_>>()
                .join("; "),
            p.rate.map(money).unwrap_or_default(),
            u.earned().to_string(),
            u.first_service.map(|d| d.to_string()).unwrap_or_default(),
            u.earning_contacts.join(";"),
            u.lines.len().to_string(),
            u.lines.iter().map(claim_ref).collect::<Vec<_>>().join(";"),
            money(u.paid()),
            money(p.state_due),
            money(p.partner_due),
            money(u.paid() - p.partner_due),
            kinds.join(";"),
        ]);
    }
    if privacy.pseudonymizer.is_some() {
        rows.sort();
    }
    out.push((
        "ledger.csv".into(),
        csv_mixed(
            &[
                "member_id",
                "month",
                "mco",
                "hhp",
                "population",
                "tiers",
                "rate",
                "earned",
                "first_service",
                "earning_contacts",
                "payment_lines",
                "claims",
                "paid",
                "state_due",
                "partner_due",
                "paid_less_due",
                "findings",
            ],
            &[
                false, false, false, false, false, false, true, false, false, false, true, false,
                true, true, true, true, false,
            ],
            &rows,
        )?,
    ));

    let mut rows: Vec<Vec<String>> = all_findings
        .iter()
        .filter(|f| finding_in_scope(f, scope))
        .map(|f| {
            vec![
                f.kind.name().to_string(),
                id(&f.member_id),
                f.month.format("%Y-%m").to_string(),
                f.mco.clone().unwrap_or_default(),
                f.hhp.clone().unwrap_or_default(),
                f.claims.join(";"),
                f.contacts.join(";"),
                money(f.paid),
            ]
        })
        .collect();
    if privacy.pseudonymizer.is_some() {
        rows.sort();
    }
    out.push((
        "findings.csv".into(),
        csv_mixed(
            &[
                "finding",
                "member_id",
                "month",
                "mco",
                "hhp",
                "claims",
                "contacts",
                "paid",
            ],
            &[false, false, false, false, false, false, false, true],
            &rows,
        )?,
    ));

    // Each partner's statement: its months, as published.
    let partners: BTreeSet<&str> = ledger
        .units
        .iter()
        .filter(|u| in_scope(u, scope))
        .map(|u| u.hhp.as_str())
        .collect();
    for h in partners {
        let rows = super::published(rates, ledger, period, scope, Layout::Months, Some(h));
        let name = crate::output::safe_file_stem(h);
        out.push((
            PathBuf::from("statements").join(format!("{name}.csv")),
            published_csv(&rows)?,
        ));
        out.push((
            PathBuf::from("statements").join(format!("{name}.txt")),
            statement_text(h, rates, period, &rows).into_bytes(),
        ));
    }

    if let Some(alt) = compare {
        out.push((
            "simulation.csv".into(),
            simulation(ledger, rates, alt, period, scope)?,
        ));
    }
    out.sort();
    Ok(out)
}

/// A partner's statement as text: per month, months assigned, earned and billed, and the
/// dollars due, paid and missed, as published.
pub fn statement_text(
    hhp: &str,
    rates: &RateTable,
    period: &Period,
    rows: &[PublishedRow],
) -> String {
    let cols: [(&str, &str); 8] = [
        ("assigned_months", "assigned"),
        ("earned_months", "earned %"),
        ("billed_months", "billed %"),
        ("billed_not_earned", "unearned %"),
        ("earned_not_billed", "unbilled %"),
        ("partner_due", "due PMPM"),
        ("paid", "paid PMPM"),
        ("missed", "missed PMPM"),
    ];
    let mut t = format!(
        "Health Home payment statement: partner {}\nperiod {} to {}, rates {} ({})\n\n",
        crate::escape::terminal_line(hhp),
        period.start,
        period.end,
        rates.id,
        rates.title
    );
    t.push_str(&format!("{:<8}", "month"));
    for (_, h) in cols {
        t.push_str(&format!(" {h:>11}"));
    }
    t.push('\n');
    let mut strata: Vec<&str> = rows
        .iter()
        .filter(|r| r.row.stratifier.name() == "month")
        .map(|r| r.row.stratum.as_str())
        .collect();
    strata.dedup();
    strata.push("total");
    for s in strata {
        t.push_str(&format!("{s:<8}"));
        for (c, _) in cols {
            let v = rows
                .iter()
                .find(|r| r.row.component == c && r.row.stratum == s)
                .map(shown)
                .unwrap_or_else(|| "-".into());
            t.push_str(&format!(" {v:>11}"));
        }
        t.push('\n');
    }
    t.push_str(&format!("\n{}\n", crate::suppress::legend()));
    t.push_str(&format!(
        "Dollar figures are per member-month: due over months earned, paid over months billed, \
         missed over months earned and not billed. Member-level lines: ledger.csv and \
         findings.csv ({MEASURE}).\n"
    ));
    t
}

/// The two tables' dues side by side, per MCO and partner, as published: a stratum's dollars
/// are hidden under either table when its months are.
fn simulation(
    ledger: &Ledger,
    a: &RateTable,
    b: &RateTable,
    period: &Period,
    scope: &Audience,
) -> Result<Vec<u8>> {
    let pa = super::published(a, ledger, period, scope, Layout::Summary, None);
    let pb = super::published(b, ledger, period, scope, Layout::Summary, None);
    let mut rows = Vec::new();
    for (x, y) in pa.iter().zip(&pb) {
        if !matches!(x.row.component.as_str(), "state_due" | "partner_due") {
            continue;
        }
        debug_assert_eq!(
            (&x.row.stratum, &x.row.component),
            (&y.row.stratum, &y.row.component)
        );
        let cell = |p: &PublishedRow| match p.numerator {
            Ok(v) => Ok(v),
            Err(why) => Err(why.marker()),
        };
        let (va, vb) = (cell(x), cell(y));
        let months = match x.denominator.and(y.denominator) {
            Ok(v) => format!("{v}"),
            Err(why) => why.marker().into(),
        };
        let (sa, sb, change, pct) = match (va, vb) {
            (Ok(va), Ok(vb)) => (
                money(va),
                money(vb),
                money(vb - va),
                if va > 0.0 {
                    format!("{:.1}", (vb - va) / va * 100.0)
                } else {
                    String::new()
                },
            ),
            (Err(m), _) | (_, Err(m)) => (m.into(), m.into(), m.into(), m.into()),
        };
        rows.push(vec![
            x.row.component.clone(),
            x.row.stratifier.name().to_string(),
            x.row.stratum.clone(),
            months,
            sa,
            sb,
            change,
            pct,
        ]);
    }
    let head_a = format!("dollars_{}", a.id);
    let head_b = format!("dollars_{}", b.id);
    csv_mixed(
        &[
            "component",
            "stratifier",
            "stratum",
            "months",
            &head_a,
            &head_b,
            "change",
            "change_percent",
        ],
        &[false, false, false, true, true, true, true, true],
        &rows,
    )
}

/// A report's payment figures for its audience, as published.
#[derive(Debug, Clone)]
pub struct ForReport {
    pub rates_id: String,
    pub rates_title: String,
    pub rule_title: String,
    pub period: Period,
    /// Total, MCO, partner and population strata.
    pub summary: Vec<PublishedRow>,
    /// A partner's months (partner scorecards).
    pub statement: Option<Vec<PublishedRow>>,
}

/// The payment figures a report shows, when the measures directory has the finance definitions
/// (`finance/earning.yaml` and `finance/rates.yaml`); computed over every member of `engine`
/// (the state's session) and cut to `audience`.
pub async fn for_report(
    engine: &crate::engine::Engine,
    measures: &Path,
    period: &Period,
    audience: &Audience,
    members_per_pass: Option<usize>,
) -> Result<Option<ForReport>> {
    let dir = measures.join("finance");
    let (earning, rates) = (dir.join("earning.yaml"), dir.join("rates.yaml"));
    if !earning.exists() || !rates.exists() {
        return Ok(None);
    }
    let rule = EarningRule::load(&earning)?;
    let rates = RateTable::load(&rates)?;
    let ledger = compute(engine, &rule, &[&rates], period, members_per_pass).await?;
    let summary = super::published(&rates, &ledger, period, audience, Layout::Summary, None);
    let statement = match audience {
        Audience::Hhp(id) => Some(super::published(
            &rates,
            &ledger,
            period,
            audience,
            Layout::Months,
            Some(id),
        )),
        _ => None,
    };
    Ok(Some(ForReport {
        rates_id: rates.id.clone(),
        rates_title: rates.title.clone(),
        rule_title: rule.title.clone(),
        period: *period,
        summary,
        statement,
    }))
}
