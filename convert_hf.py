"""Converts ELECTRA checkpoints to and from Hugging Face `transformers` directories.

The command line of `export/hf.py` (which `export_model.py --format hf` shares).

    python3 convert_hf.py export --data-dir DATA_DIR --model-name NAME --output-dir OUT
        [--model-type discriminator|generator|token_classification|encoder]
        [--task TASK] [--hparams JSON|file.json] [--checkpoint PATH]
        [--vocab-file PATH] [--overwrite]
    python3 convert_hf.py import --hf-dir HF_DIR --output-dir DATA_DIR/models/NAME
        [--model-type ...] [--generator-hf-dir HF_GENERATOR_DIR] [--task TASK]
        [--overwrite]

`export` reads a TF1 name-based checkpoint (ours or a released Google one;
default: the latest in `<data-dir>/models/<model-name>`) and writes
`model.safetensors`, `config.json`, `vocab.txt` and `tokenizer_config.json`,
loadable with `ElectraForPreTraining` / `ElectraForMaskedLM` /
`ElectraForTokenClassification` / `ElectraModel.from_pretrained(OUT)`.
Neither torch nor transformers is needed. The sizes come from `--hparams` as
for `run_pretraining.py`, merged over the architecture hparams saved in
`<model dir>/pretrain_config.json` (explicit values win). `token_classification`
(and `encoder` with `--task`) reads a fine-tuned checkpoint (default: the only
`finetuning_models/<task>_model_<trial>` directory) and the task's label
mapping.

An `export` `--output-dir` may not be, contain or lie inside
`<data-dir>/models`, nor be or contain the checkpoint's directory; an `import` `--output-dir`
may not overlap the HF directories it reads, nor be a whole `models` or data
directory.

`import` reads a `save_pretrained` directory (`model.safetensors`, sharded
safetensors, or `pytorch_model.bin` when torch is installed) and writes an
original-format checkpoint `model.ckpt-0` (with `global_step`, without Adam
slots, like the released checkpoints) plus `vocab.txt`, `bert_config.json`,
`pretrain_config.json` (where `run_finetuning.py` reads the sizes from) and
`hparams.json` (the size hparams, e.g. for `run_pretraining.py`). A discriminator plus
`--generator-hf-dir` gives a full pre-training checkpoint; a generator alone
becomes a BERT-style MLM model (`electra/*` + `generator_predictions/*`).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
from export import hf
from model import hf_conversion
from util import cli, logs


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  exp = commands.add_parser("export", help="TF1 checkpoint -> Hugging Face directory.")
  cli.add_model_dir_flags(exp, "The (pre-trained) model: <data-dir>/models/<model-name>.",
                          "as for run_pretraining.py / run_finetuning.py.")
  exp.add_argument("--output-dir", required=True, help="Hugging Face directory to write.")
  exp.add_argument("--model-type", default="discriminator", choices=hf_conversion.MODEL_TYPES,
                   help="What to export (default: discriminator).")
  exp.add_argument("--task", default=None, help="Fine-tuned task name (token_classification, "
                   "or encoder of a fine-tuned model); default: the first task_names entry.")
  exp.add_argument("--checkpoint", default=None, help="Checkpoint directory or prefix "
                   "(default: latest in the model dir, or the fine-tuned model dir).")
  exp.add_argument("--vocab-file", default=None, help="vocab.txt to ship (default: the model "
                   "dir's, else <data-dir>/vocab.txt).")
  exp.add_argument("--overwrite", action="store_true", help="Replace files in a non-empty "
                   "--output-dir.")
  imp = commands.add_parser("import", help="Hugging Face directory -> TF1 checkpoint.")
  imp.add_argument("--hf-dir", required=True, help="A save_pretrained directory.")
  imp.add_argument("--output-dir", required=True, help="Model directory to write, "
                   "normally <data-dir>/models/<name>.")
  imp.add_argument("--model-type", default=None, choices=hf_conversion.MODEL_TYPES,
                   help="Read the model as this type (default: from config.json "
                   "architectures); encoder drops any head.")
  imp.add_argument("--generator-hf-dir", default=None, help="An ElectraForMaskedLM "
                   "directory to add as the generator (full pre-training checkpoint).")
  imp.add_argument("--task", default="chunk", help="Task name of a token classification "
                   "head (default: chunk).")
  imp.add_argument("--overwrite", action="store_true", help="Delete a non-empty "
                   "--output-dir first.")
  return parser


def main(argv: Optional[List[str]] = None) -> None:
  args = build_parser().parse_args(argv)
  logs.setup_logging()
  if args.command == "export":
    hf.export(args)
  else:
    hf.import_(args)


if __name__ == "__main__":
  sys.exit(cli.run(main))
