//! Tokenised batches: encoders (GPT-2 and bytes), documents, QA pairs, prompts, locality windows.

mod common;

use camels_data::{
    ByteEncoder, Document, DocumentBatchConfig, Overflow, PadTo, Padding, QaBatchConfig, Question, TextEncoder,
    TokenBatch, answer_spans, document_batch, locality_batch, qa_prompt_batch, qa_train_batch, tokens_in_spans,
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
