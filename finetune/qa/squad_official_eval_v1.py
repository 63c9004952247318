"""Our implementation of the official SQuAD 1.1 evaluation
(docs/metrics.md#squad-20-and-the-no-answer-threshold).

Metrics: `exact_match` and `f1` in percent, each the maximum over a
question's gold answers, averaged over **every** question of the data file: a
question without a prediction is reported ("Unanswered question <id> will
receive score 0.") and scores 0. Normalisation and EM/F1 come from
`squad_official_eval` (the v1.1 F1 of two empty answers is 0, not 1). A data
file whose `version` is not "1.1" gets a warning, as in the official script.

Usage:
  python3 -m finetune.qa.squad_official_eval_v1 DATA.json PREDS.json
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from typing import Dict, List, Optional, Sequence

from finetune.qa import squad_official_eval as squad_eval
from util import logs

logger = logging.getLogger("electra")

EXPECTED_VERSION = "1.1"

_f1_v1 = functools.partial(squad_eval.compute_f1, empty_answers_agree=False)


def evaluate(dataset: List[dict], predictions: Dict[str, str]) -> Dict[str, float]:
  """Official SQuAD 1.1 metrics.

  Args:
    dataset: the `data` list of a SQuAD JSON file.
    predictions: {question id: predicted text}.

  Returns:
    {"exact_match": float, "f1": float}, in percent.

  Raises:
    ValueError: if the data has no questions, or a question has no gold answer.
  """
  f1 = exact_match = 0.0
  total = 0
  for article in dataset:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        total += 1
        if qa["id"] not in predictions:
          logger.warning("Unanswered question %s will receive score 0.", qa["id"])
          continue
        ground_truths = [answer["text"] for answer in qa["answers"]]
        prediction = predictions[qa["id"]]
        exact_match += squad_eval.max_over_ground_truths(
            squad_eval.compute_exact, prediction, ground_truths)
        f1 += squad_eval.max_over_ground_truths(_f1_v1, prediction, ground_truths)
  if total == 0:
    raise ValueError("The SQuAD data has no questions: nothing to evaluate.")
  return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def evaluate_files(data_file: str, pred_file: str) -> Dict[str, float]:
  """`evaluate` on a SQuAD JSON data file and a predictions JSON file."""
  dataset_json = squad_eval.load_squad_data(data_file)
  if dataset_json.get("version") != EXPECTED_VERSION:
    logger.warning("Evaluation expects v-%s, but got dataset with v-%s", EXPECTED_VERSION,
                   dataset_json.get("version"))
  predictions = squad_eval.load_json_dict(pred_file, "Prediction")
  return evaluate(dataset_json["data"], predictions)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: prints {"exact_match": …, "f1": …} as one JSON line."""
  parser = argparse.ArgumentParser(prog="python3 -m finetune.qa.squad_official_eval_v1",
                                   description="Evaluation for SQuAD " + EXPECTED_VERSION)
  parser.add_argument("dataset_file", help="Dataset file")
  parser.add_argument("prediction_file", help="Prediction File")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  logs.setup_logging()  # warnings go to stderr
  print(json.dumps(evaluate_files(args.dataset_file, args.prediction_file)))


if __name__ == "__main__":
  main()
