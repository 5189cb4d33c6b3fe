"""Compute dtypes follow the hardware (acoustemo/hardware.py, issue #15): each branch of the capability check is
forced with monkeypatch, and the dtypes a run resolves are the ones its config records and the model runs in."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from acoustemo import hardware
from acoustemo.config import ModelConfig
from acoustemo.errors import ConfigError
from acoustemo.features.prosody import ProsodyEncoder
from acoustemo.model.llm import Int8Linear
from conftest import make_dialogue

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODER = "whisper-tiny.en"


def native(monkeypatch, bf16: bool, fp16: bool = False, cuda: bool = False, cuda_bf16: bool = False) -> None:
    """Pretend to be a machine: which dtypes its CPU runs natively, whether it has a GPU and whether that GPU runs
    bf16. Every hardware question is answered here, so a test gives the same result on an AVX2 laptop, an EPYC
    with AVX512-BF16, a Xeon with AMX / AVX512-FP16 and a GPU box; oneDNN's own probes fail the test if asked."""
    answers = {"float32": True, "bfloat16": bf16, "float16": fp16}
    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: answers[dtype])
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "MOCKED")
    for probe in ("cpu_has_native_bf16", "cpu_has_native_fp16"):
        monkeypatch.setattr(hardware, probe, _unmocked(probe))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Mocked GPU")


def _unmocked(name: str):
    def probe():
        raise AssertionError(f"hardware.{name} was called: a choice asked the real CPU past cpu_runs_natively")

    return probe


@pytest.mark.parametrize("bf16, fp16, cpu_dtype", [
    (True, False, "bfloat16"),  # an EPYC with AVX512-BF16
    (False, False, "float32"),  # an AVX2 laptop
    (True, True, "bfloat16"),  # a Xeon with AMX / AVX512-FP16: "auto" never picks float16 on a CPU
    (False, True, "float32"),
])
def test_auto_on_cpu_is_bf16_only_where_native(monkeypatch, bf16, fp16, cpu_dtype):
    native(monkeypatch, bf16, fp16)
    assert hardware.resolve_dtype("auto", "cpu") == cpu_dtype
    assert hardware.runs_natively("bfloat16", "cpu") is bf16
    assert hardware.runs_natively("float16", "cpu") is fp16
    assert hardware.default_device() == torch.device("cpu")
    report = hardware.hardware_report()
    assert (report["native_bf16"], report["native_fp16"], report["cpu_auto_dtype"]) == (bf16, fp16, cpu_dtype)
    assert report["cpu_capability"] == "MOCKED" and report["cuda"] is None
    assert hardware.runs_natively("float32", "cpu")
    assert hardware.resolve_dtype("float32", "cpu") == "float32"  # what the user sets is kept
    assert hardware.resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert ModelConfig.preset("cpu-default").resolved("cpu").llm_dtype == cpu_dtype
    assert ModelConfig.preset("debug").resolved("cpu").llm_dtype == "float32"  # the debug preset sets float32
    assert hardware.int8_by_default(cpu_dtype, "cpu") is bf16
    assert ProsodyEncoder(precision="auto").settings()["precision"] == cpu_dtype
    assert ProsodyEncoder().settings()["precision"] == "float32"  # the cache key of the default stays


@pytest.mark.parametrize("bf16, gpu_dtype", [(True, "bfloat16"), (False, "float16")])
def test_auto_on_gpu_is_bf16_where_supported_else_fp16(monkeypatch, bf16, gpu_dtype):
    native(monkeypatch, bf16=False, cuda=True, cuda_bf16=bf16)
    assert hardware.default_device() == torch.device("cuda")
    assert hardware.resolve_dtype("auto", "cuda") == gpu_dtype
    assert hardware.runs_natively("bfloat16", "cuda") is bf16 and hardware.runs_natively("float16", "cuda")
    assert hardware.describe("cuda") == f"Mocked GPU, bf16 {'supported' if bf16 else 'not supported'}"
    assert ModelConfig.preset("paper", llm="/models/llama").resolved("cuda").llm_dtype == gpu_dtype
    assert not hardware.int8_by_default(gpu_dtype, "cuda")
    assert hardware.resolve_dtype("auto", "mps") == "float32"


def test_choice_is_logged_once_and_a_slow_explicit_dtype_warned(monkeypatch, caplog):
    native(monkeypatch, False)
    monkeypatch.setattr(hardware, "_logged", set())
    with caplog.at_level(logging.INFO, logger="acoustemo.hardware"):
        for _ in range(3):
            hardware.resolve_dtype("auto", "cpu")
            hardware.resolve_dtype("bfloat16", "cpu")
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    warns = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == 1 and "float32" in infos[0].getMessage()
    assert len(warns) == 1 and "no native bfloat16" in warns[0].getMessage()
    with pytest.raises(ConfigError, match="auto, float32"):
        ModelConfig.preset("debug", llm_dtype="fp8")
    with pytest.raises(ConfigError, match="must be one of"):
        hardware.resolve_dtype("int4", "cpu")


@pytest.mark.parametrize("saved, requested, bf16, fp16, expected", [
    ("bfloat16", None, False, False, "float32"),  # an old bf16 checkpoint on an AVX2 CPU
    ("bfloat16", None, True, False, "bfloat16"),
    ("bfloat16", None, False, True, "float32"),  # native fp16 does not make bf16 fast
    ("float32", None, True, True, "float32"),  # float32 runs everywhere: kept
    ("float16", None, False, False, "float32"),
    ("float16", None, True, False, "bfloat16"),  # slow float16 -> this CPU's choice, bf16 where native
    ("float16", None, True, True, "float16"),  # a CPU with AVX512-FP16 runs a float16 checkpoint as saved
    ("float32", "auto", True, True, "bfloat16"),  # the user asks for the hardware's choice
    ("bfloat16", "float32", True, True, "float32"),
])
def test_checkpoint_dtype_falls_back_only_where_it_is_slow(monkeypatch, saved, requested, bf16, fp16, expected):
    native(monkeypatch, bf16, fp16)
    assert hardware.dtype_for_checkpoint(saved, requested, "cpu") == expected


def test_int8_linear_feeds_its_kernel_bf16_and_answers_in_float32():
    torch.manual_seed(0)
    # 48 goes through torch's int8 kernel when decoding; 40 (not a multiple of 16) must not: on a native-bf16 CPU
    # that kernel answers 13–90 % of such calls with garbage, so twenty draws catch a guard that lets it through
    for width, kernel in ((48, True), (40, False)):
        linear = torch.nn.Linear(width, 24)
        q = Int8Linear(linear, torch.bfloat16)
        assert q.kernel_ok is kernel
        for _ in range(20):
            for rows in (1, Int8Linear.GEMV_ROWS + 1):  # decoding (the int8 kernel) and prefill (dequantised GEMM)
                x = torch.randn(rows, width)
                y = q(x)
                assert y.dtype == torch.float32
                torch.testing.assert_close(y, linear(x), atol=0.05, rtol=0.02)
    q = Int8Linear(torch.nn.Linear(48, 24), hardware.int8_activation_dtype("float32"))
    assert q.kernel_scale.dtype == torch.bfloat16 and q.scale.dtype == torch.float32
    assert hardware.int8_activation_dtype("bfloat16") == torch.bfloat16
    odd = torch.nn.Linear(37, 24).to(torch.bfloat16)  # a width torch's bf16 int8 kernel would crash on
    x = torch.randn(1, 37, dtype=torch.bfloat16)
    torch.testing.assert_close(Int8Linear(odd)(x).float(), odd(x).float(), atol=0.05, rtol=0.05)


# ---------------------------------------------------------------------- a run records what it ran in, end to end
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    root = tmp_path_factory.mktemp("corpus")
    lines = []
    for cid, mine, labels in (("c0", "We won the game!", ["excited"]), ("c1", "He is not coming back.", ["sad"])):
        _, utts = make_dialogue(root / cid, [("Anna", "en-us", mine), ("Ben", "en-us+m3", "I see.")], gap_s=0.2)
        lines.append({"id": cid, "media": f"{cid}/dialogue.wav", "utterances": utts, "target_speaker": "Anna",
                      "labels": labels, "description": f"Anna sounds {labels[0]}."})
    (root / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    threads = torch.get_num_threads()
    extract(read_manifest(root / "train.jsonl"), FeatureCache(root / "features"), get_acoustic_encoder(ENCODER),
            progress=False)
    torch.set_num_threads(threads)  # CTranslate2 resets the OpenMP thread count
    return root


def train_on(corpus, out, monkeypatch, bf16: bool, llm_dtype: str = "auto") -> list[str]:
    """Train the debug preset for two steps on a CPU with (or without) native bf16; the autocast Accelerate got."""
    import accelerate

    from acoustemo.training import resolve_configs, train

    native(monkeypatch, bf16)
    asked = []

    class Spy(accelerate.Accelerator):
        def __init__(self, *args, **kwargs):
            asked.append(kwargs["mixed_precision"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(accelerate, "Accelerator", Spy)
    model_cfg, train_cfg = resolve_configs("debug", model_overrides={"llm_dtype": llm_dtype}, train_overrides=dict(
        acoustic_encoder=ENCODER, cache_dir=str(corpus / "features"), max_steps=2, save_every_steps=0,
        progress=False))
    assert (model_cfg.llm_dtype, train_cfg.mixed_precision) == (llm_dtype, "auto")
    train(corpus / "train.jsonl", None, out, model_cfg, train_cfg)
    return asked


@pytest.mark.parametrize("llm_dtype, mixed_precision, bf16, device, expected", [
    ("auto", "auto", True, "cpu", ("float32", "bf16")),  # float32 weights under bf16 autocast where bf16 is native
    ("auto", "auto", False, "cpu", ("float32", "no")),  # an AVX2-only CPU: plain float32
    ("float32", "auto", True, "cpu", ("float32", "no")),  # an explicit dtype trains as set
    ("bfloat16", "auto", True, "cpu", ("bfloat16", "no")),
    ("auto", "bf16", False, "cpu", ("float32", "bf16")),  # an explicit autocast is kept (and warned about)
    ("auto", "no", True, "cpu", ("float32", "no")),
    ("auto", "auto", True, "cuda", ("bfloat16", "no")),  # GPUs: half weights, as prediction uses
    ("auto", "auto", False, "cuda", ("float16", "no")),
    ("float32", "fp16", False, "cuda", ("float32", "fp16")),
])
def test_training_dtypes_follow_the_hardware(monkeypatch, llm_dtype, mixed_precision, bf16, device, expected):
    native(monkeypatch, bf16, fp16=True, cuda=device == "cuda", cuda_bf16=bf16)
    assert hardware.resolve_training(llm_dtype, mixed_precision, device) == expected
    with pytest.raises(ConfigError, match="auto, no, bf16, fp16"):
        hardware.resolve_training("auto", "fp8", device)


@pytest.mark.parametrize("bf16, llm_dtype, weights, autocast", [
    (True, "auto", "float32", "bf16"),
    (False, "auto", "float32", "no"),
    (True, "bfloat16", "bfloat16", "no"),  # a bf16 LLM, as `auto` trained it on native-bf16 CPUs before
])
def test_run_config_records_the_resolved_dtypes_and_loads_on_the_other_cpu(corpus, tmp_path, monkeypatch, bf16,
                                                                          llm_dtype, weights, autocast):
    from acoustemo.data.manifest import read_manifest
    from acoustemo.predictor import load_predictor
    from acoustemo.model.acoustemo import AcoustEmoModel

    run = tmp_path / "run"
    assert train_on(corpus, run, monkeypatch, bf16, llm_dtype) == [autocast]
    checkpoint = run / "last" / "model"
    for config in (run / "config.json", checkpoint / "config.json"):
        assert json.loads(config.read_text())["llm_dtype"] == weights
    assert json.loads((run / "train_config.json").read_text())["mixed_precision"] == autocast
    assert AcoustEmoModel.from_pretrained(checkpoint).llm.get_input_embeddings().weight.dtype == getattr(torch, weights)

    # the same checkpoint on the other kind of CPU, as prediction loads it: by default in the dtype it was trained
    # in where that is fast there, else the hardware's choice; "auto" asks for the hardware's choice
    native(monkeypatch, not bf16)
    requested = None if weights == "bfloat16" else "auto"
    other = "bfloat16" if not bf16 else "float32"
    predictor = load_predictor(run, cache_dir=corpus / "features", max_new_tokens=8, llm_dtype=requested)
    assert predictor.model.cfg.llm_dtype == other
    int8 = [m for m in predictor.model.llm.modules() if isinstance(m, Int8Linear)]
    assert bool(int8) is (other == "bfloat16")  # int8 weights only where the LLM computes in bf16
    assert predictor.model.llm.get_input_embeddings().weight.dtype == getattr(torch, other)
    preds = predictor.predict(read_manifest(corpus / "train.jsonl"))
    assert [p.id for p in preds] == ["c0", "c1"] and all(isinstance(p.answer, str) for p in preds)
