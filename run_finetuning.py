"""Fine-tunes a pre-trained ELECTRA model on downstream tasks (GLUE, QA, chunking, custom).

    python3 run_finetuning.py --data-dir DATA_DIR --model-name NAME [--hparams JSON|file.json]

Reads `<data-dir>/finetuning_data/<task>/...` and the pre-trained model at
`<data-dir>/models/<model-name>` (hparam `init_checkpoint`); runs `num_trials`
train+eval trials in `<data-dir>/models/<model-name>/finetuning_models/<tasks>_model_<trial>`
and writes `results/<tasks>_results.txt` and `.pkl` there (spec: cli.md §4).
With `"write_test_outputs": true` it also writes test-set predictions
(`test_predictions/<task>_<split>_<trial>_predictions.pkl`) and, for GLUE
tasks, the benchmark's submission TSVs in `results/<tasks>_glue_submission_<trial>/`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Dict, List, Optional

import tensorflow as tf

import configure_finetuning
from finetune import glue_submission, preprocessing, task_builder
from finetune.model_runner import ModelRunner, check_data_files, resolve_init_checkpoint
from util import cli, config_base, locking, trainer as trainer_lib, utils

logger = logging.getLogger("electra")

Results = List[Dict[str, Dict[str, Any]]]


def write_results(config: configure_finetuning.FinetuningConfig, results: Results) -> None:
  """Writes every trial's results so far: `results_pkl` (the list) and `results_txt`.

  One text line per (trial, task): `<task>: <metric>: <value:.2f> - ...` in the
  scorer's order (cli.md §4). Both files are replaced atomically.
  """
  logger.info("Writing results to %s", config.results_txt)
  utils.write_pickle(results, config.results_pkl)
  lines = []
  for trial_results in results:
    for task_name, task_results in trial_results.items():
      if task_name in ("time", "global_step"):
        continue
      lines.append(task_name + ": " + " - ".join(
          f"{key}: {value:.2f}" for key, value in task_results.items()))
  with utils.atomic_write(config.results_txt) as f:
    f.write("".join(line + "\n" for line in lines))


def glue_submission_dir(config: configure_finetuning.FinetuningConfig, trial: int) -> str:
  """`<results dir>/<tasks>_glue_submission_<trial>` next to the results files."""
  return os.path.join(os.path.dirname(config.results_txt),
                      ",".join(config.task_names) + f"_glue_submission_{trial}")


def write_glue_submission(config: configure_finetuning.FinetuningConfig, trial: int) -> List[str]:
  """GLUE submission TSVs from this trial's test pickles (beyond the original)."""
  glue_tasks = {task_name for task_name, _ in glue_submission.SUBMISSION_FILES}
  if not glue_tasks & set(config.task_names):
    return []
  try:
    return glue_submission.write_glue_submission(config, trial, glue_submission_dir(config, trial))
  except ValueError as e:  # e.g. a test file whose index column has gaps
    logger.warning("Could not write the GLUE submission files: %s", e)
    return []


def run_finetuning(config: configure_finetuning.FinetuningConfig,
                   strategy: Optional[tf.distribute.Strategy] = None) -> Results:
  """The original's `run_finetuning`: `num_trials` train/eval runs (forever if < 0).

  Args:
    config: the `FinetuningConfig`.
    strategy: a `tf.distribute` strategy, or None for one device.

  Returns:
    The results list, one `{task: {metric: value}}` per evaluated trial.

  Raises:
    FileNotFoundError: missing task data or `init_checkpoint`.
    ValueError: invalid settings (see `ModelRunner`).
    util.locking.LockedError: another process fine-tunes the same tasks of this model.
  """
  heading_info = f"model={config.model_name}, trial 1/{config.num_trials}"

  def heading(message: str) -> None:
    utils.log_heading(f"{message}: {heading_info}")  # cli.md §4: always "trial 1/<n>"

  heading("Config")
  for line in config.dump_lines():
    logger.info(line)
  logger.info("")
  tasks = task_builder.get_tasks(config)
  check_data_files(config, tasks)
  if config.do_train:
    resolve_init_checkpoint(config)  # Fail before featurizing if it is missing.
  preprocessor = preprocessing.Preprocessor(config, tasks)
  if not config.do_train or (strategy is not None and not trainer_lib.is_chief(strategy)):
    return _run_trials(config, tasks, preprocessor, strategy, heading)
  # One fine-tuning of these tasks per model at a time: the trial dirs are re-created.
  with locking.exclusive_lock(config.model_dir + ".lock",
                              f"fine-tuning model dir {config.model_dir}_<trial>"):
    return _run_trials(config, tasks, preprocessor, strategy, heading)


def _run_trials(config: configure_finetuning.FinetuningConfig, tasks, preprocessor,
                strategy: Optional[tf.distribute.Strategy], heading) -> Results:
  """The trial loop of `run_finetuning`."""
  results: Results = []
  trial = 1
  while config.num_trials < 0 or trial <= config.num_trials:
    model_dir = f"{config.model_dir}_{trial}"
    if config.do_train:
      utils.rmkdir(model_dir)
    runner = ModelRunner(config, tasks, model_dir, trial, strategy, preprocessor)
    if config.do_train:
      heading("Start training")
      runner.train()
      logger.info("")
    if config.do_eval:
      heading("Run dev set evaluation")
      results.append(runner.evaluate())
      write_results(config, results)
      if config.write_test_outputs and trial <= config.n_writes_test:
        heading("Running on the test set and writing the predictions")
        runner.write_test_outputs(trial)
        write_glue_submission(config, trial)
    if trial != config.num_trials and not config.keep_all_models:
      utils.rmrf(model_dir)
    trial += 1
  return results


def main(argv: Optional[list] = None) -> Results:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", required=True,
                      help="Location of data files (model weights, etc).")
  parser.add_argument("--model-name", required=True, help="The name of the pre-trained model.")
  parser.add_argument("--hparams", default="{}",
                      help="JSON dict of model hyperparameters, or a path to a .json file.")
  args = parser.parse_args(argv)
  utils.setup_logging()
  tf.get_logger().setLevel("ERROR")
  hparams = config_base.parse_hparams(args.hparams)
  config = configure_finetuning.FinetuningConfig(args.model_name, args.data_dir, **hparams)
  strategy = trainer_lib.make_strategy(config.distribution_strategy, config.tpu_name,
                                       config.tpu_zone, config.gcp_project,
                                       worker_startup_timeout_s=config.worker_startup_timeout_s)
  logger.info(trainer_lib.describe_devices(strategy))
  return run_finetuning(config, strategy)


if __name__ == "__main__":
  sys.exit(cli.run(main))
