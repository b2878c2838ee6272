//! Mixed precision: bf16/f16 matrix products agree with f32 to their rounding, differentiate (twice),
//! and the setting survives every way a model is moved between autodiff levels or reloaded.

mod common;

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use camels_model::base::{BaseLm, MatmulPrecision};
use camels_model::hf::{load_base, module_tensors};
use camels_model::loss::token_cross_entropy;
use common::*;

fn tiny<B: Backend>() -> BaseLm<B> {
    load_base::<B>(&fixtures().join("tiny-gpt2"), &Default::default()).unwrap().0
}

/// The fixture's `[2, 12]` input ids.
fn ids<B: Backend>() -> Tensor<B, 2, Int> {
    Reference::open(fixtures().join("tiny-gpt2/reference.safetensors")).ids::<B>("input_ids", &Default::default())
}

/// max |a − b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    max_abs_diff(a, b) / b.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[test]
fn half_precision_logits_agree_with_f32_to_their_rounding() {
    let f32_logits = values(tiny::<Cpu>().forward(ids()));
    for (precision, bound) in [(MatmulPrecision::Bf16, 3e-2), (MatmulPrecision::F16, 4e-3)] {
        let logits = values(tiny::<Cpu>().with_precision(precision).forward(ids()));
        let err = relative(&logits, &f32_logits);
        eprintln!("{precision}: logits within {err:.2e} of f32's (relative to the largest)");
        assert!(err > 0.0 && err < bound, "{precision}: {err:.2e}");
    }
}

#[test]
fn half_precision_gradients_point_where_f32_gradients_do() {
    let grads_of = |precision| {
        let model = tiny::<Ad>().with_precision(precision);
        let ids = ids::<Ad>();
        let loss = token_cross_entropy(model.forward(ids.clone()), ids).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut flat = Vec::new();
        struct Collect<'a>(&'a GradientsParams, &'a mut Vec<f32>);
        impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
                let g = self.0.get::<B::InnerBackend, D>(p.id).expect("every parameter has a gradient");
                self.1.extend(values(g));
            }
        }
        model.visit(&mut Collect(&grads, &mut flat));
        flat
    };
    let exact = grads_of(MatmulPrecision::F32);
    let half = grads_of(MatmulPrecision::Bf16);
    let dot: f64 = exact.iter().zip(&half).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let cosine = dot / (norm(&exact) * norm(&half));
    eprintln!("bf16 vs f32 gradient: cosine {cosine:.6}");
    assert!(cosine > 0.999 && cosine < 1.0, "cosine {cosine}");
}

#[test]
fn the_setting_survives_lifting_mapping_and_reloading() {
    let expected = values(tiny::<Cpu>().with_precision(MatmulPrecision::Bf16).forward(ids()));
    let check = |model: &BaseLm<Cpu>, how: &str| {
        assert_eq!(model.precision(), MatmulPrecision::Bf16, "{how}");
        assert_eq!(values(model.forward(ids())), expected, "{how}");
    };
    let base = tiny::<Cpu>().with_precision(MatmulPrecision::Bf16);
    check(&base.clone(), "clone");
    let lifted: BaseLm<Ad> = BaseLm::from_inner(base.clone());
    assert_eq!(lifted.precision(), MatmulPrecision::Bf16, "from_inner");
    let twice: BaseLm<Ad2> = BaseLm::from_inner(lifted.clone());
    assert_eq!(twice.precision(), MatmulPrecision::Bf16, "two levels up");
    check(&lifted.valid(), "valid");
    check(&base.clone().no_grad(), "map (no_grad)");
    let reloaded = base.clone().load_record(tiny::<Cpu>().into_record());
    check(&reloaded, "load_record");
    // The setting is not a weight: saving writes the same tensors either way.
    assert_eq!(module_tensors(&base), module_tensors(&tiny::<Cpu>()));
}
