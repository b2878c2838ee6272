//! TF-IDF token weights with scikit-learn's `TfidfVectorizer()` conventions, mapped from words to
//! tokens through character offsets (the paper's "TF-IDF + X%" baseline).
//!
//! Fit: lower-case (`str.lower`), words = `(?u)\b\w\w+\b` (maximal runs of at least two word
//! characters: letters, digits, underscore), idf = ln((1 + n) / (1 + df)) + 1 (`smooth_idf`).
//! Transform: raw counts × idf, l2-normalised per document; words the corpus never saw get 0.
//! A token's weight is the largest weight of the words its character span overlaps (0 on spaces
//! and punctuation); then every real token whose weight is below the `min_threshold` quantile of
//! the document's token weights is set to 0.

use std::collections::{BTreeMap, HashMap};

use crate::squad_metrics::is_word_char;

/// One word occurrence: its lower-cased text and `[start, end)` character span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The lower-cased word.
    pub text: String,
    /// Character span in the original text.
    pub span: (usize, usize),
}

/// The words of `text` as scikit-learn's default analyzer finds them.
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().chain(std::iter::once(&' ')).enumerate() {
        if i < chars.len() && is_word_char(c) {
            if current.is_empty() {
                start = i;
            }
            current.push(c);
        } else if !current.is_empty() {
            if current.chars().count() >= 2 {
                out.push(Word { text: current.to_lowercase(), span: (start, i) });
            }
            current.clear();
        }
    }
    out
}

/// A fitted vocabulary with its idf.
#[derive(Debug, Clone, PartialEq)]
pub struct Tfidf {
    /// Term → column, columns in code-point order of the terms (as scikit-learn sorts them).
    pub vocabulary: BTreeMap<String, usize>,
    /// idf per column.
    pub idf: Vec<f64>,
}

impl Tfidf {
    /// Fits the vocabulary and idf on `corpus`.
    pub fn fit<S: AsRef<str>>(corpus: &[S]) -> Self {
        let mut df: BTreeMap<String, usize> = BTreeMap::new();
        for doc in corpus {
            let mut seen: Vec<String> = words(doc.as_ref()).into_iter().map(|w| w.text).collect();
            seen.sort_unstable();
            seen.dedup();
            for term in seen {
                *df.entry(term).or_default() += 1;
            }
        }
        let n = corpus.len() as f64;
        let vocabulary = df.keys().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        let idf = df.values().map(|&d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0).collect();
        Self { vocabulary, idf }
    }

    /// The document's l2-normalised TF-IDF weight of every known term it contains.
    pub fn word_weights(&self, text: &str) -> HashMap<String, f64> {
        let mut counts: HashMap<String, f64> = HashMap::new();
        for w in words(text) {
            if self.vocabulary.contains_key(&w.text) {
                *counts.entry(w.text).or_default() += 1.0;
            }
        }
        for (term, value) in counts.iter_mut() {
            *value *= self.idf[self.vocabulary[term]];
        }
        // Sum in a fixed (term) order: a HashMap's order differs between instances, and the weights
        // must be bit-identical between runs (adaptation fingerprints them to check a resume).
        let mut terms: Vec<&String> = counts.keys().collect();
        terms.sort_unstable();
        let norm = terms.iter().map(|t| counts[*t] * counts[*t]).sum::<f64>().sqrt();
        if norm > 0.0 {
            counts.values_mut().for_each(|v| *v /= norm);
        }
        counts
    }

    /// One weight per token (character `offsets` into `text`, as [`crate::Encoded::offsets`]):
    /// the largest weight of the words the token overlaps, then zeroed below the `min_threshold`
    /// quantile (in [0, 1]; 0 keeps everything) of these token weights.
    pub fn token_weights(&self, text: &str, offsets: &[(usize, usize)], min_threshold: f64) -> Vec<f32> {
        let weights = self.word_weights(text);
        let words = words(text);
        let mut out: Vec<f64> = offsets
            .iter()
            .map(|&(s, e)| {
                words
                    .iter()
                    .filter(|w| s < w.span.1 && w.span.0 < e.max(s + 1))
                    .filter_map(|w| weights.get(&w.text).copied())
                    .fold(0.0, f64::max)
            })
            .collect();
        if min_threshold > 0.0 && !out.is_empty() {
            let cut = quantile(&out, min_threshold);
            out.iter_mut().filter(|v| **v < cut).for_each(|v| *v = 0.0);
        }
        out.into_iter().map(|v| v as f32).collect()
    }
}

/// The q-quantile of `values` with linear interpolation between order statistics (numpy's default).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_default_token_pattern() {
        let w: Vec<String> = words("A cat's 2 big_dogs, café").into_iter().map(|w| w.text).collect();
        assert_eq!(w, ["cat", "big_dogs", "café"]);
    }

    #[test]
    fn weights_are_bit_identical_from_call_to_call() {
        let corpus: Vec<String> = (0..40).map(|i| format!("term{i} shared word{} other{}", i % 7, i % 3)).collect();
        let tfidf = Tfidf::fit(&corpus);
        let text: String = (0..40).map(|i| format!("term{i} word{} ", i % 5)).collect();
        let first = tfidf.word_weights(&text);
        for _ in 0..20 {
            let again = tfidf.word_weights(&text);
            assert!(first.iter().all(|(t, v)| again[t].to_bits() == v.to_bits()));
        }
    }

    #[test]
    fn threshold_zeroes_the_lowest_tokens() {
        let tfidf = Tfidf::fit(&["alpha beta beta", "beta gamma"]);
        let offsets = [(0, 5), (5, 6), (6, 10), (11, 15)];
        let w = tfidf.token_weights("alpha beta beta", &offsets, 0.0);
        assert_eq!(w[1], 0.0);
        assert!(w[0] > 0.0 && w[2] > 0.0);
        let cut = tfidf.token_weights("alpha beta beta", &offsets, 0.5);
        assert_eq!(cut.iter().filter(|&&v| v > 0.0).count(), 2);
    }
}
