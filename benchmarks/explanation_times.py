"""Where a model's explanations place the target's cue: the stated spans against the gold cue (issue #17).

    python benchmarks/explanation_times.py bench_data/n1000 bench_data/n1000/runs/full/seed0/preds.jsonl

Over every clause with an "at a–b s" span (acoustemo/bench/explain.py's parser) in the test clips whose target
speaker carries a cue, the stated start is compared with the start of the target's (first) cue and of the
utterance holding it. Prints JSON: clauses, distinct spans and the most used ones, the median |stated start −
cue start| and the share within 0.5 s, and the median |stated start − utterance start|.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, help="a `bench make` folder (meta.json, test.jsonl)")
    ap.add_argument("preds", type=Path, help="predictions JSONL {id, emotions, explanation}")
    args = ap.parse_args()

    from acoustemo.bench.explain import TIME_TOLERANCE_S, load_truth, parse_explanation, read_predictions
    from acoustemo.data.manifest import read_manifest

    truth, preds = load_truth(args.bench), read_predictions(args.preds)
    clips = {c.id: c for c in read_manifest(args.bench / "test.jsonl")}
    spans: collections.Counter = collections.Counter()
    to_cue, to_onset = [], []
    for cid, pred in preds.items():
        own = [c for c in truth[cid].cues if not c["distractor"]]
        if not own:
            continue
        cue = own[0]
        utt = next(u for u in clips[cid].utterances if u.start_s <= cue["start"] <= u.end_s)
        for claim in parse_explanation(pred["explanation"]):
            if claim.span is not None:
                spans[claim.span] += 1
                to_cue.append(abs(claim.span[0] - cue["start"]))
                to_onset.append(abs(claim.span[0] - utt.start_s))
    print(json.dumps({
        "clauses": len(to_cue), "distinct_spans": len(spans),
        "top_spans": [[list(s), n] for s, n in spans.most_common(5)],
        "median_start_to_cue_s": round(statistics.median(to_cue), 2) if to_cue else None,
        "within_tolerance_pct": round(100 * sum(e <= TIME_TOLERANCE_S for e in to_cue) / len(to_cue), 1) if to_cue else None,
        "median_start_to_utterance_s": round(statistics.median(to_onset), 2) if to_onset else None,
    }))


if __name__ == "__main__":
    main()
