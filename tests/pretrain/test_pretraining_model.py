"""Tests for pretrain/pretraining_model.py: checkpoint names, losses vs numpy, Electric."""
import doctest
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from configure_pretraining import PretrainingConfig
from model import checkpointing, modeling, optimization, tokenization
from pretrain.pretrain_data import Inputs
from pretrain.pretrain_helpers import SpecialTokenIds
from pretrain.pretraining_model import PretrainingModel
from tests.conftest import TEST_DATA
from tests.model import numpy_bert
from tests.model.real_batches import moby_dick_batch

GOLDEN_NAMES = os.path.join(TEST_DATA, "checkpoint_names", "electra_small_pretraining.txt")
CLS, SEP, MASK = 101, 102, 103  # Ids in the real uncased vocab.
# Discriminator H 42 (3 heads), I 37, E 26; generator 0.34 -> H 14, 1 head, I 56.
TINY_HPARAMS = {
    "model_hparam_overrides": {"hidden_size": 42, "num_hidden_layers": 2,
                               "num_attention_heads": 3, "intermediate_size": 37},
    "embedding_size": 26, "generator_hidden_size": 0.34, "max_seq_length": 23,
}
LENGTHS = [23, 9, 17]
SEED = tf.constant([5, 17])


def _config(vocab_file, **kwargs):
  return PretrainingConfig("tiny", "/nonexistent", **{**TINY_HPARAMS, "vocab_file": vocab_file,
                                                      **kwargs})


@pytest.fixture(scope="module")
def batch(vocab_file, moby_dick_lines):
  return moby_dick_batch(tokenization.FullTokenizer(vocab_file), moby_dick_lines, LENGTHS, 23,
                         first_line=30)


def _features(batch):
  return {k: tf.constant(v) for k, v in batch.items()}


def _numpy(outputs):
  return {k: (None if v is None else np.asarray(v, np.float64) if v.dtype.is_floating
              else np.asarray(v)) for k, v in outputs._asdict().items()}


def _shapes(model):
  return {name: list(v.shape) for name, v in model.named_variables().items()}


def _num_params(variables):
  return sum(v.shape.num_elements() for v in variables.values())


@pytest.fixture
def fast_init(monkeypatch):
  """Zero initializers, so building base/large models only allocates memory."""
  zeros = lambda *args, **kwargs: modeling.zeros()
  monkeypatch.setattr(modeling, "truncated_normal", zeros)
  monkeypatch.setattr(modeling, "glorot_uniform", zeros)


# ----------------------------------------------------------------------------- checkpoint names

def _golden():
  golden = {}
  with open(GOLDEN_NAMES, encoding="utf-8") as f:
    for line in f:
      name, shape = line.rstrip("\n").split("\t")
      golden[name] = [int(d) for d in shape.strip("[]").split(",")]
  return golden


@pytest.fixture(scope="module")
def small_model(vocab_file):
  return PretrainingModel(PretrainingConfig("small", "/nonexistent", vocab_file=vocab_file))


def test_small_names_and_shapes_match_spec(small_model):
  golden = _golden()
  assert len(golden) == 402
  assert _shapes(small_model) == golden
  assert list(small_model.named_variables()) == sorted(golden)
  assert _num_params(small_model.named_variables()) == 14_196_219
  disc = {**small_model.discriminator.named_variables(),
          **small_model.discriminator_head.named_variables()}
  assert _num_params(disc) == 13_549_057


def test_small_checkpoint_has_1207_entries(small_model, tmp_path):
  variables = small_model.trainable_named_variables()
  optimizer = optimization.AdamWeightDecay(variables, weight_decay_rate=0.01)
  global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
  to_save = {**variables, **optimizer.named_slot_variables(), "global_step": global_step}
  prefix = checkpointing.save_checkpoint(str(tmp_path), 0, to_save)
  expected = {"global_step": []}
  for name, shape in _golden().items():
    expected.update({name: shape, name + "/adam_m": shape, name + "/adam_v": shape})
  listed = dict(tf.train.list_variables(prefix))
  assert len(listed) == 1207
  assert listed == expected


@pytest.mark.parametrize("hparams,count,params,shapes,absent", [
    ({"generator_hidden_size": 1.0}, 402, 23_122_875,
     {"generator/embeddings_project/kernel": [128, 256],
      "generator/encoder/layer_11/intermediate/dense/kernel": [256, 1024],
      "generator_predictions/dense/kernel": [256, 128]}, []),
    ({"model_size": "base", "generator_hidden_size": 0.33333}, 400, None,
     {"electra/embeddings/word_embeddings": [30522, 768],
      "generator/embeddings_project/kernel": [768, 256],
      "generator_predictions/dense/kernel": [256, 768],
      "generator_predictions/LayerNorm/gamma": [768]}, ["electra/embeddings_project/kernel"]),
    ({"model_size": "large"}, 784, None,
     {"generator/embeddings_project/kernel": [1024, 256],
      "generator/encoder/layer_23/output/dense/kernel": [1024, 256],
      "generator_predictions/dense/kernel": [256, 1024]}, ["electra/embeddings_project/kernel"]),
    ({"debug": True}, 114, None,
     {"electra/embeddings_project/kernel": [128, 144],
      "electra/encoder/layer_2/intermediate/dense/kernel": [144, 576],
      "generator/embeddings_project/kernel": [128, 36],
      "generator/encoder/layer_2/intermediate/dense/kernel": [36, 144],
      "generator_predictions/dense/kernel": [36, 128]},
     ["electra/encoder/layer_3/output/dense/bias"]),
    ({"untied_generator_embeddings": True}, 405, None,
     {"generator/embeddings/word_embeddings": [30522, 64],
      "generator/embeddings/token_type_embeddings": [2, 64],
      "generator/embeddings/position_embeddings": [512, 64],
      "generator/embeddings/LayerNorm/gamma": [64],
      "generator_predictions/dense/kernel": [64, 64],
      "generator_predictions/LayerNorm/beta": [64]}, ["generator/embeddings_project/kernel"]),
    ({"untied_generator": False}, 208, None,
     {"generator_predictions/dense/kernel": [256, 128],
      "discriminator_predictions/dense_1/kernel": [256, 1]},
     ["generator/encoder/layer_0/output/dense/bias"]),
    ({"electra_objective": False}, 204, None,
     {"generator_predictions/dense/kernel": [256, 128],
      "generator_predictions/output_bias": [30522]},
     ["discriminator_predictions/dense/kernel", "generator/embeddings_project/kernel"]),
    ({"uniform_generator": True}, 203, 13_549_057,
     {"discriminator_predictions/dense/kernel": [256, 256]},
     ["generator_predictions/output_bias", "generator/embeddings_project/kernel"]),
    ({"electric_objective": True, "electra_objective": False}, 596, None,
     {"generator_ltr/embeddings_project/kernel": [128, 64],
      "generator_rtl/embeddings_project/bias": [64],
      "generator_rtl/encoder/layer_11/attention/self/query/kernel": [64, 64],
      "cloze_predictions/dense/kernel": [128, 128], "cloze_predictions/output_bias": [30522]},
     ["generator_predictions/output_bias", "generator/embeddings_project/kernel"]),
], ids=["small++", "base", "large", "debug", "untied-embeddings", "tied-generator", "mlm-only",
        "uniform-generator", "electric"])
def test_variant_names(fast_init, vocab_file, hparams, count, params, shapes, absent):
  model = PretrainingModel(PretrainingConfig("m", "/nonexistent", vocab_file=vocab_file, **hparams))
  names = _shapes(model)
  assert len(names) == count
  for name, shape in shapes.items():
    assert names[name] == shape, name
  for name in absent:
    assert name not in names
  if params is not None:
    assert _num_params(model.named_variables()) == params
  if hparams.get("model_size") in ("base", "large"):
    disc = {n: v for n, v in model.named_variables().items()
            if n.startswith(("electra/", "discriminator_predictions/"))}
    expected_millions = {"base": 109.48, "large": 335.14}[hparams["model_size"]]
    assert round(_num_params(disc) / 1e6, 2) == expected_millions
  for name in names:
    assert name.startswith(("electra/", "generator", "discriminator_predictions/",
                            "cloze_predictions/"))
    assert "keras" not in name and ":" not in name
    # Keras-style auto names (dense_1, layer_norm_2, ...) only where the original has one.
    if re.search(r"(dense|layer_norm|embedding)_\d+(/|$)", name):
      assert name.startswith("discriminator_predictions/dense_1/"), name


# ----------------------------------------------------------------------------- losses vs numpy

def _check_electra_or_mlm(model, out, batch, objective):
  w = numpy_bert.weights_of(model)
  table = "electra/embeddings/word_embeddings"
  o = _numpy(out)
  ids, mask, seg = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
  positions, weights = o["masked_lm_positions"], o["masked_lm_weights"]
  # The generator input differs from the original only at selected slots, by [MASK].
  changed = o["masked_input_ids"] != ids
  assert np.all(o["masked_input_ids"][changed] == MASK)
  for b, t in zip(*np.nonzero(changed)):
    assert t in positions[b][weights[b] > 0]
  gen_scope = "generator" if objective == "electra" else "electra"
  gen_heads = 1 if objective == "electra" else 3
  gen_seq = numpy_bert.bert_forward(w, gen_scope, gen_heads, o["masked_input_ids"], mask, seg)
  reprs = np.take_along_axis(gen_seq, positions[..., None], axis=1)
  logits = numpy_bert.token_logits(w, "generator_predictions", table, reprs)
  np.testing.assert_allclose(o["mlm_logits"], logits, atol=1e-4, rtol=1e-5)
  mlm_loss, per_slot = numpy_bert.softmax_loss(o["mlm_logits"], o["masked_lm_ids"], weights)
  np.testing.assert_allclose(o["mlm_per_example_loss"], per_slot, rtol=1e-5)
  np.testing.assert_allclose(o["mlm_loss"], mlm_loss, rtol=1e-5)
  np.testing.assert_array_equal(o["mlm_preds"], np.argmax(o["mlm_logits"], -1))
  np.testing.assert_array_equal(o["masked_lm_ids"],
                                np.take_along_axis(ids, positions, 1) * (weights > 0))
  if objective == "mlm":
    assert o["disc_loss"] is None and o["sampled_ids"] is None
    np.testing.assert_allclose(o["total_loss"], mlm_loss, rtol=1e-5)
    return
  fake, updated = numpy_bert.scatter_ids(ids, o["sampled_ids"], positions * (weights > 0))
  np.testing.assert_array_equal(o["fake_input_ids"], fake)
  np.testing.assert_array_equal(o["disc_labels"], updated * (fake != ids))
  _check_disc(w, o, batch, numpy_bert.bert_forward(w, "electra", 3, fake, mask, seg), 0.0)
  np.testing.assert_allclose(o["total_loss"], mlm_loss + 50.0 * o["disc_loss"], rtol=1e-5)


def _check_disc(w, o, batch, disc_seq, extra_logits, clean=None):
  logits = numpy_bert.discriminator_logits(w, disc_seq) + extra_logits
  clean = np.ones_like(logits, bool) if clean is None else clean
  np.testing.assert_allclose(o["disc_logits"][clean], logits[clean], atol=1e-4, rtol=1e-5)
  np.testing.assert_allclose(o["disc_logits"][~clean], logits[~clean], atol=1e-2)
  z, y, m = o["disc_logits"], o["disc_labels"], batch["input_mask"]
  losses = numpy_bert.sigmoid_bce(z, y) * m
  np.testing.assert_allclose(o["disc_per_example_loss"], losses.sum(-1) / (1e-6 + m.sum(-1)),
                             rtol=1e-5)
  np.testing.assert_allclose(o["disc_loss"], losses.sum() / (1e-6 + m.sum()), rtol=1e-5)
  np.testing.assert_allclose(o["disc_probs"], 1 / (1 + np.exp(-z)), rtol=1e-5)
  np.testing.assert_array_equal(o["disc_preds"], (z > 0).astype(int))


@pytest.mark.parametrize("objective,hparams", [
    ("electra", {}), ("mlm", {"electra_objective": False})], ids=["electra", "mlm-only"])
def test_losses_match_numpy(vocab_file, batch, objective, hparams):
  model = PretrainingModel(_config(vocab_file, **hparams))
  numpy_bert.randomize(model, seed=3)
  out = model(_features(batch), training=False, seed=SEED)
  _check_electra_or_mlm(model, out, batch, objective)


def test_electric_losses_match_numpy(vocab_file, batch):
  config = _config(vocab_file, electric_objective=True, electra_objective=False)
  model = PretrainingModel(config)
  numpy_bert.randomize(model, seed=4)
  o = _numpy(model(_features(batch), training=False, seed=SEED))
  w = numpy_bert.weights_of(model)
  ids, mask, seg = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
  # Both towers read the ORIGINAL (unmasked) input.
  ltr = numpy_bert.bert_forward(w, "generator_ltr", 1, ids, mask, seg, ltr=True)
  rtl = numpy_bert.bert_forward(w, "generator_rtl", 1, ids, mask, seg, rtl=True)
  cloze = numpy_bert.token_logits(w, "cloze_predictions", "electra/embeddings/word_embeddings",
                                  numpy_bert.cloze_reprs(ltr, rtl))
  # Where rtl[t + 1] is a padding query (all keys masked), float32 -10000 + s
  # quantization limits agreement (see test_modeling); elsewhere exact.
  clean = np.roll(mask, -1, axis=1) == 1
  np.testing.assert_allclose(o["cloze_logits"][clean], cloze[clean], atol=1e-4, rtol=1e-5)
  np.testing.assert_allclose(o["cloze_logits"][~clean], cloze[~clean], atol=1e-2)
  candidates = (mask == 1) & ~np.isin(ids, [CLS, SEP, MASK])
  cloze_loss, _ = numpy_bert.softmax_loss(o["cloze_logits"], ids, candidates.astype(float))
  np.testing.assert_allclose(o["cloze_loss"], cloze_loss, rtol=1e-5)
  positions, weights = o["masked_lm_positions"], o["masked_lm_weights"]
  gathered = np.take_along_axis(o["cloze_logits"], positions[..., None], axis=1)
  np.testing.assert_array_equal(o["mlm_logits"], gathered)
  mlm_loss, _ = numpy_bert.softmax_loss(gathered, o["masked_lm_ids"], weights)
  np.testing.assert_allclose(o["mlm_loss"], mlm_loss, rtol=1e-5)
  fake, updated = numpy_bert.scatter_ids(ids, o["sampled_ids"], positions * (weights > 0))
  np.testing.assert_array_equal(o["fake_input_ids"], fake)
  np.testing.assert_array_equal(o["disc_labels"], updated)  # Every selected slot is noise.
  log_q = numpy_bert.electric_log_q(o["cloze_logits"], fake, config.mask_prob)
  disc_seq = numpy_bert.bert_forward(w, "electra", 3, fake, mask, seg)
  _check_disc(w, o, batch, disc_seq, log_q)
  np.testing.assert_allclose(o["total_loss"], cloze_loss + 50.0 * o["disc_loss"], rtol=1e-5)


def test_uniform_generator_samples_from_zero_logits(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file, uniform_generator=True))
  assert model.generator is None
  o = _numpy(model(_features(batch), training=False, seed=SEED))
  assert not np.any(o["mlm_logits"]) and o["mlm_logits"].shape[-1] == 30522
  np.testing.assert_allclose(o["mlm_loss"], math.log(30522), rtol=1e-5)
  np.testing.assert_allclose(o["total_loss"], math.log(30522) + 50 * o["disc_loss"], rtol=1e-5)
  assert len(np.unique(o["sampled_ids"])) > 0.9 * o["sampled_ids"].size


def test_tied_generator_is_the_discriminator(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file, untied_generator=False))
  assert model.generator is model.discriminator
  numpy_bert.randomize(model, seed=5)
  out = model(_features(batch), training=False, seed=SEED)
  w = numpy_bert.weights_of(model)
  o = _numpy(out)
  seq = numpy_bert.bert_forward(w, "electra", 3, o["masked_input_ids"], batch["input_mask"],
                                batch["segment_ids"])
  reprs = np.take_along_axis(seq, o["masked_lm_positions"][..., None], axis=1)
  np.testing.assert_allclose(
      o["mlm_logits"], numpy_bert.token_logits(w, "generator_predictions",
                                               "electra/embeddings/word_embeddings", reprs),
      atol=1e-4, rtol=1e-5)


def test_disallow_correct_never_samples_the_original(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file, disallow_correct=True))
  numpy_bert.randomize(model, seed=6, scale=1.0)  # Peaked logits: originals would win often.
  o = _numpy(model(_features(batch), training=True, seed=SEED))
  used = o["masked_lm_weights"] > 0
  assert np.all(o["sampled_ids"][used] != o["masked_lm_ids"][used])
  assert np.all(o["disc_labels"] == numpy_bert.scatter_ids(
      batch["input_ids"], o["sampled_ids"], o["masked_lm_positions"] * used)[1])


def test_every_trainable_variable_gets_a_gradient(vocab_file, batch):
  for hparams in ({}, {"electric_objective": True, "electra_objective": False}):
    model = PretrainingModel(_config(vocab_file, **hparams))
    variables = model.trainable_named_variables()
    with tf.GradientTape() as tape:
      loss = model(_features(batch), training=True, seed=SEED).total_loss
    grads = tape.gradient(loss, list(variables.values()))
    missing = [n for n, g in zip(variables, grads) if g is None]
    assert not missing


# ----------------------------------------------------------------------------- Electric roll

def test_electric_cloze_representation_excludes_own_token(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file, electric_objective=True, electra_objective=False))
  numpy_bert.randomize(model, seed=7)
  full = {k: v[:1] for k, v in batch.items()}  # Row 0 has no padding: S = 23 real tokens.
  assert full["input_mask"].all()

  def reps(input_ids):
    inputs = Inputs(tf.constant(input_ids), tf.constant(full["input_mask"]),
                    tf.constant(full["segment_ids"]))
    return model.generator(inputs, training=False).numpy()[0]  # [S, 2G]

  base = reps(full["input_ids"])
  last = full["input_ids"].shape[1] - 1
  for t in range(last + 1):
    perturbed = full["input_ids"].copy()
    perturbed[0, t] = 2000 + t
    changed = np.abs(reps(perturbed) - base).max(axis=-1) > 1e-6  # [S]
    # Only positions 0 and S-1 (the cyclic wrap-around) see their own token.
    assert changed[t] == (t in (0, last)), t
    assert changed[(t + 1) % (last + 1)] or changed[t - 1]


# ----------------------------------------------------------------------------- determinism, modes

def test_deterministic_given_seed_and_modes(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file))
  features = _features(batch)
  train_a = _numpy(model(features, training=True, seed=SEED))
  train_b = _numpy(model(features, training=True, seed=SEED))
  for key, value in train_a.items():
    np.testing.assert_array_equal(value, train_b[key], err_msg=key)
  other = _numpy(model(features, training=True, seed=tf.constant([5, 18])))
  assert not np.array_equal(other["masked_lm_positions"], train_a["masked_lm_positions"])
  eval_a = _numpy(model(features, training=False, seed=SEED))
  # Same seed, same masking and sampling draws; only dropout differs.
  np.testing.assert_array_equal(eval_a["masked_lm_positions"], train_a["masked_lm_positions"])
  np.testing.assert_array_equal(eval_a["masked_input_ids"], train_a["masked_input_ids"])
  assert np.abs(eval_a["mlm_logits"] - train_a["mlm_logits"]).max() > 1e-3
  graph = _numpy(tf.function(lambda f, s: model(f, training=True, seed=s))(features, SEED))
  np.testing.assert_allclose(graph["total_loss"], train_a["total_loss"], rtol=1e-5)
  np.testing.assert_array_equal(graph["sampled_ids"], train_a["sampled_ids"])


def test_xla_step_draws_like_eager(vocab_file, batch):
  model = PretrainingModel(_config(vocab_file))
  numpy_bert.randomize(model, seed=8)
  seed = tf.random.experimental.stateless_fold_in(SEED, 3)  # a seed computed in the graph
  step = tf.function(lambda f, s: model(f, training=True, seed=s), jit_compile=True)
  xla, eager = _numpy(step(_features(batch), seed)), _numpy(model(_features(batch), True, seed))
  # Same masks, samples and dropout (model/stateless_random.py); floats differ by rounding.
  for key, value in eager.items():
    if value is None:
      continue
    if np.issubdtype(value.dtype, np.floating):
      np.testing.assert_allclose(xla[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    else:
      np.testing.assert_array_equal(xla[key], value, err_msg=key)
  eval_out = tf.function(lambda f, s: model(f, training=False, seed=s),
                         jit_compile=True)(_features(batch), SEED)
  _check_electra_or_mlm(model, eval_out, batch, "electra")


def test_config_errors(vocab_file):
  with pytest.raises(ValueError, match="electric_objective needs two_tower_generator"):
    PretrainingModel(_config(vocab_file, electric_objective=True, two_tower_generator=False))
  with pytest.raises(ValueError, match="two_tower_generator needs"):
    PretrainingModel(_config(vocab_file, electra_objective=False, two_tower_generator=True))
  with pytest.raises(ValueError, match="mixed_precision"):
    config = _config(vocab_file)
    config.mixed_precision = "fp8"
    PretrainingModel(config)


def test_docstring_example_runs():
  runner = doctest.DocTestRunner()
  globs = {"tf": tf, "PretrainingConfig": PretrainingConfig, "PretrainingModel": PretrainingModel,
           "SpecialTokenIds": SpecialTokenIds}
  for test in doctest.DocTestFinder().find(PretrainingModel, "PretrainingModel", globs=globs):
    runner.run(test)
  assert runner.summarize(verbose=False).failed == 0
  assert runner.summarize(verbose=False).attempted >= 6


def test_sparse_softmax_cross_entropy_matches_numpy_and_tensorflow():
  from pretrain.pretraining_model import sparse_softmax_cross_entropy
  rng = np.random.default_rng(3)
  logits = (rng.normal(size=(2, 3, 50)) * [[[1.0]], [[30.0]]]).astype(np.float32)  # incl. peaky
  labels = rng.integers(0, 50, size=(2, 3)).astype(np.int32)
  upstream = rng.uniform(0.5, 2.0, size=(2, 3)).astype(np.float32)
  x = tf.constant(logits)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ours = sparse_softmax_cross_entropy(x, tf.constant(labels))
    theirs = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
    weighted_ours = tf.reduce_sum(ours * upstream)
    weighted_theirs = tf.reduce_sum(theirs * upstream)
  shifted = logits.astype(np.float64) - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  expected = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
  assert ours.shape == (2, 3)
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
  expected_grad = (np.exp(log_probs) - np.eye(50)[labels]) * upstream[..., None]
  np.testing.assert_allclose(tape.gradient(weighted_ours, x), expected_grad, atol=1e-6)
  np.testing.assert_allclose(tape.gradient(weighted_ours, x), tape.gradient(weighted_theirs, x),
                             atol=1e-6)
  # The exp weights the sampler re-uses: exp(logits - row max), and no gradient path.
  with tf.GradientTape() as tape:
    tape.watch(x)
    losses, exp_weights = sparse_softmax_cross_entropy(x, tf.constant(labels),
                                                       return_exp_weights=True)
    total = tf.reduce_sum(losses * upstream) + tf.reduce_sum(exp_weights)
  np.testing.assert_allclose(exp_weights, np.exp(shifted), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(losses, ours)
  np.testing.assert_allclose(tape.gradient(total, x), expected_grad, atol=1e-6)


def test_training_gradients_equal_those_with_tensorflows_cross_entropy_kernel(
    vocab_file, batch, monkeypatch):
  """The written-out MLM cross-entropy changes no gradient of a dropout-on training step."""
  from pretrain import pretraining_model
  model = PretrainingModel(_config(vocab_file))
  numpy_bert.randomize(model, seed=5)
  variables = model.trainable_named_variables()

  def gradients():
    with tf.GradientTape() as tape:
      loss = model(_features(batch), training=True, seed=SEED).total_loss
    return loss, dict(zip(variables, tape.gradient(loss, list(variables.values()))))
  ours_loss, ours = gradients()

  def tf_kernel(logits, labels, return_exp_weights=False):
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if not return_exp_weights:
      return losses
    # What the sampler computed for itself before it re-used the loss's exp.
    return losses, tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
  monkeypatch.setattr(pretraining_model, "sparse_softmax_cross_entropy", tf_kernel)
  tf_loss, theirs = gradients()
  np.testing.assert_allclose(ours_loss, tf_loss, rtol=1e-6)
  for name, grad in ours.items():
    if grad is None:
      assert theirs[name] is None, name
      continue
    grad, other = tf.convert_to_tensor(grad).numpy(), tf.convert_to_tensor(theirs[name]).numpy()
    # atol 1e-8: e.g. attention key biases have a zero true gradient (float noise ~1e-9).
    np.testing.assert_allclose(grad, other, rtol=1e-4,
                               atol=max(1e-4 * np.abs(other).max(), 1e-8), err_msg=name)
