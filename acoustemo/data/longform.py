"""Context windows over a long dialogue: whole utterances, cut at turn boundaries, each within the token budget and
a maximum span, with the preceding utterance or two as context where it fits.

    windows = plan_windows(utterances, count_tokens, max_tokens=1024, max_span_s=30.0, context_utterances=2)
    windows[3].answered   # indices of the utterances this window answers for (each utterance in exactly one window)
    windows[3].context    # indices of the preceding utterances shown before them, for context only

A turn is a maximal run of consecutive utterances by one speaker. Windows are packed greedily from whole turns; a
turn that does not fit on its own (longer than the span, or more tokens than the budget) is cut between its
utterances, and a single utterance that does not fit alone still gets a window of its own (the dataset then pools
its tokens, never drops it). `count_tokens(utterances)` is the full sequence length the model would need for a
prompt made of exactly those utterances (prompt_token_counter builds it from the model's own prompt + tokenizer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from acoustemo.data.segments import Utterance


@dataclass(frozen=True)
class ContextWindow:
    index: int
    answered: tuple[int, ...]  # utterance indices (into the recording's list) the window answers for
    context: tuple[int, ...] = ()  # the preceding utterance indices shown as context only

    @property
    def prompt(self) -> tuple[int, ...]:
        """Every utterance in the window's prompt, in order: context first."""
        return self.context + self.answered


def speaker_turns(utterances: Sequence[Utterance]) -> list[list[int]]:
    """Runs of consecutive utterance indices with the same speaker."""
    turns: list[list[int]] = []
    for i, u in enumerate(utterances):
        if turns and utterances[turns[-1][-1]].speaker == u.speaker:
            turns[-1].append(i)
        else:
            turns.append([i])
    return turns


def span_s(utterances: Sequence[Utterance]) -> float:
    return utterances[-1].end_s - utterances[0].start_s if utterances else 0.0


def plan_windows(utterances: Sequence[Utterance], count_tokens: Callable[[list[Utterance]], int], max_tokens: int,
                 max_span_s: float, context_utterances: int = 2) -> list[ContextWindow]:
    """The context windows of a dialogue (utterances in time order); see the module docstring."""
    if max_span_s <= 0:
        raise ValueError(f"max_span_s must be positive, got {max_span_s}")
    if any(b.start_s < a.start_s for a, b in zip(utterances, utterances[1:])):
        raise ValueError("utterances must be sorted by start time")
    utts = list(utterances)

    def fits(idx: list[int]) -> bool:
        chosen = [utts[i] for i in idx]
        return span_s(chosen) <= max_span_s and count_tokens(chosen) <= max_tokens

    pieces = [piece for turn in speaker_turns(utts) for piece in _split_turn(turn, fits)]
    groups: list[list[int]] = []
    for piece in pieces:
        if groups and fits(groups[-1] + piece):
            groups[-1] += piece
        else:
            groups.append(list(piece))
    return [ContextWindow(k, tuple(g), _context(g[0], utts, context_utterances, max_span_s, count_tokens, max_tokens, g))
            for k, g in enumerate(groups)]


def _split_turn(turn: list[int], fits: Callable[[list[int]], bool]) -> list[list[int]]:
    """A turn as one piece if it fits, else cut greedily between its utterances (one utterance is always a piece)."""
    if fits(turn):
        return [turn]
    pieces: list[list[int]] = []
    for i in turn:
        if pieces and fits(pieces[-1] + [i]):
            pieces[-1].append(i)
        else:
            pieces.append([i])
    return pieces


def _context(first: int, utts: list[Utterance], n: int, max_span_s: float, count_tokens, max_tokens: int,
             answered: list[int]) -> tuple[int, ...]:
    """Up to n utterances just before `first` that fit in the token budget with the window and end within one
    span of its start (an utterance minutes earlier is not context)."""
    window = [utts[i] for i in answered]
    for k in range(min(n, first), 0, -1):
        ctx = list(range(first - k, first))
        if utts[first].start_s - utts[ctx[0]].end_s > max_span_s:
            continue
        if count_tokens([utts[i] for i in ctx] + window) <= max_tokens:
            return tuple(ctx)
    return ()


def window_origin_s(start_s: float, frame_rate_hz: float) -> float:
    """The time a window's prompt counts from: the start of the frame holding `start_s` (Eq. 1's floor), so the
    frames the dataset cuts at the shifted times are exactly the file's frames [a, b) of the same utterance."""
    return math.floor(round(start_s * frame_rate_hz, 6)) / frame_rate_hz


def prompt_token_counter(cfg, tokenizer, target_speaker: str | None, frame_rate_hz: float, with_video: bool = False,
                         ) -> Callable[[list[Utterance]], int]:
    """count_tokens for plan_windows: the sequence length AcoustEmoDataset builds for a prompt of these
    utterances at the full token counts (K per window, K_global, K_v) plus the room kept for the answer
    (cfg.answer_budget_tokens); `target_speaker` is the name the question will use (the longest, when asking
    several speakers in turn)."""
    from acoustemo.data.prompt import build_prompt, chat_prompt
    from acoustemo.data.segments import Clip
    from acoustemo.data.windows import fixed_windows

    with_specials = not getattr(tokenizer, "chat_template", None)  # as AcoustEmoDataset._tokenize_prompt

    def count(utts: list[Utterance]) -> int:
        if not utts:
            return 0
        t0 = window_origin_s(utts[0].start_s, frame_rate_hz)  # prompts count time from the window (acoustemo.timeline)
        shifted = [Utterance(u.start_s - t0, u.end_s - t0, u.speaker, u.text) for u in utts]
        if not cfg.uses_windows:
            times = None
        elif cfg.ablation == "fixed-window":
            # the sliced features run to the end frame's ceiling: at most one frame past the last end
            times = fixed_windows(shifted[-1].end_s + 1 / frame_rate_hz, cfg.fixed_window_s)
        else:
            times = [(u.start_s, u.end_s) for u in shifted]
        clip = Clip("count", "", shifted, target_speaker=target_speaker)
        text = chat_prompt(tokenizer, build_prompt(clip, times, cfg.layout, cfg.ablation, cfg.uses_global, with_video))
        n_text = len(tokenizer(text, add_special_tokens=with_specials)["input_ids"])
        slots = (len(times) if times else 0) + int(cfg.uses_global) + int(with_video)
        acoustic = (len(times) if times else 0) * cfg.num_queries + (cfg.global_num_queries if cfg.uses_global else 0)
        return n_text - slots + acoustic + (cfg.visual_num_queries if with_video else 0) + cfg.answer_budget_tokens

    return count
