//! The weighting model: ln(2)/3 on every real token at initialisation, 0 on padding, and gradients
//! that reach the head at once and the trunk as soon as the zero-initialised output layer moves.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use camels_model::gpt2::Gpt2Config;
use camels_model::weighting::{WeightActivation, WeightingModel, WeightingModelConfig};
use common::*;

fn config() -> WeightingModelConfig {
    WeightingModelConfig::new().with_trunk(Gpt2Config::tiny().into())
}

fn batch<B: Backend>(device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let ids = Tensor::from_data([[11, 22, 33, 44, 55, 66], [7, 8, 9, 0, 0, 0]], device);
    let mask = Tensor::from_data([[1.0f32; 6], [1., 1., 1., 0., 0., 0.]], device);
    (ids, mask)
}

#[test]
fn initial_weights_are_ln2_over_3_on_real_tokens_and_zero_on_padding() {
    let device = Default::default();
    let model = config().init::<Cpu>(&device);
    let (ids, mask) = batch::<Cpu>(&device);
    let w = values(model.forward(ids, mask.clone()));
    let expected = std::f32::consts::LN_2 / 3.0;
    for (w, m) in w.iter().zip(values(mask)) {
        let target = if m > 0.0 { expected } else { 0.0 };
        assert!((w - target).abs() < 1e-7, "weight {w}, expected {target}");
    }
}

/// Sum of squared gradients of the parameters whose path starts with `prefix`.
fn grad_norm(model: &WeightingModel<Ad>, grads: &GradientsParams, prefix: &str) -> f32 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        prefix: &'a str,
        stack: Vec<String>,
        total: f32,
    }
    impl ModuleVisitor<Ad> for Norm<'_> {
        fn enter_module(&mut self, name: &str, kind: &str) {
            if !camels_model::hf::is_variant(kind) {
                self.stack.push(name.into());
            }
        }
        fn exit_module(&mut self, _: &str, kind: &str) {
            if !camels_model::hf::is_variant(kind) {
                self.stack.pop();
            }
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Ad, D>>) {
            if self.stack.join(".").starts_with(self.prefix)
                && let Some(g) = self.grads.get::<Cpu, D>(p.id)
            {
                self.total += values(g).iter().map(|x| x * x).sum::<f32>();
            }
        }
    }
    let mut norm = Norm { grads, prefix, stack: Vec::new(), total: 0.0 };
    model.visit(&mut norm);
    norm.total
}

#[test]
fn gradients_reach_the_head_then_the_trunk() {
    let device = Default::default();
    let mut model = config().init::<Ad>(&device);
    let (ids, mask) = batch::<Ad>(&device);
    let target =
        Tensor::<Ad, 2>::from_data([[0.1f32, 2.0, 0.1, 3.0, 0.1, 0.1], [1.0, 0.0, 2.0, 0.0, 0.0, 0.0]], &device);
    let mut optim = SgdConfig::new().init::<Ad, WeightingModel<Ad>>();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let loss = (model.forward(ids.clone(), mask.clone()) - target.clone()).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        seen.push((
            grad_norm(&model, &grads, "head.out"),
            grad_norm(&model, &grads, "head.fc"),
            grad_norm(&model, &grads, "trunk"),
        ));
        model = optim.step(0.1, model, grads);
    }
    // At initialisation `out` is zero: only it receives a gradient.
    assert!(seen[0].0 > 0.0 && seen[0].1 == 0.0 && seen[0].2 == 0.0, "{seen:?}");
    // One step later the gradient flows through the head into the trunk.
    assert!(seen[1].0 > 0.0 && seen[1].1 > 0.0 && seen[1].2 > 0.0, "{seen:?}");
}

#[test]
fn other_activations_and_normalisation() {
    let device = Default::default();
    let (ids, mask) = batch::<Cpu>(&device);
    let sigmoid = config().with_activation(WeightActivation::Sigmoid).init::<Cpu>(&device);
    assert!(
        values(sigmoid.forward(ids.clone(), mask.clone()))
            .iter()
            .zip(values(mask.clone()))
            .all(|(w, m)| (w - 0.5 * m).abs() < 1e-7)
    );
    let normalized = config().with_normalize(true).init::<Cpu>(&device);
    let w = values(normalized.forward(ids, mask.clone()));
    let m = values(mask);
    let first: f32 = w[..6].iter().sum::<f32>() / 6.0;
    let second: f32 = w[6..9].iter().sum::<f32>() / 3.0;
    assert!(
        (first - 1.0).abs() < 1e-6 && (second - 1.0).abs() < 1e-6 && w[9..].iter().all(|&x| x == 0.0),
        "{w:?} {m:?}"
    );
}

#[test]
fn frozen_trunk_gets_no_gradient() {
    let device = Default::default();
    let model = config().with_freeze_trunk(true).init::<Ad>(&device);
    let (ids, mask) = batch::<Ad>(&device);
    let loss = model.forward(ids, mask).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(grad_norm(&model, &grads, "trunk"), 0.0);
    assert!(grad_norm(&model, &grads, "head.out") > 0.0);
}
