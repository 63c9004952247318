"""Pre-training inputs: the `Inputs` tuple and the tf.data input pipeline.

Letters: B batch, S sequence length, P predictions per sequence
(`max_predictions_per_seq`).

The model holds a batch as an `Inputs` named tuple (see docs/data.md#pre-training-input-pipeline).
The three `masked_lm_*` fields are None until `pretrain_helpers.mask` fills them.
"""
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from util import cli


class Inputs(NamedTuple):
  """One batch of pre-training inputs.

  Attributes:
    input_ids: int32 Tensor [B, S], WordPiece ids, 0-padded.
    input_mask: int32 Tensor [B, S], 1 for real tokens, 0 for padding.
    segment_ids: int32 Tensor [B, S], token-type ids (0 first segment, 1 second).
    masked_lm_positions: int32 Tensor [B, P] or None, positions chosen for
      prediction (unused slots point to 0).
    masked_lm_ids: int32 Tensor [B, P] or None, original ids at those positions
      (unused slots are 0).
    masked_lm_weights: float32 Tensor [B, P] or None, 1.0 for used slots, 0.0
      for unused ones.
  """
  input_ids: tf.Tensor
  input_mask: tf.Tensor
  segment_ids: tf.Tensor
  masked_lm_positions: Optional[tf.Tensor] = None
  masked_lm_ids: Optional[tf.Tensor] = None
  masked_lm_weights: Optional[tf.Tensor] = None


_REQUIRED_FEATURES = ("input_ids", "input_mask", "segment_ids")


def features_to_inputs(features: Dict[str, tf.Tensor]) -> Inputs:
  """Builds `Inputs` from a feature dict (e.g. one parsed tfrecord batch).

  Keys other than the six `Inputs` fields are ignored, as in the original; the
  `masked_lm_*` keys are optional and default to None.

  Args:
    features: dict with at least "input_ids", "input_mask" and "segment_ids"
      (each [B, S]); optionally "masked_lm_positions", "masked_lm_ids",
      "masked_lm_weights" (each [B, P]).

  Returns:
    The `Inputs` tuple.

  Raises:
    ValueError: if a required key is missing.
  """
  missing = [key for key in _REQUIRED_FEATURES if key not in features]
  if missing:
    raise ValueError(
        f"Pre-training features lack {missing}; got keys {sorted(features)}. "
        "The pre-training tfrecords must contain input_ids, input_mask and "
        "segment_ids (see docs/data.md#shards-and-tfrecord-features); rebuild them with "
        "build_pretraining_dataset.py.")
  return Inputs(**{field: features.get(field) for field in Inputs._fields})


def get_updated_inputs(inputs: Inputs, **kwargs: tf.Tensor) -> Inputs:
  """Returns a copy of `inputs` with the given fields replaced.

  Args:
    inputs: the `Inputs` to copy.
    **kwargs: new values keyed by `Inputs` field name, e.g.
      `input_ids=fake_ids`.

  Returns:
    A new `Inputs`; fields not named keep their values.

  Raises:
    ValueError: if a keyword is not an `Inputs` field (the original silently
      dropped it, which hides typos).
  """
  unknown = sorted(set(kwargs) - set(Inputs._fields))
  if unknown:
    raise ValueError(
        f"get_updated_inputs got unknown field(s) {unknown}; valid fields are "
        f"{list(Inputs._fields)}.")
  features = inputs._asdict()
  features.update(kwargs)
  return features_to_inputs(features)


# ---------------------------------------------------------------------------
# tf.data input pipeline (see docs/data.md#pre-training-input-pipeline)

_INTERLEAVE_CYCLE = 4
_RECORD_SHUFFLE_BUFFER = 100


def get_input_files(pretrain_tfrecords: str) -> List[str]:
  """The union of the files matched by each comma-separated glob, sorted.

  Raises:
    FileNotFoundError: a pattern matches nothing, naming it and how to build the data.
  """
  files: List[str] = []
  for pattern in (p.strip() for p in pretrain_tfrecords.split(",")):
    if not pattern:
      continue
    matched = tf.io.gfile.glob(pattern)
    if not matched:
      raise FileNotFoundError(
          f"No pre-training tfrecords match {pattern!r} (hparam pretrain_tfrecords). Build them "
          "with `python3 build_pretraining_dataset.py --corpus-dir <text dir> --vocab-file "
          "<vocab.txt> --output-dir <data-dir>/pretrain_tfrecords`, or point "
          "pretrain_tfrecords at existing files (a glob of files, not a directory).")
    files.extend(matched)
  if not files:
    raise FileNotFoundError("hparam pretrain_tfrecords is empty.")
  return sorted(set(files))


def check_sequence_length(files: List[str], max_seq_length: int,
                          pretrain_tfrecords: Optional[str] = None) -> None:
  """Fails early and clearly on records of another length, mixed lengths or no records.

  Reads the first record of every file (one tf.data pass, cheap); an input
  of empty files would otherwise make the repeated pipeline spin for ever
  without yielding a batch, and shards of two lengths fail with a parse error
  that names neither.

  Raises:
    ValueError: the records were built with another length.
    util.cli.DataError: the files hold records of different lengths (naming a
      file of each), every file is empty (naming `pretrain_tfrecords`), or a
      first record is unreadable (naming the file).
  """
  where = pretrain_tfrecords or ", ".join(files)
  file_of_length: Dict[int, bytes] = {}
  for paths, lengths in _first_records(files, 1, lambda ids: (ids.row_lengths(),)):
    for path, length in zip(paths, lengths):
      file_of_length.setdefault(int(length), path)
  if len(file_of_length) > 1:
    shards = ", ".join(f"{path.decode()} holds examples of length {length}"
                       for length, path in sorted(file_of_length.items()))
    raise cli.DataError(
        f"The files matching {where} (hparam pretrain_tfrecords) mix sequence lengths: "
        f"{shards}; hparam max_seq_length is {max_seq_length}. Keep the shards of one "
        "build only (move the others away or narrow pretrain_tfrecords).")
  if not file_of_length:
    raise cli.DataError(
        f"No examples: all {len(files)} files matching {where} (hparam pretrain_tfrecords) are "
        "empty. Rebuild them with build_pretraining_dataset.py from a corpus with text.")
  length, path = next(iter(file_of_length.items()))
  if length != max_seq_length:
    raise ValueError(
        f"{path.decode()} holds examples of length {length} but hparam max_seq_length is "
        f"{max_seq_length}; pass \"max_seq_length\": {length} or rebuild the data with "
        f"--max-seq-length {max_seq_length}.")


def check_token_ids(files: List[str], vocab_size: int, vocab_file: str,
                    records_per_file: int = 64) -> None:
  """Fails early on token ids outside the vocabulary (data built with another vocab).

  Reads the first `records_per_file` records of every file (one tf.data
  pass, cheap); the embedding lookup would otherwise fail in the first
  training step with a long graph stack trace, after the first checkpoint
  was written.

  Args:
    files: the tfrecord files.
    vocab_size: the model's vocabulary size (hparam vocab_size).
    vocab_file: the vocabulary it was taken from, for the message.
    records_per_file: how many records of each file to check.

  Raises:
    util.cli.DataError: an id >= vocab_size (the largest found) or < 0, naming
      the vocab file, vocab_size, the id and the file that holds it.
  """
  largest = smallest = (0, b"")  # Id 0 is in every vocabulary.
  for paths, row_max, row_min in _first_records(
      files, records_per_file,
      lambda ids: (tf.reduce_max(ids, axis=1), tf.reduce_min(ids, axis=1))):
    top, bottom = row_max.argmax(), row_min.argmin()
    if row_max[top] > largest[0]:
      largest = (int(row_max[top]), paths[top])
    if row_min[bottom] < smallest[0]:
      smallest = (int(row_min[bottom]), paths[bottom])
  for token_id, path in (largest, smallest):
    if not 0 <= token_id < vocab_size:
      raise cli.DataError(
          f"{path.decode()} holds token id {token_id}, outside the vocabulary of {vocab_size} "
          f"ids ({vocab_file}, hparams vocab_file / vocab_size): the data was built with "
          "another vocabulary. Rebuild it with build_pretraining_dataset.py --vocab-file "
          f"{vocab_file}, or set vocab_file to the vocabulary it was built with.")


_SCAN_BATCH = 1024


def _first_records(files: List[str], count: int,
                   summarize: Callable[[tf.RaggedTensor], Tuple[tf.Tensor, ...]]
                   ) -> Iterator[Tuple[np.ndarray, ...]]:
  """Per-record summaries of the `input_ids` of the first `count` records of each file.

  Args:
    files: the tfrecord files, read in order.
    count: records per file (fewer where a file holds fewer).
    summarize: input_ids [b, (length)] (ragged: any length) -> tensors [b].

  Yields:
    numpy batches `(paths, *summarize(input_ids))`, paths as bytes.

  Raises:
    util.cli.DataError: a record is unreadable, naming its file (found by
      reading the files one by one: the pipeline's error does not name it).
  """
  def parse(paths, records):
    features = tf.io.parse_example(records, {"input_ids": tf.io.RaggedFeature(tf.int64)})
    return (paths,) + tuple(summarize(features["input_ids"]))

  dataset = tf.data.Dataset.from_tensor_slices(tf.constant(files)).flat_map(
      lambda path: tf.data.TFRecordDataset(path).take(count).map(lambda record: (path, record)))
  try:
    for batch in dataset.batch(_SCAN_BATCH).map(parse):
      yield tuple(tensor.numpy() for tensor in batch)
  except tf.errors.OpError as e:
    for path in files:
      try:
        for _ in tf.data.TFRecordDataset(path).take(count):
          pass
      except tf.errors.OpError as file_error:
        raise corrupt_shard_error(path, file_error) from e
    raise


def corrupt_shard_error(path: str, error: Exception) -> cli.DataError:
  """The one-line error for an unreadable tfrecord file."""
  detail = (getattr(error, "message", "") or str(error)).strip().splitlines()
  return cli.DataError(
      f"Corrupt or truncated tfrecord file {path} ({detail[0] if detail else error}). "
      "Rebuild the data set, or remove that file (or exclude it from hparam "
      "pretrain_tfrecords); the last checkpoint is intact.")


def find_corrupt_shard(files: List[str]) -> Optional[cli.DataError]:
  """Reads every file to the end (in TF, no Python per record); the first failure, if any.

  Used after a `DataLossError` during training to name the file: the
  interleaved pipeline's error does not say which file it was reading.
  """
  for path in files:
    try:
      tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
    except tf.errors.OpError as e:
      return corrupt_shard_error(path, e)
  return None


def get_dataset(pretrain_tfrecords: str, max_seq_length: int, batch_size: int,
                is_training: bool, seed: Optional[int] = None) -> tf.data.Dataset:
  """Batches of `{input_ids, input_mask, segment_ids}` (int32 [batch_size, S]), repeated.

  Files are read in a shuffled order, four at a time (interleaved), records
  shuffled in a buffer of 100, batched with drop_remainder. With `seed`, every
  shuffle is seeded and the interleave deterministic, so the order is
  reproducible (and resumable from a checkpointed iterator); without it the
  training order is non-deterministic like the original's sloppy interleave.

  Args:
    pretrain_tfrecords: comma-separated globs.
    max_seq_length: S, must equal the length the records were built with.
    batch_size: global batch size.
    is_training: training (sloppy interleave unless seeded) or eval.
    seed: optional int seed for the shuffles.

  Returns:
    An infinite `tf.data.Dataset`.
  """
  files = get_input_files(pretrain_tfrecords)
  check_sequence_length(files, max_seq_length, pretrain_tfrecords)
  name_to_features = {
      name: tf.io.FixedLenFeature([max_seq_length], tf.int64)
      for name in _REQUIRED_FEATURES
  }

  def parse(records):
    parsed = tf.io.parse_example(records, name_to_features)
    return {name: tf.cast(value, tf.int32) for name, value in parsed.items()}

  deterministic = (not is_training) or seed is not None
  dataset = tf.data.Dataset.from_tensor_slices(tf.constant(files)).repeat()
  dataset = dataset.shuffle(len(files), seed=seed)
  dataset = dataset.interleave(tf.data.TFRecordDataset,
                               cycle_length=min(_INTERLEAVE_CYCLE, len(files)),
                               num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=deterministic)
  dataset = dataset.shuffle(_RECORD_SHUFFLE_BUFFER, seed=None if seed is None else seed + 1)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)
