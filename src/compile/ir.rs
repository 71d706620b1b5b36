//! The measure plan: the form between a resolved measure and its SQL. A plan is the list of named
//! steps a measure computes, in order, each saying what it is and which steps and relations it
//! reads; the numerator columns of the detail; what each component reports. Everything later
//! stages need is read from here, never from the SQL: the renderer writes each step as one common
//! table expression, the engine keeps a step read twice or more as a table and shares a step two
//! measures plan alike, and `hhq compile --steps` prints the plan.

use std::fmt;

use chrono::NaiveDate;

use super::resolve::Arm;
use super::{Output, Source};
use crate::measure::{AgeBand, Basis, CountBy, MonthRule, Segment, Stratifier, Unit};
use crate::period::Period;

/// A measure for one period, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurePlan {
    pub id: String,
    pub version: String,
    pub title: String,
    pub basis: Basis,
    pub period: Period,
    /// The steps in order; the last is `detail`.
    pub steps: Vec<Step>,
    /// The detail's numerator columns (`num_<i>`), in order.
    pub numerators: Vec<Numerator>,
    /// Component names, units and what they report, in the measure's order.
    pub components: Vec<(String, Unit, Output)>,
    pub stratify: Vec<Stratifier>,
    pub age_bands: Vec<AgeBand>,
    /// Components left out because an optional input is missing: (component, input).
    pub not_reported: Vec<(String, String)>,
    /// The population query's plan, when a component counts enrollees.
    pub population: Option<Population>,
}

/// One step: a common table expression of the compiled query.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    /// The line and column of the measure file the step comes from (the events' block, an
    /// exclusion's or a component's name, else the basis): where a step that does not plan is
    /// reported.
    pub at: (usize, usize),
}

/// What a step computes, with everything its SQL is written from: two steps of one kind with
/// equal fields are the same query.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// The period's months, with the day each is counted on.
    Months {
        rule: MonthRule,
        months: Vec<(NaiveDate, NaiveDate, NaiveDate)>,
    },
    /// Members enrolled on the anchor date, with the interval covering it.
    MemberCandidates { program: String, anchor: NaiveDate },
    /// One unit per member and month, with the interval covering the month.
    MonthCandidates { program: String, rule: MonthRule },
    /// The events' rows, with a flag per component subset: (component index, checked SQL of
    /// the test).
    Events {
        source: EventSource,
        subsets: Vec<(usize, String)>,
    },
    /// Per event, the columns of its row that conditions read (`unit.<column>`, `of:`): the
    /// least value of each, as an event id may have several rows.
    EventRefs {
        source: EventSource,
        columns: Vec<String>,
    },
    /// Per member and date, the event counted that day (the least id).
    EventsFirst,
    /// The counted event each event belongs to: the first, then the first `days` or more after
    /// the last counted.
    EventsChained { days: u32 },
    /// Each event with the enrolment interval covering its date; with `first_within`, the date
    /// of the counted event it repeats.
    EventCandidates {
        program: String,
        first_within: Option<u32>,
        subsets: Vec<usize>,
    },
    /// Per unit, each continuous-enrolment segment's first and last day.
    CeWindows { segments: Vec<Segment> },
    /// Enrolment intervals clipped to each segment.
    CeSpans { program: String },
    /// The distinct clipped intervals.
    CeDistinct,
    /// Each interval with the latest end before it in its segment.
    CeOrdered,
    /// Per unit and segment: the gaps and the longest.
    CeGaps { segments: Vec<Segment> },
    /// Per unit: why it is not continuously enrolled (the segments that fail), or null.
    Ce { segments: Vec<Segment> },
    /// Age and band at the anchor, demographics, calendar strata; `carried` are the event
    /// columns kept (the repeat date and the subset flags), `ce` whether gaps are joined.
    Units {
        bands: Vec<AgeBand>,
        carried: Option<Vec<usize>>,
        ce: bool,
    },
    /// An exclusion's or a numerator's evidence per unit.
    Condition { role: Role, query: ConditionQuery },
    /// Why a unit is not in the measure (in the order judged) and which exclusion removed it,
    /// before the numerators: for a measure whose later steps count only eligible units
    /// (`first_within` among eligible events, numerators attributed to the nearest unit).
    Eligible {
        ineligible: Vec<Ineligible>,
        /// (exclusion name, its step), in the measure's order: the first that applies is kept.
        exclusions: Vec<(String, String)>,
    },
    /// Per member and date, the eligible event counted that day (the least id).
    EligibleFirst,
    /// Each eligible event's counted event: the first, then the first `days` or more after the
    /// last counted.
    EligibleChained { days: u32 },
    /// The eligible events not counted, set outside the denominator as repeats.
    Deduped { days: u32 },
    /// The numerator columns of each unit judged in step `from`.
    Scored {
        from: String,
        numerators: Vec<Numerator>,
        /// The numerators' evidence steps joined to the units.
        evidence: Vec<String>,
    },
    /// Why a unit is not in the measure, in the order judged; which exclusion removed it; the
    /// numerator columns.
    Judged {
        ineligible: Vec<Ineligible>,
        /// (exclusion name, its step), in the measure's order: the first that applies is kept.
        exclusions: Vec<(String, String)>,
        numerators: Vec<Numerator>,
        /// The evidence steps joined to the units.
        evidence: Vec<String>,
    },
    /// Per member, the units that would be in the denominator (for the outlier rule).
    Counted,
    /// One row per candidate unit: in the denominator or why not, and the numerator evidence.
    Detail {
        outliers: Option<u32>,
        numerators: usize,
    },
}

/// The rows of the events' block that are the measure's events: dated `from` to `to`, passing
/// its filter (checked SQL over the block aliased `ev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    pub block: String,
    pub id: String,
    pub date: String,
    pub filter: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Whose evidence a condition step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Exclusion(String),
    Numerator(String),
}

/// The query of a condition step: the qualifying rows of its arms, aggregated per unit. Two
/// numerators with equal queries are one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionQuery {
    pub arms: Vec<Arm>,
    pub basis: Basis,
    pub period: Period,
    /// Count the distinct days the rows fall on (`at_least`), or with `providers` the distinct
    /// days and providers.
    pub days: bool,
    pub providers: bool,
    /// Keep whether a row satisfies the count alone (`suffices:`).
    pub suffices: bool,
    /// Keep only units with rows in every arm (`all_of:`).
    pub all: bool,
    /// Keep the day the first row ends (`first_end`), which a later `after: {…, at: end}`
    /// counts from.
    pub ends: bool,
    /// With a step name: each row counts only toward the unit in that step's denominator whose
    /// anchor date is the latest of those whose window holds it (`attribute: nearest_preceding`).
    pub nearest_among: Option<String>,
}

/// A reason a unit is not in the measure, as judged in the order of [`StepKind::Judged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// Within `days` of the event counted before it (`first_within`).
    Repeat {
        days: u32,
    },
    NotEnrolled,
    AgeOutsideBands,
    NotContinuous {
        segments: Vec<Segment>,
    },
}

/// How a numerator's evidence becomes its value per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// 1 with at least `n` rows counted as `by` says, or (with `suffices`) one row that
    /// suffices.
    AtLeast {
        n: u32,
        by: CountBy,
        suffices: bool,
    },
    /// 1 with any row.
    Exists,
    Count,
    Sum,
    /// Days from the anchor to the first row.
    DaysToFirst,
}

/// One numerator column of the detail (`num_<i>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numerator {
    /// The component's name, which names its columns in the detail output.
    pub name: String,
    /// The step holding its evidence (another numerator's when their queries are equal).
    pub step: String,
    pub value: Value,
    /// The component index of its subset of the events, when it counts only those.
    pub subset: Option<usize>,
    /// Every value it sums is a whole number: its sums add up exactly in any order.
    pub whole: bool,
}

impl Numerator {
    pub fn is_first(&self) -> bool {
        self.value == Value::DaysToFirst
    }
}

/// The population query: members of the programme on any day of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub program: String,
}

impl MeasurePlan {
    /// The rules that set a unit outside the denominator, in the order they are judged: the
    /// first that applies is the one a unit's detail names.
    pub fn order(&self) -> Vec<String> {
        let mut order = Vec::new();
        for s in &self.steps {
            match &s.kind {
                StepKind::Judged {
                    ineligible,
                    exclusions,
                    ..
                }
                | StepKind::Eligible {
                    ineligible,
                    exclusions,
                } => {
                    order.extend(ineligible.iter().map(ToString::to_string));
                    order.extend(exclusions.iter().map(|(n, _)| format!("exclusion `{n}`")));
                }
                StepKind::Deduped { days } => order.push(format!(
                    "within {days} days of an eligible event counted before (only events eligible so far are kept apart)"
                )),
                StepKind::Detail {
                    outliers: Some(n), ..
                } => order.push(format!(
                    "outlier (the member has {n}+ units in the denominator)"
                )),
                _ => {}
            }
        }
        order
    }
}

/// The relations (steps, blocks, extracts) `kind` reads, once per reference: a step read twice
/// is computed twice unless it is kept.
impl StepKind {
    pub fn reads(&self) -> Vec<&str> {
        match self {
            StepKind::Months { .. } => vec![],
            StepKind::MemberCandidates { program, .. } => vec![program],
            StepKind::MonthCandidates { program, .. } => vec![program, "months"],
            StepKind::Events { source, .. } | StepKind::EventRefs { source, .. } => {
                vec![&source.block]
            }
            StepKind::EventsFirst | StepKind::EventsChained { .. } => vec!["events"],
            StepKind::EventCandidates {
                program,
                first_within,
                ..
            } => {
                let mut r = vec!["events"];
                if first_within.is_some_and(|d| d > 1) {
                    r.push("events_chained");
                }
                if first_within.is_some() {
                    r.push("events_first");
                }
                r.extend(["events", program.as_str()]);
                r
            }
            StepKind::CeWindows { segments } => vec!["candidates"; segments.len()],
            StepKind::CeSpans { program } => vec!["ce_windows", program],
            StepKind::CeDistinct => vec!["ce_spans"],
            StepKind::CeOrdered => vec!["ce_distinct", "ce_distinct"],
            StepKind::CeGaps { .. } => vec!["ce_windows", "ce_ordered"],
            StepKind::Ce { .. } => vec!["ce_gaps"],
            StepKind::Units { ce, .. } => {
                let mut r = vec!["candidates", "members"];
                if *ce {
                    r.push("ce");
                }
                r
            }
            StepKind::Condition { query, .. } => {
                if query.by_month() {
                    std::iter::once("candidates")
                        .chain(query.arms.iter().map(|a| a.block.as_str()))
                        .collect()
                } else {
                    query
                        .arms
                        .iter()
                        .flat_map(|a| {
                            ["candidates"]
                                .into_iter()
                                .chain((!a.unit_columns.is_empty()).then_some("event_refs"))
                                .chain(query.nearest_among.as_deref())
                                .chain(a.after.as_deref())
                                .chain([a.block.as_str()])
                        })
                        .collect()
                }
            }
            StepKind::Judged { evidence, .. } => std::iter::once("units")
                .chain(evidence.iter().map(String::as_str))
                .collect(),
            StepKind::Eligible { exclusions, .. } => std::iter::once("units")
                .chain(exclusions.iter().map(|(_, s)| s.as_str()))
                .collect(),
            StepKind::EligibleFirst | StepKind::EligibleChained { .. } => vec!["eligible"],
            StepKind::Deduped { days } => {
                let mut r = vec!["eligible"];
                if *days > 1 {
                    r.push("eligible_chained");
                }
                r.push("eligible_first");
                r
            }
            StepKind::Scored { from, evidence, .. } => std::iter::once(from.as_str())
                .chain(evidence.iter().map(String::as_str))
                .collect(),
            StepKind::Counted => vec!["judged"],
            StepKind::Detail { outliers, .. } => {
                vec![if outliers.is_some() {
                    "counted"
                } else {
                    "judged"
                }]
            }
        }
    }

    /// Whether the engine holds this step as a table whoever reads it: the units (measures over
    /// the same units compute them once), and the evidence and gaps, each a narrow aggregate per
    /// unit that the detail joins to the units. Other steps are held when read twice or more.
    pub fn held(&self) -> bool {
        matches!(
            self,
            StepKind::Units { .. } | StepKind::Condition { .. } | StepKind::Ce { .. }
        )
    }
}

impl ConditionQuery {
    /// Member months whose arms read rows in the unit's own month: aggregated per member and
    /// month before they meet the units.
    pub fn by_month(&self) -> bool {
        self.basis == Basis::MemberMonths
            && self
                .arms
                .iter()
                .all(|a| a.after.is_none() && a.key.is_none() && !a.in_period)
    }
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::Repeat { days } => {
                write!(f, "within {days} days of the event counted before")
            }
            Ineligible::NotEnrolled => write!(f, "not enrolled on the anchor date"),
            Ineligible::AgeOutsideBands => write!(f, "age outside the age bands"),
            Ineligible::NotContinuous { segments } => write!(
                f,
                "not continuously enrolled: {}",
                segments
                    .iter()
                    .map(|s| format!("days {}..{} {}", s.window.from, s.window.to, allowed(s)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }
}

/// The gaps a segment allows, in words.
pub(crate) fn allowed(s: &Segment) -> String {
    match (s.max_gaps, s.max_gap_days) {
        (0, _) | (_, 0) => "with no gap".to_string(),
        (g, d) => format!("with at most {g} gap(s), none over {d} days"),
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::AtLeast { n, by, suffices } => {
                match by {
                    CountBy::Day => write!(f, "1 with rows on {n}+ distinct days")?,
                    CountBy::DayProvider => {
                        write!(f, "1 with rows on {n}+ distinct days and providers")?
                    }
                    CountBy::Event => write!(f, "1 with {n}+ rows")?,
                }
                if *suffices {
                    write!(f, ", or one row that suffices")?;
                }
                Ok(())
            }
            Value::Exists => write!(f, "1 with any row"),
            Value::Count => write!(f, "the rows counted"),
            Value::Sum => write!(f, "the sum"),
            Value::DaysToFirst => write!(f, "days to the first row"),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Numerator(i) => write!(f, "num_{i}"),
            Source::SubsetDenominator(i) => write!(f, "den_{i}"),
            Source::Denominator => write!(f, "denominator"),
            Source::Enrollees => write!(f, "enrollees"),
            Source::Outliers => write!(f, "outliers"),
        }
    }
}

/// One line saying what a step computes, for the printed plan.
fn describe(kind: &StepKind) -> String {
    let arms = |q: &ConditionQuery| -> String {
        q.arms
            .iter()
            .map(|a| {
                let window = match (a.window, &a.after, &a.key) {
                    (Some(w), Some(after), _) => format!(
                        " days {}..{} after {after}'s first {}",
                        w.from,
                        w.to,
                        if a.after_end { "row's end" } else { "date" }
                    ),
                    (Some(w), None, _) => match &a.of {
                        Some(of) => format!(
                            " days {}..{} of the unit's {of} (the anchor where it has none)",
                            w.from, w.to
                        ),
                        None => format!(" days {}..{} of the anchor", w.from, w.to),
                    },
                    (None, _, _) if a.in_period => " in the measurement period".into(),
                    (None, _, Some(k)) => format!(" where {k} is the unit"),
                    (None, _, None) if q.basis == Basis::MemberMonths => {
                        " in the unit's month".into()
                    }
                    (None, _, None) => " in the period".into(),
                };
                let filter = if a.filter.is_some() { ", filtered" } else { "" };
                format!("{}.{}{window}{filter}", a.block, a.date)
            })
            .collect::<Vec<_>>()
            .join(if q.all { " and " } else { " or " })
    };
    match kind {
        StepKind::Months { rule, months } => {
            format!(
                "{} months, counted {}",
                months.len(),
                match rule {
                    MonthRule::CountDay => "on their count day",
                    MonthRule::AnyDay => "on any day enrolled",
                }
            )
        }
        StepKind::MemberCandidates { anchor, .. } => {
            format!("members enrolled on {anchor}, the interval covering it")
        }
        StepKind::MonthCandidates { .. } => "one unit per member and month enrolled".into(),
        StepKind::Events { source, subsets } => format!(
            "rows of {} with {} {}..{}{}{}",
            source.block,
            source.date,
            source.from,
            source.to,
            if source.filter.is_some() {
                ", filtered"
            } else {
                ""
            },
            if subsets.is_empty() {
                String::new()
            } else {
                format!(", {} subset flag(s)", subsets.len())
            }
        ),
        StepKind::EventRefs { columns, .. } => {
            format!("per event, its {} for the conditions", columns.join(", "))
        }
        StepKind::EventsFirst => "per member and date, the event counted (least id)".into(),
        StepKind::EventsChained { days } => {
            format!("each event's counted event: the first, then the first {days}+ days after")
        }
        StepKind::EventCandidates { first_within, .. } => match first_within {
            Some(d) => format!(
                "every event (eligible or not) with its enrolment; repeats within {d} days marked"
            ),
            None => "every event with its enrolment".into(),
        },
        StepKind::CeWindows { segments } => format!(
            "continuous-enrolment segments: {}",
            segments
                .iter()
                .map(|s| format!("days {}..{} {}", s.window.from, s.window.to, allowed(s)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        StepKind::CeSpans { .. } => "enrolment clipped to each segment".into(),
        StepKind::CeDistinct => "distinct clipped intervals".into(),
        StepKind::CeOrdered => "each interval with the latest end before it".into(),
        StepKind::CeGaps { .. } => "per segment, the gaps and the longest".into(),
        StepKind::Ce { .. } => "per unit, the segments that fail".into(),
        StepKind::Units { bands, .. } => format!(
            "age at the anchor in bands {}; demographics; calendar strata",
            bands
                .iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepKind::Condition { role, query } => {
            let what = match role {
                Role::Exclusion(n) => format!("exclusion `{n}`"),
                Role::Numerator(n) => format!("numerator `{n}`"),
            };
            let days = match (query.days, query.providers) {
                (true, true) => ", distinct days and providers",
                (true, false) => ", distinct days",
                _ => "",
            };
            let days = format!(
                "{days}{}{}",
                if query.all { ", every arm needed" } else { "" },
                if query.suffices {
                    ", rows that suffice marked"
                } else {
                    ""
                }
            );
            let nearest = match &query.nearest_among {
                Some(among) => format!(
                    "; each row counted toward the latest unit of {among}'s denominator holding it"
                ),
                None => String::new(),
            };
            format!("{what}: {}{days}{nearest}", arms(query))
        }
        StepKind::Judged { evidence, .. } => format!(
            "per unit, the first rule that applies (the order below), and the numerator columns from {}",
            if evidence.is_empty() {
                "none".to_string()
            } else {
                evidence.join(", ")
            }
        ),
        StepKind::Eligible { exclusions, .. } => format!(
            "per unit, the first rule that applies (the order below) up to the exclusions{}",
            if exclusions.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    exclusions
                        .iter()
                        .map(|(_, s)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
        StepKind::EligibleFirst => {
            "per member and date, the eligible event counted (least id)".into()
        }
        StepKind::EligibleChained { days } => format!(
            "each eligible event's counted event: the first, then the first {days}+ days after"
        ),
        StepKind::Deduped { days } => {
            format!("eligible events within {days} days of one counted before are repeats")
        }
        StepKind::Scored { evidence, .. } => format!(
            "per unit, the numerator columns from {}",
            if evidence.is_empty() {
                "none".to_string()
            } else {
                evidence.join(", ")
            }
        ),
        StepKind::Counted => "per member, the units that would be in the denominator".into(),
        StepKind::Detail { outliers, .. } => match outliers {
            Some(n) => format!("in the denominator or why; members with {n}+ units are outliers"),
            None => "in the denominator or why, and the numerator evidence".into(),
        },
    }
}

/// The plan as a reviewer reads it: the steps in order with what each reads and computes, the
/// numerator columns, and what each component reports.
impl fmt::Display for MeasurePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} ({}), period {}, basis {}",
            self.id,
            self.version,
            self.title,
            self.period,
            self.basis.name()
        )?;
        writeln!(f, "steps:")?;
        let width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &self.steps {
            writeln!(f, "  {:width$}  {}", s.name, describe(&s.kind))?;
            writeln!(f, "  {:width$}    reads {}", "", s.kind.reads().join(", "))?;
        }
        writeln!(f, "judged in this order, the first that applies named:")?;
        for (i, rule) in self.order().iter().enumerate() {
            writeln!(f, "  {}. {rule}", i + 1)?;
        }
        writeln!(f, "numerators:")?;
        for (i, n) in self.numerators.iter().enumerate() {
            let subset = if n.subset.is_some() {
                ", over the events of its `where:`"
            } else {
                ""
            };
            writeln!(
                f,
                "  num_{i} `{}`: {} of {}{subset}",
                n.name, n.value, n.step
            )?;
        }
        writeln!(f, "components:")?;
        for (name, unit, output) in &self.components {
            let what = match output {
                Output::Rate {
                    numerator,
                    denominator,
                } => format!("{numerator} / {denominator}"),
                Output::Median(i) => format!("median of num_{i}"),
            };
            writeln!(f, "  {name}: {what}, {}", unit.name())?;
        }
        for (c, input) in &self.not_reported {
            writeln!(f, "  {c}: not reported without {input}")?;
        }
        Ok(())
    }
}
