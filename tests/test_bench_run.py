"""`bench run` end to end on a tiny real benchmark (espeak-ng dialogues, real Whisper features, the debug preset):
the table has every row and column, a rerun reuses finished rows, and changed settings are refused; plus the
per-label F1 and distractor false-alarm arithmetic on hand-made cases."""

from __future__ import annotations

import json
import math
import time

import pytest

from acoustemo.bench.run import RunConfig, distractor_false_alarms, per_label_f1, run_benchmark
from acoustemo.errors import ConfigError

ENCODER = "whisper-tiny.en"  # the cheapest real encoder shipped offline


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from acoustemo.bench.make import BenchConfig, make_benchmark

    out = tmp_path_factory.mktemp("bench")
    make_benchmark(out, BenchConfig(n=12, seed=0, workers=1))
    return out


def test_bench_run_table_and_resume(bench, tmp_path, capsys):
    cfg = RunConfig(preset="debug", ablations=("full", "no-utterance"), seed=0, encoder=ENCODER,
                    train={"max_steps": 2, "lr": 1e-2, "save_every_steps": 0}, predict_batch_size=4, progress=False,
                    isolate=False)  # in-process keeps the test short; the CLI's spawned rows run the same function
    out = tmp_path / "runs"
    summary = run_benchmark(bench, cfg, out)

    table = json.loads((out / "table.json").read_text())
    assert table["seed"] == 0 and [r["ablation"] for r in table["rows"]] == ["full", "no-utterance"]
    n_test = sum(1 for _ in open(bench / "test.jsonl"))
    for r in table["rows"]:
        for key in ("avg", "accuracy_s", "recall_s"):
            assert 0.0 <= r[key] <= 100.0
        assert math.isclose(r["avg"], (r["accuracy_s"] + r["recall_s"]) / 2, abs_tol=1e-9)
        assert r["n_test"] == n_test and r["train_steps"] == 2
        assert r["wall_s"] > 0 and r["peak_rss_mb"] > 50
        assert set(r["per_label_f1"]) == {"sad", "excited", "anxious", "angry", "surprised", "neutral"}
        assert {"rate", "false_alarms", "clips", "per_label"} <= set(r["distractor_false_alarms"])
        preds = [json.loads(line) for line in open(out / r["ablation"] / "preds.jsonl")]
        assert len(preds) == n_test
    assert table["rows"][0]["delta_avg_vs_full"] == 0.0
    md = (out / "table.md").read_text()
    assert md == summary.markdown
    for text in ("AcoustEmo (full)", "w/o utterance Q-Former", "Avg", "Accuracy_S", "Recall_S", "peak RSS",
                 "wall", "F1 anxious", "false alarms", "seed 0"):
        assert text in md
    assert "w/o global Q-Former" not in md  # rows not run are not invented

    # a rerun reuses the finished rows instead of training again
    t0 = time.perf_counter()
    again = run_benchmark(bench, cfg, out)
    assert again.skipped == ["full", "no-utterance"] and time.perf_counter() - t0 < 30
    assert again.markdown == summary.markdown

    # the CLI maps its flags onto the same settings: it reuses both rows and prints the same table
    from acoustemo.cli import main

    capsys.readouterr()
    assert main(["bench", "run", str(bench), "--out", str(out), "--preset", "debug", "--ablations",
                 "full,no-utterance", "--encoder", ENCODER, "--max-steps", "2", "--lr", "1e-2", "--save-every", "0",
                 "--predict-batch-size", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert summary.markdown in printed and "reused finished rows: full, no-utterance" in printed

    # the same folder with other settings is refused, not silently mixed into one table
    other = RunConfig(**{**cfg.__dict__, "train": {**cfg.train, "max_steps": 4}})
    with pytest.raises(ConfigError, match="other settings"):
        run_benchmark(bench, other, out)


def test_per_label_f1():
    gold = {"a": ["sad", "anxious"], "b": ["neutral"], "c": ["angry"]}
    pred = {"a": ["sad"], "b": ["anxious"], "c": ["angry", "sad"]}
    f1 = per_label_f1(gold, pred)
    assert f1["sad"] == pytest.approx(100 * 2 * 1 / (2 + 1 + 0))  # tp a, fp c
    assert f1["anxious"] == 0.0  # fn a, fp b
    assert f1["angry"] == 100.0
    assert f1["neutral"] == 0.0
    assert math.isnan(f1["surprised"])  # never gold, never predicted


def test_distractor_false_alarms():
    cue = lambda label, distractor: {"label": label, "distractor": distractor}  # noqa: E731
    meta = {"clips": {
        "a": {"cues": [cue("angry", True)]},  # angry only on the other speaker: counts
        "b": {"cues": [cue("angry", True)]},
        "c": {"cues": [cue("surprised", True), cue("surprised", False)]},  # target has it too: not counted
        "d": {"cues": [cue("anxious", False)]},  # no distractor
    }}
    gold = {"a": ["neutral"], "b": ["sad"], "c": ["surprised"], "d": ["anxious"]}
    pred = {"a": ["angry"], "b": ["sad"], "c": ["surprised"], "d": ["anxious", "angry"]}
    fa = distractor_false_alarms(meta, gold, pred)
    assert (fa["false_alarms"], fa["clips"]) == (1, 2) and fa["rate"] == 50.0
    assert fa["per_label"] == {"angry": {"rate": 50.0, "false_alarms": 1, "clips": 2}}
