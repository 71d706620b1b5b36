//! `hhq_count_true(condition)`: the number of rows where a condition holds (null counts as not),
//! the data-quality profile's count of rows breaking a check.
//!
//! Why not `sum(CASE WHEN coalesce(cond, false) THEN 1 ELSE 0 END)`: that builds an integer array
//! per check and batch (eight bytes a claim line, for each of the claims' fifteen checks) only to
//! add it up, where this counts the set bits of the condition's bitmap. Equal results, a unit
//! test holds them together.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Register `hhq_count_true` with a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(CountTrue::default()));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CountTrue {
    signature: Signature,
}

impl Default for CountTrue {
    fn default() -> Self {
        CountTrue {
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable),
        }
    }
}

/// The rows where `values` is true (and not null), as a bitmap.
fn true_bits(values: &BooleanArray) -> BooleanBuffer {
    match values.nulls() {
        Some(nulls) => values.values() & nulls.inner(),
        None => values.values().clone(),
    }
}

/// Rows where `values` is true (and not null).
fn count_true(values: &BooleanArray) -> i64 {
    true_bits(values).count_set_bits() as i64
}

impl AggregateUDFImpl for CountTrue {
    fn name(&self) -> &str {
        "hhq_count_true"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Boolean] => Ok(DataType::Int64),
            _ => plan_err!("hhq_count_true(condition) takes one boolean, got {args:?}"),
        }
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "count"),
            DataType::Int64,
            false,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One(0)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups(Vec::new())))
    }
}

/// The count without groups.
#[derive(Debug)]
struct One(i64);

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0 += count_true(values[0].as_boolean());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let partial = states[0].as_primitive::<Int64Type>();
        self.0 += partial.iter().flatten().sum::<i64>();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.0))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// A count per group.
struct Groups(Vec<i64>);

impl Groups {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        Arc::new(Int64Array::from(emit_to.take_needed(&mut self.0)))
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        // Only the rows where the condition holds (and the filter keeps them) are visited,
        // by the set bits of one bitmap: most rows break no check.
        let mut set = true_bits(values[0].as_boolean());
        if let Some(filter) = opt_filter {
            set = &set & &true_bits(filter);
        }
        self.0.resize(total_num_groups, 0);
        for row in set.set_indices() {
            self.0[group_indices[row]] += 1;
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let partial = values[0].as_primitive::<Int64Type>();
        self.0.resize(total_num_groups, 0);
        for (row, &g) in group_indices.iter().enumerate() {
            if partial.is_valid(row) {
                self.0[g] += partial.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    /// Each row as a partial count of its own: 1 where the condition holds (and the filter
    /// keeps the row), else 0.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut set = true_bits(values[0].as_boolean());
        if let Some(filter) = opt_filter {
            set = &set & &true_bits(filter);
        }
        let counts: Int64Array = set.iter().map(|hit| Some(i64::from(hit))).collect();
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.0.capacity() * size_of::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    use super::*;

    /// Over true, false and null conditions, with and without groups and across partitions,
    /// the count equals the `sum(CASE …)` it replaces.
    #[tokio::test]
    async fn counts_what_the_sum_of_cases_counts() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, true),
            Field::new("c", DataType::Boolean, true),
        ]));
        let batch = |n: i64| {
            let g: Vec<Option<i64>> = (0..n).map(|i| (i % 7 != 6).then_some(i % 5)).collect();
            let c: Vec<Option<bool>> = (0..n)
                .map(|i| match i % 3 {
                    0 => Some(true),
                    1 => (i % 2 == 0).then_some(false),
                    _ => (i % 4 == 0).then_some(true),
                })
                .collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(g)),
                    Arc::new(BooleanArray::from(c)),
                ],
            )
            .unwrap()
        };
        let ctx = SessionContext::new();
        register(&ctx);
        let table =
            MemTable::try_new(schema.clone(), vec![vec![batch(1000)], vec![batch(333)]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let rows = |sql: &str| {
            let ctx = ctx.clone();
            let sql = sql.to_string();
            async move {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        for (ours, theirs) in [
            (
                "SELECT hhq_count_true(c) AS n, hhq_count_true(NOT c) AS m FROM t",
                "SELECT sum(CASE WHEN coalesce(c, false) THEN 1 ELSE 0 END) AS n, \
                 sum(CASE WHEN coalesce(NOT c, false) THEN 1 ELSE 0 END) AS m FROM t",
            ),
            (
                "SELECT g, hhq_count_true(c) AS n FROM t GROUP BY g ORDER BY g",
                "SELECT g, sum(CASE WHEN coalesce(c, false) THEN 1 ELSE 0 END) AS n \
                 FROM t GROUP BY g ORDER BY g",
            ),
            (
                "SELECT g, hhq_count_true(c) FILTER (WHERE g > 1) AS n FROM t GROUP BY g ORDER BY g",
                "SELECT g, coalesce(sum(CASE WHEN coalesce(c, false) AND g > 1 THEN 1 ELSE 0 END), 0) AS n \
                 FROM t GROUP BY g ORDER BY g",
            ),
            (
                "SELECT hhq_count_true(c) AS n FROM t WHERE g > 100",
                "SELECT coalesce(sum(CASE WHEN coalesce(c, false) THEN 1 ELSE 0 END), 0) AS n FROM t WHERE g > 100",
            ),
        ] {
            let (a, b) = (rows(ours).await, rows(theirs).await);
            assert_eq!(a, b, "{ours}");
            assert!(a.lines().count() > 4, "{a}");
        }
        let total = rows("SELECT hhq_count_true(c) AS n FROM t").await;
        assert!(!total.contains("| 0 "), "counts something: {total}");
    }
}
