"""GLUE readers, featurization and heads of finetune/classification/classification_tasks.py.

The readers run on hand-written files in each GLUE task's exact layout
(tests/data/finetune/glue/<task>/); featurization uses the real uncased vocab.
"""
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from finetune.classification import classification_tasks as ct
from model import modeling, tokenization
from model.modeling import BertOutput
from training.config_base import PathTemplate
from util import cli
from tests.conftest import TEST_DATA, UNCASED_VOCAB

GLUE_DIR = os.path.join(TEST_DATA, "finetune", "glue")


def make_config(task_names, data_dir="/nonexistent", raw_dir=GLUE_DIR, **kwargs):
  return FinetuningConfig("electra_test", str(data_dir), task_names=task_names,
                          vocab_file=UNCASED_VOCAB,
                          raw_data_dir=PathTemplate(os.path.join(str(raw_dir), "{:}")),
                          **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)


def read(task_cls, split, tokenizer, **kwargs):
  name = task_cls(make_config(["rte"]), tokenizer).name
  task = task_cls(make_config([name], **kwargs), tokenizer)
  return task.get_examples(split)


def summary(examples):
  return [(e.eid, e.text_a, e.text_b, e.label) for e in examples]


# === Readers: columns, headers, labels, splits ===


def test_cola_train_has_no_header_and_test_skips_it(tokenizer):
  train = read(ct.CoLA, "train", tokenizer)
  assert [(e.eid, e.label) for e in train] == [(0, "1"), (1, "0"), (2, "1"), (3, "0"), (4, "1")]
  assert train[0].text_a == "The children sang a song about the sea."
  assert train[0].text_b is None
  test = read(ct.CoLA, "test", tokenizer)
  assert summary(test) == [(0, "The lighthouse keeper climbed the stairs.", None, "0"),
                           (1, "Climbed the keeper stairs the.", None, "0")]


def test_sst_reads_quotes_literally(tokenizer):
  train = read(ct.SST, "train", tokenizer)
  assert summary(train)[2] == (2, '"the film" never earns its tears .', None, "0")
  assert [e.label for e in train] == ["1", "0", "0", "1"]
  assert [e.text_a for e in read(ct.SST, "test", tokenizer)][1] == (
      "nothing here is worth your time .")


def test_mrpc_train_is_doubled_with_swapped_pairs(tokenizer):
  train = read(ct.MRPC, "train", tokenizer)
  assert [e.eid for e in train] == [0, 1, 2, 3, 4, 5]
  assert [e.label for e in train] == ["1", "0", "1", "1", "0", "1"]
  for first, second in zip(train[:3], train[3:]):
    assert (second.text_a, second.text_b) == (first.text_b, first.text_a)
  assert train[0].text_a == "The company said profits rose sharply in the third quarter."
  assert len(read(ct.MRPC, "dev", tokenizer)) == 2
  assert len(read(ct.MRPC, "train", tokenizer, double_unordered=False)) == 3
  test = read(ct.MRPC, "test", tokenizer)
  assert summary(test)[1] == (1, "Shares fell in early trading.",
                              "The orchestra played a new piece.", "0")


def test_qqp_columns_differ_between_train_and_test(tokenizer):
  train = read(ct.QQP, "train", tokenizer)
  assert summary(train) == [
      (0, "How do I learn to swim as an adult?",
       "What is the best way for adults to learn swimming?", "1"),
      (1, "Why is the sky blue?", "How far away is the moon?", "0")]
  test = read(ct.QQP, "test", tokenizer)
  assert summary(test)[0] == (0, "How can I sleep better?",
                              "What helps people fall asleep faster?", "0")


@pytest.mark.parametrize("task_cls", [ct.RTE, ct.QNLI], ids=["rte", "qnli"])
def test_entailment_tasks(task_cls, tokenizer):
  train = read(task_cls, "train", tokenizer)
  assert [e.label for e in train] == ["entailment", "not_entailment"]
  assert all(e.text_b for e in train)
  test = read(task_cls, "test", tokenizer)
  assert [e.label for e in test] == ["entailment"]  # The dummy label (first label).


def test_mnli_splits_and_last_column_label(tokenizer):
  config = make_config(["mnli"])
  task = ct.MNLI(config, tokenizer)
  assert task.get_test_splits() == ["test_matched", "test_mismatched", "diagnostic"]
  dev = task.get_examples("dev")  # Reads dev_matched.tsv.
  # Row 1's label1..label5 disagree; the reader takes the last column (gold_label).
  assert summary(dev) == [
      (0, "She closed the window because of the rain.", "It was raining.", "entailment"),
      (1, "The review praised the new album.", "The review was negative.", "contradiction")]
  assert [e.label for e in task.get_examples("train")] == [
      "entailment", "contradiction", "neutral"]
  assert summary(task.get_examples("dev_mismatched"))[0][3] == "neutral"
  assert summary(task.get_examples("test_mismatched")) == [
      (0, "We are writing to ask for your support.", "The letter asks for support.",
       "contradiction")]
  assert [e.text_a for e in task.get_examples("test_matched")] == [
      "The dog barked at the stranger.", "The train arrives at noon."]
  diagnostic = task.get_examples("diagnostic")
  assert summary(diagnostic)[1] == (1, "No student passed the exam.",
                                    "Some students passed the exam.", "contradiction")


def test_sts_regression_labels_and_doubling(tokenizer):
  train = read(ct.STS, "train", tokenizer)
  assert [e.label for e in train] == [4.8, 0.0, 3.75, 4.8, 0.0, 3.75]
  assert (train[4].text_a, train[4].text_b) == ("A child is riding a horse.",
                                                "A woman is slicing an onion.")
  test = read(ct.STS, "test", tokenizer)
  assert summary(test) == [(0, "A boy is playing piano.", "A child plays the piano.", 0.0),
                           (1, "A cat drinks milk.", "A car drives down the road.", 0.0)]


# === Errors and the debug limit ===


def _copy_task_dir(tmp_path, task_name):
  shutil.copytree(os.path.join(GLUE_DIR, task_name), tmp_path / task_name)
  return tmp_path / task_name


def test_malformed_rows_are_skipped_and_counted(tmp_path, tokenizer, caplog):
  task_dir = _copy_task_dir(tmp_path, "sst")
  with open(task_dir / "train.tsv", "a", encoding="utf-8") as f:
    f.write("a row without a label column\n")
    f.write("the last good row .\t1\n")
  task = ct.SST(make_config(["sst"], raw_dir=tmp_path), tokenizer)
  with caplog.at_level(logging.INFO, logger="electra"):
    examples = task.get_examples("train")
  assert [e.eid for e in examples] == [0, 1, 2, 3, 5]  # eid = row index, gap kept.
  assert examples[-1].text_a == "the last good row ."
  # The warning names the 1-based line of the file (header included), read back here.
  with open(task_dir / "train.tsv", encoding="utf-8") as f:
    bad_line = f.read().splitlines().index("a row without a label column") + 1
  assert bad_line == 6
  assert (f"Error constructing example from line {bad_line} of {task_dir / 'train.tsv'} "
          "for task sst") in caplog.text
  assert "Skipped 1 malformed row(s) of 6" in caplog.text


def test_unknown_label_names_file_line_and_value(tmp_path, tokenizer):
  task_dir = _copy_task_dir(tmp_path, "rte")
  with open(task_dir / "dev.tsv", "a", encoding="utf-8") as f:
    f.write("1\tA is B.\tB is A.\tcontradiction\n")
  task = ct.RTE(make_config(["rte"], raw_dir=tmp_path), tokenizer)
  with pytest.raises(cli.DataError, match=r"rte/dev.tsv:3: task rte: label 'contradiction' "
                     r"is not one of .*entailment"):
    task.get_examples("dev")


@pytest.mark.parametrize("bad, message", [("high", "not a number"), ("5.5", "outside")])
def test_bad_regression_label(tmp_path, tokenizer, bad, message):
  task_dir = _copy_task_dir(tmp_path, "sts")
  with open(task_dir / "dev.tsv", "a", encoding="utf-8") as f:
    f.write("\t".join(["2", "g", "f", "y", "0", "n", "n", "A.", "B.", bad]) + "\n")
  task = ct.STS(make_config(["sts"], raw_dir=tmp_path), tokenizer)
  with pytest.raises(cli.DataError, match=message) as error:
    task.get_examples("dev")
  assert "sts/dev.tsv:4: " in str(error.value)


def test_missing_task_directory(tmp_path, tokenizer):
  task = ct.RTE(make_config(["rte"], raw_dir=tmp_path), tokenizer)
  with pytest.raises(FileNotFoundError) as error:
    task.get_examples("train")
  message = str(error.value)
  assert os.path.join(str(tmp_path), "rte", "train.tsv") in message
  assert "finetuning_data/rte/train.tsv" in message and "RTE/" in message


def test_debug_reads_at_most_100_lines(tmp_path, tokenizer):
  (tmp_path / "sst").mkdir()
  with open(tmp_path / "sst" / "train.tsv", "w", encoding="utf-8") as f:
    f.write("sentence\tlabel\n")
    for i in range(150):
      f.write(f"sentence number {i} .\t{i % 2}\n")
  examples = ct.SST(make_config(["sst"], raw_dir=tmp_path, debug=True), tokenizer).get_examples(
      "train")
  assert len(examples) == 99  # 100 lines including the header.
  full = ct.SST(make_config(["sst"], raw_dir=tmp_path), tokenizer).get_examples("train")
  assert len(full) == 150


# === Featurization (docs/data.md#featurization-per-task-type) ===


def test_truncate_seq_pair_longest_first_ties_from_b():
  a, b = list("abcdef"), list("xyz")
  ct.truncate_seq_pair(a, b, 5)
  # 6+3 -> pop a three times (5, 4, 3), then a tie 3+3 pops b.
  assert (a, b) == (list("abc"), list("xy"))
  a, b = list("ab"), list("wxyz")
  ct.truncate_seq_pair(a, b, 4)
  assert (a, b) == (list("ab"), list("wx"))


def test_featurize_pair_layout_with_real_vocab(tokenizer):
  task = ct.RTE(make_config(["sst", "rte"], max_seq_length=16), tokenizer)
  example = ct.InputExample(7, "rte", "The whale surfaced.", "It breathed.", "not_entailment")
  features = task.featurize(example, is_training=True)
  tokens = ["[CLS]", "the", "whale", "surfaced", ".", "[SEP]", "it", "breathed", ".", "[SEP]"]
  assert features["input_ids"][:10] == tokenizer.convert_tokens_to_ids(tokens)
  assert features["input_ids"][0] == 101 and features["input_ids"][5] == 102
  assert features["input_ids"][10:] == [0] * 6
  assert features["input_mask"] == [1] * 10 + [0] * 6
  assert features["segment_ids"] == [0] * 6 + [1] * 4 + [0] * 6
  assert features["task_id"] == 1
  assert features["rte_eid"] == 7
  assert features["rte_label_ids"] == 1
  assert set(features) == {"input_ids", "input_mask", "segment_ids", "task_id", "rte_eid",
                           "rte_label_ids"}


def test_featurize_truncates_longest_first(tokenizer):
  task = ct.MRPC(make_config(["mrpc"], max_seq_length=8), tokenizer)
  # text_a has 7 word pieces, text_b 3: budget 8 - 3 = 5 -> a keeps 3, b keeps 2.
  example = ct.InputExample(0, "mrpc", "The sea was calm that night.", "We sailed on", "1")
  features = task.featurize(example, is_training=False)
  expected = ["[CLS]", "the", "sea", "was", "[SEP]", "we", "sailed", "[SEP]"]
  assert len(tokenizer.tokenize(example.text_a)) == 7
  assert len(tokenizer.tokenize(example.text_b)) == 3
  assert features["input_ids"] == tokenizer.convert_tokens_to_ids(expected)
  assert features["segment_ids"] == [0] * 5 + [1] * 3
  assert features["input_mask"] == [1] * 8


def test_featurize_single_sentence_real_text(tokenizer):
  lines = ct.read_tsv(os.path.join(TEST_DATA, "finetune", "sst_like", "dev.tsv"))
  review = lines[1][0]  # A long IMDB review.
  task = ct.SST(make_config(["sst"], max_seq_length=12), tokenizer)
  features = task.featurize(ct.InputExample(3, "sst", review, None, lines[1][1]), True)
  pieces = tokenizer.tokenize(review)
  assert len(pieces) > 10
  assert features["input_ids"] == tokenizer.convert_tokens_to_ids(
      ["[CLS]"] + pieces[:10] + ["[SEP]"])
  assert features["segment_ids"] == [0] * 12
  assert features["sst_label_ids"] == int(lines[1][1])
  # An empty text_b is treated as a single sentence (no second [SEP]).
  empty_b = task.featurize(ct.InputExample(3, "sst", review, "", "0"), True)
  assert empty_b["input_ids"] == features["input_ids"]


def test_featurize_regression_target_and_log(tokenizer, caplog):
  task = ct.STS(make_config(["sts"]), tokenizer)
  example = ct.InputExample(2, "sts", "A man sings.", "A man is singing.", 3.75)
  with caplog.at_level(logging.INFO, logger="electra"):
    features = task.featurize(example, True, log=True)
  assert features["sts_targets"] == pytest.approx(0.75)
  assert "tokens: [CLS] a man sings . [SEP] a man is singing . [SEP]" in caplog.text
  custom = ct.CustomRegressionTask(
      make_config(["grade"]), "grade", tokenizer, {"train": "x"}, ct.TsvFormat(0, None, 1, True),
      ct.TsvFormat(0, None, None, True), 1.0, 5.0)
  assert custom.featurize(ct.InputExample(0, "grade", "ok", None, 2.0), True)[
      "grade_targets"] == pytest.approx(0.25)


# === Heads (docs/finetuning.md#classification-and-regression-heads) ===


def _bert_output(pooled):
  sequence = tf.stack([pooled, tf.zeros_like(pooled)], axis=1)
  return BertOutput(sequence_output=sequence, pooled_output=pooled, all_layer_outputs=[],
                    embedding_output=sequence)


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_classification_head_matches_numpy():
  rng = np.random.default_rng(0)
  head = ct.ClassificationHead("mnli", hidden_size=11, num_labels=3)
  names = {n: tuple(v.shape) for n, v in head.named_variables().items()}
  assert names == {"task_specific/mnli/dense/kernel": (11, 3),
                   "task_specific/mnli/dense/bias": (3,)}
  head.dense.bias.assign(rng.normal(size=3).astype(np.float32))
  pooled = rng.normal(size=(5, 11)).astype(np.float32)
  labels = np.array([0, 2, 1, 1, 0], np.int32)
  features = {"mnli_label_ids": tf.constant(labels), "mnli_eid": tf.range(5)}
  losses, outputs = head(_bert_output(tf.constant(pooled)), features, training=False)
  logits = pooled @ head.dense.kernel.numpy() + head.dense.bias.numpy()
  expected = -_log_softmax(logits)[np.arange(5), labels]
  np.testing.assert_allclose(losses.numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(outputs["logits"].numpy(), logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(outputs["predictions"].numpy(), logits.argmax(-1))
  np.testing.assert_array_equal(outputs["label_ids"].numpy(), labels)
  np.testing.assert_array_equal(outputs["eid"].numpy(), np.arange(5))
  np.testing.assert_array_equal(outputs["loss"].numpy(), losses.numpy())

  # Training: the encoder's stateless dropout (rate 0.1) on [CLS] with the given seed.
  seed = tf.constant([3, 4])
  train_losses, train_out = head(_bert_output(tf.constant(pooled)), features, True, seed)
  dropped = modeling.dropout(tf.constant(pooled), 0.1, True, seed).numpy()
  np.testing.assert_allclose(
      train_out["logits"].numpy(),
      dropped @ head.dense.kernel.numpy() + head.dense.bias.numpy(), rtol=1e-5, atol=1e-6)
  assert not np.allclose(train_out["logits"].numpy(), logits)


def test_regression_head_matches_numpy():
  rng = np.random.default_rng(1)
  head = ct.RegressionHead("sts", hidden_size=7)
  assert {n: tuple(v.shape) for n, v in head.named_variables().items()} == {
      "task_specific/sts/dense/kernel": (7, 1), "task_specific/sts/dense/bias": (1,)}
  pooled = rng.normal(size=(4, 7)).astype(np.float32)
  targets = np.array([0.0, 0.25, 1.0, 0.6], np.float32)
  losses, outputs = head(_bert_output(tf.constant(pooled)),
                         {"sts_targets": tf.constant(targets), "sts_eid": tf.range(4)}, False)
  predictions = (pooled @ head.dense.kernel.numpy())[:, 0] + head.dense.bias.numpy()[0]
  np.testing.assert_allclose(outputs["predictions"].numpy(), predictions, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.numpy(), (predictions - targets) ** 2, rtol=1e-4,
                             atol=1e-6)
  assert set(outputs) == {"loss", "predictions", "targets", "eid"}


def test_scorer_and_fingerprint_per_task(tokenizer):
  config = make_config(["cola", "sts", "rte"])
  assert type(ct.CoLA(config, tokenizer).get_scorer()).__name__ == "MCCScorer"
  assert type(ct.STS(config, tokenizer).get_scorer()).__name__ == "RegressionScorer"
  assert type(ct.RTE(config, tokenizer).get_scorer("test")).__name__ == "AccuracyScorer"
  fingerprint = ct.RTE(config, tokenizer).get_fingerprint()
  assert fingerprint["labels"] == ["entailment", "not_entailment"]
  assert fingerprint["class"].endswith("classification_tasks.RTE")
