"""Prediction latency of the shipped default checkpoint on a 30 s, 4-utterance clip; prints JSON (issue #7).

    python benchmarks/predict_latency.py [--repeats 3] [--no-int8] [--llm-dtype auto|float32|bfloat16]

- "warm": `predict_clip` with the model already loaded and an empty feature cache each time (the clip is new to
  the model: decoding, both encoders, the Q-Formers and greedy generation), split into its parts;
- "cold_cli_s": the whole `acoustemo predict` command in a fresh process (imports, model load, features, answer),
  with the user cache holding only the converted SmolLM2 (as after the first run following install).
Both use predict's defaults (LoRA merged; the LLM's dtype and int8 chosen from the hardware, acoustemo/hardware.py:
bf16 + int8 on a CPU with native bf16, float32 without int8 elsewhere); --llm-dtype forces a dtype (e.g. float32
on a native-bf16 CPU for the fallback column), --no-int8 turns int8 off. The JSON names the CPU capability and the
load average, and gives process CPU seconds beside wall seconds (with OMP_NUM_THREADS=1 the CPU seconds are about
the wall time on one idle core, a figure that survives a shared machine).
The clip: four espeak-ng utterances by two speakers, padded with silence to 30 s, and an SRT with their times
(acoustemo.bench.speech.latency_clip).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acoustemo.bench.speech import LATENCY_LINES, latency_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-int8", action="store_true", help="decode with the LLM's own dtype")
    ap.add_argument("--llm-dtype", choices=("auto", "float32", "bfloat16"), help="default: predict's choice")
    args = ap.parse_args()

    import torch  # noqa: F401  (imported before the timed load, so model_load_s leaves torch's import out)

    from acoustemo.data.media import load_audio
    from acoustemo.features.cache import FeatureCache
    from acoustemo.hardware import hardware_report
    from acoustemo.predictor import load_predictor, predict_clip

    work = Path(tempfile.mkdtemp(prefix="acoustemo-latency-"))
    try:
        media, srt = latency_clip(work / "clip")
        t = time.perf_counter()
        predictor = load_predictor(None, cache_dir=work / "features-0", int8=False if args.no_int8 else None,
                                   llm_dtype=args.llm_dtype)
        load_s = time.perf_counter() - t
        predict_clip(media, srt, "Ana", model=predictor)  # warm-up: first-call allocations and lazy imports

        rows = []
        for r in range(args.repeats):
            predictor.cache = FeatureCache(work / f"features-{r + 1}")  # the clip is new each time
            t0, c0 = time.perf_counter(), time.process_time()
            pred = predict_clip(media, srt, "Ana", model=predictor)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            # the parts, measured separately on the same clip
            t1 = time.perf_counter()
            audio = load_audio(media)
            t2 = time.perf_counter()
            predictor.acoustic.encode(audio)
            t3 = time.perf_counter()
            predict_clip(media, srt, "Ana", model=predictor)  # features now cached: Q-Formers + LLM only
            t4 = time.perf_counter()
            rows.append({"total_s": total, "cpu_s": cpu, "decode_s": t2 - t1, "encoders_s": t3 - t2, "model_and_generate_s": t4 - t3})

        env = dict(os.environ, ACOUSTEMO_CACHE=str(work / "user-cache"))
        from acoustemo.offline import cache_dir

        (work / "user-cache").mkdir()
        llm = cache_dir() / "llm"
        if llm.is_dir():  # the one-time GGUF conversion is not part of a start-up
            shutil.copytree(llm, work / "user-cache" / "llm")
        exe = Path(sys.executable).with_name("acoustemo")
        colds, cold_cpus = [], []
        for r in range(args.repeats):
            shutil.rmtree(work / "user-cache" / "features", ignore_errors=True)
            t, c = time.perf_counter(), _children_cpu_s()
            subprocess.run([str(exe), "predict", str(media), "--subtitles", str(srt), "--speaker", "Ana"]
                           + ["--no-int8"] * args.no_int8
                           + (["--llm-dtype", args.llm_dtype] if args.llm_dtype else []),
                           env=env, check=True, capture_output=True)
            colds.append(time.perf_counter() - t)
            cold_cpus.append(_children_cpu_s() - c)

        med = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
        from acoustemo.model.llm import Int8Linear

        print(json.dumps({
            "machine": {"cpus": os.cpu_count(), **hardware_report(), "load_avg_1m": round(os.getloadavg()[0], 2)},
            "clip": {"duration_s": 30.0, "utterances": len(LATENCY_LINES)},
            "model": str(predictor.model_dir), "llm_dtype": predictor.model.cfg.llm_dtype,
            "int8": any(isinstance(m, Int8Linear) for m in predictor.model.llm.modules()),
            "model_load_s": round(load_s, 2),
            "warm_predict_median": med, "warm_predict_all_total_s": [round(r["total_s"], 3) for r in rows],
            "answer_tokens": len(predictor.model.tokenizer(pred.answer)["input_ids"]), "answer": pred.answer,
            "cold_cli_s": [round(c, 2) for c in colds], "cold_cli_median_s": round(statistics.median(colds), 2),
            "cold_cli_cpu_s": [round(c, 2) for c in cold_cpus],
        }, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
