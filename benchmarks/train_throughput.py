"""Training throughput (samples/s) of `acoustemo.training.train` for a preset, printed as JSON.

    python benchmarks/train_throughput.py --preset debug --encoder whisper-tiny.en --steps 12
    python benchmarks/train_throughput.py --preset cpu-default --steps 8                      # auto dtypes
    python benchmarks/train_throughput.py --preset cpu-default --steps 8 --llm-dtype bfloat16  # a whole bf16 LLM
    python benchmarks/train_throughput.py --preset cpu-default --steps 8 --llm-dtype float32   # the fallback column

Without --train it speaks N two-speaker dialogues with espeak-ng (acoustemo.bench.speech) into --work and
extracts their features first (not timed). The figure is the median of the per-step samples/s after the first
step (which pays one-off costs); validation and checkpoints are switched off so they do not count. --llm-dtype
(default: the preset's, "auto" for cpu-default) sets ModelConfig.llm_dtype and --mixed-precision (default "auto")
the autocast; the JSON gives the weight dtype and the autocast the run resolved and recorded
(hardware.resolve_training: float32 under bf16 autocast with "auto" on a native-bf16 CPU), the CPU capability, the
load average, and the process CPU seconds per step (with OMP_NUM_THREADS=1 about what a step takes on one idle
core, so it stays meaningful on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

LINES = [
    ("I put the keys on the kitchen table this morning.", "Then they should still be there."),
    ("We finally won the championship game!", "That is wonderful news."),
    ("Please just leave me alone for a while.", "Fine, I will go."),
    ("He told me he is not coming back.", "I am so sorry to hear that."),
]


def make_manifest(folder: Path, n: int) -> Path:
    from acoustemo.bench.speech import make_dialogue

    rows = []
    for i in range(n):
        a, b = LINES[i % len(LINES)]
        _, utts = make_dialogue(folder / f"d{i}", [("Anna", "en-us", a), ("Ben", "en-us+m3", b)])
        rows.append({"id": f"d{i}", "media": f"d{i}/dialogue.wav", "utterances": utts, "target_speaker": "Anna",
                     "labels": ["neutral"], "description": "Anna speaks calmly."})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="debug")
    p.add_argument("--encoder", default="default")
    p.add_argument("--train", help="manifest to train on (default: N spoken dialogues)")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16", "fp16"))
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--llm-dtype", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--work", help="folder for data, features and the run (default: a temporary one)")
    args = p.parse_args()

    import torch

    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract
    from acoustemo.data.manifest import read_manifest
    from acoustemo.hardware import hardware_report
    from acoustemo.training import resolve_configs, train

    work = Path(args.work or tempfile.mkdtemp(prefix="acoustemo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = Path(args.train) if args.train else make_manifest(work / "data", args.clips)
    t0 = time.perf_counter()
    clips = read_manifest(manifest)
    extract(clips, FeatureCache(work / "features"), get_acoustic_encoder(args.encoder), progress=False)
    extract_s = time.perf_counter() - t0
    model_overrides = {"llm_dtype": args.llm_dtype} if args.llm_dtype else {}
    model_cfg, train_cfg = resolve_configs(args.preset, model_overrides=model_overrides, train_overrides=dict(
        acoustic_encoder=args.encoder, cache_dir=str(work / "features"), max_steps=args.steps, epochs=10**6,
        batch_size=args.batch_size, mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing, save_every_steps=0, progress=False))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    cpu_marks = [time.process_time()]  # CPU seconds per step: with one thread, what the step takes on an idle core
    result = train(manifest, None, run, model_cfg, train_cfg, on_step=lambda *_: cpu_marks.append(time.process_time()))
    cpu_steps = [b - a for a, b in zip(cpu_marks[1:], cpu_marks[2:])]  # after the first step, as the rates
    wall_s = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in rows if "loss" in r][1:]
    recorded = json.loads((run / "config.json").read_text())["llm_dtype"]
    autocast = json.loads((run / "train_config.json").read_text())["mixed_precision"]
    print(json.dumps({
        "preset": args.preset, "encoder": args.encoder, "steps": result.steps, "batch_size": args.batch_size,
        "mixed_precision": autocast, "gradient_checkpointing": args.gradient_checkpointing,
        "llm_dtype": recorded, "s_per_step_median": round(args.batch_size / statistics.median(rates), 2) if rates else None,
        "cpu_s_per_step_median": round(statistics.median(cpu_steps), 2) if cpu_steps else None,
        "samples_per_s_median": round(statistics.median(rates), 3) if rates else None,
        "samples_per_s_overall": round(result.samples_per_s, 3), "train_wall_s": round(wall_s, 1),
        "feature_extraction_s": round(extract_s, 1), "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "hardware": hardware_report(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
