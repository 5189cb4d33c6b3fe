"""Training AcoustEmo: one loop, recipes as configs. Each module is one part of the recipe:

  config.py      TrainConfig, the named recipes ("two-stage" by default, "paper"), resolving a run's configs
  align.py       stage 1: the Q-Formers learn to point at the label words, without the LLM
  loop.py        the LM stage: the one training loop (Accelerate; DDP, accumulation, best model)
  data.py        the features, datasets and each epoch's batch order the loop reads
  schedule.py    the learning-rate schedule (linear warm-up, then cosine)
  validate.py    validation: val loss, set-level Avg, DIR/best
  runlog.py      log.jsonl and loss.png
  checkpoint.py  atomic checkpoints and exact resume

    from acoustemo.config import ModelConfig
    from acoustemo.training import TrainConfig, train
    result = train("train.jsonl", "val.jsonl", "runs/exp1", ModelConfig.preset("cpu-default"), TrainConfig())
"""

from acoustemo.training.checkpoint import (optimizer_state_dict, optimizer_tensors, recover_dir, rng_state,
                                           set_rng_state, swap_dir)
from acoustemo.training.config import (OPERATIONAL_FIELDS, RUN_FILE, TRAIN_CONFIG_NAME, TrainConfig,
                                       default_cache_dir, load_config_file, load_run_configs, resolve_configs)
from acoustemo.training.data import acoustic_stats, epoch_batches, steps_per_epoch
from acoustemo.training.loop import TrainResult, build_optimizer, freeze_acoustic, train
from acoustemo.training.schedule import lr_factor

__all__ = ["OPERATIONAL_FIELDS", "RUN_FILE", "TRAIN_CONFIG_NAME", "TrainConfig", "TrainResult", "acoustic_stats",
           "build_optimizer", "default_cache_dir", "epoch_batches", "freeze_acoustic", "load_config_file",
           "load_run_configs", "lr_factor", "optimizer_state_dict", "optimizer_tensors", "recover_dir",
           "resolve_configs", "rng_state", "set_rng_state", "steps_per_epoch", "swap_dir", "train"]
