//! The CaMeLS meta-gradient dJ/dw through K sequential weighted SGD steps of the base LM, by the
//! adjoint recursion of `shared/notes/meta-gradient.md`, so that no autodiff graph spans two inner
//! steps (except in the full-unroll oracle).
//!
//! With θ_k = θ_{k−1} − α ∇L_k(θ_{k−1}; w_k) and J = QA(θ_K) + c_kl·KL(p_θ₀ ‖ p_θ_K)
//! (− c_control·QA_control(θ_K) where control questions are given; with the hinge,
//! − c_control·min(QA_control(θ_K), QA_control(θ₀))):
//!
//! ```text
//! λ ← ∇J(θ_K)
//! for k = K..1:   dJ/dw_k[t+1] = −α · ∂⟨∇L_k(θ_{k−1}; w_k), λ⟩ / ∂w_k[t+1]
//!                 λ ← λ − α · H_k(θ_{k−1}) λ            (k > 1)
//! ```
//!
//! Modes: [`MetaGradMode::Exact`] (one double backward per step on `Autodiff<Autodiff<B>>`),
//! [`MetaGradMode::CentralDifference`] (two first-order forward+backward passes at θ ± hλ̂),
//! [`MetaGradMode::FirstOrder`] (no HVP; two forwards per step), [`MetaGradMode::FullUnroll`]
//! (the reference's second-order graph through all K steps; a test oracle for small models).
//!
//! Parameter copies alive at once, outside full unroll: the stored θ_k, θ_K, λ, and the two
//! gradients of one step (Hλ and the inner gradient, or ∇L at θ+ and θ−). With every θ₀ … θ_{K−1}
//! stored ([`meta_gradient`]) that is K + 4. [`meta_gradient_checkpointed`] stores only every
//! `store_every`-th θ_k and recomputes the others in the adjoint sweep from the nearest stored one:
//! ⌈K / s⌉ stored, one recomputed (s > 1) and the 4 others, for Σ_k (k mod s) extra first-order
//! inner steps (s = K: 6 copies at any K, for K(K−1)/2 extra steps). With s > K, θ_K too is dropped
//! once λ is computed and recomputed after the sweep: 5 copies, for K more steps.

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use camels_model::base::BaseLm;
use camels_model::loss::{Reduction, kl_divergence, masked_mean, token_cross_entropy, weighted_loss};
use camels_model::reference::values;

use crate::error::{MetaError, Result};
use crate::params::{SgdStep, combine, dot, lift, lift_constant, scalar, shifted};

/// A right-padded batch of token rows on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Token ids, `[B·T]` row-major.
    pub ids: Vec<i64>,
    /// 1 on real tokens, 0 on padding, `[B·T]`.
    pub mask: Vec<f32>,
    /// B.
    pub batch: usize,
    /// T.
    pub len: usize,
}

impl Rows {
    /// Builds rows, checking the sizes.
    pub fn new(ids: Vec<i64>, mask: Vec<f32>, batch: usize, len: usize) -> Result<Self> {
        if ids.len() != batch * len || mask.len() != batch * len || len < 2 {
            return Err(MetaError::Shape(format!(
                "{} ids and {} mask values for [{batch}, {len}] (T must be at least 2)",
                ids.len(),
                mask.len()
            )));
        }
        Ok(Self { ids, mask, batch, len })
    }
    /// `[B, T]` ids on `device`.
    pub fn ids<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(self.ids.clone(), [self.batch, self.len]), device)
    }
    /// `[B, T]` mask on `device`.
    pub fn mask<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.mask.clone(), [self.batch, self.len]), device)
    }
}

/// The data of one meta-step: K documents, the questions about them, unrelated text.
#[derive(Debug, Clone)]
pub struct MetaProblem {
    /// The K documents, each one row `[1, T]`.
    pub docs: Vec<Rows>,
    /// QA pairs "question answer<eos>", `[Bq, Tq]`.
    pub qa: Rows,
    /// 1 on the answer tokens (and EOS) that the QA loss predicts, `[Bq·Tq]`.
    pub qa_targets: Vec<f32>,
    /// Unrelated text for the locality term, `[Bl, Tl]`.
    pub locality: Rows,
    /// Questions about documents the inner loop does not see, whose NLL J subtracts: what the
    /// steps teach every answer (the format, generic sharpening) cancels, and what is left is
    /// the documents' own facts. None: the paper's J.
    pub control: Option<ControlQa>,
    /// Inner SGD step α.
    pub inner_lr: f64,
    /// Weight of KL(p_θ₀ ‖ p_θ_K).
    pub c_kl: f64,
    /// Normalisation of the inner weighted loss.
    pub reduction: Reduction,
}

/// Control questions of a [`MetaProblem`]: J gains `− coefficient · QA_control(θ_K)`, or with
/// `hinge` `− coefficient · min(QA_control(θ_K), QA_control(θ₀))`.
#[derive(Debug, Clone)]
pub struct ControlQa {
    /// QA pairs "question answer", `[Bc, Tc]`.
    pub qa: Rows,
    /// 1 on the answer tokens the control loss predicts, `[Bc·Tc]`.
    pub targets: Vec<f32>,
    /// c_control.
    pub coefficient: f64,
    /// Count the control term only while the steps lower the control NLL: without it, weights
    /// that make other documents' answers *less* likely lower J too (measured on SmolLM2:
    /// BENCHMARKS.md, "a 10× outer learning rate"), which rewards damaging the model.
    pub hinge: bool,
}

impl ControlQa {
    /// Whether the control NLL `after` the steps enters J with its gradient: always, or with the
    /// hinge only while it is below its value `before` them (else J holds `before`, a constant).
    pub fn counts(&self, after: f64, before: f64) -> bool {
        !self.hinge || after < before
    }
}

/// How to compute the meta-gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetaGradMode {
    /// One double backward per inner step (exact; the default).
    Exact,
    /// Central differences along λ̂ with step `h_rel · ‖θ‖`; first-order autodiff only.
    CentralDifference {
        /// Step relative to the parameter norm.
        h_rel: f64,
    },
    /// No Hessian-vector product (λ stays ∇J(θ_K)); the JVP by central differences.
    FirstOrder {
        /// Step relative to the parameter norm.
        h_rel: f64,
    },
    /// Double backward through the whole unrolled inner loop, as the reference does (memory
    /// grows with K): a test oracle.
    FullUnroll,
}

impl MetaGradMode {
    /// Central differences with the step that measured best on the tiny fixture
    /// (h = 1e-4·‖θ‖: dJ/dw within 1.3e-4 of the exact value; 1e-3 gives 1.3e-2).
    pub fn central_difference() -> Self {
        Self::CentralDifference { h_rel: 1e-4 }
    }
    /// First order with the same difference step.
    pub fn first_order() -> Self {
        Self::FirstOrder { h_rel: 1e-4 }
    }
}

/// The outer objective's parts at θ_K.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OuterLoss {
    /// J = qa + c_kl · kl − c_control · control (hinged: − c_control · min(control, its value at θ₀)).
    pub total: f64,
    /// Mean NLL of the answer tokens.
    pub qa: f64,
    /// KL(p_θ₀ ‖ p_θ_K) per locality token.
    pub kl: f64,
    /// Mean NLL of the control questions' answer tokens (None without control questions).
    pub control: Option<f64>,
}

/// The result of one meta-gradient computation.
#[derive(Debug)]
pub struct MetaGradient<B: Backend> {
    /// dJ/dw_k for every document, `[T]` each (zero at position 0 and on padding).
    pub dj_dw: Vec<Vec<f32>>,
    /// J and its parts.
    pub outer: OuterLoss,
    /// The base LM after the K inner steps.
    pub theta_k: BaseLm<B>,
}

type X<B> = Autodiff<B>;
type O<B> = Autodiff<Autodiff<B>>;

/// L_k(θ; w) and the per-token losses `[1, T−1]`.
fn inner_loss<M: Backend>(
    model: &BaseLm<M>,
    doc: &Rows,
    weights: Tensor<M, 2>,
    reduction: Reduction,
) -> (Tensor<M, 1>, Tensor<M, 2>) {
    let device = weights.device();
    let ids = doc.ids::<M>(&device);
    let token_loss = token_cross_entropy(model.forward(ids.clone()), ids);
    (weighted_loss(token_loss.clone(), weights, doc.mask(&device), reduction), token_loss)
}

/// Mean NLL of the `targets` tokens of QA rows `qa` under `model`.
fn answer_nll<M: Backend>(model: &BaseLm<M>, qa: &Rows, targets: &[f32], device: &M::Device) -> Tensor<M, 1> {
    let ids = qa.ids::<M>(device); // [Bq, Tq]
    let targets = Tensor::from_data(TensorData::new(targets.to_vec(), [qa.batch, qa.len]), device); // [Bq, Tq]
    masked_mean(token_cross_entropy(model.forward(ids.clone()), ids), targets)
}

/// The parts of J at θ: (J, QA, KL, control QA).
type Parts<M> = (Tensor<M, 1>, Tensor<M, 1>, Tensor<M, 1>, Option<Tensor<M, 1>>);

/// J(θ) = QA(θ) + c_kl · KL(p₀ ‖ p_θ) − c_control · QA_control(θ), with the locality logits of θ₀
/// given (constant); with a hinged control term, `control_before` is QA_control(θ₀) and the term is
/// − c_control · min(QA_control(θ), QA_control(θ₀)) (a constant, without gradient, once the
/// control NLL is above where it started).
fn outer_loss<M: Backend>(
    model: &BaseLm<M>,
    pre_logits: Tensor<M, 3>,
    problem: &MetaProblem,
    control_before: Option<f64>,
) -> Parts<M> {
    let device = pre_logits.device();
    let qa = answer_nll(model, &problem.qa, &problem.qa_targets, &device);
    let loc = &problem.locality;
    let kl = kl_divergence(pre_logits, model.forward(loc.ids::<M>(&device)), loc.mask(&device));
    let mut total = qa.clone() + kl.clone() * problem.c_kl;
    let control = problem.control.as_ref().map(|c| {
        let nll = answer_nll(model, &c.qa, &c.targets, &device);
        total = match control_before {
            Some(before) if !c.counts(scalar(nll.clone()), before) => total.clone().sub_scalar(c.coefficient * before),
            _ => total.clone() - nll.clone() * c.coefficient,
        };
        nll
    });
    (total, qa, kl, control)
}

/// QA_control(θ₀) when the problem's control term is hinged (see [`ControlQa::hinge`]).
fn control_floor<B: Backend>(theta0: &BaseLm<B>, problem: &MetaProblem, device: &B::Device) -> Option<f64> {
    problem.control.as_ref().filter(|c| c.hinge).map(|c| scalar(answer_nll(theta0, &c.qa, &c.targets, device)))
}

fn outer_values<M: Backend>(parts: &Parts<M>) -> Result<OuterLoss> {
    let outer = OuterLoss {
        total: scalar(parts.0.clone()),
        qa: scalar(parts.1.clone()),
        kl: scalar(parts.2.clone()),
        control: parts.3.clone().map(scalar),
    };
    if !outer.total.is_finite() {
        return Err(MetaError::NonFinite { what: "outer loss".into(), value: outer.total });
    }
    Ok(outer)
}

/// N of the inner loss's normalisation for one document.
fn normaliser(doc: &Rows, reduction: Reduction) -> f64 {
    match reduction {
        Reduction::MeanPadded => (doc.batch * (doc.len - 1)) as f64,
        Reduction::MeanReal => {
            let real: f32 = doc.mask.chunks(doc.len).map(|row| row[1..].iter().sum::<f32>()).sum();
            f64::from(real).max(1.0)
        }
    }
}

/// dJ/dw for all K documents (`weights[k]` is `[1, T]`), by `mode`, with every θ_k stored.
pub fn meta_gradient<B: Backend>(
    theta0: &BaseLm<B>,
    weights: &[Tensor<B, 2>],
    problem: &MetaProblem,
    mode: MetaGradMode,
) -> Result<MetaGradient<B>> {
    meta_gradient_checkpointed(theta0, weights, problem, mode, 1)
}

/// [`meta_gradient`] storing only θ_k for k a multiple of `store_every` (1: all, the fastest;
/// K: θ₀ and θ_K; > K: θ₀ only, the leanest) and recomputing the others in the adjoint sweep:
/// bit for bit on a deterministic backend (tested on CPU; a GPU's autotuned kernels may round
/// differently).
pub fn meta_gradient_checkpointed<B: Backend>(
    theta0: &BaseLm<B>,
    weights: &[Tensor<B, 2>],
    problem: &MetaProblem,
    mode: MetaGradMode,
    store_every: usize,
) -> Result<MetaGradient<B>> {
    if weights.len() != problem.docs.len() {
        return Err(MetaError::Shape(format!("{} weight rows for {} documents", weights.len(), problem.docs.len())));
    }
    if mode == MetaGradMode::FullUnroll {
        return full_unroll(theta0, weights, problem);
    }
    let alpha = problem.inner_lr;
    let device = weights.first().map(|w| w.device()).unwrap_or_default();
    let store_every = store_every.max(1);

    // Forward: θ₀ … θ_K, one first-order backward per document; θ_k kept where k is a multiple of
    // `store_every` (θ₀ is the caller's and costs no copy).
    let mut stored: Vec<Option<BaseLm<B>>> = vec![None; problem.docs.len()];
    let mut theta = theta0.clone();
    for (k, doc) in problem.docs.iter().enumerate() {
        if k.is_multiple_of(store_every) {
            stored[k] = Some(theta.clone());
        }
        theta = inner_step(theta, doc, weights[k].clone(), problem);
    }
    let theta_k = theta;

    // λ = ∇J(θ_K); θ_K is then kept for the caller unless `store_every` > K, in which case it is
    // recomputed after the sweep, so that it is not alive during it.
    let (outer, mut lambda) = {
        let pre_logits = theta0.forward(problem.locality.ids::<B>(&device));
        let model: BaseLm<X<B>> = lift(theta_k.clone());
        let floor = control_floor(theta0, problem, &device);
        let parts = outer_loss(&model, Tensor::from_inner(pre_logits), problem, floor);
        let outer = outer_values(&parts)?;
        (outer, GradientsParams::from_grads(parts.0.backward(), &model))
    };
    let theta_k = (store_every <= problem.docs.len()).then_some(theta_k);

    // Adjoint, k = K..1.
    let mut dj_dw = vec![Vec::new(); problem.docs.len()];
    for k in (0..problem.docs.len()).rev() {
        let doc = &problem.docs[k];
        let theta = &match stored[k].take() {
            Some(theta) => theta,
            None => {
                // Recompute θ_k from the nearest stored θ_j, j < k (dropped once k = j).
                let j = k - k % store_every;
                unroll(stored[j].clone().expect("θ_j stored on the forward pass"), j..k, weights, problem)
            }
        };
        let (dsdw, h_lambda) = match mode {
            MetaGradMode::Exact => exact_step(theta, weights[k].clone(), doc, &lambda, problem.reduction),
            MetaGradMode::CentralDifference { h_rel } => {
                difference_step(theta, weights[k].clone(), doc, &lambda, problem.reduction, h_rel, true)
            }
            MetaGradMode::FirstOrder { h_rel } => {
                difference_step(theta, weights[k].clone(), doc, &lambda, problem.reduction, h_rel, false)
            }
            MetaGradMode::FullUnroll => unreachable!("handled above"),
        };
        dj_dw[k] = dsdw.iter().map(|x| (-alpha * f64::from(*x)) as f32).collect();
        if let (true, Some(h)) = (k > 0, h_lambda) {
            lambda = combine(theta, 1.0, &lambda, -alpha, &h);
        }
    }
    drop(lambda);
    let theta_k = theta_k.unwrap_or_else(|| unroll(theta0.clone(), 0..problem.docs.len(), weights, problem));
    Ok(MetaGradient { dj_dw, outer, theta_k })
}

/// θ_to from θ_from by the weighted SGD steps of `problem.docs[steps]` (first-order gradients
/// only; no meta-gradient).
pub fn unroll<B: Backend>(
    theta: BaseLm<B>,
    steps: std::ops::Range<usize>,
    weights: &[Tensor<B, 2>],
    problem: &MetaProblem,
) -> BaseLm<B> {
    steps.fold(theta, |theta, i| inner_step(theta, &problem.docs[i], weights[i].clone(), problem))
}

/// θ − α ∇L(θ; w): one weighted SGD step on `doc`, by one first-order backward.
fn inner_step<B: Backend>(theta: BaseLm<B>, doc: &Rows, w: Tensor<B, 2>, problem: &MetaProblem) -> BaseLm<B> {
    let model: BaseLm<X<B>> = lift(theta.clone());
    let (loss, _) = inner_loss(&model, doc, Tensor::from_inner(w), problem.reduction);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    theta.map(&mut SgdStep { grads: &grads, lr: problem.inner_lr })
}

/// ∂⟨∇L(θ; w), λ⟩/∂w and H(θ)λ by one double backward.
fn exact_step<B: Backend>(
    theta: &BaseLm<B>,
    w: Tensor<B, 2>,
    doc: &Rows,
    lambda: &GradientsParams,
    reduction: Reduction,
) -> (Vec<f32>, Option<GradientsParams>) {
    let model_x: BaseLm<X<B>> = lift(theta.clone());
    let model_o: BaseLm<O<B>> = lift(model_x.clone());
    let w_x = Tensor::<X<B>, 2>::from_inner(w).require_grad();
    let (loss, _) = inner_loss(&model_o, doc, Tensor::from_inner(w_x.clone()), reduction);
    let g = GradientsParams::from_grads(loss.backward(), &model_o); // level-1 tensors, graph kept
    let lambda_x = lift_constant::<X<B>, B>(theta, lambda);
    let s: Tensor<X<B>, 1> = dot(&model_o, &g, &lambda_x).expect("the base LM has parameters");
    let grads = s.backward();
    let dsdw = w_x.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; doc.len]);
    let h_lambda = GradientsParams::from_grads(grads, &model_x);
    (dsdw, Some(h_lambda))
}

/// The same quantities by central differences along λ̂ (`with_hvp`: also the Hessian term).
fn difference_step<B: Backend>(
    theta: &BaseLm<B>,
    w: Tensor<B, 2>,
    doc: &Rows,
    lambda: &GradientsParams,
    reduction: Reduction,
    h_rel: f64,
    with_hvp: bool,
) -> (Vec<f32>, Option<GradientsParams>) {
    let device = w.device();
    let norm = dot::<B, B>(theta, lambda, lambda).map(scalar).unwrap_or(0.0).sqrt();
    if norm == 0.0 {
        return (vec![0.0; doc.len], with_hvp.then(GradientsParams::new));
    }
    let theta_norm = param_norm(theta);
    let h = h_rel * theta_norm.max(1.0);
    let unit = combine(theta, 1.0 / norm, lambda, 0.0, lambda);
    let mut token_losses = Vec::with_capacity(2);
    let mut grads = Vec::with_capacity(2);
    for sign in [1.0, -1.0] {
        let shifted_theta = shifted(theta.clone(), &unit, sign * h);
        if with_hvp {
            let model: BaseLm<X<B>> = lift(shifted_theta);
            let (loss, token_loss) = inner_loss(&model, doc, Tensor::from_inner(w.clone()), reduction);
            token_losses.push(values(token_loss.inner()));
            grads.push(GradientsParams::from_grads(loss.backward(), &model));
        } else {
            let ids = doc.ids::<B>(&device);
            token_losses.push(values(token_cross_entropy(shifted_theta.forward(ids.clone()), ids)));
        }
    }
    // ∂⟨∇L, λ⟩/∂w[t+1] = m[t+1] · ⟨∇ℓ_t, λ⟩ / N, with ⟨∇ℓ_t, λ⟩ ≈ ‖λ‖ (ℓ_t(θ+) − ℓ_t(θ−)) / 2h.
    let n = normaliser(doc, reduction);
    let mut dsdw = vec![0.0f32; doc.len];
    for t in 0..doc.len - 1 {
        let u = norm * f64::from(token_losses[0][t] - token_losses[1][t]) / (2.0 * h);
        dsdw[t + 1] = (f64::from(doc.mask[t + 1]) * u / n) as f32;
    }
    let h_lambda = with_hvp.then(|| combine(theta, norm / (2.0 * h), &grads[0], -norm / (2.0 * h), &grads[1]));
    (dsdw, h_lambda)
}

/// ‖θ‖ over all float parameters.
fn param_norm<B: Backend>(theta: &BaseLm<B>) -> f64 {
    camels_model::hf::module_tensors(theta)
        .values()
        .flat_map(|(_, v)| v.iter().map(|x| f64::from(*x).powi(2)))
        .sum::<f64>()
        .sqrt()
}

/// The reference's computation: the second-order graph of all K steps, then one backward.
fn full_unroll<B: Backend>(
    theta0: &BaseLm<B>,
    weights: &[Tensor<B, 2>],
    problem: &MetaProblem,
) -> Result<MetaGradient<B>> {
    let device = weights.first().map(|w| w.device()).unwrap_or_default();
    let w_x: Vec<Tensor<X<B>, 2>> = weights.iter().map(|w| Tensor::from_inner(w.clone()).require_grad()).collect();
    let mut theta_x: BaseLm<X<B>> = BaseLm::from_inner(theta0.clone());
    for (doc, w) in problem.docs.iter().zip(&w_x) {
        let model_o: BaseLm<O<B>> = lift(theta_x.clone());
        let (loss, _) = inner_loss(&model_o, doc, Tensor::from_inner(w.clone()), problem.reduction);
        let g = GradientsParams::from_grads(loss.backward(), &model_o);
        theta_x = theta_x.map(&mut SgdStep { grads: &g, lr: problem.inner_lr });
    }
    let pre_logits = theta0.forward(problem.locality.ids::<B>(&device));
    let parts = outer_loss(&theta_x, Tensor::from_inner(pre_logits), problem, control_floor(theta0, problem, &device));
    let outer = outer_values(&parts)?;
    let grads = parts.0.backward();
    let dj_dw = w_x
        .iter()
        .zip(&problem.docs)
        .map(|(w, doc)| w.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; doc.len]))
        .collect();
    Ok(MetaGradient { dj_dw, outer, theta_k: theta_x.valid() })
}

/// dJ/dφ = Σ_k (∂w_k/∂φ)ᵀ · dJ/dw_k: one backward per document through the weighting model of
/// ⟨dJ/dw_k, w_k(φ)⟩ (dJ/dw held constant), summed, so that one document's graph is alive at a time.
pub fn weighting_gradient<A: burn::tensor::backend::AutodiffBackend>(
    model: &camels_model::weighting::WeightingModel<A>,
    docs: &[Rows],
    dj_dw: &[Vec<f32>],
    device: &A::Device,
) -> Result<GradientsParams> {
    if docs.is_empty() || docs.len() != dj_dw.len() {
        return Err(MetaError::Shape(format!("{} weight-gradient rows for {} documents", dj_dw.len(), docs.len())));
    }
    let mut sum = burn::optim::GradientsAccumulator::new();
    for (doc, a) in docs.iter().zip(dj_dw) {
        if a.len() != doc.batch * doc.len {
            return Err(MetaError::Shape(format!(
                "{} weight gradients for a [{}, {}] document",
                a.len(),
                doc.batch,
                doc.len
            )));
        }
        let w = model.forward(doc.ids(device), doc.mask(device)); // [1, T]
        let a = Tensor::<A, 2>::from_data(TensorData::new(a.clone(), [doc.batch, doc.len]), device);
        sum.accumulate(model, GradientsParams::from_grads((w * a).sum().backward(), model));
    }
    Ok(sum.grads())
}
