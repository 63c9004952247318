"""BERT WordPiece tokenization: `FullTokenizer` = `BasicTokenizer` + `WordpieceTokenizer`.

Behaviour is exactly the original's (see docs/data.md#tokenization); only the speed differs:
per-character decisions are memoized in `str.translate` tables, plain
alphanumeric words skip the punctuation scan, the longest-match search never
tries a substring longer than the longest vocabulary entry, and
`FullTokenizer` splits most lines on whitespace directly and looks each word
up in a cache of its pieces (see `FullTokenizer`, which proves the split
exact). None of these changes an output: the tests compare with a literal
transcription of the original's algorithm, on random text and on whole real corpora, and
`FullTokenizer(..., fast=False)` keeps the step-by-step path of the original.

Example:
  >>> tokenizer = FullTokenizer("data/vocab/uncased_vocab.txt")
  >>> tokenizer.tokenize("Unaffable Héllo!")
  ['una', '##ffa', '##ble', 'hello', '!']
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import re
import unicodedata
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger("electra")

# Code-point ranges of the "CJK Unified Ideographs" blocks and their
# extensions and compatibility blocks (see docs/data.md#basic-tokenizer). Hangul,
# Hiragana and Katakana are deliberately absent: they are written with spaces.
CJK_RANGES: Tuple[Tuple[int, int], ...] = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# ASCII code points treated as punctuation although some are not in a Unicode
# P* category (e.g. "$", "^", "`", "+", "<"): every printable non-alphanumeric
# ASCII character (see docs/data.md#basic-tokenizer).
_ASCII_PUNCTUATION_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))

# Words a tokenizer cache remembers before it is emptied (bounds memory on
# huge corpora; natural text re-uses a small set of words).
_CACHE_SIZE = 1 << 18

# The only characters that Python's `str.split()` treats as whitespace but the
# clean step (docs/data.md#basic-tokenizer) deletes: the control characters VT, FF,
# U+001C-U+001F and NEL (category Cc; TAB, LF and CR count as whitespace).
# Every other `str.isspace()` character cleans to one space or (U+2028,
# U+2029) stays itself, still a separator. Checked over all code points in
# the tests; `FullTokenizer` relies on it.
DROPPED_SEPARATORS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
_DROPPED_SEPARATOR_RE = re.compile(f"[{DROPPED_SEPARATORS}]")


def convert_to_unicode(text) -> str:
  """Returns `text` as `str`: str unchanged, bytes decoded UTF-8 ignoring errors.

  Args:
    text: str or bytes.

  Returns:
    The text as a Python string.

  Raises:
    ValueError: `text` is neither str nor bytes.
  """
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError(f"Unsupported string type: {type(text)}")


def _read_vocab_bytes(vocab_file: str) -> bytes:
  """Reads the whole vocab file; local paths via `open`, URLs via the TF file API."""
  if "://" in vocab_file:
    import tensorflow as tf  # Only needed for gs:// and other TF filesystems.
    if not tf.io.gfile.exists(vocab_file):
      raise FileNotFoundError(f"Vocab file {vocab_file} does not exist; pass --vocab-file "
                              "with a WordPiece vocabulary (one token per line).")
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
      return f.read()
  if not os.path.exists(vocab_file):
    raise FileNotFoundError(f"Vocab file {vocab_file} does not exist; pass the path of a "
                            "WordPiece vocabulary (one token per line), e.g. "
                            "data/vocab/uncased_vocab.txt.")
  if os.path.isdir(vocab_file):
    raise ValueError(f"Vocab file {vocab_file} is a directory; pass the vocab.txt file "
                     "inside it.")
  with open(vocab_file, "rb") as f:
    return f.read()


def load_vocab(vocab_file: str) -> "collections.OrderedDict[str, int]":
  """Loads a WordPiece vocabulary: token -> 0-based line index (see docs/data.md#vocabulary-file).

  Like the original's TF text-mode reader: every "\\r" byte is dropped, lines
  are split on "\\n" only and decoded as strict UTF-8, each line is stripped.
  A duplicated token keeps its later index; an empty line is the token "".

  Args:
    vocab_file: path of the vocabulary file (local or any TF filesystem URL).

  Returns:
    OrderedDict mapping token to id, in file order.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: the file is empty or a line is not valid UTF-8 (the message
      names the file, the line and the byte offset).
  """
  data = _read_vocab_bytes(vocab_file).replace(b"\r", b"")
  lines = data.split(b"\n")
  if lines[-1] == b"":  # A final "\n" ends the last line; it does not start a new one.
    lines.pop()
  if not lines:
    raise ValueError(f"Vocab file {vocab_file} is empty; it must hold one WordPiece token "
                     "per line.")
  vocab: "collections.OrderedDict[str, int]" = collections.OrderedDict()
  for index, line in enumerate(lines):
    try:
      token = line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(
          f"Vocab file {vocab_file}, line {index + 1}: invalid UTF-8 byte "
          f"0x{line[e.start]:02x} at byte {e.start} of the line ({e.reason}); the vocab "
          "must be UTF-8 text with one token per line.") from None
    vocab[token.strip()] = index
  return vocab


def count_vocab_lines(vocab_file: str) -> int:
  """The number of lines of `vocab_file`, i.e. one more than its largest token id.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: it is a directory.
  """
  data = _read_vocab_bytes(vocab_file).replace(b"\r", b"")
  return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def resolve_vocab_size(vocab_file: str, vocab_size: Optional[int] = None,
                       what: str = "vocab_size") -> int:
  """The embedding-table size for `vocab_file`: its line count unless given.

  A given `vocab_size` may exceed the line count (padding rows, e.g. for
  TPU-friendly sizes; logged) but not be smaller: ids of the last lines
  would index past the table.

  Args:
    vocab_file: the WordPiece vocabulary (local or any TF filesystem URL).
    vocab_size: the configured size, or None to infer it.
    what: how the size is named in messages (e.g. "hparam vocab_size").

  Returns:
    `vocab_size`, or the number of lines of `vocab_file` when None.

  Raises:
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: `vocab_size` is smaller than the number of lines.
  """
  lines = count_vocab_lines(vocab_file)
  if vocab_size is None:
    return lines
  if vocab_size < lines:
    raise ValueError(
        f"{what} is {vocab_size} but {vocab_file} has {lines} lines: ids {vocab_size}.."
        f"{lines - 1} would index past the embedding table. Leave vocab_size out (it is "
        f"then the vocab file's line count, {lines}) or set it to at least {lines}.")
  if vocab_size > lines:
    logger.info("%s %d exceeds the %d lines of %s: rows %d..%d are padding, never used as "
                "ids.", what, vocab_size, lines, vocab_file, lines, vocab_size - 1)
  return vocab_size


def validate_special_tokens(vocab: Mapping[str, int], tokens: Sequence[str],
                            vocab_file: str) -> None:
  """Raises a ValueError naming `vocab_file` if any of `tokens` is missing.

  Args:
    vocab: token -> id mapping from `load_vocab`.
    tokens: tokens that must be present, e.g. ("[CLS]", "[SEP]").
    vocab_file: where `vocab` came from (named in the message).

  Raises:
    ValueError: listing the missing tokens.
  """
  missing = [token for token in tokens if token not in vocab]
  if missing:
    raise ValueError(
        f"Vocab file {vocab_file} has no line for {', '.join(missing)} (needed: "
        f"{', '.join(tokens)}); use a BERT WordPiece vocabulary, whose special tokens "
        "are lines of their own (uncased: [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103).")


def convert_by_vocab(vocab: Mapping, items: Iterable) -> List:
  """Maps every item through `vocab` (plain dict lookup; a missing key raises KeyError)."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab: Mapping[str, int], tokens: Iterable[str]) -> List[int]:
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab: Mapping[int, str], ids: Iterable[int]) -> List[str]:
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text: str) -> List[str]:
  """Strips `text` and splits it with Python's `str.split()` (empty -> [])."""
  text = text.strip()
  if not text:
    return []
  return text.split()


def _is_whitespace(char: str) -> bool:
  """Space, tab, newline, carriage return or a Unicode space separator (Zs)."""
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
  """Unicode category C* (Cc, Cf, Cn, Co, Cs), except tab/newline/CR (whitespace)."""
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
  """Printable non-alphanumeric ASCII or any Unicode P* character."""
  cp = ord(char)
  for low, high in _ASCII_PUNCTUATION_RANGES:
    if low <= cp <= high:
      return True
  return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
  """Whether code point `cp` lies in one of `CJK_RANGES`."""
  for low, high in CJK_RANGES:
    if low <= cp <= high:
      return True
  return False


def _clean_char(char: str) -> str:
  """The clean step for one char: "" (dropped), " " (whitespace) or the char."""
  cp = ord(char)
  if cp == 0 or cp == 0xFFFD or _is_control(char):
    return ""
  if _is_whitespace(char):
    return " "
  return char


def _pad_chinese_char(char: str) -> str:
  """The CJK step for one char: " c " for a CJK ideograph, else the char."""
  return f" {char} " if _is_chinese_char(ord(char)) else char


def _clean_and_pad_char(char: str) -> str:
  """Both steps at once (a CJK ideograph is never control or whitespace)."""
  cleaned = _clean_char(char)
  return _pad_chinese_char(char) if cleaned == char else cleaned


# Non-ASCII characters that behave like ASCII punctuation in every step of
# the basic tokenizer: kept by the clean step, not CJK, punctuation, unchanged
# by lower-casing and NFD, not combining (e.g. curly quotes, dashes, "«", "¿").
# Candidates: the Latin-1 and General Punctuation blocks (English text rarely
# holds others; any other character takes the general path).
def _is_plain_punctuation(char: str) -> bool:
  return (_clean_and_pad_char(char) == char and _is_punctuation(char) and
          char.lower() == char and unicodedata.normalize("NFD", char) == char and
          unicodedata.combining(char) == 0)


PLAIN_PUNCTUATION = "".join(
    chr(cp) for cp in itertools.chain(range(0xA0, 0xC0), range(0x2000, 0x2070))
    if _is_plain_punctuation(chr(cp)))

# A "plain" word: printable non-space ASCII and `PLAIN_PUNCTUATION` only. The
# basic tokenizer leaves such a word as it is (but for lower-casing ASCII
# letters) and splits it into runs of ASCII letters and digits and single
# punctuation chars (every other char of it is punctuation, docs/data.md#basic-tokenizer).
_PLAIN_WORD_RE = re.compile(f"[!-~{re.escape(PLAIN_PUNCTUATION)}]+")
_PLAIN_PUNCTUATION_SPLIT_RE = re.compile(r"[0-9A-Za-z]+|[^0-9A-Za-z]")


class _TranslationTable(dict):
  """A `str.translate` table that computes and memoizes each code point's entry."""

  def __init__(self, char_fn: Callable[[str], str]):
    super().__init__()
    self._char_fn = char_fn

  def __missing__(self, cp: int) -> str:
    value = self._char_fn(chr(cp))
    self[cp] = value
    return value


class _CharPredicate(dict):
  """A memoized per-character predicate (char -> bool)."""

  def __init__(self, predicate: Callable[[str], bool]):
    super().__init__()
    self._predicate = predicate

  def __missing__(self, char: str) -> bool:
    value = self._predicate(char)
    self[char] = value
    return value


class BasicTokenizer:
  """Cleaning, CJK splitting, lower-casing, accent stripping, punctuation splitting.

  See docs/data.md#basic-tokenizer. The steps are public methods (`clean_text`,
  `tokenize_chinese_chars`, `run_strip_accents`, `run_split_on_punc`) because
  the tagging task's per-word routine reuses them (docs/data.md#tagging-word-pieces). Accents are
  stripped only when lower-casing (the original ties `strip_accents` to
  `do_lower_case`). Special tokens such as "[CLS]" in raw text are not
  protected: they become "[", "cls", "]".

  Args:
    do_lower_case: bool. Lower-case every token (Python `str.lower`).
    strip_accents: bool. When lower-casing, NFD-normalize and drop
      non-spacing marks (category Mn).
  """

  def __init__(self, do_lower_case: bool = True, strip_accents: bool = True):
    self.do_lower_case = do_lower_case
    self.strip_accents = strip_accents
    self._clean_table = _TranslationTable(_clean_char)
    self._cjk_table = _TranslationTable(_pad_chinese_char)
    self._clean_and_cjk_table = _TranslationTable(_clean_and_pad_char)
    self._is_punct = _CharPredicate(_is_punctuation)

  def tokenize(self, text) -> List[str]:
    """Splits `text` (str or UTF-8 bytes) into basic tokens.

    Args:
      text: the raw text.

    Returns:
      The list of tokens (no empty strings).
    """
    split_tokens: List[str] = []
    for token in self.whitespace_tokens(text):
      split_tokens.extend(self.normalize_and_split(token))
    return whitespace_tokenize(" ".join(split_tokens))

  def whitespace_tokens(self, text) -> List[str]:
    """Steps 1-4: convert, clean, pad CJK ideographs, split on whitespace."""
    # One `translate` pass equal to tokenize_chinese_chars(clean_text(text)).
    return whitespace_tokenize(convert_to_unicode(text).translate(self._clean_and_cjk_table))

  def normalize_and_split(self, token: str) -> List[str]:
    """Step 5 for one whitespace token: lower-case/strip accents, split on punctuation."""
    if self.do_lower_case:
      token = token.lower()
      if self.strip_accents:
        token = self.run_strip_accents(token)
    return self.run_split_on_punc(token)

  def clean_text(self, text: str) -> str:
    """Drops NUL, U+FFFD and control chars; maps each whitespace char to one space."""
    return text.translate(self._clean_table)

  def tokenize_chinese_chars(self, text: str) -> str:
    """Surrounds every CJK ideograph (see `CJK_RANGES`) with spaces."""
    return text.translate(self._cjk_table)

  def run_strip_accents(self, text: str) -> str:
    """NFD-normalizes `text` and removes non-spacing marks (category Mn)."""
    if text.isascii():  # NFD leaves ASCII unchanged and ASCII has no Mn.
      return text
    text = unicodedata.normalize("NFD", text)
    return "".join(char for char in text if unicodedata.category(char) != "Mn")

  def run_split_on_punc(self, text: str) -> List[str]:
    """Makes every punctuation char its own piece; other runs stay together."""
    if text.isalnum():  # Letters and digits are never punctuation (tested).
      return [text] if text else []
    is_punct = self._is_punct
    pieces: List[str] = []
    start = 0
    for i, char in enumerate(text):
      if is_punct[char]:
        if start < i:
          pieces.append(text[start:i])
        pieces.append(char)
        start = i + 1
    if start < len(text):
      pieces.append(text[start:])
    return pieces


class WordpieceTokenizer:
  """Greedy longest-match-first WordPiece (see docs/data.md#wordpiece).

  A word longer than `max_input_chars_per_word` characters, or one with a
  position where no vocabulary piece matches, becomes a single `unk_token`
  (pieces already found are discarded). The vocabulary must not be changed
  after construction (results are cached per word).

  Args:
    vocab: token -> id mapping (continuation pieces start with "##").
    unk_token: str. The token emitted for an unknown word.
    max_input_chars_per_word: int. Longer words become `unk_token`.
  """

  def __init__(self, vocab: Mapping[str, int], unk_token: str = "[UNK]",
               max_input_chars_per_word: int = 200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    # No substring longer than the longest entry can match, so the search
    # starts there instead of at the end of the word. Continuation pieces
    # are looked up without their "##" (no string concatenation per try).
    self._max_token_chars = max((len(token) for token in vocab), default=0)
    self._continuations = frozenset(token[2:] for token in vocab if token.startswith("##"))
    self._max_continuation_chars = max(map(len, self._continuations), default=0)
    self._cache: Dict[str, Tuple[str, ...]] = {}

  def tokenize(self, text) -> List[str]:
    """WordPiece-tokenizes each whitespace-separated token of `text`.

    Args:
      text: str or UTF-8 bytes, normally already passed through `BasicTokenizer`.

    Returns:
      The list of word pieces.
    """
    output: List[str] = []
    for token in whitespace_tokenize(convert_to_unicode(text)):
      output.extend(self.tokenize_word(token))
    return output

  def tokenize_word(self, word: str) -> Tuple[str, ...]:
    """The pieces of one whitespace-free word (cached)."""
    pieces = self._cache.get(word)
    if pieces is None:
      pieces = self._greedy_longest_match(word)
      if len(self._cache) >= _CACHE_SIZE:
        self._cache.clear()
      self._cache[word] = pieces
    return pieces

  def _greedy_longest_match(self, word: str) -> Tuple[str, ...]:
    """Uncached longest-match-first split of `word`."""
    length = len(word)
    if length > self.max_input_chars_per_word:
      return (self.unk_token,)
    vocab, continuations = self.vocab, self._continuations
    end = min(length, self._max_token_chars)
    while end and word[:end] not in vocab:
      end -= 1
    if not end:
      return (self.unk_token,) if length else ()
    pieces = [word[:end]]
    max_continuation_chars = self._max_continuation_chars
    start = end
    while start < length:
      end = min(length, start + max_continuation_chars)
      while end > start and word[start:end] not in continuations:
        end -= 1
      if end == start:
        return (self.unk_token,)
      pieces.append("##" + word[start:end])
      start = end
    return tuple(pieces)


def reference_tokenize(text, vocab: Mapping[str, int], do_lower_case: bool = True,
                       strip_accents: bool = True, unk_token: str = "[UNK]",
                       max_input_chars_per_word: int = 200) -> List[str]:
  """The original's algorithm step by step: one character at a time, nothing memoized.

  See docs/data.md#fulltokenizer. This is the slow reference that
  `FullTokenizer(..., fast=False)` runs (at about the original's speed) and
  that the tests hold the fast paths to.

  Args:
    text: str or UTF-8 bytes.
    vocab: token -> id mapping.
    do_lower_case: bool. Lower-case each token.
    strip_accents: bool. When lower-casing, NFD-normalize and drop Mn chars.
    unk_token: str. The token for a word WordPiece cannot split.
    max_input_chars_per_word: int. Longer words become `unk_token`.

  Returns:
    The word pieces of `text`.
  """
  output: List[str] = []
  for token in _reference_basic_tokens(text, do_lower_case, strip_accents):
    output.extend(_reference_wordpiece(token, vocab, unk_token, max_input_chars_per_word))
  return output


def _reference_basic_tokens(text, do_lower_case: bool, strip_accents: bool) -> List[str]:
  """docs/data.md#basic-tokenizer, character by character."""
  cleaned = []
  for char in convert_to_unicode(text):  # Step 2: clean.
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or _is_control(char):
      continue
    cleaned.append(" " if _is_whitespace(char) else char)
  padded = []
  for char in cleaned:  # Step 3: surround CJK ideographs with spaces.
    padded.extend((" ", char, " ") if _is_chinese_char(ord(char)) else (char,))
  split_tokens: List[str] = []
  for token in whitespace_tokenize("".join(padded)):  # Step 4.
    if do_lower_case:  # Step 5.
      token = token.lower()
      if strip_accents:
        token = "".join(char for char in unicodedata.normalize("NFD", token)
                        if unicodedata.category(char) != "Mn")
    run: List[str] = []
    for char in token:
      if _is_punctuation(char):
        if run:
          split_tokens.append("".join(run))
          run = []
        split_tokens.append(char)
      else:
        run.append(char)
    if run:
      split_tokens.append("".join(run))
  return whitespace_tokenize(" ".join(split_tokens))  # Step 6.


def _reference_wordpiece(token: str, vocab: Mapping[str, int], unk_token: str,
                         max_input_chars_per_word: int) -> List[str]:
  """docs/data.md#wordpiece for one token: every end position tried, longest first."""
  if len(token) > max_input_chars_per_word:
    return [unk_token]
  pieces = []
  start = 0
  while start < len(token):
    end = len(token)
    while end > start:
      piece = token[start:end] if start == 0 else "##" + token[start:end]
      if piece in vocab:
        break
      end -= 1
    else:
      return [unk_token]
    pieces.append(piece)
    start = end
  return pieces


class _Memo(dict):
  """`memo[key]` is `fn(key)`, computed on the first miss; emptied when full."""

  def __init__(self, fn: Callable):
    super().__init__()
    self._fn = fn

  def __missing__(self, key):
    if len(self) >= _CACHE_SIZE:
      self.clear()
    value = self[key] = self._fn(key)
    return value


class FullTokenizer:
  """End-to-end BERT tokenizer: basic tokenization then WordPiece (see docs/data.md#fulltokenizer).

  Fast path (the default; same output, tested on whole corpora): a text is
  split with Python's `str.split()` and each word's pieces are looked up in
  a cache, with no per-character work for a word seen before. Why this is
  exact: let T be the character map of basic steps 2-3 (clean, pad CJK
  ideographs), so steps 2-4 yield `T(text).split()`. Write `text` as
  whitespace runs s0 w1 s1 ... wn sn with `[w1, ..., wn] = text.split()`.
  Unless `text` holds one of `DROPPED_SEPARATORS`, every inner T(si) is
  non-empty whitespace (each `str.isspace()` char other than those cleans to
  " " or stays itself), so `T(text).split()` is the concatenation of the
  `T(wi).split()`. Step 5 and WordPiece then act on each token alone (and
  the final re-split of step 6 changes nothing, as lower-casing and NFD
  never create whitespace), so the pieces of `text` are the concatenation of
  the pieces of its words. A text that does hold a dropped separator is
  split by the full steps 2-4 instead; its tokens t are fixed points
  (`T(t).split() == [t]`), so the same word cache serves both.

  Args:
    vocab_file: path of the WordPiece vocabulary (one token per line).
    do_lower_case: bool. Lower-case the text.
    strip_accents: bool. Strip accents (only effective when lower-casing).
    fast: bool. False runs `reference_tokenize`, the original's algorithm
      step by step (at about its speed): the baseline the fast path is
      measured and tested against.

  Raises:
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: the vocabulary is empty, not UTF-8, or has no "[UNK]" line.
  """

  def __init__(self, vocab_file: str, do_lower_case: bool = True,
               strip_accents: bool = True, fast: bool = True):
    self.vocab_file = vocab_file
    self.vocab = load_vocab(vocab_file)
    validate_special_tokens(self.vocab, ("[UNK]",), vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case,
                                          strip_accents=strip_accents)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    self.fast = fast
    # Whitespace-free word of the text -> ids of its pieces, and basic token
    # (after step 5) -> ids of its pieces. Ids suffice for `tokenize` too:
    # `inv_vocab[vocab[piece]] == piece` for every piece (line indices are unique).
    self._word_ids = _Memo(self._ids_of_word)
    self._token_ids = _Memo(self._ids_of_token)
    # A vocabulary entry is its own longest match (see `_ids_of_token`).
    max_chars = self.wordpiece_tokenizer.max_input_chars_per_word
    self._token_ids.update((token, (index,)) for token, index in self.vocab.items()
                           if len(token) <= max_chars)

  def tokenize(self, text) -> List[str]:
    """Returns the word pieces of `text` (str or UTF-8 bytes)."""
    if not self.fast:
      return self._reference_tokenize(text)
    return list(map(self.inv_vocab.__getitem__, self.tokenize_to_ids(text)))

  def tokenize_to_ids(self, text) -> List[int]:
    """`convert_tokens_to_ids(tokenize(text))`, without the intermediate strings.

    Args:
      text: str or UTF-8 bytes.

    Returns:
      The vocabulary ids of the word pieces of `text`.
    """
    if not self.fast:
      return self.convert_tokens_to_ids(self._reference_tokenize(text))
    if not isinstance(text, str):
      text = convert_to_unicode(text)
    if text.isprintable() or _DROPPED_SEPARATOR_RE.search(text) is None:
      words = text.split()
    else:  # Basic steps 2-4 on the whole text (see the class docstring).
      words = self.basic_tokenizer.whitespace_tokens(text)
    return list(itertools.chain.from_iterable(map(self._word_ids.__getitem__, words)))

  def _ids_of_word(self, word: str) -> Tuple[int, ...]:
    """Ids of the pieces of one whitespace-free word of the text: basic steps 2-5, WordPiece."""
    token_ids = self._token_ids
    if word.isprintable() if word.isascii() else _PLAIN_WORD_RE.fullmatch(word):
      # A plain word (see `_PLAIN_WORD_RE`): nothing to clean, no CJK, accent
      # stripping is the identity, every non-alphanumeric char is punctuation.
      if self.basic_tokenizer.do_lower_case:
        word = word.lower()
      if word.isalnum():
        return token_ids[word]
      head = word[:-1]
      if head.isalnum():  # The most common case: a word and a comma, stop, ...
        return token_ids[head] + token_ids[word[-1]]
      tokens = _PLAIN_PUNCTUATION_SPLIT_RE.findall(word)
    else:
      basic = self.basic_tokenizer
      tokens = [piece for token in basic.whitespace_tokens(word)
                for piece in basic.normalize_and_split(token)]
    return tuple(itertools.chain.from_iterable(map(token_ids.__getitem__, tokens)))

  def _ids_of_token(self, token: str) -> Tuple[int, ...]:
    """Ids of the WordPiece pieces of one basic token."""
    wordpiece = self.wordpiece_tokenizer
    if len(token) <= wordpiece.max_input_chars_per_word:
      index = self.vocab.get(token)
      if index is not None:  # The longest match of a vocabulary entry is itself.
        return (index,)
    return tuple(map(self.vocab.__getitem__, wordpiece._greedy_longest_match(token)))

  def _reference_tokenize(self, text) -> List[str]:
    basic, wordpiece = self.basic_tokenizer, self.wordpiece_tokenizer
    return reference_tokenize(text, self.vocab, basic.do_lower_case, basic.strip_accents,
                              wordpiece.unk_token, wordpiece.max_input_chars_per_word)

  def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
    """Token -> id (KeyError for a token not in the vocabulary)."""
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
    """Id -> token (KeyError for an id not in the inverse vocabulary)."""
    return convert_by_vocab(self.inv_vocab, ids)
