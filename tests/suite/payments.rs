//! `hhq payments`: the ledger on the test data (every finding the synthetic billing errors make,
//! figures that add up, the same bytes on every run), an audience's outputs holding its own
//! member-months only, and definitions refused at their line and column.

use std::path::Path;
use std::process::Command;

fn hhq(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("hhq runs")
}

fn records(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

fn run(args: &[&str]) -> tempfile::TempDir {
    let root = crate::common::root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pay");
    let mut all = vec![
        "payments",
        "--data",
        "testdata",
        "--period",
        "2025",
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let o = hhq(&all, &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir
}

#[test]
fn the_test_data_show_every_finding_and_the_figures_add_up() {
    let dir = run(&["--compare", "measures/finance/rates-tiered.yaml"]);
    let out = dir.path().join("pay");
    let (h, findings) = records(&out.join("findings.csv"));
    for kind in [
        "billed_not_earned",
        "billed_more_than_once",
        "earned_not_billed",
        "billed_outside_span",
        "billed_after_death",
    ] {
        assert!(
            findings.iter().any(|r| r[col(&h, "finding")] == kind),
            "no {kind} in the synthetic data"
        );
    }
    // Every billed finding names its claims; a missed month names the contacts that earned it.
    for r in &findings {
        let kind = r[col(&h, "finding")].as_str();
        if kind == "earned_not_billed" {
            assert!(!r[col(&h, "contacts")].is_empty(), "{r:?}");
        } else {
            assert!(!r[col(&h, "claims")].is_empty(), "{r:?}");
        }
    }
    // The ledger: a month earned has a first service; a partner is due only what it earned; the
    // State's rows are one per member-month.
    let (hl, ledger) = records(&out.join("ledger.csv"));
    let h = hl.clone();
    let mut months = std::collections::BTreeSet::new();
    for r in &ledger {
        let earned = r[col(&h, "earned")] == "true";
        assert_eq!(earned, !r[col(&h, "first_service")].is_empty(), "{r:?}");
        let due: f64 = r[col(&h, "partner_due")].parse().unwrap();
        assert_eq!(earned, due > 0.0, "{r:?}");
        let state: f64 = r[col(&h, "state_due")].parse().unwrap();
        if state > 0.0 {
            assert!(
                months.insert((r[col(&h, "member_id")].clone(), r[col(&h, "month")].clone())),
                "two State payments for one member-month: {r:?}"
            );
        }
    }
    // The summary's total: months and dollars are the ledger's sums.
    let (h, summary) = records(&out.join("summary.csv"));
    let total = |component: &str| -> (f64, f64) {
        let r = summary
            .iter()
            .find(|r| r[col(&h, "component")] == component && r[col(&h, "stratifier")] == "total")
            .unwrap();
        (
            r[col(&h, "numerator")].parse().unwrap(),
            r[col(&h, "denominator")].parse().unwrap(),
        )
    };
    assert_eq!(total("assigned_months").0, ledger.len() as f64);
    let sum = |c: &str| -> f64 {
        ledger
            .iter()
            .map(|r| r[col(&hl, c)].parse::<f64>().unwrap())
            .sum()
    };
    assert!((total("state_due").0 - sum("state_due")).abs() < 0.01);
    assert!((total("partner_due").0 - sum("partner_due")).abs() < 0.01);
    assert_eq!(
        total("earned_months").0,
        ledger
            .iter()
            .filter(|r| r[col(&hl, "earned")] == "true")
            .count() as f64
    );
    // The alternative table is priced beside the first, per MCO and partner.
    let (h, sim) = records(&out.join("simulation.csv"));
    assert!(sim.iter().any(|r| r[col(&h, "stratifier")] == "hhp"));
    assert!(h.contains(&"dollars_DEMO-TIERED".to_string()));
    let statement = std::fs::read_to_string(out.join("statements/HHP-01.txt")).unwrap();
    assert!(statement.contains("partner HHP-01") && statement.contains("total"));

    // The same bytes on a second run.
    let again = run(&["--compare", "measures/finance/rates-tiered.yaml"]);
    for f in [
        "summary.csv",
        "ledger.csv",
        "findings.csv",
        "simulation.csv",
        "statements/HHP-03.csv",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.path().join("pay").join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
}

#[test]
fn a_partner_sees_its_own_member_months_only() {
    let dir = run(&["--hhp", "HHP-03"]);
    let out = dir.path().join("pay");
    let (h, ledger) = records(&out.join("ledger.csv"));
    assert!(!ledger.is_empty());
    assert!(ledger.iter().all(|r| r[col(&h, "hhp")] == "HHP-03"));
    let (h, findings) = records(&out.join("findings.csv"));
    assert!(findings.iter().all(|r| r[col(&h, "hhp")] == "HHP-03"));
    let statements: Vec<String> = std::fs::read_dir(out.join("statements"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut statements = statements;
    statements.sort();
    assert_eq!(statements, ["HHP-03.csv", "HHP-03.txt"]);
    let (h, summary) = records(&out.join("summary.csv"));
    assert!(
        summary
            .iter()
            .filter(|r| r[col(&h, "stratifier")] == "hhp")
            .all(|r| r[col(&h, "stratum")] == "HHP-03")
    );
}

#[test]
fn a_rate_table_the_data_cannot_price_is_refused_at_its_line() {
    let root = crate::common::root();
    let dir = tempfile::tempdir().unwrap();
    let rates = dir.path().join("risk.yaml");
    std::fs::write(
        &rates,
        "id: RISK\ntitle: by risk score\nstate:\n  pays_for: enrolled_months\n  pmpm: {SMI: 275, CC: 225}\n  tiers:\n    - name: risk\n      by: risk_score\n      bands:\n        - {label: low, below: 1}\n        - {label: high, factor: 1.3}\npartner:\n  default: {share: 0.85}\n",
    )
    .unwrap();
    let out = dir.path().join("pay");
    let o = hhq(
        &[
            "payments",
            "--data",
            "testdata",
            "--rates",
            rates.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("risk.yaml:7:"), "{err}");
    assert!(err.contains("risk_score"), "{err}");
    assert!(!out.exists(), "nothing is written on an error");
}

#[test]
fn cost_of_care_compares_enrollees_with_qualifying_members_and_states_its_method() {
    let root = crate::common::root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cost");
    let o = hhq(
        &["cost", "--data", "testdata", "--out", out.to_str().unwrap()],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, rows) = records(&out.join("cost_of_care.csv"));
    let total = rows
        .iter()
        .find(|r| r[col(&h, "stratifier")] == "total" && r[col(&h, "figure")] == "total_of_care")
        .unwrap();
    let n = |c: &str| total[col(&h, c)].parse::<f64>().unwrap();
    assert!(n("enrollees") > 10.0 && n("comparison_members") > 10.0);
    // The estimate is the enrollees' change less the comparison change, inside its interval.
    let did =
        (n("enrollees_post") - n("enrollees_pre")) - (n("comparison_post") - n("comparison_pre"));
    assert!(
        (did - n("difference_in_differences")).abs() < 0.02,
        "{total:?}"
    );
    assert!(n("interval_low") <= did && did <= n("interval_high"));
    // A stratum is shown whole or hidden whole.
    for r in &rows {
        let hidden = r[4..].iter().filter(|c| *c == "DS").count();
        assert!(hidden == 0 || hidden == r.len() - 4, "{r:?}");
    }
    let method = std::fs::read_to_string(out.join("method.txt")).unwrap();
    assert!(method.contains("Difference in differences") && method.contains("Welch"));

    // Intake months whose windows the data do not cover are refused, saying which they cover.
    let o = hhq(
        &[
            "cost",
            "--data",
            "testdata",
            "--intake",
            "2023",
            "--out",
            out.to_str().unwrap(),
        ],
        &root,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("choose --intake within"), "{err}");
}
