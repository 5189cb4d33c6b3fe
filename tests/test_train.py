"""The training loop end to end on the debug preset with real spoken clips (espeak-ng) and real Whisper
features: the loss falls, DIR/best is chosen on the validation split, a run killed with SIGKILL and resumed ends
bit-for-bit where an uninterrupted run ends, and two DDP processes stay in sync."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acoustemo.errors import ConfigError, EncoderError
from acoustemo.training import (
    TrainConfig, epoch_batches, load_config_file, lr_factor, optimizer_state_dict, optimizer_tensors,
    rng_state, set_rng_state, steps_per_epoch, train,
)
from conftest import TINY_ENCODER, corpus_configs, write_corpus

ENCODER = TINY_ENCODER
REPO = Path(__file__).resolve().parents[1]
configs = corpus_configs


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    model_cfg, train_cfg = configs(corpus, epochs=4)
    result = train(corpus["train"], corpus["val"], run, model_cfg, train_cfg)
    return run, result


# --------------------------------------------------------------------------------------------- pure pieces
def test_schedule_warms_up_linearly_then_decays_by_cosine():
    total, warmup = 105, 5
    factors = [lr_factor(s, total, warmup) for s in range(total)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factors[5] == 1.0 and factors[-1] < 0.001
    assert all(a >= b for a, b in zip(factors[5:], factors[6:]))
    assert lr_factor(55, total, warmup) == pytest.approx(0.5)  # half-way through the decay


def test_epoch_batches_shard_one_permutation_evenly():
    seed = 7
    one = [i for b in epoch_batches(7, seed, 2) for i in b]
    assert sorted(one) == list(range(7)) and one != list(range(7))
    shards = [epoch_batches(7, seed, 2, rank, 2) for rank in range(2)]
    assert len(shards[0]) == len(shards[1]) == 2  # DDP needs equal batch counts
    assert sorted(i for s in shards for b in s for i in b) == sorted(list(range(7)) + [one[0]])  # wrapped pad
    assert epoch_batches(7, seed, 2) == epoch_batches(7, seed, 2)
    assert steps_per_epoch(7, 2, 2, world_size=2) == 1 and steps_per_epoch(3, 1, 2) == 2


def test_rng_and_optimizer_state_round_trip_without_pickle():
    import random

    import numpy as np
    import torch

    tensors, meta = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(tensors, meta)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([p], lr=0.1, betas=(0.8, 0.9))
    p.sum().backward()
    opt.step()
    restored = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone())], lr=0.1)
    restored.load_state_dict(optimizer_state_dict(*optimizer_tensors(opt.state_dict())))
    a, b = opt.state_dict(), restored.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_a_kill_between_the_checkpoint_renames_is_recovered(tmp_path):
    from acoustemo.training import recover_dir, swap_dir

    def folder(name: str, step: int) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({"step": step}))
        return tmp_path / name

    swap_dir(folder("last.tmp-3", 3), tmp_path / "last")
    swap_dir(folder("last.tmp-6", 6), tmp_path / "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # killed after `last` was renamed aside, before the new one was renamed in
    folder("last.tmp-9", 9)
    (tmp_path / "last").rename(tmp_path / "last.old")
    recover_dir(tmp_path / "last", "trainer_state.json")
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 9
    shutil.rmtree(tmp_path / "last.old")  # as the next start does with leftovers
    # killed while writing the new one (no completion marker): the old one comes back
    (tmp_path / "last").rename(tmp_path / "last.old")
    (tmp_path / "last.tmp-12").mkdir()
    recover_dir(tmp_path / "last", "trainer_state.json")
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 9


def test_config_file_splits_model_and_train_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "debug", "model": {"ablation": "no-global"}, "train": {"lr": 1e-3},
                                "epochs": 2, "lora_r": 2}))
    model, train_ = load_config_file(path)
    assert model == {"preset": "debug", "ablation": "no-global", "lora_r": 2} and train_ == {"lr": 1e-3, "epochs": 2}
    path.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")


def test_train_configs_of_acoustemo_0_1_load_and_retired_switches_are_refused(tmp_path):
    shipped = REPO / "acoustemo" / "assets" / "default" / "train_config.json"
    raw = json.loads(shipped.read_text())
    assert (raw["augment"], raw["align_pooling"]) == ([], "mean")
    cfg = TrainConfig.load(shipped)
    assert not {"augment", "align_pooling"} & set(cfg.to_json())  # saved without the retired switches
    cfg.save(tmp_path / "train_config.json")
    assert TrainConfig.load(tmp_path / "train_config.json") == cfg
    for key, value in (("augment", ["jitter"]), ("align_pooling", "max")):
        with pytest.raises(ConfigError, match=rf"{key}=.*removed after acoustemo 0.1.0.*Retrain without it"):
            TrainConfig.from_json({**raw, key: value})
    path = tmp_path / "c.json"  # a --config file, flat or in sections, is refused the same way
    path.write_text(json.dumps({"align_pooling": "max", "model": {"mark_target": True}}))
    model, train_ = load_config_file(path)
    with pytest.raises(ConfigError, match="align_pooling='max'"):
        TrainConfig.from_json(train_)
    from acoustemo.training import resolve_configs

    path.write_text(json.dumps({"mark_target": True}))
    with pytest.raises(ConfigError, match="mark_target=True"):
        resolve_configs("debug", path)


# --------------------------------------------------------------------------------------------- training
def test_loss_falls_and_run_folder_is_complete(trained):
    run, result = trained
    rows = read_log(run)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == result.steps == 12  # 3 clips x 4 epochs, batch 1
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    assert all({"step", "epoch", "loss", "lr", "samples_per_s"} <= set(r) for r in rows if "loss" in r)
    assert rows[-1]["event"] == "end" and rows[-1]["final_loss"] == losses[-1] == result.final_loss
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TrainConfig.load(run / "train_config.json").epochs == 4
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 12
    assert not list(run.glob("*.tmp-*")) and not list(run.glob("*.old"))


def test_best_is_chosen_on_validation_loss(trained):
    from acoustemo.model.acoustemo import AcoustEmoModel

    run, result = trained
    val = [r for r in read_log(run) if "val_loss" in r]
    assert [r["step"] for r in val] == [3, 6, 9, 12]  # once per epoch
    best = min(val, key=lambda r: r["val_loss"])
    metrics = json.loads((run / "best" / "metrics.json").read_text())
    assert metrics["step"] == best["step"] == result.best_step and metrics["val_loss"] == best["val_loss"]
    assert (run / "best" / "train_config.json").is_file()
    model = AcoustEmoModel.from_pretrained(run / "best")
    assert model.parameter_report()["trainable"] > 0


def test_resume_refuses_another_config_and_fresh_start_refuses_a_used_folder(trained, corpus):
    run, _ = trained
    model_cfg, train_cfg = configs(corpus, epochs=4)
    with pytest.raises(ConfigError, match="--resume"):
        train(corpus["train"], corpus["val"], run, model_cfg, train_cfg)
    _, other = configs(corpus, epochs=4, lr=5e-3)
    with pytest.raises(ConfigError, match="lr: 0.01 vs 0.005"):
        train(corpus["train"], corpus["val"], run, model_cfg, other, resume=True)
    with pytest.raises(ConfigError, match="fp16"):
        train(corpus["train"], corpus["val"], run, model_cfg, TrainConfig(mixed_precision="fp16"))


def test_best_can_be_chosen_by_generated_labels(corpus, tmp_path):
    model_cfg, train_cfg = configs(corpus, max_steps=1, best_metric="val_avg", max_new_tokens=8)
    result = train(corpus["train"], corpus["val"], tmp_path / "run", model_cfg, train_cfg)
    val = [r for r in read_log(tmp_path / "run") if "val_loss" in r]
    assert len(val) == 1 and val[0]["best"]
    assert result.best_value == val[0]["val_avg"]
    assert json.loads((tmp_path / "run" / "best" / "metrics.json").read_text())["val_avg"] == val[0]["val_avg"]
    # the logged value is the set-level Avg of what the saved best model answers on the val clips
    from acoustemo.data.dataset import AcoustEmoDataset, collate
    from acoustemo.data.manifest import read_manifest
    from acoustemo.evaluate.setlevel import set_level_scores
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.model.acoustemo import AcoustEmoModel

    model = AcoustEmoModel.from_pretrained(tmp_path / "run" / "best")
    clips = read_manifest(corpus["val"])
    cache, enc = FeatureCache(corpus["cache"]), get_acoustic_encoder(ENCODER)
    ds = AcoustEmoDataset(clips, lambda c: cache.load(c, enc), None, model.tokenizer, model.cfg)
    answers = {c.id: model.predict_batch(collate([ds[i]], model.tokenizer.pad_token_id), 8)[0][0]
               for i, c in enumerate(clips)}
    expected = set_level_scores({c.id: c.labels for c in clips}, answers, {}, without_grouping="exact").avg
    assert val[0]["val_avg"] == pytest.approx(expected, abs=1e-12)


def test_stage1_alignment_fits_answer_embeddings_and_leaves_the_llm_alone(corpus, tmp_path):
    import torch

    from acoustemo.training.align import align_acoustic, selected_windows
    from acoustemo.data.dataset import AcoustEmoDataset
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.model.acoustemo import AcoustEmoModel

    model_cfg, _ = configs(corpus)
    clips = read_manifest(corpus["train"]) + read_manifest(corpus["val"])
    cache, enc = FeatureCache(corpus["cache"]), get_acoustic_encoder(ENCODER)
    model = AcoustEmoModel(model_cfg)
    ds = AcoustEmoDataset(clips, lambda c: cache.load(c, enc), None, model.tokenizer, model_cfg)
    llm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    qf_before = model.utt_qformer.queries.detach().clone()
    losses = align_acoustic(model, ds, clips, epochs=30, lr=1e-2, batch_size=2, gain=4.0, weight_decay=0.0,
                            seed=0).losses
    assert len(losses) == 30 and losses[-1] < 0.3 * losses[0], losses  # the five answers are fitted
    assert all(torch.equal(v, llm_before[k]) for k, v in model.llm.state_dict().items())  # LLM and LoRA untouched
    assert not torch.equal(model.utt_qformer.queries, qf_before)
    assert selected_windows(clips[0], model_cfg, 2) == [0]  # Anna's utterance only: the question is about her


def test_label_alignment_points_the_tokens_at_the_gold_label_words(corpus):
    import torch

    from acoustemo.training.align import align_acoustic, clip_tokens, label_heads
    from acoustemo.data.dataset import AcoustEmoDataset, collate
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.model.acoustemo import AcoustEmoModel

    model_cfg, _ = configs(corpus)
    clips = read_manifest(corpus["train"]) + read_manifest(corpus["val"])
    cache, enc = FeatureCache(corpus["cache"]), get_acoustic_encoder(ENCODER)
    model = AcoustEmoModel(model_cfg)
    ds = AcoustEmoDataset(clips, lambda c: cache.load(c, enc), None, model.tokenizer, model_cfg)
    words, heads, gold = label_heads(model, clips)
    assert words == sorted({w for c in clips for w in c.labels}) and gold.sum(1).tolist() == [len(c.labels)
                                                                                              for c in clips]

    def gold_word_wins():  # share of clips whose best-scoring word (pooled tokens . word embedding) is a gold one
        with torch.no_grad():
            examples = [ds[i] for i in range(len(clips))]
            tokens = clip_tokens(model, collate(examples, model.tokenizer.pad_token_id), clips,
                                 [len(e["windows"]) for e in examples])
        best = (torch.stack([t.mean(0) for t in tokens]) @ heads.T).argmax(1)
        return gold[torch.arange(len(clips)), best].mean().item()

    losses = align_acoustic(model, ds, clips, epochs=40, lr=1e-2, batch_size=2, gain=4.0, weight_decay=0.0, seed=0,
                            mode="labels").losses
    assert losses[-1] < 0.3 * losses[0], losses
    assert gold_word_wins() == 1.0  # the five training clips are fitted: each points at one of its own words


def test_stage1_keeps_the_epoch_that_scored_best_held_out(corpus):
    import torch

    from acoustemo.training.align import align_acoustic
    from acoustemo.data.dataset import AcoustEmoDataset
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.model.acoustemo import AcoustEmoModel

    model_cfg, _ = configs(corpus)
    clips = read_manifest(corpus["train"])
    cache, enc = FeatureCache(corpus["cache"]), get_acoustic_encoder(ENCODER)
    model = AcoustEmoModel(model_cfg)
    ds = AcoustEmoDataset(clips, lambda c: cache.load(c, enc), None, model.tokenizer, model_cfg)
    trainable = lambda: {n: p.detach().clone() for n, p in model.named_parameters()  # noqa: E731
                         if p.requires_grad and not n.startswith("llm.")}
    scripted, seen, biases = iter([0.2, 0.9, 0.5, 0.9]), [], []

    def evaluate(result):  # a held-out score that peaks at epoch 2 (epoch 4 ties it: the earlier one wins)
        seen.append(trainable())
        biases.append(result.bias.clone())
        return next(scripted)

    result = align_acoustic(model, ds, clips, epochs=4, lr=1e-2, batch_size=2, gain=4.0, weight_decay=0.0, seed=0,
                            mode="labels", evaluate=evaluate, keep_best=True, schedule="cosine")
    assert result.val_scores == [0.2, 0.9, 0.5, 0.9] and result.best_epoch == 2
    now = trainable()
    assert all(torch.equal(now[n], seen[1][n]) for n in now)  # epoch 2's weights, not the last epoch's
    assert any(not torch.equal(seen[1][n], seen[3][n]) for n in now)  # (and the epochs did differ)
    assert torch.equal(result.bias, biases[1])


def test_freeze_acoustic_leaves_only_lora_to_the_optimizer(corpus):
    from acoustemo.model.acoustemo import AcoustEmoModel
    from acoustemo.training import build_optimizer, freeze_acoustic

    model_cfg, train_cfg = configs(corpus)
    model = AcoustEmoModel(model_cfg)
    freeze_acoustic(model)
    names = {id(p): n for n, p in model.named_parameters()}
    trained = [names[id(p)] for g in build_optimizer(model, train_cfg).param_groups for p in g["params"]]
    assert trained and all("lora_" in n for n in trained)
    assert len(trained) == sum(1 for n, p in model.named_parameters() if "lora_" in n)


def test_recipes_fill_what_is_not_given_and_are_recorded():
    from acoustemo.training.config import RECIPES

    default, paper = TrainConfig(), TrainConfig(recipe="paper")
    assert default.recipe == "two-stage"
    assert {k: getattr(default, k) for k in RECIPES["two-stage"]} == RECIPES["two-stage"]
    assert (paper.align_epochs, paper.freeze_acoustic, paper.lr, paper.epochs, paper.label_loss_weight) == (
        0, False, 2e-5, 3, 1.0)
    assert TrainConfig(recipe="paper", align_epochs=5).align_epochs == 5  # an explicit field wins
    assert TrainConfig.from_json(default.to_json()) == default
    # a train_config.json from before recipes: every field explicit
    legacy = {k: v for k, v in TrainConfig(recipe="paper", align_epochs=10, align_mode="labels").to_json().items()
              if k != "recipe"}
    old = TrainConfig.from_json(legacy)
    assert (old.recipe, old.align_epochs) == ("custom", 10)
    assert TrainConfig.from_json({k: v for k, v in paper.to_json().items() if k != "recipe"}).recipe == "paper"
    with pytest.raises(ConfigError, match="recipe='fast'"):
        TrainConfig(recipe="fast")


def test_label_heads_score_the_mean_of_a_clips_tokens():
    import torch

    from acoustemo.model.heads import LabelHeads

    heads = LabelHeads(["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.5, -0.5]))
    glob = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # global tokens
    cue = torch.tensor([[4.0, 0.0]])  # one window carries word a
    plain = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    logits = heads.logits([torch.cat([glob, cue, plain, plain]), cue])  # 7 tokens averaged; then the cue alone
    assert logits[0].tolist() == pytest.approx([4.0 / 7 + 0.5, 2.0 / 7 - 0.5]) and logits[1].tolist() == [4.5, -0.5]
    # every word with p >= 0.5, else the most probable one alone
    assert heads.answer(torch.tensor([[0.1, 0.2], [-1.0, -0.5], [-2.0, 3.0]])) == [["a", "b"], ["b"], ["b"]]


def test_the_default_recipe_runs_both_stages_and_scores_stage_1(corpus, tmp_path):
    import torch

    from acoustemo.model.acoustemo import AcoustEmoModel

    model_cfg, train_cfg = configs(corpus, recipe="two-stage", max_steps=2, align_epochs=3, align_batch_size=2,
                                   save_every_steps=1)
    assert (train_cfg.align_mode, train_cfg.freeze_acoustic) == ("labels", True)

    def keep_step_1(step, loss):
        if step == 1:
            shutil.copytree(tmp_path / "run" / "last" / "model", tmp_path / "step1")

    result = train(corpus["train"], corpus["val"], tmp_path / "run", model_cfg, train_cfg, on_step=keep_step_1)
    rows = read_log(tmp_path / "run")
    align = [r for r in rows if r.get("event") == "align"]
    assert [r["align_epoch"] for r in align] == [1, 2, 3] and all(r["align_loss"] > 0 for r in align)
    assert "align_val_avg" in align[-1] and "align_val_avg" not in align[0]
    # align_select "best" (the default): each epoch's val score is logged; the kept epoch's is what stage 2 starts from
    scores = [r["align_epoch_val_avg"] for r in align]
    kept = align[-1]["align_kept_epoch"]
    assert scores[kept - 1] == max(scores) == align[-1]["align_val_avg"] and max(scores) not in scores[: kept - 1]
    assert result.steps == 2
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["recipe"] == "two-stage" and not {"align_pooling", "augment"} & set(saved)  # retired (#34)
    assert not list((tmp_path / "run").rglob("stage1_heads.json"))  # the heads serve stage 1 only
    # the LM stage trains LoRA only: the stage-1 Q-Formers are the same after steps 1 and 2, the adapter is not
    one = AcoustEmoModel.from_pretrained(tmp_path / "step1")
    two = AcoustEmoModel.from_pretrained(tmp_path / "run" / "last" / "model")
    a, b = one.trainable_state_dict(), two.trainable_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lora = lambda m: {k: v for k, v in m.llm.state_dict().items() if "lora_" in k}  # noqa: E731
    assert any(not torch.equal(v, lora(two)[k]) for k, v in lora(one).items())
    with pytest.raises(ConfigError, match="align_batch_size=0"):
        TrainConfig(align_batch_size=0)
    with pytest.raises(ConfigError, match="align_mode='words'"):
        TrainConfig(align_mode="words")
    with pytest.raises(ConfigError, match="align_schedule='linear'"):
        TrainConfig(align_schedule="linear")
    with pytest.raises(ConfigError, match="align_select='first'"):
        TrainConfig(align_select="first")


def test_answer_bank_is_saved_only_when_asked(corpus, trained, tmp_path):
    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.prompt import format_answer
    from acoustemo.model.acoustemo import ANSWER_BANK, load_answer_bank

    assert not (trained[0] / "best" / ANSWER_BANK).exists()  # off by default: no corpus text in the checkpoint
    model_cfg, train_cfg = configs(corpus, max_steps=1, answer_bank=True)
    train(corpus["train"], corpus["val"], tmp_path / "run", model_cfg, train_cfg)
    want = [format_answer(c.labels, c.description) for c in read_manifest(corpus["train"])]
    assert load_answer_bank(tmp_path / "run" / "best") == want == load_answer_bank(tmp_path / "run" / "last" / "model")


def test_sigkilled_cli_run_resumes_to_the_same_final_loss(corpus, tmp_path):
    """The training CLI is killed (SIGKILL) once a checkpoint exists; `--resume` must then finish with
    the loss and weights of an uninterrupted run. Dropout is on, so RNG restore matters; grad-accum 2 over 3
    clips gives a short last group each epoch."""
    from acoustemo.cli import main

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"preset": "debug", "model": {"lora_dropout": 0.1, "qformer_dropout": 0.1}}))
    args = ["train", "--train", str(corpus["train"]), "--val", str(corpus["val"]), "--config", str(config),
            "--encoder", ENCODER, "--cache-dir", str(corpus["cache"]), "--lr", "1e-2", "--epochs", "12",
            "--grad-accum", "2", "--save-every", "3", "--no-progress"]

    killed = tmp_path / "killed"
    # `python -m acoustemo train ...`, with torch on one thread set the same way as in this process (the
    # reference and the resumed run): OMP_NUM_THREADS=1 at start-up picks other GEMM kernels, other roundings
    launch = "import sys, torch; torch.set_num_threads(1); from acoustemo.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", launch, *args, "--out", str(killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "last" / "trainer_state.json"
    deadline = time.monotonic() + 120
    while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err.decode()[-2000:]}"
    stopped_at = json.loads(state.read_text())["step"]
    assert 0 < stopped_at < 24

    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference)]) == 0
    assert main(["train", "--out", str(killed), "--resume", "--no-progress"]) == 0  # configs + manifests reloaded

    ref_rows, res_rows = read_log(reference), read_log(killed)
    assert ref_rows[-1]["final_loss"] == pytest.approx(res_rows[-1]["final_loss"], abs=1e-6)
    assert ref_rows[-1]["params_sha256"] == res_rows[-1]["params_sha256"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows if "event" not in r]
    assert strip(res_rows) == strip(ref_rows)  # every step's loss and lr, every validation, no duplicates
    assert json.loads((killed / "best" / "metrics.json").read_text()) == json.loads(
        (reference / "best" / "metrics.json").read_text())


@pytest.mark.slow
def test_two_ddp_processes_stay_in_sync(corpus, tmp_path):
    """`accelerate launch` with the shipped 2-process CPU config (gloo): both ranks must end with identical
    trainable weights (they saw different clips, so only the gradient all-reduce can make them equal)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
           str(REPO / "configs" / "accelerate" / "cpu-ddp.yaml"), "-m", "acoustemo",
           "train", "--train", str(corpus["train"]), "--val", str(corpus["val"]), "--out", str(out),
           "--preset", "debug", "--encoder", ENCODER, "--cache-dir", str(corpus["cache"]), "--lr", "1e-2",
           "--epochs", "2", "--max-steps", "4", "--no-progress"]  # the default recipe: stage 1 on each rank, then DDP
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    end = read_log(out)[-1]
    assert end["step"] == 4 and len(end["params_sha256"]) == 2
    assert end["params_sha256"][0] == end["params_sha256"][1]
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    assert json.loads((out / "last" / "trainer_state.json").read_text())["world_size"] == 2
    assert (out / "last" / "rng-rank1.safetensors").is_file()


def test_the_acoustic_encoders_options_are_pinned_and_old_runs_get_int8_back(tmp_path):
    from acoustemo.predictor import trained_acoustic_encoder

    cfg = TrainConfig()
    assert cfg.acoustic_options == {"compute_type": "float32"}  # this release's default, pinned with the run
    assert TrainConfig(acoustic_encoder="prosody").acoustic_options == {}
    assert TrainConfig(acoustic_options={"compute_type": "int8"}).acoustic_options == {"compute_type": "int8"}
    cfg.save(tmp_path / "new.json")
    assert TrainConfig.load(tmp_path / "new.json").acoustic_options == {"compute_type": "float32"}
    # a train_config.json saved before the options were recorded: its Whisper features were int8
    old = {k: v for k, v in cfg.to_json().items() if k != "acoustic_options"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = TrainConfig.load(tmp_path / "old.json")
    assert loaded.acoustic_options == {"compute_type": "int8"}
    assert trained_acoustic_encoder(loaded).whisper.compute_type == "int8"
    assert trained_acoustic_encoder(cfg).whisper.compute_type == "float32"
    assert trained_acoustic_encoder(loaded, "whisper-base").compute_type == "float32"  # another encoder: its defaults
    (tmp_path / "old_prosody.json").write_text(json.dumps({**old, "acoustic_encoder": "prosody"}))
    assert TrainConfig.load(tmp_path / "old_prosody.json").acoustic_options == {}
    with pytest.raises(ConfigError, match="acoustic_options='int8' must be a JSON object"):
        TrainConfig(acoustic_options="int8")
    with pytest.raises(EncoderError, match="compute_typ"):  # a misspelt option names the encoder's real ones
        trained_acoustic_encoder(TrainConfig(acoustic_options={"compute_typ": "int8"}))
