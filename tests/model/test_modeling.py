"""Tests for model/modeling.py: config, primitives, and the encoder vs a numpy reference."""
import doctest
import json
import math
import re

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from model import modeling, stateless_random, tokenization
from model.modeling import BertConfig, BertModel, Embeddings
from tests.graph_inspection import xla_calls, xla_kernel_names
from tests.model import numpy_bert
from tests.model.real_batches import moby_dick_batch

# Odd sizes so a swapped dimension fails: H 42 = 3 heads x 14, I 37, E 26.
TINY = dict(hidden_size=42, num_hidden_layers=2, num_attention_heads=3, intermediate_size=37)
LENGTHS = [23, 9, 17]  # Real tokens per example; the rest is padding.
SEQ_LENGTH = 23


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
  return tokenization.FullTokenizer(vocab_file)


@pytest.fixture(scope="module")
def tiny_config(tokenizer):
  return BertConfig(vocab_size=len(tokenizer.vocab), **TINY)


@pytest.fixture(scope="module")
def batch(tokenizer, moby_dick_lines):
  return moby_dick_batch(tokenizer, moby_dick_lines, LENGTHS, SEQ_LENGTH, first_line=10)


def _run(model, batch, training=False, seed=None):
  return model(tf.constant(batch["input_ids"]), tf.constant(batch["input_mask"]),
               tf.constant(batch["segment_ids"]), training=training, seed=seed)


# ----------------------------------------------------------------------------- BertConfig

def test_bert_config_defaults_and_json_round_trip(tmp_path):
  default = BertConfig(vocab_size=30522)
  assert default.to_dict() == {
      "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
      "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
      "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
  config = BertConfig(vocab_size=99, hidden_size=42, num_hidden_layers=3, num_attention_heads=7,
                      intermediate_size=37, hidden_act="relu", hidden_dropout_prob=0.25,
                      attention_probs_dropout_prob=0.125, max_position_embeddings=64,
                      type_vocab_size=3, initializer_range=0.5)
  text = config.to_json_string()
  assert text.endswith("}\n") and text.startswith('{\n  "attention_probs_dropout_prob": 0.125,')
  assert list(json.loads(text)) == sorted(config.to_dict())
  path = tmp_path / "bert_config.json"
  path.write_text(text)
  restored = BertConfig.from_json_file(str(path))
  assert restored.to_dict() == config.to_dict()
  assert restored.to_json_string() == text


def test_bert_config_from_dict_keeps_unknown_keys_and_errors(tmp_path):
  config = BertConfig.from_dict({"vocab_size": 5, "hidden_size": 8, "embedding_size": 4})
  assert (config.vocab_size, config.hidden_size, config.embedding_size) == (5, 8, 4)
  assert config.num_hidden_layers == 12  # Unspecified fields keep the defaults.
  with pytest.raises(FileNotFoundError, match="does not exist"):
    BertConfig.from_json_file(str(tmp_path / "missing.json"))
  (tmp_path / "list.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match="JSON object"):
    BertConfig.from_json_file(str(tmp_path / "list.json"))


# ----------------------------------------------------------------------------- primitives

def test_gelu_is_fused_only_inside_the_context():
  x = tf.constant([0.5, -1.0])
  assert not xla_calls(tf.function(modeling.gelu).get_concrete_function(x).graph)
  with modeling.fused_elementwise():
    assert len(xla_calls(tf.function(modeling.gelu).get_concrete_function(x).graph)) == 1
    with modeling.fused_elementwise(False):  # nests and restores
      assert not xla_calls(tf.function(modeling.gelu).get_concrete_function(x).graph)
    assert xla_calls(tf.function(modeling.gelu).get_concrete_function(x).graph)
  assert not xla_calls(tf.function(modeling.gelu).get_concrete_function(x).graph)


@pytest.mark.parametrize("fused", [False, True], ids=["ops", "xla"])
def test_gelu_gradient_matches_autodiff_and_numpy(fused):
  """The hand-written GELU gradient equals Φ(x) + x·φ(x) and autodiff through erf."""
  with modeling.fused_elementwise(fused):
    _check_gelu()


def _check_gelu():
  x = np.linspace(-6, 6, 97).astype(np.float64)
  expected = 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
  x32 = tf.constant(x, tf.float32)
  upstream = tf.constant(np.linspace(0.5, 2.0, 97), tf.float32)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x32)
    ours = modeling.gelu(x32) * upstream
    autodiff = x32 * 0.5 * (1.0 + tf.math.erf(x32 / math.sqrt(2.0))) * upstream
  np.testing.assert_allclose(ours, x * 0.5 * (1.0 + erf(x / math.sqrt(2.0))) * upstream.numpy(),
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(tape.gradient(ours, x32), expected * upstream.numpy(), atol=2e-6)
  np.testing.assert_allclose(tape.gradient(ours, x32), tape.gradient(autodiff, x32), atol=2e-6)
  with tf.GradientTape() as tape:  # bf16 compute keeps its dtype and stays close
    x16 = tf.cast(x32, tf.bfloat16)
    tape.watch(x16)
    y16 = modeling.gelu(x16)
  grad16 = tape.gradient(y16, x16)
  assert y16.dtype == grad16.dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(grad16, tf.float32), expected, atol=0.03)


def test_activations_match_definitions():
  x = np.linspace(-5, 5, 41).astype(np.float32)
  exact_gelu = x * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
  np.testing.assert_allclose(modeling.get_activation("gelu")(tf.constant(x)), exact_gelu,
                             atol=1e-6)
  # The tanh approximation differs by up to ~1e-3 around |x| ~ 2; exact erf must not.
  tanh_gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
  assert np.max(np.abs(exact_gelu - tanh_gelu)) > 1e-4
  np.testing.assert_allclose(modeling.get_activation("relu")(tf.constant(x)), np.maximum(x, 0))
  np.testing.assert_allclose(modeling.get_activation("tanh")(tf.constant(x)), np.tanh(x),
                             atol=1e-6)
  for name in ("linear", "", None):
    np.testing.assert_array_equal(modeling.get_activation(name)(tf.constant(x)), x)
  with pytest.raises(ValueError, match="Unsupported activation: swish"):
    modeling.get_activation("swish")


def test_layer_norm_matches_numpy_with_eps_1e_12():
  rng = np.random.RandomState(0)
  # Rows with tiny variance make the epsilon visible: 1e-12 vs e.g. 1e-5.
  x = np.concatenate([rng.randn(3, 11), 1.0 + 1e-4 * rng.randn(2, 11)]).astype(np.float32)
  layer_norm = modeling.LayerNorm("t/LayerNorm", 11)
  gamma, beta = rng.randn(11).astype(np.float32), rng.randn(11).astype(np.float32)
  layer_norm.gamma.assign(gamma)
  layer_norm.beta.assign(beta)
  expected = numpy_bert.layer_norm(x.astype(np.float64), gamma, beta, eps=1e-12)
  np.testing.assert_allclose(layer_norm(tf.constant(x)), expected, rtol=2e-3, atol=2e-3)
  loose_eps = numpy_bert.layer_norm(x.astype(np.float64), gamma, beta, eps=1e-5)
  assert np.max(np.abs(loose_eps[3:] - expected[3:])) > 0.1
  assert sorted(layer_norm.named_variables()) == ["t/LayerNorm/beta", "t/LayerNorm/gamma"]


@pytest.mark.parametrize("ltr,rtl", [(False, False), (True, False), (False, True)],
                         ids=["bidirectional", "ltr", "rtl"])
def test_attention_bias_matches_numpy(ltr, rtl):
  input_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
  bias = modeling.attention_bias(tf.constant(input_mask), ltr=ltr, rtl=rtl).numpy()
  for b in range(2):
    expected = (1.0 - numpy_bert.attention_mask(input_mask[b], ltr, rtl)) * -10000.0
    np.testing.assert_array_equal(np.broadcast_to(bias[b, 0], [5, 5]), expected)


# ----------------------------------------------------------------------------- forward pass

@pytest.mark.parametrize("embedding_size,ltr,rtl", [
    (26, False, False), (26, True, False), (26, False, True), (None, False, False)],
    ids=["projected", "projected-ltr", "projected-rtl", "no-projection"])
def test_forward_matches_numpy_reference(tiny_config, batch, embedding_size, ltr, rtl):
  model = BertModel(tiny_config, "electra", embedding_size=embedding_size, ltr=ltr, rtl=rtl)
  numpy_bert.randomize(model, seed=1)
  has_projection = "electra/embeddings_project/kernel" in model.named_variables()
  assert has_projection == (embedding_size is not None)
  out = _run(model, batch)
  expected = numpy_bert.bert_forward(
      numpy_bert.weights_of(model), "electra", 3, batch["input_ids"], batch["input_mask"],
      batch["segment_ids"], ltr=ltr, rtl=rtl)
  actual = out.sequence_output.numpy()
  real = batch["input_mask"] == 1
  np.testing.assert_allclose(actual[real], expected[real], atol=1e-5)
  # An rtl query at a padding position has every key masked; its scores sit at
  # -10000 + s in float32 (resolution ~1e-3, as in the original), so those rows
  # match only to the quantization.
  np.testing.assert_allclose(actual[~real], expected[~real], atol=1e-5 if not rtl else 1e-3)
  np.testing.assert_array_equal(out.pooled_output, out.sequence_output[:, 0])
  assert len(out.all_layer_outputs) == 2
  np.testing.assert_array_equal(out.all_layer_outputs[-1], out.sequence_output)
  assert out.embedding_output.shape == [3, SEQ_LENGTH, 42]


def test_padding_does_not_change_real_positions(tiny_config, tokenizer, moby_dick_lines):
  model = BertModel(tiny_config, embedding_size=26)
  numpy_bert.randomize(model, seed=2)
  short = moby_dick_batch(tokenizer, moby_dick_lines, [9, 12], 12)
  padded = moby_dick_batch(tokenizer, moby_dick_lines, [9, 12], 31)  # Variable length.
  out_short = _run(model, short).sequence_output.numpy()
  out_padded = _run(model, padded).sequence_output.numpy()
  np.testing.assert_allclose(out_padded[0, :9], out_short[0, :9], atol=1e-5)
  np.testing.assert_allclose(out_padded[1, :12], out_short[1, :12], atol=1e-5)
  expected = numpy_bert.bert_forward(numpy_bert.weights_of(model), "electra", 3,
                                     padded["input_ids"], padded["input_mask"],
                                     padded["segment_ids"])
  np.testing.assert_allclose(out_padded, expected, atol=1e-5)


def test_eager_tf_function_and_xla_agree_in_eval(tiny_config, batch):
  model = BertModel(tiny_config, embedding_size=26, ltr=True)
  args = [tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")]
  eager = model(*args, training=False).sequence_output
  graph = tf.function(lambda *a: model(*a, training=False).sequence_output)(*args)
  xla = tf.function(lambda *a: model(*a, training=False).sequence_output,
                    jit_compile=True)(*args)
  np.testing.assert_allclose(graph, eager, atol=1e-6)
  np.testing.assert_allclose(xla, eager, atol=1e-5)


def test_dropout_only_in_training_and_deterministic_given_seed(tiny_config, batch):
  model = BertModel(tiny_config, embedding_size=26)
  seed = tf.constant([7, 11])
  eval_a = _run(model, batch, False, seed).sequence_output
  eval_b = _run(model, batch, False, tf.constant([1, 2])).sequence_output
  np.testing.assert_array_equal(eval_a, eval_b)  # Eval ignores the seed: no dropout.
  train_a = _run(model, batch, True, seed).sequence_output
  train_b = _run(model, batch, True, seed).sequence_output
  np.testing.assert_array_equal(train_a, train_b)
  train_other = _run(model, batch, True, tf.constant([7, 12])).sequence_output
  assert np.max(np.abs(train_a - train_other)) > 1e-2
  assert np.max(np.abs(train_a - eval_a)) > 1e-2
  graph = tf.function(lambda s: _run(model, batch, True, s).sequence_output)(seed)
  np.testing.assert_allclose(graph, train_a, atol=1e-6)
  xla = tf.function(lambda s: _run(model, batch, True, s).sequence_output, jit_compile=True)
  np.testing.assert_array_equal(xla(seed), xla(seed))  # Deterministic under XLA too.


def test_dropout_rate_statistics():
  x = tf.ones([200, 300])
  dropped = modeling.dropout(x, 0.1, True, tf.constant([3, 4])).numpy()
  kept = dropped != 0
  # 16-bit decisions: the realised rate is round(0.1 * 2^16) / 2^16.
  assert abs(kept.mean() - (1 - 6554 / 65536)) < 0.005  # ~3.5 sigma at n = 60000
  np.testing.assert_allclose(dropped[kept], 65536 / (65536 - 6554), rtol=1e-6)
  np.testing.assert_array_equal(modeling.dropout(x, 0.1, False, tf.constant([3, 4])), x)
  # Unbiased: E[dropout(x)] = x (the scale matches the realised keep rate).
  big = modeling.dropout(tf.ones([1000, 1000]), 0.25, True, tf.constant([5, 6])).numpy()
  assert abs(big.mean() - 1.0) < 0.003  # sd of the mean ~ 0.00058


def test_dropout_matches_numpy_reference_of_the_16_bit_scheme():
  """Element i is kept iff the i-th uint16 of the seed's uint32 stream is >= t."""
  rng = np.random.default_rng(0)
  seed = tf.constant([11, 13])
  for shape, rate in [((7, 5, 3), 0.1), ((9,), 0.5), ((2, 4, 8), 0.03)]:  # odd and even sizes
    x = rng.normal(size=shape).astype(np.float32)
    n = x.size
    bits = stateless_random.keyed_bits([(n + 1) // 2], seed).numpy()
    halves = bits.astype("<u4").view("<u2")[:n].reshape(shape)  # low half first (TF bitcast)
    t = round(rate * 65536)
    expected = np.where(halves >= t, x * np.float32(65536 / (65536 - t)), 0.0)
    np.testing.assert_allclose(modeling.dropout(tf.constant(x), rate, True, seed).numpy(),
                               expected, rtol=1e-6)


def test_bf16_compute_close_to_fp32(tiny_config, batch):
  fp32 = BertModel(tiny_config, embedding_size=26)
  bf16 = BertModel(tiny_config, embedding_size=26, compute_dtype=tf.bfloat16)
  bf16_vars = bf16.named_variables()
  for name, variable in fp32.named_variables().items():
    bf16_vars[name].assign(variable)
    assert bf16_vars[name].dtype == tf.float32  # Variables stay float32.
  expected = _run(fp32, batch).sequence_output.numpy()
  out = _run(bf16, batch).sequence_output
  assert out.dtype == tf.bfloat16
  diff = np.abs(tf.cast(out, tf.float32).numpy() - expected)
  assert diff.mean() < 0.03 and diff.max() < 0.3
  xla = tf.function(lambda: _run(bf16, batch, True, tf.constant([1, 2])).sequence_output,
                    jit_compile=True)()
  assert xla.dtype == tf.bfloat16 and np.all(np.isfinite(tf.cast(xla, tf.float32)))


# ----------------------------------------------------------------------------- fused inference

def _eval_function(model, fused: bool):
  """The eval forward pass as a tf.function traced for any batch and length."""
  spec = tf.TensorSpec([None, None], tf.int32)
  fn = tf.function(lambda ids, mask, segments: model(ids, mask, segments,
                                                     training=False).sequence_output,
                   input_signature=[spec] * 3, autograph=False)
  with modeling.fused_inference(fused):
    return fn.get_concrete_function()


@pytest.mark.parametrize("ltr", [False, True], ids=["bidirectional", "ltr"])
def test_fused_inference_matches_numpy_reference(tiny_config, batch, ltr):
  model = BertModel(tiny_config, embedding_size=26, ltr=ltr)
  numpy_bert.randomize(model, seed=3)
  fused = _eval_function(model, True)
  assert not xla_calls(_eval_function(model, False).graph)
  per_layer = ["bias_add_layer_norm", "bias_add_layer_norm", "bias_gelu", "masked_softmax",
               "split_qkv"]
  assert xla_kernel_names(fused.graph) == sorted(per_layer * 2)
  args = [tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")]
  expected = numpy_bert.bert_forward(numpy_bert.weights_of(model), "electra", 3,
                                     batch["input_ids"], batch["input_mask"],
                                     batch["segment_ids"], ltr=ltr)
  np.testing.assert_allclose(fused(*args), expected, atol=1e-5)
  # Another batch size and length through the same graph (shapes unknown when traced).
  np.testing.assert_allclose(fused(*[a[1:, :17] for a in args]),
                             numpy_bert.bert_forward(
                                 numpy_bert.weights_of(model), "electra", 3,
                                 batch["input_ids"][1:, :17], batch["input_mask"][1:, :17],
                                 batch["segment_ids"][1:, :17], ltr=ltr), atol=1e-5)


def test_fused_inference_bf16_within_rounding_and_training_unfused(tiny_config, batch):
  model = BertModel(tiny_config, embedding_size=26, compute_dtype=tf.bfloat16)
  numpy_bert.randomize(model, seed=4)
  args = [tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")]
  plain = tf.cast(_eval_function(model, False)(*args), tf.float32).numpy()
  fused = _eval_function(model, True)(*args)
  assert fused.dtype == tf.bfloat16
  expected = numpy_bert.bert_forward(numpy_bert.weights_of(model), "electra", 3,
                                     batch["input_ids"], batch["input_mask"],
                                     batch["segment_ids"])
  fused_error = np.abs(tf.cast(fused, tf.float32).numpy() - expected)
  plain_error = np.abs(plain - expected)
  assert fused_error.mean() <= 1.1 * plain_error.mean() and fused_error.max() < 0.3
  # Training passes keep the plain ops around dropout; only bias + GELU stays one kernel.
  with modeling.fused_inference():
    train_graph = tf.function(lambda s: model(*args, training=True, seed=s).sequence_output,
                              autograph=False).get_concrete_function(tf.constant([1, 2])).graph
  assert xla_kernel_names(train_graph) == ["bias_gelu"] * 2


def test_dense_adds_bias_to_the_2d_product_outside_the_training_step():
  """MatMul -> BiasAdd -> GELU on [N, out], then the reshape: the order grappler's
  remapper fuses into one oneDNN op; the trainer's step keeps bias after reshape."""
  dense = modeling.Dense("d", 6, 5, activation=modeling.gelu)
  x = tf.random.normal([2, 3, 6])

  def bias_input_op(fused_elementwise):
    fn = tf.function(dense, autograph=False)
    with modeling.fused_elementwise(fused_elementwise):
      graph = fn.get_concrete_function(x).graph
    (bias_add,) = [op for op in graph.get_operations() if op.type == "BiasAdd"]
    return bias_add.inputs[0].op.type

  assert bias_input_op(False) == "MatMul"
  assert bias_input_op(True) == "Reshape"
  expected = modeling.gelu(tf.reshape(tf.reshape(x, [6, 6]) @ dense.kernel + dense.bias,
                                      [2, 3, 5]))
  np.testing.assert_allclose(dense(x), expected, atol=1e-6)
  with modeling.fused_elementwise():
    np.testing.assert_allclose(dense(x), expected, atol=1e-6)


def test_fused_inference_nests_and_restores():
  assert not modeling.inference_fusion_enabled()
  with modeling.fused_inference():
    assert modeling.inference_fusion_enabled() and modeling.elementwise_fusion_enabled()
    with modeling.fused_inference(False):
      assert not modeling.inference_fusion_enabled()
      assert not modeling.elementwise_fusion_enabled()
    assert modeling.inference_fusion_enabled()
  assert not modeling.inference_fusion_enabled() and not modeling.elementwise_fusion_enabled()


# ----------------------------------------------------------------------------- names & sharing

def test_variable_names_are_tf1_names(tiny_config):
  model = BertModel(tiny_config, "generator", embedding_size=26,
                    embeddings=Embeddings(tiny_config, 26, "electra/embeddings"))
  names = model.named_variables()
  expected_layer = {
      f"attention/{part}" for part in (
          "self/query/kernel", "self/query/bias", "self/key/kernel", "self/key/bias",
          "self/value/kernel", "self/value/bias", "output/dense/kernel", "output/dense/bias",
          "output/LayerNorm/beta", "output/LayerNorm/gamma")} | {
              "intermediate/dense/kernel", "intermediate/dense/bias", "output/dense/kernel",
              "output/dense/bias", "output/LayerNorm/beta", "output/LayerNorm/gamma"}
  layer_0 = {n[len("generator/encoder/layer_0/"):] for n in names
             if n.startswith("generator/encoder/layer_0/")}
  assert layer_0 == expected_layer
  assert names["generator/embeddings_project/kernel"].shape == [26, 42]
  assert names["generator/encoder/layer_1/intermediate/dense/kernel"].shape == [42, 37]
  assert names["electra/embeddings/word_embeddings"].shape == [tiny_config.vocab_size, 26]
  assert names["electra/embeddings/position_embeddings"].shape == [512, 26]
  for name, variable in names.items():
    assert not re.search(r"dense_\d+$|:0|keras", name), name
    assert variable.name == name + ":0"


def test_shared_embeddings_object_ties_weights(tiny_config, batch):
  shared = Embeddings(tiny_config, 26)
  gen_config = BertConfig.from_dict({**tiny_config.to_dict(), "hidden_size": 14,
                                     "num_attention_heads": 1, "intermediate_size": 19})
  generator = BertModel(gen_config, "generator", embeddings=shared)
  discriminator = BertModel(tiny_config, "electra", embeddings=shared)
  assert generator.embedding_table is discriminator.embedding_table
  with tf.GradientTape() as tape:
    loss = (tf.reduce_sum(_run(generator, batch).sequence_output)
            + tf.reduce_sum(_run(discriminator, batch).sequence_output ** 2))
  grad = tape.gradient(loss, shared.embedding_table)
  assert grad is not None
  with pytest.raises(ValueError, match="conflicts with the width"):
    BertModel(tiny_config, "x", embedding_size=30, embeddings=shared)


def test_initializers_follow_spec(tiny_config):
  model = BertModel(BertConfig(vocab_size=3000, hidden_size=128, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=300), embedding_size=64)
  v = {n: x.numpy() for n, x in model.named_variables().items()}
  for name in ("electra/embeddings/word_embeddings",
               "electra/encoder/layer_0/attention/self/query/kernel",
               "electra/encoder/layer_0/intermediate/dense/kernel"):
    assert np.max(np.abs(v[name])) <= 0.04 + 1e-7  # Truncated at 2 stddev.
    assert abs(v[name].std() - 0.02 * 0.88) < 0.002  # std of N(0, 1) cut at ±2 is 0.88.
  limit = math.sqrt(6 / (64 + 128))  # Glorot-uniform embeddings_project.
  kernel = v["electra/embeddings_project/kernel"]
  assert np.max(np.abs(kernel)) <= limit and np.max(np.abs(kernel)) > 0.9 * limit
  assert not np.any(v["electra/embeddings_project/bias"])
  np.testing.assert_array_equal(v["electra/encoder/layer_0/output/LayerNorm/gamma"], 1.0)


# ----------------------------------------------------------------------------- errors & docs

def test_errors(tiny_config, batch):
  with pytest.raises(ValueError, match=r"hidden size \(42\) is not a multiple .* \(4\)"):
    BertModel(BertConfig.from_dict({**tiny_config.to_dict(), "num_attention_heads": 4}))
  with pytest.raises(ValueError, match="compute_dtype"):
    BertModel(tiny_config, compute_dtype=tf.float64)
  small_positions = BertConfig.from_dict({**tiny_config.to_dict(), "max_position_embeddings": 16})
  model = BertModel(small_positions)
  with pytest.raises(ValueError, match="exceeds max_position_embeddings 16"):
    _run(model, batch)
  with pytest.raises(ValueError, match="Unsupported activation"):
    BertModel(BertConfig.from_dict({**tiny_config.to_dict(), "hidden_act": "swishy"}))


def test_docstring_example_runs():
  finder = doctest.DocTestFinder()
  runner = doctest.DocTestRunner()
  for test in finder.find(BertModel, "BertModel", globs={"tf": tf, **vars(modeling)}):
    runner.run(test)
  assert runner.summarize(verbose=False).failed == 0
  assert runner.summarize(verbose=False).attempted >= 4
