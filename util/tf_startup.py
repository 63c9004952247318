"""Imports TensorFlow so that its start-up banners are printed once, not twice.

Why they appear twice: `import tensorflow` loads two native libraries that
each carry their own copy of TensorFlow's platform code and logging
(`_pywrap_tensorflow_internal` first, then `_pywrap_profiler_plugin` from
`tensorflow/python/profiler`). The static initializers of each copy print the
same lines on stderr: "WARNING: All log messages before absl::InitializeLog()
...", "oneDNN custom operations are on ...", "Could not find cuda drivers ...".
They are printed while the library is loaded, before any Python code can set
a log level, and `TF_CPP_MIN_LOG_LEVEL` does not silence them (TF 2.21).

`import_tensorflow()` therefore captures stderr (file descriptor 2) while
TensorFlow is imported and writes the captured text back with repeated lines
removed (glog prefixes with time and thread id are ignored when comparing).
Nothing else is hidden: every distinct line is still printed, in order. Each
command-line script imports this module before anything that imports
TensorFlow (`from util import tf_startup`), which calls it.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType
from typing import List

# `I0000 00:00:1796580388.643594    8375 port.cc:153] ...`: severity, date, time, thread.
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")


def dedupe_lines(text: str) -> str:
  """`text` without the lines that repeat an earlier one (glog prefix ignored)."""
  seen = set()
  kept: List[str] = []
  for line in text.splitlines(keepends=True):
    key = _GLOG_PREFIX.sub("", line).rstrip("\r\n")
    if key and key in seen:
      continue
    seen.add(key)
    kept.append(line)
  return "".join(kept)


def import_tensorflow() -> ModuleType:
  """`import tensorflow`, printing its start-up banners once (see the module docstring)."""
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"]
  try:
    saved_fd = os.dup(2)
  except OSError:  # No stderr to capture.
    import tensorflow  # pylint: disable=import-outside-toplevel
    return tensorflow
  with tempfile.TemporaryFile() as captured:
    sys.stderr.flush()
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=import-outside-toplevel
    finally:
      sys.stderr.flush()
      os.dup2(saved_fd, 2)
      os.close(saved_fd)
      captured.seek(0)
      text = dedupe_lines(captured.read().decode("utf-8", errors="replace"))
      if text:
        os.write(2, text.encode("utf-8"))
  return tensorflow


import_tensorflow()
