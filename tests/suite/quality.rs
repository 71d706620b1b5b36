//! Data-quality checks, proven by a deck: a small data directory with one planted problem per
//! row, whose expected failing counts, rows set aside and reconciliation are written below from
//! the checks' definitions (docs/data-quality.md), not copied from hhq's output.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use hhq::quality::{OnFailure, Policy, Status};

const AS_OF: &str = "2026-01-01";

fn as_of() -> NaiveDate {
    AS_OF.parse().unwrap()
}

/// Claims: 15 rows, 6 of them unusable (set aside), one problem planted per row (C4 two).
const CLAIMS: &str = "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,admission_date,discharge_date,principal_dx,procedure_code,revenue_code,other_dx\n\
M1,C1,1,outpatient,original,,2025-03-10,2025-03-10,,,F329,,0450,\n\
M1,C1,1,outpatient,original,,2025-03-10,2025-03-10,,,F329,,0450,\n\
M1,C2,1,inpatient,original,,2025-04-01,2025-04-05,2025-04-05,2025-04-01,F329,,0100,\n\
M1,C3,1,outpatient,original,,2025-05-10,2025-05-01,,,,,,\n\
M2,C4,1,professional,original,,2025-08-01,2025-08-01,,,,99213,,F329|F33.1\n\
M1,C5,1,professional,replacement,C99,2025-02-01,2025-02-01,,,,99213,,\n\
M1,C6,1,professional,void,C98,2025-02-01,2025-02-01,,,,99213,,\n\
M1,C7,1,professional,void,,2025-02-01,2025-02-01,,,,99213,,\n\
M1,C8,1,professional,original,,2025-02-03,2025-02-03,,,F32.9,9921,,\n\
,C9,1,professional,original,,2025-02-04,2025-02-04,,,,99213,,\n\
M1,C10,1,inpatient,original,,2025-09-01,2025-09-03,,2025-09-03,F329,,0100,\n\
M7,C11,1,professional,original,,2025-02-02,2025-02-02,,,,99213,,F329|F1020\n\
M1,C12,1,professional,original,,2026-02-01,2026-02-01,,,,99213,,\n\
M1,C13,1,dental,original,,2025-02-05,2025-02-05,,,,,,X\n\
,C14,1,dental,original,,2025-02-06,2025-02-06,,,,,,\n";

/// Contacts: 7 rows, 2 set aside.
const CONTACTS: &str = "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
K1,M1,2025-01-05,HHP-1,care_management,phone,true\n\
K2,,2025-01-06,HHP-1,care_management,phone,true\n\
K3,M1,2026-02-01,HHP-1,care_management,phone,true\n\
K4,M4,2025-03-01,HHP-1,care_management,phone,true\n\
K5,M1,2025-02-01,HHP-1,care_management,fax,true\n\
K6,M8,2025-02-01,HHP-1,care_management,phone,true\n\
K7,M2,2025-07-01,HHP-1,care_management,phone,true\n";

/// Members: 6 rows, 1 set aside (M4 died before birth).
const MEMBERS: &str = "member_id,birth_date,sex,dual_eligible,death_date,county_fips\n\
M1,1990-06-01,F,false,,20091\n\
M2,1985-01-01,M,false,2025-06-30,20091\n\
M3,2030-01-01,F,false,,20091\n\
M4,1970-01-01,M,false,1960-01-01,20091\n\
M5,1980-01-01,F,false,,2001\n\
M6,1975-01-01,M,false,,20091\n";

/// Enrollment: 11 rows, 2 set aside.
const ENROLLMENT: &str = "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
M1,medicaid,2024-01-01,,MCO-A,,,\n\
M1,health_home,2025-01-01,,MCO-A,HHP-1,SMI,false\n\
M1,health_home,2025-06-01,2025-12-31,MCO-A,HHP-2,SMI,false\n\
M2,medicaid,2024-01-01,2025-12-31,MCO-A,,,\n\
M2,health_home,2026-03-01,,MCO-A,HHP-1,CC,false\n\
M3,medicaid,2024-01-01,2024-12-31,MCO-A,,,\n\
M3,medicaid,2025-02-01,2025-01-31,MCO-A,,,\n\
M4,medicaid,2024-01-01,,MCO-A,,,\n\
M5,medicaid,2024-01-01,,MCO-B,,,\n\
M5,health_home,2025-01-01,,MCO-B,,SMI,false\n\
M9,medicaid,2024-01-01,,MCO-A,,,\n";

fn deck() -> tempfile::TempDir {
    common::data_dir(CLAIMS, CONTACTS, MEMBERS, ENROLLMENT)
}

/// Every check the deck trips, with its failing count; every other check must count 0.
fn expected_failing() -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        // claims: rules (counted over all 15 rows; C14 breaks two)
        ("claims.member_id.null", 2),             // C9, C14
        ("claims.claim_type.value", 2),           // C13, C14 (`dental`)
        ("claims.service_to_before_from", 1),     // C3
        ("claims.discharge_before_admission", 1), // C2
        ("claims.adjustment_without_target", 1),  // C7
        // claims: flags over the 9 usable rows
        ("claims.duplicate_line", 1),               // C1's second row
        ("claims.service_after_death", 1),          // C4: M2 died 2025-06-30
        ("claims.replacement_without_original", 1), // C5 → C99
        ("claims.void_of_missing_claim", 1),        // C6 → C98
        ("claims.principal_dx.format", 1),          // C8 `F32.9`
        ("claims.procedure_code.format", 1),        // C8 `9921`
        ("claims.other_dx.format", 1),              // C4 `F33.1` (C13's `X` is set aside)
        ("claims.inpatient_without_admission", 1),  // C10
        ("claims.unknown_member", 1),               // C11 (M7)
        ("claims.future_date", 1),                  // C12
        // contacts
        ("contacts.member_id.null", 1),      // K2
        ("contacts.mode.value", 1),          // K5 `fax`
        ("contacts.future_date", 1),         // K3
        ("contacts.outside_health_home", 3), // K4 (M4 has no HH span), K6, K7
        ("contacts.unknown_member", 2),      // K4 (M4 set aside), K6 (M8)
        // members
        ("members.death_before_birth", 1), // M4
        ("members.future_birth", 1),       // M3
        ("members.county_fips.format", 1), // M5 `2001`
        ("members.without_enrollment", 1), // M6
        // enrollment
        ("enrollment.end_before_start", 1), // M3's second span
        ("enrollment.health_home_without_partner", 1), // M5
        ("enrollment.overlapping_spans", 1), // M1's HHP-2 span inside its HHP-1 span
        ("enrollment.health_home_outside_medicaid", 1), // M2 from 2026-03
        ("enrollment.future_start", 1),     // M2 from 2026-03
        ("enrollment.span_after_death", 1), // M2 from 2026-03, died 2025-06-30
        ("contacts.after_death", 1),        // K7: M2 on 2025-07-01
        ("enrollment.unknown_member", 2),   // M4 (set aside), M9
    ])
}

#[tokio::test]
async fn every_planted_problem_is_found_and_nothing_else() {
    let data = deck();
    let profile = hhq::quality::validate(data.path(), &Policy::default(), as_of())
        .await
        .unwrap();
    let expected = expected_failing();
    let mut wrong = Vec::new();
    for c in &profile.checks {
        let want = expected.get(c.id.as_str()).copied().unwrap_or(0);
        if c.failing != want {
            wrong.push(format!("{}: {} (expected {want})", c.id, c.failing));
        }
    }
    for id in expected.keys() {
        assert!(profile.checks.iter().any(|c| c.id == *id), "no check {id}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn rows_set_aside_by_first_rule_reconcile() {
    let data = deck();
    let profile = hhq::quality::validate(data.path(), &Policy::default(), as_of())
        .await
        .unwrap();
    type Ledger = (u64, u64, Vec<(String, u64)>);
    let rows: BTreeMap<&str, Ledger> = profile
        .extracts
        .iter()
        .map(|e| (e.name, (e.read, e.used, e.set_aside.clone())))
        .collect();
    let own = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(r, n)| (r.to_string(), *n))
            .collect::<Vec<_>>()
    };
    // C14 breaks `member_id.null` first, so `claim_type.value` sets aside only C13.
    assert_eq!(
        rows["claims"],
        (
            15,
            9,
            own(&[
                ("claims.member_id.null", 2),
                ("claims.claim_type.value", 1),
                ("claims.service_to_before_from", 1),
                ("claims.discharge_before_admission", 1),
                ("claims.adjustment_without_target", 1),
            ])
        )
    );
    assert_eq!(
        rows["contacts"],
        (
            7,
            5,
            own(&[("contacts.member_id.null", 1), ("contacts.mode.value", 1)])
        )
    );
    assert_eq!(
        rows["members"],
        (6, 5, own(&[("members.death_before_birth", 1)]))
    );
    assert_eq!(
        rows["enrollment"],
        (
            11,
            9,
            own(&[
                ("enrollment.end_before_start", 1),
                ("enrollment.health_home_without_partner", 1),
            ])
        )
    );
    for e in &profile.extracts {
        let aside: u64 = e.set_aside.iter().map(|(_, n)| n).sum();
        assert_eq!(e.read, e.used + aside, "{}", e.name);
    }
}

#[tokio::test]
async fn examples_name_the_file_row_or_the_key() {
    let data = deck();
    let profile = hhq::quality::validate(data.path(), &Policy::default(), as_of())
        .await
        .unwrap();
    let ex = |id: &str| {
        profile
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .examples
            .join("; ")
            .replace(&data.path().display().to_string(), "<data>")
    };
    assert_eq!(
        ex("claims.member_id.null"),
        "<data>/claims.parquet row 10: `member_id` is null (2 rows in all)"
    );
    assert_eq!(
        ex("contacts.mode.value"),
        "<data>/contacts.parquet row 5: `mode` has value \"fax\" (1 row)"
    );
    assert_eq!(ex("claims.discharge_before_admission"), "claim C2 line 1");
    assert_eq!(ex("claims.duplicate_line"), "claim C1 line 1");
    assert_eq!(
        ex("enrollment.overlapping_spans"),
        "member M1 health_home span from 2025-06-01"
    );
    assert_eq!(ex("contacts.unknown_member"), "contact K4; contact K6");
}

#[tokio::test]
async fn status_follows_severity_and_threshold() {
    let data = deck();
    let policy = Policy::parse(
        Path::new("policy.yaml"),
        "checks:\n  claims.future_date: {max_percent: 20}\n  claims.duplicate_line: {severity: warning}\n  members.future_birth: {severity: info}\n",
    )
    .unwrap();
    let profile = hhq::quality::validate(data.path(), &policy, as_of())
        .await
        .unwrap();
    let status = |id: &str| profile.checks.iter().find(|c| c.id == id).unwrap().status();
    // 1 of 9 usable claim lines is 11%: under 20%.
    assert_eq!(status("claims.future_date"), Status::Pass);
    assert_eq!(status("claims.duplicate_line"), Status::Warn);
    assert_eq!(status("members.future_birth"), Status::Info);
    assert_eq!(status("claims.member_id.null"), Status::Fail);
    assert_eq!(status("claims.ndc.format"), Status::Pass);
    assert_eq!(status("enrollment.future_start"), Status::Info);
    // The as-of date moves what is in the future: in 2027 nothing the deck holds is.
    let later = hhq::quality::validate(data.path(), &policy, "2027-01-01".parse().unwrap())
        .await
        .unwrap();
    let failing =
        |p: &hhq::quality::Profile, id: &str| p.checks.iter().find(|c| c.id == id).unwrap().failing;
    assert_eq!(failing(&later, "claims.future_date"), 0);
    assert_eq!(failing(&later, "members.future_birth"), 1, "born 2030");
}

#[test]
fn policy_errors_are_located() {
    let e = Policy::parse(
        Path::new("policy.yaml"),
        "on_failure: caveat\nchecks:\n  claims.future_dates:\n    max_percent: 1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("policy.yaml:4:"), "{e}");
    assert!(
        e.contains("no data-quality check `claims.future_dates`"),
        "{e}"
    );
    assert!(e.contains("did you mean `claims.future_date`?"), "{e}");
    let e = Policy::parse(
        Path::new("policy.yaml"),
        "checks:\n  claims.future_date: {max_percent: 150}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`max_percent` 150 is not between 0 and 100"),
        "{e}"
    );
    let e = Policy::parse(Path::new("policy.yaml"), "on_failure: shrug\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("policy.yaml:1:"), "{e}");
    let p = Policy::parse(Path::new("policy.yaml"), "on_failure: caveat\n").unwrap();
    assert_eq!(p.on_failure, OnFailure::Caveat);
}

fn hhq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap()
}

#[test]
fn a_refusing_policy_publishes_nothing_and_exits_3() {
    let data = deck();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("run");
    let o = hhq(&[
        "run",
        "--data",
        data.path().to_str().unwrap(),
        "--period",
        "2025",
        "--as-of",
        AS_OF,
        "--out",
        dest.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");
    assert!(
        stderr.contains("claims.member_id.null (2 of 15 rows, 13.33%"),
        "{stderr}"
    );
    // Warnings do not gate: not listed.
    assert!(!stderr.contains("claims.future_date"), "{stderr}");
    // Privacy: the refusal names checks and counts, never a member.
    assert!(!stderr.contains("M1") && !stderr.contains("M9"), "{stderr}");
    assert!(!dest.exists(), "a refused run writes nothing");
}

#[test]
fn a_caveat_policy_publishes_counts_and_reconciles() {
    let data = deck();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "on_failure: caveat\n").unwrap();
    let dest = dir.path().join("run");
    let o = hhq(&[
        "run",
        "--data",
        data.path().to_str().unwrap(),
        "--period",
        "2025",
        "--as-of",
        AS_OF,
        // The deck's stated span (as common::stated_coverage): it holds only its cases' rows.
        "--data-from",
        "2024-01-01",
        "--data-through",
        "2026-12-31",
        "--quality-policy",
        policy.to_str().unwrap(),
        "--out",
        dest.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("warning: Data-quality caveat"), "{stderr}");

    let (_, rows) = common::read_csv(&std::fs::read(dest.join("data_quality.csv")).unwrap());
    let get = |extract: &str, count: &str| -> u64 {
        rows.iter()
            .filter(|r| r[0] == extract && r[1] == count)
            .map(|r| r[2].parse::<u64>().unwrap())
            .sum()
    };
    for (extract, read, used) in [
        ("claims", 15, 9),
        ("contacts", 7, 5),
        ("members", 6, 5),
        ("enrollment", 11, 9),
    ] {
        assert_eq!(get(extract, "read"), read, "{extract}");
        assert_eq!(get(extract, "used"), used, "{extract}");
        assert_eq!(get(extract, "set_aside"), read - used, "{extract}");
    }
    // Used claim lines split into versions: C6 is a void; C5 replaces a claim not there.
    assert_eq!(
        get("claims", "final") + get("claims", "superseded") + get("claims", "void"),
        9
    );
    assert_eq!(get("claims", "void"), 1);

    let (header, checks) =
        common::read_csv(&std::fs::read(dest.join("data_quality_checks.csv")).unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let failing: BTreeMap<String, u64> = checks
        .iter()
        .map(|r| (r[col("check")].clone(), r[col("failing")].parse().unwrap()))
        .collect();
    for (id, n) in expected_failing() {
        assert_eq!(failing[id], n, "{id}");
    }
    // A run's outputs may be scoped or pseudonymised: no example keys in them.
    assert!(checks.iter().all(|r| r[col("examples")].is_empty()));

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    let dq = &manifest["data_quality"];
    assert_eq!(dq["on_failure"], "caveat");
    assert!(
        dq["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "claims.member_id.null")
    );
    assert_eq!(dq["rows_set_aside"]["claims.member_id.null"], 2);
    assert!(dq["policy"]["sha256"].as_str().unwrap().len() == 64);
}

#[test]
fn validate_writes_the_report_and_exits_3_on_failure() {
    let data = deck();
    let out = tempfile::tempdir().unwrap();
    let o = hhq(&[
        "validate",
        "--data",
        data.path().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stdout.contains("claims.duplicate_line"), "{stdout}");
    // The terminal shows counts, never example keys.
    assert!(
        !stdout.contains("C1 line") && !stdout.contains("member M"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.path().join("data_quality_checks.csv")).unwrap();
    assert!(csv.contains("claim C1 line 1"), "examples are in the file");

    // The shipped test data passes every error check.
    let clean = tempfile::tempdir().unwrap();
    let o = hhq(&[
        "validate",
        "--as-of",
        AS_OF,
        "--out",
        clean.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_docs_list_every_check_as_the_catalogue_does() {
    let doc = std::fs::read_to_string(common::root().join("docs/data-quality.md")).unwrap();
    let table = hhq::quality::catalogue_markdown();
    assert!(
        doc.contains(&table),
        "docs/data-quality.md's catalogue differs from `hhq validate --list`; regenerate it"
    );
}

#[test]
fn a_report_under_a_caveat_says_so_on_its_cover() {
    // The shipped data, with dates after mid-2025 made an error: the check fails on it.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "on_failure: caveat\nchecks:\n  claims.future_date: {severity: error}\n",
    )
    .unwrap();
    let dest = dir.path().join("report");
    let args = |policy: &Path, dest: &Path| {
        vec![
            "report".to_string(),
            "state".into(),
            "--measure".into(),
            "AMB-HH".into(),
            "--no-pdf".into(),
            "--as-of".into(),
            "2025-06-30".into(),
            "--quality-policy".into(),
            policy.display().to_string(),
            "--out".into(),
            dest.display().to_string(),
        ]
    };
    let a = args(&policy, &dest);
    let o = hhq(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let html = std::fs::read_to_string(dest.join("report.html")).unwrap();
    let cover = &html[..html.find("</header>").unwrap()];
    assert!(cover.contains("class=\"caveat\""), "no caveat on the cover");
    assert!(cover.contains("claims.future_date"), "{cover}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["data_quality"]["failed"][0], "claims.future_date");

    // The same failure under a refusing policy: the earlier report stays as it was.
    let before = std::fs::read(dest.join("report.html")).unwrap();
    std::fs::write(
        &policy,
        "on_failure: refuse\nchecks:\n  claims.future_date: {severity: error}\n",
    )
    .unwrap();
    let o = hhq(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(std::fs::read(dest.join("report.html")).unwrap(), before);
}

mod reconciliation {
    //! Random claim lines with random defects: the rows used are exactly those a plain reading of
    //! the row rules keeps, and read = used + set aside.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Line {
        member: Option<&'static str>,
        claim_type: &'static str,
        adjustment: &'static str,
        target: Option<&'static str>,
        from: u32,
        to: u32,
        admission: Option<u32>,
        discharge: Option<u32>,
    }

    fn line() -> impl Strategy<Value = Line> {
        (
            prop::option::weighted(0.85, Just("M1")),
            prop::sample::select(vec!["inpatient", "outpatient", "professional", "dental"]),
            prop::sample::select(vec!["original", "original", "replacement", "void"]),
            prop::option::of(Just("C0")),
            1u32..28,
            1u32..28,
            prop::option::of(1u32..28),
            prop::option::of(1u32..28),
        )
            .prop_map(
                |(member, claim_type, adjustment, target, from, to, admission, discharge)| Line {
                    member,
                    claim_type,
                    adjustment,
                    target,
                    from,
                    to,
                    admission,
                    discharge,
                },
            )
    }

    /// The row rules, read from the contract and docs/data-quality.md, not from the code.
    fn usable(l: &Line) -> bool {
        l.member.is_some()
            && l.claim_type != "dental"
            && l.to >= l.from
            && !matches!((l.admission, l.discharge), (Some(a), Some(d)) if d < a)
            && !(l.adjustment != "original" && l.target.is_none())
    }

    fn csv(lines: &[Line]) -> String {
        let day = |d: u32| format!("2025-03-{d:02}");
        let mut out = String::from(
            "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,admission_date,discharge_date\n",
        );
        for (i, l) in lines.iter().enumerate() {
            out.push_str(&format!(
                "{},C{},1,{},{},{},{},{},{},{}\n",
                l.member.unwrap_or(""),
                i + 1,
                l.claim_type,
                l.adjustment,
                l.target.unwrap_or(""),
                day(l.from),
                day(l.to),
                l.admission.map(day).unwrap_or_default(),
                l.discharge.map(day).unwrap_or_default(),
            ));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        #[test]
        fn used_rows_are_the_rows_no_rule_rejects(lines in prop::collection::vec(line(), 1..40)) {
            let data = common::minimal();
            common::write_csv(data.path(), &hhq::extract::contract::CLAIMS, &csv(&lines));
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let profile = rt
                .block_on(hhq::quality::validate(data.path(), &Policy::default(), as_of()))
                .unwrap();
            let claims = profile.extracts.iter().find(|e| e.name == "claims").unwrap();
            let want = lines.iter().filter(|l| usable(l)).count() as u64;
            prop_assert_eq!(claims.read, lines.len() as u64);
            prop_assert_eq!(claims.used, want);
            let aside: u64 = claims.set_aside.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(claims.read, claims.used + aside);
        }
    }
}

#[test]
fn validate_and_a_report_nested_in_out_do_not_block_a_run_into_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = hhq(&[
        "validate",
        "--as-of",
        AS_OF,
        "--out",
        out.join("validate").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = hhq(&[
        "run",
        "--measure",
        "AMB-HH",
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("summary.csv").is_file());
    assert!(
        out.join("validate/data_quality_checks.csv").is_file(),
        "the nested validation is kept"
    );
}

/// The shipped test data with `claims` as two part files: testdata's own, and `extra` (claim
/// lines as CSV, cast to the types of testdata's columns).
fn testdata_plus_claims(extra: &str) -> tempfile::TempDir {
    use datafusion::arrow::array::{RecordBatch, new_null_array};
    use datafusion::arrow::datatypes::{Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    for extract in ["contacts", "members", "enrollment"] {
        let name = format!("{extract}.parquet");
        std::fs::copy(
            common::root().join("testdata").join(&name),
            dir.path().join(&name),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("claims")).unwrap();
    let shipped = common::root().join("testdata/claims.parquet");
    std::fs::copy(&shipped, dir.path().join("claims/part-1.parquet")).unwrap();
    let schema = common::read_parquet(&shipped).schema();
    let lines =
        hhq::extract::csv::csv_to_batch(Path::new("x"), &hhq::extract::contract::CLAIMS, extra)
            .unwrap();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match lines.column_by_name(f.name()) {
            Some(c) => datafusion::arrow::compute::cast(c, f.data_type()).unwrap(),
            None => new_null_array(f.data_type(), lines.num_rows()),
        })
        .collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let batch = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).unwrap();
    hhq::extract::csv::write_parquet(&dir.path().join("claims/part-2.parquet"), &batch).unwrap();
    dir
}

/// The line `hhq run` prints with the period and the data cut-off.
fn period_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("period "))
        .unwrap_or_else(|| panic!("no period line in {stderr}"))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn lines_dated_far_ahead_move_neither_the_period_nor_the_cut_off_and_are_warned_of() {
    let mut extra = String::from(
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\n",
    );
    // 9999-12-31 itself is past the believable range and set aside by the row rule
    // `claims.date_out_of_range` (tests/suite/crash.rs); a date still in range but after the as-of date
    // is the case the cut-off must pass over.
    for i in 1..=20 {
        extra.push_str(&format!(
            "M0000001,FUTURE-{i},1,professional,original,2199-12-31,2199-12-31\n"
        ));
    }
    let data = testdata_plus_claims(&extra);
    // The shipped claim lines and the 20 added: "20 of N rows".
    let rows =
        common::read_parquet(&common::root().join("testdata/claims.parquet")).num_rows() + 20;
    let out = tempfile::tempdir().unwrap();
    let run = |data: &Path, as_of: Option<&str>| {
        let dest = out.path().join("run");
        let mut args = vec![
            "run",
            "--measure",
            "AMB-HH",
            "--data",
            data.to_str().unwrap(),
            "--out",
            dest.to_str().unwrap(),
        ];
        if let Some(d) = as_of {
            args.extend(["--as-of", d]);
        }
        let o = hhq(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let alone = run(&common::root().join("testdata"), None);
    assert_eq!(
        period_line(&alone),
        "period 2025-01-01..2025-12-31 (data through 2026-03-31)"
    );
    let with_future = run(data.path(), None);
    assert_eq!(period_line(&with_future), period_line(&alone));
    // The lines are counted and warned of on the terminal, not only in a CSV.
    assert!(
        with_future.lines().any(|l| l.starts_with(&format!(
            "warning: claims.future_date: 20 of {rows} rows (<0.01%; at most 0% allowed; as of "
        ))),
        "{with_future}"
    );
    // An as-of date before the data's end is the cut-off's bound: the period is the last full
    // year before it.
    let earlier = run(data.path(), Some("2025-09-30"));
    assert_eq!(
        period_line(&earlier),
        "period 2024-01-01..2024-12-31 (data through 2025-09-30)"
    );

    // `hhq validate` warns of them on stderr too.
    let o = hhq(&[
        "validate",
        "--data",
        data.path().to_str().unwrap(),
        "--out",
        out.path().join("validate").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: claims.future_date: 20 of {rows} rows")),
        "{stderr}"
    );

    // `hhq cohort` without --as-of looks back from the last date with data up to today.
    let o = hhq(&[
        "cohort",
        "--data",
        data.path().to_str().unwrap(),
        "--out",
        out.path().join("cohort").to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.starts_with("as of 2026-03-31: "), "{stdout}");
    assert!(
        stderr.contains("warning: 20 claim lines and contacts dated after today"),
        "{stderr}"
    );
}

#[test]
fn rows_set_aside_are_warned_of_by_rule_on_the_terminal() {
    let data = deck();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "on_failure: caveat\n").unwrap();
    let o = hhq(&[
        "run",
        "--measure",
        "AMB-HH",
        "--data",
        data.path().to_str().unwrap(),
        "--period",
        "2025",
        "--as-of",
        AS_OF,
        // The deck's stated span (as common::stated_coverage): it holds only its cases' rows.
        "--data-from",
        "2024-01-01",
        "--data-through",
        "2026-12-31",
        "--quality-policy",
        policy.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: claims: 2 rows set aside by claims.member_id.null: `member_id` is null, \
             but the contract requires it\n"
        ),
        "{stderr}"
    );
    // Counts only: no member or claim id.
    assert!(
        !stderr.contains("M1") && !stderr.contains("C1 "),
        "{stderr}"
    );
}

#[tokio::test]
async fn replacement_loops_and_self_replacements_are_counted_and_resolved() {
    // A loop of two, one of three (M3 with two lines), a claim naming itself, a normal chain,
    // and a loop that a claim outside it replaces.
    let data = common::data_dir(
        common::LOOP_CLAIMS,
        "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n",
        "member_id,birth_date,sex,dual_eligible\nM1,1990-06-01,F,false\n",
        "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
         M1,medicaid,2024-01-01,,MCO-A,,,\n",
    );
    let profile = hhq::quality::validate(data.path(), &Policy::default(), as_of())
        .await
        .unwrap();
    let check = |id: &str| profile.checks.iter().find(|c| c.id == id).unwrap().clone();
    let loops = check("claims.replacement_loop");
    assert_eq!((loops.failing, loops.status()), (8, Status::Warn));
    assert_eq!(
        loops.examples,
        ["claim L1 line 1", "claim L2 line 1", "claim M1 line 1"]
    );
    let own = check("claims.self_replacement");
    assert_eq!(
        (own.failing, own.examples),
        (1, vec!["claim S1 line 1".to_string()])
    );
    assert!(
        profile
            .warning_lines()
            .iter()
            .any(|l| l.starts_with("claims.replacement_loop: 8 of 12 rows")),
        "{:?}",
        profile.warning_lines()
    );

    // The final versions: L2 and M3 stand in their loops, S1 as an original, N2 ends its chain,
    // O3 replaces a loop.
    let defs = hhq::definitions::Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = hhq::engine::Engine::open(data.path(), &defs).await.unwrap();
    let final_ids = engine
        .texts("SELECT DISTINCT claim_id FROM claims_final ORDER BY claim_id")
        .await
        .unwrap();
    assert_eq!(final_ids, ["L2", "M3", "N2", "O3", "S1"]);
    let v = engine.claim_versions().await.unwrap();
    assert_eq!(
        (
            v.lines_read,
            v.final_lines,
            v.superseded_lines,
            v.void_lines
        ),
        (12, 6, 6, 0)
    );
}
