"""Measures the device's dense matmul peak (FLOP/s), the denominator of MFU.

    python3 bench/peak.py [--dtype fp32|bf16|fp16] [--size 2048] [--threads N]

Prints one JSON line per dtype with `peak_flops` (the best of several timed
runs of a square matmul chain; on CPU the better of XLA and the plain graph,
whose oneDNN kernels the model uses; `peak_flops_by_path` has both) besides
the common benchmark keys.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402

DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def measure_peak(dtype: tf.DType, size: int, repeats: int = 5, chain: int = 8,
                 jit_compile: bool = True) -> float:
  """Best FLOP/s over `repeats` timed runs of `chain` [size,size] matmuls."""
  a = tf.random.normal([size, size], dtype=tf.float32)
  b = tf.random.normal([size, size], dtype=tf.float32) / size ** 0.5
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)

  @tf.function(jit_compile=jit_compile)
  def run(x):
    for _ in range(chain):
      x = tf.matmul(x, b)
    return tf.reduce_sum(tf.cast(x, tf.float32))

  run(a).numpy()  # compile and warm up
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    run(a).numpy()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size ** 3 * chain / best


def measure_best_peak(dtype: tf.DType, size: int) -> Dict[str, float]:
  """FLOP/s of the XLA and, on CPU, the plain-graph matmul; the model uses the faster.

  On CPU the two differ by kernel: plain-graph MatMul runs oneDNN (AMX for
  bf16 where present), XLA:CPU its own; bf16 under XLA measured 5× below
  oneDNN on an AMX Xeon, which made MFU look better than it was.
  """
  peaks = {"xla": measure_peak(dtype, size, jit_compile=True)}
  if not tf.config.list_physical_devices("GPU"):
    peaks["graph"] = measure_peak(dtype, size, jit_compile=False)
  return peaks


def peak_flops(dtype_name: str = "fp32", size: int | None = None) -> float:
  """The peak used by the other benchmarks (cached per process)."""
  if size is None:
    size = 8192 if tf.config.list_physical_devices("GPU") else 2048
  key = (dtype_name, size)
  if key not in _CACHE:
    _CACHE[key] = max(measure_best_peak(DTYPES[dtype_name], size).values())
  return _CACHE[key]


_CACHE: dict = {}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dtype", choices=sorted(DTYPES), action="append")
  parser.add_argument("--size", type=int, default=None)
  parser.add_argument("--threads", type=int, default=None)
  args = parser.parse_args()
  common.set_threads(args.threads)
  for dtype_name in args.dtype or ["fp32"]:
    size = args.size or (8192 if tf.config.list_physical_devices("GPU") else 2048)
    peaks = measure_best_peak(DTYPES[dtype_name], size)
    path = max(peaks, key=peaks.get)
    flops = peaks[path]
    common.emit(dict(device=common.describe_device(), dtype=dtype_name, xla=path == "xla",
                     peak_flops=flops, peak_tflops=flops / 1e12, size=size,
                     peak_flops_by_path=peaks,
                     peak_memory_mb=common.peak_memory_mb(), command=common.command_line()))


if __name__ == "__main__":
  main()
