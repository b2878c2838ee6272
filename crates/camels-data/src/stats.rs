//! Dataset statistics: documents, questions, answers found in their document and a length histogram
//! (power-of-two buckets, in tokens when an encoder is given, else in characters).

use std::fmt;
use std::path::Path;

use crate::batch::whitespace_cut;
use crate::{DataError, Document, Format, ReadReport, TextEncoder, read_any};

/// What document lengths are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// Tokens of the given encoder.
    Tokens,
    /// Unicode characters.
    Characters,
}

/// One histogram bucket: documents whose length lies in `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Smallest length in the bucket.
    pub low: usize,
    /// Largest length in the bucket.
    pub high: usize,
    /// Number of documents.
    pub count: usize,
}

/// Statistics of one file.
#[derive(Debug)]
pub struct Stats {
    /// What reading the file read and skipped.
    pub report: ReadReport,
    /// Documents.
    pub documents: usize,
    /// Questions.
    pub questions: usize,
    /// Gold answers over all questions.
    pub answers: usize,
    /// Questions with at least one answer occurring verbatim in their document.
    pub questions_answer_in_document: usize,
    /// Gold answers occurring verbatim in their document.
    pub answers_in_document: usize,
    /// Up to ten `(document id, question)` pairs whose answers do not occur in their document.
    pub answer_missing_examples: Vec<(String, String)>,
    /// Unit of the lengths.
    pub unit: LengthUnit,
    /// Shortest, median, longest document length; `None` without documents.
    pub length_min_median_max: Option<(usize, usize, usize)>,
    /// Mean document length.
    pub length_mean: f64,
    /// Power-of-two buckets from the shortest to the longest document (`[0, 0]`, `[1, 1]`,
    /// `[2, 3]`, `[4, 7]`, …).
    pub histogram: Vec<Bucket>,
}

/// Reads `path` (format guessed when `None`, malformed records skipped and reported) and computes
/// its [`Stats`]; lengths are in tokens of `encoder` when given (counted by [`count_tokens`]), else
/// in characters.
pub fn stats(path: &Path, format: Option<Format>, encoder: Option<&dyn TextEncoder>) -> Result<Stats, DataError> {
    let dataset = read_any(path, format, false)?;
    stats_of(&dataset.documents, dataset.report, encoder)
}

/// [`Stats`] of documents already read (token counts by [`count_tokens`]).
pub fn stats_of(
    documents: &[Document],
    report: ReadReport,
    encoder: Option<&dyn TextEncoder>,
) -> Result<Stats, DataError> {
    let mut lengths = Vec::with_capacity(documents.len());
    let mut questions = 0;
    let mut answers = 0;
    let mut questions_answer_in_document = 0;
    let mut answers_in_document = 0;
    let mut answer_missing_examples = Vec::new();
    for d in documents {
        lengths.push(match encoder {
            Some(e) => count_tokens(e, &d.text)?,
            None => d.text.chars().count(),
        });
        for q in &d.questions {
            questions += 1;
            answers += q.answers.len();
            let found = q.answers.iter().filter(|a| d.text.contains(a.as_str())).count();
            answers_in_document += found;
            if found > 0 {
                questions_answer_in_document += 1;
            } else if answer_missing_examples.len() < 10 {
                answer_missing_examples.push((d.id.clone(), q.question.clone()));
            }
        }
    }
    let mut sorted = lengths.clone();
    sorted.sort_unstable();
    let length_min_median_max =
        (!sorted.is_empty()).then(|| (sorted[0], sorted[sorted.len() / 2], sorted[sorted.len() - 1]));
    let length_mean =
        if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<usize>() as f64 / lengths.len() as f64 };
    Ok(Stats {
        report,
        documents: documents.len(),
        questions,
        answers,
        questions_answer_in_document,
        answers_in_document,
        answer_missing_examples,
        unit: if encoder.is_some() { LengthUnit::Tokens } else { LengthUnit::Characters },
        length_min_median_max,
        length_mean,
        histogram: histogram(&lengths),
    })
}

/// The number of tokens `encoder` makes of `text`, encoding at most 64 KiB at a time so that memory
/// stays bounded on huge documents (a tokenizer's encoding of a 60 MB text takes gigabytes).
///
/// Chunks end where a word starts after a space (`"…end| word"`), where tokenizers split the text
/// anyway, so on text made of words the count is exactly that of the whole text. Where no such
/// place lies in a chunk's second half it ends at the start of any whitespace run, else (a long
/// stretch without whitespace) at a character boundary. Tokenizers that join some whitespace to
/// the word before it, or a cut inside a word, may then split a token in two there: the count is an
/// approximation, typically one token too many per such cut.
pub fn count_tokens(encoder: &dyn TextEncoder, text: &str) -> Result<usize, DataError> {
    count_tokens_in_chunks(encoder, text, COUNT_CHUNK_BYTES)
}

/// The chunk size of [`count_tokens`].
const COUNT_CHUNK_BYTES: usize = 64 * 1024;

/// [`count_tokens`] with chunks of at most `chunk_bytes` (at least 4) bytes.
fn count_tokens_in_chunks(encoder: &dyn TextEncoder, text: &str, chunk_bytes: usize) -> Result<usize, DataError> {
    let chunk_bytes = chunk_bytes.max(4);
    let mut rest = text;
    let mut count = 0;
    while rest.len() > chunk_bytes {
        let cut = whitespace_cut(rest, chunk_bytes).unwrap_or_else(|| {
            let mut cut = chunk_bytes;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            cut
        });
        count += encoder.encode(&rest[..cut])?.ids.len();
        rest = &rest[cut..];
    }
    Ok(count + encoder.encode(rest)?.ids.len())
}

/// Power-of-two histogram: bucket 0 holds length 0, bucket k ≥ 1 holds `[2^(k-1), 2^k - 1]`.
/// Buckets run from the shortest to the longest length, empty ones included.
pub fn histogram(lengths: &[usize]) -> Vec<Bucket> {
    let bucket_of = |n: usize| if n == 0 { 0 } else { n.ilog2() as usize + 1 };
    let (Some(&min), Some(&max)) = (lengths.iter().min(), lengths.iter().max()) else {
        return Vec::new();
    };
    let (first, last) = (bucket_of(min), bucket_of(max));
    let mut buckets: Vec<Bucket> = (first..=last)
        .map(|k| {
            let (low, high) = if k == 0 { (0, 0) } else { (1usize << (k - 1), (1usize << k) - 1) };
            Bucket { low, high, count: 0 }
        })
        .collect();
    for &n in lengths {
        buckets[bucket_of(n) - first].count += 1;
    }
    buckets
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            LengthUnit::Tokens => "tokens",
            LengthUnit::Characters => "characters",
        };
        writeln!(f, "file        {} ({})", self.report.path.display(), self.report.format)?;
        writeln!(f, "records     {:>9}", self.report.records)?;
        writeln!(f, "skipped     {:>9}   malformed records", self.report.skipped.len())?;
        if self.report.impossible > 0 {
            writeln!(f, "left out    {:>9}   unanswerable questions", self.report.impossible)?;
        }
        writeln!(f, "documents   {:>9}", self.documents)?;
        writeln!(f, "questions   {:>9}", self.questions)?;
        writeln!(f, "answers     {:>9}", self.answers)?;
        writeln!(
            f,
            "answered    {:>9}   questions with an answer in their document ({:.1}%)",
            self.questions_answer_in_document,
            percent(self.questions_answer_in_document, self.questions)
        )?;
        writeln!(
            f,
            "found       {:>9}   answers found in their document ({:.1}%)",
            self.answers_in_document,
            percent(self.answers_in_document, self.answers)
        )?;
        if let Some((min, median, max)) = self.length_min_median_max {
            writeln!(f, "length      min {min}, median {median}, mean {:.1}, max {max} {unit}", self.length_mean)?;
        }
        if !self.histogram.is_empty() {
            writeln!(f, "\n{:>15}  {:>9}", unit, "documents")?;
            let most = self.histogram.iter().map(|b| b.count).max().unwrap_or(1).max(1);
            for b in &self.histogram {
                let bar = "#".repeat((b.count * 40).div_ceil(most));
                let range = if b.low == b.high { b.low.to_string() } else { format!("{}-{}", b.low, b.high) };
                writeln!(f, "{range:>15}  {:>9}  {bar}", b.count)?;
            }
        }
        if !self.answer_missing_examples.is_empty() {
            writeln!(
                f,
                "\nquestions whose answers are not in their document (first {}):",
                self.answer_missing_examples.len()
            )?;
            for (id, q) in &self.answer_missing_examples {
                writeln!(f, "  {id}: {q}")?;
            }
        }
        const SHOWN: usize = 20;
        for e in self.report.skipped.iter().take(SHOWN) {
            writeln!(f, "skipped: {e}")?;
        }
        if self.report.skipped.len() > SHOWN {
            writeln!(f, "skipped: … and {} more", self.report.skipped.len() - SHOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ByteEncoder;

    /// GPT-2's byte-level BPE from the repository's fixture files (as `tests/common` builds it).
    fn gpt2() -> tokenizers::Tokenizer {
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gpt2-tokenizer");
        let bpe = BPE::from_file(&format!("{dir}/vocab.json"), &format!("{dir}/merges.txt")).build().unwrap();
        let mut tokenizer = tokenizers::Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
        tokenizer
    }

    #[test]
    fn small_chunks_count_as_many_tokens_as_the_whole_text() {
        let tokenizer = gpt2();
        let paragraph = "Varodek Quillian founded the Ostrenn Institute in 1873, in Belkarra. It's naïve, \
                         isn't it?  Café  prices rose\tin May.\nThe institute (now a museum) stands.\n\n";
        let text = paragraph.repeat(40);
        let whole = TextEncoder::encode(&tokenizer, &text).unwrap().ids.len();
        for chunk in [64, 100, 333, 4096] {
            assert_eq!(count_tokens_in_chunks(&tokenizer, &text, chunk).unwrap(), whole, "chunks of {chunk}");
        }
        // Chunks too short to find a word boundary still count everything once or more.
        let tiny = count_tokens_in_chunks(&tokenizer, &text, 4).unwrap();
        assert!(tiny >= whole, "{tiny} < {whole}");
        assert_eq!(count_tokens_in_chunks(&ByteEncoder, &text, 4).unwrap(), text.len());
    }
}
