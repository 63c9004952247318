"""QA tasks: readers, featurization, post-processing and head, on a real SQuAD dev slice."""
import json
import math
import os
import shutil

import numpy as np
import pytest
import scipy.special
import tensorflow as tf

import configure_finetuning
from finetune.qa import qa_head, qa_metrics, qa_tasks, squad_official_eval_v1
from model import tokenization
from model.modeling import BertOutput
from tests.conftest import TEST_DATA, UNCASED_VOCAB

QA_DATA = os.path.join(TEST_DATA, "qa")
V1_SLICE = os.path.join(QA_DATA, "squadv1_dev_slice.json")
V2_SLICE = os.path.join(QA_DATA, "squadv2_dev_slice_SYNTHETIC_unanswerable.json")
MRQA_SLICE = os.path.join(QA_DATA, "mrqa_from_squadv1_dev_slice.jsonl")

# Questions of the slice whose gold span cannot be recovered from word pieces:
# the first answer is a strict sub-string of a token ("gold" in '"golden'), or its
# offset points into a number ("8" in "20–18", "5" in "Super Bowl 50").
SUBWORD_ANSWER_IDS = {
    "56be4db0acb8001400a502f0", "56be4e1facb8001400a502f9", "56bf159b3aeaaa14008c950a",
    "56d2045de7d4791d009025f5", "56bf17653aeaaa14008c9514", "56d204ade7d4791d00902604"}
N_V1_QUESTIONS = 155


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)


def make_task(tmp_path, tokenizer, task_class, files, **hparams):
  """A task reading `files` ({name in finetuning_data/<task>/: source path})."""
  task_name = {qa_tasks.SQuAD: "squad", qa_tasks.SQuADv1: "squadv1",
               qa_tasks.NewsQA: "newsqa"}[task_class]
  data_dir = tmp_path / "data"
  raw_dir = data_dir / "finetuning_data" / task_name
  raw_dir.mkdir(parents=True, exist_ok=True)
  for name, source in files.items():
    shutil.copy(source, raw_dir / name)
  config = configure_finetuning.FinetuningConfig(
      "test_model", str(data_dir), task_names=[task_name], **hparams)
  return task_class(config, tokenizer)


# === Readers ===


def test_squad_reader_train_and_dev(tmp_path, tokenizer, caplog):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1,
                   {"train.json": V1_SLICE, "dev.json": V1_SLICE})
  with caplog.at_level("INFO", logger="electra"):
    train = task.get_examples("train")
  assert f"{N_V1_QUESTIONS} examples created, 0 failures" in caplog.text
  assert [e.eid for e in train] == list(range(N_V1_QUESTIONS))
  first, gold = train[0], train[4]
  assert first.qas_id == "56be4db0acb8001400a502ec" and first.qid is None
  assert first.orig_answer_text == "Denver Broncos"
  assert first.doc_tokens[first.start_position:first.end_position + 1] == ["Denver", "Broncos"]
  assert gold.orig_answer_text == "gold"  # a sub-string of the word '"golden'
  assert gold.doc_tokens[gold.start_position] == '"golden'
  dev = task.get_examples("dev")
  assert len(dev) == N_V1_QUESTIONS and dev[0].start_position is None
  assert task.get_examples("dev") is dev  # cached per split


def test_split_context_whitespace_and_offsets():
  tokens, offsets = qa_tasks.split_context(" Ab  c\u202fd\te")
  assert tokens == ["Ab", "c", "d", "e"]
  assert offsets == [-1, 0, 0, 0, 0, 1, 1, 2, 2, 3]


def test_answer_failures_are_logged_and_counted(tmp_path, tokenizer, caplog):
  with open(V1_SLICE, encoding="utf-8") as f:
    data = json.load(f)
  paragraph = data["data"][1]["paragraphs"][0]  # Normans
  context = paragraph["context"]
  paragraph["qas"][0]["answers"][0] = {"text": "Normandy region", "answer_start": 10}
  paragraph["qas"][1]["answers"][0] = {"text": "far too long", "answer_start": len(context) - 3}
  broken = tmp_path / "broken.json"
  broken.write_text(json.dumps(data))
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {"train.json": str(broken)})
  with caplog.at_level("INFO", logger="electra"):
    examples = task.get_examples("train")
  assert len(examples) == N_V1_QUESTIONS - 2
  assert f"{N_V1_QUESTIONS - 2} examples created, 2 failures" in caplog.text
  assert "Could not find answer: " in caplog.text
  assert "End position is out of document!" in caplog.text


def test_squad_v2_reader_marks_impossible(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD, {"train.json": V2_SLICE})
  examples = task.get_examples("train")
  impossible = [e for e in examples if e.is_impossible]
  assert len(examples) == 60 and len(impossible) == 12
  assert all(e.qas_id.endswith("_synthetic_unanswerable") for e in impossible)
  assert all((e.start_position, e.end_position, e.orig_answer_text) == (-1, -1, "")
             for e in impossible)


def test_debug_reads_debug_squad_file_and_11_mrqa_lines(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {"dev-debug.json": V2_SLICE},
                   debug=True)
  assert task.get_data_file("dev").endswith("dev-debug.json")
  assert len(task.get_examples("dev")) == 60
  with open(MRQA_SLICE, encoding="utf-8") as f:
    lines = f.read().splitlines()
  long_file = tmp_path / "long.jsonl"
  long_file.write_text("\n".join([lines[0]] + [lines[1]] * 12) + "\n")  # header + 12
  n_first = len(json.loads(lines[1])["qas"])
  debug = make_task(tmp_path / "d", tokenizer, qa_tasks.NewsQA, {"dev.jsonl": str(long_file)},
                    debug=True)
  assert len(debug.get_examples("dev")) == 10 * n_first  # lines 0..10, header skipped
  full = make_task(tmp_path / "f", tokenizer, qa_tasks.NewsQA, {"dev.jsonl": str(long_file)})
  assert len(full.get_examples("dev")) == 12 * n_first


def test_mrqa_reader_uses_qid_and_detected_answers(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.NewsQA, {"train.jsonl": MRQA_SLICE})
  examples = task.get_examples("train")
  assert len(examples) == 14
  first = examples[0]
  assert first.qas_id is None and first.qid == "56ddde6b9a695914005b9628"
  assert first.orig_answer_text == "France"
  assert first.doc_tokens[first.start_position].startswith("France")


def test_missing_file_is_a_clear_error(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {})
  with pytest.raises(FileNotFoundError, match="finetuning_data/squadv1/dev.json"):
    task.get_examples("dev")


# === Featurization ===


def test_doc_spans_and_max_context_hand_cases():
  assert qa_tasks.get_doc_spans(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
  assert qa_tasks.get_doc_spans(10, 4, 5) == [(0, 4), (4, 4), (8, 2)]
  assert qa_tasks.get_doc_spans(3, 4, 2) == [(0, 3)]
  assert qa_tasks.get_doc_spans(0, 4, 2) == []
  # "the man went to the store and bought a gallon of milk": "bought" (7) has
  # 4 left / 0 right context in span B (3..7) and 1 / 3 in span C (6..10).
  spans = [qa_tasks.DocSpan(0, 5), qa_tasks.DocSpan(3, 5), qa_tasks.DocSpan(6, 5)]
  assert [qa_tasks.check_is_max_context(spans, i, 7) for i in range(3)] == [
      False, False, True]
  # Token 3 in 0..4 (3 left, 1 right) and 2..6 (1 left, 3 right): tie, the first wins.
  spans = [qa_tasks.DocSpan(0, 5), qa_tasks.DocSpan(2, 5)]
  assert [qa_tasks.check_is_max_context(spans, i, 3) for i in range(2)] == [True, False]
  # A longer window wins a tie in context by 0.01 · length.
  spans = [qa_tasks.DocSpan(0, 5), qa_tasks.DocSpan(2, 6)]
  assert [qa_tasks.check_is_max_context(spans, i, 3) for i in range(2)] == [False, True]
  with pytest.raises(ValueError, match="increase max_seq_length"):
    qa_tasks.get_doc_spans(10, 0, 3)


def test_improve_answer_span(tokenizer):
  doc = tokenizer.tokenize("The leader was John Smith (1895-1943).")
  start = doc.index("(")
  assert qa_tasks.improve_answer_span(doc, start, len(doc) - 1, tokenizer, "1895") == (
      start + 1, start + 1)
  # No match: unchanged.
  assert qa_tasks.improve_answer_span(doc, 0, 2, tokenizer, "japan") == (0, 2)


def _span_text(feature, name, example, start, end):
  tok_text = " ".join(feature[name + "_tokens"][start:end + 1]).replace(" ##", "")
  tok_text = " ".join(tok_text.replace("##", "").split())
  orig_map = feature[name + "_token_to_orig_map"]
  orig_text = " ".join(example.doc_tokens[orig_map[start]:orig_map[end] + 1])
  return qa_metrics.get_final_text(tok_text, orig_text)


@pytest.mark.parametrize("max_seq_length, doc_stride, max_query_length",
                         [(384, 128, 64), (64, 16, 20)], ids=["default", "small-windows"])
def test_windows_map_back_to_gold_answers(tmp_path, tokenizer, max_seq_length, doc_stride,
                                          max_query_length):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {"train.json": V1_SLICE},
                   max_seq_length=max_seq_length, doc_stride=doc_stride,
                   max_query_length=max_query_length)
  vocab = tokenizer.vocab
  mismatched, n_windows = set(), 0
  for example in task.get_examples("train"):
    features = task.featurize(example, is_training=True, for_eval=True)
    n_windows += len(features)
    query = tokenizer.tokenize(example.question_text)[:max_query_length]
    doc = tokenizer.tokenize(" ".join(example.doc_tokens))
    n_with_answer = 0
    for span_index, f in enumerate(features):
      assert f["squadv1_eid"] == 1000 * example.eid + span_index
      assert f["task_id"] == 0
      tokens = f["squadv1_tokens"]
      assert tokens[:len(query) + 2] == ["[CLS]"] + query + ["[SEP]"]
      assert tokens[-1] == "[SEP]" and len(tokens) <= max_seq_length
      n_real = len(tokens)
      assert f["input_ids"] == [vocab[t] for t in tokens] + [0] * (max_seq_length - n_real)
      assert f["input_mask"] == [1] * n_real + [0] * (max_seq_length - n_real)
      assert f["segment_ids"] == ([0] * (len(query) + 2) + [1] * (n_real - len(query) - 2)
                                  + [0] * (max_seq_length - n_real))
      doc_positions = sorted(f["squadv1_token_to_orig_map"])
      assert doc_positions == list(range(len(query) + 2, n_real - 1))
      # Window i starts doc_stride · i sub-tokens into the document.
      window_start = doc_stride * span_index
      assert [tokens[p] for p in doc_positions] == doc[window_start:window_start
                                                       + len(doc_positions)]
      start, end = f["squadv1_start_positions"], f["squadv1_end_positions"]
      assert f["squadv1_is_impossible"] == 0
      if (start, end) == (0, 0):
        continue
      n_with_answer += 1
      assert len(query) + 2 <= start <= end < n_real - 1
      text = _span_text(f, "squadv1", example, start, end)
      if " ".join(text.split()) != " ".join(example.orig_answer_text.split()):
        mismatched.add(example.qas_id)
    assert n_with_answer >= 1, example
    assert window_start + len(doc_positions) == len(doc)  # the last window ends the doc
  assert mismatched == SUBWORD_ANSWER_IDS
  if max_seq_length == 384:
    assert n_windows == N_V1_QUESTIONS  # every paragraph fits one window
  else:
    assert n_windows > 3 * N_V1_QUESTIONS


def test_max_context_is_unique_per_sub_token(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {"dev.json": V1_SLICE},
                   max_seq_length=48, doc_stride=10, max_query_length=12)
  example = task.get_examples("dev")[20]
  features = task.featurize(example, is_training=False, for_eval=True)
  assert len(features) > 3
  spans = qa_tasks.get_doc_spans(
      len(tokenizer.tokenize(" ".join(example.doc_tokens))),
      48 - len(tokenizer.tokenize(example.question_text)[:12]) - 3, 10)
  owners = {}
  for span_index, (f, span) in enumerate(zip(features, spans)):
    offset = min(f["squadv1_token_to_orig_map"])
    assert "squadv1_start_positions" not in f
    for p, is_max in f["squadv1_token_is_max_context"].items():
      if is_max:
        assert span.start + p - offset not in owners
        owners[span.start + p - offset] = span_index
  assert sorted(owners) == list(range(spans[-1].start + spans[-1].length))


def test_featurize_errors(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1, {}, max_seq_length=8,
                   max_query_length=2, doc_stride=1)
  long_example = qa_tasks.QAExample("squadv1", 0, "id", None, "who is it",
                                    ["word"] * 1100)
  with pytest.raises(ValueError, match="windows; feature ids 1000·eid"):
    task.featurize(long_example, is_training=False)
  short = make_task(tmp_path / "s", tokenizer, qa_tasks.SQuADv1, {}, max_seq_length=4,
                    max_query_length=2)
  with pytest.raises(ValueError, match="max_query_length"):
    short.featurize(qa_tasks.QAExample("squadv1", 0, "id", None, "who is it", ["a"]), False)


# === Post-processing ===


@pytest.mark.parametrize("orig_text, pred_text, expected", [
    ("Steve Smith's", "steve smith", "Steve Smith"),
    ("(1895-1943).", "1895", "1895"),
    ("Café Zürich", "cafe zurich", "Café Zürich"),
    ("the Fönix-Team,", "fonix - team", "Fönix-Team"),
    ("Denver Broncos", "new england", "Denver Broncos"),   # not found: orig_text
    ("ﬁnal score", "final", "ﬁnal score"),  # NFD keeps the ligature: no projection
])
def test_get_final_text(orig_text, pred_text, expected):
  assert qa_metrics.get_final_text(pred_text, orig_text) == expected


def test_get_final_text_cased():
  # Cased: nothing is lower-cased, accents stay; lower-case predictions are not found.
  assert qa_metrics.get_final_text("Zürich", "in Zürich,", do_lower_case=False) == "Zürich"
  assert qa_metrics.get_final_text("zürich", "in Zürich,", do_lower_case=False) == (
      "in Zürich,")


def test_best_indexes_and_softmax():
  assert qa_metrics.get_best_indexes([0.5, 2.0, 2.0, -1.0, 3.0], 3) == [4, 1, 2]
  probs = qa_metrics.compute_softmax([1.0, 2.0, 3.0])
  expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
  np.testing.assert_allclose(probs, expected)
  assert qa_metrics.compute_softmax([]) == []


def gold_results(task, joint, k=4):
  """Head outputs putting all the mass on each training window's gold span (numpy)."""
  results = []
  for example in task.get_examples("train"):
    for f in task.featurize(example, is_training=True):
      start, end = f[task.name + "_start_positions"], f[task.name + "_end_positions"]
      length = task.config.max_seq_length
      start_logits = np.full(length, -10.0, np.float32)
      end_logits = np.full(length, -10.0, np.float32)
      start_logits[start] = end_logits[end] = 10.0
      start_top_index = np.zeros(k, np.int32)
      end_top_index = np.zeros([k, k], np.int32)
      start_top_log_probs = np.full(k, -50.0, np.float32)
      end_top_log_probs = np.full([k, k], -50.0, np.float32)
      start_top_index[0], end_top_index[0, 0] = start, end
      start_top_log_probs[0] = end_top_log_probs[0, 0] = 0.0
      results.append(dict(
          eid=f[task.name + "_eid"], loss=np.float32(0.25),
          start_logits=start_logits, end_logits=np.zeros(length) if joint else end_logits,
          answerable_logit=np.float32(5.0 if example.is_impossible else -5.0),
          start_top_log_probs=start_top_log_probs, start_top_index=start_top_index,
          end_top_log_probs=end_top_log_probs, end_top_index=end_top_index))
  return results


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "non-joint"])
def test_gold_outputs_reproduce_gold_answers_v1(tmp_path, tokenizer, joint):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuADv1,
                   {"train.json": V1_SLICE, "dev.json": V1_SLICE},
                   max_seq_length=96, doc_stride=32, beam_size=4, joint_prediction=joint)
  scorer = task.get_scorer("dev")
  for result in gold_results(task, joint):
    scorer.update(result)
  n_ok = N_V1_QUESTIONS - len(SUBWORD_ANSWER_IDS)
  results = dict(scorer.get_results())
  assert list(results) == ["exact_match", "f1"]
  # The sub-word answers score 0 (no gold answer matches the whole token).
  assert results["exact_match"] == pytest.approx(100.0 * n_ok / N_V1_QUESTIONS)
  assert results["f1"] == pytest.approx(100.0 * n_ok / N_V1_QUESTIONS)
  assert scorer.get_loss() == pytest.approx(0.25)
  config = task.config
  with open(config.qa_preds_file("squadv1"), encoding="utf-8") as f:
    preds = json.load(f)
  with open(V1_SLICE, encoding="utf-8") as f:
    data = json.load(f)["data"]
  for article in data:
    for paragraph in article["paragraphs"]:
      paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["id"] not in SUBWORD_ANSWER_IDS]
  assert squad_official_eval_v1.evaluate(data, preds) == {"exact_match": 100.0, "f1": 100.0}
  with open(config.qa_eval_file("squadv1"), encoding="utf-8") as f:
    assert json.load(f) == pytest.approx(results)
  assert not os.path.exists(config.qa_na_file("squadv1"))


def test_gold_outputs_v2_with_null_odds(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD,
                   {"train.json": V2_SLICE, "dev.json": V2_SLICE},
                   max_seq_length=128, doc_stride=48, beam_size=4)
  scorer = task.get_scorer("dev")
  for result in gold_results(task, joint=True):
    scorer.update(result)
  results = scorer.get_results()
  assert [key for key, _ in results] == sorted(
      ["HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total",
       "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh", "exact", "f1",
       "total"])
  results = dict(results)
  # 48 answerable (one sub-word answer), 12 synthetic unanswerable.
  assert (results["total"], results["HasAns_total"], results["NoAns_total"]) == (60, 48, 12)
  assert results["NoAns_exact"] == 100.0
  assert results["HasAns_exact"] == pytest.approx(100.0 * 47 / 48)
  assert results["exact"] == pytest.approx(100.0 * 59 / 60)
  config = task.config
  with open(config.qa_na_file("squad"), encoding="utf-8") as f:
    null_odds = json.load(f)
  with open(config.qa_preds_file("squad"), encoding="utf-8") as f:
    preds = json.load(f)
  assert len(null_odds) == len(preds) == 60
  for qid, odds in null_odds.items():
    assert odds == (5.0 if qid.endswith("_synthetic_unanswerable") else -5.0)
    assert preds[qid]  # v2 predicts the best non-empty text; the threshold decides
  predictions = scorer.write_predictions()
  final = qa_metrics.apply_na_threshold(predictions, config.qa_na_threshold)
  assert {qid for qid, text in final.items() if not text} == {
      qid for qid in preds if qid.endswith("_synthetic_unanswerable")}
  nbest = predictions.nbest["56be4db0acb8001400a502f0"]
  assert sum(e["probability"] for e in nbest) == pytest.approx(1.0)


@pytest.mark.parametrize("joint", [False, True], ids=["non-joint", "joint-quirk"])
def test_v2_null_score_without_answerable_classifier(tmp_path, tokenizer, joint):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD,
                   {"train.json": V2_SLICE, "dev.json": V2_SLICE}, max_seq_length=128,
                   doc_stride=48, beam_size=4, answerable_classifier=False,
                   joint_prediction=joint)
  scorer = task.get_scorer("dev")
  for result in gold_results(task, joint=joint):
    scorer.update(result)
  predictions = scorer.write_predictions()
  for qid, odds in predictions.null_odds.items():
    unanswerable = qid.endswith("_synthetic_unanswerable")
    if not joint:
      # Null = min over windows of start[0] + end[0]: 10 + 10 when the gold is
      # [CLS] everywhere, else -10 + -10; best span -10 + -10 or 10 + 10.
      assert odds == pytest.approx(40.0 if unanswerable else -40.0)
    else:
      # Quirk: joint end logits are zeros, so null = start[0] + 0; the best span
      # scores log-probs 0 + 0 (unanswerable: no valid span, the "empty" entry 0 + 0).
      assert odds == pytest.approx(10.0 if unanswerable else -10.0)
      if unanswerable:
        assert predictions.predictions[qid] == "empty"


def test_scorer_is_built_for_the_predicted_split(tmp_path, tokenizer):
  """FIX of the original's test-output bug: post-processing reads the scored split."""
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD,
                   {"train.json": V2_SLICE, "test.json": V2_SLICE, "dev.json": V1_SLICE},
                   max_seq_length=128, doc_stride=48, beam_size=4)
  scorer = task.get_scorer("test")
  assert scorer.split == "test"
  for result in gold_results(task, joint=True):  # features of the 60-question file
    scorer.update(result)
  predictions = scorer.write_predictions()
  assert len(predictions.predictions) == 60
  final = qa_metrics.apply_na_threshold(predictions, task.config.qa_na_threshold)
  assert all(bool(text) != qid.endswith("_synthetic_unanswerable")
             for qid, text in final.items())
  dev_scorer = task.get_scorer("dev")
  for result in gold_results(task, joint=True):
    dev_scorer.update(result)
  with pytest.raises(ValueError, match="no prediction for feature id"):
    dev_scorer.write_predictions()  # 155 dev questions, 60 results


def test_debug_adds_dummy_prediction_for_v2(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD, {"dev-debug.json": V2_SLICE},
                   max_seq_length=128, doc_stride=48, beam_size=4, debug=True)
  scorer = task.get_scorer("dev")
  k = 4
  for example in task.get_examples("dev"):
    for f in task.featurize(example, is_training=False):
      scorer.update(dict(eid=f["squad_eid"], loss=0.0, start_logits=np.zeros(128),
                         end_logits=np.zeros(128), answerable_logit=0.0,
                         start_top_log_probs=np.zeros(k), start_top_index=np.zeros(k, int),
                         end_top_log_probs=np.zeros([k, k]),
                         end_top_index=np.zeros([k, k], int)))
  predictions = scorer.write_predictions().predictions
  # Every candidate points at [CLS] (invalid); debug mode predicts the first two
  # document sub-tokens, "the" "norman" (of "Normans" = norman ##s).
  first = task.get_examples("dev")[0]
  assert first.doc_tokens[:2] == ["The", "Normans"]
  assert predictions[first.qas_id] == "The Norman"


# === Head ===

H, L, B, K = 6, 13, 3, 4


def _head_variables(task_name="squad", **options):
  head = qa_head.QAHead(task_name, H, beam_size=K, **options)
  return head, {name: v.shape.as_list() for name, v in head.named_variables().items()}


@pytest.mark.parametrize("joint, answerable, uses_start", [
    (True, True, True), (True, True, False), (True, False, True),
    (False, True, True), (False, True, False), (False, False, False)])
def test_qa_head_variable_names_and_shapes(joint, answerable, uses_start):
  _, shapes = _head_variables(joint_prediction=joint, answerable_classifier=answerable,
                              answerable_uses_start_logits=uses_start)
  p = "task_specific/squad/"
  expected = {p + "dense/kernel": [H, 1], p + "dense/bias": [1]}
  if joint:
    expected.update({p + "qa_hidden/kernel": [2 * H, 512], p + "qa_hidden/bias": [512],
                     p + "dense_1/kernel": [512, 1], p + "dense_1/bias": [1]})
  else:
    expected.update({p + "dense_1/kernel": [H, 1], p + "dense_1/bias": [1]})
  if answerable and uses_start:
    expected.update({p + "dense_2/kernel": [2 * H, 512], p + "dense_2/bias": [512],
                     p + "dense_3/kernel": [512, 1], p + "dense_3/bias": [1]})
  elif answerable:
    expected.update({p + "dense_2/kernel": [H, 1], p + "dense_2/bias": [1]})
  assert shapes == dict(sorted(expected.items()))


def _np_gelu(x):
  return 0.5 * x * (1.0 + scipy.special.erf(x / math.sqrt(2.0)))


def _np_log_softmax(x):
  return x - scipy.special.logsumexp(x, axis=-1, keepdims=True)


def _inputs(rng):
  sequence = rng.normal(size=[B, L, H]).astype(np.float32)
  lengths, query_ends = [13, 10, 8], [4, 3, 4]
  input_mask = np.array([[1] * n + [0] * (L - n) for n in lengths], np.int32)
  segment_ids = np.array([[0] * q + [1] * (n - q) + [0] * (L - n)
                          for q, n in zip(query_ends, lengths)], np.int32)
  features = {"input_mask": input_mask, "segment_ids": segment_ids,
              "squad_start_positions": np.array([5, 0, 4], np.int32),
              "squad_end_positions": np.array([7, 0, 6], np.int32),
              "squad_is_impossible": np.array([0, 1, 0], np.int32),
              "squad_eid": np.array([3000, 3001, 4000], np.int32)}
  return sequence, features


def _randomize(head, rng):
  values = {}
  for name, variable in head.named_variables().items():
    value = rng.normal(scale=0.3, size=variable.shape).astype(np.float32)
    variable.assign(value)
    values[name.split("/", 2)[2]] = value.astype(np.float64)
  return values


def _call(head, sequence, features, training):
  output = BertOutput(tf.constant(sequence), tf.constant(sequence[:, 0]), [], None)
  tf_features = {k: tf.constant(v) for k, v in features.items()}
  losses, outputs = head(output, tf_features, training=training)
  return losses.numpy(), {k: v.numpy() for k, v in outputs.items()}


def _np_answerable(w, s, start_logits):
  p = np.exp(_np_log_softmax(start_logits))
  attended = np.einsum("bl,blh->bh", p, s)
  hidden = _np_gelu(np.concatenate([s[:, 0], attended], -1) @ w["dense_2/kernel"]
                    + w["dense_2/bias"])
  return (hidden @ w["dense_3/kernel"] + w["dense_3/bias"])[:, 0]


def _np_ce(logits, positions):
  return -_np_log_softmax(logits)[np.arange(len(positions)), positions]


def test_qa_head_training_loss_matches_numpy():
  rng = np.random.default_rng(7)
  head, _ = _head_variables()
  w = _randomize(head, rng)
  sequence, features = _inputs(rng)
  losses, outputs = _call(head, sequence, features, training=True)

  s = sequence.astype(np.float64)
  mask = features["input_mask"] * features["segment_ids"] + np.eye(L)[0]
  penalty = 1000.0 * (mask - 1.0)
  start_logits = (s @ w["dense/kernel"] + w["dense/bias"])[..., 0] + penalty
  starts, ends = features["squad_start_positions"], features["squad_end_positions"]
  h_start = s[np.arange(B), starts]  # [B, H]
  end_in = np.concatenate([np.repeat(h_start[:, None], L, 1), s], -1)  # [B, L, 2H]
  hidden = _np_gelu(end_in @ w["qa_hidden/kernel"] + w["qa_hidden/bias"])
  end_logits = (hidden @ w["dense_1/kernel"] + w["dense_1/bias"])[..., 0] + penalty
  answerable = _np_answerable(w, s, start_logits)
  z = features["squad_is_impossible"]
  bce = np.maximum(answerable, 0) - answerable * z + np.log1p(np.exp(-np.abs(answerable)))
  expected = (_np_ce(start_logits, starts) + _np_ce(end_logits, ends)) / 2 + 0.5 * bce

  np.testing.assert_allclose(losses, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(outputs["loss"], expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(outputs["start_logits"], start_logits, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(outputs["end_logits"], end_logits, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(outputs["answerable_logit"], answerable, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(outputs["eid"], features["squad_eid"])
  np.testing.assert_array_equal(outputs["start_top_index"],
                                np.argsort(-start_logits, axis=-1)[:, :K])
  assert outputs["end_top_index"].shape == (B, K, K) and not outputs["end_top_index"].any()


def test_qa_head_joint_inference_beam_matches_numpy():
  rng = np.random.default_rng(11)
  head, _ = _head_variables()
  w = _randomize(head, rng)
  sequence, features = _inputs(rng)
  losses, outputs = _call(head, sequence, features, training=False)

  s = sequence.astype(np.float64)
  mask = features["input_mask"] * features["segment_ids"] + np.eye(L)[0]
  penalty = 1000.0 * (mask - 1.0)
  start_log_probs = _np_log_softmax((s @ w["dense/kernel"] + w["dense/bias"])[..., 0]
                                    + penalty)
  top_index = np.argsort(-start_log_probs, axis=-1)[:, :K]  # [B, K]
  np.testing.assert_array_equal(outputs["start_top_index"], top_index)
  np.testing.assert_allclose(outputs["start_top_log_probs"],
                             np.take_along_axis(start_log_probs, top_index, 1), atol=1e-4)
  for b in range(B):
    for i in range(K):
      end_in = np.concatenate([np.repeat(s[b, top_index[b, i]][None], L, 0), s[b]], -1)
      hidden = _np_gelu(end_in @ w["qa_hidden/kernel"] + w["qa_hidden/bias"])
      end_log_probs = _np_log_softmax(
          (hidden @ w["dense_1/kernel"] + w["dense_1/bias"])[:, 0] + penalty[b])
      best = np.argsort(-end_log_probs)[:K]
      np.testing.assert_array_equal(outputs["end_top_index"][b, i], best)
      np.testing.assert_allclose(outputs["end_top_log_probs"][b, i], end_log_probs[best],
                                 atol=1e-4)
  np.testing.assert_array_equal(outputs["end_logits"], np.zeros([B, L]))
  # As the original: the inference loss uses the zeroed end logits (log L for the end).
  start_ce = _np_ce(start_log_probs, features["squad_start_positions"])
  answerable = _np_answerable(w, s, start_log_probs)
  z = features["squad_is_impossible"]
  bce = np.maximum(answerable, 0) - answerable * z + np.log1p(np.exp(-np.abs(answerable)))
  np.testing.assert_allclose(losses, (start_ce + math.log(L)) / 2 + 0.5 * bce, atol=1e-4)


def test_qa_head_non_joint_without_answerable_matches_numpy():
  rng = np.random.default_rng(3)
  head, _ = _head_variables(joint_prediction=False, answerable_classifier=False)
  w = _randomize(head, rng)
  sequence, features = _inputs(rng)
  losses, outputs = _call(head, sequence, features, training=True)
  s = sequence.astype(np.float64)
  mask = features["input_mask"] * features["segment_ids"] + np.eye(L)[0]
  penalty = 1000.0 * (mask - 1.0)
  start_logits = (s @ w["dense/kernel"] + w["dense/bias"])[..., 0] + penalty
  end_logits = (s @ w["dense_1/kernel"] + w["dense_1/bias"])[..., 0] + penalty
  expected = (_np_ce(start_logits, features["squad_start_positions"])
              + _np_ce(end_logits, features["squad_end_positions"])) / 2
  np.testing.assert_allclose(losses, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(outputs["answerable_logit"], np.zeros(B))
  assert not outputs["start_top_index"].any()  # zeros when not joint


def test_task_creates_head_from_config(tmp_path, tokenizer):
  task = make_task(tmp_path, tokenizer, qa_tasks.SQuAD, {}, joint_prediction=False,
                   answerable_uses_start_logits=False)
  head = task.create_head(H)
  assert sorted(head.named_variables()) == [
      "task_specific/squad/dense/bias", "task_specific/squad/dense/kernel",
      "task_specific/squad/dense_1/bias", "task_specific/squad/dense_1/kernel",
      "task_specific/squad/dense_2/bias", "task_specific/squad/dense_2/kernel"]
  names = [spec.name for spec in task.get_feature_specs()]
  assert names == ["squad_eid", "squad_start_positions", "squad_end_positions",
                   "squad_is_impossible"]


def test_qa_and_chunk_features_through_preprocessor_and_model(tmp_path, tokenizer):
  """Smoke test of the interfaces: featurize -> tfrecord -> FinetuningModel -> scorers."""
  from finetune import finetuning_model, preprocessing, task_builder  # pylint: disable=g-import-not-at-top
  from model.modeling import BertConfig  # pylint: disable=g-import-not-at-top
  with open(V1_SLICE, encoding="utf-8") as f:
    data = json.load(f)
  data["data"] = [{"title": "Normans", "paragraphs": data["data"][1]["paragraphs"][:1]}]
  small = tmp_path / "small.json"
  small.write_text(json.dumps(data))
  data_dir = tmp_path / "data"
  for task_name, files in [("squadv1", {"dev.json": str(small)}),
                           ("chunk", {"dev.txt": os.path.join(TEST_DATA, "tagging", "dev.txt")})]:
    (data_dir / "finetuning_data" / task_name).mkdir(parents=True)
    for name, source in files.items():
      shutil.copy(source, data_dir / "finetuning_data" / task_name / name)
  config = configure_finetuning.FinetuningConfig(
      "test_model", str(data_dir), task_names=["squadv1", "chunk"], max_seq_length=48,
      doc_stride=16, max_query_length=12, beam_size=3, vocab_file=UNCASED_VOCAB,
      eval_batch_size=8, predict_batch_size=8)
  tasks = task_builder.get_tasks(config)
  preprocessor = preprocessing.Preprocessor(config, tasks)
  examples = tasks[0].get_examples("dev") + tasks[1].get_examples("dev")[:5]
  path = str(tmp_path / "records.tfrecord")
  n_records = preprocessor.serialize_examples(examples, False, path, 8)
  bert_config = BertConfig(vocab_size=30522, hidden_size=12, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=20)
  model = finetuning_model.FinetuningModel(config, tasks, bert_config=bert_config)
  scorers = [task.get_scorer("dev") for task in tasks]
  n_rows = 0
  for batch in preprocessor.make_dataset(path, False, 8):
    loss, outputs = model(batch, training=False)
    assert np.isfinite(loss.numpy())
    outputs = {k: v.numpy() for k, v in outputs.items()}
    for row, task_id in enumerate(outputs["task_id"]):
      n_rows += 1
      if task_id == len(tasks):
        continue  # padding
      prefix = tasks[task_id].name + "_"
      scorers[task_id].update({k[len(prefix):]: v[row] for k, v in outputs.items()
                               if k.startswith(prefix)})
  assert n_rows == n_records and n_records % 8 == 0
  qa_results, chunk_results = [dict(s.get_results()) for s in scorers]
  assert set(qa_results) == {"exact_match", "f1"}
  assert set(chunk_results) == {"precision", "recall", "f1", "loss"}
  with open(config.qa_preds_file("squadv1"), encoding="utf-8") as f:
    assert len(json.load(f)) == len(tasks[0].get_examples("dev"))
  loss, _ = model(next(iter(preprocessor.make_dataset(path, False, 8))), training=True,
                  seed=tf.constant([1, 2]))
  assert np.isfinite(loss.numpy())
