//! Test decks for cohorts and risk flags: hand-built members (extracts as CSV text in YAML), an
//! as-of date, and for each member what the definitions' wording says must come out — the
//! cohorts it qualifies for, criteria counts, flags raised, high-risk, and the lists it is on.
//! A deck names the definitions it tests (`cohorts: [SMI, CC]`); the others are not run.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::CaseResult;
use crate::cohort::lists::lists_of;
use crate::definitions::Definitions;
use crate::engine::{Engine, Inputs};
use crate::error::{Error, Result};
use crate::measure::Located;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeck {
    cohorts: Vec<Spanned<String>>,
    as_of: Spanned<String>,
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
    member: Option<Spanned<String>>,
    absent: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)] // the case's reasoning, for readers
    why: Option<String>,
    /// Exactly the cohorts (of those tested) the member qualifies for.
    qualifies: Option<Vec<String>>,
    /// Distinct rows counted per criterion (`name`, or `DEFINITION.name` when ambiguous).
    #[serde(default)]
    criteria: BTreeMap<String, u64>,
    /// Exactly the flags raised.
    flags: Option<Vec<String>>,
    high_risk: Option<bool>,
    /// Exactly the lists the member is on.
    lists: Option<Vec<String>>,
    mco: Option<String>,
}

/// Whether a deck file is a cohort deck (it names `cohorts:`), without parsing it whole.
pub fn is_cohort_deck(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("cohorts:"))
}

fn err(path: &Path, at: &Located<String>, message: String) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line: at.line,
        column: at.column,
        message,
        hint: None,
    }
}

/// Run one cohort deck.
pub async fn run_deck(path: &Path, text: &str, defs: &Definitions) -> Result<Vec<CaseResult>> {
    let raw: RawDeck =
        serde_saphyr::from_str(text).map_err(|e| crate::measure::yaml_error(path, &e))?;
    let all = &defs.cohorts;
    let mut tested = Vec::new();
    for id in raw.cohorts {
        let id = Located::from(id);
        match all.iter().find(|d| d.id() == id.value) {
            Some(d) => tested.push(d.clone()),
            None => {
                return Err(err(
                    path,
                    &id,
                    format!(
                        "no cohort or risk-flag definition `{}` (measures/cohorts/)",
                        id.value
                    ),
                ));
            }
        }
    }
    let as_of_at = Located::from(raw.as_of);
    let as_of: NaiveDate = as_of_at.value.parse().map_err(|_| {
        err(
            path,
            &as_of_at,
            format!("as_of {:?} is not a date (YYYY-MM-DD)", as_of_at.value),
        )
    })?;

    let dir = super::write_extracts(
        path,
        raw.claims.as_deref(),
        raw.contacts.as_deref(),
        &raw.members,
        &raw.enrollment,
    )?;
    let engine = Engine::open_with(dir.path(), defs, &Inputs::default()).await?;
    let run = crate::cohort::run(&engine, &tested, as_of).await?;
    let label = tested.iter().map(|d| d.id()).collect::<Vec<_>>().join(", ");

    let mut out = Vec::new();
    for e in raw.expect {
        let (case, line, failure) = match (e.member, e.absent) {
            (Some(member), None) => {
                let member = Located::from(member);
                let failure = match run.members.iter().find(|m| m.member_id == member.value) {
                    None => Some("not in the population on the as-of date".to_string()),
                    Some(m) => {
                        let mut diffs = Vec::new();
                        let mut same = |what: &str, want: Option<Vec<String>>, got: Vec<String>| {
                            if let Some(mut want) = want {
                                want.sort();
                                let mut got = got;
                                got.sort();
                                if want != got {
                                    diffs.push(format!(
                                        "{what}: expected [{}], got [{}]",
                                        want.join(", "),
                                        got.join(", ")
                                    ));
                                }
                            }
                        };
                        same("qualifies", e.qualifies, m.qualifies.clone());
                        same("flags", e.flags, m.flags.clone());
                        same(
                            "lists",
                            e.lists,
                            lists_of(&run, m).iter().map(|s| s.to_string()).collect(),
                        );
                        if let Some(want) = e.high_risk
                            && want != m.high_risk
                        {
                            diffs.push(format!("high_risk: expected {want}, got {}", m.high_risk));
                        }
                        // `FFS`: no MCO on the as-of date, as the lists write it.
                        if let Some(want) = &e.mco
                            && m.mco.as_deref().unwrap_or("FFS") != want
                        {
                            diffs.push(format!(
                                "mco: expected {want}, got {}",
                                m.mco.clone().unwrap_or_default()
                            ));
                        }
                        for (name, want) in &e.criteria {
                            let matches: Vec<(&str, &str)> = tested
                                .iter()
                                .flat_map(|d| {
                                    d.criteria()
                                        .iter()
                                        .map(move |c| (d.id(), c.name.value.as_str()))
                                })
                                .filter(|(d, c)| *c == name || format!("{d}.{c}") == *name)
                                .collect();
                            match matches.as_slice() {
                                [(d, c)] => {
                                    let got = m.hit(d, c).n;
                                    if got != *want {
                                        diffs.push(format!("{name}: expected {want}, got {got}"));
                                    }
                                }
                                [] => diffs.push(format!("no criterion `{name}` in {label}")),
                                _ => diffs.push(format!(
                                    "`{name}` is in several definitions: write DEFINITION.{name}"
                                )),
                            }
                        }
                        (!diffs.is_empty()).then(|| diffs.join("; "))
                    }
                };
                (member.value.clone(), member.line, failure)
            }
            (None, Some(absent)) => {
                let absent = Located::from(absent);
                let found = run.members.iter().any(|m| m.member_id == absent.value);
                (
                    format!("absent {}", absent.value),
                    absent.line,
                    found.then(|| "the member is in the population".to_string()),
                )
            }
            _ => {
                return Err(Error::Definition {
                    path: path.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: "each expectation names exactly one of `member:` or `absent:`".into(),
                    hint: None,
                });
            }
        };
        out.push(CaseResult {
            deck: path.to_path_buf(),
            measure: label.clone(),
            case,
            line,
            failure,
        });
    }
    Ok(out)
}
