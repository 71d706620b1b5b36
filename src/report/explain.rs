//! `hhq explain` as text: one member's units of a measure, in the denominator or why not, and
//! the evidence behind each numerator.

/// `hhq explain`: for one member, each unit of the measure, whether it is in the denominator or
/// why not, and the evidence (dates and ids) behind each numerator.
pub fn explain_text(e: &crate::pipeline::Explanation, member: &str) -> String {
    // The member's rows are values from the extracts: shown on the terminal, never obeyed.
    crate::escape::terminal(&explain_lines(e, member)).into_owned()
}

fn explain_lines(e: &crate::pipeline::Explanation, member: &str) -> String {
    use std::fmt::Write;
    let m = &e.measure;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} — {}\nmember {member}, period {}, basis {}",
        m.id,
        m.version,
        m.title,
        e.period,
        m.basis.name()
    );
    let _ = writeln!(out, "judged in this order, the first that applies named:");
    for (i, rule) in e.order.iter().enumerate() {
        let _ = writeln!(out, "  {}. {rule}", i + 1);
    }
    if e.rows.is_empty() {
        out.push_str(&no_unit_lines(e.no_unit.as_ref()));
        return out;
    }
    let col = |row: &[Option<String>], name: &str| -> Option<String> {
        e.columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| row[i].clone())
    };
    for row in &e.rows {
        let get = |name: &str| col(row, name).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "\n{} {} — anchor {}, age {} ({}), {} / {} / {}",
            match m.basis {
                crate::measure::Basis::Events => "event",
                crate::measure::Basis::MemberMonths => "month",
                crate::measure::Basis::Members => "member",
            },
            get("unit_id"),
            get("anchor_date"),
            get("age"),
            get("age_band"),
            get("mco"),
            get("hhp"),
            get("population"),
        );
        match (col(row, "ineligible"), col(row, "exclusion")) {
            (Some(why), _) => {
                let _ = writeln!(out, "  not in the denominator: {why}");
            }
            (None, Some(x)) => {
                let _ = writeln!(
                    out,
                    "  excluded: {x} (evidence {} on {})",
                    get("exclusion_id"),
                    get("exclusion_date")
                );
            }
            (None, None) => {
                let _ = writeln!(out, "  in the denominator");
                for c in &m.components {
                    if let crate::measure::ComponentKind::Numerator(_) = c.kind {
                        let n = &c.name.value;
                        let value = get(n);
                        let hit = value != "0" && value != "0.0";
                        let _ = writeln!(
                            out,
                            "  {n}: {}{}",
                            if hit { "yes" } else { "no" },
                            if hit {
                                format!(
                                    " ({value}; first {} on {})",
                                    get(&format!("{n}_id")),
                                    get(&format!("{n}_date"))
                                )
                            } else {
                                String::new()
                            }
                        );
                    }
                }
            }
        }
    }
    if !e.spans.is_empty() {
        out.push('\n');
        out.push_str(&span_lines(&e.spans));
    }
    out
}

/// Why a member has no unit: the step that left them without one and the rows behind it.
fn no_unit_lines(why: Option<&crate::pipeline::NoUnit>) -> String {
    use crate::pipeline::NoUnit;
    use std::fmt::Write;
    let mut out = String::from("\nno unit of this measure for the member");
    match why {
        None => out.push('\n'),
        Some(NoUnit::Events {
            block,
            date,
            from,
            to,
            rows,
            candidates,
        }) => {
            let _ = writeln!(
                out,
                ": no row of `{block}` with {date} in {from}..{to} passes the events' tests"
            );
            if *rows == 0 {
                let _ = writeln!(out, "  the member has no rows of `{block}`");
                return out;
            }
            let _ = writeln!(
                out,
                "  the member's rows of `{block}` ({rows}{}), nearest the window first, with the tests each fails:",
                if *rows > candidates.len() {
                    format!(", the nearest {} shown", candidates.len())
                } else {
                    String::new()
                }
            );
            for c in candidates {
                let failed = if c.failed.is_empty() {
                    "passes them all (a later step, such as one event per 31 days, set it aside)"
                        .to_string()
                } else {
                    c.failed
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                let _ = writeln!(
                    out,
                    "    {} ({date} {}): fails {failed}",
                    c.id,
                    c.date.as_deref().unwrap_or("—")
                );
            }
        }
        Some(NoUnit::Enrolment {
            program,
            when,
            spans,
        }) => {
            let _ = writeln!(out, ": not enrolled in the programme (`{program}`) {when}");
            out.push_str(&span_lines(spans));
        }
    }
    out
}

/// A member's enrolment spans, one line each (span type, start..end, MCO / partner).
fn span_lines(spans: &[Vec<Option<String>>]) -> String {
    use std::fmt::Write;
    if spans.is_empty() {
        return "  the member has no enrolment spans\n".into();
    }
    let mut out = String::from("  the member's enrolment spans:\n");
    for s in spans {
        let get = |i: usize| s.get(i).cloned().flatten();
        let _ = writeln!(
            out,
            "    {:12} {}..{}  {}{}",
            get(0).unwrap_or_default(),
            get(1).unwrap_or_else(|| "—".into()),
            get(2).unwrap_or_else(|| "open".into()),
            get(3).unwrap_or_else(|| "—".into()),
            get(4).map(|h| format!(" / {h}")).unwrap_or_default()
        );
    }
    out
}
