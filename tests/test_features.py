"""Frozen encoders on real speech made in the test (espeak-ng), tiny real HF models saved to tmp_path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from acoustemo.errors import EncoderError
from acoustemo.features.base import Features
from acoustemo.features.registry import get_acoustic_encoder, get_visual_encoder
from acoustemo.features.cache import FeatureCache
from conftest import SR, speak

SENTENCE = "We walked along the river for an hour and then we sat down on the old wooden bench."


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    path = tmp_path_factory.mktemp("sentence") / "s.wav"
    return path, speak(SENTENCE, path)


def test_unknown_encoder_lists_known_names_and_hf_hint():
    with pytest.raises(EncoderError, match=r"unknown acoustic encoder 'wav2vec'.*'default'.*'whisper-base'.*hf:<path>"):
        get_acoustic_encoder("wav2vec")
    with pytest.raises(EncoderError, match=r"unknown visual encoder.*'default'.*hf:<path>"):
        get_visual_encoder("clip")
    with pytest.raises(EncoderError, match=r"does not take the option\(s\) \['layr'\]"):
        get_acoustic_encoder("prosody", layr=3)
    with pytest.raises(EncoderError, match="not bundled.*ImageBind"):
        get_acoustic_encoder("imagebind")
    with pytest.raises(EncoderError, match="not a local Hugging Face model folder"):
        get_acoustic_encoder("hf:/nonexistent/wavlm")


@pytest.mark.parametrize("name,options,dim", [("whisper-base", {}, 512), ("whisper-base", {"pad_last_window": False}, 512),
                                               ("whisper-tiny.en", {}, 384)])
def test_whisper_frames_50hz(sentence, name, options, dim):
    _, wav = sentence
    enc = get_acoustic_encoder(name, **options)
    x = enc.encode(wav)
    assert x.shape == (math.ceil(len(wav) / SR * 50), dim) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.std(axis=0).mean() > 0.01  # frames differ over time


def test_whisper_is_float32_by_default_and_its_frames_do_not_depend_on_the_thread_count(sentence):
    """int8 frames differ between CPUs (and, on some, thread counts); float32 ones are what a run pins."""
    from acoustemo.features.base import encoder_key

    _, wav = sentence
    one, two = (get_acoustic_encoder("whisper-base", threads=n).encode(wav) for n in (1, 2))
    assert np.abs(one - two).max() < 1e-3
    assert get_acoustic_encoder("default").whisper.compute_type == "float32"
    assert encoder_key(get_acoustic_encoder("default")) != encoder_key(get_acoustic_encoder("default", compute_type="int8"))


def test_whisper_long_clip_uses_consecutive_windows(sentence):
    _, wav = sentence
    long = np.concatenate([wav] * math.ceil(34 * SR / len(wav)))  # > 30 s: two windows
    enc = get_acoustic_encoder("whisper-base", pad_last_window=False)
    x = enc.encode(long)
    assert x.shape == (math.ceil(len(long) / SR * 50), 512)
    # the first window's frames are those of the first 30 s alone (windows are encoded independently)
    first = enc.encode(long[: 30 * SR])
    np.testing.assert_allclose(x[:1500], first, atol=1e-4)


def _prosody(wav):
    from acoustemo.features.prosody import CHANNELS

    x = get_acoustic_encoder("prosody").encode(wav)
    return {c: x[:, i] for i, c in enumerate(CHANNELS)}, x


def test_prosody_shows_loudness_burst_at_the_right_time(sentence):
    _, wav = sentence
    a, b = int(1.0 * SR), int(2.0 * SR)
    louder = wav.copy()
    louder[a:b] *= 10 ** (6 / 20)  # +6 dB for one second
    plain, x = _prosody(wav)
    burst, _ = _prosody(louder)
    assert x.shape == (math.ceil(len(wav) / SR * 50), 14)
    diff_db = (burst["loudness"] - plain["loudness"]) * 20
    inside, outside = slice(53, 97), np.r_[0:45, 105:len(diff_db)]
    assert np.median(diff_db[inside]) == pytest.approx(6.0, abs=0.5)  # absolute level kept, not normalised away
    assert np.abs(diff_db[outside]).max() < 0.5
    assert (burst["loud_local"] - plain["loud_local"])[inside].mean() * 10 > 3  # stands out of its local baseline
    assert (burst["loud_steady"] - plain["loud_steady"])[inside].mean() * 10 > 3  # and so do its steady voiced frames
    # loud_voiced: the second's voiced level against the voiced median of the 5 s around it. On this 4.6 s clip the
    # burst is a fifth of that median's frames, so it lifts the baseline too: the frames outside read ~1-2 dB lower.
    rise = (burst["loud_voiced"] - plain["loud_voiced"]) * 10
    assert 50 <= int(np.argmax(burst["loud_voiced"])) < 100  # the channel peaks inside the burst
    assert rise[60:90].mean() > 3 and rise[60:90].mean() - rise[np.r_[0:20, 130:len(rise)]].mean() > 4


def test_prosody_is_finite_over_long_silence(sentence):
    _, wav = sentence  # speech then 20 s of digital silence, like a padded 30 s clip (once gave NaN in *_mod)
    _, x = _prosody(np.concatenate([wav, np.zeros(20 * SR, np.float32)]))
    assert np.isfinite(x).all()


def test_prosody_shows_pitch_jump_at_the_right_time(sentence):
    import librosa

    _, wav = sentence
    a, b = int(1.0 * SR), int(2.0 * SR)
    shifted = wav.copy()
    shifted[a:b] = librosa.effects.pitch_shift(wav[a:b], sr=SR, n_steps=3)
    plain, _ = _prosody(wav)
    jump, _ = _prosody(shifted)
    voiced = (plain["periodicity"] > 0.5) & (jump["periodicity"] > 0.5)
    diff_st = (jump["f0"] - plain["f0"]) * 12
    inside = np.zeros(len(diff_st), bool)
    inside[55:95] = True
    assert np.median(diff_st[inside & voiced]) == pytest.approx(3.0, abs=0.6)
    assert np.abs(np.median(diff_st[~inside & voiced & (np.arange(len(diff_st)) > 110)])) < 0.3
    assert (jump["f0_local"] - plain["f0_local"])[inside & voiced].mean() * 4 > 1.5
    assert (jump["f0_steady"] - plain["f0_steady"])[inside & voiced].mean() * 4 > 1.5


def _ffmpeg_filter(src, dst, af):
    import subprocess

    from conftest import _need

    _need("ffmpeg")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-af", af, str(dst)], check=True)
    return sf.read(dst, dtype="float32")[0]


def test_prosody_tremor_and_vibrato_raise_modulation_energy(sentence, tmp_path):
    path, wav = sentence
    plain, _ = _prosody(wav)
    vibrato, _ = _prosody(_ffmpeg_filter(path, tmp_path / "v.wav", "vibrato=f=7:d=0.5")[: len(wav)])
    tremolo, _ = _prosody(_ffmpeg_filter(path, tmp_path / "t.wav", "tremolo=f=7:d=0.6")[: len(wav)])
    active = plain["loudness"] * 20 > -40
    # measured on this sentence: f0_mod 0.10 -> 0.42 with vibrato; loud_mod 0.26 -> 0.35 with tremolo
    assert vibrato["f0_mod"][active].mean() > 2.5 * plain["f0_mod"][active].mean()
    assert tremolo["loud_mod"][active].mean() > 1.2 * plain["loud_mod"][active].mean()
    assert tremolo["f0_mod"][active].mean() < 1.5 * plain["f0_mod"][active].mean()  # loudness tremor is not read as pitch
    # f0_wobble (steady voiced frames only): 0.08 -> 0.30 with vibrato, ~unchanged with tremolo
    assert vibrato["f0_wobble"][active].mean() > 2.5 * plain["f0_wobble"][active].mean()
    assert tremolo["f0_wobble"][active].mean() < 1.5 * plain["f0_wobble"][active].mean()


def test_f0_wobble_reads_a_tremor_and_ignores_tracker_glitches_at_voicing_edges():
    """prosody_channels on a made-up contour: voiced runs of 0.4 s at 200 Hz, 0.1 s unvoiced between them; frames
    100-150 wobble at 7 Hz by +-0.8 semitone; every run's first and last frame is an octave error (+12 semitones)."""
    from acoustemo.features.prosody import CHANNELS, prosody_channels

    n, t = 400, np.arange(400)
    voiced = (t % 25) < 20
    st = np.zeros(n)
    st[100:150] = 0.8 * np.sin(2 * np.pi * 7 * t[100:150] / 50)
    edges = voiced & ~(np.roll(voiced, 1) & np.roll(voiced, -1))

    def channels(st):
        f0_hz = np.where(voiced, 200 * 2 ** (st / 12), 0.0).astype(np.float32)
        x = prosody_channels(f0_hz, np.where(voiced, 0.9, 0.1).astype(np.float32), np.full(n, -30.0))
        return {c: x[:, i] for i, c in enumerate(CHANNELS)}

    clean, ch = channels(st), channels(np.where(edges, 12.0, st))
    # a 0.8-semitone sine reads 0.5-1.0 (its RMS is 0.57; the 180 ms median is not flat under it; 1.0 is the clip)
    assert 0.5 < clean["f0_wobble"][115:135].mean() < 1.0 and clean["f0_wobble"][250:400].max() < 0.01
    # the octave errors at every run's edges change neither the reading inside the wobble nor the quiet outside
    np.testing.assert_allclose(ch["f0_wobble"][115:135], clean["f0_wobble"][115:135], atol=0.06)
    assert ch["f0_wobble"][250:400].max() < 0.05
    assert ch["f0_mod"][250:400].mean() > 0.5  # the band-pass channel reads the same glitches as a strong wobble


def test_default_stack_streams_and_shape(dialogue):
    wav_path, _ = dialogue
    wav, _ = sf.read(wav_path, dtype="float32")
    enc = get_acoustic_encoder("default")
    x = enc.encode(wav)
    assert enc.streams == [("whisper", 512), ("prosody", 14)] and enc.dim == 526
    assert x.shape == (math.ceil(len(wav) / SR * 50), 526)
    f = Features(x, enc.frame_rate_hz, enc.id, enc.streams, len(wav) / SR)
    assert f.stream("prosody").shape[1] == 14
    enc.release()  # prediction frees the Whisper runtime after each clip; the next encode reloads it
    assert enc.whisper._model is None
    np.testing.assert_array_equal(enc.encode(wav), x)


@pytest.mark.parametrize("rows", [1, 2, 127, 128, 129, 130, 257, 2048, 2049, 2050, 4097, 4225])
def test_crepe_chunks_cover_every_window_and_leave_one_alone_only_where_the_old_blocks_did(rows):
    from acoustemo.features.prosody import _BLOCK, _chunks

    chunks = _chunks(rows)
    assert [a for a, _ in chunks] == [0] + [b for _, b in chunks[:-1]] and chunks[-1][1] == rows
    assert all(b - a <= 129 and a // _BLOCK == (b - 1) // _BLOCK for a, b in chunks)  # never across a block
    alone = [a for a, b in chunks if b - a == 1]
    assert alone == ([rows - 1] if rows % _BLOCK == 1 else [])


def _pitch_in_whole_blocks(enc, wav, length):
    """ProsodyEncoder.pitch as it ran before its convolutions went in chunks: the network on blocks of 2048."""
    import torch

    from acoustemo.features.prosody import _CREPE_WINDOW, _frames, _weighted_argmax

    net = enc._load()
    frames = _frames(wav, length, _CREPE_WINDOW)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-10)
    flat = ~frames.any(axis=1)
    rows = np.concatenate([frames[~flat], np.zeros((1, _CREPE_WINDOW), np.float32)]) if flat.any() else frames
    with torch.inference_mode():
        probs = np.concatenate([net(torch.from_numpy(rows[i : i + 2048])).numpy() for i in range(0, len(rows), 2048)])
    if flat.any():
        full = np.empty((length, probs.shape[1]), np.float32)
        full[~flat], full[flat] = probs[:-1], probs[-1]
        probs = full
    return _weighted_argmax(probs, enc.fmin_hz, enc.fmax_hz)


@pytest.mark.parametrize("threads", [1, 2])
def test_crepe_in_chunks_is_bit_identical_to_whole_blocks(sentence, threads):
    import torch

    from acoustemo.features.base import num_frames
    from acoustemo.features.prosody import ProsodyEncoder

    wav, _ = sf.read(sentence[0], dtype="float32")
    noise = np.random.default_rng(0).normal(0, 0.05, 129 * 320).astype(np.float32)  # 129 windows, none silent
    enc, before = ProsodyEncoder(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for x in (wav, np.concatenate([wav, wav, wav]), noise, noise[:320]):
            n = num_frames(len(x), 50.0)
            new, old = enc.pitch(x, n), _pitch_in_whole_blocks(enc, x, n)
            np.testing.assert_array_equal(new[0], old[0])
            np.testing.assert_array_equal(new[1], old[1])
    finally:
        torch.set_num_threads(before)


def test_default_stack_runs_its_encoders_concurrently_with_the_same_features(dialogue):
    import torch

    from acoustemo.features.stack import DefaultAcousticStack

    wav, _ = sf.read(dialogue[0], dtype="float32")
    wav = np.concatenate([wav, wav, wav])[: 40 * SR]  # past one Whisper window
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the stack splits 2+ threads between its encoders; the features must not change
    try:
        together = DefaultAcousticStack()
        one_by_one = DefaultAcousticStack()
        one_by_one.concurrent = False
        assert together.concurrent and together.whisper.threads == 1 and together.crepe_threads == 1
        x = together.encode(wav)
        assert torch.get_num_threads() == 2  # CREPE's one thread was this call's only
        np.testing.assert_array_equal(x, one_by_one.encode(wav))
        assert DefaultAcousticStack(threads=1).concurrent is False
    finally:
        torch.set_num_threads(before)


def _tiny_wav2vec2(folder, strides):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                         conv_dim=(8,) * len(strides), conv_stride=strides, conv_kernel=(10,) + (3,) * (len(strides) - 1),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("strides,rate", [((5, 2, 2, 2, 2, 2, 2), 50.0), ((5, 2, 2, 2, 2, 2), 100.0)])
def test_hf_audio_encoder_frame_rate_from_conv_strides(tmp_path, sentence, strides, rate):
    folder = _tiny_wav2vec2(tmp_path / "w2v", strides)
    _, wav = sentence
    enc = get_acoustic_encoder(f"hf:{folder}")
    assert enc.frame_rate_hz == rate and enc.dim == 32
    x = enc.encode(wav)
    assert x.shape == (math.ceil(len(wav) / SR * rate), 32)
    x1 = get_acoustic_encoder(f"hf:{folder}", layer=1).encode(wav)
    assert x1.shape == x.shape and not np.allclose(x1, x)
    with pytest.raises(EncoderError, match="layer 9 does not exist"):
        get_acoustic_encoder(f"hf:{folder}", layer=9).encode(wav)


def test_hf_whisper_encoder(tmp_path, sentence):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    cfg = WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=100, num_mel_bins=80, max_target_positions=32,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, suppress_tokens=[], begin_suppress_tokens=[])
    WhisperModel(cfg).save_pretrained(tmp_path / "wh")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "wh")
    _, wav = sentence
    enc = get_acoustic_encoder(f"hf:{tmp_path / 'wh'}")
    assert enc.frame_rate_hz == 50.0
    assert enc.encode(wav).shape == (math.ceil(len(wav) / SR * 50), 16)


def test_opensmile_egemaps(sentence):
    pytest.importorskip("opensmile", reason="optional extra: pip install acoustemo[opensmile]")
    _, wav = sentence
    x = get_acoustic_encoder("opensmile-egemaps").encode(wav)
    assert x.shape == (math.ceil(len(wav) / SR * 100), 25) and np.isfinite(x).all()


def test_visual_default_on_video_without_faces(tmp_path, dialogue_video):
    from acoustemo.data.media import probe

    video, _ = dialogue_video
    enc = get_visual_encoder("default", fps=2.0)
    f = FeatureCache(tmp_path).get_or_compute(video, enc, "vid")
    assert f.frame_rate_hz == 2.0 and f.data.shape == (math.ceil(probe(video).duration_s * 2), 141)
    assert f.streams == [("face", 6), ("expression", 7), ("expression_embed", 128)]
    assert not f.data.any()  # a test pattern has no face: flag 0 and zeros, never a fake "neutral"


def test_fer_expression_features_on_a_crop():
    enc = get_visual_encoder("default")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :64]
    face = (128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 5, (64, 64))).clip(0, 255).astype(np.uint8)
    v = enc.expression(face)
    assert v.shape == (135,)
    assert v[:7].sum() == pytest.approx(1.0, abs=0.02) and (v[:7] >= 0).all()
    assert v[7:].std() > 0  # the 128-d block output is read, not left at zeros
    assert not np.allclose(enc.expression(255 - face), v)


def test_hf_image_encoder(tmp_path, dialogue_video):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    ViTModel(cfg).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    video, _ = dialogue_video
    enc = get_visual_encoder(f"hf:{tmp_path / 'vit'}", fps=1.0)
    f = FeatureCache(tmp_path / "cache").get_or_compute(video, enc, "vid")
    assert f.data.shape[1] == 16 and f.frame_rate_hz == 1.0 and len(f.data) >= 2
    assert not np.allclose(f.data[0], f.data[-1])  # the test pattern moves


def test_voiced_median_reads_only_voiced_frames_within_the_cut_window():
    from acoustemo.features.prosody import _voiced_median

    x = np.arange(10.0)
    voiced = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
    out = _voiced_median(x, voiced, 2, block=3)  # blocks smaller than the clip: the same answer
    assert out[0] == 0.5 and out[3] == 4.0 and out[7] == 7.0 and out[9] == 8.5
    assert np.isnan(_voiced_median(x, np.zeros(10, dtype=bool), 2)).all()


def test_prosody_channels_of_zero_and_one_frame():
    from acoustemo.features.prosody import prosody_channels

    assert prosody_channels(np.zeros(0), np.zeros(0), np.zeros(0)).shape == (0, 14)
    one = prosody_channels(np.full(1, 150.0), np.full(1, 0.9), np.full(1, -30.0))
    assert one.shape == (1, 14) and one[0, 13] == 0.0  # a lone voiced frame is its own baseline
