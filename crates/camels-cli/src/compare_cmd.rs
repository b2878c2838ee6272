//! `camels-cli compare`: adaptation runs side by side, with 95% bootstrap intervals over questions,
//! each run against a baseline, the retention curve, and the unrelated-text perplexity.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use camels_meta::compare::{compare, markdown, read_predictions};
use camels_meta::eval::Summary;
use clap::Args;

/// Options of `camels-cli compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// A run as NAME=DIR, DIR an `adapt --eval-before` output (predictions.csv, summary.json); repeat.
    #[arg(long = "run", required = true)]
    runs: Vec<String>,
    /// The run the others are measured against.
    #[arg(long, default_value = "uniform")]
    baseline: String,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the tables to FILE.md and the figures to FILE.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `camels-cli compare`.
pub fn run_compare(args: CompareArgs) -> Result<()> {
    anyhow::ensure!(args.resamples > 0, "--resamples 0: must be at least 1");
    let mut runs = Vec::new();
    let mut summaries = Vec::new();
    for spec in &args.runs {
        let Some((name, dir)) = spec.split_once('=') else { bail!("--run {spec}: expected NAME=DIR") };
        let dir = PathBuf::from(dir);
        let rows = read_predictions(&dir.join("predictions.csv"))?;
        let path = dir.join("summary.json");
        let summary: Summary = serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not an adapt summary", path.display()))?;
        runs.push((name.to_string(), rows));
        summaries.push((name.to_string(), summary));
    }
    let comparison = compare(&runs, &args.baseline, args.resamples, args.seed)?;
    let mut text = markdown(&comparison);
    let base_ppl = summaries.iter().find(|(n, _)| *n == args.baseline).and_then(|(_, s)| s.unrelated_ppl_after);
    text.push_str("\n| run | lr | unrelated ppl before | unrelated ppl after | after / baseline's after |\n|---|---|---|---|---|\n");
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (name, s) in &summaries {
        let ratio = s.unrelated_ppl_after.zip(base_ppl).map(|(a, b)| a / b);
        text.push_str(&format!(
            "| {name} | {:e} | {} | {} | {} |\n",
            s.lr,
            opt(s.unrelated_ppl_before),
            opt(s.unrelated_ppl_after),
            opt(ratio)
        ));
    }
    print!("{text}");
    if let Some(out) = &args.out {
        let md = out.with_extension("md");
        std::fs::write(&md, &text).with_context(|| format!("writing {}", md.display()))?;
        let json = out.with_extension("json");
        std::fs::write(&json, serde_json::to_vec_pretty(&comparison)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(())
}
