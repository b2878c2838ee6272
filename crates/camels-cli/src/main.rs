//! `camels-cli`: the command line of camels (CaMeLS, Hu et al. 2023): models, data and benchmarks.

mod adapt_cmd;
mod bench;
mod check;
mod compare_cmd;
mod data_cmd;
mod demo_cmd;
mod train_cmd;

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use camels_model::device::{BackendJob, DeviceSpec, run_on};
use camels_model::generate::{Decoding, GenerateConfig, generate};
use camels_model::hf::load_base;
use clap::{Parser, Subcommand};

/// camels: keep a language model's knowledge current with CaMeLS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log filter (`info`, `debug`, `camels_meta=debug`, …); also `RUST_LOG`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a base model's family, configuration and parameter count.
    Info {
        /// HF-layout directory (config.json, model.safetensors, tokenizer) or a `.gguf` file.
        #[arg(long)]
        base: PathBuf,
    },
    /// Continue prompts with a model (greedy by default).
    Generate {
        /// HF-layout directory or a `.gguf` file.
        #[arg(long)]
        base: PathBuf,
        /// A prompt; repeat for a batch.
        #[arg(long, required = true)]
        prompt: Vec<String>,
        /// New tokens at most.
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// Beam search with this many beams (1 = greedy).
        #[arg(long, default_value_t = 1)]
        num_beams: usize,
        /// Device: cpu, wgpu[:N] or cuda[:N].
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Write a base (a `.gguf` file, an HF directory) as an HF-layout directory that transformers loads.
    Convert {
        /// The `.gguf` file or HF directory.
        base: PathBuf,
        /// Output directory (config.json, model.safetensors, tokenizer.json, generation_config.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Datasets: synthesise, inspect.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// The fixture parity and meta-gradient checks on a device (GPU backends included), timed.
    Check(check::CheckArgs),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Stream documents through fine-tuning of a base LM, then ask their questions.
    Adapt(Box<adapt_cmd::AdaptArgs>),
    /// Ask a QA set's questions without adapting.
    Eval(adapt_cmd::QaArgs),
    /// Compare `adapt --eval-before` runs: F1, EM and gains with 95% bootstrap intervals, each run against a baseline, the retention curve
    Compare(compare_cmd::CompareArgs),
    /// Meta-train a CaMeLS weighting model (resumes when --out holds a checkpoint).
    MetaTrain(train_cmd::MetaTrainArgs),
    /// Fit a weighting model's head to the answer spans (logistic regression on its frozen trunk): a diagnosis of the trunk, not CaMeLS.
    Probe(train_cmd::ProbeArgs),
    /// Train a small QA-tuned base LM (and its tokenizer) on a synthetic world.
    PretrainBase(train_cmd::PretrainArgs),
    /// Train the demo's tokenizer and its two base LMs (sizes from the demo settings) on a world.
    Pretrain(demo_cmd::PretrainArgs),
    /// Fine-tune a base LM on question–answer pairs, validating, stopping early, keeping the best.
    QaTune(demo_cmd::QaTuneArgs),
    /// The end-to-end demo: world, tokenizer, two base LMs, CaMeLS, adaptation, results and report.
    Demo(demo_cmd::DemoArgs),
}

/// glibc's malloc settings that keep freed memory for reuse (see [`keep_freed_memory`]).
const MALLOC_ENV: [(&str, &str); 3] = [
    // Serve allocations of up to 4 GiB from the heap instead of fresh `mmap`s …
    ("MALLOC_MMAP_THRESHOLD_", "4294967296"),
    // … and neither return the heap's free top to the kernel …
    ("MALLOC_TRIM_THRESHOLD_", "68719476736"),
    // … nor grow it by less than 1 GiB at a time.
    ("MALLOC_TOP_PAD_", "1073741824"),
];

/// On the CPU backend every training step allocates vocabulary-sized buffers afresh (1024 × 50,257
/// floats = 206 MB each). glibc serves each from a new `mmap` and unmaps it when freed, so the kernel
/// faults in and zeroes every page again each step (≈ 30% of a step in the profile, BENCHMARKS.md).
/// glibc reads its tunables only at start-up, so the CLI re-executes itself once with them set,
/// unless they are already set or `CAMELS_SYSTEM_MALLOC=1` asks for glibc's defaults. They act on
/// the main thread's heap (other threads' arenas are capped at 64 MiB and still `mmap` larger
/// buffers), and memory is kept at its peak until exit; child processes inherit the variables.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("CAMELS_SYSTEM_MALLOC").is_some() || std::env::var_os(MALLOC_ENV[0].0).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut command = std::process::Command::new(exe);
    command.args(std::env::args_os().skip(1)).envs(MALLOC_ENV);
    // `exec` returns only if it failed; then carry on with the defaults.
    let error = command.exec();
    eprintln!("camels-cli: could not re-execute with tuned malloc settings ({error}); continuing");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // Colours only on a terminal: a redirected log stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_message(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: a cause whose text the message already
/// holds (an OS error a located error quoted) is not repeated, and no backtrace is printed.
fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Info { base } => info(&base),
        Command::Generate { base, prompt, max_new_tokens, num_beams, device } => {
            let job = GenerateJob { base, prompts: prompt, max_new_tokens, num_beams };
            for (prompt, text) in run_on(device, job)?? {
                println!("{prompt}{text}");
            }
            Ok(())
        }
        Command::Convert { base, out } => run_on(DeviceSpec::Cpu, ConvertJob { base, out })?,
        Command::Data(command) => data_cmd::run(command),
        Command::Bench(command) => bench::run(command),
        Command::Check(args) => check::run(args),
        Command::Adapt(args) => adapt_cmd::run_adapt(*args),
        Command::Eval(args) => adapt_cmd::run_eval(args),
        Command::Compare(args) => compare_cmd::run_compare(args),
        Command::MetaTrain(args) => train_cmd::meta_train_cmd(args),
        Command::Probe(args) => train_cmd::probe_cmd(args),
        Command::PretrainBase(args) => train_cmd::pretrain_cmd(args),
        Command::Pretrain(args) => demo_cmd::pretrain_cmd(args),
        Command::QaTune(args) => demo_cmd::qa_tune_cmd(args),
        Command::Demo(args) => demo_cmd::demo_cmd(args),
    }
}

fn info(base: &std::path::Path) -> Result<()> {
    let config = camels_model::hf::read_base_config_at(base)?;
    println!("{}", serde_json::to_string_pretty(&camels_model::hf::base_config_json(&config))?);
    println!(
        "family: {} ({} layers, hidden {}, vocabulary {}, context {})",
        config.model_type(),
        config.num_layers(),
        config.hidden_size(),
        config.vocab_size(),
        config.max_positions()
    );
    println!("parameters: {}", group_thousands(config.num_params()));
    let stored = camels_model::hf::stored_weights(base)?;
    println!(
        "weights: {} ({} tensors, {} parameters)",
        stored.file.display(),
        stored.tensors,
        group_thousands(stored.parameters)
    );
    // A tied head may be stored again as lm_head.weight (output.weight in GGUF).
    let head = config.vocab_size() * config.hidden_size();
    let expected = config.num_params();
    anyhow::ensure!(
        stored.parameters == expected || (stored.has_lm_head && stored.parameters == expected + head),
        "{}: holds {} parameters, but its configuration implies {}: the weights do not match the config",
        stored.file.display(),
        group_thousands(stored.parameters),
        group_thousands(expected)
    );
    match camels_model::hf::load_tokenizer(base, &config) {
        Ok(tokenizer) => println!("tokenizer: {} tokens, eos {}", tokenizer.vocab_size(), tokenizer.eos_id()),
        Err(e) => println!("tokenizer: none ({e})"),
    }
    Ok(())
}

/// `134515008` → `134,515,008`.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `convert`: any base (a GGUF file, an HF directory) to an HF-layout directory.
struct ConvertJob {
    base: PathBuf,
    out: PathBuf,
}

impl BackendJob for ConvertJob {
    type Output = Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let (model, config) = load_base::<B>(&self.base, &device)
            .with_context(|| format!("loading the model in {}", self.base.display()))?;
        let tokenizer = camels_model::hf::load_tokenizer(&self.base, &config)?;
        camels_model::hf::save_base(&model, &config, Some(&tokenizer), &self.out)?;
        println!(
            "{}: {} ({} parameters) written to {} (config.json, model.safetensors, tokenizer.json, generation_config.json)",
            self.base.display(),
            config.model_type(),
            group_thousands(config.num_params()),
            self.out.display()
        );
        Ok(())
    }
}

struct GenerateJob {
    base: PathBuf,
    prompts: Vec<String>,
    max_new_tokens: usize,
    num_beams: usize,
}

impl BackendJob for GenerateJob {
    type Output = Result<Vec<(String, String)>>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let (model, config) = load_base::<B>(&self.base, &device)
            .with_context(|| format!("loading the model in {}", self.base.display()))?;
        let tokenizer = camels_model::hf::load_tokenizer(&self.base, &config)?;
        let prompts = self.prompts.iter().map(|p| tokenizer.encode(p)).collect::<Result<Vec<_>, _>>()?;
        let decoding = if self.num_beams > 1 {
            Decoding::Beam { num_beams: self.num_beams, length_penalty: 1.0 }
        } else {
            Decoding::Greedy
        };
        let generate_config =
            GenerateConfig { decoding, ..GenerateConfig::greedy(self.max_new_tokens, config.eos_token_id()) };
        let outputs = generate(&model, &prompts, &generate_config, &device)?;
        self.prompts
            .into_iter()
            .zip(outputs)
            .map(|(prompt, ids)| {
                let ids: Vec<u32> = ids.into_iter().filter(|&t| t != config.eos_token_id()).collect();
                Ok((prompt, tokenizer.decode(&ids)?))
            })
            .collect()
    }
}
