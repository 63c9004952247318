"""The lighter grappler options for the training step: which passes, only their
defaults overridden, restored afterwards, and in effect when the trainer's step
is traced and first run."""
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from training import graph_options

RC = rewriter_config_pb2.RewriterConfig


def current_rewrite_options():
  config = config_pb2.ConfigProto()
  config.ParseFromString(context.context().function_call_options.config_proto_serialized)
  return config.graph_options.rewrite_options


def test_turns_off_three_passes_and_restores_the_options():
  before = context.context().function_call_options
  with graph_options.lean_graph_optimization(enabled=True) as active:
    assert active
    rewrite = current_rewrite_options()
    assert rewrite.meta_optimizer_iterations == RC.ONE
    assert rewrite.memory_optimization == RC.NO_MEM_OPT
    assert rewrite.layout_optimizer == RC.OFF
    # Everything else keeps TF's defaults.
    assert rewrite.constant_folding == RC.DEFAULT
    assert rewrite.remapping == RC.DEFAULT
  assert context.context().function_call_options is before
  assert current_rewrite_options().meta_optimizer_iterations == RC.DEFAULT_NUM_ITERS


def test_disabled_changes_nothing():
  before = context.context().function_call_options
  with graph_options.lean_graph_optimization(enabled=False) as active:
    assert not active
    assert context.context().function_call_options is before


def test_a_users_explicit_setting_wins():
  tf.config.optimizer.set_experimental_options({"layout_optimizer": True})
  try:
    with graph_options.lean_graph_optimization(enabled=True):
      assert current_rewrite_options().layout_optimizer == RC.ON
      assert current_rewrite_options().memory_optimization == RC.NO_MEM_OPT
  finally:
    tf.config.optimizer.set_experimental_options({"layout_optimizer": None})


def test_default_is_on_without_a_gpu_or_tpu():
  accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
  with graph_options.lean_graph_optimization() as active:
    assert active == (not accelerators)


def test_functions_compute_the_same_under_the_lighter_options():
  x = np.random.RandomState(0).normal(size=[8, 16]).astype(np.float32)

  def f(x):
    y = tf.nn.relu(tf.matmul(x, tf.transpose(x)) + 1.0)
    return tf.reduce_sum(y * y, axis=-1) - tf.reduce_max(y)

  expected = f(tf.constant(x)).numpy()
  with graph_options.lean_graph_optimization(enabled=True):
    got = tf.function(f)(tf.constant(x)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-6)
