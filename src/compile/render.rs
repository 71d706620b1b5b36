//! Rendering: each step of a [`MeasurePlan`] written as one commented common table expression,
//! the population query, and the aggregates over the detail. Nothing here decides what a measure
//! computes; names, text and dates are written through [`super::sql`].

use chrono::NaiveDate;

use super::ir::{
    ConditionQuery, EventSource, Ineligible, MeasurePlan, Numerator, Population, Role, Step,
    StepKind, Value,
};
use super::resolve::Arm;
use super::sql::{self, ident};
use crate::measure::{AgeBand, Basis, CountBy, MonthRule, Segment, Stratifier};
use crate::period::Period;

/// The comment line heading a measure's query.
pub fn header(plan: &MeasurePlan) -> String {
    format!(
        "-- {} {} ({}), period {}, basis {}",
        sql::comment(&plan.id),
        sql::comment(&plan.version),
        sql::comment(&plan.title),
        plan.period,
        plan.basis.name()
    )
}

impl Step {
    /// `name AS (…)`.
    pub fn render(&self) -> String {
        let name = &self.name;
        match &self.kind {
            StepKind::Months { months, .. } => {
                let rows = months
                    .iter()
                    .map(|(start, end, count)| {
                        format!(
                            "({}, {}, {})",
                            sql::date(*start),
                            sql::date(*end),
                            sql::date(*count)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",\n    ");
                format!("{name} (month_start, month_end, count_date) AS (VALUES\n    {rows})")
            }
            StepKind::MemberCandidates { program, anchor } => {
                let a = sql::date(*anchor);
                format!(
                    "{name} AS (\n  -- members enrolled on the anchor date, {anchor}, with the interval covering it\n  \
SELECT member_id AS unit_id, member_id, {a} AS anchor_date, CAST(NULL AS DATE) AS month_start,\n    \
mco_id, hhp_id, population, true AS enrolled FROM (\n    {p}\n  ) picked\n)",
                    p = latest_span(
                        &[("c.member_id", "member_id")],
                        &format!(
                            "{} c WHERE c.start_date <= {a} AND c.end_date >= {a}",
                            ident(program)
                        ),
                    ),
                )
            }
            StepKind::MonthCandidates { program, rule } => {
                let covers = match rule {
                    MonthRule::CountDay => {
                        "c.start_date <= mo.count_date AND c.end_date >= mo.count_date"
                    }
                    MonthRule::AnyDay => {
                        "c.start_date <= mo.month_end AND c.end_date >= mo.month_start"
                    }
                };
                format!(
                    "{name} AS (\n  -- one row per member and month: the enrolment interval covering the month, latest first\n  \
SELECT member_id || ':' || hhq_month(month_start) AS unit_id, member_id, count_date AS anchor_date, month_start,\n    \
mco_id, hhp_id, population, true AS enrolled FROM (\n    {p}\n  ) picked\n)",
                    p = latest_span(
                        &[
                            ("c.member_id", "member_id"),
                            ("mo.month_start", "month_start"),
                            ("mo.count_date", "count_date"),
                        ],
                        &format!("{} c JOIN months mo ON {covers}", ident(program)),
                    ),
                )
            }
            StepKind::Events { source, subsets } => {
                let sub_cols: String = subsets
                    .iter()
                    .map(|(k, test)| format!(", coalesce({test}, false) AS sub_{k}"))
                    .collect();
                format!(
                    "{name} AS (\n  -- rows of `{}` dated {} to {}\n  \
SELECT DISTINCT CAST(ev.{} AS VARCHAR) AS unit_id, ev.member_id, ev.{} AS anchor_date{sub_cols}\n  {}\n)",
                    sql::comment(&source.block),
                    source.from,
                    source.to,
                    ident(&source.id),
                    ident(&source.date),
                    events_from(source),
                )
            }
            StepKind::EventRefs { source, columns } => {
                let cols: String = columns
                    .iter()
                    .map(|c| format!(", min(ev.{}) AS {}", ident(c), ident(c)))
                    .collect();
                let id = ident(&source.id);
                format!(
                    "{name} AS (\n  -- per event, the columns of its row the conditions read\n  \
SELECT CAST(ev.{id} AS VARCHAR) AS unit_id{cols}\n  {}\n  GROUP BY CAST(ev.{id} AS VARCHAR)\n)",
                    events_from(source),
                )
            }
            StepKind::EventsFirst => format!(
                "{name} AS (\n  -- per member and date, the event that day counted (the first by id)\n  \
SELECT member_id, anchor_date, min(unit_id) AS first_unit FROM events GROUP BY member_id, anchor_date\n)"
            ),
            // Both lists come from one aggregate, which hands every accumulator the same rows in
            // the same order: they are aligned, in no particular order (hhq_episode_starts needs
            // none; an ordered array_agg is group by group).
            StepKind::EventsChained { days } => format!(
                "{name} AS (\n  -- the counted event each event belongs to: the first, then the first {days}+ days after the last counted\n  \
SELECT unnest(ids) AS unit_id, unnest(hhq_episode_starts(dates, {days})) AS episode_start FROM (\n    \
SELECT member_id, array_agg(unit_id) AS ids, array_agg(anchor_date) AS dates\n    \
FROM events GROUP BY member_id\n  )\n)"
            ),
            StepKind::EventCandidates {
                program,
                first_within,
                subsets,
            } => {
                let first = "\n  JOIN events_first f ON f.member_id = e.member_id AND f.anchor_date = e.anchor_date";
                let (chain_join, repeat) = match first_within {
                    // A day or more apart: every date starts its own episode, so nothing needs
                    // chaining (an ordered list per member was most of IET-HH's time).
                    Some(d) if *d <= 1 => (
                        first.to_string(),
                        "CASE WHEN e.unit_id = f.first_unit THEN CAST(NULL AS DATE) ELSE e.anchor_date END AS repeat_of"
                            .to_string(),
                    ),
                    // An episode starts on its counted event's date.
                    Some(_) => (
                        format!("\n  JOIN events_chained ch ON ch.unit_id = e.unit_id{first}"),
                        "CASE WHEN e.anchor_date = ch.episode_start AND e.unit_id = f.first_unit \
THEN CAST(NULL AS DATE) ELSE ch.episode_start END AS repeat_of"
                            .to_string(),
                    ),
                    None => (String::new(), "CAST(NULL AS DATE) AS repeat_of".to_string()),
                };
                let sub_carry: String = subsets.iter().map(|k| format!(", e.sub_{k}")).collect();
                format!(
                    "{name} AS (\n  -- each event with the enrolment interval covering its date, if any\n  \
SELECT e.unit_id, e.member_id, e.anchor_date, CAST(NULL AS DATE) AS month_start,\n    \
en.mco_id, en.hhp_id, en.population, en.unit_id IS NOT NULL AS enrolled, {repeat}{sub_carry}\n  FROM events e{chain_join} LEFT JOIN (\n    \
{p}\n  ) en ON en.unit_id = e.unit_id\n)",
                    p = latest_span(
                        &[("e2.unit_id", "unit_id")],
                        &format!(
                            "events e2 JOIN {} c ON c.member_id = e2.member_id AND c.start_date <= e2.anchor_date AND c.end_date >= e2.anchor_date",
                            ident(program)
                        ),
                    ),
                )
            }
            // One row per unit and segment, its first and last day and the gaps it allows.
            StepKind::CeWindows { segments } => {
                let rows = segments
                    .iter()
                    .enumerate()
                    .map(|(k, seg)| {
                        let (from, to) = (seg.window.from, seg.window.to);
                        format!(
                            "SELECT c.unit_id, c.member_id, {k} AS seg, {} AS lo, {} AS hi FROM candidates c",
                            sql::plus_days("c.anchor_date", from),
                            sql::plus_days("c.anchor_date", to),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n  UNION ALL\n  ");
                format!(
                    "{name} AS (\n  -- per unit, each continuous-enrolment segment: {}\n  {rows}\n)",
                    segments
                        .iter()
                        .map(|s| format!(
                            "days {}..{} {}",
                            s.window.from,
                            s.window.to,
                            super::ir::allowed(s)
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
            StepKind::CeSpans { program } => format!(
                "{name} AS (\n  -- enrolment intervals clipped to each segment\n  \
SELECT w.unit_id, w.seg, greatest(e.start_date, w.lo) AS s, least(e.end_date, w.hi) AS t\n  \
FROM ce_windows w JOIN {} e ON e.member_id = w.member_id AND e.start_date <= w.hi AND e.end_date >= w.lo\n)",
                ident(program)
            ),
            // A span repeated adds no gap, so spans are distinct first.
            StepKind::CeDistinct => {
                format!("{name} AS (\n  SELECT DISTINCT unit_id, seg, s, t FROM ce_spans\n)")
            }
            // Each distinct span with the latest end among the spans before it in its segment
            // (by start, then end): a join within the unit, not a window, which DataFusion runs
            // over a partition per unit about ten times slower.
            StepKind::CeOrdered => format!(
                "{name} AS (\n  SELECT a.unit_id, a.seg, a.s, a.t, max(b.t) AS prev_t\n  \
FROM ce_distinct a LEFT JOIN ce_distinct b ON b.unit_id = a.unit_id AND b.seg = a.seg AND (b.s < a.s OR (b.s = a.s AND b.t < a.t))\n  \
GROUP BY a.unit_id, a.seg, a.s, a.t\n)"
            ),
            // A gap is a run of days without enrolment at the segment's start, middle or end;
            // a segment with no enrolment at all is one gap as long as the segment.
            StepKind::CeGaps { segments } => format!(
                "{name} AS (\n  -- per unit and segment: the gaps and the longest, in days\n  \
SELECT w.unit_id, w.seg,\n    \
CASE WHEN g.unit_id IS NULL THEN 1 ELSE g.inner_gaps\n      \
+ CASE WHEN g.first_s > w.lo THEN 1 ELSE 0 END + CASE WHEN g.last_t < w.hi THEN 1 ELSE 0 END END AS gaps,\n    \
CASE WHEN g.unit_id IS NULL THEN {len} ELSE greatest(g.inner_max,\n      \
CASE WHEN g.first_s > w.lo THEN g.first_s - w.lo ELSE 0 END,\n      \
CASE WHEN g.last_t < w.hi THEN w.hi - g.last_t ELSE 0 END) END AS longest_gap\n  \
FROM ce_windows w LEFT JOIN (\n    SELECT unit_id, seg, min(s) AS first_s, max(t) AS last_t,\n      \
sum(CASE WHEN prev_t IS NOT NULL AND s > prev_t + INTERVAL '1 day' THEN 1 ELSE 0 END) AS inner_gaps,\n      \
max(CASE WHEN prev_t IS NOT NULL AND s > prev_t + INTERVAL '1 day' THEN s - prev_t - 1 ELSE 0 END) AS inner_max\n    \
FROM ce_ordered GROUP BY unit_id, seg\n  ) g ON g.unit_id = w.unit_id AND g.seg = w.seg\n)",
                len = per_segment(segments, |s| {
                    (i64::from(s.window.to) - i64::from(s.window.from) + 1).to_string()
                }),
            ),
            StepKind::Ce { segments } => {
                let whys: Vec<String> = segments
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        format!(
                            "max(CASE WHEN seg = {k} AND (gaps > {g} OR longest_gap > {d}) THEN 'days {from}..{to}: ' || CAST(gaps AS VARCHAR) || ' gap(s), longest ' || CAST(longest_gap AS VARCHAR) || ' days' END)",
                            g = s.max_gaps,
                            d = s.max_gap_days,
                            from = s.window.from,
                            to = s.window.to,
                        )
                    })
                    .collect();
                format!(
                    "{name} AS (\n  -- per unit: the segments that fail, or null when every one holds\n  \
SELECT unit_id, nullif(concat_ws('; ', {}), '') AS ce_why\n  FROM ce_gaps GROUP BY unit_id\n)",
                    whys.join(",\n    ")
                )
            }
            StepKind::Units { bands, carried, ce } => {
                let (ce_join, ce_cols) = if *ce {
                    (
                        "\n    LEFT JOIN ce ON ce.unit_id = c.unit_id",
                        ",\n      ce.ce_why",
                    )
                } else {
                    ("", "")
                };
                let carried: String = match carried {
                    Some(subsets) => std::iter::once(", c.repeat_of".to_string())
                        .chain(subsets.iter().map(|k| format!(", c.sub_{k}")))
                        .collect(),
                    None => String::new(),
                };
                format!(
                    "{name} AS (\n  SELECT *, {band_case} AS age_band FROM (\n    \
SELECT c.unit_id, c.member_id, c.anchor_date, c.month_start, c.enrolled{carried},\n      \
coalesce(c.mco_id, 'FFS') AS mco, coalesce(c.hhp_id, 'none') AS hhp, coalesce(c.population, 'unknown') AS population,\n      \
{attributes}{ce_cols}\n    \
FROM candidates c LEFT JOIN members p ON p.member_id = c.member_id{ce_join}\n  )\n)",
                    band_case = band_case(bands),
                    attributes = person_attributes("c.anchor_date"),
                )
            }
            StepKind::Condition { role, query } => {
                let comment = match role {
                    Role::Exclusion(n) => format!("exclusion `{}`", sql::comment(n)),
                    Role::Numerator(n) => format!("numerator `{}`", sql::comment(n)),
                };
                condition(name, &comment, query)
            }
            StepKind::Judged {
                ineligible,
                exclusions,
                numerators,
                evidence,
            } => judged(name, ineligible, exclusions, numerators, evidence, "units"),
            StepKind::Eligible {
                ineligible,
                exclusions,
            } => {
                let evidence: Vec<String> = exclusions.iter().map(|(_, s)| s.clone()).collect();
                judged(name, ineligible, exclusions, &[], &evidence, "units")
            }
            StepKind::EligibleFirst => format!(
                "{name} AS (\n  -- per member and date, the eligible event that day counted (the first by id)\n  \
SELECT member_id, anchor_date, min(unit_id) AS first_unit FROM eligible\n  \
WHERE ineligible IS NULL AND exclusion IS NULL GROUP BY member_id, anchor_date\n)"
            ),
            StepKind::EligibleChained { days } => format!(
                "{name} AS (\n  -- the counted event each eligible event belongs to: the first, then the first {days}+ days after the last counted\n  \
SELECT unnest(ids) AS unit_id, unnest(hhq_episode_starts(dates, {days})) AS episode_start FROM (\n    \
SELECT member_id, array_agg(unit_id) AS ids, array_agg(anchor_date) AS dates\n    \
FROM eligible WHERE ineligible IS NULL AND exclusion IS NULL GROUP BY member_id\n  )\n)"
            ),
            StepKind::Deduped { days } => {
                let eligible = "u.ineligible IS NULL AND u.exclusion IS NULL";
                let (join, rep) = if *days > 1 {
                    (
                        "\n    LEFT JOIN eligible_chained ch ON ch.unit_id = u.unit_id",
                        "CASE WHEN u.anchor_date = ch.episode_start AND u.unit_id = f.first_unit THEN CAST(NULL AS DATE) ELSE ch.episode_start END",
                    )
                } else {
                    (
                        "",
                        "CASE WHEN u.unit_id = f.first_unit THEN CAST(NULL AS DATE) ELSE u.anchor_date END",
                    )
                };
                format!(
                    "{name} AS (\n  -- of the eligible events, those within {days} days of one counted before are repeats\n  \
SELECT u.* EXCLUDE (ineligible, repeat_of, rep),\n    \
CASE WHEN u.rep IS NOT NULL THEN 'within {days} days of the counted event on ' || CAST(u.rep AS VARCHAR) ELSE u.ineligible END AS ineligible,\n    \
u.rep AS repeat_of\n  FROM (\n    \
SELECT u.*, CASE WHEN {eligible} THEN {rep} END AS rep\n    FROM eligible u{join}\n    \
LEFT JOIN eligible_first f ON f.member_id = u.member_id AND f.anchor_date = u.anchor_date\n  ) u\n)"
                )
            }
            StepKind::Scored {
                from,
                numerators,
                evidence,
            } => judged(name, &[], &[], numerators, evidence, from),
            StepKind::Counted => format!(
                "{name} AS (\n  -- per member: units that would be in the denominator\n  \
SELECT u.*, sum(CASE WHEN u.ineligible IS NULL AND u.exclusion IS NULL THEN 1 ELSE 0 END)\n    \
OVER (PARTITION BY u.member_id) AS member_units\n  FROM judged u\n)"
            ),
            StepKind::Detail {
                outliers,
                numerators,
            } => detail(name, *outliers, *numerators),
        }
    }
}

/// `FROM … WHERE …` of the events' rows, the block aliased `ev`.
fn events_from(source: &EventSource) -> String {
    let d = ident(&source.date);
    let filter = source
        .filter
        .as_ref()
        .map(|f| format!(" AND ({f})"))
        .unwrap_or_default();
    format!(
        "FROM {} ev\n  WHERE ev.{d} >= {} AND ev.{d} <= {}{filter}",
        ident(&source.block),
        sql::date(source.from),
        sql::date(source.to),
    )
}

/// A value per continuous-enrolment segment as SQL over the segment's index `w.seg`: the value
/// itself when there is one segment.
fn per_segment(segments: &[Segment], value: impl Fn(&Segment) -> String) -> String {
    match segments {
        [one] => value(one),
        many => format!(
            "CASE w.seg {} END",
            many.iter()
                .enumerate()
                .map(|(k, s)| format!("WHEN {k} THEN {}", value(s)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// The age band of `age` by the measure's bands, `unknown` without an age, null outside them.
fn band_case(bands: &[AgeBand]) -> String {
    let mut case = String::from("CASE WHEN age IS NULL THEN 'unknown'");
    for b in bands {
        let label = sql::string(&b.label);
        match b.max {
            Some(max) => case.push_str(&format!(
                " WHEN age BETWEEN {} AND {max} THEN {label}",
                b.min
            )),
            None => case.push_str(&format!(" WHEN age >= {} THEN {label}", b.min)),
        }
    }
    case.push_str(" END");
    case
}

/// One enrolment interval per unit (`by`: expressions and their names), from `from` (an
/// enrolment block aliased `c`, joined to the units): the interval ending last, then starting
/// last, then by partner, MCO and population (nulls last), with its `mco_id`, `hhp_id` and
/// `population`.
///
/// By `hhq_latest_span` (functions::pick), an aggregate: `row_number() OVER (PARTITION BY … ORDER
/// BY …) = 1` over a million small partitions is DataFusion's slowest operator, and
/// `first_value(… ORDER BY …)` compares row by row.
fn latest_span(by: &[(&str, &str)], from: &str) -> String {
    let select: Vec<String> = by.iter().map(|(e, n)| format!("{e} AS {n}")).collect();
    let names: Vec<&str> = by.iter().map(|(_, n)| *n).collect();
    let exprs: Vec<&str> = by.iter().map(|(e, _)| *e).collect();
    format!(
        "SELECT {}, k['hhp_id'] AS hhp_id, k['mco_id'] AS mco_id, k['population'] AS population FROM (\n      \
SELECT {}, hhq_latest_span(c.start_date, c.end_date, c.hhp_id, c.mco_id, c.population) AS k\n      FROM {from}\n      GROUP BY {}\n    ) keyed",
        names.join(", "),
        select.join(", "),
        exprs.join(", ")
    )
}

impl Arm {
    /// A row's evidence id and value as SQL over the block `b`.
    fn id_and_value(&self) -> (String, String) {
        let id = match &self.id {
            Some(id) => format!("CAST(b.{} AS VARCHAR)", ident(id)),
            None => "CAST(NULL AS VARCHAR)".to_string(),
        };
        let value = match &self.value {
            Some(v) => format!("CAST(b.{} AS DOUBLE)", ident(v)),
            None => "CAST(1 AS DOUBLE)".to_string(),
        };
        (id, value)
    }

    /// The qualifying rows dated `from` to `to`, with their member and month (member-months).
    fn month_rows(&self, from: NaiveDate, to: NaiveDate) -> String {
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        let (id, value) = self.id_and_value();
        format!(
            "SELECT b.member_id, CAST(date_trunc('month', b.{d}) AS DATE) AS month_start, b.{d} AS d, {id} AS id, {value} AS v\n      \
FROM {block} b\n      WHERE b.{d} >= {} AND b.{d} <= {}{filter}",
            sql::date(from),
            sql::date(to),
            d = ident(&self.date),
            block = ident(&self.block),
        )
    }

    /// The qualifying rows of one arm: unit, date, evidence id and value; with `nearest`, only
    /// for the units in that step's denominator, with each unit's member and anchor date (`m`,
    /// `a`) to attribute the row by.
    fn rows(&self, basis: Basis, period: &Period, nearest: Option<&str>, extra: &str) -> String {
        let d = ident(&self.date);
        let unit_col = |c: &str| ident(&format!("{}{c}", super::filter::UNIT_PREFIX)).into_owned();
        let (anchor, after_join) = match (&self.after, &self.of) {
            (Some(step), _) => (
                if self.after_end {
                    "a.first_end".to_string()
                } else {
                    "a.first_date".to_string()
                },
                format!(" JOIN {step} a ON a.unit_id = c.unit_id"),
            ),
            (None, Some(of)) => (
                format!("coalesce(c.{}, c.anchor_date)", unit_col(of)),
                String::new(),
            ),
            (None, None) => ("c.anchor_date".to_string(), String::new()),
        };
        // A window's bounds are computed once per unit, in `c`: in the join's condition they
        // would be computed again for every pair of a member's units and rows (a date plus an
        // interval is calendar arithmetic: most of IET-HH's time went there).
        let eligible = match nearest {
            Some(step) => format!(
                " JOIN {step} e ON e.unit_id = c.unit_id AND e.ineligible IS NULL AND e.exclusion IS NULL"
            ),
            None => String::new(),
        };
        // The unit's own columns the arm reads, carried on the units as `unit_<column>`.
        let base = if self.unit_columns.is_empty() {
            "candidates c".to_string()
        } else {
            format!(
                "(\n      SELECT c.*{} FROM candidates c JOIN event_refs ev ON ev.unit_id = c.unit_id\n    ) c",
                self.unit_columns
                    .iter()
                    .map(|u| format!(", ev.{} AS {}", ident(u), unit_col(u)))
                    .collect::<String>()
            )
        };
        let mut units = format!("{base}{eligible}{after_join}");
        let mut join = match (basis, self.window) {
            // `window: period` on member months: a row anywhere in the period (a hospice stay
            // in the year excludes every month of it).
            (Basis::MemberMonths, _) if self.in_period => vec![format!(
                "b.{d} >= {} AND b.{d} <= {}",
                sql::date(period.start),
                sql::date(period.end),
            )],
            // Equality on the month keeps this a hash join.
            (Basis::MemberMonths, _) => vec![format!(
                "CAST(date_trunc('month', b.{d}) AS DATE) = c.month_start"
            )],
            (_, Some(w)) => {
                let mut anchor_col = if nearest.is_some() {
                    ", c.anchor_date".to_string()
                } else {
                    String::new()
                };
                for u in &self.unit_columns {
                    anchor_col.push_str(&format!(", c.{}", unit_col(u)));
                }
                units = format!(
                    "(\n      SELECT c.unit_id, c.member_id{anchor_col}, {} AS lo, {} AS hi\n      \
FROM {units}\n    ) c",
                    sql::plus_days(&anchor, w.from),
                    sql::plus_days(&anchor, w.to),
                );
                vec![format!("b.{d} >= c.lo AND b.{d} <= c.hi")]
            }
            // The event itself, whatever its date.
            (_, None) if self.key.is_some() && !self.in_period => Vec::new(),
            // Members without a window: rows dated in the period.
            (_, None) => vec![format!(
                "b.{d} >= {} AND b.{d} <= {}",
                sql::date(period.start),
                sql::date(period.end),
            )],
        };
        if let Some(k) = &self.key {
            join.insert(0, format!("CAST(b.{} AS VARCHAR) = c.unit_id", ident(k)));
        }
        let join: String = join.iter().map(|j| format!(" AND {j}")).collect();
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!("\n    WHERE {f}"))
            .unwrap_or_default();
        let (id, value) = self.id_and_value();
        let by = if nearest.is_some() {
            ", c.member_id AS m, c.anchor_date AS a"
        } else {
            ""
        };
        format!(
            "SELECT c.unit_id, b.{d} AS d, {id} AS id, {value} AS v{by}{extra}\n    \
FROM {units} JOIN {block} b ON b.member_id = c.member_id{join}{filter}",
            block = ident(&self.block),
        )
    }
}

/// A condition step `name`: per candidate unit having qualifying rows in any arm, their count,
/// the first date, the id of the first row, the sum of the value column and, with `days`, the
/// number of days they fall on (`at_least`).
fn condition(name: &str, comment: &str, q: &ConditionQuery) -> String {
    if q.by_month() {
        return month_condition(name, comment, q);
    }
    let mut rows = q
        .arms
        .iter()
        .enumerate()
        .map(|(k, a)| {
            // Columns a count or a combination needs: the arm (`all_of:`), the provider
            // (`by: day_provider`), whether the row suffices alone (`suffices:`).
            let mut extra = String::new();
            if q.all {
                extra.push_str(&format!(", {k} AS g"));
            }
            if q.providers {
                let p = a
                    .provider
                    .as_deref()
                    .expect("day_provider arms name a provider");
                extra.push_str(&format!(", CAST(b.{} AS VARCHAR) AS p", ident(p)));
            }
            if q.ends {
                extra.push_str(&format!(
                    ", b.{} AS e",
                    ident(a.end.as_deref().unwrap_or(&a.date))
                ));
            }
            if q.suffices {
                // Null where unknown or absent, in every arm alike: a union's arms must agree
                // on whether a column may be null.
                match &a.suffices {
                    Some(f) => extra.push_str(&format!(", CAST(({f}) AS BOOLEAN) AS s")),
                    None => extra.push_str(", CAST(NULL AS BOOLEAN) AS s"),
                }
            }
            a.rows(q.basis, &q.period, q.nearest_among.as_deref(), &extra)
        })
        .collect::<Vec<_>>()
        .join("\n    UNION ALL\n    ");
    let carried = format!(
        "{}{}{}{}",
        if q.ends { ", e" } else { "" },
        if q.all { ", g" } else { "" },
        if q.providers { ", p" } else { "" },
        if q.suffices { ", s" } else { "" }
    );
    if q.nearest_among.is_some() {
        // A row (a member's evidence id on its date) counts toward one unit: the latest anchor
        // among those whose window holds it, then the greatest unit id (so ties are settled the
        // same way every run).
        rows = format!(
            "SELECT unit_id, d, id, v{carried} FROM (\n      \
SELECT r.*, row_number() OVER (PARTITION BY r.m, r.id, r.d ORDER BY r.a DESC, r.unit_id DESC) AS nearest\n      \
FROM (\n    {rows}\n      ) r\n    ) attributed WHERE nearest = 1"
        );
    }
    // The day the first row ends: of the first day's rows, the latest end (an inpatient
    // initiation's discharge over a visit the same day).
    let sufficed = format!(
        "{}{}",
        if q.suffices {
            ", bool_or(s) AS sufficed"
        } else {
            ""
        },
        if q.ends {
            ", first_value(e ORDER BY d, e DESC) AS first_end"
        } else {
            ""
        }
    );
    // Every arm found a row: the arms counted apart.
    let every = if q.all {
        format!("\n  HAVING count(DISTINCT g) = {}", q.arms.len())
    } else {
        String::new()
    };
    // The first id is the least of the first day's ids (`hhq_first_id`, see functions::pick: a
    // grouped aggregate, where `first_value(… ORDER BY …)` compares row by row).
    if !q.days {
        // One aggregate: a unit-and-day step first would group every row twice, by string keys
        // (a member-month measure spent 60% of its time there).
        return format!(
            "{name} AS (\n  -- {comment}\n  SELECT unit_id, count(*) AS n, min(d) AS first_date,\n    \
hhq_first_id(d, id) AS first_id, sum(v) AS total{sufficed}\n  FROM (\n    {rows}\n  ) r\n  \
GROUP BY unit_id{every}\n)"
        );
    }
    // Per unit and day (and provider) first, then per unit: `count(DISTINCT d)` would make
    // DataFusion aggregate unit by unit.
    let (by_provider, per_day_s) = (
        if q.providers { ", p" } else { "" },
        format!(
            "{}{}",
            if q.suffices { ", bool_or(s) AS s" } else { "" },
            if q.ends { ", max(e) AS e" } else { "" }
        ),
    );
    format!(
        "{name} AS (\n  -- {comment}\n  SELECT unit_id, sum(n) AS n, count(d) AS days, min(d) AS first_date,\n    \
hhq_first_id(d, id) AS first_id, sum(total) AS total{sufficed}\n  FROM (\n    \
SELECT unit_id, d{by_provider}, count(*) AS n, min(id) AS id, sum(v) AS total{per_day_s}\n    FROM (\n    {rows}\n    ) r\n    \
GROUP BY unit_id, d{by_provider}\n  ) per_day\n  GROUP BY unit_id\n)"
    )
}

/// [`condition`] for member-months: a row falls in the unit of its member and month, so the rows
/// are aggregated per member and month first and the few aggregates joined to the units, not
/// every row joined and then grouped by the built unit id (a month of Health Home contacts is
/// millions of rows: the join copied each). Rows are read from the first month's first day to
/// the last month's last day, as no other row meets a unit; the same results.
fn month_condition(name: &str, comment: &str, q: &ConditionQuery) -> String {
    let months = q.period.months();
    let from = months.first().map_or(q.period.start, |m| m.0);
    let to = months.last().map_or(q.period.end, |m| m.1);
    let rows = q
        .arms
        .iter()
        .map(|a| a.month_rows(from, to))
        .collect::<Vec<_>>()
        .join("\n      UNION ALL\n      ");
    let per_month = if q.days {
        format!(
            "SELECT member_id, month_start, sum(n) AS n, count(d) AS days, min(d) AS first_date,\n      \
hhq_first_id(d, id) AS first_id, sum(total) AS total\n    FROM (\n      \
SELECT member_id, month_start, d, count(*) AS n, min(id) AS id, sum(v) AS total\n      FROM (\n      {rows}\n      ) r\n      \
GROUP BY member_id, month_start, d\n    ) per_day\n    GROUP BY member_id, month_start"
        )
    } else {
        format!(
            "SELECT member_id, month_start, count(*) AS n, min(d) AS first_date,\n      \
hhq_first_id(d, id) AS first_id, sum(v) AS total\n    FROM (\n      {rows}\n    ) r\n    \
GROUP BY member_id, month_start"
        )
    };
    let days_col = if q.days { " a.days," } else { "" };
    format!(
        "{name} AS (\n  -- {comment}\n  SELECT c.unit_id, a.n,{days_col} a.first_date, a.first_id, a.total\n  \
FROM candidates c JOIN (\n    {per_month}\n  ) a ON a.member_id = c.member_id AND a.month_start = c.month_start\n)"
    )
}

/// The `judged` step: the reasons a unit is not in the measure, in order, the exclusion that
/// removed it (the first listed), and the numerator columns, over the units of step `from`
/// joined to the evidence steps. With no reasons it adds the numerator columns alone (the units
/// were judged in `from`); with no numerators, the reasons alone (the `eligible` step).
fn judged(
    name: &str,
    ineligible: &[Ineligible],
    exclusions: &[(String, String)],
    numerators: &[Numerator],
    evidence: &[String],
    from: &str,
) -> String {
    let reasons: Vec<String> = ineligible
        .iter()
        .map(|r| match r {
            Ineligible::Repeat { days } => format!(
                "WHEN u.repeat_of IS NOT NULL THEN 'within {days} days of the counted event on ' || CAST(u.repeat_of AS VARCHAR)"
            ),
            Ineligible::NotEnrolled => {
                "WHEN NOT u.enrolled THEN 'not enrolled on the anchor date'".to_string()
            }
            Ineligible::AgeOutsideBands => "WHEN u.age_band IS NULL THEN 'age ' || CAST(u.age AS VARCHAR) || ' outside the age bands'".to_string(),
            Ineligible::NotContinuous { .. } => {
                "WHEN u.ce_why IS NOT NULL THEN 'not continuously enrolled: ' || u.ce_why".to_string()
            }
        })
        .collect();
    let ineligible = format!("CASE {} END", reasons.join(" "));
    let (exclusion, exclusion_date, exclusion_id) = if exclusions.is_empty() {
        (
            "CAST(NULL AS VARCHAR)".to_string(),
            "CAST(NULL AS DATE)".to_string(),
            "CAST(NULL AS VARCHAR)".to_string(),
        )
    } else {
        let first_exclusion = |what: &dyn Fn(&str, &str) -> String| {
            format!(
                "CASE {} END",
                exclusions
                    .iter()
                    .map(|(n, step)| format!(
                        "WHEN {step}.unit_id IS NOT NULL THEN {}",
                        what(n, step)
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        (
            first_exclusion(&|n, _| sql::string(n)),
            first_exclusion(&|_, step| format!("{step}.first_date")),
            first_exclusion(&|_, step| format!("{step}.first_id")),
        )
    };
    let num_cols: Vec<String> = numerators
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let s = &n.step;
            let value = match n.value {
                Value::AtLeast { n: k, by, suffices } => {
                    let counted = match by {
                        CountBy::Day | CountBy::DayProvider => "days",
                        CountBy::Event => "n",
                    };
                    let alone = if suffices {
                        format!(" OR coalesce({s}.sufficed, false)")
                    } else {
                        String::new()
                    };
                    format!("CASE WHEN coalesce({s}.{counted}, 0) >= {k}{alone} THEN 1 ELSE 0 END")
                }
                Value::Exists => format!("CASE WHEN {s}.n IS NULL THEN 0 ELSE 1 END"),
                Value::Count => format!("coalesce({s}.n, 0)"),
                Value::Sum => format!("coalesce({s}.total, 0)"),
                Value::DaysToFirst => format!("{s}.first_date - u.anchor_date"),
            };
            let value = match n.subset {
                Some(k) => format!("CASE WHEN u.sub_{k} THEN {value} END"),
                None => value,
            };
            format!(
                "{value} AS num_{i}, {s}.first_date AS num_{i}_date, {s}.first_id AS num_{i}_id"
            )
        })
        .collect();
    let num_select = if num_cols.is_empty() {
        String::new()
    } else {
        format!(",\n    {}", num_cols.join(",\n    "))
    };
    let judged = if reasons.is_empty() {
        String::new()
    } else {
        format!(
            ", {ineligible} AS ineligible,\n    \
{exclusion} AS exclusion, {exclusion_date} AS exclusion_date, {exclusion_id} AS exclusion_id"
        )
    };
    format!(
        "{name} AS (\n  SELECT u.*{judged}{num_select}\n  FROM {from} u{}\n)",
        evidence_join(evidence)
    )
}

/// The join of the units `u` to the evidence steps (exclusions, numerators), each keyed by
/// `unit_id` and holding a unit's row only if it has evidence. Two or more are joined to each
/// other first, on their rows (most often far fewer than the units'), and the units to them
/// once: each join to the units copies every column of the detail (four joins were 0.4 s of
/// AIF-HH's CPU per million units). The evidence steps keep their names, so a unit's evidence is
/// read as from its own join.
fn evidence_join(evidence: &[String]) -> String {
    match evidence {
        [] => String::new(),
        [one] => format!("\n    LEFT JOIN {one} ON {one}.unit_id = u.unit_id"),
        [first, rest @ ..] => {
            let mut joined = first.clone();
            let mut keys = vec![format!("{first}.unit_id")];
            for e in rest {
                let key = match keys.as_slice() {
                    [one] => one.clone(),
                    many => format!("coalesce({})", many.join(", ")),
                };
                joined.push_str(&format!("\n      FULL JOIN {e} ON {e}.unit_id = {key}"));
                keys.push(format!("{e}.unit_id"));
            }
            format!(
                "\n    LEFT JOIN ({joined}\n    ) ON coalesce({}) = u.unit_id",
                keys.join(", ")
            )
        }
    }
}

/// The `detail` step; members with `outliers` or more units in the denominator are set aside,
/// their units with them. `numerators` is the number of numerator columns carried.
fn detail(name: &str, outliers: Option<u32>, numerators: usize) -> String {
    let (from, outlier) = match outliers {
        Some(n) => (
            "counted",
            format!("(u.ineligible IS NULL AND u.exclusion IS NULL AND u.member_units >= {n})"),
        ),
        None => ("judged", "false".to_string()),
    };
    let (exclusion_out, exclusion_id_out, not_outlier) = if outliers.is_some() {
        (
            format!(
                "CASE WHEN {outlier} THEN 'outlier' WHEN u.ineligible IS NULL THEN u.exclusion END"
            ),
            format!(
                "CASE WHEN {outlier} THEN CAST(u.member_units AS VARCHAR) || ' units of the member' WHEN u.ineligible IS NULL THEN u.exclusion_id END"
            ),
            format!(" AND NOT {outlier}"),
        )
    } else {
        (
            "CASE WHEN u.ineligible IS NULL THEN u.exclusion END".to_string(),
            "CASE WHEN u.ineligible IS NULL THEN u.exclusion_id END".to_string(),
            String::new(),
        )
    };
    let num_out: String = (0..numerators)
        .map(|i| format!(",\n    u.num_{i}, u.num_{i}_date, u.num_{i}_id"))
        .collect();
    format!(
        "{name} AS (\n  -- one row per candidate unit: in the denominator or why not, and the numerator evidence\n  \
SELECT u.unit_id, u.member_id, u.anchor_date, u.month_start, u.age, u.age_band, u.mco, u.hhp, u.population,\n    \
u.sex, u.race, u.ethnicity, u.county, u.rural, u.month, u.quarter,\n    \
u.ineligible, {exclusion_out} AS exclusion,\n    \
CASE WHEN u.ineligible IS NULL THEN u.exclusion_date END AS exclusion_date,\n    \
{exclusion_id_out} AS exclusion_id,\n    \
u.ineligible IS NULL AND u.exclusion IS NULL{not_outlier} AS in_denominator{num_out}\n  \
FROM {from} u\n)"
    )
}

/// A member's attributes on the date `on` (a SQL expression), from the members extract `p`: age
/// in whole years, demographics (`unknown` when null) and the calendar strata.
fn person_attributes(on: &str) -> String {
    // Age, month and quarter by hhq's functions (src/functions/calendar.rs), equal to the `date_part`
    // and `to_char` SQL they replace and some 20 times faster; text as Utf8, as before.
    format!(
        "hhq_age(p.birth_date, {on}) AS age,\n      \
coalesce(p.sex, 'unknown') AS sex, coalesce(p.race, 'unknown') AS race, coalesce(p.ethnicity, 'unknown') AS ethnicity,\n      \
coalesce(p.county_fips, 'unknown') AS county,\n      \
CASE WHEN p.rural IS NULL THEN 'unknown' WHEN p.rural THEN 'rural' ELSE 'urban' END AS rural,\n      \
hhq_month({on}) AS month,\n      \
hhq_quarter({on}) AS quarter"
    )
}

/// `CASE` expressions naming the stratifier and stratum of a `GROUPING SETS` row, and the sets.
pub fn grouping(stratify: &[Stratifier]) -> (String, String, String) {
    let strata: Vec<&str> = stratify.iter().map(|s| s.name()).collect();
    if strata.is_empty() {
        // `CASE ELSE … END` is not SQL: with no stratifier there is only the total.
        return ("'total'".into(), "'total'".into(), "()".into());
    }
    let mut stratifier_case = String::from("CASE");
    let mut stratum_case = String::from("CASE");
    for s in &strata {
        stratifier_case.push_str(&format!(" WHEN grouping({s}) = 0 THEN '{s}'"));
        stratum_case.push_str(&format!(" WHEN grouping({s}) = 0 THEN {s}"));
    }
    stratifier_case.push_str(" ELSE 'total' END");
    stratum_case.push_str(" ELSE 'total' END");
    let sets = std::iter::once("()".to_string())
        .chain(strata.iter().map(|s| format!("({s})")))
        .collect::<Vec<_>>()
        .join(", ");
    (stratifier_case, stratum_case, sets)
}

/// [`grouping`] with `within` (a column) in every set: the rows of each stratum by that column.
pub fn grouping_within(stratify: &[Stratifier], within: &str) -> (String, String, String) {
    let (stratifier_case, stratum_case, _) = grouping(stratify);
    let sets = std::iter::once(format!("({within})"))
        .chain(stratify.iter().map(|s| format!("({within}, {})", s.name())))
        .collect::<Vec<_>>()
        .join(", ");
    (stratifier_case, stratum_case, sets)
}

/// Enrollees and outliers by stratum: each member enrolled in the programme on any day of the
/// period, with the latest interval's MCO, partner and population and the age on the period's
/// last day; outliers are members with a unit excluded as `outlier` in `detail_table`. `scope`,
/// when given, is a condition on the enrollee's `mco`, `hhp` or `population`.
pub fn population(
    plan: &MeasurePlan,
    pop: &Population,
    detail_table: &str,
    scope: Option<&str>,
) -> String {
    let (stratifier_case, stratum_case, sets) = grouping(&plan.stratify);
    let period = plan.period;
    let end = sql::date(period.end);
    let scope = scope.map(|f| format!(" AND ({f})")).unwrap_or_default();
    format!(
        "-- {id}: enrollees of `{program}` in {period}, and outliers\nWITH spans AS (\n  \
{spans}\n),\n\
people AS (\n  SELECT *, {band_case} AS age_band FROM (\n    \
SELECT s.member_id, coalesce(s.mco_id, 'FFS') AS mco, coalesce(s.hhp_id, 'none') AS hhp,\n      \
coalesce(s.population, 'unknown') AS population,\n      {attributes}\n    \
FROM spans s LEFT JOIN members p ON p.member_id = s.member_id\n  )\n)\n\
SELECT {stratifier_case} AS stratifier,\n  {stratum_case} AS stratum,\n  \
count(*) AS enrollees, sum(CASE WHEN o.member_id IS NULL THEN 0 ELSE 1 END) AS outliers\n\
FROM people u LEFT JOIN (SELECT DISTINCT member_id FROM {detail_table} WHERE exclusion = 'outlier') o ON o.member_id = u.member_id\n\
WHERE u.age_band IS NOT NULL{scope}\n\
GROUP BY GROUPING SETS ({sets})\nORDER BY stratifier, stratum",
        id = sql::comment(&plan.id),
        program = sql::comment(&pop.program),
        band_case = band_case(&plan.age_bands),
        spans = latest_span(
            &[("c.member_id", "member_id")],
            &format!(
                "{} c WHERE c.start_date <= {end} AND c.end_date >= {}",
                ident(&pop.program),
                sql::date(period.start)
            )
        ),
        attributes = person_attributes(&end),
    )
}
