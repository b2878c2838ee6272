#!/usr/bin/env bash
# gpu-check: the parity checks and benchmarks of a camels-cli release binary on an NVIDIA GPU machine,
# in one go, within a deadline. Made to run from the repository root after `cargo xtask gpu-check`:
#
#   bash bench/gpu-check.sh gpu/camels-cli.gz OUT_DIR [DEADLINE_SECONDS]
#
# CUDA start-up is dominated by NVRTC compiling every kernel (and every autotune candidate) at first
# use, about one a second on an H200 (BENCHMARKS.md). The compiled kernels and autotune results are
# cached in one folder; the run packs it as OUT_DIR/cubecl-cache.tar.gz, and restores it from
# gpu/cubecl-cache.tar.gz when present, so a later run on a fresh machine starts warm.
#
# Writes OUT_DIR/log.txt (timestamped phases), OUT_DIR/results.jsonl (one JSON object per check or
# benchmark, with the GPU's name and peak GPU memory), OUT_DIR/compile.log and OUT_DIR/autotune.log
# (cubecl's kernel compilation and autotune events). Every phase has its own timeout, so a hang shows
# as a timed-out phase with the compile log up to that point, and later phases still run.
set -u
BIN_GZ=$1
OUT=$(realpath "$2")
DEADLINE=${3:-540}
REPO=$(pwd)
export RUST_BACKTRACE=0 NO_COLOR=1
mkdir -p "$OUT"
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
log() { echo "[$(printf '%4d' "$(elapsed)")s] $*" | tee -a "$OUT/log.txt"; }
left() { echo $(( DEADLINE - $(elapsed) )); }

# --- Environment --------------------------------------------------------------------------------
WORK=/tmp/camels-gpu
mkdir -p "$WORK"
gunzip -c "$BIN_GZ" > "$WORK/camels-cli" && chmod +x "$WORK/camels-cli"
BIN="$WORK/camels-cli"
export CUDA_PATH=${CUDA_PATH:-$(ls -d /usr/local/cuda-13* /usr/local/cuda 2>/dev/null | head -1)}
NVRTC_PIP=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.dirname(nvidia.cuda_nvrtc.__file__) + "/lib")' 2>/dev/null)
export LD_LIBRARY_PATH="$CUDA_PATH/targets/x86_64-linux/lib:$CUDA_PATH/lib64:${NVRTC_PIP}:${LD_LIBRARY_PATH:-}"
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
log "gpu: $GPU"
log "CUDA_PATH=$CUDA_PATH; cuda_runtime.h: $(ls "$CUDA_PATH/include/cuda_runtime.h" 2>&1)"
log "nvrtc: $(ls "$CUDA_PATH"/targets/x86_64-linux/lib/libnvrtc.so* 2>/dev/null | head -3 | tr '\n' ' ')"
log "binary: $($BIN --version) ($(du -h "$BIN" | cut -f1)); devices: cpu wgpu cuda cuda-raw"
# Vulkan for wgpu: the loader packages carried in .gl (see the device notes).
if [ -d "$REPO/.gl" ] && nvidia-smi -L > /dev/null 2>&1; then
  for f in "$REPO"/.gl/*.deb; do dpkg -x "$f" / ; done
  ldconfig
  [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
# cubecl reads cubecl.toml from the working directory: log every kernel compile and autotune, and
# cache both on disk, so later processes (and a rerun) skip the compilation. Autotune at its
# `minimal` level by default (CAMELS_AUTOTUNE_LEVEL=balanced is cubecl's own default): on CUDA every
# candidate kernel is compiled by NVRTC first, and candidates were 128 of the 218 kernels of the
# first forward+backward on the H200.
AUTOTUNE_LEVEL=${CAMELS_AUTOTUNE_LEVEL:-minimal}
log "autotune level: $AUTOTUNE_LEVEL"
if [ -f "$REPO/gpu/cubecl-cache.tar.gz" ]; then
  tar -xzf "$REPO/gpu/cubecl-cache.tar.gz" -C "$WORK" && log "restored the kernel cache: $(du -sh "$WORK/cache" | cut -f1)"
fi
cat > "$WORK/cubecl.toml" <<EOF
[compilation]
cache = { file = "$WORK/cache" }
[compilation.logger]
level = "basic"
file = "$OUT/compile.log"
append = true
[autotune]
level = "$AUTOTUNE_LEVEL"
cache = { file = "$WORK/cache" }
[autotune.logger]
level = "minimal"
file = "$OUT/autotune.log"
append = true
EOF
cd "$WORK"

# run NAME TIMEOUT CMD...: runs CMD with a timeout, samples GPU memory every 100 ms, and appends
# the JSON the command wrote to $WORK/$NAME.json (or a failure record) to results.jsonl.
run() {
  local name=$1 limit=$2; shift 2
  local budget=$(( $(left) - 5 ))
  [ "$budget" -lt "$limit" ] && limit=$budget
  if [ "$limit" -lt 10 ]; then log "skip $name: deadline"; return; fi
  local compiles_before
  compiles_before=$(wc -l < "$OUT/compile.log" 2>/dev/null || echo 0)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$WORK/smi_$name" 2>/dev/null &
  local smi=$!
  log "start $name (timeout ${limit}s): $*"
  local start rc
  start=$(date +%s.%N)
  timeout --signal=KILL "$limit" "$@" > "$WORK/$name.stdout" 2> "$WORK/$name.stderr"
  rc=$?
  LAST_RC=$rc
  local secs
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local peak compiles
  peak=$(sort -n "$WORK/smi_$name" | tail -1)
  compiles=$(( $(wc -l < "$OUT/compile.log" 2>/dev/null || echo 0) - compiles_before ))
  log "end $name: rc=$rc wall=${secs}s peak_gpu_mib=${peak:-?} compile_log_lines=$compiles"
  tail -n 25 "$WORK/$name.stdout" | sed 's/^/    /' >> "$OUT/log.txt"
  grep -a "parity check\|warm-up step\|timed step" "$WORK/$name.stderr" | sed 's/^/    > /' >> "$OUT/log.txt"
  { head -n 5 "$WORK/$name.stderr"; echo ...; tail -n 12 "$WORK/$name.stderr"; } | sed 's/^/    ! /' >> "$OUT/log.txt"
  local body="null"
  [ -s "$WORK/$name.json" ] && body=$(tr -d '\n' < "$WORK/$name.json")
  echo "{\"name\":\"$name\",\"gpu\":\"$GPU\",\"rc\":$rc,\"wall_seconds\":$secs,\"peak_gpu_mib\":${peak:-null},\"compile_log_lines\":$compiles,\"result\":$body}" >> "$OUT/results.jsonl"
}

FX="$REPO/fixtures"
TORCH="$REPO/bench/torch_fwd_bwd.py"
# --- Correctness first, then speed ---------------------------------------------------------------
# Fused CUDA first; if it hangs (killed at its timeout), CUDA without fusion; wgpu in any case.
LAST_RC=0
run check_cuda 150 "$BIN" check --device cuda --fixtures "$FX" --json "$WORK/check_cuda.json"
DEV=cuda
if [ "$LAST_RC" -eq 137 ]; then
  run check_cuda_raw 120 "$BIN" check --device cuda-raw --fixtures "$FX" --json "$WORK/check_cuda_raw.json"
  if [ "$LAST_RC" -eq 137 ]; then DEV=wgpu; else DEV=cuda-raw; fi
fi
[ "$DEV" = wgpu ] && run check_wgpu 90 "$BIN" check --device wgpu --fixtures "$FX" --json "$WORK/check_wgpu.json"
log "benchmarks on $DEV"
bench() { # bench NAME TIMEOUT ARGS... (the camels-cli bench subcommand and its options)
  local name=$1 limit=$2; shift 2
  run "${name}_$DEV" "$limit" "$BIN" bench "$@" --device "$DEV" --json "$WORK/${name}_$DEV.json"
}
bench fwd_bwd_distilgpt2 60 forward-backward --preset distilgpt2 --iters 5
run fwd_bwd_distilgpt2_torch 40 python3 "$TORCH" --device cuda --preset distilgpt2 --iters 5 --json "$WORK/fwd_bwd_distilgpt2_torch.json"
bench adapt_distilgpt2 60 adapt-step --preset distilgpt2 --iters 5
run adapt_distilgpt2_torch 40 python3 "$TORCH" --device cuda --bench adapt_step --preset distilgpt2 --iters 5 --json "$WORK/adapt_distilgpt2_torch.json"
bench generate_distilgpt2 40 generate --preset distilgpt2 --iters 5
run generate_distilgpt2_torch 40 python3 "$TORCH" --device cuda --bench generate --preset distilgpt2 --batch 16 --seq 24 --new-tokens 16 --iters 5 --json "$WORK/generate_distilgpt2_torch.json"
bench meta_distilgpt2 120 meta-step --preset distilgpt2 --iters 2
[ "$DEV" != wgpu ] && run check_wgpu 70 "$BIN" check --device wgpu --fixtures "$FX" --json "$WORK/check_wgpu.json"
bench adapt_gpt2xl 90 adapt-step --preset gpt2-xl --iters 3
run adapt_gpt2xl_torch 40 python3 "$TORCH" --device cuda --bench adapt_step --preset gpt2-xl --iters 3 --json "$WORK/adapt_gpt2xl_torch.json"
bench meta_gpt2large 120 meta-step --preset gpt2-large --iters 1 --store-theta-every 7
# Mixed precision, last (new kernels to compile): bf16 products against PyTorch's bf16 autocast; wgpu has
# no bf16, so f16 there (speed only: training in f16 is refused without loss scaling).
HALF=bf16; [ "$DEV" = wgpu ] && HALF=f16
bench fwd_bwd_distilgpt2_$HALF 60 forward-backward --preset distilgpt2 --iters 5 --precision $HALF
run fwd_bwd_distilgpt2_torch_$HALF 40 python3 "$TORCH" --device cuda --preset distilgpt2 --iters 5 --precision $HALF --json "$WORK/fwd_bwd_distilgpt2_torch_$HALF.json"
bench adapt_distilgpt2_$HALF 60 adapt-step --preset distilgpt2 --iters 5 --precision $HALF
[ "$DEV" = cuda ] && run check_cuda_raw 90 "$BIN" check --device cuda-raw --fixtures "$FX" --json "$WORK/check_cuda_raw.json"
log "done"
[ -d "$WORK/cache" ] && tar -czf "$OUT/cubecl-cache.tar.gz" -C "$WORK" cache && log "packed the kernel cache"
# The logs must come back under the size limit on returned files.
for f in compile.log autotune.log; do
  [ -f "$OUT/$f" ] && tail -c 15000000 "$OUT/$f" > "$WORK/$f.tail" && mv "$WORK/$f.tail" "$OUT/$f"
done
exit 0
