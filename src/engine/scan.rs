//! The scan floor: the time to read, from the Parquet files, just the columns a set of measures
//! needs and nothing else. No engine can compute the measures faster than it can read their
//! inputs, so a run's time is judged against this floor (`hhq scan`, `bench/scale.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::Engine;
use crate::error::{Error, Result};

/// One extract's share of the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableScan {
    /// The Parquet table (`claims__raw`).
    pub table: String,
    /// The columns the statements read from it, by name.
    pub columns: Vec<String>,
    /// How many columns the file has.
    pub of_columns: usize,
    pub rows: u64,
    pub elapsed: Duration,
}

/// What reading the needed columns took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFloor {
    pub tables: Vec<TableScan>,
}

impl ScanFloor {
    /// What `hhq scan` prints: each extract's columns read, rows and time, then the floor.
    pub fn told(&self) -> crate::output::Told {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!(
                "{:<16} {:>3} of {:>3} columns {:>12} rows {:>9.3} s  ({})\n",
                t.table,
                t.columns.len(),
                t.of_columns,
                t.rows,
                t.elapsed.as_secs_f64(),
                t.columns.join(", ")
            ));
        }
        let secs = self.elapsed().as_secs_f64();
        out.push_str(&format!(
            "scan floor: {} rows in {:.3} s ({:.1} M rows/s)\n",
            self.rows(),
            secs,
            self.rows() as f64 / secs.max(1e-9) / 1e6
        ));
        crate::output::Told::out(out)
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn elapsed(&self) -> Duration {
        self.tables.iter().map(|t| t.elapsed).sum()
    }
}

/// The stack of the thread [`Engine::columns_read`] plans on.
const PLAN_STACK: usize = 64 << 20;

/// [`Engine::columns_read`]'s work, on its thread: planned in the session `ctx` (planning reads
/// no data, so it needs nothing of the runtime but a thread to run on).
async fn read_columns(
    ctx: SessionContext,
    statements: Vec<String>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for sql in &statements {
        let plan = ctx.sql(sql).await?.into_optimized_plan()?;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let table = scan.table_name.table().to_string();
                // Only the extracts' files: materialised blocks and inputs are not reads of the
                // extracts.
                if table.ends_with("__raw") {
                    let columns = read.entry(table).or_default();
                    for f in scan.projected_schema.fields() {
                        columns.insert(f.name().clone());
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    Ok(read)
}

impl Engine {
    /// The Parquet tables and columns these statements read, after DataFusion's optimiser has
    /// pushed projections down to the scans (views and subqueries included).
    ///
    /// A measure's whole statement, every step and building-block view inlined, is a deep plan,
    /// and DataFusion's planner, optimiser and the plan's drop recurse along it: they run on a
    /// thread with a stack of [`PLAN_STACK`] (as the binary's runtime threads have), whatever
    /// thread calls this (a test's has 2 MiB).
    pub async fn columns_read(
        &self,
        statements: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let ctx = self.ctx.clone();
        let statements = statements.to_vec();
        let handle = tokio::runtime::Handle::current();
        let planner = std::thread::Builder::new()
            .name("hhq-plan".into())
            .stack_size(PLAN_STACK)
            .spawn(move || handle.block_on(read_columns(ctx, statements)))
            .map_err(|e| Error::io("a planning thread", e))?;
        planner
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Read these columns of each table from its files, every row, keeping nothing: the floor
    /// under any computation over them. Each table is read on all the session's partitions, as a
    /// query would.
    pub async fn scan_floor(
        &self,
        columns: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<ScanFloor> {
        let mut tables = Vec::new();
        for (table, cols) in columns {
            let of_columns = self
                .ctx
                .table_provider(table.as_str())
                .await?
                .schema()
                .fields()
                .len();
            let list: Vec<String> = cols
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect();
            let started = Instant::now();
            let df = self
                .ctx
                .sql(&format!("SELECT {} FROM {table}", list.join(", ")))
                .await?;
            // One stream over every partition, read in parallel; batches are dropped as they come.
            let mut stream = df.execute_stream().await?;
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows() as u64;
            }
            tables.push(TableScan {
                table: table.clone(),
                columns: cols.iter().cloned().collect(),
                of_columns,
                rows,
                elapsed: started.elapsed(),
            });
        }
        Ok(ScanFloor { tables })
    }
}
