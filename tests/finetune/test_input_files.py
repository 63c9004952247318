"""finetune.input_files: one error per bad input file, naming file, line (and column).

Real files: the SQuAD 1.1 slice, its MRQA conversion and the CoNLL-2000 sample
of tests/data, each given one defect.
"""
import gzip
import json
import os
import shutil

import pytest

from configure_finetuning import FinetuningConfig
from finetune import input_files
from finetune.qa import mrqa_official_eval
from finetune.tagging import tagging_tasks
from finetune import task_builder
from tests.conftest import TEST_DATA, UNCASED_VOCAB
from util import cli

MRQA_SLICE = os.path.join(TEST_DATA, "qa", "mrqa_from_squadv1_dev_slice.jsonl")
SQUAD_SLICE = os.path.join(TEST_DATA, "qa", "squadv1_dev_slice.json")
CONLL_TRAIN = os.path.join(TEST_DATA, "tagging", "train.txt")


def test_read_lines_numbers_every_line_and_names_undecodable_bytes(tmp_path):
  path = tmp_path / "f.txt"
  path.write_bytes(b"first\n\nthird \xc3\xa9\nfourth \xff byte\n")
  lines = input_files.read_lines(str(path))
  assert [next(lines), next(lines), next(lines)] == [(1, "first\n"), (2, "\n"),
                                                     (3, "third \u00e9\n")]
  with pytest.raises(cli.DataError, match=rf"^{path}:4: not valid UTF-8 \(byte 0xff at column "
                                          r"8\); save the file as UTF-8\.$"):
    next(lines)
  assert list(input_files.read_lines(str(path), max_lines=2)) == [(1, "first\n"), (2, "\n")]


def test_load_json_reports_line_and_column(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": []\n  }\n  {}\n]}\n')
  with pytest.raises(cli.DataError) as error:
    input_files.load_json(str(path))
  assert str(error.value) == f"{path}:5:3: invalid JSON: Expecting ',' delimiter."
  assert cli.exit_code(error.value) == cli.DATA_EXIT


def test_require_file_names_missing_folder(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    input_files.require_file(str(tmp_path / "rte" / "dev.tsv"), "rte", "dev", "Hint.")
  assert str(error.value) == (f"Task rte: no dev file at {tmp_path / 'rte' / 'dev.tsv'} (the "
                              f"folder {tmp_path / 'rte'} does not exist). Hint.")


def test_mrqa_invalid_line_names_file_line_and_column(tmp_path):
  with open(MRQA_SLICE, encoding="utf-8") as f:
    lines = f.readlines()
  lines[2] = lines[2].replace('"context":', '"context"', 1)
  path = tmp_path / "dev.jsonl.gz"
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.writelines(lines)
  # The parser stops at the value that follows the key (1-based column).
  column = lines[2].index('"context" "') + len('"context" ') + 1
  with pytest.raises(cli.DataError, match=rf"dev.jsonl.gz:3:{column}: invalid JSON: "
                                          "Expecting ':' delimiter"):
    list(mrqa_official_eval.read_mrqa_lines(str(path)))


def make_config(tmp_path, task_names, **kwargs):
  return FinetuningConfig("m", str(tmp_path), task_names=task_names, vocab_file=UNCASED_VOCAB,
                          max_seq_length=128, **kwargs)


def test_squad_paragraph_without_context_is_a_data_error(tmp_path):
  with open(SQUAD_SLICE, encoding="utf-8") as f:
    data = json.load(f)
  del data["data"][0]["paragraphs"][1]["context"]
  os.makedirs(tmp_path / "finetuning_data" / "squadv1")
  with open(tmp_path / "finetuning_data" / "squadv1" / "dev.json", "w") as f:
    json.dump(data, f)
  task = task_builder.get_tasks(make_config(tmp_path, ["squadv1"]))[0]
  with pytest.raises(cli.DataError, match=r"squadv1/dev.json: paragraph 2 is not in SQUAD "
                                          r"format \(KeyError: 'context'\)"):
    task.get_examples("dev")


def test_conll_undecodable_line_is_a_data_error(tmp_path):
  raw = tmp_path / "finetuning_data" / "chunk"
  os.makedirs(raw)
  shutil.copy(CONLL_TRAIN, raw / "train.txt")
  with open(raw / "train.txt", "rb") as f:
    lines = f.read().split(b"\n")
  lines[6] = lines[6].replace(b" ", b"\xe9 ", 1)
  (raw / "train.txt").write_bytes(b"\n".join(lines))
  task = task_builder.get_tasks(make_config(tmp_path, ["chunk"]))[0]
  assert isinstance(task, tagging_tasks.TaggingTask)
  with pytest.raises(cli.DataError, match=r"chunk/train.txt:7: not valid UTF-8 \(byte 0xe9"):
    task.get_examples("train")
