"""Is int8 worth it on a CPU without native bf16? Times the shipped checkpoint's answer on the sample clip (features
cached, so only the Q-Formers and the LLM) with a float32 LLM three ways; prints JSON with the CPU capability.

    OMP_NUM_THREADS=1 python benchmarks/int8_fallback.py [--repeats 2]

- "float32": plain float32 weights (predict's default on such a CPU, acoustemo.hardware.int8_by_default);
- "int8_bf16_kernel": int8 weights, torch's int8 kernel fed bf16 activations (what int8=True does on float32);
- "int8_float32_kernel": int8 weights, the kernel fed float32 (its unvectorised path).
Process CPU seconds are given beside wall seconds (see predict_latency.py).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample.wav"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from acoustemo import hardware
    from acoustemo.predictor import load_predictor, predict_clip

    variants = {"float32": (False, None), "int8_bf16_kernel": (True, torch.bfloat16),
                "int8_float32_kernel": (True, torch.float32)}
    out = {"hardware": hardware.hardware_report(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as cache:
        predictors = {}
        for name, (int8, kernel) in variants.items():
            original = hardware.int8_activation_dtype
            if kernel is not None:
                hardware.int8_activation_dtype = lambda _dtype, k=kernel: k
            try:
                predictors[name] = load_predictor(None, cache, int8=int8, llm_dtype="float32")
            finally:
                hardware.int8_activation_dtype = original
            predict_clip(SAMPLE, SAMPLE.with_suffix(".srt"), "Sami", model=predictors[name])  # features + warm-up
        for r in range(args.repeats):  # interleaved, so a change in the machine's load hits every variant
            for name, predictor in predictors.items():
                t, c = time.perf_counter(), time.process_time()
                pred = predict_clip(SAMPLE, SAMPLE.with_suffix(".srt"), "Sami", model=predictor)
                row = out.setdefault(name, {"wall_s": [], "cpu_s": [], "emotions": pred.emotions})
                row["wall_s"].append(round(time.perf_counter() - t, 2))
                row["cpu_s"].append(round(time.process_time() - c, 2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
