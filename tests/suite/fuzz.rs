//! Fuzz harnesses (issue 33), as property tests: `cargo fuzz` needs a nightly toolchain, so these
//! run with the other tests, with bounded case counts (each harness well under a minute in a dev
//! build; `PROPTEST_CASES=N` runs more). Each asserts that hhq answers with a result or an error,
//! never a panic: over the definition loaders (damaged shipped measure and cohort files), the
//! filter checker (arbitrary and deep expressions, planned when accepted), the extracts (extreme
//! values, then a run over them) and ad hoc SQL (random queries over those extracts). A failure
//! found is fixed and kept: its seed in `tests/fuzz.proptest-regressions`, and a named test here
//! or in tests/suite/crash.rs. A stack overflow aborts the whole test binary: that is a failure too.

use crate::common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use hhq::compile::compile;
use hhq::definitions::Definitions;
use hhq::engine::Engine;
use hhq::measure::Measure;
use hhq::period::Period;
use proptest::prelude::*;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn offline() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let defs = Definitions::load(
            &common::root().join("measures"),
            &common::root().join("queries"),
        )
        .unwrap();
        runtime().block_on(Engine::offline(&defs)).unwrap()
    })
}

/// `f`'s result, or the test's failure if it panicked.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let message = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {message}"))
    })
}

// ---- Definition loaders -------------------------------------------------------------------------

/// Pieces spliced into definition files: YAML syntax, SQL, deep chains.
const SPLICE: &[&str] = &[
    "\n",
    "  ",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "'",
    "\"",
    "|\n",
    "#",
    "where: ",
    " OR ",
    " AND ",
    "(",
    ")",
    "1 + ",
    "NOT ",
    "::INT",
    " IS NULL",
    "in_value_set(dx, 'x')",
    "SELECT 1",
    "9999999999",
    "-1",
    "0",
    "2147483647",
    "~",
    "\u{0}",
    "é",
];

fn definition_files() -> &'static Vec<(String, String)> {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut files = Vec::new();
        for dir in ["measures", "measures/cohorts"] {
            for e in std::fs::read_dir(common::root().join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    files.push((
                        format!("{dir}/{}", p.file_name().unwrap().to_str().unwrap()),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
        files.sort();
        files
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A shipped measure or cohort file with pieces spliced in (a piece repeated up to 3,000
    /// times makes deep chains): loaded and compiled, or refused naming the file; never a panic.
    #[test]
    fn damaged_definition_files_load_or_are_refused(
        file in any::<prop::sample::Index>(),
        splices in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0..SPLICE.len(), prop_oneof![3 => 1usize..4, 1 => 100usize..3_000]),
            1..5,
        ),
    ) {
        let (name, text) = file.get(definition_files());
        let mut text = text.clone();
        for (at, piece, times) in splices {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.insert_str(cut, &SPLICE[piece].repeat(times));
        }
        let path = Path::new(name.as_str());
        let e = offline();
        let outcome = no_panic("loading and compiling", || {
            if name.starts_with("measures/cohorts/") {
                hhq::cohort::model::Definition::parse(path, &text).and_then(|d| {
                    let as_of = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
                    hhq::cohort::query::compile(&[d], e.catalog(), as_of).map(|_| ())
                })
            } else {
                Measure::parse(path, &text)
                    .and_then(|m| compile(&m, e.catalog(), &Period::year(2025)).map(|_| ()))
            }
        })?;
        if let Err(err) = outcome {
            let err = err.to_string();
            prop_assert!(err.starts_with(&format!("{name}:")), "{err}");
        }
    }
}

// ---- The filter checker -----------------------------------------------------------------------

/// Columns of `ed_visits`, with a literal of their type.
const COLUMNS: &[(&str, &str)] = &[
    ("visit_date", "DATE '2025-03-01'"),
    ("claims", "2"),
    ("mental_health", "true"),
    ("led_to_admission", "false"),
    ("claim_id", "'C1'"),
    ("member_id", "'M1'"),
];

/// An expression over `ed_visits`'s columns: comparisons combined, functions, casts, and now and
/// then a long flat chain (of up to 400 terms, past the depth limit).
fn filter() -> impl Strategy<Value = String> {
    let leaf = (0..COLUMNS.len(), 0..6usize).prop_map(|(c, op)| {
        let (col, lit) = COLUMNS[c];
        match op {
            0 => format!("{col} = {lit}"),
            1 => format!("{col} IS NULL"),
            2 => format!("{col} <> {lit}"),
            3 => format!("coalesce({col}, {lit}) = {lit}"),
            4 => format!("CAST({col} AS VARCHAR) LIKE '%1%'"),
            _ => format!("{col} IN ({lit}, {lit})"),
        }
    });
    let tree = leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.clone().prop_map(|a| format!("NOT ({a})")),
            inner.prop_map(|a| format!("CASE WHEN {a} THEN true ELSE false END")),
        ]
    });
    let chain = (0..4usize, 1usize..400).prop_map(|(op, n)| match op {
        0 => vec!["NOT led_to_admission"; n].join(" OR "),
        1 => format!("{} > 0", vec!["claims"; n].join(" + ")),
        2 => format!("claim_id{} IS NULL", " || 'x'".repeat(n)),
        _ => format!("claims{}", " IS NOT NULL".repeat(n)),
    });
    prop_oneof![3 => tree, 1 => chain]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary and deep `where:` filters: refused (too deep: with the filter's line and
    /// column), or compiled into SQL that plans, on the test thread's 2 MiB stack.
    #[test]
    fn arbitrary_and_deep_filters_are_refused_or_plan(f in filter()) {
        let yaml = common::GOOD_MEASURE.replace("NOT led_to_admission", &format!("{f:?}"));
        let m = Measure::parse(Path::new("m.yaml"), &yaml).unwrap();
        let e = offline();
        let compiled = no_panic("compiling", || compile(&m, e.catalog(), &Period::year(2025)))?;
        match compiled {
            Ok(c) => {
                let planned = no_panic("planning", || {
                    runtime().block_on(async { e.context().sql(&c.detail_sql()).await.map(|_| ()) })
                })?;
                prop_assert!(planned.is_ok(), "{planned:?}\n{f}");
            }
            Err(err) => {
                let err = err.to_string();
                prop_assert!(err.starts_with("m.yaml:15:14: "), "{err}");
                prop_assert!(err.contains("nests deeper than 100 levels"), "{err}");
            }
        }
    }
}

// ---- Extracts with extreme values -------------------------------------------------------------

/// Dates (day numbers) at and past the ends of anything meant: int32's ends, day 100,000,000
/// (past chrono's range), just outside and inside the believable range, the epoch.
const DAYS: &[i32] = &[
    i32::MIN,
    i32::MAX,
    100_000_000,
    -100_000_000,
    -25_568,
    -25_567,
    84_370,
    84_371,
    0,
    20_000,
];

/// One extreme value for one column of one extract.
#[derive(Debug, Clone)]
struct Extreme {
    extract: usize,
    /// Among the extract's date columns only (most arithmetic is on dates), or among all.
    date: bool,
    column: prop::sample::Index,
    value: prop::sample::Index,
}

const EXTRACTS: &[&str] = &["claims", "contacts", "members", "enrollment"];

/// The extreme values a column of `data_type` can take.
fn extremes(data_type: &DataType) -> Option<Vec<ArrayRef>> {
    let huge = "x".repeat(1 << 20);
    Some(match data_type {
        DataType::Date32 => DAYS
            .iter()
            .map(|d| Arc::new(Date32Array::from(vec![*d])) as ArrayRef)
            .collect(),
        DataType::Float64 => [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MAX,
            f64::MIN,
        ]
        .iter()
        .map(|v| Arc::new(Float64Array::from(vec![*v])) as ArrayRef)
        .collect(),
        DataType::Int32 => [i32::MIN, i32::MAX, -1, 0]
            .iter()
            .map(|v| Arc::new(Int32Array::from(vec![*v])) as ArrayRef)
            .collect(),
        DataType::Boolean => vec![Arc::new(BooleanArray::from(vec![None::<bool>])) as ArrayRef],
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..) => [
            "",
            huge.as_str(),
            "\u{0}",
            "'; DROP VIEW claims; --",
            "M1",
            "ë\u{202e}",
        ]
        .iter()
        .map(|s| cast(&StringArray::from(vec![*s]), data_type).unwrap())
        .collect(),
        _ => return None,
    })
}

/// A copy of the minimal data with, per extract, its first row appended again with the extreme
/// values given (a changed id where the extract has one, so no duplicate is made).
fn data_with(extremes_: &[Extreme]) -> tempfile::TempDir {
    data_with_values(|e, fields| {
        let mut values = vec![None; fields.len()];
        let dates: Vec<usize> = (0..fields.len())
            .filter(|&i| fields[i].data_type() == &DataType::Date32)
            .collect();
        for x in extremes_.iter().filter(|x| x.extract == e) {
            let i = match x.date {
                true if !dates.is_empty() => *x.column.get(&dates),
                _ => x.column.index(fields.len()),
            };
            values[i] = extremes(fields[i].data_type()).map(|v| x.value.get(&v).clone());
        }
        values
    })
}

/// A copy of the minimal data with, per extract, its first row appended again with the values
/// `pick` gives for extract `e` (an index of [`EXTRACTS`]) and its fields (`None`: as in the
/// first row). Nothing is appended where `pick` changes no value.
fn data_with_values(pick: impl Fn(usize, &[Field]) -> Vec<Option<ArrayRef>>) -> tempfile::TempDir {
    let dir = common::minimal();
    for (e, name) in EXTRACTS.iter().enumerate() {
        let path = dir.path().join(format!("{name}.parquet"));
        let all = common::read_parquet(&path);
        let fields: Vec<Field> = all
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let values = pick(e, &fields);
        if values.iter().all(Option::is_none) {
            continue;
        }
        let schema = Arc::new(Schema::new(fields));
        let mut row: Vec<ArrayRef> = all.slice(0, 1).columns().to_vec();
        for (i, f) in schema.fields().iter().enumerate() {
            if matches!(f.name().as_str(), "claim_id" | "contact_id") {
                row[i] = cast(&StringArray::from(vec!["X1"]), f.data_type()).unwrap();
            }
        }
        for (i, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                row[i] = v;
            }
        }
        let row = RecordBatch::try_new(schema.clone(), row).unwrap();
        let all = RecordBatch::try_new(schema.clone(), all.columns().to_vec()).unwrap();
        let joined = concat_batches(&schema, &[all, row]).unwrap();
        hhq::extract::csv::write_parquet(&path, &joined).unwrap();
    }
    dir
}

fn extreme() -> impl Strategy<Value = Extreme> {
    (
        0..EXTRACTS.len(),
        any::<bool>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(extract, date, column, value)| Extreme {
            extract,
            date,
            column,
            value,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Extreme values in the extracts (dates past the calendar, NaN, huge strings): the
    /// extracts open or are refused naming a file, and a run over them (measures of claims,
    /// contacts and enrolment, the period chosen from the data or given) ends in results or an
    /// error; never a panic.
    #[test]
    fn a_run_over_extreme_values_ends_in_results_or_an_error(
        values in proptest::collection::vec(extreme(), 1..8),
        choose_period in any::<bool>(),
    ) {
        let data = data_with(&values);
        let out = tempfile::tempdir().unwrap();
        let mut opts = common::run_options(data.path(), out.path());
        opts.only = vec!["FUH-HH".into(), "HH-ENGAGE".into()];
        if choose_period {
            opts.period = None;
        }
        // Publish under a caveat: with a couple of rows, any row set aside fails a check, and a
        // refusing policy would stop every run before the measures.
        let policy = data.path().join("policy.yaml");
        std::fs::write(&policy, "on_failure: caveat\nchecks: {}\n").unwrap();
        opts.quality.policy = Some(policy);
        let outcome = no_panic("the run", || runtime().block_on(hhq::pipeline::run(&opts)))?;
        if let Err(e) = outcome {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

// ---- Ad hoc SQL -------------------------------------------------------------------------------

/// The minimal extracts, each with a row whose every date is int32's maximum, and an engine
/// over them: the row rules set those rows aside, but `<extract>__all` reads them.
fn extreme_engine() -> &'static (tempfile::TempDir, Engine) {
    static ENGINE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = data_with_values(|_, fields| {
            fields
                .iter()
                .map(|f| {
                    (f.data_type() == &DataType::Date32)
                        .then(|| Arc::new(Date32Array::from(vec![i32::MAX])) as ArrayRef)
                })
                .collect()
        });
        let defs = Definitions::load(
            &common::root().join("measures"),
            &common::root().join("queries"),
        )
        .unwrap();
        let engine = runtime().block_on(Engine::open(dir.path(), &defs)).unwrap();
        (dir, engine)
    })
}

/// Tables a query may read: (name, date columns, other columns).
type Table = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const TABLES: &[Table] = &[
    (
        "claims__all",
        &["service_from", "service_to", "admission_date"],
        &["member_id", "paid_amount", "line_number"],
    ),
    (
        "contacts__all",
        &["contact_date"],
        &["member_id", "reached", "mode"],
    ),
    (
        "members__all",
        &["birth_date", "death_date"],
        &["member_id", "sex"],
    ),
    (
        "enrollment__all",
        &["start_date", "end_date"],
        &["member_id", "span_type"],
    ),
    (
        "claims",
        &["service_from", "service_to"],
        &["member_id", "principal_dx"],
    ),
    (
        "ed_visits",
        &["visit_date"],
        &["member_id", "claims", "led_to_admission"],
    ),
];

/// An expression over a table's columns: date arithmetic and hhq's and DataFusion's functions
/// of dates, comparisons, casts, and long chains.
fn expression(t: Table) -> impl Strategy<Value = String> {
    let (_, dates, others) = t;
    (
        0..dates.len(),
        0..dates.len(),
        0..others.len(),
        0..18usize,
        1usize..300,
    )
        .prop_map(move |(a, b, o, f, n)| {
            let (a, b, o) = (dates[a], dates[b], others[o]);
            match f {
                0 => format!("{a} + INTERVAL '1 day'"),
                1 => format!("{a} - INTERVAL '1 month'"),
                2 => format!("date_trunc('month', {a})"),
                3 => format!("hhq_month({a})"),
                4 => format!("hhq_age({a}, {b})"),
                5 => format!("CAST({a} AS VARCHAR)"),
                6 => format!("{a} = {b}"),
                7 => format!("date_part('year', {a})"),
                8 => format!("to_char({a}, '%Y-%m-%d')"),
                9 => format!("{a} - {b}"),
                10 => format!("CAST({a} AS BIGINT) + 1"),
                11 => format!("hhq_quarter({a})"),
                12 => vec![format!("{o} IS NULL"); n].join(" OR "),
                13 => format!("coalesce({a}, {b})"),
                14 => format!("{a} + 1"),
                15 => format!("CAST({a} AS TIMESTAMP)"),
                16 => format!("CAST({o} AS VARCHAR)"),
                _ => format!("max({a})"),
            }
        })
}

fn query() -> impl Strategy<Value = String> {
    (0..TABLES.len()).prop_flat_map(|t| {
        let table = TABLES[t];
        (
            proptest::collection::vec(expression(table), 1..4),
            proptest::option::of(expression(table)),
            0..4usize,
        )
            .prop_map(move |(select, filter, tail)| {
                let items: Vec<String> = select
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("{e} AS c{i}"))
                    .collect();
                let mut q = format!("SELECT {} FROM {}", items.join(", "), table.0);
                if let Some(f) = filter {
                    q.push_str(&format!(" WHERE ({f}) IS NOT NULL"));
                }
                match tail {
                    0 => q.push_str(" LIMIT 5"),
                    1 => q.push_str(" ORDER BY 1"),
                    2 => q = format!("{q} UNION ALL {q}"),
                    _ => {}
                }
                q
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random queries over extracts whose every date is int32's maximum: rows (written as a
    /// table, CSV and JSON) or an error; never a panic.
    #[test]
    fn random_ad_hoc_sql_over_extreme_dates_never_panics(q in query()) {
        let (_, engine) = extreme_engine();
        let query = hhq::adhoc::Query::inline(q.clone());
        let rows = no_panic("the query", || runtime().block_on(hhq::adhoc::execute(engine, &query, std::time::Duration::from_secs(600))))?;
        if let Ok(rows) = rows {
            for format in [hhq::adhoc::Format::Table, hhq::adhoc::Format::Csv, hhq::adhoc::Format::Json] {
                let _ = no_panic("writing the rows", || hhq::adhoc::render(&rows, format, 20))?;
            }
        }
    }
}

#[test]
fn the_extreme_engine_holds_dates_past_the_calendar() {
    let (_, engine) = extreme_engine();
    let rows = runtime()
        .block_on(hhq::adhoc::execute(
            engine,
            &hhq::adhoc::Query::inline(
                "SELECT CAST(max(service_from) AS BIGINT) AS d FROM claims__all",
            ),
            std::time::Duration::from_secs(600),
        ))
        .unwrap();
    let d = cast(rows.batches[0].column(0), &DataType::Int64).unwrap();
    assert_eq!(
        d.as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        i64::from(i32::MAX)
    );
}
