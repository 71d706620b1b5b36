//! `hhq run` replaces its output directory whole: a rerun leaves no file of the previous one, a
//! failed run leaves the previous outputs byte for byte, and a run killed at any moment leaves
//! either the old or the new outputs, each matching its manifest.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn hhq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("hhq runs")
}

fn run_ok(out: &Path, args: &[&str]) {
    let mut all = vec!["run", "--out", out.to_str().unwrap()];
    all.extend(args);
    let o = hhq(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The directory is one run's outputs: exactly the files its manifest lists, each with the hash
/// listed.
fn assert_whole(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let all = common::files(dir);
    let manifest: serde_json::Value = serde_json::from_slice(
        all.get(Path::new("manifest.json"))
            .unwrap_or_else(|| panic!("no manifest.json in {}: {:?}", dir.display(), all.keys())),
    )
    .unwrap();
    let listed: BTreeMap<PathBuf, String> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                PathBuf::from(o["file"].as_str().unwrap()),
                o["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let present: Vec<&PathBuf> = all
        .keys()
        .filter(|p| *p != Path::new("manifest.json"))
        .collect();
    assert_eq!(
        present,
        listed.keys().collect::<Vec<_>>(),
        "the files are not those the manifest lists"
    );
    for (p, sha) in &listed {
        assert_eq!(*sha, hhq::digest::sha256(&all[p]), "{}", p.display());
    }
    all
}

/// Names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `--detail-csv never` writes a measure's detail as Parquet only; by default (`auto`) a detail a
/// spreadsheet opens is written as CSV too. The manifest lists exactly what was written.
#[test]
fn the_detail_is_written_as_csv_when_a_spreadsheet_opens_it_or_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_ok(&out, &["--measure", "AMB-HH", "--detail-csv", "never"]);
    let written = assert_whole(&out);
    assert!(written.contains_key(Path::new("detail/AMB-HH.parquet")));
    assert!(!written.contains_key(Path::new("detail/AMB-HH.csv")));
    run_ok(&out, &["--measure", "AMB-HH"]);
    let written = assert_whole(&out);
    assert!(written.contains_key(Path::new("detail/AMB-HH.csv")));
}

#[test]
fn a_rerun_replaces_the_directory_and_a_failed_run_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    run_ok(
        &out,
        &[
            "--measure",
            "AMB-HH",
            "--measure",
            "HH-ENGAGE",
            "--hhp",
            "HHP-05",
        ],
    );
    let first = assert_whole(&out);
    for f in [
        "benchmarks.csv",
        "detail/HH-ENGAGE.csv",
        "detail/AMB-HH.csv",
    ] {
        assert!(first.contains_key(Path::new(f)), "no {f}");
    }

    // Fewer measures and no audience: the detail of the measure not run and the benchmarks of
    // the earlier audience are gone.
    run_ok(&out, &["--measure", "AMB-HH"]);
    let second = assert_whole(&out);
    for f in [
        "benchmarks.csv",
        "detail/HH-ENGAGE.csv",
        "detail/HH-ENGAGE.parquet",
    ] {
        assert!(!second.contains_key(Path::new(f)), "{f} lingers");
    }
    assert!(second.contains_key(Path::new("detail/AMB-HH.parquet")));

    // A measure that fails mid-run (it plans, then a cast fails on the data), after another
    // measure has run: nothing changes.
    let broken = dir.path().join("measures");
    common::copy_dir(&common::root().join("measures"), &broken);
    let yaml = std::fs::read_to_string(broken.join("amb-hh.yaml")).unwrap();
    let bad = yaml.replace(
        "where: NOT led_to_admission AND NOT mental_health",
        "where: NOT led_to_admission AND CAST(claim_id AS INT) > 0 AND NOT mental_health",
    );
    assert_ne!(yaml, bad);
    std::fs::write(broken.join("amb-hh.yaml"), bad).unwrap();
    let failed = hhq(&["run", "--out", o, "--measures", broken.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Cast error"), "{stderr}");
    assert!(
        common::files(&out) == second,
        "a failed run changed the outputs"
    );
    assert_eq!(
        entries(dir.path()),
        ["measures", "out"],
        "a staging dir is left"
    );

    // An unknown measure is a usage error, before anything is computed.
    let failed = hhq(&["run", "--out", o, "--measure", "NOPE"]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(common::files(&out) == second);

    // A directory hhq did not write is refused and left alone.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let refused = hhq(&["run", "--out", mine.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not an hhq run directory"), "{stderr}");
    assert_eq!(entries(&mine), ["notes.txt"]);

    // A report written inside the run's directory survives the next run.
    let report = out.join("report-state");
    let o2 = hhq(&[
        "report",
        "state",
        "--measure",
        "AMB-HH",
        "--no-pdf",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let report_files = common::files(&report);
    run_ok(&out, &["--measure", "AMB-HH"]);
    assert!(
        common::files(&report) == report_files,
        "the report was not kept"
    );
}

#[test]
fn a_run_killed_at_any_moment_leaves_the_old_or_the_new_outputs_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Computed every time (the kills spread over a run's time), not read from the run cache.
    let new_args = [
        "--measure",
        "AIF-HH",
        "--measure",
        "HH-ENGAGE",
        "--measure",
        "FUH-HH",
        "--no-cache",
    ];
    // The new outputs, written elsewhere; the time this takes spreads the kills over a run
    // (it chooses when to kill, nothing asserts on it).
    let probe = dir.path().join("probe");
    let started = Instant::now();
    run_ok(&probe, &new_args);
    let took = started.elapsed();
    let new = assert_whole(&probe);

    let mut old = BTreeMap::new();
    let mut seen = (0, 0);
    for fraction in [0.2, 0.5, 0.8, 0.9, 0.95, 1.0, 1.1] {
        if old.is_empty() || common::files(&out) != old {
            run_ok(&out, &["--measure", "AMB-HH"]);
            old = assert_whole(&out);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_hhq"))
            .args(["run", "--out", out.to_str().unwrap()])
            .args(new_args)
            .current_dir(common::root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took.mul_f64(fraction));
        // SIGKILL: no clean-up runs.
        let _ = child.kill();
        child.wait().unwrap();
        let now = assert_whole(&out);
        if now == old {
            seen.0 += 1;
        } else if now == new {
            seen.1 += 1;
        } else {
            panic!("killed after {fraction} of a run: neither the old nor the new outputs");
        }
    }
    assert!(
        seen.0 > 0,
        "no kill landed before the new outputs: {seen:?}"
    );

    // The next run clears what killed runs left beside the output.
    run_ok(&out, &new_args);
    assert!(assert_whole(&out) == new);
    assert_eq!(entries(dir.path()), ["out", "probe"]);
}
