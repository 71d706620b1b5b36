//! Rows whose key repeats an earlier row's (a claim line filed twice), counted without a hash
//! table of every key.
//!
//! `count(*) - count(DISTINCT key)` in SQL builds a hash table of every distinct key: 15 s and
//! the run's peak memory at 55 million claim lines. Here each row's key is hashed to 64 bits
//! (DataFusion's own row hashing), the hashes are bucketed by their top byte and each bucket
//! sorted, so a repeated hash is two neighbours. Only the rows whose hash repeats are then read
//! again and compared by their exact key: a hash collision between two different keys is never
//! counted as a duplicate.

use std::collections::{BTreeSet, HashMap, HashSet};

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::error::Result;

/// What [`count`] found: the extra rows (each row beyond the first of its key) and up to three
/// example keys, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Duplicates {
    pub extra_rows: u64,
    pub examples: Vec<String>,
}

/// Count the rows of `table` whose `key` columns repeat an earlier row's. `label` renders one
/// key's values (as text) into an example, e.g. `claim C1 line 1`; `rows_hint` is the expected
/// number of rows (to size the buffers).
pub async fn count(
    ctx: &SessionContext,
    table: &str,
    key: &[&str],
    label: fn(&[String]) -> String,
    rows_hint: u64,
) -> Result<Duplicates> {
    let sql = format!("SELECT {} FROM {table}", key.join(", "));
    let state = RandomState::with_seed(0);
    // Pass 1: every row's hash, into 256 buckets by the top byte (so the sorts are small and
    // run on every core).
    let per_bucket = (rows_hint / 256 + rows_hint / 2048) as usize;
    let mut buckets: Vec<Vec<u64>> = (0..256).map(|_| Vec::with_capacity(per_bucket)).collect();
    let mut hashes = Vec::new();
    for_each_batch(ctx, &sql, |batch| {
        hash_rows(batch.columns(), &state, &mut hashes)?;
        for &h in &hashes {
            buckets[(h >> 56) as usize].push(h);
        }
        Ok(())
    })
    .await?;
    let repeated = repeated_hashes(buckets);
    if repeated.is_empty() {
        return Ok(Duplicates::default());
    }
    // Pass 2: the rows whose hash repeats, compared by their exact key.
    exact(ctx, &sql, &state, &repeated, label).await
}

/// The duplicates among the rows of `sql` whose hash is in `repeated`, by their exact key.
async fn exact(
    ctx: &SessionContext,
    sql: &str,
    state: &RandomState,
    repeated: &HashSet<u64>,
    label: fn(&[String]) -> String,
) -> Result<Duplicates> {
    let mut hashes = Vec::new();
    // Made from the first batch with a repeated hash: the key's types as the scan gives them.
    let mut converter: Option<RowConverter> = None;
    let mut seen: HashMap<Vec<u8>, (u64, String)> = HashMap::new();
    for_each_batch(ctx, sql, |batch| {
        hash_rows(batch.columns(), state, &mut hashes)?;
        let picked: UInt32Array = hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| repeated.contains(h))
            .map(|(i, _)| i as u32)
            .collect();
        if picked.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| take(c, &picked, None))
            .collect::<std::result::Result<_, _>>()?;
        let converter = match &mut converter {
            Some(c) => c,
            none => none.insert(RowConverter::new(
                columns
                    .iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )?),
        };
        let rows = converter.convert_columns(&columns)?;
        let options = FormatOptions::default();
        let formatters: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()?;
        for (i, row) in rows.iter().enumerate() {
            let entry = seen.entry(row.as_ref().to_vec()).or_insert_with(|| {
                let values: Vec<String> =
                    formatters.iter().map(|f| f.value(i).to_string()).collect();
                (0, label(&values))
            });
            entry.0 += 1;
        }
        Ok(())
    })
    .await?;
    let extra_rows = seen.values().map(|(n, _)| n - 1).sum();
    let examples: BTreeSet<&String> = seen
        .values()
        .filter(|(n, _)| *n > 1)
        .map(|(_, label)| label)
        .collect();
    Ok(Duplicates {
        extra_rows,
        examples: examples.into_iter().take(3).cloned().collect(),
    })
}

fn hash_rows(columns: &[ArrayRef], state: &RandomState, hashes: &mut Vec<u64>) -> Result<()> {
    hashes.clear();
    hashes.resize(columns.first().map_or(0, |c| c.len()), 0);
    create_hashes(columns, state, hashes)?;
    Ok(())
}

/// Run `sql` and hand every batch of every partition to `f`, partitions read concurrently.
async fn for_each_batch(
    ctx: &SessionContext,
    sql: &str,
    mut f: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let df = ctx.sql(sql).await?;
    let plan = df.create_physical_plan().await?;
    let streams = execute_stream_partitioned(plan, ctx.task_ctx())?;
    let mut all = futures::stream::select_all(streams);
    while let Some(batch) = all.next().await {
        f(&batch?)?;
    }
    Ok(())
}

/// The hashes that occur more than once, each bucket sorted on its own thread.
fn repeated_hashes(buckets: Vec<Vec<u64>>) -> HashSet<u64> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let buckets: Vec<std::sync::Mutex<Vec<u64>>> =
        buckets.into_iter().map(std::sync::Mutex::new).collect();
    let found = std::sync::Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(bucket) = buckets.get(i) else { break };
                    let mut hashes = std::mem::take(&mut *bucket.lock().expect("a bucket"));
                    hashes.sort_unstable();
                    mine.extend(hashes.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
                }
                found.lock().expect("the found hashes").extend(mine);
            });
        }
    });
    found.into_inner().expect("the found hashes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_hashes_are_those_seen_twice_or_more() {
        let mut buckets = vec![Vec::new(); 256];
        for h in [1u64 << 60, 5, 5, 5, 7, (1 << 60) + 1, 1 << 60, u64::MAX, 9] {
            buckets[(h >> 56) as usize].push(h);
        }
        let found = repeated_hashes(buckets);
        assert_eq!(found, HashSet::from([5, 1 << 60]));
    }

    #[tokio::test]
    async fn counts_extra_rows_exactly_with_examples_in_order() {
        let ctx = SessionContext::new();
        ctx.sql(
            "CREATE VIEW t AS SELECT * FROM (VALUES ('C2', 1), ('C1', 1), ('C1', 2), ('C1', 1), \
             ('C2', 1), ('C2', 1), ('C3', 1), (NULL, 1), (NULL, 1)) v(claim_id, line_number)",
        )
        .await
        .unwrap();
        let label = |v: &[String]| format!("claim {} line {}", v[0], v[1]);
        let found = count(&ctx, "t", &["claim_id", "line_number"], label, 9)
            .await
            .unwrap();
        // C2/1 three times (two extra), C1/1 twice (one), the null key twice (one).
        assert_eq!(found.extra_rows, 4);
        assert_eq!(
            found.examples,
            vec!["claim  line 1", "claim C1 line 1", "claim C2 line 1"]
        );
        // Every row's hash taken as repeated, as if all of them collided: only equal keys count.
        let sql = "SELECT claim_id, line_number FROM t";
        let state = RandomState::with_seed(0);
        let mut all = HashSet::new();
        let mut hashes = Vec::new();
        for_each_batch(&ctx, sql, |b| {
            hash_rows(b.columns(), &state, &mut hashes)?;
            all.extend(hashes.iter().copied());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(exact(&ctx, sql, &state, &all, label).await.unwrap(), found);
        ctx.sql(
            "CREATE VIEW u AS SELECT * FROM (VALUES ('C1', 1), ('C1', 2)) v(claim_id, line_number)",
        )
        .await
        .unwrap();
        let none = count(&ctx, "u", &["claim_id", "line_number"], label, 2)
            .await
            .unwrap();
        assert_eq!(none, Duplicates::default());
    }
}
