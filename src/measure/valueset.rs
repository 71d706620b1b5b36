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
    /// The OIDs of the licensed value sets it was built from (through the crosswalk).
    pub oids: Vec<String>,
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
    Ok(paths.into_iter().map(crate::library::resolved).collect())
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
        ValueSets::load_dir_spec(dir, crate::measure::Spec::Newest)
    }

    /// As [`Self::load_dir`], for one specification year. A file in the licensed layout
    /// (`Value Set Name`, `Value Set OID`, `Code`, `Code System`, the year: see
    /// [`crate::measure::licensed`]) is read through `crosswalk.csv`: each hhq set the crosswalk
    /// names is built from the licensed codes of the year (the newest year the files hold, by
    /// default), replacing the illustrative set, and must come out non-empty.
    pub fn load_dir_spec(dir: &Path, spec: crate::measure::Spec) -> Result<ValueSets> {
        use crate::measure::licensed;
        let mut paths = files_in(dir)?;
        paths.retain(|p| p.file_name().is_none_or(|n| n != licensed::CROSSWALK));
        let illustrative = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("illustrative"))
        };
        // Licensed files last, so their sets replace the illustrative ones.
        paths.sort_by_key(|p| (!illustrative(p), p.clone()));
        let mut sets = ValueSets::default();
        let mut licensed_codes = Vec::new();
        for p in paths {
            let bytes = super::read_definition(&p, MAX_VALUE_SET_FILE_BYTES)?;
            let text = super::utf8(&p, bytes)?;
            let replacing = !illustrative(&p);
            if replacing && licensed::is_licensed_header(text.lines().next().unwrap_or_default()) {
                licensed_codes.extend(licensed::read(&p, &text)?);
                continue;
            }
            sets.add_csv_replacing(&p, &text, replacing)?;
        }
        if licensed_codes.is_empty() {
            return Ok(sets);
        }
        let year = match spec {
            crate::measure::Spec::Year(y) => y,
            crate::measure::Spec::Newest => {
                licensed_codes.iter().map(|c| c.year).max().expect("some")
            }
        };
        let cw_path = dir.join(licensed::CROSSWALK);
        if !cw_path.is_file() {
            return Err(Error::Definition {
                path: licensed_codes[0].file.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "a licensed value-set file needs {} to say which hhq value set takes which licensed one",
                    cw_path.display()
                ),
                hint: None,
            });
        }
        let cw_text = super::utf8(
            &cw_path,
            super::read_definition(&cw_path, MAX_VALUE_SET_FILE_BYTES)?,
        )?;
        let mappings = licensed::read_crosswalk(&cw_path, &cw_text)?;
        for r in licensed::resolve(&cw_path, &mappings, &licensed_codes, year)? {
            if let Some(prev) = sets.sets.get(&r.name)
                && prev.replaces_illustrative
            {
                return Err(Error::Definition {
                    path: cw_path.clone(),
                    line: r.line,
                    column: 1,
                    message: format!(
                        "value set `{}` is also defined in {}",
                        r.name,
                        prev.defined_at.0.display()
                    ),
                    hint: None,
                });
            }
            let mut codes = r.codes;
            codes.sort();
            codes.dedup();
            sets.sets.insert(
                r.name.clone(),
                ValueSet {
                    name: r.name,
                    code_system: r.code_system,
                    codes,
                    prefixes: Vec::new(),
                    defined_at: (cw_path.clone(), r.line),
                    replaces_illustrative: true,
                    oids: r.oids,
                },
            );
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
/// looked up by [`LOOKUP_FUNCTION`] (see `functions::lookup`), as long `IN` lists plan very slowly.
pub const IN_LIST_MAX: usize = 1_000;

/// The most ranges a set's prefixes are written as (see `ValueSet::prefix_ranges`); more are
/// `left(code, n) IN` lists, as each range is two comparisons of every code the set's own range
/// lets through.
pub const PREFIX_RANGES_MAX: usize = 16;

/// The SQL function that tests membership of a large value set.
pub const LOOKUP_FUNCTION: &str = "hhq_value_set_contains";

impl ValueSet {
    /// A SQL predicate that is true when `column` holds a code of this set: exact codes through
    /// `IN`, prefixes as ranges (`column >= 'F12' AND column < 'F17'`) or, when there are many,
    /// grouped by length through `left(column, n) IN`. A set
    /// larger than [`IN_LIST_MAX`] is a call of [`LOOKUP_FUNCTION`] instead.
    ///
    /// The lookup is guarded by the range the set's codes span (`column >= 'F10' AND column <
    /// 'F1:'`): two comparisons, and DataFusion tests the right side of an `AND` only on the rows
    /// its left side keeps when they are few, so the lookups run on the few codes near the set's
    /// rather than on every diagnosis of the year (a quarter of a claim block's time).
    pub fn sql_predicate(&self, column: &str) -> String {
        let lookup = self.lookup(column);
        // Prefixes that make one range and no other code: the range is the whole test.
        if self.codes.is_empty()
            && self.prefixes.len() <= IN_LIST_MAX
            && self.prefix_ranges().is_some_and(|r| r.len() == 1)
        {
            return lookup;
        }
        match self.range(column) {
            Some(range) if lookup != "FALSE" => format!("({range} AND {lookup})"),
            _ => lookup,
        }
    }

    /// A SQL predicate that is true when `column` holds a code of any of `sets`: the
    /// [`ValueSet::sql_predicate`] of their union, so a value is compared against one range and
    /// one list (or looked up once), not once per set. A union larger than [`IN_LIST_MAX`] is one
    /// [`LOOKUP_FUNCTION`] call naming every set, guarded by the union's range.
    pub fn sql_any_predicate(sets: &[&ValueSet], column: &str) -> String {
        let [first, rest @ ..] = sets else {
            return "FALSE".to_string();
        };
        if rest.is_empty() {
            return first.sql_predicate(column);
        }
        let mut union = ValueSet {
            name: sets
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join("|"),
            code_system: first.code_system.clone(),
            codes: sets.iter().flat_map(|s| s.codes.iter().cloned()).collect(),
            prefixes: sets
                .iter()
                .flat_map(|s| s.prefixes.iter().cloned())
                .collect(),
            defined_at: first.defined_at.clone(),
            replaces_illustrative: false,
            oids: Vec::new(),
        };
        union.codes.sort();
        union.codes.dedup();
        union.prefixes.sort();
        union.prefixes.dedup();
        if union.codes.len() + union.prefixes.len() <= IN_LIST_MAX {
            return union.sql_predicate(column);
        }
        let names: Vec<String> = sets
            .iter()
            .map(|s| format!("'{}'", s.name.replace('\'', "''")))
            .collect();
        let lookup = format!("{LOOKUP_FUNCTION}({column}, {})", names.join(", "));
        match union.range(column) {
            Some(range) => format!("({range} AND {lookup})"),
            None => lookup,
        }
    }

    /// A SQL predicate that is true when any element of the list `column` holds a code of any
    /// of `sets`, false for an empty list, null for a null one: [`LOOKUP_FUNCTION`] over the
    /// list, whatever the sets' sizes (portable SQL has no test over a list's elements short of
    /// listing them all). One call for several sets reads each element once.
    pub fn sql_list_predicate(sets: &[&ValueSet], column: &str) -> String {
        let names: Vec<String> = sets
            .iter()
            .map(|s| format!("'{}'", s.name.replace('\'', "''")))
            .collect();
        format!("{LOOKUP_FUNCTION}({column}, {})", names.join(", "))
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

    /// The set's prefixes as at most [`PREFIX_RANGES_MAX`] ranges `lo <= code < hi` (a
    /// prefix `F12` is `F12 <= code < F13`, and adjacent prefixes join: `F12`..`F16` is one
    /// range); `None` for more, or a prefix past ASCII. Two comparisons of string views, which
    /// compare their inline first bytes, where `left(code, 3) IN (...)` cut a string and
    /// hashed it for every code the set's range let through.
    fn prefix_ranges(&self) -> Option<Vec<(String, String)>> {
        let mut ranges: Vec<(String, String)> = Vec::new();
        let mut spans = self
            .prefixes
            .iter()
            .map(|p| Some((p.clone(), raised(p)?)))
            .collect::<Option<Vec<_>>>()?;
        spans.sort();
        for (lo, hi) in spans {
            match ranges.last_mut() {
                Some(last) if lo <= last.1 => {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                }
                _ => ranges.push((lo, hi)),
            }
        }
        (ranges.len() <= PREFIX_RANGES_MAX
            && ranges
                .iter()
                .all(|(l, h)| !l.contains('\'') && !h.contains('\'')))
        .then_some(ranges)
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
        match self.prefix_ranges() {
            Some(ranges) => {
                for (lo, hi) in ranges {
                    parts.push(format!("({column} >= '{lo}' AND {column} < '{hi}')"));
                }
            }
            None => {
                let mut by_len: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
                for p in &self.prefixes {
                    by_len.entry(p.len()).or_default().push(p);
                }
                for (len, prefixes) in by_len {
                    parts.push(format!("left({column}, {len}) IN ({})", quote(&prefixes)));
                }
            }
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

/// Every string of at most `len` pieces of `alphabet` (an empty piece makes shorter ones), in
/// order, once each: the values around a set's bounds that its tests run over.
#[cfg(test)]
pub(crate) fn strings_over(alphabet: &[&str], len: usize) -> Vec<String> {
    let mut strings = vec![String::new()];
    for _ in 0..len {
        let longer: Vec<String> = strings
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        strings.extend(longer);
        strings.sort();
        strings.dedup();
    }
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test set of these codes and prefixes.
    fn set_of(codes: &[&str], prefixes: &[&str]) -> ValueSet {
        ValueSet {
            name: "s".into(),
            code_system: "X".into(),
            codes: codes.iter().map(|c| c.to_string()).collect(),
            prefixes: prefixes.iter().map(|c| c.to_string()).collect(),
            defined_at: (PathBuf::new(), 1),
            replaces_illustrative: false,
            oids: Vec::new(),
        }
    }

    /// Whether the set holds `s`: one of its codes, or a string starting with one of its prefixes.
    fn holds(set: &ValueSet, s: &str) -> bool {
        set.codes.iter().any(|c| c == s) || set.prefixes.iter().any(|p| s.starts_with(p.as_str()))
    }

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
            "(dx >= 'F20' AND dx < 'F4' AND (dx IN ('F329') OR (dx >= 'F20' AND dx < 'F21') OR (dx >= 'F3' AND dx < 'F4')))"
        );
    }

    /// Adjacent prefixes make one range, and one range with no code is the whole test; more
    /// ranges than `PREFIX_RANGES_MAX` are `left(...) IN` lists.
    #[test]
    fn prefixes_as_ranges_joined_when_adjacent() {
        let mut sets = ValueSets::default();
        let mut csv = String::from(
            "value_set,code_system,code\nsud,ICD10CM,F12*\nsud,ICD10CM,F13*\nsud,ICD10CM,F14*\n\
             sud,ICD10CM,F16*\nalc,ICD10CM,F10*\nalc,ICD10CM,F1020*\n",
        );
        for i in 0..=PREFIX_RANGES_MAX {
            csv.push_str(&format!("many,ICD10CM,G{:02}*\n", 2 * i));
        }
        sets.add_csv(Path::new("v.csv"), &csv).unwrap();
        assert_eq!(
            sets.get("sud").unwrap().sql_predicate("dx"),
            "(dx >= 'F12' AND dx < 'F17' AND ((dx >= 'F12' AND dx < 'F15') OR (dx >= 'F16' AND dx < 'F17')))"
        );
        assert_eq!(
            sets.get("alc").unwrap().sql_predicate("dx"),
            "(dx >= 'F10' AND dx < 'F11')"
        );
        let many = sets.get("many").unwrap().sql_predicate("dx");
        assert!(many.contains("left(dx, 3) IN ('G00', 'G02'"), "{many}");
    }

    /// The predicate as DataFusion runs it holds exactly the set's codes and the strings that
    /// start with its prefixes, over every string of up to three characters of an alphabet
    /// around the bounds, for sets written as ranges, as `IN` lists and as both.
    #[tokio::test]
    async fn the_predicate_holds_exactly_the_set() {
        use datafusion::arrow::array::{AsArray, RecordBatch, StringViewArray};
        use std::sync::Arc;
        let strings = strings_over(&["", "0", "1", "2", "9", ":", "F", "G", "~", "\u{7f}"], 3);
        let cases: [(&[&str], &[&str]); 6] = [
            (&[], &["F1", "F2"]),
            (&["F0"], &["F1", "F19", "F9"]),
            (&[], &["1", "10", "2", "29", "9~"]),
            (&["~"], &["G\u{7f}", "G0"]),
            (
                &[],
                &[
                    "00", "02", "04", "06", "08", "10", "12", "14", "16", "18", "20", "22", "24",
                    "26", "28", "30", "32", "34",
                ],
            ),
            (&["F", "G1"], &[]),
        ];
        let ctx = datafusion::prelude::SessionContext::new();
        let values = StringViewArray::from_iter_values(strings.iter());
        let batch = RecordBatch::try_from_iter([("x", Arc::new(values) as _)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
        // Any of two sets: every pair of the cases, as one predicate over their union.
        for (i, (c1, p1)) in cases.iter().enumerate() {
            for (c2, p2) in &cases[i + 1..] {
                let (a, b) = (set_of(c1, p1), set_of(c2, p2));
                let sql = format!(
                    "SELECT x, coalesce({}, false) FROM t ORDER BY x",
                    ValueSet::sql_any_predicate(&[&a, &b], "x")
                );
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let mut rows = 0;
                for batch in &batches {
                    let (xs, hits) = (
                        batch.column(0).as_string_view(),
                        batch.column(1).as_boolean(),
                    );
                    for r in 0..batch.num_rows() {
                        let s = xs.value(r);
                        assert_eq!(hits.value(r), holds(&a, s) || holds(&b, s), "{s:?}: {sql}");
                        rows += 1;
                    }
                }
                assert_eq!(rows, strings.len());
            }
        }
        for (codes, prefixes) in cases {
            let set = set_of(codes, prefixes);
            let sql = format!(
                "SELECT x, coalesce({}, false) FROM t ORDER BY x",
                set.sql_predicate("x")
            );
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            for b in &batches {
                let (xs, hits) = (b.column(0).as_string_view(), b.column(1).as_boolean());
                for i in 0..b.num_rows() {
                    let s = xs.value(i);
                    assert_eq!(
                        hits.value(i),
                        holds(&set, s),
                        "{s:?} in {codes:?} {prefixes:?}: {sql}"
                    );
                }
            }
        }
    }

    /// Every string the set holds (a code, or one starting with a prefix) is within the range
    /// that guards its lookup: over every string of up to three characters of an alphabet around
    /// the codes' and the raised bounds'.
    #[test]
    fn the_range_holds_every_code_of_the_set() {
        let strings = strings_over(
            &["0", "1", "8", "9", ":", "A", "F", "Z", "~", "\u{7f}", "é"],
            3,
        );
        let cases: [(&[&str], &[&str]); 5] = [
            (&["F1", "F19"], &[]),
            (&["9"], &["F", "1~"]),
            (&[], &["A9", "A"]),
            (&["Z~", "0"], &["Z\u{7f}"]),
            (&["é", "F"], &["8"]),
        ];
        for (codes, prefixes) in cases {
            let set = set_of(codes, prefixes);
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
    fn licensed_files_build_the_crosswalk_sets_for_the_year() {
        use crate::measure::Spec;
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w(
            "illustrative.csv",
            "value_set,code_system,code\nmh,ICD10CM,F20*\ned_revenue,UBREV,0450\nown,POS,52\n",
        );
        w(
            "hedis-my2025-vsd.csv",
            "Value Set Name,Value Set OID,Value Set Version,Code,Definition,Code System\n\
             Mental Illness,2.16.1,2025-03-31,F20.0,x,ICD10CM\n\
             Mental Illness,2.16.1,2025-03-31,F31.9,x,ICD10CM\n\
             ED,2.16.2,2025-03-31,0451,x,UBREV\n\
             ED,2.16.2,2025-03-31,99283,x,CPT\n",
        );
        // Without the crosswalk the licensed file cannot be read into hhq's sets.
        let e = ValueSets::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("crosswalk.csv"), "{e}");
        w(
            "crosswalk.csv",
            "value_set,licensed_value_sets,code_systems\nmh,Mental Illness,ICD10CM\ned_revenue,ED,UBREV\n",
        );
        let sets = ValueSets::load_dir(dir.path()).unwrap();
        let mh = sets.get("mh").unwrap();
        assert_eq!(mh.codes, vec!["F200", "F319"]);
        assert!(mh.prefixes.is_empty() && mh.replaces_illustrative);
        assert_eq!(mh.oids, vec!["2.16.1"]);
        assert_eq!(sets.get("ed_revenue").unwrap().codes, vec!["0451"]);
        // A set the crosswalk does not name stays illustrative.
        assert!(!sets.get("own").unwrap().replaces_illustrative);
        // The files hold 2025 only: a MY2024 run has no codes, and the error names the line.
        let e = ValueSets::load_dir_spec(dir.path(), Spec::Year(2024))
            .unwrap_err()
            .to_string();
        assert!(e.contains("crosswalk.csv:2") && e.contains("MY2024"), "{e}");
        // A crosswalk name the licensed files lack is an error, not an empty set.
        w(
            "crosswalk.csv",
            "value_set,licensed_value_sets,code_systems\nmh,Mental Illnes,ICD10CM\n",
        );
        let e = ValueSets::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`Mental Illnes`"), "{e}");
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
