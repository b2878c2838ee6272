//! `camels-cli meta-train` (the CaMeLS loop, with a progress bar), `camels-cli probe` (the weighting
//! model's head fitted to answer spans: the trunk's supervised ceiling) and `camels-cli pretrain-base`
//! (a small QA-tuned base LM for the synthetic world).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use camels_meta::config::MetaTrainConfig;
use camels_meta::demo::{BaseSpec, DemoConfig, train_base, world_tokenizer};
use camels_meta::probe::{ProbeConfig, ProbeSummary, fit_answer_probe};
use camels_meta::train::{Event, meta_train};
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Prints a line above the bar, or to stderr when the bar is hidden (not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Arguments of `meta-train`.
#[derive(Args, Debug)]
pub struct MetaTrainArgs {
    /// Run configuration (TOML, see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Override a key: `--set outer.outer_lr=3e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Run directory (resumed when it holds a checkpoint).
    #[arg(long)]
    out: PathBuf,
}

struct MetaTrainJob {
    config: MetaTrainConfig,
    out: PathBuf,
}

impl BackendJob for MetaTrainJob {
    type Output = Result<camels_meta::train::TrainSummary>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let bar = ProgressBar::new(self.config.run.steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        let mut val = String::from("val –");
        let summary = meta_train::<B>(&self.config, &self.out, &device, &mut |event| match event {
            Event::Resumed { step } => {
                bar.set_position(*step as u64);
                bar.reset_eta();
                say(&bar, format!("resumed at step {step}"));
            }
            Event::Step { step, outer, .. } => {
                bar.set_position(*step as u64);
                bar.set_message(format!("J {:.4} qa {:.4} kl {:.5} | {val}", outer.total, outer.qa, outer.kl));
            }
            Event::Validated(v) => {
                val = format!("val J {:.4} (uniform {:.4}) ans/other {:.3}", v.outer, v.uniform_outer, v.answer_ratio);
                say(&bar, v.to_string());
            }
            Event::Checkpoint { name, dir } => tracing::debug!(name, dir = %dir.display(), "checkpoint"),
        });
        bar.finish();
        Ok(summary?)
    }
}

/// Runs `meta-train`.
pub fn meta_train_cmd(args: MetaTrainArgs) -> Result<()> {
    let config = MetaTrainConfig::from_file(&args.config, &args.set)?;
    let out = args.out.clone();
    let summary = run_on(args.device, MetaTrainJob { config, out: args.out })??;
    println!(
        "{} after {} meta-steps; run directory {}",
        if summary.finished { "finished" } else { "stopped" },
        summary.step,
        out.display()
    );
    for line in summary.inputs.iter().filter_map(|i| i.skipped_line()) {
        println!("{line} (all in {})", out.join("inputs.json").display());
    }
    Ok(())
}

/// Arguments of `probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Meta-training configuration (TOML): its data, base and weighting model (frozen trunk).
    #[arg(long)]
    config: PathBuf,
    /// Override a key: `--set data.train=…` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Passes over the training tokens.
    #[arg(long, default_value_t = ProbeConfig::default().epochs)]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = ProbeConfig::default().lr)]
    lr: f64,
    /// Tokens per minibatch.
    #[arg(long, default_value_t = ProbeConfig::default().batch_tokens)]
    batch_tokens: usize,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Run directory (rewritten: a probe starts afresh).
    #[arg(long)]
    out: PathBuf,
}

struct ProbeJob {
    config: MetaTrainConfig,
    probe: ProbeConfig,
    out: PathBuf,
}

impl BackendJob for ProbeJob {
    type Output = Result<ProbeSummary>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        println!("epoch  train BCE  val BCE  val AUC  answer/other  effective share");
        let summary = fit_answer_probe::<B>(&self.config, &self.probe, &self.out, &device, &mut |e| {
            println!(
                "{:>5}  {:>9.4}  {:>7.4}  {:>7.4}  {:>12.3}  {:>15.3}",
                e.epoch, e.train_loss, e.val_loss, e.val_auc, e.answer_ratio, e.effective_share
            );
        })?;
        Ok(summary)
    }
}

/// Runs `probe`.
pub fn probe_cmd(args: ProbeArgs) -> Result<()> {
    let config = MetaTrainConfig::from_file(&args.config, &args.set)?;
    let probe = ProbeConfig { epochs: args.epochs, lr: args.lr, batch_tokens: args.batch_tokens };
    let summary = run_on(args.device, ProbeJob { config, probe, out: args.out.clone() })?
        .with_context(|| format!("probe into {}", args.out.display()))?;
    println!(
        "kept epoch {} (lowest validation BCE; {:.1}% of training tokens are answers): {}",
        summary.best,
        100.0 * summary.answer_share,
        summary.checkpoint.display()
    );
    Ok(())
}

/// Arguments of `pretrain-base`; the defaults are the demo's smaller base (`BaseSpec::small`).
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// A synthetic world directory (`camels-cli data synth`): pretrain.jsonl is trained on, all
    /// splits and unrelated.txt train the tokenizer.
    #[arg(long)]
    data: PathBuf,
    /// Output HF directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// BPE vocabulary size.
    #[arg(long, default_value_t = DemoConfig::default().vocab)]
    vocab: usize,
    /// Hidden size.
    #[arg(long, default_value_t = BaseSpec::small().n_embd)]
    n_embd: usize,
    /// Blocks.
    #[arg(long, default_value_t = BaseSpec::small().n_layer)]
    n_layer: usize,
    /// Heads.
    #[arg(long, default_value_t = BaseSpec::small().n_head)]
    n_head: usize,
    /// Positions.
    #[arg(long, default_value_t = BaseSpec::small().n_positions)]
    n_positions: usize,
    /// LM steps.
    #[arg(long, default_value_t = BaseSpec::small().lm_steps)]
    lm_steps: usize,
    /// QA (+ LM) steps.
    #[arg(long, default_value_t = BaseSpec::small().qa_steps)]
    qa_steps: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = BaseSpec::small().batch_size)]
    batch_size: usize,
    /// LM window, tokens.
    #[arg(long, default_value_t = BaseSpec::small().seq_len)]
    seq_len: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = BaseSpec::small().lr)]
    lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

struct PretrainJob(PretrainArgs);

impl BackendJob for PretrainJob {
    type Output = Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        let (pretrain_docs, tokenizer) = world_tokenizer(&a.data, a.vocab)
            .with_context(|| format!("training the tokenizer on {}", a.data.display()))?;
        let spec = BaseSpec {
            name: "base".into(),
            n_embd: a.n_embd,
            n_layer: a.n_layer,
            n_head: a.n_head,
            n_positions: a.n_positions,
            lm_steps: a.lm_steps,
            qa_steps: a.qa_steps,
            batch_size: a.batch_size,
            seq_len: a.seq_len,
            lr: a.lr,
        };
        train_base::<B>(&spec, &tokenizer, &pretrain_docs, a.seed, &a.out, &device, &mut |line| eprintln!("{line}"))?;
        Ok(())
    }
}

/// Runs `pretrain-base`.
pub fn pretrain_cmd(args: PretrainArgs) -> Result<()> {
    let device = args.device;
    run_on(device, PretrainJob(args))?
}
