"""`acoustemo bench run DIR --leave-one-engine-out`: what a model knows shows on voices it has not heard (#35).

    bench make --out bench_data/engines --engines flite,festival     # every split in espeak-ng, Flite, Festival
    bench run bench_data/engines --leave-one-engine-out --ablations full

For each engine E of the folder (bench/engines.py), one `bench run` in OUT/leave-<E>: every row (the probes and
each ablation x seed) trains on the train clips of every other engine, chooses on their val clips (never E's),
and is tested on every engine's test split, E's and the heard ones'. The runs share one feature cache
(OUT/features); each is resumable as a `bench run` is. OUT/table.md and table.json hold a row per left-out engine
and method: Avg on the heard engines and on E, and each engine's Avg, manner F1 and false alarms.

Output folder OUT (default DIR/runs-leave-one-engine-out):
  features/                   the shared feature cache
  leave-<E>/                  a `bench run` folder (train.jsonl, val.jsonl: the other engines' clips; its table)
  table.md, table.json        the leave-one-engine-out table
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from acoustemo.bench.engines import folder_engines
from acoustemo.bench.run import RunConfig, RunSummary, check_bench_dir, run_benchmark
from acoustemo.bench.table import render_leave_out
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

OUT_NAME = "runs-leave-one-engine-out"  # the default runs folder, beside DIR/runs


def run_leave_one_engine_out(bench_dir: str | os.PathLike, cfg: RunConfig, out_dir: str | os.PathLike | None = None,
                             ) -> RunSummary:
    """One `bench run` per engine left out (see the module docstring); writes and returns the combined table."""
    bench_dir = Path(bench_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else bench_dir / OUT_NAME
    check_bench_dir(bench_dir)
    engines = folder_engines(bench_dir)
    if len(engines) < 2:
        raise ConfigError(f"{bench_dir} holds one engine ({engines[0]}); make it with others to leave one out: "
                          f"`acoustemo bench make --out {bench_dir} --engines flite,festival` (the folder's settings)")
    rows, skipped, sub_tables = {}, [], {}
    for engine in engines:
        print(f"bench run: leaving {engine} out -> {out / f'leave-{engine}'}", flush=True)
        summary = run_benchmark(bench_dir, cfg, out / f"leave-{engine}", leave_out=engine,
                                features_dir=out / "features")
        sub_tables[engine] = json.loads((summary.out_dir / "table.json").read_text())
        rows.update({f"leave-{engine}/{name}": runs for name, runs in summary.rows.items()})
        skipped += [f"leave-{engine}/{s}" for s in summary.skipped]
    table = leave_out_table(engines, sub_tables)
    write_text_atomic(out / "table.json", json.dumps(table, indent=2) + "\n")
    md = render_leave_out(table)
    write_text_atomic(out / "table.md", md)
    return RunSummary(out, rows, md, skipped)


def leave_out_table(engines: list[str], sub_tables: dict[str, dict]) -> dict:
    """The runs' tables in one: their rows, each with the engine it left out, in the folder's engine order."""
    first = sub_tables[engines[0]]
    keep = ("seeds", "preset", "encoder", "train_overrides", "model_overrides", "labels")
    return {"leave_one_engine_out": True, **{k: first[k] for k in keep}, "engines": list(engines),
            "feature_extraction_s": max(t["feature_extraction_s"] for t in sub_tables.values()),
            "rows": [{**r, "left_out": e} for e in engines for r in sub_tables[e]["rows"]]}
