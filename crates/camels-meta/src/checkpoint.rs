//! Meta-training checkpoints: everything a run needs to continue exactly as if it had never stopped.
//!
//! A checkpoint is a directory `checkpoints/step-NNNNNNNN/` holding
//! - `weighting.safetensors`: φ, f32, keys = module paths (`trunk.h.0.attn.c_attn.weight`, `head.fc.weight`, …);
//!   with a frozen trunk loaded from a file ([`TrunkSource`]) only the `head.*` tensors, the trunk
//!   being that file's first blocks (a few hundred KB instead of the trunk's size);
//! - `base.safetensors`: the carried base LM θ (it drifts between resets), same key scheme; absent
//!   when the checkpoint falls on a reset (`docs_since_reset == 0`), where θ is θ₀;
//! - `optimizer.mpk`: burn's Adam record (moments and step counts per parameter), named MessagePack,
//!   full precision, keyed by the deterministic parameter ids of [`stable_param_ids`];
//! - `state.json`: the counters ([`TrainState`]);
//! - `weighting_config.json` (the trunk's HF config) and `weighting.json` (the head's options and
//!   the trunk's source, if any), so
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
use camels_model::hf::{base_config_json, load_module, load_trunk, save_module, save_module_where, write_atomic};
use camels_model::weighting::WeightingModel;
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
    weighting: &WeightingModel<A>,
    trunk: Option<&TrunkSource>,
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
    let weighting_path = dir.join("weighting.safetensors");
    match trunk {
        Some(_) => save_module_where(weighting, &weighting_path, |name| name.starts_with("head."))?,
        None => save_module(weighting, &weighting_path)?,
    }
    if state.docs_since_reset > 0 {
        save_module(base, &dir.join("base.safetensors"))?;
    }
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let optim_path = dir.join("optimizer.mpk");
    let bytes = Recorder::<A>::record(&recorder, optimizer.to_record(), ())
        .map_err(|e| bad(&optim_path, format!("cannot serialise the optimizer state: {e}")))?;
    write_atomic(&optim_path, &bytes)?;
    let state_json = serde_json::to_string_pretty(state).expect("the state serialises");
    write_atomic(&dir.join("state.json"), state_json.as_bytes())?;
    Ok(Pointer { step: state.step, dir: name })
}

/// Where a frozen weighting trunk comes from: the first `num_hidden_layers` blocks (and the final
/// norm) of a base checkpoint, so that a saved weighting model holds its head only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrunkSource {
    /// The base checkpoint (a GGUF file or an HF directory), as the run's config names it:
    /// `$CAMELS_MODELS_DIR/…` stays unexpanded, so that the saved model loads on another machine.
    pub trunk_from: String,
    /// The size of that file in bytes (an HF directory: its `model.safetensors`), checked on load.
    pub trunk_bytes: u64,
}

impl TrunkSource {
    /// The source `path` names (as written in the config), with its size read now.
    pub fn of(path: &Path) -> Result<Self> {
        let file = trunk_file(&crate::config::expand_path(path)?);
        let bytes = std::fs::metadata(&file).map_err(io(&file))?.len();
        Ok(Self { trunk_from: path.to_string_lossy().into_owned(), trunk_bytes: bytes })
    }

    /// Loads the trunk into `model` from the source file, checking that it is the same file (by size)
    /// as the one the head was trained on; `described_in` is the file that named the source.
    pub fn load_into<B: Backend>(
        &self,
        mut model: WeightingModel<B>,
        described_in: &Path,
    ) -> Result<WeightingModel<B>> {
        let path = crate::config::expand_path(Path::new(&self.trunk_from))?;
        let file = trunk_file(&path);
        let bytes = std::fs::metadata(&file)
            .map_err(|e| {
                bad(
                    described_in,
                    format!(
                        "trunk_from: cannot read {} ({e}); the weighting model's head was trained on this \
                         file's first blocks (set CAMELS_MODELS_DIR to the folder holding it)",
                        file.display()
                    ),
                )
            })?
            .len();
        if bytes != self.trunk_bytes {
            return Err(bad(
                described_in,
                format!(
                    "trunk_from: {} has {bytes} bytes, but the head was trained on a file of {} bytes: \
                     not the same checkpoint",
                    file.display(),
                    self.trunk_bytes
                ),
            ));
        }
        model.trunk = load_trunk(model.trunk, &path)?;
        Ok(model)
    }
}

/// The weight file of a base checkpoint path (a GGUF file, or an HF directory's safetensors).
fn trunk_file(path: &Path) -> PathBuf {
    if path.is_dir() { path.join("model.safetensors") } else { path.to_path_buf() }
}

/// Loads `weighting.safetensors` from `dir` into `model`: the head only when `trunk` is given (the
/// trunk is then loaded from its source), else every tensor.
pub fn load_weighting<B: Backend>(
    model: WeightingModel<B>,
    dir: &Path,
    trunk: Option<&TrunkSource>,
) -> Result<WeightingModel<B>> {
    match trunk {
        None => Ok(load_module(model, &dir.join("weighting.safetensors"), |p| vec![p.to_string()])?),
        Some(source) => load_head(source.load_into(model, &dir.join("weighting.json"))?, dir),
    }
}

/// Loads the `head.*` tensors of `dir/weighting.safetensors` into `model`, its trunk untouched.
fn load_head<B: Backend>(mut model: WeightingModel<B>, dir: &Path) -> Result<WeightingModel<B>> {
    model.head = load_module(model.head, &dir.join("weighting.safetensors"), |p| vec![format!("head.{p}")])?;
    Ok(model)
}

/// Writes `weighting_config.json` (the trunk's HF config) and `weighting.json` (head options and
/// the frozen trunk's source, if any) into the checkpoint directory `dir`, atomically.
pub fn write_weighting_description(
    dir: &Path,
    config: &WeightingModelConfig,
    trunk: Option<&TrunkSource>,
) -> Result<()> {
    let trunk_json = serde_json::to_vec_pretty(&base_config_json(&config.trunk)).expect("the config serialises");
    write_atomic(&dir.join("weighting_config.json"), &trunk_json)?;
    let mut head = serde_json::json!({
        "head_hidden": config.head_hidden,
        "activation": config.activation,
        "softplus_beta": config.softplus_beta,
        "normalize": config.normalize,
    });
    if let Some(source) = trunk {
        head["trunk_from"] = source.trunk_from.clone().into();
        head["trunk_bytes"] = source.trunk_bytes.into();
    }
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
///
/// `base` is θ₀: it stands for the carried base of a checkpoint taken on a reset, which has no
/// `base.safetensors`. With a `trunk` source, `weighting`'s trunk must already be loaded from it
/// (as meta-training builds φ): only the head is read.
pub fn load<A, O, L>(
    run_dir: &Path,
    pointer: &Pointer,
    weighting: WeightingModel<A>,
    trunk: Option<&TrunkSource>,
    optimizer: O,
    base: L,
    device: &A::Device,
) -> Result<Restored<WeightingModel<A>, O, L>>
where
    A: AutodiffBackend,
    O: Optimizer<camels_model::weighting::WeightingModel<A>, A>,
    L: Module<A::InnerBackend>,
{
    let dir = checkpoints_dir(run_dir).join(&pointer.dir);
    let same = |p: &str| vec![p.to_string()];
    let weighting = match trunk {
        Some(_) => load_head(weighting, &dir)?,
        None => load_weighting(weighting, &dir, None)?,
    };
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
    let base_path = dir.join("base.safetensors");
    let base = match (base_path.exists(), state.docs_since_reset) {
        (true, _) => load_module(base, &base_path, same)?,
        (false, 0) => base,
        (false, n) => {
            return Err(bad(&base_path, format!("missing, but the base had taken {n} documents since its reset")));
        }
    };
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
