"""The interface every fine-tuning task implements (see docs/finetuning.md#task-interface).

A task turns raw files into `Example`s (`get_examples`), examples into feature
dicts (`featurize`, serialized by `finetune.preprocessing`), builds its head
(`create_head`, a `TaskHead` whose variables live under
`task_specific/<task name>/`) and scores the head's outputs (`get_scorer`).

TF2 adaptation of the original `get_prediction_module`: the head is a
`tf.Module` built once from the encoder's hidden size and called on the
encoder output, so its variables exist before the first step (checkpoint
names are the API, docs/ARCHITECTURE.md).

Head output convention: a head returns un-prefixed keys (`loss`, `logits`,
`predictions`, `eid`, ...); `FinetuningModel` flattens them to
`<task>_<key>`, and a scorer's `update` receives them back un-prefixed (one
example at a time, numpy values), as in the original.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import tensorflow as tf

from model.modeling import NamedModule

if TYPE_CHECKING:
  from finetune.feature_spec import FeatureSpec
  from finetune.scorer import Scorer
  from model.modeling import BertOutput

Features = Dict[str, object]


def format_padded(values: Sequence[object], length: int) -> str:
  """A padded feature for the `log_examples` log: its first `length` values only.

  The original logged the whole padded array (e.g. 512 ids); the padding is
  summarized instead: `"101 7592 102 (+5 padding)"`.

  Args:
    values: the padded feature.
    length: how many leading values are real (not padding).
  """
  text = " ".join(str(x) for x in values[:length])
  padding = len(values) - min(length, len(values))
  return text + (f" (+{padding} padding)" if padding else "")


class Example:
  """Base class of a task's examples.

  Args:
    eid: int. Example id, unique within (task, split); written to the
      `<task>_eid` feature and used to match predictions back to examples.
    task_name: str. Name of the task the example belongs to.
  """

  def __init__(self, eid: int, task_name: str):
    self.eid = eid
    self.task_name = task_name


class TaskHead(NamedModule, metaclass=abc.ABCMeta):
  """A task's prediction head; variables under `task_specific/<task name>/`.

  Subclasses create their variables in `__init__` (inside the scope given by
  `self.scope`, e.g. `Dense(self.scope + "/dense", hidden_size, n)`) and
  implement `__call__`.

  Args:
    task_name: str. The task's name (the scope suffix).
  """

  def __init__(self, task_name: str):
    super().__init__("task_specific/" + task_name)
    self.task_name = task_name

  @abc.abstractmethod
  def __call__(self, bert_output: "BertOutput", features: Dict[str, tf.Tensor],
               training: bool, seed: Optional[tf.Tensor] = None
               ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Computes per-example losses and outputs for a whole batch.

    Args:
      bert_output: the encoder's `BertOutput` (sequence_output [B, S, H],
        pooled_output [B, H]).
      features: the batch's features (every task's features, int32/float32
        tensors with leading batch dimension B).
      training: bool. Enables dropout.
      seed: optional int [2] stateless seed for dropout (docs/ARCHITECTURE.md).

    Returns:
      (losses, outputs): float32 [B] per-example losses (computed for every
      row; `FinetuningModel` masks rows of other tasks) and a dict of tensors
      with leading dimension B and un-prefixed keys, including `loss` and
      `eid` where the task's scorer / test outputs need them.
    """


class Task(metaclass=abc.ABCMeta):
  """A fine-tuning task.

  Args:
    config: the `FinetuningConfig`.
    name: str. Unique task name: the `task_specific/<name>` scope suffix,
      the feature-name prefix and the data sub-directory.
  """

  def __init__(self, config, name: str):
    self.config = config
    self.name = name

  @property
  def task_id(self) -> int:
    """Index of this task in `config.task_names` (the `task_id` feature)."""
    if self.name not in self.config.task_names:
      raise ValueError(
          f"Task {self.name!r} is not in task_names {self.config.task_names}; add it to "
          "the task_names hparam to featurize its examples.")
    return self.config.task_names.index(self.name)

  def get_fingerprint(self) -> Dict[str, object]:
    """JSON-able settings that determine this task's features, for cache invalidation.

    `finetune.preprocessing` stores it (with the vocab hash, max_seq_length,
    do_lower_case, the task list and the QA window hparams) next to cached
    tfrecords and rebuilds them when it changes. Subclasses whose features
    depend on further settings (label lists, file columns) extend the dict.
    """
    return {"class": f"{type(self).__module__}.{type(self).__qualname__}"}

  def debug_data_note(self) -> str:
    """What part of its files the task reads in debug mode ("" if all), for the log."""
    return ""

  def get_test_splits(self) -> List[str]:
    """Split names written by test-set prediction (default `["test"]`)."""
    return ["test"]

  @abc.abstractmethod
  def get_examples(self, split: str) -> List[Example]:
    """Reads the examples of `split` ("train", "dev" or a test split)."""

  @abc.abstractmethod
  def get_feature_specs(self) -> List["FeatureSpec"]:
    """Task-specific feature specs; names start with `<name>_`."""

  @abc.abstractmethod
  def featurize(self, example: Example, is_training: bool,
                log: bool = False) -> Union[Features, List[Features]]:
    """Turns one example into one feature dict (or a list of them, e.g. QA windows).

    Each dict holds `input_ids`, `input_mask`, `segment_ids` (length
    `max_seq_length`), `task_id` and this task's own features; features it
    omits get their spec's default when serialized.
    """

  @abc.abstractmethod
  def create_head(self, hidden_size: int) -> TaskHead:
    """Builds this task's head for an encoder with hidden size `hidden_size`."""

  @abc.abstractmethod
  def get_scorer(self, split: str = "dev") -> "Scorer":
    """A fresh scorer for predictions on `split`.

    The split is explicit so that post-processing reads the examples that were
    actually predicted (fixes the original's SQuAD test-output bug,
    docs/finetuning.md#quirks-and-fixes).
    """

  def __repr__(self) -> str:
    return f"{type(self).__name__}(name={self.name!r})"
