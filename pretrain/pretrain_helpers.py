"""Batched gather/scatter, dynamic masking, un-masking and softmax sampling.

Pure functions for pre-training (see docs/model.md#masking-and-sampling). Letters: B batch,
S sequence length, P predictions per sequence (`max_predictions_per_seq`),
D feature depth, V vocabulary size.

Randomness is stateless: every random function takes `seed`, an int32/int64
Tensor of shape [2], and derives its sub-seeds with
`stateless_random.fold_in` (Philox fold-in) using fixed small integers, so the
same seed always gives the same result (docs/ARCHITECTURE.md, "Randomness").
Everything works eagerly, inside `tf.function` and with `jit_compile=True`,
and draws the same numbers in all three (model/stateless_random.py).
"""
from typing import Mapping, NamedTuple, Optional, Tuple, Union

import tensorflow as tf

from model import stateless_random, tokenization
from pretrain.pretrain_data import Inputs, get_updated_inputs

# Fixed fold-in constants, one per random use site (never reuse or renumber:
# changing them changes every masked batch of a seeded run).
_SEED_POSITIONS = 0
_SEED_REPLACE_WITH_MASK = 1

# Share of selected positions replaced by [MASK]; the rest keep the original
# token (see docs/model.md#dynamic-masking; not BERT's 80/10/10).
_MASK_REPLACE_PROB = 0.85

FloatLike = Union[float, tf.Tensor]


class SpecialTokenIds(NamedTuple):
  """Ids of the special tokens masking must know about.

  Attributes:
    cls_id: id of "[CLS]".
    sep_id: id of "[SEP]".
    mask_id: id of "[MASK]".
    pad_id: id written into padded positions. The data builder pads with a
      literal 0 (see docs/data.md#example-layout), so this is not looked up in the vocab.
  """
  cls_id: int
  sep_id: int
  mask_id: int
  pad_id: int = 0

  @classmethod
  def from_vocab(cls, vocab: Mapping[str, int],
                 vocab_file: str = "<in-memory vocab>") -> "SpecialTokenIds":
    """Reads the special-token ids from a token -> id mapping.

    Args:
      vocab: token -> id mapping, e.g. from `tokenization.load_vocab`.
      vocab_file: where `vocab` came from, named in the error message.

    Returns:
      The ids of "[CLS]", "[SEP]" and "[MASK]" (pad_id 0).

    Raises:
      ValueError: if one of the three tokens is missing.
    """
    tokenization.validate_special_tokens(vocab, ("[CLS]", "[SEP]", "[MASK]"),
                                         vocab_file)
    return cls(cls_id=int(vocab["[CLS]"]), sep_id=int(vocab["[SEP]"]),
               mask_id=int(vocab["[MASK]"]))

  @classmethod
  def from_vocab_file(cls, vocab_file: str) -> "SpecialTokenIds":
    """Reads the special-token ids from a WordPiece vocab file.

    Args:
      vocab_file: path of the vocab file (one token per line).

    Returns:
      The special-token ids.

    Raises:
      ValueError: if "[CLS]", "[SEP]" or "[MASK]" is missing from the file.
    """
    return cls.from_vocab(tokenization.load_vocab(vocab_file), vocab_file)


def _check_rank(tensor: tf.Tensor, ranks: Tuple[int, ...], what: str) -> int:
  """Returns the static rank of `tensor`, raising if it is not in `ranks`."""
  rank = tensor.shape.rank
  if rank not in ranks:
    raise ValueError(
        f"{what} must have rank {' or '.join(map(str, ranks))}, got shape "
        f"{tensor.shape}.")
  return rank


def gather_positions(sequence: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
  """Gathers `sequence[b, positions[b, p]]` for every batch row.

  Args:
    sequence: Tensor [B, S] or [B, S, D], any dtype.
    positions: int32/int64 Tensor [B, P] of indices into the S axis.

  Returns:
    Tensor [B, P] or [B, P, D] with the dtype of `sequence`.

  Raises:
    ValueError: if `sequence` is not rank 2 or 3 or `positions` not rank 2.
  """
  _check_rank(sequence, (2, 3), "gather_positions: sequence")
  _check_rank(positions, (2,), "gather_positions: positions")
  return tf.gather(sequence, positions, axis=1, batch_dims=1)


def scatter_update(sequence: tf.Tensor, updates: tf.Tensor,
                   positions: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Writes `updates` into `sequence` at `positions` (see docs/model.md#gather-and-scatter).

  Updates aimed at position 0 are ignored (it holds [CLS], and unused
  prediction slots point there). Several updates hitting the same position are
  averaged: the mean for floating dtypes, the floor of the mean for integers.

  Args:
    sequence: Tensor [B, S] or [B, S, D]; floating or int32/int64.
    updates: Tensor [B, P] or [B, P, D] with the dtype of `sequence`.
    positions: int32/int64 Tensor [B, P] of indices into the S axis.

  Returns:
    (new_sequence, updated_mask): new_sequence has the shape and dtype of
    `sequence`; updated_mask is int32 [B, S], 1 where at least one update
    landed (never at position 0).

  Raises:
    ValueError: on a rank mismatch or an unsupported dtype.
  """
  rank = _check_rank(sequence, (2, 3), "scatter_update: sequence")
  _check_rank(updates, (rank,), "scatter_update: updates (same rank as sequence)")
  _check_rank(positions, (2,), "scatter_update: positions")
  dtype = sequence.dtype
  if not (dtype.is_floating or dtype in (tf.int32, tf.int64)):
    raise ValueError(
        f"scatter_update supports floating and int32/int64 sequences, got {dtype}.")
  updates = tf.convert_to_tensor(updates, dtype)

  shape = tf.shape(sequence)
  batch_size, seq_length = shape[0], shape[1]
  num_positions = tf.shape(positions)[1]
  batch_index = tf.broadcast_to(
      tf.range(batch_size, dtype=positions.dtype)[:, None],
      [batch_size, num_positions])
  indices = tf.stack([batch_index, positions], axis=-1)  # [B, P, 2]

  sums = tf.tensor_scatter_nd_add(tf.zeros_like(sequence), indices, updates)
  counts = tf.tensor_scatter_nd_add(
      tf.zeros([batch_size, seq_length], tf.int32), indices,
      tf.ones_like(positions, tf.int32))  # [B, S]
  # Position 0 never receives an update (see docs/model.md#gather-and-scatter).
  not_first = tf.cast(tf.range(seq_length) > 0, tf.int32)[None, :]  # [1, S]
  counts *= not_first

  denominators = tf.maximum(counts, 1)
  if rank == 3:
    denominators = denominators[:, :, None]  # [B, S, 1]
  if dtype.is_floating:
    averaged = sums / tf.cast(denominators, dtype)
  else:
    averaged = tf.math.floordiv(sums, tf.cast(denominators, dtype))

  updated_mask = tf.minimum(counts, 1)  # [B, S]
  selector = tf.cast(updated_mask, tf.bool)
  if rank == 3:
    selector = selector[:, :, None]
  # A select equals the original's (1 - m)·seq + m·avg for finite values and does
  # not turn an inf/nan in an untouched slot into nan.
  new_sequence = tf.where(selector, averaged, sequence)
  return new_sequence, updated_mask


def get_candidates_mask(inputs: Inputs, special_ids: SpecialTokenIds,
                        disallow_from_mask: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Marks the positions that may be selected for masking (see docs/model.md#dynamic-masking).

  Args:
    inputs: `Inputs` with input_ids and input_mask [B, S].
    special_ids: ids of [CLS], [SEP], [MASK].
    disallow_from_mask: optional bool (or 0/1) Tensor [B, S]; true positions
      are excluded as well.

  Returns:
    bool Tensor [B, S]: a real (non-padding) token other than [CLS], [SEP] and
    [MASK], and not disallowed.
  """
  input_ids = inputs.input_ids
  candidates = tf.cast(inputs.input_mask, tf.bool)
  for token_id in (special_ids.sep_id, special_ids.cls_id, special_ids.mask_id):
    candidates &= tf.not_equal(input_ids, tf.cast(token_id, input_ids.dtype))
  if disallow_from_mask is not None:
    candidates &= tf.logical_not(tf.cast(disallow_from_mask, tf.bool))
  return candidates


def _num_to_predict(input_mask: tf.Tensor, mask_prob: FloatLike,
                    max_predictions_per_seq: int) -> tf.Tensor:
  """int32 [B]: max(1, min(N, round_half_even(float32(tokens) · mask_prob)))."""
  # float32 product and half-to-even rounding are observable (see
  # docs/model.md#dynamic-masking): 30 tokens -> 4, 10 -> 2, 190 -> 29 at mask_prob 0.15.
  num_tokens = tf.cast(tf.reduce_sum(tf.cast(input_mask, tf.int32), axis=-1),
                       tf.float32)
  product = num_tokens * tf.cast(mask_prob, tf.float32)
  rounded = tf.cast(tf.round(product), tf.int32)
  return tf.maximum(1, tf.minimum(max_predictions_per_seq, rounded))


def mask(inputs: Inputs, mask_prob: FloatLike, max_predictions_per_seq: int,
         special_ids: SpecialTokenIds, seed: tf.Tensor,
         proposal_distribution: FloatLike = 1.0,
         disallow_from_mask: Optional[tf.Tensor] = None,
         already_masked: Optional[tf.Tensor] = None) -> Inputs:
  """Dynamic masking: picks positions to predict and hides most of them.

  Follows the original exactly (see docs/model.md#dynamic-masking): per sequence,
  k = max(1, min(P, round_half_even(float32(num_tokens) · mask_prob))) slots
  are used, where num_tokens counts [CLS]/[SEP]; P positions are drawn
  independently *with replacement* from the candidate distribution (so
  duplicates occur) and slots j >= k are reset to position 0 / id 0; then
  ~85% of the used slots get [MASK] and ~15% keep the original token. There
  is no random-token replacement (not BERT's 80/10/10).

  Args:
    inputs: `Inputs` with input_ids, input_mask, segment_ids [B, S].
    mask_prob: fraction of tokens to predict (0.15 for ELECTRA).
    max_predictions_per_seq: P, a Python int.
    special_ids: ids of [CLS], [SEP], [MASK].
    seed: int32/int64 Tensor [2], the stateless seed.
    proposal_distribution: float scalar or float32 Tensor [B, S] multiplying
      the uniform candidate distribution (unused by the original's callers).
    disallow_from_mask: optional bool Tensor [B, S] of extra excluded
      positions.
    already_masked: optional float32 Tensor [B, P]; slots where it is 1.0 get
      weight 0 (position 0, id 0).

  Returns:
    `inputs` with input_ids [B, S] masked (stop-gradient) and
    masked_lm_positions int32 [B, P], masked_lm_ids int32 [B, P],
    masked_lm_weights float32 [B, P]. A row without any candidate (not
    possible with real data) gets weight 0 in every slot instead of sampling
    from a NaN distribution.
  """
  input_ids = inputs.input_ids
  num_predictions = int(max_predictions_per_seq)
  seed = tf.convert_to_tensor(seed)

  candidates = get_candidates_mask(inputs, special_ids, disallow_from_mask)
  num_to_predict = _num_to_predict(inputs.input_mask, mask_prob, num_predictions)
  masked_lm_weights = tf.sequence_mask(num_to_predict, num_predictions,
                                       dtype=tf.float32)  # [B, P]
  if already_masked is not None:
    masked_lm_weights *= 1.0 - tf.cast(already_masked, tf.float32)

  # Uniform over candidates (times the proposal), sampled with replacement.
  sample_prob = tf.cast(proposal_distribution, tf.float32) * tf.cast(
      candidates, tf.float32)  # [B, S]
  total_prob = tf.reduce_sum(sample_prob, axis=-1, keepdims=True)  # [B, 1]
  has_candidates = total_prob > 0.0
  # Rows without candidates sample from a harmless uniform row; their weights
  # are zeroed below, so the draw is discarded.
  sample_prob = tf.where(has_candidates,
                         sample_prob / tf.where(has_candidates, total_prob, 1.0),
                         tf.ones_like(sample_prob))
  masked_lm_weights *= tf.cast(has_candidates, tf.float32)
  sample_logits = tf.math.log(tf.stop_gradient(sample_prob))  # [B, S]
  positions_seed = stateless_random.fold_in(seed, _SEED_POSITIONS)
  masked_lm_positions = stateless_random.categorical(
      sample_logits, num_predictions, positions_seed)  # [B, P]
  used = tf.cast(masked_lm_weights, tf.int32)
  masked_lm_positions *= used

  masked_lm_ids = gather_positions(tf.cast(input_ids, tf.int32),
                                   masked_lm_positions) * used  # [B, P]

  replace_seed = stateless_random.fold_in(
      seed, _SEED_REPLACE_WITH_MASK)
  replace_draw = stateless_random.uniform(tf.shape(masked_lm_positions),
                                          replace_seed)  # [B, P]
  # Slots that keep the original token are sent to position 0, i.e. ignored.
  replace_positions = masked_lm_positions * tf.cast(
      replace_draw < _MASK_REPLACE_PROB, tf.int32)
  mask_tokens = tf.fill(tf.shape(replace_positions),
                        tf.cast(special_ids.mask_id, input_ids.dtype))
  masked_input_ids, _ = scatter_update(input_ids, mask_tokens, replace_positions)
  return get_updated_inputs(
      inputs,
      input_ids=tf.stop_gradient(masked_input_ids),
      masked_lm_positions=masked_lm_positions,
      masked_lm_ids=masked_lm_ids,
      masked_lm_weights=masked_lm_weights)


def unmask(inputs: Inputs) -> Inputs:
  """Restores the original ids at the masked positions (see docs/model.md#sampling-replacements).

  Args:
    inputs: masked `Inputs` (masked_lm_positions and masked_lm_ids set).

  Returns:
    `inputs` with input_ids [B, S] = the sequence before `mask`.

  Raises:
    ValueError: if `inputs` was not masked.
  """
  if inputs.masked_lm_positions is None or inputs.masked_lm_ids is None:
    raise ValueError("unmask needs masked Inputs (masked_lm_positions and "
                     "masked_lm_ids are None); call pretrain_helpers.mask first.")
  masked_lm_ids = tf.cast(inputs.masked_lm_ids, inputs.input_ids.dtype)
  unmasked_ids, _ = scatter_update(inputs.input_ids, masked_lm_ids,
                                   inputs.masked_lm_positions)
  return get_updated_inputs(inputs, input_ids=unmasked_ids)


def sample_from_softmax(logits: tf.Tensor, seed: tf.Tensor,
                        temperature: FloatLike = 1.0,
                        disallow_ids: Optional[tf.Tensor] = None,
                        method: str = "inverse_cdf",
                        exp_weights: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Samples one id per slot from softmax(logits / temperature).

  See docs/model.md#sampling-replacements. The disallow penalty is subtracted after the
  temperature division (it is not divided by T), as in the original. The
  result is an integer, so no gradient flows back into `logits`.

  The original draws by Gumbel-max (a Gumbel variate per vocabulary entry);
  the default here is the inverse CDF (`stateless_random.inverse_cdf_categorical`:
  one uniform per slot), the same distribution at a fraction of the cost, so
  the draws differ from the original's for the same seed. `method="gumbel"`
  keeps the original's algorithm.

  Args:
    logits: float Tensor [B, P, V] (any float dtype; computed in float32).
    seed: int32/int64 Tensor [2], the stateless seed.
    temperature: softmax temperature T.
    disallow_ids: optional int Tensor [B, P]; these ids get -1000 added to
      their scaled logit, so they are (practically) never sampled.
    method: "inverse_cdf" (default) or "gumbel" (the original's Gumbel-max).
    exp_weights: optional float32 [B, P, V] exp(logits - max(logits)), as
      the MLM loss computed them (`SoftmaxOutput.exp_weights`); the inverse
      CDF then draws from them directly (same ids, one pass over [B, P, V]
      instead of four) when temperature is 1 and nothing is disallowed, and
      ignores them otherwise.

  Returns:
    int32 Tensor [B, P] of sampled ids.

  Raises:
    ValueError: for an unknown `method`.
  """
  if method not in ("inverse_cdf", "gumbel"):
    raise ValueError("sample_from_softmax method must be 'inverse_cdf' or 'gumbel'; "
                     f"got {method!r}")
  unscaled = isinstance(temperature, (int, float)) and temperature == 1
  if method == "inverse_cdf" and exp_weights is not None and unscaled and disallow_ids is None:
    return stateless_random.inverse_cdf_from_weights(exp_weights, seed)
  scaled = tf.cast(logits, tf.float32)
  if not unscaled:
    scaled /= tf.cast(temperature, tf.float32)
  if disallow_ids is not None:
    vocab_size = tf.shape(scaled)[-1]
    scaled -= 1000.0 * tf.one_hot(disallow_ids, vocab_size, dtype=tf.float32)
  if method == "inverse_cdf":
    return stateless_random.inverse_cdf_categorical(scaled, seed)
  uniform = stateless_random.uniform(tf.shape(scaled), seed)  # U[0, 1), [B, P, V]
  gumbel = -tf.math.log(-tf.math.log(uniform + 1e-9) + 1e-9)
  return tf.argmax(scaled + gumbel, axis=-1, output_type=tf.int32)
