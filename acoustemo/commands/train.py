"""`acoustemo train`: the two-stage recipe by default (`--recipe paper` = the paper's §4.1); every option maps to a ModelConfig / TrainConfig field.

    acoustemo train --train train.jsonl --val val.jsonl --out runs/exp1
    acoustemo train --train train.jsonl --val val.jsonl --out runs/nog --ablation no-global --max-steps 50
    acoustemo train --out runs/exp1 --resume            # continues exactly where a killed run stopped
    accelerate launch --multi_gpu --num_processes 4 -m acoustemo train --train ... --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from acoustemo.config import ABLATIONS, PRESETS
from acoustemo.errors import ConfigError

# recipe flag (argparse dest) -> TrainConfig field, for add_recipe_arguments
RECIPE_FLAGS = {"recipe": "recipe", "lora_lr_scale": "lora_lr_scale", "align_epochs": "align_epochs", "align_lr": "align_lr",
                "align_mode": "align_mode", "freeze_acoustic": "freeze_acoustic", "label_loss_weight": "label_loss_weight",
                "align_schedule": "align_schedule", "align_select": "align_select", "answer_bank": "answer_bank"}

# CLI flag -> TrainConfig field (flags left out keep the config file's / default value)
_TRAIN_FLAGS = {
    "epochs": "epochs", "batch_size": "batch_size", "grad_accum": "grad_accum_steps", "lr": "lr",
    "weight_decay": "weight_decay", "warmup_ratio": "warmup_ratio", "max_steps": "max_steps",
    "mixed_precision": "mixed_precision", "gradient_checkpointing": "gradient_checkpointing", "seed": "seed",
    "save_every": "save_every_steps", "eval_every": "eval_every_steps", "best_metric": "best_metric",
    "encoder": "acoustic_encoder", "visual_encoder": "visual_encoder", "cache_dir": "cache_dir",
    "num_workers": "num_workers", "log_every": "log_every_steps", **RECIPE_FLAGS,
}


def add_recipe_arguments(g) -> None:
    """The recipe flags `train` and `bench run` share (argparse group g); names follow RECIPE_FLAGS."""
    from acoustemo.training.config import RECIPES

    two, paper = RECIPES["two-stage"], RECIPES["paper"]
    g.add_argument("--recipe", choices=sorted(RECIPES), help="two-stage (default): stage 1 teaches the Q-Formers "
                   "the label words without the LLM, then LoRA learns to read them; paper: the paper's single stage "
                   "(for paper-scale data); custom: only the flags given. The flags below override the recipe")
    g.add_argument("--lora-lr-scale", type=float, metavar="X",
                   help=f"LoRA's rate = --lr x X (two-stage {two['lora_lr_scale']}, paper {paper['lora_lr_scale']})")
    g.add_argument("--align-epochs", type=int, metavar="N", help="stage-1 epochs before the LLM trains (two-stage "
                   f"{two['align_epochs']}, paper 0; see acoustemo/training/align.py)")
    g.add_argument("--align-lr", type=float, help="learning rate of stage 1 (default 1e-3)")
    g.add_argument("--align-mode", choices=("answer", "labels"), help="stage-1 objective: classify the label words "
                   "with heads tied to their text embeddings (two-stage), or regress the gold answer's text embedding")
    g.add_argument("--align-schedule", choices=("cosine", "constant"), help="stage-1 lr schedule (default cosine: "
                   "5%% warm-up, then cosine to 0)")
    g.add_argument("--align-select", choices=("best", "last"), help="best (default): score the stage-1 heads on "
                   "--val after every epoch and keep the best epoch (early stopping); last: keep the last epoch")
    g.add_argument("--freeze-acoustic", action=argparse.BooleanOptionalAction, default=None,
                   help="the LM stage trains LoRA only; the Q-Formers keep their stage-1 weights (two-stage: on)")
    g.add_argument("--label-loss-weight", type=float, metavar="W", help="weight of the answer's 'Emotions:' tokens "
                   f"in the loss relative to the explanation's (two-stage {two['label_loss_weight']}, paper 1.0 = "
                   "the plain mean of Eq. 4)")
    g.add_argument("--answer-bank", action="store_true", default=None, help="save the training answers beside the "
                   "checkpoint (answer_bank.json): prediction guesses tokens from them and decodes ~1.7x faster, with "
                   "the same answers; the checkpoint then carries your corpus' answer text")


def add_reference_argument(p) -> None:
    """--acoustic-reference, shared by `train` and `bench run` (ModelConfig.acoustic_reference)."""
    from acoustemo.config import ACOUSTIC_REFERENCES

    p.add_argument("--acoustic-reference", choices=ACOUSTIC_REFERENCES, help="read the acoustic frames as the "
                   "encoder gives them (absolute, the default) or against the clip: each channel minus its mean over "
                   "the clip's speech, so gain, a voice's overall pitch and an engine's timbre cancel (clip)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", metavar="M.jsonl", help="training manifest (with labels and descriptions)")
    p.add_argument("--val", metavar="M.jsonl", help="validation manifest: chooses DIR/best (never pass the test split)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: configs, log.jsonl, loss.png, last/, best/")
    p.add_argument("--config", metavar="FILE", help='JSON {"preset"?, "model": {...}, "train": {...}} (or flat fields)')
    p.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default cpu-default)")
    p.add_argument("--ablation", choices=ABLATIONS, help="paper Table 2 variant (default full)")
    add_reference_argument(p)
    p.add_argument("--llm", metavar="NAME|DIR", help="the LLM: 'smollm2-135m' (bundled) or a local Hugging Face "
                   "model folder, e.g. /models/Llama-2-7b-hf (needed by --preset paper)")
    p.add_argument("--llm-dtype", choices=("auto", "float32", "bfloat16", "float16"), help="the LLM's weight "
                   "dtype (default auto: float32 on CPUs, under bf16 autocast where bf16 is native, see "
                   "--mixed-precision; bfloat16 on GPUs that support it, else float16; the run's config.json records "
                   "the one used)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly (configs reloaded from it)")
    g = p.add_argument_group("training (TrainConfig; unset recipe fields come from --recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="clips per micro-batch per process (default 1)")
    g.add_argument("--grad-accum", type=int, metavar="N", help="micro-batches per optimizer step (default 1)")
    g.add_argument("--lr", type=float, help="peak learning rate (two-stage 1e-4, paper 2e-5)")
    add_recipe_arguments(g)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--warmup-ratio", type=float)
    g.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps (quick runs)")
    g.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"],
                   help="autocast; auto (default): bf16 over float32 weights on a CPU with native bf16, else no "
                        "(fp16 needs a GPU)")
    g.add_argument("--gradient-checkpointing", action="store_true", default=None, help="recompute LLM activations")
    g.add_argument("--seed", type=int)
    g.add_argument("--save-every", type=int, metavar="N", help="checkpoint DIR/last every N steps (and each epoch)")
    g.add_argument("--eval-every", type=int, metavar="N", help="validate every N steps (and each epoch)")
    g.add_argument("--best-metric", choices=["val_loss", "val_avg"], help="what chooses DIR/best")
    g.add_argument("--encoder", help="acoustic feature encoder (default 'default'); sets the model's streams")
    g.add_argument("--visual-encoder", help="visual feature encoder, for models with a visual branch")
    g.add_argument("--cache-dir", metavar="DIR", help="feature cache (default DIR/../features)")
    g.add_argument("--num-workers", type=int)
    g.add_argument("--log-every", type=int, metavar="N")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to DIR/log.jsonl)")


def run(args: argparse.Namespace) -> int:
    from acoustemo.training import load_run_configs, resolve_configs, train

    train_overrides = {field: getattr(args, flag) for flag, field in _TRAIN_FLAGS.items()
                       if getattr(args, flag) is not None}
    if args.no_progress:
        train_overrides["progress"] = False
    model_overrides = {k: v for k, v in (("ablation", args.ablation), ("llm", args.llm),
                                         ("llm_dtype", args.llm_dtype),
                                         ("acoustic_reference", args.acoustic_reference)) if v}
    if args.resume and not (args.preset or args.config):
        model_cfg, train_cfg = load_run_configs(args.out)  # the run's own configs; flags may still change them
        model_cfg = type(model_cfg).from_json({**model_cfg.to_json(), **model_overrides})
        train_cfg = type(train_cfg).from_json({**train_cfg.to_json(), **train_overrides})
    else:
        model_cfg, train_cfg = resolve_configs(args.preset, args.config, model_overrides, train_overrides)
    train_manifest, val_manifest = args.train, args.val
    if args.resume and train_manifest is None:
        train_manifest, val_manifest = _saved_manifests(Path(args.out), val_manifest)
    if train_manifest is None:
        raise ConfigError("--train M.jsonl is required (only --resume can find it in the run folder)")
    result = train(train_manifest, val_manifest, args.out, model_cfg, train_cfg, resume=args.resume)
    print(json.dumps({"out": str(result.out_dir), "steps": result.steps, "final_loss": result.final_loss,
                      "best": str(result.best_dir) if result.best_dir else None, "best_step": result.best_step,
                      train_cfg.best_metric: result.best_value, "samples_per_s": round(result.samples_per_s, 3)}))
    return 0


def _saved_manifests(out: Path, val: str | None) -> tuple[str, str | None]:
    from acoustemo.training import RUN_FILE

    try:
        saved = json.loads((out / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"{out} does not record its manifests; pass --train (and --val) with --resume") from None
    return saved["train_manifest"], val if val is not None else saved.get("val_manifest")
