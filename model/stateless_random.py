"""Stateless random draws that are the same with and without XLA.

TensorFlow's stateless float and categorical ops draw different numbers when
a function is XLA-compiled (`jit_compile=True`) than in a plain graph, so a
seeded run would depend on `use_xla`. Its full-range uint32 Philox stream does
not: `tf.random.stateless_uniform(..., dtype=tf.uint32, alg="philox")` gives
the same bits in both. Every random draw of the models is built from those
bits here, so a seeded step is identical with XLA on or off (on CPU, tested)
and a run may switch `use_xla` across a resume.

`uniform` equals `tf.random.stateless_uniform(shape, seed)` of the CPU/GPU
kernels bit for bit (both put the low 23 bits of each uint32 into the
mantissa), so non-XLA draws are unchanged by going through this module.

Seeds are int32/int64 Tensors of shape [2], as for TF's stateless ops.
"""
from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf

_MANTISSA_MASK = 0x7FFFFF  # the 23 bits the float conversion keeps
_MANTISSA_SCALE = 2.0 ** -23


def random_bits(shape, seed: tf.Tensor) -> tf.Tensor:
  """Full-range uint32 Philox bits of `shape` (the XLA-invariant stream)."""
  return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                     dtype=tf.uint32, alg="philox")


def uniform(shape, seed: tf.Tensor) -> tf.Tensor:
  """float32 U[0, 1) on a 2^-23 grid; equals `tf.random.stateless_uniform(shape, seed)`."""
  bits = tf.bitwise.bitwise_and(random_bits(shape, seed), _MANTISSA_MASK)
  return tf.cast(bits, tf.float32) * _MANTISSA_SCALE


def categorical(logits: tf.Tensor, num_samples: int, seed: tf.Tensor) -> tf.Tensor:
  """Draws `num_samples` ids per row of softmax(`logits`), with replacement (Gumbel-max).

  Args:
    logits: float [B, K] unnormalised log-probabilities; -inf entries are
      never drawn.
    num_samples: draws per row (a Python int).
    seed: the stateless seed.

  Returns:
    int32 [B, num_samples].
  """
  logits = tf.cast(logits, tf.float32)
  shape = tf.concat([tf.shape(logits)[:1], [num_samples], tf.shape(logits)[1:]], 0)
  # u = 0 gives -inf noise (never drawn), never NaN.
  gumbel = -tf.math.log(-tf.math.log(uniform(shape, seed)))  # [B, num_samples, K]
  return tf.argmax(logits[:, None, :] + gumbel, axis=-1, output_type=tf.int32)


_CDF_BLOCK = 256  # ids per block of the two-level inverse CDF


def inverse_cdf_categorical(logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Draws one id per row of softmax(`logits`) over the last axis, by inverse CDF.

  One uniform u per row, scaled to the row's total mass, picks the id i with
  cdf[i-1] <= u < cdf[i], so id i is drawn with probability
  (cdf[i] - cdf[i-1]) / total = softmax(logits)[i]: the distribution of
  Gumbel-max, from one uniform per row instead of one per entry plus two logs.
  See `inverse_cdf_from_weights` for the search and its precision; ids whose
  exp underflows to 0 (-inf or ~100 below the maximum) are never drawn.

  Args:
    logits: float [..., K] unnormalised log-probabilities; -inf entries are
      never drawn.
    seed: the stateless seed.

  Returns:
    int32 [...]: ids in [0, K).
  """
  logits = tf.cast(logits, tf.float32)
  weights = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))  # max entry: 1
  return inverse_cdf_from_weights(weights, seed)


def inverse_cdf_from_weights(weights: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Draws one id per row with probability weights[i] / Σ weights (the last axis).

  For `weights` = exp(logits - max(logits)) this is `inverse_cdf_categorical`;
  a caller that already has those weights (the MLM loss computes them) skips
  the exp pass over the row. The search is two-level so no cumulative sum
  runs over the whole row: the ids are cut into blocks of 256, u picks a
  block by the cumulative block masses, then an id by the cumulative masses
  inside that block. Each id's probability is off by a few float32 roundings
  of the sums (~2^-23 of the total), the resolution of the uniform itself
  (and of the original's Gumbel noise, which is capped at ~16 nats by the same
  2^-23 grid).

  Args:
    weights: float32 [..., K], non-negative, positive total per row; zero
      entries are never drawn.
    seed: the stateless seed.

  Returns:
    int32 [...]: ids in [0, K).
  """
  out_shape = tf.shape(weights)[:-1]
  num_ids = weights.shape[-1] if weights.shape[-1] is not None else tf.shape(weights)[-1]
  weights = tf.reshape(weights, [-1, num_ids])  # [N, K]
  num_blocks = (num_ids + _CDF_BLOCK - 1) // _CDF_BLOCK
  padding = num_blocks * _CDF_BLOCK - num_ids
  if not isinstance(padding, int) or padding:
    weights = tf.pad(weights, [[0, 0], [0, padding]])
  weights = tf.reshape(weights, [-1, num_blocks, _CDF_BLOCK])  # [N, nb, 256]
  block_cdf = tf.cumsum(tf.reduce_sum(weights, axis=-1), axis=-1)  # [N, nb]
  total = block_cdf[:, -1:]
  # u < total strictly, so the block drawn has positive mass.
  u = tf.minimum(uniform(tf.shape(total), seed) * total,
                 tf.math.nextafter(total, tf.zeros_like(total)))  # [N, 1]
  block = tf.reduce_sum(tf.cast(block_cdf <= u, tf.int32), axis=-1)  # [N]
  below = tf.gather(block_cdf, tf.maximum(block - 1, 0), batch_dims=1)  # mass before the block
  u_in_block = u[:, 0] - tf.where(block > 0, below, tf.zeros_like(below))  # >= 0
  in_block = tf.gather(weights, block, batch_dims=1)  # [N, 256]
  index = tf.reduce_sum(tf.cast(tf.cumsum(in_block, axis=-1) <= u_in_block[:, None], tf.int32),
                        axis=-1)
  # Rounding can put u_in_block at or past the block's own sum: take its last positive id.
  last_positive = tf.reduce_max(
      tf.where(in_block > 0, tf.range(_CDF_BLOCK)[None], tf.zeros_like(in_block, tf.int32)),
      axis=-1)
  ids = block * _CDF_BLOCK + tf.minimum(index, last_positive)
  return tf.reshape(ids, out_shape)


_PHILOX = 1  # tf.random.Algorithm.PHILOX
# Derived seeds are drawn under this Philox key (xor the seed's key word), so a
# seed's derivations and its own draws never share a Philox block.
_DERIVATION_KEY = 0x9E3779B97F4A7C15


def _seed_words(seed: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """The seed as two uint64 [1] words, (seed[0], seed[1]); int32 entries are sign-extended."""
  return tuple(tf.split(tf.bitcast(tf.cast(seed, tf.int64), tf.uint64), 2))


def _philox_bits(shape, key: tf.Tensor, counter: tf.Tensor) -> tf.Tensor:
  return tf.raw_ops.StatelessRandomUniformFullIntV2(shape=shape, key=key, counter=counter,
                                                   alg=_PHILOX, dtype=tf.uint32)


def keyed_bits(shape, seed: tf.Tensor) -> tf.Tensor:
  """Full-range uint32 Philox bits with the seed used directly as key and counter.

  Philox(key = seed[0], counter = (i, seed[1])) for blocks i = 0, 1, ...:
  a counter-based generator, so distinct seeds give independent streams
  without first scrambling the seed through another Philox call (which
  `random_bits` does, as TF's stateless ops do). Same numbers with and
  without XLA; about a third of the graph nodes of `random_bits`, which
  matters for the ~75 dropout sites of a pre-training step (tracing and
  graph optimization time).
  """
  key, high = _seed_words(seed)
  return _philox_bits(shape, key, tf.pad(high, [[1, 0]]))


def derive(seed: Optional[tf.Tensor], *keys: int) -> Optional[tf.Tensor]:
  """The seed of one dropout site: `seed` with each key derived in turn (None stays None).

  Each step is one Philox block, Philox(key = seed[0] ^ c, counter =
  (key, seed[1])) → int64 [2], so different keys (or orders of keys) give
  unrelated seeds. The cheap counterpart of `sub_seed` (TF's fold-in costs
  two Philox calls and ~50 graph nodes) for the model's many dropout sites;
  `sub_seed` stays for the masking and sampling seeds.
  """
  if seed is None:
    return None
  for key in keys:
    seed_key, high = _seed_words(seed)
    derivation_key = tf.bitwise.bitwise_xor(seed_key, tf.constant([_DERIVATION_KEY], tf.uint64))
    counter = tf.concat([tf.constant([key], tf.uint64), high], 0)
    seed = tf.cast(_philox_bits([2], derivation_key, counter), tf.int64)
  return seed


def fold_in(seed: tf.Tensor, key) -> tf.Tensor:
  """`tf.random.experimental.stateless_fold_in` pinned to Philox.

  Its default algorithm ("auto_select") is Philox on CPU/GPU kernels but not
  under XLA, so derived seeds would differ with `jit_compile`; pinning it keeps
  the non-XLA values and makes XLA agree.
  """
  return tf.random.experimental.stateless_fold_in(seed, key, alg="philox")


def sub_seed(seed: Optional[tf.Tensor], *keys: int) -> Optional[tf.Tensor]:
  """The seed of one random use site: `seed` folded with each key in turn.

  None stays None (evaluation and unseeded calls pass no seed).
  """
  if seed is None:
    return None
  for key in keys:
    seed = fold_in(seed, key)
  return seed
