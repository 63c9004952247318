"""Our implementation of the official SQuAD 2.0 evaluation
(docs/metrics.md#squad-20-and-the-no-answer-threshold, docs/cli.md#other-runnable-scripts).

Re-written from the published definition of the official v2.0 script, with the
same numbers and result keys. This module is also the one home of the answer
normalisation and the EM/F1 definitions used by the SQuAD 1.1
(`squad_official_eval_v1`) and MRQA (`mrqa_official_eval`) evaluators.

Definitions:
  * `normalize_answer`: lower-case, drop ASCII punctuation, drop the articles
    a/an/the (word-bounded), collapse whitespace.
  * exact match: normalised strings equal; F1: harmonic mean of precision and
    recall of the normalised token bags. If either side has no tokens, v2.0
    scores 1 when both are empty and 0 otherwise; v1.1/MRQA score 0.
  * per question, the maximum over the gold answers. A v2.0 question whose
    answers all normalise to "" (or has none) has the single gold answer "".
  * with no-answer probabilities: a question counts as predicted unanswerable
    iff `na_prob > na_prob_thresh`; it then scores 1 iff it has no answer.
  * `best_exact`/`best_f1`: sweep the threshold over the sorted na-probs
    starting from "everything unanswerable" and keep the best total; the
    threshold reported is the na-prob at which it was reached (0.0 if none).

Result keys: `exact`, `f1`, `total`, then `HasAns_*` / `NoAns_*` (when the data
has such questions), then `best_exact`, `best_exact_thresh`, `best_f1`,
`best_f1_thresh` (when no-answer probabilities are given) and, with an image
directory, `pr_exact_ap`, `pr_f1_ap`, `pr_oracle_ap`.

Difference from the official script: a question without a prediction is
reported ("Missing prediction for <id>") and left out of every total; the
official script drops it from the overall totals but then crashes with a
KeyError in the HasAns/NoAns breakdown (docs/metrics.md#squad-20-and-the-no-answer-threshold).

Usage:
  python3 -m finetune.qa.squad_official_eval DATA.json PREDS.json \
      [--na-prob-file NA.json] [--na-prob-thresh T] [--out-file EVAL.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import string
import sys
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from util import files, logs

logger = logging.getLogger("electra")

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)

Scores = Dict[str, float]


# --- Normalisation and per-answer metrics (shared by v1.1, v2.0 and MRQA) ---

def normalize_answer(s: str) -> str:
  """Lower-cases, removes ASCII punctuation and articles, collapses whitespace."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in _PUNCTUATION)
  s = _ARTICLES.sub(" ", s)
  return " ".join(s.split())


def get_tokens(s: str) -> List[str]:
  """The normalised answer's whitespace tokens ([] for an empty string)."""
  if not s:
    return []
  return normalize_answer(s).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
  """1 if the normalised answers are identical, else 0."""
  return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str, empty_answers_agree: bool = True) -> float:
  """Token-bag F1 of the normalised answers.

  Args:
    a_gold: gold answer text.
    a_pred: predicted answer text.
    empty_answers_agree: what happens when either side has no tokens. True
      (SQuAD 2.0): 1.0 if both are empty, else 0.0. False (SQuAD 1.1, MRQA):
      always 0.0.

  Returns:
    F1 in [0, 1].
  """
  gold_toks = get_tokens(a_gold)
  pred_toks = get_tokens(a_pred)
  if not gold_toks or not pred_toks:
    return float(empty_answers_agree and gold_toks == pred_toks)
  common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(pred_toks)
  recall = num_same / len(gold_toks)
  return 2 * precision * recall / (precision + recall)


def max_over_ground_truths(metric_fn: Callable[[str, str], float], prediction: str,
                           ground_truths: Sequence[str]) -> float:
  """max over gold answers g of metric_fn(g, prediction).

  Raises:
    ValueError: if there are no gold answers.
  """
  if not ground_truths:
    raise ValueError("A question has no gold answers; cannot score prediction "
                     f"{prediction!r}.")
  return max(metric_fn(gold, prediction) for gold in ground_truths)


# --- SQuAD 2.0 -----------------------------------------------------------------

def _iter_qas(dataset: Iterable[dict]) -> Iterable[dict]:
  for article in dataset:
    for paragraph in article["paragraphs"]:
      yield from paragraph["qas"]


def make_qid_to_has_ans(dataset: Iterable[dict]) -> Dict[str, bool]:
  """{question id: whether it has at least one gold answer}."""
  return {qa["id"]: bool(qa["answers"]) for qa in _iter_qas(dataset)}


def get_raw_scores(dataset: Iterable[dict], preds: Dict[str, str]) -> Tuple[Scores, Scores]:
  """Per-question EM and F1 (max over gold answers), before no-answer thresholding.

  Questions without a prediction are logged and left out.
  """
  exact_scores: Scores = {}
  f1_scores: Scores = {}
  for qa in _iter_qas(dataset):
    qid = qa["id"]
    gold_answers = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
    if not gold_answers:
      gold_answers = [""]  # the only correct answer to an unanswerable question
    if qid not in preds:
      logger.warning("Missing prediction for %s", qid)
      continue
    exact_scores[qid] = max_over_ground_truths(compute_exact, preds[qid], gold_answers)
    f1_scores[qid] = max_over_ground_truths(compute_f1, preds[qid], gold_answers)
  return exact_scores, f1_scores


def _na_prob(na_probs: Dict[str, float], qid: str) -> float:
  if qid not in na_probs:
    raise ValueError(f"The no-answer probabilities have no entry for question {qid}; "
                     "the na-prob file must cover every predicted question.")
  return na_probs[qid]


def apply_no_ans_threshold(scores: Scores, na_probs: Dict[str, float],
                           qid_to_has_ans: Dict[str, bool], na_prob_thresh: float) -> Scores:
  """Replaces the score of questions predicted unanswerable (na_prob > thresh)."""
  new_scores = {}
  for qid, score in scores.items():
    if _na_prob(na_probs, qid) > na_prob_thresh:
      new_scores[qid] = float(not qid_to_has_ans[qid])
    else:
      new_scores[qid] = score
  return new_scores


def make_eval_dict(exact_scores: Scores, f1_scores: Scores,
                   qid_list: Optional[Sequence[str]] = None) -> "collections.OrderedDict":
  """`exact`, `f1` (percent) and `total` over `qid_list` (default: every scored question)."""
  if qid_list is None:
    qid_list = list(exact_scores)
  total = len(qid_list)
  if total == 0:
    raise ValueError("No question has a prediction: nothing to evaluate.")
  return collections.OrderedDict([
      ("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
      ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
      ("total", total),
  ])


def merge_eval(main_eval: dict, new_eval: dict, prefix: str) -> None:
  """Adds `new_eval`'s entries to `main_eval` as `<prefix>_<key>`."""
  for key, value in new_eval.items():
    main_eval[f"{prefix}_{key}"] = value


def find_best_thresh(preds: Dict[str, str], scores: Scores, na_probs: Dict[str, float],
                     qid_to_has_ans: Dict[str, bool]) -> Tuple[float, float]:
  """The official threshold sweep: (best score in percent, its na-prob threshold).

  Starts from "every question unanswerable" (score = number of unanswerable
  questions) and, in increasing na-prob order, switches one question at a
  time to answered: an answerable one gains its score, an unanswerable one
  loses 1 if the prediction is non-empty.
  """
  cur_score = sum(1 for has_ans in qid_to_has_ans.values() if not has_ans)
  best_score = cur_score
  best_thresh = 0.0
  for qid in sorted(na_probs, key=lambda k: na_probs[k]):
    if qid not in scores:
      continue
    if qid_to_has_ans[qid]:
      diff = scores[qid]
    else:
      diff = -1 if preds[qid] else 0
    cur_score += diff
    if cur_score > best_score:
      best_score = cur_score
      best_thresh = na_probs[qid]
  return 100.0 * best_score / len(scores), best_thresh


def find_all_best_thresh(main_eval: dict, preds: Dict[str, str], exact_raw: Scores,
                         f1_raw: Scores, na_probs: Dict[str, float],
                         qid_to_has_ans: Dict[str, bool]) -> None:
  """Adds `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`."""
  best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
  best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
  main_eval["best_exact"] = best_exact
  main_eval["best_exact_thresh"] = exact_thresh
  main_eval["best_f1"] = best_f1
  main_eval["best_f1_thresh"] = f1_thresh


def precision_recall_ap(scores: Scores, na_probs: Dict[str, float],
                        qid_to_has_ans: Dict[str, bool]) -> Tuple[float, List[float], List[float]]:
  """Average precision of ranking questions by increasing na-prob (official `-p` analysis).

  Returns:
    (AP in percent, precisions, recalls) of the precision-recall curve, with a
    point wherever a threshold can be placed (between distinct na-probs).
  """
  num_true_pos = sum(1 for has_ans in qid_to_has_ans.values() if has_ans)
  qid_list = sorted(na_probs, key=lambda k: na_probs[k])
  true_pos = 0.0
  precisions, recalls = [1.0], [0.0]
  avg_prec = 0.0
  for i, qid in enumerate(qid_list):
    if qid_to_has_ans[qid]:
      true_pos += scores[qid]
    cur_p = true_pos / (i + 1)
    cur_r = true_pos / num_true_pos
    if i == len(qid_list) - 1 or na_probs[qid] != na_probs[qid_list[i + 1]]:
      avg_prec += cur_p * (cur_r - recalls[-1])
      precisions.append(cur_p)
      recalls.append(cur_r)
  return 100.0 * avg_prec, precisions, recalls


def _run_precision_recall_analysis(main_eval: dict, exact_raw: Scores, f1_raw: Scores,
                                   na_probs: Dict[str, float],
                                   qid_to_has_ans: Dict[str, bool], out_image_dir: str) -> None:
  """Adds `pr_{exact,f1,oracle}_ap` and draws the PR curves and na-prob histograms."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("--out-image-dir needs matplotlib: pip install matplotlib") from e
  if not any(qid_to_has_ans.values()):
    return
  os.makedirs(out_image_dir, exist_ok=True)
  oracle_scores = {k: float(v) for k, v in qid_to_has_ans.items()}
  curves = [("exact", exact_raw, "Precision-Recall curve for Exact Match score"),
            ("f1", f1_raw, "Precision-Recall curve for F1 score"),
            ("oracle", oracle_scores,
             "Oracle Precision-Recall curve (binary task of HasAns vs. NoAns)")]
  for name, scores, title in curves:
    ap, precisions, recalls = precision_recall_ap(scores, na_probs, qid_to_has_ans)
    main_eval[f"pr_{name}_ap"] = ap
    plt.step(recalls, precisions, color="b", alpha=0.2, where="post")
    plt.fill_between(recalls, precisions, step="post", alpha=0.2, color="b")
    plt.xlabel("Recall")
    plt.ylabel("Precision")
    plt.xlim([0.0, 1.05])
    plt.ylim([0.0, 1.05])
    plt.title(title)
    plt.savefig(os.path.join(out_image_dir, f"pr_{name}.png"))
    plt.clf()
  for has_ans, name in [(True, "hasAns"), (False, "noAns")]:
    values = [na_probs[k] for k, v in qid_to_has_ans.items() if v == has_ans and k in na_probs]
    if values:
      plt.hist(values, weights=[1.0 / len(values)] * len(values), bins=20, range=(0.0, 1.0))
      plt.xlabel("Model probability of no-answer")
      plt.ylabel("Proportion of dataset")
      plt.title(f"Histogram of no-answer probability: {name}")
      plt.savefig(os.path.join(out_image_dir, f"na_prob_hist_{name}.png"))
      plt.clf()


def evaluate(dataset: List[dict], preds: Dict[str, str],
             na_probs: Optional[Dict[str, float]] = None, na_prob_thresh: float = 1.0,
             out_image_dir: Optional[str] = None) -> "collections.OrderedDict":
  """Official SQuAD 2.0 metrics.

  Args:
    dataset: the `data` list of a SQuAD JSON file.
    preds: {question id: predicted text} ("" = no answer).
    na_probs: optional {question id: no-answer score}. None: all 0.0, and the
      `best_*` keys are not reported.
    na_prob_thresh: a question is predicted unanswerable iff its na-prob
      exceeds this.
    out_image_dir: optional directory for the precision-recall analysis
      (needs `na_probs` and matplotlib).

  Returns:
    OrderedDict of the metrics (see module docstring), scores in percent.
  """
  has_na_probs = na_probs is not None
  if na_probs is None:
    na_probs = {k: 0.0 for k in preds}
  qid_to_has_ans = make_qid_to_has_ans(dataset)
  exact_raw, f1_raw = get_raw_scores(dataset, preds)
  exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
  f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
  out_eval = make_eval_dict(exact_thresh, f1_thresh)
  for has_ans, prefix in [(True, "HasAns"), (False, "NoAns")]:
    in_class = [k for k, v in qid_to_has_ans.items() if v == has_ans]
    if in_class:
      # Missing predictions are left out here too (the official script crashes).
      scored = [k for k in in_class if k in exact_thresh]
      if scored:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, scored), prefix)
  if has_na_probs:
    find_all_best_thresh(out_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
    if out_image_dir:
      _run_precision_recall_analysis(out_eval, exact_raw, f1_raw, na_probs, qid_to_has_ans,
                                     out_image_dir)
  return out_eval


def load_squad_data(data_file: str) -> dict:
  """Reads a SQuAD JSON file (the whole object, with `data` and `version`).

  Raises:
    FileNotFoundError: if the file does not exist.
    ValueError: if it is not a SQuAD JSON object with a `data` list.
  """
  if not os.path.exists(data_file):
    raise FileNotFoundError(f"SQuAD data file {data_file} does not exist.")
  with open(data_file, encoding="utf-8") as f:
    dataset_json = json.load(f)
  if not isinstance(dataset_json, dict) or not isinstance(dataset_json.get("data"), list):
    raise ValueError(f"{data_file} is not a SQuAD file: expected a JSON object with a "
                     "'data' list of articles.")
  return dataset_json


def load_json_dict(path: str, what: str) -> dict:
  """Reads a JSON object file (predictions or na-probs), with a clear error if it is not one."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} file {path} does not exist.")
  with open(path, encoding="utf-8") as f:
    obj = json.load(f)
  if not isinstance(obj, dict):
    raise ValueError(f"{what} file {path} must hold a JSON object {{question id: value}}.")
  return obj


def evaluate_files(data_file: str, pred_file: str, na_prob_file: Optional[str] = None,
                   na_prob_thresh: float = 1.0, out_file: Optional[str] = None,
                   out_image_dir: Optional[str] = None) -> "collections.OrderedDict":
  """`evaluate` on files; writes the metrics as JSON to `out_file` if given.

  Args:
    data_file: SQuAD 2.0 JSON data file.
    pred_file: JSON {question id: predicted text}.
    na_prob_file: optional JSON {question id: no-answer score}.
    na_prob_thresh: no-answer threshold (the scorer passes `qa_na_threshold`).
    out_file: optional path of the metrics JSON (written atomically).
    out_image_dir: optional precision-recall analysis directory.

  Returns:
    The metrics (see `evaluate`).
  """
  dataset = load_squad_data(data_file)["data"]
  preds = load_json_dict(pred_file, "Prediction")
  na_probs = load_json_dict(na_prob_file, "No-answer probability") if na_prob_file else None
  out_eval = evaluate(dataset, preds, na_probs, na_prob_thresh, out_image_dir)
  if out_file:
    with files.atomic_write(out_file) as f:
      json.dump(out_eval, f)
  return out_eval


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python3 -m finetune.qa.squad_official_eval",
      description="Official evaluation script for SQuAD version 2.0.")
  parser.add_argument("data_file", metavar="data.json", help="Input data JSON file.")
  parser.add_argument("pred_file", metavar="pred.json", help="Model predictions.")
  parser.add_argument("--out-file", "-o", metavar="eval.json",
                      help="Write accuracy metrics to file (default is stdout).")
  parser.add_argument("--na-prob-file", "-n", metavar="na_prob.json",
                      help="Model estimates of probability of no answer.")
  parser.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                      help='Predict "" if no-answer probability exceeds this (default = 1.0).')
  parser.add_argument("--out-image-dir", "-p", metavar="out_images", default=None,
                      help="Save precision-recall curves to directory (needs matplotlib).")
  parser.add_argument("--verbose", "-v", action="store_true")
  if not argv:
    parser.print_help()
    sys.exit(1)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: prints the metrics as one JSON object (and writes `--out-file` if given)."""
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  logs.setup_logging()  # messages such as "Missing prediction" go to stderr
  out_eval = evaluate_files(args.data_file, args.pred_file, args.na_prob_file,
                            args.na_prob_thresh, args.out_file,
                            args.out_image_dir if args.na_prob_file else None)
  print(json.dumps(out_eval, indent=2))


if __name__ == "__main__":
  main()
