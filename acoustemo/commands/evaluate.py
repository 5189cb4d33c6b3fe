"""`acoustemo evaluate`: Accuracy_S / Recall_S (EMER-Fine set-level) and the emotion-wheel metric.

Scores are reported ×100 (percent), as the paper does; per-sample rows hold fractions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from acoustemo.evaluate.grouping import EMBEDDING_THRESHOLD, make_groupings, merged_pairs, pooled_labels, write_grouping_cache
from acoustemo.evaluate.parsing import read_labels
from acoustemo.evaluate.setlevel import SetLevelResult, set_level_scores
from acoustemo.evaluate.wheel import METRIC_VERSION, WheelScore, ew_scores, load_wheel_resources


def add_arguments(p) -> None:
    p.add_argument("--gold", required=True, help="gold labels: the field's CSV (name, openset) or a JSONL manifest (id, labels)")
    p.add_argument("--pred", required=True, help="predictions: the field's CSV or JSONL {id, emotions, explanation}")
    p.add_argument("--groupings", metavar="S.json", help="the field's grouping cache {name: \"[['a', 'b'], ['c']]\"}")
    p.add_argument("--wheel", metavar="DIR", help="emotion-wheel folder (wheel1..5.xlsx, synonym.xlsx, format.csv): adds EW scores")
    p.add_argument(
        "--grouping",
        choices=["auto", "cache", "wheel", "embedding", "none"],
        default="auto",
        help="how synonyms are grouped; auto = the cache if --groupings, else guarded embeddings (the offline groupings "
        "never join different emotions; with --wheel they also use its inflections and level-1 emotions as guards)",
    )
    p.add_argument("--threshold", type=float, default=EMBEDDING_THRESHOLD, help=f"cosine threshold of the embedding grouping (default {EMBEDDING_THRESHOLD})")
    p.add_argument(
        "--without-grouping",
        choices=["skip", "exact"],
        default="skip",
        help="a sample the cache has no grouping for: skip it (as the reference) or score it by exact match",
    )
    p.add_argument("--per-sample", metavar="F", help="write one JSONL row per scored sample (fractions)")
    p.add_argument("--save-groupings", metavar="F", help="save the groupings used, in the cache's JSON form")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


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


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="acoustemo evaluate (scores in %)")
    for col in ("metric", "value"):
        table.add_column(col)
    table.add_row("grouping", report["grouping"])
    if report["ew_level1"] is not None:
        table.add_row("EW metric", report["ew_version"])
    for key, label in (("accuracy_s", "Accuracy_S"), ("recall_s", "Recall_S"), ("avg", "Avg")):
        table.add_row(label, f"{report[key]:.2f}")
    for level in (1, 2):
        ew = report[f"ew_level{level}"]
        if ew is not None:
            table.add_row(f"EW level {level} F / P / R", f"{ew['f']:.2f} / {ew['p']:.2f} / {ew['r']:.2f}")
    console = Console()
    console.print(table)
    top = ", ".join(f"{a} = {b} ({n})" for a, b, n in report["grouping_top_merges"]) or "none"
    console.print(
        f"grouping {report['grouping']}: {report['grouping_merged_pairs']} label pairs of a sample counted as one "
        f"({report['grouping_distinct_merged_pairs']} distinct); most frequent: {top}"
    )
    console.print(
        f"{report['n_samples']} samples scored of {report['n_gold']} gold; "
        f"{report['n_missing_predictions']} without a prediction (scored as empty), "
        f"{report['n_without_grouping']} without a grouping ({report['without_grouping']}), "
        f"{report['n_empty_gold']} with empty gold (skipped), {report['n_extra_predictions']} extra predictions ignored"
    )
    if report["ew_level1"] is not None:
        console.print(f"EW metric: {report['ew_version']}. Caveat: {report['ew_caveat']}")


def run(args) -> int:
    report, sl, groups = evaluate(
        args.gold, args.pred, args.groupings, args.wheel, args.grouping, args.threshold, args.without_grouping
    )
    if args.per_sample:
        write_per_sample(args.per_sample, sl)
    if args.save_groupings:
        write_grouping_cache(args.save_groupings, groups)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0
