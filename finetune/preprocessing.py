"""Featurizes task examples into cached tfrecords and reads them back with `tf.data`.

See docs/data.md#feature-cache. For a list of tasks and a split the dataset
`<sorted task names joined by _>_<split>` is written to
`<preprocessed_data_dir>/<name>.tfrecord` with `<name>.metadata`
(`{"n_examples": n, ...}`). Every record holds every feature of the shared
specs and of *all* configured tasks (defaults for the ones an example lacks);
the file is padded with dummy examples (`task_id = len(task_names)`) to a
multiple of the batch size (`train_batch_size` for training, else
`eval_batch_size`).

Differences from the original (docs/data.md#quirks-and-differences-from-the-original):
  * Stale caches: the metadata also stores a fingerprint (vocab file hash,
    do_lower_case, max_seq_length, task list and each task's settings,
    padding batch size, QA window hparams, debug, the shuffle seed); a cache
    whose fingerprint differs is rebuilt and the log says which settings
    changed. The original keyed caches only by task names and split.
  * Writes are atomic: the tfrecord is written to a temporary file and renamed,
    and the metadata (written last, atomically) marks a complete cache.
  * The training shuffle uses `random.Random(config.seed)` when `seed` is set
    (unseeded `random.shuffle` otherwise, as the original), and the tf.data
    shuffle buffer gets the same seed.
  * Prediction reads batches of `predict_batch_size` without dropping the
    remainder, so no real example is lost when it differs from
    `eval_batch_size` (the original dropped the tail); steps are
    `ceil(n_examples / predict_batch_size)`, which equals the original's
    `n_examples // eval_batch_size` when the two batch sizes are equal.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from finetune import feature_spec as feature_spec_lib
from finetune import task as task_lib
from model import model_dir
from util import files

logger = logging.getLogger("electra")

LOG_EVERY = 2000
FINGERPRINT_VERSION = 1
_SHUFFLE_BUFFER = 100  # docs/data.md#feature-cache


def dataset_name(tasks: Sequence[task_lib.Task], split: str) -> str:
  """`<sorted task names joined by _>_<split>`, e.g. "mnli_rte_dev"."""
  return "_".join(sorted(task.name for task in tasks)) + "_" + split


class Preprocessor:
  """Writes and reads the fine-tuning tfrecords of a set of tasks.

  Args:
    config: the `FinetuningConfig` (uses `task_names`, `max_seq_length`,
      `preprocessed_data_dir`, `use_tfrecords_if_existing`, batch sizes,
      `num_train_epochs`, `log_examples`, `vocab_file`, `do_lower_case`,
      `max_query_length`, `doc_stride`, `debug`, `seed`).
    tasks: the configured tasks (`task_builder.get_tasks(config)`).

  Raises:
    ValueError: two feature specs share a name.
  """

  def __init__(self, config, tasks: Sequence[task_lib.Task]):
    self._config = config
    self._tasks = list(tasks)
    self._name_to_task = {task.name: task for task in self._tasks}
    self._vocab_sha256: Optional[str] = None
    # Datasets this object wrote or found cached: name -> (fingerprint, n_examples),
    # and the training sets prepared up front that the next call may reuse.
    self._ready: Dict[str, Tuple[Dict[str, Any], int]] = {}
    self._ready_training: set = set()
    self._feature_specs = feature_spec_lib.get_shared_feature_specs(config)
    for task in self._tasks:
      self._feature_specs += task.get_feature_specs()
    self._name_to_spec: Dict[str, feature_spec_lib.FeatureSpec] = {}
    for spec in self._feature_specs:
      if spec.name in self._name_to_spec:
        raise ValueError(f"Feature {spec.name!r} is declared twice (by the shared specs or "
                         f"the tasks {[t.name for t in self._tasks]}); rename a task.")
      self._name_to_spec[spec.name] = spec

  @property
  def tasks(self) -> List[task_lib.Task]:
    """The configured tasks, in `task_names` order."""
    return list(self._tasks)

  @property
  def feature_specs(self) -> List[feature_spec_lib.FeatureSpec]:
    """Shared specs followed by each task's specs, in `task_names` order."""
    return list(self._feature_specs)

  # === Public entry points ===

  def prepare_train(self) -> Tuple[tf.data.Dataset, int]:
    """Training data of all tasks.

    Returns:
      (dataset, steps): batches of `train_batch_size` (repeated, shuffled)
      and `int(n_examples // train_batch_size * num_train_epochs)`.
    """
    path, n_examples = self.serialize_dataset(self._tasks, True, "train")
    steps = int(n_examples // self._config.train_batch_size * self._config.num_train_epochs)
    return self.make_dataset(path, True, self._config.train_batch_size), steps

  def prepare_predict(self, tasks: Sequence[task_lib.Task],
                      split: str) -> Tuple[tf.data.Dataset, int]:
    """Prediction data of `tasks` on `split` ("dev", "test", "test_matched", ...).

    Args:
      tasks: the tasks to predict (usually one; all must be configured tasks).
      split: the split to featurize.

    Returns:
      (dataset, steps): one pass in file order, batches of
      `predict_batch_size` (the last may be smaller), and the number of batches.
    """
    path, n_examples = self.serialize_dataset(tasks, False, split)
    batch_size = self._config.predict_batch_size
    return self.make_dataset(path, False, batch_size), math.ceil(n_examples / batch_size)

  def prepare_inputs(self, datasets: Sequence[Tuple[Sequence[task_lib.Task], bool, str]]
                     ) -> None:
    """Reads and featurizes (or finds cached) every dataset a run will use, up front.

    So that a bad input file (missing, invalid JSON, unknown label, ...) fails
    before any training step rather than after training. The next
    `serialize_dataset` call for a dataset written here reuses it without
    rebuilding, even with `use_tfrecords_if_existing: false`: once for a
    training set (a later trial re-shuffles it, as the original), always for a
    prediction set (its contents are deterministic).

    Args:
      datasets: (tasks, is_training, split) per dataset, in the order to check.
    """
    for tasks, is_training, split in datasets:
      self.serialize_dataset(tasks, is_training, split)
      if is_training:
        self._ready_training.add(dataset_name(tasks, split))

  def _take_ready(self, name: str, fingerprint: Dict[str, Any], tfrecords_path: str,
                  is_training: bool) -> Optional[int]:
    """`n_examples` of a dataset this object just prepared with `fingerprint`, or None."""
    entry = self._ready.get(name)
    if entry is None or entry[0] != fingerprint or not os.path.exists(tfrecords_path):
      return None
    if is_training:
      if name not in self._ready_training:
        return None  # A later trial: re-read (and re-shuffle) it, as the original.
      self._ready_training.discard(name)
    return entry[1]

  def serialize_dataset(self, tasks: Sequence[task_lib.Task], is_training: bool,
                        split: str) -> Tuple[str, int]:
    """Writes (or reuses) the tfrecord of `tasks` on `split`.

    Args:
      tasks: the tasks whose examples go into the file (in this order).
      is_training: shuffles the examples and pads to `train_batch_size`
        (else `eval_batch_size`); passed on to `featurize`.
      split: "train", "dev" or a test split.

    Returns:
      (tfrecord path, n_examples including padding).
    """
    name = dataset_name(tasks, split)
    tfrecords_path = os.path.join(self._config.preprocessed_data_dir, name + ".tfrecord")
    metadata_path = os.path.join(self._config.preprocessed_data_dir, name + ".metadata")
    batch_size = (self._config.train_batch_size if is_training
                  else self._config.eval_batch_size)
    fingerprint = self.fingerprint(tasks, is_training, split, batch_size)

    n_examples = self._take_ready(name, fingerprint, tfrecords_path, is_training)
    if n_examples is not None:
      return tfrecords_path, n_examples  # Written by this run a moment ago (prepare_inputs).
    logger.info("Loading dataset %s", name)
    why_not_cached = None
    if self._config.use_tfrecords_if_existing:
      n_examples, why_not_cached = self._cached_n_examples(tfrecords_path, metadata_path,
                                                           fingerprint)
    if n_examples is None:
      logger.info(why_not_cached or "Existing tfrecords not found so creating")
      examples = []
      for task in tasks:
        examples += task.get_examples(split)
      if is_training:
        self._shuffle(examples)
      # Written aside, then swapped in: a featurization error leaves the old cache
      # (tfrecord and metadata) as it was.
      n_examples = self.serialize_examples(
          examples, is_training, tfrecords_path, batch_size,
          before_replace=lambda: _remove_if_exists(metadata_path))
      files.write_json({"n_examples": n_examples, "fingerprint": fingerprint}, metadata_path)
    self._ready[name] = (fingerprint, n_examples)
    return tfrecords_path, n_examples

  def serialize_examples(self, examples: Sequence[task_lib.Example], is_training: bool,
                         output_file: str, batch_size: int,
                         before_replace: Optional[Callable[[], None]] = None) -> int:
    """Featurizes `examples`, writes them and the padding atomically to `output_file`.

    Args:
      examples: examples of any configured tasks, in file order.
      is_training: passed on to each task's `featurize`.
      output_file: the tfrecord path (replaced only once complete).
      batch_size: the record count is padded to a multiple of this.
      before_replace: called once the new file is complete, right before it
        replaces `output_file` (e.g. to invalidate the old metadata).

    Returns:
      The number of records written (featurized examples + padding).
    """
    if not examples:
      logger.warning("No examples to write to %s", output_file)
    directory = os.path.dirname(os.path.abspath(output_file))
    files.mkdir(directory)
    tmp_path = os.path.join(directory, f".tmp-{os.path.basename(output_file)}-{os.getpid()}")
    n_written = 0
    try:
      with tf.io.TFRecordWriter(tmp_path) as writer:
        for i, example in enumerate(examples):
          if i % LOG_EVERY == 0:
            logger.info("Writing example %d of %d", i, len(examples))
          log = bool(self._config.log_examples) and i < 1
          for tf_example in self._example_to_tf_examples(example, is_training, log):
            writer.write(tf_example.SerializeToString())
            n_written += 1
        padding = self.make_tf_example(task_id=len(self._config.task_names))
        while n_written % batch_size != 0:
          writer.write(padding.SerializeToString())
          n_written += 1
      if before_replace is not None:
        before_replace()
      os.replace(tmp_path, output_file)
    except BaseException:
      if os.path.exists(tmp_path):
        os.remove(tmp_path)
      raise
    return n_written

  # === tf.train.Example encoding ===

  def _example_to_tf_examples(self, example: task_lib.Example, is_training: bool,
                              log: bool) -> Iterable[tf.train.Example]:
    task = self._name_to_task[example.task_name]
    features = task.featurize(example, is_training, log)
    if isinstance(features, dict):
      features = [features]
    for feature_dict in features:
      yield self.make_tf_example(**feature_dict)

  def make_tf_example(self, **features: Any) -> tf.train.Example:
    """A `tf.train.Example` holding every known feature (defaults for absent ones).

    Args:
      **features: feature name -> value (scalar, list or numpy array).

    Returns:
      The example; scalars become 1-element lists.

    Raises:
      ValueError: a key that is not a known feature, a value of the wrong size,
        or a non-integer value for an int feature.
    """
    for key in features:
      if key not in self._name_to_spec:
        raise ValueError(f"Unknown feature {key!r}: not among the feature specs "
                         f"{sorted(self._name_to_spec)}; declare it in the task's "
                         "get_feature_specs().")
    encoded = {}
    for spec in self._feature_specs:
      values = features[spec.name] if spec.name in features else spec.get_default_values()
      flat = np.asarray(values).reshape(-1)
      expected = int(np.prod(spec.shape, dtype=np.int64))
      if flat.size != expected:
        raise ValueError(f"Feature {spec.name!r} has {flat.size} values; its spec shape "
                         f"{spec.shape} needs {expected}.")
      if spec.is_int_feature:
        if flat.size and not (np.issubdtype(flat.dtype, np.integer)
                              or np.issubdtype(flat.dtype, np.bool_)):
          raise ValueError(f"Feature {spec.name!r} is an int feature but got "
                           f"{flat.dtype} values {flat[:5].tolist()}.")
        encoded[spec.name] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=flat.astype(np.int64).tolist()))
      else:
        encoded[spec.name] = tf.train.Feature(
            float_list=tf.train.FloatList(value=flat.astype(np.float32).tolist()))
    return tf.train.Example(features=tf.train.Features(feature=encoded))

  # === Reading ===

  def make_dataset(self, tfrecords_path: str, is_training: bool,
                   batch_size: int) -> tf.data.Dataset:
    """The `tf.data` pipeline over a tfrecord written by this preprocessor.

    Training: repeat forever, shuffle (buffer 100, seeded by `config.seed`
    when set), batches with `drop_remainder=True`. Prediction: one pass in
    file order, last batch may be smaller. Int features are cast to int32.

    Args:
      tfrecords_path: a file written by `serialize_dataset`.
      is_training: see above.
      batch_size: examples per batch (per replica if the caller shards).

    Returns:
      A dataset of dicts {feature name: [batch, *shape] tensor}.
    """
    parsing_spec = {spec.name: spec.get_parsing_spec() for spec in self._feature_specs}

    def decode(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
      parsed = tf.io.parse_example(serialized, parsing_spec)
      return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v
              for k, v in parsed.items()}

    dataset = tf.data.TFRecordDataset(tfrecords_path)
    if is_training:
      dataset = dataset.repeat().shuffle(_SHUFFLE_BUFFER, seed=self._config.seed)
    dataset = dataset.batch(batch_size, drop_remainder=is_training)
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)

  # === Cache bookkeeping ===

  def fingerprint(self, tasks: Sequence[task_lib.Task], is_training: bool, split: str,
                  batch_size: int) -> Dict[str, Any]:
    """Every setting that determines the contents of a cached tfrecord (JSON-able).

    Args:
      tasks: the dataset's tasks.
      is_training: whether it is a training set (the shuffle seed matters).
      split: the split.
      batch_size: the padding multiple.

    Returns:
      A dict stored in the `.metadata` file next to `n_examples`.
    """
    config = self._config
    if self._vocab_sha256 is None:
      self._vocab_sha256 = model_dir.file_sha256(config.vocab_file)
    return {
        "version": FINGERPRINT_VERSION,
        "split": split,
        "is_training": bool(is_training),
        "vocab_sha256": self._vocab_sha256,
        "do_lower_case": bool(config.do_lower_case),
        "max_seq_length": int(config.max_seq_length),
        "task_names": list(config.task_names),
        "tasks": {task.name: task.get_fingerprint() for task in tasks},
        "feature_specs": [[s.name, s.shape, s.is_int_feature] for s in self._feature_specs],
        "padding_batch_size": int(batch_size),
        "max_query_length": config.max_query_length,
        "doc_stride": config.doc_stride,
        "debug": bool(config.debug),
        "shuffle_seed": config.seed if is_training else None,
    }

  def _cached_n_examples(self, tfrecords_path: str, metadata_path: str,
                         fingerprint: Dict[str, Any]) -> Tuple[Optional[int], Optional[str]]:
    """(`n_examples` of a valid cache, None) or (None, why it cannot be used).

    The reason is None when there is no cache at all.
    """
    if not os.path.exists(metadata_path):
      return None, None
    if not os.path.exists(tfrecords_path):
      return None, (f"Cached metadata {metadata_path} has no tfrecord file {tfrecords_path} "
                    "so rebuilding")
    try:
      metadata = files.load_json(metadata_path)
      n_examples = int(metadata["n_examples"])
    except (ValueError, KeyError, TypeError) as e:
      return None, f"Cached metadata {metadata_path} is unreadable ({e}) so rebuilding"
    old = metadata.get("fingerprint")
    if old is None:
      return None, (f"Cached tfrecords {tfrecords_path} have no fingerprint (written by the "
                    "original code or an older version) so rebuilding")
    changed = _describe_changes(old, fingerprint)
    if changed:
      return None, (f"Cached tfrecords {tfrecords_path} were built with different settings "
                    f"so rebuilding: {changed}")
    return n_examples, None

  def _shuffle(self, examples: List[task_lib.Example]) -> None:
    if self._config.seed is None:
      random.shuffle(examples)  # Unseeded, as the original.
    else:
      random.Random(self._config.seed).shuffle(examples)


def _remove_if_exists(path: str) -> None:
  if os.path.exists(path):
    os.remove(path)


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
  """{dotted key: leaf value} of nested dicts (lists and scalars are leaves)."""
  if not isinstance(value, dict):
    return {prefix: value}
  flat: Dict[str, Any] = {}
  for key, item in value.items():
    flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
  return flat


def _describe_changes(old: Dict[str, Any], new: Dict[str, Any]) -> str:
  """"key: old -> new; ..." for every setting whose value differs.

  Nested settings are compared leaf by leaf and named with dotted keys (e.g.
  `tasks.sst.labels`), so the change is visible however long the settings are.
  """
  new = json.loads(json.dumps(new))  # Normalize tuples etc. as stored in JSON.
  old_flat, new_flat = _flatten(old), _flatten(new)
  missing = object()
  changes = []
  for key in sorted(set(old_flat) | set(new_flat)):
    before, after = old_flat.get(key, missing), new_flat.get(key, missing)
    if before != after:
      changes.append(f"{key}: {_show(before, missing)} -> {_show(after, missing)}")
  return "; ".join(changes)


def _show(value: Any, missing: object) -> str:
  return "(absent)" if value is missing else json.dumps(value, sort_keys=True)
