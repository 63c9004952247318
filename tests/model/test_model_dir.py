"""model/model_dir.py: saved configs, inherited sizes, checkpoint fit, vocab and checkpoints.

Sizes are checked by building the BertConfig both ways (PretrainingConfig of
the saved run vs FinetuningConfig from the inherited hparams); checkpoint dims
by writing real checkpoints with known shapes.
"""
import logging
import os
import shutil

import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from configure_pretraining import PretrainingConfig
from model import checkpointing, model_dir, sizes
from model.modeling import BertModel
from util import cli
from tests.conftest import UNCASED_VOCAB

TINY = {"model_hparam_overrides": {"hidden_size": 24, "num_hidden_layers": 2,
                                   "num_attention_heads": 3, "intermediate_size": 40,
                                   "hidden_dropout_prob": 0.0},
        "embedding_size": 12, "vocab_size": 30522, "do_lower_case": False}


@pytest.fixture
def log_messages():
  messages = []
  handler = logging.Handler(logging.INFO)
  handler.emit = lambda record: messages.append(record.getMessage())
  logger = logging.getLogger("electra")
  old_level = logger.level
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  yield messages
  logger.removeHandler(handler)
  logger.setLevel(old_level)


def _pretrained(tmp_path, name="m", **hparams):
  """<data>/models/<name>/pretrain_config.json as run_pretraining writes it."""
  data_dir = str(tmp_path / "data")
  config = PretrainingConfig(name, data_dir, **{**TINY, **hparams})
  os.makedirs(config.model_dir, exist_ok=True)
  config.write_json(os.path.join(config.model_dir, model_dir.PRETRAIN_CONFIG_FILE))
  return data_dir, config


def _finetuning_config(data_dir, name, hparams):
  merged, _ = model_dir.inherit_pretrained_hparams(model_dir.pretrained_dir(data_dir, name),
                                                   hparams)
  return FinetuningConfig(name, data_dir, **merged)


# ----------------------------------------------------------------------------- merging

def test_merge_hparams_explicit_values_win_overrides_per_field():
  saved = [("a.json", {"model_size": "base", "embedding_size": 64,
                       "model_hparam_overrides": {"hidden_size": 24, "num_hidden_layers": 2}}),
           ("b.json", {"embedding_size": 48, "task_names": ["rte"]})]
  explicit = {"task_names": ["sts"], "debug": True,
              "model_hparam_overrides": {"num_hidden_layers": 3}}
  merged, sources = model_dir.merge_hparams(explicit, saved)
  assert merged == {"model_size": "base", "embedding_size": 48, "task_names": ["sts"],
                    "debug": True,
                    "model_hparam_overrides": {"hidden_size": 24, "num_hidden_layers": 3}}
  assert sources == {"model_size": "a.json", "embedding_size": "b.json",
                     "task_names": "--hparams", "debug": "--hparams",
                     "model_hparam_overrides": "--hparams"}


def test_saved_hparams_only_the_given_keys(tmp_path):
  path = str(tmp_path / "pretrain_config.json")
  PretrainingConfig("m", str(tmp_path), **TINY).write_json(path)
  [(source, values)] = model_dir.saved_hparams(path, ("embedding_size", "debug"))
  assert (source, values) == (path, {"embedding_size": 12, "debug": False})
  assert model_dir.saved_hparams(str(tmp_path / "absent.json"), ("debug",)) == []
  (tmp_path / "bad.json").write_text("[1, 2]")
  with pytest.raises(cli.DataError, match="must be a JSON object"):
    model_dir.load_saved_config(str(tmp_path / "bad.json"))


# ----------------------------------------------------------------------------- inheritance

def test_finetuning_inherits_the_saved_sizes(tmp_path, log_messages):
  data_dir, pretraining = _pretrained(tmp_path)
  config = _finetuning_config(data_dir, "m", {"task_names": ["rte"]})
  # The same encoder as the pre-training run: every BertConfig field but the dropout.
  expected = sizes.get_model_bert_config(pretraining).to_dict()
  built = sizes.get_model_bert_config(config).to_dict()
  assert {k: v for k, v in built.items() if k != "hidden_dropout_prob"} == {
      k: v for k, v in expected.items() if k != "hidden_dropout_prob"}
  assert built["hidden_dropout_prob"] == 0.1  # Dropout is a fine-tuning choice.
  assert (config.embedding_size, config.vocab_size, config.do_lower_case) == (12, 30522, False)
  assert config.init_checkpoint == pretraining.model_dir
  path = os.path.join(pretraining.model_dir, "pretrain_config.json")
  inherited = [m for m in log_messages if m.startswith("Using the pre-trained model's")]
  assert inherited == [
      "Using the pre-trained model's model_size \"small\", embedding_size 12, vocab_size 30522, "
      "do_lower_case false, model_hparam_overrides {\"hidden_size\": 24, "
      "\"intermediate_size\": 40, \"num_attention_heads\": 3, \"num_hidden_layers\": 2} from "
      f"{path} (set them in --hparams to override)"]


def test_explicit_hparams_win(tmp_path, log_messages):
  data_dir, _ = _pretrained(tmp_path)
  config = _finetuning_config(data_dir, "m", {
      "task_names": ["rte"], "embedding_size": 20,
      "model_hparam_overrides": {"num_hidden_layers": 5, "hidden_dropout_prob": 0.2}})
  bert_config = sizes.get_model_bert_config(config)
  assert config.embedding_size == 20
  assert (bert_config.num_hidden_layers, bert_config.hidden_dropout_prob) == (5, 0.2)
  assert (bert_config.hidden_size, bert_config.num_attention_heads,
          bert_config.intermediate_size) == (24, 3, 40)  # Inherited fields.
  [line] = [m for m in log_messages if m.startswith("Using the pre-trained model's")]
  assert "embedding_size" not in line and "num_hidden_layers" not in line


def test_debug_pretraining_becomes_overrides_not_debug(tmp_path):
  data_dir, pretraining = _pretrained(tmp_path, debug=True)
  config = _finetuning_config(data_dir, "m", {"task_names": ["rte"]})
  assert not config.debug and config.init_checkpoint == pretraining.model_dir
  assert sizes.get_model_bert_config(config).to_dict() == {
      **sizes.get_model_bert_config(pretraining).to_dict(), "hidden_dropout_prob": 0.1}
  assert sizes.get_model_bert_config(config).hidden_size == 144


def test_no_saved_config_changes_nothing(tmp_path, log_messages):
  hparams = {"task_names": ["rte"], "model_size": "base"}
  merged, sources = model_dir.inherit_pretrained_hparams(str(tmp_path / "released"), hparams)
  assert (merged, sources) == (hparams, {"task_names": "--hparams", "model_size": "--hparams"})
  assert not any(m.startswith("Using the pre-trained") for m in log_messages)


def test_saved_vocab_is_used_unless_the_model_dir_has_one(tmp_path):
  vocab = str(tmp_path / "my_vocab.txt")
  shutil.copyfile(UNCASED_VOCAB, vocab)
  data_dir, pretraining = _pretrained(tmp_path, vocab_file=vocab)
  assert _finetuning_config(data_dir, "m", {}).vocab_file == vocab
  shutil.copyfile(UNCASED_VOCAB, os.path.join(pretraining.model_dir, "vocab.txt"))
  assert _finetuning_config(data_dir, "m", {}).vocab_file == os.path.join(
      pretraining.model_dir, "vocab.txt")
  assert _finetuning_config(data_dir, "m", {"vocab_file": "/x/v.txt"}).vocab_file == "/x/v.txt"


# ----------------------------------------------------------------------------- checkpoint fit

def _save_encoder(directory, config, embedding_size):
  encoder = BertModel(config, embedding_size=embedding_size)
  return checkpointing.save_checkpoint(directory, 5, encoder.named_variables())


def test_checkpoint_encoder_dims_and_fit(tmp_path):
  data_dir, pretraining = _pretrained(tmp_path)
  bert_config = sizes.get_model_bert_config(pretraining)
  prefix = _save_encoder(pretraining.model_dir, bert_config, 12)
  dims = model_dir.checkpoint_encoder_dims(checkpointing.list_checkpoint(prefix))
  assert dims == {"vocab_size": 30522, "embedding_size": 12, "max_position_embeddings": 512,
                  "type_vocab_size": 2, "num_hidden_layers": 2, "hidden_size": 24,
                  "intermediate_size": 40}
  model_dir.check_encoder_fits(prefix, bert_config, 12)  # Fits: no error.
  config = _finetuning_config(data_dir, "m", {"model_hparam_overrides": {"hidden_size": 30},
                                              "embedding_size": 16})
  with pytest.raises(cli.UsageError) as error:
    model_dir.check_encoder_fits(prefix, sizes.get_model_bert_config(config),
                                 config.embedding_size)
  assert str(error.value) == (
      f"init_checkpoint {prefix} holds an encoder with embedding_size 12 (the hparams give 16), "
      "hidden_size 24 (the hparams give 30): set in --hparams embedding_size 12; "
      "model_hparam_overrides {\"hidden_size\": 24}.")


def test_mismatch_names_the_model_size(tmp_path):
  # Only the variables that reveal the sizes: a 12-layer small encoder, vocab 99.
  variables = {
      "electra/embeddings/word_embeddings": tf.Variable(tf.zeros([99, 128])),
      "electra/encoder/layer_0/intermediate/dense/kernel": tf.Variable(tf.zeros([256, 1024])),
      "electra/encoder/layer_11/output/LayerNorm/beta": tf.Variable(tf.zeros([256]))}
  prefix = checkpointing.save_checkpoint(str(tmp_path / "small"), 1, variables)
  config = FinetuningConfig("m", str(tmp_path), model_size="base", vocab_size=99)
  with pytest.raises(cli.UsageError) as error:
    model_dir.check_encoder_fits(prefix, sizes.get_model_bert_config(config),
                                 config.embedding_size, hint=" (hint)")
  message = str(error.value)
  assert "\n" not in message
  assert message.endswith(": set in --hparams model_size \"small\" (or model_hparam_overrides "
                          "{\"hidden_size\": 256}) (hint).")
  assert "embedding_size 128 (the hparams give 768)" in message


# ----------------------------------------------------------------------------- files

def test_find_vocab_and_checkpoints(tmp_path, log_messages):
  assert model_dir.find_vocab([None, str(tmp_path / "a"), UNCASED_VOCAB], 30522) == UNCASED_VOCAB
  assert model_dir.find_vocab([str(tmp_path / "a")]) is None
  with pytest.raises(FileNotFoundError, match=r"looked for .*/a\); pass it"):
    model_dir.find_vocab([str(tmp_path / "a")], required=True, hint="; pass it")
  model_dir.find_vocab([UNCASED_VOCAB], 100)
  assert any("has 30522 tokens but the model's vocab_size is 100" in m for m in log_messages)
  with pytest.raises(FileNotFoundError, match="Model directory .*none does not exist"):
    model_dir.pretrained_checkpoint(str(tmp_path / "none"))
  variables = {"v": tf.Variable(1.0)}
  for trial in (1, 2):
    checkpointing.save_checkpoint(str(tmp_path / f"rte_model_{trial}"), trial, variables)
  with pytest.raises(FileNotFoundError, match="found .*rte_model_1, .*rte_model_2"):
    model_dir.finetuned_checkpoint(str(tmp_path / "rte_model"))
  assert model_dir.finetuned_checkpoint(str(tmp_path / "rte_model"),
                                        str(tmp_path / "rte_model_2")).endswith("ckpt-2")
