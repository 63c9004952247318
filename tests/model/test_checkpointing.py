"""Tests for model/checkpointing.py: TF1 name-based checkpoint I/O.

Independent references: TF's own readers (`tf.train.list_variables`,
`tf.train.load_checkpoint`, `tf.train.latest_checkpoint`,
`tf.train.get_checkpoint_state`) and the TF1 `Saver` (graph mode, via
tf.compat.v1 in the tests only), which both reads what we write and writes the
"released-checkpoint" fixtures (no Adam slots, prefix `electra_small`).
"""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from model import checkpointing
from model import modeling

ENCODER = "electra/encoder/layer_0"


class SimulatedCrash(BaseException):
  """A hard crash: not an `Exception`, so save_checkpoint's cleanup does not run."""


@pytest.fixture(autouse=True)
def _electra_log_propagates(monkeypatch):
  # setup_logging() (called by other tests' scripts) turns propagation off.
  monkeypatch.setattr(logging.getLogger("electra"), "propagate", True)


def _model(head: bool = True, hidden: int = 7, seed: int = 0) -> dict:
  """Odd-sized named variables (model + Adam slots + global_step) with distinct values."""
  modules = [modeling.Dense(f"{ENCODER}/intermediate/dense", hidden, 13),
             modeling.LayerNorm(f"{ENCODER}/output/LayerNorm", hidden)]
  if head:
    modules.append(modeling.Dense("task_specific/mnli/dense", hidden, 3))
  rng = np.random.RandomState(seed)
  variables = {}
  for module in modules:
    for name, variable in module.named_variables().items():
      variable.assign(rng.randn(*variable.shape).astype(np.float32))
      variables[name] = variable
  for name in list(variables):
    for slot in ("adam_m", "adam_v"):
      variables[f"{name}/{slot}"] = tf.Variable(
          rng.randn(*variables[name].shape).astype(np.float32), trainable=False)
  variables["global_step"] = tf.Variable(np.int64(2**40 + seed), trainable=False)
  return variables


def _values(variables: dict) -> dict:
  return {name: v.numpy() for name, v in variables.items()}


def _assert_values_equal(variables: dict, expected: dict) -> None:
  for name, value in expected.items():
    np.testing.assert_array_equal(variables[name].numpy(), value, err_msg=name)


def _tf1_save(directory: str, basename: str, values: dict) -> str:
  """Writes `values` with the TF1 Saver, as the original code and Google's release did."""
  graph = tf.Graph()
  with graph.as_default():
    for name, value in values.items():
      tf.compat.v1.get_variable(name, initializer=tf.constant(value))
    saver = tf.compat.v1.train.Saver(save_relative_paths=True)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      return saver.save(sess, os.path.join(directory, basename), write_meta_graph=False)


def _tf1_restore(prefix: str, like: dict) -> dict:
  """Reads a checkpoint with the TF1 Saver into graph variables named like `like`."""
  graph = tf.Graph()
  with graph.as_default():
    tf1_vars = {name: tf.compat.v1.get_variable(name, shape=v.shape, dtype=v.dtype)
                for name, v in like.items()}
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session(graph=graph) as sess:
      saver.restore(sess, prefix)
      return sess.run(tf1_vars)


# ----------------------------------------------------------------------------
# Save: format, state file, keep N
# ----------------------------------------------------------------------------

def test_round_trip_exact_names_dtypes_values(tmp_path):
  variables = _model(seed=1)
  expected = _values(variables)
  prefix = checkpointing.save_checkpoint(str(tmp_path), 5, variables)

  assert prefix == os.path.join(str(tmp_path), "model.ckpt-5")
  assert sorted(os.listdir(tmp_path)) == [
      "checkpoint", "model.ckpt-5.data-00000-of-00001", "model.ckpt-5.index"]
  listed = dict(tf.train.list_variables(prefix))
  assert listed == {name: list(v.shape) for name, v in variables.items()}
  assert len(listed) == 3 * 6 + 1 and "global_step" in listed
  dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
  assert dtypes["global_step"] == tf.int64
  assert dtypes[f"{ENCODER}/output/LayerNorm/gamma/adam_v"] == tf.float32
  assert tf.train.load_variable(prefix, "global_step") == 2**40 + 1

  fresh = _model(seed=2)
  report = checkpointing.restore_checkpoint(str(tmp_path), fresh)
  _assert_values_equal(fresh, expected)
  assert fresh["global_step"].dtype == tf.int64
  assert sorted(report.restored) == sorted(variables)
  assert not (report.missing or report.unexpected or report.shape_mismatched)
  assert checkpointing.list_checkpoint(prefix) == listed


def test_tf1_saver_reads_our_checkpoint(tmp_path):
  variables = _model(seed=3)
  prefix = checkpointing.save_checkpoint(str(tmp_path), 0, variables)
  restored = _tf1_restore(prefix, variables)
  for name, value in _values(variables).items():
    np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_state_file_matches_tf1_saver_and_latest_checkpoint(tmp_path):
  ours, theirs = str(tmp_path / "ours"), str(tmp_path / "tf1")
  variables = _model()
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.get_variable("w", initializer=tf.zeros([2]))
    saver = tf.compat.v1.train.Saver(save_relative_paths=True, max_to_keep=2)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for step in (0, 3, 7):
        saver.save(sess, os.path.join(theirs, "model.ckpt"), global_step=step,
                   write_meta_graph=False)
  for step in (0, 3, 7):
    checkpointing.save_checkpoint(ours, step, variables, keep_checkpoint_max=2)

  with open(os.path.join(ours, "checkpoint")) as f, open(os.path.join(theirs, "checkpoint")) as g:
    assert f.read() == g.read() == (
        'model_checkpoint_path: "model.ckpt-7"\n'
        'all_model_checkpoint_paths: "model.ckpt-3"\n'
        'all_model_checkpoint_paths: "model.ckpt-7"\n')
  assert tf.train.latest_checkpoint(ours) == checkpointing.latest_checkpoint(ours) == \
      os.path.join(ours, "model.ckpt-7")
  assert sorted(os.listdir(ours)) == sorted(n for n in os.listdir(theirs))


def test_keep_checkpoint_max_deletes_oldest_and_zero_keeps_all(tmp_path):
  variables = _model()
  kept, all_kept = str(tmp_path / "keep3"), str(tmp_path / "all")
  for step in range(0, 60, 10):
    variables["global_step"].assign(step)
    checkpointing.save_checkpoint(kept, step, variables, keep_checkpoint_max=3,
                                  extra_state={"rng": tf.random.Generator.from_seed(step)})
    checkpointing.save_checkpoint(all_kept, step, variables, keep_checkpoint_max=0)

  files = sorted(os.listdir(kept))
  assert files == ["checkpoint"] + sorted(
      f"model.ckpt-{s}{suffix}" for s in (30, 40, 50)
      for suffix in (".data-00000-of-00001", ".index", ".trainer_state.data-00000-of-00001",
                     ".trainer_state.index"))
  state = tf.train.get_checkpoint_state(kept)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-30", "model.ckpt-40", "model.ckpt-50"]
  assert len(tf.train.get_checkpoint_state(all_kept).all_model_checkpoint_paths) == 6
  assert len([f for f in os.listdir(all_kept) if f.endswith(".index")]) == 6


def test_keep_never_deletes_a_foreign_released_checkpoint(tmp_path):
  # Continued pre-training: model_dir is the released `electra_small` dir (README.md#pre-train).
  model_dir = str(tmp_path / "electra_small")
  os.makedirs(model_dir)
  released = _tf1_save(model_dir, "electra_small", {"w": np.ones([2], np.float32)})
  variables = {"w": tf.Variable(tf.zeros([2]))}
  for step in (1, 2, 3):
    checkpointing.save_checkpoint(model_dir, step, variables, keep_checkpoint_max=2)
  assert os.path.exists(released + ".index")
  assert not os.path.exists(os.path.join(model_dir, "model.ckpt-1.index"))
  assert [os.path.basename(p) for p in
          tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths] == [
              "model.ckpt-2", "model.ckpt-3"]


def test_save_validates_arguments(tmp_path):
  with pytest.raises(ValueError, match="No variables to save"):
    checkpointing.save_checkpoint(str(tmp_path), 1, {})
  with pytest.raises(ValueError, match="not a tf.Variable"):
    checkpointing.save_checkpoint(str(tmp_path), 1, {"w": tf.zeros([2])})
  with pytest.raises(ValueError, match=">= 0"):
    checkpointing.save_checkpoint(str(tmp_path), -1, {"w": tf.Variable(1.0)})
  with pytest.raises(ValueError, match="keep_checkpoint_max"):
    checkpointing.save_checkpoint(str(tmp_path), 1, {"w": tf.Variable(1.0)}, keep_checkpoint_max=-2)

  @tf.function
  def save_in_graph():
    checkpointing.save_checkpoint(str(tmp_path), 1, {"w": tf.Variable(1.0)})
  with pytest.raises(ValueError, match="eagerly"):
    save_in_graph()


def test_step_may_be_the_global_step_variable(tmp_path):
  variables = _model()
  variables["global_step"].assign(42)
  prefix = checkpointing.save_checkpoint(str(tmp_path), variables["global_step"], variables)
  assert checkpointing.checkpoint_step(prefix) == 42


# ----------------------------------------------------------------------------
# Atomicity
# ----------------------------------------------------------------------------

def _claimed_checkpoints(model_dir: str) -> list:
  state = tf.train.get_checkpoint_state(model_dir)
  return [os.path.basename(p) for p in state.all_model_checkpoint_paths]


@pytest.mark.parametrize("crash_point", ["_move_into_place", "rename", "_commit_state"],
                         ids=["after_temp_bundle_write", "between_renames", "before_state_commit"])
def test_hard_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch, crash_point):
  model_dir = str(tmp_path)
  variables = _model(seed=4)
  before = _values(variables)
  good = checkpointing.save_checkpoint(model_dir, 10, variables)

  for v in variables.values():
    v.assign(v + tf.ones_like(v))
  def crash(*args, **kwargs):
    raise SimulatedCrash()
  if crash_point == "rename":  # the data file is in place, its index is not
    real_rename, calls = tf.io.gfile.rename, []
    def crash_on_second_rename(*args, **kwargs):
      calls.append(args)
      if len(calls) == 2:
        crash()
      real_rename(*args, **kwargs)
    monkeypatch.setattr(tf.io.gfile, "rename", crash_on_second_rename)
  else:
    monkeypatch.setattr(checkpointing, crash_point, crash)
  with pytest.raises(SimulatedCrash):
    checkpointing.save_checkpoint(model_dir, 20, variables)
  monkeypatch.undo()
  if crash_point == "rename":
    assert "model.ckpt-20.data-00000-of-00001" in os.listdir(model_dir)
    assert "model.ckpt-20.index" not in os.listdir(model_dir)

  assert tf.train.latest_checkpoint(model_dir) == good
  assert checkpointing.resolve_checkpoint(model_dir) == good
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-10"]
  if crash_point == "_move_into_place":  # only hidden temporaries were written
    assert not any(f.startswith("model.ckpt-20") for f in os.listdir(model_dir))
    assert any(f.startswith(".tmp-model.ckpt-20") for f in os.listdir(model_dir))
  fresh = _model(seed=5)
  checkpointing.restore_checkpoint(model_dir, fresh)
  _assert_values_equal(fresh, before)

  # The next save succeeds and removes the crashed save's hidden temporaries.
  checkpointing.save_checkpoint(model_dir, 30, variables)
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-10", "model.ckpt-30"]
  assert not any(f.startswith(".tmp") for f in os.listdir(model_dir))


def test_failed_save_cleans_up_its_files(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  variables = _model()
  checkpointing.save_checkpoint(model_dir, 1, variables)
  files_before = sorted(os.listdir(model_dir))
  def fail(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr(checkpointing, "_commit_state", fail)
  with pytest.raises(OSError, match="disk full"):
    checkpointing.save_checkpoint(model_dir, 2, variables,
                                  extra_state={"rng": tf.random.Generator.from_seed(1)})
  assert sorted(os.listdir(model_dir)) == files_before


def test_crash_while_resaving_same_step_leaves_older_checkpoint_named(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  variables = _model(seed=6)
  before = _values(variables)
  checkpointing.save_checkpoint(model_dir, 1, variables)
  checkpointing.save_checkpoint(model_dir, 2, variables)
  def crash(*args, **kwargs):
    raise SimulatedCrash()
  monkeypatch.setattr(checkpointing, "_move_into_place", crash)
  with pytest.raises(SimulatedCrash):
    checkpointing.save_checkpoint(model_dir, 2, variables)
  monkeypatch.undo()
  assert checkpointing.latest_checkpoint(model_dir) == os.path.join(model_dir, "model.ckpt-1")
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-1"]
  fresh = _model(seed=7)
  checkpointing.restore_checkpoint(model_dir, fresh)
  _assert_values_equal(fresh, before)
  # Re-saving a step normally replaces it and keeps the list ordered by save time.
  checkpointing.save_checkpoint(model_dir, 2, variables)
  checkpointing.save_checkpoint(model_dir, 1, variables)
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-2", "model.ckpt-1"]


# ----------------------------------------------------------------------------
# Restore: strict, optional slots, partial, errors
# ----------------------------------------------------------------------------

def test_released_checkpoint_without_adam_slots_restores_weights_slots_zero(tmp_path, caplog):
  source = _model(seed=8)
  weights = {n: v.numpy() for n, v in source.items() if "/adam_" not in n}
  released_dir = str(tmp_path / "electra_small")
  os.makedirs(released_dir)
  _tf1_save(released_dir, "electra_small", weights)

  variables = _model(seed=9)
  for name, v in variables.items():
    if "/adam_" in name:
      v.assign(tf.zeros_like(v))
  caplog.set_level(logging.INFO, logger="electra")
  report = checkpointing.restore_checkpoint(released_dir, variables)

  assert report.path == os.path.join(released_dir, "electra_small")
  _assert_values_equal(variables, weights)
  slots = [n for n in variables if "/adam_" in n]
  assert sorted(report.missing_optional) == sorted(report.missing) == sorted(slots)
  for name in slots:
    assert not np.any(variables[name].numpy()), name
  lines = [r.getMessage() for r in caplog.records if "has no Adam slots" in r.getMessage()]
  assert lines == [f"Checkpoint {report.path} has no Adam slots (e.g. a released checkpoint): "
                   f"{len(slots)} optimizer slots start at zero."]
  assert checkpointing.checkpoint_step(report.path) is None
  assert checkpointing.restore_extra_state(report.path, {"rng": tf.random.Generator.from_seed(0)}) \
      is False


def test_strict_missing_and_mismatched_shapes_raise_listing_all(tmp_path):
  prefix = checkpointing.save_checkpoint(str(tmp_path), 3, _model(head=False, seed=10))
  variables = _model(head=True, hidden=9, seed=11)
  before = _values(variables)
  with pytest.raises(ValueError) as error:
    checkpointing.restore_checkpoint(prefix, variables)
  message = str(error.value)
  assert prefix in message
  assert "2 model variables are missing" in message
  assert "task_specific/mnli/dense/kernel [9, 3]" in message
  assert "task_specific/mnli/dense/bias [3]" in message
  assert "task_specific/mnli/dense/kernel/adam_m" not in message  # optional
  assert (f"shape mismatch: {ENCODER}/intermediate/dense/kernel: checkpoint [7, 13] vs "
          "model [9, 13]") in message
  assert f"shape mismatch: {ENCODER}/output/LayerNorm/gamma/adam_v: checkpoint [7] vs model [9]" \
      in message
  assert "model_size" in message and "init_checkpoint" in message
  _assert_values_equal(variables, before)  # nothing assigned on failure


def test_strict_ignores_unexpected_checkpoint_entries(tmp_path):
  source = _model(seed=12)
  prefix = checkpointing.save_checkpoint(str(tmp_path), 3, source)
  variables = {n: v for n, v in _model(seed=13).items() if not n.startswith("task_specific")}
  report = checkpointing.restore_checkpoint(prefix, variables)
  _assert_values_equal(variables, {n: source[n].numpy() for n in variables})
  assert sorted(report.unexpected) == sorted(n for n in source if n.startswith("task_specific"))
  assert "in the checkpoint but not in the model, ignored (6)" in report.summary()


def test_partial_restore_loads_trainable_matches_and_logs_skips(tmp_path, caplog):
  # Pre-trained encoder (no task head) -> fine-tuning model with a new head
  # (docs/checkpoints.md#partial-restore-with-init_checkpoint).
  source = _model(head=False, seed=14)
  source["generator/embeddings_project/kernel"] = tf.Variable(tf.ones([5, 3]))
  prefix = checkpointing.save_checkpoint(str(tmp_path), 1000, source)
  variables = _model(head=True, seed=15)
  before = _values(variables)
  caplog.set_level(logging.INFO, logger="electra")
  report = checkpointing.restore_checkpoint(prefix, variables, partial=True)

  encoder = [n for n in variables if n.startswith("electra/") and "/adam_" not in n]
  assert sorted(report.restored) == sorted(encoder) and len(encoder) == 4
  _assert_values_equal(variables, {n: source[n].numpy() for n in encoder})
  # Head, slots and global_step keep their values (slots/global_step are not trainable).
  untouched = [n for n in variables if n not in encoder]
  _assert_values_equal(variables, {n: before[n] for n in untouched})
  assert report.missing == ["task_specific/mnli/dense/bias", "task_specific/mnli/dense/kernel"]
  assert "global_step" in report.not_trainable
  assert "generator/embeddings_project/kernel" in report.unexpected
  summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][-1]
  assert summary == report.summary()
  assert f"Restored 4 variables from {prefix} [partial (init_checkpoint)]" in summary
  assert ("not in the checkpoint, kept as initialised (2): task_specific/mnli/dense/bias, "
          "task_specific/mnli/dense/kernel") in summary
  assert "not trainable, not loaded (13): */adam_m (6), */adam_v (6), global_step" in summary
  assert "ignored (1): generator/embeddings_project/kernel" in summary
  lines = report.variable_lines(variables)
  assert f"  name = {ENCODER}/intermediate/dense/kernel, shape = [7, 13], *INIT_FROM_CKPT*" in lines
  assert "  name = task_specific/mnli/dense/kernel, shape = [7, 3]" in lines


def test_partial_restore_errors(tmp_path):
  prefix = checkpointing.save_checkpoint(str(tmp_path / "a"), 1, _model(seed=16))
  with pytest.raises(ValueError) as error:
    checkpointing.restore_checkpoint(prefix, _model(hidden=9), partial=True)
  assert (f"shape mismatch: {ENCODER}/output/LayerNorm/beta: checkpoint [7] vs model [9]"
          in str(error.value))
  assert "init_checkpoint" in str(error.value)
  with pytest.raises(ValueError, match="No trainable model variable has a name found"):
    checkpointing.restore_checkpoint(prefix, {"bert/w": tf.Variable(1.0)}, partial=True)


def test_object_based_checkpoint_is_explained(tmp_path):
  path = tf.train.Checkpoint(w=tf.Variable(tf.ones([3]))).write(str(tmp_path / "obj"))
  with pytest.raises(ValueError, match="TF2 object-based checkpoint"):
    checkpointing.restore_checkpoint(path, {"w": tf.Variable(tf.zeros([3]))})


def test_dtype_cast_within_kind_and_error_across_kinds(tmp_path):
  prefix = checkpointing.save_checkpoint(
      str(tmp_path), 1, {"global_step": tf.Variable(np.int64(123)),
                         "w": tf.Variable([0.5, -1.25], dtype=tf.float32)})
  step32, w16 = tf.Variable(0, dtype=tf.int32), tf.Variable([0, 0], dtype=tf.bfloat16)
  checkpointing.restore_checkpoint(prefix, {"global_step": step32, "w": w16})
  assert step32.numpy() == 123 and step32.dtype == tf.int32
  np.testing.assert_array_equal(w16.numpy().astype(np.float32), [0.5, -1.25])
  with pytest.raises(ValueError, match="dtype mismatch: w: checkpoint float32 vs model int32"):
    checkpointing.restore_checkpoint(prefix, {"w": tf.Variable([0, 0])}, partial=True)


# ----------------------------------------------------------------------------
# Trainer-side extra state
# ----------------------------------------------------------------------------

def test_extra_state_iterator_and_generator_round_trip(tmp_path, moby_dick_lines):
  dataset = (tf.data.Dataset.from_tensor_slices(moby_dick_lines[:60])
             .shuffle(17, seed=5).batch(4))
  iterator = iter(dataset)
  for _ in range(3):
    next(iterator)
  generator = tf.random.Generator.from_seed(11)
  generator.normal([5])
  prefix = checkpointing.save_checkpoint(
      str(tmp_path), 3, {"w": tf.Variable(1.0)},
      extra_state={"iterator": iterator, "rng": generator})
  assert os.path.exists(prefix + ".trainer_state.index")
  assert checkpointing.list_checkpoint(prefix) == {"w": []}  # the bundle stays name-based
  expected_batch, expected_noise = next(iterator).numpy(), generator.normal([5]).numpy()

  new_iterator, new_generator = iter(dataset), tf.random.Generator.from_seed(99)
  assert checkpointing.restore_extra_state(str(tmp_path),
                                           {"iterator": new_iterator, "rng": new_generator})
  np.testing.assert_array_equal(next(new_iterator).numpy(), expected_batch)
  np.testing.assert_array_equal(new_generator.normal([5]).numpy(), expected_noise)
  assert list(expected_batch) != list(next(iter(dataset)).numpy())  # position mattered

  with pytest.raises(ValueError, match=r"has no \['optimizer_rng'\]"):
    checkpointing.restore_extra_state(prefix, {"optimizer_rng": tf.random.Generator.from_seed(1)})
  assert checkpointing.restore_extra_state(
      checkpointing.save_checkpoint(str(tmp_path), 4, {"w": tf.Variable(1.0)}),
      {"rng": new_generator}) is False


# ----------------------------------------------------------------------------
# Resolution and listing
# ----------------------------------------------------------------------------

def test_resolve_directory_prefix_and_file(tmp_path):
  model_dir = str(tmp_path)
  checkpointing.save_checkpoint(model_dir, 1, {"w": tf.Variable(1.0)})
  latest = checkpointing.save_checkpoint(model_dir, 2, {"w": tf.Variable(1.0)})
  assert checkpointing.resolve_checkpoint(model_dir) == latest
  assert checkpointing.resolve_checkpoint(model_dir + "/") == latest
  first = os.path.join(model_dir, "model.ckpt-1")
  assert checkpointing.resolve_checkpoint(first) == first
  assert checkpointing.resolve_checkpoint(first + ".index") == first
  assert checkpointing.resolve_checkpoint(first + ".data-00000-of-00001") == first
  assert checkpointing.checkpoint_step(latest) == 2
  assert checkpointing.checkpoint_step(latest + ".trainer_state") is None


def test_resolve_errors_list_what_was_found(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match="no `checkpoint` state file.*no checkpoint"):
    checkpointing.resolve_checkpoint(str(empty))
  assert checkpointing.latest_checkpoint(str(empty)) is None

  loose = str(tmp_path / "loose")
  os.makedirs(loose)
  _tf1_save(loose, "electra_small", {"w": np.ones([2], np.float32)})
  os.remove(os.path.join(loose, "checkpoint"))
  with pytest.raises(FileNotFoundError) as error:
    checkpointing.resolve_checkpoint(loose)
  assert os.path.join(loose, "electra_small") in str(error.value)
  with pytest.raises(FileNotFoundError) as error:
    checkpointing.resolve_checkpoint(os.path.join(loose, "model.ckpt-5"))
  assert "model.ckpt-5.index does not exist" in str(error.value)
  assert os.path.join(loose, "electra_small") in str(error.value)
  with pytest.raises(FileNotFoundError):
    checkpointing.list_checkpoint(str(tmp_path / "nowhere"))


def test_latest_falls_back_when_state_names_missing_files(tmp_path, caplog):
  model_dir = str(tmp_path)
  first = checkpointing.save_checkpoint(model_dir, 1, {"w": tf.Variable(1.0)})
  second = checkpointing.save_checkpoint(model_dir, 2, {"w": tf.Variable(1.0)})
  # A state file copied from another machine with absolute paths.
  with open(os.path.join(model_dir, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "/elsewhere/model.ckpt-2"\n'
            'all_model_checkpoint_paths: "/elsewhere/model.ckpt-2"\n')
  assert checkpointing.latest_checkpoint(model_dir) == second
  for name in os.listdir(model_dir):
    if name.startswith("model.ckpt-2"):
      os.remove(os.path.join(model_dir, name))
  with open(os.path.join(model_dir, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "model.ckpt-2"\n'
            'all_model_checkpoint_paths: "model.ckpt-1"\n'
            'all_model_checkpoint_paths: "model.ckpt-2"\n')
  caplog.set_level(logging.WARNING, logger="electra")
  assert checkpointing.latest_checkpoint(model_dir) == first
  assert any("has no files; using" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------
# Distribution strategies
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("make_strategy", [
    lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
    lambda: tf.distribute.MirroredStrategy(["/cpu:0"]),
], ids=["one_device", "mirrored"])
def test_strategy_variables_save_and_restore(tmp_path, make_strategy):
  strategy = make_strategy()
  with strategy.scope():
    source = _model(seed=20)
    target = _model(seed=21)
  expected = _values(source)
  prefix = checkpointing.save_checkpoint(str(tmp_path), 7, source)
  assert dict(tf.train.list_variables(prefix)) == {n: list(v.shape) for n, v in source.items()}
  checkpointing.restore_checkpoint(prefix, target)
  _assert_values_equal(target, expected)
  plain = _model(seed=22)  # and into ordinary (non-distributed) variables
  checkpointing.restore_checkpoint(prefix, plain)
  _assert_values_equal(plain, expected)


# ----------------------------------------------------------------------------
# Reliability: idempotent pruning, disk full, corrupt checkpoints
# ----------------------------------------------------------------------------

def _files(model_dir: str) -> list:
  return sorted(os.listdir(model_dir))


def test_pruning_is_idempotent_after_a_crash_mid_prune(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  variables = _model()
  extra = {"rng": tf.random.Generator.from_seed(1)}
  for step in (1, 2):
    checkpointing.save_checkpoint(model_dir, step, variables, keep_checkpoint_max=2,
                                  extra_state=extra)
  real_remove = checkpointing._remove_files
  def crash_after_the_index(paths):  # kill -9 after the first file of a pruned checkpoint
    paths = list(paths)
    real_remove(paths[:1])
    raise SimulatedCrash()
  monkeypatch.setattr(checkpointing, "_remove_files", crash_after_the_index)
  with pytest.raises(SimulatedCrash):
    checkpointing.save_checkpoint(model_dir, 3, variables, keep_checkpoint_max=2,
                                  extra_state=extra)
  monkeypatch.undo()
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-2", "model.ckpt-3"]
  leftovers = [f for f in _files(model_dir) if f.startswith("model.ckpt-1.")]
  assert leftovers and "model.ckpt-1.index" not in leftovers  # half deleted, unlisted
  # Files the pruning may never touch: another basename, a newer unlisted step.
  for name in ("electra_small.index", "model.ckpt-9.index", "notes.txt"):
    (tmp_path / name).write_text("user's")

  checkpointing.save_checkpoint(model_dir, 4, variables, keep_checkpoint_max=2,
                                extra_state=extra)
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-3", "model.ckpt-4"]
  assert not [f for f in _files(model_dir) if f.startswith(("model.ckpt-1.", "model.ckpt-2."))]
  for name in ("electra_small.index", "model.ckpt-9.index", "notes.txt"):
    assert (tmp_path / name).read_text() == "user's"
  # keep_checkpoint_max 0 (keep all) deletes nothing unlisted.
  (tmp_path / "model.ckpt-0.index").write_text("old")
  checkpointing.save_checkpoint(model_dir, 5, variables, keep_checkpoint_max=0)
  assert (tmp_path / "model.ckpt-0.index").exists()


def test_disk_full_during_a_save_leaves_no_temporary_files(tmp_path):
  """A real write failure (file size limit) inside TF's writer of the sidecar."""
  import resource
  import signal
  model_dir = str(tmp_path)
  variables = _model()
  checkpointing.save_checkpoint(model_dir, 1, variables)
  before = _files(model_dir)
  big_state = tf.Variable(tf.zeros([500_000]))  # a 2 MB sidecar; the bundle is small
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
  try:
    with pytest.raises(checkpointing.CheckpointSaveError,
                       match="A file size limit .* while saving step 2; the previous checkpoint "
                       r"\(model.ckpt-1, step 1\) is intact"):
      checkpointing.save_checkpoint(model_dir, 2, variables, extra_state={"big": big_state})
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert _files(model_dir) == before
  assert checkpointing.latest_checkpoint(model_dir) == os.path.join(model_dir, "model.ckpt-1")


def _damage(prefix: str, how: str) -> None:
  path = prefix + (".index" if how == "index" else ".data-00000-of-00001")
  raw = bytearray(open(path, "rb").read())
  if how == "flip":
    raw[len(raw) // 2] ^= 0x10
  else:
    raw = raw[:len(raw) // 2]
  with open(path, "wb") as f:
    f.write(bytes(raw))


@pytest.mark.parametrize("how", ["truncate", "flip", "index"])
def test_corrupt_checkpoint_error_names_it(tmp_path, how):
  variables = _model()
  prefix = checkpointing.save_checkpoint(str(tmp_path), 1, variables)
  _damage(prefix, how)
  with pytest.raises(checkpointing.CorruptCheckpointError) as error:
    checkpointing.restore_checkpoint(prefix, _model(seed=1))
  assert str(error.value).startswith(f"Checkpoint {prefix} is corrupt (truncated or damaged")
  assert "function_node" not in str(error.value) and "\n" not in str(error.value)
  assert error.value.prefix == prefix


def test_resume_falls_back_to_the_previous_intact_checkpoint_loudly(tmp_path, caplog):
  model_dir = str(tmp_path)
  variables = _model(seed=1)
  older = checkpointing.save_checkpoint(model_dir, 1, variables)
  expected = _values(variables)
  for v in variables.values():
    v.assign(v + tf.ones_like(v))
  latest = checkpointing.save_checkpoint(model_dir, 2, variables)
  _damage(latest, "truncate")
  damaged = open(latest + ".data-00000-of-00001", "rb").read()

  fresh = _model(seed=3)
  report = checkpointing.restore_latest_intact(
      model_dir, lambda p: checkpointing.restore_checkpoint(p, fresh))
  assert report.path == older
  _assert_values_equal(fresh, expected)
  warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1]
  assert warning.startswith(f"WARNING: Checkpoint {latest} is corrupt")
  assert f"Resuming from the previous intact checkpoint {older} instead" in warning
  assert open(latest + ".data-00000-of-00001", "rb").read() == damaged  # left in place

  # An explicitly named checkpoint is not swapped: the advice names the hparam value.
  with pytest.raises(checkpointing.CorruptCheckpointError) as error:
    checkpointing.restore_checkpoint(latest, fresh)
  advice = checkpointing.corrupt_checkpoint_advice(error.value, "init_checkpoint")
  assert advice.endswith(f'set "init_checkpoint": "{older}".')

  _damage(older, "flip")
  with pytest.raises(checkpointing.CorruptCheckpointError, match="No intact older checkpoint"):
    checkpointing.restore_latest_intact(
        model_dir, lambda p: checkpointing.restore_checkpoint(p, fresh))


# ----------------------------------------------------------------------------
# A lost state file, a full disk
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("state_text", [None, "", "no proto here {"],
                         ids=["deleted", "empty", "garbage"])
def test_lost_state_file_is_rebuilt_from_the_bundles_on_disk(tmp_path, caplog, state_text):
  model_dir = str(tmp_path)
  variables = _model()
  prefixes = [checkpointing.save_checkpoint(model_dir, step, variables) for step in (0, 5, 10)]
  _tf1_save(model_dir, "electra_small", {"w": np.ones([2], np.float32)})  # not ours: not listed
  state_file = os.path.join(model_dir, "checkpoint")
  os.remove(state_file)
  if state_text is not None:
    with open(state_file, "w") as f:
      f.write(state_text)
  caplog.set_level(logging.WARNING, logger="electra")
  # Readers use the bundles on disk (and say so once); nothing is written.
  assert checkpointing.latest_checkpoint(model_dir) == prefixes[-1]
  assert checkpointing.listed_checkpoints(model_dir) == prefixes[::-1]
  assert checkpointing.resolve_checkpoint(model_dir) == prefixes[-1]
  warnings = [r.getMessage() for r in caplog.records if "3 checkpoints lie in" in r.getMessage()]
  assert len(warnings) == 1 and "newest model.ckpt-10" in warnings[0]
  assert os.path.exists(state_file) == (state_text is not None)
  # The trainer rebuilds it before resuming; then TF's own reader agrees.
  problem, listed = checkpointing.rebuild_state_file(model_dir)
  assert problem == {None: "missing", "": "empty"}.get(state_text,
                                                       "not a valid checkpoint state file")
  assert listed == prefixes
  assert tf.train.latest_checkpoint(model_dir) == prefixes[-1]
  assert _claimed_checkpoints(model_dir) == ["model.ckpt-0", "model.ckpt-5", "model.ckpt-10"]
  assert checkpointing.rebuild_state_file(model_dir) is None  # a valid file is left alone


def test_rebuild_leaves_a_dir_without_our_checkpoints_alone(tmp_path):
  model_dir = str(tmp_path)
  _tf1_save(model_dir, "electra_small", {"w": np.ones([2], np.float32)})
  os.remove(os.path.join(model_dir, "checkpoint"))
  assert checkpointing.rebuild_state_file(model_dir) is None
  assert checkpointing.latest_checkpoint(model_dir) is None
  assert not os.path.exists(os.path.join(model_dir, "checkpoint"))


def _no_space_error(*args, **kwargs):
  """What SaveV2 raises on a full disk (the text TensorFlow 2.21 gives for ENOSPC)."""
  raise tf.errors.ResourceExhaustedError(
      None, None, "{{function_node __wrapped__SaveV2_dtypes_1_device_/job:localhost/replica:0/"
      "task:0/device:CPU:0}} /m/.tmp-model.ckpt-5-93c1.data-00000-of-00001.tempstate99; No "
      "space left on device [Op:SaveV2]")


def test_no_space_left_names_the_dir_the_step_and_the_intact_checkpoint(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  variables = _model()
  checkpointing.save_checkpoint(model_dir, 3, variables)
  before = _files(model_dir)
  monkeypatch.setattr(tf.raw_ops, "SaveV2", _no_space_error)
  with pytest.raises(checkpointing.CheckpointSaveError) as error:
    checkpointing.save_checkpoint(model_dir, 5, variables)
  assert str(error.value).startswith(
      f"No space left on {model_dir} while saving step 5; the previous checkpoint "
      "(model.ckpt-3, step 3) is intact")
  assert "SaveV2" not in str(error.value) and "\n" not in str(error.value)
  assert _files(model_dir) == before


@pytest.fixture
def tiny_filesystem(tmp_path):
  """A 256 KiB tmpfs (needs root; skipped where mounting is not allowed)."""
  import subprocess
  mount_point = tmp_path / "small"
  mount_point.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                            str(mount_point)], capture_output=True)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
  yield str(mount_point)
  subprocess.run(["umount", str(mount_point)], check=True)


def test_a_real_full_disk_keeps_the_previous_checkpoint(tiny_filesystem):
  model_dir = os.path.join(tiny_filesystem, "model")
  small = {"w": tf.Variable(tf.ones([1000]))}
  first = checkpointing.save_checkpoint(model_dir, 1, small)
  before = _files(model_dir)
  big = {"w": tf.Variable(tf.ones([100_000]))}  # 400 KB: more than the filesystem holds
  with pytest.raises(checkpointing.CheckpointSaveError,
                     match=f"No space left on {model_dir} while saving step 2; the previous "
                     r"checkpoint \(model.ckpt-1, step 1\) is intact"):
    checkpointing.save_checkpoint(model_dir, 2, big)
  assert _files(model_dir) == before
  fresh = {"w": tf.Variable(tf.zeros([1000]))}
  checkpointing.restore_checkpoint(model_dir, fresh)
  np.testing.assert_array_equal(fresh["w"].numpy(), np.ones([1000], np.float32))
  assert checkpointing.latest_checkpoint(model_dir) == first
