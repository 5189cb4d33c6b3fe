"""`acoustemo export` end to end on the debug preset: `bench make` a few clips, `bench run` one tiny row, export its
model, and the exported folder answers a clip as the run's own folder does while holding nothing tied to the run
(no feature-cache path, llm_dtype auto, no stage-1 heads; the answer bank only when asked, built from the run's
training manifest as `acoustemo train --answer-bank` builds it)."""

from __future__ import annotations

import json

import pytest

from acoustemo.cli import main
from acoustemo.errors import ConfigError

ENCODER = "whisper-tiny.en"  # the cheapest real encoder shipped offline
FILES = ["acoustemo.safetensors", "adapter", "config.json", "llm_base.safetensors", "metrics.json",
         "train_config.json"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from acoustemo.bench.make import make_benchmark
    from acoustemo.bench.plan import BenchConfig
    from acoustemo.bench.run import RunConfig, run_benchmark

    root = tmp_path_factory.mktemp("export")
    make_benchmark(root / "bench", BenchConfig(n=12, seed=0, workers=1))
    cfg = RunConfig(preset="debug", ablations=("full",), seeds=(0,), probes=False, encoder=ENCODER,
                    train={"max_steps": 2, "lr": 1e-2, "save_every_steps": 0, "align_epochs": 1},
                    predict_batch_size=4, progress=False, isolate=False, train_limit=5)
    run_benchmark(root / "bench", cfg, root / "runs")
    return root


def _answer(model_dir, cache, clip, **kw) -> str:
    from acoustemo.predictor import load_predictor

    return load_predictor(model_dir, cache, **kw).predict([clip])[0].answer


def test_export_is_portable_and_answers_as_the_run(run, tmp_path):
    from acoustemo.data.manifest import read_manifest

    train_dir = run / "runs" / "full" / "seed0" / "train"
    best = train_dir / "best"
    assert not (best / "stage1_heads.json").exists()  # runs no longer save stage 1's heads ...
    (best / "stage1_heads.json").write_text("{}")  # ... but a run folder of acoustemo 0.1.0 has them: export leaves them out
    out = tmp_path / "model"
    assert main(["export", str(train_dir), str(out)]) == 0  # the run folder: its best/ is exported
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert sorted(p.name for p in (out / "adapter").iterdir()) == sorted(p.name for p in (best / "adapter").iterdir())
    for name in ("acoustemo.safetensors", "llm_base.safetensors", "metrics.json", "adapter/adapter_model.safetensors"):
        assert (out / name).read_bytes() == (best / name).read_bytes()
    saved = {n: json.loads((best / n).read_text()) for n in ("config.json", "train_config.json")}
    assert saved["config.json"]["llm_dtype"] == "float32" and saved["train_config.json"]["cache_dir"]
    assert json.loads((out / "config.json").read_text()) == {**saved["config.json"], "llm_dtype": "auto"}
    assert json.loads((out / "train_config.json").read_text()) == {**saved["train_config.json"], "cache_dir": None}
    for path in out.glob("*.json"):  # nothing names the machine it was made on
        assert str(run) not in path.read_text()

    clip = read_manifest(run / "bench" / "test.jsonl")[0]
    cache = run / "runs" / "features"
    same = {"int8": False, "llm_dtype": "float32"}
    assert _answer(out, cache, clip, **same) == _answer(best, cache, clip, **same)
    assert _answer(out, cache, clip)  # as shipped: llm_dtype auto, the hardware's choice


def test_answer_bank_is_built_from_the_training_manifest(run, tmp_path):
    from acoustemo.data.prompt import format_answer

    best = run / "runs" / "full" / "seed0" / "train" / "best"
    assert not (best / "answer_bank.json").exists()  # the run saved none: export builds it
    out = tmp_path / "model"
    assert main(["export", str(best), str(out), "--answer-bank"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "answer_bank.json"])
    rows = [json.loads(x) for x in (run / "runs" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 5  # the composed manifest the run trained on (train_limit=5), not the bench's 8 clips
    bank = json.loads((out / "answer_bank.json").read_text())
    assert bank == [format_answer(r["labels"], r["description"]) for r in rows]

    from acoustemo.model.acoustemo import load_answer_bank

    assert load_answer_bank(out) == bank


def test_export_refuses_a_non_empty_folder_unless_forced(run, tmp_path):
    best = run / "runs" / "full" / "seed0" / "train" / "best"
    out = tmp_path / "model"
    out.mkdir()
    (out / "README.md").write_text("model card\n")
    (out / "stale.bin").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        from acoustemo.export import export_model

        export_model(best, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "stale.bin"]  # untouched
    export_model(best, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "README.md"])  # the model card is kept
    assert (out / "README.md").read_text() == "model card\n"
    assert not list(tmp_path.glob(".model.*"))  # no temporary folder left beside it
    with pytest.raises(ConfigError, match="no training run folder"):
        export_model(out, tmp_path / "again", answer_bank=True)  # an exported folder names no training manifest
