"""Scorers of the GLUE-style classification and regression tasks
(docs/metrics.md#glue-classification-and-regression).

Every scorer sees each non-padding example's head outputs (numpy values,
un-prefixed keys) once and reports, in this order:
  accuracy scorer:   `accuracy` (100·correct/count), `loss`
  MCC scorer:        `mcc` (100·Matthews correlation, scikit-learn), `loss`
  regression scorer: `pearson`, `spearman` (100·r, SciPy), `mse` (normalized
                     0–1 scale), `loss`
  F1 scorer:         `precision`, `recall`, `f1` (100·, positive class id 1), `loss`
`loss` is the mean per-example loss.

The sub-modules `sklearn.metrics` and `scipy.stats` are imported explicitly
(the original imported only the top-level packages, which works only when
something else has imported the sub-modules; docs/finetuning.md#quirks-and-fixes).
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import scipy.stats
import sklearn.metrics

from finetune import scorer


class SentenceLevelScorer(scorer.LossAccumulatingScorer):
  """Collects one true value and one prediction per example.

  The true value is `label_ids` (classification) or `targets` (regression).
  """

  def __init__(self):
    super().__init__()
    self._true_labels: List[Any] = []
    self._preds: List[Any] = []

  def update(self, results: Dict[str, Any]) -> None:
    super().update(results)
    true = results["label_ids"] if "label_ids" in results else results["targets"]
    self._true_labels.append(np.asarray(true).item())
    self._preds.append(np.asarray(results["predictions"]).item())


class AccuracyScorer(SentenceLevelScorer):
  """`accuracy` = 100 · fraction of examples whose predicted class is the label."""

  def _get_results(self) -> scorer.Results:
    correct = sum(int(y == p) for y, p in zip(self._true_labels, self._preds))
    return [("accuracy", 100.0 * correct / len(self._preds)), ("loss", self.get_loss())]


class MCCScorer(SentenceLevelScorer):
  """`mcc` = 100 · Matthews correlation coefficient (CoLA's metric)."""

  def _get_results(self) -> scorer.Results:
    mcc = sklearn.metrics.matthews_corrcoef(self._true_labels, self._preds)
    return [("mcc", 100.0 * float(mcc)), ("loss", self.get_loss())]


class F1Scorer(SentenceLevelScorer):
  """Binary precision / recall / F1 with class id 1 as the positive class.

  Not used by any GLUE task (as in the original); available to custom tasks
  (`"metric": "f1"`). Unlike the original's unused class, the number of gold
  positives is counted from the gold labels (docs/finetuning.md#quirks-and-fixes).
  """

  def _get_results(self) -> scorer.Results:
    n_correct = n_predicted = n_gold = 0
    for y, p in zip(self._true_labels, self._preds):
      n_correct += int(y == 1 and p == 1)
      n_predicted += int(p == 1)
      n_gold += int(y == 1)
    if n_correct == 0:
      precision = recall = f1 = 0.0
    else:
      precision = 100.0 * n_correct / n_predicted
      recall = 100.0 * n_correct / n_gold
      f1 = 2 * precision * recall / (precision + recall)
    return [("precision", precision), ("recall", recall), ("f1", f1),
            ("loss", self.get_loss())]


class RegressionScorer(SentenceLevelScorer):
  """`pearson`, `spearman` (×100), `mse` of predictions vs normalized targets."""

  def _get_results(self) -> scorer.Results:
    preds = np.asarray(self._preds, dtype=np.float64)
    targets = np.asarray(self._true_labels, dtype=np.float64)
    pearson = float(scipy.stats.pearsonr(preds, targets)[0])
    spearman = float(scipy.stats.spearmanr(preds, targets)[0])
    mse = float(np.mean(np.square(preds - targets)))
    return [("pearson", 100.0 * pearson), ("spearman", 100.0 * spearman), ("mse", mse),
            ("loss", self.get_loss())]


CLASSIFICATION_SCORERS = {
    "accuracy": AccuracyScorer,
    "mcc": MCCScorer,
    "f1": F1Scorer,
}
