"""PyTorch baseline for `camels-cli bench forward-backward`: a randomly initialised HF GPT-2 of the
same preset, one warm-up then N timed forward+backward steps (mean token CE), fp32 on CPU.

Usage: python bench/torch_fwd_bwd.py --preset distilgpt2 --seq 1024 --iters 3 --threads 2 --json out.json
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

PRESETS = {
    "tiny": dict(n_layer=2, n_embd=32, n_head=4, vocab_size=512, n_positions=64),
    "distilgpt2": dict(n_layer=6, n_embd=768, n_head=12),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12),
    "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="distilgpt2")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPT2Config(activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     **PRESETS[args.preset])
    model = GPT2LMHeadModel(cfg)
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq))

    def step():
        start = time.perf_counter()
        logits = model(ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step()
    seconds = [step() for _ in range(args.iters)]
    med = statistics.median(seconds)
    result = dict(bench="forward_backward", implementation=f"pytorch {torch.__version__} + transformers {transformers.__version__}",
                  device="cpu", preset=args.preset, batch=args.batch, seq=args.seq, threads=args.threads,
                  iters=args.iters, seconds=seconds, median_seconds=med, tokens_per_second=args.batch * args.seq / med)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
