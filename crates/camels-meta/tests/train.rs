//! The meta-training loop on a tiny synthetic world: config parsing and overrides, kill-and-resume
//! against an unbroken run (bit-identical), atomic checkpoints, the weight pages.

#[path = "../../camels-model/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use camels_data::{SynthConfig, write_world};
use camels_meta::config::MetaTrainConfig;
use camels_meta::train::{Event, meta_train};
use camels_meta::viz::{html_page, png_heatmap, token_views};
use camels_model::gpt2::Gpt2Config;
use camels_model::hf::save_base;
use camels_model::tokenizer::TextTokenizer;
use common::*;

fn config_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs").join(name)
}

/// Holds the process-wide lock of the tests that draw random numbers: burn's RNG is global to the
/// backend, so a test seeding it and initialising φ must not interleave with another's draws (a
/// resumed run is compared bit for bit with an unbroken one started from the same seed).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A small synthetic world and a random tiny base (with a trained BPE tokenizer) in `dir`.
fn world(dir: &Path) -> Vec<String> {
    let synth = SynthConfig {
        seed: 5,
        n_pretrain: 4,
        n_meta_train: 12,
        n_meta_val: 4,
        n_test: 2,
        unrelated_paragraphs: 8,
        ..SynthConfig::default()
    };
    let (world, _) = write_world(dir, &synth).unwrap();
    let texts: Vec<String> = world.splits().iter().flat_map(|s| s.documents.iter().map(|d| d.text.clone())).collect();
    let tokenizer = TextTokenizer::train(texts.iter().chain([&world.unrelated]), 300, 2).unwrap();
    let base_dir = dir.join("base");
    std::fs::create_dir_all(&base_dir).unwrap();
    tokenizer.save(&base_dir.join("tokenizer.json")).unwrap();
    let mut base = Gpt2Config::tiny().with_eos_token_id(tokenizer.eos_id());
    base.vocab_size = tokenizer.vocab_size();
    let base = camels_model::base::BaseConfig::from(base);
    save_base(&base.init::<Cpu>(&Default::default()), &base, None, &base_dir).unwrap();
    let d = dir.display();
    vec![
        format!("data.train=\"{d}/meta_train.jsonl\""),
        format!("data.val=\"{d}/meta_val.jsonl\""),
        format!("data.locality=\"{d}/unrelated.txt\""),
        format!("base.path=\"{d}/base\""),
    ]
}

/// Overrides for a weighting model whose trunk is the first block of the base in `base`.
fn one_block_trunk_of(base: &Path) -> [String; 4] {
    [
        "weighting.preset=\"base\"".to_string(),
        "weighting.n_layer=1".into(),
        "weighting.n_positions=0".into(),
        format!("weighting.init_from=\"{}\"", base.display()),
    ]
}

fn tiny(overrides: &[String]) -> MetaTrainConfig {
    MetaTrainConfig::from_file(&config_file("tiny.toml"), overrides).unwrap()
}

fn run(config: &MetaTrainConfig, dir: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    meta_train::<Cpu>(config, dir, &Default::default(), &mut |e| {
        if matches!(e, Event::Checkpoint { .. }) {
            // The invariant resume relies on: `best` never names a step past `last`.
            let step = |name: &str| -> Option<u64> {
                let text = std::fs::read_to_string(dir.join(format!("checkpoints/{name}.json"))).ok()?;
                serde_json::from_str::<serde_json::Value>(&text).ok()?["step"].as_u64()
            };
            assert!(step("best") <= step("last"), "best {:?} is ahead of last {:?}", step("best"), step("last"));
        }
        events.push(e.clone())
    })
    .unwrap();
    events
}

fn last_dir(run_dir: &Path) -> PathBuf {
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("checkpoints/last.json")).unwrap()).unwrap();
    run_dir.join("checkpoints").join(pointer["dir"].as_str().unwrap())
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn config_rejects_unknown_keys_with_their_name() {
    let err = MetaTrainConfig::from_toml_str("[outer]\nlearning_rat = 1e-5\n", "x.toml", &[]).unwrap_err().to_string();
    assert!(err.contains("x.toml") && err.contains("outer.learning_rat"), "{err}");
    let err = MetaTrainConfig::from_toml_str("[optimiser]\nlr = 1\n", "x.toml", &[]).unwrap_err().to_string();
    assert!(err.contains("optimiser"), "{err}");
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &["inner.inner_rl=1".into()]).unwrap_err().to_string();
    assert!(err.contains("--set") && err.contains("inner.inner_rl"), "{err}");
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &["outer.grad_acc=\"four\"".into()]).unwrap_err();
    assert!(err.to_string().contains("outer.grad_acc"), "{err}");
    let err = MetaTrainConfig::from_toml_str("[run]\ncheckpoint_every = 3\n", "x.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("run.checkpoint_every"), "{err}");
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &["run.steps=6".into()]).unwrap_err();
    assert!(err.to_string().contains("run.steps"), "{err}");
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &["inner.reset_base_every=25".into()]).unwrap_err();
    assert!(err.to_string().contains("inner.reset_base_every"), "{err}");
    // Half precision: f16 needs loss scaling; bf16 rounding drowns the difference modes' steps.
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &["inner.matmul_precision=f16".into()]).unwrap_err();
    assert!(err.to_string().contains("inner.matmul_precision"), "{err}");
    let bf16_cd = ["inner.matmul_precision=bf16".into(), "inner.grad_mode=central_difference".into()];
    let err = MetaTrainConfig::from_toml_str("", "x.toml", &bf16_cd).unwrap_err();
    assert!(err.to_string().contains("inner.grad_mode"), "{err}");
    // Swapped answers come from another document of the step: one document per step has none.
    let swapped_alone = [
        "outer.c_control=1.0".into(),
        "outer.control=\"swapped_answers\"".into(),
        "inner.update_batch_size=1".into(),
        "inner.reset_base_every=1".into(),
        "data.val_docs=1".into(),
    ];
    let err = MetaTrainConfig::from_toml_str("[data]\ntrain = \"t.jsonl\"\n", "x.toml", &swapped_alone).unwrap_err();
    assert!(err.to_string().contains("outer.control"), "{err}");
    let swapped_pairs = [swapped_alone[0].clone(), swapped_alone[1].clone()];
    let config = MetaTrainConfig::from_toml_str("[data]\ntrain = \"t.jsonl\"\n", "x.toml", &swapped_pairs).unwrap();
    assert_eq!(config.outer.control, camels_meta::config::ControlKind::SwappedAnswers);
}

#[test]
fn set_overrides_any_value_and_the_paper_defaults_hold() {
    let config = tiny(&[
        "inner.inner_lr=0.25".into(),
        "run.seed=9".into(),
        "weighting.activation=\"sigmoid\"".into(),
        "inner.matmul_precision=bf16".into(),
    ]);
    assert_eq!(config.inner.inner_lr, 0.25);
    assert_eq!(config.inner.matmul_precision, camels_model::base::MatmulPrecision::Bf16);
    assert_eq!(config.run.seed, 9);
    assert_eq!(config.weighting.activation, camels_model::weighting::WeightActivation::Sigmoid);
    assert_eq!(config.inner.update_batch_size, 2, "untouched keys keep the file's value");
    let reparsed = MetaTrainConfig::from_toml_str(&config.to_toml(), "resolved", &[]).unwrap();
    assert_eq!(reparsed, config, "the resolved config round-trips");

    let paper = MetaTrainConfig::from_file(&config_file("paper.toml"), &[]).unwrap();
    assert_eq!((paper.inner.update_batch_size, paper.inner.reset_base_every, paper.outer.grad_acc), (6, 24, 4));
    assert_eq!((paper.inner.inner_lr, paper.outer.outer_lr, paper.outer.c_kl), (5e-4, 1e-5, 0.1));
    assert_eq!(
        (paper.data.max_doc_tokens, paper.weighting.preset.as_str(), paper.weighting.softplus_beta),
        (1024, "distilgpt2", 3.0)
    );
    assert_eq!(
        MetaTrainConfig::from_toml_str("", "empty", &[]).unwrap().inner,
        paper.inner,
        "defaults are the paper's"
    );
    MetaTrainConfig::from_file(&config_file("demo.toml"), &[]).unwrap();
    let smollm2 = MetaTrainConfig::from_file(&config_file("smollm2.toml"), &[]).unwrap();
    assert!(paper.data.qa_include_eos, "the paper's outer loss includes the end of sequence");
    assert!(!smollm2.data.qa_include_eos, "SmolLM2's leaves it out (BENCHMARKS.md)");
}

#[test]
fn resume_after_a_stop_is_bit_identical_to_an_unbroken_run() {
    let dir = scratch("train-resume");
    let _serial = serial();
    let mut paths = world(&dir);
    // Resets every 3 steps: the checkpoints at steps 2 and 4 carry a drifted base, 6 falls on a reset.
    paths.push("inner.reset_base_every=6".into());
    let unbroken_dir = dir.join("unbroken");
    let events = run(&tiny(&paths), &unbroken_dir);
    let steps = events.iter().filter(|e| matches!(e, Event::Step { .. })).count();
    assert_eq!(steps, 6);

    // Stop after 2 steps, then after 4, then run to the end; each call resumes from `last`.
    let broken_dir = dir.join("broken");
    let mut with_stop = paths.clone();
    with_stop.push("run.stop_after=2".into());
    run(&tiny(&with_stop), &broken_dir);
    assert!(last_dir(&broken_dir).ends_with("step-00000002"));
    assert!(last_dir(&broken_dir).join("base.safetensors").is_file(), "4 documents since the reset: θ is saved");
    // A kill in the middle of writing the next checkpoint leaves a partial directory behind that no
    // pointer names: resuming must ignore it.
    let partial = broken_dir.join("checkpoints/step-00000004");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("weighting.safetensors"), b"truncated").unwrap();
    // A kill between pointing `last` and `best` at a new best: the resume restores `best`.
    let best_json = broken_dir.join("checkpoints/best.json");
    let best_before = std::fs::read_to_string(&best_json).unwrap();
    std::fs::remove_file(&best_json).unwrap();
    *with_stop.last_mut().unwrap() = "run.stop_after=4".into();
    let mut resumed = None;
    meta_train::<Cpu>(&tiny(&with_stop), &broken_dir, &Default::default(), &mut |e| {
        if let Event::Resumed { step } = e {
            resumed = Some((*step, std::fs::read_to_string(&best_json).ok()));
        }
    })
    .unwrap();
    let (step, restored_best) = resumed.expect("the run resumed");
    assert_eq!(step, 2);
    assert_eq!(restored_best.as_deref(), Some(best_before.as_str()), "best.json restored from last on resume");
    // The last leg recomputes θ_k instead of storing them: allowed on resume, and the same result.
    let mut lean = paths.clone();
    lean.push("inner.store_theta_every=100".into());
    let events = run(&tiny(&lean), &broken_dir);
    assert!(matches!(events[0], Event::Resumed { step: 4 }));

    // optimizer.mpk is not compared byte for byte: burn writes its per-parameter map in hash order.
    // Adam's state is exact nonetheless: φ after the Adam steps that follow each resume is identical.
    for file in ["weighting.safetensors", "state.json"] {
        assert!(
            read(last_dir(&unbroken_dir).join(file)) == read(last_dir(&broken_dir).join(file)),
            "{file} differs between the unbroken and the resumed run"
        );
    }
    for d in [&unbroken_dir, &broken_dir] {
        assert!(!last_dir(d).join("base.safetensors").exists(), "step 6 falls on a reset: θ = θ₀ is not saved");
    }
    let metrics = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("elapsed_s");
                v
            })
            .collect()
    };
    assert_eq!(metrics(&unbroken_dir), metrics(&broken_dir), "metrics of the resumed run differ");
    // φ moved away from its initialisation (otherwise the comparison above proves nothing).
    let start = dir.join("start");
    let mut no_steps = paths.clone();
    no_steps.extend(["run.steps=2".into(), "outer.outer_lr=1e-30".into()]);
    run(&tiny(&no_steps), &start);
    assert!(
        read(last_dir(&start).join("weighting.safetensors"))
            != read(last_dir(&unbroken_dir).join("weighting.safetensors"))
    );
}

#[test]
fn checkpoints_are_complete_and_atomic_and_pages_show_every_token() {
    let dir = scratch("train-atomic");
    let _serial = serial();
    let mut paths = world(&dir);
    // Validation more often than checkpoints: every best checkpoint must also become `last` (the
    // invariant `run` checks at every checkpoint event).
    paths.push("run.checkpoint_every=4".into());
    let run_dir = dir.join("run");
    let events = run(&tiny(&paths), &run_dir);
    assert!(events.iter().any(|e| matches!(e, Event::Checkpoint { name: "best", .. })));
    assert!(events.iter().any(|e| matches!(e, Event::Validated(_))));

    // No temporary files survive, the pointers name complete directories, stale ones are pruned.
    let mut stack = vec![run_dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            assert!(!path.to_string_lossy().ends_with(".tmp"), "left over: {}", path.display());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    let last = last_dir(&run_dir);
    for file in ["weighting.safetensors", "optimizer.mpk", "state.json"] {
        assert!(last.join(file).is_file(), "{} missing", last.join(file).display());
    }
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("state.json")).unwrap()).unwrap();
    let drifted = state["docs_since_reset"].as_u64().unwrap() > 0;
    assert_eq!(last.join("base.safetensors").is_file(), drifted, "the base is saved exactly when it drifted from θ₀");
    let dirs =
        std::fs::read_dir(run_dir.join("checkpoints")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert!(dirs <= 2, "{dirs} checkpoint directories kept (last and best only)");
    let saved = MetaTrainConfig::from_file(&run_dir.join("config.toml"), &[]).unwrap();
    assert_eq!(saved, tiny(&paths), "the resolved config is saved in the run directory");

    // Every validation wrote a page and a heat map; the metrics carry the weight mass.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let vals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "val")
        .collect();
    assert_eq!(vals.len(), 3);
    for v in &vals {
        assert!(v["answer_ratio"].as_f64().unwrap() > 0.0 && v["outer"].as_f64().unwrap().is_finite());
        let step = v["step"].as_u64().unwrap();
        let html = std::fs::read_to_string(run_dir.join(format!("weights/step-{step:08}.html"))).unwrap();
        assert!(html.contains("answer-bearing token"));
        let png = read(run_dir.join(format!("weights/step-{step:08}.png")));
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let info = decoder.read_info().unwrap();
        assert_eq!(info.info().width, 64 * 8);
    }
}

#[test]
fn the_html_page_holds_every_token_and_its_weight() {
    let text = "Ilvo <Marn> & co. wrote 12 books in 1873.";
    let offsets: Vec<(usize, usize)> =
        (0..text.chars().count()).step_by(3).map(|s| (s, (s + 3).min(text.len()))).collect();
    let weights: Vec<f32> = (0..offsets.len()).map(|i| i as f32 / 10.0).collect();
    let answer: Vec<bool> = (0..offsets.len()).map(|i| i % 4 == 0).collect();
    let tokens = token_views(text, &offsets, &weights, &answer);
    let doc = camels_meta::viz::DocView { title: "d".into(), tokens };
    let html = html_page("t", "s", std::slice::from_ref(&doc));
    assert_eq!(html.matches("<span class=\"t").count(), offsets.len());
    assert_eq!(html.matches("<span class=\"t a\"").count(), answer.iter().filter(|&&a| a).count());
    for (i, w) in weights.iter().enumerate() {
        assert!(html.contains(&format!("data-i=\"{i}\" title=\"w={w:.4}\"")), "token {i}");
    }
    // The spans, unescaped and joined, give back the text.
    let mut joined = String::new();
    for piece in html.split("<span class=\"t").skip(1) {
        let inner = &piece[piece.find('>').unwrap() + 1..piece.find("</span>").unwrap()];
        joined.push_str(&inner.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"));
    }
    assert_eq!(joined, text);
    let png = png_heatmap(std::slice::from_ref(&doc), 5);
    let info = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (40, offsets.len().div_ceil(5) as u32 * 8));
}

#[test]
fn adapt_loads_the_weighting_model_from_a_run_directory_and_its_checkpoints() {
    use burn::prelude::*;
    use camels_data::TextEncoder;
    use camels_meta::strategy::{Weigher, WeightStrategy};

    let dir = scratch("train-camels-path");
    let _serial = serial();
    let paths = world(&dir);
    let run_dir = dir.join("run");
    let config = tiny(&[paths.clone(), vec!["weighting.normalize=true".into()]].concat());
    run(&config, &run_dir);
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("checkpoints/best.json")).unwrap()).unwrap();
    let best = run_dir.join("checkpoints").join(pointer["dir"].as_str().unwrap());

    let tokenizer = TextTokenizer::from_dir(&dir.join("base")).unwrap();
    let text = "Varodek Quillian was born in 1873 in the town of Essar.";
    let encoded = TextEncoder::encode(tokenizer.inner(), text).unwrap();
    let device = Default::default();
    let weigh = |path: &Path| {
        let weigher = Weigher::<Cpu>::new(&WeightStrategy::Camels(path.to_path_buf()), &[text], &device)
            .unwrap_or_else(|e| panic!("camels:{}: {e}", path.display()));
        weigher.weigh(text, &encoded).unwrap()
    };
    let from_run = weigh(&run_dir);
    assert_eq!(from_run, weigh(&best), "a run directory stands for its best checkpoint");
    assert_eq!(from_run.len(), encoded.ids.len());
    assert!(weigh(&last_dir(&run_dir)).iter().all(|w| w.is_finite()));

    // The saved description rebuilds exactly the model meta-training built (head options included).
    let base = camels_model::hf::read_base_config(&dir.join("base/config.json")).unwrap();
    let built = config.weighting_model(&base).init::<Cpu>(&device);
    let built =
        camels_model::hf::load_module(built, &best.join("weighting.safetensors"), |p| vec![p.to_string()]).unwrap();
    let t = encoded.ids.len();
    let ids: Vec<i64> = encoded.ids.iter().map(|&i| i64::from(i)).collect();
    let w = built.forward(
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, [1, t]), &device), // [1, T]
        Tensor::<Cpu, 2>::ones([1, t], &device),                                 // [1, T]
    );
    assert_eq!(w.into_data().to_vec::<f32>().unwrap(), from_run);
    let mean = from_run.iter().sum::<f32>() / t as f32;
    assert!((mean - 1.0).abs() < 1e-4, "normalize = true was carried over: mean weight {mean}");
}

#[test]
fn qa_tune_keeps_the_best_validation_and_stops_early() {
    use burn::module::AutodiffModule;
    use camels_meta::eval::EvalConfig;
    use camels_meta::pretrain::{QaSplits, QaTuneConfig, qa_tune};
    use camels_model::hf::{load_base, module_tensors};

    let dir = scratch("qa-tune");
    world(&dir);
    let device = Default::default();
    let tokenizer = TextTokenizer::from_dir(&dir.join("base")).unwrap();
    let (model, _) = load_base::<Ad>(&dir.join("base"), &device).unwrap();
    let read = |name: &str| camels_data::jsonl::read(&dir.join(name), true).unwrap().documents;
    let (train, val) = (read("meta_train.jsonl"), read("meta_val.jsonl"));
    let data = QaSplits { train: &train, val: &val };
    let eval = EvalConfig { max_new_tokens: 2, ..EvalConfig::default() };

    // A sane rate lowers the validation answer NLL of a random model: a later step is kept.
    let config = QaTuneConfig { lr: 1e-2, ..QaTuneConfig::tiny() };
    let (_, report) = qa_tune(model.clone(), &tokenizer, data, &config, &eval, &device, &mut |_| {}).unwrap();
    let lowest = report.validations.iter().map(|v| v.answer_nll).fold(f64::INFINITY, f64::min);
    assert_eq!(report.validations.len(), 3, "steps 0, 2 and 4");
    assert!(report.best.step > 0 && report.best.answer_nll == lowest, "{report:?}");

    // An absurd rate makes it worse: patience 1 stops at the first validation and step 0 is kept.
    let config = QaTuneConfig { lr: 0.5, ..QaTuneConfig::tiny() };
    let (best, report) = qa_tune(model.clone(), &tokenizer, data, &config, &eval, &device, &mut |_| {}).unwrap();
    assert_eq!((report.best.step, report.steps, report.stopped_early), (0, 2, true), "{report:?}");
    assert_eq!(module_tensors(&best), module_tensors(&model.valid()), "the untouched model is returned");
}

#[test]
fn a_frozen_trunk_from_the_base_is_saved_by_reference_and_resumes_exactly() {
    use camels_meta::strategy::{Weigher, WeightStrategy};
    let dir = scratch("train-frozen");
    let _serial = serial();
    let mut paths = world(&dir);
    let base = dir.join("base");
    paths.extend(one_block_trunk_of(&base));
    paths.extend(["weighting.freeze_trunk=true".to_string(), "inner.reset_base_every=6".into()]);
    let unbroken = dir.join("unbroken");
    run(&tiny(&paths), &unbroken);
    let broken = dir.join("broken");
    run(&tiny(&[paths.clone(), vec!["run.stop_after=2".into()]].concat()), &broken);
    let events = run(&tiny(&paths), &broken);
    assert!(matches!(events[0], Event::Resumed { step: 2 }));
    for file in ["weighting.safetensors", "state.json", "weighting.json"] {
        assert!(read(last_dir(&unbroken).join(file)) == read(last_dir(&broken).join(file)), "{file} differs");
    }

    // The checkpoint holds the head only, and names the trunk's source and size.
    let last = last_dir(&unbroken);
    let bytes = read(last.join("weighting.safetensors"));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["head.fc.bias", "head.fc.weight", "head.out.bias", "head.out.weight"]);
    let head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("weighting.json")).unwrap()).unwrap();
    assert_eq!(head["trunk_from"].as_str().unwrap(), base.to_string_lossy());
    let model_bytes = std::fs::metadata(base.join("model.safetensors")).unwrap().len();
    assert_eq!(head["trunk_bytes"].as_u64().unwrap(), model_bytes);

    // `adapt` loads it (trunk from the base, head from the file): weights finite and not uniform.
    let text = "Varodek Quillian was born in 1873 in the town of Essar.";
    let tokenizer = TextTokenizer::from_dir(&base).unwrap();
    let encoded = camels_data::TextEncoder::encode(tokenizer.inner(), text).unwrap();
    let device = Default::default();
    let weights = Weigher::<Cpu>::new(&WeightStrategy::Camels(last.clone()), &[text], &device)
        .unwrap()
        .weigh(text, &encoded)
        .unwrap();
    assert_eq!(weights.len(), encoded.ids.len());
    assert!(weights.iter().all(|w| w.is_finite()));
    assert!(weights.iter().any(|w| (w - weights[0]).abs() > 1e-6), "the trained head weighs tokens differently");

    // A different file under the trunk's name is refused, naming the field and both sizes.
    let mut wrong = head.clone();
    wrong["trunk_bytes"] = (model_bytes + 1).into();
    std::fs::write(last.join("weighting.json"), serde_json::to_vec(&wrong).unwrap()).unwrap();
    let err = Weigher::<Cpu>::new(&WeightStrategy::Camels(last.clone()), &[text], &device).err().unwrap().to_string();
    assert!(err.contains("trunk_from") && err.contains(&format!("{model_bytes} bytes")), "{err}");
}

#[test]
fn control_questions_enter_the_outer_loss_and_the_validation_reports_the_fact_gain() {
    let dir = scratch("train-control");
    let _serial = serial();
    let paths = world(&dir);
    let metrics = |overrides: &[String], name: &str| -> Vec<serde_json::Value> {
        let run_dir = dir.join(name);
        run(&tiny(overrides), &run_dir);
        let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let plain = metrics(&paths, "plain");
    let with = metrics(&[paths.clone(), vec!["outer.c_control=1.0".into()]].concat(), "control");
    for v in plain.iter() {
        let key = if v["kind"] == "val" { "control_before" } else { "control" };
        assert!(v[key].is_null(), "no control questions, none reported: {v}");
    }
    let (mut trains, mut vals) = (0, 0);
    for (p, c) in plain.iter().zip(&with) {
        assert_eq!(p["kind"], c["kind"]);
        if c["kind"] == "train" {
            trains += 1;
            let control = c["control"].as_f64().expect("each step logs the control NLL");
            // Same documents and questions, so the same QA NLL at the first step; J subtracts the control NLL.
            if c["step"] == 1 {
                assert_eq!(p["qa"], c["qa"]);
                let expected = p["outer"].as_f64().unwrap() - control;
                assert!((c["outer"].as_f64().unwrap() - expected).abs() < 1e-4, "{c} vs {p}");
            }
        } else if c["kind"] == "val" {
            vals += 1;
            let f = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {c}"));
            let expected = f("qa_gain") - (f("control_before") - f("control_after"));
            assert!((f("fact_gain") - expected).abs() < 1e-9);
            assert!(f("control_before") > 0.0 && f("control_before").is_finite());
        }
    }
    assert!(trains > 0 && vals > 0);

    // Hinged, the validation J subtracts min(control after, before): never less than the
    // control NLL it started from. Every validation reports how evenly the weight is spread.
    let hinge = ["outer.c_control=1.0", "outer.control_hinge=true", "outer.c_kl=0.1"].map(String::from);
    let hinged = metrics(&[paths.clone(), hinge.to_vec()].concat(), "hinged");
    let mut hinged_vals = 0;
    for v in plain.iter().chain(&hinged).filter(|v| v["kind"] == "val") {
        let share = v["effective_share"].as_f64().expect("effective_share logged");
        assert!(share > 0.0 && share <= 1.0 + 1e-9, "{v}");
    }
    for v in hinged.iter().filter(|v| v["kind"] == "val") {
        hinged_vals += 1;
        let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"));
        let expected = f("qa_after") + 0.1 * f("kl") - f("control_after").min(f("control_before"));
        assert!((f("outer") - expected).abs() < 1e-6, "{v}");
    }
    assert!(hinged_vals > 0);

    // A negative coefficient is refused with the field's name.
    let err =
        MetaTrainConfig::from_file(&config_file("tiny.toml"), &[paths, vec!["outer.c_control=-1".into()]].concat())
            .unwrap_err()
            .to_string();
    assert!(err.contains("outer.c_control"), "{err}");
}

#[test]
fn the_answer_probe_fits_the_spans_keeps_its_best_epoch_and_saves_a_head_adapt_loads() {
    use camels_meta::probe::{ProbeConfig, fit_answer_probe};
    use camels_meta::strategy::{Weigher, WeightStrategy};
    let dir = scratch("train-probe");
    let _serial = serial();
    let mut paths = world(&dir);
    let base = dir.join("base");
    paths.extend(one_block_trunk_of(&base));
    let device = Default::default();
    let probe = ProbeConfig { epochs: 12, lr: 1e-2, batch_tokens: 256 };

    // The head is fitted on fixed trunk features: a trainable trunk is refused, by name.
    let err = fit_answer_probe::<Cpu>(&tiny(&paths), &probe, &dir.join("refused"), &device, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("weighting.freeze_trunk"), "{err}");

    paths.push("weighting.freeze_trunk=true".into());
    let run_dir = dir.join("probe");
    let mut seen = Vec::new();
    let summary =
        fit_answer_probe::<Cpu>(&tiny(&paths), &probe, &run_dir, &device, &mut |e| seen.push(e.clone())).unwrap();
    assert_eq!(seen, summary.epochs);
    assert!(summary.answer_share > 0.0 && summary.answer_share < 1.0, "{}", summary.answer_share);
    let first = &summary.epochs[0];
    let last = summary.epochs.last().unwrap();
    assert!(last.train_loss < 0.9 * first.train_loss, "training BCE {} → {}", first.train_loss, last.train_loss);
    let best = &summary.epochs[summary.best - 1];
    assert!(summary.epochs.iter().all(|e| e.val_loss >= best.val_loss && e.val_auc.is_finite()));
    assert!(best.answer_ratio > 1.0, "answer tokens weigh {} × the others", best.answer_ratio);
    let lines = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), probe.epochs);

    // `camels:DIR` reads the kept epoch (head only, trunk from the base).
    assert_eq!(summary.checkpoint, last_dir(&run_dir));
    let text = "Varodek Quillian was born in 1873 in the town of Essar.";
    let tokenizer = TextTokenizer::from_dir(&base).unwrap();
    let encoded = camels_data::TextEncoder::encode(tokenizer.inner(), text).unwrap();
    let weights = Weigher::<Cpu>::new(&WeightStrategy::Camels(run_dir.clone()), &[text], &device)
        .unwrap()
        .weigh(text, &encoded)
        .unwrap();
    assert!(weights.iter().all(|w| w.is_finite()));
    assert!(weights.iter().any(|w| (w - weights[0]).abs() > 1e-6), "the fitted head weighs tokens differently");
}
