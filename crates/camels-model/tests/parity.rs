//! Parity of every family with HF transformers on its tiny random fixture (GPT-2: `tiny-gpt2`;
//! Llama with GQA and a tied head: `tiny-llama`): logits, loss, every parameter's gradient, greedy
//! and beam-search generation, batched left-padded and single. Regenerate with
//! `python fixtures/gen/tiny_gpt2.py` and `python fixtures/gen/tiny_llama.py`.

mod common;

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use camels_model::generate::{GenerateConfig, generate};
use camels_model::hf::{load_base, module_tensors};
use camels_model::loss::{Reduction, token_cross_entropy, weighted_loss};
use common::*;

fn reference(dir: &str) -> Reference {
    Reference::open(fixtures().join(dir).join("reference.safetensors"))
}

#[test]
fn logits_and_losses_match_transformers() {
    check_logits("tiny-gpt2");
}

#[test]
fn llama_logits_and_losses_match_transformers() {
    check_logits("tiny-llama");
}

/// An untied head and biases on q, k, v and the output projection (HF Llama's `attention_bias`).
#[test]
fn llama_with_biases_and_an_untied_head_matches_transformers() {
    check_logits("tiny-llama-bias");
    check_gradients("tiny-llama-bias");
}

fn check_logits(dir: &str) {
    let device = Default::default();
    let (model, _) = load_base::<Cpu>(&fixtures().join(dir), &device).unwrap();
    let r = reference(dir);
    let ids = r.ids::<Cpu>("input_ids", &device);
    let logits = model.forward(ids.clone());
    // HF masks padded keys; outputs at padded positions differ by design and are never used, so
    // compare the real positions (row 1 is right-padded).
    let mask = r.f32("attention_mask");
    let [_, len, vocab] = logits.dims();
    let (ours, theirs) = (values(logits.clone()), r.f32("logits"));
    let real = |v: &[f32], width: usize| -> Vec<f32> {
        v.chunks(width).zip(&mask).filter(|(_, m)| **m > 0.0).flat_map(|(c, _)| c.to_vec()).collect()
    };
    let err = max_abs_diff(&real(&ours, vocab), &real(&theirs, vocab));
    assert!(err <= 1e-4, "logits max abs error {err}");

    let token_loss = token_cross_entropy(logits, ids);
    // Token t predicts t+1: compare the targets that are real tokens.
    let target_real = |v: &[f32]| -> Vec<f32> {
        let mut kept = Vec::new();
        for (b, row) in v.chunks(len - 1).enumerate() {
            kept.extend(row.iter().enumerate().filter(|(t, _)| mask[b * len + t + 1] > 0.0).map(|(_, x)| *x));
        }
        kept
    };
    let err = max_abs_diff(&target_real(&values(token_loss.clone())), &target_real(&r.f32("token_loss")));
    assert!(err <= 1e-5, "token loss max abs error {err}");

    let mask = r.float::<Cpu, 2>("attention_mask", &device);
    let loss = weighted_loss(token_loss, mask.clone(), mask, Reduction::MeanReal);
    let err = (values(loss)[0] - r.f32("loss")[0]).abs();
    assert!(err <= 1e-5, "loss error {err}");
}

#[test]
fn gradients_match_transformers() {
    check_gradients("tiny-gpt2");
}

#[test]
fn llama_gradients_match_transformers() {
    check_gradients("tiny-llama");
}

fn check_gradients(dir: &str) {
    let device = Default::default();
    let (model, _) = load_base::<Ad>(&fixtures().join(dir), &device).unwrap();
    let r = reference(dir);
    let ids = r.ids::<Ad>("input_ids", &device);
    let mask = r.float::<Ad, 2>("attention_mask", &device);
    let loss =
        weighted_loss(token_cross_entropy(model.forward(ids.clone()), ids), mask.clone(), mask, Reduction::MeanReal);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    // Gradients as a module on the inner backend, so that they carry the parameter paths.
    let grad_model = model.valid().map(&mut GradsAsParams { grads: &grads });
    let ours = module_tensors(&grad_model);
    let mut checked = 0;
    let mut worst = (0.0f32, String::new());
    for (path, (_, g)) in &ours {
        let name = format!("grad.{path}");
        let expected = r.f32(&name);
        let err = rel_err(g, &expected);
        if err > worst.0 {
            worst = (err, name.clone());
        }
        checked += 1;
    }
    assert_eq!(checked, r.names().iter().filter(|n| n.starts_with("grad.")).count());
    assert!(worst.0 <= 1e-3, "worst gradient relative error {} at {}", worst.0, worst.1);
}

/// Replaces each parameter by its gradient.
struct GradsAsParams<'a> {
    grads: &'a GradientsParams,
}

impl burn::module::ModuleMapper<Cpu> for GradsAsParams<'_> {
    fn map_float<const D: usize>(
        &mut self,
        p: burn::module::Param<Tensor<Cpu, D>>,
    ) -> burn::module::Param<Tensor<Cpu, D>> {
        let (id, t, mapper) = p.consume();
        let g = self.grads.get::<Cpu, D>(id).unwrap_or_else(|| t.zeros_like());
        burn::module::Param::from_mapped_value(id, g, mapper)
    }
}

fn generation_fixture(dir: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(dir).join("generation.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect()
}

/// HF pads finished rows with `pad` (= EOS here); cut each row after its first EOS.
fn until_eos(rows: Vec<Vec<u32>>, eos: u32) -> Vec<Vec<u32>> {
    rows.into_iter()
        .map(|r| match r.iter().position(|&t| t == eos) {
            Some(i) => r[..=i].to_vec(),
            None => r,
        })
        .collect()
}

fn prompts(fixture: &serde_json::Value) -> Vec<Vec<u32>> {
    let ids = rows(&fixture["input_ids"]);
    let mask = rows(&fixture["attention_mask"]);
    ids.iter().zip(&mask).map(|(i, m)| i.iter().zip(m).filter(|(_, m)| **m == 1).map(|(t, _)| *t).collect()).collect()
}

#[test]
fn greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-gpt2");
}

#[test]
fn llama_greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-llama");
}

fn check_generation(dir: &str) {
    let device = Default::default();
    let (model, config) = load_base::<Cpu>(&fixtures().join(dir), &device).unwrap();
    let fixture = generation_fixture(dir);
    let eos = config.eos_token_id();
    let prompts = prompts(&fixture);
    let max_new = 10;

    let greedy = generate(&model, &prompts, &GenerateConfig::greedy(max_new, eos), &device).unwrap();
    assert_eq!(greedy, until_eos(rows(&fixture["greedy"]), eos), "batched greedy");
    let beam = generate(&model, &prompts, &GenerateConfig::beam(4, max_new, eos), &device).unwrap();
    assert_eq!(beam, until_eos(rows(&fixture["beam4"]), eos), "batched beam search");

    for (i, prompt) in prompts.iter().enumerate() {
        let one = std::slice::from_ref(prompt);
        let greedy = generate(&model, one, &GenerateConfig::greedy(max_new, eos), &device).unwrap();
        assert_eq!(greedy[0], until_eos(rows(&fixture["greedy_single"]), eos)[i], "greedy, prompt {i} alone");
        let beam = generate(&model, one, &GenerateConfig::beam(4, max_new, eos), &device).unwrap();
        assert_eq!(beam[0], until_eos(rows(&fixture["beam4_single"]), eos)[i], "beam, prompt {i} alone");
    }
}

#[test]
fn error_measures_never_pass_nan_or_a_length_mismatch() {
    use camels_model::reference;
    assert_eq!(reference::max_abs_diff(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
    assert!(reference::max_abs_diff(&[f32::NAN, 2.0], &[1.0, 2.0]).is_infinite());
    assert!(reference::max_abs_diff(&[1.0], &[1.0, 2.0]).is_infinite());
    assert!(reference::rel_err(&[f32::NAN; 3], &[1.0; 3]) > 1e-3);
}
