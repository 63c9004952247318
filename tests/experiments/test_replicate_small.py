"""experiments/replicate_small.py end to end at a tiny budget, and its FLOPs matching."""
import json
import os
import shutil

import pytest

from configure_pretraining import PretrainingConfig
from experiments import replicate_small
from model import flops
from tests.conftest import TEST_DATA
from tests.training.test_trainer import read_scalars

TINY_PRETRAIN = json.dumps({
    "model_hparam_overrides": {"num_hidden_layers": 1, "hidden_size": 32,
                               "intermediate_size": 64, "num_attention_heads": 1},
    "embedding_size": 16, "train_batch_size": 4, "eval_batch_size": 4, "max_seq_length": 32,
    "num_warmup_steps": 0})
TINY_FINETUNE = json.dumps({"max_seq_length": 32, "num_train_epochs": 1, "train_batch_size": 8})


def test_flops_per_step_follow_flops_computation(tmp_path):
  # ELECTRA-Small as in the paper's table: hidden 256, 12 layers, generator 1/4, E 128, S 128.
  config = PretrainingConfig("x", str(tmp_path), train_batch_size=128)
  mlm = PretrainingConfig("x", str(tmp_path), train_batch_size=128, electra_objective=False)
  dense = flops.get_electra_train_flops(
      256, 12, 64, 12, 128, 1, True, e=128, s=128, output_frac=19 / 128)
  dense_mlm = flops.TransformerHparams(
      256, 12, e=128, s=128, output_frac=19 / 128).get_train_flops(128, 1)
  per_step = replicate_small.pretraining_flops_per_step
  assert per_step(config, sparse_embed_lookup=False) == pytest.approx(dense)
  assert per_step(mlm, sparse_embed_lookup=False) == pytest.approx(dense_mlm)
  # A gather instead of a one-hot matmul saves 2·E·V FLOPs per token, forward and
  # backward (×2), per tower: two towers for ELECTRA, one for MLM.
  one_hot = 2 * 128 * 128 * (2 * 128 * 30522)
  assert per_step(config) == pytest.approx(dense - 2 * one_hot)
  assert per_step(mlm) == pytest.approx(dense_mlm - one_hot)
  assert 1 < per_step(config) / per_step(mlm) < per_step(config, False) / per_step(mlm, False)


def test_summary_is_median_mean_population_std_min_max():
  assert replicate_small.summarize([70.0, 50.0, 60.0, 90.0]) == {
      "median": 65.0, "mean": 67.5, "std": pytest.approx(14.79019945774904), "min": 50.0,
      "max": 90.0, "n": 4}


def test_runs_end_to_end_at_a_tiny_budget(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for name in os.listdir(os.path.join(TEST_DATA, "corpus")):
    if name.endswith(".txt"):
      shutil.copy(os.path.join(TEST_DATA, "corpus", name), corpus)
  out = tmp_path / "out"
  results = replicate_small.main([
      "--electra-steps", "3", "--eval-points", "1", "--eval-steps", "1", "--seeds", "2",
      "--tasks", "sst", "--output-dir", str(out), "--corpus-dir", str(corpus),
      "--task-data-dir", os.path.join(TEST_DATA, "finetune"),
      "--pretrain-hparams", TINY_PRETRAIN, "--finetune-hparams", TINY_FINETUNE])
  assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
  pre = results["pretraining"]
  ratio = results["settings"]["flops_ratio_electra_over_mlm"]
  assert ratio > 1  # an ELECTRA step costs more than an MLM step
  assert pre["electra"]["steps"] == 3 and pre["mlm"]["steps"] == round(3 * ratio)
  assert pre["mlm"]["total_flops"] == pytest.approx(pre["electra"]["total_flops"], rel=0.2)
  assert [p["step"] for p in pre["electra"]["curve"]] == [0, 3]
  assert [p["step"] for p in pre["mlm"]["curve"]] == [0, pre["mlm"]["steps"]]
  assert {"disc_auc", "disc_precision", "disc_recall", "masked_lm_accuracy"} <= set(
      pre["electra"]["curve"][-1])
  assert "disc_auc" not in pre["mlm"]["curve"][-1]  # the MLM model has no discriminator
  for model in ("electra", "mlm", "none"):
    r = results["finetuning"][model]["sst"]
    assert r["metric"] == "accuracy" and len(r["scores"]) == 2
    assert r["min"] <= r["median"] <= r["max"] and 0 <= r["min"] and r["max"] <= 100
  table = (out / "results.md").read_text()
  assert "| sst (accuracy) |" in table and "no pre-training" in table
  scalars = read_scalars(str(out / "tensorboard" / "electra"))
  assert [step for step, _ in scalars["heldout/disc_auc"]] == [0, 3]
  assert "finetune/sst_accuracy_median" in read_scalars(str(out / "tensorboard" / "finetune_none"))


def test_bad_tasks_is_a_usage_error():
  with pytest.raises(ValueError, match="--tasks: unknown"):
    replicate_small.parse_args(["--tasks", "sst,mnli"])
