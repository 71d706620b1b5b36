//! The run cache: what a computation made (building blocks, each measure's detail pass by pass,
//! a run's outputs of a measure), kept on disk under a key hashed from everything it was made
//! from, so that a rerun computes only what changed (`hhq run` after one measure is edited,
//! `hhq report` after `hhq run` on the same data).
//!
//! A key is a SHA-256 over labelled parts ([`Hasher`]): the build of hhq ([`BUILD_ID`]), the
//! extracts' bytes (each file's SHA-256), the audience, the definitions' text, the value sets'
//! codes, the members of the pass. Nothing is looked up by name or time, so a changed input is
//! a different key, never a stale entry. Entries are directories written whole (the directory
//! renamed into place), each file's SHA-256 listed and checked when read (a file torn by a crash
//! or damaged on disk is a miss, never served), read through open handles (an entry evicted
//! while read stays readable). The cache is bounded: after each command
//! the entries least recently used are removed until the rest fit ([`Cache::trim`]). It holds
//! member-level rows, as the extracts do: its directory is its owner's only (mode 0700).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The build of hhq: its version, and a hash of its sources and locked dependencies (`build.rs`).
/// Part of every key: a new build never reads what an older one computed.
pub const BUILD_ID: &str = concat!(env!("CARGO_PKG_VERSION"), "-", env!("HHQ_BUILD_ID"));

/// Entries written at once, on threads of their own.
const WRITERS: usize = 2;

/// The cache in the user's cache directory ([`default_dir`]) bounded by `size` bytes; none
/// when `size` is 0.
pub fn open_default(size: u64) -> Result<Option<Arc<Cache>>> {
    match size {
        0 => Ok(None),
        size => Ok(Some(Arc::new(Cache::open(&default_dir(), size)?))),
    }
}

/// A size as `--cache-size` takes it: as [`crate::plan::parse_size`], or `0` (no cache).
pub fn parse_size(text: &str) -> std::result::Result<usize, String> {
    match text.trim() {
        "0" => Ok(0),
        t => crate::plan::parse_size(t),
    }
}

/// `runs/` beside the built-in library ([`crate::library::cache_base`]): `$HHQ_CACHE_DIR`,
/// `$XDG_CACHE_HOME/hhq` or `~/.cache/hhq`.
pub fn default_dir() -> PathBuf {
    crate::library::cache_base().join("runs")
}

/// A cache key: the SHA-256 of the parts it was made from, in hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key being made: each part labelled and length-prefixed, so no two lists of parts hash
/// alike.
pub struct Hasher(Sha256);

impl Hasher {
    /// A key of `kind` (what is kept under it), for this build of hhq.
    pub fn new(kind: &str) -> Hasher {
        Hasher(Sha256::new())
            .part("kind", kind)
            .part("build", BUILD_ID)
    }

    pub fn part(mut self, label: &str, bytes: impl AsRef<[u8]>) -> Hasher {
        for piece in [label.as_bytes(), bytes.as_ref()] {
            self.0.update((piece.len() as u64).to_le_bytes());
            self.0.update(piece);
        }
        self
    }

    pub fn key(self) -> Key {
        Key(hex(&self.0.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the cache served and kept in one command, by kind of entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: BTreeMap<&'static str, usize>,
    pub misses: BTreeMap<&'static str, usize>,
    pub stored: BTreeMap<&'static str, usize>,
}

impl Stats {
    /// `run cache: 9 measures' outputs reused, 2 computed; …`, for the terminal; empty when
    /// nothing was looked up.
    pub fn line(&self) -> Option<String> {
        let kinds: std::collections::BTreeSet<&str> = self
            .hits
            .keys()
            .chain(self.misses.keys())
            .copied()
            .collect();
        if kinds.is_empty() {
            return None;
        }
        let parts: Vec<String> = kinds
            .iter()
            .map(|k| {
                let hit = self.hits.get(k).copied().unwrap_or(0);
                let miss = self.misses.get(k).copied().unwrap_or(0);
                format!("{k} {hit} reused, {miss} computed")
            })
            .collect();
        Some(format!("run cache: {}", parts.join("; ")))
    }
}

/// The cache: a directory of entries, one per key, each a directory of named files.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    limit: u64,
    stats: Mutex<Stats>,
    /// Entries being written on threads of their own, joined by [`Cache::flush`].
    writing: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// What an entry holds: named files, as bytes, as Arrow batches (written as Arrow IPC, LZ4
/// compressed), or a file linked (a second name for the same bytes, not a copy: an output the
/// entry shares; copied where a link cannot be made).
pub enum Content {
    Bytes(Vec<u8>),
    Batches(SchemaRef, Vec<RecordBatch>),
    Link(PathBuf),
}

/// An entry found: its files, opened, and the SHA-256 each had when written. A file read back
/// with other bytes (a disk's fault) is not given.
pub struct Entry {
    dir: PathBuf,
    files: BTreeMap<String, std::fs::File>,
    sums: BTreeMap<String, String>,
}

/// The entry's list of its files' digests.
const SUMS: &str = "SHA256SUMS";

impl Entry {
    /// The bytes of file `name`, if they are as written.
    pub fn bytes(&mut self, name: &str) -> Option<Vec<u8>> {
        let file = self.files.get_mut(name)?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).ok()?;
        (self.sums.get(name)? == &hex(&Sha256::digest(&out))).then_some(out)
    }

    /// The batches of file `name`, with their schema.
    pub fn batches(&mut self, name: &str) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        let bytes = self.bytes(name)?;
        let reader = FileReader::try_new(std::io::Cursor::new(bytes), None).ok()?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>().ok()?;
        Some((schema, batches))
    }

    /// Whether it has a file `name`.
    pub fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// File `name` as the file `to`: linked (the same bytes under a second name; an output
    /// made from the cache costs no copy), or copied where no link can be made. Whether it was
    /// there and is as written (else `to` is removed).
    pub fn link_to(&mut self, name: &str, to: &Path) -> Result<bool> {
        let (Some(file), Some(sum)) = (self.files.get_mut(name), self.sums.get(name)) else {
            return Ok(false);
        };
        if std::fs::hard_link(self.dir.join(name), to).is_err() {
            // Another file system, or the entry removed since it was opened: the open file is
            // still there to copy.
            let mut out = std::fs::File::create(to).map_err(|e| Error::io(to, e))?;
            std::io::copy(file, &mut out).map_err(|e| Error::io(to, e))?;
        }
        if &crate::digest::file_sha256(to)? != sum {
            std::fs::remove_file(to).map_err(|e| Error::io(to, e))?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// A writer passing bytes on and hashing them.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    fn finish(self) -> (W, String) {
        (self.inner, hex(&self.hash.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The name of an entry's directory being written: hidden, and removed by [`Cache::trim`] when
/// a process writing it died.
const WRITING: &str = ".writing-";

impl Cache {
    /// The cache at `dir` (made, mode 0700), bounded by `limit` bytes.
    pub fn open(dir: &Path, limit: u64) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir, e))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            limit,
            stats: Mutex::new(Stats::default()),
            writing: Mutex::new(Vec::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn path(&self, kind: &str, key: &Key) -> PathBuf {
        self.dir.join(kind).join(key.as_str())
    }

    /// What `use_entry` makes of the entry of `kind` under `key` (its files opened, and marked
    /// used now): a hit when there is one and it gives `Some`, else a miss (none, or one that
    /// cannot be read whole).
    pub fn read<T>(
        &self,
        kind: &'static str,
        key: &Key,
        use_entry: impl FnOnce(&mut Entry) -> Option<T>,
    ) -> Option<T> {
        let found = self
            .open_entry(kind, key)
            .and_then(|mut e| use_entry(&mut e));
        let mut stats = self.stats.lock().expect("not poisoned");
        let counter = match found {
            Some(_) => &mut stats.hits,
            None => &mut stats.misses,
        };
        *counter.entry(kind).or_default() += 1;
        found
    }

    fn open_entry(&self, kind: &str, key: &Key) -> Option<Entry> {
        let dir = self.path(kind, key);
        let mut files = BTreeMap::new();
        for e in std::fs::read_dir(&dir).ok()? {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            files.insert(name, std::fs::File::open(e.path()).ok()?);
        }
        let mut sums_text = String::new();
        files.remove(SUMS)?.read_to_string(&mut sums_text).ok()?;
        let sums = sums_text
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(sum, name)| (name.to_string(), sum.to_string()))
            .collect();
        // Least recently used first out: the directory's time is its last use.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.set_modified(SystemTime::now());
        }
        Some(Entry { dir, files, sums })
    }

    /// Keep `files` under `key`, on a thread of its own (joined by [`Cache::flush`]). An entry
    /// larger than the whole cache is not kept; a failure to write one is not an error (the
    /// cache is only ever a shortcut).
    pub fn put(&self, kind: &'static str, key: &Key, files: Vec<(&'static str, Content)>) {
        let target = self.path(kind, key);
        if target.exists() {
            return;
        }
        *self
            .stats
            .lock()
            .expect("not poisoned")
            .stored
            .entry(kind)
            .or_default() += 1;
        let limit = self.limit;
        let handle = std::thread::spawn(move || {
            let _ = write_entry(&target, files, limit);
        });
        // At most a few entries in flight: a writer holds its rows until they are written, and
        // a pass's blocks would otherwise outlive the pass while the next one computes.
        let waiting = {
            let mut writing = self.writing.lock().expect("not poisoned");
            writing.push(handle);
            match writing.len() > WRITERS {
                true => Some(writing.remove(0)),
                false => None,
            }
        };
        if let Some(oldest) = waiting {
            let _ = oldest.join();
        }
    }

    /// Wait for the entries being written.
    pub fn flush(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.writing.lock().expect("not poisoned"));
        for h in handles {
            let _ = h.join();
        }
    }

    /// What this process's lookups found and kept.
    pub fn stats(&self) -> Stats {
        self.stats.lock().expect("not poisoned").clone()
    }

    /// The entries written, then the least recently used removed until the rest fit the bound
    /// (and entries a dead process left half written removed). What is left.
    pub fn trim(&self) -> Result<Usage> {
        self.flush();
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        entries.sort_by_key(|e| e.used);
        let mut removed = 0;
        for e in &entries {
            if total <= self.limit {
                break;
            }
            if std::fs::remove_dir_all(&e.dir).is_ok() {
                total = total.saturating_sub(e.bytes);
                removed += 1;
            }
        }
        Ok(Usage {
            entries: entries.len() - removed,
            bytes: total,
            removed,
        })
    }

    /// Every entry removed.
    pub fn clear(&self) -> Result<Usage> {
        self.flush();
        let entries = self.entries()?;
        let mut removed = 0;
        for e in &entries {
            if std::fs::remove_dir_all(&e.dir).is_ok() {
                removed += 1;
            }
        }
        Ok(Usage {
            entries: entries.len() - removed,
            bytes: 0,
            removed,
        })
    }

    /// How many entries and bytes the cache holds.
    pub fn usage(&self) -> Result<Usage> {
        let entries = self.entries()?;
        Ok(Usage {
            entries: entries.len(),
            bytes: entries.iter().map(|e| e.bytes).sum(),
            removed: 0,
        })
    }

    /// The complete entries (half-written ones older than an hour removed on the way).
    fn entries(&self) -> Result<Vec<Stored>> {
        let mut out = Vec::new();
        let Ok(kinds) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for kind in kinds.flatten() {
            if !kind.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(keys) = std::fs::read_dir(kind.path()) else {
                continue;
            };
            for entry in keys.flatten() {
                let dir = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if entry.file_name().to_string_lossy().starts_with(WRITING) {
                    let stale = used
                        .elapsed()
                        .is_ok_and(|d| d > std::time::Duration::from_secs(3600));
                    if stale {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    continue;
                }
                out.push(Stored {
                    bytes: dir_bytes(&dir),
                    dir,
                    used,
                });
            }
        }
        Ok(out)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.flush();
    }
}

/// How full the cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    pub bytes: u64,
    /// Entries removed by the call that returned it.
    pub removed: usize,
}

struct Stored {
    dir: PathBuf,
    bytes: u64,
    used: SystemTime,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|files| {
            files
                .flatten()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Write an entry whole: its files into a hidden directory beside the target, each synced, then
/// the directory renamed into place (another process having written it first is no error: the
/// same key holds the same content).
fn write_entry(target: &Path, files: Vec<(&'static str, Content)>, limit: u64) -> Result<()> {
    let parent = target.parent().expect("an entry is under its kind");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{WRITING}{name}-"))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let mut bytes = 0u64;
    let mut sums = String::new();
    for (file, content) in files {
        let path = tmp.path().join(file);
        let digest = match content {
            Content::Link(from) => {
                if std::fs::hard_link(&from, &path).is_err() {
                    std::fs::copy(&from, &path).map_err(|e| Error::io(&from, e))?;
                }
                crate::digest::file_sha256(&path)?
            }
            content => {
                let out = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                let mut w = Hashing::new(std::io::BufWriter::new(out));
                match content {
                    Content::Batches(schema, batches) => {
                        let options = IpcWriteOptions::default()
                            .try_with_compression(Some(CompressionType::LZ4_FRAME))?;
                        let mut ipc = FileWriter::try_new_with_options(&mut w, &schema, options)?;
                        for b in &batches {
                            ipc.write(b)?;
                        }
                        ipc.finish()?;
                    }
                    Content::Bytes(b) => w.write_all(&b).map_err(|e| Error::io(&path, e))?,
                    Content::Link(_) => unreachable!("linked above"),
                }
                // Not synced: a file torn by a crash fails its digest when read, and is a miss.
                let (mut out, digest) = w.finish();
                out.flush().map_err(|e| Error::io(&path, e))?;
                digest
            }
        };
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if bytes > limit {
            return Ok(());
        }
        sums.push_str(&format!("{digest}  {file}\n"));
    }
    let path = tmp.path().join(SUMS);
    std::fs::write(&path, sums).map_err(|e| Error::io(&path, e))?;
    let kept = tmp.keep();
    if std::fs::rename(&kept, target).is_err() {
        let _ = std::fs::remove_dir_all(&kept);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn keys_differ_by_every_part_and_its_boundaries() {
        let k = |parts: &[(&str, &str)]| {
            parts
                .iter()
                .fold(Hasher::new("t"), |h, (l, v)| h.part(l, v))
                .key()
        };
        assert_eq!(k(&[("a", "1")]), k(&[("a", "1")]));
        assert_ne!(k(&[("a", "1")]), k(&[("a", "2")]));
        assert_ne!(k(&[("a", "12")]), k(&[("a", "1"), ("", "2")]));
        assert_ne!(Hasher::new("t").key(), Hasher::new("u").key());
    }

    #[test]
    fn entries_round_trip_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let one = Hasher::new("t").part("n", "1").key();
        let get = |key: &Key| cache.read("test", key, |e| e.bytes("b").or(e.bytes("note")));
        assert!(get(&one).is_none());
        let b = batch(&[1, 2, 3]);
        cache.put(
            "test",
            &one,
            vec![
                ("rows.arrow", Content::Batches(b.schema(), vec![b.clone()])),
                ("note", Content::Bytes(b"hello".to_vec())),
            ],
        );
        cache.flush();
        let (note, (schema, batches)) = cache
            .read("test", &one, |e| {
                Some((e.bytes("note")?, e.batches("rows.arrow")?))
            })
            .expect("kept");
        assert_eq!(note, b"hello");
        assert_eq!(schema, b.schema());
        assert_eq!(batches, vec![b]);
        assert_eq!(cache.stats().hits["test"], 1);
        assert_eq!(cache.stats().misses["test"], 1);
        // A file whose bytes changed on disk is not given, and the lookup is a miss.
        std::fs::write(cache.path("test", &one).join("note"), b"hellO").unwrap();
        assert!(get(&one).is_none());
        assert_eq!(cache.stats().misses["test"], 2);
        let to = dir.path().join("copied");
        assert!(
            cache
                .read("test", &one, |e| e.link_to("note", &to).ok().filter(|c| *c))
                .is_none()
        );
        assert!(!to.exists());

        // A bound that holds one entry: the older goes.
        let big = vec![7u8; 600 << 10];
        let two = Hasher::new("t").part("n", "2").key();
        let three = Hasher::new("t").part("n", "3").key();
        cache.put("test", &two, vec![("b", Content::Bytes(big.clone()))]);
        cache.flush();
        // Used earlier than the next: file times have coarse clocks on some systems.
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::open(cache.path("test", &two))
            .unwrap()
            .set_modified(past)
            .unwrap();
        cache.put("test", &three, vec![("b", Content::Bytes(big))]);
        let usage = cache.trim().unwrap();
        assert!(usage.bytes <= 1 << 20, "{usage:?}");
        assert!(get(&two).is_none());
        assert!(get(&three).is_some());
        // Larger than the whole cache: not kept.
        let four = Hasher::new("t").part("n", "4").key();
        cache.put("test", &four, vec![("b", Content::Bytes(vec![0; 2 << 20]))]);
        cache.flush();
        assert!(get(&four).is_none());
        assert_eq!(cache.clear().unwrap().entries, 0);
    }
}
