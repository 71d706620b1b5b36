//! The report as content: a cover, sections of headings, paragraphs, tables and figures. Figures
//! are already suppressed and formatted; the HTML and PDF renderers only lay them out, and every
//! table (and the data behind every figure) is also written as CSV and Parquet.

use serde::Serialize;

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// `state`, `mco` or `hhp`.
    pub kind: String,
    pub title: String,
    pub subtitle: String,
    /// Facts on the cover: period, data cut-off, tool version, measure versions, audience.
    pub cover: Vec<(String, String)>,
    /// A data-quality caveat shown on the cover when the extracts failed checks and the policy
    /// says publish anyway.
    pub caveat: Option<String>,
    pub sections: Vec<Section>,
}

/// A part of the report with its own heading (and, in print, its own page).
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// An HTML id (`at-a-glance`, `measure-FUH-HH`, …).
    pub id: String,
    pub title: String,
    pub elements: Vec<Element>,
}

/// The content of a section, in reading order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Element {
    /// A sub-heading.
    Heading {
        text: String,
    },
    Paragraph {
        text: String,
    },
    /// A bulleted list.
    List {
        items: Vec<String>,
    },
    /// Label–value pairs (a measure's definition, a run's options).
    Facts {
        items: Vec<(String, String)>,
    },
    Table(Table),
    Figure(Figure),
    /// Preformatted text (the manifest).
    Code {
        text: String,
    },
}

/// A chart: the SVG (text as outlines) and the table of the data it draws. A chart with
/// nothing to draw has no SVG: the report shows its title and `desc` as one line instead.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// File stem under `charts/` and `tables/`.
    pub id: String,
    pub title: String,
    pub caption: String,
    /// What the chart shows in words (its text alternative), or why there is no chart.
    pub desc: String,
    /// The chart, its title and `desc` inside as `<title>` and `<desc>`; `None` when empty.
    pub svg: Option<String>,
    /// The same drawing as PNG; written to `charts/`, not rendered into HTML.
    #[serde(skip)]
    pub png: Vec<u8>,
    /// The figures behind the chart, written to `tables/<id>.csv|parquet`.
    #[serde(skip)]
    pub data: Table,
}

impl Figure {
    /// A figure from what [`crate::chart`] drew.
    pub fn new(
        id: String,
        title: String,
        caption: String,
        drawing: crate::chart::Drawing,
        data: Table,
    ) -> Figure {
        let (desc, svg, png) = match drawing {
            crate::chart::Drawing::Chart(r) => (r.desc, Some(r.svg), r.png),
            crate::chart::Drawing::Empty(why) => (why.to_string(), None, Vec::new()),
        };
        Figure {
            id,
            title,
            caption,
            desc,
            svg,
            png,
            data,
        }
    }
}

/// A table as published.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// File stem under `tables/`; also the HTML id.
    pub id: String,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    /// A footnote (e.g. what a suppressed cell means).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Machine name, used in CSV and Parquet.
    pub name: String,
    /// Heading as people read it.
    pub label: String,
    /// Numbers are right-aligned and typed Float64 in Parquet.
    pub numeric: bool,
}

impl Column {
    pub fn text(name: &str, label: &str) -> Column {
        Column {
            name: name.into(),
            label: label.into(),
            numeric: false,
        }
    }

    pub fn number(name: &str, label: &str) -> Column {
        Column {
            name: name.into(),
            label: label.into(),
            numeric: true,
        }
    }
}

/// What a cell hidden for a small count shows, in every output: CMS's "data suppressed".
pub const SUPPRESSED: &str = "DS";
/// What a rate hidden for a small denominator (and its numerator) shows.
pub const SMALL_DENOMINATOR: &str = "SD";

/// One cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cell {
    Text {
        text: String,
    },
    /// A figure and how it is shown (`45.8`, `1,204`).
    Number {
        value: f64,
        text: String,
    },
    /// Hidden by the small-cell rule: `marker` is what it reads (`DS`, `SD`), `reason` the
    /// published reason (which never tells a small count from the cell hidden to protect it).
    Suppressed {
        marker: String,
        reason: String,
    },
    /// Nothing to show (no denominator, not applicable).
    Empty,
}

/// `x` rounded half away from zero to `decimals` places: what a table shows of it.
pub fn round(x: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text { text: s.into() }
    }

    /// A count, with thousands separators.
    pub fn count(x: f64) -> Cell {
        Cell::Number {
            value: x,
            text: thousands(x),
        }
    }

    /// A rate or ratio with `decimals` places. The value is rounded too, so the typed tables
    /// carry what the report shows (no more precision, nothing a sum's last bit could change).
    pub fn decimal(x: f64, decimals: usize) -> Cell {
        let mut value = round(x, decimals);
        if value == 0.0 {
            // No "-0.0".
            value = 0.0;
        }
        Cell::Number {
            value,
            text: format!("{value:.decimals$}"),
        }
    }

    pub fn suppressed(why: crate::suppress::Reason) -> Cell {
        Cell::Suppressed {
            marker: why.marker().into(),
            reason: why.name().into(),
        }
    }

    /// How the cell reads in HTML, PDF and CSV.
    pub fn display(&self) -> &str {
        match self {
            Cell::Text { text } | Cell::Number { text, .. } => text,
            Cell::Suppressed { marker, .. } => marker,
            Cell::Empty => "",
        }
    }
}

/// `1234567` → `1,234,567`; fractional counts (ratios' denominators) keep one decimal.
pub fn thousands(x: f64) -> String {
    if x.fract() != 0.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

impl Document {
    /// Every table of the report, those behind figures included, in reading order.
    pub fn tables(&self) -> Vec<&Table> {
        let mut out = Vec::new();
        for s in &self.sections {
            for b in &s.elements {
                match b {
                    Element::Table(t) => out.push(t),
                    Element::Figure(f) => out.push(&f.data),
                    _ => {}
                }
            }
        }
        out
    }

    /// Every figure, in reading order.
    pub fn figures(&self) -> Vec<&Figure> {
        self.sections
            .iter()
            .flat_map(|s| &s.elements)
            .filter_map(|b| match b {
                Element::Figure(f) => Some(f),
                _ => None,
            })
            .collect()
    }
}

/// Decimal places a rate in this unit is shown with.
pub fn decimals(unit: crate::measure::Unit) -> usize {
    match unit {
        crate::measure::Unit::Ratio | crate::measure::Unit::DollarsPerMemberMonth => 2,
        crate::measure::Unit::Count => 0,
        _ => 1,
    }
}

/// A published row's rate as a cell: the figure, its marker when hidden, empty when none.
pub fn rate_cell(p: Option<&crate::suppress::PublishedRow>) -> Cell {
    match p.map(|p| &p.rate) {
        Some(Ok(Some(r))) => Cell::decimal(*r, decimals(p.expect("some").row.unit)),
        Some(Err(why)) => Cell::suppressed(*why),
        _ => Cell::Empty,
    }
}

/// A published count as a cell.
pub fn count_cell(v: Option<&std::result::Result<f64, crate::suppress::Reason>>) -> Cell {
    match v {
        Some(Ok(x)) => Cell::count(*x),
        Some(Err(why)) => Cell::suppressed(*why),
        None => Cell::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-4500.0), "-4,500");
        assert_eq!(thousands(5.09), "5.1");
    }

    #[test]
    fn suppressed_cells_read_ds_everywhere() {
        use crate::suppress::Reason;
        assert_eq!(Cell::suppressed(Reason::SmallCell).display(), "DS");
        assert_eq!(Cell::suppressed(Reason::Complementary).display(), "DS");
        assert_eq!(Cell::suppressed(Reason::SmallDenominator).display(), "SD");
        assert_eq!(Cell::count(12.0).display(), "12");
        assert_eq!(Cell::decimal(45.78, 1).display(), "45.8");
        assert_eq!(Cell::Empty.display(), "");
        assert_eq!(Cell::decimal(-0.04, 1).display(), "0.0");
        assert_eq!(
            Cell::decimal(1.0 / 3.0, 2),
            Cell::Number {
                value: 0.33,
                text: "0.33".into()
            }
        );
    }
}
