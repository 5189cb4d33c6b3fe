"""`bench run` end to end on a tiny real benchmark (espeak-ng dialogues, real Whisper features, the debug preset):
the table has every row and column, a rerun reuses finished rows, and changed settings are refused; plus the
per-label F1 and distractor false-alarm arithmetic on hand-made cases."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from acoustemo.bench.explain import explanation_summary, load_truth, read_predictions
from acoustemo.bench.run import RunConfig, run_benchmark
from acoustemo.bench.score import distractor_false_alarms, per_label_f1
from acoustemo.errors import ConfigError

ENCODER = "whisper-tiny.en"  # the cheapest real encoder shipped offline


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from acoustemo.bench.make import make_benchmark
    from acoustemo.bench.plan import BenchConfig

    out = tmp_path_factory.mktemp("bench")
    make_benchmark(out, BenchConfig(n=12, seed=0, workers=1))
    return out


def _avg_from_preds(bench, preds_path) -> float:
    """Set-level Avg (percent) recomputed here from a predictions file: each label mapped to the first member of
    its group in groupings.json, accuracy |G&P|/|P| (0 for an empty P), recall |G&P|/|G|, averaged over clips."""
    gold = {json.loads(line)["id"]: json.loads(line)["labels"] for line in open(bench / "test.jsonl")}
    groups = json.loads((bench / "groupings.json").read_text())
    pred = {json.loads(line)["id"]: json.loads(line)["emotions"] for line in open(preds_path)}
    acc = rec = 0.0
    for name, labels in gold.items():
        canon = {}
        for group in groups[name].strip("[]").split("], ["):
            members = [m.strip(" '\"") for m in group.split(",")]
            canon.update({m: members[0] for m in members})
        g = {canon.get(x.lower(), x.lower()) for x in labels}
        p = {canon.get(x.lower(), x.lower()) for x in pred.get(name, [])}
        acc += len(g & p) / len(p) if p else 0.0
        rec += len(g & p) / len(g)
    return 100 * (acc + rec) / (2 * len(gold))


def test_bench_run_table_and_resume(bench, tmp_path, capsys):
    cfg = RunConfig(preset="debug", ablations=("full", "no-utterance"), seeds=(0, 1), encoder=ENCODER,
                    train={"max_steps": 2, "lr": 1e-2, "save_every_steps": 0, "align_epochs": 1},
                    predict_batch_size=4, progress=False,
                    isolate=False)  # in-process keeps the test short; the CLI's spawned rows run the same function
    out = tmp_path / "runs"
    summary = run_benchmark(bench, cfg, out)

    table = json.loads((out / "table.json").read_text())
    assert table["seeds"] == [0, 1]
    assert [r["ablation"] for r in table["rows"]] == ["probe", "probe-global", "full", "no-utterance"]
    n_test = sum(1 for _ in open(bench / "test.jsonl"))
    for r in table["rows"]:
        name = r["ablation"]
        runs = [out / name] if name.startswith("probe") else [out / name / f"seed{s}" for s in (0, 1)]
        assert r["seeds"] == ([None] if name.startswith("probe") else [0, 1])
        per_run = [_avg_from_preds(bench, d / "preds.jsonl") for d in runs]  # the table, recomputed from the preds
        assert r["avg_per_seed"] == pytest.approx(per_run, abs=1e-9)
        assert r["avg"] == pytest.approx(statistics.fmean(per_run), abs=1e-9)
        assert r["avg_sd"] == pytest.approx(statistics.stdev(per_run) if len(per_run) > 1 else 0.0, abs=1e-9)
        assert r["n_test"] == n_test and len([json.loads(x) for x in open(runs[0] / "preds.jsonl")]) == n_test
        assert r["train_steps"] == (0 if name.startswith("probe") else 2)
        assert set(r["per_label_f1"]) == {"sad", "excited", "anxious", "angry", "surprised", "neutral"}
        # the explanation checks, recomputed from the preds; the probes explain nothing and get none
        shares = [explanation_summary(load_truth(bench), read_predictions(d / "preds.jsonl"))["percent"]["all_right"]
                  for d in runs]
        if name.startswith("probe"):
            assert r["explanations"] is None
        else:
            assert r["explanations"]["all_right"][0] == pytest.approx(statistics.fmean(shares), abs=1e-9)
        assert "heads_veto" not in r and not any(d.joinpath("preds_veto.jsonl").exists() for d in runs)
    full = table["rows"][2]
    assert full["delta_avg_vs_full"] == 0.0
    assert table["rows"][0]["delta_avg_vs_full"] == pytest.approx(table["rows"][0]["avg"] - full["avg"])
    log = [json.loads(x) for x in open(out / "full" / "seed1" / "train" / "log.jsonl")]
    assert [r["align_epoch"] for r in log if r.get("event") == "align"] == [1]  # the default recipe ran stage 1
    saved = json.loads((out / "full" / "seed1" / "train" / "train_config.json").read_text())
    assert saved["recipe"] == "two-stage" and saved["seed"] == 1 and saved["freeze_acoustic"] is True
    md = (out / "table.md").read_text()
    assert md == summary.markdown
    for text in ("linear probe (target windows + clip)", "linear probe (clip only)", "AcoustEmo (full)",
                 "w/o utterance Q-Former", "Avg per seed", "Accuracy_S", "Recall_S", "peak RSS", "F1 anxious",
                 "false alarms", "seeds 0, 1", " ± "):
        assert text in md
    assert "veto" not in md and "train clips" not in md  # no veto figures; the bench's own train split
    assert "w/o global Q-Former" not in md  # rows not run are not invented
    assert "Per engine" not in md and "engines" not in table  # a one-engine folder: no per-engine section
    assert json.loads((out / "bench.json").read_text()) == {"bench": str(bench), "train": str(bench / "train.jsonl")}
    header, *body = [line.split(" | ") for line in md.splitlines() if line.startswith("| ")][:6]
    col = header.index("explanations all right %")
    cells = {cells[0].lstrip("| "): cells[col] for cells in body if not cells[1].startswith("---")}
    assert cells["linear probe (target windows + clip)"] == cells["linear probe (clip only)"] == "–"
    full_row = table["rows"][2]["explanations"]["all_right"]
    assert cells["AcoustEmo (full)"] == f"{full_row[0]:.1f} ± {full_row[1]:.1f}"

    # a rerun reuses the finished runs (probes included) instead of training again
    again = run_benchmark(bench, cfg, out)
    assert again.skipped == ["full/seed0", "full/seed1", "no-utterance/seed0", "no-utterance/seed1"]
    assert again.markdown == summary.markdown

    # the CLI maps its flags onto the same settings: it reuses every run and prints the same table
    from acoustemo.cli import main

    capsys.readouterr()
    assert main(["bench", "run", str(bench), "--out", str(out), "--preset", "debug", "--ablations",
                 "full,no-utterance", "--seeds", "0,1", "--encoder", ENCODER, "--max-steps", "2", "--lr", "1e-2",
                 "--save-every", "0", "--align-epochs", "1", "--predict-batch-size", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert summary.markdown in printed and "reused finished runs: full/seed0, full/seed1" in printed

    # `bench score` on another folder: here the first test clip (another engine's folder holds other audio of
    # the same plans); each row keeps its own figures and gets the other folder's beside them
    from acoustemo.bench.cross import figures

    other = tmp_path / "other"
    other.mkdir()
    for name in ("meta.json", "groupings.json"):
        (other / name).write_bytes((bench / name).read_bytes())
    rows = [json.loads(x) for x in open(bench / "test.jsonl")][:1]
    assert n_test > 1
    (other / "test.jsonl").write_text("".join(json.dumps({**r, "media": str(bench / r["media"])}) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["bench", "score", str(other), "--runs", str(out), "--predict-batch-size", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    scored = out / "score-other"
    assert report == json.loads((scored / "score.json").read_text())
    assert list(report["rows"]) == ["probe", "probe-global", "full/seed0", "full/seed1", "no-utterance/seed0",
                                    "no-utterance/seed1"]
    for name, row in report["rows"].items():
        assert row["own_engine"] == figures(bench, out / name / "preds.jsonl"), name
        answers = [json.loads(x) for x in open(scored / name / "preds.jsonl")]
        assert [a["id"] for a in answers] == [r["id"] for r in rows]
        assert row["other_engine"] == figures(other, scored / name / "preds.jsonl"), name
        assert (row["own_engine"]["clips"], sum(row["own_engine"]["manners"].values())) == (n_test, n_test)
        assert (row["other_engine"]["clips"], sum(row["other_engine"]["manners"].values())) == (1, 1)
        if name.startswith("probe"):  # the probe, fitted again alike, answers those clips as it did in the run
            own = {x["id"]: x for x in map(json.loads, open(out / name / "preds.jsonl"))}
            assert answers == [own[r["id"]] for r in rows]

    # the same folder with other settings is refused, not silently mixed into one table
    other = RunConfig(**{**cfg.__dict__, "train": {**cfg.train, "max_steps": 4}})
    with pytest.raises(ConfigError, match="other settings"):
        run_benchmark(bench, other, out)


def test_scores_on_the_val_split_use_the_same_synonym_groups(bench, tmp_path):
    from acoustemo.bench.score import score_predictions

    rows = [json.loads(x) for x in open(bench / "val.jsonl")]
    preds = tmp_path / "val_preds.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "emotions": r["labels"], "explanation": ""}) + "\n"
                             for r in rows))
    s = score_predictions(bench, preds, "val")
    assert (s["avg"], s["exact_sets"], s["n_test"]) == (100.0, len(rows), len(rows))
    synonym = {"anxious": "frightened", "angry": "furious", "sad": "sorrowful", "excited": "thrilled",
               "surprised": "shocked", "neutral": "calm"}
    preds.write_text("".join(json.dumps({"id": r["id"], "emotions": [synonym[x] for x in r["labels"]],
                                         "explanation": ""}) + "\n" for r in rows))
    s = score_predictions(bench, preds, "val")  # a synonym counts as its group's label, as on test
    assert (s["avg"], s["exact_sets"]) == (100.0, len(rows))
    preds.write_text("".join(json.dumps({"id": r["id"], "emotions": ["sad"] if "sad" not in r["labels"] else
                                         ["angry"], "explanation": ""}) + "\n" for r in rows))
    assert score_predictions(bench, preds, "val")["avg"] == 0.0


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


def _fake_bench(root, name, train_ids, sentences=("s-train",), variants=("v-train",)):
    """A `bench make` folder as far as composing train clips reads it: train.jsonl and meta.json's pools."""
    folder = root / name
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"id": i, "media": f"media/{i}.wav", "labels": ["sad"]})
                                                + "\n" for i in train_ids))
    pools = {"train": {"sentences": list(sentences), "variants": list(variants)},
             "val": {"sentences": ["s-val"], "variants": ["v-val"]},
             "test": {"sentences": ["s-test"], "variants": ["v-test"]}}
    (folder / "meta.json").write_text(json.dumps({"splits": pools}))
    return folder


def test_composed_train_clips(tmp_path):
    from acoustemo.bench.subset import compose_train

    bench = _fake_bench(tmp_path, "n10", ["train-0000", "train-0001", "train-0002"])
    big = _fake_bench(tmp_path, "n40", ["train-0000", "train-0001", "train-0002", "train-0003"])
    flite = _fake_bench(tmp_path, "flite10", ["train-0000", "train-0001", "train-0002"], variants=("flite-awb",))
    out = tmp_path / "runs"
    assert compose_train(bench, out) == bench / "train.jsonl" and not out.exists()  # nothing composed, nothing written

    path = compose_train(bench, out, train_limit=2, train_bench=str(big), add_train=(str(flite),))
    assert path == out / "train.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["id"], r["media"]) for r in rows] == [
        ("xtrain-0000", str(big / "media/train-0000.wav")), ("xtrain-0001", str(big / "media/train-0001.wav")),
        ("flite10-train-0000", str(flite / "media/train-0000.wav")),
        ("flite10-train-0001", str(flite / "media/train-0001.wav"))]
    assert rows[0]["labels"] == ["sad"]
    assert compose_train(bench, out, train_limit=2, train_bench=str(big), add_train=(str(flite),)) == path  # same
    with pytest.raises(ConfigError, match="other train clips"):  # the runs folder holds runs on other clips
        compose_train(bench, out, train_limit=3, train_bench=str(big))

    own = compose_train(bench, tmp_path / "own", train_limit=2)  # the bench's own first clips: same ids
    assert [(r["id"], r["media"]) for r in map(json.loads, own.read_text().splitlines())] == [
        ("train-0000", str(bench / "media/train-0000.wav")), ("train-0001", str(bench / "media/train-0001.wav"))]
    with pytest.raises(ConfigError, match="repeat"):
        compose_train(bench, tmp_path / "twice", add_train=(str(flite), str(flite)))


@pytest.mark.parametrize("key, pools, named", [
    ("sentences", {"sentences": ("s-train", "s-test")}, "'s-test'"),
    ("variants", {"variants": ("v-val",)}, "'v-val'"),
])
def test_a_train_folder_sharing_held_out_material_is_refused(tmp_path, key, pools, named):
    from acoustemo.bench.subset import compose_train

    bench = _fake_bench(tmp_path, "n10", ["train-0000"])
    other = _fake_bench(tmp_path, "other", ["train-0000"], **pools)
    for kw in ({"train_bench": str(other)}, {"add_train": (str(other),)}):
        with pytest.raises(ConfigError, match=f"1 of its train {key} occur in .*val / test.*e.g. {named}"):
            compose_train(bench, tmp_path / "runs", **kw)
    assert not (tmp_path / "runs").exists()


def test_probes_only_on_composed_train_clips(bench, tmp_path, capsys):
    cfg = RunConfig(probes_only=True, encoder=ENCODER, progress=False, isolate=False, train_limit=3,
                    add_train=(str(bench),))
    out = tmp_path / "runs"
    summary = run_benchmark(bench, cfg, out)
    first = [json.loads(x)["id"] for x in open(bench / "train.jsonl")][:3]
    assert [json.loads(x)["id"] for x in open(out / "train.jsonl")] == first + [f"{bench.name}-{i}" for i in first]
    table = json.loads((out / "table.json").read_text())
    assert [r["ablation"] for r in table["rows"]] == ["probe", "probe-global"]  # nothing trained
    assert table["train_data"] == {"train_limit": 3, "train_bench": None, "add_train": [str(bench)], "clips": 6}
    saved = json.loads((out / "probe" / "scores.json").read_text())["settings"]
    assert saved["train_data"] == {"train_limit": 3, "train_bench": None, "add_train": [str(bench)]}
    assert not (out / "full").exists()
    assert f"(6 train clips: the bench's train split + {bench}, the first 3 of each)" in summary.markdown

    from acoustemo.cli import main  # the CLI's flags map onto the same settings: the probes are reused

    capsys.readouterr()
    assert main(["bench", "run", str(bench), "--out", str(out), "--probes-only", "--encoder", ENCODER,
                 "--train-limit", "3", "--add-train", str(bench), "--no-progress"]) == 0
    assert summary.markdown in capsys.readouterr().out


def test_probes_read_the_frames_the_learned_rows_read(bench, tmp_path, capsys):
    """With --acoustic-reference clip the probe rows pool the clip-relative frames, and say so in their settings."""
    from dataclasses import replace

    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.windows import relative_to_speech
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.probe import LinearProbe

    cfg = RunConfig(probes_only=True, encoder=ENCODER, progress=False, isolate=False,
                    model={"acoustic_reference": "clip"})
    out = tmp_path / "runs"
    run_benchmark(bench, cfg, out)
    saved = json.loads((out / "probe" / "scores.json").read_text())
    assert saved["settings"]["acoustic_reference"] == "clip"
    cache, enc = FeatureCache(out / "features"), get_acoustic_encoder(ENCODER)

    def relative(clip):
        f = cache.load(clip, enc)
        return replace(f, data=relative_to_speech(f.data, [(u.start_s, u.end_s) for u in clip.utterances],
                                                  float(f.frame_rate_hz)))

    train, val, test = (read_manifest(bench / f"{s}.jsonl") for s in ("train", "val", "test"))
    expected = LinearProbe.fit(train, val, relative, pooling="utterance").predict(test, relative)
    got = {json.loads(x)["id"]: json.loads(x)["emotions"] for x in open(out / "probe" / "preds.jsonl")}
    assert got == expected
    absolute = json.loads((out / "table.json").read_text())
    assert absolute["model_overrides"] == {"acoustic_reference": "clip"}
    capsys.readouterr()  # the CLI flag maps onto the same settings: the probes are reused
    from acoustemo.cli import main

    assert main(["bench", "run", str(bench), "--out", str(out), "--probes-only", "--encoder", ENCODER,
                 "--acoustic-reference", "clip", "--no-progress"]) == 0
    assert "bench run: probe:" not in capsys.readouterr().out
