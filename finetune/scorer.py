"""Base classes for the metrics computed from a task head's outputs.

See docs/finetuning.md#task-interface. `update(results)` is called once per (non-padding)
example with that task's outputs as numpy values (un-prefixed keys);
`get_results(prefix)` returns an ordered list of (metric, value) pairs and
caches it until the next update; `results_str()` formats them like the
original's results file ("accuracy: 88.80 - loss: 0.35").
"""
from __future__ import annotations

import abc
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

Results = List[Tuple[str, float]]


def results_to_str(results: Sequence[Tuple[str, Any]]) -> str:
  """Formats [(metric, value)] as "metric: value - ..." with 2 decimals."""
  return " - ".join(f"{key}: {value:.2f}" for key, value in results)


class Scorer(metaclass=abc.ABCMeta):
  """Accumulates per-example outputs and computes a task's metrics."""

  def __init__(self):
    self._updated = False
    self._cached_results: Results = []

  def update(self, results: Dict[str, Any]) -> None:
    """Adds one example's outputs (numpy values, un-prefixed keys)."""
    del results
    self._updated = True

  @abc.abstractmethod
  def get_loss(self) -> float:
    """Mean per-example loss over the examples seen so far."""

  @abc.abstractmethod
  def _get_results(self) -> Results:
    """The metrics as an ordered list of (name, value)."""

  def get_results(self, prefix: str = "") -> Results:
    """Returns [(prefix + metric, value)], recomputed only after an update.

    Before the first update the result list is empty (as in the original).
    """
    if self._updated:
      self._cached_results = self._get_results()
      self._updated = False
    return [(prefix + key, value) for key, value in self._cached_results]

  def results_str(self) -> str:
    """"k: v - k: v" with values to 2 decimals."""
    return results_to_str(self.get_results())


class LossAccumulatingScorer(Scorer):
  """A scorer that sums each example's `loss` output; `get_loss` is the mean.

  Subclasses call `super().update(results)` and add their own bookkeeping.
  """

  def __init__(self):
    super().__init__()
    self._total_loss = 0.0
    self._n_examples = 0

  def update(self, results: Dict[str, Any]) -> None:
    super().update(results)
    self._total_loss += float(np.asarray(results["loss"]))
    self._n_examples += 1

  def get_loss(self) -> float:
    """Mean per-example loss; 0.0 before any update."""
    return self._total_loss / self._n_examples if self._n_examples else 0.0
