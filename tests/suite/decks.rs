//! Every test deck in measures/decks/ passes (the same run as `hhq test`), and a deck whose
//! expectation is wrong is reported as a failure, not passed over.

use crate::common;

use hhq::decks::{run_deck, run_dir};
use hhq::definitions::Definitions;

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
        reporting.deviations("HH-TCC", None),
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
        spec: None,
    };
    let e = matrix.attach(vec![tag.clone()]).unwrap_err().to_string();
    assert!(e.contains("no rule `r2`"), "{e}");
    // Fewer than three cases is still a gap; three close it.
    let on = |line: usize| hhq::conformance::CaseTag {
        line,
        rules: vec!["r1".into()],
        ..tag.clone()
    };
    matrix.attach(vec![on(7), on(8)]).unwrap();
    assert_eq!(
        matrix.gaps(),
        vec!["HH-TCC rule `r1` has 2 deck cases of the 3 each rule needs"]
    );
    matrix.attach(vec![on(9)]).unwrap();
    assert!(matrix.gaps().is_empty());
    // A rule of one specification year, named by a deck of another year.
    std::fs::write(
        m.join("conformance/hh-tcc.yaml"),
        rules(
            "    at: \"end_offset: -30\"\n    years: [2025]\n",
            "as_specified",
        ),
    )
    .unwrap();
    let mut matrix = hhq::conformance::load(&m, &measures).unwrap();
    let e = matrix
        .attach(vec![hhq::conformance::CaseTag {
            spec: Some(2024),
            ..on(10)
        }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("belongs to MY2025 only"), "{e}");
    matrix
        .attach(vec![hhq::conformance::CaseTag {
            spec: Some(2025),
            ..on(11)
        }])
        .unwrap();
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
        .replacen(
            "numerators: {7_day: 0, 30_day: 1}",
            "numerators: {7_day: 1, 30_day: 1}",
            1,
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

/// A measure stated per specification year follows the year a run asks for, the newest by
/// default, and says which; a year before its first text is an error at that text's line.
#[test]
fn a_measure_follows_the_specification_year_asked_for() {
    use hhq::measure::{Measure, Spec};
    let path = common::root().join("measures/fuh-hh.yaml");
    let newest = Measure::load(&path).unwrap();
    let y2024 = Measure::load_spec(&path, Spec::Year(2024)).unwrap();
    let y2025 = Measure::load_spec(&path, Spec::Year(2025)).unwrap();
    let later = Measure::load_spec(&path, Spec::Year(2026)).unwrap();
    assert_eq!(newest.spec_years, vec![2024, 2025]);
    assert_eq!(newest.spec_year, Some(2025));
    assert_eq!(y2024.spec_year, Some(2024));
    let events = |m: &Measure| m.events.as_ref().unwrap().filter.clone().unwrap().value;
    assert!(events(&y2024).contains("'self_harm_dx'"));
    assert!(events(&y2025).contains("self_harm_any_dx"));
    assert_eq!(events(&newest), events(&y2025));
    // A year after the last text keeps the last.
    assert_eq!(events(&later), events(&y2025));
    assert_ne!(y2024.version, y2025.version);

    let text = "id: X-HH\ntitle: t\nversion: \"1\"\nsource: s\nbetter: higher\nbasis: events\n\
events:\n  from: inpatient_stays\n  id: stay_id\n  date: discharge_date\n  where:\n    2025: acute\n\
age_bands: [\"18+\"]\ncomponents:\n  - name: n\n    unit: percent\n    numerator:\n      \
exists: outpatient_visits\n      date: visit_date\n      window: {from: 1, to: 7}\n";
    let e = Measure::parse_spec(std::path::Path::new("x.yaml"), text, Spec::Year(2024))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x.yaml:12") && e.contains("no text for MY2024"),
        "{e}"
    );
    assert!(Measure::parse_spec(std::path::Path::new("x.yaml"), text, Spec::Year(2025)).is_ok());
}

/// `diff-spec` lists the texts and rules that differ between two years, and over data the
/// units that change account exactly for the change of each numerator.
#[test]
fn diff_spec_lists_what_changes_and_the_units_account_for_the_rates() {
    common::with_big_stack(|| async move {
        let root = common::root();
        let (measures, queries) = (root.join("measures"), root.join("queries"));
        let same = hhq::specdiff::texts_and_rules(&measures, "PCR-HH", 2024, 2025).unwrap();
        assert!(same.texts.is_empty() && same.rules.is_empty());

        let mut d = hhq::specdiff::texts_and_rules(&measures, "FUM-HH", 2024, 2025).unwrap();
        assert!(d.texts.iter().any(|t| t.what == "events.where"));
        assert!(
            d.rules
                .iter()
                .any(|r| r.id == "self-harm-any-position" && r.year == 2025)
        );
        assert!(
            d.rules
                .iter()
                .any(|r| r.id == "ed-visits" && r.year == 2024)
        );
        hhq::specdiff::units(
            &mut d,
            &root.join("testdata"),
            &measures,
            &queries,
            &hhq::period::Period::year(2025),
        )
        .await
        .unwrap();
        let u = d.units.as_ref().unwrap();
        let moved = |c: &str, from: &str, to: &str| {
            let key = format!("{c}: {from} under MY2024, {to} under MY2025");
            u.changes
                .iter()
                .find(|(w, _)| *w == key)
                .map_or(0, |(_, n)| *n as i64)
        };
        let entered: usize = u
            .changes
            .iter()
            .filter(|(w, _)| w.starts_with("enter") || w.starts_with("leave"))
            .map(|(_, n)| n)
            .sum();
        for r in &u.rates {
            let (c, na, nb) = (&r.component, &r.counts.0, &r.counts.1);
            let num = |s: &str| s.split('/').next().unwrap().parse::<f64>().unwrap() as i64;
            if entered == 0 {
                assert_eq!(
                    num(nb) - num(na),
                    moved(c, "0", "1") - moved(c, "1", "0"),
                    "{c}: {}",
                    d.render()
                );
            }
        }
        assert!(
            entered == 0,
            "testdata's FUM visits are the same events in both years"
        );
        assert!(d.render().contains("Rates (total):"));
    });
}

/// Each measure names, among its deviations, the illustrative value sets it reads (through its
/// filters and its building blocks, transitively).
#[test]
fn a_measure_names_the_illustrative_value_sets_it_reads() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let fuh = defs.measures.iter().find(|m| m.id == "FUH-HH").unwrap();
    let sets = &fuh.reporting.illustrative_value_sets;
    // From the events' block (inpatient_stays), its filter, and the follow-up blocks.
    for want in [
        "nonacute_revenue",
        "mental_illness_dx",
        "self_harm_dx",
        "peer_support",
    ] {
        assert!(sets.iter().any(|s| s == want), "{want} in {sets:?}");
    }
    // Not one FUH-HH never reads.
    assert!(!sets.iter().any(|s| s == "newborn_dx"), "{sets:?}");
    let d = fuh.reporting.all_deviations();
    assert!(
        d.iter().any(|x| x.starts_with("Illustrative value sets:")),
        "{d:?}"
    );
}
