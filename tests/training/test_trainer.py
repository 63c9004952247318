"""The training engine: batch split, replica slice, loop boundaries, loss scaling,
TensorBoard scalars, gradient aggregation (accumulation, replicas, mean/sum),
exact resume and released-checkpoint restore, on a tiny linear model whose
gradients numpy computes independently."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from model import checkpointing, modeling
from model.optimization import create_optimizer
from training import trainer as trainer_lib
from training.trainer import TrainSettings, Trainer
from util import cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN, OUT, BATCH, STEPS = 5, 3, 8, 4  # odd sizes, so a swapped axis fails


class Linear(modeling.NamedModule):
  """pred = x W + b with TF1 names `linear/kernel` [IN, OUT] and `linear/bias` [OUT]."""

  def __init__(self, kernel: np.ndarray, bias: np.ndarray):
    super().__init__("linear")
    self.kernel = self.create_variable("kernel", kernel.shape, modeling.zeros())
    self.bias = self.create_variable("bias", bias.shape, modeling.zeros())
    self.kernel.assign(kernel)
    self.bias.assign(bias)


def initial_weights(seed: int = 0):
  rng = np.random.RandomState(seed)
  return (rng.normal(size=[IN, OUT]).astype(np.float32),
          rng.normal(size=[OUT]).astype(np.float32))


def batches(num_steps: int = STEPS, seed: int = 1):
  """Distinct global batches {"x": [BATCH, IN], "y": [BATCH, OUT]} per step."""
  rng = np.random.RandomState(seed)
  return {"x": rng.normal(size=[num_steps, BATCH, IN]).astype(np.float32),
          "y": rng.normal(size=[num_steps, BATCH, OUT]).astype(np.float32)}


def squared_error_loss(model: Linear, reduction: str, noise: bool = False):
  """Σ_outputs (x W + b - y [+ noise(seed)])², averaged or summed over the batch."""
  def loss_fn(batch, seed):
    error = tf.matmul(batch["x"], model.kernel) + model.bias - batch["y"]
    if noise:
      error += tf.random.stateless_normal(tf.shape(error), seed)
    per_example = tf.reduce_sum(tf.square(error), axis=-1)  # [b]
    loss = tf.reduce_mean(per_example) if reduction == "mean" else tf.reduce_sum(per_example)
    return loss, {"first_error": error[0, 0]}
  return loss_fn


def make_trainer(model_dir, reduction="mean", accumulation=1, strategy=None, num_steps=STEPS,
                 noise=False, seed=0, **settings):
  kernel, bias = initial_weights(seed)
  with trainer_lib.strategy_scope(strategy):
    model = Linear(kernel, bias)
    optimizer = create_optimizer(model.trainable_named_variables(), learning_rate=0.1,
                                 num_train_steps=100, weight_decay_rate=0.01)
  settings = TrainSettings(model_dir=str(model_dir), num_train_steps=num_steps,
                           save_checkpoints_steps=settings.pop("save_checkpoints_steps", 100),
                           grad_accumulation_steps=accumulation, loss_reduction=reduction,
                           seed=7, **settings)
  return Trainer(model, optimizer, squared_error_loss(model, reduction, noise), settings,
                 strategy)


def run_steps(trainer, data, num_steps=STEPS):
  """Runs one step per call; returns the grad norms and the final (kernel, bias)."""
  iterator = iter(tf.data.Dataset.from_tensor_slices(data))
  norms = [float(trainer.train_steps(iterator, 1)["grad_norm"]) for _ in range(num_steps)]
  return norms, trainer.model.kernel.numpy(), trainer.model.bias.numpy()


def numpy_grad_norm(kernel, bias, batch, reduction):
  """Global norm of d loss / d (W, b) at the given weights (independent reference)."""
  error = batch["x"] @ kernel + bias - batch["y"]  # [B, OUT]
  d_error = 2.0 * error / (len(error) if reduction == "mean" else 1.0)
  grad_kernel, grad_bias = batch["x"].T @ d_error, d_error.sum(0)
  return float(np.sqrt(np.sum(grad_kernel ** 2) + np.sum(grad_bias ** 2)))


def aggregation_results(tmp_dir, strategy=None):
  """{case: (first grad norm, final kernel, final bias)} for mean/sum × accumulation 1/2."""
  results = {}
  for reduction in ("mean", "sum"):
    for accumulation in (1, 2):
      trainer = make_trainer(os.path.join(tmp_dir, f"{reduction}{accumulation}"), reduction,
                             accumulation, strategy)
      norms, kernel, bias = run_steps(trainer, batches())
      results[f"{reduction}/{accumulation}"] = (norms[0], kernel.tolist(), bias.tolist())
  return results


# --------------------------------------------------------------------------- small pieces


@pytest.mark.parametrize("step,iterations,save_every,total,expected", [
    (0, 200, 1000, 1000000, 200),  # a full loop
    (900, 200, 1000, 1000000, 100),  # stops at the save point 1000
    (995, 200, 1000, 998, 3),  # stops at the end
    (7, 1, 5, 100, 1),
    (3, 10, 4, 100, 1),  # one step to the save point 4
])
def test_steps_until_boundary(step, iterations, save_every, total, expected):
  settings = TrainSettings("/unused", total, save_every, iterations_per_loop=iterations)
  assert trainer_lib._steps_until_boundary(step, settings) == expected


def test_micro_batch_and_replica_slice_are_contiguous_pieces():
  batch = {"a": tf.reshape(tf.range(12 * 2), [12, 2]), "b": tf.range(12)}
  for index in range(3):
    piece = trainer_lib._micro_batch(batch, tf.constant(index), 3)
    np.testing.assert_array_equal(piece["b"], np.arange(12)[4 * index:4 * index + 4])
    np.testing.assert_array_equal(piece["a"], np.arange(24).reshape(12, 2)[4 * index:4 * index + 4])
    assert piece["a"].shape == (4, 2)
  for replica in range(2):
    piece = trainer_lib._replica_slice(batch, tf.constant(replica), 2)
    np.testing.assert_array_equal(piece["b"], np.arange(6 * replica, 6 * replica + 6))
  assert trainer_lib._micro_batch(batch, tf.constant(0), 1) is batch


def test_check_batch_divisibility():
  assert trainer_lib.check_batch_divisibility(24, 2, 3) == 4
  with pytest.raises(ValueError, match=r"train_batch_size=10 .* replicas \(2\) × "
                                       r"grad_accumulation_steps \(3\)"):
    trainer_lib.check_batch_divisibility(10, 2, 3)


def test_invalid_hparams_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="mixed_precision must be one of"):
    trainer_lib.compute_dtype("fp8")
  with pytest.raises(ValueError, match="distribution_strategy must be one of"):
    trainer_lib.make_strategy("horovod")
  with pytest.raises(ValueError, match="tpu_name"):
    trainer_lib.make_strategy("tpu")
  with pytest.raises(ValueError, match="grad_accumulation_steps must be >= 1"):
    make_trainer(tmp_path, accumulation=0)
  with pytest.raises(ValueError, match="loss_reduction"):
    make_trainer(tmp_path, reduction="max")
  assert trainer_lib.make_strategy("one_device") is None
  assert trainer_lib.compute_dtype("bf16") == tf.bfloat16


def test_dynamic_loss_scale_halves_on_overflow_and_doubles_after_interval():
  scale = trainer_lib.DynamicLossScale(initial_scale=8.0, growth_interval=3)
  history = []
  for finite in (True, True, True, False, True, False, False, False, False):
    scale.update(tf.constant(finite))
    history.append((float(scale.scale.numpy()), int(scale.good_steps.numpy())))
  # Hand-checked: 3 finite steps double 8 -> 16; each overflow halves (not below 1).
  assert history == [(8.0, 1), (8.0, 2), (16.0, 0), (8.0, 0), (8.0, 1), (4.0, 0), (2.0, 0),
                     (1.0, 0), (1.0, 0)]


def read_scalars(directory):
  """{tag: [(step, value)]} from the event files in `directory` (Event protos)."""
  found = {}
  for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        assert value.metadata.plugin_data.plugin_name == "scalars"
        scalar = tf.make_ndarray(value.tensor)
        found.setdefault(value.tag, []).append((event.step, float(scalar)))
  return found


def test_write_scalars_are_readable_tensorboard_scalars(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  trainer_lib.write_scalars(writer, 3, {"loss": 1.5, "learning_rate": 2e-4})
  trainer_lib.write_scalars(writer, 7, {"loss": 0.25})
  writer.close()
  scalars = read_scalars(str(tmp_path))
  assert scalars["loss"] == [(3, 1.5), (7, 0.25)]
  assert scalars["learning_rate"] == [(3, pytest.approx(2e-4))]


# --------------------------------------------------------------------------- aggregation


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_grad_norm_is_that_of_the_global_batch_loss(tmp_path, reduction):
  trainer = make_trainer(tmp_path, reduction, accumulation=2)
  data = batches()
  kernel, bias = initial_weights()
  norms, _, _ = run_steps(trainer, data, num_steps=1)
  first = {k: v[0] for k, v in data.items()}
  assert norms[0] == pytest.approx(numpy_grad_norm(kernel, bias, first, reduction), rel=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_grad_accumulation_2_equals_1(tmp_path, reduction):
  one = run_steps(make_trainer(tmp_path / "one", reduction, accumulation=1), batches())
  two = run_steps(make_trainer(tmp_path / "two", reduction, accumulation=2), batches())
  np.testing.assert_allclose(one[0], two[0], rtol=1e-5)
  np.testing.assert_allclose(one[1], two[1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(one[2], two[2], rtol=1e-5, atol=1e-6)
  assert not np.allclose(one[1], initial_weights()[0], atol=1e-3)  # it did train


_MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.training import test_trainer as t
from training import trainer as trainer_lib
strategy = trainer_lib.make_strategy("mirrored")
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "results": t.aggregation_results(sys.argv[1], strategy)}))
"""


def test_two_replicas_give_the_single_device_update(tmp_path):
  """MirroredStrategy over 2 logical CPUs == one device, same global batch (mean and sum)."""
  process = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path / "mirrored")],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert process.returncode == 0, process.stderr[-3000:]
  mirrored = json.loads(process.stdout.strip().splitlines()[-1])
  assert mirrored["replicas"] == 2
  single = aggregation_results(str(tmp_path / "single"))
  for case, (norm, kernel, bias) in single.items():
    other_norm, other_kernel, other_bias = mirrored["results"][case]
    assert other_norm == pytest.approx(norm, rel=1e-5), case
    np.testing.assert_allclose(other_kernel, kernel, rtol=1e-5, atol=1e-6, err_msg=case)
    np.testing.assert_allclose(other_bias, bias, rtol=1e-5, atol=1e-6, err_msg=case)


# --------------------------------------------------------------------------- loop, resume


def test_one_call_runs_num_steps_and_traces_once(tmp_path):
  trainer = make_trainer(tmp_path, num_steps=100)
  data = batches(num_steps=9)
  iterator = iter(tf.data.Dataset.from_tensor_slices(data))
  for num_steps in (1, 3, 5):
    trainer.train_steps(iterator, num_steps)
  assert int(trainer.global_step.numpy()) == 9
  assert trainer.train_loop_traces == 1
  with pytest.raises((tf.errors.OutOfRangeError, StopIteration)):
    next(iterator)  # every batch was consumed, one per step


def list_variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)}


def noisy_dataset():
  """Shuffled (seeded) batches, so the resumed input position matters."""
  data = batches(num_steps=5)
  examples = {k: v.reshape(5 * BATCH, -1) for k, v in data.items()}
  return tf.data.Dataset.from_tensor_slices(examples).shuffle(16, seed=3).repeat().batch(
      BATCH, drop_remainder=True)


def copy_checkpoint(src_dir, step, dst_dir, with_trainer_state=True):
  os.makedirs(dst_dir)
  for path in glob.glob(os.path.join(src_dir, f"model.ckpt-{step}.*")):
    if with_trainer_state or ".trainer_state" not in path:
      shutil.copy(path, dst_dir)
  with open(os.path.join(dst_dir, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "model.ckpt-{step}"\n'
            f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')


def test_resume_continues_exactly_and_needs_the_input_position(tmp_path):
  full = make_trainer(tmp_path / "full", noise=True, num_steps=6, save_checkpoints_steps=3,
                      keep_checkpoint_max=0)
  full.restore_or_initialize()
  full.train(noisy_dataset())
  reference = list_variables(str(tmp_path / "full" / "model.ckpt-6"))
  assert {"linear/kernel/adam_m", "linear/bias/adam_v", "global_step"} <= set(reference)

  def resumed(name, with_trainer_state):
    copy_checkpoint(tmp_path / "full", 3, tmp_path / name, with_trainer_state)
    trainer = make_trainer(tmp_path / name, noise=True, num_steps=6, save_checkpoints_steps=3,
                           seed=5)  # other initial weights: the checkpoint must win
    assert trainer.restore_or_initialize() == "resumed"
    trainer.train(noisy_dataset())
    return list_variables(str(tmp_path / name / "model.ckpt-6"))

  exact = resumed("exact", True)
  for name, value in reference.items():
    np.testing.assert_allclose(exact[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
  # Negative control: without the saved input position the data (and result) differ.
  restarted = resumed("restarted", False)
  assert not np.allclose(restarted["linear/kernel"], reference["linear/kernel"], atol=1e-4)


def test_finished_run_trains_nothing(tmp_path, electra_log):
  trainer = make_trainer(tmp_path, num_steps=2)
  trainer.restore_or_initialize()
  trainer.train(noisy_dataset())
  files = sorted(os.listdir(tmp_path))
  again = make_trainer(tmp_path, num_steps=2)
  again.restore_or_initialize()
  assert again.train(noisy_dataset()) == {}
  assert "Nothing to train: global step 2 has reached num_train_steps 2." in electra_log.text
  assert sorted(os.listdir(tmp_path)) == files


def write_released(directory, model, global_step=None):
  """A released-style checkpoint: `<dir>/electra_small` with model variables only."""
  os.makedirs(directory, exist_ok=True)
  variables = dict(model.named_variables())
  names = sorted(variables)
  tensors = [variables[n].read_value() for n in names]
  if global_step is not None:
    names.append("global_step")
    tensors.append(tf.constant(global_step, tf.int64))
  tf.raw_ops.SaveV2(prefix=os.path.join(directory, "electra_small"), tensor_names=names,
                    shape_and_slices=[""] * len(names), tensors=tensors)
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "electra_small"\n'
            'all_model_checkpoint_paths: "electra_small"\n')


@pytest.mark.parametrize("global_step", [None, 7])
def test_released_checkpoint_without_slots_continues(tmp_path, electra_log, global_step):
  released = make_trainer(tmp_path / "unused", seed=11)
  write_released(tmp_path / "run", released.model, global_step)
  trainer = make_trainer(tmp_path / "run", num_steps=(global_step or 0) + 2, keep_checkpoint_max=1)
  assert trainer.restore_or_initialize() == "resumed"
  np.testing.assert_array_equal(trainer.model.kernel.numpy(), released.model.kernel.numpy())
  assert int(trainer.global_step.numpy()) == (global_step or 0)
  assert "optimizer slots start at zero" in electra_log.text
  assert ("has no global_step" in electra_log.text) == (global_step is None)
  trainer.train(noisy_dataset())
  final = list_variables(checkpointing.latest_checkpoint(str(tmp_path / "run")))
  assert final["global_step"] == (global_step or 0) + 2
  assert np.any(final["linear/kernel/adam_m"] != 0)
  assert os.path.exists(tmp_path / "run" / "electra_small.index")  # keep-N never deletes it


def test_fp16_overflowed_steps_leave_weights_unchanged_and_halve_the_scale(tmp_path):
  """float16 gradients d kernel = Σ_batch 2·10·scale/B overflow until they fit in 65504."""
  with trainer_lib.strategy_scope(None):
    model = Linear(np.full([IN, OUT], 2.0, np.float32), np.zeros([OUT], np.float32))
    optimizer = create_optimizer(model.trainable_named_variables(), 0.1, 100)

  def loss_fn(batch, seed):
    y = tf.matmul(tf.cast(batch["x"], tf.float16), tf.cast(model.kernel, tf.float16))
    y += tf.cast(model.bias, tf.float16)  # y = 10 everywhere
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.cast(y, tf.float32)), -1)), {}

  settings = TrainSettings(str(tmp_path), 100, 100, mixed_precision="fp16", seed=1)
  trainer = Trainer(model, optimizer, loss_fn, settings)
  data = {"x": np.ones([10, 4, IN], np.float32)}
  iterator = iter(tf.data.Dataset.from_tensor_slices(data))
  # numpy: dy = 2·10/4·scale per element, d kernel = Σ_batch dy = 4·dy (x = 1).
  scale, expected_skips = 2.0 ** 15, 0
  while 4 * (5.0 * scale) > 65504:
    scale, expected_skips = scale / 2, expected_skips + 1
  for step in range(expected_skips):
    scalars = trainer.train_steps(iterator, 1)
    np.testing.assert_array_equal(model.kernel.numpy(), 2.0)
    assert float(scalars["loss_scale"]) == 2.0 ** (14 - step)
  trainer.train_steps(iterator, 1)
  assert np.all(model.kernel.numpy() < 2.0)  # the first finite step applied
  assert float(trainer.loss_scale.scale.numpy()) == scale
  assert int(trainer.loss_scale.good_steps.numpy()) == 1


def test_nan_loss_stops_training_with_a_clear_error(tmp_path):
  trainer = make_trainer(tmp_path, num_steps=3)
  trainer.loss_fn = lambda batch, seed: (tf.constant(float("nan")), {})
  with pytest.raises(FloatingPointError, match="Lower learning_rate"):
    trainer.train(noisy_dataset())


# --------------------------------------------------------------------------- reliability


def test_input_that_yields_nothing_fails_fast_with_a_clear_error(tmp_path):
  trainer = make_trainer(tmp_path, num_steps=3)
  empty = tf.data.Dataset.from_tensor_slices(batches(1)).take(0)
  with pytest.raises(cli.DataError, match="training data ran out at global step 0"):
    trainer.train(empty)


def test_on_start_runs_only_when_training_really_starts(tmp_path):
  calls = []
  trainer = make_trainer(tmp_path, num_steps=2)
  trainer.train(noisy_dataset(), on_start=lambda: calls.append(
      checkpointing.latest_checkpoint(str(tmp_path))))
  assert calls == [None]  # before the step-0 checkpoint
  finished = make_trainer(tmp_path, num_steps=2)
  finished.restore_or_initialize()
  finished.train(noisy_dataset(), on_start=lambda: calls.append("again"))
  assert calls == [None]


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path, electra_log):
  trainer = make_trainer(tmp_path, num_steps=100, save_checkpoints_steps=50,
                         iterations_per_loop=3)
  real_train_steps = trainer.train_steps

  def train_steps_then_sigterm(iterator, num_steps):
    os.kill(os.getpid(), signal.SIGTERM)  # handled between two host loops
    return real_train_steps(iterator, num_steps)
  trainer.train_steps = train_steps_then_sigterm
  previous = signal.getsignal(signal.SIGTERM)
  with pytest.raises(trainer_lib.TrainingStopped, match="SIGTERM: stopped at global step 3"):
    trainer.train(noisy_dataset())
  assert signal.getsignal(signal.SIGTERM) == previous
  assert checkpointing.checkpoint_step(checkpointing.latest_checkpoint(str(tmp_path))) == 3
  assert "SIGTERM received: stopping after the running steps and a checkpoint" in (
      electra_log.text)
  resumed = make_trainer(tmp_path, num_steps=6, save_checkpoints_steps=50)
  assert resumed.restore_or_initialize() == "resumed"
  assert int(resumed.global_step.numpy()) == 3


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, electra_log):
  trainer = make_trainer(tmp_path, num_steps=4, save_checkpoints_steps=2, keep_checkpoint_max=0)
  trainer.restore_or_initialize()
  trainer.train(noisy_dataset())
  data = str(tmp_path / "model.ckpt-4.data-00000-of-00001")
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) // 2)
  resumed = make_trainer(tmp_path, num_steps=4, save_checkpoints_steps=2)
  assert resumed.restore_or_initialize() == "resumed"
  assert int(resumed.global_step.numpy()) == 2
  assert f"Checkpoint {tmp_path}/model.ckpt-4 is corrupt" in electra_log.text
  resumed.train(noisy_dataset())  # re-saves step 4 over the damaged files
  assert checkpointing.is_intact(str(tmp_path / "model.ckpt-4"))


def test_the_step_is_traced_with_fused_kernels_and_the_lighter_graph_options(tmp_path):
  from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
  from tensorflow.python.eager import context
  trainer = make_trainer(tmp_path, num_steps=100)
  seen, fused = [], []
  loss_fn = trainer.loss_fn

  def recording_loss_fn(batch, seed):
    config = config_pb2.ConfigProto()  # the options the first call hands to grappler
    config.ParseFromString(context.context().function_call_options.config_proto_serialized)
    seen.append(config.graph_options.rewrite_options.meta_optimizer_iterations)
    fused.append(modeling.elementwise_fusion_enabled())
    return loss_fn(batch, seed)

  trainer.loss_fn = recording_loss_fn
  trainer.train_steps(iter(tf.data.Dataset.from_tensor_slices(batches(num_steps=2))), 2)
  expected = (rewriter_config_pb2.RewriterConfig.DEFAULT_NUM_ITERS
              if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
              else rewriter_config_pb2.RewriterConfig.ONE)
  assert seen == [expected]
  assert fused == [True]  # GELU etc. as XLA kernels inside the step only
  assert not modeling.elementwise_fusion_enabled()
  assert int(trainer.global_step.numpy()) == 2
