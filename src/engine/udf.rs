//! SQL functions hhq adds to DataFusion, for rules plain SQL cannot state without recursion.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Date32Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `hhq_episode_starts(dates, days)`: for a list of dates in ascending order, the date of the
/// counted event each belongs to. The first date is counted; a date less than `days` days after
/// the last counted one belongs to it; the next date at least `days` after starts a new one.
/// (HEDIS "only the first ED visit in a 31-day period", which chains and so needs a loop.)
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

/// The episode start of each date of one sorted list.
pub fn episode_starts(dates: &[i32], days: i32) -> Vec<i32> {
    let mut out = Vec::with_capacity(dates.len());
    let mut start: Option<i32> = None;
    for &d in dates {
        let s = match start {
            Some(s) if d - s < days => s,
            _ => d,
        };
        start = Some(s);
        out.push(s);
    }
    out
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
            if values.values().windows(2).any(|w| w[0] > w[1]) {
                return exec_err!("hhq_episode_starts: dates must be in ascending order");
            }
            for s in episode_starts(values.values(), days) {
                out.values().append_value(s);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Register hhq's functions with a session.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::from(EpisodeStarts::new()));
}

#[cfg(test)]
mod tests {
    use super::episode_starts;

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
    }
}
