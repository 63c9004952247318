"""Packing corpus lines into pre-training examples and writing them into shards.

`ExampleBuilder` packs the token ids of consecutive lines into examples
`[CLS] A [SEP] B [SEP]` of at most `max_seq_length` tokens, drawing random
numbers in the original's order; `ExampleWriter` tokenizes one worker's
corpus files (`read_lines`: UTF-8, "\\r" dropped, FIFOs and devices refused)
and writes the examples round-robin into the shards that worker owns.
`dataset_builder` runs the workers.
"""
from __future__ import annotations

import dataclasses
import os
import random
import stat
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

from model import tokenization
from pretrain.tfrecord_writer import (ExampleFeatures, TFRecordFileWriter, lazy_tensorflow,
                                      serialize_example)
from util import cli, paths

if TYPE_CHECKING:
  import tensorflow as tf

NUM_OUT_FILES = 1000
SHARD_NAME = "pretrain_data.tfrecord-{}-of-{}"
# The builder emits [CLS]/[SEP] itself and WordPiece emits [UNK].
REQUIRED_TOKENS = ("[UNK]", "[CLS]", "[SEP]")
# random.randint(5, max_seq_length) draws the occasional short target
# (docs/data.md#packing-lines-into-examples).
MIN_SEQ_LENGTH = 5

# The `random` module or a `random.Random`: both offer random(), randint(), shuffle().
Rng = Any


class CorpusError(cli.DataError):
  """An input text file that cannot be read as UTF-8 text."""


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


class ExampleBuilder:
  """Packs the token ids of consecutive lines into pre-training examples.

  See docs/data.md#packing-lines-into-examples. Random numbers come from `rng` in exactly the
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
    """Splits the pending sentences into two segments (docs/data.md#packing-lines-into-examples)."""
    rng = self._rng
    if rng.random() < 0.1:  # Sometimes a single segment, as in classification tasks.
      first_target = 100000
    else:
      first_target = (self._target_length - 3) // 2  # -3: [CLS] and two [SEP].
    first_segment: List[int] = []
    second_segment: List[int] = []
    for sentence in self._current_sentences:
      # Short-circuit order matters: the coin is drawn only when reached. A
      # later short sentence can still join the first segment
      # (docs/data.md#packing-lines-into-examples).
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
    """`[CLS] first [SEP] (second [SEP])`, 0-padded to max_length (docs/data.md#example-layout)."""
    input_ids = [self._cls_id] + first_segment + [self._sep_id]
    segment_ids = [0] * len(input_ids)
    if second_segment:
      input_ids += second_segment + [self._sep_id]
      segment_ids += [1] * (len(second_segment) + 1)
    input_mask = [1] * len(input_ids)
    padding = [0] * (self._max_length - len(input_ids))
    return ExampleFeatures(input_ids + padding, input_mask + padding, segment_ids + padding)


def listdir(path: str) -> List[str]:
  """Entry names of a directory (local, or any TF filesystem URL)."""
  if paths.is_remote(path):
    return lazy_tensorflow().io.gfile.listdir(path)
  return os.listdir(path)


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
  is decoded as strict UTF-8 (see docs/data.md#corpus-format).

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
  opener = lazy_tensorflow().io.gfile.GFile if paths.is_remote(path) else open
  kind = None if paths.is_remote(path) else special_file_kind(path)
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
  the number it owns (see docs/cli.md#build_pretraining_datasetpy,
  docs/data.md#shards-and-tfrecord-features).

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
