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
                                   (+ stage1_heads.json: stage 1's label heads, when it ran in "labels" mode and
                                   the LM stage froze the Q-Formers; `predict --heads veto` reads them)

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
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from acoustemo.config import ModelConfig
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError
from acoustemo.hardware import default_device, resolve_training
from acoustemo.training.checkpoint import (TrainerState, gather_digests, load_checkpoint, manifest_fingerprint,
                                           prepare_run_dir, save_best, save_checkpoint)
from acoustemo.training.config import RUN_FILE, TrainConfig, default_cache_dir

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ schedule
def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio) if warmup_ratio > 0 else 0


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base lr for optimizer update number `step` (0-based).

    Linear warm-up (the first update already moves: (step+1)/warmup), then cosine from 1 towards 0 over the rest.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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


def build_scheduler(optimizer, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup_steps))


# ------------------------------------------------------------------------------------------------ data order
def epoch_seed(seed: int, epoch: int) -> int:
    """The permutation seed of one epoch (recorded in checkpoints so the order can be checked on resume)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def epoch_batches(num_items: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """This process's micro-batches (lists of item indices) for one epoch.

    One permutation shared by all processes (seeded by `seed` alone), padded by wrapping around to a multiple of
    `world_size` so every process gets the same number of batches (DDP needs that), then dealt out round-robin.
    """
    order = np.random.default_rng(seed).permutation(num_items).tolist()
    pad = (-num_items) % world_size
    order += (order * (pad // max(num_items, 1) + 1))[:pad]
    shard = order[rank::world_size]
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]


def steps_per_epoch(num_items: int, batch_size: int, grad_accum_steps: int, world_size: int = 1) -> int:
    per_rank = math.ceil(num_items / world_size)
    return math.ceil(math.ceil(per_rank / batch_size) / grad_accum_steps)



# ------------------------------------------------------------------------------------------------ logging
class RunLog:
    """log.jsonl in the run folder (main process only); rows after a resumed step are dropped on resume."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        keep = [row for row in self.rows() if row.get("step", 0) <= step and row.get("event") != "end"]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        return rows

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def plot_loss(rows: list[dict], out_png: Path) -> Path:
    """Training loss per step (and validation loss) as a PNG, written atomically (matplotlib Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train_rows = [r for r in rows if "loss" in r and "step" in r]
    val_rows = [r for r in rows if r.get("val_loss") is not None]
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if train_rows:
        ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], lw=1, label="train loss")
    if val_rows:
        ax.plot([r["step"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (answer tokens)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    tmp = out_png.with_name(f"{out_png.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, out_png)
    return out_png



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
    train_clips, val_clips = _with_utterances(train_clips), _with_utterances(val_clips)
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
    loaders = _feature_loaders(train_clips + val_clips, cfg, cfg_cache, accelerator)

    from acoustemo.model.acoustemo import AcoustEmoModel, LabelHeads

    model = AcoustEmoModel.from_pretrained(checkpoint / "model", mcfg) if checkpoint else AcoustEmoModel(mcfg)
    if not checkpoint:  # a resumed model already carries the statistics of its first start
        model.set_acoustic_stats(*acoustic_stats(train_clips, loaders[0], mcfg))
    if cfg.answer_bank:
        from acoustemo.data.prompt import format_answer

        model.answer_bank = [format_answer(c.labels, c.description) for c in train_clips]
    if cfg.gradient_checkpointing:
        _enable_checkpointing(model.llm)
    augment = None
    if cfg.augment:  # the training clips' features only (data/augment.py); never validation or test
        from acoustemo.data.augment import FeatureAugment

        augment = FeatureAugment(cfg.augment, cfg.seed, mcfg.input_streams)
    train_ds = _dataset(train_clips, loaders, model, mcfg, with_answers=True, augment=augment)
    val_ds = _dataset(val_clips, loaders, model, mcfg, with_answers=True) if val_clips else None
    align_losses, align_scores, align_val, align_kept, aligned_heads = [], [], None, None, None
    if not checkpoint and cfg.align_epochs:  # a resumed run's checkpoint already holds the aligned weights
        from acoustemo.training.align import align_acoustic, stage1_labels

        def score(result):  # what the stage-1 heads alone answer on the validation split
            return _set_level_avg(val_clips, stage1_labels(model, val_ds, val_clips, result, cfg.align_pooling))

        select = cfg.align_select == "best" and val_ds is not None and cfg.align_mode == "labels"
        aligned = align_acoustic(model, train_ds, train_clips, cfg.align_epochs, cfg.align_lr,
                                 cfg.align_batch_size, cfg.align_gain, cfg.weight_decay, cfg.seed, cfg.align_mode,
                                 cfg.align_pooling, evaluate=score if select else None, keep_best=select,
                                 schedule=cfg.align_schedule)
        align_losses, align_scores, align_kept = aligned.losses, aligned.val_scores, aligned.best_epoch
        aligned_heads = aligned if aligned.words else None
        if val_ds is not None and aligned.words:
            align_val = aligned.val_scores[aligned.best_epoch - 1] if select else score(aligned)
            log.info("stage 1: its label heads alone score val Avg %.2f%s", 100 * align_val,
                     f" (epoch {aligned.best_epoch} of {cfg.align_epochs} kept)" if select else "")
    if cfg.freeze_acoustic:
        freeze_acoustic(model)
        if not checkpoint and aligned_heads is not None:  # saved with the model: prediction's --heads veto
            model.label_heads = LabelHeads(aligned_heads.words, aligned_heads.bias.tolist(), cfg.align_pooling,
                                           "stage 1")

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
    for epoch, value in enumerate(align_losses, 1):
        row = {"step": 0, "event": "align", "align_epoch": epoch, "align_loss": value}
        if align_scores:  # align_select "best": the heads' val Avg after each epoch
            row["align_epoch_val_avg"] = align_scores[epoch - 1]
        if epoch == len(align_losses) and align_val is not None:  # what the LM stage starts from
            row.update(align_val_avg=align_val, **({"align_kept_epoch": align_kept} if align_kept else {}))
        runlog.write(row)

    progress = _progress(cfg.progress and main, total_steps, state.step)
    params = [p for p in model.parameters() if p.requires_grad]
    # samples/s counts the time in optimizer steps (data, forward, backward, update), not validation or saving
    window_samples, window_s, busy_s, samples_start = 0, 0.0, 0.0, state.samples_seen
    while state.step < total_steps and state.epoch < cfg.epochs:
        batches = epoch_batches(len(train_ds), state.epoch_seed, cfg.batch_size, rank, world)
        train_ds.set_epoch(state.epoch, stage=1)
        groups = [batches[i : i + cfg.grad_accum_steps] for i in range(0, len(batches), cfg.grad_accum_steps)]
        first = state.position // cfg.grad_accum_steps
        loader = _loader(train_ds, [b for g in groups[first:] for b in g], cfg, model, accelerator)
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
                _validate(model, val_ds, cfg, accelerator, state, row_epoch, out_dir, runlog)
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
        batch = _to_device(next(batch_iter), accelerator.device)
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



def _feature_loaders(clips, cfg: TrainConfig, cache_dir: Path, accelerator):
    """(load_acoustic, load_visual) reading the feature cache; missing features are extracted first (sharded
    over the processes), so a run on a fresh manifest works without a separate `acoustemo extract`."""
    from acoustemo.errors import EncoderError
    from acoustemo.features.registry import get_acoustic_encoder, get_visual_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    cache = FeatureCache(cache_dir)
    acoustic = get_acoustic_encoder(cfg.acoustic_encoder, **cfg.acoustic_options)
    visual = get_visual_encoder(cfg.visual_encoder) if cfg.visual_encoder else None
    missing = [c for c in clips if cache.load(c, acoustic) is None or (visual and cache.load(c, visual) is None)]
    if missing:
        if accelerator.is_main_process:
            log.info("extracting features of %d clip(s) into %s", len(missing), cache_dir)
        threads = torch.get_num_threads()
        report = extract(missing, cache, acoustic, visual, shard=(accelerator.process_index, accelerator.num_processes),
                         progress=cfg.progress and accelerator.is_main_process)
        # CTranslate2 (the Whisper encoder) resets the process's OpenMP thread count; a resumed run that finds
        # the features cached must train with the same count, or its float sums (and weights) differ
        torch.set_num_threads(threads)
        from accelerate.utils import gather_object

        failed = [f for fs in gather_object([report.failed]) for f in fs]
        accelerator.wait_for_everyone()
        if failed:
            listed = "; ".join(f"{cid}: {why}" for cid, why in failed[:5])
            raise EncoderError(f"feature extraction failed for {len(failed)} clip(s) ({listed}); fix or drop those "
                               f"clips from the manifest, or run `acoustemo extract` to see every failure")

    def load_acoustic(clip):
        found = cache.load(clip, acoustic)
        if found is None:
            raise EncoderError(f"clip {clip.id}: no cached '{acoustic.id}' features in {cache_dir}; run "
                               f"`acoustemo extract` for this manifest")
        return found

    def load_visual(clip):
        return cache.load(clip, visual) if visual is not None else None

    return load_acoustic, load_visual


def _enable_checkpointing(llm) -> None:
    """Recompute the LLM's layer activations in backward (non-reentrant: the inputs come from the Q-Formers)."""
    base = llm.get_base_model()
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False


def acoustic_stats(clips, load_acoustic, cfg: ModelConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every frame of the training clips (float64 sums, so order-proof), of the
    Q-Formers' input (data/dataset.py input_frames; the encoder's features alone when cfg is None)."""
    from acoustemo.data.dataset import input_frames

    total = sq = None
    n = 0
    for clip in clips:
        feats = load_acoustic(clip)
        x = torch.from_numpy(np.asarray(feats.data if cfg is None else input_frames(feats, clip, cfg))).double()
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
        n += x.shape[0]
    mean = total / n
    return mean.float(), (sq / n - mean * mean).clamp(min=0).sqrt().float()


def _with_utterances(clips):
    """Clips without utterances get them from VAD + ASR (acoustemo.data.segmentation), as in prediction."""
    if all(c.utterances for c in clips):
        return clips
    from acoustemo.data.segmentation import ensure_utterances

    log.warning("%d clip(s) have no utterances; finding them with VAD + ASR", sum(not c.utterances for c in clips))
    return [ensure_utterances(c) for c in clips]


def _dataset(clips, loaders, model, mcfg: ModelConfig, with_answers: bool, augment=None):
    from acoustemo.data.dataset import AcoustEmoDataset

    return AcoustEmoDataset(clips, loaders[0], loaders[1], model.tokenizer, mcfg, with_answers=with_answers,
                            augment=augment)


def _loader(ds, batches: list[list[int]], cfg: TrainConfig, model, accelerator):
    """Batches in the given order; its own generator, so creating it never draws from the global RNG."""
    import functools

    from acoustemo.data.dataset import collate

    pad_id = accelerator.unwrap_model(model).tokenizer.pad_token_id
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, collate_fn=functools.partial(collate, pad_id=pad_id),
        num_workers=cfg.num_workers, pin_memory=accelerator.device.type == "cuda", generator=torch.Generator(),
    )


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _progress(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", disable=not enabled, dynamic_ncols=True)


def _validate(model, val_ds, cfg: TrainConfig, accelerator, state: TrainerState, epoch: int, out_dir: Path,
              runlog: RunLog) -> None:
    """Validation loss (token-weighted over every val clip, all processes) and optionally the set-level Avg of
    generated labels; saves DIR/best when the chosen metric improves."""
    from accelerate.utils import gather_object

    from acoustemo.data.dataset import collate

    net = accelerator.unwrap_model(model)
    net.eval()
    mine = list(range(accelerator.process_index, len(val_ds), accelerator.num_processes))
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    preds: dict[str, list[str]] = {}
    with torch.no_grad(), accelerator.autocast():
        for i in range(0, len(mine), cfg.batch_size):
            batch = _to_device(collate([val_ds[k] for k in mine[i : i + cfg.batch_size]], net.tokenizer.pad_token_id),
                               accelerator.device)
            n_tokens = (batch["labels"][:, 1:] != -100).sum()
            totals += torch.stack([net(**batch).loss.double() * n_tokens, n_tokens.double()])
            if cfg.best_metric == "val_avg":
                for cid, (emotions, _) in zip(batch["ids"], net.predict_batch(batch, cfg.max_new_tokens)):
                    preds[cid] = emotions
    totals = accelerator.reduce(totals, reduction="sum")
    row = {"step": state.step, "epoch": epoch, "val_loss": float(totals[0] / totals[1].clamp(min=1))}
    if cfg.best_metric == "val_avg":
        merged = {k: v for d in gather_object([preds]) for k, v in d.items()}
        row["val_avg"] = _set_level_avg(val_ds.clips, merged)
    value = row[cfg.best_metric]
    better = state.best_value is None or (value < state.best_value if cfg.best_metric == "val_loss"
                                          else value > state.best_value)
    row["best"] = better
    if better:
        state.best_value, state.best_step = value, state.step
        if accelerator.is_main_process:
            save_best(net, out_dir, cfg, row)
    accelerator.wait_for_everyone()
    runlog.write(row)


def _set_level_avg(clips, preds: dict[str, list[str]]) -> float:
    """Set-level Avg (Accuracy_S + Recall_S) / 2 with exact label matching (cheap, offline)."""
    from acoustemo.evaluate.grouping import exact_groupings, pooled_labels
    from acoustemo.evaluate.parsing import normalize_labels
    from acoustemo.evaluate.setlevel import set_level_scores

    gold = {c.id: normalize_labels(c.labels) for c in clips}
    pred = {k: normalize_labels(v) for k, v in preds.items()}
    groups = exact_groupings({k: pooled_labels(g, pred.get(k, [])) for k, g in gold.items()})
    return float(set_level_scores(gold, pred, groups, without_grouping="exact").avg)

