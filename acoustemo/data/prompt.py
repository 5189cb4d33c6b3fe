"""The §3.4 prompt: each utterance with its times, speaker and text, its acoustic tokens, then the question.

Placeholders appear here ONCE per slot (one `<|utt_audio|>` per window, one `<|global_audio|>`, one `<|video|>`);
the dataset expands each into as many tokens as that slot carries (K', K_global, K_v), after the token budget
is settled. Layouts:

interleaved (default)            paper ([T_V; T_A; prompt], §3.4 literally)
  Video: <|video|>                 <|video|><|global_audio|><|utt_audio|><|utt_audio|>
  Dialogue (times in seconds):     Dialogue (times in seconds):
  [0.30-1.90 s] A: "Hi." <|utt_audio|>   [0.30-1.90 s] A: "Hi."
  [2.30-3.10 s] B: "Oh." <|utt_audio|>   [2.30-3.10 s] B: "Oh."
  Whole-clip audio: <|global_audio|>   What emotions does A express? ...
  What emotions does A express? ...

Ablations: "no-global" drops the global slot; "no-utterance" lists the dialogue without per-utterance slots;
"fixed-window" lists the dialogue without slots and then the fixed windows by time
("Audio windows: [0.0-2.0 s] <|utt_audio|> ..."), because those tokens no longer belong to one utterance and
giving their true times keeps the timestamp alignment the prompt is built for.
"""

from __future__ import annotations

import re
import warnings

from acoustemo.data.segments import Clip
from acoustemo.model.llm import GLOBAL_AUDIO, UTT_AUDIO, VIDEO

SYSTEM = "You are an expert in recognising emotions from speech, voice and facial expressions."
QUESTION = "What emotions does {target} express? Answer with emotion words and an explanation."


def build_prompt(clip: Clip, windows: list[tuple[float, float]] | None, layout: str = "interleaved",
                 ablation: str = "full", with_global: bool = True, with_video: bool = False) -> str:
    """The user message with one placeholder per slot.

    `windows` are the (start_s, end_s) of the acoustic windows in order: the utterances' own times (full /
    no-global), fixed windows (fixed-window), or None (no-utterance).
    """
    per_utterance = ablation in ("full", "no-global") and windows is not None
    if per_utterance and len(windows) != len(clip.utterances):
        raise ValueError(f"clip {clip.id}: {len(windows)} windows for {len(clip.utterances)} utterances")
    inline = layout == "interleaved"
    lines = []
    if with_video and inline:
        lines.append(f"Video: {VIDEO}")
    if not inline:  # [T_V; T_A; prompt]
        lines.append((VIDEO if with_video else "") + (GLOBAL_AUDIO if with_global else "")
                     + UTT_AUDIO * (len(windows) if windows else 0))
    lines.append("Dialogue (times in seconds):")
    for u in clip.utterances:
        slot = f" {UTT_AUDIO}" if per_utterance and inline else ""
        speaker, text = _clean(u.speaker) or "Unknown speaker", _clean(u.text)
        lines.append(f"[{u.start_s:.2f}-{u.end_s:.2f} s] {speaker}: \"{text}\"{slot}")
    if windows and not per_utterance and inline:
        lines.append("Audio windows:")
        lines.extend(f"[{a:.1f}-{b:.1f} s] {UTT_AUDIO}" for a, b in windows)
    if with_global and inline:
        lines.append(f"Whole-clip audio: {GLOBAL_AUDIO}")
    lines.append(QUESTION.format(target=_clean(clip.target_speaker or "") or "the main speaker"))
    return "\n".join(line for line in lines if line)


def _clean(text: str) -> str:
    """User text must not smuggle in placeholder tokens (it would break the placeholder count)."""
    for token in (UTT_AUDIO, GLOBAL_AUDIO, VIDEO):
        text = text.replace(token, "")
    return text.strip()


def chat_prompt(tokenizer, user_message: str) -> str:
    """The prompt text up to the assistant's answer, in the LLM's chat template if it has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_message}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM}\n\n{user_message}\nAnswer: "


def format_answer(labels: list[str], description: str = "") -> str:
    """`Emotions: a, b\nExplanation: ...` — the answer the LLM learns to write (DESIGN.md "Answer format")."""
    emotions = ", ".join(_clean(label) for label in labels if _clean(label))
    explanation = " ".join(_clean(description).split()) or "No explanation given."
    return f"Emotions: {emotions}\nExplanation: {explanation}"


def training_answers(clips: list[Clip]) -> list[str]:
    """The answers of a training split, as `answer_bank.json` holds them (prediction's drafts guess from them)."""
    return [format_answer(c.labels, c.description) for c in clips]


_EMOTIONS = re.compile(r"emotions?\s*[:：]\s*(.*)", re.IGNORECASE)
_EXPLANATION = re.compile(r"explanation\s*[:：]\s*(.*)", re.IGNORECASE | re.DOTALL)


def parse_answer(text: str) -> tuple[list[str], str]:
    """(emotions, explanation) from a generated answer; never raises. Malformed -> ([], text) + a warning."""
    text = text if isinstance(text, str) else ""
    m = _EMOTIONS.search(text)
    if m is None:
        _warn(f"no 'Emotions:' line in the answer {text[:80]!r}; returning no emotions")
        return [], text.strip()
    line = m.group(1).split("\n", 1)[0]
    line = re.split(r"explanation\s*[:：]", line, flags=re.IGNORECASE)[0]
    emotions, seen = [], set()
    for part in re.split(r"[,;/]|\band\b", line):
        word = part.strip().strip(".!\"'").strip().lower()
        if word and word not in seen:
            seen.add(word)
            emotions.append(word)
    e = _EXPLANATION.search(text, m.start())
    explanation = " ".join(e.group(1).split()) if e else ""
    if not emotions:
        _warn(f"the 'Emotions:' line of {text[:80]!r} lists no emotion")
    return emotions, explanation


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)
