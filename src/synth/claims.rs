//! Making a member's claims ([`super::rows::Claim`]), and the last step of them: numbering them
//! in date order and appending replacement and void versions.

use rand::Rng;

use super::codes::Z_CODES;
use super::member::Gen;
use super::random::cents;
use super::rows::{Claim, Kind, ORIGINAL, REPLACEMENT, VOID};

impl Gen {
    pub(super) fn new_claim(
        &mut self,
        kind: Kind,
        claim_type: &'static str,
        from: i32,
        to: i32,
    ) -> Claim {
        Claim {
            seq: 0,
            kind,
            scheduled: false,
            claim_type,
            adjustment: ORIGINAL,
            replaces: None,
            mco: self.mco_at(from),
            from,
            to,
            admission: None,
            discharge: None,
            discharge_status: None,
            type_of_bill: None,
            place_of_service: None,
            principal_dx: None,
            other_dx: Vec::new(),
            billing_npi: None,
            rendering_npi: None,
            taxonomy: None,
            lines: Vec::new(),
        }
    }

    /// Other diagnoses: the member's conditions except the principal one, at most four.
    pub(super) fn other_dx(&self, principal: &str) -> Vec<&'static str> {
        self.conditions
            .iter()
            .copied()
            .filter(|c| *c != principal)
            .take(4)
            .collect()
    }

    /// Orders claims by date, numbers them, and appends replacements and voids.
    pub(super) fn finish_claims(&mut self) -> Vec<Claim> {
        let mut claims = std::mem::take(&mut self.claims);
        claims.sort_by_key(|c| c.from);
        for (i, c) in claims.iter_mut().enumerate() {
            c.seq = i as u32 + 1;
        }
        let mut next = claims.len() as u32 + 1;
        let originals = claims.len();
        for i in 0..originals {
            let r: f64 = self.rng.random();
            if r < 0.01 {
                let v = void_of(&claims[i], next);
                next += 1;
                claims.push(v);
            } else if r < 0.04 {
                let rep = self.replacement_of(&claims[i], next);
                next += 1;
                let r2: f64 = self.rng.random();
                let follow = if r2 < 0.12 {
                    Some(self.replacement_of(&rep, next))
                } else if r2 < 0.18 {
                    Some(void_of(&rep, next))
                } else {
                    None
                };
                claims.push(rep);
                if let Some(f) = follow {
                    next += 1;
                    claims.push(f);
                }
            }
        }
        claims.sort_by_key(|c| (c.from, c.seq));
        claims
    }

    fn replacement_of(&mut self, old: &Claim, seq: u32) -> Claim {
        let mut c = old.clone();
        c.seq = seq;
        c.adjustment = REPLACEMENT;
        c.replaces = Some(old.seq);
        if old.principal_dx.is_some() && self.rng.random_bool(0.35) {
            let z = Z_CODES[self.rng.random_range(0..Z_CODES.len() as u32) as usize];
            if !c.other_dx.contains(&z) {
                c.other_dx.push(z);
            }
        } else {
            for l in &mut c.lines {
                l.paid = cents(l.paid * (0.8 + 0.4 * self.rng.random::<f64>()));
            }
        }
        c
    }
}

fn void_of(old: &Claim, seq: u32) -> Claim {
    let mut c = old.clone();
    c.seq = seq;
    c.adjustment = VOID;
    c.replaces = Some(old.seq);
    for l in &mut c.lines {
        l.paid = -l.paid;
    }
    c
}
