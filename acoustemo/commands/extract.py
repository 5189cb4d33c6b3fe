"""`acoustemo extract MANIFEST --cache DIR`: cache frozen-encoder features for every clip of a manifest."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("manifest", help="JSONL manifest (one clip per line)")
    p.add_argument("--cache", required=True, help="folder for the feature files (one .safetensors per clip and encoder)")
    p.add_argument("--shard", default="0/1", help="i/n: extract only clips k with k %% n == i (run n of these in parallel)")
    p.add_argument("--acoustic", default="default", help="acoustic encoder: default, whisper-base, prosody, ... or hf:<local folder>")
    p.add_argument("--visual", default="none", help="visual encoder: none, default (faces + expressions) or hf:<local folder>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def run(args) -> int:
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder, get_visual_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract, parse_shard

    shard = parse_shard(args.shard)
    clips = read_manifest(args.manifest, resolve_subtitles=False)  # features need media only, not utterances
    acoustic = get_acoustic_encoder(args.acoustic)
    visual = None if args.visual == "none" else get_visual_encoder(args.visual)
    report = extract(clips, FeatureCache(args.cache), acoustic, visual, shard=shard, progress=not args.no_progress)
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 1 if report.failed else 0
