"""Padded batches of real text (bundled Moby-Dick, real uncased BERT vocab) for model tests."""
from typing import Dict, List, Sequence

import numpy as np

from model import tokenization


def moby_dick_batch(tokenizer: tokenization.FullTokenizer, lines: Sequence[str],
                    lengths: Sequence[int], seq_length: int,
                    first_line: int = 0) -> Dict[str, np.ndarray]:
  """int32 input_ids / input_mask / segment_ids [B, S]: `[CLS] a [SEP] b [SEP]` + padding.

  Example b has `lengths[b]` real tokens (>= 5, <= seq_length), taken from
  consecutive non-empty corpus lines: segment a from one line, segment b from
  the next, both truncated.
  """
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  rows: List[List[int]] = []
  segments: List[List[int]] = []
  for b, length in enumerate(lengths):
    if not 5 <= length <= seq_length:
      raise ValueError(f"length {length} must be in [5, {seq_length}]")
    ids_a = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(lines[first_line + 2 * b]))
    ids_b = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(lines[first_line + 2 * b + 1]))
    len_a = (length - 3) // 2
    len_b = length - 3 - len_a
    ids_a, ids_b = (ids_a * 8)[:len_a], (ids_b * 8)[:len_b]
    rows.append([cls_id] + ids_a + [sep_id] + ids_b + [sep_id])
    segments.append([0] * (len_a + 2) + [1] * (len_b + 1))
  batch = {k: np.zeros([len(lengths), seq_length], np.int32)
           for k in ("input_ids", "input_mask", "segment_ids")}
  for b, (row, seg) in enumerate(zip(rows, segments)):
    batch["input_ids"][b, :len(row)] = row
    batch["input_mask"][b, :len(row)] = 1
    batch["segment_ids"][b, :len(row)] = seg
  return batch
