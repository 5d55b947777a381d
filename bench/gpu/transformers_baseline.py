#!/usr/bin/env python3
"""Hugging Face transformers baseline for the Kiln GPU benchmark.

Random-weight Llama (1.24B params, Llama 3.2 1B shape: 2048 hidden, 16 layers, GQA 32/8, 128k vocab, tied embeddings)
in bfloat16 with SDPA attention. Measures prefill tok/s for one sequence and
greedy-decode tok/s at several batch sizes. No internet / checkpoints needed.

  python3 bench/gpu/transformers_baseline.py --json results.json
"""
import argparse, json, statistics, time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def log(*a):
    print(*a, flush=True)


def timed(fn):
    """Wall time of fn() in seconds, with the GPU drained before and after."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def build_model():
    cfg = LlamaConfig(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
        # transformers 5 keeps theta in rope_parameters; 4.x reads rope_theta.
        rope_theta=500000.0, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    cfg._attn_implementation = "sdpa"
    # Allocate and randomly initialise directly on the GPU in bf16 (fast, no fp32 copy).
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    model.eval()
    assert next(model.parameters()).dtype == torch.bfloat16
    return model, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,32,128", help="decode batch sizes, comma-separated")
    ap.add_argument("--prefill", type=int, default=512, help="prefill sequence length")
    ap.add_argument("--prompt", type=int, default=128, help="prompt length for decode runs")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens generated per sequence")
    ap.add_argument("--reps", type=int, default=3, help="timed generate runs per batch (median)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    assert args.new_tokens >= 2, "--new-tokens must be >= 2"

    torch.manual_seed(0)
    dev = torch.cuda.get_device_name()
    log(f"device={dev} torch={torch.__version__} transformers={transformers.__version__}")
    model, cfg = build_model()
    nparams = sum(p.numel() for p in model.parameters())
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", None))
    log(f"model: random Llama, {nparams / 1e9:.2f}B params, bf16, "
        f"attn={model.config._attn_implementation}, rope_theta={theta}")

    with torch.inference_mode():
        # (a) Prefill: one forward pass over a single sequence. Only the last
        # position's logits are computed, as a serving prefill would.
        ids = torch.randint(3, cfg.vocab_size, (1, args.prefill), device="cuda")
        fwd = lambda: model(input_ids=ids, use_cache=True, logits_to_keep=1)
        for _ in range(2):
            fwd()
        t = statistics.median(timed(fwd) for _ in range(5))
        prefill_tok_s = args.prefill / t
        log(f"prefill: {args.prefill} tokens in {t * 1e3:.2f} ms -> {prefill_tok_s:,.0f} tok/s")

        # (b) Greedy decode. min_new_tokens == max_new_tokens suppresses EOS, so
        # every sequence generates exactly N tokens. Decode time is the full
        # generate minus a prefill-only generate (max_new_tokens=1); that
        # difference covers N-1 decode forward steps.
        decode, step_ms = {}, {}
        n = args.new_tokens
        for b in batches:
            p = torch.randint(3, cfg.vocab_size, (b, args.prompt), device="cuda")
            mask = torch.ones_like(p)

            def gen(k):
                return lambda: model.generate(
                    input_ids=p, attention_mask=mask, do_sample=False,
                    max_new_tokens=k, min_new_tokens=k, pad_token_id=0, eos_token_id=2)

            out = gen(n)()  # warm-up (also checks the length)
            assert out.shape == (b, args.prompt + n), out.shape
            gen(1)()
            t_full = statistics.median(timed(gen(n)) for _ in range(args.reps))
            t_pre = statistics.median(timed(gen(1)) for _ in range(args.reps))
            step = (t_full - t_pre) / (n - 1)
            decode[str(b)] = b / step
            step_ms[str(b)] = step * 1e3
            log(f"decode batch {b:>4}: {step * 1e3:7.2f} ms/step -> {b / step:>10,.0f} tok/s "
                f"(generate {t_full * 1e3:.0f} ms, prefill-only {t_pre * 1e3:.0f} ms)")
            del p, mask, out
            torch.cuda.empty_cache()

    res = {"device": dev, "torch": torch.__version__, "transformers": transformers.__version__,
           "prefill_tok_s": prefill_tok_s, "decode": decode, "decode_step_ms": step_ms,
           "config": {"prefill": args.prefill, "prompt": args.prompt,
                      "new_tokens": n, "reps": args.reps, "params": nparams}}
    log("summary: " + json.dumps({k: res[k] for k in ("prefill_tok_s", "decode")}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
