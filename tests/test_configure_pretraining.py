"""PretrainingConfig against the defaults, presets and merge order of
docs/hparams.md#merge-order."""
import json
import logging

import pytest

from configure_pretraining import PretrainingConfig
from training import config_base

# docs/hparams.md#pre-training-hparams, transcribed by hand (paths checked separately).
SPEC_DEFAULTS = {
    "debug": False, "do_train": True, "do_eval": False, "electra_objective": True,
    "electric_objective": False, "gen_weight": 1.0, "disc_weight": 50.0, "mask_prob": 0.15,
    "learning_rate": 5e-4, "lr_decay_power": 1.0, "weight_decay_rate": 0.01,
    "num_warmup_steps": 10000, "iterations_per_loop": 200, "save_checkpoints_steps": 1000,
    "num_train_steps": 1000000, "num_eval_steps": 100, "keep_checkpoint_max": 5,
    "model_size": "small", "model_hparam_overrides": {}, "vocab_size": 30522,
    "do_lower_case": True, "uniform_generator": False, "two_tower_generator": False,
    "untied_generator_embeddings": False, "untied_generator": True,
    "generator_layers": 1.0, "generator_hidden_size": 0.25, "disallow_correct": False,
    "temperature": 1.0, "max_seq_length": 128, "train_batch_size": 128,
    "eval_batch_size": 128, "use_tpu": False, "num_tpu_cores": 1, "tpu_job_name": None,
    "tpu_name": None, "tpu_zone": None, "gcp_project": None,
    # New hparams (docs/hparams.md#shared-hparams).
    "seed": None, "use_xla": False, "mixed_precision": "off",
    "grad_accumulation_steps": 1, "distribution_strategy": "auto", "worker_startup_timeout_s": 600,
    "collective_timeout_s": 300,
}
PATH_NAMES = {"pretrain_tfrecords", "vocab_file", "model_dir", "results_txt", "results_pkl"}
DERIVED_NAMES = {"max_predictions_per_seq", "embedding_size", "model_name"}


def make(**kwargs):
  return PretrainingConfig("my_model", "/data", **kwargs)


def test_every_default_matches_the_spec_table():
  config = make()
  for name, value in SPEC_DEFAULTS.items():
    assert getattr(config, name) == value, name
    assert type(getattr(config, name)) is type(value), name
  # No attribute beyond the original's hparams (a typo'd or extra one would show here).
  assert set(config.to_dict()) == set(SPEC_DEFAULTS) | PATH_NAMES | DERIVED_NAMES


def test_paths_come_from_data_dir_and_model_name():
  config = make()
  assert config.pretrain_tfrecords == "/data/pretrain_tfrecords/pretrain_data.tfrecord*"
  assert config.vocab_file == "/data/vocab.txt"
  assert config.model_dir == "/data/models/my_model"
  assert config.results_txt == "/data/models/my_model/results/unsup_results.txt"
  assert config.results_pkl == "/data/models/my_model/results/unsup_results.pkl"


def test_overriding_model_name_does_not_move_model_dir():
  config = make(model_name="other")
  assert config.model_name == "other"
  assert config.model_dir == "/data/models/my_model"
  assert make(model_dir="/elsewhere").model_dir == "/elsewhere"


@pytest.mark.parametrize("kwargs,expected", [
    ({}, 19),  # int(0.155 * 128)
    ({"max_seq_length": 512}, 79),  # int(0.155 * 512) = int(79.36)
    ({"max_seq_length": 512, "mask_prob": 0.25}, 130),  # int(0.255 * 512) = int(130.56)
    ({"max_seq_length": 7, "mask_prob": 0.5}, 3),  # int(3.535): truncation
])
def test_max_predictions_per_seq(kwargs, expected):
  assert make(**kwargs).max_predictions_per_seq == expected


def test_max_predictions_per_seq_cannot_be_overridden():
  with pytest.raises(ValueError, match=r"^Unknown hparam max_predictions_per_seq: it is derived"):
    make(max_predictions_per_seq=20)
  config = make()
  with pytest.raises(ValueError, match="^Unknown hparam max_predictions_per_seq"):
    config.update({"max_predictions_per_seq": 20})


def test_small_preset_sets_embedding_size_unless_given():
  assert make().embedding_size == 128
  assert make(embedding_size=64).embedding_size == 64
  assert make(embedding_size=None).embedding_size is None  # explicit null wins too.
  assert make(model_size="base").embedding_size is None
  large = make(model_size="large")
  # Paper settings for large models are NOT applied (docs/hparams.md#pre-training-presets).
  assert (large.embedding_size, large.learning_rate, large.mask_prob,
          large.max_seq_length, large.train_batch_size) == (None, 5e-4, 0.15, 128, 128)


def test_debug_settings_and_explicit_values_win():
  config = make(debug=True)
  assert (config.train_batch_size, config.num_train_steps, config.eval_batch_size,
          config.iterations_per_loop, config.num_eval_steps) == (8, 20, 4, 1, 2)
  assert config.learning_rate == 5e-4  # untouched by debug
  config = make(debug=True, train_batch_size=16, num_train_steps=7)
  assert (config.train_batch_size, config.num_train_steps, config.eval_batch_size) == (16, 7, 4)


def test_electric_forces_two_tower_generator():
  assert make(electric_objective=True).two_tower_generator is True
  assert make().two_tower_generator is False


def test_electric_with_explicit_one_tower_keeps_value_and_warns():
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  electra_logger = logging.getLogger("electra")
  electra_logger.addHandler(handler)
  try:
    config = make(electric_objective=True, two_tower_generator=False)
    make(electric_objective=True)
  finally:
    electra_logger.removeHandler(handler)
  # second update wins (docs/hparams.md#pre-training-presets)
  assert config.two_tower_generator is False
  assert len(records) == 1 and records[0].levelno == logging.WARNING
  assert "two_tower_generator" in records[0].getMessage()


def test_model_hparam_overrides_is_taken_from_kwargs():
  assert make(model_hparam_overrides={"hidden_size": 512}).model_hparam_overrides == {
      "hidden_size": 512}


def test_unknown_hparam_suggests_close_names():
  with pytest.raises(ValueError, match=r"^Unknown hparam learnig_rate\. Did you mean: learning_rate"):
    make(learnig_rate=1e-3)
  with pytest.raises(ValueError,
                     match=r"^Unknown hparam zzzz\. Valid hparams: collective_timeout_s, debug, "):
    make(zzzz=1)


@pytest.mark.parametrize("name,value,expected,actual", [
    ("debug", 1, "boolean", "integer"),  # bool is not an int, nor int a bool
    ("num_train_steps", 1e6, "integer", "number"),
    ("num_train_steps", True, "integer", "boolean"),
    ("learning_rate", "1e-4", r"number \(int or float\)", "string"),
    ("model_size", 3, "string", "integer"),
    ("model_hparam_overrides", [1], "object", "array"),
    ("embedding_size", "128", "integer or null", "string"),
    ("seed", 1.5, "integer or null", "number"),
])
def test_type_errors_name_hparam_expected_and_actual(name, value, expected, actual):
  with pytest.raises(ValueError, match=f"^hparam {name} expects type {expected}, got {actual}"):
    make(**{name: value})


def test_accepted_types():
  config = make(learning_rate=1, keep_checkpoint_max=None, tpu_name="t", seed=0)
  assert config.learning_rate == 1 and type(config.learning_rate) is int  # kept as given
  assert config.keep_checkpoint_max is None and config.tpu_name == "t" and config.seed == 0


@pytest.mark.parametrize("name,value", [
    ("mixed_precision", "fp32"), ("mixed_precision", "BF16"),
    ("distribution_strategy", "parameter_server"), ("grad_accumulation_steps", 0),
    ("model_size", "medium"), ("seed", 2**63), ("worker_startup_timeout_s", 0),
    ("collective_timeout_s", 0),
])
def test_new_hparam_values_are_validated(name, value):
  with pytest.raises(ValueError, match=f"^hparam {name} must"):
    make(**{name: value})


@pytest.mark.parametrize("name,value", [
    ("mixed_precision", "bf16"), ("mixed_precision", "fp16"), ("grad_accumulation_steps", 4),
    ("distribution_strategy", "mirrored"), ("distribution_strategy", "multi_worker"),
    ("distribution_strategy", "one_device"), ("distribution_strategy", "tpu"),
    ("use_xla", True), ("seed", 1234),
])
def test_new_hparam_valid_values(name, value):
  assert getattr(make(**{name: value}), name) == value


def test_update_is_all_or_nothing():
  config = make()
  with pytest.raises(ValueError):
    config.update({"learning_rate": 0.1, "bogus": 1})
  assert config.learning_rate == 5e-4


def test_hparams_from_json_file_and_literal(tmp_path):
  path = tmp_path / "small_run.json"
  path.write_text(json.dumps({"debug": True, "learning_rate": 1e-3}))
  from_file = make(**config_base.parse_hparams(str(path)))
  from_literal = make(**config_base.parse_hparams('{"debug": true, "learning_rate": 1e-3}'))
  assert from_file.to_dict() == from_literal.to_dict()
  assert from_file.debug is True and from_file.learning_rate == 1e-3


def test_dump_lines_and_json(tmp_path):
  config = make(debug=True)
  lines = config.dump_lines()
  assert lines == sorted(lines)
  assert "train_batch_size 8" in lines and "model_hparam_overrides {}" in lines
  assert "tpu_name None" in lines and "max_predictions_per_seq 19" in lines
  path = tmp_path / "config.json"
  config.write_json(str(path))
  loaded = json.loads(path.read_text())
  assert loaded == config.to_dict()
  assert list(loaded) == sorted(loaded)
  # A saved config re-applies cleanly once the derived value is removed.
  loaded.pop("max_predictions_per_seq")
  model_name = loaded.pop("model_name")
  assert PretrainingConfig(model_name, "/data", **loaded).to_dict() == config.to_dict()


# --------------------------------------------------------------------------- vocab_size


def _vocab(path, n_lines):
  path.write_text("".join(f"[tok{i}]\n" for i in range(n_lines)), encoding="utf-8")
  return str(path)


def test_vocab_size_follows_the_vocab_file(tmp_path, caplog):
  _vocab(tmp_path / "vocab.txt", 57)
  assert PretrainingConfig("m", str(tmp_path)).vocab_size == 57
  assert PretrainingConfig("m", str(tmp_path), vocab_size=57).vocab_size == 57
  # No vocab file (the run reads only tfrecords): the original's default.
  assert PretrainingConfig("m", str(tmp_path / "none")).vocab_size == 30522
  other = _vocab(tmp_path / "other.txt", 9)
  assert PretrainingConfig("m", str(tmp_path), vocab_file=other).vocab_size == 9
  # Larger: padding rows, allowed and logged.
  logger = logging.getLogger("electra")
  propagate, logger.propagate = logger.propagate, True
  try:
    with caplog.at_level(logging.INFO, logger="electra"):
      assert PretrainingConfig("m", str(tmp_path), vocab_size=64).vocab_size == 64
  finally:
    logger.propagate = propagate
  assert "vocab_size 64 exceeds the 57 lines" in caplog.text
  assert "rows 57..63 are padding" in caplog.text


def test_vocab_size_smaller_than_the_vocab_file_is_an_error(tmp_path):
  vocab = _vocab(tmp_path / "vocab.txt", 57)
  with pytest.raises(ValueError, match=f"hparam vocab_size is 56 but {vocab} has 57 lines"):
    PretrainingConfig("m", str(tmp_path), vocab_size=56)


def test_bundled_vocab_gives_the_original_default(tmp_path):
  from tests.conftest import UNCASED_VOCAB
  assert PretrainingConfig("m", str(tmp_path), vocab_file=UNCASED_VOCAB).vocab_size == 30522
