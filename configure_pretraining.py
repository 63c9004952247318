"""Config controlling hyperparameters for pre-training ELECTRA (see
docs/hparams.md#pre-training-hparams).

`PretrainingConfig(model_name, data_dir, **overrides)` holds every hparam as
an attribute, with the original's names and defaults. Merge order (docs/hparams.md#merge-order):
defaults -> `update(overrides)` -> derived values, debug settings, presets ->
`update(overrides)` again, so an explicitly passed value beats any preset.

Example:
  config = PretrainingConfig("electra_small", "/data", debug=True)
  config.train_batch_size         # 8 (debug setting)
  config.max_predictions_per_seq  # 19 = int((0.15 + 0.005) * 128)
"""
from __future__ import annotations

import logging
import os
from typing import Any, ClassVar, Dict

from training import config_base
from training.config_base import HParamType

logger = logging.getLogger("electra")


class PretrainingConfig(config_base.HParamsConfig):
  """Defines pre-training hyperparameters.

  Args:
    model_name: str. Name of the model; checkpoints go to
      `<data_dir>/models/<model_name>`. Positional only, so `model_name` may
      also appear in the overrides (which then leave the paths unchanged).
    data_dir: str. Root data directory (vocab, tfrecords, models).
    **kwargs: hparam overrides, e.g. parsed from `--hparams`.

  Raises:
    ValueError: an unknown or derived hparam, a value of the wrong JSON type,
      or an invalid value for a new hparam (e.g. `mixed_precision`).
  """

  _HPARAM_TYPES: ClassVar[Dict[str, HParamType]] = {
      "keep_checkpoint_max": HParamType("integer", nullable=True),  # 0/None keep all.
  }
  _VALIDATORS: ClassVar[Dict[str, config_base.Validator]] = {
      **{name: config_base.at_least(1) for name in (
          "iterations_per_loop", "save_checkpoints_steps", "num_train_steps",
          "num_eval_steps", "max_seq_length", "train_batch_size", "eval_batch_size",
          "vocab_size")},
      **{name: config_base.at_least(0) for name in (
          "keep_checkpoint_max", "num_warmup_steps", "learning_rate", "weight_decay_rate",
          "gen_weight", "disc_weight")},
      "mask_prob": config_base.in_range(0, 1, low_open=True),
      "temperature": config_base.greater_than(0),
      "lr_decay_power": config_base.greater_than(0),
      "generator_layers": config_base.greater_than(0),
      "generator_hidden_size": config_base.greater_than(0),
  }
  _DERIVED: ClassVar[Dict[str, str]] = {
      "max_predictions_per_seq": "int((mask_prob + 0.005) * max_seq_length); set mask_prob "
                                 "or max_seq_length instead",
  }

  def __init__(self, model_name: str, data_dir: str, /, **kwargs: Any):
    self.model_name = model_name
    self._set_run_defaults()
    self._set_objective_defaults()
    self._set_optimization_defaults()
    self._set_model_defaults(kwargs)
    self._set_generator_defaults()
    self._set_batch_defaults()
    self._set_tpu_defaults()
    self._set_new_hparam_defaults()
    self._set_paths(model_name, data_dir)
    self._freeze_hparams()

    self.update(kwargs)
    self._apply_derived_and_presets()
    # Passed-in arguments override (for example) debug-mode defaults (docs/hparams.md#merge-order).
    self.update(kwargs)
    self._resolve_vocab_size(kwargs)
    if self.electric_objective and not self.two_tower_generator:
      logger.warning("electric_objective is set but two_tower_generator was explicitly "
                     "set to false: the Electric model needs the two-tower generator "
                     "(docs/hparams.md#pre-training-presets); drop the two_tower_generator "
                     "override.")

  def _set_run_defaults(self) -> None:
    self.debug = False  # Tiny model, few steps.
    self.do_train = True  # Pre-train the model.
    self.do_eval = False  # Evaluate generator/discriminator on unlabeled data.

  def _set_objective_defaults(self) -> None:
    self.electra_objective = True  # Replaced-token detection; False: masked LM.
    self.electric_objective = False  # Electric; forces two_tower_generator.
    self.gen_weight = 1.0  # Weight of the generator (MLM or cloze) loss.
    self.disc_weight = 50.0  # Weight of the discriminator loss.
    self.mask_prob = 0.15  # Fraction of tokens selected for masking/replacement.

  def _set_optimization_defaults(self) -> None:
    self.learning_rate = 5e-4
    self.lr_decay_power = 1.0  # Polynomial decay power; 1.0 is linear.
    self.weight_decay_rate = 0.01
    self.num_warmup_steps = 10000
    self.iterations_per_loop = 200  # TPU loop size; also the TPU ETA log interval.
    self.save_checkpoints_steps = 1000
    self.num_train_steps = 1000000  # Absolute global step to train to.
    self.num_eval_steps = 100
    self.keep_checkpoint_max = 5  # Recent checkpoints kept; 0 or None keeps all.

  def _set_model_defaults(self, kwargs: Dict[str, Any]) -> None:
    self.model_size = "small"  # "small", "base" or "large" (get_bert_config).
    # BertConfig fields overriding the size preset; taken from the overrides
    # here, as in the original (docs/hparams.md#merge-order).
    self.model_hparam_overrides = kwargs.get("model_hparam_overrides", {})
    self.embedding_size = None  # None: the hidden size; the small preset sets 128.
    self.vocab_size = 30522  # Default: the line count of vocab_file when it exists.
    # Inert in pre-training (docs/hparams.md#differences-from-the-original).
    self.do_lower_case = True

  def _set_generator_defaults(self) -> None:
    self.uniform_generator = False  # Sample uniformly instead of using a generator.
    self.two_tower_generator = False  # Two-tower cloze generator (Electric).
    self.untied_generator_embeddings = False  # Generator gets its own embeddings.
    self.untied_generator = True  # False: the generator IS the discriminator.
    self.generator_layers = 1.0  # Fraction of the discriminator's layers.
    self.generator_hidden_size = 0.25  # Fraction of the discriminator's hidden size.
    self.disallow_correct = False  # Forbid sampling the original token.
    self.temperature = 1.0  # Generator logits are divided by this before sampling.

  def _set_batch_defaults(self) -> None:
    self.max_seq_length = 128  # Must equal the length of the tfrecords.
    self.train_batch_size = 128
    self.eval_batch_size = 128

  def _set_paths(self, model_name: str, data_dir: str) -> None:
    """Default file locations, computed from the constructor arguments."""
    self.pretrain_tfrecords = os.path.join(
        data_dir, "pretrain_tfrecords/pretrain_data.tfrecord*")
    self.vocab_file = os.path.join(data_dir, "vocab.txt")
    self.model_dir = os.path.join(data_dir, "models", model_name)
    results_dir = os.path.join(self.model_dir, "results")
    self.results_txt = os.path.join(results_dir, "unsup_results.txt")  # Never written.
    self.results_pkl = os.path.join(results_dir, "unsup_results.pkl")  # Never written.

  def _apply_derived_and_presets(self) -> None:
    """Derived values, debug settings and presets (docs/hparams.md#pre-training-hparams), in
    the original's order."""
    # Not an hparam: it is created after the first update, so it cannot be set.
    self.max_predictions_per_seq = int((self.mask_prob + 0.005) * self.max_seq_length)

    if self.debug:
      self.train_batch_size = 8
      self.num_train_steps = 20
      self.eval_batch_size = 4
      self.iterations_per_loop = 1
      self.num_eval_steps = 2

    # The paper's settings for base/large (max_seq_length 512, lr 2e-4, ...)
    # are NOT applied here, as in the original: pass them explicitly
    # (docs/hparams.md#pre-training-presets).
    if self.model_size == "small":
      self.embedding_size = 128

    if self.electric_objective:
      self.two_tower_generator = True
