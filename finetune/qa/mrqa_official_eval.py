"""Our implementation of the official MRQA 2019 evaluation
(docs/metrics.md#squad-20-and-the-no-answer-threshold).

Gold answers are each question's `answers` (a list of strings) keyed by `qid`,
read from an MRQA JSONL file (one paragraph object per line; a line with a
`header` key is skipped; `.gz` files are read transparently). Metrics:
`exact_match` and `f1` in percent, maximum over gold answers, normalisation
and EM/F1 from `squad_official_eval` (two empty answers score 0, as in v1.1).
As in ELECTRA, questions without a prediction are skipped (not counted);
`skip_no_answer=False` counts them as 0 instead, like the official default.

Usage:
  python3 -m finetune.qa.mrqa_official_eval DATA.jsonl PREDS.json
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from typing import Dict, Iterator, List, Optional, Sequence

from finetune import input_files
from finetune.qa import squad_official_eval as squad_eval
from util import logs

logger = logging.getLogger("electra")

_f1_mrqa = functools.partial(squad_eval.compute_f1, empty_answers_agree=False)


def read_mrqa_lines(path: str, max_lines: Optional[int] = None) -> Iterator[dict]:
  """Yields the paragraph objects of an MRQA JSONL file, skipping `header` lines.

  Args:
    path: `.jsonl` or `.jsonl.gz` file.
    max_lines: if given, only the first `max_lines` lines are read (header
      included), as ELECTRA's debug mode does with 11.

  Raises:
    FileNotFoundError: if the file does not exist.
    DataError: a line that is not UTF-8 or not a JSON object (names file and line).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"MRQA data file {path} does not exist.")
  for number, line in input_files.read_lines(path, max_lines):
    if not line.strip():
      continue
    paragraph = input_files.parse_json(line, path, first_line=number)
    if not isinstance(paragraph, dict):
      raise input_files.data_error(path, number, "expected a JSON object per line.")
    if "header" in paragraph:
      continue
    yield paragraph


def read_answers(gold_file: str) -> Dict[str, List[str]]:
  """{qid: list of gold answer strings} from an MRQA JSONL file."""
  answers = {}
  for paragraph in read_mrqa_lines(gold_file):
    for qa in paragraph["qas"]:
      answers[qa["qid"]] = qa["answers"]
  return answers


def evaluate(answers: Dict[str, List[str]], predictions: Dict[str, str],
             skip_no_answer: bool = True) -> Dict[str, float]:
  """Official MRQA metrics.

  Args:
    answers: {qid: gold answer strings}.
    predictions: {qid: predicted text}.
    skip_no_answer: True (ELECTRA): questions without a prediction are not
      counted. False: they count as 0.

  Returns:
    {"exact_match": float, "f1": float}, in percent.

  Raises:
    ValueError: if no question is counted.
  """
  f1 = exact_match = 0.0
  total = 0
  for qid, ground_truths in answers.items():
    if qid not in predictions:
      if not skip_no_answer:
        logger.warning("Unanswered question %s will receive score 0.", qid)
        total += 1
      continue
    total += 1
    prediction = predictions[qid]
    exact_match += squad_eval.max_over_ground_truths(
        squad_eval.compute_exact, prediction, ground_truths)
    f1 += squad_eval.max_over_ground_truths(_f1_mrqa, prediction, ground_truths)
  if total == 0:
    raise ValueError("No MRQA question has a prediction: nothing to evaluate.")
  return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def evaluate_files(data_file: str, pred_file: str,
                   skip_no_answer: bool = True) -> Dict[str, float]:
  """`evaluate` on an MRQA JSONL data file and a predictions JSON file."""
  return evaluate(read_answers(data_file),
                  squad_eval.load_json_dict(pred_file, "Prediction"), skip_no_answer)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: prints {"exact_match": …, "f1": …} as one JSON line."""
  parser = argparse.ArgumentParser(prog="python3 -m finetune.qa.mrqa_official_eval",
                                   description="Evaluation for MRQA Workshop Shared Task")
  parser.add_argument("dataset_file", type=str, help="Dataset File (.jsonl or .jsonl.gz)")
  parser.add_argument("prediction_file", type=str, help="Prediction File")
  parser.add_argument("--count-unanswered", action="store_true",
                      help="Count questions without a prediction as 0 (official default) "
                           "instead of skipping them (ELECTRA).")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  logs.setup_logging()
  print(json.dumps(evaluate_files(args.dataset_file, args.prediction_file,
                                  skip_no_answer=not args.count_unanswered)))


if __name__ == "__main__":
  main()
