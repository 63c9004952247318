"""The ELECTRA transformer as `tf.Module`s whose variables carry TF1 checkpoint names.

Glossary (one name per concept, used across the code base):
  input_ids     int32 [B, S]  WordPiece ids.
  input_mask    int32 [B, S]  1 for real tokens, 0 for padding.
  segment_ids   int32 [B, S]  token-type ids (0 first segment, 1 second).
  masked_lm_positions/ids/weights  [B, P]  masking outputs (pretrain_helpers).
  hidden_size H, embedding_size E, vocab_size V, max_seq_length S,
  num_attention_heads N, head size D = H / N, predictions per sequence P.

Checkpoint names are the API (spec: checkpoints.md). Every variable is made by
`NamedModule.create_variable`, which records it under an explicit full name
(`<scope>/<name>`, e.g. `electra/encoder/layer_0/attention/self/query/kernel`).
`named_variables()` returns that mapping for a module tree; checkpoint I/O, the
optimizer's slot names, weight-decay exclusion and layer-wise learning rates all
key on it. Nothing here derives names from Python attributes or Keras.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import tensorflow as tf

Initializer = Callable[[tf.TensorShape, tf.DType], tf.Tensor]


def truncated_normal(stddev: float = 0.02) -> Initializer:
  """TF1 `truncated_normal_initializer`: values beyond 2 stddev are re-drawn."""
  def init(shape, dtype=tf.float32):
    return tf.random.truncated_normal(shape, stddev=stddev, dtype=dtype)
  return init


def glorot_uniform() -> Initializer:
  """TF1's default `get_variable` initializer for 2-D kernels: U(±sqrt(6/(in+out)))."""
  def init(shape, dtype=tf.float32):
    shape = list(shape)
    fan_in, fan_out = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[0], shape[0])
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.uniform(shape, -limit, limit, dtype=dtype)
  return init


def zeros() -> Initializer:
  def init(shape, dtype=tf.float32):
    return tf.zeros(shape, dtype)
  return init


def ones() -> Initializer:
  def init(shape, dtype=tf.float32):
    return tf.ones(shape, dtype)
  return init


def _module_name(scope: str) -> str:
  """tf.Module names must be identifiers; the checkpoint name lives in `scope`."""
  last = scope.rsplit("/", 1)[-1] if scope else "root"
  cleaned = "".join(c if (c.isalnum() or c == "_") else "_" for c in last)
  return cleaned if cleaned and not cleaned[0].isdigit() else "m_" + cleaned


class NamedModule(tf.Module):
  """A `tf.Module` whose variables are registered under explicit TF1 names.

  Args:
    scope: str. Full variable-scope path of this module, e.g.
      "electra/encoder/layer_3/intermediate/dense". May be "" for a container
      that owns no variables of its own.
  """

  def __init__(self, scope: str):
    super().__init__(name=_module_name(scope))
    self.scope = scope
    self._named_variables: Dict[str, tf.Variable] = {}

  def create_variable(self, name: str, shape, initializer: Initializer,
                      dtype: tf.DType = tf.float32, trainable: bool = True) -> tf.Variable:
    """Creates a variable named `<scope>/<name>` and records it for checkpoints."""
    full_name = f"{self.scope}/{name}" if self.scope else name
    if full_name in self._named_variables:
      raise ValueError(f"Variable {full_name} created twice in one module.")
    with tf.init_scope():
      variable = tf.Variable(initializer(tf.TensorShape(shape), dtype), name=full_name,
                             trainable=trainable)
    self._named_variables[full_name] = variable
    return variable

  def named_variables(self) -> Dict[str, tf.Variable]:
    """All variables of this module tree as {checkpoint name: variable}, sorted by name.

    A module shared by two parents (the tied embeddings) appears once. Two
    different variables under the same name is a construction bug and raises.
    """
    found: Dict[str, tf.Variable] = {}
    for module in [self] + list(self.submodules):
      if not isinstance(module, NamedModule):
        continue
      for name, variable in module._named_variables.items():
        if name in found and found[name] is not variable:
          raise ValueError(f"Two different variables are both named {name}.")
        found[name] = variable
    return dict(sorted(found.items()))

  def trainable_named_variables(self) -> Dict[str, tf.Variable]:
    return {n: v for n, v in self.named_variables().items() if v.trainable}


class Dense(NamedModule):
  """`tf.layers.dense`: variables `<scope>/kernel` [in, out] and `<scope>/bias` [out].

  The kernel is cast to the input's dtype, so the same variables serve fp32
  and mixed-precision (bf16/fp16) compute.
  """

  def __init__(self, scope: str, input_size: int, output_size: int,
               kernel_initializer: Optional[Initializer] = None,
               activation: Optional[Callable[[tf.Tensor], tf.Tensor]] = None):
    super().__init__(scope)
    self.input_size = input_size
    self.output_size = output_size
    self.activation = activation
    self.kernel = self.create_variable(
        "kernel", [input_size, output_size], kernel_initializer or glorot_uniform())
    self.bias = self.create_variable("bias", [output_size], zeros())

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    kernel = tf.cast(self.kernel, x.dtype)
    bias = tf.cast(self.bias, x.dtype)
    if x.shape.rank == 2:
      y = tf.matmul(x, kernel)
    else:
      y = tf.einsum("...i,io->...o", x, kernel)
    y = tf.nn.bias_add(y, bias)
    return self.activation(y) if self.activation is not None else y


class LayerNorm(NamedModule):
  """Layer norm over the last axis, ε = 1e-12; variables `<scope>/beta`, `<scope>/gamma`.

  Statistics are computed in float32 even under mixed precision.
  """

  def __init__(self, scope: str, size: int, epsilon: float = 1e-12):
    super().__init__(scope)
    self.epsilon = epsilon
    self.beta = self.create_variable("beta", [size], zeros())
    self.gamma = self.create_variable("gamma", [size], ones())

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
    y = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon) * self.gamma + self.beta
    return tf.cast(y, x.dtype)
