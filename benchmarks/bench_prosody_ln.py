"""Does the Q-Former's per-frame LayerNorm of the prosody stream lose the cues? A linear probe on cached
features of a `bench make` folder: per target-speaker utterance window, pooled prosody statistics (mean, std,
max, min per channel; max/mean over the target's windows), one logistic regression per label, set-level Avg on
test (exact labels). Run once on the raw channels and once after LayerNorm over each frame's channels (what
qformer.StreamInput does before its projection, without the learned affine). Prints JSON.

    python benchmarks/bench_prosody_ln.py bench_data/n400 --cache bench_data/n400/runs/features
"""

from __future__ import annotations

import argparse
import json

import numpy as np

LABELS = ("sad", "excited", "anxious", "angry", "surprised", "neutral")


def clip_vector(clip, feats, layernorm: bool) -> np.ndarray:
    start = sum(w for name, w in feats.streams if name != "prosody")  # prosody is the last stream
    x = feats.data[:, start:].astype(np.float64)
    if layernorm:
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    rows = []
    for u in clip.utterances:
        if u.speaker != clip.target_speaker:
            continue
        a, b = int(u.start_s * feats.frame_rate_hz), max(int(u.end_s * feats.frame_rate_hz), int(u.start_s * feats.frame_rate_hz) + 1)
        w = x[a:b]
        rows.append(np.concatenate([w.mean(0), w.std(0), w.max(0), w.min(0)]))
    rows = np.stack(rows)
    return np.concatenate([rows.mean(0), rows.max(0), rows.min(0)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--cache", required=True)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from acoustemo.data.manifest import read_manifest
    from acoustemo.evaluate.grouping import exact_groupings, pooled_labels
    from acoustemo.evaluate.setlevel import set_level_scores
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache

    cache, enc = FeatureCache(args.cache), get_acoustic_encoder("default")
    splits = {s: read_manifest(f"{args.bench}/{s}.jsonl") for s in ("train", "test")}
    feats = {s: [cache.load(c, enc) for c in clips] for s, clips in splits.items()}
    out = {}
    for ln in (False, True):
        X = {s: np.stack([clip_vector(c, f, ln) for c, f in zip(splits[s], feats[s])]) for s in splits}
        sc = StandardScaler().fit(X["train"])
        probs = {}
        for label in LABELS:
            y = np.array([label in c.labels for c in splits["train"]])
            lr = LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(X["train"]), y)
            probs[label] = lr.predict_proba(sc.transform(X["test"]))[:, 1]
        gold, pred = {}, {}
        for i, c in enumerate(splits["test"]):
            p = [l for l in LABELS if probs[l][i] > 0.5] or [max(LABELS, key=lambda l: probs[l][i])]
            gold[c.id], pred[c.id] = list(c.labels), p
        groups = exact_groupings({k: pooled_labels(g, pred[k]) for k, g in gold.items()})
        r = set_level_scores(gold, pred, groups, without_grouping="exact")
        f1 = {}
        for l in LABELS:
            tp = sum(l in gold[k] and l in pred[k] for k in gold); fp = sum(l not in gold[k] and l in pred[k] for k in gold)
            fn = sum(l in gold[k] and l not in pred[k] for k in gold)
            f1[l] = round(100 * 2 * tp / max(2 * tp + fp + fn, 1), 1)
        out["layernorm_per_frame" if ln else "raw"] = {"avg": round(100 * r.avg, 2), "accuracy_s": round(100 * r.accuracy_s, 2),
                                                    "recall_s": round(100 * r.recall_s, 2), "f1": f1}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
