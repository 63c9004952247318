"""Task name -> `Task` (see docs/finetuning.md#task-builder), including custom tasks.

Built-in names: the GLUE tasks `cola mrpc mnli sst rte qnli qqp sts`, the QA
tasks `squad squadv1 newsqa naturalqs triviaqa searchqa` and the tagging task
`chunk`. Beyond the original, a task can also be declared without code in the
`task_configs` hparam (a list of JSON objects), e.g.

  {"name": "boolq", "type": "classification", "text_a_column": 1,
   "text_b_column": 2, "label_column": 3, "labels": ["False", "True"]}

Fields of a classification / regression declaration:
  name (required): task name; must not be a built-in name.
  type (required): "classification", "regression" or "tagging" (tagging
    declarations are validated and built by
    `finetune.tagging.tagging_tasks.make_custom_tagging_task`).
  train_file, dev_file, test_file: file names (default "<split>.tsv"),
    relative to `raw_data_dir(name)` = <data_dir>/finetuning_data/<name>/
    unless absolute.
  text_a_column (required), text_b_column (optional), label_column
    (required): 0-based column indices, negative counts from the end.
  test_text_a_column, test_text_b_column: columns in the test file (default:
    the train/dev ones).
  header: whether each file starts with a header line (default true).
  classification only: labels (required, >= 2 distinct strings, id order);
    metric "accuracy" (default), "mcc" or "f1" (label id 1 is positive).
  regression only: min, max (required numbers); targets are normalized to
    [0, 1] and the metrics are pearson, spearman, mse.

Example:
  tasks = get_tasks(config)   # one Task per config.task_names entry
"""
from __future__ import annotations

import difflib
import importlib
import re
from typing import Any, Dict, List, Mapping, Optional

from finetune import task as task_lib
from finetune.classification import classification_metrics, classification_tasks
from model import tokenization

QA_TASKS = {
    "squad": "SQuAD",
    "squadv1": "SQuADv1",
    "newsqa": "NewsQA",
    "naturalqs": "NaturalQuestions",
    "triviaqa": "TriviaQA",
    "searchqa": "SearchQA",
}
TAGGING_TASKS = {"chunk": "Chunking"}
KNOWN_TASK_NAMES = (list(classification_tasks.GLUE_TASKS) + list(QA_TASKS)
                    + list(TAGGING_TASKS))

CUSTOM_TASK_TYPES = ("classification", "regression", "tagging")
_TSV_KEYS = ("name", "type", "train_file", "dev_file", "test_file", "text_a_column",
             "text_b_column", "label_column", "test_text_a_column", "test_text_b_column",
             "header")
_TYPE_KEYS = {
    "classification": _TSV_KEYS + ("labels", "metric"),
    "regression": _TSV_KEYS + ("min", "max"),
}
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def get_tasks(config) -> List[task_lib.Task]:
  """Builds one task per entry of `config.task_names`, sharing one tokenizer.

  Args:
    config: the `FinetuningConfig` (uses `vocab_file`, `do_lower_case`,
      `task_names`, `task_configs`).

  Returns:
    The tasks, in `task_names` order.

  Raises:
    ValueError: an unknown or duplicated task name, two task names where one
      is a prefix of the other followed by "_" (output keys `<task>_<key>`
      would be ambiguous), or an invalid `task_configs` entry.
  """
  task_names = list(config.task_names)
  if len(set(task_names)) != len(task_names):
    raise ValueError(f"task_names lists a task twice: {task_names}.")
  for a in task_names:
    for b in task_names:
      if a != b and b.startswith(a + "_"):
        raise ValueError(f"Task names {a!r} and {b!r} cannot be trained together: "
                         f"outputs named {b}_<key> would also match {a}_<key>; "
                         "rename the custom task.")
  _custom_task_configs(config)  # Validates every declaration up front.
  tokenizer = tokenization.FullTokenizer(vocab_file=config.vocab_file,
                                         do_lower_case=config.do_lower_case)
  return [get_task(config, name, tokenizer) for name in task_names]


def get_task(config, task_name: str, tokenizer) -> task_lib.Task:
  """Builds the task called `task_name`.

  Args:
    config: the `FinetuningConfig`.
    task_name: str. A built-in name or the name of a `task_configs` entry.
    tokenizer: a `FullTokenizer`.

  Returns:
    The `Task`.

  Raises:
    ValueError: unknown name (the message lists the known ones) or invalid
      `task_configs` entry.
  """
  if task_name in classification_tasks.GLUE_TASKS:
    return classification_tasks.GLUE_TASKS[task_name](config, tokenizer)
  if task_name in QA_TASKS:
    qa_tasks = importlib.import_module("finetune.qa.qa_tasks")
    return getattr(qa_tasks, QA_TASKS[task_name])(config, tokenizer)
  if task_name in TAGGING_TASKS:
    tagging_tasks = importlib.import_module("finetune.tagging.tagging_tasks")
    return getattr(tagging_tasks, TAGGING_TASKS[task_name])(config, tokenizer)
  custom = _custom_task_configs(config)
  if task_name in custom:
    return _build_custom_task(config, custom[task_name], tokenizer)
  known = KNOWN_TASK_NAMES + sorted(custom)
  close = difflib.get_close_matches(task_name, known, n=3, cutoff=0.6)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  raise ValueError(f"Unknown task {task_name}.{hint} Known tasks: {', '.join(known)}. "
                   "Other tasks can be declared in the task_configs hparam.")


# === Custom tasks ===


def _custom_task_configs(config) -> Dict[str, Dict[str, Any]]:
  """Validates the name/type of every `task_configs` entry; returns {name: entry}."""
  entries = getattr(config, "task_configs", None) or []
  if not isinstance(entries, list):
    raise ValueError(f"hparam task_configs must be a list of JSON objects; got "
                     f"{type(entries).__name__}.")
  by_name: Dict[str, Dict[str, Any]] = {}
  for i, entry in enumerate(entries):
    where = f"task_configs[{i}]"
    if not isinstance(entry, Mapping):
      raise ValueError(f"{where} must be a JSON object; got {entry!r}.")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
      raise ValueError(f"{where}: 'name' must be a string of letters, digits and '_' "
                       f"starting with a letter; got {name!r}.")
    where = f"{where} ({name})"
    if name in KNOWN_TASK_NAMES:
      raise ValueError(f"{where}: {name!r} is a built-in task; choose another name.")
    if name in by_name:
      raise ValueError(f"{where}: task {name!r} is declared twice in task_configs.")
    if entry.get("type") not in CUSTOM_TASK_TYPES:
      raise ValueError(f"{where}: 'type' must be one of {list(CUSTOM_TASK_TYPES)}; got "
                       f"{entry.get('type')!r}.")
    if entry["type"] in _TYPE_KEYS:
      _check_tsv_entry(where, dict(entry))
    by_name[name] = dict(entry)
  return by_name


def _check_keys(where: str, entry: Dict[str, Any], allowed, required) -> None:
  for key in entry:
    if key not in allowed:
      close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
      hint = f"Did you mean: {', '.join(close)}?" if close else (
          f"Allowed keys: {', '.join(allowed)}.")
      raise ValueError(f"{where}: unknown key {key!r} for a {entry['type']} task. {hint}")
  for key in required:
    if key not in entry:
      raise ValueError(f"{where}: missing required key {key!r}.")


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_tsv_entry(where: str, entry: Dict[str, Any]) -> None:
  """Checks a classification / regression declaration (see the module docstring)."""
  task_type = entry["type"]
  required = ["text_a_column", "label_column"]
  required += ["labels"] if task_type == "classification" else ["min", "max"]
  _check_keys(where, entry, _TYPE_KEYS[task_type], required)
  for key in ("text_a_column", "label_column", "test_text_a_column"):
    if key in entry and not _is_int(entry[key]):
      raise ValueError(f"{where}: {key!r} must be an integer column index; got "
                       f"{entry[key]!r}.")
  for key in ("text_b_column", "test_text_b_column"):
    if entry.get(key) is not None and not _is_int(entry[key]):
      raise ValueError(f"{where}: {key!r} must be an integer column index or null; got "
                       f"{entry[key]!r}.")
  for key in ("train_file", "dev_file", "test_file"):
    if key in entry and (not isinstance(entry[key], str) or not entry[key]):
      raise ValueError(f"{where}: {key!r} must be a non-empty file name; got "
                       f"{entry[key]!r}.")
  if "header" in entry and not isinstance(entry["header"], bool):
    raise ValueError(f"{where}: 'header' must be true or false; got {entry['header']!r}.")
  if task_type == "classification":
    labels = entry["labels"]
    if (not isinstance(labels, list) or len(labels) < 2
        or not all(isinstance(label, str) for label in labels)
        or len(set(labels)) != len(labels)):
      raise ValueError(f"{where}: 'labels' must be a list of at least 2 distinct strings "
                       f"(the label values as written in the files); got {labels!r}.")
    metrics = sorted(classification_metrics.CLASSIFICATION_SCORERS)
    if entry.get("metric", "accuracy") not in metrics:
      raise ValueError(f"{where}: 'metric' must be one of {metrics}; got "
                       f"{entry['metric']!r}.")
    if entry.get("metric") == "f1" and len(labels) != 2:
      raise ValueError(f"{where}: metric 'f1' is binary and needs exactly 2 labels; got "
                       f"{len(labels)}.")
  else:
    if not _is_number(entry["min"]) or not _is_number(entry["max"]):
      raise ValueError(f"{where}: 'min' and 'max' must be numbers; got "
                       f"{entry['min']!r}, {entry['max']!r}.")
    if not entry["min"] < entry["max"]:
      raise ValueError(f"{where}: 'min' ({entry['min']}) must be smaller than 'max' "
                       f"({entry['max']}).")


def _build_custom_task(config, entry: Dict[str, Any], tokenizer) -> task_lib.Task:
  """Builds the task of a validated `task_configs` entry."""
  if entry["type"] == "tagging":
    tagging_tasks = importlib.import_module("finetune.tagging.tagging_tasks")
    return tagging_tasks.make_custom_tagging_task(config, entry, tokenizer)
  files = {split: entry.get(split + "_file", split + ".tsv")
           for split in ("train", "dev", "test")}
  header = entry.get("header", True)
  text_b: Optional[int] = entry.get("text_b_column")
  fmt = classification_tasks.TsvFormat(entry["text_a_column"], text_b,
                                       entry["label_column"], header)
  test_fmt = classification_tasks.TsvFormat(
      entry.get("test_text_a_column", entry["text_a_column"]),
      entry.get("test_text_b_column", text_b), None, header)
  # The keys the test columns came from, for the error naming a column beyond the file.
  test_keys = [key if key in entry else key[len("test_"):]
               for key in classification_tasks.TEST_COLUMN_KEYS]
  if entry["type"] == "classification":
    return classification_tasks.CustomClassificationTask(
        config, entry["name"], tokenizer, files, fmt, test_fmt, entry["labels"],
        entry.get("metric", "accuracy"), test_column_keys=test_keys)
  return classification_tasks.CustomRegressionTask(
      config, entry["name"], tokenizer, files, fmt, test_fmt, entry["min"], entry["max"],
      test_column_keys=test_keys)
