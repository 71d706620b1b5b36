//! Building blocks: the SQL files of `queries/`, each defining one named view (the file stem) that
//! measures draw on — final claims, ED visits, Health Home enrolment, services. A block may use
//! `in_value_set(column, 'name')`, which is expanded here into plain, portable SQL, so the text
//! that runs is the text `hhq compile` shows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement as SQLStatement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use regex::Regex;

use super::depth::{Refused, TooDeep};
use crate::error::{Error, Result};
use crate::measure::valueset::{ValueSet, ValueSets};

/// One building block, ready to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub path: PathBuf,
    /// The leading `--` comment: what the block holds, one row per what.
    pub doc: String,
    /// The query with value sets expanded.
    pub sql: String,
    /// Computed once per run even when no measure reads it directly (a `-- hhq: keep` line in
    /// its leading comment): a small block that large ones read, such as the ids of superseded
    /// claims, which the query engine can then hash instead of the claims.
    pub keep: bool,
    /// The other blocks its query names.
    pub reads: Vec<String>,
    /// The value sets its query names (`in_value_set(…, 'name')`), in name order.
    pub value_sets: Vec<String>,
}

/// The value sets a query or filter names through `in_value_set` / `any_in_value_set`, in
/// name order.
pub fn value_sets_named(text: &str) -> Vec<String> {
    let mut out: Vec<String> = MACRO
        .captures_iter(text)
        .flat_map(|c| {
            NAME.captures_iter(&c[3])
                .map(|n| n[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

static MACRO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(any_)?in_value_set\s*\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*,\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\)",
    )
    .unwrap()
});
/// One quoted name of a macro's list of value sets.
static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'([^']*)'").unwrap());
static MACRO_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(any_)?in_value_set\s*\(").unwrap());

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |n| offset - n - 1) + 1;
    (line, column)
}

/// Expand every `in_value_set(column, 'name', ...)` in `sql` (whether a column holds a code of
/// any of the sets: one test over their union), and every
/// `any_in_value_set(list_column, 'name', ...)` (whether any element of a list holds a code of
/// any of the sets: a claim line's `other_dx`, each element read once however many sets).
pub fn expand_value_sets(path: &Path, sql: &str, sets: &ValueSets) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for start in MACRO_START.find_iter(sql) {
        let (line, column) = line_col(sql, start.start());
        let Some(call) = MACRO
            .captures_at(sql, start.start())
            .filter(|c| c.get(0).is_some_and(|m| m.start() == start.start()))
        else {
            return Err(Error::Definition {
                path: path.to_path_buf(),
                line,
                column,
                message: "in_value_set takes a column and quoted value-set names".into(),
                hint: Some("write in_value_set(principal_dx, 'mental_illness_dx')".into()),
            });
        };
        let whole = call.get(0).expect("group 0");
        let mut named = Vec::new();
        for name in NAME.captures_iter(&call[3]).map(|n| n[1].to_string()) {
            let set = sets.get(&name).ok_or_else(|| Error::Definition {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("unknown value set `{name}`"),
                hint: Some(suggest(&name, sets.names())),
            })?;
            named.push(set);
        }
        out.push_str(&sql[last..whole.start()]);
        match (call.get(1), named.as_slice()) {
            (Some(_), _) => out.push_str(&ValueSet::sql_list_predicate(&named, &call[2])),
            (None, _) => out.push_str(&ValueSet::sql_any_predicate(&named, &call[2])),
        }
        last = whole.end();
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// "did you mean" for a misspelt name, else the list of known names.
pub(crate) fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.collect();
    let close = known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min();
    match close {
        Some((_, k)) => format!("did you mean `{k}`?"),
        None => format!("known: {}", known.join(", ")),
    }
}

/// Load every `*.sql` file of `dir` as a block, expanded and in dependency order (a block comes
/// after the blocks it names).
pub fn load_dir(dir: &Path, sets: &ValueSets) -> Result<Vec<Block>> {
    let mut by_name: BTreeMap<String, Block> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !path.is_file() || path.extension().is_none_or(|x| x != "sql") {
            continue;
        }
        let path = crate::library::resolved(path);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::Definition {
                path: path.clone(),
                line: 1,
                column: 1,
                message:
                    "a building block's file name must be lower_snake_case (it names the view)"
                        .into(),
                hint: None,
            });
        }
        if super::sql::is_step_name(&name) {
            return Err(Error::Definition {
                path: path.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "`{name}` is the name of a step of every compiled measure; inside a measure's \
                     query the step would hide the building block"
                ),
                hint: Some(format!(
                    "rename the file (taken: {}, and x or n followed by digits)",
                    super::sql::STEP_NAMES.join(", ")
                )),
            });
        }
        let bytes = crate::measure::read_definition(&path, MAX_BLOCK_BYTES)?;
        let text = crate::measure::utf8(&path, bytes)?;
        check_query(&path, &text)?;
        let doc = text
            .lines()
            .take_while(|l| l.trim_start().starts_with("--"))
            .map(|l| l.trim_start().trim_start_matches('-').trim())
            .filter(|l| *l != "hhq: keep")
            .collect::<Vec<_>>()
            .join(" ");
        let sql = expand_value_sets(&path, text.trim_end().trim_end_matches(';'), sets)?;
        let keep = text
            .lines()
            .take_while(|l| l.trim_start().starts_with("--"))
            .any(|l| l.trim_start().trim_start_matches('-').trim() == "hhq: keep");
        by_name.insert(
            name.clone(),
            Block {
                name,
                path,
                doc,
                sql,
                keep,
                reads: Vec::new(),
                value_sets: value_sets_named(&text),
            },
        );
    }
    let blocks = order(by_name)?;
    check_reads(&blocks)?;
    Ok(blocks)
}

/// The tables a building block may read besides other blocks: the optional inputs.
pub const INPUT_TABLES: &[&str] = &["risk_weights"];

/// A building block reads the extracts' views of usable rows (`claims`, `contacts`, `members`,
/// `enrollment`), other blocks and the optional inputs, by their bare names, and nothing else:
/// never `<extract>__all` (rows the data-quality rules set aside) nor a name of another schema or
/// catalogue. In an audience's session those views hold its members only, so a block cannot
/// reach beyond them whatever it names; this check makes a block that tries an error at load,
/// at its file, line and column, rather than a difference between sessions.
fn check_reads(blocks: &[Block]) -> Result<()> {
    let allowed: Vec<&str> = crate::extract::contract::EXTRACTS
        .iter()
        .map(|e| e.name)
        .chain(blocks.iter().map(|b| b.name.as_str()))
        .chain(INPUT_TABLES.iter().copied())
        .collect();
    for block in blocks {
        let Ok(mut statements) = DFParser::parse_sql(&block.sql) else {
            continue; // `check_query` has already named the parse error.
        };
        let Some(statement) = statements.pop_front() else {
            continue;
        };
        let (tables, _ctes) = datafusion::sql::resolve::resolve_table_references(&statement, true)?;
        for t in tables {
            let bare = matches!(t, datafusion::common::TableReference::Bare { .. });
            let name = t.table();
            if bare && allowed.contains(&name) {
                continue;
            }
            let text = std::fs::read_to_string(&block.path).unwrap_or_default();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let edge = |c| if word(c) { r"\b" } else { "" };
            let written = t.to_string();
            let pattern = format!(
                "(?i){}{}{}",
                edge(written.chars().next()),
                regex::escape(&written),
                edge(written.chars().last())
            );
            let at = Regex::new(&pattern)
                .ok()
                .and_then(|re| re.find(&text))
                .map_or((1, 1), |m| line_col(&text, m.start()));
            let what = if name.ends_with("__all") || name.ends_with("__raw") {
                format!(
                    "building block `{}` reads `{t}`, every row of an extract as read, the rows \
                     the data-quality rules set aside included",
                    block.name
                )
            } else {
                format!(
                    "building block `{}` reads `{t}`, which is not an extract, a building block \
                     or an input",
                    block.name
                )
            };
            return Err(Error::Definition {
                path: block.path.clone(),
                line: at.0,
                column: at.1,
                message: what,
                hint: Some(format!(
                    "a block reads the extracts' usable rows, other blocks and inputs by name: {}",
                    suggest(name, allowed.iter().copied().filter(|n| *n != block.name))
                )),
            });
        }
    }
    Ok(())
}

/// The largest building-block file read: the shipped ones are a few KiB.
pub const MAX_BLOCK_BYTES: usize = 256 * 1024;

/// A building block is SQL written by analysts and run with hhq's session: it must be exactly one
/// query (`SELECT`, `WITH … SELECT`, `VALUES`), never DDL, DML, `COPY`, `CREATE EXTERNAL TABLE`,
/// `SET` or `SELECT … INTO`, and never more than one statement.
pub fn check_query(path: &Path, text: &str) -> Result<()> {
    let err = |(line, column): (usize, usize), message: String| Error::Definition {
        path: path.to_path_buf(),
        line,
        column,
        message,
        hint: Some(
            "a building block is one SELECT (or WITH … SELECT) query; it cannot change tables, \
             read files or set options"
                .into(),
        ),
    };
    // Where each statement starts: its first token, and the first token after each `;`.
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| {
            err(
                (e.location.line as usize, e.location.column as usize),
                format!("the SQL does not parse: {}", e.message),
            )
        })?;
    let mut starts = Vec::new();
    let mut after_semicolon = true;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => after_semicolon = true,
            token if after_semicolon => {
                after_semicolon = false;
                let word = match token {
                    Token::Word(w) => w.value.to_uppercase(),
                    other => other.to_string(),
                };
                starts.push((
                    (t.span.start.line as usize, t.span.start.column as usize),
                    word,
                ));
            }
            _ => {}
        }
    }
    let statements =
        super::depth::parse_statements(|| DFParser::parse_sql(text)).map_err(|e| match e {
            Refused::Parse(e) => {
                let message = e.strip_backtrace();
                let at = SQL_AT
                    .captures(&message)
                    .map(|c| (c[1].parse().unwrap_or(1), c[2].parse().unwrap_or(1)))
                    .unwrap_or((1, 1));
                err(at, format!("the SQL does not parse: {message}"))
            }
            Refused::TooDeep(deep) => Error::Definition {
                path: path.to_path_buf(),
                line: deep.at.map_or(1, |a| a.0),
                column: deep.at.map_or(1, |a| a.1),
                message: deep.message(),
                hint: Some(TooDeep::hint()),
            },
        })?;
    let start = |i: usize| starts.get(i).cloned().unwrap_or(((1, 1), String::new()));
    if statements.is_empty() {
        return Err(err((1, 1), "the file holds no query".into()));
    }
    if statements.len() > 1 {
        let (at, word) = start(1);
        return Err(err(
            at,
            format!(
                "the file holds {} statements (a `{word}` follows the first); a building block is one query",
                statements.len()
            ),
        ));
    }
    let (at, word) = start(0);
    let Some(DFStatement::Statement(statement)) = statements.front() else {
        return Err(err(at, format!("a `{word}` statement is not a query")));
    };
    let SQLStatement::Query(query) = statement.as_ref() else {
        return Err(err(at, format!("a `{word}` statement is not a query")));
    };
    // `SELECT … INTO t` creates a table; look in every (sub)query.
    fn into(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(s) => s.into.is_some(),
            SetExpr::SetOperation { left, right, .. } => into(left) || into(right),
            _ => false,
        }
    }
    struct Into(bool);
    impl Visitor for Into {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.0 |= into(&q.body);
            ControlFlow::Continue(())
        }
    }
    let mut found = Into(false);
    let _ = query.visit(&mut found);
    if found.0 {
        return Err(err(
            at,
            "`SELECT … INTO` creates a table; a building block is a query".into(),
        ));
    }
    right_join_null_test(path, &tokens)
}

/// Refuse a `RIGHT [OUTER] JOIN` in a query that also tests `IS NULL`: when its estimates make
/// DataFusion 55 swap the join's sides, it can move a null test on the optional side's column
/// onto the preserved side's column of the same name, and the query silently keeps no row
/// (claims_final did: see queries/claims_final.sql). A `LEFT JOIN` with the sides exchanged, or
/// an anti join, says the same and is planned right.
fn right_join_null_test(path: &Path, tokens: &[TokenWithSpan]) -> Result<()> {
    let words: Vec<(String, (usize, usize))> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| {
            let word = match &t.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
                _ => String::new(),
            };
            (
                word,
                (t.span.start.line as usize, t.span.start.column as usize),
            )
        })
        .collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|(x, _)| x == w);
    let right_join = (0..words.len()).find(|&i| {
        is(i, "RIGHT") && (is(i + 1, "JOIN") || (is(i + 1, "OUTER") && is(i + 2, "JOIN")))
    });
    let null_test = (0..words.len()).any(|i| is(i, "IS") && is(i + 1, "NULL"));
    match right_join {
        Some(i) if null_test => Err(Error::Definition {
            path: path.to_path_buf(),
            line: words[i].1.0,
            column: words[i].1.1,
            message:
                "a `RIGHT JOIN` in a query that tests `IS NULL`: DataFusion 55 can move a null \
                      test on the optional side onto the other side's column of the same name \
                      and keep no row"
                    .into(),
            hint: Some(
                "for the rows of `b` that match no row of `a`, write `a RIGHT ANTI JOIN b ON …` \
                 or `NOT EXISTS`; for an outer join, write `b LEFT JOIN a ON …`"
                    .into(),
            ),
        }),
        _ => Ok(()),
    }
}

static SQL_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Line: (\d+), Column: (\d+)").unwrap());

/// Order blocks so each follows those it references (by whole-word name), refusing cycles.
fn order(mut pending: BTreeMap<String, Block>) -> Result<Vec<Block>> {
    let names: Vec<String> = pending.keys().cloned().collect();
    let deps: BTreeMap<String, Vec<String>> = pending
        .values()
        .map(|b| {
            // Block names are identifiers, so a whole-word match is membership in the set of the
            // SQL's words (one pass per block rather than a regex per pair of blocks).
            let sql = strip_comments(&b.sql);
            let words: BTreeSet<&str> = sql
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            let used = names
                .iter()
                .filter(|n| *n != &b.name)
                .filter(|n| words.contains(n.as_str()))
                .cloned()
                .collect();
            (b.name.clone(), used)
        })
        .collect();
    let mut done: Vec<Block> = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .keys()
            .filter(|n| deps[*n].iter().all(|d| done.iter().any(|b| &b.name == d)))
            .cloned()
            .collect();
        if ready.is_empty() {
            let stuck = pending.values().next().expect("non-empty");
            return Err(Error::Definition {
                path: stuck.path.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "building blocks refer to each other in a cycle: {}",
                    pending.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                hint: None,
            });
        }
        for n in ready {
            let mut block = pending.remove(&n).expect("ready block");
            block.reads = deps[&n].clone();
            done.push(block);
        }
    }
    Ok(done)
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_set_over_a_list_is_the_lookup_over_a_scalar_the_in_lists() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            Path::new("v.csv"),
            "value_set,code_system,code\nsud,ICD10CM,F10*\nsud,ICD10CM,T401\nmh,ICD10CM,F20*\n",
        )
        .unwrap();
        let sql = "principal_dx IS NULL OR in_value_set(principal_dx, 'sud') \
                   OR any_in_value_set(other_dx, 'sud')";
        let expanded = expand_value_sets(Path::new("q.sql"), sql, &sets).unwrap();
        assert_eq!(
            expanded,
            "principal_dx IS NULL OR (principal_dx >= 'F10' AND principal_dx < 'T402' AND \
             (principal_dx IN ('T401') OR (principal_dx >= 'F10' AND principal_dx < 'F11'))) \
             OR hhq_value_set_contains(other_dx, 'sud')"
        );
        let several = expand_value_sets(
            Path::new("q.sql"),
            "any_in_value_set(other_dx, 'sud',  'mh')",
            &sets,
        )
        .unwrap();
        assert_eq!(several, "hhq_value_set_contains(other_dx, 'sud', 'mh')");
        // A scalar in any of several sets: one predicate over their union.
        let union =
            expand_value_sets(Path::new("q.sql"), "in_value_set(dx, 'sud', 'mh')", &sets).unwrap();
        assert_eq!(
            union,
            "(dx >= 'F10' AND dx < 'T402' AND (dx IN ('T401') OR (dx >= 'F10' AND dx < 'F11') \
             OR (dx >= 'F20' AND dx < 'F21')))"
        );
        let unknown = expand_value_sets(
            Path::new("q.sql"),
            "any_in_value_set(dx, 'mh', 'sux')",
            &sets,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("unknown value set `sux`"), "{unknown}");
    }
}
