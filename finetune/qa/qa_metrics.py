"""QA post-processing and metrics: `SpanBasedQAScorer` (docs/metrics.md#answer-extraction,
docs/metrics.md#squad-20-and-the-no-answer-threshold).

For every example of the scored split the scorer re-featurizes the example
(`for_eval=True`), collects candidate spans from the head's outputs of each
window (joint: the K×K beam; otherwise the top `n_best_size` start and end
logits), drops invalid ones (outside the document, in the question, not the
window's max-context position, end before start, longer than
`max_answer_length`), keeps the `n_best_size` best distinct texts (projected
back to the original text by `get_final_text`) and predicts the best one.
For SQuAD 2.0 it also computes the null odds (the minimum over windows of the
answerable logit, or of start[0] + end[0] minus the best span score without
the answerable classifier).

Files: `qa_preds_file(task)` = {id: text}, `qa_na_file(task)` = {id: null
odds} (SQuAD 2.0), `qa_eval_file(task)` = the metrics. Metrics come from our
official evaluators with the original's keys, sorted by key: SQuAD 2.0
`HasAns_exact` … `total`; SQuAD 1.1 and MRQA `exact_match`, `f1`. No `loss`
is reported for QA (the original neither).

Quirk reproduced (docs/finetuning.md#quirks-and-fixes): SQuAD 2.0 with joint prediction and no
answerable classifier takes `start_logits[0] + 0` as a window's null score
(the joint head returns zero end logits).

Differences from the original:
  * The scorer is built for the split that was predicted (`task.get_scorer(
    split)`); the original always post-processed `dev`, which broke SQuAD
    test-output writing (docs/finetuning.md#quirks-and-fixes).
  * The eval file is written for every QA task (the original: SQuAD 2.0 only).
  * A missing window result raises a ValueError naming the feature id
    (the original: KeyError); an example whose n-best holds only empty texts
    predicts "" (the original crashed).
"""
from __future__ import annotations

import collections
import logging
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from finetune import scorer
from finetune.qa import mrqa_official_eval, squad_official_eval, squad_official_eval_v1
from model import tokenization
from util import files

logger = logging.getLogger("electra")


class RawResult(NamedTuple):
  """The head's outputs for one window (numpy)."""
  unique_id: int                    # 1000 · eid + window index
  start_logits: np.ndarray          # [L]
  end_logits: np.ndarray            # [L] (zeros under joint prediction)
  answerable_logit: float
  start_top_log_probs: np.ndarray   # [K]
  start_top_index: np.ndarray       # [K]
  end_top_log_probs: np.ndarray     # [K, K]
  end_top_index: np.ndarray         # [K, K]


class PrelimPrediction(NamedTuple):
  feature_index: int
  start_index: int
  end_index: int
  start_logit: float
  end_logit: float


class NbestPrediction(NamedTuple):
  text: str
  start_logit: float
  end_logit: float


class QAPredictions(NamedTuple):
  """Post-processing output, keyed by question id (SQuAD `id` / MRQA `qid`)."""
  predictions: Dict[str, str]
  null_odds: Dict[str, float]          # SQuAD 2.0 only (empty otherwise)
  nbest: Dict[str, List[Dict[str, Any]]]  # text, probability, start_logit, end_logit


def get_best_indexes(logits: Sequence[float], n_best_size: int) -> List[int]:
  """Indexes of the `n_best_size` largest logits, largest first (ties: lower index first)."""
  order = np.argsort(-np.asarray(logits, dtype=np.float64), kind="stable")
  return [int(i) for i in order[:n_best_size]]


def compute_softmax(scores: Sequence[float]) -> List[float]:
  """Softmax of Python floats ([] for no scores)."""
  if not scores:
    return []
  max_score = max(scores)
  exp_scores = [np.exp(s - max_score) for s in scores]
  total = sum(exp_scores)
  return [float(e / total) for e in exp_scores]


def _strip_spaces(text: str) -> Tuple[str, Dict[int, int]]:
  """`text` without " " and the map from stripped index to original index."""
  ns_chars = []
  ns_to_s_map = {}
  for i, c in enumerate(text):
    if c == " ":
      continue
    ns_to_s_map[len(ns_chars)] = i
    ns_chars.append(c)
  return "".join(ns_chars), ns_to_s_map


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool = True,
                   basic_tokenizer: Optional[tokenization.BasicTokenizer] = None,
                   verbose: bool = False) -> str:
  """Projects a detokenized WordPiece prediction back onto the original words.

  E.g. pred_text "steve smith" (lower-cased word pieces) and orig_text "Steve
  Smith's" give "Steve Smith". Basic-tokenizes `orig_text`, finds
  `pred_text` in it and maps its characters back through space-free
  alignments; whenever that is impossible returns `orig_text` unchanged.

  Args:
    pred_text: the prediction's word pieces joined, "##" removed.
    orig_text: the original words the prediction spans, joined with " ".
    do_lower_case: the task's `do_lower_case` (accents are stripped only when
      lower-casing).
    basic_tokenizer: optional prebuilt `BasicTokenizer(do_lower_case)` (speed).
    verbose: log why a projection failed (the original did in debug mode).

  Returns:
    The substring of `orig_text` matching `pred_text`, or `orig_text`.
  """
  if basic_tokenizer is None:
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tok_text = " ".join(basic_tokenizer.tokenize(orig_text))
  start_position = tok_text.find(pred_text)
  if start_position == -1:
    if verbose:
      logger.info("Unable to find text: '%s' in '%s'", pred_text, orig_text)
    return orig_text
  end_position = start_position + len(pred_text) - 1

  orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
  tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
  if len(orig_ns_text) != len(tok_ns_text):
    if verbose:
      logger.info("Length not equal after stripping spaces: '%s' vs '%s'", orig_ns_text,
                  tok_ns_text)
    return orig_text
  tok_s_to_ns_map = {tok_index: i for i, tok_index in tok_ns_to_s_map.items()}

  def to_orig(position: int) -> Optional[int]:
    ns_position = tok_s_to_ns_map.get(position)
    return None if ns_position is None else orig_ns_to_s_map.get(ns_position)

  orig_start_position = to_orig(start_position)
  orig_end_position = to_orig(end_position)
  if orig_start_position is None or orig_end_position is None:
    if verbose:
      logger.info("Couldn't map %s position", "start" if orig_start_position is None else "end")
    return orig_text
  return orig_text[orig_start_position:orig_end_position + 1]


class SpanBasedQAScorer(scorer.Scorer):
  """Post-processes span predictions of one split and scores them officially.

  Args:
    config: the `FinetuningConfig` (n_best_size, max_answer_length,
      joint_prediction, answerable_classifier, do_lower_case, debug,
      qa_na_threshold, qa_preds_file/qa_na_file/qa_eval_file).
    task: the `QATask` (get_examples, featurize(for_eval=True),
      get_data_file, data_format).
    split: str. The split whose predictions are scored.
    v2: bool. SQuAD 2.0 semantics.
  """

  def __init__(self, config, task, split: str, v2: bool):
    super().__init__()
    self._config = config
    self._task = task
    self._name = task.name
    self._split = split
    self._v2 = v2
    self._all_results: List[RawResult] = []
    self._total_loss = 0.0
    self._basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=config.do_lower_case)

  @property
  def split(self) -> str:
    return self._split

  def update(self, results: Dict[str, Any]) -> None:
    super().update(results)
    self._all_results.append(RawResult(
        unique_id=int(results["eid"]),
        start_logits=np.asarray(results["start_logits"]),
        end_logits=np.asarray(results["end_logits"]),
        answerable_logit=float(results["answerable_logit"]),
        start_top_log_probs=np.asarray(results["start_top_log_probs"]),
        start_top_index=np.asarray(results["start_top_index"]),
        end_top_log_probs=np.asarray(results["end_top_log_probs"]),
        end_top_index=np.asarray(results["end_top_index"])))
    self._total_loss += float(results["loss"])

  def get_loss(self) -> float:
    return self._total_loss / len(self._all_results) if self._all_results else 0.0

  def _get_results(self) -> scorer.Results:
    self.write_predictions()
    config = self._config
    data_file = self._task.get_data_file(self._split)
    preds_file = config.qa_preds_file(self._name)
    eval_file = config.qa_eval_file(self._name)
    if self._v2:
      metrics = squad_official_eval.evaluate_files(
          data_file, preds_file, na_prob_file=config.qa_na_file(self._name),
          na_prob_thresh=config.qa_na_threshold, out_file=eval_file)
    else:
      if self._task.data_format == "squad":
        metrics = squad_official_eval_v1.evaluate_files(data_file, preds_file)
      else:
        metrics = mrqa_official_eval.evaluate_files(data_file, preds_file)
      files.write_json(metrics, eval_file)
    return sorted(metrics.items())

  def write_predictions(self) -> QAPredictions:
    """Post-processes every example of the split and writes the preds (and null-odds) file."""
    unique_id_to_result = {result.unique_id: result for result in self._all_results}
    predictions: Dict[str, str] = collections.OrderedDict()
    null_odds: Dict[str, float] = collections.OrderedDict()
    all_nbest: Dict[str, List[Dict[str, Any]]] = collections.OrderedDict()
    for example in self._task.get_examples(self._split):
      example_id = example.qas_id if self._task.data_format == "squad" else example.qid
      features = self._task.featurize(example, False, for_eval=True)
      prelim, score_null = self._prelim_predictions(example, features, unique_id_to_result)
      nbest = self._nbest(example, features, prelim)
      probs = compute_softmax([e.start_logit + e.end_logit for e in nbest])
      all_nbest[example_id] = [
          {"text": e.text, "probability": p, "start_logit": float(e.start_logit),
           "end_logit": float(e.end_logit)} for e, p in zip(nbest, probs)]
      if not self._v2:
        predictions[example_id] = nbest[0].text
        continue
      best_non_null = next((e for e in nbest if e.text), NbestPrediction("", 0.0, 0.0))
      if self._config.answerable_classifier:
        null_odds[example_id] = float(score_null)
      else:
        null_odds[example_id] = float(
            score_null - best_non_null.start_logit - best_non_null.end_logit)
      predictions[example_id] = best_non_null.text
    files.write_json(dict(predictions), self._config.qa_preds_file(self._name))
    if self._v2:
      files.write_json(dict(null_odds), self._config.qa_na_file(self._name))
    return QAPredictions(predictions, null_odds, all_nbest)

  def _result_for(self, feature: Dict[str, Any], example,
                  unique_id_to_result: Dict[int, RawResult]) -> RawResult:
    unique_id = feature[self._name + "_eid"]
    if unique_id not in unique_id_to_result:
      raise ValueError(
          f"Task {self._name}: no prediction for feature id {unique_id} ({example!r}) of "
          f"split {self._split!r} ({len(unique_id_to_result)} results received). The "
          "predictions must come from the featurized examples of the same split.")
    return unique_id_to_result[unique_id]

  def _prelim_predictions(self, example, features: List[Dict[str, Any]],
                          unique_id_to_result: Dict[int, RawResult]
                          ) -> Tuple[List[PrelimPrediction], float]:
    """Valid candidate spans over all windows, sorted by score, and the null score."""
    config, name = self._config, self._name
    prelim: List[PrelimPrediction] = []
    score_null = 1000000.0  # large and positive; the minimum over windows is kept
    for feature_index, feature in enumerate(features):
      result = self._result_for(feature, example, unique_id_to_result)
      if self._v2:
        feature_null_score = (result.answerable_logit if config.answerable_classifier
                              else result.start_logits[0] + result.end_logits[0])
        score_null = min(score_null, float(feature_null_score))
      if config.joint_prediction:
        pairs = [(i, j, int(s), int(e)) for i, s in enumerate(result.start_top_index)
                 for j, e in enumerate(result.end_top_index[i])]
      else:
        starts = get_best_indexes(result.start_logits, config.n_best_size)
        ends = get_best_indexes(result.end_logits, config.n_best_size)
        pairs = [(i, j, s, e) for i, s in enumerate(starts) for j, e in enumerate(ends)]
      n_tokens = len(feature[name + "_tokens"])
      token_to_orig_map = feature[name + "_token_to_orig_map"]
      is_max_context = feature[name + "_token_is_max_context"]
      for i, j, start_index, end_index in pairs:
        if (start_index >= n_tokens or end_index >= n_tokens or start_index == 0
            or start_index not in token_to_orig_map or end_index not in token_to_orig_map
            or not is_max_context.get(start_index, False) or end_index < start_index
            or end_index - start_index + 1 > config.max_answer_length):
          continue
        if config.joint_prediction:
          start_logit = result.start_top_log_probs[i]
          end_logit = result.end_top_log_probs[i, j]
        else:
          start_logit = result.start_logits[start_index]
          end_logit = result.end_logits[end_index]
        prelim.append(PrelimPrediction(feature_index, start_index, end_index,
                                       float(start_logit), float(end_logit)))
    if self._v2 and not prelim and config.debug and features:
      # Debug runs of an untrained model: a dummy span so that something is predicted.
      doc_positions = sorted(features[0][name + "_token_to_orig_map"])
      if doc_positions:
        end = doc_positions[1] if len(doc_positions) > 1 else doc_positions[0]
        prelim.append(PrelimPrediction(0, doc_positions[0], end, 1.0, 1.0))
    prelim.sort(key=lambda x: x.start_logit + x.end_logit, reverse=True)
    return prelim, score_null

  def _nbest(self, example, features: List[Dict[str, Any]],
             prelim: List[PrelimPrediction]) -> List[NbestPrediction]:
    """Up to `n_best_size` candidates with distinct final texts (at least one entry)."""
    name = self._name
    seen = set()
    nbest: List[NbestPrediction] = []
    for pred in prelim:
      if len(nbest) >= self._config.n_best_size:
        break
      feature = features[pred.feature_index]
      tok_tokens = feature[name + "_tokens"][pred.start_index:pred.end_index + 1]
      orig_doc_start = feature[name + "_token_to_orig_map"][pred.start_index]
      orig_doc_end = feature[name + "_token_to_orig_map"][pred.end_index]
      orig_text = " ".join(example.doc_tokens[orig_doc_start:orig_doc_end + 1])
      # De-tokenize WordPieces that have been split off, clean whitespace.
      tok_text = " ".join(tok_tokens).replace(" ##", "").replace("##", "")
      tok_text = " ".join(tok_text.strip().split())
      final_text = get_final_text(tok_text, orig_text, self._config.do_lower_case,
                                  self._basic_tokenizer, verbose=self._config.debug)
      if final_text in seen:
        continue
      seen.add(final_text)
      nbest.append(NbestPrediction(final_text, pred.start_logit, pred.end_logit))
    if not nbest:  # Very rare: no valid span at all.
      nbest.append(NbestPrediction("empty", 0.0, 0.0))
    return nbest


def apply_na_threshold(qa_predictions: QAPredictions, threshold: float) -> Dict[str, str]:
  """SQuAD 2.0 final answers: "" where the null odds exceed `threshold`
  (docs/finetuning.md#test-set-outputs)."""
  return {qid: ("" if qa_predictions.null_odds.get(qid, -np.inf) > threshold else text)
          for qid, text in qa_predictions.predictions.items()}
