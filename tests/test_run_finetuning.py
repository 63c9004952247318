"""End-to-end fine-tuning (run_finetuning.py, finetune/model_runner.py) on real data slices.

Tiny odd-sized encoders (hidden 32, 2 layers, 2 heads, intermediate 37,
embedding 16, max_seq_length 64) fine-tuned for one epoch on the real BoolQ /
sentence-polarity slices of tests/data/finetune (as custom tasks and under the
built-in `sst` name), SQuAD 1.1 (tests/data/qa) and CoNLL chunking
(tests/data/tagging). Checked against independent references: labels read
back from the TSVs with `csv`, cross-entropy / accuracy recomputed with numpy,
SQuAD exact match recomputed with the official normalization, the layer-wise
learning-rate formula of docs/model.md#layer-wise-learning-rate-decay written out by hand.
"""
import csv
import json
import logging
import os
import pickle
import re
import shutil
import string
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from finetune import trials

from configure_finetuning import FinetuningConfig
from configure_pretraining import PretrainingConfig
from finetune import finetuning_model, task_builder
from finetune.model_runner import ModelRunner, trial_seed
from model import checkpointing
from model import model_dir as model_dir_lib
import run_finetuning
from util import cli, files, locking
from tests.conftest import TEST_DATA, UNCASED_VOCAB, tree_state
from tests.graph_inspection import xla_kernel_names

FINETUNE_DATA = os.path.join(TEST_DATA, "finetune")
TINY_MODEL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 37}
BOOLQ = {"name": "boolq", "type": "classification", "text_a_column": 1, "text_b_column": 2,
         "label_column": 3, "labels": ["False", "True"]}
SST_LIKE = {"name": "sst_like", "type": "classification", "text_a_column": 0,
            "label_column": 1, "labels": ["0", "1"]}


DEFAULT = object()  # tiny_hparams(init_checkpoint=DEFAULT): keep the config's default


def tiny_hparams(**overrides):
  hparams = {"model_hparam_overrides": dict(TINY_MODEL), "embedding_size": 16,
             "max_seq_length": 64, "num_train_epochs": 1.0, "train_batch_size": 8,
             "eval_batch_size": 8, "predict_batch_size": 5, "vocab_file": UNCASED_VOCAB,
             "init_checkpoint": None, "seed": 11, "task_configs": [BOOLQ, SST_LIKE]}
  hparams.update(overrides)
  return {k: v for k, v in hparams.items() if v is not DEFAULT}


def read_tsv(path):
  with open(path, encoding="utf-8") as f:
    return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


class LogLines(logging.Handler):
  """Collects the "electra" logger's messages (scripts may disable propagation)."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.lines = []

  def emit(self, record):
    self.lines.extend(record.getMessage().split("\n"))


@pytest.fixture
def log_lines():
  handler = LogLines()
  logger = logging.getLogger("electra")
  old_level = logger.level
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  yield handler.lines
  logger.removeHandler(handler)
  logger.setLevel(old_level)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """<data_dir>/finetuning_data/{boolq,sst_like,sst}: real slices; sst gets a test.tsv."""
  root = tmp_path_factory.mktemp("ft_data")
  raw = root / "finetuning_data"
  for name in ("boolq", "sst_like"):
    shutil.copytree(os.path.join(FINETUNE_DATA, name), raw / name)
  shutil.copytree(os.path.join(FINETUNE_DATA, "sst_like"), raw / "sst")
  dev_rows = read_tsv(os.path.join(FINETUNE_DATA, "sst_like", "dev.tsv"))[1:]
  with open(raw / "sst" / "test.tsv", "w", encoding="utf-8") as f:  # GLUE SST-2 test layout
    f.write("index\tsentence\n")
    for i, row in enumerate(dev_rows[:7]):
      f.write(f"{i}\t{row[0]}\n")
  return str(root)


def numpy_summary_lines(results, keys):
  """The expected summary lines, statistics computed with numpy (std: ddof 1)."""
  lines = []
  for task, metric in keys:
    values = np.array([r[task][metric] for r in results], dtype=np.float64)
    stats = [("median", np.median(values)), ("mean", values.mean()),
             ("std", values.std(ddof=1)), ("min", values.min()), ("max", values.max())]
    lines.append(f"{task} {metric} over {len(values)} trials: "
                 + " - ".join(f"{name} {value:.2f}" for name, value in stats))
  return lines


def make_config(data_dir, model_name="electra_test", **hparams):
  return FinetuningConfig(model_name, data_dir, **tiny_hparams(**hparams))


def trial_model_dir(config, trial):
  return f"{config.model_dir}_{trial}"


# ----------------------------------------------------------------------------
# Custom tasks, multi-task, trials, cache, seeds
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def multitask_run(data_dir):
  handler = LogLines()
  logger = logging.getLogger("electra")
  logger.addHandler(handler)
  old_level = logger.level
  logger.setLevel(logging.INFO)
  try:
    config = make_config(data_dir, task_names=["boolq", "sst_like"], num_trials=2,
                         num_train_epochs=2.0)
    results = trials.run_finetuning(config)
  finally:
    logger.removeHandler(handler)
    logger.setLevel(old_level)
  return config, results, handler.lines


def test_multitask_two_trials_results_files(multitask_run):
  config, results, lines = multitask_run
  assert config.results_txt.endswith(os.path.join("results", "boolq,sst_like_results.txt"))
  assert len(results) == 2
  for trial_results in results:
    assert list(trial_results) == ["boolq", "sst_like"]
    for task_results in trial_results.values():
      assert list(task_results) == ["accuracy", "loss"]
  with open(config.results_pkl, "rb") as f:
    assert pickle.load(f) == results
  with open(config.results_txt, encoding="utf-8") as f:
    text_lines = f.read().splitlines()
  expected = [f"{task}: accuracy: {r[task]['accuracy']:.2f} - loss: {r[task]['loss']:.2f}"
              for r in results for task in ("boolq", "sst_like")]
  assert text_lines[:4] == expected
  assert text_lines[4:] == numpy_summary_lines(results, [("boolq", "accuracy"), ("boolq", "loss"),
                                                         ("sst_like", "accuracy"),
                                                         ("sst_like", "loss")])
  # 12 boolq and 10 sst_like dev rows: accuracies are multiples of 100/12 and 100/10.
  for r in results:
    assert round(r["boolq"]["accuracy"] * 12 / 100, 6).is_integer()
    assert round(r["sst_like"]["accuracy"] * 10 / 100, 6).is_integer()
  assert "Config: model=electra_test, trial 1/2" in lines
  assert lines.count("Start training: model=electra_test, trial 1/2") == 2
  assert lines.count("Evaluating boolq") == 2 and lines.count("Evaluating sst_like") == 2
  assert sum(line.startswith("boolq: accuracy: ") for line in lines) == 2


def test_multitask_train_steps_eta_and_cache_reuse(multitask_run):
  config, _, lines = multitask_run
  # 24 boolq + 30 sst_like rows = 54, padded to 56 = 7 batches of 8, times 2 epochs.
  assert lines.count("Training for 14 steps") == 2
  eta = [line for line in lines if re.match(r"\d+/14 = ", line)]
  # Every 10 steps, and the last step (the original never logged 14/14), per trial.
  assert [line.split(", SPS: ")[0] for line in eta] == ["10/14 = 71.4%", "14/14 = 100.0%"] * 2
  assert all(" - loss: " in line for line in eta[::2])
  # The train tfrecords are built once (trial 1) and reused by trial 2.
  train_loads = [i for i, line in enumerate(lines)
                 if line == "Loading dataset boolq_sst_like_train"]
  assert len(train_loads) == 2
  assert lines[train_loads[0] + 1] == "Existing tfrecords not found so creating"
  assert lines[train_loads[1] + 1] != "Existing tfrecords not found so creating"
  for trial in (1, 2):  # keep_all_models defaults to true
    assert checkpointing.latest_checkpoint(trial_model_dir(config, trial)).endswith("ckpt-14")


def test_trials_use_different_seeds(multitask_run):
  config, results, _ = multitask_run
  assert trial_seed(11, 1) == 12 and trial_seed(11, 2) == 13 and trial_seed(None, 3) is None
  heads = []
  for trial in (1, 2):
    reader = tf.train.load_checkpoint(trial_model_dir(config, trial) + "/model.ckpt-0")
    heads.append(reader.get_tensor("task_specific/boolq/dense/kernel"))
  assert not np.allclose(heads[0], heads[1])  # new head initialization per trial
  assert results[0]["boolq"]["loss"] != results[1]["boolq"]["loss"]


def test_model_runner_initialization_is_seeded_per_trial(data_dir):
  config = make_config(data_dir, task_names=["sst_like"], do_train=False)
  tasks = task_builder.get_tasks(config)

  def head(trial):
    runner = ModelRunner(config, tasks, os.path.join(data_dir, "unused"), trial)
    return runner.model.named_variables()["task_specific/sst_like/dense/kernel"].numpy()

  np.testing.assert_array_equal(head(1), head(1))
  assert not np.allclose(head(1), head(2))


# ----------------------------------------------------------------------------
# The built-in `sst` task: metrics, test outputs, GLUE TSV, eval-only
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sst_run(data_dir):
  """Two trials; only the last model is kept and only trial 1 writes test outputs."""
  config = make_config(data_dir, "electra_sst", task_names=["sst"], num_trials=2,
                       keep_all_models=False, write_test_outputs=True, n_writes_test=1)
  results = trials.run_finetuning(config)
  return config, results


def test_sst_keeps_only_the_last_model(sst_run):
  config, results = sst_run
  assert len(results) == 2
  assert not os.path.exists(trial_model_dir(config, 1))
  # (30 train rows padded to 32) // 8 = 4 steps.
  assert checkpointing.latest_checkpoint(trial_model_dir(config, 2)).endswith("ckpt-4")


def test_sst_metrics_match_numpy_recomputation(sst_run, data_dir):
  config, results = sst_run
  assert list(results[1]["sst"]) == ["accuracy", "loss"]
  eval_config = make_config(data_dir, "electra_sst", task_names=["sst"], do_train=False)
  tasks = task_builder.get_tasks(eval_config)
  runner = ModelRunner(eval_config, tasks, trial_model_dir(config, 2))
  logits = {int(out["eid"]): out["logits"] for _, out in runner.predict(tasks, "dev")}
  labels = [int(row[1]) for row in read_tsv(os.path.join(data_dir, "finetuning_data", "sst",
                                                         "dev.tsv"))[1:]]
  assert sorted(logits) == list(range(len(labels))) == list(range(10))  # padding skipped
  stacked = np.stack([logits[i] for i in range(10)]).astype(np.float64)
  log_probs = stacked - np.log(np.exp(stacked).sum(-1, keepdims=True))
  loss = -np.mean(log_probs[np.arange(10), labels])
  accuracy = 100.0 * np.mean(np.argmax(stacked, -1) == np.array(labels))
  assert results[1]["sst"]["accuracy"] == pytest.approx(accuracy)
  assert results[1]["sst"]["loss"] == pytest.approx(loss, rel=1e-5)


def _dev_predictions(config, data_dir, **hparams):
  """The trained sst model's dev logits by example id, the runner's predict function and
  the XLA kernels its traced graphs call, with `hparams` for evaluation."""
  eval_config = make_config(data_dir, "electra_sst", task_names=["sst"], do_train=False,
                            **hparams)
  tasks = task_builder.get_tasks(eval_config)
  runner = ModelRunner(eval_config, tasks, trial_model_dir(config, 2))
  logits = {int(out["eid"]): out["logits"] for _, out in runner.predict(tasks, "dev")}
  predict_step = runner._predict_step  # pylint: disable=protected-access
  kernels = [name for trace in predict_step._list_all_concrete_functions()  # pylint: disable=protected-access
             for name in xla_kernel_names(trace.graph)]
  return logits, predict_step, kernels


def test_prediction_is_xla_compiled_in_fp32_with_the_same_outputs(sst_run, data_dir):
  config, _ = sst_run
  outputs = {}
  for xla_predict in ("auto", "off"):
    outputs[xla_predict], predict_step, kernels = _dev_predictions(
        config, data_dir, xla_predict=xla_predict)
    assert predict_step._jit_compile is (xla_predict == "auto")  # pylint: disable=protected-access
    # fp32: no XLA kernels inside the plain graph (grappler's oneDNN fusions are faster).
    assert not kernels
  assert sorted(outputs["auto"]) == sorted(outputs["off"]) == list(range(10))
  for eid, logits in outputs["off"].items():
    np.testing.assert_allclose(outputs["auto"][eid], logits, rtol=1e-5, atol=1e-5)


def test_bf16_prediction_runs_fused_kernels_close_to_fp32(sst_run, data_dir):
  config, _ = sst_run
  outputs, kernels = {}, {}
  for precision in ("off", "bf16"):
    outputs[precision], _, kernels[precision] = _dev_predictions(
        config, data_dir, mixed_precision=precision)
  assert not kernels["off"]  # fp32: whole-graph XLA (xla_predict auto)
  assert "split_qkv" in kernels["bf16"], kernels["bf16"]
  assert sorted(outputs["bf16"]) == sorted(outputs["off"]) == list(range(10))
  for eid, logits in outputs["off"].items():
    np.testing.assert_allclose(outputs["bf16"][eid], logits, atol=0.1)


def test_sst_test_outputs_and_glue_tsv(sst_run, data_dir):
  config, _ = sst_run
  path = config.test_predictions("sst", "test", 1)
  assert path.endswith(os.path.join("models", "electra_sst", "test_predictions",
                                    "sst_test_1_predictions.pkl"))
  with open(path, "rb") as f:
    predictions = pickle.load(f)
  assert sorted(predictions) == list(range(7))
  assert all(np.asarray(v).shape == (2,) for v in predictions.values())
  tsv = os.path.join(os.path.dirname(config.results_txt), "sst_glue_submission_1", "SST-2.tsv")
  rows = read_tsv(tsv)
  assert rows[0] == ["index", "prediction"]
  assert rows[1:] == [[str(i), str(int(np.argmax(predictions[i])))] for i in range(7)]
  # n_writes_test = 1: trial 2 writes no test outputs.
  assert not os.path.exists(config.test_predictions("sst", "test", 2))
  assert not os.path.exists(tsv.replace("submission_1", "submission_2"))


def test_eval_only_from_finetuned_dir_reproduces_metrics(sst_run, data_dir, log_lines):
  config, results = sst_run
  finetuned_dir = trial_model_dir(config, 2)
  eval_dir = os.path.join(data_dir, "eval_only", "sst_model")
  eval_config = make_config(data_dir, "electra_sst", task_names=["sst"], do_train=False,
                            init_checkpoint=finetuned_dir, model_dir=eval_dir,
                            results_txt=os.path.join(data_dir, "eval_only", "r.txt"),
                            results_pkl=os.path.join(data_dir, "eval_only", "r.pkl"))
  eval_results = trials.run_finetuning(eval_config)
  assert eval_results[0]["sst"] == pytest.approx(results[1]["sst"], rel=1e-6)
  assert not any(line.startswith("Start training") for line in log_lines)
  assert not os.path.exists(eval_dir + "_1")  # nothing trained, nothing written
  # Encoder (5 + 2 + 2 * 16) and the task head are all loaded from the fine-tuned model.
  assert any(line.startswith("Restored 41 variables from " + finetuned_dir + "/model.ckpt-")
             for line in log_lines)


# ----------------------------------------------------------------------------
# init_checkpoint: partial load of a pre-trained model, errors
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained_dir(data_dir):
  """A pre-training-format checkpoint: encoder `electra/*` plus discriminator head, step."""
  config = make_config(data_dir, task_names=["sst_like"])
  model = finetuning_model.FinetuningModel(config, task_builder.get_tasks(config))
  variables = {name: v for name, v in model.named_variables().items()
               if name.startswith("electra/")}
  variables["discriminator_predictions/dense/kernel"] = tf.Variable(tf.ones([32, 32]))
  variables["global_step"] = tf.Variable(1000, dtype=tf.int64)
  directory = os.path.join(data_dir, "models", "electra_pre")
  checkpointing.save_checkpoint(directory, 1000, variables)
  return directory


def test_init_from_pretrained_loads_encoder_only(data_dir, pretrained_dir, log_lines):
  config = make_config(data_dir, "electra_pre", task_names=["sst_like"],
                       init_checkpoint=DEFAULT)
  assert config.init_checkpoint == pretrained_dir
  runner = ModelRunner(config, task_builder.get_tasks(config),
                       os.path.join(data_dir, "init_test", "m_1"))
  reader = tf.train.load_checkpoint(pretrained_dir + "/model.ckpt-1000")
  encoder = {n: v for n, v in runner.model.named_variables().items() if n.startswith("electra/")}
  assert len(encoder) == 39
  for name, variable in encoder.items():
    np.testing.assert_array_equal(variable.numpy(), reader.get_tensor(name))
  report = runner.init_report
  assert report.restored == sorted(encoder)
  assert report.missing == ["task_specific/sst_like/dense/bias",
                            "task_specific/sst_like/dense/kernel"]
  assert "discriminator_predictions/dense/kernel" in report.unexpected
  assert any(line.startswith(f"Restored 39 variables from {pretrained_dir}/model.ckpt-1000")
             for line in log_lines)
  assert any("in the checkpoint but not in the model, ignored" in line for line in log_lines)


def test_init_checkpoint_model_size_mismatch_error(data_dir, pretrained_dir, log_lines):
  config = make_config(data_dir, "electra_pre", task_names=["sst_like"],
                       init_checkpoint=pretrained_dir,
                       model_hparam_overrides=dict(TINY_MODEL, hidden_size=48))
  with pytest.raises(cli.UsageError) as error:
    trials.run_finetuning(config)
  prefix = os.path.join(pretrained_dir, "model.ckpt-1000")
  # One line naming the hparam to set; nothing was featurized.
  assert str(error.value) == (
      f"init_checkpoint {prefix} holds an encoder with hidden_size 32 (the hparams give 48): "
      "set in --hparams model_hparam_overrides {\"hidden_size\": 32}.")
  assert "Config: model=electra_pre, trial 1/1" in log_lines
  assert not any(line.startswith("Loading dataset") for line in log_lines)


@pytest.fixture(scope="module")
def saved_pretrained_dir(data_dir, pretrained_dir):
  """`pretrained_dir`'s checkpoint plus the pretrain_config.json of a run of its sizes."""
  directory = os.path.join(data_dir, "models", "electra_saved")
  shutil.copytree(pretrained_dir, directory)
  config = PretrainingConfig("electra_saved", data_dir, model_hparam_overrides=TINY_MODEL,
                             embedding_size=16, vocab_size=30522)
  config.write_json(os.path.join(directory, "pretrain_config.json"))
  return directory


def test_finetuning_inherits_the_pretrained_sizes(data_dir, saved_pretrained_dir, log_lines):
  hparams = {k: v for k, v in tiny_hparams(task_names=["sst_like"]).items()
             if k not in ("model_hparam_overrides", "embedding_size", "init_checkpoint")}
  # What main() does after parsing the flags.
  results = trials.run_finetuning(
      trials.build_config(data_dir, "electra_saved", hparams))
  assert list(results[0]["sst_like"]) == ["accuracy", "loss"]
  path = os.path.join(saved_pretrained_dir, "pretrain_config.json")
  inherited = [line for line in log_lines if line.startswith("Using the pre-trained model's")]
  assert len(inherited) == 1 and inherited[0].endswith(
      f"from {path} (set them in --hparams to override)")
  assert "embedding_size 16" in inherited[0] and '"hidden_size": 32' in inherited[0]
  assert any(line.startswith(f"Restored 39 variables from {saved_pretrained_dir}/model.ckpt-1000")
             for line in log_lines)
  # Explicit sizes win; a mismatch names the hparam and where the saved sizes are.
  with pytest.raises(cli.UsageError) as error:
    trials.run_finetuning(trials.build_config(
        data_dir, "electra_saved", {**hparams, "embedding_size": 8}))
  assert "embedding_size 16 (the hparams give 8): set in --hparams embedding_size 16 (or " \
      f"leave them out: the sizes saved in {path} apply" in str(error.value)


@pytest.mark.parametrize("fingerprint", [False, True], ids=["older_run", "fingerprint"])
def test_a_vocab_other_than_the_pretrained_ones_is_refused(data_dir, saved_pretrained_dir,
                                                           tmp_path, fingerprint):
  """An 889-line vocab.txt next to a checkpoint trained with 30,522 ids: refused up front."""
  name = "vocab_" + ("fingerprint" if fingerprint else "older")
  directory = os.path.join(data_dir, "models", name)
  shutil.copytree(saved_pretrained_dir, directory)
  saved = os.path.join(directory, "pretrain_config.json")
  files.write_json(dict(files.load_json(saved), vocab_file=UNCASED_VOCAB), saved)
  if fingerprint:  # what run_pretraining.py writes now
    files.write_json(model_dir_lib.vocab_fingerprint(UNCASED_VOCAB),
                     os.path.join(directory, "vocab_fingerprint.json"))
  with open(UNCASED_VOCAB, encoding="utf-8") as f:
    head = [next(f) for _ in range(889)]
  small = os.path.join(directory, "vocab.txt")
  with open(small, "w", encoding="utf-8") as f:
    f.write("".join(head))
  hparams = {k: v for k, v in tiny_hparams(task_names=["sst_like"]).items()
             if k not in ("model_hparam_overrides", "embedding_size", "init_checkpoint",
                          "vocab_file")}
  config = trials.build_config(data_dir, name, hparams)
  assert config.vocab_file == small and config.vocab_size == 30522
  before = tree_state(directory)
  with pytest.raises(cli.DataError) as error:
    trials.run_finetuning(config)
  message = str(error.value)
  assert message.startswith(f"vocab_file {small} ")
  if fingerprint:
    assert (f"is not the vocabulary init_checkpoint {directory}/model.ckpt-1000 was trained "
            f"with: {directory}/vocab_fingerprint.json records {UNCASED_VOCAB} (30522 lines"
            in message)
  else:
    assert (f"has 889 lines but init_checkpoint {directory}/model.ckpt-1000 has 30522 "
            f"embedding rows: it was trained with {UNCASED_VOCAB} (30522 lines)") in message
  assert tree_state(directory) == before
  os.remove(small)  # the right vocabulary (the saved one) fine-tunes
  trials.run_finetuning(trials.build_config(data_dir, name, hparams))


def test_corrupt_init_checkpoint_names_it_and_the_intact_one(data_dir, pretrained_dir,
                                                             tmp_path):
  directory = str(tmp_path / "pre")
  shutil.copytree(pretrained_dir, directory)
  reader = tf.train.load_checkpoint(os.path.join(directory, "model.ckpt-1000"))
  variables = {name: tf.Variable(reader.get_tensor(name))
               for name in reader.get_variable_to_shape_map()}
  latest = checkpointing.save_checkpoint(directory, 2000, variables, keep_checkpoint_max=0)
  data = latest + ".data-00000-of-00001"
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) - 100)
  config = make_config(data_dir, "electra_pre", task_names=["sst_like"],
                       init_checkpoint=directory)
  with pytest.raises(checkpointing.CorruptCheckpointError) as error:
    trials.run_finetuning(config)
  message = str(error.value)
  assert message.startswith(f"Checkpoint {latest} is corrupt") and "\n" not in message
  assert message.endswith(
      f'set "init_checkpoint": "{os.path.join(directory, "model.ckpt-1000")}".')


def test_second_finetuning_of_the_same_tasks_is_refused(data_dir):
  config = make_config(data_dir, "locked_model", task_names=["sst_like"])
  with locking.exclusive_lock(config.model_dir + ".lock", "fine-tuning"):
    with pytest.raises(locking.LockedError, match=f"pid {os.getpid()} on host "):
      trials.run_finetuning(config)
  assert not os.path.exists(trial_model_dir(config, 1))


@pytest.mark.parametrize("do_train", [True, False], ids=["train", "eval_only"])
def test_a_refused_run_leaves_the_running_runs_feature_caches_alone(data_dir, do_train):
  """Run A (seq 64) holds the lock; run B (seq 48) must not rewrite the caches A reads."""
  config = make_config(data_dir, "cache_owner", task_names=["sst_like"], num_train_epochs=1.0)
  trials.run_finetuning(config)  # A's caches, as A leaves them while it trains
  model_dir = os.path.join(data_dir, "models", "cache_owner")
  before = tree_state(model_dir, folder_mtimes=False)
  other = make_config(data_dir, "cache_owner", task_names=["sst_like"], num_train_epochs=1.0,
                      max_seq_length=48, do_train=do_train)
  with locking.exclusive_lock(config.model_dir + ".lock", "fine-tuning"):
    with pytest.raises(locking.LockedError, match=f"sst_like.* pid {os.getpid()} on host"):
      trials.run_finetuning(other)
    assert tree_state(model_dir, folder_mtimes=False) == dict(
        before, **{os.path.join("finetuning_models", "sst_like_model.lock"): mock.ANY})


def test_missing_init_checkpoint_error(data_dir):
  config = make_config(data_dir, "no_such_model", task_names=["sst_like"],
                       init_checkpoint=DEFAULT)
  with pytest.raises(FileNotFoundError, match="init_checkpoint") as error:
    trials.run_finetuning(config)
  message = str(error.value)
  assert os.path.join(data_dir, "models", "no_such_model") in message and "null" in message


def test_missing_dev_data_error_before_training(data_dir):
  task = dict(SST_LIKE, name="nodev", dev_file=os.path.join(data_dir, "absent.tsv"),
              train_file=os.path.join(FINETUNE_DATA, "sst_like", "train.tsv"))
  config = make_config(data_dir, task_names=["nodev"], task_configs=[task])
  with pytest.raises(FileNotFoundError, match="nodev: no dev data at .*absent.tsv"):
    trials.run_finetuning(config)
  assert not os.path.exists(trial_model_dir(config, 1))


# ----------------------------------------------------------------------------
# Layer-wise learning rates (docs/model.md#layer-wise-learning-rate-decay) reach the runner's
# optimizer
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fix", [False, True])
def test_layerwise_learning_rates_12_layers(data_dir, fix):
  config = make_config(data_dir, task_names=["sst_like"], fix_layerwise_lr_decay=fix,
                       model_hparam_overrides=dict(TINY_MODEL, num_hidden_layers=12))
  runner = ModelRunner(config, task_builder.get_tasks(config),
                       os.path.join(data_dir, "lr_test", "m_1"))
  adam = runner.optimizer.adam
  top = 13 if fix else 14  # the original puts the head at depth n + 2 = 14
  expected = {
      "electra/embeddings/word_embeddings": 0.8 ** top,
      "electra/embeddings_project/kernel": 0.8 ** top,
      "electra/encoder/layer_0/attention/self/query/kernel": 0.8 ** (top - 1),
      "electra/encoder/layer_1/output/dense/bias": 0.8 ** (top - 2),
      "electra/encoder/layer_10/intermediate/dense/kernel": 0.8 ** (top - 11),
      "electra/encoder/layer_11/output/LayerNorm/gamma": 0.8 ** (top - 12),
      "task_specific/sst_like/dense/kernel": 1.0,
  }
  for name, multiplier in expected.items():
    assert adam.lr_multiplier(name) == pytest.approx(multiplier, rel=1e-12), name
  assert adam.lr_multiplier("electra/encoder/layer_11/output/dense/kernel") == pytest.approx(
      0.8 if fix else 0.64)
  assert len(adam.variable_names) == 5 + 2 + 12 * 16 + 2


# ----------------------------------------------------------------------------
# Question answering (SQuAD 1.1, SQuAD 2.0 test outputs) and chunking
# ----------------------------------------------------------------------------

def write_squad_slice(path, source, articles):
  """SQuAD JSON holding `articles` = {title: [paragraph indexes]} of `source`."""
  with open(source, encoding="utf-8") as f:
    data = json.load(f)
  by_title = {article["title"]: article for article in data["data"]}
  data["data"] = [{"title": title, "paragraphs": [by_title[title]["paragraphs"][i]
                                                  for i in indexes]}
                  for title, indexes in articles.items()]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f)
  return data


def normalize_answer(text):
  """The official SQuAD normalization: lower, no punctuation/articles, single spaces."""
  text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
  return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


QA_HPARAMS = {"max_seq_length": 128, "max_query_length": 32, "doc_stride": 64,
              "predict_batch_size": 8}


def test_squadv1_end_to_end(data_dir):
  source = os.path.join(TEST_DATA, "qa", "squadv1_dev_slice.json")
  raw = os.path.join(data_dir, "finetuning_data", "squadv1")
  write_squad_slice(os.path.join(raw, "train.json"), source, {"Super_Bowl_50": [2, 3]})
  dev = write_squad_slice(os.path.join(raw, "dev.json"), source, {"Normans": [0, 1, 2, 3, 4]})
  config = make_config(data_dir, "electra_qa", task_names=["squadv1"], **QA_HPARAMS)
  results = trials.run_finetuning(config)
  assert list(results[0]["squadv1"]) == ["exact_match", "f1"]
  with open(config.results_txt, encoding="utf-8") as f:
    assert f.read().startswith("squadv1: exact_match: ")
  with open(config.qa_preds_file("squadv1"), encoding="utf-8") as f:
    predictions = json.load(f)
  gold = {qa["id"]: [a["text"] for a in qa["answers"]]
          for article in dev["data"] for p in article["paragraphs"] for qa in p["qas"]}
  assert sorted(predictions) == sorted(gold) and len(gold) == 14
  contexts = " ".join(p["context"] for a in dev["data"] for p in a["paragraphs"])
  assert all(text in contexts for text in predictions.values())  # spans of the documents
  exact = 100.0 * np.mean([max(normalize_answer(predictions[qid]) == normalize_answer(g)
                               for g in answers) for qid, answers in gold.items()])
  assert results[0]["squadv1"]["exact_match"] == pytest.approx(exact)
  assert 0.0 <= results[0]["squadv1"]["exact_match"] <= results[0]["squadv1"]["f1"] <= 100.0


def test_squad_v2_eval_only_with_test_outputs(data_dir):
  source = os.path.join(TEST_DATA, "qa", "squadv2_dev_slice_SYNTHETIC_unanswerable.json")
  raw = os.path.join(data_dir, "finetuning_data", "squad")
  os.makedirs(raw, exist_ok=True)
  for split in ("dev", "test"):
    shutil.copy(source, os.path.join(raw, split + ".json"))
  config = make_config(data_dir, "electra_qa2", task_names=["squad"], do_train=False,
                       write_test_outputs=True, **QA_HPARAMS)
  results = trials.run_finetuning(config)
  assert {"exact", "f1", "HasAns_exact", "NoAns_exact", "best_f1"} <= set(results[0]["squad"])
  assert results[0]["squad"]["total"] == 60
  pickle_path = config.test_predictions("squad", "test", 1)
  with open(pickle_path, "rb") as f:
    answers = pickle.load(f)  # a real pickle (the original wrote JSON into the .pkl)
  with open(pickle_path[:-len(".pkl")] + ".json", encoding="utf-8") as f:
    assert json.load(f) == answers
  with open(config.qa_na_file("squad"), encoding="utf-8") as f:
    null_odds = json.load(f)  # rewritten by the test-split post-processing
  with open(config.qa_preds_file("squad"), encoding="utf-8") as f:
    best_spans = json.load(f)
  assert len(answers) == 60
  for qid, text in answers.items():
    expected = "" if null_odds[qid] > config.qa_na_threshold else best_spans[qid]
    assert text == expected


def test_chunk_end_to_end(data_dir):
  raw = os.path.join(data_dir, "finetuning_data", "chunk")
  os.makedirs(raw, exist_ok=True)
  for split in ("train", "dev"):
    shutil.copy(os.path.join(TEST_DATA, "tagging", split + ".txt"), raw)
  config = make_config(data_dir, "electra_chunk", task_names=["chunk"], train_batch_size=6)
  assert config.max_seq_length == 64  # the explicit value beats the chunk preset (256)
  results = trials.run_finetuning(config)
  chunk = results[0]["chunk"]
  assert list(chunk) == ["precision", "recall", "f1", "loss"]
  p, r = chunk["precision"], chunk["recall"]
  assert chunk["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
  assert chunk["loss"] > 0
  with open(config.results_txt, encoding="utf-8") as f:
    assert re.fullmatch(r"chunk: precision: [\d.]+ - recall: [\d.]+ - f1: [\d.]+ - "
                        r"loss: [\d.]+\n", f.read())
  with open(os.path.join(config.preprocessed_data_dir, "chunk_label_mapping.pkl"), "rb") as f:
    label_mapping = pickle.load(f)
  assert {"B-NP", "I-NP", "E-NP", "S-NP", "O"} <= set(label_mapping)


# ----------------------------------------------------------------------------
# Control flow of the trials loop and the command line (no model)
# ----------------------------------------------------------------------------

class _StopTrials(Exception):
  pass


def test_trials_loop_forever_with_negative_num_trials(data_dir, monkeypatch, log_lines):
  calls = []

  class FakeRunner:
    def __init__(self, config, tasks, model_dir, trial, strategy, preprocessor, resume):
      assert os.path.isdir(model_dir) and not os.listdir(model_dir)  # fresh per trial
      assert not resume
      calls.append((model_dir, trial))
      if trial == 3:
        raise _StopTrials()

    def train(self):
      pass

    def evaluate(self):
      return {"sst_like": {"accuracy": 50.0 + len(calls), "loss": 0.5}}

  monkeypatch.setattr(trials, "ModelRunner", FakeRunner)
  config = make_config(data_dir, "electra_loop", task_names=["sst_like"], num_trials=-1,
                       keep_all_models=False)
  with pytest.raises(_StopTrials):
    trials.run_finetuning(config)
  assert calls == [(f"{config.model_dir}_{t}", t) for t in (1, 2, 3)]
  assert not os.path.exists(calls[0][0]) and not os.path.exists(calls[1][0])
  assert log_lines.count("Start training: model=electra_loop, trial 1/-1") == 2
  with open(config.results_txt, encoding="utf-8") as f:
    assert f.read() == (
        "sst_like: accuracy: 51.00 - loss: 0.50\n"
        "sst_like: accuracy: 52.00 - loss: 0.50\n"
        "sst_like accuracy over 2 trials: median 51.50 - mean 51.50 - std 0.71 - min 51.00 - "
        "max 52.00\n"
        "sst_like loss over 2 trials: median 0.50 - mean 0.50 - std 0.00 - min 0.50 - max 0.50\n")


def test_cli_size_mismatch_is_one_error_line(data_dir, saved_pretrained_dir, capsys):
  logger = logging.getLogger("electra")
  saved = (list(logger.handlers), logger.level, logger.propagate)
  hparams = {k: v for k, v in tiny_hparams(task_names=["sst_like"]).items()
             if k not in ("model_hparam_overrides", "embedding_size", "init_checkpoint")}
  hparams["model_hparam_overrides"] = {"num_hidden_layers": 3}  # The rest is inherited.
  try:
    code = cli.run(run_finetuning.main, ["--data-dir", data_dir, "--model-name",
                                         "electra_saved", "--hparams", json.dumps(hparams)])
  finally:
    logger.handlers[:], logger.level, logger.propagate = saved
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
  assert code == 2 and len(errors) == 1
  assert errors[0].startswith(f"error: init_checkpoint {saved_pretrained_dir}/model.ckpt-1000 "
                              "holds an encoder with")
  assert ("num_hidden_layers 2 (the hparams give 3): set in --hparams model_hparam_overrides "
          '{"num_hidden_layers": 2} (or leave them out') in errors[0]


def test_trial_summaries_match_numpy(data_dir, monkeypatch):
  rng = np.random.default_rng(7)
  trial_results = [{task: {"accuracy": float(rng.uniform(40, 90)),
                           "loss": float(rng.uniform(0, 2))} for task in ("boolq", "sst_like")}
                   for _ in range(5)]
  written = []

  class FakeRunner:
    def __init__(self, config, tasks, model_dir, trial, strategy, preprocessor, resume=False):
      self.trial = trial

    def train(self):
      pass

    def evaluate(self):
      written.append(self.trial)
      return trial_results[self.trial - 1]

  monkeypatch.setattr(trials, "ModelRunner", FakeRunner)
  config = make_config(data_dir, "electra_summary", task_names=["boolq", "sst_like"],
                       num_trials=5)
  assert trials.run_finetuning(config) == trial_results
  with open(config.results_txt, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) == 10 + 4
  assert lines[:10] == [f"{task}: accuracy: {t[task]['accuracy']:.2f} - loss: "
                        f"{t[task]['loss']:.2f}"
                        for t in trial_results for task in ("boolq", "sst_like")]
  assert lines[10:] == numpy_summary_lines(trial_results, [
      ("boolq", "accuracy"), ("boolq", "loss"), ("sst_like", "accuracy"), ("sst_like", "loss")])
  with open(config.results_pkl, "rb") as f:
    assert pickle.load(f) == trial_results  # The per-trial records only, as the original.
  # One trial: no summary.
  one = make_config(data_dir, "electra_summary1", task_names=["boolq", "sst_like"])
  trials.write_results(one, trial_results[:1])
  with open(one.results_txt, encoding="utf-8") as f:
    assert len(f.read().splitlines()) == 2


def test_main_parses_flags_and_hparams_file(data_dir, tmp_path):
  logger = logging.getLogger("electra")
  saved = (list(logger.handlers), logger.level, logger.propagate)
  hparams_file = tmp_path / "hparams.json"
  hparams_file.write_text(json.dumps(tiny_hparams(task_names=["sst_like"], do_train=False,
                                                  do_eval=False)))
  try:
    assert run_finetuning.main(["--data-dir", data_dir, "--model-name", "electra_cli",
                                "--hparams", str(hparams_file)]) == []
    with pytest.raises(ValueError, match="Unknown hparam learning_rat"):
      run_finetuning.main(["--data-dir", data_dir, "--model-name", "electra_cli",
                           "--hparams", '{"learning_rat": 1e-3}'])
  finally:
    logger.handlers[:], logger.level, logger.propagate = saved
