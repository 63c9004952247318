"""Text-scoring throughput: Electric's one-pass score vs the masked-LM pseudo-likelihood.

    python3 bench/score.py [--model-size small] [--methods electric,mlm] [--batch 32]
        [--seq 128] [--sentences 64] [--mlm-model bert|generator] [--dtype fp32|bf16]
        [--xla] [--threads N]

Prints one JSON line per method with the common benchmark keys plus `method`,
`sentences`, `forward_passes_per_sec` and `seconds`. `examples_per_sec` counts
scored sentences, `tokens_per_sec` scored word pieces. Texts are real
(bundled Moby-Dick) cut at word boundaries to fill `seq - 2` word pieces;
weights are random (speed only). The MLM baseline has the same size as
Electric's discriminator (`--mlm-model bert`: a BERT-style MLM of
`--model-size`) or is ELECTRA's small generator (`--mlm-model generator`);
it needs one pass per word piece, Electric one per sentence.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from configure_pretraining import PretrainingConfig  # noqa: E402
from model import tokenization  # noqa: E402
from pretrain import scoring  # noqa: E402
from pretrain.pretraining_model import PretrainingModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO, "data", "vocab", "uncased_vocab.txt")
CORPUS = os.path.join(REPO, "data", "corpus", "moby_dick.txt")
DTYPES = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}


def make_texts(tokenizer: tokenization.FullTokenizer, count: int, max_pieces: int) -> List[str]:
  """`count` real texts of at most (and close to) `max_pieces` word pieces each."""
  texts: List[str] = []
  words: List[str] = []
  pieces = 0
  with open(CORPUS, encoding="utf-8") as f:
    for line in f:
      for word in line.split():
        n = len(tokenizer.tokenize(word))
        if pieces + n > max_pieces:
          texts.append(" ".join(words))
          if len(texts) == count:
            return texts
          words, pieces = [], 0
        words.append(word)
        pieces += n
  raise ValueError(f"The corpus {CORPUS} is too short for {count} texts of {max_pieces} pieces.")


def model_hparams(method: str, args: argparse.Namespace) -> dict:
  hparams = {"model_size": args.model_size, "vocab_file": VOCAB, "max_seq_length": args.seq,
             "mixed_precision": DTYPES[args.dtype]}
  if method in ("electric", "cloze"):
    return {**hparams, "electric_objective": True, "electra_objective": False}
  if args.mlm_model == "generator":
    return hparams  # ELECTRA: the MLM is the generator
  return {**hparams, "electra_objective": False}  # BERT-style MLM of the same size


def bench_method(method: str, args: argparse.Namespace, tokenizer, texts: List[str]) -> dict:
  config = PretrainingConfig("bench", "/nonexistent", **model_hparams(method, args))
  model = PretrainingModel(config)
  scorer = scoring.make_scorer(method, model, tokenizer, batch_size=args.batch,
                               max_seq_length=args.seq, use_xla=args.xla,
                               length_bucket=args.seq)
  warmup = texts[:args.batch] if method != "mlm" else texts[:1]
  scorer.score(warmup)  # trace / compile
  start = time.perf_counter()
  results = scorer.score(texts)
  seconds = time.perf_counter() - start
  tokens = sum(len(r.tokens) for r in results)
  passes = len(texts) if method != "mlm" else tokens
  return dict(device=common.describe_device(), dtype=args.dtype, xla=args.xla, batch=args.batch,
              seq=args.seq, examples_per_sec=len(texts) / seconds,
              tokens_per_sec=tokens / seconds, mfu=None,
              peak_memory_mb=common.peak_memory_mb(), command=common.command_line(),
              method=method, model_size=args.model_size,
              mlm_model=args.mlm_model if method == "mlm" else None,
              sentences=len(texts), forward_passes_per_sec=passes / seconds,
              seconds=seconds)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model-size", default="small", choices=("small", "base", "large"))
  parser.add_argument("--methods", default="electric,mlm",
                      help="Comma-separated subset of electric, cloze, mlm.")
  parser.add_argument("--batch", type=int, default=32, help="Sequences per forward pass.")
  parser.add_argument("--seq", type=int, default=128, help="Padded length; texts fill seq - 2.")
  parser.add_argument("--sentences", type=int, default=64, help="Texts scored per method.")
  parser.add_argument("--mlm-model", default="bert", choices=("bert", "generator"))
  parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
  parser.add_argument("--xla", action="store_true")
  parser.add_argument("--threads", type=int, default=None)
  args = parser.parse_args()
  common.set_threads(args.threads)
  tokenizer = tokenization.FullTokenizer(VOCAB)
  texts = make_texts(tokenizer, args.sentences, args.seq - 2)
  for method in args.methods.split(","):
    common.emit(bench_method(method.strip(), args, tokenizer, texts))


if __name__ == "__main__":
  main()
