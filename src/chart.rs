//! The report's charts — trends over periods, comparison dot plots, SPC charts and cumulative
//! follow-up curves — drawn identically on every machine.
//!
//! plotters draws each chart as SVG. usvg then lays its text out with the two DejaVu Sans faces
//! embedded in the binary (no system font is ever looked up; every family, generic or not,
//! resolves to DejaVu Sans) and writes the SVG back with every glyph as an outline path, so the
//! file shows the same in any browser or PDF. resvg rasterises the same tree to a PNG at twice the
//! logical size. Layout measures text with the same fonts, so labels and legends fit. Same input,
//! same bytes: no clock, no randomness, no hash-map order reaches the output.

use std::sync::{Arc, LazyLock};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};

use crate::error::{Error, Result};
use crate::spc::{self, Signal};

/// A chart drawn both ways: SVG with every glyph as an outline path (no `<text>`, no font
/// lookup) and PNG, with its text alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Carries the title and [`Rendered::desc`] as its `<title>` and `<desc>`, and `role="img"`.
    pub svg: String,
    /// Twice the SVG's logical size, on white.
    pub png: Vec<u8>,
    /// What the chart shows, in words: for screen readers and wherever the picture is not seen.
    pub desc: String,
}

/// A chart, or why there is none: a chart with nothing to draw is not drawn, and the report
/// says so in one line instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drawing {
    Chart(Rendered),
    Empty(Empty),
}

/// Why a chart has nothing to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    NoData,
    AllSuppressed,
}

impl std::fmt::Display for Empty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Empty::NoData => "no data to draw",
            Empty::AllSuppressed => "every value is suppressed, so there is nothing to draw",
        })
    }
}

impl Drawing {
    /// The chart, when there is one.
    pub fn chart(&self) -> Option<&Rendered> {
        match self {
            Drawing::Chart(r) => Some(r),
            Drawing::Empty(_) => None,
        }
    }
}

/// Whom a line, a curve or a row stands for. Each role keeps one colour in every chart, so a
/// report's MCOs and partners look the same from chart to chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The MCO or partner the report is for: vermillion, drawn thicker and on top, its label
    /// bold.
    Own,
    /// The state as a whole: near-black.
    State,
    /// An MCO, by its place in the report's sorted list of MCOs.
    Mco(usize),
    /// Any other unit (the partners compared in a state or MCO report): grey.
    Other,
}

impl Role {
    fn colour(self) -> RGBColor {
        match self {
            Role::Own => ACCENT,
            Role::State => INK,
            Role::Mco(i) => MCO_COLOURS[i % MCO_COLOURS.len()],
            Role::Other => AXIS,
        }
    }
}

/// One line of a trend chart; `None` points are gaps (suppressed or missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
    /// Its colour; [`Role::Own`] is drawn thicker, with larger points, on top of the others.
    pub role: Role,
}

/// One estimate with its 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub label: String,
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Its colour; [`Role::Own`] has a bold label and value.
    pub role: Role,
}

/// Logical size of a chart; a dot plot's height grows with its rows.
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 360;
/// The PNG's pixels per logical pixel.
pub const PNG_SCALE: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Trend

/// Trend over periods (x labels like "2024Q1"), several series (e.g. this partner, its MCO, the
/// state), with a legend when there is more than one. Period labels are thinned when they would
/// overlap; values beyond the labels get blank ones. The value axis is fitted to the values.
pub fn trend(
    title: &str,
    y_label: &str,
    x_labels: &[String],
    series: &[Series],
) -> Result<Drawing> {
    let n = series
        .iter()
        .map(|s| s.values.len())
        .chain([x_labels.len()])
        .max()
        .unwrap_or(0);
    let lines: Vec<Vec<Option<f64>>> = series
        .iter()
        .map(|s| {
            (0..n)
                .map(|i| finite(s.values.get(i).copied().flatten()))
                .collect()
        })
        .collect();
    if lines.iter().flatten().all(Option::is_none) {
        let suppressed = series.iter().any(|s| !s.values.is_empty());
        return Ok(Drawing::Empty(if suppressed {
            Empty::AllSuppressed
        } else {
            Empty::NoData
        }));
    }
    let (y, step) = value_axis(
        lines.iter().flatten().flatten().copied(),
        None,
        "",
        y_label,
        true,
    );
    let d = decimals(step) + 1;
    let label_at = |i: usize| {
        x_labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("#{}", i + 1))
    };
    let mut desc = format!(
        "Line chart of {} periods{}{}.",
        n,
        match (x_labels.first(), x_labels.get(n - 1)) {
            (Some(a), Some(b)) if n > 1 => format!(", {a} to {b}"),
            _ => String::new(),
        },
        y.scale_note()
    );
    for (s, line) in series.iter().zip(&lines) {
        desc.push(' ');
        desc.push_str(&series_words(&s.label, line, &label_at, d));
    }
    render((WIDTH, HEIGHT), title, desc, |root| {
        let keys: Vec<Key> = if series.len() > 1 {
            series
                .iter()
                .map(|s| Key {
                    label: s.label.clone(),
                    swatch: Swatch::Line {
                        color: s.role.colour(),
                        width: if s.role == Role::Own { 3 } else { 2 },
                        dashed: false,
                        marker: Some((Marker::Circle, s.role.colour())),
                    },
                })
                .collect()
        } else {
            Vec::new()
        };
        let top = header(root, title, &keys)?;
        let x = period_axis(x_labels, n, plot_width(&y));
        let chart = axes(root, top, &x, &y)?;
        // The report's own series last, so it lies on top.
        let order = (0..series.len())
            .filter(|&i| series[i].role != Role::Own)
            .chain((0..series.len()).filter(|&i| series[i].role == Role::Own));
        for i in order {
            let (width, radius) = if series[i].role == Role::Own {
                (3, 4)
            } else {
                (2, 3)
            };
            let color = series[i].role.colour();
            let points: Vec<Option<(i32, i32)>> = lines[i]
                .iter()
                .enumerate()
                .map(|(x, v)| v.map(|v| chart.backend_coord(&(x as f64, v))))
                .collect();
            polyline(root, &points, color, width)?;
            for p in points.iter().flatten() {
                marker(root, Marker::Circle, *p, radius, color)?;
            }
        }
        Ok(())
    })
}

/// One series in words: first and last shown values, lowest and highest, periods not shown.
fn series_words(
    label: &str,
    values: &[Option<f64>],
    label_at: &dyn Fn(usize) -> String,
    d: usize,
) -> String {
    let shown: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let hidden = values.len() - shown.len();
    let gaps = match hidden {
        0 => String::new(),
        1 => "; 1 period suppressed or missing".to_string(),
        k => format!("; {k} periods suppressed or missing"),
    };
    let at = |(i, v): (usize, f64)| format!("{} in {}", number(v, d), label_at(i));
    match (shown.first(), shown.last()) {
        (Some(&a), Some(&b)) if shown.len() > 1 => {
            let low = shown
                .iter()
                .copied()
                .fold(a, |m, p| if p.1 < m.1 { p } else { m });
            let high = shown
                .iter()
                .copied()
                .fold(a, |m, p| if p.1 > m.1 { p } else { m });
            format!(
                "{label}: from {} to {}, lowest {}, highest {}{gaps}.",
                at(a),
                at(b),
                at(low),
                at(high)
            )
        }
        (Some(&a), _) => format!("{label}: {}{gaps}.", at(a)),
        _ => format!("{label}: every period suppressed or missing."),
    }
}

// ---------------------------------------------------------------------------------------------
// Dot plot

const ROW: i32 = 26;
/// Rows a dot plot takes: beyond this it is no longer a chart one reads (and its PNG would be
/// enormous).
pub const MAX_ROWS: usize = 400;

/// Comparison dot plot: one row per unit (MCO or partner) in the order given, a dot and a
/// horizontal bar for its interval, the value and interval printed on the right, and a dashed
/// vertical reference line (e.g. the state rate) labelled with its name and value. Rows with
/// value `None` are listed with the text "suppressed". The axis is fitted to the values.
pub fn dot_plot(
    title: &str,
    x_label: &str,
    items: &[Estimate],
    reference: Option<(&str, f64)>,
) -> Result<Drawing> {
    if items.is_empty() {
        return Ok(Drawing::Empty(Empty::NoData));
    }
    if items.iter().all(|e| finite(e.value).is_none()) {
        return Ok(Drawing::Empty(Empty::AllSuppressed));
    }
    if items.len() > MAX_ROWS {
        return Err(failure(format!(
            "{title}: {} rows are too many for a dot plot (at most {MAX_ROWS})",
            items.len()
        )));
    }
    let reference = reference.filter(|(_, v)| v.is_finite());
    let values = items
        .iter()
        .flat_map(|e| [e.value, e.lower, e.upper])
        .chain([reference.map(|r| r.1)])
        .filter_map(finite);
    let (x, step) = value_axis(values, None, "", x_label, true);
    let decimals = decimals(step) + 1;
    let texts: Vec<String> = items.iter().map(|e| estimate_text(e, decimals)).collect();
    let desc = dot_plot_words(items, &texts, reference, decimals, &x);

    let rows = items.len() as i32;
    let plot_top = HEADER + if reference.is_some() { 22 } else { 0 };
    let x_axis_height = x_area(&Axis::blank(x_label));
    let height = plot_top + rows * ROW + x_axis_height + MARGIN_BOTTOM;
    render((WIDTH, height as u32), title, desc, |root| {
        header(root, title, &[])?;
        // Left: the unit labels; right: value and interval.
        let label_font = |e: &Estimate| match (e.role == Role::Own, finite(e.value).is_some()) {
            (true, _) => LABEL_BOLD,
            (false, true) => LABEL,
            (false, false) => LABEL_MUTED,
        };
        let label_width = items
            .iter()
            .map(|e| text_width(&e.label, label_font(e)))
            .fold(0.0, f64::max)
            .min(220.0);
        let text_width_right = items
            .iter()
            .zip(&texts)
            .map(|(e, t)| text_width(t, if e.role == Role::Own { TICK_BOLD } else { TICK }))
            .fold(0.0, f64::max);
        let left = MARGIN_SIDE + label_width.ceil() as i32 + 14;
        let right = MARGIN_SIDE + text_width_right.ceil() as i32 + 14;

        let mut chart = ChartBuilder::on(root)
            .margin_top(plot_top)
            .margin_left(left)
            .margin_right(right)
            .margin_bottom(MARGIN_BOTTOM)
            .set_label_area_size(LabelAreaPosition::Bottom, x_axis_height)
            .build_cartesian_2d(x.coord(), Axis::blank("").coord_rows(rows))
            .map_err(failure)?;
        let row_y = |i: usize| f64::from(rows) - 0.5 - i as f64;
        let (x0, x1) = (
            chart.backend_coord(&(x.lo, 0.0)).0,
            chart.backend_coord(&(x.hi, 0.0)).0,
        );

        // Banded rows, then the grid, then the axis from plotters.
        for i in (1..items.len()).step_by(2) {
            let y = chart.backend_coord(&(x.lo, row_y(i))).1;
            let band = Rectangle::new(
                [
                    (MARGIN_SIDE, y - ROW / 2),
                    (WIDTH as i32 - MARGIN_SIDE, y + ROW / 2),
                ],
                BAND.filled(),
            );
            root.draw(&band).map_err(failure)?;
        }
        let (y_top, y_bottom) = (
            chart.backend_coord(&(x.lo, f64::from(rows))).1,
            chart.backend_coord(&(x.lo, 0.0)).1,
        );
        for (t, _) in &x.ticks {
            let px = chart.backend_coord(&(*t, 0.0)).0;
            segment(root, (px, y_top), (px, y_bottom), GRID, 1)?;
        }
        mesh(&mut chart, &x, &Axis::blank(""), false)?;

        if let Some((name, value)) = reference {
            let px = chart.backend_coord(&(value, 0.0)).0;
            dashed(
                root,
                &[(px, y_top - 4), (px, y_bottom)],
                Role::State.colour(),
                1,
            )?;
            let text = format!("{name} {}", number(value, decimals));
            let half = (text_width(&text, TICK_BOLD) / 2.0).ceil() as i32;
            let cx = px.clamp((x0 + half).min(x1), (x1 - half).max(x0));
            text_at(root, &text, (cx, y_top - 14), TICK_BOLD, HPos::Center)?;
        }

        for (i, (e, value_text)) in items.iter().zip(&texts).enumerate() {
            let y = row_y(i);
            let py = chart.backend_coord(&(x.lo, y)).1;
            let label = fit(&e.label, label_font(e), label_width);
            text_at(root, &label, (MARGIN_SIDE, py), label_font(e), HPos::Left)?;
            let color = e.role.colour();
            let Some(v) = finite(e.value) else {
                text_at(root, "suppressed", (x0 + 8, py), TICK_MUTED, HPos::Left)?;
                continue;
            };
            if let (Some(lo), Some(hi)) = (finite(e.lower), finite(e.upper)) {
                let (a, b) = (
                    chart.backend_coord(&(lo, y)).0,
                    chart.backend_coord(&(hi, y)).0,
                );
                segment(root, (a, py), (b, py), color, 2)?;
                segment(root, (a, py - 4), (a, py + 4), color, 2)?;
                segment(root, (b, py - 4), (b, py + 4), color, 2)?;
            }
            marker(root, Marker::Circle, chart.backend_coord(&(v, y)), 5, color)?;
            let font = if e.role == Role::Own { TICK_BOLD } else { TICK };
            text_at(root, value_text, (x1 + 14, py), font, HPos::Left)?;
        }
        Ok(())
    })
}

/// A dot plot in words: every row's value and interval, and which lie wholly above or below the
/// reference.
fn dot_plot_words(
    items: &[Estimate],
    texts: &[String],
    reference: Option<(&str, f64)>,
    d: usize,
    x: &Axis,
) -> String {
    let mut out = format!(
        "Dot plot of {} rows with 95% intervals{}{}.",
        items.len(),
        reference.map_or(String::new(), |(n, v)| format!(
            ", against {n} at {}",
            number(v, d)
        )),
        x.scale_note()
    );
    let rows: Vec<String> = items
        .iter()
        .zip(texts)
        .map(|(e, t)| {
            if t.is_empty() {
                format!("{} suppressed", e.label)
            } else {
                format!("{} {t}", e.label)
            }
        })
        .collect();
    out.push_str(&format!(" {}.", rows.join("; ")));
    if let Some((name, v)) = reference {
        let side = |above: bool| -> Vec<&str> {
            items
                .iter()
                .filter(|e| match (finite(e.lower), finite(e.upper)) {
                    (Some(lo), Some(_)) if above => lo > v,
                    (Some(_), Some(hi)) if !above => hi < v,
                    _ => false,
                })
                .map(|e| e.label.as_str())
                .collect()
        };
        for (above, word) in [(true, "above"), (false, "below")] {
            let units = side(above);
            if !units.is_empty() {
                out.push_str(&format!(" Wholly {word} {name}: {}.", units.join(", ")));
            }
        }
    }
    out
}

/// "54.3 (48.1–60.2)", or the value alone without both bounds; nothing when suppressed.
fn estimate_text(e: &Estimate, decimals: usize) -> String {
    match (finite(e.value), finite(e.lower), finite(e.upper)) {
        (Some(v), Some(lo), Some(hi)) => format!(
            "{} ({}–{})",
            number(v, decimals),
            number(lo, decimals),
            number(hi, decimals)
        ),
        (Some(v), _, _) => number(v, decimals),
        (None, _, _) => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// SPC

/// SPC chart (p or u) from [`spc::Chart`]: the centre line, each point's 3-sigma limits as dashed
/// step lines, the points joined in the colour of `role`, and points with a signal marked by
/// shape and colour with a legend of the signal kinds that occur. Values are drawn as they are:
/// scale the chart first for the unit of `y_label` (a p-chart's proportions times 100 for
/// percent, a u-chart's rate times 1,000 for per 1,000). A point with several signals shows the
/// first of: beyond a limit, shift, trend. A point without a value (suppressed, or no
/// denominator) is a gap; its limits are still drawn. The value axis is fitted to the values
/// and limits.
pub fn spc(title: &str, y_label: &str, chart: &spc::Chart, role: Role) -> Result<Drawing> {
    let values: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.value)).collect();
    if values.iter().all(Option::is_none) {
        return Ok(Drawing::Empty(if chart.points.is_empty() {
            Empty::NoData
        } else {
            Empty::AllSuppressed
        }));
    }
    let lower: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.lower)).collect();
    let upper: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.upper)).collect();
    let centre = finite(chart.centre);
    let signal = |p: &spc::Point| SIGNALS.iter().find(|s| p.signals.contains(&s.0)).copied();
    let labels: Vec<String> = chart.points.iter().map(|p| p.label.clone()).collect();
    let n = chart.points.len();
    let all = values.iter().chain(&lower).chain(&upper).chain([&centre]);
    let (y, step) = value_axis(all.flatten().copied(), None, "", y_label, true);
    let d = decimals(step) + 1;

    let label_at = |i: usize| labels.get(i).cloned().unwrap_or_default();
    let mut desc = format!(
        "Control chart of {n} periods{}{}. {}",
        match (labels.first(), labels.last()) {
            (Some(a), Some(b)) if n > 1 => format!(", {a} to {b}"),
            _ => String::new(),
        },
        y.scale_note(),
        series_words("Observed", &values, &label_at, d)
    );
    if let Some(c) = centre {
        desc.push_str(&format!(" Centre line {}.", number(c, d)));
    }
    let flagged: Vec<String> = chart
        .points
        .iter()
        .filter(|p| !p.signals.is_empty())
        .map(|p| {
            let kinds: Vec<&str> = p.signals.iter().map(|s| s.name()).collect();
            format!("{} ({})", p.label, kinds.join(", "))
        })
        .collect();
    if flagged.is_empty() {
        desc.push_str(" No special-cause signals.");
    } else {
        desc.push_str(&format!(" Signals: {}.", flagged.join("; ")));
    }

    render((WIDTH, HEIGHT), title, desc, |root| {
        let mut keys = vec![Key {
            label: "Observed".into(),
            swatch: Swatch::Line {
                color: role.colour(),
                width: 2,
                dashed: false,
                marker: Some((Marker::Circle, role.colour())),
            },
        }];
        if let Some(c) = centre {
            keys.push(Key {
                label: format!("Centre line {}", number(c, d)),
                swatch: Swatch::Line {
                    color: CENTRE,
                    width: 2,
                    dashed: false,
                    marker: None,
                },
            });
        }
        if upper.iter().any(Option::is_some) {
            keys.push(Key {
                label: "3-sigma limits".into(),
                swatch: Swatch::Line {
                    color: LIMIT,
                    width: 2,
                    dashed: true,
                    marker: None,
                },
            });
        }
        for (kind, m, color) in SIGNALS {
            if chart
                .points
                .iter()
                .any(|p| signal(p).is_some_and(|s| s.0 == kind))
            {
                keys.push(Key {
                    label: capitalised(kind.name()),
                    swatch: Swatch::Point(m, color),
                });
            }
        }
        if chart.points.iter().all(|p| p.signals.is_empty()) {
            keys.push(Key {
                label: "no special-cause signals".into(),
                swatch: Swatch::None,
            });
        }
        let top = header(root, title, &keys)?;
        let x = period_axis(&labels, n, plot_width(&y));
        let plot = axes(root, top, &x, &y)?;
        let px = |x: f64, y: f64| plot.backend_coord(&(x, y));

        for limits in [&lower, &upper] {
            for run in runs(limits) {
                let mut path = Vec::new();
                for (i, l) in run {
                    path.push(px(i as f64 - 0.5, l));
                    path.push(px(i as f64 + 0.5, l));
                }
                dashed(root, &path, LIMIT, 2)?;
            }
        }
        if let Some(c) = centre {
            segment(root, px(-0.5, c), px(n as f64 - 0.5, c), CENTRE, 2)?;
        }
        let points: Vec<Option<(i32, i32)>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| v.map(|v| px(i as f64, v)))
            .collect();
        polyline(root, &points, role.colour(), 2)?;
        for (p, point) in points.iter().zip(&chart.points) {
            let Some(p) = *p else { continue };
            match signal(point) {
                Some((_, m, color)) => marker(root, m, p, 6, color)?,
                None => marker(root, Marker::Circle, p, 3, role.colour())?,
            }
        }
        Ok(())
    })
}

/// Signal kinds in the order a point shows them, with their marker and colour (shapes differ,
/// so the colours need not tell them apart).
const SIGNALS: [(Signal, Marker, RGBColor); 3] = [
    (Signal::BeyondLimit, Marker::Circle, SIGNAL_RED),
    (Signal::Shift, Marker::Square, ORANGE),
    (Signal::Trend, Marker::Triangle, PURPLE),
];

/// Runs of consecutive present values, each as (index, value).
fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push((i, *v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Cumulative follow-up

/// Days drawn on a cumulative follow-up curve: 0 (the discharge) to 30.
pub const FOLLOW_UP_DAYS: usize = 30;

/// One cumulative follow-up curve: 31 values for days 0 to 30 (`f64` or `Option<f64>`; extra
/// values are ignored; missing, `None` or non-finite ones are days not shown, e.g. suppressed).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve<V> {
    pub label: String,
    pub values: Vec<V>,
    pub role: Role,
}

/// Cumulative follow-up curve: the share (0 to 100 %) followed up by each day 0 to 30 after
/// discharge, one curve per series, dashed marks at day 7 and day 30 labelled "7 days" and
/// "30 days". A day not shown after one that is carries the last shown share over, drawn dashed
/// (a cumulative share never falls, so the true value is at least that), with a legend entry
/// saying so; days before the first shown one are not drawn.
pub fn cumulative<V: Copy + Into<Option<f64>>>(
    title: &str,
    curves: &[Curve<V>],
) -> Result<Drawing> {
    let lines: Vec<Vec<Option<f64>>> = curves
        .iter()
        .map(|c| {
            let mut line: Vec<Option<f64>> = c
                .values
                .iter()
                .take(FOLLOW_UP_DAYS + 1)
                .map(|v| finite((*v).into()))
                .collect();
            line.resize(FOLLOW_UP_DAYS + 1, None);
            line
        })
        .collect();
    if lines.iter().flatten().all(Option::is_none) {
        return Ok(Drawing::Empty(
            if curves.iter().any(|c| !c.values.is_empty()) {
                Empty::AllSuppressed
            } else {
                Empty::NoData
            },
        ));
    }
    // Each day's drawn value and whether it is carried over from an earlier day.
    let drawn: Vec<Vec<Option<(f64, bool)>>> = lines
        .iter()
        .map(|line| {
            let mut last = None;
            line.iter()
                .map(|v| match v {
                    Some(v) => {
                        last = Some(*v);
                        Some((*v, false))
                    }
                    None => last.map(|l| (l, true)),
                })
                .collect()
        })
        .collect();
    let carried = drawn.iter().flatten().flatten().any(|(_, c)| *c);
    let mut desc = format!(
        "Cumulative share followed up by each day after the event, days 0 to {FOLLOW_UP_DAYS}."
    );
    for ((c, line), shown) in curves.iter().zip(&drawn).zip(&lines) {
        let at = |day: usize| match line.get(day).copied().flatten() {
            Some((v, false)) => format!("{}%", number(v, 1)),
            Some((v, true)) => format!("at least {}%", number(v, 1)),
            None => "suppressed".to_string(),
        };
        let hidden = shown.iter().filter(|v| v.is_none()).count();
        desc.push_str(&format!(
            " {}: by day 7 {}, by day 30 {}{}.",
            c.label,
            at(7),
            at(30),
            match hidden {
                0 => String::new(),
                1 => " (1 day suppressed)".to_string(),
                k => format!(" ({k} days suppressed)"),
            }
        ));
    }
    render((WIDTH, HEIGHT), title, desc, |root| {
        let mut keys: Vec<Key> = if curves.len() > 1 {
            curves
                .iter()
                .map(|c| Key {
                    label: c.label.clone(),
                    swatch: Swatch::Line {
                        color: c.role.colour(),
                        width: 2,
                        dashed: false,
                        marker: None,
                    },
                })
                .collect()
        } else {
            Vec::new()
        };
        if carried {
            keys.push(Key {
                label: "suppressed days: last shown share carried over".into(),
                swatch: Swatch::Line {
                    color: MUTED,
                    width: 2,
                    dashed: true,
                    marker: None,
                },
            });
        }
        // Room above the plot for the day marks' labels.
        let top = header(root, title, &keys)? + 14;
        let values = lines.iter().flatten().flatten().copied().chain([100.0]);
        let (y, _) = value_axis(values, Some(100.0), "%", "Followed up", false);
        let x = Axis {
            lo: -0.6,
            hi: FOLLOW_UP_DAYS as f64 + 0.6,
            ticks: (0..=FOLLOW_UP_DAYS)
                .step_by(5)
                .map(|d| (d as f64, d.to_string()))
                .collect(),
            desc: "Days after the discharge or ED visit".into(),
            x_grid: false,
            from: None,
        };
        let chart = axes(root, top, &x, &y)?;
        let (y_top, y_bottom) = (
            chart.backend_coord(&(0.0, y.hi)).1,
            chart.backend_coord(&(0.0, y.lo)).1,
        );
        for (day, text, anchor, dx) in [
            (7.0, "7 days", HPos::Left, 4),
            (30.0, "30 days", HPos::Right, -4),
        ] {
            let px = chart.backend_coord(&(day, 0.0)).0;
            dashed(root, &[(px, y_top - 12), (px, y_bottom)], INK, 1)?;
            text_at(root, text, (px + dx, y_top - 8), TICK_BOLD, anchor)?;
        }
        for (c, line) in curves.iter().zip(&drawn) {
            let color = c.role.colour();
            let at = |d: usize, v: f64| chart.backend_coord(&(d as f64, v));
            // Shown days joined solid; a carried stretch dashed from the last shown day on.
            let mut solid: Vec<Option<(i32, i32)>> = Vec::new();
            for (d, v) in line.iter().enumerate() {
                solid.push(match v {
                    Some((v, false)) => Some(at(d, *v)),
                    _ => None,
                });
            }
            polyline(root, &solid, color, 2)?;
            // Shown days marked, so a reader tells them from the carried ones.
            for p in solid.iter().flatten() {
                marker(root, Marker::Circle, *p, 2, color)?;
            }
            let mut d = 0;
            while d < line.len() {
                if let Some((v, true)) = line[d] {
                    let start = d.saturating_sub(1);
                    let mut end = d;
                    while end + 1 < line.len() && matches!(line[end + 1], Some((_, true))) {
                        end += 1;
                    }
                    // To the next shown day, when there is one, the step up included.
                    let mut path = vec![at(start, v), at(end, v)];
                    if let Some(Some((next, false))) = line.get(end + 1) {
                        path.push(at(end + 1, v));
                        path.push(at(end + 1, *next));
                    }
                    dashed(root, &path, color, 2)?;
                    d = end + 1;
                } else {
                    d += 1;
                }
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Style

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xCC, 0x79, 0xA7),
];
const ACCENT: RGBColor = PALETTE[1];
const ORANGE: RGBColor = PALETTE[3];
const PURPLE: RGBColor = PALETTE[5];
/// The MCOs' colours, in the order of the report's MCOs: none is the own unit's or the state's.
const MCO_COLOURS: [RGBColor; 4] = [PALETTE[0], PALETTE[2], PALETTE[5], PALETTE[4]];
/// A point beyond a control limit (drawn as a larger circle, so shape tells it too).
const SIGNAL_RED: RGBColor = RGBColor(0xB2, 0x00, 0x00);
const CENTRE: RGBColor = RGBColor(0x66, 0x66, 0x66);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const AXIS: RGBColor = RGBColor(0x59, 0x59, 0x59);
const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
const LIMIT: RGBColor = RGBColor(0x8C, 0x8C, 0x8C);
const GRID: RGBColor = RGBColor(0xE3, 0xE3, 0xE3);
const BAND: RGBColor = RGBColor(0xF5, 0xF5, 0xF5);

/// A text style: size in logical pixels (the SVG font-size), weight and colour.
#[derive(Clone, Copy)]
struct Font {
    size: f64,
    bold: bool,
    color: RGBColor,
}

const TITLE: Font = font(15.0, true, INK);
const LABEL: Font = font(12.0, false, INK);
const LABEL_BOLD: Font = font(12.0, true, INK);
const LABEL_MUTED: Font = font(12.0, false, MUTED);
const TICK: Font = font(11.0, false, INK);
const TICK_BOLD: Font = font(11.0, true, INK);
const TICK_MUTED: Font = font(11.0, false, MUTED);

const fn font(size: f64, bold: bool, color: RGBColor) -> Font {
    Font { size, bold, color }
}

/// plotters writes `font-size` as its size divided by 1.24.
const PLOTTERS_EM: f64 = 1.24;

impl Font {
    fn style(self, h: HPos, v: VPos) -> TextStyle<'static> {
        let weight = if self.bold {
            FontStyle::Bold
        } else {
            FontStyle::Normal
        };
        (FAMILY, self.size * PLOTTERS_EM, weight)
            .into_font()
            .color(&self.color)
            .pos(Pos::new(h, v))
    }
}

/// Outer margins, and the height of the title row when there is no legend.
const MARGIN_SIDE: i32 = 16;
const MARGIN_BOTTOM: i32 = 10;
const HEADER: i32 = 44;

// ---------------------------------------------------------------------------------------------
// Drawing helpers

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// Draw on a white SVG canvas, then finish it with its title and description.
fn render(
    size: (u32, u32),
    title: &str,
    desc: String,
    draw: impl FnOnce(&Area<'_>) -> Result<()>,
) -> Result<Drawing> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(failure)?;
        draw(&root)?;
        root.present().map_err(failure)?;
    }
    finish(&svg, title, desc).map(Drawing::Chart)
}

/// Text vertically centred on `y` (on the height of its capitals and digits).
fn text_at(root: &Area<'_>, text: &str, (x, y): (i32, i32), font: Font, h: HPos) -> Result<()> {
    // plotters puts the baseline 0.76 em below a top-anchored position; capitals are 0.73 em tall.
    let top = y - (0.38 * font.size).round() as i32;
    root.draw(&Text::new(
        text.to_owned(),
        (x, top),
        font.style(h, VPos::Top),
    ))
    .map_err(failure)
}

/// What a legend entry shows before its label.
#[derive(Clone, Copy)]
enum Swatch {
    Line {
        color: RGBColor,
        width: u32,
        dashed: bool,
        marker: Option<(Marker, RGBColor)>,
    },
    Point(Marker, RGBColor),
    None,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Triangle,
}

struct Key {
    label: String,
    swatch: Swatch,
}

/// Title at the top left and the legend in rows below it, wrapped to the width; returns the y
/// where the plot may start.
fn header(root: &Area<'_>, title: &str, keys: &[Key]) -> Result<i32> {
    let max_x = WIDTH as i32 - MARGIN_SIDE;
    let title = fit(title, TITLE, f64::from(max_x - MARGIN_SIDE));
    root.draw(&Text::new(
        title,
        (MARGIN_SIDE, 12),
        TITLE.style(HPos::Left, VPos::Top),
    ))
    .map_err(failure)?;
    if keys.is_empty() {
        return Ok(HEADER);
    }
    const SWATCH: i32 = 22;
    const LINE: i32 = 18;
    let (mut x, mut y) = (MARGIN_SIDE, 44);
    for key in keys {
        let swatch = if matches!(key.swatch, Swatch::None) {
            0
        } else {
            SWATCH + 6
        };
        let label = fit(&key.label, LABEL, 300.0);
        let width = swatch + text_width(&label, LABEL).ceil() as i32;
        if x > MARGIN_SIDE && x + width > max_x {
            x = MARGIN_SIDE;
            y += LINE;
        }
        match key.swatch {
            Swatch::Line {
                color,
                width,
                dashed: d,
                marker: m,
            } => {
                let ends = [(x, y), (x + SWATCH, y)];
                if d {
                    dashed(root, &ends, color, width)?;
                } else {
                    segment(root, ends[0], ends[1], color, width)?;
                }
                if let Some((m, c)) = m {
                    marker(root, m, (x + SWATCH / 2, y), 3, c)?;
                }
            }
            Swatch::Point(m, c) => marker(root, m, (x + SWATCH / 2, y), 5, c)?,
            Swatch::None => {}
        }
        let font = if matches!(key.swatch, Swatch::None) {
            LABEL_MUTED
        } else {
            LABEL
        };
        text_at(root, &label, (x + swatch, y), font, HPos::Left)?;
        x += width + 20;
    }
    Ok(y + 20)
}

fn segment(
    root: &Area<'_>,
    a: (i32, i32),
    b: (i32, i32),
    color: RGBColor,
    width: u32,
) -> Result<()> {
    root.draw(&PathElement::new(vec![a, b], color.stroke_width(width)))
        .map_err(failure)
}

fn dashed(root: &Area<'_>, points: &[(i32, i32)], color: RGBColor, width: u32) -> Result<()> {
    let style = color.stroke_width(width);
    root.draw(&DashedPathElement::new(points.to_vec(), 5, 4, style))
        .map_err(failure)
}

/// Lines through the present points, broken at gaps.
fn polyline(
    root: &Area<'_>,
    points: &[Option<(i32, i32)>],
    color: RGBColor,
    width: u32,
) -> Result<()> {
    for run in points.split(Option::is_none) {
        let run: Vec<(i32, i32)> = run.iter().flatten().copied().collect();
        if run.len() > 1 {
            root.draw(&PathElement::new(run, color.stroke_width(width)))
                .map_err(failure)?;
        }
    }
    Ok(())
}

fn marker(root: &Area<'_>, m: Marker, (x, y): (i32, i32), r: i32, color: RGBColor) -> Result<()> {
    let style = color.filled();
    match m {
        Marker::Circle => root.draw(&Circle::new((x, y), r, style)),
        Marker::Square => {
            let r = r - 1;
            root.draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], style))
        }
        Marker::Triangle => {
            let r = r + 1;
            root.draw(&Polygon::new(
                vec![(x, y - r), (x - r, y + r - 1), (x + r, y + r - 1)],
                style,
            ))
        }
    }
    .map_err(failure)
}

// ---------------------------------------------------------------------------------------------
// Axes

/// One axis: its range, ticks with their labels, description, and whether it draws grid lines.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
    desc: String,
    x_grid: bool,
    /// Where a fitted value axis starts, when not at zero.
    from: Option<String>,
}

impl Axis {
    fn blank(desc: &str) -> Axis {
        Axis {
            lo: 0.0,
            hi: 1.0,
            ticks: Vec::new(),
            desc: desc.to_owned(),
            x_grid: false,
            from: None,
        }
    }

    /// ", the value axis starting at 40 (not zero)" for a fitted axis; nothing otherwise.
    fn scale_note(&self) -> String {
        self.from.as_ref().map_or(String::new(), |f| {
            format!(", the value axis starting at {f}, not zero")
        })
    }

    fn coord(&self) -> Ticked {
        Ticked {
            lo: self.lo,
            hi: self.hi,
            ticks: self.ticks.iter().map(|t| t.0).collect(),
        }
    }

    /// Rows of a dot plot: 0 at the bottom, one unit per row, no ticks.
    fn coord_rows(&self, rows: i32) -> Ticked {
        Ticked {
            lo: 0.0,
            hi: f64::from(rows),
            ticks: Vec::new(),
        }
    }

    fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .find(|(t, _)| (t - v).abs() <= 1e-9 * (1.0 + t.abs()))
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

/// A linear axis for plotters whose grid lines and labels are exactly the given ticks.
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let share = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Light grid lines: none.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Width of the area left of the plot: the y description (rotated), then the tick labels.
fn y_area(axis: &Axis) -> i32 {
    let ticks = axis
        .ticks
        .iter()
        .map(|(_, t)| text_width(t, TICK))
        .fold(0.0, f64::max);
    let desc = if axis.desc.is_empty() {
        0.0
    } else {
        LABEL.size + 8.0
    };
    (ticks + 12.0 + desc).ceil() as i32
}

/// Height of the area below the plot: tick labels, then the x description.
fn x_area(axis: &Axis) -> i32 {
    24 + if axis.desc.is_empty() { 0 } else { 18 }
}

/// The plot's width on a standard chart with this y axis.
fn plot_width(y: &Axis) -> f64 {
    f64::from(WIDTH as i32 - 2 * MARGIN_SIDE - y_area(y) - 4)
}

/// The value axis: about five ticks at a round step, a round number above the largest value
/// with some headroom (never above `cap` unless values are), and below from 0 (or below, for
/// negative values). With `fit`, non-negative values whose range lies far from zero get an axis
/// starting at a round number below the smallest instead, so differences between units are seen;
/// [`Axis::scale_note`] then says where it starts, and the description says so too. Returns the
/// step between ticks too.
fn value_axis(
    values: impl Iterator<Item = f64>,
    cap: Option<f64>,
    suffix: &str,
    desc: &str,
    fit: bool,
) -> (Axis, f64) {
    let values: Vec<f64> = values.collect();
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (min, max) = if values.is_empty() {
        (0.0, 0.0)
    } else {
        (min, max)
    };
    let zero_based = scale(min.min(0.0), max.max(0.0), cap, max);
    let mut chosen = zero_based;
    if fit && min > 0.0 {
        let fitted = scale(min, max, cap, max);
        // Fitted only when starting at zero would leave more than a third of the plot empty.
        if fitted.0 > 0.0 && fitted.0 > (fitted.1 - fitted.0) / 2.0 {
            chosen = fitted;
        }
    }
    let (lo, top, step) = chosen;
    let d = decimals(step);
    let count = ((top - lo) / step + 1e-9).floor() as usize;
    let ticks = (0..=count)
        .map(|i| lo + i as f64 * step)
        .map(|t| (t, format!("{}{suffix}", number(t, d))))
        .collect();
    let mut desc = desc.to_owned();
    let from = (lo > 0.0).then(|| format!("{}{suffix}", number(lo, d)));
    if let Some(from) = &from {
        desc = format!("{desc} (axis from {from})");
    }
    let axis = Axis {
        lo,
        hi: top,
        ticks,
        desc,
        x_grid: false,
        from,
    };
    (axis, step)
}

/// A round range (low, top, step) for values from `lo` to `hi`: the step 1, 2, 2.5 or 5 times a
/// power of ten giving about five ticks, some headroom above, `cap` respected unless `max` is
/// above it.
fn scale(lo: f64, hi: f64, cap: Option<f64>, max: f64) -> (f64, f64, f64) {
    let (mut lo, mut hi) = (lo, hi);
    // Nothing but one value: a unit scale from zero, or a tenth either side of it.
    let flat = hi - lo < 1e-12;
    if flat && lo == 0.0 {
        hi = 1.0;
    } else if flat {
        let pad = (lo.abs() / 10.0).max(1e-9);
        (lo, hi) = (lo - pad, hi + pad);
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let low = (lo / step + 1e-9).floor() * step;
    let mut top = (hi / step - 1e-9).ceil() * step;
    if !flat && hi > top - 0.04 * (top - low) {
        top += step;
    }
    if let Some(cap) = cap
        && max <= cap
    {
        top = top.min(cap).max(hi);
    }
    (low, top, step)
}

/// Periods on the x axis at 0, 1, …; labels thinned to every k-th so they do not overlap.
fn period_axis(labels: &[String], n: usize, plot_width: f64) -> Axis {
    let n = n.max(1);
    let widest = labels
        .iter()
        .map(|l| text_width(l, TICK))
        .fold(0.0, f64::max);
    let slot = plot_width / n as f64;
    let every = ((widest + 12.0) / slot).ceil().max(1.0) as usize;
    let ticks = (0..n)
        .step_by(every)
        .map(|i| (i as f64, labels.get(i).cloned().unwrap_or_default()))
        .collect();
    Axis {
        lo: -0.5,
        hi: n as f64 - 0.5,
        ticks,
        desc: String::new(),
        x_grid: false,
        from: None,
    }
}

/// The plot area below `top` with axes, grid and tick labels drawn.
fn axes<'a, 'b>(root: &'a Area<'b>, top: i32, x: &Axis, y: &Axis) -> Result<Plot<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .margin_top(top)
        .margin_left(MARGIN_SIDE)
        .margin_right(MARGIN_SIDE + 4)
        .margin_bottom(MARGIN_BOTTOM)
        .set_label_area_size(LabelAreaPosition::Left, y_area(y))
        .set_label_area_size(LabelAreaPosition::Bottom, x_area(x))
        .build_cartesian_2d(x.coord(), y.coord())
        .map_err(failure)?;
    mesh(&mut chart, x, y, true)?;
    Ok(chart)
}

/// Axis lines, tick marks and labels, descriptions and (with `grid`) grid lines at the y ticks
/// (and the x ticks for an axis that asks).
fn mesh(chart: &mut Plot<'_, '_>, x: &Axis, y: &Axis, grid: bool) -> Result<()> {
    let fx = |v: &f64| x.label(*v);
    let fy = |v: &f64| y.label(*v);
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let x_desc = fit(&x.desc, LABEL, f64::from(xs.end - xs.start));
    let y_desc = fit(&y.desc, LABEL, f64::from(ys.end - ys.start));
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.stroke_width(1))
        .x_label_style(TICK.style(HPos::Center, VPos::Top))
        .y_label_style(TICK.style(HPos::Right, VPos::Center))
        .axis_desc_style(LABEL.style(HPos::Center, VPos::Top))
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .set_all_tick_mark_size(4);
    if !x_desc.is_empty() {
        mesh.x_desc(x_desc);
    }
    if !y_desc.is_empty() {
        mesh.y_desc(y_desc);
    }
    if !grid {
        mesh.disable_mesh();
    } else if !x.x_grid {
        mesh.disable_x_mesh();
    }
    mesh.draw().map_err(failure)
}

// ---------------------------------------------------------------------------------------------
// Numbers and text

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The fewest decimals that write every multiple of `step` exactly.
fn decimals(step: f64) -> usize {
    (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(6)
}

/// A number with `decimals` decimals, thousands separators and a true minus sign; never "−0".
fn number(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if let Some(f) = frac {
        grouped.push('.');
        grouped.push_str(f);
    }
    let zero = grouped.chars().all(|c| matches!(c, '0' | '.' | ','));
    if v < 0.0 && !zero {
        format!("\u{2212}{grouped}")
    } else {
        grouped
    }
}

/// `text` shortened with "…" to at most `max` pixels wide.
fn fit(text: &str, font: Font, max: f64) -> String {
    if text_width(text, font) <= max {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    // The longest prefix that fits, by bisection.
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "…";
        if text_width(&candidate, font) <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect::<String>().trim_end().to_owned() + "…"
}

/// The width `text` takes in `font`, laid out by usvg with the embedded fonts.
fn text_width(text: &str, font: Font) -> f64 {
    if text.trim().is_empty() {
        return 0.0;
    }
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8000" height="100"><text x="0" y="50" font-family="{FAMILY}" font-size="{}" font-weight="{}">{}</text></svg>"#,
        font.size,
        if font.bold { "bold" } else { "normal" },
        escape(text)
    );
    match usvg::Tree::from_str(&svg, &svg_options()) {
        Ok(tree) => f64::from(tree.root().bounding_box().width()),
        // Unreachable with well-formed input; a generous estimate keeps layout going.
        Err(_) => text.chars().count() as f64 * font.size * 0.65,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------------
// Fonts, outlines and pixels

const FAMILY: &str = "DejaVu Sans";
static REGULAR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));
static BOLD: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans-Bold.ttf"
));

/// The embedded faces and nothing else, parsed once; every generic family is DejaVu Sans.
static FONTS: LazyLock<Arc<usvg::fontdb::Database>> = LazyLock::new(|| {
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(REGULAR.to_vec());
    db.load_font_data(BOLD.to_vec());
    db.set_sans_serif_family(FAMILY);
    db.set_serif_family(FAMILY);
    db.set_monospace_family(FAMILY);
    db.set_cursive_family(FAMILY);
    db.set_fantasy_family(FAMILY);
    Arc::new(db)
});

fn svg_options() -> usvg::Options<'static> {
    usvg::Options {
        font_family: FAMILY.to_owned(),
        fontdb: Arc::clone(&FONTS),
        ..usvg::Options::default()
    }
}

/// plotters' SVG → the same SVG with text as outlines, `role="img"`, the title and description
/// as `<title>` and `<desc>`, and its PNG at [`PNG_SCALE`].
fn finish(svg: &str, title: &str, desc: String) -> Result<Rendered> {
    let tree = usvg::Tree::from_str(svg, &svg_options()).map_err(failure)?;
    // Hundredths of a logical pixel are below what any screen or printer shows, and rounding
    // there keeps the file small and the same wherever floating point differs in its last bits.
    let outlined = tree.to_string(&usvg::WriteOptions {
        coordinates_precision: 2,
        transforms_precision: 4,
        ..usvg::WriteOptions::default()
    });
    if outlined.contains("<text") {
        return Err(failure("text was left in a chart instead of outlines"));
    }
    let size = tree.size();
    // A viewBox lets the SVG scale to its container (usvg writes only width and height).
    let open = format!(
        "<svg role=\"img\" viewBox=\"0 0 {} {}\" ",
        size.width(),
        size.height()
    );
    let mut outlined = outlined.replacen("<svg ", &open, 1);
    // The accessible name and description: the first children of the root element.
    let Some(end) = outlined.find('>') else {
        return Err(failure("usvg wrote no root element"));
    };
    outlined.insert_str(
        end + 1,
        &format!(
            "\n<title>{}</title>\n<desc>{}</desc>",
            escape(title),
            escape(&desc)
        ),
    );
    let scale = PNG_SCALE as f32;
    let (w, h) = (
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| failure("a chart has no area"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let png = pixmap.encode_png().map_err(failure)?;
    Ok(Rendered {
        svg: outlined,
        png,
        desc,
    })
}

/// Drawing and conversion errors.
fn failure(e: impl std::fmt::Display) -> Error {
    Error::Report(format!("chart: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators_and_no_negative_zero() {
        assert_eq!(number(1234.5, 1), "1,234.5");
        assert_eq!(number(1_000_000.0, 0), "1,000,000");
        assert_eq!(number(-0.04, 1), "0.0");
        assert_eq!(number(-12.5, 1), "\u{2212}12.5");
        assert_eq!(decimals(2.5), 1);
        assert_eq!(decimals(0.05), 2);
        assert_eq!(decimals(200.0), 0);
    }

    #[test]
    fn value_axis_starts_at_zero_with_round_headroom() {
        let (axis, step) = value_axis([41.0, 65.0].into_iter(), None, "", "", false);
        assert_eq!((axis.lo, axis.hi, step), (0.0, 80.0, 20.0));
        assert_eq!(axis.ticks.last().map(|t| t.1.as_str()), Some("80"));
        // Negative values take the axis below zero; zeros alone get a unit scale.
        let (axis, _) = value_axis([-3.5, 1.0].into_iter(), None, "", "", false);
        assert!(axis.lo <= -3.5 && axis.hi >= 1.0);
        let (axis, _) = value_axis([0.0].into_iter(), None, "", "", false);
        assert_eq!((axis.lo, axis.hi), (0.0, 1.0));
        // A share never runs past 100 %.
        let (axis, _) = value_axis([99.0, 100.0].into_iter(), Some(100.0), "%", "", false);
        assert_eq!(axis.hi, 100.0);
        assert_eq!(axis.ticks.last().map(|t| t.1.as_str()), Some("100%"));
    }

    #[test]
    fn a_fitted_axis_starts_near_the_values_and_says_so() {
        // Rates from 41 to 65: zero would leave most of the plot empty.
        let (axis, step) = value_axis([41.0, 65.0].into_iter(), None, "", "Percent", true);
        assert_eq!((axis.lo, axis.hi, step), (40.0, 70.0, 5.0));
        assert_eq!(axis.desc, "Percent (axis from 40)");
        assert!(axis.scale_note().contains("starting at 40"));
        // Values from 5 to 65 stay on a zero-based axis, without a note.
        let (axis, _) = value_axis([5.0, 65.0].into_iter(), None, "", "Percent", true);
        assert_eq!(axis.lo, 0.0);
        assert_eq!(axis.desc, "Percent");
        assert!(axis.scale_note().is_empty());
        // One value far from zero: centred, never a zero-height range.
        let (axis, _) = value_axis([50.0, 50.0].into_iter(), None, "", "", true);
        assert!(axis.lo < 50.0 && axis.hi > 50.0 && axis.lo > 0.0);
        // A share near 100 keeps its cap.
        let (axis, _) = value_axis([96.0, 99.5].into_iter(), Some(100.0), "%", "", true);
        assert!(
            axis.lo > 90.0 && axis.hi == 100.0,
            "{} {}",
            axis.lo,
            axis.hi
        );
    }

    #[test]
    fn text_is_measured_with_the_embedded_font_and_shortened_to_fit() {
        let narrow = text_width("iii", LABEL);
        let wide = text_width("WWW", LABEL);
        assert!(narrow > 0.0 && wide > 2.0 * narrow);
        assert!(text_width("Title", TITLE) > text_width("Title", LABEL));
        let long = "UnitedHealthcare Community Plan of Kansas";
        let short = fit(long, LABEL, 120.0);
        assert!(short.ends_with('…') && text_width(&short, LABEL) <= 120.0);
        assert_eq!(fit("Aetna", LABEL, 120.0), "Aetna");
    }

    #[test]
    fn period_labels_are_thinned_when_crowded() {
        let labels: Vec<String> = (0..40)
            .map(|i| format!("20{:02}Q{}", 10 + i / 4, i % 4 + 1))
            .collect();
        let axis = period_axis(&labels, labels.len(), 600.0);
        assert!(axis.ticks.len() < 40 && axis.ticks.len() >= 5);
        let axis = period_axis(&labels[..4], 4, 600.0);
        assert_eq!(axis.ticks.len(), 4);
    }
}
