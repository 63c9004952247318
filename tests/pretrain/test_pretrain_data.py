"""Tests for the `Inputs` helpers and the up-front input checks of pretrain/pretrain_data.py."""
import re

import numpy as np
import pytest
import tensorflow as tf

from pretrain import pretrain_data
from pretrain.pretrain_data import Inputs, features_to_inputs, get_updated_inputs
from util import cli


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


def _write_shard(path, id_lists):
  """A tfrecord file of pre-training examples with these input_ids (mask 1, segment 0)."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for ids in id_lists:
      feature = {key: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                 for key, values in (("input_ids", ids), ("input_mask", [1] * len(ids)),
                                     ("segment_ids", [0] * len(ids)))}
      writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                   .SerializeToString())
  return str(path)


def test_check_sequence_length_names_a_file_of_each_length(tmp_path):
  files = [_write_shard(tmp_path / "a", [[101, 5, 102, 0]]), _write_shard(tmp_path / "b", []),
           _write_shard(tmp_path / "c", [[101, 7, 8, 9, 10, 102]]),
           _write_shard(tmp_path / "d", [[101, 6, 102, 0]])]
  with pytest.raises(cli.DataError) as raised:
    pretrain_data.check_sequence_length(files, 4, "shards*")
  assert str(raised.value) == (
      f"The files matching shards* (hparam pretrain_tfrecords) mix sequence lengths: {files[0]} "
      f"holds examples of length 4, {files[2]} holds examples of length 6; hparam "
      "max_seq_length is 4. Keep the shards of one build only (move the others away or narrow "
      "pretrain_tfrecords).")
  pretrain_data.check_sequence_length(files[:2] + files[3:], 4, "shards*")  # One length: fine.
  with pytest.raises(ValueError, match=f"{re.escape(files[0])} holds examples of length 4 but "
                     "hparam max_seq_length is 6"):
    pretrain_data.check_sequence_length(files[:2], 6, "shards*")


def test_check_token_ids_names_the_largest_id_and_its_file(tmp_path):
  ok = _write_shard(tmp_path / "ok", [[101, 888, 102, 0]] * 3)
  high = _write_shard(tmp_path / "high", [[101, 5, 102, 0], [101, 900, 102, 0]])
  higher = _write_shard(tmp_path / "higher", [[101, 5, 102, 0]] * 2 + [[101, 2323, 102, 0]])
  empty = _write_shard(tmp_path / "empty", [])
  pretrain_data.check_token_ids([ok, empty], 889, "vocab.txt")
  with pytest.raises(cli.DataError) as raised:  # Not only first records: the third one.
    pretrain_data.check_token_ids([ok, high, higher, empty], 889, "small/vocab.txt")
  assert str(raised.value).startswith(
      f"{higher} holds token id 2323, outside the vocabulary of 889 ids (small/vocab.txt, "
      "hparams vocab_file / vocab_size)")
  negative = _write_shard(tmp_path / "negative", [[101, -3, 102, 0]])
  with pytest.raises(cli.DataError, match=f"{re.escape(negative)} holds token id -3, outside"):
    pretrain_data.check_token_ids([ok, negative], 889, "vocab.txt")


def test_unreadable_first_record_is_named(tmp_path):
  ok = _write_shard(tmp_path / "ok", [[101, 5, 102, 0]])
  bad = tmp_path / "bad"
  with open(ok, "rb") as f:
    data = bytearray(f.read())
  data[20] ^= 0xFF  # A flipped bit in the first record: its CRC fails.
  bad.write_bytes(bytes(data))
  for check in (lambda files: pretrain_data.check_sequence_length(files, 4),
                lambda files: pretrain_data.check_token_ids(files, 889, "vocab.txt")):
    with pytest.raises(cli.DataError, match=f"Corrupt or truncated tfrecord file {bad} "):
      check([ok, str(bad)])
