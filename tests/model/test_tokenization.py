"""Tests of the BERT tokenizer (see docs/data.md#tokenization) with the real BERT vocabularies.

Expected outputs were checked by hand against the vocab files (each piece is
the longest vocab entry at its position) and, where published, against the
well-known outputs of the released BERT tokenizers ("unaffable" ->
una ##ffa ##ble, "Johanson" -> johan ##son, "hello"/"world" -> 7592/2088).
"""
import glob
import os
import random
import re
import unicodedata

import pytest

from model import tokenization
from tests.conftest import SAMPLE_CORPUS, TEST_DATA

CASED_VOCAB = os.path.join(TEST_DATA, "vocab", "cased_vocab.txt")


@pytest.fixture(scope="module")
def uncased(vocab_file):
  return tokenization.FullTokenizer(vocab_file)


def _write(tmp_path, name, data: bytes) -> str:
  path = tmp_path / name
  path.write_bytes(data)
  return str(path)


# --- vocabulary -------------------------------------------------------------


def test_real_vocab_special_ids_and_inverse(uncased):
  assert len(uncased.vocab) == 30522
  assert [uncased.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [
      0, 100, 101, 102, 103]
  assert uncased.convert_tokens_to_ids(["hello", "world"]) == [7592, 2088]
  assert uncased.convert_ids_to_tokens([101, 7592, 102]) == ["[CLS]", "hello", "[SEP]"]
  assert len(uncased.inv_vocab) == 30522


def test_load_vocab_line_semantics(tmp_path):
  # "\r" bytes vanish (even mid-token), "\n" alone splits, lines are stripped,
  # an empty line is the token "", a duplicate keeps its later index.
  path = _write(tmp_path, "v.txt", b"a\r\nb\n\n  c \nx\ry\na\nd")
  vocab = tokenization.load_vocab(path)
  assert list(vocab.items()) == [("a", 5), ("b", 1), ("", 2), ("c", 3), ("xy", 4), ("d", 6)]
  # A final newline does not add a token.
  assert len(tokenization.load_vocab(_write(tmp_path, "w.txt", b"a\nb\n"))) == 2
  tokenizer = tokenization.FullTokenizer(_write(tmp_path, "u.txt", b"[UNK]\nab\nab\n"))
  assert tokenizer.inv_vocab == {0: "[UNK]", 2: "ab"}  # id 1 has no inverse entry.
  with pytest.raises(KeyError):
    tokenizer.convert_ids_to_tokens([1])
  with pytest.raises(KeyError):
    tokenizer.convert_tokens_to_ids(["zz"])


def test_vocab_errors(tmp_path):
  missing = str(tmp_path / "nope.txt")
  with pytest.raises(FileNotFoundError, match=re.escape(missing)):
    tokenization.load_vocab(missing)
  empty = _write(tmp_path, "empty.txt", b"")
  with pytest.raises(ValueError, match=re.escape(empty) + ".*empty"):
    tokenization.load_vocab(empty)
  latin1 = _write(tmp_path, "latin1.txt", b"[UNK]\nok\ncaf\xe9\n")
  with pytest.raises(ValueError, match=re.escape(latin1) + ", line 3: invalid UTF-8 byte 0xe9"):
    tokenization.load_vocab(latin1)
  no_unk = _write(tmp_path, "no_unk.txt", b"[CLS]\n[SEP]\nhello\n")
  with pytest.raises(ValueError, match=re.escape(no_unk) + r" has no line for \[UNK\]"):
    tokenization.FullTokenizer(no_unk)
  with pytest.raises(ValueError, match="is a directory"):
    tokenization.load_vocab(str(tmp_path))
  with pytest.raises(ValueError, match=r"\[CLS\], \[MASK\]"):
    tokenization.validate_special_tokens({"[SEP]": 0}, ("[CLS]", "[SEP]", "[MASK]"), "v.txt")


def test_convert_to_unicode_and_whitespace_tokenize():
  assert tokenization.convert_to_unicode("héllo") == "héllo"
  assert tokenization.convert_to_unicode("h\xe9llo".encode("utf-8")) == "héllo"
  assert tokenization.convert_to_unicode(b"ab\xffcd") == "abcd"  # Lenient bytes path.
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(3)
  assert tokenization.whitespace_tokenize("  \t ") == []
  assert tokenization.whitespace_tokenize(" a  b\u3000c\u2028d ") == ["a", "b", "c", "d"]


# --- character classes ------------------------------------------------------


def test_char_classes():
  for char in (" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2009"):
    assert tokenization._is_whitespace(char), repr(char)
  for char in ("a", "\u2028", "\x0b", "_"):
    assert not tokenization._is_whitespace(char), repr(char)
  for char in ("\x00", "\x07", "\x1f", "\x7f", "\x85", "\u200b", "\ufeff", "\ue000"):
    assert tokenization._is_control(char), repr(char)
  for char in ("\t", "\n", "\r", " ", "a", "\ufffd"):
    assert not tokenization._is_control(char), repr(char)
  # ASCII symbols count although "$", "^", "`", "+", "<" are not Unicode P*.
  for char in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + "¿«»—§“”・":
    assert tokenization._is_punctuation(char), repr(char)
  for char in ("a", "0", " ", "€", "°", "©", "\u0301"):
    assert not tokenization._is_punctuation(char), repr(char)


def test_cjk_ranges_exclude_hangul_and_kana():
  assert tokenization._is_chinese_char(0x4E2D)  # 中
  assert tokenization._is_chinese_char(0x20000)  # Extension B
  assert tokenization._is_chinese_char(0xF900)  # Compatibility ideograph
  assert tokenization._is_chinese_char(0x2FA1F)
  for cp in (0xAC00, 0x3042, 0x30AB, 0x3007, 0x2FA20, 0x4DC0):  # 가 あ カ 〇, just outside
    assert not tokenization._is_chinese_char(cp), hex(cp)


def test_fast_path_preconditions_hold_for_every_code_point():
  # The tokenizer skips the punctuation scan for `str.isalnum()` words and skips
  # BasicTokenizer's final re-split: both are exact only if no alphanumeric
  # char is punctuation and lower-casing/NFD never create whitespace.
  # FullTokenizer splits texts with `str.split()` before cleaning: exact only
  # if the clean+CJK map T turns every `isspace()` char but DROPPED_SEPARATORS
  # into non-empty whitespace, and every other char into "", itself or " c ".
  dropped = []
  for cp in range(0x110000):
    char = chr(cp)
    if char.isalnum():
      assert unicodedata.category(char)[0] in "LN", hex(cp)
    mapped = tokenization._clean_and_pad_char(char)
    if char.isspace():
      if mapped == "":
        dropped.append(char)
      else:
        assert mapped.isspace(), hex(cp)
      continue
    assert mapped in ("", char, f" {char} "), hex(cp)
    lowered = char.lower()
    for text in (lowered, unicodedata.normalize("NFD", lowered)):
      assert not any(c.isspace() for c in text), hex(cp)
  assert "".join(dropped) == tokenization.DROPPED_SEPARATORS
  assert not any(tokenization._is_punctuation(c) for c in "aZ09٣Ⅷ")


def test_plain_punctuation_behaves_like_ascii_punctuation():
  # Words of printable ASCII and PLAIN_PUNCTUATION take the regex split.
  plain = tokenization.PLAIN_PUNCTUATION
  assert set("‘’“”—–…«»¿¡§·‐") <= set(plain)
  for char in plain:
    assert unicodedata.category(char).startswith("P"), repr(char)
    assert char.lower() == char and unicodedata.normalize("NFD", char) == char
    assert unicodedata.combining(char) == 0 and not char.isspace()
    assert tokenization.BasicTokenizer().tokenize(f"a{char}B") == ["a", char, "b"]
  for char in "°€©\u00ad\u00a0\u200b\u2028\u2060":  # Symbols, SHY, spaces, format chars.
    assert char not in plain, repr(char)
  printable = [chr(cp) for cp in range(33, 127)]
  assert all(c.isalnum() != tokenization._is_punctuation(c) for c in printable)


# --- basic tokenizer --------------------------------------------------------


def test_basic_lower_and_split():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == [
      "hello", "!", "how", "are", "you", "?"]
  assert tokenizer.tokenize("a$b^c+d<e`f") == ["a", "$", "b", "^", "c", "+", "d", "<",
                                               "e", "`", "f"]
  # "€" (Sc) is not punctuation; "¿", "«", "»", "—" are.
  assert tokenizer.tokenize("€5 ¿Qué? «x» a—b") == [
      "€5", "¿", "que", "?", "«", "x", "»", "a", "—", "b"]
  assert tokenizer.tokenize("[CLS] hi [SEP]") == ["[", "cls", "]", "hi", "[", "sep", "]"]
  assert tokenizer.tokenize(b"caf\xc3\xa9") == ["cafe"]


@pytest.mark.parametrize("do_lower_case,strip_accents,expected", [
    (True, True, ["hello", "angstrom", "naive", "istanbul", "σας"]),
    (True, False, ["héllo", "ångström", "naïve", "i\u0307stanbul", "σας"]),
    # Accents are only stripped when lower-casing.
    (False, True, ["Héllo", "Ångström", "naïve", "İstanbul", "ΣΑΣ"]),
], ids=["lower_strip", "lower_keep_accents", "cased"])
def test_basic_accents(do_lower_case, strip_accents, expected):
  tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case,
                                          strip_accents=strip_accents)
  assert tokenizer.tokenize("Héllo Ångström naïve İstanbul ΣΑΣ") == expected


def test_basic_cjk_split_but_not_hangul_or_kana():
  cased = tokenization.BasicTokenizer(do_lower_case=False)
  assert cased.tokenize("ah博推zz") == ["ah", "博", "推", "zz"]
  assert cased.tokenize("x\U00020000y\uf900z") == ["x", "\U00020000", "y", "\uf900", "z"]
  assert cased.tokenize("한국어 ひらがな カタカナ a〇b") == ["한국어", "ひらがな", "カタカナ", "a〇b"]
  # Lower-casing strips the (Mn) voicing mark of が and decomposes Hangul into jamo.
  lowered = tokenization.BasicTokenizer().tokenize("ひらがな 한국어")
  assert lowered == ["ひらかな", unicodedata.normalize("NFD", "한국어")]
  assert len(lowered[1]) == 8


def test_basic_clean_drops_controls_and_maps_whitespace():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize("a\x00b\ufffdc\x07d\u200be\ufeff") == ["abcde"]
  assert tokenizer.tokenize("a\tb\nc\rd\u00a0e\u3000f") == ["a", "b", "c", "d", "e", "f"]
  # U+2028 is not a BERT whitespace char but Python's split() still splits on it.
  assert tokenizer.tokenize("a\u2028b") == ["a", "b"]
  # The exposed steps (the tagging task reuses them).
  assert tokenizer.clean_text("a\x00\tb\u3000c\x07") == "a b c"
  assert tokenizer.tokenize_chinese_chars("a中b") == "a 中 b"
  assert tokenizer.run_strip_accents("ñandú") == "nandu"
  assert tokenizer.run_split_on_punc("don't!!x") == ["don", "'", "t", "!", "!", "x"]
  assert tokenizer.run_split_on_punc("") == []


# --- wordpiece --------------------------------------------------------------


def test_wordpiece_small_vocab():
  vocab = {t: i for i, t in enumerate([
      "[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing",
      ",", "##aff", "##able"])}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize("") == []
  assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
  assert tokenizer.tokenize("unaffable") == ["un", "##aff", "##able"]
  # A position with no matching piece turns the WHOLE word into [UNK].
  assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
  assert tokenizer.tokenize("wantX") == ["[UNK]"]


def test_wordpiece_long_words(uncased):
  word = "a" * 200
  pieces = uncased.tokenize(word)
  assert pieces != ["[UNK]"]
  assert "".join(p[2:] if p.startswith("##") else p for p in pieces) == word
  assert uncased.tokenize("a" * 201) == ["[UNK]"]
  assert uncased.tokenize("ok " + "b" * 201 + " ok") == ["ok", "[UNK]", "ok"]


# --- full tokenizer ---------------------------------------------------------


def test_full_uncased_real_vocab(uncased):
  # The module docstring's example.
  assert uncased.tokenize("Unaffable Héllo!") == ["una", "##ffa", "##ble", "hello", "!"]
  assert uncased.tokenize("unaffable") == ["una", "##ffa", "##ble"]
  assert uncased.tokenize("John Johanson's house") == [
      "john", "johan", "##son", "'", "s", "house"]
  assert uncased.tokenize("[CLS] hello") == ["[", "cl", "##s", "]", "hello"]
  # "☃" is not in the vocab: the whole word is [UNK], not "snow" + [UNK].
  assert uncased.tokenize("snow☃man ok") == ["[UNK]", "ok"]
  assert uncased.tokenize("中国人 a〇b") == ["中", "国", "人", "[UNK]"]
  assert uncased.tokenize("Crème Brûlée!") == ["cr", "##eme", "br", "##ule", "##e", "!"]
  # A cached word returns a fresh list each time.
  first = uncased.tokenize("Crème")
  first.append("x")
  assert uncased.tokenize("Crème") == ["cr", "##eme"]


def test_no_strip_accents_real_vocab(vocab_file):
  # The uncased vocab was built from accent-stripped text: "é" and "##é" are
  # missing, so keeping accents turns such words into [UNK].
  tokenizer = tokenization.FullTokenizer(vocab_file, strip_accents=False)
  assert "##é" not in tokenizer.vocab and "é" not in tokenizer.vocab
  assert tokenizer.tokenize("Café naive") == ["[UNK]", "naive"]


def test_full_cased_vocab():
  tokenizer = tokenization.FullTokenizer(CASED_VOCAB, do_lower_case=False)
  assert len(tokenizer.vocab) == 28996
  tokens = tokenizer.tokenize("John Johanson's house")
  assert tokens == ["John", "Johan", "##son", "'", "s", "house"]
  assert tokenizer.convert_tokens_to_ids(["Hello", "World"]) == [8667, 1291]
  # Not lower-casing keeps accents even with strip_accents=True.
  assert tokenizer.tokenize("Café Ångström") == ["Café", "Å", "##ng", "##st", "##röm"]


def test_moby_dick_round_trip(uncased, moby_dick_lines):
  basic = tokenization.BasicTokenizer()
  n_pieces = n_unk = 0
  for line in moby_dick_lines:
    pieces = uncased.tokenize(line)
    ids = uncased.convert_tokens_to_ids(pieces)
    assert uncased.convert_ids_to_tokens(ids) == pieces
    n_pieces += len(pieces)
    n_unk += pieces.count("[UNK]")
    # Nothing but whitespace is lost: the basic tokens concatenate to the
    # lower-cased, accent-stripped line without whitespace ...
    words = basic.tokenize(line)
    expected = "".join(c for c in unicodedata.normalize("NFD", line.lower())
                       if unicodedata.category(c) != "Mn")
    assert "".join(words) == re.sub(r"\s+", "", expected)
    # ... and each word's pieces spell it (or the word is a single [UNK]).
    for word in words:
      word_pieces = uncased.wordpiece_tokenizer.tokenize(word)
      if word_pieces != ["[UNK]"]:
        assert "".join(p[2:] if p.startswith("##") else p for p in word_pieces) == word
  assert n_pieces > 20000
  assert n_unk < n_pieces / 1000


def _reference_tokenize(text, vocab, lower=True, strip=True):
  """A literal transcription of docs/data.md#basic-tokenizer, character by character."""
  cjk = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
         (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
  cleaned = []
  for c in text:
    cat = unicodedata.category(c)
    if ord(c) in (0, 0xFFFD) or (c not in "\t\n\r" and cat[0] == "C"):
      continue
    if c in " \t\n\r" or cat == "Zs":
      cleaned.append(" ")
    elif any(lo <= ord(c) <= hi for lo, hi in cjk):
      cleaned.append(" " + c + " ")
    else:
      cleaned.append(c)
  pieces = []
  for word in "".join(cleaned).split():
    if lower:
      word = word.lower()
      if strip:
        word = "".join(c for c in unicodedata.normalize("NFD", word)
                       if unicodedata.category(c) != "Mn")
    current = ""
    for c in word:
      if any(lo <= ord(c) <= hi for lo, hi in ((33, 47), (58, 64), (91, 96), (123, 126))) \
          or unicodedata.category(c)[0] == "P":
        pieces += [current, c] if current else [c]
        current = ""
      else:
        current += c
    pieces += [current] if current else []
  output = []
  for word in " ".join(pieces).split():
    if len(word) > 200:
      output.append("[UNK]")
      continue
    start, sub = 0, []
    while start < len(word):
      end = len(word)
      while end > start and ("##" * (start > 0) + word[start:end]) not in vocab:
        end -= 1
      if end == start:
        sub = ["[UNK]"]
        break
      sub.append("##" * (start > 0) + word[start:end])
      start = end
    output += sub
  return output


@pytest.mark.parametrize("vocab_path,lower,strip", [
    ("uncased", True, True), ("uncased", True, False), ("cased", False, True)],
    ids=["uncased", "uncased_no_strip", "cased"])
def test_matches_literal_reference_on_random_text(vocab_file, moby_dick_lines, vocab_path,
                                                   lower, strip):
  path = vocab_file if vocab_path == "uncased" else CASED_VOCAB
  tokenizer = tokenization.FullTokenizer(path, do_lower_case=lower, strip_accents=strip)
  rng = random.Random(1234)
  pool = ([chr(c) for c in range(0, 0x250)] + list("中国人博\U00020000\uf900한국어ひらがなカ〇") +
          list("\ufffd\ufeff\u200b\u2028\u00a0\u3000\u0301\u0308\u0130\u03a3") +
          list("abcdefghijklmnopqrstuvwxyz      ##,.!'") * 6)
  texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(1500)]
  texts += ["x" * 199 + "y", "q" * 201, "Ünïcödé Wörds"] + moby_dick_lines[:60]
  for text in texts:
    assert tokenizer.tokenize(text) == _reference_tokenize(text, tokenizer.vocab, lower, strip), (
        repr(text))


# --- fast path == reference ---------------------------------------------------

CORPUS_FILES = [SAMPLE_CORPUS] + sorted(glob.glob(os.path.join(TEST_DATA, "corpus", "*.txt")))


def _corpus_lines():
  lines = []
  for path in CORPUS_FILES:
    with open(path, encoding="utf-8") as f:
      lines.extend(line.strip() for line in f)
  return lines


def test_fast_path_equals_reference_on_whole_corpora(vocab_file):
  # Every line of the bundled Moby-Dick and of the corpus slices; one
  # tokenizer instance throughout, so later lines hit the caches.
  fast = tokenization.FullTokenizer(vocab_file)
  reference = tokenization.FullTokenizer(vocab_file, fast=False)
  basic = tokenization.BasicTokenizer()
  lines = _corpus_lines()
  assert len(lines) > 2500 and sum(map(len, lines)) > 1_000_000
  n_tokens = 0
  for i, line in enumerate(lines):
    expected = reference.tokenize(line)
    ids = fast.tokenize_to_ids(line)
    assert ids == reference.convert_tokens_to_ids(expected), (i, line)
    n_tokens += len(ids)
    if i % 4 == 0:  # The string API and the classes' own composition.
      assert fast.tokenize(line) == expected, (i, line)
      assert [piece for token in basic.tokenize(line)
              for piece in fast.wordpiece_tokenizer.tokenize(token)] == expected, (i, line)
  assert n_tokens > 290_000
  assert len(fast._word_ids) > 30_000  # The cache is in use.


def _tricky_texts(rng, n):
  """Random texts over the characters where the fast path could go wrong."""
  words = ["the", "The", "THE", "whale,", "“Whale”", "don’t", "a—b", "e.g.", "##ing", "[CLS]",
           "naïve", "Crème", "İstanbul", "ΣΑΣ", "ΌΣΟΣ", "σ", "中国", "ひらがな", "한국어", "x\u0301",
           "\u0301x", "a" * 205, "b" * 200, "unaffable", "$5", "€5", "°C", "1,000.5", "…",
           "¿Qué?", "«x»", "a\u00adb", "q\u200bz", "a\ufeffb", "\ufffd", "x\x00y", "\x7f",
           "ﬁne", "Ǆ", "ß", "ﬀ", "\U00020000x", "\uf900", "#", "##", "'", "-", "_"]
  separators = [" ", "  ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\u202f",
                "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\x0b ", " \x85 ", ""]
  texts = []
  for _ in range(n):
    parts = []
    for _ in range(rng.randint(0, 12)):
      parts.append(rng.choice(words) if rng.random() < 0.8 else
                   "".join(rng.choice(words[:40])[:3] for _ in range(rng.randint(1, 3))))
      parts.append(rng.choice(separators))
    texts.append("".join(parts))
  return texts


@pytest.mark.parametrize("vocab_path,lower,strip", [
    ("uncased", True, True), ("uncased", True, False), ("cased", False, True)],
    ids=["uncased", "uncased_no_strip", "cased"])
def test_fast_path_equals_reference_on_tricky_text(vocab_file, vocab_path, lower, strip):
  path = vocab_file if vocab_path == "uncased" else CASED_VOCAB
  fast = tokenization.FullTokenizer(path, do_lower_case=lower, strip_accents=strip)
  texts = _tricky_texts(random.Random(7), 3000)
  assert sum(any(c in text for c in tokenization.DROPPED_SEPARATORS) for text in texts) > 500
  for text in texts:
    expected = tokenization.reference_tokenize(text, fast.vocab, lower, strip)
    assert fast.tokenize(text) == expected, repr(text)
    assert fast.tokenize_to_ids(text.encode("utf-8")) == fast.convert_tokens_to_ids(expected)
  # The reference itself agrees with the independent transcription above.
  for text in texts[:300]:
    assert tokenization.reference_tokenize(text, fast.vocab, lower, strip) == (
        _reference_tokenize(text, fast.vocab, lower, strip)), repr(text)


def test_fast_path_with_full_caches_and_odd_vocab(tmp_path, monkeypatch):
  # Tiny caches (emptied every few words) and a vocab with a duplicate line,
  # a "##" entry and an entry longer than max_input_chars_per_word.
  long_entry = "a" * 201
  path = _write(tmp_path, "v.txt", "\n".join(
      ["[UNK]", "ab", "a", "##b", "##", "b", "ab", "#", "##a", ",", long_entry]).encode())
  assert tokenization.FullTokenizer(path).tokenize(long_entry) == ["[UNK]"]  # Too long.
  monkeypatch.setattr(tokenization, "_CACHE_SIZE", 5)
  fast = tokenization.FullTokenizer(path)
  reference = tokenization.FullTokenizer(path, fast=False)
  rng = random.Random(3)
  for _ in range(2000):
    text = " ".join("".join(rng.choice("aAb#,c") for _ in range(rng.randint(0, 7)))
                    for _ in range(rng.randint(0, 6)))
    assert fast.tokenize(text) == reference.tokenize(text), repr(text)
  assert fast.tokenize(long_entry + " ab,") == ["[UNK]", "ab", ","]
  assert fast.convert_tokens_to_ids(fast.tokenize("ab")) == [6]  # The later duplicate.
  assert len(fast._word_ids) <= 5


def test_wordpiece_longest_match_equals_reference():
  vocab = {t: i for i, t in enumerate(["[UNK]", "a", "b", "ab", "abc", "##", "##a", "##bc",
                                       "##abc", "#", "##b", "c" * 6])}
  wordpiece = tokenization.WordpieceTokenizer(vocab, max_input_chars_per_word=9)
  rng = random.Random(5)
  words = ["", "#", "##", "##a", "##abc", "c" * 6, "c" * 7, "a" * 9, "a" * 10]
  words += ["".join(rng.choice("abc#") for _ in range(rng.randint(1, 11))) for _ in range(3000)]
  for word in words:
    assert list(wordpiece._greedy_longest_match(word)) == tokenization._reference_wordpiece(
        word, vocab, "[UNK]", 9), repr(word)
  assert wordpiece.tokenize_word("abcbc") == ("abc", "##bc")
  assert wordpiece.tokenize_word("a" * 10) == ("[UNK]",)
