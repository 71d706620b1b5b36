//! Value sets: named lists of codes, read from CSV files (`value_set,code_system,code,description`).
//! A code ending in `*` stands for every code that begins with it (`F20*`), which keeps the shipped
//! illustrative sets short; a licensed value-set file lists full codes and drops in beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One value set: exact codes and prefixes, each sorted so generated SQL is stable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueSet {
    pub name: String,
    pub code_system: String,
    pub codes: Vec<String>,
    pub prefixes: Vec<String>,
    /// Where it was defined (file and first line), for messages.
    pub defined_at: (PathBuf, usize),
    /// Whether it came from a licensed (non-illustrative) file.
    pub replaces_illustrative: bool,
}

/// The largest value-set file read: a licensed file with every HEDIS value set is tens of MiB.
pub const MAX_VALUE_SET_FILE_BYTES: usize = 256 * 1024 * 1024;

/// All value sets known to a run, by name.
#[derive(Debug, Clone, Default)]
pub struct ValueSets {
    sets: BTreeMap<String, ValueSet>,
}

/// The value-set files of a directory (`*.csv`), in name order; none when it does not exist.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "csv") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

impl ValueSets {
    pub fn get(&self, name: &str) -> Option<&ValueSet> {
        self.sets.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sets.keys().map(String::as_str)
    }

    /// Load every `*.csv` in `dir`. Files named `illustrative*.csv` hold the shipped sets; any
    /// other file (a licensed value-set file) replaces the illustrative set of the same name
    /// whole, so measures need no edit. Two non-illustrative files may not define one set.
    pub fn load_dir(dir: &Path) -> Result<ValueSets> {
        let mut paths = files_in(dir)?;
        let illustrative = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("illustrative"))
        };
        // Licensed files last, so their sets replace the illustrative ones.
        paths.sort_by_key(|p| (!illustrative(p), p.clone()));
        let mut sets = ValueSets::default();
        for p in paths {
            let bytes = super::read_definition(&p, MAX_VALUE_SET_FILE_BYTES)?;
            let text = super::utf8(&p, bytes)?;
            let replacing = !illustrative(&p);
            sets.add_csv_replacing(&p, &text, replacing)?;
        }
        Ok(sets)
    }

    /// Add the value sets of one CSV text. A set may not be spread over two files, so that a
    /// licensed file cannot silently merge with an illustrative one of the same name.
    pub fn add_csv(&mut self, path: &Path, text: &str) -> Result<()> {
        self.add_csv_replacing(path, text, false)
    }

    /// As [`Self::add_csv`]; with `replacing`, a set of this file replaces an illustrative set
    /// of the same name (but never another replacing file's).
    pub fn add_csv_replacing(&mut self, path: &Path, text: &str, replacing: bool) -> Result<()> {
        let err = |line: usize, column: usize, message: String| Error::Definition {
            path: path.to_path_buf(),
            line,
            column,
            message,
            hint: None,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| err(1, 1, format!("cannot read the header: {e}")))?
            .clone();
        let want = ["value_set", "code_system", "code"];
        let mut idx = [0usize; 3];
        for (i, name) in want.iter().enumerate() {
            idx[i] = headers.iter().position(|h| h == *name).ok_or_else(|| {
                err(
                    1,
                    1,
                    format!("missing column `{name}`; a value-set file has columns value_set,code_system,code[,description]"),
                )
            })?;
        }
        let mut here: BTreeMap<String, ValueSet> = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(1);
                err(line, 1, format!("malformed CSV: {e}"))
            })?;
            let line = record.position().map(|p| p.line() as usize).unwrap_or(1);
            let (name, system, code) = (&record[idx[0]], &record[idx[1]], &record[idx[2]]);
            if name.is_empty() || code.is_empty() {
                return Err(err(line, 1, "empty value_set or code".into()));
            }
            if code.contains(['.', '\'', ' ']) {
                return Err(err(
                    line,
                    1,
                    format!("code {code:?}: codes are written without dots, quotes or spaces"),
                ));
            }
            let set = here.entry(name.to_string()).or_insert_with(|| ValueSet {
                name: name.to_string(),
                code_system: system.to_string(),
                defined_at: (path.to_path_buf(), line),
                ..Default::default()
            });
            if set.code_system != system {
                return Err(err(
                    line,
                    1,
                    format!(
                        "value set `{name}` mixes code systems {} and {system}",
                        set.code_system
                    ),
                ));
            }
            match code.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() => set.prefixes.push(prefix.to_string()),
                Some(_) => return Err(err(line, 1, "a lone `*` matches every code".into())),
                None => set.codes.push(code.to_string()),
            }
        }
        for (name, mut set) in here {
            set.replaces_illustrative = replacing;
            if let Some(prev) = self.sets.get(&name)
                && (!replacing || prev.replaces_illustrative)
            {
                return Err(err(
                    set.defined_at.1,
                    1,
                    format!(
                        "value set `{name}` is already defined in {}",
                        prev.defined_at.0.display()
                    ),
                ));
            }
            set.codes.sort();
            set.codes.dedup();
            set.prefixes.sort();
            set.prefixes.dedup();
            self.sets.insert(name, set);
        }
        Ok(())
    }
}

/// The most codes and prefixes a value set may have to be written as `IN` lists; a larger set is
/// looked up by [`LOOKUP_FUNCTION`] (see `compile::lookup`), as long `IN` lists plan very slowly.
pub const IN_LIST_MAX: usize = 1_000;

/// The SQL function that tests membership of a large value set.
pub const LOOKUP_FUNCTION: &str = "hhq_value_set_contains";

impl ValueSet {
    /// A SQL predicate that is true when `column` holds a code of this set: exact codes through
    /// `IN`, prefixes grouped by length through `left(column, n) IN`, both hash lookups. A set
    /// larger than [`IN_LIST_MAX`] is a call of [`LOOKUP_FUNCTION`] instead.
    ///
    /// The lookup is guarded by the range the set's codes span (`column >= 'F10' AND column <
    /// 'F1:'`): two comparisons, and DataFusion tests the right side of an `AND` only on the rows
    /// its left side keeps when they are few, so the lookups run on the few codes near the set's
    /// rather than on every diagnosis of the year (a quarter of a claim block's time).
    pub fn sql_predicate(&self, column: &str) -> String {
        let lookup = self.lookup(column);
        match self.range(column) {
            Some(range) if lookup != "FALSE" => format!("({range} AND {lookup})"),
            _ => lookup,
        }
    }

    /// A SQL predicate that is true when any element of the list `column` holds a code of this
    /// set, false for an empty list, null for a null one: [`LOOKUP_FUNCTION`] over the list,
    /// whatever the set's size (portable SQL has no test over a list's elements short of
    /// listing them all).
    pub fn sql_list_predicate(&self, column: &str) -> String {
        format!(
            "{LOOKUP_FUNCTION}({column}, '{}')",
            self.name.replace('\'', "''")
        )
    }

    /// `lo <= column < hi` for the least string any code of the set starts with and a string
    /// above every one (the greatest code or prefix with its last character raised); `None`
    /// for an empty set. A superset of the set's codes: the lookup decides.
    fn range(&self, column: &str) -> Option<String> {
        let (lo, hi) = self.bounds()?;
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        Some(match hi {
            Some(hi) => format!(
                "{column} >= {} AND {column} < {}",
                literal(&lo),
                literal(&hi)
            ),
            None => format!("{column} >= {}", literal(&lo)),
        })
    }

    /// The range of [`Self::range`]: its least string, and the string above every one (none
    /// when a code is past ASCII); `None` for an empty set.
    pub(crate) fn bounds(&self) -> Option<(String, Option<String>)> {
        let all = || self.codes.iter().chain(&self.prefixes);
        let lo = all().min()?.clone();
        let hi = all().map(|c| raised(c)).collect::<Option<Vec<String>>>();
        Some((lo, hi.and_then(|h| h.into_iter().max())))
    }

    fn lookup(&self, column: &str) -> String {
        if self.codes.len() + self.prefixes.len() > IN_LIST_MAX {
            return format!(
                "{LOOKUP_FUNCTION}({column}, '{}')",
                self.name.replace('\'', "''")
            );
        }
        let quote = |v: &Vec<&String>| {
            v.iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.codes.is_empty() {
            parts.push(format!(
                "{column} IN ({})",
                quote(&self.codes.iter().collect())
            ));
        }
        let mut by_len: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
        for p in &self.prefixes {
            by_len.entry(p.len()).or_default().push(p);
        }
        for (len, prefixes) in by_len {
            parts.push(format!("left({column}, {len}) IN ({})", quote(&prefixes)));
        }
        match parts.len() {
            0 => "FALSE".to_string(),
            1 => parts.remove(0),
            _ => format!("({})", parts.join(" OR ")),
        }
    }
}

/// `s` with its last character raised by one: every string that starts with `s` sorts below it.
/// `None` past ASCII (codes are ASCII; a bound is then left out, never wrong).
fn raised(s: &str) -> Option<String> {
    let last = *s.as_bytes().last()?;
    if last >= 0x7F {
        return None;
    }
    let mut out = s[..s.len() - 1].to_string();
    out.push(char::from(last + 1));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_codes_make_one_predicate() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            Path::new("v.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F20*\nmh,ICD10CM,F329\nmh,ICD10CM,F3*\n",
        )
        .unwrap();
        assert_eq!(
            sets.get("mh").unwrap().sql_predicate("dx"),
            "(dx >= 'F20' AND dx < 'F4' AND (dx IN ('F329') OR left(dx, 2) IN ('F3') OR left(dx, 3) IN ('F20')))"
        );
    }

    /// Every string the set holds (a code, or one starting with a prefix) is within the range
    /// that guards its lookup: over every string of up to three characters of an alphabet around
    /// the codes' and the raised bounds'.
    #[test]
    fn the_range_holds_every_code_of_the_set() {
        let alphabet = ['0', '1', '8', '9', ':', 'A', 'F', 'Z', '~', '\u{7f}', 'é'];
        let mut strings = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        strings.sort();
        strings.dedup();
        let cases: [(&[&str], &[&str]); 5] = [
            (&["F1", "F19"], &[]),
            (&["9"], &["F", "1~"]),
            (&[], &["A9", "A"]),
            (&["Z~", "0"], &["Z\u{7f}"]),
            (&["é", "F"], &["8"]),
        ];
        for (codes, prefixes) in cases {
            let set = ValueSet {
                name: "s".into(),
                code_system: "X".into(),
                codes: codes.iter().map(|c| c.to_string()).collect(),
                prefixes: prefixes.iter().map(|c| c.to_string()).collect(),
                defined_at: (PathBuf::new(), 1),
                replaces_illustrative: false,
            };
            let lo = set.codes.iter().chain(&set.prefixes).min().unwrap().clone();
            let hi = set
                .codes
                .iter()
                .chain(&set.prefixes)
                .map(|c| raised(c))
                .collect::<Option<Vec<_>>>()
                .and_then(|h| h.into_iter().max());
            for s in &strings {
                let held = set.codes.contains(s) || set.prefixes.iter().any(|p| s.starts_with(p));
                let within = *s >= lo && hi.as_ref().is_none_or(|h| s < h);
                assert!(
                    !held || within,
                    "{s:?} in {codes:?} {prefixes:?} outside [{lo:?}, {hi:?})"
                );
            }
            assert!(set.sql_predicate("x").starts_with(&format!("(x >= '{lo}'")));
        }
    }

    #[test]
    fn a_licensed_file_replaces_the_illustrative_set_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("illustrative.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F20*\ned,UBREV,0450\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("hedis-2025.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F200\nmh,ICD10CM,F201\n",
        )
        .unwrap();
        let sets = ValueSets::load_dir(dir.path()).unwrap();
        let mh = sets.get("mh").unwrap();
        assert_eq!((mh.codes.len(), mh.prefixes.len()), (2, 0));
        assert_eq!(sets.get("ed").unwrap().codes, vec!["0450"]);
        // Two licensed files may not both define a set.
        std::fs::write(
            dir.path().join("other.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F209\n",
        )
        .unwrap();
        let e = ValueSets::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("already defined"), "{e}");
    }

    #[test]
    fn a_set_in_two_files_is_refused() {
        let mut sets = ValueSets::default();
        sets.add_csv(Path::new("a.csv"), "value_set,code_system,code\nx,CPT,1\n")
            .unwrap();
        let e = sets
            .add_csv(Path::new("b.csv"), "value_set,code_system,code\nx,CPT,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b.csv:2:1") && e.contains("already defined in a.csv"),
            "{e}"
        );
    }
}
