//! Benchmark: read and tokenise the SQuAD dev file with the GPT-2 tokenizer on one thread; prints
//! MB/s (median of 5 runs) and writes the numbers as JSON.
//!
//! ```text
//! TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 \
//!   cargo run --release -p camels-data --example bench_read -- OUT.json [SQUAD.json] [TOKENIZER_DIR]
//! ```
//!
//! `SQUAD.json` defaults to `$CAMELS_DATA_DIR/squad_v1.1/dev-v1.1-articles-00-35.json` (else
//! `../shared/data/...` beside the repository); `TOKENIZER_DIR` (holding GPT-2's `vocab.json` and
//! `merges.txt`) defaults to `fixtures/gpt2-tokenizer`. Encoding one text at a time never uses
//! tokenizers' thread pool, so the run is single-threaded whatever the environment says.

use std::path::PathBuf;
use std::time::Instant;

use camels_data::{TextEncoder, squad};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

const RUNS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: bench_read OUT.json [SQUAD.json] [TOKENIZER_DIR]")?);
    let data_dir = std::env::var_os("CAMELS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")));
    let input =
        args.next().map(PathBuf::from).unwrap_or_else(|| data_dir.join("squad_v1.1/dev-v1.1-articles-00-35.json"));
    let tokenizer_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gpt2-tokenizer")));

    let input = input.canonicalize().unwrap_or(input);
    let vocab = tokenizer_dir.join("vocab.json");
    let merges = tokenizer_dir.join("merges.txt");
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy()).build()?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));

    let bytes = std::fs::metadata(&input)
        .map_err(|e| format!("{}: {e} (set CAMELS_DATA_DIR or pass the file)", input.display()))?
        .len();
    let mut total = Vec::with_capacity(RUNS);
    let mut read_only = Vec::with_capacity(RUNS);
    let (mut documents, mut questions, mut tokens) = (0, 0, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        let data = squad::read(&input, true)?;
        let read = start.elapsed().as_secs_f64();
        tokens = 0;
        for d in &data.documents {
            tokens += tokenizer.encode(&d.text)?.ids.len();
            for q in &d.questions {
                tokens += tokenizer.encode(&q.question)?.ids.len();
                for a in &q.answers {
                    tokens += tokenizer.encode(a)?.ids.len();
                }
            }
        }
        total.push(start.elapsed().as_secs_f64());
        read_only.push(read);
        documents = data.report.documents;
        questions = data.report.questions;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let runs = total.clone();
    let seconds = median(&mut total);
    let read_seconds = median(&mut read_only);
    let mb_per_s = bytes as f64 / 1e6 / seconds;
    println!(
        "{}: {:.2} MB, {documents} documents, {questions} questions, {tokens} tokens",
        input.display(),
        bytes as f64 / 1e6
    );
    println!(
        "read + tokenise: median {seconds:.3} s of {RUNS} = {mb_per_s:.2} MB/s ({:.0} tokens/s); read alone {read_seconds:.3} s = {:.1} MB/s",
        tokens as f64 / seconds,
        bytes as f64 / 1e6 / read_seconds
    );
    let report = serde_json::json!({
        "benchmark": "camels-data read + GPT-2 tokenise, one thread",
        "file": input.display().to_string(),
        "bytes": bytes,
        "documents": documents,
        "questions": questions,
        "tokens": tokens,
        "runs": RUNS,
        "seconds": runs,
        "median_seconds": seconds,
        "mb_per_s": mb_per_s,
        "tokens_per_s": tokens as f64 / seconds,
        "read_only_median_seconds": read_seconds,
        "read_only_mb_per_s": bytes as f64 / 1e6 / read_seconds,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}
