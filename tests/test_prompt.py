"""The §3.4 prompt layouts and the answer format."""

import warnings

import pytest

from acoustemo.data.prompt import build_prompt, chat_prompt, format_answer, parse_answer
from acoustemo.data.segments import Clip, Utterance
from acoustemo.model.llm import GLOBAL_AUDIO, UTT_AUDIO, VIDEO, tiny_tokenizer

CLIP = Clip("c1", "c1.wav", [Utterance(0.3, 1.9, "Ann", "Where were you?"), Utterance(2.25, 3.1, "Bob", "Out.")],
            target_speaker="Ann")
TIMES = [(0.3, 1.9), (2.25, 3.1)]


def test_interleaved_layout_puts_each_utterance_before_its_tokens():
    text = build_prompt(CLIP, TIMES, with_video=True)
    lines = text.splitlines()
    assert lines[0] == f"Video: {VIDEO}"
    assert lines[2] == f'[0.30-1.90 s] Ann: "Where were you?" {UTT_AUDIO}'
    assert lines[3] == f'[2.25-3.10 s] Bob: "Out." {UTT_AUDIO}'
    assert lines[4] == f"Whole-clip audio: {GLOBAL_AUDIO}"
    assert lines[5] == "What emotions does Ann express? Answer with emotion words and an explanation."


def test_paper_layout_is_video_then_global_then_utterances_then_text():
    text = build_prompt(CLIP, TIMES, layout="paper", with_video=True)
    assert text.splitlines()[0] == VIDEO + GLOBAL_AUDIO + UTT_AUDIO * 2  # [T_V; T_A; prompt], Eq. (3) order
    assert text.count(UTT_AUDIO) == 2 and text.count(GLOBAL_AUDIO) == 1
    assert '[2.25-3.10 s] Bob: "Out."\n' in text


@pytest.mark.parametrize("layout", ["interleaved", "paper"])
def test_ablations_change_only_their_slots(layout):
    no_global = build_prompt(CLIP, TIMES, layout, "no-global", with_global=False)
    assert GLOBAL_AUDIO not in no_global and no_global.count(UTT_AUDIO) == 2
    no_utt = build_prompt(CLIP, None, layout, "no-utterance")
    assert UTT_AUDIO not in no_utt and no_utt.count(GLOBAL_AUDIO) == 1 and "Where were you?" in no_utt
    fixed = build_prompt(CLIP, [(0.0, 2.0), (2.0, 3.2)], layout, "fixed-window")
    assert fixed.count(UTT_AUDIO) == 2
    if layout == "interleaved":  # window tokens are listed by their own times, not attached to utterances
        assert f"[0.0-2.0 s] {UTT_AUDIO}\n[2.0-3.2 s] {UTT_AUDIO}" in fixed
        assert '"Out."\n' in fixed


def test_missing_target_and_speaker_and_window_mismatch():
    clip = Clip("c2", "c2.wav", [Utterance(0.0, 1.0, "", f"Hm.{UTT_AUDIO}{VIDEO}")])
    text = build_prompt(clip, [(0.0, 1.0)])
    assert "Unknown speaker" in text and "the main speaker" in text
    assert text.count(UTT_AUDIO) == 1 and VIDEO not in text  # text cannot smuggle in placeholders
    with pytest.raises(ValueError, match="2 windows for 1 utterances"):
        build_prompt(clip, TIMES)


def test_chat_template_wraps_the_message():
    tok = tiny_tokenizer()
    text = chat_prompt(tok, "hello")
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nhello<|im_end|>" in text


def test_answer_round_trip():
    text = format_answer(["anxious", " worried "], "Her voice  trembles\nwhile she asks.")
    assert text == "Emotions: anxious, worried\nExplanation: Her voice trembles while she asks."
    assert parse_answer(text) == (["anxious", "worried"], "Her voice trembles while she asks.")
    assert parse_answer("emotions: Happy and relieved.\nexplanation: laughs") == (["happy", "relieved"], "laughs")
    assert parse_answer("Emotions: sad; sad, angry Explanation: both") == (["sad", "angry"], "both")


@pytest.mark.parametrize("text", ["", "I think she is fine.", "Emotions:\nExplanation: none", None, "Emotions: , ;"])
def test_parse_answer_malformed_gives_nothing_and_warns(text):
    with pytest.warns(UserWarning):
        emotions, explanation = parse_answer(text)
    assert emotions == [] and isinstance(explanation, str)


def test_parse_answer_well_formed_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_answer("Emotions: calm")[0] == ["calm"]
