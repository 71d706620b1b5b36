//! The distributed engine (cargo feature `ballista`): a Ballista scheduler and executor started
//! on localhost with `hhq cluster`, the full suite of measures run on them over the committed
//! test data and over a synthetic state of 100,000 members, and every output a measure's
//! results make (the result table, the CMS tables, the data-quality profile, each measure's
//! member-level detail) identical to the local engine's. `--engine standalone` (a scheduler and
//! executor inside the run) is held to the same on the test data.
#![cfg(feature = "ballista")]

use crate::common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hhq::distributed::Backend;

/// A cluster node, stopped when dropped (also when a test fails).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node(args: &[&str], log: &Path) -> Node {
    let log = std::fs::File::create(log).unwrap();
    Node(
        Command::new(env!("CARGO_BIN_EXE_hhq"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hhq cluster starts"),
    )
}

/// Wait until something listens on `port`.
fn listening(port: u16, what: &str, log: &Path) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the {what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and one executor (two tasks at once) on localhost: the scheduler's address.
fn cluster(logs: &Path) -> (Vec<Node>, String) {
    let (sched, flight, grpc) = (free_port(), free_port(), free_port());
    let sched_log = logs.join("scheduler.log");
    let scheduler = node(
        &[
            "cluster",
            "scheduler",
            "--bind",
            "127.0.0.1",
            "--port",
            &sched.to_string(),
        ],
        &sched_log,
    );
    listening(sched, "scheduler", &sched_log);
    let exec_log = logs.join("executor.log");
    let executor = node(
        &[
            "cluster",
            "executor",
            "--scheduler",
            &format!("127.0.0.1:{sched}"),
            "--bind",
            "127.0.0.1",
            "--external-host",
            "127.0.0.1",
            "--port",
            &flight.to_string(),
            "--grpc-port",
            &grpc.to_string(),
            "--concurrent-tasks",
            "2",
        ],
        &exec_log,
    );
    listening(flight, "executor", &exec_log);
    (
        vec![executor, scheduler],
        format!("ballista://127.0.0.1:{sched}"),
    )
}

/// `hhq run` of every measure over `data` into `out` on `engine`.
fn run(data: &Path, out: &Path, engine: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(["run", "--period", "2025", "--engine", engine, "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .current_dir(common::root())
        .output()
        .expect("hhq runs");
    assert!(
        o.status.success(),
        "hhq run --engine {engine}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A Parquet file's rows, each value as text (string views and strings alike), in file order.
fn parquet_rows(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    let options = datafusion::arrow::util::display::FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options)
                    .unwrap()
            })
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// Every output of `a` a measure's results make is the same in `b`: tables and each measure's
/// detail CSV byte for byte and, with `parquet_values`, each detail's Parquet columns and rows
/// value for value (slow in a dev build at 100,000 members, where the CSVs say the same). The
/// manifest differs: it records the engine's options and the outputs' hashes, which the
/// detail's Parquet string encoding changes.
fn same_results(a: &Path, b: &Path, parquet_values: bool) {
    let mut details: Vec<String> = std::fs::read_dir(a.join("detail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    details.sort();
    // Each measure the data cover for 2025: on data that begin in 2025, PCR-HH's and IET-HH's
    // look-backs are outside them, so those two are not reportable and not computed.
    assert!(details.len() >= 9, "a detail per measure: {details:?}");
    let tables = [
        "summary.csv",
        "cms_reporting.csv",
        "cms_measures.csv",
        "cms_checks.csv",
        "data_quality.csv",
        "data_quality_checks.csv",
    ]
    .into_iter()
    .map(String::from)
    .chain(details.iter().map(|d| format!("detail/{d}")));
    for table in tables {
        let (x, y) = (
            std::fs::read_to_string(a.join(&table)).unwrap(),
            std::fs::read_to_string(b.join(&table)).unwrap(),
        );
        assert!(x.lines().count() > 1, "{table} has rows");
        if x != y {
            let first = x.lines().zip(y.lines()).find(|(p, q)| p != q);
            panic!("{table} differs, first at {first:?}");
        }
    }
    if !parquet_values {
        return;
    }
    let mut details: Vec<PathBuf> = std::fs::read_dir(a.join("detail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    details.sort();
    assert!(details.len() >= 10, "a detail per measure: {details:?}");
    for detail in details {
        let name = detail.file_name().unwrap();
        let (x, y) = (
            parquet_rows(&detail),
            parquet_rows(&b.join("detail").join(name)),
        );
        assert!(!x.is_empty(), "{name:?} has rows");
        assert_eq!(x.len(), y.len(), "{name:?}: rows");
        if let Some((i, (p, q))) = x.iter().zip(&y).enumerate().find(|(_, (p, q))| p != q) {
            panic!("{name:?} differs at row {i}:\n local {p}\n ballista {q}");
        }
    }
}

#[test]
fn the_engine_option_reads_local_standalone_and_a_scheduler_address() {
    assert_eq!("local".parse::<Backend>(), Ok(Backend::Local));
    assert_eq!("standalone".parse::<Backend>(), Ok(Backend::Standalone));
    assert_eq!(
        "ballista://sched:50050".parse::<Backend>(),
        Ok(Backend::Remote {
            url: "ballista://sched:50050".into(),
            scratch: None
        })
    );
    for bad in ["ballista://sched", "ballista://:50050", "spark://x:1", ""] {
        assert!(bad.parse::<Backend>().is_err(), "{bad}");
    }
}

/// The test data on a cluster of `hhq cluster` nodes and in this process: the same results.
#[test]
fn a_cluster_computes_what_the_local_engine_does() {
    let work = tempfile::tempdir().unwrap();
    let (_nodes, scheduler) = cluster(work.path());
    let testdata = common::root().join("testdata");
    run(&testdata, &work.path().join("local"), "local");
    run(&testdata, &work.path().join("cluster"), &scheduler);
    same_results(
        &work.path().join("local"),
        &work.path().join("cluster"),
        true,
    );
}

/// A state of 100,000 members on the cluster and in this process: the same results.
#[test]
fn a_cluster_computes_what_the_local_engine_does_at_100k_members() {
    let work = tempfile::tempdir().unwrap();
    let (_nodes, scheduler) = cluster(work.path());
    let data = work.path().join("m100000");
    let o = Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args([
            "synth",
            "--members",
            "100000",
            "--seed",
            "7",
            "--start-year",
            "2025",
            "--years",
            "1",
            "--out",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Side by side: the cluster's run waits on its jobs' scheduling as much as it computes
    // (about 100 s of this test's 540 in a dev build).
    std::thread::scope(|s| {
        s.spawn(|| run(&data, &work.path().join("local-100k"), "local"));
        run(&data, &work.path().join("cluster-100k"), &scheduler);
    });
    same_results(
        &work.path().join("local-100k"),
        &work.path().join("cluster-100k"),
        false,
    );
}

/// A scheduler and executor inside the run (`--engine standalone`): the same results.
#[test]
fn standalone_computes_what_the_local_engine_does() {
    let work = tempfile::tempdir().unwrap();
    let testdata = common::root().join("testdata");
    run(&testdata, &work.path().join("local"), "local");
    run(&testdata, &work.path().join("standalone"), "standalone");
    same_results(
        &work.path().join("local"),
        &work.path().join("standalone"),
        true,
    );
}

/// A cluster on other hosts needs a scratch directory they all read; `--scratch` is for a
/// cluster only. Both are usage errors (exit 2) that say what to give.
#[test]
fn a_remote_cluster_without_a_shared_scratch_directory_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let hhq = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hhq"))
            .args(args)
            .arg("--out")
            .arg(out.path().join("run"))
            .current_dir(common::root())
            .output()
            .unwrap()
    };
    let o = hhq(&["run", "--engine", "ballista://sched.example:50050"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give --scratch DIR"), "{stderr}");
    let o = hhq(&["run", "--engine", "local", "--scratch", "/tmp"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--scratch is for a cluster"), "{stderr}");
    assert!(!out.path().join("run").exists(), "nothing written");
}

/// Operators that read one partition (a `count(*)` of a single aggregate) above each kind of
/// join, on a cluster and in this process: the same counts. Ballista replans a `CollectLeft`
/// LEFT join partitioned, and an aggregate above it read its first partition only (172 rows
/// of 360) until joins were planned partitioned from the start.
#[tokio::test(flavor = "multi_thread")]
async fn counts_above_every_kind_of_join_match_the_local_engine() {
    use hhq::definitions::Definitions;
    use hhq::engine::{Engine, Inputs};
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let open = |backend: Backend| {
        let (defs, root) = (&defs, &root);
        async move {
            Engine::open_on(
                &root.join("testdata"),
                defs,
                &Inputs::default(),
                None,
                &backend,
            )
            .await
            .unwrap()
        }
    };
    let (local, cluster) = (open(Backend::Local).await, open(Backend::Standalone).await);
    // The raw extracts: exact statistics, so the smaller side is planned to be collected.
    let spans = "(SELECT * FROM enrollment__raw WHERE span_type = 'health_home') h";
    let joined = |join: &str| {
        format!(
            "SELECT count(*) AS n FROM {spans} {join} members__raw p ON p.member_id = h.member_id"
        )
    };
    let queries = [
        joined("JOIN"),
        joined("LEFT JOIN"),
        joined("RIGHT JOIN"),
        joined("FULL JOIN"),
        format!(
            "SELECT count(*) AS n FROM {spans} WHERE EXISTS (SELECT 1 FROM members__raw p WHERE p.member_id = h.member_id)"
        ),
        format!(
            "SELECT count(*) AS n FROM {spans} WHERE NOT EXISTS (SELECT 1 FROM members__raw p WHERE p.member_id = h.member_id AND p.death_date IS NOT NULL)"
        ),
    ];
    for sql in queries {
        let count = |batches: Vec<datafusion::arrow::record_batch::RecordBatch>| {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::Int64Type;
            batches[0].column(0).as_primitive::<Int64Type>().value(0)
        };
        let here = count(local.collect_for(&sql, "a join").await.unwrap());
        let there = count(cluster.collect_for(&sql, "a join").await.unwrap());
        assert!(here > 0, "{sql}");
        assert_eq!(here, there, "{sql}");
    }
}
