"""build_vocab.py: BERT-format WordPiece vocabularies on real Spanish and Chinese text."""
import os
import subprocess
import sys
import unicodedata

import pytest

import build_vocab
from model import tokenization
from tests.conftest import REPO_ROOT, skipped_special_files
from util import cli

pytest.importorskip("tokenizers")

MULTILINGUAL = os.path.join(REPO_ROOT, "tests", "data", "multilingual")
SPANISH = os.path.join(MULTILINGUAL, "es_chatterbot.txt")
CHINESE = os.path.join(MULTILINGUAL, "zh_chatterbot.txt")


def _split(path, tmp_path, name):
  """Writes the first 80% of the lines of `path` as a corpus dir; returns (dir, held-out)."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  cut = int(len(lines) * 0.8)
  corpus = tmp_path / f"{name}_corpus"
  corpus.mkdir()
  (corpus / "train.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
  return str(corpus), lines[:cut], lines[cut:]


def _build(tmp_path, corpus, size, *flags):
  out = str(tmp_path / f"vocab_{size}_{len(flags)}.txt")
  assert cli.run(build_vocab.main, ["--corpus-dir", corpus, "--output-file", out,
                                    "--vocab-size", str(size), *flags]) == 0
  with open(out, encoding="utf-8") as f:
    return out, f.read().splitlines()


def _words(lines, do_lower_case, strip_accents=True):
  basic = tokenization.BasicTokenizer(do_lower_case, strip_accents)
  return [w for line in lines for w in basic.tokenize(line)]


def test_cased_spanish_vocab_format_coverage_and_round_trip(tmp_path):
  corpus, train, held_out = _split(SPANISH, tmp_path, "es")
  path, vocab = _build(tmp_path, corpus, 1500, "--no-lower-case")
  # Format: exactly N distinct lines, BERT's special ids.
  assert len(vocab) == 1500 and len(set(vocab)) == 1500
  assert vocab[0] == "[PAD]"
  assert vocab[1:100] == [f"[unused{i}]" for i in range(99)]
  assert vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  assert all(token and token == token.strip() for token in vocab)
  # Every training character, as a word start and (letters) as a continuation.
  chars = set("".join(_words(train, do_lower_case=False)))
  assert {"ñ", "á", "é", "¿", "¡", "Q"} <= chars  # Real Spanish, case and accents kept.
  assert chars <= set(vocab)
  assert {"##" + c for c in chars if c.isalnum()} <= set(vocab)
  # The basic words of held-out lines come back from their pieces.
  tokenizer = tokenization.FullTokenizer(path, do_lower_case=False)
  words = _words(held_out, do_lower_case=False)
  assert len(words) > 1000
  n_unk = 0
  for word in words:
    pieces = tokenizer.tokenize(word)
    if pieces == ["[UNK]"]:
      n_unk += 1
      assert not set(word) <= chars, word  # [UNK] only for unseen characters.
    else:
      assert "".join(p[2:] if i else p for i, p in enumerate(pieces)) == word
      assert not any(p.startswith("##") for p in pieces[:1])
  assert n_unk < 0.01 * len(words)
  # Frequent words were learned whole, and never glued to punctuation.
  assert {"Cómo", "que", "de"} <= set(vocab)
  assert "¿Cómo" not in vocab


def test_lower_case_strips_accents_unless_asked(tmp_path):
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  _, lowered = _build(tmp_path, corpus, 800)
  learned = lowered[104:]
  assert not any(c.isupper() for token in learned for c in token)
  assert not any(unicodedata.combining(c) or c in "áéíóúñ" for t in learned for c in t)
  assert "como" in learned and "cómo" not in learned
  _, accented = _build(tmp_path, corpus, 800, "--no-strip-accents")
  assert "cómo" in accented and "ñ" in accented
  assert not any(c.isupper() for token in accented[104:] for c in token)


def test_chinese_characters_are_single_tokens_without_continuations(tmp_path):
  corpus, train, held_out = _split(CHINESE, tmp_path, "zh")
  path, vocab = _build(tmp_path, corpus, 3000)
  cjk = {c for c in "".join(train) if tokenization._is_chinese_char(ord(c))}  # pylint: disable=protected-access
  assert len(cjk) > 500
  assert cjk <= set(vocab)
  assert not any(t.startswith("##") and tokenization._is_chinese_char(ord(t[2]))  # pylint: disable=protected-access
                 for t in vocab if len(t) == 3)
  tokenizer = tokenization.FullTokenizer(path)
  n_cjk = 0
  for word in _words(held_out, True):
    if tokenization._is_chinese_char(ord(word[0])):  # pylint: disable=protected-access
      n_cjk += 1
      assert tokenizer.tokenize(word) == [word if word in cjk else "[UNK]"]
  assert n_cjk > 1000


def test_reserved_rows_move_the_specials(tmp_path):
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  _, vocab = _build(tmp_path, corpus, 400, "--num-reserved", "5")
  assert vocab[:10] == ["[PAD]"] + [f"[unused{i}]" for i in range(5)] + [
      "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  _, many = _build(tmp_path, corpus, 1500, "--num-reserved", "150")
  assert many[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  assert many[104:155] == [f"[unused{i}]" for i in range(99, 150)]


def test_bad_input_is_one_error_line_and_nothing_is_overwritten(tmp_path, capsys):
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  out = tmp_path / "vocab.txt"
  args = ["--corpus-dir", corpus, "--output-file", str(out)]
  assert cli.run(build_vocab.main, args + ["--vocab-size", "150"]) == 2
  assert "--vocab-size 150 is too small" in capsys.readouterr().err
  assert not out.exists()
  out.write_text("mine\n")
  assert cli.run(build_vocab.main, args + ["--vocab-size", "800"]) == 2
  assert "exists; pass --overwrite" in capsys.readouterr().err
  assert out.read_text() == "mine\n"
  assert cli.run(build_vocab.main, args + ["--vocab-size", "800", "--overwrite"]) == 0
  assert len(out.read_text().splitlines()) == 800
  assert cli.run(build_vocab.main, ["--corpus-dir", str(tmp_path / "absent"),
                                    "--output-file", str(tmp_path / "v2.txt"),
                                    "--vocab-size", "800"]) == 1


def test_flag_errors_exit_2_before_the_corpus_is_read_data_errors_exit_1(tmp_path, capsys):
  absent = str(tmp_path / "absent")  # Flags are checked first: the corpus is never looked at.
  for flags, message in ((["--num-reserved", "-1"], "--num-reserved must be >= 0, got -1"),
                         (["--min-frequency", "-2"], "--min-frequency must be >= 0, got -2"),
                         (["--vocab-size", "104"], "--vocab-size 104 is too small")):
    assert cli.run(build_vocab.main, ["--corpus-dir", absent, "--output-file",
                                      str(tmp_path / "v.txt"), "--vocab-size", "800",
                                      *flags]) == 2, message
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
  not_a_dir = tmp_path / "text.txt"
  not_a_dir.write_text("hello\n", encoding="utf-8")
  assert cli.run(build_vocab.main, ["--corpus-dir", str(not_a_dir), "--output-file",
                                    str(tmp_path / "v.txt"), "--vocab-size", "800"]) == 1
  assert f"Corpus directory {not_a_dir} is not a directory" in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path)) == ["text.txt"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /dev/zero")
def test_fifo_and_device_in_corpus_are_skipped_with_a_warning(tmp_path):
  """A FIFO would block for ever and /dev/zero never ends: both are skipped, never opened."""
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  expected = tmp_path / "expected.txt"
  args = ["--vocab-size", "800"]
  assert cli.run(build_vocab.main, ["--corpus-dir", corpus, "--output-file", str(expected),
                                    *args]) == 0
  fifo, zero = os.path.join(corpus, "a_fifo"), os.path.join(corpus, "b_zero")
  os.mkfifo(fifo)
  os.symlink("/dev/zero", zero)
  out = tmp_path / "vocab.txt"
  result = subprocess.run(  # The timeout is a hang guard.
      [sys.executable, os.path.join(REPO_ROOT, "build_vocab.py"), "--corpus-dir", corpus,
       "--output-file", str(out), *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
  assert result.returncode == 0, result.stderr
  assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == (
      skipped_special_files(fifo, zero))
  assert out.read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
  os.remove(os.path.join(corpus, "train.txt"))  # Nothing regular left: the usual error.
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "build_vocab.py"), "--corpus-dir", corpus,
       "--output-file", str(tmp_path / "none.txt"), *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
  assert result.returncode == 1, result.stderr
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
      f"error: Corpus directory {corpus} holds no regular file (2 skipped: FIFOs, sockets or "
      "devices); nothing to build."], result.stderr
  assert "Traceback" not in result.stderr and not (tmp_path / "none.txt").exists()


def test_missing_tokenizers_package_says_how_to_install(tmp_path, monkeypatch, capsys):
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` fails.
  assert cli.run(build_vocab.main, ["--corpus-dir", corpus, "--output-file",
                                    str(tmp_path / "v.txt"), "--vocab-size", "800"]) == 2
  assert 'pip install -e ".[vocab]"' in capsys.readouterr().err


def test_rebuilding_beside_the_corpus_is_deterministic_and_skips_the_old_vocab(tmp_path):
  corpus, _, _ = _split(SPANISH, tmp_path, "es")
  out = os.path.join(corpus, "vocab.txt")
  args = ["--corpus-dir", corpus, "--output-file", out, "--vocab-size", "800"]
  assert cli.run(build_vocab.main, args) == 0
  first = open(out, encoding="utf-8").read()
  for _ in range(3):  # The trainer's tie-breaking must not depend on hash order.
    assert cli.run(build_vocab.main, args + ["--overwrite"]) == 0
    assert open(out, encoding="utf-8").read() == first
