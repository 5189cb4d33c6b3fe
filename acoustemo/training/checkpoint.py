"""Checkpoints and exact resume: atomic folder swaps, RNG / optimizer state as safetensors + JSON (no pickle).

Checkpoints are written complete into a temporary folder and swapped in with renames (see `swap_dir`), so a kill
at any moment leaves a loadable `last/` (or the previous one). A resumed run restores model, optimizer,
scheduler, RNG states (python, numpy, torch; one file per process) and the data order (epoch, position in the
epoch, the epoch's permutation seed), so an interrupted run ends with the same weights and loss as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from acoustemo.config import ModelConfig
from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError
from acoustemo.training.config import TRAIN_CONFIG_NAME, TrainConfig, load_run_configs

log = logging.getLogger(__name__)



def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) capturing the python, numpy and torch (CPU + CUDA) generators."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    meta = {"python": json.dumps([version, list(mt), gauss]),
            "numpy": json.dumps([kind, int(pos), int(has_gauss), float(cached)])}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    version, mt, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(mt), gauss))
    kind, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("torch_cuda_")), key=lambda k: int(k[11:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def optimizer_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """An optimizer state_dict as flat safetensors tensors + JSON metadata (no pickle)."""
    tensors, scalars = {}, {}
    for pid, st in state_dict["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": json.dumps(state_dict["param_groups"]), "scalars": json.dumps(scalars)}


def optimizer_state_dict(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    groups = json.loads(meta["param_groups"])
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(json.loads(meta["scalars"]).items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": groups}


def swap_dir(tmp: Path, final: Path) -> None:
    """Put the complete folder `tmp` at `final`: rename the old one aside, rename tmp in, delete the old.

    Folders cannot be replaced atomically; a kill between the two renames leaves `final.old` and `tmp`, both
    complete, and `recover_dir` puts one back on the next start.
    """
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: Path, complete_marker: str) -> None:
    """Undo a kill inside `swap_dir`: prefer the new complete temp folder, else the old one."""
    if final.exists():
        return
    candidates = sorted(final.parent.glob(final.name + ".tmp-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for cand in candidates + [final.with_name(final.name + ".old")]:
        if (cand / complete_marker).is_file():
            log.warning("recovering %s from %s (a previous run was killed while saving)", final, cand)
            os.rename(cand, final)
            return


def manifest_fingerprint(clips) -> str:
    blob = json.dumps([[c.id, Path(c.media).name] for c in clips])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def params_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the trainable parameters (name order): equal digests = processes in sync."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda t: t[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()



@dataclass
class TrainerState:
    """What, besides tensors, a checkpoint must hold to continue exactly (trainer_state.json)."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # micro-batches of this epoch already consumed (by each process)
    epoch_seed: int = 0
    samples_seen: int = 0
    best_value: float | None = None
    best_step: int | None = None
    last_loss: float | None = None
    manifests: dict = field(default_factory=dict)  # fingerprints of the train / val manifests


def prepare_run_dir(out_dir: Path, mcfg: ModelConfig, cfg: TrainConfig, resume: bool, world: int,
                     fingerprints: dict, accelerator) -> Path | None:
    """Check the folder against `resume`, write the configs; the checkpoint to resume from, or None."""
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        recover_dir(out_dir / "last", "trainer_state.json")
        recover_dir(out_dir / "best", "metrics.json")
        for stale in [*out_dir.glob("last.tmp-*"), *out_dir.glob("best.tmp-*"), *out_dir.glob("*.old")]:
            shutil.rmtree(stale, ignore_errors=True)  # saves cut short by a kill
    accelerator.wait_for_everyone()
    last = out_dir / "last"
    has_checkpoint = (last / "trainer_state.json").is_file()
    if not resume:
        if has_checkpoint or (out_dir / "log.jsonl").exists():
            raise ConfigError(f"{out_dir} already holds a training run; pass --resume to continue it "
                              f"(resume=True) or choose another --out folder")
    else:
        saved_model, saved_train = load_run_configs(out_dir)
        model_diff = [f"{k}: {v!r} vs {mcfg.to_json()[k]!r}" for k, v in saved_model.to_json().items()
                      if v != mcfg.to_json()[k]]
        diff = model_diff + saved_train.trajectory_diff(cfg)
        if diff:
            raise ConfigError(f"cannot resume {out_dir}: it was started with another config ({'; '.join(diff)}; "
                              f"saved vs given); resume with the same options (or none: `acoustemo train --out "
                              f"{out_dir} --resume` reloads them) or start a new --out folder")
        if has_checkpoint:
            saved = json.loads((last / "trainer_state.json").read_text())
            if saved["world_size"] != world:
                raise ConfigError(f"cannot resume {out_dir} exactly: it was trained with {saved['world_size']} "
                                  f"process(es), now {world}; relaunch with --num_processes {saved['world_size']}")
            for split, fp in fingerprints.items():
                if saved["manifests"].get(split) != fp:
                    raise ConfigError(f"cannot resume {out_dir}: the {split} manifest differs from the one it was "
                                      f"trained on (other clip ids / media); give the same --{split} manifest")
        elif accelerator.is_main_process:
            log.warning("%s has no checkpoint yet; starting from step 0", out_dir)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        mcfg.save(out_dir / "config.json")
        cfg.save(out_dir / TRAIN_CONFIG_NAME)
        if not has_checkpoint:
            (out_dir / "log.jsonl").unlink(missing_ok=True)  # rows of a run killed before its first checkpoint
    accelerator.wait_for_everyone()
    return last if has_checkpoint else None



def save_best(net, out_dir: Path, cfg: TrainConfig, metrics: dict) -> None:
    tmp = out_dir / f"best.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    net.save_pretrained(tmp)
    cfg.save(tmp / TRAIN_CONFIG_NAME)
    write_text_atomic(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")  # written last: marks it complete
    swap_dir(tmp, out_dir / "best")


def save_checkpoint(out_dir: Path, model, optimizer, scheduler, state: TrainerState, cfg: TrainConfig,
                     accelerator) -> None:
    """DIR/last, complete or not at all: every process writes its RNG state, the main one the rest."""
    from safetensors.torch import save_file

    tmp = out_dir / f"last.tmp-{state.step}"  # same name on every process
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    tensors, meta = rng_state()
    save_file(tensors, tmp / f"rng-rank{accelerator.process_index}.safetensors", metadata=meta)
    if accelerator.is_main_process:
        net = accelerator.unwrap_model(model)
        net.save_pretrained(tmp / "model")
        cfg.save(tmp / "model" / TRAIN_CONFIG_NAME)
        tensors, meta = optimizer_tensors(optimizer.state_dict())
        if accelerator.scaler is not None:
            meta["scaler"] = json.dumps(accelerator.scaler.state_dict())
        save_file(tensors, tmp / "optimizer.safetensors", metadata=meta)
        write_text_atomic(tmp / "scheduler.json", json.dumps(scheduler.state_dict()) + "\n")
        blob = {**dataclasses.asdict(state), "world_size": accelerator.num_processes}
        write_text_atomic(tmp / "trainer_state.json", json.dumps(blob, indent=2) + "\n")  # last: marks it complete
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        swap_dir(tmp, out_dir / "last")
    accelerator.wait_for_everyone()


def load_checkpoint(checkpoint: Path, optimizer, scheduler, accelerator) -> TrainerState:
    from safetensors import safe_open

    def read(path: Path) -> tuple[dict, dict]:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}

    tensors, meta = read(checkpoint / "optimizer.safetensors")
    optimizer.load_state_dict(optimizer_state_dict(tensors, meta))
    if "scaler" in meta and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(json.loads(meta["scaler"]))
    scheduler.load_state_dict(json.loads((checkpoint / "scheduler.json").read_text()))
    set_rng_state(*read(checkpoint / f"rng-rank{accelerator.process_index}.safetensors"))
    saved = json.loads((checkpoint / "trainer_state.json").read_text())
    state = TrainerState(**{f.name: saved[f.name] for f in dataclasses.fields(TrainerState)})
    if accelerator.is_main_process:
        log.info("resuming from %s: step %d, epoch %d, position %d", checkpoint, state.step, state.epoch + 1,
                 state.position)
    return state


def gather_digests(accelerator, model) -> list[str]:
    from accelerate.utils import gather_object

    return list(gather_object([params_digest(accelerator.unwrap_model(model))]))
