"""Clip + cached features -> token ids, labels and frame tensors; collate() -> the model batch (DESIGN.md).

Everything that depends on the text happens here, not in the model: the prompt, the placeholder expansion
(`<|utt_audio|>` x K' per window, `<|global_audio|>` x K_global, `<|video|>` x K_v), the windows of Eq. (1),
the token budget and the label mask (-100 everywhere but the answer and its EOS).

Token budget: a dialogue has (1+N)·K acoustic tokens, so long dialogues can exceed max_seq_len. Then the
tokens per utterance window shrink (K' < K; the model average-pools the Q-Former's K outputs to K'), down to
cfg.min_window_tokens, then the global tokens likewise, with a TokenBudgetWarning naming the clip. Text is
never cut; if even the minimum does not fit, ConfigError names the clip and the fix.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch

from acoustemo.config import ModelConfig
from acoustemo.data.prompt import build_prompt, chat_prompt, format_answer
from acoustemo.data.segments import Clip
from acoustemo.data.windows import fixed_windows, frame_range, relative_to_speech
from acoustemo.errors import ConfigError
from acoustemo.model.llm import GLOBAL_AUDIO, UTT_AUDIO, VIDEO

IGNORE = -100


class TokenBudgetWarning(UserWarning):
    """A dialogue got fewer acoustic tokens than configured so that it fits in max_seq_len."""


class AcoustEmoDataset(torch.utils.data.Dataset):
    """Examples for AcoustEmoModel; features come from the loaders (the feature cache in training).

    Each example: {"id", "input_ids" (S,), "labels" (S,), "audio" (L, D), "windows": [(F_i, D)],
    "window_tokens" (W,), "global_tokens": int, "video": (T, Dv) | None}.
    """

    def __init__(self, clips: list[Clip], load_acoustic: Callable, load_visual: Callable | None, tokenizer,
                 cfg: ModelConfig, with_answers: bool = True):
        self.clips, self.cfg, self.tokenizer = list(clips), cfg, tokenizer
        self.load_acoustic, self.load_visual, self.with_answers = load_acoustic, load_visual, with_answers
        # a token's id mapped back to itself: get_vocab() would build a 49k-entry dict, ~50 ms per call, per predict
        self.ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (UTT_AUDIO, GLOBAL_AUDIO, VIDEO)}
        missing = [t for t, i in self.ids.items() if i is None or tokenizer.convert_ids_to_tokens(i) != t]
        if missing:
            raise ConfigError(f"the tokenizer lacks the placeholder tokens {missing}; use model.tokenizer")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip, cfg = self.clips[i], self.cfg
        audio, rate, duration_s = self._acoustic(clip)
        times = self._window_times(clip, duration_s)
        windows = [audio[a:b] for a, b in (frame_range(s, e, rate, audio.shape[0]) for s, e in times or [])]
        video = self._visual(clip)

        user = build_prompt(clip, times, cfg.layout, cfg.ablation, cfg.uses_global, video is not None)
        prompt_ids = self._tokenize_prompt(chat_prompt(self.tokenizer, user))
        answer_ids, n_emotion = [], 0
        if self.with_answers:
            answer = format_answer(clip.labels, clip.description)
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            # the "Emotions: ..." line's tokens (TrainConfig.label_loss_weight can weight them)
            line = self.tokenizer(answer.split("\n", 1)[0], add_special_tokens=False)["input_ids"]
            n_emotion = next((i for i, (a, b) in enumerate(zip(line, answer_ids)) if a != b), len(line))
        reserve = len(answer_ids) if self.with_answers else cfg.answer_budget_tokens
        k, g = self._budget(clip, prompt_ids, len(windows), reserve, video is not None)

        counts = {self.ids[UTT_AUDIO]: k, self.ids[GLOBAL_AUDIO]: g, self.ids[VIDEO]: cfg.visual_num_queries}
        expanded = [t for tok in prompt_ids for t in [tok] * counts.get(tok, 1)]
        input_ids = torch.tensor(expanded + answer_ids, dtype=torch.long)
        labels = torch.tensor([IGNORE] * len(expanded) + answer_ids, dtype=torch.long)
        emotion_mask = torch.zeros(len(input_ids), dtype=torch.bool)
        emotion_mask[len(expanded) : len(expanded) + n_emotion] = True
        return {"id": clip.id, "input_ids": input_ids, "labels": labels, "emotion_mask": emotion_mask, "audio": audio, "windows": windows,
                "window_tokens": torch.full((len(windows),), k, dtype=torch.long), "global_tokens": g, "video": video}

    # pieces -----------------------------------------------------------------------------------------------
    def _acoustic(self, clip: Clip) -> tuple[torch.Tensor, float, float]:
        feats = self.load_acoustic(clip)
        streams = [(str(n), int(w)) for n, w in feats.streams]
        if streams != self.cfg.acoustic_streams:
            raise ConfigError(
                f"clip {clip.id}: its acoustic features have streams {streams} (encoder {feats.encoder_id!r}) but the "
                f"model config expects {self.cfg.acoustic_streams}; build the config with "
                f"acoustic_streams=<the encoder's streams> or extract features with the matching encoder"
            )
        if feats.data.shape[0] < 1:
            raise ConfigError(f"clip {clip.id}: its acoustic features are empty; re-extract them")
        rate = float(feats.frame_rate_hz)
        duration_s = float(feats.duration_s or feats.data.shape[0] / rate)
        return torch.as_tensor(reference_frames(feats.data, clip, rate, self.cfg)), rate, duration_s

    def _visual(self, clip: Clip) -> torch.Tensor | None:
        if self.cfg.visual_dim is None:
            return None
        feats = self.load_visual(clip) if self.load_visual is not None else None
        if feats is None or feats.data.shape[0] < 1:
            raise ConfigError(f"clip {clip.id} has no visual features but the model config has visual_dim="
                              f"{self.cfg.visual_dim}; extract visual features or use visual_dim=None")
        if feats.data.shape[1] != self.cfg.visual_dim:
            raise ConfigError(f"clip {clip.id}: visual features are {feats.data.shape[1]}-d but the config has "
                              f"visual_dim={self.cfg.visual_dim}; use the matching visual encoder or config")
        return torch.as_tensor(feats.data, dtype=torch.float32)

    def _window_times(self, clip: Clip, duration_s: float) -> list[tuple[float, float]] | None:
        if not self.cfg.uses_windows:
            return None
        if self.cfg.ablation == "fixed-window":
            return fixed_windows(duration_s, self.cfg.fixed_window_s)
        return [(u.start_s, u.end_s) for u in clip.utterances]

    def _tokenize_prompt(self, text: str) -> list[int]:
        # A chat template writes its own BOS; without one, let the tokenizer add it (LLaMA-2 base).
        with_specials = not getattr(self.tokenizer, "chat_template", None)
        return self.tokenizer(text, add_special_tokens=with_specials)["input_ids"]

    def _budget(self, clip: Clip, prompt_ids: list[int], num_windows: int, reserve: int, has_video: bool):
        """(tokens per utterance window, global tokens) that fit in max_seq_len; see the module docstring."""
        cfg = self.cfg
        K, G = cfg.num_queries, (cfg.global_num_queries if cfg.uses_global else 0)
        slots = sum(1 for t in prompt_ids if t in (self.ids[UTT_AUDIO], self.ids[GLOBAL_AUDIO], self.ids[VIDEO]))
        fixed = len(prompt_ids) - slots + reserve + (cfg.visual_num_queries if has_video else 0)
        room = cfg.max_seq_len - fixed
        N, k, g = num_windows, K, G
        if N * k + g <= room:
            return k, g
        if N:
            k = max(cfg.min_window_tokens, min(K, (room - g) // N))
        if N * k + g > room and G:
            g = max(cfg.min_global_tokens, min(G, room - N * k))
        if N * k + g > room:
            raise ConfigError(
                f"clip {clip.id}: {fixed} text/answer/video tokens + {N} utterance windows x "
                f"{cfg.min_window_tokens} + {min(G, cfg.min_global_tokens)} global tokens exceed max_seq_len="
                f"{cfg.max_seq_len} even at the minimum; raise max_seq_len (or split the clip)"
            )
        warnings.warn(
            f"clip {clip.id}: {N} windows x {K} + {G} global acoustic tokens + {fixed} other tokens exceed "
            f"max_seq_len={cfg.max_seq_len}; using {k} tokens per window and {g} global tokens (average-pooled "
            f"Q-Former outputs). Raise max_seq_len to keep all {K}.",
            TokenBudgetWarning, stacklevel=3,
        )
        return k, g


def reference_frames(data: np.ndarray, clip: Clip, frame_rate_hz: float, cfg: ModelConfig) -> np.ndarray:
    """A clip's acoustic frames as the model reads them (ModelConfig.acoustic_reference): as given, or relative to
    the clip's speech frames (data/windows.py relative_to_speech). Training's corpus statistics read the same."""
    if cfg.acoustic_reference == "clip":
        return relative_to_speech(data, [(u.start_s, u.end_s) for u in clip.utterances], frame_rate_hz)
    return np.asarray(data, dtype=np.float32)


def collate(examples: list[dict], pad_id: int) -> dict:
    """Pad a list of examples into the model batch of DESIGN.md ("Model batch"); right padding."""
    B = len(examples)
    S = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((B, S), pad_id, dtype=torch.long)
    labels = torch.full((B, S), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros(B, S, dtype=torch.long)
    emotion_mask = torch.zeros(B, S, dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n], labels[i, :n], attention_mask[i, :n] = e["input_ids"], e["labels"], 1
        if "emotion_mask" in e:
            emotion_mask[i, :n] = e["emotion_mask"]
    audio, audio_mask = _pad([e["audio"] for e in examples])
    windows = [w for e in examples for w in e["windows"]]
    if windows:
        win, win_mask = _pad(windows)
    else:  # no-utterance ablation (or clips without utterances): an empty, well-shaped tensor
        win, win_mask = audio.new_zeros(0, 1, audio.shape[-1]), torch.zeros(0, 1, dtype=torch.bool)
    videos = [e["video"] for e in examples]
    if any(v is None for v in videos) and not all(v is None for v in videos):
        raise ConfigError("a batch mixes clips with and without visual features; use one kind per model config")
    video, video_mask = _pad(videos) if videos[0] is not None else (None, None)
    return {
        "ids": [e["id"] for e in examples], "input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
        "emotion_mask": emotion_mask,
        "audio": audio, "audio_mask": audio_mask, "windows": win, "window_mask": win_mask,
        "window_tokens": torch.cat([e["window_tokens"] for e in examples]),
        "global_tokens": torch.tensor([e["global_tokens"] for e in examples], dtype=torch.long),
        "video": video, "video_mask": video_mask,
    }


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_i, D) tensors -> (len, max n_i, D) zeros-padded and the mask (True = real)."""
    out = seqs[0].new_zeros(len(seqs), max(s.shape[0] for s in seqs), seqs[0].shape[1])
    mask = torch.zeros(out.shape[:2], dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)], mask[i, : len(s)] = s, True
    return out, mask
