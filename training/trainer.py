"""The training engine shared by pre-training and fine-tuning.

What the original did with a TPUEstimator, in plain TF2: a `tf.function` train
step (forward, backward, global-norm clipping, AdamWeightDecay, global step),
a Python outer loop that logs progress with ETA, writes TensorBoard scalars
and saves name-based checkpoints every `save_checkpoints_steps` (plus at step 0
and at the end, like the Estimator), and resume from the latest checkpoint in
`model_dir` (see docs/cli.md#run_pretrainingpy "Resume behaviour", docs/model.md#optimizer).

Beyond the original:
  * exact resume: the host `tf.data` iterator and the run seed are saved in a
    sidecar next to each checkpoint, and every random op draws from stateless
    seeds derived from (run seed, global step, replica, micro-batch), so an
    interrupted run (even by kill -9) continues with exactly the numbers the
    uninterrupted run would have drawn;
  * `iterations_per_loop` steps run inside one `tf.function` call (the host
    syncs, logs and may save only between calls), on every device, not only
    TPUs; the function is traced once;
  * `tf.distribute`: the host iterator yields the global batch and each
    replica takes its contiguous slice; gradients are all-reduced (summed)
    after per-replica mean losses are divided by the number of replicas, so the
    update is that of the global batch mean;
  * `grad_accumulation_steps` micro-batches run one after the other in a
    `tf.while_loop` (so only one micro-batch's activations are alive);
  * `use_xla`: on one device the whole step (forward, backward, clipping, Adam)
    is one XLA cluster; under a strategy the per-replica forward/backward is;
  * `mixed_precision`: "bf16", or "fp16" with dynamic loss scaling (an
    overflowed step leaves the weights unchanged and halves the scale).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import signal
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from model import checkpointing, modeling, stateless_random
from model.modeling import NamedModule
from model.optimization import ElectraOptimizer, all_reduce_gradients
from training import graph_options, workers
from training.progress import ETALogger
from util import cli, signals

logger = logging.getLogger("electra")

# (loss, scalars to log) = loss_fn(batch, seed); `batch` is this replica's
# micro-batch (dict of [b, ...] tensors), `seed` an int [2] stateless seed.
LossFn = Callable[[Dict[str, tf.Tensor], tf.Tensor], Tuple[tf.Tensor, Dict[str, tf.Tensor]]]

COMPUTE_DTYPES = {"off": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def compute_dtype(mixed_precision: str) -> tf.DType:
  """The model compute dtype for the `mixed_precision` hparam.

  Raises:
    ValueError: an unknown value.
  """
  if mixed_precision not in COMPUTE_DTYPES:
    raise ValueError(f"hparam mixed_precision must be one of {sorted(COMPUTE_DTYPES)}; "
                     f"got {mixed_precision!r}.")
  return COMPUTE_DTYPES[mixed_precision]


def make_strategy(name: str = "auto", tpu_name: Optional[str] = None,
                  tpu_zone: Optional[str] = None,
                  gcp_project: Optional[str] = None,
                  worker_startup_timeout_s: int = 600,
                  collective_timeout_s: int = 300) -> Optional[tf.distribute.Strategy]:
  """The `distribution_strategy` hparam as a strategy (None: one device, no scope).

  `auto` uses one device unless several GPUs are visible, then `mirrored`;
  `mirrored` uses every visible GPU, or every logical CPU device on a host
  without GPUs; `multi_worker` reads the cluster from `TF_CONFIG`, waits at
  most `worker_startup_timeout_s` for every worker to connect, and lets each
  collective wait at most `collective_timeout_s` for the other workers; `tpu`
  needs `tpu_name`. Call it before anything starts the TensorFlow runtime.

  Raises:
    ValueError: an unknown name, or "tpu" without `tpu_name`.
    cli.UsageError: multi_worker: TF_CONFIG is invalid (names the problem).
    TimeoutError: multi_worker: not every worker connected in time.
    OSError: multi_worker: this worker's port is taken.
  """
  if name not in STRATEGIES:
    raise ValueError(f"hparam distribution_strategy must be one of {list(STRATEGIES)}; "
                     f"got {name!r}.")
  if name == "auto":
    name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one_device"
  if name == "one_device":
    return None
  if name == "mirrored":
    if tf.config.list_logical_devices("GPU"):
      return tf.distribute.MirroredStrategy()
    # No GPU: mirror over the logical CPUs (one unless the script split the CPU).
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
  if name == "multi_worker":
    return _multi_worker_strategy(worker_startup_timeout_s, collective_timeout_s)
  if not tpu_name:
    raise ValueError('distribution_strategy "tpu" needs the tpu_name hparam.')
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu_name, zone=tpu_zone, project=gcp_project)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _multi_worker_strategy(timeout_s: int, collective_timeout_s: int) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy, created once every worker of TF_CONFIG is up.

  TensorFlow waits for the other workers inside one C++ call that holds the
  GIL: no Python runs, not even signal handlers, and SIGTERM is swallowed by
  its preemption notifier. So the waiting happens here first, in Python
  (`training.workers.wait_for_workers`): logged, interruptible, bounded by `timeout_s`.
  Every collective (gradient all-reduce, metric reduction) then gives up after
  `collective_timeout_s` (DeadlineExceededError); a worker that dies is noticed
  sooner, by a refused connection or TensorFlow's missed-heartbeat check
  (UnavailableError). `report_lost_workers` turns both into one error.

  It must be called before anything starts the TensorFlow runtime (tf.data,
  an eager op, listing devices): TensorFlow configures the collective ops
  only at program start-up.

  Raises:
    cli.UsageError: TF_CONFIG is not valid JSON, is malformed, or does not
      put this task in a "worker" (or "chief") job.
    TimeoutError: not every worker connected within `timeout_s`.
    OSError: this worker's port is taken (before or after the wait).
  """
  resolver, addresses = _tf_config_cluster()
  cluster = resolver.cluster_spec()
  own = cluster.task_address(resolver.task_type, resolver.task_id)
  workers.wait_for_workers(own, [a for a in addresses if a != own], timeout_s,
                           f"{resolver.task_type} {resolver.task_id}")
  options = tf.distribute.experimental.CommunicationOptions(
      timeout_seconds=collective_timeout_s)
  try:
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)
  except tf.errors.OpError as e:  # e.g. the port was taken since the wait
    raise OSError(f"Could not start this worker's TensorFlow server at {own} ({e.message}); "
                  "is another process using the port?") from None


_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def _tf_config_cluster() -> Tuple[tf.distribute.cluster_resolver.ClusterResolver, List[str]]:
  """TensorFlow's TF_CONFIG resolver and every worker's address, checked.

  Raises:
    cli.UsageError: naming what is wrong with TF_CONFIG.
  """
  try:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec()
    me = (resolver.task_type, resolver.task_id)
  except json.JSONDecodeError as e:
    raise cli.UsageError(f"TF_CONFIG is not valid JSON ({e}); set it to e.g. "
                         f"{_TF_CONFIG_EXAMPLE}") from None
  except (TypeError, ValueError, KeyError, AttributeError) as e:
    raise cli.UsageError(f"TF_CONFIG is malformed ({e}); set it to e.g. "
                         f"{_TF_CONFIG_EXAMPLE}") from None
  jobs = [job for job in ("chief", "worker") if job in cluster.jobs]
  if not jobs or me[0] not in jobs:
    raise cli.UsageError(
        'distribution_strategy "multi_worker" needs TF_CONFIG with a "worker" (or "chief") '
        f'cluster and this task in it, e.g. {_TF_CONFIG_EXAMPLE}')
  tasks = [(job, index) for job in jobs for index in cluster.task_indices(job)]
  if me not in tasks:
    raise cli.UsageError(f"TF_CONFIG's task {me[0]} {me[1]} is not in "
                         f"its cluster ({', '.join(f'{j} {i}' for j, i in tasks)}).")
  addresses = [cluster.task_address(job, index) for job, index in tasks]
  for (job, index), address in zip(tasks, addresses):
    if not re.fullmatch(r"\S+:\d+", address or ""):
      raise cli.UsageError(f"TF_CONFIG gives {job} {index} the address {address!r}; "
                           "expected host:port.")
  if len(set(addresses)) < len(addresses):
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    raise cli.UsageError(f"TF_CONFIG lists {', '.join(twice)} for more than one task; give "
                         "every worker its own host:port.")
  return resolver, addresses


def is_multi_worker(strategy: Optional[tf.distribute.Strategy]) -> bool:
  """Whether `strategy` spans several worker processes."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  cluster = strategy.cluster_resolver.cluster_spec()
  return sum(cluster.num_tasks(job) for job in ("chief", "worker") if job in cluster.jobs) > 1


class WorkerLostError(cli.DataError):
  """Another worker of a multi_worker run died or stopped answering (exit 1)."""


# What a collective raises once another worker died (refused connection,
# missed heartbeats) or did not answer within collective_timeout_s.
_LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                       tf.errors.AbortedError, tf.errors.CancelledError)


@contextlib.contextmanager
def report_lost_workers(strategy: Optional[tf.distribute.Strategy],
                        model_dir: Optional[str] = None) -> Iterator[None]:
  """Turns a multi-worker collective's failure into one `WorkerLostError`.

  The error names the worker(s) lost (TF_CONFIG address) and the last
  checkpoint in `model_dir` (the chief's), from which a restart of every
  worker resumes. Other strategies pass every error through.

  Args:
    strategy: the run's strategy.
    model_dir: where the chief writes checkpoints (None: not known here).
  """
  if not is_multi_worker(strategy):
    yield
    return
  try:
    yield
  except _LOST_WORKER_ERRORS as e:
    raise WorkerLostError(lost_worker_message(strategy, e, model_dir)) from e


def lost_worker_message(strategy: tf.distribute.Strategy, error: tf.errors.OpError,
                        model_dir: Optional[str]) -> str:
  """The one-line report of a worker that died or stopped answering."""
  resolver = strategy.cluster_resolver
  cluster = resolver.cluster_spec()
  lost = _lost_workers(cluster, (resolver.task_type, resolver.task_id), error.message or "")
  names = " or ".join(f"{job} {index} ({cluster.task_address(job, index)})"
                      for job, index in lost)
  how = ("did not answer within collective_timeout_s (it hangs or is far behind)"
         if isinstance(error, tf.errors.DeadlineExceededError)
         else "is unreachable (it died, hangs or lost its connection)")
  checkpoint = checkpointing.latest_checkpoint(model_dir) if model_dir else None
  if checkpoint:
    resume = f"The last checkpoint is {checkpoint}; restart every worker to resume from it"
  elif model_dir:
    resume = (f"{model_dir} has no checkpoint yet (the chief writes them); restart every "
              "worker to start over")
  else:
    resume = "Restart every worker to resume from the last checkpoint"
  return (f"{names} {how}, so {resolver.task_type} {resolver.task_id} stops too. {resume} "
          "(same TF_CONFIG addresses and hparams).")


def _lost_workers(cluster: tf.train.ClusterSpec, me: Tuple[str, int],
                  message: str) -> List[Tuple[str, int]]:
  """The other tasks that TensorFlow's error message names (all others if none)."""
  others = [(job, index) for job in ("chief", "worker") if job in cluster.jobs
            for index in cluster.task_indices(job) if (job, index) != me]
  named = {(job, int(index)) for job, index in
           re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", message)}
  ports = {a or b for a, b in re.findall(r"ipv4:[\d.]+:(\d+)|ipv6:\[[^\]]*\]:(\d+)", message)}
  lost = [task for task in others if task in named]
  lost = lost or [task for task in others
                  if cluster.task_address(*task).rsplit(":", 1)[-1] in ports]
  return lost or others


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
  """fp16 loss scaling: halve on overflow, double after `growth_interval` finite steps.

  Args:
    initial_scale: the first scale (2**15, like Keras).
    growth_interval: finite steps in a row before the scale doubles.
  """

  def __init__(self, initial_scale: float = 2.0 ** 15, growth_interval: int = 2000):
    super().__init__(name="loss_scale")
    self.growth_interval = growth_interval
    only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.scale = tf.Variable(initial_scale, dtype=tf.float32, trainable=False,
                             name="loss_scale", aggregation=only_first)
    self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                  name="loss_scale_good_steps", aggregation=only_first)

  def update(self, grads_finite: tf.Tensor) -> None:
    """Updates the scale after a step whose unscaled gradients were (not) all finite."""
    grow = tf.logical_and(grads_finite, self.good_steps + 1 >= self.growth_interval)
    self.scale.assign(tf.where(grads_finite, tf.where(grow, self.scale * 2.0, self.scale),
                               tf.maximum(self.scale / 2.0, 1.0)))
    self.good_steps.assign(tf.where(tf.logical_and(grads_finite, tf.logical_not(grow)),
                                    self.good_steps + 1, tf.zeros([], tf.int64)))


@dataclasses.dataclass
class TrainSettings:
  """How to train; filled from a PretrainingConfig or FinetuningConfig.

  Attributes:
    model_dir: checkpoints, TensorBoard events.
    num_train_steps: the absolute global step to train to.
    save_checkpoints_steps: checkpoint interval (plus step 0 and the end).
    keep_checkpoint_max: checkpoints kept; 0 or None keeps all.
    iterations_per_loop: steps per `tf.function` call (host sync, log, save between).
    log_every: ETA line and TensorBoard interval, in global steps.
    use_xla: jit-compile the step.
    mixed_precision: "off", "bf16" or "fp16" (loss scaling).
    grad_accumulation_steps: micro-batches per replica and step.
    seed: run seed (None: a random one, saved with the checkpoints).
    loss_reduction: "mean" (the loss_fn returns a batch mean; pre-training) or
      "sum" (a batch sum; fine-tuning, docs/model.md#loss-reduction-mean-vs-sum).
  """
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
  loss_reduction: str = "mean"


class Trainer:
  """Trains a `NamedModule` with an `ElectraOptimizer` under an optional strategy.

  Build the model and the optimizer inside `strategy_scope(strategy)` first;
  the trainer creates `global_step` (and the fp16 loss scale) there too.

  Args:
    model: the model; its `named_variables()` are checkpointed.
    optimizer: owns the trainable variables (`model.trainable_named_variables()`
      order) and their slots.
    loss_fn: (micro-batch features, seed) -> (scalar loss, scalars to log).
    settings: steps, checkpointing, precision, XLA, accumulation, seed.
    strategy: a tf.distribute strategy or None for one device.

  Raises:
    ValueError: invalid settings, or trainable variables the optimizer lacks.

  Example:
    >>> trainer = Trainer(model, optimizer, loss_fn, TrainSettings("/tmp/m", 100, 50))
    >>> trainer.restore_or_initialize()   # resumes from /tmp/m if it has a checkpoint
    >>> trainer.train(dataset)            # to global step 100
  """

  def __init__(self, model: NamedModule, optimizer: ElectraOptimizer, loss_fn: LossFn,
               settings: TrainSettings, strategy: Optional[tf.distribute.Strategy] = None):
    if settings.grad_accumulation_steps < 1:
      raise ValueError("hparam grad_accumulation_steps must be >= 1; got "
                       f"{settings.grad_accumulation_steps}.")
    if settings.loss_reduction not in ("mean", "sum"):
      raise ValueError(f"loss_reduction must be 'mean' or 'sum'; got {settings.loss_reduction!r}.")
    compute_dtype(settings.mixed_precision)  # validates
    self.model = model
    self.optimizer = optimizer
    self.loss_fn = loss_fn
    self.settings = settings
    self.strategy = strategy
    self.num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    self.trainable = model.trainable_named_variables()
    missing = set(self.trainable) - set(optimizer.adam.variable_names)
    if missing:
      raise ValueError(f"The optimizer does not own these trainable variables: {sorted(missing)}; "
                       "build it from model.trainable_named_variables().")
    only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    with strategy_scope(strategy):
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                     aggregation=only_first)
      self.run_seed = tf.Variable(_initial_seed(settings.seed), dtype=tf.int64, trainable=False,
                                  name="run_seed", aggregation=only_first)
      self.loss_scale = DynamicLossScale() if settings.mixed_precision == "fp16" else None
    self.is_chief = is_chief(strategy)
    self._compute = self._replica_gradients
    if settings.use_xla and strategy is not None:
      # Replica-local forward/backward in XLA (the merge_call of the update cannot be).
      self._compute = tf.function(self._replica_gradients, jit_compile=True, autograph=False)
    self._train_loop = None
    self._pending_restore: Optional[str] = None

  # === State ===

  def checkpoint_variables(self) -> Dict[str, tf.Variable]:
    """Everything saved under the original's names: model, Adam slots, global_step."""
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

    Resuming is strict (every model variable must be there, docs/cli.md#run_pretrainingpy) except
    that missing Adam slots start at zero and a missing `global_step` at 0,
    both logged: the released checkpoints have no slots
    (docs/checkpoints.md#released-google-checkpoints).

    Args:
      init_checkpoint: optional checkpoint (dir or prefix) to load partially
        when `model_dir` has none.

    Returns:
      "resumed", "initialized" (partial load from init_checkpoint) or "fresh".

    A corrupt latest checkpoint is skipped with a warning in favour of the
    newest intact one (`checkpointing.restore_latest_intact`).

    Raises:
      ValueError: the checkpoint does not match the model (names, shapes).
      checkpointing.CorruptCheckpointError: no listed checkpoint is intact.
    """
    rebuilt = (checkpointing.rebuild_state_file(self.settings.model_dir) if self.is_chief
               else None)
    report = checkpointing.restore_latest_intact(self.settings.model_dir, self._resume_from)
    if report is not None:
      if rebuilt is not None:
        problem, listed = rebuilt
        logger.warning(
            "WARNING: resuming from %s: the checkpoint state file %s was %s, so it was rebuilt "
            "from the %d checkpoints on disk (%s).", report.path,
            os.path.join(self.settings.model_dir, checkpointing.STATE_FILENAME), problem,
            len(listed), ", ".join(os.path.basename(p) for p in listed))
      self._pending_restore = report.path
      logger.info("Resuming from %s (global step %d)", report.path,
                  int(self.global_step.numpy()))
      return "resumed"
    if init_checkpoint:
      checkpointing.restore_checkpoint(init_checkpoint, self.checkpoint_variables(), partial=True)
      return "initialized"
    return "fresh"

  def _resume_from(self, prefix: str) -> checkpointing.RestoreReport:
    """Strict restore of `prefix` (without global_step if it has none)."""
    variables = self.checkpoint_variables()
    if "global_step" not in checkpointing.list_checkpoint(prefix):
      del variables["global_step"]
      logger.info("%s has no global_step (e.g. a released checkpoint): training starts "
                  "at global step %d.", prefix, int(self.global_step.numpy()))
    return checkpointing.restore_checkpoint(prefix, variables)

  def save(self, iterator=None) -> Optional[str]:
    """Writes a checkpoint at the current global step (chief only); returns its prefix."""
    if not self.is_chief:
      return None
    return checkpointing.save_checkpoint(
        self.settings.model_dir, int(self.global_step.numpy()), self.checkpoint_variables(),
        keep_checkpoint_max=self.settings.keep_checkpoint_max,
        extra_state=self._extra_state(iterator))

  # === Step ===

  def _micro_batch_gradients(self, batch: Dict[str, tf.Tensor], index: tf.Tensor,
                             seed: tf.Tensor):
    """Float32 gradients (None where unused), loss and scalars of micro-batch `index`."""
    micro_batch = _micro_batch(batch, index, self.settings.grad_accumulation_steps)
    micro_seed = stateless_random.fold_in(seed, index)
    divisor = 1.0
    if self.settings.loss_reduction == "mean":
      # Each of the accumulation × replicas micro-batch means gets an equal share.
      divisor = float(self.settings.grad_accumulation_steps * self.num_replicas)
    with tf.GradientTape() as tape:
      loss, scalars = self.loss_fn(micro_batch, micro_seed)
      loss = tf.cast(loss, tf.float32)
      scaled = loss / divisor
      if self.loss_scale is not None:
        scaled = scaled * self.loss_scale.scale
    grads = tape.gradient(scaled, list(self.trainable.values()))
    grads = [None if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32) for g in grads]
    scalars = {k: tf.cast(v, tf.float32) for k, v in scalars.items()}
    return grads, loss, scalars

  def _replica_gradients(self, batch: Dict[str, tf.Tensor], seed: tf.Tensor):
    """This replica's gradients, summed over its micro-batches, and its mean scalars.

    Micro-batch 0 runs first, the others in a `tf.while_loop` with
    `parallel_iterations=1`, so at most one micro-batch's activations are alive.
    """
    accumulation = self.settings.grad_accumulation_steps
    grads, loss, scalars = self._micro_batch_gradients(batch, tf.constant(0), seed)
    present = [i for i, g in enumerate(grads) if g is not None]
    if accumulation > 1:
      def body(index, acc, loss_sum, scalars_sum):
        more, more_loss, more_scalars = self._micro_batch_gradients(batch, index, seed)
        acc = [a + more[i] for a, i in zip(acc, present)]
        scalars_sum = {k: v + more_scalars[k] for k, v in scalars_sum.items()}
        return index + 1, acc, loss_sum + more_loss, scalars_sum

      _, acc, loss, scalars = tf.while_loop(
          lambda index, *_: index < accumulation, body,
          (tf.constant(1), [grads[i] for i in present], loss, scalars), parallel_iterations=1)
      for i, value in zip(present, acc):
        grads[i] = value
    scalars = {k: v / accumulation for k, v in scalars.items()}
    # The reported loss is the global batch's: a mean of means, or a sum of sums.
    scalars["loss"] = loss / accumulation if self.settings.loss_reduction == "mean" else loss
    return grads, scalars

  def _step(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """One optimizer step, in replica context (or without a strategy)."""
    replica_id = 0
    if self.strategy is not None:
      replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
      batch = _replica_slice(batch, replica_id, self.num_replicas)
    # docs/ARCHITECTURE.md "Randomness": a function of (run seed, step, replica) only.
    step_seed = stateless_random.fold_in(
        tf.stack([self.run_seed, tf.constant(0, tf.int64)]), self.global_step)
    seed = stateless_random.fold_in(step_seed, replica_id)
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
      scalars["loss_scale"] = self.loss_scale.scale.read_value()
    info = self.optimizer.apply_gradients(grads, self.global_step, lr_scale=lr_scale)
    self.global_step.assign_add(1)
    scalars["learning_rate"] = info.learning_rate
    scalars["grad_norm"] = info.grad_norm
    return scalars

  def _run_step(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    if self.strategy is None:
      return self._step(batch)
    per_replica = self.strategy.run(self._step, args=(batch,))
    sum_loss = self.settings.loss_reduction == "sum"
    return {k: self.strategy.reduce(
        tf.distribute.ReduceOp.SUM if (k == "loss" and sum_loss) else tf.distribute.ReduceOp.MEAN,
        v, axis=None) for k, v in per_replica.items()}

  def _build_train_loop(self):
    # The step is its own function, so its two call sites below share one trace.
    # It has no tensor-dependent Python control flow (autograph off: faster tracing).
    # On one device with XLA, forward, backward, clipping and Adam are one cluster.
    jit = self.settings.use_xla and self.strategy is None
    run_step = tf.function(self._run_step, jit_compile=jit or None, autograph=False)

    @tf.function(autograph=False)
    def train_loop(iterator, num_steps):
      # One call site: graph optimization (function inlining, oneDNN rewrites)
      # then handles one copy of the step, not two, which halves the warm-up.
      outputs = run_step.get_concrete_function(iterator.element_spec).structured_outputs
      initial = tf.nest.map_structure(lambda t: tf.zeros(t.shape, t.dtype), outputs)
      _, scalars = tf.while_loop(lambda i, _: i < num_steps,
                                 lambda i, _: (i + 1, run_step(next(iterator))),
                                 (tf.constant(0, num_steps.dtype), initial))
      return scalars
    return train_loop

  def train_steps(self, iterator, num_steps: int) -> Dict[str, tf.Tensor]:
    """Runs `num_steps` (>= 1) steps in one `tf.function` call; no logging, no saving.

    The function is traced once per trainer (the step count is a tensor).

    Args:
      iterator: yields global batches.
      num_steps: steps to run.

    Returns:
      The last step's scalars ("loss", "learning_rate", "grad_norm", the
      loss_fn's scalars, and "loss_scale" with fp16) as float32 tensors.
    """
    if self._train_loop is None:
      self._train_loop = self._build_train_loop()
    # The step is traced (first call) with fused element-wise kernels.
    with graph_options.lean_graph_optimization(), modeling.fused_elementwise():
      return self._train_loop(iterator, tf.constant(num_steps, tf.int64))

  @property
  def train_loop_traces(self) -> int:
    """How often the train loop was traced (1 after any number of calls: no retracing)."""
    return 0 if self._train_loop is None else self._train_loop.experimental_get_tracing_count()

  # === Loop ===

  def train(self, dataset: tf.data.Dataset, summary_dir: Optional[str] = None,
            log_every: Optional[int] = None,
            on_start: Optional[Callable[[], None]] = None) -> Dict[str, float]:
    """Trains until `num_train_steps` (absolute), saving and logging on the way.

    SIGTERM or SIGINT (Ctrl-C) while training (main thread only) finishes the
    running host loop, saves a checkpoint and raises `TrainingStopped`; a
    second signal stops at once (the last checkpoint is intact either way).

    Args:
      dataset: yields global batches (dict of [global batch, ...] tensors),
        repeated as long as needed.
      summary_dir: TensorBoard directory (default `model_dir`).
      log_every: progress-line interval (default `settings.log_every`).
      on_start: called once when training really starts (checks passed, not
        already finished), before the first checkpoint is written; e.g. to
        save the run's config, which a failed start then leaves untouched.

    Returns:
      The last logged scalars as floats ({} if nothing was trained).

    Raises:
      FloatingPointError: the loss became NaN or infinite.
      util.cli.DataError: the dataset ran out of batches.
      TrainingStopped: a signal stopped the run (after a checkpoint).
      WorkerLostError: multi_worker: another worker died or stopped answering.
      util.cli.DataError: multi_worker: the workers resumed from different steps.
    """
    settings = self.settings
    iterator = iter(dataset)
    self._restore_trainer_state(iterator)
    step = int(self.global_step.numpy())
    with report_lost_workers(self.strategy, settings.model_dir):
      self._check_every_worker_is_at(step)
    if step >= settings.num_train_steps:
      logger.info("Nothing to train: global step %d has reached num_train_steps %d.",
                  step, settings.num_train_steps)
      return {}
    if on_start is not None:
      on_start()
    with _StopOnSignal() as stop, report_lost_workers(self.strategy, settings.model_dir):
      return self._train_loop_with_saves(iterator, summary_dir, log_every, stop)

  def _check_every_worker_is_at(self, step: int) -> None:
    """multi_worker: every worker resumed from the same checkpoint (one all-reduce).

    Only the chief writes checkpoints; the others restore from its model dir,
    which they must see at the same path (one machine or a shared filesystem).

    Raises:
      cli.DataError: the workers start from different global steps.
    """
    if not is_multi_worker(self.strategy):
      return
    local = self.strategy.run(lambda: tf.constant(step, tf.float64))
    total = float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None))
    if total != step * self.num_replicas:
      resolver = self.strategy.cluster_resolver
      raise cli.DataError(
          f"The workers would start from different global steps ({resolver.task_type} "
          f"{resolver.task_id} from {step}, the mean is {total / self.num_replicas:g}): only "
          "the chief writes checkpoints, so every worker must find them in its model dir "
          f"({self.settings.model_dir} here): run the workers on one machine, or put the "
          "data dir on a shared filesystem at the same path.")

  def _train_loop_with_saves(self, iterator, summary_dir: Optional[str],
                             log_every: Optional[int], stop: "_StopOnSignal") -> Dict[str, float]:
    settings = self.settings
    step = int(self.global_step.numpy())
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
      try:
        values = {k: float(v) for k, v in self.train_steps(iterator, num_steps).items()}
      except tf.errors.OutOfRangeError as e:
        raise cli.DataError(
            f"The training data ran out at global step {step}: the input pipeline yielded "
            "no more batches (empty input files, or fewer examples than one batch); the "
            "last checkpoint is intact.") from e
      step = int(self.global_step.numpy())
      last = values
      if not np.isfinite(values["loss"]):
        raise FloatingPointError(
            f"The loss became {values['loss']} at step {step}. Lower learning_rate, or use "
            "mixed_precision \"bf16\"/\"off\" instead of \"fp16\"; the last checkpoint is intact.")
      eta.after_step(step, {"loss": values["loss"]}, steps_run=num_steps)
      if step % log_every == 0 or step == settings.num_train_steps:
        write_scalars(writer, step, values)
      saved = step % settings.save_checkpoints_steps == 0 or step == settings.num_train_steps
      if saved:
        self.save(iterator)
      if stop.signum is not None and step < settings.num_train_steps:
        if not saved:
          self.save(iterator)
        writer.flush()
        message = (f"{stop.name}: stopped at global step {step} after saving a checkpoint "
                   f"in {settings.model_dir}; re-run to resume.")
        logger.warning("%s", message)
        raise TrainingStopped(message)
    eta.end(step)
    writer.flush()
    return last

  def _restore_trainer_state(self, iterator) -> None:
    """Restores the input position, run seed (and loss scale) of the resumed checkpoint."""
    if not self._pending_restore:
      return
    prefix, self._pending_restore = self._pending_restore, None
    if checkpointing.restore_extra_state(prefix, self._extra_state(iterator)):
      logger.info("Restored the input position and run seed of %s", prefix)
    else:
      logger.info("%s has no trainer state: the input starts from the beginning of the data "
                  "and the run seed is %d.", prefix, int(self.run_seed.numpy()))


class TrainingStopped(KeyboardInterrupt):
  """Training stopped on SIGTERM/SIGINT after saving a checkpoint (scripts exit 130)."""


class _StopOnSignal:
  """While active, SIGTERM and SIGINT ask the training loop to save and stop.

  The first signal only sets `signum` (logged); a second one raises
  KeyboardInterrupt at once. It also replaces a handler that TensorFlow's
  preemption notifier may have installed, which swallows SIGTERM. Outside the
  main thread (where Python cannot install handlers) it does nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum: Optional[int] = None
    self._handlers = signals.signal_handlers(self.SIGNALS, self._handle)

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name if self.signum is not None else ""

  def __enter__(self) -> "_StopOnSignal":
    self._handlers.__enter__()
    return self

  def _handle(self, signum, frame) -> None:  # pylint: disable=unused-argument
    if self.signum is not None:
      raise KeyboardInterrupt(f"{signal.Signals(signum).name} received twice")
    self.signum = signum
    logger.warning("%s received: stopping after the running steps and a checkpoint (send it "
                   "again to stop at once).", signal.Signals(signum).name)

  def __exit__(self, *exc_info) -> None:
    self._handlers.__exit__(*exc_info)


def write_scalars(writer, step: int, values: Dict[str, float]) -> None:
  """TensorBoard scalars without the `tensorboard` package (core `tf.summary.write`).

  The metadata names the "scalars" plugin, which is what TensorBoard's own
  `tf.summary.scalar` writes, so the curves show up as usual.

  Args:
    writer: a `tf.summary` writer.
    step: the global step of the values.
    values: tag -> number.
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


def _micro_batch(batch: Dict[str, tf.Tensor], index: tf.Tensor,
                 parts: int) -> Dict[str, tf.Tensor]:
  """Micro-batch `index` (a scalar tensor) of `parts` equal contiguous pieces."""
  if parts == 1:
    return batch

  def take(x):
    size = x.shape[0] // parts  # static: batches are drop_remainder
    return tf.reshape(x, [parts, size] + x.shape[1:].as_list())[index]  # [size, ...]
  return {k: take(v) for k, v in batch.items()}


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
  """The micro-batch size per replica.

  Raises:
    ValueError: the global batch does not divide into replicas × micro-batches.
  """
  if batch_size % (num_replicas * accumulation):
    raise ValueError(
        f"hparam {hparam}={batch_size} must be divisible by the number of replicas "
        f"({num_replicas}) × grad_accumulation_steps ({accumulation}).")
  return batch_size // (num_replicas * accumulation)


def describe_devices(strategy: Optional[tf.distribute.Strategy]) -> str:
  """One log line: the devices and strategy in use."""
  gpus = tf.config.list_logical_devices("GPU")
  where = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
  if strategy is None:
    return f"Devices: {where}; strategy: single device"
  devices = ", ".join(strategy.extended.worker_devices)
  return (f"Devices: {where}; strategy: {type(strategy).__name__} with "
          f"{strategy.num_replicas_in_sync} replicas on {devices}")
