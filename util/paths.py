"""Guards for output paths: never write over (or delete) what a command reads or keeps.

Every script that writes (or deletes and re-creates) an output directory or
file checks it here first, so that a mistyped `--output-dir` (the model dir,
the corpus, the input file) is refused with one clear line instead of
destroying the user's data.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Type

from util import cli


def _is_remote(path: str) -> bool:
  return "://" in path


def relation(path: str, other: str) -> Optional[str]:
  """How `path` relates to `other` on disk: "is", "contains", "is inside", or None.

  Both are resolved with `os.path.realpath` (symlinks, "..", relative paths;
  they need not exist). Remote (`scheme://`) paths are compared as strings.
  """
  if _is_remote(path) or _is_remote(other):
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
  check_output_apart(output_dir, "--output-dir",
                     [(os.path.join(models_dir, model_name), "the model directory"),
                      (models_dir, "the models directory")], hint=hint)
  if checkpoint and not _is_remote(checkpoint):
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    check_output_apart(output_dir, "--output-dir",
                       [(directory or os.curdir, "the checkpoint directory")], hint=hint,
                       inside=False)
