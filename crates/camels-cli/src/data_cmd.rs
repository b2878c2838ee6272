//! `camels-cli data`: write the synthetic fact world; print a dataset's statistics.

use std::path::PathBuf;

use anyhow::{Context, Result};
use camels_data::{Format, SynthConfig, TextEncoder, read_any, stats_of, write_world};
use camels_model::tokenizer::TextTokenizer;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write the synthetic fact world: pretrain.jsonl, meta_train.jsonl, meta_val.jsonl,
    /// test.jsonl and unrelated.txt.
    Synth {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed of everything.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Documents in pretrain.jsonl.
        #[arg(long)]
        n_pretrain: Option<usize>,
        /// Documents in meta_train.jsonl.
        #[arg(long)]
        n_meta_train: Option<usize>,
        /// Documents in meta_val.jsonl.
        #[arg(long)]
        n_meta_val: Option<usize>,
        /// Documents in test.jsonl.
        #[arg(long)]
        n_test: Option<usize>,
    },
    /// Documents, questions, answers found in their document, and a length histogram.
    Stats {
        /// The dataset file.
        file: PathBuf,
        /// squad, streamingqa, archivalqa, jsonl or text; guessed from the file when absent.
        #[arg(long)]
        format: Option<Format>,
        /// Measure lengths in tokens of this tokenizer (tokenizer.json, or a model directory).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Fail on the first malformed record instead of skipping and reporting it.
        #[arg(long)]
        strict: bool,
    },
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Synth { out, seed, n_pretrain, n_meta_train, n_meta_val, n_test } => {
            let defaults = SynthConfig::default();
            let config = SynthConfig {
                seed,
                n_pretrain: n_pretrain.unwrap_or(defaults.n_pretrain),
                n_meta_train: n_meta_train.unwrap_or(defaults.n_meta_train),
                n_meta_val: n_meta_val.unwrap_or(defaults.n_meta_val),
                n_test: n_test.unwrap_or(defaults.n_test),
                ..defaults
            };
            let (world, files) = write_world(&out, &config)?;
            for (split, file) in world.splits().iter().zip(&files) {
                println!("{}: {} documents", file.display(), split.documents.len());
            }
            for file in files.iter().skip(world.splits().len()) {
                println!("{}", file.display());
            }
            Ok(())
        }
        DataCommand::Stats { file, format, tokenizer, strict } => {
            let tokenizer = tokenizer
                .map(
                    |path| {
                        if path.is_dir() { TextTokenizer::from_dir(&path) } else { TextTokenizer::from_file(&path) }
                    },
                )
                .transpose()
                .context("loading the tokenizer")?;
            let dataset = read_any(&file, format, strict)?;
            let encoder = tokenizer.as_ref().map(|t| t.inner() as &dyn TextEncoder);
            let stats = stats_of(&dataset.documents, dataset.report, encoder)?;
            println!("{stats}");
            Ok(())
        }
    }
}
