"""The feature cache: one self-describing safetensors file per (clip, encoder).

    <root>/<clip id, sanitised>.<encoder key>.safetensors
        tensor "features" (L, dim) float32
        metadata {"acoustemo": JSON {encoder_id, encoder_version, settings, encoder_key, frame_rate_hz, dim,
                                     streams, duration_s, media_sha256, media_path, clip_id, format}}

A file is valid only if its encoder key (id + version + settings) and the sha256 of the media *content*
match; anything else is a miss, so a re-encoded video or a changed setting never serves stale features.
Files are written to `name.tmp-<pid>` and `os.replace`d, so a killed extraction leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ, Media, open_media
from acoustemo.errors import EncoderError
from acoustemo.features.base import Features, encoder_key

FORMAT = 1
_SUFFIX = ".safetensors"
def sanitise_id(clip_id: str) -> str:
    """A file-name-safe form of a clip id; a hash suffix keeps ids that differ only in odd characters apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id).strip("._") or "clip"
    if safe != clip_id or len(safe) > 100:
        safe = f"{safe[:100]}-{hashlib.sha256(clip_id.encode()).hexdigest()[:8]}"
    return safe


def save_features(path: str | Path, features: Features) -> Path:
    """Write `features` to `path` atomically (temporary file in the same folder, then os.replace)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**features.metadata, "encoder_id": features.encoder_id, "frame_rate_hz": features.frame_rate_hz,
            "dim": features.dim, "streams": [list(s) for s in features.streams], "duration_s": features.duration_s,
            "format": FORMAT}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        save_file({"features": np.ascontiguousarray(features.data, dtype=np.float32)}, str(tmp),
                  metadata={"acoustemo": json.dumps(meta, sort_keys=True)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_features(path: str | Path) -> Features:
    """Read one cache file back into Features (frame rate, streams and metadata from the file itself)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("acoustemo", "null"))
            data = f.get_tensor("features")
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise EncoderError(f"{path}: not a readable acoustemo feature file ({e}); delete it and run `acoustemo extract` again") from None
    if not isinstance(meta, dict) or "frame_rate_hz" not in meta:
        raise EncoderError(f"{path}: has no acoustemo metadata; it was not written by FeatureCache; delete it and re-extract")
    return Features(data=data, frame_rate_hz=float(meta["frame_rate_hz"]), encoder_id=meta["encoder_id"],
                    streams=[(str(n), int(w)) for n, w in meta["streams"]], duration_s=float(meta["duration_s"]), metadata=meta)


class FeatureCache:
    """Features per (clip, encoder) under `root`; see the module docstring for the file format."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def remove_stale_temp(self) -> int:
        """Delete `*.tmp-<pid>` files left by a killed writer (its pid no longer runs); returns how many."""
        removed = 0
        for tmp in self.root.glob(f"*{_SUFFIX}.tmp-*"):
            pid = tmp.name.rsplit(".tmp-", 1)[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def path(self, clip_id: str, encoder) -> Path:
        return self.root / f"{sanitise_id(clip_id)}.{encoder_key(encoder)}{_SUFFIX}"

    def load(self, clip_or_media, encoder, clip_id: str | None = None) -> Features | None:
        """Cached features of a Clip (or a media path, or an opened Media) if present and valid for this media and
        encoder, else None."""
        media, clip_id = _media_and_id(clip_or_media, clip_id)
        path = self.path(clip_id, encoder)
        if not path.is_file():
            return None
        try:
            features = load_features(path)
        except EncoderError:
            return None  # unreadable file: a miss, recomputed and replaced
        meta = features.metadata
        if meta.get("encoder_key") != encoder_key(encoder) or meta.get("media_sha256") != media.sha256:
            return None
        if not np.isfinite(features.data).all():  # written by an older encoder with the NaN-over-silence bug
            return None
        return features

    def save(self, clip_or_media, encoder, data: np.ndarray, duration_s: float, clip_id: str | None = None) -> Features:
        """Store encoder output for a clip; returns the Features as they will load back."""
        media, clip_id = _media_and_id(clip_or_media, clip_id)
        if data.ndim != 2 or data.shape[1] != encoder.dim:
            raise EncoderError(f"encoder '{encoder.id}' returned shape {data.shape}, expected (L, {encoder.dim}); this is a bug in the encoder")
        if not np.isfinite(data).all():
            bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
            raise EncoderError(f"encoder '{encoder.id}' returned NaN/inf features for {clip_id} at {len(bad)} frame(s) "
                               f"(first at {bad[0] / encoder.frame_rate_hz:.2f} s); not cached. This is a bug in the "
                               f"encoder: report it with the media file")
        meta = {"encoder_version": encoder.version, "settings": encoder.settings(), "encoder_key": encoder_key(encoder),
                "media_sha256": media.sha256, "media_path": str(media.path), "clip_id": clip_id}
        features = Features(data=data.astype(np.float32, copy=False), frame_rate_hz=float(encoder.frame_rate_hz),
                            encoder_id=encoder.id, streams=list(encoder.streams), duration_s=float(duration_s), metadata=meta)
        save_features(self.path(clip_id, encoder), features)
        return _with_stored_meta(features)

    def get_or_compute(self, media, encoder, clip_id: str | None = None, audio: np.ndarray | None = None) -> Features:
        """Cached features, or compute them (acoustic from the audio track, visual from sampled frames) and store.
        `media`: a path or an opened Media (whose hash and audio are then reused)."""
        media = open_media(media)
        found = self.load(media, encoder, clip_id)
        if found is not None:
            return found
        data, duration_s = compute(media, encoder, audio=audio)
        return self.save(media, encoder, data, duration_s, clip_id)


def compute(media, encoder, audio: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Run one encoder on one media file (a path or a Media): (features (L, dim), duration_s)."""
    media = open_media(media)
    if hasattr(encoder, "encode_frames"):
        from acoustemo.data.media import load_frames

        frames, _ = load_frames(media.path, encoder.frame_rate_hz, max_side_px=getattr(encoder, "max_side_px", None))
        return encoder.encode_frames(frames), media.duration_s
    if audio is None:
        audio = media.audio
    return encoder.encode(audio), len(audio) / SAMPLE_RATE_HZ


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_stored_meta(features: Features) -> Features:
    features.metadata = {**features.metadata, "encoder_id": features.encoder_id, "frame_rate_hz": features.frame_rate_hz,
                         "dim": features.dim, "streams": [list(s) for s in features.streams],
                         "duration_s": features.duration_s, "format": FORMAT}
    return features


def _media_and_id(clip_or_media, clip_id: str | None) -> tuple[Media, str]:
    if hasattr(clip_or_media, "media") and hasattr(clip_or_media, "id"):
        return open_media(clip_or_media.media), clip_id or clip_or_media.id
    media = open_media(clip_or_media)
    return media, clip_id or media.stem
