"""training/workers.py and multi_worker start-up: a missing worker ends the wait with one clear
line after worker_startup_timeout_s, and SIGTERM ends it at once (TensorFlow's own
rendezvous would wait for ever, deaf to SIGTERM). A bad TF_CONFIG or a taken port is one
`error:` line too, and so is a worker lost mid-training (named with its address)."""
import json
import os
import signal
import socket
import subprocess
import sys
import types

import pytest

from util import cli
from tests.conftest import REPO_ROOT

# Through make_strategy and TF_CONFIG (imports TensorFlow).
_STRATEGY_SCRIPT = """
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": sys.argv[1:3]},
                                      "task": {"type": "worker", "index": 0}})
from training import trainer
from util import cli, logs
logs.setup_logging()
sys.exit(cli.run(lambda argv: trainer.make_strategy(
    "multi_worker", worker_startup_timeout_s=int(sys.argv[3])), []))
"""
# The wait alone (no TensorFlow: starts fast).
_WAIT_SCRIPT = """
import sys
from training import workers
from util import cli, logs
logs.setup_logging()
sys.exit(cli.run(lambda argv: workers.wait_for_workers(
    sys.argv[1], [sys.argv[2]], int(sys.argv[3]), "worker 0"), []))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(script: str, timeout_s: int) -> subprocess.Popen:
  addresses = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
  return subprocess.Popen([sys.executable, "-c", script, *addresses, str(timeout_s)],
                          cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)


def test_multi_worker_gives_up_when_a_worker_never_starts():
  process = _start(_STRATEGY_SCRIPT, timeout_s=2)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 1, stderr[-3000:]
  assert "Waiting for workers: 1 of 2 connected (this is worker 0" in stderr
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Only 1 of 2 workers started within " in errors[0]
  assert "worker_startup_timeout_s=2" in errors[0] and "Traceback" not in stderr


def test_wait_for_workers_ends_on_sigterm():
  process = _start(_WAIT_SCRIPT, timeout_s=600)
  lines = []
  for line in process.stderr:  # blocks until the wait has begun
    lines.append(line)
    if line.startswith("Waiting for workers"):
      break
  process.send_signal(signal.SIGTERM)
  stderr = "".join(lines) + process.communicate(timeout=120)[1]
  assert process.returncode == cli.INTERRUPTED_EXIT, stderr[-3000:]
  assert "error: interrupted" in stderr and "Traceback" not in stderr


# Two workers: after its wait, each listens again (as TensorFlow's server would) until told.
_PAIR_SCRIPT = _WAIT_SCRIPT.replace("sys.exit(", "code = (") + """
import socket
server = socket.create_server(("", int(sys.argv[1].rsplit(":", 1)[1])))
print("done", code, file=sys.stderr, flush=True)
sys.stdin.read()
"""


def test_workers_see_each_other_before_tensorflow_starts():
  """Each waiting worker listens on its own port, so two waits both finish."""
  addresses = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
  processes = [subprocess.Popen([sys.executable, "-c", _PAIR_SCRIPT, own, other, "120"],
                                cwd=REPO_ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for own, other in (addresses, addresses[::-1])]
  try:
    for process in processes:
      lines = []
      for line in process.stderr:
        lines.append(line)
        if line.startswith("done"):
          break
      assert lines[-1] == "done 0\n", "".join(lines)
      assert "Waiting for workers: 2 of 2 connected.\n" in lines
  finally:
    for process in processes:
      process.communicate(timeout=60)


# --------------------------------------------------------------------------- TF_CONFIG mistakes

_TF_CONFIG_SCRIPT = """
import sys
from training import trainer, workers
from util import cli, logs
if sys.argv[1] == "skip_wait":  # as if the port were taken between the wait and TensorFlow
  workers.wait_for_workers = lambda *args, **kwargs: None
logs.setup_logging()
sys.exit(cli.run(lambda argv: trainer.make_strategy("multi_worker", worker_startup_timeout_s=2),
                 []))
"""


def _one_error_line(stderr):
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in stderr, stderr
  return errors[0]


@pytest.mark.parametrize("tf_config,expected", [
    ("not json", "error: TF_CONFIG is not valid JSON (Expecting value: line 1 column 1"),
    ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}',
     "error: TF_CONFIG is malformed (The tasks for job 'worker' must be a list"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": "a"}}',
     "error: TF_CONFIG is malformed (invalid literal for int()"),
    ('{"cluster": {"worker": ["localhost:1"]}}',
     'error: distribution_strategy "multi_worker" needs TF_CONFIG with a "worker"'),
    ('{"cluster": {"ps": ["localhost:1"]}, "task": {"type": "ps", "index": 0}}',
     'error: distribution_strategy "multi_worker" needs TF_CONFIG with a "worker"'),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}',
     "error: TF_CONFIG's task worker 3 is not in its cluster (worker 0)."),
    ('{"cluster": {"worker": ["localhost:1", "localhost"]}, "task": {"type": "worker", '
     '"index": 0}}', "error: TF_CONFIG gives worker 1 the address 'localhost'; expected "
     "host:port."),
    ('{"cluster": {"worker": ["localhost:1", "localhost:1"]}, "task": {"type": "worker", '
     '"index": 0}}', "error: TF_CONFIG lists localhost:1 for more than one task"),
], ids=["not_json", "tasks_not_a_list", "index_not_a_number", "no_task", "no_worker_job",
        "index_out_of_range", "no_port", "same_address_twice"])
def test_a_bad_tf_config_is_one_error_line(tf_config, expected, monkeypatch, capsys):
  monkeypatch.setenv("TF_CONFIG", tf_config)
  from training import trainer  # pylint: disable=import-outside-toplevel  (imports TensorFlow)
  assert cli.run(lambda argv: trainer.make_strategy("multi_worker"), []) == cli.USAGE_EXIT
  assert _one_error_line(capsys.readouterr().err).startswith(expected)


def test_a_port_in_use_is_one_error_line(monkeypatch, capsys):
  with socket.create_server(("", 0)) as taken:
    port = taken.getsockname()[1]
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": [f"localhost:{port}", f"localhost:{_free_port()}"]},
        "task": {"type": "worker", "index": 0}}))
    from training import trainer  # pylint: disable=import-outside-toplevel
    assert cli.run(lambda argv: trainer.make_strategy("multi_worker"), []) == cli.DATA_EXIT
  error = _one_error_line(capsys.readouterr().err)
  assert f"cannot listen on this worker's TF_CONFIG address localhost:{port}" in error


def test_a_port_taken_before_tensorflow_binds_it_is_one_error_line():
  with socket.create_server(("", 0)) as taken:
    port = taken.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"localhost:{port}", f"localhost:{_free_port()}"]},
                 "task": {"type": "worker", "index": 0}}
    process = subprocess.run([sys.executable, "-c", _TF_CONFIG_SCRIPT, "skip_wait"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)))
  assert process.returncode == cli.DATA_EXIT, process.stderr[-3000:]
  assert _one_error_line(process.stderr).startswith(
      f"error: Could not start this worker's TensorFlow server at localhost:{port} (")


# --------------------------------------------------------------------------- a lost worker

CLUSTER = {"worker": ["localhost:23470", "localhost:23471", "host2:23472"]}


def _fake_strategy(task_id=0):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec(CLUSTER), task_type="worker", task_id=task_id)
  return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize("message,lost", [
    # TensorFlow's messages, as seen when a worker was killed or stopped.
    ("Collective ops is aborted by: failed to connect to all addresses; last error: UNKNOWN: "
     "ipv4:127.0.0.1:23471: Failed to connect to remote host: Connection refused",
     "worker 1 (localhost:23471)"),
    ("Collective ops is aborted by: Socket closed\nAdditional GRPC error information from "
     "remote target /job:worker/replica:0/task:2 while calling /tensorflow.WorkerService/RecvBuf",
     "worker 2 (host2:23472)"),
    ("Error reported from /job:worker/task:0: The following tasks are unhealthy (stopped "
     "sending heartbeats):\n/job:worker/replica:0/task:1\n", "worker 1 (localhost:23471)"),
    ("Collective ops is aborted by: nothing said",
     "worker 1 (localhost:23471) or worker 2 (host2:23472)"),
])
def test_a_lost_worker_is_named_with_its_address(message, lost):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from training import trainer  # pylint: disable=import-outside-toplevel
  text = trainer.lost_worker_message(_fake_strategy(),
                                     tf.errors.UnavailableError(None, None, message), None)
  assert text == (f"{lost} is unreachable (it died, hangs or lost its connection), so worker 0 "
                  "stops too. Restart every worker to resume from the last checkpoint (same "
                  "TF_CONFIG addresses and hparams).")


def test_a_timed_out_worker_and_the_last_checkpoint(tmp_path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from model import checkpointing  # pylint: disable=import-outside-toplevel
  from training import trainer  # pylint: disable=import-outside-toplevel
  error = tf.errors.DeadlineExceededError(None, None, "Collective ops is aborted by: timeout")
  text = trainer.lost_worker_message(_fake_strategy(task_id=1), error, str(tmp_path))
  assert text.startswith("worker 0 (localhost:23470) or worker 2 (host2:23472) did not answer "
                         "within collective_timeout_s (it hangs or is far behind), so worker 1 "
                         f"stops too. {tmp_path} has no checkpoint yet (the chief writes them)")
  prefix = checkpointing.save_checkpoint(str(tmp_path), 20, {"w": tf.Variable([1.0])})
  text = trainer.lost_worker_message(_fake_strategy(), error, str(tmp_path))
  assert f"The last checkpoint is {prefix}; restart every worker to resume from it" in text
