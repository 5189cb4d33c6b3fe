"""Stage-1 levers (issue #17): how much of the labels the Q-Former tokens carry after stage 1, per input-path /
pooling variant, scored by the stage-1 label heads alone (no LLM) on a held-out split, beside the linear probe.

    python benchmarks/stage1_levers.py --bench bench_data/n1000 --cache bench_data/n1000/runs/features \
        --variants session3,max,max+stats,max+stats+ln --epochs 10

A variant is '+'-joined switches: session3 (mean pooling, LayerNorm input, no stats = the session-3 recipe),
max (multiple-instance pooling), stats (ModelConfig.window_stats), ln (stream_norm layernorm), q16 (16 queries
per window), prosody (prosody stream only), rel (ModelConfig.speaker_relative = prosody), level / jitter (the
training augmentations of data/augment.py, TrainConfig.augment). `--cross BENCH:CACHE` also scores the heads on
another bench's test split (e.g. the Flite one, acoustemo bench make --synth flite). Prints one JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from acoustemo.features.prosody import CHANNELS as PROSODY_CHANNELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--variants", default="session3,max,max+stats")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-limit", type=int, default=0, help="use the first N train clips (0 = all)")
    ap.add_argument("--eval-split", default="val", help="val, test, or train-tail (the train clips past --train-limit)")
    ap.add_argument("--ablation", default="full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedule", default="constant", help="stage-1 lr schedule: constant or cosine")
    ap.add_argument("--keep-best", action="store_true", help="score --eval-split after every epoch and keep the best")
    ap.add_argument("--report-split", default="", help="also score this split (e.g. test) with the final weights")
    ap.add_argument("--model", default="{}", help='ModelConfig overrides for every variant, e.g. \'{"qformer_dropout": 0.3}\'')
    ap.add_argument("--cross", default="", help="BENCH:CACHE: also score the final heads on that bench's test split")
    ap.add_argument("--weight-decay", type=float, default=0.05, help="stage-1 AdamW weight decay (TrainConfig.weight_decay)")
    args = ap.parse_args()

    from acoustemo.bench.run import per_label_f1
    from acoustemo.config import ModelConfig
    from acoustemo.data.augment import AUGMENTATIONS, FeatureAugment
    from acoustemo.data.dataset import AcoustEmoDataset
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.model.acoustemo import AcoustEmoModel
    from acoustemo.probe import _avg
    from acoustemo.training import acoustic_stats
    from acoustemo.training.align import align_acoustic, stage1_labels

    cache, enc = FeatureCache(args.cache), get_acoustic_encoder("default")
    cached = lambda clips: [c for c in clips if cache.path(c.id, enc).is_file()]  # noqa: E731
    train = cached(read_manifest(f"{args.bench}/train.jsonl"))
    if args.eval_split == "train-tail":  # while the other splits are still being extracted
        train, held = train[: args.train_limit], train[args.train_limit :]
    else:
        held = cached(read_manifest(f"{args.bench}/{args.eval_split}.jsonl"))
        train = train[: args.train_limit] if args.train_limit else train

    memo = {}

    def load(clip):  # the cache checks the media's hash on every load; read each clip once
        if clip.id not in memo:
            memo[clip.id] = cache.load(clip, enc)
        return memo[clip.id] if keep is None else _only(memo[clip.id], keep)

    for variant in args.variants.split(","):
        parts = set(variant.split("+"))
        keep = "prosody" if "prosody" in parts else None
        overrides = dict(ablation=args.ablation, stream_norm="layernorm" if parts & {"ln", "session3"} else "none",
                         window_stats="stats" in parts, num_queries=16 if "q16" in parts else 8)
        if keep:
            overrides["acoustic_streams"] = [("prosody", len(PROSODY_CHANNELS))]
        overrides.update(json.loads(args.model))
        if "rel" in parts:
            overrides["speaker_relative"] = ["prosody"]
        pooling = "max" if "max" in parts else "mean"
        torch.manual_seed(args.seed)
        cfg = ModelConfig.preset("cpu-default", llm_dtype="float32", **overrides)
        model = AcoustEmoModel(cfg)
        model.set_acoustic_stats(*acoustic_stats(train, load, cfg))
        ds = lambda clips: AcoustEmoDataset(clips, load, None, model.tokenizer, cfg)  # noqa: E731
        augment = [a for a in AUGMENTATIONS if a in parts]
        train_ds = AcoustEmoDataset(train, load, None, model.tokenizer, cfg,
                                    augment=FeatureAugment(augment, args.seed, cfg.input_streams) if augment else None)
        gold = {c.id: c.labels for c in held}
        held_ds = ds(held)

        def score(result):
            pred = stage1_labels(model, held_ds, held, result, pooling)
            return _avg([gold[k] for k in gold], [pred[k] for k in gold])

        t0 = time.perf_counter()
        result = align_acoustic(model, train_ds, train, args.epochs, args.lr, 16, 4.0, args.weight_decay, args.seed, "labels",
                                pooling, evaluate=score if args.keep_best else None, keep_best=args.keep_best,
                                schedule=args.schedule)
        seconds = time.perf_counter() - t0
        pred = stage1_labels(model, held_ds, held, result, pooling)
        report = {}
        if args.report_split:
            other = cached(read_manifest(f"{args.bench}/{args.report_split}.jsonl"))
            opred = stage1_labels(model, ds(other), other, result, pooling)
            ogold = {c.id: c.labels for c in other}
            report = {f"{args.report_split}_avg": round(100 * _avg([ogold[k] for k in ogold], [opred[k] for k in ogold]), 2),
                      f"{args.report_split}_f1": {k: round(v, 1) for k, v in per_label_f1(ogold, opred).items()}}
        if args.cross:
            bench, cross_cache = args.cross.split(":", 1)
            xcache = FeatureCache(cross_cache)
            xclips = [c for c in read_manifest(f"{bench}/test.jsonl") if xcache.path(c.id, enc).is_file()]
            xds = AcoustEmoDataset(xclips, lambda c: xcache.load(c, enc) if keep is None else _only(xcache.load(c, enc), keep),
                                   None, model.tokenizer, cfg)
            xpred = stage1_labels(model, xds, xclips, result, pooling)
            xgold = {c.id: c.labels for c in xclips}
            report.update(cross_avg=round(100 * _avg([xgold[k] for k in xgold], [xpred[k] for k in xgold]), 2),
                          cross_clips=len(xclips),
                          cross_f1={k: round(v, 1) for k, v in per_label_f1(xgold, xpred).items()})
        print(json.dumps({
            "variant": variant, "pooling": pooling, "schedule": args.schedule, **{k: v for k, v in overrides.items() if k != "acoustic_streams"},
            "streams": keep or "all", "augment": augment, "train_clips": len(train), "eval_clips": len(held), "epochs": args.epochs,
            "final_loss": round(result.losses[-1], 4), "stage1_s": round(seconds, 1),
            "epoch_scores": [round(100 * v, 2) for v in result.val_scores], "best_epoch": result.best_epoch,
            "eval_avg": round(100 * _avg([gold[k] for k in gold], [pred[k] for k in gold]), 2),
            "f1": {k: round(v, 1) for k, v in per_label_f1(gold, pred).items()},
            **report, "weight_decay": args.weight_decay, "cpu": torch.backends.cpu.get_cpu_capability(),
        }), flush=True)


def _only(features, name):
    from acoustemo.features.base import Features

    return Features(data=features.stream(name), frame_rate_hz=features.frame_rate_hz, encoder_id=features.encoder_id,
                    streams=[(n, w) for n, w in features.streams if n == name], duration_s=features.duration_s,
                    metadata=features.metadata)


if __name__ == "__main__":
    main()
