//! Per-token cross-entropy and the masked and weighted reductions CaMeLS uses.
//!
//! Token t's loss ℓ_t predicts token t+1, so a weight or mask on token t+1 scales ℓ_t: weights
//! and masks are given per token (`[B, T]`) and shifted here, once.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

/// How a weighted sum of token losses is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// Divide by the number of target positions, padding included (B·(T−1)): the CaMeLS
    /// reference's `mean`, which makes the effective step grow with document length.
    #[default]
    MeanPadded,
    /// Divide by the number of real target tokens.
    MeanReal,
}

/// Unreduced next-token cross-entropy.
///
/// # Shapes
/// `logits` `[B, T, V]`, `ids` `[B, T]` → `[B, T−1]` (entry t is −log p(ids[t+1] | ids[..=t])).
pub fn token_cross_entropy<B: Backend>(logits: Tensor<B, 3>, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [batch, len, vocab] = logits.dims();
    let log_probs = log_softmax(logits.narrow(1, 0, len - 1).reshape([batch * (len - 1), vocab]), 1); // [B·(T−1), V]
    let targets = ids.narrow(1, 1, len - 1).reshape([batch * (len - 1), 1]);
    log_probs.gather(1, targets).reshape([batch, len - 1]).neg()
}

/// Σ_t w[t+1]·m[t+1]·ℓ[t], normalised as `reduction` says.
///
/// # Shapes
/// `token_loss` `[B, T−1]`, `weights` `[B, T]`, `mask` `[B, T]` → `[1]`.
pub fn weighted_loss<B: Backend>(
    token_loss: Tensor<B, 2>,
    weights: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    reduction: Reduction,
) -> Tensor<B, 1> {
    let [batch, len] = mask.dims();
    let target_mask = mask.narrow(1, 1, len - 1); // [B, T−1]
    let total = (token_loss * weights.narrow(1, 1, len - 1) * target_mask.clone()).sum();
    match reduction {
        Reduction::MeanPadded => total / (batch * (len - 1)) as f64,
        Reduction::MeanReal => total / target_mask.sum().clamp_min(1.0),
    }
}

/// Mean of ℓ over the target tokens that `target_mask` marks (the QA loss: answer tokens only).
///
/// # Shapes
/// `token_loss` `[B, T−1]`, `target_mask` `[B, T]` → `[1]`.
pub fn masked_mean<B: Backend>(token_loss: Tensor<B, 2>, target_mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let [_, len] = target_mask.dims();
    let target_mask = target_mask.narrow(1, 1, len - 1);
    (token_loss * target_mask.clone()).sum() / target_mask.sum().clamp_min(1.0)
}

/// KL(p ‖ q) per position, averaged over the positions `mask` marks: the CaMeLS locality term with
/// p the pre-update model (constant) and q the updated one.
///
/// # Shapes
/// `logits_p`, `logits_q` `[B, T, V]`, `mask` `[B, T]` → `[1]`.
pub fn kl_divergence<B: Backend>(logits_p: Tensor<B, 3>, logits_q: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let log_p = log_softmax(logits_p, 2); // [B, T, V]
    let log_q = log_softmax(logits_q, 2);
    let per_position = (log_p.clone().exp() * (log_p - log_q)).sum_dim(2).squeeze_dim::<2>(2); // [B, T]
    (per_position * mask.clone()).sum() / mask.sum().clamp_min(1.0)
}
