"""Recordings of any length: an emotion timeline per speaker, and a summary over the whole recording.

    tl = predict_media("interview.mp4", subtitles="interview.srt", model=predictor)   # Timeline, or a Prediction
    tl.entries[0].start_s, tl.entries[0].speaker, tl.entries[0].emotions, tl.entries[0].explanation
    tl.summary()["Anna"].emotions[0]          # EmotionShare("calm", share_time=0.62, share_windows=0.6, ...)
    tl.to_json()                              # what `acoustemo predict --json` writes (and a server can send)

How a long recording is answered:
1. Utterances come from the subtitles, or VAD + ASR (acoustemo.data.segmentation), as for a short clip.
2. They are split into context windows (acoustemo.data.longform.plan_windows): whole utterances cut at turn
   boundaries, each window within the model's token budget (max_seq_len at the full K tokens per utterance, plus
   the room kept for the answer) and TimelineConfig.max_span_s, with the preceding utterance or two as context.
3. Acoustic features are extracted ONCE for the whole file (the feature cache; long files are streamed, see
   acoustemo.features.stream) and each window's frames are a slice [a, b) of them: Eq. (1) on the file's clock.
   A window's prompt states times from the start of its first frame, t0 = a / frame rate (the clips the model
   was trained on start at 0), so the frames the dataset cuts at those shifted times are exactly the file's.
4. Each window is asked about its target speaker, or about every speaker who speaks in it (the utterances it
   answers for, not its context) when no speaker is given, in batches. Times in the answer's explanation are
   shifted back onto the file's clock.
A dialogue that fits in one window is a short clip: predict_media returns today's single Prediction for it.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.data.longform import ContextWindow, plan_windows, prompt_token_counter
from acoustemo.data.media import Media, open_media
from acoustemo.data.segmentation import utterances_for
from acoustemo.data.segments import Clip, Utterance
from acoustemo.data.windows import frame_range
from acoustemo.errors import ConfigError, MediaError
from acoustemo.features.stream import RecordingFeatures, cached_recording_features
from acoustemo.predictor import Prediction, Predictor, answer_clip, as_predictor


@dataclass
class TimelineConfig:
    max_span_s: float = 30.0  # longest stretch of dialogue one window answers for (first start to last end)
    context_utterances: int = 2  # preceding utterances shown before a window's own, where they fit
    batch_size: int = 4  # windows x speakers per generation batch (1 = one at a time, with checked drafts)

    def __post_init__(self):
        if not 5.0 <= self.max_span_s <= 600.0:
            raise ConfigError(f"max_span_s={self.max_span_s} must be within 5-600 s (--max-span; 30-60 s suits the "
                              "shipped checkpoint, trained on ~8 s clips)")
        if self.context_utterances < 0:
            raise ConfigError(f"context_utterances={self.context_utterances} must be >= 0 (--context)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1 (--batch-size)")


@dataclass
class TimelineEntry:
    window: int
    speaker: str  # "" when the utterances carry no speaker names (VAD + ASR): the question asks for "the main speaker"
    start_s: float  # the window's own utterances (not its context), on the file's clock
    end_s: float
    emotions: list[str]
    explanation: str  # times shifted onto the file's clock
    answer: str  # the generated text, as the model wrote it (times relative to the window's origin_s)
    speaking_s: float  # this speaker's utterance time inside the window
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"window": self.window, "speaker": self.speaker, "start": round(self.start_s, 3),
                "end": round(self.end_s, 3), "emotions": self.emotions, "explanation": self.explanation,
                "answer": self.answer, "speaking_s": round(self.speaking_s, 3), "warnings": self.warnings}


@dataclass
class EmotionShare:
    emotion: str
    seconds: float  # the speaker's speaking time in windows that name this emotion
    windows: int
    share_time: float  # seconds / the speaker's speaking time in answered windows
    share_windows: float  # windows / the speaker's answered windows

    def to_json(self) -> dict:
        return {"emotion": self.emotion, "seconds": round(self.seconds, 2), "windows": self.windows,
                "share_time": round(self.share_time, 4), "share_windows": round(self.share_windows, 4)}


@dataclass
class SpeakerSummary:
    speaker: str
    windows: int
    speaking_s: float
    emotions: list[EmotionShare]  # most time first

    def to_json(self) -> dict:
        return {"windows": self.windows, "speaking_s": round(self.speaking_s, 2),
                "emotions": [e.to_json() for e in self.emotions]}


@dataclass
class Timeline:
    id: str
    media: str
    duration_s: float
    utterances: list[Utterance]
    windows: list[ContextWindow]
    origins_s: list[float]  # per window: t0, the file time its prompt counts from
    entries: list[TimelineEntry]
    timestamps_source: str
    model: str
    config: TimelineConfig
    target_speaker: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings_s: dict = field(default_factory=dict)  # "features" (decoding included), "plan", "llm"

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(e.speaker for e in self.entries))

    def summary(self) -> dict[str, SpeakerSummary]:
        return summarise(self.entries)

    def window_span_s(self, w: ContextWindow) -> tuple[float, float]:
        own = [self.utterances[i] for i in w.answered]
        return min(u.start_s for u in own), max(u.end_s for u in own)

    def to_json(self) -> dict:
        def window(w: ContextWindow, t0: float) -> dict:
            start_s, end_s = self.window_span_s(w)
            return {"index": w.index, "start": round(start_s, 3), "end": round(end_s, 3),
                    "utterances": list(w.answered), "context": list(w.context), "origin_s": round(t0, 3)}

        return {
            "kind": "timeline", "id": self.id, "media": self.media, "duration_s": round(self.duration_s, 3),
            "model": self.model, "timestamps_source": self.timestamps_source, "target_speaker": self.target_speaker,
            "config": {"max_span_s": self.config.max_span_s, "context_utterances": self.config.context_utterances,
                       "batch_size": self.config.batch_size},
            "speakers": self.speakers,
            "utterances": [u.to_json() for u in self.utterances],
            "windows": [window(w, t0) for w, t0 in zip(self.windows, self.origins_s)],
            "timeline": [e.to_json() for e in self.entries],
            "summary": {s: v.to_json() for s, v in self.summary().items()},
            "warnings": self.warnings, "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def summarise(entries: list[TimelineEntry]) -> dict[str, SpeakerSummary]:
    """Per speaker: each emotion's share of the speaker's speaking time and of its answered windows."""
    out = {}
    for speaker in dict.fromkeys(e.speaker for e in entries):
        mine = [e for e in entries if e.speaker == speaker]
        total_s = sum(e.speaking_s for e in mine)
        seconds: dict[str, float] = {}
        count: dict[str, int] = {}
        for e in mine:
            for emotion in e.emotions:
                seconds[emotion] = seconds.get(emotion, 0.0) + e.speaking_s
                count[emotion] = count.get(emotion, 0) + 1
        shares = [EmotionShare(k, seconds[k], count[k], seconds[k] / total_s if total_s > 0 else 0.0,
                               count[k] / len(mine)) for k in seconds]
        shares.sort(key=lambda s: (-s.seconds, -s.windows, s.emotion))
        out[speaker] = SpeakerSummary(speaker, len(mine), total_s, shares)
    return out


def load_recording_features(predictor, media, clip_id: str, timings: dict | None = None) -> RecordingFeatures:
    """The acoustic features of the whole file (a path or an opened Media) from the predictor's cache, computed
    (streamed) on a miss."""
    return cached_recording_features(predictor.cache, predictor.acoustic, media, clip_id, timings=timings)


# prediction ----------------------------------------------------------------------------------------------------
def predict_media(media, subtitles: str | os.PathLike | None = None, speaker: str | None = None,
                  model: Predictor | str | os.PathLike | None = None, config: TimelineConfig | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  clip_id: str | None = None) -> Prediction | Timeline:
    """One media file (a path or an opened Media) of any length: a Prediction (acoustemo.predictor) when its
    dialogue fits one window, else a Timeline. `model`: a loaded Predictor, a model folder, or None for the shipped
    default. Raises MediaError when no speech is found and ConfigError for a --speaker who never speaks. The file
    is probed, hashed and decoded once on the way (acoustemo.data.media.Media)."""
    predictor = as_predictor(model)
    config = config or TimelineConfig()
    media = open_media(media)
    utts, source, notes = utterances_for(media, subtitles)
    check_utterances(media.path, utts, speaker, source)
    notes += coverage_warnings(utts, media.duration_s, subtitles, config.max_span_s)
    clip_id = clip_id or media.path.stem
    windows = plan_for(predictor, utts, speaker, config)
    if len(windows) == 1:
        clip = Clip(clip_id, str(media.path), utts, target_speaker=speaker or None, timestamps_source=source)
        return answer_clip(predictor, clip, media, notes)
    return predict_timeline(media, utts, predictor, speaker, config, source, notes, clip_id, progress,
                            windows=windows, duration_s=media.duration_s)


def check_utterances(media, utts: list[Utterance], speaker: str | None, source: str) -> None:
    """Clear errors for a recording with no speech and for a target speaker who never speaks."""
    if not utts:
        how = "the subtitles have no cues" if source == "subtitles" else "voice activity detection found no speech"
        raise MediaError(f"{media}: no utterances ({how}), so there is nothing to answer; check that the file has "
                         "audible speech, or give --subtitles with the times people speak")
    names = sorted({u.speaker for u in utts if u.speaker})
    if speaker and names and speaker not in names:
        counts = {n: sum(u.speaker == n for u in utts) for n in names}
        listed = ", ".join(f"{n!r} ({c} utterance{'s' * (c != 1)})" for n, c in counts.items())
        raise ConfigError(f"--speaker {speaker!r} never speaks in {Path(media).name}; its speakers are {listed}; "
                          "pass one of them, or leave --speaker out to answer for every speaker")


def coverage_warnings(utts: list[Utterance], duration_s: float, subtitles, max_span_s: float) -> list[str]:
    """A note when timed subtitles leave a long stretch of the media uncovered (more than one window's span)."""
    if subtitles is None or not utts or duration_s <= 0:
        return []
    first_s, last_s = min(u.start_s for u in utts), max(u.end_s for u in utts)
    if first_s <= max_span_s and duration_s - last_s <= max_span_s:
        return []
    return [f"{subtitles}: the cues cover {first_s:.1f}-{last_s:.1f} s of the {duration_s:.1f} s media; the timeline "
            f"answers only for that part. If people speak outside it, give subtitles for the whole recording (or "
            f"leave --subtitles out to find the utterances with VAD + ASR)"]


def plan_for(predictor, utts: list[Utterance], speaker: str | None, config: TimelineConfig) -> list[ContextWindow]:
    """plan_windows with the predictor's model: its prompt, tokenizer, max_seq_len and frame rate."""
    cfg = predictor.model.cfg
    names = [speaker] if speaker else [u.speaker for u in utts if u.speaker]
    longest = max(names, key=len, default=None)
    count = prompt_token_counter(cfg, predictor.model.tokenizer, longest, float(predictor.acoustic.frame_rate_hz),
                                 with_video=cfg.visual_dim is not None)
    return plan_windows(utts, count, cfg.max_seq_len, config.max_span_s, config.context_utterances)


def predict_timeline(media, utterances: list[Utterance], predictor, speaker: str | None = None,
                     config: TimelineConfig | None = None, timestamps_source: str = "subtitles",
                     warnings: list[str] | tuple = (), clip_id: str | None = None,
                     progress: Callable[[int, int], None] | None = None, windows: list[ContextWindow] | None = None,
                     duration_s: float | None = None, every_speaker: bool = True) -> Timeline:
    """The timeline of one recording whose utterances are known (see the module docstring).

    `progress(done, total)` is called once the features are ready (done = 0) and after each batch (total =
    windows x speakers asked). Without `speaker`,
    every speaker of a window is asked about, or, with every_speaker=False, "the main speaker" once per window.
    `media`: a path or an opened Media."""
    config = config or TimelineConfig()
    media = open_media(media)
    clip_id = clip_id or media.path.stem
    check_utterances(media.path, utterances, speaker, timestamps_source)
    timings = {}
    start = time.perf_counter()
    windows = windows if windows is not None else plan_for(predictor, utterances, speaker, config)
    timings["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    feats = load_recording_features(predictor, media, clip_id, timings)
    visual = _visual_features(predictor, media, clip_id)
    timings["features"] = time.perf_counter() - start
    duration_s = duration_s if duration_s is not None else feats.duration_s

    origins, jobs = [], []
    for w in windows:
        a, b = _frames_of(w, utterances, feats)
        origins.append(a / feats.frame_rate_hz)
        for target, lane in _targets(w, utterances, speaker, every_speaker):
            jobs.append((w, a, b, target, lane))

    start = time.perf_counter()
    entries: list[TimelineEntry] = []
    if progress is not None:  # the features are ready: say how many answers are coming
        progress(0, len(jobs))
    for i in range(0, len(jobs), config.batch_size):
        entries += _answer(predictor, jobs[i : i + config.batch_size], utterances, feats, visual, media, clip_id)
        if progress is not None:
            progress(min(i + config.batch_size, len(jobs)), len(jobs))
    timings["llm"] = time.perf_counter() - start
    return Timeline(clip_id, str(media.path), duration_s, list(utterances), windows, origins, entries, timestamps_source,
                    str(predictor.model_dir), config, speaker or None, list(warnings), timings)


def _frames_of(w: ContextWindow, utts: list[Utterance], feats: RecordingFeatures) -> tuple[int, int]:
    """The window's frames [a, b) on the file's clock: Eq. (1) of its first and of its latest-ending utterance."""
    prompt = [utts[i] for i in w.prompt]
    rate, n = feats.frame_rate_hz, feats.num_frames
    a = frame_range(prompt[0].start_s, prompt[0].end_s, rate, n)[0]
    b = max(frame_range(u.start_s, u.end_s, rate, n)[1] for u in prompt)
    return a, b


def _targets(w: ContextWindow, utts: list[Utterance], speaker: str | None,
             every_speaker: bool = True) -> list[tuple[str | None, str]]:
    """(name the question asks about, timeline lane) for each answer the window gets."""
    own = [utts[i].speaker for i in w.answered]
    if not speaker and not every_speaker:
        return [(None, "")]  # a manifest clip without a target: "the main speaker", as for a short clip
    if speaker:
        named = any(u.speaker for u in utts)
        return [(speaker, speaker)] if speaker in own or not named else []
    return [(name or None, name) for name in dict.fromkeys(own)]


def _answer(predictor, jobs, utts, feats: RecordingFeatures, visual, media: Media, clip_id: str) -> list[TimelineEntry]:
    clips, acoustic, seen = [], {}, {}
    for w, a, b, target, lane in jobs:
        t0 = a / feats.frame_rate_hz
        shifted = [Utterance(utts[i].start_s - t0, utts[i].end_s - t0, utts[i].speaker, utts[i].text) for i in w.prompt]
        cid = f"{clip_id}@w{w.index:05d}:{lane}"
        if w.index not in seen:
            seen[w.index] = feats.window(a, b)
        acoustic[cid] = seen[w.index]
        clips.append(Clip(cid, str(media.path), shifted, target_speaker=target))
    load_visual = None
    if visual is not None:
        vis = {c.id: visual.window(math.floor(a / feats.frame_rate_hz * visual.frame_rate_hz),
                                   math.ceil(b / feats.frame_rate_hz * visual.frame_rate_hz))
               for c, (_, a, b, _, _) in zip(clips, jobs)}
        load_visual = lambda clip: vis[clip.id]  # noqa: E731
    preds = predictor.predict(clips, load_acoustic=lambda clip: acoustic[clip.id], load_visual=load_visual)
    out = []
    for (w, a, b, target, lane), p in zip(jobs, preds):
        t0 = a / feats.frame_rate_hz
        own = [utts[i] for i in w.answered]
        theirs = [u for u in own if u.speaker == lane] or ([] if lane or any(u.speaker for u in own) else own)
        theirs = own if target is None and not lane else theirs
        speaking = sum(u.duration_s for u in theirs)
        out.append(TimelineEntry(w.index, lane, min(u.start_s for u in own), max(u.end_s for u in own), p.emotions,
                                 shift_times(p.explanation, t0), p.answer, speaking, p.warnings))
    return out


def _visual_features(predictor, media: Media, clip_id: str):
    if predictor.visual is None:
        return None
    feats = predictor.load_visual(Clip(clip_id, str(media.path)), media)
    v = RecordingFeatures.in_memory(feats)
    return v if v.num_frames > 0 else None


_TIMES = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:(\s*[–-]\s*)(\d+(?:\.\d+)?))?(\s*s\b)")


def shift_times(text: str, offset_s: float) -> str:
    """Times written as "4.2 s" or "4.2–5.1 s" moved by offset_s (window clock -> file clock), same decimals."""
    if offset_s == 0:
        return text

    def move(number: str) -> str:
        decimals = len(number.split(".")[1]) if "." in number else 0
        return f"{float(number) + offset_s:.{decimals}f}"

    def sub(m: re.Match) -> str:
        second = f"{m.group(2)}{move(m.group(3))}" if m.group(3) else ""
        return f"{move(m.group(1))}{second}{m.group(4)}"

    return _TIMES.sub(sub, text)


# terminal ------------------------------------------------------------------------------------------------------
def clock(seconds: float) -> str:
    """m:ss.s under an hour, h:mm:ss beyond."""
    if round(seconds) >= 3600:
        h, rest = divmod(int(round(seconds)), 3600)
        return f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    m, tenths = divmod(round(seconds * 10), 600)  # round first: 599.98 s is 10:00.0, not 9:60.0
    return f"{m}:{tenths / 10:04.1f}"


def format_timeline(tl: Timeline, width: int = 100) -> str:
    """The compact terminal table: one row per window and speaker, then the per-speaker summary."""
    lanes = [s or "(unnamed)" for s in tl.speakers]
    name_w = max([len(s) for s in lanes] + [7])
    lines = [f"Timeline of {Path(tl.media).name} ({clock(tl.duration_s)}; utterances from {tl.timestamps_source}): "
             f"{len(tl.utterances)} utterances in {len(tl.windows)} windows of <= {tl.config.max_span_s:g} s",
             f"  {'start':>9} {'end':>9}  {'speaker':<{name_w}}  emotions"]
    for e in tl.entries:
        emotions = ", ".join(e.emotions) or "(none)"
        row = f"  {clock(e.start_s):>9} {clock(e.end_s):>9}  {(e.speaker or '(unnamed)'):<{name_w}}  {emotions}"
        lines.append(row if len(row) <= width else row[: width - 1] + "…")
    lines.append("Summary (share of the speaker's speaking time / of their windows):")
    for speaker, s in tl.summary().items():
        shares = ", ".join(f"{x.emotion} {x.share_time:.0%}/{x.share_windows:.0%}" for x in s.emotions[:6]) or "(none)"
        lines.append(f"  {(speaker or '(unnamed)'):<{name_w}}  {shares}  [{s.windows} windows, {s.speaking_s:.0f} s]")
    return "\n".join(lines)



# manifests -----------------------------------------------------------------------------------------------------
def split_clip(predictor, clip: Clip, config: TimelineConfig | None = None,
               media: Media | None = None) -> Timeline | None:
    """predict_manifest's long clips: the clip's Timeline when its dialogue does not fit one window, else None
    (the clip goes through the ordinary batch). Asks about the clip's target speaker, or "the main speaker".
    `media`: the clip's file already opened."""
    config = config or TimelineConfig()
    if not clip.utterances:
        return None
    windows = plan_for(predictor, clip.utterances, clip.target_speaker, config)
    if len(windows) <= 1:
        return None
    return predict_timeline(media or clip.media, clip.utterances, predictor, clip.target_speaker, config,
                            clip.timestamps_source, clip_id=clip.id, windows=windows, every_speaker=False)


def manifest_line(tl: Timeline) -> dict:
    """One predictions-file line for a split clip: {"id", "emotions", "explanation"} like any clip (the emotions
    of the target over the whole clip, most speaking time first; the windows' explanations in order, each with its
    time span) plus "windows": the per-window answers."""
    lane = tl.target_speaker or ""
    summary = tl.summary().get(lane)
    emotions = [e.emotion for e in summary.emotions] if summary else []
    mine = [e for e in tl.entries if e.speaker == lane]
    explanation = " ".join(f"[{e.start_s:.1f}-{e.end_s:.1f} s] {e.explanation}" for e in mine if e.explanation)
    windows = [{"start": round(e.start_s, 3), "end": round(e.end_s, 3), "emotions": e.emotions,
                "explanation": e.explanation} for e in mine]
    return {"id": tl.id, "emotions": emotions, "explanation": explanation, "windows": windows}
