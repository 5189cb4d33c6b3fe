"""`acoustemo augment` (data/revoice.py): a training manifest plus re-voiced copies of each clip, on a real
espeak-ng dialogue: the copies' audio, times, labels and shifts, the rerun, and the refusals."""

from __future__ import annotations

import json

import pytest

from acoustemo.data.manifest import read_manifest
from acoustemo.data.media import SAMPLE_RATE_HZ, load_audio
from acoustemo.data.revoice import Shift, augment_manifest, draw_shift
from acoustemo.errors import ConfigError

RANGES = Shift(pitch_st=3, tempo=1.2, gain_db=6)


@pytest.fixture()
def manifest(dialogue, tmp_path):
    wav, utts = dialogue
    line = {"id": "d1", "media": str(wav), "utterances": utts, "target_speaker": "Anna", "labels": ["worried"],
            "description": "Anna's voice trembles as she says the keys are gone.", "mood": "tense"}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(line) + "\n")
    return path


def test_copies_are_revoiced_with_their_own_shift_and_scaled_times(manifest, tmp_path):
    out = augment_manifest(manifest, tmp_path / "aug", RANGES, copies=2, seed=0)
    assert out == tmp_path / "aug" / "train.jsonl"
    clips = read_manifest(out, check_media=True)  # the copies' times lie within their (shorter or longer) media
    original = read_manifest(manifest)[0]
    assert [c.id for c in clips] == ["d1", "d1-shift0", "d1-shift1"]
    assert clips[0] == original
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    source = load_audio(original.media)
    for clip, row in zip(clips[1:], rows[1:]):
        shift = draw_shift(RANGES, 0, clip.id)
        assert row["shift"] == {"pitch_st": shift.pitch_st, "tempo": shift.tempo, "gain_db": shift.gain_db}
        assert row["mood"] == "tense"  # the line's own metadata travels with the copy
        assert clip.labels == original.labels and clip.description == original.description
        assert clip.target_speaker == "Anna"
        for u_new, u_old in zip(clip.utterances, original.utterances):
            assert (u_new.speaker, u_new.text) == (u_old.speaker, u_old.text)
            assert u_new.start_s == pytest.approx(u_old.start_s / shift.tempo, abs=1e-3)
            assert u_new.end_s == pytest.approx(u_old.end_s / shift.tempo, abs=1e-3)
        audio = load_audio(clip.media)
        assert len(audio) == pytest.approx(len(source) / shift.tempo, rel=0.01)
    assert draw_shift(RANGES, 0, "d1-shift0") != draw_shift(RANGES, 0, "d1-shift1")


def test_a_rerun_keeps_the_copies_and_a_new_seed_redraws(manifest, tmp_path):
    augment_manifest(manifest, tmp_path / "aug", RANGES, copies=1, seed=0)
    wav = tmp_path / "aug" / "media" / "d1-shift0.wav"
    first = wav.stat().st_mtime_ns
    augment_manifest(manifest, tmp_path / "aug", RANGES, copies=1, seed=0)
    assert wav.stat().st_mtime_ns == first
    augment_manifest(manifest, tmp_path / "aug", RANGES, copies=1, seed=1, originals=False)
    assert wav.stat().st_mtime_ns != first
    rows = [json.loads(x) for x in (tmp_path / "aug" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["d1-shift0"]
    assert rows[0]["shift"] == vars(draw_shift(RANGES, 1, "d1-shift0"))


def test_explanations_that_name_times_refuse_a_tempo_change(manifest, tmp_path):
    line = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**line, "description": "At 1.2–2.0 s Anna's voice trembles."}) + "\n")
    with pytest.raises(ConfigError, match="give --tempo 1"):
        augment_manifest(manifest, tmp_path / "aug", RANGES)
    out = augment_manifest(manifest, tmp_path / "aug", Shift(pitch_st=3, tempo=1.0, gain_db=6))
    clips = read_manifest(out)
    assert [u.start_s for u in clips[1].utterances] == [round(u.start_s, 3) for u in clips[0].utterances]


def test_cli(manifest, tmp_path, capsys):
    from acoustemo.cli import main

    assert main(["augment", str(manifest), "--out", str(tmp_path / "aug"), "--copies", "2"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("augment: 3 clips (2 re-voiced copies per clip within +-3 st, tempo x1/1.2..1.2, +-6 dB)")
    assert main(["augment", str(manifest), "--out", str(tmp_path / "aug2"), "--copies", "0"]) == 2  # the CLI's exit status for refused input
    assert "--copies 0: give 1 or more" in capsys.readouterr().err
