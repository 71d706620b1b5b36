//! Writing outputs so that a failed or killed run never leaves a half-written file or directory.
//!
//! A file is written to a temporary file beside it and renamed into place ([`write_atomic`]). An
//! output directory (`hhq run`'s, a report's) is written whole ([`Staged`]): every file goes into
//! a hidden staging directory beside it, the manifest last, and the staging directory then takes
//! the old one's place in one step. Until that step the previous outputs are untouched; after it
//! no file of an earlier run lingers.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a command tells the person who ran it once its work is done: lines for standard error
/// before its report (warnings), the report for standard output, lines for standard error after
/// it (what was written, timings), and the failure to exit with when the work found one (a
/// check with problems, a deck case that failed). Each command's result makes its own, beside
/// what it prints; the binary only prints it.
#[derive(Debug, Default)]
pub struct Told {
    pub before: Vec<String>,
    pub out: String,
    pub after: Vec<String>,
    pub failed: Option<Error>,
}

impl Told {
    /// Only a report for standard output.
    pub fn out(out: impl Into<String>) -> Told {
        Told {
            out: out.into(),
            ..Told::default()
        }
    }

    /// Print it: the lines before on standard error, the report on standard output, the lines
    /// after on standard error; the failure, if any, is the error.
    pub fn print(self) -> Result<()> {
        for line in &self.before {
            eprintln!("{line}");
        }
        if !self.out.is_empty() {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match stdout
                .write_all(self.out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(Error::io("standard output", e));
                }
                _ => {}
            }
        }
        for line in &self.after {
            eprintln!("{line}");
        }
        self.failed.map_or(Ok(()), Err)
    }
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hhq-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    // tempfile creates 0600 files; outputs are ordinary files readable like any other.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// An output directory being written. Files go into a staging directory beside `out` (hidden:
/// `.<name>.hhq-XXXXXX`); [`Staged::publish`] writes the manifest and swaps the staging directory
/// in. Dropped unpublished (an error), the staging directory is removed; left behind by a killed
/// process, it is removed by the next [`Staged::begin`] for the same `out`.
///
/// `out` belongs to the command that writes it: everything in it is replaced, except
/// subdirectories holding their own `manifest.json` (a report written inside `hhq run`'s `out/`),
/// which are carried over as they are.
pub struct Staged {
    out: PathBuf,
    dir: tempfile::TempDir,
    /// A lock on the staging directory while this process writes it, so that another run's
    /// clean-up of leftovers leaves it alone.
    _lock: Option<File>,
    written: Vec<PathBuf>,
}

impl Staged {
    /// Start writing `out` for `hhq <command>` (`run`, `report`). Refuses, before anything is
    /// written, a directory that is not empty and holds no manifest of that command.
    pub fn begin(out: &Path, command: &str) -> Result<Staged> {
        check_replaceable(out, command)?;
        let (parent, prefix) = staging_prefix(out)?;
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        clean_leftovers(out, &parent, &prefix);
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let lock = File::open(dir.path()).ok().filter(|f| f.try_lock().is_ok());
        Ok(Staged {
            out: out.to_path_buf(),
            dir,
            _lock: lock,
            written: Vec::new(),
        })
    }

    /// Stage one file, at `rel` relative to the output directory.
    pub fn write(&mut self, rel: impl Into<PathBuf>, bytes: &[u8]) -> Result<()> {
        let rel = rel.into();
        write_atomic(&self.dir.path().join(&rel), bytes)?;
        self.written.push(rel);
        Ok(())
    }

    /// Stage a file the caller writes itself (a stream too large to hold), at `rel` relative
    /// to the output directory: the path to write it to.
    pub fn file(&mut self, rel: impl Into<PathBuf>) -> Result<PathBuf> {
        let rel = rel.into();
        let path = self.dir.path().join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        self.written.push(rel);
        Ok(path)
    }

    /// The staging directory, for scratch files that must be gone before [`Staged::publish`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Write `manifest.json` (its text made from the staging directory and the relative paths
    /// staged, so it can hash them), then replace `out` with the staging directory. Returns the
    /// relative paths written, the manifest last.
    pub fn publish(
        self,
        manifest: impl FnOnce(&Path, &[PathBuf]) -> Result<String>,
    ) -> Result<Vec<PathBuf>> {
        let Staged {
            out,
            dir,
            _lock,
            mut written,
        } = self;
        let staged = dir.path().to_path_buf();
        let text = manifest(&staged, &written)?;
        write_atomic(&staged.join("manifest.json"), text.as_bytes())?;
        written.push("manifest.json".into());
        #[cfg(unix)]
        {
            // tempdir makes 0700 directories; outputs are read like any other directory.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&staged, e))?;
        }
        if out.is_dir() {
            carry_over(&out, &staged)?;
        }
        sync_dir(&staged);
        let parent = staged.parent().unwrap_or(Path::new(".")).to_path_buf();
        swap(&staged, &out, &parent)?;
        sync_dir(&parent);
        // After an exchange the staging path holds the previous outputs: dropping `dir` removes
        // them. After a plain rename it is gone, and the drop finds nothing.
        drop(dir);
        Ok(written)
    }
}

/// Refuse to replace `out` unless it is missing, an empty directory, or holds a manifest written
/// by `hhq <command>`: a mistyped `--out` must not wipe someone's directory.
pub fn check_replaceable(out: &Path, command: &str) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(out).is_ok_and(|mut e| e.next().is_none());
    let ours = std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["command"].as_str().map(str::to_string))
        .is_some_and(|c| c == command || c.starts_with(&format!("{command} ")));
    // Only other hhq outputs in it (a report or validation nested in `out/`, which a swap
    // keeps): nothing would be lost either.
    let only_nested = std::fs::read_dir(out).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|e| e.path().is_dir() && e.path().join("manifest.json").is_file())
    });
    if out.is_dir() && (empty || ours || only_nested) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} exists and is not an hhq {command} directory (no manifest.json of `hhq {command}` in \
         it); hhq replaces its output directory whole, so choose another --out",
        out.display()
    )))
}

/// The directory the staging directory goes in (`out`'s parent, so the swap is a rename on one
/// file system) and its name's prefix.
fn staging_prefix(out: &Path) -> Result<(PathBuf, String)> {
    let name = out.file_name().ok_or_else(|| {
        Error::Usage(format!(
            "--out {} does not name a directory hhq can replace; give one, e.g. --out out",
            out.display()
        ))
    })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, format!(".{}.hhq-", name.to_string_lossy())))
}

/// Remove staging directories a killed run left beside `out`, skipping any a live run holds
/// locked. Had a run been killed between the two renames of [`swap`]'s fallback, `out` is missing
/// and its previous contents wait in a leftover: they are put back first.
fn clean_leftovers(out: &Path, parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        // tempfile's random suffix: six alphanumerics.
        if rest.len() != 6 || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let path = entry.path();
        let Ok(dir) = File::open(&path) else { continue };
        if dir.try_lock().is_err() {
            continue;
        }
        let previous = path.join(PREVIOUS);
        if !out.exists() && previous.is_dir() {
            let _ = std::fs::rename(&previous, out);
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Where the fallback swap puts the previous outputs, inside a staging-named directory.
const PREVIOUS: &str = "previous";

/// Put `staged` in `out`'s place. On Linux an existing `out` is exchanged with it in one step
/// (`renameat2(RENAME_EXCHANGE)`), so `out` is never missing; elsewhere, or where the file
/// system cannot exchange, the old directory is renamed aside first.
fn swap(staged: &Path, out: &Path, parent: &Path) -> Result<()> {
    if !out.exists() {
        return std::fs::rename(staged, out).map_err(|e| Error::io(out, e));
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, staged, CWD, out, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(Error::io(out, e.into())),
        }
    }
    let (_, prefix) = staging_prefix(out)?;
    let old = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let aside = old.path().join(PREVIOUS);
    std::fs::rename(out, &aside).map_err(|e| Error::io(out, e))?;
    if let Err(e) = std::fs::rename(staged, out) {
        // Put the previous outputs back before saying so.
        let _ = std::fs::rename(&aside, out);
        return Err(Error::io(out, e));
    }
    Ok(())
}

/// Link into the staging directory the subdirectories of `out` that another command wrote (they
/// hold their own manifest), so replacing `out` keeps them. Hard links cost no copy and leave the
/// originals in place until the swap; a copy where links are not possible.
fn carry_over(out: &Path, staged: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let target = staged.join(entry.file_name());
        if !hidden && path.join("manifest.json").is_file() && !target.exists() {
            link_tree(&path, &target)?;
        }
    }
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| Error::io(&src, e))?.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// Make a directory's entries durable; best effort (not every platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What a path that is not a regular file is, in words, for an error: a key file or an extract
/// that is `/dev/zero`, a FIFO or a directory.
pub fn file_kind(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        } else if kind.is_char_device() {
            return "a character device";
        } else if kind.is_block_device() {
            return "a block device";
        } else if kind.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// A CSV file as bytes. Every cell as text a spreadsheet must not run
/// ([`crate::escape::csv_text`]): for tables whose figures are never negative (counts,
/// dates, the published `DS`); a negative number would read `'-1`.
pub fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>> {
    use crate::escape::csv_text;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Usage(format!("writing CSV: {e}"));
    w.write_record(header.iter().map(|h| csv_text(h).into_owned()))
        .map_err(err)?;
    for r in rows {
        w.write_record(r.iter().map(|c| csv_text(c).into_owned()))
            .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| Error::Usage(format!("writing CSV: {e}")))
}

/// A file name stem for an id from the data: the id itself when it is 1 to 64 ASCII letters,
/// digits, `-` or `_`; otherwise those characters kept, the rest `_`, and a digest of the id so
/// that two ids never share a file (`HHP/1` and `HHP_1`).
pub fn safe_file_stem(id: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !id.is_empty() && id.len() <= 64 && id.chars().all(plain) {
        return id.to_string();
    }
    let kept: String = id
        .chars()
        .take(48)
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    format!("{kept}-{}", &crate::digest::sha256(id.as_bytes())[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(command: &str) -> impl FnOnce(&Path, &[PathBuf]) -> Result<String> {
        move |_, _| Ok(format!("{{\"command\": \"{command}\"}}"))
    }

    #[test]
    fn a_directory_is_replaced_whole_and_nested_outputs_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut s = Staged::begin(&out, "run").unwrap();
        s.write("a.csv", b"1").unwrap();
        s.write("detail/X.csv", b"x").unwrap();
        s.publish(manifest("run")).unwrap();
        // A report written inside the run's directory.
        std::fs::create_dir(out.join("report-state")).unwrap();
        std::fs::write(
            out.join("report-state/manifest.json"),
            "{\"command\": \"report state\"}",
        )
        .unwrap();

        let mut s = Staged::begin(&out, "run").unwrap();
        s.write("a.csv", b"2").unwrap();
        let names = s.publish(manifest("run")).unwrap();
        assert_eq!(names, [PathBuf::from("a.csv"), "manifest.json".into()]);
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"2");
        assert!(!out.join("detail").exists(), "a stale file lingers");
        assert!(out.join("report-state/manifest.json").is_file());
        // Nothing but the output is left beside it.
        let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(beside.len(), 1);
    }

    #[test]
    fn a_foreign_directory_is_refused_and_an_unpublished_one_leaves_no_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("mine");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("notes.txt"), "keep").unwrap();
        let e = Staged::begin(&out, "run").err().unwrap().to_string();
        assert!(e.contains("is not an hhq run directory"), "{e}");
        // A report's directory is not a run's.
        std::fs::remove_file(out.join("notes.txt")).unwrap();
        std::fs::write(out.join("manifest.json"), "{\"command\": \"report state\"}").unwrap();
        assert!(Staged::begin(&out, "run").is_err());
        assert!(Staged::begin(&out, "report").is_ok());
        assert!(Staged::begin(Path::new("/"), "run").is_err());

        let mut s = Staged::begin(&out, "report").unwrap();
        s.write("x", b"x").unwrap();
        drop(s);
        let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(beside.len(), 1, "the staging directory was not removed");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_cleaned_but_a_live_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        // A killed run: its staging directory stays, unlocked.
        let Staged { dir, _lock, .. } = Staged::begin(&out, "run").unwrap();
        let dead_path = dir.keep();
        drop(_lock);
        // A killed fallback swap: `out` renamed aside, the new one not yet in.
        let aside = tmp.path().join(".out.hhq-ABC123");
        std::fs::create_dir_all(aside.join(PREVIOUS)).unwrap();
        std::fs::write(aside.join(PREVIOUS).join("a.csv"), "old").unwrap();
        std::fs::write(
            aside.join(PREVIOUS).join("manifest.json"),
            "{\"command\": \"run\"}",
        )
        .unwrap();
        let live = Staged::begin(&out, "run").unwrap();
        assert!(!dead_path.exists());
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"old");
        assert!(!aside.exists());
        // Another run starting now leaves the live one's directory alone.
        let other = Staged::begin(&out, "run").unwrap();
        assert!(live.dir.path().exists());
        drop((live, other));
    }
}
