"""Progress lines with ETA, as the original's `ETAHook` printed them.

`format_time(seconds)` and `ETALogger`, shared by the trainer and the
pre-training evaluation.
"""
from __future__ import annotations

import datetime
import logging
import re
import time
from typing import Any, Callable, Mapping, Optional

logger = logging.getLogger("electra")


def format_time(seconds: float) -> str:
  """Formats a duration as H:MM:SS with leading zero groups stripped.

  Matches the original's `secs_to_str`: seconds are rounded (banker's
  rounding), formatted by `datetime.timedelta` ("0:02:05"), then a leading
  "0:" and a leading "0" are stripped twice. E.g. 125 -> "2:05", 5 -> "5",
  3723 -> "1:02:03", 0 -> "0"; a day or more reads "1 day, 0:00:10".

  Args:
    seconds: float. A duration in seconds.

  Returns:
    The formatted duration.
  """
  text = str(datetime.timedelta(seconds=int(round(seconds))))
  for _ in range(2):
    text = re.sub("^0:", "", text)
    text = re.sub("^0", "", text)
  return text


class ETALogger:
  """Logs training/eval progress like the original `ETAHook` (docs/model.md#progress-logging).

  Each logged line reads
  `<step>/<n_steps> = <pct:.1f>%, SPS: <sps:.1f>, ELAP: <t>, ETA: <t>`
  followed by ` - <tag>: <value:.4f>` per logged value (e.g. `loss`). In
  training, `step` is the global step and the rate is measured from the
  first observed step (the step before the first `after_step`); in eval,
  `step` counts the steps run. A line is logged only when
  `step % log_every == 0` (1 in pre-training, 10 in fine-tuning), and once
  more at `end()` (without values) whatever the step: unlike the original's
  hook, the last step is always logged (fine-tuning's 189 steps end with
  "189/189 = 100.0%, ...", not with "180/189").

  Usage:
    eta = ETALogger(n_steps=config.num_train_steps, log_fn=logger.info)
    while step < n:
      eta.before_step()
      loss = train_step(); step += 1
      eta.after_step(step, {"loss": loss})
    eta.end(step)

  Args:
    n_steps: int. Total steps (`num_train_steps`, or `num_eval_steps` in eval).
    log_every: int. Log only steps divisible by this.
    is_training: bool. Whether `step` is the global step (else steps run).
    log_fn: receives each line; defaults to the "electra" logger's `info`.
    clock: returns seconds; defaults to `time.monotonic` (inject a fake in tests).
  """

  def __init__(self, n_steps: int, log_every: int = 1, is_training: bool = True,
               log_fn: Optional[Callable[[str], None]] = None,
               clock: Callable[[], float] = time.monotonic):
    if log_every < 1:
      raise ValueError(f"ETALogger log_every must be >= 1; got {log_every}.")
    self._n_steps = n_steps
    self._log_every = log_every
    self._is_training = is_training
    self._log_fn = log_fn if log_fn is not None else logger.info
    self._clock = clock
    self._created_time = clock()
    self._start_time: Optional[float] = None
    self._start_step: Optional[int] = None
    self._global_step: Optional[int] = None
    self._steps_run_so_far = 0

  def before_step(self) -> None:
    """Call right before running a step; the first call starts the clock.

    If it is never called, the clock starts when the logger was created.
    """
    if self._start_time is None:
      self._start_time = self._clock()

  def after_step(self, global_step: int, values: Optional[Mapping[str, Any]] = None,
                 steps_run: int = 1) -> Optional[str]:
    """Records finished step(s) and logs a line if the step is due.

    Args:
      global_step: int. The global step after the run.
      values: tag -> scalar (float, numpy or tf scalar) appended to the line.
      steps_run: int. Steps done by this call (>1 for multi-step loops, like
        `iterations_per_loop` on TPU).

    Returns:
      The logged line, or None if nothing was logged.
    """
    if self._start_time is None:
      self._start_time = self._created_time
    self._global_step = int(global_step)
    self._steps_run_so_far += steps_run
    if self._start_step is None:
      self._start_step = self._global_step - steps_run
    return self._log(values)

  def end(self, global_step: Optional[int] = None) -> Optional[str]:
    """Logs the final line (no values), like the hook's `end`.

    Args:
      global_step: the final global step; defaults to the last one seen.

    Returns:
      The logged line, or None if nothing was logged (no step ran).
    """
    if global_step is not None:
      self._global_step = int(global_step)
    return self._log(None, final=True)

  def _log(self, values: Optional[Mapping[str, Any]], final: bool = False) -> Optional[str]:
    if self._start_step is None or self._global_step is None:
      return None
    step = self._global_step if self._is_training else self._steps_run_so_far
    steps_timed = (step - self._start_step) if self._is_training else step
    if (step % self._log_every != 0 and not final) or steps_timed <= 0:
      return None
    line = self.format_line(step, self._clock() - self._start_time, steps_timed, values)
    self._log_fn(line)
    return line

  def format_line(self, step: int, elapsed: float, steps_timed: int,
                  values: Optional[Mapping[str, Any]] = None) -> str:
    """Formats one progress line.

    Args:
      step: int. The step shown.
      elapsed: float. Seconds since the clock started.
      steps_timed: int. Steps run in `elapsed` (for the rate).
      values: tag -> scalar appended as ` - <tag>: <value:.4f>`.

    Returns:
      The line, e.g. "100/1000 = 10.0%, SPS: 2.0, ELAP: 50, ETA: 7:30 - loss: 1.2346".
    """
    percent = 100.0 * step / self._n_steps if self._n_steps else 100.0
    time_per_step = elapsed / steps_timed
    sps = 1.0 / time_per_step if time_per_step > 0 else float("inf")
    line = (f"{step}/{self._n_steps} = {percent:.1f}%, SPS: {sps:.1f}, "
            f"ELAP: {format_time(elapsed)}, "
            f"ETA: {format_time((self._n_steps - step) * time_per_step)}")
    for tag, value in (values or {}).items():
      line += f" - {tag}: {float(value):.4f}"
    return line
