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
/// lookup) and PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub svg: String,
    /// Twice the SVG's logical size, on white.
    pub png: Vec<u8>,
}

/// One line of a trend chart; `None` points are gaps (suppressed or missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
    /// Drawn thicker, with larger points, on top of the others.
    pub emphasis: bool,
}

/// One estimate with its 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub label: String,
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Drawn in the accent colour with a bold label (e.g. the partner reading the report).
    pub highlight: bool,
}

/// Logical size of a chart; a dot plot's height grows with its rows.
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 360;
/// The PNG's pixels per logical pixel.
pub const PNG_SCALE: u32 = 2;

const NO_DATA: &str = "no data";
const ALL_SUPPRESSED: &str = "all values suppressed";

// ---------------------------------------------------------------------------------------------
// Trend

/// Trend over periods (x labels like "2024Q1"), several series (e.g. this partner, its MCO, the
/// state), with a legend when there is more than one. Period labels are thinned when they would
/// overlap; values beyond the labels get blank ones.
pub fn trend(
    title: &str,
    y_label: &str,
    x_labels: &[String],
    series: &[Series],
) -> Result<Rendered> {
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
        return empty(title, if suppressed { ALL_SUPPRESSED } else { NO_DATA });
    }
    render((WIDTH, HEIGHT), |root| {
        let keys: Vec<Key> = if series.len() > 1 {
            series
                .iter()
                .enumerate()
                .map(|(i, s)| Key {
                    label: s.label.clone(),
                    swatch: Swatch::Line {
                        color: colour(i),
                        width: if s.emphasis { 3 } else { 2 },
                        dashed: false,
                        marker: Some((Marker::Circle, colour(i))),
                    },
                })
                .collect()
        } else {
            Vec::new()
        };
        let top = header(root, title, &keys)?;
        let (y, _) = value_axis(lines.iter().flatten().flatten().copied(), None, "", y_label);
        let x = period_axis(x_labels, n, plot_width(&y));
        let chart = axes(root, top, &x, &y)?;
        // Emphasised series last, so they lie on top.
        let order = (0..series.len())
            .filter(|&i| !series[i].emphasis)
            .chain((0..series.len()).filter(|&i| series[i].emphasis));
        for i in order {
            let (width, radius) = if series[i].emphasis { (3, 4) } else { (2, 3) };
            let points: Vec<Option<(i32, i32)>> = lines[i]
                .iter()
                .enumerate()
                .map(|(x, v)| v.map(|v| chart.backend_coord(&(x as f64, v))))
                .collect();
            polyline(root, &points, colour(i), width)?;
            for p in points.iter().flatten() {
                marker(root, Marker::Circle, *p, radius, colour(i))?;
            }
        }
        Ok(())
    })
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
/// value `None` are listed with the text "suppressed".
pub fn dot_plot(
    title: &str,
    x_label: &str,
    items: &[Estimate],
    reference: Option<(&str, f64)>,
) -> Result<Rendered> {
    if items.is_empty() {
        return empty(title, NO_DATA);
    }
    if items.iter().all(|e| finite(e.value).is_none()) {
        return empty(title, ALL_SUPPRESSED);
    }
    if items.len() > MAX_ROWS {
        return Err(failure(format!(
            "{title}: {} rows are too many for a dot plot (at most {MAX_ROWS})",
            items.len()
        )));
    }
    let reference = reference.filter(|(_, v)| v.is_finite());
    let rows = items.len() as i32;
    let plot_top = HEADER + if reference.is_some() { 22 } else { 0 };
    let x_axis_height = x_area(&Axis::blank(x_label));
    let height = plot_top + rows * ROW + x_axis_height + MARGIN_BOTTOM;
    render((WIDTH, height as u32), |root| {
        header(root, title, &[])?;
        let values = items
            .iter()
            .flat_map(|e| [e.value, e.lower, e.upper])
            .chain([reference.map(|r| r.1)])
            .filter_map(finite);
        let (x, step) = value_axis(values, None, "", x_label);
        let decimals = decimals(step) + 1;

        // Left: the unit labels; right: value and interval.
        let label_font = |e: &Estimate| match (e.highlight, finite(e.value).is_some()) {
            (true, _) => LABEL_BOLD,
            (false, true) => LABEL,
            (false, false) => LABEL_MUTED,
        };
        let label_width = items
            .iter()
            .map(|e| text_width(&e.label, label_font(e)))
            .fold(0.0, f64::max)
            .min(220.0);
        let texts: Vec<String> = items.iter().map(|e| estimate_text(e, decimals)).collect();
        let text_width_right = items
            .iter()
            .zip(&texts)
            .map(|(e, t)| text_width(t, if e.highlight { TICK_BOLD } else { TICK }))
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
            dashed(root, &[(px, y_top - 4), (px, y_bottom)], INK, 1)?;
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
            let color = if e.highlight { ACCENT } else { colour(0) };
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
            let font = if e.highlight { TICK_BOLD } else { TICK };
            text_at(root, value_text, (x1 + 14, py), font, HPos::Left)?;
        }
        Ok(())
    })
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
/// step lines, the points joined, and points with a signal marked by colour and shape with a
/// legend of the signal kinds that occur. Values are drawn as they are: scale the chart first
/// for the unit of `y_label` (a p-chart's proportions times 100 for percent, a u-chart's rate
/// times 1,000 for per 1,000). A point with several signals shows the first of: beyond a limit,
/// shift, trend. A point without a value (suppressed, or no denominator) is a gap; its limits
/// are still drawn.
pub fn spc(title: &str, y_label: &str, chart: &spc::Chart) -> Result<Rendered> {
    let values: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.value)).collect();
    if values.iter().all(Option::is_none) {
        return empty(title, NO_DATA);
    }
    let lower: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.lower)).collect();
    let upper: Vec<Option<f64>> = chart.points.iter().map(|p| finite(p.upper)).collect();
    let centre = finite(chart.centre);
    let signal = |p: &spc::Point| SIGNALS.iter().find(|s| p.signals.contains(&s.0)).copied();
    let labels: Vec<String> = chart.points.iter().map(|p| p.label.clone()).collect();
    let n = chart.points.len();

    render((WIDTH, HEIGHT), |root| {
        let all = values.iter().chain(&lower).chain(&upper).chain([&centre]);
        let (y, step) = value_axis(all.flatten().copied(), None, "", y_label);
        let mut keys = vec![Key {
            label: "Observed".into(),
            swatch: Swatch::Line {
                color: colour(0),
                width: 2,
                dashed: false,
                marker: Some((Marker::Circle, colour(0))),
            },
        }];
        if let Some(c) = centre {
            keys.push(Key {
                label: format!("Centre line {}", number(c, decimals(step) + 1)),
                swatch: Swatch::Line {
                    color: INK,
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
            segment(root, px(-0.5, c), px(n as f64 - 0.5, c), INK, 2)?;
        }
        let points: Vec<Option<(i32, i32)>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| v.map(|v| px(i as f64, v)))
            .collect();
        polyline(root, &points, colour(0), 2)?;
        for (p, point) in points.iter().zip(&chart.points) {
            let Some(p) = *p else { continue };
            match signal(point) {
                Some((_, m, color)) => marker(root, m, p, 5, color)?,
                None => marker(root, Marker::Circle, p, 3, colour(0))?,
            }
        }
        Ok(())
    })
}

/// Signal kinds in the order a point shows them, with their marker and colour.
const SIGNALS: [(Signal, Marker, RGBColor); 3] = [
    (Signal::BeyondLimit, Marker::Circle, ACCENT),
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

/// Cumulative follow-up curve: the share (0 to 100 %) followed up by each day 0 to 30 after
/// discharge, one curve per series, dashed marks at day 7 and day 30 labelled "7 days" and
/// "30 days". Each curve has 31 values, `f64` or `Option<f64>`; extra values are ignored, and
/// missing, `None` (e.g. suppressed days) or non-finite ones are gaps.
pub fn cumulative<V: Copy + Into<Option<f64>>>(
    title: &str,
    curves: &[(String, Vec<V>)],
) -> Result<Rendered> {
    let lines: Vec<Vec<Option<f64>>> = curves
        .iter()
        .map(|(_, v)| {
            v.iter()
                .take(FOLLOW_UP_DAYS + 1)
                .map(|v| finite((*v).into()))
                .collect()
        })
        .collect();
    if lines.iter().flatten().all(Option::is_none) {
        return empty(title, NO_DATA);
    }
    render((WIDTH, HEIGHT), |root| {
        let keys: Vec<Key> = if curves.len() > 1 {
            curves
                .iter()
                .enumerate()
                .map(|(i, (label, _))| Key {
                    label: label.clone(),
                    swatch: Swatch::Line {
                        color: colour(i),
                        width: 2,
                        dashed: false,
                        marker: None,
                    },
                })
                .collect()
        } else {
            Vec::new()
        };
        // Room above the plot for the day marks' labels.
        let top = header(root, title, &keys)? + 14;
        let values = lines.iter().flatten().flatten().copied().chain([100.0]);
        let (y, _) = value_axis(values, Some(100.0), "%", "Followed up");
        let x = Axis {
            lo: -0.6,
            hi: FOLLOW_UP_DAYS as f64 + 0.6,
            ticks: (0..=FOLLOW_UP_DAYS)
                .step_by(5)
                .map(|d| (d as f64, d.to_string()))
                .collect(),
            desc: "Days after the discharge or ED visit".into(),
            x_grid: false,
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
        for (i, line) in lines.iter().enumerate() {
            let points: Vec<Option<(i32, i32)>> = line
                .iter()
                .enumerate()
                .map(|(d, v)| v.map(|v| chart.backend_coord(&(d as f64, v))))
                .collect();
            polyline(root, &points, colour(i), 2)?;
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
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const AXIS: RGBColor = RGBColor(0x59, 0x59, 0x59);
const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
const LIMIT: RGBColor = RGBColor(0x8C, 0x8C, 0x8C);
const GRID: RGBColor = RGBColor(0xE3, 0xE3, 0xE3);
const BAND: RGBColor = RGBColor(0xF5, 0xF5, 0xF5);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

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
const NOTE: Font = font(14.0, false, MUTED);

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

/// Draw on a white SVG canvas, then finish it.
fn render(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<Rendered> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(failure)?;
        draw(&root)?;
        root.present().map_err(failure)?;
    }
    finish(&svg)
}

/// The title and a framed message instead of a chart.
fn empty(title: &str, message: &str) -> Result<Rendered> {
    render((WIDTH, HEIGHT), |root| {
        let top = header(root, title, &[])?;
        let (right, bottom) = (
            WIDTH as i32 - MARGIN_SIDE,
            HEIGHT as i32 - MARGIN_BOTTOM - 6,
        );
        let frame = Rectangle::new([(MARGIN_SIDE, top), (right, bottom)], GRID.stroke_width(1));
        root.draw(&frame).map_err(failure)?;
        text_at(
            root,
            message,
            (WIDTH as i32 / 2, (top + bottom) / 2),
            NOTE,
            HPos::Center,
        )
    })
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
}

impl Axis {
    fn blank(desc: &str) -> Axis {
        Axis {
            lo: 0.0,
            hi: 1.0,
            ticks: Vec::new(),
            desc: desc.to_owned(),
            x_grid: false,
        }
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

/// The value axis: from 0 (or below, for negative values) to a round number above the largest
/// value with some headroom, never above `cap` unless values are; about five ticks. Returns
/// the step between ticks too.
fn value_axis(
    values: impl Iterator<Item = f64>,
    cap: Option<f64>,
    suffix: &str,
    desc: &str,
) -> (Axis, f64) {
    let (min, max) = values.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, mut hi) = (min, max);
    // Nothing but zeros (or one value at 0): a unit scale, the value on its floor.
    let flat = hi - lo < 1e-12;
    if flat {
        hi = lo + 1.0;
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let lo = (lo / step + 1e-9).floor() * step;
    let mut top = (hi / step - 1e-9).ceil() * step;
    if !flat && hi > top - 0.04 * (top - lo) {
        top += step;
    }
    if let Some(cap) = cap
        && max <= cap
    {
        top = top.min(cap).max(hi);
    }
    let d = decimals(step);
    let count = ((top - lo) / step + 1e-9).floor() as usize;
    let ticks = (0..=count)
        .map(|i| lo + i as f64 * step)
        .map(|t| (t, format!("{}{suffix}", number(t, d))))
        .collect();
    let axis = Axis {
        lo,
        hi: top,
        ticks,
        desc: desc.to_owned(),
        x_grid: false,
    };
    (axis, step)
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

/// plotters' SVG → the same SVG with text as outlines, and its PNG at [`PNG_SCALE`].
fn finish(svg: &str) -> Result<Rendered> {
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
    let view_box = format!("<svg viewBox=\"0 0 {} {}\" ", size.width(), size.height());
    let outlined = outlined.replacen("<svg ", &view_box, 1);
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
    Ok(Rendered { svg: outlined, png })
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
        let (axis, step) = value_axis([41.0, 65.0].into_iter(), None, "", "");
        assert_eq!((axis.lo, axis.hi, step), (0.0, 80.0, 20.0));
        assert_eq!(axis.ticks.last().map(|t| t.1.as_str()), Some("80"));
        // Negative values take the axis below zero; zeros alone get a unit scale.
        let (axis, _) = value_axis([-3.5, 1.0].into_iter(), None, "", "");
        assert!(axis.lo <= -3.5 && axis.hi >= 1.0);
        let (axis, _) = value_axis([0.0].into_iter(), None, "", "");
        assert_eq!((axis.lo, axis.hi), (0.0, 1.0));
        // A share never runs past 100 %.
        let (axis, _) = value_axis([99.0, 100.0].into_iter(), Some(100.0), "%", "");
        assert_eq!(axis.hi, 100.0);
        assert_eq!(axis.ticks.last().map(|t| t.1.as_str()), Some("100%"));
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
