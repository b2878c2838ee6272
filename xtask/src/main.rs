//! Project automation (`cargo xtask <task>`): thin wrappers that shell out to cargo, camels-cli
//! and the fixture scripts. No burn dependency, so it compiles in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <task> [args]

tasks:
  bench [--quick]        forward+backward tokens/s (camels-cli bench, release) next to PyTorch when
                         python3 with torch is available; writes bench/*.json and prints the table
  fixtures [--python P]  regenerate fixtures/ with PyTorch + transformers (see fixtures/README.md)
  check-saved DIR        check that an HF directory written by camels opens in transformers
  train --config FILE [--set k=v]... [--device D] [--out DIR]
                         meta-train (camels-cli meta-train, release); --out defaults to runs/<config stem>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        println!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match task.as_str() {
        "bench" => bench(rest),
        "fixtures" => fixtures(rest),
        "check-saved" => {
            let dir = rest.first().context("check-saved needs a directory")?;
            run(Command::new(python(rest)).arg("fixtures/gen/check_saved.py").arg(dir))
        }
        "train" => train(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// `--python P`, or `python3`.
fn python(args: &[String]) -> String {
    args.iter().position(|a| a == "--python").and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| "python3".into())
}

fn run(command: &mut Command) -> Result<()> {
    command.current_dir(root());
    eprintln!("xtask: running {command:?}");
    let status = command.status().with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn fixtures(args: &[String]) -> Result<()> {
    let py = python(args);
    for script in ["tiny_gpt2.py", "gpt2_tokenizer.py", "meta.py", "adapt.py", "tfidf.py", "squad_eval.py"] {
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
    let mut rows = Vec::new();
    for preset in presets {
        let ours = out.join(format!("fwd_bwd_{preset}_camels.json"));
        run(cargo()
            .args(["run", "--release", "-p", "camels-cli", "--", "bench", "forward-backward", "--preset", preset])
            .args(["--seq", seq, "--iters", iters, "--json"])
            .arg(&ours)
            .env("RAYON_NUM_THREADS", &threads))?;
        let torch = out.join(format!("fwd_bwd_{preset}_pytorch.json"));
        let baseline = run(Command::new(&py)
            .args(["bench/torch_fwd_bwd.py", "--preset", preset, "--seq", seq, "--iters", iters, "--threads", &threads])
            .arg("--json")
            .arg(&torch));
        if let Err(e) = &baseline {
            eprintln!("xtask: no PyTorch baseline ({e}); install torch + transformers or pass --python");
        }
        let ours = read_json(&ours)?;
        let torch = baseline.ok().map(|_| read_json(&torch)).transpose()?;
        rows.push(fwd_bwd_row(preset, seq, &threads, &ours, torch.as_ref()));
    }
    let table = format!(
        "| model | B×T | threads | camels s/step | camels tok/s | PyTorch s/step | PyTorch tok/s | ratio |\n|---|---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    println!("{table}");
    std::fs::write(out.join("fwd_bwd.md"), &table)?;
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
