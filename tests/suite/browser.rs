//! The reports as people see them: each of `hhq report state|mco|hhp` on the committed test data,
//! opened in headless Chromium. The screenshot must not be blank; the page must carry the
//! report's headings, one inline SVG per chart and every unsuppressed rate of the at-a-glance
//! table, and pass the axe-core accessibility checker (WCAG 2.1 A and AA, and axe's best
//! practices) with no violation; every page of the PDF must render (pdftoppm) and have ink on
//! it, no two words of the PDF's text may overlap, and no page may hold only a remnant of the
//! page before (a table's last rows or its note, under a quarter of a page and no heading).
//!
//! Chromium, poppler-utils and axe-core are installed by `scripts/install-browser` (apt and npm);
//! the tests install nothing themselves: a missing tool fails them, saying what to run. They are
//! left out of `cargo test` (ignored) and run by `scripts/test-browser` and by CI. On a failure the
//! report and what the test made of it (screenshot, DOM, page images) are kept in
//! `<target>/browser-test/<report>/`.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;

/// Chromium's flags: headless, and none of its background traffic (on a closed network it stalls
/// waiting for it).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
];
/// axe-core as `scripts/install-browser` installs it (the version pinned in
/// `scripts/axe/package-lock.json`).
const AXE: &str = "scripts/axe/node_modules/axe-core/axe.min.js";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
const REPORT_TIMEOUT: Duration = Duration::from_secs(900);

/// What one report must show.
struct Expect {
    /// The report's name, also its directory under `<target>/browser-test/`.
    name: &'static str,
    /// `hhq` arguments after `report`, before `--data` and `--out`.
    args: &'static [&'static str],
    /// Text some h1 contains.
    h1: &'static str,
    /// Texts h2 headings contain (ignoring case), one heading each.
    h2: &'static [&'static str],
    /// Whether `tables/at_a_glance.csv` must exist, with a `measure-<ID>` section per measure.
    glance_sections: bool,
    /// The only HHP id the element `#worklist` may name.
    worklist_of: Option<&'static str>,
}

#[test]
#[ignore = "needs Chromium, poppler and axe-core: scripts/test-browser"]
fn state_report_in_browser() {
    check_report(&Expect {
        name: "state",
        args: &["state"],
        h1: "Health Home",
        h2: &["At a glance", "Data quality", "Methods"],
        glance_sections: true,
        worklist_of: None,
    });
}

#[test]
#[ignore = "needs Chromium, poppler and axe-core: scripts/test-browser"]
fn mco_report_in_browser() {
    check_report(&Expect {
        name: "mco",
        args: &["mco", "MCO-A"],
        h1: "MCO-A",
        h2: &["At a glance", "Data quality", "Methods"],
        glance_sections: false,
        worklist_of: None,
    });
}

#[test]
#[ignore = "needs Chromium, poppler and axe-core: scripts/test-browser"]
fn hhp_scorecard_in_browser() {
    check_report(&Expect {
        name: "hhp",
        args: &["hhp", "HHP-05"],
        h1: "HHP-05",
        h2: &["At a glance", "Worklist", "Data quality", "Methods"],
        glance_sections: false,
        worklist_of: Some("HHP-05"),
    });
}

/// Builds one report, checks it, and on failure keeps the artifacts and panics with every problem.
fn check_report(expect: &Expect) {
    let tools = tools();
    let kept = artifacts_dir().join(expect.name);
    let _ = fs::remove_dir_all(&kept);
    let tmp = tempfile::tempdir().unwrap();
    let (out, work) = (tmp.path().join("out"), tmp.path().join("check"));
    fs::create_dir_all(&work).unwrap();

    let problems = match build_report(expect, &out, &work) {
        Ok(()) => problems_of(expect, tools, &out, &work, tmp.path()),
        Err(e) => vec![e],
    };
    if !problems.is_empty() {
        copy_dir(&out, &kept.join("out"));
        copy_dir(&work, &kept.join("check"));
        let count = problems.len();
        // Name the kept copies, not the temporary files.
        let problems = problems.join("\n  - ").replace(
            &tmp.path().display().to_string(),
            &kept.display().to_string(),
        );
        panic!(
            "{} report: {count} problem(s):\n  - {problems}\nartifacts kept in {}",
            expect.name,
            kept.display()
        );
    }
}

fn build_report(expect: &Expect, out: &Path, work: &Path) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hhq"));
    cmd.arg("report").args(expect.args);
    cmd.args(["--data", "testdata", "--out"]).arg(out);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    run(cmd, &work.join("hhq"), REPORT_TIMEOUT)?;
    for file in ["report.html", "report.pdf", "manifest.json"] {
        if !out.join(file).is_file() {
            return Err(format!("hhq report wrote no {file} in {}", out.display()));
        }
    }
    Ok(())
}

/// Every check on a built report; an empty list when it passes.
fn problems_of(expect: &Expect, tools: &Tools, out: &Path, work: &Path, tmp: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let html = out.join("report.html");

    let shot = work.join("screenshot.png");
    let mut chrome = chromium(tools, tmp, "screenshot");
    chrome.arg("--window-size=1280,2000");
    chrome.arg(format!("--screenshot={}", shot.display()));
    chrome.arg(file_url(&html));
    let shot_result = run(chrome, &work.join("chromium-screenshot"), BROWSER_TIMEOUT)
        .and_then(|_| decode_png(&shot))
        .and_then(|image| blank_check(&image, 0.01, 8));
    if let Err(e) = shot_result {
        problems.push(format!("screenshot {}: {e}", shot.display()));
    }

    let dom_file = work.join("dom.html");
    let mut chrome = chromium(tools, tmp, "dom");
    chrome.arg("--dump-dom").arg(file_url(&html));
    match run(chrome, &work.join("dom"), BROWSER_TIMEOUT) {
        Ok(()) => {
            fs::rename(work.join("dom.stdout"), &dom_file).unwrap();
            let dom = fs::read_to_string(&dom_file).unwrap_or_default();
            problems.extend(dom_problems(expect, out, &dom));
        }
        Err(e) => problems.push(format!("dumping the DOM: {e}")),
    }

    problems.extend(accessibility_problems(tools, &html, work, tmp));
    problems.extend(pdf_problems(tools, &out.join("report.pdf"), work));
    problems.extend(pdf_text_problems(tools, out, work));
    problems.extend(pdf_layout_problems(tools, out, work));
    problems
}

/// axe-core's violations on the HTML report: the checker and a runner are put at the end of a
/// copy of the page, which Chromium loads and dumps once the run has written its findings into
/// the DOM.
fn accessibility_problems(tools: &Tools, html: &Path, work: &Path, tmp: &Path) -> Vec<String> {
    const RUNNER: &str = r#"
axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}, resultTypes: ['violations']})
  .then(function (r) {
    return r.violations.map(function (v) {
      return v.id + ' (' + v.impact + ', ' + v.nodes.length + ' elements, e.g. ' +
        v.nodes.slice(0, 3).map(function (n) { return n.target.join(' '); }).join(' | ') + '): ' + v.help;
    }).join('\n') || 'none';
  }, function (e) { return 'axe failed: ' + e; })
  .then(function (text) {
    var out = document.createElement('pre');
    out.id = 'axe-violations';
    out.textContent = text;
    document.body.appendChild(out);
  });
"#;
    let Ok(page) = fs::read_to_string(html) else {
        return vec![format!("cannot read {}", html.display())];
    };
    let axe = match fs::read_to_string(&tools.axe) {
        Ok(axe) => axe,
        Err(e) => return vec![format!("cannot read {}: {e}", tools.axe.display())],
    };
    let at = page.rfind("</body>").unwrap_or(page.len());
    let checked = work.join("axe.html");
    fs::write(
        &checked,
        format!(
            "{}<script>{axe}</script><script>{RUNNER}</script>{}",
            &page[..at],
            &page[at..]
        ),
    )
    .unwrap();
    let mut chrome = chromium(tools, tmp, "axe");
    chrome
        .arg("--virtual-time-budget=60000")
        .arg("--dump-dom")
        .arg(file_url(&checked));
    if let Err(e) = run(chrome, &work.join("axe"), BROWSER_TIMEOUT) {
        return vec![format!("running axe-core: {e}")];
    }
    let dom = fs::read_to_string(work.join("axe.stdout")).unwrap_or_default();
    let found = Regex::new(r#"(?s)<pre id="axe-violations">(.*?)</pre>"#)
        .unwrap()
        .captures(&dom)
        .map(|c| c[1].to_string());
    match found.as_deref() {
        None => vec!["axe-core wrote no findings into the page (did it run?)".into()],
        Some("none") => Vec::new(),
        Some(text) => text
            .lines()
            .map(|l| {
                format!(
                    "accessibility: {}",
                    l.replace("&gt;", ">").replace("&amp;", "&")
                )
            })
            .collect(),
    }
}

/// One word of the PDF's text and its box, in points.
struct Word {
    text: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// Words of the PDF whose boxes overlap (text drawn over text, e.g. a header run into the next
/// column), and pages holding only a remnant: below a quarter of the page's body filled, with no
/// heading on it, and not starting with the title of a table or figure (a table moved whole to
/// a page of its own is no remnant; its last rows or its note alone are).
fn pdf_layout_problems(tools: &Tools, out: &Path, work: &Path) -> Vec<String> {
    let pdf = &out.join("report.pdf");
    let html = fs::read_to_string(out.join("report.html")).unwrap_or_default();
    let normal = |s: &str| -> String {
        s.replace('\u{200b}', "")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let titles: Vec<String> = Regex::new(
        r#"(?s)<caption>(.*?)</caption>|<figcaption><strong>(.*?)\.</strong>|<p class="no-figure"[^>]*><strong>(.*?)</strong>"#,
    )
    .unwrap()
    .captures_iter(&html)
    .filter_map(|c| c.iter().skip(1).flatten().next().map(|m| normal(m.as_str())))
    .filter(|t| !t.is_empty())
    .collect();
    let mut text = Command::new(&tools.pdftotext);
    text.arg("-bbox").arg(pdf).arg("-");
    if let Err(e) = run(text, &work.join("pdftotext-bbox"), BROWSER_TIMEOUT) {
        return vec![format!("pdftotext -bbox: {e}")];
    }
    let xhtml = fs::read_to_string(work.join("pdftotext-bbox.stdout")).unwrap_or_default();
    let page_re = Regex::new(r#"<page width="([\d.]+)" height="([\d.]+)">"#).unwrap();
    let word_re = Regex::new(
        r#"<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>"#,
    )
    .unwrap();
    let starts: Vec<(usize, f64)> = page_re
        .captures_iter(&xhtml)
        .map(|c| (c.get(0).unwrap().start(), c[2].parse().unwrap()))
        .collect();
    if starts.is_empty() {
        return vec![format!("{}: pdftotext -bbox found no pages", pdf.display())];
    }
    let mut problems = Vec::new();
    for (i, &(start, height)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(xhtml.len(), |s| s.0);
        let words: Vec<Word> = word_re
            .captures_iter(&xhtml[start..end])
            .map(|c| Word {
                x0: c[1].parse().unwrap(),
                y0: c[2].parse().unwrap(),
                x1: c[3].parse().unwrap(),
                y1: c[4].parse().unwrap(),
                text: c[5].to_string(),
            })
            .collect();
        let page = i + 1;
        for (a, w) in words.iter().enumerate() {
            for v in &words[a + 1..] {
                let dx = w.x1.min(v.x1) - w.x0.max(v.x0);
                let dy = w.y1.min(v.y1) - w.y0.max(v.y0);
                if dx > 0.5 && dy > 0.5 {
                    problems.push(format!(
                        "PDF page {page}: {:?} and {:?} overlap",
                        w.text, v.text
                    ));
                }
            }
        }
        // The body: between the 2 cm margins (57 pt), the footer below them left out.
        let margin = 57.0;
        let body: Vec<&Word> = words.iter().filter(|w| w.y0 < height - margin).collect();
        let lowest = body.iter().map(|w| w.y1).fold(margin, f64::max);
        let filled = (lowest - margin) / (height - 2.0 * margin);
        // Headings are set at 12 pt and more, body text and tables at 10 pt and less.
        let heading = body.iter().any(|w| w.y1 - w.y0 > 13.0);
        let start: Vec<&str> = body.iter().take(12).map(|w| w.text.as_str()).collect();
        let opening = normal(&start.join(" "));
        let titled = titles.iter().any(|t| {
            let n = t.len().min(opening.len()).min(40);
            n >= 10 && t.get(..n).is_some_and(|p| opening.starts_with(p))
        });
        if page > 1 && !heading && !titled && filled < 0.25 {
            problems.push(format!(
                "PDF page {page} holds only a remnant ({:.0}% of the page, no heading): {}",
                filled * 100.0,
                start.join(" ")
            ));
        }
    }
    problems
}

/// The PDF carries the same published figures as the tables: every shown rate of the
/// at-a-glance table is in its text, and at least as many `DS` marks as that table has.
fn pdf_text_problems(tools: &Tools, out: &Path, work: &Path) -> Vec<String> {
    let mut text = Command::new(&tools.pdftotext);
    text.arg("-layout").arg(out.join("report.pdf")).arg("-");
    if let Err(e) = run(text, &work.join("pdftotext"), BROWSER_TIMEOUT) {
        return vec![format!("pdftotext: {e}")];
    }
    let text = fs::read_to_string(work.join("pdftotext.stdout")).unwrap_or_default();
    let glance = out.join("tables/at_a_glance.csv");
    let Ok(csv) = fs::read_to_string(&glance) else {
        return vec![format!("no {}", glance.display())];
    };
    let mut problems = Vec::new();
    let rows = at_a_glance(&glance).unwrap_or_default();
    for (id, rate) in &rows {
        if rate.parse::<f64>().is_ok() && !contains_number(&text, rate) {
            problems.push(format!("{id}'s rate {rate} is not in the PDF's text"));
        }
    }
    let ds_csv = csv.split([',', '\n']).filter(|c| c.trim() == "DS").count();
    let ds_pdf = text.split_whitespace().filter(|w| *w == "DS").count();
    if ds_pdf < ds_csv {
        problems.push(format!(
            "the PDF shows {ds_pdf} DS marks, the at-a-glance table alone has {ds_csv}"
        ));
    }
    problems
}

fn dom_problems(expect: &Expect, out: &Path, dom: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if dom.trim().is_empty() {
        return vec!["the DOM Chromium dumped is empty".into()];
    }
    let h1s = element_texts(dom, "h1");
    if !h1s.iter().any(|h| h.contains(expect.h1)) {
        problems.push(format!("no h1 contains {:?}; h1s: {h1s:?}", expect.h1));
    }
    let h2s = element_texts(dom, "h2");
    for want in expect.h2 {
        if !h2s
            .iter()
            .any(|h| h.to_lowercase().contains(&want.to_lowercase()))
        {
            problems.push(format!("no h2 contains {want:?}; h2s: {h2s:?}"));
        }
    }

    let charts = files_with_extension(&out.join("charts"), "svg");
    let svgs = Regex::new(r"(?i)<svg\b").unwrap().find_iter(dom).count();
    if svgs < charts.len() {
        problems.push(format!(
            "{svgs} inline <svg> in the page, fewer than the {} charts in charts/*.svg",
            charts.len()
        ));
    }
    if let Some(src) = external_reference(dom) {
        problems.push(format!("the page loads an external resource: {src}"));
    }

    let glance = out.join("tables/at_a_glance.csv");
    if glance.is_file() {
        match at_a_glance(&glance) {
            Ok(rows) => problems.extend(glance_problems(expect, dom, &rows)),
            Err(e) => problems.push(e),
        }
    } else if expect.glance_sections {
        problems.push(format!("no {}", glance.display()));
    }

    if let Some(own) = expect.worklist_of {
        match element_by_id(dom, "worklist") {
            None => problems.push("no element with id \"worklist\"".into()),
            Some(list) => {
                let others: BTreeSet<&str> = Regex::new(r"\bHHP-[0-9A-Za-z]+\b")
                    .unwrap()
                    .find_iter(list)
                    .map(|m| m.as_str())
                    .filter(|id| *id != own)
                    .collect();
                if !others.is_empty() {
                    problems.push(format!("{own}'s worklist names other HHPs: {others:?}"));
                }
            }
        }
    }
    problems
}

/// Sections per measure (when expected) and every unsuppressed rate in the page's text.
fn glance_problems(expect: &Expect, dom: &str, rows: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    if expect.glance_sections {
        if rows.is_empty() {
            problems.push("tables/at_a_glance.csv lists no measures".into());
        }
        let ids: BTreeSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        for id in ids {
            if !dom.contains(&format!("id=\"measure-{id}\"")) {
                problems.push(format!("no section with id \"measure-{id}\""));
            }
        }
    }
    let text = visible_text(dom);
    for (id, rate) in rows {
        if rate.parse::<f64>().is_ok() && !contains_number(&text, rate) {
            problems.push(format!(
                "{id}'s rate {rate} (at_a_glance.csv) is not in the page text"
            ));
        }
    }
    problems
}

/// The PDF has at least two pages, each renders, the first has content and the rest some ink.
fn pdf_problems(tools: &Tools, pdf: &Path, work: &Path) -> Vec<String> {
    let mut info = Command::new(&tools.pdfinfo);
    info.arg(pdf);
    let pages = run(info, &work.join("pdfinfo"), BROWSER_TIMEOUT).and_then(|()| {
        let info = fs::read_to_string(work.join("pdfinfo.stdout")).unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("pdfinfo gives no page count:\n{info}"))
    });
    let pages = match pages {
        Ok(n) if n >= 2 => n,
        Ok(n) => {
            return vec![format!(
                "{}: {n} page(s), expected at least 2",
                pdf.display()
            )];
        }
        Err(e) => return vec![format!("{}: {e}", pdf.display())],
    };

    let dir = work.join("pages");
    fs::create_dir_all(&dir).unwrap();
    let mut render = Command::new(&tools.pdftoppm);
    render
        .args(["-r", "40", "-png"])
        .arg(pdf)
        .arg(dir.join("page"));
    if let Err(e) = run(render, &work.join("pdftoppm"), BROWSER_TIMEOUT) {
        return vec![format!("{}: rendering: {e}", pdf.display())];
    }
    let images = files_with_extension(&dir, "png");
    if images.len() != pages {
        return vec![format!(
            "{}: {pages} pages but pdftoppm rendered {} in {}",
            pdf.display(),
            images.len(),
            dir.display()
        )];
    }
    let mut problems = Vec::new();
    for (i, image) in images.iter().enumerate() {
        // The first page must have real content; later ones at least a few marks.
        let (share, colours) = if i == 0 { (0.01, 8) } else { (0.0, 2) };
        if let Err(e) = decode_png(image).and_then(|px| blank_check(&px, share, colours)) {
            problems.push(format!("PDF page {} ({}): {e}", i + 1, image.display()));
        }
    }
    problems
}

// ---- the tools ----

struct Tools {
    chromium: PathBuf,
    pdftoppm: PathBuf,
    pdfinfo: PathBuf,
    pdftotext: PathBuf,
    /// axe-core's script, installed by npm under `scripts/axe/`.
    axe: PathBuf,
}

/// The browser and poppler's tools (once per test binary). Panics saying what to install when one
/// is missing.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(find_tools).as_ref().unwrap_or_else(|e| {
        panic!("no browser for the report tests: {e}; run scripts/install-browser (Chromium and poppler from apt, axe-core from npm)")
    })
}

fn find_tools() -> Result<Tools, String> {
    let chromium = match std::env::var_os("HHQ_CHROMIUM") {
        Some(given) => on_path(&given.to_string_lossy()),
        None => [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .into_iter()
        .find_map(on_path),
    };
    let missing = |what: &str| format!("{what} not found");
    Ok(Tools {
        chromium: chromium.ok_or_else(|| missing("chromium (or $HHQ_CHROMIUM)"))?,
        pdftoppm: on_path("pdftoppm").ok_or_else(|| missing("pdftoppm"))?,
        pdfinfo: on_path("pdfinfo").ok_or_else(|| missing("pdfinfo"))?,
        pdftotext: on_path("pdftotext").ok_or_else(|| missing("pdftotext"))?,
        axe: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(AXE))
            .filter(|p| p.is_file())
            .ok_or_else(|| missing(AXE))?,
    })
}

/// An executable by path, or by name on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let given = Path::new(name);
    if given.components().count() > 1 {
        return given.is_file().then(|| given.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium with its flags and a fresh profile.
fn chromium(tools: &Tools, tmp: &Path, profile: &str) -> Command {
    let mut cmd = Command::new(&tools.chromium);
    cmd.args(CHROMIUM_FLAGS);
    cmd.arg(format!(
        "--user-data-dir={}",
        tmp.join("profiles").join(profile).display()
    ));
    cmd
}

/// Runs a command with its output in `<log>.stdout` and `<log>.stderr`, killing it after
/// `timeout`. An error names the command, its status and the tail of stderr.
fn run(mut cmd: Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let (out, err) = (log.with_extension("stdout"), log.with_extension("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{shown} still running after {timeout:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.success() {
        return Ok(());
    }
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{shown} failed ({status}):\n{}", tail.join("\n")))
}

// ---- images ----

/// Decoded pixels, each packed into a `u32` (8-bit samples: grey, grey+alpha, RGB or RGBA).
fn decode_png(path: &Path) -> Result<Vec<u32>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let (width, height) = (reader.info().width, reader.info().height);
    // Large enough for any 8-bit colour type after normalisation.
    let mut buf = vec![0; width as usize * height as usize * 4];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("cannot decode: {e}"))?;
    let samples = frame.color_type.samples();
    let data = &buf[..frame.buffer_size()];
    let row_bytes = frame.width as usize * samples;
    Ok(data
        .chunks(frame.line_size)
        .flat_map(|line| line[..row_bytes].chunks(samples))
        .map(|px| px.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)))
        .collect())
}

/// An image is blank unless more than `share` of its pixels (and at least 10) differ from the
/// commonest colour, in at least `colours` distinct colours.
fn blank_check(pixels: &[u32], share: f64, colours: usize) -> Result<(), String> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &px in pixels {
        *counts.entry(px).or_default() += 1;
    }
    let commonest = counts.values().copied().max().unwrap_or(0);
    let differing = pixels.len() - commonest;
    let wanted = ((pixels.len() as f64 * share).ceil() as usize).max(10);
    if differing < wanted || counts.len() < colours {
        return Err(format!(
            "blank: {differing} of {} pixels differ from the commonest colour (want {wanted}), \
             {} distinct colours (want {colours})",
            pixels.len(),
            counts.len()
        ));
    }
    Ok(())
}

// ---- the page ----

/// The text of every `<tag>` element, tags stripped, entities decoded, whitespace collapsed.
fn element_texts(dom: &str, tag: &str) -> Vec<String> {
    Regex::new(&format!(r"(?is)<{tag}\b[^>]*>(.*?)</{tag}\s*>"))
        .unwrap()
        .captures_iter(dom)
        .map(|c| visible_text(&c[1]))
        .collect()
}

/// The text a reader sees: no tags, styles or scripts; entities decoded; whitespace collapsed.
fn visible_text(html: &str) -> String {
    let hidden = Regex::new(r"(?is)<(style|script)\b.*?</(style|script)\s*>").unwrap();
    let tags = Regex::new(r"(?s)<[^>]*>").unwrap();
    let shown = hidden.replace_all(html, " ");
    let text = tags.replace_all(&shown, " ");
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .replace('\u{a0}', " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `number` occurs in `text` as a whole number (45.8 in "45.8%", not in "145.8" or
/// "45.83").
fn contains_number(text: &str, number: &str) -> bool {
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + number.len()..].chars();
        let (next, next2) = (after.next(), after.next());
        let joined_before = digit(before) || before == Some('.');
        let joined_after = digit(next) || (next == Some('.') && digit(next2));
        !(joined_before || joined_after)
    })
}

/// The markup of the element with this id, from its start tag to its matching end tag.
fn element_by_id<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let name: String = dom[start + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let tags = Regex::new(&format!(r"(?i)<(/?){name}\b[^>]*>")).unwrap();
    let mut depth = 0usize;
    for tag in tags.captures_iter(&dom[start..]) {
        if tag[1].is_empty() {
            depth += 1;
        } else {
            depth -= 1;
            if depth == 0 {
                return Some(&dom[start..start + tag.get(0).unwrap().end()]);
            }
        }
    }
    Some(&dom[start..])
}

/// The first `src` or stylesheet `href` that is not inline (`data:`) or a fragment.
fn external_reference(dom: &str) -> Option<String> {
    let refs = Regex::new(r#"(?i)<(?:img|script|iframe|source|link|image|use)\b[^>]*?\s(?:src|href|xlink:href)="([^"]*)""#).unwrap();
    let css = Regex::new(r#"(?i)url\(\s*['"]?((?:https?:|file:|//)[^'")]*)"#).unwrap();
    refs.captures_iter(dom)
        .chain(css.captures_iter(dom))
        .map(|c| c[1].to_string())
        .find(|src| !src.starts_with("data:") && !src.starts_with('#'))
}

/// `(measure, rate)` per row of `tables/at_a_glance.csv`.
fn at_a_glance(path: &Path) -> Result<Vec<(String, String)>, String> {
    let fail = |e: csv::Error| format!("{}: {e}", path.display());
    let mut reader = csv::Reader::from_path(path).map_err(fail)?;
    let headers = reader.headers().map_err(fail)?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no column {name:?} in {headers:?}", path.display()))
    };
    let (measure, rate) = (column("measure")?, column("rate")?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(fail)?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim().to_string();
        rows.push((cell(measure), cell(rate)));
    }
    Ok(rows)
}

// ---- files ----

/// `file://` URL of an absolute path, with the characters a URL cannot carry escaped.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for c in path.display().to_string().chars() {
        match c {
            ' ' | '#' | '%' | '?' | '"' => url.push_str(&format!("%{:02X}", c as u32)),
            c => url.push(c),
        }
    }
    url
}

/// The files in `dir` with this extension, sorted; none when `dir` is missing.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// `<target>/browser-test`, where failing reports are kept.
fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-test")
}

fn copy_dir(from: &Path, to: &Path) {
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    fs::create_dir_all(to).unwrap();
    for entry in entries.flatten() {
        let (path, dest) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            let _ = fs::copy(&path, &dest);
        }
    }
}
