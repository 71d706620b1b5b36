//! Shared by the integration tests: writing small extracts from CSV text into a temporary data
//! directory, and running the shipped measures over it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hhq::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, Extract, MEMBERS};
use hhq::extract::csv::{csv_to_batch, write_parquet};

/// The repository root, where measures/ and queries/ live.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Write one extract from CSV text as `<dir>/<name>.parquet`.
pub fn write_csv(dir: &Path, extract: &Extract, csv: &str) {
    let path = dir.join(format!("{}.parquet", extract.name));
    let batch = csv_to_batch(&path, extract, csv).expect("valid test CSV");
    write_parquet(&path, &batch).expect("write test extract");
}

/// A data directory with the four extracts written from CSV text.
pub fn data_dir(
    claims: &str,
    contacts: &str,
    members: &str,
    enrollment: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_csv(dir.path(), &CLAIMS, claims);
    write_csv(dir.path(), &CONTACTS, contacts);
    write_csv(dir.path(), &MEMBERS, members);
    write_csv(dir.path(), &ENROLLMENT, enrollment);
    dir
}

/// Claims with replacement loops: a loop of two (L1, L2), one of three (M1, M2, M3, with two
/// lines of M3), a claim naming itself (S1), a normal chain (N1, N2), and a loop that a claim
/// outside it replaces (O1, O2 by O3).
pub const LOOP_CLAIMS: &str = "member_id,claim_id,line_number,claim_type,adjustment,replaces_claim_id,service_from,service_to\n\
     M1,L1,1,outpatient,replacement,L2,2025-05-01,2025-05-01\n\
     M1,L2,1,outpatient,replacement,L1,2025-05-01,2025-05-01\n\
     M1,M1,1,outpatient,replacement,M2,2025-05-02,2025-05-02\n\
     M1,M2,1,outpatient,replacement,M3,2025-05-02,2025-05-02\n\
     M1,M3,1,outpatient,replacement,M1,2025-05-02,2025-05-02\n\
     M1,M3,2,outpatient,replacement,M1,2025-05-02,2025-05-02\n\
     M1,S1,1,outpatient,replacement,S1,2025-05-03,2025-05-03\n\
     M1,N1,1,outpatient,original,,2025-05-04,2025-05-04\n\
     M1,N2,1,outpatient,replacement,N1,2025-05-04,2025-05-04\n\
     M1,O1,1,outpatient,replacement,O2,2025-05-05,2025-05-05\n\
     M1,O2,1,outpatient,replacement,O1,2025-05-05,2025-05-05\n\
     M1,O3,1,outpatient,replacement,O1,2025-05-05,2025-05-05\n";

/// A minimal valid data directory: one member, one claim, one contact, enrolled all of 2025.
pub fn minimal() -> tempfile::TempDir {
    data_dir(
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to,revenue_code\n\
         M1,C1,1,outpatient,original,2025-03-10,2025-03-10,0450\n",
        "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
         K1,M1,2025-01-05,HHP-1,care_management,phone,true\n",
        "member_id,birth_date,sex,dual_eligible\nM1,1990-06-01,F,false\n",
        "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n\
         M1,medicaid,2024-01-01,,MCO-A,,,\n\
         M1,health_home,2025-01-01,,MCO-A,HHP-1,SMI,false\n",
    )
}

/// Hand-built decks hold only the rows their cases need, so their first and last rows are not
/// where the data begin and end: the coverage is stated, as a data holder would state an
/// extract's (2024 through 2026, so 2025's look-backs and follow-up are covered).
pub fn stated_coverage() -> hhq::quality::QualityOptions {
    hhq::quality::QualityOptions {
        data_from: chrono::NaiveDate::from_ymd_opt(2024, 1, 1),
        data_through: chrono::NaiveDate::from_ymd_opt(2026, 12, 31),
        ..Default::default()
    }
}

/// The command-line options stating [`stated_coverage`].
pub const STATED_COVERAGE: [&str; 4] =
    ["--data-from", "2024-01-01", "--data-through", "2026-12-31"];

/// What the computing commands share, over `data` with the shipped definitions.
pub fn execute_options(data: &Path) -> hhq::execute::Options {
    hhq::execute::Options {
        data: data.to_path_buf(),
        measures: root().join("measures"),
        queries: root().join("queries"),
        ..Default::default()
    }
}

/// Options to run every shipped measure for 2025 over `data`, writing to `out`.
pub fn run_options(data: &Path, out: &Path) -> hhq::pipeline::RunOptions {
    hhq::pipeline::RunOptions {
        common: execute_options(data),
        out: out.to_path_buf(),
        period: Some(hhq::period::Period::year(2025)),
        only: Vec::new(),
        privacy: Default::default(),
        quality: stated_coverage(),
        detail_csv: Default::default(),
    }
}

/// A Parquet file's rows as one batch.
pub fn read_parquet(path: &Path) -> datafusion::arrow::array::RecordBatch {
    let file = std::fs::File::open(path).expect("open the Parquet file");
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a Parquet file")
            .build()
            .expect("a reader");
    let batches: Vec<_> = reader.map(|b| b.expect("a batch")).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("one schema")
}

/// Run the shipped measures `only` for 2025 over a deck; the temporary directory (outputs in
/// `out/`) and the result rows.
pub async fn run_deck(
    claims: &str,
    contacts: &str,
    members: &str,
    enrollment: &str,
    only: &[&str],
) -> (tempfile::TempDir, Vec<hhq::results::ResultRow>) {
    let data = data_dir(claims, contacts, members, enrollment);
    let s = hhq::pipeline::run(&hhq::pipeline::RunOptions {
        only: only.iter().map(|s| s.to_string()).collect(),
        ..run_options(data.path(), &data.path().join("out"))
    })
    .await
    .expect("run succeeds");
    (data, s.rows)
}

/// A measures directory holding one measure file (and the shipped value sets), for tests of
/// measures that are not shipped.
pub fn measures_dir_with(yaml: &str) -> tempfile::TempDir {
    let defs = tempfile::tempdir().expect("tempdir");
    std::fs::write(defs.path().join("m.yaml"), yaml).expect("write measure");
    std::fs::create_dir(defs.path().join("valuesets")).expect("valuesets dir");
    std::fs::copy(
        root().join("measures/valuesets/illustrative.csv"),
        defs.path().join("valuesets/illustrative.csv"),
    )
    .expect("copy value sets");
    defs
}

/// CSV text as its header and rows of strings.
pub fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// A small valid measure, which tests damage one piece at a time.
pub const GOOD_MEASURE: &str = r#"id: TEST-1
title: Test
version: "1"
source: a test
better: lower
basis: member_months
age_bands: ["0-17", "18+"]
stratify: [age_band]
components:
  - name: ed_visits
    unit: per_1000_member_months
    numerator:
      count: ed_visits
      date: visit_date
      where: NOT led_to_admission
"#;

/// Every file below `dir` (not the directories), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable directory") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The construct fixtures of `tests/constructs/` (one small measure per construct of the measure
/// language, each with its deck) as a definitions directory: `measures/` (with the shipped value
/// sets) and `queries/` (the shipped building blocks and the fixtures' own).
pub fn constructs_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("tests/constructs");
    let copy = |from: &Path, to: &Path, ext: &str| {
        std::fs::create_dir_all(to).expect("dir");
        for e in std::fs::read_dir(from).expect("readable") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == ext) {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).expect("copy");
            }
        }
    };
    let measures = dir.path().join("measures");
    copy(&src, &measures, "yaml");
    copy(&src.join("decks"), &measures.join("decks"), "yaml");
    copy(
        &root().join("measures/valuesets"),
        &measures.join("valuesets"),
        "csv",
    );
    let queries = dir.path().join("queries");
    copy(&root().join("queries"), &queries, "sql");
    copy(&src.join("queries"), &queries, "sql");
    dir
}

/// Run an async test body on a thread with the stack hhq's own runtime threads have (64 MiB,
/// `src/main.rs`): planning a measure's whole detail as one statement recurses deeper than a
/// test thread's 2 MiB.
pub fn with_big_stack<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let handle = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(64 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .unwrap();
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Run the hhq binary with `args` in `cwd`.
pub fn hhq(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("hhq runs")
}

/// Rows of a CSV file as records (fields may hold quoted commas), with its header.
pub fn records(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// The index of column `name` in a header.
pub fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

/// Every file under `dir`, by path relative to it → its bytes.
pub fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `from` copied to `to`, directories and all.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// The shipped measures with `old` replaced by `new` in the file `file`.
pub fn measures_with(file: &str, old: &str, new: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("measures"), dir.path());
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "{file} holds {old}");
    std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
    dir
}
