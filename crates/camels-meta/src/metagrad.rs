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
//! With the [`InnerStep::Normalized`] step θ_k = θ_{k−1} − α√P ĝ_k (ĝ = ∇L/‖∇L‖, P parameters), the
//! step's length is α√P whatever the weights, and
//! dJ/dw_k[t+1] = −α√P/‖∇L_k‖ · m[t+1]/N · (⟨∇ℓ_t, λ⟩ − ⟨ĝ_k, λ⟩⟨∇ℓ_t, ĝ_k⟩): first order only
//! (and the full unroll), with ⟨∇ℓ_t, ĝ_k⟩ by central differences along ĝ_k as ⟨∇ℓ_t, λ⟩ along λ̂.
//!
//! With the [`InnerStep::Adam`] inner loop (Adam from fresh moments over the K documents, as
//! adaptation steps), first order: with A_j = λ/(c1_j(s_j+ε)), B_j = λ m_j/(c1_j c2_j s_j(s_j+ε)²)
//! (s_j = √(v_j/c2_j), c_i the bias corrections), PA_k = A_k + β₁PA_{k+1}, PB_k = B_k + β₂PB_{k+1},
//! μ_k = (1−β₁)PA_k − (1−β₂) ∇L_k ⊙ PB_k = Σ_{j≥k} (∂u_j/∂∇L_k) λ, and dJ/dw_k = the SGD formula with
//! μ_k in place of λ, ⟨∇ℓ_t, μ_k⟩ by one double backward (not by differences along μ̂_k: Adam's
//! 1/√v̂ makes μ_k huge where ∇L is rounding noise, and the differences drown in it).
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
//! once λ is computed and recomputed after the sweep: 5 copies, for K more steps. The normalised
//! step also keeps ∇L_k beside each stored θ_k (recomputed, one backward, beside the others).

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use camels_model::base::BaseLm;
use camels_model::loss::{Reduction, kl_divergence, masked_mean, token_cross_entropy, weighted_loss};
use camels_model::reference::values;

use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};
use crate::params::{ScaledStep, SgdStep, combine, dot, lift, lift_constant, scalar, shifted, zip_map};

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
    /// Inner step α.
    pub inner_lr: f64,
    /// The inner update rule.
    pub inner_step: InnerStep,
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

/// The inner update rule of the meta-training loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InnerStep {
    /// θ − α ∇L(θ; w), the paper's. Its length grows as the weights concentrate on a few tokens
    /// (their gradients stop cancelling), which the meta-gradient rewards though Adam, which
    /// adaptation uses, normalises it away (measured on SmolLM2: BENCHMARKS.md, "a 10× outer
    /// learning rate").
    #[default]
    Sgd,
    /// θ − α√P ∇L/‖∇L‖ over the P parameters: a step of root-mean-square α per parameter whatever
    /// the weights, as Adam's first step α·sign(∇L) is, so that the weights choose its direction
    /// only. First-order meta-gradient (or the full unroll) only.
    Normalized,
    /// Adam with adaptation's defaults ([`ADAM_BETAS`], [`ADAM_EPSILON`]), its moments fresh at
    /// the first of the K documents: the inner loop takes the steps adaptation takes. First-order
    /// meta-gradient only (exact in how each step depends on every earlier gradient through the
    /// moments; only ∂∇L/∂θ is dropped).
    Adam,
}

/// Adam's β₁, β₂ in the [`InnerStep::Adam`] inner loop (adaptation's defaults).
pub const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
/// Adam's ε in the [`InnerStep::Adam`] inner loop.
pub const ADAM_EPSILON: f64 = 1e-8;

/// The inner loop's optimizer state over one run of steps: Adam's moments (none before the first).
#[derive(Default)]
struct InnerState {
    moments: Option<(GradientsParams, GradientsParams)>,
    steps: i32,
}

impl InnerState {
    /// One inner step from θ on `doc`: θ' and the inner gradient it took.
    fn step<B: Backend>(
        &mut self,
        theta: BaseLm<B>,
        doc: &Rows,
        w: Tensor<B, 2>,
        problem: &MetaProblem,
    ) -> (BaseLm<B>, InnerGradient) {
        let g = inner_gradient(&theta, doc, w, problem);
        let next = match problem.inner_step {
            InnerStep::Adam => {
                let (m, v) = adam_moments(&theta, self.moments.take(), &g.grads);
                self.steps += 1;
                let u = adam_direction(&theta, &m, &v, self.steps);
                self.moments = Some((m, v));
                theta.map(&mut SgdStep { grads: &u, lr: problem.inner_lr })
            }
            _ => {
                let lr = g.scale(problem, theta.num_params());
                theta.map(&mut SgdStep { grads: &g.grads, lr })
            }
        };
        (next, g)
    }
}

/// Adam's moments (m, v) after one more gradient `g` (`previous` None: the first step).
fn adam_moments<B: Backend>(
    theta: &BaseLm<B>,
    previous: Option<(GradientsParams, GradientsParams)>,
    g: &GradientsParams,
) -> (GradientsParams, GradientsParams) {
    let (b1, b2) = ADAM_BETAS;
    match previous {
        None => (
            combine(theta, 1.0 - b1, g, 0.0, g),
            zip_map(theta, &[g], |t| t[0].clone().powi_scalar(2).mul_scalar(1.0 - b2)),
        ),
        Some((m, v)) => (
            combine(theta, b1, &m, 1.0 - b1, g),
            zip_map(theta, &[&v, g], |t| {
                t[0].clone().mul_scalar(b2) + t[1].clone().powi_scalar(2).mul_scalar(1.0 - b2)
            }),
        ),
    }
}

/// Adam's step direction u = m̂/(√v̂ + ε) at its `step`-th step (θ' = θ − α u).
fn adam_direction<B: Backend>(
    theta: &BaseLm<B>,
    m: &GradientsParams,
    v: &GradientsParams,
    step: i32,
) -> GradientsParams {
    let (c1, c2) = (1.0 - ADAM_BETAS.0.powi(step), 1.0 - ADAM_BETAS.1.powi(step));
    zip_map(theta, &[m, v], |t| {
        t[0].clone().div_scalar(c1).div(t[1].clone().div_scalar(c2).sqrt().add_scalar(ADAM_EPSILON))
    })
}

/// A_j and B_j of the Adam adjoint (module docs) at the `step`-th step, from λ and the moments.
fn adam_adjoint_terms<B: Backend>(
    theta: &BaseLm<B>,
    lambda: &GradientsParams,
    m: &GradientsParams,
    v: &GradientsParams,
    step: i32,
) -> (GradientsParams, GradientsParams) {
    let (c1, c2) = (1.0 - ADAM_BETAS.0.powi(step), 1.0 - ADAM_BETAS.1.powi(step));
    let a = zip_map(theta, &[lambda, v], |t| {
        t[0].clone().div(t[1].clone().div_scalar(c2).sqrt().add_scalar(ADAM_EPSILON).mul_scalar(c1))
    });
    let b = zip_map(theta, &[lambda, m, v], |t| {
        // m/s first: bounded, and 0 where no gradient ever came (m = s = 0).
        let s = t[2].clone().div_scalar(c2).sqrt();
        let ratio = t[1].clone().div(s.clone().clamp_min(1e-30)).div_scalar(c1 * c2);
        t[0].clone() * ratio.div(s.add_scalar(ADAM_EPSILON).powi_scalar(2))
    });
    (a, b)
}

/// The inner gradient ∇L(θ; w) of one document and its norm.
struct InnerGradient {
    grads: GradientsParams,
    norm: f64,
}

impl InnerGradient {
    /// s of the step θ − s ∇L.
    fn scale(&self, problem: &MetaProblem, n_params: usize) -> f64 {
        match problem.inner_step {
            InnerStep::Sgd => problem.inner_lr,
            InnerStep::Normalized if self.norm > 0.0 => problem.inner_lr * (n_params as f64).sqrt() / self.norm,
            InnerStep::Normalized => 0.0,
            InnerStep::Adam => unreachable!("Adam's step is not a multiple of ∇L"),
        }
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
    if mode == MetaGradMode::FullUnroll && problem.inner_step != InnerStep::Adam {
        return full_unroll(theta0, weights, problem);
    }
    let normalized = problem.inner_step == InnerStep::Normalized;
    let adam = problem.inner_step == InnerStep::Adam;
    if (normalized || adam) && !matches!(mode, MetaGradMode::FirstOrder { .. }) {
        return Err(MetaError::InvalidOption {
            option: "meta-gradient mode".into(),
            value: format!("{mode:?}"),
            expected: format!("first order with the {:?} inner step", problem.inner_step),
        });
    }
    let alpha = problem.inner_lr;
    let device = weights.first().map(|w| w.device()).unwrap_or_default();
    let store_every = store_every.max(1);
    let n_params = theta0.num_params();

    // Forward: θ₀ … θ_K, one first-order backward per document; θ_k kept where k is a multiple of
    // `store_every` (θ₀ is the caller's and costs no copy), and for the normalised step ∇L_k too
    // (Adam: every ∇L_k, from which the adjoint rebuilds the moments).
    let mut stored: Vec<Option<BaseLm<B>>> = vec![None; problem.docs.len()];
    let mut stored_grads: Vec<Option<InnerGradient>> = (0..problem.docs.len()).map(|_| None).collect();
    let mut theta = theta0.clone();
    let mut state = InnerState::default();
    for (k, doc) in problem.docs.iter().enumerate() {
        let (next, g) = state.step(theta.clone(), doc, weights[k].clone(), problem);
        let keep = k.is_multiple_of(store_every);
        if adam || (keep && normalized) {
            stored_grads[k] = Some(g);
        }
        if keep {
            stored[k] = Some(theta);
        }
        theta = next;
    }
    drop(state);
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
    let mut adam_sums: Option<(GradientsParams, GradientsParams)> = None; // PA_{k+1}, PB_{k+1}
    for k in (0..problem.docs.len()).rev() {
        let doc = &problem.docs[k];
        let theta = &match stored[k].take() {
            Some(theta) => theta,
            None => {
                // Recompute θ_k from the nearest stored θ_j, j < k (dropped once k = j); Adam's
                // moments start at θ₀, so it replays from there.
                let j = if adam { 0 } else { k - k % store_every };
                unroll(stored[j].clone().expect("θ_j stored on the forward pass"), j..k, weights, problem)
            }
        };
        if adam {
            // μ_k from the moments m_k, v_k (rebuilt from ∇L_1 … ∇L_k) and the running sums.
            let mut moments = None;
            for g in stored_grads[..=k].iter().flatten() {
                moments = Some(adam_moments(theta, moments, &g.grads));
            }
            let (m, v) = moments.expect("k + 1 gradients");
            let (a, b) = adam_adjoint_terms(theta, &lambda, &m, &v, k as i32 + 1);
            let (b1, b2) = ADAM_BETAS;
            let (pa, pb) = match adam_sums.take() {
                None => (a, b),
                Some((pa, pb)) => (combine(theta, 1.0, &a, b1, &pa), combine(theta, 1.0, &b, b2, &pb)),
            };
            let g_k = &stored_grads[k].as_ref().expect("Adam keeps every ∇L_k").grads;
            let mu = zip_map(theta, &[&pa, &pb, g_k], |t| {
                t[0].clone().mul_scalar(1.0 - b1) - (t[2].clone() * t[1].clone()).mul_scalar(1.0 - b2)
            });
            adam_sums = Some((pa, pb));
            stored_grads[k] = None; // the moments of earlier steps do not need ∇L_k
            // ⟨∇ℓ_t, μ_k⟩ by one double backward: μ is huge where ∇L is rounding noise (Adam's
            // 1/√v̂; the key bias, rare embedding rows), so differences along μ̂ would drown.
            let (dsdw, _) = exact_step(theta, weights[k].clone(), doc, &mu, problem.reduction);
            dj_dw[k] = dsdw.iter().map(|x| (-alpha * f64::from(*x)) as f32).collect();
            continue;
        }
        let inner = normalized
            .then(|| stored_grads[k].take().unwrap_or_else(|| inner_gradient(theta, doc, weights[k].clone(), problem)));
        let (dsdw, h_lambda) = match mode {
            MetaGradMode::Exact => exact_step(theta, weights[k].clone(), doc, &lambda, problem.reduction),
            MetaGradMode::CentralDifference { h_rel } => {
                difference_step(theta, weights[k].clone(), doc, &lambda, problem.reduction, h_rel, true, None)
            }
            MetaGradMode::FirstOrder { h_rel } => {
                let normal = inner.as_ref().map(|g| (g, n_params));
                difference_step(theta, weights[k].clone(), doc, &lambda, problem.reduction, h_rel, false, normal)
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

/// θ_to from θ_from by the weighted inner steps of `problem.docs[steps]` (first-order gradients
/// only; no meta-gradient).
pub fn unroll<B: Backend>(
    theta: BaseLm<B>,
    steps: std::ops::Range<usize>,
    weights: &[Tensor<B, 2>],
    problem: &MetaProblem,
) -> BaseLm<B> {
    let mut state = InnerState::default(); // Adam's moments start fresh at `steps.start`
    steps.fold(theta, |theta, i| state.step(theta, &problem.docs[i], weights[i].clone(), problem).0)
}

/// ∇L(θ; w) on `doc` and its norm (computed only for the normalised step), by one backward.
fn inner_gradient<B: Backend>(theta: &BaseLm<B>, doc: &Rows, w: Tensor<B, 2>, problem: &MetaProblem) -> InnerGradient {
    let model: BaseLm<X<B>> = lift(theta.clone());
    let (loss, _) = inner_loss(&model, doc, Tensor::from_inner(w), problem.reduction);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let norm = match problem.inner_step {
        InnerStep::Sgd | InnerStep::Adam => 0.0,
        InnerStep::Normalized => dot::<B, B>(theta, &grads, &grads).map(scalar).unwrap_or(0.0).sqrt(),
    };
    InnerGradient { grads, norm }
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

/// The same quantities by central differences along λ̂ (`with_hvp`: also the Hessian term). With
/// `normal` (∇L at θ and P: the normalised step, first order), ∂⟨Δθ, λ⟩/∂w divided by −α:
/// √P/‖∇L‖ · m/N · (⟨∇ℓ_t, λ⟩ − ⟨ĝ, λ⟩⟨∇ℓ_t, ĝ⟩), the second product by differences along ĝ.
#[allow(clippy::too_many_arguments)]
fn difference_step<B: Backend>(
    theta: &BaseLm<B>,
    w: Tensor<B, 2>,
    doc: &Rows,
    lambda: &GradientsParams,
    reduction: Reduction,
    h_rel: f64,
    with_hvp: bool,
    normal: Option<(&InnerGradient, usize)>,
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
    let projection = normal.filter(|(g, _)| g.norm > 0.0).map(|(g, n_params)| {
        // ⟨∇ℓ_t, ĝ⟩ by the same differences along ĝ, ⟨ĝ, λ⟩, and √P/‖∇L‖.
        let unit_g = combine(theta, 1.0 / g.norm, &g.grads, 0.0, &g.grads);
        let along: Vec<Vec<f32>> = [1.0, -1.0]
            .iter()
            .map(|sign| {
                let ids = doc.ids::<B>(&device);
                values(token_cross_entropy(shifted(theta.clone(), &unit_g, sign * h).forward(ids.clone()), ids))
            })
            .collect();
        let cosine = dot::<B, B>(theta, &unit_g, lambda).map(scalar).unwrap_or(0.0);
        (along, cosine, (n_params as f64).sqrt() / g.norm)
    });
    if normal.is_some() && projection.is_none() {
        return (dsdw, None); // ∇L = 0: no step, nothing to weigh
    }
    for t in 0..doc.len - 1 {
        let mut u = norm * f64::from(token_losses[0][t] - token_losses[1][t]) / (2.0 * h);
        if let Some((along, cosine, factor)) = &projection {
            let v = f64::from(along[0][t] - along[1][t]) / (2.0 * h);
            u = factor * (u - cosine * v);
        }
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
    let n_params = theta0.num_params();
    for (doc, w) in problem.docs.iter().zip(&w_x) {
        let model_o: BaseLm<O<B>> = lift(theta_x.clone());
        let (loss, _) = inner_loss(&model_o, doc, Tensor::from_inner(w.clone()), problem.reduction);
        let g = GradientsParams::from_grads(loss.backward(), &model_o);
        theta_x = match problem.inner_step {
            InnerStep::Sgd => theta_x.map(&mut SgdStep { grads: &g, lr: problem.inner_lr }),
            InnerStep::Adam => unreachable!("the full unroll of Adam is refused above"),
            InnerStep::Normalized => {
                // s = α√P/‖∇L‖, itself differentiated.
                let norm = dot::<X<B>, X<B>>(&theta_x, &g, &g).expect("the base LM has parameters").sqrt();
                let scale = norm.recip().mul_scalar(problem.inner_lr * (n_params as f64).sqrt());
                theta_x.map(&mut ScaledStep { grads: &g, scale })
            }
        };
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
