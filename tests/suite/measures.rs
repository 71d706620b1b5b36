//! AMB-HH and HH-ENGAGE on a tiny hand-built extract. Every expected number below was worked out
//! by hand from the measure rules (written next to each member), not copied from hhq's output.
//!
//! Rules applied (period 2025, member months counted on the 15th, by age on that day):
//! - a member month needs a health_home span and a medicaid span both covering the 15th, alive;
//! - AMB-HH counts one ED visit per member and date in such months, not one that led to an
//!   admission the same or next day, nor one with a mental-health or chemical-dependency
//!   principal diagnosis; only final claim versions count;
//! - HH-ENGAGE counts months with a reached contact or a final S0281 claim line.

use crate::common;

use hhq::measure::{Stratifier, Unit};
use hhq::period::Period;
use hhq::pipeline::{self, RunOptions};
use hhq::results::{Grouping, ResultRow};

const CLAIMS: &str = "\
member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,admission_date,discharge_date,revenue_code,procedure_code,place_of_service,principal_dx
A,A1,1,outpatient,original,,2025-03-10,2025-03-10,,,0450,,,R109
A,A2,1,professional,original,,2025-03-10,2025-03-10,,,,99283,23,R109
A,A3,1,outpatient,original,,2025-03-10,2025-03-10,,,0450,,,R51
A,A4,1,outpatient,original,,2025-05-02,2025-05-02,,,0450,,,R0789
A,A5,1,inpatient,original,,2025-05-03,2025-05-06,2025-05-03,2025-05-06,0120,,,I214
A,A6,1,outpatient,original,,2025-07-04,2025-07-04,,,0450,,,F329
A,A7,1,outpatient,original,,2025-08-01,2025-08-01,,,0450,,,F1020
A,A8,1,outpatient,original,,2025-09-09,2025-09-09,,,0450,,,J189
A,A9,1,outpatient,original,,2025-10-10,2025-10-10,,,0450,,,J189
A,A9V,1,outpatient,void,A9,2025-10-10,2025-10-10,,,0450,,,J189
A,A10,1,outpatient,original,,2025-11-11,2025-11-11,,,0450,,,J189
A,A10R,1,outpatient,replacement,A10,2025-11-11,2025-11-11,,,0300,,,J189
A,A11,1,outpatient,original,,2025-12-01,2025-12-01,,,0300,,,J189
A,A11R,1,outpatient,replacement,A11,2025-12-01,2025-12-01,,,0450,,,J189
A,A11R2,1,outpatient,replacement,A11R,2025-12-01,2025-12-01,,,0451,,,J189
A,A11R2,2,outpatient,replacement,A11R,2025-12-01,2025-12-01,,,0300,,,J189
A,A12,1,outpatient,original,,2024-12-20,2024-12-20,,,0450,,,J189
A,A13,1,professional,original,,2025-05-20,2025-05-20,,,,S0281,,F329
B,B1,1,outpatient,original,,2025-02-25,2025-02-25,,,0450,,,S0990
B,B2,1,professional,original,,2025-04-01,2025-04-01,,,,99284,23,S0990
C,C1,1,outpatient,original,,2025-02-02,2025-02-02,,,0981,,,I10
D,D1,1,outpatient,original,,2025-06-05,2025-06-05,,,0450,,,R55
E,E1,1,outpatient,original,,2025-03-03,2025-03-03,,,0450,,,R55
F,F1,1,outpatient,original,,2025-04-15,2025-04-15,,,0450,,,R55
F,F2,1,outpatient,original,,2025-07-07,2025-07-07,,,0450,,,R55
";

const CONTACTS: &str = "\
contact_id,member_id,contact_date,hhp_id,service,mode,reached
K1,A,2025-01-05,HHP-1,care_management,in_person,true
K2,A,2025-02-05,HHP-1,care_coordination,phone,true
K3,A,2025-03-05,HHP-1,health_promotion,video,true
K3b,A,2025-03-20,HHP-1,care_coordination,phone,true
K4,A,2025-04-05,HHP-1,care_coordination,phone,false
K5,B,2025-02-25,HHP-2,care_management,in_person,true
K6,B,2025-04-10,HHP-2,member_family_support,phone,true
K7,C,2025-01-10,HHP-1,care_management,in_person,true
K8,D,2025-06-20,HHP-2,transitional_care,in_person,true
K9,D,2025-07-01,HHP-2,care_coordination,phone,true
K10,F,2025-04-20,HHP-2,community_referral,phone,true
K11,F,2025-07-20,HHP-2,care_management,video,true
";

const MEMBERS: &str = "\
member_id,birth_date,sex,death_date,dual_eligible
A,1990-06-01,F,,false
B,2010-01-20,M,,false
C,1960-01-15,F,2025-03-20,true
D,1980-05-05,M,,false
E,1975-01-01,F,,false
F,1995-09-09,U,,false
";

const ENROLLMENT: &str = "\
member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out
A,medicaid,2024-01-01,,MCO-A,,,
A,health_home,2025-01-01,,MCO-A,HHP-1,SMI,false
B,medicaid,2025-01-01,2025-06-30,MCO-B,,,
B,health_home,2025-02-20,2025-06-30,MCO-B,HHP-2,CC,false
C,medicaid,2020-01-01,,MCO-A,,,
C,health_home,2024-06-01,,MCO-A,HHP-1,CC,false
D,medicaid,2020-01-01,,MCO-B,,,
D,health_home,2025-01-01,2025-06-10,MCO-B,HHP-1,SMI,false
D,health_home,2025-06-11,,MCO-B,HHP-2,SMI,false
E,medicaid,2020-01-01,,MCO-A,,,
F,medicaid,2025-01-01,2025-03-31,MCO-A,,,
F,medicaid,2025-06-01,,MCO-A,,,
F,health_home,2025-01-01,,MCO-A,HHP-2,SMI,false
";

// Member by member (months are 2025 member months; visits are counted ED visits; engaged are
// months with a reached service):
// A 18-64 MCO-A HHP-1 SMI: 12 months. ED: 03-10 (three claims, one visit) counts; 05-02 led to
//   the 05-03 admission; 07-04 F329 and 08-01 F1020 excluded; 09-09 counts; 10-10 voided;
//   11-11 replaced by a non-ED line; 12-01 became ED through a chain of replacements: counts;
//   2024-12-20 outside. Visits 3. Engaged Jan, Feb, Mar (two contacts, one month), May (S0281
//   claim); April's call went unanswered. Engaged 4.
// B 0-17 MCO-B HHP-2 CC: HH from 02-20, so February (15th) is not a member month: Mar-Jun = 4.
//   ED 02-25 falls in February: not counted; 04-01 counts. Visits 1. Engaged April. 1.
// C born 1960-01-15, 65 on 2025-01-15: 65+. Died 03-20: Jan, Feb, Mar = 3 months (alive on the
//   15th). ED 02-02 counts. Engaged January. 1.
// D 18-64 MCO-B SMI: HHP-1 to 06-10, HHP-2 from 06-11: Jan-May HHP-1 (5), Jun-Dec HHP-2 (7).
//   ED 06-05 falls in June, a HHP-2 month. Visits 1. Engaged Jun, Jul. 2.
// E: Medicaid only, never in a Health Home: in no denominator.
// F 18-64 MCO-A HHP-2 SMI: Medicaid gap Apr-May: Jan-Mar + Jun-Dec = 10 months. ED 04-15 in
//   the gap: not counted; 07-07 counts. Visits 1. Engaged July (April is in the gap). 1.

/// (stratifier, stratum, numerator, denominator)
type Expect = (Grouping, &'static str, f64, f64);

const AMB: &[Expect] = &[
    (Grouping::Total, "total", 7.0, 41.0),
    (Grouping::By(Stratifier::AgeBand), "0-17", 1.0, 4.0),
    (Grouping::By(Stratifier::AgeBand), "18-64", 5.0, 34.0),
    (Grouping::By(Stratifier::AgeBand), "65+", 1.0, 3.0),
    (Grouping::By(Stratifier::Mco), "MCO-A", 5.0, 25.0),
    (Grouping::By(Stratifier::Mco), "MCO-B", 2.0, 16.0),
    (Grouping::By(Stratifier::Hhp), "HHP-1", 4.0, 20.0),
    (Grouping::By(Stratifier::Hhp), "HHP-2", 3.0, 21.0),
    (Grouping::By(Stratifier::Population), "CC", 2.0, 7.0),
    (Grouping::By(Stratifier::Population), "SMI", 5.0, 34.0),
];

const ENGAGE: &[Expect] = &[
    (Grouping::Total, "total", 9.0, 41.0),
    (Grouping::By(Stratifier::AgeBand), "0-17", 1.0, 4.0),
    (Grouping::By(Stratifier::AgeBand), "18-64", 7.0, 34.0),
    (Grouping::By(Stratifier::AgeBand), "65+", 1.0, 3.0),
    (Grouping::By(Stratifier::Mco), "MCO-A", 6.0, 25.0),
    (Grouping::By(Stratifier::Mco), "MCO-B", 3.0, 16.0),
    (Grouping::By(Stratifier::Hhp), "HHP-1", 5.0, 20.0),
    (Grouping::By(Stratifier::Hhp), "HHP-2", 4.0, 21.0),
    (Grouping::By(Stratifier::Population), "CC", 2.0, 7.0),
    (Grouping::By(Stratifier::Population), "SMI", 7.0, 34.0),
];

async fn run_deck() -> (tempfile::TempDir, Vec<ResultRow>) {
    common::run_deck(
        CLAIMS,
        CONTACTS,
        MEMBERS,
        ENROLLMENT,
        &["AMB-HH", "HH-ENGAGE"],
    )
    .await
}

fn check(rows: &[ResultRow], measure: &str, component: &str, scale: f64, expected: &[Expect]) {
    let got: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r.measure == measure && r.component == component)
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{measure}: rows {:?}",
        got.iter()
            .map(|r| (r.stratifier, &r.stratum))
            .collect::<Vec<_>>()
    );
    for (stratifier, stratum, num, den) in expected {
        let r = got
            .iter()
            .find(|r| r.stratifier == *stratifier && r.stratum == *stratum)
            .unwrap_or_else(|| panic!("{measure}: no row {stratifier}={stratum}"));
        assert_eq!(
            (r.numerator, r.denominator),
            (*num, *den),
            "{measure} {stratifier}={stratum}"
        );
        let rate = r.rate.expect("non-zero denominator has a rate");
        assert!((rate - num / den * scale).abs() < 1e-9);
        assert_eq!(
            (r.period_start.to_string(), r.period_end.to_string()),
            ("2025-01-01".into(), "2025-12-31".into())
        );
    }
}

#[tokio::test]
async fn amb_hh_matches_the_hand_count() {
    let (_dir, rows) = run_deck().await;
    check(&rows, "AMB-HH", "ed_visits", 1000.0, AMB);
    let total = rows
        .iter()
        .find(|r| r.measure == "AMB-HH" && r.stratifier == Grouping::Total)
        .unwrap();
    assert_eq!(total.unit, Unit::Per1000MemberMonths);
    assert!((total.rate.unwrap() - 170.731_707_317_073_17).abs() < 1e-9);
}

#[tokio::test]
async fn hh_engage_matches_the_hand_count() {
    let (_dir, rows) = run_deck().await;
    check(&rows, "HH-ENGAGE", "engaged_months", 100.0, ENGAGE);
}

#[tokio::test]
async fn summary_files_follow_the_contract_and_are_reproducible() {
    let (dir, rows) = run_deck().await;
    let out = dir.path().join("out");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "measure,component,period_start,period_end,stratifier,stratum,numerator,denominator,rate,unit"
    );
    assert_eq!(lines.count(), rows.len());
    // The rate is written unrounded: 7 visits / 41 months x 1,000.
    let line = format!(
        "\nAMB-HH,ed_visits,2025-01-01,2025-12-31,total,total,7,41,{},per_1000_member_months\n",
        7.0_f64 / 41.0 * 1000.0
    );
    assert!(csv.contains(&line), "{csv}");

    // A second run over the same inputs writes the same bytes.
    let first_parquet = std::fs::read(out.join("summary.parquet")).unwrap();
    let (dir2, _) = run_deck().await;
    let out2 = dir2.path().join("out");
    assert_eq!(
        csv,
        std::fs::read_to_string(out2.join("summary.csv")).unwrap()
    );
    assert_eq!(
        first_parquet,
        std::fs::read(out2.join("summary.parquet")).unwrap()
    );

    // Claim versions reconcile. The deck has 25 lines: 18 of member A (A11R2 has two), 7 of
    // the others. One is a void (A9V); four belong to versions later voided or replaced (A9,
    // A10, A11, A11R); the other 20 are final.
    let dq = std::fs::read_to_string(out.join("data_quality.csv")).unwrap();
    assert!(dq.contains("claims,read,25,"), "{dq}");
    assert!(dq.contains("claims,final,20,"), "{dq}");
    assert!(dq.contains("claims,superseded,4,"), "{dq}");
    assert!(dq.contains("claims,void,1,"), "{dq}");
}

#[tokio::test]
async fn an_empty_age_band_is_still_reported() {
    // Only member A (18-64): the other bands appear with zero denominators and no rate.
    let data = common::data_dir(
        &CLAIMS
            .lines()
            .filter(|l| !l.starts_with(['B', 'C', 'D', 'E', 'F']))
            .collect::<Vec<_>>()
            .join("\n"),
        CONTACTS,
        MEMBERS,
        ENROLLMENT
            .lines()
            .filter(|l| !l.starts_with(['B', 'C', 'D', 'E', 'F']))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    );
    let s = pipeline::run(&RunOptions {
        common: common::execute_options(data.path()),
        out: data.path().join("out"),
        period: Some(Period::year(2025)),
        only: vec!["AMB-HH".into()],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    })
    .await
    .unwrap();
    let bands: Vec<(&str, f64, Option<f64>)> = s
        .rows
        .iter()
        .filter(|r| r.stratifier == Grouping::By(Stratifier::AgeBand))
        .map(|r| (r.stratum.as_str(), r.denominator, r.rate))
        .collect();
    assert_eq!(bands[0].0, "0-17");
    assert_eq!((bands[0].1, bands[0].2), (0.0, None));
    assert_eq!(bands[1].0, "18-64");
    assert_eq!(bands[1].1, 12.0);
    assert_eq!(bands[2], ("65+", 0.0, None));
}

/// A members-basis measure over the same deck: members enrolled in a Health Home on December 31
/// with at most one gap of up to 45 days in 2025, and whether a service reached them in 2025.
const MEMBERS_MEASURE: &str = r#"id: TEST-MEMBERS
title: Members reached in the year
version: "1"
source: test
better: higher
basis: members
anchor: period_end
enrollment:
  in: health_home
  continuous: {from: -364, to: 0, max_gaps: 1, max_gap_days: 45}
age_bands: ["0-17", "18-64", "65+"]
stratify: [hhp]
components:
  - name: reached
    unit: percent
    numerator:
      exists: hh_services
      date: service_date
      where: reached
"#;

#[tokio::test]
async fn members_basis_with_continuous_enrollment() {
    // On 2025-12-31: A (HHP-1) and D (HHP-2 since June 11, no gap) are enrolled; B's span ended
    // June 30, C died in March, E was never in a Health Home. F is enrolled but its Medicaid gap
    // (April 1 to May 31, 61 days) is longer than 45 days: not continuously enrolled.
    // A and D were both reached in 2025: 2 of 2.
    let data = common::data_dir(CLAIMS, CONTACTS, MEMBERS, ENROLLMENT);
    let defs = common::measures_dir_with(MEMBERS_MEASURE);
    let out = data.path().join("out");
    let s = pipeline::run(&RunOptions {
        common: hhq::execute::Options {
            measures: defs.path().to_path_buf(),
            ..common::execute_options(data.path())
        },
        out: out.clone(),
        period: Some(Period::year(2025)),
        only: vec![],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    })
    .await
    .unwrap();
    let total = s
        .rows
        .iter()
        .find(|r| r.stratifier == Grouping::Total)
        .unwrap();
    assert_eq!((total.numerator, total.denominator), (2.0, 2.0));
    let hhps: Vec<(&str, f64)> = s
        .rows
        .iter()
        .filter(|r| r.stratifier == Grouping::By(Stratifier::Hhp))
        .map(|r| (r.stratum.as_str(), r.denominator))
        .collect();
    assert_eq!(hhps, vec![("HHP-1", 1.0), ("HHP-2", 1.0)]);
    let detail = std::fs::read_to_string(out.join("detail/TEST-MEMBERS.csv")).unwrap();
    let f = detail.lines().find(|l| l.starts_with("F,")).unwrap();
    assert!(
        f.contains("not continuously enrolled: days -364..0: 1 gap(s), longest 61 days"),
        "{f}"
    );
    assert_eq!(detail.lines().count(), 1 + 3, "{detail}");
}

/// An events measure over assignments with a `first:` numerator: days to the first reached
/// service, and the share reached within 30 days.
const FIRST_MEASURE: &str = r#"id: TEST-FIRST
title: Days from assignment to first contact
version: "1"
source: test
better: lower
basis: events
events: {from: hh_assignments, id: assignment_id, date: assignment_date, end_offset: -30}
age_bands: ["0-17", "18+"]
components:
  - name: within_30_days
    unit: percent
    numerator:
      exists: hh_services
      date: service_date
      window: {from: 0, to: 30}
      where: reached
  - name: median_days
    unit: median_days
    numerator:
      first: hh_services
      date: service_date
      window: {from: 0, to: 365}
      where: reached
"#;

#[tokio::test]
async fn first_date_numerators_give_days_and_their_median() {
    // Assignments dated 2025-01-01 to 2025-12-01 (C's, in 2024, is not): A 01-01, B 02-20,
    // D 01-01 and 06-11 (partner change), F 01-01. First reached service after each: A K1 01-05
    // (4 days), B K5 02-25 (5), D K8 06-20 (170 and 9), F K10 04-20 (109). Within 30 days:
    // A, B, D's second: 3 of 5. Median of 4, 5, 9, 109, 170: 9.
    let data = common::data_dir(CLAIMS, CONTACTS, MEMBERS, ENROLLMENT);
    let defs = common::measures_dir_with(FIRST_MEASURE);
    let s = pipeline::run(&RunOptions {
        common: hhq::execute::Options {
            measures: defs.path().to_path_buf(),
            ..common::execute_options(data.path())
        },
        out: data.path().join("out"),
        period: Some(Period::year(2025)),
        only: vec![],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    })
    .await
    .unwrap();
    let total = |c: &str| {
        s.rows
            .iter()
            .find(|r| r.component == c && r.stratifier == Grouping::Total)
            .unwrap()
            .clone()
    };
    let within = total("within_30_days");
    assert_eq!((within.numerator, within.denominator), (3.0, 5.0));
    let median = total("median_days");
    assert_eq!((median.numerator, median.denominator), (5.0, 5.0));
    assert_eq!(median.rate, Some(9.0));
    assert_eq!(median.unit, Unit::MedianDays);
    let detail = std::fs::read_to_string(data.path().join("out/detail/TEST-FIRST.csv")).unwrap();
    assert!(detail.contains("D:2025-01-01,D,2025-01-01"), "{detail}");
    let d1 = detail
        .lines()
        .find(|l| l.starts_with("D:2025-01-01"))
        .unwrap();
    assert!(d1.contains(",170,2025-06-20,K8"), "{d1}");
}

#[tokio::test]
async fn pcr_without_risk_weights_reports_observed_only_and_says_so() {
    let out = tempfile::tempdir().unwrap();
    let opts = |risk_weights: Option<std::path::PathBuf>| RunOptions {
        common: hhq::execute::Options {
            risk_weights,
            ..common::execute_options(&common::root().join("testdata"))
        },
        out: out.path().to_path_buf(),
        period: None,
        only: vec!["PCR-HH".into()],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    };
    let s = pipeline::run(&opts(None)).await.unwrap();
    let components: std::collections::BTreeSet<&str> =
        s.rows.iter().map(|r| r.component.as_str()).collect();
    assert!(components.contains("observed_rate") && components.contains("outlier_rate"));
    assert!(!components.contains("expected_readmissions") && !components.contains("oe_ratio"));
    assert_eq!(s.notes.len(), 1);
    assert!(s.notes[0].contains("observed values only"), "{:?}", s.notes);
    let cms = std::fs::read_to_string(out.path().join("cms_measures.csv")).unwrap();
    assert!(cms.contains("observed values only"), "{cms}");

    // With a table every one of the nine fields is reported, and O/E = observed / expected.
    let weights = out.path().join("w.csv");
    std::fs::write(
        &weights,
        "variable,value,weight\nintercept,,-1.5\nsex,F,0.2\n",
    )
    .unwrap();
    let s = pipeline::run(&opts(Some(weights))).await.unwrap();
    assert!(s.notes.is_empty());
    let total = |c: &str| {
        s.rows
            .iter()
            .find(|r| r.component == c && r.stratifier == Grouping::Total)
            .unwrap_or_else(|| panic!("no {c}"))
            .clone()
    };
    for c in [
        "index_stays",
        "observed_readmissions",
        "observed_rate",
        "expected_readmissions",
        "expected_rate",
        "oe_ratio",
        "enrollees",
        "outliers",
        "outlier_rate",
    ] {
        total(c);
    }
    let (observed, expected) = (
        total("observed_readmissions"),
        total("expected_readmissions"),
    );
    // Every stay's probability is 1/(1+e^1.5) or 1/(1+e^1.3): expected lies between.
    let n = total("index_stays").numerator;
    assert!(expected.numerator > n / (1.0 + 1.5f64.exp()) - 1e-9);
    assert!(expected.numerator < n / (1.0 + 1.3f64.exp()) + 1e-9);
    let oe = total("oe_ratio");
    assert!((oe.rate.unwrap() - observed.numerator / expected.numerator).abs() < 1e-12);
}

#[tokio::test]
async fn the_manifest_fingerprints_inputs_and_outputs() {
    let out = tempfile::tempdir().unwrap();
    let s = pipeline::run(&RunOptions {
        common: common::execute_options(&common::root().join("testdata")),
        out: out.path().to_path_buf(),
        period: Some(Period::year(2025)),
        only: vec!["AMB-HH".into()],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(out.path().join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["period"]["start"], "2025-01-01");
    assert_eq!(m["measures"].as_array().unwrap().len(), 1);
    let measure = &m["measures"][0];
    assert_eq!(measure["id"], "AMB-HH");
    let yaml = std::fs::read(common::root().join("measures/amb-hh.yaml")).unwrap();
    assert_eq!(measure["sha256"], hhq::digest::sha256(&yaml));
    // Every output is listed with the hash of the bytes on disk, the summary among them.
    let outputs = m["outputs"].as_array().unwrap();
    assert!(
        outputs
            .iter()
            .any(|o| o["file"].as_str().unwrap().ends_with("summary.csv"))
    );
    for o in outputs {
        // Paths are relative to the output directory.
        let bytes = std::fs::read(out.path().join(o["file"].as_str().unwrap())).unwrap();
        assert_eq!(o["sha256"], hhq::digest::sha256(&bytes), "{o}");
        assert_eq!(o["bytes"], bytes.len());
    }
    // Extract fingerprints carry the row counts the run read.
    for e in &s.extracts {
        let listed = m["extracts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == e.name)
            .unwrap();
        assert_eq!(listed["rows"], e.rows);
    }
}

/// testdata's claims with every final original claim given four earlier versions: `X~v1` an
/// original, `X~v2`..`X~v4` each replacing the one before, and `X` itself now replacing `X~v4`.
/// The final versions are exactly the claims of before, so every result must be the same. Most
/// claim ids are now superseded, more than the query engine expects of the claims' rows; in
/// that shape DataFusion 55 swaps the sides of a join and, for claims_final's old `RIGHT JOIN
/// … WHERE s.claim_id IS NULL`, pushed the null test onto the claims' `claim_id`: no final claim
/// at all, every claims-based measure empty.
fn claims_with_version_chains(dir: &std::path::Path) -> u64 {
    use datafusion::arrow::array::{Array, RecordBatch, StringArray};
    use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
    use datafusion::arrow::datatypes::DataType;
    use std::sync::Arc;

    let all = common::read_parquet(&common::root().join("testdata/claims.parquet"));
    let schema = all.schema();
    let text = |name: &str, b: &RecordBatch| -> StringArray {
        let c = cast(b.column(schema.index_of(name).unwrap()), &DataType::Utf8).unwrap();
        c.as_any().downcast_ref::<StringArray>().unwrap().clone()
    };
    let replaced: std::collections::HashSet<String> = text("replaces_claim_id", &all)
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    let (ids, adjustments) = (text("claim_id", &all), text("adjustment", &all));
    let chained: datafusion::arrow::array::BooleanArray = (0..all.num_rows())
        .map(|i| Some(adjustments.value(i) == "original" && !replaced.contains(ids.value(i))))
        .collect();
    let chosen = filter_record_batch(&all, &chained).unwrap();
    // One version of the chosen lines: its claim id, adjustment and the id it replaces.
    let version = |b: &RecordBatch,
                   id: &dyn Fn(&str) -> String,
                   adj: &str,
                   rep: &dyn Fn(&str) -> Option<String>| {
        let base = text("claim_id", b);
        let mut columns = b.columns().to_vec();
        let set = |columns: &mut Vec<Arc<dyn Array>>, name: &str, values: StringArray| {
            let i = schema.index_of(name).unwrap();
            columns[i] = cast(&values, schema.field(i).data_type()).unwrap();
        };
        set(
            &mut columns,
            "claim_id",
            base.iter().map(|v| Some(id(v.unwrap()))).collect(),
        );
        set(
            &mut columns,
            "adjustment",
            base.iter().map(|_| Some(adj.to_string())).collect(),
        );
        set(
            &mut columns,
            "replaces_claim_id",
            base.iter().map(|v| rep(v.unwrap())).collect(),
        );
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    };
    let mut parts = vec![version(
        &chosen,
        &|v| format!("{v}~v1"),
        "original",
        &|_| None,
    )];
    for k in 2..=4 {
        parts.push(version(
            &chosen,
            &|v| format!("{v}~v{k}"),
            "replacement",
            &|v| Some(format!("{v}~v{}", k - 1)),
        ));
    }
    // The chosen lines themselves become the last replacement; the others stay as they were.
    let not_chosen = datafusion::arrow::compute::not(&chained).unwrap();
    parts.push(filter_record_batch(&all, &not_chosen).unwrap());
    parts.push(version(&chosen, &|v| v.to_string(), "replacement", &|v| {
        Some(format!("{v}~v4"))
    }));
    let out = concat_batches(&schema, &parts).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(dir.join("claims.parquet")).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    w.write(&out).unwrap();
    w.close().unwrap();
    4 * chosen.num_rows() as u64
}

#[tokio::test]
async fn superseded_versions_change_no_result_even_when_most_claims_are_superseded() {
    let data = tempfile::tempdir().unwrap();
    for e in ["members", "enrollment", "contacts"] {
        std::fs::copy(
            common::root().join(format!("testdata/{e}.parquet")),
            data.path().join(format!("{e}.parquet")),
        )
        .unwrap();
    }
    let added = claims_with_version_chains(data.path());
    let (plain_out, chained_out) = (data.path().join("plain"), data.path().join("chained"));
    let testdata = common::root().join("testdata");
    let plain = pipeline::run(&common::run_options(&testdata, &plain_out))
        .await
        .unwrap();
    let chained = pipeline::run(&common::run_options(data.path(), &chained_out))
        .await
        .unwrap();
    // Most claim lines superseded: far more superseded ids than a fifth of the lines (the
    // engine's default guess of what a filter keeps), the shape that made DataFusion swap the join.
    let (p, c) = (&plain.claim_versions, &chained.claim_versions);
    assert_eq!(c.lines_read, p.lines_read + added);
    assert_eq!(c.superseded_lines, p.superseded_lines + added);
    assert_eq!((c.final_lines, c.void_lines), (p.final_lines, p.void_lines));
    assert!(
        2 * c.superseded_lines > c.lines_read,
        "{added} of {}",
        c.lines_read
    );
    // The measures see the same final claims: the same results, unit for unit.
    let claims_based = plain
        .rows
        .iter()
        .filter(|r| r.measure == "FUH-HH" && r.stratifier == Grouping::Total)
        .map(|r| r.denominator)
        .sum::<f64>();
    assert!(claims_based > 0.0);
    for file in ["summary.csv", "cms_reporting.csv"] {
        let a = std::fs::read_to_string(plain_out.join(file)).unwrap();
        let b = std::fs::read_to_string(chained_out.join(file)).unwrap();
        assert!(a == b, "{file} differs with version chains");
    }
    let mut details: Vec<_> = std::fs::read_dir(plain_out.join("detail"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".csv"))
        .collect();
    details.sort();
    assert!(details.len() >= 10);
    for name in details {
        let a = std::fs::read(plain_out.join("detail").join(&name)).unwrap();
        let b = std::fs::read(chained_out.join("detail").join(&name)).unwrap();
        assert!(a == b, "detail {name:?} differs with version chains");
    }
}
