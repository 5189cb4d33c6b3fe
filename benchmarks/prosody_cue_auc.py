"""How well each prosody channel finds the benchmark's local cues: per utterance, the channel's maximum over the
utterance's frames, scored by ROC AUC for "this utterance carries a tremor / burst / jump" against every other
utterance of the split(s) (both speakers, distractor cues included). Reads the cached `default` features.

    python benchmarks/prosody_cue_auc.py bench_data/n1000            # all splits; prints one JSON line per channel

AUC 0.5 is chance, 1.0 a perfect single threshold. Used for issue #17 (prosody version 2, BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("--splits", default="train,val,test")
    args = ap.parse_args()

    from sklearn.metrics import roc_auc_score

    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.windows import frame_range
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.prosody import CHANNELS

    meta = json.loads((args.bench / "meta.json").read_text())["clips"]
    cache, enc = FeatureCache(args.bench / "runs" / "features"), get_acoustic_encoder("default")
    cues, maxima = [], []
    for split in args.splits.split(","):
        for clip in read_manifest(args.bench / f"{split}.jsonl"):
            feats = cache.load(clip, enc)
            if feats is None:
                raise SystemExit(f"{clip.id}: no cached features; run `acoustemo extract {split}.jsonl --cache "
                                 f"{args.bench}/runs/features` first")
            prosody = feats.stream("prosody")
            planted = {c["utterance"]: c["type"] for c in meta[clip.id]["cues"]}
            for k, u in enumerate(clip.utterances):
                a, b = frame_range(u.start_s, u.end_s, feats.frame_rate_hz, len(prosody))
                cues.append(planted.get(k, "none"))
                maxima.append(prosody[a:b].max(axis=0))
    cues, maxima = np.array(cues), np.stack(maxima)
    for i, name in enumerate(CHANNELS):
        row = {"channel": name, "utterances": len(cues)}
        for cue in ("tremor", "burst", "jump"):
            row[f"auc_{cue}"] = round(float(roc_auc_score(cues == cue, maxima[:, i])), 3)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
