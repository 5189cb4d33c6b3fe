"""Does one-clip decoding with checked n-gram drafts (predict's default) change answers, and how much faster is
it? Prints JSON.

    python benchmarks/draft_decoding.py [--model DIR] [--bench bench_data/n1000] [--split test] [--cache DIR]

Predicts every clip of a bench split one clip at a time with the same checkpoint (default: the shipped one, int8
on CPU as predict runs it): with HF generate (`--no-drafts`, one token per LLM pass, HF's bf16 attention), with
greedy_with_drafts (acoustemo/model/decoding.py, predict's default), and with greedy_with_drafts left on HF's
attention ("drafts_hf_attention", what its float64 attention is for: HF's kernel rounds a row checked among drafts
differently from the same row alone). Scores each with the bench's groupings, counts answers and emotion sets
identical to HF generate's, and times them (features cached first, so only the Q-Formers and the LLM are timed).
Needs the bench made by `acoustemo bench make`.
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
    ap.add_argument("--cache", default=None, help="feature cache (default <bench>/runs/features when present)")
    args = ap.parse_args()

    from acoustemo.evaluate.report import evaluate
    from acoustemo.batch import predict_manifest
    from acoustemo.predictor import load_predictor
    from acoustemo.model import decoding
    from acoustemo.model.decoding import DecodeStats

    bench = Path(args.bench)
    cache = args.cache or (bench / "runs" / "features" if (bench / "runs" / "features").is_dir() else None)
    manifest = bench / f"{args.split}.jsonl"
    predictor = load_predictor(args.model, cache)
    out, answers = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        predict_manifest(manifest, predictor, Path(tmp) / "warm.jsonl", batch_size=1, progress=False)  # features
        float64_attention = decoding._float64_attention
        for name, drafts in (("hf_generate", False), ("drafts", True), ("drafts_hf_attention", True)):
            predictor.drafts = drafts
            predictor.model.decode_stats = DecodeStats()
            if name == "drafts_hf_attention":
                decoding._float64_attention = lambda implementation: implementation
            preds = Path(tmp) / f"{name}.jsonl"
            t = time.perf_counter()
            try:
                predict_manifest(manifest, predictor, preds, batch_size=1, progress=False)
            finally:
                decoding._float64_attention = float64_attention
            seconds = time.perf_counter() - t
            report, _, _ = evaluate(manifest, preds, bench / "groupings.json", grouping="cache")
            answers[name] = {r["id"]: r for r in map(json.loads, preds.read_text().splitlines())}
            out[name] = {"avg": report["avg"], "accuracy_s": report["accuracy_s"], "recall_s": report["recall_s"],
                         "predict_s": round(seconds, 1)}
            if drafts:
                s = predictor.model.decode_stats
                out[name].update(tokens=s.tokens, llm_passes=s.passes, drafted=s.drafted, accepted=s.accepted,
                                 tokens_per_pass=round(s.tokens / max(s.passes + len(answers[name]), 1), 2))
    hf = answers["hf_generate"]
    for name in ("drafts", "drafts_hf_attention"):
        other = answers[name]
        out[name].update(
            speedup=round(out["hf_generate"]["predict_s"] / out[name]["predict_s"], 2),
            answers_identical_to_hf_generate=sum(hf[i]["explanation"] == other[i]["explanation"]
                                                 and hf[i]["emotions"] == other[i]["emotions"] for i in hf),
            emotion_sets_identical_to_hf_generate=sum(set(hf[i]["emotions"]) == set(other[i]["emotions"]) for i in hf))
    print(json.dumps({"model": str(predictor.model_dir), "split": args.split, "clips": len(hf), **out}, indent=1))


if __name__ == "__main__":
    main()
