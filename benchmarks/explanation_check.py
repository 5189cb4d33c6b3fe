"""How often a predictions file's explanations are all right on a `bench make` folder's test split: the share of
clips whose labels are right and whose explanation gives each label its cue, each cue the right speaker and the
right time (acoustemo/bench/explain.py). Prints the JSON summary; reads, never writes, the files it is given.

    python benchmarks/explanation_check.py bench_data/n1000 bench_data/n1000/runs/full/seed0/preds.jsonl
    python benchmarks/explanation_check.py bench_data/n1000 preds.jsonl --clips     # + one line per clip
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, help="a `bench make` folder (meta.json, test.jsonl)")
    ap.add_argument("preds", type=Path, help="predictions JSONL {id, emotions, explanation}")
    ap.add_argument("--split", default="test", help="the split the predictions are for (default test)")
    ap.add_argument("--clips", action="store_true", help="also print each clip's checks and explanation")
    args = ap.parse_args()

    from acoustemo.bench.explain import explanation_check, explanation_summary, load_truth, read_predictions

    truths, preds = load_truth(args.bench, args.split), read_predictions(args.preds)
    unknown = sorted(set(preds) - set(truths))
    if unknown:
        raise SystemExit(f"{args.preds}: {len(unknown)} id(s) are not {args.split} clips of {args.bench} "
                         f"({unknown[:3]}); give the bench folder these predictions were made on, or --split")
    summary = explanation_summary(truths, preds)
    summary.update(bench=str(args.bench), preds=str(args.preds), split=args.split)
    if args.clips:
        for clip_id, truth in truths.items():
            p = preds.get(clip_id, {"emotions": [], "explanation": ""})
            failed = [k for k, v in explanation_check(truth, p["emotions"], p["explanation"]).items() if not v]
            print(json.dumps({"id": clip_id, "failed": failed, "gold": truth.labels, **p}, ensure_ascii=False))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
