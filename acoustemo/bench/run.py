"""`acoustemo bench run`: the paper's Table 2 (ablations) on a `bench make` folder.

    summary = run_benchmark("bench/", RunConfig(preset="cpu-default", seed=0))
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
hides (BENCHMARK_NOTES.md): per-label F1 and the distractor false-alarm rate, i.e. how often a cue label was
predicted for the target speaker when that cue was planted only on the OTHER speaker (from DIR/meta.json), and
how often an explanation is all right: its labels, the cue it gives each label, the speaker it gives each cue and
the times it states all match the clip (acoustemo/bench/explain.py; "–" for the probes, which explain nothing).

Output folder OUT (default DIR/runs):
  features/                        the shared feature cache
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
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.bench.explain import TIME_TOLERANCE_S
from acoustemo.config import ABLATIONS
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

ROW_NAMES = {  # the anchor rows, then the paper's Table 2 rows
    "probe": "linear probe (target windows + clip)",
    "probe-global": "linear probe (clip only)",
    "full": "AcoustEmo (full)",
    "no-global": "w/o global Q-Former",
    "fixed-window": "fixed 2 s windows",
    "no-utterance": "w/o utterance Q-Former",
}
LABELS = ("sad", "excited", "anxious", "angry", "surprised", "neutral")  # the benchmark's label set
SCORES = "scores.json"


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

    def __post_init__(self) -> None:
        self.ablations, self.seeds = tuple(self.ablations), tuple(int(x) for x in self.seeds)
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
                  ) -> RunSummary:
    """Score the probes, then train, predict and score every ablation x seed of `cfg`; write the table."""
    bench_dir = Path(bench_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else bench_dir / "runs"
    _check_bench_dir(bench_dir)
    out.mkdir(parents=True, exist_ok=True)
    extract_s = _extract_all(bench_dir, out / "features", cfg)
    rows: dict[str, list[dict]] = {}
    if cfg.probes:
        memo: dict = {}  # pooled statistics per clip, computed once for both probes
        for pooling, name in (("utterance", "probe"), ("global", "probe-global")):
            done = _finished(out / name, _probe_settings(cfg, pooling))
            rows[name] = [done or run_probe(bench_dir, out, cfg, pooling, name, memo)]
    skipped = []
    for ablation in cfg.ablations:
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
    table = build_table(rows, cfg, extract_s)
    write_text_atomic(out / "table.json", json.dumps(table, indent=2) + "\n")
    md = render_markdown(table)
    write_text_atomic(out / "table.md", md)
    return RunSummary(out, rows, md, skipped)


def _check_bench_dir(bench_dir: Path) -> None:
    need = ["train.jsonl", "val.jsonl", "test.jsonl", "meta.json", "groupings.json"]
    missing = [n for n in need if not (bench_dir / n).is_file()]
    if missing:
        raise ConfigError(f"{bench_dir} is not a finished `acoustemo bench make` folder (missing {', '.join(missing)}); "
                          f"run `acoustemo bench make --out {bench_dir}` first")


def _extract_all(bench_dir: Path, cache_dir: Path, cfg: RunConfig) -> float:
    """Features of every split, once, into the shared cache (a rerun skips what is cached)."""
    from acoustemo.data.manifest import read_manifest
    from acoustemo.errors import EncoderError
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    clips = [c for split in ("train", "val", "test") for c in read_manifest(bench_dir / f"{split}.jsonl")]
    report = extract(clips, FeatureCache(cache_dir), _acoustic_encoder(cfg), progress=cfg.progress)
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


def _acoustic_encoder(cfg: RunConfig):
    """The encoder the learned rows train on, with the options their TrainConfig pins (acoustic_options), so the
    shared cache holds the features they read."""
    from acoustemo.predictor import trained_acoustic_encoder
    from acoustemo.training import TrainConfig

    return trained_acoustic_encoder(TrainConfig.from_json({**cfg.train, "acoustic_encoder": cfg.encoder}))


def _configs(cfg: RunConfig, ablation: str, seed: int, out: Path):
    from acoustemo.training import resolve_configs

    train_fields = {**cfg.train, "seed": seed, "acoustic_encoder": cfg.encoder,
                    "cache_dir": str(out / "features"), "progress": cfg.progress}
    return resolve_configs(cfg.preset, model_overrides={**cfg.model, "ablation": ablation},
                           train_overrides=train_fields)


def _settings(cfg: RunConfig, ablation: str, seed: int, out: Path) -> dict:
    """Everything that decides a run's result; a saved result is reused only when it matches."""
    from acoustemo.training import OPERATIONAL_FIELDS

    mcfg, tcfg = _configs(cfg, ablation, seed, out)
    train_json = {k: v for k, v in tcfg.to_json().items() if k not in OPERATIONAL_FIELDS}
    return {"preset": cfg.preset, "model": mcfg.to_json(), "train": train_json}


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
    result = train(bench / "train.jsonl", bench / "val.jsonl", run_dir / "train", mcfg, tcfg, resume=resume)
    t1 = time.perf_counter()
    model_dir = result.best_dir or run_dir / "train"
    # the model as trained (not int8), and the LLM's own answers: the veto is applied to them afterwards, below
    predictor = load_predictor(model_dir, out_dir / "features", int8=False, heads="off")
    pred = predict_manifest(bench / "test.jsonl", predictor, run_dir / "preds.jsonl", batch_size=cfg.predict_batch_size,
                            progress=cfg.progress)
    if pred.failed:
        raise RuntimeError(f"{ablation}: prediction failed for {len(pred.failed)} test clip(s): {pred.failed[:3]}")
    t2 = time.perf_counter()
    veto = {}
    if predictor.model.label_heads is not None:  # the same answers after `predict --heads veto`, not generated again
        vetoed = veto_predictions(predictor, bench / "test.jsonl", run_dir / "preds.jsonl", run_dir / "preds_veto.jsonl")
        s = score_predictions(bench, run_dir / "preds_veto.jsonl")
        veto = {"heads_veto": {"avg": s["avg"], "exact_sets": s["exact_sets"], "clips_vetoed": vetoed,
                               "false_alarm_rate": s["distractor_false_alarms"]["rate"],
                               "all_right": s["explanations"]["percent"]["all_right"]}}
    del predictor
    row = {"ablation": ablation, "row": ROW_NAMES[ablation], "seed": seed, "settings": settings,
           **score_predictions(bench, run_dir / "preds.jsonl"),
           "train_steps": result.steps, "final_loss": result.final_loss, "best_step": result.best_step,
           "best_val_loss": result.best_value, "train_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1),
           "wall_s": round(t2 - t0, 1), "resumed": resume, "peak_rss_mb": round(peak_rss_mb(), 1),
           "parameters": _parameter_report(model_dir), **veto}
    write_text_atomic(run_dir / SCORES, json.dumps(row, indent=2) + "\n")  # last: marks the run finished
    print(f"bench run: {ablation} seed {seed}: Avg {row['avg']:.2f} (Accuracy_S {row['accuracy_s']:.2f}, Recall_S "
          f"{row['recall_s']:.2f}) in {row['wall_s']:.0f} s, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def run_probe(bench_dir: Path, out: Path, cfg: RunConfig, pooling: str, name: str, memo: dict | None = None) -> dict:
    """Fit and score one probe row (acoustemo/probe.py) on the cached features; <out>/<name>/scores.json marks it
    done (a rerun with the same settings reuses it, as for the learned rows)."""
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.cache import FeatureCache
    from acoustemo.probe import LinearProbe

    cache, encoder = FeatureCache(out / "features"), _acoustic_encoder(cfg)
    load = lambda clip: cache.load(clip, encoder)  # noqa: E731  (features were extracted by _extract_all)
    t0 = time.perf_counter()
    split = {s: read_manifest(bench_dir / f"{s}.jsonl") for s in ("train", "val", "test")}
    probe = LinearProbe.fit(split["train"], split["val"], load, pooling=pooling, memo=memo)
    predicted = probe.predict(split["test"], load, memo)
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": c.id, "emotions": predicted[c.id], "explanation": ""}) for c in split["test"]]
    write_text_atomic(run_dir / "preds.jsonl", "\n".join(lines) + "\n")
    row = {"ablation": name, "row": ROW_NAMES[name], "seed": None, "settings": _probe_settings(cfg, pooling),
           **score_predictions(bench_dir, run_dir / "preds.jsonl"),
           "probe": {"stream": probe.stream or "all", "C": probe.C, "val_avg": round(100 * probe.val_avg, 2),
                     "choices": probe.choices},
           "train_steps": 0, "train_s": round(time.perf_counter() - t0, 1), "predict_s": 0.0,
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    write_text_atomic(run_dir / SCORES, json.dumps(row, indent=2) + "\n")
    print(f"bench run: {name}: Avg {row['avg']:.2f} (streams {row['probe']['stream']}, C={probe.C:g}) in "
          f"{row['train_s']:.0f} s", flush=True)
    return row


def _probe_settings(cfg: RunConfig, pooling: str) -> dict:
    from acoustemo.probe import C_GRID, STATISTICS

    return {"probe": pooling, "encoder": cfg.encoder, "statistics": list(STATISTICS), "C_grid": list(C_GRID)}


def score_predictions(bench: Path, preds: Path, split: str = "test") -> dict:
    """Set-level scores (percent), per-label F1, distractor false alarms and the explanation checks
    (acoustemo/bench/explain.py) of a predictions file on a split (default the test split)."""
    from acoustemo.bench.explain import explanation_summary, load_truth, read_predictions
    from acoustemo.commands.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        groupings = bench / "groupings.json"
        if split != "test":  # `bench make` writes the test split's groupings; the same synonym groups serve any split
            from acoustemo.bench.make import bench_groupings

            gold_rows = [json.loads(x) for x in (bench / f"{split}.jsonl").read_text().splitlines() if x.strip()]
            groupings = Path(tmp) / "groupings.json"
            groupings.write_text(json.dumps(bench_groupings({r["id"]: r["labels"] for r in gold_rows})))
        report, sl, _ = evaluate(bench / f"{split}.jsonl", preds, groupings, grouping="cache")
    gold = {s.name: s.gold_mapped for s in sl.samples}
    predicted = {s.name: s.pred_mapped for s in sl.samples}
    meta = json.loads((bench / "meta.json").read_text())
    exact = {s.name: set(s.gold_mapped) == set(s.pred_mapped) for s in sl.samples}
    return {"avg": report["avg"], "accuracy_s": report["accuracy_s"], "recall_s": report["recall_s"],
            "n_test": report["n_samples"], "n_empty_predictions": sl.n_empty_predictions,
            "exact_sets": sum(exact.values()), "exact_by_clip": exact,
            "per_label_f1": per_label_f1(gold, predicted),
            "distractor_false_alarms": distractor_false_alarms(meta, gold, predicted),
            "explanations": explanation_summary(load_truth(bench, split), read_predictions(preds))}


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


# ------------------------------------------------------------------------------------------------ metrics
def per_label_f1(gold: dict[str, list[str]], pred: dict[str, list[str]]) -> dict[str, float]:
    """F1 (percent) of each benchmark label over the test clips, on synonym-mapped labels."""
    out = {}
    for label in LABELS:
        tp = sum(label in gold[k] and label in pred.get(k, []) for k in gold)
        fp = sum(label not in gold[k] and label in pred.get(k, []) for k in gold)
        fn = sum(label in gold[k] and label not in pred.get(k, []) for k in gold)
        out[label] = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return out


def distractor_false_alarms(meta: dict, gold: dict[str, list[str]], pred: dict[str, list[str]]) -> dict:
    """How often a cue planted only on the other speaker was answered for the target.

    A clip counts for cue label L when it has a distractor cue with label L and L is not in its gold labels (the
    target did not carry the same cue); a false alarm is L among the predicted labels. Rates in percent.
    """
    per_label: dict[str, list[int]] = {}
    for clip_id, g in gold.items():
        cues = meta["clips"].get(clip_id, {}).get("cues", [])
        for label in {c["label"] for c in cues if c["distractor"]} - set(g):
            hits = per_label.setdefault(label, [0, 0])
            hits[0] += label in pred.get(clip_id, [])
            hits[1] += 1
    total = [sum(h[0] for h in per_label.values()), sum(h[1] for h in per_label.values())]
    rate = lambda h: 100.0 * h[0] / h[1] if h[1] else float("nan")  # noqa: E731
    return {"rate": rate(total), "false_alarms": total[0], "clips": total[1],
            "per_label": {k: {"rate": rate(v), "false_alarms": v[0], "clips": v[1]}
                          for k, v in sorted(per_label.items())}}


# ------------------------------------------------------------------------------------------------ table
def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are left out (a label never seen)."""
    vals = [v for v in values if v == v]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def build_table(rows: dict[str, list[dict]], cfg: RunConfig, extract_s: float) -> dict:
    """Per row (probes first, then the paper's order): mean and sd over its seeds of every score."""
    order = [n for n in ("probe", "probe-global", *ABLATIONS) if rows.get(n)]
    full = mean_sd([r["avg"] for r in rows["full"]])[0] if rows.get("full") else None
    out_rows = []
    for name in order:
        runs = rows[name]
        fa = [r["distractor_false_alarms"] for r in runs]
        agg = {k: mean_sd([r[k] for r in runs]) for k in ("avg", "accuracy_s", "recall_s")}
        out_rows.append({
            "ablation": name, "row": ROW_NAMES[name], "seeds": [r["seed"] for r in runs], "n_runs": len(runs),
            **{k: m for k, (m, _) in agg.items()}, **{f"{k}_sd": sd for k, (_, sd) in agg.items()},
            "avg_per_seed": [r["avg"] for r in runs],
            "delta_avg_vs_full": None if full is None else agg["avg"][0] - full,
            "n_test": runs[0]["n_test"], "exact_sets": mean_sd([r["exact_sets"] for r in runs])[0],
            "per_label_f1": {x: mean_sd([r["per_label_f1"][x] for r in runs])[0] for x in LABELS},
            "false_alarm_rate": mean_sd([f["rate"] for f in fa]),
            "false_alarms_per_label": {k: mean_sd([f["per_label"][k]["rate"] for f in fa if k in f["per_label"]])[0]
                                       for k in sorted({k for f in fa for k in f["per_label"]})},
            "false_alarm_clips": fa[0]["clips"],
            "explanations": _explanation_figures(runs),
            "train_steps": runs[0]["train_steps"], "train_s": statistics.fmean(r["train_s"] for r in runs),
            "predict_s": statistics.fmean(r["predict_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            **({"probe": runs[0]["probe"]} if "probe" in runs[0] else {}),
            **({"heads_veto": {k: mean_sd([r["heads_veto"][k] for r in runs]) for k in runs[0]["heads_veto"]}}
               if all("heads_veto" in r for r in runs) else {}),
        })
    return {
        "seeds": list(cfg.seeds), "preset": cfg.preset, "encoder": cfg.encoder, "train_overrides": cfg.train,
        "model_overrides": cfg.model, "feature_extraction_s": round(extract_s, 1), "labels": list(LABELS),
        "rows": out_rows,
    }


def _explanation_figures(runs: list[dict]) -> dict | None:
    """Mean and sd over the seeds of each explanation check's share (percent); None for rows that write no
    explanations (the probes) or were scored before the checks existed."""
    scored = [r["explanations"] for r in runs if r.get("explanations") and r["explanations"]["explained"]]
    if len(scored) != len(runs):
        return None
    return {k: mean_sd([e["percent"][k] for e in scored]) for k in scored[0]["percent"]}


def _fmt(x, spec: str = ".1f") -> str:
    return "–" if x is None or x != x else format(x, spec)


def _pm(mean: float, sd: float, n: int, spec: str = ".2f") -> str:
    return _fmt(mean, spec) if n < 2 else f"{_fmt(mean, spec)} ± {_fmt(sd, spec)}"


def render_markdown(table: dict) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in {**table["train_overrides"], **table["model_overrides"]}.items())
    seeds = table["seeds"]
    lines = [f"Table 2 on the acoustic-cue benchmark: preset {table['preset']}, features {table['encoder']}, "
             f"seeds {', '.join(map(str, seeds))} (learned rows: mean ± sd over the seeds; the probes are one "
             f"deterministic fit)" + (f", {overrides}" if overrides else "") + ". Scores in percent.", "",
             "| Method | Avg | Accuracy_S | Recall_S | Δ Avg vs full | Avg per seed | exact sets | "
             "explanations all right % | steps | wall per run (train + test) | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table["rows"]:
        n = r["n_runs"]
        per_seed = " / ".join(_fmt(a, ".2f") for a in r["avg_per_seed"]) if r["seeds"][0] is not None else "–"
        expl = _pm(*r["explanations"]["all_right"], n, ".1f") if r.get("explanations") else "–"
        lines.append(f"| {r['row']} | {_pm(r['avg'], r['avg_sd'], n)} | {_pm(r['accuracy_s'], r['accuracy_s_sd'], n)} "
                     f"| {_pm(r['recall_s'], r['recall_s_sd'], n)} | {_fmt(r['delta_avg_vs_full'], '+.2f')} | "
                     f"{per_seed} | {_fmt(r['exact_sets'], '.0f')} / {r['n_test']} | {expl} | {r['train_steps']} | "
                     f"{r['train_s'] / 60:.1f} + {r['predict_s'] / 60:.1f} min | {r['peak_rss_mb'] / 1024:.2f} GB |")
    labels = table["labels"]
    fa_labels = sorted({k for r in table["rows"] for k in r["false_alarms_per_label"]})
    lines += ["", "Per-label F1 (test, synonyms mapped; mean over seeds) and the distractor false-alarm rate: the share "
              "of clips whose cue was planted only on the other speaker where that cue's label was still predicted.", "",
              "| Method | " + " | ".join(f"F1 {x}" for x in labels) + " | false alarms | " +
              " | ".join(f"FA {x}" for x in fa_labels) + " |",
              "| --- " * (len(labels) + len(fa_labels) + 2) + "|"]
    for r in table["rows"]:
        rate, sd = r["false_alarm_rate"]
        lines.append(f"| {r['row']} | " + " | ".join(_fmt(r["per_label_f1"][x]) for x in labels) +
                     f" | {_pm(rate, sd, r['n_runs'], '.1f')} % of {r['false_alarm_clips']} | " +
                     " | ".join(f"{_fmt(r['false_alarms_per_label'].get(x))} %" for x in fa_labels) + " |")
    probes = [r for r in table["rows"] if "probe" in r]
    if probes:
        lines += ["", "Probes: " + "; ".join(f"{r['row']} read {r['probe']['stream']} streams, C={r['probe']['C']:g} "
                                             f"(val Avg {r['probe']['val_avg']:.2f})" for r in probes) + "."]
    vetoed = [r for r in table["rows"] if "heads_veto" in r]
    if vetoed:
        lines += ["", "The same answers after the stage-1 heads veto (beyond the paper; what `acoustemo predict` "
                  "answers by default for a model with stage-1 heads, while the rows above are `--heads off`: the "
                  "LLM's labels that the model's stage-1 label heads do not give are dropped, with their clauses, "
                  "unless none would be left):", "",
                  "| Method | Avg | Δ Avg vs the LLM alone | exact sets | false alarms | explanations all right % | "
                  "clips vetoed |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in vetoed:
            v, n = r["heads_veto"], r["n_runs"]
            lines.append(f"| {r['row']} + heads veto | {_pm(*v['avg'], n)} | {_fmt(v['avg'][0] - r['avg'], '+.2f')} | "
                         f"{_fmt(v['exact_sets'][0], '.0f')} / {r['n_test']} | {_pm(*v['false_alarm_rate'], n, '.1f')} % "
                         f"| {_pm(*v['all_right'], n, '.1f')} | {_fmt(v['clips_vetoed'][0], '.0f')} |")
    lines += ["", "Explanations all right: the share of test clips whose answer has the right labels and whose "
              "explanation gives each label its cue, each cue its speaker and the right time (within "
              f"{TIME_TOLERANCE_S:g} s; acoustemo/bench/explain.py).",
              "", f"Feature extraction (shared by the rows, computed once): {table['feature_extraction_s']:.0f} s."]
    return "\n".join(lines) + "\n"
