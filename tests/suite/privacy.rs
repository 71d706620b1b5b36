//! `hhq run --hhp/--mco` keeps member-level outputs to one audience; `--pseudonymize` replaces
//! member ids with keyed pseudonyms whose key appears in no output.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn hhq(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hhq"));
    c.args(args).current_dir(common::root());
    c.env_remove("HHQ_PSEUDONYM_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hhq")
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    common::read_csv(&std::fs::read(path).unwrap())
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn a_partner_run_holds_its_members_and_aggregate_benchmarks_only() {
    let dir = tempfile::tempdir().unwrap();
    let (all, own) = (dir.path().join("all"), dir.path().join("own"));
    // Every measure: the partner's session, holding its members only, gives the figures the
    // state's run gives its stratum.
    ok(&hhq(&["run", "--out", all.to_str().unwrap()], &[]));
    ok(&hhq(
        &["run", "--hhp", "HHP-05", "--out", own.to_str().unwrap()],
        &[],
    ));

    for id in ["HH-TCC", "HH-ENGAGE"] {
        let (h, rows) = csv_rows(&own.join(format!("detail/{id}.csv")));
        assert!(!rows.is_empty(), "{id}: HHP-05 has units");
        let hhp = column(&h, "hhp");
        assert!(
            rows.iter().all(|r| r[hhp] == "HHP-05"),
            "{id}: another partner's unit in HHP-05's detail"
        );
    }
    // The partner's totals are the whole run's HHP-05 stratum, figure for figure.
    let key = |r: &[String], h: &[String]| {
        (
            r[column(h, "measure")].clone(),
            r[column(h, "component")].clone(),
        )
    };
    let figures = |r: &[String], h: &[String]| {
        (
            r[column(h, "numerator")].clone(),
            r[column(h, "denominator")].clone(),
        )
    };
    let (ha, whole) = csv_rows(&all.join("summary.csv"));
    let stratum: BTreeMap<_, _> = whole
        .iter()
        .filter(|r| r[column(&ha, "stratum")] == "HHP-05")
        .map(|r| (key(r, &ha), figures(r, &ha)))
        .collect();
    let (ho, mine) = csv_rows(&own.join("summary.csv"));
    let totals: BTreeMap<_, _> = mine
        .iter()
        .filter(|r| r[column(&ho, "stratifier")] == "total")
        .map(|r| (key(r, &ho), figures(r, &ho)))
        .collect();
    assert!(!totals.is_empty());
    // A measure with no unit of the partner has no stratum row in the state's run.
    let empty = ("0".to_string(), "0".to_string());
    let totals: BTreeMap<_, _> = totals
        .into_iter()
        .filter(|(k, v)| stratum.contains_key(k) || *v != empty)
        .collect();
    assert_eq!(totals, stratum);
    // No other partner appears as a stratum of its own results.
    let strata = column(&ho, "stratum");
    assert!(
        mine.iter()
            .all(|r| !r[strata].starts_with("HHP-") || r[strata] == "HHP-05")
    );
    // Benchmarks: the state's total and MCO rates only, suppressed as every published cell: no
    // count to subtract the partner's own from, and no rate over a small cell.
    let (hb, bench) = csv_rows(&own.join("benchmarks.csv"));
    let s = column(&hb, "stratifier");
    assert!(!bench.is_empty());
    assert!(bench.iter().all(|r| r[s] == "total" || r[s] == "mco"));
    let unit = column(&hb, "unit");
    assert!(
        bench.iter().all(|r| r[unit] != "count"),
        "a count is no benchmark"
    );
    assert!(
        !hb.iter().any(|h| h == "numerator" || h == "denominator"),
        "{hb:?}"
    );
    let state: BTreeMap<_, _> = whole
        .iter()
        .map(|r| ((key(r, &ha), r[column(&ha, "stratum")].clone()), r.clone()))
        .collect();
    let (mut shown, mut hidden) = (0, 0);
    for b in &bench {
        let r = &state[&(key(b, &hb), b[column(&hb, "stratum")].clone())];
        let n: f64 = r[column(&ha, "numerator")].parse().unwrap();
        let d: f64 = r[column(&ha, "denominator")].parse().unwrap();
        let rate = &b[column(&hb, "rate")];
        if d == 0.0 {
            assert_eq!(rate, "", "{b:?}: no rate over no unit");
        } else if (1.0..=10.0).contains(&n) || d < 30.0 {
            assert_eq!(rate, "DS", "{b:?} over {n}/{d}");
        }
        if rate == "DS" {
            hidden += 1;
        } else {
            assert_eq!(rate, &r[column(&ha, "rate")], "{b:?}");
            shown += 1;
        }
    }
    assert!(shown > 0 && hidden > 0, "{shown} shown, {hidden} hidden");
}

#[test]
fn pseudonyms_replace_member_ids_and_the_key_is_written_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let key = "a-key-of-at-least-sixteen-bytes-7f3c";
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (plain, masked) = (dir.path().join("plain"), dir.path().join("masked"));
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--out",
            plain.to_str().unwrap(),
        ],
        &[],
    ));
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--key-file",
            key_file.to_str().unwrap(),
            "--out",
            masked.to_str().unwrap(),
        ],
        &[],
    ));
    let (h, rows) = csv_rows(&plain.join("detail/HH-TCC.csv"));
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r[column(&h, "member_id")].clone())
        .collect();
    let (h, rows) = csv_rows(&masked.join("detail/HH-TCC.csv"));
    let pseudonyms: BTreeSet<String> = rows
        .iter()
        .map(|r| r[column(&h, "member_id")].clone())
        .collect();
    assert_eq!(ids.len(), pseudonyms.len(), "one pseudonym per member");
    assert!(
        pseudonyms
            .iter()
            .all(|p| p.starts_with('P') && p.len() == 21)
    );

    // Neither a member id nor the key is in any file written.
    for p in common::files_under(&masked) {
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(key), "{} holds the key", p.display());
        if let Some(id) = ids.iter().find(|id| text.contains(id.as_str())) {
            panic!("{} holds the member id {id}", p.display());
        }
    }

    // The same key from the environment gives the same pseudonyms; another key others.
    let env_run = dir.path().join("env");
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--out",
            env_run.to_str().unwrap(),
        ],
        &[("HHQ_PSEUDONYM_KEY", key)],
    ));
    assert_eq!(
        std::fs::read(env_run.join("detail/HH-TCC.csv")).unwrap(),
        std::fs::read(masked.join("detail/HH-TCC.csv")).unwrap()
    );
    let other = dir.path().join("other");
    ok(&hhq(
        &[
            "run",
            "--measure",
            "HH-TCC",
            "--pseudonymize",
            "--out",
            other.to_str().unwrap(),
        ],
        &[("HHQ_PSEUDONYM_KEY", "another-key-of-sixteen-bytes-or-more")],
    ));
    assert_ne!(
        std::fs::read(other.join("detail/HH-TCC.csv")).unwrap(),
        std::fs::read(masked.join("detail/HH-TCC.csv")).unwrap()
    );

    // No key: a usage error, nothing written.
    let none = dir.path().join("none");
    let o = hhq(
        &["run", "--pseudonymize", "--out", none.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HHQ_PSEUDONYM_KEY"));
    assert!(!none.exists());
}

// ---------------------------------------------------------------------------------------------
// Scoping by construction: a scoped session holds nothing of another member.

use hhq::definitions::Definitions;
use hhq::distributed::Backend;
use hhq::engine::{Engine, Inputs};
use hhq::privacy::Audience;

/// Time each query may take.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

async fn scoped(scope: &Audience) -> Engine {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    Engine::open_scoped(
        &root.join("testdata"),
        &defs,
        &Inputs::default(),
        None,
        &Backend::Local,
        scope,
    )
    .await
    .unwrap()
}

/// Every member id of a query's rows, from any text column (ids are `M` and seven digits).
fn member_ids(batches: &[datafusion::arrow::array::RecordBatch]) -> BTreeSet<String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;
    let id = regex::Regex::new(r"M\d{7}").unwrap();
    let mut out = BTreeSet::new();
    for b in batches {
        for c in b.columns() {
            let Ok(text) = datafusion::arrow::compute::cast(c, &DataType::Utf8) else {
                continue;
            };
            let text = text.as_string::<i32>();
            for i in 0..text.len() {
                if !text.is_null(i) {
                    out.extend(id.find_iter(text.value(i)).map(|m| m.as_str().to_string()));
                }
            }
        }
    }
    out
}

/// The members the enrollment extract ever assigns to the audience, read from the file itself.
fn audience_members(column: &str, id: &str) -> BTreeSet<String> {
    use datafusion::arrow::array::{Array, AsArray};
    let b = common::read_parquet(&common::root().join("testdata/enrollment.parquet"));
    let text = |n: &str| {
        datafusion::arrow::compute::cast(b.column_by_name(n).unwrap(), &DataType::Utf8).unwrap()
    };
    use datafusion::arrow::datatypes::DataType;
    let (members, of) = (text("member_id"), text(column));
    let (members, of) = (members.as_string::<i32>(), of.as_string::<i32>());
    (0..b.num_rows())
        .filter(|&i| !of.is_null(i) && of.value(i) == id)
        .map(|i| members.value(i).to_string())
        .collect()
}

/// The names a session's catalogue holds, every catalogue and schema.
fn catalogue(engine: &Engine) -> BTreeSet<String> {
    let ctx = engine.context();
    let mut names = BTreeSet::new();
    for c in ctx.catalog_names() {
        let catalog = ctx.catalog(&c).unwrap();
        for s in catalog.schema_names() {
            for t in catalog.schema(&s).unwrap().table_names() {
                names.insert(format!("{c}.{s}.{t}"));
            }
        }
    }
    names
}

#[test]
fn a_scoped_session_registers_the_audience_views_and_nothing_else() {
    let rt = runtime();
    let engine = rt.block_on(scoped(&Audience::Hhp("HHP-01".into())));
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let mut expected: BTreeSet<String> = hhq::engine::extract_names()
        .into_iter()
        .chain(defs.blocks.iter().map(|b| b.name.clone()))
        .chain(
            hhq::compile::blocks::INPUT_TABLES
                .iter()
                .map(|s| s.to_string()),
        )
        .map(|t| format!("datafusion.public.{t}"))
        .collect();
    let found = catalogue(&engine);
    assert_eq!(found, expected, "the scoped session's catalogue");
    assert!(!found.iter().any(|t| t.ends_with("__raw")));
    // The state's own session also has the Parquet tables, for its scan floor: the difference.
    let state = rt.block_on(scoped(&Audience::State));
    for e in hhq::extract::contract::EXTRACTS {
        expected.insert(format!("datafusion.public.{}__raw", e.name));
    }
    assert_eq!(catalogue(&state), expected);
    // No table function reads a file or another session's table: DataFusion's own generators.
    let functions: BTreeSet<String> = engine
        .context()
        .state()
        .table_functions()
        .keys()
        .cloned()
        .collect();
    let generators: BTreeSet<String> = ["generate_series", "range"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        functions.is_subset(&generators),
        "table functions: {functions:?}"
    );
}

/// Queries over every name a scoped session holds, each name as read and joined to another;
/// the ways around scoping the hostile testing tried; and names it does not hold.
fn queries(tables: &[String]) -> Vec<String> {
    let mut q = Vec::new();
    for t in tables {
        q.push(format!("SELECT * FROM {t}"));
        // Joins of the extracts' views (a block is a query over them).
        if !hhq::engine::extract_names().contains(t) {
            continue;
        }
        for u in ["enrollment__all", "members"] {
            q.push(format!(
                "SELECT * FROM {t} a FULL JOIN {u} b ON a.member_id = b.member_id"
            ));
        }
    }
    for raw in [
        "claims__raw",
        "enrollment__raw",
        "members__raw",
        "contacts__raw",
    ] {
        q.push(format!(
            "SELECT hhp_id, count(DISTINCT member_id) FROM {raw} GROUP BY 1"
        ));
        q.push(format!("SELECT * FROM datafusion.public.{raw}"));
    }
    q.push("SELECT * FROM information_schema.tables".into());
    q.push("SELECT * FROM 'testdata/claims.parquet'".into());
    q.push("SELECT * FROM read_parquet('testdata/claims.parquet')".into());
    q
}

#[test]
fn no_query_of_a_scoped_session_reaches_another_member() {
    let rt = runtime();
    for (scope, column, id) in [
        (Audience::Hhp("HHP-01".into()), "hhp_id", "HHP-01"),
        (Audience::Mco("MCO-B".into()), "mco_id", "MCO-B"),
    ] {
        let audience = audience_members(column, id);
        assert!(!audience.is_empty());
        let engine = rt.block_on(scoped(&scope));
        let tables: Vec<String> = catalogue(&engine)
            .into_iter()
            .map(|t| t.rsplit('.').next().unwrap().to_string())
            .collect();
        let mut reached = BTreeSet::new();
        for sql in queries(&tables) {
            let query = hhq::adhoc::Query::inline(sql.clone());
            // An error (a table not found) is fine; rows must hold the audience's members only.
            if let Ok(rows) = rt.block_on(hhq::adhoc::execute(&engine, &query, LIMIT)) {
                let ids = member_ids(&rows.batches);
                let outside: Vec<&String> = ids.difference(&audience).collect();
                assert!(
                    outside.is_empty(),
                    "{sql}: members outside {id}: {outside:?}"
                );
                reached.extend(ids);
            }
        }
        // The queries did read the audience's members: the test can fail.
        assert_eq!(reached, audience, "{id}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random SQL over the names a scoped session holds, and names it does not: whatever runs
    /// returns the audience's members only.
    #[test]
    fn random_queries_of_a_scoped_session_stay_in_the_audience(
        picks in proptest::collection::vec(0usize..64, 1..4),
        clause in 0usize..6,
        raw in proptest::bool::ANY,
    ) {
        let rt = runtime();
        let audience = audience_members("hhp_id", "HHP-02");
        let engine = rt.block_on(scoped(&Audience::Hhp("HHP-02".into())));
        let mut tables: Vec<String> = catalogue(&engine)
            .into_iter()
            .map(|t| t.rsplit('.').next().unwrap().to_string())
            .collect();
        if raw {
            tables.push("claims__raw".into());
        }
        let named: Vec<&String> = picks.iter().map(|i| &tables[i % tables.len()]).collect();
        let from = named
            .iter()
            .enumerate()
            .map(|(i, t)| format!("(SELECT * FROM {t}) t{i}"))
            .collect::<Vec<_>>()
            .join(" CROSS JOIN ");
        let sql = match clause {
            0 => format!("SELECT * FROM {from} LIMIT 5000"),
            1 => format!("SELECT * FROM {} UNION ALL SELECT * FROM {}", named[0], named[0]),
            2 => format!("SELECT * FROM {} WHERE member_id NOT IN (SELECT member_id FROM {})", named[0], named[named.len() - 1]),
            3 => format!("SELECT count(*), min(member_id), max(member_id) FROM {}", named[0]),
            4 => format!("SELECT * FROM {} ORDER BY 1 DESC LIMIT 100", named[0]),
            _ => format!("WITH RECURSIVE r AS (SELECT * FROM {} ) SELECT * FROM r", named[0]),
        };
        let query = hhq::adhoc::Query::inline(sql.clone());
        if let Ok(rows) = rt.block_on(hhq::adhoc::execute(&engine, &query, LIMIT)) {
            let ids = member_ids(&rows.batches);
            let outside: Vec<&String> = ids.difference(&audience).collect();
            proptest::prop_assert!(outside.is_empty(), "{}: {:?}", sql, outside);
        }
    }
}

#[test]
fn sql_for_a_partner_has_no_table_of_every_member() {
    let fails = |args: &[&str]| {
        let o = hhq(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    for raw in [
        "claims__raw",
        "enrollment__raw",
        "members__raw",
        "contacts__raw",
    ] {
        let sql = format!("SELECT hhp_id, count(DISTINCT member_id) FROM {raw} GROUP BY 1");
        let e = fails(&["sql", &sql, "--hhp", "HHP-01"]);
        assert!(e.contains(raw) && e.contains("not found"), "{e}");
        let e = fails(&["sql", &sql, "--mco", "MCO-A"]);
        assert!(e.contains("not found"), "{e}");
    }
    // `<extract>__all` is the audience's every row: a partner counts its own members only.
    let count = |args: &[&str]| {
        let o = hhq(args, &[]);
        ok(&o);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    };
    let sql = "SELECT count(DISTINCT member_id) AS n FROM enrollment__all";
    let own = count(&["sql", sql, "--hhp", "HHP-01", "--format", "csv"]);
    assert_eq!(own, audience_members("hhp_id", "HHP-01").len().to_string());
}

/// Every text a file holds: its bytes, and for a Parquet file every value of every column as
/// text (its pages may be compressed, so its bytes alone would hide an id).
fn texts_of(path: &Path) -> Vec<String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;
    let bytes = std::fs::read(path).unwrap();
    let mut out = vec![String::from_utf8_lossy(&bytes).into_owned()];
    if path.extension().is_some_and(|x| x == "parquet") {
        let b = common::read_parquet(path);
        for (f, c) in b.schema().fields().iter().zip(b.columns()) {
            out.push(f.name().clone());
            if let Ok(text) = datafusion::arrow::compute::cast(c, &DataType::Utf8) {
                let text = text.as_string::<i32>();
                out.extend(
                    (0..text.len())
                        .filter(|&i| !text.is_null(i))
                        .map(|i| text.value(i).to_string()),
                );
            }
        }
    }
    out
}

#[test]
fn no_output_of_a_pseudonymised_run_holds_a_member_id() {
    use datafusion::arrow::array::{Array, AsArray};
    let members = common::read_parquet(&common::root().join("testdata/members.parquet"));
    let ids = datafusion::arrow::compute::cast(
        members.column_by_name("member_id").unwrap(),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let ids: Vec<String> = (0..ids.len())
        .map(|i| ids.as_string::<i32>().value(i).to_string())
        .collect();
    assert!(ids.len() > 100);
    // The first member id a text holds: every window of an id's length looked up, in one pass
    // over the text (not a search for each of the ids).
    let lengths: BTreeSet<usize> = ids.iter().map(String::len).collect();
    let known: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let member_id_in = |text: &str| -> Option<String> {
        text.char_indices().find_map(|(i, _)| {
            lengths
                .iter()
                .filter_map(|&n| text.get(i..i + n))
                .find(|w| known.contains(w))
                .map(String::from)
        })
    };
    assert_eq!(
        member_id_in(&format!("x,{},y", ids[7])),
        Some(ids[7].clone())
    );
    let dir = tempfile::tempdir().unwrap();
    let key = "a-key-of-at-least-sixteen-bytes-7f3c";
    let runs: Vec<(std::path::PathBuf, Vec<&str>)> = vec![
        (
            dir.path().join("state"),
            vec!["run", "--detail-csv", "always"],
        ),
        (
            dir.path().join("partner"),
            vec!["run", "--hhp", "HHP-01", "--detail-csv", "always"],
        ),
        (dir.path().join("cohort"), vec!["cohort"]),
        (
            dir.path().join("cohort-mco"),
            vec!["cohort", "--mco", "MCO-B"],
        ),
    ];
    for (out, args) in &runs {
        let mut args = args.clone();
        args.extend(["--pseudonymize", "--out", out.to_str().unwrap()]);
        ok(&hhq(&args, &[("HHQ_PSEUDONYM_KEY", key)]));
        let files = common::files_under(out);
        assert!(files.len() > 5, "{args:?}: {files:?}");
        let mut pseudonyms = 0;
        for f in &files {
            let name = f.to_string_lossy().into_owned();
            for text in std::iter::once(name.clone()).chain(texts_of(f)) {
                if let Some(id) = member_id_in(&text) {
                    panic!("{args:?}: {name} holds the member id {id}");
                }
                assert!(!text.contains(key), "{name} holds the key");
                pseudonyms += text.matches(":2025-").count();
            }
        }
        assert!(
            pseudonyms > 0 || args[0] == "cohort",
            "{args:?}: no member month written"
        );
    }
}
