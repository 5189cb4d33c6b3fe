"""Validation during training: the loss on the val split, optionally the set-level Avg of generated labels, and
DIR/best, saved whenever the chosen metric (TrainConfig.best_metric) improves."""

from __future__ import annotations

from pathlib import Path

import torch

from acoustemo.training.checkpoint import TrainerState, save_best
from acoustemo.training.config import TrainConfig
from acoustemo.training.data import to_device
from acoustemo.training.runlog import RunLog


def validate(model, val_ds, cfg: TrainConfig, accelerator, state: TrainerState, epoch: int, out_dir: Path,
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
            batch = to_device(collate([val_ds[k] for k in mine[i : i + cfg.batch_size]], net.tokenizer.pad_token_id),
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
        row["val_avg"] = set_level_avg(val_ds.clips, merged)
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


def set_level_avg(clips, preds: dict[str, list[str]]) -> float:
    """Set-level Avg (Accuracy_S + Recall_S) / 2 with exact label matching (cheap, offline)."""
    from acoustemo.evaluate.grouping import exact_groupings, pooled_labels
    from acoustemo.evaluate.parsing import normalize_labels
    from acoustemo.evaluate.setlevel import set_level_scores

    gold = {c.id: normalize_labels(c.labels) for c in clips}
    pred = {k: normalize_labels(v) for k, v in preds.items()}
    groups = exact_groupings({k: pooled_labels(g, pred.get(k, [])) for k, g in gold.items()})
    return float(set_level_scores(gold, pred, groups, without_grouping="exact").avg)
