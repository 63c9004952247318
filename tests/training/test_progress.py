"""training/progress.py: time formatting and the ETA progress line."""
import logging

import numpy as np
import pytest

from training.progress import ETALogger, format_time


@pytest.mark.parametrize("seconds,expected", [
    (0, "0"), (5, "5"), (59.4, "59"), (60, "1:00"), (65, "1:05"), (125, "2:05"),
    (600, "10:00"), (3599.6, "1:00:00"), (3723, "1:02:03"), (36000, "10:00:00"),
    (2.5, "2"), (3.5, "4"),  # banker's rounding
    (90061, "1 day, 1:01:01"),
])
def test_format_time(seconds, expected):
  assert format_time(seconds) == expected


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_eta_lines_in_training():
  clock, lines = FakeClock(), []
  eta = ETALogger(n_steps=1000, log_fn=lines.append, clock=clock)
  for step in (1, 2):
    eta.before_step()
    clock.now += 0.5
    returned = eta.after_step(step, {"loss": np.float32(2.5), "disc_loss": 0.123456})
  # 2 steps in 1 s; ETA = 998 * 0.5 = 499 s.
  assert returned == lines[-1]
  assert lines == [
      "1/1000 = 0.1%, SPS: 2.0, ELAP: 0, ETA: 8:20 - loss: 2.5000 - disc_loss: 0.1235",
      "2/1000 = 0.2%, SPS: 2.0, ELAP: 1, ETA: 8:19 - loss: 2.5000 - disc_loss: 0.1235",
  ]
  assert eta.end() == "2/1000 = 0.2%, SPS: 2.0, ELAP: 1, ETA: 8:19"


def test_eta_rate_is_measured_from_the_first_observed_step():
  """A resumed run (global step 500) times only the steps it ran."""
  clock, lines = FakeClock(), []
  eta = ETALogger(n_steps=1000, log_every=10, log_fn=lines.append, clock=clock)
  for step in range(501, 521):
    eta.before_step()
    clock.now += 0.25
    eta.after_step(step, {"loss": 1.0})
  # Only steps 510 and 520 are logged; 20 steps in 5 s = 4 SPS; 480 * 0.25 = 120 s left.
  assert lines == ["510/1000 = 51.0%, SPS: 4.0, ELAP: 2, ETA: 2:02 - loss: 1.0000",
                   "520/1000 = 52.0%, SPS: 4.0, ELAP: 5, ETA: 2:00 - loss: 1.0000"]
  # The last step is logged at the end even if it is not a multiple of 10.
  assert eta.end(525) == "525/1000 = 52.5%, SPS: 5.0, ELAP: 5, ETA: 1:35"
  assert lines[-1] == "525/1000 = 52.5%, SPS: 5.0, ELAP: 5, ETA: 1:35"


def test_eta_in_eval_counts_steps_run_and_multi_step_calls():
  clock, lines = FakeClock(), []
  eta = ETALogger(n_steps=100, is_training=False, log_fn=lines.append, clock=clock)
  eta.before_step()
  clock.now += 4.0
  eta.after_step(123456, steps_run=20)  # global step is ignored in eval
  assert lines == ["20/100 = 20.0%, SPS: 5.0, ELAP: 4, ETA: 16"]


class ListHandler(logging.Handler):
  def __init__(self):
    super().__init__()
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def test_eta_end_without_steps_logs_nothing_and_default_logger():
  eta = ETALogger(n_steps=10, clock=FakeClock())
  assert eta.end(0) is None
  handler, electra_logger = ListHandler(), logging.getLogger("electra")
  old_level = electra_logger.level
  electra_logger.addHandler(handler)
  electra_logger.setLevel(logging.INFO)
  try:
    eta.after_step(10, {"loss": 0.5})  # no before_step: the clock started at creation
  finally:
    electra_logger.removeHandler(handler)
    electra_logger.setLevel(old_level)
  assert handler.messages == ["10/10 = 100.0%, SPS: inf, ELAP: 0, ETA: 0 - loss: 0.5000"]
  with pytest.raises(ValueError, match="log_every must be >= 1"):
    ETALogger(n_steps=10, log_every=0)
