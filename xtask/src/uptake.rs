//! `cargo xtask uptake`: the paper's whole pipeline on a real base LM (SmolLM2-135M by default), as
//! stages that each run `camels-cli` and resume after a kill.
//!
//! ```text
//! data      dev articles 0..24 / 24..30 / 30..36 → meta-train, validation and test streams (JSONL)
//! qa-tune   the base on the train prefix's question–answer pairs, the best of 40 steps kept
//! meta      CaMeLS meta-training (configs/smollm2.toml), resumed from its last checkpoint
//! sweep     every strategy × learning rate on a validation sample; the best lr by F1 per strategy
//! test      every strategy at its lr on the whole test stream (uniform with --eval-before and
//!           --save-model, the others share its before-columns), then uniform + QA-tune
//! compare   bootstrap intervals, ratios to uniform, retention: OUT/compare.{md,json}
//! ```
//!
//! `--weighting DIR` uses a trained weighting model instead of the meta stage, `--lr NAME=LR,…`
//! fixed learning rates instead of the sweep, and `--strategies` a subset (uniform always): the
//! real-model demo (`cargo xtask demo --real`) is such a call.
//!
//! A stage is done when `OUT/stages/NAME.json` exists (its wall time, summed over the sessions that
//! ran it, is in there); a run inside a stage is done when its directory holds `summary.json`, and
//! `adapt` and `meta-train` runs resume from their checkpoints. Rerunning the command after a kill
//! continues where it stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, root};

/// The pipeline's settings, from the command line.
struct Uptake {
    /// The `camels-cli` binary.
    cli: PathBuf,
    /// Output directory.
    out: PathBuf,
    /// The base checkpoint (GGUF or HF directory).
    base: PathBuf,
    /// Whether `--base` was given (else the config's `weighting.init_from` names the same file).
    base_given: bool,
    /// The folder holding the SmolLM2 GGUF file.
    models: PathBuf,
    /// The folder holding `squad_v1.1/` and `openwebtext_sample/`.
    data: PathBuf,
    /// Meta-training config.
    config: PathBuf,
    /// `--set` overrides for meta-training.
    meta_sets: Vec<String>,
    /// Learning rates of the sweep.
    lrs: Vec<String>,
    /// Validation documents of the sweep (a seeded sample).
    sweep_docs: usize,
    /// Test documents (0: the whole test stream).
    test_docs: usize,
    /// Stop after this stage.
    until: Option<String>,
    /// The strategies run (names of [`ALL_STRATEGIES`]).
    strategies: Vec<String>,
    /// A trained weighting model to use instead of meta-training one.
    weighting: Option<PathBuf>,
    /// Fixed learning rates per strategy, instead of the sweep's.
    fixed_lrs: Vec<(String, String)>,
    /// QA-tuning steps (validated at half and at the end).
    qa_steps: usize,
}

/// The strategies `--strategies` chooses from; `uniform` is the baseline and always runs.
pub const ALL_STRATEGIES: [&str; 6] = ["uniform", "tfidf", "salient", "camels", "answers", "uniform+qa-tune"];

/// The flags of `uptake` (and `demo --real`) that take a value.
pub const VALUED: &[&str] = &[
    "--out",
    "--base",
    "--config",
    "--set",
    "--lrs",
    "--sweep-docs",
    "--test-docs",
    "--until",
    "--strategies",
    "--weighting",
    "--lr",
    "--qa-steps",
];

const STAGES: [&str; 6] = ["data", "qa-tune", "meta", "sweep", "test", "compare"];

fn value(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

fn values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect()
}

pub fn uptake(args: &[String]) -> Result<()> {
    let release = !args.iter().any(|a| a == "--dev");
    // Paths on the command line are relative to where the command was run; the shared folders
    // default to ../shared beside the checkout, as in the README.
    let cwd = std::env::current_dir()?;
    let path = |p: String| cwd.join(p);
    let shared =
        |var: &str, sub: &str| std::env::var(var).map(path).unwrap_or_else(|_| root().join("../shared").join(sub));
    let (models, data) = (shared("CAMELS_MODELS_DIR", "models"), shared("CAMELS_DATA_DIR", "data"));
    let mut build = cargo();
    build.args(["build", "-p", "camels-cli"]);
    if release {
        build.arg("--release");
    }
    crate::run(&mut build)?;
    let cli = crate::target_dir().join(if release { "release" } else { "debug" }).join("camels-cli");
    let uptake = Uptake {
        cli,
        out: value(args, "--out").map(path).unwrap_or_else(|| root().join("runs/smollm2")),
        base: value(args, "--base").map(path).unwrap_or_else(|| models.join("SmolLM2-135M-Instruct.Q4_1.gguf")),
        base_given: value(args, "--base").is_some(),
        models,
        data,
        config: value(args, "--config").map(path).unwrap_or_else(|| root().join("configs/smollm2.toml")),
        meta_sets: values(args, "--set"),
        lrs: value(args, "--lrs").unwrap_or_else(|| "1e-5,3e-5".into()).split(',').map(String::from).collect(),
        sweep_docs: value(args, "--sweep-docs").map(|v| v.parse()).transpose()?.unwrap_or(40),
        test_docs: value(args, "--test-docs").map(|v| v.parse()).transpose()?.unwrap_or(0),
        until: value(args, "--until"),
        strategies: match value(args, "--strategies") {
            Some(list) => list.split(',').map(String::from).collect(),
            None => ALL_STRATEGIES.iter().map(|s| s.to_string()).collect(),
        },
        weighting: value(args, "--weighting").map(path),
        fixed_lrs: match value(args, "--lr") {
            Some(list) => list
                .split(',')
                .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("--lr {list}: expected NAME=LR,NAME=LR"))?,
            None => Vec::new(),
        },
        qa_steps: value(args, "--qa-steps").map(|v| v.parse()).transpose()?.unwrap_or(40),
    };
    for name in &uptake.strategies {
        if !ALL_STRATEGIES.contains(&name.as_str()) {
            bail!("--strategies: unknown `{name}`; one of {}", ALL_STRATEGIES.join(", "));
        }
    }
    if !uptake.strategies.iter().any(|s| s == "uniform") {
        bail!("--strategies must include uniform: the baseline every other strategy is compared with");
    }
    if !uptake.fixed_lrs.is_empty() {
        for name in uptake.adapted() {
            if !uptake.fixed_lrs.iter().any(|(k, _)| *k == name) {
                bail!("--lr names no learning rate for `{name}`");
            }
        }
    }
    if let Some(until) = &uptake.until
        && !STAGES.contains(&until.as_str())
    {
        bail!("--until {until}: one of {}", STAGES.join(", "));
    }
    std::fs::create_dir_all(uptake.out.join("stages"))?;
    let started = Instant::now();
    for stage in STAGES {
        uptake.stage(stage)?;
        if uptake.until.as_deref() == Some(stage) {
            break;
        }
    }
    eprintln!(
        "uptake: {:.1} min in this call; stage times in {}",
        started.elapsed().as_secs_f64() / 60.0,
        uptake.stages_table()?
    );
    Ok(())
}

impl Uptake {
    /// The strategies adapted with their own weights (name, `--weights` value): all but
    /// `uniform+qa-tune`, which re-tunes uniform's model.
    fn adapted(&self) -> Vec<String> {
        self.strategies.iter().filter(|s| *s != "uniform+qa-tune").cloned().collect()
    }

    fn weights_of(&self, name: &str) -> String {
        match name {
            "camels" => format!("camels:{}", self.weighting.clone().unwrap_or_else(|| self.meta_dir()).display()),
            "tfidf" | "salient" | "answers" | "uniform" => name.to_string(),
            other => unreachable!("checked against ALL_STRATEGIES: {other}"),
        }
    }

    fn marker(&self, stage: &str) -> PathBuf {
        self.out.join("stages").join(format!("{stage}.json"))
    }

    /// Seconds spent in `stage` by earlier, interrupted calls (kept in `stages/NAME.partial`).
    fn partial_seconds(&self, stage: &str) -> f64 {
        std::fs::read_to_string(self.out.join("stages").join(format!("{stage}.partial")))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn stage(&self, stage: &str) -> Result<()> {
        let skipped = match stage {
            "meta" if self.weighting.is_some() => Some("--weighting names a trained model"),
            "meta" if !self.strategies.iter().any(|s| s == "camels") => Some("no camels strategy"),
            "sweep" if !self.fixed_lrs.is_empty() => Some("--lr fixes the learning rates"),
            _ => None,
        };
        if let Some(reason) = skipped {
            eprintln!("uptake: stage {stage} skipped ({reason})");
            return Ok(());
        }
        if self.marker(stage).exists() {
            eprintln!("uptake: stage {stage} done earlier ({})", self.marker(stage).display());
            return Ok(());
        }
        eprintln!("uptake: stage {stage}");
        let started = Instant::now();
        let before = self.partial_seconds(stage);
        let partial = self.out.join("stages").join(format!("{stage}.partial"));
        // The wall time so far is written every 30 s, so that a kill loses at most that much of it.
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut ticks = 0u32;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    ticks += 1;
                    if ticks.is_multiple_of(60) {
                        let _ = std::fs::write(&partial, format!("{}", before + started.elapsed().as_secs_f64()));
                    }
                }
            });
            let result = match stage {
                "data" => self.data(),
                "qa-tune" => self.qa_tune(),
                "meta" => self.meta(),
                "sweep" => self.sweep(),
                "test" => self.test(),
                "compare" => self.compare(),
                _ => unreachable!("the stages are listed above"),
            };
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            result
        });
        let seconds = before + started.elapsed().as_secs_f64();
        if let Err(e) = result {
            std::fs::write(&partial, format!("{seconds}"))?;
            return Err(e.context(format!("stage {stage} (rerun the same command to resume it)")));
        }
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let marker = serde_json::json!({"stage": stage, "seconds": seconds, "threads": threads});
        std::fs::write(self.marker(stage), serde_json::to_string_pretty(&marker)?)?;
        let _ = std::fs::remove_file(&partial);
        eprintln!("uptake: stage {stage} took {:.1} min", seconds / 60.0);
        Ok(())
    }

    /// A markdown table of the stage times so far, written to OUT/stages.md; returns its path.
    fn stages_table(&self) -> Result<String> {
        let mut table = String::from("| stage | wall time (min) |\n|---|---:|\n");
        let mut total = 0.0;
        for stage in STAGES {
            let seconds = match std::fs::read_to_string(self.marker(stage)) {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text)?["seconds"].as_f64().unwrap_or(f64::NAN),
                Err(_) => continue,
            };
            total += seconds;
            table.push_str(&format!("| {stage} | {:.1} |\n", seconds / 60.0));
        }
        table.push_str(&format!("| total | {:.1} |\n", total / 60.0));
        let path = self.out.join("stages.md");
        std::fs::write(&path, &table)?;
        Ok(path.display().to_string())
    }

    fn cli(&self) -> Command {
        let mut command = Command::new(&self.cli);
        command.env("CAMELS_DATA_DIR", &self.data).env("CAMELS_MODELS_DIR", &self.models);
        command
    }

    fn squad(&self, file: &str) -> PathBuf {
        self.data.join("squad_v1.1").join(file)
    }

    fn data(&self) -> Result<()> {
        for (name, range) in [("metatrain", "0..24"), ("val", "24..30"), ("test", "30..36")] {
            let out = self.out.join("data").join(format!("{name}.jsonl"));
            crate::run(
                self.cli()
                    .args(["data", "select"])
                    .arg(self.squad("dev-v1.1-articles-00-35.json"))
                    .args(["--articles", range, "--out"])
                    .arg(&out),
            )?;
        }
        Ok(())
    }

    fn qa_tuned(&self) -> PathBuf {
        self.out.join("qa-tuned")
    }

    fn qa_tune(&self) -> Result<()> {
        self.qa_tune_from(&self.base, &self.qa_tuned())
    }

    /// QA-tunes `base` on the train prefix's pairs into `out` (unless done): `qa_steps` steps,
    /// validated at half and at the end on the first 64 questions of the meta-training articles
    /// (never the test stream's), the best kept.
    fn qa_tune_from(&self, base: &Path, out: &Path) -> Result<()> {
        if out.join("qa_tune.json").exists() {
            return Ok(());
        }
        let (steps, every) = (self.qa_steps, (self.qa_steps / 2).max(1));
        crate::run(
            self.cli()
                .args(["qa-tune", "--base"])
                .arg(base)
                .arg("--train")
                .arg(self.squad("train-v1.1-prefix.json"))
                .arg("--val")
                .arg(self.out.join("data/metatrain.jsonl"))
                .args(["--set", &format!("max_steps={steps}"), "--set", &format!("val_every={every}")])
                .args(["--set", "val_questions=64", "--out"])
                .arg(out),
        )
    }

    fn meta_dir(&self) -> PathBuf {
        self.out.join("meta")
    }

    fn meta(&self) -> Result<()> {
        let mut command = self.cli();
        command.args(["meta-train", "--config"]).arg(&self.config);
        // Paths inside the checkout are given relative to it (camels-cli runs there), so that the
        // run's config.toml does not depend on where the checkout lives; the trunk's source stays
        // the config's `$CAMELS_MODELS_DIR/…` unless --base names another file.
        let mut paths = vec![
            format!("base.path={}", relative(&self.qa_tuned()).display()),
            format!("data.train={}", relative(&self.out.join("data/metatrain.jsonl")).display()),
            format!("data.val={}", relative(&self.out.join("data/val.jsonl")).display()),
        ];
        if self.base_given {
            paths.push(format!("weighting.init_from={}", relative(&self.base).display()));
        }
        for set in paths.iter().chain(&self.meta_sets) {
            command.args(["--set", set]);
        }
        crate::run(command.arg("--out").arg(self.meta_dir()))
    }

    /// One `adapt` run into `dir` unless it finished before (`summary.json`); resumes otherwise.
    fn adapt(
        &self,
        dir: &Path,
        stream: &Path,
        weights: &str,
        lr: &str,
        docs: Option<usize>,
        extra: &[&str],
    ) -> Result<()> {
        if dir.join("summary.json").exists() {
            return Ok(());
        }
        let mut command = self.cli();
        command
            .args(["adapt", "--base"])
            .arg(self.qa_tuned())
            .arg("--stream")
            .arg(stream)
            .args(["--weights", weights, "--lr", lr, "--nll-without-eos", "--checkpoint-every", "40", "--json"])
            .args(extra)
            .arg("--out")
            .arg(dir);
        if let Some(n) = docs {
            command.args(["--n-docs", &n.to_string(), "--sample", "--seed", "0"]);
        }
        // The summary `--json` prints, beside the run directory.
        let log = std::fs::File::create(format!("{}.summary.json", dir.display()))?;
        command.stdout(log);
        crate::run(&mut command)
    }

    fn sweep_dir(&self, name: &str, lr: &str) -> PathBuf {
        self.out.join("sweep").join(format!("{name}-{lr}"))
    }

    fn sweep(&self) -> Result<()> {
        std::fs::create_dir_all(self.out.join("sweep"))?;
        let stream = self.out.join("data/val.jsonl");
        for (i, lr) in self.lrs.iter().enumerate() {
            for name in self.adapted() {
                // The first uniform run carries the before-columns every other run is compared with.
                let extra: &[&str] = if name == "uniform" && i == 0 { &["--eval-before"] } else { &[] };
                let weights = self.weights_of(&name);
                self.adapt(&self.sweep_dir(&name, lr), &stream, &weights, lr, Some(self.sweep_docs), extra)?;
            }
        }
        let baseline = format!("uniform-{}", self.lrs[0]);
        let mut command = self.cli();
        command.arg("compare");
        for lr in &self.lrs {
            for name in self.adapted() {
                command.arg("--run").arg(format!("{name}-{lr}={}", self.sweep_dir(&name, lr).display()));
            }
        }
        crate::run(command.args(["--baseline", &baseline, "--out"]).arg(self.out.join("sweep/compare.json")))?;
        let best = self.best_lrs()?;
        std::fs::write(self.out.join("sweep/best.json"), serde_json::to_string_pretty(&best)?)?;
        Ok(())
    }

    /// Each strategy's learning rate with the highest F1 on the validation sample (ties: the larger
    /// answer-NLL gain), read from the sweep's compare.json.
    fn best_lrs(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        if !self.fixed_lrs.is_empty() {
            return Ok(self.fixed_lrs.iter().map(|(k, v)| (k.clone(), serde_json::json!({"lr": v}))).collect());
        }
        let path = self.out.join("sweep/compare.json");
        let compare: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        let runs = compare["runs"].as_array().with_context(|| format!("{}: no `runs` array", path.display()))?;
        let mut best = serde_json::Map::new();
        for name in self.adapted() {
            let mut chosen: Option<(f64, f64, String)> = None;
            for lr in &self.lrs {
                let run_name = format!("{name}-{lr}");
                let run = runs
                    .iter()
                    .find(|r| r["name"] == run_name.as_str())
                    .with_context(|| format!("{}: no run `{run_name}`", path.display()))?;
                let f1 =
                    run["f1"]["estimate"].as_f64().with_context(|| format!("{}: {run_name}.f1", path.display()))?;
                let nll = run["nll_gain"]["estimate"].as_f64().unwrap_or(f64::NEG_INFINITY);
                if chosen.as_ref().is_none_or(|(f, n, _)| f1 > *f || (f1 == *f && nll > *n)) {
                    chosen = Some((f1, nll, lr.clone()));
                }
            }
            let (f1, nll, lr) = chosen.expect("at least one learning rate");
            best.insert(name, serde_json::json!({"lr": lr, "f1": f1, "nll_gain": nll}));
        }
        Ok(best)
    }

    fn test_dir(&self, name: &str) -> PathBuf {
        self.out.join("test").join(name)
    }

    fn test(&self) -> Result<()> {
        std::fs::create_dir_all(self.out.join("test"))?;
        let best = self.best_lrs()?;
        let stream = self.out.join("data/test.jsonl");
        let unrelated = self.data.join("wikitext2/wiki.test.raw");
        let docs = (self.test_docs > 0).then_some(self.test_docs);
        for name in self.adapted() {
            let weights = self.weights_of(&name);
            let lr = best[&name]["lr"].as_str().context("sweep/best.json: lr")?.to_string();
            let unrelated = unrelated.display().to_string();
            let mut extra = vec!["--unrelated", unrelated.as_str()];
            if name == "uniform" {
                extra.push("--eval-before");
                if self.strategies.iter().any(|s| s == "uniform+qa-tune") {
                    extra.push("--save-model");
                }
            }
            self.adapt(&self.test_dir(&name), &stream, &weights, &lr, docs, &extra)?;
        }
        if !self.strategies.iter().any(|s| s == "uniform+qa-tune") {
            return Ok(());
        }
        // Uniform, then QA-tuning of the adapted model on the train prefix, then the test questions.
        let retuned = self.out.join("test/uniform-qa-tuned");
        self.qa_tune_from(&self.test_dir("uniform").join("model"), &retuned)?;
        let eval_dir = self.test_dir("uniform+qa-tune");
        if !eval_dir.join("summary.json").exists() {
            let mut command = self.cli();
            command.args(["eval", "--base"]).arg(&retuned).arg("--stream").arg(&stream);
            if let Some(n) = docs {
                command.args(["--n-docs", &n.to_string(), "--sample", "--seed", "0"]);
            }
            crate::run(command.args(["--nll-without-eos", "--unrelated"]).arg(&unrelated).arg("--out").arg(&eval_dir))?;
        }
        Ok(())
    }

    fn compare(&self) -> Result<()> {
        let mut command = self.cli();
        command.arg("compare");
        for name in &self.strategies {
            command.arg("--run").arg(format!("{name}={}", self.test_dir(name).display()));
        }
        let output = command
            .args(["--baseline", "uniform", "--out"])
            .arg(self.out.join("compare.json"))
            .current_dir(root())
            .output()
            .context("running camels-cli compare")?;
        if !output.status.success() {
            bail!("camels-cli compare failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("uptake: the table is in {}", self.out.join("compare.md").display());
        if self.strategies.iter().any(|s| s == "camels") {
            eprintln!("uptake: learned vs oracle weights in {}", self.test_dir("camels").join("report.html").display());
        }
        Ok(())
    }
}

/// `path` relative to the checkout when it lies inside it.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(root()).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
}

/// The committed weighting model (trained by `cargo xtask uptake`, see its README.md).
pub const COMMITTED: &str = "models/camels-smollm2";

/// `cargo xtask demo --real`: the committed weighting model and uniform on a 24-document sample of
/// the test stream, at the learning rates the model's sweep chose, on a base QA-tuned for 20 steps.
pub fn demo_real(args: &[String]) -> Result<()> {
    let lrs_path = root().join(COMMITTED).join("lrs.json");
    let lrs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&lrs_path).with_context(|| format!("reading {}", lrs_path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", lrs_path.display()))?;
    let lr = |name: &str| {
        lrs[name]["lr"].as_str().map(String::from).with_context(|| format!("{}: no {name}.lr", lrs_path.display()))
    };
    let mut forwarded: Vec<String> = [
        "--weighting",
        &root().join(COMMITTED).display().to_string(),
        "--strategies",
        "uniform,camels",
        "--lr",
        &format!("uniform={},camels={}", lr("uniform")?, lr("camels")?),
        "--qa-steps",
        "20",
        "--test-docs",
        "24",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if value(args, "--out").is_none() {
        forwarded.extend(["--out".to_string(), root().join("runs/demo-real").display().to_string()]);
    }
    forwarded.extend(args.iter().cloned());
    uptake(&forwarded)
}
