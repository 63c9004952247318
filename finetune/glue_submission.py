"""GLUE benchmark submission files from test-set predictions (beyond the original).

The original stops at pickles `eid -> logits` (`eid -> prediction` for STS,
docs/finetuning.md#test-set-outputs). This module turns them into the TSV files the GLUE server
expects: a header `index\tprediction`, then one row per test example in index
order. For GLUE test files the `eid` equals the `index` column.

| task, split | file | prediction column |
| --- | --- | --- |
| cola test | CoLA.tsv | 0 / 1 (argmax of the logits) |
| sst test | SST-2.tsv | 0 / 1 |
| mrpc test | MRPC.tsv | 0 / 1 |
| qqp test | QQP.tsv | 0 / 1 |
| sts test | STS-B.tsv | score = 5 · prediction, clipped to [0, 5], 3 decimals |
| mnli test_matched | MNLI-m.tsv | contradiction / entailment / neutral |
| mnli test_mismatched | MNLI-mm.tsv | same |
| mnli diagnostic | AX.tsv | same |
| qnli test | QNLI.tsv | entailment / not_entailment |
| rte test | RTE.tsv | entailment / not_entailment |

WNLI is not supported by ELECTRA (as the original); a complete submission
needs a WNLI.tsv from elsewhere (e.g. the majority class).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from finetune.classification import classification_tasks as ct
from util import files

logger = logging.getLogger("electra")

SUBMISSION_FILES: Dict[Tuple[str, str], str] = {
    ("cola", "test"): "CoLA.tsv",
    ("sst", "test"): "SST-2.tsv",
    ("mrpc", "test"): "MRPC.tsv",
    ("qqp", "test"): "QQP.tsv",
    ("sts", "test"): "STS-B.tsv",
    ("mnli", "test_matched"): "MNLI-m.tsv",
    ("mnli", "test_mismatched"): "MNLI-mm.tsv",
    ("mnli", "diagnostic"): "AX.tsv",
    ("qnli", "test"): "QNLI.tsv",
    ("rte", "test"): "RTE.tsv",
}
LABELS: Dict[str, Sequence[str]] = {
    "cola": ct.BINARY_LABELS, "sst": ct.BINARY_LABELS, "mrpc": ct.BINARY_LABELS,
    "qqp": ct.BINARY_LABELS, "mnli": ct.MNLI_LABELS, "qnli": ct.ENTAILMENT_LABELS,
    "rte": ct.ENTAILMENT_LABELS,
}
STS_MAX = 5.0
# Sizes of the official GLUE test sets; a different count is logged as a warning.
OFFICIAL_TEST_SIZES: Dict[str, int] = {
    "CoLA.tsv": 1063, "SST-2.tsv": 1821, "MRPC.tsv": 1725, "QQP.tsv": 390965,
    "STS-B.tsv": 1379, "MNLI-m.tsv": 9796, "MNLI-mm.tsv": 9847, "AX.tsv": 1104,
    "QNLI.tsv": 5463, "RTE.tsv": 3000,
}


def prediction_to_label(task_name: str, prediction: Any) -> str:
  """The submission string of one prediction.

  Args:
    task_name: a GLUE task name ("cola", ..., "sts").
    prediction: logits (float array [num_labels]) for classification tasks, the
      normalized (0–1) score for "sts".

  Returns:
    The label string, or for STS the score `5 · prediction` clipped to [0, 5]
    with 3 decimals.
  """
  if task_name == "sts":
    score = float(np.clip(float(np.asarray(prediction).reshape(())) * STS_MAX, 0.0, STS_MAX))
    return f"{score:.3f}"
  logits = np.asarray(prediction).reshape(-1)
  labels = LABELS[task_name]
  if logits.size != len(labels):
    raise ValueError(f"{task_name} predictions must be {len(labels)} logits; got "
                     f"{logits.size} values.")
  return labels[int(np.argmax(logits))]


def write_submission_file(task_name: str, split: str, predictions: Mapping[int, Any],
                          output_dir: str) -> str:
  """Writes one GLUE submission TSV.

  Args:
    task_name: GLUE task name.
    split: the test split (`test`; MNLI `test_matched`, `test_mismatched`,
      `diagnostic`).
    predictions: {eid: logits or STS prediction}, e.g. the pickle written by
      test-set prediction.
    output_dir: directory of the submission files.

  Returns:
    The path written.

  Raises:
    ValueError: an unsupported (task, split), or eids that are not 0..n-1.
  """
  if (task_name, split) not in SUBMISSION_FILES:
    raise ValueError(f"No GLUE submission file for task {task_name!r} split {split!r}; "
                     f"supported: {sorted(SUBMISSION_FILES)}.")
  file_name = SUBMISSION_FILES[(task_name, split)]
  eids = sorted(int(eid) for eid in predictions)
  if eids != list(range(len(eids))):
    missing = sorted(set(range(eids[-1] + 1)) - set(eids)) if eids else []
    raise ValueError(f"{file_name}: example ids must be 0..{len(eids) - 1} (the test file's "
                     f"index column); missing {missing[:10]}.")
  expected = OFFICIAL_TEST_SIZES[file_name]
  if len(eids) != expected:
    logger.warning("%s has %d predictions; the official GLUE test set has %d", file_name,
                   len(eids), expected)
  path = os.path.join(output_dir, file_name)
  with files.atomic_write(path) as f:
    f.write("index\tprediction\n")
    for eid in eids:
      f.write(f"{eid}\t{prediction_to_label(task_name, predictions[eid])}\n")
  return path


def write_glue_submission(config, trial: int, output_dir: str) -> List[str]:
  """Writes submission TSVs for every GLUE task of `config.task_names` with test predictions.

  Reads `config.test_predictions(task, split, trial)` (the pickles written with
  `write_test_outputs: true`); a missing pickle is logged and skipped.

  Args:
    config: the `FinetuningConfig`.
    trial: int. The trial whose predictions to use (1-based, as the files).
    output_dir: directory of the submission files.

  Returns:
    The paths written.
  """
  written = []
  for (task_name, split) in SUBMISSION_FILES:
    if task_name not in config.task_names:
      continue
    pickle_path = config.test_predictions(task_name, split, trial)
    if not os.path.exists(pickle_path):
      logger.warning("No test predictions at %s; skipping %s", pickle_path,
                     SUBMISSION_FILES[(task_name, split)])
      continue
    written.append(write_submission_file(task_name, split, files.load_pickle(pickle_path),
                                         output_dir))
    logger.info("Wrote %s", written[-1])
  return written
