"""JSONL manifests: one clip per line, checked all at once with line numbers.

Line format (paths relative to the manifest's folder):
  {"id": "c1", "media": "clips/c1.mp4",
   "utterances": [{"start": 0.3, "end": 2.1, "speaker": "Anna", "text": "..."}]   # or "subtitles": "c1.srt"
   "target_speaker": "Anna", "labels": ["worried"], "description": "...", "timestamps_source": "vad"}
Only `id` and `media` are required. A clip with neither `utterances` nor `subtitles` is read with no
utterances (timestamps_source "none"); extraction and prediction fill them from VAD + ASR
(acoustemo.data.segmentation.ensure_utterances). Blank lines are allowed.

Any other key (a corpus' own `mood` or `speaker_age`) is kept as the clip's `custom` metadata, as lhotse's `custom`
does, and carried through to the predictions file; reading warns once, naming the known key when an unknown one is
a near-miss (`lables` -> `labels`). A line with both `utterances` and `subtitles` uses the utterances (said once).
`acoustemo validate` lists these as notes, not problems.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import AcoustEmoError, ManifestError

log = logging.getLogger(__name__)

KNOWN_KEYS = {"id", "media", "utterances", "subtitles", "target_speaker", "labels", "description", "timestamps_source"}
TIME_TOLERANCE_S = 0.05  # utterances may end this far past the media's end (container durations are rounded)


@dataclass
class Problem:
    line: int
    clip_id: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f" [{self.clip_id}]" if self.clip_id else "") + f": {self.message}"


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `path.tmp-<pid>` beside the target, then os.replace: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def clip_to_json(clip: Clip, root: Path) -> dict:
    """One manifest line; `media` made relative to the manifest's folder `root`."""
    media = Path(clip.media)
    d = {"id": clip.id, "media": os.path.relpath(media, root) if media.is_absolute() else str(media)}
    if clip.utterances:
        d["utterances"] = [u.to_json() for u in clip.utterances]
    if clip.timestamps_source not in ("manifest", "none", "subtitles") and clip.utterances:
        d["timestamps_source"] = clip.timestamps_source
    if clip.target_speaker:
        d["target_speaker"] = clip.target_speaker
    if clip.labels:
        d["labels"] = list(clip.labels)
    if clip.description:
        d["description"] = clip.description
    d.update({k: v for k, v in clip.custom.items() if k not in KNOWN_KEYS})
    return d


def write_manifest(path: str | Path, clips: list[Clip], extra: dict[str, dict] | None = None) -> None:
    """Atomically write clips as JSONL; `extra[clip_id]` adds keys to a line (e.g. {"subtitles": "a.srt"})."""
    root = Path(path).resolve().parent
    lines = [json.dumps({**clip_to_json(c, root), **(extra or {}).get(c.id, {})}, ensure_ascii=False) for c in clips]
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def validate_manifest(path: str | Path, check_media: bool = True) -> list[Problem]:
    """Every problem of a manifest, with line numbers (empty list: the manifest is good).

    check_media=True also opens each media file (probe) and checks times against its duration.
    """
    return check_manifest(path, check_media)[0]


def check_manifest(path: str | Path, check_media: bool = True) -> tuple[list[Problem], list[Problem]]:
    """(problems, notes): notes are what reading accepts but says (unknown keys kept as custom metadata, both
    `utterances` and `subtitles` given)."""
    _, problems, notes = _read(Path(path), check_media=check_media, resolve_subtitles=False)
    return problems, notes


def read_manifest(path: str | Path, resolve_subtitles: bool = True, check_media: bool = False) -> list[Clip]:
    """Clips with absolute media paths; raises ManifestError listing every problem.

    Timed `subtitles` files are always read into utterances (checked against the media's duration). An untimed
    .txt is aligned to ASR words when resolve_subtitles=True (this runs Whisper); with False it is only checked
    and the clip has no utterances (timestamps_source "unresolved").
    """
    path = Path(path)
    clips, problems, notes = _read(path, check_media=check_media, resolve_subtitles=resolve_subtitles)
    if notes:
        log.warning("%s", summarize_notes(path, notes))
    if problems:
        listing = "\n  ".join(str(p) for p in problems)
        raise ManifestError(f"{path}: {len(problems)} problem(s); fix them (`acoustemo validate {path}` lists them):\n  {listing}")
    return clips


def summarize_notes(path: Path, notes: list[Problem]) -> str:
    """All of a manifest's notes in one message: each distinct note once, with the lines it is on."""
    lines: dict[str, list[int]] = {}
    for note in notes:
        lines.setdefault(note.message, []).append(note.line)

    def where(nums: list[int]) -> str:
        shown = ", ".join(map(str, nums[:5])) + (f" and {len(nums) - 5} more" if len(nums) > 5 else "")
        return f"line{'s' if len(nums) > 1 else ''} {shown}"

    return f"{path}: " + "; ".join(f"{message} ({where(nums)})" for message, nums in lines.items())


def _read(path: Path, check_media: bool, resolve_subtitles: bool) -> tuple[list[Clip], list[Problem], list[Problem]]:
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; create one with `acoustemo prepare`")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: byte {e.start} is not UTF-8; manifests are UTF-8 JSONL") from None
    clips, problems, notes, seen = [], [], [], {}
    for line_no, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        found: list[str] = []
        said: list[str] = []
        clip = _clip_from_line(raw, path.parent, found, said, check_media, resolve_subtitles)
        clip_id = clip.id if clip else _peek_id(raw)
        if clip_id and clip_id in seen:
            found.append(f"duplicate id '{clip_id}' (first on line {seen[clip_id]}); ids must be unique")
        elif clip_id:
            seen[clip_id] = line_no
        problems += [Problem(line_no, clip_id, m) for m in found]
        notes += [Problem(line_no, clip_id, m) for m in said]
        if clip is not None and not found:
            clips.append(clip)
    if not seen and not problems:
        problems.append(Problem(0, "", "the manifest has no clips"))
    return clips, problems, notes


def _peek_id(raw: str) -> str:
    try:
        d = json.loads(raw)
        return str(d["id"]) if isinstance(d, dict) and isinstance(d.get("id"), str) else ""
    except json.JSONDecodeError:
        return ""


def _clip_from_line(raw: str, root: Path, found: list[str], said: list[str], check_media: bool,
                    resolve: bool) -> Clip | None:
    """Parse and check one line; appends each problem to `found` and each note to `said`; returns the clip when it
    could be built."""
    try:
        d = json.loads(raw)
    except json.JSONDecodeError as e:
        found.append(f"invalid JSON at column {e.colno}: {e.msg}")
        return None
    if not isinstance(d, dict):
        found.append("a line must be a JSON object like {\"id\": ..., \"media\": ...}")
        return None
    custom = {k: v for k, v in d.items() if k not in KNOWN_KEYS}
    said += [_unknown_key_note(k) for k in custom]
    if "utterances" in d and "subtitles" in d:
        said.append("both 'utterances' and 'subtitles' are given; the utterances are used (drop one to silence this)")
        d = {k: v for k, v in d.items() if k != "subtitles"}
    found += [f"missing required key '{k}'" for k in ("id", "media") if k not in d]
    if not isinstance(d.get("id", ""), str) or ("id" in d and not d["id"].strip()):
        found.append("'id' must be a non-empty string")
    if not isinstance(d.get("media", ""), str):
        found.append("'media' must be a path string")
    if found:
        return None
    media = (root / d["media"]).resolve()
    duration_s = _check_media(media, d["media"], found, check_media)
    utts, source = _utterances(d, root, duration_s, found, resolve)
    _check_fields(d, utts, found)
    if found:
        return None
    if source == "unresolved":  # untimed lines were read only to check them (and the target speaker)
        utts = []
    return Clip(id=d["id"], media=str(media), utterances=utts, target_speaker=d.get("target_speaker") or None,
                labels=list(d.get("labels") or []), description=d.get("description") or "", timestamps_source=source,
                custom=custom)


def _unknown_key_note(key: str) -> str:
    near = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.75)
    if near:
        return (f"unknown key '{key}' kept as custom metadata; did you mean '{near[0]}'? (as spelled, acoustemo "
                "does not use it)")
    return f"key '{key}' is not one of acoustemo's; kept as the clip's custom metadata"


def _check_media(media: Path, given: str, found: list[str], check_media: bool) -> float | None:
    if not media.is_file():
        found.append(f"media file '{given}' not found (looked for {media}); paths are relative to the manifest's folder")
        return None
    if not check_media:
        return None
    from acoustemo.data.media import probe

    try:
        info = probe(media)
    except AcoustEmoError as e:
        found.append(f"media file '{given}' cannot be used: {e}")
        return None
    if not info.has_audio:
        found.append(f"media file '{given}' has no audio track; AcoustEmo needs speech")
    return info.duration_s


def _utterances(d: dict, root: Path, duration_s: float | None, found: list[str], resolve: bool) -> tuple[list[Utterance], str]:
    if "subtitles" in d:
        return _subtitle_utterances(d, root, duration_s, found, resolve)
    if "utterances" not in d:
        return [], "none"
    if not isinstance(d["utterances"], list):
        found.append("'utterances' must be a list of {\"start\", \"end\", \"speaker\", \"text\"}")
        return [], "manifest"
    utts = []
    for k, u in enumerate(d["utterances"], start=1):
        problem = _utterance_problem(u, duration_s)
        if problem:
            found.append(f"utterance {k}: {problem}")
        else:
            utts.append(Utterance.from_json(u))
    return utts, str(d.get("timestamps_source") or "manifest")


def _utterance_problem(u, duration_s: float | None) -> str:
    if not isinstance(u, dict):
        return "must be an object with start, end, speaker, text"
    times = [u.get("start"), u.get("end")]
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
        return f"start/end must be numbers of seconds, got start={times[0]!r} end={times[1]!r}"
    start_s, end_s = times
    if start_s < 0:
        return f"negative start time {start_s}"
    if end_s < start_s:
        return f"ends before it starts ({start_s} -> {end_s})"
    if duration_s is not None and end_s > duration_s + TIME_TOLERANCE_S:
        return f"ends at {end_s} s, after the media's end ({duration_s:.3f} s)"
    if not isinstance(u.get("text", ""), str) or not isinstance(u.get("speaker", ""), str):
        return "'speaker' and 'text' must be strings"
    return ""


def _subtitle_utterances(d, root, duration_s, found, resolve) -> tuple[list[Utterance], str]:
    from acoustemo.data.subtitles import is_timed, read_subtitles, read_untimed

    if not isinstance(d["subtitles"], str):
        found.append("'subtitles' must be a path string")
        return [], "manifest"
    sub = (root / d["subtitles"]).resolve()
    if not sub.is_file():
        found.append(f"subtitle file '{d['subtitles']}' not found (looked for {sub})")
        return [], "subtitles"
    try:
        if is_timed(sub):
            if duration_s is None and (root / d["media"]).is_file():
                from acoustemo.data.media import probe

                duration_s = probe(root / d["media"]).duration_s  # cues are checked against the media's end
            utts, warnings = read_subtitles(sub, duration_s)
            for warning in warnings:  # repairs are not problems, but must not pass unseen
                log.warning("%s", warning)
            return utts, "subtitles"
        lines = read_untimed(sub)
        if not resolve:
            return [Utterance(0.0, 0.0, line.speaker, line.text) for line in lines], "unresolved"
        from acoustemo.data.segmentation import utterances_for

        utts, source, warnings = utterances_for(root / d["media"], sub, duration_s)
        for warning in warnings:
            log.warning("%s", warning)
        return utts, source
    except AcoustEmoError as e:
        found.append(f"subtitles '{d['subtitles']}': {e}")
        return [], "subtitles"


def _check_fields(d: dict, utts: list[Utterance], found: list[str]) -> None:
    labels = d.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        found.append(f"'labels' must be a list of non-empty strings like [\"happy\", \"relaxed\"], got {labels!r}")
    if not isinstance(d.get("description", ""), str):
        found.append("'description' must be a string")
    target = d.get("target_speaker")
    if target is not None:
        speakers = sorted({u.speaker for u in utts if u.speaker})
        if not isinstance(target, str):
            found.append("'target_speaker' must be a string")
        elif speakers and target not in speakers:
            found.append(f"target_speaker '{target}' is not among the speakers {speakers}")
        elif utts and not speakers:
            found.append(f"target_speaker '{target}' is given but no utterance names a speaker")
