//! The PDF report: a [`Document`] laid out by typst, used as a library. Typst does what a PDF
//! writer would otherwise have to: line and page breaking, tables that break across pages with
//! their header repeated, page numbers ("page N of M"), and fonts embedded (only DejaVu Sans,
//! compiled in; no system font is ever looked up). Data never becomes markup: every text reaches
//! typst as a string literal ([`lit`]), and the same document gives the same bytes.

use std::fmt::Write as _;
use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};

use crate::error::{Error, Result};
use crate::report::doc::{Document, Element, Figure, Table};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// The standard library, built once.
static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

/// The embedded fonts and their book: all the fonts typst can see.
static FONTS: LazyLock<(Vec<Font>, LazyHash<FontBook>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = [REGULAR, BOLD]
        .into_iter()
        .flat_map(|data| Font::iter(Bytes::new(data)))
        .collect();
    let book = FontBook::from_fonts(&fonts);
    (fonts, LazyHash::new(book))
});

/// Page setup, text styles and the functions the generated body calls. Data never appears here.
const PREAMBLE: &str = r##"
#set page(paper: "us-letter", margin: 2cm, footer: context {
  let n = counter(page).get().first()
  if n > 1 {
    set text(size: 8pt, fill: luma(90))
    grid(columns: (1fr, auto), column-gutter: 1em, hhq-short,
      "page " + str(n) + " of " + str(counter(page).final().first()))
  }
})
#set text(font: "DejaVu Sans", size: 10pt, lang: "en")
#set par(justify: false, leading: 0.6em, spacing: 0.9em)
#set list(indent: 0.6em, spacing: 0.5em)
#show heading.where(level: 1): set text(size: 16pt)
#show heading.where(level: 1): set block(above: 0pt, below: 1.1em)
#show heading.where(level: 2): set text(size: 12pt)
#show heading.where(level: 2): set block(above: 1.5em, below: 0.7em)
#show raw: set text(font: "DejaVu Sans", size: 7pt)

#let hhq-facts(items) = table(
  columns: (auto, 1fr),
  stroke: (x, y) => (bottom: 0.4pt + luma(205)),
  inset: (x: 5pt, y: 4pt),
  ..items.map(((k, v)) => (text(weight: "bold", k), v)).flatten(),
)

#let hhq-cover(title, subtitle, caveat, facts) = {
  v(15%)
  block(below: 0.8em, text(size: 24pt, weight: "bold", title))
  if subtitle != "" { block(text(size: 14pt, fill: luma(70), subtitle)) }
  if caveat != "" {
    block(above: 1em, width: 100%, inset: 8pt, stroke: 1.5pt + rgb("#D55E00"), fill: rgb("#fdf0ea"),
      [#text(weight: "bold", "Caveat. ")#caveat])
  }
  v(1.5cm)
  if facts.len() > 0 { hhq-facts(facts) }
}

#let hhq-table-body(title, note, headers, numeric, rows, compact) = {
  let n = headers.len()
  if title != "" { block(sticky: true, below: 0.5em, text(size: 9pt, weight: "bold", title)) }
  if n > 0 {
    // Many columns: smaller text, and words that still do not fit their column are hyphenated
    // rather than run into the next one. Compact: smaller still, rows closer.
    let size = if compact { 6pt } else if n > 10 { 6.5pt } else if n > 8 { 7pt } else { 8pt }
    set text(size: size, hyphenate: n > 10)
    set par(leading: if compact { 0.35em } else { 0.45em })
    table(
      columns: (auto,) * n,
      align: (x, y) => (if numeric.at(x) { right } else { left }) + (if y == 0 { bottom } else { top }),
      stroke: (x, y) => if y == 0 { (bottom: 0.7pt + luma(60)) } else { (bottom: 0.3pt + luma(215)) },
      fill: (x, y) => if y == 0 { luma(232) } else if calc.even(y) { luma(246) },
      inset: (x: 4pt, y: if compact { 1.6pt } else { 3pt }),
      table.header(..headers.map(h => text(weight: "bold", h))),
      ..rows.flatten(),
      // The note as the table's last row, so a page break never leaves it alone on a page.
      ..if note != none {
        (table.footer(repeat: false, table.cell(colspan: n, fill: white, stroke: none,
          inset: (x: 0pt, top: 4pt, bottom: 0pt),
          text(size: 7.5pt, fill: luma(70), hyphenate: false, note))),)
      } else { () },
    )
  } else if note != none { block(above: 0.45em, text(size: 7.5pt, fill: luma(70), note)) }
}

// A table that fits on one page is never split: it moves whole to the next page, its title and
// note with it. One that fits only set compactly is set so; a longer one breaks, its header
// repeated, and is placed so that its last page is not a remnant (its last rows or its note
// alone on under a third of a page): set here or from a new page, plainly or compactly,
// whichever leaves its last page fuller.
#let hhq-table(title, note, headers, numeric, rows) = context {
  let width = page.width - 4cm
  let room = page.height - 4.6cm
  let body = hhq-table-body(title, note, headers, numeric, rows, false)
  let compact = hhq-table-body(title, note, headers, numeric, rows, true)
  let hb = measure(block(width: width, body)).height
  let hc = measure(block(width: width, compact)).height
  if hb < room {
    block(width: 100%, above: 1.2em, below: 1.2em, breakable: false, body)
  } else if hc < room {
    block(width: 100%, above: 1.2em, below: 1.2em, breakable: false, compact)
  } else {
    // What the last page holds, as a share of a page, when the table starts with `first` of
    // this page left; each page after the first repeats the header (about a line and a half).
    let left = page.height - 2cm - here().position().y
    let header = (1.6em).to-absolute()
    let step = room - header
    let last(h, first) = {
      let pages = calc.ceil(calc.max(h - first, 0pt) / step)
      let rest = h - first - (pages - 1) * step + header
      if pages == 0 { 1.0 } else { rest / room }
    }
    let options = (
      (body, false, last(hb, left)),
      (compact, false, last(hc, left)),
      (body, true, last(hb, room)),
      (compact, true, last(hc, room)),
    )
    let good = options.filter(o => o.at(2) >= 0.33)
    let (chosen, fresh, _) = if good.len() > 0 { good.first() } else {
      options.sorted(key: o => -o.at(2)).first()
    }
    if fresh { pagebreak(weak: true) }
    block(width: 100%, above: 1.2em, below: 1.2em, breakable: true, chosen)
  }
}

#let hhq-figure(path, title, caption, desc) = block(width: 100%, breakable: false, above: 1.2em, below: 1.2em, {
  if title != "" { block(below: 0.5em, text(size: 9pt, weight: "bold", title)) }
  let alt = title + ". " + desc
  layout(size => {
    let img = image(path, format: "svg", width: size.width, alt: alt)
    if measure(img).height > 13cm {
      align(center, image(path, format: "svg", height: 13cm, alt: alt))
    } else { img }
  })
  if caption != "" { block(above: 0.5em, text(size: 8pt, fill: luma(60), caption)) }
})

#let hhq-no-figure(title, why) = block(width: 100%, above: 1em, below: 1em,
  text(size: 9pt, [#text(weight: "bold", title): #why.]))

#let hhq-code(body) = block(width: 100%, fill: luma(246), inset: 6pt, radius: 2pt, breakable: true,
  raw(body, block: true))
"##;

/// The PDF of a report: a cover page (title, subtitle, facts), then each section on a new page.
pub fn render(doc: &Document) -> Result<Vec<u8>> {
    render_counted(doc).map(|(pdf, _)| pdf)
}

/// The PDF and its number of pages.
fn render_counted(doc: &Document) -> Result<(Vec<u8>, usize)> {
    let world = ReportWorld::new(doc);
    // The document type is typst-layout's `PagedDocument`, named by `typst_pdf::pdf` below.
    let compiled = typst::compile(&world)
        .output
        .map_err(|errors| world.error(&errors))?;
    let options = typst_pdf::PdfOptions {
        ident: Smart::Custom(world.ident()),
        creator: Smart::Custom(Some(format!("hhq {}", env!("CARGO_PKG_VERSION")))),
        timestamp: None,
        ..Default::default()
    };
    let pdf = typst_pdf::pdf(&compiled, &options).map_err(|errors| world.error(&errors))?;
    let pages = compiled.pages().len();
    // Memoised layouts of earlier reports are of no use to later ones.
    typst::comemo::evict(10);
    Ok((pdf, pages))
}

/// What typst sees: the generated main source, the figures as SVG files, the embedded fonts.
struct ReportWorld {
    main: Source,
    figures: Vec<(FileId, Bytes)>,
}

impl ReportWorld {
    fn new(doc: &Document) -> ReportWorld {
        let mut figures = Vec::new();
        let text = source(doc, &mut |svg: &str| {
            let path = format!("/figures/{}.svg", figures.len() + 1);
            figures.push((file_id(&path), Bytes::from_string(svg.to_string())));
            path
        });
        ReportWorld {
            main: Source::new(file_id("/report.typ"), text),
            figures,
        }
    }

    /// A stable PDF identifier: the hash of everything the PDF is made from.
    fn ident(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.main.text().as_bytes());
        for (_, svg) in &self.figures {
            hash.update(svg.as_slice());
        }
        format!("hhq-{:x}", hash.finalize())
    }

    /// Typst's errors as one of ours, with the generated source they point at.
    fn error(&self, diagnostics: &[SourceDiagnostic]) -> Error {
        let messages: Vec<String> = diagnostics
            .iter()
            .map(|d| {
                let at = (d.span.id() == Some(self.main.id()))
                    .then(|| self.range(d.span))
                    .flatten()
                    .and_then(|r| self.main.text().get(r))
                    .map(|s| format!(" (at `{}`)", s.chars().take(80).collect::<String>()))
                    .unwrap_or_default();
                format!("{}{at}", d.message)
            })
            .collect();
        Error::Report(format!("PDF layout: {}", messages.join("; ")))
    }
}

fn file_id(path: &str) -> FileId {
    let vpath = VirtualPath::new(path).expect("a valid virtual path");
    FileId::new(RootedPath::new(VirtualRoot::Project, vpath))
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.1
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main.id() {
            return Ok(Bytes::from_string(self.main.clone()));
        }
        self.figures
            .iter()
            .find(|(f, _)| *f == id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| FileError::NotFound(id.vpath().get_without_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.0.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

/// The typst source of a document; `figure` stores an SVG and returns the path to load it from.
fn source(doc: &Document, figure: &mut dyn FnMut(&str) -> String) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#let hhq-short = {}", lit(&short(&doc.title)));
    let _ = writeln!(out, "#set document(title: {}, date: none)", lit(&doc.title));
    out.push_str(PREAMBLE);
    let facts = array(doc.cover.iter().map(|(k, v)| pair(k, v)));
    let _ = writeln!(
        out,
        "\n#hhq-cover({}, {}, {}, {facts})",
        lit(&doc.title),
        lit(&doc.subtitle),
        lit(doc.caveat.as_deref().unwrap_or_default())
    );
    let mut flipped = false;
    for section in &doc.sections {
        // A section with a table of many columns is set in landscape, so no column is squeezed
        // narrower than its words.
        let wide = section
            .elements
            .iter()
            .any(|b| matches!(b, Element::Table(t) if t.columns.len() > WIDE_TABLE));
        if wide != flipped {
            let _ = writeln!(out, "\n#set page(flipped: {wide})");
            flipped = wide;
        }
        out.push_str("\n#pagebreak(weak: true)\n");
        let _ = writeln!(out, "#heading(level: 1, {})\n", lit(&section.title));
        for element in &section.elements {
            element_source(&mut out, element, figure);
            out.push('\n');
        }
    }
    out
}

fn element_source(out: &mut String, element: &Element, figure: &mut dyn FnMut(&str) -> String) {
    let _ = match element {
        Element::Heading { text } => writeln!(out, "#heading(level: 2, {})", lit(text)),
        Element::Paragraph { text } => writeln!(out, "#par({})", lit(text)),
        Element::List { items } => {
            let items: Vec<String> = items.iter().map(|i| lit(i)).collect();
            writeln!(out, "#list({})", items.join(", "))
        }
        Element::Facts { items } => {
            let items = array(items.iter().map(|(k, v)| pair(k, v)));
            writeln!(out, "#block(above: 1em, below: 1em, hhq-facts({items}))")
        }
        Element::Table(table) => writeln!(out, "{}", table_source(table)),
        Element::Figure(f) => writeln!(out, "{}", figure_source(f, figure)),
        Element::Code { text } => writeln!(out, "#hhq-code({})", lit(&breakable(text))),
    };
}

fn table_source(table: &Table) -> String {
    // Every row as wide as the widest: a short row must not pull later cells into it.
    let width = table
        .rows
        .iter()
        .map(Vec::len)
        .chain([table.columns.len()])
        .max()
        .unwrap_or(0);
    let column = |i: usize| table.columns.get(i);
    let headers = array((0..width).map(|i| lit(&soft_breaks(column(i).map_or("", |c| &c.label)))));
    let numeric = array((0..width).map(|i| column(i).is_some_and(|c| c.numeric).to_string()));
    let rows = array(table.rows.iter().map(|row| {
        array((0..width).map(|i| lit(&soft_breaks(row.get(i).map_or("", |c| c.display())))))
    }));
    let note = table.note.as_deref().map_or("none".to_string(), lit);
    format!(
        "#hhq-table({}, {note}, {headers}, {numeric}, {rows})",
        lit(&table.title)
    )
}

fn figure_source(f: &Figure, figure: &mut dyn FnMut(&str) -> String) -> String {
    let Some(svg) = &f.svg else {
        return format!("#hhq-no-figure({}, {})", lit(&f.title), lit(&f.desc));
    };
    let path = figure(svg);
    format!(
        "#hhq-figure({}, {}, {}, {})",
        lit(&path),
        lit(&f.title),
        lit(&f.caption),
        lit(&f.desc)
    )
}

/// Columns beyond which a table's section is set in landscape.
const WIDE_TABLE: usize = 10;

/// A typst string literal of `s`: its text, never markup or code.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` with a zero-width space after every [`RUN`] characters of a longer run without spaces: a
/// long token (a path, a base64 string) wraps instead of running off the page. Hashes (64
/// characters) are untouched.
fn breakable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    for c in s.chars() {
        if c.is_whitespace() {
            run = 0;
        } else {
            if run == RUN {
                out.push('\u{200b}');
                run = 0;
            }
            run += 1;
        }
        out.push(c);
    }
    out
}

/// `s` with a zero-width space after each `_` and `/` between letters: an identifier
/// (`engagement_alcohol`, a file path) may wrap in a narrow column instead of running into the
/// next one.
fn soft_breaks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if matches!(c, '_' | '/') && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            out.push('\u{200b}');
        }
    }
    out
}

/// The longest run of code text without a break opportunity (at 7 pt, 80 of the widest common
/// characters fit the text width).
const RUN: usize = 80;

/// A typst array of already-written values (a trailing comma, so one item is still an array).
fn array(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "()".to_string()
    } else {
        format!("({},)", items.join(", "))
    }
}

fn pair(k: &str, v: &str) -> String {
    format!("({}, {})", lit(k), lit(v))
}

/// The title as the footer shows it: at most 70 characters.
fn short(title: &str) -> String {
    if title.chars().count() <= 70 {
        title.to_string()
    } else {
        let cut: String = title.chars().take(69).collect();
        format!("{}…", cut.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::{Cell, Column, Section};

    const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect x="5" y="5" width="90" height="40" fill="steelblue"/></svg>"#;

    fn table(rows: usize) -> Table {
        Table {
            id: "rates".into(),
            title: "Rates by age band".into(),
            columns: vec![
                Column::text("band", "Age band"),
                Column::number("denominator", "Denominator"),
                Column::number("numerator", "Numerator"),
                Column::number("rate", "Rate (%)"),
            ],
            rows: (0..rows)
                .map(|i| {
                    let n = (i * 37 % 500) as f64 + 20.0;
                    let mut row = vec![
                        Cell::text(format!("Band {i}")),
                        Cell::count(n * 10.0),
                        Cell::count(n),
                        Cell::decimal(10.0, 1),
                    ];
                    if i == 1 {
                        row[2] = Cell::suppressed(crate::suppress::Reason::SmallCell);
                        row[3] = Cell::suppressed(crate::suppress::Reason::Complementary);
                    }
                    row
                })
                .collect(),
            note: Some("DS: data suppressed (fewer than 11 members).".into()),
        }
    }

    fn sample() -> Document {
        Document {
            kind: "state".into(),
            title: "Health Home Core Set — Kansas".into(),
            subtitle: "Measurement year 2025".into(),
            cover: vec![
                ("Period".into(), "2025-01-01 to 2025-12-31".into()),
                ("Data cut-off".into(), "2026-03-31".into()),
                ("Tool".into(), "hhq 0.1.0".into()),
            ],
            caveat: None,
            sections: vec![
                Section {
                    id: "at-a-glance".into(),
                    title: "At a glance".into(),
                    elements: vec![
                        Element::Paragraph {
                            text: "Every measure of the period, by age band.".into(),
                        },
                        Element::List {
                            items: vec!["FUH-HH: follow-up".into(), "PCR-HH: readmissions".into()],
                        },
                        Element::Table(table(6)),
                        Element::Figure(Figure {
                            id: "fuh-trend".into(),
                            title: "FUH-HH over time".into(),
                            caption: "7-day rate by quarter.".into(),
                            desc: "A rising line.".into(),
                            svg: Some(SVG.into()),
                            png: Vec::new(),
                            data: Table::default(),
                        }),
                    ],
                },
                Section {
                    id: "manifest".into(),
                    title: "How this report was made".into(),
                    elements: vec![
                        Element::Heading {
                            text: "Options".into(),
                        },
                        Element::Facts {
                            items: vec![("Period".into(), "2025".into())],
                        },
                        Element::Code {
                            text: "{\n  \"tool\": \"hhq 0.1.0\",\n  \"sha256\": \"ab12\"\n}".into(),
                        },
                    ],
                },
            ],
        }
    }

    #[test]
    fn a_report_renders_to_the_same_pdf_every_time() {
        let doc = sample();
        let (first, pages) = render_counted(&doc).unwrap();
        assert!(first.starts_with(b"%PDF-"));
        assert_eq!(pages, 3, "cover and one page per section");
        assert_eq!(render(&doc).unwrap(), first);
    }

    #[test]
    fn text_from_data_is_never_markup() {
        let hostile = r#"#import "x": * $x$ *bold* _em_ ] [ \ " @ref <label> // comment /* c */ `raw` = h ~ 'q' {#}"#;
        let mut doc = sample();
        doc.title = hostile.into();
        doc.subtitle = format!("{hostile}\nsecond line\r\t\u{7}");
        doc.cover.push((hostile.into(), hostile.into()));
        let section = &mut doc.sections[0];
        section.title = hostile.into();
        section.elements.push(Element::Heading {
            text: hostile.into(),
        });
        section.elements.push(Element::Paragraph {
            text: hostile.into(),
        });
        section.elements.push(Element::List {
            items: vec![hostile.into(), "\\".into(), "\"".into()],
        });
        let mut t = table(3);
        t.title = hostile.into();
        t.note = Some(hostile.into());
        t.columns[0].label = hostile.into();
        t.rows[0][0] = Cell::text(hostile);
        section.elements.push(Element::Table(t));
        section.elements.push(Element::Code {
            text: hostile.into(),
        });
        let pdf = render(&doc).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }

    #[test]
    fn a_long_table_breaks_across_pages() {
        let mut doc = sample();
        doc.sections.truncate(1);
        doc.sections[0].elements = vec![Element::Table(table(200))];
        let (pdf, pages) = render_counted(&doc).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pages > 3, "200 rows over several pages, got {pages}");
    }

    #[test]
    fn wide_and_ragged_tables_render() {
        let mut wide = Table {
            title: "Twelve columns".into(),
            columns: (0..12)
                .map(|i| Column::number(&format!("c{i}"), &format!("Column number {i}")))
                .collect(),
            ..Table::default()
        };
        wide.rows = (0..5)
            .map(|r| {
                (0..12)
                    .map(|c| Cell::count((r * 1000 + c) as f64))
                    .collect()
            })
            .collect();
        wide.rows[2].truncate(3);
        wide.rows[3].push(Cell::text("extra"));
        let empty = Table {
            title: "No columns".into(),
            ..Table::default()
        };
        let mut doc = sample();
        doc.sections[0].elements = vec![Element::Table(wide), Element::Table(empty)];
        assert!(render(&doc).unwrap().starts_with(b"%PDF-"));
    }

    #[test]
    fn literals_escape_what_typst_would_read() {
        assert_eq!(lit(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lit("x\ny"), r#""x\ny""#);
        assert_eq!(lit("\u{1}"), r#""\u{1}""#);
        assert_eq!(array(std::iter::once("1".to_string())), "(1,)");
        assert_eq!(array(std::iter::empty()), "()");
        let long = "x".repeat(2 * RUN + 1);
        assert_eq!(breakable(&long).matches('\u{200b}').count(), 2);
        assert_eq!(breakable(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(
            soft_breaks("engagement_alcohol"),
            "engagement_\u{200b}alcohol"
        );
        assert_eq!(soft_breaks("a/b_ c_"), "a/\u{200b}b_ c_");
    }

    #[test]
    fn no_system_fonts() {
        let book = &FONTS.1;
        let families: Vec<_> = book.families().map(|(name, _)| name.to_string()).collect();
        assert_eq!(families, vec!["DejaVu Sans".to_string()]);
    }
}
