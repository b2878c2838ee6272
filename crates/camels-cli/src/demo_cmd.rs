//! `camels-cli demo` (the end-to-end demo, see `camels_meta::demo`), `camels-cli pretrain` (its
//! tokenizer and two base LMs alone) and `camels-cli qa-tune` (QA fine-tuning of a base LM with
//! validation, early stopping and the best model kept).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::prelude::*;
use camels_data::read_any;
use camels_meta::demo::{DemoConfig, DemoResults, results_markdown, run_demo, train_base, world_tokenizer};
use camels_meta::eval::EvalConfig;
use camels_meta::pretrain::{QaSplits, QaTuneConfig, QaTuneReport, qa_tune};
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use camels_model::hf::{load_base, load_tokenizer, save_base, write_atomic};
use clap::Args;

/// Arguments of `demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder: world/, tokenizer.json, base-*/, meta/, results.json, results.md, report.html.
    #[arg(long)]
    out: PathBuf,
    /// Override a demo setting: `--set small.lm_steps=200`, `--set lrs=[1e-4,1e-3]` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run on the SQuAD v1.1 files of this data folder (`squad_v1.1/`, `openwebtext_sample/`, as in
    /// ../shared/data) instead of the synthetic world; the `squad` preset of the demo.
    #[arg(long, value_name = "DATA_DIR")]
    squad: Option<PathBuf>,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

struct DemoJob {
    config: DemoConfig,
    out: PathBuf,
}

impl BackendJob for DemoJob {
    type Output = Result<DemoResults>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        Ok(run_demo::<B>(&self.config, &self.out, &device, &mut |line| eprintln!("{line}"))?)
    }
}

/// Runs `demo`.
pub fn demo_cmd(args: DemoArgs) -> Result<()> {
    let base = match &args.squad {
        Some(data) => DemoConfig::squad(data),
        None => DemoConfig::default(),
    };
    let config = DemoConfig::from_base_with_overrides(base, &args.set)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let results = run_on(args.device, DemoJob { config, out: args.out.clone() })??;
    println!("{}", results_markdown(&results));
    println!(
        "wrote {}, {} and {}",
        args.out.join("results.json").display(),
        args.out.join("results.md").display(),
        args.out.join("report.html").display()
    );
    Ok(())
}

/// Arguments of `pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// A synthetic world directory (`camels-cli data synth`): pretrain.jsonl is trained on; every
    /// split and unrelated.txt train the tokenizer.
    #[arg(long)]
    data: PathBuf,
    /// Output folder: tokenizer.json, base-small/, base-large/ (HF layout).
    #[arg(long)]
    out: PathBuf,
    /// Override a demo setting (`vocab`, `seed`, `small.*`, `large.*`), e.g. `--set large.n_layer=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

struct PretrainJob {
    args: PretrainArgs,
    config: DemoConfig,
}

impl BackendJob for PretrainJob {
    type Output = Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let (a, c) = (&self.args, &self.config);
        let (pretrain_docs, tokenizer) = world_tokenizer(&a.data, c.vocab)
            .with_context(|| format!("training the tokenizer on {}", a.data.display()))?;
        std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
        tokenizer.save(&a.out.join("tokenizer.json"))?;
        for spec in [&c.small, &c.large] {
            let dir = a.out.join(format!("base-{}", spec.name));
            train_base::<B>(spec, &tokenizer, &pretrain_docs, c.seed, &dir, &device, &mut |line| eprintln!("{line}"))?;
        }
        Ok(())
    }
}

/// Runs `pretrain`.
pub fn pretrain_cmd(args: PretrainArgs) -> Result<()> {
    let config = DemoConfig::with_overrides(&args.set)?;
    let (device, out) = (args.device, args.out.clone());
    run_on(device, PretrainJob { args, config })??;
    println!("wrote {} (tokenizer.json, base-*/)", out.display());
    Ok(())
}

/// Arguments of `qa-tune`.
#[derive(Args, Debug)]
pub struct QaTuneArgs {
    /// HF-layout base LM directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    base: PathBuf,
    /// Documents whose question–answer pairs are trained on (any format `data stats` reads).
    #[arg(long)]
    train: PathBuf,
    /// Documents whose questions validate (answer NLL for early stopping, F1).
    #[arg(long)]
    val: PathBuf,
    /// Output HF directory of the best model; qa_tune.json holds the validations.
    #[arg(long)]
    out: PathBuf,
    /// Override a setting of the demo preset: `--set lr=3e-4`, `--set max_steps=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// New tokens per generated answer in validation.
    #[arg(long, default_value_t = 16)]
    max_new_tokens: usize,
    /// Device: cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

struct QaTuneJob {
    args: QaTuneArgs,
    config: QaTuneConfig,
}

impl BackendJob for QaTuneJob {
    type Output = Result<QaTuneReport>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let a = &self.args;
        let (model, model_config) = load_base::<Autodiff<B>>(&a.base, &device)
            .with_context(|| format!("loading the model in {}", a.base.display()))?;
        let tokenizer = load_tokenizer(&a.base, &model_config)?;
        let read = |path: &PathBuf| {
            read_any(path, None, false).map(|d| d.documents).with_context(|| format!("reading {}", path.display()))
        };
        let (train, val) = (read(&a.train)?, read(&a.val)?);
        let eval = EvalConfig { max_new_tokens: a.max_new_tokens, ..EvalConfig::default() };
        let data = QaSplits { train: &train, val: &val };
        let (best, report) = qa_tune(model, &tokenizer, data, &self.config, &eval, &device, &mut |v| {
            eprintln!("step {}: validation answer NLL {:.4}, F1 {:.2}, EM {:.2}", v.step, v.answer_nll, v.f1, v.em)
        })?;
        save_base(&best, &model_config, Some(&tokenizer), &a.out)?;
        write_atomic(&a.out.join("qa_tune.json"), &serde_json::to_vec_pretty(&report)?)?;
        Ok(report)
    }
}

/// Runs `qa-tune`.
pub fn qa_tune_cmd(args: QaTuneArgs) -> Result<()> {
    let config = QaTuneConfig::demo();
    let mut table = toml::Table::try_from(&config)?;
    for assignment in &args.set {
        camels_meta::config::apply_override(&mut table, assignment)?;
    }
    let config: QaTuneConfig = toml::Value::Table(table).try_into().context("--set: a qa-tune setting")?;
    config.validate()?;
    let (device, out) = (args.device, args.out.clone());
    let report = run_on(device, QaTuneJob { args, config })??;
    println!(
        "kept step {} of {} (validation answer NLL {:.4}, F1 {:.2}){}; wrote {}",
        report.best.step,
        report.steps,
        report.best.answer_nll,
        report.best.f1,
        if report.stopped_early { ", stopped early" } else { "" },
        out.display()
    );
    Ok(())
}
