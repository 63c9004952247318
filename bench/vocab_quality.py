"""Time and quality of `build_vocab.py` vocabularies on held-out text.

    python -m bench.vocab_quality [--corpus data/corpus/moby_dick.txt] \\
        [--sizes 8000,16000,30522] [--tf-text-learner PATH]

The corpus file's lines are split: the first `--train-fraction` build the
vocabulary, the rest are held out. On the held-out lines each vocabulary
tokenizes with `FullTokenizer` (lower-cased, as the BERT uncased vocab) and
we report fertility (word pieces per basic-tokenized word) and the [UNK]
rate (share of words that became [UNK]), next to the BERT uncased vocab.

`--tf-text-learner` points at `wordpiece_tokenizer_learner_lib.py` of a
`tensorflow-text` wheel (the BERT authors' learner behind
`bert_vocab_from_dataset`, pure Python); it is loaded from the file, so the
package's native ops need not import. It learns on the same basic-tokenized
word counts, so only the learner differs (its frequency floor `lower_thresh`
is set to build_vocab's default --min-frequency, 2, instead of its 10).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Sequence

# The repository first: bench/pretrain.py would otherwise shadow the `pretrain` package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from model import tokenization  # noqa: E402
from pretrain import vocab_builder  # noqa: E402

BERT_UNCASED = os.path.join("data", "vocab", "uncased_vocab.txt")


def quality(vocab_file: str, lines: Sequence[str]) -> Dict[str, float]:
  """Fertility and [UNK] rate of `vocab_file` on `lines` (lower-cased)."""
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  words = pieces = unk = 0
  for line in lines:
    for word in tokenizer.basic_tokenizer.tokenize(line):
      word_pieces = tokenizer.wordpiece_tokenizer.tokenize(word)
      words += 1
      pieces += len(word_pieces)
      unk += word_pieces == ["[UNK]"]
  return {"words": words, "fertility": pieces / words, "unk_rate": unk / words}


def _load_tf_text_learner(path: str):
  spec = importlib.util.spec_from_file_location("tf_text_wordpiece_learner", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus", default=os.path.join("data", "corpus", "moby_dick.txt"))
  parser.add_argument("--sizes", default="8000,16000,30522")
  parser.add_argument("--train-fraction", type=float, default=0.8)
  parser.add_argument("--tf-text-learner", default=None)
  args = parser.parse_args(argv)

  with open(args.corpus, encoding="utf-8") as f:
    lines = f.read().splitlines()
  cut = int(len(lines) * args.train_fraction)
  train, held_out = lines[:cut], lines[cut:]
  basic = tokenization.BasicTokenizer(do_lower_case=True, strip_accents=True)
  start = time.perf_counter()
  counts = vocab_builder.count_words(train, basic)
  count_s = time.perf_counter() - start
  print(json.dumps({"train_lines": len(train), "held_out_lines": len(held_out),
                    "train_words": sum(counts.values()), "distinct_words": len(counts),
                    "basic_tokenize_s": round(count_s, 2)}))
  results: List[Dict] = [{"vocab": "BERT uncased", "size": 30522,
                          **quality(BERT_UNCASED, held_out)}]
  learner = _load_tf_text_learner(args.tf_text_learner) if args.tf_text_learner else None
  with tempfile.TemporaryDirectory() as tmp:
    for size in (int(s) for s in args.sizes.split(",")):
      builders = [("tokenizers", lambda n: vocab_builder.make_vocab(counts, n))]
      if learner:
        head = vocab_builder.head_tokens(vocab_builder.DEFAULT_NUM_RESERVED)
        builders.append(("tensorflow-text", lambda n: head + [
            t for t in learner.learn(counts, n - len(head), reserved_tokens=[],
                                           lower_thresh=vocab_builder.DEFAULT_MIN_FREQUENCY)
            if t not in head]))
      for name, build in builders:
        start = time.perf_counter()
        vocab = build(size)
        seconds = time.perf_counter() - start
        path = os.path.join(tmp, f"{name}-{size}.txt")
        vocab_builder.write_vocab(path, vocab, overwrite=True)
        results.append({"vocab": name, "size": size, "lines": len(vocab),
                        "learn_s": round(seconds, 2), **quality(path, held_out)})
  for r in results:
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))


if __name__ == "__main__":
  main()
