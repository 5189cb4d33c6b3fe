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
            text embeddings (fixed) plus a learned bias per word:
                logit_c,w = pool_c . e_w + b_w                e_w = mean LLM input embedding of " w"
                loss      = binary cross-entropy against the gold label set, mean over clips and words
            so the tokens point at the words the answer will name.

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

log = logging.getLogger(__name__)


def answer_targets(model, clips, gain: float) -> tuple[torch.Tensor, float]:
    """(N, hidden) float32 targets and the loss normaliser (dim x mean per-dim variance of the targets)."""
    e = torch.stack([_text_embedding(model, format_answer(clip.labels, clip.description)) for clip in clips])
    mean = e.mean(0)
    target = mean + gain * (e - mean)
    var = target.var(0, unbiased=False).mean().item() if len(clips) > 1 else 1.0
    return target, max(var, 1e-12) * target.shape[1]


def label_heads(model, clips) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(the corpus' label words, sorted; (V, hidden) their text embeddings; (N, V) float32 multi-hot gold)."""
    words = sorted({w for clip in clips for w in clip.labels})
    if not words:
        raise ConfigError("align_mode='labels' needs labels in the training manifest; none of its clips has any")
    heads = torch.stack([_text_embedding(model, " " + w) for w in words])
    gold = torch.tensor([[w in clip.labels for w in words] for clip in clips], dtype=torch.float32)
    return words, heads, gold


def _text_embedding(model, text: str) -> torch.Tensor:
    emb = model.llm.get_input_embeddings().weight
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return emb[torch.tensor(ids, device=emb.device)].float().mean(0).cpu()


def selected_windows(clip, cfg, num_windows: int) -> list[int]:
    """Indices of the clip's windows whose tokens are pooled: the target speaker's utterances when the windows are
    utterances and a target is named (and speaks), else all `num_windows`."""
    if cfg.ablation != "fixed-window" and clip.target_speaker:
        mine = [i for i, u in enumerate(clip.utterances) if u.speaker == clip.target_speaker]
        if mine and len(clip.utterances) == num_windows:
            return mine
    return list(range(num_windows))


def clip_token_groups(model, batch: dict, clips, window_counts: list[int]) -> list[list[torch.Tensor]]:
    """Per clip, its token groups, each (n, hidden) float32: the global tokens (when the model has them) first,
    then one group per selected utterance window."""
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
    return parts


def clip_tokens(model, batch: dict, clips, window_counts: list[int]) -> list[torch.Tensor]:
    """Per clip, (n, hidden) float32: its global tokens and its selected utterance-window tokens."""
    return [torch.cat(groups) for groups in clip_token_groups(model, batch, clips, window_counts)]


def label_logits(groups: list[list[torch.Tensor]], has_global: bool, heads: torch.Tensor, bias: torch.Tensor,
                 pooling: str) -> torch.Tensor:
    """(B, V) label logits from each clip's token groups (clip_token_groups).

    "mean": the mean of all the clip's tokens, dotted with each word's embedding (session 3's stage 1).
    "max":  multiple-instance pooling: each window scores the words with the mean of its own tokens, the clip
            takes the best window per word, and the global tokens add their own score. A ~1 s cue lives in one
            window; averaged with every other token it is diluted, while the max lets that window carry it alone.
    """
    heads, bias = heads.to(groups[0][0].device), bias.to(groups[0][0].device)
    rows = []
    for g in groups:
        if pooling == "mean":
            rows.append(torch.cat(g).mean(0) @ heads.T)
            continue
        score = torch.zeros(heads.shape[0], device=heads.device)
        windows = g[1:] if has_global else g
        if has_global:
            score = score + g[0].mean(0) @ heads.T
        if windows:
            score = score + (torch.stack([w.mean(0) for w in windows]) @ heads.T).amax(0)
        rows.append(score)
    return torch.stack(rows) + bias


@dataclass
class AlignResult:
    losses: list[float]  # mean loss of each epoch
    words: list[str] = field(default_factory=list)  # "labels" mode: the head words, and their learned biases
    bias: torch.Tensor | None = None
    val_scores: list[float] = field(default_factory=list)  # with `evaluate`: its score after each epoch
    best_epoch: int | None = None  # with `keep_best`: the epoch (1-based) whose weights the model keeps


def align_acoustic(model, dataset, clips, epochs: int, lr: float, batch_size: int, gain: float, weight_decay: float,
                   seed: int, mode: str = "answer", pooling: str = "mean",
                   evaluate: Callable[[AlignResult], float] | None = None, keep_best: bool = False,
                   schedule: str = "constant") -> AlignResult:
    """Run stage 1 on `dataset` (an AcoustEmoDataset over `clips`).

    evaluate(result so far) -> a held-out score (higher is better), called after every epoch; with keep_best the
    model (and the heads' biases) end at the epoch that scored best, ties going to the earlier epoch: early
    stopping, since the Q-Formers fit a few hundred clips long before the loss stops falling.
    schedule: "constant" lr, or "cosine" (5 % linear warm-up, then cosine to 0 over all the stage's updates, as
    the LM stage).
    """
    from acoustemo.training.loop import lr_factor

    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"stage-1 schedule {schedule!r}: choose 'constant' or 'cosine'")
    if mode == "answer":
        targets, norm = answer_targets(model, clips, gain)
        words, bias = [], None
    else:
        words, heads, gold = label_heads(model, clips)
        bias = torch.zeros(len(words), requires_grad=True)
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("llm.")]  # not LoRA
    optimizer = torch.optim.AdamW(params + ([] if mode == "answer" else [bias]), lr=lr, weight_decay=weight_decay)
    total = epochs * -(-len(clips) // batch_size)
    warmup = max(1, round(0.05 * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, (lambda step: lr_factor(step, total, warmup)) if schedule == "cosine" else (lambda step: 1.0))
    generator = torch.Generator().manual_seed(seed)
    pad = model.tokenizer.pad_token_id
    has_global = model.global_qformer is not None
    was_training = model.training
    model.train()
    losses, scores, best = [], [], None
    for epoch in range(epochs):
        order = torch.randperm(len(clips), generator=generator).tolist()
        dataset.set_epoch(epoch, stage=0)  # the augmentation draws, when the dataset has one (data/augment.py)
        epoch_loss = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            examples = [dataset[j] for j in idx]
            groups = clip_token_groups(model, collate(examples, pad), [clips[j] for j in idx],
                                       [len(e["windows"]) for e in examples])
            if mode == "answer":
                pooled = torch.stack([torch.cat(g).mean(0) for g in groups])
                loss = ((pooled - targets[idx].to(pooled.device)) ** 2).sum(-1).mean() / norm
            else:
                logits = label_logits(groups, has_global, heads, bias, pooling)
                loss = F.binary_cross_entropy_with_logits(logits, gold[idx].to(logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.item() * len(idx)
        losses.append(epoch_loss / len(order))
        log.info("stage-1 alignment (%s, %s pooling) epoch %d/%d: loss %.4f", mode, pooling, epoch + 1, epochs,
                 losses[-1])
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
@torch.no_grad()
def stage1_logits(model, dataset, clips, words: list[str], bias: torch.Tensor, pooling: str,
                  batch_size: int = 16) -> torch.Tensor:
    """(N, V) logits of the stage-1 heads for `words` (with `bias`) on each clip's tokens, in eval mode."""
    heads = torch.stack([_text_embedding(model, " " + w) for w in words])
    pad = model.tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    rows = []
    for i in range(0, len(clips), batch_size):
        examples = [dataset[j] for j in range(i, min(i + batch_size, len(clips)))]
        part = clips[i : i + len(examples)]
        groups = clip_token_groups(model, collate(examples, pad), part, [len(e["windows"]) for e in examples])
        rows.append(label_logits(groups, model.global_qformer is not None, heads, bias, pooling))
    model.train(was_training)
    return torch.cat(rows) if rows else torch.zeros(0, len(words))


def stage1_labels(model, dataset, clips, result: AlignResult, pooling: str, batch_size: int = 16,
                  ) -> dict[str, list[str]]:
    """What the stage-1 heads alone answer per clip (every word with p >= 0.5, else the most probable one): how
    much of the labels the Q-Former tokens carry before the LLM reads them."""
    probs = stage1_logits(model, dataset, clips, result.words, result.bias, pooling, batch_size).sigmoid()
    return {clip.id: _picked(result.words, p) for clip, p in zip(clips, probs)}


def fit_bias(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """(V,) per-word biases minimising the binary cross-entropy of `logits` (N, V, computed with zero bias) + bias
    against `gold` (N, V multi-hot), the slope held at 1, as stage 1 fits them alongside the tokens: for a model
    saved before its heads were, the biases refit on the split stage 1 trained on."""
    bias = torch.zeros(logits.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([bias], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits + bias, gold)
        loss.backward()
        return loss

    opt.step(closure)
    return bias.detach()


def _picked(words: list[str], probs: torch.Tensor) -> list[str]:
    return [w for w, x in zip(words, probs.tolist()) if x >= 0.5] or [words[int(probs.argmax())]]


@torch.no_grad()
def heads_answer(model, batch: dict, clips, window_counts: list[int]) -> list[list[str] | None]:
    """What the model's saved stage-1 heads (model.label_heads) answer for each clip of one collated batch, as
    stage1_labels does; None for a clip with no acoustic tokens to score."""
    h = model.label_heads
    emb = torch.stack([_text_embedding(model, " " + w) for w in h.words])
    bias = torch.tensor(h.bias, dtype=torch.float32)
    groups = clip_token_groups(model, batch, clips, window_counts)
    has_global = model.global_qformer is not None
    return [_picked(h.words, label_logits([g], has_global, emb, bias, h.pooling)[0].sigmoid()) if g else None
            for g in groups]


def heads_veto(emotions: list[str], heads: list[str] | None) -> tuple[list[str], list[str]]:
    """(kept, vetoed): the LLM's emotions that the stage-1 heads also give, and the others. When the heads give
    none of them (or could not answer), the LLM's answer stands whole: the veto only removes, never empties."""
    if not heads:
        return list(emotions), []
    given = {w.lower() for w in heads}
    kept = [w for w in emotions if w.lower() in given]
    return (kept, [w for w in emotions if w.lower() not in given]) if kept else (list(emotions), [])
