//! Aggregates that pick one row of each group by an order: the first id of a unit's qualifying
//! rows (`hhq_first_id`) and a unit's enrolment interval (`hhq_latest_span`).
//!
//! Why not `first_value(… ORDER BY …)`: DataFusion 55 keeps its ordering values as one
//! `ScalarValue` vector per group and compares them row by row (the enrolment pick took 27 s of
//! CPU where these take well under one). Why not the minimum of a string that spells the order
//! (what the compiled SQL did before): building that string for every row was most of a
//! member-month measure's candidates step. These compare dates as integers and strings in place,
//! and copy no string until the end: a pick points at its row, and the picked strings are
//! gathered once, group by group.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, StringViewArray, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Which pick: its arguments and order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `hhq_first_id(date, id)`: the id of the earliest date, the least id of that day; rows
    /// with a null date or id are passed over. Equal to `substr(min(CAST(date AS VARCHAR) ||
    /// id), 11)` for dates of four-digit years.
    FirstId,
    /// `hhq_latest_span(start_date, end_date, hhp_id, mco_id, population)`: of the intervals,
    /// the one ending last, then starting last, then by partner, MCO and population (each
    /// ascending, nulls last), as a struct of those three; rows with a null date are passed
    /// over.
    LatestSpan,
}

/// The span's struct fields, as the compiled SQL reads them (`k['hhp_id']`).
const SPAN_FIELDS: [&str; 3] = ["hhp_id", "mco_id", "population"];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::FirstId => "hhq_first_id",
            Kind::LatestSpan => "hhq_latest_span",
        }
    }

    /// Leading date arguments; the rest are strings.
    fn dates(self) -> usize {
        match self {
            Kind::FirstId => 1,
            Kind::LatestSpan => 2,
        }
    }

    fn strings(self) -> usize {
        match self {
            Kind::FirstId => 1,
            Kind::LatestSpan => 3,
        }
    }

    /// The date arguments in the order they are compared.
    fn date_order(self) -> &'static [usize] {
        match self {
            Kind::FirstId => &[0],
            Kind::LatestSpan => &[1, 0],
        }
    }

    /// Later dates first.
    fn descending(self) -> bool {
        self == Kind::LatestSpan
    }

    /// Names of the arguments, for the state's fields.
    fn args(self) -> &'static [&'static str] {
        match self {
            Kind::FirstId => &["date", "id"],
            Kind::LatestSpan => &["start_date", "end_date", "hhp_id", "mco_id", "population"],
        }
    }

    fn arg_types(self) -> Vec<DataType> {
        let mut t = vec![DataType::Date32; self.dates()];
        t.extend(vec![DataType::Utf8View; self.strings()]);
        t
    }

    fn return_type(self) -> DataType {
        match self {
            Kind::FirstId => DataType::Utf8View,
            Kind::LatestSpan => DataType::Struct(span_fields()),
        }
    }
}

fn span_fields() -> Fields {
    SPAN_FIELDS
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8View, true))
        .collect()
}

/// One of the picks as a DataFusion aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Pick {
    kind: Kind,
    signature: Signature,
}

impl Pick {
    pub fn new(kind: Kind) -> Self {
        Pick {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Pick {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let want = self.kind.arg_types();
        if args.len() != want.len() {
            return plan_err!(
                "{}({}) takes {} arguments, got {}",
                self.kind.name(),
                self.kind.args().join(", "),
                want.len(),
                args.len()
            );
        }
        for (i, (got, w)) in args.iter().zip(&want).enumerate() {
            let fits = match w {
                DataType::Date32 => matches!(got, DataType::Date32 | DataType::Null),
                _ => matches!(
                    got,
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
                ),
            };
            if !fits {
                return plan_err!(
                    "{}: argument {} ({}) must be a {}, got {got}",
                    self.kind.name(),
                    i + 1,
                    self.kind.args()[i],
                    if *w == DataType::Date32 {
                        "date"
                    } else {
                        "string"
                    }
                );
            }
        }
        Ok(want)
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.kind.return_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(self
            .kind
            .args()
            .iter()
            .zip(self.kind.arg_types())
            .map(|(n, t)| Arc::new(Field::new(format_state_name(args.name, n), t, true)))
            .collect())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One(Picks::new(self.kind))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Picks::new(self.kind)))
    }
}

/// Register the picks with a session.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    for kind in [Kind::FirstId, Kind::LatestSpan] {
        ctx.register_udaf(AggregateUDF::from(Pick::new(kind)));
    }
}

/// A group's pick so far: its dates, and where its strings are (a held batch and row), so
/// a row that beats the pick costs no copy of its strings.
#[derive(Debug, Default, Clone, Copy)]
struct Picked {
    set: bool,
    /// In comparison order (see [`Kind::date_order`]).
    dates: [i32; 2],
    /// The batch of [`Picks::held`] and the row in it.
    at: (u32, u32),
}

/// The string arguments of one batch, held while a pick points into it.
type Held = Vec<StringViewArray>;

/// The picks of every group.
#[derive(Debug)]
struct Picks {
    kind: Kind,
    groups: Vec<Picked>,
    /// The string arguments of every batch a pick was taken from (views share the batch's
    /// buffers: holding them copies nothing). The output gathers each pick's strings from
    /// here once, at the end.
    held: Vec<Held>,
    /// Bytes of the held arrays.
    heap: usize,
}

/// The string of argument `k` of a pick.
fn text_of<'a>(held: &'a [Held], p: &Picked, k: usize) -> Option<&'a str> {
    let a = &held[p.at.0 as usize][k];
    let row = p.at.1 as usize;
    a.is_valid(row).then(|| a.value(row))
}

fn bytes_held(strings: &Held) -> usize {
    strings
        .iter()
        .map(|a| a.len() * 16 + a.data_buffers().iter().map(|b| b.len()).sum::<usize>())
        .sum()
}

impl Picks {
    fn new(kind: Kind) -> Self {
        Picks {
            kind,
            groups: Vec::new(),
            held: Vec::new(),
            heap: 0,
        }
    }

    /// Offer each row (input arguments, or state of the same shape) to its group.
    fn offer(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let kind = self.kind;
        let (nd, ns) = (kind.dates(), kind.strings());
        if values.len() != nd + ns {
            return plan_err!(
                "{}: {} arguments, expected {}",
                kind.name(),
                values.len(),
                nd + ns
            );
        }
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Picked::default);
        }
        let dates: Vec<&Date32Array> = kind
            .date_order()
            .iter()
            .map(|&i| values[i].as_primitive::<Date32Type>())
            .collect();
        let Ok(batch) = u32::try_from(self.held.len()) else {
            return plan_err!("{}: too many batches", kind.name());
        };
        // Held now so that rows of this batch compare with picks from it; let go below if
        // no row of it is picked.
        self.held.push(
            values[nd..]
                .iter()
                .map(|a| a.as_string_view().clone())
                .collect(),
        );
        let (held, groups) = (&self.held, &mut self.groups);
        let strings = &held[batch as usize];
        let descending = kind.descending();
        // A first id needs its id; a span's ids may be null (they sort last).
        let id_required = kind == Kind::FirstId;
        let mut picked_any = false;
        'rows: for (row, &g) in group_indices.iter().enumerate() {
            if let Some(f) = filter
                && !(f.is_valid(row) && f.value(row))
            {
                continue;
            }
            let mut key = [0i32; 2];
            for (k, d) in dates.iter().enumerate() {
                if d.is_null(row) {
                    continue 'rows;
                }
                key[k] = d.value(row);
            }
            if id_required && strings[0].is_null(row) {
                continue;
            }
            let cur = groups[g];
            if cur.set && !beats(&key[..nd], strings, row, held, &cur, descending) {
                continue;
            }
            groups[g] = Picked {
                set: true,
                dates: key,
                at: (batch, row as u32),
            };
            picked_any = true;
        }
        if picked_any {
            self.heap += bytes_held(&self.held[batch as usize]);
        } else {
            self.held.pop();
        }
        Ok(())
    }

    /// The picks of the groups `emit_to` names, taken out, with the batches they point into.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<Picked>, Vec<Held>) {
        let taken = emit_to.take_needed(&mut self.groups);
        let held = if self.groups.is_empty() {
            self.heap = 0;
            std::mem::take(&mut self.held)
        } else {
            // Groups left may point into any of them.
            self.held.clone()
        };
        (taken, held)
    }

    /// Argument `k` of each pick, null where a group has none.
    fn strings_of(picked: &[Picked], held: &[Held], k: usize) -> Result<ArrayRef> {
        let none = StringViewArray::new_null(1);
        let mut arrays: Vec<&dyn Array> = held.iter().map(|h| &h[k] as &dyn Array).collect();
        arrays.push(&none);
        let unset = (held.len(), 0);
        let at: Vec<(usize, usize)> = picked
            .iter()
            .map(|p| match p.set {
                true => (p.at.0 as usize, p.at.1 as usize),
                false => unset,
            })
            .collect();
        // Copied out of the held batches: the views would otherwise keep every held batch's
        // buffers alive, and Arrow IPC (a cluster's shuffle) writes a view array's buffers
        // whole with each batch of it - 19 GB for HH-ENGAGE's 100 MB of picks at 100,000 members.
        let picks = interleave(&arrays, &at)?;
        Ok(Arc::new(picks.as_string_view().gc()))
    }

    fn result(&self, picked: &[Picked], held: &[Held]) -> Result<ArrayRef> {
        Ok(match self.kind {
            Kind::FirstId => Self::strings_of(picked, held, 0)?,
            Kind::LatestSpan => {
                let columns = (0..3)
                    .map(|k| Self::strings_of(picked, held, k))
                    .collect::<Result<Vec<_>>>()?;
                let nulls = NullBuffer::from_iter(picked.iter().map(|p| p.set));
                Arc::new(StructArray::try_new(span_fields(), columns, Some(nulls))?)
            }
        })
    }

    /// The state: the arguments of each group's pick, in argument order.
    fn state_of(&self, picked: &[Picked], held: &[Held]) -> Result<Vec<ArrayRef>> {
        let order = self.kind.date_order();
        let mut out: Vec<ArrayRef> = (0..self.kind.dates())
            .map(|arg| {
                let k = order
                    .iter()
                    .position(|&o| o == arg)
                    .expect("every date compared");
                Arc::new(Date32Array::from_iter(
                    picked.iter().map(|p| p.set.then_some(p.dates[k])),
                )) as ArrayRef
            })
            .collect();
        for k in 0..self.kind.strings() {
            out.push(Self::strings_of(picked, held, k)?);
        }
        Ok(out)
    }
}

/// Whether row `row` of `strings`, with dates `dates`, orders before the group's pick `cur`:
/// dates first (descending for a span), then the strings ascending with nulls last.
fn beats(
    dates: &[i32],
    strings: &[StringViewArray],
    row: usize,
    held: &[Held],
    cur: &Picked,
    descending: bool,
) -> bool {
    for (k, &d) in dates.iter().enumerate() {
        if d != cur.dates[k] {
            return (d > cur.dates[k]) == descending;
        }
    }
    for (k, s) in strings.iter().enumerate() {
        let t = s.is_valid(row).then(|| s.value(row));
        match (t, text_of(held, cur, k)) {
            (Some(a), Some(b)) if a != b => return a < b,
            (Some(_), None) => return true,
            (None, Some(_)) => return false,
            _ => {}
        }
    }
    false
}

impl GroupsAccumulator for Picks {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.offer(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (picked, held) = self.take(emit_to);
        self.result(&picked, &held)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (picked, held) = self.take(emit_to);
        self.state_of(&picked, &held)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        // The state has the arguments' shape, an unset group a null date: merging is offering.
        self.offer(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Some(filter) = opt_filter else {
            return Ok(values.to_vec());
        };
        // A row filtered out becomes an unset pick: its dates null.
        let keep =
            NullBuffer::from_iter((0..filter.len()).map(|i| filter.is_valid(i) && filter.value(i)));
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i >= self.kind.dates() {
                    return Ok(v.clone());
                }
                let d = v.as_primitive::<Date32Type>();
                let nulls = NullBuffer::union(d.nulls(), Some(&keep));
                Ok(Arc::new(Date32Array::new(d.values().clone(), nulls)) as ArrayRef)
            })
            .collect()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Picked>() + self.heap
    }
}

/// The picks without GROUP BY: one group.
#[derive(Debug)]
struct One(Picks);

impl One {
    /// The one group's pick (unset before any row).
    fn group(&self) -> Vec<Picked> {
        vec![self.0.groups.first().copied().unwrap_or_default()]
    }
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.offer(values, &vec![0; n], None, 1)?;
        // One pick points into one batch: hold that one only.
        if self.0.held.len() > 1 {
            let picked = self.group();
            let strings = (0..self.0.kind.strings())
                .map(|k| {
                    Picks::strings_of(&picked, &self.0.held, k).map(|a| a.as_string_view().clone())
                })
                .collect::<Result<Held>>()?;
            self.0.heap = bytes_held(&strings);
            self.0.held = vec![strings];
            self.0.groups[0].at = (0, 0);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.0.result(&self.group(), &self.0.held)?, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + GroupsAccumulator::size(&self.0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0
            .state_of(&self.group(), &self.0.held)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::prelude::SessionContext;

    async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    /// Rows of `(unit, date, id)` with ties, nulls and many groups; the pick equals the string
    /// minimum it replaces, grouped and not, through partial and final aggregation (two
    /// partitions) and through the state of groups passed on unaggregated.
    #[tokio::test]
    async fn first_id_equals_the_string_minimum() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_target_partitions(2)
                .with_batch_size(64)
                .set_usize(
                    "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
                    100,
                )
                .set(
                    "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
                    &datafusion::common::ScalarValue::Float64(Some(0.1)),
                ),
        );
        super::register(&ctx);
        let mut values = Vec::new();
        for i in 0..5000u32 {
            let unit = (i * 7919) % 1200;
            let date = if i % 37 == 0 {
                "NULL".to_string()
            } else {
                format!("DATE '2025-01-01' + INTERVAL '{} days'", (i * 31) % 9)
            };
            let id = if i % 41 == 0 {
                "NULL".to_string()
            } else {
                format!("'c{}'", (i * 13) % 17)
            };
            values.push(format!("({unit}, {date}, {id})"));
        }
        query(
            &ctx,
            &format!(
                "CREATE TABLE r (unit INT, d DATE, id VARCHAR) AS VALUES {}",
                values.join(", ")
            ),
        )
        .await;
        for (group, order) in [("GROUP BY unit", "ORDER BY unit"), ("", "")] {
            let sql = format!(
                "SELECT hhq_first_id(d, id) IS NOT DISTINCT FROM substr(min(CAST(d AS VARCHAR) || id), 11) AS same, \
                 hhq_first_id(d, id) AS got FROM r {group} {order}"
            );
            let batches = query(&ctx, &sql).await;
            let mut rows = 0;
            for b in &batches {
                let same = b.column(0).as_boolean();
                rows += b.num_rows();
                assert!(same.iter().all(|s| s == Some(true)), "{sql}");
            }
            assert!(rows >= 1);
        }
    }

    /// The span pick equals the interval the SQL order names, over overlapping intervals with
    /// equal dates, null ids and ids that are prefixes of others.
    #[tokio::test]
    async fn latest_span_picks_by_the_stated_order() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_target_partitions(2)
                .with_batch_size(16),
        );
        super::register(&ctx);
        let ids = ["NULL", "'A'", "'AB'", "'B'"];
        let mut values = Vec::new();
        for i in 0..3000u32 {
            let unit = (i * 104_729) % 400;
            let start = (i * 7) % 2;
            let end = (i * 11) % 2;
            values.push(format!(
                "({unit}, DATE '2025-01-01' + INTERVAL '{start} days', DATE '2025-03-01' + INTERVAL '{end} days', {}, {}, {})",
                ids[(i as usize * 3) % 4],
                ids[(i as usize * 5) % 4],
                ids[(i as usize / 3) % 4]
            ));
        }
        query(
            &ctx,
            &format!(
                "CREATE TABLE s (unit INT, start_date DATE, end_date DATE, hhp_id VARCHAR, mco_id VARCHAR, population VARCHAR) AS VALUES {}",
                values.join(", ")
            ),
        )
        .await;
        let sql = "WITH picked AS (
              SELECT unit, hhq_latest_span(start_date, end_date, hhp_id, mco_id, population) AS k
              FROM s GROUP BY unit),
            ranked AS (
              SELECT unit, hhp_id, mco_id, population, row_number() OVER (PARTITION BY unit
                ORDER BY end_date DESC, start_date DESC, hhp_id ASC NULLS LAST,
                  mco_id ASC NULLS LAST, population ASC NULLS LAST) AS r
              FROM s)
            SELECT count(*) AS units,
              sum(CASE WHEN (k['hhp_id'] IS NOT DISTINCT FROM r.hhp_id)
                AND (k['mco_id'] IS NOT DISTINCT FROM r.mco_id)
                AND (k['population'] IS NOT DISTINCT FROM r.population) THEN 1 ELSE 0 END) AS same
            FROM picked p JOIN ranked r ON r.unit = p.unit AND r.r = 1";
        let batches = query(&ctx, sql).await;
        let b = &batches[0];
        let units = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0);
        let same = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(units, 400);
        assert_eq!(same, units);
    }
}
