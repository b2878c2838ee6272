//! Tokenised batches as plain Rust data (no tensors): documents, QA training pairs, QA generation
//! prompts and locality windows, all as row-major `[B, T]` [`TokenBatch`]es.
//!
//! Conventions (B: batch size, T: sequence length):
//! * `attention_mask[b, t]` is 1.0 on real tokens and 0.0 on padding;
//! * `target_mask[b, t]` is 1.0 where token `t` of row `b` is a prediction target, i.e. the loss at
//!   position `t` compares `logits[b, t - 1]` with `ids[b, t]` (shift by one when using it);
//! * the pad id defaults to the encoder's end-of-sequence id, as GPT-2 has no pad token.

use crate::{DataError, Question};

/// A tokenised text: ids and, per id, the `[start, end)` character offsets (counted in `char`s, not
/// bytes) of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Character offsets `[start, end)` into the encoded text, one per id.
    pub offsets: Vec<(usize, usize)>,
}

/// Turns text into token ids without adding special tokens.
pub trait TextEncoder {
    /// Encodes `text` (no special tokens added), with character offsets.
    fn encode(&self, text: &str) -> Result<Encoded, DataError>;

    /// The end-of-sequence id appended after QA answers and used as the default pad id.
    fn eos_id(&self) -> u32;
}

impl TextEncoder for tokenizers::Tokenizer {
    /// Uses `encode_char_offsets(text, false)`: tokenizers' plain `encode` returns byte offsets,
    /// which differ from character offsets on non-ASCII text.
    fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        let encoding = self
            .encode_char_offsets(text, false)
            .map_err(|source| DataError::Tokenizer { prefix: text.chars().take(40).collect(), source })?;
        Ok(Encoded { ids: encoding.get_ids().to_vec(), offsets: encoding.get_offsets().to_vec() })
    }

    /// The id of the first of `<|endoftext|>`, `</s>`, `<eos>`, `[SEP]` the vocabulary has, else the
    /// last id of the vocabulary (where GPT-2 keeps `<|endoftext|>`).
    fn eos_id(&self) -> u32 {
        ["<|endoftext|>", "</s>", "<eos>", "[SEP]"]
            .iter()
            .find_map(|t| self.token_to_id(t))
            .unwrap_or_else(|| (self.get_vocab_size(true) as u32).saturating_sub(1))
    }
}

/// What `encoder.encode(text)` truncated to its first `max_tokens` tokens gives (ids and offsets),
/// without encoding all of a long text: encodes growing prefixes of `text` instead.
///
/// The first prefix is about `16 × max_tokens` bytes, cut where a run of ASCII whitespace starts
/// (so that the prefix ends a word); each further one is twice as long. A prefix is used once the
/// token after the kept ones still ends before the prefix's last run of whitespace: tokenizers
/// split text into words (pre-tokens) at whitespace, and the tokens of a word that ends before that
/// run cannot depend on where the prefix ends, so the kept tokens and their offsets are those of
/// the whole text. A text without such a prefix (no whitespace, say, or fewer tokens than
/// `max_tokens`) is encoded whole.
///
/// ```
/// use camels_data::{encode_prefix, ByteEncoder, TextEncoder};
/// let text = "one two three ".repeat(1000);
/// let mut whole = ByteEncoder.encode(&text).unwrap();
/// whole.ids.truncate(10);
/// whole.offsets.truncate(10);
/// assert_eq!(encode_prefix(&ByteEncoder, &text, 10).unwrap(), whole);
/// ```
pub fn encode_prefix(encoder: &dyn TextEncoder, text: &str, max_tokens: usize) -> Result<Encoded, DataError> {
    if max_tokens == 0 {
        return Ok(Encoded::default());
    }
    let mut budget = max_tokens.saturating_mul(16).max(256);
    while budget < text.len() {
        if let Some(cut) = whitespace_cut(text, budget) {
            let prefix = &text[..cut];
            // The start of the prefix's last whitespace run: tokens ending there are settled.
            let last_word = prefix.trim_end_matches(|c: char| !c.is_ascii_whitespace());
            let settled = last_word.trim_end_matches(|c: char| c.is_ascii_whitespace()).len();
            if settled > 0 {
                let mut encoded = encoder.encode(prefix)?;
                let settled_chars = prefix[..settled].chars().count();
                if encoded.offsets.get(max_tokens).is_some_and(|&(_, end)| end <= settled_chars) {
                    encoded.ids.truncate(max_tokens);
                    encoded.offsets.truncate(max_tokens);
                    return Ok(encoded);
                }
            }
        }
        budget = budget.saturating_mul(2);
    }
    let mut encoded = encoder.encode(text)?;
    encoded.ids.truncate(max_tokens);
    encoded.offsets.truncate(max_tokens);
    Ok(encoded)
}

/// The largest byte offset `c` in `(limit / 2, limit]` where a run of ASCII whitespace starts after
/// another character (`text[..c]` ends a word, `text[c..]` starts with whitespace), preferring one
/// before a single space and a letter (`"…end| word"`), where every tokenizer starts a new word;
/// `None` when that range has neither.
pub(crate) fn whitespace_cut(text: &str, limit: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut any = None;
    // ASCII whitespace never occurs inside a multi-byte character, so an offset before one is a
    // character boundary.
    for c in (limit / 2 + 1..=limit.min(bytes.len().saturating_sub(1))).rev() {
        if !bytes[c].is_ascii_whitespace() || bytes[c - 1].is_ascii_whitespace() {
            continue;
        }
        if bytes[c] == b' ' && bytes.get(c + 1).is_some_and(u8::is_ascii_alphabetic) {
            return Some(c);
        }
        any = any.or(Some(c));
    }
    any
}

/// An HF tokenizer with the model's own end-of-sequence id (SmolLM2-Instruct ends with
/// `<|im_end|>`, not the `<|endoftext|>` a lookup by name would find).
#[derive(Clone, Copy)]
pub struct ModelEncoder<'a> {
    tokenizer: &'a tokenizers::Tokenizer,
    eos_id: u32,
}

impl<'a> ModelEncoder<'a> {
    /// `tokenizer`, ending sequences with `eos_id`.
    pub fn new(tokenizer: &'a tokenizers::Tokenizer, eos_id: u32) -> Self {
        Self { tokenizer, eos_id }
    }
}

impl TextEncoder for ModelEncoder<'_> {
    fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        TextEncoder::encode(self.tokenizer, text)
    }

    fn eos_id(&self) -> u32 {
        self.eos_id
    }
}

/// A tokenizer-free encoder: one id per UTF-8 byte (0–255), end of sequence 256 (vocabulary 257).
///
/// Useful in tests and examples that must not depend on tokenizer files.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteEncoder;

impl ByteEncoder {
    /// The number of ids: 256 bytes and the end-of-sequence id.
    pub const VOCAB_SIZE: usize = 257;
}

impl TextEncoder for ByteEncoder {
    fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        let mut out = Encoded { ids: Vec::with_capacity(text.len()), offsets: Vec::with_capacity(text.len()) };
        for (c, ch) in text.chars().enumerate() {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.ids.push(u32::from(b));
                out.offsets.push((c, c + 1));
            }
        }
        Ok(out)
    }

    fn eos_id(&self) -> u32 {
        256
    }
}

/// Which side padding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Tokens first, then padding (training batches).
    Right,
    /// Padding first, then tokens, so every row ends at the last column (generation prompts).
    Left,
}

/// A padded batch of token rows, row-major `[B, T]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids, `[B, T]` row-major.
    pub ids: Vec<u32>,
    /// 1.0 on real tokens, 0.0 on padding, `[B, T]`.
    pub attention_mask: Vec<f32>,
    /// 1.0 where the token is a prediction target, `[B, T]` (see the module docs).
    pub target_mask: Vec<f32>,
    /// B: number of rows.
    pub batch: usize,
    /// T: length of every row.
    pub len: usize,
    /// The id used for padding.
    pub pad_id: u32,
    /// Which side the padding is on.
    pub padding: Padding,
}

impl TokenBatch {
    /// Pads `rows` to a common length: `pad_to`, or the longest row when `None`. `targets`, when
    /// given, marks per token whether it is a target (one flag per token of each row); without it
    /// every real token is a target.
    pub fn from_rows(
        rows: &[Vec<u32>],
        targets: Option<&[Vec<bool>]>,
        pad_id: u32,
        padding: Padding,
        pad_to: Option<usize>,
    ) -> Result<Self, DataError> {
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let len = pad_to.unwrap_or(longest);
        if longest > len {
            return Err(DataError::InvalidOption {
                option: "pad_to",
                value: len.to_string(),
                expected: format!("at least the longest row ({longest} tokens)"),
            });
        }
        if let Some(targets) = targets {
            let mismatch = targets.len() != rows.len() || targets.iter().zip(rows).any(|(t, r)| t.len() != r.len());
            if mismatch {
                return Err(DataError::InvalidOption {
                    option: "targets",
                    value: format!("{} rows", targets.len()),
                    expected: "one flag per token of every row".to_string(),
                });
            }
        }
        let batch = rows.len();
        let mut ids = vec![pad_id; batch * len];
        let mut attention_mask = vec![0.0; batch * len];
        let mut target_mask = vec![0.0; batch * len];
        for (b, row) in rows.iter().enumerate() {
            let start = match padding {
                Padding::Right => b * len,
                Padding::Left => b * len + (len - row.len()),
            };
            ids[start..start + row.len()].copy_from_slice(row);
            attention_mask[start..start + row.len()].fill(1.0);
            match targets {
                Some(t) => {
                    for (i, &is_target) in t[b].iter().enumerate() {
                        target_mask[start + i] = if is_target { 1.0 } else { 0.0 };
                    }
                }
                None => target_mask[start..start + row.len()].fill(1.0),
            }
        }
        Ok(Self { ids, attention_mask, target_mask, batch, len, pad_id, padding })
    }

    /// `[B, T]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.batch, self.len]
    }

    /// Row `b`'s ids, padding included.
    pub fn row(&self, b: usize) -> &[u32] {
        &self.ids[b * self.len..(b + 1) * self.len]
    }

    /// Row `b`'s real tokens, padding excluded.
    pub fn tokens(&self, b: usize) -> &[u32] {
        let n = self.lengths()[b];
        let row = self.row(b);
        match self.padding {
            Padding::Right => &row[..n],
            Padding::Left => &row[self.len - n..],
        }
    }

    /// Number of real tokens per row.
    pub fn lengths(&self) -> Vec<usize> {
        self.attention_mask
            .chunks(self.len.max(1))
            .take(self.batch)
            .map(|m| m.iter().filter(|&&x| x > 0.0).count())
            .collect()
    }

    /// Position ids `[B, T]`: 0, 1, 2, … from each row's first real token (padding gets 0), so that
    /// left-padded prompts get the same positions as unpadded ones.
    pub fn position_ids(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.ids.len()];
        for b in 0..self.batch {
            let mut next = 0u32;
            for t in 0..self.len {
                let i = b * self.len + t;
                if self.attention_mask[i] > 0.0 {
                    out[i] = next;
                    next += 1;
                }
            }
        }
        out
    }

    /// A new batch of the given rows (in that order), with the same length and padding.
    pub fn select(&self, rows: &[usize]) -> TokenBatch {
        let mut out = TokenBatch {
            ids: Vec::with_capacity(rows.len() * self.len),
            attention_mask: Vec::with_capacity(rows.len() * self.len),
            target_mask: Vec::with_capacity(rows.len() * self.len),
            batch: rows.len(),
            len: self.len,
            pad_id: self.pad_id,
            padding: self.padding,
        };
        for &b in rows {
            let r = b * self.len..(b + 1) * self.len;
            out.ids.extend_from_slice(&self.ids[r.clone()]);
            out.attention_mask.extend_from_slice(&self.attention_mask[r.clone()]);
            out.target_mask.extend_from_slice(&self.target_mask[r]);
        }
        out
    }
}

/// What to do with documents longer than [`DocumentBatchConfig::max_doc_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep the first `max_doc_tokens` tokens (the paper's `truncation=True`); long documents are
    /// not encoded whole (see [`encode_prefix`]).
    #[default]
    Truncate,
    /// Split into consecutive windows of `max_doc_tokens` (the last one shorter); every window
    /// becomes a row.
    Windows,
}

/// The length document rows are padded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadTo {
    /// Always `max_doc_tokens` (the paper's `padding='max_length'`).
    #[default]
    MaxTokens,
    /// The longest row of the batch.
    Longest,
}

/// Options of [`document_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentBatchConfig {
    /// Longest row, in tokens (the paper's `max_text_len`, 1024).
    pub max_doc_tokens: usize,
    /// The padded length.
    pub pad_to: PadTo,
    /// Truncate or split overlong documents.
    pub overflow: Overflow,
    /// Pad id (`None`: the encoder's end-of-sequence id).
    pub pad_id: Option<u32>,
}

impl Default for DocumentBatchConfig {
    fn default() -> Self {
        Self { max_doc_tokens: 1024, pad_to: PadTo::MaxTokens, overflow: Overflow::Truncate, pad_id: None }
    }
}

/// Documents as a right-padded batch, with where every row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentBatch {
    /// The rows; every real token is a target.
    pub tokens: TokenBatch,
    /// For each row, the index of its document in the input.
    pub documents: Vec<usize>,
    /// For each row, the character offsets of its tokens in its document's text.
    pub offsets: Vec<Vec<(usize, usize)>>,
}

/// Tokenises documents into a right-padded [`DocumentBatch`]. An empty text gives a row of padding.
///
/// ```
/// use camels_data::{document_batch, ByteEncoder, DocumentBatchConfig, Overflow, PadTo};
/// let config = DocumentBatchConfig { max_doc_tokens: 4, pad_to: PadTo::Longest, overflow: Overflow::Windows, pad_id: None };
/// let batch = document_batch(&ByteEncoder, &["abcdef", "xy"], &config).unwrap();
/// assert_eq!(batch.tokens.shape(), [3, 4]); // "abcd", "ef", "xy"
/// assert_eq!(batch.documents, vec![0, 0, 1]);
/// assert_eq!(batch.tokens.attention_mask[4..8], [1.0, 1.0, 0.0, 0.0]);
/// ```
pub fn document_batch<S: AsRef<str>>(
    encoder: &dyn TextEncoder,
    texts: &[S],
    config: &DocumentBatchConfig,
) -> Result<DocumentBatch, DataError> {
    let max = config.max_doc_tokens;
    if max == 0 {
        return Err(DataError::InvalidOption {
            option: "max_doc_tokens",
            value: "0".to_string(),
            expected: "at least 1".to_string(),
        });
    }
    let mut rows = Vec::with_capacity(texts.len());
    let mut documents = Vec::with_capacity(texts.len());
    let mut offsets = Vec::with_capacity(texts.len());
    for (d, text) in texts.iter().enumerate() {
        let encoded = match config.overflow {
            // Only the kept tokens matter: a long document is not encoded whole.
            Overflow::Truncate => encode_prefix(encoder, text.as_ref(), max)?,
            Overflow::Windows => encoder.encode(text.as_ref())?,
        };
        let n = encoded.ids.len();
        if n <= max || config.overflow == Overflow::Truncate {
            let keep = n.min(max);
            rows.push(encoded.ids[..keep].to_vec());
            offsets.push(encoded.offsets[..keep].to_vec());
            documents.push(d);
        } else {
            for (ids, offs) in encoded.ids.chunks(max).zip(encoded.offsets.chunks(max)) {
                rows.push(ids.to_vec());
                offsets.push(offs.to_vec());
                documents.push(d);
            }
        }
    }
    let pad_to = match config.pad_to {
        PadTo::MaxTokens => Some(max),
        PadTo::Longest => None,
    };
    let pad_id = config.pad_id.unwrap_or_else(|| encoder.eos_id());
    let tokens = TokenBatch::from_rows(&rows, None, pad_id, Padding::Right, pad_to)?;
    Ok(DocumentBatch { tokens, documents, offsets })
}

/// Per token, whether its character offsets overlap any of `spans` (e.g. [`crate::answer_spans`]).
pub fn tokens_in_spans(offsets: &[(usize, usize)], spans: &[(usize, usize)]) -> Vec<bool> {
    offsets.iter().map(|&(s, e)| spans.iter().any(|&(a, b)| s < b && a < e.max(s + 1))).collect()
}

/// Options of the QA builders [`qa_train_batch`] and [`qa_prompt_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaBatchConfig {
    /// How a question becomes the prompt; `{question}` is replaced by the question (default: the
    /// question alone).
    pub prompt_template: String,
    /// Longest training row (prompt, answer and end of sequence); the prompt is cut from its start
    /// first, then the answer from its end (the paper's `max_question_len`, 128).
    pub max_len: usize,
    /// Longest generation prompt; longer prompts keep their last tokens.
    pub max_prompt_tokens: usize,
    /// Append the end-of-sequence id after the answer, as a target (the paper's `include_eos`).
    pub include_eos: bool,
    /// Upper-case the answer's first letter (the paper's code does this for SQuAD and ArchivalQA).
    pub capitalize_answer: bool,
    /// Pad id (`None`: the encoder's end-of-sequence id).
    pub pad_id: Option<u32>,
    /// Pad training rows to `max_len` instead of the longest row.
    pub pad_to_max: bool,
}

impl Default for QaBatchConfig {
    fn default() -> Self {
        Self {
            prompt_template: "{question}".to_string(),
            max_len: 128,
            max_prompt_tokens: 104,
            include_eos: true,
            capitalize_answer: false,
            pad_id: None,
            pad_to_max: false,
        }
    }
}

impl QaBatchConfig {
    /// The prompt for `question`.
    pub fn prompt(&self, question: &str) -> String {
        self.prompt_template.replace("{question}", question.trim())
    }

    fn answer(&self, answer: &str) -> String {
        let answer = answer.trim();
        if !self.capitalize_answer {
            return answer.to_string();
        }
        let mut chars = answer.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// QA training rows `prompt + " " + answer + eos`, right-padded; `target_mask` marks only the
/// answer tokens and the eos. As in the paper's code, the prompt and `" " + answer` are tokenised
/// separately and concatenated, so the answer's tokens do not depend on the question.
///
/// ```
/// use camels_data::{qa_train_batch, ByteEncoder, QaBatchConfig};
/// let batch = qa_train_batch(&ByteEncoder, &[("Who?", "Ada")], &QaBatchConfig::default()).unwrap();
/// assert_eq!(batch.tokens(0).len(), 4 + 4 + 1); // "Who?", " Ada", eos
/// assert_eq!(batch.target_mask, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
/// ```
pub fn qa_train_batch(
    encoder: &dyn TextEncoder,
    pairs: &[(&str, &str)],
    config: &QaBatchConfig,
) -> Result<TokenBatch, DataError> {
    if config.max_len == 0 {
        return Err(DataError::InvalidOption {
            option: "max_len",
            value: "0".to_string(),
            expected: "at least 1".to_string(),
        });
    }
    let mut rows = Vec::with_capacity(pairs.len());
    let mut targets = Vec::with_capacity(pairs.len());
    for (question, answer) in pairs {
        let mut prompt = encoder.encode(&config.prompt(question))?.ids;
        let mut answer = encoder.encode(&format!(" {}", config.answer(answer)))?.ids;
        if config.include_eos {
            answer.push(encoder.eos_id());
        }
        let total = prompt.len() + answer.len();
        if total > config.max_len {
            let cut = (total - config.max_len).min(prompt.len());
            prompt.drain(..cut);
            answer.truncate(config.max_len - prompt.len());
        }
        let mut row = prompt;
        let mut target = vec![false; row.len()];
        target.resize(row.len() + answer.len(), true);
        row.extend(answer);
        rows.push(row);
        targets.push(target);
    }
    let pad_id = config.pad_id.unwrap_or_else(|| encoder.eos_id());
    let pad_to = config.pad_to_max.then_some(config.max_len);
    TokenBatch::from_rows(&rows, Some(&targets), pad_id, Padding::Right, pad_to)
}

/// Left-padded generation prompts with their gold answers.
#[derive(Debug, Clone, PartialEq)]
pub struct QaPromptBatch {
    /// Prompt tokens, left-padded so every row ends at the last column; no targets.
    pub tokens: TokenBatch,
    /// The questions, as given.
    pub questions: Vec<String>,
    /// Gold answers per row.
    pub answers: Vec<Vec<String>>,
}

/// Generation prompts for `questions`, left-padded to the longest, with their gold answers.
pub fn qa_prompt_batch(
    encoder: &dyn TextEncoder,
    questions: &[&Question],
    config: &QaBatchConfig,
) -> Result<QaPromptBatch, DataError> {
    let mut rows = Vec::with_capacity(questions.len());
    for q in questions {
        let mut ids = encoder.encode(&config.prompt(&q.question))?.ids;
        if ids.len() > config.max_prompt_tokens {
            ids.drain(..ids.len() - config.max_prompt_tokens);
        }
        rows.push(ids);
    }
    let no_targets: Vec<Vec<bool>> = rows.iter().map(|r| vec![false; r.len()]).collect();
    let pad_id = config.pad_id.unwrap_or_else(|| encoder.eos_id());
    let tokens = TokenBatch::from_rows(&rows, Some(&no_targets), pad_id, Padding::Left, None)?;
    Ok(QaPromptBatch {
        tokens,
        questions: questions.iter().map(|q| q.question.clone()).collect(),
        answers: questions.iter().map(|q| q.answers.clone()).collect(),
    })
}

/// Unrelated text for the locality term, cut into windows of exactly `window` tokens: the texts are
/// tokenised, joined with the end-of-sequence id between them and cut; a shorter tail is dropped
/// (unless there is no full window, then the tail is the one, right-padded, row). Every real token
/// is a target. [`TokenBatch::select`] takes a random batch of windows.
pub fn locality_batch<S: AsRef<str>>(
    encoder: &dyn TextEncoder,
    texts: &[S],
    window: usize,
) -> Result<TokenBatch, DataError> {
    if window == 0 {
        return Err(DataError::InvalidOption {
            option: "locality window",
            value: "0".to_string(),
            expected: "at least 1".to_string(),
        });
    }
    let eos = encoder.eos_id();
    let mut stream = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            stream.push(eos);
        }
        stream.extend(encoder.encode(text.as_ref())?.ids);
    }
    let mut rows: Vec<Vec<u32>> = stream.chunks_exact(window).map(<[u32]>::to_vec).collect();
    if rows.is_empty() && !stream.is_empty() {
        rows.push(stream);
    }
    TokenBatch::from_rows(&rows, None, eos, Padding::Right, Some(window))
}
