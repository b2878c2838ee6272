//! `camels-cli bench`: timed runs whose JSON `cargo xtask bench` collects into BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::Distribution;
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use camels_model::gpt2::Gpt2Config;
use camels_model::loss::token_cross_entropy;
use clap::Subcommand;
use serde::Serialize;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Forward + backward of a randomly initialised GPT-2 on one batch, mean token CE.
    ForwardBackward {
        /// Model size: tiny, distilgpt2, gpt2, gpt2-medium, gpt2-large, gpt2-xl.
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
        /// Device: cpu, wgpu[:N] or cuda[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// One benchmark's result.
#[derive(Debug, Serialize)]
pub struct FwdBwdResult {
    pub bench: &'static str,
    pub implementation: &'static str,
    pub device: String,
    pub preset: String,
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
        BenchCommand::ForwardBackward { preset, seq, batch, iters, device, json } => {
            let config = Gpt2Config::preset(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            let job = FwdBwd { config, seq, batch, iters };
            let seconds = run_on(device, job)?;
            let median_seconds = median(&seconds);
            let result = FwdBwdResult {
                bench: "forward_backward",
                implementation: "camels (burn 0.21.0)",
                device: device.to_string(),
                preset,
                batch,
                seq,
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                iters,
                seconds,
                median_seconds,
                tokens_per_second: (batch * seq) as f64 / median_seconds,
            };
            let text = serde_json::to_string_pretty(&result)?;
            println!("{text}");
            if let Some(path) = json {
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
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
    config: Gpt2Config,
    seq: usize,
    batch: usize,
    iters: usize,
}

impl BackendJob for FwdBwd {
    type Output = Vec<f64>;
    fn run<B: Backend>(self, device: B::Device) -> Vec<f64> {
        type A<B> = Autodiff<B>;
        let model = self.config.init::<A<B>>(&device);
        let ids = Tensor::<A<B>, 2>::random(
            [self.batch, self.seq],
            Distribution::Uniform(0.0, self.config.vocab_size as f64 - 1.0),
            &device,
        )
        .int();
        let step = || {
            let start = Instant::now();
            let loss = token_cross_entropy(model.forward(ids.clone()), ids.clone()).mean();
            let grads = loss.backward();
            drop(grads);
            B::sync(&device).expect("device sync");
            start.elapsed().as_secs_f64()
        };
        let warmup = step();
        tracing::info!(warmup, "warm-up step");
        (0..self.iters)
            .map(|i| {
                let s = step();
                tracing::info!(iteration = i, seconds = s, "timed step");
                s
            })
            .collect()
    }
}
