//! An event-based measure (HH-TCC: a Health Home contact within 7 and 30 days after an acute
//! inpatient discharge) on a hand-built deck. Expected outcomes are written from the measure's
//! rules, member by member, not copied from hhq's output:
//!
//! - events: acute stays (direct transfers merged into one stay) discharged 2025-01-01 to
//!   2025-12-01, not ending in death (status 20); only final claim versions;
//! - eligible: enrolled in a Health Home on the discharge date; age on that date in a band;
//! - excluded: died within 30 days after the discharge;
//! - numerators: a reached contact (or S0281 claim) from the discharge date to day 7 / day 30.

use crate::common;

use hhq::measure::Stratifier::{AgeBand, Hhp, Mco, Population};
use hhq::period::Period;
use hhq::pipeline::{self, RunOptions};
use hhq::results::Grouping::{self, By, Total};
use hhq::results::ResultRow;

const CLAIMS: &str = "\
member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,admission_date,discharge_date,discharge_status,type_of_bill,revenue_code,principal_dx
P,S1,1,inpatient,original,,2025-03-01,2025-03-05,2025-03-01,2025-03-05,02,0111,0120,I214
P,S2,1,inpatient,original,,2025-03-05,2025-03-10,2025-03-05,2025-03-10,01,0111,0120,I214
P,S3,1,inpatient,original,,2025-06-01,2025-06-03,2025-06-01,2025-06-03,01,0111,0114,F200
P,S4,1,inpatient,original,,2025-12-05,2025-12-10,2025-12-05,2025-12-10,01,0111,0120,J189
P,S10,1,inpatient,original,,2025-09-01,2025-09-03,2025-09-01,2025-09-03,01,0111,0120,J189
P,S10V,1,inpatient,void,S10,2025-09-01,2025-09-03,2025-09-01,2025-09-03,01,0111,0120,J189
Q,S5,1,inpatient,original,,2025-08-15,2025-08-20,2025-08-15,2025-08-20,03,0111,0120,J189
Q,S6,1,inpatient,original,,2025-08-21,2025-09-30,2025-08-21,2025-09-30,01,0211,0120,J189
R,S7,1,inpatient,original,,2025-04-01,2025-04-10,2025-04-01,2025-04-10,01,0111,0120,I500
S,S8,1,inpatient,original,,2025-07-01,2025-07-07,2025-07-01,2025-07-07,01,0111,0120,J189
T,S9,1,inpatient,original,,2025-02-01,2025-02-03,2025-02-01,2025-02-03,20,0111,0120,I214
";

const CONTACTS: &str = "\
contact_id,member_id,contact_date,hhp_id,service,mode,reached
KP1,P,2025-03-10,HHP-1,transitional_care,in_person,true
KP2,P,2025-06-05,HHP-1,transitional_care,phone,false
KP3,P,2025-06-11,HHP-1,care_coordination,phone,true
KQ1,Q,2025-09-25,HHP-2,care_management,phone,true
KR1,R,2025-04-12,HHP-1,transitional_care,in_person,true
KS1,S,2025-07-08,HHP-2,transitional_care,phone,true
";

const MEMBERS: &str = "\
member_id,birth_date,sex,death_date,dual_eligible
P,1980-01-01,F,,false
Q,2008-07-01,M,,false
R,1950-05-05,F,2025-04-25,true
S,1990-01-01,M,,false
T,1985-02-02,F,2025-02-03,false
U,1970-01-01,M,,false
";

const ENROLLMENT: &str = "\
member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out
P,medicaid,2020-01-01,,MCO-A,,,
P,health_home,2024-01-01,,MCO-A,HHP-1,SMI,false
Q,medicaid,2020-01-01,,MCO-B,,,
Q,health_home,2024-01-01,,MCO-B,HHP-2,CC,false
R,medicaid,2020-01-01,,MCO-A,,,
R,health_home,2024-01-01,,MCO-A,HHP-1,CC,false
S,medicaid,2020-01-01,,MCO-B,,,
S,health_home,2025-01-01,2025-05-31,MCO-B,HHP-2,SMI,true
T,medicaid,2020-01-01,,MCO-A,,,
T,health_home,2024-01-01,,MCO-A,HHP-1,SMI,false
U,medicaid,2024-01-01,,MCO-B,,,
";

// P: S1 (transfer, status 02) and S2 make one stay, id S1, discharged 03-10; the contact that
//    day counts for 7 and 30 days. S3 (06-03): the 06-05 call went unanswered; 06-11 is day 8:
//    30 days only. S4 is discharged after December 1; S10 was voided: neither is an event.
// Q: born 2008-07-01, 17 on 08-20 (0-17). S5 (08-20, to skilled nursing) has no contact within
//    30 days (09-25 is day 36). S6 is a skilled-nursing stay (type of bill 0211): not acute.
// R: S7 (04-10); died 04-25, within 30 days: excluded (the 04-12 contact does not matter).
// S: S8 (07-07) after the Health Home span ended 05-31: not enrolled on the discharge date.
// T: S9 ended in death (status 20): not an event.
//
// Denominator 3 (P twice, Q once); 7_day 1 (P S1); 30_day 2 (P S1, P S3).

async fn run() -> (tempfile::TempDir, Vec<ResultRow>) {
    common::run_deck(CLAIMS, CONTACTS, MEMBERS, ENROLLMENT, &["HH-TCC"]).await
}

fn get(rows: &[ResultRow], component: &str, stratifier: Grouping, stratum: &str) -> (f64, f64) {
    let r = rows
        .iter()
        .find(|r| r.component == component && r.stratifier == stratifier && r.stratum == stratum)
        .unwrap_or_else(|| panic!("no row {component} {stratifier}={stratum}"));
    (r.numerator, r.denominator)
}

#[tokio::test]
async fn hh_tcc_matches_the_hand_count() {
    let (_dir, rows) = run().await;
    assert_eq!(get(&rows, "7_day", Total, "total"), (1.0, 3.0));
    assert_eq!(get(&rows, "30_day", Total, "total"), (2.0, 3.0));
    assert_eq!(get(&rows, "7_day", By(AgeBand), "0-17"), (0.0, 1.0));
    assert_eq!(get(&rows, "30_day", By(AgeBand), "18-64"), (2.0, 2.0));
    assert_eq!(get(&rows, "30_day", By(AgeBand), "65+"), (0.0, 0.0));
    assert_eq!(get(&rows, "7_day", By(Hhp), "HHP-1"), (1.0, 2.0));
    assert_eq!(get(&rows, "30_day", By(Hhp), "HHP-2"), (0.0, 1.0));
    assert_eq!(get(&rows, "30_day", By(Mco), "MCO-A"), (2.0, 2.0));
    assert_eq!(get(&rows, "7_day", By(Population), "CC"), (0.0, 1.0));
    // Components keep the measure's order: 7_day before 30_day.
    assert_eq!(rows[0].component, "7_day");
}

#[tokio::test]
async fn detail_keeps_every_unit_with_the_reason_and_evidence() {
    let (dir, _) = run().await;
    let csv = std::fs::read_to_string(dir.path().join("out/detail/HH-TCC.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let col = |row: &Vec<&str>, name: &str| {
        row[header.iter().position(|h| *h == name).unwrap()].to_string()
    };
    let unit = |id: &str| {
        rows.iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("no unit {id} in {csv}"))
            .clone()
    };

    // Exactly the five candidate events: S1 (merged with S2), S3, S5, S7, S8.
    let mut ids: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    ids.sort();
    assert_eq!(ids, vec!["S1", "S3", "S5", "S7", "S8"]);

    let s1 = unit("S1");
    assert_eq!(col(&s1, "anchor_date"), "2025-03-10");
    assert_eq!(col(&s1, "in_denominator"), "true");
    assert_eq!(
        (
            col(&s1, "7_day"),
            col(&s1, "7_day_id"),
            col(&s1, "7_day_date")
        ),
        ("1".into(), "KP1".into(), "2025-03-10".into())
    );
    let s3 = unit("S3");
    assert_eq!(
        (col(&s3, "7_day"), col(&s3, "30_day"), col(&s3, "30_day_id")),
        ("0".into(), "1".into(), "KP3".into())
    );
    let s7 = unit("S7");
    assert_eq!(
        (col(&s7, "exclusion"), col(&s7, "in_denominator")),
        ("died_within_30_days".into(), "false".into())
    );
    assert_eq!(col(&s7, "exclusion_date"), "2025-04-25");
    let s8 = unit("S8");
    assert_eq!(col(&s8, "ineligible"), "not enrolled on the anchor date");
    assert_eq!(col(&s8, "in_denominator"), "false");
}

#[tokio::test]
async fn explain_tells_each_step_for_one_member() {
    let data = common::data_dir(CLAIMS, CONTACTS, MEMBERS, ENROLLMENT);
    let opts = RunOptions {
        common: common::execute_options(data.path()),
        out: data.path().join("out"),
        period: Some(Period::year(2025)),
        only: vec![],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    };
    let e = pipeline::explain(&opts, "HH-TCC", "P").await.unwrap();
    let text = hhq::report::explain_text(&e, "P");
    insta::assert_snapshot!(text, @r"
    HH-TCC 2025.1 — Health Home Transitional Care - Contact after an Inpatient Discharge
    member P, period 2025-01-01..2025-12-31, basis events
    judged in this order, the first that applies named:
      1. not enrolled on the anchor date
      2. age outside the age bands
      3. exclusion `died_within_30_days`

    event S1 — anchor 2025-03-10, age 45 (18-64), MCO-A / HHP-1 / SMI
      in the denominator
      7_day: yes (1; first KP1 on 2025-03-10)
      30_day: yes (1; first KP1 on 2025-03-10)

    event S3 — anchor 2025-06-03, age 45 (18-64), MCO-A / HHP-1 / SMI
      in the denominator
      7_day: no
      30_day: yes (1; first KP3 on 2025-06-11)
    ");
    let e = pipeline::explain(&opts, "HH-TCC", "R").await.unwrap();
    assert!(
        hhq::report::explain_text(&e, "R")
            .contains("excluded: died_within_30_days (evidence R on 2025-04-25)")
    );
    // T's only stay ended in death (status 20): the row, and the test it fails, are named.
    let e = pipeline::explain(&opts, "HH-TCC", "T").await.unwrap();
    let text = hhq::report::explain_text(&e, "T");
    assert!(
        text.contains(
            "no unit of this measure for the member: no row of `inpatient_stays` with discharge_date in 2025-01-01..2025-12-01 passes the events' tests"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "    S9 (discharge_date 2025-02-03): fails `discharge_status IS DISTINCT FROM '20'`"
        ),
        "{text}"
    );
    // S's stay ends after its Health Home span: set aside for enrolment, the spans shown.
    let e = pipeline::explain(&opts, "HH-TCC", "S").await.unwrap();
    let text = hhq::report::explain_text(&e, "S");
    assert!(
        text.contains("not in the denominator: not enrolled on the anchor date"),
        "{text}"
    );
    assert!(
        text.contains("health_home  2025-01-01..2025-05-31  MCO-B / HHP-2"),
        "{text}"
    );
    // U is in Medicaid but never in a Health Home: no month of HH-ENGAGE, and the spans shown.
    let e = pipeline::explain(&opts, "HH-ENGAGE", "U").await.unwrap();
    let text = hhq::report::explain_text(&e, "U");
    assert!(text.contains(": not enrolled in the programme"), "{text}");
    assert!(
        text.contains("in any month of 2025-01-01..2025-12-31"),
        "{text}"
    );
    assert!(
        text.contains("medicaid     2024-01-01..open  MCO-B"),
        "{text}"
    );
    // A member the extracts do not have is a usage error naming the nearest ids.
    let err = pipeline::explain(&opts, "HH-TCC", "TT").await.unwrap_err();
    assert!(matches!(err, hhq::Error::Usage(_)), "{err}");
    assert!(err.to_string().contains("no member `TT`"), "{err}");
}

/// `hhq explain` computes the member's pass as a run does: the blocks marked `hhq: keep` over
/// every member, so a replacement filed under another member id supersedes the member's claim
/// in explain as in the run (once, explain read the member's rows only and still counted it).
#[tokio::test]
async fn explain_sees_a_replacement_filed_under_another_member() {
    let members = "member_id,birth_date,sex,dual_eligible\nA,1990-06-01,F,false\n\
                   B,1991-06-01,M,false\n";
    let enrollment = "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
        A,medicaid,2024-01-01,,MCO-A,,,\n\
        A,health_home,2024-01-01,,MCO-A,HHP-1,SMI,false\n\
        B,medicaid,2024-01-01,,MCO-A,,,\n\
        B,health_home,2024-01-01,,MCO-A,HHP-1,SMI,false\n";
    let contacts = "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
                    K1,A,2025-01-05,HHP-1,care_management,phone,true\n";
    let visit = "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,\
                 service_from,service_to,revenue_code\n\
                 A,C1,1,outpatient,original,,2025-03-10,2025-03-10,0450\n";
    // C2, filed under B, replaces A's C1: A's visit is not a final claim.
    let replaced = format!("{visit}B,C2,1,outpatient,replacement,C1,2025-03-10,2025-03-10,0450\n");
    for (claims, march) in [
        (visit.to_string(), "ed_visits: yes"),
        (replaced, "ed_visits: no"),
    ] {
        let data = common::data_dir(&claims, contacts, members, enrollment);
        let opts = RunOptions {
            period: Some(Period::year(2025)),
            ..common::run_options(data.path(), &data.path().join("out"))
        };
        let e = pipeline::explain(&opts, "AMB-HH", "A").await.unwrap();
        let text = hhq::report::explain_text(&e, "A");
        let month = text
            .split("\n\n")
            .find(|b| b.contains("month A:2025-03"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(month.contains(march), "{text}");
        // The run counts one visit either way: A's, or, replaced, B's.
        let s = pipeline::run(&opts).await.unwrap();
        let visits = s
            .rows
            .iter()
            .find(|r| r.measure == "AMB-HH" && r.stratifier == Total)
            .map(|r| r.numerator);
        assert_eq!(visits, Some(1.0), "{text}");
    }
}
