"""An independent numpy (float64) re-implementation of the ELECTRA forward pass.

Reads weights BY CHECKPOINT NAME from a {name: np.ndarray} dict (see
docs/checkpoints.md#pre-training-variables, docs/model.md#transformer-encoder,
docs/model.md#electric), loops over examples and heads with plain 2-D matrix products, and builds
masks element by element, so it shares no code (and no layout trick) with `model/modeling.py`.
"""
import math
import re
from typing import Dict

import numpy as np
from scipy.special import erf

Weights = Dict[str, np.ndarray]


def weights_of(module) -> Weights:
  """{checkpoint name: float64 array} from a NamedModule's `named_variables()`."""
  return {name: np.asarray(v.numpy(), np.float64) for name, v in module.named_variables().items()}


def randomize(module, seed: int = 0, scale: float = 0.2) -> None:
  """Assigns O(1)-scale random values to every variable of `module` (in place).

  Initial weights (std 0.02) keep pre-activations so small that GELU's exact
  and tanh forms, or softmax and a plain average, agree to 1e-6; random
  weights make the reference comparison sensitive to such mistakes.
  """
  rng = np.random.RandomState(seed)
  for name, variable in module.named_variables().items():
    value = scale * rng.randn(*variable.shape)
    if name.endswith("/gamma"):
      value += 1.0
    variable.assign(value.astype(np.float32))


def gelu(x: np.ndarray) -> np.ndarray:
  return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
               eps: float = 1e-12) -> np.ndarray:
  mean = x.mean(axis=-1, keepdims=True)
  var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(x: np.ndarray) -> np.ndarray:
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
  shifted = x - x.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def attention_mask(input_mask: np.ndarray, ltr: bool = False, rtl: bool = False) -> np.ndarray:
  """[S, S] 0/1 mask of one example: key j visible from query i (docs/model.md#attention-mask)."""
  seq_length = len(input_mask)
  mask = np.zeros([seq_length, seq_length])
  for i in range(seq_length):
    for j in range(seq_length):
      allowed = input_mask[j] == 1
      if ltr:
        allowed = allowed and j <= i
      if rtl:
        allowed = allowed and j >= i
      mask[i, j] = 1.0 if allowed else 0.0
  return mask


def _dense(w: Weights, scope: str, x: np.ndarray) -> np.ndarray:
  return x @ w[scope + "/kernel"] + w[scope + "/bias"]


def _ln(w: Weights, scope: str, x: np.ndarray) -> np.ndarray:
  return layer_norm(x, w[scope + "/gamma"], w[scope + "/beta"])


def embed(w: Weights, emb_scope: str, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
  """[S, E] embeddings of one example (no dropout)."""
  seq_length = len(input_ids)
  out = (w[emb_scope + "/word_embeddings"][input_ids]
         + w[emb_scope + "/token_type_embeddings"][segment_ids]
         + w[emb_scope + "/position_embeddings"][:seq_length])
  return _ln(w, emb_scope + "/LayerNorm", out)


def bert_forward(w: Weights, scope: str, num_heads: int, input_ids: np.ndarray,
                 input_mask: np.ndarray, segment_ids: np.ndarray,
                 emb_scope: str = "electra/embeddings", ltr: bool = False,
                 rtl: bool = False, activation=gelu) -> np.ndarray:
  """sequence_output [B, S, H] of the transformer `scope` in eval mode."""
  num_layers = len({m.group(1) for name in w
                    for m in [re.match(re.escape(scope) + r"/encoder/layer_(\d+)/", name)] if m})
  outputs = []
  for b in range(input_ids.shape[0]):
    x = embed(w, emb_scope, input_ids[b], segment_ids[b])
    if scope + "/embeddings_project/kernel" in w:
      x = _dense(w, scope + "/embeddings_project", x)
    mask = attention_mask(input_mask[b], ltr, rtl)
    for k in range(num_layers):
      x = _layer(w, f"{scope}/encoder/layer_{k}", x, mask, num_heads, activation)
    outputs.append(x)
  return np.stack(outputs)


def _layer(w: Weights, p: str, x: np.ndarray, mask: np.ndarray, num_heads: int,
           activation) -> np.ndarray:
  hidden = x.shape[-1]
  d = hidden // num_heads
  q = _dense(w, p + "/attention/self/query", x)
  k = _dense(w, p + "/attention/self/key", x)
  v = _dense(w, p + "/attention/self/value", x)
  heads = []
  for h in range(num_heads):
    cols = slice(h * d, (h + 1) * d)
    scores = q[:, cols] @ k[:, cols].T / math.sqrt(d)
    # The bias is added in float32, as in the original: on a row with every key
    # masked (an rtl/ltr query at a padding position) the sum's resolution is
    # ~1e-3, which visibly changes that row's softmax.
    scores = (scores.astype(np.float32) + ((1.0 - mask) * -10000.0).astype(np.float32))
    heads.append(softmax(scores.astype(np.float64)) @ v[:, cols])
  context = np.concatenate(heads, axis=-1)
  attended = _dense(w, p + "/attention/output/dense", context)
  a = _ln(w, p + "/attention/output/LayerNorm", attended + x)
  i = activation(_dense(w, p + "/intermediate/dense", a))
  return _ln(w, p + "/output/LayerNorm", _dense(w, p + "/output/dense", i) + a)


def token_logits(w: Weights, head_scope: str, table_name: str, reprs: np.ndarray) -> np.ndarray:
  """MLM / cloze head (docs/model.md#generator-head): [..., in] -> [..., V]."""
  h = _ln(w, head_scope + "/LayerNorm", gelu(_dense(w, head_scope + "/dense", reprs)))
  return h @ w[table_name].T + w[head_scope + "/output_bias"]


def discriminator_logits(w: Weights, sequence_output: np.ndarray) -> np.ndarray:
  """discriminator_predictions head (docs/model.md#discriminator-head-and-loss): [B, S, H] -> [B,
  S]."""
  h = gelu(_dense(w, "discriminator_predictions/dense", sequence_output))
  return _dense(w, "discriminator_predictions/dense_1", h)[..., 0]


def cloze_reprs(ltr_out: np.ndarray, rtl_out: np.ndarray) -> np.ndarray:
  """Electric's representation: position t = [ltr[t-1], rtl[t+1]], indices mod S."""
  seq_length = ltr_out.shape[1]
  out = []
  for t in range(seq_length):
    out.append(np.concatenate([ltr_out[:, (t - 1) % seq_length],
                               rtl_out[:, (t + 1) % seq_length]], axis=-1))
  return np.stack(out, axis=1)


def softmax_loss(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray):
  """(loss, per_example_loss) of docs/model.md#softmax-loss."""
  logp = log_softmax(logits)
  per_example = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  return (weights * per_example).sum() / (weights.sum() + 1e-6), per_example


def sigmoid_bce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def scatter_ids(sequence: np.ndarray, updates: np.ndarray, positions: np.ndarray):
  """docs/model.md#gather-and-scatter for int ids: average duplicates (floor), ignore position 0."""
  new, updated = sequence.copy(), np.zeros_like(sequence)
  for b in range(sequence.shape[0]):
    hits: Dict[int, list] = {}
    for u, p in zip(updates[b], positions[b]):
      if p != 0:
        hits.setdefault(int(p), []).append(int(u))
    for p, values in hits.items():
      new[b, p] = sum(values) // len(values)
      updated[b, p] = 1
  return new, updated


def electric_log_q(cloze_logits: np.ndarray, ids: np.ndarray, mask_prob: float) -> np.ndarray:
  """log q(ids_t | context) + log(k / (1 - k)) (docs/model.md#electric)."""
  logq = np.take_along_axis(log_softmax(cloze_logits), ids[..., None], axis=-1)[..., 0]
  return logq + math.log(mask_prob / (1.0 - mask_prob))
