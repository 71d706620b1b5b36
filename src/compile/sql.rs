//! The one place where names, text and dates become SQL. Every value the compiler writes into a
//! query that it did not make itself (a block or column named in a measure, an exclusion's name,
//! an age band's label, a title in a comment) passes through here, so a quote, a newline or a
//! capital letter in a definition can change neither what the query means nor what it reads.

use std::borrow::Cow;

use chrono::NaiveDate;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// An identifier as SQL: as it is when it is a plain lower-case name that is no keyword (what
/// reviewers read: `b.visit_date`), otherwise double-quoted with its quotes doubled. DataFusion
/// folds unquoted names to lower case, so `Visit_Date` is quoted to stay itself.
pub fn ident(name: &str) -> Cow<'_, str> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && ALL_KEYWORDS
            .binary_search(&name.to_ascii_uppercase().as_str())
            .is_err();
    if plain {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(quoted(name))
    }
}

/// An identifier always double-quoted, its quotes doubled: the detail's numerator columns, named
/// after components (`"7_day"`).
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A text literal: single-quoted, its quotes doubled.
pub fn string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A date literal.
pub fn date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

/// `expr` shifted by `days`.
pub fn plus_days(expr: &str, days: i32) -> String {
    match days {
        0 => expr.to_string(),
        d if d > 0 => format!("{expr} + INTERVAL '{d} days'"),
        d => format!("{expr} - INTERVAL '{} days'", -(i64::from(d))),
    }
}

/// Text for a `--` comment: one line, control characters as spaces, so that nothing after a
/// newline in a title or a name becomes SQL.
pub fn comment(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// The names of the steps a plan may have besides the evidence steps `x<i>` and `n<i>`, and of
/// the population query's: a building block may not take one (it would be hidden behind the
/// step inside the measure's query).
pub const STEP_NAMES: &[&str] = &[
    "months",
    "events",
    "events_first",
    "events_chained",
    "event_refs",
    "candidates",
    "ce_windows",
    "ce_spans",
    "ce_distinct",
    "ce_ordered",
    "ce_gaps",
    "ce",
    "units",
    "eligible",
    "eligible_first",
    "eligible_chained",
    "deduped",
    "judged",
    "counted",
    "detail",
    "spans",
    "people",
];

/// Whether `name` is, or could be, the name of a step of a plan.
pub fn is_step_name(name: &str) -> bool {
    STEP_NAMES.contains(&name)
        || name
            .strip_prefix(['x', 'n'])
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_as_they_are_and_others_are_quoted() {
        assert_eq!(ident("visit_date"), "visit_date");
        assert_eq!(ident("_x1"), "_x1");
        assert_eq!(ident("Visit_Date"), "\"Visit_Date\"");
        assert_eq!(ident("1st"), "\"1st\"");
        assert_eq!(ident("a b"), "\"a b\"");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident("date"), "\"date\"");
        assert_eq!(ident("x\"; DROP"), "\"x\"\"; DROP\"");
        assert_eq!(ident(""), "\"\"");
    }

    #[test]
    fn text_is_quoted_and_comments_stay_on_one_line() {
        assert_eq!(string("it's"), "'it''s'");
        assert_eq!(string("a' OR '1'='1"), "'a'' OR ''1''=''1'");
        assert_eq!(comment("title\nSELECT 1"), "title SELECT 1");
        assert_eq!(comment("a\r\u{0}b"), "a  b");
        assert_eq!(comment("plain"), "plain");
    }

    #[test]
    fn days_are_added_or_taken_away() {
        assert_eq!(plus_days("d", 0), "d");
        assert_eq!(plus_days("d", 30), "d + INTERVAL '30 days'");
        assert_eq!(plus_days("d", -365), "d - INTERVAL '365 days'");
        assert_eq!(plus_days("d", i32::MIN), "d - INTERVAL '2147483648 days'");
        assert_eq!(
            date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap()),
            "DATE '2025-01-31'"
        );
    }
}
