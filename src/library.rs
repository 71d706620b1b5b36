//! The built-in library: the shipped measures, building blocks, value sets, quality policy,
//! import mappings and demo data, compiled into the binary (`build.rs`), so that hhq works from
//! any directory. Used where nothing else names a directory ([`crate::project`]): it is written
//! once, on first use, to a cache directory named by its content hash, so every loader reads
//! ordinary files and every error names a file a person can open.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod files {
    include!(concat!(env!("OUT_DIR"), "/library.rs"));
}

/// A part of the built-in library, a directory of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `measures/`: measure YAML, value sets, decks, cohorts, the quality policy.
    Measures,
    /// `queries/`: the building blocks.
    Queries,
    /// `mappings/`: `hhq import`'s shipped mappings.
    Mappings,
    /// `testdata/`: the demo data (`hhq synth`'s defaults).
    Demo,
}

impl Part {
    /// The directory's name in the repository and in the cache.
    pub fn dir(self) -> &'static str {
        match self {
            Part::Measures => "measures",
            Part::Queries => "queries",
            Part::Mappings => "mappings",
            Part::Demo => "testdata",
        }
    }
}

/// Where the built-in library is written: `$HHQ_CACHE_DIR`, else `$XDG_CACHE_HOME/hhq`, else
/// `~/.cache/hhq`, else the temporary directory's `hhq-cache`; one subdirectory per version and
/// content hash.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("HHQ_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("hhq"))
        })
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache").join("hhq"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("hhq-cache"));
    base.join(format!(
        "library-{}-{}",
        env!("CARGO_PKG_VERSION"),
        files::HASH
    ))
}

/// The directory holding `part` of the built-in library, written to [`cache_root`] on first use
/// (the whole library at once, into a temporary directory renamed into place, so a reader never
/// sees half of it and two processes racing both end with the same files).
pub fn dir(part: Part) -> Result<PathBuf> {
    let root = cache_root();
    if !root.join(COMPLETE).is_file() {
        write_library(&root)?;
    }
    Ok(root.join(part.dir()))
}

/// The file marking a complete copy.
const COMPLETE: &str = ".complete";

fn write_library(root: &Path) -> Result<()> {
    let parent = root.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| cache_error(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".library-")
        .tempdir_in(parent)
        .map_err(|e| cache_error(parent, e))?;
    for (rel, bytes) in files::FILES {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| cache_error(&path, e))?;
    }
    let marker = staging.path().join(COMPLETE);
    std::fs::write(&marker, files::HASH).map_err(|e| cache_error(&marker, e))?;
    let staged = staging.keep();
    match std::fs::rename(&staged, root) {
        Ok(()) => Ok(()),
        // Another process put a complete copy there first: ours is not needed.
        Err(_) if root.join(COMPLETE).is_file() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            Err(cache_error(root, e))
        }
    }
}

fn cache_error(path: &Path, e: std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write hhq's built-in library to {}: {e} (set HHQ_CACHE_DIR to a writable directory)",
        path.display()
    ))
}

/// Write `parts` of the built-in library under `out` (`out/measures/…`), each file atomically;
/// refuses to overwrite a file that differs. Returns how many files were written.
pub fn export(parts: &[Part], out: &Path) -> Result<usize> {
    let mut written = 0;
    for (rel, bytes) in files::FILES {
        if !parts
            .iter()
            .any(|p| rel.starts_with(&format!("{}/", p.dir())))
        {
            continue;
        }
        let path = out.join(rel);
        match std::fs::read(&path) {
            Ok(existing) if existing == *bytes => continue,
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{} exists and differs from the built-in library's: not overwritten",
                    path.display()
                )));
            }
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::output::write_atomic(&path, bytes)?;
        written += 1;
    }
    Ok(written)
}

/// The built-in library's files under `part`, as paths relative to the part's directory (for
/// `hhq library` and tests).
pub fn files(part: Part) -> Vec<&'static str> {
    let prefix = format!("{}/", part.dir());
    files::FILES
        .iter()
        .filter_map(|(rel, _)| rel.strip_prefix(prefix.as_str()))
        .collect()
}

/// The bytes of one built-in file, by its path relative to `part`'s directory.
pub fn file(part: Part, rel: &str) -> Option<&'static [u8]> {
    let want = format!("{}/{rel}", part.dir());
    files::FILES
        .iter()
        .find(|(p, _)| *p == want)
        .map(|(_, bytes)| *bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_holds_the_shipped_files_byte_for_byte() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for part in [Part::Measures, Part::Queries, Part::Mappings, Part::Demo] {
            let names = files(part);
            assert!(!names.is_empty(), "{part:?}");
            for rel in names {
                let on_disk = std::fs::read(root.join(part.dir()).join(rel)).unwrap();
                assert_eq!(file(part, rel), Some(on_disk.as_slice()), "{rel}");
            }
        }
        assert!(file(Part::Measures, "fuh-hh.yaml").is_some());
        assert!(file(Part::Demo, "claims.parquet").is_some());
    }
}
