"""Decoding media with PyAV (the ffmpeg libraries): probe, 16 kHz mono audio, RGB frames at a chosen rate.

Any container ffmpeg reads works; audio-only files are first class (`MediaInfo.has_video` is False).
`load_frames` on a file without a video track raises a MediaError: callers check `probe(path).has_video`
first, so a missing picture is never mistaken for a black one.

On the way through prediction a file is one `Media` value (open_media): its probe, content hash and 16 kHz audio
are each computed once, when first asked for, and shared by the utterance finder, the feature cache and the
timeline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from acoustemo.errors import MediaError

SAMPLE_RATE_HZ = 16_000  # every waveform in acoustemo is float32 mono at this rate

# Extensions looked for when a folder or a CSV name is matched to media (any other file ffmpeg reads also works).
MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")


@dataclass
class MediaInfo:
    path: Path
    duration_s: float
    has_audio: bool
    has_video: bool
    video_fps: float | None = None
    width_px: int | None = None
    height_px: int | None = None
    audio_sample_rate_hz: int | None = None
    audio_channels: int | None = None
    container: str = ""


def _open(path: str | Path):
    """av.open with the user-facing errors: missing, empty, corrupt, unsupported."""
    import av

    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found; check the path (relative paths are from the current folder or the manifest's folder)")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: the file is empty (0 bytes); re-copy or re-export it")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        if path.suffix.lower() in MEDIA_EXTENSIONS:
            raise MediaError(
                f"{path}: corrupt or truncated {path.suffix} file, ffmpeg cannot read it ({e.strerror}); "
                "re-download or re-export it (`ffmpeg -v error -i FILE -f null -` shows details)"
            ) from None
        raise MediaError(
            f"{path}: unsupported format, ffmpeg does not recognise it as audio or video ({e.strerror}); "
            f"convert it to one of {', '.join(MEDIA_EXTENSIONS)}"
        ) from None


def _video_stream(container):
    """The first real video stream; cover art in audio files (attached pictures) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & stream.disposition.attached_pic:
            return stream
    return None


def _duration_s(container) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE is microseconds
    spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(spans, default=0.0)


def probe(path: str | Path) -> MediaInfo:
    """Streams and duration of a media file, without decoding it."""
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        video = _video_stream(container)
        if audio is None and video is None:
            raise MediaError(f"{path}: has neither an audio nor a video track (is it a subtitle or data file?)")
        fps = float(video.average_rate) if video is not None and video.average_rate else None
        return MediaInfo(
            path=Path(path),
            duration_s=_duration_s(container),
            has_audio=audio is not None,
            has_video=video is not None,
            video_fps=fps,
            width_px=video.codec_context.width if video is not None else None,
            height_px=video.codec_context.height if video is not None else None,
            audio_sample_rate_hz=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
            container=container.format.name,
        )


def load_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The first audio track, downmixed to mono and resampled: float32 (n,) in [-1, 1]."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: this file has no audio track; AcoustEmo needs speech (use a file with sound)")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: the audio track is corrupt and stops decoding ({e.strerror}); re-export the file") from None
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        duration_s = _duration_s(container)
    if not chunks:
        raise MediaError(f"{path}: the audio track holds no decodable samples; re-export the file")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    # AAC/Opus decoders keep encoder padding (tens of ms); the container's duration is the truth.
    n_expected = round(duration_s * sample_rate_hz)
    return audio[:n_expected] if 0 < n_expected < len(audio) else audio


def load_frames(path: str | Path, fps: float, max_side_px: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames sampled every 1/fps seconds: (T, H, W, 3) uint8 RGB and their times (T,) in seconds.

    Each sample time t = k / fps (t < duration) takes the last decoded frame shown at or before t
    (sample-and-hold), so the result does not depend on the source frame rate. `max_side_px` shrinks
    frames (aspect kept) while decoding, which keeps long videos within memory.
    """
    import av

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with _open(path) as container:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(f"{path}: has no video track (audio-only input); check probe(path).has_video before asking for frames")
        duration_s = _duration_s(container)
        size = _scaled_size(stream.codec_context.width, stream.codec_context.height, max_side_px)
        frames, times, held, k = [], [], None, 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else k / fps
                while held is not None and k / fps < t and k / fps < duration_s:
                    frames.append(held)
                    times.append(k / fps)
                    k += 1
                held = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: the video track is corrupt and stops decoding ({e.strerror}); re-export the file") from None
    while held is not None and k / fps < max(duration_s, 1e-9):
        frames.append(held)
        times.append(k / fps)
        k += 1
    if not frames:
        raise MediaError(f"{path}: the video track holds no decodable frames; re-export the file")
    return np.stack(frames), np.asarray(times, dtype=np.float64)


def _scaled_size(width: int, height: int, max_side_px: int | None) -> tuple[int, int]:
    if not max_side_px or max(width, height) <= max_side_px:
        return width, height
    scale = max_side_px / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


_hash_memo: dict[tuple, str] = {}


def media_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes, memoised by (path, inode, size, mtime_ns, ctime_ns) so repeated checks are free.
    ctime is in the key because mtime alone can be put back (`cp -p`, rsync -t, os.utime) after a same-size rewrite;
    ctime cannot be set by a user and changes with every write."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError as e:
        raise MediaError(f"{path}: cannot read the media file ({e.strerror}); check the manifest's 'media' path") from None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _hash_memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]


class Media:
    """One media file: its absolute path, and its probe (`info`), content hash (`sha256`) and 16 kHz mono audio
    (`audio`), each computed the first time it is asked for and kept."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.name = Path(path).name  # the name as given (a symlink's own, not its target's)
        self.stem = Path(path).stem  # default clip ids

    def __repr__(self) -> str:
        return f"Media({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @cached_property
    def info(self) -> MediaInfo:
        return probe(self.path)

    @property
    def duration_s(self) -> float:
        return self.info.duration_s

    @property
    def has_video(self) -> bool:
        return self.info.has_video

    @cached_property
    def sha256(self) -> str:
        return media_sha256(self.path)

    @cached_property
    def audio(self) -> np.ndarray:
        return load_audio(self.path)

    @property
    def decoded(self) -> bool:
        """Whether the audio is in memory already (else `audio` decodes it)."""
        return "audio" in self.__dict__


def open_media(media: "str | Path | Media") -> Media:
    """`media` itself when it is a Media already, else a new one for that path (nothing is read yet)."""
    return media if isinstance(media, Media) else Media(media)
