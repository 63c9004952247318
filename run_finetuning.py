"""Fine-tunes a pre-trained ELECTRA model on downstream tasks (GLUE, QA, chunking, custom).

    python3 run_finetuning.py --data-dir DATA_DIR --model-name NAME [--hparams JSON|file.json]

Reads `<data-dir>/finetuning_data/<task>/...` and the pre-trained model at
`<data-dir>/models/<model-name>` (hparam `init_checkpoint`); runs `num_trials`
train+eval trials in `<data-dir>/models/<model-name>/finetuning_models/<tasks>_model_<trial>`
and writes `results/<tasks>_results.txt` and `.pkl` there (see docs/cli.md#run_finetuningpy); with
more than one trial the text file ends with one summary line per task and metric
(median, mean, std, min and max over the trials).
Sizes the user leaves out of `--hparams` come from the pre-trained model's
`pretrain_config.json` when it has one (model/model_dir.py).
With `"write_test_outputs": true` it also writes test-set predictions
(`test_predictions/<task>_<split>_<trial>_predictions.pkl`) and, for GLUE
tasks, the benchmark's submission TSVs in `results/<tasks>_glue_submission_<trial>/`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
import tensorflow as tf

import configure_finetuning
from finetune import resume, trials
from training import config_base, trainer as trainer_lib
from util import cli, logs

logger = logging.getLogger("electra")

_HELP_HPARAMS = (
    ("task_names", "tasks to learn (several: multi-task)"),
    ("task_configs", "custom tasks over your own files"),
    ("model_size", "small, base or large; must match the pre-trained model"),
    ("init_checkpoint", "pre-trained weights (null: random init)"),
    ("learning_rate", "peak learning rate"),
    ("layerwise_lr_decay", "per-layer learning-rate decay (<= 0: off)"),
    ("num_train_epochs", "passes over the training data"),
    ("max_seq_length", "longest input in word pieces"),
    ("train_batch_size", "examples per step"),
    ("num_trials", "train+eval runs (several: median, mean, std, min, max)"),
    ("write_test_outputs", "write test-set predictions (GLUE: submission TSVs)"),
    ("seed", "null: unseeded"),
    ("mixed_precision", '"off", "bf16" or "fp16"'),
    ("debug", "a tiny model and small data for a quick check"),
)
# Task and size presets, listed where they change a default.
_HELP_PRESETS = (
    ("other tasks", {"task_names": ["sst"]}),
    ("rte, sts", {"task_names": ["rte"]}),
    ("QA tasks", {"task_names": ["squad"]}),
    ("model_size large", {"model_size": "large"}),
    ("debug", {"debug": True}),
)


def _help_epilog() -> str:
  """`--help`'s text after the flags: an example and the most used hparams with defaults."""
  lines = config_base.hparams_help(
      lambda **kw: configure_finetuning.FinetuningConfig("<model-name>", "<data-dir>", **kw),
      _HELP_HPARAMS, presets=_HELP_PRESETS)
  return "\n".join([
      "example:",
      "  python3 run_finetuning.py --data-dir $DATA_DIR --model-name electra_small \\",
      "      --hparams '{\"task_names\": [\"rte\", \"sst\"], \"num_trials\": 3}'",
      "",
      "most used hparams (--hparams '{\"name\": value, ...}' or a .json file; default as JSON,",
      "[presets that change it]):",
      *lines,
      "",
      'every hparam: README.md, sections "Fine-tune" (custom tasks: "Custom tasks without',
      'code") and "Hparams".'])


def main(argv: Optional[list] = None) -> trials.Results:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=_help_epilog(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  cli.add_model_dir_flags(parser, "The name of the pre-trained model.")
  args = parser.parse_args(argv)
  logs.setup_logging()
  tf.get_logger().setLevel("ERROR")
  hparams = config_base.parse_hparams(args.hparams)
  config = trials.build_config(args.data_dir, args.model_name, hparams)
  # Read before the strategy's rendezvous: no worker has written anything yet.
  resume_plan = resume.plan(config)
  # Before anything starts the TensorFlow runtime (multi_worker needs that).
  strategy = trainer_lib.make_strategy(config.distribution_strategy, config.tpu_name,
                                       config.tpu_zone, config.gcp_project,
                                       worker_startup_timeout_s=config.worker_startup_timeout_s,
                                       collective_timeout_s=config.collective_timeout_s)
  logger.info(trainer_lib.describe_devices(strategy))
  with trainer_lib.report_lost_workers(strategy):
    return trials.run_finetuning(config, strategy, resume_plan)


if __name__ == "__main__":
  sys.exit(cli.run(main))
