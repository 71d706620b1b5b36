//! Builds the built-in library into the binary: every file of `measures/`, `queries/`,
//! `mappings/` and `testdata/` as `(path, bytes)`, and a hash of them all naming the cache
//! directory the library is written to when used (`src/library.rs`). Cargo reruns this when any
//! file under those directories changes, is added or is removed.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

const PARTS: [&str; 4] = ["measures", "queries", "mappings", "testdata"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = BTreeMap::new();
    for part in PARTS {
        println!("cargo:rerun-if-changed={part}");
        walk(&root, &root.join(part), &mut files);
    }
    // Hashed in path order, so the name depends only on the files.
    let mut h = DefaultHasher::new();
    for (rel, path) in &files {
        rel.hash(&mut h);
        std::fs::read(path).expect("readable").hash(&mut h);
    }
    let mut out = String::from(
        "/// Every file of the built-in library: its path under the repository, its bytes.\n",
    );
    out.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    // Paths from the manifest directory as the crate is compiled, not as this script saw it:
    // a build directory shared by two checkouts never reads the other's files.
    for rel in files.keys() {
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{rel}\"))),\n"
        ));
    }
    out.push_str("];\n");
    out.push_str(&format!(
        "/// A hash of the library's paths and bytes: the cache directory's name.\npub(crate) const HASH: &str = \"{:016x}\";\n",
        h.finish()
    ));
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("library.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
    build_id(&root);
}

/// `HHQ_BUILD_ID`: a hash of the sources, the build script, the locked dependencies and the
/// profile and target, which every run-cache key holds (`src/cache.rs`): what one build
/// computed is never read by another.
fn build_id(root: &Path) {
    let mut files = BTreeMap::new();
    for part in ["src", "Cargo.lock", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={part}");
        let path = root.join(part);
        if path.is_dir() {
            walk(root, &path, &mut files);
        } else {
            files.insert(part.to_string(), path);
        }
    }
    let mut h = DefaultHasher::new();
    for (rel, path) in &files {
        rel.hash(&mut h);
        std::fs::read(path).unwrap_or_default().hash(&mut h);
    }
    for var in [
        "PROFILE",
        "TARGET",
        "OPT_LEVEL",
        "CARGO_CFG_FEATURE",
        "CARGO_FEATURE_BALLISTA",
    ] {
        std::env::var(var).unwrap_or_default().hash(&mut h);
    }
    println!("cargo:rustc-env=HHQ_BUILD_ID={:016x}", h.finish());
}

/// Every file under `dir` (following no symbolic links), keyed by its path relative to `root`
/// with `/` separators.
fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        // Editors' and tools' droppings are not part of the library.
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if kind.is_dir() {
            walk(root, &path, into);
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            into.insert(rel, path);
        }
    }
}
