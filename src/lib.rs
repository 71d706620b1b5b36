//! hhq computes and reports the quality of Medicaid Health Homes: the CMS Health Home Core Set and
//! KanCare programme measures, defined in YAML and run by DataFusion over Parquet extracts.
//!
//! The code is laid out as the data flows:
//!
//! ```text
//!  other layouts ──► import (mapping YAML) ──┐
//!                                            ▼
//!  Parquet extracts ──► extract ──► (views: claims, contacts, members, enrollment: usable rows)
//!                          │             │
//!                          └─► quality (profile, rows set aside by reason, the publish gate)
//!                                        │
//!  queries/*.sql ───► compile::blocks ──►│ building-block views (claims_final, ed_visits, …)
//!                                        ▼
//!  measures/*.yaml ─► measure ──► compile ──► SQL ──► engine ──► results ──► report
//!  (+ valuesets/)     (Measure)   (Catalog)            (DataFusion)  (summary.csv/.parquet)
//!                                                        ▲  │     └─► fhir (MeasureReports)
//!  ad hoc SQL (hhq sql, hhq query) ──► adhoc ────────────┘  └─► distributed (Ballista cluster,
//!                                                        ▲         feature `ballista`)
//!  measures/cohorts/*.yaml ─► cohort::model ─► cohort::query ─► (engine) ─► cohort (rules per
//!  (SMI, CC, HIGH-RISK)                                          member) ─► cohort::lists
//! ```
//!
//! | stage | module | owns |
//! |---|---|---|
//! | extracts | [`extract`] | the data contract; opening and checking Parquet files; row rules (rows set aside) |
//! | | [`import`] | `hhq import`: other layouts (CSV, Parquet; TAF-like) into the contract by a mapping YAML, what it cannot translate counted |
//! | | [`coverage`] | the period and each measure's reach (look-backs, follow-up) checked against the days the data covers, before anything is computed: refused, cut to the data's last whole month with a caveat, or not reportable |
//! | | [`quality`] | `hhq validate`: the data-quality checks, their policy, the profile and the gate before publishing |
//! | measure model | [`measure`] | YAML → checked [`measure::Measure`]; value sets |
//! | compiler | [`compile`] | building blocks; checked filters; measure + catalog + period → SQL (detail, then aggregate); the same as a script DuckDB runs unchanged (`compile::duckdb`) |
//! | engine | [`engine`] | the DataFusion session and hhq's SQL functions; building blocks computed once; running a measure's detail in stages (two measures side by side, each in a session of its own), its aggregate and population; profiling and the scan floor |
//! | | `distributed` | (feature `ballista`) the same queries on an Apache Ballista cluster: codecs carrying hhq's functions (the value-set lookup with its codes) and in-memory tables to the scheduler and executors; each stage's output compacted before Arrow IPC (`distributed::compact`); the client session (`--engine`, `standalone` in process); `hhq cluster scheduler\|executor` |
//! | | [`cohort`] | `hhq cohort`: target populations (SMI, chronic conditions) and high-risk flags as YAML criteria over blocks with look-backs and rules; per member the criteria met and the claims behind them; lists per MCO (qualifying not enrolled, enrolled no longer qualifying, both populations), a partner's worklist sorted by need, a suppressed summary; cohort test decks |
//! | | [`detail`] | member-level detail of a run's passes: written to Parquet as it comes (columns encoded on every core), the columns the summaries read spooled and aggregated as one table, CSV formatted on every core |
//! | results | [`results`] | the long-format result table, member-level detail files, writers |
//! | | [`spc`] | statistical process control: p- and u-chart limits and special-cause signals |
//! | | [`suppress`] | CMS small-cell suppression for published tables: primary, then an audit of what the table's equations (strata and quarters adding up, shared denominators, denominator less numerator) let a reader work out, with complementary cells hidden until no count of 1 to 10 can be |
//! | | [`cms`] | the CMS reporting-system tables (numbers, and per-measure fields) and CMS's consistency checks |
//! | | [`adhoc`] | `hhq sql` and `hhq query`: one read-only query over the extracts and blocks, an audience's members only when asked, written as a table, CSV, JSON or Parquet |
//! | | [`fhir`] | `hhq fhir`: a run's result table as FHIR R4 MeasureReports (a group per component, its strata), one Bundle |
//! | reports | [`report`] | what people read: the terminal table, `hhq explain`, and `hhq report state\|mco\|hhp` (gather → document → HTML, PDF, tables) |
//! | | [`chart`] | the reports' charts (plotters → SVG with text as outlines, and PNG), identical on every machine |
//!
//! Around them: [`period`] (measurement periods), [`privacy`] (audience scoping and keyed
//! pseudonyms of member ids), [`synth`] (synthetic extracts), [`decks`]
//! (hand-built test decks with expected outcomes), [`conformance`] (each measure's
//! specification rules, the YAML line and deck cases of each, and the deviations they make), [`manifest`] (what produced a run's outputs,
//! with hashes), [`output`] (atomic files, and whole output directories staged and swapped in),
//! [`library`] (the shipped measures, blocks, mappings and demo data built into the binary, and
//! a directory of one's own laid over them),
//! [`project`] (`hhq.toml` and `HHQ_*` settings, and where each comes from) and [`pipeline`]
//! (the main job, stage by stage).

pub mod adhoc;
pub mod chart;
pub mod cms;
pub mod cohort;
pub mod compile;
pub mod conformance;
pub mod coverage;
pub mod decks;
pub mod definitions;
pub mod detail;
pub mod digest;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod escape;
pub mod extract;
pub mod fhir;
pub mod functions;
pub mod import;
pub mod library;
pub mod manifest;
pub mod measure;
pub mod output;
pub mod period;
pub mod pipeline;
pub mod privacy;
pub mod project;
pub mod quality;
pub mod report;
pub mod results;
pub mod spc;
pub mod specdiff;
pub mod suppress;
pub mod synth;

pub use error::{Error, Result};
