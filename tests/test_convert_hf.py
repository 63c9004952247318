"""End-to-end tests of convert_hf.py (export / import through files and the CLI).

The imported model directories are checked by what the training scripts do
with them: a strict restore into `PretrainingModel` (resuming pre-training),
a partial restore of the encoder (fine-tuning), and a second export that must
reproduce the first one byte for byte.
"""
import json
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import tensorflow as tf

import configure_finetuning
import configure_pretraining
import convert_hf
from export import hf
from model import checkpointing, hf_conversion, sizes
from model.modeling import BertConfig, BertModel, Dense
from pretrain.pretrain_helpers import SpecialTokenIds
from pretrain.pretraining_model import PretrainingModel
from util import cli
from tests.conftest import tree_state

TINY = {"hidden_size": 18, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 37}
HPARAMS = {"model_hparam_overrides": TINY, "embedding_size": 12, "generator_hidden_size": 0.5}
SPECIAL = SpecialTokenIds(101, 102, 103)


@pytest.fixture(autouse=True)
def _electra_log_propagates(monkeypatch):
  monkeypatch.setattr(logging.getLogger("electra"), "propagate", True)


def _randomize(variables, seed):
  rng = np.random.RandomState(seed)
  for name, variable in variables.items():
    variable.assign((0.3 * rng.randn(*variable.shape) + name.endswith("gamma"))
                    .astype(np.float32))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, vocab_file):
  """A tiny pre-training run's model dir (checkpoint with slots, saved config) + exports."""
  root = tmp_path_factory.mktemp("hf")
  data_dir = str(root / "data")
  os.makedirs(os.path.join(data_dir, "models"))
  shutil.copy(vocab_file, os.path.join(data_dir, "vocab.txt"))
  config = configure_pretraining.PretrainingConfig("tiny", data_dir, **HPARAMS)
  model = PretrainingModel(config, SPECIAL)
  _randomize(model.named_variables(), 0)
  variables = dict(model.named_variables())
  slot = "electra/encoder/layer_0/output/dense/bias/adam_m"  # Like a real run: ignored.
  variables[slot] = tf.Variable(np.ones([18], np.float32))
  variables["global_step"] = tf.Variable(1234, dtype=tf.int64)
  checkpointing.save_checkpoint(config.model_dir, 1234, variables)
  config.write_json(os.path.join(config.model_dir, "pretrain_config.json"))
  for kind in ("discriminator", "generator"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny",
                     "--model-type", kind, "--output-dir", str(root / kind)])
  return {"root": root, "data_dir": data_dir, "model": model,
          "values": {n: v.numpy() for n, v in model.named_variables().items()}}


def _import(pretrained, name, *extra):
  out = os.path.join(pretrained["data_dir"], "models", name)
  convert_hf.main(["import", "--output-dir", out, *extra])
  return out, json.load(open(os.path.join(out, "hparams.json")))


def test_export_writes_hf_files_and_ignores_slots(pretrained):
  disc = str(pretrained["root"] / "discriminator")
  assert sorted(os.listdir(disc)) == ["config.json", "model.safetensors",
                                      "tokenizer_config.json", "vocab.txt"]
  config = json.load(open(os.path.join(disc, "config.json")))
  assert config["architectures"] == ["ElectraForPreTraining"]
  assert (config["hidden_size"], config["embedding_size"], config["num_hidden_layers"]) == (
      18, 12, 2)
  tensors = hf_conversion.read_safetensors(os.path.join(disc, "model.safetensors"))
  assert len(tensors) == 5 + 2 + 2 * 16 + 4
  np.testing.assert_array_equal(
      tensors["electra.encoder.layer.0.output.dense.bias"],
      pretrained["values"]["electra/encoder/layer_0/output/dense/bias"])
  gen = json.load(open(str(pretrained["root"] / "generator" / "config.json")))
  assert (gen["architectures"], gen["hidden_size"], gen["embedding_size"]) == (
      ["ElectraForMaskedLM"], 9, 12)


def test_full_import_resumes_pretraining_bit_identically(pretrained):
  root = pretrained["root"]
  out, hparams = _import(pretrained, "full", "--hf-dir", str(root / "discriminator"),
                         "--generator-hf-dir", str(root / "generator"))
  assert hparams == {"model_size": "base", "model_hparam_overrides": TINY, "embedding_size": 12,
                     "generator_hidden_size": 0.5, "generator_layers": 1.0}
  stored = checkpointing.list_checkpoint(out)
  assert sorted(stored) == sorted(list(pretrained["values"]) + ["global_step"])
  # run_pretraining.py's strict resume: every variable of the model it builds from
  # the written hparams is in the checkpoint, with the same values as the original.
  config = configure_pretraining.PretrainingConfig("full", pretrained["data_dir"], **hparams)
  model = PretrainingModel(config, SPECIAL)
  checkpointing.restore_checkpoint(out, model.named_variables())
  for name, variable in model.named_variables().items():
    assert np.array_equal(variable.numpy(), pretrained["values"][name]), name
  assert json.load(open(os.path.join(out, "bert_config.json"))) == model.bert_config.to_dict()
  saved = json.load(open(os.path.join(out, "pretrain_config.json")))
  assert saved["model_dir"] == out and saved["generator_hidden_size"] == 0.5
  assert open(os.path.join(out, "vocab.txt")).read() == open(
      os.path.join(pretrained["data_dir"], "vocab.txt")).read()
  # Exporting the imported model (sizes from its pretrain_config.json) gives the same file.
  again = str(root / "again")
  convert_hf.main(["export", "--data-dir", pretrained["data_dir"], "--model-name", "full",
                   "--output-dir", again])
  assert (open(os.path.join(again, "model.safetensors"), "rb").read()
          == open(str(root / "discriminator" / "model.safetensors"), "rb").read())


def test_generator_alone_imports_as_an_mlm_model(pretrained):
  out, hparams = _import(pretrained, "mlm", "--hf-dir", str(pretrained["root"] / "generator"))
  assert hparams == {"model_size": "base", "embedding_size": 12, "electra_objective": False,
                     "model_hparam_overrides": {"hidden_size": 9, "num_hidden_layers": 2}}
  config = configure_pretraining.PretrainingConfig("mlm", pretrained["data_dir"], **hparams)
  model = PretrainingModel(config, SPECIAL)  # BERT-style MLM: electra/* + generator_predictions.
  checkpointing.restore_checkpoint(out, model.named_variables())
  values = pretrained["values"]
  np.testing.assert_array_equal(model.generator.layers[1].output.kernel.numpy(),
                                values["generator/encoder/layer_1/output/dense/kernel"])
  np.testing.assert_array_equal(model.embeddings.embedding_table.numpy(),
                                values["electra/embeddings/word_embeddings"])


def test_discriminator_import_feeds_finetuning(pretrained):
  out, hparams = _import(pretrained, "disc", "--hf-dir", str(pretrained["root"] /
                                                            "discriminator"))
  config = configure_finetuning.FinetuningConfig("disc", pretrained["data_dir"],
                                                 task_names=["chunk"], **hparams)
  assert config.init_checkpoint == out and config.vocab_file == os.path.join(out, "vocab.txt")
  bert_config = sizes.get_model_bert_config(config)
  encoder = BertModel(bert_config, embedding_size=config.embedding_size)
  report = checkpointing.restore_checkpoint(config.init_checkpoint, encoder.named_variables(),
                                            partial=True)
  assert sorted(report.restored) == sorted(encoder.named_variables())
  assert report.unexpected == sorted(["discriminator_predictions/dense/bias",
                                      "discriminator_predictions/dense/kernel",
                                      "discriminator_predictions/dense_1/bias",
                                      "discriminator_predictions/dense_1/kernel",
                                      "global_step"])
  with pytest.raises(FileExistsError, match="not empty; pass --overwrite"):
    _import(pretrained, "disc", "--hf-dir", str(pretrained["root"] / "discriminator"))


def test_token_classification_export_and_import(pretrained):
  data_dir = pretrained["data_dir"]
  config = configure_finetuning.FinetuningConfig("tiny", data_dir, task_names=["chunk"],
                                                 model_hparam_overrides=TINY, embedding_size=12)
  bert_config = sizes.get_model_bert_config(config)
  encoder = BertModel(bert_config, embedding_size=12)
  head = Dense("task_specific/chunk/dense", 18, 4)
  variables = {**encoder.named_variables(), **head.named_variables()}
  _randomize(variables, 1)
  checkpointing.save_checkpoint(config.model_dir + "_1", 30, variables)
  mapping = {"B-NP": 0, "E-NP": 1, "O": 2, "S-VP": 3}
  os.makedirs(config.preprocessed_data_dir, exist_ok=True)
  with open(os.path.join(config.preprocessed_data_dir, "chunk_label_mapping.pkl"), "wb") as f:
    pickle.dump(mapping, f)
  hf_dir = str(pretrained["root"] / "tagger_hf")
  # Sizes come from the pre-trained model's pretrain_config.json.
  convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny",
                   "--model-type", "token_classification", "--output-dir", hf_dir])
  hf_config = json.load(open(os.path.join(hf_dir, "config.json")))
  assert hf_config["architectures"] == ["ElectraForTokenClassification"]
  assert hf_config["id2label"] == {"0": "B-NP", "1": "E-NP", "2": "O", "3": "S-VP"}
  out, _ = _import(pretrained, "tagger", "--hf-dir", hf_dir, "--task", "chunk")
  imported = hf_conversion.CheckpointArrays(out)
  assert sorted(imported) == sorted(list(variables) + ["global_step"])
  assert all(np.array_equal(imported[n], v.numpy()) for n, v in variables.items())
  tagger = configure_finetuning.FinetuningConfig("tagger", data_dir, task_names=["chunk"])
  with open(os.path.join(tagger.preprocessed_data_dir, "chunk_label_mapping.pkl"), "rb") as f:
    assert pickle.load(f) == mapping


def test_cli_errors(pretrained):
  root, data_dir = pretrained["root"], pretrained["data_dir"]
  with pytest.raises(ValueError, match="needs a discriminator in --hf-dir, got generator"):
    _import(pretrained, "bad", "--hf-dir", str(root / "generator"), "--generator-hf-dir",
            str(root / "generator"))
  with pytest.raises(ValueError, match="no discriminator"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny", "--output-dir",
                     str(root / "x"), "--hparams", '{"electra_objective": false}'])
  with pytest.raises(ValueError, match="two-tower cloze generator"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny", "--model-type",
                     "generator", "--output-dir", str(root / "x"), "--hparams",
                     '{"electric_objective": true, "two_tower_generator": true}'])
  with pytest.raises(ValueError, match="electric_objective needs two_tower_generator"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny", "--output-dir",
                     str(root / "x"), "--hparams", '{"electric_objective": true}'])
  with pytest.raises(ValueError, match=r"intermediate_size 37 \(the hparams give 40\): set in "
                     r"--hparams model_hparam_overrides \{\"intermediate_size\": 37\}"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny", "--output-dir",
                     str(root / "x"), "--hparams",
                     json.dumps({"model_hparam_overrides": {**TINY, "intermediate_size": 40}})])
  with pytest.raises(FileNotFoundError, match="--vocab-file"):
    convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "tiny", "--output-dir",
                     str(root / "x"), "--vocab-file", str(root / "none.txt"), "--hparams",
                     json.dumps({"vocab_file": str(root / "none.txt")})])


@pytest.mark.parametrize("sizes,embedding,expected", [
    # transformers' configs of the released models (hidden, layers, heads, intermediate).
    ((256, 12, 4, 1024), 128, {"model_size": "small"}),  # electra-small-discriminator
    ((768, 12, 12, 3072), 768, {"model_size": "base"}),
    ((1024, 24, 16, 4096), 1024, {"model_size": "large"}),
    ((256, 12, 4, 1024), 768, {"model_size": "small", "embedding_size": 768}),  # base generator
    ((144, 3, 4, 576), 128, {"model_size": "base", "embedding_size": 128,  # the debug model
                             "model_hparam_overrides": {"hidden_size": 144,
                                                        "num_attention_heads": 4,
                                                        "num_hidden_layers": 3}}),
])
def test_size_hparams_of_released_models(sizes, embedding, expected):
  hidden, layers, heads, inner = sizes
  config = BertConfig(30522, hidden, layers, heads, inner)
  assert hf.size_hparams(config, embedding) == expected


def test_generator_hparams():
  disc = BertConfig(30522, 768, 12, 12, 3072)
  base = hf.size_hparams(disc, 768)
  gen = BertConfig(30522, 256, 12, 4, 1024)  # electra-base-generator
  fractions = hf.generator_hparams(base, disc, gen)
  assert fractions == {"generator_hidden_size": 256 / 768, "generator_layers": 1.0}
  config = configure_pretraining.PretrainingConfig("m", "/x", **base, **fractions)
  assert sizes.get_generator_config(config, disc) == gen
  with pytest.raises(ValueError, match="generator heads = max"):
    hf.generator_hparams(base, disc, BertConfig(30522, 256, 12, 2, 1024))


def test_refuses_output_dirs_overlapping_models_and_inputs(pretrained, capsys):
  """export: not in/around <data-dir>/models; import: not over its HF inputs or a models dir."""
  root, data_dir = pretrained["root"], pretrained["data_dir"]
  model_dir = os.path.join(data_dir, "models", "tiny")
  hf_dir = str(root / "discriminator")
  before = tree_state(str(root))
  export = ["export", "--data-dir", data_dir, "--model-name", "tiny", "--overwrite",
            "--output-dir"]
  imp = ["import", "--hf-dir", hf_dir, "--overwrite", "--output-dir"]
  cases = [
      (export + [model_dir], f"--output-dir {model_dir} is the model directory {model_dir}"),
      (export + [os.path.join(data_dir, "models")], "contains the model directory"),
      (export + [os.path.join(model_dir, "hf")], "is inside the model directory"),
      (export + [os.path.join(data_dir, "models", "hf")], "is inside the models directory"),
      (imp + [hf_dir], f"--output-dir {hf_dir} is the --hf-dir {hf_dir}"),
      (imp + [str(root)], "contains the --hf-dir"),
      (imp + [os.path.join(hf_dir, "ckpt")], "is inside the --hf-dir"),
      (imp + [os.path.join(data_dir, "models")], "is a models directory or a data dir"),
      (imp + [data_dir], "is a models directory or a data dir"),
      (imp + [os.path.join(data_dir, "models", "new"), "--generator-hf-dir",
              os.path.join(data_dir, "models", "new", "gen")], "contains the --generator-hf-dir"),
  ]
  for argv, message in cases:
    assert cli.run(convert_hf.main, argv) == cli.USAGE_EXIT, message
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "Traceback" not in err and message in err, err
  assert tree_state(str(root)) == before
