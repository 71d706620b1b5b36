//! `hhq compile --sql --extracts`: a script DuckDB runs unchanged, giving `hhq run`'s summary.
//! Run with DuckDB's Python package (`scripts/duckdb`, which makes its environment from PyPI on
//! first use), from a directory that is not the repository.

use std::path::Path;
use std::process::Command;

use crate::common;

fn hhq(args: &[&str], cwd: &Path) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(cwd)
        .env("HHQ_PROJECT", "")
        .output()
        .expect("hhq runs");
    assert!(
        o.status.success(),
        "hhq {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The CSV rows of the script's last statement, run by DuckDB.
fn duckdb(script: &Path) -> Vec<Vec<String>> {
    let o = Command::new(common::root().join("scripts/duckdb"))
        .arg(script)
        .current_dir(script.parent().unwrap())
        .output()
        .expect("scripts/duckdb runs");
    assert!(
        o.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    rows(&String::from_utf8(o.stdout).unwrap())
}

fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes());
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// A summary row's fields with numbers compared as numbers (`17` and `17.0` are one).
fn same(duck: &[String], ours: &[String]) -> bool {
    duck.len() == ours.len()
        && duck.iter().zip(ours).all(|(a, b)| {
            a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
        })
}

fn compile(measure: &str, data: &Path, cwd: &Path, extra: &[&str]) -> String {
    // `--sql` is the default, and says nothing beside `--detail`.
    let mut args = vec!["compile", measure];
    if !extra.contains(&"--detail") {
        args.push("--sql");
    }
    args.extend(["--extracts", "--data"]);
    args.push(data.to_str().unwrap());
    args.extend_from_slice(extra);
    String::from_utf8(hhq(&args, cwd).stdout).unwrap()
}

#[test]
fn every_measures_script_runs_in_duckdb_and_gives_the_summary_of_hhq_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::root().join("testdata");
    let run = dir.path().join("run");
    hhq(
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ],
        dir.path(),
    );
    let summary = rows(&std::fs::read_to_string(run.join("summary.csv")).unwrap());
    let measures: std::collections::BTreeSet<&str> =
        summary[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(measures.len(), 11, "{measures:?}");
    for m in measures {
        let script = compile(m, &data, dir.path(), &[]);
        // Self-contained: hhq's functions are defined in it, the extracts named by path.
        assert!(script.contains("CREATE OR REPLACE TEMP VIEW claims__all"));
        let path = dir.path().join(format!("{m}.sql"));
        std::fs::write(&path, &script).unwrap();
        let got = duckdb(&path);
        let want: Vec<&Vec<String>> = summary.iter().filter(|r| r[0] == m).collect();
        assert_eq!(got[0], summary[0], "{m}: the header of summary.csv");
        assert_eq!(got.len() - 1, want.len(), "{m}: rows");
        for (g, w) in got[1..].iter().zip(&want) {
            assert!(same(g, w), "{m}: DuckDB gives {g:?}, hhq run {w:?}");
        }
    }

    // With --detail, the script's rows are the member-level detail hhq run writes.
    let script = compile("FUH-HH", &data, dir.path(), &["--detail"]);
    let path = dir.path().join("FUH-HH-detail.sql");
    std::fs::write(&path, &script).unwrap();
    let got = duckdb(&path);
    let detail = rows(&std::fs::read_to_string(run.join("detail/FUH-HH.csv")).unwrap());
    assert_eq!(got[0], detail[0]);
    assert_eq!(got.len(), detail.len());
    for (g, w) in got[1..].iter().zip(&detail[1..]) {
        // The detail CSV writes true/false and dates as hhq does; DuckDB's Python gives
        // True/False.
        let g: Vec<String> = g
            .iter()
            .map(|v| match v.as_str() {
                "True" => "true".into(),
                "False" => "false".into(),
                _ => v.clone(),
            })
            .collect();
        assert!(same(&g, w), "FUH-HH detail: DuckDB gives {g:?}, hhq {w:?}");
    }
}

/// hhq's two graph and list functions, as the script's macros, on the cases at their edges:
/// replacement loops (the standing version of each) and episodes (a date exactly `days` after
/// the counted one starts another; a day less joins it).
#[test]
fn the_scripts_loop_and_episode_functions_agree_with_hhqs() {
    let data = common::data_dir(
        &format!(
            "{}M2,E1,1,outpatient,original,,2024-01-01,2024-01-01\n\
             M2,E2,1,outpatient,original,,2026-06-30,2026-06-30\n",
            common::LOOP_CLAIMS
        ),
        "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n",
        "member_id,birth_date,sex,dual_eligible\nM1,1990-06-01,F,false\n",
        "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
         M1,medicaid,2024-01-01,,MCO-A,,,\n",
    );
    let dir = tempfile::tempdir().unwrap();
    // M2's claims make the data cover 2025's look-backs and follow-up (else no script).
    // FUM-HH calls both: its blocks read claims_final, and it counts one visit per episode.
    let mut script = compile("FUM-HH", data.path(), dir.path(), &["--period", "2025"]);
    assert!(script.contains("CREATE OR REPLACE TEMP MACRO hhq_loop_standing"));
    assert!(script.contains("CREATE OR REPLACE TEMP MACRO hhq_episode_starts"));

    // The claims that stand: as hhq's own test of claims_final (quality.rs) has them.
    let path = dir.path().join("loops.sql");
    std::fs::write(
        &path,
        format!("{script}\nSELECT DISTINCT claim_id FROM claims_final ORDER BY claim_id;\n"),
    )
    .unwrap();
    let got: Vec<String> = duckdb(&path)[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(got, ["E1", "E2", "L2", "M3", "N2", "O3", "S1"]);

    // Episodes: lists of day numbers in any order, with repeats, at and either side of `days`.
    let cases: &[(&[i32], i32)] = &[
        (&[20_000, 20_031, 20_030, 20_061, 20_062], 31),
        (
            &[20_010, 20_000, 20_000, 20_013, 20_014, 20_027, 20_028],
            14,
        ),
        (&[20_000], 1),
        (&[20_001, 20_000, 20_002], 1),
        (&[20_000, 20_005, 20_100], 200),
        (&[], 31),
    ];
    let day = |d: i32| {
        (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(d as u64))
            .to_string()
    };
    let selects: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (dates, days))| {
            let list: Vec<String> = dates.iter().map(|&d| format!("DATE '{}'", day(d))).collect();
            format!(
                "SELECT {i} AS k, array_to_string(hhq_episode_starts(CAST([{}] AS DATE[]), {days}), ' ') AS starts",
                list.join(", ")
            )
        })
        .collect();
    script.push_str(&format!("\n{} ORDER BY k;\n", selects.join("\nUNION ALL ")));
    let path = dir.path().join("episodes.sql");
    std::fs::write(&path, &script).unwrap();
    let got = duckdb(&path);
    for (i, (dates, days)) in cases.iter().enumerate() {
        let want: Vec<String> = hhq::functions::calendar::episode_starts(dates, *days)
            .into_iter()
            .map(day)
            .collect();
        assert_eq!(
            got[i + 1][1],
            want.join(" "),
            "case {i}: {dates:?}, {days} days"
        );
    }
}
