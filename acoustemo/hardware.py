"""Which compute dtypes this machine runs fast: the one place that decides, so training, prediction, the int8
path and the encoders agree, and each choice is logged once.

    resolve_dtype("auto", "cpu")          # "bfloat16" on a CPU with native bf16 (AVX512-BF16 / AMX), else "float32"
    resolve_dtype("auto", "cuda")         # "bfloat16" where the GPU supports it, else "float16" (as Accelerate picks)
    resolve_dtype("float32", "cpu")       # what the user set is kept (a slow choice is warned about once)
    resolve_training("auto", "auto", "cpu")  # ("float32", "bf16") with native bf16: float32 weights, bf16 autocast
    runs_natively("bfloat16", "cpu")      # False on an AVX2-only CPU: bf16 matmuls fall back to a ~40x slower GEMM
    cpu_runs_natively("float16")          # True on a CPU with AVX512-FP16 / AMX-FP16: what every CPU choice asks

Why: on a CPU without native bf16, torch's bf16 GEMMs (and the bf16 flash-attention backward) go through a
generic fallback; a 256x576 by 576x1536 matmul takes 368 ms in bf16 and 9.6 ms in float32 on a 2-core AVX2 EPYC
(issue #15). A checkpoint records the dtype it was trained in; loading it where that dtype is slow falls back
to this machine's choice (`dtype_for_checkpoint`), so a bf16-trained model predicts in float32 there and the
other way round.
"""

from __future__ import annotations

import logging
import platform

import torch

from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
AUTO = "auto"
_logged: set[tuple] = set()


def cpu_capability() -> str:
    """torch's SIMD level for this CPU: "AVX512", "AVX2", "DEFAULT" (or e.g. "NEON" elsewhere)."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matmuls natively here (AVX512-BF16 or AMX); False means a slow fallback."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_has_native_fp16() -> bool:
    """Whether oneDNN runs fp16 matmuls natively here (AVX512-FP16 or AMX-FP16)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", None)
    return bool(probe()) if probe is not None else False


def cpu_runs_natively(dtype: str) -> bool:
    """Whether this CPU computes in `dtype` at full speed: the one question every choice below asks of the CPU
    (float32 always; bfloat16 and float16 where oneDNN has native kernels), so one seam answers for it."""
    if dtype == "float32":
        return True
    return cpu_has_native_bf16() if dtype == "bfloat16" else cpu_has_native_fp16()


def default_device() -> torch.device:
    """Where models go unless told otherwise: the GPU when there is one (as Accelerate does), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def runs_natively(dtype: str, device: str | torch.device = "cpu") -> bool:
    """Whether `device` computes in `dtype` at full speed (float32 always does)."""
    _check_name(dtype, allow_auto=False)
    kind = torch.device(device).type
    if dtype == "float32":
        return True
    if kind == "cpu":
        return cpu_runs_natively(dtype)
    if kind == "cuda":
        return torch.cuda.is_bf16_supported() if dtype == "bfloat16" else True
    return False  # mps / xpu / others: keep float32 unless the user asks


def resolve_dtype(requested: str, device: str | torch.device = "cpu", what: str = "llm_dtype") -> str:
    """The dtype to compute in on `device`: `requested` itself, or the hardware's choice for "auto".

    "auto" on a CPU: bfloat16 where it is native, float32 elsewhere; on CUDA: bfloat16 where supported, else
    float16; other devices float32. The choice is logged once per (what, requested, device type)."""
    _check_name(requested, allow_auto=True)
    kind = torch.device(device).type
    if requested != AUTO:
        if not runs_natively(requested, device):
            _log_once(logging.WARNING, (what, requested, kind, "slow"),
                      "%s=%s was set explicitly, but this %s (%s) has no native %s: it will run much slower than "
                      "float32 (set %s='auto' to let the hardware choose)", what, requested, kind, describe(kind),
                      requested, what)
        return requested
    if kind == "cuda":
        chosen = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    elif kind == "cpu":
        chosen = "bfloat16" if cpu_runs_natively("bfloat16") else "float32"
    else:
        chosen = "float32"
    _log_once(logging.INFO, (what, kind, chosen), "%s: %s on this %s (%s)", what, chosen, kind, describe(kind))
    return chosen


def resolve_training(llm_dtype: str, mixed_precision: str, device: str | torch.device = "cpu") -> tuple[str, str]:
    """(the LLM's weight dtype, the autocast: "no" | "bf16" | "fp16") a training run uses on `device`.

    "auto" on a CPU keeps the LLM's weights in float32 and, where bf16 is native, runs forward and backward under
    bf16 autocast: 1.52x faster per LM step than float32 on an AVX512-BF16 CPU, with the same scores on paired seeds,
    where a whole bf16 LLM (LoRA's updates landing on bf16 weights) lost 2.5 points on its seed (BENCHMARKS.md #15).
    Without native bf16 it is float32 with no autocast. On CUDA "auto" weights are the hardware's choice (bf16,
    else fp16; a 7B LLM in float32 would not fit) with no autocast. A dtype the user set is kept, and an autocast
    left "auto" beside it is "no": an explicit llm_dtype trains as set. Logged once."""
    if mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise ConfigError(f"mixed_precision {mixed_precision!r} must be one of auto, no, bf16, fp16")
    kind = torch.device(device).type
    if llm_dtype == AUTO and kind == "cpu":
        weights = "float32"
    else:
        weights = resolve_dtype(llm_dtype, device)
    autocast = mixed_precision
    if mixed_precision == AUTO:
        autocast = "bf16" if llm_dtype == AUTO and kind == "cpu" and cpu_runs_natively("bfloat16") else "no"
    elif mixed_precision == "bf16" and not runs_natively("bfloat16", device):
        _log_once(logging.WARNING, ("mixed_precision", kind, "slow"), "mixed_precision=bf16 was set explicitly, but "
                  "this %s (%s) has no native bf16: training will run much slower than in float32 (set "
                  "mixed_precision='auto' or 'no')", kind, describe(kind))
    _log_once(logging.INFO, ("training", weights, autocast, kind), "training: LLM weights in %s, autocast %s, on "
              "this %s (%s)", weights, autocast, kind, describe(kind))
    return weights, autocast


def dtype_for_checkpoint(saved: str, requested: str | None, device: str | torch.device = "cpu") -> str:
    """The dtype to load a checkpoint in: `requested` if the user gave one ("auto" resolves), else the dtype it
    was saved with where `device` runs it natively, else this machine's choice ("auto")."""
    if requested is not None:
        return resolve_dtype(requested, device)
    if saved != AUTO and runs_natively(saved, device):
        return saved
    chosen = resolve_dtype(AUTO, device)
    if saved != AUTO:
        _log_once(logging.INFO, ("checkpoint", saved, chosen), "the checkpoint was trained in %s, which this "
                  "%s (%s) has no native support for: it runs in %s", saved, torch.device(device).type,
                  describe(torch.device(device).type), chosen)
    return chosen


def int8_by_default(llm_dtype: str, device: str | torch.device = "cpu") -> bool:
    """Whether prediction gives the LLM int8 weights unless told: on a CPU, only when the LLM computes in bf16.

    torch's int8-weight kernel is fast with bf16 activations (1.5-2x faster decoding than bf16 weights on an
    AVX512-BF16 CPU). With a float32 LLM, on a CPU without native bf16, int8 loses to plain float32 weights
    (benchmarks/int8_fallback.py on an AVX2 EPYC, CPU s for the sample clip's answer: float32 3.3-3.6, int8 with
    the kernel fed bf16 4.2-5.5, fed float32 28-41: its float32 path is not vectorised)."""
    return torch.device(device).type == "cpu" and llm_dtype == "bfloat16"


def int8_activation_dtype(llm_dtype: str) -> torch.dtype:
    """The dtype Int8Linear feeds torch's int8-weight kernel (`_weight_int8pack_mm`) when int8 is asked for.

    The LLM's own dtype, except float32: the kernel's float32 path is not vectorised (~7x slower end to end on an
    AVX2 EPYC, benchmarks/int8_fallback.py), while its bf16 path widens bf16 to float32 inside vectorised code and needs no native bf16. Only
    the activations entering the int8 matmuls are rounded to bf16; the rest of a float32 LLM stays float32."""
    return torch.bfloat16 if llm_dtype == "float32" else getattr(torch, llm_dtype)


def describe(kind: str = "cpu") -> str:
    """A short description of the hardware for messages: CPU capability and native bf16, or the GPU's name."""
    if kind == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, bf16 {'supported' if torch.cuda.is_bf16_supported() else 'not supported'}"
    return f"{cpu_capability()}, {'native' if cpu_runs_natively('bfloat16') else 'no native'} bf16"


def hardware_report() -> dict:
    """What benchmarks print beside their figures: CPU capability, native bf16 / fp16, the auto dtypes."""
    return {
        "cpu": platform.processor() or platform.machine(), "cpu_capability": cpu_capability(),
        "native_bf16": cpu_runs_natively("bfloat16"), "native_fp16": cpu_runs_natively("float16"),
        "cpu_auto_dtype": "bfloat16" if cpu_runs_natively("bfloat16") else "float32",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _check_name(name: str, allow_auto: bool) -> None:
    allowed = ((AUTO,) if allow_auto else ()) + DTYPES
    if name not in allowed:
        raise ConfigError(f"dtype {name!r} must be one of {', '.join(allowed)}")


def _log_once(level: int, key: tuple, msg: str, *args) -> None:
    if key not in _logged:
        _logged.add(key)
        log.log(level, msg, *args)
