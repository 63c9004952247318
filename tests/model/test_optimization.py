"""Tests for model/optimization.py against numpy re-computations and hand-computed values."""
import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from model import optimization

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Realistic checkpoint names (see docs/checkpoints.md), odd tiny shapes.
PRETRAIN_SHAPES = {
    "discriminator_predictions/dense/kernel": (5, 3),
    "electra/embeddings/LayerNorm/gamma": (3,),
    "electra/embeddings/word_embeddings": (11, 3),
    "electra/embeddings_project/kernel": (3, 5),
    "electra/encoder/layer_0/attention/self/query/bias": (5,),
    "electra/encoder/layer_0/attention/self/query/kernel": (5, 5),
    "generator_predictions/output_bias": (11,),
}
EMBEDDINGS = "electra/embeddings/word_embeddings"
NO_GRAD = "discriminator_predictions/dense/kernel"
SLICE_ROWS = np.array([2, 7, 2])  # duplicate row 2: the dense gradient sums both slices


def _init_values(shapes, seed=0):
  rng = np.random.RandomState(seed)
  return {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}


def _make_variables(values):
  return {n: tf.Variable(v, name=n) for n, v in values.items()}


def _grads(shapes, seed):
  """Per-name gradients: numpy dense arrays, and the embeddings as (slice values, rows)."""
  rng = np.random.RandomState(seed)
  dense = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
  slices = rng.normal(size=(len(SLICE_ROWS), shapes[EMBEDDINGS][1])).astype(np.float32)
  dense_emb = np.zeros(shapes[EMBEDDINGS], np.float32)
  np.add.at(dense_emb, SLICE_ROWS, slices)
  dense[EMBEDDINGS] = dense_emb
  dense[NO_GRAD] = None
  return dense, slices


def _tf_grads(names, dense, slices):
  out = []
  for n in names:
    if n == EMBEDDINGS:
      out.append(tf.IndexedSlices(tf.constant(slices), tf.constant(SLICE_ROWS),
                                  tf.constant(PRETRAIN_SHAPES[EMBEDDINGS])))
    elif dense[n] is None:
      out.append(None)
    else:
      out.append(tf.constant(dense[n]))
  return out


def _np_adam(params, m, v, grads, lr, wd, decayed, multipliers, b1=0.9, b2=0.999, eps=1e-6):
  """The original's update in float64 numpy (docs/model.md#adamw)."""
  for n, g in grads.items():
    if g is None:
      continue
    g = g.astype(np.float64)
    m[n] = b1 * m[n] + (1 - b1) * g
    v[n] = b2 * v[n] + (1 - b2) * g * g
    update = m[n] / (np.sqrt(v[n]) + eps)
    if decayed[n]:
      update = update + wd * params[n]
    params[n] = params[n] - lr * multipliers.get(n, 1.0) * update


def _np_state(values):
  return ({n: v.astype(np.float64) for n, v in values.items()},
          {n: np.zeros(v.shape) for n, v in values.items()},
          {n: np.zeros(v.shape) for n, v in values.items()})


def _assert_state(variables, optimizer, params, m, v):
  slots = optimizer.named_slot_variables()
  for n, var in variables.items():
    np.testing.assert_allclose(var.numpy(), params[n], rtol=2e-5, atol=1e-6, err_msg=n)
    np.testing.assert_allclose(slots[n + "/adam_m"].numpy(), m[n], rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(slots[n + "/adam_v"].numpy(), v[n], rtol=2e-5, atol=1e-9)


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("step,power,expected", [
    (0, 1.0, 0.0),
    (5, 1.0, 1e-3 * 0.95 * 0.5),     # mid warm-up: ramp × already-decayed curve
    (10, 1.0, 1e-3 * 0.9),           # warm-up end: decayed(10), not the peak
    (55, 1.0, 1e-3 * 0.45),          # mid decay
    (100, 1.0, 0.0),
    (150, 1.0, 0.0),                 # beyond T: no cycling
    (5, 2.0, 1e-3 * 0.95 ** 2 * 0.5),
    (10, 2.0, 1e-3 * 0.81),
    (55, 2.0, 1e-3 * 0.2025),
    (100, 2.0, 0.0),
], ids=lambda x: str(x))
def test_schedule_warmup_steps(step, power, expected):
  lr = optimization.learning_rate_schedule(step, 1e-3, 100, warmup_steps=10, lr_decay_power=power)
  assert lr.dtype == tf.float32
  np.testing.assert_allclose(lr.numpy(), expected, rtol=1e-6, atol=1e-12)


def test_schedule_warmup_proportion_and_max():
  # Fine-tuning path: W = T·0.1 = 10.
  lr = lambda t, **kw: optimization.learning_rate_schedule(t, 1e-4, 100, **kw).numpy()
  np.testing.assert_allclose(lr(5, warmup_proportion=0.1), 1e-4 * 0.95 * 0.5, rtol=1e-6)
  np.testing.assert_allclose(lr(10, warmup_proportion=0.1), 1e-4 * 0.9, rtol=1e-6)
  # W = max(T·proportion, warmup_steps) = max(10, 20) = 20.
  np.testing.assert_allclose(lr(10, warmup_proportion=0.1, warmup_steps=20),
                             1e-4 * 0.9 * 0.5, rtol=1e-6)
  # Fractional W = 100·0.05 = 5 → step 3 has factor 0.6.
  np.testing.assert_allclose(lr(3, warmup_proportion=0.05), 1e-4 * 0.97 * 0.6, rtol=1e-6)


def test_schedule_without_warmup_is_not_nan():
  # The original computes min(1, 0/0) = NaN at step 0; we use factor 1 (documented fix).
  lr = optimization.learning_rate_schedule(0, 1e-3, 100)
  np.testing.assert_allclose(lr.numpy(), 1e-3, rtol=1e-7)
  np.testing.assert_allclose(optimization.learning_rate_schedule(30, 1e-3, 100).numpy(),
                             7e-4, rtol=1e-6)
  assert optimization.learning_rate_schedule(3, 1e-3, 0).numpy() == 0.0


def test_schedule_int64_step_in_xla_matches_eager():
  fn = tf.function(lambda t: optimization.learning_rate_schedule(
      t, 5e-4, 1000, warmup_steps=100, lr_decay_power=2.0), jit_compile=True)
  for t in [0, 37, 100, 640, 1000, 5000]:
    step = tf.constant(t, tf.int64)
    eager = optimization.learning_rate_schedule(step, 5e-4, 1000, warmup_steps=100,
                                                lr_decay_power=2.0)
    assert fn(step).numpy() == pytest.approx(eager.numpy(), rel=1e-6, abs=1e-12)
  np.testing.assert_allclose(fn(tf.constant(37, tf.int64)).numpy(),
                             5e-4 * 0.963 ** 2 * 0.37, rtol=1e-6)


def test_schedule_rejects_negative_hparams():
  with pytest.raises(ValueError, match="warmup_steps"):
    optimization.learning_rate_schedule(0, 1e-3, 100, warmup_steps=-1)
  with pytest.raises(ValueError, match="num_train_steps"):
    optimization.learning_rate_schedule(0, 1e-3, -5)


# --------------------------------------------------------------------------- layer-wise


def _finetune_names(n_layers):
  names = ["electra/embeddings/word_embeddings", "electra/embeddings/LayerNorm/gamma",
           "electra/embeddings_project/kernel", "task_specific/rte/dense/kernel",
           "task_specific/rte/dense/bias"]
  for k in range(n_layers):
    names += [f"electra/encoder/layer_{k}/attention/self/query/kernel",
              f"electra/encoder/layer_{k}/output/LayerNorm/beta"]
  return names


def test_layerwise_12_layers_original_rule():
  names = _finetune_names(12)
  mult = optimization.layerwise_lr_multipliers(names, 0.8, 12)
  assert list(mult) == names
  expected = {
      "electra/embeddings/word_embeddings": 0.04398046511104,       # 0.8^14
      "electra/embeddings/LayerNorm/gamma": 0.04398046511104,
      "electra/embeddings_project/kernel": 0.04398046511104,
      "electra/encoder/layer_0/attention/self/query/kernel": 0.0549755813888,   # 0.8^13
      "electra/encoder/layer_1/output/LayerNorm/beta": 0.068719476736,          # 0.8^12
      "electra/encoder/layer_10/attention/self/query/kernel": 0.512,            # 0.8^3
      "electra/encoder/layer_11/output/LayerNorm/beta": 0.64,       # top layer: 0.8^2 (quirk)
      "task_specific/rte/dense/kernel": 1.0,
      "task_specific/rte/dense/bias": 1.0,
  }
  for name, value in expected.items():
    assert mult[name] == pytest.approx(value, rel=1e-12), name
  assert 0.8 not in [round(x, 12) for x in mult.values()]  # depth n+1 is never used


def test_layerwise_12_layers_fixed_rule():
  mult = optimization.layerwise_lr_multipliers(_finetune_names(12), 0.8, 12, fix_top_layer=True)
  expected = {
      "electra/embeddings/word_embeddings": 0.0549755813888,        # 0.8^13
      "electra/embeddings_project/kernel": 0.0549755813888,
      "electra/encoder/layer_0/attention/self/query/kernel": 0.068719476736,    # 0.8^12
      "electra/encoder/layer_1/output/LayerNorm/beta": 0.08589934592,           # 0.8^11
      "electra/encoder/layer_10/attention/self/query/kernel": 0.64,             # 0.8^2
      "electra/encoder/layer_11/output/LayerNorm/beta": 0.8,        # top layer: 0.8^1
      "task_specific/rte/dense/bias": 1.0,
  }
  for name, value in expected.items():
    assert mult[name] == pytest.approx(value, rel=1e-12), name


def test_layerwise_disabled_and_errors():
  names = _finetune_names(3)
  assert set(optimization.layerwise_lr_multipliers(names, -1, 3).values()) == {1.0}
  assert set(optimization.layerwise_lr_multipliers(names, 0.0, None).values()) == {1.0}
  # A layer beyond n_transformer_layers matches no key.
  with pytest.raises(ValueError, match="No learning rate specified for variable "
                     "electra/encoder/layer_2/attention"):
    optimization.layerwise_lr_multipliers(names, 0.8, 2)
  with pytest.raises(ValueError, match="generator_predictions/output_bias"):
    optimization.layerwise_lr_multipliers(names + ["generator_predictions/output_bias"], 0.8, 3)
  # A custom task called "embeddings" would match two keys.
  with pytest.raises(ValueError, match="several.*task_specific/embeddings/dense/kernel|"
                     "task_specific/embeddings/dense/kernel matches several"):
    optimization.layerwise_lr_multipliers(["task_specific/embeddings/dense/kernel"], 0.8, 3)
  with pytest.raises(ValueError, match="n_transformer_layers"):
    optimization.layerwise_lr_multipliers(names, 0.8, None)


# --------------------------------------------------------------------------- Adam


def test_slots_names_dtype_and_exclusions():
  variables = _make_variables(_init_values(PRETRAIN_SHAPES))
  opt = optimization.AdamWeightDecay(variables, weight_decay_rate=0.01)
  slots = opt.named_slot_variables()
  assert list(slots) == sorted(f"{n}/{s}" for n in PRETRAIN_SHAPES for s in ("adam_m", "adam_v"))
  for name, slot in slots.items():
    base = name.rsplit("/", 1)[0]
    assert slot.dtype == tf.float32 and not slot.trainable
    assert slot.shape == variables[base].shape
    assert not np.any(slot.numpy())
  decayed = {n for n in PRETRAIN_SHAPES if opt.uses_weight_decay(n)}
  assert decayed == {"discriminator_predictions/dense/kernel",
                     "electra/embeddings/word_embeddings",      # embeddings ARE decayed
                     "electra/embeddings_project/kernel",
                     "electra/encoder/layer_0/attention/self/query/kernel"}
  no_decay = optimization.AdamWeightDecay(variables, weight_decay_rate=0.0)
  assert not any(no_decay.uses_weight_decay(n) for n in PRETRAIN_SHAPES)


def test_two_steps_match_numpy():
  values = _init_values(PRETRAIN_SHAPES)
  variables = _make_variables(values)
  names = list(variables)
  wd = 0.01
  opt = optimization.AdamWeightDecay(variables, weight_decay_rate=wd)
  decayed = {n: opt.uses_weight_decay(n) for n in names}
  params, m, v = _np_state(values)
  for step, (seed, lr) in enumerate([(1, 3e-2), (2, 1e-2)]):
    dense, slices = _grads(PRETRAIN_SHAPES, seed)
    opt.apply_gradients(_tf_grads(names, dense, slices), tf.constant(lr))
    _np_adam(params, m, v, dense, lr, wd, decayed, {})
    _assert_state(variables, opt, params, m, v)
    if step == 0:
      # Dense update: an embedding row absent from the slices still decays by lr·wd·θ.
      np.testing.assert_allclose(variables[EMBEDDINGS].numpy()[5],
                                 values[EMBEDDINGS][5] * (1 - lr * wd), rtol=1e-6)
  # The variable without gradient and its slots never moved.
  np.testing.assert_array_equal(variables[NO_GRAD].numpy(), values[NO_GRAD])
  assert not np.any(opt.named_slot_variables()[NO_GRAD + "/adam_v"].numpy())


def test_no_bias_correction():
  variable = tf.Variable([0.0, 0.0, 0.0])
  opt = optimization.AdamWeightDecay({"electra/encoder/layer_0/output/dense/bias": variable})
  opt.apply_gradients([tf.constant([2.0, -0.5, 0.0])], 1.0)
  # m = 0.1·g, v = 0.001·g²: |step| = 0.1/sqrt(0.001) ≈ 3.162 (bias-corrected Adam: ≈ 1.0).
  expected = [-0.2 / (math.sqrt(0.004) + 1e-6), 0.05 / (math.sqrt(0.00025) + 1e-6), 0.0]
  np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5)
  assert np.all(np.abs(variable.numpy()[:2]) > 3.16)


def test_layerwise_multipliers_in_update():
  shapes = {n: (3, 5) if "kernel" in n or "embeddings/word" in n else (5,)
            for n in _finetune_names(2)}
  values = _init_values(shapes, seed=3)
  variables = _make_variables(values)
  names = list(variables)
  mult = optimization.layerwise_lr_multipliers(names, 0.8, 2)
  # Hand values for n = 2: embeddings 0.8^4, layer_0 0.8^3, layer_1 0.8^2, head 1.
  assert mult["electra/embeddings/word_embeddings"] == pytest.approx(0.4096)
  assert mult["electra/encoder/layer_0/attention/self/query/kernel"] == pytest.approx(0.512)
  assert mult["electra/encoder/layer_1/output/LayerNorm/beta"] == pytest.approx(0.64)
  opt = optimization.AdamWeightDecay(variables, weight_decay_rate=0.01, lr_multipliers=mult)
  rng = np.random.RandomState(4)
  grads = {n: rng.normal(size=shapes[n]).astype(np.float32) for n in names}
  opt.apply_gradients([tf.constant(grads[n]) for n in names], 2e-2)
  params, m, v = _np_state(values)
  _np_adam(params, m, v, grads, 2e-2, 0.01, {n: opt.uses_weight_decay(n) for n in names}, mult)
  _assert_state(variables, opt, params, m, v)


def test_mixed_precision_gradients_are_cast():
  values = {"electra/embeddings_project/kernel": np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)}
  grad = np.array([[0.5, -1.25], [2.0, 0.0]], np.float32)  # exact in bf16 and fp16
  results = []
  for dtype in (tf.float32, tf.bfloat16, tf.float16):
    variables = _make_variables(values)
    opt = optimization.AdamWeightDecay(variables, weight_decay_rate=0.01)
    opt.apply_gradients([tf.cast(grad, dtype)], tf.constant(0.1))
    results.append(variables["electra/embeddings_project/kernel"].numpy())
    assert variables["electra/embeddings_project/kernel"].dtype == tf.float32
  np.testing.assert_array_equal(results[0], results[1])
  np.testing.assert_array_equal(results[0], results[2])
  assert not np.array_equal(results[0], values["electra/embeddings_project/kernel"])


def test_adam_errors():
  variables = _make_variables(_init_values(PRETRAIN_SHAPES))
  opt = optimization.AdamWeightDecay(variables)
  with pytest.raises(ValueError, match="Got 2 gradients for 7 variables"):
    opt.apply_gradients([None, None], 1.0)
  with pytest.raises(ValueError, match="missing.*generator_predictions/output_bias"):
    optimization.AdamWeightDecay(variables, lr_multipliers={n: 1.0 for n in list(variables)[:-1]})
  with pytest.raises(ValueError, match="unknown.*'typo'"):
    optimization.AdamWeightDecay(variables, lr_multipliers={**{n: 1.0 for n in variables},
                                                            "typo": 1.0})
  with pytest.raises(ValueError, match="int64.*global_step|global_step.*int64"):
    optimization.AdamWeightDecay({"global_step": tf.Variable(0, dtype=tf.int64)})


# --------------------------------------------------------------------------- clipping


def test_clip_by_global_norm_matches_numpy():
  dense, slices = _grads(PRETRAIN_SHAPES, seed=5)
  names = list(PRETRAIN_SHAPES)
  grads = _tf_grads(names, dense, slices)
  grads[1] = tf.cast(grads[1], tf.bfloat16)  # mixed dtypes are fine
  dense[names[1]] = tf.cast(grads[1], tf.float32).numpy()
  norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2))
                       for g in dense.values() if g is not None))
  assert norm > 1.0
  clipped, got_norm = optimization.clip_by_global_norm(grads, 1.0)
  np.testing.assert_allclose(got_norm.numpy(), norm, rtol=1e-6)
  for n, g in zip(names, clipped):
    if dense[n] is None:
      assert g is None
    else:
      np.testing.assert_allclose(g.numpy(), dense[n] / norm, rtol=1e-5, atol=1e-8, err_msg=n)
  # Below the threshold nothing changes.
  unclipped, _ = optimization.clip_by_global_norm(grads, 2.0 * norm)
  for n, g in zip(names, unclipped):
    if g is not None:
      np.testing.assert_allclose(g.numpy(), dense[n], rtol=1e-6)
  # A non-finite norm poisons every gradient (as tf.clip_by_global_norm).
  bad, bad_norm = optimization.clip_by_global_norm([tf.constant([np.inf, 1.0]),
                                                    tf.constant([2.0])], 1.0)
  assert np.isinf(bad_norm.numpy()) and np.all(np.isnan(bad[1].numpy()))
  with pytest.raises(ValueError, match="clip_norm"):
    optimization.clip_by_global_norm(grads, 0.0)


# --------------------------------------------------------------------------- tf.function / XLA


def test_xla_step_equals_eager():
  values = _init_values(PRETRAIN_SHAPES, seed=6)
  names = list(values)
  targets = {n: tf.constant(np.random.RandomState(7).normal(size=s).astype(np.float32))
             for n, s in PRETRAIN_SHAPES.items()}
  ids = tf.constant([[2, 7, 2, 9]])

  def build():
    variables = _make_variables(values)
    return variables, optimization.create_optimizer(
        variables, 1e-2, 20, weight_decay_rate=0.01, warmup_steps=2)

  def step_fn(variables, opt, step):
    with tf.GradientTape() as tape:
      emb = tf.gather(variables[EMBEDDINGS], ids)  # IndexedSlices gradient
      loss = tf.reduce_sum(emb ** 2) + sum(
          tf.reduce_sum((variables[n] - targets[n]) ** 2) for n in names
          if n not in (EMBEDDINGS, NO_GRAD))
    grads = tape.gradient(loss, [variables[n] for n in names])
    assert isinstance(grads[names.index(EMBEDDINGS)], tf.IndexedSlices)
    return opt.apply_gradients(grads, step)

  eager_vars, eager_opt = build()
  xla_vars, xla_opt = build()
  xla_step = tf.function(lambda s: step_fn(xla_vars, xla_opt, s), jit_compile=True)
  for step in range(3):
    info = step_fn(eager_vars, eager_opt, tf.constant(step, tf.int64))
    xla_info = xla_step(tf.constant(step, tf.int64))
    np.testing.assert_allclose(xla_info.learning_rate.numpy(), info.learning_rate.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(xla_info.grad_norm.numpy(), info.grad_norm.numpy(), rtol=1e-5)
  for n in names:
    np.testing.assert_allclose(xla_vars[n].numpy(), eager_vars[n].numpy(), rtol=1e-5, atol=1e-6)
  for name, slot in eager_opt.named_slot_variables().items():
    np.testing.assert_allclose(xla_opt.named_slot_variables()[name].numpy(), slot.numpy(),
                               rtol=1e-5, atol=1e-7)
  assert not np.allclose(eager_vars[EMBEDDINGS].numpy(), values[EMBEDDINGS])


# --------------------------------------------------------------------------- bundles


def test_create_optimizer_bundle_matches_manual_steps():
  values = _init_values(PRETRAIN_SHAPES, seed=8)
  names = list(values)
  variables = _make_variables(values)
  config = types.SimpleNamespace(learning_rate=5e-2, num_train_steps=10, weight_decay_rate=0.01,
                                 num_warmup_steps=2, lr_decay_power=2.0)
  opt = optimization.create_pretraining_optimizer(config, variables)
  assert opt.learning_rate(1).numpy() == pytest.approx(5e-2 * 0.81 * 0.5, rel=1e-6)
  params, m, v = _np_state(values)
  decayed = {n: opt.adam.uses_weight_decay(n) for n in names}
  for step in (0, 1):
    dense, slices = _grads(PRETRAIN_SHAPES, seed=10 + step)
    info = opt.apply_gradients(_tf_grads(names, dense, slices), tf.constant(step, tf.int64))
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2))
                         for g in dense.values() if g is not None))
    clipped = {n: None if g is None else g / max(norm, 1.0) for n, g in dense.items()}
    lr = 5e-2 * (1 - step / 10) ** 2 * min(1.0, step / 2)
    np.testing.assert_allclose(info.learning_rate.numpy(), lr, rtol=1e-6)
    np.testing.assert_allclose(info.grad_norm.numpy(), norm, rtol=1e-6)
    _np_adam(params, m, v, clipped, lr, 0.01, decayed, {})
    _assert_state(variables, opt, params, m, v)


def test_create_finetuning_optimizer_uses_layerwise_and_fix_hparam():
  names = _finetune_names(3)
  variables = {n: tf.Variable(tf.zeros([2]), name=n) for n in names}
  config = types.SimpleNamespace(learning_rate=1e-4, weight_decay_rate=0.01, warmup_proportion=0.1,
                                 layerwise_lr_decay=0.8, fix_layerwise_lr_decay=False)
  opt = optimization.create_finetuning_optimizer(config, variables, 100, 3)
  assert opt.adam.lr_multiplier("electra/encoder/layer_2/output/LayerNorm/beta") == \
      pytest.approx(0.64)
  assert opt.learning_rate(5).numpy() == pytest.approx(1e-4 * 0.95 * 0.5, rel=1e-6)
  config.fix_layerwise_lr_decay = True
  fixed = optimization.create_finetuning_optimizer(config, variables, 100, 3)
  assert fixed.adam.lr_multiplier("electra/encoder/layer_2/output/LayerNorm/beta") == \
      pytest.approx(0.8)
  assert fixed.adam.lr_multiplier("electra/embeddings/word_embeddings") == pytest.approx(0.4096)
  config.layerwise_lr_decay = -1
  flat = optimization.create_finetuning_optimizer(config, variables, 100, 3)
  assert {flat.adam.lr_multiplier(n) for n in names} == {1.0}


# --------------------------------------------------------------------------- MirroredStrategy

_MIRRORED_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from model import optimization

shapes = {"electra/embeddings/word_embeddings": (11, 3), "electra/embeddings/LayerNorm/beta": (3,),
          "electra/encoder/layer_0/intermediate/dense/kernel": (3, 7),
          "electra/encoder/layer_0/intermediate/dense/bias": (7,),
          "discriminator_predictions/dense_1/kernel": (7, 1)}
names = list(shapes)
rng = np.random.RandomState(0)
init = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
rows = tf.constant([1, 4, 1])
# Two steps x two replicas of per-replica gradients; the last variable has none.
per_replica = [[{n: rng.normal(size=(3, 3) if n == names[0] else s).astype(np.float32)
                 for n, s in shapes.items()} for _ in range(2)] for _ in range(2)]

def grads_of(g):
  out = [tf.IndexedSlices(g[names[0]], rows, tf.constant([11, 3], tf.int64))]
  return out + [g[n] for n in names[1:-1]] + [None]

def build():
  variables = {n: tf.Variable(init[n], name=n) for n in names}
  return variables, optimization.create_optimizer(variables, 0.05, 10, weight_decay_rate=0.01,
                                                  warmup_steps=0)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
  dist_vars, dist_opt = build()
single_vars, single_opt = build()

@tf.function
def dist_step(step, g0, g1):
  def replica_fn():
    rid = tf.distribute.get_replica_context().replica_id_in_sync_group
    mine = tf.nest.map_structure(lambda a, b: tf.where(tf.equal(rid, 0), a, b), g0, g1)
    grads = optimization.all_reduce_gradients(grads_of(mine))
    return dist_opt.apply_gradients(grads, step).grad_norm
  return strategy.run(replica_fn)

@tf.function
def single_step(step, g0, g1):
  grads = [None if a is None else tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
           for a, b in zip(grads_of(g0), grads_of(g1))]
  return single_opt.apply_gradients(grads, step).grad_norm

norms = []
for step in range(2):
  g0, g1 = per_replica[step]
  d = dist_step(tf.constant(step + 1, tf.int64), g0, g1)
  s = single_step(tf.constant(step + 1, tf.int64), g0, g1)
  norms.append([float(x) for x in strategy.experimental_local_results(d)] + [float(s)])

# A third step in cross-replica context with a plain (global) gradient.
summed = [None if a is None else tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
          for a, b in zip(grads_of(per_replica[0][0]), grads_of(per_replica[0][1]))]
with strategy.scope():
  dist_opt.apply_gradients(summed, tf.constant(3, tf.int64))
single_opt.apply_gradients(summed, tf.constant(3, tf.int64))

single = {**single_vars, **single_opt.named_slot_variables()}
dist = {**dist_vars, **dist_opt.named_slot_variables()}
max_diff, replica_diff, moved = 0.0, 0.0, 0.0
for name, var in single.items():
  copies = [c.numpy() for c in strategy.experimental_local_results(dist[name])]
  max_diff = max(max_diff, max(float(np.max(np.abs(c - var.numpy()))) for c in copies))
  replica_diff = max(replica_diff, float(np.max(np.abs(copies[0] - copies[1]))))
for name in names:
  moved = max(moved, float(np.max(np.abs(single_vars[name].numpy() - init[name]))))
error = ""
try:
  optimization.AdamWeightDecay(dist_vars)
except ValueError as e:
  error = str(e)
print(json.dumps({"max_diff": max_diff, "replica_diff": replica_diff, "moved": moved,
                  "norms": norms, "devices": len(dist_vars[names[0]].values),
                  "slot_names": sorted(dist_opt.named_slot_variables())[:2], "error": error}))
"""


def test_mirrored_strategy_equals_single_device():
  env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["devices"] == 2
  assert result["slot_names"] == ["discriminator_predictions/dense_1/kernel/adam_m",
                                  "discriminator_predictions/dense_1/kernel/adam_v"]
  assert result["moved"] > 1e-3
  assert result["max_diff"] < 1e-6
  assert result["replica_diff"] == 0.0
  for per_step in result["norms"]:
    assert per_step[2] > 1.0  # clipping of the global gradient was active
    assert per_step[0] == pytest.approx(per_step[2], rel=1e-6)
    assert per_step[1] == pytest.approx(per_step[2], rel=1e-6)
  assert "strategy.scope()" in result["error"]
