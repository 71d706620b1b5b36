//! Target populations and high-risk flags (`hhq cohort`): definitions checked with file, line
//! and column; decks that can fail; the lists on the test data scoped to an audience,
//! pseudonymised, suppressed where published, and the same bytes on every run.

use crate::common;
use crate::common::{col, hhq, records};

use std::collections::BTreeSet;
use std::path::Path;

use hhq::cohort::{Definition, query};
use hhq::decks::run_deck;
use hhq::definitions::Definitions;
use hhq::engine::Engine;

/// Parse a definition and compile it against the shipped blocks; the error message.
async fn error_of(yaml: &str) -> String {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
    Definition::parse(Path::new("measures/cohorts/test.yaml"), yaml)
        .and_then(|d| query::compile(&[d], engine.catalog(), as_of).map(|_| ()))
        .expect_err("the definition is wrong")
        .to_string()
}

const GOOD: &str = "id: T
kind: cohort
title: t
version: '1'
source: s
population: SMI
lookback: {months: 12}
criteria:
  - name: smi_primary_dx
    from: claim_diagnoses
    date: service_from
    id: claim_id
    where: position = 1 AND in_value_set(dx, 'smi_dx')
  - name: sud
    from: claim_diagnoses
    date: service_from
    id: claim_id
    where: in_value_set(dx, 'chemical_dependency_dx')
qualifies:
  all_of:
    - {at_least: 1, of: [smi_primary_dx]}
    - {none_of: [sud]}
";

#[tokio::test]
async fn the_good_definition_compiles_and_plans() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::offline(&defs).await.unwrap();
    let d = Definition::parse(Path::new("t.yaml"), GOOD).unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
    let c = query::compile(&[d], engine.catalog(), as_of).unwrap();
    // The 12 months ending on the as-of date, both ends included.
    // Both criteria read one block: one scan, a flag per criterion.
    assert_eq!(c.narrow.len(), 1, "{:?}", c.narrow);
    let (_, narrow) = &c.narrow[0];
    assert!(
        narrow.contains("BETWEEN DATE '2025-01-01' AND DATE '2025-12-31'"),
        "{narrow}"
    );
    engine.context().sql(narrow).await.unwrap();
    engine.context().sql(&c.population).await.unwrap();
}

#[tokio::test]
async fn the_shipped_definitions_compile() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let ids: Vec<&str> = defs.cohorts.iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["CC", "HIGH-RISK", "SMI"]);
    let engine = Engine::offline(&defs).await.unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
    let c = query::compile(&defs.cohorts, engine.catalog(), as_of).unwrap();
    // One scan per block read: claim_diagnoses, ed_visits, inpatient_stays, readmissions,
    // hh_services.
    assert_eq!(c.narrow.len(), 5, "{:?}", c.narrow);
    for (_, sql) in &c.narrow {
        engine.context().sql(sql).await.unwrap();
    }
    // The no-contact flag looks back 60 days, not the set's 12 months.
    assert!(
        c.narrow
            .iter()
            .any(|(_, s)| s.contains("DATE '2025-11-02' AND DATE '2025-12-31'"))
    );
    assert!(c.last_seen.is_some());
}

#[tokio::test]
async fn unknown_building_block() {
    let msg = error_of(&GOOD.replace(
        "from: claim_diagnoses\n    date: service_from\n    id: claim_id\n    where: position",
        "from: claim_diagnosis\n    date: service_from\n    id: claim_id\n    where: position",
    ))
    .await;
    insta::assert_snapshot!(msg, @r"
    measures/cohorts/test.yaml:10:11: unknown building block `claim_diagnosis`
      hint: did you mean `claim_diagnoses`? (building blocks are the .sql files of queries/)
    ");
}

#[tokio::test]
async fn unknown_column() {
    let msg = error_of(&GOOD.replace(
        "id: claim_id\n    where: position",
        "id: claim\n    where: position",
    ))
    .await;
    insta::assert_snapshot!(msg, @r"
    measures/cohorts/test.yaml:12:9: building block `claim_diagnoses` has no column `claim`
      hint: did you mean `claim_id`?
    ");
}

#[tokio::test]
async fn unknown_value_set() {
    let msg = error_of(&GOOD.replace("'smi_dx'", "'smi_dxx'")).await;
    assert!(
        msg.starts_with("measures/cohorts/test.yaml:13:12:"),
        "{msg}"
    );
    assert!(msg.contains("smi_dxx") && msg.contains("smi_dx"), "{msg}");
}

#[tokio::test]
async fn a_rule_naming_no_criterion() {
    let msg = error_of(&GOOD.replace("none_of: [sud]", "none_of: [suds]")).await;
    insta::assert_snapshot!(msg, @r"
    measures/cohorts/test.yaml:22:18: no criterion or group `suds`
      hint: did you mean `sud`?
    ");
}

#[tokio::test]
async fn an_impossible_rule_and_threshold() {
    let msg = error_of(&GOOD.replace(
        "at_least: 1, of: [smi_primary_dx]",
        "at_least: 2, of: [smi_primary_dx]",
    ))
    .await;
    assert!(msg.starts_with("measures/cohorts/test.yaml:21:7:"), "{msg}");
    assert!(msg.contains("`at_least: 2` of 1 criteria"), "{msg}");
    let msg = error_of(&GOOD.replace(
        "where: in_value_set(dx, 'chemical_dependency_dx')",
        "where: in_value_set(dx, 'chemical_dependency_dx')\n    at_least: 0",
    ))
    .await;
    insta::assert_snapshot!(msg, @r"
    measures/cohorts/test.yaml:19:15: `at_least: 0` is always met
      hint: use 1 or more
    ");
}

#[tokio::test]
async fn a_misspelt_key_and_a_flag_key_in_a_cohort() {
    let msg = error_of(&GOOD.replace("lookback:", "lookbak:")).await;
    assert!(msg.starts_with("measures/cohorts/test.yaml:7:1:"), "{msg}");
    assert!(msg.contains("did you mean `lookback`?"), "{msg}");
    let msg = error_of(&GOOD.replace(
        "qualifies:",
        "high_risk: {at_least: 1, of: [sud]}\nqualifies:",
    ))
    .await;
    assert!(
        msg.contains("`high_risk:` does not belong in a `kind: cohort` definition"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_wrong_cohort_expectation_fails() {
    let root = common::root();
    let deck = std::fs::read_to_string(root.join("measures/decks/cohort-smi.yaml")).unwrap();
    // C has a co-occurring SUD; claim SMI. I is not eligible on the as-of date; claim E is not.
    let wrong = deck
        .replace(
            "    qualifies: []\n    criteria: {smi_primary_dx: 1, co_occurring_sud: 1}",
            "    qualifies: [SMI]\n    criteria: {smi_primary_dx: 1, co_occurring_sud: 1}",
        )
        .replace("- absent: I", "- absent: E");
    assert_ne!(wrong, deck);
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
            ("C", "qualifies: expected [SMI], got []"),
            ("absent E", "the member is in the population"),
        ]
    );
}

/// `hhq cohort` on the test data, for everyone, an MCO and a partner; and the same again.
#[test]
fn cohort_lists_on_testdata_are_scoped_suppressed_and_reproducible() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "cohort",
            "--as-of",
            "2025-12-31",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = hhq(&args, &root);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (out, String::from_utf8_lossy(&o.stdout).to_string())
    };
    let (all, stdout) = run("all", &[]);
    assert!(stdout.contains("as of 2025-12-31"), "{stdout}");
    let names: BTreeSet<String> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    for f in [
        "not_enrolled.csv",
        "no_longer_qualify.csv",
        "both_populations.csv",
        "worklist.csv",
        "evidence.csv",
        "rules.csv",
        "summary.csv",
        "data_quality_rows.csv",
        "manifest.json",
    ] {
        assert!(names.contains(f), "{f} missing: {names:?}");
    }

    // Every listed line is backed by evidence of its own member.
    let (eh, evidence) = records(&all.join("evidence.csv"));
    let with_evidence: BTreeSet<&str> = evidence
        .iter()
        .map(|r| r[col(&eh, "member_id")].as_str())
        .collect();
    let (nh, not_enrolled) = records(&all.join("not_enrolled.csv"));
    assert!(!not_enrolled.is_empty());
    for r in &not_enrolled {
        assert!(
            with_evidence.contains(r[col(&nh, "member_id")].as_str()),
            "{r:?}"
        );
        assert!(!r[col(&nh, "evidence")].is_empty(), "{r:?}");
    }
    // The worklist: high-risk members first, then by flags raised.
    let (wh, work) = records(&all.join("worklist.csv"));
    let keys: Vec<(bool, usize)> = work
        .iter()
        .map(|r| {
            (
                r[col(&wh, "high_risk")] == "true",
                r[col(&wh, "flags_raised")].parse().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
    assert!(keys.iter().any(|k| k.0) && keys.iter().any(|k| !k.0));
    for r in work.iter().filter(|r| r[col(&wh, "high_risk")] == "true") {
        // Every raised flag is named in the evidence with its count.
        for flag in r[col(&wh, "flags")].split(';') {
            assert!(
                r[col(&wh, "evidence")].contains(&format!("{flag} [")),
                "{r:?}"
            );
        }
    }

    // The published summary: no count from 1 to 10 is shown.
    let (sh, summary) = records(&all.join("summary.csv"));
    assert!(summary.iter().any(|r| r[col(&sh, "numerator")] == "DS"));
    for r in &summary {
        for c in ["numerator", "denominator"] {
            if let Ok(v) = r[col(&sh, c)].parse::<f64>() {
                assert!(v == 0.0 || v > 10.0, "{r:?}");
            }
        }
    }

    // Same inputs, same bytes (the manifest names the output directory, so it is left out).
    let (again, _) = run("again", &[]);
    for f in names.iter().filter(|f| *f != "manifest.json") {
        assert_eq!(
            std::fs::read(all.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs between runs"
        );
    }

    // A partner: its own enrolled members only, and no outreach list.
    let (hhp, _) = run("hhp", &["--hhp", "HHP-03"]);
    assert!(!hhp.join("not_enrolled.csv").exists());
    let (wh, work) = records(&hhp.join("worklist.csv"));
    assert!(!work.is_empty());
    assert!(work.iter().all(|r| r[col(&wh, "hhp")] == "HHP-03"));
    let own: BTreeSet<String> = work
        .iter()
        .map(|r| r[col(&wh, "member_id")].clone())
        .collect();
    let (eh, ev) = records(&hhp.join("evidence.csv"));
    assert!(ev.iter().all(|r| own.contains(&r[col(&eh, "member_id")])));
    for f in ["no_longer_qualify.csv", "both_populations.csv"] {
        let (h, rows) = records(&hhp.join(f));
        assert!(rows.iter().all(|r| r[col(&h, "hhp")] == "HHP-03"), "{f}");
    }

    // An MCO: its members on the as-of date, enrolled or not.
    let (mco, _) = run("mco", &["--mco", "MCO-A"]);
    for f in [
        "not_enrolled.csv",
        "no_longer_qualify.csv",
        "both_populations.csv",
        "worklist.csv",
    ] {
        let (h, rows) = records(&mco.join(f));
        assert!(rows.iter().all(|r| r[col(&h, "mco")] == "MCO-A"), "{f}");
        let (_, everyone) = records(&all.join(f));
        let expected = everyone
            .iter()
            .filter(|r| r[col(&h, "mco")] == "MCO-A")
            .count();
        assert_eq!(rows.len(), expected, "{f}");
    }

    // Pseudonymised: no member id of the data appears in any member-level file.
    let key = dir.path().join("key");
    std::fs::write(&key, "a key of at least sixteen bytes").unwrap();
    let (pseudo, _) = run(
        "pseudo",
        &["--pseudonymize", "--key-file", key.to_str().unwrap()],
    );
    for f in [
        "not_enrolled.csv",
        "worklist.csv",
        "evidence.csv",
        "no_longer_qualify.csv",
    ] {
        let text = std::fs::read_to_string(pseudo.join(f)).unwrap();
        let (h, rows) = records(&pseudo.join(f));
        assert!(!rows.is_empty(), "{f}");
        for r in &rows {
            let id = &r[col(&h, "member_id")];
            assert!(!id.starts_with('M'), "{f}: {id}");
        }
        assert!(!text.contains(",M0000"), "{f}");
    }
}

#[test]
fn a_failed_cohort_run_leaves_the_previous_outputs() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = hhq(&["cohort", "--out", out.to_str().unwrap()], &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(out.join("worklist.csv")).unwrap();
    // A definition directory with a broken cohort file: the run fails before writing.
    let measures = dir.path().join("measures");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    copy(&root.join("measures"), &measures);
    copy(
        &root.join("measures/valuesets"),
        &measures.join("valuesets"),
    );
    copy(&root.join("measures/cohorts"), &measures.join("cohorts"));
    let smi = measures.join("cohorts/smi.yaml");
    let text = std::fs::read_to_string(&smi)
        .unwrap()
        .replace("from: claim_diagnoses", "from: claim_dx");
    std::fs::write(&smi, text).unwrap();
    let o = hhq(
        &[
            "cohort",
            "--out",
            out.to_str().unwrap(),
            "--measures",
            measures.to_str().unwrap(),
        ],
        &root,
    );
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("smi.yaml:") && stderr.contains("unknown building block `claim_dx`"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out.join("worklist.csv")).unwrap(), before);
}

/// Computed in passes over member ranges (eight here), the outputs are the same bytes as in one.
#[test]
fn cohort_lists_in_passes_are_the_lists_of_one_pass() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["cohort", "--mco", "MCO-A", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = hhq(&args, &root);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let one = run("one", &[]);
    let passes = run("passes", &["--members-per-pass", "40"]);
    let mut compared = 0;
    for e in std::fs::read_dir(&one).unwrap() {
        let name = e.unwrap().file_name();
        if name == "manifest.json" {
            continue;
        }
        assert_eq!(
            std::fs::read(one.join(&name)).unwrap(),
            std::fs::read(passes.join(&name)).unwrap(),
            "{name:?} differs"
        );
        compared += 1;
    }
    assert_eq!(compared, 8);
    let (_, work) = records(&passes.join("worklist.csv"));
    assert!(work.len() > 40, "more members than one pass holds");
}
