"""The Scorer base class of finetune/scorer.py: caching, prefixes, formatting, loss mean."""
import numpy as np

from finetune import scorer as scorer_lib


class CountingScorer(scorer_lib.LossAccumulatingScorer):
  """Reports the number of examples; counts how often results are computed."""

  def __init__(self):
    super().__init__()
    self.n_computed = 0

  def _get_results(self):
    self.n_computed += 1
    return [("count", float(self._n_examples)), ("loss", self.get_loss())]


def test_results_are_cached_until_the_next_update():
  scorer = CountingScorer()
  assert scorer.get_results() == []  # Nothing before the first update (as the original).
  assert scorer.get_loss() == 0.0
  scorer.update({"loss": np.float32(1.0)})
  scorer.update({"loss": np.float32(2.0)})
  assert scorer.get_results("dev_") == [("dev_count", 2.0), ("dev_loss", 1.5)]
  assert scorer.get_results() == [("count", 2.0), ("loss", 1.5)]
  assert scorer.n_computed == 1
  scorer.update({"loss": np.float32(6.0)})
  assert scorer.get_results() == [("count", 3.0), ("loss", 3.0)]
  assert scorer.n_computed == 2


def test_results_str_format():
  assert scorer_lib.results_to_str([("accuracy", 88.8), ("loss", 0.3456)]) == (
      "accuracy: 88.80 - loss: 0.35")
  scorer = CountingScorer()
  scorer.update({"loss": 0.125})
  assert scorer.results_str() == "count: 1.00 - loss: 0.12"
