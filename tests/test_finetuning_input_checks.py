"""Fine-tuning checks every input before training, and reports each mistake as one line.

Real task data (tests/data/finetune sentence-polarity slice, SQuAD 1.1 slice,
CoNLL chunking) with one defect each; the command line is driven through
`util.cli.run(run_finetuning.main, ...)`, as the script does. None of these
runs trains: every failure must come before the first training step, so the
trial's model directory must not exist afterwards.
"""
import json
import logging
import os
import shutil

import pytest

from finetune import trials

from configure_finetuning import FinetuningConfig
from finetune import task_builder
from model import tokenization
import run_finetuning
from util import cli
from tests.conftest import TEST_DATA, UNCASED_VOCAB
from tests.test_run_finetuning import FINETUNE_DATA, SST_LIKE as SST_LIKE_TASK
from tests.test_run_finetuning import write_squad_slice, tiny_hparams

SQUAD_SOURCE = os.path.join(TEST_DATA, "qa", "squadv1_dev_slice.json")


@pytest.fixture(autouse=True)
def restore_electra_logger():
  """main() points the "electra" logger at the (captured) stderr; restore it afterwards."""
  logger = logging.getLogger("electra")
  saved = (list(logger.handlers), logger.level, logger.propagate)
  yield
  logger.handlers[:], logger.level, logger.propagate = saved


def run_cli(data_dir, model_name, hparams, capsys):
  """(exit code, error lines, log lines) of `run_finetuning.py` as the shell runs it."""
  code = cli.run(run_finetuning.main, ["--data-dir", str(data_dir), "--model-name", model_name,
                                       "--hparams", json.dumps(hparams)])
  err = capsys.readouterr().err.splitlines()
  assert not any("Traceback" in line for line in err)
  assert err[-1].startswith("error: ")  # the error is the last word
  return code, [line for line in err if line.startswith("error:")], err


def trial_dir(data_dir, model_name, tasks):
  return os.path.join(str(data_dir), "models", model_name, "finetuning_models",
                      tasks + "_model_1")


def sst_like_dir(root):
  raw = root / "finetuning_data" / "sst_like"
  shutil.copytree(os.path.join(FINETUNE_DATA, "sst_like"), raw)
  return raw


def test_bad_dev_label_fails_before_training(tmp_path, capsys):
  raw = sst_like_dir(tmp_path)
  with open(raw / "dev.tsv", "a", encoding="utf-8") as f:
    f.write("a fine film , mostly .\tmaybe\n")
  with open(raw / "dev.tsv", encoding="utf-8") as f:
    bad_line = f.read().splitlines().index("a fine film , mostly .\tmaybe") + 1
  assert bad_line == 12  # header + 10 rows + the bad one
  code, err, _ = run_cli(tmp_path, "m", tiny_hparams(task_names=["sst_like"]), capsys)
  assert code == cli.DATA_EXIT
  assert err == [f"error: {raw / 'dev.tsv'}:{bad_line}: task sst_like: label 'maybe' is not "
                 "one of the task's labels ['0', '1']; fix the file or the label list."]
  assert not os.path.exists(trial_dir(tmp_path, "m", "sst_like"))  # nothing was trained


def test_undecodable_test_file_fails_before_training(tmp_path, capsys):
  """The GLUE `sst` task writes test predictions: its test.tsv is checked up front too."""
  raw = sst_like_dir(tmp_path)
  os.rename(raw, raw.parent / "sst")
  with open(raw.parent / "sst" / "test.tsv", "wb") as f:
    f.write(b"index\tsentence\n0\ta good film .\n1\ta caf\xe9 scene .\n")
  code, err, _ = run_cli(tmp_path, "m",
                         tiny_hparams(task_names=["sst"], write_test_outputs=True), capsys)
  assert code == cli.DATA_EXIT
  assert len(err) == 1 and err[0].startswith(f"error: {raw.parent / 'sst' / 'test.tsv'}:3: "
                                             "not valid UTF-8 (byte 0xe9 at column 8)")
  assert not os.path.exists(trial_dir(tmp_path, "m", "sst"))


def test_invalid_squad_json_names_file_line_and_column(tmp_path, capsys):
  raw = tmp_path / "finetuning_data" / "squadv1"
  write_squad_slice(str(raw / "train.json"), SQUAD_SOURCE, {"Super_Bowl_50": [2]})
  with open(SQUAD_SOURCE, encoding="utf-8") as f:
    text = json.dumps(json.load(f), indent=1).splitlines(keepends=True)
  line = next(i for i, t in enumerate(text)
              if t.strip().startswith('"question"') and t.rstrip().endswith('",'))
  text[line] = text[line].replace('",', '"', 1)  # a missing comma after the question
  (raw / "dev.json").write_text("".join(text), encoding="utf-8")
  with pytest.raises(json.JSONDecodeError) as reference:  # where Python's parser stops
    json.loads("".join(text))
  code, err, _ = run_cli(tmp_path, "m", tiny_hparams(task_names=["squadv1"], max_seq_length=128,
                                                     max_query_length=32, doc_stride=64), capsys)
  assert code == cli.DATA_EXIT
  position = f"{reference.value.lineno}:{reference.value.colno}"
  assert reference.value.lineno == line + 2  # 1-based, the line after the edited one
  assert err == [f"error: {raw / 'dev.json'}:{position}: invalid JSON: Expecting ',' "
                 "delimiter."]
  assert not os.path.exists(trial_dir(tmp_path, "m", "squadv1"))


def test_missing_task_folder_is_one_line(tmp_path, capsys):
  code, err, _ = run_cli(tmp_path, "m", tiny_hparams(task_names=["rte"]), capsys)
  folder = tmp_path / "finetuning_data" / "rte"
  assert code == cli.DATA_EXIT
  assert err == [f"error: Task rte: no train data at {folder / 'train.tsv'} (needed for "
                 f"do_train); the folder {folder} does not exist."]


def test_debug_mode_says_what_it_reads_and_names_the_missing_debug_file(tmp_path, capsys):
  raw = tmp_path / "finetuning_data" / "squadv1"
  for split in ("train", "dev"):  # the full files exist, the -debug ones do not
    write_squad_slice(str(raw / f"{split}.json"), SQUAD_SOURCE, {"Normans": [0]})
  code, err, log = run_cli(tmp_path, "m", tiny_hparams(task_names=["squadv1"], debug=True,
                                                       max_seq_length=128), capsys)
  assert code == cli.DATA_EXIT
  assert err == [f"error: Task squadv1: no train data at {raw / 'train-debug.json'} (needed "
                 "for do_train); debug mode reads <split>-debug.json instead of <split>.json."]
  assert ("Debug mode reads only part of the data: squadv1: <split>-debug.json instead of "
          "<split>.json") in log


def test_debug_note_lists_each_task_type(tmp_path):
  config = FinetuningConfig("m", str(tmp_path), **tiny_hparams(
      task_names=["sst_like", "squadv1", "chunk", "newsqa"], debug=True))
  notes = {task.name: task.debug_data_note() for task in task_builder.get_tasks(config)}
  assert notes == {"sst_like": "first 100 lines (header included) of each .tsv file",
                   "squadv1": "<split>-debug.json instead of <split>.json",
                   "chunk": "first 101 sentences of each file",
                   "newsqa": "first 11 lines (header included) of each .jsonl file"}


@pytest.mark.parametrize("declaration, split, key, column", [
    ({"label_column": 5}, "train", "label_column", 5),
    ({"text_b_column": 2}, "train", "text_b_column", 2),
    ({"text_a_column": -3}, "train", "text_a_column", -3),
    ({"test_file": "dev.tsv", "test_text_a_column": 4}, "test", "test_text_a_column", 4),
])
def test_custom_task_column_beyond_the_file_is_one_error(tmp_path, capsys, declaration, split,
                                                         key, column):
  """A declared column that the file's rows lack names the hparam, not the batch size."""
  raw = sst_like_dir(tmp_path)
  task = dict(SST_LIKE_TASK, **declaration)
  code, err, log = run_cli(tmp_path, "m", tiny_hparams(
      task_names=["sst_like"], task_configs=[task], write_test_outputs=split == "test"), capsys)
  path = raw / ("dev.tsv" if split == "test" else f"{split}.tsv")
  assert code == cli.DATA_EXIT
  assert err == [f"error: {path}:2: task sst_like: {key} is {column}, but this line has 2 "
                 f"columns (0 to 1, or -2 to -1 from the end); fix {key} in the task's "
                 "task_configs entry (or the file)."], err
  assert not [line for line in log if "Error constructing example" in line]
  assert not os.path.exists(trial_dir(tmp_path, "m", "sst_like"))


def test_custom_task_a_few_short_rows_are_still_skipped(tmp_path, capsys, caplog):
  """Only a column that none of the first rows has is a declaration error."""
  raw = sst_like_dir(tmp_path)
  with open(raw / "train.tsv", encoding="utf-8") as f:
    lines = f.read().splitlines()
  lines.insert(1, "a row without its label")
  (raw / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
  config = FinetuningConfig("m", str(tmp_path), **tiny_hparams(task_names=["sst_like"]))
  (task,) = task_builder.get_tasks(config)
  assert len(task.get_examples("train")) == len(lines) - 2  # header and the short row
  assert "Skipped 1 malformed row(s)" in caplog.text


# --- Settings the model cannot run with fail before any featurization ---------------------


@pytest.mark.parametrize("hparams, message", [
    ({"max_seq_length": 600}, r"max_seq_length \(600\) exceeds the model's "
                              r"max_position_embeddings \(512\)"),
    # Caught by the config itself (vocab_size follows the vocab file).
    ({"vocab_size": 1000}, r"hparam vocab_size is 1000 but .* has 30522 lines"),
])
def test_model_settings_checked_before_featurizing(tmp_path, hparams, message):
  sst_like_dir(tmp_path)
  with pytest.raises(ValueError, match=message):
    config = FinetuningConfig("m", str(tmp_path), **tiny_hparams(task_names=["sst_like"],
                                                                 **hparams))
    trials.run_finetuning(config)
  featurized = [d for _, dirs, _ in os.walk(tmp_path) for d in dirs if "tfrecords" in d]
  assert not featurized  # nothing featurized


# --- log_examples: the original's fields, without the padding ------------------------------


def featurize_logged(tmp_path, task_name, split, caplog, **hparams):
  config = FinetuningConfig("m", str(tmp_path), **tiny_hparams(task_names=[task_name],
                                                               **hparams))
  task = task_builder.get_tasks(config)[0]
  example = task.get_examples(split)[0]
  with caplog.at_level(logging.INFO, logger="electra"):
    features = task.featurize(example, True, log=True)
  features = features[-1] if isinstance(features, list) else features  # the last logged
  return config, features, {m.split(":")[0].strip(): m.split(": ", 1)[1]
                            for m in caplog.messages if ": " in m}


def check_trimmed(logged, features, n_real, max_seq_length):
  ids = features["input_ids"]
  assert len(ids) == max_seq_length and n_real < max_seq_length
  assert logged["input_ids"] == (" ".join(map(str, ids[:n_real]))
                                 + f" (+{max_seq_length - n_real} padding)")


def test_log_examples_classification_without_padding(tmp_path, caplog):
  sst_like_dir(tmp_path)
  config, features, logged = featurize_logged(tmp_path, "sst_like", "train", caplog)
  tokens = logged["tokens"].split()
  vocab = tokenization.load_vocab(UNCASED_VOCAB)
  assert [vocab[t] for t in tokens] == features["input_ids"][:len(tokens)]
  check_trimmed(logged, features, len(tokens), config.max_seq_length)
  assert logged["input_mask"] == " ".join(["1"] * len(tokens)) + \
      f" (+{config.max_seq_length - len(tokens)} padding)"


def test_log_examples_qa_and_tagging_without_padding(tmp_path, caplog):
  raw = tmp_path / "finetuning_data"
  write_squad_slice(str(raw / "squadv1" / "train.json"), SQUAD_SOURCE, {"Normans": [0]})
  config, features, logged = featurize_logged(tmp_path, "squadv1", "train", caplog,
                                              max_seq_length=256)
  n_tokens = len(logged["tokens"].split())
  assert n_tokens == sum(features["input_mask"])
  check_trimmed(logged, features, n_tokens, 256)

  caplog.clear()
  os.makedirs(raw / "chunk")
  shutil.copy(os.path.join(TEST_DATA, "tagging", "train.txt"), raw / "chunk")
  config, features, logged = featurize_logged(tmp_path, "chunk", "train", caplog,
                                              max_seq_length=128)
  n_real = sum(features["input_mask"])
  check_trimmed(logged, features, n_real, 128)
  n_labeled = int(sum(features["chunk_labels_mask"]))
  assert 0 < n_labeled < 128
  assert logged["chunk_labeled_positions"] == (
      " ".join(map(str, features["chunk_labeled_positions"][:n_labeled]))
      + f" (+{128 - n_labeled} padding)")
