//! hhq's SQL functions, and the one registry every session takes them from: the engine's, the
//! filter planner's, and a cluster's scheduler and executors. Each function is here because
//! the plain SQL for it was slow at a state's scale or needs a loop (docs/measure-language.md,
//! "hhq's SQL functions"); each file holds one family and its tests.
//!
//! - [`calendar`]: `hhq_age`, `hhq_month`, `hhq_quarter`, `hhq_episode_starts`;
//! - [`pick`]: the aggregates `hhq_first_id` and `hhq_latest_span`;
//! - [`loops`]: the replacement-loop aggregates `hhq_loop_claims` and `hhq_loop_standing`;
//! - [`lookup`]: `hhq_value_set_contains`, large value sets as a hash lookup;
//! - [`formats`]: the contract's code formats and `hhq_code_format`;
//! - [`count`]: `hhq_count_true`, the data-quality profile's count.

pub mod calendar;
pub mod count;
pub mod formats;
pub mod lookup;
pub mod loops;
pub mod pick;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::measure::valueset::ValueSets;

/// Register every hhq function with a session, the value-set lookup over `sets` (every set, so
/// a filter may name any; none to plan without codes).
pub fn register(ctx: &SessionContext, sets: &ValueSets) {
    register_fixed(ctx);
    lookup::register(ctx, sets);
}

/// Register every hhq function but the value-set lookup, whose codes travel with each plan to
/// a cluster ([`lookup::to_wire`]).
pub fn register_fixed(ctx: &SessionContext) {
    calendar::register(ctx);
    pick::register(ctx);
    loops::register(ctx);
    formats::register(ctx);
    count::register(ctx);
}

/// The functions of [`register_fixed`] by name, scalar and aggregate: what a cluster's nodes
/// register and decode plans with.
pub fn fixed() -> (
    HashMap<String, Arc<ScalarUDF>>,
    HashMap<String, Arc<AggregateUDF>>,
) {
    let ctx = SessionContext::new();
    register_fixed(&ctx);
    let state = ctx.state();
    let ours = |name: &str| name.starts_with("hhq_");
    (
        state
            .scalar_functions()
            .iter()
            .filter(|(n, _)| ours(n))
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect(),
        state
            .aggregate_functions()
            .iter()
            .filter(|(n, _)| ours(n))
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect(),
    )
}
