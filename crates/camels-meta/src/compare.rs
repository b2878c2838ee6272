//! Adaptation runs compared question by question: each run's F1, EM and gains with a 95% bootstrap
//! interval over questions, each run against a baseline (the difference of the gains and their
//! ratio, from the same resamples, so paired), and the retention curve: the answer-NLL gain of the
//! questions grouped by where their document sat in the stream (first quarter … last quarter).
//!
//! The runs must have asked the same questions in the same order (`adapt --eval-before` on one
//! stream writes `predictions.csv` with the before-columns this reads); that is checked.

use std::path::Path;

use camels_data::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// One question of a run's `predictions.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QuestionRow {
    /// The document's id.
    pub doc_id: String,
    /// The question.
    pub question: String,
    /// Lenient prefix EM after, 0 or 1.
    pub em: f64,
    /// Strict EM after, 0 or 1.
    pub em_strict: f64,
    /// Token F1 after, in [0, 1].
    pub f1: f64,
    /// Gold-answer NLL before.
    pub nll_before: Option<f64>,
    /// Gold-answer NLL after.
    pub nll: f64,
    /// Token F1 before.
    #[serde(default)]
    pub f1_before: Option<f64>,
    /// Strict EM before.
    #[serde(default)]
    pub em_strict_before: Option<f64>,
    /// Swapped-answer NLL before (questions with a partner only).
    #[serde(default)]
    pub swapped_nll_before: Option<f64>,
    /// Swapped-answer NLL after.
    #[serde(default)]
    pub swapped_nll: Option<f64>,
}

/// Reads a `predictions.csv` written by `adapt` (with `--eval-before`) or `eval` (no before-columns:
/// [`compare`] takes them from the baseline, which saw the same base and questions).
pub fn read_predictions(path: &Path) -> Result<Vec<QuestionRow>> {
    let parse =
        |row: usize, message: String| MetaError::Parse { path: path.into(), field: format!("row {row}"), message };
    let mut reader = csv::Reader::from_path(path).map_err(|e| parse(0, e.to_string()))?;
    let mut rows = Vec::new();
    for (i, record) in reader.deserialize::<QuestionRow>().enumerate() {
        rows.push(record.map_err(|e| parse(i + 1, e.to_string()))?);
    }
    if rows.is_empty() {
        return Err(parse(0, "no questions".into()));
    }
    Ok(rows)
}

/// An estimate with its 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// On all questions.
    pub estimate: f64,
    /// 2.5th percentile of the resamples.
    pub lo: f64,
    /// 97.5th percentile of the resamples.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval lies wholly above zero.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }

    fn of(estimate: f64, mut samples: Vec<f64>) -> Self {
        samples.retain(|v| v.is_finite());
        samples.sort_by(f64::total_cmp);
        if samples.is_empty() {
            return Self { estimate, lo: f64::NAN, hi: f64::NAN };
        }
        let at = |q: f64| samples[((q * (samples.len() - 1) as f64).round() as usize).min(samples.len() - 1)];
        Self { estimate, lo: at(0.025), hi: at(0.975) }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(3);
        write!(f, "{:.p$} [{:.p$}, {:.p$}]", self.estimate, self.lo, self.hi)
    }
}

/// One run's figures over its questions (F1 and EM in percent, NLLs in nats per answer token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// The run's name (`uniform`, `camels`).
    pub name: String,
    /// Questions.
    pub questions: usize,
    /// Questions with a swapped partner (the fact gain's).
    pub swapped_questions: usize,
    /// Strict EM after.
    pub em_strict: Interval,
    /// F1 after.
    pub f1: Interval,
    /// F1 after − before.
    pub f1_gain: Interval,
    /// Answer NLL before − after.
    pub nll_gain: Interval,
    /// Gold gain − swapped gain over the paired questions.
    pub fact_gain: Option<Interval>,
    /// Answer-NLL gain of the questions of each quarter of the stream, first to last.
    pub retention: Vec<Interval>,
}

/// A run against the baseline, on the same resamples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    /// The run.
    pub name: String,
    /// The baseline run.
    pub baseline: String,
    /// Answer-NLL gain minus the baseline's.
    pub nll_gain_diff: Interval,
    /// F1 gain minus the baseline's (points).
    pub f1_gain_diff: Interval,
    /// Fact gain minus the baseline's.
    pub fact_gain_diff: Option<Interval>,
    /// Answer-NLL gain over the baseline's (meaningful only when the baseline's gain is clearly
    /// positive).
    pub nll_gain_ratio: Interval,
    /// F1 gain over the baseline's.
    pub f1_gain_ratio: Interval,
}

/// Every run's statistics and every run against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// One per run, in the order given.
    pub runs: Vec<RunStats>,
    /// One per run other than the baseline.
    pub versus: Vec<Versus>,
}

/// Quarters of the retention curve.
pub const QUARTERS: usize = 4;

/// The point statistics of one run on the questions `idx` (with repeats, as a resample gives).
struct Point {
    em_strict: f64,
    f1: f64,
    f1_gain: f64,
    nll_gain: f64,
    fact_gain: f64,
    retention: [f64; QUARTERS],
}

fn point(rows: &[QuestionRow], quarter: &[usize], idx: &[usize]) -> Point {
    let n = idx.len().max(1) as f64;
    let sum = |f: &dyn Fn(&QuestionRow) -> f64| idx.iter().map(|&i| f(&rows[i])).sum::<f64>();
    let gain = |r: &QuestionRow| r.nll_before.unwrap_or(f64::NAN) - r.nll;
    let (mut fact, mut paired) = (0.0, 0usize);
    let mut by_quarter = [(0.0, 0usize); QUARTERS];
    for &i in idx {
        let r = &rows[i];
        if let (Some(b), Some(a)) = (r.swapped_nll_before, r.swapped_nll) {
            fact += gain(r) - (b - a);
            paired += 1;
        }
        let q = &mut by_quarter[quarter[i]];
        q.0 += gain(r);
        q.1 += 1;
    }
    Point {
        em_strict: 100.0 * sum(&|r| r.em_strict) / n,
        f1: 100.0 * sum(&|r| r.f1) / n,
        f1_gain: 100.0 * sum(&|r| r.f1 - r.f1_before.unwrap_or(f64::NAN)) / n,
        nll_gain: sum(&gain) / n,
        fact_gain: if paired > 0 { fact / paired as f64 } else { f64::NAN },
        retention: by_quarter.map(|(s, c)| if c > 0 { s / c as f64 } else { f64::NAN }),
    }
}

/// Compares `runs` (name, questions) against the run named `baseline`, with `resamples` bootstrap
/// resamples of the questions drawn from `seed`. The baseline must hold the before-columns
/// (`adapt --eval-before`); a run without them (an `eval` of a model adapted and then re-tuned
/// elsewhere) takes the baseline's, since every run starts from the same base.
pub fn compare(runs: &[(String, Vec<QuestionRow>)], baseline: &str, resamples: usize, seed: u64) -> Result<Comparison> {
    let mismatch = |reason: String| MetaError::InvalidOption {
        option: "--run".into(),
        value: runs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(","),
        expected: reason,
    };
    let Some(first) = runs.first() else { return Err(mismatch("at least one run".into())) };
    let base =
        runs.iter().position(|r| r.0 == baseline).ok_or_else(|| mismatch(format!("a run named `{baseline}`")))?;
    let n = first.1.len();
    for (name, rows) in runs {
        let same =
            rows.len() == n && rows.iter().zip(&first.1).all(|(a, b)| a.doc_id == b.doc_id && a.question == b.question);
        if !same {
            return Err(mismatch(format!(
                "runs over the same questions in the same order; `{name}` differs from `{}`",
                first.0
            )));
        }
    }
    if runs[base].1.iter().any(|r| r.nll_before.is_none() || r.f1_before.is_none()) {
        return Err(mismatch(format!(
            "a baseline `{baseline}` with before-columns: run it with `adapt --eval-before`"
        )));
    }
    let filled: Vec<(String, Vec<QuestionRow>)> = runs
        .iter()
        .map(|(name, rows)| {
            let rows = rows
                .iter()
                .zip(&runs[base].1)
                .map(|(r, b)| {
                    let mut r = r.clone();
                    if r.nll_before.is_none() {
                        r.nll_before = b.nll_before;
                        r.f1_before = b.f1_before;
                        r.em_strict_before = b.em_strict_before;
                    }
                    if r.swapped_nll.is_some() && r.swapped_nll_before.is_none() {
                        r.swapped_nll_before = b.swapped_nll_before;
                    }
                    r
                })
                .collect();
            (name.clone(), rows)
        })
        .collect();
    let runs = &filled;
    // The quarter of the stream each question's document sat in (documents in order of appearance).
    let mut order: Vec<&str> = Vec::new();
    let doc_pos: Vec<usize> = first
        .1
        .iter()
        .map(|r| match order.iter().position(|d| *d == r.doc_id) {
            Some(p) => p,
            None => {
                order.push(&r.doc_id);
                order.len() - 1
            }
        })
        .collect();
    let n_docs = order.len().max(1);
    let quarter: Vec<usize> = doc_pos.iter().map(|&p| p * QUARTERS / n_docs).collect();

    let all: Vec<usize> = (0..n).collect();
    let full: Vec<Point> = runs.iter().map(|(_, rows)| point(rows, &quarter, &all)).collect();
    let mut rng = Rng::new(seed);
    let mut samples: Vec<Vec<Point>> = (0..runs.len()).map(|_| Vec::with_capacity(resamples)).collect();
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.index(n)).collect();
        for (r, (_, rows)) in runs.iter().enumerate() {
            samples[r].push(point(rows, &quarter, &idx));
        }
    }
    let interval = |r: usize, f: &dyn Fn(&Point) -> f64| Interval::of(f(&full[r]), samples[r].iter().map(f).collect());
    let paired = |r: usize, f: &dyn Fn(&Point, &Point) -> f64| {
        Interval::of(f(&full[r], &full[base]), samples[r].iter().zip(&samples[base]).map(|(a, b)| f(a, b)).collect())
    };
    let stats = runs
        .iter()
        .enumerate()
        .map(|(r, (name, rows))| {
            let swapped = rows.iter().filter(|q| q.swapped_nll.is_some()).count();
            RunStats {
                name: name.clone(),
                questions: n,
                swapped_questions: swapped,
                em_strict: interval(r, &|p| p.em_strict),
                f1: interval(r, &|p| p.f1),
                f1_gain: interval(r, &|p| p.f1_gain),
                nll_gain: interval(r, &|p| p.nll_gain),
                fact_gain: (swapped > 0).then(|| interval(r, &|p| p.fact_gain)),
                retention: (0..QUARTERS).map(|q| interval(r, &|p| p.retention[q])).collect(),
            }
        })
        .collect::<Vec<_>>();
    let versus = (0..runs.len())
        .filter(|&r| r != base)
        .map(|r| Versus {
            name: runs[r].0.clone(),
            baseline: baseline.to_string(),
            nll_gain_diff: paired(r, &|a, b| a.nll_gain - b.nll_gain),
            f1_gain_diff: paired(r, &|a, b| a.f1_gain - b.f1_gain),
            fact_gain_diff: stats[r].fact_gain.map(|_| paired(r, &|a, b| a.fact_gain - b.fact_gain)),
            nll_gain_ratio: paired(r, &|a, b| a.nll_gain / b.nll_gain),
            f1_gain_ratio: paired(r, &|a, b| a.f1_gain / b.f1_gain),
        })
        .collect();
    Ok(Comparison { resamples, runs: stats, versus })
}

/// The comparison as Markdown tables: runs, runs against the baseline, the retention curve.
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!(
        "95% intervals: percentile bootstrap over questions, {} resamples, paired across runs.\n\n\
         | run | questions | EM strict % | F1 % | F1 gain (points) | answer NLL gain | fact gain |\n\
         |---|---|---|---|---|---|---|\n",
        c.resamples
    );
    for r in &c.runs {
        let fact = r.fact_gain.map_or("-".to_string(), |f| format!("{f:.3}"));
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {fact} |\n",
            r.name, r.questions, r.em_strict, r.f1, r.f1_gain, r.nll_gain
        ));
    }
    if !c.versus.is_empty() {
        out.push_str(
            "\n| run − baseline | answer NLL gain diff | F1 gain diff | fact gain diff | NLL gain ratio | F1 gain ratio |\n\
             |---|---|---|---|---|---|\n",
        );
        for v in &c.versus {
            let fact = v.fact_gain_diff.map_or("-".to_string(), |f| format!("{f:.3}"));
            out.push_str(&format!(
                "| {} − {} | {:.3} | {:.2} | {fact} | {:.2} | {:.2} |\n",
                v.name, v.baseline, v.nll_gain_diff, v.f1_gain_diff, v.nll_gain_ratio, v.f1_gain_ratio
            ));
        }
    }
    out.push_str(
        "\nRetention: answer NLL gain by the quarter of the stream the question's document sat in.\n\n| run |",
    );
    for q in 1..=QUARTERS {
        out.push_str(&format!(" quarter {q} |"));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(QUARTERS)));
    for r in &c.runs {
        out.push_str(&format!("| {} |", r.name));
        for q in &r.retention {
            out.push_str(&format!(" {q:.3} |"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(doc: usize, q: usize, nll_before: f64, nll: f64, f1_before: f64, f1: f64) -> QuestionRow {
        QuestionRow {
            doc_id: format!("d{doc}"),
            question: format!("q{q}"),
            em: 0.0,
            em_strict: 0.0,
            f1,
            nll_before: Some(nll_before),
            nll,
            f1_before: Some(f1_before),
            em_strict_before: Some(0.0),
            swapped_nll_before: Some(3.0),
            swapped_nll: Some(3.0),
        }
    }

    #[test]
    fn a_clear_win_excludes_zero_and_noise_does_not() {
        // 8 documents × 10 questions; `better` gains 0.5 more NLL on every question, `noisy` ±0.5.
        let base: Vec<QuestionRow> = (0..80).map(|i| row(i / 10, i, 3.0, 2.9, 0.0, 0.1)).collect();
        let better: Vec<QuestionRow> = (0..80).map(|i| row(i / 10, i, 3.0, 2.4, 0.0, 0.3)).collect();
        let noisy: Vec<QuestionRow> =
            (0..80).map(|i| row(i / 10, i, 3.0, if i % 2 == 0 { 2.4 } else { 3.4 }, 0.0, 0.1)).collect();
        let runs = vec![("uniform".to_string(), base), ("camels".to_string(), better), ("noisy".to_string(), noisy)];
        let c = compare(&runs, "uniform", 500, 0).unwrap();
        let camels = &c.versus[0];
        assert!((camels.nll_gain_diff.estimate - 0.5).abs() < 1e-9);
        assert!(camels.nll_gain_diff.above_zero());
        assert!((camels.nll_gain_ratio.estimate - 6.0).abs() < 1e-9);
        assert!((camels.f1_gain_diff.estimate - 20.0).abs() < 1e-9);
        let noisy = &c.versus[1];
        assert!(noisy.nll_gain_diff.lo < 0.0 && noisy.nll_gain_diff.hi > 0.0, "{:?}", noisy.nll_gain_diff);
        // The fact gain: swapped answers do not move, so it equals the gold gain.
        assert!((c.runs[1].fact_gain.unwrap().estimate - 0.6).abs() < 1e-9);
        // Every quarter of the stream holds two documents here.
        assert_eq!(c.runs[0].retention.len(), QUARTERS);
        assert!((c.runs[1].retention[3].estimate - 0.6).abs() < 1e-9);
        assert!(markdown(&c).contains("| camels − uniform |"));
    }

    #[test]
    fn a_run_without_before_columns_takes_the_baselines_for_its_fact_gain() {
        // `adapt` without --eval-before (and `eval`) write the swapped NLL after, not before.
        let base: Vec<QuestionRow> = (0..8).map(|i| row(i, i, 3.0, 2.9, 0.0, 0.1)).collect();
        let other: Vec<QuestionRow> = (0..8)
            .map(|i| QuestionRow {
                nll_before: None,
                f1_before: None,
                em_strict_before: None,
                swapped_nll_before: None,
                swapped_nll: Some(2.8),
                ..row(i, i, 0.0, 2.5, 0.0, 0.1)
            })
            .collect();
        let c = compare(&[("uniform".into(), base), ("camels".into(), other)], "uniform", 100, 0).unwrap();
        // Gold gain 0.5 minus the swapped answers' gain 0.2.
        assert!((c.runs[1].fact_gain.unwrap().estimate - 0.3).abs() < 1e-9);
        assert!((c.versus[0].fact_gain_diff.unwrap().estimate - 0.2).abs() < 1e-9);
    }

    #[test]
    fn runs_over_different_questions_are_refused() {
        let a: Vec<QuestionRow> = (0..4).map(|i| row(i, i, 3.0, 2.0, 0.0, 0.0)).collect();
        let mut b = a.clone();
        b[2].question = "another".into();
        let err = compare(&[("a".into(), a), ("b".into(), b)], "a", 10, 0).unwrap_err().to_string();
        assert!(err.contains("same questions"), "{err}");
    }
}
