"""Tagging: BIOES conversion, span F1, CoNLL reading, alignment, label mapping, head."""
import os
import pickle
import shutil

import numpy as np
import pytest
import scipy.special
import tensorflow as tf

import configure_finetuning
from finetune import task_builder
from finetune.tagging import tagging_metrics, tagging_tasks, tagging_utils
from model import tokenization
from model.modeling import BertOutput
from tests.conftest import TEST_DATA, UNCASED_VOCAB

TAG_DATA = os.path.join(TEST_DATA, "tagging")
TRAIN = os.path.join(TAG_DATA, "train.txt")
DEV = os.path.join(TAG_DATA, "dev.txt")
CONLL2000 = os.path.join(TAG_DATA, "conll2000_sample.txt")
WHITESPACE = tagging_tasks.ColumnFormat(files={})


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB)


def make_config(tmp_path, files, task_name="chunk", **hparams):
  data_dir = tmp_path / "data"
  raw_dir = data_dir / "finetuning_data" / task_name
  raw_dir.mkdir(parents=True, exist_ok=True)
  for name, source in files.items():
    shutil.copy(source, raw_dir / name)
  return configure_finetuning.FinetuningConfig("test_model", str(data_dir),
                                               task_names=[task_name], **hparams)


# === tagging_utils ===


def test_spans_from_bio_and_bioes():
  bio = ["B-NP", "I-NP", "O", "B-VP", "B-NP", "I-PP", "I-PP"]
  spans = [(0, 1, "NP"), (3, 3, "VP"), (4, 6, "PP")]  # I after B never closes a span
  assert tagging_utils.get_span_labels(bio) == spans
  bioes = ["B-NP", "E-NP", "O", "S-VP", "S-NP", "B-PP", "E-PP"]
  assert tagging_utils.get_span_labels(bioes) == [(0, 1, "NP"), (3, 3, "VP"), (4, 4, "NP"),
                                                  (5, 6, "PP")]
  # IOB1: an I after O (or at the start) opens a span.
  assert tagging_utils.get_span_labels(["I-NP", "O", "I-VP", "I-VP"]) == [
      (0, 0, "NP"), (2, 3, "VP")]
  assert tagging_utils.get_span_labels([]) == []
  assert tagging_utils.get_span_labels(["O", "O"]) == []


def test_type_change_without_boundary_quirk():
  # The closed span's type is the tag just before the closing position.
  assert tagging_utils.get_span_labels(["B-NP", "I-VP", "O"]) == [(0, 1, "VP")]
  assert tagging_utils.get_span_labels(["B-NP", "I-VP"]) == [(0, 1, "VP")]
  assert tagging_utils.get_span_labels(["B-NP", "E-NP", "I-VP", "B-PP"]) == [
      (0, 2, "VP"), (3, 3, "PP")]


def test_tags_from_spans():
  spans = [(0, 1, "NP"), (3, 3, "VP"), (4, 6, "PP")]
  assert tagging_utils.get_tags(spans, 8, "BIOES") == [
      "B-NP", "E-NP", "O", "S-VP", "B-PP", "I-PP", "E-PP", "O"]
  assert tagging_utils.get_tags(spans, 8, "BIO") == [
      "B-NP", "I-NP", "O", "B-VP", "B-PP", "I-PP", "I-PP", "O"]
  assert tagging_utils.convert_tags(["I-NP", "I-NP", "O"], "BIOES") == ["B-NP", "E-NP", "O"]


def test_bio_bioes_round_trip_on_real_sentences():
  sentences = tagging_tasks.read_conll(TRAIN, WHITESPACE) + tagging_tasks.read_conll(
      DEV, WHITESPACE)
  n_single = 0
  for _, bio in sentences:
    bioes = tagging_utils.convert_tags(bio, "BIOES")
    assert tagging_utils.get_span_labels(bioes) == tagging_utils.get_span_labels(bio)
    assert tagging_utils.convert_tags(bioes, "BIO") == bio  # the files are IOB2
    n_single += bioes.count("S-NP")
  assert n_single > 20


def test_malformed_tags_and_schemes():
  with pytest.raises(ValueError, match="exactly one '-'"):
    tagging_utils.get_span_labels(["B-NP-X"])
  with pytest.raises(ValueError, match="Token 1: Tag 'E-NP' is not a BIO tag"):
    tagging_utils.validate_scheme(["B-NP", "E-NP"], "BIO")
  tagging_utils.validate_scheme(["B-NP", "E-NP", "S-VP", "O"], "BIOES")
  with pytest.raises(ValueError, match="Unknown tagging scheme"):
    tagging_utils.validate_scheme(["O"], "IOB1")


# === Reading ===


def test_read_real_conll_samples():
  train = tagging_tasks.read_conll(TRAIN, WHITESPACE)
  assert len(train) == 30
  assert train[0][0][:3] == ["SOCCER", "-", "JAPAN"]
  assert train[0][1][:3] == ["B-NP", "O", "B-NP"]
  assert sum(len(words) for words, _ in train) == 605 - 30
  # Genuine CoNLL-2000 sample without a blank line after its last sentence: both
  # sentences are kept (FIX: the original dropped the second one).
  sample = tagging_tasks.read_conll(CONLL2000, WHITESPACE)
  assert [len(words) for words, _ in sample] == [37, 27]
  assert sample[1][0][:3] == ["Chancellor", "of", "the"] and sample[1][0][-1] == "."
  assert sample[1][1][0] == "O"


def test_read_skips_docstart_and_stops_in_debug(tmp_path):
  text = open(TRAIN, encoding="utf-8").read()
  path = tmp_path / "long.txt"
  path.write_text("-DOCSTART- -X- O\n\n" + text * 4)
  sentences = tagging_tasks.read_conll(str(path), WHITESPACE)
  assert len(sentences) == 120 and sentences[0][0][0] == "SOCCER"
  assert len(tagging_tasks.read_conll(str(path), WHITESPACE, max_sentences=100)) == 101


def test_read_errors_name_file_and_line(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_text("Confidence NN B-NP\nin\n")
  fmt = tagging_tasks.ColumnFormat(files={}, tag_column=2)
  with pytest.raises(ValueError, match="bad.txt:2: 1 columns"):
    tagging_tasks.read_conll(str(path), fmt)
  path.write_text("Confidence NN B-NP\nin IN E-PP\n")
  with pytest.raises(ValueError, match=r"bad.txt:2: Tag 'E-PP'.*not a BIO tag"):
    tagging_tasks.read_conll(str(path), tagging_tasks.ColumnFormat(files={}, scheme="BIO"))


# === Task: label mapping, featurization ===


def test_label_mapping_file(tmp_path, tokenizer, caplog):
  config = make_config(tmp_path, {"train.txt": TRAIN, "dev.txt": DEV})
  task = tagging_tasks.Chunking(config, tokenizer)
  with caplog.at_level("INFO", logger="electra"):
    examples = task.get_examples("train")
  assert "Writing label mapping for task chunk" in caplog.text
  path = os.path.join(config.preprocessed_data_dir, "chunk_label_mapping.pkl")
  assert task.label_mapping_path == path
  with open(path, "rb") as f:
    mapping = pickle.load(f)
  expected_tags = set()
  for source in (TRAIN, DEV):
    for _, tags in tagging_tasks.read_conll(source, WHITESPACE):
      expected_tags.update(tagging_utils.convert_tags(tags, "BIOES"))
  assert mapping == {tag: i for i, tag in enumerate(sorted(expected_tags))}
  assert "S-CONJP" not in mapping and "B-CONJP" in mapping  # dev-only tags included
  inverse = {i: tag for tag, i in mapping.items()}
  raw_tags = tagging_tasks.read_conll(TRAIN, WHITESPACE)[0][1]
  bioes = tagging_utils.convert_tags(raw_tags, "BIOES")
  assert examples[0].tags == bioes and bioes[:3] == ["S-NP", "O", "S-NP"]
  assert [inverse[i] for i in examples[0].labels] == bioes

  # An existing file is reused as it is (the original's behaviour).
  changed = dict(mapping, **{"S-XYZ": len(mapping)})
  with open(path, "wb") as f:
    pickle.dump(changed, f)
  assert tagging_tasks.Chunking(config, tokenizer).get_label_mapping() == changed
  debug = tagging_tasks.Chunking(make_config(tmp_path / "d", {"dev.txt": DEV}, debug=True),
                                 tokenizer)
  assert os.path.basename(debug.label_mapping_path) == "debug_chunk_label_mapping.pkl"


def test_stale_label_mapping_is_a_clear_error(tmp_path, tokenizer):
  config = make_config(tmp_path, {"train.txt": TRAIN})
  os.makedirs(config.preprocessed_data_dir)
  with open(os.path.join(config.preprocessed_data_dir, "chunk_label_mapping.pkl"), "wb") as f:
    pickle.dump({"O": 0}, f)
  with pytest.raises(ValueError, match="delete that file to rebuild"):
    tagging_tasks.Chunking(config, tokenizer).get_examples("train")


def test_tokenize_and_align_first_pieces(tokenizer):
  words = ["AL-AIN", ",", "United", "Arab", "Emirates", "1996-12-06", "Zürich", "\x00"]
  assert tagging_tasks.tokenize_and_align(tokenizer, words) == [
      ["[CLS]"], ["al", "-", "ain"], [","], ["united"], ["arab"], ["emirates"],
      ["1996", "-", "12", "-", "06"], ["zurich"], [], ["[SEP]"]]
  # Lower-cased whatever do_lower_case (quirk); a cased routine keeps the case.
  assert tagging_tasks.tokenize_and_align(tokenizer, ["Arab"], cased=True)[1] == ["[UNK]"]


def _al_ain_example(task):
  examples = task.get_examples("train")
  example = examples[2]
  assert example.words == ["AL-AIN", ",", "United", "Arab", "Emirates", "1996-12-06"]
  return example


def test_featurize_labels_first_word_piece(tmp_path, tokenizer):
  config = make_config(tmp_path, {"train.txt": TRAIN, "dev.txt": DEV}, max_seq_length=24)
  task = tagging_tasks.Chunking(config, tokenizer)
  example = _al_ain_example(task)
  f = task.featurize(example, is_training=True)
  pieces = ["[CLS]", "al", "-", "ain", ",", "united", "arab", "emirates", "1996", "-", "12",
            "-", "06", "[SEP]"]
  pad = [0] * (24 - len(pieces))
  assert f["input_ids"] == tokenizer.convert_tokens_to_ids(pieces) + pad
  assert f["input_mask"] == [1] * len(pieces) + pad
  assert f["segment_ids"] == [1] * len(pieces) + pad  # quirk: segment 1 everywhere
  assert f["chunk_labeled_positions"] == [1, 4, 5, 6, 7, 8] + [0] * 18
  assert f["chunk_labels_mask"] == [1.0] * 6 + [0.0] * 18
  mapping = task.get_label_mapping()
  bioes = ["S-NP", "O", "B-NP", "I-NP", "I-NP", "E-NP"]
  assert f["chunk_labels"] == [mapping[t] for t in bioes] + [0] * 18
  assert f["chunk_eid"] == 2 and f["task_id"] == 0
  specs = {s.name: (s.shape, s.is_int_feature) for s in task.get_feature_specs()}
  assert specs == {"chunk_eid": ([], True), "chunk_labels": ([24], True),
                   "chunk_labels_mask": ([24], False),
                   "chunk_labeled_positions": ([24], True)}


def test_truncation_counts_words_plus_pieces_quirk(tmp_path, tokenizer):
  config = make_config(tmp_path, {"train.txt": TRAIN}, max_seq_length=12)
  task = tagging_tasks.Chunking(config, tokenizer)
  f = task.featurize(_al_ain_example(task), is_training=False)
  # 8 pseudo-words: [CLS] (8+0+1 <= 12), "AL-AIN" (8+1+1 <= 12), then "," has
  # 8+4+1 > 12: [SEP] and stop, although all 14 pieces minus 2 would nearly fit.
  assert f["input_ids"][:6] == tokenizer.convert_tokens_to_ids(
      ["[CLS]", "al", "-", "ain", "[SEP]"]) + [0]
  assert f["chunk_labeled_positions"][:2] == [1, 0]
  assert f["chunk_labels_mask"] == [1.0] + [0.0] * 11
  long_word = tagging_tasks.TaggingExample(0, "chunk", ["a.b." * 5], ["B-NP"], False,
                                           task.get_label_mapping())
  with pytest.raises(ValueError, match="increase max_seq_length"):
    task.featurize(long_word, is_training=False)


# === Head and scorer ===


def test_tagging_head_matches_numpy(tmp_path, tokenizer):
  config = make_config(tmp_path, {"train.txt": TRAIN, "dev.txt": DEV}, max_seq_length=11)
  task = tagging_tasks.Chunking(config, tokenizer)
  n_labels = len(task.get_label_mapping())
  hidden = 7
  head = task.create_head(hidden)
  assert {k: v.shape.as_list() for k, v in head.named_variables().items()} == {
      "task_specific/chunk/dense/bias": [n_labels],
      "task_specific/chunk/dense/kernel": [hidden, n_labels]}
  rng = np.random.default_rng(5)
  kernel = rng.normal(size=[hidden, n_labels]).astype(np.float32)
  bias = rng.normal(size=[n_labels]).astype(np.float32)
  head.dense.kernel.assign(kernel)
  head.dense.bias.assign(bias)
  sequence = rng.normal(size=[2, 11, hidden]).astype(np.float32)
  positions = np.array([[1, 2, 4, 7] + [0] * 7, [1, 3] + [0] * 9], np.int32)
  mask = np.array([[1.0] * 4 + [0.0] * 7, [1.0] * 2 + [0.0] * 9], np.float32)
  labels = rng.integers(0, n_labels, size=[2, 11]).astype(np.int32)
  features = {"chunk_labeled_positions": tf.constant(positions),
              "chunk_labels_mask": tf.constant(mask), "chunk_labels": tf.constant(labels),
              "chunk_eid": tf.constant([4, 9])}
  output = BertOutput(tf.constant(sequence), tf.constant(sequence[:, 0]), [], None)
  losses, outputs = head(output, features, training=True)

  gathered = np.take_along_axis(sequence.astype(np.float64), positions[..., None], 1)
  logits = gathered @ kernel + bias
  log_probs = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  per_position = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(losses.numpy(), (per_position * mask).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(outputs["logits"].numpy(), logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(outputs["predictions"].numpy(), logits.argmax(-1))
  np.testing.assert_array_equal(outputs["eid"].numpy(), [4, 9])


def _f1_inputs():
  mapping = {tag: i for i, tag in enumerate(
      ["B-NP", "B-VP", "E-NP", "E-VP", "I-NP", "O", "S-NP", "S-VP"])}

  def ids(tags, padding):  # label ids padded to length 8
    return np.array([mapping[t] for t in tags] + [padding] * (8 - len(tags)))

  gold1 = ["B-NP", "E-NP", "S-VP", "O", "S-NP"]          # (0,1,NP) (2,2,VP) (4,4,NP)
  pred1 = ["B-NP", "E-NP", "S-NP", "O", "S-NP"]          # (0,1,NP) (2,2,NP) (4,4,NP)
  gold2 = ["B-VP", "E-VP", "O", "B-NP", "I-NP", "E-NP"]  # (0,1,VP) (3,5,NP)
  pred2 = ["S-VP", "S-VP", "O", "B-NP", "I-NP", "E-NP"]  # (0,0,VP) (1,1,VP) (3,5,NP)
  results = [
      {"labels": ids(gold1, 0), "predictions": ids(pred1, 6), "loss": 3.0,
       "labels_mask": np.array([1.0] * 5 + [0.0] * 3)},
      {"labels": ids(gold2, 0), "predictions": ids(pred2, 6), "loss": 1.5,
       "labels_mask": np.array([1.0] * 6 + [0.0] * 2)}]
  return mapping, results


@pytest.mark.parametrize("fix", [False, True], ids=["double-count-quirk", "fixed"])
def test_entity_level_f1_hand_values(fix):
  mapping, results = _f1_inputs()
  scorer = tagging_metrics.EntityLevelF1Scorer(mapping, fix_double_count=fix)
  for result in results:
    scorer.update(result)
  got = scorer.get_results()
  assert [k for k, _ in got] == ["precision", "recall", "f1", "loss"]
  got = dict(got)
  # correct = 2 + 1, predicted = 3 + 3, gold = 3 + 2 (padding predictions ignored).
  assert got["precision"] == pytest.approx(50.0)
  assert got["recall"] == pytest.approx(60.0)
  assert got["f1"] == pytest.approx(2 * 50 * 60 / 110)
  # Per-word loss: (3.0 + 1.5) / 11 words; the original counts it twice.
  assert got["loss"] == pytest.approx((1 if fix else 2) * 4.5 / 11)


def test_f1_is_zero_without_correct_spans_and_accuracy_scorer():
  mapping, results = _f1_inputs()
  scorer = tagging_metrics.EntityLevelF1Scorer(mapping)
  scorer.update(dict(results[0], predictions=np.full(8, mapping["O"])))
  assert dict(scorer.get_results())["f1"] == 0.0
  accuracy = tagging_metrics.AccuracyScorer()
  accuracy.update(results[0])  # 4 of 5 words right
  assert dict(accuracy.get_results())["accuracy"] == pytest.approx(80.0)


def test_scorer_reads_fix_hparam(tmp_path, tokenizer):
  for fix, factor in [(False, 2), (True, 1)]:
    config = make_config(tmp_path / str(fix), {"train.txt": TRAIN},
                         fix_tagging_loss_double_count=fix)
    task = tagging_tasks.Chunking(config, tokenizer)
    outside = task.get_label_mapping()["O"]
    scorer = task.get_scorer("dev")
    scorer.update({"labels": np.full(8, outside), "predictions": np.full(8, outside),
                   "loss": 3.0, "labels_mask": np.array([1.0] * 5 + [0.0] * 3)})
    assert scorer.get_loss() == pytest.approx(factor * 3.0 / 5)


# === Custom tagging tasks ===


def _bioes_file(tmp_path):
  lines = []
  for words, tags in tagging_tasks.read_conll(DEV, WHITESPACE):
    for word, tag in zip(words, tagging_utils.convert_tags(tags, "BIOES")):
      lines.append(f"{word}\t{tag}\tX\n")
    lines.append("\n")
  path = tmp_path / "dev_bioes.tsv"
  path.write_text("".join(lines))
  return str(path)


def test_custom_tagging_task(tmp_path, tokenizer):
  bioes_dev = _bioes_file(tmp_path)
  entry = {"name": "ner", "type": "tagging", "train_file": "train.txt",
           "dev_file": "dev.tsv", "token_column": 0, "tag_column": 1, "scheme": "BIOES",
           "delimiter": "\t"}
  config = make_config(tmp_path, {"dev.tsv": bioes_dev}, task_name="ner",
                       task_configs=[entry], vocab_file=UNCASED_VOCAB)
  task = tagging_tasks.make_custom_tagging_task(config, entry, tokenizer)
  dev = task.get_examples("dev")
  reference = tagging_tasks.read_conll(DEV, WHITESPACE)
  assert [e.words for e in dev] == [words for words, _ in reference]
  assert [e.tags for e in dev] == [tagging_utils.convert_tags(t, "BIOES")
                                   for _, t in reference]
  assert os.path.basename(task.label_mapping_path) == "ner_label_mapping.pkl"
  assert "task_specific/ner/dense/kernel" in task.create_head(8).named_variables()
  assert task.get_fingerprint()["tag_column"] == 1
  via_builder = task_builder.get_tasks(config)[0]
  assert via_builder.name == "ner" and len(via_builder.get_examples("dev")) == len(dev)


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown field"),
    ({"scheme": "IOB1"}, "field 'scheme'"),
    ({"token_column": "0"}, "field 'token_column'"),
    ({"tag_column": True}, "field 'tag_column'"),
    ({"dev_file": ""}, "field 'dev_file'"),
    ({"delimiter": ""}, "field 'delimiter'"),
])
def test_custom_tagging_validation(tmp_path, tokenizer, change, message):
  entry = dict({"name": "ner", "type": "tagging"}, **change)
  config = make_config(tmp_path, {}, task_name="ner")
  with pytest.raises(ValueError, match=message):
    tagging_tasks.make_custom_tagging_task(config, entry, tokenizer)


def test_custom_bio_scheme_rejects_bioes_file(tmp_path, tokenizer):
  entry = {"name": "ner", "type": "tagging", "tag_column": 1, "scheme": "BIO",
           "delimiter": "\t"}
  config = make_config(tmp_path, {"dev.txt": _bioes_file(tmp_path)}, task_name="ner")
  task = tagging_tasks.make_custom_tagging_task(config, entry, tokenizer)
  with pytest.raises(ValueError, match=r"dev.txt:2: Tag 'E-NP' is not a BIO tag"):
    task.get_examples("dev")
