//! Reference codes the claims carry: diagnosis (ICD-10-CM) value sets to pick from, the visit
//! codes and prices of practitioners, drugs (illustrative NDCs) by condition, and provider
//! numbers (NPIs of invented providers, by family). The codes are real public codes used
//! illustratively; NDCs and NPIs only have the right shape.

/// Provider families; an NPI is built from the family and an index within it.
#[derive(Clone, Copy)]
pub(super) enum Prov {
    Hospital = 1,
    PsychHospital,
    RehabHospital,
    Snf,
    Clinic,
    Clinician,
    Cmhc,
    BhClinician,
    EdGroup,
    EdPhysician,
    Pharmacy,
    Partner,
    SudProgram,
}

pub(super) const HOSPITALS: u32 = 24;
pub(super) const PSYCH_HOSPITALS: u32 = 4;
pub(super) const REHAB_HOSPITALS: u32 = 3;
pub(super) const SNFS: u32 = 30;
pub(super) const CLINICS: u32 = 60;
pub(super) const CMHCS: u32 = 26;
pub(super) const PHARMACIES: u32 = 80;

/// A ten-digit NPI whose last digit is the Luhn check digit over `80840` + the first nine, as the
/// NPI standard defines it, so that validators accept the synthetic numbers.
pub(super) fn npi(family: Prov, index: u32) -> u64 {
    let body = 100_000_000 + (family as u32) * 1_000_000 + index;
    let mut digits: Vec<u32> = vec![8, 0, 8, 4, 0];
    digits.extend(body.to_string().bytes().map(|b| u32::from(b - b'0')));
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        sum += if i % 2 == 0 {
            let x = d * 2;
            x / 10 + x % 10
        } else {
            *d
        };
    }
    u64::from(body) * 10 + u64::from((10 - sum % 10) % 10)
}

// Diagnosis codes (ICD-10-CM, no dots).
pub(super) const SMI_ADULT: [(&str, u32); 10] = [
    ("F209", 12),
    ("F250", 5),
    ("F319", 14),
    ("F312", 4),
    ("F331", 10),
    ("F332", 8),
    ("F329", 14),
    ("F411", 12),
    ("F4310", 10),
    ("F603", 4),
];
pub(super) const SMI_CHILD: [(&str, u32); 6] = [
    ("F329", 20),
    ("F900", 25),
    ("F4310", 20),
    ("F913", 15),
    ("F419", 15),
    ("F319", 5),
];
pub(super) const CC_ADULT: [(&str, u32); 9] = [
    ("E119", 25),
    ("I10", 20),
    ("J449", 12),
    ("J45909", 10),
    ("I509", 8),
    ("N1830", 5),
    ("E6601", 6),
    ("E785", 8),
    ("I2510", 6),
];
pub(super) const CC_CHILD: [(&str, u32); 4] =
    [("J45909", 50), ("E109", 20), ("G40909", 15), ("E6601", 15)];
pub(super) const COMORBID: [(&str, u32); 6] = [
    ("I10", 30),
    ("E119", 20),
    ("E785", 20),
    ("E6601", 12),
    ("J45909", 10),
    ("K219", 8),
];
pub(super) const SUD: [(&str, u32); 5] = [
    ("F1020", 35),
    ("F1120", 25),
    ("F1220", 15),
    ("F1520", 15),
    ("F1420", 10),
];
pub(super) const PSYCH_STAY_DX: [(&str, u32); 10] = [
    ("F209", 20),
    ("F250", 10),
    ("F251", 5),
    ("F319", 15),
    ("F312", 10),
    ("F314", 5),
    ("F332", 15),
    ("F333", 10),
    ("F322", 5),
    ("F323", 5),
];
pub(super) const MEDICAL_STAY_DX: [(&str, u32); 12] = [
    ("J189", 15),
    ("I5023", 8),
    ("J441", 10),
    ("N390", 10),
    ("A419", 10),
    ("L03115", 8),
    ("I214", 5),
    ("K859", 5),
    ("E1165", 6),
    ("I639", 4),
    ("K5792", 4),
    ("R55", 5),
];
pub(super) const ED_MEDICAL_DX: [(&str, u32); 14] = [
    ("R079", 14),
    ("R109", 12),
    ("J069", 10),
    ("M5450", 8),
    ("N390", 8),
    ("R519", 7),
    ("S0990XA", 5),
    ("K529", 5),
    ("R0602", 6),
    ("L03115", 4),
    ("T7840XA", 3),
    ("J45901", 4),
    ("R55", 4),
    ("S93401A", 6),
];
pub(super) const ED_MH_DX: [(&str, u32); 9] = [
    ("F329", 15),
    ("F419", 15),
    ("F209", 10),
    ("F319", 8),
    ("F4310", 10),
    ("F332", 8),
    ("F29", 8),
    ("F411", 8),
    ("F603", 5),
];
pub(super) const ED_SUD_DX: [(&str, u32); 6] = [
    ("F10129", 30),
    ("F1010", 15),
    ("F11120", 10),
    ("F15129", 10),
    ("F12129", 8),
    ("F10239", 10),
];
pub(super) const OVERDOSE_DX: [(&str, u32); 6] = [
    ("T401X1A", 25),
    ("T402X1A", 20),
    ("T40411A", 30),
    ("T40601A", 10),
    ("T403X1A", 5),
    ("T401X4A", 5),
];
/// Social-needs codes a replacement claim sometimes adds.
pub(super) const Z_CODES: [&str; 4] = ["Z590", "Z5941", "Z560", "Z600"];

/// Rendering taxonomies of behavioural-health practitioners, with the visit codes each bills.
pub(super) const BH_PRACTITIONERS: [(&str, &[(&str, u32)]); 6] = [
    ("2084P0800X", &[("99214", 60), ("99213", 40)]),
    ("364SP0808X", &[("99214", 70), ("99213", 30)]),
    ("101YM0800X", &[("90834", 50), ("90837", 30), ("90832", 20)]),
    ("103T00000X", &[("90834", 40), ("90837", 50), ("90832", 10)]),
    ("1041C0700X", &[("90834", 50), ("90837", 25), ("90832", 25)]),
    ("101YM0800X", &[("90837", 40), ("90834", 40), ("90832", 20)]),
];

pub(super) fn visit_price(code: &str) -> f64 {
    match code {
        "99212" => 46.0,
        "99213" => 72.0,
        "99214" => 108.0,
        "99215" => 146.0,
        "90832" => 56.0,
        "90834" => 76.0,
        "90837" => 106.0,
        "90791" => 132.0,
        "H0001" => 140.0,
        "H0004" => 62.0,
        "H0005" => 38.0,
        _ => 40.0,
    }
}

/// Pharmacy products (illustrative 11-digit NDCs) and the price range of a 30-day fill.
pub(super) struct Drug {
    pub(super) ndc: &'static str,
    pub(super) lo: f64,
    pub(super) hi: f64,
}

pub(super) fn drugs_for(dx: &str) -> &'static [Drug] {
    const METFORMIN: Drug = Drug {
        ndc: "00093104801",
        lo: 4.0,
        hi: 12.0,
    };
    const GLARGINE: Drug = Drug {
        ndc: "00088222033",
        lo: 260.0,
        hi: 420.0,
    };
    const LISINOPRIL: Drug = Drug {
        ndc: "68180051301",
        lo: 4.0,
        hi: 10.0,
    };
    const ATORVASTATIN: Drug = Drug {
        ndc: "00378395177",
        lo: 6.0,
        hi: 18.0,
    };
    const ALBUTEROL: Drug = Drug {
        ndc: "00173068220",
        lo: 30.0,
        hi: 62.0,
    };
    const FUROSEMIDE: Drug = Drug {
        ndc: "00054429925",
        lo: 4.0,
        hi: 9.0,
    };
    const RISPERIDONE: Drug = Drug {
        ndc: "50458032006",
        lo: 12.0,
        hi: 40.0,
    };
    const ARIPIPRAZOLE: Drug = Drug {
        ndc: "59148000813",
        lo: 18.0,
        hi: 90.0,
    };
    const QUETIAPINE: Drug = Drug {
        ndc: "00310027110",
        lo: 10.0,
        hi: 35.0,
    };
    const LITHIUM: Drug = Drug {
        ndc: "00054452725",
        lo: 8.0,
        hi: 20.0,
    };
    const SERTRALINE: Drug = Drug {
        ndc: "16729021301",
        lo: 5.0,
        hi: 14.0,
    };
    const FLUOXETINE: Drug = Drug {
        ndc: "00777310502",
        lo: 5.0,
        hi: 14.0,
    };
    const BUPRENORPHINE: Drug = Drug {
        ndc: "12496120803",
        lo: 120.0,
        hi: 260.0,
    };
    match dx {
        "E119" | "E109" => &[METFORMIN, GLARGINE],
        "I10" => &[LISINOPRIL],
        "E785" | "I2510" => &[ATORVASTATIN],
        "J449" | "J45909" => &[ALBUTEROL],
        "I509" => &[FUROSEMIDE, LISINOPRIL],
        "F209" | "F250" => &[RISPERIDONE, ARIPIPRAZOLE],
        "F319" | "F312" => &[LITHIUM, QUETIAPINE],
        "F329" | "F331" | "F332" | "F411" | "F419" | "F4310" => &[SERTRALINE, FLUOXETINE],
        "F1120" => &[BUPRENORPHINE],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npis_pass_the_luhn_check() {
        for n in [
            npi(Prov::Hospital, 0),
            npi(Prov::Partner, 7),
            npi(Prov::Pharmacy, 79),
        ] {
            let digits: Vec<u32> = format!("80840{n}")
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .collect();
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, d)| {
                    if i % 2 == 1 {
                        (d * 2) / 10 + (d * 2) % 10
                    } else {
                        *d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{n}");
            assert_eq!(n.to_string().len(), 10);
        }
    }
}
