"""A fine-tuning run: `num_trials` train/eval trials of the configured tasks.

What `run_finetuning.py` does, as a library (the script is its command line):
`run_finetuning(config)` checks the tasks, the model settings, the
`init_checkpoint` (size and vocabulary) and every input file, takes the run's
lock, featurizes (or finds cached) every dataset, then trains and evaluates
trial after trial in `finetuning_models/<tasks>_model_<trial>` with
`finetune.model_runner.ModelRunner`, writing `results/<tasks>_results.{txt,pkl}`
after each trial (with summary lines over the trials) and, when asked, test-set
predictions and GLUE submission files. An interrupted run resumes
(`finetune.resume`). `build_config` adds the sizes saved with the pre-trained
model to the user's hparams.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

import configure_finetuning
from finetune import glue_submission, preprocessing, resume, task_builder
from finetune.model_runner import (ModelRunner, check_data_files, check_model_settings,
                                   prepare_inputs, resolve_init_checkpoint)
from model import model_dir as model_dir_lib
from model import sizes
from training import trainer as trainer_lib
from util import cli, files, locking, logs

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
  scorer's order (docs/cli.md#run_finetuningpy); with more than one trial, then one
  `summary_lines` line per task and metric (beyond the original). The pickle
  holds the per-trial list only, as the original's. Both files are replaced
  atomically.
  """
  logger.info("Writing results to %s", config.results_txt)
  files.write_pickle(results, config.results_pkl)
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
  with files.atomic_write(config.results_txt) as f:
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
  """Fails before featurizing if `init_checkpoint` is missing, of another size, or was
  trained with another vocabulary than `vocab_file`."""
  prefix = resolve_init_checkpoint(config)
  if prefix is None:
    return
  saved = os.path.join(model_dir_lib.pretrained_dir(config.data_dir, config.model_name),
                       model_dir_lib.PRETRAIN_CONFIG_FILE)
  hint = (f" (or leave them out: the sizes saved in {saved} apply to those --hparams does "
          "not set)" if os.path.isfile(saved) else "")
  model_dir_lib.check_encoder_fits(prefix, sizes.get_model_bert_config(config),
                                   config.embedding_size, hint)
  model_dir_lib.check_vocab_matches(prefix, config.vocab_file)


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


def check_init_checkpoint_outside_trials(config: configure_finetuning.FinetuningConfig) -> None:
  """Refuses an `init_checkpoint` inside a trial directory this run deletes and re-creates.

  Raises:
    cli.UsageError: naming the trial directory and where to copy the checkpoint.
  """
  if not config.do_train or not config.init_checkpoint:
    return
  trial_dirs = os.path.dirname(os.path.abspath(config.model_dir))
  trial_prefix = os.path.basename(config.model_dir) + "_"
  path = os.path.realpath(config.init_checkpoint)
  while path != os.path.dirname(path):
    name = os.path.basename(path)
    if (os.path.dirname(path) == os.path.realpath(trial_dirs) and name.startswith(trial_prefix)
        and name[len(trial_prefix):].isdigit()):
      copy_to = os.path.join(os.path.dirname(trial_dirs), "init_" + name)
      raise cli.UsageError(
          f"init_checkpoint {config.init_checkpoint} lies in {path}, a trial directory that "
          f"this run deletes and re-creates before training. Copy it out first (e.g. "
          f"cp -r {path} {copy_to}) and set \"init_checkpoint\": \"{copy_to}\".")
    path = os.path.dirname(path)


def run_finetuning(config: configure_finetuning.FinetuningConfig,
                   strategy: Optional[tf.distribute.Strategy] = None,
                   resume_plan: Optional[resume.ResumePlan] = None) -> Results:
  """The original's `run_finetuning`: `num_trials` train/eval runs (forever if < 0).

  A re-run of an interrupted run resumes it (`finetune.resume`).

  Args:
    config: the `FinetuningConfig`.
    strategy: a `tf.distribute` strategy, or None for one device.
    resume_plan: where to start, read before the strategy was created (every
      worker of a cluster must decide alike); None: `resume.plan(config)`.

  Returns:
    The results list, one `{task: {metric: value}}` per evaluated trial.

  Raises:
    FileNotFoundError: missing task data or `init_checkpoint` (before any training).
    DataError: a malformed input file, naming file and line (before any training).
    ValueError: invalid settings (see `ModelRunner`, `check_model_settings`), or
      an interrupted run with other hparams to resume.
    util.locking.LockedError: another process fine-tunes the same tasks of this model.
  """
  heading_info = f"model={config.model_name}, trial 1/{config.num_trials}"

  def heading(message: str) -> None:
    logs.log_heading(f"{message}: {heading_info}")  # the original always says "trial 1/<n>"

  heading("Config")
  for line in config.dump_lines():
    logger.info(line)
  logger.info("")
  tasks = task_builder.get_tasks(config)
  check_model_settings(config)
  if config.do_train:
    check_init_checkpoint_outside_trials(config)
    check_init_checkpoint(config)  # Fail before featurizing if it is missing or misfits.
  check_data_files(config, tasks)  # Missing files fail before anything is written.
  if resume_plan is None:
    resume_plan = resume.plan(config)
  preprocessor = preprocessing.Preprocessor(config, tasks)
  if strategy is not None and not trainer_lib.is_chief(strategy):
    prepare_inputs(config, tasks, preprocessor)
    return _run_trials(config, tasks, preprocessor, strategy, heading, resume_plan)
  # One run on these tasks of this model at a time, taken before anything is
  # written: the trial dirs are re-created and the feature caches
  # (`preprocessed_data_dir`) rewritten, which a running run reads every epoch.
  with locking.exclusive_lock(config.model_dir + ".lock",
                              f"fine-tuning of {','.join(config.task_names)} "
                              f"({config.model_dir}_<trial>, {config.preprocessed_data_dir})"):
    # Every input file is read (and featurized) before the first training step, so
    # that a bad dev/test file fails now rather than after training.
    prepare_inputs(config, tasks, preprocessor)
    return _run_trials(config, tasks, preprocessor, strategy, heading, resume_plan)


def _run_trials(config: configure_finetuning.FinetuningConfig, tasks, preprocessor,
                strategy: Optional[tf.distribute.Strategy], heading,
                resume_plan: resume.ResumePlan) -> Results:
  """The trial loop of `run_finetuning`, from `resume_plan.first_trial` on."""
  chief = strategy is None or trainer_lib.is_chief(strategy)
  record = resume.RunRecord(config, resume_plan) if config.do_train and chief else None
  results: Results = list(resume_plan.results)
  _log_resume(config, resume_plan)
  if record is not None:
    record.start()
  trial = resume_plan.first_trial
  while config.num_trials < 0 or trial <= config.num_trials:
    model_dir = f"{config.model_dir}_{trial}"
    resuming = (config.do_train and trial == resume_plan.first_trial
                and resume_plan.checkpoint is not None)
    if config.do_train and chief and not resuming:
      files.rmkdir(model_dir)
    runner = ModelRunner(config, tasks, model_dir, trial, strategy, preprocessor,
                         resume=resuming)
    if config.do_train:
      heading("Start training")
      runner.train()
      logger.info("")
    trial_results = None
    if config.do_eval:
      heading("Run dev set evaluation")
      trial_results = runner.evaluate()
      results.append(trial_results)
      write_results(config, results)
      if config.write_test_outputs and trial <= config.n_writes_test:
        heading("Running on the test set and writing the predictions")
        runner.write_test_outputs(trial)
        write_glue_submission(config, trial)
    if record is not None:
      record.trial_done(trial_results)
    if trial != config.num_trials and not config.keep_all_models and chief:
      files.rmrf(model_dir)
    trial += 1
  if record is not None:
    record.finish()
  return results


def _log_resume(config: configure_finetuning.FinetuningConfig,
                resume_plan: resume.ResumePlan) -> None:
  if resume_plan.first_trial == 1 and resume_plan.checkpoint is None:
    return
  done = (f"trials 1-{resume_plan.first_trial - 1} are done (results kept)"
          if resume_plan.first_trial > 1 else "no trial was finished")
  where = (f"trial {resume_plan.first_trial} continues from {resume_plan.checkpoint}"
           if resume_plan.checkpoint else f"trial {resume_plan.first_trial} starts afresh")
  logger.info("Resuming the interrupted fine-tuning run recorded in %s: %s; %s.",
              resume.record_path(config), done, where)
