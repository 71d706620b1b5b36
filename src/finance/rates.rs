//! The finance definitions as data: the earning rule of the monthly Health Home payment
//! (`measures/finance/earning.yaml`) and rate tables (`measures/finance/rates*.yaml`), parsed and
//! checked alone with every mistake at its line and column. Names the data must resolve (value
//! sets, the contacts' columns, an optional members column) are checked by [`super::ledger`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::Result;
use crate::measure::{
    Errs, Located, MAX_MEASURE_BYTES, read_definition, utf8, yaml_error, yaml_options,
};

/// The rule by which a partner earns a month: at least one Health Home service in the month,
/// billed with one procedure code.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningRule {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub source: String,
    /// The monthly billing code (`S0281`).
    pub procedure_code: Located<String>,
    /// Which contacts earn: one SQL expression over the contacts extract's columns.
    pub service: Located<String>,
    /// Whether only a service by the partner the member was assigned to, on a day of the
    /// assignment, earns that partner the month.
    pub by_assigned_partner: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarning {
    id: Spanned<String>,
    title: String,
    source: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    procedure_code: Spanned<String>,
    service: Spanned<String>,
    #[serde(default = "yes")]
    by_assigned_partner: bool,
}

fn yes() -> bool {
    true
}

impl EarningRule {
    pub fn load(path: &Path) -> Result<EarningRule> {
        let text = utf8(path, read_definition(path, MAX_MEASURE_BYTES)?)?;
        EarningRule::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<EarningRule> {
        let raw: RawEarning = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| yaml_error(path, &e))?;
        let errs = Errs(path);
        let id = Located::from(raw.id);
        crate::measure::check_id(&errs, &id, "id", "S0281")?;
        let code = Located::from(raw.procedure_code);
        if code.value.trim().is_empty() || code.value.trim() != code.value {
            return Err(errs.at(
                &code,
                format!("procedure code {:?} is empty or has spaces", code.value),
                Some("the HCPCS code as claims carry it, e.g. `S0281`"),
            ));
        }
        Ok(EarningRule {
            path: path.to_path_buf(),
            id: id.value,
            title: raw.title,
            source: raw.source,
            procedure_code: code,
            service: Located::from(raw.service),
            by_assigned_partner: raw.by_assigned_partner,
        })
    }
}

/// What a tier sorts member-months by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierBy {
    /// Chronic conditions on the member's final claims in the look-back before the period
    /// (`conditions:`), counted.
    Conditions,
    /// A risk score the data supply (the members extract's optional `risk_score` column).
    RiskScore,
    /// The members extract's `rural`.
    Rural,
    /// Members assigned to the partner in the month (any MCO).
    PartnerMembers,
}

impl TierBy {
    pub fn name(self) -> &'static str {
        match self {
            TierBy::Conditions => "conditions",
            TierBy::RiskScore => "risk_score",
            TierBy::Rural => "rural",
            TierBy::PartnerMembers => "partner_members",
        }
    }

    fn numeric(self) -> bool {
        self != TierBy::Rural
    }
}

/// Which band a value falls in: under a bound, equal to a boolean, or anything left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Test {
    Below(f64),
    Is(bool),
    Rest,
}

/// One band of a tier: its label and what it does to the base rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    pub test: Test,
    /// Multiplies the population's base PMPM (1 when absent).
    pub factor: f64,
    /// Dollars added after every factor (0 when absent).
    pub add: f64,
}

/// One tier: a dimension and its bands, tried in order; the last band takes every value left
/// (an unknown one included).
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub by: TierBy,
    pub bands: Vec<Band>,
    pub at: Located<()>,
}

impl Tier {
    /// The band a value falls in (`None`: unknown, e.g. `rural` null): the last band.
    pub fn band(&self, value: Option<f64>) -> &Band {
        self.bands
            .iter()
            .find(|b| match (b.test, value) {
                (Test::Below(x), Some(v)) => v < x,
                (Test::Is(x), Some(v)) => (v != 0.0) == x,
                (Test::Rest, _) => true,
                (_, None) => false,
            })
            .expect("a checked tier ends with a band for the rest")
    }
}

/// What the MCO pays a partner for an earned month.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrangement {
    /// A share of the State's (tiered) PMPM for the member-month.
    Share(f64),
    /// A flat PMPM by Health Home population.
    Pmpm(BTreeMap<String, f64>),
}

/// Which months the State pays the MCO for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBasis {
    /// Every month a member is enrolled in a Health Home (the payment principles' "for each
    /// member enrolled").
    EnrolledMonths,
    /// Only months a partner earned.
    EarnedMonths,
}

/// A chronic condition the acuity tier counts: a value set of diagnoses.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub name: String,
    pub value_set: Located<String>,
}

/// A rate table: the State's PMPM to MCOs by population with its tiers, and the MCO-to-partner
/// arrangements.
#[derive(Debug, Clone, PartialEq)]
pub struct RateTable {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub source: Option<String>,
    pub state_basis: StateBasis,
    /// Base PMPM by Health Home population.
    pub base: BTreeMap<String, f64>,
    pub tiers: Vec<Tier>,
    pub default_arrangement: Arrangement,
    pub by_mco: BTreeMap<String, Arrangement>,
    pub by_partner: BTreeMap<String, Arrangement>,
    /// Months of claims before the period the condition count reads.
    pub lookback_months: u32,
    /// Final claims with a condition's diagnosis needed for it to count.
    pub claims_per_condition: u32,
    pub conditions: Vec<Condition>,
    /// Where `base` is written (errors about a population it lacks point here).
    pub base_at: Located<()>,
}

impl RateTable {
    pub fn load(path: &Path) -> Result<RateTable> {
        let text = utf8(path, read_definition(path, MAX_MEASURE_BYTES)?)?;
        RateTable::parse(path, &text)
    }

    /// The tiers that read this dimension.
    pub fn uses(&self, by: TierBy) -> bool {
        self.tiers.iter().any(|t| t.by == by)
    }

    /// The arrangement between `mco` and `hhp`: the partner's own, else the MCO's, else the
    /// default.
    pub fn arrangement(&self, mco: Option<&str>, hhp: &str) -> &Arrangement {
        self.by_partner
            .get(hhp)
            .or_else(|| mco.and_then(|m| self.by_mco.get(m)))
            .unwrap_or(&self.default_arrangement)
    }

    pub fn parse(path: &Path, text: &str) -> Result<RateTable> {
        let raw: RawRates = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| yaml_error(path, &e))?;
        let errs = Errs(path);
        let id = Located::from(raw.id);
        crate::measure::check_id(&errs, &id, "id", "KANCARE-2025")?;
        let base_at = located(&raw.state.value.pmpm);
        let base = dollars_by_population(&errs, raw.state.value.pmpm)?;
        if base.is_empty() {
            return Err(errs.at(
                &base_at,
                "`pmpm:` names no population",
                Some("e.g. `pmpm: {SMI: 275.00, CC: 225.00}`"),
            ));
        }
        let mut tiers: Vec<Tier> = Vec::new();
        for t in raw.state.value.tiers {
            let at = located(&t);
            let t = t.value;
            let name = Located::from(t.name);
            if tiers.iter().any(|o| o.name == name.value) {
                return Err(errs.at(
                    &name,
                    format!("tier `{}` is defined twice", name.value),
                    None,
                ));
            }
            let by = t.by.value;
            let mut bands: Vec<Band> = Vec::new();
            let n = t.bands.len();
            if n == 0 {
                return Err(errs.at(&name, "a tier needs `bands:`", None));
            }
            for (i, b) in t.bands.into_iter().enumerate() {
                let bat = located(&b);
                let b = b.value;
                let test = match (b.below, b.when) {
                    (Some(_), Some(_)) => {
                        return Err(errs.at(
                            &bat,
                            "a band has `below:` or `when:`, not both",
                            None,
                        ));
                    }
                    (Some(x), None) if by.numeric() => {
                        if let Some(Band {
                            test: Test::Below(prev),
                            ..
                        }) = bands.last()
                            && x <= *prev
                        {
                            return Err(errs.at(
                                &bat,
                                format!("`below: {x}` is not above the band before ({prev})"),
                                Some("bands are tried in order: give their bounds rising"),
                            ));
                        }
                        Test::Below(x)
                    }
                    (None, Some(w)) if !by.numeric() => Test::Is(w),
                    (Some(_), None) => {
                        return Err(errs.at(
                            &bat,
                            format!("a `{}` tier's band takes `when: true|false`", by.name()),
                            None,
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(errs.at(
                            &bat,
                            format!("a `{}` tier's band takes `below: <number>`", by.name()),
                            None,
                        ));
                    }
                    (None, None) => Test::Rest,
                };
                if test == Test::Rest && i + 1 != n {
                    return Err(errs.at(
                        &bat,
                        "only the last band may have no `below:` or `when:`",
                        Some("the last band takes every value left; put it last"),
                    ));
                }
                if test != Test::Rest && i + 1 == n {
                    return Err(errs.at(
                        &bat,
                        "the last band must take every value left: give it no `below:` or `when:`",
                        Some("a member-month whose value is unknown falls in it too"),
                    ));
                }
                let factor = b.factor.unwrap_or(1.0);
                let add = b.add.unwrap_or(0.0);
                if !(factor.is_finite() && factor >= 0.0 && add.is_finite()) {
                    return Err(errs.at(
                        &bat,
                        "`factor:` and `add:` must be finite, `factor:` at least 0",
                        None,
                    ));
                }
                bands.push(Band {
                    label: b.label,
                    test,
                    factor,
                    add,
                });
            }
            tiers.push(Tier {
                name: name.value,
                by,
                bands,
                at,
            });
        }
        let arrangement = |a: Spanned<RawArrangement>| -> Result<Arrangement> {
            let at = located(&a);
            match (a.value.share, a.value.pmpm) {
                (Some(s), None) if (0.0..=1.0).contains(&s) => Ok(Arrangement::Share(s)),
                (Some(s), None) => Err(errs.at(
                    &at,
                    format!("`share: {s}` is not between 0 and 1"),
                    Some("the share of the State's PMPM the partner is paid, e.g. `share: 0.85`"),
                )),
                (None, Some(p)) => {
                    let p = dollars_by_population(&errs, p)?;
                    if let Some(missing) = base.keys().find(|k| !p.contains_key(*k)) {
                        return Err(errs.at(
                            &at,
                            format!("the partner PMPM names no rate for population `{missing}`, which the State's `pmpm:` has"),
                            Some("give every population the State pays for a partner rate"),
                        ));
                    }
                    Ok(Arrangement::Pmpm(p))
                }
                _ => Err(errs.at(
                    &at,
                    "an arrangement is `share:` (of the State's PMPM) or `pmpm:` (by population), one of them",
                    None,
                )),
            }
        };
        let partner = raw.partner.value;
        let default_arrangement = arrangement(partner.default)?;
        let mut by_mco = BTreeMap::new();
        for (k, v) in partner.by_mco {
            by_mco.insert(k, arrangement(v)?);
        }
        let mut by_partner = BTreeMap::new();
        for (k, v) in partner.by_partner {
            by_partner.insert(k, arrangement(v)?);
        }
        let (lookback_months, claims_per_condition, conditions) = match raw.conditions {
            Some(c) => {
                let at = located(&c);
                let c = c.value;
                if c.lookback_months == 0 {
                    return Err(errs.at(&at, "`lookback_months:` must be at least 1", None));
                }
                let mut list: Vec<Condition> = Vec::new();
                for x in c.list {
                    let name = Located::from(x.name);
                    if list.iter().any(|o| o.name == name.value) {
                        return Err(errs.at(
                            &name,
                            format!("condition `{}` is listed twice", name.value),
                            None,
                        ));
                    }
                    list.push(Condition {
                        name: name.value,
                        value_set: Located::from(x.value_set),
                    });
                }
                (c.lookback_months, c.claims.max(1), list)
            }
            None => (12, 1, Vec::new()),
        };
        if let Some(t) = tiers.iter().find(|t| t.by == TierBy::Conditions)
            && conditions.is_empty()
        {
            return Err(errs.at(
                &t.at,
                format!("tier `{}` counts conditions, but the table lists none", t.name),
                Some("add `conditions: {lookback_months: 12, list: [{name: diabetes, value_set: diabetes_dx}, ...]}`"),
            ));
        }
        Ok(RateTable {
            path: path.to_path_buf(),
            id: id.value,
            title: raw.title,
            source: raw.source,
            state_basis: raw.state.value.pays_for,
            base,
            tiers,
            default_arrangement,
            by_mco,
            by_partner,
            lookback_months,
            claims_per_condition,
            conditions,
            base_at,
        })
    }
}

fn dollars_by_population(
    errs: &Errs,
    raw: Spanned<BTreeMap<String, f64>>,
) -> Result<BTreeMap<String, f64>> {
    let at = located(&raw);
    for (pop, v) in &raw.value {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(errs.at(
                &at,
                format!("the PMPM of `{pop}` ({v}) is not a number of dollars of 0 or more"),
                None,
            ));
        }
    }
    Ok(raw.value)
}

fn located<T>(s: &Spanned<T>) -> Located<()> {
    Located {
        value: (),
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    id: Spanned<String>,
    title: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    state: Spanned<RawState>,
    partner: Spanned<RawPartner>,
    #[serde(default)]
    conditions: Option<Spanned<RawConditions>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    pays_for: StateBasis,
    pmpm: Spanned<BTreeMap<String, f64>>,
    #[serde(default)]
    tiers: Vec<Spanned<RawTier>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    by: Spanned<TierBy>,
    bands: Vec<Spanned<RawBand>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    label: String,
    below: Option<f64>,
    when: Option<bool>,
    factor: Option<f64>,
    add: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    default: Spanned<RawArrangement>,
    #[serde(default)]
    by_mco: BTreeMap<String, Spanned<RawArrangement>>,
    #[serde(default)]
    by_partner: BTreeMap<String, Spanned<RawArrangement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrangement {
    share: Option<f64>,
    pmpm: Option<Spanned<BTreeMap<String, f64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConditions {
    #[serde(default = "twelve")]
    lookback_months: u32,
    #[serde(default = "one")]
    claims: u32,
    list: Vec<RawCondition>,
}

fn twelve() -> u32 {
    12
}
fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    name: Spanned<String>,
    value_set: Spanned<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIERED: &str = "\
id: T
title: tiered
state:
  pays_for: enrolled_months
  pmpm: {SMI: 275.00, CC: 225.00}
  tiers:
    - name: acuity
      by: conditions
      bands:
        - {label: low, below: 2, factor: 0.9}
        - {label: high}
    - name: geography
      by: rural
      bands:
        - {label: rural, when: true, add: 15}
        - {label: other}
partner:
  default: {share: 0.85}
  by_mco:
    MCO-B: {pmpm: {SMI: 200, CC: 150}}
conditions:
  list:
    - {name: diabetes, value_set: diabetes_dx}
";

    fn parse(text: &str) -> Result<RateTable> {
        RateTable::parse(Path::new("rates.yaml"), text)
    }

    fn located_error(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(crate::Error::Definition {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a located error, got {other:?}"),
        }
    }

    #[test]
    fn bands_are_tried_in_order_and_the_last_takes_the_rest() {
        let t = parse(TIERED).unwrap();
        let acuity = &t.tiers[0];
        assert_eq!(acuity.band(Some(0.0)).label, "low");
        assert_eq!(acuity.band(Some(1.0)).label, "low");
        // `below: 2` is strict: two conditions are in the next band.
        assert_eq!(acuity.band(Some(2.0)).label, "high");
        let geo = &t.tiers[1];
        assert_eq!(geo.band(Some(1.0)).label, "rural");
        assert_eq!(geo.band(Some(0.0)).label, "other");
        // Unknown rurality falls in the last band.
        assert_eq!(geo.band(None).label, "other");
        assert_eq!(
            t.arrangement(Some("MCO-A"), "HHP-1"),
            &Arrangement::Share(0.85)
        );
        assert!(matches!(
            t.arrangement(Some("MCO-B"), "HHP-1"),
            Arrangement::Pmpm(_)
        ));
    }

    #[test]
    fn mistakes_are_reported_at_their_line_and_column() {
        // A band after the catch-all.
        let text = TIERED.replace(
            "        - {label: high}\n",
            "        - {label: high}\n        - {label: higher, below: 9}\n",
        );
        let (line, _, message) = located_error(&text);
        assert_eq!(line, 11, "{message}");
        assert!(message.contains("only the last band"), "{message}");
        // Bounds that do not rise.
        let text = TIERED.replace(
            "        - {label: low, below: 2, factor: 0.9}\n",
            "        - {label: low, below: 2, factor: 0.9}\n        - {label: mid, below: 2}\n",
        );
        let (line, _, message) = located_error(&text);
        assert_eq!(line, 11, "{message}");
        assert!(message.contains("not above"), "{message}");
        // A boolean tier given a bound.
        let text = TIERED.replace(
            "{label: rural, when: true, add: 15}",
            "{label: rural, below: 1}",
        );
        let (line, column, message) = located_error(&text);
        assert_eq!((line, column), (15, 11), "{message}");
        assert!(message.contains("when: true|false"), "{message}");
        // A share above 1.
        let text = TIERED.replace("share: 0.85", "share: 85");
        let (line, _, message) = located_error(&text);
        assert_eq!(line, 18, "{message}");
        // A flat partner rate missing a population the State pays for.
        let text = TIERED.replace("{SMI: 200, CC: 150}", "{SMI: 200}");
        let (line, _, message) = located_error(&text);
        assert_eq!(line, 20, "{message}");
        assert!(message.contains("`CC`"), "{message}");
        // A tier by conditions with no list.
        let text = TIERED.replace(
            "conditions:\n  list:\n    - {name: diabetes, value_set: diabetes_dx}\n",
            "",
        );
        let (line, _, message) = located_error(&text);
        assert_eq!(line, 7, "{message}");
        // An unknown key, and an unknown dimension.
        let (line, _, _) = located_error(&TIERED.replace("pays_for:", "pays:"));
        assert_eq!(line, 4);
        let (line, _, message) = located_error(&TIERED.replace("by: rural", "by: county"));
        assert_eq!(line, 13, "{message}");
    }

    #[test]
    fn the_earning_rule_refuses_an_empty_code() {
        let text = "id: S0281\ntitle: t\nsource: s\nprocedure_code: ' S0281'\nservice: reached\n";
        match EarningRule::parse(Path::new("earning.yaml"), text) {
            Err(crate::Error::Definition { line, column, .. }) => {
                assert_eq!((line, column), (4, 17))
            }
            other => panic!("{other:?}"),
        }
        let ok = EarningRule::parse(
            Path::new("earning.yaml"),
            &text.replace("' S0281'", "S0281"),
        )
        .unwrap();
        assert!(ok.by_assigned_partner);
    }
}
