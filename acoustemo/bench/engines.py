"""Speech engines as test splits of `bench run`: which engines a `bench make --engines` folder holds, their
manifests, the train and val clips of a leave-one-engine-out run, and the figures each engine's test gets.

A folder made with `bench make --synth S --engines E1,E2` holds every split in every engine: S's as train.jsonl,
val.jsonl and test.jsonl, each other engine's as "<split>-<engine>.jsonl" (bench/make.py). `bench run` on such a
folder predicts every engine's test split with each row (the probes too) and scores each one apart: Avg, manner F1
(sad, excited, neutral) and distractor false alarms, beside the engines heard in training (S, and the engines of
--train-synth, which train.jsonl holds too). A leave-one-engine-out run (bench/leaveout.py) trains on the train
clips of all engines but one, chooses on their val clips, and tests on every engine's test split.
"""

from __future__ import annotations

import json
from pathlib import Path

from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

MANNER_LABELS = ("sad", "excited", "neutral")  # the clip-wide manner labels: what moves with a voice (issue #35)


def _params(bench_dir: Path) -> dict:
    return json.loads((Path(bench_dir) / "meta.json").read_text()).get("params", {})


def folder_engines(bench_dir: Path) -> list[str]:
    """The engines whose test split the folder holds: its main engine, then those of `bench make --engines`."""
    params = _params(bench_dir)
    return [params.get("synth", "espeak"), *params.get("engines", [])]


def engine_split(bench_dir: Path, engine: str, split: str) -> str:
    """The manifest name (without .jsonl) of `split` in `engine`: the split itself for the main engine."""
    return split if engine == folder_engines(bench_dir)[0] else f"{split}-{engine}"


def engine_tests(bench_dir: Path) -> dict[str, str]:
    """{engine: its test manifest's name} for a folder with other engines; {} for a one-engine folder, whose runs
    then print the table they always printed."""
    engines = folder_engines(bench_dir)
    if len(engines) < 2:
        return {}
    tests = {e: engine_split(bench_dir, e, "test") for e in engines}
    missing = [f"{name}.jsonl" for name in tests.values() if not (Path(bench_dir) / f"{name}.jsonl").is_file()]
    if missing:
        raise ConfigError(f"{bench_dir} lacks {', '.join(missing)}: make the test split with every engine "
                          f"(`acoustemo bench make --out {bench_dir} --engines {','.join(engines[1:])}` with the "
                          "folder's other settings)")
    return tests


def heard_engines(bench_dir: Path) -> list[str]:
    """The engines a folder's train.jsonl is spoken by (its main one and those of --train-synth): those of the bench
    and of each --train-bench / --add-train folder are heard in training."""
    return [folder_engines(bench_dir)[0], *_params(bench_dir).get("train_synth", [])]


def compose_leave_out(bench_dir: Path, out: Path, left_out: str, train_limit: int = 0) -> dict[str, Path]:
    """Write `out`/train.jsonl and `out`/val.jsonl: the train and val clips of every engine but `left_out` (the
    first `train_limit` train clips of each, 0 = all), media paths absolute. Val never holds `left_out`'s clips."""
    engines = folder_engines(bench_dir)
    if left_out not in engines:
        raise ConfigError(f"{bench_dir} holds no engine {left_out!r}; its engines are {', '.join(engines)}")
    if _params(bench_dir).get("train_synth"):
        raise ConfigError(f"{bench_dir} was made with --train-synth, so its train.jsonl mixes engines; make the "
                          f"folder with --engines instead to leave one engine out")
    if train_limit < 0:
        raise ConfigError(f"--train-limit {train_limit}: give a number of clips >= 1, or 0 for all")
    paths = {}
    for split, limit in (("train", train_limit), ("val", 0)):
        rows = []
        for engine in (e for e in engines if e != left_out):
            path = Path(bench_dir) / f"{engine_split(bench_dir, engine, split)}.jsonl"
            if not path.is_file():
                raise ConfigError(f"{bench_dir} lacks {path.name}: make every split with every engine (`acoustemo "
                                  f"bench make --out {bench_dir} --engines ...`)")
            lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
            rows += [{**r, "media": str(Path(bench_dir).resolve() / r["media"])} for r in lines[:limit or None]]
        out.mkdir(parents=True, exist_ok=True)
        paths[split] = out / f"{split}.jsonl"
        write_text_atomic(paths[split], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return paths


def engine_figures(score: dict) -> dict:
    """What the per-engine columns show, from score_predictions' result on one engine's test split."""
    fa = score["distractor_false_alarms"]
    return {"avg": score["avg"], "accuracy_s": score["accuracy_s"], "recall_s": score["recall_s"],
            "n_test": score["n_test"], "exact_sets": score["exact_sets"],
            "manner_f1": {x: score["per_label_f1"][x] for x in MANNER_LABELS},
            "false_alarm_rate": fa["rate"], "false_alarm_clips": fa["clips"]}


def preds_name(engine: str, main: bool) -> str:
    """A row's predictions file for an engine's test split: preds.jsonl for the main one (test.jsonl)."""
    return "preds.jsonl" if main else f"preds-{engine}.jsonl"
