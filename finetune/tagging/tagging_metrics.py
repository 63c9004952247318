"""Scorers of the tagging tasks (docs/metrics.md#chunking-span-f1).

Each sentence's first `round(Σ labels_mask)` labels and predictions are kept.
`EntityLevelF1Scorer` reports span-level `precision`, `recall`, `f1` (percent;
all 0 when nothing is correct) and `loss`; `AccuracyScorer` (token-level
tasks; none is registered) reports `accuracy` and `loss`.

`loss` is per labelled word: Σ example losses / Σ words. Quirk reproduced by
default (docs/finetuning.md#quirks-and-fixes): the original adds every example's loss twice,
so the reported loss is 2× the per-word loss; `fix_double_count=True`
(hparam `fix_tagging_loss_double_count`) reports the true value.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from finetune import scorer
from finetune.tagging import tagging_utils


class WordLevelScorer(scorer.Scorer):
  """Collects per-word labels and predictions of each sentence.

  Args:
    fix_double_count: bool. False (default) reproduces the original's
      doubled loss.
  """

  def __init__(self, fix_double_count: bool = False):
    super().__init__()
    self._loss_count = 1 if fix_double_count else 2
    self._total_loss = 0.0
    self._total_words = 0
    self._labels: List[np.ndarray] = []
    self._preds: List[np.ndarray] = []

  def update(self, results: Dict[str, Any]) -> None:
    super().update(results)
    n_words = int(round(float(np.sum(results["labels_mask"]))))
    self._labels.append(np.asarray(results["labels"])[:n_words])
    self._preds.append(np.asarray(results["predictions"])[:n_words])
    self._total_loss += self._loss_count * float(np.sum(results["loss"]))
    self._total_words += n_words

  def get_loss(self) -> float:
    return self._total_loss / max(1, self._total_words)


class AccuracyScorer(WordLevelScorer):
  """Token-level accuracy; a label equal to `auto_fail_label` never counts as correct."""

  def __init__(self, auto_fail_label: Optional[int] = None, fix_double_count: bool = False):
    super().__init__(fix_double_count)
    self._auto_fail_label = auto_fail_label

  def _get_results(self) -> scorer.Results:
    correct = count = 0
    for labels, preds in zip(self._labels, self._preds):
      for y_true, y_pred in zip(labels, preds):
        count += 1
        correct += int(y_pred == y_true and y_true != self._auto_fail_label)
    return [("accuracy", 100.0 * correct / max(1, count)), ("loss", self.get_loss())]


class EntityLevelF1Scorer(WordLevelScorer):
  """Span-level precision / recall / F1 over (start, end, type) spans.

  Args:
    label_mapping: {tag string: label id}.
    fix_double_count: see `WordLevelScorer`.
  """

  def __init__(self, label_mapping: Dict[str, int], fix_double_count: bool = False):
    super().__init__(fix_double_count)
    self._inv_label_mapping = {v: k for k, v in label_mapping.items()}

  def _get_results(self) -> scorer.Results:
    n_correct = n_predicted = n_gold = 0
    for labels, preds in zip(self._labels, self._preds):
      gold_spans = set(tagging_utils.get_span_labels(labels, self._inv_label_mapping))
      pred_spans = set(tagging_utils.get_span_labels(preds, self._inv_label_mapping))
      n_correct += len(gold_spans & pred_spans)
      n_gold += len(gold_spans)
      n_predicted += len(pred_spans)
    if n_correct == 0:
      p = r = f1 = 0.0
    else:
      p = 100.0 * n_correct / n_predicted
      r = 100.0 * n_correct / n_gold
      f1 = 2 * p * r / (p + r)
    return [("precision", p), ("recall", r), ("f1", f1), ("loss", self.get_loss())]
