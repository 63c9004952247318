"""util/workers.py and multi_worker start-up: a missing worker ends the wait with one clear
line after worker_startup_timeout_s, and SIGTERM ends it at once (TensorFlow's own
rendezvous would wait for ever, deaf to SIGTERM)."""
import signal
import socket
import subprocess
import sys

from util import cli
from tests.conftest import REPO_ROOT

# Through make_strategy and TF_CONFIG (imports TensorFlow).
_STRATEGY_SCRIPT = """
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": sys.argv[1:3]},
                                      "task": {"type": "worker", "index": 0}})
from util import cli, trainer, utils
utils.setup_logging()
sys.exit(cli.run(lambda argv: trainer.make_strategy(
    "multi_worker", worker_startup_timeout_s=int(sys.argv[3])), []))
"""
# The wait alone (no TensorFlow: starts fast).
_WAIT_SCRIPT = """
import sys
from util import cli, utils, workers
utils.setup_logging()
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
