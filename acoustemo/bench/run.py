"""`acoustemo bench run`: the paper's Table 2 (ablations) on a `bench make` folder.

    summary = run_benchmark("bench/", RunConfig(preset="cpu-default", seed=0))
    print(summary.markdown)

One path for every row: features are extracted once into a shared cache (DIR/runs/features), then each ablation
(full / no-global / fixed-window / no-utterance) is trained with `acoustemo.train.train` (same seed, so the same
data order and initial RNG state), its best model (by validation loss) predicts the test split with
`acoustemo.infer.predict_manifest`, and `acoustemo evaluate`'s scorer compares the predictions with the test
labels, mapping synonyms with DIR/groupings.json. Each ablation runs in its own spawned process, so its wall time
and peak memory (RSS, `resource.getrusage`) are its own and no state leaks from one row into the next.

Beside the set-level scores (Avg, Accuracy_S, Recall_S in percent) the table reports what the set-level score
hides (BENCHMARK_NOTES.md): per-label F1 and the distractor false-alarm rate, i.e. how often a cue label was
predicted for the target speaker when that cue was planted only on the OTHER speaker (from DIR/meta.json).

Output folder OUT (default DIR/runs):
  features/                 the shared feature cache
  <ablation>/train/         the training run (configs, log.jsonl, loss.png, last/, best/)
  <ablation>/preds.jsonl    test predictions {id, emotions, explanation}
  <ablation>/scores.json    settings, set-level scores, per-label F1, false alarms, wall time, peak RSS; written
                            last: an ablation with a scores.json whose settings match is skipped on a rerun
  table.md, table.json      Table 2 (rows in the paper's order) + the per-label table
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

from acoustemo.config import ABLATIONS
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

ROW_NAMES = {  # the paper's Table 2 rows
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
    seed: int = 0
    encoder: str = "default"  # acoustic feature encoder (acoustemo.features)
    train: dict = field(default_factory=dict)  # TrainConfig overrides (epochs, max_steps, lr, batch_size, ...)
    model: dict = field(default_factory=dict)  # ModelConfig overrides (the ablation is set per row)
    predict_batch_size: int = 8
    isolate: bool = True  # each ablation in its own spawned process (clean peak RSS; nothing leaks between rows)
    progress: bool = True

    def __post_init__(self) -> None:
        self.ablations = tuple(self.ablations)
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
    rows: dict[str, dict]  # ablation -> scores.json content
    markdown: str
    skipped: list[str]  # ablations reused from an earlier run


# ------------------------------------------------------------------------------------------------ driver
def run_benchmark(bench_dir: str | os.PathLike, cfg: RunConfig, out_dir: str | os.PathLike | None = None,
                  ) -> RunSummary:
    """Train, predict and score every ablation of `cfg` on a `bench make` folder; write the table."""
    bench_dir = Path(bench_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else bench_dir / "runs"
    _check_bench_dir(bench_dir)
    out.mkdir(parents=True, exist_ok=True)
    extract_s = _extract_all(bench_dir, out / "features", cfg)
    rows, skipped = {}, []
    for ablation in cfg.ablations:
        settings = _settings(cfg, ablation, out)
        done = _finished(out / ablation, settings)
        if done is not None:
            log.info("%s: already finished (%s); skipped", ablation, out / ablation / SCORES)
            rows[ablation], _ = done, skipped.append(ablation)
            continue
        print(f"bench run: {ablation} -> {out / ablation}", flush=True)
        rows[ablation] = _run_isolated(bench_dir, out, cfg, ablation, settings) if cfg.isolate else \
            run_ablation(str(bench_dir), str(out), dataclasses.asdict(cfg), ablation, settings)
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
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    clips = [c for split in ("train", "val", "test") for c in read_manifest(bench_dir / f"{split}.jsonl")]
    report = extract(clips, FeatureCache(cache_dir), get_acoustic_encoder(cfg.encoder), progress=cfg.progress)
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


def _configs(cfg: RunConfig, ablation: str, out: Path):
    from acoustemo.train import resolve_configs

    train_fields = {**cfg.train, "seed": cfg.seed, "acoustic_encoder": cfg.encoder,
                    "cache_dir": str(out / "features"), "progress": cfg.progress}
    return resolve_configs(cfg.preset, model_overrides={**cfg.model, "ablation": ablation},
                           train_overrides=train_fields)


def _settings(cfg: RunConfig, ablation: str, out: Path) -> dict:
    """Everything that decides an ablation's result; a saved result is reused only when it matches."""
    from acoustemo.train import OPERATIONAL_FIELDS

    mcfg, tcfg = _configs(cfg, ablation, out)
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


def _run_isolated(bench_dir: Path, out: Path, cfg: RunConfig, ablation: str, settings: dict) -> dict:
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(
        target=run_ablation, args=(str(bench_dir), str(out), dataclasses.asdict(cfg), ablation, settings))
    proc.start()
    proc.join()
    done = _finished(out / ablation, settings)
    if proc.exitcode != 0 or done is None:
        raise RuntimeError(f"bench run: the {ablation} run failed (exit code {proc.exitcode}); see the messages "
                           f"above; a rerun resumes it from {out / ablation / 'train'}")
    return done


def run_ablation(bench_dir: str, out: str, cfg_dict: dict, ablation: str, settings: dict) -> dict:
    """Train, predict and score one row; writes <out>/<ablation>/scores.json (its completion mark)."""
    from acoustemo.commands.evaluate import evaluate
    from acoustemo.infer import predict_manifest
    from acoustemo.train import train

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    bench, out_dir = Path(bench_dir), Path(out)
    cfg = RunConfig(**{**cfg_dict, "ablations": tuple(cfg_dict["ablations"])})
    run_dir = out_dir / ablation
    run_dir.mkdir(parents=True, exist_ok=True)
    mcfg, tcfg = _configs(cfg, ablation, out_dir)
    t0 = time.perf_counter()
    resume = (run_dir / "train" / "config.json").is_file()
    result = train(bench / "train.jsonl", bench / "val.jsonl", run_dir / "train", mcfg, tcfg, resume=resume)
    t1 = time.perf_counter()
    model_dir = result.best_dir or run_dir / "train"
    pred = predict_manifest(bench / "test.jsonl", model_dir, run_dir / "preds.jsonl", out_dir / "features",
                            batch_size=cfg.predict_batch_size, progress=cfg.progress,
                            int8=False)  # score the model as trained, not its int8 copy
    if pred.failed:
        raise RuntimeError(f"{ablation}: prediction failed for {len(pred.failed)} test clip(s): {pred.failed[:3]}")
    t2 = time.perf_counter()
    report, sl, groups = evaluate(bench / "test.jsonl", run_dir / "preds.jsonl", bench / "groupings.json",
                                  grouping="cache")
    gold = {s.name: s.gold_mapped for s in sl.samples}
    predicted = {s.name: s.pred_mapped for s in sl.samples}
    meta = json.loads((bench / "meta.json").read_text())
    row = {
        "ablation": ablation, "row": ROW_NAMES[ablation], "seed": cfg.seed, "settings": settings,
        "avg": report["avg"], "accuracy_s": report["accuracy_s"], "recall_s": report["recall_s"],
        "n_test": report["n_samples"], "n_empty_predictions": sl.n_empty_predictions,
        "per_label_f1": per_label_f1(gold, predicted),
        "distractor_false_alarms": distractor_false_alarms(meta, gold, predicted),
        "train_steps": result.steps, "final_loss": result.final_loss, "best_step": result.best_step,
        "best_val_loss": result.best_value, "train_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1),
        "wall_s": round(t2 - t0, 1), "resumed": resume, "peak_rss_mb": round(peak_rss_mb(), 1),
        "parameters": _parameter_report(model_dir),
    }
    write_text_atomic(run_dir / SCORES, json.dumps(row, indent=2) + "\n")  # last: marks the row finished
    print(f"bench run: {ablation}: Avg {row['avg']:.2f} (Accuracy_S {row['accuracy_s']:.2f}, Recall_S "
          f"{row['recall_s']:.2f}) in {row['wall_s']:.0f} s, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def _parameter_report(model_dir: Path) -> dict:
    from acoustemo.infer import resolve_model_dir
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
def build_table(rows: dict[str, dict], cfg: RunConfig, extract_s: float) -> dict:
    ordered = [rows[a] for a in ABLATIONS if a in rows]
    full = rows.get("full")
    return {
        "seed": cfg.seed, "preset": cfg.preset, "encoder": cfg.encoder, "train_overrides": cfg.train,
        "model_overrides": cfg.model, "feature_extraction_s": round(extract_s, 1), "labels": list(LABELS),
        "rows": [{k: r[k] for k in r if k != "settings"} |
                 {"delta_avg_vs_full": None if full is None else r["avg"] - full["avg"]} for r in ordered],
    }


def _fmt(x, spec: str = ".1f") -> str:
    return "–" if x is None or x != x else format(x, spec)


def render_markdown(table: dict) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in {**table["train_overrides"], **table["model_overrides"]}.items())
    lines = [f"Table 2 on the acoustic-cue benchmark: preset {table['preset']}, features {table['encoder']}, "
             f"seed {table['seed']}" + (f", {overrides}" if overrides else "") + ". Scores in percent.", "",
             "| Method | Avg | Accuracy_S | Recall_S | Δ Avg vs full | steps | wall (train + test) | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | {_fmt(r['avg'], '.2f')} | {_fmt(r['accuracy_s'], '.2f')} | "
                     f"{_fmt(r['recall_s'], '.2f')} | {_fmt(r['delta_avg_vs_full'], '+.2f')} | {r['train_steps']} | "
                     f"{r['train_s'] / 60:.1f} + {r['predict_s'] / 60:.1f} min | {r['peak_rss_mb'] / 1024:.2f} GB |")
    labels = table["labels"]
    fa_labels = sorted({k for r in table["rows"] for k in r["distractor_false_alarms"]["per_label"]})
    lines += ["", "Per-label F1 (test, synonyms mapped) and the distractor false-alarm rate: the share of clips whose "
              "cue was planted only on the other speaker where that cue's label was still predicted.", "",
              "| Method | " + " | ".join(f"F1 {x}" for x in labels) + " | false alarms | " +
              " | ".join(f"FA {x}" for x in fa_labels) + " |",
              "| --- " * (len(labels) + len(fa_labels) + 2) + "|"]
    for r in table["rows"]:
        fa = r["distractor_false_alarms"]
        per = [fa["per_label"].get(x) for x in fa_labels]
        lines.append(f"| {r['row']} | " + " | ".join(_fmt(r["per_label_f1"][x]) for x in labels) +
                     f" | {_fmt(fa['rate'])} % ({fa['false_alarms']}/{fa['clips']}) | " +
                     " | ".join("–" if p is None else f"{_fmt(p['rate'])} % ({p['false_alarms']}/{p['clips']})"
                                for p in per) + " |")
    lines += ["", f"Feature extraction (shared by the rows, computed once): {table['feature_extraction_s']:.0f} s."]
    return "\n".join(lines) + "\n"
