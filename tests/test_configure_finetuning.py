"""FinetuningConfig against the defaults, presets and merge order of
docs/hparams.md#fine-tuning-hparams."""
import json
import os

import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from training import config_base

# docs/hparams.md#fine-tuning-hparams, transcribed by hand (for the default task "chunk",
# whose preset sets max_seq_length 256; paths checked separately).
SPEC_DEFAULTS = {
    "debug": False, "log_examples": False, "num_trials": 1, "do_train": True,
    "do_eval": True, "keep_all_models": True, "model_size": "small",
    "task_names": ["chunk"], "model_hparam_overrides": {}, "embedding_size": 128,
    "vocab_size": 30522, "do_lower_case": True, "learning_rate": 1e-4,
    "weight_decay_rate": 0.01, "layerwise_lr_decay": 0.8, "num_train_epochs": 3.0,
    "warmup_proportion": 0.1, "save_checkpoints_steps": 1000000,
    "iterations_per_loop": 1000, "use_tfrecords_if_existing": True,
    "write_test_outputs": False, "n_writes_test": 5, "max_seq_length": 256,
    "train_batch_size": 32, "eval_batch_size": 32, "predict_batch_size": 32,
    "double_unordered": True, "max_query_length": 64, "doc_stride": 128,
    "n_best_size": 20, "max_answer_length": 30, "answerable_classifier": True,
    "answerable_uses_start_logits": True, "answerable_weight": 0.5,
    "joint_prediction": True, "beam_size": 20, "qa_na_threshold": -2.75,
    "use_tpu": False, "num_tpu_cores": 1, "tpu_job_name": None, "tpu_name": None,
    "tpu_zone": None, "gcp_project": None,
    # New hparams (docs/hparams.md#shared-hparams).
    "seed": None, "use_xla": False, "mixed_precision": "off",
    "grad_accumulation_steps": 1, "distribution_strategy": "auto",
    "worker_startup_timeout_s": 600, "collective_timeout_s": 300, "task_configs": [],
    "fix_layerwise_lr_decay": False, "fix_tagging_loss_double_count": False, "xla_predict": "auto",
}
PATH_NAMES = {"data_dir", "raw_data_dir", "vocab_file", "init_checkpoint", "model_dir",
              "results_txt", "results_pkl", "qa_eval_file", "qa_preds_file", "qa_na_file",
              "preprocessed_data_dir", "test_predictions"}
DATA = "/data"
PRETRAINED = "/data/models/electra_small"


def make(**kwargs):
  return FinetuningConfig("electra_small", DATA, **kwargs)


def test_every_default_matches_the_spec_table():
  config = make()
  for name, value in SPEC_DEFAULTS.items():
    assert getattr(config, name) == value, name
    assert type(getattr(config, name)) is type(value), name
  assert set(config.to_dict()) == set(SPEC_DEFAULTS) | PATH_NAMES | {"model_name"}


def test_paths_use_joined_task_names():
  config = make(task_names=["rte", "sts"])
  assert config.data_dir == DATA
  assert config.raw_data_dir("rte") == "/data/finetuning_data/rte"
  assert config.init_checkpoint == PRETRAINED
  assert config.model_dir == PRETRAINED + "/finetuning_models/rte,sts_model"
  assert config.results_txt == PRETRAINED + "/results/rte,sts_results.txt"
  assert config.results_pkl == PRETRAINED + "/results/rte,sts_results.pkl"
  assert config.qa_eval_file("squad") == PRETRAINED + "/results/rte,sts_qa/squad_eval.json"
  assert config.qa_preds_file("squad") == PRETRAINED + "/results/rte,sts_qa/squad_preds.json"
  assert config.qa_na_file("squad") == PRETRAINED + "/results/rte,sts_qa/squad_null_odds.json"
  assert config.preprocessed_data_dir == PRETRAINED + "/finetuning_tfrecords/rte,sts_tfrecords"
  assert (config.test_predictions("rte", "test", 2)
          == PRETRAINED + "/test_predictions/rte_test_2_predictions.pkl")


def test_path_functions_print_as_templates():
  config = make()
  assert "raw_data_dir /data/finetuning_data/{:}" in config.dump_lines()
  assert config.to_dict()["qa_na_file"] == PRETRAINED + "/results/chunk_qa/{:}_null_odds.json"
  json.dumps(config.to_dict())  # serialisable


def test_vocab_file_prefers_the_model_directory(tmp_path):
  data_dir = str(tmp_path)
  assert FinetuningConfig("m", data_dir).vocab_file == os.path.join(data_dir, "vocab.txt")
  model_vocab = tmp_path / "models" / "m" / "vocab.txt"
  model_vocab.parent.mkdir(parents=True)
  model_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
  assert FinetuningConfig("m", data_dir).vocab_file == str(model_vocab)


def test_overriding_model_name_or_data_dir_does_not_move_paths():
  config = make(model_name="other", data_dir="/elsewhere")
  assert (config.model_name, config.data_dir) == ("other", "/elsewhere")
  assert config.model_dir == PRETRAINED + "/finetuning_models/chunk_model"
  assert config.raw_data_dir("chunk") == "/data/finetuning_data/chunk"


@pytest.mark.parametrize("task,max_seq_length,epochs", [
    ("rte", 128, 10.0), ("sts", 128, 10.0),
    ("squad", 512, 2.0), ("squadv1", 512, 2.0), ("newsqa", 512, 2.0),
    ("triviaqa", 512, 2.0), ("searchqa", 512, 2.0),
    ("naturalqs", 512, 2.0),  # fixed quirk: the original gave it 128 / 3.0
    ("chunk", 256, 3.0), ("mnli", 128, 3.0), ("cola", 128, 3.0),
])
def test_single_task_presets(task, max_seq_length, epochs):
  config = make(task_names=[task])
  assert (config.max_seq_length, config.num_train_epochs) == (max_seq_length, epochs)
  assert hasattr(config, "write_distill_outputs") == (max_seq_length == 512)


def test_qa_preset_overrides_then_explicit_values_win():
  config = make(task_names=["squad"], write_test_outputs=True, max_seq_length=384)
  assert config.write_distill_outputs is False
  assert (config.write_test_outputs, config.max_seq_length, config.num_train_epochs) == (
      True, 384, 2.0)
  with pytest.raises(ValueError, match="^Unknown hparam write_distill_outputs"):
    make(task_names=["squad"], write_distill_outputs=True)


def test_multi_task_gets_no_task_preset():
  config = make(task_names=["rte", "squad"])
  assert (config.max_seq_length, config.num_train_epochs) == (128, 3.0)


@pytest.mark.parametrize("size,lr,decay,embedding", [
    ("small", 1e-4, 0.8, 128), ("base", 1e-4, 0.8, None), ("large", 5e-5, 0.9, None),
])
def test_size_presets(size, lr, decay, embedding):
  config = make(model_size=size, task_names=["mnli"])
  assert (config.learning_rate, config.layerwise_lr_decay, config.embedding_size) == (
      lr, decay, embedding)


def test_explicit_values_beat_size_presets():
  config = make(model_size="large", learning_rate=1e-5, embedding_size=None)
  assert (config.learning_rate, config.layerwise_lr_decay) == (1e-5, 0.9)
  assert make(embedding_size=None).embedding_size is None


def test_debug_settings():
  config = make(debug=True, task_names=["rte"], train_batch_size=8)
  assert (config.save_checkpoints_steps, config.use_tfrecords_if_existing, config.num_trials,
          config.iterations_per_loop, config.log_examples) == (1000000, False, 1, 1, True)
  # Debug resets epochs to 3 after the rte preset; explicit batch size still wins.
  assert (config.num_train_epochs, config.train_batch_size) == (3.0, 8)


def test_debug_fix_init_checkpoint_and_tfrecords_dir():
  """Deliberate difference from the original: paths follow the final `debug` value."""
  config = make(debug=True, task_names=["mnli"])
  assert config.init_checkpoint is None
  assert config.preprocessed_data_dir == PRETRAINED + "/finetuning_tfrecords/mnli_tfrecords-debug"
  config = make(debug=True, init_checkpoint="/ckpt/model.ckpt-7", preprocessed_data_dir="/tf")
  assert (config.init_checkpoint, config.preprocessed_data_dir) == ("/ckpt/model.ckpt-7", "/tf")
  assert make(init_checkpoint=None).init_checkpoint is None


def test_custom_task_configs():
  declared = [{"name": "my_task", "type": "classification", "labels": ["a", "b"]}]
  config = make(task_names=["my_task"], task_configs=declared)
  assert config.task_configs == declared
  assert config.model_dir == PRETRAINED + "/finetuning_models/my_task_model"
  assert config.num_train_epochs == 3.0  # "anything else" preset


@pytest.mark.parametrize("task_configs,match", [
    ({"name": "x"}, r"^hparam task_configs expects type array, got object"),
    (["x"], r"^hparam task_configs\[0\] must be an object with a non-empty string \"name\""),
    ([{"type": "qa"}], r"^hparam task_configs\[0\] must be an object"),
    ([{"name": "x"}, {"name": "x"}], r"declares task 'x' twice"),
])
def test_task_configs_validation(task_configs, match):
  with pytest.raises(ValueError, match=match):
    make(task_configs=task_configs)


@pytest.mark.parametrize("task_names,match", [
    ("mnli", r"^hparam task_names expects type array, got string"),
    ([], r"^hparam task_names must be a non-empty list of non-empty strings"),
    (["mnli", 3], r"^hparam task_names must be a non-empty list"),
])
def test_task_names_validation(task_names, match):
  with pytest.raises(ValueError, match=match):
    make(task_names=task_names)


def test_new_hparams_and_fix_flags():
  config = make(fix_layerwise_lr_decay=True, fix_tagging_loss_double_count=True,
                mixed_precision="bf16", grad_accumulation_steps=2, seed=3)
  assert (config.fix_layerwise_lr_decay, config.fix_tagging_loss_double_count,
          config.mixed_precision, config.grad_accumulation_steps, config.seed) == (
              True, True, "bf16", 2, 3)
  with pytest.raises(ValueError, match="^hparam grad_accumulation_steps must be >= 1"):
    make(grad_accumulation_steps=0)
  with pytest.raises(ValueError, match="^hparam grad_accumulation_steps expects type integer"):
    make(grad_accumulation_steps=2.0)
  with pytest.raises(ValueError, match="^hparam fix_layerwise_lr_decay expects type boolean"):
    make(fix_layerwise_lr_decay="yes")
  # Exactly "true"/"false", any case, become booleans (a widely used tutorial's habit).
  assert make(fix_layerwise_lr_decay="TRUE").fix_layerwise_lr_decay is True
  assert make(fix_layerwise_lr_decay="false").fix_layerwise_lr_decay is False


def test_unknown_hparam_and_path_functions_from_json():
  with pytest.raises(ValueError, match=r"^Unknown hparam task_name\. Did you mean: task_names"):
    make(task_name=["mnli"])
  with pytest.raises(ValueError, match=r"^hparam raw_data_dir expects type function"):
    make(**config_base.parse_hparams('{"raw_data_dir": "/raw/{:}"}'))
  config = make(raw_data_dir=lambda task: "/raw/" + task)  # a Python callable is fine
  assert config.raw_data_dir("mnli") == "/raw/mnli"


def test_hparams_json_file(tmp_path):
  path = tmp_path / "glue.json"
  path.write_text('{"task_names": ["mrpc"], "num_trials": -1}')
  config = make(**config_base.parse_hparams(str(path)))
  assert (config.task_names, config.num_trials) == (["mrpc"], -1)
  assert config.results_txt == PRETRAINED + "/results/mrpc_results.txt"


def test_vocab_size_follows_the_model_dirs_vocab_file(tmp_path):
  (tmp_path / "vocab.txt").write_text("a\nb\nc\n", encoding="utf-8")
  assert FinetuningConfig("m", str(tmp_path)).vocab_size == 3
  model_dir = tmp_path / "models" / "m"
  model_dir.mkdir(parents=True)
  (model_dir / "vocab.txt").write_text("".join(f"t{i}\n" for i in range(11)), encoding="utf-8")
  config = FinetuningConfig("m", str(tmp_path))  # The model's own vocab wins.
  assert (config.vocab_file, config.vocab_size) == (str(model_dir / "vocab.txt"), 11)
  assert FinetuningConfig("m", str(tmp_path), vocab_size=16).vocab_size == 16
  with pytest.raises(ValueError, match="hparam vocab_size is 3 but .* has 11 lines"):
    FinetuningConfig("m", str(tmp_path), vocab_size=3)


@pytest.mark.parametrize("xla_predict, use_xla, precision, gpu, expected", [
    ("auto", False, "off", False, True), ("auto", False, "bf16", False, False),
    ("auto", False, "bf16", True, True), ("off", False, "off", False, False),
    ("off", True, "off", False, True), ("on", False, "bf16", False, True)])
def test_xla_for_prediction(monkeypatch, xla_predict, use_xla, precision, gpu, expected):
  from finetune import model_runner
  config = FinetuningConfig("m", "/tmp/d", xla_predict=xla_predict, use_xla=use_xla,
                            mixed_precision=precision)
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu"] if gpu else [])
  assert model_runner.xla_for_prediction(config) is expected
  # Without whole-graph XLA, bf16/fp16 prediction runs the fused inference kernels.
  assert model_runner.fused_inference_for_prediction(config) is (
      not expected and precision != "off")


def test_xla_predict_rejects_other_values():
  with pytest.raises(ValueError, match="xla_predict must be one of 'auto', 'on', 'off'"):
    FinetuningConfig("m", "/tmp/d", xla_predict="yes")
