"""The Spanish-ELECTRA recipe end to end on real cased Spanish text.

build_vocab.py --no-lower-case -> build_pretraining_dataset.py with the
recipe's flags (verbatim) -> run_pretraining.py with the recipe's
hparams.json (verbatim but for few steps and a tiny model: the full
ELECTRA-Small with its 119,547-row table takes minutes per step on a small
CPU) -> convert_hf.py export, whose tokenizer files must tokenize like our
cased FullTokenizer.
"""
import json
import os
import shutil

import numpy as np
import pytest

import build_pretraining_dataset
import build_vocab
import convert_hf
import run_pretraining
from model import tokenization
from tests.conftest import TEST_DATA
from tests.hf_tokenizers import hf_tokenizers_from_dir

pytest.importorskip("tokenizers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

SPANISH = os.path.join(TEST_DATA, "multilingual", "es_chatterbot.txt")
# The recipe's hparams.json, string booleans and all.
RECIPE_HPARAMS = {"do_train": "true", "do_eval": "false", "model_size": "small",
                  "do_lower_case": "false", "vocab_size": 119547, "num_train_steps": 100,
                  "save_checkpoints_steps": 100, "train_batch_size": 32}
# For the test only: 2 steps of a tiny model (the table keeps 119,547 rows).
TEST_OVERRIDES = {"num_train_steps": 2, "embedding_size": 16, "generator_hidden_size": 0.5,
                  "model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 2,
                                             "num_attention_heads": 2,
                                             "intermediate_size": 37}}


def test_spanish_recipe_end_to_end(tmp_path):
  data_dir = str(tmp_path / "data")
  os.makedirs(data_dir)
  shutil.copy(SPANISH, data_dir)
  vocab = os.path.join(data_dir, "vocab.txt")

  assert build_vocab.main(["--corpus-dir", data_dir, "--output-file", vocab,
                           "--vocab-size", "2000", "--no-lower-case"]) is None
  assert build_pretraining_dataset.main([
      "--corpus-dir", data_dir, "--vocab-file", vocab,
      "--output-dir", os.path.join(data_dir, "pretrain_tfrecords"), "--max-seq-length", "128",
      "--blanks-separate-docs", "False", "--no-lower-case", "--num-processes", "5"]) == 0
  shards = os.listdir(os.path.join(data_dir, "pretrain_tfrecords"))
  assert len(shards) == 1000 and "vocab.txt" in os.listdir(data_dir)

  hparams = tmp_path / "hparams.json"
  hparams.write_text(json.dumps({**RECIPE_HPARAMS, **TEST_OVERRIDES}))
  run_pretraining.main(["--data-dir", data_dir, "--model-name", "electra-spanish",
                        "--hparams", str(hparams)])
  model_dir = os.path.join(data_dir, "models", "electra-spanish")
  assert os.path.exists(os.path.join(model_dir, "model.ckpt-2.index"))

  hf_dir = str(tmp_path / "electra-spanish-hf")
  convert_hf.main(["export", "--data-dir", data_dir, "--model-name", "electra-spanish",
                   "--output-dir", hf_dir])
  config = json.load(open(os.path.join(hf_dir, "config.json")))
  assert config["vocab_size"] == 119547  # The recipe's padded table, kept.
  weights = safetensors_numpy.load_file(os.path.join(hf_dir, "model.safetensors"))
  assert weights["electra.embeddings.word_embeddings.weight"].shape == (119547, 16)
  tok_config = json.load(open(os.path.join(hf_dir, "tokenizer_config.json")))
  assert tok_config["do_lower_case"] is False and tok_config["strip_accents"] is False
  assert open(os.path.join(hf_dir, "vocab.txt")).read() == open(vocab).read()

  # The exported tokenizer files tokenize the corpus as our cased tokenizer does.
  theirs = hf_tokenizers_from_dir(hf_dir)
  ours = tokenization.FullTokenizer(vocab, do_lower_case=False)
  with open(SPANISH, encoding="utf-8") as f:
    lines = [line for line in f.read().splitlines() if line]
  n_accented = 0
  for line in lines:
    pieces = ours.tokenize(line)
    assert all(tokenize(line) == pieces for tokenize in theirs), line
    assert "[UNK]" not in pieces  # Every corpus character is in the vocabulary.
    n_accented += any(c in "áéíóúñ¿¡" for p in pieces for c in p)
  assert n_accented > 100
  assert np.isfinite(weights["discriminator_predictions.dense.weight"]).all()
