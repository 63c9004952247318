"""Config controlling hyperparameters for fine-tuning ELECTRA (see
docs/hparams.md#fine-tuning-hparams).

`FinetuningConfig(model_name, data_dir, **overrides)` holds every hparam as an
attribute, with the original's names and defaults. Merge order (docs/hparams.md#merge-order):
defaults
-> `update(overrides)` -> task presets -> size presets -> debug settings ->
`update(overrides)` again, so an explicitly passed value beats any preset.

Deliberate difference from the original (docs/hparams.md#differences-from-the-original):
`init_checkpoint` and `preprocessed_data_dir` are computed after the overrides, so with
`debug: true` and no explicit value `init_checkpoint` is None (a 144-hidden
debug model cannot load a real checkpoint) and the cached tfrecords go to
`<tasks>_tfrecords-debug` instead of overwriting the real ones.

Example:
  config = FinetuningConfig("electra_small", "/data", task_names=["squad"])
  config.max_seq_length              # 512 (QA preset)
  config.qa_preds_file("squad")      # /data/models/electra_small/results/squad_qa/squad_preds.json
"""
from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List

from training import config_base
from training.config_base import HParamType, PathTemplate

QA_PRESET_MAX_SEQ_LENGTH = 512


def _check_task_configs(name: str, value: List[Any]) -> None:
  """Validator: a list of dicts, each with a unique non-empty string "name"."""
  seen = set()
  for i, entry in enumerate(value):
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
      raise ValueError(f"hparam {name}[{i}] must be an object with a non-empty string "
                       f"\"name\" key (the task name to use in task_names); got {entry!r}.")
    if entry["name"] in seen:
      raise ValueError(f"hparam {name} declares task {entry['name']!r} twice.")
    seen.add(entry["name"])


class FinetuningConfig(config_base.HParamsConfig):
  """Defines fine-tuning hyperparameters.

  Args:
    model_name: str. Name of the pre-trained model (`<data_dir>/models/<model_name>`).
      Positional only, so `model_name` may also appear in the overrides (which
      then leave the paths unchanged).
    data_dir: str. Root data directory.
    **kwargs: hparam overrides, e.g. parsed from `--hparams`.

  Raises:
    ValueError: an unknown or derived hparam, a value of the wrong JSON type,
      or an invalid value (e.g. `task_names` not a list of strings).
  """

  _HPARAM_TYPES: ClassVar[Dict[str, HParamType]] = {
      "init_checkpoint": HParamType("string", nullable=True),  # null: train from scratch.
  }
  _VALIDATORS: ClassVar[Dict[str, config_base.Validator]] = {
      "task_names": config_base.check_list_of_strings,
      "task_configs": _check_task_configs,
      **{name: config_base.at_least(1) for name in (
          "iterations_per_loop", "save_checkpoints_steps", "max_seq_length",
          "train_batch_size", "eval_batch_size", "predict_batch_size", "max_query_length",
          "doc_stride", "n_best_size", "max_answer_length", "beam_size", "vocab_size")},
      **{name: config_base.at_least(0) for name in (
          "learning_rate", "weight_decay_rate", "n_writes_test", "answerable_weight")},
      "num_train_epochs": config_base.greater_than(0),
      "warmup_proportion": config_base.in_range(0, 1),
      "xla_predict": config_base.one_of("auto", "on", "off"),
  }
  _DERIVED: ClassVar[Dict[str, str]] = {
      "write_distill_outputs": "created as False by the single-task QA preset only",
  }

  def __init__(self, model_name: str, data_dir: str, /, **kwargs: Any):
    self.model_name = model_name
    self._set_general_defaults()
    self._set_model_defaults(kwargs)
    self._set_optimization_defaults()
    self._set_output_and_sizing_defaults()
    self._set_qa_defaults()
    self._set_tpu_defaults()
    self._set_new_hparam_defaults()
    self._set_fix_defaults()

    task_names = kwargs.get("task_names", self.task_names)
    self._check_value("task_names", task_names, HParamType("array"))
    # `<tasks>` in every path: the passed (or default) names in the given order.
    tasks = ",".join(task_names)
    pretrained_model_dir = os.path.join(data_dir, "models", model_name)
    self._set_paths(data_dir, pretrained_model_dir, tasks)
    self._freeze_hparams()

    self.update(kwargs)
    self._apply_task_presets()
    self._apply_size_presets()
    self._apply_debug_settings()
    # Passed-in arguments override (for example) debug-mode defaults.
    self.update(kwargs)
    self._set_debug_dependent_paths(pretrained_model_dir, tasks, kwargs)
    self._resolve_vocab_size(kwargs)

  def _set_general_defaults(self) -> None:
    self.debug = False  # Tiny model, small data (docs/hparams.md#fine-tuning-debug-mode).
    self.log_examples = False  # Log the featurization of the first example.
    self.num_trials = 1  # Train+eval runs; negative: run forever.
    self.do_train = True
    self.do_eval = True
    self.keep_all_models = True  # False: delete each trial's model_dir but the last.

  def _set_model_defaults(self, kwargs: Dict[str, Any]) -> None:
    self.model_size = "small"  # Must match the pre-trained model.
    self.task_names = ["chunk"]  # Tasks to learn (multi-task if more than one).
    # Custom task declarations (new); interpreted by finetune.task_builder.
    self.task_configs = []
    # BertConfig fields overriding the size preset; taken from the overrides
    # here, as in the original (docs/hparams.md#merge-order).
    self.model_hparam_overrides = kwargs.get("model_hparam_overrides", {})
    self.embedding_size = None  # None: the hidden size; the small preset sets 128.
    self.vocab_size = 30522  # Default: the line count of vocab_file when it exists.
    self.do_lower_case = True

  def _set_optimization_defaults(self) -> None:
    self.learning_rate = 1e-4
    self.weight_decay_rate = 0.01
    self.layerwise_lr_decay = 0.8  # <= 0 disables layer-wise LR decay.
    self.num_train_epochs = 3.0
    self.warmup_proportion = 0.1  # Warm-up steps = proportion * train steps.
    self.save_checkpoints_steps = 1000000
    self.iterations_per_loop = 1000
    self.use_tfrecords_if_existing = True  # Reuse cached tfrecords (.metadata present).

  def _set_output_and_sizing_defaults(self) -> None:
    self.write_test_outputs = False  # Write test-set predictions (GLUE, squad).
    self.n_writes_test = 5  # Only for trials 1..n.
    self.max_seq_length = 128
    self.train_batch_size = 32
    self.eval_batch_size = 32  # Also the padding multiple of eval tfrecords.
    self.predict_batch_size = 32
    self.double_unordered = True  # MRPC/STS train on both sentence orders.
    # New: XLA for prediction/evaluation. "auto" = on, except for bf16/fp16 on a
    # CPU-only machine (XLA:CPU's low-precision matmuls are slower than oneDNN's).
    # `use_xla: true` turns it on as well.
    self.xla_predict = "auto"

  def _set_qa_defaults(self) -> None:
    self.max_query_length = 64
    self.doc_stride = 128
    self.n_best_size = 20
    self.max_answer_length = 30
    self.answerable_classifier = True
    self.answerable_uses_start_logits = True
    self.answerable_weight = 0.5
    self.joint_prediction = True  # End prediction conditioned on start (beam search).
    self.beam_size = 20
    self.qa_na_threshold = -2.75  # SQuAD 2.0 no-answer threshold.

  def _set_fix_defaults(self) -> None:
    """Opt-in fixes of the original's bugs; False reproduces the original."""
    # False: the top transformer layer gets decay**2 (the original's off-by-one).
    self.fix_layerwise_lr_decay = False
    # False: the reported tagging loss is 2x the trained one, as in the original.
    self.fix_tagging_loss_double_count = False

  def _set_paths(self, data_dir: str, pretrained_model_dir: str, tasks: str) -> None:
    """Default file locations, computed from the constructor arguments."""
    self.data_dir = data_dir
    self.raw_data_dir = PathTemplate(os.path.join(data_dir, "finetuning_data", "{:}"))
    self.vocab_file = os.path.join(pretrained_model_dir, "vocab.txt")
    if not config_base.path_exists(self.vocab_file):
      self.vocab_file = os.path.join(data_dir, "vocab.txt")
    # Recomputed after the overrides (see `_set_debug_dependent_paths`); set
    # here so that they can be overridden.
    self.init_checkpoint = pretrained_model_dir
    self.model_dir = os.path.join(pretrained_model_dir, "finetuning_models", tasks + "_model")
    results_dir = os.path.join(pretrained_model_dir, "results")
    self.results_txt = os.path.join(results_dir, tasks + "_results.txt")
    self.results_pkl = os.path.join(results_dir, tasks + "_results.pkl")
    qa_topdir = os.path.join(results_dir, tasks + "_qa")
    self.qa_eval_file = PathTemplate(os.path.join(qa_topdir, "{:}_eval.json"))
    self.qa_preds_file = PathTemplate(os.path.join(qa_topdir, "{:}_preds.json"))
    self.qa_na_file = PathTemplate(os.path.join(qa_topdir, "{:}_null_odds.json"))
    self.preprocessed_data_dir = self._preprocessed_data_dir(pretrained_model_dir, tasks)
    self.test_predictions = PathTemplate(os.path.join(
        pretrained_model_dir, "test_predictions", "{:}_{:}_{:}_predictions.pkl"))

  def _preprocessed_data_dir(self, pretrained_model_dir: str, tasks: str) -> str:
    return os.path.join(pretrained_model_dir, "finetuning_tfrecords",
                        tasks + "_tfrecords" + ("-debug" if self.debug else ""))

  def _set_debug_dependent_paths(self, pretrained_model_dir: str, tasks: str,
                                 kwargs: Dict[str, Any]) -> None:
    """Fix of the original's quirk (docs/hparams.md#differences-from-the-original): use the final
    `debug` value.

    The original computes both paths before the overrides, when `debug` is
    always False. Explicitly passed values are kept.
    """
    if "init_checkpoint" not in kwargs:
      self.init_checkpoint = None if self.debug else pretrained_model_dir
    if "preprocessed_data_dir" not in kwargs:
      self.preprocessed_data_dir = self._preprocessed_data_dir(pretrained_model_dir, tasks)

  def _apply_task_presets(self) -> None:
    """Single-task presets (docs/hparams.md#task-presets)."""
    if len(self.task_names) != 1:
      return
    task_name = self.task_names[0]
    if task_name in ("rte", "sts"):
      self.num_train_epochs = 10.0
    # Substring match, as the original, plus a FIX (docs/hparams.md#differences-from-the-original):
    # "naturalqs" contains neither "squad" nor "qa", so the original gave this
    # QA task 128 tokens and 3 epochs; it gets the QA preset here.
    elif "squad" in task_name or "qa" in task_name or task_name == "naturalqs":
      self.max_seq_length = QA_PRESET_MAX_SEQ_LENGTH
      self.num_train_epochs = 2.0
      self.write_distill_outputs = False  # Not an hparam: created here only.
      self.write_test_outputs = False
    elif task_name == "chunk":
      self.max_seq_length = 256
    else:
      self.num_train_epochs = 3.0

  def _apply_size_presets(self) -> None:
    """Size presets (docs/hparams.md#fine-tuning-size-presets); base changes nothing."""
    if self.model_size == "large":
      self.learning_rate = 5e-5
      self.layerwise_lr_decay = 0.9
    elif self.model_size == "small":
      self.embedding_size = 128

  def _apply_debug_settings(self) -> None:
    """Debug-mode settings (docs/hparams.md#fine-tuning-debug-mode); the tiny model is applied by
    get_model_bert_config."""
    if not self.debug:
      return
    self.save_checkpoints_steps = 1000000
    self.use_tfrecords_if_existing = False
    self.num_trials = 1
    self.iterations_per_loop = 1
    self.train_batch_size = 32
    self.num_train_epochs = 3.0
    self.log_examples = True
