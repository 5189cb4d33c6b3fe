"""How close are the offline groupings to the field's LLM groupings? Prints JSON.

    python benchmarks/grouping_calibration.py --emer PATH/TO/emer [--thresholds 0.46,0.5,...]

On the MER fixture (mer2024_ov_store: gold, one system's predictions, the LLM grouping cache) and the emotion
wheels: for each offline grouping, the agreement with the cache on "same group or not" over every pair of
different labels of a sample (precision / recall / F1 of the "same group" pairs; "same group" as the metric sees
it: both labels map to one group head), the Accuracy_S / Recall_S / Avg it yields next to the cache's, and how
many of its merged pairs the guards would forbid (the cache's own count is given too). The unguarded row is the
grouping before issue #16 (single-linkage embeddings, cosine >= 0.46).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from acoustemo.evaluate.grouping import (
    EMBEDDING_THRESHOLD,
    embed_labels,
    embedding_groupings,
    exact_groupings,
    merged_pairs,
    pooled_labels,
    read_grouping_cache,
    wheel_groupings,
)
from acoustemo.evaluate.guards import Guard
from acoustemo.evaluate.parsing import read_labels
from acoustemo.evaluate.setlevel import label_map, set_level_scores
from acoustemo.evaluate.wheel import load_wheel_resources


class NoGuard(Guard):
    def reason(self, a: str, b: str) -> str | None:
        return None


def same_group_pairs(samples: dict[str, list[str]], groupings) -> set[tuple[str, str, str]]:
    out = set()
    for name, labels in samples.items():
        head = label_map(groupings.get(name, []))
        uniq = sorted(set(labels))
        out |= {(name, a, b) for k, a in enumerate(uniq) for b in uniq[k + 1 :] if head.get(a, a) == head.get(b, b)}
    return out


def row(samples, gold, pred, groupings, reference_pairs, guard) -> dict:
    pairs = same_group_pairs(samples, groupings)
    tp = len(pairs & reference_pairs)
    p = tp / len(pairs) if pairs else 0.0
    r = tp / len(reference_pairs) if reference_pairs else 0.0
    sl = set_level_scores(gold, pred, groupings)
    merged = merged_pairs(samples, groupings)
    return {
        "pair_precision": round(p, 4), "pair_recall": round(r, 4), "pair_f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "accuracy_s": round(100 * sl.accuracy_s, 2), "recall_s": round(100 * sl.recall_s, 2), "avg": round(100 * sl.avg, 2),
        "merged_pairs": len(pairs), "guard_forbidden_pairs": sum(guard.apart(a, b) for _, a, b in pairs),
        "top_merges": [f"{a} + {b}: {n}" for (a, b), n in merged.most_common(5)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emer", required=True, help="the EMER reference folder (mer2024_ov_store/, emotion_wheel/)")
    ap.add_argument("--thresholds", default="0.46,0.5,0.55,0.6,0.65,0.7,0.75,0.8")
    args = ap.parse_args()
    store, wheel_dir = Path(args.emer) / "mer2024_ov_store", Path(args.emer) / "emotion_wheel"
    gold = read_labels(store / "check-openset.csv").labels
    pred = read_labels(store / "predict-openset.csv").labels
    cache = read_grouping_cache(store / "openset-synonym.json")
    res = load_wheel_resources(wheel_dir)
    samples = {n: pooled_labels(g, pred.get(n, [])) for n, g in gold.items()}
    ref_pairs = same_group_pairs(samples, cache)
    guard = Guard(res)
    vectors = embed_labels(sorted({x for labels in samples.values() for x in labels}))
    out = {"fixture": str(store), "n_samples": len(samples), "cache_same_group_pairs": len(ref_pairs),
           "default_threshold": EMBEDDING_THRESHOLD, "rows": {}}
    rows = out["rows"]
    rows["cache (the field's LLM groupings)"] = row(samples, gold, pred, cache, ref_pairs, guard)
    rows["none (exact match)"] = row(samples, gold, pred, exact_groupings(samples), ref_pairs, guard)
    unguarded = embedding_groupings(samples, 0.46, guard=NoGuard(), vectors=vectors)
    rows["embedding 0.46 unguarded (before #16)"] = row(samples, gold, pred, unguarded, ref_pairs, guard)
    rows["wheel-synonyms, guarded"] = row(samples, gold, pred, wheel_groupings(samples, res), ref_pairs, guard)
    for t in (float(x) for x in args.thresholds.split(",")):
        g = embedding_groupings(samples, t, vectors=vectors)
        rows[f"embedding {t:g}, guarded (no wheel folder)"] = row(samples, gold, pred, g, ref_pairs, guard)
        g = embedding_groupings(samples, t, wheel=res, vectors=vectors)
        rows[f"embedding {t:g}, guarded, with --wheel"] = row(samples, gold, pred, g, ref_pairs, guard)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
