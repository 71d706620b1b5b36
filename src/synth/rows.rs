//! The rows the generator makes before they are written: claims (a header and its lines, with
//! what kind each is for the generator's own bookkeeping), contacts, and the discharge home that
//! ends a chain of stays. Plain data, below every step that makes them.

pub(super) const ORIGINAL: &str = "original";
pub(super) const REPLACEMENT: &str = "replacement";
pub(super) const VOID: &str = "void";

/// What a claim is, for the generator's own bookkeeping (not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Office,
    Lab,
    Pharmacy,
    Bh,
    SudTreatment,
    EdFacility,
    EdProfessional,
    Stay(StayKind),
    HealthHome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum StayKind {
    Medical,
    Psych,
    Detox,
    Rehab,
    Snf,
}

#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) seq: u32,
    pub(super) kind: Kind,
    /// A visit placed on purpose (follow-up after a psychiatric discharge, SUD treatment after
    /// an ED visit), kept even in the quiet window after a psychiatric discharge.
    pub(super) scheduled: bool,
    pub(super) claim_type: &'static str,
    pub(super) adjustment: &'static str,
    pub(super) replaces: Option<u32>,
    pub(super) mco: Option<usize>,
    pub(super) from: i32,
    pub(super) to: i32,
    pub(super) admission: Option<i32>,
    pub(super) discharge: Option<i32>,
    pub(super) discharge_status: Option<&'static str>,
    pub(super) type_of_bill: Option<&'static str>,
    pub(super) place_of_service: Option<&'static str>,
    pub(super) principal_dx: Option<&'static str>,
    pub(super) other_dx: Vec<&'static str>,
    pub(super) billing_npi: Option<u64>,
    pub(super) rendering_npi: Option<u64>,
    pub(super) taxonomy: Option<&'static str>,
    pub(super) lines: Vec<Line>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Line {
    pub(super) revenue: Option<&'static str>,
    pub(super) procedure: Option<&'static str>,
    pub(super) modifier_1: Option<&'static str>,
    pub(super) modifier_2: Option<&'static str>,
    pub(super) ndc: Option<&'static str>,
    pub(super) days_supply: Option<i32>,
    pub(super) paid: f64,
}

pub(super) fn line(
    revenue: Option<&'static str>,
    procedure: Option<&'static str>,
    paid: f64,
) -> Line {
    Line {
        revenue,
        procedure,
        paid,
        ..Line::default()
    }
}

/// A discharge home (or against advice) that ends a chain of stays.
#[derive(Debug, Clone, Copy)]
pub(super) struct HomeDischarge {
    pub(super) day: i32,
    pub(super) psych: bool,
}

/// A Health Home contact.
#[derive(Debug, Clone)]
pub(super) struct Contact {
    pub(super) seq: u32,
    pub(super) date: i32,
    pub(super) hhp: usize,
    pub(super) service: &'static str,
    pub(super) mode: &'static str,
    pub(super) reached: bool,
    pub(super) staff_role: Option<&'static str>,
}
