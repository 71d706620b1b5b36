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

#[test]
fn conformance_matrix_is_complete_and_current() {
    // Every rule hhq implements has a deck case that names it, every `at:` names one line of
    // its measure, every case's rules exist, and docs/conformance.md is the matrix of today's
    // definitions.
    let measures_dir = common::root().join("measures");
    let measures = hhq::measure::load_dir(&measures_dir).unwrap();
    let mut matrix = hhq::conformance::load(&measures_dir, &measures).unwrap();
    matrix
        .attach(hhq::decks::rule_tags(&measures_dir).unwrap())
        .unwrap();
    assert_eq!(matrix.gaps(), Vec::<String>::new());
    let ids: Vec<&str> = matrix.measures.iter().map(|m| m.measure.as_str()).collect();
    for id in ["FUH-HH", "FUM-HH", "FUA-HH", "IET-HH", "PCR-HH"] {
        assert!(ids.contains(&id), "{id} has no rule file");
    }
    let doc = std::fs::read_to_string(common::root().join("docs/conformance.md")).unwrap();
    assert!(
        doc == matrix.markdown(),
        "docs/conformance.md is not the current matrix: run `hhq conformance --out docs/conformance.md`"
    );
}

#[test]
fn a_rule_without_a_case_or_a_line_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let m = dir.path().join("measures");
    std::fs::create_dir_all(m.join("conformance")).unwrap();
    std::fs::create_dir_all(m.join("decks")).unwrap();
    std::fs::copy(root.join("measures/hh-tcc.yaml"), m.join("hh-tcc.yaml")).unwrap();
    let measures = hhq::measure::load_dir(&m).unwrap();
    let rules = |at: &str, status: &str| {
        format!(
            "measure: HH-TCC\nspecification: x\nrules:\n  - id: r1\n    section: s\n    rule: r\n{at}    status: {status}\n"
        )
    };
    // A rule with no deck case is a gap; as specified it needs no note.
    std::fs::write(
        m.join("conformance/hh-tcc.yaml"),
        rules("    at: \"end_offset: -30\"\n", "as_specified"),
    )
    .unwrap();
    let matrix = hhq::conformance::load(&m, &measures).unwrap();
    assert_eq!(matrix.gaps(), vec!["HH-TCC rule `r1` has no deck case"]);
    assert_eq!(matrix.measures[0].rules[0].line, Some(29));
    // A text on several lines, a reading without a note, a rule without `at:`.
    for (at, status, want) in [
        ("    at: \"window\"\n", "as_specified", "occurs 3 times"),
        (
            "    at: \"end_offset: -30\"\n",
            "reading",
            "needs a `note:`",
        ),
        ("", "as_specified", "says no `at:`"),
        (
            "    at: [\"- name: 7_day\", \"nowhere\"]\n",
            "as_specified",
            "no `nowhere` after",
        ),
    ] {
        std::fs::write(m.join("conformance/hh-tcc.yaml"), rules(at, status)).unwrap();
        let e = hhq::conformance::load(&m, &measures)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(e.contains("conformance/hh-tcc.yaml:"), "{e}");
    }
    // What a run reads: a stale `at:` does not stop a locally edited measure from running, and
    // its deviations are still reported.
    std::fs::write(
        m.join("conformance/hh-tcc.yaml"),
        rules("    at: \"window\"\n", "reading\n    note: why"),
    )
    .unwrap();
    let reporting = hhq::conformance::load_for_reporting(&m, &measures).unwrap();
    assert_eq!(
        reporting.deviations("HH-TCC"),
        vec!["A reading (s, r): why"]
    );
    // A case naming an unknown rule.
    std::fs::write(
        m.join("conformance/hh-tcc.yaml"),
        rules("    at: \"end_offset: -30\"\n", "as_specified"),
    )
    .unwrap();
    let mut matrix = hhq::conformance::load(&m, &measures).unwrap();
    let tag = hhq::conformance::CaseTag {
        deck: m.join("decks/hh-tcc.yaml"),
        measure: "HH-TCC".into(),
        case: "S1".into(),
        line: 7,
        rules: vec!["r2".into()],
    };
    let e = matrix.attach(vec![tag]).unwrap_err().to_string();
    assert!(e.contains("no rule `r2`"), "{e}");
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
