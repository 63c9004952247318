"""Task registry and custom task declarations of finetune/task_builder.py
(docs/finetuning.md#task-builder).

Custom tasks run on real data slices: BoolQ and SST-like sentiment TSVs
(tests/data/finetune/README.md).
"""
import os

import numpy as np
import pytest

from configure_finetuning import FinetuningConfig
from finetune import task_builder
from finetune.classification import classification_tasks as ct
from model import tokenization
from training.config_base import PathTemplate
from tests.conftest import TEST_DATA, UNCASED_VOCAB

DATA_DIR = os.path.join(TEST_DATA, "finetune")
BOOLQ = {"name": "boolq", "type": "classification", "text_a_column": 1, "text_b_column": 2,
         "label_column": 3, "labels": ["False", "True"]}


def make_config(task_names, task_configs=(), **kwargs):
  return FinetuningConfig("electra_test", "/nonexistent", task_names=list(task_names),
                          task_configs=list(task_configs), vocab_file=UNCASED_VOCAB,
                          raw_data_dir=PathTemplate(os.path.join(DATA_DIR, "{:}")), **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB)


EXPECTED_CLASSES = {
    "cola": "CoLA", "mrpc": "MRPC", "mnli": "MNLI", "sst": "SST", "rte": "RTE", "qnli": "QNLI",
    "qqp": "QQP", "sts": "STS", "squad": "SQuAD", "squadv1": "SQuADv1", "newsqa": "NewsQA",
    "naturalqs": "NaturalQuestions", "triviaqa": "TriviaQA", "searchqa": "SearchQA",
    "chunk": "Chunking",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_every_builtin_name(name, tokenizer):
  task = task_builder.get_task(make_config([name]), name, tokenizer)
  assert type(task).__name__ == EXPECTED_CLASSES[name]
  assert task.name == name


def test_known_names_are_the_spec_registry():
  assert sorted(task_builder.KNOWN_TASK_NAMES) == sorted(EXPECTED_CLASSES)


def test_unknown_task_lists_known_names(tokenizer):
  with pytest.raises(ValueError, match=r"Unknown task mnl\. Did you mean: mnli\?.*Known tasks: "
                     r"cola, mrpc, mnli, .*chunk"):
    task_builder.get_task(make_config(["rte"]), "mnl", tokenizer)
  with pytest.raises(ValueError, match="Unknown task wnli"):
    task_builder.get_tasks(make_config(["wnli"]))


def test_get_tasks_order_and_shared_tokenizer():
  tasks = task_builder.get_tasks(make_config(["sts", "rte", "boolq"], [BOOLQ]))
  assert [t.name for t in tasks] == ["sts", "rte", "boolq"]
  assert [t.task_id for t in tasks] == [0, 1, 2]
  assert tasks[0]._tokenizer is tasks[2]._tokenizer


def test_custom_boolq_on_real_data():
  config = make_config(["boolq"], [BOOLQ], max_seq_length=32)
  (task,) = task_builder.get_tasks(config)
  assert isinstance(task, ct.CustomClassificationTask)
  train = task.get_examples("train")
  assert len(train) == 24 and [e.eid for e in train] == list(range(24))
  assert train[0].text_a == "does ethanol take more energy make that produces"
  assert train[0].text_b.startswith("All biomass goes through at least some of these steps")
  assert sum(e.label == "True" for e in train) == 19
  features = task.featurize(train[0], True)
  tokens = task._tokenizer.convert_ids_to_tokens(features["input_ids"])
  assert tokens[:10] == ["[CLS]", "does", "ethanol", "take", "more", "energy", "make", "that",
                         "produces", "[SEP]"]
  assert tokens[-1] == "[SEP]" and tokens[10:12] == ["all", "biomass"]
  assert features["boolq_label_ids"] == ["False", "True"].index(train[0].label)
  assert len(task.get_examples("dev")) == 12
  assert type(task.get_scorer()).__name__ == "AccuracyScorer"
  with pytest.raises(FileNotFoundError, match="test_file entry"):
    task.get_examples("test")


def test_custom_files_absolute_and_relative_and_metric():
  sst_dir = os.path.join(DATA_DIR, "sst_like")
  declaration = {"name": "movie", "type": "classification", "text_a_column": 0,
                 "label_column": 1, "labels": ["0", "1"], "metric": "mcc",
                 "train_file": os.path.join(sst_dir, "train.tsv"),
                 "dev_file": "../sst_like/dev.tsv"}
  (task,) = task_builder.get_tasks(make_config(["movie"], [declaration]))
  train = task.get_examples("train")
  assert [e.label for e in train] == ["0"] * 15 + ["1"] * 15
  assert train[0].text_a == "simplistic , silly and tedious ."
  assert len(task.get_examples("dev")) == 10
  assert type(task.get_scorer()).__name__ == "MCCScorer"


def test_custom_regression_on_real_data():
  declaration = {"name": "polarity", "type": "regression", "text_a_column": 0,
                 "label_column": 1, "min": 0, "max": 1, "train_file": "../sst_like/train.tsv"}
  (task,) = task_builder.get_tasks(make_config(["polarity"], [declaration]))
  examples = task.get_examples("train")
  targets = [task.featurize(e, True)["polarity_targets"] for e in examples]
  np.testing.assert_array_equal(targets, [0.0] * 15 + [1.0] * 15)
  assert type(task.get_scorer()).__name__ == "RegressionScorer"


def test_custom_tagging_is_delegated(monkeypatch):
  from finetune.tagging import tagging_tasks
  calls = []
  def fake(config, task_config, tokenizer):
    calls.append(task_config)
    return "tagging task"
  monkeypatch.setattr(tagging_tasks, "make_custom_tagging_task", fake, raising=False)
  declaration = {"name": "pos", "type": "tagging", "anything": 1}
  tasks = task_builder.get_tasks(make_config(["pos"], [declaration]))
  assert tasks == ["tagging task"] and calls == [declaration]


@pytest.mark.parametrize("change, message", [
    ({"name": "9lives"}, "'name' must be a string of letters"),
    ({"name": "mnli"}, "'mnli' is a built-in task"),
    ({"type": "ranking"}, "'type' must be one of"),
    ({"label_col": 3}, "unknown key 'label_col'.*Did you mean: label_column"),
    ({"labels": None}, "'labels' must be a list of at least 2 distinct strings"),
    ({"labels": ["True", "True"]}, "'labels' must be a list"),
    ({"labels": [0, 1]}, "'labels' must be a list"),
    ({"metric": "auc"}, "'metric' must be one of"),
    ({"metric": "f1", "labels": ["a", "b", "c"]}, "needs exactly 2 labels"),
    ({"text_a_column": "1"}, "'text_a_column' must be an integer"),
    ({"text_b_column": True}, "'text_b_column' must be an integer column index or null"),
    ({"header": "yes"}, "'header' must be true or false"),
    ({"dev_file": ""}, "'dev_file' must be a non-empty file name"),
    ({"min": 0}, "unknown key 'min' for a classification task"),
], ids=lambda x: str(x)[:30])
def test_custom_classification_validation(change, message):
  declaration = dict(BOOLQ, **change)
  if change.get("labels", 0) is None:
    del declaration["labels"]
    message = "missing required key 'labels'"
  with pytest.raises(ValueError, match=r"task_configs\[1\].*" + message):
    task_builder.get_tasks(make_config(["rte"], [dict(BOOLQ, name="other"), declaration]))


@pytest.mark.parametrize("change, message", [
    ({"min": 5, "max": 5}, r"'min' \(5\) must be smaller than 'max' \(5\)"),
    ({"max": "5"}, "'min' and 'max' must be numbers"),
    ({"labels": ["a", "b"]}, "unknown key 'labels' for a regression task"),
])
def test_custom_regression_validation(change, message):
  declaration = dict({"name": "score", "type": "regression", "text_a_column": 0,
                      "label_column": 1, "min": 0, "max": 5}, **change)
  with pytest.raises(ValueError, match=message):
    task_builder.get_tasks(make_config(["rte"], [declaration]))


def test_missing_required_regression_key():
  declaration = {"name": "score", "type": "regression", "text_a_column": 0, "label_column": 1,
                 "max": 5}
  with pytest.raises(ValueError, match=r"task_configs\[0\] \(score\): missing required key "
                     "'min'"):
    task_builder.get_tasks(make_config(["score"], [declaration]))


def test_conflicting_task_names():
  with pytest.raises(ValueError, match="'boolq' and 'boolq_x' cannot be trained together"):
    task_builder.get_tasks(make_config(["boolq", "boolq_x"],
                                       [BOOLQ, dict(BOOLQ, name="boolq_x")]))
  with pytest.raises(ValueError, match="lists a task twice"):
    task_builder.get_tasks(make_config(["rte", "rte"]))
