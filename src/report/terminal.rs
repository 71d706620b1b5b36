//! Terminal output: the result table (`hhq run`) and the deck cases (`hhq test`) as text.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::results::ResultRow;

/// Format a rate for people: one decimal, as CMS publishes; a dash when there is no denominator.
pub fn display_rate(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.1}"))
        .unwrap_or_else(|| "—".into())
}

/// A table of result rows, one line per measure, component and stratum.
pub fn table(rows: &[ResultRow]) -> Table {
    rows_table(rows, true)
}

/// `hhq run`'s summary: each component's total (numerator, denominator, rate), one line each.
pub fn totals_table(rows: &[ResultRow]) -> Table {
    rows_table(rows, false)
}

/// Result rows as a table, with or without their stratifier and stratum columns.
fn rows_table(rows: &[ResultRow], strata: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["measure", "component"];
    if strata {
        header.extend(["stratifier", "stratum"]);
    }
    header.extend(["numerator", "denominator", "rate", "unit"]);
    t.set_header(header);
    use crate::escape::terminal;
    for r in rows {
        // Strata are values from the extracts (MCO and partner ids): shown, never obeyed.
        let mut cells = vec![
            Cell::new(terminal(&r.measure)),
            Cell::new(terminal(&r.component)),
        ];
        if strata {
            cells.extend([
                Cell::new(r.stratifier.name()),
                Cell::new(terminal(&r.stratum)),
            ]);
        }
        cells.extend([
            Cell::new(r.numerator).set_alignment(CellAlignment::Right),
            Cell::new(r.denominator).set_alignment(CellAlignment::Right),
            Cell::new(display_rate(r.rate)).set_alignment(CellAlignment::Right),
            Cell::new(r.unit.name()),
        ]);
        t.add_row(cells);
    }
    t
}

/// Per measure (or cohort), in name order: its cases passed and failed, one line each.
pub fn deck_tally(cases: &[crate::decks::CaseResult]) -> String {
    let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for c in cases {
        let e = by.entry(c.measure.as_str()).or_default();
        if c.failure.is_some() {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    let width = by.keys().map(|k| k.len()).max().unwrap_or(0);
    by.iter()
        .map(|(m, (pass, fail))| {
            let failed = if *fail > 0 {
                format!(", {fail} FAILED")
            } else {
                String::new()
            };
            format!("{m:width$}  {pass} passed{failed}\n")
        })
        .collect()
}

/// `hhq test`: one line per deck case, pass or fail, with what differed.
pub fn deck_table(cases: &[crate::decks::CaseResult]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["measure", "deck", "case", "result"]);
    for c in cases {
        t.add_row(vec![
            Cell::new(&c.measure),
            Cell::new(format!(
                "{}:{}",
                c.deck
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                c.line
            )),
            Cell::new(&c.case),
            Cell::new(match &c.failure {
                None => "pass".to_string(),
                Some(f) => format!("FAIL: {f}"),
            }),
        ]);
    }
    t
}

/// What `hhq run` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// Each component's total: one line each
    Summary,
    /// Every stratum of every component, as a table
    Table,
    /// Every row as summary.csv has them
    Csv,
    /// Every row as a JSON array of objects
    Json,
}

/// The result rows as `hhq run` prints them on standard output.
pub fn results_text(rows: &[ResultRow], format: RunFormat) -> crate::error::Result<String> {
    match format {
        RunFormat::Summary => {
            let totals: Vec<_> = rows
                .iter()
                .filter(|r| r.stratifier == crate::results::Grouping::Total)
                .cloned()
                .collect();
            Ok(format!("{}\n", totals_table(&totals)))
        }
        RunFormat::Table => Ok(format!("{}\n", table(rows))),
        RunFormat::Csv => Ok(crate::results::to_csv(rows)),
        RunFormat::Json => {
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "measure": r.measure,
                        "component": r.component,
                        "period_start": r.period_start.to_string(),
                        "period_end": r.period_end.to_string(),
                        "stratifier": r.stratifier.name(),
                        "stratum": r.stratum,
                        "numerator": r.numerator,
                        "denominator": r.denominator,
                        "rate": r.rate,
                        "unit": r.unit.name(),
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&json)
                .map_err(|e| crate::error::Error::Failed(format!("results as JSON: {e}")))?;
            Ok(format!("{text}\n"))
        }
    }
}
