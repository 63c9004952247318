"""Scoring files of text with a pre-trained model, and re-ranking n-best lists.

`score_text.py`'s machinery (the script is its command line): `load_config`
(the model's saved hparams, then `--hparams`), `build_scorer` (the model, checked
against the checkpoint, with the scorer of `pretrain/scoring.py`), the readers
of plain-text and JSONL inputs and of n-best lists, `rerank` (combined scores,
word error rates with `pretrain/wer.py`) and the atomic JSONL writer.
`check_args` refuses bad flags and unsafe `--output` paths before anything is
loaded; `run` scores or re-ranks and returns the one-line summary.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import configure_pretraining
from model import model_dir as model_dir_lib
from model.model_dir import PRETRAIN_CONFIG_FILE as CONFIG_FILE
from training import config_base
from util import cli, files, paths

logger = logging.getLogger("electra")

# Saved entries that are recomputed here rather than read back.
_RECOMPUTED = ("model_name", "model_dir", "pretrain_tfrecords", "results_txt", "results_pkl")
_KIND_HPARAMS = {
    "electric": '{"electric_objective": true, "electra_objective": false}',
    "electra": '{"electra_objective": true, "electric_objective": false}',
    "mlm": '{"electra_objective": false, "electric_objective": false}',
    "uniform_generator": '{"uniform_generator": true}',
}


class UsageError(cli.UsageError):
  """A bad input file or flag combination (reported as one `error:` line)."""


# ----------------------------------------------------------------------------
# Config and model
# ----------------------------------------------------------------------------

def load_config(data_dir: str, model_name: str,
                overrides: Dict[str, Any]) -> configure_pretraining.PretrainingConfig:
  """The model's hparams: its saved pretrain_config.json (if any), then `overrides`.

  Args:
    data_dir: the --data-dir.
    model_name: the --model-name.
    overrides: parsed --hparams.

  Returns:
    The PretrainingConfig.

  Raises:
    ValueError: the saved file or an override is not a valid hparam set.
  """
  model_dir = model_dir_lib.pretrained_dir(data_dir, model_name)
  path = os.path.join(model_dir, CONFIG_FILE)
  saved = model_dir_lib.load_saved_config(path)
  if saved:
    derived = configure_pretraining.PretrainingConfig._DERIVED  # noqa: SLF001
    saved = {k: v for k, v in saved.items() if k not in derived and k not in _RECOMPUTED}
    logger.info("Hparams from %s", path)
  else:
    logger.info("No %s: using the default hparams and --hparams.", path)
  # The vocabulary: --hparams, the model dir's vocab.txt, the saved one, the --data-dir one.
  vocab = model_dir_lib.find_vocab([os.path.join(model_dir, "vocab.txt"),
                                    saved.pop("vocab_file", None),
                                    os.path.join(data_dir, "vocab.txt")],
                                   explicit=overrides.get("vocab_file"))
  if vocab is not None:
    saved["vocab_file"] = vocab
  try:
    return configure_pretraining.PretrainingConfig(model_name, data_dir,
                                                   **{**saved, **overrides})
  except ValueError as e:
    source = f"{path} or --hparams" if saved else "--hparams"
    raise ValueError(f"Invalid hparams ({source}): {e}") from e


def build_scorer(config: configure_pretraining.PretrainingConfig, method: str,
                 checkpoint: Optional[str], batch_size: int, max_seq_length: Optional[int],
                 use_xla: bool):
  """Builds the model, checks it against the checkpoint, and restores the scorer's weights.

  Raises:
    FileNotFoundError: no checkpoint or vocab file.
    ValueError: the checkpoint holds another kind of model than the hparams
      build, the method does not fit the model, or shapes differ.
  """
  from model import checkpointing, tokenization  # Lazy: `--help` stays fast.
  from pretrain import scoring
  from pretrain.pretraining_model import PretrainingModel

  prefix = model_dir_lib.pretrained_checkpoint(config.model_dir, checkpoint)
  if not os.path.exists(config.vocab_file):
    raise FileNotFoundError(f"Vocab file {config.vocab_file} does not exist: put the model's "
                            "vocab.txt in --data-dir or pass --hparams '{\"vocab_file\": ...}'.")
  model = PretrainingModel(config)
  ckpt_kind = scoring.checkpoint_kind(list(checkpointing.list_checkpoint(prefix)))
  built_kind = scoring.checkpoint_kind(list(model.named_variables()))
  if ckpt_kind != built_kind:
    hint = _KIND_HPARAMS.get(ckpt_kind, "the hparams it was trained with")
    raise ValueError(f"Checkpoint {prefix} holds {scoring.describe_kind(ckpt_kind)}, but the "
                     f"hparams build {scoring.describe_kind(built_kind)}; pass --hparams {hint} "
                     f"(and its size hparams), or point --model-name at a directory with its "
                     f"{CONFIG_FILE}.")
  tokenizer = tokenization.FullTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
  scorer = scoring.make_scorer(
      method, model, tokenizer, batch_size=batch_size,
      max_seq_length=max_seq_length or config.max_seq_length,
      use_xla=use_xla or config.use_xla)
  scorer.restore(prefix)  # logs what it restored
  return scorer


# ----------------------------------------------------------------------------
# Input files
# ----------------------------------------------------------------------------

def _read_jsonl(path: str) -> List[Tuple[int, Dict[str, Any]]]:
  """(line number, object) of each non-blank line of a JSONL file."""
  records = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      records.append((number, files.parse_json_object(line, f"{path}:{number}")))
  return records


def read_texts(path: str) -> List[Dict[str, Any]]:
  """Records with a "text" field: from a .jsonl file, or one per line of a text file.

  Raises:
    UsageError: a .jsonl line without a string "text".
  """
  if path.endswith(".jsonl"):
    records = []
    for number, record in _read_jsonl(path):
      if not isinstance(record.get("text"), str):
        raise UsageError(f"{path}:{number}: a .jsonl input line needs a string \"text\" field; "
                         f"got keys {sorted(record)}.")
      records.append(record)
    return records
  with open(path, encoding="utf-8") as f:
    return [{"text": line.rstrip("\n").rstrip("\r")} for line in f]


def read_nbest(path: str) -> List[Dict[str, Any]]:
  """n-best lists: {"id", "hypotheses": [{"text", "score"}], "reference"?} per line.

  Raises:
    UsageError: a malformed line (named by file and line number).
  """
  lists = []
  for number, record in _read_jsonl(path):
    where = f"{path}:{number}"
    hypotheses = record.get("hypotheses")
    if not isinstance(hypotheses, list) or not hypotheses:
      raise UsageError(f"{where}: an n-best line needs a non-empty \"hypotheses\" list of "
                       "{\"text\": ..., \"score\": ...} objects.")
    for k, hyp in enumerate(hypotheses):
      if (not isinstance(hyp, dict) or not isinstance(hyp.get("text"), str)
          or isinstance(hyp.get("score"), bool)
          or not isinstance(hyp.get("score"), (int, float))):
        raise UsageError(f"{where}: hypothesis {k} needs a string \"text\" and a numeric "
                         f"\"score\" (the upstream score); got {json.dumps(hyp)[:80]}")
    if "reference" in record and not isinstance(record["reference"], str):
      raise UsageError(f"{where}: \"reference\" must be a string.")
    lists.append(record)
  return lists


# ----------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------

def score_records(scorer, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """Adds "tokens", "token_scores" and "score" to each record (a new dict)."""
  scores = scorer.score([r["text"] for r in records])
  return [{**record, "tokens": s.tokens, "token_scores": s.token_scores, "score": s.total}
          for record, s in zip(records, scores)]


def _upstream_best(hypotheses: Sequence[Dict[str, Any]]) -> int:
  """Index of the highest upstream score (first one on ties)."""
  return max(range(len(hypotheses)), key=lambda k: (hypotheses[k]["score"], -k))


def rerank(nbest: List[Dict[str, Any]], lm_scores: List[List[float]],
           lm_weight: float) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
  """Re-ranks n-best lists by score + lm_weight · lm_score.

  Args:
    nbest: records from `read_nbest`.
    lm_scores: per list, one LM score per hypothesis (same order).
    lm_weight: λ.

  Returns:
    (output records, summary). Each output record copies the input, replaces
    "hypotheses" by the sorted list (each with "index" in the input list,
    "lm_score", "combined_score"; ties keep input order) and adds "best";
    with a reference also "wer_before" and "wer_after". The summary has list
    counts, how many 1-best changed, and (if any list has a reference) the
    corpus WER before/after over the lists with references.
  """
  from pretrain import wer  # Lazy, like the other package imports.

  outputs: List[Dict[str, Any]] = []
  references, before, after = [], [], []
  changed = 0
  for record, scores in zip(nbest, lm_scores):
    hyps = [{**hyp, "index": k, "lm_score": lm, "combined_score": hyp["score"] + lm_weight * lm}
            for k, (hyp, lm) in enumerate(zip(record["hypotheses"], scores))]
    first = _upstream_best(record["hypotheses"])
    ranked = sorted(hyps, key=lambda h: -h["combined_score"])  # stable: ties keep order
    changed += ranked[0]["index"] != first
    out = {**record, "hypotheses": ranked, "best": ranked[0]["text"]}
    if "reference" in record:
      out["wer_before"] = _finite(wer.wer(record["reference"], hyps[first]["text"]))
      out["wer_after"] = _finite(wer.wer(record["reference"], ranked[0]["text"]))
      references.append(record["reference"])
      before.append(hyps[first]["text"])
      after.append(ranked[0]["text"])
    outputs.append(out)
  summary: Dict[str, Any] = {
      "lists": len(nbest), "hypotheses": sum(len(r["hypotheses"]) for r in nbest),
      "lm_weight": lm_weight, "changed_1best": changed, "lists_with_reference": len(references)}
  if references:
    errors_before = wer.corpus_errors(references, before)
    errors_after = wer.corpus_errors(references, after)
    summary.update(reference_words=errors_before.reference_length,
                   errors_before=errors_before.errors, errors_after=errors_after.errors,
                   wer_before=_finite(errors_before.rate), wer_after=_finite(errors_after.rate))
  else:
    summary.update(wer_before=None, wer_after=None)
  return outputs, summary


def _finite(value: float) -> Optional[float]:
  """JSON has no infinity: an undefined WER (empty reference, errors) becomes null."""
  return value if value != float("inf") else None


def write_jsonl(records: List[Dict[str, Any]], path: str) -> None:
  with files.atomic_write(path) as f:
    for record in records:
      f.write(json.dumps(record, ensure_ascii=False) + "\n")


def check_args(args: argparse.Namespace) -> Dict[str, Any]:
  """Checks the flags and paths before anything is read or loaded; returns the parsed --hparams.

  Raises:
    cli.UsageError: a bad flag or --hparams, or an --output that is the --input,
      lies in a model directory or `<data-dir>/models`, is not a regular file,
      or exists without --overwrite (exit 2).
    cli.DataError: --input is missing or not a regular file (exit 1).
  """
  if not args.rerank and args.lm_weight is not None:
    raise UsageError("--lm-weight only applies with --rerank.")
  if args.batch_size < 1:
    raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}.")
  problem = paths.file_problem(args.input)
  if problem:
    raise cli.DataError(f"--input {args.input} {problem}.")
  if paths.same_file(args.input, args.output):
    raise UsageError(f"--output {args.output} is the --input file {args.input} (same file); "
                     "it would be overwritten. Choose another --output.")
  paths.check_output_file(args.output, "--output", _model_files(args), args.overwrite)
  return config_base.parse_hparams(args.hparams)


def _model_files(args: argparse.Namespace) -> List[Tuple[str, str]]:
  """Directories --output may not lie in: the model dir, `<data-dir>/models`, the --checkpoint's."""
  protected = paths.model_dirs(args.data_dir, args.model_name)
  if args.checkpoint and "://" not in args.checkpoint:
    directory = (args.checkpoint if os.path.isdir(args.checkpoint)
                 else os.path.dirname(args.checkpoint) or os.curdir)
    protected.append((directory, "the --checkpoint directory"))
  return protected


def run(args: argparse.Namespace, hparams: Dict[str, Any]) -> Dict[str, Any]:
  """Scores or re-ranks as the flags say; returns the summary printed to stdout.

  Args:
    args: the flags, checked by `check_args`.
    hparams: the parsed --hparams.
  """
  records = read_nbest(args.input) if args.rerank else read_texts(args.input)
  config = load_config(args.data_dir, args.model_name, hparams)
  scorer = build_scorer(config, args.method, args.checkpoint, args.batch_size,
                        args.max_seq_length, args.use_xla)
  start = time.perf_counter()
  if args.rerank:
    texts = [h["text"] for r in records for h in r["hypotheses"]]
    flat = [s.total for s in scorer.score(texts)]
    lm_scores, offset = [], 0
    for record in records:
      lm_scores.append(flat[offset:offset + len(record["hypotheses"])])
      offset += len(record["hypotheses"])
    lm_weight = 1.0 if args.lm_weight is None else args.lm_weight
    outputs, summary = rerank(records, lm_scores, lm_weight)
  else:
    outputs = score_records(scorer, records)
    summary = {"texts": len(outputs), "tokens": sum(len(r["tokens"]) for r in outputs)}
  seconds = time.perf_counter() - start
  write_jsonl(outputs, args.output)
  summary.update(method=args.method, output=args.output, seconds=round(seconds, 3))
  return summary
