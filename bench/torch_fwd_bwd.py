"""PyTorch baseline for `camels-cli bench forward-backward` and `bench adapt-step`: a randomly
initialised HF GPT-2 or Llama (SmolLM2, TinyLlama sizes) of the same preset, one warm-up then N timed steps, fp32, on CPU or CUDA.
`forward_backward` is forward + backward of the mean token CE; `adapt_step` adds an Adam update
(lr 1e-5), one document per step, as online adaptation does; `generate` is HF `generate` (KV
cache, greedy or beam search) of --new-tokens tokens after --batch prompts of --seq tokens, as
`camels-cli bench generate` (--batch 16 --seq 24 --new-tokens 16 match its defaults).

Usage: python bench/torch_fwd_bwd.py --preset distilgpt2 --seq 1024 --iters 3 --threads 2 --json out.json
       python bench/torch_fwd_bwd.py --device cuda --bench adapt_step --preset gpt2-xl
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

PRESETS = {
    "tiny": dict(n_layer=2, n_embd=32, n_head=4, vocab_size=512, n_positions=64),
    "distilgpt2": dict(n_layer=6, n_embd=768, n_head=12),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12),
    "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16),
    "gpt2-large": dict(n_layer=36, n_embd=1280, n_head=20),
    "gpt2-xl": dict(n_layer=48, n_embd=1600, n_head=25),
}
# The Llama presets of camels_model::llama::LlamaConfig.
LLAMA_PRESETS = {
    "tiny-llama": dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "smollm2-360m": dict(vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "tinyllama-1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, tie_word_embeddings=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="distilgpt2")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--bench", default="forward_backward", choices=["forward_backward", "adapt_step", "generate"])
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16", "f16"],
                    help="bf16/f16: the forward under torch.autocast (PyTorch's mixed precision)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.preset in LLAMA_PRESETS:
        cfg = LlamaConfig(**LLAMA_PRESETS[args.preset])
        model = LlamaForCausalLM(cfg).to(args.device)
    else:
        cfg = GPT2Config(activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         **PRESETS[args.preset])
        model = GPT2LMHeadModel(cfg).to(args.device)
    model.train(args.bench != "generate")
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=args.device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-5) if args.bench == "adapt_step" else None
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def generate_step():
        start = time.perf_counter()
        with torch.no_grad():
            # No end-of-sequence token: every row generates exactly --new-tokens tokens.
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                           min_new_tokens=args.new_tokens, do_sample=False, num_beams=args.num_beams,
                           eos_token_id=None, pad_token_id=0, use_cache=True)
        sync()
        return time.perf_counter() - start

    def step():
        if args.bench == "generate":
            return generate_step()
        start = time.perf_counter()
        half = {"bf16": torch.bfloat16, "f16": torch.float16}.get(args.precision)
        with torch.autocast(device_type=args.device, dtype=half or torch.float32, enabled=half is not None):
            logits = model(ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
        loss.backward()
        if optim is not None:
            optim.step()
        model.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    warmup = step()
    seconds = [step() for _ in range(args.iters)]
    med = statistics.median(seconds)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    result = dict(bench=args.bench, implementation=f"pytorch {torch.__version__} + transformers {transformers.__version__}",
                  device=device, preset=args.preset, precision=args.precision, batch=args.batch, seq=args.seq,
                  threads=args.threads,
                  iters=args.iters, warmup_seconds=warmup, seconds=seconds, median_seconds=med,
                  tokens_per_second=args.batch * args.seq / med)
    if args.bench == "generate":
        result.update(prompt_len=args.seq, new_tokens=args.new_tokens, num_beams=args.num_beams,
                      questions_per_second=args.batch / med,
                      new_tokens_per_second=args.batch * args.new_tokens / med)
        del result["tokens_per_second"]
    if args.device == "cuda":
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
