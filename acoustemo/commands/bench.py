"""`acoustemo bench <subcommand>`: the acoustic-cue benchmark.

Each subcommand is one entry in SUBCOMMANDS: (help, add_arguments, run). Adding one (e.g. `run`, the ablation
table) is one more pair of functions and one more entry.
"""

from __future__ import annotations

import argparse


def _add_make(p: argparse.ArgumentParser) -> None:
    from acoustemo.bench.make import BenchConfig

    d = BenchConfig()
    p.add_argument("--out", required=True, help="output folder (created; an earlier run there is resumed)")
    p.add_argument("--n", type=int, default=d.n, help=f"clips in all splits together (default {d.n} -> 280/60/60)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed; same seed -> same files (default {d.seed})")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help=f"default {d.val_fraction}")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help=f"default {d.test_fraction}")
    p.add_argument("--distractor-rate", type=float, default=d.distractor_rate,
                   help=f"share of clips with a cue on the other speaker (default {d.distractor_rate})")
    p.add_argument("--workers", type=int, default=d.workers, help=f"synthesis processes (default {d.workers})")


def _run_make(args: argparse.Namespace) -> int:
    from acoustemo.bench.make import BenchConfig, make_benchmark

    cfg = BenchConfig(n=args.n, seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                      distractor_rate=args.distractor_rate, workers=args.workers)
    print(f"bench make: seed {cfg.seed}, {cfg.n} clips -> {args.out}", flush=True)
    s = make_benchmark(args.out, cfg)
    sizes = " / ".join(f"{k} {v}" for k, v in s.counts.items())
    timing = f" in {s.seconds:.1f} s = {s.seconds_per_clip:.3f} s per clip" if s.made else ""
    print(f"seed {s.seed}: {sizes} clips in {s.out_dir} ({s.made} made, {s.reused} reused){timing}")
    return 0


SUBCOMMANDS = {
    "make": ("generate the two-speaker acoustic-cue dialogues and their manifests", _add_make, _run_make),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (help_text, add, run_fn) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_bench_run=run_fn)


def run(args: argparse.Namespace) -> int:
    return args._bench_run(args)
