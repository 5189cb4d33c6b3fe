"""ModelConfig: every size and switch of the AcoustEmo model, validated on construction, saved as config.json.

Presets (`ModelConfig.preset(name, **overrides)`):
  paper        the paper's sizes (K=32 queries, d_model 768, §3.3) on a LLaMA-2-7B-class LLM from a local folder
  cpu-default  the offline stack: bundled SmolLM2-135M; smaller Q-Formers, sized by benchmarks/qformer.py
  debug        a random tiny llama (hidden 32, FFN 37) and tiny Q-Formers with odd sizes, for tests
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.errors import ConfigError

ABLATIONS = ("full", "no-global", "fixed-window", "no-utterance")
LAYOUTS = ("interleaved", "paper")
# Switches measured and removed after acoustemo 0.1.0 (#34), each with the one value that stayed. A config.json
# written by 0.1.0 carries them at these values and still loads; any other value cannot be rebuilt any more.
RETIRED_MODEL_FIELDS = {"stream_norm": "layernorm", "window_stats": False, "speaker_relative": [],
                        "mark_target": False}

# Fields that only change how a batch is built or run, not the weights: a checkpoint may load under other values.
RUNTIME_FIELDS = frozenset({"max_seq_len", "min_window_tokens", "min_global_tokens", "answer_budget_tokens",
                            "llm_dtype", "lora_dropout", "qformer_dropout"})

# The offline default acoustic encoder (features "default"): Whisper-base encoder + the prosody stream.
ACOUSTIC_REFERENCES = ("absolute", "clip")  # ModelConfig.acoustic_reference
DEFAULT_STREAMS = (("whisper", 512), ("prosody", 14))  # = get_acoustic_encoder("default").streams


@dataclass
class ModelConfig:
    # LLM: "smollm2-135m" (bundled), "tiny-random-llama" (debug) or a local HF folder (LLaMA-2-7B, Qwen...)
    llm: str = "smollm2-135m"
    # "auto" = chosen from the hardware when the model is built (acoustemo/hardware.py: bf16 on CPUs with native
    # bf16 and on GPUs that support it, else float32 on CPU / float16 on GPU); a saved config records what was used.
    llm_dtype: str = "auto"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # Acoustic input: the encoder's streams (name, width), each LayerNormed per frame before the projection.
    # Must equal Features.streams of the cached features (the dataset checks).
    acoustic_streams: list[tuple[str, int]] = field(default_factory=lambda: [tuple(s) for s in DEFAULT_STREAMS])
    # What the acoustic frames are read against: "absolute" (as the encoder gives them) or "clip" (each channel
    # minus its mean over the clip's speech frames, those inside its utterances), so a recording's gain, a voice's
    # overall pitch and an engine's timbre cancel and a speaker's manner is read against the dialogue (issue #35).
    acoustic_reference: str = "absolute"
    # Q-Formers (utterance and global share depth/width; each has its own weights and queries)
    num_queries: int = 32  # K per utterance window (Eq. 2)
    global_num_queries: int = 32  # tokens of T_A^global (Eq. 3)
    d_model: int = 768
    qformer_layers: int = 2
    qformer_heads: int = 12
    qformer_ffn: int = 3072
    qformer_dropout: float = 0.1
    # Size of the learned frame-position table. Longer windows (and the global window over the whole clip) do
    # not fail: their positions are linearly interpolated into the table (ViT-style), so order is kept.
    max_window_frames: int = 512
    # Visual branch (None = audio only): per-frame visual features of this width through an image Q-Former.
    visual_dim: int | None = None
    visual_num_queries: int = 32
    # Ablations (paper §4): one switch.
    ablation: str = "full"
    fixed_window_s: float = 2.0
    # Prompt layout: "interleaved" puts each utterance's tokens right after its line; "paper" = [T_V; T_A; prompt].
    layout: str = "interleaved"
    # Token budget: (1+N)·K acoustic tokens grow with the number of utterances N. When a dialogue would exceed
    # max_seq_len, the dataset lowers the tokens per utterance window (down to min_window_tokens, by average
    # pooling the Q-Former's K outputs), then the global tokens (down to min_global_tokens), and warns; if even
    # that does not fit it raises ConfigError. Text is never truncated.
    max_seq_len: int = 1024
    min_window_tokens: int = 1
    min_global_tokens: int = 1
    answer_budget_tokens: int = 96  # room kept for the generated answer when building prompts without answers

    def __post_init__(self) -> None:
        self.acoustic_streams = [(str(n), int(w)) for n, w in self.acoustic_streams]
        self.lora_targets = list(self.lora_targets)
        problems = []
        if not self.llm:
            problems.append("llm is empty: give 'smollm2-135m' or the path of a local Hugging Face model folder")
        if self.llm_dtype not in ("auto", "float32", "bfloat16", "float16"):
            problems.append(f"llm_dtype={self.llm_dtype!r} must be auto, float32, bfloat16 or float16")
        if self.ablation not in ABLATIONS:
            problems.append(f"ablation={self.ablation!r} must be one of {', '.join(ABLATIONS)}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout={self.layout!r} must be one of {', '.join(LAYOUTS)}")
        if self.acoustic_reference not in ACOUSTIC_REFERENCES:
            problems.append(f"acoustic_reference={self.acoustic_reference!r} must be one of "
                            f"{', '.join(ACOUSTIC_REFERENCES)}")
        if not self.acoustic_streams or any(w < 1 for _, w in self.acoustic_streams):
            problems.append(f"acoustic_streams={self.acoustic_streams} needs at least one (name, width>=1)")
        if len({n for n, _ in self.acoustic_streams}) != len(self.acoustic_streams):
            problems.append(f"acoustic_streams={self.acoustic_streams} repeats a stream name")
        for name in ("num_queries", "global_num_queries", "d_model", "qformer_layers", "qformer_heads",
                     "qformer_ffn", "max_window_frames", "visual_num_queries", "max_seq_len", "lora_r",
                     "lora_alpha", "min_window_tokens", "min_global_tokens"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.answer_budget_tokens < 0:
            problems.append(f"answer_budget_tokens={self.answer_budget_tokens} must be >= 0")
        if self.d_model % max(self.qformer_heads, 1):
            problems.append(f"d_model={self.d_model} must be divisible by qformer_heads={self.qformer_heads}")
        if self.visual_dim is not None and self.visual_dim < 1:
            problems.append(f"visual_dim={self.visual_dim} must be >= 1 or None (no visual branch)")
        if self.min_window_tokens > self.num_queries:
            problems.append(f"min_window_tokens={self.min_window_tokens} exceeds num_queries={self.num_queries}")
        if self.min_global_tokens > self.global_num_queries:
            problems.append(f"min_global_tokens={self.min_global_tokens} exceeds global_num_queries="
                            f"{self.global_num_queries}")
        if not 0.0 <= self.lora_dropout < 1.0 or not 0.0 <= self.qformer_dropout < 1.0:
            problems.append("lora_dropout and qformer_dropout must be in [0, 1)")
        if self.fixed_window_s <= 0:
            problems.append(f"fixed_window_s={self.fixed_window_s} must be > 0")
        if not self.lora_targets:
            problems.append("lora_targets is empty: LoRA needs at least one module name such as q_proj")
        if problems:
            raise ConfigError("invalid ModelConfig: " + "; ".join(problems))

    # derived switches
    @property
    def uses_global(self) -> bool:
        return self.ablation != "no-global"

    @property
    def uses_windows(self) -> bool:
        return self.ablation != "no-utterance"

    @property
    def acoustic_dim(self) -> int:
        """Width of the encoder's features (acoustic_streams)."""
        return sum(w for _, w in self.acoustic_streams)

    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        if name == "paper" and not overrides.get("llm"):
            raise ConfigError(
                "the 'paper' preset needs a LLaMA-2-7B-class LLM from a local folder (none installs offline): "
                "--llm /path/to/Llama-2-7b-hf on the command line, or ModelConfig.preset('paper', llm='/path/to/Llama-2-7b-hf')"
            )
        overrides = drop_retired(overrides, RETIRED_MODEL_FIELDS, "ModelConfig")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown ModelConfig field(s) {sorted(unknown)}")
        return cls(**{**PRESETS[name], **overrides})

    def resolved(self, device=None) -> "ModelConfig":
        """This config with llm_dtype "auto" replaced by the hardware's choice for `device` (default: cuda if
        available, else cpu); see acoustemo/hardware.py. The model is built from, and saves, the resolved one."""
        from acoustemo.hardware import default_device, resolve_dtype

        return dataclasses.replace(self, llm_dtype=resolve_dtype(self.llm_dtype, device or default_device()))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["acoustic_streams"] = [[n, w] for n, w in self.acoustic_streams]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        d = drop_retired(d, RETIRED_MODEL_FIELDS, "ModelConfig")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"config has unknown field(s) {sorted(unknown)}; was it written by a newer acoustemo?")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from acoustemo.data.manifest import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read model config {path}: {e}") from e

    def architecture_diff(self, other: "ModelConfig") -> list[str]:
        """Fields that change the weights and differ between the two configs, as 'name: self vs other'."""
        a, b = self.to_json(), other.to_json()
        return [f"{k}: {a[k]!r} vs {b[k]!r}" for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]]


def drop_retired(fields: dict, retired: dict, what: str) -> dict:
    """`fields` without the retired switches (RETIRED_MODEL_FIELDS, training.config.RETIRED_TRAIN_FIELDS) that
    hold the value that stayed; a retired switch set to anything else is a ConfigError naming it and the fix."""
    changed = {k: fields[k] for k in retired if k in fields and fields[k] != retired[k]}
    if changed:
        listed = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        raise ConfigError(
            f"{what} {listed}: {'this switch was' if len(changed) == 1 else 'these switches were'} removed after "
            f"acoustemo 0.1.0 (measured, not better than the default; see BENCHMARKS.md). Retrain without "
            f"{'it' if len(changed) == 1 else 'them'}, or use acoustemo 0.1.0 for this model")
    return {k: v for k, v in fields.items() if k not in retired}


PRESETS: dict[str, dict] = {
    "paper": dict(
        llm="", llm_dtype="auto", num_queries=32, global_num_queries=32, d_model=768, qformer_layers=2,
        qformer_heads=12, qformer_ffn=3072, max_window_frames=512, visual_num_queries=32, max_seq_len=1024,
    ),
    # Sized by benchmarks/qformer.py (see BENCHMARKS.md): on CPU the LLM step cost is driven by the sequence
    # length, i.e. by K; K=8 per window keeps a 12-utterance dialogue well inside 1024 tokens.
    "cpu-default": dict(
        llm="smollm2-135m", llm_dtype="auto", num_queries=8, global_num_queries=16, d_model=256,
        qformer_layers=2, qformer_heads=4, qformer_ffn=1024, max_window_frames=512, visual_num_queries=8,
        max_seq_len=1024,
    ),
    "debug": dict(
        # LoRA on every linear layer with a large scale: the random tiny LLM needs it to learn within a test.
        llm="tiny-random-llama", llm_dtype="float32", lora_r=8, lora_alpha=64, lora_dropout=0.0,
        lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        acoustic_streams=[("whisper", 13), ("prosody", 3)], num_queries=5, global_num_queries=3, d_model=24,
        qformer_layers=2, qformer_heads=3, qformer_ffn=37, qformer_dropout=0.0, max_window_frames=37,
        visual_num_queries=2, max_seq_len=1024, answer_budget_tokens=64,
    ),
}
