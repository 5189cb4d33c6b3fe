"""The one training loop (paper §4.1), in the spirit of torchtune's lora_finetune_single_device: every variant
(recipe, ablation, precision, accumulation, processes) is a flag of `TrainConfig` / `ModelConfig`, never another
file. Stage 1 (training/align.py) runs first when the recipe asks for it; this module is the LM stage.

    from acoustemo.config import ModelConfig
    from acoustemo.training import TrainConfig, train
    result = train("train.jsonl", "val.jsonl", "runs/exp1", ModelConfig.preset("cpu-default"), TrainConfig())

Run folder DIR:
  train_config.json, config.json   the configs of the run (config.json = ModelConfig; the recipe is recorded)
  run.json                         the manifests it trains on (so `acoustemo train --out DIR --resume` needs no more)
  log.jsonl                        one row per logged step ({"step", "epoch", "loss", "lr", "samples_per_s", ...}),
                                   one per stage-1 epoch, one per validation and a last {"event": "end"}
  loss.png                         training loss per step and validation loss
  last/                            the resume checkpoint (training/checkpoint.py)
  best/                            the model with the best validation metric (never the test split): save_pretrained
                                   files + train_config.json + metrics.json; `acoustemo predict --model DIR/best`

An exact resume needs the same number of processes and the same torch thread count (float sums differ
otherwise); the configs and manifests are checked, and anything else that differs is refused with ConfigError.

Processes: run under `accelerate launch --config_file configs/accelerate/multi-gpu.yaml -m acoustemo train ...`
(or torchrun) for DDP; each process takes its own shard of every epoch's permutation (on a machine without CUDA
the processes run on the CPU with gloo). Accelerate places tensors, autocasts (bf16 / fp16; "auto" is resolved
first by hardware.resolve_training: float32 weights under bf16 autocast on a native-bf16 CPU) and wraps DDP; the
gradient accumulation is explicit here (no_sync on all but the last micro-batch of a group, loss / group size),
so a short last group at an epoch's end is averaged correctly and never spills into the next epoch. FSDP and
DeepSpeed launches are refused (see `_check_launch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from acoustemo.config import ModelConfig
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError
from acoustemo.hardware import default_device, resolve_training
from acoustemo.training.align import Stage1, run_stage1
from acoustemo.training.checkpoint import (TrainerState, gather_digests, load_checkpoint, manifest_fingerprint,
                                           prepare_run_dir, save_checkpoint)
from acoustemo.training.config import RUN_FILE, TrainConfig, default_cache_dir
from acoustemo.training.data import (acoustic_stats, batch_loader, epoch_batches, epoch_seed, feature_loaders,
                                     make_dataset, steps_per_epoch, to_device, with_utterances)
from acoustemo.training.runlog import RunLog, plot_loss
from acoustemo.training.schedule import build_scheduler, warmup_steps_for
from acoustemo.training.validate import validate

log = logging.getLogger(__name__)


def freeze_acoustic(model) -> None:
    """TrainConfig.freeze_acoustic: everything outside the LLM (Q-Formers, projections) stops training."""
    for name, p in model.named_parameters():
        if not name.startswith("llm."):
            p.requires_grad_(False)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only; weight decay on matrices, none on 1-d parameters."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in sorted(((n, p) for n, p in model.named_parameters() if p.requires_grad), key=lambda t: t[0]):
        groups.setdefault(("lora_" in name, p.ndim >= 2), []).append(p)
    if not groups:
        raise ConfigError("the model has no trainable parameters; check the ModelConfig (LoRA targets, ablation)")
    return torch.optim.AdamW(
        [{"params": ps, "weight_decay": cfg.weight_decay if matrix else 0.0,
          "lr": cfg.lr * (cfg.lora_lr_scale if lora else 1.0)} for (lora, matrix), ps in sorted(groups.items())],
        lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    final_loss: float | None  # the last optimizer step's training loss (mean over processes)
    best_dir: Path | None
    best_step: int | None
    best_value: float | None  # of TrainConfig.best_metric
    samples_per_s: float  # clips per second of time spent in optimizer steps (all processes)
    params_sha256: list[str] = field(default_factory=list)  # one per process; all equal when in sync



def train(train_manifest: str | Path, val_manifest: str | Path | None, out_dir: str | Path,
          model_config: ModelConfig, train_config: TrainConfig, resume: bool = False,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train AcoustEmo on `train_manifest`, choose the best model on `val_manifest`; see the module docstring.

    `on_step(step, loss)` is called after every optimizer step (and after its checkpoint, if one is due), on
    every process; raising from it stops training there (tests use it to simulate a crash).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    from acoustemo.data.manifest import read_manifest

    cfg, mcfg, out_dir = train_config, model_config, Path(out_dir)
    # "auto" dtypes -> this hardware's choice (hardware.resolve_training), saved with the run as what it used
    weights, autocast = resolve_training(mcfg.llm_dtype, cfg.mixed_precision, default_device())
    mcfg, cfg = dataclasses.replace(mcfg, llm_dtype=weights), dataclasses.replace(cfg, mixed_precision=autocast)
    _check_hardware(cfg)
    _allow_precision(cfg.mixed_precision)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision,
        # a batch of clips without utterances leaves the utterance Q-Former unused; DDP must not wait for it
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    _check_launch(accelerator, cfg)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    train_clips = read_manifest(train_manifest)
    val_clips = read_manifest(val_manifest) if val_manifest else []
    if not train_clips:
        raise ConfigError(f"{train_manifest} holds no clips; give a training manifest with at least one line")
    fingerprints = {"train": manifest_fingerprint(train_clips), "val": manifest_fingerprint(val_clips)}
    train_clips, val_clips = with_utterances(train_clips), with_utterances(val_clips)
    # the resolved cache folder is saved with the config, so `acoustemo predict` finds the same cache
    cfg = dataclasses.replace(cfg, cache_dir=str(Path(cfg.cache_dir or default_cache_dir(out_dir)).resolve()))
    cfg_cache = Path(cfg.cache_dir)

    checkpoint = prepare_run_dir(out_dir, mcfg, cfg, resume, world, fingerprints, accelerator)
    if main:
        from acoustemo.version import __version__

        write_text_atomic(out_dir / RUN_FILE, json.dumps({
            "train_manifest": str(Path(train_manifest).resolve()),
            "val_manifest": str(Path(val_manifest).resolve()) if val_manifest else None,
            "acoustemo_version": __version__, "processes": world}, indent=2) + "\n")
    set_seed(cfg.seed)
    loaders = feature_loaders(train_clips + val_clips, cfg, cfg_cache, accelerator)

    from acoustemo.model.acoustemo import AcoustEmoModel

    model = AcoustEmoModel.from_pretrained(checkpoint / "model", mcfg) if checkpoint else AcoustEmoModel(mcfg)
    if not checkpoint:  # a resumed model already carries the statistics of its first start
        model.set_acoustic_stats(*acoustic_stats(train_clips, loaders[0], model.cfg))
    if cfg.answer_bank:
        from acoustemo.data.prompt import training_answers

        model.answer_bank = training_answers(train_clips)
    if cfg.gradient_checkpointing:
        _enable_checkpointing(model.llm)
    train_ds = make_dataset(train_clips, loaders, model)
    val_ds = make_dataset(val_clips, loaders, model) if val_clips else None
    stage1 = Stage1()
    if not checkpoint and cfg.align_epochs:  # a resumed run's checkpoint already holds the aligned weights
        stage1 = run_stage1(model, cfg, train_ds, train_clips, val_ds, val_clips)
    if cfg.freeze_acoustic:
        freeze_acoustic(model)

    per_epoch = steps_per_epoch(len(train_clips), cfg.batch_size, cfg.grad_accum_steps, world)
    total_steps = per_epoch * cfg.epochs if not cfg.max_steps else min(cfg.max_steps, per_epoch * cfg.epochs)
    warmup = warmup_steps_for(total_steps, cfg.warmup_ratio)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, total_steps, warmup)
    model, optimizer = accelerator.prepare(model, optimizer)

    state = TrainerState(epoch_seed=epoch_seed(cfg.seed, 0), manifests=fingerprints)
    if checkpoint:
        state = load_checkpoint(checkpoint, optimizer, scheduler, accelerator)
    elif main:
        if val_ds is None:
            log.warning("no validation manifest: DIR/best will not be written (predict falls back to DIR/last/model)")
        log.info("training %s: %d train / %d val clips, %d processes, %d steps (%d per epoch, %d warm-up); %s",
                 out_dir, len(train_clips), len(val_clips), world, total_steps, per_epoch, warmup,
                 accelerator.unwrap_model(model).parameter_report())
    runlog = RunLog(out_dir / "log.jsonl", main)
    runlog.truncate_after(state.step)
    for row in stage1.log_rows():
        runlog.write(row)

    progress = _progress(cfg.progress and main, total_steps, state.step)
    params = [p for p in model.parameters() if p.requires_grad]
    # samples/s counts the time in optimizer steps (data, forward, backward, update), not validation or saving
    window_samples, window_s, busy_s, samples_start = 0, 0.0, 0.0, state.samples_seen
    while state.step < total_steps and state.epoch < cfg.epochs:
        batches = epoch_batches(len(train_ds), state.epoch_seed, cfg.batch_size, rank, world)
        groups = [batches[i : i + cfg.grad_accum_steps] for i in range(0, len(batches), cfg.grad_accum_steps)]
        first = state.position // cfg.grad_accum_steps
        loader = batch_loader(train_ds, [b for g in groups[first:] for b in g], cfg, model, accelerator)
        batch_iter = iter(loader)
        for group in groups[first:]:
            t0 = time.perf_counter()
            loss, lr = _optimizer_step(model, optimizer, scheduler, batch_iter, len(group), params, cfg, accelerator)
            window_s += time.perf_counter() - t0
            n_samples = sum(len(b) for b in group) * world
            state.step, state.position = state.step + 1, state.position + len(group)
            state.samples_seen += n_samples
            window_samples += n_samples
            state.last_loss, row_epoch = loss, state.epoch + 1
            epoch_done = state.position >= len(batches)
            if epoch_done:
                state.epoch, state.position = state.epoch + 1, 0
                state.epoch_seed = epoch_seed(cfg.seed, state.epoch)
            if state.step % cfg.log_every_steps == 0 or state.step == total_steps:
                rate = window_samples / max(window_s, 1e-9)
                runlog.write({"step": state.step, "epoch": row_epoch, "loss": loss, "lr": lr,
                              "samples_per_s": round(rate, 3)})
                progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.2f}")
                busy_s, window_samples, window_s = busy_s + window_s, 0, 0.0
            progress.update(1)
            last = state.step >= total_steps
            if val_ds is not None and (epoch_done or last or (cfg.eval_every_steps and
                                                              state.step % cfg.eval_every_steps == 0)):
                validate(model, val_ds, cfg, accelerator, state, row_epoch, out_dir, runlog)
            if epoch_done or last or (cfg.save_every_steps and state.step % cfg.save_every_steps == 0):
                save_checkpoint(out_dir, model, optimizer, scheduler, state, cfg, accelerator)
            if main and (epoch_done or last):
                plot_loss(runlog.rows(), out_dir / "loss.png")
            if on_step is not None:
                on_step(state.step, loss)
            if last or epoch_done:
                break
    progress.close()
    digests = gather_digests(accelerator, model)
    busy_s += window_s
    rate = (state.samples_seen - samples_start) / busy_s if busy_s > 0 else 0.0
    runlog.write({"step": state.step, "event": "end", "final_loss": state.last_loss, "best_step": state.best_step,
                  "best_" + cfg.best_metric: state.best_value, "samples_per_s": round(rate, 3),
                  "params_sha256": digests})
    if main:
        plot_loss(runlog.rows(), out_dir / "loss.png")
    accelerator.wait_for_everyone()
    best = out_dir / "best"
    return TrainResult(out_dir, state.step, state.last_loss, best if best.exists() else None, state.best_step,
                       state.best_value, rate, digests)


# ------------------------------------------------------------------------------------------------ loop pieces
def _optimizer_step(model, optimizer, scheduler, batch_iter, n_micro: int, params, cfg: TrainConfig,
                    accelerator) -> tuple[float, float]:
    """One update from `n_micro` micro-batches: (loss averaged over them and the processes, lr it used).

    Gradients of all but the last micro-batch stay local (no_sync); each loss is divided by the group's real
    size, so a short last group of an epoch is a plain mean too.
    """
    model.train()
    loss_sum = torch.zeros((), device=accelerator.device)
    for j in range(n_micro):
        batch = to_device(next(batch_iter), accelerator.device)
        with contextlib.nullcontext() if j == n_micro - 1 else accelerator.no_sync(model):
            out = model(**batch, emotion_weight=cfg.label_loss_weight)
            accelerator.backward(out.loss / n_micro)
        loss_sum += out.loss.detach() / n_micro
    if cfg.max_grad_norm:
        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: the schedule counts real updates only
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(accelerator.reduce(loss_sum, reduction="mean")), lr


def _check_hardware(cfg: TrainConfig) -> None:
    if cfg.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("mixed_precision='fp16' needs a CUDA GPU (CPU autocast has no fp16 loss scaling); on CPU "
                          "use 'bf16' (fast on CPUs with AVX512-BF16 / AMX) or 'no'")


def _allow_precision(mixed_precision: str) -> None:
    """Let this run's Accelerator take its own autocast. Accelerate keeps one state per process and refuses another
    mixed precision in it (a second `train` in a notebook, `bench run`'s rows in one process, the tests), so that
    state, not the process group (PartialState), is cleared when it holds another."""
    from accelerate.state import AcceleratorState

    held = AcceleratorState._shared_state.get("_mixed_precision")
    if held is not None and held != mixed_precision:
        AcceleratorState._reset_state()


def _check_launch(accelerator, cfg: TrainConfig) -> None:
    """Refuse launch modes this loop does not implement, instead of training wrongly or saving half a model."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise ConfigError(
            f"acoustemo train runs single-process or DDP, not {accelerator.distributed_type.value}: only the "
            f"Q-Formers, projections and LoRA train (a few % of the weights), so sharding buys little, and its "
            f"exact-resume checkpoints need whole optimizer states; launch with a DDP config "
            f"(configs/accelerate/multi-gpu.yaml) and use --gradient-checkpointing / --mixed-precision bf16 to fit "
            f"a large LLM on each GPU"
        )
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched not in (None, "no", cfg.mixed_precision) and accelerator.is_main_process:
        log.warning("the launcher asked for mixed precision %r but the run uses TrainConfig.mixed_precision=%r "
                    "(saved with the run); pass --mixed-precision %s to change it", launched, cfg.mixed_precision,
                    launched)



def _enable_checkpointing(llm) -> None:
    """Recompute the LLM's layer activations in backward (non-reentrant: the inputs come from the Q-Formers)."""
    base = llm.get_base_model()
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False


def _progress(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", disable=not enabled, dynamic_ncols=True)
