//! Helpers shared by the integration tests: scratch folders, the real-data folder, the GPT-2 tokenizer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty scratch folder under the system temp dir, unique per process and call.
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("camels-data-test-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The real-data folder: `$CAMELS_DATA_DIR`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("CAMELS_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")),
    }
}

/// GPT-2's byte-level BPE tokenizer built from the repository's fixture files (vocab.json and
/// merges.txt), as `tokenizers` builds it from a GPT-2 `tokenizer.json`.
pub fn gpt2() -> tokenizers::Tokenizer {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gpt2-tokenizer");
    let bpe = BPE::from_file(&format!("{dir}/vocab.json"), &format!("{dir}/merges.txt"))
        .build()
        .unwrap_or_else(|e| panic!("{dir}: cannot build the GPT-2 tokenizer: {e}"));
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, false, true)))
        .with_decoder(Some(ByteLevel::new(false, false, true)));
    tokenizer
}
