//! The command line on the inputs a new user's audit fed it: each ends in a located error (exit 1,
//! never a panic's 101) or in a warning and a recorded count, as the hardening issue asks. Runs the
//! built `camels-cli` on the tiny GPT-2 fixture (64 positions, 512 tokens) and scratch files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn tiny() -> PathBuf {
    fixtures().join("tiny-gpt2")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("camels-cli-bad-input-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts a clean failure (exit 1, no panic) whose message holds every one of `needles`.
    fn fails_with(&self, needles: &[&str]) {
        assert_eq!(self.code, 1, "exit code {}; stderr:\n{}", self.code, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        for needle in needles {
            assert!(self.stderr.contains(needle), "`{needle}` not in stderr:\n{}", self.stderr);
        }
    }

    fn succeeds(&self) {
        assert_eq!(self.code, 0, "exit code {}; stderr:\n{}", self.code, self.stderr);
    }
}

fn camels(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_camels-cli"))
        .args(args)
        .env("CAMELS_SYSTEM_MALLOC", "1")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("camels-cli runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `n` JSONL documents with one question each (the answer in the text).
fn stream(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("stream.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"d{i}","text":"The river Avon{i} flows past the town of Berel{i} in the north.","questions":[{{"question":"Which town does the Avon{i} flow past?","answers":["Berel{i}"]}}]}}"#
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A meta-training config on the tiny base, with `extra` lines appended to its sections.
fn meta_config(dir: &Path, data_extra: &str, inner_extra: &str) -> PathBuf {
    let docs = stream(dir, 8);
    let unrelated = dir.join("unrelated.txt");
    if !unrelated.exists() {
        std::fs::write(&unrelated, "Some unrelated words about weather and markets and the sea.\n".repeat(20)).unwrap();
    }
    let config = format!(
        r#"[data]
train = "{docs}"
val = "{docs}"
locality = "{unrelated}"
questions_per_doc = 1
qa_max_len = 32
locality_tokens = 32
locality_batch_size = 1
val_docs = 2
{data_extra}

[base]
path = "{base}"

[weighting]
preset = "tiny"
n_layer = 1
n_embd = 16
n_head = 2
n_positions = 64
head_hidden = 16

[inner]
update_batch_size = 2
reset_base_every = 4
{inner_extra}

[outer]
outer_lr = 1e-3
grad_acc = 2

[run]
seed = 3
steps = 2
val_every = 2
checkpoint_every = 2
viz_docs = 0
"#,
        docs = s(&docs),
        unrelated = s(&unrelated),
        base = s(&tiny()),
    );
    let path = dir.join("meta.toml");
    std::fs::write(&path, config).unwrap();
    path
}

// 1. Panics that become located errors.

#[test]
fn meta_training_documents_longer_than_the_context_are_refused_up_front() {
    let dir = scratch("max-doc-tokens");
    let config = meta_config(&dir, "max_doc_tokens = 128", "inner_lr = 1e-2");
    let out = dir.join("run");
    camels(&["meta-train", "--config", s(&config), "--out", s(&out)]).fails_with(&[
        "data.max_doc_tokens",
        "128",
        "64 positions",
    ]);
}

#[test]
fn an_empty_locality_file_is_named() {
    let dir = scratch("empty-locality");
    std::fs::write(dir.join("unrelated.txt"), "\n\n").unwrap();
    let config = meta_config(&dir, "max_doc_tokens = 48", "inner_lr = 1e-2");
    camels(&["meta-train", "--config", s(&config), "--out", s(&dir.join("run"))]).fails_with(&[
        "unrelated.txt",
        "data.locality",
        "no text",
    ]);
}

#[test]
fn a_tokenizer_larger_than_the_model_is_refused() {
    let dir = scratch("big-tokenizer");
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny().join(file), base.join(file)).unwrap();
    }
    for file in ["vocab.json", "merges.txt"] {
        std::fs::copy(fixtures().join("gpt2-tokenizer").join(file), base.join(file)).unwrap();
    }
    let docs = stream(&dir, 2);
    let out = dir.join("out");
    camels(&["adapt", "--base", s(&base), "--stream", s(&docs), "--preset", "tiny", "--out", s(&out)])
        .fails_with(&["50257 tokens", "512 embeddings"]);
    // `info` shows the configuration and says what is wrong with the tokenizer.
    let info = camels(&["info", "--base", s(&base)]);
    info.succeeds();
    assert!(info.stdout.contains("50257 tokens, more than the model's 512"), "{}", info.stdout);
}

#[test]
fn generation_is_clamped_to_the_context_and_a_prompt_that_fills_it_is_refused() {
    let long =
        camels(&["generate", "--base", s(&tiny()), "--prompt", "the", "--max-new-tokens", "100", "--log", "warn"]);
    long.succeeds();
    assert!(long.stderr.contains("past the model's context"), "{}", long.stderr);
    let prompt = "word ".repeat(200);
    camels(&["generate", "--base", s(&tiny()), "--prompt", &prompt]).fails_with(&["prompt of", "64 positions"]);

    let dir = scratch("adapt-max-new-tokens");
    let docs = stream(&dir, 2);
    let out = dir.join("out");
    let run = camels(&[
        "adapt",
        "--base",
        s(&tiny()),
        "--stream",
        s(&docs),
        "--preset",
        "tiny",
        "--max-new-tokens",
        "500",
        "--out",
        s(&out),
        "--json",
    ]);
    run.succeeds();
    assert!(run.stderr.contains("past the model's context"), "{}", run.stderr);
}

// 2. One writer per run directory.

#[test]
fn a_second_writer_on_a_run_directory_is_refused_naming_the_holder() {
    let dir = scratch("lock");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(out.join(".lock")).unwrap();
    lock.lock().unwrap();
    std::fs::write(out.join(".lock"), "pid 4242\ncommand camels-cli adapt (the first)\n").unwrap();
    let docs = stream(&dir, 2);
    camels(&["adapt", "--base", s(&tiny()), "--stream", s(&docs), "--preset", "tiny", "--out", s(&out)])
        .fails_with(&["in use by pid 4242", "the first"]);
    let config = meta_config(&dir, "max_doc_tokens = 48", "inner_lr = 1e-2");
    camels(&["meta-train", "--config", s(&config), "--out", s(&out)]).fails_with(&["in use by pid 4242"]);
    drop(lock);
    camels(&["adapt", "--base", s(&tiny()), "--stream", s(&docs), "--preset", "tiny", "--out", s(&out), "--json"])
        .succeeds();
}

// 3. A diverged run is not a result.

#[test]
fn a_diverged_adaptation_exits_nonzero_and_saves_no_model() {
    let dir = scratch("diverged");
    let docs = stream(&dir, 6);
    let out = dir.join("out");
    camels(&[
        "adapt",
        "--base",
        s(&tiny()),
        "--stream",
        s(&docs),
        "--preset",
        "tiny",
        "--lr",
        "1e9",
        "--save-model",
        "--out",
        s(&out),
    ])
    .fails_with(&["diverged", "documents had a non-finite loss", "1e9"]);
    assert!(!out.join("model").exists(), "a diverged model was written");
}

#[test]
fn an_infinite_inner_learning_rate_is_refused_by_validation() {
    let dir = scratch("inner-lr");
    let config = meta_config(&dir, "max_doc_tokens = 48", "inner_lr = inf");
    camels(&["meta-train", "--config", s(&config), "--out", s(&dir.join("run"))])
        .fails_with(&["inner.inner_lr", "positive and finite"]);
}

#[test]
fn a_non_finite_outer_loss_names_its_meta_step() {
    let dir = scratch("outer-nan");
    let config = meta_config(&dir, "max_doc_tokens = 48", "inner_lr = 1e30");
    camels(&["meta-train", "--config", s(&config), "--out", s(&dir.join("run"))])
        .fails_with(&["non-finite", "before meta-step 1"]);
}

// 4. Silent drops and quiet acceptance.

#[test]
fn skipped_records_are_counted_in_the_summary_and_the_printout() {
    let dir = scratch("skipped");
    let docs = stream(&dir, 3);
    let mut text = std::fs::read_to_string(&docs).unwrap();
    text.push_str("{\"id\": \"broken\", \"questions\": []}\n"); // no text: skipped
    std::fs::write(&docs, text).unwrap();
    let out = dir.join("out");
    let run = camels(&["adapt", "--base", s(&tiny()), "--stream", s(&docs), "--preset", "tiny", "--out", s(&out)]);
    run.succeeds();
    assert!(run.stdout.contains("1 of 4 records skipped"), "{}", run.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["inputs"][0]["skipped"], 1, "{summary}");
    assert!(summary["inputs"][0]["first_skipped"][0].as_str().unwrap().contains("line 4"), "{summary}");
}

#[test]
fn zero_generation_settings_are_refused() {
    let dir = scratch("zeros");
    let docs = stream(&dir, 2);
    for flag in ["--eval-batch", "--max-new-tokens", "--num-beams"] {
        let out = dir.join(flag.trim_start_matches('-'));
        camels(&["eval", "--base", s(&tiny()), "--stream", s(&docs), flag, "0", "--out", s(&out)])
            .fails_with(&[&format!("{flag} 0")]);
    }
}

#[test]
fn eval_prints_no_adaptation_rows() {
    let dir = scratch("eval-rows");
    let docs = stream(&dir, 2);
    let run = camels(&["eval", "--base", s(&tiny()), "--stream", s(&docs), "--out", s(&dir.join("out"))]);
    run.succeeds();
    assert!(!run.stdout.contains("lr "), "{}", run.stdout);
    assert!(!run.stdout.contains("documents skipped"), "{}", run.stdout);
}

#[test]
fn more_validation_documents_than_the_file_holds_are_warned_about() {
    let dir = scratch("val-docs");
    let config = meta_config(&dir, "max_doc_tokens = 48", "inner_lr = 1e-2");
    let text = std::fs::read_to_string(&config).unwrap().replace("val_docs = 2", "val_docs = 100");
    std::fs::write(&config, text).unwrap();
    let run = camels(&["meta-train", "--config", s(&config), "--out", s(&dir.join("run"))]);
    run.succeeds();
    assert!(run.stderr.contains("data.val_docs = 100 but the file has 8 documents"), "{}", run.stderr);
}

#[test]
fn info_checks_the_config_against_the_weights() {
    let dir = scratch("info");
    let huge = dir.join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap()).unwrap();
    config["n_positions"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(huge.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(tiny().join("model.safetensors"), huge.join("model.safetensors")).unwrap();
    camels(&["info", "--base", s(&huge)]).fails_with(&["n_positions", "implausibly large"]);

    config["n_positions"] = serde_json::json!(64);
    config["n_layer"] = serde_json::json!(3);
    std::fs::write(huge.join("config.json"), config.to_string()).unwrap();
    camels(&["info", "--base", s(&huge)]).fails_with(&["model.safetensors", "do not match the config"]);

    let ok = camels(&["info", "--base", s(&tiny())]);
    ok.succeeds();
    assert!(ok.stdout.contains("weights: "), "{}", ok.stdout);
}

#[test]
fn a_resumed_adaptation_with_another_config_names_the_field_before_evaluating() {
    let dir = scratch("resume-diff");
    let docs = stream(&dir, 4);
    let out = dir.join("out");
    let tiny = tiny();
    let base = ["adapt", "--base", s(&tiny), "--stream", s(&docs), "--preset", "tiny", "--out", s(&out)];
    let first = [&base[..], &["--checkpoint-every", "1", "--stop-after", "2", "--lr", "1e-3"]].concat();
    camels(&first).succeeds();
    let second = [&base[..], &["--checkpoint-every", "1", "--lr", "2e-3", "--eval-before", "--log", "info"]].concat();
    let run = camels(&second);
    run.fails_with(&["lr = 0.001 in the checkpoint, 0.002 now", "to start afresh"]);
    assert!(!run.stderr.contains("evaluating before adaptation"), "{}", run.stderr);
}

#[test]
fn errors_print_once_without_a_backtrace() {
    let run = camels(&["info", "--base", "/nonexistent/camels-model"]);
    run.fails_with(&["/nonexistent/camels-model"]);
    assert!(!run.stderr.contains("Stack backtrace"), "{}", run.stderr);
    assert_eq!(run.stderr.to_lowercase().matches("no such file").count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "ANSI colours in a redirected log: {}", run.stderr);
}
