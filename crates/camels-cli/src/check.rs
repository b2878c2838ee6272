//! `camels-cli check`: the fixture parity and meta-gradient checks on any backend, each timed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use camels_meta::parity::{Check, failures, run_all};
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use clap::Args;
use serde::Serialize;

/// Arguments of `camels-cli check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Device: cpu, wgpu[:N], cuda[:N] or cuda-raw[:N] (CUDA without kernel fusion).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// The repository's fixtures directory.
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    /// Also write the checks here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    device: String,
    total_seconds: f64,
    checks: &'a [Check],
}

struct CheckJob {
    fixtures: PathBuf,
}

impl BackendJob for CheckJob {
    type Output = camels_meta::Result<Vec<Check>>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        run_all::<B>(&self.fixtures, &device)
    }
}

/// Runs the checks, prints a table, and fails if any check does.
pub fn run(args: CheckArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let checks = run_on(args.device, CheckJob { fixtures: args.fixtures.clone() })?
        .with_context(|| format!("running the checks with fixtures in {}", args.fixtures.display()))?;
    println!("{:<38} {:>9} {:>11} {:>9}  result", "check", "seconds", "error", "bound");
    for c in &checks {
        let verdict = if c.pass { "ok" } else { "FAIL" };
        println!("{:<38} {:>9.3} {:>11.3e} {:>9.0e}  {verdict}", c.name, c.seconds, c.error, c.tolerance);
    }
    let report =
        Report { device: args.device.to_string(), total_seconds: start.elapsed().as_secs_f64(), checks: &checks };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = failures(&checks);
    anyhow::ensure!(failed.is_empty(), "{} of {} checks failed on {}", failed.len(), checks.len(), args.device);
    println!("all {} checks passed on {} in {:.1} s", checks.len(), args.device, report.total_seconds);
    Ok(())
}
