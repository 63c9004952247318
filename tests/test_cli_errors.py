"""Every CLI script, run as a user runs it, on each kind of user mistake.

Each case asserts: the exit code (2 usage, 1 data), exactly one `error:` line that
names the culprit, no Python traceback, and nothing created, deleted or modified
in the data dir (a listing of paths, sizes and mtimes before and after).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import build_pretraining_dataset
from configure_pretraining import PretrainingConfig
from pretrain import runner
from tests.conftest import REPO_ROOT, SAMPLE_CORPUS, UNCASED_VOCAB, tree_state

TINY_PRETRAIN = {
    "max_seq_length": 32, "embedding_size": 16, "generator_hidden_size": 0.5,
    "model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "intermediate_size": 37},
    "train_batch_size": 4, "num_train_steps": 1, "save_checkpoints_steps": 1,
    "num_warmup_steps": 0, "seed": 3,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A user's data dir: vocab, tfrecords, a 1-step non-debug model, fine-tuning data."""
  root = tmp_path_factory.mktemp("user_data")
  shutil.copy(UNCASED_VOCAB, root / "vocab.txt")
  corpus = root / "corpus"
  corpus.mkdir()
  with open(SAMPLE_CORPUS, encoding="utf-8") as f:
    (corpus / "head.txt").write_text("".join(next(f) for _ in range(30)), encoding="utf-8")
  assert build_pretraining_dataset.main([
      "--corpus-dir", str(corpus), "--vocab-file", str(root / "vocab.txt"), "--output-dir",
      str(root / "pretrain_tfrecords"), "--max-seq-length", "32", "--seed", "0"]) == 0
  runner.train_or_eval(PretrainingConfig("mine", str(root), **TINY_PRETRAIN))
  shutil.copytree(os.path.join(REPO_ROOT, "tests", "data", "finetune", "sst_like"),
                  root / "finetuning_data" / "sst")
  (root / "hparams_bad.json").write_text('{"debug": tru}\n', encoding="utf-8")
  (root / "texts.txt").write_text("a sentence to score .\n", encoding="utf-8")
  (root / "blank_corpus").mkdir()
  (root / "blank_corpus" / "blank.txt").write_text("\n\n   \n\n", encoding="utf-8")
  return str(root)


def run_cli(script, *args):
  env = dict(os.environ)
  env.pop("ELECTRA_TRACEBACK", None)
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, script), *args],
                        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


def pretrain_args(data_dir, hparams, model="mine"):
  return ["--data-dir", data_dir, "--model-name", model, "--hparams",
          hparams if isinstance(hparams, str) else json.dumps(hparams)]


def beside(data_dir, name, kind):
  """A directory or FIFO (`kind` "dir" / "fifo") next to the data dir, made once."""
  path = os.path.join(os.path.dirname(data_dir), name)
  if not os.path.lexists(path):
    (os.mkdir if kind == "dir" else os.mkfifo)(path)
  return path


# (id, script, argument builder, exit code, text the error line must contain)
CASES = [
    ("pretrain-unknown-hparam", "run_pretraining.py",
     lambda d: pretrain_args(d, {"num_train_step": 5}), 2, "num_train_step"),
    ("pretrain-bad-json", "run_pretraining.py",
     lambda d: pretrain_args(d, '{"debug": tru}'), 2, "JSON"),
    ("pretrain-bad-json-file", "run_pretraining.py",
     lambda d: pretrain_args(d, os.path.join(d, "hparams_bad.json")), 2, "hparams_bad.json"),
    ("pretrain-missing-hparams-file", "run_pretraining.py",
     lambda d: pretrain_args(d, os.path.join(d, "missing.json")), 2, "missing.json"),
    ("pretrain-wrong-type", "run_pretraining.py",
     lambda d: pretrain_args(d, {"train_batch_size": "8"}), 2, "train_batch_size"),
    ("pretrain-save-steps-0", "run_pretraining.py",
     lambda d: pretrain_args(d, {"save_checkpoints_steps": 0}), 2, "save_checkpoints_steps"),
    ("pretrain-batch-0", "run_pretraining.py",
     lambda d: pretrain_args(d, {"train_batch_size": 0}), 2, "train_batch_size"),
    ("pretrain-not-a-boolean", "run_pretraining.py",
     lambda d: pretrain_args(d, {"do_train": "yes"}), 2, "do_train"),
    ("pretrain-missing-vocab", "run_pretraining.py",
     lambda d: pretrain_args(d, dict(TINY_PRETRAIN, num_train_steps=2, vocab_file=os.path.join(
         d, "nope", "vocab.txt")), model="other"), 1, "vocab.txt"),
    ("pretrain-debug-wipe-of-a-real-run", "run_pretraining.py",
     lambda d: pretrain_args(d, {"debug": True, "max_seq_length": 32}), 2, "debug"),
    ("pretrain-debug-missing-tfrecords", "run_pretraining.py",
     lambda d: pretrain_args(d, {"debug": True, "pretrain_tfrecords": os.path.join(
         d, "nope", "pretrain_data.tfrecord*")}), 1, "nope"),
    ("finetune-architecture-mismatch", "run_finetuning.py",
     lambda d: pretrain_args(d, {"task_names": ["sst"], "model_hparam_overrides": {
         "num_hidden_layers": 3}}), 2,
     "num_hidden_layers"),
    ("convert-architecture-mismatch", "convert_hf.py",
     lambda d: ["export"] + pretrain_args(d, {"model_hparam_overrides": {
         "num_hidden_layers": 3}}) + ["--output-dir", os.path.join(d, "..", "hf_out2")], 2,
     "num_hidden_layers 2"),
    ("finetune-unknown-task", "run_finetuning.py",
     lambda d: pretrain_args(d, {"task_names": ["nosuchtask"]}), 2, "nosuchtask"),
    ("finetune-missing-task-folder", "run_finetuning.py",
     lambda d: pretrain_args(d, {"task_names": ["rte"]}), 1, "rte"),
    ("finetune-missing-model-dir", "run_finetuning.py",
     lambda d: pretrain_args(d, {"task_names": ["sst"]}, model="nosuchmodel"), 1,
     "nosuchmodel"),
    ("export-missing-model-dir", "export_model.py",
     lambda d: pretrain_args(d, "{}", model="nosuchmodel") + [
         "--output-dir", os.path.join(d, "..", "export_out")], 1, "nosuchmodel"),
    ("convert-missing-model-dir", "convert_hf.py",
     lambda d: ["export"] + pretrain_args(d, "{}", model="nosuchmodel") + [
         "--output-dir", os.path.join(d, "..", "hf_out")], 1, "nosuchmodel"),
    ("score-missing-input", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "nope.txt"), "--output",
                                         os.path.join(d, "..", "scores.jsonl")], 1,
     "nope.txt"),
    ("export-into-model-dir", "export_model.py",
     lambda d: pretrain_args(d, "{}") + ["--output-dir", os.path.join(d, "models", "mine"),
                                         "--overwrite"], 2, "models"),
    ("convert-into-models-tree", "convert_hf.py",
     lambda d: ["export"] + pretrain_args(d, "{}") + [
         "--output-dir", os.path.join(d, "models", "mine", "hf"), "--overwrite"], 2, "models"),
    ("score-output-is-input", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "texts.txt"), "--output",
                                         os.path.join(d, ".", "texts.txt")], 2,
     "texts.txt"),
    ("score-output-is-model-checkpoint", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "texts.txt"), "--output",
                                         os.path.join(d, "models", "mine", "checkpoint")], 2,
     os.path.join("models", "mine", "checkpoint") + " is inside the model directory"),
    ("score-output-in-models-even-with-overwrite", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "texts.txt"), "--output",
                                         os.path.join(d, "models", "scores.jsonl"),
                                         "--overwrite"], 2,
     os.path.join("models", "scores.jsonl") + " is inside the models directory"),
    ("score-output-exists", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "texts.txt"), "--output",
                                         os.path.join(d, "vocab.txt")], 2,
     "vocab.txt already exists; pass --overwrite"),
    ("score-input-is-a-directory", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", os.path.join(d, "corpus"), "--output",
                                         os.path.join(d, "..", "scores.jsonl")], 1,
     "corpus is a directory"),
    ("score-input-is-a-fifo", "score_text.py",
     lambda d: pretrain_args(d, "{}") + ["--input", beside(d, "texts.fifo", "fifo"),
                                         "--output", os.path.join(d, "..", "scores.jsonl")], 1,
     "texts.fifo is not a regular file (a FIFO)"),
    ("pretrain-hparams-file-is-a-directory", "run_pretraining.py",
     lambda d: pretrain_args(d, beside(d, "hparams_dir.json", "dir")), 2,
     "hparams_dir.json is a directory"),
    ("pretrain-hparams-file-is-a-fifo", "run_pretraining.py",
     lambda d: pretrain_args(d, beside(d, "hparams_fifo.json", "fifo")), 2,
     "hparams_fifo.json is not a regular file (a FIFO)"),
    ("build-blank-corpus", "build_pretraining_dataset.py",
     lambda d: ["--corpus-dir", os.path.join(d, "blank_corpus"), "--vocab-file",
                os.path.join(d, "vocab.txt"), "--output-dir", os.path.join(d, "..", "tf_out")],
     1, "no examples written"),
    ("build-missing-corpus", "build_pretraining_dataset.py",
     lambda d: ["--corpus-dir", os.path.join(d, "nocorpus"), "--vocab-file",
                os.path.join(d, "vocab.txt"), "--output-dir", os.path.join(d, "..", "tf_out")],
     1, "nocorpus"),
    ("build-num-processes-0", "build_pretraining_dataset.py",
     lambda d: ["--corpus-dir", os.path.join(d, "corpus"), "--vocab-file",
                os.path.join(d, "vocab.txt"), "--output-dir", os.path.join(d, "..", "tf_out"),
                "--num-processes", "0"], 2, "--num-processes must be in [1, 1000]"),
    ("build-max-seq-length-3", "build_pretraining_dataset.py",
     lambda d: ["--corpus-dir", os.path.join(d, "corpus"), "--vocab-file",
                os.path.join(d, "vocab.txt"), "--output-dir", os.path.join(d, "..", "tf_out"),
                "--max-seq-length", "3"], 2, "--max-seq-length must be at least 5"),
]


@pytest.mark.parametrize("script,make_args,code,needle", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_user_mistake_gives_one_error_line(data_dir, script, make_args, code, needle):
  before = tree_state(data_dir, folder_mtimes=False)
  result = run_cli(script, *make_args(data_dir))
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == code or code is None and result.returncode in (1, 2), (
      result.stderr[-3000:])
  assert len(errors) == 1 and needle in errors[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert tree_state(data_dir, folder_mtimes=False) == before
