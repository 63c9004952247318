"""Tag-sequence helpers: spans from BIO/BIOES tags and tags from spans
(docs/finetuning.md#tagging-labels).

A span is `(start, end, type)` with inclusive token indexes. Tags are `O` or
`<prefix>-<type>` with exactly one `-` (prefix B, I, E or S).

Faithful to the original's scanning rule: a span is closed by an `O`, `B-` or
`S-` tag; `I-`/`E-` tags never close one, so a type change without a B/S/O
in between does not split a span, and the closed span's type is that of the
tag just before the closing position (the last tag for the final span). An
`I-` tag after `O` (or at the start) opens a span (IOB1-style input works).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

Span = Tuple[int, int, str]

# The encoding tagging tasks train on (the original's LABEL_ENCODING).
LABEL_ENCODING = "BIOES"
SCHEMES = ("BIO", "BIOES")


def _split_tag(tag: str) -> Tuple[Optional[str], str]:
  """("B", "NP") for "B-NP"; (None, "O") for "O".

  Raises:
    ValueError: if the tag is not `O` and does not contain exactly one `-`.
  """
  if tag == "O":
    return None, "O"
  parts = tag.split("-")
  if len(parts) != 2:
    raise ValueError(f"Malformed tag {tag!r}: expected 'O' or '<B|I|E|S>-<type>' with "
                     "exactly one '-'.")
  return parts[0], parts[1]


def get_span_labels(sentence_tags: Sequence, inv_label_mapping: Optional[Dict[int, str]] = None
                    ) -> List[Span]:
  """Spans `(start, end, type)` of a tag sequence (BIO, IOB1 or BIOES).

  Args:
    sentence_tags: tag strings, or label ids when `inv_label_mapping` is given.
    inv_label_mapping: optional {label id: tag string}.

  Returns:
    The spans in order of their end position. An empty sequence has no spans.

  Raises:
    ValueError: on a malformed tag.
  """
  if inv_label_mapping:
    sentence_tags = [inv_label_mapping[int(i)] for i in sentence_tags]
  span_labels = []
  last = "O"
  start = -1
  for i, tag in enumerate(sentence_tags):
    prefix, _ = _split_tag(tag)
    if (prefix in ("B", "S") or tag == "O") and last != "O":
      span_labels.append((start, i - 1, last.split("-")[-1]))
    if prefix in ("B", "S") or last == "O":
      start = i
    last = tag
  if len(sentence_tags) and sentence_tags[-1] != "O":
    span_labels.append((start, len(sentence_tags) - 1, sentence_tags[-1].split("-")[-1]))
  return span_labels


def get_tags(span_labels: Sequence[Span], length: int, encoding: str = LABEL_ENCODING
             ) -> List[str]:
  """Tags of a sentence of `length` tokens from its spans.

  Every span token gets `I-<t>`; with `E` in the encoding the last gets
  `E-<t>`, with `B` the first gets `B-<t>`, with `S` a one-token span gets
  `S-<t>`. Other tokens are `O`. ("BIO" gives IOB2 tags, "BIOES" BIOES tags.)

  Args:
    span_labels: (start, end, type) spans, inclusive, within [0, length).
    length: number of tokens.
    encoding: a string of the prefixes to use, e.g. "BIOES" or "BIO".

  Returns:
    `length` tag strings.
  """
  tags = ["O"] * length
  for s, e, t in span_labels:
    for i in range(s, e + 1):
      tags[i] = "I-" + t
    if "E" in encoding:
      tags[e] = "E-" + t
    if "B" in encoding:
      tags[s] = "B-" + t
    if "S" in encoding and s == e:
      tags[s] = "S-" + t
  return tags


def convert_tags(tags: Sequence[str], encoding: str = LABEL_ENCODING) -> List[str]:
  """Re-encodes a tag sequence through its spans (e.g. BIO -> BIOES)."""
  return get_tags(get_span_labels(tags), len(tags), encoding)


def check_tag(tag: str, scheme: str) -> None:
  """Checks that `tag` is `O` or uses a prefix of `scheme` ("BIO" or "BIOES").

  Raises:
    ValueError: naming the tag and the allowed prefixes, or for an unknown scheme.
  """
  if scheme not in SCHEMES:
    raise ValueError(f"Unknown tagging scheme {scheme!r}; expected one of {list(SCHEMES)}.")
  prefix, _ = _split_tag(tag)
  allowed = sorted(set(scheme) - {"O"})
  if prefix is not None and prefix not in allowed:
    raise ValueError(f"Tag {tag!r} is not a {scheme} tag (allowed prefixes: {allowed} "
                     "and 'O').")


def validate_scheme(tags: Sequence[str], scheme: str) -> None:
  """Checks every tag of a sequence with `check_tag`; the error names the token index.

  Raises:
    ValueError: for the first offending tag, or for an unknown scheme.
  """
  for position, tag in enumerate(tags):
    try:
      check_tag(tag, scheme)
    except ValueError as e:
      raise ValueError(f"Token {position}: {e}") from None
