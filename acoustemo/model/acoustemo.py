"""AcoustEmoModel: Q-Formers + projections + placeholder scatter + the LLM with LoRA (paper §3, Fig. 1).

    T_A^i      = utterance Q-Former(F_A[window i])            Eq. (1)-(2), all windows in one batch
    T_A^global = global Q-Former(F_A)                          a second Q-Former with its own weights
    T_A        = [T_A^global; T_A^1; ...; T_A^N]               Eq. (3)
    T_V        = image Q-Former(per-frame visual features)     when cfg.visual_dim is set
    loss       = causal LM loss on the answer tokens only      Eq. (4) (labels are masked in the dataset)

The tokens are projected to the LLM's hidden size and scattered into `inputs_embeds` at the placeholder
positions the dataset expanded (row-major order, clip-major then window order), after checking the counts.
Placeholder ids lie past the LLM's embedding matrix; they are swapped for id 0 before the lookup, so the
embedding is never resized or trained. Frozen: the LLM (LoRA adapters train) and the encoders (features
arrive precomputed). Ablations are the config switch `ablation`; the dataset builds the matching prompts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from acoustemo.config import ModelConfig
from acoustemo.data.prompt import parse_answer
from acoustemo.errors import ConfigError
from acoustemo.model.llm import (GLOBAL_AUDIO, TINY_RANDOM, UTT_AUDIO, VIDEO, add_lora, load_llm,
                                 quantize_linears_int8)
from acoustemo.model.decoding import DecodeStats, NgramDrafter, greedy_with_drafts
from acoustemo.model.qformer import QFormer

WEIGHTS = "acoustemo.safetensors"  # Q-Formers + projections (the trainable non-LoRA weights)
BASE_WEIGHTS = "llm_base.safetensors"  # only for the debug preset's random LLM, which no folder holds
ADAPTER = "adapter"  # peft's own format
ANSWER_BANK = "answer_bank.json"  # optional: answers the decoder's drafts may guess from (a JSON list of strings)


class AcoustEmoModel(nn.Module):
    def __init__(self, cfg: ModelConfig, device: str | torch.device | None = None):
        """Builds the model on the CPU; llm_dtype "auto" is resolved here for `device` (where the model will run;
        default cuda if available, else cpu), and self.cfg, which save_pretrained writes, records the result."""
        super().__init__()
        cfg = cfg.resolved(device)
        self.cfg = cfg
        self.answer_bank = []  # see the property
        self.decode_stats = DecodeStats()  # running totals of the one-clip decoder's passes and kept drafts
        llm, self.tokenizer = load_llm(cfg.llm, cfg.llm_dtype)
        hidden = llm.get_input_embeddings().embedding_dim
        self.llm = add_lora(llm, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
        self.placeholder_ids = {k: self.tokenizer.convert_tokens_to_ids(k) for k in (UTT_AUDIO, GLOBAL_AUDIO, VIDEO)}

        def qformer(streams, num_queries):
            return QFormer(streams, num_queries, cfg.d_model, cfg.qformer_layers, cfg.qformer_heads, cfg.qformer_ffn,
                           cfg.max_window_frames, cfg.qformer_dropout)

        # Disabled branches are not built at all, so parameter counts and checkpoints reflect the ablation.
        self.utt_qformer = qformer(cfg.acoustic_streams, cfg.num_queries) if cfg.uses_windows else None
        self.utt_proj = nn.Linear(cfg.d_model, hidden) if cfg.uses_windows else None
        self.global_qformer = qformer(cfg.acoustic_streams, cfg.global_num_queries) if cfg.uses_global else None
        self.global_proj = nn.Linear(cfg.d_model, hidden) if cfg.uses_global else None
        has_video = cfg.visual_dim is not None
        self.video_qformer = qformer([("visual", cfg.visual_dim)], cfg.visual_num_queries) if has_video else None
        self.video_proj = nn.Linear(cfg.d_model, hidden) if has_video else None

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    # acoustic / visual tokens ---------------------------------------------------------------------------------
    def utterance_tokens(self, windows, window_mask, window_tokens=None, return_attention=False):
        """(W, F, D) windows -> (sum K'_w, hidden): each window's K queries, pooled to K'_w when budgeted."""
        out = self.utt_qformer(windows, window_mask, return_attention=return_attention)
        q, attn = out if return_attention else (out, None)
        tokens = self.utt_proj(_pool_each(q, window_tokens))
        return (tokens, attn) if return_attention else tokens

    def global_tokens(self, audio, audio_mask, global_tokens=None):
        """(B, L, D) whole-clip features -> (sum K_g_b, hidden): T_A^global of Eq. (3)."""
        return self.global_proj(_pool_each(self.global_qformer(audio, audio_mask), global_tokens))

    def video_tokens(self, video, video_mask):
        """(B, T, Dv) per-frame visual features -> (B * K_v, hidden): T_V."""
        return self.video_proj(self.video_qformer(video, video_mask).flatten(0, 1))

    def embed(self, input_ids, audio=None, audio_mask=None, windows=None, window_mask=None, window_tokens=None,
              global_tokens=None, video=None, video_mask=None) -> torch.Tensor:
        """inputs_embeds (B, S, hidden) with every placeholder replaced by its acoustic / visual token."""
        dev = self.device
        input_ids = input_ids.to(dev)
        ph = torch.tensor(list(self.placeholder_ids.values()), device=dev)
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(torch.isin(input_ids, ph), 0))
        expected = {  # tokens each branch will deliver for this batch (0 when the branch or its input is absent)
            UTT_AUDIO: _count(self.utt_qformer, windows, window_tokens, self.cfg.num_queries),
            GLOBAL_AUDIO: _count(self.global_qformer, audio, global_tokens, self.cfg.global_num_queries),
            VIDEO: _count(self.video_qformer, video, None, self.cfg.visual_num_queries),
        }
        make = {
            UTT_AUDIO: lambda: self.utterance_tokens(_to(windows, dev), _to(window_mask, dev), _to(window_tokens, dev)),
            GLOBAL_AUDIO: lambda: self.global_tokens(_to(audio, dev), _to(audio_mask, dev), _to(global_tokens, dev)),
            VIDEO: lambda: self.video_tokens(_to(video, dev), _to(video_mask, dev)),
        }
        for kind, want in expected.items():
            positions = input_ids == self.placeholder_ids[kind]
            n = int(positions.sum())
            if n != want:
                raise ConfigError(
                    f"{n} {kind} placeholders in input_ids but this model delivers {want} {kind} tokens for this "
                    f"batch (ablation={self.cfg.ablation!r}, visual_dim={self.cfg.visual_dim}); the batch was built "
                    f"for another config (num_queries / global_num_queries / visual_num_queries / ablation) or its "
                    f"window_tokens / global_tokens do not match; build it with AcoustEmoDataset and the model's config"
                )
            if n:
                tokens = make[kind]()
                assert tokens.shape[0] == n, (kind, tokens.shape, n)  # _count and the Q-Former agree by construction
                embeds = embeds.masked_scatter(positions.unsqueeze(-1), tokens.to(embeds.dtype))
        return embeds

    # LLM ------------------------------------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask, labels=None, audio=None, audio_mask=None, windows=None,
                window_mask=None, window_tokens=None, global_tokens=None, video=None, video_mask=None, ids=None,
                emotion_mask=None, emotion_weight: float = 1.0):
        """The model batch of DESIGN.md -> transformers' CausalLMOutput (out.loss = Eq. (4), out.logits).

        With emotion_weight != 1 and the batch's emotion_mask, the answer's "Emotions: ..." tokens count
        emotion_weight times in the mean (TrainConfig.label_loss_weight); 1.0 is Eq. (4) exactly.
        """
        embeds = self.embed(input_ids, audio, audio_mask, windows, window_mask, window_tokens, global_tokens,
                            video, video_mask)
        weighted = labels is not None and emotion_mask is not None and emotion_weight != 1.0
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask.to(self.device),
                       labels=None if labels is None or weighted else labels.to(self.device))
        if weighted:
            target = labels[:, 1:].to(self.device)
            weights = (target != -100).float() * (1.0 + (emotion_weight - 1.0) * emotion_mask[:, 1:].to(self.device).float())
            ce = F.cross_entropy(out.logits[:, :-1].float().transpose(1, 2), target.clamp(min=0), reduction="none")
            out.loss = (ce * weights).sum() / weights.sum().clamp(min=1e-9)
        return out

    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: int = 64, drafts: bool = True, **generate_kwargs) -> list[str]:
        """Answer text per clip; greedy (deterministic) unless generate_kwargs ask otherwise.

        A batch built with answers is cut at each row's first answer token, so the model never sees them.
        One clip decoded greedily goes through greedy_with_drafts (the same answer in fewer LLM passes, see
        acoustemo/model/decoding.py) unless `drafts` is False; batches and sampling go through HF generate.
        """
        was_training = self.training
        self.eval()
        try:
            keys = ("audio", "audio_mask", "windows", "window_mask", "window_tokens", "global_tokens", "video",
                    "video_mask")
            embeds = self.embed(batch["input_ids"], **{k: batch.get(k) for k in keys})
            lengths = _prompt_lengths(batch)
            if drafts and len(lengths) == 1 and not generate_kwargs:
                return [self._generate_one(batch["input_ids"][0, :lengths[0]], embeds[:, :lengths[0]], max_new_tokens)]
            S = max(lengths)
            left = embeds.new_zeros(len(lengths), S, embeds.shape[-1])  # left-pad for generation
            mask = torch.zeros(len(lengths), S, dtype=torch.long, device=embeds.device)
            for i, n in enumerate(lengths):
                left[i, S - n:], mask[i, S - n:] = embeds[i, :n], 1
            options = dict(do_sample=False, num_beams=1, pad_token_id=self.tokenizer.pad_token_id,
                           eos_token_id=self.tokenizer.eos_token_id)
            if not generate_kwargs.get("do_sample"):
                options.update(temperature=None, top_p=None, top_k=None)
            options.update(generate_kwargs)
            out = self.llm.generate(inputs_embeds=left, attention_mask=mask, max_new_tokens=max_new_tokens, **options)
            return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        finally:
            if was_training:  # eval() above set every module already; walking them again costs ~25 ms a clip
                self.train()

    def _generate_one(self, prompt_ids: torch.Tensor, embeds: torch.Tensor, max_new_tokens: int) -> str:
        placeholders = set(self.placeholder_ids.values())
        history = [t for t in prompt_ids.tolist() if t not in placeholders]
        eos = {self.tokenizer.eos_token_id}
        ids = greedy_with_drafts(self.llm, embeds, history, eos, max_new_tokens, self.drafter(), self.decode_stats)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    @property
    def answer_bank(self) -> list[str]:
        """Answers like those the model learned to write (the train split's, ANSWER_BANK beside the weights):
        only decoding's drafts read them, to guess tokens the LLM then checks (acoustemo/model/decoding.py)."""
        return self._answer_bank

    @answer_bank.setter
    def answer_bank(self, answers: list[str]) -> None:
        self._answer_bank, self._drafter = list(answers), None

    def drafter(self) -> NgramDrafter:
        """The NgramDrafter over this model's answer bank, built on first use."""
        if self._drafter is None:
            bank = [self.tokenizer(a, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
                    for a in self._answer_bank]
            self._drafter = NgramDrafter(bank)
        return self._drafter

    def predict_batch(self, batch: dict, max_new_tokens: int = 64, **generate_kwargs) -> list[tuple[list[str], str]]:
        """(emotions, explanation) per clip, parsed from generate(); malformed answers give [] and a warning."""
        return [parse_answer(t) for t in self.generate(batch, max_new_tokens, **generate_kwargs)]

    def merge_lora(self) -> "AcoustEmoModel":
        """Fold LoRA into the LLM's weights for inference: the adapters' extra matmuls cost 15-35 % of greedy
        decoding on CPU (BENCHMARKS.md, decoding speed). A merged model can no longer be trained or saved; load
        the checkpoint again for that."""
        from peft import PeftModel

        if isinstance(self.llm, PeftModel):
            self.llm = self.llm.merge_and_unload()
        return self

    def quantize_int8(self) -> "AcoustEmoModel":
        """Merge LoRA, then give the LLM's linear layers int8 weights (per output channel; the activations entering
        the int8 kernel are in acoustemo.hardware.int8_activation_dtype, the rest keeps the LLM's dtype). CPU
        only, inference only: greedy decoding reads every weight once per token, and int8 weights read faster
        (BENCHMARKS.md, decoding speed). Answers can differ from the unquantised model's in near-ties;
        benchmarks/int8_agreement.py compares both on a bench split."""
        if self.device.type != "cpu":
            raise ConfigError(f"int8 decoding runs on CPU only; this model is on {self.device}: leave it in its "
                              f"own dtype on a GPU")
        from acoustemo.hardware import int8_activation_dtype

        self.merge_lora()
        quantize_linears_int8(self.llm, int8_activation_dtype(self.cfg.llm_dtype))
        return self

    # checkpoints ----------------------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The Q-Formers and projections (LoRA lives in the adapter folder)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("llm.")}

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """config.json + acoustemo.safetensors + adapter/ (peft format); written to a temp dir, then renamed."""
        from peft import PeftModel
        from safetensors.torch import save_file

        if not isinstance(self.llm, PeftModel):
            raise ConfigError("this model's LoRA was merged into the LLM for inference (merge_lora); load the "
                              "checkpoint again with from_pretrained to save or train it")
        directory = Path(directory)
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.cfg.save(tmp / "config.json")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}, tmp / WEIGHTS,
                  metadata={"format": "pt", "acoustemo_config": json.dumps(self.cfg.to_json())})
        self.llm.save_pretrained(tmp / ADAPTER)
        if self.answer_bank:
            (tmp / ANSWER_BANK).write_text(json.dumps(self.answer_bank, ensure_ascii=False, indent=0) + "\n",
                                           encoding="utf-8")
        if self.cfg.llm == TINY_RANDOM:  # random base weights exist nowhere else
            base = {k: v.detach().cpu().clone().contiguous() for k, v in self.llm.state_dict().items()
                    if "lora_" not in k}
            save_file(base, tmp / BASE_WEIGHTS)
        if directory.exists():
            old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, config: ModelConfig | None = None,
                        llm_dtype: str | None = None, device: str | torch.device | None = None) -> "AcoustEmoModel":
        """Rebuild a saved model. With `config`, it must match the saved one in every field that shapes the
        weights (runtime fields such as max_seq_len may differ); otherwise ConfigError names the fields.

        The LLM's dtype: `llm_dtype` if given ("auto" = the hardware's choice), else `config`'s, else the saved
        one where `device` (default cuda if available, else cpu) runs it natively, else the hardware's choice:
        a checkpoint trained in bf16 runs in float32 on a CPU without native bf16 (acoustemo/hardware.py)."""
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise ConfigError(f"{directory} is not an AcoustEmo checkpoint (no config.json); give the folder that "
                              f"save_pretrained wrote")
        saved = ModelConfig.load(directory / "config.json")
        if config is not None:
            diff = saved.architecture_diff(config)
            if diff:
                raise ConfigError(f"checkpoint {directory} was saved with another config ({'; '.join(diff)}, "
                                  f"checkpoint vs given); load it with its own config.json or retrain")
        from acoustemo.hardware import default_device, dtype_for_checkpoint

        device = device or default_device()
        if config is None:
            config = dataclasses.replace(saved, llm_dtype=dtype_for_checkpoint(saved.llm_dtype, llm_dtype, device))
        elif llm_dtype is not None:
            config = dataclasses.replace(config, llm_dtype=llm_dtype)
        model = cls(config, device)
        if (directory / BASE_WEIGHTS).is_file():
            _load_exact(model.llm, load_file(directory / BASE_WEIGHTS), directory / BASE_WEIGHTS, allow_missing="lora_")
        state = load_file(directory / WEIGHTS)
        for key, value in model.state_dict().items():  # checkpoints from before the corpus statistics: identity
            if key.endswith((".feature_mean", ".feature_std")) and key not in state:
                state[key] = value
        _load_exact(model, state, directory / WEIGHTS, allow_missing="llm.")
        result = set_peft_model_state_dict(model.llm, load_peft_weights(str(directory / ADAPTER)))
        if getattr(result, "unexpected_keys", None):
            raise ConfigError(f"{directory / ADAPTER} holds LoRA weights this model lacks: {result.unexpected_keys[:5]}")
        model.answer_bank = load_answer_bank(directory)
        return model

    def set_acoustic_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Corpus per-channel mean / std (D,) of the acoustic frames, used by both acoustic Q-Formers' inputs."""
        for qf in (self.utt_qformer, self.global_qformer):
            if qf is not None:
                qf.input.set_feature_stats(mean, std)

    def parameter_report(self) -> dict:
        """{"trainable", "total"} parameter counts, plus the trainable ones split by part."""
        parts = {"lora": 0, "qformers": 0, "projections": 0}
        for name, p in self.named_parameters():
            if p.requires_grad:
                key = "lora" if "lora_" in name else "qformers" if "qformer" in name else "projections"
                parts[key] += p.numel()
        return {"trainable": sum(parts.values()), "total": sum(p.numel() for p in self.parameters()), **parts}


def load_answer_bank(directory: str | os.PathLike) -> list[str]:
    """The answers in `directory`/answer_bank.json, or [] when the checkpoint has none."""
    path = Path(directory) / ANSWER_BANK
    if not path.is_file():
        return []
    try:
        bank = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a JSON list of answer strings ({e}); delete it (it only speeds up "
                          f"decoding) or write it again") from None
    if not isinstance(bank, list) or not all(isinstance(a, str) for a in bank):
        raise ConfigError(f"{path} must be a JSON list of answer strings; delete it (it only speeds up decoding)")
    return bank


def _pool_each(q: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
    """(W, K, d) -> (sum counts, d): window w keeps counts[w] tokens, average-pooled from its K (token budget)."""
    W, K, d = q.shape
    if counts is None or bool((counts == K).all()):
        return q.reshape(W * K, d)
    pieces: list[torch.Tensor | None] = [None] * W
    for k in counts.unique().tolist():
        idx = (counts == k).nonzero().squeeze(1)
        group = q[idx] if k == K else F.adaptive_avg_pool1d(q[idx].transpose(1, 2), k).transpose(1, 2)
        for j, i in enumerate(idx.tolist()):
            pieces[i] = group[j]
    return torch.cat(pieces)


def _count(branch, inputs, counts, num_queries: int) -> int:
    """Tokens a branch yields: its budgeted counts, else num_queries per row; 0 without branch or input."""
    if branch is None or inputs is None or inputs.shape[0] == 0:
        return 0
    return int(counts.sum()) if counts is not None else inputs.shape[0] * num_queries


def _prompt_lengths(batch: dict) -> list[int]:
    """Per row: tokens before the answer (the first label != -100), or all real tokens without answers."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    labels = batch.get("labels")
    if labels is not None:
        for i, row in enumerate(labels):
            answer = (row != -100).nonzero()
            if len(answer):
                lengths[i] = int(answer[0])
    return [int(n) for n in lengths]


def _to(x, device):
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _load_exact(module: nn.Module, state: dict, path, allow_missing: str) -> None:
    """load_state_dict that names every missing / unexpected / mis-shaped tensor instead of a bare error."""
    own = module.state_dict()
    bad = [f"{k}: {tuple(v.shape)} in file vs {tuple(own[k].shape)} in model" for k, v in state.items()
           if k in own and own[k].shape != v.shape]
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and not k.startswith(allow_missing) and allow_missing not in k]
    if bad or unexpected or missing:
        raise ConfigError(f"{path} does not fit this model: shapes {bad[:5]}, unexpected {unexpected[:5]}, "
                          f"missing {missing[:5]}; load it with the config.json saved beside it")
    module.load_state_dict(state, strict=False)
