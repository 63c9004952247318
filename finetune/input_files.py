"""Reading the raw files of fine-tuning tasks, with one way to report bad input.

Every task type (classification TSV, QA JSON / JSONL, tagging CoNLL) reads its
files through these helpers, so a user's data mistake is always reported the
same way, as one line that names the file (and the line, where there is one):

  * a missing file: `FileNotFoundError` naming the task, the split and the
    expected path, plus the missing folder when the whole task folder is absent;
  * undecodable UTF-8, invalid JSON, a malformed row or an unknown label:
    `util.cli.DataError` with the message `<path>:<line>[:<column>]: <problem>`.

Both are "data errors" for `util.cli` (exit code 1, no traceback).
"""
from __future__ import annotations

import gzip
import json
import os
from typing import Any, Iterator, Optional, Tuple

from util import cli


def data_error(path: str, line: Optional[int], problem: str,
               column: Optional[int] = None) -> cli.DataError:
  """A `DataError` reading `<path>:<line>[:<column>]: <problem>` (no line: `<path>: ...`)."""
  where = path if line is None else f"{path}:{line}" + ("" if column is None else f":{column}")
  return cli.DataError(f"{where}: {problem}")


def require_file(path: str, task_name: str, split: str, layout: str = "") -> None:
  """Raises a one-line `FileNotFoundError` if `path` is not a file.

  Args:
    path: the file `split` of task `task_name` is read from.
    task_name: for the message.
    split: for the message.
    layout: optional sentence appended to the message (expected layout, format).

  Raises:
    FileNotFoundError: naming the task, split and path, and the task folder if
      that is missing too.
  """
  if os.path.isfile(path):
    return
  folder = os.path.dirname(path)
  message = f"Task {task_name}: no {split} file at {path}"
  if folder and not os.path.isdir(folder):
    message += f" (the folder {folder} does not exist)"
  message += "."
  if layout:
    message += " " + layout
  raise FileNotFoundError(message)


def _open_binary(path: str):
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_lines(path: str, max_lines: Optional[int] = None) -> Iterator[Tuple[int, str]]:
  """Yields `(line number, text)` of a UTF-8 text file (`.gz` is decompressed).

  Line numbers are 1-based and count every line of the file; the text keeps
  its line ending.

  Args:
    path: the file.
    max_lines: stop after this many lines (None: read all).

  Raises:
    DataError: a line that is not valid UTF-8 (names file, line and byte).
  """
  with _open_binary(path) as f:
    for number, raw in enumerate(f, start=1):
      if max_lines is not None and number > max_lines:
        return
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise data_error(path, number, f"not valid UTF-8 (byte {raw[e.start]:#04x} at "
                         f"column {e.start + 1}); save the file as UTF-8.") from None
      yield number, text


def parse_json(text: str, path: str, first_line: int = 1) -> Any:
  """`json.loads(text)`, reporting a syntax error as `<path>:<line>:<column>`.

  Args:
    text: the JSON text.
    path: the file it came from (for the message).
    first_line: the file line number of the text's first line.

  Raises:
    DataError: invalid JSON.
  """
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise data_error(path, first_line + e.lineno - 1, f"invalid JSON: {e.msg}.",
                     column=e.colno) from None


def load_json(path: str) -> Any:
  """Reads a whole UTF-8 JSON file.

  Raises:
    DataError: undecodable UTF-8 or invalid JSON (names file, line and column).
  """
  with _open_binary(path) as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    raise data_error(path, line, f"not valid UTF-8 (byte {raw[e.start]:#04x}); save the "
                     "file as UTF-8.", column=column) from None
  return parse_json(text, path)
