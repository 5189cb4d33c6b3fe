"""AcoustEmoModel + AcoustEmoDataset on the debug preset with synthetic features (random arrays, real code)."""

import warnings

import numpy as np
import pytest
import torch

from acoustemo.config import ModelConfig
from acoustemo.data.dataset import IGNORE, AcoustEmoDataset, TokenBudgetWarning, collate
from acoustemo.data.windows import frame_range
from acoustemo.errors import ConfigError
from acoustemo.features.base import Features
from acoustemo.model.acoustemo import AcoustEmoModel
from acoustemo.model.llm import GLOBAL_AUDIO, UTT_AUDIO, VIDEO, Int8Linear
from conftest import CLIPS, RATE_HZ, build, features_for, make_clip

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    return ModelConfig.preset("debug")


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return AcoustEmoModel(cfg).eval()


def test_dataset_windows_are_eq1_and_labels_mask_all_but_the_answer(model, cfg):
    ds, _ = build(model, cfg)
    load_a, _ = features_for(CLIPS, cfg)
    tok = model.tokenizer
    for i, clip in enumerate(CLIPS):
        ex, feats = ds[i], load_a(clip)
        assert len(ex["windows"]) == len(clip.utterances)
        for u, w in zip(clip.utterances, ex["windows"]):
            a, b = frame_range(u.start_s, u.end_s, RATE_HZ, feats.data.shape[0])
            assert torch.equal(w, torch.from_numpy(feats.data[a:b]))  # Eq. (1)
        ids = ex["input_ids"].tolist()
        assert ids.count(tok.convert_tokens_to_ids(UTT_AUDIO)) == len(clip.utterances) * cfg.num_queries
        assert ids.count(tok.convert_tokens_to_ids(GLOBAL_AUDIO)) == cfg.global_num_queries
        answer = ex["labels"][ex["labels"] != IGNORE].tolist()
        assert answer[-1] == tok.eos_token_id
        assert tok.decode(answer[:-1]) == f"Emotions: {', '.join(clip.labels)}\nExplanation: {clip.description}"
        n = len(answer)
        assert ex["input_ids"][-n:].tolist() == answer and (ex["labels"][:-n] == IGNORE).all()
    assert len(ds[1]["windows"][0]) >= 1 and len(ds[0]["windows"][1]) == 1  # the one-frame window survives


def test_collate_matches_the_design_batch(model, cfg):
    _, batch = build(model, cfg)
    B, W = len(CLIPS), sum(len(c.utterances) for c in CLIPS)
    S = batch["input_ids"].shape[1]
    assert batch["ids"] == [c.id for c in CLIPS]
    assert batch["attention_mask"].shape == batch["labels"].shape == (B, S)
    assert batch["audio"].shape[:2] == batch["audio_mask"].shape and batch["audio"].shape[0] == B
    assert batch["windows"].shape[0] == W and batch["window_mask"].shape == batch["windows"].shape[:2]
    assert batch["window_tokens"].tolist() == [cfg.num_queries] * W
    assert batch["global_tokens"].tolist() == [cfg.global_num_queries] * B
    assert batch["video"] is None and batch["video_mask"] is None
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_emotion_line_weight_in_the_loss(model, cfg):
    """emotion_mask marks exactly the answer's "Emotions: ..." tokens; weight 1 is Eq. (4); W counts them W times."""
    _, batch = build(model, cfg)
    for row in range(len(CLIPS)):
        marked = batch["input_ids"][row][batch["emotion_mask"][row]]
        assert model.tokenizer.decode(marked) == "Emotions: " + ", ".join(CLIPS[row].labels)
    assert not (batch["emotion_mask"] & (batch["labels"] == IGNORE)).any()
    args = {k: v for k, v in batch.items() if k != "ids"}
    with torch.no_grad():
        plain, one, ten = model(**args), model(**args, emotion_weight=1.0), model(**args, emotion_weight=10.0)
        target, emo = batch["labels"][:, 1:], batch["emotion_mask"][:, 1:]
        ce = torch.nn.functional.cross_entropy(plain.logits[:, :-1].float().transpose(1, 2), target.clamp(min=0),
                                               reduction="none")
    w = (target != IGNORE).float() * (1 + 9 * emo.float())
    assert one.loss == plain.loss
    assert plain.loss.item() == pytest.approx(_answer_only_cross_entropy(model, batch, plain.logits), rel=1e-5)
    assert ten.loss.item() == pytest.approx(((ce * w).sum() / w.sum()).item(), rel=1e-5)
    assert ten.loss.item() != pytest.approx(plain.loss.item(), rel=1e-3)


def _answer_only_cross_entropy(model, batch, logits) -> float:
    """Eq. (4) from scratch: mean -log p of each answer token (its text tokenised here, + EOS) given all before it;
    the answer's place is found from the text, not from the batch's labels."""
    tok, nll = model.tokenizer, []
    for row, clip in enumerate(CLIPS):
        answer = tok(f"Emotions: {', '.join(clip.labels)}\nExplanation: {clip.description}",
                     add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        end = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, end - len(answer):end].tolist() == answer
        logp = torch.log_softmax(logits[row].double(), dim=-1)
        nll += [-logp[p - 1, batch["input_ids"][row, p]].item() for p in range(end - len(answer), end)]
    return sum(nll) / len(nll)


def test_eq3_tokens_land_at_their_placeholders(model, cfg):
    """Paper layout: T_A = [T_global; T_1 ... T_N] sits contiguously, each at the right embedding rows."""
    pcfg = ModelConfig.preset("debug", layout="paper")
    _, batch = build(model, pcfg, CLIPS[:1])
    ids = batch["input_ids"][0]
    g, u = (ids == model.placeholder_ids[GLOBAL_AUDIO]).nonzero()[:, 0], (ids == model.placeholder_ids[UTT_AUDIO]).nonzero()[:, 0]
    assert g.max() < u.min() and (torch.cat([g, u]).diff() == 1).all()  # [T_global; T_1; ...; T_N] in one block
    with torch.no_grad():
        embeds = model.embed(**{k: v for k, v in batch.items() if k not in ("ids", "labels", "attention_mask", "emotion_mask")})
        t_global = model.global_tokens(batch["audio"], batch["audio_mask"])
        t_utts = model.utterance_tokens(batch["windows"], batch["window_mask"])
    assert torch.allclose(embeds[0, g], t_global, atol=1e-6)
    assert torch.allclose(embeds[0, u], t_utts, atol=1e-6)
    assert t_utts.shape == (len(CLIPS[0].utterances) * cfg.num_queries, model.llm.config.hidden_size)


def test_batch_equals_one_clip_at_a_time(model, cfg):
    _, batch = build(model, cfg)
    with torch.no_grad():
        logits = model(**batch).logits
        for i, clip in enumerate(CLIPS):
            _, one = build(model, cfg, [clip])
            n = one["input_ids"].shape[1]
            assert torch.allclose(logits[i, :n], model(**one).logits[0], atol=1e-4), clip.id


def test_gradients_reach_only_trainable_parameters(model, cfg):
    _, batch = build(model, cfg)
    with torch.no_grad():  # LoRA starts with B = 0, which blocks the gradient of A; open it
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.train()
    model.zero_grad()
    model(**batch).loss.backward()
    model.eval()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} got a gradient"
            assert name.startswith("llm.") and "lora_" not in name
    assert any("lora_" in n for n in trainable) and any(n.startswith("utt_qformer") for n in trainable)
    assert any(n.startswith("global_qformer") for n in trainable) and "utt_proj.weight" in trainable
    assert not any("embed_tokens" in n for n in trainable)  # the embedding is never trained or resized
    report = model.parameter_report()
    assert report["trainable"] == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert 0 < report["trainable"] < report["total"]
    model.zero_grad()


def test_placeholder_count_mismatch_raises(model, cfg):
    _, batch = build(model, cfg)
    ids = batch["input_ids"].clone()
    first = (ids == model.placeholder_ids[UTT_AUDIO]).nonzero()[0]
    ids[first[0], first[1]] = model.tokenizer.pad_token_id
    with pytest.raises(ConfigError, match=r"placeholders in input_ids"):
        model(**{**batch, "input_ids": ids})
    with pytest.raises(ConfigError, match=r"<\|global_audio\|>"):
        model(**{**batch, "global_tokens": batch["global_tokens"] - 1})


def test_save_load_identical_and_other_config_fails(model, cfg, tmp_path):
    _, batch = build(model, cfg)
    with torch.no_grad():  # make LoRA non-zero so the adapter round trip is really tested
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.save_pretrained(tmp_path / "ckpt")
    model.save_pretrained(tmp_path / "ckpt")  # overwriting an existing checkpoint works
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {"config.json", "acoustemo.safetensors", "adapter"}
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.old-*"))
    assert not list((tmp_path / "ckpt").rglob("*.bin")) and not list((tmp_path / "ckpt").rglob("*.pt"))
    loaded = AcoustEmoModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert model.generate(batch, max_new_tokens=6) == loaded.generate(batch, max_new_tokens=6)
    AcoustEmoModel.from_pretrained(tmp_path / "ckpt", ModelConfig.preset("debug", max_seq_len=2048))  # runtime field
    with pytest.raises(ConfigError, match=r"num_queries: 5 vs 6"):
        AcoustEmoModel.from_pretrained(tmp_path / "ckpt", ModelConfig.preset("debug", num_queries=6))
    with pytest.raises(ConfigError, match="not an AcoustEmo checkpoint"):
        AcoustEmoModel.from_pretrained(tmp_path / "nothing")

    merged = AcoustEmoModel.from_pretrained(tmp_path / "ckpt").merge_lora().eval()  # what prediction loads
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, loaded(**batch).logits, rtol=1e-4, atol=1e-4)
    assert merged.generate(batch, max_new_tokens=6) == loaded.generate(batch, max_new_tokens=6)
    with pytest.raises(ConfigError, match="merged"):
        merged.save_pretrained(tmp_path / "again")
    assert not (tmp_path / "again").exists()

    q = AcoustEmoModel.from_pretrained(tmp_path / "ckpt").quantize_int8().eval()  # predict's default on CPU
    assert any(isinstance(m, Int8Linear) for m in q.llm.modules())
    assert not any(type(m) is torch.nn.Linear for m in q.llm.modules())
    with torch.no_grad():
        a, b = q(**batch).logits.flatten(), loaded(**batch).logits.flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.999 and not torch.equal(a, b)


def test_generate_is_deterministic_and_ignores_answers(model, cfg):
    _, with_answers = build(model, cfg)
    _, prompts = build(model, cfg, with_answers=False)
    a = model.generate(with_answers, max_new_tokens=8)
    assert a == model.generate(prompts, max_new_tokens=8) == model.generate(prompts, max_new_tokens=8)
    _, one = build(model, cfg, CLIPS[1:2], with_answers=False)
    assert model.generate(one, max_new_tokens=8) == [_greedy_by_hand(model, one, 8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random LLM's answers are malformed: parsed to [] with a warning
        parsed = model.predict_batch(prompts, max_new_tokens=8)
    assert [p[0] for p in parsed] == [[]] * len(CLIPS)


def _greedy_by_hand(model, batch, max_new_tokens: int) -> str:
    """Greedy decoding of one clip without generate(): the LLM's argmax token appended step by step, no cache."""
    keys = ("audio", "audio_mask", "windows", "window_mask", "window_tokens", "global_tokens", "video", "video_mask")
    out = []
    with torch.no_grad():
        x = model.embed(batch["input_ids"], **{k: batch.get(k) for k in keys})
        for _ in range(max_new_tokens):
            nxt = int(model.llm(inputs_embeds=x).logits[0, -1].argmax())
            if nxt == model.tokenizer.eos_token_id:
                break
            out.append(nxt)
            x = torch.cat([x, model.llm.get_input_embeddings()(torch.tensor([[nxt]])).to(x.dtype)], dim=1)
    return model.tokenizer.decode(out, skip_special_tokens=True).strip()


def test_token_budget_shrinks_window_tokens_with_a_warning(model, cfg):
    clip = make_clip(9, [(0.2 + 0.5 * j, 0.6 + 0.5 * j) for j in range(12)])
    _, full = build(model, cfg, [clip])
    need = full["input_ids"].shape[1]
    tight = ModelConfig.preset("debug", max_seq_len=need - 30)
    with pytest.warns(TokenBudgetWarning, match="clip9"):
        _, batch = build(model, tight, [clip])
    k = batch["window_tokens"].tolist()
    assert batch["input_ids"].shape[1] <= tight.max_seq_len
    assert len(set(k)) == 1 and 1 <= k[0] < cfg.num_queries and batch["global_tokens"].tolist() == [3]
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)  # the count check passes with pooled tokens
    text_only = need - 12 * cfg.num_queries - cfg.global_num_queries
    tighter = ModelConfig.preset("debug", max_seq_len=text_only + 12 + 1)
    with pytest.warns(TokenBudgetWarning):
        _, batch = build(model, tighter, [clip])
    assert batch["window_tokens"].tolist() == [1] * 12 and batch["global_tokens"].tolist() == [1]
    with pytest.raises(ConfigError, match="clip9.*raise max_seq_len"):
        build(model, ModelConfig.preset("debug", max_seq_len=text_only + 5), [clip])


# CLIPS[0] at 50 Hz: 215 frames; utterance windows [15, 60), [75, 76), [95, 195) (Eq. 1)
REGIONS = {"inside": [(20, 40)],  # inside the target's first utterance
           "between": [(61, 74)],  # after 1.2 s, before 1.5 s: between two utterances
           "outside": [(0, 14), (200, 215)]}  # before the first and after the last window


def perturbed(model, cfg, region: str | None, clip=CLIPS[0]):
    """The batch of one clip whose acoustic features are shifted by +3 in `region`'s frames (None: untouched)."""
    load_a, _ = features_for([clip], cfg)
    feats = load_a(clip)
    data = feats.data.copy()
    for a, b in REGIONS.get(region, []):
        data[a:b] += 3.0
    moved = Features(data, feats.frame_rate_hz, feats.encoder_id, feats.streams, feats.duration_s)
    ds = AcoustEmoDataset([clip], lambda c: moved, None, model.tokenizer, cfg)
    return collate([ds[0]], model.tokenizer.pad_token_id)


# which perturbations each ablation's logits must feel (True) or ignore (False), by design
ABLATION_SEES = {"full": {"inside": True, "between": True, "outside": True},  # the global Q-Former sees the clip
                 "no-global": {"inside": True, "between": False, "outside": False},  # only utterance windows
                 "no-utterance": {"inside": True, "between": True, "outside": True},
                 "fixed-window": {"inside": True, "between": True, "outside": True}}  # windows tile the clip


@pytest.mark.parametrize("ablation", list(ABLATION_SEES))
def test_ablations_by_perturbation(ablation):
    cfg = ModelConfig.preset("debug", ablation=ablation)
    torch.manual_seed(0)
    model = AcoustEmoModel(cfg).eval()
    base = perturbed(model, cfg, None)
    with torch.no_grad():
        logits = model(**base).logits
        for region, sees in ABLATION_SEES[ablation].items():
            batch = perturbed(model, cfg, region)
            assert torch.equal(batch["input_ids"], base["input_ids"])  # the prompt does not see features
            changed = not torch.equal(model(**batch).logits, logits)
            assert changed == sees, (ablation, region)
            if ablation == "full":  # the utterance branch alone: only its own windows matter
                same_utt = torch.equal(model.utterance_tokens(batch["windows"], batch["window_mask"]),
                                       model.utterance_tokens(base["windows"], base["window_mask"]))
                assert same_utt == (region != "inside"), region
    ids = base["input_ids"]
    n_global = int((ids == model.placeholder_ids[GLOBAL_AUDIO]).sum())
    n_utt = int((ids == model.placeholder_ids[UTT_AUDIO]).sum())
    if ablation == "no-global":
        assert model.global_qformer is None and n_global == 0 and n_utt == 3 * cfg.num_queries
    if ablation == "no-utterance":
        assert model.utt_qformer is None and n_utt == 0 and base["windows"].shape[0] == 0
    if ablation == "fixed-window":  # windows every 2 s over the clip's 4.3 s: [0, 2), [2, 4), [4, 4.3)
        from acoustemo.data.windows import fixed_windows

        data = features_for(CLIPS[:1], cfg)[0](CLIPS[0]).data
        spans = fixed_windows(4.3, cfg.fixed_window_s)
        assert spans == [(0.0, 2.0), (2.0, 4.0), (4.0, 4.3)]
        assert base["windows"].shape[0] == 3 and n_utt == 3 * cfg.num_queries
        for w, (start, end) in enumerate(spans):
            a, b = frame_range(start, end, RATE_HZ, data.shape[0])
            n = int(base["window_mask"][w].sum())
            assert n == b - a and torch.equal(base["windows"][w, :n], torch.from_numpy(data[a:b]))


def test_mixed_budget_batch_equals_each_clip_alone():
    """A budget-shrunk many-utterance clip (K' < K), clips at full K, all with video: `_pool_each` regroups the
    windows of mixed counts and every row's logits are those of its clip alone."""
    cfg0 = ModelConfig.preset("debug", visual_dim=7)
    torch.manual_seed(0)
    model = AcoustEmoModel(cfg0).eval()
    many = make_clip(9, [(0.2 + 0.5 * j, 0.6 + 0.5 * j) for j in range(12)])
    need = build(model, cfg0, [many], visual_dim=7)[1]["input_ids"].shape[1]
    cfg = ModelConfig.preset("debug", visual_dim=7, max_seq_len=need - 30)
    clips = [CLIPS[1], many, CLIPS[2]]
    with pytest.warns(TokenBudgetWarning, match="clip9"):
        _, batch = build(model, cfg, clips, visual_dim=7)
    counts = batch["window_tokens"].tolist()
    assert counts[:1] == [cfg.num_queries] and counts[-2:] == [cfg.num_queries] * 2
    assert 1 <= counts[1] < cfg.num_queries and counts[1:13] == [counts[1]] * 12  # the shrunk clip's 12 windows
    with torch.no_grad():
        logits = model(**batch).logits
        for i, clip in enumerate(clips):
            if clip is many:
                with pytest.warns(TokenBudgetWarning):
                    _, one = build(model, cfg, [clip], visual_dim=7)
            else:
                _, one = build(model, cfg, [clip], visual_dim=7)
            n = one["input_ids"].shape[1]
            assert torch.equal(batch["input_ids"][i, :n], one["input_ids"][0])
            torch.testing.assert_close(logits[i, :n], model(**one).logits[0], rtol=1e-4, atol=1e-4, msg=clip.id)


def test_visual_branch():
    cfg = ModelConfig.preset("debug", visual_dim=7)
    torch.manual_seed(0)
    model = AcoustEmoModel(cfg).eval()
    _, batch = build(model, cfg, visual_dim=7)
    assert batch["video"].shape[0] == len(CLIPS) and batch["video"].shape[2] == 7
    assert int((batch["input_ids"] == model.placeholder_ids[VIDEO]).sum()) == len(CLIPS) * cfg.visual_num_queries
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)
    with pytest.raises(ConfigError, match="no visual features"):
        build(model, cfg, visual_dim=None)


def test_training_fits_a_handful_of_clips_until_the_answers_are_right(cfg):
    """Four clips, each with its own label: training on them must reach greedy answers that each name the clip's
    own label first ("Emotions: <label>"; none of the labels is a prefix of another), within a generous cap. A property of learning that holds on any CPU kernel, unlike a
    loss ratio after a fixed number of steps (#34: 6.72 -> 4.14 in 80 steps on an AVX512-FP16 Xeon, under half
    on AVX2). The answer's label line is weighted x10 in the loss, as the default recipe does."""
    torch.manual_seed(0)
    model = AcoustEmoModel(cfg).train()
    labels = ["happy", "sad", "angry", "calm"]
    clips = [make_clip(i, [(0.2 + 0.1 * i, 0.9), (1.1, 1.6)][: 1 + i % 2], [lab]) for i, lab in enumerate(labels)]
    _, batch = build(model, cfg, clips)
    want = [f"Emotions: {lab}" for lab in labels]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    answers, step = [], 0
    while answers != want and step < 500:
        for _ in range(10):
            opt.zero_grad()
            model(**batch, emotion_weight=10.0).loss.backward()
            opt.step()
        step += 10
        answers = [a[: len(w)] for a, w in zip(model.generate(batch, max_new_tokens=16), want)]
    assert answers == want, (step, answers)


def test_clip_reference_windows_read_the_frames_against_the_clips_speech(model, cfg):
    from dataclasses import replace

    from acoustemo.training.data import acoustic_stats

    rel = replace(cfg, acoustic_reference="clip")
    load_a, _ = features_for(CLIPS, cfg)
    ds = AcoustEmoDataset(CLIPS, load_a, None, model.tokenizer, rel)
    for i, clip in enumerate(CLIPS):
        data = load_a(clip).data
        speech = np.zeros(len(data), dtype=bool)
        for u in clip.utterances:
            a, b = frame_range(u.start_s, u.end_s, RATE_HZ, len(data))
            speech[a:b] = True
        expected = data - data[speech].mean(0)
        ex = ds[i]
        np.testing.assert_allclose(ex["audio"].numpy(), expected, atol=1e-5)
        u = clip.utterances[0]
        a, b = frame_range(u.start_s, u.end_s, RATE_HZ, len(data))
        np.testing.assert_allclose(ex["windows"][0].numpy(), expected[a:b], atol=1e-5)
    # a clip-wide offset (gain, a voice's pitch) changes nothing the model reads
    shifted = lambda c: Features(load_a(c).data + 5.0, RATE_HZ, "test", cfg.acoustic_streams, 0.0)  # noqa: E731
    moved = AcoustEmoDataset(CLIPS, shifted, None, model.tokenizer, rel)
    np.testing.assert_allclose(moved[0]["audio"].numpy(), ds[0]["audio"].numpy(), atol=1e-4)
    # the corpus statistics are taken on the frames the model reads: the mean of the speech frames is 0 per clip
    mean_abs, _ = acoustic_stats(CLIPS, load_a)
    mean_rel, _ = acoustic_stats(CLIPS, load_a, rel)
    assert torch.allclose(mean_rel, torch.from_numpy(np.concatenate([ds[i]["audio"].numpy() for i in range(len(CLIPS))]).mean(0)), atol=1e-5)
    assert not torch.allclose(mean_abs, mean_rel, atol=1e-3)


def test_config_validation_and_presets(tmp_path):
    with pytest.raises(ConfigError, match="Llama-2-7b"):
        ModelConfig.preset("paper")
    paper = ModelConfig.preset("paper", llm="/models/Llama-2-7b-hf")
    assert (paper.num_queries, paper.d_model) == (32, 768)
    with pytest.raises(ConfigError, match="ablation"):
        ModelConfig.preset("debug", ablation="no-audio")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig.preset("debug", d_model=25)
    with pytest.raises(ConfigError, match="acoustic_reference='speaker' must be one of absolute, clip"):
        ModelConfig.preset("debug", acoustic_reference="speaker")
    with pytest.raises(ConfigError, match="unknown ModelConfig field"):
        ModelConfig.preset("debug", num_querys=3)
    cfg = ModelConfig.preset("cpu-default", visual_dim=128)
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg
    with pytest.raises(ConfigError, match="neither"):
        AcoustEmoModel(ModelConfig.preset("debug", llm=str(tmp_path / "no-such-model")))


@pytest.mark.slow
def test_real_offline_llm_loads_and_generates():
    """The bundled SmolLM2-135M (GGUF -> HF folder once, ~30-65 s; then ~3.5 s) runs inside AcoustEmoModel."""
    cfg = ModelConfig.preset("cpu-default", acoustic_streams=[("whisper", 13), ("prosody", 3)])
    model = AcoustEmoModel(cfg).eval()
    assert model.llm.config.hidden_size == 576 and model.tokenizer.chat_template
    _, batch = build(model, cfg, CLIPS[1:2], with_answers=False)
    text = model.generate(batch, max_new_tokens=5)
    expected = _greedy_by_hand(model, batch, 5)
    assert text == [expected] and expected  # the real LLM answers the prompt: five tokens of text
    report = model.parameter_report()
    assert report["lora"] > 0 and report["total"] > 130_000_000 > report["trainable"]


def test_configs_of_acoustemo_0_1_load_and_retired_switches_are_refused(tmp_path):
    """The shipped checkpoint's config.json carries the switches removed in #34 at the values that stayed; it
    loads, and a config saved now no longer writes them. Any other value names the switch and the fix."""
    import json
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "acoustemo" / "assets" / "default" / "config.json"
    raw = json.loads(shipped.read_text())
    assert {k: raw[k] for k in ("stream_norm", "window_stats", "speaker_relative", "mark_target")} == {
        "stream_norm": "layernorm", "window_stats": False, "speaker_relative": [], "mark_target": False}
    cfg = ModelConfig.load(shipped)
    assert "acoustic_reference" not in raw  # added after it was saved: it loads at the behaviour it was trained with
    assert cfg.to_json() == {**{k: v for k, v in raw.items()
                                if k not in ("stream_norm", "window_stats", "speaker_relative", "mark_target")},
                             "acoustic_reference": "absolute"}
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg  # and a file without them (older ones too) loads
    for key, value in (("window_stats", True), ("stream_norm", "none"), ("speaker_relative", ["prosody"]),
                       ("mark_target", True)):
        with pytest.raises(ConfigError, match=rf"{key}=.*removed after acoustemo 0.1.0.*BENCHMARKS.md.*Retrain "
                                              rf"without it, or use acoustemo 0.1.0"):
            ModelConfig.from_json({**raw, key: value})
        with pytest.raises(ConfigError, match=f"{key}="):
            ModelConfig.preset("debug", **{key: value})


def test_optimizer_groups_give_lora_its_rate_and_no_decay_to_1d_weights(model):
    """build_optimizer on the debug model with the default recipe: LoRA's matrices learn at lr x lora_lr_scale
    (1e-4 x 10), the Q-Formers' and projections' at lr; matrices decay by weight_decay, 1-d weights (biases,
    LayerNorms) not at all; the groups hold every trainable parameter once and nothing frozen."""
    from acoustemo.training import TrainConfig, build_optimizer

    cfg = TrainConfig()
    assert (cfg.lr, cfg.lora_lr_scale, cfg.weight_decay) == (1e-4, 10.0, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_optimizer(model, cfg).param_groups
    seen = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert len(seen) == len(set(seen)) and not any(n.startswith("llm.") and "lora_" not in n for n in seen)
    for g in groups:
        lora = {"lora_" in names[id(p)] for p in g["params"]}
        matrix = {p.ndim >= 2 for p in g["params"]}
        assert len(lora) == len(matrix) == 1  # each group is one kind
        expected_lr = 1e-3 if lora == {True} else 1e-4
        assert g["lr"] == pytest.approx(expected_lr, rel=1e-12)
        assert g["weight_decay"] == (0.05 if matrix == {True} else 0.0)
    kinds = {("lora_" in names[id(g["params"][0])], g["params"][0].ndim >= 2) for g in groups}
    assert kinds == {(True, True), (False, True), (False, False)}  # LoRA has no 1-d weights
    one_d = {names[id(p)] for g in groups for p in g["params"] if g["weight_decay"] == 0.0}
    assert "utt_proj.bias" in one_d and "utt_qformer.input.norms.0.weight" in one_d
    assert "utt_qformer.queries" not in one_d and "utt_proj.weight" not in one_d

