//! The CaMeLS meta-training loop: Adam on the weighting model φ, the base LM carried across
//! meta-steps and reset to θ₀ every `reset_base_every` documents, validation on held-out documents,
//! best and last checkpoints, metrics as JSONL, weight pages, exact resume.
//!
//! One meta-step s (K = `update_batch_size` documents):
//! ```text
//! w_k = φ(d_k)                       (k = 1..K, one batched forward)
//! dJ/dw, θ_K = meta_gradient(θ, w)  (θ: the carried base LM; θ_k recomputed per store_theta_every)
//! acc += ∂⟨dJ/dw, w(φ)⟩/∂φ / grad_acc
//! every grad_acc steps: φ ← Adam(φ, acc) (clipped), acc ← 0
//! θ ← θ_K; after reset_base_every documents θ ← θ₀
//! ```
//! Which documents, questions and locality windows step s uses is a pure function of (seed, s), so
//! a checkpoint's step counter is the whole random state and a resumed run repeats an unbroken one
//! bit for bit (checkpoints fall on Adam steps, where the accumulator is empty).
//!
//! Run directory: `config.toml` (resolved), `metrics.jsonl`, `weights/step-N.{html,png}`,
//! `checkpoints/{last,best}.json` → `checkpoints/step-N/` (see [`crate::checkpoint`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::EncoderExt;
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsAccumulator, Optimizer};
use burn::prelude::*;
use camels_data::{
    DocumentBatchConfig, Overflow, PadTo, QaBatchConfig, Rng, TextEncoder, TokenBatch, answer_spans, build_stream,
    document_batch, locality_batch, qa_train_batch, read_any, tokens_in_spans,
};
use camels_model::base::BaseLm;
use camels_model::hf::{load_base, load_tokenizer, load_trunk};
use camels_model::loss::{kl_divergence, masked_mean, token_cross_entropy};
use camels_model::tokenizer::TextTokenizer;
use camels_model::weighting::{WeightingModel, WeightingModelConfig};
use serde::Serialize;

use crate::checkpoint::{self, Pointer, TrainState, stable_param_ids};
use crate::config::{ControlKind, MetaTrainConfig, expand_path};
use crate::error::{MetaError, Result};
use crate::eval::InputReport;
use crate::lock::RunLock;
use crate::metagrad::{
    ControlQa, MetaProblem, OuterLoss, Rows, meta_gradient_checkpointed, unroll, weighting_gradient,
};
use crate::params::scalar;
use crate::viz::{DocView, html_page, png_heatmap, token_views};

/// A document ready for the loop: its padded row, token offsets and QA pairs.
#[derive(Debug, Clone)]
pub struct PreparedDoc {
    /// Document id.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Token ids `[T]`, right-padded to `max_doc_tokens`.
    pub ids: Vec<i64>,
    /// `[T]`, 1 on real tokens.
    pub mask: Vec<f32>,
    /// Character offsets of the real tokens.
    pub offsets: Vec<(usize, usize)>,
    /// Per real token, whether it overlaps an answer span.
    pub answer: Vec<bool>,
    /// (question, shortest answer) pairs.
    pub qa: Vec<(String, String)>,
}

/// Everything the loop reads: tokenised training and validation documents, locality windows.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Meta-training documents (those with at least one question).
    pub train: Vec<PreparedDoc>,
    /// Validation documents.
    pub val: Vec<PreparedDoc>,
    /// Locality windows `[N, locality_tokens]`.
    pub locality: TokenBatch,
    /// Document length T.
    pub doc_len: usize,
    /// What was read from each file (training, validation, locality), skipped records included.
    pub inputs: Vec<InputReport>,
}

pub(crate) fn prepare(
    encoder: &dyn TextEncoder,
    path: &Path,
    config: &MetaTrainConfig,
    limit: usize,
    inputs: &mut Vec<InputReport>,
) -> Result<Vec<PreparedDoc>> {
    let dataset = read_any(&expand_path(path)?, None, false)?;
    inputs.push(InputReport::of(&dataset.report));
    let stream =
        build_stream(dataset.documents, &camels_data::StreamConfig { seed: config.run.seed, ..Default::default() });
    let docs: Vec<_> =
        stream.into_iter().filter(|d| d.questions.iter().any(|q| q.shortest_answer().is_some())).take(limit).collect();
    if docs.is_empty() {
        return Err(MetaError::Config {
            path: path.into(),
            field: "data".into(),
            reason: "no documents with questions".into(),
        });
    }
    let batch_config = DocumentBatchConfig {
        max_doc_tokens: config.data.max_doc_tokens,
        pad_to: PadTo::MaxTokens,
        overflow: Overflow::Truncate,
        pad_id: None,
    };
    let batch = document_batch(encoder, &docs, &batch_config)?;
    let t = batch.tokens.len;
    Ok(docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let offsets = batch.offsets[i].clone();
            PreparedDoc {
                id: doc.id.clone(),
                text: doc.text.clone(),
                ids: batch.tokens.row(i).iter().map(|&x| i64::from(x)).collect(),
                mask: batch.tokens.attention_mask[i * t..(i + 1) * t].to_vec(),
                answer: tokens_in_spans(&offsets, &answer_spans(doc)),
                offsets,
                qa: doc
                    .questions
                    .iter()
                    .filter_map(|q| q.shortest_answer().map(|a| (q.question.clone(), a.to_string())))
                    .collect(),
            }
        })
        .collect())
}

impl TrainData {
    /// Reads and tokenises the files `config.data` names.
    pub fn load(encoder: &dyn TextEncoder, config: &MetaTrainConfig) -> Result<Self> {
        let k = config.inner.update_batch_size;
        let mut inputs = Vec::new();
        let train = prepare(encoder, &config.data.train, config, usize::MAX, &mut inputs)?;
        let val_docs = config.data.val_docs / k * k;
        let mut val = prepare(encoder, &config.data.val, config, val_docs, &mut inputs)?;
        if val.len() < val_docs {
            tracing::warn!(
                "{}: data.val_docs = {} but the file has {} documents with questions; validating on {}",
                config.data.val.display(),
                config.data.val_docs,
                val.len(),
                val.len() / k * k
            );
        }
        val.truncate(val.len() / k * k);
        let needed = if config.outer.c_control > 0.0 { 2 * k } else { k };
        if val.is_empty() || train.len() < needed {
            return Err(MetaError::Config {
                path: config.data.val.clone(),
                field: "data.val / data.train".into(),
                reason: format!(
                    "{} training and {} validation documents for K = {k} (at least {needed} training documents)",
                    train.len(),
                    val.len()
                ),
            });
        }
        let locality_path = expand_path(&config.data.locality)?;
        let unrelated = camels_data::unrelated::read(&locality_path, false)?;
        inputs.push(InputReport::of(&unrelated.report));
        let texts = unrelated.documents;
        let texts: Vec<&str> = texts.iter().map(|d| d.text.as_str()).filter(|t| !t.trim().is_empty()).collect();
        if texts.is_empty() {
            return Err(MetaError::Config {
                path: locality_path,
                field: "data.locality".into(),
                reason: "the unrelated-text file holds no text: the locality (KL) term needs some".into(),
            });
        }
        let locality = locality_batch(encoder, &texts, config.data.locality_tokens)?;
        if locality.batch == 0 {
            return Err(MetaError::Config {
                path: locality_path,
                field: "data.locality".into(),
                reason: format!(
                    "the unrelated text makes no window of data.locality_tokens = {}",
                    config.data.locality_tokens
                ),
            });
        }
        Ok(Self { train, val, locality, doc_len: config.data.max_doc_tokens, inputs })
    }
}

/// SplitMix-style mixing of the run seed, a purpose and an index into one seed.
fn mix(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut z = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// The training documents of meta-step `step`: positions step·K .. step·K+K of the endless sequence
/// of per-epoch shuffles of the training set.
pub fn step_documents(seed: u64, step: usize, k: usize, n: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k);
    let mut epoch_perm: Option<(usize, Vec<usize>)> = None;
    for p in step * k..step * k + k {
        let epoch = p / n;
        if epoch_perm.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            Rng::new(mix(seed, 1, epoch as u64)).shuffle(&mut perm);
            epoch_perm = Some((epoch, perm));
        }
        out.push(epoch_perm.as_ref().expect("just set").1[p % n]);
    }
    out
}

/// The (question, answer) pairs of each of `docs`: all, or `data.questions_per_doc` drawn with `rng`.
fn question_pairs<'a>(
    config: &MetaTrainConfig,
    docs: &[&'a PreparedDoc],
    rng: &mut Rng,
) -> Vec<Vec<(&'a str, &'a str)>> {
    docs.iter()
        .map(|doc| {
            let chosen: Vec<usize> = match config.data.questions_per_doc {
                0 => (0..doc.qa.len()).collect(),
                q => rng.sample_indices(doc.qa.len(), q.min(doc.qa.len())),
            };
            chosen.into_iter().map(|i| (doc.qa[i].0.as_str(), doc.qa[i].1.as_str())).collect()
        })
        .collect()
}

/// The QA rows of (question, answer) pairs and their answer-token target mask.
fn qa_rows(encoder: &dyn TextEncoder, config: &MetaTrainConfig, pairs: &[(&str, &str)]) -> Result<(Rows, Vec<f32>)> {
    let qa_config = QaBatchConfig {
        max_len: config.data.qa_max_len,
        include_eos: config.data.qa_include_eos,
        ..QaBatchConfig::default()
    };
    let qa = qa_train_batch(encoder, pairs, &qa_config)?;
    let rows = Rows::new(qa.ids.iter().map(|&x| i64::from(x)).collect(), qa.attention_mask.clone(), qa.batch, qa.len)?;
    Ok((rows, qa.target_mask))
}

/// Each document's questions paired with answers of the next document (cyclically): the i-th
/// question of document k takes the answer of question i mod n of document k + 1.
fn swapped_pairs<'a>(per_doc: &[Vec<(&'a str, &'a str)>]) -> Vec<(&'a str, &'a str)> {
    let k = per_doc.len();
    (0..k)
        .flat_map(|d| {
            let next = &per_doc[(d + 1) % k];
            per_doc[d].iter().enumerate().map(move |(i, &(q, _))| (q, next[i % next.len()].1))
        })
        .collect()
}

/// The meta-problem of documents `docs` (questions sampled with `rng`, locality rows given), with
/// control questions when `outer.c_control` > 0: those of `control` (`other_documents`), or the
/// documents' own questions with swapped answers (`swapped_answers`, `control` unused).
fn build_problem(
    encoder: &dyn TextEncoder,
    config: &MetaTrainConfig,
    docs: &[&PreparedDoc],
    control: &[&PreparedDoc],
    locality: &TokenBatch,
    rng: &mut Rng,
) -> Result<MetaProblem> {
    let own = question_pairs(config, docs, rng);
    let (qa, qa_targets) = qa_rows(encoder, config, &own.concat())?;
    let control = match config.outer.c_control > 0.0 {
        true => {
            let pairs = match config.outer.control {
                ControlKind::OtherDocuments => question_pairs(config, control, rng).concat(),
                ControlKind::SwappedAnswers => swapped_pairs(&own),
            };
            let (qa, targets) = qa_rows(encoder, config, &pairs)?;
            Some(ControlQa { qa, targets, coefficient: config.outer.c_control, hinge: config.outer.control_hinge })
        }
        false => None,
    };
    let t = docs[0].ids.len();
    Ok(MetaProblem {
        docs: docs.iter().map(|d| Rows::new(d.ids.clone(), d.mask.clone(), 1, t)).collect::<Result<_>>()?,
        qa,
        qa_targets,
        locality: Rows::new(
            locality.ids.iter().map(|&x| i64::from(x)).collect(),
            locality.attention_mask.clone(),
            locality.batch,
            locality.len,
        )?,
        control,
        inner_lr: config.inner.inner_lr,
        inner_step: config.inner.step,
        c_kl: config.outer.c_kl,
        reduction: config.inner.reduction,
    })
}

/// `inner.update_batch_size` training documents for control questions, drawn with `rng`, none of
/// them in `exclude` (empty without `outer.c_control`).
fn control_documents<'a>(
    config: &MetaTrainConfig,
    train: &'a [PreparedDoc],
    exclude: &[usize],
    rng: &mut Rng,
) -> Vec<&'a PreparedDoc> {
    if config.outer.c_control <= 0.0 {
        return Vec::new();
    }
    let k = config.inner.update_batch_size;
    let candidates: Vec<usize> = (0..train.len()).filter(|i| !exclude.contains(i)).collect();
    rng.sample_indices(candidates.len(), k.min(candidates.len())).into_iter().map(|j| &train[candidates[j]]).collect()
}

/// Token weights of `docs` from φ: one `[1, T]` tensor per document.
fn doc_weights<B: Backend>(model: &WeightingModel<B>, docs: &[&PreparedDoc], device: &B::Device) -> Vec<Tensor<B, 2>> {
    let (k, t) = (docs.len(), docs[0].ids.len());
    let ids: Vec<i64> = docs.iter().flat_map(|d| d.ids.iter().copied()).collect();
    let mask: Vec<f32> = docs.iter().flat_map(|d| d.mask.iter().copied()).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [k, t]), device); // [K, T]
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [k, t]), device); // [K, T]
    let w = model.forward(ids, mask); // [K, T]
    (0..k).map(|i| w.clone().narrow(0, i, 1)).collect() // K × [1, T]
}

/// Mean answer-token NLL of the problem's questions and of its control questions (if any).
fn qa_nll<B: Backend>(model: &BaseLm<B>, problem: &MetaProblem, device: &B::Device) -> (f64, Option<f64>) {
    let nll = |qa: &Rows, targets: &[f32]| {
        let ids = qa.ids::<B>(device); // [Bq, Tq]
        let targets = Tensor::from_data(TensorData::new(targets.to_vec(), [qa.batch, qa.len]), device); // [Bq, Tq]
        scalar(masked_mean(token_cross_entropy(model.forward(ids.clone()), ids), targets))
    };
    (nll(&problem.qa, &problem.qa_targets), problem.control.as_ref().map(|c| nll(&c.qa, &c.targets)))
}

/// Validation metrics at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    /// Meta-steps done.
    pub step: usize,
    /// Mean J over the validation batches (from θ₀, weights from φ).
    pub outer: f64,
    /// Mean J with every real token weighted 1 (same batches).
    pub uniform_outer: f64,
    /// Mean QA NLL at θ₀.
    pub qa_before: f64,
    /// Mean QA NLL after the weighted updates.
    pub qa_after: f64,
    /// qa_before − qa_after.
    pub qa_gain: f64,
    /// Mean control-question NLL at θ₀ and after the updates (with `outer.c_control` > 0).
    pub control_before: Option<f64>,
    /// See `control_before`.
    pub control_after: Option<f64>,
    /// qa_gain − (control_before − control_after): what the steps taught about their own
    /// documents beyond what they taught every answer.
    pub fact_gain: Option<f64>,
    /// Mean KL(p_θ₀ ‖ p_θ_K) per locality token.
    pub kl: f64,
    /// Mean weight per answer-bearing token (target positions 1..).
    pub answer_weight: f64,
    /// Mean weight per other real token.
    pub other_weight: f64,
    /// answer_weight / other_weight.
    pub answer_ratio: f64,
    /// Share of the total weight on answer-bearing tokens.
    pub answer_mass: f64,
    /// How evenly the weight is spread: per document (Σw)² / (n·Σw²) over its n real tokens with a
    /// loss (1: uniform; 1/n: all weight on one token), averaged over the documents. Weights that
    /// collapse onto a few tokens show here first.
    pub effective_share: f64,
}

impl std::fmt::Display for Validation {
    /// One line: the outer loss against uniform weights, QA NLL, KL and where the weight went.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: validation outer loss {:.4} (uniform weights {:.4}), QA NLL {:.4} -> {:.4}, KL {:.5}, \
             mean weight per answer-bearing token {:.4}, per other token {:.4}, ratio {:.3}, answer share of the mass {:.3}, \
             effective share of tokens {:.3}",
            self.step,
            self.outer,
            self.uniform_outer,
            self.qa_before,
            self.qa_after,
            self.kl,
            self.answer_weight,
            self.other_weight,
            self.answer_ratio,
            self.answer_mass,
            self.effective_share
        )?;
        if let Some(fact_gain) = self.fact_gain {
            write!(f, ", fact gain {fact_gain:.4}")?;
        }
        Ok(())
    }
}

/// Mean J, QA NLL before and after, KL over the validation batches, and every document's weights.
struct ValRun {
    outer: f64,
    qa_before: f64,
    qa_after: f64,
    control: Option<(f64, f64)>,
    kl: f64,
    weights: Vec<Vec<f32>>,
}

/// Runs the validation batches with weights from `phi` (None: uniform).
fn validate_with<B: Backend>(
    encoder: &dyn TextEncoder,
    config: &MetaTrainConfig,
    data: &TrainData,
    theta0: &BaseLm<B>,
    phi: Option<&WeightingModel<B>>,
    device: &B::Device,
) -> Result<ValRun> {
    let k = config.inner.update_batch_size;
    let rows: Vec<usize> = Rng::new(mix(config.run.seed, 3, 0))
        .sample_indices(data.locality.batch, config.data.locality_batch_size.min(data.locality.batch));
    let locality = data.locality.select(&rows);
    let (mut outer, mut before, mut after, mut kl) = (0.0, 0.0, 0.0, 0.0);
    let mut control: Option<(f64, f64)> = None;
    let mut all_weights = Vec::new();
    let batches = data.val.len() / k;
    for (b, chunk) in data.val.chunks(k).enumerate() {
        let docs: Vec<&PreparedDoc> = chunk.iter().collect();
        let mut rng = Rng::new(mix(config.run.seed, 4, b as u64));
        let control_docs =
            control_documents(config, &data.train, &[], &mut Rng::new(mix(config.run.seed, 6, b as u64)));
        let problem = build_problem(encoder, config, &docs, &control_docs, &locality, &mut rng)?;
        let weights = match phi {
            Some(phi) => doc_weights(phi, &docs, device),
            None => problem.docs.iter().map(|d| d.mask::<B>(device)).collect(),
        };
        for w in &weights {
            all_weights.push(w.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32 weights"));
        }
        let theta_k = unroll(theta0.clone(), 0..problem.docs.len(), &weights, &problem);
        let ((q0, c0), (qk, ck)) = (qa_nll(theta0, &problem, device), qa_nll(&theta_k, &problem, device));
        let loc_ids = problem.locality.ids::<B>(device); // [Bl, Tl]
        let d_kl = scalar(kl_divergence(
            theta0.forward(loc_ids.clone()),
            theta_k.forward(loc_ids),
            problem.locality.mask(device),
        ));
        let c_term = match (&problem.control, ck, c0) {
            (Some(c), Some(ck), Some(c0)) => c.coefficient * if c.counts(ck, c0) { ck } else { c0 },
            _ => 0.0,
        };
        outer += (qk + problem.c_kl * d_kl - c_term) / batches as f64;
        if let (Some(c0), Some(ck)) = (c0, ck) {
            let (cb, ca) = control.unwrap_or((0.0, 0.0));
            control = Some((cb + c0 / batches as f64, ca + ck / batches as f64));
        }
        before += q0 / batches as f64;
        after += qk / batches as f64;
        kl += d_kl / batches as f64;
    }
    if !outer.is_finite() {
        return Err(MetaError::NonFinite { what: "validation outer loss".into(), value: outer });
    }
    Ok(ValRun { outer, qa_before: before, qa_after: after, control, kl, weights: all_weights })
}

/// Mean weight on answer-bearing and other real tokens (positions ≥ 1, which have a loss).
fn weight_mass(docs: &[PreparedDoc], weights: &[Vec<f32>]) -> (f64, f64) {
    let (mut a_sum, mut a_n, mut o_sum, mut o_n) = (0.0, 0usize, 0.0, 0usize);
    for (doc, w) in docs.iter().zip(weights) {
        for (t, &is_answer) in doc.answer.iter().enumerate().skip(1) {
            let x = f64::from(w[t]);
            if is_answer {
                (a_sum, a_n) = (a_sum + x, a_n + 1);
            } else {
                (o_sum, o_n) = (o_sum + x, o_n + 1);
            }
        }
    }
    (a_sum / a_n.max(1) as f64, o_sum / o_n.max(1) as f64)
}

/// The mean over documents of (Σw)² / (n·Σw²) over the n real tokens at positions ≥ 1.
fn effective_share(docs: &[PreparedDoc], weights: &[Vec<f32>]) -> f64 {
    let shares: Vec<f64> = docs
        .iter()
        .zip(weights)
        .filter_map(|(doc, w)| {
            let real: Vec<f64> =
                doc.mask.iter().zip(w).skip(1).filter(|(m, _)| **m > 0.0).map(|(_, x)| f64::from(*x)).collect();
            let (sum, squares) = (real.iter().sum::<f64>(), real.iter().map(|x| x * x).sum::<f64>());
            (squares > 0.0).then(|| sum * sum / (real.len() as f64 * squares))
        })
        .collect();
    shares.iter().sum::<f64>() / shares.len().max(1) as f64
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// Resumed from a checkpoint at this step.
    Resumed {
        /// Meta-steps already done.
        step: usize,
    },
    /// A meta-step finished.
    Step {
        /// Meta-steps done.
        step: usize,
        /// Of the whole run.
        total: usize,
        /// J and its parts on this step's documents, from the carried base.
        outer: OuterLoss,
    },
    /// A validation finished.
    Validated(Validation),
    /// A checkpoint was written (`name`: `last` or `best`).
    Checkpoint {
        /// `last` or `best`.
        name: &'static str,
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

/// How a call of [`meta_train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Meta-steps done (in all runs of this directory).
    pub step: usize,
    /// Whether the run reached `run.steps`.
    pub finished: bool,
    /// Every validation of this call.
    pub validations: Vec<Validation>,
    /// What was read from each input file, skipped records included (also in `inputs.json`).
    pub inputs: Vec<InputReport>,
}

type Opt<B> = burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, WeightingModel<Autodiff<B>>, Autodiff<B>>;

fn optimizer<B: Backend>(config: &MetaTrainConfig) -> Opt<B> {
    let o = &config.outer;
    let clip = (o.clip_norm > 0.0).then_some(GradientClippingConfig::Norm(o.clip_norm as f32));
    AdamConfig::new()
        .with_beta_1(o.beta_1)
        .with_beta_2(o.beta_2)
        .with_epsilon(o.epsilon)
        .with_grad_clipping(clip)
        .init::<Autodiff<B>, WeightingModel<Autodiff<B>>>()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.into(), source }
}

/// Keeps the lines of `metrics.jsonl` whose `step` is at most `step` (a resumed run rewrites the rest).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(camels_model::hf::write_atomic(path, kept.as_bytes())?)
}

/// The resolved configuration with the keys that may change between a run and its resumption
/// (`run.steps`, `run.stop_after`, and `inner.store_theta_every`, which trades memory for time
/// without changing the result) cleared.
fn resumable(config: &MetaTrainConfig) -> MetaTrainConfig {
    let mut c = config.clone();
    c.run.steps = 0;
    c.run.stop_after = 0;
    c.inner.store_theta_every = 1;
    c
}

/// Refuses token lengths that do not fit the base's context (`base_context`) or the weighting
/// model's (`weighting_context`), naming the field, its value and the limit.
fn check_context(config: &MetaTrainConfig, path: &Path, base_context: usize, weighting_context: usize) -> Result<()> {
    let d = &config.data;
    for (field, value, limit, model) in [
        ("data.max_doc_tokens", d.max_doc_tokens, base_context.min(weighting_context), "base LM and weighting model"),
        ("data.qa_max_len", d.qa_max_len, base_context, "base LM"),
        ("data.locality_tokens", d.locality_tokens, base_context, "base LM"),
    ] {
        if value > limit {
            return Err(MetaError::Config {
                path: path.into(),
                field: field.into(),
                reason: format!(
                    "{value} tokens do not fit the {model}'s context of {limit} positions; set {field} <= {limit}"
                ),
            });
        }
    }
    Ok(())
}

/// What a run reads before its loop: θ₀ (at the configured precision), the base's tokenizer, the
/// weighting model's config and the tokenised data; the contexts are checked (`config_path`
/// names the config in errors).
pub(crate) struct RunInputs<B: Backend> {
    pub(crate) theta0: BaseLm<B>,
    pub(crate) tokenizer: TextTokenizer,
    pub(crate) w_config: WeightingModelConfig,
    pub(crate) data: TrainData,
}

impl<B: Backend> RunInputs<B> {
    pub(crate) fn load(config: &MetaTrainConfig, config_path: &Path, device: &B::Device) -> Result<Self> {
        let base_dir = expand_path(&config.base.path)?;
        let (theta0, base_config) = load_base::<B>(&base_dir, device)?;
        let theta0 = theta0.with_precision(config.inner.matmul_precision);
        let tokenizer = load_tokenizer(&base_dir, &base_config)?;
        let w_config = config.weighting_model(&base_config);
        check_context(config, config_path, base_config.max_positions(), w_config.trunk.max_positions())?;
        let data = TrainData::load(&tokenizer.encoder(), config)?;
        Ok(Self { theta0, tokenizer, w_config, data })
    }
}

/// φ at its initialisation (seeded by `run.seed`), the trunk read from `weighting.init_from` if set.
pub(crate) fn initial_weighting<A: burn::tensor::backend::AutodiffBackend>(
    config: &MetaTrainConfig,
    w_config: &WeightingModelConfig,
    device: &A::Device,
) -> Result<WeightingModel<A>> {
    <A::InnerBackend as Backend>::seed(device, config.run.seed);
    let mut phi: WeightingModel<A> = w_config.init(device);
    if !config.weighting.init_from.as_os_str().is_empty() {
        phi.trunk = load_trunk(phi.trunk, &expand_path(&config.weighting.init_from)?)?;
    }
    Ok(phi)
}

/// Meta-step `s`'s training-document indices, the documents and their meta-problem (questions and
/// locality rows drawn from (seed, s)).
fn step_problem<'a>(
    encoder: &dyn TextEncoder,
    config: &MetaTrainConfig,
    data: &'a TrainData,
    s: usize,
) -> Result<(Vec<usize>, Vec<&'a PreparedDoc>, MetaProblem)> {
    let k = config.inner.update_batch_size;
    let indices = step_documents(config.run.seed, s, k, data.train.len());
    let docs: Vec<&PreparedDoc> = indices.iter().map(|&i| &data.train[i]).collect();
    let mut rng = Rng::new(mix(config.run.seed, 2, s as u64));
    let rows = rng.sample_indices(data.locality.batch, config.data.locality_batch_size.min(data.locality.batch));
    // Control documents: none the base has stepped on since its last reset (resets fall every
    // `reset_base_every / K` steps from step 0), this step's included.
    let window = config.inner.reset_base_every / k;
    let seen: Vec<usize> =
        (s - s % window..=s).flat_map(|j| step_documents(config.run.seed, j, k, data.train.len())).collect();
    let control = control_documents(config, &data.train, &seen, &mut Rng::new(mix(config.run.seed, 5, s as u64)));
    let problem = build_problem(encoder, config, &docs, &control, &data.locality.select(&rows), &mut rng)?;
    Ok((indices, docs, problem))
}

/// Meta-trains φ as `config` says, in `run_dir` (resuming from `checkpoints/last.json` when present),
/// on backend `B` (φ on `Autodiff<B>`, the base LM's meta-gradient on `Autodiff<Autodiff<B>>`).
pub fn meta_train<B: Backend>(
    config: &MetaTrainConfig,
    run_dir: &Path,
    device: &B::Device,
    on_event: &mut dyn FnMut(&Event),
) -> Result<TrainSummary> {
    type A<B> = Autodiff<B>;
    let _lock = RunLock::acquire(run_dir)?; // one writer per run directory, until we return
    let config_path = run_dir.join("config.toml");
    if config_path.exists() {
        let saved = MetaTrainConfig::from_file(&config_path, &[])?;
        if resumable(&saved) != resumable(config) {
            return Err(MetaError::Config {
                path: config_path,
                field: "*".into(),
                reason: "the run directory holds a run with a different configuration (only run.steps, \
                         run.stop_after and inner.store_theta_every may change on resume)"
                    .into(),
            });
        }
    }
    camels_model::hf::write_atomic(&config_path, config.to_toml().as_bytes())?;

    let RunInputs { theta0, tokenizer, w_config, data } = RunInputs::<B>::load(config, &config_path, device)?;
    let encoder = &tokenizer.encoder();
    let inputs_path = run_dir.join("inputs.json");
    let inputs_json = serde_json::to_vec_pretty(&data.inputs).map_err(|e| MetaError::Parse {
        path: inputs_path.clone(),
        field: "-".into(),
        message: e.to_string(),
    })?;
    camels_model::hf::write_atomic(&inputs_path, &inputs_json)?;

    let mut phi = stable_param_ids(initial_weighting::<A<B>>(config, &w_config, device)?);
    // A frozen trunk loaded from a file is saved as a reference to it: checkpoints hold the head.
    let trunk_source = (config.weighting.freeze_trunk && !config.weighting.init_from.as_os_str().is_empty())
        .then(|| checkpoint::TrunkSource::of(&config.weighting.init_from))
        .transpose()?;
    let trunk_source = trunk_source.as_ref();
    let mut optim = optimizer::<B>(config);
    let mut theta = theta0.clone();
    let mut state = TrainState { step: 0, docs_since_reset: 0, best: None };

    let metrics_path = run_dir.join("metrics.jsonl");
    if let Some(pointer) = checkpoint::read_pointer(run_dir, "last")? {
        let restored = checkpoint::load::<A<B>, _, _>(run_dir, &pointer, phi, trunk_source, optim, theta, device)?;
        (state, phi, optim, theta) = (restored.state, restored.weighting, restored.optimizer, restored.base);
        checkpoint::reconcile_best(run_dir, &pointer, &state)?;
        truncate_metrics(&metrics_path, state.step)?;
        on_event(&Event::Resumed { step: state.step });
    } else {
        // A fresh start: any best pointer left here belongs to an earlier, abandoned run.
        checkpoint::remove_pointer(run_dir, "best")?;
        if metrics_path.exists() {
            truncate_metrics(&metrics_path, 0)?;
        }
    }
    // Writes the checkpoint directory of `state.step` (pointed at by the caller).
    let save_checkpoint = |state: &TrainState, phi: &_, optim: &_, theta: &_| -> Result<Pointer> {
        let pointer = checkpoint::save::<A<B>, _>(run_dir, state, phi, trunk_source, optim, theta)?;
        let dir = checkpoint::checkpoints_dir(run_dir).join(&pointer.dir);
        checkpoint::write_weighting_description(&dir, &w_config, trunk_source)?;
        Ok(pointer)
    };
    let mut metrics =
        std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(io(&metrics_path))?;
    let mut log = |value: serde_json::Value| -> Result<()> {
        writeln!(metrics, "{value}").and_then(|_| metrics.flush()).map_err(io(&metrics_path))
    };

    let k = config.inner.update_batch_size;
    let mode = config.inner.grad_mode.to_mode();
    let total = config.run.steps;
    let stop = if config.run.stop_after > 0 { config.run.stop_after.min(total) } else { total };
    let mut accumulator = GradientsAccumulator::<WeightingModel<A<B>>>::new();
    let mut validations = Vec::new();
    let uniform_run = validate_with::<B>(encoder, config, &data, &theta0, None, device)
        .map_err(|e| e.at(&format!("the uniform-weight validation before meta-step {}", state.step + 1)))?;
    let uniform = uniform_run.outer;
    if state.step == 0 {
        // Once per run (a resumed run keeps its line): what uniform weights reach, for comparison.
        log(serde_json::json!({
            "kind": "val_uniform", "step": 0, "outer": uniform, "qa_before": uniform_run.qa_before,
            "qa_after": uniform_run.qa_after, "qa_gain": uniform_run.qa_before - uniform_run.qa_after,
            "control_before": uniform_run.control.map(|c| c.0), "control_after": uniform_run.control.map(|c| c.1),
            "kl": uniform_run.kl, "effective_share": 1.0,
        }))?;
    }
    let started = Instant::now();

    while state.step < stop {
        let s = state.step;
        let (indices, docs, problem) = step_problem(encoder, config, &data, s)?;

        let weights = doc_weights(&phi.valid(), &docs, device); // K × [1, T]
        let weight_mean = weights.iter().map(|w| scalar(w.clone().mean())).sum::<f64>() / k as f64;
        let grad = meta_gradient_checkpointed(&theta, &weights, &problem, mode, config.inner.store_theta_every)
            .map_err(|e| e.at(&format!("meta-step {} (documents {indices:?})", s + 1)))?;
        let (dj_answer, dj_other) = class_means(&docs, &grad.dj_dw);
        let scale = 1.0 / config.outer.grad_acc as f32;
        let dj_dw: Vec<Vec<f32>> = grad.dj_dw.iter().map(|a| a.iter().map(|x| x * scale).collect()).collect();
        let phi_grads = weighting_gradient(&phi, &problem.docs, &dj_dw, device)?;
        accumulator.accumulate(&phi, phi_grads);
        if (s + 1).is_multiple_of(config.outer.grad_acc) {
            phi = optim.step(config.outer.outer_lr, phi, accumulator.grads());
        }

        theta = grad.theta_k;
        state.docs_since_reset += k;
        let reset = state.docs_since_reset >= config.inner.reset_base_every;
        if reset {
            theta = theta0.clone();
            state.docs_since_reset = 0;
        }
        state.step += 1;
        let step = state.step;
        log(serde_json::json!({
            "kind": "train", "step": step, "outer": grad.outer.total, "qa": grad.outer.qa, "kl": grad.outer.kl,
            "weight_mean": weight_mean, "base_reset": reset, "elapsed_s": started.elapsed().as_secs_f64(),
            "dj_dw_answer": dj_answer, "dj_dw_other": dj_other, "control": grad.outer.control,
        }))?;
        on_event(&Event::Step { step, total, outer: grad.outer });

        let end = step == stop;
        let mut saved = false; // whether this step's checkpoint is already written (as the best)
        if step.is_multiple_of(config.run.val_every) || step == total {
            let phi_valid = phi.valid();
            let ValRun { outer, qa_before, qa_after, control, kl, weights } =
                validate_with::<B>(encoder, config, &data, &theta0, Some(&phi_valid), device)
                    .map_err(|e| e.at(&format!("the validation after meta-step {}", state.step)))?;
            let (answer_weight, other_weight) = weight_mass(&data.val, &weights);
            let (n_answer, n_other) = data.val.iter().fold((0usize, 0usize), |(a, o), d| {
                let answers = d.answer.iter().skip(1).filter(|&&x| x).count();
                (a + answers, o + d.answer.len().saturating_sub(1) - answers)
            });
            let answer_total = answer_weight * n_answer as f64;
            let validation = Validation {
                step,
                outer,
                uniform_outer: uniform,
                qa_before,
                qa_after,
                qa_gain: qa_before - qa_after,
                control_before: control.map(|c| c.0),
                control_after: control.map(|c| c.1),
                fact_gain: control.map(|(cb, ca)| (qa_before - qa_after) - (cb - ca)),
                kl,
                answer_weight,
                other_weight,
                answer_ratio: answer_weight / other_weight.max(1e-30),
                answer_mass: answer_total / (answer_total + other_weight * n_other as f64).max(1e-30),
                effective_share: effective_share(&data.val, &weights),
            };
            let mut value = serde_json::to_value(&validation).expect("validation serialises");
            value["kind"] = "val".into();
            log(value)?;
            write_weight_pages(run_dir, config, &data, &weights, &validation)?;
            on_event(&Event::Validated(validation.clone()));
            if state.best.is_none_or(|(best, _)| outer < best) {
                state.best = Some((outer, step));
                // The best checkpoint is a full one, and `last` is pointed at it first: `best.json`
                // never names a step past `last.json`'s, so a resumed run (which starts from
                // `last`) never runs behind its own best checkpoint.
                let pointer = save_checkpoint(&state, &phi, &optim, &theta)?;
                checkpoint::write_pointer(run_dir, "last", &pointer)?;
                checkpoint::write_pointer(run_dir, "best", &pointer)?;
                checkpoint::prune(run_dir)?;
                saved = true;
                let dir = checkpoint::checkpoints_dir(run_dir).join(&pointer.dir);
                on_event(&Event::Checkpoint { name: "best", dir });
            }
            validations.push(validation);
        }
        if (step.is_multiple_of(config.run.checkpoint_every) || end) && !saved {
            let pointer = save_checkpoint(&state, &phi, &optim, &theta)?;
            checkpoint::write_pointer(run_dir, "last", &pointer)?;
            checkpoint::prune(run_dir)?;
            on_event(&Event::Checkpoint { name: "last", dir: checkpoint::checkpoints_dir(run_dir).join(&pointer.dir) });
        }
    }
    Ok(TrainSummary { step: state.step, finished: state.step >= total, validations, inputs: data.inputs })
}

fn write_weight_pages(
    run_dir: &Path,
    config: &MetaTrainConfig,
    data: &TrainData,
    weights: &[Vec<f32>],
    v: &Validation,
) -> Result<()> {
    let views: Vec<DocView> = data
        .val
        .iter()
        .zip(weights)
        .take(config.run.viz_docs)
        .map(|(doc, w)| {
            let n = doc.offsets.len();
            DocView { title: doc.id.clone(), tokens: token_views(&doc.text, &doc.offsets, &w[..n], &doc.answer) }
        })
        .collect();
    let summary = v.to_string();
    let dir = run_dir.join("weights");
    let html = html_page(&format!("CaMeLS token weights, step {}", v.step), &summary, &views);
    camels_model::hf::write_atomic(&dir.join(format!("step-{:08}.html", v.step)), html.as_bytes())?;
    camels_model::hf::write_atomic(&dir.join(format!("step-{:08}.png", v.step)), &png_heatmap(&views, 64))?;
    Ok(())
}

/// The mean dJ/dw over answer-bearing tokens and over the other real tokens of `docs` (position 0
/// has no loss and is left out): which of the two the meta-gradient asks to weigh up (the more
/// negative), a diagnosis logged with every step.
fn class_means(docs: &[&PreparedDoc], dj_dw: &[Vec<f32>]) -> (f64, f64) {
    let (mut sums, mut counts) = ([0.0f64; 2], [0usize; 2]);
    for (doc, g) in docs.iter().zip(dj_dw) {
        for (t, &answer) in doc.answer.iter().enumerate().skip(1) {
            let class = usize::from(!answer);
            sums[class] += f64::from(g[t]);
            counts[class] += 1;
        }
    }
    (sums[0] / counts[0].max(1) as f64, sums[1] / counts[1].max(1) as f64)
}

/// The training rows of a document as [`Rows`] (for callers outside the loop).
pub fn doc_rows(doc: &PreparedDoc) -> Result<Rows> {
    Rows::new(doc.ids.clone(), doc.mask.clone(), 1, doc.ids.len())
}

/// Builds the checkpoint pointer of the last checkpoint of `run_dir`, if any.
pub fn last_checkpoint(run_dir: &Path) -> Result<Option<Pointer>> {
    checkpoint::read_pointer(run_dir, "last")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_qa_loss_drops_the_end_of_sequence_target_when_asked() {
        let doc = PreparedDoc {
            id: "d".into(),
            text: "Avon flows past Berel.".into(),
            ids: vec![65, 118, 111, 110],
            mask: vec![1.0; 4],
            offsets: vec![(0, 1), (1, 2), (2, 3), (3, 4)],
            answer: vec![false; 4],
            qa: vec![("Which town?".into(), "Berel".into())],
        };
        let locality = TokenBatch::from_rows(&[vec![1, 2, 3]], None, 0, camels_data::Padding::Right, None).unwrap();
        let targets = |include_eos: bool| {
            let mut config = MetaTrainConfig::default();
            config.data.qa_include_eos = include_eos;
            let problem =
                build_problem(&camels_data::ByteEncoder, &config, &[&doc], &[], &locality, &mut Rng::new(0)).unwrap();
            problem.qa_targets.iter().sum::<f32>()
        };
        // " Berel" is 6 byte tokens; the end of sequence is one more target.
        assert_eq!(targets(true), targets(false) + 1.0);
        assert_eq!(targets(false), 6.0);
    }

    #[test]
    fn swapped_answers_pair_each_question_with_the_next_documents_answers() {
        let per_doc =
            vec![vec![("q1", "a1"), ("q2", "a2")], vec![("q3", "a3")], vec![("q4", "a4"), ("q5", "a5"), ("q6", "a6")]];
        let expected = [("q1", "a3"), ("q2", "a3"), ("q3", "a4"), ("q4", "a1"), ("q5", "a2"), ("q6", "a1")];
        assert_eq!(swapped_pairs(&per_doc), expected);

        // In the problem: the control rows are the own questions with those answers.
        let doc = |text: &str, qa: &[(&str, &str)]| PreparedDoc {
            id: text.into(),
            text: text.into(),
            ids: vec![65, 66, 67, 68],
            mask: vec![1.0; 4],
            offsets: vec![(0, 1), (1, 2), (2, 3), (3, 4)],
            answer: vec![false; 4],
            qa: qa.iter().map(|&(q, a)| (q.to_string(), a.to_string())).collect(),
        };
        let (d1, d2) = (doc("d1", &[("Who?", "Al")]), doc("d2", &[("Where?", "Berelheim")]));
        let locality = TokenBatch::from_rows(&[vec![1, 2, 3]], None, 0, camels_data::Padding::Right, None).unwrap();
        let mut config = MetaTrainConfig::default();
        config.outer.c_control = 1.0;
        config.outer.control = ControlKind::SwappedAnswers;
        let problem =
            build_problem(&camels_data::ByteEncoder, &config, &[&d1, &d2], &[], &locality, &mut Rng::new(0)).unwrap();
        let control = problem.control.expect("a control term");
        let per_row =
            |targets: &[f32], len: usize| -> Vec<f32> { targets.chunks(len).map(|r| r.iter().sum()).collect() };
        // Own answers " Al" (3 bytes) and " Berelheim" (10), plus the end of sequence each; swapped: the other way round.
        assert_eq!(per_row(&problem.qa_targets, problem.qa.len), [4.0, 11.0]);
        assert_eq!(per_row(&control.targets, control.qa.len), [11.0, 4.0]);
    }
}

/// How far an approximate meta-gradient mode is from the exact one on one meta-problem.
#[derive(Debug, Clone, Serialize)]
pub struct ModeAgreement {
    /// The meta-step whose documents, questions and locality rows were used (1-based).
    pub step: usize,
    /// Tokens compared (real tokens of the K documents after the first).
    pub tokens: usize,
    /// Seconds the exact meta-gradient took.
    pub exact_seconds: f64,
    /// Seconds the approximate one took.
    pub approx_seconds: f64,
    /// cos(dJ/dw exact, dJ/dw approximate) over all tokens of the K documents.
    pub cosine: f64,
    /// ‖approx − exact‖ / ‖exact‖ over the same tokens.
    pub relative_error: f64,
    /// ‖approx‖ / ‖exact‖.
    pub norm_ratio: f64,
    /// Fraction of tokens where the two dJ/dw have the same sign.
    pub sign_agreement: f64,
    /// cos of the weighting model's gradients dJ/dφ (trainable parameters only) that the two give.
    pub phi_cosine: f64,
    /// Mean dJ/dw (exact) over answer-bearing tokens and over the others.
    pub exact_answer_mean: f64,
    /// The same over the other real tokens.
    pub exact_other_mean: f64,
    /// Every compared token: its text and both dJ/dw.
    pub tokens_detail: Vec<TokenGradient>,
}

/// One token's meta-gradient under both modes.
#[derive(Debug, Clone, Serialize)]
pub struct TokenGradient {
    /// The document's id.
    pub doc: String,
    /// Position in the document.
    pub position: usize,
    /// The characters the token covers.
    pub text: String,
    /// Whether it overlaps a gold answer.
    pub answer: bool,
    /// Exact dJ/dw.
    pub exact: f32,
    /// Approximate dJ/dw.
    pub approx: f32,
}

/// Compares `approx` with the exact meta-gradient on the meta-problems of the first `problems`
/// steps of the run `config` describes (the same documents, questions, locality rows and carried
/// base as `meta_train`, φ at its initialisation), calling `on_result` after each.
pub fn meta_grad_agreement<B: Backend>(
    config: &MetaTrainConfig,
    problems: usize,
    approx: crate::metagrad::MetaGradMode,
    device: &B::Device,
    on_result: &mut dyn FnMut(&ModeAgreement),
) -> Result<Vec<ModeAgreement>> {
    let RunInputs { theta0, tokenizer, w_config, data } = RunInputs::<B>::load(config, &config.base.path, device)?;
    let encoder = &tokenizer.encoder();
    let phi = initial_weighting::<Autodiff<B>>(config, &w_config, device)?;
    let k = config.inner.update_batch_size;
    let mut theta = theta0.clone();
    let mut docs_since_reset = 0;
    let mut out = Vec::new();
    for s in 0..problems {
        let (indices, docs, problem) = step_problem(encoder, config, &data, s)?;
        let weights = doc_weights(&phi.valid(), &docs, device); // K × [1, T]
        let store = config.inner.store_theta_every;
        let at = |e: MetaError| e.at(&format!("meta-step {} (documents {indices:?})", s + 1));
        let started = Instant::now();
        let exact = meta_gradient_checkpointed(&theta, &weights, &problem, crate::metagrad::MetaGradMode::Exact, store)
            .map_err(at)?;
        let exact_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let other = meta_gradient_checkpointed(&theta, &weights, &problem, approx, store).map_err(at)?;
        let approx_seconds = started.elapsed().as_secs_f64();
        let a: Vec<f64> = exact.dj_dw.iter().flatten().map(|&x| f64::from(x)).collect();
        let b: Vec<f64> = other.dj_dw.iter().flatten().map(|&x| f64::from(x)).collect();
        let real: Vec<bool> =
            problem.docs.iter().flat_map(|d| d.mask.iter().enumerate().map(|(t, &m)| t > 0 && m > 0.0)).collect();
        let pick = |v: &[f64]| v.iter().zip(&real).filter(|(_, r)| **r).map(|(x, _)| *x).collect::<Vec<f64>>();
        let (a, b) = (pick(&a), pick(&b));
        let mut tokens_detail = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            let chars: Vec<char> = doc.text.chars().collect();
            for (t, &(start, end)) in doc.offsets.iter().enumerate().skip(1) {
                tokens_detail.push(TokenGradient {
                    doc: doc.id.clone(),
                    position: t,
                    text: chars[start.min(chars.len())..end.min(chars.len())].iter().collect(),
                    answer: doc.answer[t],
                    exact: exact.dj_dw[d][t],
                    approx: other.dj_dw[d][t],
                });
            }
        }
        let (exact_answer_mean, exact_other_mean) = class_means(&docs, &exact.dj_dw);
        let phi_a = trainable_gradient(&phi, &problem.docs, &exact.dj_dw, device)?;
        let phi_b = trainable_gradient(&phi, &problem.docs, &other.dj_dw, device)?;
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| y - x).collect();
        let result = ModeAgreement {
            step: s + 1,
            tokens: a.len(),
            exact_seconds,
            approx_seconds,
            cosine: cosine(&a, &b),
            relative_error: norm(&diff) / norm(&a).max(1e-300),
            norm_ratio: norm(&b) / norm(&a).max(1e-300),
            sign_agreement: a.iter().zip(&b).filter(|(x, y)| (**x >= 0.0) == (**y >= 0.0)).count() as f64
                / a.len().max(1) as f64,
            phi_cosine: cosine(&phi_a, &phi_b),
            exact_answer_mean,
            exact_other_mean,
            tokens_detail,
        };
        on_result(&result);
        out.push(result);
        theta = exact.theta_k;
        docs_since_reset += k;
        if docs_since_reset >= config.inner.reset_base_every {
            theta = theta0.clone();
            docs_since_reset = 0;
        }
    }
    Ok(out)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-300)
}

/// dJ/dφ over φ's trainable parameters, flattened in module order.
fn trainable_gradient<A: burn::tensor::backend::AutodiffBackend>(
    phi: &WeightingModel<A>,
    docs: &[Rows],
    dj_dw: &[Vec<f32>],
    device: &A::Device,
) -> Result<Vec<f64>> {
    use burn::module::{ModuleVisitor, Param, ParamId};
    struct Collect<'a, A: burn::tensor::backend::AutodiffBackend> {
        grads: &'a burn::optim::GradientsParams,
        out: Vec<f64>,
        _b: std::marker::PhantomData<A>,
    }
    impl<A: burn::tensor::backend::AutodiffBackend> ModuleVisitor<A> for Collect<'_, A> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            let id: ParamId = param.id;
            if let Some(g) = self.grads.get::<A::InnerBackend, D>(id) {
                self.out.extend(g.into_data().iter::<f32>().map(f64::from));
            }
        }
    }
    let grads = crate::metagrad::weighting_gradient(phi, docs, dj_dw, device)?;
    let mut visitor = Collect::<A> { grads: &grads, out: Vec::new(), _b: std::marker::PhantomData };
    phi.visit(&mut visitor);
    Ok(visitor.out)
}
