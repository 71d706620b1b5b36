//! The catalogue of data-quality checks: one entry per check, as data. Row rules (rows set aside)
//! come from [`crate::extract::rules`]; the rest are counted by a query over the usable rows and
//! flag rows without removing them.

use crate::extract::contract::{EXTRACTS, Extract};
use crate::extract::rules::{RowRule, RuleKind, row_rules};
use crate::functions::formats::CodeFormat;

/// What a check looks at, as in the data-quality literature (Kahn et al., 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Values that should be there are.
    Completeness,
    /// Values have the form the contract and the code systems say.
    Conformance,
    /// Values are believable: in order, in range, consistent across extracts.
    Plausibility,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Completeness => "completeness",
            Category::Conformance => "conformance",
            Category::Plausibility => "plausibility",
        }
    }
}

/// How much a failed check matters. Only a failed `error` check stops (or caveats) a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    /// Profiled and shown, never failed.
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// How a check counts its failing rows.
#[derive(Debug, Clone)]
pub enum Source {
    /// A row rule: its rows are set aside.
    Rule(RowRule),
    /// `count` returns one integer (rows flagged); `examples` one text column, ordered, at most
    /// three rows. `{as_of}` in either is replaced by the as-of date's literal. Over usable rows.
    Query { count: String, examples: String },
    /// Rows counted by a query several checks share, run once: `count` returns (key, rows)
    /// pairs, and this check's rows are those of `key` (none if absent). `examples` as for
    /// [`Source::Query`].
    Shared {
        count: String,
        key: String,
        examples: String,
    },
    /// Rows of the extract where `bad` (SQL over one row, no subquery) holds; counted with the
    /// extract's other such checks in one scan.
    Flag { bad: String },
    /// Rows whose `key` columns repeat an earlier row's (each extra row counts), counted by
    /// [`super::duplicates::count`]; `label` renders a key's values as an example.
    Duplicates {
        key: &'static [&'static str],
        label: fn(&[String]) -> String,
    },
    /// The extract has no usable rows at all.
    Empty,
}

/// One check of the catalogue, with its default severity and threshold.
#[derive(Debug, Clone)]
pub struct CheckDef {
    pub id: String,
    pub extract: &'static str,
    pub category: Category,
    pub severity: Severity,
    /// The largest share of rows (0–1) that may fail before the check fails.
    pub max_share: f64,
    pub what: String,
    pub source: Source,
}

/// An example key of one row of each extract, for a data steward to find it.
pub(crate) fn key_sql(extract: &str) -> &'static str {
    match extract {
        "claims" => "concat('claim ', claim_id, ' line ', CAST(line_number AS VARCHAR))",
        "contacts" => "concat('contact ', contact_id)",
        "members" => "concat('member ', member_id)",
        // A start date outside the believable range (a row set aside for it) as its day number:
        // Arrow cannot write a day past chrono's calendar as a date, and the query would fail.
        _ => {
            "concat('member ', member_id, ' ', span_type, ' span from ', CASE WHEN start_date \
             BETWEEN DATE '1900-01-01' AND DATE '2200-12-31' THEN CAST(start_date AS VARCHAR) \
             ELSE concat('day ', CAST(CAST(start_date AS INT) AS VARCHAR)) END)"
        }
    }
}

/// Formats of the code systems the contract names (no dots, no padding tricks).
const FORMATS: &[(&str, &str, CodeFormat, &str)] = &[
    // (extract, column, format, what)
    (
        "claims",
        "principal_dx",
        CodeFormat::Icd10Cm,
        "ICD-10-CM: a letter, a digit, then 1–5 letters or digits, no dot",
    ),
    (
        "claims",
        "procedure_code",
        CodeFormat::Procedure,
        "CPT (five digits, or four and F/T/U) or HCPCS Level II (a letter and four digits)",
    ),
    (
        "claims",
        "revenue_code",
        CodeFormat::Revenue,
        "UB-04 revenue code: four digits (`0450`)",
    ),
    (
        "claims",
        "type_of_bill",
        CodeFormat::TypeOfBill,
        "UB-04 type of bill: three digits, optionally a leading zero",
    ),
    (
        "claims",
        "place_of_service",
        CodeFormat::TwoDigits,
        "CMS place of service: two digits",
    ),
    (
        "claims",
        "discharge_status",
        CodeFormat::TwoDigits,
        "UB-04 patient status: two digits",
    ),
    (
        "claims",
        "modifier_1",
        CodeFormat::Modifier,
        "procedure modifier: two letters or digits",
    ),
    (
        "claims",
        "modifier_2",
        CodeFormat::Modifier,
        "procedure modifier: two letters or digits",
    ),
    ("claims", "billing_npi", CodeFormat::Npi, "NPI: ten digits"),
    (
        "claims",
        "rendering_npi",
        CodeFormat::Npi,
        "NPI: ten digits",
    ),
    (
        "claims",
        "ndc",
        CodeFormat::Ndc,
        "NDC: eleven digits, no dashes",
    ),
    (
        "members",
        "county_fips",
        CodeFormat::CountyFips,
        "county FIPS: five digits",
    ),
];

/// A check of `extract` with no query yet (it checks the extract is not empty until
/// [`CheckDef::counting`] gives it one).
fn query(
    id: &str,
    extract: &'static str,
    category: Category,
    severity: Severity,
    max_share: f64,
    what: &str,
) -> CheckDef {
    CheckDef {
        id: format!("{extract}.{id}"),
        extract,
        category,
        severity,
        max_share,
        what: what.to_string(),
        source: Source::Empty,
    }
}

impl CheckDef {
    /// The check counts with `count` and finds examples with `examples`.
    fn counting(mut self, count: String, examples: String) -> CheckDef {
        self.source = Source::Query { count, examples };
        self
    }

    /// The check counts the rows of `rows` (a query selecting `x.*` of the extract, aliased
    /// `x`) and keys its examples by them. Checks that look across rows are written as joins
    /// here, not as subqueries in a row's test: DataFusion plans a subquery inside an
    /// expression as a mark join whose hash table holds every row of the extract, where a join
    /// or anti join builds on the smaller side (1.0 s against 0.15 s at 5 million claim lines).
    /// [`Self::counting_rows`], the rows counted as group `key` of the shared query `counts`
    /// (see [`Source::Shared`]).
    fn counting_shared(self, rows: &str, counts: String, key: &str) -> CheckDef {
        let examples = format!(
            "SELECT DISTINCT {} AS key FROM ({rows}) f ORDER BY key LIMIT 3",
            key_sql(self.extract)
        );
        CheckDef {
            source: Source::Shared {
                count: counts,
                key: key.to_string(),
                examples,
            },
            ..self
        }
    }

    fn counting_rows(self, rows: &str) -> CheckDef {
        let key = key_sql(self.extract);
        self.counting(
            format!("SELECT count(*) FROM ({rows}) f"),
            format!("SELECT DISTINCT {key} AS key FROM ({rows}) f ORDER BY key LIMIT 3"),
        )
    }
}

/// Rows of `extract` (as `x`) dated by `column` after their member's death date.
fn after_death_rows(extract: &str, column: &str) -> String {
    format!(
        "SELECT x.* FROM {extract} x JOIN (SELECT member_id, max(death_date) AS death_date FROM members \
         WHERE death_date IS NOT NULL GROUP BY member_id) m ON m.member_id = x.member_id \
         WHERE x.{column} > m.death_date"
    )
}

/// Claim lines (as `x`) of adjustment `kind` whose `replaces_claim_id` is no claim's id.
fn names_missing_claim(kind: &str) -> String {
    format!("SELECT x.* FROM claims x WHERE x.adjustment = '{kind}' AND {NAMES_MISSING_CLAIM}")
}

/// A claim line naming a claim (`replaces_claim_id`) that is no claim's id.
const NAMES_MISSING_CLAIM: &str = "x.replaces_claim_id IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.claim_id = x.replaces_claim_id)";

/// The claims on a loop of replacements, found as `queries/claim_links.sql` and
/// `superseded_claims.sql` find them: links of a claim to another (not to itself), of which only
/// those into a claim that itself names one can close a loop.
const LOOP_CLAIMS: &str = "SELECT unnest(ids) AS claim_id FROM (\
     SELECT hhq_loop_claims(l.claim_id, l.named_id) AS ids FROM (SELECT DISTINCT claim_id, \
     replaces_claim_id AS named_id FROM claims WHERE replaces_claim_id IS NOT NULL \
     AND replaces_claim_id <> claim_id) l JOIN (SELECT DISTINCT claim_id FROM claims \
     WHERE replaces_claim_id IS NOT NULL AND replaces_claim_id <> claim_id) naming \
     ON naming.claim_id = l.named_id) loops";

/// Replacements and voids naming a missing claim, counted per adjustment in one query: each
/// asks every claim id whether it is named, so the two checks share the anti join.
fn names_missing_claim_counts() -> String {
    format!(
        "SELECT x.adjustment, count(*) FROM claims x \
         WHERE x.adjustment IN ('replacement', 'void') AND {NAMES_MISSING_CLAIM} \
         GROUP BY x.adjustment"
    )
}

/// A check counting rows of `extract` where `bad` holds, with examples keyed by the row.
fn flag(
    id: &str,
    extract: &'static str,
    category: Category,
    severity: Severity,
    max_share: f64,
    what: &str,
    bad: &str,
) -> CheckDef {
    let def = query(id, extract, category, severity, max_share, what);
    if bad.to_ascii_uppercase().contains("SELECT") {
        def.counting(
            format!("SELECT count(*) FROM {extract} WHERE coalesce(({bad}), false)"),
            examples_sql(extract, bad),
        )
    } else {
        CheckDef {
            source: Source::Flag {
                bad: bad.to_string(),
            },
            ..def
        }
    }
}

/// Up to three keys of the rows of `extract` where `bad` holds, in key order.
pub(crate) fn examples_sql(extract: &str, bad: &str) -> String {
    format!(
        "SELECT DISTINCT {} AS key FROM {extract} WHERE coalesce(({bad}), false) ORDER BY key LIMIT 3",
        key_sql(extract)
    )
}

/// Every check, in report order: extract by extract, completeness, conformance, plausibility.
pub fn catalogue() -> Vec<CheckDef> {
    let mut all = Vec::new();
    for extract in EXTRACTS {
        all.extend(of_extract(extract));
    }
    all.sort_by_key(|c| {
        (
            EXTRACTS.iter().position(|e| e.name == c.extract),
            c.category,
        )
    });
    all
}

fn of_extract(extract: &'static Extract) -> Vec<CheckDef> {
    use Category::*;
    use Severity::*;
    let name = extract.name;
    // A data cut may hold no Health Home contacts (claims-only decks have none); without usable
    // claims, members or enrollment every measure would be zero.
    let mut out = vec![query(
        "empty",
        name,
        Completeness,
        if name == "contacts" { Warning } else { Error },
        0.0,
        "the extract has no usable rows",
    )];
    for rule in row_rules(extract) {
        out.push(CheckDef {
            id: rule.id.clone(),
            extract: name,
            category: match rule.kind {
                RuleKind::Missing => Completeness,
                RuleKind::Value => Conformance,
                RuleKind::Contradiction => Plausibility,
                RuleKind::Range => Conformance,
            },
            severity: Error,
            // A few unusable rows are set aside and reported; more than one in a thousand means
            // the extract is broken and the results would not be believable.
            max_share: 0.001,
            what: format!("{} (the row is set aside)", rule.what),
            source: Source::Rule(rule),
        });
    }
    for (_, col, format, what) in FORMATS.iter().filter(|f| f.0 == name) {
        out.push(flag(
            &format!("{col}.format"),
            name,
            Conformance,
            Error,
            0.01,
            &format!("`{col}` is not a {what}"),
            // Null for a null value, which no count takes as malformed.
            &format!("NOT hhq_code_format({col}, '{}')", format.name()),
        ));
    }
    match name {
        "claims" => {
            // A row whose list holds a malformed entry (a null entry is absent, not malformed).
            out.push(flag(
                "other_dx.format",
                "claims",
                Conformance,
                Error,
                0.01,
                "an `other_dx` entry is not an ICD-10-CM code (a letter, a digit, then 1–5 letters or digits, no dot)",
                "NOT hhq_code_format(other_dx, 'icd10_cm')",
            ));
            out.push(flag(
                "future_date",
                "claims",
                Plausibility,
                Warning,
                0.0,
                "a service, admission or discharge date after the as-of date (the data cut-off passes over it)",
                "service_from > {as_of} OR service_to > {as_of} OR admission_date > {as_of} OR discharge_date > {as_of}",
            ));
            out.push(flag(
                "inpatient_without_admission",
                "claims",
                Completeness,
                Warning,
                0.01,
                "an inpatient claim line without `admission_date`",
                "claim_type = 'inpatient' AND admission_date IS NULL",
            ));
            out.push(
                query(
                    "service_after_death",
                    "claims",
                    Plausibility,
                    Warning,
                    0.005,
                    "service begins after the member's `death_date`",
                )
                .counting_rows(&after_death_rows("claims", "service_from")),
            );
            out.push(CheckDef {
                source: Source::Duplicates {
                    key: &["claim_id", "line_number"],
                    label: |v| format!("claim {} line {}", v[0], v[1]),
                },
                ..query(
                    "duplicate_line",
                    "claims",
                    Plausibility,
                    Error,
                    0.0,
                    "the same `claim_id` and `line_number` on more than one row (each extra row counts)",
                )
            });
            out.push(
                query(
                    "replacement_without_original",
                    "claims",
                    Plausibility,
                    Warning,
                    0.01,
                    "a replacement names a claim not in the extract (it stands as the final version)",
                )
                .counting_shared(
                    &names_missing_claim("replacement"),
                    names_missing_claim_counts(),
                    "replacement",
                ),
            );
            out.push(
                query(
                    "void_of_missing_claim",
                    "claims",
                    Plausibility,
                    Warning,
                    0.01,
                    "a void names a claim not in the extract",
                )
                .counting_shared(
                    &names_missing_claim("void"),
                    names_missing_claim_counts(),
                    "void",
                ),
            );
            out.push(flag(
                "self_replacement",
                "claims",
                Plausibility,
                Warning,
                0.0,
                "a claim names itself in `replaces_claim_id` (it stands as an original)",
                "replaces_claim_id = claim_id",
            ));
            out.push(
                query(
                    "replacement_loop",
                    "claims",
                    Plausibility,
                    Warning,
                    0.0,
                    "a claim on a loop of replacements (A replaces B, B replaces A); of a loop no \
                     other claim names, the greatest claim id stands",
                )
                .counting_rows(&format!(
                    "SELECT x.* FROM claims x JOIN ({LOOP_CLAIMS}) o ON o.claim_id = x.claim_id"
                )),
            );
            out.push(unknown_member("claims"));
        }
        "contacts" => {
            out.push(flag(
                "future_date",
                "contacts",
                Plausibility,
                Warning,
                0.0,
                "`contact_date` after the as-of date (the data cut-off passes over it)",
                "contact_date > {as_of}",
            ));
            out.push(flag(
                "outside_health_home",
                "contacts",
                Plausibility,
                Warning,
                0.05,
                "a contact on a day the member holds no `health_home` span",
                "NOT EXISTS (SELECT 1 FROM enrollment e WHERE e.member_id = contacts.member_id \
                 AND e.span_type = 'health_home' AND e.start_date <= contacts.contact_date \
                 AND coalesce(e.end_date, DATE '9999-12-31') >= contacts.contact_date)",
            ));
            out.push(
                query(
                    "after_death",
                    "contacts",
                    Plausibility,
                    Warning,
                    0.005,
                    "a contact after the member's `death_date`",
                )
                .counting_rows(&after_death_rows("contacts", "contact_date")),
            );
            out.push(unknown_member("contacts"));
        }
        "members" => {
            out.push(flag(
                "future_birth",
                "members",
                Plausibility,
                Error,
                0.0,
                "`birth_date` after the as-of date",
                "birth_date > {as_of}",
            ));
            out.push(flag(
                "duplicate_member",
                "members",
                Plausibility,
                Error,
                0.0,
                "a `member_id` on more than one row",
                "member_id IN (SELECT member_id FROM members GROUP BY member_id HAVING count(*) > 1)",
            ));
            out.push(flag(
                "without_enrollment",
                "members",
                Plausibility,
                Warning,
                0.05,
                "a member with no enrollment span",
                "member_id NOT IN (SELECT member_id FROM enrollment)",
            ));
        }
        "enrollment" => {
            out.push(
                query("overlapping_spans", "enrollment", Plausibility, Error, 0.0, "a span overlapping an earlier span of the same member and span type")
                .counting(
                OVERLAPS_COUNT.into(),
                format!(
                    "SELECT concat('member ', member_id, ' ', span_type, ' span from ', CAST(start_date AS VARCHAR)) AS key \
                     FROM ({OVERLAPS}) o WHERE overlaps ORDER BY key LIMIT 3"
                ),
                )
            );
            out.push(flag(
                "health_home_outside_medicaid",
                "enrollment",
                Plausibility,
                Warning,
                0.01,
                "a `health_home` span with no overlapping `medicaid` span",
                "span_type = 'health_home' AND NOT EXISTS (SELECT 1 FROM enrollment m \
                 WHERE m.member_id = enrollment.member_id AND m.span_type = 'medicaid' \
                 AND m.start_date <= coalesce(enrollment.end_date, DATE '9999-12-31') \
                 AND coalesce(m.end_date, DATE '9999-12-31') >= enrollment.start_date)",
            ));
            out.push(flag(
                "future_start",
                "enrollment",
                Plausibility,
                Info,
                1.0,
                "a span starting after the as-of date (often a coming month's assignment)",
                "start_date > {as_of}",
            ));
            out.push(
                query(
                    "span_after_death",
                    "enrollment",
                    Plausibility,
                    Warning,
                    0.01,
                    "a span starting after the member's `death_date` (no measure counts it: spans end at death)",
                )
                .counting_rows(&after_death_rows("enrollment", "start_date")),
            );
            out.push(unknown_member("enrollment"));
        }
        _ => {}
    }
    out
}

/// A span overlaps when it starts on or before the latest end of the same member's earlier spans
/// of the same type (spans are inclusive at both ends; open spans run forever).
const OVERLAPS: &str = "SELECT member_id, span_type, start_date, \
     start_date <= max(coalesce(end_date, DATE '9999-12-31')) OVER (PARTITION BY member_id, span_type \
     ORDER BY start_date, end_date ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS overlaps \
     FROM enrollment";

/// The number of spans [`OVERLAPS`] flags, without its window (a window over as many small
/// partitions as members is four times slower): identical spans grouped, a group flagged whole
/// when an earlier span (by start, then end) reaches its start, else all but its first.
const OVERLAPS_COUNT: &str = "WITH g AS (SELECT member_id, span_type, start_date, \
     coalesce(end_date, DATE '9999-12-31') AS end_date, count(*) AS n FROM enrollment GROUP BY 1, 2, 3, 4), \
     hit AS (SELECT DISTINCT a.member_id, a.span_type, a.start_date, a.end_date FROM g a JOIN g b \
     ON a.member_id = b.member_id AND a.span_type = b.span_type \
     AND (b.start_date < a.start_date OR (b.start_date = a.start_date AND b.end_date < a.end_date)) \
     AND b.end_date >= a.start_date) \
     SELECT coalesce(sum(CASE WHEN h.member_id IS NULL THEN g.n - 1 ELSE g.n END), 0) FROM g LEFT JOIN hit h \
     ON h.member_id = g.member_id AND h.span_type = g.span_type AND h.start_date = g.start_date \
     AND h.end_date = g.end_date";

fn unknown_member(extract: &'static str) -> CheckDef {
    flag(
        "unknown_member",
        extract,
        Category::Plausibility,
        Severity::Error,
        0.01,
        "`member_id` not in the members extract (no age, sex or death date for it)",
        "member_id NOT IN (SELECT member_id FROM members)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_named_after_their_extract() {
        let all = catalogue();
        let mut seen = std::collections::BTreeSet::new();
        for c in &all {
            assert!(seen.insert(c.id.clone()), "duplicate check {}", c.id);
            assert!(c.id.starts_with(&format!("{}.", c.extract)), "{}", c.id);
            assert!((0.0..=1.0).contains(&c.max_share), "{}", c.id);
        }
        // The plausibility list, each present.
        for id in [
            "claims.discharge_before_admission",
            "claims.service_after_death",
            "claims.future_date",
            "enrollment.overlapping_spans",
            "claims.duplicate_line",
            "claims.replacement_without_original",
            "claims.void_of_missing_claim",
            "members.without_enrollment",
        ] {
            assert!(seen.contains(id), "{id} missing");
        }
    }
}
