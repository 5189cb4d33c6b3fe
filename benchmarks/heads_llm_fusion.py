"""Exploratory: set-level combinations of a run's LLM answers and its stage-1 heads' answers, scored on test.

    python benchmarks/heads_llm_fusion.py BENCH_DIR RUN_DIR [RUN_DIR ...]
    # each RUN_DIR: a bench run's <row>/seed<N> folder after benchmarks/stage1_heads.py wrote preds_heads_bias_train.jsonl

The LLM and the heads get different clips right (stage1_heads.py's `agreement`), so this asks how much a plain rule
over the two label sets would keep. Every rule is printed; none is chosen here, and the rules see test predictions
only, so a rule that scores well is a lead to build and choose on val, not a result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

RULES = {
    "llm": lambda llm, heads: llm,
    "heads": lambda llm, heads: heads,
    "llm ∩ heads, else llm": lambda llm, heads: [w for w in llm if w in heads] or llm,
    "llm ∩ heads, else heads": lambda llm, heads: [w for w in llm if w in heads] or heads,
    "llm ∪ heads": lambda llm, heads: list(dict.fromkeys(llm + heads)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args()

    from acoustemo.bench.run import score_predictions

    rows = {name: [] for name in RULES}
    for run in args.runs:
        llm_path, heads_path = run / "preds.jsonl", run / "preds_heads_bias_train.jsonl"
        for path, fix in ((llm_path, "point at a finished bench run's <row>/seed<N> folder"),
                          (heads_path, f"run `python benchmarks/stage1_heads.py {run} {args.bench}` first")):
            if not path.is_file():
                raise SystemExit(f"{path} is missing: {fix}")
        llm, heads = _read(llm_path), _read(heads_path)
        if set(llm) != set(heads):
            raise SystemExit(f"{run}: preds.jsonl and preds_heads_bias_train.jsonl answer different clips; rerun "
                             f"stage1_heads.py on this run")
        for name, rule in RULES.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "preds.jsonl"
                path.write_text("".join(json.dumps({"id": k, "emotions": rule(llm[k], heads[k]), "explanation": ""}) + "\n"
                                        for k in llm))
                s = score_predictions(args.bench, path)
            rows[name].append({"run": str(run), "avg": round(s["avg"], 2), "exact_sets": s["exact_sets"],
                               "false_alarm_pct": round(s["distractor_false_alarms"]["rate"], 1)})
    report = {name: {"avg_mean": round(statistics.mean(r["avg"] for r in runs), 2),
                     "avg_sd": round(statistics.stdev(r["avg"] for r in runs), 2) if len(runs) > 1 else 0.0,
                     "false_alarm_mean_pct": round(statistics.mean(r["false_alarm_pct"] for r in runs), 1),
                     "runs": runs} for name, runs in rows.items()}
    print(json.dumps(report, indent=1, ensure_ascii=False))


def _read(path: Path) -> dict[str, list[str]]:
    return {j["id"]: j["emotions"] for j in map(json.loads, path.read_text().splitlines())}


if __name__ == "__main__":
    main()
