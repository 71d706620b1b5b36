//! The scan floor: the time to read, from the Parquet files, just the columns a set of measures
//! needs and nothing else. No engine can compute the measures faster than it can read their
//! inputs, so a run's time is judged against this floor (`hhq scan`, `bench/scale.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use futures::StreamExt;

use super::Engine;
use crate::error::Result;

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
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn elapsed(&self) -> Duration {
        self.tables.iter().map(|t| t.elapsed).sum()
    }
}

impl Engine {
    /// The Parquet tables and columns these statements read, after DataFusion's optimiser has
    /// pushed projections down to the scans (views and subqueries included).
    pub async fn columns_read(
        &self,
        statements: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for sql in statements {
            let plan = self.ctx.sql(sql).await?.into_optimized_plan()?;
            plan.apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    let table = scan.table_name.table().to_string();
                    // Only the extracts' files: materialised blocks and inputs are not reads of
                    // the extracts.
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
