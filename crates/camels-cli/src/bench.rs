//! `camels-cli bench`: timed runs whose JSON `cargo xtask bench` and `cargo xtask gpu-check` collect
//! into BENCHMARKS.md. Each run reports its warm-up (kernel compilation, autotune) apart from the
//! timed steady-state iterations, and the process's peak resident memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use camels_meta::adafactor::AdafactorConfig;
use camels_meta::metagrad::{
    InnerStep, MetaGradMode, MetaProblem, Rows, meta_gradient_checkpointed, weighting_gradient,
};
use camels_model::base::BaseConfig;
use camels_model::base::MatmulPrecision;
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use camels_model::generate::{GenerateConfig, generate};
use camels_model::loss::{Reduction, token_cross_entropy, weighted_loss};
use camels_model::weighting::WeightingModelConfig;
use clap::Subcommand;
use serde::Serialize;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Forward + backward of a randomly initialised base LM (any family) on one batch, mean token CE.
    ForwardBackward {
        /// Model size: a GPT-2 preset (tiny, distilgpt2, gpt2, gpt2-medium, gpt2-large, gpt2-xl) or a
        /// Llama one (tiny-llama, smollm2-135m, smollm2-360m, tinyllama-1b).
        #[arg(long, default_value = "distilgpt2")]
        preset: String,
        /// Sequence length T.
        #[arg(long, default_value_t = 1024)]
        seq: usize,
        /// Batch size B.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Timed iterations after one warm-up.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Element type of the matrix products: f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        precision: MatmulPrecision,
        /// Device: cpu, wgpu[:N] or cuda[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One online-adaptation step: forward, backward and an Adam (or Adafactor) update of the base LM
    /// on one document.
    AdaptStep {
        /// Base model size.
        #[arg(long, default_value = "distilgpt2")]
        preset: String,
        /// adam or adafactor.
        #[arg(long, default_value = "adam")]
        optimizer: String,
        /// Document length T.
        #[arg(long, default_value_t = 1024)]
        seq: usize,
        /// Timed iterations after one warm-up.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Element type of the matrix products: f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        precision: MatmulPrecision,
        /// Device: cpu, wgpu[:N], cuda[:N], cuda-raw[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One CaMeLS meta-step: the weighting model on K documents, the meta-gradient through K inner
    /// SGD steps of the base, the backward into the weighting model and its Adam update.
    MetaStep {
        /// Base model size.
        #[arg(long, default_value = "distilgpt2")]
        preset: String,
        /// Weighting model trunk size (a preset of any family; its vocabulary becomes the base's).
        #[arg(long, default_value = "distilgpt2")]
        weighting: String,
        /// Keep only the trunk's first N blocks (0: all), as `weighting.n_layer` does.
        #[arg(long, default_value_t = 0)]
        weighting_layers: usize,
        /// Documents per meta-step (K).
        #[arg(long, default_value_t = 6)]
        docs: usize,
        /// Document length T.
        #[arg(long, default_value_t = 1024)]
        seq: usize,
        /// Question+answer row length (K rows).
        #[arg(long, default_value_t = 64)]
        qa_len: usize,
        /// Unrelated-text length for the locality term (one row).
        #[arg(long, default_value_t = 1024)]
        loc_len: usize,
        /// Meta-gradient: exact, central-difference, first-order or full-unroll.
        #[arg(long, default_value = "exact")]
        mode: String,
        /// Store θ_k for every S-th inner step and recompute the others (1: store all; ≥ K: θ₀ only;
        /// full-unroll ignores it).
        #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        store_theta_every: usize,
        /// Timed iterations after one warm-up.
        #[arg(long, default_value_t = 2)]
        iters: usize,
        /// Element type of the base LM's matrix products (the weighting model stays f32): f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        precision: MatmulPrecision,
        /// Device: cpu, wgpu[:N], cuda[:N], cuda-raw[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// How close the first-order (or central-difference) meta-gradient comes to the exact one on a
    /// real run's first meta-problems (its config: base, data, K, inner lr; φ at initialisation).
    MetaGrad {
        /// Run configuration (TOML, see configs/).
        #[arg(long)]
        config: PathBuf,
        /// Override a key: `--set inner.inner_lr=5e-4` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Meta-problems compared (the run's steps 1..N).
        #[arg(long, default_value_t = 3)]
        problems: usize,
        /// The approximation: first-order or central-difference.
        #[arg(long, default_value = "first-order")]
        mode: String,
        /// Device: cpu, wgpu[:N], cuda[:N], cuda-raw[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Answer generation as evaluation runs it: batches of question prompts, a KV cache, greedy or
    /// beam decoding of a fixed number of new tokens (no row stops early).
    Generate {
        /// Model size.
        #[arg(long, default_value = "distilgpt2")]
        preset: String,
        /// Questions per generation batch.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Prompt length, tokens (a SQuAD question prompt is about 15–30).
        #[arg(long, default_value_t = 24)]
        prompt_len: usize,
        /// New tokens generated per question.
        #[arg(long, default_value_t = 16)]
        new_tokens: usize,
        /// Beams (1 = greedy).
        #[arg(long, default_value_t = 1)]
        num_beams: usize,
        /// Timed batches after one warm-up batch.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Device: cpu, wgpu[:N], cuda[:N], cuda-raw[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// The answer-generation benchmark's result.
#[derive(Debug, Serialize)]
pub struct GenerateResult {
    pub bench: &'static str,
    pub device: String,
    pub preset: String,
    pub batch: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub num_beams: usize,
    pub threads: usize,
    /// The first batch, kernel compilation and autotuning included.
    pub warmup_seconds: f64,
    /// Seconds per batch.
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub questions_per_second: f64,
    /// Generated tokens per second (questions × new tokens).
    pub new_tokens_per_second: f64,
    pub peak_rss_gib: f64,
}

/// One step-type benchmark's result (adaptation or meta-step).
#[derive(Debug, Serialize)]
pub struct StepResult {
    pub bench: &'static str,
    pub device: String,
    pub preset: String,
    /// The base LM's optimizer (adaptation steps only).
    pub optimizer: Option<String>,
    /// Element type of the base LM's matrix products.
    pub precision: String,
    pub weighting: Option<String>,
    pub mode: Option<String>,
    /// The meta-step's `store_theta_every` (meta-steps only).
    pub store_theta_every: Option<usize>,
    pub docs: usize,
    pub seq: usize,
    pub threads: usize,
    /// The first step, kernel compilation and autotuning included.
    pub warmup_seconds: f64,
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub tokens_per_second: f64,
    /// Peak resident memory of the process (host RAM; GPU memory is sampled outside).
    pub peak_rss_gib: f64,
}

/// One benchmark's result.
#[derive(Debug, Serialize)]
pub struct FwdBwdResult {
    pub bench: &'static str,
    pub implementation: &'static str,
    pub device: String,
    pub preset: String,
    /// Element type of the matrix products.
    pub precision: String,
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    pub iters: usize,
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub tokens_per_second: f64,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::ForwardBackward { preset, seq, batch, iters, precision, device, json } => {
            let config = BaseConfig::preset(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            let job = FwdBwd { config, seq, batch, iters, precision };
            let seconds = run_on(device, job)?;
            let median_seconds = median(&seconds);
            let result = FwdBwdResult {
                bench: "forward_backward",
                implementation: "camels (burn 0.21.0)",
                device: device.to_string(),
                preset,
                precision: precision.to_string(),
                batch,
                seq,
                threads: threads(),
                iters,
                seconds,
                median_seconds,
                tokens_per_second: (batch * seq) as f64 / median_seconds,
            };
            emit(&result, json)
        }
        BenchCommand::AdaptStep { preset, optimizer, seq, iters, precision, device, json } => {
            let config = BaseConfig::preset(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            let adafactor = match optimizer.as_str() {
                "adam" => false,
                "adafactor" => true,
                other => anyhow::bail!("unknown --optimizer `{other}`: adam or adafactor"),
            };
            let (warmup_seconds, seconds) = run_on(device, AdaptStep { config, seq, iters, adafactor, precision })?;
            let median_seconds = median(&seconds);
            let result = StepResult {
                bench: "adapt_step",
                device: device.to_string(),
                preset,
                optimizer: Some(optimizer),
                precision: precision.to_string(),
                weighting: None,
                mode: None,
                store_theta_every: None,
                docs: 1,
                seq,
                threads: threads(),
                warmup_seconds,
                seconds,
                median_seconds,
                tokens_per_second: seq as f64 / median_seconds,
                peak_rss_gib: peak_rss_gib(),
            };
            emit(&result, json)
        }
        BenchCommand::MetaStep {
            preset,
            weighting,
            weighting_layers,
            docs,
            seq,
            qa_len,
            loc_len,
            mode,
            store_theta_every,
            iters,
            precision,
            device,
            json,
        } => {
            let config = BaseConfig::preset(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            let trunk = BaseConfig::preset(&weighting).with_context(|| format!("unknown preset `{weighting}`"))?;
            let trunk = match weighting_layers {
                0 => trunk,
                n => trunk.with_num_layers(n),
            }
            .with_vocab_size(config.vocab_size());
            let meta_mode = match mode.as_str() {
                "exact" => MetaGradMode::Exact,
                "central-difference" => MetaGradMode::central_difference(),
                "first-order" => MetaGradMode::first_order(),
                "full-unroll" => MetaGradMode::FullUnroll,
                other => anyhow::bail!("unknown --mode `{other}`: exact, central-difference, first-order, full-unroll"),
            };
            let job = MetaStep {
                config,
                trunk,
                docs,
                seq,
                qa_len,
                loc_len,
                mode: meta_mode,
                store_theta_every,
                iters,
                precision,
            };
            let (warmup_seconds, seconds) = run_on(device, job)??;
            let median_seconds = median(&seconds);
            let result = StepResult {
                bench: "meta_step",
                optimizer: None,
                precision: precision.to_string(),
                device: device.to_string(),
                preset,
                weighting: Some(weighting),
                mode: Some(mode),
                store_theta_every: Some(store_theta_every),
                docs,
                seq,
                threads: threads(),
                warmup_seconds,
                seconds,
                median_seconds,
                tokens_per_second: (docs * seq) as f64 / median_seconds,
                peak_rss_gib: peak_rss_gib(),
            };
            emit(&result, json)
        }
        BenchCommand::MetaGrad { config, set, problems, mode, device, json } => {
            let approx = match mode.as_str() {
                "first-order" => MetaGradMode::first_order(),
                "central-difference" => MetaGradMode::central_difference(),
                other => anyhow::bail!("unknown --mode `{other}`: first-order or central-difference"),
            };
            let run = camels_meta::config::MetaTrainConfig::from_file(&config, &set)?;
            let results = run_on(device, MetaGradJob { config: run.clone(), problems, approx })??;
            let pick =
                |f: fn(&camels_meta::train::ModeAgreement) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
            let result = serde_json::json!({
                "bench": "meta_grad_agreement",
                "config": config,
                "overrides": set,
                "device": device.to_string(),
                "mode": mode,
                "inner_lr": run.inner.inner_lr,
                "docs": run.inner.update_batch_size,
                "max_doc_tokens": run.data.max_doc_tokens,
                "threads": threads(),
                "median_cosine": pick(|r| r.cosine),
                "median_relative_error": pick(|r| r.relative_error),
                "median_phi_cosine": pick(|r| r.phi_cosine),
                "median_exact_seconds": pick(|r| r.exact_seconds),
                "median_approx_seconds": pick(|r| r.approx_seconds),
                "problems": results,
                "peak_rss_gib": peak_rss_gib(),
            });
            emit(&result, json)
        }
        BenchCommand::Generate { preset, batch, prompt_len, new_tokens, num_beams, iters, device, json } => {
            let config = BaseConfig::preset(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            anyhow::ensure!(
                batch > 0 && prompt_len > 0 && num_beams > 0,
                "--batch, --prompt-len and --num-beams must be positive"
            );
            anyhow::ensure!(
                prompt_len + new_tokens <= config.max_positions(),
                "--prompt-len + --new-tokens ({}) exceeds the model's {} positions",
                prompt_len + new_tokens,
                config.max_positions()
            );
            let job = Generate { config, batch, prompt_len, new_tokens, num_beams, iters };
            let (warmup_seconds, seconds) = run_on(device, job)??;
            let median_seconds = median(&seconds);
            let result = GenerateResult {
                bench: "generate",
                device: device.to_string(),
                preset,
                batch,
                prompt_len,
                new_tokens,
                num_beams,
                threads: threads(),
                warmup_seconds,
                seconds,
                median_seconds,
                questions_per_second: batch as f64 / median_seconds,
                new_tokens_per_second: (batch * new_tokens) as f64 / median_seconds,
                peak_rss_gib: peak_rss_gib(),
            };
            emit(&result, json)
        }
    }
}

fn emit(result: &impl Serialize, json: Option<PathBuf>) -> Result<()> {
    let text = serde_json::to_string_pretty(result)?;
    println!("{text}");
    if let Some(path) = json {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The process's peak resident set (VmHWM), in GiB; 0 where /proc is absent.
fn peak_rss_gib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

/// Random token ids in `[0, vocab)`. // [B, T]
fn random_ids<B: Backend>(batch: usize, seq: usize, vocab: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::<B, 2>::random([batch, seq], Distribution::Uniform(0.0, vocab as f64 - 1.0), device).int()
}

/// Host-side rows of random ids, all real.
fn random_rows<B: Backend>(batch: usize, seq: usize, vocab: usize, device: &B::Device) -> Rows {
    let ids = random_ids::<B>(batch, seq, vocab, device).into_data().convert::<i64>().to_vec::<i64>().expect("ids");
    Rows::new(ids, vec![1.0; batch * seq], batch, seq).expect("consistent sizes")
}

/// Runs `step` once to warm up, then `iters` times; returns (warm-up seconds, timed seconds).
fn timed(iters: usize, mut step: impl FnMut() -> f64) -> (f64, Vec<f64>) {
    let warmup = step();
    tracing::info!(warmup, "warm-up step");
    let seconds = (0..iters)
        .map(|i| {
            let s = step();
            tracing::info!(iteration = i, seconds = s, "timed step");
            s
        })
        .collect();
    (warmup, seconds)
}

struct AdaptStep {
    config: BaseConfig,
    seq: usize,
    iters: usize,
    adafactor: bool,
    precision: MatmulPrecision,
}

impl BackendJob for AdaptStep {
    type Output = (f64, Vec<f64>);
    fn run<B: Backend>(self, device: B::Device) -> (f64, Vec<f64>) {
        type M<B> = camels_model::base::BaseLm<Autodiff<B>>;
        if self.adafactor {
            self.steps::<B, _>(AdafactorConfig::default().init::<Autodiff<B>, M<B>>(), device)
        } else {
            self.steps::<B, _>(AdamConfig::new().init::<Autodiff<B>, M<B>>(), device)
        }
    }
}

impl AdaptStep {
    fn steps<B: Backend, O: Optimizer<camels_model::base::BaseLm<Autodiff<B>>, Autodiff<B>>>(
        self,
        mut optim: O,
        device: B::Device,
    ) -> (f64, Vec<f64>) {
        type A<B> = Autodiff<B>;
        let mut model = Some(self.config.init::<A<B>>(&device).with_precision(self.precision));
        let ids = random_ids::<A<B>>(1, self.seq, self.config.vocab_size(), &device); // [1, T]
        let mask = Tensor::<A<B>, 2>::ones([1, self.seq], &device); // [1, T]
        timed(self.iters, || {
            let start = Instant::now();
            let m = model.take().expect("model");
            let loss = weighted_loss(
                token_cross_entropy(m.forward(ids.clone()), ids.clone()),
                mask.clone(),
                mask.clone(),
                Reduction::MeanReal,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            let m = optim.step(1e-5, m, grads);
            B::sync(&device).expect("device sync");
            model = Some(m);
            start.elapsed().as_secs_f64()
        })
    }
}

struct MetaGradJob {
    config: camels_meta::config::MetaTrainConfig,
    problems: usize,
    approx: MetaGradMode,
}

impl BackendJob for MetaGradJob {
    type Output = Result<Vec<camels_meta::train::ModeAgreement>>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        Ok(camels_meta::train::meta_grad_agreement::<B>(&self.config, self.problems, self.approx, &device, &mut |r| {
            eprintln!(
                "meta-step {}: cos {:.4}, relative error {:.4}, |approx|/|exact| {:.4}, same sign {:.3}, \
                 dJ/dphi cos {:.4} ({:.1} s exact, {:.1} s approximate)",
                r.step,
                r.cosine,
                r.relative_error,
                r.norm_ratio,
                r.sign_agreement,
                r.phi_cosine,
                r.exact_seconds,
                r.approx_seconds
            )
        })?)
    }
}

struct MetaStep {
    config: BaseConfig,
    trunk: BaseConfig,
    docs: usize,
    seq: usize,
    qa_len: usize,
    loc_len: usize,
    mode: MetaGradMode,
    store_theta_every: usize,
    iters: usize,
    precision: MatmulPrecision,
}

impl BackendJob for MetaStep {
    type Output = camels_meta::Result<(f64, Vec<f64>)>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        type A<B> = Autodiff<B>;
        let vocab = self.config.vocab_size();
        let base = self.config.init::<B>(&device).with_precision(self.precision);
        let mut phi = Some(WeightingModelConfig::new().with_trunk(self.trunk.clone()).init::<A<B>>(&device));
        let mut optim = AdamConfig::new().init::<A<B>, camels_model::weighting::WeightingModel<A<B>>>();
        let docs: Vec<Rows> = (0..self.docs).map(|_| random_rows::<B>(1, self.seq, vocab, &device)).collect();
        // Questions+answers: the loss is on the last quarter of each row (the answer).
        let qa = random_rows::<B>(self.docs, self.qa_len, vocab, &device);
        let qa_targets = (0..self.docs * self.qa_len)
            .map(|i| if i % self.qa_len >= self.qa_len * 3 / 4 { 1.0 } else { 0.0 })
            .collect();
        let problem = MetaProblem {
            docs,
            qa,
            qa_targets,
            locality: random_rows::<B>(1, self.loc_len, vocab, &device),
            control: None,
            inner_lr: 5e-4,
            inner_step: InnerStep::Sgd,
            c_kl: 0.1,
            reduction: Reduction::MeanPadded,
        };
        let mut failure = None;
        let timings = timed(self.iters, || {
            let start = Instant::now();
            let model = phi.take().expect("weighting model");
            let weights: Vec<Tensor<B, 2>> =
                problem.docs.iter().map(|d| model.valid().forward(d.ids(&device), d.mask(&device))).collect();
            let step = meta_gradient_checkpointed(&base, &weights, &problem, self.mode, self.store_theta_every)
                .and_then(|g| weighting_gradient(&model, &problem.docs, &g.dj_dw, &device));
            let model = match step {
                Ok(grads) => optim.step(1e-5, model, grads),
                Err(e) => {
                    failure = Some(e);
                    model
                }
            };
            B::sync(&device).expect("device sync");
            phi = Some(model);
            start.elapsed().as_secs_f64()
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(timings),
        }
    }
}

struct Generate {
    config: BaseConfig,
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
    num_beams: usize,
    iters: usize,
}

impl BackendJob for Generate {
    type Output = camels_model::Result<(f64, Vec<f64>)>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let model = self.config.init::<B>(&device);
        let vocab = self.config.vocab_size();
        // An end-of-sequence id outside the vocabulary: no row stops early, so every batch does the
        // same work. Prompts share one length, so no padding is fed.
        let mut generate_config = if self.num_beams > 1 {
            GenerateConfig::beam(self.num_beams, self.new_tokens, u32::MAX)
        } else {
            GenerateConfig::greedy(self.new_tokens, u32::MAX)
        };
        generate_config.pad_token_id = 0;
        let mut failure = None;
        let timings = timed(self.iters, || {
            let ids = random_ids::<B>(self.batch, self.prompt_len, vocab, &device); // [B, L]
            let ids = ids.into_data().convert::<i64>().to_vec::<i64>().expect("ids");
            let prompts: Vec<Vec<u32>> =
                ids.chunks(self.prompt_len).map(|row| row.iter().map(|&t| t as u32).collect()).collect();
            let start = Instant::now();
            if failure.is_none()
                && let Err(e) = generate(&model, &prompts, &generate_config, &device)
            {
                failure = Some(e); // reported after the loop; later iterations do nothing
            }
            B::sync(&device).expect("device sync");
            start.elapsed().as_secs_f64()
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(timings),
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

struct FwdBwd {
    config: BaseConfig,
    seq: usize,
    batch: usize,
    iters: usize,
    precision: MatmulPrecision,
}

impl BackendJob for FwdBwd {
    type Output = Vec<f64>;
    fn run<B: Backend>(self, device: B::Device) -> Vec<f64> {
        type A<B> = Autodiff<B>;
        let model = self.config.init::<A<B>>(&device).with_precision(self.precision);
        let ids = random_ids::<A<B>>(self.batch, self.seq, self.config.vocab_size(), &device); // [B, T]
        let step = || {
            let start = Instant::now();
            let loss = token_cross_entropy(model.forward(ids.clone()), ids.clone()).mean();
            let grads = loss.backward();
            drop(grads);
            B::sync(&device).expect("device sync");
            start.elapsed().as_secs_f64()
        };
        timed(self.iters, step).1
    }
}
