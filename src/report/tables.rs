//! The data behind every table and chart, as CSV (what the report shows, `DS` for suppressed) and
//! Parquet (typed: numbers as Float64, null when suppressed, and a `suppressed` column naming
//! the hidden cells of each row).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::report::doc::{Cell, Table};

/// The table as CSV, the cells as the report shows them.
pub fn to_csv(t: &Table) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| crate::error::Error::Report(format!("table {}: {e}", t.id));
    w.write_record(
        t.columns
            .iter()
            .map(|c| crate::escape::csv_text(&c.name).into_owned()),
    )
    .map_err(err)?;
    for row in &t.rows {
        // Text a spreadsheet would run is quoted; a figure's minus sign is not a formula.
        w.write_record(row.iter().map(|c| match c {
            Cell::Text { text } => crate::escape::csv_text(text).into_owned(),
            other => other.display().to_string(),
        }))
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| crate::error::Error::Report(format!("table {}: {e}", t.id)))
}

/// The table as Parquet.
pub fn to_parquet(t: &Table) -> Result<Vec<u8>> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let cells = t.rows.iter().map(|r| r.get(i).unwrap_or(&Cell::Empty));
        if c.numeric {
            fields.push(Field::new(&c.name, DataType::Float64, true));
            let values: Float64Array = cells
                .map(|cell| match cell {
                    Cell::Number { value, .. } => Some(*value),
                    _ => None,
                })
                .collect();
            arrays.push(Arc::new(values));
        } else {
            fields.push(Field::new(&c.name, DataType::Utf8, true));
            let values: StringArray = cells
                .map(|cell| match cell {
                    Cell::Empty => None,
                    other => Some(other.display().to_string()),
                })
                .collect();
            arrays.push(Arc::new(values));
        }
    }
    fields.push(Field::new("suppressed", DataType::Utf8, true));
    let flags: StringArray = t
        .rows
        .iter()
        .map(|r| {
            let hidden: Vec<&str> = r
                .iter()
                .zip(&t.columns)
                .filter(|(c, _)| matches!(c, Cell::Suppressed { .. }))
                .map(|(_, col)| col.name.as_str())
                .collect();
            (!hidden.is_empty()).then(|| hidden.join(","))
        })
        .collect();
    arrays.push(Arc::new(flags));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    crate::results::batches_to_parquet(schema, &[batch])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::Column;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn t() -> Table {
        Table {
            id: "x".into(),
            title: "X".into(),
            columns: vec![Column::text("measure", "M"), Column::number("rate", "R")],
            rows: vec![
                vec![Cell::text("A, \"quoted\""), Cell::decimal(45.78, 1)],
                vec![
                    Cell::text("B"),
                    Cell::suppressed(crate::suppress::Reason::SmallCell),
                ],
            ],
            note: None,
        }
    }

    #[test]
    fn csv_shows_what_the_report_shows() {
        let csv = String::from_utf8(to_csv(&t()).unwrap()).unwrap();
        assert_eq!(csv, "measure,rate\n\"A, \"\"quoted\"\"\",45.8\nB,DS\n");
    }

    #[test]
    fn parquet_is_typed_with_suppressed_cells_null_and_named() {
        let bytes = to_parquet(&t()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, bytes).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let b = &batches[0];
        let rate = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(rate.value(0), 45.8);
        assert!(rate.is_null(1));
        let flags = b.column(2).as_string::<i32>();
        assert!(flags.is_null(0));
        assert_eq!(flags.value(1), "rate");
    }
}
