//! The built-in library: the shipped measures, building blocks, value sets, quality policy,
//! import mappings and demo data, compiled into the binary (`build.rs`), so that hhq works from
//! any directory. Used where nothing else names a directory ([`crate::project`]): it is written
//! once, on first use, to a cache directory named by its content hash, so every loader reads
//! ordinary files and every error names a file a person can open. With `library = "extend"`
//! ([`crate::project`]), a directory of one's own is laid over it ([`overlay`]).

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

/// Where hhq keeps what it writes once and reads again (the built-in library, the run cache):
/// `$HHQ_CACHE_DIR`, else `$XDG_CACHE_HOME/hhq`, else `~/.cache/hhq`, else the temporary
/// directory's `hhq-cache`.
pub fn cache_base() -> PathBuf {
    std::env::var_os("HHQ_CACHE_DIR")
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
        .unwrap_or_else(|| std::env::temp_dir().join("hhq-cache"))
}

/// Where the built-in library is written: [`cache_base`], one subdirectory per version and
/// content hash.
pub fn cache_root() -> PathBuf {
    cache_base().join(format!(
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

/// Fill the empty directory `into` with `part` of the built-in library and, over it, the files
/// of `user` (a file at the same relative path replaces the built-in one; others are added):
/// symbolic links to each file, so that every loader reads the layered library as one
/// directory and, resolving the links ([`resolved`]), names the file a person wrote. Names
/// starting with `.` are passed over.
pub fn overlay(part: Part, user: &Path, into: &Path) -> Result<()> {
    let given = user;
    let user = std::path::absolute(user).map_err(|e| Error::io(user, e))?;
    if !user.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no such directory to lay over the built-in {}",
            user.display(),
            part.dir()
        )));
    }
    link_tree(&dir(part)?, into)?;
    link_tree(&user, into)?;
    let layers = into.join(LAYERS);
    std::fs::write(
        &layers,
        format!("{} over the built-in {}", given.display(), part.dir()),
    )
    .map_err(|e| Error::io(&layers, e))
}

/// The file of an [`overlay`] saying what it lays over what.
const LAYERS: &str = ".hhq-layers";

/// A library directory as a person named it: for an [`overlay`], their directory over the
/// built-in one (`mine over the built-in measures`), not the overlay's temporary path, so
/// manifests and messages stay the same from run to run.
pub fn shown(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LAYERS)).unwrap_or_else(|_| dir.display().to_string())
}

fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        let existing = std::fs::symlink_metadata(&target).ok();
        if meta.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                return Err(Error::Usage(format!(
                    "{} is a directory where the built-in library has a file",
                    path.display()
                )));
            }
            link_tree(&path, &target)?;
        } else {
            match existing {
                Some(m) if m.is_dir() => {
                    return Err(Error::Usage(format!(
                        "{} is a file where the built-in library has a directory",
                        path.display()
                    )));
                }
                Some(_) => std::fs::remove_file(&target).map_err(|e| Error::io(&target, e))?,
                None => {}
            }
            std::os::unix::fs::symlink(resolved(path.clone()), &target)
                .map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

/// The file a library entry stands for: the target of a link an [`overlay`] made, else the
/// path itself. Loaders name files by it, so messages and manifests name the file a person
/// wrote, not the overlay's link.
pub fn resolved(path: PathBuf) -> PathBuf {
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::read_link(&path).unwrap_or(path),
        _ => path,
    }
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
