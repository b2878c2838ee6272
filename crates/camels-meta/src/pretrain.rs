//! Making a small QA-capable base LM from scratch, as CaMeLS assumes one: language-model training on
//! documents, then fine-tuning on their question–answer pairs (loss on the answer tokens only) with
//! the LM loss kept alongside so that the documents' facts are not forgotten; and [`qa_tune`], QA
//! fine-tuning with validation (answer NLL, F1), early stopping and the best model kept (the paper's
//! QA pre-training of a base LM, and the "uniform + QA-tune" baseline).

use crate::EncoderExt;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use camels_data::{Document, QaBatchConfig, Rng, TextEncoder, TokenBatch, locality_batch, qa_train_batch};
use camels_model::base::BaseLm;
use camels_model::loss::{masked_mean, token_cross_entropy};
use camels_model::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};
use crate::eval::{EvalConfig, evaluate_questions, questions_of};
use crate::params::scalar;

/// Options of [`pretrain`].
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainConfig {
    /// Adam steps of LM training on the documents.
    pub lm_steps: usize,
    /// Adam steps of QA fine-tuning (each also takes an LM batch).
    pub qa_steps: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// LM window length, in tokens.
    pub seq_len: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self { lm_steps: 600, qa_steps: 600, batch_size: 8, seq_len: 128, lr: 1e-3, seed: 0 }
    }
}

fn tensors<B: Backend>(batch: &TokenBatch, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let ids: Vec<i64> = batch.ids.iter().map(|&x| i64::from(x)).collect();
    let ids = Tensor::from_data(TensorData::new(ids, [batch.batch, batch.len]), device); // [B, T]
    let targets = Tensor::from_data(TensorData::new(batch.target_mask.clone(), [batch.batch, batch.len]), device);
    (ids, targets)
}

/// Trains `model` on `documents` (LM), then on their questions (QA + LM); `on_step(phase, step,
/// loss)` is called after every step. Returns the trained model.
pub fn pretrain<B: AutodiffBackend>(
    mut model: BaseLm<B>,
    encoder: &dyn TextEncoder,
    documents: &[Document],
    config: &PretrainConfig,
    device: &B::Device,
    on_step: &mut dyn FnMut(&str, usize, f64),
) -> Result<BaseLm<B>> {
    let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
    let windows = locality_batch(encoder, &texts, config.seq_len)?;
    let pairs: Vec<(&str, &str)> = documents
        .iter()
        .flat_map(|d| d.questions.iter())
        .filter_map(|q| q.shortest_answer().map(|a| (q.question.as_str(), a)))
        .collect();
    if pairs.is_empty() && config.qa_steps > 0 {
        return Err(MetaError::Shape("no question-answer pairs to fine-tune on".into()));
    }
    let qa = qa_train_batch(encoder, &pairs, &QaBatchConfig::default())?;
    let mut optim = AdamConfig::new().init::<B, BaseLm<B>>();
    let mut rng = Rng::new(config.seed);
    let lm_batch = |rng: &mut Rng| {
        let rows: Vec<usize> = (0..config.batch_size).map(|_| rng.index(windows.batch)).collect();
        tensors::<B>(&windows.select(&rows), device)
    };
    for step in 0..config.lm_steps + config.qa_steps {
        let (ids, targets) = lm_batch(&mut rng);
        let mut loss = masked_mean(token_cross_entropy(model.forward(ids.clone()), ids), targets); // [1]
        let phase = if step < config.lm_steps { "lm" } else { "qa" };
        if phase == "qa" {
            let rows: Vec<usize> = (0..config.batch_size).map(|_| rng.index(qa.batch)).collect();
            let batch = qa.select(&rows);
            // Trim the padding columns shared by all selected rows.
            let (ids, targets) = tensors::<B>(&batch, device);
            loss = loss + masked_mean(token_cross_entropy(model.forward(ids.clone()), ids), targets);
        }
        let value = scalar(loss.clone());
        if !value.is_finite() {
            return Err(MetaError::NonFinite { what: format!("{phase} loss at step {step}"), value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.lr, model, grads);
        on_step(phase, step, value);
    }
    Ok(model)
}

/// Options of [`qa_tune`]. TOML/JSON with these field names; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaTuneConfig {
    /// Adam steps at most.
    pub max_steps: usize,
    /// Question–answer pairs per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Validate every this many steps (and before the first).
    pub val_every: usize,
    /// Stop after this many validations in a row without a lower answer NLL.
    pub patience: usize,
    /// Validation questions at most (the first of the validation documents).
    pub val_questions: usize,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for QaTuneConfig {
    fn default() -> Self {
        Self::demo()
    }
}

impl QaTuneConfig {
    /// The demo's setting for the small synthetic-world models: at most 200 steps of 16 pairs at lr
    /// 1e-4, validated every 25 steps on 64 questions, patience 2.
    pub fn demo() -> Self {
        Self { max_steps: 200, batch_size: 16, lr: 1e-4, val_every: 25, patience: 2, val_questions: 64, seed: 0 }
    }

    /// For tests: 4 steps of 2 pairs, validated every 2 steps on 4 questions.
    pub fn tiny() -> Self {
        Self { max_steps: 4, batch_size: 2, lr: 1e-3, val_every: 2, patience: 1, val_questions: 4, seed: 0 }
    }

    /// Refuses values the loop cannot run with.
    pub fn validate(&self) -> Result<()> {
        for (option, value) in [
            ("batch_size", self.batch_size),
            ("val_every", self.val_every),
            ("patience", self.patience),
            ("val_questions", self.val_questions),
        ] {
            if value == 0 {
                return Err(MetaError::InvalidOption {
                    option: format!("qa_tune.{option}"),
                    value: "0".into(),
                    expected: "at least 1".into(),
                });
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(MetaError::InvalidOption {
                option: "qa_tune.lr".into(),
                value: self.lr.to_string(),
                expected: "a positive number".into(),
            });
        }
        Ok(())
    }
}

/// One validation of [`qa_tune`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaValidation {
    /// Steps done (0: the model as given).
    pub step: usize,
    /// Mean gold-answer NLL, nats per answer token.
    pub answer_nll: f64,
    /// F1, percent.
    pub f1: f64,
    /// Lenient prefix EM, percent.
    pub em: f64,
}

/// What [`qa_tune`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaTuneReport {
    /// Every validation, in order.
    pub validations: Vec<QaValidation>,
    /// The validation of the model returned (lowest answer NLL; step 0 when tuning never helped).
    pub best: QaValidation,
    /// Steps taken.
    pub steps: usize,
    /// Whether patience ran out before `max_steps`.
    pub stopped_early: bool,
}

fn validate_qa<B: Backend>(
    model: &BaseLm<B>,
    tokenizer: &TextTokenizer,
    items: &[crate::eval::QaItem],
    eval: &EvalConfig,
    step: usize,
    device: &B::Device,
) -> Result<QaValidation> {
    let predictions = evaluate_questions(model, tokenizer, items, eval, device)?;
    let n = predictions.len().max(1) as f64;
    Ok(QaValidation {
        step,
        answer_nll: predictions.iter().map(|p| p.nll).sum::<f64>() / n,
        f1: 100.0 * predictions.iter().map(|p| p.f1).sum::<f64>() / n,
        em: 100.0 * predictions.iter().map(|p| p.em).sum::<f64>() / n,
    })
}

/// The documents [`qa_tune`] trains and validates on.
#[derive(Debug, Clone, Copy)]
pub struct QaSplits<'a> {
    /// Documents whose question–answer pairs are trained on.
    pub train: &'a [Document],
    /// Documents whose questions validate.
    pub val: &'a [Document],
}

/// Fine-tunes `model` on the question–answer pairs of `data.train` (loss on the answer tokens and end of
/// sequence, prompts as `eval.qa` makes them), validating every `val_every` steps on the questions
/// of `data.val` (answer NLL and F1); stops after `patience` validations without a lower answer NLL and
/// returns the model of the best validation (without its autodiff wrapper). `on_validation` is
/// called after every validation.
pub fn qa_tune<B: AutodiffBackend>(
    mut model: BaseLm<B>,
    tokenizer: &TextTokenizer,
    data: QaSplits<'_>,
    config: &QaTuneConfig,
    eval: &EvalConfig,
    device: &B::Device,
    on_validation: &mut dyn FnMut(&QaValidation),
) -> Result<(BaseLm<B::InnerBackend>, QaTuneReport)> {
    config.validate()?;
    let QaSplits { train, val } = data;
    let pairs: Vec<(&str, &str)> = train
        .iter()
        .flat_map(|d| d.questions.iter())
        .filter_map(|q| q.shortest_answer().map(|a| (q.question.as_str(), a)))
        .collect();
    let mut items = questions_of(val);
    items.truncate(config.val_questions);
    if pairs.is_empty() || items.is_empty() {
        return Err(MetaError::Shape(format!(
            "qa-tune needs training pairs and validation questions: {} and {}",
            pairs.len(),
            items.len()
        )));
    }
    let qa = qa_train_batch(&tokenizer.encoder(), &pairs, &eval.qa)?;
    let mut optim = AdamConfig::new().init::<B, BaseLm<B>>();
    let mut rng = Rng::new(config.seed);
    let first = validate_qa(&model.valid(), tokenizer, &items, eval, 0, device)?;
    on_validation(&first);
    let (mut best, mut best_model) = (first.clone(), model.valid());
    let mut validations = vec![first];
    let (mut since_best, mut steps, mut stopped_early) = (0, 0, false);
    for step in 1..=config.max_steps {
        let rows: Vec<usize> = (0..config.batch_size).map(|_| rng.index(qa.batch)).collect();
        let (ids, targets) = tensors::<B>(&qa.select(&rows), device); // [B, T], [B, T]
        let loss = masked_mean(token_cross_entropy(model.forward(ids.clone()), ids), targets); // [1]
        let value = scalar(loss.clone());
        if !value.is_finite() {
            return Err(MetaError::NonFinite { what: format!("qa-tune loss at step {step}"), value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.lr, model, grads);
        steps = step;
        if step % config.val_every == 0 || step == config.max_steps {
            let v = validate_qa(&model.valid(), tokenizer, &items, eval, step, device)?;
            on_validation(&v);
            if v.answer_nll < best.answer_nll {
                (best, best_model, since_best) = (v.clone(), model.valid(), 0);
            } else {
                since_best += 1;
            }
            validations.push(v);
            if since_best >= config.patience {
                stopped_early = step < config.max_steps;
                break;
            }
        }
    }
    Ok((best_model, QaTuneReport { validations, best, steps, stopped_early }))
}
