//! Planning: a checked [`Measure`], its names resolved against the [`Catalog`], becomes a
//! [`MeasurePlan`] for one period: the steps in the order the measure's rules apply, what each
//! numerator column is, and what each component reports.

use std::collections::BTreeMap;

use super::ir::{
    ConditionQuery, EventSource, Ineligible, MeasurePlan, Numerator, Population, Role, Step,
    StepKind, Value,
};
use super::resolve::Resolver;
use super::{Catalog, Output, Source};
use crate::error::{Error, Result};
use crate::measure::{
    Aggregate, Among, Anchor, Attribute, Basis, Combine, ComponentKind, CountBy, Located, Measure,
    MonthRule,
};
use crate::period::Period;

fn step<T>(name: impl Into<String>, kind: StepKind, at: &Located<T>) -> Step {
    Step {
        name: name.into(),
        kind,
        at: (at.line, at.column),
    }
}

/// The columns an enrolment block must have.
const ENROLLMENT_COLUMNS: [&str; 6] = [
    "member_id",
    "start_date",
    "end_date",
    "mco_id",
    "hhp_id",
    "population",
];

/// Plan a measure for a period against the catalog; every problem found is reported, each at
/// its line and column in the measure's file.
pub fn plan(m: &Measure, catalog: &Catalog, period: &Period) -> Result<MeasurePlan> {
    let r = Resolver { m, catalog };
    let mut problems: Vec<Error> = Vec::new();
    let program = m.program.block().to_string();
    let located = |message: String, hint: Option<String>| Error::Definition {
        path: m.path.clone(),
        line: m.program_at.line,
        column: m.program_at.column,
        message,
        hint,
    };
    match catalog.blocks.get(&program) {
        None => problems.push(located(
            format!("the measure's enrolment needs the building block `{program}`"),
            Some(format!("add queries/{program}.sql")),
        )),
        Some(enrollment) => {
            for col in ENROLLMENT_COLUMNS {
                if !enrollment.iter().any(|(c, _)| c == col) {
                    problems.push(located(
                        format!(
                            "building block `{program}` lacks column `{col}`, which enrolment needs"
                        ),
                        Some(format!(
                            "an enrolment block has {}",
                            ENROLLMENT_COLUMNS.join(", ")
                        )),
                    ));
                }
            }
        }
    }
    let basis_at = &m.basis_at;

    // 1. Candidate units with their enrolment attributes on the anchor date.
    let mut steps: Vec<Step> = Vec::new();
    // Where the step of the events' own columns goes, should a condition read them.
    let mut refs_at = None;
    // Components counting a subset of the events.
    let mut subsets: Vec<usize> = Vec::new();
    match m.basis {
        Basis::Members => {
            let anchor = match m.anchor {
                Anchor::PeriodEnd => period.end,
                Anchor::PeriodStart => period.start,
            };
            steps.push(step(
                "candidates",
                StepKind::MemberCandidates {
                    program: program.clone(),
                    anchor,
                },
                basis_at,
            ));
        }
        Basis::MemberMonths => {
            let months = period
                .months()
                .iter()
                .map(|&(start, end)| {
                    let count = match m.member_months.rule {
                        MonthRule::CountDay => {
                            start + chrono::Days::new(u64::from(m.member_months.count_day) - 1)
                        }
                        MonthRule::AnyDay => end,
                    };
                    (start, end, count)
                })
                .collect();
            steps.push(step(
                "months",
                StepKind::Months {
                    rule: m.member_months.rule,
                    months,
                },
                basis_at,
            ));
            steps.push(step(
                "candidates",
                StepKind::MonthCandidates {
                    program: program.clone(),
                    rule: m.member_months.rule,
                },
                basis_at,
            ));
        }
        Basis::Events => {
            let e = m.events.as_ref().expect("events basis has events");
            let mut filter = None;
            let mut tests = Vec::new();
            if let Some(columns) = note(&mut problems, r.block(&e.block)) {
                note(&mut problems, r.column(&e.block, columns, &e.id));
                note(&mut problems, r.date_column(&e.block, columns, &e.date));
                if let Some(f) = &e.filter {
                    filter = note(&mut problems, r.filter(f, &e.block.value, "ev", columns));
                }
                for (k, c) in m.components.iter().enumerate() {
                    if let Some(f) = &c.subset
                        && let Some(test) =
                            note(&mut problems, r.filter(f, &e.block.value, "ev", columns))
                    {
                        tests.push((k, test));
                        subsets.push(k);
                    }
                }
            }
            let source = EventSource {
                block: e.block.value.clone(),
                id: e.id.value.clone(),
                date: e.date.value.clone(),
                filter,
                from: period.start + chrono::Duration::days(i64::from(e.start_offset)),
                to: period.end + chrono::Duration::days(i64::from(e.end_offset)),
            };
            steps.push(step(
                "events",
                StepKind::Events {
                    source: source.clone(),
                    subsets: tests,
                },
                &e.block,
            ));
            // Events kept apart before anything else is judged; among eligible events it is done
            // after the exclusions (below).
            let first_within = e
                .first_within
                .as_ref()
                .filter(|f| f.among == Among::All)
                .map(|f| f.days.value);
            if let Some(days) = first_within {
                // The counted event of a member and date is its first by id: a grouped minimum,
                // not row_number() over a window (DataFusion runs a window over a partition per
                // member and date about ten times slower).
                let at = &e.first_within.as_ref().expect("first_within is set").days;
                steps.push(step("events_first", StepKind::EventsFirst, at));
                if days > 1 {
                    steps.push(step("events_chained", StepKind::EventsChained { days }, at));
                }
            }
            refs_at = Some((steps.len(), source, &e.block));
            steps.push(step(
                "candidates",
                StepKind::EventCandidates {
                    program: program.clone(),
                    first_within,
                    subsets: subsets.clone(),
                },
                basis_at,
            ));
        }
    }

    // 2. Continuous enrolment around the anchor: gaps counted and measured.
    if let Some(ce) = &m.continuous {
        let at = &m.program_at;
        steps.push(step(
            "ce_windows",
            StepKind::CeWindows {
                segments: ce.segments.clone(),
            },
            at,
        ));
        steps.push(step(
            "ce_spans",
            StepKind::CeSpans {
                program: program.clone(),
            },
            at,
        ));
        steps.push(step("ce_distinct", StepKind::CeDistinct, at));
        steps.push(step("ce_ordered", StepKind::CeOrdered, at));
        steps.push(step(
            "ce_gaps",
            StepKind::CeGaps {
                segments: ce.segments.clone(),
            },
            at,
        ));
        steps.push(step(
            "ce",
            StepKind::Ce {
                segments: ce.segments.clone(),
            },
            at,
        ));
    }

    // 3. The units: age and band at the anchor, demographics, calendar strata. They come before
    // the numerators' steps, so that measures over the same units plan them alike up to here
    // (see `CompiledMeasure::staged`).
    steps.push(step(
        "units",
        StepKind::Units {
            bands: m.age_bands.clone(),
            carried: (m.basis == Basis::Events).then(|| subsets.clone()),
            ce: m.continuous.is_some(),
        },
        basis_at,
    ));

    // Why a unit is not in the measure, in the order judged (the exclusions follow).
    let repeat_first = m
        .events
        .as_ref()
        .and_then(|e| e.first_within.as_ref())
        .filter(|f| f.among == Among::All);
    let mut ineligible = Vec::new();
    if let Some(f) = repeat_first {
        ineligible.push(Ineligible::Repeat { days: f.days.value });
    }
    if m.on_anchor {
        ineligible.push(Ineligible::NotEnrolled);
    }
    ineligible.push(Ineligible::AgeOutsideBands);
    if let Some(ce) = &m.continuous {
        ineligible.push(Ineligible::NotContinuous {
            segments: ce.segments.clone(),
        });
    }

    // 4. Exclusions and numerators: one step each.
    let none = BTreeMap::new();
    let mut exclusions = Vec::new();
    for (i, x) in m.exclusions.iter().enumerate() {
        let name = format!("x{i}");
        let Some(arms) = note(&mut problems, r.condition(&x.condition, &none)) else {
            continue;
        };
        let query = ConditionQuery {
            arms,
            basis: m.basis,
            period: *period,
            days: false,
            providers: false,
            suffices: false,
            ends: false,
            all: x.condition.combine == Combine::All,
            nearest_among: None,
        };
        steps.push(step(
            &name,
            StepKind::Condition {
                role: Role::Exclusion(x.name.value.clone()),
                query,
            },
            &x.name,
        ));
        exclusions.push((x.name.value.clone(), name));
    }
    // Eligibility judged before the numerators, when a later step counts eligible units only:
    // events kept apart among eligible events, numerators counted toward the nearest eligible
    // unit. `judged_in` names the step whose units are judged.
    let dedup = m
        .events
        .as_ref()
        .and_then(|e| e.first_within.as_ref())
        .filter(|f| f.among == Among::Eligible);
    let attributes = m
        .numerators()
        .any(|(_, _, c)| c.attribute.value == Attribute::NearestPreceding);
    let judged_in = if dedup.is_some() || attributes {
        steps.push(step(
            "eligible",
            StepKind::Eligible {
                ineligible: ineligible.clone(),
                exclusions: exclusions.clone(),
            },
            basis_at,
        ));
        match dedup {
            Some(f) => {
                let days = f.days.value;
                steps.push(step("eligible_first", StepKind::EligibleFirst, &f.days));
                if days > 1 {
                    steps.push(step(
                        "eligible_chained",
                        StepKind::EligibleChained { days },
                        &f.days,
                    ));
                }
                steps.push(step("deduped", StepKind::Deduped { days }, &f.days));
                Some("deduped")
            }
            None => Some("eligible"),
        }
    } else {
        None
    };
    // Components whose optional input is missing are left out, with ratios over them.
    let mut not_reported: Vec<(String, String)> = Vec::new();
    for c in &m.components {
        if let Some(n) = &c.needs
            && !catalog.inputs.contains(&n.value)
        {
            not_reported.push((c.name.value.clone(), n.value.clone()));
        }
    }
    for c in &m.components {
        if let ComponentKind::Ratio {
            numerator,
            denominator,
        } = &c.kind
            && let Some((_, input)) = not_reported
                .iter()
                .find(|(n, _)| *n == numerator.value || *n == denominator.value)
                .cloned()
            && !not_reported.iter().any(|(n, _)| *n == c.name.value)
        {
            not_reported.push((c.name.value.clone(), input));
        }
    }
    let skipped = |name: &str| not_reported.iter().any(|(n, _)| n == name);
    let mut numerators: Vec<Numerator> = Vec::new();
    let mut index_of: BTreeMap<&str, usize> = BTreeMap::new();
    // Numerators whose evidence is the same query (IET-HH's cohorts: one condition, then kept
    // per cohort by a subset) are one step: the later reads the first's, and conditions
    // anchored on it are then the same query too.
    let mut step_of: BTreeMap<&str, String> = BTreeMap::new();
    let mut computed: Vec<(ConditionQuery, String)> = Vec::new();
    let mut failed: std::collections::BTreeSet<&str> = Default::default();
    // Numerators a later one counts from the end of (`after: {…, at: end}`).
    let ends_of: std::collections::BTreeSet<&str> = m
        .numerators()
        .flat_map(|(_, _, c)| c.arms())
        .filter(|a| a.after_at == crate::measure::AfterAt::End)
        .filter_map(|a| a.after.as_ref().map(|x| x.value.as_str()))
        .collect();
    let mut evidence: Vec<String> = exclusions.iter().map(|(_, s)| s.clone()).collect();
    for (k, c, cond) in m.numerators() {
        if skipped(&c.name.value) {
            continue;
        }
        let i = numerators.len();
        // A numerator counted after one that did not resolve is not resolved either: its
        // `after:` would be reported as naming nothing, which is not its problem.
        if cond.arms().any(|a| {
            a.after
                .as_ref()
                .is_some_and(|x| failed.contains(x.value.as_str()))
        }) {
            failed.insert(c.name.value.as_str());
            continue;
        }
        let Some(arms) = note(&mut problems, r.condition(cond, &step_of)) else {
            failed.insert(c.name.value.as_str());
            continue;
        };
        let whole = arms.iter().all(|a| a.whole);
        let query = ConditionQuery {
            suffices: arms.iter().any(|a| a.suffices.is_some()),
            arms,
            basis: m.basis,
            period: *period,
            // Days (and providers) on which rows fall are counted only for `at_least`.
            days: cond.at_least.is_some() && cond.by != CountBy::Event,
            providers: cond.at_least.is_some() && cond.by == CountBy::DayProvider,
            all: cond.combine == Combine::All,
            ends: ends_of.contains(c.name.value.as_str()),
            nearest_among: (cond.attribute.value == Attribute::NearestPreceding).then(|| {
                judged_in
                    .expect("attribution judges eligibility first")
                    .to_string()
            }),
        };
        let query_suffices = query.suffices;
        if query.nearest_among.is_some()
            && let Some(arm) = query.arms.iter().find(|a| a.id.is_none())
        {
            problems.push(r.err(
                &Located {
                    value: arm.block.clone(),
                    line: cond.attribute.line,
                    column: cond.attribute.column,
                },
                format!(
                    "`attribute: nearest_preceding` needs each row's id: `{}` has no `source_id`; name one with `id:`",
                    arm.block
                ),
                None,
            ));
        }
        let name = match computed.iter().find(|(q, _)| *q == query) {
            Some((_, name)) => name.clone(),
            None => {
                let name = format!("n{i}");
                computed.push((query.clone(), name.clone()));
                steps.push(step(
                    &name,
                    StepKind::Condition {
                        role: Role::Numerator(c.name.value.clone()),
                        query,
                    },
                    &c.name,
                ));
                evidence.push(name.clone());
                name
            }
        };
        step_of.insert(c.name.value.as_str(), name.clone());
        let value = match (&cond.aggregate, cond.at_least) {
            (Aggregate::Exists, Some(n)) => Value::AtLeast {
                n,
                by: cond.by,
                suffices: query_suffices,
            },
            (Aggregate::Exists, None) => Value::Exists,
            (Aggregate::Count, _) => Value::Count,
            (Aggregate::Sum(_), _) => Value::Sum,
            (Aggregate::First, _) => Value::DaysToFirst,
        };
        index_of.insert(c.name.value.as_str(), i);
        numerators.push(Numerator {
            name: c.name.value.clone(),
            step: name,
            value,
            subset: subsets.contains(&k).then_some(k),
            whole,
        });
    }

    // The events' own columns the conditions read, in a step before the first of them.
    let mut columns: Vec<String> = Vec::new();
    for s in &steps {
        if let StepKind::Condition { query, .. } = &s.kind {
            for c in query.arms.iter().flat_map(|a| &a.unit_columns) {
                if !columns.contains(c) {
                    columns.push(c.clone());
                }
            }
        }
    }
    if let (Some((at, source, block)), false) = (refs_at, columns.is_empty()) {
        steps.insert(
            at,
            step("event_refs", StepKind::EventRefs { source, columns }, block),
        );
    }
    let judged = match judged_in {
        Some(from) => StepKind::Scored {
            from: from.to_string(),
            numerators: numerators.clone(),
            evidence: evidence.split_off(exclusions.len()),
        },
        None => StepKind::Judged {
            ineligible,
            exclusions,
            numerators: numerators.clone(),
            evidence,
        },
    };
    steps.push(step("judged", judged, basis_at));
    if m.outliers.is_some() {
        steps.push(step("counted", StepKind::Counted, basis_at));
    }
    steps.push(step(
        "detail",
        StepKind::Detail {
            outliers: m.outliers,
            numerators: numerators.len(),
        },
        basis_at,
    ));
    if !problems.is_empty() {
        return Err(Error::many(problems));
    }

    let components = outputs(m, &numerators, &index_of, &skipped);
    // 6. The population: members of the programme in the period, by age on its last day.
    let population = m
        .components
        .iter()
        .any(|c| matches!(c.kind, ComponentKind::Enrollees { .. }))
        .then(|| Population {
            program: program.clone(),
        });
    Ok(MeasurePlan {
        id: m.id.clone(),
        version: m.version.clone(),
        title: m.title.clone(),
        basis: m.basis,
        period: *period,
        steps,
        numerators,
        components,
        stratify: m.stratify.clone(),
        age_bands: m.age_bands.clone(),
        not_reported,
        population,
    })
}

/// `result`'s value, or `None` with its error noted.
fn note<T>(problems: &mut Vec<Error>, result: Result<T>) -> Option<T> {
    result.map_err(|e| problems.push(e)).ok()
}

/// What each reported component is: which numbers of the detail and population it divides.
fn outputs(
    m: &Measure,
    numerators: &[Numerator],
    index_of: &BTreeMap<&str, usize>,
    skipped: &dyn Fn(&str) -> bool,
) -> Vec<(String, crate::measure::Unit, Output)> {
    let source = |name: &str| -> Source {
        let c = m
            .components
            .iter()
            .find(|c| c.name.value == name)
            .expect("references checked by the model");
        match &c.kind {
            ComponentKind::Denominator => Source::Denominator,
            ComponentKind::Enrollees { outliers: false } => Source::Enrollees,
            ComponentKind::Enrollees { outliers: true } => Source::Outliers,
            _ => Source::Numerator(index_of[name]),
        }
    };
    let mut outputs = Vec::new();
    for c in &m.components {
        if skipped(&c.name.value) {
            continue;
        }
        let output = match &c.kind {
            ComponentKind::Numerator(cond) if cond.aggregate == Aggregate::First => {
                Output::Median(index_of[c.name.value.as_str()])
            }
            ComponentKind::Numerator(_) => {
                let i = index_of[c.name.value.as_str()];
                Output::Rate {
                    numerator: Source::Numerator(i),
                    denominator: if numerators[i].subset.is_some() {
                        Source::SubsetDenominator(i)
                    } else {
                        Source::Denominator
                    },
                }
            }
            ComponentKind::Ratio {
                numerator,
                denominator,
            } => Output::Rate {
                numerator: source(&numerator.value),
                denominator: source(&denominator.value),
            },
            ComponentKind::Denominator => Output::Rate {
                numerator: Source::Denominator,
                denominator: Source::Denominator,
            },
            ComponentKind::Enrollees { outliers } => Output::Rate {
                numerator: if *outliers {
                    Source::Outliers
                } else {
                    Source::Enrollees
                },
                denominator: Source::Enrollees,
            },
        };
        outputs.push((c.name.value.clone(), c.unit, output));
    }
    outputs
}
