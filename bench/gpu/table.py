#!/usr/bin/env python3
"""Prints Kiln's GPU benchmark beside the transformers baseline: bench/gpu/table.py kiln.json hf.json"""
import json, sys

kiln = json.load(open(sys.argv[1]))
try:
    hf = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    hf = {"prefill_tok_s": float("nan"), "decode": {}}

rows = [("prefill 512 tokens", kiln["prefill_tok_s"], hf.get("prefill_tok_s", float("nan")), None)]
for batch, value in kiln["decode"].items():
    rows.append((f"decode batch {batch}", value, hf["decode"].get(batch, float("nan")), kiln["decode_step_ms"][batch]))

print(f"device: {kiln['device']}; 1.24B Llama, random {kiln.get('weights', 'bf16')} weights; tokens/s")
print("| measure | Kiln tok/s | transformers tok/s | Kiln / transformers | Kiln ms a step |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, k, h, ms in rows:
    ratio = k / h if h == h and h else float("nan")
    step = f"{ms:.3f}" if ms is not None else "-"
    print(f"| {name} | {k:,.0f} | {h:,.0f} | {ratio:.2f}x | {step} |")

if kiln.get("decode_sampled"):
    print()
    print("Sampled decode on the device (temperature 0.8, top-p 0.95, as chat clients ask) against greedy:")
    print("| decode batch | sampled tok/s | greedy tok/s | sampled / greedy |")
    print("| ---: | ---: | ---: | ---: |")
    for batch, value in kiln["decode_sampled"].items():
        greedy = kiln["decode"][batch]
        print(f"| {batch} | {value:,.0f} | {greedy:,.0f} | {value / greedy:.2f}x |")

if kiln.get("decode_step_ms_unfused"):
    print()
    print("Fused decode layers (RMSNorm, RoPE and the cache writes, residual adds and SwiGLU inside the products; 5 kernels a layer instead of 9):")
    print("| decode batch | fused ms a step | unfused ms a step | unfused / fused |")
    print("| ---: | ---: | ---: | ---: |")
    for batch, unfused in kiln["decode_step_ms_unfused"].items():
        fused = kiln["decode_step_ms"][batch]
        print(f"| {batch} | {fused:.3f} | {unfused:.3f} | {unfused / fused:.2f}x |")

if "engine_tok_s" in kiln:
    print()
    print("Through the engine (InferenceEngine on the CUDA runner; prompt 128 + 128 new tokens a request, prefill included):")
    print("| concurrent requests | Kiln output tok/s |")
    print("| ---: | ---: |")
    for n, value in kiln["engine_tok_s"].items():
        print(f"| {n} | {value:,.0f} |")
