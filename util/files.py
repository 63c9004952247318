"""Files the scripts write for the user: atomic writes, JSON and pickle, directories.

Every file this code base writes for the user is first written next to its
destination and then renamed into place, so an interrupted run never leaves a
half-written file behind. `rmkdir` is the original's "delete and re-create".
"""
from __future__ import annotations

import contextlib
import json
import numbers
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


class JsonObjectError(cli.DataError):
  """A text or file that should hold a JSON object does not (exit code 1 unless the caller
  reports it as a usage error)."""


def json_type_name(value: Any) -> str:
  """The JSON type of a decoded value ("object", "array", "string", ...), for messages.

  numpy scalars count as numbers; a callable is a "function".
  """
  if value is None:
    return "null"
  for kind, types in (("boolean", bool), ("integer", numbers.Integral), ("number", numbers.Real),
                      ("string", str), ("array", (list, tuple)), ("object", dict)):
    if isinstance(value, types):
      return kind
  return "function" if callable(value) else type(value).__name__


def parse_json_object(text: str, source: str) -> Dict[str, Any]:
  """The JSON object (dict) `text` holds: the one parser of JSON objects in this code base.

  Args:
    text: the JSON text.
    source: how to name it in messages, e.g. "--hparams value" or "Saved config /m/x.json".

  Raises:
    JsonObjectError: not valid JSON (with line, column and offset), or a JSON
      value other than an object.
  """
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise JsonObjectError(f"{source} is not valid JSON: {e.msg} at line {e.lineno} column "
                          f"{e.colno} (char {e.pos}).") from e
  if not isinstance(value, dict):
    raise JsonObjectError(f"{source} must be a JSON object (name -> value), got a JSON "
                          f"{json_type_name(value)}: {text.strip()[:80]}")
  return value


def load_json_object(path: str, what: str = "JSON file") -> Dict[str, Any]:
  """The JSON object (dict) stored in the file `path` (see `parse_json_object`).

  Args:
    path: the file.
    what: how to call it in messages, e.g. "Saved config".

  Raises:
    FileNotFoundError: no such file.
    JsonObjectError: not UTF-8, not valid JSON, or not an object.
  """
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise JsonObjectError(f"{what} {path} is not UTF-8 text ({e.reason}).") from e
  return parse_json_object(text, f"{what} {path}")


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
