"""Model sizes: the small/base/large presets, the debug model and the generator's size.

* `get_bert_config(config)`: the transformer size from `model_size`,
  `vocab_size` and `model_hparam_overrides`.
* `apply_debug_model_overrides` / `get_model_bert_config`: the tiny debug
  model (`"debug": true`), in one place.
* `get_generator_config(config, bert_config)`: the ELECTRA generator's size
  (`generator_hidden_size`, `generator_layers`).

`config` is a run config (`PretrainingConfig` or `FinetuningConfig`); only the
attributes named in each docstring are read.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, Mapping

from model.modeling import BertConfig

# (hidden_size, num_hidden_layers) per model size (docs/hparams.md#model-sizes).
MODEL_SIZE_PRESETS: Dict[str, Dict[str, int]] = {
    "small": {"hidden_size": 256, "num_hidden_layers": 12},
    "base": {"hidden_size": 768, "num_hidden_layers": 12},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24},
}

# The tiny model used when `debug` is true; applied after `get_bert_config`,
# so it also beats `model_hparam_overrides` (docs/hparams.md#pre-training-debug-mode).
DEBUG_MODEL_OVERRIDES: Dict[str, int] = {
    "num_hidden_layers": 3,
    "hidden_size": 144,
    "intermediate_size": 144 * 4,
    "num_attention_heads": 4,
}


def _check_override_names(overrides: Mapping[str, Any], valid: Any) -> None:
  """Rejects `model_hparam_overrides` keys that are not BertConfig fields."""
  valid = sorted(valid)
  for key in overrides:
    if key not in valid:
      close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
      suggestion = f"Did you mean: {', '.join(close)}?" if close else (
          f"Valid fields: {', '.join(valid)}.")
      raise ValueError(f"model_hparam_overrides has unknown BertConfig field {key!r}. "
                       f"{suggestion}")


def get_bert_config(config: Any) -> BertConfig:
  """Builds the transformer config for `config.model_size` (docs/hparams.md#model-sizes).

  Args:
    config: a `PretrainingConfig` or `FinetuningConfig` (uses `model_size`,
      `vocab_size` and `model_hparam_overrides`).

  Returns:
    A `model.modeling.BertConfig`. The debug model is NOT applied here; see
    `get_model_bert_config`.

  Raises:
    ValueError: `("Unknown model size", model_size)` for a size other than
      small/base/large, or a `model_hparam_overrides` key that is not a
      BertConfig field (the original set such keys silently).
  """
  if config.model_size not in MODEL_SIZE_PRESETS:
    raise ValueError("Unknown model size", config.model_size)
  overrides = config.model_hparam_overrides
  _check_override_names(overrides, BertConfig(vocab_size=None).to_dict())
  args = dict(MODEL_SIZE_PRESETS[config.model_size])
  args["vocab_size"] = config.vocab_size
  args.update(overrides)
  # By default the heads and feed-forward size follow the (overridden) hidden
  # size; the second update lets explicit values win (docs/hparams.md#model-sizes).
  args["num_attention_heads"] = max(1, args["hidden_size"] // 64)
  args["intermediate_size"] = 4 * args["hidden_size"]
  args.update(overrides)
  return BertConfig.from_dict(args)


def apply_debug_model_overrides(bert_config: BertConfig) -> BertConfig:
  """A copy of `bert_config` shrunk to the debug model (3 layers, hidden 144, 4 heads).

  Args:
    bert_config: the full-size `BertConfig`.

  Returns:
    A new `BertConfig` with `DEBUG_MODEL_OVERRIDES` applied; other fields kept.
  """
  return BertConfig.from_dict({**bert_config.to_dict(), **DEBUG_MODEL_OVERRIDES})


def get_model_bert_config(config: Any) -> BertConfig:
  """`get_bert_config`, shrunk by `apply_debug_model_overrides` when `config.debug`.

  Args:
    config: a `PretrainingConfig` or `FinetuningConfig` (also uses `debug`).

  Returns:
    The discriminator / fine-tuning encoder `BertConfig` the models build.
  """
  bert_config = get_bert_config(config)
  return apply_debug_model_overrides(bert_config) if config.debug else bert_config


def get_generator_config(config: Any, bert_config: BertConfig) -> BertConfig:
  """The generator's transformer config (docs/hparams.md#generator-size).

  Args:
    config: a `PretrainingConfig` (uses `generator_hidden_size` and
      `generator_layers`, fractions of the discriminator's size).
    bert_config: the discriminator's `BertConfig` (debug model already applied).

  Returns:
    A copy of `bert_config` with hidden size and layers scaled (Python's
    banker's `round`), `intermediate_size = 4 * hidden` and
    `num_attention_heads = max(1, hidden // 64)` recomputed.
  """
  gen_config = BertConfig.from_dict(bert_config.to_dict())
  gen_config.hidden_size = int(round(bert_config.hidden_size * config.generator_hidden_size))
  gen_config.num_hidden_layers = int(round(
      bert_config.num_hidden_layers * config.generator_layers))
  gen_config.intermediate_size = 4 * gen_config.hidden_size
  gen_config.num_attention_heads = max(1, gen_config.hidden_size // 64)
  return gen_config
