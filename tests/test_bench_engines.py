"""Other speech engines as test splits (#35): `bench make --engines` speaks every split in each engine, `bench run`
scores each engine's test split apart, and `bench run --leave-one-engine-out` trains on all engines but one, end to
end on a debug-size folder (espeak-ng + Flite, 12 plans, the debug preset, 2 steps, one seed)."""

from __future__ import annotations

import json

import pytest

from acoustemo.bench.plan import BenchConfig
from acoustemo.bench.run import RunConfig, run_benchmark
from acoustemo.errors import ConfigError

ENCODER = "whisper-tiny.en"  # the cheapest real encoder shipped offline
CFG = RunConfig(preset="debug", ablations=("full",), seeds=(0,), encoder=ENCODER,
                train={"max_steps": 2, "lr": 1e-2, "save_every_steps": 0, "align_epochs": 1},
                predict_batch_size=4, progress=False, isolate=False)  # the CLI's spawned rows run the same function
CLI_FLAGS = ["--preset", "debug", "--ablations", "full", "--seeds", "0", "--encoder", ENCODER, "--max-steps", "2",
             "--lr", "1e-2", "--save-every", "0", "--align-epochs", "1", "--predict-batch-size", "4", "--no-progress"]


def _rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from acoustemo.bench.make import make_benchmark

    out = tmp_path_factory.mktemp("engines")
    make_benchmark(out, BenchConfig(n=12, seed=0, workers=1, engines=("flite",)))
    return out


@pytest.fixture(scope="module")
def loeo(bench, tmp_path_factory):
    from acoustemo.bench.leaveout import run_leave_one_engine_out

    out = tmp_path_factory.mktemp("loeo")
    return run_leave_one_engine_out(bench, CFG, out)


def test_make_speaks_every_split_in_every_engine(bench, tmp_path):
    from acoustemo.bench.make import make_benchmark

    for split in ("train", "val", "test"):
        own, flite = _rows(bench / f"{split}.jsonl"), _rows(bench / f"{split}-flite.jsonl")
        assert [r["id"] for r in flite] == [r["id"].replace(f"{split}-", f"{split}-flite-") for r in own]
        assert [r["labels"] for r in flite] == [r["labels"] for r in own]  # the same plans
        assert all(r["media"] == f"media/{r['id']}.wav" for r in flite)
    meta = json.loads((bench / "meta.json").read_text())
    assert meta["params"]["engines"] == ["flite"] and "synth" not in meta["params"]
    assert meta["splits"]["test-flite"]["engine"] == "flite" and meta["splits"]["test-flite"]["clips"] == 2
    assert meta["clips"]["test-flite-0001"]["engine"] == "flite" and "engine" not in meta["clips"]["test-0001"]
    groups = json.loads((bench / "groupings.json").read_text())
    assert sorted(groups) == ["test-0000", "test-0001", "test-flite-0000", "test-flite-0001"]
    # each clip is exactly the one `--synth flite` makes for the same plan, only renamed
    alone = tmp_path / "flite"
    make_benchmark(alone, BenchConfig(n=12, seed=0, workers=1, synth="flite"), ("test",))
    for i in ("0000", "0001"):
        made = (bench / "media" / f"test-flite-{i}.wav").read_bytes()
        assert made == (alone / "media" / f"test-{i}.wav").read_bytes()


@pytest.mark.parametrize("kw, named", [
    ({"engines": ("espeak",)}, "repeats the main engine"),
    ({"engines": ("flite", "flite")}, "more than once"),
    ({"engines": ("flite",), "train_synth": ("flite",)}, "drop it from --train-synth"),
    ({"engines": ("mbrola",)}, "unknown engine 'mbrola'"),
])
def test_bad_engine_lists_are_refused(kw, named):
    with pytest.raises(ConfigError, match=named):
        BenchConfig(n=12, **kw)


def test_leave_one_engine_out_trains_on_the_other_engines(bench, loeo):
    out = loeo.out_dir
    for left, heard in (("espeak", "flite"), ("flite", "espeak")):
        run = out / f"leave-{left}"
        prefix = "train-flite-" if heard == "flite" else "train-0"
        train, val = _rows(run / "train.jsonl"), _rows(run / "val.jsonl")
        heard_split = (lambda s: f"{s}-flite") if heard == "flite" else (lambda s: s)
        assert [r["id"] for r in train] == [r["id"] for r in _rows(bench / f"{heard_split('train')}.jsonl")]
        assert [r["id"] for r in val] == [r["id"] for r in _rows(bench / f"{heard_split('val')}.jsonl")]
        assert all(r["id"].startswith(prefix) for r in train)  # never the left-out engine's clips, val included
        for name in ("probe", "probe-global", "full/seed0"):
            saved = json.loads((run / name / "scores.json").read_text())["settings"]
            assert saved["leave_out"] == {"engine": left, "heard": [heard], "train_limit": 0}
        config = json.loads((run / "full" / "seed0" / "train" / "train_config.json").read_text())
        assert config["cache_dir"] == str(out / "features")  # one feature cache for every left-out engine


def test_leave_one_engine_out_table(bench, loeo):
    from acoustemo.bench.score import score_predictions

    table = json.loads((loeo.out_dir / "table.json").read_text())
    assert table["leave_one_engine_out"] and table["engines"] == ["espeak", "flite"]
    assert [(r["left_out"], r["ablation"]) for r in table["rows"]] == [
        (e, a) for e in ("espeak", "flite") for a in ("probe", "probe-global", "full")]
    for r in table["rows"]:
        run = loeo.out_dir / f"leave-{r['left_out']}" / ("full/seed0" if r["ablation"] == "full" else r["ablation"])
        cols = r["engines"]
        assert cols["left_out"] == [r["left_out"]] and cols["heard"] == [e for e in ("espeak", "flite")
                                                                          if e != r["left_out"]]
        for engine, split, preds in (("espeak", "test", "preds.jsonl"), ("flite", "test-flite", "preds-flite.jsonl")):
            assert [x["id"] for x in _rows(run / preds)] == [x["id"] for x in _rows(bench / f"{split}.jsonl")]
            s = score_predictions(bench, run / preds, split)
            f = cols["per_engine"][engine]
            assert (f["avg"], f["n_test"]) == ([s["avg"], 0.0], 2)
            assert f["heard"] == (engine != r["left_out"])
            assert f["manner_f1"] == {x: pytest.approx(s["per_label_f1"][x], nan_ok=True)
                                      for x in ("sad", "excited", "neutral")}
        assert cols["avg_left_out"][0] == cols["per_engine"][r["left_out"]]["avg"][0]
    md = (loeo.out_dir / "table.md").read_text()
    assert md == loeo.markdown
    header = next(line for line in md.splitlines() if line.startswith("| Left out"))
    assert header.split(" | ")[:5] == ["| Left out", "Method", "trained on", "Avg heard", "Avg left out"]
    assert "flite F1 sad / excited / neutral" in header and "espeak false alarms" in header
    assert md.count("| espeak | linear probe (target windows + clip) | flite |") == 1
    assert md.count("| flite | AcoustEmo (full) | espeak |") == 1


def test_each_engine_is_scored_on_its_own_clips(bench, loeo, tmp_path):
    """Right answers on Flite's test clips and wrong ones on espeak's: Flite's column says 100, espeak's 0."""
    import shutil

    from acoustemo.bench.run import _engine_scores, run_manifests

    sub = loeo.out_dir / "leave-flite"
    run_dir = tmp_path / "row"
    run_dir.mkdir()
    shutil.copy(sub / "bench.json", tmp_path / "bench.json")
    wrong = {"sad": "excited", "excited": "sad", "neutral": "angry", "anxious": "surprised", "angry": "anxious",
             "surprised": "neutral"}
    for split, name, answer in (("test", "preds.jsonl", lambda g: [wrong[x] for x in g]),
                                ("test-flite", "preds-flite.jsonl", lambda g: g)):
        (run_dir / name).write_text("".join(json.dumps({"id": r["id"], "emotions": answer(r["labels"]),
                                                        "explanation": ""}) + "\n"
                                            for r in _rows(bench / f"{split}.jsonl")))
    scores = _engine_scores(bench, run_dir, run_manifests(bench, tmp_path))["engines"]
    assert (scores["flite"]["avg"], scores["flite"]["heard"]) == (100.0, False)
    assert (scores["espeak"]["avg"], scores["espeak"]["heard"]) == (0.0, True)


def test_a_plain_run_gets_the_per_engine_section(bench, loeo, tmp_path, capsys):
    out = tmp_path / "runs"
    cfg = RunConfig(**{**CFG.__dict__, "probes_only": True})
    summary = run_benchmark(bench, cfg, out, features_dir=loeo.out_dir / "features")  # all cached already
    table = json.loads((out / "table.json").read_text())
    assert table["engines"] == ["espeak", "flite"]
    probe = table["rows"][0]["engines"]
    assert (probe["heard"], probe["left_out"]) == (["espeak"], ["flite"])  # trained on train.jsonl: espeak
    assert probe["per_engine"]["espeak"]["avg"][0] == table["rows"][0]["avg"]  # test.jsonl is espeak's test
    assert "Per engine:" in summary.markdown and "| linear probe (clip only) | espeak |" in summary.markdown

    from acoustemo.cli import main  # one command; a rerun reuses every finished row and prints the same table

    capsys.readouterr()
    assert main(["bench", "run", str(bench), "--out", str(loeo.out_dir), "--leave-one-engine-out", *CLI_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert loeo.markdown in printed
    assert "reused finished runs: leave-espeak/full/seed0, leave-flite/full/seed0" in printed


def test_leave_one_engine_out_needs_two_engines(tmp_path):
    from acoustemo.bench.leaveout import run_leave_one_engine_out

    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "groupings.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "meta.json").write_text(json.dumps({"params": {}}))
    with pytest.raises(ConfigError, match="holds one engine .espeak.*--engines flite,festival"):
        run_leave_one_engine_out(tmp_path, CFG)


def test_engines_heard_in_training(tmp_path):
    from acoustemo.bench.engines import engine_split, folder_engines, heard_engines

    for name, params, engines, heard in (("plain", {}, ["espeak"], ["espeak"]),
                                         ("synth", {"train_synth": ["flite"]}, ["espeak"], ["espeak", "flite"]),
                                         ("fest", {"synth": "festival", "engines": ["espeak"]}, ["festival", "espeak"],
                                          ["festival"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps({"params": params}))
        assert (folder_engines(tmp_path / name), heard_engines(tmp_path / name)) == (engines, heard)
    assert [engine_split(tmp_path / "fest", e, "val") for e in ("festival", "espeak")] == ["val", "val-espeak"]


def test_leave_out_header_names_the_seeds_only_when_learned_rows_ran():
    from acoustemo.bench.table import render_leave_out

    table = {"seeds": [0, 1], "engines": ["espeak", "flite"], "preset": "debug", "encoder": "default",
             "rows": [{"row": "linear probe", "probe": "utterance", "engines": None, "n_runs": 1}]}
    assert "probe rows only (one deterministic fit each)" in render_leave_out(table)
    assert "seeds 0, 1" not in render_leave_out(table)
    table["rows"].append({"row": "AcoustEmo (full)", "engines": None, "n_runs": 2})
    assert "seeds 0, 1 (learned rows: mean ± sd over the seeds" in render_leave_out(table)


def test_bench_score_scores_every_engine_of_a_shifted_folder(bench, loeo, tmp_path):
    from acoustemo.bench.cross import figures, score_other_bench
    from acoustemo.bench.shift import Shift, shift_bench

    other = tmp_path / "up"
    shift_bench(bench, other, ("test",), Shift(pitch_st=2, tempo=1.1, gain_db=4), workers=1)
    runs = loeo.out_dir / "leave-espeak"
    report = score_other_bench(other, runs, tmp_path / "scored")
    for name in ("probe", "full/seed0"):
        row = report["rows"][name]
        assert sorted(row["other_engines"]) == ["espeak", "flite"]
        assert row["other_engine"] == row["other_engines"]["espeak"]
        for engine, split, preds in (("espeak", "test", "preds.jsonl"), ("flite", "test-flite", "preds-flite.jsonl")):
            path = tmp_path / "scored" / name / preds
            assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == \
                [r["id"] for r in _rows(other / f"{split}.jsonl")]
            assert row["other_engines"][engine] == figures(other, path, split)
