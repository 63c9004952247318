"""Tests of model/hf_conversion.py: safetensors I/O and the transformers ELECTRA layout.

References: the transformers ELECTRA state-dict keys and shapes as documented
by `modeling_electra.py` (written out below by hand), the safetensors format
definition (checked byte by byte), an independent numpy re-implementation of
transformers' ElectraForPreTraining / ElectraForMaskedLM forward pass reading
HF keys, the golden ELECTRA-Small checkpoint names (docs/checkpoints.md#pre-training-variables),
and, when installed, the `safetensors`, `torch` and `transformers` packages themselves.
"""
import json
import logging
import math
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

import configure_pretraining
from model import checkpointing, hf_conversion, tokenization
from model.modeling import BertConfig, BertModel, Dense
from pretrain.pretrain_helpers import SpecialTokenIds
from pretrain.pretraining_model import DiscriminatorHead, PretrainingModel, TokenPredictionsHead
from tests.conftest import TEST_DATA
from tests.hf_tokenizers import hf_tokenizers_from_dir
from tests.model.real_batches import moby_dick_batch

V = 30522  # The real uncased vocabulary.
TINY = {"hidden_size": 18, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 37}


@pytest.fixture(autouse=True)
def _electra_log_propagates(monkeypatch):
  monkeypatch.setattr(logging.getLogger("electra"), "propagate", True)


def _randomize(module, seed: int) -> None:
  """O(1) random weights, so a transposed or swapped tensor changes the outputs."""
  rng = np.random.RandomState(seed)
  for name, variable in module.named_variables().items():
    value = 0.3 * rng.randn(*variable.shape)
    if name.endswith("/gamma"):
      value += 1.0
    variable.assign(value.astype(np.float32))


def _pretraining_model(embedding_size=12, seed=0, **overrides) -> PretrainingModel:
  config = configure_pretraining.PretrainingConfig(
      "tiny", "/nonexistent", model_hparam_overrides=TINY, embedding_size=embedding_size,
      generator_hidden_size=0.5, **overrides)
  model = PretrainingModel(config, SpecialTokenIds(101, 102, 103))
  _randomize(model, seed)
  return model


def _generator_config(model: PretrainingModel) -> BertConfig:
  return model.generator.config


# ----------------------------------------------------------------------------
# The transformers state-dict layout, written out from its documented key names
# ----------------------------------------------------------------------------

def _expected_hf_layout(kind, V, E, H, I, P=512, T=2, L=2, prefix="electra."):
  """{key: shape} of ElectraForPreTraining / ElectraForMaskedLM (modeling_electra.py)."""
  p = prefix
  out = {
      f"{p}embeddings.word_embeddings.weight": (V, E),
      f"{p}embeddings.position_embeddings.weight": (P, E),
      f"{p}embeddings.token_type_embeddings.weight": (T, E),
      f"{p}embeddings.LayerNorm.weight": (E,),
      f"{p}embeddings.LayerNorm.bias": (E,),
  }
  if E != H:
    out[f"{p}embeddings_project.weight"] = (H, E)  # nn.Linear(E, H): weight [out, in].
    out[f"{p}embeddings_project.bias"] = (H,)
  for k in range(L):
    layer = f"{p}encoder.layer.{k}."
    out.update({
        layer + "attention.self.query.weight": (H, H),
        layer + "attention.self.query.bias": (H,),
        layer + "attention.self.key.weight": (H, H),
        layer + "attention.self.key.bias": (H,),
        layer + "attention.self.value.weight": (H, H),
        layer + "attention.self.value.bias": (H,),
        layer + "attention.output.dense.weight": (H, H),
        layer + "attention.output.dense.bias": (H,),
        layer + "attention.output.LayerNorm.weight": (H,),
        layer + "attention.output.LayerNorm.bias": (H,),
        layer + "intermediate.dense.weight": (I, H),
        layer + "intermediate.dense.bias": (I,),
        layer + "output.dense.weight": (H, I),
        layer + "output.dense.bias": (H,),
        layer + "output.LayerNorm.weight": (H,),
        layer + "output.LayerNorm.bias": (H,),
    })
  if kind == "discriminator":
    out.update({
        "discriminator_predictions.dense.weight": (H, H),
        "discriminator_predictions.dense.bias": (H,),
        "discriminator_predictions.dense_prediction.weight": (1, H),
        "discriminator_predictions.dense_prediction.bias": (1,),
    })
  elif kind == "generator":
    # generator_lm_head.weight [V, E] is tied to the word embeddings (not saved).
    out.update({
        "generator_predictions.dense.weight": (E, H),
        "generator_predictions.dense.bias": (E,),
        "generator_predictions.LayerNorm.weight": (E,),
        "generator_predictions.LayerNorm.bias": (E,),
        "generator_lm_head.bias": (V,),
    })
  return out


@pytest.mark.parametrize("embedding_size", [12, None])
def test_export_layout_equals_transformers_state_dict(embedding_size):
  model = _pretraining_model(embedding_size=embedding_size)
  variables = model.named_variables()
  disc = hf_conversion.to_hf(variables, "discriminator", model.bert_config)
  E = embedding_size or 18
  assert {k: v.shape for k, v in disc.tensors.items()} == _expected_hf_layout(
      "discriminator", V, E, 18, 37)
  gen_config = _generator_config(model)
  assert (gen_config.hidden_size, gen_config.intermediate_size) == (9, 36)
  gen = hf_conversion.to_hf(variables, "generator", gen_config, encoder_scope="generator")
  assert {k: v.shape for k, v in gen.tensors.items()} == _expected_hf_layout(
      "generator", V, E, 9, 36)
  assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in gen.tensors.values())
  # ElectraModel (no head) has the same keys without the "electra." prefix.
  enc = hf_conversion.to_hf(variables, "encoder", model.bert_config)
  assert {k: v.shape for k, v in enc.tensors.items()} == _expected_hf_layout(
      "encoder", V, E, 18, 37, prefix="")


def test_export_values_are_transposed_kernels_and_shared_embeddings():
  model = _pretraining_model()
  v = {n: x.numpy() for n, x in model.named_variables().items()}
  disc = hf_conversion.to_hf(v, "discriminator", model.bert_config).tensors
  np.testing.assert_array_equal(disc["electra.encoder.layer.1.intermediate.dense.weight"],
                                v["electra/encoder/layer_1/intermediate/dense/kernel"].T)
  np.testing.assert_array_equal(disc["electra.embeddings.LayerNorm.weight"],
                                v["electra/embeddings/LayerNorm/gamma"])
  np.testing.assert_array_equal(disc["discriminator_predictions.dense_prediction.weight"],
                                v["discriminator_predictions/dense_1/kernel"].T)
  gen = hf_conversion.to_hf(v, "generator", _generator_config(model),
                            encoder_scope="generator").tensors
  # The generator's embeddings ARE the shared electra/embeddings
  # (docs/checkpoints.md#hugging-face-conversion).
  np.testing.assert_array_equal(gen["electra.embeddings.word_embeddings.weight"],
                                v["electra/embeddings/word_embeddings"])
  np.testing.assert_array_equal(gen["electra.embeddings_project.weight"],
                                v["generator/embeddings_project/kernel"].T)
  np.testing.assert_array_equal(gen["generator_lm_head.bias"],
                                v["generator_predictions/output_bias"])


def test_hf_config_fields():
  model = _pretraining_model()
  config = hf_conversion.to_hf(model.named_variables(), "generator", _generator_config(model),
                               encoder_scope="generator").config
  assert config["architectures"] == ["ElectraForMaskedLM"]
  expected = {"model_type": "electra", "vocab_size": V, "embedding_size": 12, "hidden_size": 9,
              "num_hidden_layers": 2, "num_attention_heads": 1, "intermediate_size": 36,
              "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
              "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
              "pad_token_id": 0, "position_embedding_type": "absolute",
              "tie_word_embeddings": True}
  assert {k: config[k] for k in expected} == expected


def test_all_electra_small_checkpoint_names_map():
  """The 402 trainable names of a default ELECTRA-Small pre-training checkpoint (golden list)."""
  golden = {}
  with open(os.path.join(TEST_DATA, "checkpoint_names", "electra_small_pretraining.txt")) as f:
    for line in f:
      name, shape = line.rstrip("\n").split("\t")
      golden[name] = np.zeros(json.loads(shape), np.float32)
  assert len(golden) == 402
  disc_config = BertConfig(V, hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                           intermediate_size=1024)
  gen_config = BertConfig(V, hidden_size=64, num_hidden_layers=12, num_attention_heads=1,
                          intermediate_size=256)
  used = set()
  for kind, config, scope in (("discriminator", disc_config, "electra"),
                              ("generator", gen_config, "generator")):
    layout = hf_conversion.tensor_layout(kind, hf_conversion._dims(config, 128), scope)
    used |= {m.tf_name for m in layout}
    model = hf_conversion.to_hf(golden, kind, config, encoder_scope=scope)
    assert len(model.tensors) == {"discriminator": 203, "generator": 204}[kind]
  assert used == set(golden)


# ----------------------------------------------------------------------------
# Numerical equivalence with transformers' forward pass (independent numpy)
# ----------------------------------------------------------------------------

def _gelu(x):
  return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _linear(t, name, x):
  """torch.nn.Linear: y = x Wᵀ + b with W [out, in]."""
  return x @ t[name + ".weight"].astype(np.float64).T + t[name + ".bias"]


def _ln(t, name, x, eps=1e-12):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * t[name + ".weight"] + t[name + ".bias"]


def _hf_electra_model(t, config, ids, mask, seg, p="electra."):
  """ElectraModel.forward in eval mode, from HF keys (float64)."""
  seq = ids.shape[1]
  x = (t[p + "embeddings.word_embeddings.weight"][ids]
       + t[p + "embeddings.token_type_embeddings.weight"][seg]
       + t[p + "embeddings.position_embeddings.weight"][np.arange(seq)][None])
  x = _ln(t, p + "embeddings.LayerNorm", x.astype(np.float64))
  if p + "embeddings_project.weight" in t:
    x = _linear(t, p + "embeddings_project", x)
  heads = config["num_attention_heads"]
  d = config["hidden_size"] // heads
  # Extended attention mask: 0 for kept keys, the dtype's minimum for padding.
  bias = (1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min
  for k in range(config["num_hidden_layers"]):
    layer = f"{p}encoder.layer.{k}."

    def split(y):
      return y.reshape(y.shape[0], seq, heads, d).transpose(0, 2, 1, 3)  # [B, N, S, D]
    q, kk, v = (split(_linear(t, layer + "attention.self." + n, x))
                for n in ("query", "key", "value"))
    scores = q @ kk.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], seq, -1)
    attn = _ln(t, layer + "attention.output.LayerNorm",
               _linear(t, layer + "attention.output.dense", context) + x)
    inner = _gelu(_linear(t, layer + "intermediate.dense", attn))
    x = _ln(t, layer + "output.LayerNorm", _linear(t, layer + "output.dense", inner) + attn)
  return x


def _hf_discriminator_logits(t, config, ids, mask, seg):
  h = _hf_electra_model(t, config, ids, mask, seg)
  h = _gelu(_linear(t, "discriminator_predictions.dense", h))
  return _linear(t, "discriminator_predictions.dense_prediction", h)[..., 0]


def _hf_generator_logits(t, config, ids, mask, seg):
  h = _hf_electra_model(t, config, ids, mask, seg)
  h = _ln(t, "generator_predictions.LayerNorm",
          _gelu(_linear(t, "generator_predictions.dense", h)))
  # generator_lm_head: weight tied to the word embeddings, own bias.
  return h @ t["electra.embeddings.word_embeddings.weight"].T + t["generator_lm_head.bias"]


@pytest.fixture(scope="module")
def real_batch(vocab_file, moby_dick_lines):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  return moby_dick_batch(tokenizer, moby_dick_lines, lengths=[11, 7, 9], seq_length=11)


def _our_logits(model, batch):
  ids, mask, seg = (tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids"))
  disc = model.discriminator(ids, mask, seg, training=False).sequence_output
  gen = model.generator(ids, mask, seg, training=False).sequence_output
  return model.discriminator_head(disc).numpy(), model.generator_head(gen).numpy()


def test_exported_weights_reproduce_our_logits_under_transformers_semantics(real_batch):
  model = _pretraining_model(seed=3)
  ours_disc, ours_gen = _our_logits(model, real_batch)
  ids, mask, seg = real_batch["input_ids"], real_batch["input_mask"], real_batch["segment_ids"]
  disc = hf_conversion.to_hf(model.named_variables(), "discriminator", model.bert_config)
  gen = hf_conversion.to_hf(model.named_variables(), "generator", _generator_config(model),
                            encoder_scope="generator")
  real = mask.astype(bool)
  hf_disc = _hf_discriminator_logits(disc.tensors, disc.config, ids, mask, seg)
  np.testing.assert_allclose(ours_disc[real], hf_disc[real], rtol=1e-4, atol=1e-4)
  hf_gen = _hf_generator_logits(gen.tensors, gen.config, ids, mask, seg)
  np.testing.assert_allclose(ours_gen[real], hf_gen[real], rtol=1e-4, atol=2e-4)
  assert np.abs(hf_disc[real]).max() > 0.5  # Not a degenerate comparison.


def test_transformers_loads_export_and_matches_logits(tmp_path, real_batch, vocab_file):
  try:
    import torch
    import transformers
  except ImportError as e:
    pytest.skip(f"torch and transformers are optional and not installed ({e}); the numpy "
                "re-implementation test covers the same semantics.")
  model = _pretraining_model(seed=4)
  ours_disc, ours_gen = _our_logits(model, real_batch)
  for kind, config, scope, cls, ours in (
      ("discriminator", model.bert_config, "electra", transformers.ElectraForPreTraining,
       ours_disc),
      ("generator", _generator_config(model), "generator", transformers.ElectraForMaskedLM,
       ours_gen)):
    out = str(tmp_path / kind)
    hf_conversion.save_hf_dir(out, hf_conversion.to_hf(model.named_variables(), kind, config,
                                                       encoder_scope=scope), vocab_file)
    hf_model = cls.from_pretrained(out).eval()
    with torch.no_grad():
      logits = hf_model(**{k: torch.tensor(real_batch[n], dtype=torch.long) for k, n in (
          ("input_ids", "input_ids"), ("attention_mask", "input_mask"),
          ("token_type_ids", "segment_ids"))}).logits.numpy()
    real = real_batch["input_mask"].astype(bool)
    np.testing.assert_allclose(ours[real], logits[real], rtol=1e-4, atol=2e-4)
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "discriminator"))
  ours_tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  text = "Call me Ishmael. Some years ago--never mind how long precisely"
  assert tokenizer(text)["input_ids"][1:-1] == ours_tok.convert_tokens_to_ids(
      ours_tok.tokenize(text))


def test_import_transformers_save_pretrained(tmp_path, real_batch):
  try:
    import torch
    import transformers
  except ImportError as e:
    pytest.skip(f"torch and transformers are optional and not installed ({e}); "
                "test_import_hand_made_hf_dir_runs_like_transformers covers the layout.")
  torch.manual_seed(0)
  config = transformers.ElectraConfig(vocab_size=V, embedding_size=10, hidden_size=15,
                                      num_hidden_layers=2, num_attention_heads=5,
                                      intermediate_size=23, max_position_embeddings=16,
                                      initializer_range=0.3)
  ids, mask, seg = real_batch["input_ids"], real_batch["input_mask"], real_batch["segment_ids"]
  torch_inputs = {"input_ids": torch.tensor(ids, dtype=torch.long),
                  "attention_mask": torch.tensor(mask, dtype=torch.long),
                  "token_type_ids": torch.tensor(seg, dtype=torch.long)}
  real = mask.astype(bool)
  for cls, kind in ((transformers.ElectraForPreTraining, "discriminator"),
                    (transformers.ElectraForMaskedLM, "generator")):
    hf_model = cls(config).eval()
    with torch.no_grad():
      for p in hf_model.parameters():  # LayerNorm/bias init is trivial: make all random.
        p.add_(0.1 * torch.randn_like(p))
      expected = hf_model(**torch_inputs).logits.numpy()
    for safe in (True, False):
      out = str(tmp_path / f"{kind}_{safe}")
      if safe:
        hf_model.save_pretrained(out)
        assert os.path.isfile(os.path.join(out, "model.safetensors"))
      else:  # transformers < 5 layout: a torch pickle of the full state dict.
        hf_model.config.save_pretrained(out)
        torch.save(hf_model.state_dict(), os.path.join(out, "pytorch_model.bin"))
      loaded = hf_conversion.load_hf_dir(out)
      imported = hf_conversion.from_hf(loaded.tensors, loaded.config, source=out)
      assert imported.model_type == kind
      bert_config = imported.bert_config
      encoder = BertModel(bert_config, embedding_size=imported.embedding_size)
      if kind == "discriminator":
        head = DiscriminatorHead(bert_config)
      else:
        head = TokenPredictionsHead(bert_config, 15, encoder.embedding_table,
                                    "generator_predictions")
      variables = {**encoder.named_variables(), **head.named_variables()}
      assert sorted(variables) == sorted(imported.variables)
      for name, var in variables.items():
        var.assign(imported.variables[name])
      hidden = encoder(tf.constant(ids), tf.constant(mask), tf.constant(seg), False)
      ours = head(hidden.sequence_output).numpy()
      np.testing.assert_allclose(ours[real], expected[real], rtol=1e-4, atol=2e-4)


# ----------------------------------------------------------------------------
# Round trip and import
# ----------------------------------------------------------------------------

def test_export_import_round_trip_is_bit_identical():
  model = _pretraining_model(seed=5)
  original = {n: v.numpy() for n, v in model.named_variables().items()}
  disc = hf_conversion.to_hf(original, "discriminator", model.bert_config)
  gen = hf_conversion.to_hf(original, "generator", _generator_config(model),
                            encoder_scope="generator")
  back_disc = hf_conversion.from_hf(disc.tensors, disc.config)
  assert back_disc.model_type == "discriminator"
  back_gen = hf_conversion.from_hf(gen.tensors, gen.config, encoder_scope="generator",
                                   embeddings_scope="generator/embeddings")
  merged, untied = hf_conversion.combine_generator(back_disc, back_gen)
  assert not untied
  assert sorted(merged) == sorted(original)
  for name, value in original.items():
    assert merged[name].dtype == np.float32
    assert np.array_equal(merged[name], value), name
  assert back_disc.bert_config == model.bert_config and back_disc.embedding_size == 12
  assert back_gen.bert_config == _generator_config(model)


def test_untied_generator_embeddings_round_trip():
  model = _pretraining_model(seed=6, untied_generator_embeddings=True)
  original = {n: v.numpy() for n, v in model.named_variables().items()}
  assert "generator/embeddings/word_embeddings" in original
  gen = hf_conversion.to_hf(original, "generator", _generator_config(model),
                            encoder_scope="generator", embeddings_scope="generator/embeddings")
  assert gen.config["embedding_size"] == 9  # As wide as the generator: no projection.
  # encoder_to_hf reads the same sizes and scopes off the built generator.
  from_module = hf_conversion.encoder_to_hf(model.generator, model.named_variables(), "generator")
  assert from_module.config == gen.config
  assert all(np.array_equal(from_module.tensors[k], v) for k, v in gen.tensors.items())
  assert "electra.embeddings_project.weight" not in gen.tensors
  disc = hf_conversion.to_hf(original, "discriminator", model.bert_config)
  merged, untied = hf_conversion.combine_generator(
      hf_conversion.from_hf(disc.tensors, disc.config),
      hf_conversion.from_hf(gen.tensors, gen.config, encoder_scope="generator",
                            embeddings_scope="generator/embeddings"))
  assert untied and sorted(merged) == sorted(original)
  assert all(np.array_equal(merged[n], v) for n, v in original.items())


def test_token_classification_round_trip_with_labels():
  config = BertConfig(V, **TINY)
  encoder = BertModel(config, embedding_size=12)
  head = Dense("task_specific/chunk/dense", 18, 5)
  variables = {**encoder.named_variables(), **head.named_variables()}
  for module in (encoder, head):
    _randomize(module, 7)
  labels = ["B-NP", "E-NP", "O", "S-NP", "S-VP"]
  hf = hf_conversion.to_hf(variables, "token_classification", config, labels=labels)
  assert hf.tensors["classifier.weight"].shape == (5, 18)
  assert hf.config["architectures"] == ["ElectraForTokenClassification"]
  assert hf.config["id2label"] == {str(i): label for i, label in enumerate(labels)}
  assert hf.config["label2id"]["S-VP"] == 4
  back = hf_conversion.from_hf(hf.tensors, hf.config)
  assert back.model_type == "token_classification" and back.labels == labels
  assert sorted(back.variables) == sorted(variables)
  assert all(np.array_equal(back.variables[n], v.numpy()) for n, v in variables.items())
  with pytest.raises(ValueError, match="has 5 labels but 2 label names"):
    hf_conversion.to_hf(variables, "token_classification", config, labels=["a", "b"])


def _hand_made_hf_discriminator(rng, E=10, H=15, I=23, P=16, L=2):
  """A random ElectraForPreTraining state dict built from the documented layout."""
  layout = _expected_hf_layout("discriminator", V, E, H, I, P=P, L=L)
  tensors = {k: (0.3 * rng.randn(*shape)).astype(np.float32) for k, shape in layout.items()}
  for k in tensors:
    if "LayerNorm.weight" in k:
      tensors[k] += 1.0
  config = {"architectures": ["ElectraForPreTraining"], "model_type": "electra",
            "vocab_size": V, "embedding_size": E, "hidden_size": H, "num_hidden_layers": L,
            "num_attention_heads": 5, "intermediate_size": I, "hidden_act": "gelu",
            "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
  return tensors, config


def _write_hf_dir(path, tensors, config, vocab_file=None, tokenizer=None, use_package=False):
  os.makedirs(path, exist_ok=True)
  weights = os.path.join(path, "model.safetensors")
  if use_package:
    import safetensors.numpy
    safetensors.numpy.save_file(tensors, weights, metadata={"format": "pt"})
  else:
    hf_conversion.write_safetensors(weights, tensors, {"format": "pt"})
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  if tokenizer is not None:
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
      json.dump(tokenizer, f)
  if vocab_file:
    with open(vocab_file) as src, open(os.path.join(path, "vocab.txt"), "w") as dst:
      dst.write(src.read())
  return path


def test_import_hand_made_hf_dir_runs_like_transformers(tmp_path, real_batch, vocab_file):
  rng = np.random.RandomState(8)
  tensors, config = _hand_made_hf_discriminator(rng)
  # transformers < 4.31 stored these int64 buffers; they are not weights.
  tensors["electra.embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None]
  try:
    import safetensors  # noqa: F401
    use_package = True  # A file written by the reference implementation.
  except ImportError:
    use_package = False
  hf_dir = _write_hf_dir(str(tmp_path / "hf"), tensors, config, vocab_file,
                         {"do_lower_case": False}, use_package)
  loaded = hf_conversion.load_hf_dir(hf_dir)
  assert loaded.do_lower_case is False and loaded.vocab_file.endswith("vocab.txt")
  imported = hf_conversion.from_hf(loaded.tensors, loaded.config, source=hf_dir)
  v = imported.variables
  np.testing.assert_array_equal(v["electra/encoder/layer_1/attention/self/key/kernel"],
                                tensors["electra.encoder.layer.1.attention.self.key.weight"].T)
  np.testing.assert_array_equal(v["electra/embeddings/LayerNorm/beta"],
                                tensors["electra.embeddings.LayerNorm.bias"])
  np.testing.assert_array_equal(v["discriminator_predictions/dense_1/bias"],
                                tensors["discriminator_predictions.dense_prediction.bias"])
  assert imported.bert_config.to_dict() == BertConfig(
      V, 15, 2, 5, 23, max_position_embeddings=16).to_dict()
  # Our model with the imported variables computes transformers' logits.
  encoder = BertModel(imported.bert_config, embedding_size=imported.embedding_size)
  head = DiscriminatorHead(imported.bert_config)
  for name, var in {**encoder.named_variables(), **head.named_variables()}.items():
    var.assign(v[name])
  assert sorted({**encoder.named_variables(), **head.named_variables()}) == sorted(v)
  ids, mask, seg = real_batch["input_ids"], real_batch["input_mask"], real_batch["segment_ids"]
  ours = head(encoder(tf.constant(ids), tf.constant(mask), tf.constant(seg), False)
              .sequence_output).numpy()
  expected = _hf_discriminator_logits(tensors, config, ids, mask, seg)
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], expected[real], rtol=1e-4, atol=1e-4)


def test_import_base_model_and_encoder_only(tmp_path):
  rng = np.random.RandomState(9)
  tensors, config = _hand_made_hf_discriminator(rng)
  bare = {k[len("electra."):]: v for k, v in tensors.items() if k.startswith("electra.")}
  imported = hf_conversion.from_hf(bare, {**config, "architectures": ["ElectraModel"]})
  assert imported.model_type == "encoder"
  assert all(n.startswith("electra/") for n in imported.variables)
  assert len(imported.variables) == 5 + 2 + 2 * 16
  # A sequence-classification model: its 2-layer head does not map ...
  seq = {**tensors, "classifier.dense.weight": np.zeros([15, 15], np.float32),
         "classifier.dense.bias": np.zeros([15], np.float32),
         "classifier.out_proj.weight": np.zeros([3, 15], np.float32),
         "classifier.out_proj.bias": np.zeros([3], np.float32)}
  for name in [k for k in seq if k.startswith("discriminator_predictions")]:
    del seq[name]
  seq_config = {**config, "architectures": ["ElectraForSequenceClassification"]}
  with pytest.raises(ValueError, match="2-layer classifier.*--model-type encoder"):
    hf_conversion.from_hf(seq, seq_config)
  # ... but its encoder imports, the head dropped with a warning.
  encoder = hf_conversion.from_hf(seq, seq_config, model_type="encoder")
  assert sorted(encoder.variables) == sorted(imported.variables)


def test_import_generator_checks_tied_lm_head():
  model = _pretraining_model(seed=10)
  gen = hf_conversion.to_hf(model.named_variables(), "generator", _generator_config(model),
                            encoder_scope="generator")
  table = gen.tensors["electra.embeddings.word_embeddings.weight"]
  tied = {**gen.tensors, "generator_lm_head.weight": table.copy()}
  imported = hf_conversion.from_hf(tied, gen.config)  # Lone generator: electra/* (MLM).
  assert "generator_predictions/output_bias" in imported.variables
  assert "electra/encoder/layer_1/output/dense/kernel" in imported.variables
  with pytest.raises(ValueError, match="always applies gelu"):
    hf_conversion.from_hf(gen.tensors, {**gen.config, "hidden_act": "relu"})
  untied = {**gen.tensors, "generator_lm_head.weight": table + 1.0}
  with pytest.raises(ValueError, match="generator_lm_head.weight differs"):
    hf_conversion.from_hf(untied, gen.config)


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------

def test_import_errors_name_the_problem():
  rng = np.random.RandomState(11)
  tensors, config = _hand_made_hf_discriminator(rng)
  with pytest.raises(ValueError, match=r"1 unknown tensors: electra\.pooler\.dense\.weight"):
    hf_conversion.from_hf({**tensors, "electra.pooler.dense.weight": np.zeros([2])}, config)
  partial = {k: v for k, v in tensors.items() if "layer.1.output.dense.bias" not in k}
  with pytest.raises(ValueError, match=r"1 missing tensors: electra\.encoder\.layer\.1\."
                                       r"output\.dense\.bias"):
    hf_conversion.from_hf(partial, config)
  with pytest.raises(ValueError, match=r"intermediate\.dense\.weight: file \[23, 15\] vs "
                                       r"config \[24, 15\]"):
    hf_conversion.from_hf(tensors, {**config, "intermediate_size": 24})
  lacking = {k: v for k, v in config.items() if k not in ("embedding_size", "hidden_size")}
  with pytest.raises(ValueError, match=r"lacks the ElectraConfig fields \['embedding_size', "
                                       r"'hidden_size'\]"):
    hf_conversion.from_hf(tensors, lacking)
  for bad, match in (({"hidden_act": "gelu_new"}, "hidden_act 'gelu_new' is not supported"),
                     ({"layer_norm_eps": 1e-5}, "layer_norm_eps"),
                     ({"model_type": "bert"}, "only ELECTRA"),
                     ({"position_embedding_type": "relative_key"}, "relative_key"),
                     ({"num_hidden_layers": "2"}, "positive integer")):
    with pytest.raises(ValueError, match=match):
      hf_conversion.from_hf(tensors, {**config, **bad})
  with pytest.raises(ValueError, match="dtype int32; weights must be floating"):
    hf_conversion.from_hf({**tensors, "electra.embeddings.LayerNorm.bias":
                           np.zeros([10], np.int32)}, config)


def test_encoder_to_hf_rejects_electric_two_tower_generator():
  model = _pretraining_model(seed=16, electric_objective=True)
  with pytest.raises(ValueError, match="TwoTowerClozeTransformer.*two-tower"):
    hf_conversion.encoder_to_hf(model.generator, model.named_variables(), "generator")
  with pytest.raises(ValueError, match="causal attention"):
    hf_conversion.encoder_to_hf(model.generator.ltr, model.named_variables(), "encoder")
  disc = hf_conversion.encoder_to_hf(model.discriminator, model.named_variables(),
                                     "discriminator")
  assert len(disc.tensors) == 5 + 2 + 2 * 16 + 4


def test_export_errors_list_missing_and_mismatched_variables():
  model = _pretraining_model(seed=12)
  encoder_only = {n: v for n, v in model.named_variables().items() if n.startswith("electra/")}
  with pytest.raises(ValueError, match=r"(?s)4 needed variables are missing.*"
                                       r"discriminator_predictions/dense/bias.*"
                                       r"top-level scopes: electra\."):
    hf_conversion.to_hf(encoder_only, "discriminator", model.bert_config)
  wrong = BertConfig(V, **{**TINY, "intermediate_size": 40})
  with pytest.raises(ValueError, match=r"intermediate/dense/kernel: checkpoint \[18, 37\] vs "
                                       r"expected \[18, 40\]"):
    hf_conversion.to_hf(model.named_variables(), "discriminator", wrong)
  relu = BertConfig.from_dict({**_generator_config(model).to_dict(), "hidden_act": "relu"})
  with pytest.raises(ValueError, match="always applies gelu"):
    hf_conversion.to_hf(model.named_variables(), "generator", relu, encoder_scope="generator")


# ----------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------

def _sample_tensors():
  rng = np.random.RandomState(13)
  return {"b.weight": rng.randn(3, 5).astype(np.float32),
          "a.half": rng.randn(7).astype(np.float16),
          "c.ids": np.arange(-3, 3, dtype=np.int64).reshape(2, 3),
          "d.scalar": np.float64(2.5), "e.empty": np.zeros([0, 4], np.float32),
          "f.mask": np.array([True, False, True]), "g.bytes": np.arange(5, dtype=np.uint8)}


def test_safetensors_round_trip_and_package_interop(tmp_path):
  import safetensors.numpy
  tensors = _sample_tensors()
  ours = str(tmp_path / "ours.safetensors")
  hf_conversion.write_safetensors(ours, tensors, {"format": "pt"})
  loaded = safetensors.numpy.load_file(ours)
  assert sorted(loaded) == sorted(tensors)
  for name, value in tensors.items():
    assert loaded[name].dtype == np.asarray(value).dtype
    np.testing.assert_array_equal(loaded[name], value)
  with safetensors.safe_open(ours, "np") as f:
    assert f.metadata() == {"format": "pt"}
  back = hf_conversion.read_safetensors(ours, ["b.weight", "c.ids"])
  assert sorted(back) == ["b.weight", "c.ids"]
  np.testing.assert_array_equal(back["c.ids"], tensors["c.ids"])
  with pytest.raises(ValueError, match=r"has no tensors \['nope'\]"):
    hf_conversion.read_safetensors(ours, ["nope"])


def _raw_safetensors(path, header, data: bytes):
  text = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
  return path


def test_safetensors_bf16_is_widened_exactly(tmp_path):
  values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
  bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
  path = _raw_safetensors(str(tmp_path / "bf16.safetensors"),
                          {"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
                           "v": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
                          bf16 + np.float32(7).tobytes())
  out = hf_conversion.read_safetensors(path)
  assert out["w"].dtype == np.float32
  np.testing.assert_array_equal(out["w"], values.reshape(2, 2))
  np.testing.assert_array_equal(out["v"], [7.0])


@pytest.mark.parametrize("header,data", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "v": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, b"\0" * 6),
    ({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4),
])
def test_safetensors_rejects_invalid_files(tmp_path, header, data):
  path = _raw_safetensors(str(tmp_path / "bad.safetensors"), header, data)
  with pytest.raises(ValueError, match="bad.safetensors is not a valid safetensors file"):
    hf_conversion.read_safetensors(path)


def test_safetensors_rejects_truncated_header_and_missing_file(tmp_path):
  path = str(tmp_path / "short.safetensors")
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", 1000) + b"{}")
  with pytest.raises(ValueError, match="short.safetensors is not a valid safetensors file"):
    hf_conversion.read_safetensors(path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    hf_conversion.read_safetensors(str(tmp_path / "absent.safetensors"))


# ----------------------------------------------------------------------------
# Checkpoints and directories
# ----------------------------------------------------------------------------

def test_write_checkpoint_is_a_released_style_checkpoint(tmp_path):
  arrays = {"electra/embeddings/LayerNorm/gamma": np.arange(5, dtype=np.float32)}
  prefix = hf_conversion.write_checkpoint(str(tmp_path / "m"), arrays)
  assert prefix.endswith("model.ckpt-0")
  assert checkpointing.list_checkpoint(str(tmp_path / "m")) == {
      "electra/embeddings/LayerNorm/gamma": [5], "global_step": []}
  view = hf_conversion.CheckpointArrays(str(tmp_path / "m"))
  assert view["global_step"] == 0 and view["global_step"].dtype == np.int64
  np.testing.assert_array_equal(view["electra/embeddings/LayerNorm/gamma"], np.arange(5))


def test_save_and_load_hf_dir(tmp_path, vocab_file):
  model = _pretraining_model(seed=14)
  hf = hf_conversion.to_hf(model.named_variables(), "discriminator", model.bert_config)
  out = str(tmp_path / "hf")
  paths = hf_conversion.save_hf_dir(out, hf, vocab_file, do_lower_case=True)
  assert sorted(os.path.basename(p) for p in paths) == [
      "config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
  tok = json.load(open(os.path.join(out, "tokenizer_config.json")))
  assert tok["tokenizer_class"] == "ElectraTokenizer" and tok["do_lower_case"] is True
  assert tok["model_max_length"] == 512
  assert open(os.path.join(out, "vocab.txt")).read() == open(vocab_file).read()
  loaded = hf_conversion.load_hf_dir(out)
  assert loaded.config == hf.config
  assert all(np.array_equal(loaded.tensors[k], v) for k, v in hf.tensors.items())
  with pytest.raises(FileExistsError, match="not empty"):
    hf_conversion.save_hf_dir(out, hf, vocab_file)
  small_vocab = str(tmp_path / "v.txt")
  with open(small_vocab, "w") as f:
    f.write("\n".join(str(i) for i in range(V + 1)))
  with pytest.raises(ValueError, match="the model's vocab_size is 30522 but .* has 30523 lines"):
    hf_conversion.save_hf_dir(str(tmp_path / "hf2"), hf, small_vocab)


MULTILINGUAL_TEXT = [
    "¿Cómo estás? Muy bien, gracias: ¡qué día tan bonito en Perú! Él dijo «sí».",
    "Über die Straße gehen Mädchen und Jungen; ÄÖÜ äöü ß.",
    "L'été à Noël, garçon — naïve façade; ÉCOLE Œuvre.",
    "人工智能是工程和科学的分支,致力于构建具有思维的机器。你好，世界！",
    "Ελληνικά και Русский текст, 한국어 텍스트, ひらがな カタカナ.",
]


@pytest.mark.parametrize("vocab_name,do_lower_case,strip_accents", [
    ("cased", False, True), ("uncased", True, True), ("uncased", True, False)])
def test_exported_tokenizer_files_tokenize_like_full_tokenizer(
    tmp_path, vocab_name, do_lower_case, strip_accents):
  from tests.conftest import TEST_DATA, UNCASED_VOCAB
  vocab_file = (UNCASED_VOCAB if vocab_name == "uncased" else
                os.path.join(TEST_DATA, "vocab", "cased_vocab.txt"))
  model = _pretraining_model(seed=15)
  hf = hf_conversion.to_hf(model.named_variables(), "encoder", model.bert_config)
  out = str(tmp_path / "hf")
  hf_conversion.save_hf_dir(out, hf, vocab_file, do_lower_case, strip_accents=strip_accents)
  tok = json.load(open(os.path.join(out, "tokenizer_config.json")))
  assert tok["do_lower_case"] is do_lower_case
  assert tok["strip_accents"] is (do_lower_case and strip_accents)
  ours = tokenization.FullTokenizer(vocab_file, do_lower_case, strip_accents)
  with open(os.path.join(TEST_DATA, "multilingual", "es_chatterbot.txt"), encoding="utf-8") as f:
    spanish = f.read().splitlines()[:150]
  texts = MULTILINGUAL_TEXT + spanish
  for tokenize in hf_tokenizers_from_dir(out):
    for text in texts:
      assert tokenize(text) == ours.tokenize(text), text
  # Not vacuous: the settings change the words.
  words = "".join(ours.basic_tokenizer.tokenize(MULTILINGUAL_TEXT[0]))
  assert any(c.isupper() for c in words) == (not do_lower_case)
  assert any(c in "óéú" for c in words) == (not do_lower_case or not strip_accents)


def test_load_hf_dir_without_weights_or_torch(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
    hf_conversion.load_hf_dir(str(empty))
  (empty / "pytorch_model.bin").write_bytes(b"not a pickle")
  try:
    import torch  # noqa: F401
    match = "Cannot read the torch state dict"
  except ImportError:
    match = "torch is not installed"
  with pytest.raises(ValueError, match=match):
    hf_conversion.load_hf_dir(str(empty))
  with pytest.raises(FileNotFoundError, match="has no config.json"):
    hf_conversion.load_hf_dir(str(tmp_path))


def test_sharded_safetensors_index(tmp_path):
  rng = np.random.RandomState(15)
  tensors, config = _hand_made_hf_discriminator(rng)
  names = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": names[:20],
            "model-00002-of-00002.safetensors": names[20:]}
  for shard, keys in shards.items():
    hf_conversion.write_safetensors(str(tmp_path / shard), {k: tensors[k] for k in keys})
  weight_map = {k: shard for shard, keys in shards.items() for k in keys}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  (tmp_path / "config.json").write_text(json.dumps(config))
  loaded = hf_conversion.load_hf_dir(str(tmp_path))
  assert sorted(loaded.tensors) == names
  assert all(np.array_equal(loaded.tensors[k], tensors[k]) for k in names)
