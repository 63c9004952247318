"""One way for every command-line script to report a user's mistake.

A mistake (bad flag or hparam, missing or corrupt file) is printed as one line,
`error: <message>`, on stderr, without a traceback, and ends the process with

  2  for usage errors: flags, hparams, configuration (`UsageError`, any other
     `ValueError`, `KeyError` is *not* included: that is a bug);
  1  for data errors: missing, unreadable or corrupt files (`DataError`,
     `OSError`, TensorFlow's `tf.errors.OpError`);
  130 when interrupted (Ctrl-C).

Set ELECTRA_TRACEBACK=1 in the environment to see the traceback as well.
Anything else (a bug) propagates with its traceback as usual.

Scripts keep a `main(argv)` that raises (tests call it directly) and end with
`sys.exit(cli.run(main))`.
"""

import argparse
import os
import sys
import traceback
from typing import Any, Callable, Optional, Sequence, Tuple

USAGE_EXIT = 2
DATA_EXIT = 1
INTERRUPTED_EXIT = 130
TRACEBACK_ENV = "ELECTRA_TRACEBACK"


class UsageError(ValueError):
  """A bad flag, hparam or combination of them (exit code 2)."""


class DataError(ValueError):
  """A missing, unreadable or corrupt input file, or an unusable output (exit code 1)."""


def _tf_op_error() -> Tuple[type, ...]:
  """TensorFlow's runtime error base class, if TensorFlow is already imported."""
  tf = sys.modules.get("tensorflow")
  op_error = getattr(getattr(tf, "errors", None), "OpError", None)
  return (op_error,) if isinstance(op_error, type) else ()


def data_errors() -> Tuple[type, ...]:
  """Exception classes that mean "a file is missing, unreadable or corrupt"."""
  return (DataError, OSError) + _tf_op_error()


def reported_errors() -> Tuple[type, ...]:
  """Every exception class reported as one `error:` line rather than a traceback."""
  return (ValueError,) + data_errors()


def exit_code(error: BaseException) -> int:
  """The exit code for a reported error: 1 for data errors, 2 for usage errors."""
  if isinstance(error, UsageError):
    return USAGE_EXIT
  return DATA_EXIT if isinstance(error, data_errors()) else USAGE_EXIT


def message(error: BaseException) -> str:
  """The user-facing text of `error`: its message, made readable for TF and OS errors."""
  op_error = _tf_op_error()
  if op_error and isinstance(error, op_error):
    text = getattr(error, "message", "") or str(error)
  elif isinstance(error, OSError) and error.filename and error.strerror:
    text = f"{error.strerror}: {error.filename}"
  else:
    text = str(error) or type(error).__name__
  return text.strip()


def report(error: BaseException, stream=None) -> int:
  """Prints `error: <message>` (and the traceback if asked for); returns the exit code."""
  stream = stream or sys.stderr
  if os.environ.get(TRACEBACK_ENV):
    traceback.print_exception(type(error), error, error.__traceback__, file=stream)
  print(f"error: {message(error)}", file=stream, flush=True)
  return exit_code(error)


def run(main: Callable[..., Any], argv: Optional[Sequence[str]] = None,
        extra_data_errors: Tuple[type, ...] = ()) -> int:
  """Calls `main(argv)`; returns its exit code, reporting a user's mistake as one line.

  Args:
    main: the script's entry point; it may return None (success) or an int exit code.
    argv: its arguments (None: sys.argv[1:], as argparse does).
    extra_data_errors: further exception classes to report as data errors (exit 1).

  Returns:
    0 on success, main's own int result, 1/2 for reported errors, 130 if interrupted.
  """
  try:
    result = main(argv)
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr, flush=True)
    return INTERRUPTED_EXIT
  except extra_data_errors as e:  # pylint: disable=catching-non-exception
    report(e)
    return DATA_EXIT
  except reported_errors() as e:
    return report(e)
  return result if isinstance(result, int) and not isinstance(result, bool) else 0


def add_model_dir_flags(parser: argparse.ArgumentParser, model_help: str,
                        hparams_help: str = "") -> None:
  """Declares --data-dir, --model-name and --hparams, the flags of every script that works
  on `<data-dir>/models/<model-name>` (the original's names and defaults).

  Args:
    parser: the script's parser (or sub-command parser).
    model_help: what --model-name names for this script.
    hparams_help: appended to --hparams' help (e.g. what it overrides).
  """
  parser.add_argument("--data-dir", required=True, help="Location of data files (vocab.txt, "
                      "pretrain_tfrecords/, finetuning_data/, models/<model-name>).")
  parser.add_argument("--model-name", required=True, help=model_help)
  parser.add_argument("--hparams", default="{}", help="JSON dict of model hyperparameters, or "
                      "a path to a .json file" + (f"; {hparams_help}" if hparams_help else "."))
