//! Property tests of the measure loader and compiler: random valid measures compile into SQL
//! that plans; random damage to a measure file, YAML token soup and arbitrary value-set files give
//! an error or a definition, never a panic. (The extract reader's fuzz target is in hostile.rs.)

mod common;

use std::path::Path;
use std::sync::OnceLock;

use hhq::compile::compile;
use hhq::engine::{Definitions, Engine};
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
