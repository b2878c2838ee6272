//! `camels-cli adapt` (stream documents through fine-tuning of a base LM, then ask their questions)
//! and `camels-cli eval` (ask a QA set's questions without adapting).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::prelude::*;
use camels_data::{Document, Format, Shuffle, StreamConfig, build_stream, read_any};
use camels_meta::EncoderExt;
use camels_meta::adapt::{AdaptConfig, OptimizerKind, Progress, RunControl, adapt, check_resumable, params_finite};
use camels_meta::eval::{
    EvalConfig, InputReport, Prediction, QaItem, Summary, answer_nlls, control_questions, evaluate_questions,
    fact_gain, perplexity, questions_of, swapped_answers, write_predictions_csv, write_summary,
};
use camels_meta::lock::RunLock;
use camels_meta::strategy::{Weigher, WeightStrategy, weighted_docs, weights_report, write_weights_jsonl};
use camels_model::base::{BaseLm, MatmulPrecision};
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use camels_model::generate::Decoding;
use camels_model::hf::{load_base, load_tokenizer, save_base};
use camels_model::tokenizer::TextTokenizer;
use clap::Args;

/// Where the documents and questions come from, and how they are asked.
#[derive(Args, Debug, Clone)]
pub struct QaArgs {
    /// HF-layout base LM directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    base: PathBuf,
    /// Documents with questions (SQuAD, StreamingQA, ArchivalQA, JSONL; format guessed).
    #[arg(long, alias = "qa")]
    stream: PathBuf,
    /// Format of the stream file (guessed when absent).
    #[arg(long)]
    format: Option<Format>,
    /// Number of documents (all when absent).
    #[arg(long)]
    n_docs: Option<usize>,
    /// Take a seeded sample (article groups shuffled) instead of the file's first documents.
    #[arg(long)]
    sample: bool,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Unrelated text (plain text or CSV with raw_text) for the forgetting perplexity.
    #[arg(long)]
    unrelated: Option<PathBuf>,
    /// Windows of 256 tokens of the unrelated text measured, its first (0: all; the 1.3 MB
    /// WikiText-2 test file makes ~1,200, an hour's forward passes of a 135M model on 2 cores).
    #[arg(long, default_value_t = 64)]
    unrelated_windows: usize,
    /// Beam search with this many beams (1 = greedy).
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Top-k sampling with this k (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// New tokens per generated answer.
    #[arg(long, default_value_t = 16)]
    max_new_tokens: usize,
    /// Questions per generation batch.
    #[arg(long, default_value_t = 16)]
    eval_batch: usize,
    /// Measure the answer NLL over the answer's tokens only, without the end of sequence after it
    /// (the paper's `include_eos = false`; by default the end of sequence is a target too).
    #[arg(long)]
    nll_without_eos: bool,
    /// Output directory: predictions.csv and summary.json.
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as JSON only.
    #[arg(long)]
    json: bool,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

/// Options of `camels-cli adapt`.
#[derive(Args, Debug, Clone)]
pub struct AdaptArgs {
    #[command(flatten)]
    qa: QaArgs,
    /// Token weights: uniform, tfidf[:QUANTILE] (default quantile 0.05), salient, camels:PATH, or
    /// answers (an oracle: 1 on the gold answers' tokens; reads the questions, for diagnosis).
    #[arg(long, default_value = "uniform")]
    weights: String,
    /// Adaptation config (TOML with AdaptConfig's fields); else the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Preset when no --config: paper or tiny.
    #[arg(long, default_value = "paper")]
    preset: String,
    /// Config overrides `key=value` (repeatable), applied before the flags below.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// adam, sgd, ada_grad or adafactor.
    #[arg(long)]
    optimizer: Option<String>,
    /// Clip gradients to this norm.
    #[arg(long)]
    grad_clip: Option<f32>,
    /// Element type of the matrix products while adapting: f32, bf16 or f16 (mixed precision;
    /// weights and optimizer state stay f32).
    #[arg(long)]
    precision: Option<MatmulPrecision>,
    /// Documents per micro-batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    grad_accumulation: Option<usize>,
    /// Passes over the stream.
    #[arg(long)]
    epochs: Option<usize>,
    /// Write a resume checkpoint (in OUT/checkpoint) every M documents; a rerun resumes from it.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Stop after this many documents (resume later with the same command).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Also evaluate before adapting (answer NLL and perplexity before).
    #[arg(long)]
    eval_before: bool,
    /// Write the adapted LM to OUT/model as an HF checkpoint.
    #[arg(long)]
    save_model: bool,
    /// Control questions: documents that are not streamed; the answer NLL of their questions
    /// before and after shows how adaptation moves questions about other documents.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Format of the control file (guessed when absent).
    #[arg(long, requires = "control")]
    control_format: Option<Format>,
    /// Number of control documents (all when absent).
    #[arg(long, requires = "control")]
    control_n_docs: Option<usize>,
}

fn adapt_config(args: &AdaptArgs) -> Result<AdaptConfig> {
    let config = match &args.config {
        Some(path) => AdaptConfig::from_toml(path, &args.set)?,
        None => AdaptConfig::preset(&args.preset)
            .with_context(|| format!("unknown preset `{}` (paper, tiny)", args.preset))?
            .with_overrides(&args.set)?,
    };
    let mut config = config;
    if let Some(lr) = args.lr {
        config.lr = lr;
    }
    if let Some(name) = &args.optimizer {
        config.optimizer = match name.as_str() {
            "adam" => OptimizerKind::Adam,
            "sgd" => OptimizerKind::Sgd,
            "ada_grad" | "adagrad" => OptimizerKind::AdaGrad,
            "adafactor" => OptimizerKind::Adafactor,
            other => bail!("unknown optimizer `{other}` (adam, sgd, ada_grad, adafactor)"),
        };
    }
    config.grad_clip_norm = args.grad_clip.or(config.grad_clip_norm);
    config.matmul_precision = args.precision.unwrap_or(config.matmul_precision);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.grad_accumulation = args.grad_accumulation.unwrap_or(config.grad_accumulation);
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.checkpoint_every = args.checkpoint_every.unwrap_or(config.checkpoint_every);
    config.validate()?;
    Ok(config)
}

/// Refuses generation settings that would ask no question or generate nothing.
fn check_qa_args(qa: &QaArgs) -> Result<()> {
    for (flag, value) in
        [("--eval-batch", qa.eval_batch), ("--max-new-tokens", qa.max_new_tokens), ("--num-beams", qa.num_beams)]
    {
        anyhow::ensure!(value > 0, "{flag} 0: must be at least 1");
    }
    Ok(())
}

fn eval_config(qa: &QaArgs) -> EvalConfig {
    let decoding = if qa.top_k > 0 {
        Decoding::TopK { k: qa.top_k, temperature: 1.0, seed: qa.seed }
    } else if qa.num_beams > 1 {
        Decoding::Beam { num_beams: qa.num_beams, length_penalty: 1.0 }
    } else {
        Decoding::Greedy
    };
    let mut config = EvalConfig {
        decoding,
        max_new_tokens: qa.max_new_tokens,
        batch_size: qa.eval_batch,
        unrelated_windows: qa.unrelated_windows,
        ..EvalConfig::default()
    };
    config.qa.include_eos = !qa.nll_without_eos;
    config
}

/// Warns about the malformed records a reader skipped, and keeps its report for `summary.json`.
fn note_input(report: &camels_data::ReadReport, inputs: &mut Vec<InputReport>) {
    let input = InputReport::of(report);
    if let Some(line) = input.skipped_line() {
        tracing::warn!("{line}");
    }
    inputs.push(input);
}

fn read_stream(qa: &QaArgs, inputs: &mut Vec<InputReport>) -> Result<Vec<Document>> {
    let dataset = read_any(&qa.stream, qa.format, false).with_context(|| format!("reading {}", qa.stream.display()))?;
    note_input(&dataset.report, inputs);
    let documents = if qa.sample {
        let config = StreamConfig { seed: qa.seed, shuffle: Shuffle::Groups, downsample_to: qa.n_docs, dedup: true };
        build_stream(dataset.documents, &config)
    } else {
        let mut docs = dataset.documents;
        docs.truncate(qa.n_docs.unwrap_or(usize::MAX));
        docs
    };
    if documents.is_empty() {
        bail!("{}: no documents", qa.stream.display());
    }
    Ok(documents)
}

fn read_unrelated(qa: &QaArgs, inputs: &mut Vec<InputReport>) -> Result<Vec<String>> {
    match &qa.unrelated {
        None => Ok(Vec::new()),
        Some(path) => {
            let dataset = read_any(path, None, false).with_context(|| format!("reading {}", path.display()))?;
            note_input(&dataset.report, inputs);
            Ok(dataset.documents.into_iter().map(|d| d.text).collect())
        }
    }
}

/// The mean of `values`, `None` when there are none.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn print_summary(summary: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
        return Ok(());
    }
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let adapted = summary.strategy != "none"; // `eval` adapts nothing: no lr, no skipped documents
    let mut rows = vec![("strategy", summary.strategy.clone())];
    if adapted {
        rows.extend([
            ("lr", format!("{:e}", summary.lr)),
            ("documents", summary.n_docs.to_string()),
            ("documents skipped (non-finite)", summary.docs_skipped.to_string()),
            ("documents skipped (< 2 tokens)", summary.docs_too_short.to_string()),
        ]);
    } else {
        rows.push(("documents", summary.n_docs.to_string()));
    }
    rows.extend([
        ("questions", summary.n_questions.to_string()),
        ("EM, lenient prefix (reference) %", format!("{:.2}", summary.em)),
        ("EM, strict (SQuAD script) %", format!("{:.2}", summary.em_strict)),
        ("F1 %", format!("{:.2}", summary.f1)),
        ("answer NLL before", opt(summary.answer_nll_before)),
        ("answer NLL after", format!("{:.4}", summary.answer_nll_after)),
    ]);
    let skipped: usize = summary.inputs.iter().map(|i| i.skipped).sum();
    rows.push(("input records skipped (malformed)", skipped.to_string()));
    if summary.swapped_questions > 0 {
        rows.extend([
            ("swapped questions (another document's answer)", summary.swapped_questions.to_string()),
            ("swapped answer NLL before", opt(summary.swapped_answer_nll_before)),
            ("swapped answer NLL after", opt(summary.swapped_answer_nll_after)),
            ("fact gain (their gold answers' gain - swapped gain)", opt(summary.fact_gain)),
        ]);
    }
    if summary.control_questions > 0 {
        rows.extend([
            ("control questions (documents not streamed)", summary.control_questions.to_string()),
            ("control answer NLL before", opt(summary.control_answer_nll_before)),
            ("control answer NLL after", opt(summary.control_answer_nll_after)),
        ]);
    }
    if adapted {
        rows.push(("unrelated perplexity before", opt(summary.unrelated_ppl_before)));
    }
    rows.push(("unrelated perplexity after", opt(summary.unrelated_ppl_after)));
    if adapted {
        rows.push(("adaptation tokens/s", format!("{:.1}", summary.adapt_tokens_per_s)));
    }
    rows.push(("QA questions/s", format!("{:.2}", summary.questions_per_s)));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("{key:<width$}  {value}");
    }
    for line in summary.inputs.iter().filter_map(InputReport::skipped_line) {
        println!("{line}");
    }
    Ok(())
}

struct AdaptJob {
    args: AdaptArgs,
}

/// Evaluates `model` on `docs`' questions and the unrelated text; returns predictions, ppl, seconds.
fn evaluate<B: Backend>(
    model: &BaseLm<B>,
    tokenizer: &TextTokenizer,
    docs: &[Document],
    unrelated: &[String],
    config: &EvalConfig,
    device: &B::Device,
) -> Result<(Vec<Prediction>, Option<f64>, f64)> {
    let items = questions_of(docs);
    let started = Instant::now();
    // In chunks of whole generation batches (the same batches as one call), to show progress.
    let bar = indicatif::ProgressBar::new(items.len() as u64); // drawn on a terminal only
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} questions  {per_sec}  eta {eta}")
            .expect("valid template"),
    );
    let mut predictions = Vec::with_capacity(items.len());
    for chunk in items.chunks(config.batch_size.max(1) * 4) {
        predictions.extend(evaluate_questions(model, tokenizer, chunk, config, device)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let ppl = if unrelated.is_empty() {
        None
    } else {
        Some(perplexity(model, &tokenizer.encoder(), unrelated, config, device)?)
    };
    Ok((predictions, ppl, seconds))
}

impl BackendJob for AdaptJob {
    /// The summary, or `None` when the run stopped early (`--stop-after`) and left only its checkpoint.
    type Output = Result<Option<Summary>>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let args = self.args;
        let qa = &args.qa;
        check_qa_args(qa)?;
        let config = adapt_config(&args)?;
        anyhow::ensure!(
            args.stop_after.is_none() || config.checkpoint_every > 0,
            "--stop-after needs --checkpoint-every: without checkpoints a stopped run cannot resume"
        );
        let _lock = RunLock::acquire(&qa.out)?; // one writer per output directory
        let checkpoint_dir = qa.out.join("checkpoint");
        check_resumable(&checkpoint_dir, &config)?; // before any evaluation: a mismatch fails at once
        let strategy: WeightStrategy = args.weights.parse()?;
        let (model, model_config) = load_base::<Autodiff<B>>(&qa.base, &device)
            .with_context(|| format!("loading the model in {}", qa.base.display()))?;
        let tokenizer = load_tokenizer(&qa.base, &model_config)?;
        let mut inputs = Vec::new();
        let docs = read_stream(qa, &mut inputs)?;
        let unrelated = read_unrelated(qa, &mut inputs)?;
        let eval = eval_config(qa);

        let control_items = match &args.control {
            Some(path) => {
                let mut control = read_any(path, args.control_format, false)
                    .with_context(|| format!("reading {}", path.display()))?;
                note_input(&control.report, &mut inputs);
                control.documents.truncate(args.control_n_docs.unwrap_or(usize::MAX));
                control_questions(&docs, &control.documents, path)?
            }
            None => Vec::new(),
        };
        let nlls =
            |model: &BaseLm<B>, items: &[QaItem]| answer_nlls(model, &tokenizer.encoder(), items, &eval, &device);
        let control_before = mean(&nlls(&model.valid(), &control_items)?);
        // Swapped answers: how much of the gain is about answers in general. Their NLL after is
        // measured on every run; before only with --eval-before (`compare` takes the baseline's
        // before-columns for a run without them: every run starts from the same base).
        let swapped = swapped_answers(&docs);
        let swapped_before = if args.eval_before { nlls(&model.valid(), &swapped.items)? } else { Vec::new() };

        let before = if args.eval_before {
            tracing::info!("evaluating before adaptation");
            Some(evaluate(&model.valid(), &tokenizer, &docs, &unrelated, &eval, &device)?)
        } else {
            None
        };

        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let weigher = Weigher::<B>::new(&strategy, &texts, &device)?;
        let stream = weighted_docs(&weigher, &tokenizer.encoder(), &docs, config.max_doc_tokens)?;
        write_weights_jsonl(&qa.out.join("weights.jsonl"), &docs, &stream, &tokenizer.encoder())?;
        // The run's weights next to the oracle's, on the first documents.
        let oracle = weighted_docs(&Weigher::<B>::Answers, &tokenizer.encoder(), &docs, config.max_doc_tokens)?;
        let report = weights_report(&strategy.to_string(), &docs, &stream, &oracle, &tokenizer.encoder(), 8)?;
        camels_model::hf::write_atomic(&qa.out.join("report.html"), report.as_bytes())?;
        tracing::info!(strategy = %strategy, docs = stream.len(), lr = config.lr, "adapting");
        let bar = indicatif::ProgressBar::new((stream.len() * config.epochs) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} docs  {per_sec}  eta {eta}  {msg}")
                .expect("valid template"),
        );
        let mut on_progress = |p: Progress| {
            bar.set_position(p.done as u64);
            if p.loss.is_finite() {
                bar.set_message(format!("loss {:.4}", p.loss));
            }
        };
        let control = RunControl {
            checkpoint_dir: (config.checkpoint_every > 0).then(|| checkpoint_dir.clone()),
            stop_after: args.stop_after,
            progress: Some(&mut on_progress),
        };
        let (model, report) = adapt(model, &stream, &config, control)?;
        bar.finish_and_clear();
        if !report.skipped.is_empty() {
            tracing::warn!(n = report.skipped.len(), ids = ?report.skipped, "documents skipped for a non-finite loss");
        }
        // A run that skipped most of its stream diverged: its numbers would look like a result.
        anyhow::ensure!(
            report.skipped.len() * 2 <= report.docs_done.min(stream.len()),
            "adaptation diverged: {} of {} documents had a non-finite loss or gradient and were skipped \
             (first: {}); lr {:e} is probably too high. Nothing was evaluated or saved",
            report.skipped.len(),
            report.docs_done.min(stream.len()),
            report.skipped.first().map_or("-", String::as_str),
            config.lr
        );
        if !report.too_short.is_empty() {
            tracing::warn!(n = report.too_short.len(), ids = ?report.too_short, "documents skipped: fewer than 2 tokens");
        }
        if !report.finished {
            // A partial run leaves only its checkpoint: evaluating or saving it would look final.
            println!(
                "stopped after {} of {} documents; rerun the same command to resume from {}",
                report.docs_done,
                stream.len() * config.epochs,
                checkpoint_dir.display()
            );
            return Ok(None);
        }
        let model = model.valid();
        if args.save_model {
            let dir = qa.out.join("model");
            anyhow::ensure!(
                params_finite(&model),
                "the adapted model has non-finite weights; not writing it to {} (lower the learning rate)",
                dir.display()
            );
            save_base(&model, &model_config, Some(&tokenizer), &dir)?;
            tracing::info!("adapted model written to {}", dir.display());
        }

        tracing::info!("evaluating after adaptation");
        let (mut predictions, ppl_after, qa_seconds) = evaluate(&model, &tokenizer, &docs, &unrelated, &eval, &device)?;
        if let Some((before, _, _)) = &before {
            for (p, b) in predictions.iter_mut().zip(before) {
                p.nll_before = Some(b.nll);
                p.f1_before = Some(b.f1);
                p.em_strict_before = Some(b.em_strict);
            }
        }
        let swapped_after = nlls(&model, &swapped.items)?;
        for (k, (&i, &a)) in swapped.index.iter().zip(&swapped_after).enumerate() {
            predictions[i].swapped_nll_before = swapped_before.get(k).copied();
            predictions[i].swapped_nll = Some(a);
        }
        write_predictions_csv(&qa.out.join("predictions.csv"), &predictions)?;
        let gold = |f: fn(&Prediction) -> Option<f64>| -> Vec<f64> {
            swapped.index.iter().filter_map(|&i| f(&predictions[i])).collect()
        };
        // Without --eval-before there is no before, and the fact gain is left to `compare`.
        let fact = if args.eval_before {
            fact_gain(&gold(|p| p.nll_before), &gold(|p| Some(p.nll)), &swapped_before, &swapped_after)
        } else {
            None
        };
        let summary = Summary {
            strategy: strategy.to_string(),
            lr: config.lr,
            n_docs: docs.len(),
            unrelated_ppl_before: before.as_ref().and_then(|b| b.1),
            unrelated_ppl_after: ppl_after,
            precision: config.matmul_precision.to_string(),
            control_file: args.control.as_ref().map(|p| p.display().to_string()),
            control_questions: control_items.len(),
            control_answer_nll_before: control_before,
            control_answer_nll_after: mean(&nlls(&model, &control_items)?),
            swapped_questions: swapped.items.len(),
            swapped_answer_nll_before: mean(&swapped_before),
            swapped_answer_nll_after: mean(&swapped_after),
            fact_gain: fact,
            docs_skipped: report.skipped.len(),
            skipped_docs: report.skipped.clone(),
            docs_too_short: report.too_short.len(),
            too_short_docs: report.too_short.clone(),
            steps: report.steps,
            adapt_seconds: report.seconds,
            adapt_tokens_per_s: report.tokens as f64 / report.seconds.max(1e-9),
            questions_per_s: predictions.len() as f64 / qa_seconds.max(1e-9),
            decoding: format!("{:?}", eval.decoding),
            inputs,
            ..Summary::default()
        }
        .with_predictions(&predictions);
        write_summary(&qa.out.join("summary.json"), &summary)?;
        Ok(Some(summary))
    }
}

struct EvalJob {
    qa: QaArgs,
}

impl BackendJob for EvalJob {
    type Output = Result<Summary>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let qa = &self.qa;
        check_qa_args(qa)?;
        let _lock = RunLock::acquire(&qa.out)?; // one writer per output directory
        let (model, model_config) =
            load_base::<B>(&qa.base, &device).with_context(|| format!("loading the model in {}", qa.base.display()))?;
        let tokenizer = load_tokenizer(&qa.base, &model_config)?;
        let mut inputs = Vec::new();
        let docs = read_stream(qa, &mut inputs)?;
        let unrelated = read_unrelated(qa, &mut inputs)?;
        let eval = eval_config(qa);
        let (mut predictions, ppl, seconds) = evaluate(&model, &tokenizer, &docs, &unrelated, &eval, &device)?;
        // Swapped answers' NLL, for the fact gain `compare` computes against a baseline's before.
        let swapped = swapped_answers(&docs);
        let swapped_nlls = answer_nlls(&model, &tokenizer.encoder(), &swapped.items, &eval, &device)?;
        for (&i, &a) in swapped.index.iter().zip(&swapped_nlls) {
            predictions[i].swapped_nll = Some(a);
        }
        write_predictions_csv(&qa.out.join("predictions.csv"), &predictions)?;
        let summary = Summary {
            strategy: "none".into(),
            n_docs: docs.len(),
            swapped_questions: swapped.items.len(),
            swapped_answer_nll_after: mean(&swapped_nlls),
            unrelated_ppl_after: ppl,
            questions_per_s: predictions.len() as f64 / seconds.max(1e-9),
            decoding: format!("{:?}", eval.decoding),
            inputs,
            ..Summary::default()
        }
        .with_predictions(&predictions);
        write_summary(&qa.out.join("summary.json"), &summary)?;
        Ok(summary)
    }
}

/// Runs `camels-cli adapt`.
pub fn run_adapt(args: AdaptArgs) -> Result<()> {
    let (device, json, out) = (args.qa.device, args.qa.json, args.qa.out.clone());
    if let Some(summary) = run_on(device, AdaptJob { args })?? {
        print_summary(&summary, json)?;
        report_outputs(&out, json);
    }
    Ok(())
}

/// Runs `camels-cli eval`.
pub fn run_eval(qa: QaArgs) -> Result<()> {
    let (device, json, out) = (qa.device, qa.json, qa.out.clone());
    let summary = run_on(device, EvalJob { qa })??;
    print_summary(&summary, json)?;
    report_outputs(&out, json);
    Ok(())
}

fn report_outputs(out: &Path, json: bool) {
    if !json {
        println!("wrote {} and {}", out.join("predictions.csv").display(), out.join("summary.json").display());
    }
}
