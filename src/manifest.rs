//! The manifest written beside every run's outputs: what produced them, so a result can be
//! reproduced and audited — tool version, the period and options, SHA-256 hashes of every
//! measure, building block and value-set file, extract fingerprints (files, bytes, rows and
//! hashes), and the hash of every output file. No clock time and no member-level data, so the
//! same inputs give the same manifest, byte for byte.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::digest::file_sha256;
use crate::error::{Error, Result};
use crate::extract::OpenedExtract;

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// A file's entry: path, size and hash.
fn sized(p: &Path) -> Result<Value> {
    let bytes = std::fs::metadata(p).map_err(|err| Error::io(p, err))?.len();
    Ok(json!({"file": shown(p), "bytes": bytes, "sha256": file_sha256(p)?}))
}

/// Everything a manifest records.
pub struct Inputs<'a> {
    pub command: &'a str,
    pub period: crate::period::Period,
    pub data_cutoff: Option<chrono::NaiveDate>,
    /// Options as given, by name.
    pub options: Vec<(&'a str, Value)>,
    /// Measure files with their id and version.
    pub measures: Vec<(String, String, PathBuf)>,
    pub blocks: Vec<(String, PathBuf)>,
    pub value_set_files: Vec<PathBuf>,
    pub extracts: &'a [OpenedExtract],
    pub risk_weights: Option<PathBuf>,
    /// The data-quality profile the run passed its gate with.
    pub quality: Option<&'a crate::quality::Profile>,
    /// Output files, already written.
    pub outputs: Vec<PathBuf>,
}

/// The manifest as pretty JSON (keys in a fixed order, lists sorted as given).
pub fn render(i: &Inputs) -> Result<String> {
    let files = |paths: &[PathBuf]| -> Result<Vec<Value>> {
        paths
            .iter()
            .map(|p| Ok(json!({"file": shown(p), "sha256": file_sha256(p)?})))
            .collect()
    };
    let measures = i
        .measures
        .iter()
        .map(|(id, version, p)| {
            Ok(json!({"id": id, "version": version, "file": shown(p), "sha256": file_sha256(p)?}))
        })
        .collect::<Result<Vec<_>>>()?;
    let blocks = i
        .blocks
        .iter()
        .map(|(name, p)| Ok(json!({"name": name, "file": shown(p), "sha256": file_sha256(p)?})))
        .collect::<Result<Vec<_>>>()?;
    let extracts = i
        .extracts
        .iter()
        .map(|e| {
            let parts = e
                .files
                .iter()
                .map(|p| sized(p))
                .collect::<Result<Vec<_>>>()?;
            Ok(json!({"name": e.name, "rows": e.rows, "files": parts}))
        })
        .collect::<Result<Vec<_>>>()?;
    let options: serde_json::Map<String, Value> = i
        .options
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let risk = match &i.risk_weights {
        Some(p) => json!({"file": shown(p), "sha256": file_sha256(p)?}),
        None => Value::Null,
    };
    let quality = match i.quality {
        Some(q) => quality_json(q)?,
        None => Value::Null,
    };
    let outputs = outputs_json(&i.outputs, None)?;
    let manifest = json!({
        "tool": {"name": "hhq", "version": env!("CARGO_PKG_VERSION")},
        "command": i.command,
        "period": {"start": i.period.start.to_string(), "end": i.period.end.to_string()},
        "data_cutoff": i.data_cutoff.map(|d| d.to_string()),
        "options": options,
        "measures": measures,
        "building_blocks": blocks,
        "value_sets": files(&i.value_set_files)?,
        "risk_weights": risk,
        "data_quality": quality,
        "extracts": extracts,
        "outputs": outputs,
    });
    pretty(&manifest)
}

/// The policy (file and hash), which checks failed or warned, and the rows set aside by rule.
/// Not the as-of date unless given: a default of today would make reruns differ.
fn quality_json(q: &crate::quality::Profile) -> Result<Value> {
    let policy = match &q.policy_path {
        Some(p) => json!({"file": shown(p), "sha256": file_sha256(p)?}),
        None => Value::Null,
    };
    let ids = |v: Vec<&crate::quality::CheckResult>| -> Vec<String> {
        v.into_iter().map(|c| c.id.clone()).collect()
    };
    let set_aside: serde_json::Map<String, Value> = q
        .extracts
        .iter()
        .flat_map(|e| e.set_aside.iter().map(|(r, n)| (r.clone(), json!(n))))
        .collect();
    Ok(json!({
        "policy": policy,
        "on_failure": match q.on_failure {
            crate::quality::OnFailure::Refuse => "refuse",
            crate::quality::OnFailure::Caveat => "caveat",
        },
        "checks": q.checks.len(),
        "failed": ids(q.failed()),
        "warnings": ids(q.warnings()),
        "rows_set_aside": set_aside,
    }))
}

fn pretty(manifest: &Value) -> Result<String> {
    let mut text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::Usage(format!("cannot render the manifest: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Output entries: path, size and hash; read from `root.join(path)` when a root is given (the
/// staging directory a report is written into before it replaces the old one).
fn outputs_json(outputs: &[PathBuf], root: Option<&Path>) -> Result<Vec<Value>> {
    // By path, not in the order written: a run stages each measure's detail as it goes.
    let mut outputs: Vec<&PathBuf> = outputs.iter().collect();
    outputs.sort();
    outputs
        .into_iter()
        .map(|p| match root {
            Some(root) => {
                let on_disk = root.join(p);
                let bytes = std::fs::metadata(&on_disk)
                    .map_err(|err| Error::io(&on_disk, err))?
                    .len();
                Ok(json!({"file": shown(p), "bytes": bytes, "sha256": file_sha256(&on_disk)?}))
            }
            None => sized(p),
        })
        .collect()
}

/// A rendered manifest with its outputs replaced: the inputs (extracts included) are hashed once
/// by [`render`], the outputs once they are written.
pub fn with_outputs(manifest: &str, outputs: &[PathBuf], root: Option<&Path>) -> Result<String> {
    let mut value: Value = serde_json::from_str(manifest)
        .map_err(|e| Error::Usage(format!("cannot read back the manifest: {e}")))?;
    value["outputs"] = Value::Array(outputs_json(outputs, root)?);
    pretty(&value)
}
