//! SQL functions hhq adds to DataFusion, for rules plain SQL cannot state without recursion.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, Date32Builder, Int64Array, ListBuilder, StringArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `hhq_episode_starts(dates, days)`: for a list of dates, the date of the counted event each
/// belongs to, in the list's order. In date order, the first date is counted; a date less than
/// `days` days after the last counted one belongs to it; the next date at least `days` after
/// starts a new one. (HEDIS "only the first ED visit in a 31-day period", which chains and so
/// needs a loop.) The list need not be sorted, so that the compiled SQL can gather it with a
/// plain `array_agg`: with `ORDER BY` DataFusion 55 aggregates group by group (1.4 s of FUM-HH's
/// 1.6 s of work at 100k members, for 12,000 visits).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EpisodeStarts {
    signature: Signature,
}

impl EpisodeStarts {
    pub fn new() -> Self {
        EpisodeStarts {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for EpisodeStarts {
    fn default() -> Self {
        Self::new()
    }
}

fn list_of_dates() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Date32, true)))
}

/// The episode start of each date of one list, in the list's order.
pub fn episode_starts(dates: &[i32], days: i32) -> Vec<i32> {
    // The start depends on the date alone (equal dates share it): chain the distinct dates in
    // order, then look each date up.
    let mut sorted = dates.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut starts = Vec::with_capacity(sorted.len());
    let mut start: Option<i32> = None;
    for &d in &sorted {
        let s = match start {
            // In i64: the dates of a list can lie further apart than an i32 holds.
            Some(s) if i64::from(d) - i64::from(s) < i64::from(days) => s,
            _ => d,
        };
        start = Some(s);
        starts.push(s);
    }
    dates
        .iter()
        .map(|d| {
            starts[sorted
                .binary_search(d)
                .expect("every date is in the sorted list")]
        })
        .collect()
}

impl ScalarUDFImpl for EpisodeStarts {
    fn name(&self) -> &str {
        "hhq_episode_starts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::List(f), d] if f.data_type() == &DataType::Date32 && d.is_integer() => {
                Ok(list_of_dates())
            }
            _ => plan_err!("hhq_episode_starts(list of dates, days) got {args:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let days = match &args.args[1] {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(d)) if d > 0 => d as i32,
                other => {
                    return exec_err!("hhq_episode_starts: days must be positive, got {other}");
                }
            },
            ColumnarValue::Array(a) => {
                let a = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
                let a = a.as_primitive::<Int64Type>();
                if a.is_empty() || a.is_null(0) || a.value(0) <= 0 {
                    return exec_err!("hhq_episode_starts: days must be positive");
                }
                a.value(0) as i32
            }
        };
        let lists = args.args[0].to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let mut out = ListBuilder::new(Date32Builder::new())
            .with_field(Arc::new(Field::new_list_field(DataType::Date32, true)));
        for r in 0..lists.len() {
            if lists.is_null(r) {
                out.append_null();
                continue;
            }
            let values = lists.value(r);
            let values = values.as_primitive::<Date32Type>();
            if values.null_count() > 0 {
                return exec_err!("hhq_episode_starts: a date in the list is null");
            }
            for s in episode_starts(values.values(), days) {
                out.values().append_value(s);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A member's calendar attributes on a date, computed from the date's day number: `hhq_age(birth,
/// on)` (whole years, Int64), `hhq_month(d)` (`2025-03`) and `hhq_quarter(d)` (`2025Q1`), as
/// text in `Utf8`. They equal the SQL they replace (`date_part` arithmetic, `to_char(d, '%Y-%m')`,
/// `to_char(d, '%Y') || 'Q' || …`), which took 0.47 s of every million member-months in chrono's
/// formatter; a unit test holds each to that SQL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Calendar {
    kind: CalendarKind,
    signature: Signature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CalendarKind {
    Age,
    Month,
    Quarter,
}

impl Calendar {
    fn new(kind: CalendarKind) -> Self {
        let args = if kind == CalendarKind::Age { 2 } else { 1 };
        Calendar {
            kind,
            signature: Signature::exact(vec![DataType::Date32; args], Volatility::Immutable),
        }
    }
}

/// Year, month and day of a Date32 day number (days since 1970-01-01), proleptic Gregorian as
/// chrono counts: Howard Hinnant's `civil_from_days`, integer arithmetic only (chrono's date
/// arithmetic was most of these functions' time, tens of ns a row).
fn ymd(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // An i32 day number is within ±5.9 million years: the year fits an i32.
    (y as i32, m as u32, d as u32)
}

/// The year as chrono's `%Y` writes it: four digits, zero-padded, signed outside 0–9999.
fn push_year(out: &mut Vec<u8>, year: i32) {
    if (0..=9999).contains(&year) {
        let y = year as u32;
        out.extend([y / 1000, y / 100 % 10, y / 10 % 10, y % 10].map(|d| b'0' + d as u8));
    } else {
        out.extend_from_slice(format!("{year:+}").as_bytes());
    }
}

impl ScalarUDFImpl for Calendar {
    fn name(&self) -> &str {
        match self.kind {
            CalendarKind::Age => "hhq_age",
            CalendarKind::Month => "hhq_month",
            CalendarKind::Quarter => "hhq_quarter",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            CalendarKind::Age => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let first = arrays[0].as_primitive::<Date32Type>();
        let out: datafusion::arrow::array::ArrayRef = match self.kind {
            CalendarKind::Age => {
                let on = arrays[1].as_primitive::<Date32Type>();
                let ages: Int64Array = first
                    .iter()
                    .zip(on.iter())
                    .map(|(b, d)| {
                        let (by, bm, bd) = ymd(b?);
                        let (y, m, d) = ymd(d?);
                        let before_birthday = m * 100 + d < bm * 100 + bd;
                        Some(i64::from(y) - i64::from(by) - i64::from(before_birthday))
                    })
                    .collect();
                Arc::new(ages)
            }
            kind => {
                // Offsets and bytes written directly, the text checked as UTF-8 once: a
                // builder's per-value append was most of the time.
                let mut text: Vec<u8> = Vec::with_capacity(first.len() * 7);
                let mut offsets: Vec<i32> = Vec::with_capacity(first.len() + 1);
                offsets.push(0);
                for (i, &d) in first.values().iter().enumerate() {
                    if first.is_valid(i) {
                        let (y, m, _) = ymd(d);
                        push_year(&mut text, y);
                        if kind == CalendarKind::Month {
                            text.extend([b'-', b'0' + (m / 10) as u8, b'0' + (m % 10) as u8]);
                        } else {
                            text.extend([b'Q', b'0' + m.div_ceil(3) as u8]);
                        }
                    }
                    let end = i32::try_from(text.len()).map_err(|_| {
                        datafusion::error::DataFusionError::Internal(
                            "calendar text over 2 GB in one batch".into(),
                        )
                    })?;
                    offsets.push(end);
                }
                Arc::new(StringArray::try_new(
                    OffsetBuffer::new(offsets.into()),
                    text.into(),
                    first.nulls().cloned(),
                )?)
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Register the calendar functions and `hhq_episode_starts` with a session.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::from(EpisodeStarts::new()));
    for kind in [
        CalendarKind::Age,
        CalendarKind::Month,
        CalendarKind::Quarter,
    ] {
        ctx.register_udf(ScalarUDF::from(Calendar::new(kind)));
    }
}

#[cfg(test)]
mod tests {
    use super::episode_starts;

    #[test]
    fn episodes_of_dates_at_the_ends_of_int32_do_not_overflow() {
        assert_eq!(
            episode_starts(&[i32::MIN, i32::MAX, i32::MAX - 3], 30),
            vec![i32::MIN, i32::MAX - 3, i32::MAX - 3]
        );
        assert_eq!(super::ymd(i32::MAX).0, 5_881_580);
    }

    /// Each calendar function equals the SQL it replaces, over birth dates and dates around
    /// month ends, leap days and year ends from 1899 to 2101 (and nulls).
    #[tokio::test]
    async fn calendar_functions_equal_the_sql_they_replace() {
        let ctx = datafusion::prelude::SessionContext::new();
        super::register(&ctx);
        let sql = "WITH d AS (SELECT arrow_cast(CAST(i * 37 - 25575 AS INT), 'Date32') AS on_day, \
             arrow_cast(CAST(i * 11 - 26600 AS INT), 'Date32') AS birth FROM unnest(range(0, 2000)) t(i) \
             UNION ALL SELECT DATE '2024-02-29', DATE '2000-02-29' UNION ALL SELECT DATE '2025-02-28', DATE '2000-02-29' \
             UNION ALL SELECT DATE '2025-03-01', DATE '2000-02-29' UNION ALL SELECT NULL, DATE '2000-01-01' \
             UNION ALL SELECT DATE '2025-01-01', NULL) \
             SELECT count(*) AS n, \
             sum(CASE WHEN hhq_age(birth, on_day) IS NOT DISTINCT FROM \
               CAST(date_part('year', on_day) - date_part('year', birth) AS INT) \
               - CASE WHEN date_part('month', on_day) * 100 + date_part('day', on_day) \
               < date_part('month', birth) * 100 + date_part('day', birth) THEN 1 ELSE 0 END THEN 1 ELSE 0 END) AS age, \
             sum(CASE WHEN hhq_month(on_day) IS NOT DISTINCT FROM to_char(on_day, '%Y-%m') THEN 1 ELSE 0 END) AS month, \
             sum(CASE WHEN hhq_quarter(on_day) IS NOT DISTINCT FROM \
               to_char(on_day, '%Y') || 'Q' || CAST((date_part('month', on_day) + 2) / 3 AS INT) THEN 1 ELSE 0 END) AS quarter, \
             arrow_typeof(hhq_age(birth, on_day)) AS age_type, arrow_typeof(hhq_month(on_day)) AS text_type FROM d \
             GROUP BY 5, 6";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("| 2005 | 2005 | 2005  | 2005    | Int64    | Utf8      |"),
            "{text}"
        );
    }

    /// The day-number arithmetic gives chrono's calendar, day by day over ±2,700 years.
    #[test]
    fn year_month_day_equal_chronos() {
        use chrono::Datelike;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in -1_000_000..=1_000_000 {
            let d = epoch + chrono::TimeDelta::days(days.into());
            assert_eq!(
                super::ymd(days),
                (d.year(), d.month(), d.day()),
                "day {days}"
            );
        }
    }

    #[test]
    fn chains_from_the_last_counted_event() {
        // Day 0 counted; 20 within 31 days of it; 31 is the first day of a new period; 40 and
        // 61 within 31 days of 31; 62 starts again.
        assert_eq!(
            episode_starts(&[0, 20, 31, 40, 61, 62], 31),
            vec![0, 0, 31, 31, 31, 62]
        );
        assert_eq!(episode_starts(&[5, 5], 31), vec![5, 5]);
        assert!(episode_starts(&[], 31).is_empty());
        // In any order, each date gets the start it has in date order.
        assert_eq!(
            episode_starts(&[61, 0, 62, 31, 20, 40, 31], 31),
            vec![31, 0, 62, 31, 0, 31, 31]
        );
    }
}
