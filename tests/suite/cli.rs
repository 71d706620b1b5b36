//! The `hhq` binary end to end: the main job on the committed test data, reproducibility, the
//! committed data being exactly what the generator writes, and the contract documentation being
//! the contract the code enforces.

use crate::common;

use std::path::Path;
use std::process::Command;

fn hhq(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("hhq runs")
}

fn rows_of(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn main_job_on_testdata_reports_every_measure_with_real_values() {
    let root = common::root();
    let out = tempfile::tempdir().unwrap();
    let o = hhq(&["run", "--out", out.path().to_str().unwrap()], &root);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // The default period is the latest full year in the data (the data runs into 2026).
    assert!(stderr.contains("period 2025-01-01..2025-12-31"), "{stderr}");
    // stderr is a pipe here, not a terminal: no progress bar is drawn.
    assert!(!stderr.contains('\r') && !stderr.contains('█'), "{stderr}");

    let csv = std::fs::read_to_string(out.path().join("summary.csv")).unwrap();
    let rows = rows_of(&csv);
    // Every shipped measure shows real values: a total with a denominator and a numerator.
    for path in std::fs::read_dir(root.join("measures")).unwrap() {
        let path = path.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap()
            .trim()
            .to_string();
        assert!(
            rows.iter().any(|r| r[0] == id
                && r[4] == "total"
                && r[6].parse::<f64>().unwrap() > 0.0
                && r[7].parse::<f64>().unwrap() > 0.0),
            "{id} has no total with a numerator and a denominator"
        );
    }
    for (measure, component) in [("AMB-HH", "ed_visits"), ("HH-ENGAGE", "engaged_months")] {
        let total = rows
            .iter()
            .find(|r| r[0] == measure && r[1] == component && r[4] == "total")
            .unwrap_or_else(|| panic!("no total row for {measure}"));
        let (num, den, rate): (f64, f64, f64) = (
            total[6].parse().unwrap(),
            total[7].parse().unwrap(),
            total[8].parse().unwrap(),
        );
        assert!(num > 0.0 && den > 0.0, "{measure}: {total:?}");
        // Strata add up to the total: every stratifier partitions the same member months.
        for stratifier in ["age_band", "mco", "hhp", "population"] {
            let (n, d) = rows
                .iter()
                .filter(|r| r[0] == measure && r[1] == component && r[4] == stratifier)
                .fold((0.0, 0.0), |(n, d), r| {
                    (
                        n + r[6].parse::<f64>().unwrap(),
                        d + r[7].parse::<f64>().unwrap(),
                    )
                });
            assert_eq!((n, d), (num, den), "{measure} by {stratifier}");
        }
        match measure {
            // Plausible ranges for a Health Home population: tens to a few hundred ED visits per
            // 1,000 member months; engagement neither zero nor complete.
            "AMB-HH" => assert!((20.0..400.0).contains(&rate), "AMB-HH rate {rate}"),
            _ => assert!((20.0..100.0).contains(&rate), "HH-ENGAGE rate {rate}"),
        }
    }
    // CMS's checks hold on every measure, and the reporting table has a total and age bands.
    let checks = std::fs::read_to_string(out.path().join("cms_checks.csv")).unwrap();
    assert!(
        checks.lines().count() > 50 && !checks.contains(",FAIL,"),
        "{checks}"
    );
    let qmr = std::fs::read_to_string(out.path().join("cms_reporting.csv")).unwrap();
    assert!(
        qmr.contains("\nFUH-HH,7_day,2025-01-01,2025-12-31,total,"),
        "{qmr}"
    );
    assert!(
        qmr.contains("\nFUH-HH,30_day,2025-01-01,2025-12-31,65+,"),
        "{qmr}"
    );
    // Several partners and all three MCOs appear.
    let hhps = rows
        .iter()
        .filter(|r| r[0] == "AMB-HH" && r[4] == "hhp")
        .count();
    let mcos = rows
        .iter()
        .filter(|r| r[0] == "AMB-HH" && r[4] == "mco")
        .count();
    assert!(hhps >= 4 && mcos == 3, "{hhps} partners, {mcos} MCOs");

    // The printed table carries the same totals.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("AMB-HH") && stdout.contains("engaged_months"),
        "{stdout}"
    );

    // Same inputs, same bytes: every file, the manifest and member-level details included.
    let again = tempfile::tempdir().unwrap();
    let o2 = hhq(&["run", "--out", again.path().to_str().unwrap()], &root);
    assert!(o2.status.success());
    let (first, second) = (common::files(out.path()), common::files(again.path()));
    assert!(
        first.contains_key(Path::new("manifest.json"))
            && first.contains_key(Path::new("detail/HH-TCC.parquet")),
        "{:?}",
        first.keys()
    );
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (f, bytes) in &first {
        assert!(
            second[f] == *bytes,
            "{} differs between two runs",
            f.display()
        );
    }
}

#[test]
fn data_quality_reconciles_claim_lines() {
    let root = common::root();
    let out = tempfile::tempdir().unwrap();
    let o = hhq(
        &[
            "run",
            "--out",
            out.path().to_str().unwrap(),
            "--measure",
            "AMB-HH",
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dq = std::fs::read_to_string(out.path().join("data_quality.csv")).unwrap();
    let get = |extract: &str, count: &str| -> u64 {
        dq.lines()
            .find(|l| l.starts_with(&format!("{extract},{count},")))
            .unwrap_or_else(|| panic!("no {extract},{count} in {dq}"))
            .split(',')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let read = get("claims", "read");
    assert_eq!(
        read,
        get("claims", "final") + get("claims", "superseded") + get("claims", "void")
    );
    // The synthetic data has replaced and voided claims: some lines are set aside.
    assert!(
        get("claims", "superseded") > 0 && get("claims", "void") > 0,
        "{dq}"
    );
}

#[test]
fn committed_testdata_is_what_synth_writes() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let o = hhq(
        &[
            "synth",
            "--members",
            "1500",
            "--seed",
            "42",
            "--start-year",
            "2023",
            "--years",
            "3",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["claims", "contacts", "members", "enrollment"] {
        let name = format!("{f}.parquet");
        assert!(
            std::fs::read(root.join("testdata").join(&name)).unwrap()
                == std::fs::read(dir.path().join(&name)).unwrap(),
            "testdata/{name} is not what `hhq synth --members 1500 --seed 42 --start-year 2023 --years 3` writes: regenerate it"
        );
    }
}

#[test]
fn errors_exit_nonzero_with_a_message_naming_the_problem() {
    let root = common::root();
    let missing = tempfile::tempdir().unwrap();
    let o = hhq(
        &[
            "run",
            "--data",
            missing.path().to_str().unwrap(),
            "--out",
            missing.path().join("out").to_str().unwrap(),
        ],
        &root,
    );
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("missing extract `claims`"), "{stderr}");
    // Nothing was written for the failed run.
    assert!(!missing.path().join("out").exists());

    let o = hhq(&["run", "--period", "2025Q5"], &root);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a year"));
}

#[test]
fn check_and_compile_work_without_data() {
    let root = common::root();
    let o = hhq(&["check"], &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("ok  AMB-HH") && stdout.contains("ok  HH-ENGAGE"),
        "{stdout}"
    );

    let o = hhq(&["compile", "AMB-HH", "--period", "2025Q2"], &root);
    let sql = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(sql.contains("CREATE VIEW ed_visits AS"), "{sql}");
    assert!(
        sql.contains("revenue_code IN ('0450', '0451', '0452', '0456', '0459', '0981')"),
        "{sql}"
    );
    assert!(
        sql.contains("(DATE '2025-06-01', DATE '2025-06-30', DATE '2025-06-15')"),
        "{sql}"
    );
    assert!(!sql.contains("DATE '2025-07-01'"), "{sql}");
}

#[test]
fn contract_documentation_is_the_enforced_contract() {
    let doc = std::fs::read_to_string(common::root().join("docs/data-contract.md")).unwrap();
    let generated = hhq::extract::contract::markdown();
    let begin = doc.find("-->\n").unwrap() + 4;
    let end = doc.find("<!-- END generated -->").unwrap();
    assert_eq!(
        &doc[begin..end],
        generated,
        "docs/data-contract.md is stale: paste `hhq contract` output"
    );
}

#[test]
fn check_lists_every_problem_and_fails() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root.join("measures/amb-hh.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &good).unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        good.replace("id: AMB-HH", "id: AMB-B")
            .replace("count: ed_visits", "count: ed_visitz"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        good.replace("better: lower", "better: lowr"),
    )
    .unwrap();
    std::fs::write(dir.path().join("d.yaml"), &good).unwrap();
    std::fs::create_dir(dir.path().join("valuesets")).unwrap();
    std::fs::copy(
        root.join("measures/valuesets/illustrative.csv"),
        dir.path().join("valuesets/illustrative.csv"),
    )
    .unwrap();
    let o = hhq(&["check", dir.path().to_str().unwrap()], &root);
    let stdout =
        String::from_utf8_lossy(&o.stdout).replace(&dir.path().display().to_string(), "<m>");
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok  AMB-HH 2024.1  <m>/a.yaml"), "{stdout}");
    assert!(
        stdout.contains("<m>/b.yaml:") && stdout.contains("unknown building block `ed_visitz`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("<m>/c.yaml:") && stdout.contains("unknown variant `lowr`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("<m>/d.yaml:1:1: measure id `AMB-HH` is also defined in <m>/a.yaml"),
        "{stdout}"
    );
    assert!(stdout.contains("1 measures passed, 3 problems"), "{stdout}");
}

#[test]
fn rolling_and_quarter_periods_run() {
    let root = common::root();
    let out = tempfile::tempdir().unwrap();
    let o = hhq(
        &[
            "run",
            "--period",
            "rolling:2026-03",
            "--measure",
            "HH-ENGAGE",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.path().join("summary.csv")).unwrap();
    assert!(csv.contains(",2025-04-01,2026-03-31,total,total,"), "{csv}");
}

#[test]
fn periods_the_data_do_not_cover_are_refused_or_cut_with_a_caveat() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--measure",
            "HH-ENGAGE",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        hhq(&args, &root)
    };
    // testdata end 2026-03-31: a year after them, and a year running past them, are refused.
    let o = run(&["--period", "2027"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("starts after the data's last day, 2026-03-31"),
        "{err}"
    );
    let o = run(&["--period", "2026"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("partial_period: caveat"), "{err}");
    assert!(!out.exists(), "nothing is written when refused");

    // With the policy's caveat: measured to the last whole month, and said so.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "partial_period: caveat\n").unwrap();
    let o = run(&[
        "--period",
        "2026",
        "--quality-policy",
        policy.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Partial period"), "{err}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains(",2026-01-01,2026-03-31,total,total,"), "{csv}");

    // A data holder may state the extracts' span: then the year is theirs to measure.
    let o = run(&["--period", "2026", "--data-through", "2026-12-31"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains(",2026-01-01,2026-12-31,total,total,"), "{csv}");
}

/// A deck for ad hoc SQL, counted by hand: A1 and A2 are partner HHP-1's (MCO-A), B1 is HHP-2's
/// (MCO-B). A1's claim C2 is voided by C2V, so its final lines are C1's two; A2 and B1 have one
/// each. Final claim lines per member: A1 2, A2 1, B1 1.
const ADHOC_CLAIMS: &str = "\
member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to,procedure_code,principal_dx
A1,C1,1,professional,original,,2025-03-01,2025-03-01,99213,F200
A1,C1,2,professional,original,,2025-03-01,2025-03-01,90834,F200
A1,C2,1,professional,original,,2025-04-01,2025-04-01,99213,F200
A1,C2V,1,professional,void,C2,2025-04-01,2025-04-01,99213,F200
A2,C3,1,professional,original,,2025-05-01,2025-05-01,99213,E119
B1,C4,1,professional,original,,2025-06-01,2025-06-01,99214,I10
";
const ADHOC_CONTACTS: &str = "\
contact_id,member_id,contact_date,hhp_id,service,mode,reached
K1,A1,2025-03-02,HHP-1,care_management,phone,true
K2,B1,2025-06-02,HHP-2,care_coordination,in_person,true
";
const ADHOC_MEMBERS: &str = "\
member_id,birth_date,sex,death_date,dual_eligible
A1,1980-01-01,F,,false
A2,1975-01-01,M,,false
B1,1990-01-01,F,,false
";
const ADHOC_ENROLLMENT: &str = "\
member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out
A1,medicaid,2024-01-01,,MCO-A,,,
A1,health_home,2024-01-01,,MCO-A,HHP-1,SMI,false
A2,medicaid,2024-01-01,,MCO-A,,,
A2,health_home,2024-01-01,,MCO-A,HHP-1,CC,false
B1,medicaid,2024-01-01,,MCO-B,,,
B1,health_home,2024-01-01,,MCO-B,HHP-2,SMI,false
";

fn adhoc_data() -> tempfile::TempDir {
    common::data_dir(
        ADHOC_CLAIMS,
        ADHOC_CONTACTS,
        ADHOC_MEMBERS,
        ADHOC_ENROLLMENT,
    )
}

const FINAL_LINES: &str =
    "SELECT member_id, count(*) AS lines FROM claims_final GROUP BY member_id ORDER BY member_id";

#[test]
fn sql_reads_extracts_and_blocks_in_every_format_and_scopes_audiences() {
    let data = adhoc_data();
    let d = data.path().to_str().unwrap();
    let root = common::root();
    let sql = |extra: &[&str]| {
        let mut args = vec!["sql", FINAL_LINES, "--data", d];
        args.extend_from_slice(extra);
        let o = hhq(&args, &root);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        sql(&["--format", "csv"]),
        "member_id,lines\nA1,2\nA2,1\nB1,1\n"
    );
    // A partner's or an MCO's analyst sees its own members only.
    assert_eq!(
        sql(&["--format", "csv", "--hhp", "HHP-1"]),
        "member_id,lines\nA1,2\nA2,1\n"
    );
    assert_eq!(
        sql(&["--format", "csv", "--mco", "MCO-B"]),
        "member_id,lines\nB1,1\n"
    );
    let json: serde_json::Value = serde_json::from_str(&sql(&["--format", "json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"member_id": "A1", "lines": 2},
            {"member_id": "A2", "lines": 1},
            {"member_id": "B1", "lines": 1}
        ])
    );
    let table = sql(&["--max-rows", "2"]);
    assert!(table.contains("A1") && table.contains("A2") && !table.contains("B1"));
    assert!(
        table.contains("1 more rows not shown (3 in all)"),
        "{table}"
    );

    // Parquet goes to a file, written whole.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("lines.parquet");
    let o = hhq(
        &[
            "sql",
            FINAL_LINES,
            "--data",
            d,
            "--format",
            "parquet",
            "--out",
            file.to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrote 3 rows"));
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
}

#[test]
fn sql_refuses_writes_and_points_at_errors_in_query_files() {
    let data = adhoc_data();
    let d = data.path().to_str().unwrap();
    let root = common::root();
    let fails = |args: &[&str]| {
        let o = hhq(args, &root);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = fails(&["sql", "CREATE TABLE x AS SELECT 1", "--data", d]);
    assert!(e.contains("query:"), "{e}");
    let e = fails(&["sql", "SELECT 1", "--data", d, "--format", "parquet"]);
    assert!(e.contains("--out"), "{e}");
    // A partner's session has no Parquet table of every member (tests/suite/privacy.rs).
    let e = fails(&[
        "sql",
        "SELECT count(*) FROM claims__raw",
        "--data",
        d,
        "--hhp",
        "HHP-1",
    ]);
    assert!(e.contains("claims__raw") && e.contains("not found"), "{e}");
    let e = fails(&["sql", "SELECT 1", "--data", d, "--hhp", "HHP-9"]);
    assert!(e.contains("HHP-9") && e.contains("HHP-1"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sql");
    std::fs::write(&bad, "SELECT member_id\nFROM claims WHERE member_id = )\n").unwrap();
    let e = fails(&["query", bad.to_str().unwrap(), "--data", d]);
    assert!(e.contains("bad.sql:2:31:"), "{e}");
    let unknown = dir.path().join("unknown.sql");
    std::fs::write(&unknown, "SELECT * FROM claimz\n").unwrap();
    let e = fails(&["query", unknown.to_str().unwrap(), "--data", d]);
    assert!(
        e.contains("unknown.sql:1:15:") && e.contains("claimz"),
        "{e}"
    );
    assert!(e.contains("hint: the tables are"), "{e}");
    // A planning error points at its line and column too, and a syntax error reads as words.
    let column = dir.path().join("column.sql");
    std::fs::write(
        &column,
        "SELECT member_id,\n  claim_id\nFROM claims\nWHERE nosuch = 1\n",
    )
    .unwrap();
    let e = fails(&["query", column.to_str().unwrap(), "--data", d]);
    assert!(e.contains("column.sql:4:7:") && e.contains("nosuch"), "{e}");
    let e = fails(&[
        "sql",
        "SELECT member_id FROM claims WHERE (1 = AND 2",
        "--data",
        d,
    ]);
    assert!(
        e.contains("syntax error: expected") && !e.contains("ParserError"),
        "{e}"
    );
}

#[test]
fn sql_lists_the_tables_and_their_columns() {
    let data = adhoc_data();
    let d = data.path().to_str().unwrap();
    let root = common::root();
    let csv = |args: &[&str]| {
        let o = hhq(args, &root);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let listed = csv(&["sql", "--tables", "--data", d, "--format", "csv"]);
    assert_eq!(
        listed,
        csv(&["sql", "show tables;", "--data", d, "--format", "csv"])
    );
    let mut lines = listed.lines();
    assert_eq!(lines.next(), Some("table,kind,meaning,columns"));
    let rows: Vec<&str> = lines.collect();
    // The four extracts, their every-row tables and every building block of queries/.
    let blocks = std::fs::read_dir(root.join("queries"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert_eq!(rows.len(), 8 + blocks, "{listed}");
    assert!(
        rows.iter().any(|r| r.starts_with(
            "claims,extract (usable rows),one row per claim line,\"member_id, claim_id"
        )),
        "{listed}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("ed_visits,building block,") && r.contains("visit_date")),
        "{listed}"
    );
    let described = csv(&["sql", "DESCRIBE members", "--data", d, "--format", "csv"]);
    assert!(
        described.starts_with("column,type,meaning\nmember_id,"),
        "{described}"
    );
    assert!(
        described.contains("sex,") && described.contains("OMB category"),
        "{described}"
    );
    let o = hhq(&["sql", "DESCRIBE ed_visit", "--data", d], &root);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("did you mean `ed_visits`?"), "{e}");
}

#[test]
fn example_queries_run_on_the_test_data() {
    let root = common::root();
    let mut ran = 0;
    for entry in std::fs::read_dir(root.join("queries/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "sql") {
            continue;
        }
        let o = hhq(&["query", path.to_str().unwrap(), "--format", "csv"], &root);
        assert!(
            o.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.lines().count() > 1, "{}: no rows", path.display());
        ran += 1;
    }
    assert!(ran >= 4);
}

#[test]
fn every_command_shows_an_example_and_completions_and_man_pages_follow_the_commands() {
    let root = common::root();
    let help = String::from_utf8(hhq(&["--help"], &root).stdout).unwrap();
    assert!(help.contains("Exit codes: 0 success"), "{help}");
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A command's line starts two spaces in; a wrapped description's, further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    for c in &commands {
        let o = hhq(&[c, "--help"], &root);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Example"),
            "`hhq {c} --help` shows no example:\n{text}"
        );
    }

    let bash = String::from_utf8(hhq(&["completions", "bash"], &root).stdout).unwrap();
    assert!(bash.contains("complete -F _hhq"), "{bash}");
    for c in &commands {
        assert!(bash.contains(&format!("hhq,{c})")), "no completion for {c}");
    }

    let dir = tempfile::tempdir().unwrap();
    let o = hhq(&["man", "--out", dir.path().to_str().unwrap()], &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.path().join("hhq.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH hhq"),
        "{page}"
    );
    for c in &commands {
        let page = std::fs::read_to_string(dir.path().join(format!("hhq-{c}.1"))).unwrap();
        assert!(page.contains(&format!(".TH hhq-{c}")), "hhq-{c}.1:\n{page}");
    }
    let sql = std::fs::read_to_string(dir.path().join("hhq-sql.1")).unwrap();
    assert!(sql.contains("format") && sql.contains("parquet"), "{sql}");
}

/// The total row of a measure's component in a run's summary.csv: numerator, denominator, rate.
fn summary_total(summary: &str, measure: &str, component: &str) -> (f64, f64, f64) {
    let row = rows_of(summary)
        .into_iter()
        .find(|r| r[0] == measure && r[1] == component && r[4] == "total")
        .unwrap_or_else(|| panic!("no total row of {measure} {component}"));
    (
        row[6].parse().unwrap(),
        row[7].parse().unwrap(),
        row[8].parse().unwrap(),
    )
}

/// A group's population count by its code.
fn population(group: &serde_json::Value, code: &str) -> i64 {
    group["population"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {group}"))["count"]
        .as_i64()
        .unwrap()
}

#[test]
fn fhir_measure_reports_carry_the_result_table_and_are_valid_r4() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = vec!["run", "--out", run.to_str().unwrap()];
    for m in ["FUH-HH", "IU-HH", "HH-FIRST"] {
        args.extend(["--measure", m]);
    }
    let o = hhq(&args, &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle_path = dir.path().join("fhir/reports.json");
    let o = hhq(
        &[
            "fhir",
            "--run",
            run.to_str().unwrap(),
            "--out",
            bundle_path.to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let reports: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let ids: Vec<&str> = reports
        .iter()
        .map(|r| r["measure"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let report = |id: &str| {
        *reports
            .iter()
            .find(|r| {
                r["measure"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("urn:hhq:measure:{id}|"))
            })
            .unwrap()
    };
    let group = |id: &str, component: &str| {
        report(id)["group"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["code"]["coding"][0]["code"] == component)
            .unwrap()
            .clone()
    };

    // FUH-HH's 7-day rate: the summary's total row, a percent, higher is better.
    let fuh = report("FUH-HH");
    assert_eq!(fuh["type"], "summary");
    assert_eq!(fuh["period"]["start"], "2025-01-01");
    assert_eq!(fuh["period"]["end"], "2025-12-31");
    assert_eq!(fuh["improvementNotation"]["coding"][0]["code"], "increase");
    let g = group("FUH-HH", "7_day");
    let (n, d, rate) = summary_total(&summary, "FUH-HH", "7_day");
    assert_eq!(population(&g, "numerator") as f64, n);
    assert_eq!(population(&g, "denominator") as f64, d);
    assert_eq!(g["measureScore"]["value"].as_f64().unwrap(), rate);
    assert_eq!(g["measureScore"]["code"], "%");
    // Every stratum of the summary, under its stratifier.
    for stratifier in g["stratifier"].as_array().unwrap() {
        let name = stratifier["code"][0]["text"].as_str().unwrap();
        let expected = rows_of(&summary)
            .into_iter()
            .filter(|r| r[0] == "FUH-HH" && r[1] == "7_day" && r[4] == name)
            .count();
        assert_eq!(
            stratifier["stratum"].as_array().unwrap().len(),
            expected,
            "{name}"
        );
    }
    // IU-HH: fewer stays is better; the average stay is total days over discharges, in days.
    assert_eq!(
        report("IU-HH")["improvementNotation"]["coding"][0]["code"],
        "decrease"
    );
    let alos = group("IU-HH", "total_alos");
    let (days, _, _) = summary_total(&summary, "IU-HH", "total_days");
    let (discharges, _, _) = summary_total(&summary, "IU-HH", "total_discharges");
    assert_eq!(population(&alos, "numerator") as f64, days);
    assert_eq!(population(&alos, "denominator") as f64, discharges);
    assert_eq!(alos["measureScore"]["code"], "d");
    assert!((alos["measureScore"]["value"].as_f64().unwrap() - days / discharges).abs() < 1e-9);

    // Valid FHIR R4, and the validator does refuse what is not.
    let validate = |path: &std::path::Path| {
        Command::new(root.join("scripts/fhir-validate"))
            .arg(path)
            .output()
            .expect("scripts/fhir-validate runs")
    };
    let o = validate(&bundle_path);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid FHIR R4, 3 MeasureReport(s)"));
    let mut broken = bundle.clone();
    broken["entry"][0]["resource"]["group"][0]["population"][0]["count"] = "many".into();
    let broken_path = dir.path().join("broken.json");
    std::fs::write(&broken_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(!validate(&broken_path).status.success());

    // One member's individual report counts their rows of the detail: counted here from the
    // detail's CSV, for a member with a 7-day follow-up.
    let detail = std::fs::read_to_string(run.join("detail/FUH-HH.csv")).unwrap();
    let header: Vec<&str> = detail.lines().next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = detail
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let member = rows
        .iter()
        .find(|r| r[at("in_denominator")] == "true" && r[at("7_day")] == "1")
        .expect("a member followed up within 7 days")[at("member_id")];
    let theirs: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| r[at("member_id")] == member)
        .collect();
    let counted: Vec<&&Vec<&str>> = theirs
        .iter()
        .filter(|r| r[at("in_denominator")] == "true" && !r[at("7_day")].is_empty())
        .collect();
    let followed: i64 = counted
        .iter()
        .map(|r| r[at("7_day")].parse::<i64>().unwrap())
        .sum();
    let excluded = theirs
        .iter()
        .filter(|r| !r[at("exclusion")].is_empty())
        .count();
    let one_path = dir.path().join("one.json");
    let o = hhq(
        &[
            "fhir",
            "--run",
            run.to_str().unwrap(),
            "--measure",
            "FUH-HH",
            "--member",
            member,
            "--out",
            one_path.to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let one: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&one_path).unwrap()).unwrap();
    let r = &one["entry"][0]["resource"];
    assert_eq!(r["type"], "individual");
    assert_eq!(r["subject"]["reference"], format!("Patient/{member}"));
    let g = r["group"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["code"]["text"] == "7_day")
        .unwrap();
    assert_eq!(population(g, "initial-population"), theirs.len() as i64);
    assert_eq!(population(g, "denominator-exclusion"), excluded as i64);
    assert_eq!(population(g, "denominator"), counted.len() as i64);
    assert_eq!(population(g, "numerator"), followed);
    assert!(followed >= 1);
    let o = validate(&one_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = hhq(
        &[
            "fhir",
            "--run",
            run.to_str().unwrap(),
            "--member",
            "NOBODY",
            "--out",
            "x.json",
        ],
        &root,
    );
    assert_eq!(o.status.code(), Some(2));

    // A measure the run does not hold, or no run at all, is a usage error.
    let o = hhq(
        &[
            "fhir",
            "--run",
            run.to_str().unwrap(),
            "--measure",
            "FUM-HH",
            "--out",
            "x.json",
        ],
        &root,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("FUM-HH"));
    let o = hhq(
        &[
            "fhir",
            "--run",
            dir.path().join("nothing").to_str().unwrap(),
        ],
        &root,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("summary.csv"));
}

/// `hhq import` with this mapping and source directory into `out`; its stderr, after asserting
/// it succeeded.
fn import(mapping: &str, from: &str, out: &Path) -> String {
    let o = hhq(
        &[
            "import",
            "--mapping",
            mapping,
            "--from",
            from,
            "--out",
            out.to_str().unwrap(),
        ],
        &common::root(),
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

/// `hhq sql` over a data directory, as CSV, after asserting it succeeded.
fn sql_csv(data: &Path, sql: &str) -> String {
    let o = hhq(
        &[
            "sql",
            sql,
            "--data",
            data.to_str().unwrap(),
            "--format",
            "csv",
        ],
        &common::root(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The rows of a Parquet file as text, via hhq's own reader of query results.
fn parquet_rows(path: &Path) -> Vec<Vec<Option<String>>> {
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    hhq::results::text_rows(&batches).unwrap().1
}

/// tests/import/flat/ holds, in the flat CSV layout, two members with four claim lines, two
/// contacts and four enrolment spans, and three planted problems: claim line 3 has claim type
/// `XX` (no such code in the mapping), claim line 4 a date in another format (`2025-04-01`), and
/// contact 2 mode `TXT`; `EXTRA_NOTE` is a column no mapping reads.
#[test]
fn import_maps_a_flat_layout_and_counts_what_it_cannot_translate() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stderr = import("mappings/flat-csv.yaml", "tests/import/flat", &data);
    assert!(
        stderr.contains("claims: 4 rows") && stderr.contains("enrollment: 4 rows"),
        "{stderr}"
    );
    // Counts on the terminal, never the values.
    assert!(
        !stderr.contains("TXT") && !stderr.contains("2025-04-01"),
        "{stderr}"
    );
    let report = std::fs::read_to_string(data.join("import_report.csv")).unwrap();
    assert_eq!(
        report,
        "extract,file,column,issue,rows,first_row,example\n\
         claims,claims.csv,EXTRA_NOTE,unread_column,0,0,\n\
         claims,claims.csv,claim_type,unmapped_value,1,3,XX\n\
         claims,claims.csv,service_from,invalid_value,1,4,2025-04-01\n\
         contacts,contacts.csv,mode,unmapped_value,1,2,TXT\n"
    );
    // The values translated and typed as the contract has them.
    let claims = parquet_rows(&data.join("claims.parquet"));
    assert_eq!(claims.len(), 4);
    let contract_index = |name: &str| {
        hhq::extract::contract::CLAIMS
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap()
    };
    let cell = |row: usize, name: &str| claims[row][contract_index(name)].clone();
    assert_eq!(cell(0, "claim_type").as_deref(), Some("inpatient"));
    assert_eq!(cell(0, "admission_date").as_deref(), Some("2025-03-01"));
    assert_eq!(cell(0, "paid_amount").as_deref(), Some("1200.5"));
    assert_eq!(cell(2, "claim_type"), None);
    assert_eq!(
        cell(2, "other_dx").as_deref(),
        Some("[Z590, I10, E119, J45909]")
    );
    assert_eq!(cell(1, "other_dx"), None);
    assert_eq!(cell(3, "service_from"), None);
    assert_eq!(cell(3, "days_supply").as_deref(), Some("30"));
    let members = parquet_rows(&data.join("members.parquet"));
    assert_eq!(members[0][1].as_deref(), Some("1980-01-15"));

    // The directory is one hhq reads: the line with no date of service is set aside by the
    // contract's row rules, counted, not lost.
    let count = |sql: &str| sql_csv(&data, sql).lines().nth(1).unwrap().to_string();
    assert_eq!(count("SELECT count(*) AS n FROM claims__all"), "4");
    assert_eq!(count("SELECT count(*) AS n FROM claims"), "2");

    // A mapping naming a column the contract lacks points at its line; a source column the
    // mapping names but the file lacks names both.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(root.join("mappings/flat-csv.yaml")).unwrap();
    std::fs::write(
        &bad,
        text.replace(
            "        claim_id: CLAIM_ID\n",
            "        claim_idd: CLAIM_ID\n",
        ),
    )
    .unwrap();
    let o = hhq(
        &[
            "import",
            "--mapping",
            bad.to_str().unwrap(),
            "--from",
            "tests/import/flat",
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        &root,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("claim_id: CLAIM_ID"))
        .unwrap()
        + 1;
    assert!(
        e.contains(&format!("bad.yaml:{line}:")) && e.contains("claim_idd"),
        "{e}"
    );
    std::fs::write(&bad, text.replace("LINE_NO", "LINE_NUMBER")).unwrap();
    let o = hhq(
        &[
            "import",
            "--mapping",
            bad.to_str().unwrap(),
            "--from",
            "tests/import/flat",
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        &root,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("claims.csv") && e.contains("LINE_NUMBER"), "{e}");
    assert!(
        !dir.path().join("x").exists(),
        "a failed import writes nothing"
    );
}

/// tests/import/taf/ holds the TAF-like files of two members: a replaced inpatient claim, a
/// long-term-care stay, an outpatient (facility) and a professional claim, a pharmacy fill,
/// TAF eligibility dates, and the state's Health Home spans and contacts. Planted: line 2 of the
/// professional file has adjustment code `9`, which TAF's mapping does not know. B1 is Hispanic
/// (TAF code 7: ethnicity known, race not) and dual (code 02).
#[test]
fn import_maps_a_taf_like_layout_from_several_files_per_extract() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stderr = import("mappings/taf-like.yaml", "tests/import/taf", &data);
    for expected in [
        "claims: 7 rows",
        "contacts: 1 rows",
        "members: 2 rows",
        "enrollment: 4 rows",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(data.join("import_report.csv")).unwrap(),
        "extract,file,column,issue,rows,first_row,example\n\
         claims,taf_ot_professional.csv,adjustment,unmapped_value,1,2,9\n"
    );
    let csv = |sql: &str| sql_csv(&data, sql);
    assert_eq!(
        csv(
            "SELECT claim_id, claim_type, adjustment, replaces_claim_id FROM claims__all ORDER BY claim_id, line_number"
        ),
        "claim_id,claim_type,adjustment,replaces_claim_id\n\
         IP1,inpatient,original,\n\
         IP1R,inpatient,replacement,IP1\n\
         LT1,long_term_care,original,\n\
         OT1,outpatient,original,\n\
         OT2,professional,original,\n\
         OT2,professional,,\n\
         RX1,pharmacy,original,\n"
    );
    // The replacement supersedes IP1; the line with no adjustment is set aside, counted.
    assert_eq!(
        csv(
            "SELECT claim_id, service_to, other_dx FROM claims_final WHERE claim_type = 'inpatient'"
        ),
        "claim_id,service_to,other_dx\nIP1R,2025-03-06,\"[F419, I10]\"\n"
    );
    assert_eq!(
        csv("SELECT member_id, race, ethnicity, dual_eligible, birth_date FROM members ORDER BY 1"),
        "member_id,race,ethnicity,dual_eligible,birth_date\n\
         A1,white,not_hispanic,false,1980-01-15\n\
         B1,,hispanic,true,1940-07-04\n"
    );
    assert_eq!(
        csv(
            "SELECT member_id, span_type, start_date, end_date, hhp_id FROM enrollment ORDER BY 1, 2, 3"
        ),
        "member_id,span_type,start_date,end_date,hhp_id\n\
         A1,health_home,2024-01-01,,HHP-1\n\
         A1,medicaid,2024-01-01,,\n\
         B1,health_home,2024-02-01,2025-12-31,HHP-2\n\
         B1,medicaid,2024-01-01,2025-12-31,\n"
    );
}

/// A Parquet source, typed (dates as dates), feeds an extract as a CSV does: its values read as
/// text (dates `YYYY-MM-DD`), translated as the mapping says. The Parquet file is written by
/// `hhq sql` itself.
#[test]
fn import_reads_parquet_sources() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    for f in ["claims.csv", "contacts.csv", "enrollment.csv"] {
        std::fs::copy(root.join("tests/import/flat").join(f), from.join(f)).unwrap();
    }
    let o = hhq(
        &[
            "sql",
            "SELECT 'A1' AS \"MEMBER_ID\", DATE '1980-01-15' AS \"DOB\", 'F' AS \"SEX\", \
             'N' AS \"DUAL\" UNION ALL SELECT 'B1', DATE '1990-07-04', 'X', 'Y' ORDER BY 1",
            "--format",
            "parquet",
            "--out",
            from.join("members.parquet").to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(root.join("mappings/flat-csv.yaml")).unwrap();
    let members_at = text.find("  members:\n").unwrap();
    let enrollment_at = text.find("  enrollment:\n").unwrap();
    let mapping = format!(
        "{}  members:\n    - file: members.parquet\n      date_format: \"%Y-%m-%d\"\n      columns:\n        member_id: MEMBER_ID\n        birth_date: DOB\n        sex: SEX\n        dual_eligible: DUAL\n{}",
        &text[..members_at],
        &text[enrollment_at..]
    );
    let mapping_path = dir.path().join("mixed.yaml");
    std::fs::write(&mapping_path, mapping).unwrap();
    let data = dir.path().join("data");
    import(
        mapping_path.to_str().unwrap(),
        from.to_str().unwrap(),
        &data,
    );
    let report = std::fs::read_to_string(data.join("import_report.csv")).unwrap();
    assert!(
        report.contains("members,members.parquet,sex,invalid_value,1,2,X\n"),
        "{report}"
    );
    assert_eq!(
        sql_csv(
            &data,
            "SELECT member_id, birth_date, sex, dual_eligible FROM members__all ORDER BY 1"
        ),
        "member_id,birth_date,sex,dual_eligible\nA1,1980-01-15,F,false\nB1,1990-07-04,,true\n"
    );
}

#[test]
fn an_unknown_measure_id_gets_the_nearest_ids() {
    let root = common::root();
    for (args, want) in [
        (&["run", "--measure", "FUHH"][..], "did you mean `FUH-HH`?"),
        (
            &["compile", "hh-engage", "--period", "2025"][..],
            "did you mean `HH-ENGAGE`?",
        ),
        (
            &["explain", "PCR", "--member", "M1"][..],
            "did you mean `PCR-HH`?",
        ),
        (&["run", "--measure", "XYZ"][..], "it has AIF-HH, AMB-HH"),
    ] {
        let o = hhq(args, &root);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn hhq_test_prints_failures_and_a_tally_and_runs_one_measure_when_asked() {
    let root = common::root();
    let o = hhq(&["test", "--measure", "hh-tcc"], &root);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Only HH-TCC's deck ran; passing cases are counted, not listed.
    let tally: Vec<&str> = stdout.lines().filter(|l| l.contains(" passed")).collect();
    assert_eq!(tally.len(), 2, "{stdout}");
    assert!(
        tally[0].starts_with("HH-TCC  ") && !tally[0].contains("FAILED"),
        "{stdout}"
    );
    assert!(tally[1].ends_with(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("┆ pass "), "{stdout}");
    let cases: usize = tally[1].split(' ').next().unwrap().parse().unwrap();
    assert!(cases > 10, "{stdout}");

    // --verbose lists every case.
    let o = hhq(&["test", "--measure", "HH-TCC", "--verbose"], &root);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("┆ pass ").count(), cases, "{stdout}");

    // An unknown measure is a usage error with the nearest ids.
    let o = hhq(&["test", "--measure", "HHTCC"], &root);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HH-TCC"), "{stderr}");
}

#[test]
fn hhq_run_prints_totals_by_default_and_every_row_as_csv_or_json_when_asked() {
    let root = common::root();
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let dir = out.path().join("run");
        let mut args = vec!["run", "--measure", "FUH-HH", "--out", dir.to_str().unwrap()];
        args.extend(extra);
        let o = hhq(&args, &root);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr,
            summary,
        )
    };
    // The default: a line per component's total, whatever stdout is.
    let (stdout, stderr, summary) = run(&[]);
    let components = rows_of(&summary).iter().filter(|r| r[4] == "total").count();
    assert_eq!(components, 2, "{summary}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("│ FUH-HH")).count(),
        2,
        "{stdout}"
    );
    assert!(stderr.contains("wrote "), "{stderr}");
    // csv: summary.csv itself.
    let (stdout, _, summary) = run(&["--format", "csv"]);
    assert_eq!(stdout, summary);
    // json: every row, the same figures.
    let (stdout, _, summary) = run(&["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), rows_of(&summary).len());
    let first = &rows_of(&summary)[0];
    assert_eq!(rows[0]["measure"], first[0].as_str());
    assert_eq!(
        rows[0]["denominator"].as_f64(),
        first[7].parse::<f64>().ok()
    );
    // --quiet: nothing on stdout, no notes on stderr; the outputs are written.
    let (stdout, stderr, summary) = run(&["--quiet"]);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        !stderr.contains("wrote ") && !stderr.contains("period "),
        "{stderr}"
    );
    assert!(!summary.is_empty());
}

#[test]
fn report_audiences_are_named_as_in_the_other_commands() {
    let root = common::root();
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    // `--mco ID` is `mco ID`: the same check of the id against the extracts.
    for args in [
        &["report", "--mco", "NOPE", "--no-pdf", "--out", o][..],
        &["report", "mco", "NOPE", "--no-pdf", "--out", o][..],
    ] {
        let r = hhq(args, &root);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no MCO `NOPE` in the enrollment extract; known: MCO-A, MCO-B, MCO-C"),
            "{args:?}: {stderr}"
        );
    }
    let r = hhq(&["report", "--hhp", "NOPE", "--no-pdf", "--out", o], &root);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no partner `NOPE`") || stderr.contains("`NOPE`"),
        "{stderr}"
    );
    // Both at once, or an id for the state, are usage errors before anything is read.
    for args in [
        &["report", "state", "--hhp", "HHP-01"][..],
        &["report", "--mco", "MCO-A", "--hhp", "HHP-01"][..],
        &["report", "state", "MCO-A"][..],
        &["report", "mco"][..],
    ] {
        let r = hhq(args, &root);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}
