//! Parity checks against the committed HF/PyTorch fixtures, on any backend: what the CPU tests assert,
//! packaged so that `camels-cli check --device cuda|wgpu` runs the same comparisons on a GPU.
//!
//! Every check is timed, so a run also shows where a backend's start-up cost goes (device init, the
//! first kernel, compilation of each new kernel on first use).

use std::path::Path;
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use camels_model::generate::{GenerateConfig, generate};
use camels_model::hf::{load_base, load_module, module_tensors, read_base_config};
use camels_model::loss::{Reduction, token_cross_entropy, weighted_loss};
use camels_model::reference::{TensorFile, max_abs_diff, rel_err, values};
use camels_model::weighting::{WeightingModel, WeightingModelConfig};
use serde::Serialize;

use crate::error::{MetaError, Result};
use crate::metagrad::{MetaGradMode, MetaProblem, Rows, meta_gradient, weighting_gradient};

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was compared, e.g. `logits` or `dJ/dw exact K=3`.
    pub name: String,
    /// Wall time of the check, including any kernel compilation it triggered.
    pub seconds: f64,
    /// The measured error (what it measures is in `name` and `measure`).
    pub error: f64,
    /// The bound the CPU tests assert.
    pub tolerance: f64,
    /// How the error is measured.
    pub measure: &'static str,
    /// `error <= tolerance`.
    pub pass: bool,
}

impl Check {
    fn new(name: impl Into<String>, start: Instant, error: f64, tolerance: f64, measure: &'static str) -> Self {
        let check = Self {
            name: name.into(),
            seconds: start.elapsed().as_secs_f64(),
            error,
            tolerance,
            measure,
            pass: error <= tolerance,
        };
        tracing::info!(
            check = %check.name, seconds = check.seconds, error = check.error, pass = check.pass, "parity check"
        );
        check
    }
}

/// Runs every check with the fixtures under `fixtures` (the repository's `fixtures/`) on `device`.
/// Checks run in order of cost; the first error that is not a mismatch (a missing file) stops them.
pub fn run_all<B: Backend>(fixtures: &Path, device: &B::Device) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let start = Instant::now();
    let x = Tensor::<B, 1>::ones([4], device); // [4]
    B::sync(device).map_err(|e| MetaError::Shape(format!("device sync: {e:?}")))?;
    checks.push(Check::new("device init", start, 0.0, 0.0, "none"));
    let start = Instant::now();
    let sum = (x.clone() + x).sum().into_scalar().elem::<f64>();
    checks.push(Check::new("first kernel (ones + ones, sum)", start, (sum - 8.0).abs(), 0.0, "abs"));

    for family in FAMILIES {
        let fx = Fixture { label: family.0, model: fixtures.join(family.1), meta: fixtures.join(family.2) };
        checks.extend(forward::<B>(&fx, device)?);
        checks.push(gradients::<burn::backend::Autodiff<B>>(&fx, device)?);
        checks.extend(generation::<B>(&fx, device)?);
        checks.extend(meta::<B>(&fx, device)?);
    }
    Ok(checks)
}

/// Every family's fixtures: (label, tiny model directory, meta-gradient directory) under `fixtures/`.
const FAMILIES: [(&str, &str, &str); 2] = [("gpt2", "tiny-gpt2", "meta"), ("llama", "tiny-llama", "meta-llama")];

/// One family's fixtures.
struct Fixture {
    label: &'static str,
    /// The tiny model (HF layout) with `reference.safetensors` and `generation.json`.
    model: std::path::PathBuf,
    /// `meta_K{1,3}.{json,safetensors}` and the weighting model.
    meta: std::path::PathBuf,
}

impl Fixture {
    fn name(&self, check: &str) -> String {
        format!("{} {check}", self.label)
    }
}

/// Logits (max abs error over real positions ≤ 1e-4) and the mean loss (≤ 1e-5).
fn forward<B: Backend>(fx: &Fixture, device: &B::Device) -> Result<Vec<Check>> {
    let start = Instant::now();
    let (model, _) = load_base::<B>(&fx.model, device)?;
    let r = TensorFile::open(&fx.model.join("reference.safetensors"))?;
    let ids = r.ids::<B>("input_ids", device)?; // [B, T]
    let mask_values = r.f32("attention_mask")?;
    let logits = model.forward(ids.clone()); // [B, T, V]
    let vocab = logits.dims()[2];
    // Padded positions differ from HF's by design (HF masks padded keys) and are never used.
    let real = |v: &[f32]| -> Vec<f32> {
        v.chunks(vocab).zip(&mask_values).filter(|(_, m)| **m > 0.0).flat_map(|(c, _)| c.to_vec()).collect()
    };
    let err = max_abs_diff(&real(&values(logits.clone())), &real(&r.f32("logits")?));
    let logits_check = Check::new(fx.name("logits"), start, f64::from(err), 1e-4, "max abs over real positions");
    let start = Instant::now();
    let mask = r.float::<B, 2>("attention_mask", device)?; // [B, T]
    let loss = weighted_loss(token_cross_entropy(logits, ids), mask.clone(), mask, Reduction::MeanReal);
    let err = (values(loss)[0] - r.f32("loss")?[0]).abs();
    Ok(vec![logits_check, Check::new(fx.name("loss"), start, f64::from(err), 1e-5, "abs")])
}

/// The gradient of the loss w.r.t. every parameter tensor (worst relative error ≤ 1e-3).
fn gradients<A: AutodiffBackend>(fx: &Fixture, device: &A::Device) -> Result<Check> {
    let start = Instant::now();
    let (model, _) = load_base::<A>(&fx.model, device)?;
    let r = TensorFile::open(&fx.model.join("reference.safetensors"))?;
    let ids = r.ids::<A>("input_ids", device)?; // [B, T]
    let mask = r.float::<A, 2>("attention_mask", device)?; // [B, T]
    let loss =
        weighted_loss(token_cross_entropy(model.forward(ids.clone()), ids), mask.clone(), mask, Reduction::MeanReal);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let grad_model = model.valid().map(&mut GradsAsParams::<A> { grads: &grads, _backend: Default::default() });
    let mut worst = 0.0f32;
    for (path, (_, g)) in &module_tensors(&grad_model) {
        worst = worst.max(rel_err(g, &r.f32(&format!("grad.{path}"))?));
    }
    Ok(Check::new(fx.name("gradients (every parameter)"), start, f64::from(worst), 1e-3, "max relative (max norm)"))
}

/// Replaces each parameter by its gradient, so that gradients carry the parameter paths.
struct GradsAsParams<'a, A: AutodiffBackend> {
    grads: &'a GradientsParams,
    _backend: std::marker::PhantomData<A>,
}

impl<A: AutodiffBackend> ModuleMapper<A::InnerBackend> for GradsAsParams<'_, A> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<A::InnerBackend, D>>) -> Param<Tensor<A::InnerBackend, D>> {
        let (id, t, mapper) = p.consume();
        let g = self.grads.get::<A::InnerBackend, D>(id).unwrap_or_else(|| t.zeros_like());
        Param::from_mapped_value(id, g, mapper)
    }
}

/// Greedy and 4-beam generation, batched: identical tokens (error = number of differing rows).
fn generation<B: Backend>(fx: &Fixture, device: &B::Device) -> Result<Vec<Check>> {
    let path = fx.model.join("generation.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| camels_model::ModelError::Io { path: path.clone(), source: e })?;
    let fixture: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| camels_model::ModelError::Json { path: path.clone(), source: e })?;
    let rows = |key: &str| -> Result<Vec<Vec<u32>>> {
        let field = || MetaError::Shape(format!("{}: field `{key}` is not a matrix of token ids", path.display()));
        fixture[key]
            .as_array()
            .ok_or_else(field)?
            .iter()
            .map(|r| {
                r.as_array().ok_or_else(field)?.iter().map(|x| x.as_u64().map(|x| x as u32).ok_or_else(field)).collect()
            })
            .collect()
    };
    let (model, config) = load_base::<B>(&fx.model, device)?;
    let eos = config.eos_token_id();
    let prompts: Vec<Vec<u32>> = rows("input_ids")?
        .iter()
        .zip(&rows("attention_mask")?)
        .map(|(ids, mask)| ids.iter().zip(mask).filter(|(_, m)| **m == 1).map(|(t, _)| *t).collect())
        .collect();
    // HF pads finished rows with EOS: cut each row after its first EOS.
    let until_eos = |rows: Vec<Vec<u32>>| -> Vec<Vec<u32>> {
        rows.into_iter().map(|r| r.iter().position(|&t| t == eos).map_or(r.clone(), |i| r[..=i].to_vec())).collect()
    };
    let mut checks = Vec::new();
    for (name, key, config) in [
        ("greedy generation", "greedy", GenerateConfig::greedy(10, eos)),
        ("beam search (4 beams)", "beam4", GenerateConfig::beam(4, 10, eos)),
    ] {
        let start = Instant::now();
        let ours = generate(&model, &prompts, &config, device)?;
        let expected = until_eos(rows(key)?);
        let differing =
            ours.iter().zip(&expected).filter(|(a, b)| a != b).count() + expected.len().abs_diff(ours.len());
        checks.push(Check::new(fx.name(name), start, differing as f64, 0.0, "rows differing from HF"));
    }
    Ok(checks)
}

/// dJ/dw (exact ≤ 1e-4, central differences ≤ 1e-2) for K = 1 and 3, and dJ/dφ (≤ 1e-3) for K = 3,
/// against PyTorch's double backward through the full unroll.
fn meta<B: Backend>(fx: &Fixture, device: &B::Device) -> Result<Vec<Check>> {
    let (theta0, _) = load_base::<B>(&fx.model, device)?;
    let mut checks = Vec::new();
    for k in [1, 3] {
        let (problem, weights, r) = meta_case::<B>(&fx.meta, k, device)?;
        let expected = r.f32("dJ_dw")?;
        for (label, mode, tolerance) in
            [("exact", MetaGradMode::Exact, 1e-4), ("central differences", MetaGradMode::central_difference(), 1e-2)]
        {
            let start = Instant::now();
            let grad = meta_gradient(&theta0, &weights, &problem, mode)?;
            let flat: Vec<f32> = grad.dj_dw.iter().flatten().copied().collect();
            // The fixture holds dJ/dw for its documents; K = 1 uses the first one's.
            let err =
                if flat.len() <= expected.len() { rel_err(&flat, &expected[..flat.len()]) } else { f32::INFINITY };
            checks.push(Check::new(
                fx.name(&format!("dJ/dw {label} K={k}")),
                start,
                f64::from(err),
                tolerance,
                "max relative",
            ));
        }
        if k == 3 {
            checks.push(weighting::<burn::backend::Autodiff<B>>(fx, &theta0, &problem, &weights, &r, device)?);
        }
    }
    Ok(checks)
}

fn weighting<A: AutodiffBackend>(
    fx: &Fixture,
    theta0: &camels_model::base::BaseLm<A::InnerBackend>,
    problem: &MetaProblem,
    weights: &[Tensor<A::InnerBackend, 2>],
    r: &TensorFile,
    device: &A::Device,
) -> Result<Check> {
    let start = Instant::now();
    let config_path = fx.meta.join("weighting_config.json");
    let trunk = read_base_config(&config_path)?;
    let model: WeightingModel<A> = load_module(
        WeightingModelConfig::new().with_trunk(trunk).init::<A>(device),
        &fx.meta.join("weighting.safetensors"),
        |p| vec![p.to_string()],
    )?;
    let grad = meta_gradient(theta0, weights, problem, MetaGradMode::Exact)?;
    let grads = weighting_gradient(&model, &problem.docs, &grad.dj_dw, device)?;
    let grad_model = model.valid().map(&mut GradsAsParams::<A> { grads: &grads, _backend: Default::default() });
    let mut worst = 0.0f32;
    for (path, (_, g)) in &module_tensors(&grad_model) {
        worst = worst.max(rel_err(g, &r.f32(&format!("dJ_dphi.{path}"))?));
    }
    Ok(Check::new(
        fx.name("dJ/dφ exact K=3 (weighting model)"),
        start,
        f64::from(worst),
        1e-3,
        "max relative (max norm)",
    ))
}

/// The meta-gradient fixture with K documents: the problem, the weights (from the weighting
/// fixture) and the reference tensors.
fn meta_case<B: Backend>(
    meta_dir: &Path,
    k: usize,
    device: &B::Device,
) -> Result<(MetaProblem, Vec<Tensor<B, 2>>, TensorFile)> {
    let r = TensorFile::open(&meta_dir.join(format!("meta_K{k}.safetensors")))?;
    let json_path = meta_dir.join(format!("meta_K{k}.json"));
    let text = std::fs::read_to_string(&json_path)
        .map_err(|e| camels_model::ModelError::Io { path: json_path.clone(), source: e })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| camels_model::ModelError::Json { path: json_path.clone(), source: e })?;
    let number = |key: &str| {
        json[key].as_f64().ok_or_else(|| MetaError::Shape(format!("{}: missing number `{key}`", json_path.display())))
    };
    let batch = |ids: &str, mask: &str| -> Result<Rows> {
        let shape = r.shape(ids)?;
        Rows::new(r.i64(ids)?, r.f32(mask)?, shape[0], shape[1])
    };
    let all_docs = batch("doc_ids", "doc_mask")?;
    let t = all_docs.len;
    let docs = (0..k)
        .map(|b| {
            let range = b * t..(b + 1) * t;
            Rows::new(all_docs.ids[range.clone()].to_vec(), all_docs.mask[range].to_vec(), 1, t)
        })
        .collect::<Result<Vec<_>>>()?;
    let w = r.f32("w")?;
    let weights =
        (0..k).map(|i| Tensor::from_data(TensorData::new(w[i * t..(i + 1) * t].to_vec(), [1, t]), device)).collect();
    let problem = MetaProblem {
        docs,
        qa: batch("qa_ids", "qa_mask")?,
        qa_targets: r.f32("qa_labels_mask")?,
        locality: batch("loc_ids", "loc_mask")?,
        control: None,
        inner_lr: number("alpha")?,
        inner_step: crate::metagrad::InnerStep::Sgd,
        c_kl: number("c_kl")?,
        reduction: Reduction::MeanPadded,
    };
    Ok((problem, weights, r))
}

/// The checks that failed.
pub fn failures(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| !c.pass).collect()
}
