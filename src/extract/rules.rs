//! Row rules: what makes one row of an extract unusable. A row that breaks a rule is set aside —
//! never read by a measure — and counted under the first rule it breaks, so that rows read =
//! rows used + rows set aside, per extract. The contract's own rules (not-null columns, coded
//! values) come from [`super::contract`]; the rest compare columns of one row.
//!
//! Whether a run may go on with rows set aside is the data-quality policy's call
//! ([`crate::quality`]); these rules only say which rows and why.

use super::contract::{ColumnType, Extract};

/// One rule over one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRule {
    /// Stable id, also the check's id in `hhq validate`: `claims.member_id.null`.
    pub id: String,
    /// The contract column the rule is about, for the contract's null and coded-value rules.
    pub column: Option<&'static str>,
    /// What a breaking row looks like, in words.
    pub what: String,
    /// SQL over the extract's typed columns, true when the row breaks the rule (never null:
    /// wrapped in `coalesce(…, false)` by [`RowRule::sql`]).
    predicate: String,
    /// Completeness (a required value missing) or conformance/plausibility of one row.
    pub kind: RuleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A required column is null.
    Missing,
    /// A coded column holds a value the contract does not allow.
    Value,
    /// Columns of one row contradict each other.
    Contradiction,
    /// A date outside any believable range ([`FIRST_DATE`]..=[`LAST_DATE`]).
    Range,
}

/// The earliest date an extract may hold: no member, claim or span of a Health Home is older.
pub const FIRST_DATE: &str = "1900-01-01";
/// The latest date an extract may hold. Far beyond any export's horizon; it keeps every date
/// that reaches a measure, and the days and months added to it, within what the query engine
/// and chrono can compute with: an `int32` day number can lie 5.8 million years away, past
/// chrono's range, and a day added to `i32::MAX` overflows; DataFusion's `date_trunc` and casts
/// to timestamps hold nanoseconds, which end on 2262-04-11. (An open span is a null `end_date`,
/// not `9999-12-31`, which this sets aside.)
pub const LAST_DATE: &str = "2200-12-31";

/// The day numbers (days since 1970-01-01, as Arrow's `Date32` holds them) of
/// [`FIRST_DATE`]..=[`LAST_DATE`].
pub const DAY_RANGE: std::ops::RangeInclusive<i32> = -25_567..=84_370;

/// A `Date32` day number as a date, if it lies within [`DAY_RANGE`]: hhq's arithmetic on data
/// dates starts from this, so it never meets a date it cannot compute with.
pub fn date_of_day(day: i32) -> Option<chrono::NaiveDate> {
    if !DAY_RANGE.contains(&day) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::TimeDelta::days(day.into()))
}

impl RowRule {
    /// The predicate, null-safe: true exactly when the row breaks the rule.
    pub fn sql(&self) -> String {
        format!("coalesce(({}), false)", self.predicate)
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The row rules of one extract, in the order a row's reason is chosen (the first it breaks).
pub fn row_rules(extract: &Extract) -> Vec<RowRule> {
    let mut rules = Vec::new();
    for col in extract.columns.iter().filter(|c| !c.nullable) {
        rules.push(RowRule {
            id: format!("{}.{}.null", extract.name, col.name),
            column: Some(col.name),
            what: format!("`{}` is null, but the contract requires it", col.name),
            predicate: format!("{} IS NULL", quote(col.name)),
            kind: RuleKind::Missing,
        });
    }
    for col in extract.columns {
        let Some(allowed) = col.allowed else { continue };
        let list: Vec<String> = allowed.iter().map(|v| literal(v)).collect();
        rules.push(RowRule {
            id: format!("{}.{}.value", extract.name, col.name),
            column: Some(col.name),
            what: format!(
                "`{}` is not one of {}",
                col.name,
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            predicate: format!(
                "{c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({})",
                list.join(", "),
                c = quote(col.name)
            ),
            kind: RuleKind::Value,
        });
    }
    // A date no export means (a sentinel, a corrupt value, a day number past the calendar): set
    // aside before any measure's date arithmetic can meet it.
    let dates: Vec<&str> = extract
        .columns
        .iter()
        .filter(|c| c.ty == ColumnType::Date)
        .map(|c| c.name)
        .collect();
    if !dates.is_empty() {
        rules.push(RowRule {
            id: format!("{}.date_out_of_range", extract.name),
            column: None,
            what: format!(
                "a date before {FIRST_DATE} or after {LAST_DATE} in {}",
                dates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            predicate: dates
                .iter()
                .map(|c| {
                    format!(
                        "{c} < DATE '{FIRST_DATE}' OR {c} > DATE '{LAST_DATE}'",
                        c = quote(c)
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR "),
            kind: RuleKind::Range,
        });
    }
    let mut contradiction = |id: &str, what: &str, predicate: &str| {
        rules.push(RowRule {
            id: format!("{}.{id}", extract.name),
            column: None,
            what: what.to_string(),
            predicate: predicate.to_string(),
            kind: RuleKind::Contradiction,
        })
    };
    match extract.name {
        "claims" => {
            contradiction(
                "service_to_before_from",
                "`service_to` is before `service_from`",
                "service_to < service_from",
            );
            contradiction(
                "discharge_before_admission",
                "`discharge_date` is before `admission_date`",
                "discharge_date < admission_date",
            );
            contradiction(
                "adjustment_without_target",
                "a replacement or void names no `replaces_claim_id`",
                "adjustment IN ('replacement', 'void') AND replaces_claim_id IS NULL",
            );
        }
        "members" => contradiction(
            "death_before_birth",
            "`death_date` is before `birth_date`",
            "death_date < birth_date",
        ),
        "enrollment" => {
            contradiction(
                "end_before_start",
                "`end_date` is before `start_date`",
                "end_date < start_date",
            );
            contradiction(
                "health_home_without_partner",
                "a `health_home` span has no `hhp_id` or no `population`",
                "span_type = 'health_home' AND (hhp_id IS NULL OR population IS NULL)",
            );
        }
        _ => {}
    }
    rules
}

/// SQL naming the first rule a row of `extract` breaks (null when it breaks none).
pub fn reason_sql(extract: &Extract) -> String {
    let rules = row_rules(extract);
    if rules.is_empty() {
        return "CAST(NULL AS VARCHAR)".into();
    }
    let arms: Vec<String> = rules
        .iter()
        .map(|r| format!("WHEN {} THEN {}", r.sql(), literal(&r.id)))
        .collect();
    format!("CASE {} END", arms.join(" "))
}

/// SQL true for a usable row: one that breaks no rule.
pub fn usable_sql(extract: &Extract) -> String {
    let rules = row_rules(extract);
    if rules.is_empty() {
        return "true".into();
    }
    let any: Vec<String> = rules.iter().map(|r| r.sql()).collect();
    format!("NOT ({})", any.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::contract::EXTRACTS;

    #[test]
    fn the_day_range_is_first_to_last_date() {
        let day = |s: &str| {
            (s.parse::<chrono::NaiveDate>().unwrap() - chrono::NaiveDate::default()).num_days()
        };
        assert_eq!(i64::from(*DAY_RANGE.start()), day(FIRST_DATE));
        assert_eq!(i64::from(*DAY_RANGE.end()), day(LAST_DATE));
        assert_eq!(
            date_of_day(*DAY_RANGE.end()).map(|d| d.to_string()),
            Some(LAST_DATE.into())
        );
        for day in [
            i32::MIN,
            i32::MAX,
            100_000_000,
            -100_000_000,
            84_371,
            -25_568,
        ] {
            assert_eq!(date_of_day(day), None, "{day}");
        }
    }

    #[test]
    fn ids_are_unique_and_every_required_column_has_a_rule() {
        let mut seen = std::collections::BTreeSet::new();
        for e in EXTRACTS {
            let rules = row_rules(e);
            for r in &rules {
                assert!(seen.insert(r.id.clone()), "duplicate rule id {}", r.id);
            }
            for c in e.columns.iter().filter(|c| !c.nullable) {
                assert!(
                    rules
                        .iter()
                        .any(|r| r.column == Some(c.name) && r.kind == RuleKind::Missing),
                    "{}.{} has no null rule",
                    e.name,
                    c.name
                );
            }
        }
    }
}
