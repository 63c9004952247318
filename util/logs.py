"""The scripts' logging: one "electra" logger, the original's headings.

Library code logs through `logging.getLogger("electra")` and never configures
logging; scripts call `setup_logging()` once.
"""
from __future__ import annotations

import logging

logger = logging.getLogger("electra")


def heading(text: str) -> str:
  """The original's log heading: a line of 80 '=', the text, 80 '='."""
  bar = "=" * 80
  return "\n".join([bar, text, bar])


def log_heading(text: str) -> None:
  logger.info(heading(text))


def setup_logging(level: int = logging.INFO) -> None:
  """Configures the one script logger (scripts call this; the library never does)."""
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(message)s"))
  root = logging.getLogger("electra")
  root.handlers[:] = [handler]
  root.setLevel(level)
  root.propagate = False
