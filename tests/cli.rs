//! The `hhq` binary end to end: the main job on the committed test data, reproducibility, the
//! committed data being exactly what the generator writes, and the contract documentation being
//! the contract the code enforces.

mod common;

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
    let (first, second) = (all_files(out.path()), all_files(again.path()));
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

/// Every file under `dir`, by path relative to it.
fn all_files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                all.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    all
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
            "300",
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
            "testdata/{name} is not what `hhq synth --members 300 --seed 42 --start-year 2023 --years 3` writes: regenerate it"
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
