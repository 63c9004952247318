"""model/sizes.py: model-size presets, the debug model, generator sizes."""
import types

import pytest

from configure_finetuning import FinetuningConfig
from configure_pretraining import PretrainingConfig
from model import sizes
from model.modeling import BertConfig
from model.sizes import get_bert_config, get_generator_config, get_model_bert_config

INHERITED = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
             "type_vocab_size": 2, "initializer_range": 0.02}


def pretraining(**kwargs):
  return PretrainingConfig("m", "/data", **kwargs)


def shape(bert_config):
  return (bert_config.hidden_size, bert_config.num_hidden_layers,
          bert_config.num_attention_heads, bert_config.intermediate_size)


@pytest.mark.parametrize("size,expected", [
    ("small", (256, 12, 4, 1024)), ("base", (768, 12, 12, 3072)),
    ("large", (1024, 24, 16, 4096)),
])
def test_size_presets(size, expected):
  bert_config = get_bert_config(pretraining(model_size=size))
  assert isinstance(bert_config, BertConfig)
  assert shape(bert_config) == expected
  assert bert_config.vocab_size == 30522
  assert {k: getattr(bert_config, k) for k in INHERITED} == INHERITED


def test_unknown_model_size():
  config = types.SimpleNamespace(model_size="medium", vocab_size=99, model_hparam_overrides={})
  with pytest.raises(ValueError) as error:
    get_bert_config(config)
  assert error.value.args == ("Unknown model size", "medium")


def test_overrides_drive_then_beat_derived_heads_and_intermediate():
  # hidden 200 -> heads 200 // 64 = 3, intermediate 800 (derived from the override).
  config = pretraining(model_hparam_overrides={"hidden_size": 200, "num_hidden_layers": 5},
                       vocab_size=99)
  assert shape(get_bert_config(config)) == (200, 5, 3, 800)
  assert get_bert_config(config).vocab_size == 99
  # Explicit heads/intermediate win over the derivation (second update,
  # docs/hparams.md#model-sizes).
  config = pretraining(model_hparam_overrides={"hidden_size": 40, "num_attention_heads": 5,
                                               "intermediate_size": 37, "hidden_act": "relu"})
  bert_config = get_bert_config(config)
  assert shape(bert_config) == (40, 12, 5, 37) and bert_config.hidden_act == "relu"
  # A hidden size under 64 still gets one head.
  assert get_bert_config(pretraining(model_hparam_overrides={"hidden_size": 32})
                         ).num_attention_heads == 1


def test_unknown_override_field_is_rejected():
  config = pretraining(model_hparam_overrides={"hidden_sise": 128})
  with pytest.raises(ValueError, match="unknown BertConfig field 'hidden_sise'. Did you mean: "
                                       "hidden_size"):
    get_bert_config(config)


def test_debug_model_beats_overrides():
  config = pretraining(debug=True, model_hparam_overrides={"hidden_size": 512})
  assert shape(get_model_bert_config(config)) == (144, 3, 4, 576)
  assert shape(get_model_bert_config(pretraining())) == (256, 12, 4, 1024)
  debug_finetuning = FinetuningConfig("m", "/data", debug=True, model_size="base")
  assert shape(get_model_bert_config(debug_finetuning)) == (144, 3, 4, 576)
  assert get_model_bert_config(debug_finetuning).vocab_size == 30522


@pytest.mark.parametrize("kwargs,expected", [
    ({}, (64, 12, 1, 256)),  # small default: 256 * 0.25
    ({"generator_hidden_size": 1.0}, (256, 12, 4, 1024)),  # released ELECTRA-Small
    ({"model_size": "base", "generator_hidden_size": 0.33333}, (256, 12, 4, 1024)),
    ({"model_size": "large"}, (256, 24, 4, 1024)),
    ({"debug": True}, (36, 3, 1, 144)),
    ({"generator_layers": 0.5}, (64, 6, 1, 256)),
    # Banker's rounding: 12 * 0.625 = 7.5 -> 8, 12 * 0.875 = 10.5 -> 10.
    ({"generator_layers": 0.625}, (64, 8, 1, 256)),
    ({"generator_layers": 0.875}, (64, 10, 1, 256)),
])
def test_generator_config(kwargs, expected):
  config = pretraining(**kwargs)
  bert_config = get_model_bert_config(config)
  gen_config = get_generator_config(config, bert_config)
  assert shape(gen_config) == expected
  assert {k: getattr(gen_config, k) for k in INHERITED} == INHERITED
  assert gen_config.vocab_size == bert_config.vocab_size
  assert gen_config is not bert_config and bert_config.hidden_size != 0


def test_generator_recomputes_overridden_heads_and_inherits_the_rest():
  config = pretraining(model_hparam_overrides={"num_attention_heads": 2, "hidden_act": "tanh",
                                               "max_position_embeddings": 128})
  gen_config = get_generator_config(config, get_bert_config(config))
  assert (gen_config.num_attention_heads, gen_config.hidden_act,
          gen_config.max_position_embeddings) == (1, "tanh", 128)


def test_debug_overrides_constant_matches_spec():
  assert sizes.DEBUG_MODEL_OVERRIDES == {
      "num_hidden_layers": 3, "hidden_size": 144, "intermediate_size": 576,
      "num_attention_heads": 4}
