"""Writes pre-training tfrecords from a directory of raw text files.

    python3 build_pretraining_dataset.py --corpus-dir CORPUS --vocab-file VOCAB \\
        --output-dir OUT [--max-seq-length 128] [--num-processes 1] [--seed S]

Every file of `--corpus-dir` is raw UTF-8 text, one sentence or paragraph per
line, blank lines between documents (entries that are not regular files,
such as FIFOs or links to devices, are skipped with a warning). Lines are
WordPiece-tokenized and packed into examples of at most `--max-seq-length`
tokens, `[CLS] A [SEP] B [SEP]`, written round-robin into
`OUT/pretrain_data.tfrecord-<i>-of-1000` (see docs/data.md#pre-training-corpus,
docs/cli.md#build_pretraining_datasetpy). The shards are written into `OUT.incomplete`, which
replaces `OUT` only when every worker succeeded and at least one example was written: a failed or
interrupted build never looks complete and leaves a previous dataset in `OUT` untouched (the
original deleted it first). Workers stop when the builder dies; SIGTERM and Ctrl-C
remove the staging dir. The last line printed counts the examples, tokens
and documents written and the tokens cut by the max-length truncation.

The machinery lives in the `pretrain` package: `pretrain/example_builder.py`
(packing lines into examples, writing shards), `pretrain/tfrecord_writer.py`
(TFRecord files in plain Python) and `pretrain/dataset_builder.py` (checks,
worker processes, staging); this script is the command line.

Speed (not behaviour) differs from the original: lines are tokenized by the
exact cached fast path of `FullTokenizer.tokenize_to_ids`, examples are
serialized and framed as TFRecords in plain Python (the bytes TensorFlow would
write, tested against it), so TensorFlow is imported only for remote
(`gs://...`) paths and each `--num-processes` worker starts in well under a
second.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from pretrain import dataset_builder


_FALSE_LOOKING = ("false", "f", "no", "n", "off", "0")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses the command line (flags and defaults of the original, plus --seed)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus-dir", required=True,
                      help="Location of pre-training text files.")
  parser.add_argument("--vocab-file", required=True,
                      help="Location of vocabulary file.")
  parser.add_argument("--output-dir", required=True,
                      help="Where to write out the tfrecords (deleted and re-created).")
  # Quirk kept (docs/cli.md#differences-from-the-original): the original declares type=bool, so any
  # non-empty string, "False" included, means True; only "" gives False.
  parser.add_argument("--blanks-separate-docs", default=True, type=str, metavar="BOOL",
                      help="Whether blank lines indicate document boundaries. As in the "
                           "original any non-empty value means True; pass '' for False.")
  dataset_builder.add_tokenizer_args(parser)
  args = parser.parse_args(argv)
  raw = args.blanks_separate_docs
  if isinstance(raw, str):
    args.blanks_separate_docs = bool(raw)
    if raw.strip().lower() in _FALSE_LOOKING:
      print(f"warning: --blanks-separate-docs {raw!r} means True (like the original, any "
            "non-empty value is True); pass --blanks-separate-docs '' for False.",
            file=sys.stderr)
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Builds the dataset; returns the exit code (one error line: 2 bad flag, 1 bad input)."""
  args = parse_args(argv)

  def build() -> None:
    dataset_builder.corpus_file_names(args)
    skipped = [name for name in dataset_builder.own_files_in_corpus(args)
               if os.path.exists(os.path.join(args.corpus_dir, name))]
    if skipped:
      print(f"note: not reading {', '.join(skipped)} in --corpus-dir as text: "
            "they are this run's vocab file / output.", file=sys.stderr)
    dataset_builder.check_vocab(args.vocab_file)
    dataset_builder.check_output_dir(args.output_dir, [args.corpus_dir, args.vocab_file])
    dataset_builder.build_shards(dataset_builder.write_examples, args, args.output_dir)

  return dataset_builder.run_build(args, build)


if __name__ == "__main__":
  sys.exit(main())
