//! Bad input never crashes hhq or corrupts an output (issue 6): damaged, foreign, empty and
//! drifting extracts; YAML bombs and oversized definitions; filters and building blocks that try
//! to read a file or run a statement. Each gets an error naming the file (and the line and column,
//! or the row, where there is one). What hhq does in each case is in docs/hostile-input.md.

mod common;

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
    std::fs::write(dir.path().join("claims.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims.parquet: truncated Parquet file (293474 bytes): it does not end with Parquet's magic bytes `PAR1`, so its footer is missing; the copy or export was cut short: copy or export it again");
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
        data: dir.path().to_path_buf(),
        measures: common::root().join("measures"),
        queries: common::root().join("queries"),
        out: dir.path().join("out"),
        period: Some(hhq::period::Period::year(2025)),
        only: vec!["AMB-HH".into()],
        risk_weights: None,
        privacy: Default::default(),
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
