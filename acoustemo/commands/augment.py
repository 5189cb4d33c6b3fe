"""`acoustemo augment M.jsonl --out DIR`: the manifest plus re-voiced copies of each clip (data/revoice.py), each whole
recording moved in pitch, tempo and gain by its own random amount: training data in which a voice's absolute pitch,
rate and level carry no emotion (BENCHMARKS.md, "The same dialogues at another scale", says what it was measured to
do)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="M.jsonl", help="a training manifest")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/<the manifest's name> and DIR/media/; a "
                   "rerun keeps the copies already made")
    p.add_argument("--copies", type=int, default=1, help="re-voiced copies per clip (default 1)")
    p.add_argument("--pitch-st", type=float, default=3.0, help="pitch range in semitones, +- (default 3)")
    p.add_argument("--tempo", type=float, default=1.2, help="tempo range: a speed factor from 1/T to T (default 1.2; "
                   "1 when explanations name times)")
    p.add_argument("--gain-db", type=float, default=6.0, help="gain range in dB, +- (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--no-originals", action="store_true", help="write the copies only, not the manifest's own clips")


def run(args: argparse.Namespace) -> int:
    from acoustemo.data.revoice import Shift, augment_manifest

    ranges = Shift(pitch_st=args.pitch_st, tempo=args.tempo, gain_db=args.gain_db)
    path = augment_manifest(args.manifest, args.out, ranges, args.copies, args.seed, not args.no_originals)
    n = sum(1 for line in open(path, encoding="utf-8") if line.strip())
    print(f"augment: {n} clips ({args.copies} re-voiced cop{'y' if args.copies == 1 else 'ies'} per clip within "
          f"+-{ranges.pitch_st:g} st, tempo x1/{ranges.tempo:g}..{ranges.tempo:g}, +-{ranges.gain_db:g} dB) -> {path}; "
          f"train on it as on the original")
    return 0
