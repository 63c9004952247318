"""A model directory's architecture, vocabulary and checkpoints, resolved in one place.

Every script that reads a pre-trained model `<data-dir>/models/<name>`
(run_finetuning.py, export_model.py, convert_hf.py, score_text.py) goes
through this module:

* `PRETRAIN_CONFIG_FILE` (`pretrain_config.json`), written by
  run_pretraining.py and `convert_hf.py import`, holds the resolved
  pre-training hparams; `FINETUNE_CONFIG_FILE` (`finetuning_config.json`) the
  fine-tuning hparams next to each trial's checkpoints.
  `load_saved_config` reads them, `saved_hparams` picks entries of one as a
  merge source, `merge_hparams` puts explicit `--hparams` on top and records
  each value's source.
* `inherit_pretrained_hparams`: the size hparams fine-tuning takes from the
  pre-trained model's `pretrain_config.json` when `--hparams` does not set
  them (explicit values win), with one log line naming them.
* `check_encoder_fits`: a one-line error naming the hparam to set when the
  checkpoint's encoder has other sizes than the hparams build.
* `find_vocab`, `pretrained_checkpoint`, `finetuned_checkpoint`: where the
  vocabulary and the checkpoint are.

Only plain hparam dicts go in and out: the scripts build their own configs.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from model import checkpointing, sizes, tokenization
from util import cli, files

logger = logging.getLogger("electra")

PRETRAIN_CONFIG_FILE = "pretrain_config.json"
FINETUNE_CONFIG_FILE = "finetuning_config.json"
# The hparams that size the encoder (docs/hparams.md#model-sizes; `debug` applies the tiny model).
SIZE_HPARAMS = ("model_size", "model_hparam_overrides", "embedding_size", "vocab_size",
                "debug")
# Hparams that fix a pre-training model's variables' names and shapes.
ARCHITECTURE_HPARAMS = SIZE_HPARAMS + (
    "electra_objective", "electric_objective", "uniform_generator", "two_tower_generator",
    "untied_generator", "untied_generator_embeddings", "generator_layers",
    "generator_hidden_size")
# What fine-tuning inherits besides `model_hparam_overrides`: sizes and the
# tokenizer's casing. Not max_seq_length (a fine-tuning choice up to
# max_position_embeddings), nor the dropout rates and initializer_range.
INHERITED_HPARAMS = ("model_size", "embedding_size", "vocab_size", "do_lower_case")
# BertConfig fields of `model_hparam_overrides` that define the encoder.
ENCODER_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "hidden_act", "max_position_embeddings",
                  "type_vocab_size")
# Hidden size -> the model_size preset that gives it (docs/hparams.md#model-sizes).
_PRESET_OF_HIDDEN_SIZE = {256: "small", 768: "base", 1024: "large"}

Sources = List[Tuple[str, Dict[str, Any]]]


def pretrained_dir(data_dir: str, model_name: str) -> str:
  """`<data_dir>/models/<model_name>`, where a pre-trained model and its config live."""
  return os.path.join(data_dir, "models", model_name)


# ----------------------------------------------------------------------------
# Saved configs and hparam merging
# ----------------------------------------------------------------------------

def load_saved_config(path: str) -> Dict[str, Any]:
  """The hparams saved in `path` (a config JSON), or {} when there is no such file.

  Raises:
    cli.DataError: the file does not hold a JSON object.
  """
  if not os.path.isfile(path):
    return {}
  return files.load_json_object(path, "Saved config")


def saved_hparams(path: str, keys: Sequence[str]) -> Sources:
  """[(path, its values of `keys`)] as a `merge_hparams` source; [] without the file."""
  if not os.path.isfile(path):
    return []
  saved = load_saved_config(path)
  return [(path, {key: saved[key] for key in keys if key in saved})]


def merge_hparams(explicit: Mapping[str, Any],
                  saved: Sources) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """Merges saved configs and explicit hparams; later sources win, `explicit` last.

  `model_hparam_overrides` is merged field by field (a later source's fields
  win), every other hparam as a whole. An explicit value that replaces a
  different saved one is logged as a warning.

  Args:
    explicit: the parsed `--hparams`.
    saved: (source name, hparams taken from it) pairs, lowest priority first.

  Returns:
    (merged hparams, {hparam: source name of its last contribution}) with
    "--hparams" as the source of explicit values.
  """
  merged: Dict[str, Any] = {}
  sources: Dict[str, str] = {}
  for source, config in list(saved) + [("--hparams", explicit)]:
    for key, value in config.items():
      old = merged.get(key)
      if key == "model_hparam_overrides" and isinstance(old, dict) and isinstance(value, dict):
        new, old = ({k: v for k, v in value.items() if k in old and old[k] != v},
                    {k: v for k, v in old.items() if k in value and value[k] != v})
        value = {**merged[key], **value}
        changed = bool(new)
      else:
        new, changed = value, key in merged and old != value
      if source == "--hparams" and changed:
        logger.warning("hparam %s: --hparams value %r overrides %r from %s", key, new, old,
                       sources[key])
      merged[key], sources[key] = value, source
  return merged, sources


# ----------------------------------------------------------------------------
# Fine-tuning inherits the pre-trained architecture
# ----------------------------------------------------------------------------

def saved_encoder_hparams(saved: Mapping[str, Any]) -> Dict[str, Any]:
  """The fine-tuning size hparams that rebuild a saved pre-training config's encoder.

  `debug` is not carried over (in fine-tuning it also changes the data and
  drops init_checkpoint): a debug model's sizes become `model_hparam_overrides`
  fields instead, which gives the same BertConfig (the debug fields beat the
  others in both). Dropout rates and initializer_range are training choices
  and stay out.

  Args:
    saved: a `pretrain_config.json` dict.

  Returns:
    A subset of {model_size, embedding_size, vocab_size, do_lower_case,
    model_hparam_overrides} (present in `saved`).
  """
  hparams = {key: saved[key] for key in INHERITED_HPARAMS if key in saved}
  overrides = saved.get("model_hparam_overrides") or {}
  fields = {k: v for k, v in overrides.items() if k in ENCODER_FIELDS}
  if saved.get("debug"):
    fields.update(sizes.DEBUG_MODEL_OVERRIDES)
  if fields:
    hparams["model_hparam_overrides"] = dict(sorted(fields.items()))
  return hparams


def pretrained_sources(model_dir: str) -> Sources:
  """[(pretrain_config.json path, what fine-tuning inherits from it)], or [] without it.

  What is inherited: `saved_encoder_hparams`, plus `vocab_file` when the saved
  one exists and `<model_dir>/vocab.txt` does not (that file comes first).

  Raises:
    cli.DataError: the saved config is not a JSON object.
  """
  path = os.path.join(model_dir, PRETRAIN_CONFIG_FILE)
  saved = load_saved_config(path)
  if not saved:
    return []
  inherited = saved_encoder_hparams(saved)
  vocab = saved.get("vocab_file")
  if (isinstance(vocab, str) and os.path.isfile(vocab)
      and not os.path.isfile(os.path.join(model_dir, "vocab.txt"))):
    inherited["vocab_file"] = vocab
  return [(path, inherited)]


def inherit_pretrained_hparams(model_dir: str, hparams: Mapping[str, Any]
                               ) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """`hparams` completed with the sizes saved in `<model_dir>/pretrain_config.json`.

  The hparams of `pretrained_sources` that `hparams` does not set are taken
  from the file (`model_hparam_overrides` field by field); explicit values win.
  One INFO line lists what was inherited. Without the file, `hparams` is
  returned unchanged (e.g. a released model, whose sizes must be in `hparams`).

  Args:
    model_dir: the pre-trained model directory.
    hparams: the explicit (`--hparams`) fine-tuning hparams.

  Returns:
    (merged hparams to build the FinetuningConfig with, {hparam: source}).

  Raises:
    cli.DataError: the saved config is not a JSON object.
  """
  saved = pretrained_sources(model_dir)
  merged, sources = merge_hparams(hparams, saved)
  if saved:
    path, values = saved[0]
    inherited = {key: value for key, value in values.items() if key not in hparams}
    explicit_fields = hparams.get("model_hparam_overrides") or {}
    fields = {k: v for k, v in values.get("model_hparam_overrides", {}).items()
              if k not in explicit_fields}
    if fields:
      inherited["model_hparam_overrides"] = fields
    if inherited:
      logger.info("Using the pre-trained model's %s from %s (set them in --hparams to "
                  "override)", ", ".join(f"{k} {json.dumps(v, sort_keys=True)}"
                                         for k, v in inherited.items()), path)
  return merged, sources


# ----------------------------------------------------------------------------
# Does the checkpoint's encoder fit the hparams?
# ----------------------------------------------------------------------------

def encoder_dims(bert_config: Any, embedding_size: Optional[int]) -> Dict[str, int]:
  """The shape-defining sizes of an encoder built from `bert_config`."""
  return {"vocab_size": bert_config.vocab_size,
          "embedding_size": embedding_size or bert_config.hidden_size,
          "hidden_size": bert_config.hidden_size,
          "num_hidden_layers": bert_config.num_hidden_layers,
          "intermediate_size": bert_config.intermediate_size,
          "max_position_embeddings": bert_config.max_position_embeddings,
          "type_vocab_size": bert_config.type_vocab_size}


def checkpoint_encoder_dims(shapes: Mapping[str, Sequence[int]],
                            scope: str = "electra") -> Dict[str, int]:
  """The sizes of the encoder `scope` read off checkpoint variable shapes.

  Args:
    shapes: {variable name: shape}, e.g. `checkpointing.list_checkpoint(prefix)`.
    scope: the encoder's scope.

  Returns:
    The `encoder_dims` keys the checkpoint reveals ({} without that encoder).
    The number of attention heads leaves no trace in the shapes.
  """
  dims: Dict[str, int] = {}
  tables = {"word_embeddings": "vocab_size", "position_embeddings": "max_position_embeddings",
            "token_type_embeddings": "type_vocab_size"}
  for table, key in tables.items():
    shape = shapes.get(f"{scope}/embeddings/{table}")
    if shape and len(shape) == 2:
      dims[key], dims["embedding_size"] = int(shape[0]), int(shape[1])
  layer = re.compile(re.escape(scope) + r"/encoder/layer_(\d+)/")
  layers = {int(m.group(1)) for m in map(layer.match, shapes) if m}
  if layers:
    dims["num_hidden_layers"] = max(layers) + 1
  shape = shapes.get(f"{scope}/encoder/layer_0/intermediate/dense/kernel")
  if shape and len(shape) == 2:
    dims["hidden_size"], dims["intermediate_size"] = int(shape[0]), int(shape[1])
  return dims


def _fixes(diffs: Sequence[str], found: Mapping[str, int]) -> List[str]:
  """The hparam settings that give the checkpoint's sizes `found[key]` for `diffs`."""
  preset = _PRESET_OF_HIDDEN_SIZE.get(found["hidden_size"]) if "hidden_size" in diffs else None
  fixes, fields = [], {}
  for key in diffs:
    value = found[key]
    if key == "hidden_size" and preset:
      fixes.append(f"model_size \"{preset}\" (or model_hparam_overrides "
                   f"{{\"hidden_size\": {value}}})")
    elif (key == "intermediate_size" and "hidden_size" in diffs
          and value == 4 * found["hidden_size"]):
      continue  # Follows the hidden size.
    elif key == "embedding_size" and preset == "small" and value == 128:
      continue  # The small preset's embedding size.
    elif key in ("vocab_size", "embedding_size"):
      fixes.append(f"{key} {value}")
    else:
      fields[key] = value
  if fields:
    fixes.append(f"model_hparam_overrides {json.dumps(fields)}")
  return fixes


def check_encoder_fits(prefix: str, bert_config: Any, embedding_size: Optional[int],
                       hint: str = "", scope: str = "electra",
                       what: str = "init_checkpoint") -> None:
  """Fails with one line naming the hparams to set if the checkpoint's encoder differs.

  Compares the shapes the hparams give (`encoder_dims`) with the checkpoint's
  (`checkpoint_encoder_dims`) before anything is built or featurized.

  Args:
    prefix: a checkpoint prefix.
    bert_config: the BertConfig the hparams build (debug model applied).
    embedding_size: the hparams' embedding_size (None: the hidden size).
    hint: appended to the message (e.g. where the saved sizes are).
    scope: the encoder's scope in the checkpoint.
    what: how to call the checkpoint in the message.

  Raises:
    cli.UsageError: e.g. `init_checkpoint /m/model.ckpt-7 holds an encoder with
      hidden_size 256 (the hparams give 768): set in --hparams model_size "small"
      (or model_hparam_overrides {"hidden_size": 256}).`
  """
  found = checkpoint_encoder_dims(checkpointing.list_checkpoint(prefix), scope)
  built = encoder_dims(bert_config, embedding_size)
  diffs = [key for key in built if key in found and found[key] != built[key]]
  if not diffs:
    return
  described = ", ".join(f"{key} {found[key]} (the hparams give {built[key]})" for key in diffs)
  raise cli.UsageError(f"{what} {prefix} holds an encoder with {described}: set in "
                       f"--hparams {'; '.join(_fixes(diffs, found))}{hint}.")


# ----------------------------------------------------------------------------
# Vocabulary and checkpoints
# ----------------------------------------------------------------------------

def find_vocab(candidates: Sequence[Optional[str]], vocab_size: Optional[int] = None,
               required: bool = False, hint: str = "",
               explicit: Optional[str] = None) -> Optional[str]:
  """The vocabulary file: `explicit`, else the first existing one among `candidates`.

  The order the scripts use: the user's (flag or `vocab_file` hparam), the
  model dir's `vocab.txt`, the `vocab_file` saved in its pretrain_config.json,
  `<data-dir>/vocab.txt`.

  Args:
    candidates: paths in order of preference (None entries are skipped).
    vocab_size: the model's vocab size; a file of another length gets a warning.
    required: raise instead of warning when none exists.
    hint: appended to the message when none exists (what to pass).
    explicit: a path the user named; it must exist.

  Returns:
    The path, or None when none exists and not `required`.

  Raises:
    FileNotFoundError: `explicit` does not exist, or `required` and no
      candidate exists.
  """
  if explicit and not os.path.isfile(explicit):
    raise FileNotFoundError(f"Vocabulary {explicit} does not exist{hint}")
  candidates = list(dict.fromkeys(p for p in [explicit, *candidates] if p))
  for path in candidates:
    if os.path.isfile(path):
      if vocab_size is not None:
        n_tokens = tokenization.count_vocab_lines(path)
        if n_tokens != vocab_size:
          logger.warning("Vocabulary %s has %d tokens but the model's vocab_size is %d; "
                         "check --hparams vocab_size / vocab_file.", path, n_tokens, vocab_size)
      logger.info("Vocabulary: %s", path)
      return path
  message = f"No vocabulary found (looked for {', '.join(candidates)}){hint}"
  if required:
    raise FileNotFoundError(message)
  logger.warning("%s", message)
  return None


VOCAB_FINGERPRINT_FILE = "vocab_fingerprint.json"


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes (local, or any TF filesystem URL)."""
  import hashlib  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def vocab_fingerprint(vocab_file: str) -> Dict[str, Any]:
  """What identifies a vocabulary: its path, line count and SHA-256."""
  return {"vocab_file": vocab_file, "lines": tokenization.count_vocab_lines(vocab_file),
          "sha256": file_sha256(vocab_file)}


def check_vocab_matches(prefix: str, vocab_file: str, what: str = "init_checkpoint") -> None:
  """Refuses a vocabulary other than the one the checkpoint was trained with.

  An embedding row is a token of the training vocabulary: another file maps the
  ids to other tokens, silently. The model dir of the checkpoint tells which
  vocabulary that was, best first:
    * `vocab_fingerprint.json` (written by pre-training): the SHA-256 must match;
    * else `pretrain_config.json`'s `vocab_file` and `vocab_size`: a run
      without padding rows (vocab_size = that file's lines) needs as many lines;
    * else (a released checkpoint): the file must have one line per row.

  Args:
    prefix: the checkpoint prefix.
    vocab_file: the vocabulary the run would use.
    what: how to call the checkpoint in the message.

  Raises:
    cli.DataError: naming both vocabulary files (or the row count).
  """
  directory = os.path.dirname(prefix)
  lines = tokenization.count_vocab_lines(vocab_file)
  fingerprint_path = os.path.join(directory, VOCAB_FINGERPRINT_FILE)
  if os.path.isfile(fingerprint_path):
    recorded = files.load_json_object(fingerprint_path, "Vocabulary fingerprint")
    if recorded.get("sha256") != file_sha256(vocab_file):
      raise cli.DataError(
          f"vocab_file {vocab_file} ({lines} lines) is not the vocabulary {what} {prefix} was "
          f"trained with: {fingerprint_path} records {recorded.get('vocab_file')} "
          f"({recorded.get('lines')} lines, SHA-256 {str(recorded.get('sha256'))[:12]}...). "
          "Use that file (hparam vocab_file, or put it at the model dir's vocab.txt).")
    return
  rows = checkpoint_encoder_dims(checkpointing.list_checkpoint(prefix)).get("vocab_size")
  if rows is None or lines >= rows:
    return  # more lines than rows: resolve_vocab_size refuses that already
  saved = load_saved_config(os.path.join(directory, PRETRAIN_CONFIG_FILE))
  saved_vocab = saved.get("vocab_file")
  if (isinstance(saved_vocab, str) and os.path.isfile(saved_vocab)
      and tokenization.count_vocab_lines(saved_vocab) < rows):
    return  # that run had padding rows too (vocab_size above its file's lines)
  trained_with = (f"{saved_vocab} ({rows} lines)"
                  if isinstance(saved_vocab, str) and os.path.isfile(saved_vocab)
                  else f"a vocabulary of {rows} tokens")
  raise cli.DataError(
      f"vocab_file {vocab_file} has {lines} lines but {what} {prefix} has {rows} embedding "
      f"rows: it was trained with {trained_with}, and this file would map the ids to other "
      "tokens. Use the vocabulary the model was trained with (hparam vocab_file, or the "
      "model dir's vocab.txt).")


def pretrained_checkpoint(model_dir: str, checkpoint: Optional[str] = None) -> str:
  """`checkpoint` (a directory or prefix) resolved, else the latest one in `model_dir`.

  Raises:
    FileNotFoundError: no such model directory or no checkpoint in it.
  """
  if checkpoint:
    return checkpointing.resolve_checkpoint(checkpoint)
  if not os.path.isdir(model_dir):
    raise FileNotFoundError(
        f"Model directory {model_dir} does not exist: put the checkpoint there (e.g. the "
        "unzipped released electra_small, or train it with run_pretraining.py), check "
        "--data-dir / --model-name, or pass --checkpoint.")
  return checkpointing.resolve_checkpoint(model_dir)


def finetuned_checkpoint(finetuned_model_dir: str, checkpoint: Optional[str] = None) -> str:
  """`checkpoint` resolved, else that of the only `<finetuned_model_dir>_<trial>` directory.

  Args:
    finetuned_model_dir: the fine-tuning config's `model_dir` (without `_<trial>`).
    checkpoint: an explicit directory or prefix.

  Raises:
    FileNotFoundError: no or several trial directories with a checkpoint.
  """
  if checkpoint:
    return checkpointing.resolve_checkpoint(checkpoint)
  candidates = sorted(d for d in glob.glob(glob.escape(finetuned_model_dir) + "_*")
                      if checkpointing.latest_checkpoint(d))
  if len(candidates) == 1:
    return checkpointing.resolve_checkpoint(candidates[0])
  found = f"found {', '.join(candidates)}" if candidates else "found none"
  raise FileNotFoundError(
      f"Pass --checkpoint with the fine-tuned model directory or prefix: looked for one "
      f"trial directory {finetuned_model_dir}_<trial> with a checkpoint and {found}.")
