//! The report charts: every kind renders to an SVG of outlines (no text, no font lookup) and a
//! PNG at twice its size that is not blank, the same bytes every time, and edge cases (no data,
//! everything suppressed, one point, zero-width intervals, zeros) draw without panicking.

use std::io::Cursor;

use hhq::chart::{self, Estimate, HEIGHT, PNG_SCALE, Rendered, Series, WIDTH};
use hhq::spc;
use resvg::usvg;

fn quarters(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}Q{}", 2022 + i / 4, i % 4 + 1))
        .collect()
}

fn series(label: &str, values: &[Option<f64>], emphasis: bool) -> Series {
    Series {
        label: label.into(),
        values: values.to_vec(),
        emphasis,
    }
}

fn estimate(label: &str, value: Option<f64>, lower: f64, upper: f64, highlight: bool) -> Estimate {
    Estimate {
        label: label.into(),
        value,
        lower: value.map(|_| lower),
        upper: value.map(|_| upper),
        highlight,
    }
}

/// The checks every chart must pass; returns the PNG's logical height.
fn check(r: &Rendered) -> u32 {
    // The SVG parses with no fonts at all: every glyph is a path.
    let tree = usvg::Tree::from_str(&r.svg, &usvg::Options::default()).expect("SVG parses");
    assert!(!r.svg.contains("<text"), "text left in the SVG");
    assert!(r.svg.contains("<path"), "no paths in the SVG");
    assert_eq!(tree.size().width(), WIDTH as f32);

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
fn check_deterministic(draw: impl Fn() -> hhq::Result<Rendered>) -> Rendered {
    let a = draw().expect("renders");
    let b = draw().expect("renders again");
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
    check(&chart::trend("Empty", "Rate", &[], &[]).unwrap());
    check(&chart::trend("No series", "Rate", &x, &[]).unwrap());
    let none = series("A", &[None, None, None, None], false);
    check(&chart::trend("All suppressed", "Rate", &x, &[none]).unwrap());
    let one = series("A", &[Some(0.0)], true);
    check(&chart::trend("One point", "Rate", &x[..1], &[one]).unwrap());
    let zeros = series("A", &[Some(0.0); 4], false);
    check(&chart::trend("Zeros", "Rate", &x, &[zeros]).unwrap());
    let negative = series(
        "Change",
        &[Some(-3.5), Some(1.0), None, Some(f64::NAN)],
        false,
    );
    check(&chart::trend("Negative", "Change", &x, &[negative]).unwrap());
    let long = quarters(60);
    let many = series("A", &vec![Some(1234.5); 60], false);
    check(&chart::trend("Sixty quarters", "Rate", &long, &[many]).unwrap());
    // More values than labels, and a title far too long for the width.
    let more = series("A", &[Some(1.0); 8], false);
    let title = "A very long title ".repeat(10);
    check(&chart::trend(&title, "Rate", &x, &[more]).unwrap());
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
    let few = chart::dot_plot("HH-TCC", "Percent", &items[..1], None).unwrap();
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
    let tall = chart::dot_plot("Forty partners", "Rate", &many, None).unwrap();
    assert!(check(&tall) > HEIGHT);
}

#[test]
fn dot_plot_edge_cases_draw() {
    check(&chart::dot_plot("Empty", "Rate", &[], Some(("State", 10.0))).unwrap());
    let suppressed = [estimate("A", None, 0.0, 0.0, true)];
    check(&chart::dot_plot("All suppressed", "Rate", &suppressed, None).unwrap());
    let half = Estimate {
        label: "Value without interval".into(),
        value: Some(3.0),
        lower: None,
        upper: Some(f64::INFINITY),
        highlight: false,
    };
    check(&chart::dot_plot("Half an interval", "Rate", &[half], Some(("NaN", f64::NAN))).unwrap());
    let negative = [estimate("Change", Some(-2.0), -5.0, 1.0, false)];
    check(&chart::dot_plot("Negative", "Change", &negative, Some(("Zero", 0.0))).unwrap());
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
    let r = check_deterministic(|| chart::spc("HH-ENGAGE p-chart", "Share of months", &c));
    assert_eq!(check(&r), HEIGHT);
    let periods: Vec<(String, f64, f64)> = quarters(8)
        .into_iter()
        .enumerate()
        .map(|(i, q)| (q, 40.0 + i as f64, 1000.0))
        .collect();
    let u = spc::chart(spc::Kind::U, &periods);
    check(&chart::spc("AMB-HH u-chart", "Visits per member month", &u).unwrap());
}

#[test]
fn spc_edge_cases_draw() {
    let empty = spc::chart(spc::Kind::P, &[]);
    check(&chart::spc("No periods", "Percent", &empty).unwrap());
    let no_denominators = spc::chart(spc::Kind::P, &[("2024Q1".into(), 0.0, 0.0)]);
    check(&chart::spc("No denominators", "Percent", &no_denominators).unwrap());
    let one = spc::chart(spc::Kind::U, &[("2024Q1".into(), 0.0, 10.0)]);
    check(&chart::spc("One period of zeros", "Rate", &one).unwrap());
}

#[test]
fn cumulative_renders_curves_with_day_marks() {
    let curve = |k: f64| -> Vec<f64> {
        (0..=30)
            .map(|d| 80.0 * (1.0 - (-(d as f64) / k).exp()))
            .collect()
    };
    let curves = vec![
        ("This partner".to_string(), curve(5.0)),
        ("State".to_string(), curve(9.0)),
    ];
    let r = check_deterministic(|| chart::cumulative("FUH-HH follow-up", &curves));
    assert_eq!(check(&r), HEIGHT);
}

#[test]
fn cumulative_edge_cases_draw() {
    let none: &[(String, Vec<f64>)] = &[];
    check(&chart::cumulative("No curves", none).unwrap());
    check(&chart::cumulative("Empty curve", &[("A".into(), Vec::<f64>::new())]).unwrap());
    let suppressed = vec![None::<f64>; 31];
    check(&chart::cumulative("All days suppressed", &[("A".into(), suppressed)]).unwrap());
    // Days hidden by small-cell suppression are gaps.
    let gaps: Vec<Option<f64>> = (0..=30)
        .map(|d| (d >= 3).then_some(d as f64 * 2.0))
        .collect();
    check(&chart::cumulative("Early days suppressed", &[("A".into(), gaps)]).unwrap());
    check(&chart::cumulative("Zeros", &[("A".into(), vec![0.0; 31])]).unwrap());
    check(&chart::cumulative("All 100", &[("A".into(), vec![100.0; 31])]).unwrap());
    let odd = vec![f64::NAN, 10.0, 20.0]
        .into_iter()
        .chain(std::iter::repeat_n(150.0, 40))
        .collect();
    check(&chart::cumulative("Short, long and odd", &[("A".into(), odd)]).unwrap());
}
