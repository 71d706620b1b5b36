//! The HTML report: one self-contained file (inline CSS, inline SVG charts, the embedded font as
//! a data URL; nothing fetched), filled from `reports/report.html.j2` by minijinja with
//! auto-escaping on.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::report::doc::{Cell, Document, Element, Table};

/// The default template, compiled in so the binary needs no files beside it.
const TEMPLATE: &str = include_str!("../../reports/report.html.j2");
const FONT_REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

fn cell(c: &Cell, numeric: bool) -> Value {
    let class = match c {
        Cell::Suppressed { .. } => "num ds",
        Cell::Text { text } if text == "improved" || text == "worsened" => text.as_str(),
        _ if numeric => "num",
        _ => "",
    };
    // The published reason only: it never tells a small count from the cell hidden to protect
    // it.
    let title = match c {
        Cell::Suppressed { reason, .. } => format!("suppressed: {reason}"),
        _ => String::new(),
    };
    json!({ "text": c.display(), "class": class, "title": title })
}

fn table(t: &Table) -> Value {
    let rows: Vec<Value> = t
        .rows
        .iter()
        .map(|r| {
            Value::Array(
                r.iter()
                    .enumerate()
                    .map(|(i, c)| cell(c, t.columns.get(i).is_some_and(|c| c.numeric)))
                    .collect(),
            )
        })
        .collect();
    json!({
        "type": "table",
        "id": t.id,
        "title": t.title,
        "columns": t.columns,
        "rows": rows,
        "note": t.note,
    })
}

fn element(b: &Element) -> Value {
    match b {
        Element::Table(t) => table(t),
        Element::Figure(f) => json!({
            "type": "figure",
            "id": f.id,
            "title": f.title,
            "caption": f.caption,
            "desc": f.desc,
            "svg": f.svg,
        }),
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

/// Render the document as HTML.
pub fn render(doc: &Document) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| Error::Report(format!("reports/report.html.j2: {e}")))?;
    let sections: Vec<Value> = doc
        .sections
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "title": s.title,
                "elements": s.elements.iter().map(element).collect::<Vec<_>>(),
            })
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let ctx = json!({
        "doc": { "title": doc.title, "subtitle": doc.subtitle, "cover": doc.cover, "kind": doc.kind, "caveat": doc.caveat },
        "sections": sections,
        "version": env!("CARGO_PKG_VERSION"),
        "font_regular": b64.encode(FONT_REGULAR),
        "font_bold": b64.encode(FONT_BOLD),
    });
    env.get_template("report.html")
        .and_then(|t| t.render(ctx))
        .map_err(|e| Error::Report(format!("reports/report.html.j2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::{Column, Figure, Section};

    fn doc() -> Document {
        Document {
            kind: "state".into(),
            title: "Report <&> \"x\"".into(),
            subtitle: "sub".into(),
            cover: vec![("Period".into(), "2025".into())],
            caveat: Some("checks <b>failed</b>".into()),
            sections: vec![Section {
                id: "at-a-glance".into(),
                title: "At a glance".into(),
                elements: vec![
                    Element::Paragraph {
                        text: "<script>alert(1)</script>".into(),
                    },
                    Element::Table(Table {
                        id: "t".into(),
                        title: "T".into(),
                        columns: vec![Column::text("a", "A"), Column::number("b", "B")],
                        rows: vec![vec![
                            Cell::text("x"),
                            Cell::suppressed(crate::suppress::Reason::SmallCell),
                        ]],
                        note: Some("n".into()),
                    }),
                    Element::Figure(Figure {
                        id: "f".into(),
                        title: "F".into(),
                        caption: "c".into(),
                        desc: "d".into(),
                        svg: Some(
                            "<svg xmlns=\"http://www.w3.org/2000/svg\"><path d=\"M0 0\"/></svg>"
                                .into(),
                        ),
                        png: Vec::new(),
                        data: Table::default(),
                    }),
                ],
            }],
        }
    }

    #[test]
    fn text_is_escaped_and_svg_is_inline() {
        let html = render(&doc()).unwrap();
        assert!(
            html.contains("<h1>Report &lt;&amp;&gt; &quot;x&quot;</h1>"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\"><path d=\"M0 0\"/></svg>")
        );
        assert!(html.contains("<h2>At a glance</h2>"));
        assert!(html.contains(r#"<td class="num ds" title="suppressed: small count">DS</td>"#));
        // Self-contained: nothing is fetched.
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
        assert!(html.contains("data:font/ttf;base64,"));
    }

    #[test]
    fn same_document_same_bytes() {
        assert_eq!(render(&doc()).unwrap(), render(&doc()).unwrap());
    }
}
