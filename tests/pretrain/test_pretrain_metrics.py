"""Tests for pretrain/pretrain_metrics.py against hand-computed values and sklearn."""
import types

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pretrain import pretrain_metrics
from pretrain.pretrain_metrics import PretrainingMetrics


def _config(electra=True, electric=False, disc_weight=50.0):
  return types.SimpleNamespace(electra_objective=electra, electric_objective=electric,
                               disc_weight=disc_weight)


def _batch():
  return {
      "masked_lm_ids": np.array([[5, 6, 0], [7, 8, 9]]),
      "masked_lm_weights": np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
      "mlm_preds": np.array([[5, 1, 0], [7, 8, 1]]),
      "mlm_per_example_loss": np.array([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]]),
      "sampled_ids": np.array([[5, 6, 0], [1, 2, 9]]),
      "disc_per_example_loss": np.array([0.5, 1.5]),
      "disc_probs": np.array([[0.1, 0.9, 0.6, 0.7], [0.2, 0.4, 0.8, 0.3]]),
      "disc_preds": np.array([[0, 1, 1, 1], [0, 0, 1, 0]]),
      "disc_labels": np.array([[0, 1, 0, 1], [0, 1, 1, 0]]),
      "input_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]]),
  }


def test_hand_computed_metrics():
  metrics = PretrainingMetrics(_config())
  metrics.update(_batch())
  result = metrics.result()
  assert sorted(result) == sorted([
      "masked_lm_accuracy", "masked_lm_loss", "sampled_masked_lm_accuracy", "disc_loss",
      "disc_auc", "disc_accuracy", "disc_precision", "disc_recall"])
  assert result["masked_lm_accuracy"] == pytest.approx(3 / 5)  # 5, 7, 8 right of 5 slots.
  assert result["masked_lm_loss"] == pytest.approx((1 + 2 + 3 + 4 + 5) / 5)
  assert result["sampled_masked_lm_accuracy"] == pytest.approx(3 / 5)  # 5, 6, 9.
  assert result["disc_loss"] == pytest.approx(1.0)  # Unweighted mean over examples.
  # Non-padding positions: row 0 t0 ok, t1 ok, t2 wrong; row 1 t0 ok, t1 wrong, t2 ok, t3 ok.
  assert result["disc_accuracy"] == pytest.approx(5 / 7)
  assert result["disc_precision"] == pytest.approx(2 / 3)  # Predicted fake: r0t1, r0t2, r1t2.
  assert result["disc_recall"] == pytest.approx(2 / 3)  # Fake: r0t1, r1t1, r1t2.
  # Padding counts as label 0, score 0 (docs/metrics.md#pre-training-evaluation). Scores are
  # separable by the 200 thresholds, so the ROC AUC equals the exact one.
  labels = (_batch()["disc_labels"] * _batch()["input_mask"]).ravel()
  scores = (_batch()["disc_probs"] * _batch()["input_mask"]).ravel()
  assert roc_auc_score(labels, scores) == pytest.approx(14 / 15)
  assert result["disc_auc"] == pytest.approx(14 / 15, abs=1e-5)


def test_streaming_equals_one_big_batch_and_auc_close_to_sklearn():
  rng = np.random.RandomState(0)
  batches = []
  for _ in range(3):
    labels = rng.randint(0, 2, size=(4, 50))
    probs = 1 / (1 + np.exp(-(rng.randn(4, 50) + 1.5 * labels)))
    mask = (np.arange(50)[None] < rng.randint(20, 51, size=(4, 1))).astype(int)
    batch = {**{k: rng.randint(0, 3, size=(4, 6)) for k in ("masked_lm_ids", "mlm_preds",
                                                             "sampled_ids")},
             "masked_lm_weights": rng.randint(0, 2, size=(4, 6)).astype(float),
             "mlm_per_example_loss": rng.rand(4, 6), "disc_per_example_loss": rng.rand(4),
             "disc_probs": probs, "disc_preds": (probs > 0.5).astype(int), "disc_labels": labels,
             "input_mask": mask}
    batches.append(batch)
  streamed = PretrainingMetrics(_config())
  for batch in batches:
    streamed.update(batch)
  whole = PretrainingMetrics(_config())
  whole.update({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})
  for key, value in whole.result().items():
    assert streamed.result()[key] == pytest.approx(value, rel=1e-9), key
  labels = np.concatenate([(b["disc_labels"] * b["input_mask"]).ravel() for b in batches])
  scores = np.concatenate([(b["disc_probs"] * b["input_mask"]).ravel() for b in batches])
  # 200 thresholds approximate the exact AUC to about 1/200.
  assert whole.result()["disc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=5e-3)


def test_auc_thresholds_and_edge_cases():
  thresholds = pretrain_metrics.auc_thresholds()
  assert thresholds.shape == (200,) and thresholds.dtype == np.float32
  assert thresholds[0] == np.float32(-1e-7) and thresholds[-1] == np.float32(1 + 1e-7)
  assert thresholds[1] == np.float32(1 / 199)
  # All positives above all negatives -> 1; reversed -> 0.
  tp = np.array([2, 2, 0.0]); fn = np.array([0, 0, 2.0])
  tn = np.array([0, 2, 2.0]); fp = np.array([2, 0, 0.0])
  assert pretrain_metrics.auc_from_counts(tp, fn, tn, fp) == pytest.approx(1.0, abs=1e-6)
  assert pretrain_metrics.auc_from_counts(fp, tn, fn, tp) == pytest.approx(0.0, abs=1e-6)


def test_metric_selection_and_errors():
  mlm_only = PretrainingMetrics(_config(electra=False))
  batch = _batch()
  mlm_only.update({k: batch[k] for k in ("masked_lm_ids", "masked_lm_weights", "mlm_preds",
                                          "mlm_per_example_loss")})
  assert sorted(mlm_only.result()) == ["masked_lm_accuracy", "masked_lm_loss"]
  no_disc = PretrainingMetrics(_config(disc_weight=0.0))
  no_disc.update(batch)
  assert "disc_auc" not in no_disc.result() and "sampled_masked_lm_accuracy" in no_disc.result()
  assert PretrainingMetrics(_config()).result() == {}
  with pytest.raises(ValueError, match="missing"):
    PretrainingMetrics(_config()).update({k: v for k, v in batch.items() if k != "disc_probs"})


def test_metric_tensors_drops_none_and_logits():
  fields = {k: None for k in ("total_loss", "mlm_logits", "sampled_ids")}
  fields.update({"masked_lm_ids": 1, "disc_probs": 2})
  outputs = types.SimpleNamespace(_asdict=lambda: fields)
  assert pretrain_metrics.metric_tensors(outputs) == {"masked_lm_ids": 1, "disc_probs": 2}
