//! The settings a team shares, and where each comes from: an optional project file (`hhq.toml`,
//! found in the working directory or the nearest directory above it), `HHQ_*` environment
//! variables over it, and, for the library and the data, the built-in copies
//! ([`crate::library`]) when nothing names a directory. Command-line options override them all.
//!
//! ```toml
//! # hhq.toml: paths are relative to this file
//! data = "extracts/2025q4"
//! measures = "measures"              # default: the built-in library
//! queries = "queries"
//! library = "extend"                 # lay measures/ and queries/ over the built-in library
//!                                    # (default "replace": they are the whole library)
//! programme = "KanCare Health Homes"
//! state = "Kansas"
//! quality_policy = "policy.yaml"     # default: <measures>/quality/policy.yaml
//! targets = "targets.csv"
//! risk_weights = "pcr-weights.csv"
//! memory_limit = "4G"
//! cache_size = "8G"                  # the run cache's bound on disk; "0" turns it off
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::library::{self, Part};

/// The project file's name.
pub const FILE: &str = "hhq.toml";

/// The project file's keys; each is also `HHQ_<KEY>` in upper case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    data: Option<PathBuf>,
    measures: Option<PathBuf>,
    queries: Option<PathBuf>,
    library: Option<Library>,
    programme: Option<String>,
    state: Option<String>,
    quality_policy: Option<PathBuf>,
    targets: Option<PathBuf>,
    risk_weights: Option<PathBuf>,
    memory_limit: Option<String>,
    cache_size: Option<String>,
}

/// How a measures or queries directory of one's own stands to the built-in library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    /// The directory is the whole library (the default).
    Replace,
    /// The directory lies over the built-in library: its files are added, and one at the path
    /// of a built-in file replaces it ([`crate::library::overlay`]).
    Extend,
}

impl Library {
    fn name(self) -> &'static str {
        match self {
            Library::Replace => "replace",
            Library::Extend => "extend",
        }
    }
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The project file (its path).
    File(PathBuf),
    /// An environment variable (its name).
    Env(&'static str),
    /// The built-in library or demo data.
    BuiltIn,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(name) => write!(f, "${name}"),
            Source::BuiltIn => f.write_str("built in"),
        }
    }
}

/// One setting: the command-line option it gives the default of, its value, and its source.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The option's id (`data`, `measures`, `quality_policy`, …): `--data`, `--quality-policy`.
    pub key: &'static str,
    pub value: String,
    pub source: Source,
}

/// The settings in force: the project file found (if any) and each setting given by it, by the
/// environment or by the built-in library.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub file: Option<PathBuf>,
    pub settings: Vec<Setting>,
}

/// The keys in the order they are listed, with the environment variable of each.
const KEYS: [(&str, &str); 11] = [
    ("data", "HHQ_DATA"),
    ("measures", "HHQ_MEASURES"),
    ("queries", "HHQ_QUERIES"),
    ("library", "HHQ_LIBRARY"),
    ("programme", "HHQ_PROGRAMME"),
    ("state", "HHQ_STATE"),
    ("quality_policy", "HHQ_QUALITY_POLICY"),
    ("targets", "HHQ_TARGETS"),
    ("risk_weights", "HHQ_RISK_WEIGHTS"),
    ("memory_limit", "HHQ_MEMORY_LIMIT"),
    ("cache_size", "HHQ_CACHE_SIZE"),
];

impl Settings {
    /// `hhq config`: the project file, then each setting with its value and where it comes
    /// from.
    pub fn text(&self) -> String {
        let mut out = match &self.file {
            Some(f) => format!("project file: {}\n", f.display()),
            None => {
                format!("project file: none ({FILE} not found here or above; HHQ_PROJECT unset)\n")
            }
        };
        let width = self.settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
        for s in &self.settings {
            out.push_str(&format!("{:width$}  {}  ({})\n", s.key, s.value, s.source));
        }
        out
    }

    /// The settings for a command run in `cwd`: `$HHQ_PROJECT` (a project file's path; empty:
    /// none) or the nearest `hhq.toml` at or above `cwd`, the `HHQ_*` variables over it, and the
    /// built-in library and demo data for `measures`, `queries` and `data` when neither gives
    /// them (written to the cache only then).
    pub fn find(cwd: &Path) -> Result<Settings> {
        let file = match std::env::var_os("HHQ_PROJECT") {
            Some(p) if p.is_empty() => None,
            Some(p) => {
                let p = cwd.join(p);
                if !p.is_file() {
                    return Err(Error::Usage(format!(
                        "HHQ_PROJECT={}: no such file",
                        p.display()
                    )));
                }
                Some(p)
            }
            None => cwd.ancestors().map(|d| d.join(FILE)).find(|p| p.is_file()),
        };
        let parsed = match &file {
            Some(path) => read(path)?,
            None => ProjectFile::default(),
        };
        // Paths relative to the file; as written when the file is in the working directory (so
        // messages and manifests name `measures/…`, not where the checkout happens to be).
        let base = file
            .as_deref()
            .and_then(Path::parent)
            .filter(|dir| *dir != cwd)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p).display().to_string());
        let from_file = |key: &str| -> Option<String> {
            match key {
                "data" => path(&parsed.data),
                "measures" => path(&parsed.measures),
                "queries" => path(&parsed.queries),
                "library" => parsed.library.map(|l| l.name().to_string()),
                "programme" => parsed.programme.clone(),
                "state" => parsed.state.clone(),
                "quality_policy" => path(&parsed.quality_policy),
                "targets" => path(&parsed.targets),
                "risk_weights" => path(&parsed.risk_weights),
                "memory_limit" => parsed.memory_limit.clone(),
                "cache_size" => parsed.cache_size.clone(),
                _ => None,
            }
        };
        let mut settings = Vec::new();
        for (key, var) in KEYS {
            let env = std::env::var(var).ok().filter(|v| !v.is_empty());
            if key == "library"
                && let Some(v) = &env
                && !matches!(v.as_str(), "extend" | "replace")
            {
                return Err(Error::Usage(format!(
                    "{var}={v}: expected `extend` or `replace`"
                )));
            }
            let found = match (env, from_file(key)) {
                (Some(v), _) => Some((v, Source::Env(var))),
                (None, Some(v)) => Some((v, Source::File(file.clone().unwrap_or_default()))),
                (None, None) => None,
            };
            let found = match (found, key) {
                (None, "data") => Some((dir_of(Part::Demo)?, Source::BuiltIn)),
                (None, "measures") => Some((dir_of(Part::Measures)?, Source::BuiltIn)),
                (None, "queries") => Some((dir_of(Part::Queries)?, Source::BuiltIn)),
                (found, _) => found,
            };
            if let Some((value, source)) = found {
                settings.push(Setting { key, value, source });
            }
        }
        Ok(Settings { file, settings })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// Whether the measures and queries directories lie over the built-in library.
    pub fn extends_library(&self) -> bool {
        self.get("library").is_some_and(|s| s.value == "extend")
    }

    /// Whether the data are the built-in demo data.
    pub fn demo_data(&self) -> bool {
        self.get("data")
            .is_some_and(|s| s.source == Source::BuiltIn)
    }
}

fn dir_of(part: Part) -> Result<String> {
    Ok(library::dir(part)?.display().to_string())
}

/// The project file, its unknown keys and wrong types errors at their line and column.
fn read(path: &Path) -> Result<ProjectFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_column(&text, s.start));
        Error::Definition {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
            hint: Some(format!(
                "the keys of {FILE} are {}",
                KEYS.map(|(k, _)| k).join(", ")
            )),
        }
    })
}

/// The 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_an_error_at_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "data = \"x\"\n\nprogram = \"Y\"\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("hhq.toml:3:1: unknown field `program`"), "{e}");
        assert!(e.contains("programme"), "{e}");
        std::fs::write(&path, "data = 3\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("hhq.toml:1:8:"), "{e}");
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_column("ab\ncé", 4), (2, 2));
    }
}
