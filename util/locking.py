"""An exclusive lock on a model directory, so that two trainers never write one run.

The lock is a small file (`<model_dir>/train.lock` for pre-training,
`<finetuning model dir>.lock` for fine-tuning) holding the owner's pid, host
and process start time, kept under an `fcntl.flock` for the lifetime of the
run and removed when it ends (also on errors and Ctrl-C). A second writer gets
one error line naming the owner and the file.

Stale locks (the owner was killed with kill -9 or its machine rebooted):
  * same host, and the pid is gone or now belongs to another process (start
    time differs) -> taken over with a warning;
  * another host -> refused, since its process cannot be checked from here;
    the message says to delete the file once that run is known to be gone.
The flock itself is released by the kernel when the owner dies, so two
processes that find the same stale file cannot both take it over.
Non-local directories (gs://...) are not locked (logged at DEBUG).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
from typing import Iterator, List, Optional

from util import cli

logger = logging.getLogger("electra")

LOCK_FILENAME = "train.lock"


class LockedError(cli.DataError):
  """Another live process holds the lock (exit code 1 in the scripts)."""


def _process_start_time(pid: int) -> Optional[str]:
  """The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), None if unknown."""
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      stat = f.read()
  except OSError:
    return None
  return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, owned by another user
    return True
  return True


def _owner_is_alive(owner: dict) -> bool:
  """Whether the process that wrote `owner` (on this host) still runs."""
  pid = owner.get("pid")
  if not isinstance(pid, int) or not _pid_alive(pid):
    return False
  started = owner.get("started")
  return started is None or _process_start_time(pid) in (None, started)


def _describe(owner: dict, path: str) -> str:
  return f"pid {owner.get('pid')} on host {owner.get('host')} (lock file {path})"


def _read_owner(fd: int) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  raw = os.read(fd, 4096)
  try:
    owner = json.loads(raw.decode("utf-8")) if raw.strip() else {}
  except (UnicodeDecodeError, ValueError):
    owner = {}
  return owner if isinstance(owner, dict) else {}


@contextlib.contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
  """Holds the lock file `path` for the duration of the `with` block.

  Args:
    path: the lock file (its directory is created if needed).
    what: what is being locked, for messages (e.g. "model dir /d/models/m").

  Raises:
    LockedError: another live process, or a process on another host, holds it.
  """
  if "://" in path:
    logger.debug("Not locking %s: locks are only taken on local filesystems.", path)
    yield
    return
  created = _make_parents(os.path.dirname(os.path.abspath(path)))
  try:
    fd = _acquire(path, what)
  except BaseException:
    _remove_if_empty(created)
    raise
  try:
    yield
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)  # while still holding the flock: nobody sees a half-released lock
    os.close(fd)
    _remove_if_empty(created)  # a run that failed before writing leaves no trace


def _make_parents(directory: str) -> List[str]:
  """Creates `directory` and its missing parents; returns those created, deepest first."""
  missing = []
  while not os.path.isdir(directory):
    missing.append(directory)
    parent = os.path.dirname(directory)
    if parent == directory:
      break
    directory = parent
  for path in reversed(missing):
    with contextlib.suppress(FileExistsError):
      os.mkdir(path)
  return missing


def _remove_if_empty(directories: List[str]) -> None:
  """Removes the directories (deepest first) that are still empty."""
  for directory in directories:
    try:
      os.rmdir(directory)
    except OSError:  # not empty (the run wrote there), or gone
      return


def _acquire(path: str, what: str) -> int:
  host = socket.gethostname()
  for _ in range(10):  # retried only when the file was replaced under us
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          raise
        owner = _read_owner(fd)
        raise LockedError(
            f"{what} is in use by another trainer: {_describe(owner, path)}. Wait for it to "
            "finish or stop it, or use another --model-name.") from None
      if os.fstat(fd).st_ino != _inode(path):
        os.close(fd)  # the owner removed the file between our open and flock
        continue
      owner = _read_owner(fd)
      if owner and owner.get("pid") != os.getpid():
        if owner.get("host") != host:
          raise LockedError(
              f"{what} is locked by {_describe(owner, path)}, another machine, whose process "
              "cannot be checked from here. If no trainer runs there any more, delete the "
              "lock file and re-run.")
        if _owner_is_alive(owner):
          raise LockedError(
              f"{what} is in use by another trainer: {_describe(owner, path)}. Wait for it "
              "to finish or stop it, or use another --model-name.")
        logger.warning("Taking over the stale lock of %s: that process is gone.",
                       _describe(owner, path))
      _write_owner(fd, host)
      return fd
    except BaseException:
      with contextlib.suppress(OSError):
        os.close(fd)
      raise
  raise LockedError(f"Could not lock {what}: {path} keeps being replaced by another process.")


def _inode(path: str) -> Optional[int]:
  try:
    return os.stat(path).st_ino
  except FileNotFoundError:
    return None


def _write_owner(fd: int, host: str) -> None:
  owner = {"pid": os.getpid(), "host": host, "started": _process_start_time(os.getpid())}
  data = (json.dumps(owner, sort_keys=True) + "\n").encode("utf-8")
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, data)
  os.fsync(fd)
