//! Measure files are checked before anything runs: mistakes are reported with file, line, column
//! and a hint. The shipped definitions pass the same checks.

use crate::common;

use std::path::Path;

use hhq::compile::compile;
use hhq::definitions::Definitions;
use hhq::engine::Engine;
use hhq::measure::Measure;
use hhq::period::Period;

use common::GOOD_MEASURE as GOOD;

/// The shipped definitions and an engine over empty extracts.
async fn offline() -> (Definitions, Engine) {
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    (defs, engine)
}

/// Parse and compile `yaml` against the shipped building blocks; the error message.
async fn error_of(yaml: &str) -> String {
    let (_, engine) = offline().await;
    let result = Measure::parse(Path::new("measures/test.yaml"), yaml)
        .and_then(|m| compile(&m, engine.catalog(), &Period::year(2025)));
    result.expect_err("the definition is wrong").to_string()
}

#[tokio::test]
async fn the_good_example_compiles() {
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), GOOD).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    let sql = c.standalone_sql();
    assert!(
        sql.contains("GROUPING SETS ((member_id), (member_id, age_band))"),
        "{sql}"
    );
    // Both statements plan against the (empty) extracts.
    engine.context().sql(&sql).await.unwrap();
    engine.context().sql(&c.detail_sql()).await.unwrap();
}

#[tokio::test]
async fn typo_in_a_key() {
    let msg = error_of(&GOOD.replace("stratify:", "stratfy:")).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:8:1: unknown field `stratfy`, expected one of id, title, version, source, description, better, basis, member_months, events, anchor, enrollment, age_bands, stratify, exclusions, outliers, components, reporting
      hint: did you mean `stratify`?
    ");
}

#[tokio::test]
async fn unknown_building_block() {
    let msg = error_of(&GOOD.replace("count: ed_visits", "count: ed_visit")).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:13:14: unknown building block `ed_visit`
      hint: did you mean `ed_visits`? (building blocks are the .sql files of queries/)
    ");
}

#[tokio::test]
async fn unknown_column_in_a_filter() {
    let msg = error_of(&GOOD.replace("NOT led_to_admission", "NOT led_to_admision")).await;
    insta::assert_snapshot!("error_unknown_column_in_filter", msg);
}

#[tokio::test]
async fn a_filter_may_not_read_another_table() {
    let msg = error_of(&GOOD.replace(
        "NOT led_to_admission",
        "member_id IN (SELECT member_id FROM members)",
    ))
    .await;
    insta::assert_snapshot!("error_subquery_in_filter", msg);
    let msg = error_of(&GOOD.replace("NOT led_to_admission", "1; DROP TABLE claims")).await;
    insta::assert_snapshot!("error_statement_in_filter", msg);
    let msg = error_of(&GOOD.replace("NOT led_to_admission", "claims.member_id = 'x'")).await;
    insta::assert_snapshot!("error_table_in_filter", msg);
}

#[tokio::test]
async fn date_column_must_exist_and_be_a_date() {
    let msg = error_of(&GOOD.replace("date: visit_date", "date: claim_id")).await;
    insta::assert_snapshot!("error_date_column_not_a_date", msg);
}

#[tokio::test]
async fn bad_age_bands() {
    let msg = error_of(&GOOD.replace(r#"["0-17", "18+"]"#, r#"["0-17", "19+"]"#)).await;
    insta::assert_snapshot!(msg, @r#"
    measures/test.yaml:7:21: age band "19+" does not start right after "0-17"
      hint: list bands in order, without gaps or overlaps
    "#);
}

#[tokio::test]
async fn unknown_unit() {
    let msg = error_of(&GOOD.replace("per_1000_member_months", "per_thousand")).await;
    insta::assert_snapshot!("error_unknown_unit", msg);
}

#[tokio::test]
async fn every_shipped_definition_checks() {
    let (defs, engine) = offline().await;
    let ids: Vec<&str> = defs.measures.iter().map(|m| m.id.as_str()).collect();
    assert!(
        ids.contains(&"AMB-HH") && ids.contains(&"HH-ENGAGE"),
        "{ids:?}"
    );
    for m in &defs.measures {
        let c = compile(m, engine.catalog(), &Period::year(2025)).unwrap();
        engine.context().sql(&c.standalone_sql()).await.unwrap();
        engine.context().sql(&c.detail_sql()).await.unwrap();
    }
}

#[test]
fn unknown_value_set_in_a_block() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.sql"),
        "-- x\nSELECT member_id FROM claims\nWHERE in_value_set(revenue_code, 'ed_revenu')\n",
    )
    .unwrap();
    let sets =
        hhq::measure::valueset::ValueSets::load_dir(&common::root().join("measures/valuesets"))
            .unwrap();
    let msg = hhq::compile::blocks::load_dir(dir.path(), &sets)
        .unwrap_err()
        .to_string()
        .replace(&dir.path().display().to_string(), "<queries>");
    insta::assert_snapshot!(msg, @r"
    <queries>/x.sql:3:7: unknown value set `ed_revenu`
      hint: did you mean `ed_revenue`?
    ");
}

const EVENTS: &str = r#"id: TEST-2
title: Test events
version: "1"
source: a test
better: higher
basis: events
events:
  from: inpatient_stays
  id: stay_id
  date: discharge_date
  where: acute AND in_value_set(principal_dx, 'mental_illness_dx')
  end_offset: -30
enrollment:
  in: medicaid
  continuous: {from: 0, to: 30, max_gaps: 0, max_gap_days: 0}
age_bands: ["6-17", "18-64", "65+"]
stratify: [age_band, sex, quarter]
exclusions:
  - name: nonacute_readmission
    exists: inpatient_stays
    date: admission_date
    window: {from: 1, to: 30}
    where: NOT acute
components:
  - name: 7_day
    unit: percent
    numerator:
      exists: hh_services
      date: service_date
      window: {from: 1, to: 7}
  - name: 30_day
    unit: percent
    numerator:
      exists: hh_services
      date: service_date
      window: {from: 1, to: 30}
  - name: days
    unit: count
    numerator:
      sum: length_of_stay
      over: inpatient_stays
      date: discharge_date
      window: {from: 0, to: 0}
  - name: alos
    unit: days
    ratio: {numerator: days, denominator: 30_day}
"#;

#[tokio::test]
async fn the_event_example_compiles_and_plans() {
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), EVENTS).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    // Events run to December 1; value sets are expanded; continuous enrolment is checked.
    let sql = c.standalone_sql();
    assert!(
        sql.contains("ev.discharge_date <= DATE '2025-12-01'"),
        "{sql}"
    );
    assert!(
        sql.contains("(ev.principal_dx >= 'F20' AND ev.principal_dx < 'F26')"),
        "{sql}"
    );
    assert!(sql.contains("ce_spans AS"), "{sql}");
    engine.context().sql(&sql).await.unwrap();
    engine.context().sql(&c.detail_sql()).await.unwrap();
}

async fn events_error(from: &str, to: &str) -> String {
    assert!(EVENTS.contains(from), "{from}");
    error_of(&EVENTS.replace(from, to)).await
}

#[tokio::test]
async fn a_window_that_ends_before_it_starts() {
    let msg = events_error("window: {from: 1, to: 7}", "window: {from: 7, to: 1}").await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:30:15: the window ends (day 1) before it starts (day 7)
      hint: windows are days relative to the anchor, `from` up to `to`, both included
    ");
}

#[tokio::test]
async fn a_7_day_numerator_wider_than_its_30_day_sibling() {
    let msg = events_error("window: {from: 1, to: 7}", "window: {from: 0, to: 7}").await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:30:15: `7_day` looks at days 0..7, outside its sibling `30_day` (days 1..30): its rate could exceed the longer window's
      hint: the shorter window must lie inside the longer one
    ");
}

#[tokio::test]
async fn a_ratio_of_an_unknown_component() {
    let msg = events_error("denominator: 30_day}", "denominator: 31_day}").await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:46:43: no numerator component `31_day` in this measure
      hint: components: 7_day, 30_day, days, alos
    ");
}

#[tokio::test]
async fn an_event_numerator_without_a_window() {
    let msg = events_error("      window: {from: 1, to: 30}\n", "").await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:31:11: `30_day` needs a `window:` relative to the event date
      hint: e.g. `window: {from: 1, to: 30}` for the 30 days after a discharge
    ");
}

#[tokio::test]
async fn an_unknown_value_set_in_a_filter() {
    let msg = events_error("'mental_illness_dx'", "'mental_ilness_dx'").await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:11:10: in the `where` expression of `inpatient_stays`: unknown value set `mental_ilness_dx`
      hint: did you mean `mental_illness_dx`?
    ");
}

#[tokio::test]
async fn a_sum_of_a_text_column() {
    let msg = events_error("sum: length_of_stay", "sum: discharge_status").await;
    insta::assert_snapshot!(msg, @"measures/test.yaml:40:12: column `discharge_status` is Utf8; `sum:` needs a number");
}

#[tokio::test]
async fn events_basis_needs_its_events() {
    let cut = EVENTS.find("events:\n").unwrap();
    let end = EVENTS.find("enrollment:").unwrap();
    let yaml = format!("{}{}", &EVENTS[..cut], &EVENTS[end..]);
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:6:8: `basis: events` needs an `events:` section naming the building block
      hint: events: {from: acute_discharges, id: stay_id, date: discharge_date}
    ");
}

#[tokio::test]
async fn compiled_sql_of_every_shipped_measure() {
    // A snapshot per measure: any change to what a shipped measure runs shows up in review.
    let (defs, engine) = offline().await;
    for m in &defs.measures {
        let c = compile(m, engine.catalog(), &Period::year(2025)).unwrap();
        insta::assert_snapshot!(format!("compiled_{}", m.id), c.standalone_sql());
    }
}

#[tokio::test]
async fn filter_columns_never_clash_with_the_unit_columns() {
    // hh_services has member_id and hhp_id, as do the candidate units it is joined to.
    let yaml = GOOD
        .replace("count: ed_visits", "exists: hh_services")
        .replace("date: visit_date", "date: service_date")
        .replace(
            "where: NOT led_to_admission",
            "where: reached AND hhp_id IS NOT NULL AND member_id <> ''",
        );
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), &yaml).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    assert!(
        c.ctes
            .contains("AND (b.reached AND b.hhp_id IS NOT NULL AND b.member_id <> '')"),
        "{}",
        c.ctes
    );
    engine.context().sql(&c.detail_sql()).await.unwrap();
}

#[tokio::test]
async fn a_measure_without_stratifiers_reports_its_total() {
    let yaml = GOOD.replace("stratify: [age_band]", "stratify: []");
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), &yaml).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    assert!(c.standalone_sql().contains("SELECT 'total' AS stratifier"));
    engine.context().sql(&c.standalone_sql()).await.unwrap();
}

/// An events measure over ED visits, for the language features that need `basis: events`.
const AFTER: &str = r#"id: TEST-2
title: Test events
version: "1"
source: a test
better: higher
basis: events
events: {from: ed_visits, id: source_id, date: visit_date}
age_bands: ["0+"]
components:
  - name: first
    unit: percent
    numerator:
      exists: outpatient_visits
      date: visit_date
      window: {from: 0, to: 7}
  - name: second
    unit: percent
    numerator:
      exists: outpatient_visits
      date: visit_date
      after: first
      window: {from: 1, to: 30}
      at_least: 2
"#;

#[tokio::test]
async fn the_events_fixture_compiles_with_after_and_at_least() {
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), AFTER).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    // `second` counts from `first`'s first date, on two different days.
    assert!(
        c.ctes.contains("JOIN n0 a ON a.unit_id = c.unit_id"),
        "{}",
        c.ctes
    );
    assert!(
        c.ctes.contains("a.first_date + INTERVAL '30 days'"),
        "{}",
        c.ctes
    );
    assert!(c.ctes.contains("coalesce(n1.days, 0) >= 2"), "{}", c.ctes);
    engine.context().sql(&c.detail_sql()).await.unwrap();
}

#[tokio::test]
async fn after_must_name_an_earlier_numerator() {
    let msg = error_of(&AFTER.replace("after: first", "after: second")).await;
    insta::assert_snapshot!(msg, @"measures/test.yaml:21:14: `after: second` must name a numerator component listed before `second`");
}

#[tokio::test]
async fn at_least_only_with_exists() {
    let yaml = AFTER.replace(
        "      exists: outpatient_visits\n      date: visit_date\n      after",
        "      count: outpatient_visits\n      date: visit_date\n      after",
    );
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @"measures/test.yaml:23:17: `at_least:` applies to `exists:` conditions");
}

#[tokio::test]
async fn a_subset_needs_the_events_basis() {
    let yaml = GOOD.replace(
        "    unit: per_1000_member_months\n",
        "    unit: per_1000_member_months\n    where: mental_health\n",
    );
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:12:12: component `ed_visits`: a `where:` subset applies to numerators of `basis: events`
      hint: it keeps the events (of the events' block) this component counts
    ");
}

#[tokio::test]
async fn a_subset_column_must_exist_in_the_events_block() {
    let yaml = AFTER.replace(
        "  - name: second\n    unit: percent\n",
        "  - name: second\n    unit: percent\n    where: mental_helth\n",
    );
    let msg = error_of(&yaml).await;
    assert!(msg.contains("mental_helth"), "{msg}");
    assert!(msg.contains("did you mean `mental_health`"), "{msg}");
}

#[tokio::test]
async fn any_of_arms_are_exists_conditions() {
    let yaml = AFTER.replace(
        "      exists: outpatient_visits\n      date: visit_date\n      window: {from: 0, to: 7}\n",
        "      any_of:\n        - count: outpatient_visits\n          date: visit_date\n          window: {from: 0, to: 7}\n",
    );
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:14:18: each `any_of:` arm is one `exists:` condition
      hint: the unit qualifies when any arm finds a row
    ");
}

#[tokio::test]
async fn unknown_optional_input() {
    let yaml = AFTER.replace(
        "  - name: second\n    unit: percent\n",
        "  - name: second\n    unit: percent\n    needs: risk_weight\n",
    );
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:18:12: unknown optional input `risk_weight`
      hint: known inputs: risk_weights
    ");
}

#[tokio::test]
async fn outlier_components_need_the_outlier_rule() {
    let yaml =
        format!("{AFTER}  - name: outliers\n    unit: count\n    enrollees: {{outliers: true}}\n");
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:24:11: `enrollees: {outliers: true}` needs the measure's `outliers:` rule
      hint: e.g. `outliers: {min_units: 4}`
    ");
}

#[tokio::test]
async fn plan_of_every_shipped_measure() {
    // The plan each shipped measure compiles to, step by step: what each step computes and
    // reads, the numerator columns and what each component reports. A change to what a measure
    // computes shows here before it shows in the SQL.
    let (defs, engine) = offline().await;
    for m in &defs.measures {
        let c = compile(m, engine.catalog(), &Period::year(2025)).unwrap();
        insta::assert_snapshot!(format!("plan_{}", m.id), c.plan().to_string());
    }
}

#[tokio::test]
async fn plan_of_every_construct() {
    // One small measure per construct of the language (tests/constructs/): its plan shows the
    // steps the construct adds and the order units are judged in.
    let dir = common::constructs_dir();
    let defs =
        Definitions::load(&dir.path().join("measures"), &dir.path().join("queries")).unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    for m in &defs.measures {
        let c = compile(m, engine.catalog(), &Period::year(2025)).unwrap();
        insta::assert_snapshot!(format!("construct_{}", m.id), c.plan().to_string());
        engine.context().sql(&c.detail_sql()).await.unwrap();
    }
}

#[tokio::test]
async fn a_building_block_may_not_take_the_name_of_a_step() {
    for name in ["units", "detail", "ce", "n0", "x12"] {
        let queries = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(common::root().join("queries")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sql") {
                std::fs::copy(&p, queries.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(
            queries.path().join(format!("{name}.sql")),
            "SELECT member_id FROM members",
        )
        .unwrap();
        let err = Definitions::load(&common::root().join("measures"), queries.path())
            .expect_err("a block named like a step")
            .to_string();
        assert!(
            err.contains(&format!("{name}.sql:1:1: `{name}` is the name of a step")),
            "{err}"
        );
    }
    // Names that only look alike are blocks like any other.
    for name in ["n", "x1a", "units2", "n_0"] {
        assert!(!hhq::compile::sql::is_step_name(name), "{name}");
    }
}

#[tokio::test]
async fn names_and_text_from_a_measure_cannot_change_its_query() {
    // An exclusion named with a quote, and a title and a component name that would end the
    // comment they are written in: each stays text.
    let yaml = EVENTS
        .replace("title: ", "title: \"Two lines\\nSELECT 1; --\" # ")
        .replace(
            "name: nonacute_readmission",
            "name: \"it's' OR true OR 'x\"",
        )
        .replace("name: days\n", "name: \"da\\\"ys\\n) x\"\n")
        .replace("numerator: days,", "numerator: \"da\\\"ys\\n) x\",");
    let (_, engine) = offline().await;
    let m = Measure::parse(Path::new("t.yaml"), &yaml).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    let sql = c.detail_sql();
    assert!(
        sql.starts_with("-- TEST-2 1 (Two lines SELECT 1; --)"),
        "{sql}"
    );
    assert!(sql.contains("THEN 'it''s'' OR true OR ''x'"), "{sql}");
    assert!(sql.contains("-- numerator `da\"ys ) x`"), "{sql}");
    assert!(sql.contains("num_2 AS \"da\"\"ys\n) x\""), "{sql}");
    // And the query plans: nothing in it became SQL.
    engine.context().sql(&sql).await.unwrap();
    engine.context().sql(&c.standalone_sql()).await.unwrap();
}

#[tokio::test]
async fn check_reports_every_problem_of_a_file() {
    // Three problems the file alone shows, and two only the catalogue shows: all are reported,
    // each at its own line and column.
    let yaml = format!(
        "{GOOD}  - name: ed_visits\n    unit: percent\n    numerator: {{exists: ed_visits, date: visit_date}}\nexclusions:\n  - exists: ed_visits\n    date: visit_date\n"
    )
    .replace("[\"0-17\", \"18+\"]", "[\"0-17\", \"18+\", \"old\"]");
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r#"
    measures/test.yaml:7:28: age band "old" is not `MIN-MAX` or `MIN+`
      hint: for example `0-17`, `18-64`, `65+`
    measures/test.yaml:16:11: component `ed_visits` is defined twice
    measures/test.yaml:20:13: every exclusion needs a `name:` (it is the reason kept per unit)
    "#);
    let yaml = GOOD.replace("date: visit_date", "date: visit_dat").replace(
        "components:\n",
        "exclusions:\n  - name: x\n    exists: nowhere\n    date: d\ncomponents:\n",
    );
    let msg = error_of(&yaml).await;
    insta::assert_snapshot!(msg, @r#"
    measures/test.yaml:11:13: unknown building block `nowhere`
      hint: known: claim_diagnoses, claim_links, claim_substance_dx, claims_final, deaths, ed_visits, hh_assignments, hh_enrollment, hh_services, hospice, inpatient_stays, institution_months, medicaid_enrollment, mh_followup_services, outpatient_visits, pcr_expected, readmissions, residential_treatment, sud_diagnoses, sud_treatment, superseded_claims (building blocks are the .sql files of queries/)
    measures/test.yaml:18:13: building block `ed_visits` has no column `visit_dat`
      hint: did you mean `visit_date`?
    "#);
}

#[tokio::test]
async fn a_step_that_does_not_plan_is_reported_at_its_place_in_the_measure() {
    // A block the catalogue knows but the session does not have: the step reading it is the
    // first that does not plan, and the error points at the condition naming it.
    let (_, engine) = offline().await;
    let mut catalog = engine.catalog().clone();
    catalog
        .blocks
        .insert("ghost_rows".into(), catalog.blocks["hh_services"].clone());
    let yaml = GOOD.replace(
        "components:\n",
        "exclusions:\n  - name: haunted\n    exists: ghost_rows\n    date: service_date\ncomponents:\n",
    );
    let m = Measure::parse(Path::new("measures/test.yaml"), &yaml).unwrap();
    let c = compile(&m, &catalog, &Period::year(2025)).unwrap();
    let err = hhq::pipeline::plan_compiled(&engine, &m, &c)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("measures/test.yaml:10:11: step `x0` of the compiled query does not plan"),
        "{err}"
    );
    assert!(err.contains("ghost_rows"), "{err}");
}

#[tokio::test]
async fn a_missing_enrolment_block_is_a_definition_problem_at_the_enrolment() {
    let (_, engine) = offline().await;
    let mut catalog = engine.catalog().clone();
    catalog.blocks.remove("medicaid_enrollment");
    let yaml = GOOD.replace(
        "basis: member_months\n",
        "basis: member_months\nenrollment: {in: medicaid}\n",
    );
    let m = Measure::parse(Path::new("measures/test.yaml"), &yaml).unwrap();
    let err = compile(&m, &catalog, &Period::year(2025)).unwrap_err();
    assert!(
        matches!(err, hhq::error::Error::Definition { line: 7, .. }),
        "{err}"
    );
    insta::assert_snapshot!(err.to_string(), @r#"
    measures/test.yaml:7:18: the measure's enrolment needs the building block `medicaid_enrollment`
      hint: add queries/medicaid_enrollment.sql
    "#);
}

#[tokio::test]
async fn where_the_new_constructs_do_not_apply() {
    // Attribution on member months, on an exclusion and inside an `any_of:` arm; overlapping
    // segments; `first_within` that keeps nothing apart; `on_anchor: false` off the events basis.
    let months = GOOD.replace(
        "      where: NOT led_to_admission\n",
        "      where: NOT led_to_admission\n      attribute: nearest_preceding\n",
    );
    let exclusion = EVENTS.replace(
        "    where: NOT acute\n",
        "    where: NOT acute\n    attribute: nearest_preceding\n",
    );
    let segments = EVENTS.replace(
        "continuous: {from: 0, to: 30, max_gaps: 0, max_gap_days: 0}",
        "on_anchor: false\n  continuous:\n    segments:\n      - {from: -30, to: 0}\n      - {from: 0, to: 30}",
    );
    let first = EVENTS.replace(
        "  end_offset: -30\n",
        "  end_offset: -30\n  first_within: {days: 0, among: eligible}\n",
    );
    let mut all = String::new();
    for yaml in [months, exclusion, segments, first] {
        all.push_str(&error_of(&yaml).await);
        all.push('\n');
    }
    insta::assert_snapshot!(all, @r#"
    measures/test.yaml:16:18: `ed_visits`: `attribute: nearest_preceding` applies to `basis: events`
      hint: a member's or a member month's rows have one unit to count toward
    measures/test.yaml:24:16: `attribute:` applies to numerators: an exclusion removes every unit it finds
    measures/test.yaml:19:16: this segment starts on day 0, within the one before (days -30..0)
      hint: list segments in order of their days, without overlaps
    measures/test.yaml:13:17: `first_within: 0` keeps nothing apart
      hint: e.g. `first_within: 31` for one ED visit per 31 days
    "#);
}

#[tokio::test]
async fn windows_counts_and_unit_columns_are_checked() {
    // `of:` a column that is no date, and without a window; `by:` without `at_least:`; `provider:` without `by: day_provider`;
    // `unit.` on member months; a unit column the events' block lacks; `all_of:` counted.
    let of = EVENTS.replace(
        "      window: {from: 1, to: 7}\n",
        "      window: {from: 1, to: 7}\n      of: discharge_status\n",
    );
    let no_window = EVENTS.replace(
        "    window: {from: 1, to: 30}\n    where: NOT acute\n",
        "    of: admission_date\n    where: NOT acute\n",
    );
    let by = EVENTS.replace(
        "      window: {from: 1, to: 7}\n",
        "      window: {from: 1, to: 7}\n      by: event\n",
    );
    let provider = EVENTS.replace(
        "      window: {from: 1, to: 7}\n",
        "      window: {from: 1, to: 7}\n      provider: member_id\n",
    );
    let months = GOOD.replace(
        "NOT led_to_admission",
        "NOT led_to_admission AND unit.member_id = member_id",
    );
    let unknown = EVENTS.replace(
        "    where: NOT acute\n",
        "    where: NOT acute AND unit.nothing = 1\n",
    );
    let mut all = String::new();
    for yaml in [of, no_window, by, provider, months, unknown] {
        all.push_str(&error_of(&yaml).await);
        all.push('\n');
    }
    insta::assert_snapshot!(all, @r#"
    measures/test.yaml:31:11: column `discharge_status` is Utf8, not a date
    measures/test.yaml:22:9: `of:` names the date a `window:` of days counts from; add `window:`
    measures/test.yaml:31:11: `by:` says what `at_least:` counts; add `at_least:`
    measures/test.yaml:31:17: `provider:` is read only when `at_least:` counts `by: day_provider`
    measures/test.yaml:15:14: in the `where` expression of `ed_visits`: `unit.member_id`: only a condition of `basis: events` has a unit with columns of its own
    measures/test.yaml:23:12: in the `where` expression of `inpatient_stays`: `unit.nothing`: the events' block `inpatient_stays` has no column `nothing`
      hint: known: stay_id, member_id, admission_date, discharge_date, discharge_status, principal_dx, principal_dxs, acute, institutional, self_harm_any_dx, psychiatric_residential, psychiatric, claims, length_of_stay, source_id
    "#);
}
