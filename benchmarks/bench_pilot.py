"""Pilot for `bench run` settings: train one ablation on the first N train clips of a `bench make` folder whose
features are already cached, and print the loss curve and speed as JSON (no test-split scoring).

    python benchmarks/bench_pilot.py bench_data/n400 --cache bench_data/n400/runs/features --n 60 --lr 1e-3 --steps 40
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--ablation", default="full")
    ap.add_argument("--preset", default="cpu-default")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from acoustemo.training import resolve_configs, train

    bench = Path(args.bench).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-pilot-"))
    lines = (bench / "train.jsonl").read_text().splitlines()[: args.n]
    lines = [json.dumps({**json.loads(l), "media": str(bench / json.loads(l)["media"])}) for l in lines]
    (work / "train.jsonl").write_text("\n".join(lines) + "\n")
    mcfg, tcfg = resolve_configs(args.preset, model_overrides={"ablation": args.ablation}, train_overrides={
        "lr": args.lr, "max_steps": args.steps, "epochs": 100, "batch_size": args.batch_size, "seed": args.seed,
        "save_every_steps": 0, "cache_dir": str(Path(args.cache).resolve()), "progress": False})
    t0 = time.perf_counter()
    result = train(work / "train.jsonl", None, work / "run", mcfg, tcfg)
    rows = [json.loads(l) for l in (work / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    k = max(1, len(losses) // 8)
    print(json.dumps({"ablation": args.ablation, "lr": args.lr, "steps": result.steps, "n_clips": args.n,
                      "batch_size": args.batch_size, "wall_s": round(time.perf_counter() - t0, 1),
                      "samples_per_s": round(result.samples_per_s, 3),
                      "loss_means_per_8th": [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 3)
                                             for i in range(0, len(losses), k)]}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
