"""Pre-trains (or evaluates) ELECTRA, a BERT-style masked LM, or Electric.

    python3 run_pretraining.py --data-dir DATA_DIR --model-name NAME [--hparams JSON|file.json]

Reads `<data-dir>/pretrain_tfrecords/pretrain_data.tfrecord*` (hparam
`pretrain_tfrecords`), writes name-based checkpoints, TensorBoard scalars and
the resolved config to `<data-dir>/models/<model-name>` and resumes from there
when re-run (see docs/cli.md#run_pretrainingpy). With `"do_train": false, "do_eval": true` it
evaluates the latest checkpoint (docs/metrics.md#pre-training-evaluation), prints the metrics and
writes them to `results/unsup_results.txt` and `.pkl` and to TensorBoard (`eval/`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
import tensorflow as tf

import configure_pretraining
from pretrain import runner
from training import config_base
from util import cli, logs

_HELP_HPARAMS = (
    ("model_size", "small, base or large"),
    ("train_batch_size", "sequences per step (the global batch)"),
    ("learning_rate", "peak learning rate (linear warm-up, then decay)"),
    ("num_train_steps", "the global step to train to; a re-run resumes"),
    ("num_warmup_steps", "linear warm-up steps"),
    ("max_seq_length", "must equal the tfrecords' length"),
    ("mask_prob", "fraction of the tokens masked or replaced"),
    ("electra_objective", "replaced-token detection; false: BERT-style masked LM"),
    ("electric_objective", "Electric (with electra_objective false)"),
    ("generator_hidden_size", "generator width, a fraction of the discriminator's"),
    ("save_checkpoints_steps", "steps between checkpoints"),
    ("keep_checkpoint_max", "checkpoints kept (0: all)"),
    ("do_eval", "evaluate the latest checkpoint (with do_train false)"),
    ("seed", "null: a random run seed, saved so that a resume is exact"),
    ("mixed_precision", '"off", "bf16" or "fp16"'),
    ("use_xla", "compile the train step with XLA"),
    ("debug", "a tiny model for a quick check; replaces an earlier debug run"),
)


def _help_epilog() -> str:
  """`--help`'s text after the flags: an example and the most used hparams with defaults."""
  lines = config_base.hparams_help(
      lambda **kw: configure_pretraining.PretrainingConfig("<model-name>", "<data-dir>", **kw),
      _HELP_HPARAMS, presets=[("debug", {"debug": True})])
  return "\n".join([
      "example:",
      "  python3 run_pretraining.py --data-dir $DATA_DIR --model-name electra_small_owt \\",
      "      --hparams '{\"num_train_steps\": 100000, \"train_batch_size\": 64}'",
      "",
      "most used hparams (--hparams '{\"name\": value, ...}' or a .json file; default as JSON,",
      "[presets that change it]):",
      *lines,
      "",
      'every hparam: README.md, sections "Pre-train" and "Hparams".'])


def main(argv: Optional[list] = None) -> None:
  """Parses the flags and runs `train_or_eval`."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=_help_epilog(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  cli.add_model_dir_flags(parser, "The name of the model being pre-trained.")
  args = parser.parse_args(argv)
  logs.setup_logging()
  tf.get_logger().setLevel("ERROR")
  hparams = config_base.parse_hparams(args.hparams)
  runner.train_or_eval(configure_pretraining.PretrainingConfig(args.model_name, args.data_dir,
                                                               **hparams))


if __name__ == "__main__":
  sys.exit(cli.run(main))
