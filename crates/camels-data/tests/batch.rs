//! Tokenised batches: encoders (GPT-2 and bytes), documents, QA pairs, prompts, locality windows.

mod common;

use std::cell::Cell;

use camels_data::{
    ByteEncoder, DataError, Document, DocumentBatchConfig, Encoded, Format, Overflow, PadTo, Padding, QaBatchConfig,
    Question, ReadReport, TextEncoder, TokenBatch, answer_spans, count_tokens, document_batch, encode_prefix,
    locality_batch, qa_prompt_batch, qa_train_batch, stats_of, tokens_in_spans,
};

#[test]
fn gpt2_offsets_are_character_offsets_on_non_ascii_text() {
    let tokenizer = common::gpt2();
    assert_eq!(TextEncoder::eos_id(&tokenizer), 50256);
    let text = "Café in 東京, naïve über-Straße!";
    let chars: Vec<char> = text.chars().collect();
    let encoded = TextEncoder::encode(&tokenizer, text).unwrap();
    assert_eq!(encoded.ids.len(), encoded.offsets.len());
    // tokenizers' plain `encode` gives byte offsets, which end at the byte length instead.
    // (`TextEncoder::encode` shadows the inherent method, which lives on the deref target.)
    let bytes = (*tokenizer).encode(text, false).unwrap();
    assert_eq!(bytes.get_offsets().last().unwrap().1, text.len());
    assert_eq!(encoded.offsets.last().unwrap().1, chars.len());
    assert_ne!(text.len(), chars.len());
    // Byte-level BPE may split one character over several tokens, so spans can overlap (both
    // tokens of "東" point at it). Runs of overlapping spans decode to exactly their characters.
    let mut i = 0;
    let mut covered = 0;
    while i < encoded.ids.len() {
        let (start, mut end) = encoded.offsets[i];
        assert_eq!(start, covered, "token {i} leaves a gap");
        let mut j = i + 1;
        while j < encoded.ids.len() && encoded.offsets[j].0 < end {
            end = end.max(encoded.offsets[j].1);
            j += 1;
        }
        let decoded = tokenizer.decode(&encoded.ids[i..j], false).unwrap();
        let expected: String = chars[start..end].iter().collect();
        assert_eq!(decoded, expected, "tokens {i}..{j} with span {start}..{end}");
        covered = end;
        i = j;
    }
    assert_eq!(covered, chars.len());
    // The GPT-2 ids of a known phrase.
    assert_eq!(TextEncoder::encode(&tokenizer, "Hello world").unwrap().ids, vec![15496, 995]);
}

#[test]
fn byte_encoder_maps_every_byte_to_its_character() {
    let encoded = ByteEncoder.encode("aé").unwrap();
    assert_eq!(encoded.ids, vec![97, 0xc3, 0xa9]);
    assert_eq!(encoded.offsets, vec![(0, 1), (1, 2), (1, 2)]);
    assert_eq!(ByteEncoder.eos_id(), 256);
}

#[test]
fn document_batches_pad_truncate_and_split() {
    let texts = ["abcdefghij", "xyz", ""];
    let config = DocumentBatchConfig { max_doc_tokens: 4, ..DocumentBatchConfig::default() };
    let batch = document_batch(&ByteEncoder, &texts, &config).unwrap();
    assert_eq!(batch.tokens.shape(), [3, 4]);
    assert_eq!(batch.tokens.row(0), &[97, 98, 99, 100]);
    assert_eq!(batch.tokens.row(1), &[120, 121, 122, 256]);
    assert_eq!(batch.tokens.row(2), &[256, 256, 256, 256]);
    assert_eq!(batch.tokens.lengths(), vec![4, 3, 0]);
    assert_eq!(batch.tokens.target_mask, batch.tokens.attention_mask);
    assert_eq!(batch.tokens.padding, Padding::Right);
    assert_eq!(batch.documents, vec![0, 1, 2]);

    let windows =
        DocumentBatchConfig { overflow: Overflow::Windows, pad_to: PadTo::Longest, pad_id: Some(0), ..config };
    let batch = document_batch(&ByteEncoder, &texts, &windows).unwrap();
    assert_eq!(batch.tokens.shape(), [5, 4]);
    assert_eq!(batch.documents, vec![0, 0, 0, 1, 2]);
    assert_eq!(batch.tokens.row(2), &[105, 106, 0, 0]);
    assert_eq!(batch.offsets[1], vec![(4, 5), (5, 6), (6, 7), (7, 8)]);

    let longest =
        DocumentBatchConfig { max_doc_tokens: 1024, pad_to: PadTo::Longest, ..DocumentBatchConfig::default() };
    let batch = document_batch(&ByteEncoder, &texts, &longest).unwrap();
    assert_eq!(batch.tokens.shape(), [3, 10]);

    let zero = DocumentBatchConfig { max_doc_tokens: 0, ..DocumentBatchConfig::default() };
    let err = document_batch(&ByteEncoder, &texts, &zero).unwrap_err();
    assert!(err.to_string().contains("invalid max_doc_tokens = 0"));
}

#[test]
fn default_document_batch_pads_to_1024_gpt2_tokens() {
    let tokenizer = common::gpt2();
    let long = "word ".repeat(1500);
    let batch = document_batch(&tokenizer, &[long.as_str(), "Short."], &DocumentBatchConfig::default()).unwrap();
    assert_eq!(batch.tokens.shape(), [2, 1024]);
    assert_eq!(batch.tokens.lengths(), vec![1024, 2]);
    assert_eq!(batch.tokens.pad_id, 50256);
}

#[test]
fn qa_training_rows_mark_only_the_answer_and_eos_as_targets() {
    let tokenizer = common::gpt2();
    let pairs = [("Who founded the Ostrenn Institute?", "Varodek Quillian"), ("When?", "1873")];
    let batch = qa_train_batch(&tokenizer, &pairs, &QaBatchConfig::default()).unwrap();
    assert_eq!(batch.batch, 2);
    for (b, (question, answer)) in pairs.iter().enumerate() {
        let ids = batch.row(b);
        let mask = &batch.target_mask[b * batch.len..(b + 1) * batch.len];
        let targets: Vec<u32> = ids.iter().zip(mask).filter(|(_, m)| **m > 0.0).map(|(i, _)| *i).collect();
        assert_eq!(tokenizer.decode(&targets, false).unwrap(), format!(" {answer}<|endoftext|>"));
        let n = batch.lengths()[b];
        let prompt: Vec<u32> = ids[..n].iter().zip(mask).filter(|(_, m)| **m == 0.0).map(|(i, _)| *i).collect();
        assert_eq!(tokenizer.decode(&prompt, false).unwrap(), *question);
        // Padding is never a target.
        assert!(mask[n..].iter().all(|&m| m == 0.0));
    }
}

#[test]
fn qa_training_options_template_capitalise_truncate_pad() {
    let config = QaBatchConfig {
        prompt_template: "Q: {question} A:".to_string(),
        capitalize_answer: true,
        include_eos: false,
        max_len: 8,
        pad_to_max: true,
        pad_id: Some(0),
        ..QaBatchConfig::default()
    };
    let batch = qa_train_batch(&ByteEncoder, &[("Why?", "because")], &config).unwrap();
    // "Q: Why? A:" (10) + " Because" (8) = 18 > 8: the prompt goes first, then the answer's end.
    assert_eq!(batch.shape(), [1, 8]);
    assert_eq!(batch.tokens(0), b" Because".map(u32::from));
    assert!(batch.target_mask.iter().all(|&m| m == 1.0));

    let batch = qa_train_batch(&ByteEncoder, &[("Why?", "no")], &config).unwrap();
    assert_eq!(batch.tokens(0), b"y? A: No".map(u32::from));
    assert_eq!(batch.target_mask, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn qa_prompts_are_left_padded_and_carry_the_answers() {
    let q1 = Question::new("Who?", vec!["Ilvo Marn".into(), "Marn".into()]);
    let q2 = Question::new("When was it?", vec!["1873".into()]);
    let prompts = qa_prompt_batch(&ByteEncoder, &[&q1, &q2], &QaBatchConfig::default()).unwrap();
    let t = &prompts.tokens;
    assert_eq!(t.shape(), [2, 12]);
    assert_eq!(t.padding, Padding::Left);
    assert_eq!(&t.row(0)[..8], &[256; 8]);
    assert_eq!(t.tokens(0), b"Who?".map(u32::from));
    assert_eq!(&t.attention_mask[..12], &[0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 1., 1.]);
    assert_eq!(&t.position_ids()[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
    assert!(t.target_mask.iter().all(|&m| m == 0.0));
    assert_eq!(prompts.answers[0], vec!["Ilvo Marn", "Marn"]);
    assert_eq!(prompts.questions[1], "When was it?");

    let short = QaBatchConfig { max_prompt_tokens: 3, ..QaBatchConfig::default() };
    let prompts = qa_prompt_batch(&ByteEncoder, &[&q2], &short).unwrap();
    assert_eq!(prompts.tokens.tokens(0), b"it?".map(u32::from));
}

#[test]
fn locality_windows_have_fixed_length() {
    let batch = locality_batch(&ByteEncoder, &["abcde", "fgh"], 3).unwrap();
    // "abcde" eos "fgh" = 9 tokens = 3 windows
    assert_eq!(batch.shape(), [3, 3]);
    assert_eq!(batch.row(1), &[100, 101, 256]);
    assert!(batch.attention_mask.iter().all(|&m| m == 1.0));
    let picked = batch.select(&[2, 0]);
    assert_eq!(picked.row(0), &[102, 103, 104]);
    assert_eq!(picked.batch, 2);

    let short = locality_batch(&ByteEncoder, &["ab"], 4).unwrap();
    assert_eq!(short.shape(), [1, 4]);
    assert_eq!(short.lengths(), vec![2]);
    assert!(locality_batch(&ByteEncoder, &["ab"], 0).is_err());

    let tokenizer = common::gpt2();
    let text = "The kettle takes about three minutes to boil. ".repeat(40);
    let batch = locality_batch(&tokenizer, &[text.as_str()], 64).unwrap();
    assert_eq!(batch.len, 64);
    assert!(batch.batch >= 5);
}

#[test]
fn answer_spans_select_the_answer_tokens() {
    let tokenizer = common::gpt2();
    let mut document = Document::new("d", "Born in Belkarra in 1873, Ilvo Marn became a cartographer.");
    document.questions.push(Question::new("When?", vec!["1873".into()]));
    document.questions.push(Question::new("Trade?", vec!["cartographer".into()]));
    let spans = answer_spans(&document);
    assert_eq!(spans, vec![(20, 24), (45, 57)]);
    let encoded = tokenizer.encode_char_offsets(document.text.as_str(), false).unwrap();
    let marked = tokens_in_spans(encoded.get_offsets(), &spans);
    let ids: Vec<u32> = encoded.get_ids().iter().zip(&marked).filter(|(_, m)| **m).map(|(i, _)| *i).collect();
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), " 1873 cartographer");
}

#[test]
fn token_batch_rejects_rows_longer_than_the_padded_length() {
    let err = TokenBatch::from_rows(&[vec![1, 2, 3]], None, 0, Padding::Right, Some(2)).unwrap_err();
    assert!(err.to_string().contains("at least the longest row (3 tokens)"));
    let err = TokenBatch::from_rows(&[vec![1, 2]], Some(&[vec![true]]), 0, Padding::Right, None).unwrap_err();
    assert!(err.to_string().contains("one flag per token"));
    let empty = TokenBatch::from_rows(&[], None, 0, Padding::Right, None).unwrap();
    assert_eq!(empty.shape(), [0, 0]);
}

/// An encoder that remembers the longest text it was given.
struct Recording<'a> {
    inner: &'a dyn TextEncoder,
    longest: Cell<usize>,
}

impl<'a> Recording<'a> {
    fn new(inner: &'a dyn TextEncoder) -> Self {
        Self { inner, longest: Cell::new(0) }
    }
}

impl TextEncoder for Recording<'_> {
    fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        self.longest.set(self.longest.get().max(text.len()));
        self.inner.encode(text)
    }

    fn eos_id(&self) -> u32 {
        self.inner.eos_id()
    }
}

/// One token per run of whitespace and per run of other characters, its id a hash of its text, so
/// that a word cut short gets another id.
struct Words;

impl TextEncoder for Words {
    fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Encoded::default();
        let mut start = 0;
        while start < chars.len() {
            let space = chars[start].is_whitespace();
            let end = (start..chars.len()).find(|&i| chars[i].is_whitespace() != space).unwrap_or(chars.len());
            let hash = chars[start..end].iter().fold(2_166_136_261u32, |h, &c| (h ^ c as u32).wrapping_mul(16_777_619));
            out.ids.push(hash);
            out.offsets.push((start, end));
            start = end;
        }
        Ok(out)
    }

    fn eos_id(&self) -> u32 {
        0
    }
}

/// GPT-2's vocabulary behind Llama 3's pre-tokenizer regex (SmolLM2 and Llama 3 tokenizers split
/// text like this), which joins punctuation with the line breaks after it: `".\n\n"` is one word.
fn llama3_style() -> tokenizers::Tokenizer {
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    let pattern = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let split =
        Split::new(SplitPattern::Regex(pattern.to_string()), tokenizers::SplitDelimiterBehavior::Isolated, false)
            .unwrap();
    let mut tokenizer = common::gpt2();
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ])));
    tokenizer
}

/// About `bytes` bytes of prose from a fixed pseudo-random sequence: words (non-ASCII, numbers,
/// punctuation, contractions) between single and double spaces, tabs, line breaks and paragraphs.
fn prose(bytes: usize, seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "the",
        "Ostrenn",
        "Institute",
        "was",
        "founded",
        "in",
        "1873,",
        "by",
        "Varodek",
        "Quillian.",
        "It's",
        "naïve",
        "café",
        "東京",
        "über-Straße!",
        "(see",
        "p.",
        "42)",
        "\"quoted\"",
        "don't",
        "12345678",
        "😀",
        "e.g.",
        "well-known",
    ];
    const GAPS: [&str; 10] = [" ", " ", " ", " ", "  ", "\n", ".\n\n", ", ", "\t", " \n "];
    let mut state = seed;
    let mut next = |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut text = String::new();
    while text.len() < bytes {
        text.push_str(WORDS[next(WORDS.len())]);
        text.push_str(GAPS[next(GAPS.len())]);
    }
    text
}

fn truncated(mut encoded: Encoded, max: usize) -> Encoded {
    encoded.ids.truncate(max);
    encoded.offsets.truncate(max);
    encoded
}

#[test]
fn encode_prefix_equals_the_whole_encoding_truncated() {
    let gpt2 = common::gpt2();
    let llama3 = llama3_style();
    let encoders: [(&str, &dyn TextEncoder); 4] =
        [("bytes", &ByteEncoder), ("words", &Words), ("gpt2", &gpt2), ("llama3-style", &llama3)];
    // Words of 8 to 2,400 letters: a prefix cut inside a word changes that word's tokens.
    let long_words: Vec<String> = (0..100).map(|i| "Belkarra".repeat(1 + i * 37 % 300)).collect();
    let texts = [
        ("prose", prose(60_000, 1)),
        ("long words", long_words.join(" ")),
        ("spaces", prose(30_000, 2).replace(' ', "   \n ")),
        // A 20 KB word first: the prefix must grow past it.
        ("long word", format!("{}{}", "Belkarra".repeat(2500), prose(20_000, 3))),
        ("no whitespace", "abc東京-42".repeat(3000)),
        ("short", "Hello world".to_string()),
        ("empty", String::new()),
    ];
    for (encoder_name, encoder) in encoders {
        for (text_name, text) in &texts {
            let whole = encoder.encode(text).unwrap();
            for max in [1, 2, 3, 10, 64, 300, 1000] {
                let recording = Recording::new(encoder);
                let prefix = encode_prefix(&recording, text, max).unwrap();
                assert_eq!(prefix, truncated(whole.clone(), max), "{encoder_name}, {text_name}, max {max}");
                if *text_name == "prose" {
                    // Only a prefix was encoded.
                    assert!(recording.longest.get() < text.len() / 2, "{encoder_name}, max {max}");
                }
            }
        }
    }
}

#[test]
fn truncating_document_batches_encode_only_a_prefix_of_long_documents() {
    let gpt2 = common::gpt2();
    let recording = Recording::new(&gpt2);
    let long = prose(1_000_000, 4);
    let texts = [long.as_str(), "Short."];
    let config = DocumentBatchConfig { max_doc_tokens: 64, ..DocumentBatchConfig::default() };
    let batch = document_batch(&recording, &texts, &config).unwrap();
    assert!(recording.longest.get() <= 16 * 64, "{}", recording.longest.get());
    // The same rows as the first window of each document, for which documents are encoded whole.
    let windows = DocumentBatchConfig { overflow: Overflow::Windows, ..config };
    let whole = document_batch(&gpt2, &texts, &windows).unwrap();
    let first_windows: Vec<usize> = (0..2).map(|d| whole.documents.iter().position(|&r| r == d).unwrap()).collect();
    assert_eq!(batch.tokens, whole.tokens.select(&first_windows));
    assert_eq!(batch.offsets, first_windows.iter().map(|&r| whole.offsets[r].clone()).collect::<Vec<_>>());
}

#[test]
fn chunked_token_count_equals_the_whole_count() {
    let gpt2 = common::gpt2();
    let llama3 = llama3_style();
    // Paragraphs of words, 300 KB: five chunks of 64 KiB.
    let text = prose(300_000, 5);
    for (name, encoder) in [("bytes", &ByteEncoder as &dyn TextEncoder), ("gpt2", &gpt2), ("llama3-style", &llama3)] {
        let recording = Recording::new(encoder);
        let whole = encoder.encode(&text).unwrap().ids.len();
        assert_eq!(count_tokens(&recording, &text).unwrap(), whole, "{name}");
        assert!(recording.longest.get() <= 64 * 1024, "{name}");
        let document = Document::new("long", text.as_str());
        let stats = stats_of(&[document], ReadReport::new("long.jsonl", Format::Jsonl), Some(encoder)).unwrap();
        assert_eq!(stats.length_min_median_max, Some((whole, whole, whole)), "{name}");
    }
}
