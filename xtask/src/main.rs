//! Project automation (`cargo xtask <task>`): thin wrappers that shell out to cargo, camels-cli
//! and the fixture scripts. No burn dependency, so it compiles in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod uptake;

const USAGE: &str = "usage: cargo xtask <task> [args]

tasks:
  bench [--quick]        forward+backward tokens/s and QA generation questions/s (camels-cli bench,
                         release) next to PyTorch when python3 with torch is available; writes
                         bench/results/*.json and the tables fwd_bwd.md, generate.md
  fixtures [--python P]  regenerate fixtures/ with PyTorch + transformers (see fixtures/README.md)
  check-saved DIR        check that an HF directory written by camels opens in transformers
  gpu-check [--out DIR] [--pack-only]
                         build the release CLI with cuda+wgpu, pack it as gpu/camels-cli.gz and, where
                         nvidia-smi works, run bench/gpu-check.sh (parity checks + GPU benchmarks, JSONL)
  gpu-table FILE         print the markdown table of a gpu-check results.jsonl
  train --config FILE [--set k=v]... [--device D] [--out DIR]
                         meta-train (camels-cli meta-train, release); --out defaults to runs/<config stem>
  demo [--release] [--out DIR] [--set k=v]... [--device D]
                         the end-to-end demo from nothing (camels-cli demo): synthetic world, tokenizer,
                         two base LMs, CaMeLS, adaptation with every strategy, results.{json,md} and
                         report.html; dev profile unless --release; --out defaults to runs/demo-e2e
  demo --real [--out DIR] [--dev]
                         the real-model demo (~15 min on 2 cores after the build): the committed
                         CaMeLS weighting model (models/camels-smollm2) and uniform on 24 test-stream
                         documents of SmolLM2-135M QA-tuned for 20 steps, with their table
  uptake [--out DIR] [--base GGUF] [--config FILE] [--set k=v]... [--lrs A,B] [--sweep-docs N]
         [--test-docs N] [--until STAGE] [--strategies A,B] [--weighting DIR] [--lr A=X,B=Y]
         [--qa-steps N] [--dev]
                         the whole pipeline on a real base (SmolLM2-135M from $CAMELS_MODELS_DIR by
                         default): data → qa-tune → meta → sweep → test → compare, each stage timed and
                         resumed after a kill (rerun the same command); release build unless --dev;
                         --out defaults to runs/smollm2, the table lands in OUT/compare.md";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        println!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    if !check_args(task, rest)? {
        println!("{USAGE}");
        return Ok(());
    }
    match task.as_str() {
        "bench" => bench(rest),
        "fixtures" => fixtures(rest),
        "check-saved" => {
            let dir = rest.first().context("check-saved needs a directory")?;
            run(Command::new(python(rest)).arg("fixtures/gen/check_saved.py").arg(dir))
        }
        "gpu-check" => gpu_check(rest),
        "gpu-table" => {
            let file = rest.first().context("gpu-table needs a results.jsonl")?;
            println!("{}", gpu_table(Path::new(file))?);
            Ok(())
        }
        "train" => train(rest),
        "demo" => demo(rest),
        "uptake" => uptake::uptake(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The flags a task takes: (flags followed by a value, switches, positional arguments). `None`: the
/// task forwards its arguments to `camels-cli`, whose parser checks them.
fn task_flags(task: &str, args: &[String]) -> Option<(&'static [&'static str], &'static [&'static str], usize)> {
    Some(match task {
        "bench" => (&["--python"], &["--quick"], 0),
        "fixtures" => (&["--python"], &[], 0),
        "check-saved" => (&["--python"], &[], 1),
        "gpu-check" => (&["--out"], &["--pack-only"], 0),
        "gpu-table" => (&[], &[], 1),
        "uptake" => (uptake::VALUED, &["--dev"], 0),
        "demo" if args.iter().any(|a| a == "--real") => (uptake::VALUED, &["--real", "--dev"], 0),
        _ => return None,
    })
}

/// Checks a task's arguments before anything runs: `Ok(false)` when they ask for help (`--help`,
/// `-h`); an error naming the flag when one is unknown or lacks its value, or when there are too
/// many positional arguments.
fn check_args(task: &str, args: &[String]) -> Result<bool> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(false);
    }
    let Some((valued, switches, positional)) = task_flags(task, args) else {
        return Ok(true);
    };
    let mut given = 0;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if valued.contains(&arg) {
            match args.get(i + 1) {
                Some(v) if !v.starts_with("--") => i += 1,
                _ => bail!("{task}: {arg} needs a value (see `cargo xtask help`)"),
            }
        } else if arg.starts_with('-') && !switches.contains(&arg) {
            bail!("{task}: unknown flag `{arg}` (see `cargo xtask help`)");
        } else if !arg.starts_with('-') {
            given += 1;
            if given > positional {
                bail!("{task}: unexpected argument `{arg}` (see `cargo xtask help`)");
            }
        }
        i += 1;
    }
    Ok(true)
}

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` in the workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"))
}

/// `--python P`, or `python3`.
fn python(args: &[String]) -> String {
    args.iter().position(|a| a == "--python").and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| "python3".into())
}

pub(crate) fn run(command: &mut Command) -> Result<()> {
    command.current_dir(root());
    eprintln!("xtask: running {command:?}");
    let status = command.status().with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn fixtures(args: &[String]) -> Result<()> {
    let py = python(args);
    // The order of fixtures/README.md: tiny_gpt2.py and tiny_llama.py before the scripts that load them;
    // smollm2*.py read ../shared/models (or $CAMELS_MODELS_DIR).
    for script in [
        "tiny_gpt2.py",
        "gpt2_tokenizer.py",
        "meta.py",
        "adapt.py",
        "adafactor.py",
        "tfidf.py",
        "squad_eval.py",
        "tiny_llama.py",
        "meta_llama.py",
        "gguf_quants.py",
        "smollm2_gguf.py",
        "smollm2.py",
    ] {
        run(Command::new(&py).arg(format!("fixtures/gen/{script}")))?;
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let out = root().join("bench/results");
    std::fs::create_dir_all(&out)?;
    let presets: &[&str] = if quick { &["tiny"] } else { &["distilgpt2", "gpt2"] };
    let (seq, iters) = if quick { ("64", "3") } else { ("1024", "3") };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let py = python(args);
    // Runs one camels benchmark and its PyTorch baseline (when python3 has torch); their JSON.
    let pair = |name: &str, preset: &str, ours_args: &[&str], torch_args: &[&str]| -> Result<_> {
        let ours = out.join(format!("{name}_{preset}_camels.json"));
        run(cargo()
            .args(["run", "--release", "-p", "camels-cli", "--", "bench"])
            .args(ours_args)
            .args(["--preset", preset, "--iters", iters, "--json"])
            .arg(&ours)
            .env("RAYON_NUM_THREADS", &threads))?;
        let torch = out.join(format!("{name}_{preset}_pytorch.json"));
        let baseline = run(Command::new(&py)
            .arg("bench/torch_fwd_bwd.py")
            .args(torch_args)
            .args(["--preset", preset, "--iters", iters, "--threads", &threads, "--json"])
            .arg(&torch));
        if let Err(e) = &baseline {
            eprintln!("xtask: no PyTorch baseline for {name} ({e}); install torch + transformers or pass --python");
        }
        Ok((read_json(&ours)?, baseline.ok().map(|_| read_json(&torch)).transpose()?))
    };
    let mut rows = Vec::new();
    for preset in presets {
        let (ours, torch) = pair("fwd_bwd", preset, &["forward-backward", "--seq", seq], &["--seq", seq])?;
        rows.push(fwd_bwd_row(preset, seq, &threads, &ours, torch.as_ref()));
    }
    let table = format!(
        "| model | B×T | threads | camels s/step | camels tok/s | PyTorch s/step | PyTorch tok/s | ratio |\n|---|---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    println!("{table}");
    std::fs::write(out.join("fwd_bwd.md"), &table)?;

    // QA answer generation: 16 prompts of 24 tokens, 16 new tokens each, greedy, KV cache.
    let mut rows = Vec::new();
    for preset in presets {
        let ours_args = ["generate", "--batch", "16", "--prompt-len", "24", "--new-tokens", "16"];
        let torch_args = ["--bench", "generate", "--batch", "16", "--seq", "24", "--new-tokens", "16"];
        let (ours, torch) = pair("generate", preset, &ours_args, &torch_args)?;
        let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
        let (tq, ratio) = match &torch {
            Some(t) => (
                format!("{:.2}", f(t, "questions_per_second")),
                format!("{:.2}×", f(&ours, "questions_per_second") / f(t, "questions_per_second")),
            ),
            None => ("–".into(), "–".into()),
        };
        rows.push(format!(
            "| {preset} | 16 × (24 + 16) | {threads} | {:.2} | {:.2} | {tq} | {ratio} |",
            f(&ours, "median_seconds"),
            f(&ours, "questions_per_second")
        ));
    }
    let table = format!(
        "| model | questions × (prompt + new tokens) | threads | camels s/batch | camels questions/s | PyTorch questions/s | ratio |\n|---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    println!("{table}");
    std::fs::write(out.join("generate.md"), &table)?;
    Ok(())
}

fn train(args: &[String]) -> Result<()> {
    let config =
        args.iter().position(|a| a == "--config").and_then(|i| args.get(i + 1)).context("train needs --config FILE")?;
    let mut forwarded = args.to_vec();
    if !args.iter().any(|a| a == "--out") {
        let stem = Path::new(config).file_stem().and_then(|s| s.to_str()).unwrap_or("run");
        forwarded.extend(["--out".to_string(), format!("runs/{stem}")]);
    }
    run(cargo().args(["run", "--release", "-p", "camels-cli", "--", "meta-train"]).args(&forwarded))
}

fn demo(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--real") {
        let rest: Vec<String> = args.iter().filter(|a| *a != "--real").cloned().collect();
        return uptake::demo_real(&rest);
    }
    // The dev profile optimises burn too (see Cargo.toml) and builds in minutes where a cold release
    // build of the CLI takes about 25 on 2 cores.
    let release = args.iter().any(|a| a == "--release");
    let mut forwarded: Vec<String> = args.iter().filter(|a| *a != "--release").cloned().collect();
    if !forwarded.iter().any(|a| a == "--out") {
        forwarded.extend(["--out".to_string(), "runs/demo-e2e".to_string()]);
    }
    let mut command = cargo();
    command.args(["run", "-p", "camels-cli"]);
    if release {
        command.arg("--release");
    }
    run(command.args(["--", "demo"]).args(&forwarded))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn fwd_bwd_row(
    preset: &str,
    seq: &str,
    threads: &str,
    ours: &serde_json::Value,
    torch: Option<&serde_json::Value>,
) -> String {
    let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let (ts, tt, ratio) = match torch {
        Some(t) => (
            format!("{:.2}", f(t, "median_seconds")),
            format!("{:.0}", f(t, "tokens_per_second")),
            format!("{:.2}×", f(ours, "tokens_per_second") / f(t, "tokens_per_second")),
        ),
        None => ("–".into(), "–".into(), "–".into()),
    };
    format!(
        "| {preset} | 1×{seq} | {threads} | {:.2} | {:.0} | {ts} | {tt} | {ratio} |",
        f(ours, "median_seconds"),
        f(ours, "tokens_per_second")
    )
}

/// Builds and packs the GPU binary; runs the check where a GPU is present.
fn gpu_check(args: &[String]) -> Result<()> {
    let pack_only = args.iter().any(|a| a == "--pack-only");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| root().join("gpu/out"), PathBuf::from);
    // cudarc binds to a CUDA version at build time; 13.0 matches driver 580 and needs no toolkit here.
    let cuda_version = std::env::var("CUDARC_CUDA_VERSION").unwrap_or_else(|_| "13000".into());
    run(cargo()
        .args(["build", "--release", "-p", "camels-cli", "--features", "cuda,wgpu"])
        .env("CUDARC_CUDA_VERSION", &cuda_version))?;
    let dir = root().join("gpu");
    std::fs::create_dir_all(&dir)?;
    let binary = dir.join("camels-cli");
    std::fs::copy(target_dir().join("release/camels-cli"), &binary).context("copying the release binary")?;
    // Stripped and compressed it travels in ~15 MB; both tools are optional.
    let _ = Command::new("strip").arg(&binary).status();
    let packed = dir.join("camels-cli.gz");
    let gz = std::fs::File::create(&packed)?;
    let status = Command::new("gzip").args(["-6", "-c"]).arg(&binary).stdout(gz).status().context("running gzip")?;
    if !status.success() {
        bail!("gzip failed with {status}");
    }
    eprintln!("xtask: packed {} ({} bytes)", packed.display(), std::fs::metadata(&packed)?.len());
    let has_gpu = Command::new("nvidia-smi").arg("-L").output().is_ok_and(|o| o.status.success());
    if pack_only || !has_gpu {
        eprintln!(
            "xtask: no GPU here (or --pack-only); on the GPU machine, from the repository root:\n  \
             bash bench/gpu-check.sh gpu/camels-cli.gz OUT_DIR\nthen `cargo xtask gpu-table OUT_DIR/results.jsonl`"
        );
        return Ok(());
    }
    run(Command::new("bash").arg("bench/gpu-check.sh").arg(&packed).arg(&out))?;
    println!("{}", gpu_table(&out.join("results.jsonl"))?);
    Ok(())
}

/// A markdown table of a gpu-check `results.jsonl`: one row per check or benchmark.
fn gpu_table(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut rows = vec![
        "| run | GPU | exit | wall s | warm-up s | median s | tokens/s (or questions/s) | peak GPU MiB | checks |"
            .to_string(),
        "|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: line {}", file.display(), i + 1))?;
        let r = &v["result"];
        let num =
            |x: &serde_json::Value, digits: usize| x.as_f64().map_or("–".to_string(), |f| format!("{f:.digits$}"));
        let checks = r["checks"].as_array().map_or("–".to_string(), |c| {
            let passed = c.iter().filter(|c| c["pass"].as_bool() == Some(true)).count();
            format!("{passed}/{} pass", c.len())
        });
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v["name"].as_str().unwrap_or("?"),
            v["gpu"].as_str().unwrap_or("?").split(',').next().unwrap_or("?"),
            v["rc"],
            num(&v["wall_seconds"], 1),
            num(&r["warmup_seconds"], 2),
            num(&r["median_seconds"], 4),
            match r["questions_per_second"].as_f64() {
                Some(q) => format!("{q:.1} questions/s"),
                None => num(&r["tokens_per_second"], 0),
            },
            v["peak_gpu_mib"],
            checks,
        ));
    }
    Ok(rows.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::check_args;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn help_is_asked_for_anywhere() {
        assert!(!check_args("uptake", &args(&["--help"])).unwrap());
        assert!(!check_args("uptake", &args(&["--until", "sweep", "-h"])).unwrap());
        assert!(!check_args("train", &args(&["--help"])).unwrap());
    }

    #[test]
    fn known_flags_pass_and_unknown_ones_are_named() {
        assert!(check_args("uptake", &args(&["--strategies", "uniform,camels", "--dev", "--set", "a=1"])).unwrap());
        assert!(check_args("demo", &args(&["--real", "--out", "x"])).unwrap());
        let err = check_args("uptake", &args(&["--stratgies", "uniform"])).unwrap_err().to_string();
        assert!(err.contains("unknown flag `--stratgies`"), "{err}");
        let err = check_args("uptake", &args(&["--until"])).unwrap_err().to_string();
        assert!(err.contains("--until needs a value"), "{err}");
        let err = check_args("gpu-table", &args(&["a.jsonl", "b.jsonl"])).unwrap_err().to_string();
        assert!(err.contains("unexpected argument `b.jsonl`"), "{err}");
        // Tasks that forward to camels-cli leave their flags to its parser.
        assert!(check_args("demo", &args(&["--set", "test_docs=10"])).unwrap());
    }
}
