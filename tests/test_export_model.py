"""export_model.py: SavedModel export of pre-trained, released-style and fine-tuned checkpoints.

Every export is reloaded in a FRESH Python process (`tf.saved_model.load`, no
repository code) and its outputs on a padded batch of real text are compared
with the in-process model and with the independent numpy forward pass of
tests/model/numpy_bert.py, which reads the weights straight from the
checkpoint file.
"""
import filecmp
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from configure_pretraining import PretrainingConfig
from export import saved_model
import export_model
from finetune import finetuning_model, model_runner, task_builder
from model import checkpointing, hf_conversion, tokenization
from pretrain.pretrain_helpers import SpecialTokenIds
from pretrain.pretraining_model import PretrainingModel
from util import cli
from tests.conftest import UNCASED_VOCAB, tree_state
from tests.model import numpy_bert
from tests.model.real_batches import moby_dick_batch

# Discriminator H 42 (3 heads), I 37, E 26, 2 layers; generator 0.34 -> H 14 (1 head).
OVERRIDES = {"hidden_size": 42, "num_hidden_layers": 2, "num_attention_heads": 3,
             "intermediate_size": 37}
TINY = {"model_hparam_overrides": OVERRIDES, "embedding_size": 26,
        "generator_hidden_size": 0.34, "max_seq_length": 23}
# Released-style: the generator as big as the discriminator (like ELECTRA-Small++).
RELEASED = {"model_hparam_overrides": OVERRIDES, "embedding_size": 26,
            "generator_hidden_size": 1.0}
LENGTHS, SEQ = [23, 9, 17], 23
EMBEDDINGS = "electra/embeddings/word_embeddings"
SPECIAL = SpecialTokenIds(101, 102, 103)  # [CLS], [SEP], [MASK] in the uncased vocab.

LOAD_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
exports, batch_file, out_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
batch = dict(np.load(batch_file))
arrays, meta = {}, {}
for name, path in exports.items():
  loaded = tf.saved_model.load(path)
  fn = loaded.signatures["serving_default"]
  _, inputs = fn.structured_input_signature
  meta[name] = {
      "inputs": {k: [s.dtype.name, s.shape.as_list()] for k, s in inputs.items()},
      "outputs": sorted(fn.structured_outputs),
      "assets": sorted(a for a in dir(loaded) if a.endswith("_file")),
  }
  outputs = fn(**{k: tf.constant(v) for k, v in batch.items()})
  for key, value in outputs.items():
    arrays[name + "/" + key] = value.numpy()
np.savez(out_file, **arrays)
print(json.dumps(meta))
"""


def _randomized(module, seed):
  numpy_bert.randomize(module, seed=seed)
  return module


def _save(model_dir, module, step, **extra):
  variables = {**module.named_variables(), **extra,
               "global_step": tf.Variable(step, dtype=tf.int64)}
  return checkpointing.save_checkpoint(model_dir, step, variables)


def _write_released_checkpoint(model_dir, module):
  """Like the released zips: `<name>/<name>.{index,data}` + state file, no Adam slots."""
  name = os.path.basename(model_dir)
  prefix = _save(model_dir + ".staging", module, 1000)
  os.makedirs(model_dir)
  for suffix in (".index", ".data-00000-of-00001"):
    os.rename(prefix + suffix, os.path.join(model_dir, name + suffix))
  shutil.rmtree(model_dir + ".staging")
  with open(os.path.join(model_dir, "checkpoint"), "w", encoding="utf-8") as f:
    f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
  shutil.copyfile(UNCASED_VOCAB, os.path.join(model_dir, "vocab.txt"))


@pytest.fixture(scope="module")
def batch(moby_dick_lines):
  return moby_dick_batch(tokenization.FullTokenizer(UNCASED_VOCAB), moby_dick_lines,
                         LENGTHS, SEQ, first_line=40)


@pytest.fixture(scope="module")
def env(tmp_path_factory, batch):
  """Writes the checkpoints, exports them through the CLI, serves them in a new process."""
  root = tmp_path_factory.mktemp("export")
  data_dir = str(root / "data")
  model_dir = os.path.join(data_dir, "models", "m")
  os.makedirs(model_dir)
  shutil.copyfile(UNCASED_VOCAB, os.path.join(data_dir, "vocab.txt"))

  # Our own pre-training run: checkpoint with Adam slots + pretrain_config.json.
  config = PretrainingConfig("m", data_dir, **TINY)
  pretrained = _randomized(PretrainingModel(config, SPECIAL), seed=1)
  slots = {f"{n}/adam_m": tf.Variable(tf.zeros_like(v)) for n, v in
           pretrained.named_variables().items()}
  _save(model_dir, pretrained, 7, **slots)
  config.write_json(os.path.join(model_dir, "pretrain_config.json"))

  released_model = _randomized(PretrainingModel(
      PretrainingConfig("electra_tiny", data_dir, **RELEASED), SPECIAL), seed=2)
  _write_released_checkpoint(os.path.join(data_dir, "models", "electra_tiny"), released_model)

  ft_config = FinetuningConfig("m", data_dir, task_names=["rte"], max_seq_length=SEQ,
                               model_hparam_overrides=OVERRIDES, embedding_size=26)
  finetuned = _randomized(finetuning_model.FinetuningModel(
      ft_config, task_builder.get_tasks(ft_config)), seed=3)
  ft_dir = os.path.join(model_dir, "finetuning_models", "rte_model_1")
  _save(ft_dir, finetuned, 3)

  out = {name: str(root / "exports" / name)
         for name in ("disc", "gen", "released", "ft", "disc_xla", "ft_xla")}
  os.makedirs(out["disc"])
  with open(os.path.join(out["disc"], "stale.txt"), "w", encoding="utf-8") as f:
    f.write("an older export")
  common = ["--data-dir", data_dir]
  export_model.main(common + ["--model-name", "m", "--output-dir", out["disc"], "--overwrite"])
  export_model.main(common + ["--model-name", "m", "--output-dir", out["gen"],
                              "--include-generator"])
  export_model.main(common + ["--model-name", "electra_tiny", "--output-dir", out["released"],
                              "--include-generator", "--hparams", json.dumps(RELEASED)])
  # Sizes come from models/m/pretrain_config.json, the trial dir is found.
  export_model.main(common + ["--model-name", "m", "--output-dir", out["ft"],
                              "--hparams", '{"task_names": ["rte"]}'])
  # XLA-compiled serving forward passes, loaded back in plain TensorFlow below.
  export_model.main(common + ["--model-name", "m", "--output-dir", out["disc_xla"], "--xla"])
  export_model.main(common + ["--model-name", "m", "--output-dir", out["ft_xla"], "--xla",
                              "--hparams", '{"task_names": ["rte"]}'])

  batch_file = str(root / "batch.npz")
  np.savez(batch_file, **batch)
  served_file = str(root / "served.npz")
  result = subprocess.run(
      [sys.executable, "-c", LOAD_SCRIPT, json.dumps(out), batch_file, served_file],
      cwd=str(root), capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  meta = json.loads(result.stdout.strip().splitlines()[-1])
  arrays = dict(np.load(served_file))
  served = {name: {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(name + "/")}
            for name in out}
  return dict(root=root, data_dir=data_dir, model_dir=model_dir, ft_dir=ft_dir, out=out,
              served=served, meta=meta, pretrained=pretrained, released=released_model,
              finetuned=finetuned, released_dir=os.path.join(data_dir, "models",
                                                             "electra_tiny"))


def _features(batch):
  return {k: tf.constant(v) for k, v in batch.items()}


def _checkpoint_weights(path):
  reader = tf.train.load_checkpoint(checkpointing.resolve_checkpoint(path))
  return {name: reader.get_tensor(name).astype(np.float64)
          for name in reader.get_variable_to_shape_map()
          if reader.get_variable_to_dtype_map()[name].is_floating}


def _load_info(export_dir):
  with open(os.path.join(export_dir, "assets", "export_info.json"), encoding="utf-8") as f:
    return json.load(f)


# ----------------------------------------------------------------------------- pre-trained

def test_signature_takes_three_int32_matrices_and_names_outputs(env):
  inputs = {name: ["int32", [None, None]] for name in saved_model.INPUT_NAMES}
  for name in ("disc", "gen", "released", "ft"):
    assert env["meta"][name]["inputs"] == inputs
  assert env["meta"]["disc"]["outputs"] == ["discriminator_logits", "sequence_output"]
  assert env["meta"]["gen"]["outputs"] == ["discriminator_logits", "generator_logits",
                                           "sequence_output"]
  served = env["served"]["gen"]
  assert served["discriminator_logits"].shape == (3, SEQ)
  assert served["sequence_output"].shape == (3, SEQ, 42)
  assert served["generator_logits"].shape == (3, SEQ, 30522)


def test_served_outputs_equal_the_in_process_model(env, batch):
  model = env["pretrained"]
  f = _features(batch)
  seq = model.discriminator(f["input_ids"], f["input_mask"], f["segment_ids"], False)
  gen = model.generator(f["input_ids"], f["input_mask"], f["segment_ids"], False)
  expected = {
      "sequence_output": seq.sequence_output.numpy(),
      "discriminator_logits": model.discriminator_head(seq.sequence_output).numpy(),
      "generator_logits": model.generator_head(gen.sequence_output).numpy(),
  }
  for name in ("disc", "gen"):
    for key, value in env["served"][name].items():
      np.testing.assert_allclose(value, expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_served_outputs_match_numpy_forward_from_the_checkpoint_file(env, batch):
  w = _checkpoint_weights(env["model_dir"])
  ids, mask, seg = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
  seq = numpy_bert.bert_forward(w, "electra", 3, ids, mask, seg)
  gen_seq = numpy_bert.bert_forward(w, "generator", 1, ids, mask, seg)  # H 14: 1 head.
  served = env["served"]["gen"]
  np.testing.assert_allclose(served["sequence_output"], seq, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(served["discriminator_logits"],
                             numpy_bert.discriminator_logits(w, seq), rtol=1e-4, atol=1e-4)
  gen_logits = numpy_bert.token_logits(w, "generator_predictions", EMBEDDINGS, gen_seq)
  np.testing.assert_allclose(served["generator_logits"], gen_logits, rtol=1e-4, atol=1e-3)
  # Not the initial weights: the logits really depend on the restored values.
  assert np.std(served["discriminator_logits"]) > 0.1


@pytest.mark.parametrize("plain,compiled", [("disc", "disc_xla"), ("ft", "ft_xla")])
def test_xla_export_serves_the_same_outputs(env, plain, compiled):
  """--xla: one XLA cluster per forward pass; same signature and outputs (fp32, 1e-5)."""
  assert env["meta"][compiled] == env["meta"][plain]
  assert env["served"][compiled].keys() == env["served"][plain].keys()
  for key, value in env["served"][plain].items():
    np.testing.assert_allclose(env["served"][compiled][key], value, rtol=1e-5, atol=1e-5,
                               err_msg=key)
  assert _load_info(env["out"][compiled])["xla"] is True
  assert _load_info(env["out"][plain])["xla"] is False
  assert _xla_functions(env["out"][compiled]) and not _xla_functions(env["out"][plain])


def _xla_functions(export_dir):
  """Names of the saved functions marked for XLA compilation (`_XlaMustCompile`)."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  return [function.signature.name for function in proto.meta_graphs[0].graph_def.library.function
          if "_XlaMustCompile" in function.attr and function.attr["_XlaMustCompile"].b]


def test_assets_and_export_info(env):
  assets = os.path.join(env["out"]["gen"], "assets")
  assert sorted(os.listdir(assets)) == ["bert_config.json", "export_info.json",
                                        "generator_config.json", "vocab.txt"]
  assert env["meta"]["gen"]["assets"] == ["bert_config_file", "export_info_file",
                                          "generator_config_file", "vocab_file"]
  with open(os.path.join(assets, "bert_config.json"), encoding="utf-8") as f:
    assert json.load(f) == env["pretrained"].bert_config.to_dict()
  with open(os.path.join(assets, "generator_config.json"), encoding="utf-8") as f:
    gen = json.load(f)
  assert (gen["hidden_size"], gen["num_attention_heads"], gen["intermediate_size"]) == (14, 1, 56)
  with open(os.path.join(assets, "vocab.txt"), encoding="utf-8") as f, \
       open(UNCASED_VOCAB, encoding="utf-8") as g:
    assert f.read() == g.read()
  info = _load_info(env["out"]["gen"])
  assert info["global_step"] == 7
  assert info["checkpoint"] == os.path.join(env["model_dir"], "model.ckpt-7")
  saved_config = os.path.join(env["model_dir"], "pretrain_config.json")
  assert info["hparam_sources"]["embedding_size"] == saved_config
  assert info["hparams"]["generator_hidden_size"] == 0.34
  assert info["outputs"]["generator_logits"] == {"dtype": "float32",
                                                 "shape": [None, None, 30522]}
  assert "generator_config.json" not in os.listdir(os.path.join(env["out"]["disc"], "assets"))


def test_overwrite_replaces_the_old_export_and_leaves_no_temporaries(env):
  assert not os.path.exists(os.path.join(env["out"]["disc"], "stale.txt"))
  assert os.path.isfile(os.path.join(env["out"]["disc"], "saved_model.pb"))
  assert not [n for n in os.listdir(os.path.dirname(env["out"]["disc"]))
              if n.startswith(".tmp-")]


def test_refuses_to_overwrite_a_non_empty_output_dir(env, tmp_path):
  out = tmp_path / "busy"
  out.mkdir()
  (out / "keep.txt").write_text("user data")
  with pytest.raises(FileExistsError, match="--overwrite"):
    export_model.main(["--data-dir", env["data_dir"], "--model-name", "m",
                       "--output-dir", str(out)])
  assert os.listdir(out) == ["keep.txt"]
  with pytest.raises(FileExistsError, match="is a file"):
    saved_model.export_model(env["data_dir"], "m", str(out / "keep.txt"), overwrite=True)


def test_electric_generator_logits_are_the_cloze_logits(tmp_path, batch):
  data_dir = str(tmp_path / "data")
  config = PretrainingConfig("el", data_dir, electric_objective=True, electra_objective=False,
                             **TINY)
  model = _randomized(PretrainingModel(config, SPECIAL), seed=4)
  _save(config.model_dir, model, 5)
  hparams = {"electric_objective": True, "electra_objective": False, **TINY}
  out = saved_model.export_model(data_dir, "el", str(tmp_path / "out"), hparams,
                                  include_generator=True)
  served = tf.saved_model.load(out).signatures["serving_default"](**_features(batch))
  w = _checkpoint_weights(config.model_dir)
  ids, mask, seg = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
  ltr = numpy_bert.bert_forward(w, "generator_ltr", 1, ids, mask, seg, ltr=True)
  rtl = numpy_bert.bert_forward(w, "generator_rtl", 1, ids, mask, seg, rtl=True)
  cloze = numpy_bert.token_logits(w, "cloze_predictions", EMBEDDINGS,
                                  numpy_bert.cloze_reprs(ltr, rtl))
  np.testing.assert_allclose(served["generator_logits"].numpy(), cloze, rtol=1e-4, atol=1e-3)
  seq = numpy_bert.bert_forward(w, "electra", 3, ids, mask, seg)
  np.testing.assert_allclose(served["discriminator_logits"].numpy(),
                             numpy_bert.discriminator_logits(w, seq), rtol=1e-4, atol=1e-4)
  assert "s_t only" in _load_info(out)["note"]


# ----------------------------------------------------------------------------- released style

def test_released_checkpoint_without_slots_or_config(env, batch):
  w = _checkpoint_weights(env["released_dir"])
  assert not any(n.endswith("/adam_m") for n in w)
  ids, mask, seg = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
  seq = numpy_bert.bert_forward(w, "electra", 3, ids, mask, seg)
  # generator_hidden_size 1.0: H 42, heads max(1, 42 // 64) = 1 (docs/hparams.md#generator-size).
  gen_seq = numpy_bert.bert_forward(w, "generator", 1, ids, mask, seg)
  served = env["served"]["released"]
  np.testing.assert_allclose(served["discriminator_logits"],
                             numpy_bert.discriminator_logits(w, seq), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      served["generator_logits"],
      numpy_bert.token_logits(w, "generator_predictions", EMBEDDINGS, gen_seq),
      rtol=1e-4, atol=1e-3)
  info = _load_info(env["out"]["released"])
  assert info["checkpoint"] == os.path.join(env["released_dir"], "electra_tiny")
  assert info["global_step"] == 1000
  assert info["hparam_sources"]["generator_hidden_size"] == "--hparams"
  assert info["hparam_sources"]["model_size"] == "default"


def test_released_generator_needs_generator_hidden_size(env, tmp_path):
  hparams = {k: v for k, v in RELEASED.items() if k != "generator_hidden_size"}
  out = str(tmp_path / "gen")
  with pytest.raises(ValueError) as error:
    saved_model.export_model(env["data_dir"], "electra_tiny", out, hparams,
                              include_generator=True)
  message = str(error.value)
  assert ("generator/encoder/layer_0/attention/self/query/kernel: checkpoint [42, 42] "
          "vs model [10, 10]") in message  # 0.25 * 42 = 10.5 -> 10
  assert "generator_predictions/dense/kernel: checkpoint [42, 26] vs model [10, 26]" in message
  assert '"generator_hidden_size": 1.0' in message
  assert not os.path.exists(out)


def test_discriminator_only_export_ignores_the_generator_size(env, tmp_path):
  hparams = {k: v for k, v in RELEASED.items() if k != "generator_hidden_size"}
  out = saved_model.export_model(env["data_dir"], "electra_tiny", str(tmp_path / "d"),
                                  hparams)
  assert os.path.isfile(os.path.join(out, "saved_model.pb"))
  assert sorted(_load_info(out)["outputs"]) == ["discriminator_logits", "sequence_output"]


def test_missing_variables_are_named(env, tmp_path):
  # A fine-tuned checkpoint has no discriminator head: not exportable as pre-trained.
  out = str(tmp_path / "x")
  with pytest.raises(ValueError) as error:
    saved_model.export_model(env["data_dir"], "m", out, checkpoint=env["ft_dir"])
  message = str(error.value)
  assert "4 needed variables are missing" in message
  for name in ("discriminator_predictions/dense/kernel [42, 42]",
               "discriminator_predictions/dense_1/bias [1]"):
    assert name in message
  assert "--finetuned" in message and "task_specific" in message
  assert not os.path.exists(out)


def test_missing_model_dir(env, tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    saved_model.export_model(env["data_dir"], "nope", str(tmp_path / "o"))


# ----------------------------------------------------------------------------- fine-tuned

def test_finetuned_classification_outputs(env, batch):
  served = env["served"]["ft"]
  assert env["meta"]["ft"]["outputs"] == ["rte_logits", "rte_predictions",
                                          "rte_probabilities", "sequence_output"]
  b = len(LENGTHS)
  features = {**_features(batch), "task_id": tf.zeros([b], tf.int32),
              "rte_label_ids": tf.zeros([b], tf.int32), "rte_eid": tf.zeros([b], tf.int32)}
  _, expected = env["finetuned"](features, training=False)
  np.testing.assert_allclose(served["rte_logits"], expected["rte_logits"].numpy(),
                             rtol=1e-5, atol=1e-5)
  # Independent: dense over [CLS] of the numpy encoder, weights from the checkpoint file.
  w = _checkpoint_weights(env["ft_dir"])
  seq = numpy_bert.bert_forward(w, "electra", 3, batch["input_ids"], batch["input_mask"],
                                batch["segment_ids"])
  logits = seq[:, 0] @ w["task_specific/rte/dense/kernel"] + w["task_specific/rte/dense/bias"]
  np.testing.assert_allclose(served["sequence_output"], seq, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(served["rte_logits"], logits, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(served["rte_probabilities"], numpy_bert.softmax(logits),
                             atol=1e-5)
  np.testing.assert_array_equal(served["rte_predictions"], np.argmax(logits, -1))
  info = _load_info(env["out"]["ft"])
  assert info["kind"] == "finetuned"
  assert info["tasks"]["rte"]["labels"] == ["entailment", "not_entailment"]
  assert info["checkpoint"] == os.path.join(env["ft_dir"], "model.ckpt-3")
  assert info["hparam_sources"]["task_names"] == "--hparams"
  assert info["hparam_sources"]["embedding_size"].endswith("pretrain_config.json")


def test_finetuned_checkpoint_must_be_found(env, tmp_path):
  with pytest.raises(FileNotFoundError, match="--checkpoint"):
    saved_model.export_model(env["data_dir"], "m", str(tmp_path / "o"),
                              {"task_names": ["mrpc"]})
  with pytest.raises(ValueError, match="pre-trained models only"):
    saved_model.export_model(env["data_dir"], "m", str(tmp_path / "o"),
                              {"task_names": ["rte"]}, include_generator=True)


def test_finetuned_export_reads_the_runs_finetuning_config(env, tmp_path):
  # run_finetuning.py saves its config next to the trial's checkpoints (ModelRunner.train).
  trial_dir = str(tmp_path / "rte_model_1")
  shutil.copytree(env["ft_dir"], trial_dir)
  FinetuningConfig("m", env["data_dir"], task_names=["rte"], max_seq_length=48,
                   model_hparam_overrides=OVERRIDES, embedding_size=26).write_json(
                       os.path.join(trial_dir, model_runner.CONFIG_FILE))
  plan = saved_model.build_finetuned_export(env["data_dir"], "m", {}, checkpoint=trial_dir)
  sources = plan.info["hparam_sources"]
  assert sources["task_names"] == os.path.join(trial_dir, "finetuning_config.json")
  assert plan.info["hparams"]["max_seq_length"] == 48
  assert sources["embedding_size"] == os.path.join(trial_dir, "finetuning_config.json")


def test_tagging_export_needs_the_label_mapping(env, tmp_path):
  with pytest.raises(FileNotFoundError, match="chunk_label_mapping.pkl"):
    saved_model.export_model(env["data_dir"], "m", str(tmp_path / "o"),
                              {"task_names": ["chunk"]}, checkpoint=env["ft_dir"])


# ----------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("hparams,flag,expected", [
    ({}, None, False), ({"task_names": ["rte"]}, None, True), ({}, True, True),
    ({"task_names": ["rte"]}, False, False)], ids=["default", "task_names", "flag", "forced"])
def test_is_finetuned(hparams, flag, expected):
  assert saved_model.is_finetuned(hparams, flag) is expected


def test_hf_format_writes_transformers_directories_with_the_checkpoint_values(env, tmp_path):
  out = str(tmp_path / "hf")
  export_model.main(["--data-dir", env["data_dir"], "--model-name", "m", "--output-dir", out,
                     "--include-generator", "--format", "hf"])
  weights = _checkpoint_weights(env["model_dir"])
  for directory, architecture in ((out, "ElectraForPreTraining"),
                                  (os.path.join(out, "generator"), "ElectraForMaskedLM")):
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
      assert json.load(f)["architectures"] == [architecture]
    tensors = hf_conversion.read_safetensors(os.path.join(directory, "model.safetensors"))
    assert filecmp.cmp(os.path.join(directory, "vocab.txt"), UNCASED_VOCAB, shallow=False)
    # Spot-check the name mapping and the kernel transpose against the checkpoint.
    scope = "electra" if architecture == "ElectraForPreTraining" else "generator"
    kernel = weights[f"{scope}/encoder/layer_0/attention/self/query/kernel"]
    np.testing.assert_array_equal(
        tensors["electra.encoder.layer.0.attention.self.query.weight"], kernel.T)
    np.testing.assert_array_equal(tensors["electra.embeddings.word_embeddings.weight"],
                                  weights["electra/embeddings/word_embeddings"])
  disc = hf_conversion.read_safetensors(os.path.join(out, "model.safetensors"))
  np.testing.assert_array_equal(disc["discriminator_predictions.dense_prediction.weight"],
                                weights["discriminator_predictions/dense_1/kernel"].T)
  gen = hf_conversion.read_safetensors(os.path.join(out, "generator", "model.safetensors"))
  np.testing.assert_array_equal(gen["generator_lm_head.bias"],
                                weights["generator_predictions/output_bias"])


def test_refuses_output_dirs_overlapping_the_models(env, tmp_path, capsys):
  """--output-dir in/around <data-dir>/models or the checkpoint: one error line, nothing deleted."""
  data_dir, model_dir = env["data_dir"], env["model_dir"]
  released = tmp_path / "downloads" / "electra_tiny"
  shutil.copytree(env["released_dir"], released)
  before, released_before = tree_state(data_dir), tree_state(released)
  cases = [
      ([model_dir], f"--output-dir {model_dir} is the model directory {model_dir}"),
      ([os.path.join(data_dir, "models")], "contains the model directory"),
      ([data_dir], "contains the model directory"),
      ([os.path.join(model_dir, "finetuning_models")], "is inside the model directory"),
      ([os.path.join(data_dir, "models", "electra_tiny")], "is inside the models directory"),
      ([str(released), "--checkpoint", str(released)],
       f"is the checkpoint directory {released}"),
      ([str(released.parent), "--checkpoint", os.path.join(released, "model.ckpt-0")],
       "contains the checkpoint directory"),
  ]
  for extra, message in cases:
    argv = ["--data-dir", data_dir, "--model-name", "m", "--overwrite", "--output-dir", *extra]
    assert cli.run(export_model.main, argv) == cli.USAGE_EXIT, message
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "Traceback" not in err, err
    assert message in err and f"e.g. to {os.path.join(data_dir, 'exports', 'm')}" in err, err
  assert tree_state(data_dir) == before and tree_state(released) == released_before
