//! Results: the contract's long-format result table (`summary.csv`, `summary.parquet`), built from
//! a compiled measure's query output and written byte-for-byte reproducibly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use crate::compile::{CompiledMeasure, Output, Source};
use crate::error::{Error, Result};
use crate::measure::{Stratifier, Unit};
use crate::output::write_atomic;

/// One row of the result table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub measure: String,
    pub component: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub stratifier: Grouping,
    pub stratum: String,
    pub numerator: f64,
    /// A count, except for ratio components (e.g. expected readmissions).
    pub denominator: f64,
    /// `None` when the denominator is zero.
    pub rate: Option<f64>,
    pub unit: Unit,
    /// How the units are spread over members, when the numerator and denominator are sums over
    /// the detail's units: intervals account for a member's repeated units with it. Not part of
    /// the published table.
    pub spread: Option<Spread>,
}

/// The members behind a row and the second moments of their per-member sums: `xx` of the
/// denominator's, `xy` of the numerator's times the denominator's, `yy` of the numerator's.
/// Enough for the variance of the ratio estimator numerator / denominator with members as
/// clusters ([`crate::report`]'s intervals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub members: f64,
    pub xx: f64,
    pub xy: f64,
    pub yy: f64,
}

/// What a result row counts over: every unit (`total`), or one stratum of a stratifier. Its
/// text form ([`Grouping::name`], `Display`, `FromStr`) is the result table's `stratifier`
/// column: `total`, `age_band`, `mco`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Total,
    By(Stratifier),
}

impl Grouping {
    pub fn name(self) -> &'static str {
        match self {
            Grouping::Total => "total",
            Grouping::By(s) => s.name(),
        }
    }

    /// Place in outputs: the total first, then as a report reads them (age band, MCO, partner,
    /// population), then the rest, which [`Ord`] puts in name order.
    pub fn rank(self) -> usize {
        match self {
            Grouping::Total => 0,
            Grouping::By(Stratifier::AgeBand) => 1,
            Grouping::By(Stratifier::Mco) => 2,
            Grouping::By(Stratifier::Hhp) => 3,
            Grouping::By(Stratifier::Population) => 4,
            Grouping::By(_) => 5,
        }
    }
}

/// The order of outputs: by [`Grouping::rank`], then by name (the stratifiers that share a
/// rank sort as their text does).
impl Ord for Grouping {
    fn cmp(&self, other: &Grouping) -> std::cmp::Ordering {
        (self.rank(), self.name()).cmp(&(other.rank(), other.name()))
    }
}

impl PartialOrd for Grouping {
    fn partial_cmp(&self, other: &Grouping) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Grouping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Grouping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Grouping> {
        if s == Grouping::Total.name() {
            return Ok(Grouping::Total);
        }
        Stratifier::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .map(Grouping::By)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "`{s}` is not a stratifier (total, {})",
                    Stratifier::ALL.map(Stratifier::name).join(", ")
                ))
            })
    }
}

/// Read from its text form (`summary.csv`, a deck's `stratifier:`).
impl<'de> serde::Deserialize<'de> for Grouping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Grouping, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Result rows as JSON for the run cache, every number as its exact bits: read back by
/// [`rows_from_json`] as they were, so a run served from the cache writes the same bytes.
pub fn rows_to_json(rows: &[ResultRow]) -> String {
    use serde_json::json;
    let bits = |x: f64| json!(x.to_bits());
    let out: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!([
                r.measure,
                r.component,
                r.period_start.to_string(),
                r.period_end.to_string(),
                r.stratifier.name(),
                r.stratum,
                bits(r.numerator),
                bits(r.denominator),
                r.rate.map(bits),
                r.unit.name(),
                r.spread
                    .map(|s| json!([bits(s.members), bits(s.xx), bits(s.xy), bits(s.yy)])),
            ])
        })
        .collect();
    serde_json::Value::Array(out).to_string()
}

/// The rows [`rows_to_json`] wrote.
pub fn rows_from_json(text: &str) -> Result<Vec<ResultRow>> {
    use serde_json::Value;
    let bad = || Error::Failed("a cached result table is not as hhq writes it".into());
    let rows: Vec<Vec<Value>> = serde_json::from_str(text).map_err(|_| bad())?;
    let num = |v: &Value| v.as_u64().map(f64::from_bits).ok_or_else(bad);
    let text = |v: &Value| v.as_str().map(str::to_string).ok_or_else(bad);
    let date = |v: &Value| -> Result<NaiveDate> {
        v.as_str().and_then(|d| d.parse().ok()).ok_or_else(bad)
    };
    rows.iter()
        .map(|r| {
            let [
                measure,
                component,
                start,
                end,
                grouping,
                stratum,
                n,
                d,
                rate,
                unit,
                spread,
            ] = r.as_slice()
            else {
                return Err(bad());
            };
            let unit_name = text(unit)?;
            let unit = Unit::ALL
                .into_iter()
                .find(|u| u.name() == unit_name)
                .ok_or_else(bad)?;
            let spread = match spread {
                Value::Null => None,
                Value::Array(s) if s.len() == 4 => Some(Spread {
                    members: num(&s[0])?,
                    xx: num(&s[1])?,
                    xy: num(&s[2])?,
                    yy: num(&s[3])?,
                }),
                _ => return Err(bad()),
            };
            Ok(ResultRow {
                measure: text(measure)?,
                component: text(component)?,
                period_start: date(start)?,
                period_end: date(end)?,
                stratifier: text(grouping)?.parse()?,
                stratum: text(stratum)?,
                numerator: num(n)?,
                denominator: num(d)?,
                rate: match rate {
                    Value::Null => None,
                    v => Some(num(v)?),
                },
                unit,
                spread,
            })
        })
        .collect()
}

/// What the summary and population queries give for one stratum.
#[derive(Default)]
struct Stratum {
    denominator: f64,
    numerators: Vec<f64>,
    subset_denominators: Vec<f64>,
    medians: Vec<Option<f64>>,
    enrollees: f64,
    outliers: f64,
    clusters: Option<f64>,
    /// Moment column → value (`m_denominator_num_0`).
    moments: BTreeMap<String, f64>,
}

/// Turn a compiled measure's summary (stratifier, stratum, denominator, num_0..) and, when it
/// counts enrollees, its population query's output into rows, one per component and stratum;
/// every declared age band appears, with zeros when empty.
pub fn from_batches(
    compiled: &CompiledMeasure,
    batches: &[RecordBatch],
    population: &[RecordBatch],
) -> Result<Vec<ResultRow>> {
    let n = compiled.numerators;
    let mut strata: BTreeMap<(Grouping, String), Stratum> = BTreeMap::new();
    let blank = || Stratum {
        numerators: vec![0.0; n],
        subset_denominators: vec![0.0; n],
        medians: vec![None; n],
        ..Stratum::default()
    };
    let read = |batch: &RecordBatch, name: &str| -> Result<Vec<Option<f64>>> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Usage(format!("{}: query result lacks `{name}`", compiled.id)))?;
        let col = datafusion::arrow::compute::cast(col, &DataType::Float64)?;
        let col = col.as_primitive::<Float64Type>();
        Ok((0..col.len())
            .map(|r| (!col.is_null(r)).then(|| col.value(r)))
            .collect())
    };
    let keys = |batch: &RecordBatch| -> Result<Vec<(Grouping, String)>> {
        let get = |name: &str| -> Result<ArrayRef> {
            let col = batch.column_by_name(name).ok_or_else(|| {
                Error::Usage(format!("{}: query result lacks `{name}`", compiled.id))
            })?;
            Ok(datafusion::arrow::compute::cast(col, &DataType::Utf8)?)
        };
        let (a, b) = (get("stratifier")?, get("stratum")?);
        let (a, b) = (a.as_string::<i32>(), b.as_string::<i32>());
        (0..batch.num_rows())
            .map(|r| {
                let grouping = a
                    .value(r)
                    .parse()
                    .map_err(|e| Error::Usage(format!("{}: query result: {e}", compiled.id)))?;
                Ok((grouping, b.value(r).to_string()))
            })
            .collect()
    };
    for batch in batches {
        let keys = keys(batch)?;
        let denominator = read(batch, "denominator")?;
        for i in 0..n {
            let nums = read(batch, &format!("num_{i}"))?;
            let dens = compiled.numerator_subset[i]
                .then(|| read(batch, &format!("den_{i}")))
                .transpose()?;
            let medians = compiled.numerator_is_first[i]
                .then(|| read(batch, &format!("median_{i}")))
                .transpose()?;
            for (r, key) in keys.iter().enumerate() {
                let s = strata.entry(key.clone()).or_insert_with(blank);
                s.numerators[i] = nums[r].unwrap_or(0.0);
                if let Some(d) = &dens {
                    s.subset_denominators[i] = d[r].unwrap_or(0.0);
                }
                if let Some(m) = &medians {
                    s.medians[i] = m[r];
                }
            }
        }
        for (r, key) in keys.iter().enumerate() {
            strata.entry(key.clone()).or_insert_with(blank).denominator =
                denominator[r].unwrap_or(0.0);
        }
        // The cell summary's member moments, when it has them.
        if batch.column_by_name("clusters").is_some() {
            let clusters = read(batch, "clusters")?;
            let moments = compiled
                .moments()
                .into_iter()
                .map(|(a, b)| {
                    let name = Source::moment(a, b);
                    read(batch, &name).map(|v| (name, v))
                })
                .collect::<Result<Vec<_>>>()?;
            for (r, key) in keys.iter().enumerate() {
                let s = strata.entry(key.clone()).or_insert_with(blank);
                s.clusters = Some(clusters[r].unwrap_or(0.0));
                for (name, v) in &moments {
                    s.moments.insert(name.clone(), v[r].unwrap_or(0.0));
                }
            }
        }
    }
    for batch in population {
        let keys = keys(batch)?;
        let (enrollees, outliers) = (read(batch, "enrollees")?, read(batch, "outliers")?);
        for (r, key) in keys.iter().enumerate() {
            let s = strata.entry(key.clone()).or_insert_with(blank);
            s.enrollees = enrollees[r].unwrap_or(0.0);
            s.outliers = outliers[r].unwrap_or(0.0);
        }
    }
    // Every declared age band is reported; without any unit there is still a total.
    if compiled.stratify.contains(&Stratifier::AgeBand) {
        for band in &compiled.age_bands {
            strata
                .entry((Grouping::By(Stratifier::AgeBand), band.clone()))
                .or_insert_with(blank);
        }
    }
    strata
        .entry((Grouping::Total, "total".to_string()))
        .or_insert_with(blank);

    let mut rows = Vec::new();
    for ((stratifier, stratum), s) in &strata {
        let value = |src: Source| match src {
            Source::Numerator(i) => s.numerators[i],
            Source::SubsetDenominator(i) => s.subset_denominators[i],
            Source::Denominator => s.denominator,
            Source::Enrollees => s.enrollees,
            Source::Outliers => s.outliers,
        };
        let spread = |numerator: Source, denominator: Source| -> Option<Spread> {
            let m = |a: Source, b: Source| s.moments.get(&Source::moment(a, b)).copied();
            Some(Spread {
                members: s.clusters?,
                xx: m(denominator, denominator)?,
                xy: m(numerator, denominator)?,
                yy: m(numerator, numerator)?,
            })
        };
        for (name, unit, output) in &compiled.components {
            let result = match *output {
                Output::Rate {
                    numerator,
                    denominator,
                } => ResultRow {
                    spread: spread(numerator, denominator),
                    ..row(
                        compiled,
                        name,
                        *unit,
                        *stratifier,
                        stratum,
                        value(numerator),
                        value(denominator),
                    )
                },
                Output::Median(i) => {
                    // The rate is the median days among the units that have a first row.
                    let mut r = row(
                        compiled,
                        name,
                        *unit,
                        *stratifier,
                        stratum,
                        s.numerators[i],
                        s.denominator,
                    );
                    r.rate = s.medians[i];
                    r
                }
            };
            rows.push(result);
        }
    }
    let components: Vec<String> = compiled.components.iter().map(|c| c.0.clone()).collect();
    sort(&mut rows, &components, &compiled.age_bands);
    Ok(rows)
}

fn row(
    compiled: &CompiledMeasure,
    component: &str,
    unit: Unit,
    stratifier: Grouping,
    stratum: &str,
    numerator: f64,
    denominator: f64,
) -> ResultRow {
    ResultRow {
        measure: compiled.id.clone(),
        component: component.to_string(),
        period_start: compiled.period.start,
        period_end: compiled.period.end,
        stratifier,
        stratum: stratum.to_string(),
        numerator,
        denominator,
        // A count is its numerator (index stays, enrollees, expected readmissions).
        rate: if unit == Unit::Count {
            Some(numerator)
        } else {
            (denominator > 0.0).then(|| numerator / denominator * unit.scale())
        },
        unit,
        spread: None,
    }
}

/// Sort one measure's rows by component (in the measure's order, so `7_day` precedes `30_day`),
/// period, stratifier (total first), then stratum (age bands in their declared order, `unknown`
/// last, other strata alphabetically).
pub fn sort(rows: &mut [ResultRow], components: &[String], age_bands: &[String]) {
    let band_rank = |s: &str| age_bands.iter().position(|b| b == s).unwrap_or(usize::MAX);
    let component_rank = |s: &str| components.iter().position(|c| c == s).unwrap_or(usize::MAX);
    rows.sort_by(|a, b| {
        a.measure
            .cmp(&b.measure)
            .then(component_rank(&a.component).cmp(&component_rank(&b.component)))
            .then(a.component.cmp(&b.component))
            .then((a.period_start, a.period_end).cmp(&(b.period_start, b.period_end)))
            .then(a.stratifier.cmp(&b.stratifier))
            .then_with(|| {
                if a.stratifier == Grouping::By(Stratifier::AgeBand) {
                    band_rank(&a.stratum).cmp(&band_rank(&b.stratum))
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(a.stratum.cmp(&b.stratum))
    });
}

const HEADER: &str =
    "measure,component,period_start,period_end,stratifier,stratum,numerator,denominator,rate,unit";

/// A text CSV field: after a `'` when a spreadsheet would read it as a formula
/// ([`crate::escape::csv_text`]), quoted when it holds a comma, quote or line break.
pub(crate) fn csv_field(s: &str) -> String {
    let s = crate::escape::csv_text(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// The result table as CSV: rates unrounded (shortest exact form), an empty rate when the
/// denominator is zero.
pub fn to_csv(rows: &[ResultRow]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.measure),
            csv_field(&r.component),
            r.period_start,
            r.period_end,
            csv_field(r.stratifier.name()),
            csv_field(&r.stratum),
            r.numerator,
            r.denominator,
            r.rate.map(|x| x.to_string()).unwrap_or_default(),
            csv_field(r.unit.name())
        ));
    }
    out
}

/// The Arrow schema of the result table.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("measure", DataType::Utf8, false),
        Field::new("component", DataType::Utf8, false),
        Field::new("period_start", DataType::Date32, false),
        Field::new("period_end", DataType::Date32, false),
        Field::new("stratifier", DataType::Utf8, false),
        Field::new("stratum", DataType::Utf8, false),
        Field::new("numerator", DataType::Float64, false),
        Field::new("denominator", DataType::Float64, false),
        Field::new("rate", DataType::Float64, true),
        Field::new("unit", DataType::Utf8, false),
    ]))
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

fn writer_properties_builder() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("hhq {}", env!("CARGO_PKG_VERSION")))
}

/// Batches as Parquet bytes, with fixed writer properties so the bytes are reproducible.
pub fn batches_to_parquet(schema: SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut writer = parquet_writer(&mut buf, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(buf)
}

/// A Parquet writer with hhq's fixed properties, so the same rows give the same bytes.
pub fn parquet_writer<W: std::io::Write + Send>(
    out: W,
    schema: SchemaRef,
) -> Result<ArrowWriter<W>> {
    Ok(ArrowWriter::try_new(
        out,
        schema,
        Some(writer_properties()),
    )?)
}

/// The member-level detail's Parquet writer: hhq's fixed properties, with row groups of at most
/// [`DETAIL_ROW_GROUP_ROWS`] rows (a run encodes every measure's detail at once, each holding
/// its open row group's pages in memory: a million rows each was half a gigabyte at a state's
/// scale), and no dictionary for the ids that are nearly unique per row (`unit_id`, and
/// `member_id`, a dozen rows each in a member-month detail): their dictionaries only cost the
/// hashing of every value, and sorted by member they compress as well without.
pub fn detail_writer<W: std::io::Write + Send>(
    out: W,
    schema: SchemaRef,
) -> Result<ArrowWriter<W>> {
    let mut props =
        writer_properties_builder().set_max_row_group_row_count(Some(DETAIL_ROW_GROUP_ROWS));
    for id in ["unit_id", "member_id"] {
        if schema.field_with_name(id).is_ok() {
            props = props.set_column_dictionary_enabled(id.into(), false);
        }
    }
    Ok(ArrowWriter::try_new(out, schema, Some(props.build()))?)
}

/// Rows per row group of a detail file (DuckDB's default is 122,880).
pub const DETAIL_ROW_GROUP_ROWS: usize = 128 * 1024;

/// Batches as CSV bytes with a header (dates ISO, nulls empty, text a spreadsheet would run
/// quoted: `crate::detail::csv`).
pub fn batches_to_csv(schema: SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    crate::detail::csv::header(&RecordBatch::new_empty(schema), &mut buf);
    for b in batches {
        crate::detail::csv::rows(b, &mut buf)?;
    }
    Ok(buf)
}

/// The result table as Parquet bytes, with fixed writer properties so the bytes are reproducible.
pub fn to_parquet(rows: &[ResultRow]) -> Result<Vec<u8>> {
    let strings = |f: fn(&ResultRow) -> &str| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as Arc<dyn Array>
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            strings(|r| &r.measure),
            strings(|r| &r.component),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| days(r.period_start)),
            )),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| days(r.period_end)),
            )),
            strings(|r| r.stratifier.name()),
            strings(|r| &r.stratum),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.numerator),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.denominator),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.rate))),
            strings(|r| r.unit.name()),
        ],
    )?;
    batches_to_parquet(batch.schema(), &[batch])
}

/// Write `summary.csv` and `summary.parquet` into `dir`, each atomically. Both are rendered
/// before either is written, so a failure leaves the previous pair in place.
pub fn write(dir: &Path, rows: &[ResultRow]) -> Result<()> {
    let csv = to_csv(rows);
    let parquet = to_parquet(rows)?;
    write_atomic(&dir.join("summary.csv"), csv.as_bytes())?;
    write_atomic(&dir.join("summary.parquet"), &parquet)?;
    Ok(())
}

/// Batches as text: column names and each row's values cast to strings (`None` for null), for
/// reading detail rows in explanations and test decks.
pub fn text_rows(batches: &[RecordBatch]) -> Result<TextRows> {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for batch in batches {
        if columns.is_empty() {
            columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        let text = batch
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                text.iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        (!s.is_null(r)).then(|| s.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok((columns, rows))
}

/// Column names and rows of text values.
pub type TextRows = (Vec<String>, Vec<Vec<Option<String>>>);

/// A percent row of FUH-HH for 2025, for unit tests of what reads result rows.
#[cfg(test)]
pub(crate) fn test_row(
    component: &str,
    stratifier: Grouping,
    stratum: &str,
    numerator: f64,
    denominator: f64,
) -> ResultRow {
    ResultRow {
        measure: "FUH-HH".into(),
        component: component.into(),
        period_start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
        period_end: NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
        stratifier,
        stratum: stratum.into(),
        numerator,
        denominator,
        rate: (denominator > 0.0).then(|| numerator / denominator * 100.0),
        unit: Unit::Percent,
        spread: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grouping_reads_back_from_its_name() {
        let all: Vec<Grouping> = std::iter::once(Grouping::Total)
            .chain(Stratifier::ALL.map(Grouping::By))
            .collect();
        for g in &all {
            assert_eq!(g.name().parse::<Grouping>().unwrap(), *g);
            assert_eq!(g.to_string(), g.name());
        }
        assert_eq!(Grouping::Total.name(), "total");
        assert_eq!(Grouping::By(Stratifier::AgeBand).name(), "age_band");
        assert!("Total".parse::<Grouping>().is_err());
        assert!("s0".parse::<Grouping>().is_err());
    }

    #[test]
    fn groupings_sort_total_first_then_as_a_report_reads_them() {
        let mut all: Vec<Grouping> = Stratifier::ALL
            .into_iter()
            .rev()
            .map(Grouping::By)
            .chain([Grouping::Total])
            .collect();
        all.sort();
        let names: Vec<&str> = all.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                "total",
                "age_band",
                "mco",
                "hhp",
                "population",
                "county",
                "ethnicity",
                "month",
                "quarter",
                "race",
                "rural",
                "sex"
            ]
        );
    }
}
