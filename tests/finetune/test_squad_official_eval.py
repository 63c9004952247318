"""Our official SQuAD 2.0 / 1.1 and MRQA evaluators against hand-computed values."""
import json
import os
import subprocess
import sys

import pytest

from finetune.qa import mrqa_official_eval
from finetune.qa import squad_official_eval as squad_eval
from finetune.qa import squad_official_eval_v1 as squad_eval_v1
from tests.conftest import REPO_ROOT, TEST_DATA

SQUAD_V1_SLICE = os.path.join(TEST_DATA, "qa", "squadv1_dev_slice.json")
SQUAD_V2_SLICE = os.path.join(TEST_DATA, "qa", "squadv2_dev_slice_SYNTHETIC_unanswerable.json")
MRQA_SLICE = os.path.join(TEST_DATA, "qa", "mrqa_from_squadv1_dev_slice.jsonl")


@pytest.mark.parametrize("text, expected", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("an apple a day", "apple day"),
    ("Theatre and Anthem", "theatre and anthem"),  # articles only as whole words
    ("don't (stop)", "dont stop"),
    ("20–25%", "20–25"),  # the en dash is not ASCII punctuation
    ("A", ""),
    ("\tDenver\nBroncos ", "denver broncos"),
])
def test_normalize_answer(text, expected):
  assert squad_eval.normalize_answer(text) == expected


def test_exact_and_f1_hand_values():
  assert squad_eval.compute_exact("The Broncos", "broncos!") == 1
  assert squad_eval.compute_exact("Denver Broncos", "Broncos") == 0
  # gold tokens [cat, sat], pred [cat, sat, on, mat]: p = 1/2, r = 1.
  assert squad_eval.compute_f1("the cat sat", "cat sat on a mat") == pytest.approx(2 / 3)
  # Token bags: gold [x, y, y], pred [y, y, y] -> 2 common, p = r = 2/3.
  assert squad_eval.compute_f1("x y y", "y y y") == pytest.approx(2 / 3)
  assert squad_eval.compute_f1("Denver", "Carolina") == 0.0


def test_empty_answers_v2_versus_v1():
  assert squad_eval.compute_f1("", "") == 1.0
  assert squad_eval.compute_f1("the", "") == 1.0  # both normalise to nothing
  assert squad_eval.compute_f1("", "Denver") == 0.0
  assert squad_eval.compute_f1("", "", empty_answers_agree=False) == 0.0
  assert squad_eval_v1.evaluate(
      [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"text": "the"}]}]}]}],
      {"q": ""}) == {"exact_match": 100.0, "f1": 0.0}


def test_max_over_gold_answers():
  golds = ["Denver Broncos", "Broncos", "the Denver Broncos team"]
  assert squad_eval.max_over_ground_truths(squad_eval.compute_exact, "broncos", golds) == 1
  # "the Denver Broncos team" normalises to the prediction's tokens.
  assert squad_eval.max_over_ground_truths(
      squad_eval.compute_f1, "Denver Broncos team", golds) == pytest.approx(1.0)
  assert squad_eval.max_over_ground_truths(
      squad_eval.compute_f1, "Broncos team", ["Denver Broncos"]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="no gold answers"):
    squad_eval.max_over_ground_truths(squad_eval.compute_exact, "x", [])


def _v2_dataset():
  qas = [
      {"id": "q1", "answers": [{"text": "Denver Broncos"}, {"text": "Broncos"}]},
      {"id": "q2", "answers": [{"text": "Carolina Panthers"}]},
      {"id": "q3", "answers": []},
      {"id": "q4", "answers": []},
  ]
  return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


V2_PREDS = {"q1": "the Denver Broncos", "q2": "Panthers", "q3": "", "q4": "Levi's Stadium"}
V2_NA = {"q1": 0.1, "q2": 0.9, "q3": 0.8, "q4": 0.3}


def test_v2_with_na_probs_hand_values():
  result = squad_eval.evaluate(_v2_dataset(), V2_PREDS, V2_NA, na_prob_thresh=0.5)
  # Thresholded: q1 answered right (1), q2 predicted NA but answerable (0),
  # q3 predicted NA and unanswerable (1), q4 answered but unanswerable (0).
  expected = {
      "exact": 50.0, "f1": 50.0, "total": 4,
      "HasAns_exact": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2,
      "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
      # Sweep from "all unanswerable" (2): q1 +1 -> 3 (thresh 0.1), q4 -1, q3 0,
      # q2 +0 (EM) or +2/3 (F1: "Panthers" vs "Carolina Panthers") -> best 3/4.
      "best_exact": 75.0, "best_exact_thresh": 0.1,
      "best_f1": 75.0, "best_f1_thresh": 0.1,
  }
  assert list(result) == list(expected)  # the official key order
  assert result == pytest.approx(expected)


def test_v2_best_threshold_moves_past_answerable_questions():
  na = {"q1": 0.1, "q2": 0.2, "q3": 0.8, "q4": 0.9}
  preds = dict(V2_PREDS, q2="Carolina Panthers")
  result = squad_eval.evaluate(_v2_dataset(), preds, na, na_prob_thresh=1.0)
  # Nothing thresholded: q1 1, q2 1, q3 1, q4 0.
  assert result["exact"] == 75.0
  # Sweep: 2 -> q1 3 -> q2 4 (thresh 0.2) -> q3 4 -> q4 3.
  assert result["best_exact"] == 100.0 and result["best_exact_thresh"] == 0.2


def test_v2_without_na_probs_has_no_best_keys():
  result = squad_eval.evaluate(_v2_dataset(), V2_PREDS)
  assert "best_exact" not in result
  assert result["exact"] == 50.0
  # F1: q1 1, q2 2·(1·0.5)/1.5 = 2/3, q3 1, q4 0.
  assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)


def test_v2_only_answerable_data_has_no_noans_keys():
  dataset = [{"paragraphs": [{"qas": [{"id": "q1", "answers": [{"text": "x"}]}]}]}]
  result = squad_eval.evaluate(dataset, {"q1": "x"}, {"q1": 0.0}, 1.0)
  assert "NoAns_total" not in result and result["HasAns_total"] == 1


def test_v2_missing_prediction_is_left_out(caplog):
  preds = {k: v for k, v in V2_PREDS.items() if k != "q2"}
  with caplog.at_level("WARNING", logger="electra"):
    result = squad_eval.evaluate(_v2_dataset(), preds)
  assert "Missing prediction for q2" in caplog.text
  assert result["total"] == 3 and result["HasAns_total"] == 1
  assert result["exact"] == pytest.approx(200 / 3)


def test_v2_na_prob_missing_question_is_a_clear_error():
  with pytest.raises(ValueError, match="no entry for question q4"):
    squad_eval.evaluate(_v2_dataset(), V2_PREDS, {"q1": 0.0, "q2": 0.0, "q3": 0.0}, 0.5)


def test_precision_recall_ap_hand_value():
  has_ans = {"a": True, "b": False, "c": True}
  ap, precisions, recalls = squad_eval.precision_recall_ap(
      {"a": 1.0, "b": 0.0, "c": 1.0}, {"a": 0.1, "b": 0.5, "c": 0.9}, has_ans)
  # a: p 1, r 1/2 -> +1/2; b: p 1/2, r 1/2 -> +0; c: p 2/3, r 1 -> +1/3.
  assert ap == pytest.approx(100 * (0.5 + 1 / 3))
  assert recalls == pytest.approx([0.0, 0.5, 0.5, 1.0])
  assert precisions == pytest.approx([1.0, 1.0, 0.5, 2 / 3])


def test_v1_counts_unanswered_as_zero_and_mrqa_skips():
  dataset = [{"paragraphs": [{"qas": [
      {"id": "a", "answers": [{"text": "Denver Broncos"}, {"text": "Broncos"}]},
      {"id": "b", "answers": [{"text": "Santa Clara"}]}]}]}]
  # a: EM 1 (vs "Broncos"); b unanswered -> 0 of 2.
  assert squad_eval_v1.evaluate(dataset, {"a": "broncos"}) == {
      "exact_match": 50.0, "f1": 50.0}
  answers = {"a": ["Denver Broncos", "Broncos"], "b": ["Santa Clara"]}
  assert mrqa_official_eval.evaluate(answers, {"a": "broncos"}) == {
      "exact_match": 100.0, "f1": 100.0}
  assert mrqa_official_eval.evaluate(answers, {"a": "broncos"}, skip_no_answer=False) == {
      "exact_match": 50.0, "f1": 50.0}
  # "Santa Clara, California": p = 2/3, r = 1 -> 0.8.
  assert mrqa_official_eval.evaluate(answers, {"b": "Santa Clara, California"}) == (
      pytest.approx({"exact_match": 0.0, "f1": 80.0}))


def _run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120)


def _first_answers(path):
  with open(path, encoding="utf-8") as f:
    data = json.load(f)["data"]
  preds = {}
  for article in data:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        preds[qa["id"]] = qa["answers"][0]["text"] if qa["answers"] else ""
  return preds


def test_cli_v2_prints_and_writes_metrics(tmp_path):
  preds = _first_answers(SQUAD_V2_SLICE)
  wrong = sorted(k for k in preds if preds[k])[:3]
  for k in wrong:
    preds[k] = "no such answer"
  na = {k: (5.0 if not v else -5.0) for k, v in preds.items()}
  unanswerable = sorted(k for k, v in preds.items() if not v)
  preds[unanswerable[0]] = "a guess"  # answered, but its na score says "no answer"
  pred_file, na_file, out_file = tmp_path / "p.json", tmp_path / "na.json", tmp_path / "e.json"
  pred_file.write_text(json.dumps(preds))
  na_file.write_text(json.dumps(na))
  proc = _run_cli("finetune.qa.squad_official_eval", SQUAD_V2_SLICE, str(pred_file),
                  "--na-prob-file", str(na_file), "--na-prob-thresh", "0.0",
                  "--out-file", str(out_file))
  assert proc.returncode == 0, proc.stderr
  printed = json.loads(proc.stdout)
  assert printed == json.loads(out_file.read_text())
  n, n_no = len(preds), len(unanswerable)
  assert (printed["total"], printed["NoAns_total"], printed["HasAns_total"]) == (
      n, n_no, n - n_no)
  assert printed["NoAns_exact"] == 100.0  # the guess is overridden by na > 0
  assert printed["HasAns_exact"] == pytest.approx(100 * (n - n_no - 3) / (n - n_no))
  assert printed["exact"] == pytest.approx(100 * (n - 3) / n)


def test_cli_v2_without_arguments_prints_usage_and_exits_1():
  proc = _run_cli("finetune.qa.squad_official_eval")
  assert proc.returncode == 1
  assert "usage" in proc.stdout.lower() and "--na-prob-thresh" in proc.stdout


def test_cli_v1_on_real_slice(tmp_path):
  preds = _first_answers(SQUAD_V1_SLICE)
  dropped = sorted(preds)[0]
  del preds[dropped]
  pred_file = tmp_path / "p.json"
  pred_file.write_text(json.dumps(preds))
  proc = _run_cli("finetune.qa.squad_official_eval_v1", SQUAD_V1_SLICE, str(pred_file))
  assert proc.returncode == 0, proc.stderr
  n = len(preds) + 1
  assert json.loads(proc.stdout) == pytest.approx(
      {"exact_match": 100.0 * (n - 1) / n, "f1": 100.0 * (n - 1) / n})
  assert f"Unanswered question {dropped} will receive score 0." in proc.stderr
  assert "Evaluation expects" not in proc.stderr
  proc = _run_cli("finetune.qa.squad_official_eval_v1", SQUAD_V2_SLICE, str(pred_file))
  assert "Evaluation expects v-1.1, but got dataset with v-v2.0" in proc.stderr


def test_cli_mrqa_on_converted_slice(tmp_path):
  answers = mrqa_official_eval.read_answers(MRQA_SLICE)
  assert len(answers) == 14 and "header" not in answers
  preds = {qid: golds[-1] for qid, golds in answers.items()}
  qid = sorted(preds)[0]
  preds[qid] = "wrong"
  del preds[sorted(preds)[1]]
  pred_file = tmp_path / "p.json"
  pred_file.write_text(json.dumps(preds))
  proc = _run_cli("finetune.qa.mrqa_official_eval", MRQA_SLICE, str(pred_file))
  assert proc.returncode == 0, proc.stderr
  f1_wrong = max(squad_eval.compute_f1(g, "wrong", False) for g in answers[qid])
  assert json.loads(proc.stdout) == pytest.approx(
      {"exact_match": 100.0 * 12 / 13, "f1": 100.0 * (12 + f1_wrong) / 13})


def test_missing_files_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    squad_eval.evaluate_files(str(tmp_path / "nope.json"), str(tmp_path / "p.json"))
  bad = tmp_path / "bad.json"
  bad.write_text("[1, 2]")
  with pytest.raises(ValueError, match="not a SQuAD file"):
    squad_eval.evaluate_files(str(bad), str(bad))
