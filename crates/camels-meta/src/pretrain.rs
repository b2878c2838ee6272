//! Making a small QA-capable base LM from scratch, as CaMeLS assumes one: language-model training on
//! documents, then fine-tuning on their question–answer pairs (loss on the answer tokens only) with
//! the LM loss kept alongside so that the documents' facts are not forgotten.

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use camels_data::{Document, QaBatchConfig, Rng, TextEncoder, TokenBatch, locality_batch, qa_train_batch};
use camels_model::gpt2::Gpt2LmHead;
use camels_model::loss::{masked_mean, token_cross_entropy};

use crate::error::{MetaError, Result};
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
    mut model: Gpt2LmHead<B>,
    encoder: &dyn TextEncoder,
    documents: &[Document],
    config: &PretrainConfig,
    device: &B::Device,
    on_step: &mut dyn FnMut(&str, usize, f64),
) -> Result<Gpt2LmHead<B>> {
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
    let mut optim = AdamConfig::new().init::<B, Gpt2LmHead<B>>();
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
