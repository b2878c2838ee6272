//! Parameter-space vector operations on burn modules, keyed by `ParamId`: lifting a module to an
//! autodiff level, SGD steps, and the ⟨·,·⟩, ‖·‖ and a·x + y of gradient sets that the adjoint
//! recursion needs. A "vector" is a [`GradientsParams`] over the parameters of a base-LM module.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Marks every parameter as a leaf that requires a gradient (needed after `from_inner`).
pub struct RequireGrad;

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        p.map(|t| t.require_grad())
    }
}

/// Lifts a module one autodiff level up, its parameters leaves that require a gradient.
pub fn lift<A: AutodiffBackend, M: AutodiffModule<A>>(inner: M::InnerModule) -> M {
    M::from_inner(inner).map(&mut RequireGrad)
}

/// θ ← θ − lr · g for every parameter that has a gradient in `grads` (stored on backend `B`).
pub struct SgdStep<'a> {
    /// The gradients.
    pub grads: &'a GradientsParams,
    /// The step size.
    pub lr: f64,
}

impl<B: Backend> ModuleMapper<B> for SgdStep<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = p.consume();
        let t = match self.grads.get::<B, D>(id) {
            Some(g) => t - g * self.lr,
            None => t,
        };
        Param::from_mapped_value(id, t, mapper)
    }
}

/// θ ← θ − s · g with a scalar tensor s `[1]` on the module's backend (a step whose size is itself
/// differentiated, as the normalised inner step's in the full unroll).
pub struct ScaledStep<'a, B: Backend> {
    /// The gradients.
    pub grads: &'a GradientsParams,
    /// s, `[1]`.
    pub scale: Tensor<B, 1>,
}

impl<B: Backend> ModuleMapper<B> for ScaledStep<'_, B> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = p.consume();
        let t = match self.grads.get::<B, D>(id) {
            Some(g) => t - g * self.scale.clone().unsqueeze::<D>(),
            None => t,
        };
        Param::from_mapped_value(id, t, mapper)
    }
}

/// θ ← θ + scale · v, with `v` a gradient set on the module's own backend.
pub fn shifted<B: Backend, M: Module<B>>(module: M, v: &GradientsParams, scale: f64) -> M {
    module.map(&mut SgdStep { grads: v, lr: -scale })
}

/// a·x + b·y over the parameters of `module` (all three on backend `B`).
pub fn combine<B: Backend, M: Module<B>>(
    module: &M,
    a: f64,
    x: &GradientsParams,
    b: f64,
    y: &GradientsParams,
) -> GradientsParams {
    struct Combine<'a> {
        a: f64,
        x: &'a GradientsParams,
        b: f64,
        y: &'a GradientsParams,
        out: GradientsParams,
    }
    impl<B: Backend> ModuleVisitor<B> for Combine<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let value = match (self.x.get::<B, D>(p.id), self.y.get::<B, D>(p.id)) {
                (Some(x), Some(y)) => x * self.a + y * self.b,
                (Some(x), None) => x * self.a,
                (None, Some(y)) => y * self.b,
                (None, None) => return,
            };
            self.out.register::<B, D>(p.id, value);
        }
    }
    let mut combine = Combine { a, x, b, y, out: GradientsParams::new() };
    module.visit(&mut combine);
    combine.out
}

/// `f` applied parameter by parameter to the flattened tensors `[n]` of `inputs` (backend `B`, the
/// module's), for every parameter of `module` that all inputs hold; the results keep each
/// parameter's shape.
pub fn zip_map<B: Backend, M: Module<B>>(
    module: &M,
    inputs: &[&GradientsParams],
    f: impl Fn(Vec<Tensor<B, 1>>) -> Tensor<B, 1>,
) -> GradientsParams {
    struct ZipMap<'a, F> {
        inputs: &'a [&'a GradientsParams],
        f: F,
        out: GradientsParams,
    }
    impl<B: Backend, F: Fn(Vec<Tensor<B, 1>>) -> Tensor<B, 1>> ModuleVisitor<B> for ZipMap<'_, F> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let tensors: Option<Vec<Tensor<B, D>>> = self.inputs.iter().map(|g| g.get::<B, D>(p.id)).collect();
            let Some(tensors) = tensors else { return };
            let Some(dims) = tensors.first().map(|t| t.dims()) else { return };
            let n = dims.iter().product::<usize>();
            let flat = tensors.into_iter().map(|t| t.reshape([n])).collect();
            self.out.register::<B, D>(p.id, (self.f)(flat).reshape(dims));
        }
    }
    let mut zip = ZipMap { inputs, f, out: GradientsParams::new() };
    module.visit(&mut zip);
    zip.out
}

/// ⟨x, y⟩ over the parameters of `module`; `x` and `y` hold tensors of backend `G`.
pub fn dot<G: Backend, M: Backend>(
    module: &impl Module<M>,
    x: &GradientsParams,
    y: &GradientsParams,
) -> Option<Tensor<G, 1>> {
    struct Dot<'a, G: Backend> {
        x: &'a GradientsParams,
        y: &'a GradientsParams,
        acc: Option<Tensor<G, 1>>,
    }
    impl<G: Backend, M: Backend> ModuleVisitor<M> for Dot<'_, G> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<M, D>>) {
            if let (Some(x), Some(y)) = (self.x.get::<G, D>(p.id), self.y.get::<G, D>(p.id)) {
                let term = (x * y).sum();
                self.acc = Some(match self.acc.take() {
                    Some(acc) => acc + term,
                    None => term,
                });
            }
        }
    }
    let mut dot = Dot { x, y, acc: None };
    module.visit(&mut dot);
    dot.acc
}

/// Moves a gradient set one autodiff level up as constants (`B` → `A` with `A::InnerBackend = B`).
pub fn lift_constant<A: AutodiffBackend, M: Backend>(module: &impl Module<M>, v: &GradientsParams) -> GradientsParams {
    struct Lift<'a, A: AutodiffBackend> {
        v: &'a GradientsParams,
        out: GradientsParams,
        _a: std::marker::PhantomData<A>,
    }
    impl<A: AutodiffBackend, M: Backend> ModuleVisitor<M> for Lift<'_, A> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<M, D>>) {
            if let Some(t) = self.v.get::<A::InnerBackend, D>(p.id) {
                self.out.register::<A, D>(p.id, Tensor::from_inner(t));
            }
        }
    }
    let mut lift = Lift::<A> { v, out: GradientsParams::new(), _a: Default::default() };
    module.visit(&mut lift);
    lift.out
}

/// Reads a scalar tensor.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64 data")[0]
}
