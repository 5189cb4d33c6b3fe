"""Features of a whole long recording in bounded memory: decoded and encoded chunk by chunk, written to the feature
cache as they come, read back by rows.

    feats = cached_recording_features(cache, encoder, "meeting.mp4", "meeting")   # RecordingFeatures
    feats.rows(a, b)                                                              # frames [a, b), (b - a, dim)
    feats.window(a, b)                                                            # the same rows as Features

The default stack streams exactly: Whisper encodes independent 30 s windows, so chunks of a multiple of 30 s
give the same windows; CREPE and the loudness meter see 64 ms around each frame, so a chunk is encoded with
MARGIN samples of its neighbours and only its own frames are kept; the prosody channels that look further
(interpolation, 3 s medians, band filters) are computed at the end from the whole file's F0, periodicity and
loudness, which are 3 floats a frame. The result equals one whole-file extraction up to float rounding (tested),
so it is stored under the same cache key. Other encoders are extracted whole (FeatureCache.get_or_compute).

Memory for an hour at 50 Hz: the chunk's audio (120 s, 7.7 MB) and CREPE frames (~75 MB), the Whisper rows of
the chunk (12 MB, then on disk), 3 x 180k prosody floats; the cache file is assembled block by block and windows
read only their rows (safetensors get_slice).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ, open_media
from acoustemo.errors import EncoderError, MediaError
from acoustemo.features.base import Features

CHUNK_S = 120  # a multiple of Whisper's 30 s window
MARGIN = 1280  # samples of context each side of a chunk (4 frames >= CREPE's 1024-sample window)
_HOP = 320  # samples per 20 ms frame


@dataclass
class RecordingFeatures:
    """Frame features of a whole recording, extracted once; windows read rows [a, b) of them."""

    frame_rate_hz: float
    num_frames: int
    streams: list[tuple[str, int]]
    encoder_id: str
    duration_s: float
    rows: Callable[[int, int], np.ndarray]  # (a, b) -> (b - a, dim) float32

    @classmethod
    def in_memory(cls, feats: Features) -> "RecordingFeatures":
        data = feats.data
        return cls(float(feats.frame_rate_hz), int(data.shape[0]), list(feats.streams), feats.encoder_id,
                   float(feats.duration_s), lambda a, b: data[a:b])

    def window(self, a: int, b: int) -> Features:
        """The Features of frames [a, b), as the dataset expects them for one window's clip."""
        data = np.ascontiguousarray(self.rows(a, b), dtype=np.float32)
        return Features(data, self.frame_rate_hz, self.encoder_id, list(self.streams), (b - a) / self.frame_rate_hz)


def cached_recording_features(cache, encoder, media, clip_id: str, chunk_s: int = CHUNK_S,
                              timings: dict | None = None) -> RecordingFeatures:
    """RecordingFeatures of `media` (a path or an opened Media) from `cache`: read lazily if present, else
    extracted once (streamed for the default stack, whole otherwise) and stored. `timings` gets the seconds spent
    decoding / in Whisper / in the prosody stream / writing, when it streams."""
    media = open_media(media)
    found = open_cached(cache, encoder, media, clip_id)
    if found is not None:
        return found
    if _streamable(encoder):
        stream_to_cache(cache, encoder, media, clip_id, chunk_s, timings)
        found = open_cached(cache, encoder, media, clip_id)
        if found is None:
            raise EncoderError(f"{cache.path(clip_id, encoder)}: written but not readable back; this is a bug")
        return found
    feats = cache.get_or_compute(media, encoder, clip_id)
    _release(encoder)
    return RecordingFeatures.in_memory(feats)


def open_cached(cache, encoder, media, clip_id: str) -> RecordingFeatures | None:
    """A lazy RecordingFeatures over the cache file if it is valid for this media (a path or a Media) and
    encoder, else None."""
    from safetensors import safe_open

    from acoustemo.features.base import encoder_key

    path = cache.path(clip_id, encoder)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("acoustemo", "null"))
            shape = f.get_slice("features").get_shape()
    except Exception:  # unreadable: a miss, re-extracted and replaced
        return None
    if not isinstance(meta, dict) or meta.get("encoder_key") != encoder_key(encoder):
        return None
    if meta.get("media_sha256") != open_media(media).sha256:
        return None

    def rows(a: int, b: int) -> np.ndarray:
        with safe_open(str(path), framework="numpy") as f:
            return f.get_slice("features")[a:b]

    return RecordingFeatures(float(meta["frame_rate_hz"]), int(shape[0]), [(str(n), int(w)) for n, w in meta["streams"]],
                             meta["encoder_id"], float(meta["duration_s"]), rows)


def _streamable(encoder) -> bool:
    from acoustemo.features.stack import DefaultAcousticStack

    return isinstance(encoder, DefaultAcousticStack) and float(encoder.frame_rate_hz) == 50.0


def _release(encoder) -> None:
    release = getattr(encoder, "release", None)
    if release is not None:  # the Whisper runtime slows the LLM's decoding while it is loaded (predictor.Predictor)
        release()


# decoding ------------------------------------------------------------------------------------------------------
def stream_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> Iterator[np.ndarray]:
    """The first audio track as 16 kHz mono float32 pieces, in order, cut at the container's duration (as
    media.load_audio, which returns the concatenation), without holding the whole track."""
    import av

    from acoustemo.data.media import _duration_s, _open

    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: this file has no audio track; AcoustEmo needs speech (use a file with sound)")
        n_expected = round(_duration_s(container) * sample_rate_hz)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
        sent = 0

        def cut(frames) -> Iterator[np.ndarray]:
            nonlocal sent
            for f in frames:
                x = f.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                if n_expected > 0:
                    x = x[: max(n_expected - sent, 0)]
                sent += len(x)
                if len(x):
                    yield x

        try:
            for frame in container.decode(container.streams.audio[0]):
                yield from cut(resampler.resample(frame))
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: the audio track is corrupt and stops decoding ({e.strerror}); re-export the file") from None
        yield from cut(resampler.resample(None))
    if sent == 0:
        raise MediaError(f"{path}: the audio track holds no decodable samples; re-export the file")


def _audio_pieces(media) -> Iterator[np.ndarray]:
    """The audio of a Media in order: 10 s pieces of it when it is decoded already (e.g. for VAD), else streamed
    from the file (the same samples either way)."""
    if not media.decoded:
        yield from stream_audio(media.path)
        return
    audio, step = media.audio, 10 * SAMPLE_RATE_HZ
    for a in range(0, len(audio), step):
        yield audio[a : a + step]


def chunks_with_margin(pieces: Iterator[np.ndarray], chunk: int, margin: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """(samples, left, own) per chunk: `own` samples of the chunk preceded by `left` (<= margin) and followed by up
    to `margin` samples of its neighbours. The buffer holds at most chunk + 2 * margin + one piece."""
    buf, start = np.zeros(0, np.float32), 0  # buf[0] is sample `start` of the file
    s0, done = 0, False
    while not done:
        need = s0 + chunk + margin
        while start + len(buf) < need:
            piece = next(pieces, None)
            if piece is None:
                done = True
                break
            buf = np.concatenate([buf, piece])
        end = min(s0 + chunk, start + len(buf))
        if end <= s0:
            return
        lo = max(s0 - margin, start)
        yield buf[lo - start : min(end + margin, start + len(buf)) - start], s0 - lo, end - s0
        if done and end >= start + len(buf):
            return
        s0 = end
        keep = s0 - margin - start
        if keep > 0:
            buf, start = buf[keep:], start + keep


# encoding + writing --------------------------------------------------------------------------------------------
def stream_to_cache(cache, encoder, media, clip_id: str, chunk_s: int = CHUNK_S,
                    timings: dict | None = None) -> Path:
    """Extract the default stack's features chunk by chunk into the cache file (see the module docstring)."""
    from acoustemo.features.base import num_frames
    from acoustemo.features.prosody import loudness_db, prosody_channels

    if chunk_s % 30:
        raise ValueError(f"chunk_s={chunk_s} must be a multiple of Whisper's 30 s window")
    media = open_media(media)
    t = timings if timings is not None else {}
    for k in ("decode", "whisper", "prosody", "write"):
        t.setdefault(k, 0.0)
    whisper = encoder.whisper
    cache.root.mkdir(parents=True, exist_ok=True)
    f0s, pers, louds, n_samples = [], [], [], 0
    with tempfile.TemporaryFile(dir=cache.root) as rows_file:
        for x, left, own in chunks_with_margin(_timed(_audio_pieces(media), t, "decode"), chunk_s * SAMPLE_RATE_HZ,
                                               MARGIN):
            n_samples += own
            frames = num_frames(own, 50.0)
            # Whisper on the chunk's own audio, CREPE on the chunk with its margins (at the same time where the
            # stack runs them concurrently: then "whisper" times both); keep only the chunk's own frames
            start = time.perf_counter()
            skip = left // _HOP
            total = skip + frames
            rows, (f0, per) = encoder.whisper_and_pitch(x[left : left + own], x, total)
            rows = np.asarray(rows, dtype=np.float32)
            _check_finite(rows, encoder, clip_id)
            rows_file.write(np.ascontiguousarray(rows[:frames]).tobytes())
            t["whisper"] += time.perf_counter() - start
            start = time.perf_counter()
            f0s.append(f0[skip:])
            pers.append(per[skip:])
            louds.append(loudness_db(x, total)[skip:])
            t["prosody"] += time.perf_counter() - start
        _release(encoder)
        start = time.perf_counter()
        pros = prosody_channels(np.concatenate(f0s), np.concatenate(pers), np.concatenate(louds))
        _check_finite(pros, encoder, clip_id)
        t["prosody"] += time.perf_counter() - start
        start = time.perf_counter()
        rows_file.seek(0)
        path = _write_safetensors(cache, encoder, media, clip_id, rows_file, whisper.dim, pros, n_samples)
        t["write"] += time.perf_counter() - start
        return path


def _timed(it: Iterator, timings: dict, key: str) -> Iterator:
    """`it`, adding the seconds spent producing each item to timings[key]."""
    while True:
        start = time.perf_counter()
        item = next(it, None)
        timings[key] += time.perf_counter() - start
        if item is None:
            return
        yield item


def _check_finite(x: np.ndarray, encoder, clip_id: str) -> None:
    if not np.isfinite(x).all():
        raise EncoderError(f"encoder '{encoder.id}' returned NaN/inf features for {clip_id}; not cached. This is a bug "
                           "in the encoder: report it with the media file")


def _write_safetensors(cache, encoder, media, clip_id: str, rows_file, whisper_dim: int, prosody: np.ndarray,
                       n_samples: int, block: int = 8192) -> Path:
    """The cache file, with FeatureCache.save's metadata, written block by block (safetensors layout: u64 header
    size, JSON header, raw little-endian rows), to a temporary name and then renamed."""
    from acoustemo.features.base import encoder_key
    from acoustemo.features.cache import FORMAT

    media = open_media(media)
    L, dim = len(prosody), whisper_dim + prosody.shape[1]
    meta = {"encoder_version": encoder.version, "settings": encoder.settings(), "encoder_key": encoder_key(encoder),
            "media_sha256": media.sha256, "media_path": str(media.path), "clip_id": clip_id,
            "encoder_id": encoder.id, "frame_rate_hz": float(encoder.frame_rate_hz), "dim": dim,
            "streams": [list(s) for s in encoder.streams], "duration_s": n_samples / SAMPLE_RATE_HZ, "format": FORMAT}
    header = {"__metadata__": {"acoustemo": json.dumps(meta, sort_keys=True)},
              "features": {"dtype": "F32", "shape": [L, dim], "data_offsets": [0, L * dim * 4]}}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path = cache.path(clip_id, encoder)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            for a in range(0, L, block):
                b = min(a + block, L)
                whisper = np.frombuffer(rows_file.read((b - a) * whisper_dim * 4), dtype=np.float32)
                if len(whisper) != (b - a) * whisper_dim:
                    raise EncoderError(f"{clip_id}: {L} prosody frames but fewer Whisper frames; this is a bug")
                out.write(np.hstack([whisper.reshape(b - a, whisper_dim), prosody[a:b]]).astype("<f4").tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
