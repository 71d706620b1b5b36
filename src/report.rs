//! Reports: for now, the readable terminal table of a run's results.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::results::ResultRow;

/// Format a rate for people: one decimal, as CMS publishes; a dash when there is no denominator.
pub fn display_rate(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.1}"))
        .unwrap_or_else(|| "—".into())
}

/// A table of result rows, one line per measure, component and stratum.
pub fn table(rows: &[ResultRow]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "measure",
        "component",
        "stratifier",
        "stratum",
        "numerator",
        "denominator",
        "rate",
        "unit",
    ]);
    for r in rows {
        t.add_row(vec![
            Cell::new(&r.measure),
            Cell::new(&r.component),
            Cell::new(&r.stratifier),
            Cell::new(&r.stratum),
            Cell::new(r.numerator).set_alignment(CellAlignment::Right),
            Cell::new(r.denominator).set_alignment(CellAlignment::Right),
            Cell::new(display_rate(r.rate)).set_alignment(CellAlignment::Right),
            Cell::new(&r.unit),
        ]);
    }
    t
}
