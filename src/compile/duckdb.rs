//! A compiled measure as one script that DuckDB runs unchanged (`hhq compile --sql --extracts`):
//! the extracts read from their Parquet files and typed to the contract, the row rules, the
//! building blocks, the detail, and a last statement whose rows are those of `hhq run`'s
//! `summary.csv` for the measure.
//!
//! hhq's SQL is DataFusion's, with hhq's functions; DuckDB differs in a few places, each
//! handled here and named in the script: session settings that give DataFusion's semantics,
//! hhq's functions as SQL macros (the value-set lookup as `IN` lists of the sets' codes), and
//! textual rewrites of the few constructs DuckDB spells differently (`REWRITES`). The
//! DuckDB version the script is tested with is [`DUCKDB_TESTED`] (`scripts/duckdb`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use regex::{Captures, Regex};

use crate::compile::blocks::Block;
use crate::compile::{CompiledMeasure, Output, Source};
use crate::error::{Error, Result};
use crate::extract::contract::{ColumnType, EXTRACTS};
use crate::measure::Unit;
use crate::measure::valueset::{LOOKUP_FUNCTION, ValueSets};

/// The DuckDB release the scripts are tested with (`scripts/duckdb`, `tests/suite/portable.rs`).
pub const DUCKDB_TESTED: &str = "2.0.1";

/// Session settings that give DuckDB DataFusion's semantics: (statement, why).
const SETTINGS: &[(&str, &str)] = &[
    (
        "SET integer_division = true",
        "INT / INT truncates in DataFusion (a quarter is (month + 2) / 3)",
    ),
    (
        "SET default_null_order = 'nulls_last_on_asc_first_on_desc'",
        "DataFusion sorts NULLs as the largest value, as PostgreSQL does",
    ),
];

/// hhq's SQL functions (and DataFusion's that DuckDB lacks) as DuckDB macros: (name, why,
/// definition). Each is defined only when the script calls it.
const MACROS: &[(&str, &str, &str)] = &[
    (
        "to_char",
        "DataFusion's to_char(date, format) takes the format DuckDB's strftime takes",
        "CREATE OR REPLACE TEMP MACRO to_char(d, f) AS strftime(d, f)",
    ),
    (
        "make_array",
        "DataFusion's make_array(x) is DuckDB's list [x] (only the one-argument form is used)",
        "CREATE OR REPLACE TEMP MACRO make_array(x) AS [x]",
    ),
    (
        "hhq_age",
        "age in whole years on a date",
        "CREATE OR REPLACE TEMP MACRO hhq_age(b, d) AS \
CAST(date_part('year', d) - date_part('year', b) AS BIGINT) \
- CASE WHEN date_part('month', d) * 100 + date_part('day', d) \
< date_part('month', b) * 100 + date_part('day', b) THEN 1 ELSE 0 END",
    ),
    (
        "hhq_month",
        "a date's month as `2025-03`",
        "CREATE OR REPLACE TEMP MACRO hhq_month(d) AS strftime(d, '%Y-%m')",
    ),
    (
        "hhq_quarter",
        "a date's quarter as `2025Q1`",
        "CREATE OR REPLACE TEMP MACRO hhq_quarter(d) AS \
strftime(d, '%Y') || 'Q' || CAST(quarter(d) AS VARCHAR)",
    ),
    (
        "hhq_first_id",
        "an aggregate: the id of the earliest date, the least id of that day",
        "CREATE OR REPLACE TEMP MACRO hhq_first_id(d, id) AS \
min(CASE WHEN d IS NOT NULL AND id IS NOT NULL THEN {'d': d, 'id': id} END)['id']",
    ),
    (
        "hhq_latest_span",
        "an aggregate: of a member's enrolment spans, the one ending last, then starting last, \
then by partner, MCO and population (nulls last)",
        "CREATE OR REPLACE TEMP MACRO hhq_latest_span(s, e, h, m, p) AS \
arg_min({'hhp_id': h, 'mco_id': m, 'population': p}, \
CASE WHEN s IS NOT NULL AND e IS NOT NULL THEN {'e': DATE '9999-12-31' - e, \
's': DATE '9999-12-31' - s, 'h': coalesce(h, chr(1114111)), 'm': coalesce(m, chr(1114111)), \
'p': coalesce(p, chr(1114111))} END)",
    ),
    (
        "hhq_episode_starts",
        "for a list of dates, the date of the counted episode each belongs to: in date order a \
date less than `days` after the last counted one belongs to it, the next one starts another",
        "CREATE OR REPLACE TEMP MACRO hhq_episode_starts(dates, days) AS (\n  \
SELECT CASE WHEN dates IS NULL THEN NULL WHEN len(dates) = 0 THEN dates\n    \
ELSE list_transform(dates, lambda x: starts[list_position(sorted, x)]) END\n  \
FROM (\n    SELECT sorted, list_reduce(list_transform(sorted, lambda y: [y]),\n      \
lambda acc, y: CASE WHEN y[1] - acc[-1] >= days THEN list_concat(acc, y)\n        \
ELSE list_concat(acc, [acc[-1]]) END) AS starts\n    \
FROM (SELECT list_sort(list_distinct(dates)) AS sorted)\n  )\n)",
    ),
    (
        "hhq_loop_standing",
        "an aggregate over replacement links (claim, named claim): of each loop of \
replacements that no claim outside it names, the greatest claim id",
        "CREATE OR REPLACE TEMP MACRO hhq_loop_standing_of(links) AS (\n  \
WITH RECURSIVE e AS (\n    \
SELECT DISTINCT l.c, l.n FROM (SELECT unnest(links) AS l)\n    \
WHERE l.c IS NOT NULL AND l.n IS NOT NULL AND l.c <> l.n\n  ),\n  \
reach(s, t) AS (\n    SELECT c, n FROM e\n    UNION\n    \
SELECT r.s, e.n FROM reach r JOIN e ON e.c = r.t\n  ),\n  \
loops AS (\n    SELECT a.s AS node, max(a.t) AS top\n    \
FROM reach a JOIN reach b ON a.t = b.s AND b.t = a.s\n    GROUP BY a.s\n  )\n  \
SELECT coalesce(list_sort(list(top)), []) FROM (\n    \
SELECT top FROM loops l GROUP BY top\n    HAVING NOT EXISTS (\n      \
SELECT 1 FROM e JOIN loops i ON i.node = e.n AND i.top = l.top\n      \
WHERE e.c NOT IN (SELECT node FROM loops WHERE loops.top = l.top))\n  )\n);\n\
CREATE OR REPLACE TEMP MACRO hhq_loop_standing(a, b) AS \
hhq_loop_standing_of(list({'c': CAST(a AS VARCHAR), 'n': CAST(b AS VARCHAR)}))",
    ),
];

/// A textual rewrite of hhq's SQL for DuckDB.
struct Rewrite {
    why: &'static str,
    pattern: &'static LazyLock<Regex>,
    replace: &'static str,
}

static DATE_PLUS_MONTHS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([\w.]+) \+ INTERVAL '(\d+) months?'").expect("regex"));
static INTERVAL_DAYS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"INTERVAL '(\d+) days?'").expect("regex"));
static FIRST_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bfirst_value\(").expect("regex"));
static LAST_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\blast_value\(").expect("regex"));
static RIGHT_ANTI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"FROM (\w+) (\w+)\s+RIGHT ANTI JOIN (\w+) (\w+) ON").expect("regex")
});
static LOOKUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"{LOOKUP_FUNCTION}\(([\w.]+)((?:,\s*'(?:[^']|'')*')+)\)"
    ))
    .expect("regex")
});
static SET_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"'((?:[^']|'')*)'").expect("regex"));

/// The rewrites, applied to every statement in this order.
const REWRITES: &[Rewrite] = &[
    Rewrite {
        why: "DATE + INTERVAL 'n months' is a DATE in DataFusion, a TIMESTAMP in DuckDB",
        pattern: &DATE_PLUS_MONTHS,
        replace: "CAST($1 + INTERVAL '$2 months' AS DATE)",
    },
    Rewrite {
        why: "DATE ± INTERVAL 'n days' is a DATE in DataFusion, a TIMESTAMP in DuckDB, whose \
DATE ± n is the DATE",
        pattern: &INTERVAL_DAYS,
        replace: "$1",
    },
    Rewrite {
        why: "DataFusion's ordered aggregate first_value(x ORDER BY y) is DuckDB's first",
        pattern: &FIRST_VALUE,
        replace: "first(",
    },
    Rewrite {
        why: "DataFusion's ordered aggregate last_value(x ORDER BY y) is DuckDB's last",
        pattern: &LAST_VALUE,
        replace: "last(",
    },
    Rewrite {
        why: "DuckDB has anti joins from the left only: a RIGHT ANTI JOIN b is b ANTI JOIN a",
        pattern: &RIGHT_ANTI,
        replace: "FROM $3 $4 ANTI JOIN $1 $2 ON",
    },
];

/// What a script needs beyond the compiled measure.
pub struct Sources<'a> {
    /// The building blocks, in the order they are defined (each after those it reads).
    pub blocks: &'a [Block],
    pub value_sets: &'a ValueSets,
    /// The data directory whose Parquet files the script reads.
    pub data: &'a Path,
    /// hhq's version, named in the script's header.
    pub version: &'a str,
    /// The blocks' columns and types (a value-set lookup over a list column is written apart).
    pub catalog: &'a crate::compile::Catalog,
    /// Components left out of the summary, and why (`coverage::components`: as `hhq run`).
    pub withheld: &'a [(String, String)],
}

/// The script: settings, macros, the extracts, the blocks, the detail as a table, then the
/// summary rows (or, with `detail`, the member-level detail rows).
pub fn script(compiled: &CompiledMeasure, sources: &Sources, detail: bool) -> Result<String> {
    let mut body = String::new();
    let mut out = String::new();
    writeln!(
        out,
        "-- {id}, period {start}..{end}, as hhq {version} computes it: a script for DuckDB \
(tested with {DUCKDB_TESTED}).\n\
-- Written by `hhq compile {id} --sql --extracts`. Run it with `duckdb < FILE`, or in Python\n\
-- `duckdb.connect().execute(open(FILE).read()).fetchall()`: the last statement returns {last}.\n\
-- It reads the extracts of {data}: to read others, change the four read_parquet lists below.",
        id = compiled.id,
        start = compiled.period.start,
        end = compiled.period.end,
        version = sources.version,
        data = sources.data.display(),
        last = if detail {
            "the member-level detail, one row per candidate unit"
        } else {
            "the rows of `hhq run`'s summary.csv for the measure"
        },
    )
    .expect("write to String");
    for (component, why) in sources.withheld {
        writeln!(out, "-- Not reported, as in hhq run: {component}: {why}.")
            .expect("write to String");
    }

    // The extracts: every row typed to the contract (`<extract>__all`), then the usable rows.
    body.push_str("\n-- The extracts: every row, typed to the contract\n");
    for e in EXTRACTS {
        let (_, files) = crate::extract::locate(sources.data, e)?;
        let files: Vec<String> = files
            .iter()
            .map(|f| {
                let f = std::path::absolute(f).map_err(|err| Error::io(f, err))?;
                let f = f
                    .to_str()
                    .ok_or_else(|| Error::contract(&f, "the path is not valid UTF-8; rename it"))?;
                Ok(literal(f))
            })
            .collect::<Result<_>>()?;
        let casts: Vec<String> = e
            .columns
            .iter()
            .map(|c| {
                let ty = match c.ty {
                    ColumnType::String => "VARCHAR",
                    ColumnType::StringList => "VARCHAR[]",
                    ColumnType::Date => "DATE",
                    ColumnType::Int32 => "INTEGER",
                    ColumnType::Double => "DOUBLE",
                    ColumnType::Boolean => "BOOLEAN",
                };
                format!("CAST(\"{0}\" AS {ty}) AS \"{0}\"", c.name)
            })
            .collect();
        writeln!(
            body,
            "CREATE OR REPLACE TEMP VIEW {}__all AS\nSELECT * REPLACE ({})\nFROM read_parquet([{}]);",
            e.name,
            casts.join(", "),
            files.join(", ")
        )
        .expect("write to String");
    }
    body.push_str("\n-- The usable rows of each extract: those no row rule sets aside\n");
    for e in EXTRACTS {
        writeln!(
            body,
            "CREATE OR REPLACE TEMP VIEW {0} AS\nSELECT * FROM {0}__all WHERE {1};",
            e.name,
            crate::extract::rules::usable_sql(e)
        )
        .expect("write to String");
    }
    body.push_str(
        "\n-- Risk weights: none supplied (components that need them are not reported)\n\
CREATE OR REPLACE TEMP TABLE risk_weights (variable VARCHAR, value VARCHAR, weight DOUBLE);\n",
    );
    body.push_str("\n-- The building blocks\n");
    for b in sources.blocks {
        writeln!(
            body,
            "-- {} ({})\nCREATE OR REPLACE TEMP VIEW {} AS\n{};\n",
            b.name,
            b.path.file_name().unwrap_or_default().to_string_lossy(),
            b.name,
            b.sql.trim_end()
        )
        .expect("write to String");
    }
    if detail {
        writeln!(
            body,
            "-- The member-level detail\n{};",
            compiled.detail_sql()
        )
        .expect("write to String");
    } else {
        writeln!(
            body,
            "-- The member-level detail, kept for the summary\n\
CREATE OR REPLACE TEMP TABLE hhq_detail AS\n{};\n\n\
-- The summary: one row per component and stratum, as hhq run's summary.csv\n{};",
            compiled.detail_sql(),
            summary_rows(compiled, sources.withheld)
        )
        .expect("write to String");
    }

    // DuckDB's spelling, and the functions the script calls.
    let (body, used) = spelled(&body, sources)?;
    out.push_str("--\n-- Where DuckDB differs from DataFusion, hhq's engine:\n");
    for (_, why) in SETTINGS {
        writeln!(out, "-- - {why}").expect("write to String");
    }
    for why in &used {
        writeln!(out, "-- - {why}").expect("write to String");
    }
    out.push('\n');
    for (statement, _) in SETTINGS {
        writeln!(out, "{statement};").expect("write to String");
    }
    let called: Vec<_> = MACROS
        .iter()
        .filter(|(name, _, _)| {
            Regex::new(&format!(r"\b{name}\("))
                .expect("regex")
                .is_match(&body)
        })
        .collect();
    if !called.is_empty() {
        out.push_str("\n-- hhq's functions as DuckDB macros\n");
        for (name, why, definition) in called {
            writeln!(out, "-- {name}: {why}\n{definition};").expect("write to String");
        }
    }
    out.push_str(&body);
    Ok(out)
}

/// `body` in DuckDB's spelling ([`REWRITES`], then the value-set lookups), and why each change
/// that applied was needed.
fn spelled(body: &str, sources: &Sources) -> Result<(String, Vec<&'static str>)> {
    let mut body = body.to_string();
    let mut used = Vec::new();
    for r in REWRITES {
        if r.pattern.is_match(&body) {
            used.push(r.why);
            body = r.pattern.replace_all(&body, r.replace).into_owned();
        }
    }
    if LOOKUP.is_match(&body) {
        let mut failed = None;
        body = LOOKUP
            .replace_all(&body, |c: &Captures| {
                lookup(c, sources).unwrap_or_else(|e| {
                    failed.get_or_insert(e);
                    String::new()
                })
            })
            .into_owned();
        if let Some(e) = failed {
            return Err(e);
        }
        used.push("hhq's value-set lookup is written as IN lists of the sets' codes and prefixes");
    }
    Ok((body, used))
}

/// A lookup call as a test of the sets' codes: `IN` lists for a scalar column, and for a list
/// column (a claim line's `other_dx`) whether any element passes.
fn lookup(c: &Captures, sources: &Sources) -> Result<String> {
    let sets = sources.value_sets;
    let column = &c[1];
    let mut codes = Vec::new();
    let mut prefixes = Vec::new();
    for name in SET_NAME.captures_iter(&c[2]) {
        let name = name[1].replace("''", "'");
        let set = sets.get(&name).ok_or_else(|| {
            Error::Usage(format!(
                "the SQL names the value set `{name}`, which is not loaded"
            ))
        })?;
        codes.extend(set.codes.iter().cloned());
        prefixes.extend(set.prefixes.iter().cloned());
    }
    codes.sort();
    codes.dedup();
    prefixes.sort();
    prefixes.dedup();
    let bare = column.rsplit('.').next().unwrap_or(column);
    let is_list = EXTRACTS.iter().any(|e| {
        e.column(bare)
            .is_some_and(|col| col.ty == ColumnType::StringList)
    }) || sources.catalog.blocks.values().flatten().any(|(name, ty)| {
        name == bare
            && matches!(
                ty,
                DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_)
            )
    });
    let value = if is_list { "hhq_code" } else { column };
    let list = |v: &[&String]| v.iter().map(|s| literal(s)).collect::<Vec<_>>().join(", ");
    let mut tests = Vec::new();
    if !codes.is_empty() {
        tests.push(format!(
            "{value} IN ({})",
            list(&codes.iter().collect::<Vec<_>>())
        ));
    }
    let mut lengths: Vec<usize> = prefixes.iter().map(|p| p.chars().count()).collect();
    lengths.sort();
    lengths.dedup();
    for n in lengths {
        let of: Vec<&String> = prefixes.iter().filter(|p| p.chars().count() == n).collect();
        tests.push(format!("left({value}, {n}) IN ({})", list(&of)));
    }
    let test = if tests.is_empty() {
        "false".to_string()
    } else {
        tests.join(" OR ")
    };
    Ok(if is_list {
        format!("(len(list_filter({column}, lambda hhq_code: {test})) > 0)")
    } else {
        format!("({test})")
    })
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The summary rows over `hhq_detail`, as `results::from_batches` builds them: every stratum of
/// the summary and population queries, every declared age band and the total, one row per
/// component, sorted as `results::sort` sorts.
fn summary_rows(c: &CompiledMeasure, withheld: &[(String, String)]) -> String {
    let population = c.population_sql("hhq_detail");
    let mut fixed: Vec<(String, String)> = c
        .age_bands
        .iter()
        .filter(|_| c.stratify.contains(&crate::measure::Stratifier::AgeBand))
        .map(|b| ("age_band".to_string(), b.clone()))
        .collect();
    fixed.push(("total".into(), "total".into()));
    let fixed: Vec<String> = fixed
        .iter()
        .map(|(a, b)| format!("({}, {})", literal(a), literal(b)))
        .collect();
    let mut ctes = format!(
        "WITH summary AS (\n{}\n)",
        indent(&c.summary_sql("hhq_detail"))
    );
    let mut strata = String::from("  SELECT stratifier, stratum FROM summary\n");
    if let Some(p) = &population {
        write!(ctes, ",\npopulation AS (\n{}\n)", indent(p)).expect("write to String");
        strata.push_str("  UNION SELECT stratifier, stratum FROM population\n");
    }
    write!(
        strata,
        "  UNION SELECT * FROM (VALUES {}) AS fixed(stratifier, stratum)",
        fixed.join(", ")
    )
    .expect("write to String");
    write!(ctes, ",\nstrata AS (\n{strata}\n)").expect("write to String");

    let number =
        |table: &str, col: &str| format!("coalesce(CAST({table}.{col} AS DOUBLE), 0) AS {col}");
    let mut columns = vec![number("m", "denominator")];
    for i in 0..c.numerators {
        columns.push(number("m", &format!("num_{i}")));
        if c.numerator_subset[i] {
            columns.push(number("m", &format!("den_{i}")));
        }
        if c.numerator_is_first[i] {
            columns.push(format!("CAST(m.median_{i} AS DOUBLE) AS median_{i}"));
        }
    }
    let mut joins = String::from(
        "  LEFT JOIN summary m ON m.stratifier = s.stratifier AND m.stratum = s.stratum",
    );
    if population.is_some() {
        columns.push(number("p", "enrollees"));
        columns.push(number("p", "outliers"));
        joins.push_str(
            "\n  LEFT JOIN population p ON p.stratifier = s.stratifier AND p.stratum = s.stratum",
        );
    }
    write!(
        ctes,
        ",\ncells AS (\n  SELECT s.stratifier, s.stratum, {}\n  FROM strata s\n{joins}\n)",
        columns.join(", ")
    )
    .expect("write to String");

    let mut results = Vec::new();
    for (k, (name, unit, output)) in c.components.iter().enumerate() {
        if withheld.iter().any(|(w, _)| w == name) {
            continue;
        }
        let (numerator, denominator, rate) = match *output {
            Output::Rate {
                numerator,
                denominator,
            } => {
                let (n, d) = (numerator.column(), denominator.column());
                let rate = rate(*unit, &n, &d);
                (n, d, rate)
            }
            Output::Median(i) => (
                Source::Numerator(i).column(),
                Source::Denominator.column(),
                format!("median_{i}"),
            ),
        };
        results.push(format!(
            "  SELECT {k} AS k, {} AS component, {numerator} AS numerator, {denominator} AS denominator, \
{rate} AS rate, {} AS unit, stratifier, stratum FROM cells",
            literal(name),
            literal(unit.name())
        ));
    }
    if results.is_empty() {
        // Every component withheld: no row, as hhq run gives none.
        results.push(
            "  SELECT 0 AS k, CAST(NULL AS VARCHAR) AS component, 0.0 AS numerator, \
0.0 AS denominator, CAST(NULL AS DOUBLE) AS rate, CAST(NULL AS VARCHAR) AS unit, stratifier, \
stratum FROM cells WHERE false"
                .to_string(),
        );
    }
    write!(
        ctes,
        ",\nresults AS (\n{}\n)",
        results.join("\n  UNION ALL\n")
    )
    .expect("write to String");

    let bands: String = c
        .age_bands
        .iter()
        .enumerate()
        .map(|(i, b)| format!(" WHEN {} THEN {i}", literal(b)))
        .collect();
    format!(
        "{ctes}\nSELECT {id} AS measure, component, DATE '{start}' AS period_start, \
DATE '{end}' AS period_end,\n  stratifier, stratum, numerator, denominator, rate, unit\n\
FROM results\nORDER BY k, CASE stratifier WHEN 'total' THEN 0 WHEN 'age_band' THEN 1 \
WHEN 'mco' THEN 2 WHEN 'hhp' THEN 3 WHEN 'population' THEN 4 ELSE 5 END, stratifier,\n  \
CASE WHEN stratifier = 'age_band' THEN CASE stratum{bands} ELSE {last} END ELSE 0 END, stratum",
        id = literal(&c.id),
        start = c.period.start,
        end = c.period.end,
        last = c.age_bands.len(),
    )
}

/// A component's rate, as `results::row` computes it: a count is its numerator; otherwise the
/// numerator over the denominator, scaled, and null over zero.
fn rate(unit: Unit, n: &str, d: &str) -> String {
    if unit == Unit::Count {
        return n.to_string();
    }
    format!("CASE WHEN {d} > 0 THEN {n} / {d} * {:?} END", unit.scale())
}

fn indent(sql: &str) -> String {
    sql.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(sets: &'a ValueSets, catalog: &'a crate::compile::Catalog) -> Sources<'a> {
        Sources {
            blocks: &[],
            value_sets: sets,
            data: Path::new("."),
            version: "test",
            catalog,
            withheld: &[],
        }
    }

    #[test]
    fn datafusions_spellings_become_duckdbs() {
        let (sets, catalog) = (ValueSets::default(), crate::compile::Catalog::default());
        let (sql, used) = spelled(
            "SELECT c.anchor_date + INTERVAL '30 days' AS hi, s - INTERVAL '1 day', \
             d + INTERVAL '12 months', first_value(x ORDER BY y), last_value(x ORDER BY y)\n\
             FROM standing s\n  RIGHT ANTI JOIN claim_links l ON s.claim_id = l.named_id",
            &sources(&sets, &catalog),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT c.anchor_date + 30 AS hi, s - 1, \
             CAST(d + INTERVAL '12 months' AS DATE), first(x ORDER BY y), last(x ORDER BY y)\n\
             FROM claim_links l ANTI JOIN standing s ON s.claim_id = l.named_id"
        );
        assert_eq!(used.len(), 5);
        let (same, used) = spelled("SELECT 1", &sources(&sets, &catalog)).unwrap();
        assert_eq!((same.as_str(), used.len()), ("SELECT 1", 0));
    }

    #[test]
    fn a_lookup_is_in_lists_over_a_value_or_any_element_of_a_list() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            Path::new("sets.csv"),
            "value_set,code_system,code\nsud,ICD10CM,F10*\nsud,ICD10CM,F1120\nmh,ICD10CM,F2*\n\
             mh,ICD10CM,O11\n",
        )
        .unwrap();
        let catalog = crate::compile::Catalog::default();
        let (sql, _) = spelled(
            "hhq_value_set_contains(b.principal_dx, 'sud') AND \
             hhq_value_set_contains(other_dx, 'sud', 'mh')",
            &sources(&sets, &catalog),
        )
        .unwrap();
        assert_eq!(
            sql,
            "(b.principal_dx IN ('F1120') OR left(b.principal_dx, 3) IN ('F10')) AND \
             (len(list_filter(other_dx, lambda hhq_code: hhq_code IN ('F1120', 'O11') OR \
             left(hhq_code, 2) IN ('F2') OR left(hhq_code, 3) IN ('F10'))) > 0)"
        );
        let e = spelled(
            "hhq_value_set_contains(x, 'nope')",
            &sources(&sets, &catalog),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`nope`"), "{e}");
    }
}
