"""Hugging Face `transformers` ELECTRA interop without torch or transformers.

Converts between the TF1 checkpoint names of this code base and the original
(see docs/checkpoints.md#pre-training-variables, docs/checkpoints.md#fine-tuning-variables) and the
state-dict keys of the `transformers` ELECTRA models (see
docs/checkpoints.md#hugging-face-conversion), in both directions, and reads and writes
`model.safetensors` with the `safetensors` package's numpy API (no torch needed). `transformers` 5
dropped its TF1 checkpoint loader (`load_tf_weights_in_electra`); this module replaces that path.

Supported models (`model_type`):

| model_type | transformers class | TF1 variables |
| --- | --- | --- |
| `discriminator` | `ElectraForPreTraining` | encoder, `discriminator_predictions/*` |
| `generator` | `ElectraForMaskedLM` | generator encoder, embeddings, `generator_predictions/*` |
| `token_classification` | `ElectraForTokenClassification` | encoder, `task_specific/<task>/dense` |
| `encoder` | `ElectraModel` (keys without `electra.`) | `electra/*` |

The generator encoder is `generator/*` in an ELECTRA pre-training checkpoint
and `electra/*` in a BERT-style MLM or tied-generator one
(docs/checkpoints.md#pre-training-variants).

Not mappable, by design of the two code bases: the fine-tuning
classification / regression head is ONE dense layer over [CLS]
(`task_specific/<task>/dense`), while `ElectraForSequenceClassification` has a
two-layer head (`classifier.dense` + gelu + `classifier.out_proj`), so no
weight assignment reproduces our logits; the QA head (start logits, a
start-conditioned end layer `qa_hidden`/`dense_1`, the answerability
classifier) has no counterpart in `ElectraForQuestionAnswering`'s single
`qa_outputs` [2, H]; Electric's two-tower cloze generator has none either. For
such models convert the fine-tuned encoder alone (`encoder`).

Name rules (HF <- TF1): `kernel` -> `weight` transposed ([in, out] ->
[out, in]); LayerNorm `gamma`/`beta` -> `weight`/`bias`; `*_embeddings` ->
`*_embeddings.weight`; `layer_<k>` -> `layer.<k>`; `discriminator_predictions/
dense_1` -> `dense_prediction`; `generator_predictions/output_bias` ->
`generator_lm_head.bias`. `generator_lm_head.weight` is tied to the word
embeddings and, as `save_pretrained` does, not written.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import logging
import os
import shutil
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from model import tokenization
from model.modeling import BertConfig, BertModel
from util import files

logger = logging.getLogger("electra")

MODEL_TYPES = ("discriminator", "generator", "token_classification", "encoder")
ARCHITECTURES = {
    "discriminator": "ElectraForPreTraining",
    "generator": "ElectraForMaskedLM",
    "token_classification": "ElectraForTokenClassification",
    "encoder": "ElectraModel",
}
# HF classes whose heads do not map onto this code base's heads (module docstring).
UNMAPPABLE_ARCHITECTURES = {
    "ElectraForSequenceClassification": "its 2-layer classifier (classifier.dense + "
                                        "classifier.out_proj) differs from our single "
                                        "task_specific/<task>/dense over [CLS]",
    "ElectraForQuestionAnswering": "its qa_outputs [2, H] differs from our start/end/"
                                   "answerability QA head",
    "ElectraForMultipleChoice": "this code base has no multiple-choice head",
    "ElectraForCausalLM": "this code base has no causal LM head",
}
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
LAYER_NORM_EPS = 1e-12  # modeling.LayerNorm's epsilon (docs/model.md#transformer-encoder).
HF_ACTIVATIONS = ("gelu", "relu", "tanh", "linear")  # Same functions on both sides.
# Buffers some transformers versions store in the state dict; not weights.
_IGNORED_HF_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids")
_TIED_LM_HEAD = "generator_lm_head.weight"
_HEAD_PREFIXES = ("discriminator_predictions.", "generator_predictions.", "generator_lm_head.",
                  "classifier.", "qa_outputs.")
SAFETENSORS_HINT = "pip install safetensors  (a dependency of this package: pip install -e .)"


# ----------------------------------------------------------------------------
# safetensors (the `safetensors` package's numpy API)
# ----------------------------------------------------------------------------

def _safetensors():
  """The `safetensors` package, or a ValueError saying how to install it."""
  try:
    import safetensors  # pylint: disable=import-outside-toplevel
    import safetensors.numpy  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError as e:
    raise ValueError(f"Hugging Face conversion needs the safetensors package: "
                     f"{SAFETENSORS_HINT}") from e
  return safetensors


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
  """Writes `tensors` to a `.safetensors` file (atomically) with `safetensors.numpy`.

  Args:
    path: str. File to write.
    tensors: {name: array}. Any numpy-convertible values (e.g. tf.Variable).
    metadata: {str: str} stored as `__metadata__` (e.g. {"format": "pt"}).

  Raises:
    ValueError: the package is missing, or it rejects a name, a dtype or the
      metadata.
  """
  st = _safetensors()
  arrays = {name: np.ascontiguousarray(np.asarray(value)) for name, value in tensors.items()}
  try:
    data = st.numpy.save(arrays, metadata=dict(metadata) if metadata else None)
  except (st.SafetensorError, TypeError, ValueError) as e:
    raise ValueError(f"Cannot write {path} as safetensors: {e}") from e
  with files.atomic_write(path, "wb") as f:
    f.write(data)


def read_safetensors(path: str, names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
  """Reads tensors from a `.safetensors` file with the `safetensors` package.

  Args:
    path: str. The file.
    names: tensors to read; None reads all.

  Returns:
    {name: array} in the stored dtype, except BF16 (which numpy lacks): it is
    widened, exactly, to float32.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: not a valid safetensors file (the package's message follows
      the file name), or a requested name that is not in it.
  """
  st = _safetensors()
  if not os.path.isfile(path):
    raise FileNotFoundError(f"safetensors file {path} does not exist.")
  try:
    with st.safe_open(path, framework="np") as f:
      wanted = sorted(f.keys()) if names is None else list(names)
      absent = [n for n in wanted if n not in set(f.keys())]
      if absent:
        raise ValueError(f"{path} has no tensors {absent}.")
      bf16 = {n for n in wanted if f.get_slice(n).get_dtype() == "BF16"}
      out = {n: f.get_tensor(n) for n in wanted if n not in bf16}
  except st.SafetensorError as e:
    raise ValueError(f"{path} is not a valid safetensors file: {e}") from e
  if bf16:
    with open(path, "rb") as f:
      raw = dict(st.deserialize(f.read()))
    for n in bf16:
      bits = np.frombuffer(raw[n]["data"], dtype="<u2").astype(np.uint32) << 16
      out[n] = bits.view(np.float32).reshape(raw[n]["shape"])
  return out


# ----------------------------------------------------------------------------
# The name / shape layout
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TensorMapping:
  """One HF state-dict entry and the TF1 variable it holds.

  Attributes:
    hf_name: transformers state-dict key.
    tf_name: TF1 checkpoint name.
    hf_shape: shape on the HF side; the TF shape is its reverse when `transpose`.
    transpose: dense kernel ([in, out] in TF, [out, in] in torch).
  """
  hf_name: str
  tf_name: str
  hf_shape: Tuple[int, ...]
  transpose: bool = False

  @property
  def tf_shape(self) -> Tuple[int, ...]:
    return tuple(reversed(self.hf_shape)) if self.transpose else self.hf_shape


@dataclasses.dataclass(frozen=True)
class ModelDims:
  """Sizes that fix every tensor shape of one HF ELECTRA model.

  Attributes:
    vocab_size: V.
    embedding_size: E, width of the embedding tables.
    hidden_size: H.
    num_hidden_layers: L.
    intermediate_size: I.
    max_position_embeddings: rows of the position table.
    type_vocab_size: rows of the token-type table.
    num_labels: C, token classification only.
  """
  vocab_size: int
  embedding_size: int
  hidden_size: int
  num_hidden_layers: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int
  num_labels: int = 0


def _dense(hf: str, tf: str, in_size: int, out_size: int) -> List[TensorMapping]:
  return [TensorMapping(f"{hf}.weight", f"{tf}/kernel", (out_size, in_size), True),
          TensorMapping(f"{hf}.bias", f"{tf}/bias", (out_size,))]


def _layer_norm(hf: str, tf: str, size: int) -> List[TensorMapping]:
  return [TensorMapping(f"{hf}.weight", f"{tf}/gamma", (size,)),
          TensorMapping(f"{hf}.bias", f"{tf}/beta", (size,))]


def _encoder_layout(dims: ModelDims, encoder_scope: str, embeddings_scope: str,
                    hf_prefix: str) -> List[TensorMapping]:
  """Embeddings, optional `embeddings_project` and the L transformer layers."""
  p, e, s = hf_prefix, embeddings_scope, encoder_scope
  emb, hidden, inner = dims.embedding_size, dims.hidden_size, dims.intermediate_size
  out = [
      TensorMapping(f"{p}embeddings.word_embeddings.weight", f"{e}/word_embeddings",
                    (dims.vocab_size, emb)),
      TensorMapping(f"{p}embeddings.position_embeddings.weight", f"{e}/position_embeddings",
                    (dims.max_position_embeddings, emb)),
      TensorMapping(f"{p}embeddings.token_type_embeddings.weight",
                    f"{e}/token_type_embeddings", (dims.type_vocab_size, emb)),
  ]
  out += _layer_norm(f"{p}embeddings.LayerNorm", f"{e}/LayerNorm", emb)
  if emb != hidden:  # docs/checkpoints.md#naming-rules.
    out += _dense(f"{p}embeddings_project", f"{s}/embeddings_project", emb, hidden)
  for k in range(dims.num_hidden_layers):
    hf, tf = f"{p}encoder.layer.{k}.", f"{s}/encoder/layer_{k}/"
    for part in ("query", "key", "value"):
      out += _dense(hf + "attention.self." + part, tf + "attention/self/" + part, hidden, hidden)
    out += _dense(hf + "attention.output.dense", tf + "attention/output/dense", hidden, hidden)
    out += _layer_norm(hf + "attention.output.LayerNorm", tf + "attention/output/LayerNorm",
                       hidden)
    out += _dense(hf + "intermediate.dense", tf + "intermediate/dense", hidden, inner)
    out += _dense(hf + "output.dense", tf + "output/dense", inner, hidden)
    out += _layer_norm(hf + "output.LayerNorm", tf + "output/LayerNorm", hidden)
  return out


def tensor_layout(model_type: str, dims: ModelDims, encoder_scope: str = "electra",
                  embeddings_scope: str = "electra/embeddings",
                  task_name: str = "chunk") -> List[TensorMapping]:
  """Every tensor of an HF ELECTRA model with its TF1 name and shapes.

  Args:
    model_type: one of MODEL_TYPES.
    dims: the model's sizes.
    encoder_scope: TF1 scope of the encoder and projection ("electra", or
      "generator" for an ELECTRA generator).
    embeddings_scope: TF1 scope of the embedding tables ("electra/embeddings"
      when shared, "generator/embeddings" for untied generator embeddings).
    task_name: the tagging task, for `token_classification`.

  Returns:
    TensorMappings in a fixed order (embeddings, layers, head).

  Raises:
    ValueError: an unknown model_type.
  """
  if model_type not in MODEL_TYPES:
    raise ValueError(f"Unknown model_type {model_type!r}; use one of {', '.join(MODEL_TYPES)}.")
  prefix = "" if model_type == "encoder" else "electra."
  out = _encoder_layout(dims, encoder_scope, embeddings_scope, prefix)
  hidden = dims.hidden_size
  if model_type == "discriminator":  # docs/model.md#discriminator-head-and-loss.
    out += _dense("discriminator_predictions.dense", "discriminator_predictions/dense",
                  hidden, hidden)
    out += _dense("discriminator_predictions.dense_prediction",
                  "discriminator_predictions/dense_1", hidden, 1)
  # docs/model.md#generator-head; the lm head weight is the tied table.
  elif model_type == "generator":
    out += _dense("generator_predictions.dense", "generator_predictions/dense", hidden,
                  dims.embedding_size)
    out += _layer_norm("generator_predictions.LayerNorm", "generator_predictions/LayerNorm",
                       dims.embedding_size)
    out.append(TensorMapping("generator_lm_head.bias", "generator_predictions/output_bias",
                             (dims.vocab_size,)))
  elif model_type == "token_classification":
    # docs/finetuning.md#tagging-head, docs/checkpoints.md#fine-tuning-variables.
    out += _dense("classifier", f"task_specific/{task_name}/dense", hidden, dims.num_labels)
  return out


# ----------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------

def hf_config(model_type: str, bert_config: BertConfig, embedding_size: int,
              labels: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """The transformers `config.json` of an exported model.

  Args:
    model_type: one of MODEL_TYPES.
    bert_config: the exported transformer's config (for a generator, the
      generator's own config: its hidden size, layers, heads).
    embedding_size: E, width of the embedding tables the model uses.
    labels: token classification label names, index = label id.

  Returns:
    A JSON-able ElectraConfig dict.
  """
  config: Dict[str, Any] = {
      "architectures": [ARCHITECTURES[model_type]],
      "model_type": "electra",
      "vocab_size": bert_config.vocab_size,
      "embedding_size": embedding_size,
      "hidden_size": bert_config.hidden_size,
      "num_hidden_layers": bert_config.num_hidden_layers,
      "num_attention_heads": bert_config.num_attention_heads,
      "intermediate_size": bert_config.intermediate_size,
      "hidden_act": bert_config.hidden_act or "linear",
      "hidden_dropout_prob": bert_config.hidden_dropout_prob,
      "attention_probs_dropout_prob": bert_config.attention_probs_dropout_prob,
      "max_position_embeddings": bert_config.max_position_embeddings,
      "type_vocab_size": bert_config.type_vocab_size,
      "initializer_range": bert_config.initializer_range,
      "layer_norm_eps": LAYER_NORM_EPS,
      "pad_token_id": 0,
      "position_embedding_type": "absolute",
      # ElectraConfig's sequence-summary defaults (unused by the exported heads).
      "summary_type": "first",
      "summary_use_proj": True,
      "summary_activation": "gelu",
      "summary_last_dropout": 0.1,
  }
  if model_type == "generator":
    config["tie_word_embeddings"] = True
  if labels is not None:
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
  return config


_REQUIRED_CONFIG_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                           "num_attention_heads", "intermediate_size")
# ElectraConfig's defaults for the fields a config.json may leave out.
_OPTIONAL_CONFIG_DEFAULTS = {
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
    "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
}


def bert_config_from_hf(config: Mapping[str, Any], source: str = CONFIG_FILE
                        ) -> Tuple[BertConfig, int]:
  """The BertConfig and embedding size an HF ElectraConfig describes.

  Args:
    config: the parsed `config.json`.
    source: its path, for error messages.

  Returns:
    (BertConfig, embedding_size).

  Raises:
    ValueError: not an ELECTRA config, a missing or non-integer size field,
      or a setting this code base computes differently (activation other than
      gelu/relu/tanh/linear, layer_norm_eps != 1e-12, relative position
      embeddings, a decoder); the message names the field and the file.
  """
  model_type = config.get("model_type", "electra")
  if model_type != "electra":
    raise ValueError(f"{source}: model_type is {model_type!r}; only ELECTRA models "
                     "(model_type \"electra\") can be converted.")
  missing = [f for f in _REQUIRED_CONFIG_FIELDS if f not in config]
  if missing:
    raise ValueError(f"{source} lacks the ElectraConfig fields {missing}; add them (the "
                     "sizes of the saved tensors) to the file.")
  for field in _REQUIRED_CONFIG_FIELDS + ("max_position_embeddings", "type_vocab_size"):
    value = config.get(field, _OPTIONAL_CONFIG_DEFAULTS.get(field))
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
      raise ValueError(f"{source}: {field} must be a positive integer, got {value!r}.")
  values = {**_OPTIONAL_CONFIG_DEFAULTS, **config}
  act = values["hidden_act"]
  if act not in HF_ACTIVATIONS:
    raise ValueError(f"{source}: hidden_act {act!r} is not supported; this code base "
                     f"implements {', '.join(HF_ACTIVATIONS)} (\"gelu\" is the exact erf "
                     "form, as in transformers).")
  if float(values["layer_norm_eps"]) != LAYER_NORM_EPS:
    raise ValueError(f"{source}: layer_norm_eps is {values['layer_norm_eps']}; this code "
                     f"base's layer norms use {LAYER_NORM_EPS} (the original's).")
  if values["position_embedding_type"] != "absolute":
    raise ValueError(f"{source}: position_embedding_type {values['position_embedding_type']!r} "
                     "is not supported; only \"absolute\" position embeddings exist here.")
  if values.get("is_decoder") or values.get("add_cross_attention"):
    raise ValueError(f"{source}: decoder / cross-attention ELECTRA models are not supported.")
  if values["hidden_size"] % values["num_attention_heads"]:
    raise ValueError(f"{source}: hidden_size {values['hidden_size']} is not a multiple of "
                     f"num_attention_heads {values['num_attention_heads']}.")
  bert_config = BertConfig(
      vocab_size=values["vocab_size"], hidden_size=values["hidden_size"],
      num_hidden_layers=values["num_hidden_layers"],
      num_attention_heads=values["num_attention_heads"],
      intermediate_size=values["intermediate_size"], hidden_act=act,
      hidden_dropout_prob=values["hidden_dropout_prob"],
      attention_probs_dropout_prob=values["attention_probs_dropout_prob"],
      max_position_embeddings=values["max_position_embeddings"],
      type_vocab_size=values["type_vocab_size"],
      initializer_range=values["initializer_range"])
  return bert_config, values["embedding_size"]


def _dims(bert_config: BertConfig, embedding_size: int, num_labels: int = 0) -> ModelDims:
  return ModelDims(
      vocab_size=bert_config.vocab_size, embedding_size=embedding_size,
      hidden_size=bert_config.hidden_size, num_hidden_layers=bert_config.num_hidden_layers,
      intermediate_size=bert_config.intermediate_size,
      max_position_embeddings=bert_config.max_position_embeddings,
      type_vocab_size=bert_config.type_vocab_size, num_labels=num_labels)


# ----------------------------------------------------------------------------
# TF1 -> HF
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class HFModel:
  """An HF ELECTRA model in memory.

  Attributes:
    tensors: {state-dict key: float32 array} in HF layout.
    config: the `config.json` dict.
  """
  tensors: Dict[str, np.ndarray]
  config: Dict[str, Any]


def _as_array(value: Any) -> np.ndarray:
  return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _shape_of(variables: Mapping[str, Any], name: str) -> Tuple[int, ...]:
  """A variable's shape without reading a lazily loaded checkpoint tensor."""
  if isinstance(variables, CheckpointArrays):
    return variables.shape(name)
  value = variables[name]
  return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def to_hf(variables: Mapping[str, Any], model_type: str, bert_config: BertConfig,
          embedding_size: Optional[int] = None, encoder_scope: str = "electra",
          embeddings_scope: str = "electra/embeddings", task_name: str = "chunk",
          labels: Optional[Sequence[str]] = None) -> HFModel:
  """Converts TF1-named variables to an HF ELECTRA state dict and config.

  Args:
    variables: {TF1 name: array or tf.Variable}; extra names (optimizer
      slots, other heads, the other network) are ignored.
    model_type: one of MODEL_TYPES.
    bert_config: config of the exported transformer (the generator's own
      config for a generator).
    embedding_size: E; None reads it from the word-embedding table.
    encoder_scope: "electra", or "generator" for an ELECTRA generator.
    embeddings_scope: "electra/embeddings" (shared tables) or
      "generator/embeddings" (untied generator embeddings).
    task_name: the tagging task for `token_classification`.
    labels: token classification label names by id; None names them
      LABEL_<i>.

  Returns:
    HFModel with float32 tensors.

  Raises:
    ValueError: a needed variable is missing or has another shape than the
      config implies (all are listed, with the fix), the number of labels
      does not match the head, or the generator's activation is not gelu
      (transformers' generator head always applies gelu).
  """
  table_name = f"{embeddings_scope}/word_embeddings"
  if embedding_size is None:
    if table_name not in variables:
      raise ValueError(_missing_message([table_name], variables, model_type))
    embedding_size = int(_shape_of(variables, table_name)[1])
  if model_type == "generator" and bert_config.hidden_act != "gelu":
    raise ValueError(f"The generator uses hidden_act {bert_config.hidden_act!r}, but "
                     "transformers' ElectraForMaskedLM head always applies gelu; it cannot be "
                     "exported exactly.")
  num_labels = 0
  if model_type == "token_classification":
    kernel = f"task_specific/{task_name}/dense/kernel"
    if kernel not in variables:
      raise ValueError(_missing_message([kernel], variables, model_type))
    num_labels = int(_shape_of(variables, kernel)[-1])
    if labels is not None and len(labels) != num_labels:
      raise ValueError(f"The {task_name} head has {num_labels} labels but {len(labels)} "
                       f"label names were given ({list(labels)}); pass the label mapping of "
                       "the fine-tuning run that wrote the checkpoint.")
    if labels is None:
      labels = [f"LABEL_{i}" for i in range(num_labels)]
  layout = tensor_layout(model_type, _dims(bert_config, embedding_size, num_labels),
                         encoder_scope, embeddings_scope, task_name)
  missing = [m.tf_name for m in layout if m.tf_name not in variables]
  if missing:
    raise ValueError(_missing_message(missing, variables, model_type))
  tensors, mismatched = {}, []
  for m in layout:
    shape = tuple(_shape_of(variables, m.tf_name))
    if shape != m.tf_shape:
      mismatched.append(f"    {m.tf_name}: checkpoint {list(shape)} vs expected "
                        f"{list(m.tf_shape)}")
      continue
    value = _as_array(variables[m.tf_name])
    value = value.T if m.transpose else value
    tensors[m.hf_name] = np.ascontiguousarray(value, dtype=np.float32)
  if mismatched:
    raise ValueError("\n".join(
        [f"The checkpoint does not fit the {model_type} config (H {bert_config.hidden_size}, "
         f"E {embedding_size}, L {bert_config.num_hidden_layers}, I "
         f"{bert_config.intermediate_size}, V {bert_config.vocab_size}):"] + mismatched
        + ["  Pass the hparams the model was trained with (model_size, embedding_size, "
           "model_hparam_overrides, vocab_size, generator_hidden_size, ...)."]))
  config = hf_config(model_type, bert_config, embedding_size,
                     labels if model_type == "token_classification" else None)
  return HFModel(tensors, config)


def encoder_to_hf(encoder: Any, variables: Mapping[str, Any], model_type: str,
                  task_name: str = "chunk", labels: Optional[Sequence[str]] = None) -> HFModel:
  """`to_hf` with the sizes and scopes read off a built `BertModel`.

  Args:
    encoder: the `BertModel` to export (a PretrainingModel's `discriminator`
      or `generator`, a FinetuningModel's `encoder`).
    variables: {TF1 name: variable or array} holding its variables and the
      head's (e.g. the model's `named_variables()`, restored).
    model_type: one of MODEL_TYPES.
    task_name, labels: see `to_hf`.

  Returns:
    HFModel.

  Raises:
    ValueError: `encoder` is not a single BertModel (Electric's two-tower
      generator has no transformers counterpart), or see `to_hf`.
  """
  if not isinstance(encoder, BertModel):
    raise ValueError(f"Cannot export a {type(encoder).__name__} to transformers: only a single "
                     "BertModel encoder maps (Electric's two-tower cloze generator has no "
                     "counterpart).")
  if encoder.ltr or encoder.rtl:
    raise ValueError(f"{encoder.scope} uses causal attention; transformers' ELECTRA is "
                     "bidirectional.")
  return to_hf(variables, model_type, encoder.config, encoder.embeddings.embedding_size,
               encoder_scope=encoder.scope, embeddings_scope=encoder.embeddings.scope,
               task_name=task_name, labels=labels)


def _missing_message(missing: Sequence[str], variables: Mapping[str, Any],
                     model_type: str) -> str:
  scopes = sorted({name.split("/", 1)[0] for name in variables if "/" in name})
  shown = list(missing[:12]) + ([f"... ({len(missing) - 12} more)"] if len(missing) > 12 else [])
  return "\n".join(
      [f"Cannot export a {model_type}: {len(missing)} needed variables are missing:"]
      + [f"    {name}" for name in shown]
      + [f"  The checkpoint's top-level scopes: {', '.join(scopes) or '(none)'}.",
         "  Check --model-type (a fine-tuned model has no discriminator_predictions; "
         "a discriminator-only model has no generator) and the hparams (layers, "
         "untied_generator_embeddings, electra_objective)."])


# ----------------------------------------------------------------------------
# HF -> TF1
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class ImportedModel:
  """An HF model converted to TF1 names.

  Attributes:
    variables: {TF1 name: float32 array}.
    bert_config: the transformer's BertConfig.
    embedding_size: E.
    model_type: the MODEL_TYPES entry it was read as.
    labels: token classification label names by id, else None.
  """
  variables: Dict[str, np.ndarray]
  bert_config: BertConfig
  embedding_size: int
  model_type: str
  labels: Optional[List[str]] = None


def detect_model_type(config: Mapping[str, Any], keys: Sequence[str],
                      source: str = CONFIG_FILE) -> str:
  """The MODEL_TYPES entry of an HF model, from `architectures` or else the keys.

  Raises:
    ValueError: an architecture whose head does not map (with the advice to
      import the encoder alone), or nothing recognisable.
  """
  architectures = config.get("architectures") or []
  by_class = {v: k for k, v in ARCHITECTURES.items()}
  for arch in architectures:
    if arch in by_class:
      return by_class[arch]
    if arch in UNMAPPABLE_ARCHITECTURES:
      raise ValueError(f"{source}: {arch} cannot be converted: "
                       f"{UNMAPPABLE_ARCHITECTURES[arch]}. Pass --model-type encoder "
                       "(model_type=\"encoder\") to import the encoder alone.")
  keys = set(keys)
  if any(k.startswith("discriminator_predictions.") for k in keys):
    return "discriminator"
  if any(k.startswith("generator_predictions.") for k in keys):
    return "generator"
  if "classifier.weight" in keys:
    return "token_classification"
  if any(k.startswith(("classifier.", "qa_outputs.")) for k in keys):
    raise ValueError(f"{source}: the model's head (classifier.dense / qa_outputs) does not "
                     "map to this code base's heads; pass --model-type encoder to import the "
                     "encoder alone.")
  if any(k.startswith(("electra.", "embeddings.")) for k in keys):
    return "encoder"
  raise ValueError(f"{source}: not an ELECTRA state dict (architectures {architectures}, "
                   f"keys like {sorted(keys)[:3]}); pass --model-type.")


def _normalize_keys(tensors: Mapping[str, np.ndarray], model_type: str) -> Dict[str, np.ndarray]:
  """HF keys in the layout `tensor_layout(model_type)` uses.

  `ElectraModel` state dicts have no `electra.` prefix; every other class has
  one. Non-weight buffers are dropped.
  """
  has_prefix = any(k.startswith("electra.") for k in tensors)
  out = {}
  for key, value in tensors.items():
    bare = key[len("electra."):] if key.startswith("electra.") else key
    if bare in _IGNORED_HF_KEYS:
      continue
    if model_type == "encoder":
      # A head of a larger model keeps its name and is reported as dropped.
      out[key if has_prefix and not key.startswith("electra.") else bare] = value
    elif has_prefix or key.startswith(_HEAD_PREFIXES):
      out[key] = value
    else:  # An ElectraModel state dict read as a model with a head.
      out["electra." + key] = value
  return out


def from_hf(tensors: Mapping[str, np.ndarray], config: Mapping[str, Any],
            model_type: Optional[str] = None, task_name: str = "chunk",
            encoder_scope: str = "electra", embeddings_scope: str = "electra/embeddings",
            source: str = "the Hugging Face model") -> ImportedModel:
  """Converts an HF ELECTRA state dict to TF1-named float32 arrays.

  Args:
    tensors: {state-dict key: array} (any float dtype; cast to float32).
    config: the parsed `config.json`.
    model_type: one of MODEL_TYPES; None detects it (`detect_model_type`).
      `encoder` drops any head, with a warning.
    task_name: TF1 task scope for `token_classification`.
    encoder_scope: TF1 scope of the encoder ("generator" when importing an
      ELECTRA generator next to a discriminator).
    embeddings_scope: TF1 scope of the embedding tables.
    source: the model's directory, for messages.

  Returns:
    ImportedModel.

  Raises:
    ValueError: invalid config (see `bert_config_from_hf`), unknown or
      missing keys, shape mismatches (all listed), a non-float tensor, or an
      untied `generator_lm_head.weight`.
  """
  bert_config, embedding_size = bert_config_from_hf(config, os.path.join(source, CONFIG_FILE))
  if model_type is None:
    model_type = detect_model_type(config, list(tensors), os.path.join(source, CONFIG_FILE))
  if model_type not in MODEL_TYPES:
    raise ValueError(f"Unknown model_type {model_type!r}; use one of {', '.join(MODEL_TYPES)}.")
  if model_type == "generator" and bert_config.hidden_act != "gelu":
    raise ValueError(f"{source}: hidden_act is {bert_config.hidden_act!r}, but transformers' "
                     "generator head always applies gelu while this code base's uses "
                     "hidden_act; import it with --model-type encoder.")
  tensors = _normalize_keys(tensors, model_type)
  labels = None
  num_labels = 0
  if model_type == "token_classification":
    if "classifier.weight" not in tensors:
      raise ValueError(f"{source} has no classifier.weight; it is not an "
                       "ElectraForTokenClassification model (check --model-type).")
    num_labels = int(np.shape(tensors["classifier.weight"])[0])
    labels = _labels(config, num_labels, source)
  layout = tensor_layout(model_type, _dims(bert_config, embedding_size, num_labels),
                         encoder_scope, embeddings_scope, task_name)
  expected = {m.hf_name: m for m in layout}
  extra = sorted(set(tensors) - set(expected))
  if _TIED_LM_HEAD in extra and model_type == "generator":
    _check_tied_lm_head(tensors, config, source)
    extra.remove(_TIED_LM_HEAD)
  if extra and model_type == "encoder":
    logger.warning("Importing the encoder only: dropping %d head tensors of %s: %s",
                   len(extra), source, ", ".join(extra))
    extra = []
  missing = [k for k in expected if k not in tensors]
  mismatched = [f"    {k}: file {list(np.shape(tensors[k]))} vs config "
                f"{list(expected[k].hf_shape)}"
                for k in expected if k in tensors and tuple(np.shape(tensors[k]))
                != expected[k].hf_shape]
  if extra or missing or mismatched:
    raise ValueError(_import_error(source, model_type, extra, missing, mismatched))
  variables = {}
  for key, m in expected.items():
    value = np.asarray(tensors[key])
    if value.dtype.kind != "f":
      raise ValueError(f"{source}: tensor {key} has dtype {value.dtype}; weights must be "
                       "floating point.")
    value = value.T if m.transpose else value
    variables[m.tf_name] = np.ascontiguousarray(value, dtype=np.float32)
  return ImportedModel(variables, bert_config, embedding_size, model_type, labels)


def _labels(config: Mapping[str, Any], num_labels: int, source: str) -> List[str]:
  id2label = config.get("id2label")
  if not id2label:
    return [f"LABEL_{i}" for i in range(num_labels)]
  try:
    by_id = {int(k): str(v) for k, v in id2label.items()}
  except (AttributeError, ValueError) as e:
    raise ValueError(f"{source}: id2label must map label ids to names; got {id2label!r}.") from e
  if sorted(by_id) != list(range(num_labels)):
    raise ValueError(f"{source}: id2label has ids {sorted(by_id)} but classifier.weight has "
                     f"{num_labels} rows; fix config.json.")
  names = [by_id[i] for i in range(num_labels)]
  if len(set(names)) != len(names):
    raise ValueError(f"{source}: id2label has duplicate names {names}.")
  return names


def _check_tied_lm_head(tensors: Mapping[str, np.ndarray], config: Mapping[str, Any],
                        source: str) -> None:
  """A stored lm head weight must be the word-embedding table (weights are tied here)."""
  table = tensors.get("electra.embeddings.word_embeddings.weight")
  head = np.asarray(tensors[_TIED_LM_HEAD])
  if (config.get("tie_word_embeddings", True) is False or table is None
      or head.shape != np.shape(table) or not np.array_equal(head, np.asarray(table))):
    raise ValueError(f"{source}: generator_lm_head.weight differs from the word embeddings "
                     "(tie_word_embeddings false?); this code base's generator head always "
                     "uses the embedding table, so an untied head cannot be imported.")


def _import_error(source: str, model_type: str, extra: Sequence[str], missing: Sequence[str],
                  mismatched: Sequence[str]) -> str:
  lines = [f"Cannot import {source} as {ARCHITECTURES[model_type]} ({model_type}):"]
  if extra:
    lines.append(f"  {len(extra)} unknown tensors: {', '.join(extra[:12])}"
                 + (" ..." if len(extra) > 12 else ""))
  if missing:
    lines.append(f"  {len(missing)} missing tensors: {', '.join(missing[:12])}"
                 + (" ..." if len(missing) > 12 else ""))
  if mismatched:
    lines.append(f"  {len(mismatched)} tensors whose shape does not fit config.json:")
    lines += list(mismatched)
  lines.append("  Check --model-type (the model's head) and that config.json belongs to these "
               "weights; --model-type encoder imports the encoder alone.")
  return "\n".join(lines)


def combine_generator(discriminator: ImportedModel, generator: ImportedModel
                      ) -> Tuple[Dict[str, np.ndarray], bool]:
  """Merges a discriminator and a generator import into one pre-training checkpoint.

  `generator` must have been imported with `encoder_scope="generator"` and
  `embeddings_scope="generator/embeddings"`. The ELECTRA generator shares the
  discriminator's embeddings (docs/checkpoints.md#hugging-face-conversion); when its tables equal
  the discriminator's they are dropped (tied), else, if its embeddings are as wide
  as its hidden size, they are kept as untied `generator/embeddings/*`.

  Returns:
    ({TF1 name: array}, untied_generator_embeddings).

  Raises:
    ValueError: different vocabularies, or different tables that cannot be
      untied embeddings (width != generator hidden size).
  """
  if discriminator.bert_config.vocab_size != generator.bert_config.vocab_size:
    raise ValueError(f"The generator's vocab_size {generator.bert_config.vocab_size} differs "
                     f"from the discriminator's {discriminator.bert_config.vocab_size}.")
  variables = dict(discriminator.variables)
  gen_tables = {n: v for n, v in generator.variables.items()
                if n.startswith("generator/embeddings/")}
  shared = {n.replace("generator/embeddings/", "electra/embeddings/", 1): v
            for n, v in gen_tables.items()}
  tied = all(n in variables and variables[n].shape == v.shape and np.array_equal(variables[n], v)
             for n, v in shared.items())
  if not tied and generator.embedding_size != generator.bert_config.hidden_size:
    raise ValueError("The generator's embeddings differ from the discriminator's, and being "
                     f"{generator.embedding_size} wide (hidden size "
                     f"{generator.bert_config.hidden_size}) they cannot be untied generator "
                     "embeddings either; import the two models separately.")
  for name, value in generator.variables.items():
    if not (tied and name in gen_tables):
      variables[name] = value
  return variables, not tied


# ----------------------------------------------------------------------------
# Directories
# ----------------------------------------------------------------------------

def tokenizer_config(do_lower_case: bool, model_max_length: int,
                     strip_accents: bool = True) -> Dict[str, Any]:
  """`tokenizer_config.json` for the BERT WordPiece vocab (ElectraTokenizer).

  `strip_accents` is written explicitly: our `BasicTokenizer` strips accents
  only when lower-casing and `strip_accents` is set, so a cased model keeps
  case and accents in `transformers` too.
  """
  return {
      "tokenizer_class": "ElectraTokenizer",
      "do_lower_case": bool(do_lower_case),
      "strip_accents": bool(do_lower_case and strip_accents),
      "tokenize_chinese_chars": True,
      "model_max_length": model_max_length,
      "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
      "cls_token": "[CLS]", "mask_token": "[MASK]",
  }


def check_vocab_size(vocab_file: str, vocab_size: int) -> int:
  """Checks `vocab_file` against the model's vocab_size (`tokenization.resolve_vocab_size`).

  Returns:
    The number of lines of `vocab_file`; fewer than vocab_size (padding rows)
    is logged.

  Raises:
    ValueError: more lines than vocab_size (their ids would be out of range).
  """
  tokenization.resolve_vocab_size(vocab_file, vocab_size, "the model's vocab_size")
  return tokenization.count_vocab_lines(vocab_file)


def save_hf_dir(output_dir: str, model: HFModel, vocab_file: Optional[str],
                do_lower_case: bool = True, overwrite: bool = False,
                strip_accents: bool = True) -> List[str]:
  """Writes `model.safetensors`, `config.json`, `vocab.txt`, `tokenizer_config.json`.

  Args:
    output_dir: directory to write (created).
    model: the HFModel.
    vocab_file: the WordPiece vocabulary, copied to `vocab.txt`; None writes
      no tokenizer files (with a warning).
    do_lower_case: the tokenizer setting of the model.
    overwrite: replace files of a non-empty `output_dir`.
    strip_accents: the model's accent setting (only effective when lower-casing).

  Returns:
    The paths written.

  Raises:
    FileExistsError: `output_dir` is not empty and `overwrite` is false.
    ValueError: the vocabulary has more entries than vocab_size.
  """
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise FileExistsError(f"Output directory {output_dir} is not empty; pass --overwrite "
                          "(overwrite=True) or choose another directory.")
  if vocab_file is not None:
    check_vocab_size(vocab_file, model.config["vocab_size"])
  files.mkdir(output_dir)
  paths = [os.path.join(output_dir, SAFETENSORS_FILE), os.path.join(output_dir, CONFIG_FILE)]
  write_safetensors(paths[0], model.tensors, {"format": "pt"})
  files.write_json(model.config, paths[1])
  if vocab_file is None:
    logger.warning("No vocabulary: %s has no vocab.txt / tokenizer_config.json.", output_dir)
    return paths
  vocab_out = os.path.join(output_dir, VOCAB_FILE)
  if os.path.abspath(vocab_file) != os.path.abspath(vocab_out):
    with open(vocab_file, "rb") as src, files.atomic_write(vocab_out, "wb") as dst:
      shutil.copyfileobj(src, dst)
  tok_path = os.path.join(output_dir, TOKENIZER_CONFIG_FILE)
  files.write_json(tokenizer_config(do_lower_case, model.config["max_position_embeddings"],
                                    strip_accents), tok_path)
  return paths + [vocab_out, tok_path]


@dataclasses.dataclass
class HFDirectory:
  """What `load_hf_dir` read.

  Attributes:
    tensors: {state-dict key: array}.
    config: the parsed config.json.
    do_lower_case: from tokenizer_config.json (True when absent, the
      ElectraTokenizer default).
    vocab_file: path of vocab.txt, or None.
    weights_file: the weights file(s) read.
  """
  tensors: Dict[str, np.ndarray]
  config: Dict[str, Any]
  do_lower_case: bool
  vocab_file: Optional[str]
  weights_file: str


def load_hf_dir(hf_dir: str) -> HFDirectory:
  """Reads a `save_pretrained` directory: config, weights, tokenizer settings.

  Weights come from `model.safetensors`, a sharded
  `model.safetensors.index.json`, or (only if torch is installed)
  `pytorch_model.bin`.

  Raises:
    FileNotFoundError: no directory, no config.json or no weights file.
    ValueError: unreadable files; `pytorch_model.bin` without torch.
  """
  if not os.path.isdir(hf_dir):
    raise FileNotFoundError(f"Hugging Face model directory {hf_dir} does not exist.")
  config_path = os.path.join(hf_dir, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{hf_dir} has no {CONFIG_FILE}; it is not a save_pretrained "
                            "directory.")
  config = files.load_json_object(config_path, "Hugging Face config")
  tensors, weights_file = _load_weights(hf_dir)
  do_lower_case = True
  tok_path = os.path.join(hf_dir, TOKENIZER_CONFIG_FILE)
  if os.path.isfile(tok_path):
    do_lower_case = bool(files.load_json(tok_path).get("do_lower_case", True))
  vocab = os.path.join(hf_dir, VOCAB_FILE)
  return HFDirectory(tensors, config, do_lower_case, vocab if os.path.isfile(vocab) else None,
                     weights_file)


def _load_weights(hf_dir: str) -> Tuple[Dict[str, np.ndarray], str]:
  single = os.path.join(hf_dir, SAFETENSORS_FILE)
  if os.path.isfile(single):
    return read_safetensors(single), single
  index = os.path.join(hf_dir, SAFETENSORS_INDEX_FILE)
  if os.path.isfile(index):
    weight_map = files.load_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
      raise ValueError(f"{index} has no weight_map object.")
    tensors: Dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
      names = sorted(k for k, v in weight_map.items() if v == shard)
      tensors.update(read_safetensors(os.path.join(hf_dir, shard), names))
    return tensors, index
  torch_file = os.path.join(hf_dir, PYTORCH_FILE)
  if os.path.isfile(torch_file):
    return _load_torch_state_dict(torch_file), torch_file
  raise FileNotFoundError(f"{hf_dir} has no {SAFETENSORS_FILE}, {SAFETENSORS_INDEX_FILE} or "
                          f"{PYTORCH_FILE}.")


def _load_torch_state_dict(path: str) -> Dict[str, np.ndarray]:
  try:
    import torch  # Optional dependency: only for pytorch_model.bin.
  except ImportError as e:
    raise ValueError(f"{path} is a torch pickle and torch is not installed. Install torch "
                     "(pip install torch), or re-save the model as safetensors "
                     "(model.save_pretrained(dir) in transformers writes model.safetensors)."
                     ) from e
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises pickle, zip and runtime errors alike.
    raise ValueError(f"Cannot read the torch state dict {path}: {e}") from e
  if not isinstance(state, dict):
    raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict.")
  return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
          for k, v in state.items()}


# ----------------------------------------------------------------------------
# TF1 checkpoints
# ----------------------------------------------------------------------------

class CheckpointArrays(collections.abc.Mapping):
  """Read-only {TF1 name: np.ndarray} view of a checkpoint, read lazily.

  Args:
    path: checkpoint directory (its latest) or prefix.
  """

  def __init__(self, path: str):
    import tensorflow as tf  # Lazy: the safetensors / mapping code needs no TF.
    from model import checkpointing

    self.prefix = checkpointing.resolve_checkpoint(path)
    self._reader = tf.train.load_checkpoint(self.prefix)
    self._shapes = {n: tuple(s) for n, s in checkpointing.list_checkpoint(self.prefix).items()}

  def __getitem__(self, name: str) -> np.ndarray:
    if name not in self._shapes:
      raise KeyError(name)
    return np.asarray(self._reader.get_tensor(name))

  def __contains__(self, name: object) -> bool:
    return name in self._shapes

  def __iter__(self) -> Iterator[str]:
    return iter(self._shapes)

  def __len__(self) -> int:
    return len(self._shapes)

  def shape(self, name: str) -> Tuple[int, ...]:
    return self._shapes[name]


def write_checkpoint(model_dir: str, arrays: Mapping[str, np.ndarray], step: int = 0) -> str:
  """Saves {TF1 name: array} as `<model_dir>/model.ckpt-<step>` with `global_step`.

  Every array becomes a trainable float32 variable; `global_step` (int64,
  = `step`) is added so that a strict restore (resuming pre-training) finds
  it. Adam slots are absent, like in the released checkpoints (their
  restore creates fresh zero slots, docs/checkpoints.md#released-google-checkpoints).

  Returns:
    The checkpoint prefix.
  """
  import tensorflow as tf
  from model import checkpointing

  variables = {name: tf.Variable(np.asarray(value, np.float32), name=name)
               for name, value in arrays.items()}
  variables["global_step"] = tf.Variable(step, dtype=tf.int64, trainable=False,
                                         name="global_step")
  return checkpointing.save_checkpoint(model_dir, step, variables, keep_checkpoint_max=None)
