"""Descriptions of the features written to and parsed from fine-tuning tfrecords.

See docs/data.md#feature-specs. Every serialized fine-tuning example contains the shared
features (`input_ids`, `input_mask`, `segment_ids` of shape [max_seq_length]
and the scalar `task_id`) plus the features of every configured task; a
feature a task does not produce is filled with its default value.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf


class FeatureSpec:
  """One fixed-length tfrecord feature.

  Args:
    name: str. Feature key, e.g. "input_ids" or "<task>_label_ids".
    shape: list of int. Feature shape; `[]` for a scalar.
    default_value_fn: optional callable mapping `shape` to the default value
      (a numpy array of that shape). None: zeros of the feature's dtype.
    is_int_feature: bool. True: int64 feature (parsed back as int64, cast to
      int32 by the input pipeline); False: float32 feature.
  """

  def __init__(self, name: str, shape: Sequence[int],
               default_value_fn: Optional[Callable[[List[int]], np.ndarray]] = None,
               is_int_feature: bool = True):
    self.name = name
    self.shape = list(shape)
    self.default_value_fn = default_value_fn
    self.is_int_feature = is_int_feature

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.int64 if self.is_int_feature else np.float32)

  def get_parsing_spec(self) -> tf.io.FixedLenFeature:
    """The `tf.io.parse_single_example` spec: FixedLenFeature(shape, int64|float32)."""
    return tf.io.FixedLenFeature(self.shape, tf.int64 if self.is_int_feature else tf.float32)

  def get_default_values(self) -> np.ndarray:
    """Default value: `default_value_fn(shape)` if given, else zeros of that shape."""
    if self.default_value_fn is not None:
      return np.asarray(self.default_value_fn(self.shape), dtype=self.dtype)
    return np.zeros(self.shape, dtype=self.dtype)

  def __repr__(self) -> str:
    kind = "int" if self.is_int_feature else "float"
    return f"FeatureSpec({self.name!r}, {self.shape}, {kind})"


def get_shared_feature_specs(config) -> List[FeatureSpec]:
  """The features every fine-tuning dataset has (docs/data.md#feature-specs).

  Args:
    config: a `FinetuningConfig` (uses `max_seq_length`).

  Returns:
    [input_ids, input_mask, segment_ids] of shape [max_seq_length] and the
    scalar task_id, all int.
  """
  return [
      FeatureSpec("input_ids", [config.max_seq_length]),
      FeatureSpec("input_mask", [config.max_seq_length]),
      FeatureSpec("segment_ids", [config.max_seq_length]),
      FeatureSpec("task_id", []),
  ]
