//! A checked filter planned as DataFusion plans it in a run, with no data: against the block's
//! columns and types, with DataFusion's functions and hhq's, coerced and simplified as the
//! optimizer does, and each constant part evaluated once. So what would fail when a measure runs
//! (an anonymous query-engine error, far from the file) fails when it is compiled, at the
//! filter's line and column: a filter that is not a test (`1`, `visit_date`), an aggregate or a
//! window function, a parameter (`$1`, `?`), an unknown function or column, a constant that
//! cannot be computed (`1/0 = 1`, `CAST(300 AS TINYINT)`).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::SessionContext;

use crate::functions::lookup::LOOKUP_FUNCTION;

/// A problem and a hint, as [`super::filter::check`] reports them.
type Problem = (String, Option<String>);

/// A session with DataFusion's functions and hhq's (the value-set lookup by its signature only:
/// planning reads no codes), made once.
fn state() -> &'static SessionState {
    static STATE: OnceLock<SessionState> = OnceLock::new();
    STATE.get_or_init(|| {
        let ctx = SessionContext::new();
        crate::functions::register(&ctx, &Default::default());
        ctx.state()
    })
}

/// Plan `sql`, a filter over `columns` qualified by `alias` (value sets expanded), as a run
/// would; the first problem found.
pub(crate) fn filter(
    sql: &str,
    alias: &str,
    columns: &[(String, DataType)],
    unit: Option<(&str, &[(String, DataType)])>,
) -> std::result::Result<(), Problem> {
    let qualified = |alias: &str, columns: &[(String, DataType)]| {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, t)| Field::new(n, t.clone(), true))
            .collect();
        DFSchema::try_from_qualified_schema(alias, &Schema::new(fields)).map_err(|e| {
            (
                format!("the block's columns do not make a schema: {e}"),
                None,
            )
        })
    };
    let mut schema = qualified(alias, columns)?;
    // The unit's own columns (`unit.<column>`), as the compiled query names them.
    if let Some((unit_alias, unit_columns)) = unit {
        let unit_schema = qualified(unit_alias, unit_columns)?;
        schema = schema.join(&unit_schema).map_err(|e| {
            (
                format!("the unit's columns do not make a schema: {e}"),
                None,
            )
        })?;
    }
    let state = state();
    let expr = state.create_logical_expr(sql, &schema).map_err(|e| {
        (
            format!(
                "the `where` expression does not plan: {}",
                e.strip_backtrace()
            ),
            Some(
                "a `where` expression may call DataFusion's scalar functions and \
                 `in_value_set`, over the block's columns"
                    .into(),
            ),
        )
    })?;
    if let Some(p) = not_of_one_row(&expr) {
        return Err(p);
    }
    let schema = Arc::new(schema);
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::clone(&schema))
            .with_config_options(Arc::clone(state.config_options()))
            .build(),
    );
    let fails = |e: datafusion::error::DataFusionError| {
        (
            format!(
                "the `where` expression cannot be computed: {}",
                e.strip_backtrace()
            ),
            Some("a part of it without columns fails whatever the row holds".into()),
        )
    };
    let expr = simplifier.coerce(expr, &schema).map_err(|e| {
        (
            format!(
                "the `where` expression compares or combines unlike types: {}",
                e.strip_backtrace()
            ),
            None,
        )
    })?;
    match expr.get_type(&schema) {
        Ok(DataType::Boolean | DataType::Null) => {}
        Ok(other) => {
            return Err((
                format!("the `where` expression's value is of type {other}, not true or false"),
                Some("compare it, e.g. `days_supply > 0`, or test it: `reached`".into()),
            ));
        }
        Err(e) => return Err(fails(e)),
    }
    // Casts of constants fail here, as the optimizer's simplification fails in a run.
    let expr = simplifier.simplify(expr).map_err(fails)?;
    // Other constants the simplifier could not compute are left for every row to fail on.
    match constant_failure(&expr, state, &schema) {
        Some(e) => Err(fails(e)),
        None => Ok(()),
    }
}

/// An aggregate, a window function or a parameter: none is a test of one row.
fn not_of_one_row(expr: &Expr) -> Option<Problem> {
    let mut found = None;
    let _ = expr.apply(|e| {
        found = match e {
            Expr::AggregateFunction(f) => Some((
                format!(
                    "`{}` is an aggregate function; a `where` expression tests one row",
                    f.func.name()
                ),
                Some("count or compare over rows with the measure's conditions instead".into()),
            )),
            Expr::WindowFunction(f) => Some((
                format!(
                    "`{}` is a window function; a `where` expression tests one row",
                    f.fun.name()
                ),
                None,
            )),
            Expr::Placeholder(p) => Some((
                format!(
                    "`{}` is a parameter, which nothing fills in a `where` expression",
                    p.id
                ),
                Some("write the value itself".into()),
            )),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether `expr` reads nothing of the row and is the same on every row.
fn is_constant(expr: &Expr) -> bool {
    !expr.is_volatile()
        && !expr
            .exists(|e| {
                Ok(match e {
                    Expr::Column(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
                    | Expr::ScalarVariable(..) => true,
                    // Planned by its signature only: it holds no codes here.
                    Expr::ScalarFunction(f) => f.name() == LOOKUP_FUNCTION,
                    _ => false,
                })
            })
            .unwrap_or(true)
}

/// The error of the first constant part (not a literal) that fails when computed.
fn constant_failure(
    expr: &Expr,
    state: &SessionState,
    schema: &DFSchema,
) -> Option<datafusion::error::DataFusionError> {
    if is_constant(expr) {
        if matches!(expr, Expr::Literal(..)) {
            return None;
        }
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            Vec::new(),
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .ok()?;
        return state
            .create_physical_expr(expr.clone(), schema)
            .and_then(|p| p.evaluate(&one_row))
            .err();
    }
    let mut found = None;
    let _ = expr.apply_children(|child| {
        found = constant_failure(child, state, schema);
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
