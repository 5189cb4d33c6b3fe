"""Stage-1 alignment of the acoustic Q-Formers, before the LLM is trained (TrainConfig.align_epochs).

Trained end to end from random weights on a small corpus, the Q-Formers collapse into a constant "soft prompt":
the LM loss rewards the label prior first, the tokens stop depending on the audio (their std across clips fell
from 62 % to 2 % of their norm within 70 steps on the acoustic-cue benchmark), and the input path never gets a
useful gradient again (BENCHMARKS.md, issue #6). BLIP-2 avoids this with a first stage that trains the Q-Former
without the LLM; this is the same idea with the data we have, gold answers. Per clip c, pool_c is the mean of its
acoustic tokens: the global tokens + the target speaker's utterance tokens (all windows when no target or fixed
windows). Two objectives (TrainConfig.align_mode):

  "answer"  regress the text embedding of the gold answer:
                target_c = e_mean + gain * (e_c - e_mean)     e_c = mean LLM input embedding of c's gold answer
                loss     = mean_c ||pool_c - target_c||^2 / (dim * mean per-dim variance of target)  (1.0 = e_mean)
  "labels"  multi-label logistic regression of the clip's label words, the heads' weights being the words' own
            text embeddings (fixed) plus a learned bias per word (model/heads.py LabelHeads):
                logit_c,w = pool_c . e_w + b_w                e_w = mean LLM input embedding of " w"
                loss      = binary cross-entropy against the gold label set, mean over clips and words
            so the tokens point at the words the answer will name. What the heads alone answer on the validation
            split chooses the epoch stage 1 keeps (TrainConfig.align_select).

Only the Q-Formers and projections train (the LLM and LoRA are untouched), with AdamW at `align_lr`, in batches
of `align_batch_size` clips shuffled by the run's seed. With TrainConfig.freeze_acoustic the LLM stage then
trains LoRA only, so it has to learn to read the aligned tokens instead of collapsing them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from acoustemo.data.dataset import collate
from acoustemo.data.prompt import format_answer
from acoustemo.errors import ConfigError
from acoustemo.model.heads import LabelHeads, text_embedding
from acoustemo.training.config import TrainConfig
from acoustemo.training.schedule import lr_factor
from acoustemo.training.validate import set_level_avg

log = logging.getLogger(__name__)


def answer_targets(model, clips, gain: float) -> tuple[torch.Tensor, float]:
    """(N, hidden) float32 targets and the loss normaliser (dim x mean per-dim variance of the targets)."""
    e = torch.stack([text_embedding(model, format_answer(clip.labels, clip.description)) for clip in clips])
    mean = e.mean(0)
    target = mean + gain * (e - mean)
    var = target.var(0, unbiased=False).mean().item() if len(clips) > 1 else 1.0
    return target, max(var, 1e-12) * target.shape[1]


def label_heads(model, clips) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(the corpus' label words, sorted; (V, hidden) their text embeddings; (N, V) float32 multi-hot gold)."""
    words = sorted({w for clip in clips for w in clip.labels})
    if not words:
        raise ConfigError("align_mode='labels' needs labels in the training manifest; none of its clips has any")
    heads = LabelHeads.for_words(model, words).embeddings
    gold = torch.tensor([[w in clip.labels for w in words] for clip in clips], dtype=torch.float32)
    return words, heads, gold


def selected_windows(clip, cfg, num_windows: int) -> list[int]:
    """Indices of the clip's windows whose tokens are pooled: the target speaker's utterances when the windows are
    utterances and a target is named (and speaks), else all `num_windows`."""
    if cfg.ablation != "fixed-window" and clip.target_speaker:
        mine = [i for i, u in enumerate(clip.utterances) if u.speaker == clip.target_speaker]
        if mine and len(clip.utterances) == num_windows:
            return mine
    return list(range(num_windows))


def clip_tokens(model, batch: dict, clips, window_counts: list[int]) -> list[torch.Tensor]:
    """Per clip, (n, hidden) float32: its global tokens (when the model has them), then the tokens of each of
    its selected utterance windows."""
    dev = model.device
    parts: list[list[torch.Tensor]] = [[] for _ in clips]
    if model.global_qformer is not None:
        g = model.global_tokens(batch["audio"].to(dev), batch["audio_mask"].to(dev), batch["global_tokens"].to(dev))
        for i, t in enumerate(torch.split(g, batch["global_tokens"].tolist())):
            parts[i].append(t.float())
    if model.utt_qformer is not None and sum(window_counts):
        u = model.utterance_tokens(batch["windows"].to(dev), batch["window_mask"].to(dev),
                                   batch["window_tokens"].to(dev))
        per_window = torch.split(u, batch["window_tokens"].tolist())
        start = 0
        for i, (clip, n) in enumerate(zip(clips, window_counts)):
            parts[i].extend(per_window[start + j].float() for j in selected_windows(clip, model.cfg, n))
            start += n
    return [torch.cat(p) for p in parts]


@dataclass
class AlignResult:
    losses: list[float]  # mean loss of each epoch
    words: list[str] = field(default_factory=list)  # "labels" mode: the head words, and their learned biases
    bias: torch.Tensor | None = None
    val_scores: list[float] = field(default_factory=list)  # with `evaluate`: its score after each epoch
    best_epoch: int | None = None  # with `keep_best`: the epoch (1-based) whose weights the model keeps


def align_acoustic(model, dataset, clips, epochs: int, lr: float, batch_size: int, gain: float, weight_decay: float,
                   seed: int, mode: str = "answer", evaluate: Callable[[AlignResult], float] | None = None,
                   keep_best: bool = False, schedule: str = "constant") -> AlignResult:
    """Run stage 1 on `dataset` (an AcoustEmoDataset over `clips`).

    evaluate(result so far) -> a held-out score (higher is better), called after every epoch; with keep_best the
    model (and the heads' biases) end at the epoch that scored best, ties going to the earlier epoch: early
    stopping, since the Q-Formers fit a few hundred clips long before the loss stops falling.
    schedule: "constant" lr, or "cosine" (5 % linear warm-up, then cosine to 0 over all the stage's updates, as
    the LM stage).
    """
    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"stage-1 schedule {schedule!r}: choose 'constant' or 'cosine'")
    if mode == "answer":
        targets, norm = answer_targets(model, clips, gain)
        words, bias = [], None
    else:
        words, embeddings, gold = label_heads(model, clips)
        bias = torch.zeros(len(words), requires_grad=True)
        heads = LabelHeads(words, embeddings, bias)
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("llm.")]  # not LoRA
    optimizer = torch.optim.AdamW(params + ([] if mode == "answer" else [bias]), lr=lr, weight_decay=weight_decay)
    total = epochs * -(-len(clips) // batch_size)
    warmup = max(1, round(0.05 * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, (lambda step: lr_factor(step, total, warmup)) if schedule == "cosine" else (lambda step: 1.0))
    generator = torch.Generator().manual_seed(seed)
    pad = model.tokenizer.pad_token_id
    was_training = model.training
    model.train()
    losses, scores, best = [], [], None
    for epoch in range(epochs):
        order = torch.randperm(len(clips), generator=generator).tolist()
        epoch_loss = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            examples = [dataset[j] for j in idx]
            tokens = clip_tokens(model, collate(examples, pad), [clips[j] for j in idx],
                                 [len(e["windows"]) for e in examples])
            if mode == "answer":
                pooled = torch.stack([t.mean(0) for t in tokens])
                loss = ((pooled - targets[idx].to(pooled.device)) ** 2).sum(-1).mean() / norm
            else:
                logits = heads.logits(tokens)
                loss = F.binary_cross_entropy_with_logits(logits, gold[idx].to(logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.item() * len(idx)
        losses.append(epoch_loss / len(order))
        log.info("stage-1 alignment (%s) epoch %d/%d: loss %.4f", mode, epoch + 1, epochs, losses[-1])
        if evaluate is not None:
            scores.append(float(evaluate(AlignResult(losses, words, None if bias is None else bias.detach()))))
            model.train()
            log.info("stage-1 epoch %d: held-out score %.4f", epoch + 1, scores[-1])
            if keep_best and (best is None or scores[-1] > scores[best[0] - 1]):
                trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                           and not n.startswith("llm.")}
                best = (epoch + 1, trained, None if bias is None else bias.detach().clone())
    if best is not None and best[0] < epochs:
        with torch.no_grad():
            params_by_name = dict(model.named_parameters())
            for n, value in best[1].items():
                params_by_name[n].copy_(value)
        if bias is not None:
            bias = best[2]
        log.info("stage 1 keeps epoch %d of %d (held-out score %.4f)", best[0], epochs, scores[best[0] - 1])
    model.train(was_training)
    return AlignResult(losses, words, None if bias is None else bias.detach(), scores,
                       best[0] if best is not None else None)


@torch.no_grad()
def stage1_labels(model, dataset, clips, result: AlignResult, batch_size: int = 16) -> dict[str, list[str]]:
    """What the stage-1 heads alone answer per clip, in eval mode (LabelHeads.answer): how much of the labels the
    Q-Former tokens carry before the LLM reads them."""
    heads = LabelHeads.for_words(model, result.words, result.bias)
    pad = model.tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    answers = {}
    for i in range(0, len(clips), batch_size):
        examples = [dataset[j] for j in range(i, min(i + batch_size, len(clips)))]
        part = clips[i : i + len(examples)]
        tokens = clip_tokens(model, collate(examples, pad), part, [len(e["windows"]) for e in examples])
        answers.update(zip((c.id for c in part), heads.answer(heads.logits(tokens))))
    model.train(was_training)
    return answers


@dataclass
class Stage1:
    """What stage 1 left for the run's log (training/loop.py writes one row per epoch)."""

    losses: list[float] = field(default_factory=list)  # mean loss of each epoch
    val_scores: list[float] = field(default_factory=list)  # align_select "best": the heads' val Avg per epoch
    val_avg: float | None = None  # the heads' val Avg of the weights the LM stage starts from
    kept_epoch: int | None = None  # align_select "best": the epoch kept

    def log_rows(self) -> list[dict]:
        rows = []
        for epoch, value in enumerate(self.losses, 1):
            row = {"step": 0, "event": "align", "align_epoch": epoch, "align_loss": value}
            if self.val_scores:
                row["align_epoch_val_avg"] = self.val_scores[epoch - 1]
            if epoch == len(self.losses) and self.val_avg is not None:
                row.update(align_val_avg=self.val_avg, **({"align_kept_epoch": self.kept_epoch}
                                                          if self.kept_epoch else {}))
            rows.append(row)
        return rows


def run_stage1(model, cfg: TrainConfig, train_ds, train_clips, val_ds, val_clips) -> Stage1:
    """Stage 1 as TrainConfig asks (align_* fields), its epoch chosen on the validation split when it can be."""

    def score(result):  # what the stage-1 heads alone answer on the validation split
        return set_level_avg(val_clips, stage1_labels(model, val_ds, val_clips, result))

    select = cfg.align_select == "best" and val_ds is not None and cfg.align_mode == "labels"
    aligned = align_acoustic(model, train_ds, train_clips, cfg.align_epochs, cfg.align_lr, cfg.align_batch_size,
                             cfg.align_gain, cfg.weight_decay, cfg.seed, cfg.align_mode,
                             evaluate=score if select else None, keep_best=select, schedule=cfg.align_schedule)
    done = Stage1(aligned.losses, aligned.val_scores, kept_epoch=aligned.best_epoch)
    if val_ds is not None and aligned.words:
        done.val_avg = aligned.val_scores[aligned.best_epoch - 1] if select else score(aligned)
        log.info("stage 1: its label heads alone score val Avg %.2f%s", 100 * done.val_avg,
                 f" (epoch {aligned.best_epoch} of {cfg.align_epochs} kept)" if select else "")
    return done
