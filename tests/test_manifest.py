"""Manifests: round trip, atomic writes, and every problem reported at once with its line number."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from acoustemo.cli import main
from acoustemo.data.manifest import check_manifest, read_manifest, validate_manifest, write_manifest
from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import ManifestError


@pytest.fixture()
def folder(tmp_path, dialogue):
    """A manifest folder with the dialogue wav, a silent video, a corrupt file and subtitles."""
    wav, _ = dialogue
    shutil.copy(wav, tmp_path / "talk.wav")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:d=1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "mute.mp4")], check=True)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01garbage" * 100)
    (tmp_path / "talk.srt").write_text("1\n00:00:00,300 --> 00:00:02,852\nAnna: I put the keys\n\n"
                                       "2\n00:00:03,252 --> 00:00:06,590\nBen: Then they should\n\n")
    (tmp_path / "bad.srt").write_text("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n\n")
    (tmp_path / "talk.txt").write_text("Anna: I put the keys\nBen: Then they should\n")
    return tmp_path


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


GOOD = {"id": "c1", "media": "talk.wav", "target_speaker": "Anna", "labels": ["worried", "confused"],
        "description": "Anna cannot find her keys.",
        "utterances": [{"start": 0.3, "end": 2.85, "speaker": "Anna", "text": "I put the keys"}]}


def test_round_trip_is_relative_and_atomic(folder):
    clip = Clip("c1", str(folder / "talk.wav"), [Utterance(0.3, 2.85, "Anna", "keys")], "Anna", ["worried"], "desc")
    out = folder / "sub" / "m.jsonl"
    write_manifest(out, [clip])
    assert json.loads(out.read_text())["media"] == "../talk.wav"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.jsonl"]  # no temporary file left behind
    (back,) = read_manifest(out)
    assert back == clip


def test_subtitles_are_resolved(folder):
    path = write_lines(folder / "m.jsonl", [{"id": "s", "media": "talk.wav", "subtitles": "talk.srt", "target_speaker": "Ben"},
                                             {"id": "n", "media": "talk.wav"},
                                             {"id": "t", "media": "talk.wav", "subtitles": "talk.txt"}])
    s, n, t = read_manifest(path, resolve_subtitles=False)
    assert s.timestamps_source == "subtitles" and [u.speaker for u in s.utterances] == ["Anna", "Ben"]
    assert (n.timestamps_source, n.utterances) == ("none", [])
    assert (t.timestamps_source, t.utterances) == ("unresolved", [])


def test_every_problem_is_reported_with_its_line(folder):
    path = write_lines(folder / "m.jsonl", [
        GOOD,                                                                      # 1 good
        '{"id": "c2", "media": ',                                                  # 2 bad JSON
        {"id": "c3"},                                                              # 3 missing media
        {"id": "c4", "media": "nowhere.mp4"},                                      # 4 missing file
        {**GOOD},                                                                  # 5 duplicate id
        {**GOOD, "id": "c6", "utterances": [{"start": 2.0, "end": 1.0}]},          # 6 reversed times
        {**GOOD, "id": "c7", "target_speaker": "Zoe"},                             # 7 unknown speaker
        {"id": "c8", "media": "broken.mp4"},                                       # 8 corrupt media
        {"id": "c9", "media": "talk.wav", "lables": ["sad"]},                      # 9 unknown key (typo): a note
        {"id": "c10", "media": "talk.wav", "labels": "['sad']"},                   # 10 labels not a list
        "",                                                                        # 11 blank: fine
        {"id": "c12", "media": "mute.mp4"},                                        # 12 no audio track
        {"id": "c13", "media": "talk.wav", "subtitles": "bad.srt"},                # 13 bad cue
        {"id": "c14", "media": "talk.wav", "subtitles": "gone.srt"},               # 14 missing subtitles
        {**GOOD, "id": "c15", "utterances": [{"start": 1, "end": 60}]},            # 15 beyond the media's end
        {**GOOD, "id": "c16", "subtitles": "talk.srt"},                            # 16 both: a note
        {"id": "c17", "media": "talk.wav", "utterances": [{"start": -1, "end": "x"}]},  # 17 bad times
    ])
    problems, notes = check_manifest(path)
    assert problems == validate_manifest(path)
    by_line = {}
    for p in problems:
        by_line.setdefault(p.line, []).append(p.message)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 14, 15, 17]
    assert [(n.line, n.clip_id) for n in notes] == [(9, "c9"), (16, "c16")]
    assert "'lables'" in notes[0].message and "did you mean 'labels'?" in notes[0].message
    assert "the utterances are used" in notes[1].message
    assert "invalid JSON" in by_line[2][0]
    assert by_line[3] == ["missing required key 'media'"]
    assert "media file 'nowhere.mp4' not found" in by_line[4][0]
    assert by_line[5] == ["duplicate id 'c1' (first on line 1); ids must be unique"]
    assert "utterance 1: ends before it starts" in by_line[6][0]
    assert "target_speaker 'Zoe' is not among the speakers ['Anna']" in by_line[7][0]
    assert "corrupt" in by_line[8][0]
    assert "'labels' must be a list" in by_line[10][0]
    assert "has no audio track" in by_line[12][0]
    assert "bad.srt" in by_line[13][0] and "ends before it starts" in by_line[13][0]
    assert "subtitle file 'gone.srt' not found" in by_line[14][0]
    assert "after the media's end" in by_line[15][0]
    assert "start/end must be numbers" in by_line[17][0]
    assert {p.clip_id for p in problems if p.line == 6} == {"c6"}

    with pytest.raises(ManifestError) as e:
        read_manifest(path)
    message = str(e.value)
    assert "problem(s)" in message and "line 2:" in message and "line 17 [c17]:" in message
    assert "line 8 [c8]" not in message  # media is only opened by validate (check_media=True), not read


def test_media_check_can_be_skipped(folder):
    path = write_lines(folder / "m.jsonl", [{"id": "c8", "media": "broken.mp4"}])
    assert validate_manifest(path, check_media=False) == []
    assert len(validate_manifest(path)) == 1


def test_empty_and_missing_manifest(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    assert [p.message for p in validate_manifest(tmp_path / "empty.jsonl")] == ["the manifest has no clips"]
    with pytest.raises(ManifestError, match="manifest not found"):
        validate_manifest(tmp_path / "none.jsonl")


def test_validate_command(folder, capsys):
    bad = write_lines(folder / "bad.jsonl", [GOOD, {"id": "c3"}, GOOD])
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:2: [c3] missing required key 'media'" in out and f"{bad}:3: [c1] duplicate id" in out
    good = write_lines(folder / "good.jsonl", [GOOD])
    assert main(["validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out


def test_extra_keys_are_kept_as_custom_metadata_and_said_once(folder, caplog):
    """A corpus' own columns ride along (lhotse's `custom`); reading warns once for the whole manifest."""
    lines = [{**GOOD, "id": f"c{i}", "mood": "tense", "speaker_age": 30 + i} for i in range(3)]
    lines.append({**GOOD, "id": "both", "subtitles": "talk.srt", "lables": ["sad"]})
    path = write_lines(folder / "m.jsonl", lines)
    with caplog.at_level("WARNING", logger="acoustemo.data.manifest"):
        clips = read_manifest(path)
    assert [c.custom for c in clips] == [{"mood": "tense", "speaker_age": 30}, {"mood": "tense", "speaker_age": 31},
                                         {"mood": "tense", "speaker_age": 32}, {"lables": ["sad"]}]
    both = clips[3]
    assert [u.text for u in both.utterances] == ["I put the keys"] and both.timestamps_source == "manifest"
    assert both.labels == ["worried", "confused"]  # the misspelt key did not replace the real one
    (record,) = caplog.records  # one warning for the manifest, each note once with its lines
    message = record.getMessage()
    assert message.count("key 'mood'") == 1 and "lines 1, 2, 3" in message
    assert "did you mean 'labels'?" in message and "the utterances are used" in message

    out = folder / "copy.jsonl"
    write_manifest(out, clips)
    first = json.loads(out.read_text().splitlines()[0])
    assert (first["mood"], first["speaker_age"]) == ("tense", 30)
    assert read_manifest(out) == clips


def test_validate_lists_notes_but_passes(folder, capsys):
    path = write_lines(folder / "notes.jsonl", [{**GOOD, "mood": "tense"}, {**GOOD, "id": "c2", "lables": ["x"]}])
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:1: note: [c1] key 'mood' is not one of acoustemo's; kept as the clip's custom metadata"
    assert out[1].startswith(f"{path}:2: note: [c2] unknown key 'lables'") and "did you mean 'labels'?" in out[1]
    assert out[2] == f"{path}: ok (2 note(s))"
