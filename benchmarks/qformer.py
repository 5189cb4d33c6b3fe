"""Q-Former batching speed-up at the paper's sizes, and the CPU train-step figures behind the cpu-default preset.

    python benchmarks/qformer.py                 # both parts, prints one JSON object
    python benchmarks/qformer.py --part qformer  # only the batched-vs-loop timing
    python benchmarks/qformer.py --part steps    # only the train-step timing (one subprocess per config)

Part 1: the utterance Q-Former at K=32, d_model=768 (2 blocks, 12 heads, FFN 3072) over N windows of 1-6 s of
50 Hz frames from the default 512+10-d encoder, all N in one padded batch vs one window at a time.
Part 2: one AdamW step (forward + backward + update) of the whole AcoustEmoModel on the bundled SmolLM2-135M for
a dialogue of N=8 utterances, and the peak RSS of that process, for the paper's Q-Former sizes and cpu-default.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from acoustemo.config import DEFAULT_STREAMS, ModelConfig

STREAMS = [tuple(s) for s in DEFAULT_STREAMS]  # the default encoder: whisper 512 + prosody 10
DIM = sum(w for _, w in STREAMS)
RATE_HZ = 50.0


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def qformer_part(repeats: int = 3) -> dict:
    from acoustemo.model.qformer import QFormer, pad_windows

    cfg = ModelConfig.preset("paper", llm="unused")
    torch.manual_seed(0)
    qf = QFormer(STREAMS, cfg.num_queries, cfg.d_model, cfg.qformer_layers, cfg.qformer_heads, cfg.qformer_ffn,
                 cfg.max_window_frames).eval()
    rng = np.random.default_rng(0)
    rows = []
    for n in (4, 16, 64):
        wins = [torch.randn(int(rng.uniform(1.0, 6.0) * RATE_HZ), DIM) for _ in range(n)]
        frames, mask = pad_windows(wins)
        with torch.no_grad():
            batched = time_it(lambda: qf(frames, mask), repeats)
            loop = time_it(lambda: [qf(w[None], torch.ones(1, len(w), dtype=torch.bool)) for w in wins], repeats)
        rows.append({"utterances": n, "frames_total": int(mask.sum()), "frames_padded": int(mask.numel()),
                     "batched_ms": round(batched * 1e3, 1), "loop_ms": round(loop * 1e3, 1),
                     "speedup": round(loop / batched, 2)})
    return {"sizes": {"K": cfg.num_queries, "d_model": cfg.d_model, "layers": cfg.qformer_layers,
                      "heads": cfg.qformer_heads, "ffn": cfg.qformer_ffn, "input_dim": DIM},
            "mode": "inference (no_grad), best of %d" % repeats, "rows": rows}


STEP_CONFIGS = {
    "paper-sizes": dict(num_queries=32, global_num_queries=32, d_model=768, qformer_heads=12, qformer_ffn=3072),
    "K8-d768": dict(num_queries=8, global_num_queries=16, d_model=768, qformer_heads=12, qformer_ffn=3072),
    "cpu-default": {},
}


def step_part_one(name: str, steps: int = 3, num_utterances: int = 8) -> dict:
    """One config in this process (the caller runs each in a fresh subprocess so peak RSS is its own)."""
    from acoustemo.data.dataset import AcoustEmoDataset, collate
    from acoustemo.data.segments import Clip, Utterance
    from acoustemo.features.base import Features
    from acoustemo.model.acoustemo import AcoustEmoModel

    cfg = ModelConfig.preset("cpu-default", acoustic_streams=STREAMS, **STEP_CONFIGS[name])
    torch.manual_seed(0)
    model = AcoustEmoModel(cfg).train()
    utts = [Utterance(0.5 + 3.0 * i, 3.0 + 3.0 * i, "AB"[i % 2], "I told you I would be there on time, didn't I?")
            for i in range(num_utterances)]
    clip = Clip("bench", "bench.wav", utts, "A", ["frustrated", "defensive"], "Her pitch rises and she speaks fast.")
    duration = 3.0 * num_utterances + 0.5
    feats = Features(np.random.default_rng(0).standard_normal((int(duration * RATE_HZ), DIM)).astype(np.float32),
                     RATE_HZ, "synthetic", STREAMS, duration)
    ds = AcoustEmoDataset([clip], lambda c: feats, None, model.tokenizer, cfg)
    batch = collate([ds[0]], model.tokenizer.pad_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"config": name, "utterances": num_utterances, "seq_len": int(batch["input_ids"].shape[1]),
            "acoustic_tokens": int(batch["window_tokens"].sum() + batch["global_tokens"].sum()),
            "step_s_median": round(float(np.median(times)), 2), "step_s_min": round(min(times), 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            **model.parameter_report()}


def steps_part() -> list[dict]:
    out = []
    for name in STEP_CONFIGS:
        r = subprocess.run([sys.executable, __file__, "--one-step-config", name], capture_output=True, text=True,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["all", "qformer", "steps"], default="all")
    p.add_argument("--one-step-config", choices=list(STEP_CONFIGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one_step_config:
        print(json.dumps(step_part_one(args.one_step_config)))
        return
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "load_avg_1min": round(os.getloadavg()[0], 2)}
    if args.part in ("all", "qformer"):
        result["qformer_batched_vs_loop"] = qformer_part()
    if args.part in ("all", "steps"):
        result["train_step_smollm2"] = steps_part()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
