"""`ModelRunner`: trains, evaluates and predicts with a `FinetuningModel` for one trial.

See docs/cli.md#run_finetuningpy (control flow, log lines),
docs/finetuning.md#the-fine-tuning-model, docs/finetuning.md#multi-task-batches,
docs/finetuning.md#test-set-outputs (model, multi-task data, results, test outputs),
docs/checkpoints.md#partial-restore-with-init_checkpoint (what `init_checkpoint` loads). The
original wrapped a TPUEstimator; here the model is a `tf.Module`, trained by
`training.trainer.Trainer` with the loss **summed** over the batch, layer-wise learning-rate decay
and a warm-up proportion (docs/model.md#optimizer), and predicted by a `tf.function` over the
predict tfrecords.

Initialization: when evaluating only (`do_train` false), the trial's own latest
checkpoint is loaded (strict). When training, the trial starts from
`init_checkpoint` (a directory resolves to its latest checkpoint), loaded
partially, unless the runner resumes an interrupted trial (`resume`): then the
trainer restores the trial's latest checkpoint with its optimizer state, step,
data position and run seed. The partial load takes every trainable variable whose name is in the
checkpoint, i.e. the discriminator `electra/*` of a pre-trained model, plus
`task_specific/*` when it is a fine-tuned model. What was loaded and skipped
is logged; a shape mismatch raises an error that suggests checking
`model_size`.

Beyond the original:
  * Seeds: with the `seed` hparam set, trial t runs with seed `seed + t`
    (head and encoder initialization via `tf.random.set_seed`, dropout via the
    trainer's stateless seeds, the tf.data shuffle buffer). The tfrecord file
    itself is shuffled once, with `seed`, and shared by all trials.
  * Test outputs: GLUE tasks and custom classification/regression tasks write
    the original's pickles `{eid: logits}` (`{eid: prediction}` for
    regression); SQuAD 2.0 writes `{id: answer}` as a real pickle at the `.pkl`
    path (the original wrote JSON there) plus the same dict as JSON next to it
    (`.json`, the SQuAD submission format).
"""
from __future__ import annotations

import copy
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from finetune import finetuning_model, preprocessing
from finetune import task as task_lib
from finetune.classification import classification_tasks
from model import checkpointing, modeling, sizes, tokenization
from model.model_dir import FINETUNE_CONFIG_FILE
from model.optimization import create_finetuning_optimizer
from training import trainer as trainer_lib
from util import cli, files

logger = logging.getLogger("electra")

LOG_EVERY = 10  # docs/cli.md#run_finetuningpy: the fine-tuning ETA hook logs every 10 global steps.
CONFIG_FILE = FINETUNE_CONFIG_FILE  # Read back by export_model.py and convert_hf.py.
# docs/finetuning.md#test-set-outputs: tasks whose test predictions the original writes.
GLUE_TEST_TASKS = ("cola", "mrpc", "mnli", "sst", "rte", "qnli", "qqp", "sts")
SQUAD_TEST_TASK = "squad"


def trial_seed(seed: Optional[int], trial: int) -> Optional[int]:
  """The seed of trial `trial` (1-based): `seed + trial`, or None when unseeded."""
  return None if seed is None else int(seed) + int(trial)


def resolve_init_checkpoint(config) -> Optional[str]:
  """The checkpoint prefix `config.init_checkpoint` names, or None when it is null.

  Raises:
    FileNotFoundError: nothing loadable there; the message says where a
      pre-trained model is expected and how to train from scratch instead.
  """
  if not config.init_checkpoint:
    return None
  try:
    return checkpointing.resolve_checkpoint(config.init_checkpoint)
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"init_checkpoint {config.init_checkpoint} cannot be loaded: {e} Put the pre-trained "
        f"model (a directory with a `checkpoint` file, e.g. an unzipped release) at "
        f"<data-dir>/models/{config.model_name}, set the init_checkpoint hparam to a "
        "checkpoint directory or prefix, or set it to null to fine-tune from a random "
        "initialization.") from e


def kind_of_test_outputs(task: task_lib.Task) -> Optional[str]:
  """How test predictions of `task` are written: "classification", "squad" or None."""
  if isinstance(task, classification_tasks.SingleOutputTask):
    return "classification"
  if task.name == SQUAD_TEST_TASK:
    return "squad"
  return None


def check_model_settings(config) -> None:
  """Fails before any featurization on settings the model cannot run with.

  Both would otherwise fail only at the first training or prediction step,
  with a raw TensorFlow gather error.

  Raises:
    UsageError: `max_seq_length` above the model's `max_position_embeddings`,
      or a `vocab_file` with more tokens than `vocab_size` embedding rows.
  """
  bert_config = sizes.get_model_bert_config(config)
  if config.max_seq_length > bert_config.max_position_embeddings:
    raise cli.UsageError(
        f"hparam max_seq_length ({config.max_seq_length}) exceeds the model's "
        f"max_position_embeddings ({bert_config.max_position_embeddings}); lower "
        "max_seq_length (or raise max_position_embeddings in model_hparam_overrides when "
        "training from scratch).")
  n_tokens = max(tokenization.load_vocab(config.vocab_file).values(), default=-1) + 1
  if n_tokens > bert_config.vocab_size:
    raise cli.UsageError(
        f"vocab_file {config.vocab_file} has {n_tokens} tokens but hparam vocab_size is "
        f"{bert_config.vocab_size}: set vocab_size to {n_tokens} (the pre-trained model's "
        "vocabulary size) or use the model's own vocab file.")


def written_test_splits(task: task_lib.Task) -> List[str]:
  """The test splits whose predictions `write_test_outputs` writes for `task`.

  GLUE tasks: all their test splits; custom classification/regression tasks:
  the test splits whose file exists (the others are skipped); SQuAD 2.0:
  "test"; other tasks: none.
  """
  kind = kind_of_test_outputs(task)
  if kind == "squad":
    return ["test"]
  if kind != "classification":
    return []
  return [split for split in task.get_test_splits()
          if task.name in GLUE_TEST_TASKS or os.path.exists(task.get_data_file(split))]


def input_datasets(config, tasks: Sequence[task_lib.Task]
                   ) -> List[Tuple[List[task_lib.Task], bool, str]]:
  """Every dataset a run reads, as (tasks, is_training, split), in the order it reads them.

  The joint training set when `do_train`; each task's dev set when `do_eval`;
  the test splits of `written_test_splits` when test outputs are written.
  """
  datasets: List[Tuple[List[task_lib.Task], bool, str]] = []
  if config.do_train:
    datasets.append((list(tasks), True, "train"))
  if config.do_eval:
    datasets += [([task], False, "dev") for task in tasks]
    if config.write_test_outputs and config.n_writes_test >= 1:
      datasets += [([task], False, split) for task in tasks
                   for split in written_test_splits(task)]
  return datasets


def check_data_files(config, tasks: Sequence[task_lib.Task]) -> None:
  """Fails early (before reading anything) when a file of `input_datasets` is missing.

  In debug mode, first logs which part of the data is read.

  Raises:
    FileNotFoundError: naming the task, the split and the expected path.
  """
  if config.debug:
    notes = [f"{task.name}: {task.debug_data_note()}" for task in tasks
             if task.debug_data_note()]
    if notes:
      logger.info("Debug mode reads only part of the data: %s", "; ".join(notes))
  for dataset_tasks, _, split in input_datasets(config, tasks):
    for task in dataset_tasks:
      if not hasattr(task, "get_data_file"):
        continue
      path = task.get_data_file(split)
      if not os.path.isfile(path):
        hint = {"train": " (needed for do_train)", "dev": " (needed for do_eval)"}.get(
            split, " (needed because write_test_outputs is true; set it to false to skip "
            "test predictions)")
        folder = os.path.dirname(path)
        if folder and not os.path.isdir(folder):
          hint += f"; the folder {folder} does not exist"
        if config.debug and task.debug_data_note():
          hint += f"; debug mode reads {task.debug_data_note()}"
        raise FileNotFoundError(f"Task {task.name}: no {split} data at {path}{hint}.")


def prepare_inputs(config, tasks: Sequence[task_lib.Task],
                   preprocessor: preprocessing.Preprocessor) -> None:
  """Reads and featurizes every input of the run before any training step.

  Call `check_data_files` first (before taking the run's lock).

  Raises:
    DataError: a malformed file (names file and line).
  """
  preprocessor.prepare_inputs(input_datasets(config, tasks))


def make_train_settings(config, model_dir: str, num_train_steps: int,
                        seed: Optional[int]) -> trainer_lib.TrainSettings:
  """The trainer settings of fine-tuning: summed loss, ETA line every 10 steps.

  Args:
    config: the `FinetuningConfig`.
    model_dir: where checkpoints and TensorBoard events go.
    num_train_steps: steps to train.
    seed: the trial's seed (None: random).
  """
  # Outside TPUs the loop length only sets how often the host logs: every
  # 10 steps, like the original's ETA hook on CPU/GPU.
  iterations = (config.iterations_per_loop if config.distribution_strategy == "tpu"
                else min(config.iterations_per_loop, LOG_EVERY))
  return trainer_lib.TrainSettings(
      model_dir=model_dir, num_train_steps=num_train_steps,
      save_checkpoints_steps=config.save_checkpoints_steps,
      iterations_per_loop=max(1, iterations), log_every=LOG_EVERY, use_xla=config.use_xla,
      mixed_precision=config.mixed_precision,
      grad_accumulation_steps=config.grad_accumulation_steps, seed=seed,
      loss_reduction="sum")


def make_loss_fn(model: finetuning_model.FinetuningModel) -> trainer_lib.LossFn:
  """The trainer's loss function: the model's batch-sum loss
  (docs/finetuning.md#the-fine-tuning-model)."""

  # The model has no tensor-dependent Python control flow: skipping
  # autograph's conversion of it makes tracing faster.
  @tf.autograph.experimental.do_not_convert
  def loss_fn(batch, seed):
    loss, _ = model(batch, training=True, seed=seed)
    return loss, {}
  return loss_fn


def xla_for_prediction(config) -> bool:
  """Whether prediction/evaluation runs XLA-compiled (hparam `xla_predict`).

  "auto" compiles except for bf16/fp16 on a CPU-only machine: XLA fuses the
  forward pass's element-wise work and cuts per-op overhead (ELECTRA-Small,
  seq 128, 2 CPU threads: batch 1 25 -> 45 examples/s, batch 32 60 -> 70),
  but XLA:CPU's low-precision matmuls are slower than oneDNN's. Each new batch
  shape compiles once (the last, smaller batch of a split is a second shape).
  """
  if config.use_xla or config.xla_predict == "on":
    return True
  if config.xla_predict == "off":
    return False
  return config.mixed_precision == "off" or bool(tf.config.list_physical_devices("GPU"))


def fused_inference_for_prediction(config) -> bool:
  """Whether prediction without whole-graph XLA uses `modeling.fused_inference`.

  In bfloat16/float16 the XLA kernels between the matmuls beat TensorFlow's
  element-wise ops (ELECTRA-Small, seq 128, batch 32, bf16, 2 CPU threads:
  ~355 -> ~275 ms per batch); in float32 the plain graph, whose MatMul +
  BiasAdd + GELU grappler fuses into oneDNN ops, is faster (~575 vs ~630 ms).
  """
  return not xla_for_prediction(config) and config.mixed_precision != "off"


class ModelRunner:
  """The model of one trial: prepares data, initializes, trains, evaluates, predicts.

  Constructing it prepares (or reuses the cached) training tfrecords and
  computes the number of train steps when `do_train`, builds the model (and
  optimizer) and initializes its variables.

  Args:
    config: the `FinetuningConfig`.
    tasks: the tasks, in `config.task_names` order.
    model_dir: this trial's model directory (`<config.model_dir>_<trial>`).
    trial: int. The 1-based trial number (selects the seed).
    strategy: a `tf.distribute` strategy or None (one device).
    preprocessor: a `Preprocessor` to share between trials (one is built if None).
    resume: continue training from the latest checkpoint in `model_dir` (an
      interrupted trial of the same run, see `finetune.resume`).

  Raises:
    ValueError: no training steps, an indivisible batch size, or an
      `init_checkpoint` of another model size.
    FileNotFoundError: missing task data or `init_checkpoint`.

  Example:
    >>> runner = ModelRunner(config, task_builder.get_tasks(config), "/tmp/m_1")
    >>> runner.train()
    >>> runner.evaluate()   # {"rte": {"accuracy": 66.1, "loss": 0.63}}
  """

  def __init__(self, config, tasks: Sequence[task_lib.Task], model_dir: str, trial: int = 1,
               strategy: Optional[tf.distribute.Strategy] = None,
               preprocessor: Optional[preprocessing.Preprocessor] = None,
               resume: bool = False):
    self._config = config
    self._tasks = list(tasks)
    self._model_dir = model_dir
    self._strategy = strategy
    self._resume = resume and config.do_train
    self._seed = trial_seed(config.seed, trial)
    self._preprocessor = preprocessor or preprocessing.Preprocessor(config, self._tasks)
    self._predict_step = None
    # XLA kernels between the matmuls in prediction (set before the first prediction).
    self.fused_inference = fused_inference_for_prediction(config)
    self.num_train_steps = 0
    self._train_dataset: Optional[tf.data.Dataset] = None
    if config.do_train:
      num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
      trainer_lib.check_batch_divisibility(config.train_batch_size, num_replicas,
                                           config.grad_accumulation_steps)
      self._train_dataset, self.num_train_steps = self._prepare_train()
    self.model, self.optimizer = self._build_model()
    self.init_report = self._initialize()

  # === Setup ===

  def _prepare_train(self) -> Tuple[tf.data.Dataset, int]:
    """The cached train tfrecords of all tasks; the tf.data shuffle uses this trial's seed."""
    config = self._config
    path, n_examples = self._preprocessor.serialize_dataset(self._tasks, True, "train")
    num_train_steps = int(n_examples // config.train_batch_size * config.num_train_epochs)
    if num_train_steps < 1:
      raise ValueError(
          f"No training steps: {n_examples} training examples (padded) // train_batch_size "
          f"{config.train_batch_size} * num_train_epochs {config.num_train_epochs} < 1. "
          "Add data, lower train_batch_size or raise num_train_epochs.")
    # The file (shuffled once with `seed`) is shared by all trials; only the
    # shuffle buffer's seed is per trial, so the cache stays valid.
    trial_config = copy.copy(config)
    trial_config.seed = self._seed
    reader = preprocessing.Preprocessor(trial_config, self._tasks)
    return reader.make_dataset(path, True, config.train_batch_size), num_train_steps

  def _build_model(self):
    config = self._config
    logger.info("Building model...")
    if self._seed is not None:
      tf.random.set_seed(self._seed)  # The initializers draw from the global generator.
    with trainer_lib.strategy_scope(self._strategy):
      model = finetuning_model.FinetuningModel(
          config, self._tasks, compute_dtype=trainer_lib.compute_dtype(config.mixed_precision))
      optimizer = None
      if config.do_train:
        optimizer = create_finetuning_optimizer(
            config, model.trainable_named_variables(), self.num_train_steps,
            n_transformer_layers=model.bert_config.num_hidden_layers)
    logger.info("Building complete")
    return model, optimizer

  def _initialize(self) -> Optional[checkpointing.RestoreReport]:
    """Loads what this trial starts from (see the module docstring)."""
    if self._resume:
      return None  # `train` restores the interrupted trial, optimizer state included.
    variables = self.model.named_variables()
    if not self._config.do_train:
      latest = (checkpointing.latest_checkpoint(self._model_dir)
                if os.path.isdir(self._model_dir) else None)
      if latest is not None:
        logger.info("Loading the fine-tuned model of this trial from %s", latest)
        return checkpointing.restore_checkpoint(latest, variables)
    init_checkpoint = resolve_init_checkpoint(self._config)
    if init_checkpoint is None:
      logger.warning("init_checkpoint is null: the encoder starts from a random "
                     "initialization (no pre-trained weights).")
      return None
    try:
      report = checkpointing.restore_checkpoint(init_checkpoint, variables, partial=True)
    except checkpointing.CorruptCheckpointError as e:
      # Never swapped silently for another checkpoint: say which one would load.
      raise checkpointing.CorruptCheckpointError(
          checkpointing.corrupt_checkpoint_advice(e, "init_checkpoint"), e.prefix) from e
    missing_encoder = [name for name in report.missing if name.startswith("electra/")]
    if missing_encoder:
      logger.warning(
          "init_checkpoint %s lacks %d of the encoder's variables (e.g. %s); they keep their "
          "random initialization. Check that model_size / model_hparam_overrides match the "
          "pre-trained model.", report.path, len(missing_encoder), missing_encoder[0])
    return report

  # === Training ===

  def train(self) -> Dict[str, float]:
    """Trains for `num_train_steps` steps; returns the last logged scalars.

    Raises:
      ValueError: the runner was built with `do_train: false`.
    """
    if self.optimizer is None:
      raise ValueError("This ModelRunner was built with do_train false; it cannot train.")
    settings = make_train_settings(self._config, self._model_dir, self.num_train_steps,
                                   self._seed)
    trainer = trainer_lib.Trainer(self.model, self.optimizer, make_loss_fn(self.model),
                                  settings, self._strategy)
    if self._resume:
      trainer.restore_or_initialize()  # the trial's own checkpoint: exact resume
    if trainer.is_chief:
      self._config.write_json(os.path.join(self._model_dir, CONFIG_FILE))
    logger.info("Training for %d steps", self.num_train_steps)
    return trainer.train(self._train_dataset)

  # === Prediction and evaluation ===

  def predict_batch(self, features: Dict[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    """The model's eval-mode outputs of one batch as numpy (`task_id`, `<task>_<key>`)."""
    if self._predict_step is None:
      model = self.model

      @tf.function(jit_compile=xla_for_prediction(self._config), reduce_retracing=True,
                   autograph=False)
      def predict_step(batch):
        _, outputs = model(batch, training=False)
        return outputs
      self._predict_step = predict_step
    with modeling.fused_inference(self.fused_inference):
      outputs = self._predict_step(features)
    return {key: value.numpy() for key, value in outputs.items()}

  def predict(self, tasks: Sequence[task_lib.Task],
              split: str) -> Iterator[Tuple[task_lib.Task, Dict[str, np.ndarray]]]:
    """Runs the model in eval mode over the featurized `split` of `tasks`.

    Args:
      tasks: configured tasks whose examples to predict.
      split: "dev", "test", "test_matched", ...

    Yields:
      (task, outputs) per non-padding example, in file order; `outputs` holds
      that task's head outputs for the example with un-prefixed keys (`loss`,
      `logits`, `eid`, ...) as numpy values.
    """
    dataset, _ = self._preprocessor.prepare_predict(tasks, split)
    prefixes = [task.name + "_" for task in self._tasks]
    for batch in dataset:
      outputs = self.predict_batch(batch)
      for row, task_id in enumerate(outputs["task_id"]):
        if task_id == len(self._tasks):
          continue  # padding (docs/finetuning.md#multi-task-batches)
        task, prefix = self._tasks[int(task_id)], prefixes[int(task_id)]
        yield task, {key[len(prefix):]: value[row] for key, value in outputs.items()
                     if key.startswith(prefix)}

  def evaluate_task(self, task: task_lib.Task, split: str = "dev",
                    return_results: bool = True) -> Any:
    """Predicts `task` on `split` and scores it.

    Returns:
      {metric: value} in the scorer's order (logging `<task>: <k>: <v> - ...`),
      or the fed scorer itself when `return_results` is false.
    """
    scorer = task.get_scorer(split)
    for _, outputs in self.predict([task], split):
      scorer.update(outputs)
    if not return_results:
      return scorer
    logger.info("%s: %s", task.name, scorer.results_str())
    return {key: _to_python(value) for key, value in scorer.get_results()}

  def evaluate(self, split: str = "dev") -> Dict[str, Dict[str, Any]]:
    """Evaluates every task on its own `split` data: {task: {metric: value}}."""
    results = {}
    for task in self._tasks:
      logger.info("Evaluating %s", task.name)
      results[task.name] = self.evaluate_task(task, split)
    return results

  # === Test-set outputs (docs/finetuning.md#test-set-outputs) ===

  def write_classification_outputs(self, tasks: Sequence[task_lib.Task], trial: int,
                                   split: str) -> List[str]:
    """Pickles `{eid: logits}` (`{eid: prediction}` for regression) per task.

    Returns:
      The paths written, `config.test_predictions(task, split, trial)`.
    """
    predictions: Dict[str, Dict[int, Any]] = {task.name: {} for task in tasks}
    for task, outputs in self.predict(tasks, split):
      value = outputs["logits"] if "logits" in outputs else outputs["predictions"]
      predictions[task.name][int(outputs["eid"])] = value
    paths = []
    for task in tasks:
      logger.info("Pickling predictions for %d %s examples (%s)",
                  len(predictions[task.name]), task.name, split)
      paths.append(self._config.test_predictions(task.name, split, trial))
      files.write_pickle(predictions[task.name], paths[-1])
    return paths

  def write_squad_outputs(self, task: task_lib.Task, trial: int,
                          split: str = "test") -> List[str]:
    """SQuAD answers of `split` (thresholded null odds): pickle + JSON.

    Post-processing also (re)writes the task's `qa_preds_file` / `qa_na_file`,
    overwriting the dev ones, as the original.

    Returns:
      The `.pkl` path (`config.test_predictions`) and its `.json` sibling.
    """
    from finetune.qa import qa_metrics  # Lazy: QA code only when a QA task is used.

    scorer = self.evaluate_task(task, split, return_results=False)
    qa_predictions = scorer.write_predictions()
    answers = qa_metrics.apply_na_threshold(qa_predictions, self._config.qa_na_threshold)
    pickle_path = self._config.test_predictions(task.name, split, trial)
    json_path = os.path.splitext(pickle_path)[0] + ".json"
    logger.info("Writing %d %s answers (%s) to %s", len(answers), task.name, split, json_path)
    files.write_pickle(answers, pickle_path)
    files.write_json(answers, json_path)
    return [pickle_path, json_path]

  def write_test_outputs(self, trial: int) -> List[str]:
    """Test-set predictions of every task that supports them (docs/finetuning.md#test-set-outputs).

    Returns:
      The files written.
    """
    paths = []
    for task in self._tasks:
      kind = kind_of_test_outputs(task)
      if kind == "classification":
        for split in task.get_test_splits():
          if split not in written_test_splits(task):
            logger.info("Skipping task %s split %s - no test file at %s", task.name, split,
                        task.get_data_file(split))
            continue
          paths += self.write_classification_outputs([task], trial, split)
      elif kind == "squad":
        paths += self.write_squad_outputs(task, trial, "test")
      else:
        logger.info("Skipping task %s - writing predictions is not supported for this task",
                    task.name)
    return paths


def _to_python(value: Any) -> Any:
  """numpy scalars -> Python numbers (cleaner pickles)."""
  return value.item() if isinstance(value, np.generic) else value
