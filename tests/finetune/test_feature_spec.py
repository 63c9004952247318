"""FeatureSpec parsing specs and defaults (docs/data.md#feature-specs)."""
import numpy as np
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from finetune import feature_spec


def test_parsing_spec_and_defaults():
  ints = feature_spec.FeatureSpec("chunk_labels", [5])
  assert ints.get_parsing_spec() == tf.io.FixedLenFeature([5], tf.int64)
  np.testing.assert_array_equal(ints.get_default_values(), np.zeros(5, np.int64))
  assert ints.get_default_values().dtype == np.int64
  floats = feature_spec.FeatureSpec("sts_targets", [], is_int_feature=False)
  assert floats.get_parsing_spec() == tf.io.FixedLenFeature([], tf.float32)
  assert floats.get_default_values().dtype == np.float32 and floats.get_default_values() == 0
  custom = feature_spec.FeatureSpec("x_mask", [2, 3], lambda shape: np.full(shape, -1),
                                    is_int_feature=True)
  np.testing.assert_array_equal(custom.get_default_values(), np.full([2, 3], -1))


def test_shared_specs():
  config = FinetuningConfig("m", "/nonexistent", task_names=["rte"], max_seq_length=37)
  specs = feature_spec.get_shared_feature_specs(config)
  assert [(s.name, s.shape, s.is_int_feature) for s in specs] == [
      ("input_ids", [37], True), ("input_mask", [37], True), ("segment_ids", [37], True),
      ("task_id", [], True)]
