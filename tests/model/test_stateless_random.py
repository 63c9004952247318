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


@pytest.mark.parametrize("draw", ["fold_in", "bits", "keyed_bits", "derive", "uniform",
                                  "categorical", "dropout"])
def test_xla_draws_the_same_numbers_as_eager(draw):
  logits = tf.math.log(tf.constant([[0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4]]))  # one -inf
  fns = {
      "fold_in": lambda s: stateless_random.fold_in(stateless_random.fold_in(s, 3), 4),
      "bits": lambda s: stateless_random.random_bits([4, 33], _graph_seed(s)),
      "keyed_bits": lambda s: stateless_random.keyed_bits([4, 33], _graph_seed(s)),
      "derive": lambda s: stateless_random.derive(_graph_seed(s), 3, 4),
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


# Philox4x32-10 (Salmon et al., SC 2011), written from the paper's definition.
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _philox_block(key, counter):
  """Four uint32 outputs of one block; key = 2 uint32 words, counter = 4."""
  (k0, k1), c = key, list(counter)
  mask = 0xFFFFFFFF
  for _ in range(10):
    p0, p1 = _PHILOX_M[0] * c[0], _PHILOX_M[1] * c[2]
    c = [(p1 >> 32) ^ c[1] ^ k0, p1 & mask, (p0 >> 32) ^ c[3] ^ k1, p0 & mask]
    k0, k1 = (k0 + _PHILOX_W[0]) & mask, (k1 + _PHILOX_W[1]) & mask
  return c


def _reference_keyed_bits(n, seed):
  """Philox(key = seed[0], counter = (i, seed[1])) for blocks i = 0, 1, ..., as uint64 words."""
  key, high = (int(w) & 0xFFFFFFFFFFFFFFFF for w in seed)
  out = []
  for i in range((n + 3) // 4):
    out += _philox_block((key & 0xFFFFFFFF, key >> 32),
                         (i & 0xFFFFFFFF, i >> 32, high & 0xFFFFFFFF, high >> 32))
  return np.array(out[:n], np.uint32)


@pytest.mark.parametrize("seed", [[11, 13], [-5, 2 ** 40 + 7]])
def test_keyed_bits_are_philox_keyed_by_the_seed(seed):
  seed = tf.constant(seed, tf.int64)
  np.testing.assert_array_equal(stateless_random.keyed_bits([3, 5], seed).numpy().ravel(),
                                _reference_keyed_bits(15, seed.numpy()))
  # int32 seeds are sign-extended to the same words.
  np.testing.assert_array_equal(stateless_random.keyed_bits([7], tf.constant([11, -13])),
                                _reference_keyed_bits(7, [11, -13]))


def test_derive_is_one_philox_block_under_a_separate_key():
  seed = np.array([7, 11], np.int64)
  block = _philox_block(((7 ^ 0x7F4A7C15) & 0xFFFFFFFF, 0x9E3779B9), (3, 0, 11, 0))
  np.testing.assert_array_equal(stateless_random.derive(tf.constant(seed), 3), block[:2])
  chained = stateless_random.derive(tf.constant(seed), 3, 4)
  np.testing.assert_array_equal(chained, stateless_random.derive(
      stateless_random.derive(tf.constant(seed), 3), 4))
  others = [stateless_random.derive(tf.constant(seed), *keys).numpy()
            for keys in [(4, 3), (3,), (4,), (3, 5)]] + [seed]
  assert all(not np.array_equal(chained, other) for other in others)
  assert stateless_random.derive(None, 3) is None


def test_keyed_bits_are_uniform_and_seeds_independent():
  bits = np.concatenate([stateless_random.keyed_bits([4096], stateless_random.derive(
      tf.constant([1, 2]), k)).numpy() for k in range(8)])
  counts = np.bincount(bits >> 28, minlength=16)  # top 4 bits: 16 equally likely cells
  assert stats.chisquare(counts).pvalue > 1e-3
  a, b = (stateless_random.keyed_bits([4096], stateless_random.derive(tf.constant([1, 2]), k))
          .numpy().astype(np.float64) for k in (0, 1))
  assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
