//! The supervised ceiling of a weighting model: its head fitted by logistic regression to the
//! answer spans that the `answers` oracle weighs, on the frozen trunk's features.
//!
//! A diagnosis, not CaMeLS: it measures how well the trunk can tell answer tokens at all, so that a
//! weighting model falling short of the oracle can be placed — held back by its trunk (the probe
//! falls short too) or by meta-training (the probe does not). The head's output z is read as the
//! logit β·z of "this token lies inside an answer span", so the fitted model weighs tokens by
//! softplus(βz)/β = −ln(1 − p)/β (mean 1 per document when `weighting.normalize`). The trunk is
//! frozen, so its features are computed once; the head trains with Adam on shuffled minibatches of
//! tokens; the epoch with the lowest validation loss is saved as a meta-training checkpoint
//! (`checkpoints/best.json`), which `camels:DIR` reads. A run takes minutes and starts afresh.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::gelu_approximate;
use camels_data::Rng;
use camels_model::base::Positions;
use camels_model::weighting::{WeightActivation, WeightHead, WeightingModel, softplus};
use serde::Serialize;

use crate::EncoderExt;
use crate::checkpoint::{self, TrainState};
use crate::config::MetaTrainConfig;
use crate::error::{MetaError, Result};
use crate::lock::RunLock;
use crate::params::scalar;
use crate::train::{PreparedDoc, RunInputs, initial_weighting, prepare};

/// How the head is fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Passes over the training tokens.
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Tokens per minibatch.
    pub batch_tokens: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { epochs: 20, lr: 1e-3, batch_tokens: 4096 }
    }
}

/// One epoch's measures; the validation ones are over every document of `data.val`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeEpoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean binary cross-entropy over the epoch's training minibatches.
    pub train_loss: f64,
    /// Mean binary cross-entropy on the validation tokens.
    pub val_loss: f64,
    /// Area under the ROC curve of the answer-token logit on the validation tokens.
    pub val_auc: f64,
    /// Mean weight of answer tokens ÷ mean weight of the others (validation, weights as `adapt` uses them).
    pub answer_ratio: f64,
    /// (Σw)² / (n·Σw²) per validation document, averaged: 1 for uniform weights.
    pub effective_share: f64,
}

/// What [`fit_answer_probe`] returns.
#[derive(Debug, Clone)]
pub struct ProbeSummary {
    /// Every epoch, in order.
    pub epochs: Vec<ProbeEpoch>,
    /// The kept epoch (lowest validation loss), 1-based.
    pub best: usize,
    /// Share of training tokens inside answer spans.
    pub answer_share: f64,
    /// The checkpoint directory written.
    pub checkpoint: PathBuf,
}

/// The frozen trunk's features of every real token of `docs`, with their answer labels.
struct Features<B: Backend> {
    /// `[N, C]`.
    x: Tensor<B, 2>,
    /// `[N]`, 1 inside an answer span.
    y: Tensor<B, 1>,
    labels: Vec<bool>,
    /// Real tokens per document, in order (they sum to N).
    lens: Vec<usize>,
}

fn features<B: Backend>(phi: &WeightingModel<B>, docs: &[PreparedDoc], device: &B::Device) -> Features<B> {
    const DOCS_PER_FORWARD: usize = 8;
    let mut parts = Vec::new();
    let (mut labels, mut lens) = (Vec::new(), Vec::new());
    for chunk in docs.chunks(DOCS_PER_FORWARD) {
        let (b, t) = (chunk.len(), chunk[0].ids.len());
        let ids: Vec<i64> = chunk.iter().flat_map(|d| d.ids.iter().copied()).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), device); // [b, T]
        let hidden = phi.trunk.forward(ids, &Positions::causal(b, t)); // [b, T, C]
        let c = hidden.dims()[2];
        for (i, doc) in chunk.iter().enumerate() {
            let n = doc.answer.len();
            parts.push(hidden.clone().slice([i..i + 1, 0..n, 0..c]).reshape([n, c])); // [n, C]
            labels.extend_from_slice(&doc.answer);
            lens.push(n);
        }
    }
    let y: Vec<f32> = labels.iter().map(|&a| f32::from(u8::from(a))).collect();
    let n = y.len();
    Features { x: Tensor::cat(parts, 0), y: Tensor::from_data(TensorData::new(y, [n]), device), labels, lens }
}

/// The answer logit β·z of each row of `x` `[N, C]` → `[N]`.
fn logits<B: Backend>(head: &WeightHead<B>, x: Tensor<B, 2>, beta: f64) -> Tensor<B, 1> {
    let [n, c] = x.dims();
    let raw = head.out.forward(gelu_approximate(head.fc.forward(x.reshape([1, n, c])))); // [1, N, 1]
    raw.reshape([n]) * beta
}

/// Mean binary cross-entropy of logits `z` `[N]` against labels `y` `[N]`: softplus(z) − y·z.
fn bce<B: Backend>(z: Tensor<B, 1>, y: Tensor<B, 1>) -> Tensor<B, 1> {
    (softplus(z.clone(), 1.0) - y * z).mean()
}

/// Area under the ROC curve (ties counted half).
fn auc(scores: &[f32], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0f64, 0usize);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * mid_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&a| a).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 { f64::NAN } else { (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg) }
}

/// Validation loss, AUC and the weights' answer ratio and effective share.
fn evaluate<B: Backend>(head: &WeightHead<B>, val: &Features<B>, beta: f64, normalize: bool) -> (f64, f64, f64, f64) {
    let z = logits(head, val.x.clone(), beta);
    let loss = scalar(bce(z.clone(), val.y.clone()));
    let z: Vec<f32> = z.into_data().convert::<f32>().to_vec().expect("f32 data");
    let (mut answer, mut other, mut shares, mut start) = ((0.0, 0usize), (0.0, 0usize), 0.0, 0usize);
    for &n in &val.lens {
        // softplus(βraw)/β, as the weighting model computes it, then mean 1 if normalised.
        let w: Vec<f64> =
            z[start..start + n].iter().map(|&z| f64::from(z).max(0.0) + (-f64::from(z).abs()).exp().ln_1p()).collect();
        let w: Vec<f64> = w.iter().map(|x| x / beta).collect();
        let scale = if normalize { n as f64 / w.iter().sum::<f64>().max(1e-12) } else { 1.0 };
        let (sum, sq) = w.iter().fold((0.0, 0.0), |(s, q), x| (s + x * scale, q + (x * scale).powi(2)));
        shares += sum * sum / (n as f64 * sq.max(1e-30));
        for (x, &a) in w.iter().zip(&val.labels[start..start + n]) {
            let slot = if a { &mut answer } else { &mut other };
            slot.0 += x * scale;
            slot.1 += 1;
        }
        start += n;
    }
    let ratio = (answer.0 / answer.1.max(1) as f64) / (other.0 / other.1.max(1) as f64).max(1e-30);
    (loss, auc(&z, &val.labels), ratio, shares / val.lens.len() as f64)
}

/// Fits the weighting model's head to the answer spans of `config.data.train`, validates on every
/// document of `config.data.val`, and writes the best epoch into `run_dir` as a checkpoint
/// (`metrics.jsonl` holds one line per epoch). Needs a frozen trunk and the softplus activation.
pub fn fit_answer_probe<B: Backend>(
    config: &MetaTrainConfig,
    probe: &ProbeConfig,
    run_dir: &Path,
    device: &B::Device,
    on_epoch: &mut dyn FnMut(&ProbeEpoch),
) -> Result<ProbeSummary> {
    type A<B> = Autodiff<B>;
    let config_path = run_dir.join("config.toml");
    let bad = |field: &str, reason: &str| MetaError::Config {
        path: config_path.clone(),
        field: field.into(),
        reason: reason.into(),
    };
    if !config.weighting.freeze_trunk {
        return Err(bad("weighting.freeze_trunk", "the probe fits the head on fixed trunk features: set it to true"));
    }
    if config.weighting.activation != WeightActivation::Softplus {
        return Err(bad("weighting.activation", "the probe reads the head as a logit of softplus weights"));
    }
    if probe.epochs == 0 || probe.batch_tokens == 0 || probe.lr.is_nan() || probe.lr <= 0.0 {
        return Err(bad("probe", "epochs, batch tokens and the learning rate must be positive"));
    }
    let _lock = RunLock::acquire(run_dir)?;
    for name in ["best", "last"] {
        checkpoint::remove_pointer(run_dir, name)?; // a probe run starts afresh
    }
    camels_model::hf::write_atomic(&config_path, config.to_toml().as_bytes())?;
    let inputs = RunInputs::<B>::load(config, &config_path, device)?;
    let mut reports = Vec::new();
    let val_docs = prepare(&inputs.tokenizer.encoder(), &config.data.val, config, usize::MAX, &mut reports)?;

    let mut phi = initial_weighting::<A<B>>(config, &inputs.w_config, device)?;
    let frozen = phi.valid();
    let train = features(&frozen, &inputs.data.train, device);
    let val = features(&frozen, &val_docs, device);
    let n = train.labels.len();
    let answer_share = train.labels.iter().filter(|&&a| a).count() as f64 / n as f64;
    let beta = config.weighting.softplus_beta;
    let trunk_source = (!config.weighting.init_from.as_os_str().is_empty())
        .then(|| checkpoint::TrunkSource::of(&config.weighting.init_from))
        .transpose()?;

    let metrics_path = run_dir.join("metrics.jsonl");
    let io = |source| MetaError::Io { path: metrics_path.clone(), source };
    let mut metrics = std::fs::File::create(&metrics_path).map_err(io)?;
    let mut optim = AdamConfig::new().init::<A<B>, WeightingModel<A<B>>>();
    let mut rng = Rng::new(config.run.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut epochs: Vec<ProbeEpoch> = Vec::new();
    let mut best: Option<(usize, WeightingModel<A<B>>)> = None; // (epoch, φ)
    for epoch in 1..=probe.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for rows in order.chunks(probe.batch_tokens) {
            let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [rows.len()]), device); // [b]
            let x = Tensor::<A<B>, 2>::from_inner(train.x.clone().select(0, idx.clone())); // [b, C]
            let y = Tensor::<A<B>, 1>::from_inner(train.y.clone().select(0, idx)); // [b]
            let loss = bce(logits(&phi.head, x, beta), y);
            let value = scalar(loss.clone().inner());
            if !value.is_finite() {
                return Err(MetaError::NonFinite {
                    what: format!("probe training loss at epoch {epoch} ({})", run_dir.display()),
                    value,
                });
            }
            total += value * rows.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &phi);
            phi = optim.step(probe.lr, phi, grads);
        }
        let (val_loss, val_auc, answer_ratio, effective_share) =
            evaluate(&phi.valid().head, &val, beta, config.weighting.normalize);
        let record =
            ProbeEpoch { epoch, train_loss: total / n as f64, val_loss, val_auc, answer_ratio, effective_share };
        writeln!(metrics, "{}", serde_json::to_string(&record).expect("the record serialises")).map_err(io)?;
        on_epoch(&record);
        if best.as_ref().is_none_or(|(b, _)| val_loss < epochs[*b - 1].val_loss) {
            best = Some((epoch, phi.clone()));
        }
        epochs.push(record);
    }
    let (best_epoch, kept) = best.expect("at least one epoch");
    let state = TrainState { step: best_epoch, docs_since_reset: 0, best: None };
    let pointer = checkpoint::save::<A<B>, _>(run_dir, &state, &kept, trunk_source.as_ref(), &optim, &inputs.theta0)?;
    let dir = checkpoint::checkpoints_dir(run_dir).join(&pointer.dir);
    checkpoint::write_weighting_description(&dir, &inputs.w_config, trunk_source.as_ref())?;
    checkpoint::write_pointer(run_dir, "last", &pointer)?;
    checkpoint::write_pointer(run_dir, "best", &pointer)?;
    Ok(ProbeSummary { epochs, best: best_epoch, answer_share, checkpoint: dir })
}

#[cfg(test)]
mod tests {
    use super::auc;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_half() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), 0.0);
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]), 0.5);
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), 0.75);
    }
}
