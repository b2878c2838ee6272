//! SQuAD v1.1 answer metrics: the official script's normalisation, exact match and token F1, and the
//! CaMeLS reference's lenient (prefix) exact match.
//!
//! `normalize_answer` follows `evaluate-v1.1.py`: lower-case (`str.lower`), drop ASCII punctuation
//! (`string.punctuation`; curly quotes and dashes stay), replace the words `a`, `an`, `the`
//! (`\b(a|an|the)\b`, Unicode word boundaries) by a space, collapse whitespace. F1 is 0 whenever
//! prediction and gold share no token, so `""` against `""` has EM 1 but F1 0, as in the script.

use std::collections::HashMap;

/// Python's `\w` on a `str`: letters, digits (any script) and the underscore.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The SQuAD normalisation (see the module docs).
///
/// ```
/// use camels_data::squad_metrics::normalize_answer;
/// assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
/// ```
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punct: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    // \b(a|an|the)\b → " ": a maximal run of word characters equal to an article.
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if is_word_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Strict exact match: the normalised strings are equal (the official script's EM).
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// The CaMeLS reference's lenient exact match (`util.exact_match(.., match_length=False)`): the
/// normalised prediction, cut to the normalised gold's length in characters, equals the normalised
/// gold — i.e. the prediction starts with the answer. Generations that run on past the answer count.
pub fn prefix_exact_match(prediction: &str, gold: &str) -> bool {
    let prediction = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let cut: String = prediction.chars().take(gold.chars().count()).collect();
    cut == gold
}

/// Token F1 of the normalised strings (0 when no token is shared).
pub fn f1_score(prediction: &str, gold: &str) -> f64 {
    let prediction = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let pred_tokens: Vec<&str> = prediction.split_whitespace().collect();
    let gold_tokens: Vec<&str> = gold.split_whitespace().collect();
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold_tokens {
        *gold_counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pred_tokens {
        if let Some(n) = gold_counts.get_mut(t)
            && *n > 0
        {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pred_tokens.len() as f64;
    let recall = same as f64 / gold_tokens.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// One prediction's scores, each the maximum over the gold answers (0 when there are none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnswerScores {
    /// Strict exact match, 0 or 1.
    pub em_strict: f64,
    /// The reference's lenient prefix exact match, 0 or 1.
    pub em_prefix: f64,
    /// Token F1 in [0, 1].
    pub f1: f64,
}

/// Scores `prediction` against every gold answer and keeps the best of each metric.
pub fn score(prediction: &str, golds: &[String]) -> AnswerScores {
    let mut out = AnswerScores::default();
    for gold in golds {
        out.em_strict = out.em_strict.max(f64::from(u8::from(exact_match(prediction, gold))));
        out.em_prefix = out.em_prefix.max(f64::from(u8::from(prefix_exact_match(prediction, gold))));
        out.f1 = out.f1.max(f1_score(prediction, gold));
    }
    out
}

/// Cleans a decoded generation into an answer, as the reference does before scoring: keeps the
/// first line, trims, and drops `.`, `,`, `'` and `"` (`util.clean_up`).
pub fn clean_generation(text: &str) -> String {
    let first_line = text.trim_start().lines().next().unwrap_or("");
    first_line.chars().filter(|c| !matches!(c, '.' | ',' | '\'' | '"')).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_em_accepts_run_on_generations() {
        assert!(prefix_exact_match("Denver Broncos won the game", "the Denver Broncos"));
        assert!(!exact_match("Denver Broncos won the game", "the Denver Broncos"));
        assert!(!prefix_exact_match("Denver", "Denver Broncos"));
    }

    #[test]
    fn articles_are_whole_words_only() {
        assert_eq!(normalize_answer("Theatre and an apple"), "theatre and apple");
        assert_eq!(normalize_answer("a-b"), "ab");
    }

    #[test]
    fn cleaning_keeps_the_first_line() {
        assert_eq!(clean_generation(" Paris.\nQuestion: what"), "Paris");
    }
}
