//! Test decks for the payment ledger (`hhq payments`): hand-built members (extracts as CSV text
//! in YAML), a period, a rate table of `<measures>/finance/`, and for each member-month what the
//! earning rule and the programme's billing rules say must come out: earned or not, payment
//! lines, the findings of the member-month, and the dollars due and paid. A deck names the
//! earning rule it tests (`payments: S0281`).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::CaseResult;
use crate::definitions::Definitions;
use crate::engine::{Engine, Inputs};
use crate::error::Result;
use crate::finance::{EarningRule, RateTable, earned_months, price};
use crate::measure::Located;
use crate::period::Period;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeck {
    payments: Spanned<String>,
    period: Spanned<String>,
    rates: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // for readers of the deck
    description: Option<String>,
    members: String,
    enrollment: String,
    #[serde(default)]
    claims: Option<String>,
    #[serde(default)]
    contacts: Option<String>,
    expect: Vec<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    member: Spanned<String>,
    month: String,
    /// The partner, when the member had more than one in the month.
    hhp: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // the case's reasoning, for readers
    why: Option<String>,
    /// No unit (the member assigned to no partner, or not to `hhp`, in the month).
    #[serde(default)]
    absent: bool,
    earned: Option<bool>,
    payment_lines: Option<usize>,
    /// Exactly the findings of the member-month (any partner's).
    findings: Option<Vec<String>>,
    state_due: Option<f64>,
    partner_due: Option<f64>,
    paid: Option<f64>,
}

/// Whether a deck file is a payments deck (it names `payments:`), without parsing it whole.
pub fn is_payments_deck(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("payments:"))
}

/// Run one payments deck.
pub async fn run_deck(
    path: &Path,
    text: &str,
    defs: &Definitions,
    measures_dir: &Path,
) -> Result<Vec<CaseResult>> {
    let raw: RawDeck =
        serde_saphyr::from_str(text).map_err(|e| crate::measure::yaml_error(path, &e))?;
    let dir = measures_dir.join("finance");
    let rule_at = Located::from(raw.payments);
    let rule = EarningRule::load(&dir.join("earning.yaml"))?;
    if rule.id != rule_at.value {
        return Err(super::deck_error(
            path,
            &rule_at,
            format!(
                "the earning rule of {} is `{}`, not `{}`",
                dir.display(),
                rule.id,
                rule_at.value
            ),
        ));
    }
    let rates_at = Located::from(raw.rates);
    let rates = RateTable::load(&dir.join(&rates_at.value))
        .map_err(|e| super::deck_error(path, &rates_at, format!("{e}")))?;
    let period_at = Located::from(raw.period);
    let period: Period = period_at
        .value
        .parse()
        .map_err(|e| super::deck_error(path, &period_at, format!("{e}")))?;
    let data = super::write_extracts(
        path,
        raw.claims.as_deref(),
        raw.contacts.as_deref(),
        &raw.members,
        &raw.enrollment,
    )?;
    let engine = Engine::open_with(data.path(), defs, &Inputs::default()).await?;
    crate::execute::keep_for_run(&engine, None).await?;
    let ledger = crate::finance::files::compute(&engine, &rule, &[&rates], &period, None).await?;
    let earned = earned_months(&ledger);
    let findings = ledger.findings();
    let label = format!("{} ({})", rule.id, rates.id);

    let mut out = Vec::new();
    for e in raw.expect {
        let member = Located::from(e.member);
        let month =
            NaiveDate::parse_from_str(&format!("{}-01", e.month), "%Y-%m-%d").map_err(|_| {
                super::deck_error(path, &member, format!("month {:?} is not YYYY-MM", e.month))
            })?;
        let units: Vec<_> = ledger
            .units
            .iter()
            .filter(|u| {
                u.member_id == member.value
                    && u.month == month
                    && e.hhp.as_ref().is_none_or(|h| &u.hhp == h)
            })
            .collect();
        let case = format!(
            "{} {}{}",
            member.value,
            e.month,
            e.hhp.as_ref().map(|h| format!(" {h}")).unwrap_or_default()
        );
        let mut diffs = Vec::new();
        match (units.as_slice(), e.absent) {
            ([], true) => {}
            (_, true) => diffs.push("expected no unit, found one".to_string()),
            ([], false) => diffs.push("no unit for the member-month".to_string()),
            ([_, _, ..], false) => {
                diffs.push("several partners in the month: name `hhp:`".to_string())
            }
            ([u], false) => {
                let p = price(&rates, &ledger, u, &earned);
                if let Some(want) = e.earned
                    && want != u.earned()
                {
                    diffs.push(format!("earned: expected {want}, got {}", u.earned()));
                }
                if let Some(want) = e.payment_lines
                    && want != u.lines.len()
                {
                    diffs.push(format!(
                        "payment_lines: expected {want}, got {}",
                        u.lines.len()
                    ));
                }
                for (what, want, got) in [
                    ("state_due", e.state_due, p.state_due),
                    ("partner_due", e.partner_due, p.partner_due),
                    ("paid", e.paid, u.paid()),
                ] {
                    if let Some(want) = want
                        && (want - got).abs() > 0.005
                    {
                        diffs.push(format!("{what}: expected {want:.2}, got {got:.2}"));
                    }
                }
            }
        }
        if let Some(want) = e.findings {
            let want: BTreeSet<String> = want.into_iter().collect();
            let got: BTreeSet<String> = findings
                .iter()
                .filter(|f| f.member_id == member.value && f.month == month)
                .map(|f| f.kind.name().to_string())
                .collect();
            if want != got {
                diffs.push(format!(
                    "findings: expected [{}], got [{}]",
                    want.into_iter().collect::<Vec<_>>().join(", "),
                    got.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        out.push(CaseResult {
            deck: path.to_path_buf(),
            measure: label.clone(),
            case,
            line: member.line,
            failure: (!diffs.is_empty()).then(|| diffs.join("; ")),
        });
    }
    Ok(out)
}
