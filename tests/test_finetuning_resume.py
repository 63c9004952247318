"""Fine-tuning resume: an interrupted run, re-run, ends where an uninterrupted one does.

A run stopped by SIGTERM (mid-trial, after its checkpoint) or killed with kill -9
(from its last periodic checkpoint) is re-run with the same command; the final
fine-tuned weights and the dev metrics must equal those of a run that was never
interrupted. A re-run with other hparams is refused without touching anything; a
re-run of a finished run trains again, as the original.
"""
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from finetune import trials

from finetune import resume
from model import checkpointing
import run_finetuning
from util import cli
from tests.conftest import REPO_ROOT, TEST_DATA, UNCASED_VOCAB, tree_state

SST_LIKE = {"name": "sst_like", "type": "classification", "text_a_column": 0,
            "label_column": 1, "labels": ["0", "1"]}
# 30 training examples padded to 32, batch 8: 4 steps per epoch, 160 steps per trial.
HPARAMS = {"model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 2,
                                      "num_attention_heads": 2, "intermediate_size": 37},
           "embedding_size": 16, "max_seq_length": 32, "num_train_epochs": 40.0,
           "train_batch_size": 8, "eval_batch_size": 8, "predict_batch_size": 8,
           "vocab_file": UNCASED_VOCAB, "init_checkpoint": None, "seed": 5,
           "task_names": ["sst_like"], "task_configs": [SST_LIKE], "iterations_per_loop": 1,
           "learning_rate": 1e-3}
STEPS = 160


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("ft_resume")
  shutil.copytree(os.path.join(TEST_DATA, "finetune", "sst_like"),
                  root / "finetuning_data" / "sst_like")
  return str(root)


def config_of(data_dir, model_name, **overrides):
  return trials.build_config(data_dir, model_name, dict(HPARAMS, **overrides))


@pytest.fixture(scope="module")
def reference(data_dir):
  """Two uninterrupted trials, run as a user runs them: (config, results).

  In a fresh process: the variable initializers of a seeded run draw other numbers in
  a process where earlier tests already drew from TensorFlow's global generator.
  """
  process = start(data_dir, "reference", num_trials=2)
  _, stderr = process.communicate(timeout=600)
  assert process.returncode == 0, stderr[-3000:]
  config = config_of(data_dir, "reference", num_trials=2)
  with open(config.results_pkl, "rb") as f:
    return config, pickle.load(f)


def trial_dir(config, trial):
  return f"{config.model_dir}_{trial}"


def final_weights(directory):
  prefix = checkpointing.latest_checkpoint(directory)
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_same_weights(directory, expected_directory):
  actual, expected = final_weights(directory), final_weights(expected_directory)
  assert set(actual) == set(expected)
  assert actual["global_step"] == expected["global_step"] == STEPS
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-6, err_msg=name)


def assert_same_results(actual, expected):
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected):
    assert got["sst_like"]["accuracy"] == want["sst_like"]["accuracy"]
    assert got["sst_like"]["loss"] == pytest.approx(want["sst_like"]["loss"], rel=1e-4)


def start(data_dir, model_name, **overrides):
  command = [sys.executable, os.path.join(REPO_ROOT, "run_finetuning.py"), "--data-dir",
             data_dir, "--model-name", model_name, "--hparams",
             json.dumps(dict(HPARAMS, **overrides))]
  env = dict(os.environ)
  env.pop("ELECTRA_TRACEBACK", None)
  return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env)


def saved_step(directory):
  latest = checkpointing.latest_checkpoint(directory) if os.path.isdir(directory) else None
  return checkpointing.checkpoint_step(latest) if latest else -1


def wait_for(condition, process, what, limit=300):
  """Polls `condition` while `process` runs (a hang guard, not a timing assertion)."""
  deadline = time.monotonic() + limit
  while not condition():
    assert process.poll() is None, f"exited while waiting for {what}: {process.stderr.read()}"
    assert time.monotonic() < deadline, f"gave up waiting for {what}"
    time.sleep(0.01)


@pytest.mark.slow
def test_sigterm_mid_trial_then_rerun_equals_an_uninterrupted_run(data_dir, reference):
  """Two trials; SIGTERM at a random step of trial 2; the re-run resumes trial 2 only."""
  ref_config, ref_results = reference
  config = config_of(data_dir, "sigterm", num_trials=2)
  process = start(data_dir, "sigterm", num_trials=2)
  wait_for(lambda: saved_step(trial_dir(config, 2)) == 0, process, "trial 2's step-0 save")
  time.sleep(random.uniform(0.0, 1.0))  # a random step of trial 2
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == cli.INTERRUPTED_EXIT, stderr[-3000:]
  stopped_at = saved_step(trial_dir(config, 2))
  assert 0 < stopped_at < STEPS, stderr[-3000:]
  assert (f"SIGTERM: stopped at global step {stopped_at} after saving a checkpoint in "
          f"{trial_dir(config, 2)}; re-run to resume.") in stderr
  assert os.path.exists(resume.record_path(config))
  trial_1 = final_weights(trial_dir(config, 1))

  results = run_finetuning.main(["--data-dir", data_dir, "--model-name", "sigterm",
                                 "--hparams", json.dumps(dict(HPARAMS, num_trials=2))])
  assert_same_results(results, ref_results)
  for trial in (1, 2):
    assert_same_weights(trial_dir(config, trial), trial_dir(ref_config, trial))
  # Trial 1 was not trained again; the record is gone (a finished run).
  for name, value in final_weights(trial_dir(config, 1)).items():
    np.testing.assert_array_equal(value, trial_1[name])
  assert not os.path.exists(resume.record_path(config))
  with open(config.results_txt) as f, open(ref_config.results_txt) as g:
    assert f.read() == g.read()


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_from_the_last_checkpoint(data_dir, reference):
  ref_config, ref_results = reference
  config = config_of(data_dir, "killed")
  process = start(data_dir, "killed", save_checkpoints_steps=7)
  target = 7 * random.randint(1, 10)
  wait_for(lambda: saved_step(trial_dir(config, 1)) >= target, process, f"step {target}")
  process.send_signal(signal.SIGKILL)
  assert process.wait(timeout=60) == -signal.SIGKILL
  process.stderr.close()
  killed_at = saved_step(trial_dir(config, 1))
  assert killed_at >= target

  # Other training hparams: refused, nothing touched.
  before = tree_state(data_dir)
  with pytest.raises(cli.UsageError, match=(
      f"records an interrupted fine-tuning run \\(trial 1, last checkpoint "
      f".*model.ckpt-{killed_at}\\) with other hparams: learning_rate: was 0.001, now 0.002. "
      "Re-run with the same hparams to resume it")):
    trials.run_finetuning(config_of(data_dir, "killed", learning_rate=2e-3))
  assert tree_state(data_dir) == before

  # The same command (output-only hparams may differ) resumes and ends as the reference.
  results = trials.run_finetuning(config_of(data_dir, "killed",
                                                    save_checkpoints_steps=1000))
  assert_same_results(results, ref_results[:1])
  assert_same_weights(trial_dir(config, 1), trial_dir(ref_config, 1))


def test_rerun_of_a_finished_run_trains_again(data_dir, electra_log):
  config = config_of(data_dir, "finished", num_train_epochs=1.0)
  first = trials.run_finetuning(config)
  assert not os.path.exists(resume.record_path(config))
  electra_log.clear()
  again = trials.run_finetuning(config)
  assert "Resuming" not in electra_log.text
  assert "Training for 4 steps" in electra_log.text and "4/4 = 100.0%" in electra_log.text
  assert again == first  # seeded: the same numbers again


def test_init_checkpoint_inside_a_trial_dir_is_refused_before_anything_changes(data_dir):
  config = config_of(data_dir, "own_init", num_train_epochs=1.0)
  trials.run_finetuning(config)
  inside = os.path.join(trial_dir(config, 1))
  before = tree_state(data_dir)
  for init in (inside, os.path.join(inside, "model.ckpt-4")):
    with pytest.raises(cli.UsageError, match=(
        f"init_checkpoint {init} lies in {inside}, a trial directory that this run deletes "
        f"and re-creates before training. Copy it out first \\(e.g. cp -r {inside} (\\S+)\\) "
        "and set \"init_checkpoint\": \"\\1\"")) as error:
      trials.run_finetuning(config_of(data_dir, "own_init", num_train_epochs=1.0,
                                              init_checkpoint=init))
  assert tree_state(data_dir) == before
  # The advice works: the copy is outside the trial directories.
  copy = str(error.value).split("cp -r ")[1].split(" ")[1].rstrip(")")
  assert copy == os.path.join(data_dir, "models", "own_init", "init_sst_like_model_1")
  shutil.copytree(inside, copy)
  trials.run_finetuning(config_of(data_dir, "own_init", num_train_epochs=1.0,
                                          init_checkpoint=copy))
