"""util/locking.py: one trainer per model dir, stale locks taken over, others refused."""
import json
import os
import socket
import subprocess
import sys

import pytest

from util import cli, locking
from tests.conftest import REPO_ROOT

_HOLD_SCRIPT = """
import sys
from util import locking
with locking.exclusive_lock(sys.argv[1], "model dir m"):
  print("locked", flush=True)
  sys.stdin.readline()
"""


def test_second_writer_is_refused_and_the_lock_is_released_after(tmp_path):
  path = str(tmp_path / "m" / locking.LOCK_FILENAME)
  with locking.exclusive_lock(path, "model dir m"):
    owner = json.loads(open(path).read())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    with pytest.raises(locking.LockedError) as error:
      with locking.exclusive_lock(path, "model dir m"):
        pass
    message = str(error.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert path in message and "\n" not in message
    assert cli.exit_code(error.value) == 1
  assert not os.path.exists(path)
  with pytest.raises(RuntimeError):  # released on errors too
    with locking.exclusive_lock(path, "model dir m"):
      raise RuntimeError("boom")
  assert not os.path.exists(path)


def test_lock_held_by_another_process_then_stale_after_kill_9(tmp_path, electra_log):
  path = str(tmp_path / locking.LOCK_FILENAME)
  holder = subprocess.Popen([sys.executable, "-c", _HOLD_SCRIPT, path], cwd=REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(locking.LockedError, match=f"in use by another trainer: pid {holder.pid}"):
      with locking.exclusive_lock(path, "model dir m"):
        pass
  finally:
    holder.kill()
    holder.wait()
    holder.stdin.close()
    holder.stdout.close()
  assert os.path.exists(path)  # kill -9 left it behind
  with locking.exclusive_lock(path, "model dir m"):
    assert json.loads(open(path).read())["pid"] == os.getpid()
  assert f"Taking over the stale lock of pid {holder.pid}" in electra_log.text


def test_stale_file_of_a_reused_pid_is_taken_over(tmp_path, electra_log):
  """The pid is alive but is another process (its start time differs)."""
  path = str(tmp_path / locking.LOCK_FILENAME)
  with open(path, "w") as f:
    json.dump({"pid": os.getppid(), "host": socket.gethostname(), "started": "1"}, f)
  with locking.exclusive_lock(path, "model dir m"):
    pass
  assert "Taking over the stale lock" in electra_log.text


def test_lock_of_another_host_is_refused_with_how_to_proceed(tmp_path):
  path = str(tmp_path / locking.LOCK_FILENAME)
  with open(path, "w") as f:
    json.dump({"pid": 1, "host": "other-machine", "started": None}, f)
  with pytest.raises(locking.LockedError, match="pid 1 on host other-machine.*delete the lock"):
    with locking.exclusive_lock(path, "model dir m"):
      pass
  assert os.path.exists(path)


def test_directories_the_lock_made_go_when_left_empty(tmp_path):
  """A run refused (or failed) before writing leaves no folder behind; one that wrote keeps it."""
  path = str(tmp_path / "models" / "m" / "finetuning_models" / "rte_model.lock")
  with locking.exclusive_lock(path, "fine-tuning m"):
    assert os.path.isfile(path)
  assert os.listdir(tmp_path) == []
  with locking.exclusive_lock(path, "fine-tuning m"):
    os.mkdir(str(tmp_path / "models" / "m" / "finetuning_models" / "rte_model_1"))
  assert os.listdir(tmp_path / "models" / "m" / "finetuning_models") == ["rte_model_1"]
  existing = tmp_path / "mine"
  existing.mkdir()
  with locking.exclusive_lock(str(existing / locking.LOCK_FILENAME), "model dir mine"):
    pass
  assert existing.is_dir()  # not made by the lock: kept
