"""`acoustemo export`: a portable model folder from a trained run, as the shipped default checkpoint is one.

    export_model("runs/default/full/seed0/train/best", "my-model", answer_bank=True)

The source is a saved model folder (a run's best/, a `save_pretrained` output) or a training run folder (its best/,
else last/model/). The folder written holds what prediction reads and nothing tied to the machine it was trained on:
  config.json             the model's, with llm_dtype "auto" (the LLM runs in the dtype the loading hardware runs
                          natively: bf16 with int8 weights on a CPU with native bf16, float32 elsewhere)
  train_config.json       the recipe, with cache_dir null (prediction then uses the user's own feature cache)
  acoustemo.safetensors   the Q-Formers and projections
  adapter/                the LoRA weights (peft)
  llm_base.safetensors    only for the debug preset's random LLM, whose base weights no package ships
  metrics.json            the validation loss of the chosen step, when the source has it
  answer_bank.json        only with answer_bank=True: the run's own, else built from its training manifest (the
                          one its run.json names) as `acoustemo train --answer-bank` builds it; prediction's drafts
                          guess from it, which only changes its speed
Stage 1's label heads (stage1_heads.json) and any other file are left out. The folder is written beside OUT_DIR
under a temporary name, then renamed into place; a non-empty OUT_DIR is refused unless force=True, which replaces
it but keeps its README.md (the model card: export writes none).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from acoustemo.errors import ConfigError

MODEL_FILES = ("acoustemo.safetensors", "llm_base.safetensors", "metrics.json")  # copied as they are, when present
ADAPTER = "adapter"
CONFIG, TRAIN_CONFIG, ANSWER_BANK, RUN_FILE = "config.json", "train_config.json", "answer_bank.json", "run.json"
KEPT_ON_FORCE = ("README.md",)


def export_model(model_dir: str | os.PathLike, out_dir: str | os.PathLike, answer_bank: bool = False,
                 force: bool = False) -> Path:
    """Write the portable folder of `model_dir` to `out_dir` (see the module doc); returns `out_dir`."""
    from acoustemo.predictor import resolve_model_dir

    src, out = resolve_model_dir(model_dir).resolve(), Path(out_dir).resolve()
    if not (src / TRAIN_CONFIG).is_file() or not (src / ADAPTER).is_dir():
        raise ConfigError(f"{src} lacks {TRAIN_CONFIG} or {ADAPTER}/: give a training run folder or its best/ "
                          f"folder (what `acoustemo train` saves)")
    if out == src or src in out.parents:
        raise ConfigError(f"{out} is the model folder itself or inside it; give another OUT_DIR")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for OUT_DIR")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty; give an empty or new folder, or --force to replace its contents "
                          f"(a README.md there is kept)")
    bank = _answer_bank(src) if answer_bank else None
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(src, tmp, bank)
        for name in KEPT_ON_FORCE:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write(src: Path, dst: Path, bank: str | None) -> None:
    config = json.loads((src / CONFIG).read_text(encoding="utf-8"))
    (dst / CONFIG).write_text(json.dumps({**config, "llm_dtype": "auto"}, indent=2) + "\n", encoding="utf-8")
    train_config = json.loads((src / TRAIN_CONFIG).read_text(encoding="utf-8"))
    (dst / TRAIN_CONFIG).write_text(json.dumps({**train_config, "cache_dir": None}, indent=2) + "\n",
                                    encoding="utf-8")
    for name in MODEL_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    shutil.copytree(src / ADAPTER, dst / ADAPTER)
    if bank is not None:
        (dst / ANSWER_BANK).write_text(bank, encoding="utf-8")


def _answer_bank(src: Path) -> str:
    """The answer bank's file text: the model's own, else the training answers of the run that saved it."""
    if (src / ANSWER_BANK).is_file():
        return (src / ANSWER_BANK).read_text(encoding="utf-8")
    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.prompt import training_answers

    manifest = _training_manifest(src)
    clips = read_manifest(manifest, resolve_subtitles=False)  # labels and descriptions only: no ASR
    return json.dumps(training_answers(clips), ensure_ascii=False, indent=1) + "\n"


def _training_manifest(src: Path) -> Path:
    """The train manifest named by the run.json of the training run `src` was saved by (best/ or last/model/)."""
    run = next((d for d in (src.parent, src.parent.parent) if (d / RUN_FILE).is_file()), None)
    if run is None:
        raise ConfigError(f"--answer-bank: {src} has no {ANSWER_BANK}, and no training run folder around it has a "
                          f"{RUN_FILE} naming its training manifest; export a run's best/ folder where it was "
                          f"trained, or leave out --answer-bank")
    manifest = Path(json.loads((run / RUN_FILE).read_text())["train_manifest"])
    if not manifest.is_file():
        raise ConfigError(f"--answer-bank: the training manifest {manifest} (named by {run / RUN_FILE}) is gone; "
                          f"restore it, or leave out --answer-bank")
    return manifest


def _swap(tmp: Path, out: Path) -> None:
    """`tmp` becomes `out`; an existing `out` is moved aside first and removed after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
