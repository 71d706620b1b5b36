//! From gathered results to a [`Document`]: suppression first, then the tables, charts and words
//! of the state report, the MCO report and the partner scorecard.

use std::collections::BTreeMap;

use crate::chart::{self, Estimate, Role, Series};
use crate::error::Result;
use crate::measure::{Better, Measure, Stratifier, Unit};
use crate::privacy::Audience;
use crate::report::doc::{
    self, Cell, Column, Document, Element, Figure, Section, Table, count_cell, decimals, rate_cell,
};
use crate::report::gather::{Curve, Gathered, MeasureData};
use crate::report::stats;
use crate::results::{Grouping, ResultRow};
use crate::suppress::{self, PublishedRow};

/// Build the report's content. `manifest` is the run's manifest (inputs only) for the appendix.
pub fn document(g: &Gathered, manifest: &str) -> Result<Document> {
    let who = match &g.audience {
        Audience::State => "State Health Home programme".to_string(),
        Audience::Mco(id) => format!("Managed care organisation {id}"),
        Audience::Hhp(id) => format!("Health Home partner {id}"),
    };
    let programme = g
        .publisher
        .programme
        .clone()
        .unwrap_or_else(|| "Health Home".to_string());
    let title = match &g.audience {
        Audience::State => format!("{programme} quality report"),
        Audience::Mco(id) => format!("{programme} quality report — {id}"),
        Audience::Hhp(id) => format!("{programme} partner scorecard — {id}"),
    };
    let mut cover = Vec::new();
    if g.publisher.programme.is_some() || g.publisher.state.is_some() {
        cover.push((
            "Programme".to_string(),
            [
                g.publisher.programme.as_deref(),
                g.publisher.state.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        ));
    }
    cover.extend([
        ("Audience".to_string(), who),
        ("Report quarter".to_string(), g.quarter.to_string()),
        (
            "Measurement year".to_string(),
            format!("{} to {}", g.current.start, g.current.end),
        ),
        (
            "Compared with".to_string(),
            format!("{} to {}", g.prior.start, g.prior.end),
        ),
        ("Data through (cut-off)".to_string(), g.cutoff.to_string()),
        (
            "Claims run-out".to_string(),
            if (g.cutoff - g.current.end).num_days() >= crate::cms::RUN_OUT_DAYS {
                format!(
                    "final: {} days of run-out after the year ends",
                    (g.cutoff - g.current.end).num_days()
                )
            } else {
                format!(
                    "provisional: {} days of run-out (CMS asks for {})",
                    (g.cutoff - g.current.end).num_days(),
                    crate::cms::RUN_OUT_DAYS
                )
            },
        ),
        (
            "Tool".to_string(),
            format!("hhq {}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    let caveats = cover_caveats(g);
    if !caveats.is_empty() {
        cover.push(("Caveats".to_string(), caveats.join(" ")));
    }
    let deviating: Vec<String> = g
        .measures
        .iter()
        .filter_map(|m| {
            let n = m.reporting.all_deviations().len();
            (n > 0).then(|| format!("{} ({n})", m.id))
        })
        .collect();
    cover.push((
        "Deviations from the specifications".to_string(),
        if deviating.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (the number of deviations); each is stated under Methods",
                deviating.join(", ")
            )
        },
    ));
    cover.push((
        "Measure versions".to_string(),
        g.measures
            .iter()
            .map(|m| match m.spec_year {
                Some(y) => format!("{} {} (MY{y} specification)", m.id, m.version),
                None => format!("{} {}", m.id, m.version),
            })
            .collect::<Vec<_>>()
            .join(", "),
    ));

    let published: BTreeMap<&str, Published> = g
        .data
        .iter()
        .map(|(id, d)| (id.as_str(), Published::of(d)))
        .collect();

    let mut sections = vec![summary(g, &published), at_a_glance(g, &published)];
    if let Audience::Hhp(id) = &g.audience {
        sections.push(worklist(g, id));
    }
    for m in &g.measures {
        sections.push(measure_section(
            g,
            m,
            &g.data[&m.id],
            &published[m.id.as_str()],
        )?);
    }
    if let Some(f) = &g.finance {
        sections.push(super::finance::section(g, f)?);
    }
    sections.push(data_quality(g));
    sections.push(methods(g));
    sections.push(Section {
        id: "manifest".into(),
        title: "Manifest".into(),
        elements: vec![Element::Paragraph {
            text: "What this report was computed from: tool version, options, the SHA-256 of \
                       every measure, building-block and value-set file, and each extract's files, \
                       rows and content hash. The same inputs give the same report, byte for byte; \
                       manifest.json beside the report also lists the hash of every output."
                .into(),
        }]
        .into_iter()
        .chain(manifest_elements(manifest)?)
        .collect(),
    });
    Ok(Document {
        kind: g.audience.kind().into(),
        title,
        subtitle: format!(
            "CMS Health Home Core Set and programme measures, year ending {}",
            g.quarter
        ),
        cover,
        caveat: g.caveat.clone(),
        sections,
    })
}

/// What a reader must know before reading any figure: value sets that are not the licensed
/// ones, components the data do not cover, and where the full list of readings is.
fn cover_caveats(g: &Gathered) -> Vec<String> {
    let mut out = Vec::new();
    let illustrative: Vec<&str> = g
        .measures
        .iter()
        .filter(|m| !m.reporting.illustrative_value_sets.is_empty())
        .map(|m| m.id.as_str())
        .collect();
    if !illustrative.is_empty() {
        out.push(format!(
            "{} read hhq's illustrative value sets, not NCQA's licensed ones: their figures show \
             how the measures work and are not comparable with HEDIS or Core Set results.",
            illustrative.join(", ")
        ));
    }
    let not_reportable: Vec<String> = g
        .data
        .iter()
        .flat_map(|(id, d)| d.not_reportable.keys().map(move |c| format!("{id} {c}")))
        .collect();
    if !not_reportable.is_empty() {
        out.push(format!(
            "Not reportable for this year, the data not covering their windows: {}.",
            not_reportable.join(", ")
        ));
    }
    if g.measures
        .iter()
        .any(|m| !m.reporting.all_deviations().is_empty())
    {
        out.push(
            "Where a measure departs from or reads its specification, Methods says how.".into(),
        );
    }
    out
}

/// One published component of the headline table, judged: its rate now and before, the
/// change's verdict, how it compares with the state and with its target.
struct Judged<'a> {
    measure: &'a Measure,
    component: &'a str,
    now: &'a PublishedRow,
    before: Option<&'a PublishedRow>,
}

impl Judged<'_> {
    fn unit(&self) -> Unit {
        self.now.row.unit
    }

    fn shown(&self, x: f64) -> String {
        let dec = decimals(self.unit());
        let unit = match self.unit() {
            Unit::Percent => "%".to_string(),
            Unit::Days => " days".to_string(),
            Unit::Ratio | Unit::Count => String::new(),
            u @ (Unit::Per1000MemberMonths
            | Unit::Per1000Members
            | Unit::MedianDays
            | Unit::DollarsPerMemberMonth) => {
                format!(" {}", unit_words(u))
            }
        };
        format!("{}{unit}", thousands_decimal(x, dec))
    }

    fn rate(&self) -> f64 {
        shown_rate(Some(self.now)).expect("only published rates are judged")
    }
}

/// The verdict on a component's change since the year before, when both rates are published
/// and have variances (`None`: not tested).
fn change(m: &Measure, now: &PublishedRow, before: Option<&PublishedRow>) -> Option<stats::Change> {
    let (a, b) = (shown_rate(Some(now))?, shown_rate(before)?);
    let (va, vb) = (variance(now)?, variance(before?)?);
    Some(stats::change(
        (a, va),
        (b, vb),
        higher_is_better(m, now.row.unit),
    ))
}

/// `x` to `dec` places with thousands separators.
fn thousands_decimal(x: f64, dec: usize) -> String {
    match Cell::decimal(x, dec) {
        Cell::Number { text, .. } => text,
        _ => format!("{x:.dec$}"),
    }
}

/// The executive summary: what moved, how the audience compares with the state, which rates
/// meet their targets. Only published figures are named; counts never.
fn summary(g: &Gathered, published: &BTreeMap<&str, Published>) -> Section {
    let mut judged = Vec::new();
    let (mut total, mut hidden) = (0, 0);
    for m in &g.measures {
        let p = &published[m.id.as_str()];
        for c in &m.components {
            let name = c.name.value.as_str();
            if !directional(c.unit) {
                continue;
            }
            total += 1;
            match find(&p.audience, name, Grouping::Total, "total") {
                Some(now) if shown_rate(Some(now)).is_some() => judged.push(Judged {
                    measure: m,
                    component: name,
                    now,
                    before: find(&p.audience_prior, name, Grouping::Total, "total"),
                }),
                _ => hidden += 1,
            }
        }
    }
    let mut elements = vec![Element::Paragraph {
        text: format!(
            "{} over the twelve months ending {} ({} to {}): {} of {} rates are published; the \
             other {} are suppressed under CMS's small-cell rule or not reportable. Changes are \
             named only where a test at the 5% level finds them (Methods).",
            match &g.audience {
                Audience::State => "Every Health Home member".to_string(),
                Audience::Mco(id) => format!("The members of {id}"),
                Audience::Hhp(id) => format!("The members assigned to {id}"),
            },
            g.quarter,
            g.current.start,
            g.current.end,
            total - hidden,
            total,
            hidden
        ),
    }];
    let moved: Vec<String> = judged
        .iter()
        .filter_map(|j| {
            let c = change(j.measure, j.now, j.before)?;
            (c != stats::Change::NoSignificantChange).then(|| {
                format!(
                    "{} {}: {} against {} the year before, {}.",
                    j.measure.id,
                    j.component,
                    j.shown(j.rate()),
                    j.shown(shown_rate(j.before).expect("shown")),
                    c.name()
                )
            })
        })
        .collect();
    elements.push(Element::Heading {
        text: "Changes since the year before".into(),
    });
    elements.push(if moved.is_empty() {
        Element::Paragraph {
            text: "No published rate changed significantly since the year before.".into(),
        }
    } else {
        Element::List { items: moved }
    });
    if g.audience != Audience::State {
        let against: Vec<String> = judged
            .iter()
            .filter_map(|j| {
                let state = shown_rate(find(
                    &published[j.measure.id.as_str()].state,
                    j.component,
                    Grouping::Total,
                    "total",
                ))?;
                let ci = interval(j.now)?;
                let v = stats::versus(ci, state, higher_is_better(j.measure, j.unit()));
                (v != stats::Versus::NoDifference).then(|| {
                    format!(
                        "{} {}: {} against the state's {}, {}.",
                        j.measure.id,
                        j.component,
                        j.shown(j.rate()),
                        j.shown(state),
                        v.name()
                    )
                })
            })
            .collect();
        elements.push(Element::Heading {
            text: "Against the state".into(),
        });
        elements.push(if against.is_empty() {
            Element::Paragraph {
                text: "No published rate differs significantly from the state's (its 95% \
                       interval holds the state rate)."
                    .into(),
            }
        } else {
            Element::List { items: against }
        });
    }
    if !g.targets.is_empty() {
        let mut items = Vec::new();
        for t in &g.targets {
            let Some(j) = judged
                .iter()
                .find(|j| j.measure.id == t.measure && j.component == t.component)
            else {
                items.push(format!(
                    "{} {}: target {}; the rate is not published.",
                    t.measure, t.component, t.value
                ));
                continue;
            };
            let rate = j.rate();
            let higher = higher_is_better(j.measure, j.unit());
            let meets = if higher {
                rate >= t.value
            } else {
                rate <= t.value
            };
            let verdict = if meets {
                "meets it".to_string()
            } else {
                match interval(j.now) {
                    Some((l, u)) if (higher && u < t.value) || (!higher && l > t.value) => {
                        "short of it, significantly (its 95% interval excludes the target)".into()
                    }
                    Some(_) => "short of it, within its 95% interval".into(),
                    None => "short of it".into(),
                }
            };
            items.push(format!(
                "{} {}: {} against a target of {}{}: {verdict}.",
                t.measure,
                t.component,
                j.shown(rate),
                j.shown(t.value),
                if t.source.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.source)
                }
            ));
        }
        elements.push(Element::Heading {
            text: "Against targets".into(),
        });
        elements.push(Element::List { items });
    }
    Section {
        id: "summary".into(),
        title: "Summary".into(),
        elements,
    }
}

/// What the at-a-glance table reads for a component the data do not cover (CMS's "not reported").
const NOT_REPORTABLE: &str = "NR";

/// One measure's rows after suppression, per view.
struct Published {
    state: Vec<PublishedRow>,
    audience: Vec<PublishedRow>,
    audience_prior: Vec<PublishedRow>,
    state_quarters: Vec<PublishedRow>,
    audience_quarters: Vec<PublishedRow>,
    /// Each MCO's quarters (scorecards only), published as rates.
    mco_quarters: BTreeMap<String, Vec<PublishedRow>>,
}

/// Rows published together are suppressed together: a year's strata and its quarters add up to
/// its total, and a total that one view hides must not be shown by another.
fn jointly(views: [&[ResultRow]; 3]) -> [Vec<PublishedRow>; 3] {
    let rows: Vec<ResultRow> = views.iter().flat_map(|v| v.iter().cloned()).collect();
    let mut published = suppress::suppress(&rows).into_iter();
    views.map(|v| published.by_ref().take(v.len()).collect())
}

impl Published {
    fn of(d: &MeasureData) -> Published {
        let [state, _, state_quarters] = jointly([&d.state, &d.state_prior, &d.state_quarters]);
        let [audience, audience_prior, audience_quarters] =
            jointly([&d.audience, &d.audience_prior, &d.audience_quarters]);
        Published {
            state,
            audience,
            audience_prior,
            state_quarters,
            audience_quarters,
            // Benchmarks, shown as rates only.
            mco_quarters: d
                .mco_quarters
                .iter()
                .map(|(id, rows)| (id.clone(), suppress::suppress(rows)))
                .collect(),
        }
    }
}

fn find<'a>(
    rows: &'a [PublishedRow],
    component: &str,
    stratifier: Grouping,
    stratum: &str,
) -> Option<&'a PublishedRow> {
    rows.iter().find(|p| {
        p.row.component == component && p.row.stratifier == stratifier && p.row.stratum == stratum
    })
}

fn unit_of(m: &Measure, component: &str) -> Option<Unit> {
    m.components
        .iter()
        .find(|c| c.name.value == component)
        .map(|c| c.unit)
}

/// Decimals shown for a unit: ratios to two places, everything else to one (as CMS publishes).
/// Whether a better direction applies: rates and ratios do, plain counts (stays, enrollees) do
/// not.
fn directional(unit: Unit) -> bool {
    unit != Unit::Count
}

/// The variance of a published row's rate (with its design effect), when its figures are shown.
fn variance(p: &PublishedRow) -> Option<f64> {
    match (&p.numerator, &p.denominator, &p.rate) {
        (Ok(n), Ok(d), Ok(Some(_))) => {
            stats::rate_variance(p.row.unit, *n, *d, p.row.spread.as_ref())
        }
        _ => None,
    }
}

fn shown_rate(p: Option<&PublishedRow>) -> Option<f64> {
    match p.map(|p| &p.rate) {
        Some(Ok(Some(r))) => Some(*r),
        _ => None,
    }
}

/// The interval of a published row, when its figures are shown.
fn interval(p: &PublishedRow) -> Option<(f64, f64)> {
    match (&p.numerator, &p.denominator, &p.rate) {
        (Ok(n), Ok(d), Ok(Some(_))) => {
            stats::interval_clustered(p.row.unit, *n, *d, p.row.spread.as_ref())
        }
        _ => None,
    }
}

fn component_label(m: &Measure, component: &str) -> String {
    let unit = unit_of(m, component).map_or("", unit_words);
    format!("{component} ({unit})")
}

fn unit_words(unit: Unit) -> &'static str {
    match unit {
        Unit::Percent => "%",
        Unit::Per1000MemberMonths => "per 1,000 member months",
        Unit::Per1000Members => "per 1,000 members",
        Unit::Count => "count",
        Unit::Days => "days",
        Unit::Ratio => "ratio",
        Unit::MedianDays => "median days",
        Unit::DollarsPerMemberMonth => "dollars per member month",
    }
}

fn better(m: &Measure) -> &'static str {
    match m.better {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}

/// Whether higher is better for one component: the measure's direction, except that a median of
/// days to a service is better shorter (HH-FIRST: more reached within 30 days, in fewer days).
fn higher_is_better(m: &Measure, unit: Unit) -> bool {
    match unit {
        Unit::MedianDays => false,
        _ => m.better == Better::Higher,
    }
}

fn better_word(m: &Measure, unit: Unit) -> &'static str {
    if higher_is_better(m, unit) {
        "higher"
    } else {
        "lower"
    }
}

fn at_a_glance(g: &Gathered, published: &BTreeMap<&str, Published>) -> Section {
    let mut t = Table {
        id: "at_a_glance".into(),
        title: format!(
            "Every measure, year ending {}, with the year before",
            g.quarter
        ),
        columns: vec![
            Column::text("measure", "Measure"),
            Column::text("component", "Component"),
            Column::text("unit", "Unit"),
            Column::number("rate", "Rate"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
            Column::number("prior_rate", "Prior year"),
            Column::number("change", "Change"),
            Column::text("better", "Better is"),
            Column::text("direction", "Direction"),
        ],
        rows: Vec::new(),
        note: Some(format!(
            "{} {NOT_REPORTABLE}: not reportable, the data do not cover the measure's look-back \
             or follow-up for the year (the notes say which). Change is this year's rate minus \
             the prior year's, in the measure's unit.",
            suppress::legend()
        )),
    };
    // Benchmarks beside an MCO's or a partner's own rate: the state's, and a partner's main MCO.
    let benchmarks = g.audience != Audience::State;
    let partner = matches!(g.audience, Audience::Hhp(_));
    if benchmarks {
        t.columns.push(Column::number("state_rate", "State"));
    }
    if partner {
        t.columns.push(Column::text("mco", "Main MCO"));
        t.columns.push(Column::number("mco_rate", "MCO rate"));
    }
    for m in &g.measures {
        let p = &published[m.id.as_str()];
        for c in &m.components {
            let name = &c.name.value;
            let now = find(&p.audience, name, Grouping::Total, "total");
            let Some(now) = now else {
                // Not reportable: the data do not cover its windows (the notes say why).
                if g.data[&m.id].not_reportable.contains_key(name) {
                    let unit = unit_of(m, name).map_or("", unit_words);
                    let mut row = vec![
                        Cell::text(&m.id),
                        Cell::text(name),
                        Cell::text(unit),
                        Cell::text(NOT_REPORTABLE),
                    ];
                    row.resize(t.columns.len(), Cell::Empty);
                    t.rows.push(row);
                }
                continue;
            };
            let before = find(&p.audience_prior, name, Grouping::Total, "total");
            let directed = directional(now.row.unit);
            let (change, direction) = match (shown_rate(Some(now)), shown_rate(before)) {
                (Some(a), Some(b)) if directed => {
                    // The change of the rates as shown, so the columns agree as read.
                    let dec = decimals(now.row.unit);
                    let d = doc::round(a, dec) - doc::round(b, dec);
                    let verdict = change(m, now, before).map_or("not tested", |c| c.name());
                    (Cell::decimal(d, dec), Cell::text(verdict))
                }
                _ => (Cell::Empty, Cell::Empty),
            };
            t.rows.push(vec![
                Cell::text(&m.id),
                Cell::text(name),
                Cell::text(unit_words(now.row.unit)),
                rate_cell(Some(now)),
                count_cell(Some(&now.numerator)),
                count_cell(Some(&now.denominator)),
                rate_cell(before),
                change,
                Cell::text(if directed {
                    better_word(m, now.row.unit)
                } else {
                    ""
                }),
                direction,
            ]);
            let row = t.rows.last_mut().expect("just pushed");
            if benchmarks {
                row.push(rate_cell(find(&p.state, name, Grouping::Total, "total")));
            }
            if partner {
                match main_mco(p, name) {
                    Some(mco) => {
                        row.push(Cell::text(&mco));
                        row.push(rate_cell(find(
                            &p.state,
                            name,
                            Grouping::By(Stratifier::Mco),
                            &mco,
                        )));
                    }
                    None => {
                        row.push(Cell::Empty);
                        row.push(Cell::Empty);
                    }
                }
            }
        }
    }
    // What is left out goes in the table's note, so it stays with the table on the page.
    if !g.notes.is_empty() {
        t.note = Some(format!(
            "{} {}.",
            t.note.take().unwrap_or_default(),
            g.notes.join(". ")
        ));
    }
    Section {
        id: "at-a-glance".into(),
        title: "At a glance".into(),
        elements: vec![
            Element::Paragraph {
                text: format!(
                    "Each measure over the twelve months ending {} ({} to {}) for {}, beside the \
                     twelve months before. Direction reads the change against the measure's \
                     better direction, where a test at the 5% level finds one (Methods).",
                    g.quarter,
                    g.current.start,
                    g.current.end,
                    match &g.audience {
                        Audience::State => "every Health Home member".to_string(),
                        Audience::Mco(id) => format!("the members of {id}"),
                        Audience::Hhp(id) => format!("the members assigned to {id}"),
                    }
                ),
            },
            Element::Table(t),
        ],
    }
}

/// The MCO holding most of the audience's units of a component (a partner's main MCO).
fn main_mco(p: &Published, component: &str) -> Option<String> {
    p.audience
        .iter()
        .filter(|r| {
            r.row.component == component && r.row.stratifier == Grouping::By(Stratifier::Mco)
        })
        .max_by(|a, b| {
            a.row
                .denominator
                .total_cmp(&b.row.denominator)
                .then(b.row.stratum.cmp(&a.row.stratum))
        })
        .map(|r| r.row.stratum.clone())
}

fn worklist(g: &Gathered, id: &str) -> Section {
    let mut t = Table {
        id: "worklist".into(),
        title: format!("Open follow-ups of {id}'s members as of {}", g.cutoff),
        columns: vec![
            Column::text("member_id", "Member"),
            Column::text("event", "Event"),
            Column::text("event_id", "Claim"),
            Column::text("event_date", "Date"),
            Column::text("facility_npi", "Facility (NPI)"),
            Column::text("diagnosis", "Diagnosis"),
            Column::text("measures", "Open in"),
            Column::text("due_7_day", "7-day follow-up due"),
            Column::text("due_30_day", "30-day follow-up due"),
            Column::text("status", "Status"),
            Column::text("current_mco", "MCO now"),
        ],
        rows: Vec::new(),
        note: Some(
            "Member-level: for the partner's own care team only. One row per discharge or ED \
             visit, with the measures it is open in. A follow-up is open when the 30-day window \
             has not closed at the cut-off and no qualifying follow-up is in the data yet. \
             Facility: the billing provider on the event's claim; diagnosis: its principal \
             diagnosis (ICD-10-CM); MCO now: the member's MCO on the cut-off date."
                .into(),
        ),
    };
    for gap in &g.worklist {
        let status = if gap.due_7 < g.cutoff {
            "7-day window missed; 30-day still open"
        } else {
            "open"
        };
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
        t.rows.push(vec![
            Cell::text(&gap.member_id),
            Cell::text(&gap.event),
            Cell::text(&gap.event_id),
            Cell::text(gap.anchor_date.to_string()),
            Cell::text(or_none(&gap.facility)),
            Cell::text(or_none(&gap.diagnosis)),
            Cell::text(gap.measures.join(", ")),
            Cell::text(gap.due_7.to_string()),
            Cell::text(gap.due_30.to_string()),
            Cell::text(status),
            Cell::text(or_none(&gap.current_mco)),
        ]);
    }
    let mut elements = vec![Element::Paragraph {
        text: format!(
            "{} discharge{} and ED visit{} with a follow-up still open at the data cut-off, \
             soonest due first. Only {id}'s own members appear here.",
            g.worklist.len(),
            if g.worklist.len() == 1 { "" } else { "s" },
            if g.worklist.len() == 1 { "" } else { "s" }
        ),
    }];
    elements.push(Element::Table(t));
    Section {
        id: "worklist-section".into(),
        title: "Worklist".into(),
        elements,
    }
}

fn measure_section(g: &Gathered, m: &Measure, d: &MeasureData, p: &Published) -> Result<Section> {
    let mut elements = vec![Element::Facts {
        items: vec![
            ("Measure".into(), format!("{} — {}", m.id, m.title)),
            ("Version".into(), m.version.clone()),
            ("Better is".into(), better(m).into()),
            ("Source".into(), m.source.clone()),
        ],
    }];
    // Headline figures with intervals, per component.
    let mut headline = Table {
        id: format!("headline_{}", m.id),
        title: format!("{}: year ending {}", m.id, g.quarter),
        columns: vec![
            Column::text("component", "Component"),
            Column::number("rate", "Rate"),
            Column::number("lower_95", "95% CI low"),
            Column::number("upper_95", "95% CI high"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
            Column::number("state_rate", "State"),
            Column::number("prior_rate", "Prior year"),
        ],
        rows: Vec::new(),
        note: None,
    };
    for c in &m.components {
        let name = &c.name.value;
        let Some(now) = find(&p.audience, name, Grouping::Total, "total") else {
            continue;
        };
        let ci = interval(now);
        let dec = decimals(now.row.unit);
        headline.rows.push(vec![
            Cell::text(component_label(m, name)),
            rate_cell(Some(now)),
            ci.map_or(Cell::Empty, |(l, _)| Cell::decimal(l, dec)),
            ci.map_or(Cell::Empty, |(_, u)| Cell::decimal(u, dec)),
            count_cell(Some(&now.numerator)),
            count_cell(Some(&now.denominator)),
            rate_cell(find(&p.state, name, Grouping::Total, "total")),
            rate_cell(find(&p.audience_prior, name, Grouping::Total, "total")),
        ]);
    }
    elements.push(Element::Table(headline));

    // The headline component: the first that is a rate (a percentage, a rate per 1,000 or a
    // ratio), else the first reported; PCR-HH's first component is a plain count of stays.
    let reported = |c: &&crate::measure::Component| {
        find(&p.audience, &c.name.value, Grouping::Total, "total").is_some()
    };
    let head = m
        .components
        .iter()
        .filter(reported)
        .find(|c| {
            matches!(
                c.unit,
                Unit::Percent | Unit::Per1000MemberMonths | Unit::Per1000Members | Unit::Ratio
            )
        })
        .or_else(|| m.components.iter().find(reported))
        .map(|c| (c.name.value.clone(), c.unit));
    if let Some((head, unit)) = &head {
        let unit = *unit;
        elements.push(Element::Figure(trend(g, m, head, unit, p)?));
        if let Some(f) = comparison(g, m, head, unit, p)? {
            elements.push(Element::Figure(f));
        }
        if let Some(f) = control_chart(g, m, head, unit, p)? {
            elements.push(Element::Figure(f));
        }
    }
    if let Some((state, audience)) = &d.followup {
        elements.push(Element::Figure(followup_curve(g, m, state, audience)?));
    }
    elements.push(Element::Table(age_table(m, p)));
    if let Some((head, _)) = &head {
        elements.push(Element::Table(demographics_table(g, m, head, p)));
    }
    Ok(Section {
        id: format!("measure-{}", m.id),
        title: format!("{} — {}", m.id, m.title),
        elements,
    })
}

/// The colour role of the report's own unit: the state in the state report.
fn own_role(g: &Gathered) -> Role {
    match g.audience {
        Audience::State => Role::State,
        _ => Role::Own,
    }
}

/// An MCO's colour role: its place among every MCO the report's measures name, so it is the
/// same in every chart.
fn mco_role(g: &Gathered, mco: &str) -> Role {
    let mcos: std::collections::BTreeSet<&str> = g
        .data
        .values()
        .flat_map(|d| &d.state)
        .filter(|r| r.stratifier == Grouping::By(Stratifier::Mco))
        .map(|r| r.stratum.as_str())
        .collect();
    Role::Mco(mcos.iter().position(|m| *m == mco).unwrap_or(0))
}

/// The manifest (inputs only) as the appendix shows it: the run's facts, then a table each of
/// extracts, measures, building blocks and value sets with their hashes.
fn manifest_elements(manifest: &str) -> Result<Vec<Element>> {
    use serde_json::Value;
    let m: Value = serde_json::from_str(manifest)
        .map_err(|e| crate::Error::Report(format!("the run's manifest: {e}")))?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_string(),
        other => other.to_string(),
    };
    let at = |v: &Value, key: &str| v.get(key).map(text).unwrap_or_default();
    let mut facts: Vec<(String, String)> = vec![
        (
            "Tool".into(),
            format!("{} {}", at(&m["tool"], "name"), at(&m["tool"], "version")),
        ),
        ("Command".into(), format!("hhq {}", at(&m, "command"))),
        (
            "Period".into(),
            format!(
                "{} to {}",
                at(&m["period"], "start"),
                at(&m["period"], "end")
            ),
        ),
        ("Data cut-off".into(), at(&m, "data_cutoff")),
    ];
    if let Some(options) = m["options"].as_object() {
        let set: Vec<String> = options
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
            .map(|(k, v)| format!("{k} = {}", text(v)))
            .collect();
        facts.push(("Options".into(), set.join("; ")));
    }
    let q = &m["data_quality"];
    if q.is_object() {
        facts.push((
            "Data-quality policy".into(),
            format!(
                "{} (SHA-256 {}): {} checks, {} failed, on failure {}",
                at(&q["policy"], "file"),
                at(&q["policy"], "sha256"),
                at(q, "checks"),
                q["failed"].as_array().map_or(0, Vec::len),
                at(q, "on_failure")
            ),
        ));
    }
    facts.push((
        "Risk weights".into(),
        match &m["risk_weights"] {
            Value::Null => "none supplied".into(),
            v => format!("{} (SHA-256 {})", at(v, "file"), at(v, "sha256")),
        },
    ));
    let mut elements = vec![Element::Facts { items: facts }];
    let rows = |key: &str| m[key].as_array().cloned().unwrap_or_default();
    let table = |id: &str, title: &str, columns: &[(&str, &str)], rows: Vec<Vec<Cell>>| Table {
        id: format!("manifest_{id}"),
        title: title.into(),
        columns: columns.iter().map(|(n, l)| Column::text(n, l)).collect(),
        rows,
        note: None,
    };
    let mut extracts = Vec::new();
    for e in rows("extracts") {
        for f in e["files"].as_array().into_iter().flatten() {
            extracts.push(vec![
                Cell::text(at(&e, "name")),
                Cell::text(at(f, "file")),
                Cell::text(doc::thousands(e["rows"].as_f64().unwrap_or(0.0))),
                Cell::text(at(f, "sha256")),
            ]);
        }
    }
    elements.push(Element::Table(table(
        "extracts",
        "Extracts",
        &[
            ("extract", "Extract"),
            ("file", "File"),
            ("rows", "Rows"),
            ("sha256", "SHA-256"),
        ],
        extracts,
    )));
    let listed = |key: &str, with: &[&str]| -> Vec<Vec<Cell>> {
        rows(key)
            .iter()
            .map(|r| with.iter().map(|k| Cell::text(at(r, k))).collect())
            .collect()
    };
    elements.push(Element::Table(table(
        "measures",
        "Measure definitions",
        &[
            ("id", "Measure"),
            ("version", "Version"),
            ("file", "File"),
            ("sha256", "SHA-256"),
        ],
        listed("measures", &["id", "version", "file", "sha256"]),
    )));
    elements.push(Element::Table(table(
        "building_blocks",
        "Building blocks",
        &[("name", "Block"), ("file", "File"), ("sha256", "SHA-256")],
        listed("building_blocks", &["name", "file", "sha256"]),
    )));
    elements.push(Element::Table(table(
        "value_sets",
        "Value sets",
        &[("file", "File"), ("sha256", "SHA-256")],
        listed("value_sets", &["file", "sha256"]),
    )));
    Ok(elements)
}

fn audience_label(g: &Gathered) -> String {
    match &g.audience {
        Audience::State => "State".into(),
        Audience::Mco(id) | Audience::Hhp(id) => id.clone(),
    }
}

fn trend(g: &Gathered, m: &Measure, head: &str, unit: Unit, p: &Published) -> Result<Figure> {
    let quarters: Vec<String> = g
        .quarter
        .last_eight()
        .iter()
        .map(|q| q.to_string())
        .collect();
    fn series_of<'a>(
        rows: &'a [PublishedRow],
        head: &str,
        quarters: &[String],
    ) -> Vec<Option<&'a PublishedRow>> {
        quarters
            .iter()
            .map(|q| {
                rows.iter()
                    .find(|r| r.row.component == head && &r.row.stratum == q)
            })
            .collect()
    }
    let mut lines = vec![(
        audience_label(g),
        series_of(&p.audience_quarters, head, &quarters),
        own_role(g),
    )];
    if let Some(mco) = main_mco(p, head).filter(|_| matches!(g.audience, Audience::Hhp(_)))
        && let Some(rows) = p.mco_quarters.get(&mco)
    {
        let role = mco_role(g, &mco);
        lines.push((mco.clone(), series_of(rows, head, &quarters), role));
    }
    if g.audience != Audience::State {
        lines.push((
            "State".into(),
            series_of(&p.state_quarters, head, &quarters),
            Role::State,
        ));
    }
    let mut data = Table {
        id: format!("trend_{}", m.id),
        title: format!("{} {head} by quarter", m.id),
        columns: vec![
            Column::text("quarter", "Quarter"),
            Column::text("series", "Series"),
            Column::number("rate", "Rate"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
        ],
        rows: Vec::new(),
        note: None,
    };
    let mut series = Vec::new();
    for (label, points, role) in &lines {
        for (q, pt) in quarters.iter().zip(points) {
            // Beside an MCO's or partner's own counts, the state's would give the rest of the
            // state by subtraction, unsuppressed: its line is rates only.
            let counts = *role == own_role(g) || g.audience == Audience::State;
            data.rows.push(vec![
                Cell::text(q),
                Cell::text(label),
                rate_cell(*pt),
                if counts {
                    count_cell(pt.map(|p| &p.numerator))
                } else {
                    Cell::Empty
                },
                if counts {
                    count_cell(pt.map(|p| &p.denominator))
                } else {
                    Cell::Empty
                },
            ]);
        }
        series.push(Series {
            label: label.clone(),
            values: points.iter().map(|p| shown_rate(*p)).collect(),
            role: *role,
        });
    }
    let title = format!("{} {} by quarter", m.id, head);
    let drawing = chart::trend(&title, unit_words(unit), &quarters, &series)?;
    Ok(Figure::new(
        format!("trend_{}", m.id),
        title,
        format!(
            "Each point counts the units (discharges, visits, member months) dated in the \
             quarter, under the annual measurement of the year that holds it. Missing points are \
             suppressed. Better is {}.",
            better(m)
        ),
        drawing,
        data,
    ))
}

/// MCOs and partners (state report), the MCO's partners (MCO report), or the partner beside its
/// MCOs (scorecard), each with a 95% interval, against the state rate.
fn comparison(
    g: &Gathered,
    m: &Measure,
    head: &str,
    unit: Unit,
    p: &Published,
) -> Result<Option<Figure>> {
    let state = shown_rate(find(&p.state, head, Grouping::Total, "total"));
    // (level, row, whether it is the report's own unit)
    let mut picks: Vec<(&str, &PublishedRow, bool)> = Vec::new();
    fn strata<'a>(rows: &'a [PublishedRow], head: &str, s: Stratifier) -> Vec<&'a PublishedRow> {
        rows.iter()
            .filter(|r| r.row.component == head && r.row.stratifier == Grouping::By(s))
            .collect()
    }
    match &g.audience {
        Audience::State => {
            for r in strata(&p.state, head, Stratifier::Mco) {
                picks.push(("MCO", r, false));
            }
            for r in strata(&p.state, head, Stratifier::Hhp) {
                picks.push(("Partner", r, false));
            }
        }
        Audience::Mco(id) => {
            if let Some(t) = find(&p.audience, head, Grouping::Total, "total") {
                picks.push(("MCO", t, true));
            }
            for r in strata(&p.audience, head, Stratifier::Hhp) {
                picks.push(("Partner", r, false));
            }
            let _ = id;
        }
        Audience::Hhp(_) => {
            if let Some(t) = find(&p.audience, head, Grouping::Total, "total") {
                picks.push(("Partner", t, true));
            }
            // Its MCOs' whole rates as benchmarks: the MCOs it has members with.
            for r in strata(&p.audience, head, Stratifier::Mco) {
                if let Some(b) = find(
                    &p.state,
                    head,
                    Grouping::By(Stratifier::Mco),
                    &r.row.stratum,
                ) {
                    picks.push(("MCO", b, false));
                }
            }
        }
    }
    if picks.is_empty() {
        return Ok(None);
    }
    let mut data = Table {
        id: format!("compare_{}", m.id),
        title: format!("{} {head}: comparison with the state", m.id),
        columns: vec![
            Column::text("level", "Level"),
            Column::text("unit", "Unit"),
            Column::number("rate", "Rate"),
            Column::number("lower_95", "95% CI low"),
            Column::number("upper_95", "95% CI high"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
            Column::text("versus_state", "Versus state"),
        ],
        rows: Vec::new(),
        note: Some(
            "Versus state: better or worse when the 95% interval lies wholly on one side of the \
             state rate."
                .into(),
        ),
    };
    let mut items = Vec::new();
    let dec = decimals(unit);
    for (level, r, highlight) in &picks {
        // A partner's MCO benchmarks are rates only: their counts less the partner's own would
        // give the MCO's other partners.
        let benchmark_only = matches!(g.audience, Audience::Hhp(_)) && !*highlight;
        let ci = if benchmark_only { None } else { interval(r) };
        let vs = match (ci, state) {
            (Some(ci), Some(s)) => stats::versus(ci, s, higher_is_better(m, unit)).name(),
            _ => "",
        };
        let name = if *highlight && g.audience == Audience::State {
            "State".to_string()
        } else if r.row.stratifier == Grouping::Total {
            audience_label(g)
        } else {
            r.row.stratum.clone()
        };
        data.rows.push(vec![
            Cell::text(*level),
            Cell::text(&name),
            rate_cell(Some(r)),
            ci.map_or(Cell::Empty, |(l, _)| Cell::decimal(l, dec)),
            ci.map_or(Cell::Empty, |(_, u)| Cell::decimal(u, dec)),
            if benchmark_only {
                Cell::Empty
            } else {
                count_cell(Some(&r.numerator))
            },
            if benchmark_only {
                Cell::Empty
            } else {
                count_cell(Some(&r.denominator))
            },
            Cell::text(vs),
        ]);
        let role = if *highlight {
            own_role(g)
        } else if r.row.stratifier == Grouping::By(Stratifier::Mco) {
            mco_role(g, &r.row.stratum)
        } else {
            Role::Other
        };
        items.push(Estimate {
            label: name,
            value: shown_rate(Some(r)),
            lower: ci.map(|c| c.0),
            upper: ci.map(|c| c.1),
            role,
        });
    }
    let title = format!("{} {head}: comparison with 95% intervals", m.id);
    let drawing = chart::dot_plot(
        &title,
        unit_words(unit),
        &items,
        state.map(|s| ("State", s)),
    )?;
    Ok(Some(Figure::new(
        format!("compare_{}", m.id),
        title,
        "Dots are rates, bars their 95% confidence intervals (Wilson for percentages, \
         Poisson for rates per 1,000, members as clusters: see Methods); the line is the state \
         rate. Suppressed units have no dot."
            .into(),
        drawing,
        data,
    )))
}

/// A p-chart (percentages) or u-chart (rates per 1,000) of the audience's headline by quarter over
/// both years, for the quality-improvement programme.
fn control_chart(
    g: &Gathered,
    m: &Measure,
    head: &str,
    unit: Unit,
    p: &Published,
) -> Result<Option<Figure>> {
    let kind = match unit {
        Unit::Percent => crate::spc::Kind::P,
        Unit::Per1000MemberMonths | Unit::Per1000Members => crate::spc::Kind::U,
        Unit::Count | Unit::Days | Unit::Ratio | Unit::MedianDays | Unit::DollarsPerMemberMonth => {
            return Ok(None);
        }
    };
    let scale = unit.scale();
    // Quarterly subgroups, the trend's own rows: already suppressed with their years' totals,
    // so the chart publishes nothing the trend table does not. A suppressed quarter takes no
    // part at all (no value, limits, centre-line share or run), so no signal speaks of it.
    let quarters: Vec<String> = g
        .quarter
        .last_eight()
        .iter()
        .map(|q| q.to_string())
        .collect();
    let rows: Vec<Option<&PublishedRow>> = quarters
        .iter()
        .map(|q| {
            p.audience_quarters
                .iter()
                .find(|r| r.row.component == head && &r.row.stratum == q)
        })
        .collect();
    if rows.iter().flatten().all(|r| r.rate.is_err()) {
        return Ok(None);
    }
    let periods: Vec<(String, f64, f64)> = quarters
        .iter()
        .zip(&rows)
        .map(|(q, r)| match r {
            Some(r) if r.rate.is_ok() => (q.clone(), r.row.numerator, r.row.denominator),
            _ => (q.clone(), 0.0, 0.0),
        })
        .collect();
    let quarters_rows: Vec<Option<&PublishedRow>> = rows;
    let computed = crate::spc::chart(kind, &periods);
    let scaled = crate::spc::Chart {
        kind: computed.kind,
        laney: computed.laney,
        centre: computed.centre.map(|c| c * scale),
        points: computed
            .points
            .iter()
            .map(|p| crate::spc::Point {
                label: p.label.clone(),
                value: p.value.map(|v| v * scale),
                lower: p.lower.map(|v| v * scale),
                upper: p.upper.map(|v| v * scale),
                signals: p.signals.clone(),
            })
            .collect(),
    };
    let dec = decimals(unit);
    let mut data = Table {
        id: format!("spc_{}", m.id),
        title: format!("{} {head}: control chart by quarter", m.id),
        columns: vec![
            Column::text("quarter", "Quarter"),
            Column::number("rate", "Rate"),
            Column::number("centre", "Centre line"),
            Column::number("lower_limit", "Lower limit"),
            Column::number("upper_limit", "Upper limit"),
            Column::text("signals", "Signals"),
        ],
        rows: Vec::new(),
        note: None,
    };
    for (pt, r) in scaled.points.iter().zip(&quarters_rows) {
        data.rows.push(vec![
            Cell::text(&pt.label),
            match (r.map(|r| &r.rate), pt.value) {
                (Some(Err(why)), _) => Cell::suppressed(*why),
                (_, Some(v)) => Cell::decimal(v, dec),
                _ => Cell::Empty,
            },
            scaled.centre.map_or(Cell::Empty, |c| Cell::decimal(c, dec)),
            pt.lower.map_or(Cell::Empty, |c| Cell::decimal(c, dec)),
            pt.upper.map_or(Cell::Empty, |c| Cell::decimal(c, dec)),
            Cell::text(
                pt.signals
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ]);
    }
    let title = format!(
        "{} {head}: {} by quarter",
        m.id,
        match (kind, computed.laney) {
            (crate::spc::Kind::P, None) => "p-chart",
            (crate::spc::Kind::U, None) => "u-chart",
            (crate::spc::Kind::P, Some(_)) => "p′-chart (Laney)",
            (crate::spc::Kind::U, Some(_)) => "u′-chart (Laney)",
        }
    );
    let drawing = chart::spc(&title, unit_words(unit), &scaled, own_role(g))?;
    Ok(Some(Figure::new(
        format!("spc_{}", m.id),
        title,
        format!(
            "Statistical process control for {}: centre line over both years, 3-sigma limits for \
             each quarter's size{}; signals are a point beyond a limit, {} in a row on one side \
             of the centre, or {} rising or falling. Suppressed quarters take no part.",
            audience_label(g),
            match computed.laney {
                Some(sz) => format!(
                    ", widened by Laney's σz = {sz:.2} (the quarters vary more than chance \
                     alone at their sizes would make them)"
                ),
                None => String::new(),
            },
            crate::spc::SHIFT_RUN,
            crate::spc::TREND_RUN
        ),
        drawing,
        data,
    )))
}

/// Share followed up by each day 0..=30. A curve over fewer than 30 is not drawn; days are shown
/// by [`shown_days`].
fn followup_curve(g: &Gathered, m: &Measure, state: &Curve, audience: &Curve) -> Result<Figure> {
    let mut curves: Vec<(String, &Curve, Role)> = vec![(audience_label(g), audience, own_role(g))];
    if g.audience != Audience::State {
        curves.push(("State".into(), state, Role::State));
    }
    let mut data = Table {
        id: format!("followup_{}", m.id),
        title: format!("{}: share followed up by day after the event", m.id),
        columns: vec![Column::number("day", "Day")],
        rows: (0..=30).map(|d| vec![Cell::count(d as f64)]).collect(),
        note: None,
    };
    let mut drawn = Vec::new();
    for (label, c, role) in &curves {
        data.columns
            .push(Column::number(&format!("percent_{}", slug(label)), label));
        let shown = c.denominator as f64 >= suppress::MIN_RATE_DENOMINATOR;
        let days = shown_days(&c.by_day, &[7, 30]);
        let mut values = Vec::new();
        for (day, n) in c.by_day.iter().enumerate() {
            let cell = if !shown {
                Cell::suppressed(suppress::Reason::SmallDenominator)
            } else if !days[day] {
                Cell::suppressed(suppress::Reason::SmallCell)
            } else {
                let v = *n as f64 * 100.0 / c.denominator as f64;
                values.push((day, v));
                Cell::decimal(v, 1)
            };
            data.rows[day].push(cell);
        }
        if shown {
            let mut full: Vec<Option<f64>> = vec![None; 31];
            for (day, v) in values {
                full[day] = Some(v);
            }
            drawn.push(chart::Curve {
                label: label.clone(),
                values: full,
                role: *role,
            });
        }
    }
    let title = format!("{}: cumulative follow-up, days 0 to 30", m.id);
    let drawing = chart::cumulative(&title, &drawn)?;
    Ok(Figure::new(
        format!("followup_{}", m.id),
        title,
        "Share of the denominator with a qualifying follow-up by each day after the discharge \
         or visit; the marks are the 7- and 30-day deadlines. A day is shown only when the \
         members followed up since the previous shown day number 0 or more than 10; a day not \
         shown carries the last shown share over (dashed), the least the true share can be."
            .into(),
        drawing,
        data,
    ))
}

/// Which days of a cumulative count may be shown. Each shown count differs from the previous
/// shown one (0 before day 0) by 0 or by more than [`suppress::SMALL_CELL`], and so does each
/// count published elsewhere (the `anchors`: the 7- and 30-day numerators, when not themselves
/// small) from the last shown count before it. So no group of 1 to 10 members followed up
/// between two published points can be worked out by subtraction.
fn shown_days(by_day: &[u64], anchors: &[usize]) -> Vec<bool> {
    let small = |x: u64| x > 0 && x as f64 <= suppress::SMALL_CELL;
    let anchors: Vec<usize> = anchors
        .iter()
        .copied()
        .filter(|&a| a < by_day.len() && !small(by_day[a]))
        .collect();
    let mut shown = vec![false; by_day.len()];
    let mut last = 0u64;
    for (d, &n) in by_day.iter().enumerate() {
        let next_anchor = anchors.iter().copied().find(|&a| a >= d).map(|a| by_day[a]);
        let step_ok = !small(n.saturating_sub(last));
        let ahead_ok = next_anchor.is_none_or(|a| !small(a.saturating_sub(n)));
        if step_ok && ahead_ok {
            shown[d] = true;
            last = n;
        }
    }
    shown
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn age_table(m: &Measure, p: &Published) -> Table {
    let mut t = Table {
        id: format!("age_{}", m.id),
        title: format!("{} by age band", m.id),
        columns: vec![
            Column::text("component", "Component"),
            Column::text("age_band", "Age band"),
            Column::number("rate", "Rate"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
        ],
        rows: Vec::new(),
        note: None,
    };
    for c in &m.components {
        for r in p.audience.iter().filter(|r| {
            r.row.component == c.name.value && r.row.stratifier == Grouping::By(Stratifier::AgeBand)
        }) {
            t.rows.push(vec![
                Cell::text(&c.name.value),
                Cell::text(&r.row.stratum),
                rate_cell(Some(r)),
                count_cell(Some(&r.numerator)),
                count_cell(Some(&r.denominator)),
            ]);
        }
    }
    t
}

/// What a demographic stratifier is called in a table.
fn stratifier_label(s: Stratifier) -> &'static str {
    match s {
        Stratifier::Sex => "Sex",
        Stratifier::Race => "Race",
        Stratifier::Ethnicity => "Ethnicity",
        Stratifier::Rural => "Rurality",
        Stratifier::County => "County (FIPS)",
        other => other.name(),
    }
}

/// The headline component by the members' sex, race, ethnicity and rurality (and county in the
/// state's report), with intervals: where the programme serves some groups less well.
fn demographics_table(g: &Gathered, m: &Measure, head: &str, p: &Published) -> Table {
    let mut t = Table {
        id: format!("demographics_{}", m.id),
        title: format!("{} {head} by demographics, year ending {}", m.id, g.quarter),
        columns: vec![
            Column::text("stratifier", "Stratifier"),
            Column::text("stratum", "Group"),
            Column::number("rate", "Rate"),
            Column::number("lower_95", "95% CI low"),
            Column::number("upper_95", "95% CI high"),
            Column::number("numerator", "Numerator"),
            Column::number("denominator", "Denominator"),
        ],
        rows: Vec::new(),
        note: Some(format!(
            "As the extracts record them (`unknown` where not recorded). {}",
            suppress::legend()
        )),
    };
    let order = crate::report::gather::DEMOGRAPHICS
        .into_iter()
        .chain([Stratifier::County]);
    // Counties are many and mostly small: one whose rate is suppressed is named in the note
    // rather than given a row of marks.
    let mut hidden_counties = Vec::new();
    for stratifier in order {
        for r in p
            .audience
            .iter()
            .filter(|r| r.row.component == head && r.row.stratifier == Grouping::By(stratifier))
        {
            if stratifier == Stratifier::County && r.rate.is_err() {
                hidden_counties.push(r.row.stratum.clone());
                continue;
            }
            let ci = interval(r);
            let dec = decimals(r.row.unit);
            t.rows.push(vec![
                Cell::text(stratifier_label(stratifier)),
                Cell::text(&r.row.stratum),
                rate_cell(Some(r)),
                ci.map_or(Cell::Empty, |(l, _)| Cell::decimal(l, dec)),
                ci.map_or(Cell::Empty, |(_, u)| Cell::decimal(u, dec)),
                count_cell(Some(&r.numerator)),
                count_cell(Some(&r.denominator)),
            ]);
        }
    }
    if !hidden_counties.is_empty() {
        t.note = t.note.map(|n| {
            format!(
                "Counties (FIPS) whose rate is suppressed, not listed: {}. {n}",
                hidden_counties.join(", ")
            )
        });
    }
    t
}

fn data_quality(g: &Gathered) -> Section {
    let mut t = Table {
        id: "data_quality".into(),
        title: "Rows read and how they were used".into(),
        columns: vec![
            Column::text("extract", "Extract"),
            Column::text("count", "Count"),
            Column::number("rows", "Rows"),
            Column::text("note", "Note"),
        ],
        rows: Vec::new(),
        note: Some("Counts of rows, not members: no cell here describes a person.".into()),
    };
    for e in &g.extracts {
        t.rows.push(vec![
            Cell::text(e.name),
            Cell::text("read"),
            Cell::count(e.rows as f64),
            Cell::text(""),
        ]);
        let Some(q) = g
            .quality
            .as_ref()
            .and_then(|q| q.extracts.iter().find(|x| x.name == e.name))
        else {
            continue;
        };
        for (rule, n) in &q.set_aside {
            t.rows.push(vec![
                Cell::text(e.name),
                Cell::text("set aside"),
                Cell::count(*n as f64),
                Cell::text(format!("broke rule {rule}")),
            ]);
        }
        t.rows.push(vec![
            Cell::text(e.name),
            Cell::text("used"),
            Cell::count(q.used as f64),
            Cell::text("rows the measures read"),
        ]);
    }
    let c = &g.claim_versions;
    for (what, n, note) in [
        (
            "final",
            c.final_lines,
            "used lines of final claim versions: what measures count",
        ),
        (
            "superseded",
            c.superseded_lines,
            "versions later replaced or voided",
        ),
        ("void", c.void_lines, "void transactions"),
    ] {
        t.rows.push(vec![
            Cell::text("claims"),
            Cell::text(what),
            Cell::count(n as f64),
            Cell::text(note),
        ]);
    }
    let failed: Vec<&crate::cms::Check> = g.checks.iter().filter(|c| !c.passed).collect();
    let mut elements = vec![
        Element::Paragraph {
            text: format!(
                "Claim lines used reconcile: {} used = {} final + {} superseded + {} void. CMS \
                 consistency checks on the state's results for the year: {} of {} hold.",
                c.lines_read,
                c.final_lines,
                c.superseded_lines,
                c.void_lines,
                g.checks.len() - failed.len(),
                g.checks.len()
            ),
        },
        Element::Table(t),
    ];
    if !failed.is_empty() {
        elements.push(Element::List {
            items: failed
                .iter()
                // The check's name and stratum only: its detail holds raw, unsuppressed counts.
                .map(|c| {
                    format!(
                        "{} {}: {} fails ({} {})",
                        c.measure, c.component, c.check, c.stratifier, c.stratum
                    )
                })
                .collect(),
        });
    }
    if let Some(q) = &g.quality {
        let failed = q.failed();
        let warned = q.warnings();
        elements.push(Element::Paragraph {
            text: format!(
                "Before any measure ran, the extracts were profiled by {} data-quality checks \
                 (completeness, conformance of codes and dates, plausibility; `hhq validate` \
                 writes the full report): {} failed their threshold{}, {} warned.",
                q.checks.len(),
                failed.len(),
                match (failed.is_empty(), q.on_failure) {
                    (true, _) => "",
                    (false, crate::quality::OnFailure::Caveat) => {
                        " and the policy publishes with a caveat"
                    }
                    (false, crate::quality::OnFailure::Refuse) => "",
                },
                warned.len()
            ),
        });
        // Shares of rows, not counts of members: no cell describes a person.
        let items: Vec<String> = failed
            .iter()
            .chain(warned.iter())
            .map(|c| {
                format!(
                    "{} ({}): {} — {} of rows, at most {} allowed",
                    c.id,
                    c.status().name(),
                    c.what,
                    crate::quality::percent(c.share()),
                    crate::quality::percent(c.max_share)
                )
            })
            .collect();
        if !items.is_empty() {
            elements.push(Element::List { items });
        }
    }
    Section {
        id: "data-quality".into(),
        title: "Data quality".into(),
        elements,
    }
}

/// The statistical methods' sources, as the methods appendix cites them.
const REFERENCES: [&str; 8] = [
    "Breslow NE, Day NE. Statistical Methods in Cancer Research, vol. II. IARC, 1987 (Byar's \
     approximation).",
    "Cochran WG. Sampling Techniques, 3rd ed. Wiley, 1977 (ratio estimators).",
    "Korn EL, Graubard BI. Confidence intervals for proportions with small expected number of \
     positive counts estimated from survey data. Survey Methodology 1998;24:193-201.",
    "Laney DB. Improved control charts for attributes. Quality Engineering 2002;14:531-537.",
    "Montgomery DC. Introduction to Statistical Quality Control, 8th ed. Wiley, 2019.",
    "Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven \
     methods. Statistics in Medicine 1998;17:857-872.",
    "Wheeler DJ. Advanced Topics in Statistical Process Control. SPC Press, 1995.",
    "Wilson EB. Probable inference, the law of succession, and statistical inference. Journal \
     of the American Statistical Association 1927;22:209-212.",
];

fn methods(g: &Gathered) -> Section {
    let mut elements = vec![
        Element::Heading {
            text: "Periods".into(),
        },
        Element::Paragraph {
            text: format!(
                "Measures are computed over the twelve months ending with the report quarter \
                 ({} to {}) by their CMS specifications, whose windows (discharges through \
                 December 1, intake periods, look-backs) are read relative to that year. The \
                 comparison year is the twelve months before. Quarterly trend and control-chart \
                 points count the units dated in each quarter under the \
                 annual measurement. Results are final when claims have {} days of run-out after \
                 the year ends, otherwise provisional.",
                g.current.start,
                g.current.end,
                crate::cms::RUN_OUT_DAYS
            ),
        },
        Element::Heading {
            text: "Suppression".into(),
        },
        Element::Paragraph {
            text: format!(
                "Every published table, chart and file follows CMS's small-cell rule: no count \
                 from 1 to {n} is shown, nor any figure from which one can be worked out; no rate \
                 is shown over a denominator under {d}. A table (one measure and year: every \
                 component's total, its strata and its quarters) is checked as a reader would \
                 use it: strata and quarters add up to their total, components that share a \
                 denominator share it in every stratum, and a percentage's denominator less its \
                 numerator counts the units without the outcome. No hidden count, no count of \
                 units without the outcome, no difference between two nested numerators over one \
                 denominator (followed up within 30 days but not within 7) and no sum of the \
                 hidden strata of a shown total may be 1 to {n} and determined by the shown \
                 cells (linear algebra over the table's equations); where one is, the smallest \
                 shown cell linked to it is hidden too (complementary suppression), until none \
                 is. A rate over fewer than {d} is hidden with its numerator, which with the \
                 denominator would give it back; this rule is about reliability, so such a rate \
                 may still follow from other components (a length of stay from its days and \
                 discharges). Benchmarks beside an MCO's or a partner's own \
                 figures (the state's, its MCOs') are rates only. {legend}",
                n = suppress::SMALL_CELL,
                d = suppress::MIN_RATE_DENOMINATOR,
                legend = suppress::legend()
            ),
        },
        Element::Heading {
            text: "Confidence intervals and comparisons".into(),
        },
        Element::Paragraph {
            text: "Percentages carry Wilson score 95% intervals (Wilson 1927; Newcombe 1998); \
                   rates per 1,000 carry Byar's approximation to the exact Poisson interval \
                   (Breslow and Day 1987). A member contributes several units to many measures \
                   (twelve member months, several discharges or stays), and a member's units \
                   are alike, so they are not independent: each interval takes the members as \
                   clusters. The variance of the rate is the ratio estimator's with members as \
                   clusters (Taylor linearisation; Cochran 1977, section 6.3), its ratio to the \
                   variance for independent units is the design effect (never taken below 1), \
                   and the interval is Wilson's or Byar's over the effective sample (the counts \
                   divided by the design effect; Korn and Graubard 1998). Average lengths of \
                   stay carry a normal interval on the same cluster variance. Ratios of \
                   observed to expected readmissions and medians carry none (no variance of the \
                   expected counts is supplied; a median's needs the units themselves). A unit \
                   is better or worse than the state when its interval lies wholly on one side \
                   of the state rate."
                .into(),
        },
        Element::Paragraph {
            text: "A change from the year before is called improved or worsened only when a \
                 two-sided z-test at the 5% level finds it (the difference over the square root \
                 of the two years' variances, each with its design effect); otherwise it reads \
                 no significant change. The years are treated as independent although many \
                 members are in both; their rates correlate positively, so the test is \
                 conservative. Components without a variance read not tested. Rates are \
                 rounded half away from zero to the places shown (one; ratios two) and a \
                 change is the difference of the rates as shown, so the columns agree as read."
                .into(),
        },
        Element::Paragraph {
            text: format!(
                "Control charts are p-charts (shares) and u-charts (rates per 1,000) by quarter \
                 with 3-sigma limits for each quarter's size (Montgomery 2019). With large \
                 denominators those limits are so narrow that the ordinary variation between \
                 quarters shows as special causes; where the quarters' z-scores vary more than \
                 chance (Laney's σz over 1, from their median moving range over 0.954, robust to \
                 one wild quarter; Laney 2002, Wheeler 1995) the limits are widened by σz: a \
                 p′- or u′-chart, named so on the chart. Signals: a point beyond a limit, {} in \
                 a row on one side of the centre, {} in a row rising or falling.",
                crate::spc::SHIFT_RUN,
                crate::spc::TREND_RUN
            ),
        },
        Element::Heading {
            text: "Charts".into(),
        },
        Element::Paragraph {
            text: "A value axis starts at zero unless that would leave more than a third of the \
                   plot empty; it then starts at a round number below the smallest value and its \
                   label says where (\"axis from 40\"), so differences between units can be \
                   seen but must not be read as ratios. Each unit keeps one colour throughout the \
                   report: the report's own MCO or partner vermillion, the state near-black, each \
                   MCO its own colour, other partners grey. A follow-up curve's day hidden by \
                   suppression carries the last shown share over, dashed: the true share is at \
                   least that. A chart whose every value is suppressed is not drawn; a line says \
                   so."
            .into(),
        },
        Element::Heading {
            text: "References".into(),
        },
        Element::List {
            items: REFERENCES.iter().map(|r| r.to_string()).collect(),
        },
        Element::Heading {
            text: "Audiences".into(),
        },
        Element::Paragraph {
            text: "The state report covers every member. An MCO report counts the units of the \
                   MCO's members (the MCO on the event date). A partner scorecard counts the units \
                   of the partner's assigned members; benchmarks from others are aggregates only, \
                   and its worklist lists its own members only."
                .into(),
        },
        Element::Heading {
            text: "Measure definitions and deviations".into(),
        },
    ];
    for m in &g.measures {
        let mut items = vec![
            (
                "Measure".to_string(),
                format!("{} {} — {}", m.id, m.version, m.title),
            ),
            ("Source".to_string(), m.source.clone()),
        ];
        if let Some(d) = &m.description {
            items.push(("Definition".into(), d.clone()));
        }
        items.push((
            "Deviations from the CMS specification".into(),
            match m.reporting.all_deviations() {
                d if d.is_empty() => "none".into(),
                d => d.join(" "),
            },
        ));
        if let Some(n) = &m.reporting.notes {
            items.push(("Notes".into(), n.clone()));
        }
        elements.push(Element::Facts { items });
    }
    Section {
        id: "methods".into(),
        title: "Methods".into(),
        elements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published counts in day order, each with whether it is an anchor (published elsewhere):
    /// 0 before day 0, every shown day, and every anchor that is not small.
    fn published(by_day: &[u64], anchors: &[usize]) -> Vec<(u64, bool)> {
        let shown = shown_days(by_day, anchors);
        let mut out = vec![(0, true)];
        for (d, &n) in by_day.iter().enumerate() {
            let anchor = anchors.contains(&d) && !(n > 0 && n <= 10);
            if shown[d] || anchor {
                out.push((n, anchor));
            }
        }
        out
    }

    #[test]
    fn no_step_of_one_to_ten_between_published_points() {
        let cases: [&[u64]; 4] = [
            &[0, 3, 9, 12, 15, 22, 23, 23, 24, 40],
            &[5, 11, 12, 13, 30, 31, 45, 46, 47, 47],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[20, 20, 21, 33, 34, 35, 36, 50, 50, 61],
        ];
        for by_day in cases {
            for anchors in [&[][..], &[3, 9][..], &[7, 9][..]] {
                let p = published(by_day, anchors);
                for w in p.windows(2) {
                    // Two anchors' difference is the other tables' business, not the curve's.
                    if w[0].1 && w[1].1 {
                        continue;
                    }
                    let step = w[1].0 - w[0].0;
                    assert!(
                        step == 0 || step > 10,
                        "{by_day:?} anchors {anchors:?}: published {p:?} has a step of {step}"
                    );
                }
            }
        }
    }

    #[test]
    fn large_steps_are_all_shown() {
        let by_day = [0, 11, 22, 33, 44];
        assert_eq!(shown_days(&by_day, &[4]), vec![true; 5]);
        // A small anchor is not published, so it constrains nothing but is not shown either.
        assert_eq!(shown_days(&[0, 4, 4], &[2]), vec![true, false, false]);
    }
}
