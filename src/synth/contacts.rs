//! Health Home contacts (monthly outreach by the member's partner, fading for some members, and
//! transitional care after a discharge home) and the S0281 claims they earn under the monthly
//! payment rule.

use std::collections::BTreeMap;

use rand::Rng;

use super::calendar::{month_first, month_index, month_last};
use super::rows::{Contact, Kind, line};

use super::codes::{Prov, npi};
use super::member::Gen;
use super::partners::follow_up_delay;
use super::random::{day_in, pick};

impl Gen {
    /// The member's contacts in date order and numbered, and whether the member's engagement
    /// fades month by month.
    pub(super) fn contacts(&mut self) -> (Vec<Contact>, bool) {
        let mut out = Vec::new();
        let p0 = 0.72 + 0.25 * self.rng.random::<f64>();
        let fading = self.rng.random_bool(0.2);
        let Some(first) = self.hh.first().map(|s| s.start) else {
            return (out, fading);
        };
        let m0 = month_index(first);
        for span in self.hh.clone() {
            let last = span.end.min(self.life_end).min(self.win.end);
            if last < span.start {
                continue;
            }
            for mi in month_index(span.start)..=month_index(last) {
                let lo = month_first(mi).max(span.start);
                let hi = month_last(mi).min(last);
                let mut p = (p0 * self.effect_at(lo).engagement).min(0.98);
                if fading {
                    for _ in 0..(mi - m0) {
                        p *= 0.88;
                    }
                }
                if !self.rng.random_bool(p) {
                    continue;
                }
                let n = pick(&mut self.rng, &[(1, 40), (2, 32), (3, 18), (4, 10)]);
                for _ in 0..n {
                    let date = day_in(&mut self.rng, lo, hi);
                    let c = self.contact(date, span.hhp, None);
                    out.push(c);
                }
            }
        }
        // Transitional care after a discharge home: for the programme about half within 7 days,
        // three quarters within 30.
        for h in self.home_discharges.clone() {
            let f = self.effect_at(h.day).follow_up;
            let buckets = [(Some(0..=7), 50.0), (Some(8..=30), 25.0), (None, 25.0)];
            let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) else {
                continue;
            };
            let date = h.day + delay;
            if date > self.life_end {
                continue;
            }
            if let Some(span) = self.hh_at(date).copied() {
                let c = self.contact(date, span.hhp, Some("transitional_care"));
                out.push(c);
            }
        }
        out.sort_by_key(|c| c.date);
        for (i, c) in out.iter_mut().enumerate() {
            c.seq = i as u32 + 1;
        }
        (out, fading)
    }

    fn contact(&mut self, date: i32, hhp: usize, service: Option<&'static str>) -> Contact {
        let rng = &mut self.rng;
        let transitional = service.is_some();
        let service = service.unwrap_or_else(|| {
            pick(
                rng,
                &[
                    ("care_coordination", 28),
                    ("care_management", 26),
                    ("health_promotion", 16),
                    ("member_family_support", 10),
                    ("community_referral", 10),
                    ("transitional_care", 3),
                ],
            )
        });
        let mode = if transitional {
            pick(rng, &[("phone", 50), ("in_person", 40), ("video", 10)])
        } else {
            pick(
                rng,
                &[
                    ("phone", 44),
                    ("in_person", 26),
                    ("video", 8),
                    ("mail", 8),
                    ("portal", 14),
                ],
            )
        };
        let reached = match mode {
            _ if transitional => rng.random_bool(0.92),
            "phone" => rng.random_bool(0.75),
            "mail" => rng.random_bool(0.55),
            "portal" => rng.random_bool(0.85),
            "video" => rng.random_bool(0.97),
            _ => rng.random_bool(0.99),
        };
        let staff_role = pick(
            rng,
            &[
                (Some("care_coordinator"), 45),
                (
                    Some("nurse_care_coordinator"),
                    if transitional { 60 } else { 28 },
                ),
                (Some("peer_support"), 10),
                (Some("social_worker"), 9),
                (None, 8),
            ],
        );
        Contact {
            seq: 0,
            date,
            hhp,
            service,
            mode,
            reached,
            staff_role,
        }
    }

    /// The S0281 claims of the monthly payment rule, as partners bill them: one per month with a
    /// reached contact, by the partner that reached the member first that month, with the errors
    /// a payment-integrity review finds (`hhq payments`): about 3% of earned months never billed,
    /// 2% of assigned months without a reached contact billed anyway, some months billed twice,
    /// a quarter of members who die while assigned billed for the month after, and 3% of spans
    /// that end billed for the month after their end.
    pub(super) fn health_home_claims(&mut self, contacts: &[Contact], population: &'static str) {
        let mut months: BTreeMap<i32, (i32, usize)> = BTreeMap::new();
        for c in contacts.iter().filter(|c| c.reached) {
            months.entry(month_index(c.date)).or_insert((c.date, c.hhp));
        }
        let rate = if population == "SMI" { 235.0 } else { 190.0 };
        // (month, partner, first day billed, last day billed, MCO)
        let mut bills: Vec<(i32, usize, i32, i32, usize)> = Vec::new();
        for (mi, (date, hhp)) in months.clone() {
            let Some(span) = self
                .hh
                .iter()
                .find(|s| s.covers(date) && s.hhp == hhp)
                .copied()
            else {
                continue;
            };
            if self.rng.random_bool(0.03) {
                continue;
            }
            let from = month_first(mi).max(span.start);
            let to = month_last(mi).min(span.end).min(self.life_end);
            bills.push((mi, hhp, from, to, span.mco));
        }
        for span in self.hh.clone() {
            let last = span.end.min(self.life_end).min(self.win.end);
            for mi in month_index(span.start)..=month_index(last.max(span.start)) {
                if last < span.start || months.contains_key(&mi) || !self.rng.random_bool(0.02) {
                    continue;
                }
                let from = month_first(mi).max(span.start);
                bills.push((mi, span.hhp, from, month_last(mi).min(last), span.mco));
            }
            // Billed for the month after the span: after death, or after the span ended.
            let after = if span.end >= self.life_end {
                self.death.filter(|_| self.rng.random_bool(0.25))
            } else {
                (span.end < self.win.end && self.rng.random_bool(0.03)).then_some(span.end)
            };
            if let Some(end) = after {
                let mi = month_index(end) + 1;
                let day = month_first(mi);
                if day <= self.win.end && self.hh_at(day).is_none() {
                    bills.push((
                        mi,
                        span.hhp,
                        day,
                        month_last(mi).min(self.win.end),
                        span.mco,
                    ));
                }
            }
        }
        let twice: Vec<_> = bills
            .iter()
            .filter(|_| self.rng.random_bool(0.006))
            .copied()
            .collect();
        bills.extend(twice);
        bills.sort();
        let dx = self.conditions[0];
        for (_, hhp, from, to, mco) in bills {
            let mut c = self.new_claim(Kind::HealthHome, "professional", from, to);
            c.mco = Some(mco);
            c.place_of_service = Some("99");
            c.principal_dx = Some(dx);
            c.billing_npi = Some(npi(Prov::Partner, hhp as u32));
            c.taxonomy = Some("251S00000X");
            c.lines = vec![line(None, Some("S0281"), rate)];
            self.claims.push(c);
        }
    }
}
