//! `camels-cli data`: write the synthetic fact world; print a dataset's statistics; select articles
//! (streams disjoint by article).

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
    /// Write the documents of articles START..END (0-based, in file order; an article is a run of
    /// documents with one title) as JSONL: streams disjoint by article for meta-training,
    /// validation and test.
    Select {
        /// The dataset file (any format `stats` reads).
        file: PathBuf,
        /// Articles START..END (END excluded), for example `30..36`.
        #[arg(long)]
        articles: String,
        /// squad, streamingqa, archivalqa, jsonl or text; guessed from the file when absent.
        #[arg(long)]
        format: Option<Format>,
        /// The JSONL file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `START..END` → (START, END), END > START.
fn parse_range(text: &str) -> Result<(usize, usize)> {
    let parsed = text.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((start, end)) if end > start => Ok((start, end)),
        _ => anyhow::bail!("--articles {text}: expected START..END with END > START, for example 30..36"),
    }
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
            let spinner = indicatif::ProgressBar::new_spinner(); // drawn on a terminal only
            spinner.set_message(format!("reading {}", file.display()));
            spinner.enable_steady_tick(std::time::Duration::from_millis(200));
            let dataset = read_any(&file, format, strict)?;
            let encoder = tokenizer.as_ref().map(|t| t.inner() as &dyn TextEncoder);
            if encoder.is_some() {
                spinner.set_message(format!("tokenising {} documents", dataset.documents.len()));
            }
            let stats = stats_of(&dataset.documents, dataset.report, encoder)?;
            spinner.finish_and_clear();
            println!("{stats}");
            Ok(())
        }
        DataCommand::Select { file, articles, format, out } => {
            let (start, end) = parse_range(&articles)?;
            let dataset = read_any(&file, format, false)?;
            let mut article = 0usize;
            let mut previous: Option<Option<String>> = None;
            let mut kept = Vec::new();
            for doc in dataset.documents {
                if previous.as_ref().is_some_and(|t| *t != doc.title) {
                    article += 1;
                }
                previous = Some(doc.title.clone());
                if (start..end).contains(&article) {
                    kept.push(doc);
                }
            }
            let found = previous.map_or(0, |_| article + 1);
            anyhow::ensure!(
                end <= found,
                "{}: --articles {articles}: the file holds {found} articles (0..{found})",
                file.display()
            );
            let questions: usize = kept.iter().map(|d| d.questions.len()).sum();
            camels_data::jsonl::write(&out, &kept)?;
            println!("{}: articles {start}..{end}: {} documents, {questions} questions", out.display(), kept.len());
            for skipped in &dataset.report.skipped {
                println!("skipped: {skipped}");
            }
            Ok(())
        }
    }
}
