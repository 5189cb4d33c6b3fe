"""The feature cache: self-describing files, content-hash and settings invalidation, atomic writes."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from acoustemo.data.segments import Clip
from acoustemo.features.registry import get_acoustic_encoder
from acoustemo.features.cache import FeatureCache, load_features, sanitise_id
from conftest import SR, speak


class Counting:
    """Counts the encoder's real computations: a hit must not run it, a miss must (no mtime guessing)."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, 0
        self._encode = encoder.encode
        encoder.encode = self

    def __call__(self, audio):
        self.calls += 1
        return self._encode(audio)


@pytest.fixture()
def clip_wav(tmp_path):
    path = tmp_path / "media" / "a.wav"
    path.parent.mkdir()
    return path, speak("The lamp by the window is still on.", path)


def test_features_load_back_with_frame_rate_and_shape(tmp_path, clip_wav):
    path, wav = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    f = cache.get_or_compute(path, enc, "clip/1")
    back = load_features(cache.path("clip/1", enc))
    assert back.frame_rate_hz == 50.0 and back.encoder_id == "prosody" and back.streams == [("prosody", 14)]
    assert back.data.shape == (math.ceil(back.duration_s * back.frame_rate_hz), 14)
    assert back.duration_s == pytest.approx(len(wav) / SR)
    np.testing.assert_array_equal(back.data, f.data)
    assert back.metadata["settings"] == enc.settings() and len(back.metadata["media_sha256"]) == 64
    assert f.metadata == back.metadata
    assert not list((tmp_path / "cache").glob("*.tmp-*"))  # written atomically, nothing left behind


def test_hit_does_not_recompute(tmp_path, clip_wav):
    path, _ = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    counter = Counting(enc)
    clip = Clip(id="c1", media=str(path))
    first = cache.get_or_compute(path, enc, "c1")
    assert counter.calls == 1 and cache.load(clip, enc) is not None
    again = cache.get_or_compute(path, enc, "c1")
    assert counter.calls == 1
    np.testing.assert_array_equal(again.data, first.data)
    os.utime(path)  # touched, same bytes: still a hit (the hash is of the content)
    cache.get_or_compute(path, enc, "c1")
    assert counter.calls == 1


def test_changed_media_is_a_miss(tmp_path, clip_wav):
    path, _ = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    counter = Counting(enc)
    cache.get_or_compute(path, enc, "c1")
    wav = speak("Something else entirely was said here.", path)  # same name, new content
    assert cache.load(path, enc, "c1") is None
    f = cache.get_or_compute(path, enc, "c1")
    assert counter.calls == 2 and cache.load(path, enc, "c1") is not None
    assert f.duration_s == len(wav) / SR


def test_same_size_rewrite_with_the_old_mtime_is_a_miss(tmp_path, clip_wav):
    """The bytes change but size and mtime do not (a rewrite in place, then `cp -p` / rsync -t / os.utime)."""
    path, wav = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    counter = Counting(enc)
    before = cache.get_or_compute(path, enc, "c1")
    st = path.stat()
    import soundfile as sf

    sf.write(path, wav[::-1].copy(), SR)  # the same samples backwards: same size, other content
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert cache.load(path, enc, "c1") is None
    after = cache.get_or_compute(path, enc, "c1")
    assert counter.calls == 2 and not np.array_equal(after.data, before.data)


def test_changed_encoder_version_is_a_miss(tmp_path, clip_wav):
    path, _ = clip_wav
    cache = FeatureCache(tmp_path / "cache")
    old, new = get_acoustic_encoder("prosody"), get_acoustic_encoder("prosody")
    new.version = old.version + "-next"  # the same settings, a new algorithm
    counter = Counting(new)
    cache.get_or_compute(path, old, "c1")
    assert cache.load(path, new, "c1") is None
    shutil.copy(cache.path("c1", old), cache.path("c1", new))  # even under the new file name
    assert cache.load(path, new, "c1") is None
    f = cache.get_or_compute(path, new, "c1")
    assert counter.calls == 1 and f.metadata["encoder_version"] == new.version


def test_changed_setting_is_a_miss(tmp_path, clip_wav):
    path, _ = clip_wav
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_compute(path, get_acoustic_encoder("prosody"), "c1")
    other = get_acoustic_encoder("prosody", fmax_hz=600.0)
    assert cache.path("c1", other) != cache.path("c1", get_acoustic_encoder("prosody"))
    assert cache.load(path, other, "c1") is None
    # a file whose recorded settings disagree with its name is a miss too (e.g. copied by hand)
    shutil.copy(cache.path("c1", get_acoustic_encoder("prosody")), cache.path("c1", other))
    assert cache.load(path, other, "c1") is None


def test_corrupt_file_is_a_miss_and_is_replaced(tmp_path, clip_wav):
    path, _ = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    cache.get_or_compute(path, enc, "c1")
    file = cache.path("c1", enc)
    file.write_bytes(file.read_bytes()[:100])
    assert cache.load(path, enc, "c1") is None
    cache.get_or_compute(path, enc, "c1")
    assert load_features(file).data.shape[1] == 14


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    cache = FeatureCache(tmp_path)
    dead = tmp_path / "x.abc.safetensors.tmp-999999999"
    alive = tmp_path / f"y.abc.safetensors.tmp-{os.getpid()}"
    dead.write_bytes(b"half")
    alive.write_bytes(b"being written")
    assert cache.remove_stale_temp() == 1
    assert not dead.exists() and alive.exists()


def test_sanitised_ids_stay_distinct():
    assert sanitise_id("dia1_utt2") == "dia1_utt2"
    a, b = sanitise_id("a/b"), sanitise_id("a_b")
    assert a != b and "/" not in a
    assert sanitise_id("../../etc") not in ("", "..") and "/" not in sanitise_id("../../etc")


def test_non_finite_features_are_refused_not_cached(tmp_path, clip_wav):
    from acoustemo.errors import EncoderError

    path, _ = clip_wav
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    data = np.zeros((40, enc.dim), np.float32)
    data[25, 3] = np.nan
    with pytest.raises(EncoderError, match=r"NaN/inf features for a at 1 frame\(s\) \(first at 0.50 s\)"):
        cache.save(path, enc, data, 0.8, "a")
    assert cache.load(path, enc, "a") is None and not cache.path("a", enc).exists()
