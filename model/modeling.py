"""The ELECTRA transformer as `tf.Module`s whose variables carry TF1 checkpoint names.

Glossary (one name per concept, used across the code base):
  input_ids     int32 [B, S]  WordPiece ids.
  input_mask    int32 [B, S]  1 for real tokens, 0 for padding.
  segment_ids   int32 [B, S]  token-type ids (0 first segment, 1 second).
  masked_lm_positions/ids/weights  [B, P]  masking outputs (pretrain_helpers).
  hidden_size H, embedding_size E, vocab_size V, max_seq_length S,
  num_attention_heads N, head size D = H / N, intermediate_size I,
  predictions per sequence P, batch size B.
  compute dtype  float32, or bfloat16/float16 for mixed precision; variables
                 are always float32 and cast where used.
  seed          int [2] stateless seed; each dropout site folds in fixed keys
                (embeddings 0; layer k: k + 1, then 0 attention probs,
                1 attention output, 2 feed-forward output). Draws are the
                same with and without XLA (model/stateless_random.py).

Checkpoint names are the API (see docs/checkpoints.md). Every variable is made by
`NamedModule.create_variable`, which records it under an explicit full name
(`<scope>/<name>`, e.g. `electra/encoder/layer_0/attention/self/query/kernel`).
`named_variables()` returns that mapping for a module tree; checkpoint I/O, the
optimizer's slot names, weight-decay exclusion and layer-wise learning rates all
key on it. Nothing here derives names from Python attributes or Keras.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import tensorflow as tf

from model import stateless_random
from util import files

Initializer = Callable[[tf.TensorShape, tf.DType], tf.Tensor]


class BertConfig:
  """Transformer hyper-parameters, with the original field names and defaults.

  Args:
    vocab_size: int. Rows of the word-embedding table (V).
    hidden_size: int. Width of the encoder layers (H).
    num_hidden_layers: int. Number of transformer layers.
    num_attention_heads: int. Attention heads per layer (N); must divide H.
    intermediate_size: int. Width of the feed-forward layer (I).
    hidden_act: str. Feed-forward activation: "gelu", "relu", "tanh",
      "linear" or "" (identity).
    hidden_dropout_prob: float. Dropout on embeddings and layer outputs.
    attention_probs_dropout_prob: float. Dropout on attention probabilities.
    max_position_embeddings: int. Rows of the position table; the longest
      sequence the model accepts.
    type_vocab_size: int. Rows of the token-type (segment) table.
    initializer_range: float. Stddev of the truncated-normal initializers.
  """

  def __init__(self, vocab_size: Optional[int], hidden_size: int = 768,
               num_hidden_layers: int = 12, num_attention_heads: int = 12,
               intermediate_size: int = 3072, hidden_act: str = "gelu",
               hidden_dropout_prob: float = 0.1,
               attention_probs_dropout_prob: float = 0.1,
               max_position_embeddings: int = 512, type_vocab_size: int = 2,
               initializer_range: float = 0.02):
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range

  @classmethod
  def from_dict(cls, json_object: Dict[str, Any]) -> "BertConfig":
    """Builds a config from a dict; like the original, any key is accepted and set."""
    config = cls(vocab_size=None)
    for key, value in json_object.items():
      config.__dict__[key] = value
    return config

  @classmethod
  def from_json_file(cls, json_file: str) -> "BertConfig":
    """Reads a config written by `to_json_string` (or a released bert_config.json).

    Raises:
      FileNotFoundError: `json_file` does not exist.
      util.files.JsonObjectError: the file does not hold a JSON object.
    """
    if not os.path.isfile(json_file):
      raise FileNotFoundError(f"BertConfig file {json_file} does not exist; pass the path "
                              "of a JSON file with the BertConfig fields.")
    return cls.from_dict(files.load_json_object(json_file, "BertConfig file"))

  def to_dict(self) -> Dict[str, Any]:
    return copy.deepcopy(self.__dict__)

  def to_json_string(self) -> str:
    """JSON with sorted keys, 2-space indent and a trailing newline."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def __eq__(self, other: object) -> bool:
    return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

  def __repr__(self) -> str:
    return f"BertConfig({self.to_dict()})"


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


def shape_list(x: tf.Tensor) -> List[Union[int, tf.Tensor]]:
  """x's shape as a list: static dimensions as Python ints, unknown ones as tensors.

  x must have a known rank (every tensor of the models does).

  Reshapes built from it carry constant shapes whenever the batch is static
  (training with `drop_remainder`), so the graph has fewer nodes to trace and
  optimize than with `tf.shape` everywhere.
  """
  dynamic = None
  dims = []
  for i, dim in enumerate(x.shape.as_list()):
    if dim is None:
      dynamic = tf.shape(x) if dynamic is None else dynamic
      dim = dynamic[i]
    dims.append(dim)
  return dims


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
    bias = tf.cast(self.bias, x.dtype)
    if self.activation is gelu and inference_fusion_enabled():  # one kernel, see fused_inference
      return _bias_gelu_fused(self.project(x), bias)
    # Outside the trainer's step: bias and activation on the 2-D product, then
    # the reshape, the order in which grappler's remapper fuses MatMul + BiasAdd
    # (+ exact GELU) into one oneDNN op (the exported SavedModel: +22% at batch
    # 32, +9% at batch 1). The trainer's step keeps the order it was tuned with.
    flat = x.shape.rank != 2 and not _in_training_step()
    y = tf.nn.bias_add(self.project(x, flat=flat), bias)
    if self.activation is not None:
      y = self.activation(y)
    return tf.reshape(y, shape_list(x)[:-1] + [self.output_size]) if flat else y

  def project(self, x: tf.Tensor, kernel: Optional[tf.Tensor] = None,
              flat: bool = False) -> tf.Tensor:
    """x · kernel over the last axis, without the bias; [N, out] rows when `flat`."""
    if kernel is None:
      kernel = tf.cast(self.kernel, x.dtype)
    if x.shape.rank == 2:
      return tf.matmul(x, kernel)
    # Flatten to [N, in] and matmul: the gradient of an ellipsis einsum
    # ("...i,io->...o") materialises a [..., in, out] tensor (60-150x slower).
    y = tf.matmul(tf.reshape(x, [-1, self.input_size]), kernel)
    return y if flat else tf.reshape(y, shape_list(x)[:-1] + [kernel.shape[-1]])


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
    return tf.cast(_normalize(tf.cast(x, tf.float32), self.gamma, self.beta, self.epsilon),
                   x.dtype)

  def dense_add_and_norm(self, dense: "Dense", x: tf.Tensor, residual: tf.Tensor,
                         training: bool, dropout_rate: float,
                         seed: Optional[tf.Tensor]) -> tf.Tensor:
    """LayerNorm(dropout(dense(x)) + residual): the sublayer output of a transformer
    layer; in eval passes inside `fused_inference`, one XLA kernel after the matmul."""
    if _fuse_eval_pass(training):
      return _bias_add_layer_norm_fused(dense.project(x), dense.bias, residual, self.gamma,
                                        self.beta, tf.constant(self.epsilon, tf.float32))
    return self(dropout(dense(x), dropout_rate, training, seed) + residual)


def _normalize(x32: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor,
               epsilon: Union[float, tf.Tensor]) -> tf.Tensor:
  """Layer norm of float32 `x32` over the last axis."""
  mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
  return (x32 - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta


def get_activation(activation_string: Optional[str]) -> Callable[[tf.Tensor], tf.Tensor]:
  """Maps a `hidden_act` string to a function (see docs/model.md#gelu-layer-norm-and-dropout).

  Args:
    activation_string: "gelu" (exact erf form), "relu", "tanh", or
      "linear" / "" / None for the identity. Case-insensitive.

  Returns:
    An element-wise function of a Tensor.

  Raises:
    ValueError: for any other string.
  """
  activations = {"": tf.identity, "linear": tf.identity, "gelu": gelu, "relu": tf.nn.relu,
                 "tanh": tf.tanh}
  act = (activation_string or "").lower()
  if act not in activations:
    raise ValueError(f"Unsupported activation: {activation_string} (hidden_act must be one "
                     "of 'gelu', 'relu', 'tanh', 'linear' or '').")
  return activations[act]


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _normal_cdf(x: tf.Tensor) -> tf.Tensor:
  """Φ(x) = 0.5 · (1 + erf(x / √2))."""
  return 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))


def _gelu_derivative(x: tf.Tensor, cdf: tf.Tensor) -> tf.Tensor:
  """d/dx x·Φ(x) = Φ(x) + x·φ(x), with x·φ(x) = u · exp(-u²) / √π for u = x / √2."""
  u = x * _SQRT_HALF
  return cdf + _INV_SQRT_PI * u * tf.exp(-tf.square(u))


@tf.custom_gradient
def _gelu_ops(x: tf.Tensor) -> Tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
  """Exact GELU as plain TF ops, the gradient reusing Φ(x) from the forward pass."""
  cdf = _normal_cdf(x)
  return x * cdf, lambda dy: dy * _gelu_derivative(x, cdf)


@tf.function(jit_compile=True, autograph=False)
def _gelu_fused_forward(x: tf.Tensor) -> tf.Tensor:
  x32 = tf.cast(x, tf.float32)
  return tf.cast(x32 * _normal_cdf(x32), x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _gelu_fused_backward(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
  x32 = tf.cast(x, tf.float32)
  return tf.cast(tf.cast(dy, tf.float32) * _gelu_derivative(x32, _normal_cdf(x32)), x.dtype)


@tf.custom_gradient
def _gelu_fused(x: tf.Tensor) -> Tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
  """Exact GELU as two XLA kernels (forward; backward recomputing Φ), float32 inside."""
  return _gelu_fused_forward(x), lambda dy: _gelu_fused_backward(x, dy)


_FUSION = threading.local()


@contextlib.contextmanager
def fused_elementwise(enabled: bool = True):
  """Models traced inside build GELU from XLA-compiled fused kernels.

  TensorFlow runs each element-wise op as its own pass over memory (and
  bfloat16 ones largely unvectorized on CPU); GELU and its gradient are ~13
  passes over the [tokens, intermediate] activations. As one XLA kernel each
  (float32 inside, also for bfloat16 tensors), a [4096, 1024] forward +
  backward takes 5.9 ms instead of 21.6 (bf16) and 5.6 instead of 13.7
  (fp32) on 2 CPU threads. The trainer traces its step inside this context;
  everything else (evaluation, export, the SavedModel's serving graph) stays
  plain TF ops, so an exported model needs no XLA at serving time.

  Args:
    enabled: whether fusion is on inside the context (it nests and restores).
  """
  previous = getattr(_FUSION, "enabled", False)
  _FUSION.enabled = enabled
  try:
    yield
  finally:
    _FUSION.enabled = previous


def elementwise_fusion_enabled() -> bool:
  """Whether models traced now use the fused kernels (`fused_elementwise`)."""
  return getattr(_FUSION, "enabled", False)


def gelu(x: tf.Tensor) -> tf.Tensor:
  """Exact GELU, x · Φ(x) with Φ(x) = 0.5 · (1 + erf(x / √2)) (not the tanh approximation).

  The gradient Φ(x) + x·φ(x) is written out (`_gelu_derivative`), reusing
  Φ(x) from the forward pass: 9 element-wise passes per call instead of 16
  for autodiff through erf (~3% of a CPU pre-training step). Inside
  `fused_elementwise()` forward and backward are one XLA kernel each instead.
  """
  if elementwise_fusion_enabled():
    return _gelu_fused(x)
  return _gelu_ops(x)


# Inference kernels (`fused_inference`): the element-wise work between the
# matmuls as one XLA kernel per block, float32 inside, in the input's dtype out.

@tf.function(jit_compile=True, autograph=False)
def _bias_gelu_fused(x: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  """GELU(x + bias)."""
  x32 = tf.cast(x, tf.float32) + tf.cast(bias, tf.float32)
  return tf.cast(x32 * _normal_cdf(x32), x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _bias_add_layer_norm_fused(x: tf.Tensor, bias: tf.Tensor, residual: tf.Tensor,
                               gamma: tf.Tensor, beta: tf.Tensor,
                               epsilon: tf.Tensor) -> tf.Tensor:
  """LayerNorm(x + bias + residual); the bias is added in x's dtype, as `Dense` does."""
  x32 = tf.cast(x + tf.cast(bias, x.dtype), tf.float32) + tf.cast(residual, tf.float32)
  return tf.cast(_normalize(x32, gamma, beta, epsilon), x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _split_qkv_fused(y: tf.Tensor, bias: tf.Tensor, scale: tf.Tensor, num_heads: int):
  """[B, S, 3H] projections + bias -> q · scale, k, v, each [B, N, S, D]."""
  batch, seq, width = shape_list(y)
  y = y + tf.cast(bias, y.dtype)
  heads = tf.transpose(tf.reshape(y, [batch, seq, 3, num_heads, width // 3 // num_heads]),
                       [2, 0, 3, 1, 4])  # [3, B, N, S, D]
  return heads[0] * scale, heads[1], heads[2]


def _masked_softmax(scores: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32) + bias, axis=-1), scores.dtype)


_masked_softmax_fused = tf.function(_masked_softmax, jit_compile=True, autograph=False)


def masked_softmax(scores: tf.Tensor, bias: tf.Tensor, training: bool) -> tf.Tensor:
  """softmax(scores + bias) over the last axis in float32, returned in the scores' dtype."""
  if _fuse_eval_pass(training):
    return _masked_softmax_fused(scores, bias)
  return _masked_softmax(scores, bias)


_INFERENCE_FUSION = threading.local()


@contextlib.contextmanager
def fused_inference(enabled: bool = True):
  """Eval-mode forward passes traced inside run their element-wise work as XLA kernels.

  Between the matmuls (which stay oneDNN ops) each block becomes one XLA
  kernel: q/k/v bias, scaling and head split (after one [H, 3H] matmul),
  the masked softmax, bias + GELU, and bias + residual + layer norm; GELU
  elsewhere (heads) is fused as in `fused_elementwise`, which this context
  includes. TensorFlow otherwise runs each element-wise op as its own pass,
  and bfloat16 ones largely unvectorized on CPU: ELECTRA-Small, seq 128,
  batch 32, bf16, 2 threads: ~355 -> ~275 ms per forward pass. Passes
  with `training=True` keep dropout and the plain ops around it (only bias +
  GELU stays one kernel, differentiable). For graphs that are not
  XLA-compiled as a whole (inside a `jit_compile` function XLA fuses anyway);
  a graph traced here needs XLA at run time, so exports stay outside.

  Args:
    enabled: whether fusion is on inside the context (it nests and restores).
  """
  previous = getattr(_INFERENCE_FUSION, "enabled", False)
  _INFERENCE_FUSION.enabled = enabled
  try:
    with fused_elementwise(enabled):
      yield
  finally:
    _INFERENCE_FUSION.enabled = previous


def inference_fusion_enabled() -> bool:
  """Whether models traced now use the inference kernels (`fused_inference`)."""
  return getattr(_INFERENCE_FUSION, "enabled", False)


def _fuse_eval_pass(training: bool) -> bool:
  """Whether a block of this pass runs as an inference kernel (eval passes only)."""
  return inference_fusion_enabled() and not training


def _in_training_step() -> bool:
  """Whether the trainer's step is being traced (`fused_elementwise` without `fused_inference`)."""
  return elementwise_fusion_enabled() and not inference_fusion_enabled()


_DROPOUT_BITS = 16  # Random bits per dropout decision (see `dropout`).


def dropout(x: tf.Tensor, rate: float, training: bool,
            seed: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Inverted dropout; the identity unless `training` and `rate` > 0.

  With a seed, each element draws 16 random bits (two decisions per stateless
  Philox uint32, about 4x faster on CPU than one float per element): it is
  dropped when its bits fall below t = round(rate · 2^16), so the realised
  rate is t / 2^16 (0.1 -> 0.1000061), and kept values are scaled by
  2^16 / (2^16 - t), which keeps E[output] = x exactly.

  Args:
    x: float Tensor of any shape.
    rate: drop probability p in [0, 1).
    training: whether to drop at all.
    seed: int Tensor [2] for stateless dropout; None falls back to the
      stateful `tf.nn.dropout` (ad-hoc use only; trainers pass seeds).

  Returns:
    Tensor like `x`.
  """
  if not training or not rate:
    return x
  if seed is None:
    return tf.nn.dropout(x, rate=rate)
  levels = 2 ** _DROPOUT_BITS
  threshold = min(levels - 1, int(round(rate * levels)))
  if threshold == 0:
    return x
  # Static sizes where known: fewer graph nodes per site (faster tracing).
  size = x.shape.num_elements() if x.shape.is_fully_defined() else tf.size(x)
  shape = x.shape if x.shape.is_fully_defined() else tf.shape(x)
  bits = stateless_random.keyed_bits([(size + 1) // 2], seed)  # uint32, XLA-invariant
  halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])  # [2 * ceil(n / 2)]
  if isinstance(size, tf.Tensor) or size % 2:
    halves = halves[:size]
  keep = tf.reshape(halves >= tf.constant(threshold, tf.uint16), shape)
  scale = tf.cast(levels / (levels - threshold), x.dtype)
  return tf.where(keep, x * scale, tf.zeros([], x.dtype))


class Embeddings(NamedModule):
  """Word + token-type + position embeddings, layer norm, dropout (docs/model.md#embeddings).

  Variables `<scope>/word_embeddings` [V, E], `<scope>/token_type_embeddings`
  [type_vocab_size, E], `<scope>/position_embeddings`
  [max_position_embeddings, E] (all trunc-normal(initializer_range)) and
  `<scope>/LayerNorm/{beta,gamma}` [E]. Pass the same object to two
  `BertModel`s to tie their embeddings.

  Args:
    bert_config: BertConfig; vocab, table sizes, dropout and init range.
    embedding_size: E; None means `bert_config.hidden_size`.
    scope: full variable scope, "electra/embeddings" for the shared tables,
      "<model scope>/embeddings" for untied ones.
  """

  def __init__(self, bert_config: BertConfig, embedding_size: Optional[int] = None,
               scope: str = "electra/embeddings"):
    super().__init__(scope)
    self.embedding_size = embedding_size or bert_config.hidden_size
    self.max_position_embeddings = bert_config.max_position_embeddings
    self.dropout_prob = bert_config.hidden_dropout_prob
    init = truncated_normal(bert_config.initializer_range)
    self.embedding_table = self.create_variable(
        "word_embeddings", [bert_config.vocab_size, self.embedding_size], init)
    self.token_type_table = self.create_variable(
        "token_type_embeddings", [bert_config.type_vocab_size, self.embedding_size], init)
    self.position_table = self.create_variable(
        "position_embeddings", [bert_config.max_position_embeddings, self.embedding_size], init)
    self.layer_norm = LayerNorm(f"{scope}/LayerNorm", self.embedding_size)

  def __call__(self, input_ids: tf.Tensor, segment_ids: tf.Tensor, training: bool,
               seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Embeds a batch.

    Args:
      input_ids: int32 [B, S].
      segment_ids: int32 [B, S] token-type ids.
      training: applies dropout when true.
      seed: int Tensor [2] for stateless dropout, or None.

    Returns:
      float32 [B, S, E].

    Raises:
      ValueError: if S > max_position_embeddings.
    """
    seq_length = input_ids.shape[1]
    if seq_length is not None and seq_length > self.max_position_embeddings:
      raise ValueError(f"Sequence length {seq_length} exceeds max_position_embeddings "
                       f"{self.max_position_embeddings} of {self.scope}; shorten "
                       "max_seq_length or use a model with more positions.")
    if seq_length is None:
      seq_length = tf.shape(input_ids)[1]
    embeddings = tf.gather(self.embedding_table, input_ids)  # [B, S, E]
    embeddings += tf.gather(self.token_type_table, segment_ids)  # [B, S, E]
    embeddings += self.position_table[None, :seq_length]  # rows 0..S-1, [1, S, E]
    embeddings = self.layer_norm(embeddings)
    return dropout(embeddings, self.dropout_prob, training, seed)


def attention_bias(input_mask: tf.Tensor, ltr: bool = False, rtl: bool = False) -> tf.Tensor:
  """Additive attention bias (docs/model.md#attention-mask), computed once per forward pass.

  mask[b, i, j] = input_mask[b, j] (queries from padding are not masked), times
  the lower triangle (key j ≤ query i) if `ltr` and the upper triangle (j ≥ i)
  if `rtl`; the bias is (1 - mask) · -10000.

  Args:
    input_mask: int [B, S], 1 for real tokens.
    ltr: left-to-right causal mask.
    rtl: right-to-left causal mask.

  Returns:
    float32 [B, 1, 1, S] without causal masks, else [B, 1, S, S]; broadcasts
    over heads (and queries).
  """
  mask = tf.cast(input_mask, tf.float32)[:, None, None, :]  # [B, 1, 1, S]
  if ltr or rtl:
    seq_length = tf.shape(input_mask)[1]
    ones = tf.ones([seq_length, seq_length], tf.float32)
    if ltr:
      mask *= tf.linalg.band_part(ones, -1, 0)  # lower triangle, [B, 1, S, S]
    if rtl:
      mask *= tf.linalg.band_part(ones, 0, -1)  # upper triangle
  return (1.0 - mask) * -10000.0


class BertOutput(NamedTuple):
  """What `BertModel` returns.

  Attributes:
    sequence_output: [B, S, H], the last layer, in the compute dtype.
    pooled_output: [B, H] = sequence_output[:, 0] (ELECTRA has no pooler).
    all_layer_outputs: list of [B, S, H], one per layer.
    embedding_output: [B, S, H], the encoder input (after embeddings_project).
  """
  sequence_output: tf.Tensor
  pooled_output: tf.Tensor
  all_layer_outputs: List[tf.Tensor]
  embedding_output: tf.Tensor


class TransformerLayer(NamedModule):
  """One post-LN transformer layer, scope `<model scope>/encoder/layer_<k>`
  (docs/model.md#transformer-layers).

  Args:
    bert_config: BertConfig; H, N, I, activation, dropouts, init range.
    scope: full scope, e.g. "electra/encoder/layer_3".
  """

  def __init__(self, bert_config: BertConfig, scope: str):
    super().__init__(scope)
    hidden, inner = bert_config.hidden_size, bert_config.intermediate_size
    self.num_heads = bert_config.num_attention_heads
    self.head_size = hidden // self.num_heads
    self.hidden_dropout_prob = bert_config.hidden_dropout_prob
    self.attention_dropout_prob = bert_config.attention_probs_dropout_prob
    init = truncated_normal(bert_config.initializer_range)
    self.query = Dense(f"{scope}/attention/self/query", hidden, hidden, init)
    self.key = Dense(f"{scope}/attention/self/key", hidden, hidden, init)
    self.value = Dense(f"{scope}/attention/self/value", hidden, hidden, init)
    self.attention_output = Dense(f"{scope}/attention/output/dense", hidden, hidden, init)
    self.attention_layer_norm = LayerNorm(f"{scope}/attention/output/LayerNorm", hidden)
    self.intermediate = Dense(f"{scope}/intermediate/dense", hidden, inner, init,
                              activation=get_activation(bert_config.hidden_act))
    self.output = Dense(f"{scope}/output/dense", inner, hidden, init)
    self.output_layer_norm = LayerNorm(f"{scope}/output/LayerNorm", hidden)

  def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
    """[B, S, H] -> [B, N, S, D]."""
    batch, seq = shape_list(x)[:2]
    x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
    return tf.transpose(x, [0, 2, 1, 3])

  def __call__(self, x: tf.Tensor, bias: tf.Tensor, training: bool,
               seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Applies the layer.

    Args:
      x: [B, S, H] in the compute dtype.
      bias: float32 additive attention bias, [B, 1, 1, S] or [B, 1, S, S].
      training: applies dropout when true.
      seed: int Tensor [2] for stateless dropout, or None.

    Returns:
      [B, S, H] in the dtype of `x`.
    """
    # Heads-major layout [B, N, S, D] and plain batched matmuls: about 20%
    # faster (forward + backward) on CPU than the equivalent einsums.
    # 1/sqrt(D) scales q before the product; for D a power of 4 (64 in every
    # preset) 1/sqrt(D) is a power of two, so the scaling itself is exact.
    scale = tf.cast(1.0 / math.sqrt(float(self.head_size)), x.dtype)
    if _fuse_eval_pass(training):
      q, k, v = self._fused_qkv(x, scale)
    else:
      q = self._split_heads(self.query(x) * scale)  # [B, N, S, D]
      k = self._split_heads(self.key(x))  # [B, N, S, D]
      v = self._split_heads(self.value(x))  # [B, N, S, D]
    # Softmax in float32 even under mixed precision; the -10000 bias would
    # overflow float16.
    probs = masked_softmax(tf.matmul(q, k, transpose_b=True), bias, training)  # [B, N, S, S]
    probs = dropout(probs, self.attention_dropout_prob, training,
                    stateless_random.derive(seed, 0))
    context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, S, N, D]
    context = tf.reshape(context, shape_list(x))  # [B, S, H]
    attended = self.attention_layer_norm.dense_add_and_norm(
        self.attention_output, context, x, training, self.hidden_dropout_prob,
        stateless_random.derive(seed, 1))  # [B, S, H]
    inner = self.intermediate(attended)  # [B, S, I]
    return self.output_layer_norm.dense_add_and_norm(
        self.output, inner, attended, training, self.hidden_dropout_prob,
        stateless_random.derive(seed, 2))  # [B, S, H]

  def _fused_qkv(self, x: tf.Tensor, scale: tf.Tensor):
    """q (scaled), k, v [B, N, S, D] from one [H, 3H] matmul and one XLA kernel."""
    dense = (self.query, self.key, self.value)
    kernel = tf.concat([tf.cast(d.kernel, x.dtype) for d in dense], axis=1)  # [H, 3H]
    bias = tf.concat([d.bias for d in dense], axis=0)  # [3H]
    return _split_qkv_fused(self.query.project(x, kernel), bias, scale, self.num_heads)


class BertModel(NamedModule):
  """The ELECTRA transformer encoder (BERT-style, post-LN, no pooler;
  docs/model.md#transformer-encoder).

  Variables: the embeddings (shared `electra/embeddings/*` unless an untied
  `Embeddings` is passed), `<scope>/embeddings_project/{kernel [E, H], bias [H]}`
  (glorot-uniform, only when E != H) and `<scope>/encoder/layer_<k>/...`.

  Args:
    bert_config: BertConfig of this transformer.
    scope: variable scope of the projection and encoder: "electra" for the
      discriminator, "generator", "generator_ltr", "generator_rtl".
    embedding_size: E when the embeddings are created here (None -> H); when
      `embeddings` is passed it must be None or equal its width.
    embeddings: an existing `Embeddings` to use (pass the SAME object to tie
      two models); None creates one at "electra/embeddings".
    ltr: left-to-right causal attention (Electric's ltr tower).
    rtl: right-to-left causal attention (Electric's rtl tower).
    compute_dtype: float32, bfloat16 or float16. Variables stay float32; the
      embedding output is cast to this dtype; softmax and layer-norm
      statistics are float32; outputs are in this dtype.

  Raises:
    ValueError: H not divisible by the number of heads; conflicting
      embedding_size; unsupported compute dtype or activation.

  Example:
    >>> config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...                     num_attention_heads=4, intermediate_size=37)
    >>> model = BertModel(config, embedding_size=16)
    >>> ids = tf.constant([[2, 7, 3, 0]])
    >>> out = model(ids, tf.constant([[1, 1, 1, 0]]), tf.zeros_like(ids), training=False)
    >>> out.sequence_output.shape
    TensorShape([1, 4, 32])
  """

  def __init__(self, bert_config: BertConfig, scope: str = "electra",
               embedding_size: Optional[int] = None,
               embeddings: Optional[Embeddings] = None,
               ltr: bool = False, rtl: bool = False,
               compute_dtype: tf.DType = tf.float32):
    super().__init__(scope)
    hidden, heads = bert_config.hidden_size, bert_config.num_attention_heads
    if hidden % heads != 0:
      raise ValueError(f"The hidden size ({hidden}) is not a multiple of the number of "
                       f"attention heads ({heads}) in {scope}; change hidden_size or "
                       "num_attention_heads (model_hparam_overrides).")
    self.compute_dtype = tf.as_dtype(compute_dtype)
    if self.compute_dtype not in (tf.float32, tf.bfloat16, tf.float16):
      raise ValueError(f"compute_dtype must be float32, bfloat16 or float16, "
                       f"got {self.compute_dtype.name}.")
    self.config = copy.deepcopy(bert_config)
    if embeddings is None:
      embeddings = Embeddings(bert_config, embedding_size, "electra/embeddings")
    elif embedding_size is not None and embedding_size != embeddings.embedding_size:
      raise ValueError(f"{scope}: embedding_size={embedding_size} conflicts with the width "
                       f"{embeddings.embedding_size} of the passed {embeddings.scope}.")
    self.embeddings = embeddings
    self.ltr, self.rtl = ltr, rtl
    self.embeddings_project = None
    if embeddings.embedding_size != hidden:
      self.embeddings_project = Dense(f"{scope}/embeddings_project",
                                      embeddings.embedding_size, hidden, glorot_uniform())
    self.layers = [TransformerLayer(bert_config, f"{scope}/encoder/layer_{k}")
                   for k in range(bert_config.num_hidden_layers)]

  @property
  def embedding_table(self) -> tf.Variable:
    """The word-embedding table [V, E] (reused by the MLM heads)."""
    return self.embeddings.embedding_table

  def __call__(self, input_ids: tf.Tensor, input_mask: Optional[tf.Tensor],
               segment_ids: tf.Tensor, training: bool,
               seed: Optional[tf.Tensor] = None) -> BertOutput:
    """Runs the encoder.

    Args:
      input_ids: int32 [B, S].
      input_mask: int32 [B, S], 1 for real tokens; None means all ones.
      segment_ids: int32 [B, S] token-type ids.
      training: applies dropout when true (none in eval, as the original).
      seed: int Tensor [2]; each dropout site derives its own seed from it (fixed keys).
        None with `training` uses stateful dropout.

    Returns:
      BertOutput, tensors in the compute dtype.
    """
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    embedded = self.embeddings(input_ids, segment_ids, training, stateless_random.derive(seed, 0))
    embedded = tf.cast(embedded, self.compute_dtype)  # [B, S, E]
    if self.embeddings_project is not None:
      embedded = self.embeddings_project(embedded)  # [B, S, H]
    bias = attention_bias(input_mask, self.ltr, self.rtl)  # [B, 1, 1|S, S]
    x, all_layer_outputs = embedded, []
    for k, layer in enumerate(self.layers):
      x = layer(x, bias, training, stateless_random.derive(seed, k + 1))
      all_layer_outputs.append(x)
    return BertOutput(sequence_output=x, pooled_output=x[:, 0],
                      all_layer_outputs=all_layer_outputs, embedding_output=embedded)
