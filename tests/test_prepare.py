"""Manifests from a media folder and from the field's CSVs, on real files."""

from __future__ import annotations

import csv

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustemo.cli import main
from acoustemo.data.manifest import read_manifest, validate_manifest
from acoustemo.data.prepare import parse_openset, prepare_csv, prepare_folder
from acoustemo.errors import ManifestError

OPENSET_CSV = Path(__file__).resolve().parents[2] / "shared" / "emer" / "mer2024_ov_store" / "check-openset.csv"


def tone(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_folder_with_and_without_subtitles(tmp_path, dialogue):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(dialogue[0], media / "talk.wav")
    (media / "talk.srt").write_text("1\n00:00:00,300 --> 00:00:02,852\nAnna: I put the keys\n\n")
    tone(media / "nested" / "quiet.flac")
    tone(media / "lines.wav")
    (media / "lines.txt").write_text("Anna: hello\n")
    (media / "README.md").write_text("not media")
    out = tmp_path / "out" / "m.jsonl"
    report = prepare_folder(media, out)
    assert report.clips == 3 and report.without_subtitles == ["nested/quiet"]
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert rows["talk"] == {"id": "talk", "media": "../media/talk.wav", "subtitles": "../media/talk.srt"}
    assert rows["lines"]["subtitles"] == "../media/lines.txt" and "subtitles" not in rows["nested/quiet"]
    assert validate_manifest(out) == []
    clips = {c.id: c for c in read_manifest(out, resolve_subtitles=False)}
    assert clips["talk"].utterances[0].speaker == "Anna" and clips["nested/quiet"].timestamps_source == "none"


def test_folder_segmented_now(tmp_path, dialogue):
    shutil.copy(dialogue[0], tmp_path / "talk.wav")
    out = tmp_path / "m.jsonl"
    prepare_folder(tmp_path, out, segment=True)
    (row,) = read_jsonl(out)
    assert row["timestamps_source"] == "vad" and len(row["utterances"]) == 3
    (clip,) = read_manifest(out)
    assert clip.timestamps_source == "vad" and "kitchen" in clip.utterances[0].text.lower()


def test_folder_errors(tmp_path):
    with pytest.raises(ManifestError, match="no media files found"):
        prepare_folder(tmp_path, tmp_path / "m.jsonl")
    tone(tmp_path / "a.wav")
    tone(tmp_path / "a.flac")
    with pytest.raises(ManifestError, match=r"several media files share a name \(a.flac, a.wav\)"):
        prepare_folder(tmp_path, tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match="not a folder"):
        prepare_folder(tmp_path / "nope", tmp_path / "m.jsonl")


def test_csvs_are_joined_by_name(tmp_path):
    media = tmp_path / "media"
    tone(media / "s1.wav", 1.5)
    tone(media / "s2.wav")
    tone(media / "s3.wav")
    desc = tmp_path / "desc.csv"
    desc.write_text("name,chinese,english\ns1,他很开心,\"He smiles, happy.\"\ns2,她很难过,\n", encoding="utf-8")
    labels = tmp_path / "labels.csv"
    labels.write_text("name,openset\ns1,\"['happy', 'relaxed']\"\ns3,[]\ns9,\"['sad']\"\n")
    subs = tmp_path / "subs.csv"
    subs.write_text("name,sentence\ns1,I finally did it.\n")
    out = tmp_path / "m.jsonl"
    report = prepare_csv(media, out, descriptions=desc, labels=labels, subtitles=subs)
    assert report.missing_media == ["s9"] and report.missing_labels == ["s2", "s3"]
    assert report.clips == 3 and "s9" in report.summary()
    clips = {c.id: c for c in read_manifest(out)}
    assert clips["s1"].labels == ["happy", "relaxed"] and clips["s1"].description == "He smiles, happy."
    assert clips["s2"].description == "她很难过"  # no English: the Chinese description is kept
    (u,) = clips["s1"].utterances
    assert (u.start_s, u.end_s, u.text) == (0.0, 1.5, "I finally did it.")
    assert clips["s3"].utterances == []


def test_csv_with_wrong_columns(tmp_path):
    tone(tmp_path / "s1.wav")
    bad = tmp_path / "labels.csv"
    bad.write_text("name,labels\ns1,happy\n")
    with pytest.raises(ManifestError, match=r"labels.csv: needs columns name, openset; found name, labels"):
        prepare_csv(tmp_path, tmp_path / "m.jsonl", labels=bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("name,openset\ns1,[]\ns1,[]\n")
    with pytest.raises(ManifestError, match=r"line 3: name 's1' appears twice"):
        prepare_csv(tmp_path, tmp_path / "m.jsonl", labels=dup)


def test_parse_openset_is_the_evaluators_parser(tmp_path):
    """One parser for the field's list cells: prepare's labels are exactly what evaluate reads from the same CSV,
    including the cells the reference splits oddly (an apostrophe ends a label, commas split too)."""
    from acoustemo.evaluate.parsing import read_labels

    cells = {"s1": "['Happy', 'relaxed ']", "s2": "['it's fine', 'calm']", "s3": "happy, sad", "s4": "[]",
             "s5": '["don\'t believe", \'doubt\']'}
    csv_path = tmp_path / "labels.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "openset"])
        w.writerows(cells.items())
    assert {name: parse_openset(cell) for name, cell in cells.items()} == read_labels(csv_path).labels
    assert parse_openset("['Happy', 'relaxed ']") == ["happy", "relaxed"]
    assert parse_openset("['it's fine', 'calm']") == ["it", "s fine", "calm"]  # as the reference splits it
    assert parse_openset("happy, sad") == ["happy", "sad"] and parse_openset("") == []  # string_to_list splits commas


@pytest.mark.skipif(not OPENSET_CSV.is_file(), reason=f"the field's OV label file is not at {OPENSET_CSV} (../shared/emer)")
def test_real_ov_label_file(tmp_path):
    names = [line.split(",", 1)[0] for line in OPENSET_CSV.read_text().splitlines()[1:]]
    for name in names[:2]:
        tone(tmp_path / "media" / f"{name}.wav")
    out = tmp_path / "m.jsonl"
    report = prepare_csv(tmp_path / "media", out, labels=OPENSET_CSV)
    assert report.clips == 2 and len(report.missing_media) == len(names) - 2
    clips = {c.id: c for c in read_manifest(out)}
    assert clips["sample_00000000"].labels == ["pleasurable", "self-deprecating", "relaxed", "complaining",
                                                "relieved", "humorous", "joyful", "happy"]


def test_prepare_command(tmp_path, capsys):
    tone(tmp_path / "media" / "a.wav")
    out = tmp_path / "m.jsonl"
    assert main(["prepare", str(tmp_path / "media"), "-o", str(out)]) == 0
    assert "wrote 1 clip(s)" in capsys.readouterr().out and out.is_file()
    assert main(["prepare", str(tmp_path / "nothing"), "-o", str(out)]) == 2  # a clear one-line error
    assert "not a folder" in capsys.readouterr().err
