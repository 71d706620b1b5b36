//! The run cache: a rerun computes only what changed and writes the same bytes as a run without
//! the cache; a changed extract, measure, value set or audience is never served from it; it
//! stays within its bound; a report after a run reuses the run's details.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

/// `hhq` with the run cache in `cache`.
fn hhq(cache: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hhq"))
        .env("HHQ_CACHE_DIR", cache)
        .env_remove("HHQ_CACHE_SIZE")
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("hhq runs")
}

fn ok(o: Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

/// Synthetic extracts, small and quick: two years, 2024 and 2025.
fn synth(dir: &Path) {
    ok(hhq(
        dir,
        &[
            "synth",
            "--members",
            "300",
            "--seed",
            "7",
            "--start-year",
            "2024",
            "--years",
            "2",
            "--out",
            dir.to_str().unwrap(),
        ],
    ));
}

/// `hhq run` over `data` into `out` with `extra` options; its stderr.
fn run(cache: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--data",
        data.to_str().unwrap(),
        "--period",
        "2025",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(hhq(cache, &args))
}

/// `(reused, computed)` of a kind on the `run cache:` line.
fn counts(stderr: &str, kind: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("run cache:"))
        .unwrap_or_else(|| panic!("no run cache line in {stderr}"));
    let part = line
        .split([':', ';'])
        .map(str::trim)
        .find(|p| p.starts_with(&format!("{kind} ")))
        .unwrap_or_else(|| panic!("no {kind} in {line}"));
    let n: Vec<usize> = part
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    (n[0], n[1])
}

struct Setup {
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    data: PathBuf,
    root: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    synth(&data);
    Setup {
        cache: root.join("cache"),
        data,
        root,
        _tmp: tmp,
    }
}

#[test]
fn a_rerun_reuses_every_measure_and_writes_what_a_run_without_the_cache_writes() {
    let s = setup();
    let (a, b, c) = (s.root.join("a"), s.root.join("b"), s.root.join("c"));
    let plain = run(&s.cache, &s.data, &a, &["--no-cache"]);
    assert!(!plain.contains("run cache:"), "{plain}");
    let first = run(&s.cache, &s.data, &b, &[]);
    let (reused, computed) = counts(&first, "run-measure");
    assert_eq!(reused, 0, "{first}");
    assert!(computed >= 9, "{first}");
    let again = run(&s.cache, &s.data, &c, &["--timings"]);
    assert_eq!(counts(&again, "run-measure"), (computed, 0), "{again}");
    assert_eq!(counts(&again, "profile"), (1, 0), "{again}");
    // Nothing computed again: no measure's detail, no block of a pass.
    assert!(!again.contains("  measure "), "{again}");
    let (a, b, c) = (common::files(&a), common::files(&b), common::files(&c));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the first cached run wrote other bytes");
    assert!(a == c, "the run served from the cache wrote other bytes");
}

/// Rewrite `file` (Parquet) without its last `drop` rows, its modification time kept: the
/// cache must see the bytes, not the file's name, size or time.
fn drop_rows(file: &Path, drop: usize) {
    use datafusion::arrow::array::RecordBatchReader;
    use datafusion::arrow::compute::concat_batches;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let modified = std::fs::metadata(file).unwrap().modified().unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let all = concat_batches(&schema, &batches).unwrap();
    let kept = all.slice(0, all.num_rows() - drop);
    let mut w = ArrowWriter::try_new(std::fs::File::create(file).unwrap(), schema, None).unwrap();
    w.write(&kept).unwrap();
    w.close().unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

#[test]
fn a_changed_extract_is_never_served_from_the_cache() {
    let s = setup();
    let (before, after, plain) = (s.root.join("1"), s.root.join("2"), s.root.join("3"));
    run(&s.cache, &s.data, &before, &[]);
    drop_rows(&s.data.join("contacts.parquet"), 400);
    let second = run(&s.cache, &s.data, &after, &[]);
    assert_eq!(counts(&second, "run-measure").0, 0, "{second}");
    assert_eq!(counts(&second, "profile"), (0, 1), "{second}");
    run(&s.cache, &s.data, &plain, &["--no-cache"]);
    let summary = |d: &Path| std::fs::read(d.join("summary.csv")).unwrap();
    assert_ne!(
        summary(&before),
        summary(&after),
        "dropping contacts changes results"
    );
    assert!(common::files(&after) == common::files(&plain));
}

#[test]
fn an_edited_measure_or_value_set_is_computed_again_and_nothing_else_is() {
    let s = setup();
    let out = |n: &str| s.root.join(n);
    let with = |measures: &Path, o: &Path, extra: &[&str]| {
        let mut args = vec!["--measures", measures.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&s.cache, &s.data, o, &args)
    };
    let shipped = common::measures_with("fuh-hh.yaml", "FUH-HH", "FUH-HH");
    let first = with(shipped.path(), &out("a"), &[]);
    let (_, all) = counts(&first, "run-measure");

    // One measure's rule changed: that measure computed, every other reused.
    let edited = common::measures_with(
        "fuh-hh.yaml",
        "continuous: {from: 0, to: 30, max_gaps: 0, max_gap_days: 0}",
        "continuous: {from: 0, to: 30, max_gaps: 1, max_gap_days: 45}",
    );
    let second = with(edited.path(), &out("b"), &[]);
    assert_eq!(counts(&second, "run-measure"), (all - 1, 1), "{second}");
    with(edited.path(), &out("b-plain"), &["--no-cache"]);
    assert!(common::files(&out("b")) == common::files(&out("b-plain")));

    // A value set's codes changed: what reads value sets is computed again.
    let codes = common::measures_with(
        "valuesets/illustrative.csv",
        "mental_illness_dx,ICD10CM,F21*",
        "mental_illness_dx,ICD10CM,F219",
    );
    let third = with(codes.path(), &out("c"), &[]);
    assert_eq!(counts(&third, "run-measure"), (0, all), "{third}");
    with(codes.path(), &out("c-plain"), &["--no-cache"]);
    assert!(common::files(&out("c")) == common::files(&out("c-plain")));
}

#[test]
fn an_audience_never_reads_the_states_entries_nor_another_audiences() {
    let s = setup();
    run(&s.cache, &s.data, &s.root.join("state"), &[]);
    for (flag, id) in [("--hhp", "HHP-01"), ("--hhp", "HHP-02"), ("--mco", "MCO-A")] {
        let cached = s.root.join(format!("{id}-cached"));
        let plain = s.root.join(format!("{id}-plain"));
        let told = run(&s.cache, &s.data, &cached, &[flag, id]);
        // The audience's own measures are computed in its own session; only the state's
        // benchmarks (a state run) come from the state's entries.
        assert!(counts(&told, "run-measure").1 > 0, "{told}");
        run(&s.cache, &s.data, &plain, &[flag, id, "--no-cache"]);
        assert!(
            common::files(&cached) == common::files(&plain),
            "{id}: the cached run wrote other bytes"
        );
    }
}

#[test]
fn the_cache_stays_within_its_bound_and_size_zero_turns_it_off() {
    let s = setup();
    let told = run(
        &s.cache,
        &s.data,
        &s.root.join("a"),
        &["--cache-size", "300K"],
    );
    assert!(told.contains("run cache:"), "{told}");
    let bytes: u64 = walk(&s.cache)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(
        bytes <= 300 << 10,
        "{bytes} bytes in a cache bounded by 300K"
    );
    let off = s.root.join("off");
    let told = ok(hhq(
        &off,
        &[
            "run",
            "--data",
            s.data.to_str().unwrap(),
            "--period",
            "2025",
            "--out",
            s.root.join("b").to_str().unwrap(),
            "--cache-size",
            "0",
        ],
    ));
    assert!(!told.contains("run cache:"), "{told}");
    assert!(walk(&off.join("runs")).is_empty());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match p.is_dir() {
            true => out.extend(walk(&p)),
            false => out.push(p),
        }
    }
    out
}

#[test]
fn a_report_after_a_run_reuses_the_runs_details_and_writes_the_same_report() {
    let s = setup();
    let told = run(&s.cache, &s.data, &s.root.join("run"), &[]);
    let (_, measures) = counts(&told, "run-measure");
    let report = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "report",
            "state",
            "--data",
            s.data.to_str().unwrap(),
            "--quarter",
            "2025Q4",
            "--no-pdf",
            "--out",
        ];
        let out = s.root.join(out);
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        (ok(hhq(&s.cache, &args)), out)
    };
    let (told, cached) = report("report", &[]);
    // The year ending 2025Q4 is the run's period: its details are the run's.
    let (reused, _) = counts(&told, "detail");
    assert!(reused >= measures, "{told}");
    let (_, plain) = report("plain", &["--no-cache"]);
    assert!(common::files(&cached) == common::files(&plain));
}

#[test]
fn a_damaged_entry_is_computed_again() {
    let s = setup();
    let (a, b) = (s.root.join("a"), s.root.join("b"));
    run(&s.cache, &s.data, &a, &[]);
    // Read before the damage: a run's detail files and their entries are one file each.
    let written = common::files(&a);
    // Every cached file's last byte changed, as a failing disk might.
    for f in walk(&s.cache.join("runs")) {
        if f.file_name().is_some_and(|n| n == "SHA256SUMS") {
            continue;
        }
        let mut bytes = std::fs::read(&f).unwrap();
        if let Some(last) = bytes.last_mut() {
            *last ^= 0xff;
        }
        std::fs::write(&f, bytes).unwrap();
    }
    let told = run(&s.cache, &s.data, &b, &[]);
    assert_eq!(counts(&told, "run-measure").0, 0, "{told}");
    assert!(written == common::files(&b));
}

#[test]
fn hhq_cache_says_how_full_the_cache_is_and_clears_it() {
    let s = setup();
    run(&s.cache, &s.data, &s.root.join("a"), &[]);
    let told = ok(hhq(&s.cache, &["cache"]));
    let entries = |t: &str| -> usize {
        t.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(entries(&told) > 10, "{told}");
    let told = ok(hhq(&s.cache, &["cache", "--clear"]));
    assert!(told.contains("removed "), "{told}");
    assert_eq!(entries(&ok(hhq(&s.cache, &["cache"]))), 0);
    assert!(walk(&s.cache.join("runs")).is_empty());
}
