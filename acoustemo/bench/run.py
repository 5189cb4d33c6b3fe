"""`acoustemo bench run`: the paper's Table 2 (ablations) on a `bench make` folder.

    summary = run_benchmark("bench/", RunConfig(preset="cpu-default", seeds=(0,)))
    print(summary.markdown)

One path for every row: features are extracted once into a shared cache (DIR/runs/features), then each ablation
(full / no-global / fixed-window / no-utterance) is trained with `acoustemo.training.train` once per seed (the
same seeds for every row, so the same data orders and initial RNG states), its best model (by validation loss)
predicts the test split with `acoustemo.batch.predict_manifest`, and `acoustemo evaluate`'s scorer compares the
predictions with the test labels, mapping synonyms with DIR/groupings.json. Each (ablation, seed) runs in its own
spawned process, so its wall time and peak memory (RSS, `resource.getrusage`) are its own and no state leaks
from one run into the next. Rows report the mean ± sd over the seeds.

Two anchor rows come first (acoustemo/probe.py): `probe`, a logistic regression per label on pooled statistics
of the same cached features over the target speaker's utterance windows and the whole clip, and `probe-global`,
on the whole-clip statistics only. They cost seconds and say, in every run, what the features carry and how far
the learned model is from a linear reading of its own inputs. They are deterministic (one fit, no seed).

Beside the set-level scores (Avg, Accuracy_S, Recall_S in percent) the table reports what the set-level score
hides (BENCHMARKS.md): per-label F1 and the distractor false-alarm rate, i.e. how often a cue label was
predicted for the target speaker when that cue was planted only on the OTHER speaker (from DIR/meta.json), and
how often an explanation is all right: its labels, the cue it gives each label, the speaker it gives each cue and
the times it states all match the clip (acoustemo/bench/explain.py; "–" for the probes, which explain nothing).
Scoring lives in bench/score.py, the table in bench/table.py.

The train clips are DIR's train split unless RunConfig says otherwise (train_limit, train_bench, add_train;
bench/subset.py): then every row, the probes included, trains on one manifest composed into OUT/train.jsonl.

Other engines (bench/engines.py): on a folder made with `bench make --engines`, every row also predicts each other
engine's test split (preds-<engine>.jsonl) and the table gets a per-engine section: Avg on the engines heard in
training and on those left out, with manner F1 and false alarms per engine. `leave_out=E` (bench/leaveout.py)
trains on the train and val clips of every engine but E, composed into OUT/train.jsonl and OUT/val.jsonl.

Output folder OUT (default DIR/runs):
  features/                        the shared feature cache
  bench.json                       the bench folder and the train manifest the rows were trained on (`bench score`);
                                   with other engines also val, tests {engine: manifest}, heard, features
  train.jsonl                      the composed train clips, when RunConfig composes them
  probe/, probe-global/            preds.jsonl and scores.json of the anchor rows
  <ablation>/seed<S>/train/        the training run (configs, log.jsonl, loss.png, last/, best/)
  <ablation>/seed<S>/preds.jsonl   test predictions {id, emotions, explanation}
  <ablation>/seed<S>/scores.json   settings, set-level scores, per-label F1, false alarms, explanation checks,
                                   wall time, peak RSS;
                                   written last: a run with a scores.json whose settings match is skipped on a rerun
  table.md, table.json             Table 2 (probe rows, then the paper's rows; mean ± sd over seeds) + per-label table
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.bench.engines import (compose_leave_out, engine_figures, engine_tests, folder_engines, heard_engines,
                                     preds_name)
from acoustemo.bench.score import score_predictions
from acoustemo.bench.subset import compose_train, composes_train, train_data_settings
from acoustemo.bench.table import ROW_NAMES, build_table, render_markdown
from acoustemo.config import ABLATIONS
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

SCORES = "scores.json"
INPUTS = "bench.json"


@dataclass
class RunConfig:
    """What `bench run` varies; everything else is the preset's / TrainConfig's default."""

    preset: str = "cpu-default"
    ablations: tuple[str, ...] = ABLATIONS
    seeds: tuple[int, ...] = (0, 1, 2)  # each learned row is trained once per seed; the table gives mean ± sd
    probes: bool = True  # the probe / probe-global anchor rows
    encoder: str = "default"  # acoustic feature encoder (acoustemo.features)
    train: dict = field(default_factory=dict)  # TrainConfig overrides (epochs, max_steps, lr, batch_size, ...)
    model: dict = field(default_factory=dict)  # ModelConfig overrides (the ablation is set per row)
    predict_batch_size: int = 8
    isolate: bool = True  # each ablation in its own spawned process (clean peak RSS; nothing leaks between rows)
    progress: bool = True
    probes_only: bool = False  # the probe rows alone: no learned row is trained (ablations and seeds are not run)
    train_limit: int = 0  # the first N train clips (0 = all); bench/subset.py
    train_bench: str | None = None  # take the train clips from this `bench make` folder of the same seed
    add_train: tuple[str, ...] = ()  # also train on these folders' train splits

    def __post_init__(self) -> None:
        self.ablations, self.seeds = tuple(self.ablations), tuple(int(x) for x in self.seeds)
        self.add_train = tuple(str(d) for d in self.add_train)
        if self.probes_only and not self.probes:
            raise ConfigError("probes_only scores the probe rows alone; it cannot leave them out too (--no-probes)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {list(self.seeds)}: give one or more distinct seeds")
        bad = [a for a in self.ablations if a not in ABLATIONS]
        if bad or not self.ablations:
            raise ConfigError(f"ablations {list(self.ablations)}: choose one or more of {', '.join(ABLATIONS)}")
        if len(set(self.ablations)) != len(self.ablations):
            raise ConfigError(f"ablations {list(self.ablations)} repeat a name")
        for key in ("seed", "acoustic_encoder", "cache_dir", "progress"):
            if key in self.train:
                raise ConfigError(f"set {key} through RunConfig (seed / encoder / out), not in its train overrides")
        if "ablation" in self.model:
            raise ConfigError("the ablation is set per row; list the rows in RunConfig.ablations")


@dataclass
class RunSummary:
    out_dir: Path
    rows: dict[str, list[dict]]  # row (probe or ablation) -> its scores.json contents, one per seed
    markdown: str
    skipped: list[str]  # "<ablation>/seed<S>" runs reused from an earlier run


# ------------------------------------------------------------------------------------------------ driver
def run_benchmark(bench_dir: str | os.PathLike, cfg: RunConfig, out_dir: str | os.PathLike | None = None,
                  leave_out: str | None = None, features_dir: str | os.PathLike | None = None) -> RunSummary:
    """Score the probes, then train, predict and score every ablation x seed of `cfg`; write the table.

    leave_out: train on the train and val clips of every engine of the folder but this one (bench/leaveout.py);
    features_dir: the feature cache (default OUT/features; leave-one-engine-out runs share one)."""
    bench_dir = Path(bench_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else bench_dir / "runs"
    check_bench_dir(bench_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / INPUTS, json.dumps(_inputs(bench_dir, out, cfg, leave_out, features_dir)) + "\n")
    manifests = run_manifests(bench_dir, out)
    train_manifest = manifests["train"]
    tests = list(manifests["tests"].values()) or [manifests["test"]]
    extract_s = _extract_all([train_manifest, manifests["val"], *tests], manifests["features"], cfg)
    rows: dict[str, list[dict]] = {}
    if cfg.probes:
        memo: dict = {}  # pooled statistics per clip, computed once for both probes
        for pooling, name in (("utterance", "probe"), ("global", "probe-global")):
            done = _finished(out / name, _probe_settings(cfg, pooling, out))
            rows[name] = [done or run_probe(bench_dir, out, cfg, pooling, name, memo)]
    skipped = []
    for ablation in () if cfg.probes_only else cfg.ablations:
        rows[ablation] = []
        for seed in cfg.seeds:
            settings = _settings(cfg, ablation, seed, out)
            run_dir = out / ablation / f"seed{seed}"
            done = _finished(run_dir, settings)
            if done is not None:
                log.info("%s: already finished (%s); skipped", run_dir, run_dir / SCORES)
                rows[ablation].append(done)
                skipped.append(f"{ablation}/seed{seed}")
                continue
            print(f"bench run: {ablation}, seed {seed} -> {run_dir}", flush=True)
            args = (str(bench_dir), str(out), dataclasses.asdict(cfg), ablation, seed, settings)
            rows[ablation].append(_run_isolated(run_dir, settings, args) if cfg.isolate else run_ablation(*args))
    train_data = _train_data(cfg).get("train_data") if leave_out is None else None
    table = build_table(rows, cfg, extract_s, {**train_data, "clips": _count_lines(train_manifest)} if train_data
                        else None, manifests["engines"])
    write_text_atomic(out / "table.json", json.dumps(table, indent=2) + "\n")
    md = render_markdown(table)
    write_text_atomic(out / "table.md", md)
    return RunSummary(out, rows, md, skipped)


def check_bench_dir(bench_dir: Path, need: tuple[str, ...] = ("train.jsonl", "val.jsonl", "test.jsonl",
                                                               "meta.json", "groupings.json")) -> None:
    missing = [n for n in need if not (bench_dir / n).is_file()]
    if missing:
        raise ConfigError(f"{bench_dir} is not a finished `acoustemo bench make` folder (missing {', '.join(missing)}); "
                          f"run `acoustemo bench make --out {bench_dir}` first")


def _inputs(bench_dir: Path, out: Path, cfg: RunConfig, leave_out: str | None, features_dir) -> dict:
    """What bench.json records: the bench, the train manifest, and for a folder with other engines the test
    manifest of each engine and the engines heard in training (plus val and the left-out engine for leave_out)."""
    if leave_out is None:
        train = compose_train(bench_dir, out, cfg.train_limit, cfg.train_bench, cfg.add_train)
        inputs = {"bench": str(bench_dir), "train": str(train)}
        if features_dir:
            inputs["features"] = str(Path(features_dir).resolve())
        tests = engine_tests(bench_dir)
        sources = [Path(cfg.train_bench) if cfg.train_bench else bench_dir, *map(Path, cfg.add_train)]
        heard = list(dict.fromkeys(e for source in sources for e in heard_engines(source)))
        return {**inputs, "tests": tests, "heard": heard} if tests else inputs
    if cfg.train_bench or cfg.add_train:
        raise ConfigError("a leave-one-engine-out run trains on the folder's own engines; drop --train-bench and "
                          "--add-train")
    paths = compose_leave_out(bench_dir, out, leave_out, cfg.train_limit)
    return {"bench": str(bench_dir), "train": str(paths["train"]), "val": str(paths["val"]),
            "tests": engine_tests(bench_dir), "heard": [e for e in folder_engines(bench_dir) if e != leave_out],
            "left_out": leave_out, "features": str(Path(features_dir).resolve() if features_dir else out / "features")}


def _train_data(cfg: RunConfig, out: Path | None = None) -> dict:
    """{"train_data": the composed train clips' settings}, part of every row's settings; {} for the bench's own
    train split, so the settings of such runs are what they always were. For a leave-one-engine-out run in `out`:
    {"leave_out": the engine left out, the engines trained on, the train limit}."""
    left_out = _read_inputs(out).get("left_out") if out is not None else None
    if left_out is not None:
        return {"leave_out": {"engine": left_out, "heard": _read_inputs(out)["heard"], "train_limit": cfg.train_limit}}
    if not composes_train(cfg.train_limit, cfg.train_bench, cfg.add_train):
        return {}
    return {"train_data": train_data_settings(cfg.train_limit, cfg.train_bench, cfg.add_train)}


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _read_inputs(out: Path) -> dict:
    return json.loads((out / INPUTS).read_text())


def run_manifests(bench_dir: Path, out: Path) -> dict:
    """The manifests of a run, as bench.json in `out` records them: train (as compose_train wrote it), val, test
    (the main engine's), tests {engine: path} and engines {engine: manifest name} (both {} for a one-engine
    folder), heard (the engines trained on) and features (the feature cache)."""
    inputs = _read_inputs(out)
    engines = inputs.get("tests", {})
    return {"train": Path(inputs["train"]), "val": Path(inputs.get("val", bench_dir / "val.jsonl")),
            "test": bench_dir / "test.jsonl", "tests": {e: bench_dir / f"{n}.jsonl" for e, n in engines.items()},
            "engines": {e: {"split": n, "heard": e in inputs.get("heard", [])} for e, n in engines.items()},
            "features": features_dir(out)}


def features_dir(out: Path) -> Path:
    """The feature cache of the runs in `out` (bench.json's features: shared by a leave-one-engine-out run)."""
    return Path(_read_inputs(out).get("features", out / "features"))


def _extract_all(paths: list[Path], cache_dir: Path, cfg: RunConfig) -> float:
    """Features of every split, once, into the shared cache (a rerun skips what is cached)."""
    from acoustemo.data.manifest import read_manifest
    from acoustemo.errors import EncoderError
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    clips = [c for path in paths for c in read_manifest(path)]
    report = extract(clips, FeatureCache(cache_dir), acoustic_encoder(cfg), progress=cfg.progress)
    print(f"bench run: features ({cfg.encoder}) {report.summary()}", flush=True)
    if not report.ok:
        raise EncoderError(f"feature extraction failed for {len(report.failed)} clip(s): {report.summary()}")
    # the time is kept beside the cache, summed over invocations, so a resumed run reports the whole cost
    record = cache_dir / f"extract-{cfg.encoder.replace('/', '_').replace(':', '_')}.json"
    saved = json.loads(record.read_text()) if record.is_file() else {"wall_s": 0.0, "computed": 0}
    if report.computed:
        saved = {"wall_s": saved["wall_s"] + report.wall_s, "computed": saved["computed"] + len(report.computed)}
        write_text_atomic(record, json.dumps(saved) + "\n")
    return float(saved["wall_s"])


def acoustic_encoder(cfg: RunConfig):
    """The encoder the learned rows train on, with the options their TrainConfig pins (acoustic_options), so the
    shared cache holds the features they read."""
    from acoustemo.predictor import trained_acoustic_encoder
    from acoustemo.training import TrainConfig

    return trained_acoustic_encoder(TrainConfig.from_json({**cfg.train, "acoustic_encoder": cfg.encoder}))


def _configs(cfg: RunConfig, ablation: str, seed: int, out: Path):
    from acoustemo.training import resolve_configs

    train_fields = {**cfg.train, "seed": seed, "acoustic_encoder": cfg.encoder,
                    "cache_dir": str(features_dir(out)), "progress": cfg.progress}
    return resolve_configs(cfg.preset, model_overrides={**cfg.model, "ablation": ablation},
                           train_overrides=train_fields)


def _settings(cfg: RunConfig, ablation: str, seed: int, out: Path) -> dict:
    """Everything that decides a run's result; a saved result is reused only when it matches."""
    from acoustemo.training import OPERATIONAL_FIELDS

    mcfg, tcfg = _configs(cfg, ablation, seed, out)
    train_json = {k: v for k, v in tcfg.to_json().items() if k not in OPERATIONAL_FIELDS}
    return {"preset": cfg.preset, "model": mcfg.to_json(), "train": train_json, **_train_data(cfg, out)}


def _finished(run_dir: Path, settings: dict) -> dict | None:
    path = run_dir / SCORES
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("settings") != settings:
        raise ConfigError(f"{run_dir} holds a finished run with other settings; delete {run_dir} to redo it with "
                          f"these, or give another --out")
    return saved


def _run_isolated(run_dir: Path, settings: dict, args: tuple) -> dict:
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=run_ablation, args=args)
    proc.start()
    proc.join()
    done = _finished(run_dir, settings)
    if proc.exitcode != 0 or done is None:
        raise RuntimeError(f"bench run: {run_dir} failed (exit code {proc.exitcode}); see the messages above; a "
                           f"rerun resumes it from {run_dir / 'train'}")
    return done


def run_ablation(bench_dir: str, out: str, cfg_dict: dict, ablation: str, seed: int, settings: dict) -> dict:
    """Train, predict and score one (ablation, seed); writes <out>/<ablation>/seed<S>/scores.json (its mark)."""
    from acoustemo.batch import predict_manifest
    from acoustemo.predictor import load_predictor
    from acoustemo.training import train

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    bench, out_dir = Path(bench_dir), Path(out)
    cfg = RunConfig(**{**cfg_dict, "ablations": tuple(cfg_dict["ablations"]), "seeds": tuple(cfg_dict["seeds"])})
    run_dir = out_dir / ablation / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    mcfg, tcfg = _configs(cfg, ablation, seed, out_dir)
    t0 = time.perf_counter()
    resume = (run_dir / "train" / "config.json").is_file()
    manifests = run_manifests(bench, out_dir)
    result = train(manifests["train"], manifests["val"], run_dir / "train", mcfg, tcfg, resume=resume)
    t1 = time.perf_counter()
    model_dir = result.best_dir or run_dir / "train"
    predictor = load_predictor(model_dir, manifests["features"], int8=False)  # the model as trained (not int8)
    tests = {e: path for e, path in manifests["tests"].items() if path != manifests["test"]}
    for engine, path in {None: manifests["test"], **tests}.items():
        pred = predict_manifest(path, predictor, run_dir / preds_name(engine, engine is None),
                                batch_size=cfg.predict_batch_size, progress=cfg.progress)
        if pred.failed:
            raise RuntimeError(f"{ablation}: prediction failed for {len(pred.failed)} clip(s) of {path.name}: "
                               f"{pred.failed[:3]}")
    t2 = time.perf_counter()
    del predictor
    row = {"ablation": ablation, "row": ROW_NAMES[ablation], "seed": seed, "settings": settings,
           **score_predictions(bench, run_dir / "preds.jsonl"), **_engine_scores(bench, run_dir, manifests),
           "train_steps": result.steps, "final_loss": result.final_loss, "best_step": result.best_step,
           "best_val_loss": result.best_value, "train_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1),
           "wall_s": round(t2 - t0, 1), "resumed": resume, "peak_rss_mb": round(peak_rss_mb(), 1),
           "parameters": _parameter_report(model_dir)}
    write_text_atomic(run_dir / SCORES, json.dumps(row, indent=2) + "\n")  # last: marks the run finished
    print(f"bench run: {ablation} seed {seed}: Avg {row['avg']:.2f} (Accuracy_S {row['accuracy_s']:.2f}, Recall_S "
          f"{row['recall_s']:.2f}) in {row['wall_s']:.0f} s, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def _engine_scores(bench: Path, run_dir: Path, manifests: dict) -> dict:
    """{"engines": {engine: its test split's figures (bench/engines.py), "heard": trained on it}} for a folder with
    other engines; {} for a one-engine folder."""
    out = {}
    for engine, info in manifests["engines"].items():
        preds = run_dir / preds_name(engine, manifests["tests"][engine] == manifests["test"])
        out[engine] = {**engine_figures(score_predictions(bench, preds, info["split"])), "heard": info["heard"]}
    return {"engines": out} if out else {}


def run_probe(bench_dir: Path, out: Path, cfg: RunConfig, pooling: str, name: str, memo: dict | None = None) -> dict:
    """Fit and score one probe row (acoustemo/probe.py) on the cached features; <out>/<name>/scores.json marks it
    done (a rerun with the same settings reuses it, as for the learned rows)."""
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.cache import FeatureCache
    from acoustemo.probe import LinearProbe

    manifests = run_manifests(bench_dir, out)
    load = probe_loader(FeatureCache(manifests["features"]), cfg)  # features were extracted by _extract_all
    t0 = time.perf_counter()
    split = {s: read_manifest(manifests[s]) for s in ("train", "val")}
    probe = LinearProbe.fit(split["train"], split["val"], load, pooling=pooling, memo=memo)
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    tests = {e: path for e, path in manifests["tests"].items() if path != manifests["test"]}
    for engine, path in {None: manifests["test"], **tests}.items():
        clips = read_manifest(path)
        predicted = probe.predict(clips, load, memo)
        lines = [json.dumps({"id": c.id, "emotions": predicted[c.id], "explanation": ""}) for c in clips]
        write_text_atomic(run_dir / preds_name(engine, engine is None), "\n".join(lines) + "\n")
    row = {"ablation": name, "row": ROW_NAMES[name], "seed": None, "settings": _probe_settings(cfg, pooling, out),
           **score_predictions(bench_dir, run_dir / "preds.jsonl"), **_engine_scores(bench_dir, run_dir, manifests),
           "probe": {"stream": probe.stream or "all", "C": probe.C, "val_avg": round(100 * probe.val_avg, 2),
                     "choices": probe.choices},
           "train_steps": 0, "train_s": round(time.perf_counter() - t0, 1), "predict_s": 0.0,
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    write_text_atomic(run_dir / SCORES, json.dumps(row, indent=2) + "\n")
    print(f"bench run: {name}: Avg {row['avg']:.2f} (streams {row['probe']['stream']}, C={probe.C:g}) in "
          f"{row['train_s']:.0f} s", flush=True)
    return row


def probe_loader(cache, cfg: RunConfig):
    """A clip's cached features as the probe reads them: the frames the learned rows read (their
    acoustic_reference: as given, or against the clip's speech frames)."""
    from dataclasses import replace

    from acoustemo.data.windows import relative_to_speech

    encoder, reference = acoustic_encoder(cfg), cfg.model.get("acoustic_reference", "absolute")

    def load(clip):
        feats = cache.load(clip, encoder)
        if reference != "clip":
            return feats
        spans = [(u.start_s, u.end_s) for u in clip.utterances]
        return replace(feats, data=relative_to_speech(feats.data, spans, float(feats.frame_rate_hz)))

    return load


def _probe_settings(cfg: RunConfig, pooling: str, out: Path) -> dict:
    from acoustemo.probe import C_GRID, STATISTICS

    reference = cfg.model.get("acoustic_reference", "absolute")  # named only when not the default: older rows match
    return {"probe": pooling, "encoder": cfg.encoder, "statistics": list(STATISTICS), "C_grid": list(C_GRID),
            **({"acoustic_reference": reference} if reference != "absolute" else {}), **_train_data(cfg, out)}


def _parameter_report(model_dir: Path) -> dict:
    from acoustemo.predictor import resolve_model_dir
    from safetensors import safe_open

    folder = resolve_model_dir(model_dir)
    n = 0
    for path in [folder / "acoustemo.safetensors", *sorted((folder / "adapter").glob("*.safetensors"))]:
        with safe_open(str(path), framework="pt") as f:
            n += sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    return {"trained_parameters": n, "model_dir": str(folder)}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
