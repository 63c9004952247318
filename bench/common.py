"""Shared pieces of the benchmarks: device description, peak memory, JSON lines."""
from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Sequence

import tensorflow as tf


def describe_device() -> str:
  """A short human-readable name of the device the benchmark runs on."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)}x {details.get('device_name', 'GPU')}"
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"CPU {cpu} ({os.cpu_count()} cores)"


def peak_memory_mb() -> float:
  """Peak device memory (GPU) or peak host memory (CPU) in MiB.

  On CPU this is the process's peak resident memory, unless TensorFlow's
  CPU allocator is the BFC allocator (`TF_CPU_ALLOCATOR_USE_BFC=true`):
  then it is the allocator's peak of live tensors and variables, the same
  accounting as on a GPU, which predicts GPU memory needs far better (RSS
  also counts the runtime and memory freed but kept by malloc).
  """
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
  if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() in ("1", "true"):
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def command_line() -> str:
  return " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv)


REQUIRED_KEYS = ("device", "dtype", "xla", "batch", "seq", "examples_per_sec",
                 "tokens_per_sec", "mfu", "peak_memory_mb", "command")


def emit(record: Dict[str, Any]) -> None:
  """Prints one JSON line with every required key (missing ones as null)."""
  full = {key: record.get(key) for key in REQUIRED_KEYS}
  full.update(record)
  print(json.dumps(full), flush=True)


def set_threads(threads: int | None) -> None:
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_isolated(script: str, child_argvs: Sequence[List[str]]) -> None:
  """Runs `script` once per argument list, each in a fresh Python process.

  Several configurations measured in one process disturb each other: the
  resident-memory peak only grows, and the allocator and thread pools keep
  the earlier models' state (ELECTRA-Small batch 32 on the 2-core CPU ran
  at 10.8 examples/s after batch 8 in the same process, 12.2 alone). The
  children's JSON lines pass through; a failing child stops the run.
  """
  for argv in child_argvs:
    subprocess.run([sys.executable, script] + list(argv), check=True)
