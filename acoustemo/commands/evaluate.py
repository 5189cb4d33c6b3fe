"""`acoustemo evaluate`: Accuracy_S / Recall_S (EMER-Fine set-level) and the emotion-wheel metric, printed as a
table or JSON. The report itself is built by acoustemo.evaluate.report.evaluate."""

from __future__ import annotations

import json

from acoustemo.evaluate.grouping import EMBEDDING_THRESHOLD, write_grouping_cache
from acoustemo.evaluate.report import evaluate, write_per_sample


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
