#!/usr/bin/env python3
"""Where an adaptation run's answer-NLL gain comes from, by kind of answer (python3, stdlib only).

Reads the predictions.csv of one or more `camels-cli adapt --out DIR` runs over the same stream
(the first with `--eval-before`; a run without before-columns takes the first's, as
`camels-cli compare` does: every run starts from the same base) and prints, per group of
questions, each run's mean answer-NLL gain (NLL before - NLL after), F1 gain (points) and fact
gain (the gold answer's NLL gain minus that of the other document's answer swapped in, where
predictions.csv has the swapped columns):
- by kind of gold answer: a year, a count, a date, a role (lower case) or a name (capitalised);
- by whether the gold answer also occurs (as whole words) in another streamed document
  ("elsewhere") or only in its own ("only here"): a gain on "elsewhere" answers can come from
  the stream's vocabulary alone.
The kind is that of the shortest gold answer, the one whose NLL predictions.csv holds. Unlike
camels' own swapped-answer pairing, "elsewhere" is matched case-sensitively on the raw text.

    python3 bench/answer_breakdown.py --stream runs/demo-3/world/test.jsonl --n-docs 200 \
        runs/adapt-uniform runs/adapt-answers
"""

import argparse
import csv
import json
import re
import sys
from collections import defaultdict


def kind(answer: str) -> str:
    if re.fullmatch(r"\d{4}", answer):
        return "year"
    if re.fullmatch(r"[\d,.]+", answer):
        return "count"
    if re.search(r"\d", answer):
        return "date"
    if answer[:1].islower():
        return "role"
    return "name"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", required=True, help="the JSONL stream the runs adapted on")
    parser.add_argument("--n-docs", type=int, default=None, help="documents streamed (all when absent)")
    parser.add_argument("runs", nargs="+", help="adapt output directories (each with predictions.csv)")
    args = parser.parse_args()

    docs = []
    with open(args.stream, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    docs.append((line_no, json.loads(line)))
                except json.JSONDecodeError as e:
                    sys.exit(f"{args.stream}: line {line_no}: not JSON ({e})")
    docs = docs[: args.n_docs] if args.n_docs else docs
    # Document ids as camels reads them: `id`, else `line N`.
    texts = {str(d.get("id", f"line {n}")): d["text"] for n, d in docs}

    runs = {}
    for run in args.runs:
        path = f"{run}/predictions.csv"
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        if not runs:
            for i, row in enumerate(rows):
                for field in ("nll_before", "f1_before"):
                    if not row.get(field):
                        sys.exit(f"{path}: row {i + 2}: field {field} is empty (run adapt with --eval-before)")
        runs[run] = rows
    first = next(iter(runs.values()))
    for run, rows in runs.items():
        if [r["question"] for r in rows] != [r["question"] for r in first]:
            sys.exit(f"{run}/predictions.csv: not the same questions as {args.runs[0]}")
        for row, base in zip(rows, first):
            for field in ("nll_before", "f1_before", "swapped_nll_before"):
                if not row.get(field):
                    row[field] = base.get(field, "")

    metrics = ("nll", "f1", "fact")
    groups = {m: defaultdict(lambda: defaultdict(list)) for m in metrics}
    for i, row in enumerate(first):
        if row["doc_id"] not in texts:
            sys.exit(f"{args.runs[0]}/predictions.csv: row {i + 2}: doc_id {row['doc_id']} is not in the stream")
        answers = [a.strip() for a in row["answers"].split(" | ")]
        shortest = min(answers, key=len)
        word = re.compile(rf"(?<!\w){re.escape(shortest)}(?!\w)")
        elsewhere = any(word.search(t) for d, t in texts.items() if d != row["doc_id"])
        for run, rows in runs.items():
            r = rows[i]
            gain = float(r["nll_before"]) - float(r["nll"])
            values = {"nll": gain, "f1": 100 * (float(r["f1"]) - float(r["f1_before"]))}
            if r.get("swapped_nll_before") and r.get("swapped_nll"):
                values["fact"] = gain - (float(r["swapped_nll_before"]) - float(r["swapped_nll"]))
            for group in ("all", kind(shortest), "elsewhere" if elsewhere else "only here"):
                for metric, value in values.items():
                    groups[metric][group][run].append(value)

    names = [r.rstrip("/").split("/")[-1] for r in args.runs]
    titles = {"nll": "answer NLL gain", "f1": "F1 gain (points)", "fact": "fact gain"}
    print("| questions | n | " + " | ".join(f"{titles[m]}: {n}" for m in metrics for n in names) + " |")
    print("|---|---|" + "---|" * (len(metrics) * len(names)))
    for group in ["all", "name", "role", "year", "date", "count", "elsewhere", "only here"]:
        if group in groups["nll"]:
            n = len(groups["nll"][group][args.runs[0]])
            cells = []
            for metric in metrics:
                for run in args.runs:
                    values = groups[metric][group][run]
                    digits = 2 if metric == "f1" else 3
                    cells.append(f"{sum(values) / len(values):.{digits}f}" if values else "-")
            print(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
