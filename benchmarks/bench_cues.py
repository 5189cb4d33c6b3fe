"""Generate the acoustic-cue benchmark and measure its cues; prints one JSON object.

    python benchmarks/bench_cues.py --out bench_data/n1000 [--n 1000] [--seed 0] [--paired 60]

Makes the bench in --out (or finishes an earlier `bench make` of the same settings there: its clips are reused), then
reports the generation time per clip (2 workers), the AUC of one simple statistic per cue over the target's
utterances and over the whole clip (acoustemo.bench.check.detectability), and paired with/without-cue effects
inside and outside the labelled spans for the first `--paired` cues.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from acoustemo.bench.check import detectability, paired_effect
from acoustemo.bench.make import make_benchmark
from acoustemo.bench.plan import BenchConfig


def _summary(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 3), "min": round(float(np.min(values)), 3),
            "max": round(float(np.max(values)), 3)} if values else {}


def paired_report(out_dir: str, limit: int) -> dict:
    ids = json.loads(Path(out_dir, "meta.json").read_text())["clips"]
    records = [json.loads(Path(out_dir, ".records", f"{i}.json").read_text()) for i in sorted(ids)]
    rows = {"burst": [], "jump": [], "tremor": []}
    for rec in records:
        for i, cue in enumerate(rec["plan"]["cues"]):
            if sum(len(v) for v in rows.values()) >= limit:
                break
            rows[cue["type"]].append(paired_effect(rec["plan"], i))
    return {
        "burst": {"planned_db": _summary([e["cue"]["gain_db"] for e in rows["burst"]]),
                  "measured_db_inside": _summary([e["db_inside"] for e in rows["burst"]]),
                  "max_db_change_outside": _summary([e["db_outside"] for e in rows["burst"]])},
        "jump": {"planned_semitones": _summary([e["cue"]["semitones"] for e in rows["jump"]]),
                 "measured_semitones_inside": _summary([e["st_inside"] for e in rows["jump"]]),
                 "median_abs_semitones_outside": _summary([e["st_outside"] for e in rows["jump"]])},
        "tremor": {"rate_hz": _summary([e["cue"]["rate_hz"] for e in rows["tremor"]]),
                   "planned_semitones": _summary([e["cue"]["semitones"] for e in rows["tremor"]]),
                   "fitted_semitones_amplitude": _summary([e["tremor_st_amplitude"] for e in rows["tremor"]]),
                   "planned_depth": _summary([e["cue"]["depth"] for e in rows["tremor"]]),
                   "fitted_db_amplitude": _summary([e["tremor_db_amplitude"] for e in rows["tremor"]]),
                   "share_5_9hz_of_db_change": _summary([e["tremor_share_of_db_change"] for e in rows["tremor"]]),
                   "share_5_9hz_of_st_change": _summary([e["tremor_share_of_st_change"] for e in rows["tremor"]]),
                   "loudness_share_5_9hz_with": _summary([e["tremor_share_with"] for e in rows["tremor"]]),
                   "loudness_share_5_9hz_without": _summary([e["tremor_share_without"] for e in rows["tremor"]])},
        "cues_measured": {k: len(v) for k, v in rows.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=BenchConfig().n)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paired", type=int, default=60, help="cues to re-render without the cue and compare")
    args = ap.parse_args()
    s = make_benchmark(args.out, BenchConfig(n=args.n, seed=args.seed))
    report = {"n": args.n, "seed": args.seed, "clips_made": s.made, "clips_reused": s.reused,
              "seconds": round(s.seconds, 1), "seconds_per_clip": round(s.seconds_per_clip, 3) if s.made else None,
              "auc": detectability(args.out), "paired": paired_report(args.out, args.paired)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
