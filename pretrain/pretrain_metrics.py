"""Pre-training eval metrics, streamed over batches on the host (see
docs/metrics.md#pre-training-evaluation).

The original computed these with TF1 streaming metrics (`tf.metrics.*`); here
each batch's small tensors (`metric_tensors`) come back to the host and
`PretrainingMetrics` accumulates sums in numpy, with the same names and
definitions: weighted accuracies and means, and `disc_auc` as TF1
`metrics.auc` (200 thresholds, trapezoidal ROC). Letters: B batch, S sequence
length, P predictions per sequence.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

# Keys of a PretrainingOutput the metrics read (all leading-batch, small).
METRIC_TENSOR_KEYS = (
    "masked_lm_ids", "masked_lm_weights", "mlm_preds", "mlm_per_example_loss",
    "sampled_ids", "disc_per_example_loss", "disc_probs", "disc_preds", "disc_labels",
    "input_mask")

_AUC_NUM_THRESHOLDS = 200
_AUC_THRESHOLD_EPSILON = 1e-7  # TF1 metrics_impl `_EPSILON`: end thresholds -eps, 1+eps.
_AUC_EPSILON = 1e-6  # TF1 `auc`'s epsilon in the rates.


def metric_tensors(outputs: Any) -> Dict[str, Any]:
  """The tensors of a `PretrainingOutput` the metrics need (None fields dropped).

  Return this from a `tf.function` eval step instead of the whole output, so
  the [B, P, V] logits never leave the device.
  """
  fields = outputs._asdict()
  return {key: fields[key] for key in METRIC_TENSOR_KEYS if fields.get(key) is not None}


def auc_thresholds(num_thresholds: int = _AUC_NUM_THRESHOLDS) -> np.ndarray:
  """TF1 `metrics.auc` thresholds, float32 [num_thresholds]: -eps, i/(n-1) (i=1..n-2), 1+eps."""
  inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
  return np.array([0.0 - _AUC_THRESHOLD_EPSILON] + inner + [1.0 + _AUC_THRESHOLD_EPSILON],
                  dtype=np.float32)


def auc_from_counts(tp: np.ndarray, fn: np.ndarray, tn: np.ndarray, fp: np.ndarray) -> float:
  """ROC AUC from per-threshold confusion counts, trapezoidal as TF1 `metrics.auc`."""
  tpr = (tp + _AUC_EPSILON) / (tp + fn + _AUC_EPSILON)
  fpr = fp / (fp + tn + _AUC_EPSILON)
  return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))


class PretrainingMetrics:
  """Streams the metrics of docs/metrics.md#pre-training-evaluation over eval batches.

  `masked_lm_accuracy` and `masked_lm_loss` always; with an ELECTRA/Electric
  objective also `sampled_masked_lm_accuracy`, and if `disc_weight > 0` the
  `disc_*` metrics. An empty denominator gives 0.0, like TF1's safe division.

  Args:
    config: a `PretrainingConfig` (reads electra_objective,
      electric_objective, disc_weight).

  Example:
    >>> metrics = PretrainingMetrics(config)
    >>> for batch in eval_batches:
    ...   metrics.update(eval_step(batch))   # eval_step returns metric_tensors(...)
    >>> metrics.result()["disc_auc"]
  """

  def __init__(self, config: Any):
    self.has_sampling = bool(config.electra_objective or config.electric_objective)
    self.has_disc_metrics = self.has_sampling and config.disc_weight > 0
    self._thresholds = auc_thresholds()
    self._sums: Dict[str, float] = {}
    self._confusion = np.zeros([4, _AUC_NUM_THRESHOLDS], np.float64)  # tp, fn, tn, fp

  def _add(self, name: str, values: np.ndarray, weights: np.ndarray) -> None:
    """Accumulates Σ w·v and Σ w for a weighted mean."""
    num, den = self._sums.get(name, (0.0, 0.0))
    values = np.asarray(values, np.float64)
    weights = np.broadcast_to(np.asarray(weights, np.float64), values.shape)
    self._sums[name] = (num + float(np.sum(values * weights)), den + float(np.sum(weights)))

  def update(self, tensors: Mapping[str, Any]) -> None:
    """Adds one batch.

    Args:
      tensors: `metric_tensors(outputs)` as numpy arrays or eager tensors.

    Raises:
      ValueError: a tensor the enabled metrics need is missing.
    """
    t = {key: np.asarray(value) for key, value in tensors.items()}
    needed = ["masked_lm_ids", "masked_lm_weights", "mlm_preds", "mlm_per_example_loss"]
    if self.has_sampling:
      needed.append("sampled_ids")
    if self.has_disc_metrics:
      needed += ["disc_per_example_loss", "disc_probs", "disc_preds", "disc_labels",
                 "input_mask"]
    missing = [key for key in needed if key not in t]
    if missing:
      raise ValueError(f"PretrainingMetrics.update is missing {missing}; pass "
                       "metric_tensors(outputs) of a PretrainingOutput.")
    ids, weights = t["masked_lm_ids"], t["masked_lm_weights"]
    self._add("masked_lm_accuracy", t["mlm_preds"] == ids, weights)
    self._add("masked_lm_loss", t["mlm_per_example_loss"], weights)
    if self.has_sampling:
      self._add("sampled_masked_lm_accuracy", t["sampled_ids"] == ids, weights)
    if self.has_disc_metrics:
      self._update_disc(t)

  def _update_disc(self, t: Dict[str, np.ndarray]) -> None:
    """Adds the discriminator metrics of one batch."""
    mask = t["input_mask"].astype(np.float64)
    labels, preds = t["disc_labels"], t["disc_preds"]
    self._add("disc_loss", t["disc_per_example_loss"], 1.0)
    correct = preds == labels
    self._add("disc_accuracy", correct, mask)
    self._add("disc_precision", correct, preds * mask)
    self._add("disc_recall", correct, labels * mask)
    # Padding enters the AUC as label 0 with score 0 (docs/metrics.md#pre-training-evaluation,
    # Quirks).
    auc_labels = (labels * mask).reshape(-1).astype(bool)
    auc_scores = (t["disc_probs"] * mask).reshape(-1).astype(np.float32)
    above = auc_scores[None, :] > self._thresholds[:, None]  # [thresholds, B·S]
    self._confusion += np.stack([
        np.sum(above & auc_labels, axis=1), np.sum(~above & auc_labels, axis=1),
        np.sum(~above & ~auc_labels, axis=1), np.sum(above & ~auc_labels, axis=1)])

  def result(self) -> Dict[str, float]:
    """The metrics so far, {name: float}, in the original's names."""
    results = {name: (num / den if den else 0.0) for name, (num, den) in self._sums.items()}
    if self.has_disc_metrics and "disc_loss" in self._sums:
      results["disc_auc"] = auc_from_counts(*self._confusion)
    return dict(sorted(results.items()))
