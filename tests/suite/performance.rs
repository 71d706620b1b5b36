//! What the performance work rests on: a measure computed in stages (each shared step once) gives
//! the detail its one statement gives; `hhq scan` reads exactly the columns the measures read;
//! `hhq profile` and `hhq run --timings` say where the time goes; row groups checked in parallel
//! find what a sequential read finds. (Speed itself is shown by `bench/scale.py`, never here.)

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use hhq::compile;
use hhq::definitions::Definitions;
use hhq::engine::Engine;
use hhq::period::Period;
use hhq::pipeline::{self, RunOptions};

fn hhq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("hhq runs")
}

fn options(out: &Path) -> RunOptions {
    common::run_options(&common::root().join("testdata"), out)
}

/// Rows of batches as text, in order: what two ways of computing a detail must agree on.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| {
                    let s = c.as_any().downcast_ref::<StringArray>().unwrap();
                    if s.is_null(r) {
                        "∅".to_string()
                    } else {
                        s.value(r).to_string()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

#[test]
fn every_measure_computed_in_stages_gives_the_detail_of_its_one_statement() {
    common::with_big_stack(every_measure_staged_body);
}

async fn every_measure_staged_body() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::open(&root.join("testdata"), &defs).await.unwrap();
    let period: Period = "2025".parse().unwrap();
    let mut staged_somewhere = false;
    // One measure of each basis (IET-HH chains its events); tests/suite/memory.rs compares every
    // output of a run with a memory limit, where nothing is staged, with one without.
    for m in defs
        .measures
        .iter()
        .filter(|m| ["HH-ENGAGE", "FUH-HH", "IET-HH", "HH-FIRST"].contains(&m.id.as_str()))
    {
        let compiled = compile::compile(m, engine.catalog(), &period).unwrap();
        let stages = compiled.staged(|_| true);
        // The last stage is the detail; the others are steps read more than once.
        assert_eq!(stages.last().unwrap().name, "detail", "{}", m.id);
        for s in &stages[..stages.len() - 1] {
            staged_somewhere = true;
            assert!(
                !stages
                    .last()
                    .unwrap()
                    .sql
                    .contains(&format!("{} AS (", s.name)),
                "{}: the detail stage still defines the kept step `{}`",
                m.id,
                s.name
            );
        }
        let one = engine
            .collect_for(&compiled.detail_sql(), &m.id)
            .await
            .unwrap();
        let run = engine.run(&compiled).await.unwrap();
        let (a, b) = (rows(&one), rows(&run.detail));
        assert!(!a.is_empty(), "{}: testdata gives a detail", m.id);
        assert_eq!(a, b, "{}: staged detail differs", m.id);
    }
    assert!(staged_somewhere, "some measure reads a step more than once");
    // Nothing a stage registered is left behind.
    assert!(!engine.context().table_exist("candidates").unwrap());
}

#[tokio::test]
async fn a_step_measures_compute_alike_is_computed_once_and_freed_after_its_last_reader() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::open(&root.join("testdata"), &defs).await.unwrap();
    let period: Period = "2025".parse().unwrap();
    // Three member-month measures counted on the 15th start from the same enrollee months;
    // FUH-HH shares no step with them.
    let compiled: Vec<_> = ["AMB-HH", "FUH-HH", "HH-ENGAGE", "IU-HH"]
        .iter()
        .map(|id| {
            let m = defs.measures.iter().find(|m| m.id == *id).unwrap();
            compile::compile(m, engine.catalog(), &period).unwrap()
        })
        .collect();
    // Their candidate months, and the units made from them (with the members' attributes).
    for step in ["candidates", "units"] {
        let key = |c: &compile::CompiledMeasure| {
            c.staged(|_| true)
                .into_iter()
                .find(|s| s.name == step)
                .unwrap()
                .key
        };
        assert_eq!(key(&compiled[0]), key(&compiled[2]), "{step}");
        assert_eq!(key(&compiled[0]), key(&compiled[3]), "{step}");
        assert_ne!(key(&compiled[0]), key(&compiled[1]), "{step}");
    }
    // Each measure alone, nothing shared.
    let mut alone = Vec::new();
    for c in &compiled {
        alone.push(rows(&engine.run(c).await.unwrap().detail));
    }
    // The plan shares AMB-HH's enrollee months and units with HH-ENGAGE and IU-HH, and its
    // hospice exclusion with IU-HH (the same step); FUH-HH's steps are its own.
    let plan = hhq::execute::plan(
        &engine,
        &compiled.iter().collect::<Vec<_>>(),
        &Default::default(),
        None,
    )
    .await
    .unwrap();
    let shared_with = |i: usize| -> Vec<Vec<String>> {
        plan.measures[i]
            .holds
            .iter()
            .filter_map(|h| match h {
                hhq::plan::Hold::Shared { readers } => Some(readers.clone()),
                hhq::plan::Hold::Own => None,
            })
            .collect()
    };
    let three = ["AMB-HH", "HH-ENGAGE", "IU-HH"].map(String::from).to_vec();
    let two = ["AMB-HH", "IU-HH"].map(String::from).to_vec();
    let amb = [three.clone(), three.clone(), two];
    assert_eq!(shared_with(0), amb, "{plan}");
    assert!(shared_with(1).is_empty(), "{plan}");
    assert_eq!(shared_with(2), [three.clone(), three], "{plan}");
    assert_eq!(shared_with(3), amb, "{plan}");
    assert_eq!(plan.shared_steps().len(), 3);
    let shared = engine.share(plan.shared_steps());
    let mut held = Vec::new();
    for (m, expected) in plan.measures.iter().zip(&alone) {
        let (detail, _) = engine.compute_detail(m, Some(&shared)).await.unwrap();
        assert_eq!(&rows(&detail), expected, "{}: shared steps change it", m.id);
        held.push(shared.held());
    }
    // Held from AMB-HH on, freed once IU-HH, their last reader, has read them.
    assert_eq!(held, [3, 3, 3, 0]);
    // Side by side, as a pass computes them (each measure's steps in a session of its own, a
    // shared step computed by one while the others wait): the same rows, nothing held after.
    let shared = engine.share(plan.shared_steps());
    let together = futures::future::join_all(
        plan.measures
            .iter()
            .map(|m| engine.compute_detail(m, Some(&shared))),
    )
    .await;
    for ((m, done), expected) in plan.measures.iter().zip(together).zip(&alone) {
        assert_eq!(
            &rows(&done.unwrap().0),
            expected,
            "{}: side by side changes it",
            m.id
        );
    }
    assert_eq!(shared.held(), 0);
}

#[test]
fn a_step_named_like_an_existing_table_stays_a_cte() {
    // `keep` declining every step: one stage, the whole detail query.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let root = common::root();
        let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
        let engine = Engine::offline(&defs).await.unwrap();
        let m = defs.measures.iter().find(|m| m.id == "HH-ENGAGE").unwrap();
        let compiled = compile::compile(m, engine.catalog(), &"2025".parse().unwrap()).unwrap();
        let stages = compiled.staged(|_| false);
        assert_eq!(stages.len(), 1);
        assert!(stages[0].sql.contains("candidates AS ("));
        let kept = compiled.staged(|name| name == "candidates");
        assert_eq!(
            kept.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["candidates", "detail"]
        );
        assert!(!kept[1].sql.contains("candidates AS ("));
        assert!(kept[1].sql.contains("FROM candidates"));
    });
}

#[tokio::test]
async fn the_scan_floor_reads_the_columns_the_measures_read_and_every_row() {
    let floor = pipeline::scan(&options(Path::new("unused"))).await.unwrap();
    let claims = floor
        .tables
        .iter()
        .find(|t| t.table == "claims__raw")
        .expect("claims are read");
    // Read by the measures' blocks: dates, codes, diagnoses, the providers' NPIs (IET: a
    // same-day initiation needs another provider); never read: the paid amount or the NDC's
    // days of supply.
    for col in [
        "member_id",
        "claim_id",
        "service_from",
        "principal_dx",
        "other_dx",
        "rendering_npi",
        "billing_npi",
    ] {
        assert!(claims.columns.iter().any(|c| c == col), "{col} not read");
    }
    for col in ["paid_amount", "days_supply"] {
        assert!(!claims.columns.iter().any(|c| c == col), "{col} read");
    }
    assert!(claims.columns.len() < claims.of_columns);
    // Every row of each file.
    let defs = Definitions::load(
        &common::root().join("measures"),
        &common::root().join("queries"),
    )
    .unwrap();
    let engine = Engine::open(&common::root().join("testdata"), &defs)
        .await
        .unwrap();
    for t in &floor.tables {
        let name = t.table.trim_end_matches("__raw");
        let opened = engine.extracts.iter().find(|e| e.name == name).unwrap();
        assert_eq!(t.rows, opened.rows, "{name}");
    }
    assert_eq!(
        floor.rows(),
        floor.tables.iter().map(|t| t.rows).sum::<u64>()
    );
}

#[test]
fn hhq_scan_prints_each_extract_and_the_floor() {
    let out = hhq(&["scan", "--data", "testdata", "--period", "2025"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("claims__raw"), "{text}");
    assert!(text.contains("scan floor: "), "{text}");
}

#[test]
fn hhq_profile_shows_the_plan_with_metrics_and_the_steps() {
    let out = hhq(&["profile", "HH-ENGAGE", "--data", "testdata"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = String::from_utf8(out.stdout).unwrap();
    let steps = String::from_utf8(out.stderr).unwrap();
    assert!(plan.contains("DataSourceExec") || plan.contains("MemoryExec"));
    assert!(plan.contains("output_rows="), "metrics shown: {plan}");
    assert!(steps.contains("building block hh_enrollment ("), "{steps}");
    assert!(steps.contains("step candidates:"), "{steps}");
    // A block on its own.
    let out = hhq(&["profile", "ed_visits", "--data", "testdata"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("DataSourceExec"));
    // Neither a measure nor a block: a usage error naming both places looked in.
    let out = hhq(&["profile", "NOPE", "--data", "testdata"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`NOPE` is neither a measure"), "{err}");
}

#[test]
fn hhq_profile_of_a_pass_reads_the_members_of_that_pass() {
    // The rows the block's plan gives, from its top operator's metrics.
    let rows = |extra: &[&str]| -> u64 {
        let mut args = vec!["profile", "ed_visits", "--data", "testdata"];
        args.extend_from_slice(extra);
        let out = hhq(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8(out.stdout).unwrap();
        let top = plan.lines().next().unwrap();
        let n = top.split("output_rows=").nth(1).unwrap();
        n[..n.find(',').unwrap()]
            .parse()
            .unwrap_or_else(|_| panic!("{top}"))
    };
    // testdata's 1,500 members in ten passes of 150: their ED visits those of all (counted
    // by a query: a plan's metrics round counts of a thousand or more, `4.41 K`).
    let counted = hhq(&[
        "sql",
        "SELECT count(*) AS n FROM ed_visits",
        "--data",
        "testdata",
        "--format",
        "csv",
    ]);
    let all: u64 = String::from_utf8(counted.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    let mut sum = 0;
    for pass in 1..=10 {
        let n = rows(&["--pass", &pass.to_string(), "--members-per-pass", "150"]);
        assert!(n > 0 && n < 1000, "pass {pass}: {n}");
        sum += n;
    }
    assert_eq!(sum, all);
    let out = hhq(&[
        "profile",
        "ed_visits",
        "--data",
        "testdata",
        "--pass",
        "11",
        "--members-per-pass",
        "150",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("makes 10 pass(es)"), "{err}");
}

#[test]
fn run_timings_list_every_stage_and_measure_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = hhq(&[
        "run",
        "--data",
        "testdata",
        "--period",
        "2025",
        "--timings",
        // Every stage computed: none read from the run cache.
        "--no-cache",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    let block = err.split("timings:\n").nth(1).expect("a timings block");
    let lines: Vec<(f64, &str)> = block
        .lines()
        .map_while(|l| {
            let (secs, stage) = l.trim_start().split_once(" s  ")?;
            Some((secs.parse().ok()?, stage))
        })
        .collect();
    let stages: Vec<&str> = lines.iter().map(|(_, s)| *s).collect();
    for want in [
        "data-quality profile",
        "measures",
        "  measure FUH-HH",
        "write detail FUH-HH",
        "  measure PCR-HH",
        "write outputs",
        "total",
    ] {
        assert!(stages.contains(&want), "{want} missing: {stages:?}");
    }
    assert!(stages.iter().any(|s| s.starts_with("  building block ")));
    // The total is the sum of the stages, parts (indented) not counted twice.
    let sum: f64 = lines
        .iter()
        .filter(|(_, s)| !s.starts_with(' ') && *s != "total")
        .map(|(d, _)| d)
        .sum();
    let total = lines.iter().find(|(_, s)| *s == "total").unwrap().0;
    assert!((sum - total).abs() < 0.01, "{sum} vs {total}");
}

#[test]
fn row_groups_checked_in_parallel_find_the_first_row_of_the_file() {
    // testdata's members rewritten in row groups of ten rows, with member_id null at rows 15 and
    // 237 (1-based): both found, the first named, whatever worker found it.
    let all = common::read_parquet(&common::root().join("testdata/members.parquet"));
    let schema = all.schema();
    assert!(all.num_rows() >= 237);
    let idx = schema.index_of("member_id").unwrap();
    let ids = datafusion::arrow::compute::cast(all.column(idx), &DataType::Utf8).unwrap();
    let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
    let nulled: StringArray = (0..ids.len())
        .map(|i| (i != 14 && i != 236).then(|| ids.value(i).to_string()))
        .collect();
    let mut columns = all.columns().to_vec();
    columns[idx] = Arc::new(nulled);
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "member_id" => Field::new("member_id", DataType::Utf8, true),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("members.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(10))
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let extract = hhq::extract::contract::EXTRACTS
        .iter()
        .find(|e| e.name == "members")
        .unwrap();
    let (rows, findings) = hhq::extract::check_rows(&path, extract).unwrap();
    assert_eq!(rows, all.num_rows() as u64);
    let null = findings
        .iter()
        .find(|f| f.rule == "members.member_id.null")
        .expect("the nulls are found");
    assert_eq!((null.rows, null.first_row), (2, 15));
}

/// Every file of two output directories, by relative path.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    common::files(dir)
        .into_iter()
        .map(|(path, bytes)| (path.display().to_string(), bytes))
        .collect()
}

#[tokio::test]
async fn a_run_in_member_passes_writes_what_one_pass_writes() {
    let dir = tempfile::tempdir().unwrap();
    let hhp = hhq::privacy::Privacy {
        audience: hhq::privacy::Audience::Hhp("HHP-02".into()),
        pseudonymizer: Some(
            hhq::privacy::Pseudonymizer::new(b"a key of at least sixteen bytes").unwrap(),
        ),
    };
    // The whole state, and one partner's pseudonymised run (its rows aggregated from the
    // spooled detail of its own session, the state's run's as benchmarks).
    for (name, privacy) in [("state", Default::default()), ("hhp", hhp)] {
        let one = dir.path().join(format!("{name}-one"));
        let passes = dir.path().join(format!("{name}-passes"));
        let single = pipeline::run(&RunOptions {
            privacy: privacy.clone(),
            ..options(&one)
        })
        .await
        .unwrap();
        // 1,500 members in passes of at most 350: five ranges of member ids.
        let several = pipeline::run(&RunOptions {
            common: hhq::execute::Options {
                members_per_pass: Some(350),
                ..options(&passes).common
            },
            privacy,
            ..options(&passes)
        })
        .await
        .unwrap();
        let stages = |s: &pipeline::RunSummary| -> Vec<String> {
            s.timings.stages.iter().map(|(n, _)| n.clone()).collect()
        };
        if name == "state" {
            assert!(stages(&several).contains(&"member ranges (5 passes)".to_string()));
            assert!(!stages(&single).iter().any(|s| s.contains("passes)")));
        } else {
            // The partner's session holds its 136 members (one pass); its benchmarks come from
            // the state's run, in five passes, which must give the same bytes.
            assert_eq!(stages(&several)[0], "the state's run (benchmarks)");
        }
        assert!(!single.rows.is_empty());
        assert_eq!(single.rows, several.rows);
        let (a, b) = (files(&one), files(&passes));
        assert!(
            a.keys().any(|k| k.ends_with("IET-HH.parquet")),
            "{:?}",
            a.keys()
        );
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (path, bytes) in &a {
            assert!(
                b[path] == *bytes,
                "{name}: {path} differs between one pass and five"
            );
        }
    }
}

#[test]
fn a_report_in_member_passes_is_the_report_of_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    // A partner's scorecard: every view a report aggregates (the partner's, the state's and each
    // MCO's quarters), its follow-up curves summed pass by pass, its worklist computed after.
    for (name, audience) in [("hhp", vec!["hhp", "HHP-02"])] {
        let mut written = Vec::new();
        for per_pass in ["1500", "350"] {
            let out = dir.path().join(format!("{name}-{per_pass}"));
            let mut args = vec!["report"];
            args.extend(&audience);
            args.extend([
                "--data",
                "testdata",
                "--no-pdf",
                "--members-per-pass",
                per_pass,
                "--out",
                out.to_str().unwrap(),
            ]);
            let run = hhq(&args);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            written.push(files(&out));
        }
        let (a, b) = (&written[0], &written[1]);
        assert!(
            a.keys().any(|k| k.contains("followup_FUH-HH")),
            "{:?}",
            a.keys()
        );
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (path, bytes) in a {
            assert!(
                b[path] == *bytes,
                "{name}: {path} differs between one pass and five"
            );
        }
    }
}

#[tokio::test]
async fn a_plans_passes_cover_every_member_id_in_order_and_split_them_evenly() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let engine = Engine::open(&root.join("testdata"), &defs).await.unwrap();
    let passes = |per_pass| {
        let engine = &engine;
        async move {
            let plan = hhq::execute::plan(engine, &[], &Default::default(), Some(per_pass))
                .await
                .unwrap();
            plan.passes
                .into_iter()
                .map(|p| p.members)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(passes(1500).await, vec![hhq::plan::MemberRange::default()]);
    let ranges = passes(350).await;
    assert_eq!(ranges.len(), 5);
    // Open at both ends, each range starting where the last stopped.
    assert_eq!(ranges[0].from, None);
    assert_eq!(ranges[4].to, None);
    for w in ranges.windows(2) {
        assert!(w[0].to.is_some() && w[0].to == w[1].from, "{ranges:?}");
    }
    // 1,500 members in five passes of 300.
    let ids = engine
        .texts("SELECT member_id FROM members ORDER BY member_id")
        .await
        .unwrap();
    for r in &ranges {
        let n = ids.iter().filter(|id| r.contains(id)).count();
        assert_eq!(n, 300, "{r:?}");
    }
}

/// A block marked `hhq: keep` that is computed within a pass (not kept for the run, as under a
/// memory limit too small for it) holds that pass's members only: the next pass computes its
/// own. Once, the next pass read the last pass's rows narrowed to its own members, none, and a
/// run in passes under a limit lost every pass but the first from IET-HH.
#[tokio::test]
async fn a_kept_block_computed_within_a_pass_is_computed_again_by_the_next() {
    let root = common::root();
    let defs = Definitions::load(&root.join("measures"), &root.join("queries")).unwrap();
    let data = root.join("testdata");
    let full = Engine::open(&data, &defs).await.unwrap();
    let everyone = full
        .texts("SELECT member_id FROM claim_substance_dx")
        .await
        .unwrap();
    let engine = Engine::open(&data, &defs).await.unwrap();
    let ranges = hhq::plan::member_ranges(&engine.member_ids().await.unwrap(), 70);
    let mut passes_with_rows = 0;
    for r in &ranges {
        let expected = everyone.iter().filter(|id| r.contains(id)).count();
        engine.focus(r).await.unwrap();
        engine
            .build_blocks(
                &[vec!["claim_substance_dx".to_string()]],
                hhq::plan::BlockLife::Pass { budget: None },
                2,
            )
            .await
            .unwrap();
        let got = engine
            .texts("SELECT member_id FROM claim_substance_dx")
            .await
            .unwrap();
        assert_eq!(got.len(), expected, "{r:?}");
        passes_with_rows += usize::from(expected > 0);
    }
    assert!(
        passes_with_rows >= 2,
        "the test data must give two passes rows"
    );
}
