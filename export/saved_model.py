"""An ELECTRA checkpoint as a TensorFlow SavedModel for serving (`export_model.py`'s machinery).

Pre-trained models (the default): reads the latest checkpoint of
`<data-dir>/models/<model-name>` (or `--checkpoint`, a directory or a prefix),
e.g. a released `electra_small` directory or one of our pre-training runs. The
model's size comes from `--hparams` as in `run_pretraining.py`, merged over the
architecture hparams our runs save in `<model dir>/pretrain_config.json`
(an explicit `--hparams` value wins; every source is logged).

Fine-tuned models (`--finetuned`, implied by `"task_names"` in `--hparams`):
reads `--checkpoint` (default: the only `finetuning_models/<tasks>_model_<n>`
directory) and builds the encoder and task heads as `run_finetuning.py` does.

Signature `serving_default` (all inputs int32 [batch, seq], seq <=
max_position_embeddings; B batch, S seq, H hidden size, V vocab size):

  inputs:  input_ids, input_mask (1 = real token), segment_ids
  outputs, pre-trained:
    discriminator_logits  float32 [B, S]     replaced-token logits (> 0: "fake");
                                              absent for a BERT-style MLM model
                                              (electra_objective false); for
                                              Electric the energy head s_t only
    sequence_output       float32 [B, S, H]  the discriminator (`electra`) encoder
    generator_logits      float32 [B, S, V]  --include-generator only: the MLM
                                              head at every position of the
                                              same (unmasked) input (Electric:
                                              the two-tower cloze logits)
  outputs, fine-tuned: sequence_output and, per task, the heads' eval-mode
    outputs named `<task>_<key>`: classification `logits` [B, C],
    `probabilities` [B, C] (softmax), `predictions` [B]; regression
    `predictions` [B]; tagging `logits` [B, S, C] and `predictions` [B, S] at
    every position (pick each word's first word-piece); QA `start_logits` [B, S],
    `end_logits` (zeros with joint prediction, as the head), `answerable_logit`
    [B], `start_top_log_probs`/`start_top_index` [B, K] and
    `end_top_log_probs`/`end_top_index` [B, K, K] (K = beam_size, needs S >= K).

`OUT/assets/` holds `bert_config.json` (plus `generator_config.json` with the
generator), `vocab.txt` when known, and `export_info.json` (checkpoint,
global step, hparams and their sources, outputs, task labels). The export is
written next to OUT and renamed into place; a non-empty OUT is only replaced
with `--overwrite`, and OUT may not be, contain or lie inside
`<data-dir>/models`, nor be or contain the checkpoint's directory. The model
always computes in float32 without dropout.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

import configure_finetuning
import configure_pretraining
from finetune import finetuning_model, task_builder
from finetune.classification import classification_tasks
from model import checkpointing, sizes
from model import model_dir as model_dir_lib
from model.modeling import BertConfig
from pretrain.pretrain_data import Inputs
from pretrain.pretrain_helpers import SpecialTokenIds
from pretrain.pretraining_model import PretrainingModel
from training import config_base
from util import files, logs, paths

logger = logging.getLogger("electra")

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
SERVING_INPUT_SIGNATURE = [tf.TensorSpec([None, None], tf.int32, name=name)
                           for name in INPUT_NAMES]
SIGNATURE_KEY = "serving_default"
# Hparams of a fine-tuning run that decide the variables' names and shapes or
# the heads' eval-mode outputs; the rest (paths, learning rate, ...) is ignored.
FINETUNE_ARCHITECTURE_HPARAMS = (
    "model_size", "model_hparam_overrides", "embedding_size", "vocab_size", "debug",
    "task_names", "task_configs", "do_lower_case", "max_seq_length", "joint_prediction",
    "beam_size", "answerable_classifier", "answerable_uses_start_logits",
    "answerable_weight")
_PRETRAINED_HINT = (
    "Set the pre-training hparams of the run that wrote it in --hparams: model_size, "
    "embedding_size, model_hparam_overrides, vocab_size, and for the generator "
    "generator_hidden_size / generator_layers / untied_generator_embeddings / "
    "electric_objective (the released ELECTRA-Small needs '{\"generator_hidden_size\": 1.0}' "
    "for --include-generator). A fine-tuned checkpoint is exported with --finetuned and "
    "its task_names.")
_FINETUNED_HINT = (
    "Set the hparams of the fine-tuning run in --hparams: task_names (same order), "
    "task_configs, model_size, embedding_size, model_hparam_overrides, vocab_size, and the "
    "QA head settings (joint_prediction, answerable_classifier, "
    "answerable_uses_start_logits).")
_NO_VOCAB = "; the export has no vocab.txt asset"
# Export never masks, so PretrainingModel needs no real special-token ids.
_UNUSED_SPECIAL_IDS = SpecialTokenIds(cls_id=0, sep_id=0, mask_id=0)
Forward = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]]


@dataclasses.dataclass
class ExportPlan:
  """A built, not yet restored model and everything the SavedModel needs.

  Attributes:
    forward: (input_ids, input_mask, segment_ids) int32 [B, S] -> outputs dict.
    modules: the modules whose variables the SavedModel stores.
    variables: {checkpoint name: variable} of those modules, to restore.
    checkpoint: the checkpoint prefix to restore.
    bert_config: the encoder's BertConfig (written as assets/bert_config.json).
    asset_configs: other {file name: dict} JSON assets (e.g. generator_config.json).
    vocab_file: the vocabulary to ship, or None when unknown.
    info: JSON-able description written to assets/export_info.json.
    restore_hint: what to change when the checkpoint does not fit the model.
  """
  forward: Forward
  modules: List[tf.Module]
  variables: Dict[str, tf.Variable]
  checkpoint: str
  bert_config: BertConfig
  asset_configs: Dict[str, Dict[str, Any]]
  vocab_file: Optional[str]
  info: Dict[str, Any]
  restore_hint: str


class ServingModule(tf.Module):
  """The exported object: the models' variables, the assets and `serve`.

  Args:
    forward: the plan's forward function.
    modules: the modules it uses (tracked so their variables are saved).
    max_position_embeddings: the longest sequence the model accepts.
    assets: {attribute name: local file} tracked as `tf.saved_model.Asset`s.
  """

  def __init__(self, forward: Forward, modules: Sequence[tf.Module],
               max_position_embeddings: int, assets: Mapping[str, str], xla: bool = False):
    super().__init__(name="electra_export")
    # XLA: the forward pass is one compiled cluster (fewer, fused kernels: less per-op
    # overhead at small batches); the length check stays outside (XLA has no Assert).
    self._forward = (tf.function(forward, jit_compile=True, autograph=False,
                                 reduce_retracing=True) if xla else forward)
    self.models = list(modules)
    self._max_position_embeddings = max_position_embeddings
    for name, path in assets.items():
      setattr(self, name, tf.saved_model.Asset(path))

  @tf.function(input_signature=SERVING_INPUT_SIGNATURE)
  def serve(self, input_ids: tf.Tensor, input_mask: tf.Tensor,
            segment_ids: tf.Tensor) -> Dict[str, tf.Tensor]:
    """int32 [B, S] inputs -> the outputs dict (see the module docstring)."""
    tf.debugging.assert_less_equal(
        tf.shape(input_ids)[1], self._max_position_embeddings,
        message=f"sequence length exceeds max_position_embeddings "
                f"({self._max_position_embeddings}); truncate the inputs")
    return self._forward(input_ids, input_mask, segment_ids)


# ----------------------------------------------------------------------------
# Hparams
# ----------------------------------------------------------------------------

def _log_hparams(config: config_base.HParamsConfig, keys: Sequence[str],
                 sources: Mapping[str, str]) -> Dict[str, Any]:
  """Logs each architecture hparam with its source; returns them as JSON-able dict."""
  values = config.to_dict()
  shown = {}
  for key in sorted(set(keys) | set(sources)):
    if key in values:
      shown[key] = values[key]
      logger.info("  %s = %s  (%s)", key, json.dumps(values[key]),
                  sources.get(key, "default"))
  return shown


def _check_saved_bert_config(model_dir: str, bert_config: BertConfig) -> None:
  """Warns when `<model_dir>/bert_config.json` differs from the model being exported."""
  path = os.path.join(model_dir, "bert_config.json")
  if not os.path.isfile(path):
    return
  saved = files.load_json(path)
  built = bert_config.to_dict()
  diffs = [f"{key}: saved {saved.get(key)!r}, now {built.get(key)!r}"
           for key in sorted(set(saved) | set(built)) if saved.get(key) != built.get(key)]
  if diffs:
    logger.warning("The model differs from %s (%s); check --hparams.", path, "; ".join(diffs))


def _global_step(prefix: str) -> Optional[int]:
  reader = tf.train.load_checkpoint(prefix)
  if reader.has_tensor("global_step"):
    return int(reader.get_tensor("global_step"))
  return checkpointing.checkpoint_step(prefix)


# ----------------------------------------------------------------------------
# Pre-trained models
# ----------------------------------------------------------------------------

def _generator_logits(model: PretrainingModel, input_ids: tf.Tensor, input_mask: tf.Tensor,
                      segment_ids: tf.Tensor, sequence_output: Optional[tf.Tensor]
                      ) -> tf.Tensor:
  """float32 [B, S, V]: the MLM (or Electric cloze) head at every position."""
  if model.config.two_tower_generator:
    reprs = model.generator(Inputs(input_ids, input_mask, segment_ids), False)  # [B, S, 2G]
  elif sequence_output is not None:
    reprs = sequence_output  # Tied generator / MLM: the discriminator's encoder.
  else:
    reprs = model.generator(input_ids, input_mask, segment_ids, False).sequence_output
  return model.generator_head(reprs)


def _pretrained_forward(model: PretrainingModel, include_generator: bool) -> Forward:
  """The serving computation of a pre-trained model in eval mode."""
  def forward(input_ids, input_mask, segment_ids):
    outputs = {}
    sequence_output = model.discriminator(input_ids, input_mask, segment_ids,
                                          False).sequence_output  # [B, S, H]
    outputs["sequence_output"] = tf.cast(sequence_output, tf.float32)
    if model.discriminator_head is not None:
      outputs["discriminator_logits"] = model.discriminator_head(sequence_output)  # [B, S]
    if include_generator:
      shared = sequence_output if model.generator is model.discriminator else None
      outputs["generator_logits"] = _generator_logits(model, input_ids, input_mask,
                                                      segment_ids, shared)
    return outputs
  return forward


def _pretrained_modules(model: PretrainingModel, include_generator: bool) -> List[tf.Module]:
  """The sub-modules the export uses (only their variables must be in the checkpoint)."""
  if model.discriminator is None:
    raise ValueError("This configuration has no encoder to export (uniform_generator "
                     "without electra_objective/electric_objective); fix --hparams.")
  modules = [model.discriminator]
  if model.discriminator_head is not None:
    modules.append(model.discriminator_head)
  if include_generator:
    if model.generator is None:
      raise ValueError("--include-generator: this model has no generator "
                       "(uniform_generator is true); drop the flag.")
    modules += [model.generator, model.generator_head]
  return modules


def build_pretrained_export(data_dir: str, model_name: str, hparams: Mapping[str, Any],
                            include_generator: bool = False,
                            checkpoint: Optional[str] = None) -> ExportPlan:
  """Builds the pre-training model for export (variables not yet restored).

  Args:
    data_dir: the `--data-dir`.
    model_name: the `--model-name`; the model dir is `<data_dir>/models/<model_name>`.
    hparams: the parsed `--hparams` (PretrainingConfig overrides).
    include_generator: also export `generator_logits`.
    checkpoint: a checkpoint directory or prefix; None: the model dir's latest.

  Returns:
    The ExportPlan.

  Raises:
    FileNotFoundError: no checkpoint found.
    ValueError: invalid hparams or a model without the requested parts.
  """
  model_dir = model_dir_lib.pretrained_dir(data_dir, model_name)
  prefix = model_dir_lib.pretrained_checkpoint(model_dir, checkpoint)
  config_path = os.path.join(model_dir, model_dir_lib.PRETRAIN_CONFIG_FILE)
  saved = model_dir_lib.saved_hparams(config_path, model_dir_lib.ARCHITECTURE_HPARAMS)
  merged, sources = model_dir_lib.merge_hparams(hparams, saved)
  if merged.get("mixed_precision", "off") != "off":
    logger.info("Exporting in float32 (ignoring mixed_precision=%s).",
                merged["mixed_precision"])
  merged["mixed_precision"] = "off"
  config = configure_pretraining.PretrainingConfig(model_name, data_dir, **merged)
  logs.log_heading(f"Exporting pre-trained model {prefix}")
  shown = _log_hparams(config, model_dir_lib.ARCHITECTURE_HPARAMS, sources)
  model = PretrainingModel(config, _UNUSED_SPECIAL_IDS)
  _check_saved_bert_config(model_dir, model.bert_config)
  modules = _pretrained_modules(model, include_generator)
  variables: Dict[str, tf.Variable] = {}
  for module in modules:
    variables.update(module.named_variables())
  asset_configs = {}
  if include_generator and model.generator is not model.discriminator:
    asset_configs["generator_config.json"] = sizes.get_generator_config(
        config, model.bert_config).to_dict()
  vocab = model_dir_lib.find_vocab(
      [os.path.join(model_dir, "vocab.txt"),
       model_dir_lib.load_saved_config(config_path).get("vocab_file"), config.vocab_file],
      model.bert_config.vocab_size, hint=_NO_VOCAB, explicit=hparams.get("vocab_file"))
  info = {"kind": "pretrained", "hparams": shown,
          "hparam_sources": {k: sources.get(k, "default") for k in shown}}
  if config.electric_objective:
    info["note"] = ("Electric: discriminator_logits is the head output s_t only; "
                    "P(noise) also adds log q_t + log(mask_prob / (1 - mask_prob)).")
  return ExportPlan(_pretrained_forward(model, include_generator), modules, variables,
                    prefix, model.bert_config, asset_configs, vocab, info, _PRETRAINED_HINT)


# ----------------------------------------------------------------------------
# Fine-tuned models
# ----------------------------------------------------------------------------

def _dummy_features(tasks, input_ids: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Task features the heads read but serving does not have (labels), as zeros.

  `<task>_labeled_positions` (tagging) is every position, so tagging logits
  cover all tokens.
  """
  batch_size, seq_length = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
  features = {"task_id": tf.zeros([batch_size], tf.int32)}
  for task in tasks:
    for spec in task.get_feature_specs():
      dtype = tf.int32 if spec.is_int_feature else tf.float32
      if spec.name == task.name + "_labeled_positions":
        features[spec.name] = tf.tile(tf.range(seq_length)[None], [batch_size, 1])
      elif spec.shape:  # [max_seq_length]: follows the served length.
        features[spec.name] = tf.zeros([batch_size, seq_length], dtype)
      else:
        features[spec.name] = tf.zeros([batch_size], dtype)
  return features


def _finetuned_forward(model: finetuning_model.FinetuningModel, tasks) -> Forward:
  """Encoder + every head in eval mode; drops losses and echoed label features."""
  def forward(input_ids, input_mask, segment_ids):
    features = {"input_ids": input_ids, "input_mask": input_mask,
                "segment_ids": segment_ids, **_dummy_features(tasks, input_ids)}
    bert_output = model.encoder(input_ids, input_mask, segment_ids, False)
    outputs = {"sequence_output": tf.cast(bert_output.sequence_output, tf.float32)}
    for task, head in zip(tasks, model.heads):
      _, head_outputs = head(bert_output, features, False)
      for key, value in head_outputs.items():
        name = f"{task.name}_{key}"
        if key != "loss" and name not in features:
          outputs[name] = value
      if isinstance(head, classification_tasks.ClassificationHead):
        outputs[f"{task.name}_probabilities"] = tf.nn.softmax(head_outputs["logits"], -1)
    return outputs
  return forward


def _check_label_mappings(tasks) -> None:
  """Tagging heads need the label mapping the fine-tuning run wrote (no side effects)."""
  for task in tasks:
    path = getattr(task, "label_mapping_path", None)
    if path is not None and not os.path.isfile(path):
      raise FileNotFoundError(
          f"Task {task.name}: the label mapping {path} written by run_finetuning.py is "
          "missing; it fixes the number of tags. Copy it there, or set "
          "preprocessed_data_dir in --hparams to the directory that holds it.")


def _task_info(task) -> Dict[str, Any]:
  info: Dict[str, Any] = {"class": type(task).__name__}
  if hasattr(task, "label_list"):
    info["labels"] = list(task.label_list)
  if hasattr(task, "label_mapping_path"):
    mapping = task.get_label_mapping()
    info["labels"] = [tag for tag, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
  return info


def build_finetuned_export(data_dir: str, model_name: str, hparams: Mapping[str, Any],
                           checkpoint: Optional[str] = None) -> ExportPlan:
  """Builds the fine-tuning model (encoder + task heads) for export.

  Args:
    data_dir: the `--data-dir`.
    model_name: the pre-trained model's name (`<data_dir>/models/<model_name>`).
    hparams: the parsed `--hparams` (FinetuningConfig overrides, incl. task_names).
    checkpoint: the fine-tuned model directory or prefix (default: see
      `model_dir.finetuned_checkpoint`).

  Returns:
    The ExportPlan.

  Raises:
    FileNotFoundError: no checkpoint, or a tagging label mapping is missing.
    ValueError: invalid hparams or tasks.
  """
  saved = model_dir_lib.pretrained_sources(model_dir_lib.pretrained_dir(data_dir, model_name))
  probe = configure_finetuning.FinetuningConfig(
      model_name, data_dir, **model_dir_lib.merge_hparams(hparams, saved)[0])
  prefix = model_dir_lib.finetuned_checkpoint(probe.model_dir, checkpoint)
  keys = model_dir_lib.SIZE_HPARAMS + FINETUNE_ARCHITECTURE_HPARAMS
  saved += model_dir_lib.saved_hparams(
      os.path.join(os.path.dirname(prefix), model_dir_lib.FINETUNE_CONFIG_FILE), keys)
  merged, sources = model_dir_lib.merge_hparams(hparams, saved)
  config = configure_finetuning.FinetuningConfig(model_name, data_dir, **merged)
  logs.log_heading(f"Exporting fine-tuned model {prefix}")
  shown = _log_hparams(config, keys, sources)
  tasks = task_builder.get_tasks(config)
  _check_label_mappings(tasks)
  model = finetuning_model.FinetuningModel(config, tasks)
  info = {"kind": "finetuned", "hparams": shown,
          "hparam_sources": {k: sources.get(k, "default") for k in shown},
          "tasks": {task.name: _task_info(task) for task in tasks}}
  vocab = model_dir_lib.find_vocab([config.vocab_file], model.bert_config.vocab_size,
                                   hint=_NO_VOCAB, explicit=hparams.get("vocab_file"))
  return ExportPlan(_finetuned_forward(model, tasks), [model], model.named_variables(),
                    prefix, model.bert_config, {}, vocab, info, _FINETUNED_HINT)


# ----------------------------------------------------------------------------
# Restore and write
# ----------------------------------------------------------------------------

def check_checkpoint_fits(prefix: str, variables: Mapping[str, tf.Variable], hint: str) -> None:
  """Fails unless every variable the export needs is in the checkpoint with its shape.

  Args:
    prefix: checkpoint prefix.
    variables: {checkpoint name: variable} the export needs.
    hint: the fix to suggest.

  Raises:
    ValueError: naming every missing or mismatched variable with its shapes.
  """
  stored = checkpointing.list_checkpoint(prefix)
  missing = [f"    {name} {list(v.shape)}" for name, v in sorted(variables.items())
             if name not in stored]
  mismatched = [f"    {name}: checkpoint {stored[name]} vs model {list(v.shape)}"
                for name, v in sorted(variables.items())
                if name in stored and stored[name] != list(v.shape)]
  if not missing and not mismatched:
    return
  lines = [f"Checkpoint {prefix} does not fit the model to export:"]
  if missing:
    lines += [f"  {len(missing)} needed variables are missing:"] + missing
  if mismatched:
    lines += [f"  {len(mismatched)} needed variables have another shape:"] + mismatched
  scopes = sorted({name.split("/", 1)[0] for name in stored if "/" in name})
  lines.append(f"  The checkpoint's top-level scopes: {', '.join(scopes) or '(none)'}.")
  lines.append("  " + hint)
  raise ValueError("\n".join(lines))


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise FileExistsError(f"--output-dir {output_dir} is a file; pass a directory path.")
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise FileExistsError(f"--output-dir {output_dir} exists and is not empty; pass "
                          "--overwrite to replace it, or choose another directory.")


def _stage_assets(plan: ExportPlan, staging: str, info: Dict[str, Any]) -> Dict[str, str]:
  """Writes the asset files into `staging`; returns {ServingModule attribute: path}."""
  os.makedirs(staging)
  contents = {"bert_config.json": plan.bert_config.to_dict(), **plan.asset_configs,
              "export_info.json": info}
  assets = {}
  for file_name, content in contents.items():
    path = os.path.join(staging, file_name)
    files.write_json(content, path)
    assets[file_name.replace(".json", "_file")] = path
  if plan.vocab_file:
    assets["vocab_file"] = os.path.join(staging, "vocab.txt")
    shutil.copyfile(plan.vocab_file, assets["vocab_file"])
  return assets


def _move_into_place(export_dir: str, output_dir: str, scratch: str) -> None:
  """Renames `export_dir` to `output_dir`; an existing one goes to `scratch` first."""
  old = None
  if os.path.isdir(output_dir):
    old = os.path.join(scratch, "replaced")
    os.rename(output_dir, old)
  try:
    os.rename(export_dir, output_dir)
  except OSError:
    if old is not None:
      os.rename(old, output_dir)
    raise


def write_saved_model(plan: ExportPlan, output_dir: str, overwrite: bool = False,
                      xla: bool = False) -> str:
  """Writes the SavedModel atomically: into a temp dir next to `output_dir`, then renamed.

  Args:
    plan: an ExportPlan whose variables are restored.
    output_dir: the SavedModel directory to create.
    overwrite: replace a non-empty `output_dir`.
    xla: compile the forward pass of `serving_default` with XLA (`jit_compile`):
      fewer, fused kernels, so much less per-op overhead at small batches
      (ELECTRA-Small, seq 128, 2 CPU threads: batch 1 31 -> 46 examples/s,
      batch 32 73 -> 78). The export then needs XLA wherever it runs:
      `tf.saved_model.load` in TensorFlow has it; TensorFlow Serving runs it
      only with `--xla_cpu_compilation_enabled=true` (without, the first
      request fails), so it is off by default. Outputs equal the plain
      export's up to float rounding.

  Returns:
    `output_dir`.

  Raises:
    FileExistsError: `output_dir` is a file, or non-empty without `overwrite`.
  """
  _check_output_dir(output_dir, overwrite)
  output_dir = os.path.abspath(output_dir)
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  scratch = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(output_dir)}-", dir=parent)
  try:
    export_dir = os.path.join(scratch, "saved_model")
    info = dict(plan.info, checkpoint=plan.checkpoint,
                global_step=_global_step(plan.checkpoint), signature=SIGNATURE_KEY, xla=xla)
    assets = _stage_assets(plan, os.path.join(scratch, "assets"), info)
    module = ServingModule(plan.forward, plan.modules,
                           plan.bert_config.max_position_embeddings, assets, xla=xla)
    concrete = module.serve.get_concrete_function()
    info["outputs"] = {name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
                       for name, spec in sorted(concrete.structured_outputs.items())}
    files.write_json(info, assets["export_info_file"])
    tf.saved_model.save(module, export_dir, signatures={SIGNATURE_KEY: concrete})
    _move_into_place(export_dir, output_dir, scratch)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  for name, spec in info["outputs"].items():
    logger.info("  output %s: %s %s", name, spec["dtype"], spec["shape"])
  logger.info("Wrote SavedModel to %s (signature %r)", output_dir, SIGNATURE_KEY)
  return output_dir


def is_finetuned(hparams: Mapping[str, Any], finetuned: Optional[bool]) -> bool:
  """Fine-tuned export when asked for, or when `--hparams` names task_names."""
  return bool(finetuned) or (finetuned is None and "task_names" in hparams)


def export_model(data_dir: str, model_name: str, output_dir: str,
                 hparams: Optional[Mapping[str, Any]] = None,
                 include_generator: bool = False, finetuned: Optional[bool] = None,
                 checkpoint: Optional[str] = None, overwrite: bool = False,
                 xla: bool = False) -> str:
  """Exports a pre-trained or fine-tuned checkpoint as a SavedModel.

  Args:
    data_dir: the `--data-dir`.
    model_name: the `--model-name`.
    output_dir: the SavedModel directory to write.
    hparams: config overrides (the parsed `--hparams`).
    include_generator: pre-trained only: add `generator_logits`.
    finetuned: True/False forces the mode; None: fine-tuned iff `task_names`
      is in `hparams`.
    checkpoint: checkpoint directory or prefix (default: see the builders).
    overwrite: replace a non-empty `output_dir`.
    xla: compile the serving forward pass with XLA (see `write_saved_model`).

  Returns:
    The absolute path of the export.

  Raises:
    cli.UsageError: `output_dir` is, contains or is inside the model dir,
      `<data_dir>/models` or the checkpoint's directory (nothing is written).
    FileExistsError, FileNotFoundError, ValueError: with the fix in the message.
  """
  hparams = dict(hparams or {})
  paths.check_export_dir(output_dir, data_dir, model_name, checkpoint)
  _check_output_dir(output_dir, overwrite)
  if is_finetuned(hparams, finetuned):
    if include_generator:
      raise ValueError("--include-generator applies to pre-trained models only: a "
                       "fine-tuned checkpoint has no generator.")
    plan = build_finetuned_export(data_dir, model_name, hparams, checkpoint)
  else:
    plan = build_pretrained_export(data_dir, model_name, hparams, include_generator,
                                   checkpoint)
  check_checkpoint_fits(plan.checkpoint, plan.variables, plan.restore_hint)
  checkpointing.restore_checkpoint(plan.checkpoint, plan.variables)
  return write_saved_model(plan, output_dir, overwrite, xla)
