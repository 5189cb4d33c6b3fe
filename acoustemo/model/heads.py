"""Label heads tied to the LLM's text embeddings: which label words a clip's acoustic tokens point at.

Word w scores a clip as mean(tokens) . e_w + b_w, where e_w is the mean LLM input embedding of " w" (fixed, never
trained) and b_w a bias per word. Stage 1 of the two-stage recipe (training/align.py) trains the Q-Formers, and the
biases, so that these scores name the gold labels before the LLM reads the tokens; training then uses what the
heads alone answer on the validation split to choose stage 1's epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def text_embedding(model, text: str) -> torch.Tensor:
    """(hidden,) float32 on the CPU: the mean of the LLM's input embeddings of `text`'s tokens."""
    emb = model.llm.get_input_embeddings().weight
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return emb[torch.tensor(ids, device=emb.device)].float().mean(0).cpu()


@dataclass
class LabelHeads:
    words: list[str]
    embeddings: torch.Tensor  # (V, hidden) float32: text_embedding(" w") per word, fixed
    bias: torch.Tensor  # (V,): learned by stage 1 (a leaf that requires grad while it trains)

    @classmethod
    def for_words(cls, model, words: list[str], bias: torch.Tensor | None = None) -> "LabelHeads":
        """Heads for `words` on `model`'s LLM embeddings; bias zero unless given."""
        embeddings = torch.stack([text_embedding(model, " " + w) for w in words])
        return cls(list(words), embeddings, torch.zeros(len(words)) if bias is None else bias)

    def logits(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """(B, V) logits from each clip's (n, hidden) acoustic tokens (training/align.py clip_tokens)."""
        device = tokens[0].device
        embeddings, bias = self.embeddings.to(device), self.bias.to(device)
        return torch.stack([t.mean(0) @ embeddings.T for t in tokens]) + bias

    def answer(self, logits: torch.Tensor) -> list[list[str]]:
        """Per row of `logits`: every word with sigmoid >= 0.5, else the most probable one (never empty)."""
        probs = logits.sigmoid()
        return [[w for w, p in zip(self.words, row.tolist()) if p >= 0.5] or [self.words[int(row.argmax())]]
                for row in probs]
