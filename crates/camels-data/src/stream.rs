//! Document streams: deduplication, seeded group shuffles, downsampling and index splits.
//!
//! [`build_stream`] does what the paper's dataset classes do: drop duplicate documents (merging
//! their questions), shuffle the order of groups (SQuAD article title, ArchivalQA `doc_id`) while
//! keeping each group's documents together and in order (`shuffle_groups`), then keep the first N
//! documents (`return_k_unique`). Everything is reproducible from the seed.

use std::collections::HashMap;
use std::ops::Range;

use crate::{DataError, Document, Rng};

/// How [`build_stream`] orders the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shuffle {
    /// Keep the file order.
    None,
    /// Shuffle documents one by one (the paper's StreamingQA: `sample(frac=1)`).
    Documents,
    /// Shuffle the order of groups ([`Document::group_key`]), keeping each group's documents
    /// together and in order (the paper's SQuAD and ArchivalQA: `shuffle_groups`).
    #[default]
    Groups,
}

/// Options of [`build_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Seed of the shuffle.
    pub seed: u64,
    /// How to order the documents.
    pub shuffle: Shuffle,
    /// Keep only the first N documents after the shuffle (`None`: all).
    pub downsample_to: Option<usize>,
    /// Merge documents with the same text first (their questions are merged).
    pub dedup: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self { seed: 0, shuffle: Shuffle::Groups, downsample_to: None, dedup: true }
    }
}

/// Deduplicates, shuffles (seeded) and downsamples `documents` into a stream.
///
/// ```
/// use camels_data::{build_stream, Document, Shuffle, StreamConfig};
/// let docs: Vec<Document> = (0..6)
///     .map(|i| {
///         let mut d = Document::new(format!("d{i}"), format!("text {i}"));
///         d.title = Some(format!("article {}", i / 2));
///         d
///     })
///     .collect();
/// let config = StreamConfig { seed: 3, shuffle: Shuffle::Groups, downsample_to: Some(4), dedup: true };
/// let stream = build_stream(docs.clone(), &config);
/// assert_eq!(stream.len(), 4);
/// assert_eq!(stream, build_stream(docs, &config)); // same seed, same stream
/// // documents of one article stay together and in order
/// assert_eq!(stream[0].title, stream[1].title);
/// ```
pub fn build_stream(documents: Vec<Document>, config: &StreamConfig) -> Vec<Document> {
    let mut documents = if config.dedup { dedup_by_text(documents) } else { documents };
    let mut rng = Rng::new(config.seed);
    documents = match config.shuffle {
        Shuffle::None => documents,
        Shuffle::Documents => {
            rng.shuffle(&mut documents);
            documents
        }
        Shuffle::Groups => shuffle_groups(documents, &mut rng),
    };
    if let Some(n) = config.downsample_to {
        documents.truncate(n);
    }
    documents
}

/// Merges documents with identical text into the first of them, appending the questions it does not
/// already have (same question text and answers). Order of first appearance is kept.
pub fn dedup_by_text(documents: Vec<Document>) -> Vec<Document> {
    let mut out: Vec<Document> = Vec::with_capacity(documents.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(documents.len());
    for document in documents {
        match index.get(&document.text) {
            Some(&i) => {
                let kept = &mut out[i];
                for q in document.questions {
                    let duplicate = kept.questions.iter().any(|k| k.question == q.question && k.answers == q.answers);
                    if !duplicate {
                        kept.questions.push(q);
                    }
                }
            }
            None => {
                index.insert(document.text.clone(), out.len());
                out.push(document);
            }
        }
    }
    out
}

/// Shuffles the order of groups ([`Document::group_key`], in order of first appearance) and
/// concatenates them; documents of a group stay together and keep their relative order.
pub fn shuffle_groups(documents: Vec<Document>, rng: &mut Rng) -> Vec<Document> {
    let mut groups: Vec<Vec<Document>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for document in documents {
        let key = document.group_key().to_string();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(document);
    }
    rng.shuffle(&mut groups);
    groups.into_iter().flatten().collect()
}

/// A seeded random subset of `n` documents, kept in their current order (all when `n >= len`).
pub fn sample_documents(documents: Vec<Document>, n: usize, rng: &mut Rng) -> Vec<Document> {
    if n >= documents.len() {
        return documents;
    }
    let mut keep = vec![false; documents.len()];
    for i in rng.sample_indices(documents.len(), n) {
        keep[i] = true;
    }
    documents.into_iter().zip(keep).filter_map(|(d, k)| k.then_some(d)).collect()
}

/// Splits by index ranges (e.g. the paper's `start_idx..end_idx`); ranges may overlap.
pub fn split_ranges(documents: &[Document], ranges: &[Range<usize>]) -> Result<Vec<Vec<Document>>, DataError> {
    ranges
        .iter()
        .map(|r| {
            if r.start > r.end || r.end > documents.len() {
                return Err(DataError::InvalidOption {
                    option: "split range",
                    value: format!("{}..{}", r.start, r.end),
                    expected: format!("a range within 0..{}", documents.len()),
                });
            }
            Ok(documents[r.clone()].to_vec())
        })
        .collect()
}

/// Splits consecutive parts by fractions of the stream (e.g. `[0.8, 0.1, 0.1]`); part `i` ends at
/// `round(len × (f_0 + … + f_i))`. Fractions must be non-negative and sum to at most 1.
pub fn split_fractions(documents: &[Document], fractions: &[f64]) -> Result<Vec<Vec<Document>>, DataError> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || total > 1.0 + 1e-9 {
        return Err(DataError::InvalidOption {
            option: "split fractions",
            value: format!("{fractions:?}"),
            expected: "non-negative fractions summing to at most 1".to_string(),
        });
    }
    let n = documents.len() as f64;
    let mut start = 0usize;
    let mut cumulative = 0.0;
    let mut parts = Vec::with_capacity(fractions.len());
    for f in fractions {
        cumulative += f;
        let end = ((cumulative * n).round() as usize).clamp(start, documents.len());
        parts.push(documents[start..end].to_vec());
        start = end;
    }
    Ok(parts)
}
