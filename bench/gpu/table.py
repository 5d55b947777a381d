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

def table(title, columns, rows):
    """A titled markdown table of numbers (right-aligned), after a blank line."""
    print()
    print(title)
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---:" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if kiln.get("decode_sampled"):
    table("Sampled decode on the device (temperature 0.8, top-p 0.95, as chat clients ask) against greedy:",
          ["decode batch", "sampled tok/s", "greedy tok/s", "sampled / greedy"],
          [(b, f"{v:,.0f}", f"{kiln['decode'][b]:,.0f}", f"{v / kiln['decode'][b]:.2f}x") for b, v in kiln["decode_sampled"].items()])

if kiln.get("decode_step_ms_unfused"):
    table("Fused decode layers (RMSNorm, RoPE and the cache writes, residual adds and SwiGLU inside the products; 5 kernels a layer instead of 9):",
          ["decode batch", "fused ms a step", "unfused ms a step", "unfused / fused"],
          [(b, f"{kiln['decode_step_ms'][b]:.3f}", f"{u:.3f}", f"{u / kiln['decode_step_ms'][b]:.2f}x") for b, u in kiln["decode_step_ms_unfused"].items()])

if "engine_tok_s" in kiln:
    table("Through the engine (InferenceEngine on the CUDA runner; prompt 128 + 128 new tokens a request, prefill included):",
          ["concurrent requests", "Kiln output tok/s"],
          [(n, f"{v:,.0f}") for n, v in kiln["engine_tok_s"].items()])

if kiln.get("decode_step_ms_default_kernels"):
    table("Matrix-vector kernels chosen by the warm-up trials on this GPU, against the defaults (the H200 sweep's table):",
          ["decode batch", "chosen ms a step", "default ms a step", "default / chosen"],
          [(b, f"{kiln['decode_step_ms'][b]:.3f}", f"{d:.3f}", f"{d / kiln['decode_step_ms'][b]:.2f}x") for b, d in kiln["decode_step_ms_default_kernels"].items()])

if kiln.get("gemv_trials"):
    table(f"Warm-up trials ({kiln.get('gemv_trials_ms', float('nan')):.0f} ms): each product's alternatives, microseconds a launch, and the weight bandwidth of the one chosen:",
          ["product", "tokens", "alternatives (us)", "chosen", "TB/s"],
          [(t["product"], str(t["tokens"]), ", ".join(f"{k} {v:.1f}" for k, v in t["us"].items()), t["chosen"],
            f"{t['bytes'] / t['us'][t['chosen']] / 1e6:.2f}" if "bytes" in t else "-") for t in kiln["gemv_trials"]])

if kiln.get("gemv_step_checks"):
    table("The trials' choices checked in whole decode steps (CUDA graphs) at warm-up, against the defaults:",
          ["tokens", "chosen ms a step", "default ms a step", "kept"],
          [(str(c["Tokens"]), f"{c['ChosenMilliseconds']:.3f}", f"{c['DefaultMilliseconds']:.3f}", "yes" if c["Kept"] else "no") for c in kiln["gemv_step_checks"]])

if kiln.get("decode_step_ms_long"):
    table(f"Decode after a {kiln['long_prompt']}-token prompt, attention split over blocks (a head group's keys spread over several SMs) against unsplit:",
          ["decode batch", "blocks a head group", "split ms a step", "unsplit ms a step", "unsplit / split"],
          [(b, str(kiln.get("decode_long_splits", {}).get(b, "?")), f"{v:.3f}", f"{kiln['decode_step_ms_long_unsplit'][b]:.3f}",
            f"{kiln['decode_step_ms_long_unsplit'][b] / v:.2f}x") for b, v in kiln["decode_step_ms_long"].items()])
