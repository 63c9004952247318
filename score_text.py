"""Scores text with a pre-trained model, or re-ranks n-best lists (beyond the original).

    python3 score_text.py --data-dir D --model-name M --input FILE --output OUT.jsonl
        [--method electric|cloze|mlm] [--hparams JSON] [--checkpoint PATH]
        [--batch-size 32] [--max-seq-length L] [--use-xla] [--overwrite]
    python3 score_text.py --rerank --lm-weight 0.5 --data-dir D --model-name M
        --input NBEST.jsonl --output RERANKED.jsonl [...]

Scoring: FILE holds one text per line, or (`.jsonl`) one JSON object per line
with a "text" field; each output line is {"text", "tokens", "token_scores",
"score"} (other fields of a .jsonl input are copied). Methods
(pretrain/scoring.py): `electric` (default) sums -E(x)_t of an Electric model
over the word pieces in one pass; `cloze` sums log q(x_t | x_\\t) of Electric's
two-tower generator; `mlm` is the masked-LM pseudo-log-likelihood (one pass
per token) of a BERT-style MLM or an ELECTRA generator.

Re-ranking: each input line is {"id", "hypotheses": [{"text", "score"}, ...],
"reference" (optional)}; each hypothesis gets `lm_score` and
`combined_score = score + lm_weight * lm_score`, the list is sorted by it, and
the output line gets "best". With references, the output lines carry
"wer_before" / "wer_after" (1-best by upstream score vs by combined score) and
the summary reports corpus WER (Σ word edits / Σ reference words).

Hparams: those saved by run_pretraining.py in `<data-dir>/models/<model-name>/
pretrain_config.json` when present (paths recomputed from --data-dir), then
--hparams on top. A one-line JSON summary goes to stdout.

--output is written atomically; an existing file is replaced only with
--overwrite, and a path in `<data-dir>/models` (or the --checkpoint's
directory) is always refused (util/paths.py). The machinery is
`pretrain/text_scoring.py`; this script is its command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, Sequence

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
from pretrain import text_scoring
from util import cli, logs

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  cli.add_model_dir_flags(parser, "The pre-trained model to score with.",
                          "overrides the saved pretrain_config.json.")
  parser.add_argument("--input", required=True, help="Text file (one text per line), .jsonl "
                      "with a \"text\" field, or with --rerank an n-best .jsonl file.")
  parser.add_argument("--output", required=True, help="Output .jsonl file (written "
                      "atomically; never inside <data-dir>/models or the --checkpoint's "
                      "directory).")
  parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output "
                      "file.")
  parser.add_argument("--method", default="electric", choices=("electric", "cloze", "mlm"),
                      help="electric: Σ -energy, one pass (Electric models); cloze: Σ log q of "
                           "Electric's generator; mlm: masked-LM pseudo-log-likelihood, one pass "
                           "per token (BERT-style MLM or ELECTRA generator).")
  parser.add_argument("--checkpoint", default=None, help="Checkpoint prefix or directory "
                      "(default: the latest in <data-dir>/models/<model-name>).")
  parser.add_argument("--batch-size", type=int, default=32, help="Sequences per forward pass.")
  parser.add_argument("--max-seq-length", type=int, default=None, help="Longest input in word "
                      "pieces incl. [CLS]/[SEP] (default: the model's max_seq_length).")
  parser.add_argument("--use-xla", action="store_true", help="Compile the scoring pass with XLA.")
  parser.add_argument("--rerank", action="store_true", help="Re-rank n-best lists instead of "
                      "scoring texts.")
  parser.add_argument("--lm-weight", type=float, default=None, help="λ in score + λ·lm_score "
                      "(--rerank only; default 1.0).")
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the CLI; returns the exit code (2 for a bad flag, 1 for bad input; one `error:` line)."""
  args = parse_args(argv)
  logs.setup_logging()
  hparams: Dict[str, Any] = {}

  def check(_) -> None:
    hparams.update(text_scoring.check_args(args))

  def score(_) -> None:
    print(json.dumps(text_scoring.run(args, hparams)), flush=True)

  # Flags, --hparams and --output first: usage errors (exit 2); a bad --input: 1.
  code = cli.run(check)
  if code:
    return code
  # The scoring's checks are about the input files and the model dir: exit code 1.
  return cli.run(score, extra_data_errors=(ValueError,))


if __name__ == "__main__":
  sys.exit(main())
