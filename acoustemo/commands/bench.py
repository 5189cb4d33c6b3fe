"""`acoustemo bench <subcommand>`: the acoustic-cue benchmark.

Each subcommand is one entry in SUBCOMMANDS: (help, add_arguments, run). Adding one is one more pair of functions
and one more entry.
"""

from __future__ import annotations

import argparse

from acoustemo.commands.train import RECIPE_FLAGS, add_recipe_arguments, add_reference_argument


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated option ("flite, festival") as a tuple of its non-empty names."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _add_make(p: argparse.ArgumentParser) -> None:
    from acoustemo.bench.plan import BenchConfig

    d = BenchConfig()
    p.add_argument("--out", required=True, help="output folder (created; an earlier run there is resumed)")
    p.add_argument("--n", type=int, default=d.n, help=f"clips in all splits together (default {d.n} -> 700/100/200)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed; same seed -> same files (default {d.seed})")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help=f"default {d.val_fraction}")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help=f"default {d.test_fraction}")
    p.add_argument("--distractor-rate", type=float, default=d.distractor_rate,
                   help=f"share of clips with a cue on the other speaker (default {d.distractor_rate})")
    p.add_argument("--synth", default=d.synth, choices=("espeak", "flite", "festival"),
                   help="speech engine: espeak (espeak-ng, the benchmark), flite (CMU Flite) or festival (Festival's "
                        "ked voice): voices a model trained on the espeak benchmark never heard; score such a model on "
                        "their test split")
    p.add_argument("--train-synth", default="", metavar="ENGINES",
                   help="comma-separated other engines (flite, festival) that also speak the train split's plans, "
                        "appended to train.jsonl as train-<engine>-<index>: more voices in training (val and test "
                        "stay --synth's); ~2x the train split's synthesis and extraction, ~1.5x a training run, and "
                        "a model that holds up better on voices it never heard (BENCHMARKS.md #17). Default: none")
    p.add_argument("--engines", default="", metavar="ENGINES",
                   help="comma-separated other engines (espeak, flite, festival) that also speak every split made, "
                        "as <split>-<engine>.jsonl with clips <split>-<engine>-<index> (train.jsonl, val.jsonl and "
                        "test.jsonl stay --synth's): one folder for `bench run`'s per-engine columns and "
                        "`bench run --leave-one-engine-out`. Default: none")
    p.add_argument("--splits", default="train,val,test",
                   help="comma-separated splits to make (default all; e.g. `--synth flite --splits test`)")
    p.add_argument("--workers", type=int, default=d.workers, help=f"synthesis processes (default {d.workers})")


def _run_make(args: argparse.Namespace) -> int:
    from acoustemo.bench.make import make_benchmark
    from acoustemo.bench.plan import BenchConfig

    cfg = BenchConfig(n=args.n, seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                      distractor_rate=args.distractor_rate, synth=args.synth,
                      train_synth=_names(args.train_synth), engines=_names(args.engines),
                      workers=args.workers)
    also = f"; train also {', '.join(cfg.train_synth)}" if cfg.train_synth else ""
    also += f"; every split also {', '.join(cfg.engines)}" if cfg.engines else ""
    print(f"bench make: seed {cfg.seed}, {cfg.n} clips ({cfg.synth}{also}) -> {args.out}", flush=True)
    s = make_benchmark(args.out, cfg, _names(args.splits))
    sizes = " / ".join(f"{k} {v}" for k, v in s.counts.items())
    timing = f" in {s.seconds:.1f} s = {s.seconds_per_clip:.3f} s per clip" if s.made else ""
    print(f"seed {s.seed}: {sizes} clips in {s.out_dir} ({s.made} made, {s.reused} reused){timing}")
    return 0


def _add_run(p: argparse.ArgumentParser) -> None:
    from acoustemo.config import ABLATIONS, PRESETS

    p.add_argument("dir", metavar="DIR", help="a `bench make` folder (train/val/test.jsonl, meta.json, "
                   "groupings.json); one made with --engines also gets each engine's test split scored, in a per-engine section")
    p.add_argument("--out", metavar="OUT", help="runs folder (default DIR/runs, DIR/runs-leave-one-engine-out with "
                   "--leave-one-engine-out); finished ablations there are skipped")
    p.add_argument("--leave-one-engine-out", action="store_true",
                   help="for each engine of DIR (`bench make --engines`), train every row on the train and val clips "
                        "of the other engines and test on every engine's test split: a table row per left-out "
                        "engine and method, with Avg, manner F1 and false alarms per engine")
    p.add_argument("--preset", default="cpu-default", choices=sorted(PRESETS), help="model preset (default cpu-default)")
    p.add_argument("--ablations", default=",".join(ABLATIONS),
                   help=f"comma-separated rows to run (default {','.join(ABLATIONS)})")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds: each learned row is trained "
                   "once per seed and the table gives mean ± sd (default 0,1,2)")
    p.add_argument("--no-probes", action="store_true", help="leave out the linear-probe anchor rows")
    p.add_argument("--probes-only", action="store_true", help="score the probe rows alone; train nothing")
    p.add_argument("--encoder", default="default", help="acoustic feature encoder (default 'default')")
    add_reference_argument(p)
    t = p.add_argument_group("train clips (default: DIR's train split; val and test are always DIR's, but with "
                             "--leave-one-engine-out: the other engines' train and val)")
    t.add_argument("--train-limit", type=int, default=0, metavar="N",
                   help="the first N train clips (of each folder, or each engine, the clips come from; default 0 = "
                        "all)")
    t.add_argument("--train-bench", metavar="DIR2",
                   help="take the train clips from this `bench make` folder instead, made with DIR's --seed (its train "
                        "sentences and voices are refused if they occur in DIR's val / test); their ids get an 'x' "
                        "prefix")
    t.add_argument("--add-train", action="append", default=[], metavar="DIR3",
                   help="also train on this `bench make` folder's train split, e.g. the same plans spoken by another "
                        "engine (`bench make --synth flite --splits train`); its ids get '<folder name>-' as a "
                        "prefix. Repeatable")
    g = p.add_argument_group("training (TrainConfig fields; unset = the training defaults)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int, metavar="N", help="stop each row after N optimizer steps")
    g.add_argument("--lr", type=float, help="peak learning rate")
    add_recipe_arguments(g)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--grad-accum", type=int, metavar="N")
    g.add_argument("--warmup-ratio", type=float)
    g.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], help="autocast (default auto)")
    g.add_argument("--eval-every", type=int, metavar="N", help="validate every N steps (and each epoch)")
    g.add_argument("--save-every", type=int, metavar="N", help="checkpoint each row's last/ every N steps")
    g.add_argument("--predict-batch-size", type=int, default=8, help="test clips per generation batch")
    g.add_argument("--no-progress", action="store_true")


_RUN_TRAIN_FLAGS = {"epochs": "epochs", "max_steps": "max_steps", "lr": "lr", "batch_size": "batch_size",
                    "grad_accum": "grad_accum_steps", "warmup_ratio": "warmup_ratio",
                    "mixed_precision": "mixed_precision", "eval_every": "eval_every_steps",
                    "save_every": "save_every_steps", **RECIPE_FLAGS}


def _run_run(args: argparse.Namespace) -> int:
    from acoustemo.bench.leaveout import run_leave_one_engine_out
    from acoustemo.bench.run import RunConfig, run_benchmark

    train = {field: getattr(args, flag) for flag, field in _RUN_TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    cfg = RunConfig(preset=args.preset, ablations=_names(args.ablations),
                    seeds=tuple(int(x) for x in args.seeds.split(",") if x.strip()), probes=not args.no_probes,
                    encoder=args.encoder, train=train, predict_batch_size=args.predict_batch_size,
                    model={"acoustic_reference": args.acoustic_reference} if args.acoustic_reference else {},
                    progress=not args.no_progress, probes_only=args.probes_only, train_limit=args.train_limit,
                    train_bench=args.train_bench, add_train=tuple(args.add_train))
    run = run_leave_one_engine_out if args.leave_one_engine_out else run_benchmark
    summary = run(args.dir, cfg, args.out)
    print(summary.markdown)
    print(f"written: {summary.out_dir / 'table.md'}, {summary.out_dir / 'table.json'}"
          + (f" (reused finished runs: {', '.join(summary.skipped)})" if summary.skipped else ""))
    return 0


def _add_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("other", metavar="OTHER_BENCH", help="a `bench make` folder of the same plans spoken by another "
                   "engine (only its test split is read), e.g. `bench make --synth festival --splits test`")
    p.add_argument("--runs", required=True, metavar="RUNS_DIR", help="a finished `bench run` folder (its --out)")
    p.add_argument("--out", help="where predictions and score.json go (default RUNS_DIR/score-<OTHER's name>)")
    p.add_argument("--predict-batch-size", type=int, default=8, help="test clips per generation batch (default 8)")


def _run_score(args: argparse.Namespace) -> int:
    import json

    from acoustemo.bench.cross import score_other_bench

    report = score_other_bench(args.other, args.runs, args.out, args.predict_batch_size)
    print(json.dumps(report, indent=1))
    return 0


def _add_explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("bench", metavar="BENCH", help="a `bench make` folder (meta.json, test.jsonl)")
    p.add_argument("preds", metavar="PREDS.jsonl", help="predictions JSONL {id, emotions, explanation}")
    p.add_argument("--split", default="test", help="the split the predictions are for (default test)")
    p.add_argument("--clips", action="store_true", help="also print each clip's failed checks and explanation")


def _run_explain(args: argparse.Namespace) -> int:
    import json

    from acoustemo.bench.explain import check_predictions

    summary, clips = check_predictions(args.bench, args.preds, args.split)
    for row in clips if args.clips else ():
        print(json.dumps(row, ensure_ascii=False))
    print(json.dumps(summary, indent=2))
    return 0


def _add_shift(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="a `bench make` folder")
    p.add_argument("--out", required=True, help="the new folder (a rerun with the same settings keeps what is made)")
    p.add_argument("--splits", default="test", help="comma-separated splits to re-voice, in every engine (default "
                   "test); the others are linked unchanged")
    p.add_argument("--pitch-st", type=float, default=0.0, help="pitch shift in semitones (default 0)")
    p.add_argument("--tempo", type=float, default=1.0, help="speed factor, >1 faster (default 1)")
    p.add_argument("--gain-db", type=float, default=0.0, help="gain in dB (default 0)")
    p.add_argument("--random", action="store_true", help="draw each clip's shift within +-pitch, [1/tempo, tempo] "
                   "and +-gain instead of applying them as given: waveform augmentation")
    p.add_argument("--seed", type=int, default=0, help="seed of the --random draws (default 0)")
    p.add_argument("--workers", type=int, default=2, help="sox processes at once (default 2)")


def _run_shift(args: argparse.Namespace) -> int:
    from acoustemo.bench.shift import Shift, shift_bench

    shift = Shift(pitch_st=args.pitch_st, tempo=args.tempo, gain_db=args.gain_db)
    counts = shift_bench(args.src, args.out, _names(args.splits), shift, args.random, args.seed, args.workers)
    how = "random shifts within" if args.random else "shifted by"
    print(f"bench shift: {sum(counts.values())} clips {how} pitch {shift.pitch_st:+g} st, tempo x{shift.tempo:g}, "
          f"gain {shift.gain_db:+g} dB ({', '.join(f'{k} {v}' for k, v in counts.items() if v)}) -> {args.out}")
    return 0


SUBCOMMANDS = {
    "make": ("generate the two-speaker acoustic-cue dialogues and their manifests", _add_make, _run_make),
    "run": ("train, predict and score the ablations (paper Table 2) on a `bench make` folder", _add_run, _run_run),
    "score": ("score a bench run's probes and models on another engine's test split", _add_score, _run_score),
    "explain": ("how often a predictions file's explanations are all right (labels, cues, speakers, times)",
                _add_explain, _run_explain),
    "shift": ("the same dialogues with each whole clip moved in pitch, tempo and gain: a stress test of the absolute "
              "scale, or (--random) waveform augmentation", _add_shift, _run_shift),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (help_text, add, run_fn) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_bench_run=run_fn)


def run(args: argparse.Namespace) -> int:
    return args._bench_run(args)
