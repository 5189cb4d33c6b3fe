"""What the training loop reads: the features of its clips (from the cache, extracted when missing), their corpus
statistics, the datasets, and each epoch's order of micro-batches over the processes."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import numpy as np
import torch

from acoustemo.training.config import TrainConfig

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------------------ features
def feature_loaders(clips, cfg: TrainConfig, cache_dir: Path, accelerator):
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


def acoustic_stats(clips, load_acoustic, cfg=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every frame of the training clips' acoustic features as the model reads them
    (cfg.acoustic_reference; float64 sums, so order-proof): the corpus CMVN of the Q-Formers' input
    (model/qformer.py StreamInput)."""
    from acoustemo.data.dataset import reference_frames

    total = sq = None
    n = 0
    for clip in clips:
        feats = load_acoustic(clip)
        data = feats.data if cfg is None else reference_frames(feats.data, clip, float(feats.frame_rate_hz), cfg)
        x = torch.from_numpy(np.asarray(data)).double()
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
        n += x.shape[0]
    mean = total / n
    return mean.float(), (sq / n - mean * mean).clamp(min=0).sqrt().float()


def with_utterances(clips):
    """Clips without utterances get them from VAD + ASR (acoustemo.data.segmentation), as in prediction."""
    if all(c.utterances for c in clips):
        return clips
    from acoustemo.data.segmentation import ensure_utterances

    log.warning("%d clip(s) have no utterances; finding them with VAD + ASR", sum(not c.utterances for c in clips))
    return [ensure_utterances(c) for c in clips]


# ------------------------------------------------------------------------------------------------ batches
def make_dataset(clips, loaders, model, with_answers: bool = True):
    """An AcoustEmoDataset of `clips` over the (load_acoustic, load_visual) `loaders`, for `model`."""
    from acoustemo.data.dataset import AcoustEmoDataset

    return AcoustEmoDataset(clips, loaders[0], loaders[1], model.tokenizer, model.cfg, with_answers=with_answers)


def batch_loader(ds, batches: list[list[int]], cfg: TrainConfig, model, accelerator):
    """Batches in the given order; its own generator, so creating it never draws from the global RNG."""
    from acoustemo.data.dataset import collate

    pad_id = accelerator.unwrap_model(model).tokenizer.pad_token_id
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, collate_fn=functools.partial(collate, pad_id=pad_id),
        num_workers=cfg.num_workers, pin_memory=accelerator.device.type == "cuda", generator=torch.Generator(),
    )


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
