"""Guards for output paths: never write over (or delete) what a command reads or keeps.

Every script that writes (or deletes and re-creates) an output directory or
file checks it here first, so that a mistyped `--output-dir` (the model dir,
the corpus, the input file) is refused with one clear line instead of
destroying the user's data. `file_problem` says what a path that should be a
regular file is instead, without opening it (a FIFO would block).
"""
from __future__ import annotations

import os
import stat
from typing import List, Optional, Sequence, Tuple, Type

from util import cli


def is_remote(path: str) -> bool:
  """Whether `path` is a URL of another filesystem (`gs://...`), read through TensorFlow."""
  return "://" in path


def relation(path: str, other: str) -> Optional[str]:
  """How `path` relates to `other` on disk: "is", "contains", "is inside", or None.

  Both are resolved with `os.path.realpath` (symlinks, "..", relative paths;
  they need not exist). Remote (`scheme://`) paths are compared as strings.
  """
  if is_remote(path) or is_remote(other):
    a, b = path.rstrip("/"), other.rstrip("/")
    sep = "/"
  else:
    a, b = os.path.realpath(path), os.path.realpath(other)
    sep = os.sep
  if a == b:
    return "is"
  if b.startswith(a.rstrip(sep) + sep):
    return "contains"
  if a.startswith(b.rstrip(sep) + sep):
    return "is inside"
  return None


def check_output_apart(output: str, flag: str, protected: Sequence[Tuple[str, str]],
                       hint: str = "", error: Type[Exception] = cli.UsageError,
                       inside: bool = True) -> None:
  """Refuses an output path that is, contains or (if `inside`) is inside a protected path.

  Args:
    output: the output directory or file.
    flag: how the user named it, e.g. "--output-dir".
    protected: (path, what it is) pairs, e.g. (model_dir, "the model directory").
      None or empty paths are skipped.
    hint: appended to the message (what to do instead).
    error: the exception class raised.
    inside: also refuse an output inside a protected directory.

  Raises:
    `error` (default `cli.UsageError`): one line naming both paths.
  """
  for path, what in protected:
    if not path:
      continue
    how = relation(output, path)
    if how is not None and (inside or how != "is inside"):
      raise error(f"{flag} {output} {how} {what} {path}; writing there could overwrite or "
                  f"delete it. {hint or f'Choose another {flag}.'}".rstrip())


def same_file(path: str, other: str) -> bool:
  """Whether two paths name one file: equal real paths, or one inode (hard links)."""
  if os.path.realpath(path) == os.path.realpath(other):
    return True
  try:
    return os.path.samefile(path, other)
  except OSError:  # One of them does not exist (yet).
    return False


MISSING = "does not exist"
_FILE_TYPES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_problem(path: str) -> Optional[str]:
  """What a local path that should be a regular file is instead, or None if it is one.

  Links are followed; nothing is opened (opening a FIFO would block).

  Returns:
    None (a regular file), `MISSING` ("does not exist"), "is a directory" or
    "is not a regular file (a FIFO)" (socket, character or block device).
  """
  try:
    mode = os.stat(path).st_mode
  except (FileNotFoundError, NotADirectoryError):
    return MISSING
  if stat.S_ISREG(mode):
    return None
  if stat.S_ISDIR(mode):
    return "is a directory"
  kind = next((name for test, name in _FILE_TYPES if test(mode)), "a special file")
  return f"is not a regular file ({kind})"


def check_export_dir(output_dir: str, data_dir: str, model_name: str,
                     checkpoint: Optional[str] = None) -> None:
  """Refuses an export `--output-dir` that would overlap a model's files.

  An export (with `--overwrite`) replaces its output dir, so it may not be,
  contain or lie inside `<data-dir>/models` (the model dir included), nor be
  or contain the `--checkpoint`'s directory.

  Raises:
    cli.UsageError: naming both paths and a place that works.
  """
  models_dir = os.path.join(data_dir, "models")
  hint = (f"Export outside {models_dir} and the checkpoint's directory, e.g. to "
          f"{os.path.join(data_dir, 'exports', model_name)}.")
  check_output_apart(output_dir, "--output-dir", model_dirs(data_dir, model_name), hint=hint)
  if checkpoint and not is_remote(checkpoint):
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    check_output_apart(output_dir, "--output-dir",
                       [(directory or os.curdir, "the checkpoint directory")], hint=hint,
                       inside=False)


def model_dirs(data_dir: str, model_name: str) -> List[Tuple[str, str]]:
  """(path, what it is) of the model dir and `<data-dir>/models`, for `check_output_apart`."""
  models_dir = os.path.join(data_dir, "models")
  return [(os.path.join(models_dir, model_name), "the model directory"),
          (models_dir, "the models directory")]


def check_output_file(output: str, flag: str, protected: Sequence[Tuple[str, str]],
                      overwrite: bool) -> None:
  """Refuses an output file that could destroy something, before anything is computed.

  Refused even with `overwrite`: a path that is, contains or lies inside a
  protected directory (a model's files, e.g. its `checkpoint`), and an
  existing path that is not a regular file (a directory, a FIFO). An existing
  regular file is refused unless `overwrite`. Remote paths are only compared.

  Args:
    output: the output file.
    flag: how the user named it, e.g. "--output".
    protected: (directory, what it is) pairs, e.g. from `model_dirs`.
    overwrite: whether the user passed `--overwrite`.

  Raises:
    cli.UsageError: one line naming the path and what to do instead.
  """
  check_output_apart(output, flag, protected)
  if is_remote(output):
    return
  problem = file_problem(output)
  if problem == MISSING:
    return
  if problem:
    raise cli.UsageError(f"{flag} {output} {problem}; name a file to write. "
                         f"Choose another {flag}.")
  if not overwrite:
    raise cli.UsageError(f"{flag} {output} already exists; pass --overwrite to replace it, "
                         f"or choose another {flag}.")
