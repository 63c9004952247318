"""Exports an ELECTRA checkpoint as a TensorFlow SavedModel for serving.

    python3 export_model.py --data-dir DATA_DIR --model-name NAME --output-dir OUT
        [--hparams JSON|file.json] [--include-generator] [--checkpoint PATH]
        [--finetuned] [--overwrite] [--xla] [--format saved_model|hf]

Pre-trained models (the default) read the latest checkpoint of
`<data-dir>/models/<model-name>` (or `--checkpoint`); fine-tuned models
(`--finetuned`, implied by `"task_names"` in `--hparams`) read the fine-tuned
model directory. The signature `serving_default`, the assets and the safety
rules for OUT are described in `export/saved_model.py` (the machinery; this
script is its command line) and in docs/cli.md#export_modelpy.

`--format hf` writes Hugging Face `transformers` directories instead, as
`convert_hf.py export` does (`export/hf.py`).
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
  parser.add_argument("--xla", action="store_true", help="Compile the serving forward pass "
                      "with XLA: faster at small batches on CPU; TensorFlow Serving then needs "
                      "--xla_cpu_compilation_enabled=true.")
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
                           args.overwrite, args.xla)


if __name__ == "__main__":
  sys.exit(cli.run(main))
