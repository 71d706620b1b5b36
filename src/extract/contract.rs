//! The extract contract as data: every extract's columns, their types, whether they may be null and,
//! for coded columns, the values allowed. The same tables drive schema checks, the synthetic
//! generator's Arrow schemas and the user documentation (`hhq contract`), so the three cannot drift.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The logical type of a contract column. Each accepts a few physical Arrow types that convert
/// without loss (see [`ColumnType::accepts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Date,
    Int32,
    Double,
    Boolean,
    StringList,
}

impl ColumnType {
    /// The name used in the contract and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Date => "date",
            ColumnType::Int32 => "int32",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
            ColumnType::StringList => "list of string",
        }
    }

    /// The Arrow type hhq writes and works in.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Date => DataType::Date32,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::StringList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        }
    }

    /// Whether a physical Arrow type found in a file is an acceptable encoding of this column.
    /// Only lossless encodings are accepted: a 64-bit integer or a timestamp is refused rather than
    /// silently truncated.
    pub fn accepts(self, found: &DataType) -> bool {
        fn is_string(t: &DataType) -> bool {
            match t {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
                DataType::Dictionary(_, v) => is_string(v),
                _ => false,
            }
        }
        match self {
            ColumnType::String => is_string(found),
            ColumnType::Date => matches!(found, DataType::Date32),
            ColumnType::Int32 => matches!(
                found,
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::UInt8
                    | DataType::UInt16
            ),
            ColumnType::Double => matches!(found, DataType::Float32 | DataType::Float64),
            ColumnType::Boolean => matches!(found, DataType::Boolean),
            ColumnType::StringList => match found {
                DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
                    is_string(f.data_type())
                }
                _ => false,
            },
        }
    }
}

/// One column of an extract.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    /// For coded columns: the only values allowed.
    pub allowed: Option<&'static [&'static str]>,
    pub meaning: &'static str,
}

/// One extract of the data directory.
#[derive(Debug)]
pub struct Extract {
    pub name: &'static str,
    pub grain: &'static str,
    pub columns: &'static [Column],
}

impl Extract {
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of this extract as hhq writes it.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, c.ty.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// [`Extract::schema`] with every field nullable, as most producers write them: the
    /// contract's not-null rules are checked on the data when the extract is opened.
    pub fn nullable_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, c.ty.arrow(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

const fn col(name: &'static str, ty: ColumnType, nullable: bool, meaning: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable,
        allowed: None,
        meaning,
    }
}

const fn coded(
    name: &'static str,
    nullable: bool,
    allowed: &'static [&'static str],
    meaning: &'static str,
) -> Column {
    Column {
        name,
        ty: ColumnType::String,
        nullable,
        allowed: Some(allowed),
        meaning,
    }
}

use ColumnType::{Boolean, Date, Double, Int32, String as Str, StringList};

pub const CLAIM_TYPES: &[&str] = &[
    "inpatient",
    "outpatient",
    "professional",
    "pharmacy",
    "long_term_care",
];
pub const ADJUSTMENTS: &[&str] = &["original", "replacement", "void"];
pub const SERVICES: &[&str] = &[
    "care_management",
    "care_coordination",
    "health_promotion",
    "transitional_care",
    "member_family_support",
    "community_referral",
];
pub const MODES: &[&str] = &["in_person", "phone", "video", "mail", "portal"];
pub const SEXES: &[&str] = &["F", "M", "U"];
pub const ETHNICITIES: &[&str] = &["hispanic", "not_hispanic"];
pub const SPAN_TYPES: &[&str] = &["medicaid", "health_home"];
pub const POPULATIONS: &[&str] = &["SMI", "CC"];

pub static CLAIMS: Extract = Extract {
    name: "claims",
    grain: "one row per claim line",
    columns: &[
        col("member_id", Str, false, "Medicaid member id"),
        col("claim_id", Str, false, "id of this version of the claim"),
        col("line_number", Int32, false, "1-based line"),
        coded("claim_type", false, CLAIM_TYPES, "kind of claim"),
        coded(
            "adjustment",
            false,
            ADJUSTMENTS,
            "`original`, `replacement` (replaces `replaces_claim_id`), `void` (cancels `replaces_claim_id`)",
        ),
        col(
            "replaces_claim_id",
            Str,
            true,
            "the claim a replacement or void acts on",
        ),
        col("mco_id", Str, true, "paying MCO (null for fee-for-service)"),
        col(
            "service_from",
            Date,
            false,
            "first date of service of the line",
        ),
        col(
            "service_to",
            Date,
            false,
            "last date of service of the line",
        ),
        col("admission_date", Date, true, "institutional claims"),
        col(
            "discharge_date",
            Date,
            true,
            "institutional claims; null while still admitted",
        ),
        col(
            "discharge_status",
            Str,
            true,
            "UB-04 patient status (`01` home, `02` to another acute hospital, `20` died, ...)",
        ),
        col("type_of_bill", Str, true, "UB-04 type of bill"),
        col(
            "revenue_code",
            Str,
            true,
            "UB-04 revenue code, four characters",
        ),
        col(
            "procedure_code",
            Str,
            true,
            "CPT or HCPCS (`S0281` is the monthly Health Home service)",
        ),
        col("modifier_1", Str, true, "procedure modifier"),
        col("modifier_2", Str, true, "procedure modifier"),
        col("place_of_service", Str, true, "CMS place-of-service code"),
        col("principal_dx", Str, true, "ICD-10-CM, no dot"),
        col(
            "other_dx",
            StringList,
            true,
            "further ICD-10-CM diagnoses, in order",
        ),
        col("billing_npi", Str, true, "billing provider"),
        col("rendering_npi", Str, true, "rendering provider"),
        col(
            "provider_taxonomy",
            Str,
            true,
            "rendering provider's taxonomy (tells a mental-health practitioner)",
        ),
        col("ndc", Str, true, "pharmacy lines"),
        col("days_supply", Int32, true, "pharmacy lines"),
        col("paid_amount", Double, true, "dollars"),
    ],
};

pub static CONTACTS: Extract = Extract {
    name: "contacts",
    grain: "one row per Health Home service contact",
    columns: &[
        col("contact_id", Str, false, "id of the contact"),
        col("member_id", Str, false, "Medicaid member id"),
        col("contact_date", Date, false, "date of the contact"),
        col("hhp_id", Str, false, "partner that delivered it"),
        coded("service", false, SERVICES, "which of the six core services"),
        coded("mode", false, MODES, "how the contact was made"),
        col(
            "reached",
            Boolean,
            false,
            "whether the contact reached the member (an unanswered call is false)",
        ),
        col(
            "staff_role",
            Str,
            true,
            "e.g. `nurse_care_coordinator`, `care_coordinator`, `peer_support`",
        ),
    ],
};

pub static MEMBERS: Extract = Extract {
    name: "members",
    grain: "one row per member",
    columns: &[
        col("member_id", Str, false, "Medicaid member id"),
        col("birth_date", Date, false, "date of birth"),
        coded("sex", false, SEXES, "`F`, `M`, `U`"),
        col("race", Str, true, "OMB category"),
        coded(
            "ethnicity",
            true,
            ETHNICITIES,
            "`hispanic`, `not_hispanic`, unknown as null",
        ),
        col("county_fips", Str, true, "five digits"),
        col("rural", Boolean, true, "rural residence"),
        col("death_date", Date, true, "date of death"),
        col("dual_eligible", Boolean, false, "Medicare-Medicaid dual"),
    ],
};

pub static ENROLLMENT: Extract = Extract {
    name: "enrollment",
    grain: "dated spans, both ends inclusive, `end_date` null while open",
    columns: &[
        col("member_id", Str, false, "Medicaid member id"),
        coded(
            "span_type",
            false,
            SPAN_TYPES,
            "`medicaid` (eligibility) or `health_home` (assignment to a partner)",
        ),
        col("start_date", Date, false, "first day of the span"),
        col(
            "end_date",
            Date,
            true,
            "last day of the span; null while open",
        ),
        col("mco_id", Str, true, "MCO for the span"),
        col("hhp_id", Str, true, "partner, on `health_home` spans"),
        coded(
            "population",
            true,
            POPULATIONS,
            "`SMI` or `CC`, on `health_home` spans",
        ),
        col(
            "opted_out",
            Boolean,
            true,
            "on `health_home` spans: the member opted out at the end of this span",
        ),
    ],
};

/// The four extracts of a data directory, in the order they are opened.
pub static EXTRACTS: [&Extract; 4] = [&CLAIMS, &CONTACTS, &MEMBERS, &ENROLLMENT];

/// The contract as Markdown, for `hhq contract` and `docs/data-contract.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    for e in EXTRACTS {
        out.push_str(&format!("### {} — {}\n\n", e.name, e.grain));
        out.push_str("| column | type | null | meaning |\n|---|---|---|---|\n");
        for c in e.columns {
            let meaning = match c.allowed {
                Some(values) if !c.meaning.contains('`') => format!(
                    "{}: {}",
                    c.meaning,
                    values
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => c.meaning.to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                c.name,
                c.ty.name(),
                if c.nullable { "yes" } else { "no" },
                meaning
            ));
        }
        out.push('\n');
    }
    out
}
