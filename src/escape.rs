//! Text from the data made harmless where hhq shows it: CSV cells a spreadsheet would take for a
//! formula, and control characters a terminal would obey.
//!
//! Ids, names and codes come from the extracts, that is from outside: a member id
//! `=HYPERLINK("https://…")` in a CSV that a coordinator opens in a spreadsheet is a formula
//! run on their machine, and a name holding `ESC [ 2 J` printed on a terminal clears it (or
//! worse, on terminals that answer escape sequences).
//!
//! Every CSV hhq writes has its text cells neutralised, those read by machines too
//! (`cms_reporting.csv`, `cms_measures.csv`, `summary.csv`): a person may open any of them in a
//! spreadsheet, and a cell beginning `=` is as dangerous there. hhq's own ids and strata never
//! begin with these characters, so only values from the data change; figures are never touched.

use std::borrow::Cow;

/// Whether a spreadsheet would read a cell beginning with `first` as a formula. OWASP's rule
/// (CSV Injection, owasp.org/www-community/attacks/CSV_Injection): a cell beginning with `=`,
/// `+`, `-`, `@`, tab (0x09) or carriage return (0x0D).
pub fn formula_start(first: u8) -> bool {
    matches!(first, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
}

/// A text cell as a spreadsheet should show it: prefixed with a single quote when it would
/// otherwise be read as a formula (OWASP's rule, [`formula_start`]). Only for text: a number's
/// minus sign (`-1.5` in a numeric column) is not a formula and stays as it is.
pub fn csv_text(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(&b) if formula_start(b) => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Whether a terminal would act on `c` rather than show it: C0 controls (but tab and line
/// feed, which lay text out), DEL, C1 controls (0x9B is an escape sequence's introducer on its
/// own), and the Unicode controls that reorder or break the text shown around them.
fn acts_on_terminal(c: char) -> bool {
    match c {
        '\t' | '\n' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidirectional overrides and isolates, line and paragraph separators.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// Text for a terminal: every control character a terminal would act on written as Rust writes
/// it in a literal (`\u{1b}`), so an escape sequence in the data shows as text (`\u{1b}[31m`)
/// and cannot recolour, move or clear the screen. Tab and line feed stay.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts_on_terminal(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`terminal`] for one line: line feeds escaped too (`\n`), for a value shown inside a line.
pub fn terminal_line(text: &str) -> Cow<'_, str> {
    match terminal(text) {
        Cow::Borrowed(t) if !t.contains('\n') => Cow::Borrowed(t),
        other => Cow::Owned(other.replace('\n', "\\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_and_other_text_is_not() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("M0001", "M0001"),
            ("", ""),
            ("a=b", "a=b"),
            ("'=already", "'=already"),
        ] {
            assert_eq!(csv_text(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(terminal("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(terminal("a\tb\nc"), "a\tb\nc");
        assert_eq!(
            terminal("bell\u{7}del\u{7f}csi\u{9b}2J"),
            "bell\\u{7}del\\u{7f}csi\\u{9b}2J"
        );
        assert_eq!(terminal("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(terminal("Zoë, ünïcödé"), "Zoë, ünïcödé");
        assert_eq!(terminal_line("two\nlines\u{1b}"), "two\\nlines\\u{1b}");
        assert!(matches!(terminal("plain"), Cow::Borrowed(_)));
    }
}
