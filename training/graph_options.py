"""Lighter graph optimization (grappler) for the big training-step functions.

A `tf.function` is optimized by grappler the first time it is called. For the
ELECTRA-Small training step (~16k nodes after tracing) the default pipeline
runs every pass twice and takes ~7 s of the ~20 s warm-up on a 2-core CPU
(`TF_CPP_VMODULE=meta_optimizer=1` prints the passes). Three parts of it buy
nothing on a CPU for this graph, measured:

  * the second meta-optimizer iteration removes < 1% of the nodes (~2 s);
  * the memory optimizer's heuristics (~1.4 s) target device memory
    (swapping to the host, recomputation hints), which a CPU does not need;
  * the layout optimizer (~0.5 s) converts convolution layouts; a
    transformer has none.

Turning them off cuts the warm-up by ~3 s without changing the step's ops
or its time. Only on hosts without GPUs or TPUs: on a GPU the memory
optimizer's swapping can matter for models near the memory limit, and on
accelerators the warm-up is a small part of a run anyway.

The options travel with each function call (TF's per-thread
`FunctionCallOptions`: the `ConfigProto` grappler reads at a function's first
call); TF exposes no public switch for the iteration count or the memory
optimizer, so this uses the eager context's call options and falls back to
TF's defaults if that interface ever moves.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import tensorflow as tf


def _lean_call_options(base):
  """`base` (FunctionCallOptions) with the three passes above turned off."""
  # pylint: disable=import-outside-toplevel
  from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
  from tensorflow.python.eager import context
  config = config_pb2.ConfigProto()
  config.ParseFromString(base.config_proto_serialized)
  rewrite = config.graph_options.rewrite_options
  options = rewriter_config_pb2.RewriterConfig
  if rewrite.meta_optimizer_iterations == options.DEFAULT_NUM_ITERS:
    rewrite.meta_optimizer_iterations = options.ONE
  if rewrite.memory_optimization == options.DEFAULT_MEM_OPT:
    rewrite.memory_optimization = options.NO_MEM_OPT
  if rewrite.layout_optimizer == options.DEFAULT:
    rewrite.layout_optimizer = options.OFF
  return context.FunctionCallOptions(executor_type=base.executor_type, config_proto=config)


def _eager_context():
  """TF's eager context object, or None if its interface is not the expected one."""
  try:
    from tensorflow.python.eager import context  # pylint: disable=import-outside-toplevel
    ctx = context.context()
    ctx.function_call_options.config_proto_serialized  # pylint: disable=pointless-statement
    return ctx
  except (ImportError, AttributeError):  # pragma: no cover - a future TF
    return None


@contextlib.contextmanager
def lean_graph_optimization(enabled: Optional[bool] = None) -> Iterator[bool]:
  """Calls of `tf.function`s inside run with the lighter grappler options (see module doc).

  Args:
    enabled: True/False forces it on/off; None (default) turns it on when no
      GPU or TPU is visible.

  Yields:
    Whether the lighter options are in effect.
  """
  if enabled is None:
    enabled = not (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("TPU"))
  ctx = _eager_context() if enabled else None
  if ctx is None:
    yield False
    return
  base = ctx.function_call_options
  ctx.function_call_options = _lean_call_options(base)
  try:
    yield True
  finally:
    ctx.function_call_options = base
