//! A rule-based detector of salient spans — names, numbers and dates — standing in for the spaCy
//! NER the paper's "salient spans" baseline used (no model, no dependency).
//!
//! Rules, on words (maximal runs of letters, digits, `'`, `-`, `.` inside a word):
//! * **names**: runs of capitalised words (first letter upper-case), which may be joined by
//!   `of`, `the`, `de`, `du`, `van`, `von`, `da`, `and`, `&`; a single capitalised word that opens a
//!   sentence counts only when it is not a common sentence opener (`The`, `In`, `He`, `It`, …);
//! * **numbers**: any word containing a digit (`1873`, `3.5`, `1990s`, `21st`, `12,000`);
//! * **dates**: month names and abbreviations, weekdays, and the words `century`, `BC`, `AD`
//!   right after a number.
//!
//! Spans that touch or are separated by one space or `, ` are merged, so `12 May 1990` and
//! `Paris, France` come out whole. [`answer_coverage`] measures how often gold answers fall inside
//! the spans: on `squad_v1.1/dev-v1.1-articles-00-35.json` (8,123 answers found in their paragraph),
//! 41.0% lie wholly inside a span and 63.2% overlap one (`cargo test -p camels-data --test metrics
//! salient -- --nocapture`).

use crate::Document;

const CONNECTORS: &[&str] = &["of", "the", "de", "du", "van", "von", "da", "and", "&", "del", "la", "le"];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const DATE_SUFFIXES: &[&str] = &["century", "centuries", "bc", "ad", "bce", "ce"];
const OPENERS: &[&str] = &[
    "the",
    "a",
    "an",
    "in",
    "on",
    "at",
    "he",
    "she",
    "it",
    "they",
    "we",
    "i",
    "this",
    "that",
    "these",
    "those",
    "his",
    "her",
    "its",
    "their",
    "there",
    "after",
    "before",
    "during",
    "when",
    "while",
    "although",
    "however",
    "as",
    "by",
    "for",
    "from",
    "with",
    "but",
    "and",
    "or",
    "if",
    "since",
    "some",
    "many",
    "most",
    "other",
    "both",
    "each",
    "one",
    "all",
    "another",
    "such",
    "what",
    "which",
    "who",
    "where",
    "why",
    "how",
    "also",
    "following",
    "today",
    "because",
    "despite",
    "unlike",
    "like",
    "under",
    "over",
    "between",
    "among",
    "according",
    "until",
    "though",
];

/// A word of the text: `[start, end)` in characters and its text.
struct Token {
    start: usize,
    end: usize,
    text: String,
    sentence_start: bool,
}

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut sentence_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '&' {
            let start = i;
            while i < chars.len() {
                let c = chars[i];
                let inner = matches!(c, '\'' | '-' | '.' | ',')
                    && i + 1 < chars.len()
                    && chars[i + 1].is_alphanumeric()
                    && (c != ',' || (chars[i - 1].is_ascii_digit() && chars[i + 1].is_ascii_digit()))
                    && (c != '.' || chars[i - 1].is_ascii_digit() || chars[i - 1].is_uppercase());
                if chars[i].is_alphanumeric() || inner || (c == '&' && i == start) {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Token { start, end: i, text: chars[start..i].iter().collect(), sentence_start });
            sentence_start = false;
        } else {
            if matches!(c, '.' | '!' | '?' | '\n' | '"' | ':' | ';') {
                sentence_start = true;
            }
            i += 1;
        }
    }
    out
}

fn is_capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

fn has_digit(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_digit())
}

/// Salient character spans `[start, end)` of `text`, sorted and merged (see the module docs).
///
/// ```
/// use camels_data::salient::salient_spans;
/// let text = "The treaty was signed in Paris on 12 May 1990 by Ilvo Marn.";
/// let spans: Vec<String> = salient_spans(text).iter().map(|&(s, e)| text[s..e].to_string()).collect();
/// assert_eq!(spans, ["Paris", "12 May 1990", "Ilvo Marn"]);
/// ```
pub fn salient_spans(text: &str) -> Vec<(usize, usize)> {
    let toks = tokens(text);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let lower = t.text.to_lowercase();
        if has_digit(&t.text) {
            let mut end = t.end;
            if let Some(next) = toks.get(i + 1)
                && DATE_SUFFIXES.contains(&next.text.to_lowercase().as_str())
            {
                end = next.end;
                i += 1;
            }
            spans.push((t.start, end));
            i += 1;
            continue;
        }
        if MONTHS.contains(&lower.as_str()) && is_capitalised(&t.text) {
            spans.push((t.start, t.end));
            i += 1;
            continue;
        }
        if is_capitalised(&t.text) {
            // A run of capitalised words, possibly joined by connectors.
            let mut j = i + 1;
            let mut last = i;
            while j < toks.len() {
                let w = &toks[j];
                if toks[j - 1].end + 1 < w.start && text_gap_breaks(text, toks[j - 1].end, w.start) {
                    break;
                }
                if is_capitalised(&w.text) && !w.sentence_start {
                    last = j;
                    j += 1;
                } else if CONNECTORS.contains(&w.text.to_lowercase().as_str()) && !w.sentence_start {
                    j += 1;
                } else {
                    break;
                }
            }
            let single_opener = last == i && t.sentence_start && OPENERS.contains(&lower.as_str());
            let opener_prefix = t.sentence_start && OPENERS.contains(&lower.as_str());
            if !single_opener {
                let start = if opener_prefix { toks[i + 1].start } else { t.start };
                spans.push((start, toks[last].end));
            }
            i = last + 1;
            continue;
        }
        i += 1;
    }
    merge(spans, text)
}

/// Whether the characters between two words end a name (anything but spaces).
fn text_gap_breaks(text: &str, from: usize, to: usize) -> bool {
    text.chars().skip(from).take(to - from).any(|c| !c.is_whitespace())
}

fn merge(mut spans: Vec<(usize, usize)>, text: &str) -> Vec<(usize, usize)> {
    spans.sort_unstable();
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 || joinable(&chars[last.1..s]) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn joinable(gap: &[char]) -> bool {
    gap == [' '] || gap == [',', ' ']
}

/// How often gold answers fall inside salient spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Questions whose first gold answer occurs in the document text.
    pub answers: usize,
    /// Of those, answers whose first occurrence lies wholly inside one salient span.
    pub inside: usize,
    /// Of those, answers whose first occurrence overlaps a salient span.
    pub overlapping: usize,
}

/// Counts, over every question of `documents`, where its first gold answer's first occurrence sits
/// relative to [`salient_spans`] of its document.
pub fn answer_coverage(documents: &[Document]) -> Coverage {
    let mut out = Coverage::default();
    for doc in documents {
        let spans = salient_spans(&doc.text);
        for q in &doc.questions {
            let Some(answer) = q.answers.first().filter(|a| !a.trim().is_empty()) else { continue };
            let Some(byte) = doc.text.find(answer.as_str()) else { continue };
            let start = doc.text[..byte].chars().count();
            let end = start + answer.chars().count();
            out.answers += 1;
            if spans.iter().any(|&(s, e)| s <= start && end <= e) {
                out.inside += 1;
            }
            if spans.iter().any(|&(s, e)| s < end && start < e) {
                out.overlapping += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        salient_spans(text).iter().map(|&(s, e)| chars[s..e].iter().collect()).collect()
    }

    #[test]
    fn names_numbers_and_dates() {
        assert_eq!(
            found("In 1873 the University of Paris hired 12,000 people."),
            ["1873", "University of Paris", "12,000"]
        );
        assert_eq!(found("He lived in the 19th century in São Paulo."), ["19th century", "São Paulo"]);
        assert_eq!(found("the cat sat on the mat"), Vec::<String>::new());
    }

    #[test]
    fn sentence_openers_are_not_names() {
        assert_eq!(found("The river is long. However, Denver Broncos won."), ["Denver Broncos"]);
    }
}
