"""Media decoding on real files made with ffmpeg: every container, and every way a file can be unusable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from acoustemo.data.media import load_audio, load_frames, probe
from acoustemo.errors import MediaError

SR = 16_000
TONE_HZ = 440
DURATION_S = 1.5


def ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


TONE = ["-f", "lavfi", "-i", f"sine=f={TONE_HZ}:d={DURATION_S}:sample_rate=44100", "-ac", "2"]
PICTURE = ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:d={DURATION_S}"]

# extension -> ffmpeg output options (audio codec, plus a video codec for video containers)
FORMATS = {
    "mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "webm": ["-c:v", "libvpx", "-b:v", "100k", "-c:a", "libopus"],
    "mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "avi": ["-c:v", "mpeg4", "-c:a", "pcm_s16le"],
    "wav": ["-c:a", "pcm_s16le"],
    "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame"],
    "ogg": ["-c:a", "libvorbis"],
    "m4a": ["-c:a", "aac"],
}
VIDEO = {"mp4", "mkv", "webm", "mov", "avi"}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    for ext, opts in FORMATS.items():
        inputs = PICTURE + TONE if ext in VIDEO else TONE
        ffmpeg(*inputs, *opts, "-shortest", str(folder / f"tone.{ext}"))
    ffmpeg(*PICTURE, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "silent_video.mp4"))
    return folder


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_container_decodes_to_16k_mono(media_dir, ext):
    audio = load_audio(media_dir / f"tone.{ext}")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SR - DURATION_S) <= 0.05
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / len(audio) - TONE_HZ) < 5  # resampled, not just relabelled
    assert 0.1 < np.abs(audio).max() < 0.2  # ffmpeg's sine has amplitude 1/8


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_probe_every_container(media_dir, ext):
    info = probe(media_dir / f"tone.{ext}")
    assert info.has_audio
    assert info.has_video == (ext in VIDEO)
    assert abs(info.duration_s - DURATION_S) <= 0.1
    if ext in VIDEO:
        assert info.video_fps == pytest.approx(10, abs=0.1) and (info.width_px, info.height_px) == (64, 48)
    else:
        assert info.video_fps is None


def test_frames_are_sampled_at_the_requested_rate(media_dir):
    frames, times = load_frames(media_dir / "tone.mp4", fps=4)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (48, 64, 3)
    assert len(frames) == len(times) == 6  # 0, 0.25, ..., 1.25 s of a 1.5 s video
    np.testing.assert_allclose(np.diff(times), 0.25)
    assert not np.array_equal(frames[0], frames[-1])  # the test pattern moves: frames are really different


def test_frames_can_be_shrunk_while_decoding(media_dir):
    frames, _ = load_frames(media_dir / "tone.mkv", fps=2, max_side_px=32)
    assert frames.shape[1:] == (24, 32, 3)


def test_audio_only_is_first_class_and_has_no_frames(media_dir):
    info = probe(media_dir / "tone.wav")
    assert info.has_audio and not info.has_video
    with pytest.raises(MediaError, match=r"tone\.wav.*no video track"):
        load_frames(media_dir / "tone.wav", fps=1)


def test_cover_art_is_not_video(media_dir, tmp_path):
    cover = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(cover))
    out = tmp_path / "song.mp3"
    ffmpeg("-i", str(media_dir / "tone.mp3"), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy",
           "-disposition:v", "attached_pic", str(out))
    assert not probe(out).has_video


def test_video_without_audio_track(media_dir):
    path = media_dir / "silent_video.mp4"
    info = probe(path)
    assert info.has_video and not info.has_audio
    with pytest.raises(MediaError, match=r"silent_video\.mp4: this file has no audio track; AcoustEmo needs speech"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match=r"nothere\.wav: file not found"):
        load_audio(tmp_path / "nothere.wav")


def test_zero_length_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: the file is empty \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=r"noise\.mp4: corrupt or truncated \.mp4 file"):
        load_audio(path)


def test_truncated_mp4(media_dir, tmp_path):
    data = (media_dir / "tone.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # ffmpeg writes the index (moov) last: half a file has none
    with pytest.raises(MediaError, match=r"cut\.mp4: corrupt or truncated"):
        probe(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("just some words, not media\n" * 20)
    with pytest.raises(MediaError, match=r"notes\.xyz: unsupported format.*convert it"):
        load_audio(path)


def test_a_subtitle_file_is_not_media(tmp_path):
    path = tmp_path / "subs.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n\n")
    with pytest.raises(MediaError, match=r"subs\.srt: has neither an audio nor a video track"):
        probe(path)


def test_a_folder_is_not_media(tmp_path):
    with pytest.raises(MediaError, match="is a folder"):
        load_audio(tmp_path)


def test_dialogue_fixture_roundtrip(dialogue, dialogue_video):
    wav, utts = dialogue
    mp4, _ = dialogue_video
    a, b = load_audio(wav), load_audio(mp4)
    assert abs(len(a) - len(b)) / SR <= 0.05
    assert probe(mp4).has_video and probe(wav).duration_s == pytest.approx(len(a) / SR, abs=0.01)
