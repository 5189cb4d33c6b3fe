"""Does int8 decoding (predict's CPU default) change what a model answers? Prints JSON.

    python benchmarks/int8_agreement.py [--model DIR] [--bench bench_data/n1000] [--split test]

Predicts every clip of a bench split twice with the same checkpoint (default: the shipped one): once with the LLM
in its own dtype (LoRA merged) and once with int8 weights in its linear layers (AcoustEmoModel.quantize_int8), scores both with
the bench's groupings, and counts identical answers and identical emotion sets. Needs the bench made by `acoustemo
bench make` (its feature cache in <bench>/runs/features is reused when present).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the shipped checkpoint)")
    ap.add_argument("--bench", default="bench_data/n1000")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()

    from acoustemo.evaluate.report import evaluate
    from acoustemo.batch import predict_manifest
    from acoustemo.predictor import load_predictor

    bench = Path(args.bench)
    cache = bench / "runs" / "features" if (bench / "runs" / "features").is_dir() else None
    out, answers = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, int8 in (("native", False), ("int8", True)):
            predictor = load_predictor(args.model, cache, int8=int8)
            preds = Path(tmp) / f"{name}.jsonl"
            t = time.perf_counter()
            predict_manifest(bench / f"{args.split}.jsonl", predictor, preds, batch_size=8, progress=False)
            seconds = time.perf_counter() - t
            report, _, _ = evaluate(bench / f"{args.split}.jsonl", preds, bench / "groupings.json", grouping="cache")
            answers[name] = {r["id"]: r for r in map(json.loads, preds.read_text().splitlines())}
            out[name] = {"avg": report["avg"], "accuracy_s": report["accuracy_s"], "recall_s": report["recall_s"],
                         "predict_s": round(seconds, 1)}
    ids = sorted(answers["native"])
    same_text = sum(answers["native"][i]["explanation"] == answers["int8"][i]["explanation"]
                    and answers["native"][i]["emotions"] == answers["int8"][i]["emotions"] for i in ids)
    same_set = sum(set(answers["native"][i]["emotions"]) == set(answers["int8"][i]["emotions"]) for i in ids)
    print(json.dumps({"model": str(predictor.model_dir), "split": args.split, "clips": len(ids), **out,
                      "identical_answers": same_text, "identical_emotion_sets": same_set}, indent=1))


if __name__ == "__main__":
    main()
