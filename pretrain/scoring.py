"""Text scoring with pre-trained models: Electric energies and masked-LM pseudo-likelihoods.

Beyond the original, which released Electric's training code but no scoring
code. Three scorers share one interface, `score(texts) -> [SentenceScore]`:

| method | model | per-token score | passes per text |
| --- | --- | --- | --- |
| `electric` | Electric (`electric_objective`) | -E(x)_t, the negated energy | 1 |
| `cloze` | Electric's two-tower generator | log q(x_t given x_\\t) | 1 |
| `mlm` | BERT-style MLM or ELECTRA generator | log p(x_t given x, t masked) | n |

Electric's score (Clark et al., EMNLP 2020, "Pre-Training Transformers as
Energy-Based Cloze Models"). The model is an energy-based cloze model

  p_θ(x_t | x_\\t) = exp(-E(x)_t) / Z(x_\\t).

NCE trains it without computing Z: a fraction k = `mask_prob` of the positions
hold noise tokens drawn from the cloze model q(x_t | x_\\t), the rest (1 - k)
data tokens, and a binary classifier that uses the unnormalised density
exp(-E(x)_t) for data and q for noise predicts

  P(noise at t) = k·q(x_t|x_\\t) / (k·q(x_t|x_\\t) + (1-k)·exp(-E(x)_t))
                = σ(E(x)_t + log q(x_t|x_\\t) + log(k / (1-k))).

The original computes σ(s_t + log q_t + log(k/(1-k))) with s_t the
`discriminator_predictions` output (docs/model.md#electric), so s_t IS the energy E(x)_t
(higher: more likely noise) and log p̃_θ(x_t | x_\\t) = -s_t is the token's
unnormalised log-likelihood. NCE's optimum is self-normalised (Z ≈ 1, the
classifier is Bayes-optimal only if exp(-E) = p_data), so the paper scores a
text by the approximate pseudo-log-likelihood Σ_t -E(x)_t, read off ONE
discriminator pass over the clean text. We sum over the real word pieces
([CLS], [SEP] and padding excluded). The masked-LM baseline is the
pseudo-log-likelihood of Salazar et al. (ACL 2020),
Σ_t log p(x_t | x with only position t masked): one pass per token.

Texts are tokenized with the model's WordPiece vocab and fed as
`[CLS] pieces [SEP]` (segment 0). Batches are sorted by length and padded to
a multiple of `length_bucket`, so the compiled functions see few shapes.

Letters: B batch, S padded length, n real pieces of a text, V vocabulary.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from model import checkpointing, tokenization
from model.modeling import BertModel
from pretrain.pretrain_data import Inputs
from pretrain.pretraining_model import PretrainingModel

METHODS = ("electric", "cloze", "mlm")


class SentenceScore(NamedTuple):
  """The score of one text.

  Attributes:
    tokens: the n word pieces scored (no [CLS]/[SEP]).
    token_scores: n floats, the per-piece log-scores (see the module table).
    total: their sum (0.0 for an empty text).
  """
  tokens: List[str]
  token_scores: List[float]
  total: float


def checkpoint_kind(variable_names: Sequence[str]) -> str:
  """Which pre-training model a checkpoint holds, from its variable names.

  Args:
    variable_names: the checkpoint's variable names.

  Returns:
    "electric" (has `cloze_predictions/`: Electric, or ELECTRA with the
    two-tower generator), "electra" (`generator_predictions/` and
    `discriminator_predictions/`), "mlm" (`generator_predictions/` only),
    "uniform_generator" (`discriminator_predictions/` only) or "unknown".
  """
  scopes = {name.split("/", 1)[0] for name in variable_names}
  has = scopes.__contains__
  if has("cloze_predictions"):
    return "electric"
  if has("generator_predictions"):
    return "electra" if has("discriminator_predictions") else "mlm"
  if has("discriminator_predictions"):
    return "uniform_generator"
  return "unknown"


def model_kind(config) -> str:
  """The kind of model a `PretrainingConfig` builds.

  Returns:
    "electric", "electra_two_tower" (ELECTRA objective with the two-tower
    generator), "uniform_generator", "electra" or "mlm" (BERT-style).
  """
  if config.electric_objective:
    return "electric"
  if config.electra_objective:
    if config.uniform_generator:
      return "uniform_generator"
    return "electra_two_tower" if config.two_tower_generator else "electra"
  return "mlm"


_KIND_DESCRIPTIONS = {
    "electric": "an Electric model",
    "electra_two_tower": "an ELECTRA model with a two-tower generator",
    "uniform_generator": "an ELECTRA model with a uniform generator",
    "electra": "an ELECTRA model",
    "mlm": "a BERT-style masked LM",
    "unknown": "a model without pre-training heads (e.g. fine-tuned or discriminator-only)",
}


def describe_kind(kind: str) -> str:
  """Words such as "an ELECTRA model" for a `model_kind` / `checkpoint_kind` value."""
  return _KIND_DESCRIPTIONS.get(kind, f"a(n) {kind} model")


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


class _Batch(NamedTuple):
  """Host arrays of one padded batch (int32 [B, S]) and the rows' text indices."""
  input_ids: np.ndarray
  input_mask: np.ndarray
  text_indices: List[int]


class Scorer:
  """Base class: tokenization, length checks, length-sorted batching.

  Args:
    model: a built `PretrainingModel` (variables restored, or random for benchmarks).
    tokenizer: the WordPiece tokenizer of the model's vocabulary.
    batch_size: rows per forward pass (texts for one-pass methods, masked
      copies for `mlm`).
    max_seq_length: longest input, [CLS] and [SEP] included; at most the
      model's `max_position_embeddings`.
    use_xla: compile the forward pass with XLA.
    length_bucket: batches are padded to a multiple of this length (fewer
      distinct shapes to trace or compile).

  Raises:
    ValueError: the model cannot score with this method, or bad sizes.
  """

  method = ""

  def __init__(self, model: PretrainingModel, tokenizer: tokenization.FullTokenizer,
               batch_size: int = 32, max_seq_length: int = 128, use_xla: bool = False,
               length_bucket: int = 16):
    self._check_model(model)
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    max_positions = model.bert_config.max_position_embeddings
    if not 3 <= max_seq_length <= max_positions:
      raise ValueError(f"max_seq_length must be in [3, {max_positions}] (the model's "
                       f"max_position_embeddings); got {max_seq_length}.")
    if length_bucket < 1:
      raise ValueError(f"length_bucket must be >= 1; got {length_bucket}.")
    self.model = model
    self.tokenizer = tokenizer
    self.batch_size = batch_size
    self.max_seq_length = max_seq_length
    self.use_xla = use_xla
    self.length_bucket = length_bucket
    special = model.special_ids
    self.cls_id, self.sep_id, self.mask_id = special.cls_id, special.sep_id, special.mask_id

  # ------------------------------------------------------------------ subclass API
  def _check_model(self, model: PretrainingModel) -> None:
    """Raises ValueError if `model` cannot be scored with this method."""
    raise NotImplementedError

  def variables(self) -> Dict[str, tf.Variable]:
    """The {checkpoint name: variable} this scorer reads (what `restore` loads)."""
    raise NotImplementedError

  def _score_ids(self, ids: List[List[int]]) -> List[np.ndarray]:
    """Per-piece float64 scores [n] of each id list (pieces without [CLS]/[SEP])."""
    raise NotImplementedError

  # ------------------------------------------------------------------ public API
  def restore(self, checkpoint: str) -> checkpointing.RestoreReport:
    """Loads this scorer's variables from a checkpoint (prefix or model dir), strictly.

    Raises:
      FileNotFoundError: no checkpoint at `checkpoint`.
      ValueError: a needed variable is missing or has another shape.
    """
    return checkpointing.restore_checkpoint(checkpoint, self.variables())

  def tokenize(self, texts: Sequence[str]) -> List[List[str]]:
    """Word pieces of each text; raises ValueError if one is too long.

    Raises:
      ValueError: a text has more than `max_seq_length - 2` pieces.
    """
    pieces = [self.tokenizer.tokenize(text) for text in texts]
    limit = self.max_seq_length - 2
    for index, text_pieces in enumerate(pieces):
      if len(text_pieces) > limit:
        raise ValueError(
            f"Text {index} has {len(text_pieces)} word pieces, more than max_seq_length - 2 = "
            f"{limit}: {texts[index][:60]!r}... Raise --max-seq-length (at most "
            f"{self.model.bert_config.max_position_embeddings}) or split the text.")
    return pieces

  def score(self, texts: Sequence[str]) -> List[SentenceScore]:
    """Scores each text.

    Args:
      texts: raw strings (any length up to `max_seq_length - 2` pieces; empty
        strings score 0.0 with no tokens).

    Returns:
      One `SentenceScore` per text, in order.

    Raises:
      ValueError: a text is too long (see `tokenize`).
    """
    pieces = self.tokenize(texts)
    ids = [self.tokenizer.convert_tokens_to_ids(p) for p in pieces]
    scores = self._score_ids(ids)
    return [SentenceScore(tokens=list(p), token_scores=[float(v) for v in s],
                          total=float(np.sum(s)) if len(s) else 0.0)
            for p, s in zip(pieces, scores)]

  # ------------------------------------------------------------------ batching helpers
  def _padded_length(self, longest: int) -> int:
    """S for a batch whose longest text has `longest` pieces."""
    return min(self.max_seq_length, _round_up(longest + 2, self.length_bucket))

  def _make_batch(self, rows: List[List[int]], text_indices: List[int]) -> _Batch:
    """[CLS] ids [SEP] rows, 0-padded to the bucketed length (and, with XLA, to batch_size)."""
    seq_length = self._padded_length(max(len(r) for r in rows))
    num_rows = self.batch_size if self.use_xla else len(rows)
    input_ids = np.zeros([num_rows, seq_length], np.int32)
    input_mask = np.zeros([num_rows, seq_length], np.int32)
    for b, row in enumerate(rows):
      full = [self.cls_id] + row + [self.sep_id]
      input_ids[b, :len(full)] = full
      input_mask[b, :len(full)] = 1
    return _Batch(input_ids, input_mask, text_indices)

  def _sentence_batches(self, ids: List[List[int]]) -> Iterator[_Batch]:
    """Batches of whole texts, longest first (empty texts skipped)."""
    order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), self.batch_size):
      chunk = order[start:start + self.batch_size]
      yield self._make_batch([ids[i] for i in chunk], chunk)


def _signature(rank_two: int, rank_one: int = 0) -> List[tf.TensorSpec]:
  return ([tf.TensorSpec([None, None], tf.int32)] * rank_two
          + [tf.TensorSpec([None], tf.int32)] * rank_one)


class ElectricScorer(Scorer):
  """Electric's one-pass pseudo-log-likelihood: token score -E(x)_t = -s_t.

  s_t is the discriminator (`electra` + `discriminator_predictions`) output
  on the clean text, before the NCE terms log q_t + log(k/(1-k)) are added
  (see the module docstring for the derivation). Needs an Electric model
  (`electric_objective: true`).
  """

  method = "electric"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._energies = tf.function(self._energy_fn, input_signature=_signature(2),
                                 jit_compile=self.use_xla)

  def _check_model(self, model: PretrainingModel) -> None:
    if not model.config.electric_objective:
      kind = model_kind(model.config)
      raise ValueError(
          "--method electric needs an Electric model (hparam electric_objective true), but this "
          f"is {describe_kind(kind)}: "
          + ("an ELECTRA discriminator outputs P(replaced), not an energy; " if kind == "electra"
             else "") + "score it with --method mlm, or if the checkpoint is an Electric model, "
          "pass --hparams '{\"electric_objective\": true, \"electra_objective\": false}'.")

  def variables(self) -> Dict[str, tf.Variable]:
    return {**self.model.discriminator.named_variables(),
            **self.model.discriminator_head.named_variables()}

  def _energy_fn(self, input_ids: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
    """float32 [B, S] energies s_t of the clean input (eval mode, no dropout)."""
    output = self.model.discriminator(input_ids, input_mask, tf.zeros_like(input_ids),
                                      training=False)
    return self.model.discriminator_head(output.sequence_output)

  def energies(self, input_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
    """The energies E(x)_t = s_t [B, S] of a padded batch (all positions).

    Args:
      input_ids: int32 [B, S] `[CLS] ... [SEP]` rows, 0-padded.
      input_mask: int32 [B, S].

    Returns:
      float32 [B, S].
    """
    return self._energies(tf.constant(input_ids, tf.int32),
                          tf.constant(input_mask, tf.int32)).numpy()

  def _score_ids(self, ids: List[List[int]]) -> List[np.ndarray]:
    scores = [np.zeros([0]) for _ in ids]
    for batch in self._sentence_batches(ids):
      energy = self.energies(batch.input_ids, batch.input_mask)
      for b, i in enumerate(batch.text_indices):
        scores[i] = -energy[b, 1:1 + len(ids[i])].astype(np.float64)
    return scores


class ClozeScorer(Scorer):
  """Electric's two-tower cloze generator in one pass: token score log q(x_t | x_\\t).

  Position t's representation [ltr[t-1], rtl[t+1]] never sees x_t
  (docs/model.md#two-tower-cloze-generator), so one pass over the clean text gives every
  conditional.
  """

  method = "cloze"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._log_q = tf.function(self._log_q_fn, input_signature=_signature(2),
                              jit_compile=self.use_xla)

  def _check_model(self, model: PretrainingModel) -> None:
    if not model.config.two_tower_generator:
      raise ValueError(
          "--method cloze needs a two-tower cloze generator (an Electric model, hparam "
          f"electric_objective true); this is {describe_kind(model_kind(model.config))}: use "
          "--method mlm.")

  def variables(self) -> Dict[str, tf.Variable]:
    return {**self.model.generator.named_variables(),
            **self.model.generator_head.named_variables()}

  def _log_q_fn(self, input_ids: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
    """float32 [B, S]: log q(x_t | x_\\t) of the token at every position."""
    reprs = self.model.generator(Inputs(input_ids, input_mask, tf.zeros_like(input_ids)),
                                 training=False)  # [B, S, 2G]
    logits = self.model.generator_head(reprs)  # [B, S, V]
    return (tf.gather(logits, input_ids, axis=2, batch_dims=2)
            - tf.reduce_logsumexp(logits, axis=-1))

  def _score_ids(self, ids: List[List[int]]) -> List[np.ndarray]:
    scores = [np.zeros([0]) for _ in ids]
    for batch in self._sentence_batches(ids):
      log_q = self._log_q(tf.constant(batch.input_ids), tf.constant(batch.input_mask)).numpy()
      for b, i in enumerate(batch.text_indices):
        scores[i] = log_q[b, 1:1 + len(ids[i])].astype(np.float64)
    return scores


class MaskedLMScorer(Scorer):
  """Masked-LM pseudo-log-likelihood (Salazar et al. 2020): one masked copy per token.

  For each text and each real position t, a copy with x_t replaced by [MASK]
  is run through the MLM transformer (`model.generator`: the BERT-style MLM's
  `electra`, or ELECTRA's `generator`) and `generator_predictions`;
  the token score is log softmax(logits_t)[x_t]. The copies of all texts are
  packed, longest texts first, `batch_size` copies per pass; only the masked
  position goes through the output layer.
  """

  method = "mlm"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._log_p = tf.function(self._log_p_fn, input_signature=_signature(2, 1),
                              jit_compile=self.use_xla)

  def _check_model(self, model: PretrainingModel) -> None:
    if model.config.two_tower_generator:
      raise ValueError("--method mlm needs a masked LM, but this Electric model's generator is a "
                       "two-tower cloze model: use --method electric (one pass) or --method "
                       "cloze (its generator's log q).")
    if not isinstance(model.generator, BertModel):
      raise ValueError("--method mlm needs a masked LM, but this model has a uniform generator "
                       "(hparam uniform_generator): nothing to score with.")

  def variables(self) -> Dict[str, tf.Variable]:
    return {**self.model.generator.named_variables(),
            **self.model.generator_head.named_variables()}

  def _log_p_fn(self, input_ids: tf.Tensor, input_mask: tf.Tensor,
                positions: tf.Tensor) -> tf.Tensor:
    """float32 [B]: log p(x_pos | x with pos masked) for each row's position."""
    seq_length = tf.shape(input_ids)[1]
    at_position = tf.equal(tf.range(seq_length)[None, :], positions[:, None])  # [B, S]
    targets = tf.gather(input_ids, positions[:, None], batch_dims=1)[:, 0]  # [B]
    masked_ids = tf.where(at_position, tf.constant(self.mask_id, tf.int32), input_ids)
    output = self.model.generator(masked_ids, input_mask, tf.zeros_like(input_ids),
                                  training=False)
    reprs = tf.gather(output.sequence_output, positions[:, None], batch_dims=1)  # [B, 1, G]
    logits = self.model.generator_head(reprs)[:, 0]  # [B, V]
    return (tf.gather(logits, targets[:, None], batch_dims=1)[:, 0]
            - tf.reduce_logsumexp(logits, axis=-1))

  def _copy_batches(self, ids: List[List[int]]) -> Iterator[Tuple[_Batch, np.ndarray]]:
    """Batches of masked copies: (rows, positions [B]); text_indices has one entry per row."""
    order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
    pairs = [(i, t) for i in order for t in range(1, len(ids[i]) + 1)]
    for start in range(0, len(pairs), self.batch_size):
      chunk = pairs[start:start + self.batch_size]
      batch = self._make_batch([ids[i] for i, _ in chunk], [i for i, _ in chunk])
      positions = np.zeros([batch.input_ids.shape[0]], np.int32)
      positions[:len(chunk)] = [t for _, t in chunk]
      yield batch, positions

  def _score_ids(self, ids: List[List[int]]) -> List[np.ndarray]:
    scores = [np.zeros([len(row)]) for row in ids]
    for batch, positions in self._copy_batches(ids):
      log_p = self._log_p(tf.constant(batch.input_ids), tf.constant(batch.input_mask),
                          tf.constant(positions)).numpy()
      for b, i in enumerate(batch.text_indices):
        scores[i][positions[b] - 1] = log_p[b]
    return scores


_SCORERS = {"electric": ElectricScorer, "cloze": ClozeScorer, "mlm": MaskedLMScorer}


def make_scorer(method: str, model: PretrainingModel, tokenizer: tokenization.FullTokenizer,
                checkpoint: Optional[str] = None, **kwargs) -> Scorer:
  """Builds the scorer of `method` and (optionally) restores its variables.

  Args:
    method: "electric", "cloze" or "mlm".
    model: a built `PretrainingModel`.
    tokenizer: the tokenizer of the model's vocab.
    checkpoint: a checkpoint prefix or model directory; None keeps the
      current (e.g. random) weights.
    **kwargs: `Scorer` options (batch_size, max_seq_length, use_xla, length_bucket).

  Returns:
    The scorer.

  Raises:
    ValueError: unknown method, a model the method cannot score, or a
      checkpoint of another kind or size.
    FileNotFoundError: no checkpoint at `checkpoint`.
  """
  if method not in _SCORERS:
    raise ValueError(f"Unknown scoring method {method!r}; choose one of {', '.join(METHODS)}.")
  scorer = _SCORERS[method](model, tokenizer, **kwargs)
  if checkpoint is not None:
    scorer.restore(checkpoint)  # logs what it restored
  return scorer
