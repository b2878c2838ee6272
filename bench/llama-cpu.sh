#!/usr/bin/env bash
# SmolLM2-135M (Llama) on CPU next to PyTorch: forward+backward (1×256, 1×1024), an Adam adaptation
# step, QA generation, and one exact meta-step (K = 6 documents × 256 tokens: seconds and peak RSS).
# Usage: bash bench/llama-cpu.sh [CAMELS_CLI] [PYTHON]   (PYTHON: an interpreter with torch + transformers)
# Results: bench/results/llama/*.json; BENCHMARKS.md has the table.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-target/release/camels-cli}
PY=${2:-python3}
O=bench/results/llama
mkdir -p "$O"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
torch() { "$PY" bench/torch_fwd_bwd.py --preset smollm2-135m --threads 2 "$@"; }
for s in 256 1024; do
  "$R" bench forward-backward --preset smollm2-135m --seq $s --iters 3 --json $O/fwd-bwd-$s.json
  torch --seq $s --iters 3 --json $O/torch-fwd-bwd-$s.json
done
"$R" bench adapt-step --preset smollm2-135m --seq 256 --iters 3 --json $O/adapt-step-256.json
torch --bench adapt_step --seq 256 --iters 3 --json $O/torch-adapt-step-256.json
"$R" bench generate --preset smollm2-135m --batch 16 --prompt-len 24 --new-tokens 16 --iters 3 --json $O/generate.json
torch --bench generate --batch 16 --seq 24 --new-tokens 16 --iters 3 --json $O/torch-generate.json
/usr/bin/time -v "$R" bench meta-step --preset smollm2-135m --weighting smollm2-135m --weighting-layers 2 \
  --docs 6 --seq 256 --qa-len 64 --loc-len 256 --iters 1 --json $O/meta-step-6x256.json 2> $O/meta-step-6x256.time
grep -E "Maximum resident|Elapsed" $O/meta-step-6x256.time
