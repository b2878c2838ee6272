#!/usr/bin/env python3
"""How concentrated the token weights of `camels-cli adapt` runs are (python3, stdlib only).

Reads OUT/weights.jsonl of one or more adapt runs (one line per document: its tokens with their
text, character offsets and weight) and prints, per run, medians over the documents of
- the largest weight in the document,
- the share of the document's total weight on its 5 heaviest tokens,
- the effective share of tokens, (sum w)^2 / (n * sum w^2): 1 for uniform weights, 1/n when one
  token carries everything (the same measure meta-training's validation logs as effective_share),
- the share of tokens weighted below 0.01 (practically left out of the step),
then the tokens with the highest mean weight among those seen at least `--min-count` times.
With `--stream FILE` (the JSONL stream the runs adapted on), also how well the weights pick out the
tokens of the gold answers (every occurrence of every answer in the text, as the `answers` oracle
and the probe label them): the area under the ROC curve of the weight as an answer-token score
(ties half), the mean weight of answer tokens over that of the others, and the share of the total
weight on answer tokens.
Collapsed weights (a few word pieces carrying all of a step) show as a large maximum, a top-5
share near 1 and an effective share near 1/n.

    python3 bench/weight_stats.py runs/smollm2/sweep/camels-1e-5 runs/smollm2/sweep/answers-1e-5
    python3 bench/weight_stats.py --stream runs/smollm2/data/test.jsonl runs/smollm2-norm/test/camels
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def document_stats(weights):
    total = sum(weights)
    squares = sum(w * w for w in weights)
    top = sorted(weights, reverse=True)
    n = len(weights)
    return {
        "max": top[0],
        "top5_share": sum(top[:5]) / total if total > 0 else float("nan"),
        "effective_share": total * total / (n * squares) if squares > 0 else float("nan"),
        "below_0.01": sum(w < 0.01 for w in weights) / n,
    }


def answer_spans(record):
    """Character spans of every occurrence of every answer of every question in the text."""
    text = record.get("text", "")
    spans = []
    for question in record.get("questions", []):
        for answer in question.get("answers", []):
            answer = answer if isinstance(answer, str) else answer.get("text", "")
            start = text.find(answer) if answer else -1
            while start >= 0:
                spans.append((start, start + len(answer)))
                start = text.find(answer, start + 1)
    return spans


def read_stream(path):
    spans = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                spans[record["id"]] = answer_spans(record)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                sys.exit(f"error: {path}: line {number}: {e}")
    return spans


def auc(scores, labels):
    """Area under the ROC curve of `scores` for boolean `labels`, ties counted half."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        rank_sum += sum(labels[k] for k in order[i : j + 1]) * ((i + j) / 2 + 1)
        i = j + 1
    pos = sum(labels)
    neg = len(labels) - pos
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg) if pos and neg else float("nan")


def answer_stats(path, spans):
    scores, labels, missing = [], [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["id"] not in spans:
                missing += 1
                continue
            doc_spans = spans[record["id"]]
            for t in record["tokens"]:
                s, e = t["start"], max(t["end"], t["start"] + 1)
                scores.append(float(t["weight"]))
                labels.append(any(s < b and a < e for a, b in doc_spans))
    if missing:
        sys.exit(f"error: {path}: {missing} documents are not in the stream")
    answer = [w for w, a in zip(scores, labels) if a]
    other = [w for w, a in zip(scores, labels) if not a]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    total = sum(scores)
    ratio = mean(answer) / mean(other) if mean(other) > 0 else float("inf")
    return auc(scores, labels), ratio, sum(answer) / total if total else float("nan")


def run_stats(path, min_count):
    per_doc = []
    by_token = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                tokens = record["tokens"]
                weights = [float(t["weight"]) for t in tokens]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                sys.exit(f"error: {path}: line {number}: {e}")
            if not weights:
                continue
            per_doc.append(document_stats(weights))
            for t in tokens:
                by_token[t["text"]].append(float(t["weight"]))
    if not per_doc:
        sys.exit(f"error: {path}: no document with tokens")
    medians = {k: statistics.median(d[k] for d in per_doc) for k in per_doc[0]}
    frequent = [(sum(v) / len(v), len(v), k) for k, v in by_token.items() if len(v) >= min_count]
    frequent.sort(reverse=True)
    return len(per_doc), medians, frequent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="adapt run directories (or weights.jsonl files)")
    parser.add_argument("--min-count", type=int, default=5, help="occurrences for the token table")
    parser.add_argument("--top", type=int, default=8, help="tokens listed per run")
    parser.add_argument("--stream", help="the JSONL stream the runs adapted on: adds the answer-token columns")
    args = parser.parse_args()
    spans = read_stream(args.stream) if args.stream else None
    extra = " answer AUC | answer ÷ other | weight on answers |" if spans else ""
    print("| run | documents | max weight | top-5 share | effective share | share below 0.01 |" + extra)
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" * 3 if spans else ""))
    tops = []
    for run in args.runs:
        path = Path(run)
        if path.is_dir():
            path = path / "weights.jsonl"
        if not path.is_file():
            sys.exit(f"error: {path}: not found (adapt writes weights.jsonl into its --out directory)")
        n, m, frequent = run_stats(path, args.min_count)
        cells = ""
        if spans is not None:
            a, ratio, share = answer_stats(path, spans)
            cells = f" {a:.3f} | {ratio:.3f} | {share:.3f} |"
        print(
            f"| {run} | {n} | {m['max']:.2f} | {m['top5_share']:.3f} | {m['effective_share']:.3f} "
            f"| {m['below_0.01']:.3f} |" + cells
        )
        tops.append((run, frequent[: args.top]))
    print()
    for run, frequent in tops:
        listed = ", ".join(f"{json.dumps(text)} {mean:.2f} ({count})" for mean, count, text in frequent)
        print(f"{run}: heaviest tokens on average (seen >= {args.min_count} times): {listed}")


if __name__ == "__main__":
    main()
