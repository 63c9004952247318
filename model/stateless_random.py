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

from typing import Optional

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
