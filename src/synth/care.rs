//! Everyday care: office visits, labs, pharmacy fills, and behavioural-health and substance-use
//! treatment visits (routine ones, and those placed on purpose as follow-up), and the clean-up
//! that keeps routine care out of stays and out of the window after a psychiatric discharge.

use rand::Rng;

use super::codes::{BH_PRACTITIONERS, Drug, Prov, drugs_for, npi, visit_price};
use super::member::Gen;
use super::random::{cents, money, pick};
use super::rows::{Kind, Line, line};

impl Gen {
    pub(super) fn bh_visit(&mut self, day: i32, scheduled: bool) {
        let rng = &mut self.rng;
        let who = rng.random_range(0..BH_PRACTITIONERS.len() as u32) as usize;
        let (taxonomy, codes) = BH_PRACTITIONERS[who];
        let code = if scheduled && rng.random_bool(0.2) {
            "90791"
        } else {
            pick(rng, codes)
        };
        let tele = rng.random_bool(0.15);
        let pos = if tele {
            if rng.random_bool(0.5) { "02" } else { "10" }
        } else if rng.random_bool(0.5) {
            "53"
        } else {
            "11"
        };
        let paid = cents(visit_price(code) * (0.9 + 0.2 * rng.random::<f64>()));
        let clinician = self.cmhc * 8 + who as u32;
        let own = self.conditions[0];
        let dx = if own.starts_with('F') {
            own
        } else {
            self.conditions
                .iter()
                .copied()
                .find(|c| c.starts_with('F') && !c.starts_with("F17"))
                .unwrap_or("F329")
        };
        let mut c = self.new_claim(Kind::Bh, "professional", day, day);
        c.scheduled = scheduled;
        c.place_of_service = Some(pos);
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx).into_iter().take(2).collect();
        c.billing_npi = Some(npi(Prov::Cmhc, self.cmhc));
        c.rendering_npi = Some(npi(Prov::BhClinician, clinician));
        c.taxonomy = Some(taxonomy);
        let mut l = line(None, Some(code), paid);
        if tele {
            l.modifier_1 = Some("95");
        }
        c.lines = vec![l];
        self.claims.push(c);
    }

    pub(super) fn sud_visit(&mut self, day: i32, dx: Option<&'static str>, scheduled: bool) {
        let rng = &mut self.rng;
        let code = if scheduled && rng.random_bool(0.3) {
            "H0001"
        } else {
            pick(rng, &[("H0004", 60), ("H0005", 40)])
        };
        let units = if code == "H0001" {
            1.0
        } else {
            f64::from(rng.random_range(2..=4u32))
        };
        let paid = cents(visit_price(code) * units * (0.9 + 0.2 * rng.random::<f64>()));
        let program = self.cmhc % 10;
        let counselor = program * 8 + rng.random_range(0..8);
        let dx = match dx {
            Some(d) if d.starts_with('F') => d,
            _ => self.sud.unwrap_or("F1120"),
        };
        let mut c = self.new_claim(Kind::SudTreatment, "professional", day, day);
        c.scheduled = scheduled;
        c.place_of_service = Some("57");
        c.principal_dx = Some(dx);
        c.billing_npi = Some(npi(Prov::SudProgram, program));
        c.rendering_npi = Some(npi(Prov::SudProgram, 100 + counselor));
        c.taxonomy = Some("101YA0400X");
        let mut l = line(None, Some(code), paid);
        if code == "H0005" {
            l.modifier_1 = Some("HQ");
        }
        c.lines = vec![l];
        self.claims.push(c);
    }

    pub(super) fn routine_care(&mut self) {
        let office_rate = if self.age < 18 {
            3.5
        } else if self.age >= 65 {
            6.0
        } else {
            4.5
        } * self.util;
        for d in self.dates(office_rate) {
            self.office_visit(d);
        }
        let lab_rate = 2.0 * self.util
            + if self.conditions.contains(&"E119") || self.smi {
                1.0
            } else {
                0.0
            };
        for d in self.dates(lab_rate) {
            self.lab(d);
        }
        let bh_rate = if self.smi {
            f64::from(self.rng.random_range(3..=12u32))
        } else if self
            .conditions
            .iter()
            .any(|c| c.starts_with('F') && !c.starts_with("F17"))
        {
            2.0
        } else {
            0.0
        };
        for d in self.dates(bh_rate) {
            self.bh_visit(d, false);
        }
        if self.sud.is_some() && self.rng.random_bool(0.3) {
            for d in self.dates(6.0) {
                self.sud_visit(d, None, false);
            }
        }
        self.pharmacy();
    }

    fn office_visit(&mut self, day: i32) {
        let rng = &mut self.rng;
        let code = pick(
            rng,
            &[("99212", 10), ("99213", 45), ("99214", 35), ("99215", 10)],
        );
        let dx = if rng.random_bool(0.8) {
            self.conditions[rng.random_range(0..self.conditions.len() as u32) as usize]
        } else {
            pick(
                rng,
                &[
                    ("Z0000", 30),
                    ("J069", 25),
                    ("R509", 15),
                    ("M545", 15),
                    ("B349", 15),
                ],
            )
        };
        let tele = rng.random_bool(0.06);
        let mut lines = vec![line(
            None,
            Some(code),
            cents(visit_price(code) * (0.9 + 0.2 * rng.random::<f64>())),
        )];
        if rng.random_bool(0.4) {
            let (extra, lo, hi) = pick(
                rng,
                &[
                    (("36415", 3.0, 5.0), 40),
                    (("96127", 4.0, 6.0), 20),
                    (("93000", 15.0, 20.0), 10),
                    (("81002", 3.0, 4.0), 20),
                    (("99401", 20.0, 30.0), 10),
                ],
            );
            if rng.random_bool(0.5) {
                lines[0].modifier_1 = Some("25");
            }
            lines.push(line(None, Some(extra), money(rng, lo, hi)));
        }
        if tele {
            lines[0].modifier_2 = Some("95");
        }
        let taxonomy = if self.age < 18 {
            "208000000X"
        } else if rng.random_bool(0.6) {
            "207Q00000X"
        } else {
            "207R00000X"
        };
        let clinician = self.clinic * 6 + rng.random_range(0..6);
        let mut c = self.new_claim(Kind::Office, "professional", day, day);
        c.place_of_service = Some(if tele { "10" } else { "11" });
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx);
        c.billing_npi = Some(npi(Prov::Clinic, self.clinic));
        c.rendering_npi = Some(npi(Prov::Clinician, clinician));
        c.taxonomy = Some(taxonomy);
        c.lines = lines;
        self.claims.push(c);
    }

    fn lab(&mut self, day: i32) {
        let rng = &mut self.rng;
        let tests: [(&str, &str, f64, u32); 6] = [
            ("0301", "80053", 14.0, 60),
            ("0305", "85025", 9.0, 60),
            ("0301", "83036", 12.0, 30),
            ("0301", "80061", 16.0, 30),
            ("0301", "84443", 20.0, 15),
            ("0300", "81001", 4.0, 20),
        ];
        let mut lines = Vec::new();
        for (rev, cpt, price, pct) in tests {
            if rng.random_range(0..100) < pct {
                lines.push(line(
                    Some(rev),
                    Some(cpt),
                    cents(price * (0.9 + 0.2 * rng.random::<f64>())),
                ));
            }
        }
        if lines.is_empty() {
            lines.push(line(Some("0301"), Some("80048"), money(rng, 9.0, 12.0)));
        }
        lines.push(line(Some("0300"), Some("36415"), money(rng, 3.0, 5.0)));
        let dx = self
            .conditions
            .iter()
            .copied()
            .find(|c| !c.starts_with('F'))
            .unwrap_or("Z0000");
        let hospital = self.hospital;
        let mut c = self.new_claim(Kind::Lab, "outpatient", day, day);
        c.type_of_bill = Some("0131");
        c.principal_dx = Some(dx);
        c.billing_npi = Some(npi(Prov::Hospital, hospital));
        c.taxonomy = Some("282N00000X");
        c.lines = lines;
        self.claims.push(c);
    }

    /// Roughly monthly 30-day fills of the member's maintenance drugs, with missed months.
    fn pharmacy(&mut self) {
        let mut products: Vec<&'static Drug> = Vec::new();
        for c in self.conditions.clone() {
            let options = drugs_for(c);
            if !options.is_empty() && self.rng.random_bool(0.75) {
                let d = &options[self.rng.random_range(0..options.len() as u32) as usize];
                if !products.iter().any(|p| p.ndc == d.ndc) {
                    products.push(d);
                }
            }
        }
        let adherence = 0.75 + 0.22 * self.rng.random::<f64>();
        for drug in products {
            let mut d = self.start + self.rng.random_range(0..60);
            while d <= self.life_end {
                let covered = self.mco_at(d).is_some();
                if self.rng.random_bool(adherence) && (covered || self.rng.random_bool(0.1)) {
                    let paid = money(&mut self.rng, drug.lo, drug.hi);
                    let mut c = self.new_claim(Kind::Pharmacy, "pharmacy", d, d);
                    c.billing_npi = Some(npi(Prov::Pharmacy, self.pharmacy));
                    c.taxonomy = Some("3336C0003X");
                    c.lines = vec![Line {
                        ndc: Some(drug.ndc),
                        days_supply: Some(30),
                        paid,
                        ..Line::default()
                    }];
                    self.claims.push(c);
                    d += 30 + self.rng.random_range(-2..=6);
                } else {
                    d += 30;
                }
            }
        }
    }

    /// Drops routine care that would fall inside a stay, and behavioural-health care in the 60
    /// days after a psychiatric discharge other than the follow-up placed on purpose, so that
    /// follow-up timing is what the generator chose. Office visits in that window stay, without
    /// mental-health diagnoses.
    pub(super) fn drop_conflicts(&mut self) {
        let stays = std::mem::take(&mut self.stays);
        let psych: Vec<i32> = self
            .home_discharges
            .iter()
            .filter(|h| h.psych)
            .map(|h| h.day)
            .collect();
        let fallback = self
            .conditions
            .iter()
            .copied()
            .find(|c| !c.starts_with('F'))
            .unwrap_or("Z0000");
        self.claims.retain_mut(|c| {
            let routine = matches!(
                c.kind,
                Kind::Office | Kind::Lab | Kind::Pharmacy | Kind::Bh | Kind::SudTreatment
            );
            if !routine {
                return true;
            }
            if stays.iter().any(|&(a, d)| a < c.from && c.from < d) {
                return false;
            }
            let in_window = psych.iter().any(|&d| d <= c.from && c.from <= d + 60);
            if !in_window || c.scheduled {
                return true;
            }
            match c.kind {
                Kind::Bh | Kind::SudTreatment => false,
                Kind::Office => {
                    if c.principal_dx.is_some_and(|d| d.starts_with('F')) {
                        c.principal_dx = Some(fallback);
                    }
                    c.other_dx.retain(|d| !d.starts_with('F') && *d != fallback);
                    true
                }
                _ => true,
            }
        });
        self.stays = stays;
    }
}
