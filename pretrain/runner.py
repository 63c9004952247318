"""Pre-training from a config: train (resuming), or evaluate a checkpoint.

What `run_pretraining.py` does, as a library (the script is its command line):
`train_or_eval(config)` creates the distribution strategy (first: a
multi_worker strategy must exist before anything starts the TensorFlow
runtime), checks every input, locks the model dir, wipes a previous debug run
(`wipe_debug_run`, only files a debug run writes), builds the
`PretrainingModel` and its optimizer and trains with `training.trainer`,
resuming from the latest checkpoint in `models/<model-name>`. With
`"do_train": false, "do_eval": true` it evaluates the latest checkpoint on
`num_eval_steps` batches and writes `results/unsup_results.{txt,pkl}` and the
`eval/` TensorBoard scalars.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Dict, Optional

import tensorflow as tf

import configure_pretraining
from model import checkpointing, model_dir, stateless_random
from model.optimization import ElectraOptimizer, create_pretraining_optimizer
from pretrain import pretrain_data
from pretrain.pretrain_metrics import PretrainingMetrics, metric_tensors
from pretrain.pretraining_model import PretrainingModel
from training import trainer as trainer_lib
from training.progress import ETALogger
from util import cli, files, locking, logs

logger = logging.getLogger("electra")

CONFIG_FILE = model_dir.PRETRAIN_CONFIG_FILE  # pretrain_config.json
# Hparams that fix the variables' names and shapes: a resumed run must not change them.
ARCHITECTURE_HPARAMS = model_dir.ARCHITECTURE_HPARAMS
# Fold-in key of the eval seed (the train steps use key 0, training/trainer.py).
_EVAL_SEED_KEY = 1


def build_model(config: configure_pretraining.PretrainingConfig,
                strategy: Optional[tf.distribute.Strategy] = None,
                with_optimizer: bool = True):
  """The pre-training model and its optimizer (or None), created in the strategy's scope."""
  with trainer_lib.strategy_scope(strategy):
    model = PretrainingModel(config)
    optimizer = (create_pretraining_optimizer(config, model.trainable_named_variables())
                 if with_optimizer else None)
  logger.info("Model is built!")
  _log_parameter_counts(model)
  return model, optimizer


def make_loss_fn(model: PretrainingModel) -> trainer_lib.LossFn:
  """The trainer's loss: the total loss (a batch mean) and the component losses."""

  @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow
  def loss_fn(batch, seed):
    outputs = model(batch, training=True, seed=seed)
    scalars = {"mlm_loss": outputs.mlm_loss}
    for name in ("disc_loss", "cloze_loss"):
      if getattr(outputs, name) is not None:
        scalars[name] = getattr(outputs, name)
    return outputs.total_loss, scalars
  return loss_fn


def make_trainer(config: configure_pretraining.PretrainingConfig, model: PretrainingModel,
                 optimizer: ElectraOptimizer,
                 strategy: Optional[tf.distribute.Strategy] = None) -> trainer_lib.Trainer:
  """The trainer with the pre-training settings (ETA line and scalars every loop)."""
  settings = trainer_lib.TrainSettings(
      model_dir=config.model_dir, num_train_steps=config.num_train_steps,
      save_checkpoints_steps=config.save_checkpoints_steps,
      keep_checkpoint_max=config.keep_checkpoint_max,
      iterations_per_loop=config.iterations_per_loop, log_every=1,
      use_xla=config.use_xla, mixed_precision=config.mixed_precision,
      grad_accumulation_steps=config.grad_accumulation_steps, seed=config.seed)
  return trainer_lib.Trainer(model, optimizer, make_loss_fn(model), settings, strategy)


def check_saved_architecture(config: configure_pretraining.PretrainingConfig) -> None:
  """Fails if `model_dir` holds a run whose architecture hparams differ from these.

  Raises:
    ValueError: naming each conflicting hparam with both values.
  """
  path = os.path.join(config.model_dir, CONFIG_FILE)
  saved = model_dir.load_saved_config(path)
  current = config.to_dict()
  conflicts = [f"{key}: saved {saved[key]!r}, now {current[key]!r}"
               for key in ARCHITECTURE_HPARAMS
               if key in saved and key in current and saved[key] != current[key]]
  if conflicts:
    raise ValueError(
        f"{config.model_dir} holds a run with a different architecture ({'; '.join(conflicts)}). "
        f"Use the same hparams to resume, or another --model-name (saved config: {path}).")


def train(config: configure_pretraining.PretrainingConfig,
          strategy: Optional[tf.distribute.Strategy] = None) -> Dict[str, float]:
  """Trains to `num_train_steps`, resuming from the latest checkpoint in `model_dir`.

  Returns:
    The last logged scalars ({} when the run had already finished).
  """
  logs.log_heading("Running training")
  num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
  per_replica = trainer_lib.check_batch_divisibility(
      config.train_batch_size, num_replicas, config.grad_accumulation_steps)
  logger.info("Global batch %d = %d replicas × %d micro-batches × %d examples",
              config.train_batch_size, num_replicas, config.grad_accumulation_steps, per_replica)
  model, optimizer = build_model(config, strategy)
  trainer = make_trainer(config, model, optimizer, strategy)
  trainer.restore_or_initialize()
  dataset = pretrain_data.get_dataset(config.pretrain_tfrecords, config.max_seq_length,
                                      config.train_batch_size, is_training=True,
                                      seed=config.seed)

  def write_configs() -> None:  # only once training starts: a failed run leaves them as they were
    if trainer.is_chief:
      _write_json_if_changed(config.to_dict(), os.path.join(config.model_dir, CONFIG_FILE))
      _write_json_if_changed(model.bert_config.to_dict(),
                             os.path.join(config.model_dir, "bert_config.json"))
      # Which vocabulary the embedding rows belong to (fine-tuning refuses another).
      _write_json_if_changed(model_dir.vocab_fingerprint(config.vocab_file),
                             os.path.join(config.model_dir, model_dir.VOCAB_FINGERPRINT_FILE))
  try:
    return trainer.train(dataset, on_start=write_configs)
  except tf.errors.DataLossError as e:  # the interleaved reader does not name the file
    corrupt = pretrain_data.find_corrupt_shard(
        pretrain_data.get_input_files(config.pretrain_tfrecords))
    if corrupt is None:
      raise
    raise corrupt from e


def check_training_inputs(config: configure_pretraining.PretrainingConfig) -> None:
  """Everything a training run needs, checked before anything is written or deleted.

  Raises:
    FileNotFoundError: no tfrecords match, or no vocab file.
    util.cli.DataError: the tfrecords are empty, of mixed lengths, hold token ids
      outside the vocabulary, or their first records are unreadable.
    ValueError: another max_seq_length, or (not debug) a saved run with another
      architecture.
  """
  files = pretrain_data.get_input_files(config.pretrain_tfrecords)
  pretrain_data.check_sequence_length(files, config.max_seq_length, config.pretrain_tfrecords)
  if not os.path.isfile(config.vocab_file):
    raise FileNotFoundError(f"No vocab file at {config.vocab_file} (hparam vocab_file).")
  pretrain_data.check_token_ids(files, config.vocab_size, config.vocab_file)
  if not config.debug:
    check_saved_architecture(config)


# What a pre-training run writes into its model dir: a debug run may delete only these.
_RUN_FILE_RE = re.compile(
    r"checkpoint|pretrain_config\.json|bert_config\.json|vocab_fingerprint\.json"
    r"|events\.out\.tfevents\..*"
    r"|model\.ckpt-\d+(\.trainer_state)?\.(index|meta|data-\d{5}-of-\d{5})|\.tmp-.*")
_RUN_SUBDIRS = {"results": re.compile(r"unsup_results\.(txt|pkl)|\.tmp-.*"),
                "eval": re.compile(r"events\.out\.tfevents\..*")}


def wipe_debug_run(config: configure_pretraining.PretrainingConfig) -> None:
  """The original's debug-mode `rmkdir(model_dir)`, refusing to delete anything not ours.

  Deletes the model dir's contents only if everything in it is what a debug
  pre-training run writes: checkpoints `model.ckpt-<n>.*`, `checkpoint`, the
  two config JSONs, TensorBoard events, `results/unsup_results.*`, `eval/`
  events and hidden temporaries; and its `pretrain_config.json` says
  `"debug": true` whenever it holds checkpoints. Anything else (a non-debug
  run, `finetuning_models/`, a released checkpoint, a user's file) stops the
  run with a message; the lock file is kept.

  Raises:
    util.cli.UsageError: the dir holds something a debug run may not delete.
  """
  directory = config.model_dir
  entries = sorted(e for e in os.listdir(directory) if e != locking.LOCK_FILENAME)
  if not entries:
    return
  how = (f"Debug runs start by deleting their model dir; use another --model-name for the "
         f"debug run, or delete {directory} yourself if you no longer need it.")
  foreign = [e for e in entries if not _is_run_file(directory, e)]
  if foreign:
    raise cli.UsageError(f"Not deleting {directory} for a debug run: it holds "
                         f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}, which "
                         f"a debug pre-training run does not write. {how}")
  saved_config = os.path.join(directory, CONFIG_FILE)
  saved_debug = files.load_json(saved_config).get("debug") if os.path.exists(saved_config) else None
  if saved_debug is not True and any(e.startswith("model.ckpt-") for e in entries):
    state = ("debug: false" if saved_debug is False
             else f"no {CONFIG_FILE} saying debug: true")
    raise cli.UsageError(f"Not deleting {directory} for a debug run: it holds a non-debug run "
                         f"({state}). {how}")
  logger.info("debug: deleting the previous debug run in %s (%d entries)", directory,
              len(entries))
  for entry in entries:
    files.rmrf(os.path.join(directory, entry))


def _is_run_file(directory: str, entry: str) -> bool:
  path = os.path.join(directory, entry)
  if os.path.islink(path):
    return False
  if os.path.isdir(path):
    pattern = _RUN_SUBDIRS.get(entry)
    return pattern is not None and all(
        pattern.fullmatch(name) and os.path.isfile(os.path.join(path, name))
        and not os.path.islink(os.path.join(path, name)) for name in os.listdir(path))
  return _RUN_FILE_RE.fullmatch(entry) is not None


def checkpoint_global_step(prefix: str) -> int:
  """The `global_step` stored in a checkpoint, else the step in its name, else 0."""
  reader = tf.train.load_checkpoint(prefix)
  if reader.has_tensor("global_step"):
    return int(reader.get_tensor("global_step"))
  step = checkpointing.checkpoint_step(prefix)
  return step if step is not None else 0


def evaluate(config: configure_pretraining.PretrainingConfig,
             checkpoint: Optional[str] = None, write: bool = True) -> Dict[str, float]:
  """Evaluates a checkpoint on `num_eval_steps` batches (docs/metrics.md#pre-training-evaluation).

  Masking and sampling draw from the seed `[seed or 0, 1]` folded with the eval
  step, so an evaluation is reproducible.

  Args:
    config: the run's config; `pretrain_tfrecords` selects the eval data.
    checkpoint: a checkpoint prefix; None: the latest one in `model_dir`.
    write: write `results/unsup_results.*` and the `eval/` TensorBoard scalars.

  Returns:
    The metrics of docs/metrics.md#pre-training-evaluation plus `loss` (mean total loss) and
    `global_step`.

  Raises:
    FileNotFoundError: `model_dir` has no checkpoint.
  """
  logs.log_heading("Running evaluation")
  if checkpoint is None and checkpointing.latest_checkpoint(config.model_dir) is None:
    raise FileNotFoundError(
        f"No checkpoint to evaluate in {config.model_dir}: train first, or pass the "
        "--model-name of a directory with a `checkpoint` file.")
  model, _ = build_model(config, with_optimizer=False)
  if checkpoint is not None:  # Exactly this one (e.g. a learning curve's checkpoints).
    checkpointing.restore_checkpoint(checkpoint, model.named_variables())
    latest = checkpoint
  else:  # The newest intact one (a damaged latest checkpoint is skipped with a warning).
    latest = checkpointing.restore_latest_intact(
        config.model_dir, lambda prefix: checkpointing.restore_checkpoint(
            prefix, model.named_variables())).path
  global_step = checkpoint_global_step(latest)
  dataset = pretrain_data.get_dataset(config.pretrain_tfrecords, config.max_seq_length,
                                      config.eval_batch_size, is_training=False,
                                      seed=config.seed)
  seed = tf.constant([config.seed if config.seed is not None else 0, _EVAL_SEED_KEY], tf.int64)

  @tf.function(jit_compile=config.use_xla or None, autograph=False)
  def eval_step(batch, step):
    outputs = model(batch, training=False,
                    seed=stateless_random.fold_in(seed, step))
    return outputs.total_loss, metric_tensors(outputs)

  metrics = PretrainingMetrics(config)
  # One progress line per `iterations_per_loop` eval steps, as training logs one
  # per loop, and the last step (the original logged every eval step).
  eta = ETALogger(config.num_eval_steps, log_every=config.iterations_per_loop,
                  is_training=False)
  total_loss = 0.0
  for step, batch in enumerate(dataset.take(config.num_eval_steps)):
    eta.before_step()
    loss, tensors = eval_step(batch, tf.constant(step, tf.int64))
    metrics.update({k: v.numpy() for k, v in tensors.items()})
    total_loss += float(loss)
    eta.after_step(step + 1)
  eta.end()
  results = metrics.result()
  results["loss"] = total_loss / max(1, config.num_eval_steps)
  results["global_step"] = global_step
  for key in sorted(results):
    logger.info("  %s = %s", key, results[key])
  if write:
    write_results(config, results)
  return results


def write_results(config: configure_pretraining.PretrainingConfig,
                  results: Dict[str, float]) -> None:
  """Writes what the original README promised (docs/cli.md#differences-from-the-original):
  results/unsup_results.*.

  Also writes the metrics as TensorBoard scalars to `<model_dir>/eval`, where
  the Estimator put its eval events.
  """
  with files.atomic_write(config.results_txt) as f:
    for key in sorted(results):
      f.write(f"{key} = {results[key]}\n")
  files.write_pickle(results, config.results_pkl)
  writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "eval"))
  trainer_lib.write_scalars(writer, int(results["global_step"]),
                            {k: v for k, v in results.items() if k != "global_step"})
  writer.close()
  logger.info("Writing results to %s", config.results_txt)


def train_or_eval(config: configure_pretraining.PretrainingConfig) -> Dict[str, float]:
  """The original's entry point: train or evaluate, per `do_train` / `do_eval`.

  Training creates the distribution strategy first (a multi_worker strategy
  must exist before anything starts the TensorFlow runtime), then checks its
  inputs, then locks the model dir (`util.locking`), then (debug only) deletes
  the previous debug run (`wipe_debug_run`), then trains. Evaluation runs on
  one device, without a strategy.

  Raises:
    ValueError: not exactly one of do_train / do_eval, or invalid hparams.
    util.locking.LockedError: another trainer uses the model dir.
    training.trainer.WorkerLostError: multi_worker: another worker died or stopped answering.
  """
  if config.do_train == config.do_eval:
    raise ValueError("Exactly one of `do_train` or `do_eval` must be True.")
  logs.log_heading("Config:")
  for line in config.dump_lines():
    logger.info(line)
  logger.info("")
  strategy = None
  if config.do_train:  # first: nothing above touches the TensorFlow runtime
    strategy = trainer_lib.make_strategy(
        config.distribution_strategy, config.tpu_name, config.tpu_zone, config.gcp_project,
        worker_startup_timeout_s=config.worker_startup_timeout_s,
        collective_timeout_s=config.collective_timeout_s)
  if config.seed is not None:
    tf.random.set_seed(config.seed)  # the variable initializers
  if not config.do_train:
    return evaluate(config)
  check_training_inputs(config)
  logger.info("%s; compute dtype %s; XLA %s", trainer_lib.describe_devices(strategy),
              trainer_lib.compute_dtype(config.mixed_precision).name,
              "on" if config.use_xla else "off")
  with trainer_lib.report_lost_workers(strategy, config.model_dir):
    if not trainer_lib.is_chief(strategy):
      return train(config, strategy)
    # One trainer per model dir; taken before the debug wipe, which keeps the lock file.
    with locking.exclusive_lock(os.path.join(config.model_dir, locking.LOCK_FILENAME),
                                f"model dir {config.model_dir}"):
      if config.debug:
        wipe_debug_run(config)
      return train(config, strategy)


def _write_json_if_changed(obj: dict, path: str) -> None:
  """Writes `obj` unless `path` already holds it (a finished run touches nothing)."""
  if not os.path.exists(path) or files.load_json(path) != obj:
    files.write_json(obj, path)


def _log_parameter_counts(model: PretrainingModel) -> None:
  variables = model.trainable_named_variables()
  total = sum(v.shape.num_elements() for v in variables.values())
  disc = sum(v.shape.num_elements() for n, v in variables.items()
             if n.startswith(("electra/", "discriminator_predictions/")))
  logger.info("Parameters: %s total, %s in electra/ + discriminator_predictions/, %s in the "
              "generator heads and towers (%d variables)", f"{total:,}", f"{disc:,}",
              f"{total - disc:,}", len(variables))
