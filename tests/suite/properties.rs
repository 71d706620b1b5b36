//! Property tests of the measure loader and compiler: random valid measures compile into SQL
//! that plans; random damage to a measure file, YAML token soup and arbitrary value-set files give
//! an error or a definition, never a panic. (The extract reader's fuzz target is in hostile.rs.)

use crate::common;

use std::path::Path;
use std::sync::OnceLock;

use hhq::compile::compile;
use hhq::definitions::Definitions;
use hhq::engine::Engine;
use hhq::measure::Measure;
use hhq::period::Period;
use proptest::prelude::*;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let defs = Definitions::load(
            &common::root().join("measures"),
            &common::root().join("queries"),
        )
        .unwrap();
        runtime().block_on(Engine::offline(&defs)).unwrap()
    })
}

/// (block, date column, a valid filter) that numerators may use.
const SOURCES: &[(&str, &str, &str)] = &[
    ("ed_visits", "visit_date", "NOT led_to_admission"),
    ("hh_services", "service_date", "reached AND mode <> 'mail'"),
    (
        "inpatient_stays",
        "admission_date",
        "acute AND length_of_stay > 2",
    ),
    (
        "claims_final",
        "service_from",
        "in_value_set(principal_dx, 'mental_illness_dx')",
    ),
    ("deaths", "death_date", "death_date IS NOT NULL"),
];

const STRATIFIERS: &[&str] = &[
    "age_band",
    "mco",
    "hhp",
    "population",
    "sex",
    "race",
    "ethnicity",
    "county",
    "rural",
    "month",
    "quarter",
];

#[derive(Debug, Clone)]
struct Spec {
    basis: usize,
    cuts: Vec<u32>,
    stratify: Vec<usize>,
    numerators: Vec<(usize, bool, bool, i32, i32)>,
    count_day: u32,
    continuous: Option<(i32, i32, u32)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0usize..3,
        proptest::collection::btree_set(1u32..90, 0..4),
        proptest::collection::vec(0usize..STRATIFIERS.len(), 0..5),
        proptest::collection::vec(
            (
                0usize..SOURCES.len(),
                any::<bool>(),
                any::<bool>(),
                -30i32..30,
                0i32..60,
            ),
            1..4,
        ),
        1u32..29,
        proptest::option::of((-400i32..0, 0i32..60, 0u32..3)),
    )
        .prop_map(
            |(basis, cuts, stratify, numerators, count_day, continuous)| Spec {
                basis,
                cuts: cuts.into_iter().collect(),
                stratify,
                numerators,
                count_day,
                continuous,
            },
        )
}

fn yaml(s: &Spec) -> String {
    let basis = ["member_months", "events", "members"][s.basis];
    let mut bands = Vec::new();
    let mut lo = 0;
    for c in &s.cuts {
        bands.push(format!("\"{lo}-{}\"", c - 1));
        lo = *c;
    }
    bands.push(format!("\"{lo}+\""));
    let mut out = format!(
        "id: P-1\ntitle: t\nversion: \"1\"\nsource: s\nbetter: higher\nbasis: {basis}\nage_bands: [{}]\nstratify: [{}]\n",
        bands.join(", "),
        s.stratify
            .iter()
            .map(|i| STRATIFIERS[*i])
            .collect::<Vec<_>>()
            .join(", ")
    );
    match basis {
        "member_months" => out.push_str(&format!(
            "member_months: {{rule: count_day, count_day: {}}}\n",
            s.count_day
        )),
        "events" => out.push_str(
            "events: {from: inpatient_stays, id: stay_id, date: discharge_date, where: acute, end_offset: -30}\n",
        ),
        _ => {}
    }
    if let (Some((from, to, gaps)), false) = (s.continuous, basis == "member_months") {
        out.push_str(&format!(
            "enrollment: {{in: medicaid, continuous: {{from: {from}, to: {to}, max_gaps: {gaps}, max_gap_days: 45}}}}\n"
        ));
    }
    out.push_str("components:\n");
    for (i, (src, exists, filtered, from, len)) in s.numerators.iter().enumerate() {
        let (block, date, filter) = SOURCES[*src];
        out.push_str(&format!(
            "  - name: c{i}\n    unit: {}\n    numerator:\n      {}: {block}\n      date: {date}\n",
            if *exists {
                "percent"
            } else {
                "per_1000_members"
            },
            if *exists { "exists" } else { "count" },
        ));
        if basis != "member_months" {
            out.push_str(&format!(
                "      window: {{from: {from}, to: {}}}\n",
                from + len
            ));
        }
        if *filtered {
            out.push_str(&format!("      where: \"{filter}\"\n"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn valid_measures_compile_and_plan(s in spec()) {
        let text = yaml(&s);
        let m = Measure::parse(Path::new("p.yaml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let c = compile(&m, engine().catalog(), &Period::year(2025))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let planned = runtime().block_on(async {
            engine().context().sql(&c.detail_sql()).await.map(|_| ())?;
            engine().context().sql(&c.standalone_sql()).await.map(|_| ())
        });
        prop_assert!(planned.is_ok(), "{:?}\n{}", planned, text);
    }

    #[test]
    fn damaged_measures_never_panic(s in spec(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..6)) {
        let mut text: Vec<char> = yaml(&s).chars().collect();
        for (at, c, op) in cuts {
            if text.is_empty() { break; }
            let i = at.index(text.len());
            match op {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                _ => text[i] = c,
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(m) = Measure::parse(Path::new("p.yaml"), &text) {
            // Whatever parsed either compiles or is refused with an error.
            let _ = compile(&m, engine().catalog(), &Period::year(2025));
        }
    }

    #[test]
    fn arbitrary_filters_never_panic(filter in "\\PC{0,60}") {
        let text = yaml(&Spec {
            basis: 0,
            cuts: vec![18],
            stratify: vec![],
            numerators: vec![(0, true, false, 0, 0)],
            count_day: 15,
            continuous: None,
        }) + &format!("      where: {:?}\n", filter);
        if let Ok(m) = Measure::parse(Path::new("p.yaml"), &text) {
            let _ = compile(&m, engine().catalog(), &Period::year(2025));
        }
    }
}

/// Pieces of YAML syntax, for token soup: anchors, aliases, flow and block collections, tags,
/// document markers, keys of a measure.
const YAML_TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "- ",
    "\n",
    "  ",
    "\t",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!!binary ",
    "<<: ",
    "---\n",
    "...\n",
    "'",
    "\"",
    "|\n",
    ">\n",
    "#",
    "any_of",
    "exists",
    "ed_visits",
    "date",
    "visit_date",
    "where",
    "name",
    "x",
    "1",
    "-1",
    "~",
    "null",
    "\u{feff}",
    "\u{0}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random YAML tokens spliced into a valid measure: an error or a measure, never a panic, and
    /// whatever parses compiles or is refused.
    #[test]
    fn yaml_token_soup_never_panics(
        at in any::<prop::sample::Index>(),
        soup in proptest::collection::vec(0..YAML_TOKENS.len(), 0..40),
    ) {
        let base = yaml(&Spec {
            basis: 1,
            cuts: vec![18],
            stratify: vec![0],
            numerators: vec![(0, true, true, 0, 7)],
            count_day: 15,
            continuous: None,
        });
        let mut cut = at.index(base.len() + 1);
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        let soup: String = soup.into_iter().map(|i| YAML_TOKENS[i]).collect();
        let text = format!("{}{soup}{}", &base[..cut], &base[cut..]);
        match Measure::parse(Path::new("p.yaml"), &text) {
            Ok(m) => {
                let _ = compile(&m, engine().catalog(), &Period::year(2025));
            }
            Err(e) => prop_assert!(e.to_string().starts_with("p.yaml:"), "{e}"),
        }
    }

    /// Arbitrary value-set files: refused with the file's line, or sets whose predicates are
    /// well-formed SQL (no code or name can break out of its literal).
    #[test]
    fn arbitrary_value_set_files_load_or_are_refused(
        rows in proptest::collection::vec(("[a-z_' ]{0,6}", "[A-Z0-9]{0,4}", "[A-Za-z0-9.*' ,\"]{0,6}"), 0..30),
        big in any::<bool>(),
    ) {
        let mut text = String::from("value_set,code_system,code\n");
        for (name, system, code) in &rows {
            text.push_str(&format!("{name},{system},{code}\n"));
        }
        if big {
            // Past the IN-list limit: the lookup function's form.
            for i in 0..=hhq::measure::valueset::IN_LIST_MAX {
                text.push_str(&format!("big's,ICD10CM,Q{i}\n"));
            }
        }
        let mut sets = hhq::measure::valueset::ValueSets::default();
        match sets.add_csv(Path::new("v.csv"), &text) {
            Err(e) => prop_assert!(e.to_string().starts_with("v.csv:"), "{e}"),
            Ok(()) => {
                let names: Vec<String> = sets.names().map(String::from).collect();
                for name in names {
                    let predicate = sets.get(&name).unwrap().sql_predicate("dx");
                    let sql = format!("SELECT {predicate} AS hit FROM (VALUES ('F20')) t(dx)");
                    let planned = runtime().block_on(engine().context().sql(&sql));
                    prop_assert!(planned.is_ok(), "{sql}: {planned:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Suppression: no count from 1 to 10 can be worked out from a published table.

/// An exact fraction (the checker must not share the library's floating point).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q(i128, i128);

impl Q {
    fn int(n: i128) -> Q {
        Q(n, 1)
    }
    fn norm(self) -> Q {
        fn gcd(a: i128, b: i128) -> i128 {
            if b == 0 { a.abs() } else { gcd(b, a % b) }
        }
        let g = gcd(self.0, self.1).max(1);
        let s = if self.1 < 0 { -1 } else { 1 };
        Q(s * self.0 / g, s * self.1 / g)
    }
    fn zero(self) -> bool {
        self.0 == 0
    }
    fn sub(self, o: Q) -> Q {
        Q(self.0 * o.1 - o.0 * self.1, self.1 * o.1).norm()
    }
    fn mul(self, o: Q) -> Q {
        Q(self.0 * o.0, self.1 * o.1).norm()
    }
    fn div(self, o: Q) -> Q {
        Q(self.0 * o.1, self.1 * o.0).norm()
    }
}

/// The rank of integer rows, exactly.
fn rank(rows: &[Vec<i128>]) -> usize {
    let mut m: Vec<Vec<Q>> = rows
        .iter()
        .map(|r| r.iter().map(|&x| Q::int(x)).collect())
        .collect();
    let cols = m.first().map_or(0, Vec::len);
    let mut rank = 0;
    for c in 0..cols {
        let Some(p) = (rank..m.len()).find(|&r| !m[r][c].zero()) else {
            continue;
        };
        m.swap(rank, p);
        let pivot = m[rank].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != rank && !row[c].zero() {
                let k = row[c].div(pivot[c]);
                for (x, y) in row.iter_mut().zip(&pivot) {
                    *x = x.sub(k.mul(*y));
                }
            }
        }
        rank += 1;
    }
    rank
}

/// A random table: one or two components (the second's numerators at least the first's, over
/// the same denominators, as 7- and 30-day follow-up), one to three stratifiers, two to five
/// strata each, counts leaning small.
#[derive(Debug, Clone)]
struct RandomTable {
    /// Per stratifier, per stratum: (denominator, first numerator, second numerator).
    strata: Vec<Vec<(i128, i128, i128)>>,
    two: bool,
}

fn random_table() -> impl Strategy<Value = RandomTable> {
    let cell = (0i128..70)
        .prop_flat_map(|d| (Just(d), 0..=d))
        .prop_flat_map(|(d, n)| (Just(d), Just(n), n..=d));
    let stratifier = proptest::collection::vec(cell, 2..6);
    (proptest::collection::vec(stratifier, 1..4), any::<bool>())
        .prop_map(|(strata, two)| RandomTable { strata, two })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every table the suppression publishes, read by someone who knows that strata add up to
    /// the total and that the components share their denominators: no cell from 1 to 10 (a
    /// numerator, a denominator, the units without the outcome, the units in the second
    /// numerator only, the hidden strata of a shown total together) is determined by the shown
    /// cells. Checked in exact arithmetic: a figure is determined when its coefficients over the
    /// hidden cells are in the row space of the equations over the hidden cells.
    #[test]
    fn no_small_count_is_recoverable_from_a_published_table(t in random_table()) {
        use hhq::measure::{Stratifier, Unit};
        use hhq::results::{Grouping, ResultRow};
        // The strata of the first stratifier decide the total; the others are rescaled to
        // partition the same total by moving their last stratum.
        let first = &t.strata[0];
        let total = first.iter().fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        let mut strata: Vec<Vec<(i128, i128, i128)>> = vec![first.clone()];
        for s in &t.strata[1..] {
            // Scale down to fit, then the last stratum takes the rest (keeping 30-day >= 7-day).
            let mut cells: Vec<(i128, i128, i128)> = Vec::new();
            let mut left = total;
            for (i, c) in s.iter().enumerate() {
                if i + 1 == s.len() {
                    cells.push(left);
                    break;
                }
                let d = c.0.min(left.0);
                let n1 = c.1.min(d).min(left.1);
                let n2 = c.2.min(d).max(n1).min(left.2).max(n1);
                // The rest must stay consistent: n1 <= n2 <= d for what is left.
                let rest = (left.0 - d, left.1 - n1, left.2 - n2);
                if rest.1 > rest.2 || rest.2 > rest.0 {
                    cells.push(left);
                    left = (0, 0, 0);
                    continue;
                }
                cells.push((d, n1, n2));
                left = rest;
            }
            strata.push(cells);
        }
        let components: Vec<&str> = if t.two { vec!["7_day", "30_day"] } else { vec!["7_day"] };
        let date = |m, d| chrono::NaiveDate::from_ymd_opt(2025, m, d).unwrap();
        let mk = |component: &str, stratifier: Grouping, stratum: String, d: i128, n: i128| ResultRow {
            measure: "FUH-HH".into(),
            component: component.into(),
            period_start: date(1, 1),
            period_end: date(12, 31),
            stratifier,
            stratum,
            numerator: n as f64,
            denominator: d as f64,
            rate: (d > 0).then(|| n as f64 / d as f64 * 100.0),
            unit: Unit::Percent,
            spread: None,
        };
        // Rows and, per row, its (d, n) and (component, stratifier) for the equations.
        let mut rows = Vec::new();
        let mut layout: Vec<(usize, Option<usize>)> = Vec::new(); // (component, stratifier)
        for (ci, c) in components.iter().enumerate() {
            let pick = |x: (i128, i128, i128)| (x.0, if ci == 0 { x.1 } else { x.2 });
            let (d, n) = pick(total);
            rows.push(mk(c, Grouping::Total, "total".into(), d, n));
            layout.push((ci, None));
            for (si, s) in strata.iter().enumerate() {
                for (k, &x) in s.iter().enumerate() {
                    let (d, n) = pick(x);
                    rows.push(mk(c, Grouping::By(Stratifier::ALL[si]), format!("k{k}"), d, n));
                    layout.push((ci, Some(si)));
                }
            }
        }
        let published = hhq::suppress::suppress(&rows);
        // Cells: 2 per row (numerator 2i, denominator 2i+1).
        let nvars = rows.len() * 2;
        let val = |v: usize| {
            let r = &rows[v / 2];
            (if v.is_multiple_of(2) { r.numerator } else { r.denominator }) as i128
        };
        let hidden: Vec<bool> = (0..nvars)
            .map(|v| {
                let p = &published[v / 2];
                if v.is_multiple_of(2) { p.numerator.is_err() } else { p.denominator.is_err() }
            })
            .collect();
        // A shown rate must come with both counts (else it gives the hidden one back).
        for p in &published {
            if p.rate.is_ok() && p.row.rate.is_some() {
                prop_assert!(p.numerator.is_ok() && p.denominator.is_ok(), "{p:?}");
            }
            if p.row.denominator > 0.0 && p.row.denominator < 30.0 {
                prop_assert!(p.rate.is_err(), "{p:?}");
            }
        }
        // Equations the reader knows.
        let mut eqs: Vec<Vec<i128>> = Vec::new();
        let per_component = rows.len() / components.len();
        for ci in 0..components.len() {
            let base = ci * per_component;
            for si in 0..strata.len() {
                for col in 0..2 {
                    let mut e = vec![0i128; nvars];
                    e[2 * base + col] = -1;
                    for (i, l) in layout.iter().enumerate() {
                        if l.0 == ci && l.1 == Some(si) {
                            e[2 * i + col] = 1;
                        }
                    }
                    eqs.push(e);
                }
            }
        }
        if components.len() == 2 {
            for i in 0..per_component {
                let mut e = vec![0i128; nvars];
                e[2 * i + 1] = 1;
                e[2 * (i + per_component) + 1] = -1;
                eqs.push(e);
            }
        }
        let restricted = |f: &[i128]| -> Vec<i128> {
            f.iter().zip(&hidden).map(|(&x, &h)| if h { x } else { 0 }).collect()
        };
        let a: Vec<Vec<i128>> = eqs.iter().map(|e| restricted(e)).collect();
        let base_rank = rank(&a);
        let determined = |f: &[i128]| {
            let fh = restricted(f);
            if fh.iter().all(|&x| x == 0) {
                return true;
            }
            let mut with = a.clone();
            with.push(fh);
            rank(&with) == base_rank
        };
        let value = |f: &[i128]| f.iter().enumerate().map(|(v, &c)| c * val(v)).sum::<i128>();
        let mut targets: Vec<(String, Vec<i128>)> = Vec::new();
        for v in 0..nvars {
            let mut f = vec![0i128; nvars];
            f[v] = 1;
            targets.push((format!("cell {v}"), f));
        }
        for i in 0..rows.len() {
            let mut f = vec![0i128; nvars];
            f[2 * i + 1] = 1;
            f[2 * i] = -1;
            targets.push((format!("row {i} denominator less numerator"), f));
        }
        if components.len() == 2 {
            for i in 0..per_component {
                let mut f = vec![0i128; nvars];
                f[2 * (i + per_component)] = 1;
                f[2 * i] = -1;
                targets.push((format!("row {i} second numerator less first"), f));
            }
        }
        for e in &eqs {
            // The total's cell is the one with -1; with it shown, the hidden parts' sum is known.
            if let Some(t) = e.iter().position(|&x| x == -1)
                && !hidden[t]
                && e.iter().filter(|&&x| x == 1).count() > 1
            {
                let f: Vec<i128> = e
                    .iter()
                    .enumerate()
                    .map(|(v, &x)| if x == 1 && hidden[v] { 1 } else { 0 })
                    .collect();
                targets.push(("hidden strata of a shown total".into(), f));
            }
        }
        for (what, f) in &targets {
            let v = value(f);
            if (1..=10).contains(&v) {
                prop_assert!(
                    !determined(f),
                    "{what} = {v} can be worked out\nrows: {:#?}\npublished: {:#?}",
                    rows.iter().map(|r| format!("{} {} {} {}/{}", r.component, r.stratifier, r.stratum, r.numerator, r.denominator)).collect::<Vec<_>>(),
                    published.iter().map(|p| format!("{:?} {:?}", p.numerator, p.denominator)).collect::<Vec<_>>()
                );
            }
        }
    }
}
