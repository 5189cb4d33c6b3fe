"""Extract and cache frozen-encoder features for many clips: progress, resume, a failure summary.

    report = extract(clips, FeatureCache("feats/"), get_acoustic_encoder("default"), shard=(0, 4))

Valid cache files are skipped, so a rerun after a kill (or with more shards) continues where it stopped:
files are written atomically, so a kill never leaves a half file that would be mistaken for a result.
A clip that fails is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from acoustemo.features.cache import FeatureCache, compute

log = logging.getLogger(__name__)


@dataclass
class ExtractReport:
    computed: list[str] = field(default_factory=list)  # "clip_id:encoder_id" computed in this run
    skipped: list[str] = field(default_factory=list)  # already valid in the cache
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    audio_s: float = 0.0  # seconds of media encoded in this run
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"{len(self.computed)} computed, {len(self.skipped)} already cached, {len(self.failed)} failed "
                 f"({self.audio_s:.1f} s of media in {self.wall_s:.1f} s)"]
        lines += [f"  FAILED {clip_id}: {reason}" for clip_id, reason in self.failed]
        return "\n".join(lines)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' (0-based i) -> (i, n)."""
    from acoustemo.errors import ConfigError

    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard '{text}' is not of the form i/n (e.g. 0/4 for the first of four shards)") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard '{text}': need 0 <= i < n (shards are numbered from 0)")
    return i, n


def extract(clips, cache: FeatureCache, acoustic, visual=None, shard: tuple[int, int] = (0, 1), progress: bool = True) -> ExtractReport:
    """Features for every clip of this shard (clip k belongs to shard k % n) with each encoder given."""
    encoders = [e for e in (acoustic, visual) if e is not None]
    mine = [c for k, c in enumerate(clips) if k % shard[1] == shard[0]]
    report, start = ExtractReport(), time.perf_counter()
    if cache.root.is_dir():
        cache.remove_stale_temp()
    bar = _progress(len(mine), progress)
    for clip in mine:
        try:
            _extract_clip(clip, cache, encoders, report)
        except Exception as e:  # one bad clip must not stop a long run; the reason goes in the summary
            reason = f"{type(e).__name__}: {e}"
            report.failed.append((clip.id, reason))
            log.warning("clip %s failed: %s", clip.id, reason)
        bar.update(1)
        bar.set_postfix(failed=len(report.failed), refresh=False)
    bar.close()
    report.wall_s = time.perf_counter() - start
    return report


def _extract_clip(clip, cache: FeatureCache, encoders: list, report: ExtractReport) -> None:
    from acoustemo.data.media import open_media

    media, counted = open_media(clip.media), False  # hashed and decoded once per clip, shared by the encoders
    for encoder in encoders:
        if cache.load(media, encoder, clip.id) is not None:
            report.skipped.append(f"{clip.id}:{encoder.id}")
            continue
        data, duration_s = compute(media, encoder)
        cache.save(media, encoder, data, duration_s, clip.id)
        report.computed.append(f"{clip.id}:{encoder.id}")
        report.audio_s += 0.0 if counted else duration_s
        counted = True


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc="extract", disable=not enabled, dynamic_ncols=True)
