"""The Q-Former (BLIP-2 / Video-LLaMA style): K learnable queries that read a window of frames (Eq. 2).

One module serves the utterance windows, the whole-clip (global) window and the video frames; each use is its
own instance with its own weights. All windows are processed in one batch, padded to the longest, with a
key-padding mask, so the result for a window does not depend on what else is in the batch.

Shapes: W windows, F frames (padded), D input dim, K queries, d = d_model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class StreamInput(nn.Module):
    """Standardise each input channel with corpus statistics, LayerNorm each stream on its own, then project.

    Frozen-encoder frames share a large clip-independent component (Whisper's outlier dimensions, a speaker's
    typical pitch); what tells clips apart is a small deviation from it. Without the corpus mean/std removed,
    the Q-Former's outputs start out nearly identical for every clip and the LLM learns to ignore them (seen on
    the acoustic-cue benchmark: token std across clips ~1% of their size). The statistics are buffers, set once
    from the training split (`set_feature_stats`, done by training/loop.py) and saved with the checkpoint, like global
    CMVN in speech recognition. The per-stream LayerNorm then keeps a 512-d Whisper stream from drowning a
    10-d prosody stream.
    """

    def __init__(self, streams: list[tuple[str, int]], d_model: int):
        super().__init__()
        self.widths = [int(w) for _, w in streams]
        self.register_buffer("feature_mean", torch.zeros(sum(self.widths)))
        self.register_buffer("feature_std", torch.ones(sum(self.widths)))
        self.norms = nn.ModuleList(nn.LayerNorm(w) for w in self.widths)
        self.proj = nn.Linear(sum(self.widths), d_model)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel mean and std (D,) of the training frames; std is floored to keep silent channels finite."""
        self.feature_mean.copy_(mean.to(self.feature_mean))
        self.feature_std.copy_(std.to(self.feature_std).clamp(min=1e-3))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Corpus CMVN of the raw channels, (..., D) -> (..., D)."""
        return (x - self.feature_mean.to(x.dtype)) / self.feature_std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., d)
        x = self.standardise(x)
        x = torch.cat([norm(p) for norm, p in zip(self.norms, torch.split(x, self.widths, dim=-1))], dim=-1)
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head attention on SDPA with a boolean key mask; can also return its weights (for Fig. 2 plots)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.h, self.dk = num_heads, d_model // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = dropout

    def forward(self, x, kv, key_mask=None, return_attention=False):
        """x (W, K, d) queries, kv (W, F, d), key_mask (W, F) bool True = real frame.

        Returns (W, K, d) and, with return_attention, the head-averaged weights (W, K, F).
        """
        return self.attend(x, self.k(kv), self.v(kv), key_mask, return_attention)

    def attend(self, x, k, v, key_mask=None, return_attention=False):
        """Like forward, with the keys and values already projected: k, v (W, F, d)."""
        W, K, _ = x.shape
        q = self.q(x).view(W, K, self.h, self.dk).transpose(1, 2)
        k = k.view(W, -1, self.h, self.dk).transpose(1, 2)
        v = v.view(W, -1, self.h, self.dk).transpose(1, 2)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        weights = None
        if return_attention:  # Eq. (2) written out: softmax((Q W_Q)(F W_K)^T / sqrt(d_k)) (F W_V)
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.dk)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)
            out, weights = probs @ v, probs.mean(dim=1)
        else:
            p = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.o(out.transpose(1, 2).reshape(W, K, -1)), weights


class Block(nn.Module):
    """Pre-LN block: query self-attention, cross-attention to the frames (Eq. 2), feed-forward."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.ln_self, self.ln_cross, self.ln_frames, self.ln_ffn = (nn.LayerNorm(d_model) for _ in range(4))
        self.self_attn = Attention(d_model, num_heads, dropout)
        self.cross_attn = Attention(d_model, num_heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, queries, frames, frame_mask, return_attention=False):
        """queries (W, K, d); frames (n, d) PACKED real frames of all windows; frame_mask (W, F) places them."""
        h = self.ln_self(queries)
        queries = queries + self.drop(self.self_attn(h, h)[0])
        # Per-frame work runs on the real frames only, so a batch with one long window and many short ones
        # costs no more than the loop over windows; only the attention itself sees the padded layout.
        kv = self.ln_frames(frames)
        k, v = _unpack(self.cross_attn.k(kv), frame_mask), _unpack(self.cross_attn.v(kv), frame_mask)
        out, weights = self.cross_attn.attend(self.ln_cross(queries), k, v, frame_mask, return_attention)
        queries = queries + self.drop(out)
        queries = queries + self.drop(self.ffn(self.ln_ffn(queries)))
        return queries, weights


class QFormer(nn.Module):
    """K learnable queries x `num_layers` blocks over a batch of padded frame windows.

    forward(frames (W, F, D), frame_mask (W, F) bool) -> (W, K, d_model)
    With return_attention=True also the last block's cross-attention weights (W, K, F), zero on padding.
    """

    def __init__(self, streams: list[tuple[str, int]], num_queries: int, d_model: int, num_layers: int,
                 num_heads: int, ffn_dim: int, max_frames: int, dropout: float = 0.0):
        super().__init__()
        self.input = StreamInput(streams, d_model)
        self.queries = nn.Parameter(torch.randn(num_queries, d_model) * 0.02)
        self.positions = nn.Parameter(torch.randn(max_frames, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.ln_out = nn.LayerNorm(d_model)

    @property
    def num_queries(self) -> int:
        return self.queries.shape[0]

    def position_encoding(self, index: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """(n, d) learned positions for frames at `index` in windows of `length` frames (both (n,) long).

        A window longer than the table is linearly interpolated into it (first frame -> first row, last ->
        last row), so any length works and order is kept.
        """
        P = self.positions.shape[0]
        scale = ((P - 1) / (length.float() - 1).clamp(min=1)).clamp(max=1.0)  # 1 when the window fits
        pos = (index.float() * scale).clamp(max=P - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=P - 1)
        frac = (pos - lo.float()).unsqueeze(-1).to(self.positions.dtype)
        return self.positions[lo] * (1 - frac) + self.positions[hi] * frac

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None, return_attention: bool = False):
        W, Fn, _ = frames.shape
        if frame_mask is None:
            frame_mask = torch.ones(W, Fn, dtype=torch.bool, device=frames.device)
        # A window always has >= 1 frame; an all-padding row (an empty batch slot) would make softmax NaN,
        # so it attends to its first (zero) frame instead.
        frame_mask = frame_mask.clone()
        frame_mask[~frame_mask.any(dim=1), 0] = True
        index = (frame_mask.cumsum(dim=1) - 1)[frame_mask]  # frame index within its window, packed (n,)
        length = frame_mask.sum(dim=1, keepdim=True).expand(-1, Fn)[frame_mask]
        x = self.input(frames[frame_mask]) + self.position_encoding(index, length)  # (n, d) packed
        q = self.queries.unsqueeze(0).expand(W, -1, -1)
        weights = None
        for i, block in enumerate(self.blocks):
            q, weights = block(q, x, frame_mask, return_attention and i == len(self.blocks) - 1)
        q = self.ln_out(q)
        return (q, weights) if return_attention else q


def _unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n, d) packed rows -> (W, F, d) with zeros where mask is False."""
    out = packed.new_zeros(*mask.shape, packed.shape[-1])
    out[mask] = packed
    return out


def pad_windows(windows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (F_i, D) -> padded (W, max F_i, D) and the mask (W, max F_i) (True = real frame)."""
    if not windows:
        raise ValueError("no windows to pad")
    longest = max(w.shape[0] for w in windows)
    out = windows[0].new_zeros(len(windows), longest, windows[0].shape[1])
    mask = torch.zeros(len(windows), longest, dtype=torch.bool)
    for i, w in enumerate(windows):
        out[i, : w.shape[0]] = w
        mask[i, : w.shape[0]] = True
    return out, mask
