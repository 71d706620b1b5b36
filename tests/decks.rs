//! Every test deck in measures/decks/ passes (the same run as `hhq test`), and a deck whose
//! expectation is wrong is reported as a failure, not passed over.

mod common;

use hhq::decks::{run_deck, run_dir};
use hhq::engine::Definitions;

#[tokio::test]
async fn every_shipped_deck_passes() {
    let cases = run_dir(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .await
    .unwrap();
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            c.failure
                .as_ref()
                .map(|f| format!("{}:{} {}: {f}", c.deck.display(), c.line, c.case))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(cases.len() >= 12, "{} cases", cases.len());
}

#[tokio::test]
async fn every_construct_deck_passes() {
    // Each construct of the measure language, in a small measure of its own, proven by a deck
    // written from the specification sentence it expresses (tests/constructs/).
    let dir = common::constructs_dir();
    let cases = run_dir(&dir.path().join("measures"), &dir.path().join("queries"))
        .await
        .unwrap();
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            c.failure.as_ref().map(|f| {
                let deck = c.deck.file_name().unwrap().to_string_lossy();
                format!("{deck}:{} {}: {f}", c.line, c.case)
            })
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    let decks: std::collections::BTreeSet<_> = cases.iter().map(|c| c.deck.clone()).collect();
    let fixtures = std::fs::read_dir(common::root().join("tests/constructs/decks"))
        .unwrap()
        .count();
    assert_eq!(decks.len(), fixtures, "every construct's deck ran");
}

#[tokio::test]
async fn a_wrong_expectation_fails() {
    let root = common::root();
    let deck = std::fs::read_to_string(root.join("measures/decks/hh-tcc.yaml")).unwrap();
    // S3's 30-day follow-up was on day 8: claim it was within 7 days, and S4 a unit.
    let wrong = deck
        .replace(
            "numerators: {7_day: 0, 30_day: 1}",
            "numerators: {7_day: 1, 30_day: 1}",
        )
        .replace("- absent: S4", "- absent: S1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.yaml");
    std::fs::write(&path, wrong).unwrap();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let cases = run_deck(&path, &defs).await.unwrap();
    let failures: Vec<(&str, &str)> = cases
        .iter()
        .filter_map(|c| c.failure.as_deref().map(|f| (c.case.as_str(), f)))
        .collect();
    assert_eq!(
        failures,
        vec![
            ("S3", "7_day: expected 1, got 0"),
            ("absent S1", "the unit is in the detail"),
        ]
    );
}
