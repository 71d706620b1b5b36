//! CMS reporting: the table a state enters into CMS's Quality Measure Reporting system
//! (numerator, denominator and rate per measure, category and age band, rates to one decimal),
//! and the checks CMS applies when a state reports: the 7-day rate may not exceed the 30-day
//! rate (IET: engagement at most initiation), both share one denominator, and strata add up to
//! the total; and the per-measure fields besides the numbers (`cms_measures.csv`).

use chrono::NaiveDate;

use crate::measure::{Measure, Program, Stratifier};
use crate::period::Period;
use crate::results::{Grouping, ResultRow, csv_field};

/// What a state tells CMS's reporting system about one measure besides the numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureReport {
    pub measure: String,
    pub title: String,
    /// Whether the state can report it, and why not.
    pub reporting: bool,
    pub why_not: String,
    /// `final`, or `provisional` while claims have had under 90 days to arrive after the period.
    pub status: &'static str,
    pub specification: String,
    pub data_source: &'static str,
    pub period: Period,
    pub population: String,
    pub delivery_systems: String,
    pub deviations: String,
    pub notes: String,
}

/// Days of claims run-out after the period before its results are final.
pub const RUN_OUT_DAYS: i64 = 90;

impl MeasureReport {
    pub fn new(
        m: &Measure,
        period: &Period,
        cutoff: Option<NaiveDate>,
        rows: &[ResultRow],
        note: Option<&str>,
    ) -> MeasureReport {
        let total = rows
            .iter()
            .filter(|r| r.measure == m.id && r.stratifier == Grouping::Total)
            .map(|r| r.denominator)
            .fold(0.0, f64::max);
        let mcos: Vec<&str> = rows
            .iter()
            .filter(|r| {
                r.measure == m.id
                    && r.stratifier == Grouping::By(Stratifier::Mco)
                    && r.denominator > 0.0
            })
            .map(|r| r.stratum.as_str())
            .collect();
        let mut systems = Vec::new();
        if mcos.iter().any(|s| *s != "FFS") {
            systems.push("MCO");
        }
        if mcos.contains(&"FFS") {
            systems.push("FFS");
        }
        let final_after = period.end + chrono::Duration::days(RUN_OUT_DAYS);
        let mut notes: Vec<String> = m.reporting.notes.iter().cloned().collect();
        notes.extend(note.map(str::to_string));
        MeasureReport {
            measure: m.id.clone(),
            title: m.title.clone(),
            reporting: total > 0.0,
            why_not: if total > 0.0 {
                String::new()
            } else {
                "no eligible members or events in the period".into()
            },
            status: if cutoff.is_some_and(|c| c >= final_after) {
                "final"
            } else {
                "provisional"
            },
            specification: m
                .reporting
                .specification
                .clone()
                .unwrap_or_else(|| m.source.clone()),
            data_source: m
                .reporting
                .data_source
                .map_or("administrative", |d| d.name()),
            period: *period,
            population: match m.program {
                Program::HealthHome => {
                    "Health Home enrollees (Medicaid, dual eligibles included)".into()
                }
                Program::Medicaid => "Medicaid enrollees (dual eligibles included)".into(),
            },
            delivery_systems: systems.join(", "),
            deviations: match m.reporting.all_deviations() {
                d if d.is_empty() => "none".into(),
                d => d.join(" "),
            },
            notes: notes.join(" "),
        }
    }
}

/// `cms_measures.csv`: one row per measure with the reporting system's fields besides numbers.
pub fn measures_csv(reports: &[MeasureReport]) -> String {
    let mut out = String::from(
        "measure,title,reporting,reason_not_reporting,status,specification,data_source,period_start,period_end,population,delivery_systems,deviations,notes\n",
    );
    for r in reports {
        let fields = [
            r.measure.clone(),
            r.title.clone(),
            if r.reporting { "yes" } else { "no" }.to_string(),
            r.why_not.clone(),
            r.status.to_string(),
            r.specification.clone(),
            r.data_source.to_string(),
            r.period.start.to_string(),
            r.period.end.to_string(),
            r.population.clone(),
            r.delivery_systems.clone(),
            r.deviations.clone(),
            r.notes.clone(),
        ];
        out.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub measure: String,
    pub component: String,
    pub check: &'static str,
    pub stratifier: Grouping,
    pub stratum: String,
    pub passed: bool,
    pub detail: String,
}

fn shown(rate: Option<f64>) -> String {
    rate.map_or_else(|| "no rate".to_string(), |r| format!("{r:.1}"))
}

fn find<'a>(
    rows: &'a [ResultRow],
    measure: &str,
    component: &str,
    stratifier: Grouping,
    stratum: &str,
) -> Option<&'a ResultRow> {
    rows.iter().find(|r| {
        r.measure == measure
            && r.component == component
            && r.stratifier == stratifier
            && r.stratum == stratum
    })
}

/// Run CMS's checks over the result rows.
pub fn checks(rows: &[ResultRow]) -> Vec<Check> {
    let mut out = Vec::new();
    // A narrower rate against the wider one it lies inside, stratum by stratum: 7-day against
    // 30-day, and IET's engagement (which needs initiation) against initiation, per cohort.
    let pairs = rows.iter().filter_map(|r| {
        if r.component == "7_day" {
            Some((
                r,
                "30_day".to_string(),
                "7-day rate at most the 30-day rate",
                "7-day and 30-day share one denominator",
            ))
        } else {
            r.component.strip_prefix("engagement_").map(|g| {
                (
                    r,
                    format!("initiation_{g}"),
                    "engagement rate at most the initiation rate",
                    "engagement and initiation share one denominator",
                )
            })
        }
    });
    for (narrow, wide_name, rate_check, denominator_check) in pairs {
        let Some(wide) = find(
            rows,
            &narrow.measure,
            &wide_name,
            narrow.stratifier,
            &narrow.stratum,
        ) else {
            continue;
        };
        let rate_ok = match (narrow.rate, wide.rate) {
            (Some(a), Some(b)) => a <= b,
            _ => true,
        };
        out.push(Check {
            measure: narrow.measure.clone(),
            component: narrow.component.clone(),
            check: rate_check,
            stratifier: narrow.stratifier,
            stratum: narrow.stratum.clone(),
            passed: rate_ok,
            detail: format!("{} vs {}", shown(narrow.rate), shown(wide.rate)),
        });
        out.push(Check {
            measure: narrow.measure.clone(),
            component: narrow.component.clone(),
            check: denominator_check,
            stratifier: narrow.stratifier,
            stratum: narrow.stratum.clone(),
            passed: narrow.denominator == wide.denominator,
            detail: format!("{} vs {}", narrow.denominator, wide.denominator),
        });
    }
    // Strata add up to the total, per measure, component and stratifier.
    let mut keys: Vec<(&str, &str, Grouping)> = rows
        .iter()
        .filter(|r| r.stratifier != Grouping::Total)
        .map(|r| (r.measure.as_str(), r.component.as_str(), r.stratifier))
        .collect();
    keys.dedup();
    // Stratifiers by name: the order cms_checks.csv lists a measure's checks in.
    keys.sort_by_key(|&(measure, component, s)| (measure, component, s.name()));
    keys.dedup();
    for (measure, component, stratifier) in keys {
        let Some(total) = find(rows, measure, component, Grouping::Total, "total") else {
            continue;
        };
        let (n, d) = rows
            .iter()
            .filter(|r| {
                r.measure == measure && r.component == component && r.stratifier == stratifier
            })
            .fold((0.0, 0.0), |(n, d), r| (n + r.numerator, d + r.denominator));
        let passed = (n - total.numerator).abs() < 1e-6 && (d - total.denominator).abs() < 1e-6;
        out.push(Check {
            measure: measure.to_string(),
            component: component.to_string(),
            check: "strata add up to the total",
            stratifier,
            stratum: "all".into(),
            passed,
            detail: format!(
                "strata {n}/{d}, total {}/{}",
                total.numerator, total.denominator
            ),
        });
    }
    out
}

/// The checks as CSV, failures first.
pub fn checks_csv(checks: &[Check]) -> String {
    let mut sorted: Vec<&Check> = checks.iter().collect();
    sorted.sort_by_key(|c| c.passed);
    let mut out = String::from("measure,component,check,stratifier,stratum,status,detail\n");
    for c in sorted {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_field(&c.measure),
            csv_field(&c.component),
            csv_field(c.check),
            csv_field(c.stratifier.name()),
            csv_field(&c.stratum),
            if c.passed { "pass" } else { "FAIL" },
            csv_field(&c.detail)
        ));
    }
    out
}

/// The QMR entry table: per measure and category (component), the total and each age band, with
/// the rate rounded to one decimal as CMS publishes it (empty without a denominator).
pub fn reporting_csv(rows: &[ResultRow]) -> String {
    let mut out = String::from(
        "measure,category,period_start,period_end,age_band,numerator,denominator,rate,unit\n",
    );
    for r in rows.iter().filter(|r| {
        matches!(
            r.stratifier,
            Grouping::Total | Grouping::By(Stratifier::AgeBand)
        )
    }) {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.measure),
            csv_field(&r.component),
            r.period_start,
            r.period_end,
            csv_field(match r.stratifier {
                Grouping::Total => "total",
                _ => &r.stratum,
            }),
            r.numerator,
            r.denominator,
            r.rate.map(|x| format!("{x:.1}")).unwrap_or_default(),
            csv_field(r.unit.name())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::measure::Stratifier::{AgeBand, Hhp};
    use crate::results::Grouping::{By, Total};
    use crate::results::test_row as row;

    #[test]
    fn consistent_results_pass_every_check() {
        let rows = vec![
            row("7_day", Total, "total", 2.0, 5.0),
            row("7_day", By(AgeBand), "6-17", 1.0, 1.0),
            row("7_day", By(AgeBand), "18-64", 1.0, 4.0),
            row("30_day", Total, "total", 4.0, 5.0),
            row("30_day", By(AgeBand), "6-17", 1.0, 1.0),
            row("30_day", By(AgeBand), "18-64", 3.0, 4.0),
        ];
        let c = checks(&rows);
        assert_eq!(c.len(), 2 * 3 + 2);
        assert!(c.iter().all(|c| c.passed), "{c:?}");
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let rows = vec![
            row("7_day", Total, "total", 3.0, 5.0),
            row("7_day", By(AgeBand), "18-64", 3.0, 4.0),
            row("30_day", Total, "total", 2.0, 6.0),
            row("30_day", By(AgeBand), "18-64", 2.0, 6.0),
        ];
        let all = checks(&rows);
        let failed: Vec<(&str, &str)> = all
            .iter()
            .filter(|c| !c.passed)
            .map(|c| (c.check, c.stratum.as_str()))
            .collect();
        assert!(failed.contains(&("7-day rate at most the 30-day rate", "total")));
        assert!(failed.contains(&("7-day and 30-day share one denominator", "18-64")));
        assert!(failed.contains(&("strata add up to the total", "all")));
        let csv = checks_csv(&all);
        assert!(csv.lines().nth(1).unwrap().contains(",FAIL,"), "{csv}");
    }

    #[test]
    fn engagement_is_checked_against_initiation_per_cohort() {
        let rows = vec![
            row("initiation_alcohol", Total, "total", 2.0, 5.0),
            row("engagement_alcohol", Total, "total", 3.0, 5.0),
            row("initiation_total", Total, "total", 4.0, 9.0),
            row("engagement_total", Total, "total", 1.0, 8.0),
        ];
        let all = checks(&rows);
        let failed: Vec<(&str, &str)> = all
            .iter()
            .filter(|c| !c.passed)
            .map(|c| (c.check, c.component.as_str()))
            .collect();
        assert_eq!(
            failed,
            vec![
                (
                    "engagement rate at most the initiation rate",
                    "engagement_alcohol"
                ),
                (
                    "engagement and initiation share one denominator",
                    "engagement_total"
                ),
            ]
        );
    }

    #[test]
    fn reporting_table_rounds_to_one_decimal_and_keeps_age_bands() {
        let rows = vec![
            row("7_day", Total, "total", 2.0, 3.0),
            row("7_day", By(AgeBand), "18-64", 0.0, 0.0),
            row("7_day", By(Hhp), "HHP-1", 2.0, 3.0),
        ];
        let csv = reporting_csv(&rows);
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            vec![
                "measure,category,period_start,period_end,age_band,numerator,denominator,rate,unit",
                "FUH-HH,7_day,2025-01-01,2025-12-31,total,2,3,66.7,percent",
                "FUH-HH,7_day,2025-01-01,2025-12-31,18-64,0,0,,percent",
            ]
        );
    }
}
