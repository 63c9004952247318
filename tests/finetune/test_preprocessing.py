"""Cached tfrecords and the tf.data input of finetune/preprocessing.py
(docs/data.md#feature-cache)."""
import json
import logging
import os
import random
import shutil

import numpy as np
import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from finetune import preprocessing, task_builder
from training.config_base import PathTemplate
from tests.conftest import TEST_DATA, UNCASED_VOCAB

GLUE_DIR = os.path.join(TEST_DATA, "finetune", "glue")
CREATING = "Existing tfrecords not found so creating"


def make_config(tmp_path, task_names=("rte", "sts"), **kwargs):
  args = dict(task_names=list(task_names), vocab_file=UNCASED_VOCAB,
              raw_data_dir=PathTemplate(os.path.join(GLUE_DIR, "{:}")), max_seq_length=16,
              train_batch_size=5, eval_batch_size=2, predict_batch_size=3, seed=17)
  args.update(kwargs)
  return FinetuningConfig("electra_test", str(tmp_path), **args)


def make_preprocessor(config):
  return preprocessing.Preprocessor(config, task_builder.get_tasks(config))


def read_records(preprocessor, path):
  """All records of a tfrecord file in file order, as numpy dicts."""
  dataset = preprocessor.make_dataset(path, is_training=False, batch_size=1000)
  batches = list(dataset.as_numpy_iterator())
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_train_tfrecord_contents_padding_and_order(tmp_path, caplog):
  config = make_config(tmp_path)
  preprocessor = make_preprocessor(config)
  with caplog.at_level(logging.INFO, logger="electra"):
    dataset, steps = preprocessor.prepare_train()
  assert "Loading dataset rte_sts_train" in caplog.text
  assert CREATING in caplog.text and "Writing example 0 of 8" in caplog.text
  path = os.path.join(config.preprocessed_data_dir, "rte_sts_train.tfrecord")
  metadata = json.load(open(path[:-len(".tfrecord")] + ".metadata"))
  # 2 RTE + 3 STS rows doubled by double_unordered = 8, padded to 10 (batch 5).
  assert metadata["n_examples"] == 10
  assert steps == int(10 // 5 * 3.0)
  records = read_records(preprocessor, path)
  assert sorted(records) == ["input_ids", "input_mask", "rte_eid", "rte_label_ids",
                             "segment_ids", "sts_eid", "sts_targets", "task_id"]
  assert records["input_ids"].dtype == np.int32 and records["sts_targets"].dtype == np.float32
  # The seeded Python shuffle of the concatenated examples gives the file order.
  expected = [(0, eid) for eid in range(2)] + [(1, eid) for eid in range(6)]
  random.Random(17).shuffle(expected)
  eids = np.where(records["task_id"] == 0, records["rte_eid"], records["sts_eid"])
  assert list(zip(records["task_id"][:8], eids[:8])) == expected
  # Padding: task_id = len(task_names), every other feature at its default.
  assert list(records["task_id"][8:]) == [2, 2]
  assert not records["input_ids"][8:].any() and not records["sts_targets"][8:].any()
  # Features of the other task are defaults; STS targets are label / 5.
  is_rte = records["task_id"] == 0
  assert not records["sts_targets"][is_rte].any()
  sts_targets = dict(zip(eids[records["task_id"] == 1], records["sts_targets"][
      records["task_id"] == 1]))
  assert sts_targets[0] == pytest.approx(0.96) and sts_targets[5] == pytest.approx(0.75)
  assert dict(zip(eids[is_rte], records["rte_label_ids"][is_rte])) == {0: 0, 1: 1}
  # Training input: repeated, shuffled, full batches of train_batch_size.
  batches = list(dataset.take(7).as_numpy_iterator())
  assert all(b["input_ids"].shape == (5, 16) and b["input_ids"].dtype == np.int32
             for b in batches)
  assert not [p for p in os.listdir(config.preprocessed_data_dir) if p.startswith(".tmp")]


def test_cache_is_reused(tmp_path, caplog):
  config = make_config(tmp_path)
  make_preprocessor(config).prepare_train()
  path = os.path.join(config.preprocessed_data_dir, "rte_sts_train.tfrecord")
  mtime = os.stat(path).st_mtime_ns
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="electra"):
    _, steps = make_preprocessor(make_config(tmp_path)).prepare_train()
  assert "Loading dataset rte_sts_train" in caplog.text and CREATING not in caplog.text
  assert os.stat(path).st_mtime_ns == mtime and steps == 6


@pytest.mark.parametrize("change, reason", [
    ({"max_seq_length": 20}, "max_seq_length: 16 -> 20"),
    ({"do_lower_case": False}, "do_lower_case: true -> false"),
    ({"train_batch_size": 4}, "padding_batch_size: 5 -> 4"),
    # A nested setting: named by its full key, both values shown (the old line cut
    # both to the same 60-character prefix of the "tasks" dict).
    ({"double_unordered": False}, "tasks.rte.double_unordered: true -> false; "
                                  "tasks.sts.double_unordered: true -> false"),
    ({"seed": 3}, "shuffle_seed: 17 -> 3"),
], ids=["max_seq_length", "lower_case", "batch_size", "double_unordered", "seed"])
def test_cache_rebuilt_when_settings_change(tmp_path, caplog, change, reason):
  make_preprocessor(make_config(tmp_path)).prepare_train()
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="electra"):
    make_preprocessor(make_config(tmp_path, **change)).prepare_train()
  assert "were built with different settings so rebuilding: " in caplog.text
  assert reason in caplog.text
  assert "Writing example 0 of " in caplog.text
  assert CREATING not in caplog.text  # no contradictory "not found" after the reason


def test_cache_rebuilt_when_vocab_content_changes(tmp_path, caplog):
  vocab = tmp_path / "vocab.txt"
  shutil.copy(UNCASED_VOCAB, vocab)
  make_preprocessor(make_config(tmp_path, vocab_file=str(vocab))).prepare_train()
  with open(vocab, "a", encoding="utf-8") as f:
    f.write("newtoken\n")
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="electra"):
    make_preprocessor(make_config(tmp_path, vocab_file=str(vocab))).prepare_train()
  assert "vocab_sha256:" in caplog.text and "Writing example 0 of " in caplog.text
  assert CREATING not in caplog.text


def test_cache_rebuilt_when_task_list_changes(tmp_path, caplog):
  # Same dataset name (rte_dev), but task ids and record features differ.
  config = make_config(tmp_path, preprocessed_data_dir=str(tmp_path / "cache"))
  preprocessor = make_preprocessor(config)
  preprocessor.prepare_predict(preprocessor.tasks[:1], "dev")
  caplog.clear()
  config = make_config(tmp_path, task_names=["rte"], preprocessed_data_dir=str(tmp_path / "cache"))
  with caplog.at_level(logging.INFO, logger="electra"):
    preprocessor = make_preprocessor(config)
    dataset, _ = preprocessor.prepare_predict(preprocessor.tasks, "dev")
  assert 'task_names: ["rte", "sts"] -> ["rte"]' in caplog.text
  assert "sts_targets" not in next(iter(dataset))


def test_original_metadata_without_fingerprint_is_rebuilt(tmp_path, caplog):
  config = make_config(tmp_path)
  make_preprocessor(config).prepare_train()
  metadata = os.path.join(config.preprocessed_data_dir, "rte_sts_train.metadata")
  with open(metadata, "w") as f:
    json.dump({"n_examples": 10}, f)
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="electra"):
    make_preprocessor(config).prepare_train()
  assert "have no fingerprint" in caplog.text and "Writing example 0 of " in caplog.text
  assert CREATING not in caplog.text
  assert "fingerprint" in json.load(open(metadata))


def test_use_tfrecords_if_existing_false_always_rebuilds(tmp_path, caplog):
  make_preprocessor(make_config(tmp_path)).prepare_train()
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="electra"):
    make_preprocessor(make_config(tmp_path, use_tfrecords_if_existing=False)).prepare_train()
  assert CREATING in caplog.text


def test_predict_keeps_every_example_when_batch_sizes_differ(tmp_path):
  config = make_config(tmp_path)  # eval_batch_size 2 (padding), predict_batch_size 3.
  preprocessor = make_preprocessor(config)
  dataset, steps = preprocessor.prepare_predict(preprocessor.tasks, "dev")
  metadata = json.load(open(os.path.join(config.preprocessed_data_dir, "rte_sts_dev.metadata")))
  assert metadata["n_examples"] == 4  # 1 RTE + 2 STS, padded to a multiple of 2.
  batches = list(dataset.as_numpy_iterator())
  assert steps == 2 and [len(b["task_id"]) for b in batches] == [3, 1]
  task_ids = np.concatenate([b["task_id"] for b in batches])
  assert list(task_ids) == [0, 1, 1, 2]  # File order, no shuffle, padding last.
  sts_eids = np.concatenate([b["sts_eid"] for b in batches])[task_ids == 1]
  assert list(sts_eids) == [0, 1]


def test_test_split_uses_dummy_labels(tmp_path):
  config = make_config(tmp_path, task_names=["mnli"])
  preprocessor = make_preprocessor(config)
  dataset, steps = preprocessor.prepare_predict(preprocessor.tasks, "test_mismatched")
  batch = next(iter(dataset))
  assert steps == 1 and list(batch["task_id"].numpy()) == [0, 1]
  assert list(batch["mnli_label_ids"].numpy()) == [0, 0]


def test_make_tf_example_errors(tmp_path):
  preprocessor = make_preprocessor(make_config(tmp_path))
  with pytest.raises(ValueError, match="Unknown feature 'qa_eid'"):
    preprocessor.make_tf_example(qa_eid=3)
  with pytest.raises(ValueError, match=r"'input_ids' has 3 values; its spec shape \[16\]"):
    preprocessor.make_tf_example(input_ids=[1, 2, 3])
  with pytest.raises(ValueError, match="'rte_label_ids' is an int feature but got float64"):
    preprocessor.make_tf_example(rte_label_ids=0.5)
  example = preprocessor.make_tf_example(task_id=1, sts_targets=0.5)
  parsed = tf.io.parse_single_example(
      example.SerializeToString(), {s.name: s.get_parsing_spec() for s in
                                    preprocessor.feature_specs})
  assert parsed["task_id"].numpy() == 1 and parsed["sts_targets"].numpy() == 0.5
  assert parsed["input_ids"].shape == [16] and not parsed["input_ids"].numpy().any()


def test_duplicate_feature_names_rejected(tmp_path):
  config = make_config(tmp_path)
  tasks = task_builder.get_tasks(config)
  with pytest.raises(ValueError, match="'rte_eid' is declared twice"):
    preprocessing.Preprocessor(config, [tasks[0], tasks[0]])


def test_failed_write_leaves_no_cache(tmp_path, monkeypatch):
  config = make_config(tmp_path)
  preprocessor = make_preprocessor(config)
  sts = preprocessor.tasks[1]
  def broken(example, is_training, log=False):
    raise RuntimeError("featurization failed")
  monkeypatch.setattr(sts, "featurize", broken)
  with pytest.raises(RuntimeError):
    preprocessor.prepare_train()
  assert os.listdir(config.preprocessed_data_dir) == []
