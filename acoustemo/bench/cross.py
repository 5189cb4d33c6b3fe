"""`acoustemo bench score OTHER --runs RUNS`: the probe rows and trained models of a finished `bench run`, scored on
another `bench make` folder's test split: typically the same plans spoken by another engine, whose voices no
training clip comes from (`acoustemo bench make --out bench_data/festival1000 --synth festival --splits test`).

    report = score_other_bench("bench_data/festival1000", "bench_data/n1000/runs")

Each row of RUNS gets two figures: its own engine's (its saved test predictions in RUNS, scored again) and the
other engine's. The probes are fitted again exactly as `bench run` fits them (on the run's train clips, streams and
C chosen on its val split; deterministic), then predict OTHER's test clips. Each trained model (RUNS/<ablation>/
seed<S>/train/best) predicts them as `bench run` predicts its own test (the LLM in float32, no int8). OTHER's
features are extracted into OTHER/runs/features (the cache `bench run OTHER` would use) with the run's encoder.

OTHER may hold several engines (`bench make --engines`, or a `bench shift` of such a folder): every engine's test
split is then scored, "other_engine" being its main one's and "other_engines" {engine: figures} all of them.

Per row and engine: the clips scored, Avg, exact sets, per-label F1, distractor false alarms, explanations all
right (percent) and the manner confusion ("gold -> answered": clips, the target's clip-wide manner against the
manner label its answer names). Written to OUT/score.json (default RUNS/score-<OTHER's folder name>), the
predictions beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from acoustemo.bench.engines import engine_tests, folder_engines, preds_name
from acoustemo.bench.run import (INPUTS, SCORES, RunConfig, acoustic_encoder, check_bench_dir, features_dir,
                                 probe_loader, run_manifests)
from acoustemo.bench.score import score_predictions
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

PROBES = {"probe": "utterance", "probe-global": "global"}


def score_other_bench(other: str | Path, runs: str | Path, out: str | Path | None = None,
                      batch_size: int = 8, progress: bool = False) -> dict:
    """Score every finished row of the `bench run` folder `runs` on `other`'s test split; see the module doc."""
    other, runs = Path(other).resolve(), Path(runs).resolve()
    bench = _bench_of(runs)
    check_bench_dir(other, need=("test.jsonl", "meta.json", "groupings.json"))
    out = Path(out).resolve() if out else runs / f"score-{other.name}"
    table = json.loads((runs / "table.json").read_text())
    cfg = RunConfig(preset=table["preset"], encoder=table["encoder"], train=table["train_overrides"],
                    model=table.get("model_overrides", {}), seeds=(0,), progress=progress)
    encoder = acoustic_encoder(cfg)
    tests = engine_tests(other) or {folder_engines(other)[0]: "test"}
    _extract_test(other, list(tests.values()), encoder, progress)
    report = {"bench": str(bench), "other_bench": str(other), "runs": str(runs), "rows": {}}
    for name in [n for n in PROBES if (runs / n / SCORES).is_file()]:
        report["rows"][name] = _probe_row(bench, runs, other, tests, out, name, cfg)
    for run_dir in _learned_runs(runs, table):
        key = f"{run_dir.parent.name}/{run_dir.name}"
        report["rows"][key] = _model_row(bench, run_dir, other, tests, out / key, batch_size)
    if not report["rows"]:
        raise ConfigError(f"{runs} holds no finished row (no <row>/scores.json); run `acoustemo bench run` first")
    write_text_atomic(out / "score.json", json.dumps(report, indent=1) + "\n")
    return report


def _bench_of(runs: Path) -> Path:
    """The bench folder a runs folder was made from (its bench.json; DIR/runs of an older run: DIR)."""
    if (runs / INPUTS).is_file():
        return Path(json.loads((runs / INPUTS).read_text())["bench"])
    if (runs / "table.json").is_file() and (runs.parent / "meta.json").is_file():
        return runs.parent
    raise ConfigError(f"{runs} is not a finished `acoustemo bench run` folder (no {INPUTS} and table.json); give "
                      f"the --out folder of a bench run")


def _extract_test(other: Path, splits: list[str], encoder, progress: bool) -> None:
    from acoustemo.data.manifest import read_manifest
    from acoustemo.errors import EncoderError
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    clips = [c for split in splits for c in read_manifest(other / f"{split}.jsonl")]
    report = extract(clips, FeatureCache(other / "runs" / "features"), encoder, progress=progress)
    if not report.ok:
        raise EncoderError(f"feature extraction failed for {len(report.failed)} clip(s) of {other}: "
                           f"{report.summary()}")


def _learned_runs(runs: Path, table: dict) -> list[Path]:
    """The finished <ablation>/seed<S> folders of the table's rows, in its order."""
    found = []
    for row in table["rows"]:
        if row["ablation"] not in PROBES:
            found += [runs / row["ablation"] / f"seed{s}" for s in row["seeds"]]
    return [d for d in found if (d / SCORES).is_file()]


def _probe_row(bench: Path, runs: Path, other: Path, tests: dict[str, str], out: Path, name: str, cfg: RunConfig,
               ) -> dict:
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.cache import FeatureCache
    from acoustemo.probe import LinearProbe

    own = probe_loader(FeatureCache(features_dir(runs)), cfg)
    theirs = probe_loader(FeatureCache(other / "runs" / "features"), cfg)
    manifests = run_manifests(bench, runs)
    train, val = (read_manifest(manifests[s]) for s in ("train", "val"))
    probe = LinearProbe.fit(train, val, own, pooling=PROBES[name])
    engines = {}
    for engine, split in tests.items():
        test = read_manifest(other / f"{split}.jsonl")
        predicted = probe.predict(test, theirs)
        preds = out / name / preds_name(engine, split == "test")
        preds.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(preds, "".join(json.dumps({"id": c.id, "emotions": predicted[c.id], "explanation": ""})
                                         + "\n" for c in test))
        engines[engine] = figures(other, preds, split)
    return {"own_engine": figures(bench, runs / name / "preds.jsonl"), "other_engine": engines[next(iter(tests))],
            "other_engines": engines, "stream": probe.stream or "all", "C": probe.C}


def _model_row(bench: Path, run_dir: Path, other: Path, tests: dict[str, str], out: Path, batch_size: int) -> dict:
    from acoustemo.batch import predict_manifest
    from acoustemo.predictor import load_predictor

    predictor, engines = None, {}
    for engine, split in tests.items():
        preds = out / preds_name(engine, split == "test")
        if not preds.is_file():  # a rerun reuses the answers (predict_manifest writes them atomically)
            out.mkdir(parents=True, exist_ok=True)
            predictor = predictor or load_predictor(run_dir / "train", other / "runs" / "features", int8=False,
                                                    llm_dtype="float32")
            result = predict_manifest(other / f"{split}.jsonl", predictor, preds, batch_size=batch_size,
                                      progress=False)
            if result.failed:
                raise RuntimeError(f"{run_dir}: prediction failed for {len(result.failed)} clip(s) of {other}: "
                                   f"{result.failed[:3]}")
        engines[engine] = figures(other, preds, split)
    return {"own_engine": figures(bench, run_dir / "preds.jsonl"), "other_engine": engines[next(iter(tests))],
            "other_engines": engines, "model": str(run_dir / "train" / "best")}


def figures(bench: Path, preds: Path, split: str = "test") -> dict:
    """The figures `bench score` reports for one predictions file on a bench folder's test split (or `split`)."""
    s = score_predictions(bench, preds, split)
    return {"clips": s["n_test"], "avg": _round(s["avg"], 2), "exact_sets": s["exact_sets"],
            "false_alarm_pct": _round(s["distractor_false_alarms"]["rate"], 1),
            "all_right_pct": _round(s["explanations"]["percent"]["all_right"], 1),
            "per_label_f1": {k: _round(v, 1) for k, v in s["per_label_f1"].items()},
            "manners": manner_confusion(bench, preds)}


def _round(x: float, digits: int) -> float | None:
    """None for a figure with nothing to count (a label never seen, no distractor clip): JSON has no NaN."""
    return None if x != x else round(x, digits)


def manner_confusion(bench: Path, preds: Path) -> dict[str, int]:
    """{"gold -> answered": clips}: the target's clip-wide manner (plain / sad / excited) against the manner label
    in the answer (sad or excited; neither = plain)."""
    manner = {k: c["manner"] for k, c in json.loads((bench / "meta.json").read_text())["clips"].items()}
    counts: dict[str, int] = {}
    for line in preds.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        said = next((m for m in ("sad", "excited") if m in row["emotions"]), "plain")
        key = f"{manner[row['id']]} -> {said}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
