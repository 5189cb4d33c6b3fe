"""Greedy decoding of one answer with n-gram drafts that the LLM checks: the same answer in fewer forward passes.

Greedy decoding on a CPU costs one forward pass of the whole LLM per token, and a pass over 8 tokens costs
little more than a pass over 1 (15 vs 21 ms on 2 cores, benchmarks/latency_parts.py): the weights are read
once either way. So the next few tokens are guessed from text seen before, and one pass checks them all:

    drafts   = NgramDrafter.propose(prompt ids + answer so far)     prompt lookup + an n-gram model of a bank
    logits   = LLM([last token] + drafts)                           one pass, KV cache reused
    keep the drafts up to the first one that differs from argmax(logits), then the LLM's own next token

Every kept token is the LLM's argmax given the tokens before it, so the answer is the greedy answer; only
the number of passes changes. It is the same answer bit for bit, drafts or none (tests/test_decoding.py): the
linear layers, norms and RoPE treat each row alone already, and the attention of every pass after the prompt
is computed in float64 and rounded (`_float64_attention`), because a bf16 kernel rounds a row differently
when it shares a call with other rows, which flips near-ties in the explanations' times. (HF generate's own bf16
attention therefore rounds a little differently: BENCHMARKS.md compares the two on the benchmark's test split.)

This is speculative decoding with a draft that costs nothing (prompt lookup, Saxena 2023; retrieval drafts,
REST, He et al. 2024). The bank, when a checkpoint has one, is the text of answers like those the model was
trained to write (AcoustEmoModel.answer_bank); it only makes guesses better, it never enters the answer unchecked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import torch


class NgramDrafter:
    """Guesses up to `draft_len` next tokens from the longest n-gram (n <= max_ngram) that ends the history: if
    the bank holds it, the bank's most frequent next token, n-gram after n-gram (an n-gram model of the bank);
    else, for n >= 2, what followed its latest earlier occurrence in the history (prompt lookup)."""

    def __init__(self, bank: list[list[int]] = (), max_ngram: int = 4, draft_len: int = 8):
        if max_ngram < 1 or draft_len < 1:
            raise ValueError(f"max_ngram={max_ngram} and draft_len={draft_len} must be >= 1")
        self.max_ngram, self.draft_len = max_ngram, draft_len
        counts: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        for seq in bank:
            for i in range(1, len(seq)):
                for n in range(1, min(max_ngram, i) + 1):
                    counts[tuple(seq[i - n:i])][seq[i]] += 1
        # the most frequent next token after each n-gram; ties go to the token seen first
        self.next_token = {key: c.most_common(1)[0][0] for key, c in counts.items()}

    def propose(self, history: list[int]) -> list[int]:
        for n in range(min(self.max_ngram, len(history)), 0, -1):
            if tuple(history[-n:]) in self.next_token:
                return self._follow_bank(history)
            copied = self._copy(history, n) if n >= 2 else []  # one shared token predicts little
            if copied:
                return copied
        return []

    def _copy(self, history: list[int], n: int) -> list[int]:
        """What followed the latest earlier occurrence of history's last n tokens."""
        tail = history[-n:]
        for start in range(len(history) - n - 1, -1, -1):
            if history[start:start + n] == tail:
                return history[start + n:start + n + self.draft_len]
        return []

    def _follow_bank(self, history: list[int]) -> list[int]:
        context, out = list(history[-self.max_ngram:]), []
        while len(out) < self.draft_len:
            token = next((self.next_token[key] for n in range(len(context), 0, -1)
                          if (key := tuple(context[-n:])) in self.next_token), None)
            if token is None:
                break
            out.append(token)
            context = (context + [token])[-self.max_ngram:]
        return out


@dataclass
class DecodeStats:
    tokens: int = 0  # answer tokens produced (EOS included)
    passes: int = 0  # LLM forward passes after the prompt's
    drafted: int = 0  # draft tokens checked
    accepted: int = 0  # draft tokens kept


@torch.no_grad()
def greedy_with_drafts(llm, inputs_embeds: torch.Tensor, history: list[int], eos_token_ids: set[int],
                       max_new_tokens: int, drafter: NgramDrafter | None,
                       stats: DecodeStats | None = None) -> list[int]:
    """The greedy answer ids for ONE prompt, `inputs_embeds` (1, S, hidden) with no padding, EOS excluded.

    `history` are the prompt's token ids the drafter may copy from (placeholder positions left out); with
    `drafter` None every pass brings one token (plain greedy, the same answer).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if inputs_embeds.shape[0] != 1:
        raise ValueError(f"greedy_with_drafts decodes one prompt at a time, got a batch of {inputs_embeds.shape[0]}")
    stats = stats if stats is not None else DecodeStats()
    original = llm.config._attn_implementation
    llm.config._attn_implementation = _float64_attention(original)
    try:
        return _decode(llm, inputs_embeds, history, eos_token_ids, max_new_tokens, drafter, stats)
    finally:
        llm.config._attn_implementation = original


def _decode(llm, inputs_embeds, history, eos_token_ids, max_new_tokens, drafter, stats) -> list[int]:
    from transformers import DynamicCache

    cache = DynamicCache()
    logits = llm(inputs_embeds=inputs_embeds, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    token = int(logits[0, -1].argmax())
    answer, history = [token], list(history) + [token]
    while token not in eos_token_ids and len(answer) < max_new_tokens:
        # the pass adds one token of its own, so at most max_new_tokens - len(answer) - 1 drafts
        drafts = drafter.propose(history)[: max_new_tokens - len(answer) - 1] if drafter else []
        step = torch.tensor([[token] + drafts], device=inputs_embeds.device)
        best = llm(input_ids=step, past_key_values=cache, use_cache=True).logits[0].argmax(-1).tolist()
        kept = 0
        while kept < len(drafts) and drafts[kept] == best[kept] and drafts[kept] not in eos_token_ids:
            kept += 1
        new = drafts[:kept] + [best[kept]]
        if kept < len(drafts):  # drop the keys of the rejected drafts; best[kept] itself is fed in the next pass
            cache.crop(kept - len(drafts))
        stats.passes += 1
        stats.drafted += len(drafts)
        stats.accepted += kept
        answer += new
        history += new
        token = new[-1]
    stats.tokens += len(answer)
    return [t for t in answer if t not in eos_token_ids]


def _float64_attention(implementation: str) -> str:
    """Register (once) the attention the decoding passes use, and return its name.

    The prompt's prefill (as many keys as queries) runs `implementation` unchanged. Every later pass, one new
    token or several, computes attention in float64 and rounds the result to the model's dtype. Why: a bf16 /
    fp32 kernel sums in an order that depends on how many rows and keys a call has, so a row checked among
    k drafts would round differently from the same row decoded alone and flip near-ties; float64's error
    (~1e-16) is far below bf16's step (~4e-3), so both round to the same bits. Costs ~2 ms a pass on 2 cores.
    Batch 1 without padding only, which is all greedy_with_drafts decodes.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import eager_attention_forward

    name = f"acoustemo_float64_{implementation}"
    if name in ALL_ATTENTION_FUNCTIONS:
        return name
    prefill = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        B, H, q_len, D = query.shape  # key / value (B, H_kv, kv, D), the cache included
        kv_len, groups = key.shape[2], H // key.shape[1]
        if kv_len == q_len:
            return prefill(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        q = query.double().reshape(B, key.shape[1], groups * q_len, D)  # query heads of one KV head side by side
        scores = q @ key.double().transpose(-1, -2) * (scaling if scaling is not None else D ** -0.5)
        if q_len > 1:  # new row i sees the cache and the new rows up to itself
            allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
            scores = scores.view(B, -1, groups, q_len, kv_len).masked_fill(~allowed, float("-inf")).view_as(scores)
        out = (scores.softmax(-1) @ value.double()).view(B, H, q_len, D)
        return out.to(query.dtype).transpose(1, 2).contiguous(), None

    AttentionInterface.register(name, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
    return name
