//! A Hessian-vector product through a whole base LM (GPT-2, Llama) on `Autodiff<Autodiff<Cpu>>`
//! (double backward) agrees with central differences of first-order gradients: the property the
//! exact meta-gradient rests on.

mod common;

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use camels_model::base::BaseLm;
use camels_model::hf::load_base;
use camels_model::loss::{Reduction, token_cross_entropy, weighted_loss};
use common::*;

/// The loss whose Hessian we probe: a weighted, masked token CE on a fixed batch.
fn loss<B: Backend>(model: &BaseLm<B>, device: &B::Device) -> Tensor<B, 1> {
    let ids = Tensor::<B, 2, Int>::from_data([[5, 17, 301, 42, 9, 77, 120, 3], [64, 2, 88, 450, 13, 0, 0, 0]], device);
    let mask = Tensor::<B, 2>::from_data([[1.0; 8], [1., 1., 1., 1., 1., 0., 0., 0.]], device);
    let weights = Tensor::<B, 2>::from_data(
        [[0.3, 1.2, 0.7, 2.0, 0.1, 1.0, 0.5, 0.9], [1.0, 0.4, 1.5, 0.8, 1.1, 1.0, 1.0, 1.0]],
        device,
    );
    weighted_loss(token_cross_entropy(model.forward(ids.clone()), ids), weights, mask, Reduction::MeanPadded)
}

/// Collects parameter tensors by id.
struct ById<B: Backend>(HashMap<ParamId, TensorData>, std::marker::PhantomData<B>);
impl<B: Backend> ModuleVisitor<B> for ById<B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        self.0.insert(p.id, p.val().into_data());
    }
}

/// θ + h·v, parameter by parameter.
struct Shift<'a> {
    direction: &'a HashMap<ParamId, TensorData>,
    h: f32,
}
impl ModuleMapper<Cpu> for Shift<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<Cpu, D>>) -> Param<Tensor<Cpu, D>> {
        let (id, t, mapper) = p.consume();
        let v = Tensor::<Cpu, D>::from_data(self.direction[&id].clone(), &t.device());
        Param::from_mapped_value(id, t + v * self.h, mapper)
    }
}

/// Marks every parameter as requiring a gradient again (after `from_inner`).
struct RequireGrad;
impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        p.map(|t| t.require_grad())
    }
}

/// First-order gradient at a plain parameter point, by id.
fn gradient(theta: &BaseLm<Cpu>) -> HashMap<ParamId, Vec<f32>> {
    let device = Default::default();
    let model = BaseLm::<Ad>::from_inner(theta.clone()).map(&mut RequireGrad);
    let grads = GradientsParams::from_grads(loss(&model, &device).backward(), &model);
    grads_by_id(&grads, &model)
}

/// The gradient of every parameter of `module`, flattened, by id.
fn grads_by_id<M: Backend>(grads: &GradientsParams, module: &impl Module<M>) -> HashMap<ParamId, Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, HashMap<ParamId, Vec<f32>>);
    impl<M: Backend> ModuleVisitor<M> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<M, D>>) {
            let g = self.0.get::<Cpu, D>(p.id).expect("every parameter has a gradient");
            self.1.insert(p.id, values(g));
        }
    }
    let mut collect = Collect(grads, HashMap::new());
    module.visit(&mut collect);
    collect.1
}

#[test]
fn hessian_vector_product_matches_central_differences() {
    let (theta, _) = load_base::<Ad>(&fixtures().join("tiny-gpt2"), &Default::default()).unwrap();
    check_hvp(theta, [1e-2, 3e-3, 1e-3]);
}

#[test]
fn llama_hessian_vector_product_matches_central_differences() {
    // The tiny Llama fixture (GQA, tied head; deterministic weights, unlike a seeded init, which
    // parallel tests would race on).
    // Its curvature changes faster (the difference error is 6e-3 at h = 1e-3), so smaller steps.
    let (theta, _) = load_base::<Ad>(&fixtures().join("tiny-llama"), &Default::default()).unwrap();
    check_hvp(theta, [3e-3, 1e-3, 3e-4]);
}

/// Hv by double backward against central differences at the three decreasing steps `hs`.
fn check_hvp(theta: BaseLm<Ad>, hs: [f32; 3]) {
    let device = Default::default();

    // A random direction v, one tensor per parameter.
    let mut direction = ById::<Cpu>(HashMap::new(), Default::default());
    <Cpu as Backend>::seed(&device, 7);
    theta.valid().map(&mut RandomLike).visit(&mut direction);
    let direction = direction.0;

    // Double backward: g = ∇L on level 2 with its graph, then ∇_θ ⟨g, v⟩ = H v on level 1.
    let model_2 = BaseLm::<Ad2>::from_inner(theta.clone()).map(&mut RequireGrad);
    let grads_2 = GradientsParams::from_grads(loss(&model_2, &device).backward(), &model_2);
    let mut dot = Dot { grads: &grads_2, direction: &direction, acc: None };
    model_2.visit(&mut dot);
    let hvp_grads = GradientsParams::from_grads(dot.acc.unwrap().backward(), &theta);

    // Central differences of the first-order gradient along v, at decreasing steps: the error
    // must fall with h (O(h²)) until f32 rounding takes over.
    let hvp = grads_by_id(&hvp_grads, &theta);
    let errors: Vec<f64> = hs
        .iter()
        .map(|&h| {
            let plus = gradient(&theta.valid().map(&mut Shift { direction: &direction, h }));
            let minus = gradient(&theta.valid().map(&mut Shift { direction: &direction, h: -h }));
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for (id, hv) in &hvp {
                for ((a, p), m) in hv.iter().zip(&plus[id]).zip(&minus[id]) {
                    let fd = (p - m) / (2.0 * h);
                    num += f64::from(a - fd).powi(2);
                    den += f64::from(fd).powi(2);
                }
            }
            (num / den).sqrt()
        })
        .collect();
    eprintln!("‖Hv − FD‖ / ‖FD‖ for h = {hs:?}: {errors:?}");
    assert!(errors[0] > errors[1] && errors[1] > errors[2], "no O(h²) convergence: {errors:?}");
    assert!(errors[2] < 2e-3, "‖Hv − FD‖ / ‖FD‖ = {errors:?}");
}

/// Replaces every parameter by N(0, 1) noise of its shape.
struct RandomLike;
impl ModuleMapper<Cpu> for RandomLike {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<Cpu, D>>) -> Param<Tensor<Cpu, D>> {
        p.map(|t| t.random_like(Distribution::Normal(0.0, 1.0)))
    }
}

/// ⟨g, v⟩ over all parameters, with g on level 1 (keeping its graph) and v constant.
struct Dot<'a> {
    grads: &'a GradientsParams,
    direction: &'a HashMap<ParamId, TensorData>,
    acc: Option<Tensor<Ad, 1>>,
}
impl ModuleVisitor<Ad2> for Dot<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Ad2, D>>) {
        let Some(g) = self.grads.get::<Ad, D>(p.id) else { return };
        let v = Tensor::<Ad, D>::from_data(self.direction[&p.id].clone(), &g.device());
        let term = (g * v).sum();
        self.acc = Some(match self.acc.take() {
            Some(acc) => acc + term,
            None => term,
        });
    }
}
