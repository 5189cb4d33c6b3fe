"""`bench run` on the first N train clips of a `bench make` folder (its own val and test splits, its cached
features), or its probe rows alone: the issue-#17 figures measured before a whole default table was affordable.

    python benchmarks/bench_subset.py bench_data/n1000 --train-limit 280 --out /tmp/b280     # full, seed 0
    python benchmarks/bench_subset.py bench_data/n1000 --probes-only --out /tmp/probes       # probe rows, 700 train
    python benchmarks/bench_subset.py bench_data/n1000 --train-limit 280 --train '{"freeze_acoustic": false}' --out /tmp/j
    python benchmarks/bench_subset.py bench_data/n1000 --model '{"mark_target": true}' --seeds 2 --out /tmp/mt
    # 2 100 train clips from a larger bench of the same seed, n1000's val and test (the learning curve):
    acoustemo bench make --out bench_data/n4300 --n 4300
    python benchmarks/bench_subset.py bench_data/n1000 --train-bench bench_data/n4300 --train-limit 2100 --out /tmp/lc
    # the train split spoken by two engines: n1000's 700 train clips + the same plans spoken by Flite's voices
    acoustemo bench make --out bench_data/flite1000tr --synth flite --splits train
    python benchmarks/bench_subset.py bench_data/n1000 --add-train bench_data/flite1000tr --out /tmp/mixed
    # (`acoustemo bench make --out bench_data/n1000x2 --train-synth flite` makes the same train split in one bench folder)

The subset folder holds the cut manifests, links to the bench's media and feature cache, and copies of meta.json
and groupings.json; the table is printed as `bench run` prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="subset folder (created)")
    ap.add_argument("--train-limit", type=int, default=0, help="first N train clips (0 = all)")
    ap.add_argument("--train-bench", type=Path, default=None,
                    help="take the train clips from this `bench make` folder instead (same seed: its train split "
                         "has the same sentence and voice pools, disjoint from val / test); their ids get an 'x' "
                         "prefix and absolute media paths, so they share the feature cache without clashing")
    ap.add_argument("--add-train", type=Path, action="append", default=[],
                    help="also train on this `bench make` folder's train split (e.g. the same plans spoken by another "
                         "engine, `bench make --synth flite --splits train`); its ids get the folder's name as a "
                         "prefix and absolute media paths. Repeatable")
    ap.add_argument("--ablations", default="full")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--probes-only", action="store_true", help="score the probe rows, train nothing")
    ap.add_argument("--train", default="{}", help='TrainConfig overrides as JSON, e.g. \'{"freeze_acoustic": false}\'')
    ap.add_argument("--model", default="{}", help='ModelConfig overrides as JSON, e.g. \'{"mark_target": true}\'')
    ap.add_argument("--no-probes", action="store_true", help="train and score the learned rows only")
    args = ap.parse_args()

    from acoustemo.bench.run import RunConfig, run_benchmark, run_probe

    src, dst = args.bench.resolve(), args.out
    (dst / "runs").mkdir(parents=True, exist_ok=True)
    lines = ((args.train_bench or src) / "train.jsonl").read_text().splitlines(keepends=True)
    lines = lines[: args.train_limit] if args.train_limit else lines
    if args.train_bench:
        _check_disjoint(args.train_bench, src)
        lines = [json.dumps(_moved(json.loads(line), args.train_bench.resolve()), ensure_ascii=False) + "\n"
                 for line in lines]
    for extra in args.add_train:
        _check_disjoint(extra, src)
        more = (extra / "train.jsonl").read_text().splitlines()
        more = more[: args.train_limit] if args.train_limit else more
        lines += [json.dumps(_moved(json.loads(line), extra.resolve(), extra.resolve().name + "-"), ensure_ascii=False)
                  + "\n" for line in more]
    (dst / "train.jsonl").write_text("".join(lines))
    for name in ("val.jsonl", "test.jsonl", "meta.json", "groupings.json"):
        shutil.copyfile(src / name, dst / name)
    for link, target in ((dst / "media", src / "media"), (dst / "runs" / "features", src / "runs" / "features")):
        if not link.exists():
            os.symlink(target, link)
    cfg = RunConfig(ablations=tuple(args.ablations.split(",")), seeds=tuple(int(s) for s in args.seeds.split(",")),
                    probes=not (args.probes_only or args.no_probes), progress=False, isolate=False,
                    train=json.loads(args.train), model=json.loads(args.model))
    if args.probes_only:
        memo: dict = {}
        for pooling, name in (("utterance", "probe"), ("global", "probe-global")):
            run_probe(dst, dst / "runs", cfg, pooling, name, memo)
        return
    print(run_benchmark(dst, cfg, dst / "runs").markdown)


def _check_disjoint(train_bench: Path, bench: Path) -> None:
    """Refuse a train bench whose train sentences or voices occur in `bench`'s val / test splits (another seed or
    other split fractions draw other pools), naming the overlap, so no test material is trained on."""
    try:
        theirs, ours = (json.loads((b / "meta.json").read_text())["splits"] for b in (train_bench, bench))
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise SystemExit(f"--train-bench {train_bench}: both folders need a `bench make` meta.json ({e})") from None
    for key in ("sentences", "variants"):
        seen = set(theirs["train"][key]) & (set(ours["val"][key]) | set(ours["test"][key]))
        if seen:
            raise SystemExit(f"--train-bench {train_bench}: {len(seen)} of its train {key} occur in {bench}'s val / "
                             f"test splits (e.g. {sorted(seen)[0]!r}); make it with the same --seed and split "
                             f"fractions as {bench}")


def _moved(clip: dict, bench: Path, prefix: str = "x") -> dict:
    """A train clip of another bench folder, renamed and pointing at its media there."""
    return {**clip, "id": prefix + clip["id"], "media": str(bench / clip["media"])}


if __name__ == "__main__":
    main()
