"""Writes pre-training tfrecords from a directory of raw text files.

    python3 build_pretraining_dataset.py --corpus-dir CORPUS --vocab-file VOCAB \\
        --output-dir OUT [--max-seq-length 128] [--num-processes 1] [--seed S]

Every file of `--corpus-dir` is raw UTF-8 text, one sentence or paragraph per
line, blank lines between documents (entries that are not regular files,
such as FIFOs or links to devices, are skipped with a warning). Lines are
WordPiece-tokenized and packed into examples of at most `--max-seq-length`
tokens, `[CLS] A [SEP] B [SEP]`, written round-robin into
`OUT/pretrain_data.tfrecord-<i>-of-1000` (spec: data.md §1, cli.md §1). The
shards are written into `OUT.incomplete`, which replaces `OUT` only when every worker succeeded and
at least one example was written: a failed or interrupted build never looks
complete and leaves a previous dataset in `OUT` untouched (the original
deleted it first). Workers stop when the builder dies; SIGTERM and Ctrl-C
remove the staging dir. The last line printed counts the examples, tokens
and documents written and the tokens cut by the max-length truncation.

`ExampleBuilder` and `ExampleWriter` are shared with
`build_openwebtext_pretraining_dataset.py`, as in the original.

Speed (not behaviour) differs from the original: lines are tokenized by the
exact cached fast path of `FullTokenizer.tokenize_to_ids`, examples are
serialized and framed as TFRecords in plain Python (`serialize_example`,
`TFRecordFileWriter`: the bytes TensorFlow would write, tested against it),
so TensorFlow is imported only for remote (`gs://...`) paths and each
`--num-processes` worker starts in well under a second.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import random
import shutil
import signal
import stat
import struct
import sys
import threading
import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NamedTuple, Optional,
                    Sequence, Tuple)

import numpy as np

from model import tokenization
from util import cli, files, paths, signals

if TYPE_CHECKING:
  import tensorflow as tf

NUM_OUT_FILES = 1000
SHARD_NAME = "pretrain_data.tfrecord-{}-of-{}"
INCOMPLETE_SUFFIX = ".incomplete"
# The previous dataset while the new one is renamed into place.
REPLACED_SUFFIX = ".replaced"
STATS_FILE = ".job-{}.stats.json"  # A worker process's counts, in the staging dir.
# The builder emits [CLS]/[SEP] itself and WordPiece emits [UNK].
REQUIRED_TOKENS = ("[UNK]", "[CLS]", "[SEP]")
# random.randint(5, max_seq_length) draws the occasional short target (data.md §1.3).
MIN_SEQ_LENGTH = 5

# The `random` module or a `random.Random`: both offer random(), randint(), shuffle().
Rng = Any
Worker = Callable[[int, argparse.Namespace, str], "BuildStats"]


class CorpusError(cli.DataError):
  """An input text file that cannot be read as UTF-8 text."""


class JobsFailedError(RuntimeError):
  """One or more worker processes exited with an error."""


class NoExamplesError(cli.DataError):
  """The corpus produced no example (e.g. only blank lines)."""


class Terminated(KeyboardInterrupt):
  """SIGTERM or SIGHUP reached the builder: handled like Ctrl-C (clean up, exit 130)."""


@dataclasses.dataclass
class BuildStats:
  """What a build wrote, summed over workers.

  Attributes:
    examples: examples written.
    tokens: word-piece tokens written into them ([CLS]/[SEP] not counted).
    documents: documents with at least one token.
    truncated_tokens: tokens cut by the max-length truncation (never written).
  """
  examples: int = 0
  tokens: int = 0
  documents: int = 0
  truncated_tokens: int = 0

  def __add__(self, other: "BuildStats") -> "BuildStats":
    return BuildStats(*(a + b for a, b in zip(dataclasses.astuple(self),
                                               dataclasses.astuple(other))))

  def summary(self, output_dir: str, max_seq_length: int) -> str:
    """One line: what was written where, and how much the truncation cut."""
    total = self.tokens + self.truncated_tokens
    share = 100.0 * self.truncated_tokens / total if total else 0.0
    line = (f"Wrote {self.examples} examples ({self.tokens} tokens) from {self.documents} "
            f"documents to {output_dir}; {self.truncated_tokens} tokens ({share:.1f}%) were "
            f"cut by the --max-seq-length {max_seq_length} truncation.")
    if share >= 5.0:
      line += " Split long lines (e.g. one sentence per line) to keep more of the text."
    return line


def _tf():
  """TensorFlow, imported on first use (remote paths and `tf.train.Example` only)."""
  from util import tf_startup  # pylint: disable=import-outside-toplevel
  return tf_startup.import_tensorflow()  # its start-up banners once


class ExampleFeatures(NamedTuple):
  """The three features of one pre-training example (data.md §1.4), each max_length ints."""
  input_ids: List[int]
  input_mask: List[int]
  segment_ids: List[int]

  def to_tf_example(self) -> "tf.train.Example":
    """The `tf.train.Example` the original builds (imports TensorFlow)."""
    train = _tf().train
    return train.Example(features=train.Features(feature={
        key: train.Feature(int64_list=train.Int64List(value=values))
        for key, values in self._asdict().items()}))


# --- tf.train.Example serialization and TFRecord framing without TensorFlow ---


class _Varints(dict):
  """int -> its protobuf varint bytes (int64: a negative takes 10 bytes), memoized."""

  def __missing__(self, value: int) -> bytes:
    encoded = _encode_varint(value)
    if len(self) < 1 << 20:
      self[value] = encoded
    return encoded


def _encode_varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # Two's complement, as protobuf encodes int64.
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


_VARINTS = _Varints()


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
  return tag + _VARINTS[len(payload)] + payload


def _pack_varints(values: Sequence[int]) -> bytes:
  """The packed varints of an int64 list (what `Int64List.value` serializes to)."""
  if type(values) is not list:  # E.g. a numpy array, whose bytes() is its buffer.
    values = [int(value) for value in values]
  try:
    packed = bytes(values)
    if packed.isascii():  # Every value in [0, 128): one byte each, as is.
      return packed
  except ValueError:  # A value outside [0, 256).
    pass
  return b"".join(map(_VARINTS.__getitem__, values))


class _EntryHeaders(dict):
  """(key, packed length) -> the bytes of a feature map entry before its packed values.

  Entry tag and length, key, Feature tag and length, Int64List tag and length:
  they depend on nothing else, so each is built once.
  """

  def __missing__(self, key_and_length: Tuple[str, int]) -> bytes:
    key, length = key_and_length
    # Int64List.value = 1, packed; an empty list serializes to nothing.
    int64_list_header = b"\x0a" + _VARINTS[length] if length else b""
    int64_list_length = len(int64_list_header) + length
    feature_header = b"\x1a" + _VARINTS[int64_list_length]  # Feature.int64_list = 3.
    feature_length = len(feature_header) + int64_list_length
    key_field = _length_delimited(b"\x0a", key.encode("utf-8"))  # MapEntry.key = 1.
    value_header = b"\x12" + _VARINTS[feature_length]  # MapEntry.value = 2.
    entry_length = len(key_field) + len(value_header) + feature_length
    header = (b"\x0a" + _VARINTS[entry_length] + key_field + value_header + feature_header +
              int64_list_header)  # Features.feature = 1 (one map entry).
    self[key_and_length] = header
    return header


_ENTRY_HEADERS = _EntryHeaders()
# Deterministic protobuf serialization writes map entries sorted by key.
_FIELDS_BY_KEY = sorted(enumerate(ExampleFeatures._fields), key=lambda field: field[1])


def serialize_example(features: ExampleFeatures) -> bytes:
  """The serialized `tf.train.Example` of `features`, without TensorFlow.

  Equal byte for byte to `features.to_tf_example().SerializeToString(
  deterministic=True)` (map entries sorted by key; TF's default order is
  that of a hash table and may differ from process to process).

  Args:
    features: the example's int64 features.

  Returns:
    The protobuf wire bytes.
  """
  parts = []
  for index, key in _FIELDS_BY_KEY:
    packed = _pack_varints(features[index])
    parts.append(_ENTRY_HEADERS[key, len(packed)])
    parts.append(packed)
  body = b"".join(parts)
  return b"\x0a" + _VARINTS[len(body)] + body  # Example.features = 1.


class _Crc32c:
  """CRC-32C (Castagnoli) of byte strings, vectorized with numpy.

  Bytewise, the reflected CRC updates `crc = T0[(crc ^ b) & 0xFF] ^ (crc >> 8)`.
  The update is linear over GF(2), so the register after a block is the XOR
  of one table entry per byte: `T_d[b]`, byte b followed by d more bytes,
  with `T_d = shift(T_(d-1))`; the incoming register is XORed into the
  block's first 4 bytes. Blocks hold at least 4 bytes; shorter tails go
  bytewise.
  """

  POLYNOMIAL = 0x82F63B78
  BLOCK = 1024

  def __init__(self):
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
      table = np.where(table & 1, (table >> 1) ^ np.uint32(self.POLYNOMIAL), table >> 1)
    self._byte_table = [int(x) for x in table]
    tables = np.empty((self.BLOCK, 256), dtype=np.uint32)
    tables[0] = table
    for distance in range(1, self.BLOCK):
      previous = tables[distance - 1]
      tables[distance] = table[previous & 0xFF] ^ (previous >> 8)
    # Row offset of byte i of a block of n bytes: (n - 1 - i) * 256.
    self._row_offsets = np.arange(self.BLOCK - 1, -1, -1, dtype=np.intp) * 256
    # The initial register 0xFFFFFFFF XORed into the first 4 bytes of an
    # n-byte message contributes tables[n-1][0xFF] ^ ... ^ tables[n-4][0xFF].
    initial = np.zeros(self.BLOCK + 1, dtype=np.uint32)
    for j in range(4):
      initial[4:] ^= tables[3 - j:self.BLOCK - j, 0xFF]
    self._initial = [int(x) for x in initial]
    self._tables = tables.reshape(-1)

  def __call__(self, data: bytes) -> int:
    size = len(data)
    if 4 <= size <= self.BLOCK:  # One block (a pre-training example): no carried register.
      block = np.frombuffer(data, dtype=np.uint8)
      terms = self._tables[self._row_offsets[-size:] + block]
      return self._initial[size] ^ int(np.bitwise_xor.reduce(terms)) ^ 0xFFFFFFFF
    register = 0xFFFFFFFF
    position = 0
    while size - position >= 4:
      n = min(self.BLOCK, size - position)
      if 0 < size - position - n < 4:
        n -= 4  # Leaves a tail of at least 4 bytes for the next block.
      block = np.frombuffer(data, dtype=np.uint8, count=n, offset=position).astype(np.intp)
      block[:4] ^= np.frombuffer(register.to_bytes(4, "little"), dtype=np.uint8)
      register = int(np.bitwise_xor.reduce(self._tables[self._row_offsets[-n:] + block]))
      position += n
    table = self._byte_table
    for byte in data[position:]:
      register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ 0xFFFFFFFF


_CRC32C: Optional[_Crc32c] = None


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`, as TFRecord framing uses it."""
  global _CRC32C
  if _CRC32C is None:
    _CRC32C = _Crc32c()
  return _CRC32C(data)


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC: rotate right by 15 bits, add 0xa282ead8 (mod 2^32)."""
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class TFRecordFileWriter:
  """Writes an uncompressed TFRecord file in plain Python (the bytes TensorFlow writes).

  Each record is framed as `uint64 length, uint32 masked_crc32c(length
  bytes), data, uint32 masked_crc32c(data)`, little-endian. The file is
  created (empty) at construction.

  Args:
    path: local path, or any TF filesystem URL (then written through
      `tf.io.gfile`).
  """

  def __init__(self, path: str):
    self._file = _tf().io.gfile.GFile(path, "wb") if _is_remote(path) else open(path, "wb")
    self._headers: Dict[int, bytes] = {}

  def write(self, record: bytes) -> None:
    """Appends one record."""
    header = self._headers.get(len(record))
    if header is None:
      length = struct.pack("<Q", len(record))
      header = self._headers[len(record)] = length + struct.pack("<I", masked_crc32c(length))
    self._file.write(header + record + struct.pack("<I", masked_crc32c(record)))

  def close(self) -> None:
    self._file.close()


class ExampleBuilder:
  """Packs the token ids of consecutive lines into pre-training examples.

  Spec: data.md §1.2-1.4. Random numbers come from `rng` in exactly the
  original's order (one draw for the single-segment choice, coin flips only
  where the third placement test is reached, one draw for the next target
  length and a `randint` in 5% of cases).

  Args:
    tokenizer: a `tokenization.FullTokenizer` (needs `tokenize_to_ids`, or
      `tokenize` and `convert_tokens_to_ids`, and a `vocab` with "[CLS]" and
      "[SEP]").
    max_length: int. Tokens per example, [CLS]/[SEP] included (>= 5).
    rng: the random source; None uses Python's global `random` (unseeded,
      like the original).

  Raises:
    ValueError: `max_length` < 5 or the vocab lacks "[CLS]"/"[SEP]".
  """

  def __init__(self, tokenizer: tokenization.FullTokenizer, max_length: int,
               rng: Optional[Rng] = None):
    if max_length < MIN_SEQ_LENGTH:
      raise ValueError(f"max_seq_length must be at least {MIN_SEQ_LENGTH} (the builder "
                       f"draws random target lengths in [5, max_seq_length]), got {max_length}.")
    tokenization.validate_special_tokens(tokenizer.vocab, ("[CLS]", "[SEP]"),
                                         getattr(tokenizer, "vocab_file", "the vocabulary"))
    self._tokenizer = tokenizer
    self._tokenize_to_ids = getattr(
        tokenizer, "tokenize_to_ids",
        lambda text: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)))
    self._rng = random if rng is None else rng
    self._current_sentences: List[List[int]] = []
    self._current_length = 0
    self._max_length = max_length
    self._target_length = max_length
    self._cls_id = tokenizer.vocab["[CLS]"]
    self._sep_id = tokenizer.vocab["[SEP]"]
    self._document_pending = False  # The current document has tokens.
    self.stats = BuildStats()

  def add_line(self, line: str) -> Optional["tf.train.Example"]:
    """Adds one line of text; returns a `tf.train.Example` when one is complete.

    The original's interface (imports TensorFlow); the writers use
    `add_line_features`, which draws the same random numbers.

    Args:
      line: one line of the corpus.

    Returns:
      A `tf.train.Example` or None.
    """
    features = self.add_line_features(line)
    return None if features is None else features.to_tf_example()

  def add_line_features(self, line: str) -> Optional[ExampleFeatures]:
    """Adds one line of text; returns an example's features when one is complete.

    An empty line ends the pending document (if any tokens are pending).

    Args:
      line: one line of the corpus.

    Returns:
      The `ExampleFeatures` of a finished example, or None.
    """
    line = line.strip().replace("\n", " ")
    if not line and self._document_pending:  # An empty line ends a document.
      self.stats.documents += 1
      self._document_pending = False
    if not line and self._current_length != 0:  # An empty line separates documents.
      return self._create_example()
    token_ids = self._tokenize_to_ids(line)
    if token_ids:
      self._document_pending = True
    self._current_sentences.append(token_ids)
    self._current_length += len(token_ids)
    if self._current_length >= self._target_length:
      return self._create_example()
    return None

  def _create_example(self) -> ExampleFeatures:
    """Splits the pending sentences into two segments (data.md §1.3)."""
    rng = self._rng
    if rng.random() < 0.1:  # Sometimes a single segment, as in classification tasks.
      first_target = 100000
    else:
      first_target = (self._target_length - 3) // 2  # -3: [CLS] and two [SEP].
    first_segment: List[int] = []
    second_segment: List[int] = []
    for sentence in self._current_sentences:
      # Short-circuit order matters: the coin is drawn only when reached. A
      # later short sentence can still join the first segment (data.md §1.3).
      if (not first_segment or
          len(first_segment) + len(sentence) < first_target or
          (not second_segment and len(first_segment) < first_target and
           rng.random() < 0.5)):
        first_segment += sentence
      else:
        second_segment += sentence
    # Truncation uses max_length, not the (possibly shorter) target length.
    untruncated = len(first_segment) + len(second_segment)
    first_segment = first_segment[:self._max_length - 2]
    second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
    kept = len(first_segment) + len(second_segment)
    self.stats.examples += 1
    self.stats.tokens += kept
    self.stats.truncated_tokens += untruncated - kept
    self._current_sentences = []
    self._current_length = 0
    if rng.random() < 0.05:  # Occasionally a shorter target for the next example.
      self._target_length = rng.randint(MIN_SEQ_LENGTH, self._max_length)
    else:
      self._target_length = self._max_length
    return self._make_features(first_segment, second_segment)

  def _make_features(self, first_segment: List[int],
                     second_segment: List[int]) -> ExampleFeatures:
    """`[CLS] first [SEP] (second [SEP])`, 0-padded to max_length (data.md §1.4)."""
    input_ids = [self._cls_id] + first_segment + [self._sep_id]
    segment_ids = [0] * len(input_ids)
    if second_segment:
      input_ids += second_segment + [self._sep_id]
      segment_ids += [1] * (len(second_segment) + 1)
    input_mask = [1] * len(input_ids)
    padding = [0] * (self._max_length - len(input_ids))
    return ExampleFeatures(input_ids + padding, input_mask + padding, segment_ids + padding)


def _is_remote(path: str) -> bool:
  return "://" in path


def listdir(path: str) -> List[str]:
  """Entry names of a directory (local, or any TF filesystem URL)."""
  return _tf().io.gfile.listdir(path) if _is_remote(path) else os.listdir(path)


# What a local path that is neither a regular file nor a directory is.
_SPECIAL_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def special_file_kind(path: str) -> Optional[str]:
  """What `path` is when it is neither a regular file nor a directory, e.g. "a FIFO (named pipe)".

  Uses `os.stat`, which follows links (a link to /dev/zero is a character
  device) and never opens the file: reading a FIFO blocks until someone
  writes, a device may never end.

  Returns:
    None for a regular file or a directory.

  Raises:
    OSError: `path` does not exist (or is a broken link).
  """
  mode = os.stat(path).st_mode
  if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
    return None
  return next((kind for test, kind in _SPECIAL_FILE_KINDS if test(mode)), "not a regular file")


def read_lines(path: str) -> Iterator[str]:
  """Yields the lines of a text file the way the original's TF text reader does.

  Lines are split on "\\n" only, every "\\r" byte is dropped, and each line
  is decoded as strict UTF-8 (spec: data.md §1.1).

  Args:
    path: the file (local, or any TF filesystem URL).

  Yields:
    Each line, including its trailing "\\n" if present.

  Raises:
    CorpusError: invalid UTF-8, naming the file, line and byte offset (the
      original aborted the worker with a bare UnicodeDecodeError), or a local
      path that is a FIFO, socket or device (never opened).
  """
  # (The TF file API drops "\r" itself, so remote offsets count without them.)
  opener = _tf().io.gfile.GFile if _is_remote(path) else open
  kind = None if _is_remote(path) else special_file_kind(path)
  if kind:
    raise CorpusError(f"{path} is {kind}, not a regular file; only regular text files are "
                      "read (a FIFO or a device would block or never end).")
  offset = 0
  with opener(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      data = raw.replace(b"\r", b"") if b"\r" in raw else raw
      try:
        text = data.decode("utf-8")
      except UnicodeDecodeError as e:
        position = offset + _raw_index(raw, e.start)
        raise CorpusError(
            f"{path}: invalid UTF-8 byte 0x{data[e.start]:02x} at byte offset {position} "
            f"(line {line_no}): {e.reason}. Corpus files must be UTF-8 text; re-encode "
            "the file (e.g. iconv -f latin1 -t utf-8) or remove it.") from None
      offset += len(raw)
      yield text


def _raw_index(raw: bytes, index: int) -> int:
  """Position in `raw` of byte `index` of `raw` with every "\\r" removed."""
  kept = -1
  for position, byte in enumerate(raw):
    if byte != 0x0D:
      kept += 1
      if kept == index:
        return position
  return len(raw)


class ExampleWriter:
  """Writes the examples of one worker round-robin into the shards it owns.

  The worker owns shard `i` (of `num_out_files`) when
  `i % num_jobs == job_id`; example number c goes to its c-th shard modulo
  the number it owns (spec: cli.md §1, data.md §1.5).

  Args:
    job_id: int. This worker's id in [0, num_jobs).
    vocab_file: path of the WordPiece vocabulary.
    output_dir: directory for the shards (must exist).
    max_seq_length: int. Tokens per example.
    num_jobs: int. Number of workers.
    blanks_separate_docs: bool. Whether blank lines end documents.
    do_lower_case: bool. Lower-case the text.
    num_out_files: int. Total number of shards over all workers.
    strip_accents: bool. Strip accents (only when lower-casing).
    rng: random source shared with the worker's shuffles; None uses the
      global `random`.

  Raises:
    FileNotFoundError / ValueError: unusable vocabulary or max_seq_length.
    ValueError: this job owns no shard (num_jobs > num_out_files).
  """

  def __init__(self, job_id: int, vocab_file: str, output_dir: str, max_seq_length: int,
               num_jobs: int, blanks_separate_docs: bool, do_lower_case: bool,
               num_out_files: int = NUM_OUT_FILES, strip_accents: bool = True,
               rng: Optional[Rng] = None):
    self._blanks_separate_docs = blanks_separate_docs
    tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=do_lower_case,
                                           strip_accents=strip_accents)
    self._example_builder = ExampleBuilder(tokenizer, max_seq_length, rng=rng)
    shard_ids = [i for i in range(num_out_files) if i % num_jobs == job_id]
    if not shard_ids:
      raise ValueError(f"Job {job_id} of {num_jobs} owns none of the {num_out_files} output "
                       "files; use at most that many processes.")
    _raise_open_file_limit(len(shard_ids) + 64)
    self._writers = [
        TFRecordFileWriter(os.path.join(output_dir, SHARD_NAME.format(i, num_out_files)))
        for i in shard_ids]
    self.n_written = 0

  def write_examples(self, input_file: str) -> None:
    """Writes the examples of one text file; the file always ends a document.

    Args:
      input_file: path of a UTF-8 text file.

    Raises:
      CorpusError: the file is not valid UTF-8.
      OSError: the file cannot be read.
    """
    add_line = self._example_builder.add_line_features
    for line in read_lines(input_file):
      line = line.strip()
      if line or self._blanks_separate_docs:
        self._write(add_line(line))
    self._write(add_line(""))  # Flush: examples never span files.

  def _write(self, features: Optional[ExampleFeatures]) -> None:
    if features is not None:
      self._writers[self.n_written % len(self._writers)].write(serialize_example(features))
      self.n_written += 1

  @property
  def stats(self) -> BuildStats:
    """Examples, tokens, documents and truncated tokens written so far."""
    return self._example_builder.stats

  def finish(self) -> None:
    """Closes every shard."""
    for writer in self._writers:
      writer.close()


def _raise_open_file_limit(needed: int) -> None:
  """Lifts the soft open-file limit towards the hard one (1000 shards stay open)."""
  try:
    import resource
  except ImportError:  # Not on POSIX: nothing to do.
    return
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft != resource.RLIM_INFINITY and soft < needed:
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --- Worker plumbing, shared with build_openwebtext_pretraining_dataset.py ---


def job_rng(seed: Optional[int], job_id: int) -> Rng:
  """The worker's random source: `random.Random(seed + job_id)`, or the global one.

  A `random.Random(S)` draws exactly what the global generator draws after
  `random.seed(S)`, so a seeded run equals the original run under that seed.
  """
  return random if seed is None else random.Random(seed + job_id)


def job_files(sorted_names: Sequence[str], job_id: int, num_jobs: int) -> List[str]:
  """The names whose index in the sorted list is `job_id` modulo `num_jobs`."""
  return [name for i, name in enumerate(sorted_names) if i % num_jobs == job_id]


def job_logger(job_id: int) -> Callable[[str], None]:
  """`log(msg)` printing `Job <id>: <msg>` to stdout, as the original."""
  def log(message: str) -> None:
    print(f"Job {job_id}: {message}", flush=True)
  return log


def progress_message(file_no: int, num_files: int, start_time: float, n_written: int) -> str:
  """The original's progress line (cli.md §1); ETA = remaining / rate, truncated."""
  elapsed = max(time.time() - start_time, 1e-9)  # The original divides by it.
  return (f"processed {file_no}/{num_files} files ({100.0 * file_no / num_files:.1f}%), "
          f"ELAPSED: {int(elapsed)}s, ETA: {int((num_files - file_no) / (file_no / elapsed))}s, "
          f"{n_written} examples written")


# prctl(2) option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent_pid: int) -> None:
  """Makes this worker get SIGTERM when the builder process dies (even by SIGKILL).

  Linux: `prctl(PR_SET_PDEATHSIG)`. Elsewhere a daemon thread polls the
  parent pid and signals the main thread.
  """
  armed = False
  if sys.platform.startswith("linux"):
    try:
      libc = ctypes.CDLL(None, use_errno=True)
      armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
      armed = False
  if not armed:
    def watch() -> None:
      while os.getppid() == parent_pid:
        time.sleep(0.5)
      signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    threading.Thread(target=watch, daemon=True).start()
  if os.getppid() != parent_pid:  # The parent died before prctl: nobody would signal us.
    raise SystemExit(1)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
  raise SystemExit(128 + signum)  # Unwinds through `finally` (closes the shards).


def _run_job(worker: Worker, job_id: int, args: argparse.Namespace, shard_dir: str,
             parent_pid: int) -> None:
  """Child-process entry: writes the job's stats file; one error line and exit 1 on bad input.

  The worker stops when the builder dies; an orphaned worker removes the
  staging dir on its way out (the parent cannot any more).
  """
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the workers.
  signal.signal(signal.SIGTERM, _exit_on_sigterm)
  try:
    _stop_with_parent(parent_pid)
    stats = worker(job_id, args, shard_dir)
    files.write_json(dataclasses.asdict(stats), os.path.join(shard_dir, STATS_FILE.format(job_id)))
  except cli.reported_errors() as e:
    print(f"Job {job_id}: error: {cli.message(e)}", file=sys.stderr, flush=True)
    sys.exit(1)
  except BaseException:
    if os.getppid() != parent_pid:  # Orphaned: the builder was killed.
      shutil.rmtree(shard_dir, ignore_errors=True)
    raise


def _collect_stats(shard_dir: str, num_jobs: int) -> BuildStats:
  """Sums and removes the workers' stats files (only shards stay in the output)."""
  total = BuildStats()
  for job_id in range(num_jobs):
    path = os.path.join(shard_dir, STATS_FILE.format(job_id))
    total += BuildStats(**files.load_json(path))
    os.remove(path)
  return total


def run_jobs(worker: Worker, args: argparse.Namespace, shard_dir: str) -> BuildStats:
  """Runs `worker(job_id, args, shard_dir)` for every job id; returns the summed stats.

  One process: in-process, like the original. Several: one `spawn`
  process per job (TensorFlow is not fork-safe once its runtime started in
  the parent, e.g. in tests; the original used the platform default, fork on
  Linux). A worker imports no TensorFlow for local paths, so it starts in
  well under a second. Workers die with the parent; any exception here
  (Ctrl-C, SIGTERM) terminates them before it propagates.

  Raises:
    JobsFailedError: a worker process exited with a non-zero code.
  """
  if args.num_processes == 1:
    return worker(0, args, shard_dir)
  context = multiprocessing.get_context("spawn")
  processes = [context.Process(target=_run_job,
                               args=(worker, job_id, args, shard_dir, os.getpid()))
               for job_id in range(args.num_processes)]
  try:
    for process in processes:
      process.start()
    for process in processes:
      process.join()
  except BaseException:
    for process in processes:
      if process.is_alive():
        process.terminate()
    for process in processes:
      if process.pid is not None:
        process.join()
    raise
  failed = [f"job {job_id} (exit code {process.exitcode})"
            for job_id, process in enumerate(processes) if process.exitcode != 0]
  if failed:
    raise JobsFailedError(f"{', '.join(failed)} failed; see the messages above. No "
                          "output was kept.")
  return _collect_stats(shard_dir, args.num_processes)


@contextlib.contextmanager
def _termination_raises() -> Iterator[None]:
  """Within the block SIGTERM/SIGHUP raise `Terminated` (once), so cleanup code runs."""
  # A signal the user's shell ignores (nohup) or a caller handles stays as it is.
  signums = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
             if s is not None and signal.getsignal(s) == signal.SIG_DFL]

  def handler(signum: int, _frame: Any) -> None:
    for s in signums:  # Cleanup must not be interrupted by a second signal.
      signal.signal(s, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)

  with signals.signal_handlers(signums, handler):
    yield


def _only_shards(directory: str) -> bool:
  prefix = SHARD_NAME.split("-")[0] + "-"
  return all(name.startswith(prefix) for name in os.listdir(directory))


def _recover_replaced(output_dir: str) -> None:
  """Finishes a swap a killed builder left halfway: the old dataset is never lost.

  `<out>.replaced` alone: the kill came between the two renames, so it is
  renamed back to `<out>`. Next to `<out>`: the swap completed; it is deleted.
  """
  replaced = output_dir + REPLACED_SUFFIX
  if not os.path.isdir(replaced):
    return
  if not _only_shards(replaced):
    raise cli.DataError(f"{replaced} holds entries that are not pre-training shards; "
                        "move it out of the way.")
  if os.path.exists(output_dir):
    files.rmrf(replaced)
  else:
    os.rename(replaced, output_dir)


def _swap_into_place(staging_dir: str, output_dir: str) -> None:
  """Renames `staging_dir` to `output_dir`; an old `output_dir` is deleted only after."""
  if not os.path.exists(output_dir):
    os.rename(staging_dir, output_dir)
    return
  replaced = output_dir + REPLACED_SUFFIX
  os.rename(output_dir, replaced)
  try:
    os.rename(staging_dir, output_dir)
  except BaseException:
    os.rename(replaced, output_dir)
    raise
  files.rmrf(replaced)


def build_shards(worker: Worker, args: argparse.Namespace, output_dir: str) -> BuildStats:
  """Runs the workers into a staging dir, then swaps it for `output_dir`; prints a summary.

  The shards go to `<output_dir>.incomplete` (re-created empty: a killed
  run's leftovers go). Only when every worker succeeded and at least one
  example was written does it replace `output_dir` (the original deleted the
  output dir first); until then a previous dataset stays untouched. On any
  failure, Ctrl-C or SIGTERM the workers are stopped and the staging dir is
  removed.

  Returns:
    The counts of the build (also printed as one line).

  Raises:
    NoExamplesError: the corpus yields no example.
    JobsFailedError: a worker failed.
    Terminated / KeyboardInterrupt: SIGTERM, SIGHUP or Ctrl-C.
  """
  output_dir = os.path.normpath(output_dir)
  staging_dir = output_dir + INCOMPLETE_SUFFIX
  _recover_replaced(output_dir)
  with _termination_raises():
    files.rmkdir(staging_dir)
    try:
      stats = run_jobs(worker, args, staging_dir)
      if stats.examples == 0:
        raise NoExamplesError(
            f"no examples written: the corpus holds no tokens ({stats.documents} documents; "
            f"blank or whitespace-only lines?). {output_dir} was left unchanged.")
    except BaseException as e:
      files.rmrf(staging_dir)
      if isinstance(e, KeyboardInterrupt):
        print(f"Stopped ({e or 'interrupted'}): workers ended, partial output "
              f"{staging_dir} removed, {output_dir} unchanged.", file=sys.stderr, flush=True)
      raise
  _swap_into_place(staging_dir, output_dir)
  print(stats.summary(output_dir, args.max_seq_length), flush=True)
  return stats


def check_output_dir(output_dir: str, protected: Sequence[str]) -> None:
  """Refuses an output dir whose replacement would delete anything but old shards.

  The original deletes the output dir unconditionally; a mistyped path (the
  corpus, the home directory) would be lost, so only a directory holding
  nothing but `pretrain_data.tfrecord-*` shards is replaced, and never one
  that is or contains an input (`util.paths.check_output_apart`). An output
  inside the corpus dir is fine (the Spanish-ELECTRA recipe's
  `$DATA_DIR/pretrain_tfrecords`): the corpus reader skips it.

  Raises:
    ValueError: `output_dir` is remote, overlaps a protected input, or holds
      other entries.
  """
  if _is_remote(output_dir):
    raise ValueError(f"Output directory {output_dir}: only local directories are "
                     "supported (shards are staged and renamed into place).")
  paths.check_output_apart(output_dir, "--output-dir", [(path, "the input") for path in protected],
                           inside=False)
  if os.path.isdir(output_dir):
    if not _only_shards(output_dir):
      others = sorted(name for name in os.listdir(output_dir)
                      if not name.startswith(SHARD_NAME.split("-")[0] + "-"))
      raise ValueError(f"Output directory {output_dir} holds entries that are not "
                       f"pre-training shards (e.g. {others[0]}); it would be deleted and "
                       "re-created, so remove it yourself or choose a new --output-dir.")
  elif os.path.exists(output_dir):
    raise ValueError(f"Output directory {output_dir} exists and is not a directory.")


def check_common_args(args: argparse.Namespace) -> None:
  """Checks --max-seq-length and --num-processes.

  Raises:
    cli.UsageError: a value out of range.
  """
  if args.max_seq_length < MIN_SEQ_LENGTH:
    raise cli.UsageError(f"--max-seq-length must be at least {MIN_SEQ_LENGTH}, got "
                         f"{args.max_seq_length}.")
  if not 1 <= args.num_processes <= NUM_OUT_FILES:
    raise cli.UsageError(f"--num-processes must be in [1, {NUM_OUT_FILES}] (each process owns "
                         f"some of the {NUM_OUT_FILES} shards), got {args.num_processes}.")


def run_build(args: argparse.Namespace, build: Callable[[], None]) -> int:
  """Checks the flags, then runs `build`; returns the exit code (see `util.cli`).

  A bad flag exits with 2. Every check in `build` is about input files and
  folders, so any `ValueError` it raises, and a failed worker, exits with 1.
  """
  code = cli.run(lambda _: check_common_args(args))
  return code or cli.run(lambda _: build(), extra_data_errors=(ValueError, JobsFailedError))


def check_vocab(vocab_file: str) -> None:
  """Loads the vocab once up front so that a bad one fails before anything is deleted."""
  vocab = tokenization.load_vocab(vocab_file)
  tokenization.validate_special_tokens(vocab, REQUIRED_TOKENS, vocab_file)


def check_input_files(directory: str, what: str, skip: Sequence[str] = (),
                      warn: bool = True) -> List[str]:
  """Lists `directory`: the files to read (all but `skip`), each checked to be readable.

  Entries that are not regular files (FIFOs, sockets, devices, also through
  links) are skipped without being opened, with one `warning:` line each on
  stderr if `warn` (a FIFO would block the build for ever, /dev/zero never
  ends).

  Returns:
    The sorted names of the regular files, without `skip`.

  Raises:
    FileNotFoundError: the directory does not exist.
    cli.DataError: it is not a directory, holds no regular file, holds a
      sub-directory or an unreadable file.
  """
  if _is_remote(directory):
    if not _tf().io.gfile.isdir(directory):
      raise FileNotFoundError(f"{what} {directory} does not exist or is not a directory.")
    names, skipped = sorted(set(listdir(directory)) - set(skip)), []
  else:
    names, skipped = _local_input_files(directory, what, skip)
  if warn:
    for name, kind in skipped:
      print(f"warning: skipping {os.path.join(directory, name)}: it is {kind}, not a regular "
            "file (never opened).", file=sys.stderr, flush=True)
  if not names and skipped:
    raise cli.DataError(f"{what} {directory} holds no regular file ({len(skipped)} "
                        "skipped: FIFOs, sockets or devices); nothing to build.")
  if not names:
    raise cli.DataError(f"{what} {directory} is empty; nothing to build.")
  return names


def _local_input_files(directory: str, what: str, skip: Sequence[str]
                       ) -> Tuple[List[str], List[Tuple[str, str]]]:
  """The sorted regular files of a local `directory` and the (name, kind) of the others."""
  if not os.path.exists(directory):
    raise FileNotFoundError(f"{what} {directory} does not exist.")
  if not os.path.isdir(directory):
    raise cli.DataError(f"{what} {directory} is not a directory; pass the directory that "
                        "holds the text files.")
  names, skipped = [], []
  for name in sorted(set(os.listdir(directory)) - set(skip)):
    path = os.path.join(directory, name)
    if os.path.isdir(path):
      raise cli.DataError(f"{what} {directory} contains the directory {name}; every entry "
                          "is read as a file (no recursion), so move it out.")
    try:
      kind = special_file_kind(path)
    except OSError:
      kind = None  # A broken link: os.access fails below.
    if kind:
      skipped.append((name, kind))
    elif not os.access(path, os.R_OK):
      raise cli.DataError(f"{path} is not readable (permissions or a broken link); fix or "
                          "remove it.")
    else:
      names.append(name)
  return names, skipped


def own_files_in_corpus(args: argparse.Namespace) -> List[str]:
  """Names in --corpus-dir that are this run's --vocab-file or --output-dir (not corpus text).

  The widely used recipe `--corpus-dir $DATA_DIR --vocab-file $DATA_DIR/vocab.txt
  --output-dir $DATA_DIR/pretrain_tfrecords` keeps all three in one
  directory; the original then read the vocabulary as text (and failed on
  the output directory). Only local paths are compared.
  """
  if _is_remote(args.corpus_dir):
    return []
  corpus = os.path.realpath(args.corpus_dir)
  output = os.path.normpath(args.output_dir)
  names = []
  for path in (args.vocab_file, output, output + INCOMPLETE_SUFFIX):
    if not _is_remote(path) and os.path.dirname(os.path.realpath(path)) == corpus:
      names.append(os.path.basename(path))
  return names


def corpus_file_names(args: argparse.Namespace, warn: bool = True) -> List[str]:
  """The sorted corpus files to read: --corpus-dir's regular files but `own_files_in_corpus`.

  Args:
    args: the parsed flags.
    warn: print a warning for each skipped FIFO, socket or device (the builder
      does, once; its workers list the directory again quietly).
  """
  return check_input_files(args.corpus_dir, "Corpus directory", own_files_in_corpus(args),
                           warn=warn)


def add_casing_args(parser: argparse.ArgumentParser) -> None:
  """--do/--no-lower-case and --do/--no-strip-accents (defaults: both on, as BERT uncased)."""
  parser.add_argument("--do-lower-case", dest="do_lower_case", action="store_true",
                      help="Lower case input text.")
  parser.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                      help="Don't lower case input text.")
  parser.add_argument("--do-strip-accents", dest="strip_accents", action="store_true",
                      help="Strip accents (only when lower-casing).")
  parser.add_argument("--no-strip-accents", dest="strip_accents", action="store_false",
                      help="Don't strip accents.")
  parser.set_defaults(do_lower_case=True, strip_accents=True)


def add_tokenizer_args(parser: argparse.ArgumentParser) -> None:
  """--max-seq-length, --num-processes, casing/accent toggles and --seed."""
  parser.add_argument("--max-seq-length", default=128, type=int,
                      help="Number of tokens per example, [CLS]/[SEP] included.")
  parser.add_argument("--num-processes", default=1, type=int,
                      help="Parallelize across multiple processes.")
  add_casing_args(parser)
  parser.add_argument("--seed", default=None, type=int,
                      help="Seed Python's random for reproducible output: worker j uses "
                           "seed + j. Without it the output differs run to run, as in the "
                           "original.")
  parser.set_defaults(do_lower_case=True, strip_accents=True)


_FALSE_LOOKING = ("false", "f", "no", "n", "off", "0")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses the command line (flags and defaults of the original, plus --seed)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus-dir", required=True,
                      help="Location of pre-training text files.")
  parser.add_argument("--vocab-file", required=True,
                      help="Location of vocabulary file.")
  parser.add_argument("--output-dir", required=True,
                      help="Where to write out the tfrecords (deleted and re-created).")
  # Quirk kept (cli.md Quirks): the original declares type=bool, so any
  # non-empty string, "False" included, means True; only "" gives False.
  parser.add_argument("--blanks-separate-docs", default=True, type=str, metavar="BOOL",
                      help="Whether blank lines indicate document boundaries. As in the "
                           "original any non-empty value means True; pass '' for False.")
  add_tokenizer_args(parser)
  args = parser.parse_args(argv)
  raw = args.blanks_separate_docs
  if isinstance(raw, str):
    args.blanks_separate_docs = bool(raw)
    if raw.strip().lower() in _FALSE_LOOKING:
      print(f"warning: --blanks-separate-docs {raw!r} means True (like the original, any "
            "non-empty value is True); pass --blanks-separate-docs '' for False.",
            file=sys.stderr)
  return args


def write_examples(job_id: int, args: argparse.Namespace, shard_dir: str) -> BuildStats:
  """One worker: writes its share of the corpus files into its shards (cli.md §1)."""
  log = job_logger(job_id)
  rng = job_rng(args.seed, job_id)
  log("Creating example writer")
  example_writer = ExampleWriter(
      job_id=job_id, vocab_file=args.vocab_file, output_dir=shard_dir,
      max_seq_length=args.max_seq_length, num_jobs=args.num_processes,
      blanks_separate_docs=args.blanks_separate_docs, do_lower_case=args.do_lower_case,
      strip_accents=args.strip_accents, rng=rng)
  log("Writing tf examples")
  fnames = job_files(corpus_file_names(args, warn=False), job_id, args.num_processes)
  rng.shuffle(fnames)
  start_time = time.time()
  try:
    for file_no, fname in enumerate(fnames):
      if file_no > 0:
        log(progress_message(file_no, len(fnames), start_time, example_writer.n_written))
      example_writer.write_examples(os.path.join(args.corpus_dir, fname))
  finally:
    example_writer.finish()
  log("Done!")
  return example_writer.stats


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Builds the dataset; returns the exit code (one error line: 2 bad flag, 1 bad input)."""
  args = parse_args(argv)

  def build() -> None:
    corpus_file_names(args)
    skipped = [name for name in own_files_in_corpus(args)
               if os.path.exists(os.path.join(args.corpus_dir, name))]
    if skipped:
      print(f"note: not reading {', '.join(skipped)} in --corpus-dir as text: "
            "they are this run's vocab file / output.", file=sys.stderr)
    check_vocab(args.vocab_file)
    check_output_dir(args.output_dir, [args.corpus_dir, args.vocab_file])
    build_shards(write_examples, args, args.output_dir)

  return run_build(args, build)


if __name__ == "__main__":
  sys.exit(main())
