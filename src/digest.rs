//! SHA-256 digests of bytes and files, in lowercase hex: how manifests, profiles and reports
//! name the exact content they were made from.

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(not(unix))]
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// SHA-256 of a file, in lowercase hex, read in blocks (extracts can be large). Each file is
/// read once per process (the run cache's keys, the manifest): again only when its size or
/// modification time changed.
pub fn file_sha256(path: &Path) -> Result<String> {
    static SEEN: Mutex<BTreeMap<Seen, String>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let id = (file_id(path, &meta), meta.len(), meta.modified().ok());
    if let Some(sum) = SEEN.lock().expect("not poisoned").get(&id) {
        return Ok(sum.clone());
    }
    let sum = read_sha256(path)?;
    SEEN.lock().expect("not poisoned").insert(id, sum.clone());
    Ok(sum)
}

/// A file as last hashed: which file, its size and its modification time.
type Seen = (FileId, u64, Option<SystemTime>);

/// What names a file whatever its path: its device and inode (a file renamed, or linked under
/// another name, is hashed once).
#[cfg(unix)]
type FileId = (u64, u64);
#[cfg(not(unix))]
type FileId = PathBuf;

#[cfg(unix)]
fn file_id(_: &Path, meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(path: &Path, _: &std::fs::Metadata) -> FileId {
    path.to_path_buf()
}

fn read_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes, in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(file_sha256(&p).unwrap(), sha256(b"abc"));
    }
}
