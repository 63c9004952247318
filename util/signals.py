"""Signal handlers installed for the duration of a block (training, waiting for workers)."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Dict, Iterable, Iterator


@contextlib.contextmanager
def signal_handlers(signums: Iterable[int], handler: Callable[[int, Any], Any]) -> Iterator[None]:
  """Installs `handler` for `signums` within the block, then restores the previous ones.

  Python only installs handlers in the main thread; elsewhere this does nothing.
  """
  previous: Dict[int, Any] = {}
  if threading.current_thread() is threading.main_thread():
    for signum in signums:
      previous[signum] = signal.getsignal(signum)
      signal.signal(signum, handler)
  try:
    yield
  finally:
    for signum, old in previous.items():
      signal.signal(signum, old if old is not None else signal.SIG_DFL)
