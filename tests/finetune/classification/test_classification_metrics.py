"""Scorers of finetune/classification/classification_metrics.py vs sklearn / scipy / hand values."""
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from finetune.classification import classification_metrics as cm


def feed(scorer, true_key, trues, preds, losses):
  for y, p, loss in zip(trues, preds, losses):
    scorer.update({true_key: np.asarray(y), "predictions": np.asarray(p),
                   "loss": np.float32(loss), "eid": np.int32(0)})
  return dict(scorer.get_results())


def test_accuracy_vs_sklearn():
  rng = np.random.default_rng(0)
  labels, preds = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
  losses = rng.random(200)
  results = feed(cm.AccuracyScorer(), "label_ids", labels, preds, losses)
  assert list(results) == ["accuracy", "loss"]
  assert results["accuracy"] == pytest.approx(100 * sklearn.metrics.accuracy_score(labels, preds))
  assert results["loss"] == pytest.approx(losses.mean())


def test_accuracy_hand_checked():
  results = feed(cm.AccuracyScorer(), "label_ids", [1, 0, 1, 1], [1, 1, 1, 0], [0.5, 1.5, 0, 2])
  assert results == {"accuracy": 50.0, "loss": 1.0}


def test_mcc_hand_checked_and_vs_formula():
  # TP=2, TN=1, FP=1, FN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6.
  results = feed(cm.MCCScorer(), "label_ids", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1], [0.0] * 5)
  assert list(results) == ["mcc", "loss"]
  assert results["mcc"] == pytest.approx(100 / 6)
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, 300)
  preds = np.where(rng.random(300) < 0.7, labels, 1 - labels)
  tp = np.sum((labels == 1) & (preds == 1))
  tn = np.sum((labels == 0) & (preds == 0))
  fp = np.sum((labels == 0) & (preds == 1))
  fn = np.sum((labels == 1) & (preds == 0))
  mcc = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
  assert feed(cm.MCCScorer(), "label_ids", labels, preds, [0.0] * 300)["mcc"] == (
      pytest.approx(100 * mcc))


def test_regression_vs_numpy():
  rng = np.random.default_rng(2)
  targets = rng.random(100)
  preds = targets + 0.3 * rng.normal(size=100)
  losses = (preds - targets) ** 2
  results = feed(cm.RegressionScorer(), "targets", targets, preds, losses)
  assert list(results) == ["pearson", "spearman", "mse", "loss"]
  assert results["pearson"] == pytest.approx(100 * np.corrcoef(preds, targets)[0, 1])
  ranks = lambda x: np.argsort(np.argsort(x))  # No ties with continuous values.
  assert results["spearman"] == pytest.approx(
      100 * np.corrcoef(ranks(preds), ranks(targets))[0, 1])
  assert results["mse"] == pytest.approx(np.mean((preds - targets) ** 2))
  assert results["loss"] == pytest.approx(results["mse"])


def test_regression_spearman_with_ties_matches_scipy():
  targets, preds = [0.2, 0.2, 0.4, 1.0], [0.1, 0.3, 0.3, 0.9]
  results = feed(cm.RegressionScorer(), "targets", targets, preds, [0.0] * 4)
  assert results["spearman"] == pytest.approx(100 * scipy.stats.spearmanr(preds, targets)[0])


def test_f1_vs_sklearn_and_zero_case():
  rng = np.random.default_rng(3)
  labels, preds = rng.integers(0, 2, 150), rng.integers(0, 2, 150)
  results = feed(cm.F1Scorer(), "label_ids", labels, preds, [1.0] * 150)
  assert list(results) == ["precision", "recall", "f1", "loss"]
  assert results["precision"] == pytest.approx(100 * sklearn.metrics.precision_score(labels, preds))
  assert results["recall"] == pytest.approx(100 * sklearn.metrics.recall_score(labels, preds))
  assert results["f1"] == pytest.approx(100 * sklearn.metrics.f1_score(labels, preds))
  # More predicted positives than gold ones: the original's n_gold bug would give recall 100.
  results = feed(cm.F1Scorer(), "label_ids", [1, 0, 0, 0], [1, 1, 1, 0], [0.0] * 4)
  assert results["recall"] == 100.0 and results["precision"] == pytest.approx(100 / 3)
  results = feed(cm.F1Scorer(), "label_ids", [1, 1], [0, 0], [0.0] * 2)
  assert (results["precision"], results["recall"], results["f1"]) == (0.0, 0.0, 0.0)


def test_results_str_and_prefix():
  scorer = cm.AccuracyScorer()
  feed(scorer, "label_ids", [2, 0, 1], [2, 0, 0], [0.25, 0.5, 0.3])
  assert scorer.results_str() == "accuracy: 66.67 - loss: 0.35"
  assert scorer.get_results("mnli_") == [("mnli_accuracy", pytest.approx(200 / 3)),
                                         ("mnli_loss", pytest.approx(0.35))]
