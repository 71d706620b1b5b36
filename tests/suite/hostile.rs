//! Bad input never crashes hhq or corrupts an output (issue 6): damaged, foreign, empty and
//! drifting extracts; YAML bombs and oversized definitions; filters and building blocks that try
//! to read a file or run a statement. Each gets an error naming the file (and the line and column,
//! or the row, where there is one). What hhq does in each case is in docs/hostile-input.md.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, DictionaryArray, Int16Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::SessionContext;
use hhq::extract::contract::CLAIMS;

// ---- Extracts ----------------------------------------------------------------------------------

/// Open the directory and return the error message, with the directory replaced by `<data>`.
async fn open_error(dir: &Path) -> String {
    let ctx = SessionContext::new();
    let err = hhq::extract::open_all(&ctx, dir)
        .await
        .expect_err("the extract is refused");
    err.to_string()
        .replace(&dir.display().to_string(), "<data>")
}

/// The shipped test claims (several pages per column, compressed) in an otherwise minimal
/// directory, and their bytes.
fn with_testdata_claims() -> (tempfile::TempDir, Vec<u8>) {
    let dir = common::minimal();
    let bytes = std::fs::read(common::root().join("testdata/claims.parquet")).unwrap();
    std::fs::write(dir.path().join("claims.parquet"), &bytes).unwrap();
    (dir, bytes)
}

#[tokio::test]
async fn a_file_cut_in_half_is_called_truncated() {
    let (dir, bytes) = with_testdata_claims();
    let half = bytes.len() / 2;
    std::fs::write(dir.path().join("claims.parquet"), &bytes[..half]).unwrap();
    assert_eq!(
        open_error(dir.path()).await,
        format!(
            "<data>/claims.parquet: truncated Parquet file ({half} bytes): it does not end with \
             Parquet's magic bytes `PAR1`, so its footer is missing; the copy or export was cut \
             short: copy or export it again"
        )
    );
}

#[tokio::test]
async fn a_file_cut_in_a_data_page_or_its_footer_is_called_truncated() {
    let (dir, bytes) = with_testdata_claims();
    // 10 000 bytes in: inside the first column's pages; 100 bytes from the end: in the footer.
    for cut in [10_000, bytes.len() - 100, bytes.len() - 2] {
        std::fs::write(dir.path().join("claims.parquet"), &bytes[..cut]).unwrap();
        assert_eq!(
            open_error(dir.path()).await,
            format!(
                "<data>/claims.parquet: truncated Parquet file ({cut} bytes): it does not end with \
                 Parquet's magic bytes `PAR1`, so its footer is missing; the copy or export was \
                 cut short: copy or export it again"
            )
        );
    }
}

#[tokio::test]
async fn a_damaged_footer_is_named() {
    let (dir, mut bytes) = with_testdata_claims();
    // The footer's length (the 4 bytes before the final `PAR1`) pointing before the file's start.
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(dir.path().join("claims.parquet"), &bytes).unwrap();
    let msg = open_error(dir.path()).await;
    assert!(
        msg.starts_with(
            "<data>/claims.parquet: damaged Parquet file: its footer (metadata) cannot be read: "
        ) && msg.ends_with("; export it again"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_csv_file_named_parquet_is_not_parquet() {
    let dir = common::minimal();
    std::fs::write(
        dir.path().join("members.parquet"),
        "member_id,birth_date,sex,dual_eligible\nM1,1990-06-01,F,false\n",
    )
    .unwrap();
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/members.parquet: not a readable Parquet file: it does not begin with Parquet's magic bytes `PAR1` (is it CSV or another format named .parquet?)");
}

#[tokio::test]
async fn a_zero_byte_file_is_empty() {
    let dir = common::minimal();
    std::fs::write(dir.path().join("enrollment.parquet"), "").unwrap();
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/enrollment.parquet: the file is empty (0 bytes), not a Parquet file: export the extract again");
}

/// The byte range of one column's chunk in row group 0 of a file.
fn column_chunk(path: &Path, column: &str) -> std::ops::Range<usize> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = builder.metadata().row_group(0);
    let chunk = meta
        .columns()
        .iter()
        .find(|c| c.column_path().string() == column)
        .unwrap();
    let (start, len) = chunk.byte_range();
    start as usize..(start + len) as usize
}

#[tokio::test]
async fn damaged_data_in_an_unchecked_column_is_found_when_opening() {
    // `paid_amount` has no contract rule to check; its pages are still decoded at open, so the
    // damage is reported with the file's name, not by the query engine midway through a measure.
    let (dir, mut bytes) = with_testdata_claims();
    let chunk = column_chunk(&dir.path().join("claims.parquet"), "paid_amount");
    let middle = chunk.start + (chunk.end - chunk.start) / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b = 0xA5;
    }
    std::fs::write(dir.path().join("claims.parquet"), &bytes).unwrap();
    let msg = open_error(dir.path()).await;
    assert!(
        msg.starts_with("<data>/claims.parquet: damaged Parquet data in row group 1 (rows from ")
            && msg.ends_with("; export the file again"),
        "{msg}"
    );
}

/// Claims CSV rows (after the header) as a batch with the contract schema.
fn claims_batch(rows: &str) -> RecordBatch {
    hhq::extract::csv::csv_to_batch(
        Path::new("x"),
        &CLAIMS,
        &format!(
            "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\n{rows}"
        ),
    )
    .unwrap()
}

/// `batch` with column `name` replaced (or added, when it is not there) by `array`.
fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    let field = Field::new(name, array.data_type().clone(), true);
    match fields.iter().position(|f| f.name() == name) {
        Some(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        None => {
            fields.push(field);
            columns.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Replace `claims.parquet` by a `claims/` directory of part files.
fn claims_parts(dir: &Path, parts: &[(&str, RecordBatch)]) {
    std::fs::remove_file(dir.join("claims.parquet")).unwrap();
    std::fs::create_dir(dir.join("claims")).unwrap();
    for (name, batch) in parts {
        hhq::extract::csv::write_parquet(&dir.join("claims").join(name), batch).unwrap();
    }
}

#[tokio::test]
async fn part_files_with_different_integer_widths_are_refused_naming_both() {
    let dir = common::minimal();
    let one = claims_batch("M1,C1,1,outpatient,original,2025-03-10,2025-03-10\n");
    let two = with_column(
        &claims_batch("M1,C2,7,outpatient,original,2025-03-11,2025-03-11\n"),
        "line_number",
        Arc::new(Int16Array::from(vec![7])),
    );
    claims_parts(
        dir.path(),
        &[("part-1.parquet", one), ("part-2.parquet", two)],
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims/part-2.parquet: column `line_number` has type Int16 here but Int32 in <data>/claims/part-1.parquet; every part file of an extract needs the same column types: export the parts with one schema");
}

#[tokio::test]
async fn part_files_with_plain_and_dictionary_strings_are_refused_naming_both() {
    let dir = common::minimal();
    let one = with_column(
        &claims_batch("M1,C1,1,outpatient,original,2025-03-10,2025-03-10\n"),
        "claim_type",
        Arc::new(
            vec!["outpatient"]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        ),
    );
    let two = claims_batch("M1,C2,1,outpatient,original,2025-03-11,2025-03-11\n");
    claims_parts(
        dir.path(),
        &[("part-1.parquet", one), ("part-2.parquet", two)],
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims/part-2.parquet: column `claim_type` has type Utf8 here but Dictionary(Int32, Utf8) in <data>/claims/part-1.parquet; every part file of an extract needs the same column types: export the parts with one schema");
}

#[tokio::test]
async fn an_extra_column_in_one_part_reads_as_null_in_the_others() {
    let dir = common::minimal();
    let one = claims_batch(
        "M1,C1,1,outpatient,original,2025-03-10,2025-03-10\n\
         M1,C1,2,outpatient,original,2025-03-10,2025-03-10\n",
    );
    let two = with_column(
        &claims_batch("M2,C2,3,inpatient,original,2025-04-01,2025-04-03\n"),
        "plan_note",
        Arc::new(StringArray::from(vec!["late"])),
    );
    // An empty part beside them is fine: only a wholly empty extract is refused.
    let empty = claims_batch("");
    claims_parts(
        dir.path(),
        &[
            ("part-1.parquet", one),
            ("part-2.parquet", two),
            ("part-3.parquet", empty),
        ],
    );
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    assert_eq!((opened[0].files.len(), opened[0].rows), (3, 3));
    let batches = ctx
        .sql(
            "SELECT claim_id, line_number, claim_type, coalesce(plan_note, '-') AS note \
             FROM claims ORDER BY line_number",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (_, rows) = hhq::results::text_rows(&batches).unwrap();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["C1", "1", "outpatient", "-"],
            vec!["C1", "2", "outpatient", "-"],
            vec!["C2", "3", "inpatient", "late"],
        ]
    );
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("line_number").unwrap().data_type(),
        &DataType::Int32
    );
}

#[tokio::test]
async fn a_column_named_twice_is_refused_naming_it() {
    // Two `member_id` columns: a query would read the first and silently ignore the second.
    let dir = common::minimal();
    let batch = claims_batch("M1,C1,1,outpatient,original,2025-03-10,2025-03-10\n");
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    fields.push(Field::new("member_id", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from(vec!["M2"])));
    let twice = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    hhq::extract::csv::write_parquet(&dir.path().join("claims.parquet"), &twice).unwrap();
    let n = twice.num_columns();
    assert_eq!(
        open_error(dir.path()).await,
        format!(
            "<data>/claims.parquet: column `member_id` appears twice (again as column {n} of \
             {n}); a query could read only one of them: export the file with each column once"
        )
    );
}

#[tokio::test]
async fn an_empty_claims_extract_is_refused() {
    let dir = common::minimal();
    common::write_csv(
        dir.path(),
        &CLAIMS,
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\n",
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims.parquet: the claims extract is empty: its file has no rows. Every measure would report zero from it, so hhq stops; check the export");
}

#[tokio::test]
async fn an_extract_directory_of_empty_parts_is_refused() {
    let dir = common::minimal();
    claims_parts(
        dir.path(),
        &[
            ("part-1.parquet", claims_batch("")),
            ("part-2.parquet", claims_batch("")),
        ],
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims: the claims extract is empty: its 2 part files have no rows. Every measure would report zero from it, so hhq stops; check the export");
}

#[tokio::test]
async fn an_empty_contacts_extract_is_allowed() {
    let dir = common::minimal();
    common::write_csv(
        dir.path(),
        &hhq::extract::contract::CONTACTS,
        "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n",
    );
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    assert_eq!(opened[1].rows, 0);
}

#[tokio::test]
async fn a_failed_run_leaves_the_previous_outputs_whole() {
    let dir = common::minimal();
    let opts = hhq::pipeline::RunOptions {
        common: common::execute_options(dir.path()),
        out: dir.path().join("out"),
        period: Some(hhq::period::Period::year(2025)),
        only: vec!["AMB-HH".into()],
        privacy: Default::default(),
        quality: common::stated_coverage(),
        detail_csv: Default::default(),
    };
    hhq::pipeline::run(&opts).await.unwrap();
    let before = std::fs::read(dir.path().join("out/summary.csv")).unwrap();
    // The next month's claims arrive cut short.
    let bytes = std::fs::read(dir.path().join("claims.parquet")).unwrap();
    std::fs::write(
        dir.path().join("claims.parquet"),
        &bytes[..bytes.len() - 10],
    )
    .unwrap();
    let err = hhq::pipeline::run(&opts).await.unwrap_err().to_string();
    assert!(
        err.contains("claims.parquet: truncated Parquet file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/summary.csv")).unwrap(),
        before
    );
}

/// The first `rows` of testdata's claims written to `path` with at most `per_group` rows in each
/// row group (one, as an export tool that flushes after every row writes them).
fn claims_in_row_groups(path: &Path, rows: usize, per_group: usize) -> usize {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    let all = common::read_parquet(&common::root().join("testdata/claims.parquet"));
    let rows = rows.min(all.num_rows());
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(per_group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, all.schema(), Some(props)).unwrap();
    // A group at a time: the writer splits a larger batch by recursing once per row group.
    for start in (0..rows).step_by(per_group) {
        w.write(&all.slice(start, per_group.min(rows - start)))
            .unwrap();
    }
    w.close().unwrap().row_groups().len()
}

/// testdata with its first 10,000 claim lines, in row groups of `per_group` rows.
fn testdata_in_row_groups(per_group: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testdata_claims_in_groups(dir.path(), 10_000, per_group);
    dir
}

/// testdata in `dir`, its first `rows` claim lines in row groups of `per_group` rows.
fn testdata_claims_in_groups(dir: &Path, rows: usize, per_group: usize) {
    for name in ["contacts", "members", "enrollment"] {
        let file = format!("{name}.parquet");
        std::fs::copy(common::root().join("testdata").join(&file), dir.join(&file)).unwrap();
    }
    let groups = claims_in_row_groups(&dir.join("claims.parquet"), rows, per_group);
    assert_eq!(groups, rows.div_ceil(per_group));
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_one_row_row_groups_open_and_count() {
    // Each file's footer is read once, when the extracts are checked, and handed to DataFusion:
    // read again per row group, a file of 1,207 row groups took 445 s to open (issue 33; figures
    // in docs/benchmarks.md).
    let many = testdata_in_row_groups(1);
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, many.path()).await.unwrap();
    assert_eq!(opened[0].rows, 10_000);
    let batches = ctx
        .sql("SELECT count(*) AS n FROM claims__all")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (_, rows) = hhq::results::text_rows(&batches).unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("10000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_a_thousand_row_groups_is_the_run_over_one() {
    // The issue's file had row groups of 10 rows. A run (the data-quality profile, the blocks
    // and a claims measure, every query reading every row group) gives what the same claim
    // lines in one row group give.
    let mut summaries = Vec::new();
    for per_group in [10, 10_000] {
        let dir = testdata_in_row_groups(per_group);
        let out = dir.path().join("out");
        let options = hhq::pipeline::RunOptions {
            only: vec!["AMB-HH".into()],
            ..common::run_options(dir.path(), &out)
        };
        let s = hhq::pipeline::run(&options).await.unwrap();
        assert_eq!(s.extracts[0].rows, 10_000);
        assert!(s.rows.iter().any(|r| r.denominator > 0.0));
        summaries.push(std::fs::read_to_string(out.join("summary.csv")).unwrap());
    }
    assert_eq!(summaries[0], summaries[1]);
}

/// The figures of `bench/row-groups.sh`: the time to open (check every file of) testdata with
/// its claims in 1,000 and 10,000 row groups (`ROW_GROUPS`, e.g. `1000,10000`), then to count
/// them. A benchmark, not a test: run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: bench/row-groups.sh"]
async fn row_groups_open_time() {
    let counts = std::env::var("ROW_GROUPS").unwrap_or_else(|_| "1000,10000".into());
    let temp = tempfile::tempdir().unwrap();
    // `ROW_GROUPS_DATA`: where to keep the data directories (`groups-N`), for timing hhq itself.
    let root = std::env::var_os("ROW_GROUPS_DATA").map_or(temp.path().to_path_buf(), Into::into);
    for groups in counts
        .split(',')
        .map(|g| g.trim().parse::<usize>().unwrap())
    {
        let dir = root.join(format!("groups-{groups}"));
        std::fs::create_dir_all(&dir).unwrap();
        let rows = groups.max(10_000);
        testdata_claims_in_groups(&dir, rows, rows.div_ceil(groups));
        let ctx = SessionContext::new();
        let started = std::time::Instant::now();
        let opened = hhq::extract::open_all(&ctx, &dir).await.unwrap();
        let open = started.elapsed();
        let started = std::time::Instant::now();
        ctx.sql("SELECT count(*) FROM claims")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let count = started.elapsed();
        println!(
            "row_groups={groups} claim_rows={} open_s={:.2} count_s={:.2}",
            opened[0].rows,
            open.as_secs_f64(),
            count.as_secs_f64()
        );
    }
}

/// One change to a file's bytes.
#[derive(Debug, Clone)]
enum Damage {
    Flip(proptest::sample::Index, u8),
    Set(proptest::sample::Index, u8),
    Cut(proptest::sample::Index),
    Insert(proptest::sample::Index, Vec<u8>),
}

fn damage() -> impl proptest::strategy::Strategy<Value = Damage> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (any::<proptest::sample::Index>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        4 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Damage::Set(i, v)),
        1 => any::<proptest::sample::Index>().prop_map(Damage::Cut),
        1 => (any::<proptest::sample::Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Damage::Insert(i, v)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Random damage to a small valid claims file: opening the directory either succeeds, and then
    /// every column of every row can be read, or fails with an error naming the file. Never a
    /// panic, and never a failure left for the query engine to find.
    #[test]
    fn damaged_extract_files_are_refused_by_name(damages in proptest::collection::vec(damage(), 1..6)) {
        use std::sync::OnceLock;
        static DIR: OnceLock<(tempfile::TempDir, Vec<u8>)> = OnceLock::new();
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        let (dir, good) = DIR.get_or_init(|| {
            let dir = common::minimal();
            let good = std::fs::read(dir.path().join("claims.parquet")).unwrap();
            (dir, good)
        });
        let rt = RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap());
        let mut bytes = good.clone();
        for d in damages {
            if bytes.is_empty() {
                break;
            }
            match d {
                Damage::Flip(i, bit) => { let i = i.index(bytes.len()); bytes[i] ^= 1 << bit; }
                Damage::Set(i, v) => { let i = i.index(bytes.len()); bytes[i] = v; }
                Damage::Cut(i) => { let i = i.index(bytes.len()); bytes.truncate(i); }
                Damage::Insert(i, v) => { let i = i.index(bytes.len()); bytes.splice(i..i, v); }
            }
        }
        let file = dir.path().join("claims.parquet");
        std::fs::write(&file, &bytes).unwrap();
        let outcome = rt.block_on(async {
            let ctx = SessionContext::new();
            match hhq::extract::open_all(&ctx, dir.path()).await {
                Err(e) => Err(e.to_string()),
                Ok(_) => {
                    let read = async { ctx.sql("SELECT * FROM claims").await?.collect().await };
                    Ok(read.await.map(|_| ()))
                }
            }
        });
        match outcome {
            Err(message) => proptest::prop_assert!(
                message.starts_with(&format!("{}: ", file.display())),
                "the error does not name the file: {message}"
            ),
            Ok(read) => proptest::prop_assert!(
                read.is_ok(),
                "the file passed the checks but the query engine failed on it: {read:?}"
            ),
        }
    }
}

// ---- Values that act where they are shown: spreadsheets and terminals ------------------------

/// Member ids a spreadsheet would run as formulas, and an MCO whose id recolours a terminal.
const FORMULA_IDS: [&str; 4] = [
    "=HYPERLINK(\"http://x.example/\",\"see\")",
    "+1",
    "@SUM(A1:A9)",
    "-2+3",
];
const RED_MCO: &str = "\u{1b}[31mMCO-A";

/// A data directory whose members have the ids above, each with an ED visit, all with MCO
/// [`RED_MCO`].
fn hostile_ids() -> tempfile::TempDir {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut claims = String::from(
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to,revenue_code\n",
    );
    let mut contacts =
        String::from("contact_id,member_id,contact_date,hhp_id,service,mode,reached\n");
    let mut members = String::from("member_id,birth_date,sex,dual_eligible\n");
    let mut enrollment = String::from(
        "member_id,span_type,start_date,end_date,mco_id,hhp_id,population,opted_out\n",
    );
    for (i, id) in FORMULA_IDS.iter().enumerate() {
        let id = q(id);
        let mco = q(RED_MCO);
        claims.push_str(&format!(
            "{id},C{i},1,outpatient,original,2025-03-10,2025-03-10,0450\n"
        ));
        contacts.push_str(&format!(
            "K{i},{id},2025-01-05,HHP-1,care_management,phone,true\n"
        ));
        members.push_str(&format!("{id},1990-06-01,F,false\n"));
        enrollment.push_str(&format!(
            "{id},medicaid,2024-01-01,,{mco},,,\n{id},health_home,2025-01-01,,{mco},HHP-1,SMI,false\n"
        ));
    }
    common::data_dir(&claims, &contacts, &members, &enrollment)
}

/// Every cell of a CSV file that a spreadsheet would take for a formula (a number is not one).
fn formula_cells(bytes: &[u8]) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    r.records()
        .flat_map(|rec| rec.unwrap().iter().map(String::from).collect::<Vec<_>>())
        .filter(|c| {
            c.as_bytes()
                .first()
                .is_some_and(|&b| hhq::escape::formula_start(b))
                && c.parse::<f64>().is_err()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_a_spreadsheet_would_run_are_quoted_in_every_csv_and_escapes_are_not_obeyed() {
    let dir = hostile_ids();
    let out = dir.path().join("out");
    let s = hhq::pipeline::run(&hhq::pipeline::RunOptions {
        only: vec!["AMB-HH".into()],
        detail_csv: hhq::detail::DetailCsv::Always,
        ..common::run_options(dir.path(), &out)
    })
    .await
    .unwrap();
    // The detail has every member, each id behind a quote.
    let detail = std::fs::read(out.join("detail/AMB-HH.csv")).unwrap();
    let text = String::from_utf8(detail.clone()).unwrap();
    for id in FORMULA_IDS {
        let (_, rows) = common::read_csv(&detail);
        assert!(
            rows.iter()
                .any(|r| r.iter().any(|c| *c == format!("'{id}"))),
            "{id} in {text}"
        );
    }
    let mut csvs = vec![out.join("detail/AMB-HH.csv")];
    for f in std::fs::read_dir(&out).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            csvs.push(p);
        }
    }
    assert!(csvs.len() > 4, "{csvs:?}");
    for p in &csvs {
        let cells = formula_cells(&std::fs::read(p).unwrap());
        assert!(cells.is_empty(), "{}: {cells:?}", p.display());
    }
    // The MCO stratum is in the result table; on the terminal its escape is text.
    assert!(s.rows.iter().any(|r| r.stratum == RED_MCO));
    let shown = hhq::report::table(&s.rows).to_string();
    assert!(
        !shown.contains('\u{1b}') && shown.contains("\\u{1b}[31mMCO-A"),
        "{shown}"
    );

    // `hhq sql`: a table escapes, CSV quotes formulas, and an error quoting a value escapes it.
    let sql = |query: &str, format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hhq"))
            .args(["sql", query, "--format", format, "--data"])
            .arg(dir.path())
            .current_dir(common::root())
            .output()
            .unwrap()
    };
    let q = "SELECT member_id, mco_id, -1.5 AS x FROM enrollment ORDER BY member_id";
    let table = sql(q, "table");
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        !table.contains('\u{1b}') && table.contains("\\u{1b}[31mMCO-A"),
        "{table}"
    );
    let csv = sql(q, "csv");
    assert!(csv.status.success());
    assert!(formula_cells(&csv.stdout).is_empty());
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.contains("'+1,\u{1b}[31mMCO-A,-1.5\n"), "{csv}");
    let failed = sql("SELECT CAST(mco_id AS INT) FROM enrollment", "table");
    let err = String::from_utf8(failed.stderr).unwrap();
    assert!(!failed.status.success());
    assert!(
        !err.contains('\u{1b}') && err.contains("\\u{1b}[31mMCO-A"),
        "{err}"
    );
}

// ---- Files that are not files: FIFOs, devices, directories ------------------------------------

/// A named pipe at `path` (nothing writes to it: reading it would wait for ever).
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_key_file_must_be_a_small_regular_file() {
    use hhq::privacy::Pseudonymizer;
    let dir = tempfile::tempdir().unwrap();
    let error = |path: &Path| {
        Pseudonymizer::from_file(path)
            .expect_err("refused")
            .to_string()
            .replace(&dir.path().display().to_string(), "<dir>")
    };
    let fifo = dir.path().join("key.fifo");
    mkfifo(&fifo);
    let zero = dir.path().join("key");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let hint = "not a regular file: write the key into a file (e.g. `head -c 32 /dev/urandom | base64 > key`)";
    assert_eq!(
        error(&fifo),
        format!("<dir>/key.fifo: the key file is a named pipe (FIFO), {hint}")
    );
    assert_eq!(
        error(&zero),
        format!("<dir>/key: the key file is a character device, {hint}")
    );
    assert_eq!(
        error(dir.path()),
        format!("<dir>: the key file is a directory, {hint}")
    );
    let big = dir.path().join("big");
    std::fs::write(&big, "k".repeat(4097)).unwrap();
    assert_eq!(
        error(&big),
        "<dir>/big: the key file is larger than 4096 bytes; a key is 16 to a few hundred bytes: \
         is it the right file?"
    );
    let good = dir.path().join("good");
    std::fs::write(&good, format!("{}\n", "k".repeat(4095))).unwrap();
    Pseudonymizer::from_file(&good).unwrap();
}

#[tokio::test]
async fn an_extract_that_is_a_fifo_or_a_device_is_named_not_missing() {
    let dir = common::minimal();
    let claims = dir.path().join("claims.parquet");
    std::fs::remove_file(&claims).unwrap();
    mkfifo(&claims);
    let tail = "not a regular file: an extract is a Parquet file, or a directory named after the \
                extract (without `.parquet`) holding Parquet part files; copy the export into a file";
    assert_eq!(
        open_error(dir.path()).await,
        format!("<data>/claims.parquet: a named pipe (FIFO), {tail}")
    );
    std::fs::remove_file(&claims).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &claims).unwrap();
    assert_eq!(
        open_error(dir.path()).await,
        format!("<data>/claims.parquet: a character device, {tail}")
    );
    // A part file too.
    std::fs::remove_file(&claims).unwrap();
    std::fs::create_dir(dir.path().join("claims")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("claims/part-1.parquet")).unwrap();
    assert_eq!(
        open_error(dir.path()).await,
        format!("<data>/claims/part-1.parquet: a character device, {tail}")
    );
}

#[test]
fn a_recursive_query_without_an_end_is_stopped_by_its_time_limit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args([
            "sql",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
            "--timeout",
            "3s",
        ])
        .current_dir(common::root())
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        "error: the query was stopped after 3s, its time limit; give it longer with --timeout \
         (e.g. --timeout 30m), or look for a recursive query that never ends\n"
    );
}

// ---- Measure files -----------------------------------------------------------------------------

use hhq::definitions::Definitions;
use hhq::engine::Engine;
use hhq::measure::Measure;
use hhq::period::Period;

use common::GOOD_MEASURE as GOOD;

/// The parse error of a measure file's text.
fn parse_error(yaml: &str) -> String {
    Measure::parse(Path::new("measures/m.yaml"), yaml)
        .expect_err("the file is refused")
        .to_string()
}

#[test]
fn an_alias_bomb_is_stopped_quickly() {
    // Nine levels of ten aliases each: 10^9 conditions if expanded. Every level type-checks (a
    // condition may hold `any_of` conditions), so only the alias limit stops it.
    let mut bomb = String::from("  - &a0 {name: e, exists: ed_visits, date: visit_date}\n");
    for i in 1..10 {
        let aliases = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("  - &a{i} {{name: e{i}, any_of: [{aliases}]}}\n"));
    }
    let yaml = GOOD.replace("components:", &format!("exclusions:\n{bomb}components:"));
    let started = std::time::Instant::now();
    insta::assert_snapshot!(parse_error(&yaml), @r"
    measures/m.yaml:14:29: aliases (`*name`) expand to more than 10000 YAML nodes
      hint: a measure needs few aliases, if any: write the conditions out
    ");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn deep_nesting_is_refused_at_its_place() {
    // 10,000 opening brackets.
    insta::assert_snapshot!(parse_error(&"[".repeat(10_000)), @r"
    measures/m.yaml:1:33: the YAML nests deeper than 32 levels
      hint: a measure nests about six levels; look for an unclosed `[` or `{`
    ");
    // Conditions nest (`any_of`), so deep nesting type-checks: only the depth limit stops it
    // before the compiler recurses through it.
    let deep = format!(
        "{}exists: ed_visits, date: visit_date{}",
        "{any_of: [".repeat(5_000),
        "]}".repeat(5_000)
    );
    let yaml = GOOD.replace(
        "components:",
        &format!("exclusions:\n  - {{name: deep, {}\ncomponents:", &deep[1..]),
    );
    let msg = parse_error(&yaml);
    assert!(
        msg.starts_with("measures/m.yaml:10:")
            && msg.contains(": the YAML nests deeper than 32 levels"),
        "{msg}"
    );
}

#[test]
fn conditions_nested_within_the_limit_compile() {
    // `any_of` 12 deep: legal, and the compiler's recursion copes.
    let mut inner = "{exists: ed_visits, date: visit_date}".to_string();
    for _ in 0..12 {
        inner = format!("{{any_of: [{inner}]}}");
    }
    let yaml = GOOD.replace(
        "components:",
        &format!(
            "exclusions:\n  - {{name: deep, {}\ncomponents:",
            &inner[1..]
        ),
    );
    let m = Measure::parse(Path::new("m.yaml"), &yaml).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt.block_on(offline());
    hhq::compile::compile(&m, engine.catalog(), &Period::year(2025)).unwrap();
}

#[test]
fn an_oversized_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    // A very long scalar: 20 MB of description.
    std::fs::write(
        &path,
        format!("{GOOD}description: {}\n", "x".repeat(20_000_000)),
    )
    .unwrap();
    let msg = Measure::load(&path).unwrap_err().to_string();
    assert_eq!(
        msg.replace(&dir.path().display().to_string(), "<defs>"),
        "<defs>/m.yaml:1:1: the file is 20000308 bytes; a definition file of this kind may be at \
         most 262144 bytes\n  hint: is it the right file? split a long list or definition into \
         smaller files"
    );
}

#[test]
fn a_long_scalar_within_the_limit_loads() {
    let m = Measure::parse(
        Path::new("m.yaml"),
        &format!("{GOOD}description: {}\n", "x".repeat(200_000)),
    )
    .unwrap();
    assert_eq!(m.description.map(|d| d.len()), Some(200_000));
}

#[test]
fn a_repeated_key_is_named() {
    insta::assert_snapshot!(parse_error(&GOOD.replace("title: Test\n", "title: Test\nid: OTHER\n")), @r"
    measures/m.yaml:3:1: the key `id` appears twice in one mapping
      hint: keep one of them: YAML does not merge repeated keys
    ");
}

#[test]
fn a_tab_in_the_indentation_is_named() {
    // The parser reports the tab where the scalar before it ends.
    insta::assert_snapshot!(parse_error(&GOOD.replace("\n      date: visit_date", "\n\tdate: visit_date")), @r"
    measures/m.yaml:13:14: while scanning a plain scalar, found a tab
      hint: indent YAML with spaces, not tabs
    ");
}

#[test]
fn a_second_document_is_refused() {
    insta::assert_snapshot!(parse_error(&format!("{GOOD}---\n{GOOD}")), @r"
    measures/m.yaml:16:1: more than one YAML document (`---`)
      hint: a measure file holds one measure; put the next one in a file of its own
    ");
}

#[test]
fn an_id_too_long_for_a_file_name_is_refused_at_its_place() {
    // A measure's id names its detail file (`detail/<id>.parquet`); 300 characters would fail
    // only when the run writes, with `File name too long`.
    let long = "A".repeat(300);
    insta::assert_snapshot!(parse_error(&GOOD.replace("id: TEST-1", &format!("id: {long}"))), @r"
    measures/m.yaml:1:5: measure id is 300 characters long; ids name output files, so an id may be at most 64
      hint: for example `AMB-HH`
    ");
    let longest = "A".repeat(hhq::measure::MAX_ID_LEN);
    Measure::parse(
        Path::new("m.yaml"),
        &GOOD.replace("id: TEST-1", &format!("id: {longest}")),
    )
    .unwrap();
    // A path in an id is refused too.
    insta::assert_snapshot!(parse_error(&GOOD.replace("id: TEST-1", "id: ../../x")), @r#"
    measures/m.yaml:1:5: measure id "../../x" must be letters, digits, `-` or `_`
      hint: for example `AMB-HH`
    "#);
    // Cohort and risk-flag ids name nothing yet, but are held to the same rule.
    let smi = std::fs::read_to_string(common::root().join("measures/cohorts/smi.yaml")).unwrap();
    let msg = hhq::cohort::Definition::parse(
        Path::new("cohorts/smi.yaml"),
        &smi.replace("\nid: SMI\n", &format!("\nid: {long}\n")),
    )
    .unwrap_err()
    .to_string();
    insta::assert_snapshot!(msg, @r"
    cohorts/smi.yaml:4:5: id is 300 characters long; ids name output files, so an id may be at most 64
      hint: for example `SMI`
    ");
}

#[test]
fn a_yaml_tag_is_an_error_at_its_place_in_every_kind_of_definition() {
    // Tags the parser does not know were dropped without a word, and the node read as if plain.
    let tagged = |text: &str| text.replacen("title: Test", "title: !include secrets.yaml", 1);
    let msg = parse_error(&tagged(GOOD));
    assert!(
        msg.starts_with("measures/m.yaml:2:17: the YAML tag `!include` is not supported")
            && msg.contains("hint: hhq reads plain YAML: remove the tag"),
        "{msg}"
    );
    for tag in ["!!python/object:os.system", "!custom"] {
        let msg = parse_error(&GOOD.replacen("title: Test", &format!("title: {tag} Test"), 1));
        assert!(
            msg.starts_with("measures/m.yaml:2:")
                && msg.contains(": the YAML tag `")
                && msg.contains("is not supported"),
            "{tag}: {msg}"
        );
    }
    // A cohort definition, a mapping and a data-quality policy alike.
    let cohort = std::fs::read_to_string(common::root().join("measures/cohorts/smi.yaml")).unwrap();
    let cohort = cohort.replacen("kind: cohort", "kind: !include cohort", 1);
    let msg = hhq::cohort::Definition::parse(Path::new("smi.yaml"), &cohort)
        .expect_err("refused")
        .to_string();
    assert!(
        msg.contains("the YAML tag `!include` is not supported"),
        "{msg}"
    );
    let line = cohort.lines().position(|l| l.starts_with("kind:")).unwrap() + 1;
    assert!(msg.starts_with(&format!("smi.yaml:{line}:")), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let mapping = std::fs::read_to_string(common::root().join("mappings/flat-csv.yaml")).unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, mapping.replacen("name: ", "name: !include ", 1)).unwrap();
    let msg = hhq::import::Mapping::load(&path)
        .expect_err("refused")
        .to_string();
    assert!(
        msg.contains("the YAML tag `!include` is not supported"),
        "{msg}"
    );

    let msg = hhq::quality::Policy::parse(Path::new("policy.yaml"), "on_failure: !include x\n")
        .expect_err("refused")
        .to_string();
    assert!(
        msg.starts_with("policy.yaml:1:")
            && msg.contains(": the YAML tag `!include` is not supported"),
        "{msg}"
    );
}

#[test]
fn a_file_not_in_utf8_is_named_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    // "Café" in Latin-1.
    std::fs::write(
        &path,
        GOOD.replace("title: Test", "title: Caf\u{e9}")
            .replace('\u{e9}', "\u{1}"),
    )
    .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|b| *b == 1).unwrap();
    bytes[at] = 0xE9;
    std::fs::write(&path, bytes).unwrap();
    let msg = Measure::load(&path).unwrap_err().to_string();
    assert_eq!(
        msg.replace(&dir.path().display().to_string(), "<defs>"),
        "<defs>/m.yaml:2:11: the file is not UTF-8 text: byte 0xE9 cannot start a character here\n  \
         hint: save the file as UTF-8 (Latin-1 or Windows-1252 files need converting)"
    );
}

// ---- Filters and building blocks that try to do more than select -------------------------------

/// The shipped definitions over empty extracts.
async fn offline() -> Engine {
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    Engine::offline(&defs).await.unwrap()
}

/// The error of compiling GOOD with another `where:` expression.
async fn filter_error(filter: &str) -> String {
    let engine = offline().await;
    let yaml = GOOD.replace("NOT led_to_admission", &format!("{filter:?}"));
    let m = Measure::parse(Path::new("measures/m.yaml"), &yaml).unwrap();
    hhq::compile::compile(&m, engine.catalog(), &Period::year(2025))
        .expect_err("the filter is refused")
        .to_string()
}

#[tokio::test]
async fn a_filter_cannot_read_a_file() {
    insta::assert_snapshot!(filter_error("visit_date IN (SELECT * FROM read_csv('/etc/passwd'))").await, @"measures/m.yaml:15:14: in the `where` expression of `ed_visits`: a `where` expression may not contain a subquery");
}

#[tokio::test]
async fn a_filter_cannot_run_a_second_statement() {
    let msg = filter_error("1=1; DROP VIEW claims").await;
    assert!(
        msg.starts_with("measures/m.yaml:15:14: the `where` expression does not parse: ")
            && msg.contains("Expected: EOF, found: ;"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_filter_cannot_break_out_of_its_parentheses() {
    let msg = filter_error("1) OR (1=1").await;
    assert!(
        msg.starts_with("measures/m.yaml:15:14: the `where` expression does not parse: ")
            && msg.contains("found: )"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_filter_calling_a_table_function_does_not_plan() {
    // Functions are allowed in filters; none of DataFusion's scalar functions touches a file,
    // and table functions are not functions of a row: the filter does not plan, at its place.
    let msg = filter_error("read_csv('/etc/passwd') IS NULL").await;
    assert!(
        msg.starts_with(
            "measures/m.yaml:15:14: in the `where` expression of `ed_visits`: the `where` \
             expression does not plan: Error during planning: Invalid function 'read_csv'"
        ),
        "{msg}"
    );
}

/// The message of a filter refused when the measure compiles, after `measures/m.yaml:15:14: in
/// the `where` expression of `ed_visits`: ` (the filter's place, asserted here).
async fn planned_error(filter: &str) -> String {
    let msg = filter_error(filter).await;
    let at = "measures/m.yaml:15:14: in the `where` expression of `ed_visits`: ";
    assert!(msg.starts_with(at), "{filter}: {msg}");
    msg[at.len()..].lines().next().unwrap().to_string()
}

#[tokio::test]
async fn a_filter_that_is_not_a_test_is_refused_at_its_place() {
    assert_eq!(
        planned_error("1").await,
        "the `where` expression's value is of type Int64, not true or false"
    );
    assert_eq!(
        planned_error("visit_date").await,
        "the `where` expression's value is of type Date32, not true or false"
    );
}

#[tokio::test]
async fn a_filter_with_an_aggregate_or_a_window_function_is_refused_at_its_place() {
    assert_eq!(
        planned_error("count(*) > 1").await,
        "`count` is an aggregate function; a `where` expression tests one row"
    );
    assert_eq!(
        planned_error("row_number() OVER (ORDER BY visit_date) = 1").await,
        "`row_number` is a window function; a `where` expression tests one row"
    );
}

#[tokio::test]
async fn a_filter_with_a_parameter_is_refused_at_its_place() {
    for p in ["$1", "?"] {
        assert_eq!(
            planned_error(&format!("member_id = {p}")).await,
            format!("`{p}` is a parameter, which nothing fills in a `where` expression")
        );
    }
}

#[tokio::test]
async fn a_filter_whose_constant_part_fails_is_refused_at_its_place() {
    // DataFusion's simplifier leaves `1/0` for every row to fail on at run time, so each
    // constant part is computed once when the filter is planned.
    assert_eq!(
        planned_error("1/0 = 1").await,
        "the `where` expression cannot be computed: Arrow error: Divide by zero error"
    );
    assert_eq!(
        planned_error("NOT mental_health OR 1/0 = 1").await,
        "the `where` expression cannot be computed: Arrow error: Divide by zero error"
    );
    assert_eq!(
        planned_error("CAST(300 AS TINYINT) = 1").await,
        "the `where` expression cannot be computed: Arrow error: Cast error: Can't cast value \
         300 to type Int8"
    );
    assert_eq!(
        planned_error("visit_date = 'not a date'").await,
        "the `where` expression cannot be computed: Arrow error: Cast error: Cannot cast string \
         'not a date' to value of Date32 type"
    );
}

#[tokio::test]
async fn a_filter_with_an_unknown_function_or_unlike_types_is_refused_at_its_place() {
    assert!(
        planned_error("no_such_function(visit_date)")
            .await
            .starts_with(
                "the `where` expression does not plan: Error during planning: Invalid function \
                 'no_such_function'"
            )
    );
    assert_eq!(
        planned_error("'a' + 1 = 2").await,
        "the `where` expression compares or combines unlike types: Error during planning: \
         Cannot coerce arithmetic expression Utf8 + Int64 to valid types"
    );
    // An unknown column is refused before planning, with the block's columns.
    let msg = filter_error("no_such_column > 1").await;
    assert!(
        msg.starts_with(
            "measures/m.yaml:15:14: in the `where` expression of `ed_visits`: unknown column \
             `no_such_column`"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn filters_that_plan_still_compile() {
    // A comparison with a date literal, a value set over a list, a volatile function.
    let engine = offline().await;
    for f in [
        "visit_date > '2025-01-01' AND NOT led_to_admission",
        "random() < 2 OR mental_health",
        "coalesce(mental_health, false)",
    ] {
        let yaml = GOOD.replace("NOT led_to_admission", &format!("{f:?}"));
        let m = Measure::parse(Path::new("measures/m.yaml"), &yaml).unwrap();
        hhq::compile::compile(&m, engine.catalog(), &Period::year(2025))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

/// The shipped blocks plus one more, `evil.sql`; the error of loading them.
fn block_error(sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(common::root().join("queries")).unwrap() {
        let p = f.unwrap().path();
        // The block files, not queries/examples/ (ad hoc queries, never blocks).
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("evil.sql"), sql).unwrap();
    Definitions::load_shared(&common::root().join("measures"), dir.path())
        .expect_err("the block is refused")
        .to_string()
        .replace(&dir.path().display().to_string(), "<queries>")
}

#[test]
fn a_block_is_one_query_only() {
    const HINT: &str = "\n  hint: a building block is one SELECT (or WITH … SELECT) query; it cannot change tables, read files or set options";
    let cases = [
        (
            "-- evil\nSELECT 1 AS x;\nDROP VIEW claims;\n",
            "<queries>/evil.sql:3:1: the file holds 2 statements (a `DROP` follows the first); a building block is one query",
        ),
        (
            "COPY (SELECT * FROM claims) TO '/tmp/claims.csv'",
            "<queries>/evil.sql:1:1: a `COPY` statement is not a query",
        ),
        (
            "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '/etc/passwd'",
            "<queries>/evil.sql:1:1: a `CREATE` statement is not a query",
        ),
        (
            "  SET datafusion.execution.target_partitions = 1",
            "<queries>/evil.sql:1:3: a `SET` statement is not a query",
        ),
        (
            "INSERT INTO claims SELECT * FROM claims",
            "<queries>/evil.sql:1:1: a `INSERT` statement is not a query",
        ),
        (
            "WITH x AS (SELECT 1 AS a) SELECT a INTO copied FROM x",
            "<queries>/evil.sql:1:1: `SELECT … INTO` creates a table; a building block is a query",
        ),
        (
            "-- nothing\n",
            "<queries>/evil.sql:1:1: the file holds no query",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(block_error(sql), format!("{want}{HINT}"), "{sql}");
    }
}

#[test]
fn a_right_join_with_a_null_test_is_refused_and_an_anti_join_is_not() {
    // DataFusion 55 can move the null test across a swapped join: claims_final once kept no
    // claim line that way (tests/suite/measures.rs, superseded_versions_change_no_result…).
    let e = block_error(
        "-- an anti join written as an outer join\nSELECT c.*\nFROM superseded_claims s\n  \
         right outer join claims c ON s.claim_id = c.claim_id\nWHERE s.claim_id is null",
    );
    assert_eq!(
        e,
        "<queries>/evil.sql:4:3: a `RIGHT JOIN` in a query that tests `IS NULL`: DataFusion 55 \
         can move a null test on the optional side onto the other side's column of the same name \
         and keep no row\n  hint: for the rows of `b` that match no row of `a`, write `a RIGHT \
         ANTI JOIN b ON …` or `NOT EXISTS`; for an outer join, write `b LEFT JOIN a ON …`"
    );
    // The same rows as an anti join, or a left join, load; so does a right join without a null
    // test, and a column named "right".
    let dir = tempfile::tempdir().unwrap();
    for (i, sql) in [
        "SELECT c.* FROM superseded_claims s RIGHT ANTI JOIN claims c ON s.claim_id = c.claim_id",
        "SELECT c.* FROM claims c LEFT JOIN superseded_claims s ON s.claim_id = c.claim_id \
         WHERE s.claim_id IS NULL",
        "SELECT c.* FROM superseded_claims s RIGHT JOIN claims c ON s.claim_id = c.claim_id",
        "SELECT \"right\" FROM (SELECT 1 AS \"right\") t JOIN claims c ON true WHERE c.mco_id IS NULL",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.path().join(format!("ok_{i}.sql")), sql).unwrap();
    }
    for f in std::fs::read_dir(common::root().join("queries")).unwrap() {
        let p = f.unwrap().path();
        // The block files, not queries/examples/ (ad hoc queries, never blocks).
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    Definitions::load_shared(&common::root().join("measures"), dir.path()).unwrap();
}

#[test]
fn a_block_reads_only_extracts_blocks_and_inputs() {
    // A block names the extracts' usable rows, other blocks and inputs; a file path, every row
    // as read (`__all`, `__raw`), another schema's name or an unknown name is refused at load,
    // where it is written.
    for (sql, name, at, says) in [
        (
            "SELECT * FROM '/etc/passwd'",
            "/etc/passwd",
            "1:16",
            "which is not an extract",
        ),
        (
            "SELECT *\nFROM claims__all",
            "claims__all",
            "2:6",
            "every row of an extract",
        ),
        (
            "SELECT * FROM claims c\nJOIN enrollment__raw e USING (member_id)",
            "enrollment__raw",
            "2:6",
            "every row of an extract",
        ),
        (
            "SELECT * FROM datafusion.public.claims",
            "datafusion.public.claims",
            "1:15",
            "which is not an extract",
        ),
        (
            "SELECT * FROM information_schema.tables",
            "information_schema.tables",
            "1:15",
            "which is not an extract",
        ),
        (
            "WITH c AS (SELECT * FROM clams) SELECT * FROM c",
            "clams",
            "1:26",
            "did you mean `claims`?",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("evil.sql"), sql).unwrap();
        let e = Definitions::load_shared(&common::root().join("measures"), dir.path())
            .expect_err("refused")
            .to_string();
        assert!(
            e.starts_with(&format!(
                "{}:{at}: building block `evil` reads `{name}`",
                dir.path().join("evil.sql").display()
            )) && e.contains(says),
            "{sql}: {e}"
        );
    }
    // A CTE's own name is not a table.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fine.sql"),
        "WITH c AS (SELECT * FROM claims) SELECT * FROM c JOIN risk_weights r ON true",
    )
    .unwrap();
    Definitions::load_shared(&common::root().join("measures"), dir.path()).unwrap();
}

// ---- Value sets --------------------------------------------------------------------------------

#[test]
fn a_set_of_a_thousand_codes_is_an_in_list_and_a_larger_one_a_lookup() {
    let csv = |n: usize| {
        let mut s = String::from("value_set,code_system,code\n");
        for i in 0..n {
            s.push_str(&format!("big,ICD10CM,Q{i:06}\n"));
        }
        s
    };
    let mut sets = hhq::measure::valueset::ValueSets::default();
    sets.add_csv(Path::new("a.csv"), &csv(1_000)).unwrap();
    // Both guarded by the range the codes span.
    assert!(
        sets.get("big")
            .unwrap()
            .sql_predicate("dx")
            .starts_with("(dx >= 'Q000000' AND dx < 'Q00099:' AND dx IN ('Q000000', ")
    );
    let mut sets = hhq::measure::valueset::ValueSets::default();
    sets.add_csv(Path::new("a.csv"), &csv(1_001)).unwrap();
    assert_eq!(
        sets.get("big").unwrap().sql_predicate("dx"),
        "(dx >= 'Q000000' AND dx < 'Q001001' AND hhq_value_set_contains(dx, 'big'))"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_licensed_set_of_200_000_codes_compiles_and_runs_with_the_same_results() {
    // A licensed `mental_illness_dx` of the illustrative codes plus 200,000 codes no claim has:
    // FUH-HH (through its blocks) must give the illustrative set's results, in seconds.
    let defs = tempfile::tempdir().unwrap();
    std::fs::create_dir(defs.path().join("valuesets")).unwrap();
    let illustrative =
        std::fs::read_to_string(common::root().join("measures/valuesets/illustrative.csv"))
            .unwrap();
    std::fs::write(
        defs.path().join("valuesets/illustrative.csv"),
        &illustrative,
    )
    .unwrap();
    let mut licensed = String::from("value_set,code_system,code\n");
    for line in illustrative
        .lines()
        .filter(|l| l.starts_with("mental_illness_dx,"))
    {
        let cells: Vec<&str> = line.split(',').collect();
        licensed.push_str(&format!("{},{},{}\n", cells[0], cells[1], cells[2]));
    }
    for i in 0..200_000 {
        licensed.push_str(&format!("mental_illness_dx,ICD10CM,Q{i:06}\n"));
    }
    std::fs::write(defs.path().join("valuesets/licensed.csv"), &licensed).unwrap();
    std::fs::copy(
        common::root().join("measures/fuh-hh.yaml"),
        defs.path().join("fuh-hh.yaml"),
    )
    .unwrap();

    let mut results = Vec::new();
    for dir in [common::root().join("measures"), defs.path().to_path_buf()] {
        let started = std::time::Instant::now();
        let d = Definitions::load(&dir, &common::root().join("queries")).unwrap();
        let engine = Engine::open(&common::root().join("testdata"), &d)
            .await
            .unwrap();
        let m = d.measures.iter().find(|m| m.id == "FUH-HH").unwrap();
        let c = hhq::compile::compile(m, engine.catalog(), &Period::year(2025)).unwrap();
        assert!(c.detail_sql().len() < 100_000, "the SQL stays small");
        let rows = engine.run(&c).await.unwrap().rows;
        results.push(hhq::results::to_csv(&rows));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(results[0].lines().count() > 10);
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_value_set_file_not_in_utf8_is_named_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("licensed.csv"),
        b"value_set,code_system,code,description\nmh,ICD10CM,F200,Schizophr\xE9nie\n",
    )
    .unwrap();
    let msg = hhq::measure::valueset::ValueSets::load_dir(dir.path())
        .unwrap_err()
        .to_string()
        .replace(&dir.path().display().to_string(), "<vs>");
    insta::assert_snapshot!(msg, @r"
    <vs>/licensed.csv:2:26: the file is not UTF-8 text: byte 0xE9 cannot start a character here
      hint: save the file as UTF-8 (Latin-1 or Windows-1252 files need converting)
    ");
}

#[tokio::test]
async fn check_plans_every_block_as_a_run_would() {
    // A constant cast that overflows plans as a view; the optimizer refuses it, so `hhq check`
    // does, at the block's file.
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(common::root().join("queries")).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("evil.sql"),
        "SELECT member_id, CAST(300 AS TINYINT) AS x FROM claims",
    )
    .unwrap();
    let report = hhq::pipeline::check(&common::root().join("measures"), dir.path())
        .await
        .unwrap();
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|p| {
            p.to_string()
                .replace(&dir.path().display().to_string(), "<queries>")
        })
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("<queries>/evil.sql:1:1: building block `evil` does not plan: ")
            && problems[0].contains("Can't cast value 300 to type Int8"),
        "{problems:?}"
    );
}
