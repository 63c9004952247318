"""Waiting for the workers of a multi-worker cluster, logged, bounded and interruptible.

Kept free of TensorFlow: it runs before TensorFlow's own rendezvous, which
blocks in C++ (holding the GIL, deaf to SIGTERM) until every worker is up.
"""
from __future__ import annotations

import logging
import signal
import socket
import time
from typing import List, Tuple

from util import signals

logger = logging.getLogger("electra")


def _split_address(address: str) -> Tuple[str, int]:
  host, _, port = address.rpartition(":")
  return host.strip("[]") or "localhost", int(port)


def _reachable(address: str) -> bool:
  try:
    with socket.create_connection(_split_address(address), timeout=2):
      return True
  except OSError:
    return False


def wait_for_workers(own_address: str, others: List[str], timeout_s: float, me: str,
                     poll_s: float = 1.0, log_every_s: float = 30.0) -> None:
  """Waits until every other worker listens on its TF_CONFIG address.

  Meanwhile this worker listens on its own address (a plain socket, closed
  before TensorFlow binds the port), so the workers see each other without
  any of them starting TensorFlow's blocking rendezvous early. Logs
  "Waiting for workers: k of n connected" at once and every `log_every_s`.
  SIGTERM/SIGINT end the wait (KeyboardInterrupt).

  Raises:
    TimeoutError: some worker was not up within `timeout_s`, naming them.
    OSError: this worker's port is taken by another process.
  """
  n = len(others) + 1
  listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    try:
      listener.bind(("", _split_address(own_address)[1]))
    except OSError as e:
      raise OSError(e.errno, f"cannot listen on this worker's TF_CONFIG address {own_address} "
                    f"({e.strerror}); is another process using the port?") from None
    listener.listen(64)
    start = time.monotonic()
    last_log = None
    with signals.signal_handlers((signal.SIGTERM, signal.SIGINT), _raise_interrupt):
      while True:
        missing = [a for a in others if not _reachable(a)]
        if not missing:
          break
        now = time.monotonic()
        if last_log is None or now - last_log >= log_every_s:
          logger.info("Waiting for workers: %d of %d connected (this is %s at %s; waiting for "
                      "%s; worker_startup_timeout_s=%d).", n - len(missing), n, me,
                      own_address, ", ".join(missing), timeout_s)
          last_log = now
        if now - start >= timeout_s:
          raise TimeoutError(
              f"Only {n - len(missing)} of {n} workers started within "
              f"worker_startup_timeout_s={timeout_s} s: nothing listens at "
              f"{', '.join(missing)}. Start every worker of TF_CONFIG, check its addresses, "
              "or raise worker_startup_timeout_s.")
        time.sleep(poll_s)
  finally:
    listener.close()
  logger.info("Waiting for workers: %d of %d connected.", n, n)


def _raise_interrupt(signum, frame):  # pylint: disable=unused-argument
  """While waiting for workers, SIGTERM (and SIGINT) raise KeyboardInterrupt."""
  raise KeyboardInterrupt(signal.Signals(signum).name)
