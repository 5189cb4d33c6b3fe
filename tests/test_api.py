"""The Python API as a user calls it: the README's example runs as written on the shipped checkpoint, its result is
what `acoustemo predict --json` writes, and `import acoustemo` stays light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_timeline import stub  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[1]

# The example proposed for README.md; any ```python block of the README that calls acoustemo.load_model is run too.
SNIPPET = '''\
import acoustemo

model = acoustemo.load_model()  # the shipped checkpoint; or load_model("runs/exp1") for a trained model
result = model.predict("examples/sample.wav", subtitles="examples/sample.srt", speaker="Sami")
print(result.emotions, result.explanation)
'''


def examples() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "acoustemo.load_model" in b]
    return [SNIPPET] + [b for b in blocks if b != SNIPPET]


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    """The shipped checkpoint's features go to a temporary cache, not the user's."""
    import acoustemo.predictor

    path = tmp_path_factory.mktemp("features")
    mp = pytest.MonkeyPatch()
    mp.setattr(acoustemo.predictor, "default_features_dir", lambda: path)
    yield path
    mp.undo()


@pytest.mark.slow
@pytest.mark.parametrize("example", examples())
def test_the_readme_example_runs_as_written(example, features_dir, monkeypatch, capsys):
    from acoustemo.predictor import Prediction

    monkeypatch.chdir(REPO)
    namespace: dict = {}
    exec(compile(example, "README.md example", "exec"), namespace)
    (result,) = [v for v in namespace.values() if isinstance(v, Prediction)]
    assert sorted(result.emotions) == ["sad", "surprised"]  # the sample's gold, as examples/README.md shows
    assert result.explanation and result.target_speaker == "Sami" and result.timestamps_source == "subtitles"
    assert [(u.speaker, u.start_s) for u in result.utterances] == [("Sami", 0.406), ("Farid", 4.039), ("Sami", 7.06)]
    assert str(result.emotions) in capsys.readouterr().out
    assert any(features_dir.iterdir())  # features went to the cache load_model chose

    # the same answer, byte for byte, as `acoustemo predict --json` (which calls the same functions)
    from acoustemo.cli import main

    out = features_dir.parent / "answer.json"
    assert main(["predict", "examples/sample.wav", "--subtitles", "examples/sample.srt", "--speaker", "Sami",
                 "--json", str(out), "--cache-dir", str(features_dir), "--no-progress"]) == 0
    assert json.loads(out.read_text()) == result.to_json()


@pytest.mark.slow
def test_predict_manifest_and_evaluate_from_the_package_root(features_dir, tmp_path):
    import acoustemo

    sample = REPO / "examples" / "sample.wav"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "sample", "media": str(sample), "target_speaker": "Sami",
                                    "subtitles": str(sample.with_suffix(".srt")), "labels": ["sad", "surprised"]})
                        + "\n")
    report = acoustemo.predict_manifest(manifest, tmp_path / "preds.jsonl", progress=False)
    assert (report.predicted, report.failed) == (1, [])
    (line,) = [json.loads(x) for x in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert sorted(line["emotions"]) == ["sad", "surprised"]
    scores = acoustemo.evaluate_predictions(manifest, tmp_path / "preds.jsonl")
    assert (scores["accuracy_s"], scores["recall_s"], scores["avg"]) == (100.0, 100.0, 100.0)


def test_import_acoustemo_stays_light():
    """The package root and its media module load without torch; the API's names resolve on first use."""
    code = ("import sys, acoustemo, acoustemo.data.media; assert 'torch' not in sys.modules, 'torch loaded'; "
            "assert 'acoustemo.api' not in sys.modules; print(sorted(acoustemo.__all__))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() and "'load_model'," in proc.stdout


def test_api_names_resolve_lazily():
    import acoustemo
    from acoustemo.api import Model, evaluate_predictions, load_model, predict_manifest
    from acoustemo.predictor import Prediction
    from acoustemo.timeline import Timeline

    assert (acoustemo.load_model, acoustemo.Model, acoustemo.predict_manifest) == (load_model, Model, predict_manifest)
    assert (acoustemo.evaluate_predictions, acoustemo.Prediction, acoustemo.Timeline) == (
        evaluate_predictions, Prediction, Timeline)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        acoustemo.nothing  # noqa: B018


def test_a_long_recording_comes_back_as_a_timeline(stub, tmp_path):
    """Model.predict on a recording whose dialogue needs three windows: a Timeline with its per-speaker summary
    (the stub predictor's labelled answers of test_timeline.py; features and windows are stubbed there)."""
    import numpy as np
    import soundfile as sf

    import acoustemo
    from test_timeline import STUB_UTTS

    wav, subs = tmp_path / "meeting.wav", tmp_path / "meeting.json"
    sf.write(wav, np.zeros(63 * 16000, np.float32), 16000)
    subs.write_text(json.dumps([u.to_json() for u in STUB_UTTS]))
    tl = acoustemo.Model(stub).predict(wav, subtitles=subs)
    assert isinstance(tl, acoustemo.Timeline) and tl.speakers == ["A", "B"]
    assert [(s.emotion, s.share_time) for s in tl.summary()["A"].emotions] == [("angry", 8 / 15), ("sad", 7 / 15)]
    assert tl.to_json()["kind"] == "timeline" and tl.to_json()["duration_s"] == 63.0
