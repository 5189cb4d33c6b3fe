"""TrainConfig: every knob of the training loop, the named recipes, and how a run's configs are resolved.

Saved as train_config.json in the run folder and beside each model (the recipe that produced it included).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from acoustemo.config import RETIRED_MODEL_FIELDS, ModelConfig, drop_retired
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

PRECISIONS = ("auto", "no", "bf16", "fp16")
BEST_METRICS = ("val_loss", "val_avg")
TRAIN_CONFIG_NAME = "train_config.json"
RUN_FILE = "run.json"  # the manifests a run was started on, so `--resume` alone can continue it
# TrainConfig fields that do not change the trajectory: a resumed run may use other values.
OPERATIONAL_FIELDS = frozenset({"log_every_steps", "num_workers", "cache_dir", "progress", "save_every_steps"})
# Switches measured and removed after acoustemo 0.1.0 (#34), with the value that stayed (config.drop_retired):
# feature augmentation, and stage 1's max pooling over windows (the mean of the tokens stayed).
RETIRED_TRAIN_FIELDS = {"augment": [], "align_pooling": "mean"}


# Named recipes: the values of TrainConfig's recipe fields (those left None) under each name.
RECIPES: dict[str, dict] = {
    # Stage 1 teaches the Q-Formers, without the LLM, to point at the label words; the LM stage then trains LoRA
    # alone to read the frozen tokens, the answer's "Emotions:" line weighted x10. What learns on a few hundred
    # clips where the paper's stage collapses (BENCHMARKS.md, issues #6 and #17). Stage 1 runs a cosine schedule and
    # keeps its best epoch on the validation split (align_schedule, align_select).
    "two-stage": dict(epochs=1, lr=1e-4, lora_lr_scale=10.0, align_epochs=12, align_mode="labels",
                      freeze_acoustic=True, label_loss_weight=10.0),
    # The paper's single stage (§4.1): AdamW 2e-5, 3 epochs, Eq. 4 as a plain mean, everything trains together.
    # For paper-scale runs with enough data; on a few hundred clips it answers every clip alike.
    "paper": dict(epochs=3, lr=2e-5, lora_lr_scale=1.0, align_epochs=0, align_mode="answer",
                  freeze_acoustic=False, label_loss_weight=1.0),
    # No recipe: every recipe field as given (the paper's value where one is not given).
    "custom": {},
}
RECIPES["custom"] = dict(RECIPES["paper"])


@dataclass
class TrainConfig:
    """Every knob of the training loop; saved as train_config.json in the run folder and beside each model."""

    # The recipe (RECIPES below) fills every field marked "recipe" that is left None; a field given explicitly wins.
    recipe: str = "two-stage"
    epochs: int | None = None  # recipe
    batch_size: int = 1  # clips per micro-batch per process
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    lr: float | None = None  # recipe
    # LoRA's learning rate = lr * lora_lr_scale (1.0 = the paper's single rate).
    lora_lr_scale: float | None = None  # recipe
    # Stage 1 (training/align.py): epochs in which only the Q-Formers and projections learn, without the LLM;
    # 0 = the paper's single stage.
    align_epochs: int | None = None  # recipe
    align_lr: float = 1e-3
    # Stage 1's lr schedule: "cosine" (5 % warm-up, then cosine to 0) or "constant"
    align_schedule: str = "cosine"
    # "best": score the stage-1 heads on the validation split after every epoch and keep the best epoch's weights
    # (early stopping; needs a validation manifest and align_mode "labels"); "last": keep the last epoch
    align_select: str = "best"
    align_batch_size: int = 16
    align_gain: float = 4.0  # "answer" mode: scale of each answer's deviation from the corpus-mean answer
    # "labels": classify the label words with heads tied to their text embeddings; "answer": regress the gold
    # answer's text embedding (training/align.py)
    align_mode: str | None = None  # recipe
    # The LM stage trains LoRA only: the Q-Formers and projections stay as stage 1 (or the checkpoint) left them.
    freeze_acoustic: bool | None = None  # recipe
    # Weight of the answer's "Emotions: ..." tokens in the training loss relative to the explanation's (1.0 = the
    # paper's plain mean, Eq. 4). The explanation's ~35 tokens otherwise swamp the ~5 that carry the labels.
    label_loss_weight: float | None = None  # recipe
    # Save the training answers beside the weights (answer_bank.json): prediction's drafts guess from them, which
    # decodes ~1.7x faster with the same answers. Off by default: the checkpoint then carries the corpus' text.
    answer_bank: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05  # on matrices; biases, norms and other 1-d parameters get none (as LAVIS/BLIP-2)
    eps: float = 1e-8
    warmup_ratio: float = 0.05  # linear warm-up over this fraction of the optimizer steps, then cosine to 0
    max_grad_norm: float = 1.0  # 0 = no clipping (the paper is silent; 1.0 is LAVIS' and HF's default)
    max_steps: int = 0  # > 0: stop after this many optimizer steps (the schedule spans them); 0 = `epochs` decide
    # autocast: "auto" (bf16 over float32 weights on a CPU with native bf16 when llm_dtype is "auto", else "no";
    # hardware.resolve_training), "no", "bf16", "fp16" (fp16 needs a GPU). A run saves what it used.
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False  # recompute the LLM's activations in backward (saves memory)
    seed: int = 0
    save_every_steps: int = 200  # checkpoint `last/` every N optimizer steps (0 = only at epoch ends)
    eval_every_steps: int = 0  # validate every N optimizer steps (0 = only at epoch ends)
    best_metric: str = "val_loss"  # "val_loss" (lower is better) or "val_avg" (set-level Avg of generated labels)
    max_new_tokens: int = 64  # generation length for the val_avg metric
    acoustic_encoder: str = "default"  # feature encoder (acoustemo.features); its streams must match the model
    # the encoder's constructor options, e.g. {"compute_type": "int8"}; None = this release's defaults, pinned
    # here (features.registry.default_acoustic_options) so that predict rebuilds the same features later
    acoustic_options: dict | None = None
    visual_encoder: str | None = None  # used when the model has a visual branch (ModelConfig.visual_dim)
    cache_dir: str | None = None  # feature cache; None = <out_dir>/../features
    num_workers: int = 0  # DataLoader workers reading the feature cache
    log_every_steps: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError(f"invalid TrainConfig: recipe={self.recipe!r} must be one of {', '.join(RECIPES)}")
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.acoustic_options is None:
            from acoustemo.features.registry import default_acoustic_options

            self.acoustic_options = default_acoustic_options(self.acoustic_encoder)
        if not isinstance(self.acoustic_options, dict):
            raise ConfigError(f"invalid TrainConfig: acoustic_options={self.acoustic_options!r} must be a JSON object of "
                              f"the encoder's options, e.g. {{\"compute_type\": \"int8\"}}")
        problems = []
        for name in ("epochs", "batch_size", "grad_accum_steps", "log_every_steps", "max_new_tokens",
                     "align_batch_size"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("max_steps", "save_every_steps", "eval_every_steps", "num_workers", "align_epochs"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if not self.label_loss_weight > 0:
            problems.append(f"label_loss_weight={self.label_loss_weight} must be > 0")
        if self.align_mode not in ("answer", "labels"):
            problems.append(f"align_mode={self.align_mode!r} must be 'answer' or 'labels'")
        if self.align_schedule not in ("cosine", "constant"):
            problems.append(f"align_schedule={self.align_schedule!r} must be 'cosine' or 'constant'")
        if self.align_select not in ("best", "last"):
            problems.append(f"align_select={self.align_select!r} must be 'best' or 'last'")
        if not self.align_lr > 0 or not self.align_gain > 0:
            problems.append(f"align_lr={self.align_lr} and align_gain={self.align_gain} must be > 0")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} must be > 0")
        if not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas={self.betas} must lie in [0, 1)")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.eps <= 0:
            problems.append("weight_decay and max_grad_norm must be >= 0 and eps > 0")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio={self.warmup_ratio} must lie in [0, 1)")
        if self.mixed_precision not in PRECISIONS:
            problems.append(f"mixed_precision={self.mixed_precision!r} must be one of {', '.join(PRECISIONS)}")
        if self.best_metric not in BEST_METRICS:
            problems.append(f"best_metric={self.best_metric!r} must be one of {', '.join(BEST_METRICS)}")
        if problems:
            raise ConfigError("invalid TrainConfig: " + "; ".join(problems))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = drop_retired(d, RETIRED_TRAIN_FIELDS, "TrainConfig")
        if "recipe" not in d and set(RECIPES["paper"]) <= set(d):  # a whole config saved before recipes
            d = {**d, "recipe": "paper" if all(d[k] == v for k, v in RECIPES["paper"].items()) else "custom"}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"train config has unknown field(s) {sorted(unknown)}; known: "
                              f"{[f.name for f in dataclasses.fields(cls)]}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read train config {path}: {e}") from e
        if "acoustic_options" not in d:
            from acoustemo.features.registry import WHISPER_BASED

            # a run saved before the options were recorded: its Whisper features were int8, the default then
            d["acoustic_options"] = {"compute_type": "int8"} if d.get("acoustic_encoder", "default") in WHISPER_BASED else {}
        return cls.from_json(d)

    def trajectory_diff(self, other: "TrainConfig") -> list[str]:
        """Fields that change the training trajectory and differ, as 'name: self vs other'."""
        a, b = self.to_json(), other.to_json()
        return [f"{k}: {a[k]!r} vs {b[k]!r}" for k in a if k not in OPERATIONAL_FIELDS and a[k] != b[k]]


def load_config_file(path: str | Path) -> tuple[dict, dict]:
    """(model fields, train fields) from a JSON file `{"preset"?, "model": {...}, "train": {...}}`.

    A flat JSON object is accepted too: each key goes to whichever config has a field of that name.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}; it must be a JSON object "
                          f"{{\"model\": {{...}}, \"train\": {{...}}}}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object {{\"model\": {{...}}, \"train\": {{...}}}}")
    # a retired switch goes where it belonged, so that it is refused with its own message (config.drop_retired)
    model_names = {f.name for f in dataclasses.fields(ModelConfig)} | set(RETIRED_MODEL_FIELDS)
    train_names = {f.name for f in dataclasses.fields(TrainConfig)} | set(RETIRED_TRAIN_FIELDS)
    model, train_ = dict(data.pop("model", None) or {}), dict(data.pop("train", None) or {})
    if "preset" in data:
        model.setdefault("preset", data.pop("preset"))
    for key, value in data.items():
        if key in model_names:
            model[key] = value
        elif key in train_names:
            train_[key] = value
        else:
            raise ConfigError(f"config file {path}: unknown key {key!r}; use \"model\" / \"train\" sections or "
                              f"a field of ModelConfig or TrainConfig")
    return model, train_



# ------------------------------------------------------------------------------------------------ configs
def resolve_configs(preset: str | None = None, config_file: str | Path | None = None,
                    model_overrides: dict | None = None, train_overrides: dict | None = None,
                    ) -> tuple[ModelConfig, TrainConfig]:
    """The configs of a run: preset (default "cpu-default") <- config file <- explicit overrides.

    The model's `acoustic_streams` follow the acoustic encoder (TrainConfig.acoustic_encoder) unless the config
    file or the overrides set them: the streams are a property of the features, not a free choice.
    """
    model_fields, train_fields = load_config_file(config_file) if config_file else ({}, {})
    preset = preset or model_fields.pop("preset", None) or "cpu-default"
    model_fields.pop("preset", None)
    model_fields.update(model_overrides or {})
    train_cfg = TrainConfig.from_json({**train_fields, **(train_overrides or {})})
    if "acoustic_streams" not in model_fields:
        from acoustemo.features.registry import get_acoustic_encoder

        model_fields["acoustic_streams"] = list(get_acoustic_encoder(train_cfg.acoustic_encoder,
                                                                     **train_cfg.acoustic_options).streams)
    return ModelConfig.preset(preset, **model_fields), train_cfg


def load_run_configs(out_dir: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """The configs a run folder was started with (for `--resume` without repeating the options)."""
    out_dir = Path(out_dir)
    if not (out_dir / TRAIN_CONFIG_NAME).is_file() or not (out_dir / "config.json").is_file():
        raise ConfigError(f"{out_dir} holds no training run (no {TRAIN_CONFIG_NAME} / config.json); "
                          f"start one without --resume")
    return ModelConfig.load(out_dir / "config.json"), TrainConfig.load(out_dir / TRAIN_CONFIG_NAME)


def default_cache_dir(out_dir: str | Path) -> Path:
    """Features shared by the runs of one folder: <out_dir>/../features."""
    return Path(out_dir).resolve().parent / "features"


