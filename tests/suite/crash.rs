//! No input crashes hhq (issue 33): the inputs hostile testing found to abort or panic, each run
//! through the binary where a stack overflow would show (exit code 134, no message), and each
//! answered by an error naming the file and its line and column, or by the row set aside. What
//! hhq does in each case is in docs/hostile-input.md; the limits are `hhq::compile::depth`'s and
//! `hhq::extract::rules`'s.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Date32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{Field, Schema};

/// Run hhq in the repository; its exit code (never the abort of a stack overflow) and stderr
/// (after stdout, where `hhq check` lists the problems).
fn hhq(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("hhq runs");
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // A stack overflow aborts (SIGABRT): no exit code at all.
    let code = o
        .status
        .code()
        .unwrap_or_else(|| panic!("hhq {:?} was killed: {:?}\n{stderr}", &args[..1], o.status));
    (code, stderr)
}

const AMB_WHERE: &str = "NOT led_to_admission AND NOT mental_health AND NOT chemical_dependency";

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- Depth: measures' and cohorts' `where:` ----------------------------------------------------

#[test]
fn a_where_of_2000_added_terms_or_ors_is_refused_by_check_and_run_at_its_place() {
    for filter in [
        format!("{} > 0", chain("1", " + ", 2_000)),
        chain("NOT led_to_admission", " OR ", 2_000),
    ] {
        let m = common::measures_with("amb-hh.yaml", AMB_WHERE, &filter);
        // The line of the `where:` in the shipped file, found rather than written down.
        let text = std::fs::read_to_string(m.path().join("amb-hh.yaml")).unwrap();
        let line = 1 + text
            .lines()
            .position(|l| l.contains(&filter))
            .expect("the filter's line");
        let want = format!(
            "{}/amb-hh.yaml:{line}:14: the `where` expression of `ed_visits`: the SQL nests \
             deeper than 100 levels",
            m.path().display()
        );
        let (code, err) = hhq(&["check", "--measures", s(m.path())]);
        assert!(code == 1 && err.contains(&want), "{code}\n{err}");
        let out = tempfile::tempdir().unwrap();
        let (code, err) = hhq(&[
            "run",
            "--measures",
            s(m.path()),
            "--measure",
            "AMB-HH",
            "--out",
            s(out.path()),
        ]);
        assert!(code == 1 && err.contains(&want), "{code}\n{err}");
    }
}

#[test]
fn a_where_at_the_depth_limit_checks_and_runs() {
    // 100 levels: the `OR` chain of 99 terms, each `NOT x` two deep. On a 2 MiB stack (in a
    // debug build) the same filter still ran at 200 terms and overflowed at 300.
    let m = common::measures_with(
        "amb-hh.yaml",
        AMB_WHERE,
        &chain("NOT led_to_admission", " OR ", 99),
    );
    let (code, err) = hhq(&["check", "--measures", s(m.path())]);
    assert_eq!(code, 0, "{err}");
    let out = tempfile::tempdir().unwrap();
    let (code, err) = hhq(&[
        "run",
        "--measures",
        s(m.path()),
        "--measure",
        "AMB-HH",
        "--out",
        s(out.path()),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_cohort_where_of_2000_ors_is_refused_at_its_place() {
    let m = common::measures_with(
        "cohorts/cc.yaml",
        "where: in_value_set(dx, 'mental_illness_dx')",
        &format!("where: {}", chain("dx = 'F200'", " OR ", 2_000)),
    );
    let (code, err) = hhq(&["check", "--measures", s(m.path())]);
    let want = format!(
        "{}/cohorts/cc.yaml:31:12: the `where` expression of `claim_diagnoses`: the SQL nests \
         deeper than 100 levels",
        m.path().display()
    );
    assert!(code == 1 && err.contains(&want), "{code}\n{err}");
}

// ---- Depth: ad hoc queries --------------------------------------------------------------------

#[test]
fn a_query_file_of_20000_ors_is_refused_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.sql");
    std::fs::write(
        &file,
        format!(
            "-- every member, 20,000 times over\nSELECT count(*) AS n\nFROM (SELECT member_id IS NOT NULL AS x FROM members) m\nWHERE {}\n",
            chain("x", " OR ", 20_000)
        ),
    )
    .unwrap();
    let (code, err) = hhq(&["query", s(&file)]);
    assert_eq!(
        (code, err.lines().next().unwrap_or_default()),
        (
            2,
            format!(
                "error: {}:4:7: the SQL nests deeper than 100 levels (an expression, query, \
                 chain of operators, `UNION`s or joins)",
                file.display()
            )
            .as_str()
        ),
        "{err}"
    );
}

#[test]
fn inline_sql_of_20000_ors_or_2000_sums_is_refused_at_its_column() {
    let ors = format!(
        "SELECT 1 AS n FROM (SELECT true AS x) t WHERE {}",
        chain("x", " OR ", 20_000)
    );
    let sums = format!("SELECT {} AS n", chain("1", "+", 2_000));
    for (sql, column) in [(ors, 47), (sums, 8)] {
        let (code, err) = hhq(&["sql", &sql]);
        assert!(
            code == 2
                && err.starts_with(&format!(
                    "error: query:1:{column}: the SQL nests deeper than 100 levels"
                )),
            "{code}\n{err}"
        );
    }
}

#[test]
fn a_query_that_stops_parsing_after_a_deep_chain_is_a_parse_error() {
    // sqlparser drops the 50,000-level tree it built before the `)` (recursively): on the
    // parse thread's stack, not the main thread's.
    let sql = format!("SELECT {}+)", chain("1", "+", 50_000));
    let (code, err) = hhq(&["sql", &sql]);
    assert!(
        code == 2 && err.starts_with("error: query:1:") && err.contains(": syntax error: expected"),
        "{code}\n{err}"
    );
}

#[test]
fn a_query_file_over_256_kib_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.sql");
    std::fs::write(&file, format!("SELECT {} AS n", chain("1", "+", 200_000))).unwrap();
    let (code, err) = hhq(&["query", s(&file)]);
    assert!(
        code == 2
            && err.starts_with(&format!(
                "error: {}:1:1: the query is 400011 bytes; an ad hoc query may be at most 262144 \
                 bytes",
                file.display()
            )),
        "{code}\n{err}"
    );
}

// ---- Depth: building blocks -------------------------------------------------------------------

/// The shipped blocks plus `evil.sql`, checked with the shipped measures.
fn check_with_block(sql: &str) -> (i32, String, tempfile::TempDir) {
    let q = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(common::root().join("queries")).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, q.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(q.path().join("evil.sql"), sql).unwrap();
    let (code, err) = hhq(&["check", "--queries", s(q.path())]);
    (code, err, q)
}

#[test]
fn a_block_of_2000_ors_or_5000_unions_is_refused_at_its_place() {
    let (code, err, q) = check_with_block(&format!(
        "-- deep\nSELECT member_id\nFROM claims WHERE {}\n",
        chain("member_id = 'a'", " OR ", 2_000)
    ));
    let want = format!(
        "{}/evil.sql:3:19: the SQL nests deeper than 100 levels",
        q.path().display()
    );
    assert!(code == 1 && err.contains(&want), "{code}\n{err}");

    let (code, err, q) =
        check_with_block(&chain("SELECT member_id FROM claims", "\nUNION ", 5_000));
    let want = format!(
        "{}/evil.sql:1:1: the SQL nests deeper than 100 levels",
        q.path().display()
    );
    assert!(code == 1 && err.contains(&want), "{code}\n{err}");
}

// ---- Dates at the ends of what Parquet's int32 dates hold --------------------------------------

/// Append to the extract `name` of `dir` a copy of its first row with id column `id` set to
/// `value` and every column of `dates` set to day `day` (days since 1970-01-01).
fn add_dated_row(dir: &Path, name: &str, id: (&str, &str), dates: &[&str], day: i32) {
    let path = dir.join(format!("{name}.parquet"));
    let all = common::read_parquet(&path);
    let row = all.slice(0, 1);
    let schema = row.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(row.columns())
        .map(|(f, c)| {
            if f.name() == id.0 {
                cast(&StringArray::from(vec![id.1]), f.data_type()).unwrap()
            } else if dates.contains(&f.name().as_str()) {
                Arc::new(Date32Array::from(vec![day])) as ArrayRef
            } else {
                c.clone()
            }
        })
        .collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let widen = |b: &RecordBatch| RecordBatch::try_new(schema.clone(), b.columns().to_vec());
    let row = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let joined = concat_batches(&schema, &[widen(&all).unwrap(), row]).unwrap();
    assert!(joined.column(0).len() == all.num_rows() + 1);
    hhq::extract::csv::write_parquet(&path, &joined).unwrap();
}

/// The shipped test data with claims and contacts dated int32's maximum and minimum and day
/// 100,000,000 (the year 275,760, past chrono's range), and a member and a span at int32's end.
fn testdata_with_extreme_dates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::root().join("testdata"), dir.path());
    let d = dir.path();
    let both = &["service_from", "service_to"][..];
    add_dated_row(d, "claims", ("claim_id", "X-MAX"), both, i32::MAX);
    add_dated_row(d, "claims", ("claim_id", "X-FAR"), both, 100_000_000);
    add_dated_row(
        d,
        "claims",
        ("claim_id", "X-MIN"),
        &["service_from"],
        i32::MIN,
    );
    add_dated_row(
        d,
        "contacts",
        ("contact_id", "X-MAX"),
        &["contact_date"],
        i32::MAX,
    );
    add_dated_row(
        d,
        "contacts",
        ("contact_id", "X-FAR"),
        &["contact_date"],
        100_000_000,
    );
    // A member born on int32's last day, and a span starting then (the examples of the rows set
    // aside name a span by its start date).
    add_dated_row(
        d,
        "members",
        ("member_id", "X-MAX"),
        &["birth_date"],
        i32::MAX,
    );
    add_dated_row(
        d,
        "enrollment",
        ("member_id", "X-MAX"),
        &["start_date"],
        i32::MAX,
    );
    // One member in 301 is more than the 0.1% a refusing policy allows: publish under a caveat.
    std::fs::write(d.join("policy.yaml"), "on_failure: caveat\nchecks: {}\n").unwrap();
    dir
}

#[test]
fn claims_and_contacts_dated_int32_max_or_day_100_million_are_set_aside_in_a_run() {
    let data = testdata_with_extreme_dates();
    let out = tempfile::tempdir().unwrap();
    // No --period: the period is chosen from the last date of the data, over the usable rows.
    let (code, err) = hhq(&[
        "run",
        "--data",
        s(data.path()),
        "--quality-policy",
        s(&data.path().join("policy.yaml")),
        "--measure",
        "FUH-HH",
        "--measure",
        "HH-ENGAGE",
        "--out",
        s(out.path()),
    ]);
    assert!(
        code == 0 && err.contains("period 2025-01-01..2025-12-31"),
        "{code}\n{err}"
    );
    let quality = std::fs::read_to_string(out.path().join("data_quality.csv")).unwrap();
    for (extract, n) in [
        ("claims", 3),
        ("contacts", 2),
        ("members", 1),
        ("enrollment", 1),
    ] {
        assert!(
            quality.contains(&format!(
                "{extract},set_aside,{n},{extract}.date_out_of_range\n"
            )),
            "{quality}"
        );
    }
}

#[test]
fn a_report_over_claims_and_contacts_dated_int32_max_is_made() {
    // A partner's report: the follow-up curve and worklist take differences and sums of dates.
    let data = testdata_with_extreme_dates();
    let out = tempfile::tempdir().unwrap();
    let (code, err) = hhq(&[
        "report",
        "hhp",
        "HHP-05",
        "--no-pdf",
        "--data",
        s(data.path()),
        "--quality-policy",
        s(&data.path().join("policy.yaml")),
        "--measure",
        "FUH-HH",
        "--out",
        s(out.path()),
    ]);
    assert_eq!(code, 0, "{err}");
}
