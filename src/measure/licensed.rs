//! Value-set files in the layout the licensed ones come in (NCQA's Value Set Directory: value set
//! name, value set OID, code, code system, and the specification year), and the crosswalk
//! (`crosswalk.csv`) that builds each of hhq's value sets from them.
//!
//! hhq's value sets are per column and code system (`ed_revenue`: revenue codes of ED visits),
//! a licensed value set may mix code systems (NCQA's "ED": CPT and UBREV codes), so the crosswalk
//! names, for each hhq set, the licensed sets and code systems it takes its codes from. A state
//! with a licence drops its files beside the illustrative ones; every set the crosswalk names is
//! then built from them, for the year the run follows, and must come out non-empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The crosswalk's file name, in the value-set directory.
pub const CROSSWALK: &str = "crosswalk.csv";

/// One code of a licensed value set.
#[derive(Debug, Clone)]
pub struct LicensedCode {
    pub value_set: String,
    pub oid: String,
    pub code_system: String,
    /// Without dots (`F20.0` → `F200`), as the extracts carry codes.
    pub code: String,
    pub year: u16,
    pub file: PathBuf,
    pub line: usize,
}

/// A header cell as a key: lower case, spaces and dashes as underscores.
fn key(h: &str) -> String {
    h.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// Whether a CSV header is the licensed layout (it names a `Value Set Name` or, for medication
/// lists, a `Medication List Name` column).
pub fn is_licensed_header(header: &str) -> bool {
    header.split(',').any(|h| {
        let k = key(h.trim_matches('"'));
        k == "value_set_name" || k == "medication_list_name"
    })
}

/// The 4-digit measurement year in a file name (`HEDIS MY 2025 VSD.csv`, `vsd-my2025.csv`).
fn year_in_name(path: &Path) -> Option<u16> {
    let name = path.file_stem()?.to_string_lossy().to_string();
    let re = regex::Regex::new(r"(?:^|[^0-9])(20[0-9]{2})(?:[^0-9]|$)").expect("regex");
    let years: BTreeSet<u16> = re
        .captures_iter(&name)
        .filter_map(|c| c[1].parse().ok())
        .collect();
    (years.len() == 1).then(|| *years.iter().next().expect("one"))
}

/// A located error in one of these files.
fn file_error(path: &Path, line: usize, message: String) -> Error {
    Error::Definition {
        path: path.to_path_buf(),
        line,
        column: 1,
        message,
        hint: None,
    }
}

/// A CSV reader over `text` and its header cells as keys (see [`key`]).
fn open_csv<'t>(path: &Path, text: &'t str) -> Result<(csv::Reader<&'t [u8]>, Vec<String>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| file_error(path, 1, format!("cannot read the header: {e}")))?
        .iter()
        .map(key)
        .collect();
    Ok((reader, headers))
}

/// Each record of `reader` with its line, a malformed one an error at its line.
fn records<'r>(
    path: &'r Path,
    reader: &'r mut csv::Reader<&[u8]>,
) -> impl Iterator<Item = Result<(csv::StringRecord, usize)>> + 'r {
    reader.records().map(move |record| {
        let record = record.map_err(|e| {
            let line = e.position().map_or(1, |p| p.line() as usize);
            file_error(path, line, format!("malformed CSV: {e}"))
        })?;
        let line = record.position().map_or(1, |p| p.line() as usize);
        Ok((record, line))
    })
}

/// Read one licensed-layout file: columns `Value Set Name`, `Value Set OID`, `Code`,
/// `Code System`, and the year (`Year`, `Specification Year` or `Measurement Year`), or, without
/// that column, the one year in the file name.
pub fn read(path: &Path, text: &str) -> Result<Vec<LicensedCode>> {
    let err = |line: usize, message: String| file_error(path, line, message);
    let (mut reader, headers) = open_csv(path, text)?;
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let need = |names: &[&str], label: &str| {
        col(names).ok_or_else(|| {
            err(
                1,
                format!(
                    "no `{label}` column; a licensed value-set file has Value Set Name, Value Set \
                     OID, Code, Code System (and the year, in a column or the file name)"
                ),
            )
        })
    };
    // Medication lists (NDC codes) come in the same layout, named as lists.
    let name_at = need(
        &["value_set_name", "medication_list_name"],
        "Value Set Name",
    )?;
    let oid_at = need(&["value_set_oid", "medication_list_oid"], "Value Set OID")?;
    let code_at = need(&["code"], "Code")?;
    let system_at = need(&["code_system"], "Code System")?;
    let year_at = col(&["year", "specification_year", "measurement_year"]);
    let file_year = year_in_name(path);
    if year_at.is_none() && file_year.is_none() {
        return Err(err(
            1,
            "no year: add a Year column, or name the file with its measurement year \
             (e.g. `hedis-my2025-value-sets.csv`)"
                .into(),
        ));
    }
    let mut out = Vec::new();
    for row in records(path, &mut reader) {
        let (record, line) = row?;
        let year = match year_at {
            Some(i) => {
                let y = record[i].trim();
                let digits = y.trim_start_matches("MY").trim();
                digits
                    .parse::<u16>()
                    .ok()
                    .filter(|y| super::spec::YEARS.contains(y))
                    .ok_or_else(|| {
                        err(
                            line,
                            format!("year {y:?} is not a measurement year such as 2025"),
                        )
                    })?
            }
            None => file_year.expect("checked above"),
        };
        let code: String = record[code_at].chars().filter(|c| *c != '.').collect();
        let value_set = record[name_at].to_string();
        if value_set.is_empty() || code.is_empty() {
            return Err(err(line, "empty Value Set Name or Code".into()));
        }
        if code.contains(['\'', ' ', '*']) {
            return Err(err(
                line,
                format!("code {code:?}: a licensed code has no quotes, spaces or `*`"),
            ));
        }
        out.push(LicensedCode {
            value_set,
            oid: record[oid_at].to_string(),
            code_system: record[system_at].to_string(),
            code,
            year,
            file: path.to_path_buf(),
            line,
        });
    }
    Ok(out)
}

/// One line of the crosswalk: an hhq set, the licensed sets and code systems it takes codes from.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub value_set: String,
    pub licensed: Vec<String>,
    pub code_systems: Vec<String>,
    pub line: usize,
}

/// Read the crosswalk: `value_set,licensed_value_sets,code_systems`, the last two lists
/// separated by `|`. An hhq set may take several lines; their sources add up.
pub fn read_crosswalk(path: &Path, text: &str) -> Result<Vec<Mapping>> {
    let err = |line: usize, message: String| file_error(path, line, message);
    let (mut reader, headers) = open_csv(path, text)?;
    let want = ["value_set", "licensed_value_sets", "code_systems"];
    let idx: Vec<usize> = want
        .iter()
        .map(|w| {
            headers.iter().position(|h| h == w).ok_or_else(|| {
                err(
                    1,
                    format!(
                        "missing column `{w}`; the crosswalk has columns {}",
                        want.join(",")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let list = |s: &str| -> Vec<String> {
        s.split('|')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for row in records(path, &mut reader) {
        let (record, line) = row?;
        let m = Mapping {
            value_set: record[idx[0]].to_string(),
            licensed: list(&record[idx[1]]),
            code_systems: list(&record[idx[2]]),
            line,
        };
        if m.value_set.is_empty() || m.licensed.is_empty() || m.code_systems.is_empty() {
            return Err(err(
                line,
                "a crosswalk line names an hhq value set, the licensed value sets and the code \
                 systems"
                    .into(),
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// hhq's sets built from the licensed codes of `year`: `(name, code system, codes, OIDs, line
/// of the crosswalk)`. An error names each crosswalk line whose set comes out empty.
pub fn resolve(
    crosswalk_path: &Path,
    mappings: &[Mapping],
    codes: &[LicensedCode],
    year: u16,
) -> Result<Vec<Resolved>> {
    let mut by: BTreeMap<&str, Resolved> = BTreeMap::new();
    let mut problems = Vec::new();
    for m in mappings {
        let picked: Vec<&LicensedCode> = codes
            .iter()
            .filter(|c| {
                c.year == year
                    && m.licensed
                        .iter()
                        .any(|l| l.eq_ignore_ascii_case(&c.value_set))
                    && m.code_systems
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&c.code_system))
            })
            .collect();
        if picked.is_empty() {
            problems.push(Error::Definition {
                path: crosswalk_path.to_path_buf(),
                line: m.line,
                column: 1,
                message: format!(
                    "value set `{}`: the licensed files have no {} code of {} for MY{year}",
                    m.value_set,
                    m.code_systems.join(" or "),
                    m.licensed
                        .iter()
                        .map(|l| format!("`{l}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                hint: Some(
                    "check the licensed value set's name and code system, or the year the run follows (--spec)"
                        .into(),
                ),
            });
            continue;
        }
        let r = by.entry(m.value_set.as_str()).or_insert_with(|| Resolved {
            name: m.value_set.clone(),
            code_system: m.code_systems.join("|"),
            codes: Vec::new(),
            oids: Vec::new(),
            line: m.line,
        });
        for c in picked {
            r.codes.push(c.code.clone());
            if !c.oid.is_empty() && !r.oids.contains(&c.oid) {
                r.oids.push(c.oid.clone());
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::many(problems));
    }
    Ok(by.into_values().collect())
}

/// One hhq set built from licensed codes.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    pub code_system: String,
    pub codes: Vec<String>,
    pub oids: Vec<String>,
    /// The crosswalk line that first names it.
    pub line: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_comes_from_a_column_or_the_file_name() {
        let text = "Value Set Name,Value Set OID,Value Set Version,Code,Definition,Code System\n\
                    Mental Illness,1.2.3,2024-03-31,F20.0,Paranoid schizophrenia,ICD10CM\n";
        let rows = read(Path::new("HEDIS MY 2025 VSD.csv"), text).unwrap();
        assert_eq!((rows[0].code.as_str(), rows[0].year), ("F200", 2025));
        let e = read(Path::new("vsd.csv"), text).unwrap_err().to_string();
        assert!(e.contains("no year"), "{e}");
        let with = "Value Set Name,Value Set OID,Code,Code System,Year\nED,1.2,0450,UBREV,MY2024\n";
        assert_eq!(read(Path::new("vsd.csv"), with).unwrap()[0].year, 2024);
        assert!(is_licensed_header("\"Value Set Name\",Code"));
        assert!(!is_licensed_header("value_set,code_system,code"));
    }

    #[test]
    fn a_set_takes_its_code_systems_of_its_licensed_sets_for_the_year() {
        let codes = read(
            Path::new("v.csv"),
            "Value Set Name,Value Set OID,Code,Code System,Year\n\
             ED,1.1,0450,UBREV,2025\nED,1.1,99283,CPT,2025\nED,1.1,0451,UBREV,2024\n",
        )
        .unwrap();
        let cw = read_crosswalk(
            Path::new("crosswalk.csv"),
            "value_set,licensed_value_sets,code_systems\ned_revenue,ED,UBREV\ned_procedure,ED,CPT|HCPCS\n",
        )
        .unwrap();
        let got = resolve(Path::new("crosswalk.csv"), &cw, &codes, 2025).unwrap();
        let ed = got.iter().find(|r| r.name == "ed_revenue").unwrap();
        assert_eq!(
            (ed.codes.clone(), ed.oids.clone()),
            (vec!["0450".to_string()], vec!["1.1".to_string()])
        );
        // 2023 has none: the error names the crosswalk line.
        let e = resolve(Path::new("crosswalk.csv"), &cw, &codes, 2023)
            .unwrap_err()
            .to_string();
        assert!(e.contains("crosswalk.csv:2") && e.contains("MY2023"), "{e}");
    }
}
