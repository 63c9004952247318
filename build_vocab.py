"""Builds a BERT-format WordPiece vocabulary from a text corpus.

    python3 build_vocab.py --corpus-dir CORPUS --output-file VOCAB.txt --vocab-size N \\
        [--no-lower-case] [--no-strip-accents] [--num-reserved K] [--min-frequency F]

The corpus is what `build_pretraining_dataset.py` reads: a directory of UTF-8
text files, one sentence or paragraph per line. Every line is split into
words by this project's `BasicTokenizer` (cleaning, CJK splitting,
lower-casing and accent stripping as asked, punctuation splitting), exactly
as `FullTokenizer` splits text before WordPiece, so the vocabulary is learned
on the words it will later tokenize. The WordPiece pieces themselves are
learned by Hugging Face `tokenizers`' `WordPieceTrainer` (an optional
dependency: `pip install -e ".[vocab]"`).

Output layout (BERT's):

  [PAD], [unused0] .. [unused<min(K,99)-1>], [UNK], [CLS], [SEP], [MASK],
  [unused99] .. [unused<K-1>], every corpus character, "##" + every corpus
  character that can continue a word, then the learned pieces, most useful
  first, up to N lines.

With the default K = 99, [PAD] is id 0 and [UNK] [CLS] [SEP] [MASK] keep
BERT's ids 100-103. Every character seen in the corpus is in the vocabulary,
both as a word start and (unless it is punctuation or a CJK ideograph, which
the basic tokenizer always splits off) as a "##" continuation, so `[UNK]`
only stands for characters absent from the corpus (and, as in BERT, for
words longer than 200 characters).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from model import tokenization
from pretrain import dataset_builder, vocab_builder
from util import cli

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses the command line."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus-dir", required=True,
                      help="Directory of UTF-8 text files (the dataset builder's format).")
  parser.add_argument("--output-file", required=True, help="Where to write vocab.txt.")
  parser.add_argument("--vocab-size", required=True, type=int,
                      help="Maximum number of lines (specials and reserved rows included).")
  dataset_builder.add_casing_args(parser)  # The same flags as the dataset builder.
  parser.add_argument("--num-reserved", type=int, default=vocab_builder.DEFAULT_NUM_RESERVED,
                      help="Number of [unusedI] rows; with 99 or more, [UNK] [CLS] [SEP] "
                           "[MASK] get BERT's ids 100-103.")
  parser.add_argument("--min-frequency", type=int, default=vocab_builder.DEFAULT_MIN_FREQUENCY,
                      help="Pieces seen fewer times are not learned (characters always are).")
  parser.add_argument("--overwrite", action="store_true",
                      help="Replace an existing --output-file.")
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """Builds and writes the vocabulary; raises on bad input (see util.cli)."""
  args = parse_args(argv)
  # The flags and the output are checked before the slow work.
  vocab_builder.check_flags(args.vocab_size, args.num_reserved, args.min_frequency)
  vocab_builder.check_output_file(args.output_file, args.overwrite)
  vocab_builder.import_tokenizers()
  start = time.time()
  basic = tokenization.BasicTokenizer(do_lower_case=args.do_lower_case,
                                      strip_accents=args.strip_accents)
  lines = vocab_builder.read_corpus(args.corpus_dir, args.output_file)
  counts = vocab_builder.count_words(lines, basic)
  vocab = vocab_builder.make_vocab(counts, args.vocab_size, args.num_reserved, args.min_frequency)
  vocab_builder.write_vocab(args.output_file, vocab, overwrite=args.overwrite)
  n_chars = len(set().union(*counts))
  print(f"Wrote {len(vocab)} tokens to {args.output_file} ({sum(counts.values())} words, "
        f"{len(counts)} distinct, {n_chars} characters; {time.time() - start:.1f} s).")
  if len(vocab) < args.vocab_size:
    print(f"note: the corpus yields {len(vocab)} tokens, fewer than --vocab-size "
          f"{args.vocab_size} (no more pieces seen at least --min-frequency "
          f"{args.min_frequency} times); vocab_size is taken from the file's line count.")


if __name__ == "__main__":
  sys.exit(cli.run(main))
