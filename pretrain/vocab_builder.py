"""Learning a BERT-format WordPiece vocabulary from a corpus (build_vocab.py's machinery).

Words are split by this project's `BasicTokenizer`, exactly as `FullTokenizer`
splits text before WordPiece; the pieces are learned by Hugging Face
`tokenizers`' `WordPieceTrainer` (optional: `pip install -e ".[vocab]"`);
`make_vocab` lays them out as BERT's vocab.txt ([PAD], reserved [unusedI] rows,
[UNK] [CLS] [SEP] [MASK], every corpus character, then the learned pieces).
"""
from __future__ import annotations

import collections
import os
from typing import Counter, Iterable, List, Optional, Sequence

from model import tokenization
from pretrain import dataset_builder, example_builder
from util import cli, files

SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_TOKEN = "[PAD]"
CONTINUATION_PREFIX = "##"
# BERT puts [unused0..98] between [PAD] (id 0) and [UNK] (id 100).
UNUSED_BEFORE_SPECIALS = 99
DEFAULT_NUM_RESERVED = UNUSED_BEFORE_SPECIALS
DEFAULT_MIN_FREQUENCY = 2
_CHUNK = 1000
INSTALL_HINT = 'pip install -e ".[vocab]"  (or: pip install tokenizers)'


def head_tokens(num_reserved: int) -> List[str]:
  """[PAD], the reserved [unusedI] rows and the special tokens, in BERT's order.

  Args:
    num_reserved: K, the number of [unusedI] rows.

  Returns:
    The first 1 + K + 4 lines of the vocabulary; [UNK] is at id
    1 + min(K, 99), i.e. 100 for K >= 99.
  """
  unused = [f"[unused{i}]" for i in range(num_reserved)]
  before = unused[:UNUSED_BEFORE_SPECIALS]
  return [PAD_TOKEN] + before + list(SPECIAL_TOKENS) + unused[UNUSED_BEFORE_SPECIALS:]


def count_words(lines: Iterable[str], basic_tokenizer: tokenization.BasicTokenizer
                ) -> Counter[str]:
  """Counts the basic-tokenized words of `lines` (FullTokenizer's pre-tokenization)."""
  counts: Counter[str] = collections.Counter()
  tokenize = basic_tokenizer.tokenize
  for line in lines:
    counts.update(tokenize(line))
  return counts


def read_corpus(corpus_dir: str, output_file: Optional[str] = None) -> Iterable[str]:
  """Yields every line of every file of `corpus_dir`, as the dataset builder reads them.

  `output_file`, the vocabulary being written, is skipped when it lies in
  `corpus_dir` (the recipe keeps vocab.txt beside the corpus files).
  """
  skip = []
  if output_file and os.path.dirname(os.path.realpath(output_file)) == os.path.realpath(
      corpus_dir):
    skip.append(os.path.basename(output_file))
  for name in dataset_builder.check_input_files(corpus_dir, "Corpus directory", skip):
    yield from example_builder.read_lines(os.path.join(corpus_dir, name))


def _always_alone(char: str) -> bool:
  """Punctuation and CJK ideographs are split off as one-character words."""
  # pylint: disable=protected-access
  return tokenization._is_punctuation(char) or tokenization._is_chinese_char(ord(char))


def character_tokens(word_counts: Counter[str], continuations: str = "letters") -> List[str]:
  """Every corpus character, then "##" + each one that can continue a word (sorted).

  Args:
    word_counts: the basic-tokenized words.
    continuations: "letters" (no "##" form for punctuation and CJK ideographs,
      which never continue a word) or "all".
  """
  chars = sorted(set().union(*word_counts)) if word_counts else []
  return chars + [CONTINUATION_PREFIX + c for c in chars
                  if continuations == "all" or not _always_alone(c)]


def import_tokenizers():
  try:
    import tokenizers  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise cli.UsageError("build_vocab.py needs the Hugging Face `tokenizers` package for "
                         f"WordPiece training; install it: {INSTALL_HINT}") from e
  return tokenizers


def train_wordpiece(word_counts: Counter[str], vocab_size: int, min_frequency: int
                    ) -> List[str]:
  """Learns WordPiece pieces of the words with `tokenizers`' WordPieceTrainer.

  The words are handed over unchanged: the trainer's only pre-tokenization
  is a split on " ", which no basic-tokenized word contains, and it has no
  normalizer.

  Args:
    word_counts: {word: count}, the basic-tokenized corpus.
    vocab_size: the trainer's target size (alphabet included).
    min_frequency: pieces seen fewer times are not learned.

  Returns:
    The learned vocabulary (characters and pieces), in the trainer's id
    order: alphabet first, then pieces in the order they were learned.
  """
  tokenizers = import_tokenizers()
  tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
  tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split(" ", behavior="removed")
  # Every character and "##" continuation, given in sorted order, gets its id
  # before training: the trainer otherwise numbers the "##" forms in hash-map
  # order and breaks ties between equally frequent merges by id, so that two
  # runs on the same corpus differ (huggingface/tokenizers#1794).
  trainer = tokenizers.trainers.WordPieceTrainer(
      vocab_size=vocab_size, min_frequency=min_frequency,
      special_tokens=character_tokens(word_counts, continuations="all"),
      continuing_subword_prefix=CONTINUATION_PREFIX, show_progress=False)
  # Each word repeated `count` times, in " "-joined chunks of at most 1000:
  # the trainer counts words, so this equals feeding the corpus itself.
  def chunks():
    for word, count in word_counts.items():
      full, rest = divmod(count, _CHUNK)
      block = " ".join([word] * _CHUNK) if full else ""
      yield from (block for _ in range(full))
      if rest:
        yield " ".join([word] * rest)
  tokenizer.train_from_iterator(chunks(), trainer=trainer)
  vocab = tokenizer.get_vocab()
  return sorted(vocab, key=vocab.__getitem__)


def make_vocab(word_counts: Counter[str], vocab_size: int, num_reserved: int = DEFAULT_NUM_RESERVED,
               min_frequency: int = DEFAULT_MIN_FREQUENCY) -> List[str]:
  """The full vocabulary: specials, reserved rows, all characters, learned pieces.

  Args:
    word_counts: {word: count} of the basic-tokenized corpus.
    vocab_size: N, the maximum number of lines.
    num_reserved: K, the number of [unusedI] rows.
    min_frequency: see `train_wordpiece`.

  Returns:
    At most N distinct tokens; fewer when the corpus offers no more pieces
    of at least `min_frequency` occurrences.

  Raises:
    cli.UsageError: a bad K or `min_frequency` (`check_flags`), or N cannot
      hold the special rows and every character.
    cli.DataError: no words.
  """
  check_flags(vocab_size, num_reserved, min_frequency)
  if not word_counts:
    raise cli.DataError("The corpus holds no words; nothing to build a vocabulary from.")
  head = head_tokens(num_reserved)
  chars = character_tokens(word_counts)
  needed = len(head) + len(chars)
  if vocab_size < needed:
    raise cli.UsageError(
        f"--vocab-size {vocab_size} is too small: {len(head)} special/reserved rows and "
        f"{len(chars)} character rows (every corpus character, as a word start and as a "
        f"## continuation) need {needed}; raise --vocab-size or lower --num-reserved.")
  vocab = head + chars
  # Seen, or a "##" form of punctuation / CJK (never used; the trainer gets them
  # only for determinism, see `train_wordpiece`).
  all_forms = character_tokens(word_counts, continuations="all")
  seen = set(vocab) | set(all_forms)
  budget = vocab_size - len(head) + len(all_forms) - len(chars)  # The trainer counts them.
  for piece in train_wordpiece(word_counts, budget, min_frequency):
    if len(vocab) >= vocab_size:
      break
    if piece not in seen:
      seen.add(piece)
      vocab.append(piece)
  return vocab


def check_flags(vocab_size: int, num_reserved: int, min_frequency: int) -> None:
  """Checks the numeric flags before the corpus is read (a corpus may take minutes).

  Raises:
    cli.UsageError: a negative --num-reserved or --min-frequency, or a
      --vocab-size that cannot even hold the special and reserved rows.
  """
  if num_reserved < 0:
    raise cli.UsageError(f"--num-reserved must be >= 0, got {num_reserved}.")
  if min_frequency < 0:
    raise cli.UsageError(f"--min-frequency must be >= 0, got {min_frequency}.")
  head = len(head_tokens(num_reserved))
  if vocab_size <= head:
    raise cli.UsageError(f"--vocab-size {vocab_size} is too small: the {head} special/reserved "
                         "rows alone fill it; raise --vocab-size or lower --num-reserved.")


def check_output_file(path: str, overwrite: bool = False) -> None:
  """Refuses a directory, or an existing file unless `overwrite` (never lose a user's file)."""
  if os.path.isdir(path):
    raise cli.UsageError(f"--output-file {path} is a directory.")
  if os.path.exists(path) and not overwrite:
    raise cli.UsageError(f"--output-file {path} exists; pass --overwrite to replace it or "
                         "choose another name.")


def write_vocab(path: str, vocab: Sequence[str], overwrite: bool = False) -> None:
  """Writes one token per line (atomically); refuses to replace a file unless asked."""
  check_output_file(path, overwrite)
  with files.atomic_write(path) as f:
    f.write("".join(token + "\n" for token in vocab))
