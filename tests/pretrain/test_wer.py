"""Tests for pretrain/wer.py: edit distance and WER on hand-checked cases."""
import itertools
import math
import random

import pytest

from pretrain import wer
from pretrain.wer import ErrorCounts


@pytest.mark.parametrize("reference,hypothesis,expected", [
    ("the cat sat", "the cat sat", ErrorCounts(0, 0, 0, 3)),
    ("the cat sat", "the dog sat", ErrorCounts(1, 0, 0, 3)),         # substitution
    ("the cat sat", "the sat", ErrorCounts(0, 1, 0, 3)),             # deletion
    ("the cat sat", "the cat sat down", ErrorCounts(0, 0, 1, 3)),    # insertion
    ("the cat sat", "", ErrorCounts(0, 3, 0, 3)),                    # empty hypothesis
    ("", "a b", ErrorCounts(0, 0, 2, 0)),                            # empty reference
    ("", "", ErrorCounts(0, 0, 0, 0)),
    # Deleting "call" and inserting "now" (2) beats three substitutions.
    ("call me ishmael", "me ishmael now", ErrorCounts(0, 1, 1, 3)),
    # Two adjacent swaps: delete a, match b, c -> a, match d, insert c.
    ("a b c d", "b a d c", ErrorCounts(1, 1, 1, 4)),
    ("a  b\tc\n", "a b c", ErrorCounts(0, 0, 0, 3)),                 # any whitespace splits
    ("A b", "a b", ErrorCounts(1, 0, 0, 2)),                         # case-sensitive
])
def test_word_errors_hand_cases(reference, hypothesis, expected):
  counts = wer.word_errors(reference, hypothesis)
  assert counts.errors == expected.errors
  assert counts.reference_length == expected.reference_length
  assert wer.edit_distance(reference, hypothesis) == expected.errors


def test_operation_split_of_unambiguous_cases():
  assert wer.word_errors("the cat sat", "the dog sat") == ErrorCounts(1, 0, 0, 3)
  assert wer.word_errors("the cat sat", "the sat") == ErrorCounts(0, 1, 0, 3)
  assert wer.word_errors("the cat sat", "the cat sat down") == ErrorCounts(0, 0, 1, 3)
  assert wer.word_errors("one two three four", "one three four five") == ErrorCounts(0, 1, 1, 4)


def test_rates():
  assert wer.wer("the cat sat", "the dog sat") == pytest.approx(1 / 3)
  assert wer.wer("a", "b c d") == 3.0  # WER is not capped at 1.
  assert wer.wer("", "") == 0.0
  assert math.isinf(wer.wer("", "extra words"))
  # Corpus WER pools errors and words: (1 + 0) / (3 + 1), not mean(1/3, 0).
  assert wer.corpus_wer(["a b c", "d"], ["a x c", "d"]) == 0.25
  total = wer.corpus_errors(["a b c", ""], ["a c", "x"])
  assert (total.deletions, total.insertions, total.reference_length) == (1, 1, 3)
  with pytest.raises(ValueError, match="one hypothesis per reference"):
    wer.corpus_wer(["a"], [])


def _reference_distance(a, b):
  """Plain recursive Levenshtein (independent of the DP table)."""
  if not a:
    return len(b)
  if not b:
    return len(a)
  return min(_reference_distance(a[1:], b) + 1, _reference_distance(a, b[1:]) + 1,
             _reference_distance(a[1:], b[1:]) + (a[0] != b[0]))


def test_matches_recursive_definition_and_counts_are_consistent():
  rng = random.Random(7)
  for _ in range(200):
    ref = [rng.choice("abc") for _ in range(rng.randint(0, 5))]
    hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 5))]
    counts = wer.word_errors(ref, hyp)
    assert counts.errors == _reference_distance(ref, hyp)
    # Every alignment satisfies: ref words = matches + S + D; hyp words = matches + S + I.
    assert len(ref) - counts.deletions == len(hyp) - counts.insertions
    assert counts.errors == wer.edit_distance(hyp, ref)  # symmetric


def test_accepts_word_lists():
  for words in itertools.permutations(["x", "y", "z"]):
    assert wer.edit_distance(list(words), "x y z") == wer.edit_distance(" ".join(words), "x y z")
