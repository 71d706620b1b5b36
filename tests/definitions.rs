//! Measure files are checked before anything runs: mistakes are reported with file, line, column
//! and a hint. The shipped definitions pass the same checks.

mod common;

use std::path::Path;

use hhq::compile::compile;
use hhq::engine::{Definitions, Engine};
use hhq::measure::Measure;
use hhq::period::Period;

const GOOD: &str = r#"id: TEST-1
title: Test
version: "1"
source: a test
better: lower
basis: member_months
age_bands: ["0-17", "18+"]
stratify: [age_band]
components:
  - name: ed_visits
    unit: per_1000_member_months
    numerator:
      count: ed_visits
      date: visit_date
      where: NOT led_to_admission
"#;

/// Parse and compile `yaml` against the shipped building blocks; the error message.
async fn error_of(yaml: &str) -> String {
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    let result = Measure::parse(Path::new("measures/test.yaml"), yaml)
        .and_then(|m| compile(&m, engine.catalog(), &Period::year(2025)));
    result.expect_err("the definition is wrong").to_string()
}

#[tokio::test]
async fn the_good_example_compiles() {
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    let m = Measure::parse(Path::new("t.yaml"), GOOD).unwrap();
    let c = compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
    let sql = c.standalone_sql();
    assert!(sql.contains("GROUPING SETS ((), (age_band))"), "{sql}");
    // Both statements plan against the (empty) extracts.
    engine.context().sql(&sql).await.unwrap();
    engine.context().sql(&c.detail_sql()).await.unwrap();
}

#[tokio::test]
async fn typo_in_a_key() {
    let msg = error_of(&GOOD.replace("stratify:", "stratfy:")).await;
    insta::assert_snapshot!(msg, @r"
    measures/test.yaml:8:1: unknown field `stratfy`, expected one of id, title, version, source, description, better, basis, member_months, events, anchor, enrollment, age_bands, stratify, exclusions, components
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
    assert!(
        msg.starts_with(
            "measures/test.yaml:15:14: in the `where` expression of `ed_visits`: unknown column `led_to_admision`"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn a_filter_may_not_read_another_table() {
    let msg = error_of(&GOOD.replace(
        "NOT led_to_admission",
        "member_id IN (SELECT member_id FROM members)",
    ))
    .await;
    assert!(msg.contains("may not contain a subquery"), "{msg}");
    let msg = error_of(&GOOD.replace("NOT led_to_admission", "1; DROP TABLE claims")).await;
    assert!(msg.contains("does not parse"), "{msg}");
}

#[tokio::test]
async fn date_column_must_exist_and_be_a_date() {
    let msg = error_of(&GOOD.replace("date: visit_date", "date: claim_id")).await;
    assert!(
        msg.contains("column `claim_id` is Utf8, not a date"),
        "{msg}"
    );
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
    assert!(
        msg.starts_with("measures/test.yaml:11:11: unknown variant `per_thousand`"),
        "{msg}"
    );
}

#[tokio::test]
async fn every_shipped_definition_checks() {
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
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
