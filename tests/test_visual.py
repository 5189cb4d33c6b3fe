"""The visual branch on a real face: scikit-image's astronaut photo (Eileen Collins, NASA, public domain) looped
into a video over a spoken dialogue. The default visual encoder finds her face where it is and reads a smile,
its features reach the visual Q-Former (other face frames, other tokens; no face, other tokens again), and a
model with a visual branch answers `predict` on the video."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from acoustemo.config import ModelConfig
from acoustemo.data.segments import Clip, Utterance
from acoustemo.features.base import Features
from acoustemo.features.registry import get_acoustic_encoder, get_visual_encoder
from acoustemo.features.cache import FeatureCache
from acoustemo.features.visual import EXPRESSIONS
from acoustemo.model.acoustemo import AcoustEmoModel

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the face photo: pip install -e '.[dev]'")

pytestmark = pytest.mark.usefixtures("one_thread")
ACOUSTIC = "whisper-tiny.en"  # the cheapest real acoustic encoder shipped offline (384-d)
VISUAL_DIM = 141  # face (6) + expression (7) + expression_embed (128)
# Her face in the 512 x 512 photo, measured by hand (hairline to chin, ear to ear): x 175-275 px, y 85-185 px
FACE_X, FACE_Y = (175 / 512, 275 / 512), (85 / 512, 185 / 512)


def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # (512, 512, 3) uint8 RGB


def loop_into_video(image: np.ndarray, wav, out):
    """`image` shown for the whole of `wav`: a 256 x 256, 10 fps H.264 + AAC mp4."""
    import cv2

    png = out.with_suffix(".png")
    cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "10", "-i", str(png), "-i", str(wav),
                    "-shortest", "-vf", "scale=256:256", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory, dialogue, dialogue_video):
    """{"face": the astronaut, "mirrored": the astronaut flipped left-right, "faceless": a moving test pattern},
    each over the same dialogue, and the dialogue's utterances."""
    wav, utts = dialogue
    root = tmp_path_factory.mktemp("faces")
    return {"face": loop_into_video(astronaut(), wav, root / "face.mp4"),
            "mirrored": loop_into_video(np.ascontiguousarray(astronaut()[:, ::-1]), wav, root / "mirrored.mp4"),
            "faceless": dialogue_video[0]}, utts


@pytest.fixture(scope="module")
def visual_features(videos, tmp_path_factory):
    """Each video's default visual features, through the feature cache as training and prediction read them."""
    cache, encoder = FeatureCache(tmp_path_factory.mktemp("cache")), get_visual_encoder("default")
    paths, _ = videos
    return {name: cache.get_or_compute(path, encoder, name) for name, path in paths.items()}


def test_the_default_encoder_finds_her_face_and_her_smile():
    encoder = get_visual_encoder("default")
    photo = astronaut()
    out = encoder.encode_frames(np.stack([photo, photo[:, ::-1], np.zeros_like(photo)]))
    face, mirrored, nothing = out
    assert face[0] == 1.0 and face[5] >= encoder.min_confidence  # present, with the detector's score
    assert FACE_X[0] < face[1] < FACE_X[1] and FACE_Y[0] < face[2] < FACE_Y[1]  # the box's centre is on her face
    assert EXPRESSIONS[int(face[6:13].argmax())] == "happy"  # she smiles
    assert face[13:].any()  # the expression embedding is read
    assert mirrored[0] == 1.0 and 1 - FACE_X[1] < mirrored[1] < 1 - FACE_X[0]  # mirrored: found mirrored
    assert EXPRESSIONS[int(mirrored[6:13].argmax())] == "happy"
    assert not nothing.any()  # no face: all zeros, flag 0


def test_the_face_is_found_on_every_frame_of_the_video(visual_features):
    face, faceless = visual_features["face"], visual_features["faceless"]
    assert face.streams == [("face", 6), ("expression", 7), ("expression_embed", 128)]
    assert face.frame_rate_hz == 2.0 and len(face.data) == len(faceless.data)  # the same dialogue underneath
    assert face.data[:, 0].tolist() == [1.0] * len(face.data)  # the presence flag on every frame
    assert all(FACE_X[0] < x < FACE_X[1] for x in face.data[:, 1])
    assert [EXPRESSIONS[i] for i in face.data[:, 6:13].argmax(1)] == ["happy"] * len(face.data)
    assert not faceless.data.any()


def _video_tokens(model: AcoustEmoModel, features: Features, utts: list[dict]) -> torch.Tensor:
    """The visual Q-Former's tokens for one clip whose visual features are `features`, built as training and
    prediction build them (AcoustEmoDataset + collate)."""
    from acoustemo.data.dataset import AcoustEmoDataset, collate

    clip = Clip("v", "v.mp4", [Utterance.from_json(u) for u in utts], target_speaker="Anna")
    duration = features.duration_s
    silent = Features(np.zeros((int(duration * 50), 384), np.float32), 50.0, ACOUSTIC, [("whisper", 384)], duration)
    ds = AcoustEmoDataset([clip], lambda c: silent, lambda c: features, model.tokenizer, model.cfg, with_answers=False)
    batch = collate([ds[0]], model.tokenizer.pad_token_id)
    assert batch["video"].shape == (1, len(features.data), VISUAL_DIM)
    torch.testing.assert_close(batch["video"][0], torch.from_numpy(features.data))  # the features, as extracted
    with torch.no_grad():
        return model.video_tokens(batch["video"], batch["video_mask"])


def test_face_features_reach_the_visual_qformer(videos, visual_features):
    _, utts = videos
    torch.manual_seed(0)
    model = AcoustEmoModel(ModelConfig.preset("debug", visual_dim=VISUAL_DIM, acoustic_streams=[("whisper", 384)]))
    model.eval()
    tokens = {name: _video_tokens(model, f, utts) for name, f in visual_features.items()}
    assert tokens["face"].shape == (model.cfg.visual_num_queries, model.llm.config.hidden_size)
    torch.testing.assert_close(_video_tokens(model, visual_features["face"], utts), tokens["face"])  # deterministic
    for other in ("mirrored", "faceless"):  # other face frames, or none: other tokens
        assert (tokens["face"] - tokens[other]).abs().max() > 1e-3, other


def test_predict_answers_on_the_face_video(videos, tmp_path, write_srt, monkeypatch):
    from acoustemo.predictor import Prediction, load_predictor, predict_clip
    from acoustemo.training import TRAIN_CONFIG_NAME, TrainConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same CPU path on a GPU box (peft, devices)
    paths, utts = videos
    torch.manual_seed(0)
    model = AcoustEmoModel(ModelConfig.preset("debug", visual_dim=VISUAL_DIM, acoustic_streams=[("whisper", 384)]))
    model.save_pretrained(tmp_path / "model")
    TrainConfig(acoustic_encoder=ACOUSTIC, visual_encoder="default").save(tmp_path / "model" / TRAIN_CONFIG_NAME)
    predictor = load_predictor(tmp_path / "model", cache_dir=tmp_path / "cache", device="cpu", max_new_tokens=8)
    assert predictor.visual.id == get_visual_encoder("default").id and predictor.acoustic.id == ACOUSTIC
    encoded = []
    encode_frames = predictor.visual.encode_frames
    predictor.visual.encode_frames = lambda frames: encoded.append(encode_frames(frames)) or encoded[-1]
    srt = write_srt(tmp_path / "face.srt", utts)
    pred = predict_clip(paths["face"], subtitles=srt, speaker="Anna", model=predictor)
    assert isinstance(pred, Prediction) and pred.id == "face" and isinstance(pred.answer, str)
    assert [u.speaker for u in pred.utterances] == ["Anna", "Ben", "Anna"] and pred.timestamps_source == "subtitles"
    assert len(encoded) == 1 and encoded[0][:, 0].all()  # the video's frames were read: her face on every one
