"""distribution_strategy "multi_worker" end to end: two local worker processes.

Each script creates its strategy before anything starts the TensorFlow
runtime, which a multi-worker strategy needs (checked on every path without
training, then by real runs).

Pre-training and fine-tuning on two workers (one CPU replica each) train, exit 0
and leave the chief's checkpoint equal to a `mirrored` run over two logical CPUs
with the same seed and global batch (up to float rounding); a pre-training re-run
with more steps resumes from the checkpoint. A worker killed (SIGKILL, pre-training)
or hung (SIGSTOP, fine-tuning) mid-training ends the other with one `error:` line
naming it and the last checkpoint, and restarting every worker resumes from that
checkpoint to exactly the uninterrupted run's weights. The subprocess timeouts
only guard against hangs; no test asserts a duration.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO_ROOT, TEST_DATA, UNCASED_VOCAB, build_moby_dick_tfrecords
from tests.test_run_pretraining import checkpoint_values

HANG_GUARD_S = 600  # a run that takes longer is stuck
# Max abs difference of any weight or Adam slot from the mirrored run, at
# COMPARED_STEPS in pre-training (measured: 7.1e-7 at step 10, 1.4e-6 at step 20)
# and at the end of fine-tuning (measured: 3.0e-8).
TOLERANCE = 1e-5
COMPARED_STEPS = (10, 20)
TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 37}
PRETRAIN = {
    "model_hparam_overrides": TINY_ENCODER, "embedding_size": 16, "max_seq_length": 32,
    "generator_hidden_size": 0.5, "train_batch_size": 8, "learning_rate": 2e-3,
    "num_warmup_steps": 4, "num_train_steps": 60, "save_checkpoints_steps": 10,
    "iterations_per_loop": 1, "keep_checkpoint_max": 0, "seed": 3,
    "vocab_file": UNCASED_VOCAB, "collective_timeout_s": 10,
}
FINETUNE = {
    "model_hparam_overrides": TINY_ENCODER, "embedding_size": 16, "max_seq_length": 32,
    "train_batch_size": 8, "eval_batch_size": 8, "num_train_epochs": 12.0,
    "save_checkpoints_steps": 8, "iterations_per_loop": 1, "vocab_file": UNCASED_VOCAB,
    "init_checkpoint": None, "seed": 5, "task_names": ["sst"], "collective_timeout_s": 10,
}
# The `mirrored` reference: the script's main() with the CPU split into two logical devices.
_MIRRORED_SCRIPT = """
import importlib, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from util import cli
sys.exit(cli.run(importlib.import_module(sys.argv.pop(1)).main))
"""


# --------------------------------------------------------------------------- helpers


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(("localhost", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


class Workers:
  """`script` run as every worker of a local TF_CONFIG cluster, stderr to log files.

  `data_dir` is every worker's, or a list of one per worker.
  """

  def __init__(self, script, data_dir, model_name, hparams, log_dir, n=2):
    data_dirs = [data_dir] * n if isinstance(data_dir, str) else data_dir
    self.ports = _free_ports(n)
    self.logs = [os.path.join(log_dir, f"{model_name}_{time.monotonic_ns()}_{i}.log")
                 for i in range(n)]
    addresses = [f"localhost:{port}" for port in self.ports]
    self.processes = []
    for index, log in enumerate(self.logs):
      tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
      with open(log, "w") as stderr:
        self.processes.append(subprocess.Popen(
            [sys.executable, script, "--data-dir", data_dirs[index], "--model-name", model_name,
             "--hparams", json.dumps(dict(hparams, distribution_strategy="multi_worker"))],
            cwd=REPO_ROOT, env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.DEVNULL, stderr=stderr))

  def log(self, index):
    with open(self.logs[index], encoding="utf-8", errors="replace") as f:
      return f.read()

  def wait(self, index=None):
    """Waits for one worker (or all); returns the exit code(s)."""
    indices = range(len(self.processes)) if index is None else [index]
    deadline = time.monotonic() + HANG_GUARD_S
    try:
      codes = [self.processes[i].wait(timeout=max(1, deadline - time.monotonic()))
               for i in indices]
    except subprocess.TimeoutExpired:
      self.kill()
      pytest.fail("a worker hung:\n" + "\n".join(self.log(i)[-3000:] for i in indices))
    return codes if index is None else codes[0]

  def wait_for_line(self, index, pattern):
    """Waits until worker `index` logs a line matching `pattern`."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not re.search(pattern, self.log(index), re.MULTILINE):
      if self.processes[index].poll() is not None or time.monotonic() > deadline:
        self.kill()
        pytest.fail(f"worker {index} never logged {pattern!r}:\n{self.log(index)[-3000:]}")
      time.sleep(0.05)

  def kill(self):
    for process in self.processes:
      if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def workers(tmp_path):
  """Starts `Workers` (same arguments, without log_dir); kills leftovers at the end."""
  started = []

  def start(script, data_dir, model_name, hparams):
    started.append(Workers(script, data_dir, model_name, hparams, str(tmp_path)))
    return started[-1]
  yield start
  for group in started:
    group.kill()


def run_mirrored(script, data_dir, model_name, hparams):
  module = os.path.splitext(script)[0]
  process = subprocess.run(
      [sys.executable, "-c", _MIRRORED_SCRIPT, module, "--data-dir", data_dir, "--model-name",
       model_name, "--hparams", json.dumps(dict(hparams, distribution_strategy="mirrored"))],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
  assert process.returncode == 0, process.stderr[-3000:]
  assert "MirroredStrategy with 2 replicas" in process.stderr


def max_abs_diff(actual_prefix, expected_prefix):
  """The largest absolute difference of any variable (same names and steps required)."""
  actual, expected = checkpoint_values(actual_prefix), checkpoint_values(expected_prefix)
  assert set(actual) == set(expected)
  assert actual["global_step"] == expected["global_step"]
  return max(float(np.max(np.abs(actual[name].astype(np.float64) - value)))
             for name, value in expected.items() if value.dtype.kind == "f")


def assert_one_error_line(log, *fragments):
  errors = [line for line in log.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, log[-3000:]
  for fragment in fragments:
    assert fragment in errors[0], errors[0]
  assert "Traceback" not in log
  return errors[0]


def stop_worker_1_and_wait_for_worker_0(group, progress_pattern, signum=signal.SIGKILL):
  """Sends `signum` to worker 1 once it logged `progress_pattern`; returns worker 0's log.

  SIGKILL: a dead worker (its port refuses connections at once). SIGSTOP: a
  hung one (its connections stay open; collective_timeout_s or TensorFlow's
  heartbeat check notice it). Worker 1 is killed after worker 0 exited.
  """
  group.wait_for_line(1, progress_pattern)
  group.processes[1].send_signal(signum)
  stopped_at = time.monotonic()
  code = group.wait(0)
  print(f"worker 0 exited {time.monotonic() - stopped_at:.1f} s after worker 1 got "
        f"{signal.Signals(signum).name}")
  group.kill()
  assert code == 1, group.log(0)[-3000:]
  return group.log(0)


# --------------------------------------------------------------------------- start-up order

# Replaces make_strategy with a probe that reports whether the runtime already started.
_PROBE_SCRIPT = """
import json, sys
from tensorflow.python.eager import context
import run_finetuning, run_pretraining
from training import trainer

class Reached(Exception):
  pass

def make_strategy(*args, **kwargs):
  print("runtime started" if context.context()._context_handle is not None else "runtime idle")
  raise Reached

trainer.make_strategy = make_strategy
scripts = {"run_pretraining": run_pretraining, "run_finetuning": run_finetuning}
for script, argv in json.loads(sys.argv[1]):
  try:
    scripts[script].main(argv)
    print("no strategy")
  except Reached:
    pass
"""


def test_the_strategy_comes_before_the_tensorflow_runtime(tmp_path):
  """MultiWorkerMirroredStrategy fails once anything ran (tf.data, an eager op, a seed)."""
  data = str(tmp_path)
  runs = [("run_pretraining", dict(PRETRAIN)), ("run_pretraining", dict(PRETRAIN, seed=None)),
          ("run_pretraining", dict(PRETRAIN, debug=True)),
          ("run_finetuning", dict(FINETUNE)), ("run_finetuning", dict(FINETUNE, seed=None)),
          ("run_finetuning", dict(FINETUNE, do_train=False))]
  calls = [(script, ["--data-dir", data, "--model-name", "probe", "--hparams",
                     json.dumps(dict(hparams, distribution_strategy="multi_worker"))])
           for script, hparams in runs]
  process = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, json.dumps(calls)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
  assert process.returncode == 0, process.stderr[-3000:]
  assert process.stdout.split("\n")[:-1] == ["runtime idle"] * len(runs), process.stdout


# --------------------------------------------------------------------------- pre-training


@pytest.fixture(scope="module")
def pretrain_dir(tmp_path_factory):
  """Length-32 tfrecords of the first 100 lines of Moby-Dick, and the mirrored reference."""
  root = tmp_path_factory.mktemp("multi_worker_pretraining")
  build_moby_dick_tfrecords(str(root))
  run_mirrored("run_pretraining.py", str(root), "mirrored", PRETRAIN)
  return str(root)


def uninterrupted_run(script, data_dir, hparams, tmp_path_factory):
  """An uninterrupted two-worker run of `script` ("two_workers"); its `Workers`."""
  group = Workers(script, data_dir, "two_workers", hparams, str(tmp_path_factory.mktemp("logs")))
  try:
    group.wait()
  finally:
    group.kill()
  return group


@pytest.fixture(scope="module")
def two_worker_pretraining(pretrain_dir, tmp_path_factory):
  return uninterrupted_run("run_pretraining.py", pretrain_dir, PRETRAIN, tmp_path_factory)


def pretrain_checkpoint(data_dir, model_name, step):
  return os.path.join(data_dir, "models", model_name, f"model.ckpt-{step}")


@pytest.mark.slow
def test_two_workers_pretrain_like_mirrored_and_resume(pretrain_dir, two_worker_pretraining,
                                                       workers):
  group = two_worker_pretraining
  assert [p.returncode for p in group.processes] == [0, 0], group.log(0)[-3000:]
  for index in (0, 1):
    log = group.log(index)
    assert "Waiting for workers: 2 of 2 connected." in log
    assert "CollectiveAllReduceStrategy with 2 replicas" in log
    assert "Global batch 8 = 2 replicas × 1 micro-batches × 4 examples" in log
    assert "60/60 = 100.0%" in log
  # Later checkpoints drift apart: grappler sums the tied embeddings' gradient
  # terms in another order in the two graphs (bit-identical with its
  # arithmetic_optimization off), and after ~30 steps such a rounding
  # difference flips one token the generator samples.
  for step in COMPARED_STEPS:
    diff = max_abs_diff(pretrain_checkpoint(pretrain_dir, "two_workers", step),
                        pretrain_checkpoint(pretrain_dir, "mirrored", step))
    print(f"pre-training step {step}: max abs diff from the mirrored run {diff:.3g}")
    assert diff <= TOLERANCE, step

  group = workers("run_pretraining.py", pretrain_dir, "two_workers",
                  dict(PRETRAIN, num_train_steps=64))
  assert group.wait() == [0, 0], group.log(0)[-3000:] + group.log(1)[-3000:]
  resumed = pretrain_checkpoint(pretrain_dir, "two_workers", 60)
  for index in (0, 1):
    assert f"Resuming from {resumed} (global step 60)" in group.log(index)
    assert "64/64 = 100.0%" in group.log(index)
  assert checkpoint_values(pretrain_checkpoint(pretrain_dir, "two_workers", 64))[
      "global_step"] == 64


@pytest.mark.slow
def test_a_dead_worker_ends_pretraining_and_a_restart_resumes(pretrain_dir,
                                                              two_worker_pretraining, workers):
  group = workers("run_pretraining.py", pretrain_dir, "killed", PRETRAIN)
  log = stop_worker_1_and_wait_for_worker_0(group, r"^1[1-9]/60 = ")
  last = re.search(r"model\.ckpt-(\d+);", log)
  assert last, log[-3000:]
  step = int(last.group(1))
  assert 10 <= step < 60
  checkpoint = pretrain_checkpoint(pretrain_dir, "killed", step)
  assert_one_error_line(log, f"worker 1 (localhost:{group.ports[1]}) is unreachable",
                        f"last checkpoint is {checkpoint};", "restart every worker")

  group = workers("run_pretraining.py", pretrain_dir, "killed", PRETRAIN)
  assert group.wait() == [0, 0], group.log(0)[-3000:] + group.log(1)[-3000:]
  for index in (0, 1):
    assert f"Resuming from {checkpoint} (global step {step})" in group.log(index)
  # Exactly the uninterrupted run's weights.
  assert max_abs_diff(pretrain_checkpoint(pretrain_dir, "killed", 60),
                      pretrain_checkpoint(pretrain_dir, "two_workers", 60)) == 0


@pytest.mark.slow
def test_workers_that_do_not_share_the_model_dir_stop(pretrain_dir, two_worker_pretraining,
                                                      workers, tmp_path):
  """Worker 1 sees no checkpoint (another data dir), the chief resumes: both stop, unchanged."""
  own = tmp_path / "worker_1"
  shutil.copytree(os.path.join(pretrain_dir, "pretrain_tfrecords"), own / "pretrain_tfrecords")
  chief_dir = os.path.join(pretrain_dir, "models", "two_workers")
  before = sorted(os.listdir(chief_dir))
  group = workers("run_pretraining.py", [pretrain_dir, str(own)], "two_workers", PRETRAIN)
  assert group.wait() == [1, 1], group.log(0)[-3000:] + group.log(1)[-3000:]
  for index, model_dir in enumerate([chief_dir, str(own / "models" / "two_workers")]):
    assert_one_error_line(group.log(index), "would start from different global steps",
                          f"must find them in its model dir ({model_dir} here)")
  assert sorted(os.listdir(chief_dir)) == before
  assert not os.path.exists(own / "models" / "two_workers" / "checkpoint")


# --------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def finetune_dir(tmp_path_factory):
  """<data_dir>/finetuning_data/sst (the real sentence-polarity slice) and the mirrored run."""
  root = tmp_path_factory.mktemp("multi_worker_finetuning")
  shutil.copytree(os.path.join(TEST_DATA, "finetune", "sst_like"),
                  root / "finetuning_data" / "sst")
  run_mirrored("run_finetuning.py", str(root), "mirrored", FINETUNE)
  return str(root)


def finetune_trial_dir(data_dir, model_name):
  return os.path.join(data_dir, "models", model_name, "finetuning_models", "sst_model_1")


def finetune_steps(data_dir):
  prefix = tf.train.latest_checkpoint(finetune_trial_dir(data_dir, "mirrored"))
  return int(prefix.rsplit("-", 1)[1])


@pytest.fixture(scope="module")
def two_worker_finetuning(finetune_dir, tmp_path_factory):
  return uninterrupted_run("run_finetuning.py", finetune_dir, FINETUNE, tmp_path_factory)


@pytest.mark.slow
def test_two_workers_finetune_like_mirrored(finetune_dir, two_worker_finetuning):
  steps = finetune_steps(finetune_dir)
  group = two_worker_finetuning
  assert [p.returncode for p in group.processes] == [0, 0], group.log(0)[-3000:]
  for index in (0, 1):
    log = group.log(index)
    assert "CollectiveAllReduceStrategy with 2 replicas" in log
    assert f"{steps}/{steps} = 100.0%" in log
    assert re.search(r"^sst: accuracy: \d", log, re.MULTILINE)
  diff = max_abs_diff(os.path.join(finetune_trial_dir(finetune_dir, "two_workers"),
                                   f"model.ckpt-{steps}"),
                      os.path.join(finetune_trial_dir(finetune_dir, "mirrored"),
                                   f"model.ckpt-{steps}"))
  print(f"fine-tuning: max abs diff from the mirrored run {diff:.3g}")
  assert diff <= TOLERANCE


@pytest.mark.slow
def test_a_hung_worker_ends_finetuning_and_a_restart_resumes(finetune_dir,
                                                             two_worker_finetuning, workers):
  steps = finetune_steps(finetune_dir)
  group = workers("run_finetuning.py", finetune_dir, "killed", FINETUNE)
  log = stop_worker_1_and_wait_for_worker_0(group, rf"^10/{steps} = ", signal.SIGSTOP)
  trial_dir = finetune_trial_dir(finetune_dir, "killed")
  last = re.search(r"model\.ckpt-(\d+);", log)
  assert last, log[-3000:]
  step = int(last.group(1))
  assert 8 <= step < steps
  checkpoint = os.path.join(trial_dir, f"model.ckpt-{step}")
  assert_one_error_line(log, f"worker 1 (localhost:{group.ports[1]})",
                        f"last checkpoint is {checkpoint};")

  group = workers("run_finetuning.py", finetune_dir, "killed", FINETUNE)
  assert group.wait() == [0, 0], group.log(0)[-3000:] + group.log(1)[-3000:]
  for index in (0, 1):
    assert f"Resuming from {checkpoint} (global step {step})" in group.log(index)
  # Exactly the uninterrupted run's weights.
  assert max_abs_diff(os.path.join(trial_dir, f"model.ckpt-{steps}"),
                      os.path.join(finetune_trial_dir(finetune_dir, "two_workers"),
                                   f"model.ckpt-{steps}")) == 0
