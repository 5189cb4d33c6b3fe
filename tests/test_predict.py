"""Prediction on real spoken clips with a (briefly) trained debug model: the manifest form writes one line per
clip, resumes after an interruption, and the single-media form takes subtitles or falls back to VAD + ASR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acoustemo.cli import main
from acoustemo.batch import OUTPUT_KEYS, predict_manifest
from acoustemo.predictor import load_predictor, predict_clip
from conftest import corpus_configs as configs, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from acoustemo.training import train

    root = tmp_path_factory.mktemp("predict")
    corpus = write_corpus(root)
    model_cfg, train_cfg = configs(corpus, max_steps=2)
    train(corpus["train"], corpus["val"], root / "run", model_cfg, train_cfg)
    lines = corpus["train"].read_text() + corpus["val"].read_text()
    (root / "all.jsonl").write_text(lines)  # five clips: batches of 2 + a last one of 1
    predictor = load_predictor(root / "run", max_new_tokens=8)  # the run folder -> its best/
    return root, predictor


def test_manifest_gives_one_line_per_clip_and_resumes(setup):
    root, predictor = setup
    out = root / "preds.jsonl"
    report = predict_manifest(root / "all.jsonl", predictor, out, batch_size=2, progress=False)
    assert (report.total, report.predicted, report.skipped, report.failed) == (5, 5, 0, [])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["id"] for d in lines] == ["c0", "c1", "c2", "c3", "c4"]  # manifest order
    assert all(tuple(d) == OUTPUT_KEYS for d in lines)
    assert all(isinstance(d["emotions"], list) and isinstance(d["explanation"], str) for d in lines)

    # an interrupted run: the final file never written, two lines in .partial, the second cut by the kill
    out.unlink()
    partial = root / "preds.jsonl.partial"
    partial.write_text(json.dumps(lines[0]) + "\n" + json.dumps(lines[3]) + "\n" + json.dumps(lines[4])[:20])
    report = predict_manifest(root / "all.jsonl", predictor, out, batch_size=2, progress=False)
    assert (report.predicted, report.skipped) == (3, 2)
    again = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["id"] for d in again] == ["c0", "c1", "c2", "c3", "c4"] and not partial.exists()
    assert again == lines  # greedy decoding: the same answers

    report = predict_manifest(root / "all.jsonl", predictor, out, progress=False)  # nothing left to do
    assert (report.predicted, report.skipped) == (0, 5)


def test_checkpoint_of_other_acoustic_streams_is_refused_before_loading(setup, tmp_path):
    """A checkpoint trained on other streams (e.g. the default stack before prosody version 2) names both stream
    lists and the fix, before the LLM or any media is loaded."""
    import shutil

    from acoustemo.errors import ConfigError

    root, predictor = setup
    old = tmp_path / "old"
    shutil.copytree(predictor.model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    assert cfg["acoustic_streams"] == [["whisper", 384]]  # the debug corpus's whisper-tiny.en
    cfg["acoustic_streams"] = [["whisper", 512], ["prosody", 10]]  # the default stack before prosody version 2
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"trained on acoustic streams \[\('whisper', 512\), \('prosody', 10\)\], but the "
                                          r"encoder '.+' of this acoustemo produces \[\('whisper', 384\)\].*retrain"):
        load_predictor(old)


def test_cli_manifest_form(setup, capsys):
    root, _ = setup
    out = root / "cli_preds.jsonl"
    rc = main(["predict", "--manifest", str(root / "all.jsonl"), "--model", str(root / "run"), "--out", str(out),
               "--batch-size", "3", "--max-new-tokens", "4", "--no-progress"])
    assert rc == 0
    assert len(out.read_text().splitlines()) == 5
    assert "5 predicted" in capsys.readouterr().err


def test_single_media_with_subtitles(setup, tmp_path, write_srt):
    root, predictor = setup
    media = root / "c0" / "dialogue.wav"
    utts = json.loads((root / "train.jsonl").read_text().splitlines()[0])["utterances"]
    srt = write_srt(tmp_path / "c0.srt", utts)
    pred = predict_clip(media, subtitles=srt, speaker="Anna", model=predictor)
    assert pred.timestamps_source == "subtitles"
    assert [(u.speaker, u.text) for u in pred.utterances] == [(u["speaker"], u["text"]) for u in utts]
    assert pred.utterances[0].start_s == pytest.approx(utts[0]["start"], abs=1e-3)
    assert pred.model == str(root / "run" / "best") and isinstance(pred.emotions, list)

    out = tmp_path / "answer.json"
    rc = main(["predict", str(media), "--subtitles", str(srt), "--speaker", "Anna", "--model", str(root / "run"),
               "--json", str(out), "--max-new-tokens", "4"])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert {"id", "emotions", "explanation", "utterances", "timestamps_source", "model"} <= set(saved)


def test_single_media_without_subtitles_uses_vad_and_asr(setup):
    root, predictor = setup
    pred = predict_clip(root / "c1" / "dialogue.wav", model=predictor)
    assert pred.timestamps_source == "vad"
    assert len(pred.utterances) >= 1 and "game" in " ".join(u.text.lower() for u in pred.utterances)


def test_cli_rejects_ambiguous_or_incomplete_requests(setup, capsys):
    root, _ = setup
    media, manifest = str(root / "c0" / "dialogue.wav"), str(root / "all.jsonl")
    assert main(["predict", media, "--manifest", manifest, "--model", str(root / "run")]) == 2
    assert "either one MEDIA" in capsys.readouterr().err
    assert main(["predict", "--manifest", manifest, "--model", str(root / "run")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["predict", media, "--model", str(root)]) == 2  # a folder without a model
    assert "no trained AcoustEmo model" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_without_model_uses_the_shipped_checkpoint(tmp_path, capsys):
    """The offline default end to end: the checkpoint inside the package, the default encoders, SmolLM2."""
    import json as _json

    from acoustemo.predictor import DEFAULT_MODEL_DIR

    example = Path(__file__).resolve().parents[1] / "examples"
    out = tmp_path / "answer.json"
    assert main(["predict", str(example / "sample.wav"), "--subtitles", str(example / "sample.srt"),
                 "--speaker", "Sami", "--json", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    answer = _json.loads(out.read_text())
    assert set(answer) >= {"emotions", "explanation", "utterances", "timestamps_source", "model"}
    assert answer["model"].endswith(str(Path("assets") / "default")) or str(DEFAULT_MODEL_DIR) in answer["model"]
    assert answer["timestamps_source"] == "subtitles" and len(answer["utterances"]) == 3
    assert answer["explanation"]  # the shipped model always explains; its quality is tracked in BENCHMARKS.md
    assert sorted(answer["emotions"]) == ["sad", "surprised"]  # the sample's gold, as examples/README.md shows


def test_manifest_metadata_rides_into_the_predictions(setup):
    """A corpus' own keys (here `mood`, `speaker_age`) are kept per clip and come back under "custom", also for the
    lines a resumed run takes from an earlier one."""
    root, predictor = setup
    lines = [json.loads(x) for x in (root / "all.jsonl").read_text().splitlines()]
    extra = {d["id"]: {"mood": f"m{k}", "speaker_age": 20 + k} for k, d in enumerate(lines) if k != 2}
    manifest = root / "custom.jsonl"
    manifest.write_text("".join(json.dumps({**d, **extra.get(d["id"], {})}) + "\n" for d in lines))
    out = root / "custom_preds.jsonl"
    predict_manifest(manifest, predictor, out, batch_size=2, progress=False)
    preds = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d.get("custom") for d in preds] == [extra.get(d["id"]) for d in lines]
    assert tuple(preds[2]) == OUTPUT_KEYS  # a clip without extra keys gets no "custom"

    out.unlink()
    (root / "custom_preds.jsonl.partial").write_text(json.dumps({k: preds[0][k] for k in OUTPUT_KEYS}) + "\n")
    report = predict_manifest(manifest, predictor, out, batch_size=2, progress=False)
    assert report.skipped == 1 and [json.loads(x) for x in out.read_text().splitlines()] == preds


@pytest.mark.parametrize("flag, wanted", [([], None), (["--int8"], True), (["--no-int8"], False)])
def test_int8_flag_reaches_the_predictor(monkeypatch, flag, wanted):
    """--int8 forces int8 weights (also on CPUs without native bf16), --no-int8 refuses them, neither = hardware."""
    import acoustemo.predictor
    from acoustemo.cli import _available_commands, build_parser
    from acoustemo.commands.predict import _model

    seen = {}
    monkeypatch.setattr(acoustemo.predictor, "load_predictor", lambda *a, **k: seen.update(k))
    _model(build_parser(_available_commands()).parse_args(["predict", "clip.wav", *flag]))
    assert seen["int8"] is wanted


