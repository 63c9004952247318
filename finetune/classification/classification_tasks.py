"""GLUE-style sentence(-pair) classification and regression tasks.

See docs/finetuning.md#classification-and-regression (files, columns, labels, featurization, heads,
metrics) and docs/data.md#featurization-per-task-type. Rows are read from
`<raw_data_dir(task)>/<split>.tsv` with Python's csv reader, tab-delimited, quoting disabled.

Differences from the original (all raise or log instead of silently
misbehaving; results on well-formed data are identical):
  * Only rows with too few columns are "malformed": each is logged (with
    its 1-based line number in the file, header included) and skipped, and a
    count is logged per file. A custom task's declared column that none of
    the first data rows has raises one `DataError` naming the key instead.
    A label that is not in the label list (or, for regression, not a number
    in [min, max]) and a line that is not UTF-8 raise `util.cli.DataError`
    naming file, line and value (the original raised KeyError / failed an
    assert during featurization).
  * A missing data file raises FileNotFoundError naming the expected path
    (`finetune.input_files`, shared by every task type).
  * Regression targets are `(label - min) / (max - min)`; the original divides
    by `max`, which is the same for every built-in task (min = 0).
"""
from __future__ import annotations

import abc
import csv
import dataclasses
import itertools
import logging
import os
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from finetune import feature_spec, input_files, scorer, task
from finetune.classification import classification_metrics
from model import modeling
from model.modeling import Dense

logger = logging.getLogger("electra")

# docs/hparams.md#fine-tuning-debug-mode: debug readers stop after 100 TSV lines.
DEBUG_MAX_LINES = 100
# docs/finetuning.md#classification-and-regression-heads: keep probability 0.9 on [CLS].
DROPOUT_RATE = 0.1


class InputExample(task.Example):
  """A sentence (or sentence pair) with a label.

  Args:
    eid: int. Example id (row index without the header, plus the swap offset).
    task_name: str.
    text_a: str. First sentence.
    text_b: optional str. Second sentence of a pair.
    label: str (classification), float (regression) or None.
    line: optional int. 1-based line number in the source file (for errors).
  """

  def __init__(self, eid: int, task_name: str, text_a: str, text_b: Optional[str] = None,
               label=None, line: Optional[int] = None):
    super().__init__(eid, task_name)
    self.text_a = text_a
    self.text_b = text_b
    self.label = label
    self.line = line


def read_tsv(path: str, max_lines: Optional[int] = None) -> List[List[str]]:
  """Reads a TSV file as lists of fields (tab delimiter, quoting disabled).

  Args:
    path: the file.
    max_lines: optional int. Read at most this many lines (header included).

  Returns:
    One list of strings per line (row i is line i + 1 of the file).

  Raises:
    DataError: a line that is not UTF-8 or that the csv module rejects
      (names file and line).
  """
  lines = []
  for number, text in input_files.read_lines(path, max_lines or None):
    try:
      lines.append(next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE), []))
    except csv.Error as e:
      raise input_files.data_error(path, number, f"unreadable TSV line ({e}).") from None
  return lines


def truncate_seq_pair(tokens_a: List[str], tokens_b: List[str], max_length: int) -> None:
  """Pops tokens in place until len(a) + len(b) <= max_length.

  Longest-first: each step pops the last token of the longer list; ties pop
  from `tokens_b` (docs/data.md#featurization-per-task-type).
  """
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


@dataclasses.dataclass(frozen=True)
class TsvFormat:
  """Where a TSV task's fields are.

  Attributes:
    text_a_column: int. Column of the first sentence (negative: from the end).
    text_b_column: optional int. Column of the second sentence.
    label_column: optional int. Column of the label (unused on test splits).
    header: bool. Whether the first line is a header (skipped).
  """
  text_a_column: int
  text_b_column: Optional[int]
  label_column: Optional[int]
  header: bool


class SingleOutputTask(task.Task, metaclass=abc.ABCMeta):
  """A task with one label per example read from TSV files.

  Args:
    config: the `FinetuningConfig`.
    name: str. Task name.
    tokenizer: a `FullTokenizer` (`tokenize`, `convert_tokens_to_ids`).
  """

  # The GLUE download's folder name, for error messages (None: not GLUE).
  glue_dir_name: Optional[str] = None

  def __init__(self, config, name: str, tokenizer):
    super().__init__(config, name)
    self._tokenizer = tokenizer

  # === Reading ===

  def get_data_file(self, split: str) -> str:
    """Path of the TSV file holding `split` (`<raw_data_dir>/<split>.tsv`)."""
    return os.path.join(self.config.raw_data_dir(self.name), split + ".tsv")

  def get_examples(self, split: str) -> List[InputExample]:
    path = self.get_data_file(split)
    input_files.require_file(path, self.name, split, self._layout_hint(split, path))
    lines = read_tsv(path, max_lines=DEBUG_MAX_LINES if self.config.debug else None)
    examples = self._create_examples(lines, split, path)
    for example in examples:
      example.label = self._check_label(example.label, path, example.line)
    return examples

  def debug_data_note(self) -> str:
    return f"first {DEBUG_MAX_LINES} lines (header included) of each .tsv file"

  def _layout_hint(self, split: str, path: str) -> str:
    """The sentence added to the missing-file error: where the file is expected."""
    message = (f"Expected layout: <data_dir>/finetuning_data/{self.name}/"
               f"{os.path.basename(path)}")
    if self.glue_dir_name:
      message += (f" (the GLUE download's {self.glue_dir_name}/ folder renamed to "
                  f"{self.name}/)")
    return message + "."

  @abc.abstractmethod
  def _create_examples(self, lines: List[List[str]], split: str,
                       path: str) -> List[InputExample]:
    """Turns TSV rows into examples (usually via `_load_glue`)."""

  def _load_glue(self, lines: List[List[str]], split: str, path: str, fmt: TsvFormat,
                 eid_offset: int = 0, swap: bool = False) -> List[InputExample]:
    """The generic row reader of docs/finetuning.md#reading-glue-files.

    eid = row index (header excluded) + `eid_offset`; test and diagnostic
    splits get the dummy label; `swap` exchanges text_a and text_b. Rows with
    too few columns are logged and skipped, with a count at the end.
    """
    examples = []
    n_skipped = 0
    is_unlabeled = "test" in split or "diagnostic" in split
    for i, line in enumerate(lines):
      if i == 0 and fmt.header:
        continue
      try:
        text_a = line[fmt.text_a_column]
        text_b = None if fmt.text_b_column is None else line[fmt.text_b_column]
        label = self._get_dummy_label() if is_unlabeled else line[fmt.label_column]
      except IndexError as e:
        logger.warning("Error constructing example from line %d of %s for task %s: %s",
                       i + 1, path, self.name, e)
        logger.warning("Input causing the error: %s", line)
        n_skipped += 1
        continue
      if swap:
        text_a, text_b = text_b, text_a
      examples.append(InputExample(
          eid=i - (1 if fmt.header else 0) + eid_offset, task_name=self.name,
          text_a=text_a, text_b=text_b, label=label, line=i + 1))
    if n_skipped:
      logger.warning("Skipped %d malformed row(s) of %d in %s (task %s, split %s)",
                     n_skipped, len(lines) - int(fmt.header), path, self.name, split)
    return examples

  @abc.abstractmethod
  def _get_dummy_label(self):
    """Label given to unlabeled (test) examples."""

  @abc.abstractmethod
  def _check_label(self, label, path: str, line: Optional[int]):
    """Validates a raw label; returns it in the form `_add_features` uses."""

  # === Featurization ===

  def featurize(self, example: InputExample, is_training: bool,
                log: bool = False) -> Dict[str, object]:
    """`[CLS] a [SEP] (b [SEP])` with segment ids 0/1, 0-padded
    (docs/data.md#featurization-per-task-type)."""
    del is_training
    max_seq_length = self.config.max_seq_length
    tokens_a = self._tokenizer.tokenize(example.text_a)
    tokens_b = self._tokenizer.tokenize(example.text_b) if example.text_b else None
    if tokens_b:
      truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    elif len(tokens_a) > max_seq_length - 2:
      tokens_a = tokens_a[:max_seq_length - 2]

    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
      tokens += tokens_b + ["[SEP]"]
      segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = self._tokenizer.convert_tokens_to_ids(tokens)
    input_mask = [1] * len(input_ids)
    padding = [0] * (max_seq_length - len(input_ids))
    input_ids, input_mask, segment_ids = (
        input_ids + padding, input_mask + padding, segment_ids + padding)

    if log:
      logger.info("  Example %s", example.eid)
      logger.info("    tokens: %s", " ".join(tokens))
      n_tokens = len(tokens)
      logger.info("    input_ids: %s", task.format_padded(input_ids, n_tokens))
      logger.info("    input_mask: %s", task.format_padded(input_mask, n_tokens))
      logger.info("    segment_ids: %s", task.format_padded(segment_ids, n_tokens))

    features = {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "task_id": self.task_id,
        self.name + "_eid": example.eid,
    }
    self._add_features(features, example, log)
    return features

  @abc.abstractmethod
  def _add_features(self, features: Dict[str, object], example: InputExample,
                    log: bool) -> None:
    """Adds the label feature."""


class ClassificationTask(SingleOutputTask):
  """A task with a fixed list of string labels; head = dense over [CLS].

  Args:
    config: the `FinetuningConfig`.
    name: str. Task name.
    tokenizer: a `FullTokenizer`.
    label_list: list of str. Label strings in id order.
    metric: str. "accuracy" (default), "mcc" or "f1".
  """

  def __init__(self, config, name: str, tokenizer, label_list: Sequence[str],
               metric: str = "accuracy"):
    super().__init__(config, name, tokenizer)
    if metric not in classification_metrics.CLASSIFICATION_SCORERS:
      raise ValueError(f"Task {name}: unknown metric {metric!r}; expected one of "
                       f"{sorted(classification_metrics.CLASSIFICATION_SCORERS)}.")
    self._label_list = list(label_list)
    self._metric = metric

  @property
  def label_list(self) -> List[str]:
    return list(self._label_list)

  def _get_dummy_label(self) -> str:
    return self._label_list[0]

  def get_fingerprint(self) -> Dict[str, object]:
    return dict(super().get_fingerprint(), labels=self._label_list,
                double_unordered=bool(self.config.double_unordered))

  def _check_label(self, label, path: str, line: Optional[int]) -> str:
    if label not in self._label_list:
      raise input_files.data_error(
          path, line, f"task {self.name}: label {label!r} is not one of the task's labels "
          f"{self._label_list}; fix the file or the label list.")
    return label

  def get_feature_specs(self) -> List[feature_spec.FeatureSpec]:
    return [feature_spec.FeatureSpec(self.name + "_eid", []),
            feature_spec.FeatureSpec(self.name + "_label_ids", [])]

  def _add_features(self, features, example, log):
    label_id = self._label_list.index(example.label)
    if log:
      logger.info("    label: %s (id = %d)", example.label, label_id)
    features[self.name + "_label_ids"] = label_id

  def create_head(self, hidden_size: int) -> "ClassificationHead":
    return ClassificationHead(self.name, hidden_size, len(self._label_list))

  def get_scorer(self, split: str = "dev") -> scorer.Scorer:
    del split
    return classification_metrics.CLASSIFICATION_SCORERS[self._metric]()


class RegressionTask(SingleOutputTask):
  """A task with a real-valued label in [min_value, max_value].

  The target feature is the label normalized to [0, 1]; predictions and the
  `mse` metric are on that scale.

  Args:
    config: the `FinetuningConfig`.
    name: str. Task name.
    tokenizer: a `FullTokenizer`.
    min_value: float. Smallest allowed label.
    max_value: float. Largest allowed label.
  """

  def __init__(self, config, name: str, tokenizer, min_value: float, max_value: float):
    super().__init__(config, name, tokenizer)
    if not min_value < max_value:
      raise ValueError(f"Task {name}: min ({min_value}) must be smaller than max "
                       f"({max_value}).")
    self.min_value = float(min_value)
    self.max_value = float(max_value)

  def _get_dummy_label(self) -> float:
    return self.min_value  # 0.0 for STS, as in the original.

  def _check_label(self, label, path: str, line: Optional[int]) -> float:
    try:
      value = float(label)
    except ValueError:
      raise input_files.data_error(path, line, f"task {self.name}: label {label!r} is not "
                                   "a number.") from None
    if not self.min_value <= value <= self.max_value:
      raise input_files.data_error(path, line, f"task {self.name}: label {value} is outside "
                                   f"[{self.min_value}, {self.max_value}].")
    return value

  def get_fingerprint(self) -> Dict[str, object]:
    return dict(super().get_fingerprint(), min=self.min_value, max=self.max_value,
                double_unordered=bool(self.config.double_unordered))

  def normalize(self, label: float) -> float:
    """Maps a label from [min, max] to [0, 1]."""
    return (label - self.min_value) / (self.max_value - self.min_value)

  def denormalize(self, prediction: float) -> float:
    """Maps a [0, 1]-scale prediction back to the label scale."""
    return prediction * (self.max_value - self.min_value) + self.min_value

  def get_feature_specs(self) -> List[feature_spec.FeatureSpec]:
    return [feature_spec.FeatureSpec(self.name + "_eid", []),
            feature_spec.FeatureSpec(self.name + "_targets", [], is_int_feature=False)]

  def _add_features(self, features, example, log):
    target = self.normalize(float(example.label))
    if log:
      logger.info("    label: %s (target = %.4f)", example.label, target)
    features[self.name + "_targets"] = target

  def create_head(self, hidden_size: int) -> "RegressionHead":
    return RegressionHead(self.name, hidden_size)

  def get_scorer(self, split: str = "dev") -> scorer.Scorer:
    del split
    return classification_metrics.RegressionScorer()


# === Heads (docs/finetuning.md#classification-and-regression-heads) ===


def _cls_representation(bert_output, training: bool, seed: Optional[tf.Tensor]) -> tf.Tensor:
  """[CLS] hidden state [B, H], with dropout 0.1 in training."""
  pooled = bert_output.pooled_output
  return modeling.dropout(pooled, DROPOUT_RATE, training, seed)


class ClassificationHead(task.TaskHead):
  """Dense `task_specific/<task>/dense` [H, num_labels] over [CLS]; softmax CE.

  Args:
    task_name: str.
    hidden_size: int. H.
    num_labels: int.
  """

  def __init__(self, task_name: str, hidden_size: int, num_labels: int):
    super().__init__(task_name)
    with self.name_scope:
      self.dense = Dense(self.scope + "/dense", hidden_size, num_labels)

  def __call__(self, bert_output, features, training, seed=None):
    logits = tf.cast(self.dense(_cls_representation(bert_output, training, seed)),
                     tf.float32)  # [B, num_labels]
    label_ids = features[self.task_name + "_label_ids"]  # [B]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(label_ids, depth=logits.shape[-1], dtype=tf.float32)
    losses = -tf.reduce_sum(one_hot * log_probs, axis=-1)  # [B]
    return losses, {
        "loss": losses,
        "logits": logits,
        "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32),
        "label_ids": label_ids,
        "eid": features[self.task_name + "_eid"],
    }


class RegressionHead(task.TaskHead):
  """Dense `task_specific/<task>/dense` [H, 1] over [CLS]; squared error.

  Args:
    task_name: str.
    hidden_size: int. H.
  """

  def __init__(self, task_name: str, hidden_size: int):
    super().__init__(task_name)
    with self.name_scope:
      self.dense = Dense(self.scope + "/dense", hidden_size, 1)

  def __call__(self, bert_output, features, training, seed=None):
    predictions = tf.squeeze(tf.cast(
        self.dense(_cls_representation(bert_output, training, seed)), tf.float32), -1)  # [B]
    targets = features[self.task_name + "_targets"]  # [B]
    losses = tf.square(predictions - targets)
    return losses, {
        "loss": losses,
        "predictions": predictions,
        "targets": targets,
        "eid": features[self.task_name + "_eid"],
    }


# === GLUE tasks (docs/finetuning.md#reading-glue-files) ===

BINARY_LABELS = ("0", "1")
ENTAILMENT_LABELS = ("entailment", "not_entailment")
MNLI_LABELS = ("contradiction", "entailment", "neutral")


def _fmt(a: int, b: Optional[int], label: Optional[int], header: bool = True) -> TsvFormat:
  return TsvFormat(text_a_column=a, text_b_column=b, label_column=label, header=header)


class CoLA(ClassificationTask):
  """Corpus of Linguistic Acceptability; train/dev have no header; MCC."""
  glue_dir_name = "CoLA"

  def __init__(self, config, tokenizer):
    super().__init__(config, "cola", tokenizer, BINARY_LABELS, metric="mcc")

  def _create_examples(self, lines, split, path):
    if "test" in split:
      return self._load_glue(lines, split, path, _fmt(1, None, None))
    return self._load_glue(lines, split, path, _fmt(3, None, 1, header=False))


class SST(ClassificationTask):
  """Stanford Sentiment Treebank (binary)."""
  glue_dir_name = "SST-2"

  def __init__(self, config, tokenizer):
    super().__init__(config, "sst", tokenizer, BINARY_LABELS)

  def _create_examples(self, lines, split, path):
    if "test" in split:
      return self._load_glue(lines, split, path, _fmt(1, None, None))
    return self._load_glue(lines, split, path, _fmt(0, None, 1))


class MRPC(ClassificationTask):
  """Microsoft Research Paraphrase Corpus; train doubled with swapped pairs."""
  glue_dir_name = "MRPC"

  def __init__(self, config, tokenizer):
    super().__init__(config, "mrpc", tokenizer, BINARY_LABELS)

  def _create_examples(self, lines, split, path):
    fmt = _fmt(3, 4, 0)
    examples = self._load_glue(lines, split, path, fmt)
    if self.config.double_unordered and split == "train":
      examples += self._load_glue(lines, split, path, fmt, len(examples), swap=True)
    return examples


class QQP(ClassificationTask):
  """Quora Question Pairs."""
  glue_dir_name = "QQP"

  def __init__(self, config, tokenizer):
    super().__init__(config, "qqp", tokenizer, BINARY_LABELS)

  def _create_examples(self, lines, split, path):
    if "test" in split:
      return self._load_glue(lines, split, path, _fmt(1, 2, None))
    return self._load_glue(lines, split, path, _fmt(3, 4, 5))


class RTE(ClassificationTask):
  """Recognizing Textual Entailment."""
  glue_dir_name = "RTE"

  def __init__(self, config, tokenizer):
    super().__init__(config, "rte", tokenizer, ENTAILMENT_LABELS)

  def _create_examples(self, lines, split, path):
    return self._load_glue(lines, split, path, _fmt(1, 2, 3))


class QNLI(ClassificationTask):
  """Question-answering NLI."""
  glue_dir_name = "QNLI"

  def __init__(self, config, tokenizer):
    super().__init__(config, "qnli", tokenizer, ENTAILMENT_LABELS)

  def _create_examples(self, lines, split, path):
    return self._load_glue(lines, split, path, _fmt(1, 2, 3))


class MNLI(ClassificationTask):
  """Multi-Genre NLI; dev = dev_matched; three test splits incl. the diagnostic set."""
  glue_dir_name = "MNLI"

  def __init__(self, config, tokenizer):
    super().__init__(config, "mnli", tokenizer, MNLI_LABELS)

  def get_data_file(self, split: str) -> str:
    return super().get_data_file("dev_matched" if split == "dev" else split)

  def get_test_splits(self) -> List[str]:
    return ["test_matched", "test_mismatched", "diagnostic"]

  def _create_examples(self, lines, split, path):
    if split == "diagnostic":
      return self._load_glue(lines, split, path, _fmt(1, 2, None))
    return self._load_glue(lines, split, path, _fmt(8, 9, -1))


class STS(RegressionTask):
  """Semantic Textual Similarity Benchmark; scores in [0, 5]; train doubled."""
  glue_dir_name = "STS-B"

  def __init__(self, config, tokenizer):
    super().__init__(config, "sts", tokenizer, 0.0, 5.0)

  def _create_examples(self, lines, split, path):
    if split == "test":
      return self._load_glue(lines, split, path, _fmt(-2, -1, None))
    fmt = _fmt(-3, -2, -1)
    examples = self._load_glue(lines, split, path, fmt)
    if self.config.double_unordered and split == "train":
      examples += self._load_glue(lines, split, path, fmt, len(examples), swap=True)
    return examples


GLUE_TASKS = {"cola": CoLA, "mrpc": MRPC, "mnli": MNLI, "sst": SST, "rte": RTE,
              "qnli": QNLI, "qqp": QQP, "sts": STS}


# === Custom TSV tasks declared in the `task_configs` hparam ===


# Rows (after the header, blank ones left out) a declared column is checked against.
COLUMN_CHECK_ROWS = 5
TEST_COLUMN_KEYS = ("test_text_a_column", "test_text_b_column")


class _CustomTsvMixin:
  """Reads splits from configured files with one `TsvFormat` (test may differ)."""

  def _init_custom(self, files: Dict[str, str], fmt: TsvFormat, test_fmt: TsvFormat,
                   test_column_keys: Sequence[str] = TEST_COLUMN_KEYS):
    self._files = dict(files)
    self._fmt = fmt
    self._test_fmt = test_fmt
    self._test_column_keys = tuple(test_column_keys)

  def get_data_file(self, split: str) -> str:
    if split not in self._files:
      raise ValueError(f"Task {self.name} has no {split!r} file; its task_configs entry "
                       f"declares {sorted(self._files)} (keys <split>_file).")
    # normpath: "../x.tsv" works even when raw_data_dir(name) itself does not exist.
    return os.path.normpath(os.path.join(self.config.raw_data_dir(self.name),
                                         self._files[split]))

  def get_fingerprint(self) -> Dict[str, object]:
    return dict(super().get_fingerprint(), files=self._files,
                format=dataclasses.asdict(self._fmt),
                test_format=dataclasses.asdict(self._test_fmt))

  def _layout_hint(self, split, path):
    return (f"Fix the {split}_file entry of the task's task_configs declaration (relative "
            f"paths are resolved under {self.config.raw_data_dir(self.name)}).")

  def _create_examples(self, lines, split, path):
    fmt = self._test_fmt if "test" in split else self._fmt
    self._check_columns(lines, fmt, "test" in split, path)
    return self._load_glue(lines, split, path, fmt)

  def _check_columns(self, lines: List[List[str]], fmt: TsvFormat, is_test: bool,
                     path: str) -> None:
    """Refuses a declared column that none of the first data rows has.

    A few short rows are malformed rows (logged and skipped by `_load_glue`);
    a column missing from every one of the first `COLUMN_CHECK_ROWS` non-blank
    rows is a wrong declaration, reported once instead of once per row.

    Raises:
      DataError: naming the file, the first data line, the key, its value and
        the line's number of columns.
    """
    start = 1 if fmt.header else 0
    rows = list(itertools.islice(((number, row) for number, row in enumerate(lines, 1)
                                  if number > start and any(f.strip() for f in row)),
                                 COLUMN_CHECK_ROWS))
    text_keys = self._test_column_keys if is_test else ("text_a_column", "text_b_column")
    columns = [(text_keys[0], fmt.text_a_column), (text_keys[1], fmt.text_b_column),
               ("label_column", fmt.label_column)]
    for key, column in columns:
      if column is None or not rows or any(-len(row) <= column < len(row) for _, row in rows):
        continue
      line, row = rows[0]
      n = len(row)
      raise input_files.data_error(
          path, line, f"task {self.name}: {key} is {column}, but this line has {n} "
          f"column{'s' if n != 1 else ''} (0 to {n - 1}, or -{n} to -1 from the end); fix "
          f"{key} in the task's task_configs entry (or the file).")


class CustomClassificationTask(_CustomTsvMixin, ClassificationTask):
  """A classification task declared in `task_configs` (no code needed).

  Args:
    config: the `FinetuningConfig`.
    name: str.
    tokenizer: a `FullTokenizer`.
    files: {split: file name or absolute path}.
    fmt: `TsvFormat` of the train/dev files.
    test_fmt: `TsvFormat` of the test file.
    label_list: list of str.
    metric: "accuracy", "mcc" or "f1".
    test_column_keys: the task_configs keys the test columns came from (for errors).
  """

  def __init__(self, config, name: str, tokenizer, files: Dict[str, str], fmt: TsvFormat,
               test_fmt: TsvFormat, label_list: Sequence[str], metric: str = "accuracy",
               test_column_keys: Sequence[str] = TEST_COLUMN_KEYS):
    super().__init__(config, name, tokenizer, label_list, metric)
    self._init_custom(files, fmt, test_fmt, test_column_keys)


class CustomRegressionTask(_CustomTsvMixin, RegressionTask):
  """A regression task declared in `task_configs` (no code needed).

  Args:
    config: the `FinetuningConfig`.
    name: str.
    tokenizer: a `FullTokenizer`.
    files: {split: file name or absolute path}.
    fmt: `TsvFormat` of the train/dev files.
    test_fmt: `TsvFormat` of the test file.
    min_value: float.
    max_value: float.
    test_column_keys: the task_configs keys the test columns came from (for errors).
  """

  def __init__(self, config, name: str, tokenizer, files: Dict[str, str], fmt: TsvFormat,
               test_fmt: TsvFormat, min_value: float, max_value: float,
               test_column_keys: Sequence[str] = TEST_COLUMN_KEYS):
    super().__init__(config, name, tokenizer, min_value, max_value)
    self._init_custom(files, fmt, test_fmt, test_column_keys)
