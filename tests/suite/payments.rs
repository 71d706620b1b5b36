//! `hhq payments`: the ledger on the test data (every finding the synthetic billing errors make,
//! figures that add up, the same bytes on every run), an audience's outputs holding its own
//! member-months only, and definitions refused at their line and column.

use crate::common::{col, hhq, records};

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

/// A small before-and-after deck, its figures counted by hand from the method
/// (src/finance/cost.rs, docs/finance.md): enrolments in June 2024, so the pre window is June 2023
/// to May 2024 and the post window June 2024 to May 2025, every member eligible throughout (12
/// months each).
#[tokio::test]
async fn cost_of_care_before_and_after_by_hand() {
    let claims = "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,admission_date,discharge_date,discharge_status,type_of_bill,revenue_code,procedure_code,principal_dx,paid_amount\n\
        X1,X11,1,professional,original,,2023-06-01,2023-06-01,,,,,,99213,I10,10\n\
        X1,X12,1,professional,original,,2025-05-31,2025-05-31,,,,,,99213,I10,10\n\
        E1,E11,1,inpatient,original,,2023-09-01,2023-09-05,2023-09-01,2023-09-05,01,0111,0120,,J189,12000\n\
        E1,E12,1,professional,original,,2024-01-15,2024-01-15,,,,,,99214,F200,1200\n\
        E1,E13,1,professional,original,,2024-08-01,2024-08-01,,,,,,99214,F200,600\n\
        E1,E14,1,professional,original,,2024-06-30,2024-06-30,,,,,,S0281,F200,235\n\
        E2,E21,1,pharmacy,original,,2024-02-01,2024-02-01,,,,,,,,2400\n\
        E2,E22,1,pharmacy,original,,2024-09-01,2024-09-01,,,,,,,,3600\n\
        C1,C11,1,professional,original,,2024-03-01,2024-03-01,,,,,,99213,F200,600\n\
        C1,C12,1,outpatient,original,,2024-07-01,2024-07-01,,,,0131,0510,,F200,1200\n\
        C2,C21,1,professional,original,,2023-12-01,2023-12-01,,,,,,99213,F200,1200\n\
        E3,E31,1,professional,original,,2024-03-01,2024-03-01,,,,,,99213,F200,500\n";
    let contacts = "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
        K1,E1,2024-06-15,HHP-1,care_management,phone,true\n";
    let members = "member_id,birth_date,sex,death_date,dual_eligible\n\
        E1,1970-01-01,F,,false\nE2,1971-01-01,M,,false\nE3,1972-01-01,F,,false\n\
        C1,1973-01-01,M,,false\nC2,1974-01-01,F,,false\nX1,1975-01-01,M,,false\n";
    let enrollment = "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
        E1,medicaid,2023-01-01,,MCO-A,,,\nE1,health_home,2024-06-10,,MCO-A,HHP-1,SMI,false\n\
        E2,medicaid,2023-01-01,,MCO-A,,,\nE2,health_home,2024-06-01,,MCO-A,HHP-1,CC,false\n\
        E3,medicaid,2023-01-01,,MCO-A,,,\nE3,health_home,2023-03-01,,MCO-A,HHP-1,SMI,false\n\
        C1,medicaid,2023-01-01,,MCO-A,,,\nC2,medicaid,2023-01-01,,MCO-A,,,\n\
        X1,medicaid,2023-01-01,,MCO-A,,,\n";
    let data = crate::common::data_dir(claims, contacts, members, enrollment);
    let root = crate::common::root();
    let defs =
        hhq::definitions::Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = hhq::engine::Engine::open(data.path(), &defs).await.unwrap();
    let cohorts: Vec<_> = defs
        .cohorts
        .iter()
        .filter(|d| matches!(d, hhq::cohort::Definition::Cohort(_)))
        .cloned()
        .collect();
    let june = hhq::period::Period::new(
        chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(),
    )
    .unwrap();
    let study = hhq::finance::cost::study(&engine, &cohorts, &june)
        .await
        .unwrap();
    // E1 and E2 first enrolled in June 2024; E3 in 2023 (not new); C1 and C2 qualify for SMI on
    // 2024-05-31 (an F20 principal diagnosis in the 12 months before) and never enrolled; X1
    // never enrolled but does not qualify.
    let ids: Vec<(&str, bool)> = study
        .subjects
        .iter()
        .map(|s| (s.member_id.as_str(), s.enrolled))
        .collect();
    assert_eq!(
        ids,
        [("C1", false), ("C2", false), ("E1", true), ("E2", true)]
    );
    assert!(study.subjects.iter().all(|s| s.months == [12, 12]));
    let by = |id: &str| study.subjects.iter().find(|s| s.member_id == id).unwrap();
    let figure = |name: &str| {
        hhq::finance::cost::FIGURES
            .iter()
            .position(|(f, _)| *f == name)
            .unwrap()
    };
    let total = figure("total_of_care");
    // E1: 12,000 (inpatient) + 1,200 before = 1,100 a month; 600 after = 50 a month; the S0281
    // payment of 235 is the Health Home's, not in the total of care.
    assert_eq!(
        (by("E1").rate(total, 0), by("E1").rate(total, 1)),
        (1100.0, 50.0)
    );
    assert!((by("E1").rate(figure("health_home"), 1) - 235.0 / 12.0).abs() < 1e-9);
    assert!((by("E1").rate(figure("admissions"), 0) - 1000.0 / 12.0).abs() < 1e-9);
    assert_eq!(
        (by("E2").rate(total, 0), by("E2").rate(total, 1)),
        (200.0, 300.0)
    );
    assert_eq!(
        (by("C1").rate(total, 0), by("C1").rate(total, 1)),
        (50.0, 100.0)
    );
    assert_eq!(
        (by("C2").rate(total, 0), by("C2").rate(total, 1)),
        (100.0, 0.0)
    );
    // Changes: enrollees −1,050 and +100 (mean −475), comparison +50 and −100 (mean −25):
    // DiD −450; variances of the changes 661,250 and 11,250, SE √(661,250/2 + 11,250/2).
    let treated: Vec<_> = study.subjects.iter().filter(|s| s.enrolled).collect();
    let comparison: Vec<_> = study.subjects.iter().filter(|s| !s.enrolled).collect();
    let e = hhq::finance::cost::estimates(
        hhq::results::Grouping::Total,
        "total",
        &treated,
        &comparison,
    );
    assert!((e[total].did + 450.0).abs() < 1e-9, "{:?}", e[total]);
    let se = (661_250.0f64 / 2.0 + 11_250.0 / 2.0).sqrt();
    let (lo, hi) = e[total].interval.unwrap();
    assert!((lo - (-450.0 - 1.96 * se)).abs() < 1e-6 && (hi - (-450.0 + 1.96 * se)).abs() < 1e-6);
    // Inpatient: E1 −1,000, E2 0 (mean −500), comparison none: −500.
    assert!((e[figure("inpatient")].did + 500.0).abs() < 1e-9);
}

/// A payment line belongs to the partner the claims name when they carry the optional `hhp_id`
/// column, not to the one assigned on its date of service.
#[tokio::test]
async fn a_partner_named_on_the_claim_is_the_one_billed() {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;
    let claims = "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,procedure_code,principal_dx,paid_amount\n\
        P,B1,1,professional,original,,2025-03-01,2025-03-01,S0281,F200,235\n\
        P,B2,1,professional,original,,2025-04-01,2025-04-01,S0281,F200,235\n";
    let contacts = "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
        K1,P,2025-03-20,HHP-2,care_management,phone,true\n\
        K2,P,2025-04-03,HHP-2,care_management,phone,true\n";
    let members = "member_id,birth_date,sex,death_date,dual_eligible\nP,1970-01-01,F,,false\n";
    let enrollment = "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
        P,medicaid,2020-01-01,,MCO-A,,,\n\
        P,health_home,2024-01-01,2025-03-15,MCO-A,HHP-1,SMI,false\n\
        P,health_home,2025-03-16,,MCO-A,HHP-2,SMI,false\n";
    let root = crate::common::root();
    let defs =
        hhq::definitions::Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let rule =
        hhq::finance::EarningRule::load(&root.join("measures/finance/earning.yaml")).unwrap();
    let rates = hhq::finance::RateTable::load(&root.join("measures/finance/rates.yaml")).unwrap();
    let period = hhq::period::Period::year(2025);
    let ledger_of = |dir: std::path::PathBuf| {
        let (defs, rule, rates) = (defs.clone(), rule.clone(), rates.clone());
        async move {
            let engine = hhq::engine::Engine::open(&dir, &defs).await.unwrap();
            hhq::finance::files::compute(&engine, &rule, &[&rates], &period, None)
                .await
                .unwrap()
        }
    };
    let billed = |l: &hhq::finance::Ledger, hhp: &str, month: u32| {
        l.units
            .iter()
            .find(|u| {
                u.hhp == hhp && u.month == chrono::NaiveDate::from_ymd_opt(2025, month, 1).unwrap()
            })
            .map(|u| u.lines.len())
    };
    // Without the column, the line dated 03-01 is the partner's assigned that day: HHP-1.
    let data = crate::common::data_dir(claims, contacts, members, enrollment);
    let l = ledger_of(data.path().to_path_buf()).await;
    assert_eq!(
        (billed(&l, "HHP-1", 3), billed(&l, "HHP-2", 3)),
        (Some(1), Some(0))
    );
    // With it, the claim names HHP-2, which earned March.
    let path = data.path().join("claims.parquet");
    let batch = crate::common::read_parquet(&path);
    let mut fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(datafusion::arrow::datatypes::Field::new(
        "hhp_id",
        datafusion::arrow::datatypes::DataType::Utf8,
        true,
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec!["HHP-2", "HHP-2"])) as ArrayRef);
    let with = datafusion::arrow::array::RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .unwrap();
    hhq::extract::csv::write_parquet(&path, &with).unwrap();
    let l = ledger_of(data.path().to_path_buf()).await;
    assert_eq!(
        (billed(&l, "HHP-1", 3), billed(&l, "HHP-2", 3)),
        (Some(0), Some(1))
    );
    let findings = l.findings();
    assert!(
        findings
            .iter()
            .all(|f| f.kind != hhq::finance::Kind::BilledNotEarned),
        "{findings:?}"
    );
}
