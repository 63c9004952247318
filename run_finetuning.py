"""Fine-tunes a pre-trained ELECTRA model on downstream tasks (GLUE, QA, chunking, custom).

    python3 run_finetuning.py --data-dir DATA_DIR --model-name NAME [--hparams JSON|file.json]

Reads `<data-dir>/finetuning_data/<task>/...` and the pre-trained model at
`<data-dir>/models/<model-name>` (hparam `init_checkpoint`); runs `num_trials`
train+eval trials in `<data-dir>/models/<model-name>/finetuning_models/<tasks>_model_<trial>`
and writes `results/<tasks>_results.txt` and `.pkl` there (spec: cli.md §4); with more
than one trial the text file ends with one summary line per task and metric
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
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from util import tf_startup  # noqa: F401  (first: prints TensorFlow's start-up banners once)
import tensorflow as tf

import configure_finetuning
from finetune import glue_submission, preprocessing, task_builder
from finetune.model_runner import (ModelRunner, check_model_settings, prepare_inputs,
                                   resolve_init_checkpoint)
from model import model_dir as model_dir_lib
from util import cli, config_base, locking, trainer as trainer_lib, training_utils, utils

logger = logging.getLogger("electra")

Results = List[Dict[str, Dict[str, Any]]]


SUMMARY_STATISTICS = ("median", "mean", "std", "min", "max")


def summarize_trials(results: Results) -> List[Tuple[str, str, int, Dict[str, float]]]:
  """Statistics of each task's metrics over the trials (beyond the original).

  Args:
    results: one `{task: {metric: value}}` per trial.

  Returns:
    (task, metric, number of trials, {statistic: value}) in first-seen order,
    statistics as in `SUMMARY_STATISTICS`; `std` is the sample standard
    deviation (ddof 1). Non-numeric values are left out.
  """
  values: Dict[Tuple[str, str], List[float]] = {}
  for trial_results in results:
    for task_name, task_results in trial_results.items():
      if task_name in ("time", "global_step"):
        continue
      for metric, value in task_results.items():
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
          values.setdefault((task_name, metric), []).append(float(value))
  summaries = []
  for (task_name, metric), trial_values in values.items():
    array = np.array(trial_values, dtype=np.float64)
    stats = {"median": float(np.median(array)), "mean": float(np.mean(array)),
             "std": float(np.std(array, ddof=1)) if len(array) > 1 else 0.0,
             "min": float(np.min(array)), "max": float(np.max(array))}
    summaries.append((task_name, metric, len(array), stats))
  return summaries


def summary_lines(results: Results) -> List[str]:
  """`<task> <metric> over <n> trials: median <v:.2f> - mean ... - max <v:.2f>` lines."""
  return [f"{task_name} {metric} over {n} trials: " + " - ".join(
      f"{name} {stats[name]:.2f}" for name in SUMMARY_STATISTICS)
          for task_name, metric, n, stats in summarize_trials(results)]


def write_results(config: configure_finetuning.FinetuningConfig, results: Results) -> None:
  """Writes every trial's results so far: `results_pkl` (the list) and `results_txt`.

  One text line per (trial, task): `<task>: <metric>: <value:.2f> - ...` in the
  scorer's order (cli.md §4); with more than one trial, then one
  `summary_lines` line per task and metric (beyond the original). The pickle
  holds the per-trial list only, as the original's. Both files are replaced
  atomically.
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
  if len(results) > 1:
    summaries = summary_lines(results)
    for line in summaries:
      logger.info("%s", line)
    lines += summaries
  with utils.atomic_write(config.results_txt) as f:
    f.write("".join(line + "\n" for line in lines))


def build_config(data_dir: str, model_name: str,
                 hparams: Dict[str, Any]) -> configure_finetuning.FinetuningConfig:
  """The FinetuningConfig of `hparams` plus the pre-trained model's saved sizes.

  Size hparams that `hparams` leaves out are taken from
  `<data_dir>/models/<model_name>/pretrain_config.json` when it exists
  (`model_dir.inherit_pretrained_hparams`); explicit values win.
  """
  merged, _ = model_dir_lib.inherit_pretrained_hparams(
      model_dir_lib.pretrained_dir(data_dir, model_name), hparams)
  return configure_finetuning.FinetuningConfig(model_name, data_dir, **merged)


def check_init_checkpoint(config: configure_finetuning.FinetuningConfig) -> None:
  """Fails before featurizing if `init_checkpoint` is missing or of another size."""
  prefix = resolve_init_checkpoint(config)
  if prefix is None:
    return
  saved = os.path.join(model_dir_lib.pretrained_dir(config.data_dir, config.model_name),
                       model_dir_lib.PRETRAIN_CONFIG_FILE)
  hint = (f" (or leave them out: the sizes saved in {saved} apply to those --hparams does "
          "not set)" if os.path.isfile(saved) else "")
  model_dir_lib.check_encoder_fits(prefix, training_utils.get_model_bert_config(config),
                                   config.embedding_size, hint)


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
    FileNotFoundError: missing task data or `init_checkpoint` (before any training).
    DataError: a malformed input file, naming file and line (before any training).
    ValueError: invalid settings (see `ModelRunner`, `check_model_settings`).
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
  check_model_settings(config)
  if config.do_train:
    check_init_checkpoint(config)  # Fail before featurizing if it is missing or misfits.
  preprocessor = preprocessing.Preprocessor(config, tasks)
  # Every input file is read (and featurized) before the first training step, so
  # that a bad dev/test file fails now rather than after training.
  prepare_inputs(config, tasks, preprocessor)
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
  config = build_config(args.data_dir, args.model_name, hparams)
  strategy = trainer_lib.make_strategy(config.distribution_strategy, config.tpu_name,
                                       config.tpu_zone, config.gcp_project,
                                       worker_startup_timeout_s=config.worker_startup_timeout_s)
  logger.info(trainer_lib.describe_devices(strategy))
  return run_finetuning(config, strategy)


if __name__ == "__main__":
  sys.exit(cli.run(main))
