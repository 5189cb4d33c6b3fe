"""`bench shift` (#35): the same dialogues, each whole clip moved in pitch, tempo and gain at the waveform: a
stress test of the absolute scale, or (--random) augmentation. Debug size: 12 espeak-ng plans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acoustemo.bench.plan import BenchConfig
from acoustemo.bench.shift import shift_bench
from acoustemo.data.revoice import Shift, draw_shift
from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import ConfigError

SR = SAMPLE_RATE_HZ


def _rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _peak_hz(wav: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / SR)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from acoustemo.bench.make import make_benchmark

    out = tmp_path_factory.mktemp("bench")
    make_benchmark(out, BenchConfig(n=12, seed=0, workers=1))
    return out


def test_gain_alone_scales_the_samples_exactly():
    wav = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    out = Shift(gain_db=20).apply(wav)
    np.testing.assert_allclose(out, wav * 10.0, rtol=1e-5)  # +20 dB = x10, nothing else touched


def test_pitch_moves_a_tone_and_tempo_changes_the_length():
    t = np.arange(2 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    up = Shift(pitch_st=12).apply(tone)  # an octave up, same length
    assert abs(len(up) - len(tone)) < SR * 0.01
    assert _peak_hz(up[SR // 4: -SR // 4]) == pytest.approx(400, abs=4)
    fast = Shift(tempo=1.25).apply(tone)  # 2 s at x1.25 -> 1.6 s, pitch kept
    assert len(fast) / SR == pytest.approx(1.6, abs=0.03)
    assert _peak_hz(fast[SR // 4: -SR // 4]) == pytest.approx(200, abs=4)


@pytest.mark.parametrize("kw, named", [({"tempo": 3.0}, "between 0.5 and 2"), ({"pitch_st": 13}, "an octave"),
                                       ({"gain_db": -40}, "at most 30 dB")])
def test_out_of_range_shifts_are_refused(kw, named):
    with pytest.raises(ConfigError, match=named):
        Shift(**kw)


def test_random_draws_are_per_clip_within_the_ranges_and_repeatable():
    ranges = Shift(pitch_st=3, tempo=1.2, gain_db=6)
    draws = [draw_shift(ranges, 0, f"train-{i:04d}") for i in range(200)]
    assert draws == [draw_shift(ranges, 0, f"train-{i:04d}") for i in range(200)]
    assert draws != [draw_shift(ranges, 1, f"train-{i:04d}") for i in range(200)]
    pitch, tempo, gain = (np.array([getattr(d, k) for d in draws]) for k in ("pitch_st", "tempo", "gain_db"))
    assert pitch.min() >= -3 and pitch.max() <= 3 and pitch.min() < -2.5 and pitch.max() > 2.5
    assert tempo.min() >= 1 / 1.2 - 1e-4 and tempo.max() <= 1.2 + 1e-4 and tempo.min() < 0.86 and tempo.max() > 1.16
    assert gain.min() >= -6 and gain.max() <= 6 and len(set(gain.round(3))) > 190


def test_shift_revoices_the_chosen_split_and_links_the_rest(bench, tmp_path):
    import soundfile as sf

    out = tmp_path / "up"
    counts = shift_bench(bench, out, ("test",), Shift(pitch_st=2, tempo=1.25, gain_db=4), workers=1)
    assert counts["test"] == 2 and counts["train"] == 0 and counts["val"] == 0
    for split in ("train", "val"):  # untouched: the same lines and the same bytes
        assert _rows(out / f"{split}.jsonl") == _rows(bench / f"{split}.jsonl")
        for r in _rows(out / f"{split}.jsonl"):
            assert (out / r["media"]).read_bytes() == (bench / r["media"]).read_bytes()
    meta, src_meta = (json.loads((d / "meta.json").read_text()) for d in (out, bench))
    assert meta["params"]["shift"]["shift"] == {"pitch_st": 2, "tempo": 1.25, "gain_db": 4}
    for old, new in zip(_rows(bench / "test.jsonl"), _rows(out / "test.jsonl")):
        assert new["labels"] == old["labels"] and new["id"] == old["id"]
        for u_old, u_new in zip(old["utterances"], new["utterances"]):
            assert u_new["start"] == pytest.approx(u_old["start"] / 1.25, abs=1e-3)
            assert u_new["end"] == pytest.approx(u_old["end"] / 1.25, abs=1e-3)
        wav_old, _ = sf.read(bench / old["media"])
        wav_new, _ = sf.read(out / new["media"])
        assert len(wav_new) == pytest.approx(len(wav_old) / 1.25, rel=0.01)
        rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
        assert 20 * np.log10(rms(wav_new) / rms(wav_old)) == pytest.approx(4, abs=0.5)
        cues_old, cues_new = src_meta["clips"][old["id"]]["cues"], meta["clips"][new["id"]]["cues"]
        for c_old, c_new in zip(cues_old, cues_new):
            assert c_new["start"] == pytest.approx(c_old["start"] / 1.25, abs=1e-3)
            assert f"{c_new['start']:.1f}–{c_new['end']:.1f} s" in new["description"]
        assert meta["clips"][new["id"]]["shift"] == {"pitch_st": 2, "tempo": 1.25, "gain_db": 4}
    # a rerun keeps what is made; other settings are refused, naming the fix
    first = (out / "media" / "test-0000.wav").stat().st_mtime_ns
    shift_bench(bench, out, ("test",), Shift(pitch_st=2, tempo=1.25, gain_db=4), workers=1)
    assert (out / "media" / "test-0000.wav").stat().st_mtime_ns == first
    with pytest.raises(ConfigError, match="other settings"):
        shift_bench(bench, out, ("test",), Shift(pitch_st=1), workers=1)


def test_shift_refuses_bad_folders_and_splits(bench, tmp_path):
    with pytest.raises(ConfigError, match="not a `bench make` folder"):
        shift_bench(tmp_path, tmp_path / "x", ("test",), Shift(gain_db=1))
    with pytest.raises(ConfigError, match="name one or more of its splits"):
        shift_bench(bench, tmp_path / "x", ("dev",), Shift(gain_db=1))
    with pytest.raises(ConfigError, match="the source folder"):
        shift_bench(bench, bench, ("test",), Shift(gain_db=1))


def test_cli_random_shift(bench, tmp_path, capsys):
    from acoustemo.cli import main

    out = tmp_path / "aug"
    assert main(["bench", "shift", str(bench), "--out", str(out), "--splits", "train", "--random", "--pitch-st", "3",
                 "--tempo", "1.2", "--gain-db", "6", "--workers", "1"]) == 0
    assert "9 clips random shifts within pitch +3 st, tempo x1.2, gain +6 dB (train 9)" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    shifts = [meta["clips"][r["id"]]["shift"] for r in _rows(out / "train.jsonl")]
    assert shifts == [vars(draw_shift(Shift(3, 1.2, 6), 0, r["id"])) for r in _rows(out / "train.jsonl")]
    assert "shift" not in meta["clips"]["test-0000"]
