//! Text generation with a key/value cache: greedy, top-k sampling and beam search, batched over
//! left-padded prompts, with HF transformers' semantics (positions count real tokens only; beam
//! search keeps 2·num_beams candidates per step, scores finished hypotheses by
//! sum-log-prob / generated_length^length_penalty, and stops a prompt once no running beam can
//! beat its worst kept hypothesis).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::base::{BaseLm, KvCache, Positions};
use crate::error::{ModelError, Result};

/// How to pick tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely token at each step.
    Greedy,
    /// Beam search (HF `num_beams`, `length_penalty`, `early_stopping=False`).
    Beam {
        /// Beams per prompt.
        num_beams: usize,
        /// Exponent of the length normalisation.
        length_penalty: f64,
    },
    /// Sampling from the `k` most likely tokens at `temperature`, seeded.
    TopK {
        /// Candidates kept.
        k: usize,
        /// Softmax temperature.
        temperature: f64,
        /// Seed of the sampler.
        seed: u64,
    },
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateConfig {
    /// Decoding strategy.
    pub decoding: Decoding,
    /// At most this many new tokens per prompt.
    pub max_new_tokens: usize,
    /// Stop a row at this token (kept in the output).
    pub eos_token_id: u32,
    /// Left padding id.
    pub pad_token_id: u32,
}

impl GenerateConfig {
    /// Greedy decoding of up to `max_new_tokens`, with EOS doubling as padding.
    pub fn greedy(max_new_tokens: usize, eos_token_id: u32) -> Self {
        Self { decoding: Decoding::Greedy, max_new_tokens, eos_token_id, pad_token_id: eos_token_id }
    }
    /// Beam search with `num_beams` beams and length penalty 1.
    pub fn beam(num_beams: usize, max_new_tokens: usize, eos_token_id: u32) -> Self {
        Self {
            decoding: Decoding::Beam { num_beams, length_penalty: 1.0 },
            ..Self::greedy(max_new_tokens, eos_token_id)
        }
    }
}

/// Left-pads `prompts` into `[B, L]` ids and an attention mask.
fn left_pad(prompts: &[Vec<u32>], pad: u32) -> Result<(Vec<i64>, Vec<u8>, usize)> {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if len == 0 || prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::Shape("every prompt needs at least one token".into()));
    }
    let mut ids = Vec::with_capacity(prompts.len() * len);
    let mut mask = Vec::with_capacity(prompts.len() * len);
    for prompt in prompts {
        let pad_len = len - prompt.len();
        ids.extend(std::iter::repeat_n(i64::from(pad), pad_len).chain(prompt.iter().map(|&t| i64::from(t))));
        mask.extend(std::iter::repeat_n(0u8, pad_len).chain(std::iter::repeat_n(1u8, prompt.len())));
    }
    Ok((ids, mask, len))
}

/// Incremental decoding state: the cache, the growing attention mask, the rows' last logits.
struct Decoder<'a, B: Backend> {
    model: &'a BaseLm<B>,
    cache: KvCache<B>,
    mask: Vec<u8>, // [rows, TK]
    rows: usize,
    device: B::Device,
}

impl<B: Backend> Decoder<'_, B> {
    /// Feeds `ids` `[rows, T]` and returns the log-probabilities of the next token, `[rows, V]`.
    fn feed(&mut self, ids: Vec<i64>, len: usize) -> Result<Vec<f32>> {
        let positions = Positions::from_mask(&self.mask, self.rows, len)?;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [self.rows, len]), &self.device);
        let hidden = self.model.hidden(ids, &positions, Some(&mut self.cache)); // [rows, T, C]
        // Only the last position's logits are needed: projecting a whole prompt onto the
        // vocabulary would cost T times as much.
        let c = hidden.dims()[2];
        let last = self.model.lm_head_rows(hidden.narrow(1, len - 1, 1).reshape([self.rows, c])); // [rows, V]
        Ok(log_softmax(last, 1).into_data().convert::<f32>().to_vec::<f32>().expect("f32 logits"))
    }

    /// Appends one token per row (the mask grows by a real position for every row, as in HF).
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let tk = self.mask.len() / self.rows;
        let mut mask = Vec::with_capacity(self.rows * (tk + 1));
        for row in self.mask.chunks(tk) {
            mask.extend_from_slice(row);
            mask.push(1);
        }
        self.mask = mask;
        self.feed(tokens.iter().map(|&t| i64::from(t)).collect(), 1)
    }

    /// Reorders the rows (beam search): row i takes the state of row `sources[i]`.
    fn reorder(&mut self, sources: &[usize]) {
        let tk = self.mask.len() / self.rows;
        self.mask = sources.iter().flat_map(|&s| self.mask[s * tk..(s + 1) * tk].to_vec()).collect();
        let index: Vec<i64> = sources.iter().map(|&s| s as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [sources.len()]), &self.device);
        self.cache = std::mem::take(&mut self.cache).select_rows(index);
    }
}

/// Generates a continuation of every prompt; returns the new tokens of each (EOS included when
/// produced, nothing after it).
pub fn generate<B: Backend>(
    model: &BaseLm<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>> {
    let config = &fit_context(config, prompts, model.max_positions())?;
    match config.decoding {
        Decoding::Greedy => sample_like(model, prompts, config, device, |logp, _| argmax(logp)),
        Decoding::TopK { k, temperature, seed } => {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            sample_like(model, prompts, config, device, move |logp, _| top_k_sample(logp, k, temperature, &mut rng))
        }
        Decoding::Beam { num_beams, length_penalty } => {
            beam_search(model, prompts, config, num_beams, length_penalty, device)
        }
    }
}

/// `config` with `max_new_tokens` cut so that the longest prompt and its continuation fit the
/// model's `context` (with a warning); an error when a prompt alone fills the context.
fn fit_context(config: &GenerateConfig, prompts: &[Vec<u32>], context: usize) -> Result<GenerateConfig> {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest >= context {
        return Err(ModelError::ContextExceeded {
            what: "prompt".into(),
            length: longest,
            limit: context,
            hint: "shorten the prompt: at least one position must be left for a new token".into(),
        });
    }
    let room = context - longest;
    let mut fitted = *config;
    if config.max_new_tokens > room {
        tracing::warn!(
            max_new_tokens = config.max_new_tokens,
            prompt_tokens = longest,
            context,
            "generation would run past the model's context: {room} new tokens at most"
        );
        fitted.max_new_tokens = room;
    }
    Ok(fitted)
}

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// xorshift64* step, returning a uniform number in [0, 1).
fn next_uniform(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn top_k_sample(logp: &[f32], k: usize, temperature: f64, rng: &mut u64) -> u32 {
    let mut order: Vec<usize> = (0..logp.len()).collect();
    order.sort_by(|&a, &b| logp[b].total_cmp(&logp[a]));
    order.truncate(k.max(1));
    let top = f64::from(logp[order[0]]);
    let weights: Vec<f64> = order.iter().map(|&i| ((f64::from(logp[i]) - top) / temperature.max(1e-6)).exp()).collect();
    let mut u = next_uniform(rng) * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    order[order.len() - 1] as u32
}

/// Greedy and sampling: one row per prompt, a token chosen per step by `pick`.
fn sample_like<B: Backend>(
    model: &BaseLm<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    device: &B::Device,
    mut pick: impl FnMut(&[f32], usize) -> u32,
) -> Result<Vec<Vec<u32>>> {
    let (ids, mask, len) = left_pad(prompts, config.pad_token_id)?;
    let rows = prompts.len();
    let mut decoder = Decoder { model, cache: KvCache::default(), mask, rows, device: device.clone() };
    let mut outputs = vec![Vec::new(); rows];
    let mut finished = vec![false; rows];
    if config.max_new_tokens == 0 {
        return Ok(outputs);
    }
    let mut logp = decoder.feed(ids, len)?;
    let vocab = logp.len() / rows;
    for step in 0..config.max_new_tokens {
        let mut tokens = Vec::with_capacity(rows);
        for row in 0..rows {
            let token = if finished[row] {
                config.pad_token_id
            } else {
                let token = pick(&logp[row * vocab..(row + 1) * vocab], row);
                outputs[row].push(token);
                finished[row] = token == config.eos_token_id;
                token
            };
            tokens.push(token);
        }
        if finished.iter().all(|&f| f) || step + 1 == config.max_new_tokens {
            break;
        }
        logp = decoder.step(&tokens)?;
    }
    Ok(outputs)
}

/// The finished hypotheses of one prompt: at most `num_beams`, by length-normalised score.
struct Finished {
    num_beams: usize,
    kept: Vec<(f64, Vec<u32>)>,
    /// HF's early-stop heuristic: false once no running beam can beat the worst kept hypothesis;
    /// then the prompt accepts no more hypotheses.
    improvable: bool,
}

impl Finished {
    fn add(&mut self, score: f64, tokens: Vec<u32>) {
        self.kept.push((score, tokens));
        self.kept.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.kept.truncate(self.num_beams);
    }

    fn update_improvable(&mut self, best_running: f64) {
        let full = self.kept.len() >= self.num_beams;
        let worst = self.kept.last().map_or(f64::NEG_INFINITY, |h| h.0);
        self.improvable = self.improvable && (!full || best_running > worst);
    }
}

/// HF transformers 5.x beam search (`early_stopping=False`), batched: row `b·K + j` is beam j of
/// prompt b. Per step the 2K best continuations are ranked; those among the top K that end in EOS
/// (or reach the length limit) become hypotheses scored sum-log-prob / new_tokens^length_penalty,
/// and the K best that did not finish run on.
fn beam_search<B: Backend>(
    model: &BaseLm<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    num_beams: usize,
    length_penalty: f64,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>> {
    let k = num_beams.max(1);
    let batch = prompts.len();
    if config.max_new_tokens == 0 {
        return Ok(vec![Vec::new(); batch]);
    }
    let expanded: Vec<Vec<u32>> = prompts.iter().flat_map(|p| std::iter::repeat_n(p.clone(), k)).collect();
    let (ids, mask, len) = left_pad(&expanded, config.pad_token_id)?;
    let rows = expanded.len();
    let mut decoder = Decoder { model, cache: KvCache::default(), mask, rows, device: device.clone() };
    let mut finished: Vec<Finished> =
        (0..batch).map(|_| Finished { num_beams: k, kept: Vec::new(), improvable: true }).collect();
    // Only the first beam of each prompt is live at the start (the others are copies).
    let mut scores: Vec<f64> = (0..rows).map(|r| if r % k == 0 { 0.0 } else { -1e9 }).collect();
    let mut beams: Vec<Vec<u32>> = vec![Vec::new(); rows];
    let mut logp = decoder.feed(ids, len)?;
    let vocab = logp.len() / rows;
    for step in 0..config.max_new_tokens {
        let generated = step + 1; // new tokens per beam once this step's token is appended
        let last_step = generated == config.max_new_tokens;
        let normaliser = (generated as f64).powf(length_penalty);
        let mut sources: Vec<usize> = (0..rows).collect();
        let mut next_tokens = vec![config.pad_token_id; rows];
        let mut next_scores = scores.clone();
        for b in 0..batch {
            // The 2K best continuations over all K beams × V tokens, best first.
            let mut candidates: Vec<(f64, usize, u32)> = Vec::with_capacity(k * vocab);
            for j in 0..k {
                let row = b * k + j;
                let lp = &logp[row * vocab..(row + 1) * vocab];
                candidates.extend(lp.iter().enumerate().map(|(t, &l)| (scores[row] + f64::from(l), row, t as u32)));
            }
            let keep = (2 * k).min(candidates.len());
            candidates.select_nth_unstable_by(keep - 1, |x, y| y.0.total_cmp(&x.0));
            candidates.truncate(keep);
            candidates.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
            let ends = |token: u32| token == config.eos_token_id || last_step;
            if finished[b].improvable {
                for &(score, row, token) in candidates.iter().take(k).filter(|c| ends(c.2)) {
                    let mut tokens = beams[row].clone();
                    tokens.push(token);
                    finished[b].add(score / normaliser, tokens);
                }
            }
            let running = candidates.iter().filter(|c| !ends(c.2)).take(k);
            for (j, &(score, row, token)) in running.enumerate() {
                let slot = b * k + j;
                next_scores[slot] = score;
                next_tokens[slot] = token;
                sources[slot] = row;
            }
            finished[b].update_improvable(next_scores[b * k] / normaliser);
        }
        if last_step || finished.iter().all(|f| !f.improvable) {
            break;
        }
        beams = sources
            .iter()
            .zip(&next_tokens)
            .map(|(&s, &t)| {
                let mut tokens = beams[s].clone();
                tokens.push(t);
                tokens
            })
            .collect();
        scores = next_scores;
        decoder.reorder(&sources);
        logp = decoder.step(&next_tokens)?;
    }
    Ok(finished.into_iter().map(|f| f.kept.into_iter().next().map(|h| h.1).unwrap_or_default()).collect())
}
