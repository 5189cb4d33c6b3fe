"""Subtitle reading: SRT, WebVTT, JSON and untimed text; every validation rule, repaired or rejected."""

from __future__ import annotations

import json

import pytest

from acoustemo.data.subtitles import OVERLAP_REPAIR_S, read_subtitles, read_untimed, split_speaker
from acoustemo.errors import SubtitleError


def srt(*cues: tuple[str, str, str]) -> str:
    return "".join(f"{i}\n{a} --> {b}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, start=1))


@pytest.fixture()
def write(tmp_path):
    def _write(name: str, content: str | bytes):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    return _write


def test_srt_speakers_tags_and_multiline(write):
    path = write("a.srt", srt(("00:00:01,000", "00:00:02,500", "Anna: I put the <i>keys</i>\non the table."),
                              ("00:00:03,000", "00:00:04,000", "Where?")))
    utts, warnings = read_subtitles(path, duration_s=10)
    assert warnings == []
    assert [(u.start_s, u.end_s, u.speaker, u.text) for u in utts] == [
        (1.0, 2.5, "Anna", "I put the keys on the table."), (3.0, 4.0, "", "Where?")]


def test_webvtt_voice_tags_notes_and_settings(write):
    path = write("a.vtt", "WEBVTT\n\nNOTE made by hand\n\nc1\n00:00:01.000 --> 00:00:02.000 align:start\n"
                          "<v Anna>Hello there</v>\n\n00:02.500 --> 00:04.000\nDr. Lee: fine, thanks\n")
    utts, warnings = read_subtitles(path)
    assert [(u.start_s, u.end_s, u.speaker, u.text) for u in utts] == [
        (1.0, 2.0, "Anna", "Hello there"), (2.5, 4.0, "Dr. Lee", "fine, thanks")]


def test_json_speaker_key_and_leading_name(write):
    path = write("a.json", json.dumps([{"start": 0.5, "end": 1.5, "speaker": "Ben", "text": "yes"},
                                       {"start": 2, "end": 3, "text": "Anna: no"}]))
    utts, _ = read_subtitles(path)
    assert [(u.speaker, u.text) for u in utts] == [("Ben", "yes"), ("Anna", "no")]


def test_speaker_prefix_rules():
    assert split_speaker("Speaker 2: hello") == ("Speaker 2", "hello")
    assert split_speaker("We meet at 10:30 today") == ("", "We meet at 10:30 today")
    assert split_speaker("Well, I said: no") == ("", "Well, I said: no")


def test_utf8_bom_is_accepted(write):
    path = write("bom.srt", b"\xef\xbb\xbf" + srt(("00:00:01,000", "00:00:02,000", "caf\u00e9")).encode())
    assert read_subtitles(path)[0][0].text == "caf\u00e9"


def test_non_utf8_is_rejected_with_byte_offset(write):
    content = srt(("00:00:01,000", "00:00:02,000", "un caf\u00e9")).encode("cp1252")
    path = write("latin.srt", content)
    offset = content.index(b"\xe9")
    with pytest.raises(SubtitleError, match=rf"latin\.srt: byte {offset} \(line 3\) is 0xe9, which is not UTF-8; re-encode.*iconv"):
        read_subtitles(path)


def test_negative_time_srt(write):
    path = write("neg.srt", srt(("00:00:01,000", "00:00:02,000", "ok"), ("-00:00:01,000", "00:00:03,000", "bad")))
    with pytest.raises(SubtitleError, match=r"cue 2 \(line 6\): negative time"):
        read_subtitles(path)


def test_negative_time_json(write):
    path = write("neg.json", json.dumps([{"start": -0.5, "end": 1, "text": "bad"}]))
    with pytest.raises(SubtitleError, match=r"cue 1: negative time"):
        read_subtitles(path)


@pytest.mark.parametrize("timing", ["00:00:0x,000 --> 00:00:02,000", "00:00:01.5 --> 00:00:02,000", "00:00:01,000 -> 00:00:02,000"])
def test_malformed_srt_timestamp(write, timing):
    # the srt library itself would read '0x,000' as 0 s and '01.5' as 1.005 s; these must be caught
    path = write("bad.srt", "1\n00:00:00,000 --> 00:00:01,000\nok\n\n2\n" + timing + "\nbad\n\n")
    with pytest.raises(SubtitleError, match=r"cue 2 \(line \d\): (malformed timing line|no 'start --> end' timing line)"):
        read_subtitles(path)


def test_malformed_vtt_timestamp_is_not_skipped(write):
    # webvtt-py alone silently drops such a cue
    path = write("bad.vtt", "WEBVTT\n\n00:00:01.000 --> 00:0x:02.000\nhi\n")
    with pytest.raises(SubtitleError, match=r"cue 1 \(line 3\): malformed timing line"):
        read_subtitles(path)


def test_vtt_without_header(write):
    with pytest.raises(SubtitleError, match="must start with the line 'WEBVTT'"):
        read_subtitles(write("x.vtt", "00:00:01.000 --> 00:00:02.000\nhi\n"))


def test_malformed_json_timestamp(write):
    path = write("bad.json", json.dumps([{"start": "00:01", "end": 2, "text": "x"}]))
    with pytest.raises(SubtitleError, match=r"cue 1: malformed timestamp start='00:01'"):
        read_subtitles(path)


def test_invalid_json(write):
    with pytest.raises(SubtitleError, match=r"invalid JSON at line 1"):
        read_subtitles(write("bad.json", "[{'start': 1}]"))


def test_reversed_times(write):
    path = write("rev.srt", srt(("00:00:03,000", "00:00:02,000", "backwards")))
    with pytest.raises(SubtitleError, match=r"cue 1 \(line 1\): ends before it starts"):
        read_subtitles(path)


def test_small_overlap_is_repaired_at_the_midpoint(write):
    path = write("ov.srt", srt(("00:00:01,000", "00:00:03,100", "a"), ("00:00:03,000", "00:00:04,000", "b")))
    utts, warnings = read_subtitles(path)
    assert utts[0].end_s == pytest.approx(3.05) and utts[1].start_s == pytest.approx(3.05)
    assert len(warnings) == 1 and "cue 2 (line 5) overlaps cue 1 (line 1) by 0.100 s" in warnings[0]


def test_large_overlap_is_rejected(write):
    overlap = OVERLAP_REPAIR_S + 0.3
    path = write("ov.json", json.dumps([{"start": 0, "end": 2 + overlap, "text": "a"}, {"start": 2, "end": 4, "text": "b"}]))
    with pytest.raises(SubtitleError, match=r"cue 2: overlaps cue 1 by 0.500 s.*make cue 1 end before cue 2 starts"):
        read_subtitles(path)


def test_cue_inside_another_is_rejected(write):
    path = write("in.json", json.dumps([{"start": 0, "end": 5, "text": "a"}, {"start": 4.9, "end": 4.95, "text": "b"}]))
    with pytest.raises(SubtitleError, match=r"cue 2: overlaps cue 1"):
        read_subtitles(path)


def test_cue_starting_after_the_media_end_is_rejected(write):
    path = write("late.srt", srt(("00:00:01,000", "00:00:02,000", "a"), ("00:00:12,000", "00:00:13,000", "b")))
    with pytest.raises(SubtitleError, match=r"cue 2 \(line 5\): starts at 12.000 s, at or after the media's end \(10.000 s\)"):
        read_subtitles(path, duration_s=10.0)


def test_cue_ending_after_the_media_end_is_clamped(write):
    path = write("long.srt", srt(("00:00:08,000", "00:00:11,000", "a")))
    utts, warnings = read_subtitles(path, duration_s=10.0)
    assert utts[0].end_s == 10.0
    assert warnings == [f"{path}: cue 1 (line 1) ends at 11.000 s, after the media's end; clamped to 10.000 s"]


def test_unsorted_cues_are_sorted(write):
    path = write("order.srt", srt(("00:00:05,000", "00:00:06,000", "second"), ("00:00:01,000", "00:00:02,000", "first")))
    utts, warnings = read_subtitles(path)
    assert [u.text for u in utts] == ["first", "second"]
    assert len(warnings) == 1 and "not in time order" in warnings[0] and "cues 1, 2 moved" in warnings[0]


def test_empty_text_is_dropped_with_a_warning(write):
    path = write("empty.vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<i></i>\n\n00:00:03.000 --> 00:00:04.000\nhi\n")
    utts, warnings = read_subtitles(path)
    assert [u.text for u in utts] == ["hi"]
    assert warnings == [f"{path}: cue 1 (line 3) has no text; dropped"]


def test_every_rejected_cue_is_listed_at_once(write):
    path = write("many.srt", srt(("00:00:03,000", "00:00:02,000", "rev"), ("00:00:04,000", "00:00:05,000", "ok"),
                                 ("00:00:20,000", "00:00:21,000", "late")))
    with pytest.raises(SubtitleError) as e:
        read_subtitles(path, duration_s=10)
    assert "2 problem(s)" in str(e.value) and "cue 1 (line 1)" in str(e.value) and "cue 3 (line 9)" in str(e.value)


def test_untimed_text_lines(write):
    path = write("lines.txt", "Anna: I put the keys there.\n\n  Ben: Then they are there.\nNo speaker here\n")
    lines = read_untimed(path)
    assert [(x.line, x.speaker, x.text) for x in lines] == [
        (1, "Anna", "I put the keys there."), (3, "Ben", "Then they are there."), (4, "", "No speaker here")]
    with pytest.raises(SubtitleError, match="has no timestamps"):
        read_subtitles(path)


def test_untimed_without_lines(write):
    with pytest.raises(SubtitleError, match="has no text lines"):
        read_untimed(write("blank.txt", "\n  \n"))


def test_unsupported_and_missing(write, tmp_path):
    with pytest.raises(SubtitleError, match=r"unsupported subtitle format '\.ass'"):
        read_subtitles(write("a.ass", "[Script Info]\n"))
    with pytest.raises(SubtitleError, match="subtitle file not found"):
        read_subtitles(tmp_path / "none.srt")
