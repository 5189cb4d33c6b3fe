"""The explanation timeline (the paper's Figure 2): waveform, pitch, utterance windows with speakers, and the
utterance Q-Former's cross-attention over each window's frames, with the predicted emotions on top.

Uses matplotlib's object API on the Agg canvas (never pyplot), so it is safe to call from server threads.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acoustemo.data.segments import Utterance
from acoustemo.data.windows import frame_range

PITCH_RATE_HZ = 100.0  # librosa.yin hop when the caller passes no pitch track
PITCH_FMIN_HZ, PITCH_FMAX_HZ = 60.0, 500.0
_WAVE_BINS = 3000  # min/max envelope columns: a 10-minute clip draws as fast as a 3-second one
_SPEAKER_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
_ATTENTION_CMAP = "YlOrRd"


def plot_timeline(
    out_png: str | os.PathLike,
    waveform: np.ndarray,
    sample_rate_hz: int,
    utterances: Sequence[Utterance | dict],
    pitch_hz: np.ndarray | None = None,
    pitch_rate_hz: float | None = None,
    attention: Sequence[np.ndarray] | np.ndarray | None = None,
    attention_rate_hz: float | None = None,
    emotions: Sequence[str] = (),
    title: str = "",
) -> Path:
    """Draw the timeline and write it atomically to `out_png`; returns the path.

    waveform      (n,) float mono samples at `sample_rate_hz`.
    utterances    `Utterance`s or manifest dicts {"start", "end", "speaker", "text"} (seconds).
    pitch_hz      (P,) F0 in Hz at `pitch_rate_hz` frames per second, 0 or NaN where unvoiced; computed with
                  librosa.yin (masked by energy) when None.
    attention     the utterance Q-Former's cross-attention, one array per utterance window whose LAST axis is
                  that window's frames (`(F_i,)`, `(K, F_i)`, `(heads, K, F_i)`, ... — every leading axis is
                  averaged; frames past F_i are key padding and dropped). Window i starts at frame
                  `frame_range(start_i, end_i, attention_rate_hz, L)[0]` (Eq. 1), L = ceil(duration * rate).
                  A single 1-D array is taken as one weight per frame of the whole clip instead.
    """
    fig = timeline_figure(waveform, sample_rate_hz, utterances, pitch_hz, pitch_rate_hz, attention,
                          attention_rate_hz, emotions, title)
    return _save_png(fig, out_png)


def _save_png(fig, out_png: str | os.PathLike) -> Path:
    """Write a matplotlib Figure to `out_png` atomically (temp file + rename); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        FigureCanvasAgg(fig)
        fig.savefig(tmp, format="png", dpi=fig.dpi, facecolor="white")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def timeline_figure(
    waveform: np.ndarray,
    sample_rate_hz: int,
    utterances: Sequence[Utterance | dict],
    pitch_hz: np.ndarray | None = None,
    pitch_rate_hz: float | None = None,
    attention: Sequence[np.ndarray] | np.ndarray | None = None,
    attention_rate_hz: float | None = None,
    emotions: Sequence[str] = (),
    title: str = "",
):
    """The `matplotlib.figure.Figure` behind `plot_timeline`. Its axes carry labels ("waveform", "pitch",
    "attention", "attention-colorbar") so callers and tests can find the panels."""
    from matplotlib.figure import Figure

    wav = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    duration_s = max(len(wav) / sample_rate_hz, 1e-3)
    utts = [u if isinstance(u, Utterance) else Utterance.from_json(u) for u in utterances]
    colours = speaker_colours(utts)
    if pitch_hz is None:
        # ~6000 pitch frames at most: finer than the figure's pixels is wasted, and yin frames the whole signal
        pitch_hz, pitch_rate_hz = estimate_pitch(wav, sample_rate_hz, min(PITCH_RATE_HZ, 6000 / duration_s))
    elif not pitch_rate_hz or pitch_rate_hz <= 0:
        raise ValueError("pitch_hz was given without a positive pitch_rate_hz (frames per second)")
    track = attention_track(attention, attention_rate_hz, utts, duration_s) if attention is not None else None

    rows = [3.0, 1.6] + ([0.9] if track is not None else [])
    fig = Figure(figsize=(12, 2.2 + sum(rows) * 1.05), dpi=110, layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, height_ratios=rows)
    ax_wave, ax_pitch = axes[0], axes[1]
    for ax in axes:
        _shade_utterances(ax, utts, colours)
        ax.set_xlim(0, duration_s)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    _draw_waveform(ax_wave, wav, sample_rate_hz)
    _label_utterances(ax_wave, utts, colours, duration_s)
    _draw_pitch(ax_pitch, np.asarray(pitch_hz, dtype=np.float32).reshape(-1), float(pitch_rate_hz))
    if track is not None:
        _draw_attention(fig, axes[2], *track)
    axes[-1].set_xlabel("time (s)")
    _draw_header(fig, title, emotions, utts, colours)
    return fig


def speaker_colours(utterances: Sequence[Utterance]) -> dict[str, str]:
    """One colour per speaker, in order of first appearance (the palette repeats after 8 speakers)."""
    out: dict[str, str] = {}
    for u in utterances:
        if u.speaker not in out:
            out[u.speaker] = _SPEAKER_COLOURS[len(out) % len(_SPEAKER_COLOURS)]
    return out


def estimate_pitch(wav: np.ndarray, sample_rate_hz: int, rate_hz: float = PITCH_RATE_HZ) -> tuple[np.ndarray, float]:
    """F0 in Hz at `rate_hz` with librosa.yin, NaN where unvoiced.

    yin never says "unvoiced", so frames are dropped when quiet (RMS), noisy (zero-crossing rate of a fricative)
    or more than 20 % off their 5-frame median (yin's octave jumps); pyin would do this too but is ~30x slower.
    """
    import librosa
    from scipy.signal import medfilt

    hop = max(1, int(round(sample_rate_hz / rate_hz)))
    frame = 1 << math.ceil(math.log2(sample_rate_hz * 2.5 / PITCH_FMIN_HZ))  # >= 2.5 periods of the lowest F0
    if len(wav) < frame:
        return np.full(max(1, len(wav) // hop), np.nan, np.float32), sample_rate_hz / hop
    f0 = librosa.yin(wav, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=sample_rate_hz, frame_length=frame,
                     hop_length=hop, trough_threshold=0.1).astype(np.float32)
    n = len(f0)
    rms = librosa.feature.rms(y=wav, frame_length=frame, hop_length=hop)[0][:n]
    zcr = librosa.feature.zero_crossing_rate(wav, frame_length=frame, hop_length=hop)[0][:n]
    voiced = (rms >= max(0.08 * float(np.percentile(rms, 95)), 1e-4)) & (zcr < 0.3)
    median = medfilt(np.where(voiced, f0, 0.0), 5)
    voiced &= (median > 0) & (np.abs(f0 - median) <= 0.2 * median)
    f0[~voiced] = np.nan
    return f0, sample_rate_hz / hop


def attention_track(attention, rate_hz: float | None, utterances: Sequence[Utterance], duration_s: float):
    """Per-frame attention over the clip: (times_s (L+1,) frame edges, weights (L,) with NaN outside windows,
    in multiples of uniform attention so 1.0 means "no preference" whatever the window's length)."""
    if not rate_hz or rate_hz <= 0:
        raise ValueError("attention was given without a positive attention_rate_hz (frames per second)")
    n_frames = max(1, math.ceil(round(duration_s * rate_hz, 6)))
    if isinstance(attention, np.ndarray) and attention.ndim == 1:
        weights = attention.astype(np.float64)[:n_frames]
        weights = weights / max(np.nanmean(weights), 1e-12)
        n_frames = len(weights)
    else:
        if len(attention) != len(utterances):
            raise ValueError(f"attention has {len(attention)} windows but there are {len(utterances)} utterances; "
                             "pass one array per utterance window, in utterance order")
        weights = np.full(n_frames, np.nan)
        for u, att in zip(utterances, attention):
            a, b = frame_range(u.start_s, u.end_s, rate_hz, n_frames)
            w = np.asarray(att, dtype=np.float64)
            w = w.reshape(-1, w.shape[-1]).mean(axis=0)[: b - a]  # average queries/heads; drop key padding
            total = w.sum()
            if total > 0:
                weights[a : a + len(w)] = w / total * len(w)
    edges = np.arange(n_frames + 1) / rate_hz
    return edges, weights


def _shade_utterances(ax, utts, colours) -> None:
    for u in utts:
        ax.axvspan(u.start_s, u.end_s, color=colours[u.speaker], alpha=0.12, linewidth=0, zorder=0)


def _draw_waveform(ax, wav: np.ndarray, sr: int) -> None:
    ax.set_label("waveform")
    n = len(wav)
    bins = min(_WAVE_BINS, max(1, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    if n:
        lo = np.minimum.reduceat(wav, edges[:-1]) if n > bins else wav
        hi = np.maximum.reduceat(wav, edges[:-1]) if n > bins else wav
        t = (edges[:-1] if n > bins else np.arange(n)) / sr
        ax.fill_between(t, lo, hi, color="#3a3a3a", linewidth=0.4, step="post")
    peak = float(np.max(np.abs(wav))) if n else 1.0
    ax.set_ylim(-1.9 * max(peak, 1e-3), 1.15 * max(peak, 1e-3))  # room below for the utterance labels
    ax.set_ylabel("waveform")
    ax.set_yticks([])


def _label_utterances(ax, utts, colours, duration_s: float) -> None:
    """"speaker: text" under each window in the speaker's colour, wrapped to the window's width (2 lines at most).

    Two rows; a label goes in the first row where it does not run into the previous one, and is left out when
    neither row has room (a long clip's speakers are still in the shading and the legend).
    """
    chars_per_s = 150 / duration_s  # ~150 characters of 8-pt bold text across a 12-inch axis
    row_end_s = [-math.inf, -math.inf]
    for u in utts:
        room = int(u.duration_s * chars_per_s)
        speaker = u.speaker or "?"
        if room < len(speaker) + 1:
            continue
        label = f"{speaker}: {u.text}" if u.text and room >= 12 else speaker
        lines = textwrap.wrap(label, width=max(room, 8)) or [label]
        if len(lines) > 2:
            lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width=max(room, 8), placeholder="…")]
        free = [r for r in (0, 1) if row_end_s[r] <= u.start_s]
        if not free:
            continue
        row = free[0]
        row_end_s[row] = u.start_s + (max(map(len, lines)) + 2) / chars_per_s
        ax.annotate("\n".join(lines), (u.start_s, 0.02 + 0.11 * row), xycoords=("data", "axes fraction"),
                    xytext=(2, 0), textcoords="offset points", va="bottom", fontsize=8, color=colours[u.speaker],
                    fontweight="bold", linespacing=1.1, annotation_clip=True)


def _draw_pitch(ax, f0: np.ndarray, rate_hz: float) -> None:
    ax.set_label("pitch")
    f0 = np.where(np.isfinite(f0) & (f0 > 0), f0, np.nan)
    t = np.arange(len(f0)) / rate_hz
    ax.plot(t, f0, color="#2a6f97", linewidth=1.4)
    voiced = f0[np.isfinite(f0)]
    if voiced.size:
        lo, hi = np.percentile(voiced, [2, 98])
        pad = max(10.0, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), hi + pad)
    else:
        ax.text(0.5, 0.5, "no voiced frames", transform=ax.transAxes, ha="center", va="center", color="#888888")
    ax.set_ylabel("pitch (Hz)")


def _draw_attention(fig, ax, edges: np.ndarray, weights: np.ndarray) -> None:
    """A heat strip (colour = attention relative to uniform) with the same curve drawn over it."""
    ax.set_label("attention")
    finite = weights[np.isfinite(weights)]
    vmax = max(2.0, float(finite.max())) if finite.size else 2.0
    masked = np.ma.masked_invalid(weights[None, :])
    mesh = ax.pcolormesh(edges, [0, 1], masked, cmap=_ATTENTION_CMAP, vmin=0.0, vmax=vmax, shading="flat")
    centres = (edges[:-1] + edges[1:]) / 2
    ax.plot(centres, weights / vmax, color="#0b3d91", linewidth=1.0, alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("Q-Former\nattention", rotation=0, ha="right", va="center")
    # one marker per window at its most-attended frame: where the Q-Former "looked"
    inside = np.isfinite(weights)
    starts = np.flatnonzero(inside & ~np.concatenate([[False], inside[:-1]]))
    ends = np.flatnonzero(inside & ~np.concatenate([inside[1:], [False]])) + 1
    for a, b in zip(starts, ends):
        k = a + int(np.argmax(weights[a:b]))
        ax.plot(centres[k], 0.0, marker="^", markersize=7, color="#0b3d91", clip_on=False, zorder=5)
    bar = fig.colorbar(mesh, ax=ax, orientation="vertical", fraction=0.02, pad=0.01)
    bar.ax.set_label("attention-colorbar")
    bar.set_label("× uniform", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _draw_header(fig, title: str, emotions: Sequence[str], utts, colours) -> None:
    fig.suptitle(title or "AcoustEmo explanation timeline", x=0.01, ha="left", fontsize=13, fontweight="bold")
    label = ", ".join(emotions) if emotions else "(none)"
    fig.text(0.99, 0.985, f"Predicted: {label}", ha="right", va="top", fontsize=11,
             bbox=dict(boxstyle="round,pad=0.4", facecolor="#fff4e0", edgecolor="#e0a040"))
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, alpha=0.5, label=s or "unknown speaker") for s, c in colours.items()]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), frameon=False,
                   fontsize=8)


def plot_prediction(out_png: str | os.PathLike, media, prediction, predictor=None,
                    speaker: str | None = None, title: str | None = None) -> Path:
    """The timeline for a `predict_clip` result (`acoustemo.predictor.Prediction`): audio from `media` (a path, or
    the Media the prediction opened, whose audio and hash are reused), utterances and emotions from `prediction`.
    With the loaded `predictor` (`acoustemo.predictor.Predictor`) it also draws the utterance Q-Former's
    cross-attention and the pitch the model was given (its prosody stream); without it, pitch comes from
    librosa.yin and there is no attention strip."""
    from acoustemo.data.media import SAMPLE_RATE_HZ, open_media

    media = open_media(media)
    clip = _clip_of(media.path, prediction, speaker)
    extra = model_timeline_inputs(predictor, clip, media) if predictor is not None else {}
    if title is None:
        title = media.name + (f" — target speaker: {speaker}" if speaker else "")
    return plot_timeline(out_png, media.audio, SAMPLE_RATE_HZ, prediction.utterances,
                         emotions=prediction.emotions, title=title, **extra)


def model_timeline_inputs(predictor, clip, media=None) -> dict:
    """plot_timeline's keyword arguments that come from the model: `attention` (one (K, F_i) array per utterance
    window: the utterance Q-Former's last-block cross-attention, head-averaged, on exactly the windows the
    dataset cuts for this clip) with `attention_rate_hz`, and `pitch_hz` / `pitch_rate_hz` from the prosody stream
    of the cached features. Keys are left out when the model or the encoder has no such thing."""
    import torch

    from acoustemo.data.dataset import AcoustEmoDataset
    from acoustemo.model.qformer import pad_windows

    model, cfg = predictor.model, predictor.model.cfg
    load_acoustic = lambda c: predictor.load_acoustic(c, media)  # noqa: E731  (`media`: the clip's opened file)
    feats = load_acoustic(clip)  # a cache hit after predict_clip
    out = _prosody_pitch(feats)
    # fixed-window ablation windows are not utterances, and no-utterance has none: nothing to align
    if not (cfg.uses_windows and cfg.ablation != "fixed-window" and clip.utterances):
        return out
    example = AcoustEmoDataset([clip], load_acoustic, lambda c: predictor.load_visual(c, media), model.tokenizer,
                               cfg, with_answers=False)[0]
    windows, mask = pad_windows(example["windows"])
    param = next(model.utt_qformer.parameters())
    with torch.inference_mode():
        _, attn = model.utt_qformer(windows.to(param.device, param.dtype), mask.to(param.device),
                                    return_attention=True)
    out["attention"] = [a[:, : len(w)].float().cpu().numpy() for a, w in zip(attn, example["windows"])]
    out["attention_rate_hz"] = float(feats.frame_rate_hz)
    return out


def _prosody_pitch(feats) -> dict:
    """F0 in Hz from the "prosody" stream (channel f0 = log2(F0 / 100 Hz), NaN where periodicity <= 0.5)."""
    from acoustemo.features.prosody import CHANNELS

    offset = 0
    for name, width in feats.streams:
        if name == "prosody" and width == len(CHANNELS):
            x = np.asarray(feats.data[:, offset : offset + width], dtype=np.float64)
            f0 = 100.0 * np.exp2(x[:, CHANNELS.index("f0")])
            f0[x[:, CHANNELS.index("periodicity")] <= 0.5] = np.nan  # the prosody encoder's voicing threshold
            return {"pitch_hz": f0, "pitch_rate_hz": float(feats.frame_rate_hz)}
        offset += int(width)
    return {}


def _clip_of(media: Path, prediction, speaker: str | None):
    from acoustemo.data.segments import Clip

    return Clip(prediction.id, str(media.resolve()), list(prediction.utterances), target_speaker=speaker or None,
                timestamps_source=prediction.timestamps_source)


# Long recordings (acoustemo.timeline): one lane per speaker, windows coloured by emotion ---------------------
_EMOTION_COLOURS = {"neutral": "#BDBDBD", "sad": "#4C72B0", "excited": "#F28E2B", "anxious": "#8172B3",
                    "angry": "#C44E52", "surprised": "#EDC948", "happy": "#59A14F", "calm": "#76B7B2",
                    "fearful": "#B07AA1", "disgusted": "#9C755F", "frustrated": "#E15759", "worried": "#9D7660"}
_NO_EMOTION = "#F0F0F0"  # a window whose answer names no emotion
_OTHER_COLOURS = ["#17BECF", "#BCBD22", "#7F7F7F", "#FF9DA7", "#AEC7E8", "#98DF8A", "#FFBB78", "#C5B0D5"]


def emotion_colours(emotions: Sequence[str]) -> dict[str, str]:
    """A fixed colour per known emotion; other words take the spare palette in sorted order (stable per plot)."""
    out, spare = {}, iter(_OTHER_COLOURS * (1 + len(emotions) // len(_OTHER_COLOURS)))
    for e in sorted(set(emotions)):
        out[e] = _EMOTION_COLOURS.get(e) or next(spare)
    return out


def recording_timeline_figure(timeline, title: str | None = None):
    """The Figure for a Timeline: per speaker a lane whose windows are stripes of their emotions (one stripe per
    emotion, stacked), with the speaker's utterances as a thin strip underneath. Everything is one rectangle per
    window or utterance, so an hour draws as fast and as legibly as a minute. Axes labels: "lanes"."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    lanes = timeline.speakers or [""]
    colours = emotion_colours([e for entry in timeline.entries for e in entry.emotions])
    fig = Figure(figsize=(14, 1.4 + 0.9 * len(lanes)), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1, label="lanes")
    for row, lane in enumerate(lanes):
        y = len(lanes) - 1 - row
        mine = [e for e in timeline.entries if e.speaker == lane]
        for entry in mine:
            words = entry.emotions or ["(none)"]
            height = 0.62 / len(words)
            for k, word in enumerate(words):
                ax.broken_barh([(entry.start_s, max(entry.end_s - entry.start_s, 1e-3))], (y - 0.2 + k * height, height),
                               facecolors=colours.get(word, _NO_EMOTION), edgecolors="white" if entry.emotions
                               else "#AAAAAA", linewidth=0.6)
        speech = [(u.start_s, u.end_s - u.start_s) for u in timeline.utterances if u.speaker == lane]
        ax.broken_barh(speech, (y - 0.34, 0.08), facecolors="#444444", linewidth=0)
    ax.set_yticks(range(len(lanes)), [s or "(unnamed)" for s in reversed(lanes)])
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlim(0, max(timeline.duration_s, max((e.end_s for e in timeline.entries), default=1.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda s, _: _clock_label(s, timeline.duration_s)))
    ax.set_xlabel("time (file clock)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title if title is not None else f"{Path(timeline.media).name}: emotions per speaker, "
                 f"{len(timeline.windows)} windows (dark strip: speech)", fontsize=10)
    handles = [Patch(facecolor=c, label=e) for e, c in sorted(colours.items(), key=lambda kv: kv[0])]
    if any(not entry.emotions for entry in timeline.entries):
        handles.append(Patch(facecolor=_NO_EMOTION, edgecolor="#AAAAAA", label="(none)"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 10), frameon=False, fontsize=8)
    return fig


def plot_recording_timeline(out_png: str | os.PathLike, timeline, title: str | None = None) -> Path:
    """Draw `recording_timeline_figure(timeline)` and write it atomically to `out_png`; returns the path."""
    return _save_png(recording_timeline_figure(timeline, title), out_png)


def _clock_label(seconds: float, duration_s: float) -> str:
    seconds = max(seconds, 0.0)
    if duration_s >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
