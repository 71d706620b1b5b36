//! How deep SQL written by people may nest: `where:` filters (measures and cohorts), building
//! blocks (`queries/*.sql`) and ad hoc queries (`hhq sql`, `hhq query`) are measured after parsing
//! and refused above [`MAX_DEPTH`], before DataFusion sees them.
//!
//! Why a limit of our own: sqlparser stops *nested* input (`((((…))))`, `NOT NOT …`, subqueries)
//! at its recursion limit (50), but a flat chain (`1 + 1 + …`, `a OR b OR …`, `x IS NULL IS NULL
//! …`, `SELECT … UNION SELECT … UNION …`) is parsed in a loop into a left-nested tree as deep as
//! the chain is long, and a `FROM` of many joins is planned as a join tree as deep. DataFusion's
//! `recursive_protection` (on) does not save the process: it grows the stack only in the
//! functions marked `#[recursive]` (the SQL planner's and optimiser's tree walks), and only when
//! less than 128 KiB is left; derived and hand-written recursions on the same trees are unmarked
//! and run on whatever stack is left: sqlparser's `Spanned::span` (`hhq check`, a 300-term `OR`
//! on a 2 MiB stack), DataFusion's `SchemaDisplay` (the name of a 225-term `+` in a `SELECT`
//! list) and `Expr::clone` (a 5,000-term `OR` on the main thread's 8 MiB) each overflowed the
//! stack in a debug build, and a stack overflow aborts the process (exit 134): no error, no
//! message, nothing `catch_unwind` can catch.
//!
//! The walk itself cannot overflow: the visitor stops as soon as the depth passes the limit, so
//! it never recurses deeper than that, and a too-deep tree is taken apart without recursion
//! ([`drop_deep`]) rather than dropped (dropping a box recurses too).

use std::collections::VecDeque;
use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, Query, Select, SetExpr, Spanned, Statement, Value, ValueWithSpan, Values,
    Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The deepest a filter, block or ad hoc query may nest: expressions within expressions, queries
/// within queries, set operations (`UNION`, …) and joins each count one level. The shipped
/// filters nest at most 6 levels and the shipped blocks at most 18 (a test holds them to a
/// quarter of the limit);
/// in a debug build on a 2 MiB stack (tokio's worker threads and test threads) DataFusion
/// overflowed at a 225-term `+` in a `SELECT` list and at a 300-term `OR` in a measure's
/// `where:` (`hhq check`), so 100 leaves more than twice the margin below the shallowest
/// failure seen, and a release build (smaller frames) or the main thread (8 MiB) far more.
pub const MAX_DEPTH: usize = 100;

/// Where SQL nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line and column, in the parsed text, where the too-deep expression (its outermost
    /// expression) or query begins; `None` when the parser recorded no position for it.
    pub at: Option<(usize, usize)>,
}

impl TooDeep {
    /// What is wrong, for an error message.
    pub fn message(&self) -> String {
        format!(
            "the SQL nests deeper than {MAX_DEPTH} levels (an expression, query, chain of \
             operators, `UNION`s or joins)"
        )
    }

    /// What to do about it, for an error's hint.
    pub fn hint() -> String {
        "a long chain of `OR`s or `AND`s is as deep as it is long: write `x IN (…)` for a list of \
         values, `in_value_set(column, 'name')` for codes, or split the query into building \
         blocks"
            .into()
    }
}

/// The most SQL text parsed at once: a building block's or a measure file's limit, which no
/// hand-written query comes near. With it a parsed tree is at most about 130,000 levels deep
/// (`1+1+…`), which the parse thread's stack can drop.
pub const MAX_SQL_BYTES: usize = 256 * 1024;

/// The stack untrusted SQL is parsed on. sqlparser drops a partly built tree when the text stops
/// parsing (`1+1+…+1+)`), recursively, before [`drop_deep`] can step in: in a debug build a
/// 100,000-level tree took between 6 and 16 MiB to drop. Reserved, not committed: only the pages
/// touched cost memory.
const PARSE_STACK: usize = 64 << 20;

/// Run `parse` (parsing and [checking](check_statement) SQL of at most [`MAX_SQL_BYTES`]) on a
/// thread with a stack large enough to drop any tree it builds.
pub fn on_parse_stack<R: Send, F: FnOnce() -> R + Send>(parse: F) -> R {
    let mut job = Some(parse);
    let ran = std::thread::scope(|s| {
        let job = &mut job;
        std::thread::Builder::new()
            .name("hhq-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(s, move || job.take().map(|parse| parse()))
            .ok()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    match (ran.flatten(), job) {
        (Some(r), _) => r,
        // No thread could be started (a process out of threads): parse here.
        (None, Some(parse)) => parse(),
        (None, None) => unreachable!("a thread that ran the parse returned its result"),
    }
}

/// Why SQL text was refused.
#[derive(Debug)]
pub enum Refused<E> {
    /// It does not parse.
    Parse(E),
    /// It parses, deeper than [`MAX_DEPTH`].
    TooDeep(TooDeep),
}

/// Parse one expression and nothing after it (a `where:` filter), and check its depth.
pub fn parse_expr(text: &str) -> Result<Expr, Refused<ParserError>> {
    on_parse_stack(|| {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(Refused::Parse)?;
        let expr = parser.parse_expr().map_err(Refused::Parse)?;
        let checked = match parser.expect_token(&Token::EOF) {
            Err(e) => Err(Refused::Parse(e)),
            Ok(_) => check_expr(&expr).map_err(Refused::TooDeep),
        };
        match checked {
            Ok(()) => Ok(expr),
            Err(e) => {
                drop_deep(expr);
                Err(e)
            }
        }
    })
}

/// Parse SQL statements with `parse` (DataFusion's parser, as a block or the session parses
/// them) and check the depth of each.
pub fn parse_statements<E: Send>(
    parse: impl FnOnce() -> Result<VecDeque<DFStatement>, E> + Send,
) -> Result<VecDeque<DFStatement>, Refused<E>> {
    on_parse_stack(|| {
        let parsed = parse().map_err(Refused::Parse)?;
        match parsed.iter().try_for_each(check_statement) {
            Ok(()) => Ok(parsed),
            Err(deep) => {
                parsed.into_iter().for_each(drop_statement);
                Err(Refused::TooDeep(deep))
            }
        }
    })
}

/// Check one expression (a `where:` filter).
pub fn check_expr(expr: &Expr) -> Result<(), TooDeep> {
    walk(|d| expr.visit(d))
}

/// Check one statement of DataFusion's parser (a block or an ad hoc query), whatever its kind:
/// the planner plans a `COPY`'s or `EXPLAIN`'s query before the options refuse it.
pub fn check_statement(statement: &DFStatement) -> Result<(), TooDeep> {
    match statement {
        DFStatement::Statement(s) => check_sql_statement(s),
        DFStatement::Explain(e) => check_statement(&e.statement),
        DFStatement::CopyTo(c) => match &c.source {
            CopyToSource::Query(q) => walk(|d| q.visit(d)),
            CopyToSource::Relation(_) => Ok(()),
        },
        DFStatement::CreateExternalTable(t) => walk(|d| {
            t.columns.visit(d)?;
            t.order_exprs.visit(d)
        }),
        DFStatement::Reset(_) => Ok(()),
    }
}

/// Check one statement of sqlparser's AST.
pub fn check_sql_statement(statement: &Statement) -> Result<(), TooDeep> {
    walk(|d| statement.visit(d))
}

fn walk(visit: impl FnOnce(&mut Depth) -> ControlFlow<()>) -> Result<(), TooDeep> {
    measure(visit).map(|_| ())
}

/// How deep a statement nests, as [`MAX_DEPTH`] counts.
pub fn statement_depth(statement: &DFStatement) -> Result<usize, TooDeep> {
    match statement {
        DFStatement::Statement(s) => measure(|d| s.visit(d)),
        other => check_statement(other).map(|()| 0),
    }
}

/// How deep an expression nests, as [`MAX_DEPTH`] counts.
pub fn expr_depth(expr: &Expr) -> Result<usize, TooDeep> {
    measure(|d| expr.visit(d))
}

fn measure(visit: impl FnOnce(&mut Depth) -> ControlFlow<()>) -> Result<usize, TooDeep> {
    let mut d = Depth::default();
    match visit(&mut d) {
        ControlFlow::Break(()) => Err(TooDeep { at: d.at }),
        ControlFlow::Continue(()) => Ok(d.deepest),
    }
}

#[derive(Default)]
struct Depth {
    /// Levels open on the way down to the node being visited.
    depth: usize,
    /// Expressions open: 0 outside any.
    open_exprs: usize,
    /// Where the outermost open expression begins, else the innermost open `SELECT`.
    root: Option<(usize, usize)>,
    select: Vec<Option<(usize, usize)>>,
    at: Option<(usize, usize)>,
    /// The deepest level reached.
    deepest: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.depth += levels;
        self.deepest = self.deepest.max(self.depth);
        if self.depth > MAX_DEPTH {
            self.at = self
                .root
                .or_else(|| self.select.iter().rev().find_map(|s| *s));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.open_exprs == 0 {
            self.root = start_of(expr);
        }
        self.open_exprs += 1;
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.open_exprs -= 1;
        if self.open_exprs == 0 {
            self.root = None;
        }
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // The set operations' chain is walked here, iteratively: the visitor would recurse
        // down it with no hook to stop it.
        self.select.push(first_select(&query.body));
        self.enter(1 + set_operations(&query.body))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.select.pop();
        self.depth -= 1 + set_operations(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.select.push(location(select.select_token.0.span.start));
        self.enter(joins(select))
    }

    fn post_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.select.pop();
        self.depth -= joins(select);
        ControlFlow::Continue(())
    }
}

/// How deep a query body's chain of set operations nests (0 for a plain `SELECT`), counted
/// without recursion.
fn set_operations(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 0)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        if let SetExpr::SetOperation { left, right, .. } = e {
            stack.push((left, d + 1));
            stack.push((right, d + 1));
        }
    }
    deepest
}

/// The joins a `SELECT` plans as a tree: each `JOIN` and each table after the first in `FROM`.
fn joins(select: &Select) -> usize {
    select.from.len().saturating_sub(1) + select.from.iter().map(|t| t.joins.len()).sum::<usize>()
}

/// Where the first `SELECT` of a query body begins, found without recursion.
fn first_select(mut body: &SetExpr) -> Option<(usize, usize)> {
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = &q.body,
            SetExpr::Select(s) => return location(s.select_token.0.span.start),
            _ => return None,
        }
    }
}

fn location(l: datafusion::sql::sqlparser::tokenizer::Location) -> Option<(usize, usize)> {
    (l.line > 0).then_some((l.line as usize, l.column as usize))
}

/// Where an expression begins: down its first operands to a leaf with a position, without
/// recursion (`Spanned::span` recurses through the whole tree, the overflow this module
/// prevents).
fn start_of(mut e: &Expr) -> Option<(usize, usize)> {
    loop {
        e = match e {
            Expr::BinaryOp { left, .. }
            | Expr::AnyOp { left, .. }
            | Expr::AllOp { left, .. }
            | Expr::IsDistinctFrom(left, _)
            | Expr::IsNotDistinctFrom(left, _) => left,
            Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::IsNormalized { expr: x, .. }
            | Expr::InList { expr: x, .. }
            | Expr::InSubquery { expr: x, .. }
            | Expr::InUnnest { expr: x, .. }
            | Expr::Between { expr: x, .. }
            | Expr::Like { expr: x, .. }
            | Expr::ILike { expr: x, .. }
            | Expr::SimilarTo { expr: x, .. }
            | Expr::RLike { expr: x, .. }
            | Expr::Collate { expr: x, .. }
            | Expr::AtTimeZone { timestamp: x, .. }
            | Expr::CompoundFieldAccess { root: x, .. }
            | Expr::JsonAccess { value: x, .. }
            | Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: x,
                ..
            } => x,
            // The operand of a prefix operator or inside parentheses: a column or so further on.
            Expr::Nested(x) | Expr::UnaryOp { expr: x, .. } => x,
            Expr::Identifier(id) => return location(id.span.start),
            Expr::CompoundIdentifier(ids) => return location(ids.first()?.span.start),
            Expr::Value(v) => return location(v.span.start),
            Expr::Function(f) => return location(f.name.0.first()?.as_ident()?.span.start),
            Expr::Case { case_token, .. } => return location(case_token.0.span.start),
            // Leaves, whose span does not recurse far.
            Expr::TypedString(_) | Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                return location(e.span().start);
            }
            _ => return None,
        };
    }
}

/// Drop a parsed tree that may be too deep to drop (dropping a box recurses): every expression
/// deeper than a few levels is moved out, a null literal left in its place, and taken apart in
/// turn; a chain of set operations is taken apart link by link. No recursion goes deeper than a
/// few levels of the tree.
pub fn drop_deep<T: VisitMut>(mut tree: T) {
    let mut d = Detach::default();
    let _ = VisitMut::visit(&mut tree, &mut d);
    drop(tree);
    d.finish();
}

/// [`drop_deep`] for a statement of DataFusion's parser.
pub fn drop_statement(statement: DFStatement) {
    match statement {
        DFStatement::Statement(s) => drop_deep(*s),
        DFStatement::Explain(e) => drop_statement(*e.statement),
        DFStatement::CopyTo(c) => {
            if let CopyToSource::Query(q) = c.source {
                drop_deep(*q);
            }
        }
        DFStatement::CreateExternalTable(t) => {
            drop_deep(t.columns);
            drop_deep(t.order_exprs);
        }
        DFStatement::Reset(_) => {}
    }
}

#[derive(Default)]
struct Detach {
    depth: usize,
    exprs: Vec<Expr>,
    bodies: Vec<SetExpr>,
}

impl Detach {
    /// Below this, expressions stay and are dropped with their parent.
    const KEEP: usize = 16;

    fn finish(mut self) {
        loop {
            self.depth = 0;
            if let Some(mut e) = self.exprs.pop() {
                let _ = VisitMut::visit(&mut e, &mut self);
            } else if let Some(body) = self.bodies.pop() {
                match body {
                    SetExpr::SetOperation { left, right, .. } => {
                        self.bodies.push(*left);
                        self.bodies.push(*right);
                    }
                    mut other => {
                        let _ = VisitMut::visit(&mut other, &mut self);
                    }
                }
            } else {
                return;
            }
        }
    }
}

impl VisitorMut for Detach {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > Self::KEEP {
            let null = Expr::Value(ValueWithSpan::from(Value::Null));
            self.exprs.push(std::mem::replace(expr, null));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if matches!(*query.body, SetExpr::SetOperation { .. }) {
            let empty = SetExpr::Values(Values {
                explicit_row: false,
                value_keyword: false,
                rows: Vec::new(),
            });
            self.bodies
                .push(*std::mem::replace(&mut query.body, Box::new(empty)));
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(sql: &str) -> Expr {
        Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    fn statement(sql: &str) -> DFStatement {
        datafusion::sql::parser::DFParser::parse_sql(sql)
            .unwrap()
            .pop_front()
            .unwrap()
    }

    #[test]
    fn a_chain_is_as_deep_as_it_is_long() {
        let chain = |n: usize, op: &str| vec!["a"; n].join(op);
        assert_eq!(check_expr(&expr(&chain(MAX_DEPTH, " OR "))), Ok(()));
        assert_eq!(
            check_expr(&expr(&format!(
                "x = 1 AND ({})",
                chain(MAX_DEPTH + 1, " + ")
            ))),
            Err(TooDeep { at: Some((1, 1)) })
        );
        let e = expr(&format!("f(\n  {})", chain(MAX_DEPTH, "||")));
        assert_eq!(check_expr(&e), Err(TooDeep { at: Some((1, 1)) }));
        let e = expr(&format!("y{}", " IS NULL".repeat(MAX_DEPTH)));
        assert_eq!(check_expr(&e), Err(TooDeep { at: Some((1, 1)) }));
    }

    #[test]
    fn queries_unions_and_joins_count() {
        let sql = |n: usize, glue: &str| {
            format!(
                "SELECT 1 AS x\nFROM t WHERE {}",
                vec!["a = 1"; n].join(glue)
            )
        };
        assert_eq!(check_statement(&statement(&sql(90, " OR "))), Ok(()));
        assert_eq!(
            check_statement(&statement(&sql(120, " OR "))),
            Err(TooDeep { at: Some((2, 14)) })
        );
        let unions = vec!["SELECT 1"; MAX_DEPTH + 1].join(" UNION ALL ");
        assert_eq!(
            check_statement(&statement(&format!("  {unions}"))),
            Err(TooDeep { at: Some((1, 3)) })
        );
        let joins = format!(
            "SELECT 1 FROM t {}",
            "JOIN t USING (a) ".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            check_statement(&statement(&joins)),
            Err(TooDeep { at: Some((1, 1)) })
        );
        // A `COPY`'s query is planned before the options refuse it.
        let copy = format!("COPY ({}) TO 'x.csv'", sql(120, " OR "));
        assert!(check_statement(&statement(&copy)).is_err());
    }

    #[test]
    fn the_shipped_filters_and_blocks_are_well_within_the_limit() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut blocks = 0;
        for f in std::fs::read_dir(root.join("queries")).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "sql") {
                let text = std::fs::read_to_string(&p).unwrap();
                for s in datafusion::sql::parser::DFParser::parse_sql(&text).unwrap() {
                    blocks = blocks.max(statement_depth(&s).unwrap());
                }
            }
        }
        let mut filters = 0;
        let mut yaml = Vec::new();
        let mut dirs = vec![root.join("measures")];
        while let Some(d) = dirs.pop() {
            for f in std::fs::read_dir(d).unwrap() {
                let p = f.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    yaml.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        // Every `where:` of every definition file (measures, cohorts, decks), however nested.
        for text in &yaml {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some((key, filter)) = line.split_once("where: ") else {
                    continue;
                };
                // Only a `where:` key (rule files quote filters inside their `at:` texts).
                if !matches!(key.trim(), "" | "-") {
                    continue;
                }
                // A YAML comment after the filter is not part of it.
                let filter = filter.split(" #").next().unwrap_or(filter);
                let mut filter = filter.trim().trim_matches('"').to_string();
                if filter.starts_with('>') || filter.starts_with('|') {
                    // A block scalar: the lines indented deeper than the key.
                    let indent = key.len() - key.trim_start().len();
                    filter = lines[i + 1..]
                        .iter()
                        .take_while(|l| l.len() - l.trim_start().len() > indent)
                        .map(|l| l.trim())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
                let e = Parser::new(&GenericDialect {})
                    .try_with_sql(&filter)
                    .and_then(|mut p| p.parse_expr())
                    .unwrap_or_else(|e| panic!("{filter}: {e}"));
                filters = filters.max(expr_depth(&e).unwrap());
            }
        }
        eprintln!("deepest shipped filter: {filters}; deepest shipped block: {blocks}");
        assert!(filters <= MAX_DEPTH / 4 && blocks <= MAX_DEPTH / 4);
    }

    #[test]
    fn a_tree_of_any_depth_is_dropped_without_recursion() {
        // Run on a thread with a 256 KiB stack: a 100,000-term chain would overflow it if
        // dropped (or checked) recursively.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let text = vec!["1"; 100_000].join("+");
                // Parsing is a loop, so the tree is built on any stack.
                let e = expr(&text);
                assert_eq!(check_expr(&e), Err(TooDeep { at: Some((1, 1)) }));
                drop_deep(e);
                let unions = vec!["SELECT a + 1 + 1 FROM t"; 50_000].join(" UNION ");
                let s = statement(&unions);
                assert_eq!(check_statement(&s), Err(TooDeep { at: Some((1, 1)) }));
                drop_statement(s);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
