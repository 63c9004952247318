"""Files the scripts write for the user: atomic writes, JSON and pickle, directories.

Every file this code base writes for the user is first written next to its
destination and then renamed into place, so an interrupted run never leaves a
half-written file behind. `rmkdir` is the original's "delete and re-create".
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
from typing import Any, Dict, Iterator

from util import cli


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
  """Yields a file object whose contents replace `path` only on success.

  The file gets the permissions of a normally created file (0666 minus the
  umask), not `mkstemp`'s 0600, and the temporary file is removed on any
  failure (disk full, interrupt).
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=directory)
  binary = "b" in mode
  try:
    os.fchmod(fd, 0o666 & ~current_umask())
    with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp_path)
    raise


def current_umask() -> int:
  """The process umask (read by setting and restoring it)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def load_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def load_json_object(path: str, what: str = "JSON file") -> Dict[str, Any]:
  """The JSON object (dict) stored in `path`.

  Args:
    path: the file.
    what: how to call it in the message, e.g. "Saved config".

  Raises:
    FileNotFoundError: no such file.
    util.cli.DataError: not valid JSON (with line and column), or not an object.
  """
  try:
    value = load_json(path)
  except json.JSONDecodeError as e:
    raise cli.DataError(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno} column "
                        f"{e.colno}); fix or delete it.") from e
  except UnicodeDecodeError as e:
    raise cli.DataError(f"{what} {path} is not UTF-8 text ({e.reason}); fix or delete "
                        "it.") from e
  if not isinstance(value, dict):
    raise cli.DataError(f"{what} {path} must hold a JSON object; fix or delete it.")
  return value


def write_json(obj: Any, path: str, indent: int | None = 2) -> None:
  with atomic_write(path) as f:
    json.dump(obj, f, indent=indent, sort_keys=True)
    f.write("\n")


def load_pickle(path: str) -> Any:
  with open(path, "rb") as f:
    return pickle.load(f)


def write_pickle(obj: Any, path: str) -> None:
  with atomic_write(path, "wb") as f:
    pickle.dump(obj, f, -1)


def mkdir(path: str) -> None:
  os.makedirs(path, exist_ok=True)


def rmrf(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def rmkdir(path: str) -> None:
  """Deletes `path` (if it exists) and re-creates it empty, like the original."""
  rmrf(path)
  mkdir(path)
