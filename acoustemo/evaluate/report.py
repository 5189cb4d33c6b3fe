"""Scoring predictions against gold labels: Accuracy_S / Recall_S (EMER-Fine set-level) and the emotion-wheel
metric, as one report. `acoustemo evaluate` prints it; `bench run` scores its rows with it.

    report, set_level, groups = evaluate("test.jsonl", "preds.jsonl", "groupings.json", grouping="cache")

Scores are reported ×100 (percent), as the paper does; per-sample rows hold fractions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from acoustemo.evaluate.grouping import EMBEDDING_THRESHOLD, make_groupings, merged_pairs, pooled_labels
from acoustemo.evaluate.parsing import read_labels
from acoustemo.evaluate.setlevel import SetLevelResult, set_level_scores
from acoustemo.evaluate.wheel import METRIC_VERSION, WheelScore, ew_scores, load_wheel_resources


def evaluate(
    gold: str | Path,
    pred: str | Path,
    groupings: str | Path | None = None,
    wheel: str | Path | None = None,
    grouping: str = "auto",
    threshold: float = EMBEDDING_THRESHOLD,
    without_grouping: str = "skip",
) -> tuple[dict, SetLevelResult, dict]:
    """(report with scores in percent, the set-level result with its samples, the groupings used)."""
    gold_file, pred_file = read_labels(gold), read_labels(pred)
    res = load_wheel_resources(wheel) if wheel else None
    if grouping == "auto":
        grouping = "cache" if groupings else "embedding"
    grouping_id, groups = make_groupings(gold_file.labels, pred_file.labels, grouping, groupings, res, threshold)
    sl = set_level_scores(gold_file.labels, pred_file.labels, groups, without_grouping)
    samples = {n: pooled_labels(g, pred_file.labels.get(n, [])) for n, g in gold_file.labels.items()}
    merges = merged_pairs(samples, groups)
    report = {
        "accuracy_s": 100 * sl.accuracy_s,
        "recall_s": 100 * sl.recall_s,
        "avg": 100 * sl.avg,
        "ew_level1": None,
        "ew_level2": None,
        "units": "percent",
        "grouping": grouping_id,
        **({"grouping_threshold": threshold} if grouping == "embedding" else {}),
        "grouping_merged_pairs": sum(merges.values()),  # pairs of a sample's different labels counted as one
        "grouping_distinct_merged_pairs": len(merges),
        "grouping_top_merges": [[a, b, n] for (a, b), n in merges.most_common(10)],
        **{k: v for k, v in sl.summary().items() if k.startswith("n_") or k == "without_grouping"},
        "gold": {"path": str(gold_file.path), "format": gold_file.format, "n_unlabeled": gold_file.skipped},
        "pred": {"path": str(pred_file.path), "format": pred_file.format, "n_rows": len(pred_file.labels)},
    }
    if res is not None:
        for level in (1, 2):
            ew = ew_scores(gold_file.labels, pred_file.labels, res, level)
            report[f"ew_level{level}"] = {
                "version": METRIC_VERSION,
                "f": 100 * ew.f,
                "p": 100 * ew.p,
                "r": 100 * ew.r,
                "per_wheel": [{**w, **{k: 100 * w[k] for k in ("f", "p", "r")}} for w in ew.per_wheel],
            }
        report["ew_version"] = METRIC_VERSION
        report["ew_n_pred_labels"] = ew.n_pred_labels
        report["ew_n_pred_unknown"] = ew.n_pred_unknown
        report["ew_n_pred_off_wheel"] = ew.n_pred_off_wheel
        report["ew_caveat"] = ew_caveat(ew)
    return report, sl, groups


def ew_caveat(ew: WheelScore) -> str:
    """The out-of-vocabulary caveat, with the number of predicted labels the EW metric dropped."""
    dropped = [w["n_pred_dropped"] for w in ew.per_wheel]
    return (
        f"EW drops out-of-vocabulary predicted labels and they cost nothing: {ew.n_pred_unknown} of "
        f"{ew.n_pred_labels} predicted labels are no surface form in format.csv and {ew.n_pred_off_wheel} more "
        f"reach no wheel word; per wheel {'/'.join(map(str, dropped))} predicted labels of the scored samples "
        "were dropped"
    )


def write_per_sample(path: str | Path, sl: SetLevelResult) -> None:
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for s in sl.samples:
            row = {
                "name": s.name,
                "gold": s.gold,
                "pred": s.pred,
                "gold_mapped": s.gold_mapped,
                "pred_mapped": s.pred_mapped,
                "acc": s.accuracy,
                "recall": s.recall,
                "missing_prediction": s.missing_prediction,
                "exact_match_fallback": s.exact_match_fallback,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
