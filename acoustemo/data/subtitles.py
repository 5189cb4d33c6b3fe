"""Subtitles -> utterances: SRT (`srt`), WebVTT (`webvtt-py`), JSON, and untimed text lines.

Cue numbers in messages count cues in file order from 1. Each rule either repairs a cue and says so in a
warning, or rejects the file with a SubtitleError listing every rejected cue at once:

| rule                                  | outcome                                                              |
| ------------------------------------- | -------------------------------------------------------------------- |
| bytes that are not UTF-8              | rejected, naming the byte offset and line (re-encode with iconv)     |
| malformed timestamp / timing line     | rejected, naming the line                                            |
| negative time                         | rejected                                                             |
| end before start                      | rejected                                                             |
| start at or after the media's end     | rejected (wrong subtitle file or wrong media)                        |
| end after the media's end             | end clamped to the duration, warning                                 |
| empty text                            | cue dropped, warning (a cue with no words is an editing leftover)    |
| cues out of order                     | sorted by start time, warning                                        |
| overlap <= OVERLAP_REPAIR_S           | both boundaries moved to the midpoint of the overlap, warning        |
| overlap > OVERLAP_REPAIR_S            | rejected                                                             |

A leading `Name:` (or a WebVTT `<v Name>` voice tag) becomes the utterance's speaker.
The libraries are lenient (webvtt-py silently skips a cue with a bad timing line, srt reads "00:00:0x,000"
as 0 s), so timing lines are checked here with strict patterns before the libraries parse the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from acoustemo.data.segments import Utterance
from acoustemo.errors import SubtitleError

TIMED_EXTENSIONS = (".srt", ".vtt", ".json")
UNTIMED_EXTENSIONS = (".txt",)
SUBTITLE_EXTENSIONS = TIMED_EXTENSIONS + UNTIMED_EXTENSIONS
OVERLAP_REPAIR_S = 0.2

_SRT_TIME = r"(-?)(\d+):(\d{2}):(\d{2})[,.](\d{3})"
_VTT_TIME = r"(-?)(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})"
# "Anna: ...", "Dr. Lee: ...", "Speaker 2: ..." -- at most four words, no sentence punctuation, then ": ".
_SPEAKER = re.compile(r"^\s*([^\W\d][\w.'\- ]{0,40}?(?: \d{1,2})?)\s*:\s+(\S.*)$", re.S)
_TAG = re.compile(r"<[^>]*>")


@dataclass
class Cue:
    """A subtitle cue as read, before the rules: its 1-based number and first line in the file."""

    number: int
    line: int
    start_s: float
    end_s: float
    text: str
    speaker: str = ""


@dataclass
class UntimedLine:
    """One line of a subtitle file without timestamps; times come from alignment to ASR words."""

    line: int
    speaker: str
    text: str


def is_timed(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TIMED_EXTENSIONS


def split_speaker(text: str) -> tuple[str, str]:
    """'Anna: hello' -> ('Anna', 'hello'); text without a leading name -> ('', text)."""
    m = _SPEAKER.match(text)
    if m and len(m.group(1).split()) <= 4:
        return m.group(1).strip(), m.group(2).strip()
    return "", text.strip()


def read_text(path: str | Path) -> str:
    """A subtitle file as text: UTF-8 (a BOM is allowed), anything else rejected with the byte offset."""
    path = Path(path)
    if not path.is_file():
        raise SubtitleError(f"{path}: subtitle file not found; check the path (relative to the manifest's folder)")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SubtitleError(
            f"{path}: byte {e.start} (line {line}) is 0x{data[e.start]:02x}, which is not UTF-8; "
            f"re-encode the file, e.g. `iconv -f cp1252 -t utf-8 '{path.name}' > fixed{path.suffix}` "
            "(use the encoding it was written in: cp1252, latin-1, gb18030, ...)"
        ) from None


def read_subtitles(path: str | Path, duration_s: float | None = None) -> tuple[list[Utterance], list[str]]:
    """Timed subtitles (.srt, .vtt, .json) -> (utterances sorted by time, warnings about repairs)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in UNTIMED_EXTENSIONS:
        raise SubtitleError(
            f"{path}: has no timestamps; read it with read_untimed() and align it to speech "
            "(acoustemo.data.segmentation.utterances_for does both)"
        )
    if suffix not in TIMED_EXTENSIONS:
        raise SubtitleError(f"{path}: unsupported subtitle format '{suffix}'; use .srt, .vtt, .json or .txt (untimed)")
    text = read_text(path)
    cues = {".srt": _parse_srt, ".vtt": _parse_vtt, ".json": _parse_json}[suffix](path, text)
    return apply_rules(path, cues, duration_s)


def read_untimed(path: str | Path) -> list[UntimedLine]:
    """A plain text file, one utterance per non-blank line, optionally `Name: text`."""
    lines = []
    for i, raw in enumerate(read_text(path).split("\n"), start=1):
        if raw.strip():
            speaker, text = split_speaker(raw)
            lines.append(UntimedLine(i, speaker, text))
    if not lines:
        raise SubtitleError(f"{path}: has no text lines; write one utterance per line")
    return lines


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blank-line separated blocks with the 1-based line number where each starts."""
    blocks, current, start = [], [], 0
    for i, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = i
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _seconds(match: re.Match, first_group: int) -> tuple[float, bool]:
    sign, h, m, s, ms = match.group(*range(first_group, first_group + 5))
    value = int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
    return (-value if sign else value), bool(sign)


def _timing(path: Path, line_no: int, line: str, pattern: str, bad: list[str], number: int) -> tuple[float, float] | None:
    m = re.match(rf"^\s*{pattern}\s*-->\s*{pattern}(\s.*)?$", line)
    if m is None:
        bad.append(f"cue {number} (line {line_no}): malformed timing line '{line.strip()}'; expected e.g. "
                   + ("'00:01:02,500 --> 00:01:04,000'" if "," in pattern else "'00:01:02.500 --> 00:01:04.000'"))
        return None
    start_s, neg_start = _seconds(m, 1)
    end_s, neg_end = _seconds(m, 6)
    if neg_start or neg_end:
        bad.append(f"cue {number} (line {line_no}): negative time in '{line.strip()}'; times start at 00:00:00")
        return None
    return start_s, end_s


def _raise_if(path: Path, bad: list[str]) -> None:
    if bad:
        raise SubtitleError(f"{path}: {len(bad)} problem(s): " + "; ".join(bad))


def _parse_srt(path: Path, text: str) -> list[Cue]:
    import srt

    cues, bad = [], []
    for number, (start_line, lines) in enumerate(_blocks(text), start=1):
        t_idx = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if t_idx is None:
            bad.append(f"cue {number} (line {start_line}): no 'start --> end' timing line; every SRT cue needs one")
            continue
        times = _timing(path, start_line + t_idx, lines[t_idx], _SRT_TIME, bad, number)
        if times is None:
            continue
        try:
            (sub,) = srt.parse("\n".join((["0"] if t_idx == 0 else []) + lines) + "\n\n")
        except (srt.SRTParseError, ValueError) as e:
            bad.append(f"cue {number} (line {start_line}): cannot be parsed ({e})")
            continue
        speaker, body = split_speaker(_clean(sub.content))
        cues.append(Cue(number, start_line, times[0], times[1], body, speaker))
    _raise_if(path, bad)
    return cues


def _parse_vtt(path: Path, text: str) -> list[Cue]:
    import webvtt

    blocks = _blocks(text)
    if not blocks or not blocks[0][1][0].startswith("WEBVTT"):
        raise SubtitleError(f"{path}: a WebVTT file must start with the line 'WEBVTT'")
    cues, bad, number = [], [], 0
    for start_line, lines in blocks[1:]:
        if lines[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in lines[0]:
            continue
        number += 1
        t_idx = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if t_idx is None:
            bad.append(f"cue {number} (line {start_line}): no 'start --> end' timing line; every WebVTT cue needs one")
            continue
        times = _timing(path, start_line + t_idx, lines[t_idx], _VTT_TIME, bad, number)
        if times is None:
            continue
        try:
            (caption,) = webvtt.from_string("WEBVTT\n\n" + "\n".join(lines) + "\n")
        except Exception as e:  # webvtt-py raises its own and plain errors alike
            bad.append(f"cue {number} (line {start_line}): cannot be parsed ({e})")
            continue
        speaker, body = split_speaker(_clean(caption.text))
        cues.append(Cue(number, start_line, times[0], times[1], body, caption.voice or speaker))
    _raise_if(path, bad)
    return cues


def _parse_json(path: Path, text: str) -> list[Cue]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SubtitleError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("utterances"), list):
        data = data["utterances"]
    if not isinstance(data, list):
        raise SubtitleError(f'{path}: expected a JSON list of cues like [{{"start": 0.5, "end": 2.1, "text": "..."}}]')
    cues, bad = [], []
    for number, item in enumerate(data, start=1):
        where = f"cue {number}"
        if not isinstance(item, dict):
            bad.append(f"{where}: is not an object with start/end/text")
            continue
        times = [item.get(key) for key in ("start", "end")]
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
            bad.append(f"{where}: malformed timestamp start={item.get('start')!r} end={item.get('end')!r}; "
                       "give both as numbers of seconds")
            continue
        if min(times) < 0:
            bad.append(f"{where}: negative time ({times[0]} -> {times[1]}); times start at 0")
            continue
        speaker, body = split_speaker(_clean(str(item.get("text") or "")))
        cues.append(Cue(number, 0, float(times[0]), float(times[1]), body, str(item.get("speaker") or speaker)))
    _raise_if(path, bad)
    return cues


def _clean(text: str) -> str:
    """Formatting tags removed, line breaks inside a cue joined with spaces."""
    return " ".join(_TAG.sub("", text).split())


def _name(cue: Cue) -> str:
    return f"cue {cue.number}" + (f" (line {cue.line})" if cue.line else "")


def apply_rules(path: str | Path, cues: list[Cue], duration_s: float | None = None) -> tuple[list[Utterance], list[str]]:
    """The validation rules of the module docstring; returns utterances and warnings, or raises listing all rejects."""
    bad, warnings, kept = [], [], []
    for cue in cues:
        if cue.end_s < cue.start_s:
            bad.append(f"{_name(cue)}: ends before it starts ({cue.start_s:.3f} s -> {cue.end_s:.3f} s); swap or fix the times")
        elif duration_s is not None and cue.start_s >= duration_s:
            bad.append(f"{_name(cue)}: starts at {cue.start_s:.3f} s, at or after the media's end ({duration_s:.3f} s); "
                       "is this the subtitle file of another video?")
        elif not cue.text:
            warnings.append(f"{path}: {_name(cue)} has no text; dropped")
        else:
            if duration_s is not None and cue.end_s > duration_s:
                warnings.append(f"{path}: {_name(cue)} ends at {cue.end_s:.3f} s, after the media's end; clamped to {duration_s:.3f} s")
                cue.end_s = duration_s
            kept.append(cue)
    order = sorted(kept, key=lambda c: (c.start_s, c.end_s, c.number))
    if order != kept:
        moved = [c.number for c, o in zip(kept, order) if c is not o]
        warnings.append(f"{path}: cues were not in time order (cues {', '.join(map(str, moved))} moved); sorted by start time")
    bad += _repair_overlaps(path, order, warnings)
    _raise_if(Path(path), bad)
    return [Utterance(c.start_s, c.end_s, c.speaker, c.text) for c in order], warnings


def _repair_overlaps(path, cues: list[Cue], warnings: list[str]) -> list[str]:
    bad = []
    for prev, cue in zip(cues, cues[1:]):
        overlap_s = prev.end_s - cue.start_s
        if overlap_s <= 1e-9:
            continue
        if overlap_s > OVERLAP_REPAIR_S or cue.end_s <= prev.end_s:
            bad.append(f"{_name(cue)}: overlaps {_name(prev)} by {overlap_s:.3f} s (more than {OVERLAP_REPAIR_S} s, "
                       f"or inside it); make {_name(prev)} end before {_name(cue)} starts")
            continue
        mid_s = (prev.end_s + cue.start_s) / 2
        warnings.append(f"{path}: {_name(cue)} overlaps {_name(prev)} by {overlap_s:.3f} s; boundary moved to {mid_s:.3f} s")
        prev.end_s = cue.start_s = mid_s
    return bad
