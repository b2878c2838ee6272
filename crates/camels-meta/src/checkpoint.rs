//! Meta-training checkpoints: everything a run needs to continue exactly as if it had never stopped.
//!
//! A checkpoint is a directory `checkpoints/step-NNNNNNNN/` holding
//! - `weighting.safetensors`: φ, f32, keys = module paths (`trunk.h.0.attn.c_attn.weight`, `head.fc.weight`, …);
//! - `base.safetensors`: the carried base LM θ (it drifts between resets), same key scheme;
//! - `optimizer.mpk`: burn's Adam record (moments and step counts per parameter), named MessagePack,
//!   full precision, keyed by the deterministic parameter ids of [`stable_param_ids`];
//! - `state.json`: the counters ([`TrainState`]);
//! - `weighting_config.json` (the trunk's HF config) and `weighting.json` (the head's options), so
//!   that the directory alone loads as a weighting model (`adapt --weights camels:DIR`, see
//!   [`crate::strategy::load_weighting_model`]).
//!
//! Each file is written atomically (temporary file, fsync, rename), and the checkpoint as a whole
//! becomes visible only when the pointer `checkpoints/last.json` (or `best.json`) is atomically
//! rewritten to name it, so a kill at any moment leaves the previous checkpoint intact. The sample
//! order of the loop is a pure function of (seed, step), so the step counter is the whole RNG state.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use camels_model::hf::{base_config_json, load_module, save_module, write_atomic};
use camels_model::weighting::WeightingModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// The counters of a run at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Meta-steps done.
    pub step: usize,
    /// Documents the carried base LM has been trained on since its last reset to θ₀.
    pub docs_since_reset: usize,
    /// Best validation outer loss so far and the step it was measured at.
    pub best: Option<(f64, usize)>,
}

/// The pointer file naming a checkpoint directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    /// Meta-steps done at that checkpoint.
    pub step: usize,
    /// Directory name under `checkpoints/`.
    pub dir: String,
}

/// Gives every parameter the id `BASE + i` (i = visit order), so that optimizer records saved by
/// one process match the parameters of a model rebuilt by another.
pub struct StableIds {
    next: u64,
}

impl StableIds {
    const BASE: u64 = 0xCA3E_1500_0000_0000;
}

impl<B: Backend> ModuleMapper<B> for StableIds {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = p.consume();
        let id = ParamId::from(StableIds::BASE + self.next);
        self.next += 1;
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// `module` with deterministic parameter ids (see [`StableIds`]).
pub fn stable_param_ids<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut StableIds { next: 0 })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.into(), source }
}

fn bad(path: &Path, reason: impl Into<String>) -> MetaError {
    MetaError::Checkpoint { path: path.into(), reason: reason.into() }
}

/// The `checkpoints/` directory of a run.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// `checkpoints/{name}.json` (`last` or `best`).
fn pointer_path(run_dir: &Path, name: &str) -> PathBuf {
    checkpoints_dir(run_dir).join(format!("{name}.json"))
}

/// Reads `checkpoints/{name}.json` (`last` or `best`), if present.
pub fn read_pointer(run_dir: &Path, name: &str) -> Result<Option<Pointer>> {
    let path = pointer_path(run_dir, name);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map(Some).map_err(|e| bad(&path, format!("invalid pointer: {e}")))
}

/// Atomically points `checkpoints/{name}.json` at `pointer`.
pub fn write_pointer(run_dir: &Path, name: &str, pointer: &Pointer) -> Result<()> {
    let path = pointer_path(run_dir, name);
    let text = serde_json::to_string(pointer).expect("a pointer serialises");
    Ok(write_atomic(&path, text.as_bytes())?)
}

/// Makes `best.json` agree with the resumed state: a run killed between pointing `last` and
/// `best` at a new best leaves `best` one best behind (it is rewritten from `last`); a `best`
/// ahead of the resumed state (left by an older camels, which wrote `best` first) is removed, as the
/// resumed run finds that best again.
pub fn reconcile_best(run_dir: &Path, last: &Pointer, state: &TrainState) -> Result<()> {
    let best = read_pointer(run_dir, "best")?;
    let wanted = state.best.map(|(_, step)| step);
    if best.as_ref().map(|p| p.step) == wanted {
        return Ok(());
    }
    if wanted == Some(last.step) {
        write_pointer(run_dir, "best", last)
    } else if best.is_some_and(|p| p.step > state.step) {
        remove_pointer(run_dir, "best")
    } else {
        Ok(())
    }
}

/// Removes `checkpoints/{name}.json` if present.
pub fn remove_pointer(run_dir: &Path, name: &str) -> Result<()> {
    let path = pointer_path(run_dir, name);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
        _ => Ok(()),
    }
}

/// Writes a checkpoint directory for `state` (not yet pointed at) and returns its pointer. A
/// directory that a pointer names is never rewritten in place.
pub fn save<A, O>(
    run_dir: &Path,
    state: &TrainState,
    weighting: &impl Module<A>,
    optimizer: &O,
    base: &impl Module<A::InnerBackend>,
) -> Result<Pointer>
where
    A: AutodiffBackend,
    O: Optimizer<camels_model::weighting::WeightingModel<A>, A>,
{
    let name = format!("step-{:08}", state.step);
    let dir = checkpoints_dir(run_dir).join(&name);
    for pointer in [read_pointer(run_dir, "last")?, read_pointer(run_dir, "best")?].into_iter().flatten() {
        if pointer.dir == name {
            return Err(bad(&dir, "refusing to rewrite a checkpoint that last.json or best.json names"));
        }
    }
    // A directory no pointer names is the partial or abandoned work of a killed run: start afresh.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    save_module(weighting, &dir.join("weighting.safetensors"))?;
    save_module(base, &dir.join("base.safetensors"))?;
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let optim_path = dir.join("optimizer.mpk");
    let bytes = Recorder::<A>::record(&recorder, optimizer.to_record(), ())
        .map_err(|e| bad(&optim_path, format!("cannot serialise the optimizer state: {e}")))?;
    write_atomic(&optim_path, &bytes)?;
    let state_json = serde_json::to_string_pretty(state).expect("the state serialises");
    write_atomic(&dir.join("state.json"), state_json.as_bytes())?;
    Ok(Pointer { step: state.step, dir: name })
}

/// Writes `weighting_config.json` (the trunk's HF `config.json`) and `weighting.json` (head options)
/// into the checkpoint directory `dir`, atomically.
pub fn write_weighting_description(dir: &Path, config: &WeightingModelConfig) -> Result<()> {
    let trunk = serde_json::to_vec_pretty(&base_config_json(&config.trunk)).expect("the config serialises");
    write_atomic(&dir.join("weighting_config.json"), &trunk)?;
    let head = serde_json::json!({
        "head_hidden": config.head_hidden,
        "activation": config.activation,
        "softplus_beta": config.softplus_beta,
        "normalize": config.normalize,
    });
    write_atomic(&dir.join("weighting.json"), &serde_json::to_vec_pretty(&head).expect("json serialises"))?;
    Ok(())
}

/// The checkpoint directory `best.json` names in `run_dir` (else `last.json`), if either exists.
pub fn best_or_last_dir(run_dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = match read_pointer(run_dir, "best")? {
        Some(p) => Some(p),
        None => read_pointer(run_dir, "last")?,
    };
    Ok(pointer.map(|p| checkpoints_dir(run_dir).join(p.dir)))
}

/// What [`load`] restores.
pub struct Restored<W, O, L> {
    /// The counters.
    pub state: TrainState,
    /// φ.
    pub weighting: W,
    /// The optimizer with its record loaded.
    pub optimizer: O,
    /// The carried base LM.
    pub base: L,
}

/// Loads the checkpoint `pointer` names into freshly built modules of the same shapes (`weighting`
/// must carry [`stable_param_ids`]).
pub fn load<A, W, O, L>(
    run_dir: &Path,
    pointer: &Pointer,
    weighting: W,
    optimizer: O,
    base: L,
    device: &A::Device,
) -> Result<Restored<W, O, L>>
where
    A: AutodiffBackend,
    W: Module<A>,
    O: Optimizer<camels_model::weighting::WeightingModel<A>, A>,
    L: Module<A::InnerBackend>,
{
    let dir = checkpoints_dir(run_dir).join(&pointer.dir);
    let same = |p: &str| vec![p.to_string()];
    let weighting = load_module(weighting, &dir.join("weighting.safetensors"), same)?;
    let base = load_module(base, &dir.join("base.safetensors"), same)?;
    let optim_path = dir.join("optimizer.mpk");
    let bytes = std::fs::read(&optim_path).map_err(io(&optim_path))?;
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let record = Recorder::<A>::load(&recorder, bytes, device)
        .map_err(|e| bad(&optim_path, format!("cannot read the optimizer state: {e}")))?;
    let optimizer = optimizer.load_record(record);
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| bad(&state_path, format!("invalid state: {e}")))?;
    if state.step != pointer.step {
        return Err(bad(&state_path, format!("step {} but the pointer says {}", state.step, pointer.step)));
    }
    Ok(Restored { state, weighting, optimizer, base })
}

/// Removes checkpoint directories that neither `last.json` nor `best.json` names.
pub fn prune(run_dir: &Path) -> Result<()> {
    let keep: Vec<String> =
        [read_pointer(run_dir, "last")?, read_pointer(run_dir, "best")?].into_iter().flatten().map(|p| p.dir).collect();
    let dir = checkpoints_dir(run_dir);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("step-") && entry.path().is_dir() && !keep.contains(&name) {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}
