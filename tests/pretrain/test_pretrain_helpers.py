"""Tests for pretrain/pretrain_helpers.py: gather/scatter, masking, sampling.

References are independent numpy re-computations, hand-checked values from the
description of the algorithm (docs/model.md#masking-and-sampling) and, for the random parts, exact
distributions checked with scipy.stats at fixed seeds (so every test is deterministic). Masking runs
on real batches: Moby-Dick paragraphs tokenized with the real uncased vocab and
packed like the pre-training data ([CLS] A [SEP] B [SEP], 0-padded to 128).
"""
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from model import tokenization
from pretrain import pretrain_helpers as ph
from pretrain.pretrain_data import Inputs

SEQ_LENGTH = 128
# Real-token counts per row (including [CLS]/[SEP]); odd mix of full, medium
# and tiny rows. Rows of length >= 10 get two segments.
ROW_LENGTHS = (128, 128, 97, 64, 30, 10, 3, 128, 51, 77, 128, 12, 128, 40, 19, 5)
PALE = 1e-3  # p-value threshold for the distribution tests (fixed seeds).


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
  return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def special_ids(vocab_file):
  return ph.SpecialTokenIds.from_vocab_file(vocab_file)


@pytest.fixture(scope="module")
def token_stream(tokenizer, moby_dick_lines):
  """Real WordPiece ids of consecutive Moby-Dick paragraphs (>= 3000 ids)."""
  ids = []
  for line in moby_dick_lines:
    ids.extend(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)))
    if len(ids) >= 3000:
      break
  return ids


def _pack(token_stream, lengths, special_ids, seq_length=SEQ_LENGTH):
  """Packs real ids into pre-training rows: [CLS] A [SEP] (B [SEP]) + padding."""
  batch = len(lengths)
  input_ids = np.zeros([batch, seq_length], np.int32)
  input_mask = np.zeros([batch, seq_length], np.int32)
  segment_ids = np.zeros([batch, seq_length], np.int32)
  cursor = 0
  for b, length in enumerate(lengths):
    two_segments = length >= 10
    body = length - (3 if two_segments else 2)
    tokens = list(token_stream[cursor:cursor + body])
    cursor += body
    if two_segments:
      first = body // 2
      row = ([special_ids.cls_id] + tokens[:first] + [special_ids.sep_id]
             + tokens[first:] + [special_ids.sep_id])
      segments = [0] * (first + 2) + [1] * (body - first + 1)
    else:
      row = [special_ids.cls_id] + tokens + [special_ids.sep_id]
      segments = [0] * length
    assert len(row) == length == len(segments)
    input_ids[b, :length] = row
    input_mask[b, :length] = 1
    segment_ids[b, :length] = segments
  return input_ids, input_mask, segment_ids


@pytest.fixture(scope="module")
def real_batch(token_stream, special_ids):
  """numpy (input_ids, input_mask, segment_ids), each int32 [16, 128]."""
  return _pack(token_stream, ROW_LENGTHS, special_ids)


def _inputs(batch):
  return Inputs(*(tf.constant(x) for x in batch))


def _mask_fn(special_ids, mask_prob, max_predictions, jit_compile=False):
  """mask() as one traced function of (input_ids, input_mask, segment_ids, seed)."""
  def fn(input_ids, input_mask, segment_ids, seed):
    return ph.mask(Inputs(input_ids, input_mask, segment_ids), mask_prob,
                   max_predictions, special_ids, seed)
  return tf.function(fn, jit_compile=jit_compile)


# ------------------------------------------------------- numpy references


def _np_gather(sequence, positions):
  return sequence[np.arange(sequence.shape[0])[:, None], positions]


def _np_scatter(sequence, updates, positions):
  """Loop reference of docs/model.md#gather-and-scatter (position 0 ignored, duplicates
  averaged)."""
  sequence = np.asarray(sequence)
  new_sequence = sequence.copy()
  updated_mask = np.zeros(sequence.shape[:2], np.int32)
  for b in range(sequence.shape[0]):
    for t in range(1, sequence.shape[1]):
      hits = np.flatnonzero(positions[b] == t)
      if hits.size == 0:
        continue
      values = updates[b, hits]
      if np.issubdtype(sequence.dtype, np.integer):
        new_sequence[b, t] = np.sum(values.astype(np.int64), axis=0) // hits.size
      else:
        new_sequence[b, t] = np.mean(values.astype(np.float64), axis=0)
      updated_mask[b, t] = 1
  return new_sequence, updated_mask


def _np_candidates(input_ids, input_mask, special_ids):
  special = np.isin(input_ids, [special_ids.cls_id, special_ids.sep_id,
                                special_ids.mask_id])
  return (input_mask == 1) & ~special


def _np_num_to_predict(input_mask, mask_prob, max_predictions):
  product = np.float32(input_mask.sum(-1)) * np.float32(mask_prob)
  return np.maximum(1, np.minimum(max_predictions, np.round(product).astype(np.int32)))


def _np_mask(input_ids, input_mask, mask_prob, max_predictions, special_ids,
             raw_positions, replace_draw):
  """docs/model.md#dynamic-masking in numpy, given the two random draws."""
  k = _np_num_to_predict(input_mask, mask_prob, max_predictions)
  weights = (np.arange(max_predictions)[None, :] < k[:, None]).astype(np.float32)
  positions = raw_positions * weights.astype(np.int32)
  ids = _np_gather(input_ids, positions) * weights.astype(np.int32)
  replace_positions = positions * (replace_draw < 0.85)
  new_ids, _ = _np_scatter(input_ids,
                           np.full(positions.shape, special_ids.mask_id, np.int32),
                           replace_positions)
  return new_ids, positions, ids, weights


def _draws(input_ids, input_mask, special_ids, max_predictions, seed):
  """The draws mask() makes, per its seed contract (fold-in 0 and 1).

  Positions: Gumbel-max over log(candidate probs) with TF's own eager
  stateless uniforms [B, P, S] (model/stateless_random.py reproduces them).
  """
  candidates = _np_candidates(input_ids, input_mask, special_ids).astype(np.float32)
  probs = candidates / candidates.sum(-1, keepdims=True)
  batch, length = input_ids.shape
  uniform = tf.random.stateless_uniform(
      [batch, max_predictions, length], tf.random.experimental.stateless_fold_in(seed, 0))
  with np.errstate(divide="ignore"):
    noisy = np.log(probs)[:, None, :] - np.log(-np.log(uniform.numpy()))
  raw_positions = np.argmax(noisy, axis=-1).astype(np.int32)
  replace_draw = tf.random.stateless_uniform(
      [batch, max_predictions], tf.random.experimental.stateless_fold_in(seed, 1))
  return raw_positions, replace_draw.numpy()


# ---------------------------------------------------------- special ids


def test_special_ids_from_real_vocab(vocab_file):
  assert ph.SpecialTokenIds.from_vocab_file(vocab_file) == (101, 102, 103, 0)
  vocab = tokenization.load_vocab(vocab_file)
  assert ph.SpecialTokenIds.from_vocab(vocab) == ph.SpecialTokenIds(101, 102, 103)


def test_special_ids_missing_token_names_token_and_file(tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"\[MASK\]") as error:
    ph.SpecialTokenIds.from_vocab_file(str(vocab_file))
  assert str(vocab_file) in str(error.value)


# -------------------------------------------------------- gather/scatter


def test_gather_positions_matches_numpy():
  rng = np.random.default_rng(0)
  seq_2d = rng.integers(0, 1000, size=[5, 13]).astype(np.int32)
  seq_3d = rng.normal(size=[5, 13, 3]).astype(np.float32)
  positions = rng.integers(0, 13, size=[5, 7])
  for dtype in (np.int32, np.int64):
    pos = tf.constant(positions.astype(dtype))
    got_2d = ph.gather_positions(tf.constant(seq_2d), pos)
    got_3d = ph.gather_positions(tf.constant(seq_3d), pos)
    assert got_2d.shape == [5, 7] and got_3d.shape == [5, 7, 3]
    np.testing.assert_array_equal(got_2d, _np_gather(seq_2d, positions))
    np.testing.assert_array_equal(got_3d, _np_gather(seq_3d, positions))


def test_gather_positions_rejects_bad_rank():
  with pytest.raises(ValueError, match="rank 2 or 3"):
    ph.gather_positions(tf.zeros([13]), tf.zeros([1, 2], tf.int32))


def test_scatter_update_hand_checked():
  sequence = tf.constant([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]], tf.int32)
  updates = tf.constant([[3, 4, 7, 9], [5, 5, 8, 1]], tf.int32)
  # Row 0: 3 and 4 both hit position 2 (floor of 3.5 -> 3), 7 -> 4, 9 -> 0
  # (ignored). Row 1: 5 and 5 hit position 0 (ignored), 8 -> 1, 1 -> 3.
  positions = tf.constant([[2, 2, 4, 0], [0, 0, 1, 3]], tf.int32)
  new_sequence, updated_mask = ph.scatter_update(sequence, updates, positions)
  np.testing.assert_array_equal(new_sequence, [[10, 11, 3, 13, 7],
                                               [20, 8, 22, 1, 24]])
  np.testing.assert_array_equal(updated_mask, [[0, 0, 1, 0, 1], [0, 1, 0, 1, 0]])
  assert updated_mask.dtype == tf.int32

  floats, _ = ph.scatter_update(tf.zeros([1, 3]), tf.constant([[1.0, 2.0]]),
                                tf.constant([[1, 1]]))
  np.testing.assert_array_equal(floats, [[0.0, 1.5, 0.0]])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, "bfloat16"],
                         ids=["int32", "int64", "float32", "bfloat16"])
@pytest.mark.parametrize("depth", [None, 3], ids=["2d", "3d"])
def test_scatter_update_matches_numpy(dtype, depth):
  rng = np.random.default_rng(1)
  batch, length, num_updates = 7, 11, 9
  extra = [] if depth is None else [depth]
  # Few distinct positions so duplicates and position 0 are frequent.
  positions = rng.integers(0, 4, size=[batch, num_updates])
  if dtype == "bfloat16":
    # Halves: inputs and sums are exact in bfloat16, means round to 8 bits.
    sequence = rng.integers(-8, 8, size=[batch, length] + extra) / 2.0
    updates = rng.integers(-8, 8, size=[batch, num_updates] + extra) / 2.0
    tf_dtype = tf.bfloat16
  elif np.issubdtype(dtype, np.integer):
    sequence = rng.integers(-50, 1000, size=[batch, length] + extra).astype(dtype)
    updates = rng.integers(-50, 1000, size=[batch, num_updates] + extra).astype(dtype)
    tf_dtype = tf.as_dtype(dtype)
  else:
    sequence = rng.normal(size=[batch, length] + extra).astype(dtype)
    updates = rng.normal(size=[batch, num_updates] + extra).astype(dtype)
    tf_dtype = tf.as_dtype(dtype)
  new_sequence, updated_mask = ph.scatter_update(
      tf.constant(sequence, tf_dtype), tf.constant(updates, tf_dtype),
      tf.constant(positions, tf.int32))
  expected, expected_mask = _np_scatter(sequence, updates, positions)
  assert new_sequence.dtype == tf_dtype
  np.testing.assert_array_equal(updated_mask, expected_mask)
  assert (np.asarray(updated_mask)[:, 0] == 0).all()
  got = tf.cast(new_sequence, tf.float64).numpy()
  if dtype == "bfloat16":
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-2)
  elif np.issubdtype(dtype, np.integer):
    np.testing.assert_array_equal(got, expected)
  else:
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_scatter_update_rejects_mismatched_rank_and_bool():
  with pytest.raises(ValueError, match="updates"):
    ph.scatter_update(tf.zeros([2, 5]), tf.zeros([2, 3, 4]), tf.zeros([2, 3], tf.int32))
  with pytest.raises(ValueError, match="bool"):
    ph.scatter_update(tf.zeros([2, 5], tf.bool), tf.zeros([2, 3], tf.bool),
                      tf.zeros([2, 3], tf.int32))


# -------------------------------------------------------------- masking


def test_candidates_mask_on_real_batch(real_batch, special_ids):
  input_ids, input_mask, _ = real_batch
  inputs = _inputs(real_batch)
  got = ph.get_candidates_mask(inputs, special_ids)
  assert got.dtype == tf.bool
  expected = _np_candidates(input_ids, input_mask, special_ids)
  np.testing.assert_array_equal(got, expected)
  # Two-segment rows of n tokens have n - 3 candidates, one-segment rows n - 2.
  np.testing.assert_array_equal(
      expected.sum(-1), [n - (3 if n >= 10 else 2) for n in ROW_LENGTHS])
  disallow = np.zeros_like(expected)
  disallow[:, 1:6] = True
  got = ph.get_candidates_mask(inputs, special_ids, tf.constant(disallow))
  np.testing.assert_array_equal(got, expected & ~disallow)


def test_num_to_predict_hand_checked(token_stream, special_ids):
  # Spec docs/model.md#dynamic-masking: 30 -> 4.5 -> 4 (half to even), 10 -> 1.5 -> 2,
  # 190 -> float32 28.500002 -> 29, 3 -> 0.45 -> 0 -> max(1, .) = 1,
  # 129 -> 19.35 -> 19.
  lengths = (30, 10, 190, 3, 129)
  batch = _pack(token_stream, lengths, special_ids, seq_length=200)
  inputs = _inputs(batch)
  out = ph.mask(inputs, 0.15, 40, special_ids, tf.constant([3, 5]))
  np.testing.assert_array_equal(np.sum(out.masked_lm_weights, -1),
                                [4, 2, 29, 1, 19])
  capped = ph.mask(inputs, 0.15, 19, special_ids, tf.constant([3, 5]))
  np.testing.assert_array_equal(np.sum(capped.masked_lm_weights, -1),
                                [4, 2, 19, 1, 19])


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "xla"])
def test_mask_matches_numpy_reference(real_batch, special_ids, jit_compile):
  input_ids, input_mask, segment_ids = real_batch
  max_predictions = 19

  def fn(seed):
    return ph.mask(_inputs(real_batch), 0.15, max_predictions, special_ids, seed)

  if jit_compile:  # XLA draws the same numbers as eager (model/stateless_random.py).
    fn = tf.function(fn, jit_compile=True)
  for seed in ([1, 2], [12345, 678]):
    seed = tf.constant(seed, tf.int64)
    out = fn(seed)
    raw_positions, replace_draw = _draws(input_ids, input_mask, special_ids,
                                         max_predictions, seed)
    new_ids, positions, ids, weights = _np_mask(
        input_ids, input_mask, 0.15, max_predictions, special_ids,
        raw_positions, replace_draw)
    np.testing.assert_array_equal(out.input_ids, new_ids)
    np.testing.assert_array_equal(out.masked_lm_positions, positions)
    np.testing.assert_array_equal(out.masked_lm_ids, ids)
    np.testing.assert_array_equal(out.masked_lm_weights, weights)
    np.testing.assert_array_equal(out.input_mask, input_mask)
    np.testing.assert_array_equal(out.segment_ids, segment_ids)
    assert out.masked_lm_positions.dtype == tf.int32
    assert out.masked_lm_ids.dtype == tf.int32
    assert out.masked_lm_weights.dtype == tf.float32


def _many_masks(real_batch, special_ids, num_seeds, mask_prob=0.15,
                max_predictions=19):
  fn = _mask_fn(special_ids, mask_prob, max_predictions)
  batch = [tf.constant(x) for x in real_batch]
  return [fn(*batch, tf.constant([seed, 99])) for seed in range(num_seeds)]


def test_mask_invariants_and_85_15_split(real_batch, special_ids):
  input_ids, input_mask, _ = real_batch
  candidates = _np_candidates(input_ids, input_mask, special_ids)
  expected_k = _np_num_to_predict(input_mask, 0.15, 19)
  masked_single, total_single = 0, 0
  for out in _many_masks(real_batch, special_ids, num_seeds=120):
    positions = out.masked_lm_positions.numpy()
    weights = out.masked_lm_weights.numpy()
    new_ids = out.input_ids.numpy()
    used = weights > 0
    np.testing.assert_array_equal(used.sum(-1), expected_k)
    # Used slots first, then unused slots pointing at position 0 with id 0.
    np.testing.assert_array_equal(used, np.arange(19)[None] < expected_k[:, None])
    assert (positions[~used] == 0).all()
    assert (out.masked_lm_ids.numpy()[~used] == 0).all()
    # Used slots only hit real, non-special tokens, with their original ids.
    assert _np_gather(candidates, positions)[used].all()
    np.testing.assert_array_equal(out.masked_lm_ids.numpy()[used],
                                  _np_gather(input_ids, positions)[used])
    # Only selected positions change, and only into [MASK] (no random tokens).
    selected = np.zeros_like(candidates)
    np.put_along_axis(selected, positions, True, axis=1)
    selected &= candidates
    changed = new_ids != input_ids
    assert not (changed & ~selected).any()
    assert (new_ids[changed] == special_ids.mask_id).all()
    # Positions picked exactly once are [MASK]ed with probability 0.85.
    for b in range(len(positions)):
      values, counts = np.unique(positions[b][used[b]], return_counts=True)
      singles = values[counts == 1]
      total_single += singles.size
      masked_single += int((new_ids[b, singles] == special_ids.mask_id).sum())
  assert total_single > 15000
  result = stats.binomtest(masked_single, total_single, 0.85)
  assert result.pvalue > PALE, (masked_single / total_single, result.pvalue)


def test_mask_positions_uniform_over_candidates(real_batch, special_ids):
  row = [x[:1].repeat(256, axis=0) for x in real_batch]  # a full 128-token row
  candidates = _np_candidates(row[0][:1], row[1][:1], special_ids)[0]
  counts = np.zeros(SEQ_LENGTH, np.int64)
  for out in _many_masks(row, special_ids, num_seeds=4):
    used = out.masked_lm_weights.numpy() > 0
    np.add.at(counts, out.masked_lm_positions.numpy()[used], 1)
  assert counts[~candidates].sum() == 0
  observed = counts[candidates]
  assert observed.sum() == 4 * 256 * 19
  _, pvalue = stats.chisquare(observed)  # expected: uniform
  assert pvalue > PALE, pvalue


def test_mask_duplicates_at_with_replacement_rate(real_batch, special_ids):
  # One-segment rows of 10 tokens (8 real-word candidates) at mask_prob 0.3:
  # k = round(float32 3.0000001) = 3 = max_predictions.
  stream = real_batch[0][0, 1:9]  # 8 real ids (no special tokens)
  ids = np.zeros([1000, SEQ_LENGTH], np.int32)
  ids[:, 0], ids[:, 1:9], ids[:, 9] = special_ids.cls_id, stream, special_ids.sep_id
  row = (ids, (ids > 0).astype(np.int32), np.zeros_like(ids))
  distinct = []
  for out in _many_masks(row, special_ids, num_seeds=3, mask_prob=0.3,
                         max_predictions=3):
    positions = out.masked_lm_positions.numpy()
    assert (out.masked_lm_weights.numpy() == 1).all()
    distinct.extend(len(set(p)) for p in positions)
  observed = np.bincount(distinct, minlength=4)[1:]
  # With replacement from 8 cells, 3 draws: P(1 distinct) = 1/64,
  # P(2) = 21/64, P(3) = 42/64 (without replacement it would always be 3).
  expected = np.array([1, 21, 42]) / 64 * len(distinct)
  _, pvalue = stats.chisquare(observed, expected)
  assert pvalue > PALE, (observed, expected)


def test_mask_seeds(real_batch, special_ids):
  inputs = _inputs(real_batch)
  first = ph.mask(inputs, 0.15, 19, special_ids, tf.constant([4, 2]))
  again = ph.mask(inputs, 0.15, 19, special_ids, tf.constant([4, 2], tf.int64))
  traced = _mask_fn(special_ids, 0.15, 19)(*inputs[:3], tf.constant([4, 2]))
  other = ph.mask(inputs, 0.15, 19, special_ids, tf.constant([4, 3]))
  for field in ("input_ids", "masked_lm_positions", "masked_lm_ids"):
    np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    np.testing.assert_array_equal(getattr(first, field), getattr(traced, field))
  assert not np.array_equal(first.masked_lm_positions, other.masked_lm_positions)
  assert not np.array_equal(first.input_ids, other.input_ids)


def test_unmask_inverts_mask(real_batch, special_ids):
  for out in _many_masks(real_batch, special_ids, num_seeds=10):
    assert not np.array_equal(out.input_ids, real_batch[0])
    restored = ph.unmask(out)
    np.testing.assert_array_equal(restored.input_ids, real_batch[0])
    assert restored.masked_lm_positions is out.masked_lm_positions
  with pytest.raises(ValueError, match="mask first"):
    ph.unmask(_inputs(real_batch))


def test_mask_optional_arguments(real_batch, special_ids):
  input_ids, input_mask, _ = real_batch
  inputs = _inputs(real_batch)
  candidates = _np_candidates(input_ids, input_mask, special_ids)
  disallow = np.zeros_like(candidates)
  disallow[:, :40] = True
  proposal = np.ones(input_ids.shape, np.float32)
  proposal[:, 60:] = 0.0
  already = np.zeros([len(input_ids), 19], np.float32)
  already[:, 0] = 1.0
  expected_k = _np_num_to_predict(input_mask, 0.15, 19)
  for seed in range(5):
    out = ph.mask(inputs, 0.15, 19, special_ids, tf.constant([seed, 1]),
                  proposal_distribution=tf.constant(proposal),
                  disallow_from_mask=tf.constant(disallow),
                  already_masked=tf.constant(already))
    positions = out.masked_lm_positions.numpy()
    weights = out.masked_lm_weights.numpy()
    allowed_rows = (candidates & ~disallow & (proposal > 0)).any(-1)
    # Slot 0 is already masked; rows with nothing allowed predict nothing.
    np.testing.assert_array_equal(
        weights.sum(-1), np.where(allowed_rows, expected_k - 1, 0))
    assert (weights[:, 0] == 0).all() and (positions[:, 0] == 0).all()
    used = weights > 0
    assert ((positions[used] >= 40) & (positions[used] < 60)).all()
    assert (positions[~used] == 0).all()


def test_mask_row_without_candidates(special_ids):
  ids = np.array([[special_ids.cls_id, special_ids.sep_id, 0, 0],
                  [special_ids.cls_id, 2088, 2003, special_ids.sep_id]], np.int32)
  inputs = Inputs(tf.constant(ids), tf.constant((ids > 0).astype(np.int32)),
                  tf.zeros_like(ids))
  out = ph.mask(inputs, 0.5, 2, special_ids, tf.constant([0, 0]))
  np.testing.assert_array_equal(out.masked_lm_weights, [[0, 0], [1, 1]])
  np.testing.assert_array_equal(out.masked_lm_positions[0], [0, 0])
  np.testing.assert_array_equal(out.input_ids[0], ids[0])
  assert set(out.masked_lm_positions.numpy()[1]) <= {1, 2}


# ------------------------------------------------------------- sampling


def _np_gumbel_argmax(logits, uniform, temperature, disallow_ids=None):
  scaled = logits.astype(np.float32) / np.float32(temperature)
  if disallow_ids is not None:
    scaled -= np.float32(1000.0) * np.eye(logits.shape[-1], dtype=np.float32)[disallow_ids]
  gumbel = -np.log(-np.log(uniform + np.float32(1e-9)) + np.float32(1e-9))
  return np.argmax(scaled + gumbel, axis=-1)


def _np_inverse_cdf(logits, uniform, temperature, disallow_ids=None):
  """Inverse-CDF reference in float64: the i with cdf[i-1] <= u * total < cdf[i]."""
  scaled = logits.astype(np.float64) / temperature
  if disallow_ids is not None:
    scaled -= 1000.0 * np.eye(logits.shape[-1])[disallow_ids]
  cdf = np.cumsum(np.exp(scaled - scaled.max(-1, keepdims=True)), -1)
  return (cdf <= uniform[..., None] * cdf[..., -1:]).sum(-1)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("method", ["inverse_cdf", "gumbel"])
@pytest.mark.parametrize("vocab", [11, 700])  # inverse CDF: one block; three, the last padded
def test_sample_from_softmax_matches_numpy_with_same_noise(jit_compile, method, vocab):
  rng = np.random.default_rng(2)
  logits = (3 * rng.normal(size=[3, 5, vocab])).astype(np.float32)
  disallow = rng.integers(0, vocab, size=[3, 5])

  def fn(seed):
    return ph.sample_from_softmax(tf.constant(logits), seed, 1.5,
                                  tf.constant(disallow, tf.int32), method=method)

  if jit_compile:  # XLA draws the same numbers as eager (model/stateless_random.py).
    fn = tf.function(fn, jit_compile=True)
  seed = tf.constant([8, 9])
  sampled = fn(seed)
  assert sampled.dtype == tf.int32 and sampled.shape == [3, 5]
  if method == "gumbel":  # one uniform per vocabulary entry
    expected = _np_gumbel_argmax(
        logits, tf.random.stateless_uniform(logits.shape, seed).numpy(), 1.5, disallow)
  else:  # one uniform per slot
    expected = _np_inverse_cdf(
        logits, tf.random.stateless_uniform([3, 5], seed).numpy().astype(np.float64), 1.5,
        disallow)
  np.testing.assert_array_equal(sampled, expected)


@pytest.mark.parametrize("method", ["inverse_cdf", "gumbel"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sample_from_softmax_distribution(temperature, method):
  logits = np.array([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0], np.float32)  # V = 7
  draws = tf.constant(np.tile(logits, [4, 5000, 1]))  # [B=4, P=5000, V=7]
  sampled = ph.sample_from_softmax(draws, tf.constant([5, 7]), temperature, method=method)
  observed = np.bincount(sampled.numpy().ravel(), minlength=7)
  scaled = logits.astype(np.float64) / temperature
  probs = np.exp(scaled - scaled.max())
  probs /= probs.sum()
  _, pvalue = stats.chisquare(observed, probs * observed.sum())
  assert pvalue > PALE, (observed, probs * observed.sum())


def test_sample_from_softmax_inverse_cdf_distribution_over_full_vocabulary():
  # 30,522 ids, few of them likely (as a trained generator): chi-square over the
  # 20 likeliest ids and the rest pooled.
  rng = np.random.default_rng(11)
  logits = rng.normal(size=[30522]).astype(np.float32)
  top = rng.choice(30522, 20, replace=False)
  logits[top] += rng.uniform(6, 9, size=20).astype(np.float32)
  draws = tf.constant(np.tile(logits, [2, 3000, 1]))
  sampled = ph.sample_from_softmax(draws, tf.constant([3, 4])).numpy().ravel()
  probs = np.exp(logits.astype(np.float64) - logits.max())
  probs /= probs.sum()
  observed = np.append([(sampled == i).sum() for i in top], (~np.isin(sampled, top)).sum())
  expected = np.append(probs[top], 1 - probs[top].sum()) * sampled.size
  _, pvalue = stats.chisquare(observed, expected)
  assert pvalue > PALE, (observed, expected)


def test_sample_from_softmax_inverse_cdf_never_draws_zero_mass_ids():
  # All mass on id 0 and on the last id in turn; the rest at -1000 (exp underflows to 0).
  for allowed in (0, 9):
    logits = np.full([4, 2000, 10], -1000.0, np.float32)
    logits[..., allowed] = 0.0
    sampled = ph.sample_from_softmax(tf.constant(logits), tf.constant([2, allowed]))
    assert (sampled.numpy() == allowed).all()


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("vocab", [11, 512, 700])  # one block; two, unpadded; three, padded
def test_sample_from_softmax_with_the_losss_exp_weights_draws_the_same_ids(jit_compile, vocab):
  from pretrain.pretraining_model import sparse_softmax_cross_entropy
  rng = np.random.default_rng(4)
  logits = tf.constant((4 * rng.normal(size=[3, 6, vocab])).astype(np.float32))
  labels = tf.constant(rng.integers(0, vocab, size=[3, 6]), tf.int32)

  def shared(seed):
    _, exp_weights = sparse_softmax_cross_entropy(logits, labels, return_exp_weights=True)
    return ph.sample_from_softmax(logits, seed, 1.0, exp_weights=exp_weights)

  if jit_compile:
    shared = tf.function(shared, jit_compile=True)
  seed = tf.constant([8, 9])
  expected = _np_inverse_cdf(logits.numpy(), tf.random.stateless_uniform(
      [3, 6], seed).numpy().astype(np.float64), 1.0)
  np.testing.assert_array_equal(shared(seed), expected)
  np.testing.assert_array_equal(ph.sample_from_softmax(logits, seed, 1.0), expected)


def test_sample_from_softmax_ignores_exp_weights_it_cannot_use():
  # Weights that put all mass on id 0: used only at temperature 1 without disallowed ids.
  logits = tf.constant(np.tile(np.arange(5, dtype=np.float32), [2, 300, 1]))  # mass on id 4
  on_zero = tf.constant(np.tile(np.eye(5, dtype=np.float32)[0], [2, 300, 1]))
  seed = tf.constant([1, 2])
  assert (ph.sample_from_softmax(logits, seed, 1.0, exp_weights=on_zero).numpy() == 0).all()
  for temperature, disallow, method in ((2.0, None, "inverse_cdf"),
                                        (1.0, tf.fill([2, 300], 3), "inverse_cdf"),
                                        (1.0, None, "gumbel")):
    sampled = ph.sample_from_softmax(logits, seed, temperature, disallow, method=method,
                                     exp_weights=on_zero).numpy()
    assert (sampled != 0).any() and (sampled == 4).mean() > 0.3, (temperature, method)


def test_sample_from_softmax_unknown_method():
  with pytest.raises(ValueError, match="inverse_cdf"):
    ph.sample_from_softmax(tf.zeros([1, 1, 3]), tf.constant([1, 1]), method="argmax")


def test_sample_from_softmax_disallow_after_temperature():
  rng = np.random.default_rng(3)
  disallow = rng.integers(0, 7, size=[8, 500])
  # The disallowed id has by far the highest logit: 8 above the rest.
  logits = np.zeros([8, 500, 7], np.float32)
  np.put_along_axis(logits, disallow[..., None], 8.0, axis=-1)
  sampled = ph.sample_from_softmax(tf.constant(logits), tf.constant([1, 1]),
                                   disallow_ids=tf.constant(disallow))
  assert not (sampled.numpy() == disallow).any()
  # 1500 / T - 1000 = -250 with T = 2: never sampled. Dividing the penalty by
  # T too, (1500 - 1000) / 2 = +250, would always sample it.
  np.put_along_axis(logits, disallow[..., None], 1500.0, axis=-1)
  sampled = ph.sample_from_softmax(tf.constant(logits), tf.constant([1, 2]),
                                   temperature=2.0,
                                   disallow_ids=tf.constant(disallow))
  assert not (sampled.numpy() == disallow).any()
  allowed = ph.sample_from_softmax(tf.constant(logits), tf.constant([1, 2]),
                                   temperature=2.0)
  np.testing.assert_array_equal(allowed, disallow)


def test_sample_from_softmax_low_precision_logits_and_seeds():
  rng = np.random.default_rng(4)
  logits = tf.constant(rng.normal(size=[2, 19, 30522]), tf.bfloat16)
  seed = tf.constant([6, 6])
  sampled = ph.sample_from_softmax(logits, seed)
  np.testing.assert_array_equal(
      sampled, ph.sample_from_softmax(tf.cast(logits, tf.float32), seed))
  np.testing.assert_array_equal(sampled, ph.sample_from_softmax(logits, seed))
  assert not np.array_equal(
      sampled, ph.sample_from_softmax(logits, tf.constant([6, 7])))
