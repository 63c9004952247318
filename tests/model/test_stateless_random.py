"""model/stateless_random.py: TF-identical eager draws, the same draws under XLA."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from model import modeling, stateless_random

# A seed computed in the graph (not a constant XLA could fold on the host).
_SEED_KEY = 17


def _graph_seed(seed):
  return stateless_random.fold_in(tf.cast(seed, tf.int64), _SEED_KEY)


def test_uniform_equals_tensorflows_stateless_uniform_bitwise():
  for shape in ([7], [3, 5], [2, 3, 1001]):
    seed = _graph_seed(tf.constant([3, 4]))
    np.testing.assert_array_equal(stateless_random.uniform(shape, seed),
                                  tf.random.stateless_uniform(shape, seed))


def test_fold_in_keeps_tensorflows_eager_values():
  for seed in (tf.constant([5, 17]), tf.constant([1, 0], tf.int64)):
    for key in (0, 3, tf.constant(12345, tf.int64)):
      key = tf.cast(key, seed.dtype)
      np.testing.assert_array_equal(stateless_random.fold_in(seed, key),
                                    tf.random.experimental.stateless_fold_in(seed, key))


@pytest.mark.parametrize("draw", ["fold_in", "bits", "uniform", "categorical", "dropout"])
def test_xla_draws_the_same_numbers_as_eager(draw):
  logits = tf.math.log(tf.constant([[0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4]]))  # one -inf
  fns = {
      "fold_in": lambda s: stateless_random.fold_in(stateless_random.fold_in(s, 3), 4),
      "bits": lambda s: stateless_random.random_bits([4, 33], _graph_seed(s)),
      "uniform": lambda s: stateless_random.uniform([4, 33], _graph_seed(s)),
      "categorical": lambda s: stateless_random.categorical(logits, 50, _graph_seed(s)),
      "dropout": lambda s: modeling.dropout(tf.ones([5, 9]), 0.3, True, _graph_seed(s)),
  }
  fn = fns[draw]
  for seed in ([1, 2], [99, 5]):
    seed = tf.constant(seed)
    eager = fn(seed).numpy()
    np.testing.assert_array_equal(tf.function(fn, jit_compile=True)(seed).numpy(), eager)
    np.testing.assert_array_equal(tf.function(fn)(seed).numpy(), eager)
  assert not np.array_equal(fn(tf.constant([1, 2])).numpy(), fn(tf.constant([1, 3])).numpy())


def test_categorical_follows_the_softmax_and_never_draws_minus_infinity():
  probs = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
  with np.errstate(divide="ignore"):
    logits = tf.constant(np.tile(np.log(probs), [4, 1]), tf.float32)
  draws = stateless_random.categorical(logits, 5000, tf.constant([7, 8])).numpy()
  assert draws.shape == (4, 5000) and draws.dtype == np.int32
  counts = np.bincount(draws.ravel(), minlength=5)
  assert counts[4] == 0
  _, p_value = stats.chisquare(counts[:4], probs[:4] * draws.size)
  assert p_value > 1e-3


def test_sub_seed_folds_keys_in_order_and_keeps_none():
  seed = tf.constant([7, 11], tf.int64)
  expected = stateless_random.fold_in(stateless_random.fold_in(seed, 3), 4)
  np.testing.assert_array_equal(stateless_random.sub_seed(seed, 3, 4), expected)
  assert not np.array_equal(stateless_random.sub_seed(seed, 4, 3), expected)
  np.testing.assert_array_equal(stateless_random.sub_seed(seed), seed)
  assert stateless_random.sub_seed(None, 3) is None
