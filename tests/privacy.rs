//! `hhq run --hhp/--mco` keeps member-level outputs to one audience; `--pseudonymize` replaces
//! member ids with keyed pseudonyms whose key appears in no output.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn hhq(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hhq"));
    c.args(args).current_dir(common::root());
    c.env_remove("HHQ_PSEUDONYM_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hhq")
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    common::read_csv(&std::fs::read(path).unwrap())
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn a_partner_run_holds_its_members_and_aggregate_benchmarks_only() {
    let dir = tempfile::tempdir().unwrap();
    let (all, own) = (dir.path().join("all"), dir.path().join("own"));
    let measures = ["--measure", "HH-TCC", "--measure", "HH-ENGAGE"];
    let mut args = vec!["run", "--out", all.to_str().unwrap()];
    args.extend(measures);
    ok(&hhq(&args, &[]));
    let mut args = vec!["run", "--hhp", "HHP-05", "--out", own.to_str().unwrap()];
    args.extend(measures);
    ok(&hhq(&args, &[]));

    for id in ["HH-TCC", "HH-ENGAGE"] {
        let (h, rows) = csv_rows(&own.join(format!("detail/{id}.csv")));
        assert!(!rows.is_empty(), "{id}: HHP-05 has units");
        let hhp = column(&h, "hhp");
        assert!(
            rows.iter().all(|r| r[hhp] == "HHP-05"),
            "{id}: another partner's unit in HHP-05's detail"
        );
    }
    // The partner's totals are the whole run's HHP-05 stratum, figure for figure.
    let key = |r: &[String], h: &[String]| {
        (
            r[column(h, "measure")].clone(),
            r[column(h, "component")].clone(),
        )
    };
    let figures = |r: &[String], h: &[String]| {
        (
            r[column(h, "numerator")].clone(),
            r[column(h, "denominator")].clone(),
        )
    };
    let (ha, whole) = csv_rows(&all.join("summary.csv"));
    let stratum: BTreeMap<_, _> = whole
        .iter()
        .filter(|r| r[column(&ha, "stratum")] == "HHP-05")
        .map(|r| (key(r, &ha), figures(r, &ha)))
        .collect();
    let (ho, mine) = csv_rows(&own.join("summary.csv"));
    let totals: BTreeMap<_, _> = mine
        .iter()
        .filter(|r| r[column(&ho, "stratifier")] == "total")
        .map(|r| (key(r, &ho), figures(r, &ho)))
        .collect();
    assert!(!totals.is_empty());
    assert_eq!(totals, stratum);
    // No other partner appears as a stratum of its own results.
    let strata = column(&ho, "stratum");
    assert!(
        mine.iter()
            .all(|r| !r[strata].starts_with("HHP-") || r[strata] == "HHP-05")
    );
    // Benchmarks: the state's total and MCO rows, aggregates only.
    let (hb, bench) = csv_rows(&own.join("benchmarks.csv"));
    let s = column(&hb, "stratifier");
    assert!(!bench.is_empty());
    assert!(bench.iter().all(|r| r[s] == "total" || r[s] == "mco"));
}

#[test]
fn pseudonyms_replace_member_ids_and_the_key_is_written_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let key = "a-key-of-at-least-sixteen-bytes-7f3c";
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (plain, masked) = (dir.path().join("plain"), dir.path().join("masked"));
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--out",
            plain.to_str().unwrap(),
        ],
        &[],
    ));
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--key-file",
            key_file.to_str().unwrap(),
            "--out",
            masked.to_str().unwrap(),
        ],
        &[],
    ));
    let (h, rows) = csv_rows(&plain.join("detail/HH-TCC.csv"));
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r[column(&h, "member_id")].clone())
        .collect();
    let (h, rows) = csv_rows(&masked.join("detail/HH-TCC.csv"));
    let pseudonyms: BTreeSet<String> = rows
        .iter()
        .map(|r| r[column(&h, "member_id")].clone())
        .collect();
    assert_eq!(ids.len(), pseudonyms.len(), "one pseudonym per member");
    assert!(
        pseudonyms
            .iter()
            .all(|p| p.starts_with('P') && p.len() == 21)
    );

    // Neither a member id nor the key is in any file written.
    let mut stack = vec![masked.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(key), "{} holds the key", p.display());
            if let Some(id) = ids.iter().find(|id| text.contains(id.as_str())) {
                panic!("{} holds the member id {id}", p.display());
            }
        }
    }

    // The same key from the environment gives the same pseudonyms; another key others.
    let env_run = dir.path().join("env");
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--out",
            env_run.to_str().unwrap(),
        ],
        &[("HHQ_PSEUDONYM_KEY", key)],
    ));
    assert_eq!(
        std::fs::read(env_run.join("detail/HH-TCC.csv")).unwrap(),
        std::fs::read(masked.join("detail/HH-TCC.csv")).unwrap()
    );
    let other = dir.path().join("other");
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--out",
            other.to_str().unwrap(),
        ],
        &[("HHQ_PSEUDONYM_KEY", "another-key-of-sixteen-bytes-or-more")],
    ));
    assert_ne!(
        std::fs::read(other.join("detail/HH-TCC.csv")).unwrap(),
        std::fs::read(masked.join("detail/HH-TCC.csv")).unwrap()
    );

    // No key: a usage error, nothing written.
    let none = dir.path().join("none");
    let o = hhq(
        &["run", "--pseudonymize", "--out", none.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HHQ_PSEUDONYM_KEY"));
    assert!(!none.exists());
}
