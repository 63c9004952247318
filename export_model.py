"""Exports an ELECTRA checkpoint as a TensorFlow SavedModel for serving.

    python3 export_model.py --data-dir DATA_DIR --model-name NAME --output-dir OUT
        [--hparams JSON|file.json] [--include-generator] [--checkpoint PATH]
        [--finetuned] [--overwrite]

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

`--format hf` writes Hugging Face `transformers` directories instead, as
`convert_hf.py export` does (`export/hf.py`). The SavedModel machinery is
`export/saved_model.py`; this script is its command line.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
import tensorflow as tf

from export import hf, saved_model
from training import config_base
from util import cli, logs, paths

def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  cli.add_model_dir_flags(parser, "The name of the (pre-trained) model: its checkpoints are "
                          "in <data-dir>/models/<model-name>.",
                          "as for run_pretraining.py / run_finetuning.py.")
  parser.add_argument("--output-dir", required=True, help="SavedModel directory to write.")
  parser.add_argument("--include-generator", action="store_true", help="Also export "
                      "generator_logits [batch, seq, vocab] (pre-trained models).")
  parser.add_argument("--finetuned", action="store_true", default=None, help="Export a "
                      "fine-tuned model (implied by task_names in --hparams).")
  parser.add_argument("--checkpoint", default=None, help="Checkpoint directory or prefix "
                      "(default: latest in <data-dir>/models/<model-name>, or the "
                      "fine-tuned model directory).")
  parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty "
                      "--output-dir.")
  parser.add_argument("--format", default="saved_model", choices=("saved_model", "hf"),
                      help="saved_model (TF serving), or hf: Hugging Face transformers "
                      "directories (model.safetensors, config.json, vocab.txt, "
                      "tokenizer_config.json) that need neither TF nor this code base.")
  args = parser.parse_args(argv)
  logs.setup_logging()
  tf.get_logger().setLevel("ERROR")
  hparams = config_base.parse_hparams(args.hparams)
  if args.format == "hf":  # An alias of convert_hf.py export: one home for HF export.
    paths.check_export_dir(args.output_dir, args.data_dir, args.model_name, args.checkpoint)
    hf.export_like_saved_model(args.data_dir, args.model_name, args.output_dir, hparams,
                               args.include_generator,
                               saved_model.is_finetuned(hparams, args.finetuned),
                               args.checkpoint, args.overwrite)
    return
  saved_model.export_model(args.data_dir, args.model_name, args.output_dir, hparams,
                           args.include_generator, args.finetuned, args.checkpoint,
                           args.overwrite)


if __name__ == "__main__":
  sys.exit(cli.run(main))
