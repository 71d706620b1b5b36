//! `hhq report`: what is published is suppressed in every output and agrees across them; the
//! report is reproducible byte for byte; the manifest hashes what was written; a partner's
//! scorecard holds only its own members.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::read_csv;

fn hhq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hhq"))
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run hhq")
}

fn report(args: &[&str], out: &Path) {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = hhq(&all);
    assert!(
        o.status.success(),
        "hhq {all:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn number(s: &str) -> Option<f64> {
    s.replace(',', "").parse().ok()
}

/// The published tables obey CMS's rule: no count from 1 to 10, no rate over fewer than 30.
fn assert_suppressed(tables: &BTreeMap<PathBuf, Vec<u8>>) -> usize {
    let mut ds = 0;
    for (path, bytes) in tables {
        if path.extension().is_none_or(|e| e != "csv") || path.ends_with("data_quality.csv") {
            continue;
        }
        let (header, rows) = read_csv(bytes);
        let col = |n: &str| header.iter().position(|h| h == n);
        for row in &rows {
            ds += row.iter().filter(|c| *c == "DS").count();
            for name in ["numerator", "denominator"] {
                if let Some(i) = col(name)
                    && let Some(v) = number(&row[i])
                {
                    assert!(
                        !(v > 0.0 && v <= 10.0),
                        "{}: a {name} of {v} is published: {row:?}",
                        path.display()
                    );
                }
            }
            // A hidden rate hides what would give it, or its denominator, back: its interval
            // and its control limits.
            if let Some(r) = col("rate")
                && row[r] == "DS"
            {
                for name in ["lower_95", "upper_95", "lower_limit", "upper_limit"] {
                    if let Some(i) = col(name) {
                        assert!(
                            row[i].is_empty(),
                            "{}: a suppressed rate with its {name} shown: {row:?}",
                            path.display()
                        );
                    }
                }
            }
            if let (Some(d), Some(r)) = (col("denominator"), col("rate"))
                && let Some(den) = number(&row[d])
                && number(&row[r]).is_some()
            {
                let unit = col("unit").map(|u| row[u].as_str()).unwrap_or("");
                // Ratios' denominators are expected counts, not people; a count component's
                // "rate" is its numerator (a rate equal to its numerator otherwise means a
                // denominator of 100 or 1,000, which passes anyway).
                let count = col("numerator").is_some_and(|n| row[n] == row[r]);
                if unit != "ratio" && unit != "days" && !count {
                    assert!(
                        den >= 30.0,
                        "{}: a rate over {den} is published: {row:?}",
                        path.display()
                    );
                }
            }
        }
    }
    ds
}

/// The cells of the HTML table with this id, row by row.
fn html_table(html: &str, id: &str) -> Option<Vec<Vec<String>>> {
    let start = html.find(&format!("<table id=\"{id}\">"))?;
    let end = start + html[start..].find("</table>")?;
    let body = &html[start..end];
    let body = &body[body.find("<tbody>")?..];
    let cell = regex::Regex::new(r"<td[^>]*>(.*?)</td>").unwrap();
    Some(
        body.split("<tr>")
            .skip(1)
            .map(|tr| {
                cell.captures_iter(tr)
                    .map(|c| {
                        c[1].replace("&amp;", "&")
                            .replace("&lt;", "<")
                            .replace("&gt;", ">")
                            .replace("&quot;", "\"")
                            .replace("&#x27;", "'")
                            .replace("&#x2f;", "/")
                    })
                    .collect()
            })
            .collect(),
    )
}

#[test]
fn state_report_is_suppressed_consistent_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("state");
    report(&["state", "--no-pdf"], &out);
    let first = common::files(&out);
    for f in ["report.html", "manifest.json", "tables/at_a_glance.csv"] {
        assert!(first.contains_key(Path::new(f)), "no {f}");
    }
    // Every table and chart has its CSV, Parquet, SVG and PNG; a figure with nothing to draw is
    // one line of text in the page, with its table but no chart files.
    let charts: Vec<&PathBuf> = first
        .keys()
        .filter(|p| p.starts_with("charts") && p.extension().is_some_and(|e| e == "svg"))
        .collect();
    let page = std::str::from_utf8(&first[Path::new("report.html")]).unwrap();
    let figures: Vec<&str> = page
        .split("id=\"figure-")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(figures.len() >= 11 * 2, "only {} figures", figures.len());
    for id in &figures {
        let drawn = first.contains_key(Path::new(&format!("charts/{id}.svg")));
        let line = page.contains(&format!("<p class=\"no-figure\" id=\"figure-{id}\">"));
        assert!(drawn != line, "figure {id}: a chart and a line, or neither");
        assert!(
            first.contains_key(Path::new(&format!("tables/{id}.csv"))),
            "{id}: no table"
        );
    }
    assert_eq!(
        charts.len(),
        figures.len() - page.matches("<p class=\"no-figure\"").count()
    );
    for svg in &charts {
        let stem = svg.file_stem().unwrap().to_str().unwrap();
        for f in [
            format!("charts/{stem}.png"),
            format!("tables/{stem}.csv"),
            format!("tables/{stem}.parquet"),
        ] {
            assert!(first.contains_key(Path::new(&f)), "chart {stem} has no {f}");
        }
        let text = std::str::from_utf8(&first[*svg]).unwrap();
        assert!(!text.contains("<text"), "{stem}.svg has live text");
    }

    let ds = assert_suppressed(&first);
    assert!(
        ds > 0,
        "1,500 members must still leave some cells suppressed"
    );
    the_demo_shows_the_product(&first);

    // The HTML shows exactly the tables' cells, DS included.
    let html = std::str::from_utf8(&first[Path::new("report.html")]).unwrap();
    let mut compared = 0;
    for (path, bytes) in &first {
        if !path.starts_with("tables") || path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let id = path.file_stem().unwrap().to_str().unwrap();
        if let Some(cells) = html_table(html, id) {
            let (_, rows) = read_csv(bytes);
            assert_eq!(cells, rows, "table {id}: the HTML and the CSV differ");
            compared += 1;
        }
    }
    assert!(compared >= 11, "only {compared} tables are in the HTML");

    // Every output the manifest lists has the hash of the bytes written.
    let manifest: serde_json::Value =
        serde_json::from_slice(&first[Path::new("manifest.json")]).unwrap();
    let outputs = manifest["outputs"].as_array().unwrap();
    assert_eq!(
        outputs.len(),
        first.len() - 1,
        "every file but the manifest is listed"
    );
    for o in outputs {
        // Paths are relative to the report directory, so a report can be moved and checked.
        let rel = PathBuf::from(o["file"].as_str().unwrap());
        assert!(rel.is_relative(), "{}", rel.display());
        assert_eq!(
            o["sha256"].as_str().unwrap(),
            hhq::digest::sha256(&first[&rel]),
            "{}",
            rel.display()
        );
    }
    assert_eq!(manifest["command"], "report state");

    // Same inputs, same bytes.
    report(&["state", "--no-pdf"], &out);
    let second = common::files(&out);
    assert_eq!(first.len(), second.len());
    for (p, bytes) in &first {
        assert!(
            second[p] == *bytes,
            "{} differs between two runs",
            p.display()
        );
    }
}

/// The shipped test data show what the product is for (README): most headline rates published,
/// partners and MCOs that differ from the state both ways, and a control chart with a signal.
fn the_demo_shows_the_product(tables: &BTreeMap<PathBuf, Vec<u8>>) {
    let col = |header: &[String], name: &str| header.iter().position(|c| c == name).unwrap();
    let (header, rows) = read_csv(&tables[Path::new("tables/at_a_glance.csv")]);
    let (rate, better) = (col(&header, "rate"), col(&header, "better"));
    let directional: Vec<&Vec<String>> = rows.iter().filter(|r| !r[better].is_empty()).collect();
    let published = directional
        .iter()
        .filter(|r| number(&r[rate]).is_some())
        .count();
    assert!(
        directional.len() >= 30 && published * 3 >= directional.len() * 2,
        "{published} of {} headline rates published",
        directional.len()
    );
    let mut verdicts = std::collections::BTreeSet::new();
    let mut signals = Vec::new();
    for (path, bytes) in tables {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.starts_with("compare_") && name.ends_with(".csv") {
            let (header, rows) = read_csv(bytes);
            let (level, versus) = (col(&header, "level"), col(&header, "versus_state"));
            for r in rows {
                verdicts.insert((r[level].clone(), r[versus].clone()));
            }
        }
        if name.starts_with("spc_") && name.ends_with(".csv") {
            let (header, rows) = read_csv(bytes);
            let (quarter, signal) = (col(&header, "quarter"), col(&header, "signals"));
            for r in rows.iter().filter(|r| !r[signal].is_empty()) {
                signals.push(format!("{name} {}: {}", r[quarter], r[signal]));
            }
        }
    }
    for (level, verdict) in [
        ("Partner", "better"),
        ("Partner", "worse"),
        ("MCO", "better"),
    ] {
        assert!(
            verdicts.contains(&(level.to_string(), verdict.to_string())),
            "no {level} {verdict} than the state: {verdicts:?}"
        );
    }
    assert!(!signals.is_empty(), "no control chart shows a signal");
}

#[test]
fn partner_scorecard_holds_only_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hhp");
    report(&["hhp", "HHP-05", "--no-pdf"], &out);
    let all = common::files(&out);
    assert_suppressed(&all);
    // HHP-05 is the test data's drifting partner (`hhq synth`): its engagement falls quarter by
    // quarter, which its control chart signals and its change over the year before shows.
    let (header, rows) = read_csv(&all[Path::new("tables/spc_HH-ENGAGE.csv")]);
    let signals = header.iter().position(|h| h == "signals").unwrap();
    assert!(
        rows.iter().any(|r| !r[signals].is_empty()),
        "HHP-05's engagement chart shows no signal: {rows:?}"
    );
    let (header, rows) = read_csv(&all[Path::new("tables/at_a_glance.csv")]);
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let engage = rows
        .iter()
        .find(|r| r[at("measure")] == "HH-ENGAGE")
        .unwrap();
    assert_eq!(engage[at("direction")], "worsened", "{engage:?}");
    // The worklist names members; each must be assigned to HHP-05 in the enrollment extract.
    let (header, rows) = read_csv(&all[Path::new("tables/worklist.csv")]);
    let member = header.iter().position(|h| h == "member_id").unwrap();
    assert!(
        !rows.is_empty(),
        "testdata has an open follow-up of an HHP-05 member in March 2026: the worklist is empty"
    );
    let assigned = assigned_members("HHP-05");
    for r in &rows {
        assert!(
            assigned.contains(&r[member]),
            "worklist member {} is not HHP-05's",
            r[member]
        );
    }
    // One row per event, each with its claim's facility and principal diagnosis, the measures it
    // is open in, and the member's MCO on the cut-off date, as the extracts have them.
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut events = std::collections::BTreeSet::new();
    for r in &rows {
        let claim = &r[col("event_id")];
        assert!(
            events.insert((r[member].clone(), claim.clone())),
            "event {claim} of {} listed twice",
            r[member]
        );
        let on_claim = testdata_rows(&format!(
            "SELECT DISTINCT billing_npi, principal_dx FROM claims WHERE claim_id = '{claim}'"
        ));
        assert!(
            on_claim
                .iter()
                .any(|c| c[0].as_deref() == Some(&r[col("facility_npi")][..])),
            "{claim}: facility {} is not its billing NPI ({on_claim:?})",
            r[col("facility_npi")]
        );
        assert!(
            on_claim
                .iter()
                .any(|c| c[1].as_deref() == Some(&r[col("diagnosis")][..])),
            "{claim}: diagnosis {} is not its principal diagnosis ({on_claim:?})",
            r[col("diagnosis")]
        );
        let open_in: Vec<&str> = r[col("measures")].split(", ").collect();
        assert!(
            !open_in.is_empty()
                && open_in
                    .iter()
                    .all(|m| ["FUH-HH", "FUM-HH", "FUA-HH", "HH-TCC"].contains(m)),
            "{claim}: open in {open_in:?}"
        );
        let mcos: Vec<Option<String>> = testdata_rows(&format!(
            "SELECT DISTINCT mco_id FROM enrollment WHERE member_id = '{}' AND mco_id IS NOT NULL \
             AND start_date <= DATE '2026-03-31' AND (end_date IS NULL OR end_date >= DATE '2026-03-31')",
            r[member]
        ))
        .into_iter()
        .map(|c| c[0].clone())
        .collect();
        let now = &r[col("current_mco")];
        assert!(
            mcos.iter().any(|m| m.as_deref() == Some(now)) || (mcos.is_empty() && now == "—"),
            "{}: MCO now {now}, enrolment says {mcos:?}",
            r[member]
        );
    }
    // No table of the scorecard names another partner.
    for (path, bytes) in &all {
        if path.extension().is_some_and(|e| e == "csv") {
            let text = std::str::from_utf8(bytes).unwrap();
            for other in (1..=8)
                .map(|i| format!("HHP-0{i}"))
                .filter(|h| h != "HHP-05")
            {
                assert!(!text.contains(&other), "{} names {other}", path.display());
            }
        }
    }
}

/// Members with any Health Home span at the partner, read from the extract with DataFusion.
/// Rows of a query over the committed test data's four extracts, as text.
fn testdata_rows(sql: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        for name in ["claims", "contacts", "members", "enrollment"] {
            let path = common::root().join(format!("testdata/{name}.parquet"));
            ctx.register_parquet(name, path.to_str().unwrap(), Default::default())
                .await
                .unwrap();
        }
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        hhq::results::text_rows(&batches).unwrap().1
    })
}

fn assigned_members(hhp: &str) -> std::collections::BTreeSet<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_parquet(
            "enrollment",
            common::root()
                .join("testdata/enrollment.parquet")
                .to_str()
                .unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let df = ctx
            .sql(&format!(
                "SELECT DISTINCT CAST(member_id AS VARCHAR) AS m FROM enrollment WHERE hhp_id = '{hhp}'"
            ))
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let (_, rows) = hhq::results::text_rows(&batches).unwrap();
        rows.into_iter().filter_map(|r| r[0].clone()).collect()
    })
}

#[test]
fn unknown_audience_is_an_error_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = hhq(&[
        "report",
        "mco",
        "MCO-Z",
        "--no-pdf",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no MCO `MCO-Z`") && err.contains("MCO-A"),
        "{err}"
    );
    assert!(
        !dir.path().join("x").exists(),
        "nothing is written on failure"
    );
}

#[test]
fn a_report_directory_is_replaced_whole_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // Not a report directory: refused, untouched.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = hhq(&[
        "report",
        "state",
        "--measure",
        "AMB-HH",
        "--no-pdf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not an hhq report directory"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );

    // A report, then another with other measures: the first one's files do not linger.
    std::fs::remove_dir_all(&out).unwrap();
    report(&["state", "--measure", "AMB-HH", "--no-pdf"], &out);
    assert!(out.join("charts/trend_AMB-HH.svg").is_file());
    report(&["state", "--measure", "HH-ENGAGE", "--no-pdf"], &out);
    assert!(out.join("charts/trend_HH-ENGAGE.svg").is_file());
    assert!(
        !out.join("charts/trend_AMB-HH.svg").exists(),
        "a stale chart was left"
    );
    // Nothing of the staging is left beside it.
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["r"]);
}

#[test]
fn a_report_names_its_programme_and_judges_rates_against_targets() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.csv");
    // Rates of about 47 ED visits per 1,000 member months and 60% of months engaged: the first
    // target far below (lower is better, so well short of it), the second far below too
    // (higher is better, so met).
    std::fs::write(
        &targets,
        "measure,component,target,source\nAMB-HH,ed_visits,5,state goal 2025\nHH-ENGAGE,engaged_months,1,national median\n",
    )
    .unwrap();
    let out = dir.path().join("mco");
    let t = targets.to_str().unwrap();
    let args = [
        "mco",
        "MCO-A",
        "--no-pdf",
        "--measure",
        "AMB-HH",
        "--measure",
        "HH-ENGAGE",
        "--programme",
        "KanCare Health Homes",
        "--state",
        "Kansas",
        "--targets",
        t,
    ];
    report(&args, &out);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("KanCare Health Homes quality report — MCO-A"));
    assert!(html.contains("KanCare Health Homes, Kansas"));
    for heading in [
        "Changes since the year before",
        "Against the state",
        "Against targets",
    ] {
        assert!(html.contains(heading), "no {heading:?}");
    }
    assert!(html.contains("against a target of 5.0 per 1,000 member months (state goal 2025): short of it, significantly"), "{html}");
    assert!(html.contains("against a target of 1.0% (national median): meets it"));
    // The manifest records the targets file by hash.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["options"]["targets"]["sha256"],
        hhq::digest::file_sha256(&targets).unwrap()
    );

    // A mistake in the file stops the report before anything is computed, at its line.
    std::fs::write(
        &targets,
        "measure,component,target\nAMB-HH,ed_visits,5\nAMB-HH,er_visits,5\n",
    )
    .unwrap();
    let mut all = vec!["report"];
    all.extend_from_slice(&args);
    let bad = dir.path().join("bad");
    all.extend_from_slice(&["--out", bad.to_str().unwrap()]);
    let o = hhq(&all);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("targets.csv:3:") && err.contains("er_visits"),
        "{err}"
    );
}
