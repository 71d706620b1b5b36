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
//! | foundations | [`error`], [`escape`], [`output`], [`digest`], [`period`], [`library`], [`project`] | one error type naming file, line, column or row; text made safe for terminals and spreadsheets; atomic files and output directories, and what a command tells its user (`output::Told`); SHA-256 digests; measurement periods; the built-in library (and a directory of one's own laid over it); `hhq.toml` and `HHQ_*` settings with their sources |
//! | extracts | [`extract`] | the data contract; opening and checking Parquet files; row rules (rows set aside) |
//! | extracts | [`import`] | `hhq import`: other layouts (CSV, Parquet; TAF-like) into the contract by a mapping YAML, what it cannot translate counted |
//! | extracts | [`synth`] | synthetic extracts in the contract (`hhq synth`, the demo data) |
//! | measure model | [`measure`] | YAML → checked [`measure::Measure`]; value sets |
//! | measure model | [`conformance`] | each measure's specification rules, the YAML line and deck cases of each, and the deviations they make |
//! | measure model | [`definitions`] | everything a run reads (measures, value sets, blocks, cohorts), loaded and checked before anything runs |
//! | compiler | [`functions`] | hhq's SQL functions and the one registry every session takes them from |
//! | compiler | [`compile`] | building blocks; checked filters; measure + catalog + period → SQL (detail, then aggregate); the same as a script DuckDB runs unchanged (`compile::duckdb`) |
//! | run plan | [`plan`] | the run plan, pure: passes over member ranges, queries side by side, the blocks kept for the run and each pass's in waves, each measure's stages and until which reader each is held; every memory-limit policy (`--memory-limit`, `--members-per-pass`); snapshot-tested |
//! | engine | [`cache`] | the run cache: blocks, each measure's detail pass by pass and a run's outputs of a measure, on disk under keys hashed from everything they were made from (the build, the extracts' bytes, the audience, the definitions, the pass's members); bounded, least recently used out |
//! | engine | [`execute`] | what every computing command shares (`execute::Options`) and the one way to open a session; the executor: carries a run plan out on an engine, pass by pass, each measure's detail into a sink, timings and progress to an observer; the one way `run`, `report`, `cohort`, `explain` and `profile` compute |
//! | engine | [`coverage`] | the period and each measure's reach (look-backs, follow-up) checked against the days the data covers, before anything is computed: refused, cut to the data's last whole month with a caveat, or not reportable |
//! | engine | [`engine`] | the DataFusion session; the extracts' views over a pass's members; building blocks computed and kept as a plan says; a measure's detail in stages (measures side by side, each in a session of its own; steps shared within a pass), its aggregate and population; profiling and the scan floor |
//! | engine | [`distributed`] | where queries run (`--engine`); with the feature `ballista`, the same queries on an Apache Ballista cluster (codecs carrying hhq's functions and in-memory tables, stage outputs compacted before Arrow IPC, `hhq cluster scheduler\|executor`) |
//! | engine | [`quality`] | `hhq validate`: the data-quality checks, their policy, the profile and the gate before publishing |
//! | engine | [`privacy`] | audience scoping and keyed pseudonyms of member ids |
//! | engine | [`finance`] | `hhq payments`: the S0281 earning rule and rate tables as YAML; the payment ledger (member × month × partner: earned, billed, paid, due), integrity findings, partner statements and a second rate table side by side, under suppression; `hhq cost`: cost of care before and after enrolment against qualifying members never enrolled (difference in differences) |
//! | engine | [`cohort`] | `hhq cohort`: target populations and high-risk flags as YAML criteria over blocks; per member the criteria met and the claims behind them; lists per MCO and partner, a suppressed summary |
//! | results | [`detail`] | member-level detail of a run's passes: written to Parquet as it comes, the columns the summaries read spooled and aggregated as one table, CSV formatted on every core |
//! | results | [`results`] | the long-format result table, member-level detail files, writers |
//! | results | [`decks`] | hand-built test decks of measures and cohorts, run with expected outcomes |
//! | results | [`specdiff`] | `hhq diff-spec`: two specification years of a measure compared |
//! | exports | [`suppress`] | CMS small-cell suppression for published tables: primary, then an audit of what the table's equations let a reader work out, with complementary cells hidden until no count of 1 to 10 can be |
//! | exports | [`cms`] | the CMS reporting-system tables (numbers, and per-measure fields) and CMS's consistency checks |
//! | exports | [`manifest`] | what produced a run's outputs, with hashes |
//! | exports | [`fhir`] | `hhq fhir`: a run's result table as FHIR R4 MeasureReports, one Bundle |
//! | exports | [`adhoc`] | `hhq sql` and `hhq query`: one read-only query over the extracts and blocks, an audience's members only when asked |
//! | reports | [`spc`] | statistical process control: p- and u-chart limits and special-cause signals |
//! | reports | [`chart`] | the reports' charts (plotters → SVG with text as outlines, and PNG), identical on every machine |
//! | reports | [`report`] | what people read: the terminal table, `hhq explain`, and `hhq report state\|mco\|hhp` (gather → document → HTML, PDF, tables) |
//! | main job | [`pipeline`] | the main job, stage by stage |
//!
//! No module depends on one that depends on it (`tests/suite/architecture.rs`).

pub mod adhoc;
pub mod cache;
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
pub mod execute;
pub mod extract;
pub mod fhir;
pub mod finance;
pub mod functions;
pub mod import;
pub mod library;
pub mod manifest;
pub mod measure;
pub mod output;
pub mod period;
pub mod pipeline;
pub mod plan;
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
