//! The run plan of the whole library over the test data, as `hhq run` would carry it out:
//! snapshots of what is computed when and held until which reader, without a memory limit, in
//! passes, and under a limit. A change to the planner's policy shows here before it shows in a
//! benchmark.

use hhq::compile;
use hhq::definitions::Definitions;
use hhq::engine::Engine;

use crate::common;

/// The plan of every measure for 2025 over the test data, opened with `memory_limit`, in
/// passes of `members_per_pass`.
async fn plan_of(memory_limit: Option<usize>, members_per_pass: Option<usize>) -> String {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::open_limited(
        &root.join("testdata"),
        &defs,
        &Default::default(),
        memory_limit,
    )
    .await
    .unwrap();
    let period = "2025".parse().unwrap();
    let compiled: Vec<_> = defs
        .measures
        .iter()
        .map(|m| compile::compile(m, engine.catalog(), &period).unwrap())
        .collect();
    let measures: Vec<&hhq::measure::Measure> = defs.measures.iter().collect();
    let needed = measures
        .iter()
        .flat_map(|m| m.blocks_given(|_| false))
        .collect();
    let plan = hhq::execute::plan(
        &engine,
        &compiled.iter().collect::<Vec<_>>(),
        &needed,
        members_per_pass,
    )
    .await
    .unwrap();
    plan.to_string()
}

#[tokio::test]
async fn the_plan_of_a_run_in_one_pass() {
    insta::assert_snapshot!(plan_of(None, None).await);
}

#[tokio::test]
async fn the_plan_of_a_run_in_passes() {
    insta::assert_snapshot!(plan_of(None, Some(500)).await);
}

#[tokio::test]
async fn the_plan_of_a_run_under_a_memory_limit() {
    insta::assert_snapshot!(plan_of(Some(64 << 20), None).await);
}
