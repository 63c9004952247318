"""FinetuningModel (finetune/finetuning_model.py): names
(docs/checkpoints.md#fine-tuning-variables), summed loss."""
import os

import numpy as np
import pytest
import tensorflow as tf

from configure_finetuning import FinetuningConfig
from finetune import finetuning_model, task_builder
from model.modeling import BertConfig
from training.config_base import PathTemplate
from tests.conftest import TEST_DATA, UNCASED_VOCAB

GLUE_DIR = os.path.join(TEST_DATA, "finetune", "glue")
B, S = 7, 9


def make_config(task_names=("mnli", "sts"), **kwargs):
  return FinetuningConfig("electra_test", "/nonexistent", task_names=list(task_names),
                          vocab_file=UNCASED_VOCAB,
                          raw_data_dir=PathTemplate(os.path.join(GLUE_DIR, "{:}")), **kwargs)


def layer_names(k, h, i):
  p = f"electra/encoder/layer_{k}/"
  return {
      p + "attention/self/query/kernel": (h, h), p + "attention/self/query/bias": (h,),
      p + "attention/self/key/kernel": (h, h), p + "attention/self/key/bias": (h,),
      p + "attention/self/value/kernel": (h, h), p + "attention/self/value/bias": (h,),
      p + "attention/output/dense/kernel": (h, h), p + "attention/output/dense/bias": (h,),
      p + "attention/output/LayerNorm/beta": (h,), p + "attention/output/LayerNorm/gamma": (h,),
      p + "intermediate/dense/kernel": (h, i), p + "intermediate/dense/bias": (i,),
      p + "output/dense/kernel": (i, h), p + "output/dense/bias": (h,),
      p + "output/LayerNorm/beta": (h,), p + "output/LayerNorm/gamma": (h,),
  }


def test_variable_names_debug_small_model():
  # Debug model (3 layers, H 144, I 576) with the small preset's E = 128.
  config = make_config(debug=True)
  model = finetuning_model.FinetuningModel(config, task_builder.get_tasks(config))
  expected = {
      "electra/embeddings/word_embeddings": (30522, 128),
      "electra/embeddings/token_type_embeddings": (2, 128),
      "electra/embeddings/position_embeddings": (512, 128),
      "electra/embeddings/LayerNorm/beta": (128,),
      "electra/embeddings/LayerNorm/gamma": (128,),
      "electra/embeddings_project/kernel": (128, 144),
      "electra/embeddings_project/bias": (144,),
      "task_specific/mnli/dense/kernel": (144, 3),
      "task_specific/mnli/dense/bias": (3,),
      "task_specific/sts/dense/kernel": (144, 1),
      "task_specific/sts/dense/bias": (1,),
  }
  for k in range(3):
    expected.update(layer_names(k, 144, 576))
  names = {name: tuple(v.shape) for name, v in model.named_variables().items()}
  assert names == expected
  assert len(names) == 5 + 2 + 3 * 16 + 4
  assert list(model.named_variables()) == sorted(expected)
  assert all(v.trainable for v in model.named_variables().values())


@pytest.fixture(scope="module")
def tiny_model():
  config = make_config(embedding_size=16, max_seq_length=S)
  bert_config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=4, intermediate_size=37)
  return finetuning_model.FinetuningModel(config, task_builder.get_tasks(config), bert_config)


def make_features(task_id, seed=0):
  rng = np.random.default_rng(seed)
  input_mask = (np.arange(S)[None, :] < rng.integers(2, S + 1, size=(B, 1))).astype(np.int32)
  return {
      "input_ids": tf.constant(rng.integers(1, 99, size=(B, S)) * input_mask, tf.int32),
      "input_mask": tf.constant(input_mask),
      "segment_ids": tf.constant((np.arange(S)[None, :] >= 3) * input_mask, tf.int32),
      "task_id": tf.constant(task_id, tf.int32),
      "mnli_eid": tf.range(B, dtype=tf.int32),
      "mnli_label_ids": tf.constant(rng.integers(0, 3, size=B), tf.int32),
      "sts_eid": tf.range(B, dtype=tf.int32) + 100,
      "sts_targets": tf.constant(rng.random(B), tf.float32),
  }


def test_loss_is_masked_batch_sum(tiny_model):
  task_id = np.array([0, 1, 0, 2, 1, 0, 2])  # 2 = padding (len(task_names)).
  features = make_features(task_id)
  loss, outputs = tiny_model(features, training=False)
  pooled = tiny_model.encoder(features["input_ids"], features["input_mask"],
                              features["segment_ids"], False).pooled_output.numpy()
  mnli, sts = tiny_model.heads
  logits = pooled @ mnli.dense.kernel.numpy() + mnli.dense.bias.numpy()
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  ce = -log_probs[np.arange(B), features["mnli_label_ids"].numpy()]
  prediction = (pooled @ sts.dense.kernel.numpy())[:, 0] + sts.dense.bias.numpy()[0]
  se = (prediction - features["sts_targets"].numpy()) ** 2
  expected = ce[task_id == 0].sum() + se[task_id == 1].sum()
  assert loss.numpy() == pytest.approx(expected, rel=1e-5)
  # Every head computes all rows; only the masking picks rows.
  np.testing.assert_allclose(outputs["mnli_loss"].numpy(), ce, rtol=1e-5)
  np.testing.assert_allclose(outputs["sts_loss"].numpy(), se, rtol=1e-4, atol=1e-7)
  assert sorted(outputs) == ["mnli_eid", "mnli_label_ids", "mnli_logits", "mnli_loss",
                             "mnli_predictions", "sts_eid", "sts_loss", "sts_predictions",
                             "sts_targets", "task_id"]
  np.testing.assert_array_equal(outputs["task_id"].numpy(), task_id)
  np.testing.assert_array_equal(outputs["sts_eid"].numpy(), np.arange(B) + 100)


def test_padding_and_other_task_rows_get_no_gradient(tiny_model):
  features = make_features(np.array([0, 2, 0, 2, 0, 0, 2]), seed=1)
  with tf.GradientTape() as tape:
    loss, _ = tiny_model(features, training=False)
  variables = tiny_model.named_variables()
  grads = dict(zip(variables, tape.gradient(loss, list(variables.values()))))
  assert np.abs(grads["task_specific/mnli/dense/kernel"].numpy()).sum() > 0
  assert not grads["task_specific/sts/dense/kernel"].numpy().any()
  assert not grads["task_specific/sts/dense/bias"].numpy().any()
  # Only padding rows: zero loss.
  padding_only, _ = tiny_model(make_features(np.full(B, 2)), training=False)
  assert padding_only.numpy() == 0.0


def test_seeded_dropout_is_deterministic(tiny_model):
  features = make_features(np.array([0, 1, 0, 1, 1, 0, 2]), seed=2)
  seed = tf.constant([5, 6], tf.int64)
  a, _ = tiny_model(features, training=True, seed=seed)
  b, _ = tiny_model(features, training=True, seed=seed)
  c, _ = tiny_model(features, training=True, seed=tf.constant([5, 7], tf.int64))
  eval_loss, _ = tiny_model(features, training=False)
  assert a.numpy() == b.numpy()
  assert a.numpy() != c.numpy() and a.numpy() != eval_loss.numpy()


def test_tf_function_matches_eager(tiny_model):
  features = make_features(np.array([1, 1, 0, 1, 0, 0, 2]), seed=3)
  eager, _ = tiny_model(features, training=False)
  graph, _ = tf.function(lambda f: tiny_model(f, training=False))(features)
  assert graph.numpy() == pytest.approx(eager.numpy(), rel=1e-6)


def test_errors():
  config = make_config(max_seq_length=600)
  with pytest.raises(ValueError, match=r"max_seq_length \(600\) exceeds .* \(512\)"):
    finetuning_model.FinetuningModel(config, task_builder.get_tasks(config),
                                     BertConfig(vocab_size=99, hidden_size=8,
                                                num_hidden_layers=1, num_attention_heads=2))
  config = make_config()
  tasks = task_builder.get_tasks(config)
  with pytest.raises(ValueError, match="must match task_names"):
    finetuning_model.FinetuningModel(config, tasks[::-1])
