"""Hugging Face `transformers` directories: export a checkpoint, import one.

The one home of the Hugging Face conversion's orchestration (the name and
layout mapping itself is `model/hf_conversion.py`); `convert_hf.py` is its
command line and `export_model.py --format hf` an alias (`export_like_saved_model`).

`export` reads a TF1 name-based checkpoint (ours or a released Google one;
default: the latest in `<data-dir>/models/<model-name>`) and writes
`model.safetensors`, `config.json`, `vocab.txt` and `tokenizer_config.json`,
loadable with `ElectraForPreTraining` / `ElectraForMaskedLM` /
`ElectraForTokenClassification` / `ElectraModel.from_pretrained(OUT)`; neither
torch nor transformers is needed. The sizes come from `--hparams`, merged over
the architecture hparams saved in `<model dir>/pretrain_config.json` (explicit
values win). `token_classification` (and `encoder` with `--task`) reads a
fine-tuned checkpoint and the task's label mapping.

`import_` reads a `save_pretrained` directory and writes an original-format
checkpoint `model.ckpt-0` (with `global_step`, without Adam slots, like the
released checkpoints) plus `vocab.txt`, `bert_config.json`,
`pretrain_config.json` and `hparams.json`.

Both take the parsed flags of `convert_hf.py export` / `import`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import types
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import configure_finetuning
import configure_pretraining
from model import hf_conversion, sizes
from model import model_dir as model_dir_lib
from model.modeling import BertConfig
from training import config_base
from util import cli, files, logs, paths

logger = logging.getLogger("electra")

HPARAMS_FILE = "hparams.json"
BERT_CONFIG_FILE = "bert_config.json"
FINETUNE_HPARAMS = model_dir_lib.SIZE_HPARAMS + ("task_names", "task_configs",
                                                 "do_lower_case")
PRETRAIN_HPARAMS = model_dir_lib.ARCHITECTURE_HPARAMS + ("do_lower_case",)
_SIZE_PRESETS = {256: "small", 768: "base", 1024: "large"}  # hidden size -> model_size.


# ----------------------------------------------------------------------------
# Hparams
# ----------------------------------------------------------------------------

def _saved(path: str, keys: Sequence[str]) -> model_dir_lib.Sources:
  """`model_dir.saved_hparams`, logging what a saved config contributes."""
  saved = model_dir_lib.saved_hparams(path, keys)
  for source, values in saved:
    if values:
      logger.info("Using hparams %s from %s", json.dumps(values, sort_keys=True), source)
  return saved


def size_hparams(bert_config: BertConfig, embedding_size: int) -> Dict[str, Any]:
  """Minimal hparams under which `get_bert_config` rebuilds `bert_config` exactly.

  `model_size` is the preset of the same hidden size (else "base", whose
  presets change nothing); `model_hparam_overrides` holds only the fields
  that differ from what the preset derives (docs/hparams.md#model-sizes); `embedding_size`
  is set when the preset would give another width.

  Args:
    bert_config: the transformer's config.
    embedding_size: E.

  Returns:
    Hparams valid for both PretrainingConfig and FinetuningConfig.

  Raises:
    ValueError: if the result does not rebuild the config (a bug guard).
  """
  model_size = _SIZE_PRESETS.get(bert_config.hidden_size, "base")
  hparams: Dict[str, Any] = {"model_size": model_size}
  if bert_config.vocab_size != 30522:
    hparams["vocab_size"] = bert_config.vocab_size
  target = bert_config.to_dict()
  overrides: Dict[str, Any] = {}
  # Sizes first: heads and FFN width follow an overridden hidden size (docs/hparams.md#model-sizes).
  for keys in (("hidden_size", "num_hidden_layers"), tuple(target)):
    derived = sizes.get_bert_config(types.SimpleNamespace(
        model_size=model_size, vocab_size=bert_config.vocab_size,
        model_hparam_overrides=overrides)).to_dict()
    overrides.update({k: target[k] for k in keys
                      if k != "vocab_size" and derived.get(k) != target[k]})
  if overrides:
    hparams["model_hparam_overrides"] = dict(sorted(overrides.items()))
  preset_embedding = 128 if model_size == "small" else bert_config.hidden_size
  if embedding_size != preset_embedding:
    hparams["embedding_size"] = embedding_size
  config = configure_finetuning.FinetuningConfig("check", "/nonexistent", **hparams)
  rebuilt = sizes.get_model_bert_config(config)
  if rebuilt != bert_config or (config.embedding_size or rebuilt.hidden_size) != embedding_size:
    raise ValueError(f"Internal error: hparams {hparams} rebuild {rebuilt} (E "
                     f"{config.embedding_size}), not {bert_config} (E {embedding_size}).")
  return hparams


def generator_hparams(hparams: Mapping[str, Any], bert_config: BertConfig,
                      generator_config: BertConfig) -> Dict[str, Any]:
  """`generator_hidden_size` / `generator_layers` fractions that rebuild the generator.

  Raises:
    ValueError: the generator's heads, FFN width or other fields are not
      what `get_generator_config` derives (docs/hparams.md#generator-size), so this code
      base cannot build it for pre-training.
  """
  out = {"generator_hidden_size": generator_config.hidden_size / bert_config.hidden_size,
         "generator_layers": generator_config.num_hidden_layers / bert_config.num_hidden_layers}
  config = configure_pretraining.PretrainingConfig("check", "/nonexistent", **hparams, **out)
  derived = sizes.get_generator_config(config, bert_config)
  if derived != generator_config:
    diffs = {k: (v, generator_config.to_dict().get(k)) for k, v in derived.to_dict().items()
             if generator_config.to_dict().get(k) != v}
    raise ValueError("The generator cannot be rebuilt by this code base's pre-training "
                     "(generator heads = max(1, hidden // 64), intermediate = 4 * hidden, "
                     f"other fields as the discriminator): derived vs HF {diffs}. Import the "
                     "discriminator alone for fine-tuning.")
  return out


# ----------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------

def _label_names(config, task_name: str) -> List[str]:
  """Tag names by id from the tagging task's label mapping (written by fine-tuning)."""
  # Same path as finetune/tagging/tagging_tasks.TaggingTask.label_mapping_path.
  path = os.path.join(config.preprocessed_data_dir,
                      ("debug_" if config.debug else "") + task_name + "_label_mapping.pkl")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"The label mapping {path} written by run_finetuning.py for task "
                            f"{task_name} is missing; it names the tags. Copy it there, or "
                            "set preprocessed_data_dir in --hparams. (Only tagging tasks map to "
                            "ElectraForTokenClassification; for a classification task export "
                            "--model-type encoder.)")
  mapping = files.load_pickle(path)
  return [tag for tag, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


def _pretraining_config(data_dir: str, model_name: str,
                        hparams: Dict[str, Any]) -> configure_pretraining.PretrainingConfig:
  """`hparams` over the architecture hparams saved with the pre-trained model."""
  config_path = os.path.join(model_dir_lib.pretrained_dir(data_dir, model_name),
                             model_dir_lib.PRETRAIN_CONFIG_FILE)
  merged, _ = model_dir_lib.merge_hparams(hparams, _saved(config_path, PRETRAIN_HPARAMS))
  return configure_pretraining.PretrainingConfig(model_name, data_dir, **merged)


def _export_pretrained(args, hparams: Dict[str, Any]) -> Tuple[hf_conversion.HFModel, str,
                                                                List[str], bool]:
  model_dir = model_dir_lib.pretrained_dir(args.data_dir, args.model_name)
  config_path = os.path.join(model_dir, model_dir_lib.PRETRAIN_CONFIG_FILE)
  config = _pretraining_config(args.data_dir, args.model_name, hparams)
  bert_config = sizes.get_model_bert_config(config)
  embedding = config.embedding_size or bert_config.hidden_size  # The shared tables' width.
  has_objective = config.electra_objective or config.electric_objective
  if config.electric_objective and not config.two_tower_generator:
    raise ValueError("electric_objective needs two_tower_generator "
                     "(docs/hparams.md#pre-training-presets), but two_tower_generator is false "
                     "(from --hparams or the saved config); pass both in --hparams.")
  arrays = hf_conversion.CheckpointArrays(
      model_dir_lib.pretrained_checkpoint(model_dir, args.checkpoint))
  model_dir_lib.check_encoder_fits(arrays.prefix, bert_config, config.embedding_size,
                                   what="checkpoint")
  kwargs: Dict[str, Any] = {}
  if args.model_type == "discriminator":
    if not has_objective:
      raise ValueError("The model has no discriminator (electra_objective and "
                       "electric_objective are false): export --model-type generator.")
    if config.electric_objective:
      logger.warning("Electric: the exported logits are the head output s_t; Electric's "
                     "P(noise) also adds log q_t + log(mask_prob / (1 - mask_prob)).")
  elif args.model_type == "generator":
    if config.uniform_generator:
      raise ValueError("uniform_generator: the model has no generator to export.")
    if config.two_tower_generator:
      raise ValueError("Electric's two-tower cloze generator has no transformers "
                       "counterpart; export the discriminator or the encoder.")
    if has_objective and config.untied_generator:
      bert_config = sizes.get_generator_config(config, bert_config)
      kwargs["encoder_scope"] = "generator"
      if config.untied_generator_embeddings:  # Own tables, as wide as the generator.
        kwargs["embeddings_scope"] = "generator/embeddings"
        embedding = bert_config.hidden_size
  model = hf_conversion.to_hf(arrays, args.model_type, bert_config, embedding, **kwargs)
  vocab = [os.path.join(model_dir, "vocab.txt"),
           model_dir_lib.load_saved_config(config_path).get("vocab_file"), config.vocab_file]
  return model, arrays.prefix, vocab, config.do_lower_case


def _export_finetuned(args, hparams: Dict[str, Any]) -> Tuple[hf_conversion.HFModel, str,
                                                               List[str], bool]:
  if args.task and "task_names" not in hparams:
    hparams = {**hparams, "task_names": [args.task]}
  saved = model_dir_lib.pretrained_sources(
      model_dir_lib.pretrained_dir(args.data_dir, args.model_name))
  probe = configure_finetuning.FinetuningConfig(
      args.model_name, args.data_dir, **model_dir_lib.merge_hparams(hparams, saved)[0])
  arrays = hf_conversion.CheckpointArrays(model_dir_lib.finetuned_checkpoint(probe.model_dir,
                                                                             args.checkpoint))
  saved += _saved(os.path.join(os.path.dirname(arrays.prefix),
                               model_dir_lib.FINETUNE_CONFIG_FILE), FINETUNE_HPARAMS)
  merged, _ = model_dir_lib.merge_hparams(hparams, saved)
  config = configure_finetuning.FinetuningConfig(args.model_name, args.data_dir, **merged)
  bert_config = sizes.get_model_bert_config(config)
  model_dir_lib.check_encoder_fits(arrays.prefix, bert_config, config.embedding_size,
                                   what="checkpoint")
  embedding = config.embedding_size or bert_config.hidden_size
  task = args.task or config.task_names[0]
  if task not in config.task_names:
    raise ValueError(f"--task {task} is not among the fine-tuned tasks {config.task_names}.")
  labels = None
  if args.model_type == "token_classification":
    if len(config.task_names) > 1 and not args.task:
      raise ValueError(f"The model has several tasks {config.task_names}: pass --task.")
    labels = _label_names(config, task)
  else:
    logger.warning("Exporting the encoder only: the task heads (%s) are not exported.",
                   ", ".join(config.task_names))
  model = hf_conversion.to_hf(arrays, args.model_type, bert_config, embedding, task_name=task,
                              labels=labels)
  return model, arrays.prefix, [config.vocab_file], config.do_lower_case


def export(args: argparse.Namespace) -> List[str]:
  """The `export` subcommand; returns the files written."""
  paths.check_export_dir(args.output_dir, args.data_dir, args.model_name, args.checkpoint)
  hparams = config_base.parse_hparams(args.hparams)
  finetuned = args.model_type == "token_classification" or (
      args.model_type == "encoder" and (args.task or "task_names" in hparams))
  build = _export_finetuned if finetuned else _export_pretrained
  model, prefix, vocab_candidates, do_lower_case = build(args, hparams)
  vocab = model_dir_lib.find_vocab(vocab_candidates, required=True,
                                   hint="; pass --vocab-file with the model's vocab.txt.",
                                   explicit=args.vocab_file or hparams.get("vocab_file"))
  logs.log_heading(f"Writing {hf_conversion.ARCHITECTURES[args.model_type]} from {prefix}")
  written = hf_conversion.save_hf_dir(args.output_dir, model, vocab, do_lower_case,
                                      args.overwrite)
  logger.info("Wrote %d tensors: %s", len(model.tensors), ", ".join(written))
  return written


# ----------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------

def _check_import_output(output_dir: str, hf_dir: str, generator_hf_dir: Optional[str]) -> None:
  """Refuses an import `--output-dir` that overlaps its inputs or holds other models.

  With `--overwrite` the output dir is deleted first: it must not be, contain
  or lie inside an HF input, nor be `<data-dir>/models` or a data dir.

  Raises:
    cli.UsageError: one line naming the paths.
  """
  paths.check_output_apart(output_dir, "--output-dir", [
      (hf_dir, "the --hf-dir"), (generator_hf_dir, "the --generator-hf-dir")])
  absolute = os.path.abspath(output_dir)
  if os.path.basename(absolute) == "models" or os.path.isdir(os.path.join(absolute, "models")):
    raise cli.UsageError(f"--output-dir {output_dir} is a models directory or a data dir: "
                         "an import writes one model, into <data-dir>/models/<name>.")


def _prepare_output_dir(output_dir: str, overwrite: bool) -> Tuple[str, str]:
  """Checks/cleans OUT; returns (data_dir, model_name) for OUT = <data_dir>/models/<name>."""
  output_dir = os.path.abspath(output_dir)
  if os.path.isdir(output_dir) and os.listdir(output_dir):
    if not overwrite:
      raise FileExistsError(f"{output_dir} is not empty; pass --overwrite to delete it first, "
                            "or choose another --output-dir.")
    files.rmkdir(output_dir)
  parent = os.path.dirname(output_dir)
  if os.path.basename(parent) != "models":
    logger.warning("%s is not <data-dir>/models/<name>; run_finetuning.py and "
                   "run_pretraining.py look for models there.", output_dir)
    return parent, os.path.basename(output_dir)
  return os.path.dirname(parent), os.path.basename(output_dir)


def _read_hf(hf_dir: str, model_type: Optional[str], task: str, **scopes: str
             ) -> Tuple[hf_conversion.HFDirectory, hf_conversion.ImportedModel]:
  loaded = hf_conversion.load_hf_dir(hf_dir)
  logger.info("Read %d tensors from %s", len(loaded.tensors), loaded.weights_file)
  return loaded, hf_conversion.from_hf(loaded.tensors, loaded.config, model_type, task,
                                       source=hf_dir, **scopes)


def import_(args: argparse.Namespace) -> str:
  """The `import` subcommand; returns the checkpoint prefix written."""
  _check_import_output(args.output_dir, args.hf_dir, args.generator_hf_dir)
  loaded, imported = _read_hf(args.hf_dir, args.model_type, args.task)
  hparams = size_hparams(imported.bert_config, imported.embedding_size)
  variables = imported.variables
  if args.generator_hf_dir:
    if imported.model_type != "discriminator":
      raise ValueError(f"--generator-hf-dir needs a discriminator in --hf-dir, got "
                       f"{imported.model_type}.")
    _, generator = _read_hf(args.generator_hf_dir, "generator", args.task,
                            encoder_scope="generator", embeddings_scope="generator/embeddings")
    variables, untied = hf_conversion.combine_generator(imported, generator)
    hparams.update(generator_hparams(hparams, imported.bert_config, generator.bert_config))
    if untied:
      hparams["untied_generator_embeddings"] = True
  elif imported.model_type == "generator":
    # A BERT-style MLM model (docs/checkpoints.md#pre-training-variants).
    hparams["electra_objective"] = False
  if not loaded.do_lower_case:
    hparams["do_lower_case"] = False
  if loaded.vocab_file:
    hf_conversion.check_vocab_size(loaded.vocab_file, imported.bert_config.vocab_size)
  data_dir, name = _prepare_output_dir(args.output_dir, args.overwrite)
  output_dir = os.path.abspath(args.output_dir)
  prefix = hf_conversion.write_checkpoint(output_dir, variables)
  _write_import_files(output_dir, data_dir, name, hparams, imported, loaded, args.task)
  _log_next_steps(output_dir, data_dir, name, hparams, imported, args)
  return prefix


def _write_import_files(output_dir: str, data_dir: str, name: str, hparams: Dict[str, Any],
                        imported: hf_conversion.ImportedModel,
                        loaded: hf_conversion.HFDirectory, task: str) -> None:
  if loaded.vocab_file:
    shutil.copyfile(loaded.vocab_file, os.path.join(output_dir, "vocab.txt"))
  else:
    logger.warning("%s has no vocab.txt; fine-tuning will use <data-dir>/vocab.txt.",
                   loaded.weights_file)
  files.write_json(imported.bert_config.to_dict(), os.path.join(output_dir, BERT_CONFIG_FILE))
  files.write_json(hparams, os.path.join(output_dir, HPARAMS_FILE))
  configure_pretraining.PretrainingConfig(name, data_dir, **hparams).write_json(
      os.path.join(output_dir, model_dir_lib.PRETRAIN_CONFIG_FILE))
  if imported.labels is not None:
    size = {k: v for k, v in hparams.items()
            if k in model_dir_lib.SIZE_HPARAMS + ("do_lower_case",)}
    config = configure_finetuning.FinetuningConfig(name, data_dir, task_names=[task], **size)
    # Where fine-tuning `task` on this model reads its tag ids (tagging_tasks.py).
    relative = os.path.relpath(config.preprocessed_data_dir,
                               os.path.join(data_dir, "models", name))
    path = os.path.join(output_dir, relative, task + "_label_mapping.pkl")
    files.write_pickle({label: i for i, label in enumerate(imported.labels)}, path)
    logger.info("Wrote the %s label mapping (%d tags) to %s", task, len(imported.labels), path)


def _log_next_steps(output_dir: str, data_dir: str, name: str, hparams: Dict[str, Any],
                    imported: hf_conversion.ImportedModel, args: argparse.Namespace) -> None:
  tasks = [args.task] if imported.labels is not None else ["<task>"]
  example = json.dumps({"task_names": tasks})  # Sizes: from the pretrain_config.json written.
  logger.info("Imported %s (%s) into %s with hparams %s", args.hf_dir, imported.model_type,
              output_dir, json.dumps(hparams, sort_keys=True))
  logger.info("Fine-tune with:\n  python3 run_finetuning.py --data-dir %s --model-name %s "
              "--hparams '%s'", data_dir, name, example)
  if args.generator_hf_dir or imported.model_type == "generator":
    logger.info("Continue pre-training with:\n  python3 run_pretraining.py --data-dir %s "
                "--model-name %s --hparams %s", data_dir, name,
                os.path.join(output_dir, HPARAMS_FILE))
  elif imported.model_type == "discriminator":
    logger.info("Pre-training cannot resume from a discriminator alone; import it with "
                "--generator-hf-dir to get the generator too.")


# ----------------------------------------------------------------------------
# export_model.py --format hf
# ----------------------------------------------------------------------------

def export_like_saved_model(data_dir: str, model_name: str, output_dir: str,
                            hparams: Mapping[str, Any], include_generator: bool,
                            finetuned: bool, checkpoint: Optional[str],
                            overwrite: bool) -> List[str]:
  """What `export_model.py --format hf` writes, through `export` (one home for HF export).

  Pre-trained: `output_dir` holds ElectraForPreTraining (ElectraModel for a
  model without a discriminator, e.g. a BERT-style MLM) and, with
  `include_generator`, `output_dir/generator` holds ElectraForMaskedLM.
  Fine-tuned: the encoder (ElectraModel) of the first task; the task heads do
  not map to transformers' heads (`convert_hf.py export --model-type
  token_classification` exports a tagging head).

  Returns:
    The files written.
  """
  if finetuned and include_generator:
    raise ValueError("--include-generator applies to pre-trained models only: a "
                     "fine-tuned checkpoint has no generator.")
  flags = dict(data_dir=data_dir, model_name=model_name, checkpoint=checkpoint, task=None,
               hparams=json.dumps(dict(hparams)), vocab_file=None, overwrite=overwrite)
  if finetuned:
    return export(argparse.Namespace(output_dir=output_dir, model_type="encoder", **flags))
  config = _pretraining_config(data_dir, model_name, dict(hparams))
  has_discriminator = config.electra_objective or config.electric_objective
  written = export(argparse.Namespace(
      output_dir=output_dir, model_type="discriminator" if has_discriminator else "encoder",
      **flags))
  if include_generator:
    written += export(argparse.Namespace(output_dir=os.path.join(output_dir, "generator"),
                                         model_type="generator", **flags))
  return written
