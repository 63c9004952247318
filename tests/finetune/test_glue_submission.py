"""GLUE submission TSVs of finetune/glue_submission.py."""
import logging
import os

import numpy as np
import pytest

from configure_finetuning import FinetuningConfig
from finetune import glue_submission, task_builder
from training.config_base import PathTemplate
from util import files
from tests.conftest import TEST_DATA, UNCASED_VOCAB

GLUE_DIR = os.path.join(TEST_DATA, "finetune", "glue")


@pytest.mark.parametrize("task, logits, label", [
    ("cola", [0.3, -1.0], "0"), ("sst", [-2.0, 1.0], "1"), ("mrpc", [0.0, 0.1], "1"),
    ("qqp", [5.0, 4.0], "0"), ("rte", [1.0, 2.0], "not_entailment"),
    ("qnli", [2.0, 1.0], "entailment"), ("mnli", [0.1, 0.2, 0.9], "neutral"),
    ("mnli", [3.0, 0.2, 0.9], "contradiction"),
])
def test_classification_labels(task, logits, label):
  assert glue_submission.prediction_to_label(task, np.array(logits, np.float32)) == label


def test_sts_scaled_and_clipped():
  assert glue_submission.prediction_to_label("sts", np.float32(0.5)) == "2.500"
  assert glue_submission.prediction_to_label("sts", 0.7123) == "3.562"
  assert glue_submission.prediction_to_label("sts", 1.2) == "5.000"
  assert glue_submission.prediction_to_label("sts", -0.1) == "0.000"


def test_wrong_number_of_logits():
  with pytest.raises(ValueError, match="mnli predictions must be 3 logits; got 2"):
    glue_submission.prediction_to_label("mnli", [0.0, 1.0])


def test_file_contents_sorted_by_index(tmp_path, caplog):
  predictions = {2: np.array([0.0, 1.0, 0.0]), 0: np.array([1.0, 0.0, 0.0]),
                 1: np.array([0.0, 0.0, 1.0])}
  with caplog.at_level(logging.WARNING, logger="electra"):
    path = glue_submission.write_submission_file("mnli", "diagnostic", predictions,
                                                 str(tmp_path))
  assert os.path.basename(path) == "AX.tsv"
  with open(path, encoding="utf-8") as f:
    assert f.read() == ("index\tprediction\n0\tcontradiction\n1\tneutral\n"
                        "2\tentailment\n")
  assert "AX.tsv has 3 predictions; the official GLUE test set has 1104" in caplog.text


def test_errors(tmp_path):
  with pytest.raises(ValueError, match="No GLUE submission file for task 'mnli' split 'dev'"):
    glue_submission.write_submission_file("mnli", "dev", {}, str(tmp_path))
  with pytest.raises(ValueError, match=r"RTE.tsv: example ids must be 0..1 .*missing \[1\]"):
    glue_submission.write_submission_file("rte", "test", {0: [1, 0], 2: [0, 1]}, str(tmp_path))


def test_file_names():
  assert sorted(glue_submission.SUBMISSION_FILES.values()) == sorted([
      "CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv",
      "MNLI-mm.tsv", "AX.tsv", "QNLI.tsv", "RTE.tsv"])


def test_from_prediction_pickles(tmp_path):
  config = FinetuningConfig("electra_test", str(tmp_path), task_names=["mnli", "sts"],
                            vocab_file=UNCASED_VOCAB,
                            raw_data_dir=PathTemplate(os.path.join(GLUE_DIR, "{:}")))
  mnli, sts = task_builder.get_tasks(config)
  # Test-set eids equal the index column of the GLUE test files.
  matched = mnli.get_examples("test_matched")
  assert [e.eid for e in matched] == [0, 1]
  files.write_pickle({e.eid: np.array([0.0, 0.0, 1.0 + e.eid]) for e in matched},
                     config.test_predictions("mnli", "test_matched", 1))
  files.write_pickle({e.eid: np.float32(0.2 * e.eid) for e in sts.get_examples("test")},
                     config.test_predictions("sts", "test", 1))
  out = tmp_path / "submission"
  written = glue_submission.write_glue_submission(config, 1, str(out))
  assert sorted(os.path.basename(p) for p in written) == ["MNLI-m.tsv", "STS-B.tsv"]
  assert (out / "MNLI-m.tsv").read_text() == "index\tprediction\n0\tneutral\n1\tneutral\n"
  assert (out / "STS-B.tsv").read_text() == "index\tprediction\n0\t0.000\n1\t1.000\n"
