"""Features of a whole long recording, extracted once into the feature cache and read back by rows.

    feats = cached_recording_features(cache, encoder, "meeting.mp4", "meeting")   # acoustemo.timeline.RecordingFeatures
    feats.rows(a, b)                                                              # frames [a, b), (b - a, dim)
"""

from __future__ import annotations

from pathlib import Path


def cached_recording_features(cache, encoder, media: str | Path, clip_id: str):
    """RecordingFeatures of `media` from `cache`, computed and stored on a miss (one extraction per file)."""
    from acoustemo.timeline import RecordingFeatures

    feats = cache.get_or_compute(media, encoder, clip_id)
    release = getattr(encoder, "release", None)
    if release is not None:  # the Whisper runtime slows the LLM's decoding while it is loaded (infer.Predictor)
        release()
    return RecordingFeatures.in_memory(feats)
