//! The extract contract is enforced when a data directory is opened: a missing column or a wrong
//! type fails with an error naming the file, the column and the expected and found types; a row
//! that breaks a row rule (a null required value, a coded value not allowed) is found, named by
//! file and row, and set aside (tests/suite/quality.rs covers what the policy then does). Messages are
//! pinned as snapshots (with the temporary directory replaced by `<data>`).

use crate::common;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use hhq::extract::contract::{CLAIMS, CONTACTS};

/// Open the directory and return the error message, with the directory replaced by `<data>`.
async fn open_error(dir: &Path) -> String {
    let ctx = SessionContext::new();
    let err = hhq::extract::open_all(&ctx, dir)
        .await
        .expect_err("the extract breaks the contract");
    err.to_string()
        .replace(&dir.display().to_string(), "<data>")
}

/// Open the directory and describe every row-rule finding, with the directory as `<data>`.
async fn findings(dir: &Path) -> Vec<String> {
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, dir).await.unwrap();
    opened
        .iter()
        .flat_map(|e| e.findings.iter())
        .map(|f| f.describe().replace(&dir.display().to_string(), "<data>"))
        .collect()
}

/// Replace one extract file with a batch built from raw columns.
fn write_raw(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

#[tokio::test]
async fn a_valid_directory_opens() {
    let dir = common::minimal();
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    let rows: Vec<(&str, u64)> = opened.iter().map(|e| (e.name, e.rows)).collect();
    assert_eq!(
        rows,
        vec![
            ("claims", 1),
            ("contacts", 1),
            ("members", 1),
            ("enrollment", 2)
        ]
    );
}

#[tokio::test]
async fn missing_column() {
    let dir = common::minimal();
    // The members file without `sex`.
    write_raw(
        dir.path(),
        "members",
        vec![
            ("member_id", strings(&["M1"])),
            (
                "birth_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![7456])),
            ),
            (
                "dual_eligible",
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![false])),
            ),
        ],
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/members.parquet: missing column `sex` (string) required by the members extract contract");
}

#[tokio::test]
async fn wrong_type_names_expected_and_found() {
    let dir = common::minimal();
    // line_number written as a 64-bit integer: refused rather than silently narrowed.
    let batch = hhq::extract::csv::csv_to_batch(
        Path::new("x"),
        &CLAIMS,
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\nM1,C1,1,outpatient,original,2025-03-10,2025-03-10\n",
    )
    .unwrap();
    let schema = batch.schema();
    let cols: Vec<(&str, ArrayRef)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| {
            let a = if f.name() == "line_number" {
                Arc::new(Int64Array::from(vec![1])) as ArrayRef
            } else {
                a.clone()
            };
            (f.name().as_str(), a)
        })
        .collect();
    write_raw(dir.path(), "claims", cols);
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/claims.parquet: column `line_number` has type Int64, but the contract says int32 (a 32-bit or narrower integer)");
}

#[tokio::test]
async fn timestamp_where_a_date_belongs() {
    let dir = common::minimal();
    write_raw(
        dir.path(),
        "contacts",
        vec![
            ("contact_id", strings(&["K1"])),
            ("member_id", strings(&["M1"])),
            (
                "contact_date",
                Arc::new(TimestampSecondArray::from(vec![1_736_035_200])),
            ),
            ("hhp_id", strings(&["HHP-1"])),
            ("service", strings(&["care_management"])),
            ("mode", strings(&["phone"])),
            (
                "reached",
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![true])),
            ),
        ],
    );
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>/contacts.parquet: column `contact_date` has type Timestamp(s), but the contract says date (Parquet INT32 annotated DATE; timestamps are not accepted)");
}

#[tokio::test]
async fn null_member_id_names_the_row_and_is_set_aside() {
    let dir = common::minimal();
    common::write_csv(
        dir.path(),
        &CONTACTS,
        "contact_id,member_id,contact_date,hhp_id,service,mode,reached\n\
         K1,M1,2025-01-05,HHP-1,care_management,phone,true\n\
         K2,,2025-02-05,HHP-1,care_management,phone,true\n\
         K3,,2025-03-05,HHP-1,care_management,phone,true\n",
    );
    assert_eq!(
        findings(dir.path()).await,
        ["<data>/contacts.parquet row 2: `member_id` is null (2 rows in all)"]
    );
    // The contacts view holds the usable row only.
    let ctx = SessionContext::new();
    hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    let n = ctx
        .sql("SELECT contact_id FROM contacts")
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn unknown_coded_value_names_the_row_and_is_set_aside() {
    let dir = common::minimal();
    common::write_csv(
        dir.path(),
        &CLAIMS,
        "member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\n\
         M1,C1,1,outpatient,original,2025-03-10,2025-03-10\n\
         M1,C2,1,dental,original,2025-03-11,2025-03-11\n",
    );
    assert_eq!(
        findings(dir.path()).await,
        ["<data>/claims.parquet row 2: `claim_type` has value \"dental\" (1 row)"]
    );
}

#[tokio::test]
async fn not_a_parquet_file() {
    let dir = common::minimal();
    std::fs::write(
        dir.path().join("enrollment.parquet"),
        "member_id,span_type\nM1,medicaid\n",
    )
    .unwrap();
    let msg = open_error(dir.path()).await;
    assert!(
        msg.starts_with("<data>/enrollment.parquet: not a readable Parquet file:"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_extract() {
    let dir = common::minimal();
    std::fs::remove_file(dir.path().join("members.parquet")).unwrap();
    insta::assert_snapshot!(open_error(dir.path()).await, @"<data>: missing extract `members`: expected <data>/members.parquet or a directory <data>/members/ of Parquet files");
}

#[tokio::test]
async fn an_extract_may_be_a_directory_of_parts_and_carry_extra_columns() {
    let dir = common::minimal();
    // Split claims into two part files in claims/, one with an extra optional column.
    std::fs::remove_file(dir.path().join("claims.parquet")).unwrap();
    std::fs::create_dir(dir.path().join("claims")).unwrap();
    for (part, id) in [("part-0", "C1"), ("part-1", "C2")] {
        let batch = hhq::extract::csv::csv_to_batch(
            Path::new("x"),
            &CLAIMS,
            &format!("member_id,claim_id,line_number,claim_type,adjustment,service_from,service_to\nM1,{id},1,outpatient,original,2025-03-10,2025-03-10\n"),
        )
        .unwrap();
        hhq::extract::csv::write_parquet(
            &dir.path().join("claims").join(format!("{part}.parquet")),
            &batch,
        )
        .unwrap();
    }
    let ctx = SessionContext::new();
    let opened = hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    assert_eq!(opened[0].rows, 2);
    assert_eq!(opened[0].files.len(), 2);
    let n = ctx
        .sql("SELECT count(*) AS n FROM claims WHERE line_number = 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let col = n[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(col.value(0), 2);
}

#[tokio::test]
async fn extra_columns_are_kept_and_contract_types_enforced() {
    let dir = common::minimal();
    // An extra optional column, and sex as a dictionary-encoded string (an accepted encoding).
    let sex: ArrayRef = Arc::new(
        vec!["F"]
            .into_iter()
            .collect::<datafusion::arrow::array::DictionaryArray<datafusion::arrow::datatypes::Int32Type>>(),
    );
    write_raw(
        dir.path(),
        "members",
        vec![
            ("member_id", strings(&["M1"])),
            (
                "birth_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![7456])),
            ),
            ("sex", sex),
            (
                "dual_eligible",
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![false])),
            ),
            ("race", strings(&["white"])),
            ("ethnicity", strings(&["not_hispanic"])),
            ("county_fips", strings(&["20045"])),
            (
                "rural",
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![true])),
            ),
            (
                "death_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![
                    None::<i32>,
                ])),
            ),
            ("plan_region", strings(&["north"])),
        ],
    );
    let ctx = SessionContext::new();
    hhq::extract::open_all(&ctx, dir.path()).await.unwrap();
    let df = ctx
        .sql("SELECT sex, plan_region FROM members")
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let text = |i: usize| {
        let a = datafusion::arrow::compute::cast(batches[0].column(i), &DataType::Utf8).unwrap();
        a.as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string()
    };
    assert!(matches!(
        batches[0].column(0).data_type(),
        DataType::Utf8 | DataType::Utf8View
    ));
    assert_eq!((text(0), text(1)), ("F".to_string(), "north".to_string()));
}
