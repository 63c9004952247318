"""Evaluates every kept checkpoint of a pre-training run: the learning curve.

    python3 experiments/pretraining_curve.py --data-dir DATA_DIR --model-name NAME
        [--hparams JSON|file.json]

`--hparams` are the run's pre-training hparams (the same as for
run_pretraining.py; `pretrain_tfrecords` may point at held-out records). Each
checkpoint in `<data-dir>/models/<model-name>` (keep them all with
`"keep_checkpoint_max": 0`) is evaluated like `"do_eval": true` does for the
latest one, and one line per checkpoint is printed: step, MLM accuracy and
loss, and for ELECTRA the discriminator's AUC, precision, recall and loss.
Nothing is written to the model dir.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import configure_pretraining  # noqa: E402
from pretrain import runner  # noqa: E402
from training import config_base  # noqa: E402
from util import cli, logs  # noqa: E402

COLUMNS = ("masked_lm_accuracy", "masked_lm_loss", "disc_auc", "disc_precision",
           "disc_recall", "disc_loss")


def checkpoints_by_step(model_dir: str) -> List[str]:
  """The checkpoint prefixes in `model_dir` (`model.ckpt-<step>`), in step order."""
  steps = []
  for path in glob.glob(os.path.join(model_dir, "model.ckpt-*.index")):
    match = re.fullmatch(r"model\.ckpt-(\d+)\.index", os.path.basename(path))
    if match:  # not the trainer-state bundles `model.ckpt-<step>.trainer_state.index`
      steps.append(int(match.group(1)))
  return [os.path.join(model_dir, f"model.ckpt-{step}") for step in sorted(steps)]


def evaluate_checkpoints(config: configure_pretraining.PretrainingConfig,
                         min_step: int = 1) -> List[Dict[str, float]]:
  """`runner.evaluate` on every checkpoint of `config.model_dir` from `min_step` on.

  Returns:
    One metrics dict (with `global_step`) per checkpoint, in step order.

  Raises:
    FileNotFoundError: the model dir has no checkpoint.
  """
  prefixes = [p for p in checkpoints_by_step(config.model_dir)
              if int(p.rsplit("-", 1)[1]) >= min_step]
  if not prefixes:
    raise FileNotFoundError(f"No checkpoint from step {min_step} on in {config.model_dir}.")
  return [runner.evaluate(config, checkpoint=p, write=False) for p in prefixes]


def format_table(curve: Sequence[Dict[str, float]]) -> str:
  """A fixed-width table: one row per evaluated checkpoint."""
  columns = [c for c in COLUMNS if any(c in point for point in curve)]
  lines = ["  ".join(["step".rjust(6)] + [c.rjust(max(len(c), 7)) for c in columns])]
  for point in curve:
    lines.append("  ".join([str(int(point["global_step"])).rjust(6)] + [
        (f"{point[c]:.3f}" if c in point else "-").rjust(max(len(c), 7)) for c in columns]))
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", required=True)
  parser.add_argument("--model-name", required=True)
  parser.add_argument("--hparams", default="{}", help="The run's hparams (JSON or .json file).")
  args = parser.parse_args(argv)
  logs.setup_logging(logging.WARNING)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")
  hparams = config_base.parse_hparams(args.hparams)
  hparams.update(do_train=False, do_eval=True)
  config = configure_pretraining.PretrainingConfig(args.model_name, args.data_dir, **hparams)
  print(format_table(evaluate_checkpoints(config)))


if __name__ == "__main__":
  sys.exit(cli.run(main))
