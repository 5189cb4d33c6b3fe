"""How `bench run` scores a predictions file on a `bench make` folder: the set-level scores of `acoustemo evaluate`
(synonyms mapped with the folder's groupings.json), per-label F1, the distractor false alarms (a cue planted only
on the other speaker, answered for the target; from meta.json) and the explanation checks (bench/explain.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

LABELS = ("sad", "excited", "anxious", "angry", "surprised", "neutral")  # the benchmark's label set


def score_predictions(bench: Path, preds: Path, split: str = "test") -> dict:
    """Set-level scores (percent), per-label F1, distractor false alarms and the explanation checks
    (acoustemo/bench/explain.py) of a predictions file on a split (default the test split)."""
    from acoustemo.bench.explain import explanation_summary, load_truth, read_predictions
    from acoustemo.evaluate.report import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        groupings = bench / "groupings.json"
        if split != "test":  # `bench make` writes the test split's groupings; the same synonym groups serve any split
            from acoustemo.bench.gold import bench_groupings

            gold_rows = [json.loads(x) for x in (bench / f"{split}.jsonl").read_text().splitlines() if x.strip()]
            groupings = Path(tmp) / "groupings.json"
            groupings.write_text(json.dumps(bench_groupings({r["id"]: r["labels"] for r in gold_rows})))
        report, sl, _ = evaluate(bench / f"{split}.jsonl", preds, groupings, grouping="cache")
    gold = {s.name: s.gold_mapped for s in sl.samples}
    predicted = {s.name: s.pred_mapped for s in sl.samples}
    meta = json.loads((bench / "meta.json").read_text())
    exact = {s.name: set(s.gold_mapped) == set(s.pred_mapped) for s in sl.samples}
    return {"avg": report["avg"], "accuracy_s": report["accuracy_s"], "recall_s": report["recall_s"],
            "n_test": report["n_samples"], "n_empty_predictions": sl.n_empty_predictions,
            "exact_sets": sum(exact.values()), "exact_by_clip": exact,
            "per_label_f1": per_label_f1(gold, predicted),
            "distractor_false_alarms": distractor_false_alarms(meta, gold, predicted),
            "explanations": explanation_summary(load_truth(bench, split), read_predictions(preds))}


def per_label_f1(gold: dict[str, list[str]], pred: dict[str, list[str]]) -> dict[str, float]:
    """F1 (percent) of each benchmark label over the test clips, on synonym-mapped labels."""
    out = {}
    for label in LABELS:
        tp = sum(label in gold[k] and label in pred.get(k, []) for k in gold)
        fp = sum(label not in gold[k] and label in pred.get(k, []) for k in gold)
        fn = sum(label in gold[k] and label not in pred.get(k, []) for k in gold)
        out[label] = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return out


def distractor_false_alarms(meta: dict, gold: dict[str, list[str]], pred: dict[str, list[str]]) -> dict:
    """How often a cue planted only on the other speaker was answered for the target.

    A clip counts for cue label L when it has a distractor cue with label L and L is not in its gold labels (the
    target did not carry the same cue); a false alarm is L among the predicted labels. Rates in percent.
    """
    per_label: dict[str, list[int]] = {}
    for clip_id, g in gold.items():
        cues = meta["clips"].get(clip_id, {}).get("cues", [])
        for label in {c["label"] for c in cues if c["distractor"]} - set(g):
            hits = per_label.setdefault(label, [0, 0])
            hits[0] += label in pred.get(clip_id, [])
            hits[1] += 1
    total = [sum(h[0] for h in per_label.values()), sum(h[1] for h in per_label.values())]
    rate = lambda h: 100.0 * h[0] / h[1] if h[1] else float("nan")  # noqa: E731
    return {"rate": rate(total), "false_alarms": total[0], "clips": total[1],
            "per_label": {k: {"rate": rate(v), "false_alarms": v[0], "clips": v[1]}
                          for k, v in sorted(per_label.items())}}
