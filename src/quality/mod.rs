//! Data quality: profile the extracts before any measure runs, and decide whether a run may
//! publish. It owns the check catalogue ([`checks`]: completeness, conformance, plausibility),
//! the policy that sets each check's severity and threshold and what a failed check does
//! (`measures/quality/policy.yaml`), the profile of one data directory, and the gate `hhq run`
//! and `hhq report` pass through.
//!
//! ```text
//! extracts (usable rows + every row) ──▶ profile (one result per check, rows set aside by reason)
//!                                           └─▶ gate: publish │ publish with a caveat │ refuse
//! ```
//!
//! Counts are of rows, never of members' health; example keys (claim, contact or member ids)
//! are written to the data-quality report for the data steward, never to the terminal.

pub mod checks;
mod duplicates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use checks::{Category, CheckDef, Severity, Source, catalogue};

use crate::error::{Error, Result};
use crate::extract::OpenedExtract;
use crate::extract::contract::EXTRACTS;

/// The data-quality inputs of a command: the policy file and the as-of date.
#[derive(Debug, Clone, Default)]
pub struct QualityOptions {
    /// `None`: `<measures>/quality/policy.yaml` when it exists, else the built-in defaults.
    pub policy: Option<PathBuf>,
    /// `None`: today (UTC). Dates after it count as future.
    pub as_of: Option<NaiveDate>,
    /// The days the extracts are known to cover, where the data holder states them (their
    /// extraction's span): `None`, the claims' first day and the data's last day.
    pub data_from: Option<NaiveDate>,
    pub data_through: Option<NaiveDate>,
}

impl QualityOptions {
    pub fn as_of_or_today(&self) -> NaiveDate {
        self.as_of
            .unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}

/// What a failed `error` check does to a run that would publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Publish nothing; the command fails (exit code 3).
    #[default]
    Refuse,
    /// Publish, with a caveat naming the failed checks on every output that has a front page.
    Caveat,
}

/// Severities and thresholds, the catalogue's defaults with the policy file's overrides.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub on_failure: OnFailure,
    /// What a period the claims do not cover to its end does: refused, or measured to the
    /// data's last day with a caveat (year to date).
    pub partial_period: OnFailure,
    /// The file the policy came from, if any (the manifest hashes it).
    pub path: Option<PathBuf>,
    overrides: BTreeMap<String, (Option<Severity>, Option<f64>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    on_failure: Option<OnFailure>,
    #[serde(default)]
    partial_period: Option<OnFailure>,
    #[serde(default)]
    checks: BTreeMap<String, Spanned<RawOverride>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    max_percent: Option<f64>,
}

impl Policy {
    /// What the policy says, not where it was read from (a library copied elsewhere says the
    /// same): the run cache's key of a profile under it.
    pub fn content(&self) -> String {
        format!(
            "{:?} {:?} {:?}",
            self.on_failure, self.partial_period, self.overrides
        )
    }

    /// The policy file beside the measures (`<measures>/quality/policy.yaml`), when it exists.
    pub fn default_path(measures_dir: &Path) -> PathBuf {
        crate::library::resolved(measures_dir.join("quality").join("policy.yaml"))
    }

    /// Load `path` if given, else the default file if present, else the built-in defaults.
    pub fn resolve(path: Option<&Path>, measures_dir: &Path) -> Result<Policy> {
        match path {
            Some(p) => Policy::load(p),
            None => {
                let p = Policy::default_path(measures_dir);
                if p.is_file() {
                    Policy::load(&p)
                } else {
                    Ok(Policy::default())
                }
            }
        }
    }

    /// Read a policy file; an unknown check, a bad severity or a threshold outside 0–100% is an
    /// error at its line and column.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Policy::parse(path, &text)
    }

    /// Parse policy YAML; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Policy> {
        let raw: RawPolicy = if text.trim().is_empty() {
            RawPolicy {
                on_failure: None,
                partial_period: None,
                checks: BTreeMap::new(),
            }
        } else {
            serde_saphyr::from_str_with_options(text, crate::measure::yaml_options())
                .map_err(|e| crate::measure::yaml_error(path, &e))?
        };
        let known: Vec<String> = catalogue().into_iter().map(|c| c.id).collect();
        let mut overrides = BTreeMap::new();
        for (id, o) in raw.checks {
            let at = |message: String, hint: Option<String>| Error::Definition {
                path: path.to_path_buf(),
                line: o.referenced.line() as usize,
                column: o.referenced.column() as usize,
                message,
                hint,
            };
            if !known.contains(&id) {
                let near = known
                    .iter()
                    .map(|k| (strsim::levenshtein(&id, k), k))
                    .min()
                    .filter(|(d, _)| *d <= 4)
                    .map(|(_, k)| format!("did you mean `{k}`? `hhq validate` lists every check"));
                return Err(at(
                    format!("no data-quality check `{id}`"),
                    near.or_else(|| Some("`hhq validate` lists every check".into())),
                ));
            }
            if let Some(p) = o.value.max_percent
                && !(0.0..=100.0).contains(&p)
            {
                return Err(at(
                    format!("`max_percent` {p} is not between 0 and 100"),
                    Some("the largest share of rows, in percent, that may fail the check".into()),
                ));
            }
            overrides.insert(
                id,
                (o.value.severity, o.value.max_percent.map(|p| p / 100.0)),
            );
        }
        Ok(Policy {
            on_failure: raw.on_failure.unwrap_or_default(),
            partial_period: raw.partial_period.unwrap_or_default(),
            path: Some(path.to_path_buf()),
            overrides,
        })
    }

    /// A check's severity and threshold under this policy.
    fn apply(&self, def: &CheckDef) -> (Severity, f64) {
        let (s, m) = self.overrides.get(&def.id).copied().unwrap_or((None, None));
        (s.unwrap_or(def.severity), m.unwrap_or(def.max_share))
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub id: String,
    pub extract: &'static str,
    pub category: Category,
    pub severity: Severity,
    /// Largest share of rows (0–1) that may fail.
    pub max_share: f64,
    pub what: String,
    /// Rows looked at: every row read for rules that set rows aside, the usable rows otherwise.
    pub rows: u64,
    pub failing: u64,
    /// Up to three keys of failing rows (or file and row), in a stable order.
    pub examples: Vec<String>,
    /// Whether failing rows are set aside (not read by any measure).
    pub sets_aside: bool,
}

/// Pass, or how a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// An `error` check over its threshold: gates publishing.
    Fail,
    /// A `warning` check over its threshold: reported only.
    Warn,
    /// An `info` check: profiled, never failed.
    Info,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

impl CheckResult {
    /// Share of rows failing (0 when there are no rows).
    pub fn share(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.failing as f64 / self.rows as f64
        }
    }

    pub fn status(&self) -> Status {
        let over = self.failing > 0 && self.share() > self.max_share;
        match (self.severity, over) {
            (Severity::Info, _) => Status::Info,
            (_, false) => Status::Pass,
            (Severity::Error, true) => Status::Fail,
            (Severity::Warning, true) => Status::Warn,
        }
    }
}

/// Rows of one extract: read, used, and set aside by the first rule each broke.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractRows {
    pub name: &'static str,
    pub read: u64,
    pub used: u64,
    /// (rule id, rows), in rule order; rules that set nothing aside are left out.
    pub set_aside: Vec<(String, u64)>,
}

/// The profile of one data directory under one policy.
#[derive(Debug, Clone)]
pub struct Profile {
    pub as_of: NaiveDate,
    pub on_failure: OnFailure,
    pub policy_path: Option<PathBuf>,
    pub checks: Vec<CheckResult>,
    pub extracts: Vec<ExtractRows>,
    /// Wall time of each scan and check, in order (`--timings`; written nowhere else, so that
    /// the outputs do not depend on the machine).
    pub took: Vec<(String, std::time::Duration)>,
}

impl Profile {
    /// The profile as JSON for the run cache (numbers as their exact bits, no timings):
    /// [`Profile::from_cache`] reads it back as it was.
    pub fn to_cache(&self) -> String {
        use serde_json::json;
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                json!([
                    c.id,
                    c.extract,
                    c.category.name(),
                    c.severity.name(),
                    c.max_share.to_bits(),
                    c.what,
                    c.rows,
                    c.failing,
                    c.examples,
                    c.sets_aside
                ])
            })
            .collect();
        let extracts: Vec<serde_json::Value> = self
            .extracts
            .iter()
            .map(|e| json!([e.name, e.read, e.used, e.set_aside]))
            .collect();
        json!({
            "as_of": self.as_of.to_string(),
            "caveat": self.on_failure == OnFailure::Caveat,
            "checks": checks,
            "extracts": extracts,
        })
        .to_string()
    }

    /// The profile [`Profile::to_cache`] wrote, under the policy from `policy_path`; `None`
    /// when the text is not as it writes.
    pub fn from_cache(text: &str, policy_path: Option<PathBuf>) -> Option<Profile> {
        use checks::{Category, Severity};
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let extract = |name: &str| EXTRACTS.iter().find(|e| e.name == name).map(|e| e.name);
        let mut checks = Vec::new();
        for c in v["checks"].as_array()? {
            let c = c.as_array()?;
            if c.len() != 10 {
                return None;
            }
            let category = [
                Category::Completeness,
                Category::Conformance,
                Category::Plausibility,
            ]
            .into_iter()
            .find(|x| Some(x.name()) == c[2].as_str())?;
            let severity = [Severity::Error, Severity::Warning, Severity::Info]
                .into_iter()
                .find(|x| Some(x.name()) == c[3].as_str())?;
            checks.push(CheckResult {
                id: c[0].as_str()?.to_string(),
                extract: extract(c[1].as_str()?)?,
                category,
                severity,
                max_share: f64::from_bits(c[4].as_u64()?),
                what: c[5].as_str()?.to_string(),
                rows: c[6].as_u64()?,
                failing: c[7].as_u64()?,
                examples: serde_json::from_value(c[8].clone()).ok()?,
                sets_aside: c[9].as_bool()?,
            });
        }
        let mut extracts = Vec::new();
        for e in v["extracts"].as_array()? {
            let e = e.as_array()?;
            if e.len() != 4 {
                return None;
            }
            extracts.push(ExtractRows {
                name: extract(e[0].as_str()?)?,
                read: e[1].as_u64()?,
                used: e[2].as_u64()?,
                set_aside: serde_json::from_value(e[3].clone()).ok()?,
            });
        }
        Some(Profile {
            as_of: v["as_of"].as_str()?.parse().ok()?,
            on_failure: match v["caveat"].as_bool()? {
                true => OnFailure::Caveat,
                false => OnFailure::Refuse,
            },
            policy_path,
            checks,
            extracts,
            took: Vec::new(),
        })
    }

    /// The extracts none of whose rows is set aside (as [`RowCounts::clean`]).
    pub fn clean(&self) -> Vec<&'static str> {
        self.extracts
            .iter()
            .filter(|e| e.set_aside.is_empty() && e.used == e.read)
            .map(|e| e.name)
            .collect()
    }

    /// The `error` checks over their thresholds.
    pub fn failed(&self) -> Vec<&CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status() == Status::Fail)
            .collect()
    }

    /// The `warning` checks over their thresholds.
    pub fn warnings(&self) -> Vec<&CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status() == Status::Warn)
            .collect()
    }

    /// `2 checks (a, b)`: how many `error` checks failed and which, for messages.
    pub fn failed_summary(&self) -> String {
        let failed = self.failed();
        format!(
            "{} check{} ({})",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// Whether a run may publish: `Ok(None)` when every `error` check passes, `Ok(Some(caveat))`
    /// when some fail and the policy says publish with a caveat, an error when it says refuse.
    pub fn gate(&self) -> Result<Option<String>> {
        let failed = self.failed();
        if failed.is_empty() {
            return Ok(None);
        }
        let list: Vec<String> = failed
            .iter()
            .map(|c| {
                format!(
                    "{} ({} of {} rows, {}; at most {} allowed)",
                    c.id,
                    c.failing,
                    c.rows,
                    percent(c.share()),
                    percent(c.max_share)
                )
            })
            .collect();
        match self.on_failure {
            OnFailure::Refuse => Err(Error::Quality(format!(
                "the extracts fail {} data-quality check{}; nothing was published:\n  {}\n\
                 Run `hhq validate` for the report with example rows; fix the extracts, or set \
                 a check's `max_percent` or `on_failure: caveat` in {}",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" },
                list.join("\n  "),
                self.policy_path
                    .as_ref()
                    .map_or("measures/quality/policy.yaml".into(), |p| p
                        .display()
                        .to_string())
            ))),
            OnFailure::Caveat => Ok(Some(format!(
                "Data-quality caveat: the extracts fail {}. Results are computed on the usable \
                 rows; read them with care.",
                self.failed_summary()
            ))),
        }
    }

    /// Every check: `data_quality_checks.csv`. Example keys name members and claims, so they go
    /// only to `hhq validate`'s report for the data steward (`examples: true`); a run's outputs,
    /// which may be scoped to one audience or pseudonymised, leave the column empty.
    pub fn checks_csv(&self, examples: bool) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "check",
            "extract",
            "category",
            "severity",
            "status",
            "rows",
            "failing",
            "percent",
            "max_percent",
            "sets_aside",
            "description",
            "examples",
        ])
        .expect("in-memory CSV");
        for c in &self.checks {
            w.write_record([
                c.id.as_str(),
                c.extract,
                c.category.name(),
                c.severity.name(),
                c.status().name(),
                &c.rows.to_string(),
                &c.failing.to_string(),
                &format!("{:.4}", 100.0 * c.share()),
                &format!("{:.4}", 100.0 * c.max_share),
                if c.sets_aside { "yes" } else { "no" },
                &crate::escape::csv_text(&c.what),
                &if examples {
                    // Example keys are values from the extracts.
                    crate::escape::csv_text(&c.examples.join("; ")).into_owned()
                } else {
                    String::new()
                },
            ])
            .expect("in-memory CSV");
        }
        String::from_utf8(w.into_inner().expect("in-memory CSV")).expect("UTF-8")
    }

    /// Rows read, set aside by reason and used, per extract: they reconcile (read = used + set
    /// aside).
    pub fn rows_csv(&self) -> String {
        let mut out = String::from("extract,count,rows,note\n");
        for e in &self.extracts {
            out.push_str(&format!("{},read,{},\n", e.name, e.read));
            for (rule, n) in &e.set_aside {
                out.push_str(&format!("{},set_aside,{n},{rule}\n", e.name, rule = rule));
            }
            out.push_str(&format!(
                "{},used,{},rows every measure reads\n",
                e.name, e.used
            ));
        }
        out
    }
}

/// Rows set aside, one line per extract and rule, with the count and what the rule says:
/// `claims: 2 rows set aside by claims.member_id.null: `member_id` is null, but the contract
/// requires it`. Counts only, for the terminal.
pub fn set_aside_lines(extracts: &[ExtractRows]) -> Vec<String> {
    let all = catalogue();
    extracts
        .iter()
        .flat_map(|e| e.set_aside.iter().map(move |(rule, n)| (e.name, rule, n)))
        .map(|(name, rule, n)| {
            let what = all
                .iter()
                .find(|c| &c.id == rule)
                .map_or(String::new(), |c| {
                    format!(": {}", c.what.replace(" (the row is set aside)", ""))
                });
            format!(
                "{name}: {n} row{} set aside by {rule}{what}",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect()
}

impl Profile {
    /// What a command that went on prints as warnings, one line each: the rows set aside by
    /// rule, then every check over its threshold (a warning, or an error let through by
    /// `on_failure: caveat`). Counts only: example keys stay in `hhq validate`'s report.
    pub fn warning_lines(&self) -> Vec<String> {
        let mut out = set_aside_lines(&self.extracts);
        for c in self
            .checks
            .iter()
            // Rows set aside are listed above, by rule.
            .filter(|c| !c.sets_aside && matches!(c.status(), Status::Warn | Status::Fail))
        {
            out.push(format!(
                "{}: {} of {} rows ({}; at most {} allowed{}): {}",
                c.id,
                c.failing,
                c.rows,
                percent(c.share()),
                percent(c.max_share),
                if c.what.contains("as-of date") {
                    format!("; as of {}", self.as_of)
                } else {
                    String::new()
                },
                c.what,
            ));
        }
        out
    }
}

/// The catalogue as a Markdown table (`hhq validate --list`, and docs/data-quality.md, which a
/// test holds to it): id, category, default severity and threshold, whether rows are set aside.
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "| check | category | severity | max % | rows set aside | fails when |\n|---|---|---|---|---|---|\n",
    );
    for c in catalogue() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            c.id,
            c.category.name(),
            c.severity.name(),
            if c.severity == Severity::Info {
                "—".to_string()
            } else {
                format!("{}", 100.0 * c.max_share)
            },
            if matches!(c.source, Source::Rule(_)) {
                "yes"
            } else {
                "no"
            },
            c.what
                .replace(" (the row is set aside)", "")
                .replace('|', "\\|")
        ));
    }
    out
}

/// `0.12%`, for messages.
pub fn percent(share: f64) -> String {
    let p = 100.0 * share;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.01 {
        "<0.01%".into()
    } else {
        format!("{p:.2}%")
    }
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Failed(format!("no row from a count: {sql}")))?;
    let col = datafusion::arrow::compute::cast(
        b.column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )?;
    let col = col.as_primitive::<Int64Type>();
    Ok(if col.is_null(0) {
        0
    } else {
        col.value(0).max(0) as u64
    })
}

/// The (key, count) rows of `sql` as a map.
async fn keyed_counts(ctx: &SessionContext, sql: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let keys = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let keys = keys.as_string::<i32>();
        let n = datafusion::arrow::compute::cast(
            b.column(1),
            &datafusion::arrow::datatypes::DataType::Int64,
        )?;
        let n = n.as_primitive::<Int64Type>();
        for row in 0..b.num_rows() {
            if keys.is_valid(row) && n.is_valid(row) {
                out.insert(keys.value(row).to_string(), n.value(row).max(0) as u64);
            }
        }
    }
    Ok(out)
}

async fn texts(ctx: &SessionContext, sql: &str) -> Result<Vec<String>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let (_, rows) = crate::results::text_rows(&batches)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// Profile the opened extracts (registered in `ctx` by [`crate::extract::open_all`]) under
/// `policy`, with dates after `as_of` counted as future.
pub async fn profile(
    ctx: &SessionContext,
    extracts: &[OpenedExtract],
    policy: &Policy,
    as_of: NaiveDate,
) -> Result<Profile> {
    let rows = count_rows(ctx, extracts).await?;
    check(ctx, extracts, rows, policy, as_of).await
}

/// The first half of [`profile`]: rows read, used and set aside, per extract and row rule.
/// Between the halves a run reads the extracts with nothing to set aside without their row
/// rules ([`RowCounts::clean`]), so the checks after do not test every row again.
pub struct RowCounts {
    rows_of: Vec<ExtractRows>,
    rule_counts: BTreeMap<String, u64>,
    took: Vec<(String, std::time::Duration)>,
}

impl RowCounts {
    /// Rows read, used and set aside, per extract.
    pub fn extracts(&self) -> &[ExtractRows] {
        &self.rows_of
    }

    /// The extracts none of whose rows is set aside.
    pub fn clean(&self) -> Vec<&'static str> {
        self.rows_of
            .iter()
            .filter(|e| e.set_aside.is_empty() && e.used == e.read)
            .map(|e| e.name)
            .collect()
    }
}

/// Count the rows of each extract, used and set aside by the first row rule they break, with
/// each rule's own count: one scan per extract.
pub async fn count_rows(ctx: &SessionContext, extracts: &[OpenedExtract]) -> Result<RowCounts> {
    crate::functions::register_fixed(ctx);
    let mut rows_of = Vec::new();
    // Rule counts per extract, from one scan: rows grouped by the first rule they break, with
    // each rule's own count (a row may break several) summed alongside.
    let mut rule_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut took = Vec::new();
    for opened in extracts {
        let started = std::time::Instant::now();
        let extract = EXTRACTS
            .iter()
            .find(|e| e.name == opened.name)
            .expect("a contract extract");
        let rules = crate::extract::rules::row_rules(extract);
        let sums: Vec<String> = rules
            .iter()
            .map(|r| format!(", hhq_count_true({})", r.sql()))
            .collect();
        let sql = format!(
            "SELECT reason, count(*){} FROM (SELECT *, {} AS reason FROM {}) t GROUP BY reason ORDER BY reason",
            sums.concat(),
            crate::extract::rules::reason_sql(extract),
            crate::extract::all_rows(extract)
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut read = 0;
        let mut used = 0;
        let mut aside: BTreeMap<String, u64> = BTreeMap::new();
        for b in &batches {
            let reasons = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let reasons = reasons.as_string::<i32>();
            let n = b.column(1).as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                let k = n.value(row) as u64;
                read += k;
                if reasons.is_null(row) {
                    used += k;
                } else {
                    *aside.entry(reasons.value(row).to_string()).or_default() += k;
                }
                for (i, r) in rules.iter().enumerate() {
                    let col = b.column(2 + i).as_primitive::<Int64Type>();
                    if !col.is_null(row) {
                        *rule_counts.entry(r.id.clone()).or_default() += col.value(row) as u64;
                    }
                }
            }
        }
        rows_of.push(ExtractRows {
            name: opened.name,
            read,
            used,
            set_aside: rules
                .iter()
                .filter_map(|r| aside.get(&r.id).map(|n| (r.id.clone(), *n)))
                .collect(),
        });
        took.push((
            format!("{}: rows and row rules", opened.name),
            started.elapsed(),
        ));
    }
    Ok(RowCounts {
        rows_of,
        rule_counts,
        took,
    })
}

/// The second half of [`profile`]: every check of the catalogue, given the row counts.
pub async fn check(
    ctx: &SessionContext,
    extracts: &[OpenedExtract],
    rows: RowCounts,
    policy: &Policy,
    as_of: NaiveDate,
) -> Result<Profile> {
    let RowCounts {
        rows_of,
        rule_counts,
        mut took,
    } = rows;
    let as_of_sql = format!("DATE '{}'", as_of.format("%Y-%m-%d"));
    crate::functions::register_fixed(ctx);
    // Single-row flags, one scan per extract: a column per check.
    let all = catalogue();
    let mut flag_counts: BTreeMap<String, u64> = BTreeMap::new();
    for opened in extracts {
        let flags: Vec<(&String, &String)> = all
            .iter()
            .filter(|d| d.extract == opened.name)
            .filter_map(|d| match &d.source {
                Source::Flag { bad } => Some((&d.id, bad)),
                _ => None,
            })
            .collect();
        if flags.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let sums: Vec<String> = flags
            .iter()
            .map(|(_, bad)| format!("hhq_count_true(({}))", bad.replace("{as_of}", &as_of_sql)))
            .collect();
        let batches = ctx
            .sql(&format!("SELECT {} FROM {}", sums.join(", "), opened.name))
            .await?
            .collect()
            .await?;
        for (i, (id, _)) in flags.iter().enumerate() {
            let mut n = 0;
            for b in batches.iter().filter(|b| b.num_rows() > 0) {
                let col = datafusion::arrow::compute::cast(
                    b.column(i),
                    &datafusion::arrow::datatypes::DataType::Int64,
                )?;
                let col = col.as_primitive::<Int64Type>();
                if !col.is_null(0) {
                    n += col.value(0).max(0) as u64;
                }
            }
            flag_counts.insert((*id).clone(), n);
        }
        took.push((
            format!("{}: single-row checks", opened.name),
            started.elapsed(),
        ));
    }

    let mut results = Vec::new();
    // The counts of queries several checks share, by query.
    let mut shared: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for def in all {
        let started = std::time::Instant::now();
        let Some(rows) = rows_of.iter().find(|e| e.name == def.extract) else {
            continue;
        };
        let Some(opened) = extracts.iter().find(|e| e.name == def.extract) else {
            continue;
        };
        let (severity, max_share) = policy.apply(&def);
        let (checked, failing, examples, sets_aside) = match &def.source {
            Source::Empty => (1, u64::from(rows.used == 0), Vec::new(), false),
            Source::Rule(rule) => {
                let failing = rule_counts.get(&rule.id).copied().unwrap_or(0);
                let found: Vec<String> = opened
                    .findings
                    .iter()
                    .filter(|f| f.rule == rule.id)
                    .take(3)
                    .map(|f| f.describe())
                    .collect();
                let examples = if failing == 0 {
                    Vec::new()
                } else if found.is_empty() {
                    let extract = EXTRACTS
                        .iter()
                        .find(|e| e.name == def.extract)
                        .expect("a contract extract");
                    texts(
                        ctx,
                        &format!(
                            "SELECT DISTINCT {} AS key FROM {} WHERE {} ORDER BY key LIMIT 3",
                            checks::key_sql(def.extract),
                            crate::extract::all_rows(extract),
                            rule.sql()
                        ),
                    )
                    .await?
                } else {
                    found
                };
                (rows.read, failing, examples, true)
            }
            Source::Flag { bad } => {
                let failing = flag_counts.get(&def.id).copied().unwrap_or(0);
                let examples = if failing == 0 {
                    Vec::new()
                } else {
                    texts(
                        ctx,
                        &checks::examples_sql(def.extract, bad).replace("{as_of}", &as_of_sql),
                    )
                    .await?
                };
                (rows.used, failing, examples, false)
            }
            Source::Duplicates { key, label } => {
                let found = duplicates::count(ctx, def.extract, key, *label, rows.used).await?;
                (rows.used, found.extra_rows, found.examples, false)
            }
            Source::Shared {
                count: c,
                key,
                examples,
            } => {
                let sql = c.replace("{as_of}", &as_of_sql);
                if !shared.contains_key(&sql) {
                    let counts = keyed_counts(ctx, &sql).await?;
                    shared.insert(sql.clone(), counts);
                }
                let failing = shared[&sql].get(key).copied().unwrap_or(0);
                let examples = if failing == 0 {
                    Vec::new()
                } else {
                    texts(ctx, &examples.replace("{as_of}", &as_of_sql)).await?
                };
                (rows.used, failing, examples, false)
            }
            Source::Query { count: c, examples } => {
                let failing = count(ctx, &c.replace("{as_of}", &as_of_sql)).await?;
                let examples = if failing == 0 {
                    Vec::new()
                } else {
                    texts(ctx, &examples.replace("{as_of}", &as_of_sql)).await?
                };
                (rows.used, failing, examples, false)
            }
        };
        // The checks with work of their own; the others were counted by the scans above.
        if matches!(
            def.source,
            Source::Query { .. } | Source::Shared { .. } | Source::Duplicates { .. }
        ) {
            took.push((def.id.clone(), started.elapsed()));
        }
        results.push(CheckResult {
            id: def.id,
            extract: def.extract,
            category: def.category,
            severity,
            max_share,
            what: def.what,
            rows: checked,
            failing,
            examples,
            sets_aside,
        });
    }
    Ok(Profile {
        as_of,
        on_failure: policy.on_failure,
        policy_path: policy.path.clone(),
        checks: results,
        extracts: rows_of,
        took,
    })
}

/// `hhq validate`: open a data directory on its own (no measure needed) and profile it.
pub async fn validate(data_dir: &Path, policy: &Policy, as_of: NaiveDate) -> Result<Profile> {
    let ctx = SessionContext::new();
    let opened = crate::extract::open_all(&ctx, data_dir).await?;
    profile(&ctx, &opened, policy, as_of).await
}

/// `hhq validate`: profile the extracts of `data` under the policy `options` (or `measures`)
/// names, write the report into `out`, and what to tell: the checks that did not pass, the
/// warnings, the files written; a failure when a check fails.
pub async fn command(
    data: &Path,
    out: &Path,
    options: &QualityOptions,
    measures: &Path,
) -> Result<crate::output::Told> {
    let policy = Policy::resolve(options.policy.as_deref(), measures)?;
    let profile = validate(data, &policy, options.as_of_or_today()).await?;
    let written = write_report(&profile, out)?;
    let mut after: Vec<String> = profile
        .warning_lines()
        .into_iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    after.push(format!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let failed = (!profile.failed().is_empty())
        .then(|| Error::Quality(format!("the extracts fail {}", profile.failed_summary())));
    Ok(crate::output::Told {
        before: Vec::new(),
        out: terminal(&profile),
        after,
        failed,
    })
}

/// Write the data-quality report of `hhq validate` into `out`: `data_quality_checks.csv` and
/// `data_quality.csv`. Returns the files written.
pub fn write_report(profile: &Profile, out: &Path) -> Result<Vec<PathBuf>> {
    let files = [
        (
            out.join("data_quality_checks.csv"),
            profile.checks_csv(true),
        ),
        (out.join("data_quality.csv"), profile.rows_csv()),
    ];
    for (path, text) in &files {
        crate::output::write_atomic(path, text.as_bytes())?;
    }
    // A manifest, so the directory is known as hhq's (a run into its parent keeps it) and its
    // files can be checked: no clock time, the as-of date being an input.
    let outputs: Vec<serde_json::Value> = files
        .iter()
        .map(|(p, t)| {
            serde_json::json!({
                "file": p.file_name().map(|n| n.to_string_lossy().to_string()),
                "sha256": crate::digest::sha256(t.as_bytes()),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "tool": {"name": "hhq", "version": env!("CARGO_PKG_VERSION")},
        "command": "validate",
        "as_of": profile.as_of.to_string(),
        "policy": profile.policy_path.as_ref().map(|p| p.display().to_string()),
        "outputs": outputs,
    });
    let path = out.join("manifest.json");
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::Usage(format!("cannot render the manifest: {e}")))?;
    text.push('\n');
    crate::output::write_atomic(&path, text.as_bytes())?;
    Ok(files.into_iter().map(|(p, _)| p).chain([path]).collect())
}

/// The profile for a terminal: every check that did not pass, then a count of those that did.
/// Counts only: example keys stay in the written report.
pub fn terminal(profile: &Profile) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "check", "severity", "status", "failing", "of rows", "%", "max %",
    ]);
    let mut passed = 0;
    for c in &profile.checks {
        if c.status() == Status::Pass {
            passed += 1;
            continue;
        }
        t.add_row([
            c.id.clone(),
            c.severity.name().into(),
            c.status().name().into(),
            c.failing.to_string(),
            c.rows.to_string(),
            percent(c.share()),
            percent(c.max_share),
        ]);
    }
    let mut out = String::new();
    if passed < profile.checks.len() {
        out.push_str(&format!("{t}\n"));
    }
    let aside: u64 = profile
        .extracts
        .iter()
        .flat_map(|e| e.set_aside.iter().map(|(_, n)| n))
        .sum();
    out.push_str(&format!(
        "{} checks: {} passed, {} failed, {} warnings, {} info; {} rows set aside of {} read (as of {})\n",
        profile.checks.len(),
        passed,
        profile.failed().len(),
        profile.warnings().len(),
        profile
            .checks
            .iter()
            .filter(|c| c.status() == Status::Info)
            .count(),
        aside,
        profile.extracts.iter().map(|e| e.read).sum::<u64>(),
        profile.as_of
    ));
    out
}
