//! The measure model: a measure YAML file parsed into a [`Measure`], with every value that refers
//! to something else (a building block, a column, an expression) kept with its line and column so
//! later stages can point back into the file. Names of building blocks and columns are resolved by
//! the compiler, which knows the catalog; this stage checks only what the file alone can tell.

pub mod licensed;
pub mod reach;
pub mod spec;
pub mod valueset;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use spec::Spec;

use crate::error::{Error, Result};

/// A text value and where it stands in its file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

impl<T> From<Spanned<T>> for Located<T> {
    fn from(s: Spanned<T>) -> Self {
        Located {
            line: s.referenced.line() as usize,
            column: s.referenced.column() as usize,
            value: s.value,
        }
    }
}

/// What the denominator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Members enrolled on the anchor date (the period's last day, unless `anchor:` says first).
    Members,
    /// Enrollee months of enrolment within the period.
    MemberMonths,
    /// Rows of a building block (discharges, ED visits, episodes) dated in the period.
    Events,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Members => "members",
            Basis::MemberMonths => "member_months",
            Basis::Events => "events",
        }
    }
}

/// Which months of an enrolment span count as enrollee months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthRule {
    /// Enrolled on a fixed day of the month (`count_day`), the CMS/HEDIS convention.
    CountDay,
    /// Enrolled on at least one day of the month.
    AnyDay,
}

/// The unit a component's rate is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// numerator / denominator × 100.
    Percent,
    /// numerator / denominator × 1,000, over enrollee months.
    #[serde(rename = "per_1000_member_months")]
    Per1000MemberMonths,
    /// numerator / denominator × 1,000, over members.
    #[serde(rename = "per_1000_members")]
    Per1000Members,
    /// The numerator itself (a count or a sum).
    Count,
    /// One component divided by another, in days (average length of stay).
    Days,
    /// One component divided by another (observed/expected).
    Ratio,
    /// The median of a `first:` numerator's days over the units that have one.
    MedianDays,
    /// Dollars (the numerator) per unit of the denominator, a member-month: finance's PMPM.
    /// Not a measure's unit (a measure counts), so a measure file cannot name it.
    #[serde(skip_deserializing)]
    DollarsPerMemberMonth,
}

impl Unit {
    /// Every unit.
    pub const ALL: [Unit; 8] = [
        Unit::Percent,
        Unit::Per1000MemberMonths,
        Unit::Per1000Members,
        Unit::Count,
        Unit::Days,
        Unit::Ratio,
        Unit::MedianDays,
        Unit::DollarsPerMemberMonth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Per1000MemberMonths => "per_1000_member_months",
            Unit::Per1000Members => "per_1000_members",
            Unit::Count => "count",
            Unit::Days => "days",
            Unit::Ratio => "ratio",
            Unit::MedianDays => "median_days",
            Unit::DollarsPerMemberMonth => "dollars_per_member_month",
        }
    }

    /// Multiplier from numerator/denominator to the unit.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Percent => 100.0,
            Unit::Per1000MemberMonths | Unit::Per1000Members => 1000.0,
            Unit::Count
            | Unit::Days
            | Unit::Ratio
            | Unit::MedianDays
            | Unit::DollarsPerMemberMonth => 1.0,
        }
    }
}

/// Stratifiers a measure may report by; `total` is always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stratifier {
    AgeBand,
    Mco,
    Hhp,
    Population,
    Sex,
    Race,
    Ethnicity,
    County,
    Rural,
    Month,
    Quarter,
}

impl Stratifier {
    pub const ALL: [Stratifier; 11] = [
        Stratifier::AgeBand,
        Stratifier::Mco,
        Stratifier::Hhp,
        Stratifier::Population,
        Stratifier::Sex,
        Stratifier::Race,
        Stratifier::Ethnicity,
        Stratifier::County,
        Stratifier::Rural,
        Stratifier::Month,
        Stratifier::Quarter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stratifier::AgeBand => "age_band",
            Stratifier::Mco => "mco",
            Stratifier::Hhp => "hhp",
            Stratifier::Population => "population",
            Stratifier::Sex => "sex",
            Stratifier::Race => "race",
            Stratifier::Ethnicity => "ethnicity",
            Stratifier::County => "county",
            Stratifier::Rural => "rural",
            Stratifier::Month => "month",
            Stratifier::Quarter => "quarter",
        }
    }
}

/// Whether a higher rate is the better result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// Which enrolment makes a member part of the measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// Health Home assignment inside Medicaid eligibility (building block `hh_enrollment`).
    HealthHome,
    /// Medicaid eligibility (building block `medicaid_enrollment`).
    Medicaid,
}

impl Program {
    /// The building block holding this enrolment's intervals.
    pub fn block(self) -> &'static str {
        match self {
            Program::HealthHome => "hh_enrollment",
            Program::Medicaid => "medicaid_enrollment",
        }
    }
}

/// For the `members` basis: which end of the period is the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    PeriodEnd,
    PeriodStart,
}

/// An age band: inclusive bounds in whole years; `max` is `None` for an open band such as `65+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeBand {
    pub label: String,
    pub min: u32,
    pub max: Option<u32>,
}

/// Days relative to the anchor date, both ends inclusive (`from: 1, to: 7` is the week after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: i32,
    pub to: i32,
}

/// How a condition turns qualifying rows into a value per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// 1 when at least one qualifying row exists, else 0.
    Exists,
    /// The number of qualifying rows.
    Count,
    /// The sum of a column over qualifying rows.
    Sum(Located<String>),
    /// Days from the anchor to the first qualifying row (none when there is none).
    First,
}

/// Rows of a building block that qualify for one unit of the denominator: same member, dated in
/// the window (or, for member months, in the month), passing the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub aggregate: Aggregate,
    pub block: Located<String>,
    pub date: Located<String>,
    pub window: Option<Located<Window>>,
    /// The window counts from this date column of the unit's event instead of the anchor, where
    /// the event has one (IET: an inpatient episode's admission date).
    pub of: Option<Located<String>>,
    /// `window: period`: rows dated any time in the measurement period, whatever the anchor
    /// (HEDIS: "any time during the measurement year").
    pub in_period: Option<Located<()>>,
    pub filter: Option<Located<String>>,
    /// The block column whose value is kept as evidence (default `source_id` when present).
    pub id: Option<Located<String>>,
    /// A block column that must equal the unit's id: evidence about this very event (its risk,
    /// its own setting) rather than other rows of the member.
    pub key: Option<Located<String>>,
    /// The window counts from the first date of this earlier numerator component instead of the
    /// anchor (engagement after initiation); units without it have no rows.
    pub after: Option<Located<String>>,
    /// Which date of that numerator's first row the window counts from (`after: {component,
    /// at: end}`: the day it ends, an inpatient initiation's discharge).
    pub after_at: AfterAt,
    /// The block's column holding a row's last day, for a later `after: {…, at: end}` (default:
    /// the row's date).
    pub end: Option<Located<String>>,
    /// For `exists:`: at least this many qualifying rows, counted as `by` says.
    pub at_least: Option<u32>,
    /// What `at_least` counts (`by:`).
    pub by: CountBy,
    /// A column of the block naming the provider (`by: day_provider`).
    pub provider: Option<Located<String>>,
    /// A filter over the block: one row passing it satisfies `at_least` alone (`suffices:`).
    pub suffices: Option<Located<String>>,
    /// Whether the unit qualifies when any arm finds a row (`any_of:`) or only when every arm
    /// does (`all_of:`).
    pub combine: Combine,
    /// Which units a row counts toward (`attribute:`).
    pub attribute: Located<Attribute>,
    /// Further `exists:` arms: the unit qualifies when any arm does (`any_of:`).
    pub alternatives: Vec<Condition>,
}

impl Condition {
    /// This condition and its `any_of:` alternatives.
    pub fn arms(&self) -> impl Iterator<Item = &Condition> {
        std::iter::once(self).chain(self.alternatives.iter())
    }
}

/// A named reason to remove a unit from the denominator.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub name: Located<String>,
    pub description: Option<String>,
    pub condition: Condition,
}

/// What a component computes.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentKind {
    /// A numerator over the shared denominator.
    Numerator(Box<Condition>),
    /// The denominator itself, as a count (PCR's index stays).
    Denominator,
    /// Members of the programme on any day of the period, by age on its last day; with
    /// `outliers`, only those set aside as outliers (see [`Measure::outliers`]).
    Enrollees { outliers: bool },
    /// One component's numerator over another's (average length of stay, observed/expected).
    Ratio {
        numerator: Located<String>,
        denominator: Located<String>,
    },
}

/// One reported rate of a measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: Located<String>,
    pub unit: Unit,
    pub kind: ComponentKind,
    /// A filter on the events' block: only those events are this component's denominator
    /// (IET's alcohol, opioid and other cohorts).
    pub subset: Option<Located<String>>,
    /// An optional input the component needs (`risk_weights`); without it the component is not
    /// reported and the run says so.
    pub needs: Option<Located<String>>,
}

/// The optional inputs a component may need.
pub const OPTIONAL_INPUTS: [&str; 1] = ["risk_weights"];

/// What a state tells CMS's reporting system about a measure besides the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporting {
    /// The specification followed (e.g. "CMS Health Home Core Set 2024 technical specifications").
    #[serde(default)]
    pub specification: Option<String>,
    /// `administrative`, `hybrid`, `ehr` or `other`.
    #[serde(default)]
    pub data_source: Option<DataSource>,
    /// Deviations from the specification, in words.
    #[serde(default)]
    pub deviations: Option<String>,
    /// Anything else the state wants CMS to read.
    #[serde(default)]
    pub notes: Option<String>,
    /// The deviations the measure's rule file lists (readings, Health Home rules, rules not
    /// implemented: `measures/conformance/`), filled in when the definitions load.
    #[serde(skip)]
    pub rule_deviations: Vec<String>,
    /// The value sets the measure reads that are hhq's illustrative ones rather than licensed,
    /// filled in when the definitions load; empty once licensed files replace them all.
    #[serde(skip)]
    pub illustrative_value_sets: Vec<String>,
}

impl Reporting {
    /// Every deviation from the specification: the measure's own words, then its rule file's.
    pub fn all_deviations(&self) -> Vec<String> {
        self.deviations
            .iter()
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .chain(self.illustrative_deviation())
            .chain(self.rule_deviations.iter().cloned())
            .collect()
    }

    /// The deviation illustrative value sets make, if the measure reads any.
    fn illustrative_deviation(&self) -> Option<String> {
        let sets = &self.illustrative_value_sets;
        (!sets.is_empty()).then(|| {
            format!(
                "Illustrative value sets: {} value set{} the measure reads {} hhq's illustrative \
                 ones (measures/valuesets/illustrative*.csv), built from public code systems, not \
                 the licensed value sets: {}",
                sets.len(),
                if sets.len() == 1 { "" } else { "s" },
                if sets.len() == 1 { "is" } else { "are" },
                sets.join(", ")
            )
        })
    }
}

/// Where a measure's data come from, as CMS's reporting system asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Administrative,
    Hybrid,
    Ehr,
    Other,
}

impl DataSource {
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Administrative => "administrative",
            DataSource::Hybrid => "hybrid",
            DataSource::Ehr => "ehr",
            DataSource::Other => "other",
        }
    }
}

/// Member-month settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberMonths {
    pub rule: MonthRule,
    /// Day of month for [`MonthRule::CountDay`] (1 to 28).
    pub count_day: u32,
}

/// The denominator's events: rows of a block whose date falls in the period, shifted by
/// `period_offsets` (days after the period start, days relative to the period end).
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    pub block: Located<String>,
    pub id: Located<String>,
    pub date: Located<String>,
    pub filter: Option<Located<String>>,
    pub start_offset: i32,
    pub end_offset: i32,
    /// Of a member's events less than this many days after a counted one, only the counted one
    /// stays (HEDIS: "the first of several ED visits in a 31-day period"); chained, so the next
    /// event counted is the first on or after that many days.
    pub first_within: Option<FirstWithin>,
}

/// `first_within`: of a member's events less than `days` apart, only the first counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstWithin {
    pub days: Located<u32>,
    pub among: Among,
}

/// Which events `first_within` keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Among {
    /// Every event of the block, before anything else is judged (`first_within: 31`).
    All,
    /// The events still in the denominator once enrolment, age, continuous enrolment and the
    /// exclusions are judged (HEDIS FUM and FUA: each ED visit is assessed for exclusions before
    /// multiple visits are removed).
    Eligible,
}

/// Which date of an earlier numerator's first row `after:` counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterAt {
    /// Its date (`after: initiation`).
    #[default]
    First,
    /// The day it ends (its `end:` column).
    End,
}

/// What `at_least: N` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountBy {
    /// Distinct days with a qualifying row.
    #[default]
    Day,
    /// Distinct days and providers: two rows of one day with two providers are two.
    DayProvider,
    /// Qualifying rows: a visit and a medication on one day are two.
    Event,
}

/// How the arms of a condition combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// `any_of:` (or one condition): any arm's rows.
    #[default]
    Any,
    /// `all_of:`: the unit qualifies only when every arm finds a row.
    All,
}

/// Which units a numerator's row counts toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Every unit whose window holds the row.
    #[default]
    Each,
    /// Only the unit in the denominator whose anchor date is latest among those whose window holds
    /// the row (HEDIS PCR: a readmission within 30 days of two index stays counts toward the last).
    NearestPreceding,
}

/// Continuous enrolment around the anchor: one or more segments of days, each with the gaps it
/// allows (HEDIS PCR: one gap of up to 45 days in the 365 days before the discharge, and none
/// from the discharge through 30 days after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuous {
    /// In order of their days; they do not overlap.
    pub segments: Vec<Segment>,
}

/// Days relative to the anchor over which enrolment is judged, and the gaps allowed in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub window: Window,
    /// How many gaps are allowed.
    pub max_gaps: u32,
    /// The longest gap allowed, in days.
    pub max_gap_days: u32,
}

/// A checked measure definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub version: String,
    /// The specification years the file states text for (`where: {2024: …, 2025: …}`); empty
    /// when it reads alike for every year.
    pub spec_years: Vec<u16>,
    /// The year this definition follows: the year a run asked for, else the newest of
    /// `spec_years` (none when the measure names no year and the run asked for the newest).
    pub spec_year: Option<u16>,
    pub source: String,
    pub description: Option<String>,
    pub better: Better,
    pub basis: Basis,
    pub member_months: MemberMonths,
    pub events: Option<Events>,
    pub anchor: Anchor,
    pub program: Program,
    /// Whether a unit must be enrolled on its anchor date (the default, and what gives it its
    /// MCO and partner); `false` leaves enrolment to the continuous-enrolment segments.
    pub on_anchor: bool,
    /// Where the file says so: `enrollment: {in: …}`, or `basis:` when it does not.
    pub program_at: Located<()>,
    /// Where the file states its basis: what a step that comes from no one key points at.
    pub basis_at: Located<()>,
    pub continuous: Option<Continuous>,
    pub age_bands: Vec<AgeBand>,
    pub stratify: Vec<Stratifier>,
    pub exclusions: Vec<Exclusion>,
    /// Members with at least this many units in the denominator are set aside as outliers
    /// (PCR: four or more index stays), their units excluded and the members counted apart.
    pub outliers: Option<u32>,
    pub components: Vec<Component>,
    pub reporting: Reporting,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    id: Spanned<String>,
    title: String,
    version: spec::ByYear,
    source: spec::ByYear,
    #[serde(default)]
    description: Option<spec::ByYear>,
    better: Better,
    basis: Spanned<Basis>,
    member_months: Option<RawMemberMonths>,
    events: Option<RawEvents>,
    anchor: Option<Anchor>,
    enrollment: Option<RawEnrollment>,
    age_bands: Vec<Spanned<String>>,
    #[serde(default)]
    stratify: Vec<Stratifier>,
    #[serde(default)]
    exclusions: Vec<RawCondition>,
    outliers: Option<RawOutliers>,
    components: Vec<RawComponent>,
    #[serde(default)]
    reporting: Reporting,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutliers {
    min_units: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemberMonths {
    rule: MonthRule,
    count_day: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    from: Spanned<String>,
    id: Spanned<String>,
    date: Spanned<String>,
    #[serde(rename = "where")]
    filter: Option<spec::ByYear>,
    /// Days after the period start the events begin (default 0).
    #[serde(default)]
    start_offset: i32,
    /// Days relative to the period end the events stop (e.g. -30 for December 1).
    #[serde(default)]
    end_offset: i32,
    first_within: Option<Spanned<RawFirstWithin>>,
}

/// `after: initiation`, or `after: {component: initiation, at: end}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawAfter {
    Component(String),
    Stated { component: String, at: AfterAt },
}

/// `window: {from: 1, to: 30}`, or `window: period`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawWindow {
    Days(Window),
    Named(NamedWindow),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum NamedWindow {
    Period,
}

/// `first_within: 31`, or `first_within: {days: 31, among: eligible}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawFirstWithin {
    Days(u32),
    Stated { days: u32, among: Among },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    #[serde(rename = "in")]
    program: Option<Spanned<Program>>,
    on_anchor: Option<Spanned<bool>>,
    continuous: Option<Spanned<RawContinuous>>,
}

/// One segment (`from`, `to`, the gaps allowed), or `segments:` listing several.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContinuous {
    from: Option<Spanned<i32>>,
    to: Option<Spanned<i32>>,
    max_gaps: Option<u32>,
    max_gap_days: Option<u32>,
    segments: Option<Vec<RawSegment>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    from: Spanned<i32>,
    to: Spanned<i32>,
    #[serde(default)]
    max_gaps: u32,
    #[serde(default)]
    max_gap_days: u32,
}

/// A condition; also an exclusion, which adds `name` and `description` (serde's `flatten` would
/// lose the line and column of every value, so the keys live in one struct).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    exists: Option<Spanned<String>>,
    count: Option<Spanned<String>>,
    sum: Option<Spanned<String>>,
    over: Option<Spanned<String>>,
    first: Option<Spanned<String>>,
    any_of: Option<Spanned<Vec<RawCondition>>>,
    date: Option<Spanned<String>>,
    window: Option<Spanned<RawWindow>>,
    #[serde(rename = "where")]
    filter: Option<spec::ByYear>,
    id: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    after: Option<Spanned<RawAfter>>,
    end: Option<Spanned<String>>,
    at_least: Option<Spanned<u32>>,
    by: Option<Spanned<CountBy>>,
    provider: Option<Spanned<String>>,
    suffices: Option<Spanned<String>>,
    attribute: Option<Spanned<Attribute>>,
    all_of: Option<Spanned<Vec<RawCondition>>>,
    of: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    name: Spanned<String>,
    unit: Unit,
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the file
    description: Option<String>,
    numerator: Option<RawCondition>,
    ratio: Option<RawRatio>,
    /// `denominator: {}`: the denominator count.
    denominator: Option<RawEmpty>,
    enrollees: Option<RawEnrollees>,
    #[serde(rename = "where")]
    subset: Option<Spanned<String>>,
    needs: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollees {
    #[serde(default)]
    outliers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatio {
    numerator: Spanned<String>,
    denominator: Spanned<String>,
}

/// Builds located errors for one file.
/// The longest id a definition may have. Ids become file names (`detail/<id>.parquet`, a
/// report's `trend_<id>.csv`), which most file systems cap at 255 bytes; 64 leaves room for
/// what is added and is far longer than any measure's name needs.
pub const MAX_ID_LEN: usize = 64;

/// An id is refused at its line and column unless it is 1 to [`MAX_ID_LEN`] ASCII letters,
/// digits, `-` or `_`: it names files, so it may hold no path separator and no dot.
pub(crate) fn check_id(errs: &Errs, id: &Located<String>, what: &str, example: &str) -> Result<()> {
    let hint = format!("for example `{example}`");
    if id.value.is_empty()
        || !id
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(errs.at(
            id,
            format!("{what} {:?} must be letters, digits, `-` or `_`", id.value),
            Some(&hint),
        ));
    }
    if id.value.len() > MAX_ID_LEN {
        return Err(errs.at(
            id,
            format!(
                "{what} is {} characters long; ids name output files, so an id may be at \
                 most {MAX_ID_LEN}",
                id.value.len()
            ),
            Some(&hint),
        ));
    }
    Ok(())
}

pub(crate) struct Errs<'a>(pub(crate) &'a Path);

impl Errs<'_> {
    pub(crate) fn at<T>(
        &self,
        at: &Located<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Error {
        Error::Definition {
            path: self.0.to_path_buf(),
            line: at.line,
            column: at.column,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

fn condition(errs: &Errs, owner: &Located<String>, mut raw: RawCondition) -> Result<Condition> {
    let combined = match (raw.any_of.take(), raw.all_of.take()) {
        (Some(arms), None) => Some((Combine::Any, Located::from(arms))),
        (None, Some(arms)) => Some((Combine::All, Located::from(arms))),
        (Some(_), Some(all)) => {
            return Err(errs.at(
                &Located::from(all),
                "`any_of:` and `all_of:` in one condition: write one of them",
                Some("an arm may not nest them either; use a filter for finer logic"),
            ));
        }
        (None, None) => None,
    };
    if let Some((combine, arms)) = combined {
        let key = match combine {
            Combine::Any => "any_of",
            Combine::All => "all_of",
        };
        // Which units a row counts toward, and how many rows are needed, are said once, for
        // the rows of every arm.
        let attribute = raw.attribute.take().map(Located::from);
        let at_least = raw.at_least.take().map(Located::from);
        let by = raw.by.take().map(Located::from);
        let alone = raw.exists.is_none()
            && raw.count.is_none()
            && raw.sum.is_none()
            && raw.over.is_none()
            && raw.first.is_none()
            && raw.date.is_none()
            && raw.window.is_none()
            && raw.filter.is_none()
            && raw.id.is_none()
            && raw.key.is_none()
            && raw.after.is_none()
            && raw.provider.is_none()
            && raw.suffices.is_none()
            && raw.of.is_none()
            && raw.end.is_none();
        if !alone {
            return Err(errs.at(
                &arms,
                format!(
                    "`{key}:` stands alone (beside it only `attribute:`, `at_least:` and `by:`): put `exists:`, `date:`, `window:` and the rest in each arm"
                ),
                None,
            ));
        }
        let mut conditions = Vec::new();
        let at = Located {
            value: (),
            line: arms.line,
            column: arms.column,
        };
        for mut arm in arms.value {
            if let Some(extra) = arm.name.take().map(Located::from) {
                return Err(errs.at(&extra, format!("an `{key}:` arm takes no `name:`"), None));
            }
            for (extra, what) in [
                (
                    arm.attribute.take().map(|a| Located::from(a).map_unit()),
                    "attribute",
                ),
                (
                    arm.at_least.take().map(|a| Located::from(a).map_unit()),
                    "at_least",
                ),
                (arm.by.take().map(|a| Located::from(a).map_unit()), "by"),
            ] {
                if let Some(extra) = extra {
                    return Err(errs.at(
                        &extra,
                        format!(
                            "`{what}:` applies to the rows of every arm: put it beside `{key}:`"
                        ),
                        None,
                    ));
                }
            }
            // An arm's `suffices:` is checked with the count beside the arms.
            let suffices = arm.suffices.take().map(Located::from);
            let mut c = condition(errs, owner, arm)?;
            c.suffices = suffices;
            if c.aggregate != Aggregate::Exists || !c.alternatives.is_empty() {
                return Err(errs.at(
                    &c.block,
                    format!("each `{key}:` arm is one `exists:` condition"),
                    Some(match combine {
                        Combine::Any => "the unit qualifies when any arm finds a row",
                        Combine::All => "the unit qualifies when every arm finds a row",
                    }),
                ));
            }
            conditions.push(c);
        }
        if conditions.is_empty() {
            return Err(errs.at(&at, format!("`{key}:` needs at least one arm"), None));
        }
        if combine == Combine::All
            && let Some(n) = &at_least
        {
            return Err(errs.at(
                n,
                "`at_least:` counts the rows of `any_of:` arms; with `all_of:` every arm needs one row",
                None,
            ));
        }
        let mut first = conditions.remove(0);
        first.alternatives = conditions;
        first.combine = combine;
        if let Some(a) = attribute {
            first.attribute = a;
        }
        let suffices = first
            .arms()
            .find_map(|a| a.suffices.as_ref().map(Located::map_unit));
        let (at_least, by) = count(errs, at_least, by, suffices)?;
        first.at_least = at_least;
        first.by = by;
        return Ok(first);
    }
    let aggregate_and_block = match (raw.exists, raw.count, raw.sum, raw.over, raw.first) {
        (Some(b), None, None, None, None) => (Aggregate::Exists, Located::from(b)),
        (None, Some(b), None, None, None) => (Aggregate::Count, Located::from(b)),
        (None, None, Some(col), Some(b), None) => (Aggregate::Sum(col.into()), Located::from(b)),
        (None, None, None, None, Some(b)) => (Aggregate::First, Located::from(b)),
        (None, None, Some(col), None, None) => {
            return Err(errs.at(
                &Located::from(col),
                "`sum:` needs `over:` naming the building block",
                Some("e.g. `sum: length_of_stay` with `over: acute_stays`"),
            ));
        }
        _ => {
            return Err(errs.at(
                owner,
                format!(
                    "`{}` needs exactly one of `exists:`, `count:`, `first:`, `sum:` (with `over:`) or `any_of:`",
                    owner.value
                ),
                Some("`exists: hh_services` is 1 per unit with any row; `count: ed_visits` counts rows"),
            ));
        }
    };
    let Some(date) = raw.date.map(Located::from) else {
        return Err(errs.at(
            &aggregate_and_block.1,
            format!(
                "`{}` needs `date:`, the block's date column the window applies to",
                owner.value
            ),
            None,
        ));
    };
    let (window, in_period) = match raw.window.map(Located::from) {
        None => (None, None),
        Some(Located {
            value: RawWindow::Days(w),
            line,
            column,
        }) => (
            Some(Located {
                value: w,
                line,
                column,
            }),
            None,
        ),
        Some(Located {
            value: RawWindow::Named(NamedWindow::Period),
            line,
            column,
        }) => (
            None,
            Some(Located {
                value: (),
                line,
                column,
            }),
        ),
    };
    if let Some(w) = &window
        && w.value.to < w.value.from
    {
        return Err(errs.at(
            w,
            format!(
                "the window ends (day {}) before it starts (day {})",
                w.value.to, w.value.from
            ),
            Some("windows are days relative to the anchor, `from` up to `to`, both included"),
        ));
    }
    let at_least = raw.at_least.map(Located::from);
    if let Some(n) = &at_least
        && aggregate_and_block.0 != Aggregate::Exists
    {
        return Err(errs.at(n, "`at_least:` applies to `exists:` conditions", None));
    }
    let suffices = raw.suffices.map(Located::from);
    let (at_least, by) = count(
        errs,
        at_least,
        raw.by.map(Located::from),
        suffices.as_ref().map(Located::map_unit),
    )?;
    let of = raw.of.map(Located::from);
    if let Some(o) = &of
        && window.is_none()
    {
        return Err(errs.at(
            o,
            "`of:` names the date a `window:` of days counts from; add `window:`",
            None,
        ));
    }
    let (after, after_at) = match raw.after.map(Located::from) {
        None => (None, AfterAt::First),
        Some(a) => {
            let (component, at) = match a.value {
                RawAfter::Component(c) => (c, AfterAt::First),
                RawAfter::Stated { component, at } => (component, at),
            };
            (
                Some(Located {
                    value: component,
                    line: a.line,
                    column: a.column,
                }),
                at,
            )
        }
    };
    if let (Some(o), Some(_)) = (&of, &after) {
        return Err(errs.at(
            o,
            "`of:` and `after:` each say what the window counts from: keep one",
            None,
        ));
    }
    if let Some(a) = &after
        && window.is_none()
    {
        return Err(errs.at(
            a,
            "`after:` needs a `window:` of days counted from that component's first date",
            Some("e.g. `window: {from: 1, to: 34}`"),
        ));
    }
    let attribute = raw.attribute.map(Located::from).unwrap_or(Located {
        value: Attribute::Each,
        line: date.line,
        column: date.column,
    });
    Ok(Condition {
        aggregate: aggregate_and_block.0,
        block: aggregate_and_block.1,
        date,
        window,
        in_period,
        of,
        after_at,
        end: raw.end.map(Located::from),
        filter: raw.filter.map(spec::ByYear::into_located),
        id: raw.id.map(Located::from),
        key: raw.key.map(Located::from),
        after,
        at_least,
        by,
        provider: raw.provider.map(Located::from),
        suffices,
        combine: Combine::Any,
        attribute,
        alternatives: Vec::new(),
    })
}

/// `at_least:` and what it counts: `by:` and `suffices:` (in the arms) need it; `at_least: 0`
/// is always true.
fn count(
    errs: &Errs,
    at_least: Option<Located<u32>>,
    by: Option<Located<CountBy>>,
    suffices: Option<Located<()>>,
) -> Result<(Option<u32>, CountBy)> {
    if let Some(n) = &at_least
        && n.value == 0
    {
        return Err(errs.at(n, "`at_least: 0` is always true", Some("use 1 or more")));
    }
    if at_least.is_none() {
        if let Some(b) = &by {
            return Err(errs.at(
                b,
                "`by:` says what `at_least:` counts; add `at_least:`",
                None,
            ));
        }
        if let Some(s) = &suffices {
            return Err(errs.at(
                s,
                "`suffices:` satisfies an `at_least:` count alone; without `at_least:` any row suffices",
                None,
            ));
        }
    }
    Ok((
        at_least.map(|n| n.value),
        by.map_or(CountBy::Day, |b| b.value),
    ))
}

impl<T> Located<T> {
    /// The place alone.
    pub fn map_unit(&self) -> Located<()> {
        Located {
            value: (),
            line: self.line,
            column: self.column,
        }
    }
}

impl Measure {
    /// Read and check one measure file.
    pub fn load(path: &Path) -> Result<Measure> {
        Measure::load_spec(path, Spec::Newest)
    }

    /// Parse and check measure YAML, following each value's newest specification year; `path`
    /// names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Measure> {
        Measure::parse_spec(path, text, Spec::Newest)
    }

    /// Read and check one measure file for one specification year.
    pub fn load_spec(path: &Path, spec: Spec) -> Result<Measure> {
        let bytes = read_definition(path, MAX_MEASURE_BYTES)?;
        let text = utf8(path, bytes)?;
        Measure::parse_spec(path, &text, spec)
    }

    /// As [`Measure::parse`], for one specification year.
    pub fn parse_spec(path: &Path, text: &str, spec: Spec) -> Result<Measure> {
        if text.len() > MAX_MEASURE_BYTES {
            return Err(too_large(path, text.len() as u64, MAX_MEASURE_BYTES));
        }
        let mut raw: RawMeasure = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| yaml_error(path, &e))?;
        let errs = Errs(path);
        let (spec_years, spec_year) = select_years(&errs, &mut raw, spec)?;
        // Every problem the file alone shows, not only the first: each is noted and the check
        // goes on with the rest.
        let mut problems: Vec<Error> = Vec::new();

        let id = Located::from(raw.id);
        if let Err(e) = check_id(&errs, &id, "measure id", "AMB-HH") {
            problems.push(e);
        }
        let basis = Located::from(raw.basis);

        let member_months = match raw.member_months {
            None => MemberMonths {
                rule: MonthRule::CountDay,
                count_day: 15,
            },
            Some(mm) => {
                let count_day = match (mm.rule, mm.count_day.map(Located::from)) {
                    (MonthRule::CountDay, None) => 15,
                    (MonthRule::CountDay, Some(d)) => {
                        if !(1..=28).contains(&d.value) {
                            problems.push(errs.at(
                                &d,
                                format!("count_day {} is not a day every month has", d.value),
                                Some("use a day from 1 to 28"),
                            ));
                        }
                        d.value
                    }
                    (MonthRule::AnyDay, Some(d)) => {
                        problems.push(errs.at(
                            &d,
                            "count_day applies only to `rule: count_day`",
                            Some("remove count_day, or set `rule: count_day`"),
                        ));
                        1
                    }
                    (MonthRule::AnyDay, None) => 1,
                };
                MemberMonths {
                    rule: mm.rule,
                    count_day,
                }
            }
        };

        let events = match (basis.value, raw.events) {
            (Basis::Events, Some(e)) => Some(Events {
                block: e.from.into(),
                id: e.id.into(),
                date: e.date.into(),
                filter: e.filter.map(spec::ByYear::into_located),
                start_offset: e.start_offset,
                end_offset: e.end_offset,
                first_within: e.first_within.map(Located::from).and_then(|f| {
                    let (days, among) = match f.value {
                        RawFirstWithin::Days(d) => (d, Among::All),
                        RawFirstWithin::Stated { days, among } => (days, among),
                    };
                    let days = Located {
                        value: days,
                        line: f.line,
                        column: f.column,
                    };
                    if days.value == 0 {
                        problems.push(errs.at(
                            &days,
                            "`first_within: 0` keeps nothing apart",
                            Some("e.g. `first_within: 31` for one ED visit per 31 days"),
                        ));
                        return None;
                    }
                    Some(FirstWithin { days, among })
                }),
            }),
            (Basis::Events, None) => {
                problems.push(errs.at(
                    &basis,
                    "`basis: events` needs an `events:` section naming the building block",
                    Some("events: {from: acute_discharges, id: stay_id, date: discharge_date}"),
                ));
                None
            }
            (_, Some(_)) => {
                problems.push(errs.at(
                    &basis,
                    format!(
                        "`events:` applies only to `basis: events`, not {}",
                        basis.value.name()
                    ),
                    None,
                ));
                None
            }
            (_, None) => None,
        };

        let (program, on_anchor, continuous) = match raw.enrollment {
            None => (None, None, None),
            Some(e) => {
                let continuous = e
                    .continuous
                    .map(|c| continuous(&errs, Located::from(c), &mut problems));
                (
                    e.program.map(Located::from),
                    e.on_anchor.map(Located::from),
                    continuous.flatten(),
                )
            }
        };
        if let Some(o) = &on_anchor
            && !o.value
            && basis.value != Basis::Events
        {
            problems.push(errs.at(
                o,
                format!(
                    "`on_anchor: false` applies to `basis: events`; a unit of {} is enrolled on its anchor date by what it is",
                    basis.value.name()
                ),
                None,
            ));
        }
        if continuous.is_some() && basis.value == Basis::MemberMonths {
            problems.push(errs.at(
                &basis,
                "continuous enrollment does not apply to member months",
                Some("a member month is itself a month of enrolment"),
            ));
        }

        let mut age_bands: Vec<AgeBand> = Vec::new();
        for band in raw.age_bands {
            let band = Located::from(band);
            let Some(parsed) = parse_band(&band.value) else {
                problems.push(errs.at(
                    &band,
                    format!("age band {:?} is not `MIN-MAX` or `MIN+`", band.value),
                    Some("for example `0-17`, `18-64`, `65+`"),
                ));
                continue;
            };
            if let Some(prev) = age_bands.last() {
                let follows = prev.max.map(|m| m + 1);
                if follows != Some(parsed.min) {
                    problems.push(errs.at(
                        &band,
                        format!(
                            "age band {:?} does not start right after {:?}",
                            band.value, prev.label
                        ),
                        Some("list bands in order, without gaps or overlaps"),
                    ));
                }
            }
            age_bands.push(parsed);
        }
        if age_bands.is_empty() {
            problems.push(errs.at(&id, "a measure needs at least one age band", None));
        }

        let mut stratify = raw.stratify;
        stratify.sort();
        stratify.dedup();

        let mut exclusions: Vec<Exclusion> = Vec::new();
        for mut x in raw.exclusions {
            let Some(name) = x.name.take().map(Located::from) else {
                // At the exclusion's first key that has a place, else the measure's id.
                let place = [&x.exists, &x.count, &x.first, &x.over, &x.date]
                    .into_iter()
                    .flatten()
                    .next()
                    .map_or((id.line, id.column), |s| {
                        let l = Located::from(s.clone());
                        (l.line, l.column)
                    });
                problems.push(errs.at(
                    &at(place),
                    "every exclusion needs a `name:` (it is the reason kept per unit)",
                    None,
                ));
                continue;
            };
            if exclusions.iter().any(|o| o.name.value == name.value) {
                problems.push(errs.at(
                    &name,
                    format!("exclusion `{}` is defined twice", name.value),
                    None,
                ));
            }
            let description = x.description.take();
            let condition = match condition(&errs, &name, x) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if condition.attribute.value != Attribute::Each {
                problems.push(errs.at(
                    &condition.attribute,
                    "`attribute:` applies to numerators: an exclusion removes every unit it finds",
                    None,
                ));
            }
            exclusions.push(Exclusion {
                name,
                description,
                condition,
            });
        }

        let mut components: Vec<Component> = Vec::new();
        // Components whose own definition failed: what names them is not checked again, so a
        // problem is reported once, where it is.
        let mut failed: Vec<String> = Vec::new();
        for c in raw.components {
            let name = Located::from(c.name);
            if components.iter().any(|o| o.name.value == name.value) {
                problems.push(errs.at(
                    &name,
                    format!("component `{}` is defined twice", name.value),
                    None,
                ));
            }
            let kind = match (c.numerator, c.ratio, c.denominator, c.enrollees) {
                (Some(mut n), None, None, None) => {
                    if let Some(extra) = n.name.take().map(Located::from) {
                        problems.push(errs.at(
                            &extra,
                            "a numerator takes its name from the component; remove `name:`",
                            None,
                        ));
                        continue;
                    }
                    match condition(&errs, &name, n) {
                        Ok(c) => ComponentKind::Numerator(Box::new(c)),
                        Err(e) => {
                            problems.push(e);
                            failed.push(name.value);
                            continue;
                        }
                    }
                }
                (None, Some(r), None, None) => ComponentKind::Ratio {
                    numerator: r.numerator.into(),
                    denominator: r.denominator.into(),
                },
                (None, None, Some(_), None) => ComponentKind::Denominator,
                (None, None, None, Some(e)) => ComponentKind::Enrollees {
                    outliers: e.outliers,
                },
                _ => {
                    problems.push(errs.at(
                        &name,
                        format!(
                            "component `{}` needs exactly one of `numerator:`, `ratio:`, `denominator:` or `enrollees:`",
                            name.value
                        ),
                        None,
                    ));
                    failed.push(name.value);
                    continue;
                }
            };
            let shape = match &kind {
                ComponentKind::Ratio { .. } => "ratio",
                ComponentKind::Numerator(cond) if cond.aggregate == Aggregate::First => "first",
                ComponentKind::Numerator(_) => "numerator",
                ComponentKind::Denominator => "denominator",
                ComponentKind::Enrollees { .. } => "enrollees",
            };
            let fits = c.unit != Unit::DollarsPerMemberMonth
                && match shape {
                    "ratio" => !matches!(c.unit, Unit::Count | Unit::MedianDays),
                    "first" => c.unit == Unit::MedianDays,
                    "numerator" => !matches!(c.unit, Unit::Days | Unit::Ratio | Unit::MedianDays),
                    _ => c.unit == Unit::Count,
                };
            if !fits {
                problems.push(errs.at(
                    &name,
                    format!(
                        "component `{}`: unit {} does not fit a {shape} component",
                        name.value,
                        c.unit.name()
                    ),
                    Some("`ratio:` components use days, ratio, percent or a per-1,000 unit; `first:` numerators use median_days; `denominator:` and `enrollees:` use count; other numerators use percent, per_1000_member_months, per_1000_members or count"),
                ));
            }
            let subset = c.subset.map(Located::from);
            if let Some(w) = &subset
                && (basis.value != Basis::Events || shape != "numerator")
            {
                problems.push(errs.at(
                    w,
                    format!(
                        "component `{}`: a `where:` subset applies to numerators of `basis: events`",
                        name.value
                    ),
                    Some("it keeps the events (of the events' block) this component counts"),
                ));
            }
            if let ComponentKind::Enrollees { outliers } = kind {
                if basis.value != Basis::Events {
                    problems.push(errs.at(
                        &name,
                        "`enrollees:` components belong to `basis: events` measures",
                        Some("a members-basis measure counts members in its denominator already"),
                    ));
                }
                if outliers && raw.outliers.is_none() {
                    problems.push(errs.at(
                        &name,
                        "`enrollees: {outliers: true}` needs the measure's `outliers:` rule",
                        Some("e.g. `outliers: {min_units: 4}`"),
                    ));
                }
            }
            let needs = c.needs.map(Located::from);
            if let Some(n) = &needs
                && !OPTIONAL_INPUTS.contains(&n.value.as_str())
            {
                problems.push(errs.at(
                    n,
                    format!("unknown optional input `{}`", n.value),
                    Some(&format!("known inputs: {}", OPTIONAL_INPUTS.join(", "))),
                ));
            }
            components.push(Component {
                name,
                unit: c.unit,
                kind,
                subset,
                needs,
            });
        }
        if components.is_empty() {
            problems.push(errs.at(&id, "a measure needs at least one component", None));
        }
        check_components(
            &errs,
            basis.value,
            &exclusions,
            &components,
            &failed,
            &mut problems,
        );
        let outliers = match raw.outliers {
            None => None,
            Some(o) => {
                let n = Located::from(o.min_units);
                if basis.value != Basis::Events || n.value < 2 {
                    problems.push(errs.at(
                        &n,
                        "`outliers:` applies to `basis: events`, with `min_units` of 2 or more",
                        Some("PCR: `outliers: {min_units: 4}` sets aside members with 4+ index stays"),
                    ));
                }
                Some(n.value)
            }
        };

        if !problems.is_empty() {
            return Err(Error::many(problems));
        }
        Ok(Measure {
            path: path.to_path_buf(),
            id: id.value,
            title: raw.title,
            version: raw.version.into_located().value,
            spec_years,
            spec_year,
            source: raw.source.into_located().value,
            description: raw.description.map(|d| d.into_located().value),
            better: raw.better,
            basis: basis.value,
            member_months,
            events,
            anchor: raw.anchor.unwrap_or(Anchor::PeriodEnd),
            program: program.as_ref().map_or(Program::HealthHome, |p| p.value),
            on_anchor: on_anchor.is_none_or(|o| o.value),
            program_at: at(program
                .as_ref()
                .map_or((basis.line, basis.column), |p| (p.line, p.column))),
            basis_at: at((basis.line, basis.column)),
            continuous,
            age_bands,
            stratify,
            exclusions,
            outliers,
            components,
            reporting: raw.reporting,
        })
    }

    /// The building blocks the measure reads: its enrolment, events, exclusions and numerators.
    pub fn blocks(&self) -> std::collections::BTreeSet<&str> {
        self.blocks_given(|_| true)
    }

    /// Every filter text of the measure: the events', and each exclusion's and numerator's (with
    /// their arms, `suffices:` and component subsets).
    pub fn filter_texts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .events
            .iter()
            .filter_map(|e| e.filter.as_ref().map(|f| f.value.as_str()))
            .collect();
        let conditions = self
            .exclusions
            .iter()
            .map(|x| &x.condition)
            .chain(self.numerators().map(|(_, _, c)| c));
        for c in conditions {
            for a in c.arms() {
                out.extend(a.filter.iter().chain(&a.suffices).map(|f| f.value.as_str()));
            }
        }
        out.extend(
            self.components
                .iter()
                .filter_map(|c| c.subset.as_ref().map(|s| s.value.as_str())),
        );
        out
    }

    /// The building blocks the measure reads when only the optional inputs `supplied` says are
    /// there: a numerator that needs a missing input is not computed, nor are its blocks.
    pub fn blocks_given(
        &self,
        supplied: impl Fn(&str) -> bool,
    ) -> std::collections::BTreeSet<&str> {
        let mut out = std::collections::BTreeSet::from([self.program.block()]);
        out.extend(self.events.iter().map(|e| e.block.value.as_str()));
        let conditions = self.exclusions.iter().map(|x| &x.condition).chain(
            self.numerators()
                .filter(|(_, c, _)| c.needs.as_ref().is_none_or(|n| supplied(&n.value)))
                .map(|(_, _, c)| c),
        );
        for c in conditions {
            out.extend(c.arms().map(|a| a.block.value.as_str()));
        }
        out
    }

    /// The numerator components, with their index among all components.
    pub fn numerators(&self) -> impl Iterator<Item = (usize, &Component, &Condition)> {
        self.components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.kind {
                ComponentKind::Numerator(cond) => Some((i, c, cond.as_ref())),
                _ => None,
            })
    }
}

/// Checks across components: windows where the basis needs them, ratio references, and sibling
/// day-windows (`7_day` inside `30_day`).
fn check_components(
    errs: &Errs,
    basis: Basis,
    exclusions: &[Exclusion],
    components: &[Component],
    failed: &[String],
    problems: &mut Vec<Error>,
) {
    let conditions = exclusions
        .iter()
        .map(|x| (&x.name, &x.condition))
        .chain(components.iter().filter_map(|c| match &c.kind {
            ComponentKind::Numerator(cond) => Some((&c.name, cond.as_ref())),
            _ => None,
        }))
        .flat_map(|(name, cond)| cond.arms().map(move |arm| (name, arm)));
    for (name, cond) in conditions {
        if let Some(a) = &cond.after
            && !failed.contains(&a.value)
        {
            let position = components.iter().position(|c| c.name == *name);
            let target = components.iter().position(|c| {
                c.name.value == a.value && matches!(c.kind, ComponentKind::Numerator(_))
            });
            match (basis, target, position) {
                (Basis::MemberMonths, _, _) => {
                    problems.push(errs.at(a, "`after:` does not apply to member months", None));
                }
                (_, Some(t), Some(p)) if t < p => {}
                _ => {
                    problems.push(errs.at(
                        a,
                        format!(
                            "`after: {}` must name a numerator component listed before `{}`",
                            a.value, name.value
                        ),
                        None,
                    ));
                }
            }
        }
        if cond.attribute.value == Attribute::NearestPreceding && basis != Basis::Events {
            problems.push(errs.at(
                &cond.attribute,
                format!(
                    "`{}`: `attribute: nearest_preceding` applies to `basis: events`",
                    name.value
                ),
                Some("a member's or a member month's rows have one unit to count toward"),
            ));
        }
        if basis == Basis::MemberMonths
            && (cond.by != CountBy::Day || cond.suffices.is_some() || cond.combine == Combine::All)
        {
            problems.push(errs.at(
                &cond.block,
                format!(
                    "`{}`: on member months rows are counted by day in their month; `by:`, `suffices:` and `all_of:` apply to events and members",
                    name.value
                ),
                None,
            ));
        }
        if let Some(o) = &cond.of
            && basis != Basis::Events
        {
            problems.push(errs.at(
                o,
                format!(
                    "`{}`: `of:` names a date of the unit's event; it applies to `basis: events`",
                    name.value
                ),
                None,
            ));
        }
        match (basis, &cond.window) {
            (Basis::MemberMonths, Some(w)) => {
                problems.push(errs.at(
                    w,
                    format!("`{}`: a window of days does not apply to member months", name.value),
                    Some(
                        "rows are counted in the month they fall in; remove `window:`, or write `window: period` for a row anywhere in the period",
                    ),
                ));
            }
            (Basis::Events, None) if cond.key.is_none() && cond.in_period.is_none() => {
                problems.push(errs.at(
                    name,
                    format!(
                        "`{}` needs a `window:` relative to the event date",
                        name.value
                    ),
                    Some("e.g. `window: {from: 1, to: 30}` for the 30 days after a discharge"),
                ));
            }
            _ => {}
        }
    }
    for c in components {
        if let ComponentKind::Ratio {
            numerator,
            denominator,
        } = &c.kind
        {
            for r in [numerator, denominator] {
                if failed.contains(&r.value) {
                    continue;
                }
                let target = components.iter().find(|o| o.name.value == r.value);
                match target.map(|t| &t.kind) {
                    Some(
                        ComponentKind::Numerator(_)
                        | ComponentKind::Denominator
                        | ComponentKind::Enrollees { .. },
                    ) => {}
                    Some(ComponentKind::Ratio { .. }) => {
                        problems.push(errs.at(
                            r,
                            format!(
                                "`{}` is itself a ratio; a ratio divides numerators",
                                r.value
                            ),
                            None,
                        ));
                    }
                    None => {
                        problems.push(errs.at(
                            r,
                            format!("no numerator component `{}` in this measure", r.value),
                            Some(&format!(
                                "components: {}",
                                components
                                    .iter()
                                    .map(|o| o.name.value.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        ));
                    }
                }
            }
        }
    }
    // Sibling windows: a component named `<n>_day` must not look further than `<m>_day` for
    // n < m over the same block, or the 7-day rate could exceed the 30-day rate.
    fn days(c: &Component) -> Option<(u32, &Condition)> {
        let n = c.name.value.strip_suffix("_day")?.parse().ok()?;
        match &c.kind {
            ComponentKind::Numerator(cond) => Some((n, cond)),
            _ => None,
        }
    }
    for a in components {
        for b in components {
            if let (Some((na, ca)), Some((nb, cb))) = (days(a), days(b))
                && na < nb
                && ca.block.value == cb.block.value
                && let (Some(wa), Some(wb)) = (&ca.window, &cb.window)
                && (wa.value.from < wb.value.from || wa.value.to > wb.value.to)
            {
                problems.push(errs.at(
                    wa,
                    format!(
                        "`{}` looks at days {}..{}, outside its sibling `{}` (days {}..{}): its rate could exceed the longer window's",
                        a.name.value, wa.value.from, wa.value.to, b.name.value, wb.value.from, wb.value.to
                    ),
                    Some("the shorter window must lie inside the longer one"),
                ));
            }
        }
    }
}

/// Continuous enrolment: one segment, or `segments:`, each ending no earlier than it starts and
/// after the one before; problems are noted and `None` returned.
fn continuous(
    errs: &Errs,
    raw: Located<RawContinuous>,
    problems: &mut Vec<Error>,
) -> Option<Continuous> {
    let at = Located {
        value: (),
        line: raw.line,
        column: raw.column,
    };
    let raw_at = &at;
    let c = raw.value;
    let single =
        c.from.is_some() || c.to.is_some() || c.max_gaps.is_some() || c.max_gap_days.is_some();
    let raws: Vec<RawSegment> = match (c.segments, single) {
        (Some(list), false) => list,
        (None, true) => match (c.from, c.to) {
            (Some(from), Some(to)) => vec![RawSegment {
                from,
                to,
                max_gaps: c.max_gaps.unwrap_or(0),
                max_gap_days: c.max_gap_days.unwrap_or(0),
            }],
            _ => {
                problems.push(errs.at(
                    raw_at,
                    "continuous enrollment needs `from:` and `to:`, days relative to the anchor",
                    Some("e.g. `continuous: {from: 0, to: 30}`, or `segments:` listing several"),
                ));
                return None;
            }
        },
        (Some(_), true) => {
            problems.push(errs.at(
                raw_at,
                "continuous enrollment is either one segment (`from:`, `to:`, gaps) or `segments:`, not both",
                None,
            ));
            return None;
        }
        (None, false) => {
            problems.push(errs.at(
                raw_at,
                "continuous enrollment needs `from:` and `to:`, or `segments:`",
                None,
            ));
            return None;
        }
    };
    if raws.is_empty() {
        problems.push(errs.at(raw_at, "`segments:` needs at least one segment", None));
        return None;
    }
    let mut segments: Vec<Segment> = Vec::new();
    let before = problems.len();
    for r in raws {
        let (from, to) = (Located::from(r.from), Located::from(r.to));
        if to.value < from.value {
            problems.push(errs.at(
                &to,
                format!(
                    "continuous enrollment ends (day {}) before it starts (day {})",
                    to.value, from.value
                ),
                Some("days are relative to the anchor; e.g. from: -364, to: 0"),
            ));
            continue;
        }
        if let Some(prev) = segments.last()
            && from.value <= prev.window.to
        {
            problems.push(errs.at(
                &from,
                format!(
                    "this segment starts on day {}, within the one before (days {}..{})",
                    from.value, prev.window.from, prev.window.to
                ),
                Some("list segments in order of their days, without overlaps"),
            ));
            continue;
        }
        segments.push(Segment {
            window: Window {
                from: from.value,
                to: to.value,
            },
            max_gaps: r.max_gaps,
            max_gap_days: r.max_gap_days,
        });
    }
    (problems.len() == before).then_some(Continuous { segments })
}

/// A place in a file.
fn at((line, column): (usize, usize)) -> Located<()> {
    Located {
        value: (),
        line,
        column,
    }
}

fn parse_band(s: &str) -> Option<AgeBand> {
    let s = s.trim();
    if let Some(min) = s.strip_suffix('+') {
        let min = min.trim().parse().ok()?;
        return Some(AgeBand {
            label: s.to_string(),
            min,
            max: None,
        });
    }
    let (a, b) = s.split_once('-')?;
    let (min, max): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (min <= max).then(|| AgeBand {
        label: s.to_string(),
        min,
        max: Some(max),
    })
}

/// The largest measure file read: the shipped ones are under 4 KiB, so a larger file is a
/// mistake (or an attack), refused before it is parsed.
pub const MAX_MEASURE_BYTES: usize = 256 * 1024;

/// Limits on what a measure file's YAML may make the parser do. A measure nests about six levels
/// deep and holds a few hundred nodes; these leave ample room and stop alias bombs ("billion
/// laughs") and deep nesting long before they cost memory, time or stack.
pub const YAML_MAX_DEPTH: usize = 32;
pub const YAML_MAX_NODES: usize = 20_000;
pub const YAML_MAX_REPLAYED_ALIAS_EVENTS: usize = 10_000;

pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: YAML_MAX_DEPTH,
            flow_nesting_limit: YAML_MAX_DEPTH,
            max_nodes: YAML_MAX_NODES,
            max_events: 4 * YAML_MAX_NODES,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: YAML_MAX_REPLAYED_ALIAS_EVENTS,
            max_total_scalar_bytes: MAX_MEASURE_BYTES,
            max_documents: 1,
            max_inclusion_depth: 0,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: YAML_MAX_REPLAYED_ALIAS_EVENTS,
            max_replay_stack_depth: YAML_MAX_DEPTH,
        },
        // A tag the parser does not know (`!include`, `!!python/object`, any `!tag`) was
        // silently dropped and the node read as if untagged: an error at its place instead.
        reject_unsupported_tags: true,
    }
}

/// Read a definition file of at most `max` bytes; a larger one is refused unread.
pub(crate) fn read_definition(path: &Path, max: usize) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > max as u64 {
        return Err(too_large(path, len, max));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn too_large(path: &Path, len: u64, max: usize) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message: format!(
            "the file is {len} bytes; a definition file of this kind may be at most {max} bytes"
        ),
        hint: Some(
            "is it the right file? split a long list or definition into smaller files".into(),
        ),
    }
}

/// Definition files are UTF-8 text; bytes that are not are reported at their line and column.
pub(crate) fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..good]);
        let line = text.matches('\n').count() + 1;
        let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error::Definition {
            path: path.to_path_buf(),
            line,
            column,
            message: format!(
                "the file is not UTF-8 text: byte 0x{:02X} cannot start a character here",
                e.as_bytes()[good]
            ),
            hint: Some(
                "save the file as UTF-8 (Latin-1 or Windows-1252 files need converting)".into(),
            ),
        }
    })
}

/// A YAML or shape error of a file that is not a measure (a deck, a rule file): located, the
/// library's first line as the message, no hint about a measure's keys.
pub(crate) fn plain_yaml_error(path: &Path, e: &serde_saphyr::Error) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line: e.location().map_or(1, |l| l.line() as usize),
        column: e.location().map_or(1, |l| l.column() as usize),
        message: e
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string(),
        hint: None,
    }
}

/// Turn a YAML or shape error into a located definition error.
pub(crate) fn yaml_error(path: &Path, e: &serde_saphyr::Error) -> Error {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let full = e.to_string();
    // The library's message may carry its own location suffix and snippet; keep the first line.
    let first = full.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_string();
    let (message, hint) = match yaml_limit(e, &message) {
        Some((message, hint)) => (message, Some(hint)),
        None => {
            let hint = did_you_mean(&message).or_else(|| {
                message
                    .contains("unknown field")
                    .then(|| "see docs/measure-language.md for the keys of a measure".to_string())
            });
            (message, hint)
        }
    };
    Error::Definition {
        path: path.to_path_buf(),
        line,
        column,
        message,
        hint,
    }
}

/// The parser's own words for a broken limit, a repeated key or a tab name its options; say
/// instead what is wrong with the file and what to do.
fn yaml_limit(e: &serde_saphyr::Error, message: &str) -> Option<(String, String)> {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let aliases = || {
        (
            format!(
                "aliases (`*name`) expand to more than {YAML_MAX_REPLAYED_ALIAS_EVENTS} YAML nodes"
            ),
            "a measure needs few aliases, if any: write the conditions out".to_string(),
        )
    };
    let deep = || {
        (
            format!("the YAML nests deeper than {YAML_MAX_DEPTH} levels"),
            "a measure nests about six levels; look for an unclosed `[` or `{`".to_string(),
        )
    };
    let mut e = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = e {
        e = error;
    }
    Some(match e {
        E::Budget { breach, .. } => match breach {
            B::Depth { .. } => deep(),
            B::Documents { .. } => (
                "more than one YAML document (`---`)".into(),
                "a measure file holds one measure; put the next one in a file of its own".into(),
            ),
            B::Nodes { .. } | B::Events { .. } => (
                format!("more than {YAML_MAX_NODES} YAML nodes"),
                "a measure holds a few hundred; is it the right file?".into(),
            ),
            B::ScalarBytes { .. } => (
                format!("more than {MAX_MEASURE_BYTES} bytes of text"),
                "is it the right file?".into(),
            ),
            B::Aliases { .. }
            | B::Anchors { .. }
            | B::AliasAnchorRatio { .. }
            | B::RecordedAnchorEvents { .. }
            | B::RecordedAnchorBytes { .. } => aliases(),
            other => (
                format!("the YAML goes beyond a parsing limit ({other:?})"),
                "a measure file is small, plain YAML; is it the right file?".into(),
            ),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => aliases(),
        E::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("the key `{k}` appears twice in one mapping"),
                None => "a key appears twice in one mapping".into(),
            },
            "keep one of them: YAML does not merge repeated keys".into(),
        ),
        E::UnsupportedTag { tag, .. } => (
            format!("the YAML tag `{tag}` is not supported"),
            "hhq reads plain YAML: remove the tag (no file is included, no object is made)".into(),
        ),
        _ if message.contains("recursion limit exceeded") => deep(),
        _ if message.contains(" tab") => (
            message.to_string(),
            "indent YAML with spaces, not tabs".into(),
        ),
        _ => return None,
    })
}

/// For serde's "unknown field `x`, expected one of a, b" (or variant), the closest name.
fn did_you_mean(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (wrong, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected one of ")?;
    let names: Vec<&str> = expected
        .split(", ")
        .map(|n| n.trim_matches(|c| c == '`' || c == ' '))
        .collect();
    names
        .iter()
        .map(|n| (strsim::levenshtein(wrong, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| format!("did you mean `{n}`?"))
}

/// The measure files of a directory (`*.yaml`, `*.yml`), in file-name order; a file an
/// [`crate::library::overlay`] links to by the path it was written at.
pub fn paths_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths.into_iter().map(crate::library::resolved).collect())
}

/// An error if `m`'s id is already used by one of `earlier`.
pub fn duplicate_id(m: &Measure, earlier: &[Measure]) -> Option<Error> {
    earlier
        .iter()
        .find(|o| o.id == m.id)
        .map(|other| Error::Definition {
            path: m.path.clone(),
            line: 1,
            column: 1,
            message: format!(
                "measure id `{}` is also defined in {}",
                m.id,
                other.path.display()
            ),
            hint: Some(if other.path.starts_with(crate::library::cache_root()) {
                // `library = "extend"`: a file replaces the built-in one of its name.
                format!(
                    "each measure needs its own id; to replace the built-in measure, name \
                         your file {}",
                    other.path.file_name().unwrap_or_default().to_string_lossy()
                )
            } else {
                "each measure needs its own id".into()
            }),
        })
}

/// Load every measure of a directory, in file-name order; the first problem is an error.
pub fn load_dir(dir: &Path) -> Result<Vec<Measure>> {
    load_dir_spec(dir, Spec::Newest)
}

/// As [`load_dir`], each measure for one specification year.
pub fn load_dir_spec(dir: &Path, spec: Spec) -> Result<Vec<Measure>> {
    let mut measures: Vec<Measure> = Vec::new();
    for p in paths_in(dir)? {
        let m = Measure::load_spec(&p, spec)?;
        if let Some(e) = duplicate_id(&m, &measures) {
            return Err(e);
        }
        measures.push(m);
    }
    Ok(measures)
}

/// Keep, in every value stated per specification year, the text `spec` selects; the years the
/// file names and the year the definition then follows.
fn select_years(errs: &Errs, raw: &mut RawMeasure, spec: Spec) -> Result<(Vec<u16>, Option<u16>)> {
    let mut values: Vec<&mut spec::ByYear> = vec![&mut raw.version, &mut raw.source];
    if let Some(d) = raw.description.as_mut() {
        values.push(d);
    }
    if let Some(f) = raw.events.as_mut().and_then(|e| e.filter.as_mut()) {
        values.push(f);
    }
    fn walk<'a>(c: &'a mut RawCondition, out: &mut Vec<&'a mut spec::ByYear>) {
        if let Some(f) = c.filter.as_mut() {
            out.push(f);
        }
        for arms in [c.any_of.as_mut(), c.all_of.as_mut()].into_iter().flatten() {
            for arm in arms.value.iter_mut() {
                walk(arm, out);
            }
        }
    }
    for c in raw.exclusions.iter_mut() {
        walk(c, &mut values);
    }
    for c in raw
        .components
        .iter_mut()
        .filter_map(|c| c.numerator.as_mut())
    {
        walk(c, &mut values);
    }
    let mut years: Vec<u16> = values.iter().flat_map(|v| v.years()).collect();
    years.sort_unstable();
    years.dedup();
    let mut problems = Vec::new();
    for v in values {
        if let Err(first) = v.select(spec) {
            let at = Located {
                value: (),
                line: v.line,
                column: v.column,
            };
            problems.push(errs.at(
                &at,
                format!("no text for {spec} here: the first year stated is {first}"),
                Some("run an earlier year's measures with --spec, or add the year's text"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::many(problems));
    }
    let year = match spec {
        Spec::Year(y) => Some(y),
        Spec::Newest => years.last().copied(),
    };
    Ok((years, year))
}
