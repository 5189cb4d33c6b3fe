"""Greedy decoding with n-gram drafts (acoustemo/model/decoding.py): the same answer, in fewer LLM passes."""

import json
import random

import pytest
import torch

from acoustemo.config import ModelConfig
from acoustemo.errors import ConfigError
from acoustemo.model.acoustemo import ANSWER_BANK, AcoustEmoModel
from acoustemo.model.decoding import DecodeStats, NgramDrafter, greedy_with_drafts
from conftest import CLIPS, build

pytestmark = pytest.mark.usefixtures("one_thread")


def test_drafter_follows_the_bank_then_copies_the_history():
    d = NgramDrafter([[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 9]], max_ngram=3, draft_len=3)
    assert d.propose([7, 1, 2]) == [3, 9]  # the bank's most frequent continuation, n-gram after n-gram
    assert d.propose([7, 3, 4]) == [5]  # the bank ends there
    # (20, 21) is not in the bank: what followed its earlier occurrence in the history
    assert d.propose([20, 21, 22, 23, 24, 25, 20, 21]) == [22, 23, 24]
    assert d.propose([30, 31]) == []  # nothing known: no drafts
    assert NgramDrafter().propose([5, 6, 5]) == []  # a single shared token is not copied
    with pytest.raises(ValueError, match="draft_len"):
        NgramDrafter(draft_len=0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AcoustEmoModel(ModelConfig.preset("debug")).eval()


def _one(model, clip):
    _, batch = build(model, model.cfg, [clip], with_answers=False)
    embeds = model.embed(batch["input_ids"], audio=batch["audio"], audio_mask=batch["audio_mask"],
                         windows=batch["windows"], window_mask=batch["window_mask"])
    return batch, embeds


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.id)
def test_drafts_never_change_the_answer(model, clip):
    batch, embeds = _one(model, clip)
    eos = {model.tokenizer.eos_token_id}
    plain = greedy_with_drafts(model.llm, embeds, [], eos, 24, None)
    assert len(plain) > 4
    hf = model.generate(batch, max_new_tokens=24, drafts=False)[0]  # HF generate, its own attention kernel
    assert model.tokenizer.decode(plain, skip_special_tokens=True).strip() == hf
    rng = random.Random(0)
    banks = {"perfect": [plain + list(eos)], "half right": [plain[: len(plain) // 2] + [3, 3, 3]],
             "garbage": [[rng.randrange(40, 200) for _ in range(60)] for _ in range(5)]}
    for name, bank in banks.items():
        stats = DecodeStats()
        ids = greedy_with_drafts(model.llm, embeds, batch["input_ids"][0].tolist(), eos, 24, NgramDrafter(bank), stats)
        assert ids == plain, name
        assert stats.accepted <= stats.drafted and stats.passes <= len(plain)
        if name == "perfect":  # every draft right: a handful of passes instead of one per token
            assert stats.passes <= len(plain) // 4 and stats.accepted == stats.tokens - stats.passes - 1


def test_max_new_tokens_is_respected_with_drafts(model):
    batch, embeds = _one(model, CLIPS[0])
    eos = {model.tokenizer.eos_token_id}
    plain = greedy_with_drafts(model.llm, embeds, [], eos, 24, None)
    for limit in (1, 2, 5, 9):
        assert greedy_with_drafts(model.llm, embeds, [], eos, limit, NgramDrafter([plain])) == plain[:limit]
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        greedy_with_drafts(model.llm, embeds, [], eos, 0, None)


def test_predictor_refuses_a_zero_answer_limit_before_loading():
    from acoustemo.predictor import load_predictor

    with pytest.raises(ConfigError, match="--max-new-tokens"):
        load_predictor(None, max_new_tokens=0)


def test_generate_drafts_one_clip_and_batches_agree(model):
    _, batch = build(model, model.cfg, CLIPS[1:2], with_answers=False)
    model.answer_bank = ["Emotions: sad\nExplanation: His voice drops."]
    try:
        assert model.generate(batch, 16) == model.generate(batch, 16, drafts=False)
    finally:
        model.answer_bank = []
    assert model.llm.config._attn_implementation == "sdpa"  # restored after decoding


def test_answer_bank_is_saved_loaded_and_checked(model, tmp_path):
    model.answer_bank = ["Emotions: sad\nExplanation: His voice drops.", "Emotions: happy\nExplanation: Ja."]
    try:
        model.save_pretrained(tmp_path / "m")
    finally:
        model.answer_bank = []
    assert json.loads((tmp_path / "m" / ANSWER_BANK).read_text())[1].endswith("Ja.")
    loaded = AcoustEmoModel.from_pretrained(tmp_path / "m")
    assert loaded.answer_bank[0].startswith("Emotions: sad") and len(loaded.answer_bank) == 2
    model.save_pretrained(tmp_path / "none")  # no bank: no file
    assert not (tmp_path / "none" / ANSWER_BANK).exists()
    (tmp_path / "m" / ANSWER_BANK).write_text('{"not": "a list"}')
    with pytest.raises(ConfigError, match="JSON list of answer strings"):
        AcoustEmoModel.from_pretrained(tmp_path / "m")


@pytest.mark.slow
def test_shipped_checkpoint_decodes_the_sample_identically_in_fewer_passes(tmp_path):
    from acoustemo.data.segments import Clip
    from acoustemo.data.segmentation import utterances_for
    from acoustemo.predictor import load_predictor

    predictor = load_predictor(None, cache_dir=tmp_path)
    model = predictor.model
    assert len(model.answer_bank) == 2800
    utts, source, _ = utterances_for("examples/sample.wav", "examples/sample.srt")
    clip = Clip("sample", "examples/sample.wav", utts, target_speaker="Sami", timestamps_source=source)
    drafted = predictor.predict([clip])[0].answer
    stats = model.decode_stats
    assert drafted.startswith("Emotions: sad, surprised")
    assert predictor.predict([clip])[0].emotions == ["sad", "surprised"]
    assert stats.passes * 2 < stats.tokens  # over two tokens per LLM pass
    model.drafter = lambda: None  # the same one-clip decoder, one token per pass
    assert predictor.predict([clip])[0].answer == drafted
