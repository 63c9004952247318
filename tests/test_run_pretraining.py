"""run_pretraining.py end to end on a tiny model and real text (Moby-Dick, bundled).

Checks that training lowers the losses and the discriminator beats the
all-real baseline, exact resume (also after kill -9), the finished-run no-op,
continuing from a released-style checkpoint without Adam slots, evaluation
results files, flag errors, the MLM (with gradient accumulation) and Electric
objectives, bf16 and XLA against float32, and a 2-replica MirroredStrategy run
in fp16 with loss scaling.
"""
import glob
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import build_pretraining_dataset
from configure_pretraining import PretrainingConfig
from model import checkpointing
from pretrain import runner
from pretrain.pretraining_model import PretrainingModel
from util import cli, files, locking
from tests.conftest import REPO_ROOT, UNCASED_VOCAB, build_moby_dick_tfrecords, tree_state
from tests.training.test_trainer import read_scalars

# hidden 32, 2 layers, odd intermediate 37; generator hidden 16; E 16; S 32.
TINY = {
    "max_seq_length": 32, "embedding_size": 16, "generator_hidden_size": 0.5,
    "model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "intermediate_size": 37},
    "train_batch_size": 8, "eval_batch_size": 8, "learning_rate": 2e-3, "num_warmup_steps": 10,
    "seed": 1, "vocab_file": UNCASED_VOCAB, "keep_checkpoint_max": 0,
}
# The reference run that the resume tests reproduce.
REFERENCE = dict(TINY, num_train_steps=24, save_checkpoints_steps=12, iterations_per_loop=1)
METRICS = {"masked_lm_accuracy", "masked_lm_loss", "sampled_masked_lm_accuracy", "disc_loss",
           "disc_auc", "disc_accuracy", "disc_precision", "disc_recall", "loss", "global_step"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Pre-training tfrecords (length 32) of the first 100 lines of Moby-Dick (~530 examples)."""
  root = tmp_path_factory.mktemp("pretraining")
  build_moby_dick_tfrecords(str(root))
  return str(root)


def run(data_dir, model_name, **hparams):
  return runner.train_or_eval(PretrainingConfig(model_name, data_dir, **hparams))


def model_dir(data_dir, model_name):
  return os.path.join(data_dir, "models", model_name)


def checkpoint_values(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)}


def assert_same_checkpoints(actual_prefix, expected_prefix):
  actual, expected = checkpoint_values(actual_prefix), checkpoint_values(expected_prefix)
  assert set(actual) == set(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def reference(data_dir):
  """24 seeded steps, one per host loop, checkpoints at 0, 12 and 24."""
  run(data_dir, "reference", **REFERENCE)
  return model_dir(data_dir, "reference")


# --------------------------------------------------------------------------- training, eval


def test_eval_progress_lines_follow_the_training_cadence(data_dir, reference, electra_log):
  """One ETA line per iterations_per_loop eval steps plus the last one, not one per step."""
  resume_copy(data_dir, "reference", 24, "eval_cadence")  # leaves the reference untouched
  run(data_dir, "eval_cadence", **dict(REFERENCE, do_train=False, do_eval=True,
                                       num_eval_steps=5, iterations_per_loop=2))
  progress = [line for line in electra_log.messages if re.match(r"\d+/5 = ", line)]
  assert [line.split(" = ")[0] for line in progress] == ["2/5", "4/5", "5/5"]


def test_training_lowers_losses_and_eval_writes_every_metric(data_dir, electra_log):
  # LR 1e-3: the discriminator learns on every seed tried (1-3: AUC 0.70-0.72, recall
  # 0.20-0.25); 3e-3 is at the edge of the collapse (disc recall 0 on one seed of three).
  hparams = dict(TINY, num_train_steps=200, save_checkpoints_steps=200, iterations_per_loop=1,
                 learning_rate=1e-3, num_eval_steps=10)
  last = run(data_dir, "learn", **hparams)
  directory = model_dir(data_dir, "learn")
  scalars = read_scalars(directory)
  assert {"loss", "mlm_loss", "disc_loss", "learning_rate", "grad_norm"} <= set(scalars)
  for tag in ("loss", "mlm_loss", "disc_loss"):
    values = [value for _, value in scalars[tag]]
    assert len(values) == 200
    assert np.mean(values[-20:]) < np.mean(values[:20]) - 0.05 * abs(np.mean(values[:20])), tag
  assert last["loss"] == pytest.approx(scalars["loss"][-1][1])
  assert "200/200 = 100.0%, SPS: " in electra_log.text and " - loss: " in electra_log.text

  electra_log.clear()
  results = run(data_dir, "learn", **dict(hparams, do_train=False, do_eval=True))
  assert set(results) == METRICS
  assert results["global_step"] == 200
  # accuracy - all-real accuracy = (TP - FP) / N, so beating the baseline <=> precision > 0.5.
  assert results["disc_precision"] > 0.5 and results["disc_recall"] > 0.02
  assert results["disc_auc"] > 0.55
  assert results["masked_lm_accuracy"] > 0.02  # chance is 1/30522
  printed = [line for line in electra_log.messages if re.fullmatch(r"  \w+ = \S+", line)]
  assert printed == [f"  {key} = {results[key]}" for key in sorted(results)]
  with open(os.path.join(directory, "results", "unsup_results.txt")) as f:
    assert f.read().splitlines() == [f"{key} = {results[key]}" for key in sorted(results)]
  with open(os.path.join(directory, "results", "unsup_results.pkl"), "rb") as f:
    assert pickle.load(f) == results
  eval_scalars = read_scalars(os.path.join(directory, "eval"))
  assert set(eval_scalars) == METRICS - {"global_step"}
  assert eval_scalars["disc_auc"] == [(200, pytest.approx(results["disc_auc"]))]


def test_evaluate_an_older_checkpoint_and_the_learning_curve(data_dir, reference):
  from experiments import pretraining_curve
  eval_hparams = dict(REFERENCE, do_train=False, do_eval=True, num_eval_steps=2)
  config = PretrainingConfig("reference", data_dir, **eval_hparams)
  # The trainer-state bundles (model.ckpt-<step>.trainer_state.*) are not checkpoints.
  assert glob.glob(os.path.join(reference, "model.ckpt-12.trainer_state.index"))
  prefixes = pretraining_curve.checkpoints_by_step(reference)
  assert [os.path.basename(p) for p in prefixes] == [
      "model.ckpt-0", "model.ckpt-12", "model.ckpt-24"]
  older = runner.evaluate(config, checkpoint=prefixes[1], write=False)
  assert older["global_step"] == 12
  assert not os.path.exists(os.path.join(reference, "results"))  # write=False writes nothing
  curve = pretraining_curve.evaluate_checkpoints(config)
  assert [point["global_step"] for point in curve] == [12, 24]
  assert curve[0] == older  # same checkpoint, same seeded masking: the same numbers
  table = pretraining_curve.format_table(curve).splitlines()
  assert table[0].split() == ["step", "masked_lm_accuracy", "masked_lm_loss", "disc_auc",
                              "disc_precision", "disc_recall", "disc_loss"]
  assert table[2].split()[0] == "24" and float(table[2].split()[3]) == pytest.approx(
      curve[1]["disc_auc"], abs=5e-4)


def test_train_and_eval_together_is_an_error(data_dir):
  with pytest.raises(ValueError, match="Exactly one of `do_train` or `do_eval` must be True."):
    run(data_dir, "both", **dict(TINY, do_eval=True))


# --------------------------------------------------------------------------- resume


def resume_copy(data_dir, src_name, step, dst_name):
  """A model dir holding only `src_name`'s step-`step` checkpoint: an interrupted run."""
  src, dst = model_dir(data_dir, src_name), model_dir(data_dir, dst_name)
  os.makedirs(dst)
  for path in glob.glob(os.path.join(src, f"model.ckpt-{step}.*")):
    shutil.copy(path, dst)
  shutil.copy(os.path.join(src, runner.CONFIG_FILE), dst)
  with open(os.path.join(dst, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "model.ckpt-{step}"\n')
  return dst


def test_resume_is_exact_and_a_finished_run_is_a_noop(data_dir, reference, electra_log):
  resumed = resume_copy(data_dir, "reference", 12, "resumed")
  hparams = dict(REFERENCE, iterations_per_loop=5)  # loop length does not change the result
  run(data_dir, "resumed", **hparams)
  assert "Restored the input position and run seed" in electra_log.text
  assert_same_checkpoints(os.path.join(resumed, "model.ckpt-24"),
                          os.path.join(reference, "model.ckpt-24"))
  assert "electra/embeddings/word_embeddings/adam_v" in checkpoint_values(
      os.path.join(resumed, "model.ckpt-24"))

  files = {name: os.path.getmtime(os.path.join(resumed, name)) for name in os.listdir(resumed)}
  electra_log.clear()
  assert run(data_dir, "resumed", **hparams) == {}
  assert "Nothing to train: global step 24 has reached num_train_steps 24." in electra_log.text
  assert {name: os.path.getmtime(os.path.join(resumed, name))
          for name in os.listdir(resumed)} == files

  wider = dict(REFERENCE, model_hparam_overrides=dict(TINY["model_hparam_overrides"],
                                                      hidden_size=48))
  with pytest.raises(ValueError, match="different architecture.*model_hparam_overrides"):
    run(data_dir, "resumed", **wider)


def saved_step(directory):
  """The step of the checkpoint the state file names (complete: saves are atomic), or -1."""
  latest = checkpointing.latest_checkpoint(directory)
  return checkpointing.checkpoint_step(latest) if latest else -1


def test_run_killed_with_sigkill_resumes_to_the_same_weights(data_dir, reference):
  killed = model_dir(data_dir, "killed")
  command = [sys.executable, os.path.join(REPO_ROOT, "run_pretraining.py"), "--data-dir",
             data_dir, "--model-name", "killed", "--hparams",
             json.dumps(dict(REFERENCE, save_checkpoints_steps=2))]
  process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  deadline = time.monotonic() + 300
  while saved_step(killed) < 1:
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    assert time.monotonic() < deadline, "no checkpoint beyond step 0 within 300 s"
    time.sleep(0.01)
  process.send_signal(signal.SIGKILL)
  assert process.wait() == -signal.SIGKILL
  process.stderr.close()
  interrupted_at = runner.checkpoint_global_step(tf.train.latest_checkpoint(killed))
  assert 0 < interrupted_at <= 24

  run(data_dir, "killed", **REFERENCE)
  final = tf.train.latest_checkpoint(killed)
  assert runner.checkpoint_global_step(final) == 24
  assert_same_checkpoints(final, os.path.join(reference, "model.ckpt-24"))


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_lost_state_file_resumes_from_the_newest_checkpoint_on_disk(data_dir, reference,
                                                                     electra_log, damage):
  """`: > checkpoint` or `rm checkpoint`: resume, never restart and write over the bundles."""
  name = "state_" + damage
  directory = model_dir(data_dir, name)
  os.makedirs(directory)
  for path in glob.glob(os.path.join(reference, "model.ckpt-[01]*")):
    shutil.copy(path, directory)
  shutil.copy(os.path.join(reference, runner.CONFIG_FILE), directory)
  if damage == "emptied":
    open(os.path.join(directory, "checkpoint"), "w").close()
  before = tree_state(directory)
  run(data_dir, name, **REFERENCE)
  newest = os.path.join(directory, "model.ckpt-12")
  assert (f"WARNING: resuming from {newest}: the checkpoint state file "
          f"{os.path.join(directory, 'checkpoint')} was "
          f"{'missing' if damage == 'deleted' else 'empty'}, so it was rebuilt from the 2 "
          "checkpoints on disk (model.ckpt-0, model.ckpt-12)") in electra_log.text
  after = tree_state(directory)
  for path, state in before.items():
    if path.startswith("model.ckpt-"):
      assert after[path] == state, path  # the bundles on disk: byte for byte, same mtime
  assert_same_checkpoints(os.path.join(directory, "model.ckpt-24"),
                          os.path.join(reference, "model.ckpt-24"))
  with open(os.path.join(directory, "checkpoint")) as f:
    assert f.read().splitlines()[1:] == [f'all_model_checkpoint_paths: "model.ckpt-{step}"'
                                         for step in (0, 12, 24)]


def test_full_disk_while_saving_is_one_line_and_keeps_the_previous_checkpoint(data_dir,
                                                                              reference):
  """The model dir on a tmpfs that holds one checkpoint and a half (mounting needs root)."""
  step_0 = sum(os.path.getsize(path)
               for path in glob.glob(os.path.join(reference, "model.ckpt-0.*")))
  directory = model_dir(data_dir, "full_disk")
  os.makedirs(directory)
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={step_0 * 3 // 2}", "tmpfs",
                            directory], capture_output=True, text=True)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
  try:
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "run_pretraining.py"), "--data-dir", data_dir,
         "--model-name", "full_disk", "--hparams",
         json.dumps(dict(REFERENCE, num_train_steps=4, save_checkpoints_steps=2))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "ELECTRA_TRACEBACK"})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == cli.DATA_EXIT, result.stderr[-3000:]
    assert errors == [
        f"error: No space left on {directory} while saving step 2; the previous checkpoint "
        "(model.ckpt-0, step 0) is intact and the partial files were removed. Free some space "
        "(or lower keep_checkpoint_max) and re-run to resume."], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not [name for name in os.listdir(directory) if name.startswith(".tmp")]
    assert saved_step(directory) == 0
    assert checkpointing.is_intact(os.path.join(directory, "model.ckpt-0"))
  finally:
    subprocess.run(["umount", directory], check=True)


def test_continue_from_a_released_checkpoint_without_adam_slots(data_dir, electra_log):
  """models/electra_small holds electra_small.{index,data} + `checkpoint`, no slots."""
  directory = model_dir(data_dir, "electra_small")
  config = PretrainingConfig("electra_small", data_dir, **TINY)
  tf.random.set_seed(123)
  released = PretrainingModel(config).named_variables()
  names = sorted(released) + ["global_step"]
  tensors = [released[n] for n in sorted(released)] + [tf.constant(8, tf.int64)]
  tf.io.gfile.makedirs(directory)
  tf.raw_ops.SaveV2(prefix=os.path.join(directory, "electra_small"), tensor_names=names,
                    shape_and_slices=[""] * len(names), tensors=tensors)
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "electra_small"\nall_model_checkpoint_paths: "electra_small"\n')

  run(data_dir, "electra_small", **dict(TINY, num_train_steps=12, save_checkpoints_steps=2,
                                        keep_checkpoint_max=1, learning_rate=1e-4))
  assert "optimizer slots start at zero" in electra_log.text
  assert "Resuming from " + os.path.join(directory, "electra_small") + " (global step 8)" in (
      electra_log.text)
  final = checkpoint_values(tf.train.latest_checkpoint(directory))
  assert final["global_step"] == 12
  assert sorted(glob.glob(os.path.join(directory, "model.ckpt-*[0-9].index"))) == [
      os.path.join(directory, "model.ckpt-12.index")]
  assert os.path.exists(os.path.join(directory, "electra_small.index"))
  assert os.path.exists(os.path.join(directory, "electra_small.data-00000-of-00001"))
  # It continued from the released weights: 4 small steps away, not a fresh init.
  table = "electra/embeddings/word_embeddings"
  change = np.abs(final[table] - released[table].numpy())
  assert 0 < change.max() < 5e-3


# --------------------------------------------------------------------------- variants


@pytest.mark.parametrize("objective,expected_scope,absent_scope", [
    # The MLM run also accumulates 2 micro-batches of 4.
    ({"electra_objective": False, "grad_accumulation_steps": 2}, "generator_predictions/",
     "discriminator_predictions/"),
    ({"electra_objective": False, "electric_objective": True}, "cloze_predictions/",
     "generator_predictions/"),
], ids=["mlm", "electric"])
def test_other_objectives_train(data_dir, objective, expected_scope, absent_scope):
  name = "objective_" + "_".join(sorted(objective))
  last = run(data_dir, name, **dict(TINY, num_train_steps=3, save_checkpoints_steps=3,
                                    iterations_per_loop=3, **objective))
  assert np.isfinite(last["loss"])
  assert ("cloze_loss" in last) == objective.get("electric_objective", False)
  names = checkpoint_values(tf.train.latest_checkpoint(model_dir(data_dir, name)))
  assert names["global_step"] == 3
  assert any(n.startswith(expected_scope) for n in names)
  assert not any(n.startswith(absent_scope) for n in names)


@pytest.mark.parametrize("hparams,rel,steps", [
    ({"mixed_precision": "bf16"}, 0.05, 1),
    # XLA draws the same masks, samples and dropout (model/stateless_random.py),
    # so only float rounding differs. Step 1 has LR 0, so step 2 sees the same
    # weights (from step 3 on the shorter run's LR decay differs).
    pytest.param({"use_xla": True}, 1e-5, 2, marks=pytest.mark.slow),
], ids=["bf16", "xla"])
def test_precision_and_xla_match_the_float32_first_steps(data_dir, reference, hparams, rel,
                                                         steps):
  """Same seed, masking and data: the first losses agree with the float32 reference run."""
  name = "variant_" + "_".join(f"{k}{v}" for k, v in hparams.items())
  run(data_dir, name, **dict(REFERENCE, num_train_steps=3, save_checkpoints_steps=3,
                             **hparams))
  expected = read_scalars(reference)["loss"][:3]
  actual = read_scalars(model_dir(data_dir, name))["loss"]
  assert [step for step, _ in actual] == [1, 2, 3]
  for (_, got), (_, want) in zip(actual[:steps], expected[:steps]):
    assert got == pytest.approx(want, rel=rel)


_MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import run_pretraining
run_pretraining.main(sys.argv[1:])
"""


@pytest.mark.slow
def test_two_replica_mirrored_fp16_pretraining_run(data_dir):
  hparams = dict(TINY, num_train_steps=4, save_checkpoints_steps=4, iterations_per_loop=2,
                 distribution_strategy="mirrored", mixed_precision="fp16")
  process = subprocess.run(
      [sys.executable, "-c", _MIRRORED_SCRIPT, "--data-dir", data_dir, "--model-name",
       "mirrored", "--hparams", json.dumps(hparams)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert process.returncode == 0, process.stderr[-3000:]
  assert "MirroredStrategy with 2 replicas" in process.stderr
  assert "Global batch 8 = 2 replicas × 1 micro-batches × 4 examples" in process.stderr
  assert "4/4 = 100.0%" in process.stderr
  directory = model_dir(data_dir, "mirrored")
  assert checkpoint_values(tf.train.latest_checkpoint(directory))["global_step"] == 4
  scalars = read_scalars(directory)
  assert [step for step, _ in scalars["loss_scale"]] == [2, 4]
  assert all(np.isfinite(value) for _, value in scalars["loss"])


# --------------------------------------------------------------------------- reliability


def fake_run(directory, debug, extra=()):
  """A model dir as a finished run leaves it (file contents do not matter here)."""
  os.makedirs(os.path.join(directory, "results"))
  with open(os.path.join(directory, runner.CONFIG_FILE), "w") as f:
    json.dump(dict(TINY, debug=debug), f)
  for name in ("checkpoint", "model.ckpt-20.index", "model.ckpt-20.data-00000-of-00001",
               "events.out.tfevents.1.host", "results/unsup_results.txt") + tuple(extra):
    os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
    with open(os.path.join(directory, name), "w") as f:
      f.write("x")


DEBUG = dict(TINY, debug=True, num_train_steps=2, save_checkpoints_steps=2)


@pytest.mark.parametrize("debug,extra,reason", [
    (False, (), "holds a non-debug run \\(debug: false\\)"),
    (True, ("finetuning_models/rte_model_1/checkpoint",), "holds finetuning_models"),
    (True, ("my_notes.txt",), "holds my_notes.txt"),
], ids=["non_debug_run", "finetuning_models", "user_file"])
def test_debug_run_refuses_to_wipe_what_it_did_not_write(data_dir, debug, extra, reason):
  directory = model_dir(data_dir, "keep_" + reason.split()[1].strip("\\(") + str(len(extra)))
  fake_run(directory, debug, extra)
  before = tree_state(directory, folder_mtimes=False)
  with pytest.raises(cli.UsageError, match=f"Not deleting {directory} for a debug run: "
                     f"it {reason}.*use another --model-name"):
    run(data_dir, os.path.basename(directory), **DEBUG)
  assert tree_state(directory, folder_mtimes=False) == before


def test_debug_run_checks_inputs_before_wiping(tmp_path, data_dir):
  directory = model_dir(str(tmp_path), "debug_run")
  fake_run(directory, debug=True)
  before = tree_state(directory, folder_mtimes=False)
  with pytest.raises(FileNotFoundError, match="No pre-training tfrecords match"):
    run(str(tmp_path), "debug_run", **DEBUG)
  assert tree_state(directory, folder_mtimes=False) == before


def test_debug_run_wipes_a_previous_debug_run_with_one_log_line(data_dir, electra_log):
  directory = model_dir(data_dir, "debug_again")
  fake_run(directory, debug=True, extra=("eval/events.out.tfevents.2.host",))
  run(data_dir, "debug_again", **DEBUG)
  assert f"debug: deleting the previous debug run in {directory} (7 entries)" in (
      electra_log.text)
  assert not os.path.exists(os.path.join(directory, "results"))
  assert saved_step(directory) == 2
  assert sorted(os.listdir(directory)) == sorted(
      ["bert_config.json", "checkpoint", runner.CONFIG_FILE, "vocab_fingerprint.json"]
      + [f for f in os.listdir(directory) if f.startswith(("model.ckpt-", "events."))])


def test_failed_run_leaves_the_saved_config_untouched(data_dir):
  hparams = dict(TINY, num_train_steps=2, save_checkpoints_steps=2)
  directory = model_dir(data_dir, "failed")
  os.makedirs(directory)
  config_file = os.path.join(directory, runner.CONFIG_FILE)
  files.write_json(PretrainingConfig("failed", data_dir, **hparams).to_dict(), config_file)
  before = tree_state(directory, folder_mtimes=False)
  # Same architecture, more steps, but records of another length: fails before training.
  with pytest.raises(ValueError, match="holds examples of length 32 but hparam max_seq_length"):
    run(data_dir, "failed", **dict(hparams, num_train_steps=4, max_seq_length=64))
  assert tree_state(directory, folder_mtimes=False) == before
  assert files.load_json(config_file)["num_train_steps"] == 2


def test_empty_tfrecords_fail_fast_naming_the_pattern(tmp_path):
  os.makedirs(tmp_path / "pretrain_tfrecords")
  for i in range(3):
    with tf.io.TFRecordWriter(str(tmp_path / "pretrain_tfrecords" /
                                  f"pretrain_data.tfrecord-{i}-of-3")):
      pass
  pattern = str(tmp_path / "pretrain_tfrecords" / "pretrain_data.tfrecord*")
  with pytest.raises(cli.DataError, match=f"No examples: all 3 files matching {re.escape(pattern)}"
                     " \\(hparam pretrain_tfrecords\\) are empty"):
    run(str(tmp_path), "empty", **dict(TINY, num_train_steps=2))
  assert not os.path.exists(model_dir(str(tmp_path), "empty"))


def test_truncated_shard_is_named(tmp_path, data_dir):
  """One file of ~20 records (shards concatenated) whose last record is cut short."""
  shards = sorted(glob.glob(os.path.join(data_dir, "pretrain_tfrecords", "*")),
                  key=os.path.getsize)[-20:]
  data = b"".join(open(path, "rb").read() for path in shards)
  os.makedirs(tmp_path / "pretrain_tfrecords")
  shard = str(tmp_path / "pretrain_tfrecords" / "pretrain_data.tfrecord-0-of-1")
  with open(shard, "wb") as f:
    f.write(data[:-100])
  with pytest.raises(cli.DataError, match=f"Corrupt or truncated tfrecord file {shard} "):
    run(str(tmp_path), "truncated", **dict(TINY, num_train_steps=20, save_checkpoints_steps=20,
                                           iterations_per_loop=10))


def _max_input_id(pattern):
  """The largest input id of every record of the files matching `pattern`."""
  def parse(record):
    return tf.io.parse_single_example(record, {
        "input_ids": tf.io.FixedLenFeature([TINY["max_seq_length"]], tf.int64)})["input_ids"]

  dataset = tf.data.TFRecordDataset(sorted(glob.glob(pattern))).map(parse)
  return max(int(ids.numpy().max()) for ids in dataset)


@pytest.mark.slow  # A subprocess importing TensorFlow.
@pytest.mark.parametrize("problem", ["other_vocab", "mixed_lengths"])
def test_bad_shards_fail_up_front_naming_the_file(data_dir, tmp_path, problem):
  """Ids beyond the vocab, or shards of two lengths: one line, exit 1, nothing written."""
  shards = os.path.join(data_dir, "pretrain_tfrecords", "pretrain_data.tfrecord*")
  shard_re = re.escape(os.path.join(data_dir, "pretrain_tfrecords", "pretrain_data.tfrecord-"))
  hparams = dict(TINY, num_train_steps=2, save_checkpoints_steps=1, pretrain_tfrecords=shards)
  if problem == "other_vocab":  # The shards were built with the 30522-line vocab.
    vocab = tmp_path / "vocab.txt"
    with open(UNCASED_VOCAB, encoding="utf-8") as f:
      vocab.write_text("".join(next(f) for _ in range(889)), encoding="utf-8")
    hparams["vocab_file"] = str(vocab)
    largest = _max_input_id(shards)  # ~530 records in 1000 shards: every one is checked.
    expected = (rf"error: {shard_re}\d+-of-1000 holds token id {largest}, outside the "
                rf"vocabulary of 889 ids \({re.escape(str(vocab))}, hparams vocab_file / "
                r"vocab_size\)")
  else:
    corpus = os.path.join(data_dir, "corpus")
    assert build_pretraining_dataset.main([
        "--corpus-dir", corpus, "--vocab-file", UNCASED_VOCAB, "--output-dir",
        str(tmp_path / "tf64"), "--max-seq-length", "64", "--seed", "0"]) == 0
    hparams["pretrain_tfrecords"] += "," + str(tmp_path / "tf64" / "pretrain_data.tfrecord*")
    expected = (rf"error: The files matching .* mix sequence lengths: {shard_re}\d+-of-1000 "
                rf"holds examples of length 32, "
                rf"{re.escape(str(tmp_path / 'tf64' / 'pretrain_data.tfrecord-'))}\d+-of-1000 "
                r"holds examples of length 64; hparam max_seq_length is 32\.")
  before = tree_state(str(tmp_path), folder_mtimes=False)
  data_before = tree_state(data_dir, folder_mtimes=False)
  env = dict(os.environ)
  env.pop("ELECTRA_TRACEBACK", None)
  process = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "run_pretraining.py"), "--data-dir",
       str(tmp_path), "--model-name", problem, "--hparams", json.dumps(hparams)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
  errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
  assert process.returncode == 1, process.stderr[-3000:]
  assert len(errors) == 1 and re.match(expected, errors[0]), process.stderr[-3000:]
  assert "Traceback" not in process.stderr, process.stderr[-3000:]
  assert tree_state(str(tmp_path), folder_mtimes=False) == before  # No models/ at all.
  assert tree_state(data_dir, folder_mtimes=False) == data_before


def test_second_trainer_on_a_model_dir_is_refused(data_dir):
  directory = model_dir(data_dir, "locked")
  with locking.exclusive_lock(os.path.join(directory, locking.LOCK_FILENAME), "model dir"):
    with pytest.raises(locking.LockedError, match=f"pid {os.getpid()} on host .*"
                       f"{re.escape(os.path.join(directory, locking.LOCK_FILENAME))}"):
      run(data_dir, "locked", **dict(TINY, num_train_steps=2))
    assert os.listdir(directory) == [locking.LOCK_FILENAME]  # the refused run wrote nothing
  assert not os.path.exists(directory)  # the lock removes the empty dir it made
