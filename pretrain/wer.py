"""Word error rate by Levenshtein alignment over whitespace tokens (for n-best re-ranking).

WER = (substitutions + deletions + insertions) / number of reference words,
where the counts come from a minimum-edit alignment of the hypothesis to the
reference with unit costs. Corpus WER sums the errors and the reference words
over all pairs before dividing (not a mean of sentence WERs).

Example:
  >>> word_errors("the cat sat", "the cat sat down").insertions
  1
  >>> corpus_wer(["a b c", "d"], ["a x c", "d"])
  0.25
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Sequence, Union

Words = Union[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class ErrorCounts:
  """Edit operations of one (or, summed, several) alignments.

  Attributes:
    substitutions, deletions, insertions: operation counts.
    reference_length: number of reference words.
  """
  substitutions: int = 0
  deletions: int = 0
  insertions: int = 0
  reference_length: int = 0

  @property
  def errors(self) -> int:
    """The edit distance: substitutions + deletions + insertions."""
    return self.substitutions + self.deletions + self.insertions

  @property
  def rate(self) -> float:
    """errors / reference_length; for an empty reference 0.0 if no errors, else inf."""
    if self.reference_length == 0:
      return 0.0 if self.errors == 0 else math.inf
    return self.errors / self.reference_length

  def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
    return ErrorCounts(self.substitutions + other.substitutions,
                       self.deletions + other.deletions,
                       self.insertions + other.insertions,
                       self.reference_length + other.reference_length)


def _words(text: Words) -> List[str]:
  """Whitespace tokens of a string, or the list itself."""
  return text.split() if isinstance(text, str) else list(text)


def edit_distance(reference: Words, hypothesis: Words) -> int:
  """Levenshtein distance between two word sequences (unit costs).

  Args:
    reference: a string (split on whitespace) or a sequence of words.
    hypothesis: likewise.

  Returns:
    The minimum number of word substitutions, deletions and insertions that
    turn the reference into the hypothesis.
  """
  return word_errors(reference, hypothesis).errors


def word_errors(reference: Words, hypothesis: Words) -> ErrorCounts:
  """Counts the operations of a minimum-edit alignment.

  Among alignments of minimum total cost, the backtrace prefers a match or
  substitution, then a deletion, then an insertion (the total never depends on
  this choice; only the split between the three counts can).

  Args:
    reference: a string (split on whitespace) or a sequence of words.
    hypothesis: likewise.

  Returns:
    `ErrorCounts` with `reference_length = len(reference words)`.
  """
  ref, hyp = _words(reference), _words(hypothesis)
  rows, cols = len(ref) + 1, len(hyp) + 1
  # cost[i][j]: edit distance between ref[:i] and hyp[:j].
  cost = [[0] * cols for _ in range(rows)]
  for i in range(rows):
    cost[i][0] = i
  for j in range(cols):
    cost[0][j] = j
  for i in range(1, rows):
    for j in range(1, cols):
      diagonal = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
      cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
  substitutions = deletions = insertions = 0
  i, j = len(ref), len(hyp)
  while i > 0 or j > 0:
    if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
      substitutions += ref[i - 1] != hyp[j - 1]
      i, j = i - 1, j - 1
    elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
      deletions += 1
      i -= 1
    else:
      insertions += 1
      j -= 1
  return ErrorCounts(substitutions, deletions, insertions, len(ref))


def wer(reference: Words, hypothesis: Words) -> float:
  """Sentence WER: edit distance / reference words (empty reference: 0.0 or inf)."""
  return word_errors(reference, hypothesis).rate


def corpus_errors(references: Sequence[Words], hypotheses: Sequence[Words]) -> ErrorCounts:
  """The summed `ErrorCounts` of aligned (reference, hypothesis) pairs.

  Raises:
    ValueError: the two lists differ in length.
  """
  if len(references) != len(hypotheses):
    raise ValueError(f"corpus WER needs one hypothesis per reference; got {len(references)} "
                     f"references and {len(hypotheses)} hypotheses.")
  total = ErrorCounts()
  for reference, hypothesis in zip(references, hypotheses):
    total = total + word_errors(reference, hypothesis)
  return total


def corpus_wer(references: Sequence[Words], hypotheses: Sequence[Words]) -> float:
  """Corpus WER: Σ errors / Σ reference words (see `corpus_errors`)."""
  return corpus_errors(references, hypotheses).rate
