"""Same answers in the fallback dtype? Predicts a bench split with one checkpoint as a CPU with native bf16 runs it
and as one without runs it, and compares; prints JSON with the CPU capability (issue #15).

    python benchmarks/dtype_agreement.py [--model DIR] [--bench bench_data/n1000] [--split test] [--batch-size 8]

- "native": llm_dtype bfloat16 with int8 weights, predict's default on a CPU with native bf16;
- "fallback": llm_dtype float32 without int8, predict's default on a CPU without it (acoustemo/hardware.py).
Both run here whatever this CPU is (bf16 is slow but correct without native support). Features are extracted
once first (not timed); each variant's `predict_manifest` time is its manifest throughput. Reports identical
emotion sets and answers, and Avg / Accuracy_S / Recall_S of each with the bench's groupings (which cover the
test split only; null elsewhere).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

VARIANTS = {"native": ("bfloat16", True), "fallback": ("float32", False)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the shipped checkpoint)")
    ap.add_argument("--bench", default="bench_data/n1000")
    ap.add_argument("--split", default="test")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--variants", default="fallback,native", help="which to run, in this order")
    args = ap.parse_args()

    from acoustemo.evaluate.report import evaluate
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract
    from acoustemo.hardware import hardware_report
    from acoustemo.batch import predict_manifest
    from acoustemo.predictor import load_predictor

    bench = Path(args.bench)
    manifest = bench / f"{args.split}.jsonl"
    cache = bench / "runs" / "features"
    out, answers = {"hardware": hardware_report(), "bench": str(bench), "split": args.split}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            dtype, int8 = VARIANTS[name]
            predictor = load_predictor(args.model, cache, int8=int8, llm_dtype=dtype)
            if "feature_extraction_s" not in out:
                t = time.perf_counter()
                extract(read_manifest(manifest), FeatureCache(cache), predictor.acoustic, progress=False)
                out["feature_extraction_s"] = round(time.perf_counter() - t, 1)
            preds = Path(tmp) / f"{name}.jsonl"
            t = time.perf_counter()
            report = predict_manifest(manifest, predictor, preds, batch_size=args.batch_size, progress=False)
            seconds = time.perf_counter() - t
            answers[name] = {r["id"]: r for r in map(json.loads, preds.read_text().splitlines())}
            scores = {k: None for k in ("avg", "accuracy_s", "recall_s")}
            if set(answers[name]) <= set(json.loads((bench / "groupings.json").read_text())):  # test split only
                scores, _, _ = evaluate(manifest, preds, bench / "groupings.json", grouping="cache")
            out[name] = {"llm_dtype": predictor.model.cfg.llm_dtype, "int8": int8, "avg": scores["avg"],
                         "accuracy_s": scores["accuracy_s"], "recall_s": scores["recall_s"],
                         "predict_s": round(seconds, 1), "clips_per_s": round(report.predicted / seconds, 3),
                         "failed": len(report.failed)}
            print(json.dumps({name: out[name]}), flush=True)
    if len(answers) == 2:
        a, b = answers.values()
        ids = sorted(a)
        out["clips"] = len(ids)
        out["identical_emotion_sets"] = sum(set(a[i]["emotions"]) == set(b[i]["emotions"]) for i in ids)
        out["identical_answers"] = sum(a[i]["emotions"] == b[i]["emotions"]
                                       and a[i]["explanation"] == b[i]["explanation"] for i in ids)
        out["differing_ids"] = [i for i in ids if set(a[i]["emotions"]) != set(b[i]["emotions"])]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
