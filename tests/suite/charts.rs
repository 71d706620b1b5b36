//! The report charts: every kind renders to an SVG of outlines (no text, no font lookup) with a
//! title and a text description, and a PNG at twice its size that is not blank, the same bytes
//! every time; edge cases (one point, zero-width intervals, zeros) draw without panicking, and a
//! chart with nothing to draw (no data, everything suppressed) is no chart but a reason.

use std::io::Cursor;

use hhq::chart::{
    self, Curve, Drawing, Empty, Estimate, HEIGHT, PNG_SCALE, Rendered, Role, Series, WIDTH,
};
use hhq::spc;
use resvg::usvg;

fn quarters(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}Q{}", 2022 + i / 4, i % 4 + 1))
        .collect()
}

fn series(label: &str, values: &[Option<f64>], own: bool) -> Series {
    Series {
        label: label.into(),
        values: values.to_vec(),
        role: if own { Role::Own } else { Role::Other },
    }
}

fn estimate(label: &str, value: Option<f64>, lower: f64, upper: f64, own: bool) -> Estimate {
    Estimate {
        label: label.into(),
        value,
        lower: value.map(|_| lower),
        upper: value.map(|_| upper),
        role: if own { Role::Own } else { Role::Other },
    }
}

fn curve<V>(label: &str, values: Vec<V>) -> Curve<V> {
    Curve {
        label: label.into(),
        values,
        role: Role::State,
    }
}

/// The chart drawn; panics on an error or an empty drawing.
fn drawn(d: hhq::Result<Drawing>) -> Rendered {
    match d.expect("renders") {
        Drawing::Chart(r) => r,
        Drawing::Empty(why) => panic!("expected a chart, got none: {why}"),
    }
}

/// Why nothing was drawn; panics on a chart.
fn empty(d: hhq::Result<Drawing>) -> Empty {
    match d.expect("renders") {
        Drawing::Empty(why) => why,
        Drawing::Chart(r) => panic!("expected no chart, got one: {}", r.desc),
    }
}

/// The checks every chart must pass; returns the PNG's logical height.
fn check(r: &Rendered) -> u32 {
    // The SVG parses with no fonts at all: every glyph is a path.
    let tree = usvg::Tree::from_str(&r.svg, &usvg::Options::default()).expect("SVG parses");
    assert!(!r.svg.contains("<text"), "text left in the SVG");
    assert!(r.svg.contains("<path"), "no paths in the SVG");
    assert_eq!(tree.size().width(), WIDTH as f32);
    // A text alternative: role, title and description right inside the root element.
    let root_end = r.svg.find('>').unwrap();
    assert!(r.svg[..root_end].contains(r#"role="img""#), "no role=img");
    let title = r.svg.find("<title>").expect("no <title>");
    let desc = r.svg.find("<desc>").expect("no <desc>");
    assert!(root_end < title && title < desc && desc < r.svg.find("<path").unwrap());
    assert!(!r.desc.is_empty() && r.svg.contains(&r.desc.replace('&', "&amp;")));

    let mut reader = png::Decoder::new(Cursor::new(&r.png))
        .read_info()
        .expect("PNG decodes");
    let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut pixels).expect("PNG frame");
    assert_eq!(info.width, WIDTH * PNG_SCALE);
    assert_eq!(info.height, tree.size().height() as u32 * PNG_SCALE);
    let px = info.color_type.samples();
    let first = &pixels[..px];
    let distinct = pixels[..info.buffer_size()]
        .chunks(px)
        .filter(|p| *p != first)
        .count();
    // More than a stray pixel differs from the white background.
    assert!(
        distinct > 1000,
        "PNG is blank ({distinct} non-background pixels)"
    );
    info.height / PNG_SCALE
}

/// Rendering twice gives the same bytes.
fn check_deterministic(draw: impl Fn() -> hhq::Result<Drawing>) -> Rendered {
    let a = drawn(draw());
    let b = drawn(draw());
    assert_eq!(a.svg, b.svg, "SVG differs between two renders");
    assert_eq!(a.png, b.png, "PNG differs between two renders");
    check(&a);
    a
}

#[test]
fn trend_renders_several_series_with_gaps_deterministically() {
    let x = quarters(12);
    let a: Vec<Option<f64>> = (0..12)
        .map(|i| (i != 4).then_some(40.0 + i as f64))
        .collect();
    let b: Vec<Option<f64>> = (0..12).map(|i| Some(45.0 + (i % 3) as f64)).collect();
    let c: Vec<Option<f64>> = (0..12).map(|_| Some(50.0)).collect();
    let r = check_deterministic(|| {
        chart::trend(
            "FUH-HH: follow-up within 7 days",
            "Percent followed up",
            &x,
            &[
                series("This partner", &a, true),
                series("Its MCO", &b, false),
                series("State", &c, false),
            ],
        )
    });
    assert_eq!(check(&r), HEIGHT);
}

#[test]
fn trend_edge_cases_draw() {
    let x = quarters(4);
    // No data at all, all suppressed, a single point at zero, negative values, many periods.
    assert_eq!(
        empty(chart::trend("Empty", "Rate", &[], &[])),
        Empty::NoData
    );
    assert_eq!(
        empty(chart::trend("No series", "Rate", &x, &[])),
        Empty::NoData
    );
    let none = series("A", &[None, None, None, None], false);
    assert_eq!(
        empty(chart::trend("All suppressed", "Rate", &x, &[none])),
        Empty::AllSuppressed
    );
    let one = series("A", &[Some(0.0)], true);
    check(&drawn(chart::trend("One point", "Rate", &x[..1], &[one])));
    let zeros = series("A", &[Some(0.0); 4], false);
    check(&drawn(chart::trend("Zeros", "Rate", &x, &[zeros])));
    let negative = series(
        "Change",
        &[Some(-3.5), Some(1.0), None, Some(f64::NAN)],
        false,
    );
    check(&drawn(chart::trend("Negative", "Change", &x, &[negative])));
    let long = quarters(60);
    let many = series("A", &vec![Some(1234.5); 60], false);
    check(&drawn(chart::trend(
        "Sixty quarters",
        "Rate",
        &long,
        &[many],
    )));
    // More values than labels, and a title far too long for the width.
    let more = series("A", &[Some(1.0); 8], false);
    let title = "A very long title ".repeat(10);
    check(&drawn(chart::trend(&title, "Rate", &x, &[more])));
}

#[test]
fn dot_plot_renders_rows_reference_and_suppressed_rows() {
    let items = vec![
        estimate(
            "Aetna Better Health of Kansas",
            Some(52.3),
            45.0,
            60.0,
            false,
        ),
        estimate("Sunflower Health Plan", Some(61.0), 55.2, 66.1, true),
        estimate("Small partner", None, 0.0, 0.0, false),
        estimate("Zero-width interval", Some(0.0), 0.0, 0.0, false),
    ];
    let r = check_deterministic(|| {
        chart::dot_plot("HH-TCC by MCO", "Percent", &items, Some(("State", 54.3)))
    });
    // The height grows with the rows.
    let few = drawn(chart::dot_plot("HH-TCC", "Percent", &items[..1], None));
    assert!(check(&r) > check(&few));
    let many: Vec<Estimate> = (0..40)
        .map(|i| {
            estimate(
                &format!("Partner {i:02}"),
                Some(i as f64),
                0.0,
                50.0,
                i == 7,
            )
        })
        .collect();
    let tall = drawn(chart::dot_plot("Forty partners", "Rate", &many, None));
    assert!(check(&tall) > HEIGHT);
}

#[test]
fn dot_plot_edge_cases_draw() {
    assert_eq!(
        empty(chart::dot_plot("Empty", "Rate", &[], Some(("State", 10.0)))),
        Empty::NoData
    );
    let suppressed = [estimate("A", None, 0.0, 0.0, true)];
    assert_eq!(
        empty(chart::dot_plot("All suppressed", "Rate", &suppressed, None)),
        Empty::AllSuppressed
    );
    let half = Estimate {
        label: "Value without interval".into(),
        value: Some(3.0),
        lower: None,
        upper: Some(f64::INFINITY),
        role: Role::Mco(2),
    };
    check(&drawn(chart::dot_plot(
        "Half an interval",
        "Rate",
        &[half],
        Some(("NaN", f64::NAN)),
    )));
    let negative = [estimate("Change", Some(-2.0), -5.0, 1.0, false)];
    check(&drawn(chart::dot_plot(
        "Negative",
        "Change",
        &negative,
        Some(("Zero", 0.0)),
    )));
}

fn p_chart() -> spc::Chart {
    let mut periods: Vec<(String, f64, f64)> =
        quarters(16).into_iter().map(|q| (q, 25.0, 100.0)).collect();
    // A point beyond the limits, a gap, and a steady rise.
    periods[3].1 = 60.0;
    periods[5].2 = 0.0;
    for (i, p) in periods.iter_mut().enumerate().skip(9) {
        p.1 = 20.0 + i as f64;
    }
    spc::chart(spc::Kind::P, &periods)
}

#[test]
fn spc_renders_limits_and_signals() {
    let c = p_chart();
    assert!(c.points.iter().any(|p| !p.signals.is_empty()));
    let r =
        check_deterministic(|| chart::spc("HH-ENGAGE p-chart", "Share of months", &c, Role::Own));
    // The description names the quarters with signals.
    let flagged = c.points.iter().find(|p| !p.signals.is_empty()).unwrap();
    assert!(r.desc.contains(&flagged.label), "{}", r.desc);
    assert_eq!(check(&r), HEIGHT);
    let periods: Vec<(String, f64, f64)> = quarters(8)
        .into_iter()
        .enumerate()
        .map(|(i, q)| (q, 40.0 + i as f64, 1000.0))
        .collect();
    let u = spc::chart(spc::Kind::U, &periods);
    check(&drawn(chart::spc(
        "AMB-HH u-chart",
        "Visits per member month",
        &u,
        Role::State,
    )));
}

#[test]
fn spc_edge_cases_draw() {
    let none = spc::chart(spc::Kind::P, &[]);
    assert_eq!(
        empty(chart::spc("No periods", "Percent", &none, Role::State)),
        Empty::NoData
    );
    let no_denominators = spc::chart(spc::Kind::P, &[("2024Q1".into(), 0.0, 0.0)]);
    assert_eq!(
        empty(chart::spc(
            "No denominators",
            "Percent",
            &no_denominators,
            Role::State
        )),
        Empty::AllSuppressed
    );
    let one = spc::chart(spc::Kind::U, &[("2024Q1".into(), 0.0, 10.0)]);
    check(&drawn(chart::spc(
        "One period of zeros",
        "Rate",
        &one,
        Role::State,
    )));
}

#[test]
fn cumulative_renders_curves_with_day_marks() {
    let curve = |k: f64| -> Vec<f64> {
        (0..=30)
            .map(|d| 80.0 * (1.0 - (-(d as f64) / k).exp()))
            .collect()
    };
    let curves = vec![
        Curve {
            label: "This partner".into(),
            values: curve(5.0),
            role: Role::Own,
        },
        Curve {
            label: "State".into(),
            values: curve(9.0),
            role: Role::State,
        },
    ];
    let r = check_deterministic(|| chart::cumulative("FUH-HH follow-up", &curves));
    assert_eq!(check(&r), HEIGHT);
}

#[test]
fn cumulative_edge_cases_draw() {
    let none: &[Curve<f64>] = &[];
    assert_eq!(empty(chart::cumulative("No curves", none)), Empty::NoData);
    assert_eq!(
        empty(chart::cumulative(
            "Empty curve",
            &[curve("A", Vec::<f64>::new())]
        )),
        Empty::NoData
    );
    let suppressed = vec![None::<f64>; 31];
    assert_eq!(
        empty(chart::cumulative(
            "All days suppressed",
            &[curve("A", suppressed)]
        )),
        Empty::AllSuppressed
    );
    // Days before the first shown one are not drawn.
    let gaps: Vec<Option<f64>> = (0..=30)
        .map(|d| (d >= 3).then_some(d as f64 * 2.0))
        .collect();
    check(&drawn(chart::cumulative(
        "Early days suppressed",
        &[curve("A", gaps)],
    )));
    check(&drawn(chart::cumulative(
        "Zeros",
        &[curve("A", vec![0.0; 31])],
    )));
    check(&drawn(chart::cumulative(
        "All 100",
        &[curve("A", vec![100.0; 31])],
    )));
    let odd = vec![f64::NAN, 10.0, 20.0]
        .into_iter()
        .chain(std::iter::repeat_n(150.0, 40))
        .collect();
    check(&drawn(chart::cumulative(
        "Short, long and odd",
        &[curve("A", odd)],
    )));
}

#[test]
fn suppressed_days_carry_the_last_shown_share_over() {
    // Shown on days 2, 7 and 28-30 only, as small-cell suppression leaves a sparse curve.
    let values: Vec<Option<f64>> = (0..=30)
        .map(|d| match d {
            2 => Some(23.9),
            7 => Some(61.2),
            28..=30 => Some(88.1),
            _ => None,
        })
        .collect();
    let all_shown: Vec<Option<f64>> = (0..=30).map(|d| Some(d as f64 * 2.0)).collect();
    let sparse = drawn(chart::cumulative(
        "Sparse",
        &[curve("State", values.clone())],
    ));
    let full = drawn(chart::cumulative("Full", &[curve("State", all_shown)]));
    // The carried stretches are drawn (dashed) and explained; a full curve needs neither.
    assert!(sparse.svg.contains("stroke-dasharray") || sparse.svg.matches("<path").count() > 40);
    assert!(
        sparse.desc.contains("by day 7 61.2%") && sparse.desc.contains("by day 30 88.1%"),
        "{}",
        sparse.desc
    );
    assert!(
        sparse.desc.contains("26 days suppressed"),
        "{}",
        sparse.desc
    );
    assert!(!full.desc.contains("suppressed"), "{}", full.desc);
    // With day 7 hidden, the description gives the carried share as a floor.
    let mut hidden_7 = values;
    hidden_7[7] = None;
    let floor = drawn(chart::cumulative(
        "Day 7 hidden",
        &[curve("State", hidden_7)],
    ));
    assert!(
        floor.desc.contains("by day 7 at least 23.9%"),
        "{}",
        floor.desc
    );
}

#[test]
fn fitted_axes_show_differences_and_say_where_they_start() {
    // Intervals from 45 to 66: the axis starts at 45 and the description says so.
    let items: Vec<Estimate> = [(52.3, 45.0, 60.0), (61.0, 55.2, 66.1), (57.0, 50.0, 64.0)]
        .iter()
        .enumerate()
        .map(|(i, &(v, lo, hi))| estimate(&format!("HHP-0{i}"), Some(v), lo, hi, i == 1))
        .collect();
    let r = drawn(chart::dot_plot(
        "Close",
        "Percent",
        &items,
        Some(("State", 57.5)),
    ));
    assert!(
        r.desc.contains("the value axis starting at 45, not zero"),
        "{}",
        r.desc
    );
    assert!(r.desc.contains("HHP-01 61.0 (55.2–66.1)"), "{}", r.desc);
    // Rates spread from near zero keep a zero-based axis and say nothing of it.
    let wide = [
        estimate("A", Some(5.0), 1.0, 9.0, false),
        estimate("B", Some(60.0), 50.0, 70.0, false),
    ];
    let r = drawn(chart::dot_plot("Wide", "Percent", &wide, None));
    assert!(!r.desc.contains("axis starting"), "{}", r.desc);
}
