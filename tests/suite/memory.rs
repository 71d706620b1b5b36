//! `--memory-limit`: a run whose working set is larger than the limit completes with the same
//! outputs; a sort larger than the limit spills; a limit too small to make progress is a clear
//! error.

use crate::common;

use std::path::Path;
use std::process::Command;

use hhq::pipeline::{self, RunOptions};

fn options(out: &Path, memory_limit: Option<usize>) -> RunOptions {
    RunOptions {
        common: hhq::execute::Options {
            memory_limit,
            ..common::execute_options(&common::root().join("testdata"))
        },
        out: out.to_path_buf(),
        period: None,
        only: Vec::new(),
        privacy: Default::default(),
        quality: Default::default(),
        detail_csv: Default::default(),
    }
}

fn hhq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("hhq runs")
}

#[tokio::test]
async fn a_run_under_a_limit_below_its_working_set_completes_with_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (free, tight) = (dir.path().join("free"), dir.path().join("tight"));
    // Below the unlimited run's peak, with room to spare: at a few megabytes above the least a
    // run needs, DataFusion's first-come pool can fail or not depending on scheduling.
    // The unlimited run's peak is about 50 MB on the test data; runs fail below about 30 MB.
    let limit = 40 << 20;
    let unlimited = pipeline::run(&options(&free, None)).await.unwrap();
    assert_eq!(unlimited.memory.limit, None);
    // The limit binds: the unlimited run held more than it at once.
    assert!(
        unlimited.memory.peak_reserved > limit,
        "peak {} is not well above the limit: lower it",
        unlimited.memory.peak_reserved
    );
    let limited = pipeline::run(&options(&tight, Some(limit))).await.unwrap();
    assert_eq!(limited.memory.limit, Some(limit));
    assert!(
        limited.memory.peak_reserved <= limit,
        "{:?}",
        limited.memory
    );

    // Same results, byte for byte: every file, member-level details and the manifest included.
    let mut compared = 0;
    for entry in std::fs::read_dir(&free)
        .unwrap()
        .chain(std::fs::read_dir(free.join("detail")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let rel = path.strip_prefix(&free).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == std::fs::read(tight.join(rel)).unwrap(),
            "{} differs under --memory-limit",
            rel.display()
        );
        compared += 1;
    }
    assert!(compared > 20, "only {compared} files");
    assert_eq!(unlimited.rows, limited.rows);
}

/// The shipped definitions, the test data and no optional inputs.
fn testdata() -> (
    hhq::definitions::Definitions,
    std::path::PathBuf,
    hhq::engine::Inputs,
) {
    let defs = hhq::definitions::Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    (defs, common::root().join("testdata"), Default::default())
}

/// A sort larger than the limit spills to disk and returns what an unlimited sort does.
#[tokio::test]
async fn a_sort_larger_than_the_limit_spills() {
    let (defs, data, inputs) = testdata();
    let sql = "SELECT member_id, claim_id, line_number, service_from FROM claims \
               ORDER BY member_id, claim_id, line_number, adjustment";
    let free = hhq::engine::Engine::open_limited(&data, &defs, &inputs, None)
        .await
        .unwrap();
    let expected = free.collect_for(sql, "a sort").await.unwrap();
    let free_peak = free.memory_stats().peak_reserved;
    // Two partitions each sort at least one 2 MB batch (the usable-rows filter coalesces them),
    // each within half the pool while both hold memory, and the merges of what they spilled and
    // of the two partitions need room beside them: at 16 MB the final merge finds none.
    let limit = 32 << 20;
    assert!(
        free_peak > limit + limit / 2,
        "the sort held only {free_peak} bytes"
    );
    let tight = hhq::engine::Engine::open_limited(&data, &defs, &inputs, Some(limit))
        .await
        .unwrap();
    let got = tight.collect_for(sql, "a sort").await.unwrap();
    let m = tight.memory_stats();
    assert!(m.spilled_bytes > 0 && m.peak_reserved <= limit, "{m:?}");
    let rows = |b: &[datafusion::arrow::array::RecordBatch]| hhq::results::text_rows(b).unwrap().1;
    assert_eq!(rows(&got), rows(&expected));
}

#[test]
fn a_limit_too_small_to_make_progress_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = hhq(&[
        "run",
        "--memory-limit",
        "2M",
        // Computed, not read from the run cache another test's run filled.
        "--no-cache",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --memory-limit 2M is too small for ")
            && stderr.contains(": raise it"),
        "{stderr}"
    );
    assert!(!out.exists(), "a failed run wrote {}", out.display());
}

#[test]
fn a_size_that_is_not_one_is_a_usage_error() {
    for command in [
        &["run", "--memory-limit", "12X"][..],
        &["report", "state", "--memory-limit", "lots"],
        &["explain", "HH-TCC", "--member", "M1", "--memory-limit", "0"],
    ] {
        let o = hhq(command);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("--memory-limit") && stderr.contains("size: use e.g. 512M or 2G"),
            "{command:?}: {stderr}"
        );
    }
}

/// Under a limit a run computes as many members at once as the limit holds at
/// `BYTES_PER_ROW` per row of their extracts, between the floor and the default; without one,
/// the default. The plan's passes follow from the data's rows per member.
#[tokio::test]
async fn a_limit_sets_the_members_per_pass_from_the_rows_per_member() {
    use hhq::engine::Engine;
    use hhq::plan::{BYTES_PER_ROW, MEMBERS_PER_PASS, MIN_MEMBERS_PER_PASS, pass_size};
    let (defs, data, inputs) = testdata();
    let free = Engine::open_limited(&data, &defs, &inputs, None)
        .await
        .unwrap();
    let rows: u64 = free.extracts.iter().map(|e| e.rows).sum();
    assert_eq!(pass_size(10, rows, None), MEMBERS_PER_PASS);
    assert!(rows > 10_000, "{rows} rows");
    // Ten members holding every row of the test data: a member has a tenth of them.
    let per_member = rows as usize / 10 * BYTES_PER_ROW;
    for (limit, expected) in [
        (per_member * 2_500, 2_500),
        (per_member * 2_500 + per_member / 2, 2_500),
        (per_member * 10, MIN_MEMBERS_PER_PASS),
        (per_member * 1_000_000, MEMBERS_PER_PASS),
    ] {
        let got = pass_size(10, rows, Some(limit));
        assert!(
            got.abs_diff(expected) <= 1,
            "limit {limit}: {got} members per pass, not {expected}"
        );
    }
    // The passes follow: testdata's 1,500 members make one pass under 256 MB, and two under
    // 64 MB (a pass of the floor, 1,000 members), each run one query at a time.
    for (limit, passes) in [(256 << 20, 1), (64 << 20, 2)] {
        let engine = Engine::open_limited(&data, &defs, &inputs, Some(limit))
            .await
            .unwrap();
        let plan = hhq::execute::plan(&engine, &[], &Default::default(), None)
            .await
            .unwrap();
        assert_eq!(plan.passes.len(), passes, "{plan}");
        assert_eq!(plan.queries_at_once, 1);
        assert_eq!(plan.block_budget, Some(limit / 4));
    }
}
