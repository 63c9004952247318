"""Tests for the `Inputs` helpers of pretrain/pretrain_data.py."""
import numpy as np
import pytest
import tensorflow as tf

from pretrain.pretrain_data import Inputs, features_to_inputs, get_updated_inputs


def _features():
  ids = tf.constant([[101, 7592, 102, 0], [101, 2088, 2003, 102]], tf.int32)
  return {
      "input_ids": ids,
      "input_mask": tf.cast(ids > 0, tf.int32),
      "segment_ids": tf.zeros_like(ids),
  }


def test_inputs_fields_and_defaults():
  assert Inputs._fields == ("input_ids", "input_mask", "segment_ids",
                            "masked_lm_positions", "masked_lm_ids",
                            "masked_lm_weights")
  inputs = Inputs(1, 2, 3)
  assert inputs.masked_lm_positions is None
  assert inputs.masked_lm_ids is None
  assert inputs.masked_lm_weights is None


def test_features_to_inputs_unmasked_batch_ignores_extra_keys():
  features = _features()
  features["unrelated"] = tf.constant([1, 2])
  inputs = features_to_inputs(features)
  assert inputs.input_ids is features["input_ids"]
  assert inputs.input_mask is features["input_mask"]
  assert inputs.segment_ids is features["segment_ids"]
  assert inputs.masked_lm_positions is None
  assert inputs.masked_lm_ids is None
  assert inputs.masked_lm_weights is None


def test_features_to_inputs_with_masked_fields():
  features = _features()
  features["masked_lm_positions"] = tf.constant([[1, 0], [2, 1]])
  features["masked_lm_ids"] = tf.constant([[7592, 0], [2003, 2088]])
  features["masked_lm_weights"] = tf.constant([[1.0, 0.0], [1.0, 1.0]])
  inputs = features_to_inputs(features)
  np.testing.assert_array_equal(inputs.masked_lm_positions, [[1, 0], [2, 1]])
  np.testing.assert_array_equal(inputs.masked_lm_ids, [[7592, 0], [2003, 2088]])
  np.testing.assert_array_equal(inputs.masked_lm_weights, [[1, 0], [1, 1]])


def test_features_to_inputs_missing_key_names_it():
  features = _features()
  del features["segment_ids"]
  with pytest.raises(ValueError, match="segment_ids"):
    features_to_inputs(features)


def test_get_updated_inputs_replaces_only_named_fields():
  inputs = features_to_inputs(_features())
  new_ids = tf.constant([[101, 103, 102, 0], [101, 103, 103, 102]])
  positions = tf.constant([[1], [2]])
  updated = get_updated_inputs(inputs, input_ids=new_ids,
                               masked_lm_positions=positions)
  assert updated.input_ids is new_ids
  assert updated.masked_lm_positions is positions
  assert updated.input_mask is inputs.input_mask
  assert updated.segment_ids is inputs.segment_ids
  assert updated.masked_lm_ids is None
  # The original tuple is untouched.
  np.testing.assert_array_equal(inputs.input_ids, _features()["input_ids"])
  assert inputs.masked_lm_positions is None


def test_get_updated_inputs_rejects_unknown_field():
  inputs = features_to_inputs(_features())
  with pytest.raises(ValueError, match="input_idz"):
    get_updated_inputs(inputs, input_idz=inputs.input_ids)
