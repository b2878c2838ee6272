//! Sets `cfg(camels_data_absent)` when the real SQuAD files are missing, so the real-data tests are
//! counted as ignored instead of failing. The data lives at `$CAMELS_DATA_DIR` or, by default, in
//! `../shared/data` beside the repository.

use std::path::{Path, PathBuf};

const SQUAD_FILES: [&str; 2] = ["squad_v1.1/dev-v1.1-articles-00-35.json", "squad_v1.1/train-v1.1-prefix.json"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(camels_data_absent)");
    println!("cargo::rerun-if-env-changed=CAMELS_DATA_DIR");
    println!("cargo::rerun-if-changed=build.rs");
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("CAMELS_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => manifest_dir.join("../../../shared/data"),
    };
    // Cargo scans a watched folder recursively, and reruns this script (and rebuilds the crate) on
    // every build when a watched path does not exist. So watch the data folder when it exists, else
    // its parent (data may appear there), unless that parent holds the workspace itself (a scan of
    // `/` or of the workspace's target folder would cost more than it saves). In that last case the
    // cfg is re-evaluated when CAMELS_DATA_DIR or this file changes.
    let workspace = manifest_dir.join("../..").canonicalize().unwrap_or_else(|_| manifest_dir.to_path_buf());
    if dir.is_dir() {
        println!("cargo::rerun-if-changed={}", dir.display());
    } else if let Some(parent) = dir.parent().filter(|p| p.is_dir())
        && let Ok(parent) = parent.canonicalize()
        && !workspace.starts_with(&parent)
    {
        println!("cargo::rerun-if-changed={}", parent.display());
    }
    if !SQUAD_FILES.iter().all(|f| dir.join(f).is_file()) {
        println!("cargo::rustc-cfg=camels_data_absent");
    }
}
