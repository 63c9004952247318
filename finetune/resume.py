"""Resuming an interrupted fine-tuning run: which trial to continue, and from where.

A fine-tuning run trains `num_trials` trials one after the other, trial t in
`<model_dir>_<t>` (re-created when the trial starts, as in the original). While
a run with `do_train` is in progress, its chief keeps a record next to those
directories, `<model_dir>.run.json`:

    {"hparams": {<every hparam that shapes training>},
     "completed": [<dev results of each finished trial, or null without do_eval>]}

written when training starts and after each trial, and deleted when the last
trial is done. A re-run of the same command finds the record and resumes: the
completed trials are not run again (their results are kept), the interrupted
trial continues from its latest checkpoint with its optimizer state, global
step, data position and run seed (so the final weights and metrics equal an
uninterrupted run's), and the remaining trials follow. A re-run whose hparams
differ is refused with the differences named: the two runs are never mixed.
Without a record (no run yet, or the last one finished) a run starts over, as
the original does.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Optional

from model import checkpointing
from util import cli, files

logger = logging.getLogger("electra")

RECORD_SUFFIX = ".run.json"
# Hparams that do not change what training computes (evaluation, outputs,
# logging, where the cluster waits); a resumed run may change them.
OUTPUT_ONLY_HPARAMS = frozenset({
    "do_eval", "write_test_outputs", "n_writes_test", "num_trials", "keep_all_models",
    "eval_batch_size", "predict_batch_size", "xla_predict", "log_examples",
    "use_tfrecords_if_existing", "qa_na_threshold", "n_best_size", "max_answer_length",
    "iterations_per_loop", "save_checkpoints_steps", "worker_startup_timeout_s",
    "collective_timeout_s", "qa_eval_file", "qa_preds_file", "qa_na_file", "results_txt",
    "results_pkl", "test_predictions",
})


@dataclasses.dataclass
class ResumePlan:
  """Where a fine-tuning run starts.

  Attributes:
    first_trial: the first trial to run (1 for a fresh run).
    completed: results (or None without do_eval) of the trials before it.
    checkpoint: the latest checkpoint of `first_trial`'s directory to continue
      from, or None to start that trial afresh.
  """
  first_trial: int = 1
  completed: List[Optional[Dict[str, Any]]] = dataclasses.field(default_factory=list)
  checkpoint: Optional[str] = None

  @property
  def results(self) -> List[Dict[str, Any]]:
    """The dev results of the completed trials that were evaluated."""
    return [r for r in self.completed if r is not None]


def record_path(config) -> str:
  """`<model_dir>.run.json`, next to the trial directories and the lock file."""
  return config.model_dir + RECORD_SUFFIX


def training_hparams(config) -> Dict[str, Any]:
  """The hparams a resumed run must share with the interrupted one (JSON-normalized)."""
  hparams = {k: v for k, v in config.to_dict().items() if k not in OUTPUT_ONLY_HPARAMS}
  return json.loads(json.dumps(hparams))


def plan(config) -> ResumePlan:
  """Reads the record of an interrupted run, if any, and says where to start.

  It only reads files, so every worker of a cluster can call it before the
  strategy's rendezvous, when no worker has changed anything yet.

  Raises:
    cli.DataError: the record is not a JSON object of the expected form.
    cli.UsageError: the record's run had other hparams (each difference named).
  """
  path = record_path(config)
  if not config.do_train or not os.path.exists(path):
    return ResumePlan()
  record = _load_record(path)
  first_trial = len(record["completed"]) + 1
  trial_dir = f"{config.model_dir}_{first_trial}"
  checkpoint = (checkpointing.latest_checkpoint(trial_dir) if os.path.isdir(trial_dir)
                else None)
  differences = _differences(record["hparams"], training_hparams(config))
  if differences:
    where = (f"trial {first_trial}, last checkpoint {checkpoint}" if checkpoint
             else f"before trial {first_trial}")
    raise cli.UsageError(
        f"{path} records an interrupted fine-tuning run ({where}) with other hparams: "
        f"{'; '.join(differences)}. Re-run with the same hparams to resume it, or delete "
        f"{path} to start over (the trial directories {config.model_dir}_<n> are then "
        "re-created).")
  return ResumePlan(first_trial, record["completed"], checkpoint)


def _load_record(path: str) -> Dict[str, Any]:
  error: Optional[Exception] = None
  try:
    record = files.load_json(path)
  except (ValueError, UnicodeDecodeError) as e:
    record, error = None, e
  if (not isinstance(record, dict) or not isinstance(record.get("hparams"), dict)
      or not isinstance(record.get("completed"), list)):
    detail = f" ({error})" if error is not None else ""
    raise cli.DataError(f"{path}, the record of an interrupted fine-tuning run, is damaged"
                        f"{detail}; delete it to start the run over.")
  return record


def _differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
  missing = "(not set)"
  return [f"{key}: was {json.dumps(saved.get(key, missing))}, now "
          f"{json.dumps(current.get(key, missing))}"
          for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]


class RunRecord:
  """The chief's record of a run in progress (`plan` reads it back).

  Args:
    config: the `FinetuningConfig`.
    resume_plan: where the run starts (its completed trials are kept).
  """

  def __init__(self, config, resume_plan: ResumePlan):
    self._path = record_path(config)
    self._hparams = training_hparams(config)
    self._completed = list(resume_plan.completed)

  def start(self) -> None:
    """Writes the record: training starts (or resumes)."""
    self._write()

  def trial_done(self, results: Optional[Dict[str, Any]]) -> None:
    """Records a finished trial (its dev results, or None without do_eval)."""
    self._completed.append(results)
    self._write()

  def finish(self) -> None:
    """Deletes the record: the run is complete, a re-run starts over."""
    if os.path.exists(self._path):
      os.remove(self._path)

  def _write(self) -> None:
    files.write_json({"hparams": self._hparams, "completed": self._completed}, self._path)
