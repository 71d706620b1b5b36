//! The reports' finance section: the payment ledger's published figures for the audience (by
//! MCO and partner, or a partner's months), with a chart.

use crate::chart::{self, Estimate, Role, Series};
use crate::finance::files::ForReport;
use crate::measure::{Stratifier, Unit};
use crate::privacy::Audience;
use crate::results::Grouping;
use crate::suppress::PublishedRow;

use super::doc::{Cell, Column, Element, Figure, Section, Table, count_cell, rate_cell};
use super::gather::Gathered;

/// The columns of a payments table: (component, heading); the first is a count.
const COLUMNS: [(&str, &str); 9] = [
    ("assigned_months", "Partner-months assigned"),
    ("earned_months", "Earned %"),
    ("billed_months", "Billed %"),
    ("billed_not_earned", "Billed, not earned %"),
    ("earned_not_billed", "Earned, not billed %"),
    ("state_due", "State due PMPM ($)"),
    ("partner_due", "Partner due PMPM ($)"),
    ("paid", "Paid PMPM ($)"),
    ("missed", "Missed PMPM ($)"),
];

fn row_of<'a>(
    rows: &'a [PublishedRow],
    component: &str,
    g: Grouping,
    stratum: &str,
) -> Option<&'a PublishedRow> {
    rows.iter()
        .find(|p| p.row.component == component && p.row.stratifier == g && p.row.stratum == stratum)
}

fn table(
    id: &str,
    title: &str,
    first: &str,
    rows: &[PublishedRow],
    strata: &[(Grouping, String, String)],
) -> Table {
    let mut columns = vec![Column::text("stratum", first)];
    columns.extend(COLUMNS.iter().map(|(c, h)| Column::number(c, h)));
    let mut out = Vec::new();
    for (g, stratum, label) in strata {
        let mut cells = vec![Cell::text(label.clone())];
        for (i, (c, _)) in COLUMNS.iter().enumerate() {
            let p = row_of(rows, c, *g, stratum);
            cells.push(if i == 0 {
                count_cell(p.map(|p| &p.numerator))
            } else {
                rate_cell(p)
            });
        }
        out.push(cells);
    }
    Table {
        id: id.into(),
        title: title.into(),
        columns,
        rows: out,
        note: Some(crate::suppress::legend()),
    }
}

/// The finance section.
pub fn section(g: &Gathered, f: &ForReport) -> crate::Result<Section> {
    let mut elements = vec![Element::Paragraph {
        text: format!(
            "Health Home payments from {} to {} under {} and the rate table {} ({}). A partner \
             earns a month with a Health Home service that reached the member, delivered by \
             that partner on a day the member was assigned to it; the month is billed with one \
             S0281 line. Dollars are per member-month: the State's due over the member-months \
             it pays, the partner's over months earned, paid over months billed, missed over \
             months earned and not billed. `hhq payments` writes the member-level ledger and \
             every finding with its claims and contacts (docs/finance.md).",
            f.period.start, f.period.end, f.rule_title, f.rates_id, f.rates_title
        ),
    }];
    let mut strata = vec![(
        Grouping::Total,
        "total".to_string(),
        match &g.audience {
            Audience::State => "State".to_string(),
            Audience::Mco(id) | Audience::Hhp(id) => id.clone(),
        },
    )];
    let of = |s: Stratifier| -> Vec<String> {
        let mut v: Vec<String> = f
            .summary
            .iter()
            .filter(|p| p.row.stratifier == Grouping::By(s) && p.row.component == "assigned_months")
            .map(|p| p.row.stratum.clone())
            .collect();
        v.dedup();
        v
    };
    if matches!(g.audience, Audience::State) {
        strata.extend(
            of(Stratifier::Mco)
                .into_iter()
                .map(|m| (Grouping::By(Stratifier::Mco), m.clone(), m)),
        );
    }
    let partners = of(Stratifier::Hhp);
    if !matches!(g.audience, Audience::Hhp(_)) {
        strata.extend(partners.iter().map(|h| {
            (
                Grouping::By(Stratifier::Hhp),
                h.clone(),
                format!("partner {h}"),
            )
        }));
    }
    strata.extend(of(Stratifier::Population).into_iter().map(|p| {
        (
            Grouping::By(Stratifier::Population),
            p.clone(),
            format!("population {p}"),
        )
    }));
    elements.push(Element::Table(table(
        "finance_payments",
        "Payments: months earned and billed, and dollars per member-month",
        "Group",
        &f.summary,
        &strata,
    )));

    if let Some(months) = &f.statement {
        let mut strata: Vec<(Grouping, String, String)> = Vec::new();
        let mut seen: Vec<String> = months
            .iter()
            .filter(|p| p.row.stratifier == Grouping::By(Stratifier::Month))
            .map(|p| p.row.stratum.clone())
            .collect();
        seen.dedup();
        for m in &seen {
            strata.push((Grouping::By(Stratifier::Month), m.clone(), m.clone()));
        }
        strata.push((Grouping::Total, "total".into(), "total".into()));
        let t = table(
            "finance_statement",
            "Payment statement: the partner's months",
            "Month",
            months,
            &strata,
        );
        let series = ["earned_months", "billed_months"]
            .iter()
            .map(|c| Series {
                label: if *c == "earned_months" {
                    "earned %".into()
                } else {
                    "billed %".into()
                },
                values: seen
                    .iter()
                    .map(|m| {
                        match row_of(months, c, Grouping::By(Stratifier::Month), m).map(|p| &p.rate)
                        {
                            Some(Ok(Some(r))) => Some(*r),
                            _ => None,
                        }
                    })
                    .collect(),
                role: if *c == "earned_months" {
                    Role::Own
                } else {
                    Role::State
                },
            })
            .collect::<Vec<_>>();
        let title = "Months earned and billed, by month".to_string();
        let drawing = chart::trend(&title, "% of assigned months", &seen, &series)?;
        elements.push(Element::Table(t.clone()));
        let data = Table {
            id: "finance_months".into(),
            ..t
        };
        elements.push(Element::Figure(Figure::new(
            "finance_months".into(),
            title,
            "Each month's share of the partner's assigned months earned (a service that reached \
             the member) and billed (an S0281 line); gaps are suppressed months."
                .into(),
            drawing,
            data,
        )));
    } else {
        // Earned % by partner, with 95% intervals, against the audience's total.
        let mut items = Vec::new();
        for h in &partners {
            let p = row_of(
                &f.summary,
                "earned_months",
                Grouping::By(Stratifier::Hhp),
                h,
            );
            let ci = p.and_then(|p| match (&p.numerator, &p.denominator) {
                (Ok(n), Ok(d)) => super::stats::interval(Unit::Percent, *n, *d),
                _ => None,
            });
            items.push(Estimate {
                label: h.clone(),
                value: p.and_then(|p| p.rate.ok().flatten()),
                lower: ci.map(|c| c.0),
                upper: ci.map(|c| c.1),
                role: Role::Other,
            });
        }
        let total = row_of(&f.summary, "earned_months", Grouping::Total, "total")
            .and_then(|p| p.rate.ok().flatten());
        let title = "Months earned by partner, with 95% intervals".to_string();
        let drawing = chart::dot_plot(
            &title,
            "% of assigned months earned",
            &items,
            total.map(|t| ("total", t)),
        )?;
        let data = table(
            "finance_earned",
            &title,
            "Partner",
            &f.summary,
            &partners
                .iter()
                .map(|h| (Grouping::By(Stratifier::Hhp), h.clone(), h.clone()))
                .collect::<Vec<_>>(),
        );
        elements.push(Element::Figure(Figure::new(
            "finance_earned".into(),
            title,
            "Dots are the share of each partner's assigned months it earned, bars their Wilson \
             95% intervals; the line is the total. Suppressed partners have no dot."
                .into(),
            drawing,
            data,
        )));
    }
    if let Some(cost) = &g.cost {
        cost_elements(cost, &mut elements)?;
    }
    Ok(Section {
        id: "finance".into(),
        title: "Finance: payments by the S0281 rule".into(),
        elements,
    })
}

/// Cost of care before and after enrolment: the total of care per stratum with its interval, the
/// categories and utilisation for the audience's total, and a dot plot of each partner's
/// estimate.
fn cost_elements(
    cost: &Result<crate::finance::cost::ForReport, String>,
    elements: &mut Vec<Element>,
) -> crate::Result<()> {
    elements.push(Element::Heading {
        text: "Cost of care before and after enrolment".into(),
    });
    let c = match cost {
        Ok(c) => c,
        Err(why) => {
            elements.push(Element::Paragraph {
                text: format!("Not computed: {why}."),
            });
            return Ok(());
        }
    };
    elements.push(Element::Paragraph {
        text: format!(
            "Members first enrolled from {} to {}, in the 12 months before their first month              and the 12 from it, against members who qualified for a target population on {} and              never enrolled (each given a pseudo-index month drawn from the enrollees').              Dollars are paid per eligible member-month; the estimate is the enrollees' mean              change less the comparison members' mean change, with a 95% interval (Welch). It              is descriptive: the groups are not matched beyond qualifying, and a costly year              before enrolment is often followed by a cheaper one whatever is done. A stratum              with 1 to 10 members in either group is suppressed whole (`hhq cost`,              docs/finance.md).",
            c.intake.start, c.intake.end, c.as_of
        ),
    });
    let money = |x: f64| Cell::decimal(x, 2);
    let columns = vec![
        Column::text("stratum", "Group"),
        Column::text("figure", "Figure"),
        Column::number("enrollees", "Enrollees"),
        Column::number("comparison", "Comparison members"),
        Column::number("enrollees_pre", "Enrollees before"),
        Column::number("enrollees_post", "Enrollees after"),
        Column::number("comparison_pre", "Comparison before"),
        Column::number("comparison_post", "Comparison after"),
        Column::number("did", "Difference in differences"),
        Column::number("low", "95% low"),
        Column::number("high", "95% high"),
    ];
    let row = |e: &crate::finance::cost::Estimate, hidden: bool, label: String| -> Vec<Cell> {
        let mut cells = vec![Cell::text(label), Cell::text(e.figure.replace('_', " "))];
        if hidden {
            cells.extend((0..9).map(|_| Cell::suppressed(crate::suppress::Reason::SmallCell)));
        } else {
            let v = |x: f64| {
                if e.unit == Unit::DollarsPerMemberMonth {
                    money(x)
                } else {
                    Cell::decimal(x, 1)
                }
            };
            cells.extend([
                Cell::count(e.n[0] as f64),
                Cell::count(e.n[1] as f64),
                v(e.means[0][0]),
                v(e.means[0][1]),
                v(e.means[1][0]),
                v(e.means[1][1]),
                v(e.did),
                e.interval.map_or(Cell::Empty, |i| v(i.0)),
                e.interval.map_or(Cell::Empty, |i| v(i.1)),
            ]);
        }
        cells
    };
    let label = |e: &crate::finance::cost::Estimate| match e.stratifier {
        Grouping::Total => "total".to_string(),
        Grouping::By(Stratifier::Hhp) => format!("partner {}", e.stratum),
        _ => e.stratum.clone(),
    };
    let by_stratum: Vec<Vec<Cell>> = c
        .estimates
        .iter()
        .filter(|(e, _)| e.figure == "total_of_care")
        .map(|(e, h)| row(e, *h, label(e)))
        .collect();
    elements.push(Element::Table(Table {
        id: "finance_cost_by_stratum".into(),
        title: "Total of care per member-month, before and after enrolment".into(),
        columns: columns.clone(),
        rows: by_stratum,
        note: Some(crate::suppress::legend()),
    }));
    let by_figure: Vec<Vec<Cell>> = c
        .estimates
        .iter()
        .filter(|(e, _)| e.stratifier == Grouping::Total)
        .map(|(e, h)| row(e, *h, "total".into()))
        .collect();
    elements.push(Element::Table(Table {
        id: "finance_cost_by_category".into(),
        title: "Cost by category (dollars per member-month) and use (per 1,000 member-months)"
            .into(),
        columns: columns.clone(),
        rows: by_figure,
        note: Some(
            "The Health Home payment (S0281) is its own category and not in the total of care."
                .into(),
        ),
    }));
    let partners: Vec<&(crate::finance::cost::Estimate, bool)> = c
        .estimates
        .iter()
        .filter(|(e, _)| {
            e.figure == "total_of_care" && e.stratifier == Grouping::By(Stratifier::Hhp)
        })
        .collect();
    let items: Vec<Estimate> = partners
        .iter()
        .map(|(e, hidden)| Estimate {
            label: e.stratum.clone(),
            value: (!hidden).then_some(e.did),
            lower: if *hidden {
                None
            } else {
                e.interval.map(|i| i.0)
            },
            upper: if *hidden {
                None
            } else {
                e.interval.map(|i| i.1)
            },
            role: Role::Other,
        })
        .collect();
    let title = "Change in total of care by partner, against the comparison group".to_string();
    let drawing = chart::dot_plot(
        &title,
        "dollars per member-month",
        &items,
        Some(("no change", 0.0)),
    )?;
    let data = Table {
        id: "finance_cost".into(),
        title: title.clone(),
        columns,
        rows: partners.iter().map(|(e, h)| row(e, *h, label(e))).collect(),
        note: Some(crate::suppress::legend()),
    };
    elements.push(Element::Figure(Figure::new(
        "finance_cost".into(),
        title,
        "Dots are each partner's difference in differences (its enrollees' change less the          comparison members'), bars their 95% intervals; left of the line, cost fell more than          the comparison group's. Suppressed partners have no dot."
            .into(),
        drawing,
        data,
    )));
    Ok(())
}
