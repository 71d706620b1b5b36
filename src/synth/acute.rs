//! ED visits and inpatient stays: the events of a member's life in the data (ED visits, medical,
//! psychiatric, detoxification and nursing-facility admissions, a terminal stay) handled in date
//! order, the stays they lead to (transfers, skilled nursing, rehabilitation, readmissions), and
//! the follow-up each may get.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;

use super::codes::{
    ED_MEDICAL_DX, ED_MH_DX, ED_SUD_DX, HOSPITALS, MEDICAL_STAY_DX, OVERDOSE_DX, PSYCH_HOSPITALS,
    PSYCH_STAY_DX, Prov, REHAB_HOSPITALS, SNFS, npi,
};
use super::member::Gen;
use super::partners::{MAX_ACUTE, follow_up_delay};
use super::random::{cents, money, pick};
use super::rows::{HomeDischarge, Kind, StayKind, line};

/// Events handled in date order, so that a stay blocks events that fall inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Ed,
    Admit(StayKind),
    Terminal,
}

impl Gen {
    pub(super) fn acute_events(&mut self) {
        let ed_rate = pick(&mut self.rng, &[(0.3, 60), (1.2, 30), (3.0, 8), (8.0, 2)]);
        let mut heap = BinaryHeap::new();
        let mut order = 0u32;
        let mut push = |heap: &mut BinaryHeap<_>, day: i32, ev: Event| {
            heap.push(Reverse((day, order, ev)));
            order += 1;
        };
        // Drawn at the highest rate any partner and MCO give, then thinned to the member's own
        // on each day.
        for d in self.dates(ed_rate * MAX_ACUTE) {
            let keep = self.effect_at(d).acute / MAX_ACUTE;
            if self.rng.random_bool(keep.min(1.0)) {
                push(&mut heap, d, Event::Ed);
            }
        }
        for d in self.dates(0.02 * self.util) {
            push(&mut heap, d, Event::Admit(StayKind::Medical));
        }
        let psych_rate = if self.smi { 0.08 } else { 0.008 };
        for d in self.dates(psych_rate) {
            push(&mut heap, d, Event::Admit(StayKind::Psych));
        }
        if self.sud.is_some() {
            for d in self.dates(0.04) {
                push(&mut heap, d, Event::Admit(StayKind::Detox));
            }
        }
        // Admissions to a nursing facility straight from the community (AIF-HH), mostly of older
        // members; thinned as ED visits are.
        if self.age >= 18 {
            let snf_rate = if self.age >= 65 { 0.05 } else { 0.01 } * self.util;
            for d in self.dates(snf_rate * MAX_ACUTE) {
                let keep = self.effect_at(d).acute / MAX_ACUTE;
                if self.rng.random_bool(keep.min(1.0)) {
                    push(&mut heap, d, Event::Admit(StayKind::Snf));
                }
            }
        }
        if let Some(d) = self.death
            && self.rng.random_bool(0.45)
        {
            let day = (d - self.rng.random_range(1..=9)).max(self.start);
            push(&mut heap, day, Event::Terminal);
        }

        let mut busy_until = i32::MIN;
        while let Some(Reverse((day, _, ev))) = heap.pop() {
            if day > self.life_end || day <= busy_until {
                continue;
            }
            let admission = match ev {
                Event::Ed => self.ed_episode(day),
                Event::Admit(kind) => Some((day, kind, None, self.hospital, false)),
                Event::Terminal => Some((day, StayKind::Medical, None, self.hospital, false)),
            };
            let Some((admit, kind, dx, hospital, via_ed)) = admission else {
                continue;
            };
            if admit > self.life_end {
                continue;
            }
            let terminal = ev == Event::Terminal;
            let (last, home) = self.stay_chain(admit, kind, dx, hospital, via_ed, terminal);
            busy_until = last;
            if let Some(h) = home {
                // Readmissions within 30 days, more often soon after discharge.
                let readmit = 0.16 * self.effect_at(h.day).acute;
                if self.rng.random_bool(readmit.min(0.9)) {
                    let gap = pick(&mut self.rng, &[(1..=7, 40), (8..=14, 25), (15..=30, 35)]);
                    let back = h.day + self.rng.random_range(gap);
                    let kind = if h.psych && self.rng.random_bool(0.7) {
                        StayKind::Psych
                    } else {
                        StayKind::Medical
                    };
                    push(&mut heap, back, Event::Admit(kind));
                }
                if h.psych {
                    self.psych_follow_up(h.day);
                }
            }
        }
    }

    /// One ED visit (sometimes two the same day); returns the admission it leads to, if any.
    #[allow(clippy::type_complexity)]
    fn ed_episode(&mut self, day: i32) -> Option<(i32, StayKind, Option<&'static str>, u32, bool)> {
        let hospital = if self.rng.random_bool(0.8) {
            self.hospital
        } else {
            self.rng.random_range(0..HOSPITALS)
        };
        let (mh_p, sud_p, od_p) = match (self.smi, self.sud) {
            (_, Some("F1120")) => (0.12, 0.12, 0.12),
            (true, Some(_)) => (0.22, 0.15, 0.03),
            (true, None) => (0.22, 0.03, 0.01),
            (false, Some(_)) => (0.08, 0.15, 0.03),
            (false, None) => (0.08, 0.02, 0.005),
        };
        let r: f64 = self.rng.random();
        let category = if r < mh_p {
            1
        } else if r < mh_p + sud_p {
            2
        } else if r < mh_p + sud_p + od_p {
            3
        } else {
            0
        };
        let (dx, level) = self.ed_visit(day, category, hospital);
        if self.rng.random_bool(0.05) {
            // A second ED visit the same day, elsewhere.
            let other = (hospital + 1 + self.rng.random_range(0..HOSPITALS - 1)) % HOSPITALS;
            self.ed_visit(day, 0, other);
        }
        let admit_p = match (category, level) {
            (3, _) => 0.35,
            (1, _) => 0.22,
            (_, 5) => 0.35,
            (_, 4) => 0.15,
            _ => 0.05,
        };
        if self.rng.random_bool(admit_p) {
            let admit = day + i32::from(self.rng.random_bool(0.3));
            let (kind, dx) = match category {
                1 if dx.starts_with("F2") || dx.starts_with("F3") => (StayKind::Psych, Some(dx)),
                1 => (StayKind::Psych, None),
                2 => (StayKind::Detox, Some(dx)),
                3 => (StayKind::Medical, Some(dx)),
                _ if self.rng.random_bool(0.5) => (StayKind::Medical, None),
                _ => (StayKind::Medical, Some(dx)),
            };
            return Some((admit, kind, dx, hospital, true));
        }
        let f = self.effect_at(day).follow_up;
        match category {
            // Follow-up after a mental-health ED visit: for the programme 22% within 7 days, 55%
            // within 30.
            1 => {
                let buckets = [(Some(0..=7), 22.0), (Some(8..=30), 33.0), (None, 45.0)];
                if let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) {
                    let d = day + delay;
                    if d <= self.life_end {
                        self.bh_visit(d, false);
                    }
                }
            }
            // Substance-use treatment after an SUD or overdose ED visit: initiation (for the
            // programme 28% within 14 days, 40% within 30), engagement.
            2 | 3 => {
                let buckets = [
                    (Some(1..=7), 14.0),
                    (Some(8..=14), 14.0),
                    (Some(15..=30), 12.0),
                    (None, 60.0),
                ];
                let delay = follow_up_delay(&mut self.rng, f, &buckets)?;
                let first = day + delay;
                let mut visits = vec![first];
                if self.rng.random_bool((0.75 * f).min(0.95)) {
                    visits.push(first + self.rng.random_range(3..=15));
                    visits.push(first + self.rng.random_range(16..=34));
                }
                for d in visits {
                    if d <= self.life_end {
                        self.sud_visit(d, Some(dx), true);
                    }
                }
            }
            _ => {}
        }
        None
    }

    /// The facility and professional claims of one ED visit; returns (principal dx, level 1-5).
    fn ed_visit(&mut self, day: i32, category: u8, hospital: u32) -> (&'static str, u32) {
        let rng = &mut self.rng;
        let (dx, other): (&'static str, Vec<&'static str>) = match category {
            1 => (pick(rng, &ED_MH_DX), Vec::new()),
            2 => (pick(rng, &ED_SUD_DX), Vec::new()),
            3 => (pick(rng, &OVERDOSE_DX), vec!["F11120"]),
            _ => (pick(rng, &ED_MEDICAL_DX), Vec::new()),
        };
        let level = pick(rng, &[(1u32, 5), (2, 12), (3, 33), (4, 32), (5, 18)]);
        let em = ["99281", "99282", "99283", "99284", "99285"][level as usize - 1];
        let rev = pick(
            rng,
            &[
                ("0450", 80),
                ("0451", 6),
                ("0452", 4),
                ("0456", 5),
                ("0459", 5),
            ],
        );
        let base = [90.0, 150.0, 250.0, 400.0, 650.0][level as usize - 1];
        let mut lines = vec![line(
            Some(rev),
            Some(em),
            money(rng, base * 0.8, base * 1.2),
        )];
        let extras: [(&str, Option<&str>, f64, f64, f64); 7] = [
            ("0300", Some("80053"), 0.45, 20.0, 60.0),
            ("0305", Some("85025"), 0.45, 12.0, 30.0),
            ("0320", Some("71046"), 0.30, 40.0, 120.0),
            ("0350", Some("70450"), 0.15, 150.0, 400.0),
            ("0250", None, 0.40, 10.0, 80.0),
            ("0636", Some("J2405"), 0.20, 5.0, 20.0),
            ("0730", Some("93005"), 0.20, 20.0, 50.0),
        ];
        for (r, p, prob, lo, hi) in extras {
            if rng.random_bool(prob) {
                lines.push(line(Some(r), p, money(rng, lo, hi)));
            }
        }
        if rng.random_bool(0.08) {
            lines.push(line(Some("0981"), Some(em), money(rng, 40.0, 160.0)));
        }
        let with_professional = rng.random_bool(0.9);
        let physician = hospital * 8 + rng.random_range(0..8);
        let prof_paid = money(rng, base * 0.25, base * 0.4);

        let mut c = self.new_claim(Kind::EdFacility, "outpatient", day, day);
        c.type_of_bill = Some("0131");
        c.principal_dx = Some(dx);
        c.other_dx = other.clone();
        c.other_dx.extend(self.other_dx(dx).into_iter().take(2));
        c.billing_npi = Some(npi(Prov::Hospital, hospital));
        c.taxonomy = Some("282N00000X");
        c.lines = lines;
        let other_dx = c.other_dx.clone();
        self.claims.push(c);
        if with_professional {
            let mut p = self.new_claim(Kind::EdProfessional, "professional", day, day);
            p.place_of_service = Some("23");
            p.principal_dx = Some(dx);
            p.other_dx = other_dx;
            p.billing_npi = Some(npi(Prov::EdGroup, hospital));
            p.rendering_npi = Some(npi(Prov::EdPhysician, physician));
            p.taxonomy = Some("207P00000X");
            p.lines = vec![line(None, Some(em), prof_paid)];
            self.claims.push(p);
        }
        (dx, level)
    }

    fn los(&mut self, kind: StayKind) -> i32 {
        let range = match kind {
            StayKind::Medical => pick(
                &mut self.rng,
                &[
                    (1..=2, 35),
                    (3..=4, 32),
                    (5..=7, 20),
                    (8..=14, 10),
                    (15..=30, 3),
                ],
            ),
            StayKind::Psych => pick(&mut self.rng, &[(2..=5, 30), (6..=10, 45), (11..=21, 25)]),
            StayKind::Detox => 2..=6,
            StayKind::Rehab => 7..=20,
            StayKind::Snf => pick(
                &mut self.rng,
                &[(5..=20, 70), (21..=100, 25), (101..=200, 5)],
            ),
        };
        self.rng.random_range(range)
    }

    /// A stay and whatever it leads to directly (transfer, skilled nursing, rehabilitation).
    /// Returns the last day spent in an institution and the discharge home, if it ended so.
    fn stay_chain(
        &mut self,
        admit: i32,
        kind: StayKind,
        dx: Option<&'static str>,
        hospital: u32,
        via_ed: bool,
        terminal: bool,
    ) -> (i32, Option<HomeDischarge>) {
        let (mut admit, mut kind, mut via_ed) = (admit, kind, via_ed);
        let mut facility = match kind {
            StayKind::Psych if self.rng.random_bool(0.6) => (
                Prov::PsychHospital,
                self.rng.random_range(0..PSYCH_HOSPITALS),
            ),
            StayKind::Snf => (Prov::Snf, self.rng.random_range(0..SNFS)),
            _ => (Prov::Hospital, hospital),
        };
        let mut dx = match dx {
            Some(d) => d,
            None => self.stay_dx(kind),
        };
        let mut acute_psych = kind == StayKind::Psych;
        loop {
            let los = match (terminal, self.death) {
                (true, Some(d)) if kind == StayKind::Medical => d - admit,
                _ => self.los(kind),
            };
            let planned = admit + los;
            let (discharge, status) = match self.death {
                Some(d) if d <= planned => (Some(d), "20"),
                _ if planned > self.win.end => (None, "30"),
                _ => (Some(planned), self.discharge_status(kind)),
            };
            self.stay_claim(kind, admit, discharge, status, facility, dx, via_ed);
            let last = discharge.unwrap_or(self.win.end);
            self.stays.push((admit, last));
            let next_admit = last + i32::from(self.rng.random_bool(0.4));
            if next_admit > self.life_end {
                return (last, None);
            }
            match status {
                "02" => {
                    // Direct transfer to another acute hospital of the same kind.
                    facility = match facility {
                        (Prov::PsychHospital, i) => {
                            (Prov::PsychHospital, (i + 1) % PSYCH_HOSPITALS)
                        }
                        (_, i) => (
                            Prov::Hospital,
                            (i + 1 + self.rng.random_range(0..HOSPITALS - 1)) % HOSPITALS,
                        ),
                    };
                    admit = next_admit;
                }
                "03" => {
                    kind = StayKind::Snf;
                    facility = (Prov::Snf, self.rng.random_range(0..SNFS));
                    admit = next_admit;
                }
                "62" => {
                    kind = StayKind::Rehab;
                    facility = (
                        Prov::RehabHospital,
                        self.rng.random_range(0..REHAB_HOSPITALS),
                    );
                    admit = next_admit;
                }
                "01" | "07" => {
                    let home = HomeDischarge {
                        day: last,
                        psych: acute_psych,
                    };
                    self.home_discharges.push(home);
                    return (last, Some(home));
                }
                _ => return (last, None),
            }
            via_ed = false;
            if kind != StayKind::Psych {
                acute_psych = false;
            }
            if kind == StayKind::Snf || kind == StayKind::Rehab {
                dx = match dx {
                    "I639" => "I69351",
                    d => d,
                };
            }
        }
    }

    fn stay_dx(&mut self, kind: StayKind) -> &'static str {
        match kind {
            StayKind::Psych => {
                let own = self.conditions[0];
                if self.smi
                    && (own.starts_with("F2") || own.starts_with("F31") || own.starts_with("F33"))
                    && self.rng.random_bool(0.7)
                {
                    own
                } else {
                    pick(&mut self.rng, &PSYCH_STAY_DX)
                }
            }
            StayKind::Detox => match self.sud {
                Some("F1020") | None => "F10239",
                Some("F1120") => "F11230",
                Some(other) => other,
            },
            _ => pick(&mut self.rng, &MEDICAL_STAY_DX),
        }
    }

    fn discharge_status(&mut self, kind: StayKind) -> &'static str {
        let snf = if self.age >= 40 { 7 } else { 2 };
        match kind {
            StayKind::Medical => pick(
                &mut self.rng,
                &[
                    ("01", 80 - snf),
                    ("02", 6),
                    ("03", snf),
                    ("62", 3),
                    ("07", 2),
                ],
            ),
            StayKind::Psych => pick(&mut self.rng, &[("01", 94), ("02", 4), ("07", 2)]),
            StayKind::Detox => pick(&mut self.rng, &[("01", 85), ("07", 15)]),
            StayKind::Rehab => pick(&mut self.rng, &[("01", 85), ("03", 15)]),
            StayKind::Snf => "01",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stay_claim(
        &mut self,
        kind: StayKind,
        admit: i32,
        discharge: Option<i32>,
        status: &'static str,
        facility: (Prov, u32),
        dx: &'static str,
        via_ed: bool,
    ) {
        let to = discharge.unwrap_or(self.win.end);
        let days = f64::from((to - admit).max(1));
        let rng = &mut self.rng;
        let open = discharge.is_none();
        let (tob, taxonomy) = match kind {
            StayKind::Snf => {
                let tob = if open {
                    "0212"
                } else if rng.random_bool(0.85) {
                    "0211"
                } else {
                    "0221"
                };
                (tob, "314000000X")
            }
            _ => {
                let taxonomy = match facility.0 {
                    Prov::PsychHospital => "283Q00000X",
                    Prov::RehabHospital => "283X00000X",
                    _ => "282N00000X",
                };
                (if open { "0112" } else { "0111" }, taxonomy)
            }
        };
        let (room, per_diem) = match kind {
            StayKind::Medical => (
                if rng.random_bool(0.35) {
                    "0100"
                } else {
                    "0120"
                },
                1350.0,
            ),
            StayKind::Psych => (if rng.random_bool(0.4) { "0114" } else { "0124" }, 880.0),
            StayKind::Detox => (if rng.random_bool(0.5) { "0116" } else { "0126" }, 760.0),
            StayKind::Rehab => (if rng.random_bool(0.5) { "0118" } else { "0128" }, 1100.0),
            StayKind::Snf => (if rng.random_bool(0.6) { "0120" } else { "0191" }, 240.0),
        };
        let mut lines = vec![line(
            Some(room),
            None,
            cents(days * per_diem * (0.85 + 0.3 * rng.random::<f64>())),
        )];
        lines.push(line(Some("0250"), None, money(rng, 80.0, 900.0)));
        let extras: &[(&str, f64, f64, f64)] = match kind {
            StayKind::Medical => &[
                ("0300", 0.9, 80.0, 500.0),
                ("0320", 0.4, 60.0, 250.0),
                ("0350", 0.2, 200.0, 700.0),
                ("0200", 0.1, 1500.0, 5000.0),
            ],
            StayKind::Psych | StayKind::Detox => &[("0300", 0.5, 40.0, 200.0)],
            StayKind::Rehab | StayKind::Snf => {
                &[("0420", 0.9, 200.0, 900.0), ("0430", 0.6, 150.0, 700.0)]
            }
        };
        for &(rev, p, lo, hi) in extras {
            if rng.random_bool(p) {
                lines.push(line(Some(rev), None, money(rng, lo, hi)));
            }
        }
        if via_ed && rng.random_bool(0.3) {
            lines.push(line(Some("0450"), Some("99284"), money(rng, 200.0, 600.0)));
        }
        let mut c = self.new_claim(Kind::Stay(kind), "inpatient", admit, to);
        c.admission = Some(admit);
        c.discharge = discharge;
        c.discharge_status = Some(status);
        c.type_of_bill = Some(tob);
        c.principal_dx = Some(dx);
        c.other_dx = self.other_dx(dx);
        c.billing_npi = Some(npi(facility.0, facility.1));
        c.taxonomy = Some(taxonomy);
        c.lines = lines;
        self.claims.push(c);
    }

    /// A behavioural-health visit after a psychiatric discharge, at a delay spread over 0-60 days,
    /// or none (for the programme: 32% within 7 days, 66% within 30, 20% none in 60).
    fn psych_follow_up(&mut self, discharge: i32) {
        let f = self.effect_at(discharge).follow_up;
        let buckets = [
            (Some(0..=0), 4.8),
            (Some(1..=6), 19.2),
            (Some(7..=7), 8.0),
            (Some(8..=8), 6.4),
            (Some(9..=30), 27.2),
            (Some(31..=60), 14.4),
            (None, 20.0),
        ];
        let Some(delay) = follow_up_delay(&mut self.rng, f, &buckets) else {
            return;
        };
        let d = discharge + delay;
        if d <= self.life_end {
            self.bh_visit(d, true);
        }
    }
}
