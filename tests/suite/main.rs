//! hhq's integration tests, one binary (linking DataFusion and typst once): each module tests one
//! part end to end, through the library or the `hhq` binary, on the committed test data or on
//! small extracts written for the test. `cargo test` runs them all but the browser and
//! distributed-engine modules, which need a headless browser or the `ballista` feature and have
//! their own command (README, "Two commands on a fresh machine").

mod common;

mod architecture;
mod atomic;
mod browser;
mod cache;
mod charts;
mod cli;
mod cohort;
mod contract;
mod crash;
mod decks;
mod definitions;
mod events;
mod fuzz;
mod hostile;
mod measures;
mod memory;
mod payments;
mod performance;
mod plan;
mod portable;
mod privacy;
mod project;
mod properties;
mod quality;
mod reports;

#[cfg(feature = "ballista")]
mod distributed;
