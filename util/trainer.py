"""The training engine shared by pre-training and fine-tuning.

What the original did with a TPUEstimator, in plain TF2: a `tf.function` train
step (forward, backward, global-norm clipping, AdamWeightDecay, global step),
a Python outer loop that logs progress with ETA, writes TensorBoard scalars
and saves name-based checkpoints every `save_checkpoints_steps`, and resume
from the latest checkpoint in `model_dir`.

Beyond the original:
  * exact resume: the host `tf.data` iterator and the run seed are saved in
    a side file next to each checkpoint, and every random op draws from
    stateless seeds derived from (run seed, global step, replica, micro-batch),
    so an interrupted run continues with exactly the numbers it would have
    drawn;
  * `tf.distribute`: the host iterator yields the global batch; each replica
    takes its slice, gradients are summed across replicas (per-replica mean
    losses are divided by the number of replicas first, so the update is that
    of the global batch mean, like the original's TPU cross-shard optimizer);
  * gradient accumulation over `grad_accumulation_steps` micro-batches,
    XLA (`use_xla`), and mixed precision (`bf16`; `fp16` with dynamic loss
    scaling).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from model import checkpointing
from model.modeling import NamedModule
from model.optimization import ElectraOptimizer, all_reduce_gradients
from util.training_utils import ETALogger

logger = logging.getLogger("electra")

# (loss, scalars to log) = loss_fn(batch, seed); `batch` is this replica's
# micro-batch, `seed` a [2] int32 stateless seed.
LossFn = Callable[[Dict[str, tf.Tensor], tf.Tensor], Tuple[tf.Tensor, Dict[str, tf.Tensor]]]

COMPUTE_DTYPES = {"off": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def compute_dtype(mixed_precision: str) -> tf.DType:
  """The model compute dtype for the `mixed_precision` hparam."""
  if mixed_precision not in COMPUTE_DTYPES:
    raise ValueError(f"hparam mixed_precision must be one of {sorted(COMPUTE_DTYPES)}; "
                     f"got {mixed_precision!r}.")
  return COMPUTE_DTYPES[mixed_precision]


def make_strategy(name: str = "auto", tpu_name: Optional[str] = None,
                  tpu_zone: Optional[str] = None,
                  gcp_project: Optional[str] = None) -> Optional[tf.distribute.Strategy]:
  """The `distribution_strategy` hparam as a strategy (None: the default, no scope).

  `auto` uses one device unless several GPUs are visible, then `mirrored`;
  `multi_worker` reads the cluster from `TF_CONFIG`; `tpu` needs `tpu_name`.
  """
  if name not in STRATEGIES:
    raise ValueError(f"hparam distribution_strategy must be one of {list(STRATEGIES)}; "
                     f"got {name!r}.")
  if name == "auto":
    name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one_device"
  if name == "one_device":
    return None
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if not tpu_name:
    raise ValueError('distribution_strategy "tpu" needs the tpu_name hparam.')
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu_name, zone=tpu_zone, project=gcp_project)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def strategy_scope(strategy: Optional[tf.distribute.Strategy]):
  """`strategy.scope()`, or the default (no-op) scope for one device."""
  return strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
  """Whether this worker writes checkpoints, summaries and logs."""
  if strategy is None:
    return True
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                           and resolver.task_id == 0)


class DynamicLossScale(tf.Module):
  """fp16 loss scaling: halve on overflow, double after `growth_interval` finite steps."""

  def __init__(self, initial_scale: float = 2.0 ** 15, growth_interval: int = 2000):
    super().__init__(name="loss_scale")
    self.growth_interval = growth_interval
    self.scale = tf.Variable(initial_scale, dtype=tf.float32, trainable=False,
                             name="loss_scale", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_scale_good_steps",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def update(self, grads_finite: tf.Tensor) -> None:
    grow = tf.logical_and(grads_finite, self.good_steps + 1 >= self.growth_interval)
    self.scale.assign(tf.where(grads_finite, tf.where(grow, self.scale * 2.0, self.scale),
                               tf.maximum(self.scale / 2.0, 1.0)))
    self.good_steps.assign(tf.where(tf.logical_and(grads_finite, tf.logical_not(grow)),
                                    self.good_steps + 1, tf.zeros([], tf.int64)))


@dataclasses.dataclass
class TrainSettings:
  """How to train; filled from a PretrainingConfig or FinetuningConfig."""
  model_dir: str
  num_train_steps: int
  save_checkpoints_steps: int
  keep_checkpoint_max: Optional[int] = 5
  iterations_per_loop: int = 1
  log_every: int = 1
  use_xla: bool = False
  mixed_precision: str = "off"
  grad_accumulation_steps: int = 1
  seed: Optional[int] = None
  loss_reduction: str = "mean"  # "mean": per-example mean losses; "sum": batch sums


class Trainer:
  """Trains a `NamedModule` with an `ElectraOptimizer` under an optional strategy.

  Build the model and the optimizer inside `strategy_scope(strategy)` first;
  the trainer creates `global_step` there too.

  Args:
    model: the model; its `named_variables()` are checkpointed.
    optimizer: owns the trainable variables (in `model.trainable_named_variables()`
      order) and their slots.
    loss_fn: (micro-batch features, seed) -> (scalar float32 loss, scalars to log).
    settings: steps, checkpointing, precision, XLA, accumulation, seed.
    strategy: a tf.distribute strategy or None for one device.
  """

  def __init__(self, model: NamedModule, optimizer: ElectraOptimizer, loss_fn: LossFn,
               settings: TrainSettings, strategy: Optional[tf.distribute.Strategy] = None):
    if settings.grad_accumulation_steps < 1:
      raise ValueError("hparam grad_accumulation_steps must be >= 1; got "
                       f"{settings.grad_accumulation_steps}.")
    if settings.loss_reduction not in ("mean", "sum"):
      raise ValueError(f"loss_reduction must be 'mean' or 'sum'; got {settings.loss_reduction!r}.")
    self.model = model
    self.optimizer = optimizer
    self.loss_fn = loss_fn
    self.settings = settings
    self.strategy = strategy
    self.num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    self.trainable = model.trainable_named_variables()
    missing = set(self.trainable) - set(optimizer.adam.variable_names)
    if missing:
      raise ValueError(f"The optimizer does not own these trainable variables: {sorted(missing)}")
    with strategy_scope(strategy):
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.run_seed = tf.Variable(_initial_seed(settings.seed), dtype=tf.int64, trainable=False,
                                  name="run_seed",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.loss_scale = DynamicLossScale() if settings.mixed_precision == "fp16" else None
    self._train_loop = None
    self._compute = None
    self._pending_restore: Optional[str] = None
    self.is_chief = is_chief(strategy)

  # ------------------------------------------------------------------ state
  def checkpoint_variables(self) -> Dict[str, tf.Variable]:
    """Everything saved in the original's name contract: model, slots, global_step."""
    variables = dict(self.model.named_variables())
    variables.update(self.optimizer.named_slot_variables())
    variables["global_step"] = self.global_step
    return variables

  def _extra_state(self, iterator=None) -> Dict[str, object]:
    extra: Dict[str, object] = {"run_seed": self.run_seed}
    if self.loss_scale is not None:
      extra["loss_scale"] = self.loss_scale
    if iterator is not None:
      extra["data_iterator"] = iterator
    return extra

  def restore_or_initialize(self, init_checkpoint: Optional[str] = None) -> str:
    """Resumes from `model_dir` if it has a checkpoint, else loads `init_checkpoint`.

    Returns:
      "resumed", "initialized" (partial load from init_checkpoint) or "fresh".
    """
    latest = checkpointing.latest_checkpoint(self.settings.model_dir)
    if latest is not None:
      checkpointing.restore_checkpoint(latest, self.checkpoint_variables())
      logger.info("Resuming from %s (global step %d)", latest, int(self.global_step.numpy()))
      self._pending_restore = latest
      return "resumed"
    self._pending_restore = None
    if init_checkpoint:
      checkpointing.restore_checkpoint(init_checkpoint, self.checkpoint_variables(), partial=True)
      return "initialized"
    return "fresh"

  def save(self, iterator=None) -> Optional[str]:
    """Writes a checkpoint at the current global step (chief only)."""
    if not self.is_chief:
      return None
    return checkpointing.save_checkpoint(
        self.settings.model_dir, int(self.global_step.numpy()), self.checkpoint_variables(),
        keep_checkpoint_max=self.settings.keep_checkpoint_max,
        extra_state=self._extra_state(iterator))

  # ------------------------------------------------------------------ step
  def _replica_gradients(self, batch: Dict[str, tf.Tensor], seed: tf.Tensor):
    """This replica's gradients of its share of the global batch, accumulated."""
    accumulation = self.settings.grad_accumulation_steps
    micro_batches = _split_batch(batch, accumulation)
    variables = list(self.trainable.values())
    # Mean losses: each micro-batch/replica contributes its mean / (count); sums add up.
    divisor = float(accumulation * self.num_replicas) if self.settings.loss_reduction == "mean" else 1.0
    total_grads = None
    total_loss = tf.zeros([], tf.float32)
    scalars_sum: Dict[str, tf.Tensor] = {}
    for i, micro_batch in enumerate(micro_batches):
      micro_seed = tf.random.experimental.stateless_fold_in(seed, i)
      with tf.GradientTape() as tape:
        loss, scalars = self.loss_fn(micro_batch, micro_seed)
        loss = tf.cast(loss, tf.float32)
        scaled = loss / divisor
        if self.loss_scale is not None:
          scaled = scaled * self.loss_scale.scale
      grads = tape.gradient(scaled, variables)
      grads = [None if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32) for g in grads]
      total_grads = grads if total_grads is None else [
          a if b is None else (b if a is None else a + b) for a, b in zip(total_grads, grads)]
      total_loss += loss
      for key, value in scalars.items():
        scalars_sum[key] = scalars_sum.get(key, 0.0) + tf.cast(value, tf.float32)
    scalars_mean = {k: v / accumulation for k, v in scalars_sum.items()}
    scalars_mean["loss"] = total_loss / accumulation
    return total_grads, scalars_mean

  def _step(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """One optimizer step, in replica context (or without a strategy)."""
    replica_id = 0
    if self.strategy is not None:
      replica_context = tf.distribute.get_replica_context()
      replica_id = replica_context.replica_id_in_sync_group
      batch = _replica_slice(batch, replica_id, self.num_replicas)
    step_seed = tf.random.experimental.stateless_fold_in(
        tf.stack([self.run_seed, tf.constant(0, tf.int64)]), self.global_step)
    seed = tf.random.experimental.stateless_fold_in(step_seed, replica_id)
    grads, scalars = self._compute(batch, seed)
    grads = all_reduce_gradients(grads)
    lr_scale = None
    if self.loss_scale is not None:
      grads = [None if g is None else g / self.loss_scale.scale for g in grads]
      finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
      # An overflowed step leaves the weights unchanged (zero gradient, zero LR).
      grads = [None if g is None else tf.where(finite, g, tf.zeros_like(g)) for g in grads]
      lr_scale = tf.cast(finite, tf.float32)
      self.loss_scale.update(finite)
    info = self.optimizer.apply_gradients(grads, self.global_step, lr_scale=lr_scale)
    self.global_step.assign_add(1)
    scalars = dict(scalars)
    scalars["learning_rate"] = info.learning_rate
    scalars["grad_norm"] = info.grad_norm
    return scalars

  def _build_train_loop(self):
    compute = self._replica_gradients
    if self.settings.use_xla:
      compute = tf.function(compute, jit_compile=True)
    self._compute = compute

    @tf.function
    def train_loop(iterator, num_steps):
      scalars = self._run_step(next(iterator))
      for _ in tf.range(num_steps - 1):
        scalars = self._run_step(next(iterator))
      return scalars
    return train_loop

  def _run_step(self, batch):
    if self.strategy is None:
      return self._step(batch)
    per_replica = self.strategy.run(self._step, args=(batch,))
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  # ------------------------------------------------------------------ loop
  def train(self, dataset: tf.data.Dataset, summary_dir: Optional[str] = None,
            log_every: Optional[int] = None) -> Dict[str, float]:
    """Trains until `num_train_steps` (absolute), saving and logging on the way.

    Args:
      dataset: yields global batches (dict of [train_batch_size, ...] tensors),
        repeated as long as needed.
      summary_dir: TensorBoard directory (default `model_dir`).
      log_every: progress-line interval (default `settings.log_every`).

    Returns:
      The last logged scalars as floats ({} if nothing was trained).
    """
    settings = self.settings
    iterator = iter(dataset)
    if self._pending_restore:
      if checkpointing.restore_extra_state(self._pending_restore, self._extra_state(iterator)):
        logger.info("Restored the input position and run seed of %s", self._pending_restore)
      else:
        logger.info("%s has no trainer state (input position): the input starts from the "
                    "beginning", self._pending_restore)
    step = int(self.global_step.numpy())
    if step >= settings.num_train_steps:
      logger.info("Nothing to train: global step %d has reached num_train_steps %d.",
                  step, settings.num_train_steps)
      return {}
    if self._train_loop is None:
      self._train_loop = self._build_train_loop()
    if checkpointing.latest_checkpoint(settings.model_dir) is None:
      self.save(iterator)  # like the Estimator: a step-0 checkpoint to resume from
    writer = (tf.summary.create_file_writer(summary_dir or settings.model_dir)
              if self.is_chief else tf.summary.create_noop_writer())
    log_every = log_every or settings.log_every
    eta = ETALogger(settings.num_train_steps, log_every=log_every)
    last: Dict[str, float] = {}
    while step < settings.num_train_steps:
      num_steps = _steps_until_boundary(step, settings)
      eta.before_step()
      scalars = self._train_loop(iterator, tf.constant(num_steps, tf.int64))
      step = int(self.global_step.numpy())
      values = {k: float(v.numpy()) for k, v in scalars.items()}
      last = values
      if not np.isfinite(values["loss"]):
        raise FloatingPointError(
            f"The loss became {values['loss']} at step {step}. Lower learning_rate, or use "
            "mixed_precision \"bf16\"/\"off\" instead of \"fp16\"; the last checkpoint is intact.")
      eta.after_step(step, {"loss": values["loss"]}, steps_run=num_steps)
      if step % log_every == 0 or step == settings.num_train_steps:
        write_scalars(writer, step, values)
      if step % settings.save_checkpoints_steps == 0 or step == settings.num_train_steps:
        self.save(iterator)
    eta.end(step)
    writer.flush()
    return last


def write_scalars(writer, step: int, values: Dict[str, float]) -> None:
  """TensorBoard scalars without the `tensorboard` package (core `tf.summary.write`).

  The metadata names the "scalars" plugin, which is what TensorBoard's own
  `tf.summary.scalar` writes, so the curves show up as usual.
  """
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "scalars"
  with writer.as_default(step=step):
    for key, value in values.items():
      tf.summary.write(key, tf.constant(value, tf.float32), metadata=metadata)


def _initial_seed(seed: Optional[int]) -> int:
  """The run seed: the `seed` hparam, or a random one (saved with the checkpoints)."""
  return int(seed) if seed is not None else random.SystemRandom().randrange(1, 2 ** 31)


def _steps_until_boundary(step: int, settings: TrainSettings) -> int:
  """Steps in the next host loop: up to a save point, the end, or iterations_per_loop."""
  to_save = settings.save_checkpoints_steps - step % settings.save_checkpoints_steps
  return max(1, min(settings.iterations_per_loop, to_save, settings.num_train_steps - step))


def _split_batch(batch: Dict[str, tf.Tensor], parts: int):
  """Splits every feature along the batch axis into `parts` equal micro-batches."""
  if parts == 1:
    return [batch]
  pieces = {k: tf.split(v, parts, axis=0) for k, v in batch.items()}
  return [{k: pieces[k][i] for k in batch} for i in range(parts)]


def _replica_slice(batch: Dict[str, tf.Tensor], replica_id, num_replicas: int):
  """This replica's contiguous slice of the global batch."""
  def take(x):
    size = x.shape[0] // num_replicas  # static: batches are drop_remainder
    piece = x[replica_id * size:(replica_id + 1) * size]
    piece.set_shape([size] + x.shape[1:])
    return piece
  return {k: take(v) for k, v in batch.items()}


def check_batch_divisibility(batch_size: int, num_replicas: int, accumulation: int,
                             hparam: str = "train_batch_size") -> int:
  """The micro-batch size per replica; raises if the global batch does not divide."""
  if batch_size % (num_replicas * accumulation):
    raise ValueError(
        f"hparam {hparam}={batch_size} must be divisible by the number of replicas "
        f"({num_replicas}) × grad_accumulation_steps ({accumulation}).")
  return batch_size // (num_replicas * accumulation)


def describe_devices(strategy: Optional[tf.distribute.Strategy]) -> str:
  """One log line: the devices and strategy in use."""
  gpus = tf.config.list_logical_devices("GPU")
  where = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
  name = type(strategy).__name__ if strategy is not None else "single device"
  return f"Devices: {where}; strategy: {name}"

